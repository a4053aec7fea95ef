//! National identifiers of the countries the product serves, validated by their check
//! digits or letters where they have one, and found by their format — with a context word
//! in front where the format alone is too common (nine digits are an order number as often
//! as a BSN).
//!
//! | type | country | format | validation |
//! |---|---|---|---|
//! | `ES_NIF` | Spain | DNI: 8 digits and a letter | the letter is `TRWAGMYFPDXBNJZSQVHLCKE`[n mod 23] |
//! | `ES_NIE` | Spain | X, Y or Z, 7 digits, a letter | the same, X/Y/Z read as 0/1/2 |
//! | `NL_BSN` | Netherlands | 9 digits after BSN / burgerservicenummer / sofinummer | the 11-test |
//! | `FR_NIR` | France | 15 characters: sex, year, month, department (2A/2B in Corsica), commune, order, key | key = 97 − (the first 13 mod 97) |
//! | `DE_TAX_ID` | Germany | Steuer-ID: 11 digits, the first not 0 | ISO 7064 MOD 11,10 check digit; of the first ten digits one appears two or three times, no other twice |
//! | `DE_ID_CARD` | Germany | 9 letters and digits and a check digit after Personalausweis / Ausweis / Ausweisnummer | 7-3-1 weighted check digit |
//! | `UK_NINO` | United Kingdom | two letters, six digits, A–D | the prefixes HMRC never issues are refused |
//! | `UK_NHS` | United Kingdom | 10 digits after NHS | mod 11 |
//! | `US_ITIN` | United States | 9XX-XX-XXXX | the group ranges ITINs use |
//! | `PASSPORT` | any | 6–9 letters and digits after passport / Reisepass / passeport / pasaporte / paspoort | — |
//! | `DRIVER_LICENSE` | any | 5–18 letters and digits after driver's licence / Führerschein / permis de conduire / permiso (carnet) de conducir / rijbewijs | — |
//!
//! `DE_ID_CARD`, `PASSPORT` and `DRIVER_LICENSE` hold at least one digit and are taken in
//! capitals or in lower case, never a mix of both (a mix is a word).
//!
//! `ES_NIF`, `ES_NIE`, `UK_NINO`, `UK_NHS` and `US_ITIN` are Presidio's names; the others are
//! ours (Presidio has no recognizer for them).

use std::sync::LazyLock;

use regex::Regex;

use crate::recognizers::{Finding, push, re};

/// Findings whose check digit holds (or whose format is unmistakable).
const CHECKED: f64 = 0.95;
/// A checksum that holds by chance one time in ten, without a context word.
const CHECKED_WITHOUT_CONTEXT: f64 = 0.8;
/// A number after its context word, with no checksum to confirm it.
const CONTEXT: f64 = 0.85;

/// What may stand between a context word and its number: up to 30 characters without a
/// digit, on the word's line or, once, across a line break, as a call transcript answers
/// on the next line ("Agent: May I have your BSN?\nCustomer: 111222333"). ASCII digits:
/// the class without Unicode's made the five patterns that use it compile in 3 ms, not
/// 16 (another script's digit between the word and the number is rare enough to allow).
const GAP: &str = r"[^0-9\n]{0,30}?(?:\n[^0-9\n]{0,30}?)?";

