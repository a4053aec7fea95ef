//! Projections: the event log folded into SQL views that the HTTP API and the dashboard
//! read.
//!
//! A [`Projection`] says which tables it owns and how a page of stored events changes them.
//! The [`Runner`] feeds it the log from its checkpoint, a page at a time (1,000 events by
//! default), and the view folds the page in memory and writes each row it changes once
//! (set-based statements, not one statement per event). The runner commits the page's
//! view changes **and** the new checkpoint in one transaction: a crash (kill -9
//! included) loses the whole page or nothing, and a restart goes on from the checkpoint,
//! so each event is applied exactly once. A rebuild folds the log from position 0 into a
//! fresh set of tables (`<table>__next`) while the live ones keep serving, then swaps them
//! in one transaction; a rebuild that dies leaves the live view as it was. A view whose
//! code version changed is rebuilt when its runner starts. Each runner reports its
//! position and lag (Prometheus gauges).
//!
//! The views live in the store's database (PostgreSQL or SQLite, one SQL for both through
//! sqlx's `Any` driver; see [`db`]), or in any other database given by URL — an
//! in-memory SQLite one for a view as of a past position.
//!
//! A view may decide to append events (the anomaly view's `AnomalyDetected`): it writes
//! them to an outbox table in its transaction, and the runner appends them to the store
//! after the commit with deterministic ids, so a crash in between appends them once on the
//! next start.
//!
//! # Layout
//! - `db` — the database, the checkpoint and outbox tables.
//! - `fold` — set-based reads and writes of the rows a page touches.
//! - `runner` — catch-up, live following, rebuild and swap, lag.
//! - `views/` — one module per view: its tables, its fold, and the queries the API serves.

pub mod db;
mod fold;
pub mod log;
mod runner;
pub mod views;

use async_trait::async_trait;
use insights_schemas::Envelope;
use sqlx::AnyConnection;

pub use db::{Backend, Db};
pub use runner::{Runner, RunnerMetrics, ViewStatus, run_all, views_status};

/// Why a projection could not go on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProjectionError {
    /// The database failed.
    #[error("view database: {0}")]
    Db(#[from] sqlx::Error),
    /// The event store failed.
    #[error("event store: {0}")]
    Store(#[from] insights_event_store::StoreError),
    /// Bad configuration or arguments.
    #[error("{0}")]
    Config(String),
    /// Bad query parameters (the API answers 400).
    #[error("{0}")]
    BadQuery(String),
}

/// A table a view owns: its name, the body of its `CREATE TABLE` (columns and primary
/// key) and its secondary indexes (index name suffix, columns).
#[derive(Debug, Clone, Copy)]
pub struct Table {
    /// The table's name.
    pub name: &'static str,
    /// What goes between the parentheses of `CREATE TABLE name (…)`.
    pub columns: &'static str,
    /// Secondary indexes: `(suffix, "col, col")`, created as `<table>_<suffix>`.
    pub indexes: &'static [(&'static str, &'static str)],
}

/// A stored event as a view sees it.
#[derive(Debug, Clone, Copy)]
pub struct Recorded<'a> {
    /// Its position in the log.
    pub position: u64,
    /// When the store took it, microseconds since the epoch.
    pub recorded_at: i64,
    /// The event.
    pub envelope: &'a Envelope,
}

/// The transaction a view writes in: its tables' current names (live or being rebuilt),
/// and the events it decides to append.
#[derive(Debug)]
pub struct ViewTx<'c> {
    conn: &'c mut AnyConnection,
    suffix: &'static str,
    emitted: Vec<Envelope>,
}

impl<'c> ViewTx<'c> {
    pub(crate) fn new(conn: &'c mut AnyConnection, suffix: &'static str) -> Self {
        ViewTx {
            conn,
            suffix,
            emitted: Vec::new(),
        }
    }

    /// The name to use for one of the view's tables in this transaction.
    pub fn table(&self, name: &str) -> String {
        format!("{name}{}", self.suffix)
    }

