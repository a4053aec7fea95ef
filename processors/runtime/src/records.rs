//! Envelopes in and out: building a processor's output envelopes, and moving envelopes
//! into and out of the event store.
//!
//! The store keeps the envelope's fields as columns and the payload as its JSON text, so
//! the log reads with `psql` or `sqlite3`.

use insights_event_store::{EventData, RecordedEvent};
use insights_schemas::{Envelope, Event, current_version};
use serde_json::{Map, Value};

use crate::processor::{Context, Output};

/// The envelope of a processor's `index`-th output for an input: a deterministic id, the
/// payload schema's current version, causation and correlation from the input.
pub fn envelope_for(
    processor: &str,
    version: &str,
    ctx: &Context<'_>,
    index: u32,
    output: &Output,
) -> Envelope {
    Envelope {
        event_id: ctx.output_event_id(processor, index),
        schema_version: current_version(output.event.event_type()).unwrap_or(1),
        stream_id: output.stream_id.clone(),
        causation_id: Some(ctx.input_id.to_owned()),
        correlation_id: ctx.correlation_id.to_owned(),
        occurred_at: ctx.now,
        producer: processor.to_owned(),
        producer_version: version.to_owned(),
        event: output.event.clone(),
    }
}

/// Why a stored event does not make an envelope.
#[derive(Debug, thiserror::Error)]
#[error("stored event at position {position} is not a valid {event_type}: {message}")]
pub struct RecordError {
    /// Its position.
    pub position: u64,
    /// Its type.
    pub event_type: String,
    /// What is wrong.
    pub message: String,
}

/// The store row for an envelope: envelope fields as columns, the payload as JSON.
pub fn to_event_data(e: &Envelope) -> EventData {
    let mut json = serde_json::to_value(&e.event).unwrap_or(Value::Null);
    let payload = json
        .get_mut("payload")
        .map(Value::take)
        .unwrap_or(Value::Null);
    EventData {
        event_id: e.event_id,
        stream_id: e.stream_id.clone(),
        event_type: e.event_type().to_owned(),
        schema_version: e.schema_version,
        causation_id: e.causation_id.clone(),
        correlation_id: e.correlation_id.clone(),
        occurred_at: e.occurred_at.micros(),
        producer: e.producer.clone(),
        producer_version: e.producer_version.clone(),
        payload: serde_json::to_vec(&payload).unwrap_or_default(),
    }
}

/// The envelope of a stored event.
pub fn from_recorded(r: &RecordedEvent) -> Result<Envelope, RecordError> {
    let err = |message: String| RecordError {
        position: r.position,
        event_type: r.data.event_type.clone(),
        message,
    };
    let payload: Value = serde_json::from_slice(&r.data.payload).map_err(|e| err(e.to_string()))?;
    let mut tagged = Map::new();
    tagged.insert(
        "event_type".into(),
        Value::String(r.data.event_type.clone()),
    );
    tagged.insert("payload".into(), payload);
    let event: Event =
        serde_json::from_value(Value::Object(tagged)).map_err(|e| err(e.to_string()))?;
    Ok(Envelope {
        event_id: r.data.event_id,
        schema_version: r.data.schema_version,
        stream_id: r.data.stream_id.clone(),
        causation_id: r.data.causation_id.clone(),
        correlation_id: r.data.correlation_id.clone(),
        occurred_at: insights_schemas::Timestamp(r.data.occurred_at),
        producer: r.data.producer.clone(),
        producer_version: r.data.producer_version.clone(),
        event,
    })
}

#[cfg(test)]
mod tests {
    use insights_schemas::{DeadLettered, Timestamp};

    use super::*;
    use crate::processor::Source;

    #[test]
    fn envelopes_survive_the_store_and_ids_are_deterministic() {
        let source = Source {
            topic: "interactions.raw".into(),
            partition: 2,
            offset: 41,
        };
        let ctx = Context {
            input_id: "interaction:i-1",
            correlation_id: "interaction:i-1",
            input_time: Timestamp(0),
            now: Timestamp(1_790_000_000_000_000),
            source: &source,
        };
        let output = Output {
            topic: "interactions.deadletter".into(),
            stream_id: "conversation-c".into(),
            key: "c".into(),
            event: Event::DeadLettered(DeadLettered {
                processor: "p".into(),
                error_class: "poison".into(),
                error: "bad".into(),
                topic: "t".into(),
                partition: 0,
                offset: 1,
                payload_sha256: "00".into(),
                payload_size: 3,
            }),
        };
        let e = envelope_for("privacy", "1", &ctx, 0, &output);
        assert_eq!(
            e.event_id,
            envelope_for("privacy", "1", &ctx, 0, &output).event_id
        );
        assert_ne!(
            e.event_id,
            envelope_for("privacy", "1", &ctx, 1, &output).event_id
        );
        assert_eq!(e.schema_version, 1);
        let data = to_event_data(&e);
        let stored: serde_json::Value =
            serde_json::from_slice(&data.payload).expect("JSON payload");
        assert_eq!(stored["processor"], "p");
        let recorded = RecordedEvent {
            position: 9,
            stream_version: 1,
            recorded_at: 0,
            hash: [0; 32],
            data,
        };
        assert_eq!(from_recorded(&recorded).expect("decodes"), e);
    }
}
