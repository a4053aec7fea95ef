//! Last checks on one text's combined findings (tagger, rules and gazetteers), in every
//! language: shapes no served country's data has, numbers that measure something, brand and
//! plan names read as names or places, and a date or an address found in parts.
//!
//! Written from the hand-written messages' dev half (`benches/data/privacy_handwritten.txt`)
//! as kinds of error, not as its words: "Fibre Ultra 900" read as a postcode, "67 Mbps" as
//! an age, "Canal+" as a name, "the Early Termination Fee" as a person, "14 Main Street,
//! Ballincollig, Co. Cork, P31 KX82" as four findings that leave "Ballincollig" in clear.

use crate::recognizers::Finding;

/// Applies every check to `findings` (any order; returned in text order).
pub(crate) fn apply(text: &str, language: &str, findings: &mut Vec<Finding>) {
    findings.retain(|f| {
        let english_phrase = language == "en" && inside_title_case_phrase(text, f);
        !(short_postcode(text, f)
            || measured(text, f)
            || brand(text, f)
            || english_phrase
            || versioned(text, f))
    });
    split_person_from_place(text, findings);
    findings.sort_by_key(|f| f.start);
    digits_only_address_is_a_phone(text, language, findings);
    dates_from_their_weekday(text, findings);
    join_dates(text, findings);
    postcode_with_town(text, language, findings);
    join_address_parts(text, findings);
}

/// A postcode of digits alone with fewer than four: no country the product serves writes
/// one (the shortest are Belgium's, Austria's, Switzerland's and the Netherlands' four).
fn short_postcode(text: &str, f: &Finding) -> bool {
    let span = &text[f.start..f.end];
    f.entity_type == "ZIP_CODE"
        && span.chars().all(|c| c.is_ascii_digit() || c == ' ')
        && span.chars().filter(char::is_ascii_digit).count() < 4
}

/// A street address with a decimal or version number in it ("Firmware 4.2", "iOS 17.4.1",
/// "Tarif 9.99") is none: no served country numbers a house that way.
fn versioned(text: &str, f: &Finding) -> bool {
    f.entity_type == "STREET_ADDRESS"
        && text.as_bytes()[f.start..f.end]
            .windows(3)
            .any(|w| w[0].is_ascii_digit() && w[1] == b'.' && w[2].is_ascii_digit())
}

/// Units of data, speed, money and short durations in the five languages, as written: a
/// number right before one is a quantity ("67 Mbps", "20 GB", "20 Go", "2,99 €", "45
/// Minuten"), not an age, a postcode or a phone number. Case matters where a spelling is
/// also a word ("to", "go", "Ms": "call 0612 345678 to confirm", "0612 345678 Ms Smith").
/// Years, months and days are left out: "67 years" is an age.
const UNITS: &[&str] = &[
    "kb", "KB", "Kb", "mb", "MB", "Mb", "gb", "GB", "Gb", "tb", "TB", "Tb", "kbit", "Kbit", "mbit",
    "Mbit", "MBit", "gbit", "Gbit", "GBit", "kbps", "Kbps", "mbps", "Mbps", "MBps", "gbps", "Gbps",
    "kbit/s", "Kbit/s", "mbit/s", "Mbit/s", "gbit/s", "Gbit/s", "kb/s", "Kb/s", "mb/s", "Mb/s",
    "MB/s", "gb/s", "Gb/s", "GB/s", "Ko", "Mo", "Go", "To", "GHz", "MHz", "ghz", "mhz", "ms", "%",
    "€", "£", "$", "EUR", "eur", "euro", "euros", "Euro", "Euros", "USD", "usd", "GBP", "gbp",
    "pence", "cents", "ct", "min", "mins", "minutes", "minute", "Minuten", "minuten", "minutos",
    "sec", "secs", "seconds", "Sekunden", "secondes", "segundos", "seconden", "gig", "gigs",
    "megs",
];