/// The letter in capitals (maybe after a space or a dash), or in lower case attached ("y"
/// after a number is Spanish for "and").
static DNI: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?-u:\b)(\d{8})(?:[- ]?([A-Z])|-?([a-z]))(?-u:\b)"));
static NIE: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?-u:\b)([XYZxyz])[- ]?(\d{7})[- ]?([A-Za-z])(?-u:\b)"));
static BSN: LazyLock<Regex> = LazyLock::new(|| {
    re(&format!(
        r"(?i)(?-u:\b)(?:bsn|burgerservicenummer|sofi-?nummer|citizen service number)(?-u:\b){GAP}(\d[\d .]{{7,11}}\d)(?-u:\b)"
    ))
});
static NIR: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?-u:\b)([12378]) ?(\d{2}) ?(0[1-9]|1[0-2]|[2-9]\d) ?(\d{2}|2[ABab]) ?(\d{3}) ?(\d{3}) ?(\d{2})(?-u:\b)",
    )
});
static TAX_ID: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?-u:\b)([1-9]\d) ?(\d{3}) ?(\d{3}) ?(\d{3})(?-u:\b)"));
static TAX_ID_CONTEXT: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)(?:steuer-?id|steuer-?identifikationsnummer|steueridentifikationsnummer|identifikationsnummer|(?-u:\b)idnr(?-u:\b)|tax id)[^0-9\n]{0,30}(?:\n[^0-9\n]{0,30})?$",
    )
});
static ID_CARD: LazyLock<Regex> = LazyLock::new(|| {
    re(&format!(
        r"(?i)(?-u:\b)(?:personalausweis(?:es|nummer|-?nr\.?)?|ausweis(?:es|-?(?:nummer|nr\.?))?|id card number)(?-u:\b){GAP}(?-u:\b)([CFGHJKLMNPRTVWXYZ0-9]{{9}}\d)(?-u:\b)"
    ))
});
static NINO: LazyLock<Regex> = LazyLock::new(|| {
    re(r"(?-u:\b)([A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]) ?(\d{2}) ?(\d{2}) ?(\d{2}) ?([A-D])(?-u:\b)")
});
static NHS: LazyLock<Regex> = LazyLock::new(|| {
    re(&format!(
        r"(?i)(?-u:\b)nhs(?-u:\b){GAP}(?-u:\b)(\d{{3}}[ -]?\d{{3}}[ -]?\d{{4}})(?-u:\b)"
    ))
});
static ITIN: LazyLock<Regex> = LazyLock::new(|| {
    re(r"(?-u:\b)9\d{2}([- ])(?:5\d|6[0-5]|7\d|8[0-8]|9[0-2]|9[4-9])([- ])\d{4}(?-u:\b)")
});
static PASSPORT: LazyLock<Regex> = LazyLock::new(|| {
    re(&format!(
        r"(?i)(?-u:\b)(?:passport|reisepass(?:nummer)?|passnummer|pass-nr\.?|passeport|pasaporte|paspoort(?:nummer)?){GAP}(?-u:\b)([A-Z0-9]*\d[A-Z0-9]*)(?-u:\b)"
    ))
});
static DRIVER_LICENSE: LazyLock<Regex> = LazyLock::new(|| {
    re(&format!(
        r"(?i)(?-u:\b)(?:driver'?s licen[cs]e|driving licen[cs]e|licen[cs]e (?:number|no\.?)|führerschein(?:nummer)?|permis de conduire|permiso de conducir|carnet de conducir|rijbewijs(?:nummer)?){GAP}(?-u:\b)([A-Z0-9-]*\d[A-Z0-9-]*)(?-u:\b)"
    ))
});

