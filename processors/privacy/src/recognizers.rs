//! Recognizers: find personal data in text. Structured identifiers are validated
//! (Luhn, mod-97, SSN rules, IP parsing, digit counts; national identifiers by their check
//! digits, in [`crate::national`]), not just matched; free-form ones (names, addresses,
//! dates of birth, ages) need context words.
//!
//! Spans are byte offsets into the text they were found in; [`crate::scrub`] converts
//! them to char offsets for output.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::LazyLock;

use regex::Regex;

/// One finding.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// Presidio's entity name (PERSON, EMAIL_ADDRESS, …).
    pub entity_type: &'static str,
    /// Byte offset of the start.
    pub start: usize,
    /// Byte offset of the end (exclusive).
    pub end: usize,
    /// Confidence in [0, 1].
    pub score: f64,
    /// Which recognizer found it.
    pub recognizer: &'static str,
}

pub(crate) fn re(pattern: &str) -> Regex {
    // The lazy DFA's cache per pattern: at the default 2 MiB, the patterns with case-folded
    // words of five languages and Unicode classes (streets, sign-offs, form fields) filled it
    // on ordinary text, and rebuilding states took a third of the scrubber's time.
    regex::RegexBuilder::new(pattern)
        .dfa_size_limit(32 << 20)
        .build()
        .unwrap_or_else(|e| panic!("invalid built-in pattern {pattern}: {e}"))
}

// Word boundaries next to ASCII characters of a pattern are ASCII ones, `(?-u:\b)`: a
// Unicode `\b` keeps the regex crate's lazy DFA off any text with a non-ASCII letter in it
// (most German, French and Spanish text), and the slower engines then took about a seventh
// of the scrubber's time; an ASCII `\b` differs only where a non-ASCII letter touches the
// match. A boundary before `\p{Lu}` cannot be ASCII (the capital may be "Ö"): STREET has
// none there (leftmost-first matching starts a capitalised street name at its first
// letter anyway; only a capital inside a word, "xStraße", now starts a match too), and
// ORGANIZATION keeps its Unicode boundaries.
static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)(?-u:\b)[a-z0-9][a-z0-9._%+-]{0,63}@(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,24}(?-u:\b)",
    )
});
static URL: LazyLock<Regex> =
    LazyLock::new(|| re(r#"(?i)\b(?:https?://|www\.)[^\s<>"']+[^\s<>"'.,;:!?)]"#));
static CARD: LazyLock<Regex> = LazyLock::new(|| re(r"(?-u:\b)(?:\d[ -]?){12,18}\d(?-u:\b)"));
static IBAN: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?-u:\b)[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}(?-u:\b)"));
/// An IBAN written in lower case ("gb30adof99386654921055"), mixed case included; read
/// only with the country's IBAN length and ten digits after the check digits (see
/// [`iban_lower`]).
static IBAN_ANY_CASE: LazyLock<Regex> = LazyLock::new(|| re(r"(?i)(?-u:\b)[a-z]{2}\d{2}"));

/// The IBAN length of each country in the SWIFT IBAN registry.
#[rustfmt::skip]
const IBAN_LENGTHS: &[(&str, usize)] = &[
    ("AD", 24), ("AE", 23), ("AL", 28), ("AT", 20), ("AZ", 28), ("BA", 20), ("BE", 16),
    ("BG", 22), ("BH", 22), ("BR", 29), ("BY", 28), ("CH", 21), ("CR", 22), ("CY", 28),
    ("CZ", 24), ("DE", 22), ("DK", 18), ("DO", 28), ("EE", 20), ("EG", 29), ("ES", 24),
    ("FI", 18), ("FO", 18), ("FR", 27), ("GB", 22), ("GE", 22), ("GI", 23), ("GL", 18),
    ("GR", 27), ("GT", 28), ("HR", 21), ("HU", 28), ("IE", 22), ("IL", 23), ("IQ", 23),
    ("IS", 26), ("IT", 27), ("JO", 30), ("KW", 30), ("KZ", 20), ("LB", 28), ("LC", 32),
    ("LI", 21), ("LT", 20), ("LU", 20), ("LV", 21), ("MC", 27), ("MD", 24), ("ME", 22),
    ("MK", 19), ("MR", 27), ("MT", 31), ("MU", 30), ("NL", 18), ("NO", 15), ("PK", 24),
    ("PL", 28), ("PS", 29), ("PT", 25), ("QA", 29), ("RO", 24), ("RS", 22), ("SA", 24),
    ("SC", 31), ("SE", 24), ("SI", 19), ("SK", 24), ("SM", 27), ("ST", 25), ("SV", 28),
    ("TL", 23), ("TN", 24), ("TR", 26), ("UA", 29), ("VA", 22), ("VG", 24), ("XK", 20),
];
static SSN: LazyLock<Regex> = LazyLock::new(|| re(r"(?-u:\b)(\d{3})-(\d{2})-(\d{4})(?-u:\b)"));
static IPV4: LazyLock<Regex> = LazyLock::new(|| re(r"(?-u:\b)(?:\d{1,3}\.){3}\d{1,3}(?-u:\b)"));
static IPV6: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)(?:^|[\s(\[])((?:[0-9a-f]{1,4}:){2,7}[0-9a-f]{0,4}(?:::?[0-9a-f]{1,4})*|(?:[0-9a-f]{1,4}:){1,7}:)",
    )
});
static PHONE: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d{2,4}(?:[ .-]?\d{2,4}){1,4}(?: ?(?i:x|ext\.?) ?\d{1,6})?(?-u:\b)",
    )
});
static NAME_CONTEXT: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i:my name is|my name's|i am|i'm|this is|call me|name:|account holder|ich heiße|ich bin|mein name ist|kontoinhaber|je m'appelle|je suis|me llamo|soy|mijn naam is|ik ben)\s+(\p{Lu}[\p{L}'-]+(?:\s+(?:van|von|de|der|da|di|le|la)?\s*\p{Lu}[\p{L}'-]+){0,2})",
    )
});
static STREET: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?:(?-u:\b)\d{1,5}[a-z]?\s+(?:\p{Lu}[\p{L}'-]*\s+){0,3}(?:Street|St\.?|Avenue|Ave\.?|Road|Rd\.?|Lane|Ln\.?|Boulevard|Blvd\.?|Drive|Dr\.|Way|Square|Sq\.?|Court|Ct\.?|Place|Pl\.?|Terrace|Locks|Crescent|Close)(?-u:\b)|(?:\p{Lu}[\p{L}-]*(?:straße|strasse|weg|allee|gracht|platz|gasse|laan|straat|vej|gade|vägen|gatan|veien|gata|katu)|(?:Rue|Calle|Via|Avenida|Plaza) (?:de |del |la |)\p{Lu}[\p{L}-]+)\s+\d{1,5}[a-z]?(?-u:\b)|(?-u:\b)\d{1,5}[a-z]?,?\s+(?:Rue|Calle|Via) (?:de |del |la |)\p{Lu}[\p{L}-]+|(?-u:\b)\d{1,5}[a-z]?,?\s+\p{Lu}[\p{L}-]*(?:straße|strasse|weg|allee|gracht|platz|gasse|laan)(?-u:\b))",
    )
});
/// Streets named by a French, Spanish, Catalan or Italian type word, in any case, with the
/// building number before ("78, boulevard de Royer", "12 bis rue des Lilas") or after
/// ("Calle Mayor 8", "boulevard Humbert 4"); and German and Dutch street names by their
/// endings with a number after ("Kerkstraat 12-3", "Bauerplatz 1/3", "Dorpsplein 7a").
static STREET_WORDS: LazyLock<Regex> = LazyLock::new(|| {
    // Not "cours", "passage", "square", "via": in running text they are ordinary words
    // before a number ("3 cours de français").
    let types = "rue|avenue|av\\.|boulevard|bd|chemin|allée|allee|impasse|place|quai|route|sentier|\
                 faubourg|esplanade|promenade|\
                 calle|c/|c\\.|cl\\.|avenida|avda\\.|plaza|pza\\.|paseo|camino|carretera|ctra\\.|ronda|\
                 rambla|travesía|glorieta|urbanización|urb\\.|alameda|cuesta|cañada|callejón|pasaje|\
                 pasadizo|vial|bulevar|costanilla|\
                 carrer|avinguda|plaça|passeig|camí";
    let types: String = types.split_whitespace().collect();
    let article = "(?:(?:de la|de|du|des|del|dels|la|le|les|els)\\s+|(?:de l'|d'|l'))?";
    let name = "\\p{L}[\\p{L}'’-]*(?:\\s+(?:de |del |la |le )?\\p{Lu}[\\p{L}'’-]*){0,3}";
    // Between a Spanish street's name and its number: "Urbanización Los Olivos, portal 3".
    let unit = "(?:portal|bloque|edificio|nº|núm\\.|número)";
    // "12 bis", "12b"; not "4 a" ("boulevard Humbert 4 a été …").
    let number = "\\d{1,4}(?:\\s?(?:bis|ter)|[a-zA-Z])?";
    // Not "ring" or "berg": "Spring 2024".
    let suffixes = "straße|strasse|str\\.|weg|allee|platz|gasse|damm|ufer|steig|\
                    straat|laan|plein|gracht|kade|singel|dijk|steeg|pad|hof|markt|dreef|baan|boulevard";
    let suffixes: String = suffixes.split_whitespace().collect();
    // The same words capitalised after a hyphen ("Dieter-Kroker-Gasse 65", "Käthe-Mude-Ring
    // 71"): "Ring" too, where a hyphen says it is a name's end.
    let hyphenated = "Straße|Strasse|Str\\.|Weg|Allee|Platz|Gasse|Damm|Ufer|Steig|Ring|\
                      Straat|Laan|Plein|Gracht|Kade|Singel|Dijk|Steeg|Pad|Hof|Markt|Dreef|Baan";
    let hyphenated: String = hyphenated.split_whitespace().collect();
    // In lower case, German's unmistakable endings only ("lehmannstraße 3/8", "noackstr. 15").
    let lower = "\\p{Ll}[\\p{Ll}-]*(?:straße|strasse|str\\.|gasse|allee|platz)";
    // Then, maybe, the postcode and town ("…, 75011 Paris", "… à 8914 Rapraz").
    let town = r"(?:,?\s+(?:à\s+|in\s+|en\s+|te\s+)?\d{4,5}[ \t]+\p{L}[\p{L}'’-]*(?:[ -]\p{Lu}[\p{L}'’-]*){0,3})?";
    re(&format!(
        r"(?:(?i:(?-u:\b){number},?\s+(?:{types})\s+{article}){name}|(?i:(?-u:\b)(?:{types})\s+{article}){name},?\s+(?i:{unit}\s*)?{number}(?-u:\b)|(?:\p{{Lu}}[\p{{L}}-]*(?:{suffixes})|\p{{Lu}}[\p{{L}}-]*-(?:{hyphenated})|{lower})\s*\d{{1,4}}(?:[/-]\d{{1,4}}|[a-zA-Z])?(?-u:\b)(?:\s[a-zA-Z](?-u:\b))?){town}"
    ))
});
/// A German street named by a preposition and a noun, with its number ("Am Stadtgraben 3",
/// "An der Kirche 12a", "Zur Alten Mühle 4"); see [`street`] for what may follow it.
static DE_PREPOSITION_STREET: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?-u:\b)(?:Am|An der|An den|Im|In der|In den|Zum|Zur|Auf dem|Auf der|Hinter dem|Hinter der|Unter den|Vor dem|Beim)[ \t]+(\p{Lu}\p{Ll}[\p{L}-]*(?:[ \t]+\p{Lu}\p{Ll}[\p{L}-]*)?)[ \t]+\d{1,3}[a-zA-Z]?(?-u:\b)",
    )
});
/// The postcode and town right after a street ("…, 79098 Freiburg im Breisgau").
static STREET_TOWN: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"^,?[ \t]+\d{4,5}[ \t]+\p{Lu}[\p{L}'’-]*(?:[ \t]+(?:(?:im|am|an der|ob der)[ \t]+)?\p{Lu}[\p{L}'’-]*){0,3}",
    )
});
/// A French, Spanish or Catalan street without a number: its type word, then a
/// capitalised name ("chemin de Payet", "Calle Mayor", "boulevard Aurélie Vidal").
static STREET_NAMED: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?-u:\b)(?i:rue|avenue|boulevard|chemin|allée|impasse|quai|faubourg|esplanade|promenade|calle|avenida|paseo|camino|urbanización|alameda|cuesta|cañada|callejón|pasaje|pasadizo|bulevar|carrer|avinguda|passeig)\s+(?i:(?:de la|de|du|des|del|dels)\s+|(?:de l'|d'))?\p{Lu}[\p{L}'’-]*(?:\s+\p{Lu}[\p{L}'’-]*){0,3}",
    )
});
/// A postcode with its town where nothing else reads so: a Dutch postcode anywhere ("4374
/// SW Geldermalsen"), five or four digits after a word that says where ("in 46011
/// Tetuán", "à 84318 Montesson").
static POSTCODE_TOWN: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?:(?-u:\b)\d{4} ?[A-Z]{2}|(?i:(?-u:\b)(?:in|en|à|nach|naar|te)\s+)(\d{4,5}))[ \t]+\p{Lu}[\p{L}'’-]+(?:[ -]\p{Lu}[\p{L}'’-]+){0,2}",
    )
});
/// A UK postcode in capitals, outward and inward code apart ("S6 7YW", "SW1A 1AA"), with
/// the town right before it if there is one ("Brendamouth S6 7YW", "Derry, EX0 9XD").
static UK_POSTCODE: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?:(\p{Lu}[\p{L}'’-]+(?:[ -]\p{Lu}[\p{L}'’-]+){0,2}),? )?((?-u:\b)[A-Z]{1,2}\d[A-Z\d]? \d[A-Z]{2})(?-u:\b)",
    )
});
/// An Irish Eircode ("P31 KX82", "D02 AF30", "D6W 1234"): a routing key, then four letters
/// and digits with both in them.
static EIRCODE: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?-u:\b)(?:[AC-FHKNPRTV-Y]\d{2}|D6W) ([0-9AC-FHKNPRTV-Y]{4})(?-u:\b)"));
/// A number read out digit by digit, as a call transcript writes it ("oh seven seven one
/// two, three four five …", "null eins sieben eins …"): seven or more digit words of one of
/// the five languages in a row ("double" and "triple" count as one).
static SPOKEN_NUMBER: LazyLock<Regex> = LazyLock::new(|| {
    let digits = "zero|oh|one|two|three|four|five|six|seven|eight|nine|double|triple|\
                  null|eins|zwei|zwo|drei|vier|fünf|sechs|sieben|acht|neun|\
                  zéro|un|deux|trois|quatre|cinq|sept|huit|neuf|\
                  cero|uno|dos|tres|cuatro|cinco|seis|siete|ocho|nueve|\
                  nul|een|één|twee|drie|vijf|zes|zeven|negen";
    let digits: String = digits.split_whitespace().collect();
    re(&format!(
        r"(?i)(?-u:\b)(?:{digits})(?:[ \t,.-]+(?:{digits})){{6,}}(?-u:\b)"
    ))
});
/// A name spelled out letter by letter: four or more single letters apart ("K O B E L T",
/// "t-o-v-a-r", "F. A. R. Í. A. S", "E - C - K"), five or more with commas ("G, U, E, R,
/// I, N"; "A, B, C and D" is a list).
static SPELLED: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?:^|[\s:,(])(\p{L}(?:(?:\s?[.-]\s?|\s)\p{L}){3,}|\p{L}(?:,\s?\p{L}){4,})\.?(?:$|[\s,;!?)])",
    )
});
/// What asks for or labels a postcode; the first postcode-like number within the next 80
/// bytes is one ("Agent: What's your postcode?\nCustomer: 45559, in …").
static POSTCODE_CUE: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)post ?code|zip(?: code)?|(?-u:\b)plz(?-u:\b)|postleitzahl|code postal|código postal|(?-u:\b)c\.?p(?-u:\b)\.?",
    )
});
/// The town right after a postcode, on its line ("01067 Dresden", "79098 Freiburg im
/// Breisgau", "46001 València").
static TOWN_AFTER: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"^[ \t]+\p{Lu}[\p{L}'’-]*(?:[ \t]+(?:(?:im|am|an der|sur|sous|de la|de|del|aan den|aan de)[ \t]+)?\p{Lu}[\p{L}'’-]*){0,3}",
    )
});
static POSTCODE: LazyLock<Regex> = LazyLock::new(|| {
    re(r"(?-u:\b)(?:\d{4,5}|\d{4} ?[A-Z]{2}|[A-Z]{1,2}\d[A-Z\d]? ?\d[A-Z]{2})(?-u:\b)")
});
/// A move or a route from one place to another, outside English: "von Halver nach
/// Bernburg", "van Zaltbommel naar Uden", "de Zarautz a Buenavista", "quitté Mougins pour
/// Frontignan". Both ends are places whether or not the gazetteer knows them; the
/// construction is what says so (see [`from_to`]).
static FROM_TO: LazyLock<Regex> = LazyLock::new(|| {
    let place = r"\p{Lu}[\p{L}'’-]*(?:\s+(?:(?:am|an der|im|ob der|sur|sous|de la|de|del|aan de|aan den|op)\s+)?\p{Lu}[\p{L}'’-]*){0,3}";
    re(&format!(
        r"(?-u:\b)(?:von|van|de|quitté)\s+({place})\s+(?:nach|naar|a|à|pour)\s+({place})"
    ))
});
/// A capitalised place after a word that says where ("en Asturias", "de Benicarló a
/// Melilla", "aus Öhringen"); the gazetteer decides whether it is one.
static PLACE_CUE: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i:(?-u:\b)(in|en|à|a|aus|uit|nach|naar|desde|depuis|from|de|van|bei|bij|near)\s+)(\p{Lu}[\p{L}'’]*(?:[ -]\p{Lu}[\p{L}'’]*){0,3})",
    )
});
/// A form's field of a name or a town, in the five languages: the value runs to the end
/// of the line ("Nachname: Förster", "Ville : Loos", "Woonplaats: Ede"). Its length is
/// bounded in [`form_field`] ([`FORM_VALUE_CHARS`]), not here: 60 copies of a Unicode
/// letter class took 16 ms of a fresh process to compile, the unbounded pattern under 2,
/// with the same matches (a value ends at its line's end either way).
static FORM_FIELD: LazyLock<Regex> = LazyLock::new(|| {
    re(&format!(
        r"(?im)^[ \t]*(?:({NAME_LABELS})|({PLACE_LABELS}))[ \t]*:[ \t]*(\p{{L}}[\p{{L}}'’ .-]*?)[ \t]*$"
    ))
});
/// The longest form field value, in characters.
const FORM_VALUE_CHARS: usize = 61;
/// The labels of a form's name fields, in the five languages (a regex alternation).
const NAME_LABELS: &str = "first name|given name|surname|last name|full name|name|vorname|nachname|\
                           familienname|prénom|nom de famille|nom|nombre|apellidos?|voornaam|\
                           achternaam|naam";
