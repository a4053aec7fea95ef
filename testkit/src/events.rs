//! Envelopes for tests and benches: an interaction's context and a `SentimentScored`
//! event with everything but what a test varies filled in.

use std::collections::BTreeMap;

use insights_schemas::{
    Envelope, Event, InteractionContext, SentimentLabel, SentimentScored, Timestamp,
};
use uuid::Uuid;

/// The context of interaction `n` in conversation `c<n>`: email, router, English, tenant
/// acme, sent at `sent_at` (microseconds).
pub fn context(n: u128, sent_at: i64) -> InteractionContext {
    InteractionContext {
        interaction_id: format!("i-{n}"),
        conversation_id: format!("c{n}"),
        tenant_id: "acme".into(),
        customer_pseudonym: "p".into(),
        channel: "email".into(),
        product: Some("router".into()),
        language: Some("en".into()),
        demographics: BTreeMap::new(),
        sent_at: Timestamp(sent_at),
    }
}

/// An envelope with id `n` around `event`, in the stream of its conversation.
pub fn envelope(n: u128, conversation: &str, producer: &str, event: Event) -> Envelope {
    Envelope {
        event_id: Uuid::from_u128(n),
        schema_version: insights_schemas::current_version(event.event_type()).unwrap_or(1),
        stream_id: format!("conversation-{conversation}"),
        causation_id: None,
        correlation_id: format!("corr-{n}"),
        occurred_at: Timestamp(1_790_000_000_000_000),
        producer: producer.into(),
        producer_version: "test".into(),
        event,
    }
}

/// A `SentimentScored` for `context`: `label` with probability `confidence`, the rest
/// spread evenly over the other two labels.
pub fn scored_in(
    n: u128,
    context: InteractionContext,
    text: &str,
    label: SentimentLabel,
    confidence: f64,
) -> Envelope {
    let names = [
        (SentimentLabel::Negative, "negative"),
        (SentimentLabel::Neutral, "neutral"),
        (SentimentLabel::Positive, "positive"),
    ];
    let scores = names
        .iter()
        .map(|(l, name)| {
            let p = if *l == label {
                confidence
            } else {
                (1.0 - confidence) / 2.0
            };
            ((*name).to_owned(), p)
        })
        .collect();
    let conversation = context.conversation_id.clone();
    envelope(
        n,
        &conversation,
        "sentiment",
        Event::SentimentScored(SentimentScored {
            context,
            text: text.into(),
            label,
            scores,
            confidence,
            model_name: "m".into(),
            model_version: "1".into(),
            backend: "transformer".into(),
            fallback: false,
            latency_micros: 1,
        }),
    )
}

/// [`scored_in`] the default [`context`] of interaction `n`.
pub fn scored(n: u128, text: &str, label: SentimentLabel, confidence: f64) -> Envelope {
    scored_in(
        n,
        context(n, 1_789_999_000_000_000),
        text,
        label,
        confidence,
    )
}
