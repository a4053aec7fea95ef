//! The pipeline's envelopes as store rows and back: the envelope's fields are columns,
//! the payload is its JSON text, so the log reads with `psql` or `sqlite3`.

use insights_schemas::{Envelope, Event};
use serde_json::Value;

use crate::{EventData, RecordedEvent};

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
    // The event as its JSON text, `{"event_type": …, "payload": …}`, read in one pass: the
    // tag comes first, so the payload goes straight into its type (through a `Value`
    // tree it cost a fifth of the views' process).
    // The payload must be one JSON value on its own (no allocation to check), so that
    // nothing in it can close the object early and add fields of its own.
    serde_json::from_slice::<serde::de::IgnoredAny>(&r.data.payload)
        .map_err(|e| err(e.to_string()))?;
    let mut tagged = Vec::with_capacity(r.data.payload.len() + r.data.event_type.len() + 32);
    tagged.extend_from_slice(br#"{"event_type":"#);
    serde_json::to_writer(&mut tagged, &r.data.event_type).map_err(|e| err(e.to_string()))?;
    tagged.extend_from_slice(br#","payload":"#);
    tagged.extend_from_slice(&r.data.payload);
    tagged.push(b'}');
    let event: Event = serde_json::from_slice(&tagged).map_err(|e| err(e.to_string()))?;
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

    fn dead_letter() -> DeadLettered {
        DeadLettered {
            processor: "p".into(),
            error_class: "poison".into(),
            error: "bad".into(),
            topic: "t".into(),
            partition: 0,
            offset: 1,
            payload_sha256: "00".into(),
            payload_size: 3,
        }
    }

    /// A stored `DeadLettered` at `position` whose payload is `payload`.
    fn stored(position: u64, payload: Vec<u8>) -> RecordedEvent {
        RecordedEvent {
            position,
            stream_version: 1,
            recorded_at: 0,
            hash: [0; 32],
            data: EventData {
                event_id: uuid::Uuid::from_u128(8),
                stream_id: "s".into(),
                event_type: "DeadLettered".into(),
                schema_version: 1,
                causation_id: None,
                correlation_id: "c".into(),
                occurred_at: 0,
                producer: "p".into(),
                producer_version: "1".into(),
                payload,
            },
        }
    }

    #[test]
    fn envelopes_survive_the_store() {
        let e = Envelope {
            event_id: uuid::Uuid::from_u128(7),
            schema_version: 1,
            stream_id: "conversation-c".into(),
            causation_id: Some("interaction:i-1".into()),
            correlation_id: "interaction:i-1".into(),
            occurred_at: Timestamp(1_790_000_000_000_000),
            producer: "privacy".into(),
            producer_version: "1".into(),
            event: Event::DeadLettered(dead_letter()),
        };
        let data = to_event_data(&e);
        let stored: Value = serde_json::from_slice(&data.payload).expect("JSON payload");
        assert_eq!(stored["processor"], "p");
        assert_eq!(data.event_type, "DeadLettered");
        let recorded = RecordedEvent {
            position: 9,
            stream_version: 1,
            recorded_at: 0,
            hash: [0; 32],
            data,
        };
        assert_eq!(from_recorded(&recorded).expect("decodes"), e);
    }

    #[test]
    fn a_payload_that_is_not_its_type_is_an_error_naming_the_position() {
        let err =
            from_recorded(&stored(12, b"{\"nope\": 1}".to_vec())).expect_err("not a DeadLettered");
        assert_eq!(err.position, 12);
        assert!(err.to_string().contains("position 12"), "{err}");
    }

    /// A payload is one JSON value: text that would close the object and add a field of
    /// its own is refused, not read.
    #[test]
    fn a_payload_cannot_add_fields_to_the_event() {
        let payload = serde_json::to_string(&dead_letter()).expect("JSON");
        assert!(from_recorded(&stored(3, payload.clone().into_bytes())).is_ok());
        for bad in [
            format!(r#"{payload}, "payload": {payload}"#),
            format!("{payload}}}"),
            format!("{payload} {payload}"),
        ] {
            assert!(
                from_recorded(&stored(3, bad.clone().into_bytes())).is_err(),
                "{bad}"
            );
        }
    }
}