/// The labels of a form's town fields.
const PLACE_LABELS: &str = "town|city|ort|wohnort|stadt|ville|localité|localidad|ciudad|\
                            población|woonplaats|plaats";
static FORM_LABEL: LazyLock<Regex> = LazyLock::new(|| {
    re(&format!(
        r"(?i)^(?:{NAME_LABELS}|{PLACE_LABELS}|plz|cp|postcode|post code|zip|zip code|postleitzahl|code postal|código postal)$"
    ))
});
/// What may stand between a label and its colon: the other half of a two-field label
/// ("PLZ/Ort:", "Postcode/plaats:", "CP / Ciudad :").
static LABEL_REST: LazyLock<Regex> =
    LazyLock::new(|| re(r"^[ \t]*(?:/[ \t]*\p{L}[\p{L} ]{0,20}?)?[ \t]*:"));

/// Whether `word` is a form field's label ([`FORM_FIELD`], or a postcode's): before a
/// colon it names the field ("Ville : Loos"), it is not the value.
pub(crate) fn is_form_label(word: &str) -> bool {
    FORM_LABEL.is_match(word)
}

/// Whether `after`, the text after a word, makes the word a label: a colon, maybe after a
/// second label ("PLZ/Ort: …").
pub(crate) fn label_follows(after: &str) -> bool {
    LABEL_REST.is_match(after)
}
/// The words that close a message ("Danke\nMathilde", "Vielen Dank, Volker", "Grüße aus
/// Morges\nInês", "Bisous, Claire", "LG Anna"); [`SIGN_OFF_REST`] then reads the name
/// alone on the rest of it.
static SIGN_OFF_WORD: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i:danke|vielen dank|grüße|gruß|grüezi|lg|mfg|merci|cordialement|bisous|bonne journée|gracias|saludos|un saludo|bedankt|groeten|groetjes|mvg|doei|thanks|thank you|cheers|regards|best|bye)",
    )
});
/// What follows a sign-off word up to the end of the message: at most 40 characters on
/// its line ("aus Morges"), a line break, comma or space, and a name of up to three
/// capitalised words. Anchored, and tried only after a sign-off word: unanchored, with the
/// words in front, its lazy DFA built a state for every mix of partial sign-offs in a
/// text, which took a tenth of the scrubber's time on the first ten thousand texts of a
/// process.
static SIGN_OFF_REST: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"\A(?:[^\p{L}\n][^\n]{0,40}?)?(?:[,!.]?[ \t]*\n|,|[ \t])[ \t]*(\p{Lu}[\p{L}'’-]+(?:[ -]\p{Lu}[\p{L}'’-]+){0,2})[ \t.!]*\z",
    )
});
/// An honorific or a word for a person's role or kin, then a capitalised surname: "Frau
/// Textor", "Familie Stalder", "Nachbar Mader", "Mme Chevallier", "Sra. Polo", "mevrouw de
/// Hoog", "tenant Nichole Moher", "Customer Edwards", "locataire Martin". A capitalised word
/// after a role is often no name ("Customer Services", "Techniker Termin"): a capture of
/// the language's common words only is dropped (`names_in_group`).
static HONORIFIC: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?:^|[^\p{L}])(?:Herrn?|Frau|Familie|Kundin|Kunde|Nachbar(?:in)?|Kolleg(?:e|in)|Mitarbeiter(?:in)?|Mieter(?:in)?|Vermieter(?:in)?|Empfänger(?:in)?|Techniker(?:in)?|Monteur(?:in)?|Ehemann|Ehefrau|Sohn|Tochter|Monsieur|Madame|Mme|Mlle|famille|[Cc]liente?|[Ll]ocataire|[Dd]estinataire|[Tt]echnicien(?:ne)?|[Vv]oisine?|[Cc]ollègue|Señora?|Sra?\.|Srta\.|familia|[Ii]nquilin[oa]|[Dd]estinatari[oa]|[Tt]écnic[oa]|[Vv]ecin[oa]|[Cc]ompañer[oa]|[Mm]eneer|[Mm]evrouw|[Dd]e heer|Klant|[Cc]ollega|[Hh]uurder|[Oo]ntvanger|[Mm]onteur|[Bb]uurman|[Bb]uurvrouw|dhr\.|mevr\.|Mrs?\.?|Ms\.?|Miss|[Cc]ustomer|[Tt]enant|[Ll]andlord|[Ll]andlady|[Rr]ecipient|[Aa]ddressee|[Cc]aller|[Cc]olleague|[Nn]eighbou?r|[Ee]ngineer|[Tt]echnician|[Aa]ccount holder|[Cc]ardholder|[Hh]usband|[Ww]ife|[Dd]aughter)[ \t]+(?:Dr\.[ \t]+)?((?:(?:van der|van den|van de|van|de|den|der|ter|von|zu|del|de la|da|di|le|la)[ \t]+)?\p{Lu}[\p{L}'’-]+(?:[ -]\p{Lu}[\p{L}'’-]+)?)",
    )
});
static DOB: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)(?:born(?: on)?|date of birth|dob|birthday|geboren(?: am| op)?|geburtsdatum|geb\.|né(?:e)? le|date de naissance|nacid[oa] el|fecha de nacimiento|geboortedatum)[:\s]+(\d{4}-\d{2}-\d{2}|\d{1,2}[./-]\d{1,2}[./-]\d{2,4}|\d{1,2}(?:er)?\.? (?:de )?\p{L}+\.? (?:de )?\d{4})",
    )
});
/// English dates: ISO, numeric, and written out with or without the year ("October 19,
/// 1989", "the 9th of November 1978", "March 2nd", "2 March", "Tuesday the 14th"). Without a year only full
/// month names count, and "May" only capitalised ("you may 2 …" is no date): a day and a
/// month are a personal date in a customer's message (a move, a visit, a birthday).
static DATE: LazyLock<Regex> = LazyLock::new(|| {
    let months = "january|february|march|april|june|july|august|september|october|november|december|(?-i:May)";
    re(&format!(
        r"(?i)(?-u:\b)(?:\d{{4}}-\d{{2}}-\d{{2}}(?:[ T]\d{{2}}:\d{{2}}(?::\d{{2}}(?:\.\d+)?)?)?|\d{{1,2}}/\d{{1,2}}/\d{{2,4}}|\d{{1,2}}\.\d{{1,2}}\.\d{{4}}|(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|jun(?:e)?|jul(?:y)?|aug(?:ust)?|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.? \d{{1,2}}(?:st|nd|rd|th)?,? \d{{4}}|\d{{1,2}}(?:st|nd|rd|th)? (?:of )?(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:tember)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?),? \d{{4}}|(?:{months}) \d{{1,2}}(?:st|nd|rd|th)?|\d{{1,2}}(?:st|nd|rd|th)? (?:of )?(?:{months})|(?:mon|tues|wednes|thurs|fri|satur|sun)day,? the \d{{1,2}}(?:st|nd|rd|th))(?-u:\b)",
    ))
});
/// Dates written out in German, French, Spanish and Dutch ("17. Januar 2024", "1er
/// juillet 1983", "3 de mayo de 1990", "14 maart 1981"), also without the year ("1. März",
/// "15 septembre", "1 de abril", "1 mei"; in Spanish only with "de": "3 mayo" is no date),
/// and day-month-year with dashes ("14-03-1981").
static DATE_WORDS: LazyLock<Regex> = LazyLock::new(|| {
    let months = [
        // German
        "januar|jänner|februar|märz|maerz|april|mai|juni|juli|august|september|oktober|november|dezember",
        // French
        "janvier|février|fevrier|mars|avril|mai|juin|juillet|août|aout|septembre|octobre|novembre|décembre|decembre",
        // Dutch
        "januari|februari|maart|april|mei|juni|juli|augustus|september|oktober|november|december",
    ]
    .join("|");
    let spanish = "enero|febrero|marzo|abril|mayo|junio|julio|agosto|septiembre|setiembre|octubre|noviembre|diciembre";
    re(&format!(
        r"(?i)(?-u:\b)(?:\d{{1,2}}(?:er|\.)? (?:(?:de )?(?:{months}|{spanish}),? (?:de )?\d{{4}}|(?:{months})|de (?:{spanish}))|\d{{1,2}}-\d{{1,2}}-\d{{4}})(?-u:\b)"
    ))
});
static YEAR: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)(?-u:\b)(?:born(?: in)?|birth year|year of birth|class of|geboren(?: im jahr)?|né en|nacido en)\s+((?:19|20)\d{2})(?-u:\b)",
    )
});
/// Legal forms that end an organization's name, as written in Title case; their upper-case
/// forms (`CORPORATION`) are accepted too, except for the two-letter ones (upper case
/// already, and "AS" or "SA" lower-cased are words). "Co." with "Ltd" is matched in any
/// case and spacing ("Co.,Ltd.", "CO.LTD", "Co. Ltd.").
const LEGAL_FORMS: &[&str] = &[
    "Co.",
    "Inc.",
    "Ltd.",
    "Corp.",
    "N.V.",
    "B.V.",
    "S.A.",
    "S.p.A.",
    "L.L.C.",
    "L.P.",
    "K.K.",
    "Inc",
    "Ltd",
    "Limited",
    "Incorporated",
    "LLC",
    "LLP",
    "LP",
    "Corp",
    "Corporation",
    "Bancorp",
    "GmbH",
    "AG",
    "KGaA",
    "NV",
    "BV",
    "SA",
    "SE",
    "SpA",
    "SAS",
    "SARL",
    "SCA",
    "A/S",
    "Oyj",
    "plc",
    "Plc",
    "Pty",
    "Group",
    "Holdings",
    "Company",
    "Companies",
    "Bank",
    "Labs",
    "Trust",
    "Industries",
    "Partners",
    // German, Austrian, Swiss, French, Spanish, Mexican, Dutch and Belgian legal forms
    // (not "CV", "OG": "Mein CV").
    "KG",
    "OHG",
    "GbR",
    "GesbR",
    "e.V.",
    "e.G.",
    "S.A.R.L.",
    "S.A.S.",
    "Sàrl.",
    "Sàrl",
    "S.L.",
    "S.L.U.",
    "S.A.U.",
    "S.Coop.",
    "S.Com.",
    "S.L.L.",
    "S.L.N.E",
    "S.A.T.",
    "S.A.D",
    "S.C.P",
    "S.C.",
    "A.C.",
    "VOF",
    "CommV",
    "Groep",
];

