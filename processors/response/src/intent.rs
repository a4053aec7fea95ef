//! What a customer's message is about: a keyword classifier over the five languages of the
//! product (en, de, fr, es, nl), and whether the customer asked for a person.
//!
//! Deterministic and explainable on purpose: the review policy acts on the intent, and a
//! reviewer must be able to see why a message got one. Keywords match at the start of a
//! word (so stems match inflections: `refund` matches `refunded`) in the lower-cased text.

use std::sync::LazyLock;

use aho_corasick::AhoCorasick;
use serde::{Deserialize, Serialize};

/// The intents the product drafts for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum Intent {
    Billing,
    Refund,
    Cancellation,
    Technical,
    Account,
    Contract,
    Delivery,
    Legal,
    HumanRequest,
    Praise,
    General,
}

impl Intent {
    /// Every intent, in a fixed order.
    pub const ALL: [Intent; 11] = [
        Intent::Billing,
        Intent::Refund,
        Intent::Cancellation,
        Intent::Technical,
        Intent::Account,
        Intent::Contract,
        Intent::Delivery,
        Intent::Legal,
        Intent::HumanRequest,
        Intent::Praise,
        Intent::General,
    ];

    /// The name used in events and configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Intent::Billing => "billing",
            Intent::Refund => "refund",
            Intent::Cancellation => "cancellation",
            Intent::Technical => "technical",
            Intent::Account => "account",
            Intent::Contract => "contract",
            Intent::Delivery => "delivery",
            Intent::Legal => "legal",
            Intent::HumanRequest => "human_request",
            Intent::Praise => "praise",
            Intent::General => "general",
        }
    }

    /// The intent with this name.
    pub fn parse(name: &str) -> Option<Intent> {
        Intent::ALL.into_iter().find(|i| i.as_str() == name)
    }

    fn keywords(self) -> &'static [&'static str] {
        match self {
            Intent::Billing => &[
                "bill",
                "charged",
                "charge",
                "invoice",
                "payment",
                "overcharg",
                "rechnung",
                "abgebucht",
                "abbuchung",
                "zahlung",
                "facture",
                "prélèvement",
                "paiement",
                "factura",
                "cobrado",
                "cobro",
                "rekening",
                "factuur",
                "afgeschreven",
            ],
            Intent::Refund => &[
                "refund",
                "money back",
                "reimburse",
                "geld zurück",
                "erstattung",
                "rückerstattung",
                "rembourse",
                "reembolso",
                "devolución",
                "terugbetaling",
                "geld terug",
            ],
            Intent::Cancellation => &[
                "cancel",
                "terminate my",
                "done with you",
                "switching to",
                "kündig",
                "résili",
                "la baja",
                "quiero la baja",
                "darme de baja",
                "opzeggen",
                "opzegging",
            ],
            Intent::Technical => &[
                "not working",
                "doesn't work",
                "does not work",
                "broken",
                "failed",
                "fails",
                "keeps dropping",
                "dropping",
                "disconnect",
                "slower",
                "slow",
                "error",
                "crash",
                "outage",
                "fix it",
                "fällt",
                "funktioniert nicht",
                "verbindung",
                "kaputt",
                "ne marche",
                "panne",
                "ne fonctionne",
                "falla",
                "no funciona",
                "averiado",
                "doet het niet",
                "storing",
                "kapot",
                "connection",
            ],
            Intent::Account => &[
                "password",
                "login",
                "log in",
                "unlock",
                "my address",
                "update my address",
                "moved house",
                "account",
                "passwort",
                "wlan-passwort",
                "adresse",
                "konto",
                "mot de passe",
                "compte",
                "contraseña",
                "cuenta",
                "wachtwoord",
                "inloggen",
            ],
            Intent::Contract => &[
                "contract",
                "upgrade",
                "plan ends",
                "vertrag",
                "contrat",
                "contrato",
                "abonnement",
                "suscripción",
            ],
            Intent::Delivery => &[
                "never arrived",
                "delivery",
                "shipment",
                "shipping",
                "tracking",
                "order",
                "lieferung",
                "bestellung",
                "livraison",
                "commande",
                "entrega",
                "pedido",
                "levering",
                "bestelling",
            ],
            Intent::Legal => &[
                "lawyer",
                "attorney",
                "legal action",
                "sue you",
                "court",
                "lawsuit",
                "ombudsman",
                "regulator",
                "anwalt",
                "klage",
                "gericht",
                "avocat",
                "tribunal",
                "abogado",
                "demanda",
                "advocaat",
                "rechtszaak",
            ],
            Intent::HumanRequest => HUMAN,
            Intent::Praise => &[
                "thank",
                "thanks",
                "great service",
                "happy with",
                "works perfectly",
                "fixed",
                "danke",
                "super service",
                "merci",
                "gracias",
                "bedankt",
                "résolu",
                "perfectamente",
            ],
            Intent::General => &[],
        }
    }
}

