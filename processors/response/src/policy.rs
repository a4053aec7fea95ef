//! The review policy: decides, from facts about a draft, whether it may go out on its own
//! or a person must see it first. Pure and deterministic; every decision lists the rules
//! that fired, as stable codes that reviewers, dashboards and the fairness processor read.
//!
//! Rules (each can be tuned in `[processors.response.config.policy]`):
//!
//! | code | fires when |
//! |---|---|
//! | `guardrail:<name>` | a guardrail failed on the draft |
//! | `negative_sentiment` | the message is negative with confidence ≥ `negative_confidence` |
//! | `low_confidence` | sentiment confidence < `min_sentiment_confidence`, or intent confidence < `min_intent_confidence` |
//! | `human_requested` | the customer asked for a person |
//! | `intent:<intent>` | the intent is on the `never_auto_send` list |
//! | `template_fallback` | a template drafted because better backends failed (`review_template_fallback`) |
//! | `sentiment_fallback` | sentiment came from the lexicon standing in for the model (`review_sentiment_fallback`) |

use insights_schemas::{GuardrailResult, SentimentLabel};
use serde::Deserialize;

use crate::intent::{Classified, Intent};

/// The policy's knobs.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// Negative messages at least this confident go to review.
    pub negative_confidence: f64,
    /// Sentiment less confident than this is `low_confidence`.
    pub min_sentiment_confidence: f64,
    /// Intent less confident than this is `low_confidence`.
    pub min_intent_confidence: f64,
    /// Intents whose replies always need a person.
    pub never_auto_send: Vec<String>,
    /// Review drafts that a template wrote because better backends failed.
    pub review_template_fallback: bool,
    /// Review drafts for messages whose sentiment the lexicon scored in the model's place.
    pub review_sentiment_fallback: bool,
    /// Minutes until a review item's SLA deadline, by priority.
    pub sla_minutes: SlaMinutes,
    /// Which review items need two independent decisions.
    pub second_opinion: SecondOpinion,
}

/// Which review items need a second, independent decision: a sampled fraction of all,
/// and every item of the listed priorities or intents. The sample is drawn from the
/// review id (itself derived from the input), so the same input picks the same items.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecondOpinion {
    /// The fraction of review items sampled for a second opinion, in [0, 1].
    pub fraction: f64,
    /// Priorities whose items always get one.
    pub priorities: Vec<String>,
    /// Intents whose items always get one.
    pub intents: Vec<String>,
}

impl Default for SecondOpinion {
    fn default() -> Self {
        SecondOpinion {
            fraction: 0.05,
            priorities: vec!["urgent".into()],
            intents: vec!["legal".into()],
        }
    }
}

impl SecondOpinion {
    /// How many independent decisions the review item `review_id` of `priority` about
    /// `intent` needs: 2 if it is listed or sampled, else 1.
    pub fn opinions_required(
        &self,
        review_id: uuid::Uuid,
        priority: Priority,
        intent: &str,
    ) -> i32 {
        let listed = self.priorities.iter().any(|p| p == priority.as_str())
            || self.intents.iter().any(|i| i == intent);
        // A uniform draw in [0, 1) from the id's last 56 bits: a SHA-256 in derived ids
        // (whose first 48 bits are a time), random in v4 ids; the version and variant
        // bits are before them.
        let mut tail = [0u8; 8];
        tail[1..].copy_from_slice(&review_id.as_bytes()[9..]);
        let draw = u64::from_be_bytes(tail) as f64 / (1u64 << 56) as f64;
        if listed || draw < self.fraction { 2 } else { 1 }
    }
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            negative_confidence: 0.8,
            min_sentiment_confidence: 0.5,
            min_intent_confidence: 0.5,
            never_auto_send: vec!["legal".into(), "refund".into(), "cancellation".into()],
            review_template_fallback: true,
            review_sentiment_fallback: false,
            sla_minutes: SlaMinutes::default(),
            second_opinion: SecondOpinion::default(),
        }
    }
}

/// SLA per priority, in minutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[allow(missing_docs)]
pub struct SlaMinutes {
    pub urgent: u32,
    pub high: u32,
    pub normal: u32,
    pub low: u32,
}

impl Default for SlaMinutes {
    fn default() -> Self {
        SlaMinutes {
            urgent: 15,
            high: 60,
            normal: 240,
            low: 1440,
        }
    }
}

