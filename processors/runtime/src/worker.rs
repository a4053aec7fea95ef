//! The loop that runs one processor: consume a batch, decode and process it on the
//! blocking pool, append the outputs to the store in one transaction, publish them and
//! wait for delivery, and only then commit the consumed offsets.
//!
//! A crash anywhere before the commit redelivers the batch; output event ids are derived
//! from (processor, input id, index), so the store drops what it already holds and the
//! republished messages carry the same ids, which consumers dedupe through the store.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
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
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tracing::Span;

use crate::kafka::{KafkaSettings, RebalanceContext, producer, worker_consumer};
use crate::metrics::Metrics;
use crate::trace;
use crate::{ErrorClass, RuntimeError};
use insights_event_store::envelope::to_event_data;
use insights_processor::{Context, Input, Output, ProcessError, Processor, Source, envelope_for};
use insights_telemetry::TARGET;

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

/// An output event with where it goes.
struct Routed {
    /// The event.
    envelope: Envelope,
    /// Its topic.
    topic: String,
    /// Its Kafka key.
    key: String,
}

/// One message's outcome from the pure stage.
enum Outcome {
    Outputs(Vec<Routed>),
    Dead { class: ErrorClass, error: String },
}

/// Runs `processor` until `shutdown` resolves (or, with [`StopWhen::Idle`], its inputs
/// are drained). Returns what it did, or the error that stopped it; offsets of everything
/// stored and published are committed either way.
///
/// The batches flow through three stages, each a task of its own joined by bounded
/// channels: *process* (fetch, decode and run the processor on the blocking pool), *store*
/// (one append per batch) and *publish* (send, wait for delivery, commit the offsets).
/// While batch *n* is appended and published, batch *n + 1* is fetched and processed. At
/// most `concurrency` batches (topology.toml) are between fetch and commit; the next fetch
/// waits for a slot. The processor sees its inputs one at a time, in order, and each
/// stage handles the batches in the order they were fetched, so a key's events keep their
/// order in the store and on every output topic, and offsets are committed in order.
pub async fn run<P: Processor>(
    processor: P,
    settings: ProcessorSettings,
    shared: Shared,
    stop: StopWhen,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<Summary, RuntimeError> {
    shared.metrics.prepare(&settings.name);
    let (processor, restored) = crate::offline::restore(processor, &*shared.store).await?;
    if restored.events > 0 || restored.undecodable > 0 {
        tracing::info!(
            processor = %settings.name,
            events = restored.events,
            undecodable = restored.undecodable,
            "state restored from the store"
        );
    }
    // Warmed up before joining the group: a replica takes partitions only once its first
    // batch runs at full speed.
    let processor = tokio::task::spawn_blocking(move || {
        let mut processor = processor;
        let started = Instant::now();
        processor.warm_up();
        tracing::debug!(
            processor = processor.name(),
            ms = started.elapsed().as_millis(),
            "warmed up"
        );
        processor
    })
    .await
    .map_err(|e| RuntimeError::Fatal {
        processor: settings.name.clone(),
        message: format!("warming up: {e}"),
    })?;
    let consumer = Arc::new(worker_consumer(&shared.kafka, &settings.group)?);
    let topics: Vec<&str> = settings.inputs.iter().map(String::as_str).collect();
    consumer.subscribe(&topics)?;
    let producer = producer(&shared.kafka)?;
    let concurrency = settings.concurrency.max(1);
    // `halt` turns true on shutdown or when a stage fails: waits between retries end, and
    // the process stage stops fetching.
    let (halt_tx, halt) = watch::channel(false);
    let halt_tx = Arc::new(halt_tx);
    let forward = {
        let halt_tx = Arc::clone(&halt_tx);
        tokio::spawn(async move {
            shutdown.await;
            halt_tx.send_replace(true);
        })
    };
    let sink = Arc::new(Sink {
        settings: settings.clone(),
        shared: shared.clone(),
        consumer: Arc::clone(&consumer),
        producer,
        summary: Mutex::new(Summary::default()),
        failure: Mutex::new(None),
        halt: halt.clone(),
        halt_tx,
        last_lag_update: Mutex::new(Instant::now()),
    });
    let (store_tx, store_rx) = mpsc::channel::<Processed>(concurrency);
    let (publish_tx, publish_rx) = mpsc::channel::<Stored>(concurrency);
    let store_stage = tokio::spawn(Arc::clone(&sink).store_stage(store_rx, publish_tx));
    let publish_stage = tokio::spawn(Arc::clone(&sink).publish_stage(publish_rx));
    let slots = Arc::new(Semaphore::new(concurrency));

    let mut worker = Worker {
        processor: std::sync::Mutex::new(Some(processor)),
        settings,
        shared,
        consumer,
        consumed: 0,
        consumer_backoff: ExponentialBackoff {
            max_elapsed_time: None,
            ..backoff_policy()
        },
        halt: halt.clone(),
    };
    let idle_after = match &stop {
        StopWhen::Idle(d) | StopWhen::IdleAfterUpstream(d, _) => Some(*d),
        StopWhen::Shutdown => None,
    };
    let upstream_done = || match &stop {
        StopWhen::IdleAfterUpstream(_, upstream) => *upstream.borrow(),
        _ => true,
    };
    let mut halted = halt.clone();
    // When the last message arrived (or the worker started).
    let mut last_message = Instant::now();
    let result = loop {
        let slot = tokio::select! {
            biased;
            _ = halted.wait_for(|h| *h) => break Ok(()),
            slot = Arc::clone(&slots).acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break Ok(()),
            },
        };
        let batch = tokio::select! {
            biased;
            _ = halted.wait_for(|h| *h) => break Ok(()),
            // Our slot is taken: any other missing one is a batch in flight.
            batch = worker.next_batch(idle_after, || slots.available_permits() + 1 < concurrency) => batch,
        };
        match batch {
            Err(e) => break Err(e),
            Ok(Batch::Messages(messages)) if messages.is_empty() => {}
            Ok(Batch::Messages(messages)) => {
                last_message = Instant::now();
                match worker.process(messages, slot).await {
                    Ok(Some(processed)) => {
                        if store_tx.send(processed).await.is_err() {
                            // The store stage failed; its error is in `failure`.
                            break Ok(());
                        }
                    }
                    Ok(None) => break Ok(()),
                    Err(e) => break Err(e),
                }
            }
            Ok(Batch::Quiet) => {
                drop(slot);
                if idle_after.is_some_and(|idle| last_message.elapsed() >= idle)
                    && upstream_done()
                    && slots.available_permits() == concurrency
                    && worker.caught_up(last_message)
                {
                    break Ok(());
                }
            }
        }
    };
    // Let the batches in flight finish (their retries end early on shutdown), then commit
    // the last offsets synchronously so that a clean stop leaves nothing to redeliver.
    drop(store_tx);
    let _ = store_stage.await;
    let _ = publish_stage.await;
    forward.abort();
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
    let failure = sink.failure.lock().ok().and_then(|mut f| f.take());
    let mut summary = sink.summary.lock().map(|s| s.clone()).unwrap_or_default();
    summary.consumed = worker.consumed;
    match (result, failure) {
        (Err(e), _) | (Ok(()), Some(e)) => Err(e),
        (Ok(()), None) => Ok(summary),
    }
}