/// Whether `f` is an age, postcode or phone number of digits only, followed by a unit.
fn measured(text: &str, f: &Finding) -> bool {
    if !matches!(f.entity_type, "AGE" | "ZIP_CODE" | "PHONE_NUMBER")
        || !text[f.start..f.end]
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | ',' | ' '))
    {
        return false;
    }
    let after = text[f.end..].trim_start_matches(' ');
    // "9.99€" has no space; a unit is its own word ("5 Gbps", not "5 Gbpsx").
    let len = after
        .find(|c: char| !(c.is_alphanumeric() || matches!(c, '/' | '%' | '€' | '£' | '$')))
        .unwrap_or(after.len());
    UNITS.contains(&&after[..len])
}

/// Whether a name or place is part of a brand written with a trailing "+" ("Canal+",
/// "Movistar Plus+", "Disney+"): the capitalised words after it on its line end in one.
fn brand(text: &str, f: &Finding) -> bool {
    if !matches!(f.entity_type, "PERSON" | "LOCATION") {
        return false;
    }
    let mut rest = &text[f.end..];
    loop {
        if rest.starts_with('+') {
            return true;
        }
        let Some(next) = rest.strip_prefix(' ') else {
            return false;
        };
        if !next.chars().next().is_some_and(char::is_uppercase) {
            return false;
        }
        rest = next.trim_start_matches(char::is_alphanumeric);
    }
}

/// English only: whether a name or place continues a title-case phrase of ordinary words
/// that begins inside a sentence ("the Early Termination Fee", "the new Account Centre"):
/// the word before it is a capitalised common word, neither a first name nor a function
/// word, with a word before it on its line that does not end a sentence; and the finding's
/// own first word is no first name or surname ("Support Agent Rose", "Agent Patel" stay).
fn inside_title_case_phrase(text: &str, f: &Finding) -> bool {
    if !matches!(f.entity_type, "PERSON" | "LOCATION") {
        return false;
    }
    let first = text[f.start..f.end]
        .split(|c: char| !c.is_alphabetic())
        .next()
        .unwrap_or("");
    // A name's first word, a first name or a surname, keeps it ("Support Agent Rose", "spoke
    // with Agent Patel").
    if first.is_empty() || crate::gazetteer::classes(first, &first.to_lowercase(), "en") & 0b11 != 0
    {
        return false;
    }
    let Some(before) = text[..f.start].strip_suffix(' ') else {
        return false;
    };
    let word_start = before.rfind(|c: char| !c.is_alphabetic()).map_or(0, |i| {
        i + before[i..].chars().next().map_or(1, char::len_utf8)
    });
    let word = &before[word_start..];
    let mut chars = word.chars();
    let capitalised = chars.next().is_some_and(char::is_uppercase) && chars.all(char::is_lowercase);
    let classes = crate::gazetteer::classes(word, &word.to_lowercase(), "en");
    // Not after a function word: a title capitalises those too ("Carry Me Back To Spain").
    let function_word = FUNCTION_WORDS.contains(&word);
    if !capitalised || function_word || classes & (1 << 6) == 0 || classes & 1 != 0 {
        return false;
    }
    // What comes before that word on its line: a word that does not end a sentence.
    let earlier = before[..word_start].trim_end_matches(' ');
    earlier
        .chars()
        .next_back()
        .is_some_and(|c| c.is_alphanumeric() || c == ',')
        && !earlier.ends_with('\n')
}

/// An address has a word: street address findings of digits alone, one or a few side by
/// side ("07911 204338" read as two), that make a phone number valid in libphonenumber's
/// plans of the language's countries are that phone number.
fn digits_only_address_is_a_phone(text: &str, language: &str, findings: &mut Vec<Finding>) {
    let digits_only = |f: &Finding| {
        f.entity_type == "STREET_ADDRESS"
            && text[f.start..f.end]
                .chars()
                .all(|c| c.is_ascii_digit() || matches!(c, ' ' | '.' | '-'))
    };
    // The plans are looked up only for a text that has such a finding (most have none).
    let mut regions = None;
    let mut i = 0;
    while i < findings.len() {
        if !digits_only(&findings[i]) {
            i += 1;
            continue;
        }
        // The run of such findings with only spaces between them.
        let mut last = i;
        while last + 1 < findings.len()
            && digits_only(&findings[last + 1])
            && text[findings[last].end..findings[last + 1].start]
                .chars()
                .all(|c| c == ' ')
        {
            last += 1;
        }
        let start = findings[i].start;
        let end = findings[last].end;
        let number = text[start..end].trim_end_matches(['.', ' ', '-']);
        let regions = regions.get_or_insert_with(|| crate::recognizers::regions(Some(language)));
        if crate::recognizers::phone_valid(number, regions) {
            findings[i].entity_type = "PHONE_NUMBER";
            absorb(findings, i, start + number.len());
        }
        i += 1;
    }
}

