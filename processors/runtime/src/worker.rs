//! The loop that runs one processor: consume a batch, decode and process it on the
//! blocking pool, append the outputs to the store in one transaction, publish them and
//! wait for delivery, and only then commit the consumed offsets.
//!
//! A crash anywhere before the commit redelivers the batch; output event ids are derived
//! from (processor, input id, index), so the store drops what it already holds and the
//! republished messages carry the same ids, which consumers dedupe through the store.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use backoff::ExponentialBackoff;
use backoff::backoff::Backoff;
use insights_event_store::{AppendBatch, EventStore, StoreError};
use insights_schemas::{Codec, DeadLettered, Envelope, Event, Format, Timestamp};
use insights_topology::ProcessorSettings;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use sha2::{Digest, Sha256};

use crate::kafka::{KafkaSettings, RebalanceContext, producer, worker_consumer};
use crate::metrics::Metrics;
use crate::processor::{Context, Input, Output, ProcessError, Processor, Source};
use crate::records::{envelope_for, to_event_data};
use crate::{ErrorClass, RuntimeError};

/// Headers on a dead-lettered message.
pub mod dead_letter_headers {
    /// The processor that rejected the message.
    pub const PROCESSOR: &str = "insights.processor";
    /// `poison` or `retries-exhausted`.
    pub const ERROR_CLASS: &str = "insights.error.class";
    /// The error, one line.
    pub const ERROR: &str = "insights.error.message";
    /// The topic it was consumed from.
    pub const TOPIC: &str = "insights.original.topic";
    /// Its partition.
    pub const PARTITION: &str = "insights.original.partition";
    /// Its offset.
    pub const OFFSET: &str = "insights.original.offset";
}

/// What a worker shares with the others: the store, Kafka settings, metrics.
#[derive(Debug, Clone)]
pub struct Shared {
    /// The event store.
    pub store: Arc<dyn EventStore>,
    /// How to reach Kafka.
    pub kafka: KafkaSettings,
    /// Metric families.
    pub metrics: Metrics,
    /// Codec (with any schema ids learnt from a registry).
    pub codec: Codec,
    /// How outputs are encoded on their topics.
    pub output_format: Format,
}

/// When a worker stops on its own.
#[derive(Debug, Clone)]
pub enum StopWhen {
    /// Only on shutdown.
    Shutdown,
    /// When its input topics are drained: no message for this long and every assigned
    /// partition read up to its high watermark (or on shutdown).
    Idle(Duration),
    /// As `Idle`, but only once `upstream` reads true: the processors writing its inputs
    /// have stopped (a model still loading upstream leaves the inputs empty for a while,
    /// which is not the end of them).
    IdleAfterUpstream(Duration, tokio::sync::watch::Receiver<bool>),
}

/// What a worker did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Messages consumed.
    pub consumed: u64,
    /// Events appended (new, not duplicates).
    pub appended: u64,
    /// Events appended that the store already held (redelivery).
    pub duplicates: u64,
    /// Messages dead-lettered.
    pub dead_lettered: u64,
}

/// One message's outcome from the pure stage.
enum Outcome {
    Outputs(Vec<(Envelope, String, String)>),
    Dead { class: ErrorClass, error: String },
}

