//! Names and places without context words: gazetteers built from Faker's locale data
//! (`data/build_gazetteer.py`, MIT, see `data/LICENSE-Faker.txt`), matched on runs of
//! capitalised words, with a stoplist of common words that are also names or towns. The
//! tagger also reads which class a word is in, among them the common English words of
//! SCOWL (`data/common_words.txt`, see `data/LICENSE-SCOWL.txt`): a capitalised "Patient"
//! or "Comedy" at the start of a sentence is a word, not a name.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::LazyLock;

use regex::Regex;

use crate::recognizers::Finding;

static FIRST: LazyLock<Words> = LazyLock::new(|| lines(include_str!("../data/first_names.txt")));
static LAST: LazyLock<Words> = LazyLock::new(|| lines(include_str!("../data/last_names.txt")));
static PLACES: LazyLock<Words> = LazyLock::new(|| lines(include_str!("../data/places.txt")));
static OCCUPATIONS: LazyLock<Words> =
    LazyLock::new(|| lines(include_str!("../data/occupations.txt")));
static LANGUAGES: LazyLock<Words> = LazyLock::new(|| lines(include_str!("../data/languages.txt")));
static COMMON: LazyLock<Words> = LazyLock::new(|| lines(include_str!("../data/common_words.txt")));
/// Common words of the other tagged languages (`data/build_common_words.py`).
static COMMON_DE: LazyLock<Words> =
    LazyLock::new(|| lines(include_str!("../data/common_words_de.txt")));
static COMMON_FR: LazyLock<Words> =
    LazyLock::new(|| lines(include_str!("../data/common_words_fr.txt")));
static COMMON_ES: LazyLock<Words> =
    LazyLock::new(|| lines(include_str!("../data/common_words_es.txt")));
static COMMON_NL: LazyLock<Words> =
    LazyLock::new(|| lines(include_str!("../data/common_words_nl.txt")));

/// The common words of `language` (a primary subtag; English for any other).
fn common(language: &str) -> &'static Words {
    match language {
        "de" => &COMMON_DE,
        "fr" => &COMMON_FR,
        "es" => &COMMON_ES,
        "nl" => &COMMON_NL,
        _ => &COMMON,
    }
}
static WORD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"[\p{L}][\p{L}'’-]*").unwrap_or_else(|e| panic!("word pattern: {e}"))
});

/// Capitalised words that are names or towns somewhere but far more often just words.
const STOP: &str = "A About After Again All Also Am An And Any Are As At Be Because Been Before Being Best Both But By \
Can Could Dear Did Do Does Done Down During Each Even Every Few For From Get Give Go Good Great Had Has Have He Hello \
Her Here Hey Hi His How I If In Into Is It Its Just Let Like Made Make Many May Me Might More Most Much Must My Never \
New No Nor Not Now Of Off Ok Okay On Once One Only Or Other Our Out Over Own Please Same She Should Since So Some Still \
Such Than Thank Thanks That The Their Them Then There These They This Those Though Through To Today Too Under Until Up \
Very Was We Well Were What When Where Which While Who Why Will With Would Yes Yet You Your \
Monday Tuesday Wednesday Thursday Friday Saturday Sunday January February March April June July August September \
October November December Christmas Easter Street Road Avenue Lane Square Park Station Bank Card Account Bill Service \
Support Order Price Call Mark Chase Love Hope Faith Joy Grace Rose Summer Winter Spring Fall Art Bob Will Guy Case \
Page King Young Long Hill Little Rich Black White Green Brown Gray Grey Gold Silver Sharp Hunter Drew Pat Sue Jack \
Mobile Plan Fiber Router Box Smart Home App Internet Phone Email Mail Online Customer Team Manager Sir Madam Mr Mrs Ms \
Miss Dr Prof Ich Sie Wir Das Der Die Und Mit Mein Meine Bitte Danke Hallo Guten Tag Rechnung Essen Bad Weil Hof Au \
Je Le La Les Un Une Et Mon Ma Merci Bonjour El Los Las Y Mi Hola Gracias Por Het Een De En Mijn Dank Goed Via Roma \
Born Call Sent Got Tried Sorry Regards Kind Best Cheers Welcome Help Urgent Problem Issue Again Because
North South East West Central Capital Union United State States City Town Village County Region Republic Island";

