//! A learned sequence tagger for the entities rules cannot pin down alone (names, places,
//! organizations, whole postal addresses, nationalities, dates in prose, …).
//!
//! An averaged structured perceptron over sparse features, decoded greedily left to right
//! with BIO tags (Collins 2002; the design of the classic fast taggers): per token the
//! word, its shape, affixes, its neighbours, the gazetteer classes of it and its
//! neighbours, which rule recognizer covers it (validated cards, IBANs, phones, context
//! names, streets, … from [`crate::recognizers`]), and the two tags before it. Features are
//! 64-bit FNV-1a hashes, so the model is a sparse table with no vocabulary to store.
//!
//! Why not a transformer head: the MiniLM-L6 encoder runs ~100–300 sentences/s on this
//! machine's two cores, about Presidio's own speed; the privacy target is 100× Presidio.
//! This tagger scores tens of thousands of sentences per second and learns from the same
//! labelled sentences a transformer head would (see `data/generate_training.py`).
//!
//! Offsets: tokens and findings are byte offsets into the text; training data gives char
//! offsets and is converted on load ([`Example::from_chars`]).
//!
//! This module is inference (tokens, features, the model file, decoding); `train` learns a
//! model and chooses per entity type between it and the rules; `card` writes the model
//! card `insights train privacy` puts beside a trained model.

use std::collections::HashMap;
use std::io::{Read, Write};

use crate::recognizers::Finding;

mod card;
mod job;
mod train;

pub use card::{CardOptions, model_card, validation_errors};
pub use job::{Trained, train_job};
pub use train::{
    DEFAULT_FALLBACK_SCORE, ENGLISH_OWN_TEMPLATES, ENTITY_BIAS_CANDIDATES, FALLBACK_CANDIDATES,
    MIXED_ENGLISH, OWN_TEMPLATES, Scores, TrainOptions, VALIDATED_SCORE, fold_of, is_english_own,
    matches, train, train_detector,
};

/// Entity types the tagger may be trained on, and that operators and thresholds may name
/// (Presidio's names, and ours for what Presidio has no recognizer for).
pub const ENTITY_TYPES: &[&str] = &[
    "PERSON",
    "LOCATION",
    "STREET_ADDRESS",
    "ORGANIZATION",
    "DATE_TIME",
    "CREDIT_CARD",
    "PHONE_NUMBER",
    "TITLE",
    "NRP",
    "AGE",
    "EMAIL_ADDRESS",
    "ZIP_CODE",
    "DOMAIN_NAME",
    "IP_ADDRESS",
    "US_SSN",
    "US_DRIVER_LICENSE",
    "IBAN_CODE",
    "URL",
    "US_PASSPORT",
    "US_BANK_NUMBER",
    "MEDICAL_LICENSE",
    // National identifiers (the rules find them; the tagger was never trained on them).
    "ES_NIF",
    "ES_NIE",
    "NL_BSN",
    "FR_NIR",
    "DE_TAX_ID",
    "DE_ID_CARD",
    "UK_NINO",
    "UK_NHS",
    "US_ITIN",
    "PASSPORT",
    "DRIVER_LICENSE",
];

const MAGIC: &[u8; 10] = b"INSTAGGER1";

/// The `'static` name of a known entity type.
pub fn entity_type(name: &str) -> Option<&'static str> {
    ENTITY_TYPES.iter().copied().find(|t| *t == name)
}

/// The next number of a xorshift64 generator (reproducible shuffles without a RNG crate).
fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// A token: a run of letters and digits, a literal `\n`-style escape, or one other
/// non-space character. Byte offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token {
    /// Start byte.
    pub start: usize,
    /// End byte (exclusive).
    pub end: usize,
}

/// Splits `text` into tokens.
pub fn tokenize(text: &str) -> Vec<Token> {
    let mut out = Vec::with_capacity(text.len() / 4);
    let mut it = text.char_indices().peekable();
    while let Some((i, c)) = it.next() {
        if c.is_whitespace() {
            continue;
        }
        if c.is_alphanumeric() {
            let mut end = i + c.len_utf8();
            while let Some(&(j, d)) = it.peek() {
                if !d.is_alphanumeric() {
                    break;
                }
                end = j + d.len_utf8();
                it.next();
            }
            out.push(Token { start: i, end });
        } else if c == '\\' && matches!(it.peek(), Some((_, 'n' | 't' | 'r'))) {
            // Text pasted from logs or JSON often carries escaped line breaks.
            it.next();
            out.push(Token {
                start: i,
                end: i + 2,
            });
        } else {
            out.push(Token {
                start: i,
                end: i + c.len_utf8(),
            });
        }
    }
    out
}

/// One labelled sentence: byte spans.
#[derive(Debug, Clone)]
pub struct Example {
    /// The sentence.
    pub text: String,
    /// (entity type, start byte, end byte).
    pub spans: Vec<(&'static str, usize, usize)>,
    /// Which template generated it (for splits), if known.
    pub template_id: Option<u32>,
}

impl Example {
    /// An example from spans in chars (Unicode scalar values), as Python writes them.
    /// Unknown entity types are an error naming the type.
    pub fn from_chars(
        text: String,
        spans: &[(String, usize, usize)],
        template_id: Option<u32>,
    ) -> Result<Self, String> {
        let mut bytes: Vec<usize> = text.char_indices().map(|(b, _)| b).collect();
        bytes.push(text.len());
        let mut out = Vec::with_capacity(spans.len());
        for (entity, start, end) in spans {
            let ty =
                entity_type(entity).ok_or_else(|| format!("unknown entity type {entity:?}"))?;
            let (Some(&s), Some(&e)) = (bytes.get(*start), bytes.get(*end)) else {
                return Err(format!("span {start}..{end} is outside the text"));
            };
            if s >= e {
                return Err(format!("span {start}..{end} is empty"));
            }
            out.push((ty, s, e));
        }
        Ok(Self {
            text,
            spans: out,
            template_id,
        })
    }

    /// The sentence written all in lower case, its spans moved with the letters (a letter
    /// whose lower case is longer in UTF-8 shifts what follows), or `None` when it already
    /// is: customers type sloppily, and a tagger that saw a name only capitalised misses
    /// "gruß patricia".
    pub fn lower_cased(&self) -> Option<Example> {
        let mut text = String::with_capacity(self.text.len());
        // New byte offset of every old char boundary (and of the end).
        let mut moved = vec![0usize; self.text.len() + 1];
        for (b, c) in self.text.char_indices() {
            moved[b] = text.len();
            text.extend(c.to_lowercase());
        }
        moved[self.text.len()] = text.len();
        if text == self.text {
            return None;
        }
        Some(Example {
            spans: self
                .spans
                .iter()
                .map(|&(ty, s, e)| (ty, moved[s], moved[e]))
                .collect(),
            text,
            template_id: self.template_id,
        })
    }
}

/// The trained tagger.
#[derive(Debug, Clone)]
pub struct Model {
    /// Entity types, in tag order: tag `1 + 2k` begins type `k`, `2 + 2k` continues it.
    types: Vec<&'static str>,
    /// Feature hash → range into `weights`.
    index: HashMap<u64, (u32, u16), BuildFnv>,
    /// (tag, weight) pairs.
    weights: Vec<(u16, f32)>,
    /// Softmax temperature for span scores.
    pub temperature: f32,
    /// Added to the score of every tag that begins a span before decoding picks one:
    /// above 0, a word the tagger is unsure about starts a span rather than staying
    /// outside one (recall bought with precision). Chosen on held-out templates at
    /// training time ([`ENTITY_BIAS_CANDIDATES`]).
    pub entity_bias: f32,
    /// Entity types the rule recognizers answer for instead of the tagger (chosen on
    /// held-out templates at training time).
    pub rule_types: Vec<&'static str>,
    /// Rule findings at least this confident are kept where neither source found
    /// anything (validated identifiers, names after "my name is", …).
    pub fallback_score: f64,
    /// Metadata written at training time (version, data, figures).
    pub meta: serde_json::Value,
    /// The language the tagger learned (a primary subtag): which common words its
    /// gazetteer feature knows.
    pub language: &'static str,
}

/// A tagged span that runs on over a clause naming somebody by role ("… Apt. 333, tenant
/// Irene Miller": the street went on past its comma) ends at the last comma, semicolon or
/// line break before the name the honorific rule found, so that the name gets in.
fn cut_before_named_people(text: &str, rules: &[Finding], tagged: &mut [Finding]) {
    for t in tagged.iter_mut() {
        let Some(name) = rules.iter().find(|r| {
            r.recognizer == "honorific"
                && r.entity_type != t.entity_type
                && t.start < r.start
                && r.end <= t.end
        }) else {
            continue;
        };
        if let Some(cut) = text[t.start..name.start].rfind([',', ';', '\n']) {
            let end = t.start + text[t.start..t.start + cut].trim_end().len();
            if end > t.start {
                t.end = end;
            }
        }
    }
}

/// The identity hasher for keys that already are hashes.
#[derive(Debug, Clone, Copy, Default)]
pub struct BuildFnv;

/// See [`BuildFnv`].
#[derive(Debug, Default)]
pub struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(FNV_PRIME);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

impl std::hash::BuildHasher for BuildFnv {
    type Hasher = IdHasher;
    fn build_hasher(&self) -> IdHasher {
        IdHasher(0)
    }
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

fn fnv(template: u8, parts: &[&[u8]]) -> u64 {
    let mut h = FNV_OFFSET;
    h = (h ^ u64::from(template)).wrapping_mul(FNV_PRIME);
    for p in parts {
        for &b in *p {
            h = (h ^ u64::from(b)).wrapping_mul(FNV_PRIME);
        }
        h = (h ^ 0x1f).wrapping_mul(FNV_PRIME);
    }
    h
}

/// What the tagger knows of one token before decoding.
struct TokenView {
    lower: String,
    shape: String,
    gazetteer: u8,
    rule: Option<(&'static str, &'static str, bool)>,
    break_before: bool,
}

fn shape(word: &str) -> String {
    let mut out = String::with_capacity(6);
    let mut last = ' ';
    let mut run = 0;
    for c in word.chars() {
        let s = if c.is_uppercase() {
            'X'
        } else if c.is_lowercase() {
            'x'
        } else if c.is_ascii_digit() {
            'd'
        } else {
            c
        };
        if s == last {
            run += 1;
            if run >= 2 {
                continue;
            }
        } else {
            run = 0;
        }
        last = s;
        out.push(s);
    }
    out
}

fn views(text: &str, tokens: &[Token], rules: &[Finding], language: &str) -> Vec<TokenView> {
    let mut r = 0;
    tokens
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let word = &text[t.start..t.end];
            while r < rules.len() && rules[r].end <= t.start {
                r += 1;
            }
            let rule = rules
                .get(r)
                .filter(|f| f.start < t.end && t.start < f.end)
                .map(|f| (f.entity_type, f.recognizer, f.start >= t.start));
            let gap = if i == 0 {
                ""
            } else {
                &text[tokens[i - 1].end..t.start]
            };
            let prev = if i == 0 {
                ""
            } else {
                &text[tokens[i - 1].start..tokens[i - 1].end]
            };
            let lower = word.to_lowercase();
            TokenView {
                gazetteer: crate::gazetteer::classes(word, &lower, language),
                lower,
                shape: shape(word),
                rule,
                break_before: i == 0
                    || gap.contains('\n')
                    || prev.starts_with('\\')
                    || matches!(prev, "." | "!" | "?" | ":" | ";"),
            }
        })
        .collect()
}