/// Runs `processor` until `shutdown` resolves (or, with [`StopWhen::Idle`], its inputs
/// are drained). Returns what it did, or the error that stopped it; offsets of everything
/// stored and published are committed either way.
pub async fn run<P: Processor>(
    processor: P,
    settings: ProcessorSettings,
    shared: Shared,
    stop: StopWhen,
    shutdown: impl Future<Output = ()>,
) -> Result<Summary, RuntimeError> {
    let consumer = Arc::new(worker_consumer(&shared.kafka, &settings.group)?);
    let topics: Vec<&str> = settings.inputs.iter().map(String::as_str).collect();
    consumer.subscribe(&topics)?;
    let producer = producer(&shared.kafka)?;
    let mut worker = Worker {
        processor: std::sync::Mutex::new(Some(processor)),
        settings,
        shared,
        consumer,
        producer,
        summary: Summary::default(),
        last_lag_update: Instant::now(),
        consumer_backoff: ExponentialBackoff {
            max_elapsed_time: None,
            ..backoff_policy()
        },
    };
    tokio::pin!(shutdown);
    let idle_after = match &stop {
        StopWhen::Idle(d) | StopWhen::IdleAfterUpstream(d, _) => Some(*d),
        StopWhen::Shutdown => None,
    };
    let upstream_done = || match &stop {
        StopWhen::IdleAfterUpstream(_, upstream) => *upstream.borrow(),
        _ => true,
    };
    let result = loop {
        let batch = tokio::select! {
            biased;
            () = &mut shutdown => break Ok(()),
            batch = worker.next_batch(idle_after) => batch,
        };
        match batch {
            Err(e) => break Err(e),
            Ok(Batch::Messages(messages)) if messages.is_empty() => {}
            Ok(Batch::Messages(messages)) => {
                if let Err(e) = worker.handle(messages).await {
                    break Err(e);
                }
            }
            Ok(Batch::Idle) => {
                if upstream_done() && worker.caught_up().await {
                    break Ok(());
                }
            }
        }
    };
    // Batches are committed asynchronously as they complete; commit the last offsets
    // synchronously so that a clean stop leaves nothing to redeliver.
    let handled = worker
        .consumer
        .context()
        .handled
        .lock()
        .map(|h| h.clone())
        .unwrap_or_default();
    if handled.count() > 0
        && let Err(e) = worker.consumer.commit(&handled, CommitMode::Sync)
    {
        tracing::warn!(processor = %worker.settings.name, error = %e,
            "final commit failed; the last batch will be redelivered");
    }
    worker.consumer.unsubscribe();
    result.map(|()| worker.summary)
}

enum Batch {
    Messages(Vec<OwnedMessage>),
    Idle,
}

struct Worker<P: Processor> {
    /// Moved to the blocking pool for each batch and back. (A mutex only so that the
    /// worker is `Sync` while the processor, like a model, need not be.)
    processor: std::sync::Mutex<Option<P>>,
    settings: ProcessorSettings,
    shared: Shared,
    consumer: Arc<StreamConsumer<RebalanceContext>>,
    producer: FutureProducer,
    summary: Summary,
    last_lag_update: Instant,
    /// Waits between consumer errors; reset by every batch.
    consumer_backoff: ExponentialBackoff,
}

impl<P: Processor> Worker<P> {
    /// Up to `batch_size` messages, waiting at most `linger_ms` after the first; `Idle`
    /// when nothing arrived for `idle_after`.
    async fn next_batch(&mut self, idle_after: Option<Duration>) -> Result<Batch, RuntimeError> {
        let first = match idle_after {
            Some(idle) => match tokio::time::timeout(idle, self.consumer.recv()).await {
                Ok(Ok(m)) => m,
                Ok(Err(e)) => return self.consumer_error(e).await,
                Err(_) => return Ok(Batch::Idle),
            },
            None => match self.consumer.recv().await {
                Ok(m) => m,
                Err(e) => return self.consumer_error(e).await,
            },
        };
        let mut seen = self.consumer.context().revocations.load(Ordering::SeqCst);
        let mut batch = vec![first.detach()];
        let deadline = tokio::time::Instant::now() + Duration::from_millis(self.settings.linger_ms);
        while batch.len() < self.settings.batch_size {
            match tokio::time::timeout_at(deadline, self.consumer.recv()).await {
                Ok(Ok(m)) => {
                    // A rebalance runs inside `recv`: what was fetched before it from a
                    // revoked partition is no longer ours to handle.
                    self.drop_revoked(&mut batch, &mut seen);
                    batch.push(m.detach());
                }
                // Handle what we have; the error shows again on the next receive.
                Ok(Err(_)) | Err(_) => break,
            }
        }
        self.drop_revoked(&mut batch, &mut seen);
        if batch.is_empty() {
            return Ok(Batch::Messages(Vec::new()));
        }
        Ok(Batch::Messages(batch))
    }

    /// librdkafka reports broker trouble through the consumer and recovers by itself
    /// (reconnects, rejoins the group): back off and keep consuming. Nothing is committed
    /// meanwhile, so nothing is lost.
    async fn consumer_error(
        &mut self,
        e: rdkafka::error::KafkaError,
    ) -> Result<Batch, RuntimeError> {
        let wait = self
            .consumer_backoff
            .next_backoff()
            .unwrap_or(Duration::from_secs(5));
        tracing::warn!(processor = %self.settings.name, error = %e, ?wait, "consumer error; retrying");
        self.shared
            .metrics
            .retries
            .with_label_values(&[&self.settings.name, "consume"])
            .inc();
        tokio::time::sleep(wait).await;
        Ok(Batch::Messages(Vec::new()))
    }