enum Batch {
    Messages(Vec<OwnedMessage>),
    /// Nothing arrived for a while (see [`IDLE_POLL`]).
    Quiet,
}

/// How often a worker that stops when idle looks whether it is.
const IDLE_POLL: Duration = Duration::from_millis(250);

/// A batch out of the process stage: each message's outcome, and its slot.
struct Processed {
    messages: Vec<OwnedMessage>,
    /// Each message's trace span (disabled with traces off), ended after its commit.
    spans: Vec<Span>,
    outcomes: Vec<Outcome>,
    started: Instant,
    /// When processing ended (the store queue's wait starts).
    processed: Instant,
    _slot: OwnedSemaphorePermit,
}

/// A batch in the store: what to publish, then whose offsets to commit.
struct Stored {
    messages: Vec<OwnedMessage>,
    spans: Vec<Span>,
    publish: Vec<Publish>,
    started: Instant,
    /// When the append committed (the publish queue's wait starts).
    stored: Instant,
    _slot: OwnedSemaphorePermit,
}

/// One message to publish.
struct Publish {
    topic: String,
    key: String,
    payload: Vec<u8>,
    /// A dead letter's headers (the original's, kept); an output's carry its trace context.
    headers: Option<OwnedHeaders>,
    /// The span of the message it came from.
    span: Span,
}