/// The legal forms as [`ORGANIZATION`] accepts them: as listed, and upper case where they
/// have more than two letters; longest first, so "Corporation" is not cut at "Corp".
fn legal_forms() -> Vec<String> {
    let mut forms: Vec<String> = LEGAL_FORMS.iter().map(|f| (*f).to_owned()).collect();
    forms.extend(
        LEGAL_FORMS
            .iter()
            .filter(|f| letters(f) > 2)
            .map(|f| f.to_uppercase()),
    );
    forms.sort_by_key(|f| std::cmp::Reverse(f.len()));
    forms
}

fn letters(s: &str) -> usize {
    s.chars().filter(|c| c.is_alphabetic()).count()
}

/// Whether `text` holds a legal form anywhere (as a plain substring, or "ltd" in any case):
/// every [`ORGANIZATION`] match holds one. A literal search, so the costly pattern (Unicode
/// word boundaries, which keep the lazy DFA off text with a non-ASCII letter) runs only on
/// the few texts that may name a company.
static LEGAL_FORM_ANYWHERE: LazyLock<Regex> = LazyLock::new(|| {
    let forms: Vec<String> = legal_forms().iter().map(|f| regex::escape(f)).collect();
    re(&format!("(?i:ltd)|{}", forms.join("|")))
});

static ORGANIZATION: LazyLock<Regex> = LazyLock::new(|| {
    let forms = legal_forms();
    let alternation = |keep: &dyn Fn(&str) -> bool| {
        forms
            .iter()
            .filter(|f| keep(f))
            .map(|f| regex::escape(f))
            .collect::<Vec<_>>()
            .join("|")
    };
    let co_ltd = r"(?i:co\.?,?\s?ltd)(?:\.|\b)";
    let dotted = alternation(&|f| f.ends_with('.'));
    let words = alternation(&|f| !f.ends_with('.'));
    let long_words = alternation(&|f| !f.ends_with('.') && letters(f) >= 5);
    // Up to seven capitalised words before the form, each maybe followed by "&", "and"
    // or its German, French, Spanish or Dutch word
    // (not "of": "Jane Doe of Acme Inc." is a person and a company). A form ending in a
    // letter must end a word; a dotted or long one (five letters or more) may also be
    // glued to the name ("GroupInc.", "WILLCo.Ltd.", "CompanyLimited", as some listings
    // write them).
    let word = r"\p{Lu}[\p{L}\d&'.\-]*";
    re(&format!(
        r"\b(?:The\s+)?(?:{word}\s+(?:(?:&|and|und|et|y|en)\s+)?){{0,7}}(?:{word},?\s+(?:{co_ltd}|{dotted}|(?:{words})\b)|\p{{Lu}}[\p{{L}}\d&'\-]*?(?:{co_ltd}|{dotted}|(?:{long_words})\b))"
    ))
});
static UNIT: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?-u:\b)(?:Apt\.?|Apartment|Suite|Unit|Flat)\s*#?\d+[A-Za-z]?(?-u:\b)"));
static TITLE: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?-u:\b)(?:Mr|Mrs|Ms|Mx|Miss|Dr|Prof|Sir|Madam|Herr|Frau|Mme|Mlle|Sr|Sra|Srta|Dhr|Mevr)(?-u:\b)\.?(?:\s+\p{Lu})",
    )
});
static AGE: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)(?-u:\b)(\d{1,3})\s*(?:years? old|yrs? old|jahre alt|ans(?-u:\b)|años(?-u:\b)|jaar oud)|(?-u:\b)(?:aged?|alter)[:\s]+(\d{1,3})(?-u:\b)",
    )
});

/// Every rule recognizer (and the gazetteers) over `text`, overlaps resolved (higher
/// score, then longer, wins). [`crate::recognize`] adds the learned tagger.
pub fn rules(text: &str) -> Vec<Finding> {
    rules_in(text, None)
}

/// [`rules`] for text in a declared `language` (BCP 47): phone numbers written the
/// national way are read with the numbering plans of the language's countries (its region
/// subtag's, if it has one), international ones with every plan.
pub fn rules_in(text: &str, language: Option<&str>) -> Vec<Finding> {
    let mut all = Vec::new();
    email(text, &mut all);
    url(text, &mut all);
    // Before the cards and phone numbers: a checked identifier that also reads as a number
    // somewhere keeps its type (on a tie the earlier finding stays; one NIR in ten also
    // passes Luhn's check as a 15-digit card).
    crate::national::find(text, &mut all);
    credit_card(text, &mut all);
    iban(text, &mut all);
    us_ssn(text, &mut all);
    ip(text, &mut all);
    // Dates, found once: findings, and where no phone number is.
    let dates: Vec<(usize, usize)> = DATE
        .find_iter(text)
        .chain(DATE_WORDS.find_iter(text))
        .map(|m| (m.start(), m.end()))
        .collect();
    phone(text, &regions(language), &dates, &mut all);
    person(text, &mut all);
    street(text, language, &dates, &mut all);
    spelled(text, &mut all);
    form_field(text, language, &mut all);
    sign_off(text, language, &mut all);
    honorific(text, language, &mut all);
    postcode(text, language, &mut all);
    postcode_town(text, &mut all);
    uk_postcode(text, language, &mut all);
    eircode(text, &mut all);
    spoken_number(text, &mut all);
    place(text, language, &mut all);
    from_to(text, language, &mut all);
    date_of_birth(text, &mut all);
    age(text, &mut all);
    title(text, &mut all);
    date(text, &dates, &mut all);
    organization(text, &mut all);
    unit(text, &mut all);
    crate::gazetteer::find(text, &mut all);
    resolve_overlaps(all)
}