const GZ_NAMES: [&[u8]; 7] = [
    b"first",
    b"last",
    b"place",
    b"stop",
    b"occupation",
    b"language",
    b"common",
];

/// The features of token `i` that do not depend on the tags before it.
fn static_features(v: &[TokenView], i: usize, out: &mut Vec<u64>) {
    out.clear();
    let w = &v[i];
    let word = w.lower.as_bytes();
    out.push(fnv(0, &[]));
    out.push(fnv(1, &[word]));
    out.push(fnv(2, &[w.shape.as_bytes()]));
    // Affixes of words longer than three chars, without collecting the chars (hot path).
    let n_chars = w.lower.chars().count();
    if n_chars > 3 {
        let p3 = w.lower.char_indices().nth(3).map_or(word.len(), |(b, _)| b);
        let s3 = w.lower.char_indices().nth_back(2).map_or(0, |(b, _)| b);
        out.push(fnv(3, &[&word[..p3]]));
        out.push(fnv(4, &[&word[s3..]]));
    }
    out.push(fnv(5, &[&[u8::from(w.break_before)]]));
    let len = n_chars.min(12) as u8;
    if w.shape.starts_with('d') {
        out.push(fnv(6, &[&[len]]));
    }
    // The words right before and after; words further off and word pairs are left out:
    // they let the model learn the training templates by heart rather than the entities
    // (validation templates F2 0.676 with them, 0.721 without).
    for (offset, template) in [(-1isize, 11u8), (1, 12)] {
        let j = i as isize + offset;
        let word = if j < 0 {
            b"<s>" as &[u8]
        } else if let Some(n) = v.get(j as usize) {
            n.lower.as_bytes()
        } else {
            b"</s>"
        };
        out.push(fnv(template, &[word]));
    }
    for (offset, template) in [(-1isize, 14u8), (1, 15)] {
        let j = i as isize + offset;
        if j >= 0
            && let Some(n) = v.get(j as usize)
        {
            out.push(fnv(template, &[n.shape.as_bytes()]));
            for (bit, name) in GZ_NAMES.iter().enumerate() {
                if n.gazetteer & (1 << bit) != 0 {
                    out.push(fnv(template + 10, &[name]));
                }
            }
        }
    }
    for (bit, name) in GZ_NAMES.iter().enumerate() {
        if w.gazetteer & (1 << bit) != 0 {
            out.push(fnv(18, &[name]));
            out.push(fnv(19, &[name, w.shape.as_bytes()]));
        }
    }
    if let Some((ty, recognizer, first)) = w.rule {
        out.push(fnv(20, &[ty.as_bytes(), &[u8::from(first)]]));
        out.push(fnv(21, &[recognizer.as_bytes()]));
    }
    for (offset, template) in [(-1isize, 22u8), (1, 23)] {
        let j = i as isize + offset;
        if j >= 0
            && let Some((ty, _, _)) = v.get(j as usize).and_then(|n| n.rule)
        {
            out.push(fnv(template, &[ty.as_bytes()]));
        }
    }
}

/// The features that depend on the previous two tags.
fn tag_features(token: &TokenView, prev: u16, prev2: u16, out: &mut Vec<u64>) {
    let p = prev.to_le_bytes();
    let p2 = prev2.to_le_bytes();
    out.push(fnv(30, &[&p]));
    out.push(fnv(31, &[&p, &p2]));
    out.push(fnv(32, &[&p, token.lower.as_bytes()]));
    // Whether a span goes on across a line or sentence break, and into what shape.
    out.push(fnv(
        33,
        &[&p, &[u8::from(token.break_before)], token.shape.as_bytes()],
    ));
}

/// Where a street address the tagger proposes really ends: before a part after a comma
/// with neither a digit nor a lone letter, once the span had both a number and a name
/// ("Kreuselgasse 76, Mieterin Stephan Huhn", "64, chemin de Guillot, locataire Pierre
/// Godard", "…, 65689 Heidenau, Empfänger …"). A unit ("Whg. 9", "4. OG", "bât. C") or a
/// postcode with its town stays; so does the name after a lone number ("7, rue Victor
/// Hugo").
fn street_end(text: &str, f: &Finding) -> usize {
    let span = &text[f.start..f.end];
    let (mut at, mut digits, mut letters) = (0, false, false);
    for part in span.split(',') {
        let has_digit = part.contains(|c: char| c.is_ascii_digit());
        let lone_letter = part
            .split(|c: char| !c.is_alphabetic())
            .any(|w| w.chars().count() == 1);
        if digits && letters && !has_digit && !lone_letter {
            return f.start + span[..at - 1].trim_end().len();
        }
        digits |= has_digit;
        letters |= part.contains(char::is_alphabetic);
        at += part.len() + 1;
    }
    f.end
}

/// Articles of the five languages ("de" is left out: it is also a name's particle).
const ARTICLES: &[&str] = &[
    "the", "a", "an", "le", "la", "les", "l", "un", "une", "du", "des", "el", "los", "las", "una",
    "unos", "unas", "der", "die", "das", "den", "dem", "ein", "eine", "einen", "einem", "einer",
    "het", "een",
];

/// Whether the word before `at` is one of [`ARTICLES`] (any case; "l'" elided too).
fn after_article(text: &str, at: usize) -> bool {
    let before = text[..at].trim_end_matches([' ', '\'', '’']);
    let word = &before[before.trim_end_matches(char::is_alphabetic).len()..];
    ARTICLES.contains(&word.to_lowercase().as_str())
}

/// Words that name a document or a case, in the five languages: the number after one is
/// its number ("Invoice 88213", "Rechnung 2024-118", "factuur 2024-0912", "ticket 44817"),
/// not a phone number or an address.
const DOCUMENT_WORDS: &[&str] = &[
    "invoice",
    "bill",
    "order",
    "ticket",
    "case",
    "reference",
    "ref",
    "contract",
    "receipt",
    "complaint",
    "claim",
    "rechnung",
    "bestellung",
    "auftrag",
    "vertrag",
    "vorgang",
    "rechnungsnummer",
    "kundennummer",
    "vertragsnummer",
    "auftragsnummer",
    "bestellnummer",
    "ticketnummer",
    "vorgangsnummer",
    "referenznummer",
    "facture",
    "commande",
    "dossier",
    "contrat",
    "référence",
    "réclamation",
    "factura",
    "pedido",
    "contrato",
    "referencia",
    "incidencia",
    "expediente",
    "reclamación",
    "factuur",
    "bestelling",
    "referentie",
    "klantnummer",
    "factuurnummer",
    "ordernummer",
    "bestelnummer",
    "contractnummer",
    "dossiernummer",
];

/// Words between a document word and its number ("Invoice no. 5531", "Rechnung Nr. 7").
const NUMBER_WORDS: &[&str] = &[
    "no", "nr", "number", "nummer", "numéro", "número", "nº", "n°",
];

/// Whether a span the tagger calls a phone number, address or postcode is a document's
/// number: digits and separators only (after a leading [`DOCUMENT_WORDS`] word of its own),
/// right after a document word (maybe with "no.", "Nr.", "#", ":" between).
fn document_number(text: &str, f: &Finding) -> bool {
    if !matches!(
        f.entity_type,
        "PHONE_NUMBER" | "STREET_ADDRESS" | "ZIP_CODE"
    ) {
        return false;
    }
    let is_document = |w: &str| DOCUMENT_WORDS.contains(&w.to_lowercase().as_str());
    let span = &text[f.start..f.end];
    let (own, number) = match span.split_once(' ') {
        Some((word, rest)) if is_document(word) => (true, rest),
        _ => (false, span),
    };
    let numeric = number.contains(|c: char| c.is_ascii_digit())
        && number
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, ' ' | '-' | '/' | '.'));
    if !numeric {
        return false;
    }
    own || text[..f.start]
        .split(|c: char| c.is_whitespace() || matches!(c, '#' | ':' | '.'))
        .rev()
        .filter(|w| !w.is_empty())
        .find(|w| !NUMBER_WORDS.contains(&w.to_lowercase().as_str()))
        .is_some_and(is_document)
}