/// Why a stage gave a batch up.
enum Abandoned {
    /// Shutdown (or another stage's failure) came during a wait between retries: nothing
    /// of the batch is committed, so it is redelivered.
    Halted,
    /// A failure that retries did not fix.
    Failed(RuntimeError),
}

/// Where one input's processing stopped short.
struct Stall {
    /// The input's index in the batch.
    at: usize,
    failure: Transient,
}

/// A failure of one input's processing that a retry may fix.
struct Transient {
    /// Whether a dependency is down (retried for as long as it takes) or the input's own
    /// handling failed transiently (retried, then dead-lettered).
    dependency: bool,
    error: String,
    /// The input's id and correlation id, for the log line.
    input_id: String,
    correlation_id: String,
}

/// The process stage: fetches batches and runs the processor over them.
struct Worker<P: Processor> {
    /// Moved to the blocking pool for each batch and back. (A mutex only so that the
    /// worker is `Sync` while the processor, like a model, need not be.)
    processor: std::sync::Mutex<Option<P>>,
    settings: ProcessorSettings,
    shared: Shared,
    consumer: Arc<StreamConsumer<RebalanceContext>>,
    consumed: u64,
    /// Waits between consumer errors; reset by every batch.
    consumer_backoff: ExponentialBackoff,
    /// Shutdown, or a failed stage: ends the waits between retries.
    halt: watch::Receiver<bool>,
}