static STOPWORDS: LazyLock<Words> = LazyLock::new(|| STOP.split_whitespace().collect());

/// FNV-1a over a word's bytes: the gazetteer is looked up several times per token, and
/// SipHash (the default, which resists hash flooding an attacker could aim at a table
/// keyed by their input) cost about 5 % of the scrubber's time; these tables are built from
/// our own lists, so flooding is not a concern.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Fnv1a(u64);

impl Hasher for Fnv1a {
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for b in bytes {
            h = (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        self.0 = h;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// A set of words hashed with [`Fnv1a`].
pub(crate) type Words = HashSet<&'static str, BuildHasherDefault<Fnv1a>>;

fn lines(text: &'static str) -> Words {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect()
}

/// Whether the gazetteer knows `text` as a place, whatever else it is ("Paris", "Jordan").
pub fn is_place(text: &str) -> bool {
    PLACES.contains(text)
}

/// Whether `text` is a place of the gazetteer ("Estonia", "New Zealand") none of whose
/// words is also a first or last name ("Jordan", "Chad" and "Paris" are).
pub fn place_only(text: &str) -> bool {
    PLACES.contains(text)
        && text
            .split_whitespace()
            .all(|w| !FIRST.contains(w) && !LAST.contains(w))
}

/// Whether `text` is a place of the gazetteer that is neither a name ([`place_only`]) nor,
/// lower-cased, a common word of `language` or of English ("Mobile", "Reading").
pub fn unambiguous_place(text: &str, language: &str) -> bool {
    let lower = text.to_lowercase();
    place_only(text)
        && !common(language).contains(lower.as_str())
        && !COMMON.contains(lower.as_str())
}

/// Whether `text` reads as ordinary words of `language` and not as a name: every word is a
/// common word of the language (or a particle such as "de", "van"), and none is a first
/// or last name or a place ("Meine Hilfe", "Increíble", "Mon Compte" are; "Rose", "Koch",
/// "Valencia" are not).
pub fn common_words_only(text: &str, language: &str) -> bool {
    let mut words = text
        .split(|c: char| !c.is_alphabetic())
        .filter(|w| !w.is_empty())
        .peekable();
    words.peek().is_some()
        && words.all(|w| {
            let lower = w.to_lowercase();
            let known = classes(w, &lower, language);
            known & 0b111 == 0 && (known & (1 << 6) != 0 || crate::tagger::is_particle(&lower))
        })
}

/// Whether more of the lower-case words of `text` are common English words than common
/// words of `language`: a language detector's guess on short text, or on English full of
/// foreign names and addresses, is checked against the words the text is written in.
pub fn more_english_than(text: &str, language: &str) -> bool {
    let (mut english, mut other) = (0usize, 0usize);
    for w in text.split(|c: char| !c.is_alphabetic()) {
        if w.chars().next().is_some_and(char::is_lowercase) {
            english += usize::from(COMMON.contains(w));
            other += usize::from(common(language).contains(w));
        }
    }
    english > other
}

/// German, French, Spanish or Dutch when the text's lower-case words say so clearly: at
/// least three are common words of that language, at least one and a half times as many
/// as of any other of the five (English included) and three more (the lists share short
/// words: "de", "je", "ma" are Dutch, French and Spanish words alike). Lets undeclared text skip the statistical
/// detector where the words leave no doubt; `None` otherwise (and for English, whose
/// reading also depends on how sure the detector is).
pub fn clear_language(text: &str) -> Option<&'static str> {
    let counts = common_word_counts(text, 1);
    let (best, top, runner_up) = leader(&counts)?;
    (top >= 3 && 2 * top >= 3 * runner_up && top >= runner_up + 3).then(|| OTHERS[best - 1])
}

/// A weaker vote than [`clear_language`], for text the detector is unsure of: the one of
/// German, French, Spanish and Dutch whose common words are the most among the text's
/// lower-case words of two letters or more, at least two and more than English's and every
/// other language's ("Graag bezorgen op mijn werkadres: …, t.a.v. Linde De Groote": the
/// names outweigh the words for the detector, and "t.a.v." spells three English "words").
pub fn word_vote(text: &str) -> Option<&'static str> {
    let counts = common_word_counts(text, 2);
    let (best, top, runner_up) = leader(&counts)?;
    (top >= 2 && top > runner_up).then(|| OTHERS[best - 1])
}

/// The languages [`common_word_counts`] counts after English.
const OTHERS: [&str; 4] = ["de", "fr", "es", "nl"];

/// How many of the lower-case words of `text` with at least `min_chars` letters are common
/// words of English, then of each of [`OTHERS`].
fn common_word_counts(text: &str, min_chars: usize) -> [usize; 5] {
    let mut counts = [0usize; 5];
    for w in text.split(|c: char| !c.is_alphabetic()) {
        if w.chars().next().is_some_and(char::is_lowercase)
            && w.chars().nth(min_chars - 1).is_some()
        {
            counts[0] += usize::from(COMMON.contains(w));
            for (i, l) in OTHERS.iter().enumerate() {
                counts[i + 1] += usize::from(common(l).contains(w));
            }
        }
    }
    counts
}

/// The index of the non-English language with the most words (on a tie either: the runner-up
/// then has as many), its count, and the highest count of the others, English included.
fn leader(counts: &[usize; 5]) -> Option<(usize, usize, usize)> {
    let (best, &top) = counts.iter().enumerate().skip(1).max_by_key(|(_, c)| **c)?;
    let runner_up = counts
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != best)
        .map(|(_, c)| *c)
        .max()
        .unwrap_or(0);
    Some((best, top, runner_up))
}