/// Whether a name, place or company stands in a path through an app's menus ("Ajustes >
/// Llamadas", "Settings > Calls > Advanced"): a screen's name, not personal data.
fn in_menu_path(text: &str, f: &Finding) -> bool {
    const ARROWS: [char; 3] = ['>', '›', '→'];
    matches!(f.entity_type, "PERSON" | "LOCATION" | "ORGANIZATION")
        && (text[..f.start].trim_end().ends_with(ARROWS)
            || text[f.end..].trim_start().starts_with(ARROWS)
            || text[f.start..f.end].contains(ARROWS))
}

/// English words that make a lower-case span an address ("12 oak road", "flat 3").
const STREET_TYPES: &[&str] = &[
    "street",
    "st",
    "road",
    "rd",
    "lane",
    "ln",
    "avenue",
    "ave",
    "drive",
    "dr",
    "way",
    "close",
    "court",
    "ct",
    "place",
    "pl",
    "crescent",
    "terrace",
    "boulevard",
    "blvd",
    "square",
    "sq",
    "apt",
    "apartment",
    "flat",
    "suite",
    "unit",
    "floor",
    "highway",
    "hwy",
    "parkway",
    "row",
    "walk",
    "hill",
    "park",
    "gardens",
    "grove",
    "mews",
];

/// Whether an English span the tagger calls an address is a number among lower-case
/// ordinary words: it has words, all of them lower-case common English words, none a
/// [`STREET_TYPES`] word.
fn prose_number(span: &str) -> bool {
    let mut words = span
        .split(|c: char| !c.is_alphabetic())
        .filter(|w| !w.is_empty())
        .peekable();
    words.peek().is_some()
        && words.all(|w| {
            w.chars().all(char::is_lowercase)
                && !STREET_TYPES.contains(&w)
                && crate::gazetteer::common_words_only(w, "en")
        })
}

/// A span the tagger carries over a line break ends at the break where a rule found a phone
/// number, e-mail address or other identifier beginning on the next line inside it: a
/// signature's address line, then its phone ("…, 08008 Barcelona\n93 487 65 43" is no
/// street running on into "93").
fn cut_before_identifiers(text: &str, rules: &[Finding], tagged: &mut [Finding]) {
    for f in tagged.iter_mut() {
        let first = rules
            .iter()
            .filter(|r| {
                !matches!(
                    r.entity_type,
                    "PERSON"
                        | "LOCATION"
                        | "STREET_ADDRESS"
                        | "ZIP_CODE"
                        | "ORGANIZATION"
                        | "TITLE"
                ) && r.entity_type != f.entity_type
                    && f.start < r.start
                    && r.start < f.end
            })
            .map(|r| r.start)
            .min();
        if let Some(at) = first
            && let Some(line) = text[f.start..at].rfind('\n')
        {
            f.end = f.start + text[f.start..f.start + line].trim_end().len();
        }
    }
}

/// A place the gazetteer knows whole, of which the tagger found a part ("Den Haag" where it
/// found "Haag", "Alcalá de Henares" where it found "Alcalá", "San Sebastián" where it read
/// "Sebastián" as a name): the span grows, by up to three words either way on its line, to
/// the longest known place, which it then is. It stops at the spans beside it.
fn known_places_whole(text: &str, spans: &mut [Finding]) {
    const MOST: usize = 3;
    for i in 0..spans.len() {
        if !matches!(spans[i].entity_type, "PERSON" | "LOCATION") {
            continue;
        }
        let low = if i > 0 { spans[i - 1].end } else { 0 };
        let high = spans.get(i + 1).map_or(text.len(), |n| n.start);
        let (start, end) = (spans[i].start, spans[i].end);
        let word = |c: char| c.is_alphabetic() || matches!(c, '\'' | '’' | '-' | '.');
        let mut starts = vec![start];
        let mut at = start;
        while starts.len() <= MOST && text[low..at].ends_with(' ') {
            let head = text[low..at - 1].trim_end_matches(word);
            let begin = low + head.len();
            if begin == at - 1 {
                break;
            }
            starts.push(begin);
            at = begin;
        }
        let mut ends = vec![end];
        let mut at = end;
        while ends.len() <= MOST && text[at..high].starts_with(' ') {
            let tail = text[at + 1..high].trim_start_matches(word);
            let finish = high - tail.len();
            if finish == at + 1 {
                break;
            }
            ends.push(finish);
            at = finish;
        }
        let best = starts
            .iter()
            .flat_map(|&s| ends.iter().map(move |&e| (s, e)))
            .filter(|&(s, e)| (s, e) != (start, end))
            .filter(|&(s, e)| crate::gazetteer::is_place(text[s..e].trim_end_matches('.')))
            .max_by_key(|&(s, e)| e - s);
        if let Some((s, e)) = best {
            let f = &mut spans[i];
            f.start = s;
            f.end = s + text[s..e].trim_end_matches('.').len();
            f.entity_type = "LOCATION";
        }
    }
}

/// Words that join two addresses ("from 14 Harrow Lane, Leeds LS6 2QP to Flat 3, 27
/// Victoria Road, …", "von Hauptstr. 7 nach Ringstr. 9").
const ADDRESS_JOINS: &[&str] = &[
    " to ", " and ", " or ", " nach ", " und ", " oder ", " naar ", " en ", " of ", " vers ",
    " et ", " ou ", " à ", " a ", " y ", " o ",
];

/// Where a street address the tagger proposes runs on: two addresses joined by a word are
/// two (the part before ends in a number or postcode, the part after has a number and a
/// word: "Hauptstraße 5 und 7" stays one, so does "…, bât. 3 à 75011 Paris"); and an address ends before a part after a
/// comma that opens with three lower-case ordinary words ("ticket 44817, the engineer
/// never showed up on Tuesday the 14th").
fn streets_apart(text: &str, spans: &mut Vec<Finding>, language: &str) {
    let mut more = Vec::new();
    for f in spans
        .iter_mut()
        .filter(|f| f.entity_type == "STREET_ADDRESS")
    {
        let mut at = 0;
        for part in text[f.start..f.end].split(',') {
            let opens_prose = at > 0 && {
                let words: Vec<&str> = part.split_whitespace().take(3).collect();
                words.len() == 3
                    && words.iter().all(|w| {
                        w.chars().all(char::is_lowercase)
                            && crate::gazetteer::common_words_only(w, language)
                    })
            };
            if opens_prose {
                f.end = f.start + text[f.start..f.start + at - 1].trim_end().len();
                break;
            }
            at += part.len() + 1;
        }
        loop {
            let span = &text[f.start..f.end];
            let Some((cut, join)) = ADDRESS_JOINS
                .iter()
                .filter_map(|j| span.find(j).map(|at| (at, j.len())))
                .filter(|&(at, len)| {
                    let (before, after) = (span[..at].trim_end_matches(','), &span[at + len..]);
                    before.ends_with(|c: char| c.is_alphanumeric())
                        && before
                            .rsplit(' ')
                            .next()
                            .is_some_and(|w| w.contains(|c: char| c.is_ascii_digit()))
                        && after.contains(|c: char| c.is_ascii_digit())
                        // "…, bât. 3 à 75011 Paris": a postcode and its town end the one
                        // address.
                        && (after.bytes().take_while(u8::is_ascii_digit).count() < 4
                            || after.contains(','))
                        && after
                            .split(|c: char| !c.is_alphabetic())
                            .any(|w| w.chars().count() >= 2)
                })
                .min()
            else {
                break;
            };
            more.push(Finding {
                start: f.start + cut + join,
                ..f.clone()
            });
            f.end = f.start + cut;
            // The rest may join a third.
            let last = more.pop().expect("just pushed");
            more.push(std::mem::replace(f, last));
        }
    }
    spans.extend(more);
    spans.sort_by_key(|f| f.start);
}

/// Street addresses the rules read whole where the tagger kept a part ("Lehmannstraße
/// 3/8, 17987 Berlin" where it found "17987 Berlin"): the union; and a name or place inside
/// one is the street's ("4, rue Thibault Gillet" where it found the person). Overlapping
/// streets then merge into one. `streets` are the rules' STREET_ADDRESS findings.
fn whole_streets(streets: &[Finding], kept: &mut Vec<Finding>) {
    if streets.is_empty() {
        return;
    }
    for k in kept.iter_mut() {
        for r in streets {
            let inside = r.start <= k.start && k.end <= r.end && r.end - r.start > k.end - k.start;
            if matches!(k.entity_type, "PERSON" | "LOCATION") && inside {
                k.entity_type = "STREET_ADDRESS";
            }
            if k.entity_type == "STREET_ADDRESS" && r.start < k.end && k.start < r.end {
                k.start = k.start.min(r.start);
                k.end = k.end.max(r.end);
            }
        }
    }
    kept.sort_by_key(|f| f.start);
    let mut merged: Vec<Finding> = Vec::with_capacity(kept.len());
    for f in kept.drain(..) {
        match merged.last_mut() {
            Some(last) if f.start < last.end => {
                // Only streets can have grown into something; a street swallows what it
                // now covers, and keeps the longer reach.
                if last.entity_type == "STREET_ADDRESS" || f.entity_type == "STREET_ADDRESS" {
                    let (start, end) = (last.start.min(f.start), last.end.max(f.end));
                    if last.entity_type != "STREET_ADDRESS" {
                        *last = f;
                    }
                    (last.start, last.end) = (start, end);
                } else {
                    merged.push(f);
                }
            }
            _ => merged.push(f),
        }
    }
    *kept = merged;
}

