//! Re-driving dead letters: after the cause is fixed (a schema, a config, a model), the
//! messages a processor dead-lettered are sent back through the pipeline.
//!
//! The dead-letter topic holds each rejected message's original bytes and key, with
//! headers naming the processor, the error and the topic, partition and offset it came
//! from ([`crate::dead_letter_headers`]). A re-drive reads the dead-letter topic to its
//! end (skipping what it re-drove itself and saw dead-lettered again), selects messages (processor, error class,
//! original topic, time range), produces each one's bytes and key to its original topic (or
//! a named one) at a bounded rate, and appends a `DeadLetterRedriven` event per message to
//! the store, so that the audit trail says who re-drove what, why, and where it went. A
//! message that fails again is dead-lettered again (a new dead letter, never lost).
//!
//! Each run has an id; a message an earlier run re-drove is skipped unless asked for
//! (`again`), so running the same re-drive twice does not send a message twice. The
//! message is produced before its event is appended: a crash between the two re-drives it
//! again on the next run, and the processors derive the same output ids from it, so the
//! store keeps one copy of what follows.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use futures::StreamExt;
use insights_event_store::{AppendBatch, EventFilter, EventStore, Pages, StoreError};
use insights_schemas::{DeadLetterRedriven, Envelope, Event, Timestamp, current_version};
use rdkafka::Message;
use rdkafka::consumer::Consumer;
use rdkafka::message::{Header, Headers, OwnedHeaders, OwnedMessage};
use rdkafka::producer::FutureRecord;
use rdkafka::{Offset, TopicPartitionList};
use sha2::{Digest, Sha256};

use crate::kafka::{KafkaSettings, producer, reader};
use crate::worker::dead_letter_headers as h;
use insights_event_store::envelope::{from_recorded, to_event_data};

/// The store stream of re-drive events.
pub const STREAM: &str = "dead-letter-redrives";
/// The producer name on re-drive events.
pub const PRODUCER: &str = "insights-dlq";
/// Header on a re-driven message: the run that re-drove it.
pub const HEADER_RUN: &str = "insights.redrive.run";
/// Header on a re-driven message: the dead letter it came from, `topic/partition/offset`.
pub const HEADER_OF: &str = "insights.redrive.of";

/// Messages produced, then recorded, at once.
const CHUNK: usize = 200;

/// Which dead letters to re-drive; every condition given must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// Dead-lettered by this processor.
    pub processor: Option<String>,
    /// With this error class (`poison`, `retries-exhausted`).
    pub error_class: Option<String>,
    /// Consumed from this topic.
    pub original_topic: Option<String>,
    /// Dead-lettered at or after this time.
    pub since: Option<Timestamp>,
    /// Dead-lettered before this time.
    pub until: Option<Timestamp>,
}

impl Selection {
    /// Whether `d` is selected.
    pub fn matches(&self, d: &DeadLetter) -> bool {
        let same = |want: &Option<String>, have: &Option<String>| {
            want.as_ref().is_none_or(|w| have.as_ref() == Some(w))
        };
        same(&self.processor, &d.processor)
            && same(&self.error_class, &d.error_class)
            && same(
                &self.original_topic,
                &d.original.as_ref().map(|o| o.0.clone()),
            )
            && self.since.is_none_or(|s| d.timestamp >= s)
            && self.until.is_none_or(|u| d.timestamp < u)
    }
}

/// A re-drive to run.
#[derive(Debug, Clone)]
pub struct Request {
    /// The dead-letter topic to read.
    pub dead_letter_topic: String,
    /// Which messages.
    pub selection: Selection,
    /// Re-drive to this topic instead of each message's original topic.
    pub to_topic: Option<String>,
    /// At most this many messages (after selection).
    pub limit: Option<usize>,
    /// At most this many messages a second.
    pub rate: u32,
    /// Who asks (recorded on each event).
    pub by: String,
    /// Why (recorded on each event).
    pub reason: String,
    /// Only list what would be re-driven.
    pub dry_run: bool,
    /// Also re-drive messages an earlier run re-drove.
    pub again: bool,
    /// Give up when the dead-letter topic yields nothing for this long before its end.
    pub read_timeout: Duration,
}