/// Whether every word of `text` is a first or last name and the whole is no place.
pub fn name_only(text: &str) -> bool {
    !PLACES.contains(text)
        && text
            .split_whitespace()
            .all(|w| (FIRST.contains(w) || LAST.contains(w)) && !PLACES.contains(w))
}

/// The gazetteer classes of one word as bits: 1 first name, 2 last name, 4 place,
/// 8 stopword, 16 a word of an occupation ("technician", "nurse"; matched lower-cased,
/// `lower` is `word` lower-cased), 32 a language name ("German", "Polish", mostly also a
/// nationality), 64 a common word of `language` (in English "patient", "comedy", "curry":
/// the lower-case entries of SCOWL's size-50 list; in German "januar", "wie"; matched
/// lower-cased). A lower-case word is looked up capitalised too.
pub fn classes(word: &str, lower: &str, language: &str) -> u8 {
    let look = |w: &str| {
        u8::from(FIRST.contains(w))
            | (u8::from(LAST.contains(w)) << 1)
            | (u8::from(PLACES.contains(w)) << 2)
            | (u8::from(STOPWORDS.contains(w)) << 3)
            | (u8::from(LANGUAGES.contains(w)) << 5)
    };
    let direct = look(word)
        | (u8::from(OCCUPATIONS.contains(lower)) << 4)
        | (u8::from(common(language).contains(lower)) << 6);
    let mut chars = word.chars();
    match chars.next() {
        Some(c) if c.is_lowercase() => {
            let capitalised: String = c.to_uppercase().chain(chars).collect();
            direct | look(&capitalised)
        }
        _ => direct,
    }
}

#[derive(Debug, Clone, Copy)]
struct Word {
    start: usize,
    end: usize,
    capitalised: bool,
    sentence_start: bool,
}

