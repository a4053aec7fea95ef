//! Rust types for the input record, the envelope and every event in the catalogue.
//!
//! Field names are the Avro field names, so a value converts to and from its schema by
//! name. Optional fields (`["null", T]` unions) are `Option<T>` and may be absent in JSON.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Timestamp;

/// A customer's message as producers put it on `interactions.raw` (never stored raw).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Interaction {
    /// Producer-assigned unique id, if any.
    #[serde(default)]
    pub interaction_id: Option<String>,
    /// The conversation; the partition key.
    pub conversation_id: String,
    /// The producer's customer id (personal data).
    pub customer_id: String,
    /// chat, email, phone, ...
    pub channel: String,
    /// The product the message is about.
    #[serde(default)]
    pub product: Option<String>,
    /// Declared language (BCP 47).
    #[serde(default)]
    pub language: Option<String>,
    /// The message text.
    pub text: String,
    /// Declared demographic attributes.
    #[serde(default)]
    pub demographics: BTreeMap<String, String>,
    /// When the customer sent it.
    pub sent_at: Timestamp,
    /// The tenant (schema version 2; `default` when a v1 writer did not say).
    #[serde(default = "default_tenant")]
    pub tenant_id: String,
}

fn default_tenant() -> String {
    "default".to_owned()
}

/// What every downstream event carries about its interaction, free of personal data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct InteractionContext {
    pub interaction_id: String,
    pub conversation_id: String,
    #[serde(default = "default_tenant")]
    pub tenant_id: String,
    pub customer_pseudonym: String,
    pub channel: String,
    #[serde(default)]
    pub product: Option<String>,
    #[serde(default)]
    pub language: Option<String>,
    #[serde(default)]
    pub demographics: BTreeMap<String, String>,
    pub sent_at: Timestamp,
}

impl InteractionContext {
    /// The context of an interaction, by the id its processor gave it and the customer's
    /// pseudonym: everything else is the interaction's own (PII-free) fields.
    pub fn of(
        i: &Interaction,
        interaction_id: impl Into<String>,
        customer_pseudonym: impl Into<String>,
    ) -> Self {
        Self {
            interaction_id: interaction_id.into(),
            conversation_id: i.conversation_id.clone(),
            tenant_id: i.tenant_id.clone(),
            customer_pseudonym: customer_pseudonym.into(),
            channel: i.channel.clone(),
            product: i.product.clone(),
            language: i.language.clone(),
            demographics: i.demographics.clone(),
            sent_at: i.sent_at,
        }
    }
}

/// A detected entity, located in the scrubbed text (char offsets); never its value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct PiiSpan {
    pub entity_type: String,
    pub start: i32,
    pub end: i32,
    pub score: f64,
    pub recognizer: String,
    pub operator: String,
}

/// An interaction with its personal data replaced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct InteractionScrubbed {
    pub context: InteractionContext,
    pub text: String,
    #[serde(default)]
    pub pii: Vec<PiiSpan>,
    #[serde(default)]
    pub pii_counts: BTreeMap<String, i32>,
    #[serde(default)]
    pub sealed: Vec<SealedPii>,
}

/// A value of the encrypt operator, sealed under its data subject's key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct SealedPii {
    pub token: String,
    pub entity_type: String,
    pub subject: String,
    /// Hex.
    pub nonce: String,
    /// Hex.
    pub ciphertext: String,
}

/// Sentiment classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[allow(missing_docs)]
pub enum SentimentLabel {
    Negative,
    Neutral,
    Positive,
}

/// The sentiment of a scrubbed interaction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct SentimentScored {
    pub context: InteractionContext,
    pub text: String,
    pub label: SentimentLabel,
    pub scores: BTreeMap<String, f64>,
    pub confidence: f64,
    pub model_name: String,
    pub model_version: String,
    pub backend: String,
    #[serde(default)]
    pub fallback: bool,
    pub latency_micros: i64,
}

/// One guardrail's verdict on a draft.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct GuardrailResult {
    pub name: String,
    pub passed: bool,
    #[serde(default)]
    pub detail: Option<String>,
}

/// A drafted reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct ResponseDrafted {
    pub context: InteractionContext,
    pub draft_text: String,
    pub backend: String,
    #[serde(default)]
    pub model: Option<String>,
    pub intent: String,
    pub sentiment_label: String,
    pub sentiment_confidence: f64,
    #[serde(default)]
    pub guardrails: Vec<GuardrailResult>,
    #[serde(default)]
    pub fell_back: bool,
    pub latency_micros: i64,
    #[serde(default)]
    pub prompt_tokens: Option<i32>,
    #[serde(default)]
    pub completion_tokens: Option<i32>,
}

