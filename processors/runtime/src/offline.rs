//! Drivers that work from the store rather than from a consumer group: running a processor
//! again over its stored inputs (`insights replay --reprocess`), and putting stored events
//! back onto a topic (`insights replay --to-topic`), plus the one envelope producer that
//! they, the review API and tools publish with.

use std::time::Duration;

use insights_event_store::envelope::{RecordError, from_recorded, to_event_data};
use insights_event_store::{AppendBatch, EventFilter, EventStore, Pages, StoreError};
use insights_processor::{ProcessError, Processor, drive_each, envelope_for};
use insights_schemas::{Codec, Envelope, Format, Timestamp};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::producer::{FutureProducer, FutureRecord};

use crate::RuntimeError;
use crate::kafka::{KafkaSettings, producer};

/// Why an offline run stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OfflineError {
    /// Reading or appending failed.
    #[error("event store: {0}")]
    Store(#[from] StoreError),
    /// A stored event is not a valid envelope.
    #[error(transparent)]
    Record(#[from] RecordError),
    /// An event could not be published.
    #[error(transparent)]
    Publish(#[from] PublishError),
}

/// Why one envelope was not published.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// It cannot be encoded (its payload breaks its schema).
    #[error("encoding {event_type}: {message}")]
    Encode {
        /// Its type.
        event_type: &'static str,
        /// Why.
        message: String,
    },
    /// The broker did not take it within the delivery timeout.
    #[error("publishing {event_type} to {topic}: {error}")]
    Deliver {
        /// Its type.
        event_type: &'static str,
        /// The topic.
        topic: String,
        /// Why.
        error: KafkaError,
    },
}

/// Publishes envelopes as the processors do: Avro single-object encoding, through the
/// runtime's idempotent producer, so that a partition keeps the order of the sends.
pub struct EnvelopeProducer {
    producer: FutureProducer,
    codec: Codec,
    timeout: Duration,
}

impl std::fmt::Debug for EnvelopeProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnvelopeProducer")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl EnvelopeProducer {
    /// A producer for `settings`; each send waits at most 30 s for delivery.
    pub fn new(settings: &KafkaSettings) -> KafkaResult<Self> {
        Ok(Self {
            producer: producer(settings)?,
            codec: Codec::new(),
            timeout: Duration::from_secs(30),
        })
    }

    /// Publishes `envelope` to `topic` under `key` and waits for its delivery.
    pub async fn send(
        &self,
        topic: &str,
        key: &str,
        envelope: &Envelope,
    ) -> Result<(), PublishError> {
        let event_type = envelope.event_type();
        let bytes = self
            .codec
            .encode(envelope, Format::SingleObject)
            .map_err(|e| PublishError::Encode {
                event_type,
                message: e.to_string(),
            })?;
        self.producer
            .send(
                FutureRecord::to(topic).key(key).payload(bytes.as_slice()),
                self.timeout,
            )
            .await
            .map(drop)
            .map_err(|(error, _)| PublishError::Deliver {
                event_type,
                topic: topic.to_owned(),
                error,
            })
    }

    /// Publishes every `(key, envelope)` to `topic` at once (in order per key) and waits
    /// for all deliveries; the results are in the input's order.
    pub async fn send_all(
        &self,
        topic: &str,
        envelopes: &[(String, Envelope)],
    ) -> Vec<Result<(), PublishError>> {
        futures::future::join_all(envelopes.iter().map(|(key, e)| self.send(topic, key, e))).await
    }
}

/// The key an event is published under: its conversation when it is about one, else its
/// stream (the key the processors use for their outputs).
pub fn envelope_key(envelope: &Envelope) -> String {
    envelope
        .event
        .context()
        .map_or_else(|| envelope.stream_id.clone(), |c| c.conversation_id.clone())
}

/// What [`restore`] folded into a processor.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Restored {
    /// Stored events handed to the processor.
    pub events: u64,
    /// Stored events of its types that do not decode (skipped, each logged).
    pub undecodable: u64,
}

/// Rebuilds `processor`'s state from the store before it consumes: every stored event of
/// its [`Processor::restores_from`] types, up to the head, in log order, a page at a time
/// (on the blocking pool: a processor's work is synchronous). An event that does not
/// decode cannot be folded; it is skipped with a warning naming its position, and counted.
pub async fn restore<P: Processor>(
    mut processor: P,
    store: &dyn EventStore,
) -> Result<(P, Restored), RuntimeError> {
    let types = processor.restores_from();
    let name = processor.name().to_owned();
    let mut done = Restored::default();
    if types.is_empty() {
        return Ok((processor, done));
    }
    let filter = EventFilter::Types(types.iter().map(|t| (*t).to_owned()).collect());
    let mut pages = Pages::to_head(store, filter, insights_event_store::PAGE_SIZE).await?;
    while let Some(page) = pages.next().await? {
        let mut events = Vec::with_capacity(page.len());
        for r in &page {
            match from_recorded(r) {
                Ok(e) => events.push(e),
                Err(e) => {
                    done.undecodable += 1;
                    tracing::warn!(
                        processor = %name,
                        error = %e,
                        "a stored event is skipped while restoring state"
                    );
                }
            }
        }
        done.events += events.len() as u64;
        processor = tokio::task::spawn_blocking(move || {
            processor.restore(&events);
            processor
        })
        .await
        .map_err(|e| RuntimeError::Fatal {
            processor: name.clone(),
            message: format!("restoring its state failed: {e}"),
        })?;
    }
    Ok((processor, done))
}