const HUMAN: &[&str] = &[
    "human",
    "real person",
    "talk to a person",
    "speak to a person",
    "agent call me",
    "not a bot",
    "don't want a bot",
    "supervisor",
    "manager",
    "menschen",
    "mitarbeiter",
    "nicht mit einem bot",
    "humain",
    "conseiller",
    "una persona",
    "no con un robot",
    "medewerker",
    "een mens",
];

/// The classification of one message.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Classified {
    /// The intent.
    pub intent: Intent,
    /// In (0, 1]: how clearly the keywords point at it (0.3 for `general`, no keyword).
    pub confidence: f64,
    /// The customer asked for a person, whatever else the message is about.
    pub asks_for_human: bool,
}

/// Confidence given to `general` when no keyword matched.
const GENERAL_CONFIDENCE: f64 = 0.3;

/// Every intent's keywords (and the asking-for-a-person ones, under `HumanRequest`) in one
/// automaton, so that a message is scanned once rather than once per keyword (the
/// keyword-by-keyword search was 4 % of the embedded pipeline's CPU).
struct Keywords {
    automaton: AhoCorasick,
    /// Per pattern, the intents whose lists hold it.
    owners: Vec<Vec<Intent>>,
}

static KEYWORDS: LazyLock<Keywords> = LazyLock::new(|| {
    let mut patterns: Vec<&'static str> = Vec::new();
    let mut owners: Vec<Vec<Intent>> = Vec::new();
    for intent in Intent::ALL {
        for keyword in intent.keywords() {
            match patterns.iter().position(|p| p == keyword) {
                Some(at) => owners[at].push(intent),
                None => {
                    patterns.push(keyword);
                    owners.push(vec![intent]);
                }
            }
        }
    }
    Keywords {
        automaton: AhoCorasick::new(&patterns).expect("the keyword lists build an automaton"),
        owners,
    }
});

/// Classifies a message.
pub fn classify(text: &str) -> Classified {
    let lower = text.to_lowercase();
    let keywords = &*KEYWORDS;
    // Which keywords occur at the start of a word.
    let mut found = vec![false; keywords.owners.len()];
    for m in keywords.automaton.find_overlapping_iter(&lower) {
        if at_word_start(&lower, m.start()) {
            found[m.pattern().as_usize()] = true;
        }
    }
    // Keywords found per intent, by the intent's declaration index.
    let mut counts = [0usize; Intent::ALL.len()];
    for (_, owners) in found.iter().zip(&keywords.owners).filter(|(hit, _)| **hit) {
        for owner in owners {
            counts[*owner as usize] += 1;
        }
    }
    decide(|intent| counts[intent as usize])
}

/// The classification from the number of keywords of each intent found in a message
/// (`HumanRequest`'s: the asking-for-a-person ones).
fn decide(found: impl Fn(Intent) -> usize) -> Classified {
    let asks_for_human = found(Intent::HumanRequest) > 0;
    let mut hits: Vec<(Intent, usize)> = Intent::ALL
        .into_iter()
        .filter(|i| !matches!(i, Intent::General | Intent::HumanRequest))
        .map(|i| (i, found(i)))
        .filter(|(_, n)| *n > 0)
        .collect();
    // Most hits first; ties go to the intent listed first (the riskier ones are first).
    hits.sort_by_key(|h| std::cmp::Reverse(h.1));
    let (intent, confidence) = match hits.as_slice() {
        [] if asks_for_human => (Intent::HumanRequest, 0.9),
        [] => (Intent::General, GENERAL_CONFIDENCE),
        [(i, best), rest @ ..] => {
            let second = rest.first().map_or(0, |r| r.1);
            let best = *best as f64;
            let margin = best / (best + second as f64);
            (*i, margin * (0.6 + 0.2 * best).min(1.0))
        }
    };
    Classified {
        intent,
        confidence,
        asks_for_human,
    }
}