/// A title right before a name becomes part of the name's span ("Mr Smith" is one PERSON,
/// scrubbed as one): our customer-service templates label the name with its title as no
/// separate personal data, and a title on its own span was a false one there (a quarter of
/// the English tagger's false spans on its own templates). presidio-evaluator labels a
/// TITLE apart; a title alone ("Dear Sir") stays one.
fn title_into_name(text: &str, findings: &mut Vec<Finding>) {
    let mut i = 0;
    while i + 1 < findings.len() {
        let (title, name) = (&findings[i], &findings[i + 1]);
        let gap = text.get(title.end..name.start).unwrap_or("x");
        if title.entity_type == "TITLE"
            && name.entity_type == "PERSON"
            && gap.len() <= 2
            && gap.chars().all(|c| c == ' ' || c == '.')
        {
            findings[i + 1].start = findings[i].start;
            findings.remove(i);
        } else {
            i += 1;
        }
    }
}

/// Whether a span the tagger proposes has the least an entity of its type must have:
/// a phone number 6 to 20 digits (the shortest local numbers have 6, E.164 allows 15, an
/// extension adds a few), a street address a number (house, suite or postcode), a name a
/// letter.
fn plausible(ty: &str, text: &str) -> bool {
    let digits = text.bytes().filter(u8::is_ascii_digit).count();
    match ty {
        "PHONE_NUMBER" => (6..=20).contains(&digits),
        // A price is no address ("£3.99 now instead of £2.99").
        "STREET_ADDRESS" => digits > 0 && !text.contains(['£', '€', '$']),
        "PERSON" => digits == 0 && text.chars().any(char::is_alphabetic),
        "LOCATION" | "ORGANIZATION" | "NRP" | "TITLE" => text.chars().any(char::is_alphabetic),
        _ => true,
    }
}

/// Whether `word` (lower case) is one of [`PARTICLES`].
pub(crate) fn is_particle(word: &str) -> bool {
    PARTICLES.contains(&word)
}

/// Lower-case words that belong inside names and places ("Ludwig van Beethoven", "Saint-Jean
/// de la Ruelle", "Frankfurt am Main").
const PARTICLES: &[&str] = &[
    "de", "da", "das", "do", "dos", "del", "della", "di", "du", "des", "la", "le", "les", "van",
    "von", "der", "den", "ter", "ten", "zu", "zum", "zur", "y", "i", "e", "et", "und", "of", "op",
    "in", "t", "sur", "sous", "près", "lès", "am", "im", "an", "bei", "en", "het",
];

/// Honorifics and family words a name follows in German, French, Spanish and Dutch (lower
/// case); these languages' labels leave them out of the name ("Herrn Klotz" is "Klotz",
/// "Familie De Pauw" is "De Pauw").
const HONORIFICS: &[&str] = &[
    "herr",
    "herrn",
    "frau",
    "familie",
    "monsieur",
    "madame",
    "mme",
    "mlle",
    "famille",
    "señor",
    "señora",
    "sr",
    "sra",
    "srta",
    "familia",
    "meneer",
    "mevrouw",
    "mevr",
    "dhr",
    "heer",
    "ondergetekende",
];

/// Where a tagger span should end, in text that is not all lower case: a name or a place
/// ends before its first lower-case word that is no particle; a street address ends before
/// the first lower-case word after its last number, past which only the town can follow;
/// none runs past the end of a sentence; and none ends on a particle or punctuation
/// ("Valencia y", "Chur,").
/// (Without this a span runs on into the sentence after a name the templates never put
/// there: "Horgen und der Speedtest zeigt …".)
fn trimmed_end(text: &str, tokens: &[Token], f: &Finding) -> usize {
    let inside: Vec<&Token> = tokens
        .iter()
        .filter(|t| t.start >= f.start && t.end <= f.end)
        .collect();
    let lower_word = |t: &Token| {
        let w = &text[t.start..t.end];
        w.chars().next().is_some_and(char::is_lowercase) && !PARTICLES.contains(&w)
    };
    let from = match f.entity_type {
        "PERSON" | "LOCATION" => 1,
        "STREET_ADDRESS" => match inside
            .iter()
            .rposition(|t| text[t.start..t.end].bytes().any(|b| b.is_ascii_digit()))
        {
            Some(last_number) => last_number + 1,
            None => return f.end,
        },
        _ => return f.end,
    };
    // A sentence ends inside the span: "… 69003 Lyon. La box …" (not "J. Smith", "Str. 5").
    let sentence_end = |i: usize| {
        let word = |k: usize| inside.get(k).map_or("", |t| &text[t.start..t.end]);
        matches!(word(i), "." | "!" | "?")
            && i > 0
            && word(i - 1).chars().filter(|c| c.is_alphabetic()).count() >= 3
            && word(i + 1).chars().next().is_some_and(char::is_uppercase)
    };
    let cut = (from..inside.len())
        .position(|i| lower_word(inside[i]) || sentence_end(i))
        .unwrap_or(inside.len() - from);
    // End at the last token before the cut that is no punctuation and no particle.
    inside[..from + cut]
        .iter()
        .rev()
        .find(|t| {
            let w = &text[t.start..t.end];
            w.chars().any(char::is_alphanumeric) && !PARTICLES.contains(&w)
        })
        .map_or(f.end, |t| t.end)
}

/// Whether `line` begins with a form field's label: a few words, then a colon ("PLZ: …",
/// "Código postal: …", "Date de naissance : …").
fn is_label_line(line: &str) -> bool {
    let Some(colon) = line.find(':') else {
        return false;
    };
    let label = &line[..colon];
    label.chars().count() <= 32
        && label.chars().any(char::is_alphabetic)
        && label
            .chars()
            .all(|c| c.is_alphabetic() || matches!(c, ' ' | '.' | '/' | '-' | '\''))
}

/// `f`'s span without the words of `language`'s common vocabulary (that the gazetteer
/// does not know as names or places) at its start and end; unchanged when nothing else
/// would be left.
fn without_common_edges(
    text: &str,
    tokens: &[Token],
    f: &Finding,
    language: &str,
) -> (usize, usize) {
    let words: Vec<&Token> = tokens
        .iter()
        .filter(|t| t.start >= f.start && t.end <= f.end)
        .filter(|t| text[t.start..t.end].chars().any(char::is_alphanumeric))
        .collect();
    let common = |t: &&Token| {
        let w = &text[t.start..t.end];
        w.chars().all(char::is_alphabetic) && crate::gazetteer::common_words_only(w, language)
    };
    match (
        words.iter().position(|t| !common(t)),
        words.iter().rposition(|t| !common(t)),
    ) {
        (Some(first), Some(last)) => (words[first].start, words[last].end),
        _ => (f.start, f.end),
    }
}

/// Words after which a capitalised word is a place, not a person, in each language's
/// customer messages ("Saludos desde Burriana", "Grüße aus Halver", "Ik woon nu in Uden").
fn place_cues(language: &str) -> &'static [&'static str] {
    match language {
        "de" => &["aus", "nach", "in"],
        "fr" => &["depuis"],
        "es" => &["desde", "en"],
        "nl" => &["uit", "in", "te"],
        _ => &[],
    }
}

/// Whether a hyphenated word is a town's name by its form: "Saint-Leu", "Sint-Niklaas",
/// "Sankt-Johann", "Aulnay-sous-Bois", "L'Haÿ-les-Roses", "Châlons-en-Champagne".
fn town_shaped(word: &str) -> bool {
    let lower = word.to_lowercase();
    ["saint-", "sainte-", "st-", "ste-", "sint-", "sankt-"]
        .iter()
        .any(|p| lower.starts_with(p))
        || [
            "-sur-", "-sous-", "-lès-", "-les-", "-la-", "-le-", "-en-", "-aux-",
        ]
        .iter()
        .any(|i| lower.contains(i))
}