/// The days of the week in the five languages, in lower case.
const WEEKDAYS: &[&str] = &[
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
    "montag",
    "dienstag",
    "mittwoch",
    "donnerstag",
    "freitag",
    "samstag",
    "sonnabend",
    "sonntag",
    "lundi",
    "mardi",
    "mercredi",
    "jeudi",
    "vendredi",
    "samedi",
    "dimanche",
    "lunes",
    "martes",
    "miércoles",
    "miercoles",
    "jueves",
    "viernes",
    "sábado",
    "sabado",
    "domingo",
    "maandag",
    "dinsdag",
    "woensdag",
    "donderdag",
    "vrijdag",
    "zaterdag",
    "zondag",
];

/// Each date right after its day of the week starts at the weekday (see
/// [`weekday_before_date`]); a finding of the weekday alone goes into it.
fn dates_from_their_weekday(text: &str, findings: &mut Vec<Finding>) {
    let mut i = 0;
    while i < findings.len() {
        if let Some(start) = weekday_before_date(text, &findings[i]) {
            let end = findings[i].end;
            findings[i].start = start;
            absorb(findings, i, end);
            // A finding of the weekday alone came before it and is gone: find it again.
            i = findings
                .iter()
                .position(|f| f.start == start && f.end == end)
                .unwrap_or(i);
        }
        i += 1;
    }
}

/// A date's day of the week is part of it ("Montag, den 3. November", "Monday the 14th",
/// "el lunes 3 de noviembre"): a date right after a weekday, maybe a comma and an article
/// between them, starts at the weekday. Returns where it starts, if it moves.
fn weekday_before_date(text: &str, f: &Finding) -> Option<usize> {
    if f.entity_type != "DATE_TIME" {
        return None;
    }
    let mut before = text[..f.start].trim_end_matches(' ');
    for article in ["den", "der", "the", "le", "el"] {
        if let Some(rest) = before.strip_suffix(article)
            && rest.ends_with(' ')
        {
            before = rest.trim_end_matches(' ');
            break;
        }
    }
    let before = before.strip_suffix(',').unwrap_or(before);
    let start = before.rfind(|c: char| !c.is_alphabetic()).map_or(0, |i| {
        i + before[i..].chars().next().map_or(1, char::len_utf8)
    });
    (start < before.len()
        && before.len() < f.start
        && WEEKDAYS.contains(&before[start..].to_lowercase().as_str()))
    .then_some(start)
}

/// Words that put a person in a place and are never part of a name ("fenna uit
/// leeuwarden", "Sabine aus Hamburg", "Mike from Leeds"), with the spaces around them.
const FROM_WORDS: &[&str] = &[" from ", " aus ", " uit "];

/// A name found across such a word is a name, then a place: "fenna uit leeuwarden" as one
/// PERSON becomes PERSON "fenna" and LOCATION "leeuwarden".
fn split_person_from_place(text: &str, findings: &mut Vec<Finding>) {
    let mut places = Vec::new();
    for f in findings.iter_mut().filter(|f| f.entity_type == "PERSON") {
        let span = &text[f.start..f.end];
        let Some((at, word)) = FROM_WORDS
            .iter()
            .filter_map(|w| span.find(w).map(|at| (at, *w)))
            .min()
        else {
            continue;
        };
        let place_start = f.start + at + word.len();
        places.push(Finding {
            entity_type: "LOCATION",
            start: place_start,
            ..*f
        });
        f.end = f.start + at;
    }
    findings.extend(places);
}

