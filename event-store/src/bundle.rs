//! The audit bundle: the log exported as JSON lines, verifiable offline with no store.
//!
//! A header `{"format": "insights-audit-bundle/1"}`, one line per event with every hashed
//! field (the payload as its exact stored text, so that the hash can be recomputed), and a
//! last line `{"head": {"position": N, "hash": "…"}}`. [`export`] writes a store's log
//! (with [`write_header`], [`write_event`] and [`write_head`]); [`verify`] reads one and checks positions and the hash chain
//! up to its head; a bundle cut short (no head line) is an error, not a shorter log.

use std::io::{BufRead, Write};

use serde_json::{Value, json};

use crate::{
    ChainVerifier, EventData, EventFilter, EventStore, GENESIS_HASH, Head, PAGE_SIZE, Pages,
    RecordedEvent, StoreError, VerifyReport,
};

/// The bundle's format tag, on its first line.
pub const FORMAT: &str = "insights-audit-bundle/1";

/// Why a bundle cannot be written or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BundleError {
    /// Reading or writing failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The bundle is empty.
    #[error("the bundle is empty")]
    Empty,
    /// The first line is not this format's header.
    #[error("not an audit bundle ({FORMAT})")]
    NotABundle,
    /// A line is not what it should be.
    #[error("bundle line {line}: {message}")]
    Line {
        /// The line number (1-based).
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// No head line: the bundle was cut short.
    #[error("no head line: the bundle is truncated")]
    Truncated,
    /// An event to export has a payload that is not UTF-8 text.
    #[error("position {0}: the payload is not UTF-8")]
    Payload(u64),
    /// Reading the store to export failed.
    #[error("reading the store: {0}")]
    Store(#[from] StoreError),
}

/// Writes the whole log of `store` as a bundle to `out`, up to the head as it is when the
/// export begins (a consistent cut of a log that may grow meanwhile); `progress` hears the
/// last position written after each page. Returns the bundle's head.
pub async fn export(
    store: &dyn EventStore,
    out: &mut impl Write,
    mut progress: impl FnMut(u64),
) -> Result<Head, BundleError> {
    write_header(out)?;
    let mut head = Head {
        position: 0,
        hash: GENESIS_HASH,
    };
    let mut pages = Pages::to_head(store, EventFilter::All, PAGE_SIZE).await?;
    while let Some(page) = pages.next().await? {
        for e in &page {
            write_event(out, e)?;
            head = Head {
                position: e.position,
                hash: e.hash,
            };
        }
        progress(head.position);
    }
    write_head(out, &head)?;
    Ok(head)
}

/// Writes the header line.
pub fn write_header(out: &mut impl Write) -> Result<(), BundleError> {
    writeln!(out, "{}", json!({ "format": FORMAT }))?;
    Ok(())
}

/// Writes one event's line.
pub fn write_event(out: &mut impl Write, e: &RecordedEvent) -> Result<(), BundleError> {
    let payload =
        std::str::from_utf8(&e.data.payload).map_err(|_| BundleError::Payload(e.position))?;
    let line = json!({
        "position": e.position,
        "stream_version": e.stream_version,
        "recorded_at": e.recorded_at,
        "hash": hex::encode(e.hash),
        "event_id": e.data.event_id,
        "stream_id": e.data.stream_id,
        "event_type": e.data.event_type,
        "schema_version": e.data.schema_version,
        "causation_id": e.data.causation_id,
        "correlation_id": e.data.correlation_id,
        "occurred_at": e.data.occurred_at,
        "producer": e.data.producer,
        "producer_version": e.data.producer_version,
        "payload": payload,
    });
    writeln!(out, "{line}")?;
    Ok(())
}

/// Writes the head line, the bundle's last.
pub fn write_head(out: &mut impl Write, head: &Head) -> Result<(), BundleError> {
    let line = json!({"head": {"position": head.position, "hash": hex::encode(head.hash)}});
    writeln!(out, "{line}")?;
    Ok(())
}

/// Reads a bundle and verifies its chain up to its head line; `progress` gets the bytes
/// read so far after each event.
pub fn verify(
    input: impl BufRead,
    mut progress: impl FnMut(u64),
) -> Result<VerifyReport, BundleError> {
    let mut lines = input.lines();
    let header: Value = match lines.next() {
        Some(l) => serde_json::from_str(&l?).map_err(|_| BundleError::NotABundle)?,
        None => return Err(BundleError::Empty),
    };
    if header["format"] != FORMAT {
        return Err(BundleError::NotABundle);
    }
    let mut verifier = ChainVerifier::new();
    let mut read = 0u64;
    for (n, line) in lines.enumerate() {
        let number = n + 2;
        let line = line?;
        read += line.len() as u64 + 1;
        let bad = |message: String| BundleError::Line {
            line: number,
            message,
        };
        let value: Value =
            serde_json::from_str(&line).map_err(|e| bad(format!("not JSON: {e}")))?;
        if let Some(h) = value.get("head") {
            let head = Head {
                position: h["position"]
                    .as_u64()
                    .ok_or_else(|| bad("head without position".into()))?,
                hash: hex32(
                    h["hash"]
                        .as_str()
                        .ok_or_else(|| bad("head without hash".into()))?,
                )
                .map_err(bad)?,
            };
            return Ok(verifier.finish(&head));
        }
        verifier.push(&parse_event(&value).map_err(bad)?);
        progress(read);
    }
    Err(BundleError::Truncated)
}

fn hex32(s: &str) -> Result<[u8; 32], String> {
    hex::decode(s)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| format!("{s:?} is not a 32-byte hex hash"))
}

