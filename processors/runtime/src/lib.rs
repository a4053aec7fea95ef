//! The runtime: the one place that owns IO for every processor.
//!
//! A processor is pure ([`Processor::process`]: one decoded input and a [`Context`] in,
//! [`Output`]s out; the trait lives in `insights-processor`, which has no IO, and is
//! re-exported here); the runtime consumes its input topics in a consumer group, decodes
//! (JSON, Avro single-object, Confluent wire format), runs the processor on the blocking
//! pool, appends every output of a batch to the event store in one transaction, publishes
//! them (idempotent producer, keyed by conversation) and waits for delivery, and only then
//! commits the consumed offsets.
//!
//! Errors are classified: a message that cannot be decoded, is too large, or that the
//! processor rejects is **poison** and goes to the dead-letter topic with headers naming
//! the processor, the error and its origin, plus a `DeadLettered` event in the store;
//! **retryable** failures (processor, store, publish) back off exponentially with jitter
//! and a cap, and a message that keeps failing is dead-lettered; a **fatal** error stops
//! the worker with a message, committing only what is done.
//!
//! # Layout
//! - `worker` — the consume → process → append → publish → commit loop.
//! - `kafka` — client configuration.
//! - `metrics` — the Prometheus families every processor exports.
//! - `pipeline` — running a topology: launching a worker per processor, stopping them
//!   together.
//! - `topics` — the embedded broker, creating and listing topics.
//! - `produce` — producing input files of interactions.
//! - `ops` — the ops endpoints (`/metrics`, `/healthz`, `/readyz`).
//! - [`offline`] — drivers that work from the store: reprocessing stored inputs,
//!   republishing stored events, and the [`offline::EnvelopeProducer`] they share.
//! - `redrive` — sending dead letters back through the pipeline, recorded in the store.
//! - `trace` — OpenTelemetry spans per message, their context in Kafka headers.

mod kafka;
mod metrics;
pub mod offline;
mod ops;
mod pipeline;
mod produce;
pub mod redrive;
mod topics;
pub mod trace;
mod worker;

pub use insights_processor::{
    Context, Input, Output, ProcessError, Processor, Source, drive, drive_each, envelope_for,
};
pub use kafka::{KafkaSettings, consumer, producer};
pub use metrics::Metrics;
pub use ops::{Health, serve_ops};
pub use pipeline::{Launch, launcher, run_processors};
pub use produce::{ProduceFormat, Produced, produce_lines};
pub use topics::{EmbeddedBroker, create_topics, list_topics};
pub use worker::{Shared, StopWhen, Summary, dead_letter_headers, run};

/// How a failed message is classified on the dead-letter topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The message itself is bad.
    Poison,
    /// A transient failure outlasted the retry budget.
    RetriesExhausted,
}

impl ErrorClass {
    /// The label used in headers, events and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Poison => "poison",
            ErrorClass::RetriesExhausted => "retries-exhausted",
        }
    }
}

/// Why a worker stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RuntimeError {
    /// Kafka failed in a way retries did not fix.
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// The store failed in a way retries did not fix.
    #[error("event store: {0}")]
    Store(insights_event_store::StoreError),
    /// The processor cannot go on.
    #[error("processor `{processor}` stopped: {message}")]
    Fatal {
        /// The processor.
        processor: String,
        /// Why.
        message: String,
    },
}