/// Events per page read and published at once by [`republish`].
const REPUBLISH_PAGE: usize = 1_000;

/// Publishes the stored events at positions `from..=to` that `filter` selects to `topic`,
/// in log order per key, each under [`envelope_key`]. Consumers that store what they
/// receive drop the copies by event id; processors re-derive the same output ids.
/// `progress` hears each page's last position. Returns how many went out.
pub async fn republish(
    store: &dyn EventStore,
    producer: &EnvelopeProducer,
    topic: &str,
    (from, to): (u64, u64),
    filter: &EventFilter,
    mut progress: impl FnMut(u64),
) -> Result<u64, OfflineError> {
    let mut pages = Pages::between(
        store,
        filter.clone(),
        (from.saturating_sub(1), to),
        REPUBLISH_PAGE,
    );
    let mut published = 0;
    while let Some(page) = pages.next().await? {
        let mut envelopes = Vec::with_capacity(page.len());
        for r in &page {
            let envelope = from_recorded(r)?;
            envelopes.push((envelope_key(&envelope), envelope));
        }
        for result in producer.send_all(topic, &envelopes).await {
            result?;
        }
        published += envelopes.len() as u64;
        progress(pages.position());
    }
    Ok(published)
}

/// What a [`reprocess`] run did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Reprocessed {
    /// Inputs read.
    pub inputs: u64,
    /// Events appended.
    pub appended: u64,
    /// Events this version had appended already.
    pub already: u64,
    /// Inputs the processor refused.
    pub refused: u64,
}

/// Which stored events a processor reads when it is run again.
#[derive(Debug, Clone)]
pub struct StoredInputs {
    /// The topic they came from (the inputs' source in the processor's context).
    pub topic: String,
    /// Their event types.
    pub types: Vec<String>,
    /// Inputs per batch (the processor's `prepare` sees a batch at once).
    pub batch: usize,
}

/// Runs `processor` over its inputs in the store up to the head as it is when called, and
/// appends its outputs. Old events are never touched: the new ones get ids derived from
/// the processor *and its version*, so a second run of the same version (after a crash,
/// say) appends nothing twice, and views can keep one series per version. `now` is the
/// outputs' processing time; `progress` hears each page's last position; `refused` each
/// input the processor rejects. Must run on a multi-threaded tokio runtime (the processor
/// runs in place, as a blocking section).
pub async fn reprocess<P: Processor<Input = Envelope>>(
    store: &dyn EventStore,
    processor: &mut P,
    inputs: &StoredInputs,
    now: Timestamp,
    mut progress: impl FnMut(u64),
    mut refused: impl FnMut(&Envelope, &ProcessError),
) -> Result<Reprocessed, OfflineError> {
    let name = processor.name().to_owned();
    let version = processor.version().to_owned();
    // Ids in a namespace of this version: a new version's events never collide with the
    // old ones, and the same version run twice collides with itself.
    let namespace = format!("{name}@{version}");
    let filter = EventFilter::Types(inputs.types.clone());
    let mut pages = Pages::to_head(store, filter, inputs.batch).await?;
    let mut done = Reprocessed::default();
    while let Some(page) = pages.next().await? {
        let mut batch = Vec::with_capacity(page.len());
        for r in &page {
            batch.push((
                i64::try_from(r.position).unwrap_or(i64::MAX),
                from_recorded(r)?,
            ));
        }
        let outputs = tokio::task::block_in_place(|| {
            let batch: Vec<(i64, &Envelope)> = batch.iter().map(|(p, e)| (*p, e)).collect();
            let mut out = Vec::new();
            drive_each(
                processor,
                &inputs.topic,
                &batch,
                now,
                |input, ctx, result| match result {
                    Ok(outputs) => {
                        for (i, o) in outputs.iter().enumerate() {
                            let index = u32::try_from(i).unwrap_or(u32::MAX);
                            let mut e = envelope_for(&name, &version, ctx, index, o);
                            e.event_id = Envelope::derived_id(
                                &namespace,
                                ctx.input_id,
                                ctx.input_time,
                                index,
                            );
                            out.push(e);
                        }
                    }
                    Err(e) => {
                        done.refused += 1;
                        refused(input, &e);
                    }
                },
            );
            out
        });
        done.inputs += batch.len() as u64;
        if !outputs.is_empty() {
            let appended = store
                .append(AppendBatch::new(
                    outputs.iter().map(to_event_data).collect(),
                ))
                .await?;
            let already = appended.iter().filter(|a| a.duplicate).count() as u64;
            done.already += already;
            done.appended += appended.len() as u64 - already;
        }
        progress(pages.position());
    }
    Ok(done)
}