/// A message on the dead-letter topic.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    /// Its partition on the dead-letter topic.
    pub partition: i32,
    /// Its offset there.
    pub offset: i64,
    /// When it was dead-lettered (the message's timestamp).
    pub timestamp: Timestamp,
    /// The processor that rejected it.
    pub processor: Option<String>,
    /// `poison` or `retries-exhausted`.
    pub error_class: Option<String>,
    /// The error.
    pub error: Option<String>,
    /// Topic, partition and offset it was consumed from.
    pub original: Option<(String, i32, i64)>,
    /// Its key.
    pub key: Option<Vec<u8>>,
    /// Its bytes.
    pub payload: Vec<u8>,
    /// The original producer's headers (the runtime's own are taken off).
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    /// The re-drive run that sent it back before it was dead-lettered (again).
    pub redrive_run: Option<uuid::Uuid>,
}

impl DeadLetter {
    /// Reads the runtime's headers off a dead-letter message.
    pub fn from_message(m: &OwnedMessage) -> Self {
        let mut ours: HashMap<&str, String> = HashMap::new();
        let mut theirs = Vec::new();
        let own = [
            h::PROCESSOR,
            h::ERROR_CLASS,
            h::ERROR,
            h::TOPIC,
            h::PARTITION,
            h::OFFSET,
            HEADER_RUN,
            HEADER_OF,
        ];
        if let Some(headers) = m.headers() {
            for header in headers.iter() {
                match own.iter().find(|k| **k == header.key) {
                    // The first occurrence is the runtime's (it writes its own first).
                    Some(k) => {
                        if let Some(v) = header.value {
                            ours.entry(k)
                                .or_insert_with(|| String::from_utf8_lossy(v).into_owned());
                        }
                    }
                    None => theirs.push((header.key.to_owned(), header.value.map(<[u8]>::to_vec))),
                }
            }
        }
        let original = match (
            ours.get(h::TOPIC),
            ours.get(h::PARTITION).and_then(|p| p.parse().ok()),
            ours.get(h::OFFSET).and_then(|o| o.parse().ok()),
        ) {
            (Some(t), Some(p), Some(o)) => Some((t.clone(), p, o)),
            _ => None,
        };
        DeadLetter {
            partition: m.partition(),
            offset: m.offset(),
            timestamp: Timestamp(m.timestamp().to_millis().unwrap_or(0).saturating_mul(1000)),
            processor: ours.get(h::PROCESSOR).cloned(),
            error_class: ours.get(h::ERROR_CLASS).cloned(),
            error: ours.get(h::ERROR).cloned(),
            original,
            key: m.key().map(<[u8]>::to_vec),
            payload: m.payload().unwrap_or_default().to_vec(),
            headers: theirs,
            redrive_run: ours.get(HEADER_RUN).and_then(|r| r.parse().ok()),
        }
    }

    /// Where it goes back to: `to_topic`, else the topic it came from.
    pub fn target(&self, to_topic: Option<&str>) -> Option<String> {
        to_topic
            .map(str::to_owned)
            .or_else(|| self.original.as_ref().map(|o| o.0.clone()))
    }

    /// `kafka:topic/partition/offset` of the original message: the correlation id of its
    /// `DeadLettered` event.
    fn correlation_id(&self, dead_letter_topic: &str) -> String {
        match &self.original {
            Some((t, p, o)) => format!("kafka:{t}/{p}/{o}"),
            None => format!(
                "kafka:{dead_letter_topic}/{}/{}",
                self.partition, self.offset
            ),
        }
    }
}

/// What became of one selected dead letter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Dry run: it would go to this topic.
    WouldRedrive {
        /// The topic.
        topic: String,
    },
    /// Produced to this topic, partition and offset, and recorded.
    Redriven {
        /// The topic.
        topic: String,
        /// Its partition there.
        partition: i32,
        /// Its offset there.
        offset: i64,
    },
    /// An earlier run re-drove it (`again` not set).
    AlreadyRedriven,
    /// No original topic in its headers and no `to_topic`.
    NoTarget,
}

/// What a re-drive did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// The run's id (on every event and re-driven message).
    pub run_id: uuid::Uuid,
    /// Messages on the dead-letter topic read.
    pub read: u64,
    /// Of those, selected.
    pub selected: u64,
    /// Re-driven (or, in a dry run, to be re-driven).
    pub redriven: u64,
    /// Skipped: an earlier run re-drove them.
    pub already_redriven: u64,
    /// Skipped: nowhere to send them.
    pub no_target: u64,
}