pub(crate) fn push(
    out: &mut Vec<Finding>,
    entity_type: &'static str,
    start: usize,
    end: usize,
    score: f64,
    recognizer: &'static str,
) {
    out.push(Finding {
        entity_type,
        start,
        end,
        score,
        recognizer,
    });
}

fn email(text: &str, out: &mut Vec<Finding>) {
    for m in EMAIL.find_iter(text) {
        push(out, "EMAIL_ADDRESS", m.start(), m.end(), 1.0, "email");
    }
}

fn url(text: &str, out: &mut Vec<Finding>) {
    for m in URL.find_iter(text) {
        push(out, "URL", m.start(), m.end(), 0.6, "url");
    }
}

/// Luhn checksum over the digits of `s`.
pub fn luhn_valid(s: &str) -> bool {
    let digits: Vec<u32> = s.chars().filter_map(|c| c.to_digit(10)).collect();
    if digits.len() < 12 {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 1 {
                if d * 2 > 9 { d * 2 - 9 } else { d * 2 }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

fn credit_card(text: &str, out: &mut Vec<Finding>) {
    for m in CARD.find_iter(text) {
        let digits = m.as_str().chars().filter(char::is_ascii_digit).count();
        if (13..=19).contains(&digits) && luhn_valid(m.as_str()) {
            push(
                out,
                "CREDIT_CARD",
                m.start(),
                m.end(),
                1.0,
                "credit_card_luhn",
            );
        }
    }
}

/// ISO 13616 check: move the first four characters to the end, letters to numbers,
/// remainder mod 97 must be 1.
pub fn iban_valid(s: &str) -> bool {
    let compact: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    if !(15..=34).contains(&compact.len()) || !compact.is_char_boundary(4) {
        return false;
    }
    let (head, tail) = compact.split_at(4);
    let mut remainder: u64 = 0;
    for c in tail.chars().chain(head.chars()) {
        let value = match c {
            '0'..='9' => u64::from(c as u8 - b'0'),
            'A'..='Z' => u64::from(c as u8 - b'A') + 10,
            _ => return false,
        };
        remainder = if value >= 10 {
            (remainder * 100 + value) % 97
        } else {
            (remainder * 10 + value) % 97
        };
    }
    remainder == 1
}

/// IBANs not written in capitals. Lower-case words joined by single spaces fit the
/// pattern and pass the mod-97 check one time in 97, so a finding here must also have its
/// country's exact IBAN length and at least ten digits after the check digits: no run of
/// words has those. Upper-case IBANs are [`iban`]'s.
fn iban_lower(text: &str, out: &mut Vec<Finding>) {
    // The pattern finds where one may start (country code and check digits); the rest is
    // read by hand: a long bounded repetition in the pattern cost a sixth of the scrubber's
    // time.
    for m in IBAN_ANY_CASE.find_iter(text) {
        let country = m.as_str()[..2].to_ascii_uppercase();
        let Some(&(_, length)) = IBAN_LENGTHS.iter().find(|(c, _)| *c == country) else {
            continue;
        };
        // `length` letters and digits from the start, single spaces between them allowed.
        let s = &text[m.start()..];
        let bytes = s.as_bytes();
        let (mut end, mut seen) = (0, 0);
        while seen < length && end < bytes.len() {
            match bytes[end] {
                b if b.is_ascii_alphanumeric() => seen += 1,
                b' ' if end > 0 && bytes.get(end + 1).is_some_and(u8::is_ascii_alphanumeric) => {}
                _ => break,
            }
            end += 1;
        }
        if seen < length {
            continue;
        }
        let value = &s[..end];
        let digits = value[4..].bytes().filter(u8::is_ascii_digit).count();
        let whole = s[end..].chars().next().is_none_or(|c| !c.is_alphanumeric());
        if whole
            && digits >= 10
            && value.bytes().any(|b| b.is_ascii_lowercase())
            && iban_valid(&value.to_ascii_uppercase())
        {
            push_iban(out, m.start(), m.start() + end);
        }
    }
}

fn push_iban(out: &mut Vec<Finding>, start: usize, end: usize) {
    push(out, "IBAN_CODE", start, end, 1.0, "iban_mod97");
}

fn iban(text: &str, out: &mut Vec<Finding>) {
    iban_lower(text, out);
    for m in IBAN.find_iter(text) {
        // The pattern may run into a following word; shrink until the checksum holds.
        let s = m.as_str();
        let mut end = s.len();
        while end >= 15 {
            if s.is_char_boundary(end) && iban_valid(&s[..end]) {
                push_iban(out, m.start(), m.start() + end);
                break;
            }
            end -= 1;
        }
    }
}

fn us_ssn(text: &str, out: &mut Vec<Finding>) {
    for c in SSN.captures_iter(text) {
        let (Some(all), Some(area), Some(group), Some(serial)) =
            (c.get(0), c.get(1), c.get(2), c.get(3))
        else {
            continue;
        };
        let area: u32 = area.as_str().parse().unwrap_or(0);
        let valid = area != 0
            && area != 666
            && area < 900
            && group.as_str() != "00"
            && serial.as_str() != "0000";
        if valid {
            push(out, "US_SSN", all.start(), all.end(), 0.85, "us_ssn");
        }
    }
}

fn ip(text: &str, out: &mut Vec<Finding>) {
    for m in IPV4.find_iter(text) {
        if m.as_str().parse::<Ipv4Addr>().is_ok() {
            push(out, "IP_ADDRESS", m.start(), m.end(), 0.95, "ipv4");
        }
    }
    for c in IPV6.captures_iter(text) {
        if let Some(m) = c.get(1)
            && m.as_str().parse::<Ipv6Addr>().is_ok()
        {
            push(out, "IP_ADDRESS", m.start(), m.end(), 0.95, "ipv6");
        }
    }
}

/// The countries whose numbering plans read a national phone number in `language`: the
/// region subtag's, else the language's two main countries; none for an undetermined
/// language (then only international numbers are read with the plans). Two at most: each
/// plan tried is another parse of the number (with libphonenumber's pattern cache at its
/// default 100 patterns, more plans also made it recompile them: 2.5× slower scrubbing;
/// [`phone_valid`] now gives it room).
pub(crate) fn regions(language: Option<&str>) -> Vec<phonenumber::country::Id> {
    use phonenumber::country::Id;
    let tag = language.unwrap_or("").trim();
    let mut parts = tag.split(['-', '_']);
    let primary = parts.next().unwrap_or("").to_ascii_lowercase();
    if let Some(region) = parts.find(|p| p.len() == 2)
        && let Ok(id) = region.to_ascii_uppercase().parse::<Id>()
    {
        return vec![id];
    }
    match primary.as_str() {
        "en" => vec![Id::US, Id::GB],
        "de" => vec![Id::DE, Id::AT],
        "fr" => vec![Id::FR, Id::BE],
        "es" => vec![Id::ES, Id::MX],
        "nl" => vec![Id::NL, Id::BE],
        _ => Vec::new(),
    }
}

/// Whether libphonenumber's metadata holds `candidate` as a valid number: an international
/// one (`+…`) in its own country's plan, a national one in one of `regions`'.
pub fn phone_valid(candidate: &str, regions: &[phonenumber::country::Id]) -> bool {
    // libphonenumber's metadata compiles its patterns on first use into a cache that holds
    // 100 of them, about six countries' worth: text in five languages (nine countries'
    // plans, and any country's for international numbers) made it compile the same
    // patterns again and again. Room for every plan the scrubber reads, once a process.
    static ROOMY_CACHE: std::sync::Once = std::sync::Once::new();
    ROOMY_CACHE.call_once(|| {
        let cache = phonenumber::metadata::DATABASE.cache();
        *cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) =
            regex_cache::RegexCache::new(2000);
    });
    let valid =
        |region| phonenumber::parse(region, candidate).is_ok_and(|n| phonenumber::is_valid(&n));
    if candidate.starts_with('+') {
        return valid(None);
    }
    regions.iter().any(|r| valid(Some(*r)))
}

/// Phone numbers outside `dates` (timestamps and dates hold digit groups that read as
/// numbers).
fn phone(
    text: &str,
    regions: &[phonenumber::country::Id],
    dates: &[(usize, usize)],
    out: &mut Vec<Finding>,
) {
    for m in PHONE.find_iter(text) {
        if dates.iter().any(|&(s, e)| m.start() < e && s < m.end()) {
            continue;
        }
        // An extension ("555-0187x123", "ext. 45") belongs to the span; the number before
        // it is what is checked.
        let s = m.as_str();
        let s = s
            .find(|c: char| c.is_ascii_alphabetic())
            .map_or(s, |at| s[..at].trim_end());
        let digits = s.chars().filter(char::is_ascii_digit).count();
        // E.164 allows up to 15 digits; fewer than 7 is an order number or a year.
        // 3-2-4 is how SSNs and ITINs are written, never a phone number.
        let ssn_shaped = SSN.find(s).is_some_and(|m| m.len() == s.len());
        if !(7..=15).contains(&digits) || is_date(s) || ssn_shaped {
            continue;
        }
        // Formatted as people write numbers, or dialled (a trunk or international prefix):
        // a bare run of digits is an order or account number as often as a phone.
        let international = s.starts_with('+');
        let formatted = international || s.contains('(') || s.contains(['-', ' ', '.']);
        let bare_dialled = !formatted && s.starts_with('0');
        // The plans are read where they decide something: an international number (near
        // certain when its country's plan holds it, so it wins over the tagger), and a bare
        // run of digits with a trunk prefix (a phone only if a plan of the language's
        // countries holds it, else an account or order number). A formatted national number
        // counts on its shape, as before: asking the plans of every candidate country about
        // each one halved the scrubbing rate (libphonenumber's pattern cache is one
        // process-wide lock around 100 compiled patterns).
        if (international || bare_dialled) && phone_valid(s, regions) {
            // One recognizer name for all: the tagger reads it as a feature.
            let score = if international { 0.95 } else { 0.9 };
            push(out, "PHONE_NUMBER", m.start(), m.end(), score, "phone");
        } else if formatted {
            // Shaped like a phone number (an international one no plan holds included:
            // a made-up number is still somebody's, or meant to look like it).
            push(out, "PHONE_NUMBER", m.start(), m.end(), 0.75, "phone");
        }
    }
}

/// A day, month and year (or year, month, day) with one separator: not a phone number.
fn is_date(s: &str) -> bool {
    let Some(sep) = s.chars().find(|c| ['-', '.', '/'].contains(c)) else {
        return false;
    };
    let parts: Vec<&str> = s.split(sep).collect();
    let [a, b, c] = parts[..] else {
        return false;
    };
    let n = |p: &str| -> Option<u32> {
        (p.chars().all(|c| c.is_ascii_digit()) && (1..=4).contains(&p.len()))
            .then(|| p.parse().ok())
            .flatten()
    };
    let (Some(x), Some(y), Some(z)) = (n(a), n(b), n(c)) else {
        return false;
    };
    let day_month = |d: u32, m: u32| (1..=31).contains(&d) && (1..=12).contains(&m);
    let year = |p: &str| p.len() == 2 || p.len() == 4;
    (year(c) && (day_month(x, y) || day_month(y, x))) || (a.len() == 4 && day_month(z, y))
}

fn person(text: &str, out: &mut Vec<Finding>) {
    for c in NAME_CONTEXT.captures_iter(text) {
        if let Some(m) = c.get(1) {
            push(out, "PERSON", m.start(), m.end(), 0.85, "person_context");
        }
    }
}

/// Which of [`crate::TAGGED_LANGUAGES`] a declared language (BCP 47) is, for its common
/// words; English when undeclared or another.
fn word_language(language: Option<&str>) -> &'static str {
    language
        .and_then(crate::tagged)
        .map_or("en", |i| crate::TAGGED_LANGUAGES[i])
}

/// Streets; in a declared language other than English also by the type words and endings
/// of [`STREET_WORDS`] ("place", "route" would read English text as addresses).
fn street(text: &str, language: Option<&str>, dates: &[(usize, usize)], out: &mut Vec<Finding>) {
    for m in STREET.find_iter(text) {
        push(out, "STREET_ADDRESS", m.start(), m.end(), 0.7, "street");
    }
    let english = word_language(language) == "en";
    if !english {
        // Above a gazetteer's full name (0.8): a type word, a number and a name is a street
        // named after somebody ("4, rue Thibault Gillet"). Not one that begins with a date's
        // year ("6 de septiembre de 1952, Ronda de Quique Gomis 584"): the search goes on
        // after the date.
        let mut at = 0;
        while let Some(m) = STREET_WORDS.find_at(text, at) {
            if let Some(&(_, end)) = dates.iter().find(|&&(s, e)| m.start() < e && s < m.end()) {
                at = end;
                continue;
            }
            push(out, "STREET_ADDRESS", m.start(), m.end(), 0.85, "street");
            at = m.end();
        }
        // Only where the number ends the phrase ("Am Stadtgraben 3, 79098 Freiburg"), not
        // where a count goes on ("Im Haushalt 3 Personen") or the noun is a time ("Am
        // Montag 3").
        if word_language(language) == "de" {
            for c in DE_PREPOSITION_STREET.captures_iter(text) {
                let (Some(m), Some(noun)) = (c.get(0), c.get(1)) else {
                    continue;
                };
                let rest = &text[m.end()..];
                let ends = rest.is_empty()
                    || rest.starts_with([',', ';', '\n', ')'])
                    || rest.starts_with(". ")
                    || rest == "."
                    || rest.starts_with(" in ");
                let time = DATE_WORDS.is_match(&format!("1. {}", noun.as_str()))
                    || matches!(
                        noun.as_str(),
                        "Montag"
                            | "Dienstag"
                            | "Mittwoch"
                            | "Donnerstag"
                            | "Freitag"
                            | "Samstag"
                            | "Sonntag"
                            | "Wochenende"
                            | "Jahr"
                            | "Tag"
                            | "Monat"
                            | "Ende"
                            | "Anfang"
                    );
                if ends && !time {
                    // With the postcode and town after it, if they follow.
                    let end = m.end() + STREET_TOWN.find(rest).map_or(0, |t| t.end());
                    push(out, "STREET_ADDRESS", m.start(), end, 0.85, "street");
                }
            }
        }
        for m in STREET_NAMED.find_iter(text) {
            push(
                out,
                "STREET_ADDRESS",
                m.start(),
                m.end(),
                0.65,
                "street_named",
            );
        }
    }
}

fn spelled(text: &str, out: &mut Vec<Finding>) {
    for c in SPELLED.captures_iter(text) {
        if let Some(m) = c.get(1) {
            push(out, "PERSON", m.start(), m.end(), 0.85, "spelled");
        }
    }
}

/// A name or a town in a form field ([`FORM_FIELD`]) unless made of the language's common
/// words only.
fn form_field(text: &str, language: Option<&str>, out: &mut Vec<Finding>) {
    let language = word_language(language);
    for c in FORM_FIELD.captures_iter(text) {
        let (Some(value), ty) = (
            c.get(3)
                .filter(|v| v.as_str().chars().nth(FORM_VALUE_CHARS).is_none()),
            if c.get(1).is_some() {
                "PERSON"
            } else {
                "LOCATION"
            },
        ) else {
            continue;
        };
        if !crate::gazetteer::common_words_only(value.as_str(), language) {
            push(out, ty, value.start(), value.end(), 0.85, "form_field");
        }
    }
}

/// A name alone after the words that close a message, at its end: the first sign-off word
/// (not inside a longer word) that [`SIGN_OFF_REST`] reads a name after.
fn sign_off(text: &str, language: Option<&str>, out: &mut Vec<Finding>) {
    let language = word_language(language);
    let mut from = 0;
    while let Some(word) = SIGN_OFF_WORD.find_at(text, from) {
        // Search again from the next character: a word that starts inside this one.
        from = word.start()
            + text[word.start()..]
                .chars()
                .next()
                .map_or(1, char::len_utf8);
        if text[..word.start()]
            .chars()
            .next_back()
            .is_some_and(char::is_alphabetic)
        {
            continue;
        }
        let Some(name) = SIGN_OFF_REST
            .captures(&text[word.end()..])
            .and_then(|c| c.get(1))
        else {
            continue;
        };
        if !crate::gazetteer::common_words_only(name.as_str(), language) {
            let start = word.end() + name.start();
            push(out, "PERSON", start, start + name.len(), 0.85, "sign_off");
        }
        return;
    }
}

fn honorific(text: &str, language: Option<&str>, out: &mut Vec<Finding>) {
    names_in_group(&HONORIFIC, text, language, "honorific", out);
}

/// `pattern`'s first group as a PERSON, unless made of `language`'s common words only.
fn names_in_group(
    pattern: &Regex,
    text: &str,
    language: Option<&str>,
    recognizer: &'static str,
    out: &mut Vec<Finding>,
) {
    let language = word_language(language);
    for c in pattern.captures_iter(text) {
        if let Some(m) = c.get(1)
            && !crate::gazetteer::common_words_only(m.as_str(), language)
        {
            // "Mrs Costello's neighbours": the name without the possessive.
            let name = m.as_str();
            let name = name
                .strip_suffix("'s")
                .or_else(|| name.strip_suffix("’s"))
                .filter(|n| !n.is_empty())
                .unwrap_or(name);
            push(
                out,
                "PERSON",
                m.start(),
                m.start() + name.len(),
                0.85,
                recognizer,
            );
        }
    }
}

fn postcode_town(text: &str, out: &mut Vec<Finding>) {
    for c in POSTCODE_TOWN.captures_iter(text) {
        let (Some(all), digits) = (c.get(0), c.get(1)) else {
            continue;
        };
        let start = digits.map_or(all.start(), |d| d.start());
        push(
            out,
            "STREET_ADDRESS",
            start,
            all.end(),
            0.8,
            "postcode_town",
        );
    }
}

/// UK postcodes without a cue: the shape is distinctive enough. With the town before it, a
/// postcode is the end of an address (`STREET_ADDRESS`), else a `ZIP_CODE`. A town the
/// pattern takes that is a common word ("Hello SW1A 1AA") is left out.
fn uk_postcode(text: &str, language: Option<&str>, out: &mut Vec<Finding>) {
    for c in UK_POSTCODE.captures_iter(text) {
        let code = c.get(2).expect("the postcode group always takes part");
        match c.get(1) {
            Some(town)
                if !crate::gazetteer::common_words_only(
                    town.as_str(),
                    language.unwrap_or("en"),
                ) =>
            {
                push(
                    out,
                    "STREET_ADDRESS",
                    town.start(),
                    code.end(),
                    0.8,
                    "uk_postcode",
                );
            }
            _ => push(
                out,
                "ZIP_CODE",
                code.start(),
                code.end(),
                0.8,
                "uk_postcode",
            ),
        }
    }
}

fn eircode(text: &str, out: &mut Vec<Finding>) {
    for c in EIRCODE.captures_iter(text) {
        let (Some(all), Some(unique)) = (c.get(0), c.get(1)) else {
            continue;
        };
        let part = unique.as_str();
        if part.contains(|c: char| c.is_ascii_digit())
            && part.contains(|c: char| c.is_ascii_uppercase())
            || all.as_str().starts_with("D6W")
        {
            push(out, "ZIP_CODE", all.start(), all.end(), 0.8, "eircode");
        }
    }
}

fn spoken_number(text: &str, out: &mut Vec<Finding>) {
    for m in SPOKEN_NUMBER.find_iter(text) {
        push(
            out,
            "PHONE_NUMBER",
            m.start(),
            m.end(),
            0.8,
            "spoken_number",
        );
    }
}

fn postcode(text: &str, language: Option<&str>, out: &mut Vec<Finding>) {
    for cue in POSTCODE_CUE.find_iter(text) {
        let mut end = (cue.end() + 80).min(text.len());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        if let Some(m) = POSTCODE.find(&text[cue.end()..end]) {
            let start = cue.end() + m.start();
            // With its town on its line ("PLZ/Ort: 01067 Dresden", "CP: 46001 Valencia") a
            // postcode is the end of an address, as the templates label it; a capitalised
            // word of the language ("PLZ: 80331 Bitte …") is no town.
            match TOWN_AFTER.find(&text[start + m.len()..]) {
                Some(town)
                    if !crate::gazetteer::common_words_only(
                        town.as_str(),
                        word_language(language),
                    ) =>
                {
                    let end = start + m.len() + town.end();
                    push(out, "STREET_ADDRESS", start, end, 0.8, "postcode");
                }
                _ => push(out, "ZIP_CODE", start, start + m.len(), 0.8, "postcode"),
            }
        }
    }
}

/// The longest run of [`PLACE_CUE`]'s capitalised words that the gazetteer knows as a
/// place only ([`crate::gazetteer::unambiguous_place`]).
fn place(text: &str, language: Option<&str>, out: &mut Vec<Finding>) {
    let language = word_language(language);
    for c in PLACE_CUE.captures_iter(text) {
        let (Some(cue), Some(m)) = (c.get(1), c.get(2)) else {
            continue;
        };
        // In Dutch "de" and "van" begin surnames ("Maarten de Vries").
        if language == "nl" && matches!(cue.as_str().to_lowercase().as_str(), "de" | "van") {
            continue;
        }
        let words = m.as_str();
        let ends = words
            .char_indices()
            .filter(|&(_, ch)| ch == ' ' || ch == '-')
            .map(|(at, _)| at)
            .chain([words.len()]);
        let longest = ends
            .rev()
            .find(|&end| crate::gazetteer::unambiguous_place(&words[..end], language));
        if let Some(end) = longest {
            push(
                out,
                "LOCATION",
                m.start(),
                m.start() + end,
                0.8,
                "place_context",
            );
        }
    }
}

/// Both ends of a [`FROM_TO`] construction where the gazetteer knows one end as a place
/// (not "de Movistar a Vodafone"), unless either end begins with the language's ordinary
/// words ("de Lunes a Viernes", "von Herrn Kaya nach …") or reads only as a person's name
/// ("de Juan a María").
fn from_to(text: &str, language: Option<&str>, out: &mut Vec<Finding>) {
    let language = word_language(language);
    if language == "en" {
        return;
    }
    for c in FROM_TO.captures_iter(text) {
        let (Some(from), Some(to)) = (c.get(1), c.get(2)) else {
            continue;
        };
        let place = |m: &regex::Match<'_>| {
            let first = m.as_str().split([' ', '-']).next().unwrap_or("");
            !crate::gazetteer::common_words_only(first, language)
                && !crate::gazetteer::name_only(m.as_str())
        };
        let known =
            crate::gazetteer::is_place(from.as_str()) || crate::gazetteer::is_place(to.as_str());
        if known && place(&from) && place(&to) {
            for m in [from, to] {
                push(out, "LOCATION", m.start(), m.end(), 0.8, "from_to");
            }
        }
    }
}