/// How urgent a review is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[allow(missing_docs)]
pub enum Priority {
    Low,
    Normal,
    High,
    Urgent,
}

impl Priority {
    /// Every priority, lowest first.
    pub const ALL: [Priority; 4] = [
        Priority::Low,
        Priority::Normal,
        Priority::High,
        Priority::Urgent,
    ];

    /// The name in events.
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Normal => "normal",
            Priority::High => "high",
            Priority::Urgent => "urgent",
        }
    }
}

impl PolicyConfig {
    /// Checks the configuration, naming every problem.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        let so = &self.second_opinion;
        for (field, names) in [
            ("never_auto_send", &self.never_auto_send),
            ("second_opinion.intents", &so.intents),
        ] {
            for name in names.iter().filter(|n| Intent::parse(n).is_none()) {
                problems.push(format!(
                    "policy.{field}: unknown intent `{name}` (known: {})",
                    Intent::ALL.map(Intent::as_str).join(", ")
                ));
            }
        }
        for (field, v) in [
            ("negative_confidence", self.negative_confidence),
            ("min_sentiment_confidence", self.min_sentiment_confidence),
            ("min_intent_confidence", self.min_intent_confidence),
            ("second_opinion.fraction", so.fraction),
        ] {
            if !(0.0..=1.0).contains(&v) {
                problems.push(format!("policy.{field} must be within [0, 1], not {v}"));
            }
        }
        let priorities = Priority::ALL.map(Priority::as_str);
        for p in so
            .priorities
            .iter()
            .filter(|p| !priorities.contains(&p.as_str()))
        {
            problems.push(format!(
                "policy.second_opinion.priorities: unknown priority `{p}` (known: {})",
                priorities.join(", ")
            ));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    /// Minutes until the deadline of a review with this priority.
    pub fn sla(&self, priority: Priority) -> u32 {
        match priority {
            Priority::Urgent => self.sla_minutes.urgent,
            Priority::High => self.sla_minutes.high,
            Priority::Normal => self.sla_minutes.normal,
            Priority::Low => self.sla_minutes.low,
        }
    }
}

/// What the policy looks at.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    /// The message's sentiment.
    pub sentiment: SentimentLabel,
    /// Its confidence.
    pub sentiment_confidence: f64,
    /// The sentiment came from a fallback scorer.
    pub sentiment_fallback: bool,
    /// The message's intent.
    pub intent: Classified,
    /// The guardrails' verdicts on the draft.
    pub guardrails: &'a [GuardrailResult],
    /// The backend that drafted.
    pub backend: &'a str,
    /// An earlier backend failed before this one drafted.
    pub fell_back: bool,
}

/// The policy's verdict.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// The draft may go out; `reasons` records what was checked.
    AutoApprove {
        /// What passed.
        reasons: Vec<String>,
    },
    /// A person must decide.
    Review {
        /// The rules that fired.
        reasons: Vec<String>,
        /// How urgent.
        priority: Priority,
    },
}

/// Decides one draft.
pub fn decide(config: &PolicyConfig, facts: &Facts<'_>) -> Decision {
    let mut fired: Vec<(String, Priority)> = Vec::new();
    for g in facts.guardrails.iter().filter(|g| !g.passed) {
        let priority = if g.name == "no_pii" {
            Priority::High
        } else {
            Priority::Normal
        };
        fired.push((format!("guardrail:{}", g.name), priority));
    }
    if facts.sentiment == SentimentLabel::Negative
        && facts.sentiment_confidence >= config.negative_confidence
    {
        fired.push(("negative_sentiment".into(), Priority::High));
    }
    if facts.sentiment_confidence < config.min_sentiment_confidence
        || facts.intent.confidence < config.min_intent_confidence
    {
        fired.push(("low_confidence".into(), Priority::Normal));
    }
    if facts.intent.asks_for_human {
        fired.push(("human_requested".into(), Priority::High));
    }
    let intent = facts.intent.intent.as_str();
    if config.never_auto_send.iter().any(|i| i == intent) {
        let priority = if facts.intent.intent == Intent::Legal {
            Priority::Urgent
        } else {
            Priority::Normal
        };
        fired.push((format!("intent:{intent}"), priority));
    }
    if config.review_template_fallback && facts.backend == "template" && facts.fell_back {
        fired.push(("template_fallback".into(), Priority::Low));
    }
    if config.review_sentiment_fallback && facts.sentiment_fallback {
        fired.push(("sentiment_fallback".into(), Priority::Low));
    }
    match fired.iter().map(|(_, p)| *p).max() {
        Some(priority) => Decision::Review {
            reasons: fired.into_iter().map(|(r, _)| r).collect(),
            priority,
        },
        None => Decision::AutoApprove {
            reasons: vec![
                format!(
                    "sentiment:{}@{:.2}",
                    label_name(facts.sentiment),
                    facts.sentiment_confidence
                ),
                format!("intent:{intent}@{:.2}", facts.intent.confidence),
                format!("guardrails:{}_passed", facts.guardrails.len()),
                format!("backend:{}", facts.backend),
            ],
        },
    }
}