/// Every national identifier in `text`.
pub(crate) fn find(text: &str, out: &mut Vec<Finding>) {
    // Most texts hold no identifier: each pattern runs only where what it needs is there
    // (six digits for the numbers found by their format, a digit and its context word for
    // the others), found by one count, one lower-casing and a few substring searches.
    let digits = text.bytes().filter(u8::is_ascii_digit).count();
    if digits == 0 {
        return;
    }
    if digits >= 6 {
        spanish(text, out);
        nir(text, out);
        tax_id(text, out);
        nino(text, out);
        for m in ITIN.captures_iter(text) {
            // The same separator twice: "912-70-1234", "912 70 1234".
            if let (Some(all), Some(a), Some(b)) = (m.get(0), m.get(1), m.get(2))
                && a.as_str() == b.as_str()
            {
                push(out, "US_ITIN", all.start(), all.end(), CHECKED, "us_itin");
            }
        }
    }
    let lower = text.to_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| lower.contains(w));
    if has(&["bsn", "burgerservice", "sofi", "citizen service"]) {
        captured(&BSN, text, out, |s| {
            bsn_valid(s).then_some(("NL_BSN", CHECKED))
        });
    }
    if has(&["ausweis", "id card"]) {
        captured(&ID_CARD, text, out, |s| {
            (one_case(s) && id_card_valid(s)).then_some(("DE_ID_CARD", CHECKED))
        });
    }
    if has(&["nhs"]) {
        captured(&NHS, text, out, |s| {
            nhs_valid(s).then_some(("UK_NHS", CHECKED))
        });
    }
    // A number after its context word (the patterns take only tokens with a digit, so a
    // word between them, "Nummer", is passed over), written in capitals or, as customers
    // type, in lower case; a mix of both is a word, not a number.
    if has(&["pass", "pasaporte", "paspoort"]) {
        captured(&PASSPORT, text, out, |s| {
            ((6..=9).contains(&s.len()) && one_case(s)).then_some(("PASSPORT", CONTEXT))
        });
    }
    if has(&[
        "licen",
        "führerschein",
        "permis de conduire",
        "conducir",
        "rijbewijs",
    ]) {
        captured(&DRIVER_LICENSE, text, out, |s| {
            ((5..=18).contains(&s.len()) && !s.ends_with('-') && one_case(s))
                .then_some(("DRIVER_LICENSE", CONTEXT))
        });
    }
}

/// Whether the letters of `s` are all capitals or all lower case ("c01x00t47" as a
/// customer types "C01X00T47"; "Ab12cd" is neither).
fn one_case(s: &str) -> bool {
    !s.chars().any(|c| c.is_ascii_uppercase()) || !s.chars().any(|c| c.is_ascii_lowercase())
}