fn date_of_birth(text: &str, out: &mut Vec<Finding>) {
    for c in DOB.captures_iter(text) {
        if let Some(m) = c.get(1) {
            push(out, "DATE_TIME", m.start(), m.end(), 0.85, "date_of_birth");
        }
    }
}

fn age(text: &str, out: &mut Vec<Finding>) {
    for c in AGE.captures_iter(text) {
        if let Some(m) = c.get(1).or_else(|| c.get(2))
            && m.as_str().parse::<u32>().is_ok_and(|a| a <= 125)
        {
            push(out, "AGE", m.start(), m.end(), 0.75, "age");
        }
    }
}

fn date(text: &str, dates: &[(usize, usize)], out: &mut Vec<Finding>) {
    for &(start, end) in dates {
        push(out, "DATE_TIME", start, end, 0.6, "date");
    }
    for c in YEAR.captures_iter(text) {
        if let Some(m) = c.get(1) {
            push(out, "DATE_TIME", m.start(), m.end(), 0.4, "year");
        }
    }
}

fn organization(text: &str, out: &mut Vec<Finding>) {
    if !LEGAL_FORM_ANYWHERE.is_match(text) {
        return;
    }
    for m in ORGANIZATION.find_iter(text) {
        push(
            out,
            "ORGANIZATION",
            m.start(),
            m.end(),
            // Above the gazetteers' full names (0.8): "Petra Acquisition Inc." is a
            // company even where its first words are also a name.
            0.85,
            "organization_legal_form",
        );
    }
}

