//! Privacy: detects personal data in interactions and replaces it, so that nothing
//! downstream and nothing in the event store holds it in clear.
//!
//! # Layout
//! - `recognizers` — validated recognizers for structured identifiers (email, phone, card
//!   with Luhn, IBAN with mod-97, US SSN rules, IPv4/IPv6, URL), context-driven ones
//!   (person names after "my name is"/"ich heiße"/…, street addresses and units, dates,
//!   birth years, ages, titles, organizations by legal form), and overlap resolution.
//! - `gazetteer` — names and places without context words, from Faker's locale data and
//!   the tz database (`data/`), with a stoplist of common words.
//! - [`scrub`] — applies an [`Operator`] per entity type: redact (`<EMAIL_ADDRESS>`), mask
//!   (keep the last N characters), or a keyed-HMAC pseudonym that is stable within a
//!   conversation and unlinkable across tenants.
//! - [`PrivacyProcessor`] — the pure processor: `Interaction` in, `InteractionScrubbed`
//!   out, with the spans (after replacement, char offsets) and counts, never the values;
//!   declared demographics are kept as structured fields, never derived from text.
//!
//! Not yet here (see the privacy issue): a trained token classifier for names the
//! gazetteers lack, nationalities, zip codes and whole postal addresses; AES-GCM
//! encryption into a vault.

mod gazetteer;
pub mod recognizers;

use std::collections::BTreeMap;

use hmac::{Hmac, Mac};
use insights_runtime::{Context, Output, ProcessError, Processor};
use insights_schemas::{Event, Interaction, InteractionContext, InteractionScrubbed, PiiSpan};
use sha2::Sha256;

pub use recognizers::{Finding, recognize};

/// What to do with one entity type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    /// Replace by `<TYPE>`.
    Redact,
    /// Replace every character but the last `keep_last` (digits and letters) by `*`.
    Mask {
        /// Characters kept at the end.
        keep_last: usize,
    },
    /// Replace by `<TYPE_xxxxxxxx>`, a keyed HMAC of the value within the conversation.
    Pseudonymize,
}

impl Operator {
    fn name(self) -> &'static str {
        match self {
            Operator::Redact => "redact",
            Operator::Mask { .. } => "mask",
            Operator::Pseudonymize => "pseudonymize",
        }
    }
}

/// Operators per entity type, and the secret behind pseudonyms.
#[derive(Clone)]
pub struct PrivacyConfig {
    key: [u8; 32],
    /// Operator per entity type; types not listed are redacted.
    pub operators: BTreeMap<&'static str, Operator>,
    /// Where scrubbed interactions go.
    pub output_topic: String,
}

impl std::fmt::Debug for PrivacyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrivacyConfig")
            .field("key", &"<secret>")
            .field("operators", &self.operators)
            .field("output_topic", &self.output_topic)
            .finish()
    }
}

impl PrivacyConfig {
    /// The default operators: pseudonyms for people and contact data (so a conversation
    /// stays readable), masks keeping the last 4 for card and account numbers, redaction
    /// for the rest.
    pub fn new(key: [u8; 32]) -> Self {
        let operators = BTreeMap::from([
            ("PERSON", Operator::Pseudonymize),
            ("EMAIL_ADDRESS", Operator::Pseudonymize),
            ("PHONE_NUMBER", Operator::Pseudonymize),
            ("CREDIT_CARD", Operator::Mask { keep_last: 4 }),
            ("IBAN_CODE", Operator::Mask { keep_last: 4 }),
        ]);
        Self {
            key,
            operators,
            output_topic: "interactions.scrubbed".to_owned(),
        }
    }

    fn operator(&self, entity_type: &str) -> Operator {
        self.operators
            .get(entity_type)
            .copied()
            .unwrap_or(Operator::Redact)
    }

    /// The tenant's key: pseudonyms of one tenant cannot be linked to another's.
    fn tenant_key(&self, tenant: &str) -> Hmac<Sha256> {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(b"tenant\x1f");
        mac.update(tenant.as_bytes());
        let derived = mac.finalize().into_bytes();
        <Hmac<Sha256> as Mac>::new_from_slice(&derived).expect("HMAC takes any key length")
    }

    /// A customer's pseudonym: stable across conversations within a tenant.
    pub fn customer_pseudonym(&self, tenant: &str, customer_id: &str) -> String {
        let mut mac = self.tenant_key(tenant);
        mac.update(b"customer\x1f");
        mac.update(customer_id.as_bytes());
        format!("cust_{}", hex::encode(&mac.finalize().into_bytes()[..8]))
    }