/// Why a re-drive stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedriveError {
    /// Kafka failed.
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// The store failed; messages produced before it are named so none is re-driven
    /// unrecorded without the operator knowing.
    #[error(
        "event store: {error} ({produced} messages of run {run_id} were re-driven but not \
         recorded; a new run re-drives them again and the pipeline keeps one copy)"
    )]
    Store {
        /// The store's error.
        error: StoreError,
        /// Produced but not recorded.
        produced: usize,
        /// The run.
        run_id: uuid::Uuid,
    },
    /// The store could not be read.
    #[error("event store: {0}")]
    Read(#[from] StoreError),
    /// The dead-letter topic is missing or stopped yielding before its end.
    #[error("dead-letter topic {topic}: {message}")]
    Topic {
        /// The topic.
        topic: String,
        /// What went wrong.
        message: String,
    },
}

/// Runs a re-drive, calling `each` for every selected dead letter with what became of it.
pub async fn redrive(
    kafka: &KafkaSettings,
    store: &dyn EventStore,
    request: &Request,
    mut each: impl FnMut(&DeadLetter, &Disposition),
) -> Result<Report, RedriveError> {
    let run_id = uuid::Uuid::new_v4();
    let mut report = Report {
        run_id,
        ..Report::default()
    };
    let history = History::load(store, &request.dead_letter_topic).await?;
    let topic = &request.dead_letter_topic;
    // The end of a partition is where librdkafka reports it (partition EOF, from the
    // high watermark of fetch responses): ListOffsets is off by one on some brokers
    // (Tansu 0.6.0 answers the last offset, not the next one).
    let consumer = reader(kafka, &format!("insights-dlq-redrive-{run_id}"))?;
    let metadata = consumer
        .client()
        .fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic && t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        return Err(RedriveError::Topic {
            topic: topic.clone(),
            message: "no such topic on the cluster".into(),
        });
    }
    let mut ends: HashSet<i32> = partitions.iter().copied().collect();
    let mut assignment = TopicPartitionList::new();
    for p in &partitions {
        assignment.add_partition_offset(topic, *p, Offset::Beginning)?;
    }
    consumer.assign(&assignment)?;
    let mut sender = Sender {
        producer: producer(kafka)?,
        store,
        request,
        history: &history,
        run_id,
        pacer: tokio::time::interval(Duration::from_secs_f64(
            1.0 / f64::from(request.rate.max(1)),
        )),
    };
    let mut chunk: Vec<(DeadLetter, String)> = Vec::new();
    let limit = request.limit.unwrap_or(usize::MAX) as u64;
    let mut stream = consumer.stream();
    while !ends.is_empty() && report.redriven + (chunk.len() as u64) < limit {
        let m = match tokio::time::timeout(request.read_timeout, stream.next()).await {
            Ok(Some(Ok(m))) => m.detach(),
            Ok(Some(Err(rdkafka::error::KafkaError::PartitionEOF(p)))) => {
                ends.remove(&p);
                continue;
            }
            Ok(Some(Err(e))) => return Err(e.into()),
            Ok(None) => break,
            Err(_) => {
                let mut left: Vec<String> = ends.iter().map(ToString::to_string).collect();
                left.sort();
                return Err(RedriveError::Topic {
                    topic: topic.clone(),
                    message: format!(
                        "nothing read for {:?} before the end of partitions {}",
                        request.read_timeout,
                        left.join(", ")
                    ),
                });
            }
        };
        report.read += 1;
        let d = DeadLetter::from_message(&m);
        // Re-driven by this run and dead-lettered again already: the next run's.
        if d.redrive_run == Some(run_id) || !request.selection.matches(&d) {
            continue;
        }
        report.selected += 1;
        if !request.again && history.redriven.contains(&(d.partition, d.offset)) {
            report.already_redriven += 1;
            each(&d, &Disposition::AlreadyRedriven);
            continue;
        }
        let Some(target) = d.target(request.to_topic.as_deref()) else {
            report.no_target += 1;
            each(&d, &Disposition::NoTarget);
            continue;
        };
        if request.dry_run {
            report.redriven += 1;
            each(&d, &Disposition::WouldRedrive { topic: target });
            continue;
        }
        chunk.push((d, target));
        if chunk.len() >= CHUNK {
            let sent = std::mem::take(&mut chunk);
            report.redriven += sender.send(sent, &mut each).await?;
        }
    }
    if !chunk.is_empty() {
        report.redriven += sender.send(chunk, &mut each).await?;
    }
    Ok(report)
}

