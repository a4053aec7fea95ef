//! The append-only event store: the pipeline's source of truth.
//!
//! One trait, [`EventStore`], two backends over sqlx: [`PostgresStore`] for production and
//! [`SqliteStore`] for the embedded default. Both pass one contract-test suite
//! (`tests/contract.rs`). What every backend guarantees:
//!
//! - **Atomic batches** that may span streams: all events of an [`AppendBatch`] are stored,
//!   or none.
//! - **Gapless global positions** 1, 2, 3, … even with concurrent writers and rolled-back
//!   transactions: positions are taken from a single head row inside the appending
//!   transaction (row lock in PostgreSQL, `BEGIN IMMEDIATE` in SQLite), never from a
//!   sequence, so a rollback gives its positions back.
//! - **Per-stream versions** with optimistic concurrency ([`ExpectedVersion`]).
//! - **Permanent idempotency** on `event_id`: appending an id that is already stored is a
//!   no-op that returns the stored position, so a retried batch yields no duplicates.
//! - **A SHA-256 hash chain**: each event's hash covers its canonical bytes (position,
//!   version, envelope fields, payload) and the previous event's hash; [`EventStore::verify`]
//!   walks it and names the first position that does not match. The database also refuses
//!   `UPDATE` and `DELETE` on events (triggers), so tampering needs a deliberate act.
//! - **Reads** forward from a position (everything, or some event types), by stream, and a
//!   catch-up-then-live [`Subscription`].
//! - **Named checkpoints** that a caller can save inside its own transaction, next to its
//!   own writes (see each backend's `save_checkpoint_in`).
//!
//! Payloads are opaque bytes to the store; the pipeline stores each event's JSON form
//! ([`envelope`] maps the pipeline's envelopes to rows and back).
//!
//! # Layout
//! - `types` — events in and out, expectations, results, errors.
//! - `chain` — the canonical encoding, the hash chain and its verifier (pure).
//! - `plan` — deciding positions, versions and hashes for a batch (pure).
//! - `postgres`, `sqlite` — the backends; `migrations/` holds their schemas.
//! - `subscription` — catch-up-then-live reading on top of any backend.
//! - [`envelope`] — the pipeline's envelopes as rows, and back.
//! - `pages` — [`Pages`]: the log a page at a time up to a cut.
//! - [`bundle`] — the audit bundle: an exported slice of the log that verifies offline.

pub mod bundle;
mod chain;
pub mod envelope;
mod pages;
mod plan;
mod postgres;
mod row;
mod sqlite;
mod subscription;
mod task;
mod types;

use std::sync::Arc;

use async_trait::async_trait;

pub use chain::{
    ChainBreak, ChainBreakKind, ChainVerifier, GENESIS_HASH, VerifyReport, event_hash,
};
pub use pages::Pages;
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;
pub use subscription::{Subscription, read_covered};
pub use types::{
    AppendBatch, Appended, EventData, EventFilter, ExpectedVersion, Head, RecordedEvent, StoreError,
};

/// Rows fetched per page when walking the whole log (verify, subscriptions).
pub const PAGE_SIZE: usize = 5_000;

/// Pages [`verify_walk`] reads ahead of the one being hashed.
pub const READ_AHEAD: usize = 2;

/// The operations every backend provides. Object-safe: the pipeline holds an
/// `Arc<dyn EventStore>` chosen from the store URL by [`open`].
#[async_trait]
pub trait EventStore: Send + Sync + std::fmt::Debug {
    /// The database system, as OpenTelemetry names it (`db.system.name`): `postgresql` or
    /// `sqlite`.
    fn backend(&self) -> &'static str;

    /// Appends a batch atomically; see the crate docs for the guarantees. Returns one
    /// [`Appended`] per event of the batch, in order.
    async fn append(&self, batch: AppendBatch) -> Result<Vec<Appended>, StoreError>;