    fn value_pseudonym(
        &self,
        tenant: &str,
        conversation: &str,
        entity_type: &str,
        value: &str,
    ) -> String {
        let mut mac = self.tenant_key(tenant);
        mac.update(conversation.as_bytes());
        mac.update(b"\x1f");
        mac.update(entity_type.as_bytes());
        mac.update(b"\x1f");
        // The same person written differently ("Maria  Schmidt", "maria schmidt") is one.
        let normalized: String = value
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase();
        mac.update(normalized.as_bytes());
        format!(
            "<{entity_type}_{}>",
            hex::encode(&mac.finalize().into_bytes()[..4])
        )
    }
}

/// A replaced entity, located by char offsets.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    /// Entity type.
    pub entity_type: &'static str,
    /// Start, in chars.
    pub start: usize,
    /// End (exclusive), in chars.
    pub end: usize,
    /// Confidence.
    pub score: f64,
    /// Which recognizer.
    pub recognizer: &'static str,
    /// Which operator replaced it.
    pub operator: &'static str,
}

/// A scrubbed text with its spans on the original and on the scrubbed text.
#[derive(Debug, Clone, PartialEq)]
pub struct Scrubbed {
    /// The text with every finding replaced.
    pub text: String,
    /// Where each finding was in the original text.
    pub original: Vec<Span>,
    /// Where each replacement is in the scrubbed text.
    pub replaced: Vec<Span>,
}

/// Finds and replaces personal data in `text`. `tenant` and `conversation` scope the
/// pseudonyms.
pub fn scrub(config: &PrivacyConfig, tenant: &str, conversation: &str, text: &str) -> Scrubbed {
    let findings = recognize(text);
    let mut out = String::with_capacity(text.len());
    let mut original = Vec::with_capacity(findings.len());
    let mut replaced = Vec::with_capacity(findings.len());
    let mut last = 0;
    let mut chars_in = 0; // chars of `text` before `last`
    let mut chars_out = 0; // chars of `out`
    for f in findings {
        let before = &text[last..f.start];
        let n = before.chars().count();
        out.push_str(before);
        chars_in += n;
        chars_out += n;
        let value = &text[f.start..f.end];
        let value_chars = value.chars().count();
        let op = config.operator(f.entity_type);
        let replacement = match op {
            Operator::Redact => format!("<{}>", f.entity_type),
            Operator::Mask { keep_last } => mask(value, keep_last),
            Operator::Pseudonymize => {
                config.value_pseudonym(tenant, conversation, f.entity_type, value)
            }
        };
        let replacement_chars = replacement.chars().count();
        let span = |start, end| Span {
            entity_type: f.entity_type,
            start,
            end,
            score: f.score,
            recognizer: f.recognizer,
            operator: op.name(),
        };
        original.push(span(chars_in, chars_in + value_chars));
        replaced.push(span(chars_out, chars_out + replacement_chars));
        out.push_str(&replacement);
        chars_in += value_chars;
        chars_out += replacement_chars;
        last = f.end;
    }
    out.push_str(&text[last..]);
    Scrubbed {
        text: out,
        original,
        replaced,
    }
}

fn mask(value: &str, keep_last: usize) -> String {
    let total = value.chars().filter(char::is_ascii_alphanumeric).count();
    let mut seen = 0;
    value
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                seen += 1;
                if seen > total.saturating_sub(keep_last) {
                    c
                } else {
                    '*'
                }
            } else {
                c
            }
        })
        .collect()
}

/// The privacy processor.
#[derive(Debug, Clone)]
pub struct PrivacyProcessor {
    config: PrivacyConfig,
}

impl PrivacyProcessor {
    /// A processor with `config`.
    pub fn new(config: PrivacyConfig) -> Self {
        Self { config }
    }
}

/// Version of the detection rules and operators, on every event this processor writes.
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "+rules.1");

impl Processor for PrivacyProcessor {
    type Input = Interaction;

    fn name(&self) -> &str {
        "privacy"
    }

    fn version(&self) -> &str {
        VERSION
    }

    fn process(&mut self, i: &Interaction, ctx: &Context<'_>) -> Result<Vec<Output>, ProcessError> {
        if i.conversation_id.trim().is_empty() {
            return Err(ProcessError::Poison("conversation_id is empty".into()));
        }
        if i.customer_id.trim().is_empty() {
            return Err(ProcessError::Poison("customer_id is empty".into()));
        }
        let s = scrub(&self.config, &i.tenant_id, &i.conversation_id, &i.text);
        let mut counts: BTreeMap<String, i32> = BTreeMap::new();
        for span in &s.replaced {
            *counts.entry(span.entity_type.to_owned()).or_default() += 1;
        }
        let pii = s
            .replaced
            .iter()
            .map(|span| PiiSpan {
                entity_type: span.entity_type.to_owned(),
                start: i32::try_from(span.start).unwrap_or(i32::MAX),
                end: i32::try_from(span.end).unwrap_or(i32::MAX),
                score: span.score,
                recognizer: span.recognizer.to_owned(),
                operator: span.operator.to_owned(),
            })
            .collect();
        Ok(vec![Output {
            topic: self.config.output_topic.clone(),
            stream_id: format!("conversation-{}", i.conversation_id),
            key: i.conversation_id.clone(),
            event: Event::InteractionScrubbed(InteractionScrubbed {
                context: InteractionContext::of(
                    i,
                    ctx.input_id,
                    self.config.customer_pseudonym(&i.tenant_id, &i.customer_id),
                ),
                text: s.text,
                pii,
                pii_counts: counts,
            }),
        }])
    }
}

