//! The hash chain: canonical bytes of an event, its hash, and a verifier that walks the
//! log.
//!
//! `hash(n) = SHA-256(hash(n-1) || canonical(n))` with `hash(0)` = 32 zero bytes.
//! `canonical` is a versioned, length-prefixed encoding of everything stored about the
//! event, position and stream version included, so an edited, deleted, inserted or
//! reordered row changes the hash at that position and, through the chain, every one after.

use std::collections::BTreeMap;
use std::fmt;

use sha2::{Digest, Sha256};

use crate::types::{EventData, Head, RecordedEvent};

/// The hash before position 1.
pub const GENESIS_HASH: [u8; 32] = [0; 32];

const TAG: &[u8] = b"insights-event/1";

/// The hash of an event at `position` whose predecessor's hash is `prev`.
pub fn event_hash(
    prev: &[u8; 32],
    position: u64,
    stream_version: u64,
    recorded_at: i64,
    e: &EventData,
) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(TAG);
    h.update(position.to_be_bytes());
    h.update(stream_version.to_be_bytes());
    h.update(recorded_at.to_be_bytes());
    h.update(e.event_id.as_bytes());
    field(&mut h, e.stream_id.as_bytes());
    field(&mut h, e.event_type.as_bytes());
    h.update(e.schema_version.to_be_bytes());
    match &e.causation_id {
        None => h.update([0]),
        Some(c) => {
            h.update([1]);
            field(&mut h, c.as_bytes());
        }
    }
    field(&mut h, e.correlation_id.as_bytes());
    h.update(e.occurred_at.to_be_bytes());
    field(&mut h, e.producer.as_bytes());
    field(&mut h, e.producer_version.as_bytes());
    field(&mut h, &e.payload);
    h.finalize().into()
}

fn field(h: &mut Sha256, bytes: &[u8]) {
    h.update((bytes.len() as u64).to_be_bytes());
    h.update(bytes);
}

/// What is wrong at a position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChainBreakKind {
    /// The row's content does not hash to its stored hash given its predecessor: edited,
    /// moved, or its predecessor was edited.
    HashMismatch,
    /// No row has this position, though a later one exists or the head says it should.
    Missing,
    /// The head row disagrees with the last event (rows beyond the head, or another hash).
    HeadMismatch,
}

/// The first position at which the chain does not hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainBreak {
    /// The position.
    pub position: u64,
    /// What is wrong there.
    pub kind: ChainBreakKind,
}

impl fmt::Display for ChainBreak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            ChainBreakKind::HashMismatch => {
                "hash does not match the event's content and its predecessor"
            }
            ChainBreakKind::Missing => "event is missing",
            ChainBreakKind::HeadMismatch => "head does not match the last event",
        };
        write!(f, "position {}: {what}", self.position)
    }
}

/// The result of walking the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Events checked (up to the first break).
    pub events: u64,
    /// First position seen, 0 if none.
    pub first_position: u64,
    /// Last position seen, 0 if none.
    pub last_position: u64,
    /// Hash of the last event seen.
    pub head_hash: [u8; 32],
    /// Events per type.
    pub by_type: BTreeMap<String, u64>,
    /// The first break, if any.
    pub broken: Option<ChainBreak>,
}

impl VerifyReport {
    /// True when the whole chain holds.
    pub fn is_intact(&self) -> bool {
        self.broken.is_none()
    }
}

/// Checks events fed in position order; stops counting at the first break.
#[derive(Debug, Clone)]
pub struct ChainVerifier {
    next_position: u64,
    prev_hash: [u8; 32],
    first_position: u64,
    by_type: BTreeMap<String, u64>,
    events: u64,
    broken: Option<ChainBreak>,
}

impl Default for ChainVerifier {
    fn default() -> Self {
        Self::new()
    }
}

impl ChainVerifier {
    /// A verifier expecting position 1 next.
    pub fn new() -> Self {
        Self {
            next_position: 1,
            prev_hash: GENESIS_HASH,
            first_position: 0,
            by_type: BTreeMap::new(),
            events: 0,
            broken: None,
        }
    }

    /// Checks the next event. Returns the break once one is found (and keeps returning it).
    pub fn push(&mut self, e: &RecordedEvent) -> Option<ChainBreak> {
        if self.broken.is_some() {
            return self.broken;
        }
        if e.position != self.next_position {
            let position = self.next_position.min(e.position);
            self.broken = Some(ChainBreak {
                position,
                kind: if e.position > self.next_position {
                    ChainBreakKind::Missing
                } else {
                    ChainBreakKind::HashMismatch
                },
            });
            return self.broken;
        }
        let expected = event_hash(
            &self.prev_hash,
            e.position,
            e.stream_version,
            e.recorded_at,
            &e.data,
        );
        if expected != e.hash {
            self.broken = Some(ChainBreak {
                position: e.position,
                kind: ChainBreakKind::HashMismatch,
            });
            return self.broken;
        }
        if self.events == 0 {
            self.first_position = e.position;
        }
        self.events += 1;
        *self.by_type.entry(e.data.event_type.clone()).or_default() += 1;
        self.prev_hash = e.hash;
        self.next_position += 1;
        None
    }