/// What the store says about earlier dead letters and re-drives.
#[derive(Debug, Default)]
struct History {
    /// Dead letters (partition, offset on the dead-letter topic) already re-driven.
    redriven: HashSet<(i32, i64)>,
    /// `DeadLettered` event ids by (processor, original topic, partition, offset).
    dead_lettered: HashMap<(String, String, i32, i64), uuid::Uuid>,
}

impl History {
    async fn load(store: &dyn EventStore, dead_letter_topic: &str) -> Result<Self, StoreError> {
        let filter = EventFilter::Types(vec!["DeadLettered".into(), "DeadLetterRedriven".into()]);
        let mut history = History::default();
        let mut pages = Pages::to_head(store, filter, insights_event_store::PAGE_SIZE).await?;
        while let Some(page) = pages.next().await? {
            for r in &page {
                // An event that does not decode is not one of these two: skip it, the
                // worst outcome is a re-drive without a causation link.
                let Ok(envelope) = from_recorded(r) else {
                    continue;
                };
                match envelope.event {
                    Event::DeadLettered(d) => {
                        history.dead_lettered.insert(
                            (d.processor, d.topic, d.partition, d.offset),
                            envelope.event_id,
                        );
                    }
                    Event::DeadLetterRedriven(r) if r.dead_letter_topic == dead_letter_topic => {
                        history
                            .redriven
                            .insert((r.dead_letter_partition, r.dead_letter_offset));
                    }
                    _ => {}
                }
            }
        }
        Ok(history)
    }

    fn dead_lettered_id(&self, d: &DeadLetter) -> Option<uuid::Uuid> {
        let (topic, partition, offset) = d.original.clone()?;
        let processor = d.processor.clone()?;
        self.dead_lettered
            .get(&(processor, topic, partition, offset))
            .copied()
    }
}

/// Sends chunks of a run's selected dead letters and records them.
struct Sender<'a> {
    producer: rdkafka::producer::FutureProducer,
    store: &'a dyn EventStore,
    request: &'a Request,
    history: &'a History,
    run_id: uuid::Uuid,
    pacer: tokio::time::Interval,
}

impl Sender<'_> {
    /// Produces a chunk at the request's rate, waits for every delivery, then records them.
    async fn send(
        &mut self,
        chunk: Vec<(DeadLetter, String)>,
        each: &mut impl FnMut(&DeadLetter, &Disposition),
    ) -> Result<u64, RedriveError> {
        let mut deliveries = Vec::with_capacity(chunk.len());
        for (d, target) in &chunk {
            self.pacer.tick().await;
            let mut record = FutureRecord::to(target)
                .payload(d.payload.as_slice())
                .headers(redriven_headers(
                    d,
                    &self.request.dead_letter_topic,
                    self.run_id,
                ));
            if let Some(key) = &d.key {
                record = record.key(key.as_slice());
            }
            // Handed to librdkafka now; delivered (or not) below.
            deliveries.push(self.producer.send_result(record).map_err(|(e, _)| e)?);
        }
        let mut envelopes = Vec::with_capacity(chunk.len());
        let now = Timestamp::now();
        for ((d, target), delivery) in chunk.iter().zip(deliveries) {
            let delivered = delivery
                .await
                .map_err(|_| rdkafka::error::KafkaError::Canceled)?
                .map_err(|(e, _)| e)?;
            let disposition = Disposition::Redriven {
                topic: target.clone(),
                partition: delivered.partition,
                offset: delivered.offset,
            };
            envelopes.push(event_for(
                self.request,
                self.history,
                self.run_id,
                now,
                d,
                &disposition,
            ));
            each(d, &disposition);
        }
        let batch = AppendBatch::new(envelopes.iter().map(to_event_data).collect());
        append(self.store, batch)
            .await
            .map_err(|error| RedriveError::Store {
                error,
                produced: chunk.len(),
                run_id: self.run_id,
            })?;
        Ok(chunk.len() as u64)
    }
}

/// Appends, retrying what may pass (a store restarting) for up to a minute.
async fn append(store: &dyn EventStore, batch: AppendBatch) -> Result<(), StoreError> {
    let mut wait = Duration::from_millis(200);
    let mut waited = Duration::ZERO;
    loop {
        match store.append(batch.clone()).await {
            Ok(_) => return Ok(()),
            Err(e) if e.is_retryable() && waited < Duration::from_secs(60) => {
                tracing::warn!(error = %e, "recording the re-drive failed; retrying");
                tokio::time::sleep(wait).await;
                waited += wait;
                wait = (wait * 2).min(Duration::from_secs(5));
            }
            Err(e) => return Err(e),
        }
    }
}

