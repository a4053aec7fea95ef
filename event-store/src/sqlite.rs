//! The SQLite backend: the embedded default.
//!
//! WAL mode with `synchronous = NORMAL` (a commit survives a process crash; a power loss
//! may lose the last commits, never corrupt the file). Appends run in `BEGIN IMMEDIATE`
//! transactions, which take SQLite's write lock up front, so writers in other processes
//! queue on the busy timeout instead of failing mid-transaction; inside one process an
//! async mutex queues them without spinning. Subscriptions in the same process are woken
//! directly; another process's appends are seen by bounded polling.

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Row, SqliteConnection};
use tokio::sync::{Mutex, watch};
use uuid::Uuid;

use crate::EventStore;
use crate::plan::{self, to_i64, to_u64};
use crate::row::{COLUMNS, HEAD_SQL, head_from_row, record_from_row};
use crate::types::{AppendBatch, Appended, EventFilter, Head, RecordedEvent, StoreError};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// Rows per INSERT statement (14 parameters each, well under SQLite's limit).
const INSERT_CHUNK: usize = 100;
/// Parameters per IN (…) lookup.
const LOOKUP_CHUNK: usize = 500;

/// The SQLite event store. Cheap to clone; clones share the pool.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    write_lock: Arc<Mutex<()>>,
    appended: Arc<watch::Sender<u64>>,
}

impl SqliteStore {
    /// Opens `sqlite://PATH` (creating the file and its directory) or `sqlite::memory:`,
    /// and applies migrations.
    pub async fn open(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let memory = url.contains(":memory:") || url.contains("mode=memory");
        let mut options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .busy_timeout(Duration::from_secs(30))
            .foreign_keys(true);
        if !memory {
            options = options
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal);
            if let Some(dir) = Path::new(options.get_filename()).parent()
                && !dir.as_os_str().is_empty()
            {
                std::fs::create_dir_all(dir)
                    .map_err(|e| StoreError::Database(sqlx::Error::Io(e)))?;
            }
        }
        // An in-memory database exists per connection: keep exactly one.
        let max = if memory { 1 } else { max_connections.max(2) };
        let pool = SqlitePoolOptions::new()
            .max_connections(max)
            .min_connections(u32::from(memory))
            .idle_timeout(if memory {
                None
            } else {
                Some(Duration::from_secs(600))
            })
            .max_lifetime(if memory {
                None
            } else {
                Some(Duration::from_secs(1800))
            })
            .connect_with(options)
            .await?;
        Self::from_pool(pool).await
    }

    /// Uses an existing pool and applies migrations.
    pub async fn from_pool(pool: SqlitePool) -> Result<Self, StoreError> {
        MIGRATOR.run(&pool).await?;
        let head: i64 = sqlx::query_scalar("SELECT position FROM store_head WHERE id = 1")
            .fetch_one(&pool)
            .await?;
        let (tx, _) = watch::channel(to_u64(head, head, "head position")?);
        Ok(Self {
            pool,
            write_lock: Arc::new(Mutex::new(())),
            appended: Arc::new(tx),
        })
    }

    /// The connection pool, for callers that write their own tables in the same database.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Saves a checkpoint on `conn`, typically inside the caller's transaction, so that it
    /// commits or rolls back together with the caller's own writes.
    pub async fn save_checkpoint_in(
        conn: &mut SqliteConnection,
        name: &str,
        position: u64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO checkpoints (name, position, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET position = excluded.position, updated_at = excluded.updated_at",
        )
        .bind(name)
        .bind(to_i64(position))
        .bind(plan::now_micros())
        .execute(conn)
        .await?;
        Ok(())
    }
}

fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}