/// English articles, conjunctions and prepositions as a title capitalises them.
const FUNCTION_WORDS: &[&str] = &[
    "A", "An", "The", "And", "Or", "But", "Nor", "Of", "To", "In", "On", "At", "For", "From",
    "With", "By", "Into", "Onto", "Near", "Via", "Over", "Under", "Than",
];

/// Dates found in parts with only a comma or a space between them ("twenty-first of May",
/// "1969") are one date.
fn join_dates(text: &str, findings: &mut Vec<Finding>) {
    let mut out: Vec<Finding> = Vec::with_capacity(findings.len());
    for f in findings.drain(..) {
        if let Some(last) = out.last_mut()
            && last.entity_type == "DATE_TIME"
            && f.entity_type == "DATE_TIME"
            && f.start >= last.end
            && matches!(&text[last.end..f.start], " " | ", " | ",")
        {
            last.end = f.end;
            last.score = last.score.max(f.score);
            continue;
        }
        out.push(f);
    }
    *findings = out;
}

/// A postcode with its town is one street address, as the labels have it ("75011 Paris",
/// "5687 XM Heerhugowaard"): a postcode followed, after one space on its line, by a town (a
/// found place, or capitalised words, "im"/"de"-like particles between them, that are not
/// only common words and end before a lower-case word, a comma, a full stop or the line's end)
/// becomes one, the place inside it dropped.
fn postcode_with_town(text: &str, language: &str, findings: &mut Vec<Finding>) {
    let mut i = 0;
    while i < findings.len() {
        if findings[i].entity_type == "ZIP_CODE"
            && let Some(end) = town_after(text, findings[i].end, language, findings)
        {
            findings[i].entity_type = "STREET_ADDRESS";
            absorb(findings, i, end);
        }
        i += 1;
    }
}

/// Where the town that follows a postcode ending at `at` ends (see [`postcode_with_town`]).
fn town_after(text: &str, at: usize, language: &str, findings: &[Finding]) -> Option<usize> {
    text[at..].strip_prefix(' ')?;
    let start = at + 1;
    let place = findings
        .iter()
        .find(|f| f.start == start && f.entity_type == "LOCATION")
        .map(|f| f.end);
    let (mut end, mut pos) = (start, start);
    loop {
        let len = text[pos..]
            .find(|c: char| !(c.is_alphabetic() || matches!(c, '-' | '\'' | '’')))
            .unwrap_or(text.len() - pos);
        let word = &text[pos..pos + len];
        if word.chars().next().is_some_and(char::is_uppercase) {
            end = pos + len;
        } else if len == 0 || end == start || !crate::tagger::is_particle(word) {
            break;
        }
        match text[pos + len..].strip_prefix(' ') {
            Some(_) => pos += len + 1,
            None => break,
        }
    }
    let town = &text[start..end];
    let ends_cleanly = !text[end..].starts_with(|c: char| c.is_alphanumeric());
    let words = end > start && ends_cleanly && !crate::gazetteer::common_words_only(town, language);
    match place {
        Some(place) => Some(if words { end.max(place) } else { place }),
        None => words.then_some(end),
    }
}

/// An address is one finding from its street to its postcode: a street, then on its line
/// up to two comma-separated parts of a few capitalised words without digits (a district,
/// a county: "Ballincollig", "Co. Cork", "Col. Crédito Constructor"), then a part that
/// begins with a postcode and was found ("P31 KX82", "03940 Ciudad de México") become one
/// street address, the findings inside it dropped.
fn join_address_parts(text: &str, findings: &mut Vec<Finding>) {
    let mut i = 0;
    while i < findings.len() {
        if findings[i].entity_type == "STREET_ADDRESS"
            && let Some(end) = address_goes_on(text, findings[i].end, findings)
        {
            let score = absorb(findings, i, end);
            findings[i].score = findings[i].score.max(score);
        }
        i += 1;
    }
}