    /// The connection, inside the transaction.
    pub fn conn(&mut self) -> &mut AnyConnection {
        self.conn
    }

    /// Appends `event` to the store once this transaction has committed.
    pub fn emit(&mut self, event: Envelope) {
        self.emitted.push(event);
    }

    pub(crate) fn take_emitted(&mut self) -> Vec<Envelope> {
        std::mem::take(&mut self.emitted)
    }
}

/// A view of the log.
#[async_trait]
pub trait Projection: Send + Sync + std::fmt::Debug {
    /// The view's name (its checkpoint's name, and its name in the API and the CLI).
    fn name(&self) -> &'static str;

    /// The version of its tables and fold: a runner that finds tables written by another
    /// version rebuilds them.
    fn version(&self) -> i64;

    /// The tables it owns.
    fn tables(&self) -> &'static [Table];

    /// The event types it reads; `None` for all.
    fn event_types(&self) -> Option<&'static [&'static str]>;

    /// Applies a page of events, in log order, inside the runner's transaction. The result
    /// must not depend on where pages begin and end: a view folded a page at a time equals
    /// the same view folded one event at a time, row for row (the views fold a page in
    /// memory and write each row it changes once; see `fold`).
    async fn apply(
        &self,
        tx: &mut ViewTx<'_>,
        page: &[Recorded<'_>],
    ) -> Result<(), ProjectionError>;
}

/// The views as readers (the API) see them: their database, which there are, and the
/// answers already computed.
#[derive(Debug, Clone)]
pub struct Views {
    /// The views' database.
    pub db: Db,
    /// The views.
    pub list: Vec<std::sync::Arc<dyn Projection>>,
    answers: std::sync::Arc<std::sync::Mutex<Answers>>,
}

/// Answers by query, each with the position it was computed at.
#[derive(Debug, Default)]
struct Answers {
    by_query: std::collections::HashMap<String, (u64, std::sync::Arc<serde_json::Value>)>,
}

/// Answers kept at most (the whole cache is dropped when it is full).
const MAX_ANSWERS: usize = 1_024;

impl Views {
    /// The views in `db`.
    pub fn new(db: Db, list: Vec<std::sync::Arc<dyn Projection>>) -> Self {
        Views {
            db,
            list,
            answers: Default::default(),
        }
    }

    /// The answer to `query` for a view at `position`: computed once per position, so
    /// readers of a view that has not moved (a dashboard polled by many) cost one
    /// checkpoint read each. The answer may reflect later events than `position` (the view
    /// may move while it is computed), never earlier ones.
    pub async fn cached<F, Fut>(
        &self,
        query: String,
        position: u64,
        compute: F,
    ) -> Result<std::sync::Arc<serde_json::Value>, ProjectionError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<serde_json::Value, ProjectionError>>,
    {
        if let Ok(answers) = self.answers.lock()
            && let Some((at, answer)) = answers.by_query.get(&query)
            && *at == position
        {
            return Ok(std::sync::Arc::clone(answer));
        }
        let answer = std::sync::Arc::new(compute().await?);
        if let Ok(mut answers) = self.answers.lock() {
            if answers.by_query.len() >= MAX_ANSWERS {
                answers.by_query.clear();
            }
            answers
                .by_query
                .insert(query, (position, std::sync::Arc::clone(&answer)));
        }
        Ok(answer)
    }

    /// The position view `name` reflects (0 if never built).
    pub async fn position(&self, name: &str) -> Result<u64, ProjectionError> {
        Ok(self.db.checkpoint(name).await?.map_or(0, |(p, _)| p))
    }

    /// Waits (polling, at most `timeout`) until view `name` reflects `min` or more; its
    /// position then, or `Err(position)` when it is still behind.
    pub async fn wait_for(
        &self,
        name: &str,
        min: u64,
        timeout: std::time::Duration,
    ) -> Result<Result<u64, u64>, ProjectionError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let position = self.position(name).await?;
            if position >= min {
                return Ok(Ok(position));
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(Err(position));
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}