/// The original producer's headers, and which run re-drove it from where.
fn redriven_headers(d: &DeadLetter, dead_letter_topic: &str, run_id: uuid::Uuid) -> OwnedHeaders {
    let run = run_id.to_string();
    let of = format!("{dead_letter_topic}/{}/{}", d.partition, d.offset);
    let mut headers = OwnedHeaders::new();
    for (key, value) in &d.headers {
        headers = headers.insert(Header {
            key,
            value: value.as_deref(),
        });
    }
    headers
        .insert(Header {
            key: HEADER_RUN,
            value: Some(run.as_str()),
        })
        .insert(Header {
            key: HEADER_OF,
            value: Some(of.as_str()),
        })
}

/// The `DeadLetterRedriven` event for one re-driven message.
fn event_for(
    request: &Request,
    history: &History,
    run_id: uuid::Uuid,
    now: Timestamp,
    d: &DeadLetter,
    disposition: &Disposition,
) -> Envelope {
    let (topic, partition, offset) = match disposition {
        Disposition::Redriven {
            topic,
            partition,
            offset,
        } => (topic.clone(), *partition, *offset),
        _ => (String::new(), -1, -1),
    };
    let dlq = &request.dead_letter_topic;
    let (original_topic, original_partition, original_offset) = d
        .original
        .clone()
        .unwrap_or_else(|| (String::new(), -1, -1));
    let correlation_id = d.correlation_id(dlq);
    let event = Event::DeadLetterRedriven(DeadLetterRedriven {
        dead_letter_topic: dlq.clone(),
        dead_letter_partition: d.partition,
        dead_letter_offset: d.offset,
        processor: d.processor.clone().unwrap_or_default(),
        error_class: d.error_class.clone().unwrap_or_default(),
        error: d.error.clone().unwrap_or_default(),
        original_topic,
        original_partition,
        original_offset,
        topic,
        partition,
        offset,
        payload_sha256: hex::encode(Sha256::digest(&d.payload)),
        redriven_by: request.by.clone(),
        reason: request.reason.clone(),
        run_id,
    });
    Envelope {
        event_id: Envelope::derived_id(
            PRODUCER,
            &format!("{run_id}/{dlq}/{}/{}", d.partition, d.offset),
            now,
            0,
        ),
        schema_version: current_version("DeadLetterRedriven").unwrap_or(1),
        stream_id: STREAM.into(),
        causation_id: Some(
            history
                .dead_lettered_id(d)
                .map_or_else(|| correlation_id.clone(), |id| id.to_string()),
        ),
        correlation_id,
        occurred_at: now,
        producer: PRODUCER.into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        event,
    }
}

#[cfg(test)]
mod tests {
    use rdkafka::Timestamp as KafkaTime;

    use super::*;

    fn dead_letter_message(processor: &str, class: &str, at_ms: i64) -> OwnedMessage {
        let mut headers = OwnedHeaders::new();
        for (key, value) in [
            (h::PROCESSOR, processor),
            (h::ERROR_CLASS, class),
            (h::ERROR, "too big"),
            (h::TOPIC, "interactions.raw"),
            (h::PARTITION, "3"),
            (h::OFFSET, "41"),
            ("traceparent", "00-abc-def-01"),
        ] {
            headers = headers.insert(Header {
                key,
                value: Some(value),
            });
        }
        OwnedMessage::new(
            Some(b"{\"text\":\"hi\"}".to_vec()),
            Some(b"conv-1".to_vec()),
            "interactions.deadletter".into(),
            KafkaTime::CreateTime(at_ms),
            1,
            7,
            Some(headers),
        )
    }