    /// Events with position > `after`, in position order, at most `limit`.
    async fn read_all(
        &self,
        after: u64,
        limit: usize,
        filter: &EventFilter,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// Events of one stream with version > `after_version`, in order, at most `limit`.
    async fn read_stream(
        &self,
        stream_id: &str,
        after_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// The last position and its hash (position 0 and [`GENESIS_HASH`] when empty).
    async fn head(&self) -> Result<Head, StoreError>;

    /// A stream's current version, `None` if it has no events.
    async fn stream_version(&self, stream_id: &str) -> Result<Option<u64>, StoreError>;

    /// A named checkpoint's position, `None` if never saved.
    async fn checkpoint(&self, name: &str) -> Result<Option<u64>, StoreError>;

    /// Saves a named checkpoint on its own. To save it together with other writes, use
    /// the backend's `save_checkpoint_in` inside your transaction.
    async fn save_checkpoint(&self, name: &str, position: u64) -> Result<(), StoreError>;

    /// A receiver that changes whenever events may have been appended (by this process,
    /// or for PostgreSQL by any process, through LISTEN/NOTIFY). Its value is a lower
    /// bound of the head position.
    fn appended(&self) -> tokio::sync::watch::Receiver<u64>;

    /// Walks the log from position 1 up to the head as it was when the walk began (a
    /// consistent cut of a log that may grow meanwhile) and checks positions, hashes and
    /// the head. See [`verify_walk`].
    async fn verify(&self) -> Result<VerifyReport, StoreError> {
        verify_walk(self, &|_, _| {}).await
    }
}

/// [`EventStore::verify`] with a progress callback `(position reached, head)` per page.
///
/// Takes the head first, then reads the pages up to it — positions are gapless, so page
/// `k` is positions `k·PAGE_SIZE + 1 ..= (k+1)·PAGE_SIZE` and pages can be read ahead,
/// [`READ_AHEAD`] at a time — while the pages already read are hashed on a blocking
/// thread. A page holding rows beyond its range (rows out of place) is cut to its range;
/// the verifier reports the gap or the mismatch. An event beyond the cut is growth if the
/// head has moved past it since, and a row the head never covered (written around the
/// store) if it has not.
pub async fn verify_walk<S: EventStore + ?Sized>(
    store: &S,
    progress: &(dyn Fn(u64, u64) + Send + Sync),
) -> Result<VerifyReport, StoreError> {
    use futures::StreamExt;

    let head = store.head().await?;
    let cut = head.position;
    let page_size = PAGE_SIZE as u64;
    let pages = cut.div_ceil(page_size);
    let (tx, mut rx) = tokio::sync::mpsc::channel(READ_AHEAD);
    let reader = async move {
        let mut reads = futures::stream::iter(0..pages)
            .map(|k| async move {
                let after = k * page_size;
                (
                    after,
                    store.read_all(after, PAGE_SIZE, &EventFilter::All).await,
                )
            })
            .buffered(READ_AHEAD);
        while let Some(page) = reads.next().await {
            if tx.send(page).await.is_err() {
                break;
            }
        }
    };
    let hasher = async {
        let mut verifier = ChainVerifier::new();
        while let Some((after, page)) = rx.recv().await {
            let mut page = page?;
            let end = (after + page_size).min(cut);
            page.retain(|e| e.position <= end);
            let hashing = tokio::task::spawn_blocking(move || {
                for e in &page {
                    verifier.push(e);
                }
                verifier
            });
            verifier = hashing
                .await
                .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
            progress(end, cut);
        }
        Ok::<_, StoreError>(verifier)
    };
    let ((), verifier) = tokio::join!(reader, hasher);
    let verifier = verifier?;
    let mut report = verifier.finish(&head);
    if report.broken.is_none()
        && let Some(beyond) = store
            .read_all(head.position, 1, &EventFilter::All)
            .await?
            .first()
        && store.head().await?.position < beyond.position
    {
        report.broken = Some(ChainBreak {
            position: beyond.position,
            kind: ChainBreakKind::HeadMismatch,
        });
    }
    Ok(report)
}

/// Opens (creating and migrating if needed) the store at `url`: `sqlite://PATH`,
/// `sqlite::memory:`, or `postgres://…`.
pub async fn open(url: &str, max_connections: u32) -> Result<Arc<dyn EventStore>, StoreError> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::open(url, max_connections).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PostgresStore::open(url, max_connections).await?))
    } else {
        Err(StoreError::UnsupportedUrl(url.to_owned()))
    }
}

/// Starts a catch-up-then-live subscription after `after` (0 = from the beginning).
pub fn subscribe(store: Arc<dyn EventStore>, after: u64, filter: EventFilter) -> Subscription {
    Subscription::new(store, after, filter)
}