/// A draft cleared to go out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct ResponseApproved {
    pub context: InteractionContext,
    pub draft_event_id: Uuid,
    pub final_text: String,
    pub approved_by: String,
    pub automatic: bool,
    #[serde(default)]
    pub reasons: Vec<String>,
    #[serde(default)]
    pub inquiry_text: String,
    #[serde(default)]
    pub intent: String,
}

/// A draft that needs a person.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct ReviewRequested {
    pub context: InteractionContext,
    pub draft_event_id: Uuid,
    pub reasons: Vec<String>,
    pub priority: String,
    pub sla_deadline: Timestamp,
    #[serde(default)]
    pub draft_text: String,
    #[serde(default)]
    pub inquiry_text: String,
    #[serde(default)]
    pub intent: String,
    #[serde(default)]
    pub sentiment_label: String,
    #[serde(default)]
    pub backend: String,
    /// How many independent reviewers must decide: 1, or 2 (a second opinion).
    #[serde(default = "one")]
    pub opinions_required: i32,
}

fn one() -> i32 {
    1
}

fn sole() -> String {
    "sole".into()
}

fn yes() -> bool {
    true
}

/// A review item missed its SLA deadline without a settling decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct ReviewEscalated {
    pub review_id: Uuid,
    pub from_priority: String,
    /// One step up from `from_priority`; urgent stays urgent.
    pub to_priority: String,
    /// The deadline that passed.
    pub missed_deadline: Timestamp,
    /// The new deadline.
    pub sla_deadline: Timestamp,
    /// How many times the item has been escalated, this one included.
    pub level: i32,
}

/// A reviewer took a review item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct ReviewClaimed {
    pub review_id: Uuid,
    pub reviewer: String,
}

/// A claimed review item went back to the queue: released by its reviewer (or an
/// admin), or its lease ran out without a decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct ReviewReleased {
    pub review_id: Uuid,
    /// Who held the claim.
    pub reviewer: String,
    /// `released` or `expired`.
    pub reason: String,
    /// The caller's subject, or `lease-keeper`.
    pub released_by: String,
    /// When the released claim was made.
    pub claimed_at: Timestamp,
}

/// A reviewer's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[allow(missing_docs)]
pub enum ReviewDecision {
    Approve,
    Edit,
    Reject,
}

/// A reviewer decided on a draft.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct ReviewDecided {
    pub context: InteractionContext,
    pub review_id: Uuid,
    pub reviewer: String,
    pub decision: ReviewDecision,
    #[serde(default)]
    pub edited_text: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub corrected_sentiment: Option<String>,
    /// `sole`, `first`, `second` or `arbiter`.
    #[serde(default = "sole")]
    pub role: String,
    /// Whether this decision settles the item (only a settling approve or edit sends a
    /// reply).
    #[serde(default = "yes")]
    pub settles: bool,
}

/// Counts and rates of one group in a fairness report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct GroupStats {
    pub group: String,
    pub count: i64,
    pub positives: i64,
    #[serde(default)]
    pub selection_rate: Option<f64>,
    #[serde(default)]
    pub true_positive_rate: Option<f64>,
    #[serde(default)]
    pub false_positive_rate: Option<f64>,
    /// The selection rate's Wilson interval at the report's confidence (v2).
    #[serde(default)]
    pub selection_rate_low: Option<f64>,
    #[serde(default)]
    pub selection_rate_high: Option<f64>,
}

/// A metric's confidence interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct MetricInterval {
    pub low: f64,
    pub high: f64,
}

/// Group metrics for one window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct FairnessReported {
    pub window_start: Timestamp,
    pub window_end: Timestamp,
    pub attributes: Vec<String>,
    pub outcome: String,
    pub groups: Vec<GroupStats>,
    pub metrics: BTreeMap<String, Option<f64>>,
    pub min_group_size: i32,
    #[serde(default)]
    pub excluded_groups: Vec<String>,
    /// The confidence of the intervals (v2; none in v1 reports).
    #[serde(default)]
    pub confidence: Option<f64>,
    /// Metric intervals by metric name (v2).
    #[serde(default)]
    pub intervals: BTreeMap<String, MetricInterval>,
}