#[cfg(test)]
mod tests {
    use insights_runtime::Source;
    use insights_schemas::Timestamp;

    use super::*;

    fn config() -> PrivacyConfig {
        PrivacyConfig::new([7; 32])
    }

    #[test]
    fn values_are_replaced_and_spans_point_at_the_replacements() {
        let text =
            "Ich heiße Lukas Müller, Karte 4111 1111 1111 1111, IBAN DE89 3704 0044 0532 0130 00.";
        let s = scrub(&config(), "acme", "c1", text);
        assert!(
            !s.text.contains("Lukas")
                && !s.text.contains("4111 1111 1111 1111")
                && !s.text.contains("DE89 3704")
        );
        assert!(s.text.contains("**** **** **** 1111"), "{}", s.text);
        assert!(s.text.contains("**** **** **** **** **30 00"), "{}", s.text);
        for (orig, rep) in s.original.iter().zip(&s.replaced) {
            let original: String = text
                .chars()
                .skip(orig.start)
                .take(orig.end - orig.start)
                .collect();
            let replacement: String = s
                .text
                .chars()
                .skip(rep.start)
                .take(rep.end - rep.start)
                .collect();
            assert_ne!(original, replacement);
            assert!(!replacement.is_empty());
        }
        let person: String = s
            .text
            .chars()
            .skip(s.replaced[0].start)
            .take(s.replaced[0].end - s.replaced[0].start)
            .collect();
        assert!(person.starts_with("<PERSON_"), "{person}");
    }

    #[test]
    fn pseudonyms_are_stable_in_a_conversation_and_unlinkable_across_tenants() {
        let c = config();
        let a = scrub(&c, "acme", "c1", "my name is Maria Schmidt").text;
        let b = scrub(&c, "acme", "c1", "This is MARIA  Schmidt again").text;
        assert_eq!(a.rsplit(' ').next(), b.split(' ').nth(2), "{a} / {b}");
        let other_tenant = scrub(&c, "globex", "c1", "my name is Maria Schmidt").text;
        assert_ne!(a, other_tenant);
        assert_ne!(
            c.customer_pseudonym("acme", "u1"),
            c.customer_pseudonym("globex", "u1")
        );
        assert_eq!(
            c.customer_pseudonym("acme", "u1"),
            c.customer_pseudonym("acme", "u1")
        );
        let other_key = PrivacyConfig::new([8; 32]);
        assert_ne!(
            a,
            scrub(&other_key, "acme", "c1", "my name is Maria Schmidt").text
        );
    }

    #[test]
    fn the_processor_keeps_demographics_and_never_the_values() {
        let i = Interaction {
            interaction_id: Some("i1".into()),
            conversation_id: "c1".into(),
            customer_id: "cust-42".into(),
            channel: "email".into(),
            product: None,
            language: Some("en".into()),
            text: "Call me on +44 20 7946 0958, email maria@example.com".into(),
            demographics: BTreeMap::from([("age_band".into(), "25-34".into())]),
            sent_at: Timestamp(5),
            tenant_id: "acme".into(),
        };
        let source = Source {
            topic: "interactions.raw".into(),
            partition: 0,
            offset: 1,
        };
        let ctx = Context {
            input_id: "interaction:i1",
            correlation_id: "interaction:i1",
            input_time: Timestamp(0),
            now: Timestamp(9),
            source: &source,
        };
        let out = PrivacyProcessor::new(config())
            .process(&i, &ctx)
            .expect("processes");
        let Event::InteractionScrubbed(s) = &out[0].event else {
            panic!("scrubbed")
        };
        let json = serde_json::to_string(s).expect("json");
        for secret in ["7946 0958", "maria@example.com", "cust-42"] {
            assert!(!json.contains(secret), "{secret} leaked: {json}");
        }
        assert_eq!(s.context.demographics, i.demographics);
        assert_eq!(s.pii_counts.get("PHONE_NUMBER"), Some(&1));
        assert_eq!(s.pii_counts.get("EMAIL_ADDRESS"), Some(&1));
        let mut empty = i.clone();
        empty.conversation_id = " ".into();
        assert!(matches!(
            PrivacyProcessor::new(config()).process(&empty, &ctx),
            Err(ProcessError::Poison(_))
        ));
    }
}