fn unit(text: &str, out: &mut Vec<Finding>) {
    for m in UNIT.find_iter(text) {
        push(
            out,
            "STREET_ADDRESS",
            m.start(),
            m.end(),
            0.6,
            "address_unit",
        );
    }
}

fn title(text: &str, out: &mut Vec<Finding>) {
    for m in TITLE.find_iter(text) {
        // The match ends with the first letter of the name that follows; the title is the
        // part before the space.
        let title_end = m
            .as_str()
            .trim_end_matches(|c: char| !c.is_whitespace())
            .trim_end()
            .len();
        push(out, "TITLE", m.start(), m.start() + title_end, 0.7, "title");
    }
}

/// Keeps, among overlapping findings, the one with the higher score, then the longer.
fn resolve_overlaps(mut all: Vec<Finding>) -> Vec<Finding> {
    all.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then((b.end - b.start).cmp(&(a.end - a.start)))
            .then(a.start.cmp(&b.start))
    });
    let mut kept: Vec<Finding> = Vec::new();
    for f in all {
        if kept.iter().all(|k| f.end <= k.start || f.start >= k.end) {
            kept.push(f);
        }
    }
    kept.sort_by_key(|f| f.start);
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(text: &str) -> Vec<(&'static str, String)> {
        rules(text)
            .into_iter()
            .map(|f| (f.entity_type, text[f.start..f.end].to_owned()))
            .collect()
    }

    /// What the rules find of type `ty` in `text` written in `language`.
    fn of(text: &str, language: &str, ty: &str) -> Vec<String> {
        rules_in(text, Some(language))
            .into_iter()
            .filter(|f| f.entity_type == ty)
            .map(|f| text[f.start..f.end].to_owned())
            .collect()
    }

    #[test]
    fn dates_without_a_year_postcodes_with_their_town_and_german_streets_by_preposition() {
        for (text, language, date) in [
            ("I moved on March 2nd and", "en", "March 2nd"),
            ("the 9th of November 1978", "en", "9th of November 1978"),
            ("on Tuesday the 14th", "en", "Tuesday the 14th"),
            ("ab dem 1. März wohne ich", "de", "1. März"),
            ("je déménage le 15 septembre", "fr", "15 septembre"),
            ("el 1 de abril me mudo", "es", "1 de abril"),
            ("per 1 mei woon ik", "nl", "1 mei"),
        ] {
            assert_eq!(of(text, language, "DATE_TIME"), [date], "{text}");
        }
        for (text, language) in [
            ("you may 2 times try", "en"),
            ("El 3 mayo compré mayonesa", "es"),
            ("im März bestellt", "de"),
        ] {
            assert!(of(text, language, "DATE_TIME").is_empty(), "{text}");
        }
        // A postcode asked for, with its town on its line: the end of an address.
        assert_eq!(
            of("PLZ/Ort: 01067 Dresden\nTel.: 0351", "de", "STREET_ADDRESS"),
            ["01067 Dresden"]
        );
        assert_eq!(
            of("CP: 46001 Valencia", "es", "STREET_ADDRESS"),
            ["46001 Valencia"]
        );
        assert_eq!(of("CP: 46001 Gracias", "es", "ZIP_CODE"), ["46001"]);
        assert_eq!(
            of("Kunde: 80331, München.", "de", "ZIP_CODE").len(),
            0,
            "no cue"
        );
        assert_eq!(
            of("Postleitzahl? 80331, München.", "de", "ZIP_CODE"),
            ["80331"]
        );
        assert!(
            of(
                "Entrega en Urbanización Los Olivos, portal 3, 2º izquierda",
                "es",
                "STREET_ADDRESS"
            )
            .iter()
            .any(|s| s.starts_with("Urbanización Los Olivos, portal 3")),
            "{:?}",
            of(
                "Entrega en Urbanización Los Olivos, portal 3, 2º izquierda",
                "es",
                "STREET_ADDRESS"
            )
        );
        // Irish Eircodes; numbers read out digit by digit.
        assert_eq!(of("Co. Cork, P31 KX82", "en", "ZIP_CODE"), ["P31 KX82"]);
        assert!(of("model A12 B345 router", "en", "ZIP_CODE").is_empty());
        assert_eq!(
            of(
                "it's oh seven seven one two, three four five six seven eight ok",
                "en",
                "PHONE_NUMBER"
            ),
            ["oh seven seven one two, three four five six seven eight"]
        );
        assert_eq!(
            of(
                "meine Nummer ist null eins sieben eins zwei drei vier fünf",
                "de",
                "PHONE_NUMBER"
            ),
            ["null eins sieben eins zwei drei vier fünf"]
        );
        assert!(of("one two three, go", "en", "PHONE_NUMBER").is_empty());
        // German streets named by a preposition, where the number ends the phrase.
        for (text, street) in [
            (
                "an Hannelore, Am Stadtgraben 3, 79098 Freiburg im Breisgau.",
                "Am Stadtgraben 3, 79098 Freiburg im Breisgau",
            ),
            ("Ich wohne Zur Alten Mühle 4 in Bochum", "Zur Alten Mühle 4"),
            ("Adresse: An der Kirche 12a", "An der Kirche 12a"),
        ] {
            assert!(
                of(text, "de", "STREET_ADDRESS").contains(&street.to_owned()),
                "{text}: {:?}",
                of(text, "de", "STREET_ADDRESS")
            );
        }
        for text in [
            "Im Haushalt 3 Personen",
            "Am Montag 3, dann",
            "Im Jahr 2024, dann",
            "Am Stadtgraben 3",
        ] {
            let language = if text.starts_with("Am Stadtgraben") {
                "en"
            } else {
                "de"
            };
            assert!(of(text, language, "STREET_ADDRESS").is_empty(), "{text}");
        }
    }

    #[test]
    fn spelled_names_postcodes_asked_for_and_places_after_where_words() {
        assert_eq!(of("Kunde: K O B E L T.", "de", "PERSON"), ["K O B E L T"]);
        assert_eq!(of("cliente: t-o-v-a-r.", "es", "PERSON"), ["t-o-v-a-r"]);
        assert_eq!(
            of("Client : F. A. R. Í. A. S.", "fr", "PERSON"),
            ["F. A. R. Í. A. S"]
        );
        assert!(of("il y a à faire", "fr", "PERSON").is_empty());
        assert_eq!(
            of("Client : G, U, E, R, I, N.", "fr", "PERSON"),
            ["G, U, E, R, I, N"]
        );
        assert!(of("plans A, B, C and D", "en", "PERSON").is_empty());
        assert_eq!(
            of(
                "Agent: What's your postcode?\nCustomer: SW1A 1AA, in London.",
                "en",
                "ZIP_CODE"
            ),
            ["SW1A 1AA"]
        );
        assert_eq!(
            of(
                "¿Cuál es su código postal?\nCliente: 41711, en Vizcaya.",
                "es",
                "ZIP_CODE"
            ),
            ["41711"]
        );
        assert!(of("Ich habe 41711 Punkte gesammelt.", "de", "ZIP_CODE").is_empty());
        // UK postcodes need no cue; with the town before them they end an address.
        assert_eq!(
            of(
                "Hi, I'm Gary from Brendamouth S6 7YW about roaming.",
                "en",
                "STREET_ADDRESS"
            ),
            ["Brendamouth S6 7YW"]
        );
        assert_eq!(
            of("Hello SW1A 1AA is where it went", "en", "ZIP_CODE"),
            ["SW1A 1AA"]
        );
        assert!(of("Hello SW1A 1AA is where it went", "en", "STREET_ADDRESS").is_empty());
        assert!(of("Plan A1 2BCD, model X 3YZ", "en", "ZIP_CODE").is_empty());
        let places = of(
            "Somos una clínica en Asturias y vamos de Melilla a Madrid.",
            "es",
            "LOCATION",
        );
        assert!(places.contains(&"Asturias".to_owned()) && places.contains(&"Melilla".to_owned()));
        // A place the gazetteer also knows as a name ("Paris") is left to the tagger.
        let mut out = Vec::new();
        place("Sie kommt aus Paris, er aus Hamburg.", Some("de"), &mut out);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].start, "Sie kommt aus Paris, er aus ".len());
    }

    #[test]
    fn names_in_form_fields_sign_offs_and_after_honorifics() {
        let names = |text: &str, language: &str| {
            let mut out = Vec::new();
            form_field(text, Some(language), &mut out);
            sign_off(text, Some(language), &mut out);
            honorific(text, Some(language), &mut out);
            out.into_iter()
                .map(|f| (f.entity_type, text[f.start..f.end].to_owned()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names(
                "Vorname: Lioba\nNachname: Förster\nOrt: Neustadt am Rübenberge",
                "de"
            ),
            [
                ("PERSON", "Lioba".to_owned()),
                ("PERSON", "Förster".to_owned()),
                ("LOCATION", "Neustadt am Rübenberge".to_owned())
            ]
        );
        assert_eq!(
            names("Ville : Loos", "fr"),
            [("LOCATION", "Loos".to_owned())]
        );
        assert_eq!(
            names("Richtig wäre X.\nDanke\nMathilde", "de"),
            [("PERSON", "Mathilde".to_owned())]
        );
        assert_eq!(
            names("Vielen Dank, Volker", "de"),
            [("PERSON", "Volker".to_owned())]
        );
        assert_eq!(
            names("Die Familie Stalder", "de"),
            [("PERSON", "Stalder".to_owned())]
        );
        assert_eq!(
            names("les voisins de Mme Chevallier aussi", "fr"),
            [("PERSON", "Chevallier".to_owned())]
        );
        assert_eq!(
            names("Beste mevrouw de Hoog, dank", "nl"),
            [("PERSON", "de Hoog".to_owned())]
        );
        // Roles and kin before a name, in each language; a role before common words is
        // no name; a possessive stays outside the name.
        for (text, language, name) in [
            (
                "address 39 Burnett Terrace, tenant Wendy Clark",
                "en",
                "Wendy Clark",
            ),
            ("Customer Edwards has already called twice", "en", "Edwards"),
            (
                "delivery address 38 Durkin Street, recipient Rachel Storey.",
                "en",
                "Rachel Storey",
            ),
            (
                "the whole building, Mrs Costello's neighbours too",
                "en",
                "Costello",
            ),
            ("Der Mieter Jannik Vogt zieht aus", "de", "Jannik Vogt"),
            ("le locataire Martin est parti", "fr", "Martin"),
            ("el técnico Joaquín vino ayer", "es", "Joaquín"),
            ("de huurder Bram Visser", "nl", "Bram Visser"),
        ] {
            assert_eq!(
                names(text, language),
                [("PERSON", name.to_owned())],
                "{text}"
            );
        }
        assert!(names("Please call Customer Services today", "en").is_empty());
        assert!(names("Bitte nennen Sie dem Techniker Nummer und Vertrag", "de").is_empty());
        let mut out = Vec::new();
        postcode_town(
            "ligt in 4374 SW Geldermalsen, en hij woont in 46011 Tetuán. 10000 Euro",
            &mut out,
        );
        assert_eq!(out.len(), 2, "{out:?}");
        // The first sign-off word a name follows, not one inside another word
        // ("Bestellung", "dankend"), nor one a long sentence follows.
        assert_eq!(
            names(
                "Danke für die schnelle Antwort zu meiner Bestellung vom Montag.\nGrüße\nInês",
                "de"
            ),
            [("PERSON", "Inês".to_owned())]
        );
        assert!(names("Ich habe dankend Anna", "de").is_empty());
        assert!(names("Die Bestellung Anna", "de").is_empty());
        assert_eq!(
            names("Grüße aus Morges\nInês", "de"),
            [("PERSON", "Inês".to_owned())]
        );
        // Common words are no names: "Frau Doktor", "Danke\nIhr Team".
        assert!(names("Danke\nIhr Team", "de").is_empty());
        assert!(names("meine Frau Hilfe", "de").is_empty());
        assert!(names("Name: Bitte angeben", "de").is_empty());
        // A field's value is 61 characters at most: longer is a sentence, not a name.
        let long = format!(
            "Nom: Marie-Christine {}",
            "Delacroix-".repeat(4) + "Lefebvre"
        );
        let at_most = "Nom: Marie-Christine Delacroix-Delacroix-Delacroix-Lefebvre Rouxel";
        assert_eq!(at_most.chars().count() - "Nom: ".len(), 61);
        assert_eq!(names(at_most, "fr").len(), 1);
        assert!(long.chars().count() - "Nom: ".len() > 61);
        assert!(names(&long, "fr").is_empty(), "{long}");
        assert_eq!(
            names(&format!("{long}\nVille : Loos"), "fr"),
            [("LOCATION", "Loos".to_owned())]
        );
    }

    #[test]
    fn cards_need_a_valid_luhn_checksum() {
        assert!(luhn_valid("4111 1111 1111 1111"));
        assert!(!luhn_valid("4111 1111 1111 1112"));
        assert_eq!(
            found("card 4111-1111-1111-1111 ok"),
            vec![("CREDIT_CARD", "4111-1111-1111-1111".into())]
        );
        assert!(
            found("order 4111 1111 1111 1112")
                .iter()
                .all(|(t, _)| *t != "CREDIT_CARD")
        );
    }

    #[test]
    fn ibans_need_mod_97() {
        assert!(iban_valid("DE89 3704 0044 0532 0130 00"));
        assert!(iban_valid("GB82WEST12345698765432"));
        assert!(!iban_valid("DE89 3704 0044 0532 0130 01"));
        assert_eq!(
            found("IBAN DE89 3704 0044 0532 0130 00, holder"),
            vec![("IBAN_CODE", "DE89 3704 0044 0532 0130 00".into())]
        );
    }

    #[test]
    fn a_lower_case_iban_needs_its_country_length_and_digits_too() {
        for (text, iban) in [
            (
                "iban gb30adof99386654921055 thanks",
                "gb30adof99386654921055",
            ),
            (
                "my iban is de89 3704 0044 0532 0130 00 ok",
                "de89 3704 0044 0532 0130 00",
            ),
            ("Iban: Nl91abna0417164300.", "Nl91abna0417164300"),
        ] {
            assert_eq!(found(text), vec![("IBAN_CODE", iban.into())], "{text}");
        }
        // The checksum wrong; a country without IBANs; cut inside a longer token; words.
        for text in [
            "iban gb30adof99386654921056 thanks",
            "us30adof99386654921055",
            "de89370400440532013000123",
            "ab12 the quick brown fox jumps over the lazy dog again and again",
        ] {
            assert!(
                found(text).iter().all(|(t, _)| *t != "IBAN_CODE"),
                "{text}: {:?}",
                found(text)
            );
        }
    }

    #[test]
    fn ssns_follow_the_issuing_rules() {
        assert_eq!(
            found("ssn 457-55-5462."),
            vec![("US_SSN", "457-55-5462".into())]
        );
        // Regression: the sample data's "My SSN is 219-09-9999" leaked while published
        // example numbers were excluded; anything SSN-shaped and valid in range goes.
        assert_eq!(
            found("My SSN is 219-09-9999"),
            vec![("US_SSN", "219-09-9999".into())]
        );
        for never_issued in [
            "000-12-3456",
            "666-12-3456",
            "900-12-3456",
            "123-00-4567",
            "123-45-0000",
        ] {
            assert!(
                found(never_issued).iter().all(|(t, _)| *t != "US_SSN"),
                "{never_issued}"
            );
        }
    }

    #[test]
    fn ip_addresses_must_parse() {
        assert_eq!(
            found("from 203.0.113.42 today"),
            vec![("IP_ADDRESS", "203.0.113.42".into())]
        );
        assert!(
            found("version 1.2.3.400")
                .iter()
                .all(|(t, _)| *t != "IP_ADDRESS")
        );
        assert_eq!(
            found("addr 2001:db8::1f here"),
            vec![("IP_ADDRESS", "2001:db8::1f".into())]
        );
    }

    #[test]
    fn emails_phones_and_urls() {
        assert_eq!(
            found("mail maria.schmidt@example.com or call +49 30 901820"),
            vec![
                ("EMAIL_ADDRESS", "maria.schmidt@example.com".into()),
                ("PHONE_NUMBER", "+49 30 901820".into())
            ]
        );
        assert_eq!(
            found("ring (415) 555-0132"),
            vec![("PHONE_NUMBER", "(415) 555-0132".into())]
        );
        assert!(found("order 12345 in 2026").is_empty());
        // An extension belongs to the number.
        for (text, phone) in [
            ("the right one is 355-538-6146x04718.", "355-538-6146x04718"),
            (
                "tel: 879.249.3901 ext. 7731 | email",
                "879.249.3901 ext. 7731",
            ),
        ] {
            assert_eq!(found(text), vec![("PHONE_NUMBER", phone.into())], "{text}");
        }
        assert!(found("a 1920x1080 screen").is_empty());
        assert_eq!(
            found("see https://example.com/a?b=1."),
            vec![("URL", "https://example.com/a?b=1".into())]
        );
    }

    #[test]
    fn names_need_context_words() {
        assert_eq!(
            found("Hi, my name is Maria Schmidt and"),
            vec![("PERSON", "Maria Schmidt".into())]
        );
        assert_eq!(
            found("Ich heiße Lukas Müller."),
            vec![("PERSON", "Lukas Müller".into())]
        );
        assert_eq!(
            found("account holder Pierre van Dijk."),
            vec![("PERSON", "Pierre van Dijk".into())]
        );
        // Without context words a name needs the gazetteer (see gazetteer.rs).
        assert_eq!(
            found("Maria called about the router"),
            vec![("PERSON", "Maria".into())]
        );
        assert_eq!(
            found("Dr. Hannah Okafor"),
            vec![("TITLE", "Dr.".into()), ("PERSON", "Hannah Okafor".into())]
        );
    }

    #[test]
    fn addresses_dates_of_birth_and_ages() {
        assert_eq!(
            found("I live at 12 Baker Street, London. Born 1984-03-07."),
            vec![
                ("STREET_ADDRESS", "12 Baker Street".into()),
                ("LOCATION", "London".into()),
                ("DATE_TIME", "1984-03-07".into())
            ]
        );
        assert_eq!(
            found("Meine Adresse: Hauptstraße 5, Berlin"),
            vec![
                ("STREET_ADDRESS", "Hauptstraße 5".into()),
                ("LOCATION", "Berlin".into())
            ]
        );
        // A street whose name starts with a capital outside ASCII, after a non-ASCII word:
        // the boundaries beside ASCII characters are ASCII ones, the one before a capital
        // is none.
        assert_eq!(
            found("Straße: Überseestraße 12, für Jürgen"),
            vec![
                ("STREET_ADDRESS", "Überseestraße 12".into()),
                ("PERSON", "Jürgen".into())
            ]
        );
        let street = |text: &str| {
            let mut out = Vec::new();
            street(text, None, &[], &mut out);
            out.into_iter()
                .map(|f| text[f.start..f.end].to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(street("né à Ávilaplatz 3"), vec!["Ávilaplatz 3"]);
        assert_eq!(
            street("Zürich, 14b Rue de Lausanne"),
            vec!["14b Rue de Lausanne"]
        );
        // In French, Spanish, Catalan, German and Dutch text, by type words and endings.
        let streets_in = |text: &str, language: &str| {
            let mut out = Vec::new();
            super::street(text, Some(language), &[], &mut out);
            resolve_overlaps(out)
                .into_iter()
                .map(|f| text[f.start..f.end].to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            streets_in("Nous habitons 78, boulevard de Royer à Lyon", "fr"),
            ["78, boulevard de Royer"]
        );
        assert_eq!(
            streets_in("pas au 9 bis rue des lilas, merci", "fr"),
            ["9 bis rue des lilas"]
        );
        assert_eq!(
            streets_in("au boulevard Humbert 4 a été", "fr"),
            ["boulevard Humbert 4"]
        );
        assert_eq!(
            streets_in("vivo en Carrer de Mallorca 12", "es"),
            ["Carrer de Mallorca 12"]
        );
        assert_eq!(
            streets_in("Wir wohnen am Bauerplatz 1/3.", "de"),
            ["Bauerplatz 1/3"]
        );
        assert_eq!(
            streets_in("Daten: Dieter-Kroker-Gasse 65-53, 67000 Siegen, IBAN", "de"),
            ["Dieter-Kroker-Gasse 65-53, 67000 Siegen"]
        );
        assert_eq!(
            streets_in("wohnhaft lehmannstraße 3/8, 17987 berlin", "de"),
            ["lehmannstraße 3/8, 17987 berlin"]
        );
        assert_eq!(
            streets_in("Käthe-Mude-Ring 71", "de"),
            ["Käthe-Mude-Ring 71"]
        );
        assert!(streets_in("im Spring 2024 und im Ring 5", "de").is_empty());
        // Both ends of a move, the one the gazetteer does not know too.
        let places = |text: &str, language: &str| {
            let mut out = Vec::new();
            from_to(text, Some(language), &mut out);
            out.iter()
                .map(|f| text[f.start..f.end].to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            places("Seit ich von Halver nach Berlin gezogen bin", "de"),
            ["Halver", "Berlin"]
        );
        assert_eq!(
            places(
                "desde que me mudé de Zarautz a Madrid internet va lento",
                "es"
            ),
            ["Zarautz", "Madrid"]
        );
        assert!(places("me cambié de Movistar a Vodafone", "es").is_empty());
        assert!(places("abierto de Lunes a Madrid", "es").is_empty());
        assert!(places("Seit ich von Halver nach Berlin gezogen bin", "en").is_empty());
        // Spanish street types beyond "Calle", abbreviated ones too, before a name.
        for street in [
            "C. de Rosario Bilbao 43",
            "Urbanización Francisca Castellanos 4",
            "Cañada de Emigdio Lladó 52",
            "Alameda Segismundo Vizcaíno 30",
            "Pasadizo Lucila Navarro 34",
        ] {
            assert_eq!(
                streets_in(&format!("El contador de {street} se leyó"), "es"),
                [street]
            );
        }
        // A word that only ends in a type's letters is none ("etc. Mayor 5").
        assert!(streets_in("facturas, etc. Mayor 5 veces", "es").is_empty());
        // A postcode's town is on its line: the next line is the form's next field.
        let text = "Postcode: 5976 WR\nWoonplaats: Holten";
        assert!(
            rules_in(text, Some("nl"))
                .iter()
                .all(|f| !text[f.start..f.end].contains('\n')),
            "{:?}",
            rules_in(text, Some("nl"))
        );
        // A date's year is no building number: the street after it is found whole.
        let text =
            "Enrique Blasco, 6 de septiembre de 1952, Ronda de Quique Gomis 584, 04405 Ceuta";
        let read: Vec<(&str, &str)> = rules_in(text, Some("es"))
            .iter()
            .map(|f| (f.entity_type, &text[f.start..f.end]))
            .collect();
        assert!(
            read.contains(&("DATE_TIME", "6 de septiembre de 1952")),
            "{read:?}"
        );
        assert!(
            read.contains(&("STREET_ADDRESS", "Ronda de Quique Gomis 584, 04405 Ceuta")),
            "{read:?}"
        );
        assert_eq!(
            streets_in("adres Dorpsplein 7a in Ede", "nl"),
            ["Dorpsplein 7a"]
        );
        assert!(streets_in("j'ai suivi 3 cours de français", "fr").is_empty());
        assert_eq!(
            streets_in("au 2, rue Schneider à 8914 Rapraz, merci", "fr"),
            ["2, rue Schneider à 8914 Rapraz"]
        );
        assert_eq!(
            streets_in("pas au chemin de Payet.", "fr"),
            ["chemin de Payet"]
        );
        assert!(streets_in("dans la rue de mon quartier", "fr").is_empty());
        assert!(streets_in("seit Spring 2024 kaputt", "de").is_empty());
        // Not in English text: "took place on Friday 12".
        assert!(streets_in("it took place on Friday 12", "en").is_empty());
        // Regression (sample data): number first, then a German or Dutch street name.
        assert_eq!(
            found("I live at 208 Königsallee, Berlin"),
            vec![
                ("STREET_ADDRESS", "208 Königsallee".into()),
                ("LOCATION", "Berlin".into())
            ]
        );
        assert_eq!(
            found("at 7 Keizersgracht."),
            vec![("STREET_ADDRESS", "7 Keizersgracht".into())]
        );
        assert_eq!(found("I am 52 years old"), vec![("AGE", "52".into())]);
    }

    #[test]
    fn phone_numbers_are_read_with_libphonenumbers_plans() {
        let phones = |text: &str, language: Option<&str>| -> Vec<(String, f64)> {
            rules_in(text, language)
                .into_iter()
                .filter(|f| f.entity_type == "PHONE_NUMBER")
                .map(|f| (text[f.start..f.end].to_owned(), f.score))
                .collect()
        };
        for (language, text, number, score) in [
            // Formatted national numbers: by their shape.
            (
                "en-US",
                "call me on 202-456-1111 tomorrow",
                "202-456-1111",
                0.75,
            ),
            ("en-US", "my cell is (202) 456 1111", "(202) 456 1111", 0.75),
            ("en-GB", "ring 020 7930 4832 please", "020 7930 4832", 0.75),
            ("de", "Rückruf bitte unter 030 901820", "030 901820", 0.75),
            ("fr", "mon portable 06 12 34 56 78", "06 12 34 56 78", 0.75),
            ("es", "mi móvil es 612 345 678", "612 345 678", 0.75),
            ("nl", "bel me op 06-12345678", "06-12345678", 0.75),
            // International: its country's plan, whatever the language.
            ("en", "reach me at +49 30 901820", "+49 30 901820", 0.95),
            ("fr", "or +1 202 456 1111", "+1 202 456 1111", 0.95),
            // Dialled with the trunk prefix, no separators: the language's plans.
            ("nl", "bel 0612345678", "0612345678", 0.9),
            ("de", "Handy 015123456789", "015123456789", 0.9),
            ("en-GB", "mobile 07911123456", "07911123456", 0.9),
        ] {
            assert_eq!(
                phones(text, Some(language)),
                [(number.to_owned(), score)],
                "{language}: {text}"
            );
        }
        // An international number no plan holds is still shaped like one; a bare run of
        // digits that no plan of the language holds is not a phone number.
        assert_eq!(
            phones("call +1 555 010 0000", Some("en")),
            [("+1 555 010 0000".to_owned(), 0.75)]
        );
        assert!(phones("klantnummer 0123456789", Some("nl")).is_empty());
        assert!(
            phones("bel 0612345678", None).is_empty(),
            "no plan to read it with"
        );
        // Dates, SSN-shaped numbers and bare digit runs are not phone numbers.
        for text in [
            "on 12.03.2024",
            "born 14-03-1981",
            "SSN 457-55-5462",
            "order 123456789",
        ] {
            assert!(
                phones(text, None).is_empty(),
                "{text}: {:?}",
                phones(text, None)
            );
        }
        assert!(is_date("2024-03-12") && is_date("3/12/24") && !is_date("555-123-4567"));
    }

    #[test]
    fn dates_of_birth_and_dates_written_out_in_five_languages() {
        for (text, date) in [
            ("Geburtsdatum: 17. Januar 1984", "17. Januar 1984"),
            ("geboren am 3. März 1985", "3. März 1985"),
            ("date de naissance : 8 juillet 1983", "8 juillet 1983"),
            ("Je suis née le 1er août 1990", "1er août 1990"),
            (
                "fecha de nacimiento: 3 de mayo de 1990",
                "3 de mayo de 1990",
            ),
            (
                "nacida el 12 de diciembre de 1979",
                "12 de diciembre de 1979",
            ),
            ("geboortedatum 14-03-1981", "14-03-1981"),
            ("geboren op 14 maart 1981", "14 maart 1981"),
        ] {
            let dates: Vec<String> = found(text)
                .into_iter()
                .filter(|(t, _)| *t == "DATE_TIME")
                .map(|(_, v)| v)
                .collect();
            assert_eq!(dates, [date], "{text}");
        }
        // Without a birth word, still a date.
        for (text, date) in [
            (
                "Die Rechnung vom 17. Januar 2024 ist falsch",
                "17. Januar 2024",
            ),
            ("la facture du 2 février 2024", "2 février 2024"),
            ("el recibo del 5 de junio de 2024", "5 de junio de 2024"),
            ("de factuur van 1 augustus 2024", "1 augustus 2024"),
        ] {
            assert!(
                found(text).contains(&("DATE_TIME", date.into())),
                "{text}: {:?}",
                found(text)
            );
        }
        // A month's name alone, or a number and a word that is no month, is no date.
        assert!(
            found("im März bestellt")
                .iter()
                .all(|(t, _)| *t != "DATE_TIME")
        );
        assert!(found("3 mayo").iter().all(|(t, _)| *t != "DATE_TIME"));
    }

    #[test]
    fn national_identifiers_survive_overlap_resolution_in_sentences() {
        for (text, want) in [
            (
                "Hola, soy cliente, mi DNI es 12345678Z y mi teléfono 612 345 678.",
                ("ES_NIF", "12345678Z"),
            ),
            (
                "Mijn BSN is 111222333, graag snel reactie.",
                ("NL_BSN", "111222333"),
            ),
            (
                "Numéro de sécurité sociale : 1 84 03 76 451 089 96, merci.",
                ("FR_NIR", "1 84 03 76 451 089 96"),
            ),
            (
                "Meine Steuer-ID: 86 095 742 719",
                ("DE_TAX_ID", "86 095 742 719"),
            ),
            (
                "My NI number is AB 12 34 56 C.",
                ("UK_NINO", "AB 12 34 56 C"),
            ),
            (
                "ITIN 912-70-1234 for the refund",
                ("US_ITIN", "912-70-1234"),
            ),
        ] {
            assert!(
                found(text).contains(&(want.0, want.1.into())),
                "{text}: {:?}",
                found(text)
            );
        }
    }

    #[test]
    fn dates_organizations_and_units() {
        assert_eq!(
            found("on 12/29/1944 at noon"),
            vec![("DATE_TIME", "12/29/1944".into())]
        );
        assert_eq!(
            found("since October 19, 1989"),
            vec![("DATE_TIME", "October 19, 1989".into())]
        );
        assert_eq!(
            found("I was born in 1982"),
            vec![("DATE_TIME", "1982".into())]
        );
        assert!(
            found("I moved here in 1982").is_empty(),
            "a year alone identifies no one"
        );
        // Weekdays identify no one and are kept.
        assert!(found("See you on Wednesday").is_empty());
        assert_eq!(
            found("I work at Amkor Technology Inc. now"),
            vec![("ORGANIZATION", "Amkor Technology Inc.".into())]
        );
        // Upper-case listings, forms glued to the name, "&" inside it.
        for org in [
            "KOBAYASHI PHARMACEUTICAL CO.LTD.",
            "SATO SHOJI CORPORATION",
            "Petra Acquisition Inc.",
            "Prudential plc",
            "Rothschild & Co SCA",
            "Fukuoka Financial GroupInc.",
            "M2i SA",
            "Soma Textiles and Industries Ltd",
            "Nippon Sheet Glass CompanyLimited",
            "Kyoei Steel Co.LTD",
            "La-Z-Boy Incorporated",
            // The legal forms of the other four languages' countries.
            "Huber Maier GmbH & Co. KG",
            "Grein y Morante S.L.U.",
            "Berenguer y Morante S.A.U.",
            "Logística Coca S.Coop.",
            "Dupont et Fils S.A.R.L.",
            "Jansen en De Vries VOF",
        ] {
            assert_eq!(
                found(&format!("a letter from {org} today")),
                vec![("ORGANIZATION", org.into())],
                "{org}"
            );
        }
        // A name starts with a capitalised word, and "of" does not join a person to the
        // company after it.
        assert_eq!(
            found("shares of Acme Inc. rose"),
            vec![("ORGANIZATION", "Acme Inc.".into())]
        );
        assert_eq!(
            found("Ask Mia Jansen of Tokai Carbon Co.LTD. today")
                .into_iter()
                .filter(|(ty, _)| *ty == "ORGANIZATION")
                .collect::<Vec<_>>(),
            vec![("ORGANIZATION", "Tokai Carbon Co.LTD.".into())]
        );
        // A legal form must end a word, and the upper-case forms of two-letter ones
        // ("SA", "AS") are not taken from lower-case words.
        for text in [
            "Paris as well",
            "the Incas built it",
            "Tom said Inc is short",
        ] {
            assert!(
                found(text).iter().all(|(ty, _)| *ty != "ORGANIZATION"),
                "{text}"
            );
        }
        assert_eq!(
            found("flat: Apt. 474"),
            vec![("STREET_ADDRESS", "Apt. 474".into())]
        );
        assert_eq!(
            found("1356 Impala St and"),
            vec![("STREET_ADDRESS", "1356 Impala St".into())]
        );
    }

    #[test]
    fn overlaps_keep_the_stronger_finding() {
        // The card's digits also look like a phone number; the validated card wins.
        assert_eq!(
            found("4111 1111 1111 1111"),
            vec![("CREDIT_CARD", "4111 1111 1111 1111".into())]
        );
    }
}