    fn drop_revoked(&self, batch: &mut Vec<OwnedMessage>, seen: &mut u64) {
        let ctx = self.consumer.context();
        let now = ctx.revocations.load(Ordering::SeqCst);
        if now == *seen {
            return;
        }
        *seen = now;
        // Drained: a partition revoked and later assigned again is ours from then on.
        let revoked = ctx
            .revoked
            .lock()
            .map(|mut r| std::mem::take(&mut *r))
            .unwrap_or_default();
        let before = batch.len();
        batch.retain(|m| !revoked.contains(&(m.topic().to_owned(), m.partition())));
        if batch.len() < before {
            tracing::info!(
                processor = %self.settings.name,
                dropped = before - batch.len(),
                "rebalance: dropped fetched messages of revoked partitions"
            );
        }
    }

    async fn handle(&mut self, messages: Vec<OwnedMessage>) -> Result<(), RuntimeError> {
        let started = Instant::now();
        self.consumer_backoff.reset();
        let name = self.settings.name.clone();
        for m in &messages {
            self.shared
                .metrics
                .consumed
                .with_label_values(&[&name, m.topic()])
                .inc();
        }
        self.summary.consumed += messages.len() as u64;

        // The pure stage, off the async runtime: decode and process every message.
        let taken = self.processor.lock().map(|mut p| p.take()).unwrap_or(None);
        let mut processor = taken.ok_or_else(|| RuntimeError::Fatal {
            processor: name.clone(),
            message: "processor lost after a panic".into(),
        })?;
        let codec = self.shared.codec.clone();
        let settings = self.settings.clone();
        let format = self.shared.output_format;
        let metrics = self.shared.metrics.clone();
        let (processor, messages, outcomes) = tokio::task::spawn_blocking(move || {
            let outcomes = pure_stage(&mut processor, &settings, &codec, &metrics, &messages);
            (processor, messages, outcomes)
        })
        .await
        .map_err(|e| RuntimeError::Fatal {
            processor: name.clone(),
            message: format!("processing panicked: {e}"),
        })?;
        if let Ok(mut slot) = self.processor.lock() {
            *slot = Some(processor);
        }
        let outcomes = outcomes?;

        // Everything this batch writes goes to the store in one append.
        let mut envelopes = Vec::new();
        let mut publish: Vec<(String, String, Vec<u8>, Option<OwnedHeaders>)> = Vec::new();
        for (m, outcome) in messages.iter().zip(outcomes) {
            match outcome {
                Outcome::Outputs(outputs) => {
                    for (envelope, topic, key) in outputs {
                        let bytes = self.shared.codec.encode(&envelope, format).map_err(|e| {
                            RuntimeError::Fatal {
                                processor: name.clone(),
                                message: format!(
                                    "cannot encode {} output: {e}",
                                    envelope.event_type()
                                ),
                            }
                        })?;
                        envelopes.push(envelope);
                        publish.push((topic, key, bytes, None));
                    }
                }
                Outcome::Dead { class, error } => {
                    envelopes.push(self.dead_letter_event(m, class, &error));
                    let headers = dead_letter_headers(&name, class, &error, m);
                    let key = m
                        .key()
                        .map(|k| String::from_utf8_lossy(k).into_owned())
                        .unwrap_or_default();
                    publish.push((
                        self.settings.dead_letter_topic.clone(),
                        key,
                        m.payload().unwrap_or_default().to_vec(),
                        Some(headers),
                    ));
                    self.shared
                        .metrics
                        .dead_lettered
                        .with_label_values(&[&name, class.as_str()])
                        .inc();
                    self.summary.dead_lettered += 1;
                }
            }
        }

        let results = self.append(envelopes).await?;
        let new = results.iter().filter(|a| !a.duplicate).count() as u64;
        self.summary.appended += new;
        self.summary.duplicates += results.len() as u64 - new;

        self.publish(publish).await?;
        self.commit(&messages)?;
        self.shared
            .metrics
            .batch_seconds
            .with_label_values(&[&name])
            .observe(started.elapsed().as_secs_f64());
        if self.last_lag_update.elapsed() > Duration::from_secs(5) {
            self.last_lag_update = Instant::now();
            self.update_lag().await;
        }
        Ok(())
    }