fn parse_event(line: &Value) -> Result<RecordedEvent, String> {
    let text = |k: &str| -> Result<String, String> {
        line[k]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("missing `{k}`"))
    };
    let int = |k: &str| -> Result<i64, String> {
        line[k].as_i64().ok_or_else(|| format!("missing `{k}`"))
    };
    let out_of_range = |k: &str| format!("`{k}` out of range");
    Ok(RecordedEvent {
        position: u64::try_from(int("position")?).map_err(|_| out_of_range("position"))?,
        stream_version: u64::try_from(int("stream_version")?)
            .map_err(|_| out_of_range("stream_version"))?,
        recorded_at: int("recorded_at")?,
        hash: hex32(&text("hash")?)?,
        data: EventData {
            event_id: text("event_id")?
                .parse()
                .map_err(|e| format!("`event_id`: {e}"))?,
            stream_id: text("stream_id")?,
            event_type: text("event_type")?,
            schema_version: i32::try_from(int("schema_version")?)
                .map_err(|_| out_of_range("schema_version"))?,
            causation_id: line["causation_id"].as_str().map(str::to_owned),
            correlation_id: text("correlation_id")?,
            occurred_at: int("occurred_at")?,
            producer: text("producer")?,
            producer_version: text("producer_version")?,
            payload: text("payload")?.into_bytes(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::{GENESIS_HASH, event_hash};

    fn log(n: u64) -> (Vec<RecordedEvent>, Head) {
        let mut prev = GENESIS_HASH;
        let mut events = Vec::new();
        for position in 1..=n {
            let data = EventData {
                event_id: uuid::Uuid::from_u128(u128::from(position)),
                stream_id: "s".into(),
                event_type: "T".into(),
                schema_version: 1,
                causation_id: (position % 2 == 0).then(|| "c".to_owned()),
                correlation_id: "k".into(),
                occurred_at: 7,
                producer: "p".into(),
                producer_version: "1".into(),
                payload: format!("{{\"n\":{position},\"text\":\"ü \\\"quoted\\\"\"}}").into_bytes(),
            };
            let hash = event_hash(&prev, position, position, 9, &data);
            events.push(RecordedEvent {
                position,
                stream_version: position,
                recorded_at: 9,
                hash,
                data,
            });
            prev = hash;
        }
        (
            events,
            Head {
                position: n,
                hash: prev,
            },
        )
    }

    fn bundle(events: &[RecordedEvent], head: Option<&Head>) -> Vec<u8> {
        let mut out = Vec::new();
        write_header(&mut out).expect("writes");
        for e in events {
            write_event(&mut out, e).expect("writes");
        }
        if let Some(head) = head {
            write_head(&mut out, head).expect("writes");
        }
        out
    }

    #[test]
    fn a_written_bundle_reads_back_and_verifies() {
        let (events, head) = log(5);
        let written = bundle(&events, Some(&head));
        // The fuzz target's seed (scripts/fuzz.sh).
        if let Some(corpus) = std::env::var_os("INSIGHTS_FUZZ_CORPUS") {
            let dir = std::path::Path::new(&corpus).join("audit_bundle");
            std::fs::create_dir_all(&dir).expect("corpus dir");
            std::fs::write(dir.join("seed-5"), &written).expect("writes the seed");
        }
        let report = verify(written.as_slice(), |_| {}).expect("reads");
        assert!(report.is_intact(), "{:?}", report.broken);
        assert_eq!(report.events, 5);
    }

    #[test]
    fn a_changed_payload_a_cut_and_a_foreign_file_are_caught() {
        let (mut events, head) = log(5);
        let text = String::from_utf8(bundle(&events, None)).expect("utf-8");
        assert!(matches!(
            verify(text.as_bytes(), |_| {}),
            Err(BundleError::Truncated)
        ));
        assert!(matches!(
            verify(&b"{\"rows\": 1}\n"[..], |_| {}),
            Err(BundleError::NotABundle)
        ));
        assert!(matches!(verify(&b""[..], |_| {}), Err(BundleError::Empty)));
        let broken = format!("{}{{\"position\": \"x\"}}\n", text);
        assert!(matches!(
            verify(broken.as_bytes(), |_| {}),
            Err(BundleError::Line { line: 7, .. })
        ));
        events[2].data.payload = b"{\"n\":3,\"text\":\"changed\"}".to_vec();
        let report = verify(bundle(&events, Some(&head)).as_slice(), |_| {}).expect("reads");
        assert!(!report.is_intact());
        assert_eq!(report.broken.as_ref().map(|b| b.position), Some(3));
    }
}