#[async_trait]
impl EventStore for SqliteStore {
    async fn append(&self, batch: AppendBatch) -> Result<Vec<Appended>, StoreError> {
        plan::check_batch(&batch)?;
        if batch.events.is_empty() {
            return Ok(Vec::new());
        }
        let _writer = self.write_lock.lock().await;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let head = head_from_row(&sqlx::query(HEAD_SQL).fetch_one(&mut *tx).await?)?;

        let ids = plan::ids(&batch);
        let mut existing = HashMap::new();
        for chunk in ids.chunks(LOOKUP_CHUNK) {
            let sql = format!(
                "SELECT event_id, position, stream_version FROM events WHERE event_id IN ({})",
                placeholders(chunk.len())
            );
            let mut q = sqlx::query(&sql);
            for id in chunk {
                q = q.bind(id);
            }
            for row in q.fetch_all(&mut *tx).await? {
                let position: i64 = row.try_get("position")?;
                let version: i64 = row.try_get("stream_version")?;
                existing.insert(
                    row.try_get::<Uuid, _>("event_id")?,
                    (
                        to_u64(position, position, "position")?,
                        to_u64(version, position, "stream version")?,
                    ),
                );
            }
        }
        if let Some(results) = plan::all_duplicates(&batch, &existing) {
            tx.rollback().await?;
            return Ok(results);
        }

        let streams = plan::streams_needed(&batch, &existing);
        let mut versions = HashMap::new();
        for chunk in streams.chunks(LOOKUP_CHUNK) {
            let sql = format!(
                "SELECT s.column1 AS stream_id, \
                   (SELECT max(stream_version) FROM events e WHERE e.stream_id = s.column1) AS version \
                 FROM (VALUES {}) AS s",
                vec!["(?)"; chunk.len()].join(", ")
            );
            let mut q = sqlx::query(&sql);
            for s in chunk {
                q = q.bind(s);
            }
            for row in q.fetch_all(&mut *tx).await? {
                if let Some(v) = row.try_get::<Option<i64>, _>("version")? {
                    versions.insert(
                        row.try_get::<String, _>("stream_id")?,
                        to_u64(v, 0, "stream version")?,
                    );
                }
            }
        }

        let plan = plan::plan(&batch, head, &existing, &versions, plan::now_micros())?;
        for chunk in plan.rows.chunks(INSERT_CHUNK) {
            let sql = format!(
                "INSERT INTO events (position, event_id, stream_id, stream_version, event_type, schema_version, \
                    causation_id, correlation_id, occurred_at, recorded_at, producer, producer_version, payload, hash) \
                 VALUES {}",
                vec!["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"; chunk.len()].join(", ")
            );
            let mut q = sqlx::query(&sql);
            for row in chunk {
                let e = &batch.events[row.index];
                q = q
                    .bind(to_i64(row.position))
                    .bind(e.event_id)
                    .bind(e.stream_id.as_str())
                    .bind(to_i64(row.stream_version))
                    .bind(e.event_type.as_str())
                    .bind(e.schema_version)
                    .bind(e.causation_id.as_deref())
                    .bind(e.correlation_id.as_str())
                    .bind(e.occurred_at)
                    .bind(plan.recorded_at)
                    .bind(e.producer.as_str())
                    .bind(e.producer_version.as_str())
                    .bind(e.payload.as_slice())
                    .bind(row.hash.as_slice());
            }
            q.execute(&mut *tx).await?;
        }
        sqlx::query("UPDATE store_head SET position = ?, hash = ? WHERE id = 1")
            .bind(to_i64(plan.new_head.position))
            .bind(plan.new_head.hash.as_slice())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.appended
            .send_modify(|v| *v = (*v).max(plan.new_head.position));
        Ok(plan.results)
    }

    async fn read_all(
        &self,
        after: u64,
        limit: usize,
        filter: &EventFilter,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = match filter {
            EventFilter::All => {
                sqlx::query(&format!(
                    "SELECT {COLUMNS} FROM events WHERE position > ? ORDER BY position LIMIT ?"
                ))
                .bind(to_i64(after))
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
            }
            EventFilter::Types(types) if types.is_empty() => Vec::new(),
            EventFilter::Types(types) => {
                let sql = format!(
                    "SELECT {COLUMNS} FROM events WHERE position > ? AND event_type IN ({}) \
                     ORDER BY position LIMIT ?",
                    placeholders(types.len())
                );
                let mut q = sqlx::query(&sql).bind(to_i64(after));
                for t in types {
                    q = q.bind(t.as_str());
                }
                q.bind(limit).fetch_all(&self.pool).await?
            }
        };
        rows.iter().map(record_from_row).collect()
    }

    async fn read_stream(
        &self,
        stream_id: &str,
        after_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM events WHERE stream_id = ? AND stream_version > ? \
             ORDER BY stream_version LIMIT ?"
        ))
        .bind(stream_id)
        .bind(to_i64(after_version))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(record_from_row).collect()
    }

    async fn head(&self) -> Result<Head, StoreError> {
        head_from_row(&sqlx::query(HEAD_SQL).fetch_one(&self.pool).await?)
    }

    async fn stream_version(&self, stream_id: &str) -> Result<Option<u64>, StoreError> {
        let v: Option<i64> =
            sqlx::query_scalar("SELECT max(stream_version) FROM events WHERE stream_id = ?")
                .bind(stream_id)
                .fetch_one(&self.pool)
                .await?;
        v.map(|v| to_u64(v, 0, "stream version")).transpose()
    }

    async fn checkpoint(&self, name: &str) -> Result<Option<u64>, StoreError> {
        let v: Option<i64> = sqlx::query_scalar("SELECT position FROM checkpoints WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        v.map(|v| to_u64(v, v, "checkpoint")).transpose()
    }

    async fn save_checkpoint(&self, name: &str, position: u64) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await?;
        Self::save_checkpoint_in(&mut conn, name, position).await
    }

    fn appended(&self) -> watch::Receiver<u64> {
        self.appended.subscribe()
    }
}