    fn dead_letter_event(&self, m: &OwnedMessage, class: ErrorClass, error: &str) -> Envelope {
        let payload = m.payload().unwrap_or_default();
        let source = source_of(m);
        let input_id = format!("kafka:{}", source.coordinates());
        // The message's own timestamp is kept by the broker, so a redelivery gets the same.
        let input_time = Timestamp(m.timestamp().to_millis().unwrap_or(0).saturating_mul(1000));
        let ctx = Context {
            input_id: &input_id,
            correlation_id: &input_id,
            input_time,
            now: now(),
            source: &source,
        };
        let output = Output {
            topic: self.settings.dead_letter_topic.clone(),
            stream_id: format!("dead-letters-{}", self.settings.name),
            key: String::new(),
            event: Event::DeadLettered(DeadLettered {
                processor: self.settings.name.clone(),
                error_class: class.as_str().to_owned(),
                error: error.to_owned(),
                topic: source.topic.clone(),
                partition: source.partition,
                offset: source.offset,
                payload_sha256: hex::encode(Sha256::digest(payload)),
                payload_size: payload.len() as i64,
            }),
        };
        // The runtime writes this event, so it is stamped with the runtime as producer.
        envelope_for("runtime", env!("CARGO_PKG_VERSION"), &ctx, 0, &output)
    }

    async fn append(
        &self,
        envelopes: Vec<Envelope>,
    ) -> Result<Vec<insights_event_store::Appended>, RuntimeError> {
        if envelopes.is_empty() {
            return Ok(Vec::new());
        }
        let batch = AppendBatch::new(envelopes.iter().map(to_event_data).collect());
        let mut backoff = backoff_policy();
        loop {
            match self.shared.store.append(batch.clone()).await {
                Ok(r) => return Ok(r),
                Err(e) if e.is_retryable() => match backoff.next_backoff() {
                    Some(wait) => {
                        tracing::warn!(processor = %self.settings.name, error = %e, ?wait, "store append failed; retrying");
                        self.shared
                            .metrics
                            .retries
                            .with_label_values(&[&self.settings.name, "store"])
                            .inc();
                        tokio::time::sleep(wait).await;
                    }
                    None => return Err(RuntimeError::Store(e)),
                },
                Err(e) => return Err(RuntimeError::Store(e)),
            }
        }
    }

    /// Sends every message and waits for all deliveries; failed sends are retried with
    /// backoff, and if they keep failing the worker stops without committing (nothing is
    /// lost: the batch will be redelivered).
    async fn publish(
        &self,
        messages: Vec<(String, String, Vec<u8>, Option<OwnedHeaders>)>,
    ) -> Result<(), RuntimeError> {
        let name = &self.settings.name;
        let mut pending = messages;
        let mut backoff = backoff_policy();
        loop {
            let sends = pending.iter().map(|(topic, key, payload, headers)| {
                let mut record = FutureRecord::to(topic)
                    .payload(payload.as_slice())
                    .key(key.as_str());
                if let Some(h) = headers {
                    record = record.headers(h.clone());
                }
                self.producer.send(record, Duration::from_secs(30))
            });
            let results = futures::future::join_all(sends).await;
            let mut failed = Vec::new();
            let mut last_error = None;
            for (msg, result) in pending.into_iter().zip(results) {
                match result {
                    Ok(_) => {
                        self.shared
                            .metrics
                            .produced
                            .with_label_values(&[name, &msg.0])
                            .inc();
                    }
                    Err((e, _)) => {
                        last_error = Some(e);
                        failed.push(msg);
                    }
                }
            }
            let Some(error) = last_error else {
                return Ok(());
            };
            match backoff.next_backoff() {
                Some(wait) => {
                    tracing::warn!(processor = %name, %error, failed = failed.len(), ?wait, "publish failed; retrying");
                    self.shared
                        .metrics
                        .retries
                        .with_label_values(&[name, "publish"])
                        .inc();
                    tokio::time::sleep(wait).await;
                    pending = failed;
                }
                None => return Err(RuntimeError::Kafka(error)),
            }
        }
    }

