//! What goes in and comes out of the store.

use std::fmt;

use uuid::Uuid;

/// An event to append: the envelope's fields and the payload bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventData {
    /// Unique id; appending an id that is already stored is a no-op.
    pub event_id: Uuid,
    /// The stream (e.g. `conversation-42`).
    pub stream_id: String,
    /// The event type (the payload's schema name).
    pub event_type: String,
    /// The payload schema's version.
    pub schema_version: i32,
    /// What caused this event.
    pub causation_id: Option<String>,
    /// Shared by everything that follows from one input.
    pub correlation_id: String,
    /// When it happened, microseconds since the epoch.
    pub occurred_at: i64,
    /// Who wrote it.
    pub producer: String,
    /// The writer's version.
    pub producer_version: String,
    /// The payload, opaque to the store.
    pub payload: Vec<u8>,
}

/// An event as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedEvent {
    /// Global position, from 1, without gaps.
    pub position: u64,
    /// Version within the stream, from 1.
    pub stream_version: u64,
    /// When the store took it, microseconds since the epoch.
    pub recorded_at: i64,
    /// SHA-256 over the previous hash and this event's canonical bytes.
    pub hash: [u8; 32],
    /// The event.
    pub data: EventData,
}

/// The expected state of a stream before an append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedVersion {
    /// No check.
    Any,
    /// The stream must have no events.
    NoStream,
    /// The stream must have at least one event.
    StreamExists,
    /// The stream must be at exactly this version.
    Exact(u64),
}

impl fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpectedVersion::Any => f.write_str("any"),
            ExpectedVersion::NoStream => f.write_str("no stream"),
            ExpectedVersion::StreamExists => f.write_str("an existing stream"),
            ExpectedVersion::Exact(v) => write!(f, "version {v}"),
        }
    }
}

impl ExpectedVersion {
    /// Whether a stream at `actual` (None: no events) meets this expectation.
    pub fn accepts(self, actual: Option<u64>) -> bool {
        match self {
            ExpectedVersion::Any => true,
            ExpectedVersion::NoStream => actual.is_none(),
            ExpectedVersion::StreamExists => actual.is_some(),
            ExpectedVersion::Exact(v) => actual == Some(v),
        }
    }
}

/// Events to append atomically, with optional per-stream expectations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppendBatch {
    /// The events, in order.
    pub events: Vec<EventData>,
    /// Expected versions, checked before anything is written.
    pub expectations: Vec<(String, ExpectedVersion)>,
}

impl AppendBatch {
    /// A batch with no expectations.
    pub fn new(events: Vec<EventData>) -> Self {
        Self {
            events,
            expectations: Vec::new(),
        }
    }

    /// Adds an expectation for a stream.
    pub fn expect(mut self, stream_id: impl Into<String>, expected: ExpectedVersion) -> Self {
        self.expectations.push((stream_id.into(), expected));
        self
    }
}

/// The outcome for one event of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// The event's id.
    pub event_id: Uuid,
    /// Its global position.
    pub position: u64,
    /// Its version in its stream.
    pub stream_version: u64,
    /// True when the id was already stored and nothing was written for it.
    pub duplicate: bool,
}

/// The last position and hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// The last position (0 when empty).
    pub position: u64,
    /// The last hash.
    pub hash: [u8; 32],
}

/// Which events a read returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum EventFilter {
    /// Every event.
    #[default]
    All,
    /// Events of these types.
    Types(Vec<String>),
}

impl EventFilter {
    /// Whether an event of `event_type` passes.
    pub fn accepts(&self, event_type: &str) -> bool {
        match self {
            EventFilter::All => true,
            EventFilter::Types(types) => types.iter().any(|t| t == event_type),
        }
    }
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// An expectation did not hold; nothing was written.
    #[error("stream `{stream_id}`: expected {expected}, found {}", actual.map_or("no stream".to_owned(), |v| format!("version {v}")))]
    WrongExpectedVersion {
        /// The stream.
        stream_id: String,
        /// What the caller expected.
        expected: ExpectedVersion,
        /// What the stream is at.
        actual: Option<u64>,
    },
    /// The batch is malformed (e.g. an empty stream id).
    #[error("invalid append: {0}")]
    Invalid(String),
    /// The URL names no supported backend.
    #[error("unsupported store URL `{0}`: use sqlite://PATH or postgres://...")]
    UnsupportedUrl(String),
    /// A stored row cannot be read back (a column out of range).
    #[error("corrupt row at position {position}: {reason}")]
    Corrupt {
        /// The row's position.
        position: i64,
        /// What is wrong.
        reason: String,
    },
    /// Applying migrations failed.
    #[error("migrating the store failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The database failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

impl StoreError {
    /// Whether retrying the same call may succeed (connection trouble, lock timeouts,
    /// serialization failures); the runtime retries these with backoff.
    pub fn is_retryable(&self) -> bool {
        match self {
            StoreError::Database(e) => match e {
                sqlx::Error::Io(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::WorkerCrashed => true,
                sqlx::Error::Database(db) => {
                    // PostgreSQL: serialization_failure, deadlock_detected, lock_not_available,
                    // admin shutdown / cannot connect now. SQLite: BUSY (5), LOCKED (6).
                    matches!(
                        db.code().as_deref(),
                        Some(
                            "40001"
                                | "40P01"
                                | "55P03"
                                | "57P01"
                                | "57P03"
                                | "5"
                                | "6"
                                | "517"
                                | "261"
                        )
                    )
                }
                _ => false,
            },
            _ => false,
        }
    }
}
