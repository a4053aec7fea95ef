//! Deciding what an append writes: pure, shared by both backends.
//!
//! A backend, holding the write lock, reads the head, which of the batch's ids are already
//! stored, and the current versions of the streams involved; [`plan`] turns that into
//! rows to insert (positions, versions, hashes) and the per-event results, or a conflict.

use std::collections::HashMap;

use uuid::Uuid;

use crate::chain::event_hash;
use crate::types::{AppendBatch, Appended, Head, StoreError};

/// A row to insert: which event of the batch, and where it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PlannedRow {
    /// Index into the batch's events.
    pub index: usize,
    pub position: u64,
    pub stream_version: u64,
    pub hash: [u8; 32],
}

/// What to write and what to answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Plan {
    pub rows: Vec<PlannedRow>,
    pub results: Vec<Appended>,
    pub new_head: Head,
    pub recorded_at: i64,
}

/// Rejects batches no backend should store.
pub(crate) fn check_batch(batch: &AppendBatch) -> Result<(), StoreError> {
    for e in &batch.events {
        if e.stream_id.is_empty() {
            return Err(StoreError::Invalid(format!(
                "event {} has an empty stream id",
                e.event_id
            )));
        }
        if e.event_type.is_empty() {
            return Err(StoreError::Invalid(format!(
                "event {} has an empty event type",
                e.event_id
            )));
        }
    }
    Ok(())
}

/// Ids of the batch, for the lookup of already-stored events.
pub(crate) fn ids(batch: &AppendBatch) -> Vec<Uuid> {
    batch.events.iter().map(|e| e.event_id).collect()
}

/// Streams whose versions the plan needs: those of new events and those with expectations.
pub(crate) fn streams_needed(
    batch: &AppendBatch,
    existing: &HashMap<Uuid, (u64, u64)>,
) -> Vec<String> {
    let mut streams: Vec<String> = batch
        .events
        .iter()
        .filter(|e| !existing.contains_key(&e.event_id))
        .map(|e| e.stream_id.clone())
        .chain(batch.expectations.iter().map(|(s, _)| s.clone()))
        .collect();
    streams.sort();
    streams.dedup();
    streams
}

/// Whether every event of the batch is already stored (a retried batch): nothing to write,
/// and expectations are not checked again, since they held when the batch was first stored.
pub(crate) fn all_duplicates(
    batch: &AppendBatch,
    existing: &HashMap<Uuid, (u64, u64)>,
) -> Option<Vec<Appended>> {
    batch
        .events
        .iter()
        .map(|e| {
            existing
                .get(&e.event_id)
                .map(|&(position, stream_version)| Appended {
                    event_id: e.event_id,
                    position,
                    stream_version,
                    duplicate: true,
                })
        })
        .collect()
}

/// Plans an append. `existing` maps stored ids to (position, version); `versions` maps
/// streams to their current version (absent: no events).
pub(crate) fn plan(
    batch: &AppendBatch,
    head: Head,
    existing: &HashMap<Uuid, (u64, u64)>,
    versions: &HashMap<String, u64>,
    recorded_at: i64,
) -> Result<Plan, StoreError> {
    for (stream_id, expected) in &batch.expectations {
        let actual = versions.get(stream_id).copied();
        if !expected.accepts(actual) {
            return Err(StoreError::WrongExpectedVersion {
                stream_id: stream_id.clone(),
                expected: *expected,
                actual,
            });
        }
    }
    let mut versions = versions.clone();
    let mut within: HashMap<Uuid, (u64, u64)> = HashMap::new();
    let mut rows = Vec::new();
    let mut results = Vec::with_capacity(batch.events.len());
    let mut position = head.position;
    let mut prev = head.hash;
    for (index, e) in batch.events.iter().enumerate() {
        if let Some(&(position, stream_version)) = existing
            .get(&e.event_id)
            .or_else(|| within.get(&e.event_id))
        {
            results.push(Appended {
                event_id: e.event_id,
                position,
                stream_version,
                duplicate: true,
            });
            continue;
        }
        position += 1;
        let version = versions.entry(e.stream_id.clone()).or_insert(0);
        *version += 1;
        let hash = event_hash(&prev, position, *version, recorded_at, e);
        prev = hash;
        rows.push(PlannedRow {
            index,
            position,
            stream_version: *version,
            hash,
        });
        within.insert(e.event_id, (position, *version));
        results.push(Appended {
            event_id: e.event_id,
            position,
            stream_version: *version,
            duplicate: false,
        });
    }
    Ok(Plan {
        rows,
        results,
        new_head: Head {
            position,
            hash: prev,
        },
        recorded_at,
    })
}

/// Microseconds since the epoch, now.
pub(crate) fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// Converts a stored BIGINT to u64, or reports a corrupt row.
pub(crate) fn to_u64(value: i64, position: i64, what: &str) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt {
        position,
        reason: format!("negative {what} {value}"),
    })
}

/// Converts a u64 to a BIGINT parameter.
pub(crate) fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Converts a stored hash to 32 bytes, or reports a corrupt row.
pub(crate) fn to_hash(bytes: &[u8], position: i64) -> Result<[u8; 32], StoreError> {
    bytes.try_into().map_err(|_| StoreError::Corrupt {
        position,
        reason: format!("hash is {} bytes, not 32", bytes.len()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::GENESIS_HASH;
    use crate::types::{EventData, ExpectedVersion};

    fn ev(id: u128, stream: &str) -> EventData {
        EventData {
            event_id: Uuid::from_u128(id),
            stream_id: stream.into(),
            event_type: "T".into(),
            schema_version: 1,
            causation_id: None,
            correlation_id: "c".into(),
            occurred_at: 0,
            producer: "p".into(),
            producer_version: "1".into(),
            payload: vec![],
        }
    }

    const EMPTY: Head = Head {
        position: 0,
        hash: GENESIS_HASH,
    };

    #[test]
    fn duplicates_within_a_batch_get_the_first_ones_position() {
        let batch = AppendBatch::new(vec![ev(1, "a"), ev(2, "a"), ev(1, "a")]);
        let p = plan(&batch, EMPTY, &HashMap::new(), &HashMap::new(), 0).expect("plans");
        assert_eq!(p.rows.len(), 2);
        assert_eq!(p.results[2].position, 1);
        assert!(p.results[2].duplicate);
        assert_eq!(p.new_head.position, 2);
    }

    #[test]
    fn versions_continue_per_stream() {
        let batch = AppendBatch::new(vec![ev(1, "a"), ev(2, "b"), ev(3, "a")]);
        let versions = HashMap::from([("a".to_owned(), 4)]);
        let p = plan(&batch, EMPTY, &HashMap::new(), &versions, 0).expect("plans");
        let v: Vec<u64> = p.results.iter().map(|r| r.stream_version).collect();
        assert_eq!(v, vec![5, 1, 6]);
    }

    #[test]
    fn a_failed_expectation_plans_nothing() {
        let batch = AppendBatch::new(vec![ev(1, "a")]).expect("a", ExpectedVersion::NoStream);
        let versions = HashMap::from([("a".to_owned(), 1)]);
        let err = plan(&batch, EMPTY, &HashMap::new(), &versions, 0).expect_err("conflict");
        assert_eq!(
            err.to_string(),
            "stream `a`: expected no stream, found version 1"
        );
    }
}
