//! Guardrails: checks every draft must pass before it can go out on its own.
//!
//! - `no_pii`: the privacy processor's recognizers find no personal data in the draft (a
//!   model can invent an email address or echo a card number).
//! - `policy_phrases`: no banned phrase, and no promise of a kind the policy does not allow
//!   (refunds, legal statements, medical claims).
//! - `length`: within `[min_chars, max_chars]` characters.
//! - `language`: the draft is in the customer's declared language, when the detector is
//!   sure of the draft's language (short texts are left alone rather than guessed).

use insights_schemas::GuardrailResult;
use serde::Deserialize;

/// The guardrails' knobs.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GuardrailConfig {
    /// Phrases no draft may contain (case-insensitive).
    pub banned_phrases: Vec<String>,
    /// Kinds of promise the policy allows: `refund`, `legal`, `medical`.
    pub allow_promises: Vec<String>,
    /// Shortest acceptable draft, in characters.
    pub min_chars: usize,
    /// Longest acceptable draft, in characters.
    pub max_chars: usize,
    /// Check that the draft is in the customer's language.
    pub check_language: bool,
    /// Findings of the PII recognizers scoring below this are ignored.
    pub pii_min_score: f64,
}

impl Default for GuardrailConfig {
    fn default() -> Self {
        GuardrailConfig {
            banned_phrases: vec![
                "guaranteed".into(),
                "i promise".into(),
                "as an ai".into(),
                "language model".into(),
            ],
            allow_promises: vec![],
            min_chars: 20,
            max_chars: 1200,
            check_language: true,
            pii_min_score: 0.5,
        }
    }
}

/// Promises by kind: what a draft must not commit to unless the policy allows the kind.
const PROMISES: &[(&str, &[&str])] = &[
    (
        "refund",
        &[
            "we will refund",
            "we'll refund",
            "you will be refunded",
            "you will receive a refund",
            "your refund has been",
            "full refund",
            "issue a refund",
            "money back",
            "wir erstatten",
            "nous vous rembourserons",
            "le reembolsaremos",
            "wij betalen",
        ],
    ),
    (
        "legal",
        &[
            "legal advice",
            "you should sue",
            "we are liable",
            "we accept liability",
            "not legally",
            "legally binding",
        ],
    ),
    (
        "medical",
        &[
            "medical advice",
            "diagnos",
            "will cure",
            "prescri",
            "you should take",
        ],
    ),
];

/// Known promise kinds.
pub const PROMISE_KINDS: [&str; 3] = ["refund", "legal", "medical"];

/// Runs every guardrail on a draft for a customer who declared `language` (BCP 47).
pub fn check(
    config: &GuardrailConfig,
    draft: &str,
    language: Option<&str>,
) -> Vec<GuardrailResult> {
    vec![
        no_pii(config, draft, language),
        policy_phrases(config, draft),
        length(config, draft),
        language_matches(config, draft, language),
    ]
}

fn result(name: &str, problem: Option<String>) -> GuardrailResult {
    GuardrailResult {
        name: name.into(),
        passed: problem.is_none(),
        detail: problem,
    }
}

fn no_pii(config: &GuardrailConfig, draft: &str, language: Option<&str>) -> GuardrailResult {
    // Drafts in German, French, Spanish or Dutch get the rules and gazetteers alone: the
    // taggers of those languages read words of our own replies as names ("ernst" in "Wir
    // nehmen Ihr Anliegen ernst", "Una persona", "en Ajustes"), and a false finding here
    // sends a good draft to review. English drafts (and undeclared ones read as English)
    // get the English tagger too.
    let english = language.is_none_or(|l| l.get(..2).is_some_and(|p| p.eq_ignore_ascii_case("en")));
    let findings = if english {
        insights_privacy::recognize_in(draft, language)
    } else {
        insights_privacy::recognizers::rules_in(draft, language)
    };
    let mut kinds: Vec<&str> = findings
        .into_iter()
        .filter(|f| f.score >= config.pii_min_score)
        .map(|f| f.entity_type)
        .collect();
    kinds.sort_unstable();
    kinds.dedup();
    result(
        "no_pii",
        (!kinds.is_empty()).then(|| format!("found {}", kinds.join(", "))),
    )
}

fn policy_phrases(config: &GuardrailConfig, draft: &str) -> GuardrailResult {
    let lower = draft.to_lowercase();
    let mut hits: Vec<String> = config
        .banned_phrases
        .iter()
        .filter(|p| !p.is_empty() && lower.contains(&p.to_lowercase()))
        .map(|p| format!("banned phrase {p:?}"))
        .collect();
    for (kind, phrases) in PROMISES {
        if config.allow_promises.iter().any(|a| a == kind) {
            continue;
        }
        if let Some(p) = phrases.iter().find(|p| lower.contains(*p)) {
            hits.push(format!("{kind} promise {p:?}"));
        }
    }
    result(
        "policy_phrases",
        (!hits.is_empty()).then(|| hits.join("; ")),
    )
}