/// A fairness threshold was crossed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct FairnessAlertRaised {
    pub report_event_id: Uuid,
    pub window_start: Timestamp,
    pub window_end: Timestamp,
    pub attributes: Vec<String>,
    pub outcome: String,
    pub metric: String,
    pub value: f64,
    pub threshold: f64,
    pub groups: Vec<String>,
    /// v2: the configured confidence, the interval that excludes the threshold at it, the
    /// highest confidence at which it still does, and how the interval was computed.
    /// None in v1 alerts (raised on point values).
    #[serde(default)]
    pub confidence: Option<f64>,
    #[serde(default)]
    pub interval_low: Option<f64>,
    #[serde(default)]
    pub interval_high: Option<f64>,
    #[serde(default)]
    pub evidence: Option<f64>,
    #[serde(default)]
    pub method: Option<String>,
}

/// A metric moved beyond its expected range.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct AnomalyDetected {
    #[serde(default)]
    pub product: Option<String>,
    #[serde(default)]
    pub channel: Option<String>,
    pub metric: String,
    pub expected: f64,
    pub observed: f64,
    pub stddev: f64,
    pub window_start: Timestamp,
    pub window_end: Timestamp,
}

/// A message a processor could not take.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct DeadLettered {
    pub processor: String,
    pub error_class: String,
    pub error: String,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub payload_sha256: String,
    pub payload_size: i64,
}

/// A data subject's key was destroyed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct SubjectErased {
    pub subject: String,
    pub requested_by: String,
    pub key_destroyed_at: Timestamp,
}

/// A dead-lettered message sent back through the pipeline by an operator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct DeadLetterRedriven {
    pub dead_letter_topic: String,
    pub dead_letter_partition: i32,
    pub dead_letter_offset: i64,
    pub processor: String,
    pub error_class: String,
    pub error: String,
    pub original_topic: String,
    pub original_partition: i32,
    pub original_offset: i64,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub payload_sha256: String,
    pub redriven_by: String,
    pub reason: String,
    pub run_id: Uuid,
}

/// Every event payload; serialized adjacently tagged as `event_type` + `payload`, the
/// envelope's two fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event_type", content = "payload")]
#[allow(missing_docs)]
pub enum Event {
    InteractionScrubbed(InteractionScrubbed),
    SentimentScored(SentimentScored),
    ResponseDrafted(ResponseDrafted),
    ResponseApproved(ResponseApproved),
    ReviewRequested(ReviewRequested),
    ReviewClaimed(ReviewClaimed),
    ReviewDecided(ReviewDecided),
    FairnessReported(FairnessReported),
    FairnessAlertRaised(FairnessAlertRaised),
    AnomalyDetected(AnomalyDetected),
    DeadLettered(DeadLettered),
    SubjectErased(SubjectErased),
    DeadLetterRedriven(DeadLetterRedriven),
    ReviewReleased(ReviewReleased),
    ReviewEscalated(ReviewEscalated),
}

impl Event {
    /// The interaction the event is about, for the events that carry one.
    pub fn context(&self) -> Option<&InteractionContext> {
        match self {
            Event::InteractionScrubbed(e) => Some(&e.context),
            Event::SentimentScored(e) => Some(&e.context),
            Event::ResponseDrafted(e) => Some(&e.context),
            Event::ResponseApproved(e) => Some(&e.context),
            Event::ReviewRequested(e) => Some(&e.context),
            Event::ReviewDecided(e) => Some(&e.context),
            Event::ReviewClaimed(_)
            | Event::FairnessReported(_)
            | Event::FairnessAlertRaised(_)
            | Event::AnomalyDetected(_)
            | Event::DeadLettered(_)
            | Event::SubjectErased(_)
            | Event::DeadLetterRedriven(_)
            | Event::ReviewReleased(_)
            | Event::ReviewEscalated(_) => None,
        }
    }

    /// The event type: the payload's record name.
    pub fn event_type(&self) -> &'static str {
        match self {
            Event::InteractionScrubbed(_) => "InteractionScrubbed",
            Event::SentimentScored(_) => "SentimentScored",
            Event::ResponseDrafted(_) => "ResponseDrafted",
            Event::ResponseApproved(_) => "ResponseApproved",
            Event::ReviewRequested(_) => "ReviewRequested",
            Event::ReviewClaimed(_) => "ReviewClaimed",
            Event::ReviewDecided(_) => "ReviewDecided",
            Event::FairnessReported(_) => "FairnessReported",
            Event::FairnessAlertRaised(_) => "FairnessAlertRaised",
            Event::AnomalyDetected(_) => "AnomalyDetected",
            Event::DeadLettered(_) => "DeadLettered",
            Event::SubjectErased(_) => "SubjectErased",
            Event::DeadLetterRedriven(_) => "DeadLetterRedriven",
            Event::ReviewReleased(_) => "ReviewReleased",
            Event::ReviewEscalated(_) => "ReviewEscalated",
        }
    }
}