/// Names and places as whole words, outside English (decoding only, the same weights):
/// - one ends before an opening bracket ("in Leusden (Dekamarkt)" is the town);
/// - one begins at its first capitalised word, or at the particles right before it, in
///   text that is not all lower case ("de buren van mevrouw Groote" is "Groote", "de heer
///   van Boven" is "van Boven");
/// - one covers the whole of a hyphenated word ("Saint-Leu", not "Leu"; "L'Haÿ-les-Roses",
///   not "L'Haÿ"), and a hyphenated word shaped like a town ([`town_shaped`]) is a place;
/// - a "name" right after a word that only places follow ([`place_cues`]) is a place.
///
/// Overlaps this makes keep the earlier span.
fn names_and_places_whole(text: &str, tokens: &[Token], spans: &mut Vec<Finding>, language: &str) {
    let cased = text.chars().any(char::is_uppercase);
    let letter = |c: char| c.is_alphabetic();
    let mut places = Vec::new();
    for f in spans.iter_mut() {
        if !matches!(f.entity_type, "PERSON" | "LOCATION") {
            continue;
        }
        if let Some(at) = text[f.start..f.end].find('(') {
            f.end = f.start + text[f.start..f.start + at].trim_end().len();
        }
        if cased {
            let inside: Vec<&Token> = tokens
                .iter()
                .filter(|t| t.start >= f.start && t.end <= f.end)
                .collect();
            let word = |t: &Token| &text[t.start..t.end];
            if let Some(first) = inside
                .iter()
                .position(|t| word(t).chars().next().is_some_and(char::is_uppercase))
            {
                let mut begin = first;
                while begin > 0 && is_particle(word(inside[begin - 1])) {
                    begin -= 1;
                }
                // An honorific first, a capitalised word after it: the name is that word.
                let name = inside[begin + 1..]
                    .iter()
                    .position(|t| word(t).chars().next().is_some_and(char::is_alphabetic));
                if HONORIFICS.contains(&word(inside[begin]).to_lowercase().as_str())
                    && let Some(next) = name
                {
                    begin += 1 + next;
                }
                f.start = inside[begin].start.max(f.start);
            }
        }
        // The whole hyphenated word.
        loop {
            let before = &text[..f.start];
            let mut chars = before.chars().rev();
            match (chars.next(), chars.next()) {
                (Some('-'), Some(c)) if letter(c) => {
                    let head = before[..before.len() - 1].trim_end_matches(letter);
                    f.start = head.len();
                }
                // "L'Haÿ", "d'Ornon": an elided article joins the word after it.
                (Some(apostrophe @ ('\'' | '’')), Some(c)) if letter(c) => {
                    let stem = &before[..before.len() - apostrophe.len_utf8()];
                    let head = stem.trim_end_matches(letter);
                    if stem[head.len()..].chars().count() > 2 {
                        break;
                    }
                    f.start = head.len();
                }
                _ => break,
            }
        }
        loop {
            let rest = &text[f.end..];
            let last = text[..f.end]
                .chars()
                .rev()
                .take_while(|&c| letter(c))
                .count();
            let after = match rest.chars().next() {
                Some('-') => &rest[1..],
                Some(c @ ('\'' | '’')) if (1..=2).contains(&last) => &rest[c.len_utf8()..],
                _ => break,
            };
            if !after.starts_with(letter) {
                break;
            }
            f.end = text.len() - after.trim_start_matches(letter).len();
        }
        // "Marthe de Saint-Cyr-l'École": the person, then the town she writes from.
        let span = &text[f.start..f.end];
        let last_word = span.rsplit(' ').next().unwrap_or(span);
        if f.entity_type == "PERSON" && last_word.contains('-') && town_shaped(last_word) {
            let town = f.end - last_word.len();
            let person_end = span[..town - f.start]
                .trim_end()
                .strip_suffix(" de")
                .or_else(|| span[..town - f.start].trim_end().strip_suffix(" du"))
                .map(|p| f.start + p.trim_end().len());
            match person_end {
                Some(end) if end > f.start => {
                    places.push(Finding {
                        entity_type: "LOCATION",
                        start: town,
                        ..f.clone()
                    });
                    f.end = end;
                }
                _ if town == f.start => f.entity_type = "LOCATION",
                _ => {}
            }
        }
        let previous = text[..f.start]
            .trim_end()
            .rsplit(|c: char| !c.is_alphabetic())
            .next()
            .unwrap_or("")
            .to_lowercase();
        if f.entity_type == "PERSON" && place_cues(language).contains(&previous.as_str()) {
            f.entity_type = "LOCATION";
        }
    }
    spans.extend(places);
    spans.retain(|f| f.end > f.start);
    spans.sort_by_key(|f| f.start);
    let mut kept: Vec<Finding> = Vec::with_capacity(spans.len());
    for f in spans.drain(..) {
        if kept.last().is_none_or(|k| k.end <= f.start) {
            kept.push(f);
        }
    }
    *spans = kept;
}

fn allowed(prev: u16, tag: u16) -> bool {
    // I-k (tag 2 + 2k) only continues B-k or I-k.
    if tag == 0 || tag % 2 == 1 {
        return true;
    }
    prev != 0 && (prev - 1) / 2 == (tag - 2) / 2
}

impl Model {
    /// The tag count: O, then B and I per type.
    fn tags(&self) -> usize {
        1 + 2 * self.types.len()
    }

    fn add_scores(&self, features: &[u64], scores: &mut [f32]) {
        for f in features {
            if let Some(&(at, n)) = self.index.get(f) {
                for &(tag, w) in &self.weights[at as usize..at as usize + n as usize] {
                    scores[tag as usize] += w;
                }
            }
        }
    }

    /// Entity findings in `text` (byte offsets), given the rule recognizers' findings.
    pub fn tag(&self, text: &str, rules: &[Finding]) -> Vec<Finding> {
        let tokens = tokenize(text);
        let v = views(text, &tokens, rules, self.language);
        let n_tags = self.tags();
        let mut features = Vec::with_capacity(48);
        let mut scores = vec![0f32; n_tags];
        let mut tags: Vec<(u16, f32)> = Vec::with_capacity(tokens.len());
        for i in 0..tokens.len() {
            static_features(&v, i, &mut features);
            let prev = if i > 0 { tags[i - 1].0 } else { 0 };
            let prev2 = if i > 1 { tags[i - 2].0 } else { 0 };
            tag_features(&v[i], prev, prev2, &mut features);
            scores.iter_mut().for_each(|s| *s = 0.0);
            self.add_scores(&features, &mut scores);
            let (best, prob) = self.pick(prev, &mut scores);
            tags.push((best, prob));
        }
        let mut spans = self.spans(&tokens, &tags);
        // A name, place or company ends at a line break: what follows is the next line of
        // a signature or a form ("Lioba\nNachname: …").
        for f in &mut spans {
            if matches!(f.entity_type, "PERSON" | "LOCATION" | "ORGANIZATION")
                && let Some(at) = text[f.start..f.end].find('\n')
            {
                f.end = f.start + text[f.start..f.start + at].trim_end().len();
            }
        }
        // Nor does anything run on into a form's next field ("Calle Mayor 8\nCódigo postal:
        // 33777" ends at "8").
        for f in &mut spans {
            let span = &text[f.start..f.end];
            // The label may go on past the span ("…Dresden\nTel" of "Tel.: 0351").
            if let Some((at, _)) = span
                .match_indices('\n')
                .find(|(at, _)| is_label_line(&text[f.start + at + 1..]))
            {
                f.end = f.start + span[..at].trim_end().len();
            }
        }
        streets_apart(text, &mut spans, self.language);
        spans.retain(|f| f.end > f.start);
        // "Anna aus Graz", "Jan uit Ede": a name, then where the person is from (not "de":
        // "Maarten de Vries").
        let mut places = Vec::new();
        for f in spans.iter_mut().filter(|f| f.entity_type == "PERSON") {
            let span = &text[f.start..f.end];
            for from in [" aus ", " uit ", " from "] {
                if let Some(at) = span.rfind(from)
                    && crate::gazetteer::place_only(&span[at + from.len()..])
                {
                    places.push(Finding {
                        entity_type: "LOCATION",
                        start: f.start + at + from.len(),
                        ..f.clone()
                    });
                    f.end = f.start + at;
                    break;
                }
            }
        }
        spans.extend(places);
        spans.sort_by_key(|f| f.start);
        // Not in English: there the run-ons are rarer and trimming cost recall on the
        // validation templates (combined F2 0.799 → 0.792).
        if self.language != "en" && text.chars().any(char::is_uppercase) {
            for f in &mut spans {
                f.end = trimmed_end(text, &tokens, f);
            }
        }
        spans.retain(|f| plausible(f.entity_type, &text[f.start..f.end]));
        // In text that capitalises, a lower-case "name" right after an article is a noun ("le
        // lien renvoie": "Lien" is also a first name).
        if text.chars().any(char::is_uppercase) {
            spans.retain(|f| {
                f.entity_type != "PERSON"
                    || text[f.start..f.end].chars().any(char::is_uppercase)
                    || !after_article(text, f.start)
            });
        }
        // The taggers of the other languages learned from a hundred templates each: a
        // capitalised word they never saw in context reads to them as a name. One made of
        // the language's ordinary words only is not one.
        // Nor is a number alone an address ("2015", "2,99 €"); presidio-evaluator's English
        // labels a building number or a postcode on its own line as one, so English keeps them.
        // Nor does a name begin or end with one: German capitalises its nouns, and "Nachbar
        // Stöger", "Clarissa Bescheid" are a name beside a word.
        if self.language != "en" {
            for f in &mut spans {
                if matches!(f.entity_type, "PERSON" | "LOCATION") {
                    (f.start, f.end) = without_common_edges(text, &tokens, f, self.language);
                } else if f.entity_type == "STREET_ADDRESS" {
                    f.end = street_end(text, f);
                }
            }
            spans.retain(|f| {
                let span = &text[f.start..f.end];
                match f.entity_type {
                    "PERSON" | "LOCATION" => {
                        !crate::gazetteer::common_words_only(span, self.language)
                    }
                    "STREET_ADDRESS" => span
                        .split(|c: char| !c.is_alphabetic())
                        .any(|w| w.chars().count() >= 2),
                    // An honorific alone ("Frau", "Mme", "Sra.") is no personal data in our
                    // templates; these taggers learned the type from the English sentences
                    // mixed in, and found it in every "Frau Textor" (the name is a PERSON).
                    "TITLE" => false,
                    _ => true,
                }
            });
        } else {
            // In English too a name or place of ordinary words only ("Callback",
            // "Unbelievable", "Premium" at the start of a message) is none; a word the
            // gazetteer knows as a name or place ("Wood", "Bailey") is not ordinary.
            spans.retain(|f| {
                !matches!(f.entity_type, "PERSON" | "LOCATION")
                    || !crate::gazetteer::common_words_only(&text[f.start..f.end], "en")
            });
            // Nor is a number among lower-case ordinary words an address ("she is 84 and
            // not the account holder"), unless a word says street ("12 oak road").
            spans.retain(|f| {
                f.entity_type != "STREET_ADDRESS" || !prose_number(&text[f.start..f.end])
            });
        }
        // What the context suggests against what the gazetteer knows: a "name" it knows
        // only as a place ("hear that Estonia is moving …") is the place, a "place" whose
        // every word it knows only as a name is the person.
        for f in &mut spans {
            let span = &text[f.start..f.end];
            if f.entity_type == "PERSON" && crate::gazetteer::place_only(span) {
                f.entity_type = "LOCATION";
            } else if f.entity_type == "LOCATION" && crate::gazetteer::name_only(span) {
                f.entity_type = "PERSON";
            }
        }
        if self.language != "en" {
            names_and_places_whole(text, &tokens, &mut spans, self.language);
        }
        known_places_whole(text, &mut spans);
        spans
    }