    /// Checks the head against the last event and returns the report.
    pub fn finish(mut self, head: &Head) -> VerifyReport {
        let last = self.next_position - 1;
        if self.broken.is_none() {
            if head.position > last {
                self.broken = Some(ChainBreak {
                    position: last + 1,
                    kind: ChainBreakKind::Missing,
                });
            } else if head.position < last || head.hash != self.prev_hash {
                self.broken = Some(ChainBreak {
                    position: head.position.max(1).min(last.max(1)),
                    kind: ChainBreakKind::HeadMismatch,
                });
            }
        }
        VerifyReport {
            events: self.events,
            first_position: self.first_position,
            last_position: last,
            head_hash: self.prev_hash,
            by_type: self.by_type,
            broken: self.broken,
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use uuid::Uuid;

    use super::*;

    fn data(i: u64, payload: Vec<u8>) -> EventData {
        EventData {
            event_id: Uuid::from_u128(u128::from(i)),
            stream_id: format!("s-{}", i % 3),
            event_type: if i.is_multiple_of(2) { "A" } else { "B" }.to_owned(),
            schema_version: 1,
            causation_id: i.is_multiple_of(2).then(|| format!("c-{i}")),
            correlation_id: "corr".to_owned(),
            occurred_at: i as i64,
            producer: "test".to_owned(),
            producer_version: "1".to_owned(),
            payload,
        }
    }

    fn chain(payloads: &[Vec<u8>]) -> Vec<RecordedEvent> {
        let mut prev = GENESIS_HASH;
        payloads
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let position = i as u64 + 1;
                let d = data(position, p.clone());
                let hash = event_hash(&prev, position, position, 7, &d);
                prev = hash;
                RecordedEvent {
                    position,
                    stream_version: position,
                    recorded_at: 7,
                    hash,
                    data: d,
                }
            })
            .collect()
    }

    fn verify(events: &[RecordedEvent], head: Head) -> VerifyReport {
        let mut v = ChainVerifier::new();
        for e in events {
            v.push(e);
        }
        v.finish(&head)
    }

    fn head_of(events: &[RecordedEvent]) -> Head {
        events.last().map_or(
            Head {
                position: 0,
                hash: GENESIS_HASH,
            },
            |e| Head {
                position: e.position,
                hash: e.hash,
            },
        )
    }

    #[test]
    fn length_prefixes_keep_fields_apart() {
        let mut a = data(1, b"xy".to_vec());
        let mut b = a.clone();
        a.producer = "ab".into();
        a.producer_version = "c".into();
        b.producer = "a".into();
        b.producer_version = "bc".into();
        assert_ne!(
            event_hash(&GENESIS_HASH, 1, 1, 0, &a),
            event_hash(&GENESIS_HASH, 1, 1, 0, &b)
        );
    }

    #[test]
    fn an_empty_log_verifies() {
        let r = verify(&[], head_of(&[]));
        assert!(r.is_intact());
        assert_eq!((r.events, r.last_position), (0, 0));
    }

    proptest! {
        #[test]
        fn an_untouched_chain_verifies(payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 1..30)) {
            let events = chain(&payloads);
            let r = verify(&events, head_of(&events));
            prop_assert!(r.is_intact());
            prop_assert_eq!(r.events, events.len() as u64);
            prop_assert_eq!(r.by_type.values().sum::<u64>(), events.len() as u64);
        }

        #[test]
        fn any_edit_is_found_at_its_position(
            payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 1..30),
            at in any::<prop::sample::Index>(),
            byte in any::<u8>(),
            field in 0..4usize,
        ) {
            let mut events = chain(&payloads);
            let head = head_of(&events);
            let i = at.index(events.len());
            let e = &mut events[i];
            match field {
                0 => e.data.payload.push(byte),
                1 => e.data.producer.push('x'),
                2 => e.recorded_at += 1,
                _ => e.hash[usize::from(byte) % 32] ^= 1,
            }
            let r = verify(&events, head);
            prop_assert_eq!(r.broken, Some(ChainBreak { position: i as u64 + 1, kind: ChainBreakKind::HashMismatch }));
        }

        #[test]
        fn a_deleted_event_is_found_at_its_position(
            payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..10), 2..30),
            at in any::<prop::sample::Index>(),
        ) {
            let mut events = chain(&payloads);
            let head = head_of(&events);
            let i = at.index(events.len());
            events.remove(i);
            let r = verify(&events, head);
            prop_assert_eq!(r.broken, Some(ChainBreak { position: i as u64 + 1, kind: ChainBreakKind::Missing }));
        }

        #[test]
        fn swapped_events_are_found_at_the_first(
            payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..10), 2..30),
            a in any::<prop::sample::Index>(),
        ) {
            let mut events = chain(&payloads);
            let head = head_of(&events);
            let i = a.index(events.len() - 1);
            // Swap the content of two rows but keep positions in order, as an UPDATE would.
            let (x, y) = (events[i].clone(), events[i + 1].clone());
            events[i] = RecordedEvent { position: x.position, ..y.clone() };
            events[i + 1] = RecordedEvent { position: y.position, ..x };
            let r = verify(&events, head);
            prop_assert_eq!(r.broken.map(|b| b.position), Some(i as u64 + 1));
        }
    }

    #[test]
    fn a_truncated_tail_is_caught_by_the_head() {
        let mut events = chain(&[vec![1], vec![2], vec![3]]);
        let head = head_of(&events);
        events.pop();
        assert_eq!(
            verify(&events, head).broken,
            Some(ChainBreak {
                position: 3,
                kind: ChainBreakKind::Missing
            })
        );
    }

    #[test]
    fn rows_beyond_the_head_are_caught() {
        let events = chain(&[vec![1], vec![2], vec![3]]);
        let head = head_of(&events[..2]);
        assert_eq!(
            verify(&events, head).broken,
            Some(ChainBreak {
                position: 2,
                kind: ChainBreakKind::HeadMismatch
            })
        );
    }
}