/// Whether byte `at` of `text` begins a word.
fn at_word_start(text: &str, at: usize) -> bool {
    text[..at]
        .chars()
        .next_back()
        .is_none_or(|c| !c.is_alphanumeric())
}

/// `needle` occurs in `haystack` at the start of a word.
#[cfg(test)]
fn matches_word_start(haystack: &str, needle: &str) -> bool {
    haystack
        .match_indices(needle)
        .any(|(at, _)| at_word_start(haystack, at))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_messages_get_their_intents() {
        let cases = [
            (
                "The bill for this month is wrong, I never ordered the extra package.",
                Intent::Billing,
            ),
            (
                "Absolutely unacceptable. I was charged twice and nobody answers. I want a refund NOW.",
                Intent::Billing,
            ),
            (
                "Your router is garbage and I'm talking to my lawyer.",
                Intent::Legal,
            ),
            (
                "How do I change the wifi password on my router?",
                Intent::Account,
            ),
            (
                "Thanks, the technician fixed my router quickly.",
                Intent::Praise,
            ),
            (
                "My router keeps dropping the connection every evening, can you help?",
                Intent::Technical,
            ),
            ("Ich will mein Geld zurück!", Intent::Refund),
            (
                "Das ist eine Frechheit! Mein router fällt ständig aus, ich kündige.",
                Intent::Cancellation,
            ),
            (
                "¡Es la tercera vez que falla el router! Quiero la baja.",
                Intent::Cancellation,
            ),
            ("Wann endet mein Vertrag für router?", Intent::Contract),
            ("Hello there", Intent::General),
            (
                "I don't want a bot. Please let me talk to a real person.",
                Intent::HumanRequest,
            ),
        ];
        for (text, want) in cases {
            assert_eq!(classify(text).intent, want, "{text}");
        }
    }

    #[test]
    fn asking_for_a_person_is_seen_in_every_language() {
        for text in [
            "Can a human agent call me back about the router?",
            "Ich möchte bitte mit einem Menschen sprechen, nicht mit einem Bot.",
            "Je veux parler à un conseiller humain, s'il vous plaît.",
            "Quiero hablar con una persona, no con un robot.",
            "Ik wil graag een medewerker spreken.",
        ] {
            assert!(classify(text).asks_for_human, "{text}");
        }
        assert!(!classify("My bill is wrong").asks_for_human);
    }

    /// The classifier as it was before the automaton: each keyword searched on its own.
    fn classify_keyword_by_keyword(text: &str) -> Classified {
        let lower = text.to_lowercase();
        decide(|intent| {
            intent
                .keywords()
                .iter()
                .filter(|k| matches_word_start(&lower, k))
                .count()
        })
    }

    #[test]
    fn the_automaton_classifies_every_sample_as_the_keyword_search_did() {
        let samples = include_str!("../../../samples/interactions.jsonl");
        let mut texts: Vec<String> = samples
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|v| v["text"].as_str().map(str::to_owned))
            .collect();
        assert!(texts.len() > 2_000, "the samples hold their messages");
        // Every keyword alone, inside a word, at a word start after punctuation, twice.
        for intent in Intent::ALL {
            for k in intent.keywords() {
                texts.push((*k).to_owned());
                texts.push(format!("x{k}"));
                texts.push(format!("({k}) and {k}, {k}"));
            }
        }
        for text in &texts {
            assert_eq!(
                classify(text),
                classify_keyword_by_keyword(text),
                "{text:?}"
            );
        }
    }

    #[test]
    fn keywords_match_at_word_starts_only() {
        // "bill" inside "billion"-like words still matches at a word start, but not inside
        // another word: "rebill" does not count as billing.
        assert!(matches_word_start("the bills", "bill"));
        assert!(!matches_word_start("rebill", "bill"));
        assert_eq!(classify("sparkling").intent, Intent::General);
    }

    #[test]
    fn confidence_is_lower_when_intents_compete() {
        let clear = classify("my bill and my invoice are wrong, I was overcharged");
        let mixed = classify("my bill is wrong and the router is broken");
        assert!(clear.confidence > mixed.confidence);
        assert!(mixed.confidence > 0.0 && clear.confidence <= 1.0);
        assert_eq!(classify("nothing relevant").confidence, GENERAL_CONFIDENCE);
    }
}