    /// The best allowed tag and its softmax probability among the allowed tags.
    fn pick(&self, prev: u16, scores: &mut [f32]) -> (u16, f32) {
        if self.entity_bias != 0.0 {
            scores
                .iter_mut()
                .skip(1)
                .step_by(2)
                .for_each(|s| *s += self.entity_bias);
        }
        let mut best = 0u16;
        let mut best_score = f32::NEG_INFINITY;
        for (t, &s) in scores.iter().enumerate() {
            let t = t as u16;
            if allowed(prev, t) && s > best_score {
                best = t;
                best_score = s;
            }
        }
        let temperature = self.temperature.max(1e-3);
        let mut z = 0f32;
        for (t, &s) in scores.iter().enumerate() {
            if allowed(prev, t as u16) {
                z += ((s - best_score) / temperature).exp();
            }
        }
        (best, 1.0 / z)
    }

    fn spans(&self, tokens: &[Token], tags: &[(u16, f32)]) -> Vec<Finding> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < tags.len() {
            let (tag, _) = tags[i];
            if tag == 0 || tag % 2 == 0 {
                i += 1;
                continue;
            }
            let ty = (tag - 1) / 2;
            let mut j = i + 1;
            while j < tags.len() && tags[j].0 == ty * 2 + 2 {
                j += 1;
            }
            let score = tags[i..j].iter().map(|t| t.1).sum::<f32>() / (j - i) as f32;
            out.push(Finding {
                entity_type: self.types[ty as usize],
                start: tokens[i].start,
                end: tokens[j - 1].end,
                score: f64::from(score),
                recognizer: "tagger",
            });
            i = j;
        }
        out
    }

    /// The findings in `text`: the rules' own for [`Model::rule_types`] and validated
    /// identifiers, the tagger's for the other types, then confident rule findings where
    /// neither found anything.
    /// `rules` are the rule recognizers' findings on `text` (overlaps resolved).
    pub fn detect(&self, text: &str, rules: Vec<Finding>) -> Vec<Finding> {
        let mut tagged = self.tag(text, &rules);
        cut_before_named_people(text, &rules, &mut tagged);
        cut_before_identifiers(text, &rules, &mut tagged);
        tagged.retain(|f| f.end > f.start && !document_number(text, f) && !in_menu_path(text, f));
        let rule_streets: Vec<Finding> = if self.language == "en" {
            Vec::new()
        } else {
            rules
                .iter()
                .filter(|f| f.entity_type == "STREET_ADDRESS")
                .cloned()
                .collect()
        };
        let disjoint = |kept: &[Finding], f: &Finding| {
            kept.iter().all(|k| f.end <= k.start || f.start >= k.end)
        };
        // Validated identifiers (a Luhn-valid card, a mod-97 IBAN, a parsed IP, an email)
        // are near-certain whatever the words around them: they come first.
        let (mut kept, rest): (Vec<Finding>, Vec<Finding>) = rules
            .into_iter()
            .partition(|f| self.rule_types.contains(&f.entity_type) || f.score >= VALIDATED_SCORE);
        for f in tagged {
            if !self.rule_types.contains(&f.entity_type) && disjoint(&kept, &f) {
                kept.push(f);
            }
        }
        for f in rest {
            if f.score >= self.fallback_score
                && disjoint(&kept, &f)
                && !document_number(text, &f)
                && !in_menu_path(text, &f)
            {
                kept.push(f);
            }
        }
        kept.sort_by_key(|f| f.start);
        whole_streets(&rule_streets, &mut kept);
        // A form's label before its colon is no name or town ("Ville : Loos", "PLZ/Ort:
        // …"), whether the tagger or a gazetteer read it so.
        kept.retain(|f| {
            !(matches!(f.entity_type, "PERSON" | "LOCATION")
                && crate::recognizers::label_follows(&text[f.end..])
                && crate::recognizers::is_form_label(&text[f.start..f.end]))
        });
        if self.language == "en" {
            title_into_name(text, &mut kept);
        } else {
            // An honorific alone is no personal data in these languages' templates (see
            // `tag`); the title rule's findings ("Mme", "Sra.") are dropped as the
            // tagger's are.
            kept.retain(|f| f.entity_type != "TITLE");
        }
        crate::checks::apply(text, self.language, &mut kept);
        kept
    }

    /// Serializes the model (a small header, then the sparse weight table).
    pub fn write(&self, out: &mut impl Write) -> std::io::Result<()> {
        let header = serde_json::json!({
            "types": self.types,
            "temperature": self.temperature,
            "entity_bias": self.entity_bias,
            "rule_types": self.rule_types,
            "fallback_score": self.fallback_score,
            "meta": self.meta,
            "language": self.language,
        });
        let header = serde_json::to_vec(&header).map_err(std::io::Error::other)?;
        out.write_all(MAGIC)?;
        out.write_all(&(header.len() as u32).to_le_bytes())?;
        out.write_all(&header)?;
        let mut keys: Vec<(&u64, &(u32, u16))> = self.index.iter().collect();
        keys.sort_by_key(|(k, _)| **k);
        out.write_all(&(keys.len() as u32).to_le_bytes())?;
        for (key, &(at, n)) in keys {
            out.write_all(&key.to_le_bytes())?;
            out.write_all(&[n as u8])?;
            for &(tag, w) in &self.weights[at as usize..at as usize + n as usize] {
                out.write_all(&[tag as u8])?;
                // Half precision would do; f32 keeps training and loading symmetric.
                out.write_all(&w.to_le_bytes())?;
            }
        }
        Ok(())
    }

    /// Reads a model written by [`Model::write`].
    pub fn read(input: &mut impl Read) -> Result<Self, String> {
        let mut bytes = Vec::new();
        input
            .read_to_end(&mut bytes)
            .map_err(|e| format!("reading the tagger model: {e}"))?;
        Self::from_bytes(&bytes)
    }

    /// Parses a model from its bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        let mut r = Cursor { bytes, at: 0 };
        if r.take(MAGIC.len())? != MAGIC {
            return Err("not a tagger model (bad magic)".into());
        }
        let header_len = u32::from_le_bytes(r.array()?) as usize;
        let header: serde_json::Value = serde_json::from_slice(r.take(header_len)?)
            .map_err(|e| format!("tagger model header: {e}"))?;
        let type_list = |field: &str| {
            header[field]
                .as_array()
                .ok_or_else(|| format!("tagger model header has no {field}"))?
                .iter()
                .map(|t| {
                    entity_type(t.as_str().unwrap_or_default())
                        .ok_or_else(|| format!("tagger model has an unknown entity type {t}"))
                })
                .collect::<Result<Vec<_>, _>>()
        };
        let types = type_list("types")?;
        let rule_types = type_list("rule_types")?;
        let n = u32::from_le_bytes(r.array()?) as usize;
        let mut index = HashMap::with_capacity_and_hasher(n, BuildFnv);
        let mut weights = Vec::with_capacity(n * 2);
        let tags = 1 + 2 * types.len();
        for _ in 0..n {
            let key = u64::from_le_bytes(r.array()?);
            let count = r.take(1)?[0];
            let at = weights.len() as u32;
            for _ in 0..count {
                let tag = u16::from(r.take(1)?[0]);
                let w = f32::from_le_bytes(r.array()?);
                if usize::from(tag) >= tags {
                    return Err(format!("tagger model weight for tag {tag} of {tags}"));
                }
                weights.push((tag, w));
            }
            index.insert(key, (at, u16::from(count)));
        }
        if r.at != bytes.len() {
            return Err("tagger model has trailing bytes".into());
        }
        Ok(Self {
            types,
            index,
            weights,
            temperature: header["temperature"].as_f64().unwrap_or(1.0) as f32,
            entity_bias: header["entity_bias"].as_f64().unwrap_or(0.0) as f32,
            rule_types,
            fallback_score: header["fallback_score"]
                .as_f64()
                .unwrap_or(DEFAULT_FALLBACK_SCORE),
            meta: header["meta"].clone(),
            language: match header["language"].as_str().unwrap_or("en") {
                "de" => "de",
                "fr" => "fr",
                "es" => "es",
                "nl" => "nl",
                _ => "en",
            },
        })
    }

    /// How many features carry weights.
    pub fn features(&self) -> usize {
        self.index.len()
    }
}

struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.at + n;
        let s = self
            .bytes
            .get(self.at..end)
            .ok_or("tagger model is truncated")?;
        self.at = end;
        Ok(s)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A finding over the first occurrence of `part` in `text`.
    fn finding(
        text: &str,
        part: &str,
        entity_type: &'static str,
        recognizer: &'static str,
    ) -> Finding {
        let start = text.find(part).expect("in the text");
        Finding {
            entity_type,
            start,
            end: start + part.len(),
            score: 0.85,
            recognizer,
        }
    }

    #[test]
    fn names_and_places_are_whole_words_and_places_follow_their_cues() {
        let run = |text: &str, language: &str, spans: &[(&str, &'static str)]| {
            let mut found: Vec<Finding> = spans
                .iter()
                .map(|&(part, entity_type)| finding(text, part, entity_type, "tagger"))
                .collect();
            names_and_places_whole(text, &tokenize(text), &mut found, language);
            found
                .iter()
                .map(|f| (text[f.start..f.end].to_owned(), f.entity_type))
                .collect::<Vec<_>>()
        };
        let one = |part: &str, ty: &'static str| vec![(part.to_owned(), ty)];
        // Whole hyphenated words, and town-shaped ones are places.
        assert_eq!(
            run("Client : 13665, à Saint-Leu.", "fr", &[("Leu", "PERSON")]),
            one("Saint-Leu", "LOCATION")
        );
        assert_eq!(
            run(
                "J'habite à L'Haÿ-les-Roses et …",
                "fr",
                &[("L'Haÿ", "LOCATION")]
            ),
            one("L'Haÿ-les-Roses", "LOCATION")
        );
        assert_eq!(
            run(
                "Frau Müller-Lüdenscheidt rief an",
                "de",
                &[("Müller", "PERSON")]
            ),
            one("Müller-Lüdenscheidt", "PERSON")
        );
        assert_eq!(
            run(
                "Salut, c'est Marthe de Saint-Cyr-l'École. Depuis …",
                "fr",
                &[("Marthe de Saint", "PERSON")]
            ),
            vec![
                ("Marthe".to_owned(), "PERSON"),
                ("Saint-Cyr-l'École".to_owned(), "LOCATION")
            ]
        );
        // A name begins at its first capitalised word or the particles before it, and
        // ends before a bracket.
        assert_eq!(
            run(
                "ook bij de buren van mevrouw Groote.",
                "nl",
                &[("de buren van mevrouw Groote", "PERSON")]
            ),
            one("Groote", "PERSON")
        );
        assert_eq!(
            run(
                "over uw medewerker, de heer van Boven.",
                "nl",
                &[("heer van Boven", "PERSON")]
            ),
            one("van Boven", "PERSON")
        );
        assert_eq!(
            run(
                "über Ihren Mitarbeiter Herrn Klotz einreichen",
                "de",
                &[("Herrn Klotz", "PERSON")]
            ),
            one("Klotz", "PERSON")
        );
        assert_eq!(
            run(
                "De factuur ontbreekt nog. Familie De Pauw",
                "nl",
                &[("Familie De Pauw", "PERSON")]
            ),
            one("De Pauw", "PERSON")
        );
        assert_eq!(
            run(
                "Wij zijn een praktijk in Leusden (Dekamarkt) en …",
                "nl",
                &[("Leusden (Dekamarkt", "LOCATION")]
            ),
            one("Leusden", "LOCATION")
        );
        // After a word only places follow, a "name" is a place; elsewhere it stays a name.
        assert_eq!(
            run(
                "Saludos desde Burriana,\nElisa",
                "es",
                &[("Burriana", "PERSON")]
            ),
            one("Burriana", "LOCATION")
        );
        assert_eq!(
            run("Viele Grüße aus Halver", "de", &[("Halver", "PERSON")]),
            one("Halver", "LOCATION")
        );
        assert_eq!(
            run(
                "Ich habe mit Halver gesprochen",
                "de",
                &[("Halver", "PERSON")]
            ),
            one("Halver", "PERSON")
        );
    }

    #[test]
    fn a_tagged_span_ends_before_a_clause_that_names_somebody_by_role() {
        let text = "Meter 4711, address 64331 Wayne Canyon Apt. 333, tenant Irene Miller";
        let rules = [finding(text, "Irene Miller", "PERSON", "honorific")];
        let mut tagged = [finding(
            text,
            "64331 Wayne Canyon Apt. 333, tenant Irene Miller",
            "STREET_ADDRESS",
            "tagger",
        )];
        cut_before_named_people(text, &rules, &mut tagged);
        assert_eq!(
            &text[tagged[0].start..tagged[0].end],
            "64331 Wayne Canyon Apt. 333"
        );
        // No clause boundary before the name, or a name the tagger found itself: as it was.
        let text = "tenant Irene Miller";
        let rules = [finding(text, "Irene Miller", "PERSON", "honorific")];
        let mut tagged = [finding(
            text,
            "tenant Irene Miller",
            "STREET_ADDRESS",
            "tagger",
        )];
        cut_before_named_people(text, &rules, &mut tagged);
        assert_eq!(tagged[0].end, text.len());
        let mut tagged = [finding(text, "tenant Irene Miller", "PERSON", "tagger")];
        cut_before_named_people(text, &rules, &mut tagged);
        assert_eq!(tagged[0].end, text.len());
    }

    #[test]
    fn tagger_spans_need_what_their_type_must_have() {
        assert!(plausible("PHONE_NUMBER", "66 91 28"));
        assert!(plausible("PHONE_NUMBER", "094-588-6556x7001"));
        assert!(!plausible("PHONE_NUMBER", "356"), "a house number");
        assert!(!plausible("PHONE_NUMBER", "4605-3"), "too short");
        assert!(
            !plausible("PHONE_NUMBER", "123456789012345678901"),
            "too long"
        );
        assert!(plausible("STREET_ADDRESS", "Suite 198"));
        assert!(!plausible(
            "STREET_ADDRESS",
            "Wisdom and Discipline are often"
        ));
        assert!(plausible("PERSON", "Zoë"));
        assert!(!plausible("PERSON", "#15"));
        assert!(!plausible("PERSON", "Giga 100"), "a plan");
        assert!(plausible("DATE_TIME", "2020"));
    }

    #[test]
    fn folds_hold_presidio_and_our_english_templates_never_the_test_fifth() {
        let with = |t| Example {
            text: String::new(),
            spans: Vec::new(),
            template_id: t,
        };
        assert_eq!(fold_of(&with(Some(131))), Some(1));
        assert_eq!(fold_of(&with(Some(204))), Some(4));
        assert_eq!(fold_of(&with(Some(130))), None, "the test split");
        assert_eq!(
            fold_of(&with(Some(OWN_TEMPLATES + 1))),
            None,
            "our older own"
        );
        assert_eq!(fold_of(&with(Some(2003))), Some(3), "data/templates/en.txt");
        assert_eq!(fold_of(&with(Some(2005))), None, "its test fifth");
        assert_eq!(
            fold_of(&with(Some(5003))),
            None,
            "English mixed into another language"
        );
        assert_eq!(fold_of(&with(None)), None);
    }

    #[test]
    fn tokens_split_words_digits_punctuation_and_escaped_breaks() {
        let text = "Helena Carlsen\\n637 Strojírenská, Apt. 5";
        let words: Vec<&str> = tokenize(text)
            .iter()
            .map(|t| &text[t.start..t.end])
            .collect();
        assert_eq!(
            words,
            [
                "Helena",
                "Carlsen",
                "\\n",
                "637",
                "Strojírenská",
                ",",
                "Apt",
                ".",
                "5"
            ]
        );
        assert_eq!(shape("Carlsen"), "Xxx");
        assert_eq!(shape("06-82237745"), "dd-dd");
    }

    #[test]
    fn char_spans_become_byte_spans_and_bad_spans_are_named() {
        let e = Example::from_chars(
            "Søren lives in Århus".into(),
            &[("PERSON".into(), 0, 5), ("LOCATION".into(), 15, 20)],
            None,
        )
        .expect("valid");
        assert_eq!(&e.text[e.spans[0].1..e.spans[0].2], "Søren");
        assert_eq!(&e.text[e.spans[1].1..e.spans[1].2], "Århus");
        assert!(
            Example::from_chars("x".into(), &[("PET".into(), 0, 1)], None)
                .unwrap_err()
                .contains("PET")
        );
        assert!(Example::from_chars("x".into(), &[("PERSON".into(), 0, 9)], None).is_err());
    }

    #[test]
    fn a_lower_cased_copy_keeps_its_spans_on_the_same_words() {
        // "İ" is two bytes and lower-cases to three ("i" and a combining dot): what
        // follows it moves by one byte.
        let e = Example::from_chars(
            "İlkay Gündoğan, Mühlenweg 4, Dortmund".into(),
            &[("PERSON".into(), 0, 14), ("STREET_ADDRESS".into(), 16, 37)],
            Some(7),
        )
        .expect("valid");
        let low = e.lower_cased().expect("the text has capitals");
        assert_eq!(low.text, "i\u{307}lkay gündoğan, mühlenweg 4, dortmund");
        assert_eq!(low.template_id, Some(7));
        let spans: Vec<(&str, &str)> = low
            .spans
            .iter()
            .map(|&(ty, s, e)| (ty, &low.text[s..e]))
            .collect();
        assert_eq!(
            spans,
            [
                ("PERSON", "i\u{307}lkay gündoğan"),
                ("STREET_ADDRESS", "mühlenweg 4, dortmund")
            ]
        );
        assert!(low.lower_cased().is_none(), "already lower case");
    }

    #[test]
    fn lower_case_copies_are_drawn_with_the_seed_and_only_of_capitalised_sentences() {
        let mut examples = tiny();
        examples.push(Example::from_chars("call me later".into(), &[], None).expect("valid"));
        let with = |p: f64, seed: u64| {
            let options = TrainOptions {
                lower_case_copies: p,
                seed,
                ..TrainOptions::default()
            };
            train::lower_case_copies(&examples, &options)
        };
        assert!(with(0.0, 7).is_empty());
        let all = with(1.0, 7);
        assert_eq!(
            all.len(),
            examples.len() - 1,
            "the lower-case sentence is not copied"
        );
        assert!(all.iter().all(|e| e.text == e.text.to_lowercase()));
        let some: Vec<String> = with(0.5, 7).into_iter().map(|e| e.text).collect();
        assert!(
            !some.is_empty() && some.len() < all.len(),
            "{} of {}",
            some.len(),
            all.len()
        );
        let again: Vec<String> = with(0.5, 7).into_iter().map(|e| e.text).collect();
        assert_eq!(some, again, "the same seed draws the same copies");
    }

    fn tiny() -> Vec<Example> {
        let names = ["Anna", "Lukas", "Mette", "Oskar", "Priya", "Tomás"];
        let places = ["Oslo", "Lyon", "Graz", "Porto", "Cork", "Turku"];
        let mut out = Vec::new();
        for (i, n) in names.iter().enumerate() {
            for p in places.iter().skip(i % 2) {
                let text = format!("yesterday {n} moved to {p} with the cat");
                let ns = text.find(n).expect("name");
                let ps = text.find(p).expect("place");
                out.push(Example {
                    spans: vec![("PERSON", ns, ns + n.len()), ("LOCATION", ps, ps + p.len())],
                    text,
                    template_id: None,
                });
            }
        }
        out
    }

    #[test]
    fn it_learns_from_context_and_round_trips_through_bytes() {
        let model = train(
            &tiny(),
            &|_| Vec::new(),
            &TrainOptions::default(),
            &mut |_| {},
        );
        let text = "yesterday Zora moved to Quito with the cat";
        let found: Vec<(&str, &str)> = model
            .tag(text, &[])
            .iter()
            .map(|f| (f.entity_type, &text[f.start..f.end]))
            .collect();
        assert_eq!(found, [("PERSON", "Zora"), ("LOCATION", "Quito")]);
        let mut bytes = Vec::new();
        model.write(&mut bytes).expect("writes");
        let back = Model::from_bytes(&bytes).expect("reads");
        assert_eq!(back.tag(text, &[]), model.tag(text, &[]));
        assert!(Model::from_bytes(&bytes[..bytes.len() - 1]).is_err());
        assert!(Model::from_bytes(b"nonsense").is_err());
    }

    #[test]
    fn a_street_ends_before_a_person_and_takes_the_rules_whole_reading() {
        let finding = |ty: &'static str, start: usize, end: usize| Finding {
            entity_type: ty,
            start,
            end,
            score: 0.9,
            recognizer: "test",
        };
        let end = |text: &str| {
            let end = street_end(text, &finding("STREET_ADDRESS", 0, text.len()));
            text[..end].to_owned()
        };
        assert_eq!(
            end("Kreuselgasse 76, Whg. 9, 1010 Wien, Mieterin Stephan Huhn"),
            "Kreuselgasse 76, Whg. 9, 1010 Wien"
        );
        assert_eq!(
            end("64, chemin de Guillot, locataire Pierre Godard"),
            "64, chemin de Guillot"
        );
        assert_eq!(
            end("rue Duroux 9, bât. D, 95966 Leroux-sur-Fabre"),
            "rue Duroux 9, bât. D, 95966 Leroux-sur-Fabre"
        );
        assert_eq!(
            end("7, rue Victor Hugo, 33000 Bordeaux"),
            "7, rue Victor Hugo, 33000 Bordeaux"
        );
        let text = "wohnhaft lehmannstraße 3/8, 17987 berlin, danke";
        let whole = finding("STREET_ADDRESS", 9, 41);
        let mut kept = vec![finding("PERSON", 9, 23), finding("STREET_ADDRESS", 29, 41)];
        whole_streets(&[whole], &mut kept);
        assert_eq!(kept.len(), 1, "{kept:?}");
        assert_eq!(kept[0].entity_type, "STREET_ADDRESS");
        assert_eq!(
            &text[kept[0].start..kept[0].end],
            "lehmannstraße 3/8, 17987 berlin"
        );
        let text = "j'habite 4, rue Thibault Gillet";
        let mut kept = vec![finding("PERSON", 16, 31)];
        whole_streets(&[finding("STREET_ADDRESS", 9, 31)], &mut kept);
        assert_eq!(kept[0].entity_type, "STREET_ADDRESS");
        assert_eq!(&text[kept[0].start..kept[0].end], "4, rue Thibault Gillet");
    }

    #[test]
    fn two_addresses_are_two_and_an_address_ends_before_prose() {
        let apart = |text: &str, language: &str| {
            let mut spans = vec![finding(text, text, "STREET_ADDRESS", "tagger")];
            streets_apart(text, &mut spans, language);
            spans
                .iter()
                .map(|f| text[f.start..f.end].to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            apart(
                "14 Harrow Lane, Leeds LS6 2QP to Flat 3, 27 Victoria Road, Sheffield S10 2DL",
                "en"
            ),
            [
                "14 Harrow Lane, Leeds LS6 2QP",
                "Flat 3, 27 Victoria Road, Sheffield S10 2DL"
            ]
        );
        assert_eq!(
            apart(
                "Hauptstr. 7 nach Ringstr. 9 und Am Hang 2, 01067 Dresden",
                "de"
            ),
            ["Hauptstr. 7", "Ringstr. 9", "Am Hang 2, 01067 Dresden"]
        );
        for one in [
            "Hauptstraße 5 und 7",
            "12, rue des Lilas, bât. 3 à 75011 Paris",
            "Burgemeester en Wethouderslaan 5",
        ] {
            assert_eq!(apart(one, "de"), [one]);
        }
        assert_eq!(
            apart(
                "44817, the engineer never showed up on Tuesday the 14th",
                "en"
            ),
            ["44817"]
        );
        assert_eq!(
            apart("12 oak road, leeds ls6 2qp", "en"),
            ["12 oak road, leeds ls6 2qp"]
        );
        assert!(prose_number("84 and not"));
        assert!(!prose_number("12 oak road") && !prose_number("44817") && !prose_number("9 Elm"));
        // A signature's address, then its phone on the next line: the address ends at the
        // line break.
        let text = "Carrer de Balmes 132, 08008 Barcelona\n93 487 65 43";
        let mut tagged = vec![finding(
            text,
            "Carrer de Balmes 132, 08008 Barcelona\n93",
            "STREET_ADDRESS",
            "tagger",
        )];
        let phone = finding(text, "93 487 65 43", "PHONE_NUMBER", "phone");
        cut_before_identifiers(text, &[phone], &mut tagged);
        assert_eq!(
            &text[tagged[0].start..tagged[0].end],
            "Carrer de Balmes 132, 08008 Barcelona"
        );
    }

    #[test]
    fn document_numbers_and_menu_paths_are_no_personal_data() {
        let number = |text: &str, part: &str, ty: &'static str| {
            document_number(text, &finding(text, part, ty, "tagger"))
        };
        assert!(number(
            "on Invoice 88213, I only",
            "Invoice 88213",
            "STREET_ADDRESS"
        ));
        assert!(number(
            "Auf der Rechnung 2024-118 stehen",
            "2024-118",
            "PHONE_NUMBER"
        ));
        assert!(number(
            "Op factuur nr. 2024-0912 staan",
            "2024-0912",
            "PHONE_NUMBER"
        ));
        assert!(number(
            "about ticket #44817, the",
            "44817",
            "STREET_ADDRESS"
        ));
        assert!(!number(
            "Call me on 0171 2345678",
            "0171 2345678",
            "PHONE_NUMBER"
        ));
        assert!(!number(
            "phone number 0171 2345678",
            "0171 2345678",
            "PHONE_NUMBER"
        ));
        assert!(!number(
            "Rechnung an Hauptstr. 7",
            "Hauptstr. 7",
            "STREET_ADDRESS"
        ));
        assert!(!number("invoice 88213", "88213", "DATE_TIME"));
        assert!(after_article("le lien renvoie", 3) && after_article("l'appli", 2));
        assert!(!after_article("avec lien", 5) && !after_article("lien", 0));
        let menu =
            |text: &str, part: &str| in_menu_path(text, &finding(text, part, "LOCATION", "tagger"));
        assert!(menu(
            "En Ajustes > Llamadas solo sale",
            "Ajustes > Llamadas"
        ));
        assert!(menu("Settings > Calls > Advanced only", "Calls"));
        assert!(!menu("I live in Leeds, so", "Leeds"));
    }

    #[test]
    fn a_place_the_gazetteer_knows_whole_grows_from_the_part_found() {
        let grown = |text: &str, part: &str, ty: &'static str| {
            let mut spans = vec![finding(text, part, ty, "tagger")];
            known_places_whole(text, &mut spans);
            (
                spans[0].entity_type,
                text[spans[0].start..spans[0].end].to_owned(),
            )
        };
        assert_eq!(
            grown("Wij verhuizen naar Den Haag, kan dat?", "Haag", "LOCATION"),
            ("LOCATION", "Den Haag".into())
        );
        assert_eq!(
            grown("vive en Alcalá de Henares y no", "Alcalá", "LOCATION"),
            ("LOCATION", "Alcalá de Henares".into())
        );
        assert_eq!(
            grown("Ich komme aus Frankfurt am Main.", "Frankfurt", "PERSON"),
            ("LOCATION", "Frankfurt am Main".into())
        );
        // Nothing known to grow into: as found.
        assert_eq!(
            grown("Mein Name ist Anna Schmidt.", "Schmidt", "PERSON"),
            ("PERSON", "Schmidt".into())
        );
    }

    #[test]
    fn an_entity_bias_turns_unsure_words_into_spans_and_is_written_with_the_model() {
        let mut model = train(
            &tiny(),
            &|_| Vec::new(),
            &TrainOptions::default(),
            &mut |_| {},
        );
        // Without a bias the two entities; with a huge one every word begins a span (and
        // those of ordinary English words only are dropped after: "qzxv" and "wkrpt" stay).
        let text = "yesterday Zora moved to Quito with the dog qzxv wkrpt";
        let spans = |m: &Model| m.tag(text, &[]).len();
        let unbiased = spans(&model);
        model.entity_bias = 1e6;
        let biased = model.tag(text, &[]);
        assert!(
            biased.len() > unbiased,
            "a huge bias must start spans where there were none: {biased:?} ({unbiased} unbiased)"
        );
        let mut bytes = Vec::new();
        model.write(&mut bytes).expect("writes");
        let back = Model::from_bytes(&bytes).expect("reads");
        assert_eq!(back.entity_bias, 1e6);
        assert_eq!(back.tag(text, &[]), biased);
    }

    #[test]
    fn span_scores_follow_the_evaluation_rule() {
        let mut s = Scores::default();
        s.add(
            &[("PERSON", 0, 10), ("LOCATION", 20, 30)],
            &[("PERSON", 0, 6), ("LOCATION", 20, 24), ("AGE", 40, 42)],
        );
        // PERSON: IoU 0.6 → hit; LOCATION: IoU 0.4 → miss and a false positive.
        assert_eq!(s.counts["PERSON"], (1, 0, 0));
        assert_eq!(s.counts["LOCATION"], (0, 1, 1));
        assert_eq!(s.counts["AGE"], (0, 1, 0));
        let (p, r, _) = s.prf(None);
        assert!((p - 1.0 / 3.0).abs() < 1e-9 && (r - 0.5).abs() < 1e-9);
    }
}