impl<P: Processor> Worker<P> {
    /// Up to `batch_size` messages: whatever has arrived, and then, while other batches
    /// are in flight (`busy`), what arrives within `linger_ms` of the first; `Quiet` when
    /// nothing arrived for a while. Lingering only pays while the store and the broker are
    /// busy with earlier batches (it makes fewer, larger transactions); with nothing in
    /// flight it would only add latency, so the batch goes at once.
    async fn next_batch(
        &mut self,
        idle_after: Option<Duration>,
        busy: impl Fn() -> bool,
    ) -> Result<Batch, RuntimeError> {
        let first = match idle_after {
            // Look up often (cheap: no broker round trip) so that a worker whose inputs
            // went quiet stops soon after `idle`, also when its upstream stops later.
            Some(idle) => {
                match tokio::time::timeout(idle.min(IDLE_POLL), self.consumer.recv()).await {
                    Ok(Ok(m)) => m,
                    Ok(Err(e)) => return self.consumer_error(e).await,
                    Err(_) => return Ok(Batch::Quiet),
                }
            }
            None => match self.consumer.recv().await {
                Ok(m) => m,
                Err(e) => return self.consumer_error(e).await,
            },
        };
        let mut seen = self.consumer.context().revocations.load(Ordering::SeqCst);
        let mut batch = vec![first.detach()];
        let filling = Instant::now();
        let deadline = tokio::time::Instant::now() + Duration::from_millis(self.settings.linger_ms);
        while batch.len() < self.settings.batch_size {
            // What has arrived already (a zero timeout still polls the receive once).
            let until = if busy() {
                deadline
            } else {
                tokio::time::Instant::now()
            };
            match tokio::time::timeout_at(until, self.consumer.recv()).await {
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
        self.shared
            .metrics
            .stage(&self.settings.name, "fill", filling.elapsed().as_secs_f64());
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
        pause(
            &self.shared,
            &self.settings.name,
            "consume",
            wait,
            &self.halt,
        )
        .await;
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

    /// Whether every assigned partition has been handled up to its high watermark, by
    /// statistics newer than `since` (no broker round trip: lag never blocks the loop).
    fn caught_up(&self, since: Instant) -> bool {
        self.consumer
            .context()
            .lags_since(since)
            .is_some_and(|lags| lags.iter().all(|(_, _, lag)| *lag == 0))
    }

    /// The process stage of one batch: decodes and processes every message on the
    /// blocking pool. A dependency outage stops the batch at the input that met it; after
    /// a backoff the stage goes on from that input, for as long as the outage lasts (never
    /// dead-lettering). `None` when `halt` came first.
    async fn process(
        &mut self,
        messages: Vec<OwnedMessage>,
        slot: OwnedSemaphorePermit,
    ) -> Result<Option<Processed>, RuntimeError> {
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
        self.consumed += messages.len() as u64;
        let mut spans: Vec<Span> = messages
            .iter()
            .map(|m| trace::message_span(&name, m.topic(), m.partition(), m.offset(), m.headers()))
            .collect();
        let mut messages = messages;
        let mut outcomes: Vec<Outcome> = Vec::with_capacity(messages.len());
        let mut backoff = StallBackoff::default();
        loop {
            let taken = self.processor.lock().map(|mut p| p.take()).unwrap_or(None);
            let mut processor = taken.ok_or_else(|| RuntimeError::Fatal {
                processor: name.clone(),
                message: "processor lost after a panic".into(),
            })?;
            let codec = self.shared.codec.clone();
            let settings = self.settings.clone();
            let (back, messages_back, spans_back, outcomes_back, stall) =
                tokio::task::spawn_blocking(move || {
                    let stall = pure_stage(
                        &mut processor,
                        &settings,
                        &codec,
                        &messages,
                        &spans,
                        &mut outcomes,
                    );
                    (processor, messages, spans, outcomes, stall)
                })
                .await
                .map_err(|e| RuntimeError::Fatal {
                    processor: name.clone(),
                    message: format!("processing panicked: {e}"),
                })?;
            if let Ok(mut slot) = self.processor.lock() {
                *slot = Some(back);
            }
            messages = messages_back;
            spans = spans_back;
            outcomes = outcomes_back;
            let Some(stall) = stall? else {
                self.shared
                    .metrics
                    .stage(&name, "process", started.elapsed().as_secs_f64());
                return Ok(Some(Processed {
                    messages,
                    spans,
                    outcomes,
                    started,
                    processed: Instant::now(),
                    _slot: slot,
                }));
            };
            let Some(wait) = backoff.next(&stall) else {
                outcomes.push(Outcome::Dead {
                    class: ErrorClass::RetriesExhausted,
                    error: stall.failure.error,
                });
                continue;
            };
            let Stall { at, failure } = stall;
            let what = if failure.dependency {
                "dependency"
            } else {
                "process"
            };
            if let Some(m) = messages.get(at) {
                // In the message's span: with traces on, the warning is an event of it.
                let _in_message = spans.get(at).map(Span::enter);
                tracing::warn!(
                    processor = %name,
                    topic = m.topic(),
                    partition = m.partition(),
                    offset = m.offset(),
                    event_id = %failure.input_id,
                    correlation_id = %failure.correlation_id,
                    error = %failure.error,
                    ?wait,
                    "{what} failure; the batch goes on from this input after the wait"
                );
            }
            if !pause(&self.shared, &name, what, wait, &self.halt).await {
                return Ok(None);
            }
        }
    }
}

/// The process stage's waits after a [`Stall`]: a dependency outage is waited out for as
/// long as it lasts; an input whose own handling keeps failing is retried until the
/// policy's time is up, and then dead-lettered.
struct StallBackoff {
    outage: ExponentialBackoff,
    /// The input being retried (its index in the batch), and its backoff.
    input: Option<(usize, ExponentialBackoff)>,
}

impl Default for StallBackoff {
    fn default() -> Self {
        Self {
            outage: ExponentialBackoff {
                max_elapsed_time: None,
                ..backoff_policy()
            },
            input: None,
        }
    }
}

impl StallBackoff {
    /// How long to wait before going on from the stalled input; `None`: its retries are
    /// exhausted (dead-letter it and go on with the next).
    fn next(&mut self, stall: &Stall) -> Option<Duration> {
        if stall.failure.dependency {
            return Some(
                self.outage
                    .next_backoff()
                    .unwrap_or(self.outage.max_interval),
            );
        }
        let backoff = match &mut self.input {
            Some((retried, backoff)) if *retried == stall.at => backoff,
            _ => &mut self.input.insert((stall.at, backoff_policy())).1,
        };
        let wait = backoff.next_backoff();
        if wait.is_none() {
            self.input = None;
        }
        wait
    }
}

/// A wait between attempts of `operation`, counted in the retry metric: every retry of the
/// worker's stages waits here. `false` when `halt` (shutdown, or a failed stage) came
/// first.
async fn pause(
    shared: &Shared,
    processor: &str,
    operation: &str,
    wait: Duration,
    halt: &watch::Receiver<bool>,
) -> bool {
    shared
        .metrics
        .retries
        .with_label_values(&[processor, operation])
        .inc();
    let mut halt = halt.clone();
    tokio::select! {
        biased;
        _ = halt.wait_for(|h| *h) => false,
        () = tokio::time::sleep(wait) => true,
    }
}

/// The store and publish stages, shared by their two tasks.
struct Sink {
    settings: ProcessorSettings,
    shared: Shared,
    consumer: Arc<StreamConsumer<RebalanceContext>>,
    producer: FutureProducer,
    summary: Mutex<Summary>,
    /// The error a stage stopped on.
    failure: Mutex<Option<RuntimeError>>,
    halt: watch::Receiver<bool>,
    halt_tx: Arc<watch::Sender<bool>>,
    last_lag_update: Mutex<Instant>,
}

impl Sink {
    /// Records the error that stops the worker, and halts the other stages' retries.
    fn fail(&self, error: RuntimeError) {
        if let Ok(mut f) = self.failure.lock() {
            f.get_or_insert(error);
        }
        self.halt_tx.send_replace(true);
    }

    fn count(&self, f: impl FnOnce(&mut Summary)) {
        if let Ok(mut s) = self.summary.lock() {
            f(&mut s);
        }
    }

    async fn store_stage(
        self: Arc<Self>,
        mut batches: mpsc::Receiver<Processed>,
        next: mpsc::Sender<Stored>,
    ) {
        while let Some(batch) = batches.recv().await {
            match self.store(batch).await {
                Ok(stored) => {
                    if next.send(stored).await.is_err() {
                        return;
                    }
                }
                Err(Abandoned::Halted) => return,
                Err(Abandoned::Failed(e)) => return self.fail(e),
            }
        }
    }

    async fn publish_stage(self: Arc<Self>, mut batches: mpsc::Receiver<Stored>) {
        while let Some(batch) = batches.recv().await {
            let Stored {
                messages,
                spans,
                publish,
                started,
                stored,
                _slot,
            } = batch;
            let name = &self.settings.name;
            let metrics = &self.shared.metrics;
            metrics.stage(name, "publish_queue", stored.elapsed().as_secs_f64());
            let publishing = Instant::now();
            match self.publish(publish).await {
                Ok(()) => {}
                Err(Abandoned::Halted) => return,
                Err(Abandoned::Failed(e)) => return self.fail(e),
            }
            metrics.stage(name, "publish", publishing.elapsed().as_secs_f64());
            let committing = Instant::now();
            if let Err(e) = self.commit(&messages) {
                return self.fail(e);
            }
            metrics.stage(name, "commit", committing.elapsed().as_secs_f64());
            // The messages' spans end with their commit.
            drop(spans);
            self.shared
                .metrics
                .batch_seconds
                .with_label_values(&[&self.settings.name])
                .observe(started.elapsed().as_secs_f64());
            self.update_lag();
        }
    }

    /// Turns a processed batch into events and appends them in one transaction.
    async fn store(&self, batch: Processed) -> Result<Stored, Abandoned> {
        let name = &self.settings.name;
        let Processed {
            messages,
            spans,
            outcomes,
            started,
            processed,
            _slot,
        } = batch;
        self.shared
            .metrics
            .stage(name, "store_queue", processed.elapsed().as_secs_f64());
        let mut envelopes = Vec::new();
        let mut publish = Vec::new();
        for ((m, span), outcome) in messages.iter().zip(&spans).zip(outcomes) {
            match outcome {
                Outcome::Outputs(outputs) => {
                    for Routed {
                        envelope,
                        topic,
                        key,
                    } in outputs
                    {
                        let payload = self
                            .shared
                            .codec
                            .encode(&envelope, self.shared.output_format)
                            .map_err(|e| {
                                Abandoned::Failed(RuntimeError::Fatal {
                                    processor: name.clone(),
                                    message: format!(
                                        "cannot encode {} output: {e}",
                                        envelope.event_type()
                                    ),
                                })
                            })?;
                        envelopes.push(envelope);
                        publish.push(Publish {
                            topic,
                            key,
                            payload,
                            headers: None,
                            span: span.clone(),
                        });
                    }
                }
                Outcome::Dead { class, error } => {
                    let event = self.dead_letter_event(m, class, &error);
                    // One line per dead letter, with what finds it again (JSON lines with
                    // INSIGHTS_LOG_FORMAT=json); with traces on, an event of its span.
                    let _in_message = span.enter();
                    tracing::warn!(
                        processor = %name,
                        topic = m.topic(),
                        partition = m.partition(),
                        offset = m.offset(),
                        event_id = %event.event_id,
                        correlation_id = %event.correlation_id,
                        error_class = class.as_str(),
                        error = %error,
                        "message dead-lettered"
                    );
                    envelopes.push(event);
                    publish.push(Publish {
                        topic: self.settings.dead_letter_topic.clone(),
                        key: m
                            .key()
                            .map(|k| String::from_utf8_lossy(k).into_owned())
                            .unwrap_or_default(),
                        payload: m.payload().unwrap_or_default().to_vec(),
                        headers: Some(dead_letter_headers(name, class, &error, m)),
                        span: span.clone(),
                    });
                    self.shared
                        .metrics
                        .dead_lettered
                        .with_label_values(&[name, class.as_str()])
                        .inc();
                    self.count(|s| s.dead_lettered += 1);
                }
            }
        }
        let storing = Instant::now();
        let types: Vec<&'static str> = envelopes.iter().map(Envelope::event_type).collect();
        // One span per message of the batch, all with the transaction's timing.
        let appending: Vec<Span> = if types.is_empty() {
            Vec::new()
        } else {
            spans
                .iter()
                .map(|parent| {
                    tracing::info_span!(target: TARGET, parent: parent, "store append",
                        otel.kind = "client", db.operation.name = "append",
                        db.system.name = self.shared.store.backend(),
                        db.operation.batch.size = types.len())
                })
                .collect()
        };
        let results = self.append(envelopes).await?;
        drop(appending);
        self.shared
            .metrics
            .stage(name, "store", storing.elapsed().as_secs_f64());
        for (event_type, appended) in types.iter().zip(&results) {
            if !appended.duplicate {
                self.shared
                    .metrics
                    .stored
                    .with_label_values(&[name.as_str(), event_type])
                    .inc();
            }
        }
        let new = results.iter().filter(|a| !a.duplicate).count() as u64;
        self.count(|s| {
            s.appended += new;
            s.duplicates += results.len() as u64 - new;
        });
        Ok(Stored {
            messages,
            spans,
            publish,
            started,
            stored: Instant::now(),
            _slot,
        })
    }

    /// Waits `wait` before a retry of `operation`; `false` if halted first.
    async fn pause(
        &self,
        operation: &str,
        error: &(dyn std::fmt::Display + Sync),
        wait: Duration,
    ) -> bool {
        tracing::warn!(processor = %self.settings.name, %error, ?wait, "{operation} failed; retrying");
        pause(
            &self.shared,
            &self.settings.name,
            operation,
            wait,
            &self.halt,
        )
        .await
    }

    /// Updates the lag gauges from the latest statistics, at most once a second.
    fn update_lag(&self) {
        let Ok(mut last) = self.last_lag_update.lock() else {
            return;
        };
        if last.elapsed() < Duration::from_secs(1) {
            return;
        }
        *last = Instant::now();
        let since = Instant::now()
            .checked_sub(Duration::from_secs(60))
            .unwrap_or_else(Instant::now);
        for (topic, partition, lag) in self
            .consumer
            .context()
            .lags_since(since)
            .unwrap_or_default()
        {
            self.shared
                .metrics
                .lag
                .with_label_values(&[&self.settings.name, &topic, &partition.to_string()])
                .set(lag);
        }
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
            now: Timestamp::now(),
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
    ) -> Result<Vec<insights_event_store::Appended>, Abandoned> {
        if envelopes.is_empty() {
            return Ok(Vec::new());
        }
        let batch = AppendBatch::new(envelopes.iter().map(to_event_data).collect());
        self.retrying("store", RuntimeError::Store, || async {
            self.shared
                .store
                .append(batch.clone())
                .await
                .map_err(|e| match e.is_retryable() {
                    true => Failure::Transient(e),
                    false => Failure::Final(e),
                })
        })
        .await
    }

    /// Runs `attempt` until it succeeds, fails for good, or the backoff policy's time is up
    /// (then `fatal` makes the error that stops the worker); each wait between attempts is
    /// counted and logged under `operation`, and a halt interrupts it.
    async fn retrying<T, E, Fut>(
        &self,
        operation: &str,
        fatal: impl Fn(E) -> RuntimeError,
        mut attempt: impl FnMut() -> Fut,
    ) -> Result<T, Abandoned>
    where
        E: std::fmt::Display + Sync,
        Fut: Future<Output = Result<T, Failure<E>>>,
    {
        let mut backoff = backoff_policy();
        loop {
            match attempt().await {
                Ok(v) => return Ok(v),
                Err(Failure::Final(e)) => return Err(Abandoned::Failed(fatal(e))),
                Err(Failure::Transient(e)) => match backoff.next_backoff() {
                    Some(wait) => {
                        if !self.pause(operation, &e, wait).await {
                            return Err(Abandoned::Halted);
                        }
                    }
                    None => return Err(Abandoned::Failed(fatal(e))),
                },
            }
        }
    }

    /// Sends every message and waits for all deliveries; failed sends are retried with
    /// backoff, and if they keep failing the worker stops without committing (nothing is
    /// lost: the batch will be redelivered).
    async fn publish(&self, mut messages: Vec<Publish>) -> Result<(), Abandoned> {
        let name = &self.settings.name;
        for p in &mut messages {
            // An output gets a producer span and carries its context; a dead letter keeps
            // the original's headers, trace context included.
            if p.headers.is_none() {
                let (span, headers) = trace::publish_span(&p.span, &p.topic);
                p.span = span;
                p.headers = headers;
            }
        }
        // Only what failed is sent again.
        let pending = &std::sync::Mutex::new(messages);
        self.retrying("publish", RuntimeError::Kafka, || async move {
            let batch = std::mem::take(&mut *pending.lock().unwrap_or_else(|p| p.into_inner()));
            let sends = batch.iter().map(|p| {
                let mut record = FutureRecord::to(&p.topic)
                    .payload(p.payload.as_slice())
                    .key(p.key.as_str());
                if let Some(h) = &p.headers {
                    record = record.headers(h.clone());
                }
                self.producer.send(record, Duration::from_secs(30))
            });
            let results = futures::future::join_all(sends).await;
            let mut failed = Vec::new();
            let mut last_error = None;
            for (msg, result) in batch.into_iter().zip(results) {
                match result {
                    Ok(_) => {
                        self.shared
                            .metrics
                            .produced
                            .with_label_values(&[name, &msg.topic])
                            .inc();
                    }
                    Err((e, _)) => {
                        last_error = Some(e);
                        failed.push(msg);
                    }
                }
            }
            *pending.lock().unwrap_or_else(|p| p.into_inner()) = failed;
            match last_error {
                None => Ok(()),
                Some(error) => Err(Failure::Transient(error)),
            }
        })
        .await
    }

    /// Commits, per partition, the offset after the last message of the batch — of the
    /// partitions still assigned: one revoked while the batch was in flight has a new
    /// owner, which reads on from the offset committed at the revocation.
    fn commit(&self, messages: &[OwnedMessage]) -> Result<(), RuntimeError> {
        let ctx = self.consumer.context();
        let mut next: BTreeMap<(String, i32), i64> = BTreeMap::new();
        for m in messages {
            let e = next
                .entry((m.topic().to_owned(), m.partition()))
                .or_insert(0);
            *e = (*e).max(m.offset() + 1);
        }
        next.retain(|(topic, partition), _| ctx.owns(topic, *partition));
        if next.is_empty() {
            return Ok(());
        }
        let mut tpl = TopicPartitionList::new();
        for ((topic, partition), offset) in &next {
            tpl.add_partition_offset(topic, *partition, Offset::Offset(*offset))?;
        }
        self.consumer.commit(&tpl, CommitMode::Async)?;
        // Remember everything handled, for commits on revocation and on a clean stop.
        if let Ok(mut all) = ctx.handled.lock() {
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
}

/// The pure stage of a batch, on the blocking pool: decodes the messages from
/// `outcomes.len()` on, lets the processor see them together ([`Processor::prepare`]),
/// then processes each, pushing its outcome. Stops at the first input whose processing
/// failed in a way a retry may fix, and says where.
fn pure_stage<P: Processor>(
    processor: &mut P,
    settings: &ProcessorSettings,
    codec: &Codec,
    messages: &[OwnedMessage],
    spans: &[Span],
    outcomes: &mut Vec<Outcome>,
) -> Result<Option<Stall>, RuntimeError> {
    let from = outcomes.len();
    let rest = messages.get(from..).unwrap_or_default();
    let rest_spans = spans.get(from..).unwrap_or_default();
    let decoded: Vec<Result<P::Input, String>> = rest
        .iter()
        .map(|m| decode::<P>(settings, codec, m))
        .collect();
    let inputs: Vec<&P::Input> = decoded.iter().filter_map(|d| d.as_ref().ok()).collect();
    if !inputs.is_empty() {
        // One span per message: they share the batch's timing (a model's batch, the
        // drafts run side by side).
        let _prepare: Vec<Span> = rest_spans
            .iter()
            .map(|parent| {
                tracing::info_span!(target: TARGET, parent: parent, "prepare",
                    batch.size = inputs.len())
            })
            .collect();
        processor.prepare(&inputs);
    }
    for (i, (m, input)) in rest.iter().zip(&decoded).enumerate() {
        let span = rest_spans.get(i).cloned().unwrap_or_else(Span::none);
        let outcome = match input {
            Ok(input) => {
                let _process =
                    tracing::info_span!(target: TARGET, parent: &span, "process").entered();
                match process_one(processor, settings, m, input, &span)? {
                    Ok(outcome) => outcome,
                    Err(failure) => {
                        return Ok(Some(Stall {
                            at: from + i,
                            failure,
                        }));
                    }
                }
            }
            Err(error) => Outcome::Dead {
                class: ErrorClass::Poison,
                error: error.clone(),
            },
        };
        if let Outcome::Dead { class, .. } = &outcome {
            span.record("error_class", class.as_str());
            span.record("otel.status_code", "ERROR");
        }
        outcomes.push(outcome);
    }
    Ok(None)
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

/// Processes one decoded message: its outcome, or the failure if a retry may fix it.
fn process_one<P: Processor>(
    processor: &mut P,
    settings: &ProcessorSettings,
    m: &OwnedMessage,
    input: &P::Input,
    span: &Span,
) -> Result<Result<Outcome, Transient>, RuntimeError> {
    let source = source_of(m);
    let input_id = input.input_id(&source);
    let correlation_id = input.correlation_id(&source);
    span.record("event_id", input_id.as_str());
    span.record("correlation_id", correlation_id.as_str());
    let transient = |dependency: bool, error: String| Transient {
        dependency,
        error,
        input_id: input_id.clone(),
        correlation_id: correlation_id.clone(),
    };
    let ctx = Context {
        input_id: &input_id,
        correlation_id: &correlation_id,
        input_time: input.input_time(),
        now: Timestamp::now(),
        source: &source,
    };
    let outputs = match processor.process(input, &ctx) {
        Ok(outputs) => outputs,
        Err(ProcessError::Poison(error)) => {
            return Ok(Ok(Outcome::Dead {
                class: ErrorClass::Poison,
                error,
            }));
        }
        Err(ProcessError::Retryable(error)) => return Ok(Err(transient(false, error))),
        Err(ProcessError::Unavailable(error)) => return Ok(Err(transient(true, error))),
        Err(ProcessError::Fatal(message)) => {
            return Err(RuntimeError::Fatal {
                processor: settings.name.clone(),
                message,
            });
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
        envelopes.push(Routed {
            envelope,
            topic: output.topic,
            key: output.key,
        });
    }
    Ok(Ok(Outcome::Outputs(envelopes)))
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

/// How an attempt of [`Sink::retrying`] failed.
enum Failure<E> {
    /// It may pass: wait and try again.
    Transient(E),
    /// Trying again cannot help.
    Final(E),
}

fn backoff_policy() -> ExponentialBackoff {
    ExponentialBackoff {
        initial_interval: Duration::from_millis(100),
        max_interval: Duration::from_secs(5),
        max_elapsed_time: Some(Duration::from_secs(30)),
        ..ExponentialBackoff::default()
    }
}

impl From<StoreError> for RuntimeError {
    fn from(e: StoreError) -> Self {
        RuntimeError::Store(e)
    }
}