/// The first group of each match of `pattern`, where `check` gives it a type and score.
fn captured(
    pattern: &Regex,
    text: &str,
    out: &mut Vec<Finding>,
    check: impl Fn(&str) -> Option<(&'static str, f64)>,
) {
    for c in pattern.captures_iter(text) {
        if let Some(m) = c.get(1)
            && let Some((ty, score)) = check(m.as_str())
        {
            push(out, ty, m.start(), m.end(), score, "national_id");
        }
    }
}

fn digits(s: &str) -> Vec<u32> {
    s.chars().filter_map(|c| c.to_digit(10)).collect()
}

const DNI_LETTERS: &[u8; 23] = b"TRWAGMYFPDXBNJZSQVHLCKE";

/// A Spanish DNI or NIE number's check letter holds (`number` with X/Y/Z as 0/1/2).
pub fn spanish_letter_valid(number: u32, letter: char) -> bool {
    DNI_LETTERS[(number % 23) as usize] == letter.to_ascii_uppercase() as u8
}

fn spanish(text: &str, out: &mut Vec<Finding>) {
    for c in DNI.captures_iter(text) {
        if let (Some(all), Some(n), Some(l)) = (c.get(0), c.get(1), c.get(2).or(c.get(3)))
            && let (Ok(n), Some(l)) = (n.as_str().parse(), l.as_str().chars().next())
            && spanish_letter_valid(n, l)
        {
            push(out, "ES_NIF", all.start(), all.end(), CHECKED, "es_nif");
        }
    }
    for c in NIE.captures_iter(text) {
        if let (Some(all), Some(p), Some(n), Some(l)) = (c.get(0), c.get(1), c.get(2), c.get(3)) {
            let prefix = match p.as_str() {
                "X" | "x" => 0,
                "Y" | "y" => 1,
                _ => 2,
            };
            if let (Ok(n), Some(l)) = (n.as_str().parse::<u32>(), l.as_str().chars().next())
                && spanish_letter_valid(prefix * 10_000_000 + n, l)
            {
                push(out, "ES_NIE", all.start(), all.end(), CHECKED, "es_nie");
            }
        }
    }
}

/// The Dutch BSN's 11-test: 9·d1 + 8·d2 + … + 2·d8 − d9 is a multiple of 11 (and not 0).
pub fn bsn_valid(s: &str) -> bool {
    let d = digits(s);
    if d.len() != 9 || d.iter().all(|&x| x == 0) {
        return false;
    }
    let sum: i64 = d[..8]
        .iter()
        .enumerate()
        .map(|(i, &x)| i64::from(x) * (9 - i as i64))
        .sum::<i64>()
        - i64::from(d[8]);
    sum % 11 == 0
}

/// A French NIR's key: 97 minus the first 13 characters (Corsica's 2A and 2B read as 19
/// and 18) mod 97.
pub fn nir_valid(s: &str) -> bool {
    let compact: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    if compact.len() != 15 {
        return false;
    }
    let (body, key) = compact.split_at(13);
    let body = body
        .to_ascii_uppercase()
        .replacen("2A", "19", 1)
        .replacen("2B", "18", 1);
    match (body.parse::<u64>(), key.parse::<u64>()) {
        (Ok(n), Ok(k)) => 97 - n % 97 == k,
        _ => false,
    }
}

fn nir(text: &str, out: &mut Vec<Finding>) {
    for m in NIR.find_iter(text) {
        if nir_valid(m.as_str()) {
            push(out, "FR_NIR", m.start(), m.end(), CHECKED, "fr_nir");
        }
    }
}

/// A German Steuer-ID: 11 digits, the first not 0; of the first ten, one digit appears
/// twice or three times (never three in a row) and every other at most once; the last is
/// the ISO 7064 MOD 11,10 check digit of the first ten.
pub fn tax_id_valid(s: &str) -> bool {
    let d = digits(s);
    if d.len() != 11 || d[0] == 0 {
        return false;
    }
    let mut counts = [0u8; 10];
    for &x in &d[..10] {
        counts[x as usize] += 1;
    }
    let repeated: Vec<usize> = (0..10).filter(|&x| counts[x] > 1).collect();
    let [r] = repeated[..] else {
        return false;
    };
    if counts[r] > 3
        || d[..10]
            .windows(3)
            .any(|w| w.iter().all(|&x| x as usize == r))
    {
        return false;
    }
    let mut product = 10;
    for &x in &d[..10] {
        let mut sum = (x + product) % 10;
        if sum == 0 {
            sum = 10;
        }
        product = (sum * 2) % 11;
    }
    let check = match 11 - product {
        10 => 0,
        c => c,
    };
    check == d[10]
}

fn tax_id(text: &str, out: &mut Vec<Finding>) {
    for m in TAX_ID.find_iter(text) {
        if tax_id_valid(m.as_str()) {
            let context = TAX_ID_CONTEXT.is_match(&text[..m.start()]);
            let score = if context {
                CHECKED
            } else {
                CHECKED_WITHOUT_CONTEXT
            };
            push(out, "DE_TAX_ID", m.start(), m.end(), score, "de_tax_id");
        }
    }
}

/// A German identity card number: nine letters and digits, then a check digit, the sum of
/// the values (digits as themselves, A–Z as 10–35) weighted 7, 3, 1, … mod 10.
pub fn id_card_valid(s: &str) -> bool {
    let chars: Vec<char> = s.chars().collect();
    if chars.len() != 10 {
        return false;
    }
    let value = |c: char| c.to_digit(36);
    let mut sum = 0;
    for (i, &c) in chars[..9].iter().enumerate() {
        let Some(v) = value(c) else {
            return false;
        };
        sum += v * [7, 3, 1][i % 3];
    }
    chars[9].to_digit(10) == Some(sum % 10)
}

/// A UK National Insurance number's prefix is one HMRC issues.
pub fn nino_valid(s: &str) -> bool {
    let prefix: String = s.chars().take(2).collect();
    !["BG", "GB", "KN", "NK", "NT", "TN", "ZZ"].contains(&prefix.as_str())
}

fn nino(text: &str, out: &mut Vec<Finding>) {
    for m in NINO.find_iter(text) {
        if nino_valid(m.as_str()) {
            push(out, "UK_NINO", m.start(), m.end(), CHECKED, "uk_nino");
        }
    }
}

/// An NHS number's mod-11 check digit.
pub fn nhs_valid(s: &str) -> bool {
    let d = digits(s);
    if d.len() != 10 {
        return false;
    }
    let sum: u32 = d[..9]
        .iter()
        .enumerate()
        .map(|(i, &x)| x * (10 - i as u32))
        .sum();
    match 11 - sum % 11 {
        11 => d[9] == 0,
        10 => false,
        c => d[9] == c,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(text: &str) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        find(text, &mut out);
        out.iter()
            .map(|f| (f.entity_type, text[f.start..f.end].to_owned()))
            .collect()
    }

    #[test]
    fn spanish_ids_need_their_check_letter() {
        assert_eq!(
            found("Mi DNI es 12345678Z."),
            [("ES_NIF", "12345678Z".into())]
        );
        assert_eq!(found("DNI 12345678-z"), [("ES_NIF", "12345678-z".into())]);
        assert!(found("DNI 12345678A").is_empty(), "wrong letter");
        assert_eq!(found("NIE: X1234567L"), [("ES_NIE", "X1234567L".into())]);
        assert_eq!(found("NIE Y-1234567-X"), [("ES_NIE", "Y-1234567-X".into())]);
        assert!(found("NIE X1234567A").is_empty(), "wrong letter");
    }

    #[test]
    fn a_bsn_needs_the_eleven_test_and_its_name() {
        assert_eq!(
            found("Mijn BSN is 111222333."),
            [("NL_BSN", "111222333".into())]
        );
        assert_eq!(
            found("burgerservicenummer: 1112.22.333"),
            [("NL_BSN", "1112.22.333".into())]
        );
        assert!(found("BSN 111222334").is_empty(), "fails the 11-test");
        assert!(found("ordernummer 111222333").is_empty(), "no context word");
        assert!(found("BSN 000000000").is_empty());
    }

    #[test]
    fn a_transcript_answers_on_the_next_line() {
        assert_eq!(
            found("Medewerker: Mag ik uw BSN?\nKlant: 111222333"),
            [("NL_BSN", "111222333".into())]
        );
        assert_eq!(
            found("Agent: And your passport number?\nCaller: yes, 533412088"),
            [("PASSPORT", "533412088".into())]
        );
        assert!(
            found("Agent: And your passport number?\n\nCaller: I don't have it\nOrder 533412088")
                .is_empty(),
            "one line break at most"
        );
    }

    #[test]
    fn a_nir_needs_its_key() {
        assert_eq!(
            found("Mon numéro de sécurité sociale : 1 84 03 76 451 089 96"),
            [("FR_NIR", "1 84 03 76 451 089 96".into())]
        );
        assert_eq!(
            found("NIR 290027512345621"),
            [("FR_NIR", "290027512345621".into())]
        );
        // Corsica: department 2A reads as 19.
        assert_eq!(
            found("n° 185052A12345633"),
            [("FR_NIR", "185052A12345633".into())]
        );
        assert!(found("NIR 1 84 03 76 451 089 97").is_empty(), "wrong key");
        assert!(!nir_valid("1840376451089"), "too short");
    }

    #[test]
    fn a_steuer_id_needs_its_check_digit_and_one_repeated_digit() {
        assert_eq!(
            found("Meine Steuer-ID lautet 86 095 742 719."),
            [("DE_TAX_ID", "86 095 742 719".into())]
        );
        assert!(tax_id_valid("86095742719"));
        assert!(!tax_id_valid("86095742718"), "wrong check digit");
        assert!(!tax_id_valid("12345678903"), "no repeated digit");
        assert!(!tax_id_valid("23950128368"), "two repeated digits");
        assert!(!tax_id_valid("06095742719"), "leading zero");
        let mut out = Vec::new();
        find("Rechnung 86095742719", &mut out);
        assert_eq!(out[0].score, CHECKED_WITHOUT_CONTEXT, "no context word");
        out.clear();
        find("Steuer-Identifikationsnummer: 86095742719", &mut out);
        assert_eq!(out[0].score, CHECKED);
    }

    #[test]
    fn a_german_id_card_number_needs_its_check_digit_and_its_name() {
        assert_eq!(
            found("Personalausweisnummer L01X00T471"),
            [("DE_ID_CARD", "L01X00T471".into())]
        );
        assert_eq!(
            found("Ausweis-Nr.: T220001293"),
            [("DE_ID_CARD", "T220001293".into())]
        );
        assert_eq!(
            found("die Nummer meines Ausweises ist L01X00T471"),
            [("DE_ID_CARD", "L01X00T471".into())]
        );
        assert!(
            found("Personalausweis L01X00T472").is_empty(),
            "wrong check digit"
        );
        assert!(found("Bestellung L01X00T471").is_empty(), "no context word");
    }

    #[test]
    fn uk_numbers() {
        assert_eq!(
            found("My NI number is AB 12 34 56 C"),
            [("UK_NINO", "AB 12 34 56 C".into())]
        );
        assert_eq!(found("NINO: JG103759A"), [("UK_NINO", "JG103759A".into())]);
        assert!(found("QQ123456C").is_empty(), "Q never starts one");
        assert!(found("GB123456A").is_empty(), "GB is never issued");
        assert!(found("AB123456E").is_empty(), "the suffix is A to D");
        assert_eq!(
            found("NHS number 943 476 5919"),
            [("UK_NHS", "943 476 5919".into())]
        );
        assert!(
            found("NHS number 943 476 5918").is_empty(),
            "wrong check digit"
        );
        assert!(found("call 943 476 5919").is_empty(), "no context word");
    }

    #[test]
    fn itins_use_their_group_ranges() {
        assert_eq!(
            found("ITIN 912-70-1234"),
            [("US_ITIN", "912-70-1234".into())]
        );
        assert_eq!(found("912 94 1234"), [("US_ITIN", "912 94 1234".into())]);
        assert!(found("912-69-1234").is_empty(), "69 is no ITIN group");
        assert!(found("912-70 1234").is_empty(), "mixed separators");
    }

    #[test]
    fn passports_and_driving_licences_follow_their_names_in_five_languages() {
        for (text, want) in [
            (
                "My passport number is C01X00T47.",
                ("PASSPORT", "C01X00T47"),
            ),
            ("Reisepassnummer: C01X00T47", ("PASSPORT", "C01X00T47")),
            ("numéro de passeport 12AB34567", ("PASSPORT", "12AB34567")),
            ("pasaporte n.º PAA123456", ("PASSPORT", "PAA123456")),
            ("paspoortnummer NW7RK1234", ("PASSPORT", "NW7RK1234")),
            (
                "driving licence MORGA753116SM9IJ",
                ("DRIVER_LICENSE", "MORGA753116SM9IJ"),
            ),
            (
                "Führerscheinnummer B072RRE2I55",
                ("DRIVER_LICENSE", "B072RRE2I55"),
            ),
            (
                "permis de conduire n° 13AA00002",
                ("DRIVER_LICENSE", "13AA00002"),
            ),
            (
                "rijbewijsnummer 5123456789",
                ("DRIVER_LICENSE", "5123456789"),
            ),
        ] {
            assert_eq!(found(text), [(want.0, want.1.to_owned())], "{text}");
        }
        assert!(found("my passport expired last week").is_empty());
        assert!(found("passport ABCDEFG").is_empty(), "no digit: a word");
    }

    #[test]
    fn identifiers_typed_in_lower_case_are_found_and_mixed_case_words_are_not() {
        for (text, want) in [
            (
                "mein reisepass hat die nummer pli166023, brauchen sie noch etwas?",
                ("PASSPORT", "pli166023"),
            ),
            (
                "führerschein nummer b072rre2i55",
                ("DRIVER_LICENSE", "b072rre2i55"),
            ),
            (
                "personalausweis nummer t220001293",
                ("DE_ID_CARD", "t220001293"),
            ),
        ] {
            assert_eq!(found(text), [(want.0, want.1.to_owned())], "{text}");
        }
        assert!(
            found("passport Ab12345").is_empty(),
            "neither capitals nor lower case"
        );
        assert!(
            found("passport number 1234567890123").is_empty(),
            "longer than a passport number"
        );
    }
}
