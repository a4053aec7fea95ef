//! Shared inputs for the benchmarks in `benches/` and the load harnesses.
//!
//! # Layout
//! - `benches/event_store.rs` — append, read and verify throughput against Message DB and
//!   raw `COPY` (criterion).
//! - `run.sh` — installs the peers and runs everything; figures go to `RESULTS.md`.

use insights_event_store::EventData;
use insights_schemas::{Envelope, Timestamp};
use uuid::Uuid;

/// A JSON payload of exactly 1024 bytes, varying with `seq`.
pub fn payload_1kb(seq: i64) -> Vec<u8> {
    let head = format!(r#"{{"seq":{seq},"text":""#);
    let tail = r#""}"#;
    let fill = 1024 - head.len() - tail.len();
    let mut s = head;
    s.extend(std::iter::repeat_n('x', fill));
    s.push_str(tail);
    s.into_bytes()
}

/// The `seq`-th benchmark event: 1 KB payload, spread over 1000 conversation streams.
pub fn event_1kb(seq: i64) -> EventData {
    EventData {
        event_id: Uuid::new_v4(),
        stream_id: format!("conversation-{}", seq % 1000),
        event_type: "SentimentScored".to_owned(),
        schema_version: 1,
        causation_id: Some(format!("interaction-{seq}")),
        correlation_id: format!("interaction-{seq}"),
        occurred_at: 1_790_000_000_000_000 + seq,
        producer: "bench".to_owned(),
        producer_version: "1".to_owned(),
        payload: payload_1kb(seq),
    }
}

/// The same event with its id derived as the pipeline derives output ids (time-ordered by
/// the input's time; inputs one millisecond apart).
pub fn event_1kb_pipeline_id(seq: i64) -> EventData {
    let mut e = event_1kb(seq);
    e.event_id = Envelope::derived_id(
        "bench",
        &format!("input-{seq}"),
        Timestamp(1_790_000_000_000_000 + seq * 1000),
        0,
    );
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_are_1kb_json() {
        for seq in [0, 7, 123_456_789] {
            let p = payload_1kb(seq);
            assert_eq!(p.len(), 1024);
            let v: serde_json::Value = serde_json::from_slice(&p).expect("valid JSON");
            assert_eq!(v["seq"], seq);
        }
    }
}