/// The label's name in events.
pub fn label_name(label: SentimentLabel) -> &'static str {
    match label {
        SentimentLabel::Negative => "negative",
        SentimentLabel::Neutral => "neutral",
        SentimentLabel::Positive => "positive",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pass(name: &str) -> GuardrailResult {
        GuardrailResult {
            name: name.into(),
            passed: true,
            detail: None,
        }
    }

    fn fail(name: &str) -> GuardrailResult {
        GuardrailResult {
            name: name.into(),
            passed: false,
            detail: Some("hit".into()),
        }
    }

    struct Case {
        sentiment: SentimentLabel,
        confidence: f64,
        intent: Intent,
        intent_confidence: f64,
        human: bool,
        failed: &'static [&'static str],
        backend: &'static str,
        fell_back: bool,
        want: Option<(&'static [&'static str], Priority)>,
    }

    const CALM: Case = Case {
        sentiment: SentimentLabel::Neutral,
        confidence: 0.9,
        intent: Intent::Account,
        intent_confidence: 0.8,
        human: false,
        failed: &[],
        backend: "openai",
        fell_back: false,
        want: None,
    };

    fn run(case: &Case) -> Decision {
        let guardrails: Vec<GuardrailResult> = ["no_pii", "policy_phrases", "length", "language"]
            .iter()
            .map(|n| {
                if case.failed.contains(n) {
                    fail(n)
                } else {
                    pass(n)
                }
            })
            .collect();
        decide(
            &PolicyConfig::default(),
            &Facts {
                sentiment: case.sentiment,
                sentiment_confidence: case.confidence,
                sentiment_fallback: false,
                intent: Classified {
                    intent: case.intent,
                    confidence: case.intent_confidence,
                    asks_for_human: case.human,
                },
                guardrails: &guardrails,
                backend: case.backend,
                fell_back: case.fell_back,
            },
        )
    }

    /// The policy table: each trigger alone, then combinations.
    #[test]
    fn policy_table() {
        use Priority::*;
        use SentimentLabel::*;
        let cases = [
            Case { ..CALM },
            Case {
                failed: &["no_pii"],
                want: Some((&["guardrail:no_pii"], High)),
                ..CALM
            },
            Case {
                failed: &["length"],
                want: Some((&["guardrail:length"], Normal)),
                ..CALM
            },
            Case {
                sentiment: Negative,
                confidence: 0.85,
                want: Some((&["negative_sentiment"], High)),
                ..CALM
            },
            // Negative but not confident enough to escalate on sentiment alone.
            Case {
                sentiment: Negative,
                confidence: 0.7,
                ..CALM
            },
            Case {
                confidence: 0.4,
                want: Some((&["low_confidence"], Normal)),
                ..CALM
            },
            Case {
                intent_confidence: 0.3,
                want: Some((&["low_confidence"], Normal)),
                ..CALM
            },
            Case {
                human: true,
                want: Some((&["human_requested"], High)),
                ..CALM
            },
            Case {
                intent: Intent::Legal,
                want: Some((&["intent:legal"], Urgent)),
                ..CALM
            },
            Case {
                intent: Intent::Refund,
                want: Some((&["intent:refund"], Normal)),
                ..CALM
            },
            Case {
                backend: "template",
                fell_back: true,
                want: Some((&["template_fallback"], Low)),
                ..CALM
            },
            // A template as the first choice (nothing failed) is not a fallback.
            Case {
                backend: "template",
                ..CALM
            },
            Case {
                sentiment: Negative,
                confidence: 0.95,
                intent: Intent::Legal,
                human: true,
                failed: &["policy_phrases", "no_pii"],
                backend: "template",
                fell_back: true,
                want: Some((
                    &[
                        "guardrail:no_pii",
                        "guardrail:policy_phrases",
                        "negative_sentiment",
                        "human_requested",
                        "intent:legal",
                        "template_fallback",
                    ],
                    Urgent,
                )),
                ..CALM
            },
            Case {
                confidence: 0.45,
                backend: "template",
                fell_back: true,
                want: Some((&["low_confidence", "template_fallback"], Normal)),
                ..CALM
            },
        ];
        for (i, case) in cases.iter().enumerate() {
            let got = run(case);
            match (&case.want, got) {
                (None, Decision::AutoApprove { reasons }) => {
                    assert_eq!(reasons.len(), 4, "case {i}");
                }
                (Some((want, want_priority)), Decision::Review { reasons, priority }) => {
                    assert_eq!(reasons, *want, "case {i}");
                    assert_eq!(priority, *want_priority, "case {i}");
                }
                (want, got) => panic!("case {i}: wanted {want:?}, got {got:?}"),
            }
        }
    }

    #[test]
    fn knobs_change_decisions() {
        let mut config = PolicyConfig {
            never_auto_send: vec![],
            review_template_fallback: false,
            ..Default::default()
        };
        let guardrails = [pass("no_pii")];
        let facts = Facts {
            sentiment: SentimentLabel::Positive,
            sentiment_confidence: 0.9,
            sentiment_fallback: true,
            intent: Classified {
                intent: Intent::Refund,
                confidence: 0.9,
                asks_for_human: false,
            },
            guardrails: &guardrails,
            backend: "template",
            fell_back: true,
        };
        assert!(matches!(
            decide(&config, &facts),
            Decision::AutoApprove { .. }
        ));
        config.review_sentiment_fallback = true;
        assert_eq!(
            decide(&config, &facts),
            Decision::Review {
                reasons: vec!["sentiment_fallback".into()],
                priority: Priority::Low
            }
        );
    }

    #[test]
    fn validation_names_every_problem() {
        let config = PolicyConfig {
            never_auto_send: vec!["legal".into(), "weather".into()],
            negative_confidence: 1.5,
            ..Default::default()
        };
        let problems = config.validate().expect_err("invalid");
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("weather"));
        assert!(PolicyConfig::default().validate().is_ok());
    }

    #[test]
    fn second_opinions_go_to_listed_items_and_a_stable_sample_of_the_rest() {
        let so = SecondOpinion::default();
        let ids: Vec<uuid::Uuid> = (0..20_000u32)
            .map(|i| {
                insights_schemas::Envelope::derived_id(
                    "response",
                    "key",
                    insights_schemas::Timestamp(0),
                    i,
                )
            })
            .collect();
        // Every urgent item and every legal one.
        assert!(
            ids.iter()
                .all(|id| so.opinions_required(*id, Priority::Urgent, "billing") == 2)
        );
        assert!(
            ids.iter()
                .all(|id| so.opinions_required(*id, Priority::Low, "legal") == 2)
        );
        // About the fraction of the others (20,000 draws: the binomial sd is 0.15%), and
        // the same ones every time.
        let sampled = ids
            .iter()
            .filter(|id| so.opinions_required(**id, Priority::Normal, "billing") == 2)
            .count();
        let share = sampled as f64 / ids.len() as f64;
        assert!((share - 0.05).abs() < 0.01, "{share}");
        let again = ids
            .iter()
            .filter(|id| so.opinions_required(**id, Priority::Normal, "billing") == 2)
            .count();
        assert_eq!(sampled, again);
        let none = SecondOpinion {
            fraction: 0.0,
            priorities: vec![],
            intents: vec![],
        };
        assert!(
            ids.iter()
                .all(|id| none.opinions_required(*id, Priority::Urgent, "legal") == 1)
        );
        let bad = PolicyConfig {
            second_opinion: SecondOpinion {
                fraction: 1.5,
                priorities: vec!["asap".into()],
                intents: vec!["weather".into()],
            },
            ..Default::default()
        };
        assert_eq!(bad.validate().expect_err("invalid").len(), 3);
    }
}