fn words(text: &str) -> Vec<Word> {
    WORD.find_iter(text)
        .map(|m| {
            let before = text[..m.start()].trim_end_matches([' ', '"', '\'', '(', '“', '‘']);
            Word {
                start: m.start(),
                end: m.end(),
                capitalised: m.as_str().chars().next().is_some_and(char::is_uppercase)
                    && m.as_str().chars().skip(1).any(char::is_lowercase),
                sentence_start: before.is_empty()
                    || before.ends_with(['.', '!', '?', '\n', ':', ';']),
            }
        })
        .collect()
}

/// Whether words `a` and `b` are adjacent, separated by one space or hyphen.
fn adjacent(text: &str, a: &Word, b: &Word) -> bool {
    matches!(&text[a.end..b.start], " " | "-")
}

/// PERSON and LOCATION findings from the gazetteers.
pub fn find(text: &str, out: &mut Vec<Finding>) {
    let ws = words(text);
    let word = |w: &Word| &text[w.start..w.end];
    let stop = |w: &Word| STOPWORDS.contains(word(w));
    let mut i = 0;
    while i < ws.len() {
        let w = ws[i];
        if !w.capitalised {
            i += 1;
            continue;
        }
        // Places: the longest run of up to four adjacent capitalised words in the list.
        let mut place = None;
        let mut j = i;
        while j < ws.len()
            && j < i + 4
            && ws[j].capitalised
            && (j == i || adjacent(text, &ws[j - 1], &ws[j]))
        {
            let candidate = &text[w.start..ws[j].end];
            let single = j == i;
            if PLACES.contains(candidate)
                && !(single && (stop(&w) || candidate.chars().count() < 4))
            {
                place = Some(j);
            }
            j += 1;
        }
        // People: a first name followed by capitalised words, a capitalised word followed by
        // a last name, or a lone first name that is not a common word.
        let next = ws
            .get(i + 1)
            .filter(|n| n.capitalised && adjacent(text, &w, n) && !stop(n));
        let person = if FIRST.contains(word(&w)) && !stop(&w) {
            match next {
                Some(n) => {
                    let mut end = i + 1;
                    if let Some(m) = ws
                        .get(i + 2)
                        .filter(|m| m.capitalised && adjacent(text, n, m) && LAST.contains(word(m)))
                    {
                        let _ = m;
                        end = i + 2;
                    }
                    Some((end, 0.8))
                }
                None if !w.sentence_start || word(&w).chars().count() > 3 => Some((i, 0.6)),
                None => None,
            }
        } else if !stop(&w) && !w.sentence_start && next.is_some_and(|n| LAST.contains(word(n))) {
            Some((i + 1, 0.65))
        } else {
            None
        };
        match (person, place) {
            // A lone first name that is also a place ("Paris") is read as the place; a
            // full name that starts with a place name ("Paris Hilton") as the person.
            (Some((end, score)), Some(p)) if end > p || (end == p && score >= 0.8) => {
                push(out, "PERSON", w.start, ws[end].end, score);
                i = end + 1;
            }
            (_, Some(p)) => {
                push(out, "LOCATION", w.start, ws[p].end, 0.7);
                i = p + 1;
            }
            (Some((end, score)), None) => {
                push(out, "PERSON", w.start, ws[end].end, score);
                i = end + 1;
            }
            (None, None) => i += 1,
        }
    }
}