    /// Commits, per partition, the offset after the last message of the batch.
    fn commit(&self, messages: &[OwnedMessage]) -> Result<(), RuntimeError> {
        let mut next: BTreeMap<(String, i32), i64> = BTreeMap::new();
        for m in messages {
            let e = next
                .entry((m.topic().to_owned(), m.partition()))
                .or_insert(0);
            *e = (*e).max(m.offset() + 1);
        }
        let mut tpl = TopicPartitionList::new();
        for ((topic, partition), offset) in &next {
            tpl.add_partition_offset(topic, *partition, Offset::Offset(*offset))?;
        }
        self.consumer.commit(&tpl, CommitMode::Async)?;
        // Remember everything handled, for commits on revocation and on a clean stop.
        if let Ok(mut all) = self.consumer.context().handled.lock() {
            for ((topic, partition), offset) in next {
                if all.find_partition(&topic, partition).is_some() {
                    all.set_partition_offset(&topic, partition, Offset::Offset(offset))?;
                } else {
                    all.add_partition_offset(&topic, partition, Offset::Offset(offset))?;
                }
            }
        }
        Ok(())
    }

    /// Whether every assigned partition has been read up to its high watermark.
    async fn caught_up(&self) -> bool {
        let consumer = Arc::clone(&self.consumer);
        tokio::task::spawn_blocking(move || caught_up(&consumer).unwrap_or(false))
            .await
            .unwrap_or(false)
    }

    async fn update_lag(&self) {
        let consumer = Arc::clone(&self.consumer);
        let metrics = self.shared.metrics.clone();
        let name = self.settings.name.clone();
        let _ = tokio::task::spawn_blocking(move || {
            for (topic, partition, lag) in lags(&consumer).unwrap_or_default() {
                metrics
                    .lag
                    .with_label_values(&[&name, &topic, &partition.to_string()])
                    .set(lag);
            }
        })
        .await;
    }
}

/// (topic, partition, messages behind the high watermark) for every assigned partition.
fn lags(
    consumer: &StreamConsumer<RebalanceContext>,
) -> Result<Vec<(String, i32, i64)>, rdkafka::error::KafkaError> {
    let positions = consumer.position()?;
    // Before the first fetch of a partition its position is unset; the committed offset
    // (or, with none, the start of the log) is where reading will begin.
    let committed = consumer.committed(Duration::from_secs(5))?;
    let mut out = Vec::new();
    for e in positions.elements() {
        let (low, high) =
            consumer.fetch_watermarks(e.topic(), e.partition(), Duration::from_secs(5))?;
        let start = match e.offset() {
            Offset::Offset(p) => p,
            _ => match committed
                .find_partition(e.topic(), e.partition())
                .map(|c| c.offset())
            {
                Some(Offset::Offset(c)) => c,
                _ => low,
            },
        };
        out.push((e.topic().to_owned(), e.partition(), (high - start).max(0)));
    }
    Ok(out)
}

fn caught_up(
    consumer: &StreamConsumer<RebalanceContext>,
) -> Result<bool, rdkafka::error::KafkaError> {
    let assignment = consumer.assignment()?;
    if assignment.count() == 0 {
        return Ok(false);
    }
    Ok(lags(consumer)?.iter().all(|(_, _, lag)| *lag == 0))
}

/// The pure stage of a batch, on the blocking pool: decodes every message, lets the
/// processor see the whole batch ([`Processor::prepare`]), then processes each message
/// (retrying transient failures).
fn pure_stage<P: Processor>(
    processor: &mut P,
    settings: &ProcessorSettings,
    codec: &Codec,
    metrics: &Metrics,
    messages: &[OwnedMessage],
) -> Result<Vec<Outcome>, RuntimeError> {
    let decoded: Vec<Result<P::Input, String>> = messages
        .iter()
        .map(|m| decode::<P>(settings, codec, m))
        .collect();
    let inputs: Vec<&P::Input> = decoded.iter().filter_map(|d| d.as_ref().ok()).collect();
    if !inputs.is_empty() {
        processor.prepare(&inputs);
    }
    messages
        .iter()
        .zip(&decoded)
        .map(|(m, input)| match input {
            Ok(input) => process_one(processor, settings, metrics, m, input),
            Err(error) => Ok(Outcome::Dead {
                class: ErrorClass::Poison,
                error: error.clone(),
            }),
        })
        .collect()
}