/// Makes finding `i` of `findings` (in text order, none overlapping) end at `end`, drops the
/// others it now covers, and returns the highest score among them (0 if none).
fn absorb(findings: &mut Vec<Finding>, i: usize, end: usize) -> f64 {
    let start = findings[i].start;
    findings[i].end = end;
    let (mut at, mut covered) = (0, 0f64);
    findings.retain(|f| {
        let keep = at == i || f.end <= start || f.start >= end;
        if !keep {
            covered = covered.max(f.score);
        }
        at += 1;
        keep
    });
    covered
}

/// Where the address whose street ends at `at` ends, if its postcode follows as described
/// at [`join_address_parts`].
fn address_goes_on(text: &str, at: usize, findings: &[Finding]) -> Option<usize> {
    let line_end = text[at..].find('\n').map_or(text.len(), |n| at + n);
    let mut pos = at;
    for part in 0..3 {
        let after_comma = text[pos..line_end].strip_prefix(',')?;
        let start = line_end - after_comma.trim_start().len();
        let end = text[start..line_end]
            .find(',')
            .map_or(line_end, |n| start + n);
        let segment = &text[start..end];
        let first = segment.split_whitespace().next()?;
        if postcode_like(first) {
            let found = |f: &&Finding| {
                matches!(f.entity_type, "ZIP_CODE" | "STREET_ADDRESS" | "LOCATION")
                    && f.start >= start
                    && f.start < end
            };
            if !findings.iter().any(|f| f.start == start && found(&f)) {
                return None;
            }
            return findings.iter().filter(found).map(|f| f.end).max();
        }
        let words: Vec<&str> = segment.split_whitespace().collect();
        let district = part < 2
            && words.len() <= 4
            && !segment.chars().any(|c| c.is_ascii_digit())
            && words.iter().all(|w| {
                w.chars().next().is_some_and(char::is_uppercase)
                    || crate::tagger::is_particle(w)
            })
            // A full stop only after a short abbreviation ("Co.", "Col."), not a sentence's.
            && words
                .iter()
                .all(|w| !w.ends_with('.') || w.chars().count() <= 4);
        if !district {
            return None;
        }
        pos = end;
    }
    None
}