    #[test]
    fn a_dead_letter_reads_back_its_origin_and_keeps_only_the_producers_headers() {
        let d = DeadLetter::from_message(&dead_letter_message("privacy", "poison", 5));
        assert_eq!(d.processor.as_deref(), Some("privacy"));
        assert_eq!(d.error_class.as_deref(), Some("poison"));
        assert_eq!(d.error.as_deref(), Some("too big"));
        assert_eq!(d.original, Some(("interactions.raw".into(), 3, 41)));
        assert_eq!(d.timestamp, Timestamp(5_000));
        assert_eq!((d.partition, d.offset), (1, 7));
        assert_eq!(d.key.as_deref(), Some(&b"conv-1"[..]));
        assert_eq!(
            d.headers,
            vec![("traceparent".to_owned(), Some(b"00-abc-def-01".to_vec()))]
        );
        assert_eq!(d.target(None).as_deref(), Some("interactions.raw"));
        assert_eq!(d.target(Some("other")).as_deref(), Some("other"));
        assert_eq!(
            d.correlation_id("interactions.deadletter"),
            "kafka:interactions.raw/3/41"
        );

        let headers = redriven_headers(&d, "interactions.deadletter", uuid::Uuid::nil());
        let keys: Vec<&str> = headers.iter().map(|h| h.key).collect();
        assert_eq!(keys, ["traceparent", HEADER_RUN, HEADER_OF]);
        // Dead-lettered again after a re-drive, it reads back the same way.
        let again = OwnedMessage::new(
            Some(d.payload.clone()),
            d.key.clone(),
            "interactions.deadletter".into(),
            KafkaTime::CreateTime(9),
            0,
            12,
            Some(headers),
        );
        let d2 = DeadLetter::from_message(&again);
        assert_eq!(d2.headers, d.headers);
        assert_eq!(d2.original, None, "no origin headers: the worker adds them");
        assert_eq!(d2.redrive_run, Some(uuid::Uuid::nil()));
        assert_eq!(d.redrive_run, None);
    }

    #[test]
    fn a_selection_holds_every_condition_it_names() {
        let d = DeadLetter::from_message(&dead_letter_message("privacy", "poison", 5));
        assert!(Selection::default().matches(&d));
        let by = |s: Selection| s.matches(&d);
        assert!(by(Selection {
            processor: Some("privacy".into()),
            error_class: Some("poison".into()),
            original_topic: Some("interactions.raw".into()),
            since: Some(Timestamp(5_000)),
            until: Some(Timestamp(5_001)),
        }));
        assert!(!by(Selection {
            processor: Some("sentiment".into()),
            ..Selection::default()
        }));
        assert!(!by(Selection {
            error_class: Some("retries-exhausted".into()),
            ..Selection::default()
        }));
        assert!(!by(Selection {
            original_topic: Some("interactions.scrubbed".into()),
            ..Selection::default()
        }));
        assert!(!by(Selection {
            since: Some(Timestamp(5_001)),
            ..Selection::default()
        }));
        assert!(!by(Selection {
            until: Some(Timestamp(5_000)),
            ..Selection::default()
        }));
    }

    #[test]
    fn the_event_links_the_dead_letter_and_names_who_why_and_where() {
        let d = DeadLetter::from_message(&dead_letter_message("privacy", "poison", 5));
        let request = Request {
            dead_letter_topic: "interactions.deadletter".into(),
            selection: Selection::default(),
            to_topic: None,
            limit: None,
            rate: 10,
            by: "ana".into(),
            reason: "raised max_message_bytes".into(),
            dry_run: false,
            again: false,
            read_timeout: Duration::from_secs(1),
        };
        let dead_lettered = uuid::Uuid::from_u128(7);
        let mut history = History::default();
        history.dead_lettered.insert(
            ("privacy".into(), "interactions.raw".into(), 3, 41),
            dead_lettered,
        );
        let run = uuid::Uuid::from_u128(1);
        let done = Disposition::Redriven {
            topic: "interactions.raw".into(),
            partition: 2,
            offset: 100,
        };
        let e = event_for(&request, &history, run, Timestamp(1), &d, &done);
        assert_eq!(e.causation_id, Some(dead_lettered.to_string()));
        assert_eq!(e.correlation_id, "kafka:interactions.raw/3/41");
        assert_eq!(e.stream_id, STREAM);
        let Event::DeadLetterRedriven(r) = &e.event else {
            panic!("{e:?}")
        };
        assert_eq!((r.dead_letter_partition, r.dead_letter_offset), (1, 7));
        assert_eq!((r.partition, r.offset), (2, 100));
        assert_eq!(r.redriven_by, "ana");
        assert_eq!(r.reason, "raised max_message_bytes");
        assert_eq!(r.run_id, run);
        // Another run re-driving the same dead letter records another event.
        let other = event_for(
            &request,
            &history,
            uuid::Uuid::from_u128(2),
            Timestamp(1),
            &d,
            &done,
        );
        assert_ne!(other.event_id, e.event_id);
        // Without a DeadLettered event in the store, the cause is the original message.
        let e = event_for(&request, &History::default(), run, Timestamp(1), &d, &done);
        assert_eq!(
            e.causation_id.as_deref(),
            Some("kafka:interactions.raw/3/41")
        );
    }
}