/// An event with its identity, causality and provenance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// Unique; deterministic for processor outputs (see [`Envelope::derived_id`]).
    pub event_id: Uuid,
    /// Version of the payload's schema the writer used.
    pub schema_version: i32,
    /// The store stream, e.g. `conversation-<id>`.
    pub stream_id: String,
    /// The event or input that caused this one.
    #[serde(default)]
    pub causation_id: Option<String>,
    /// Shared by everything that follows from one input.
    pub correlation_id: String,
    /// When it happened.
    pub occurred_at: Timestamp,
    /// Who wrote it (processor name).
    pub producer: String,
    /// The producer's version (crate version, model version, ...).
    pub producer_version: String,
    /// The payload, with its type.
    #[serde(flatten)]
    pub event: Event,
}

/// The store stream of a review item (`review-<id>`, the id being the `ReviewRequested`
/// event's): its own stream, so that claims and decisions on it are checked against its
/// version without contending with the conversation's other events. The response
/// processor writes the request there and the review API the rest.
pub fn review_stream(review_id: &Uuid) -> String {
    format!("review-{review_id}")
}

/// Domain separation for derived event ids.
const EVENT_ID_DOMAIN: &[u8] = b"insights-event-id/1\x1f";

impl Envelope {
    /// The deterministic id of a processor's `index`-th output for an input: the same
    /// processor re-processing the same input yields the same ids, so the store's
    /// idempotency drops the duplicates.
    ///
    /// A UUIDv8 laid out like a UUIDv7: the first 48 bits are `input_time` in milliseconds
    /// (the input's own time, e.g. when the customer sent it, so redelivery gives the same
    /// id), the rest a SHA-256 of (processor, input id, index). Ids of events close in time
    /// are close in the store's index, which keeps appends from touching a random index page
    /// per event.
    pub fn derived_id(
        processor: &str,
        input_event_id: &str,
        input_time: Timestamp,
        index: u32,
    ) -> Uuid {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(EVENT_ID_DOMAIN);
        h.update(processor.as_bytes());
        h.update([0x1f]);
        h.update(input_event_id.as_bytes());
        h.update([0x1f]);
        h.update(index.to_be_bytes());
        let digest = h.finalize();
        let millis = u64::try_from(input_time.micros().div_euclid(1000)).unwrap_or(0);
        let mut bytes = [0u8; 16];
        bytes[..6].copy_from_slice(&millis.to_be_bytes()[2..]);
        bytes[6..].copy_from_slice(&digest[..10]);
        Uuid::new_v8(bytes)
    }

    /// The payload's event type.
    pub fn event_type(&self) -> &'static str {
        self.event.event_type()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_ids_are_deterministic_and_distinct() {
        let t = Timestamp(1_790_000_000_123_456);
        let a = Envelope::derived_id("privacy", "conv-1/msg-1", t, 0);
        assert_eq!(a, Envelope::derived_id("privacy", "conv-1/msg-1", t, 0));
        assert_ne!(a, Envelope::derived_id("privacy", "conv-1/msg-1", t, 1));
        assert_ne!(a, Envelope::derived_id("sentiment", "conv-1/msg-1", t, 0));
        // The separator keeps ("ab", "c") and ("a", "bc") apart.
        assert_ne!(
            Envelope::derived_id("ab", "c", t, 0),
            Envelope::derived_id("a", "bc", t, 0)
        );
        assert_eq!(a.get_version_num(), 8);
    }

    #[test]
    fn derived_ids_sort_by_input_time() {
        let ids: Vec<Uuid> = (0..100)
            .map(|i| {
                Envelope::derived_id("privacy", &format!("m-{}", 99 - i), Timestamp(i * 1000), 0)
            })
            .collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(
            ids, sorted,
            "ids follow their inputs' time, whatever the input ids"
        );
        // Times before the epoch clamp to 0 rather than wrap.
        let early = Envelope::derived_id("p", "x", Timestamp(-5), 0);
        assert_eq!(&early.as_bytes()[..6], &[0; 6]);
    }
}