fn push(out: &mut Vec<Finding>, entity_type: &'static str, start: usize, end: usize, score: f64) {
    out.push(Finding {
        entity_type,
        start,
        end,
        score,
        recognizer: "gazetteer",
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clear_language_is_named_only_where_the_words_leave_no_doubt() {
        assert_eq!(
            clear_language("ich habe meine Rechnung für März noch nicht bekommen, bitte prüfen"),
            Some("de")
        );
        assert_eq!(
            clear_language("bonjour, je n'ai toujours pas reçu ma facture de mars, merci"),
            Some("fr")
        );
        assert_eq!(
            clear_language("hola, todavía no he recibido mi factura de marzo, gracias"),
            Some("es")
        );
        // English is left to the detector, and so is text with too few words to tell.
        assert_eq!(
            clear_language("I still have not received my invoice for March, please check"),
            None
        );
        assert_eq!(clear_language("Danke, Jürgen Müller"), None);
        assert_eq!(clear_language(""), None);
    }

    #[test]
    fn the_weaker_vote_needs_two_words_of_two_letters_and_a_lead() {
        let dutch = "Graag bezorgen op mijn werkadres: Segerszoen & van Leeuwen, t.a.v. \
                     Linde De Groote, Elisaweg 5-4, 1658 RN Maria Hoop.";
        assert_eq!(clear_language(dutch), None);
        assert_eq!(word_vote(dutch), Some("nl"));
        assert_eq!(word_vote("I am ukrainian but I live in Denmark."), None);
        assert_eq!(word_vote("Merci, Jean"), None);
        assert_eq!(word_vote(""), None);
    }

    fn found(text: &str) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        find(text, &mut out);
        out.into_iter()
            .map(|f| (f.entity_type, text[f.start..f.end].to_owned()))
            .collect()
    }

    #[test]
    fn places_only_and_names_only() {
        assert!(place_only("Estonia"));
        assert!(place_only("New Zealand"));
        assert!(!place_only("Jordan"), "also a name");
        assert!(!place_only("Ingrid"), "no place");
        assert!(name_only("Ingrid Brown"));
        assert!(!name_only("Paris"), "also a place");
        assert!(!name_only("Estonia"));
    }

    #[test]
    fn ordinary_words_of_a_language_are_no_name() {
        assert!(common_words_only("Meine Hilfe", "de"));
        assert!(common_words_only("Increíble", "es"));
        assert!(common_words_only("Mon Compte", "fr"));
        assert!(!common_words_only("Valencia", "es"), "a place");
        assert!(!common_words_only("Maria", "de"), "a first name");
        assert!(
            !common_words_only("Koch", "de"),
            "a surname, whatever else it is"
        );
        assert!(!common_words_only("Kwiatkowski", "de"), "no word at all");
        assert!(!common_words_only("", "de"));
    }

    #[test]
    fn word_classes() {
        const FIRST_NAME: u8 = 1;
        const PLACE: u8 = 4;
        const COMMON: u8 = 64;
        assert_ne!(classes("Patient", "patient", "en") & COMMON, 0);
        assert_ne!(classes("comedy", "comedy", "en") & COMMON, 0);
        assert_eq!(
            classes("Kwiatkowski", "kwiatkowski", "en") & COMMON,
            0,
            "a name only"
        );
        let curry = classes("Curry", "curry", "en");
        assert_ne!(curry & COMMON, 0, "a dish as well as a name");
        assert_eq!(classes("Berlin", "berlin", "en") & (PLACE | COMMON), PLACE);
        assert_ne!(
            classes("maria", "maria", "en") & FIRST_NAME,
            0,
            "looked up capitalised"
        );
    }

    #[test]
    fn names_and_places_without_context_words() {
        assert_eq!(
            found("Yesterday Emma Johnson flew from Berlin to New York."),
            vec![
                ("PERSON", "Emma Johnson".into()),
                ("LOCATION", "Berlin".into()),
                ("LOCATION", "New York".into())
            ]
        );
        assert_eq!(
            found("Maria called about the router"),
            vec![("PERSON", "Maria".into())]
        );
    }

    #[test]
    fn common_words_that_are_also_names_are_not_flagged() {
        assert!(found("Will you send the Bill in May? Thanks, Service Team").is_empty());
        assert!(found("Please check the Price of the Mobile Plan").is_empty());
    }
}