/// A message's input, or why it has none.
fn decode<P: Processor>(
    settings: &ProcessorSettings,
    codec: &Codec,
    m: &OwnedMessage,
) -> Result<P::Input, String> {
    let payload = m.payload().ok_or("message has no value")?;
    if payload.len() > settings.max_message_bytes {
        return Err(format!(
            "message is {} bytes, over the {} byte limit",
            payload.len(),
            settings.max_message_bytes
        ));
    }
    codec.decode(payload).map_err(|e| e.to_string())
}

/// Processes one decoded message, retrying transient failures with backoff.
fn process_one<P: Processor>(
    processor: &mut P,
    settings: &ProcessorSettings,
    metrics: &Metrics,
    m: &OwnedMessage,
    input: &P::Input,
) -> Result<Outcome, RuntimeError> {
    let source = source_of(m);
    let input_id = input.input_id(&source);
    let correlation_id = input.correlation_id(&source);
    let ctx = Context {
        input_id: &input_id,
        correlation_id: &correlation_id,
        input_time: input.input_time(),
        now: now(),
        source: &source,
    };
    let mut backoff = backoff_policy();
    let outputs = loop {
        match processor.process(input, &ctx) {
            Ok(outputs) => break outputs,
            Err(ProcessError::Poison(error)) => {
                return Ok(Outcome::Dead {
                    class: ErrorClass::Poison,
                    error,
                });
            }
            Err(ProcessError::Retryable(error)) => match backoff.next_backoff() {
                Some(wait) => {
                    metrics
                        .retries
                        .with_label_values(&[&settings.name, "process"])
                        .inc();
                    std::thread::sleep(wait);
                }
                None => {
                    return Ok(Outcome::Dead {
                        class: ErrorClass::RetriesExhausted,
                        error,
                    });
                }
            },
            Err(ProcessError::Fatal(message)) => {
                return Err(RuntimeError::Fatal {
                    processor: settings.name.clone(),
                    message,
                });
            }
        }
    };
    let name = processor.name().to_owned();
    let version = processor.version().to_owned();
    let mut envelopes = Vec::with_capacity(outputs.len());
    for (index, output) in outputs.into_iter().enumerate() {
        if !settings.outputs.contains(&output.topic) {
            return Err(RuntimeError::Fatal {
                processor: settings.name.clone(),
                message: format!(
                    "emitted to `{}`, which is not among its outputs in topology.toml",
                    output.topic
                ),
            });
        }
        let mut envelope = envelope_for(&name, &version, &ctx, index as u32, &output);
        if let Some(id) = processor.output_event_id(&output) {
            envelope.event_id = id;
        }
        envelopes.push((envelope, output.topic, output.key));
    }
    Ok(Outcome::Outputs(envelopes))
}

fn source_of(m: &OwnedMessage) -> Source {
    Source {
        topic: m.topic().to_owned(),
        partition: m.partition(),
        offset: m.offset(),
    }
}

fn dead_letter_headers(
    processor: &str,
    class: ErrorClass,
    error: &str,
    m: &OwnedMessage,
) -> OwnedHeaders {
    use dead_letter_headers as h;
    let partition = m.partition().to_string();
    let offset = m.offset().to_string();
    let mut headers = OwnedHeaders::new();
    for (key, value) in [
        (h::PROCESSOR, processor),
        (h::ERROR_CLASS, class.as_str()),
        (h::ERROR, error),
        (h::TOPIC, m.topic()),
        (h::PARTITION, partition.as_str()),
        (h::OFFSET, offset.as_str()),
    ] {
        headers = headers.insert(Header {
            key,
            value: Some(value),
        });
    }
    // Keep the producer's own headers too, after ours.
    if let Some(original) = m.headers() {
        for header in original.iter() {
            headers = headers.insert(Header {
                key: header.key,
                value: header.value,
            });
        }
    }
    headers
}

fn backoff_policy() -> ExponentialBackoff {
    ExponentialBackoff {
        initial_interval: Duration::from_millis(100),
        max_interval: Duration::from_secs(5),
        max_elapsed_time: Some(Duration::from_secs(30)),
        ..ExponentialBackoff::default()
    }
}

fn now() -> Timestamp {
    Timestamp(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as i64),
    )
}

impl From<StoreError> for RuntimeError {
    fn from(e: StoreError) -> Self {
        RuntimeError::Store(e)
    }
}