fn length(config: &GuardrailConfig, draft: &str) -> GuardrailResult {
    let n = draft.trim().chars().count();
    let problem = if n < config.min_chars {
        Some(format!("{n} characters, fewer than {}", config.min_chars))
    } else if n > config.max_chars {
        Some(format!("{n} characters, more than {}", config.max_chars))
    } else {
        None
    };
    result("length", problem)
}

fn language_matches(
    config: &GuardrailConfig,
    draft: &str,
    language: Option<&str>,
) -> GuardrailResult {
    if !config.check_language {
        return result("language", None);
    }
    let Some(expected) = language.and_then(whatlang_of) else {
        return GuardrailResult {
            name: "language".into(),
            passed: true,
            detail: Some("customer language unknown: not checked".into()),
        };
    };
    match whatlang::detect(draft) {
        Some(info) if info.is_reliable() && info.lang() != expected => result(
            "language",
            Some(format!(
                "draft is in {}, the customer writes {}",
                info.lang().code(),
                expected.code()
            )),
        ),
        Some(info) if info.is_reliable() => result("language", None),
        _ => GuardrailResult {
            name: "language".into(),
            passed: true,
            detail: Some("draft language undetermined: not checked".into()),
        },
    }
}

/// The detector's language for a BCP 47 tag's primary subtag.
fn whatlang_of(tag: &str) -> Option<whatlang::Lang> {
    let primary = tag.split(['-', '_']).next()?.to_ascii_lowercase();
    let code = match primary.as_str() {
        "en" => "eng",
        "de" => "deu",
        "fr" => "fra",
        "es" => "spa",
        "nl" => "nld",
        "it" => "ita",
        "pt" => "por",
        "pl" => "pol",
        "sv" => "swe",
        "da" => "dan",
        "fi" => "fin",
        "tr" => "tur",
        "ru" => "rus",
        "uk" => "ukr",
        "cs" => "ces",
        other if other.len() == 3 => other,
        _ => return None,
    };
    whatlang::Lang::from_code(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(results: &[GuardrailResult]) -> Vec<&str> {
        results
            .iter()
            .filter(|r| !r.passed)
            .map(|r| r.name.as_str())
            .collect()
    }

    #[test]
    fn a_plain_reply_passes_everything() {
        let r = check(
            &GuardrailConfig::default(),
            "Thank you for your message. We are looking into your connection problem and will get back to you today.",
            Some("en"),
        );
        assert_eq!(failed(&r), Vec::<&str>::new(), "{r:?}");
        assert_eq!(r.len(), 4);
    }

    #[test]
    fn personal_data_in_a_draft_is_caught_without_echoing_it() {
        let r = check(
            &GuardrailConfig::default(),
            "Thanks! We will email you at jane.doe@example.com and call +44 20 7946 0958 today.",
            Some("en"),
        );
        assert_eq!(failed(&r), ["no_pii"]);
        let detail = r[0].detail.as_deref().unwrap_or_default();
        assert!(detail.contains("EMAIL_ADDRESS"), "{detail}");
        assert!(!detail.contains("jane"), "the detail never holds the value");
    }

    #[test]
    fn promises_need_the_policy_to_allow_them() {
        let text = "We are sorry about the double charge, we will refund the amount this week.";
        let strict = check(&GuardrailConfig::default(), text, Some("en"));
        assert_eq!(failed(&strict), ["policy_phrases"]);
        assert!(
            strict[1]
                .detail
                .as_deref()
                .unwrap_or_default()
                .contains("refund promise")
        );
        let lenient = GuardrailConfig {
            allow_promises: vec!["refund".into()],
            ..Default::default()
        };
        assert!(failed(&check(&lenient, text, Some("en"))).is_empty());
        let banned = check(
            &GuardrailConfig::default(),
            "As an AI I cannot help with that, but someone will contact you.",
            Some("en"),
        );
        assert_eq!(failed(&banned), ["policy_phrases"]);
    }

    #[test]
    fn length_bounds() {
        let config = GuardrailConfig::default();
        assert_eq!(failed(&check(&config, "Ok.", Some("en"))), ["length"]);
        let long = "We are looking into it. ".repeat(100);
        assert_eq!(failed(&check(&config, &long, Some("en"))), ["length"]);
    }

    #[test]
    fn language_must_match_when_the_detector_is_sure() {
        let config = GuardrailConfig::default();
        let english = "Thank you for contacting us. We have received your message about the invoice and a colleague will look at it today.";
        assert_eq!(failed(&check(&config, english, Some("de"))), ["language"]);
        assert!(failed(&check(&config, english, Some("en-GB"))).is_empty());
        let german = "Vielen Dank für Ihre Nachricht. Wir haben Ihre Anfrage zur Rechnung erhalten und melden uns noch heute bei Ihnen.";
        assert!(failed(&check(&config, german, Some("de"))).is_empty());
        // No declared language: nothing to compare with.
        let unknown = check(&config, english, None);
        assert!(unknown[3].passed);
        assert!(unknown[3].detail.is_some());
    }
}