/// A postcode's first word: four or five digits, or a UK or Irish outward code ("LS6",
/// "SW1A", "P31", "D6W").
fn postcode_like(word: &str) -> bool {
    let n = word.chars().count();
    (word.chars().all(|c| c.is_ascii_digit()) && (4..=5).contains(&n))
        || ((2..=4).contains(&n)
            && word.chars().next().is_some_and(|c| c.is_ascii_uppercase())
            && word.chars().any(|c| c.is_ascii_digit())
            && word
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(text: &str, entity_type: &'static str, part: &str) -> Finding {
        let start = text.find(part).expect("the part is in the text");
        Finding {
            entity_type,
            start,
            end: start + part.len(),
            score: 0.7,
            recognizer: "test",
        }
    }

    fn checked(
        text: &str,
        language: &str,
        found: &[(&'static str, &str)],
    ) -> Vec<(String, String)> {
        let mut findings: Vec<Finding> = found.iter().map(|(t, p)| finding(text, t, p)).collect();
        apply(text, language, &mut findings);
        findings
            .iter()
            .map(|f| (f.entity_type.to_string(), text[f.start..f.end].to_string()))
            .collect()
    }

    fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
        expected
            .iter()
            .map(|(t, p)| (t.to_string(), p.to_string()))
            .collect()
    }

    #[test]
    fn a_date_starts_at_its_weekday() {
        let text = "Der Techniker war am Montag, den 3. November da, nicht am Dienstag";
        let found = [("DATE_TIME", "Montag"), ("DATE_TIME", "3. November")];
        assert_eq!(
            checked(text, "de", &found),
            pairs(&[("DATE_TIME", "Montag, den 3. November")])
        );
        let text = "the engineer never came on Tuesday the 14th, not Tuesday";
        assert_eq!(
            checked(text, "en", &[("DATE_TIME", "14th")]),
            pairs(&[("DATE_TIME", "Tuesday the 14th")])
        );
        let text = "Ich komme garden 3. November";
        assert_eq!(
            checked(text, "de", &[("DATE_TIME", "3. November")]),
            pairs(&[("DATE_TIME", "3. November")]),
            "no weekday before it"
        );
    }

    #[test]
    fn an_address_of_digits_alone_that_dials_is_a_phone_number() {
        let text = "The account is under Bill Turner, 07911 204338.";
        let found = [("STREET_ADDRESS", "07911"), ("STREET_ADDRESS", "204338.")];
        assert_eq!(
            checked(text, "en", &found),
            pairs(&[("PHONE_NUMBER", "07911 204338")])
        );
        let text = "Building 083, 12 Main Street";
        let found = [
            ("STREET_ADDRESS", "083"),
            ("STREET_ADDRESS", "12 Main Street"),
        ];
        assert_eq!(
            checked(text, "en", &found),
            pairs(&[
                ("STREET_ADDRESS", "083"),
                ("STREET_ADDRESS", "12 Main Street")
            ]),
            "no phone number"
        );
    }

    #[test]
    fn an_address_with_a_version_number_is_none() {
        let text = "Is there a known issue with Firmware 4.2? I live at 12 Main Street.";
        let found = [
            ("STREET_ADDRESS", "Firmware 4.2"),
            ("STREET_ADDRESS", "12 Main Street"),
        ];
        assert_eq!(
            checked(text, "en", &found),
            pairs(&[("STREET_ADDRESS", "12 Main Street")])
        );
    }

    #[test]
    fn a_name_across_from_is_a_name_then_a_place() {
        let text = "ik ben fenna uit leeuwarden en mijn tv werkt niet";
        assert_eq!(
            checked(text, "nl", &[("PERSON", "fenna uit leeuwarden")]),
            pairs(&[("PERSON", "fenna"), ("LOCATION", "leeuwarden")])
        );
    }

    #[test]
    fn a_postcode_of_fewer_than_four_digits_is_none() {
        let text = "I upgraded to Fibre Ultra 900, postcode 10115 or 1015 CJ";
        let found = [
            ("ZIP_CODE", "900"),
            ("ZIP_CODE", "10115"),
            ("ZIP_CODE", "1015 CJ"),
        ];
        assert_eq!(
            checked(text, "en", &found),
            pairs(&[("ZIP_CODE", "10115"), ("ZIP_CODE", "1015 CJ")])
        );
    }

    #[test]
    fn a_number_before_a_unit_is_a_quantity_not_an_age_or_postcode() {
        let text = "the app says 67 Mbps, 20GB left, 45 Minuten, she is 67 years old";
        let found = [
            ("AGE", "67"),
            ("ZIP_CODE", "20"),
            ("AGE", "45"),
            ("AGE", "67 years"),
        ];
        // Only the age in years stays.
        let kept = checked(text, "en", &found);
        assert_eq!(kept, pairs(&[("AGE", "67 years")]));
        // A unit is a word of its own, and written as units are: "to", "go" and "Ms" are
        // words.
        for text in [
            "call 4471 Mbpsx",
            "call 0612 345678 to confirm",
            "ring 0612 345678 Ms Smith",
        ] {
            let number = &text[text.find(char::is_numeric).unwrap()..][..4];
            assert_eq!(
                checked(text, "en", &[("PHONE_NUMBER", number)]).len(),
                1,
                "{text}"
            );
        }
        assert!(checked("plus 20 Go de data", "fr", &[("AGE", "20")]).is_empty());
    }

    #[test]
    fn a_name_inside_a_brand_with_a_plus_is_none() {
        let text = "Canal+ Essentiel, Movistar Plus+ Fútbol, and Rosa Plus told me";
        let found = [
            ("PERSON", "Canal"),
            ("PERSON", "Movistar"),
            ("PERSON", "Rosa"),
        ];
        assert_eq!(checked(text, "es", &found), pairs(&[("PERSON", "Rosa")]));
    }

    #[test]
    fn in_english_a_name_inside_a_title_case_phrase_of_common_words_is_none() {
        let text = "I was charged the Early Termination Fee. Where is the new Account Centre?";
        let found = [("PERSON", "Termination Fee"), ("LOCATION", "Centre")];
        assert!(checked(text, "en", &found).is_empty());
        // A first name stays, and so does a name after a greeting that starts the line.
        let text = "I spoke to Support Agent Rose about it.\nThanks Baker, and Agent Patel";
        let found = [("PERSON", "Rose"), ("PERSON", "Baker"), ("PERSON", "Patel")];
        assert_eq!(checked(text, "en", &found).len(), 3);
        // Other languages capitalise their nouns: the check is English only.
        let text = "an old song, Carry Me Back To Spain";
        assert_eq!(checked(text, "en", &[("LOCATION", "Spain")]).len(), 1);
        let text = "Die neue Kunden Centre";
        assert_eq!(checked(text, "de", &[("LOCATION", "Centre")]).len(), 1);
    }

    #[test]
    fn a_date_found_in_parts_is_one_date() {
        let text = "born twenty-first of May, 1969.";
        let found = [("DATE_TIME", "twenty-first of May"), ("DATE_TIME", "1969")];
        assert_eq!(
            checked(text, "en", &found),
            pairs(&[("DATE_TIME", "twenty-first of May, 1969")])
        );
    }

    #[test]
    fn a_postcode_with_its_town_is_one_address() {
        let text = "Postcode en plaats: 5687 XM Heerhugowaard\nTelefoon";
        assert_eq!(
            checked(text, "nl", &[("ZIP_CODE", "5687 XM")]),
            pairs(&[("STREET_ADDRESS", "5687 XM Heerhugowaard")])
        );
        let text = "ik woon in 79098 Freiburg im Breisgau en heb een vraag";
        let found = [("ZIP_CODE", "79098"), ("LOCATION", "Freiburg")];
        assert_eq!(
            checked(text, "de", &found),
            pairs(&[("STREET_ADDRESS", "79098 Freiburg im Breisgau")])
        );
        let text = "CP 46001 Valencia, gracias";
        let found = [("ZIP_CODE", "46001"), ("LOCATION", "Valencia")];
        assert_eq!(
            checked(text, "es", &found),
            pairs(&[("STREET_ADDRESS", "46001 Valencia")])
        );
        // Not a common word, not over a comma or a line break.
        for text in [
            "postcode 45559 Thanks",
            "PLZ 80331, München",
            "PLZ 80331\nMünchen",
        ] {
            let kept = checked(
                text,
                "en",
                &[(
                    "ZIP_CODE",
                    &text[text.find(char::is_numeric).unwrap()..][..5],
                )],
            );
            assert_eq!(kept[0].0, "ZIP_CODE", "{text}");
        }
    }

    #[test]
    fn an_address_with_a_district_before_its_postcode_is_one_address() {
        let text = "the address is 14 Main Street, Ballincollig, Co. Cork, P31 KX82 thanks";
        let found = [
            ("STREET_ADDRESS", "14 Main Street"),
            ("ORGANIZATION", "Ballincollig, Co."),
            ("LOCATION", "Cork"),
            ("ZIP_CODE", "P31 KX82"),
        ];
        assert_eq!(
            checked(text, "en", &found),
            pairs(&[(
                "STREET_ADDRESS",
                "14 Main Street, Ballincollig, Co. Cork, P31 KX82"
            )])
        );
        let text =
            "Av. Insurgentes Sur 1602, Col. Crédito Constructor, 03940 Ciudad de México, teléfono";
        let found = [
            ("STREET_ADDRESS", "Av. Insurgentes Sur 1602"),
            ("STREET_ADDRESS", "03940 Ciudad de México"),
        ];
        assert_eq!(checked(text, "es", &found).len(), 1);
        // No postcode found after the parts, or a sentence between: nothing joins.
        let text = "14 Main Street, Ballincollig, and then P31 KX82";
        let found = [
            ("STREET_ADDRESS", "14 Main Street"),
            ("ZIP_CODE", "P31 KX82"),
        ];
        assert_eq!(checked(text, "en", &found).len(), 2);
        let text = "14 Main Street, Cork\nP31 KX82";
        let found = [
            ("STREET_ADDRESS", "14 Main Street"),
            ("ZIP_CODE", "P31 KX82"),
        ];
        assert_eq!(checked(text, "en", &found).len(), 2);
    }
}
