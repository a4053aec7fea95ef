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
use sqlx::{Connection, Row, SqliteConnection};
use tokio::sync::{Mutex, watch};
use uuid::Uuid;

use crate::EventStore;
use crate::plan::{self, VersionCache, to_i64, to_u64};
use crate::row::{COLUMNS, HEAD_SQL, head_from_row, record_from_row};
use crate::task::AbortOnDrop;
use crate::types::{AppendBatch, Appended, EventFilter, Head, RecordedEvent, StoreError};

/// The store's migrations. Other stores that share the database (the privacy vault's key
/// store, versions 1001 and up) record theirs in the same `_sqlx_migrations` table, so
/// versions this store does not know are left alone rather than refused.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate::Migrator {
    ignore_missing: true,
    ..sqlx::migrate!("./migrations/sqlite")
};

/// Rows per INSERT statement (14 parameters each, well under SQLite's limit).
const INSERT_CHUNK: usize = 100;
/// Parameters per IN (…) lookup.
const LOOKUP_CHUNK: usize = 500;

/// The SQLite event store. Cheap to clone; clones share the pool.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// What appends use, behind a lock that queues in-process writers.
    writer: Arc<Mutex<Writer>>,
    appended: Arc<watch::Sender<u64>>,
    _checkpointer: Option<Arc<AbortOnDrop>>,
}

/// The writer's state.
#[derive(Debug)]
struct Writer {
    /// The one connection appends use: its page cache and prepared statements stay warm.
    /// `None` for an in-memory database, whose single connection lives in the pool.
    conn: Option<SqliteConnection>,
    versions: VersionCache,
}

/// Copies committed WAL frames into the database file in the background, without blocking
/// the writer (PASSIVE), a few times a second; once the WAL is large, waits for a moment
/// without readers and writers to restart it from the beginning (TRUNCATE), which bounds
/// its size.
async fn checkpoint_wal(pool: SqlitePool) {
    const LARGE_WAL_FRAMES: i64 = 64 * 1024;
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        match sqlx::query_as::<_, (i64, i64, i64)>("PRAGMA wal_checkpoint(PASSIVE)")
            .fetch_one(&pool)
            .await
        {
            Ok((_, log, _)) if log >= LARGE_WAL_FRAMES => {
                if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                    .execute(&pool)
                    .await
                {
                    tracing::debug!(error = %e, "WAL truncate deferred");
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "WAL checkpoint failed; retrying"),
        }
    }
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
            // The default 2 MB page cache makes appends ten times slower once the file
            // outgrows it (random event-id index pages); 64 MB and memory-mapped reads keep
            // them flat (measured, see benches/RESULTS.md).
            options = options
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .pragma("cache_size", "-65536")
                .pragma("mmap_size", "268435456")
                .pragma("temp_store", "memory");
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
            // As the PostgreSQL store: no ping before each use (one more trip to the
            // connection's worker thread per operation); sqlx pings on release.
            .test_before_acquire(false)
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
        let in_memory = pool
            .connect_options()
            .get_filename()
            .to_string_lossy()
            .contains(":memory:")
            || pool.options().get_max_connections() == 1;
        let (writer, checkpointer) = if in_memory {
            (None, None)
        } else {
            let mut conn = pool.acquire().await?.detach();
            // Commits must not pay for checkpoints (they fsync every page the batch dirtied,
            // thousands for random event-id index pages): a background task checkpoints.
            sqlx::query("PRAGMA wal_autocheckpoint = 0")
                .execute(&mut conn)
                .await?;
            (
                Some(conn),
                Some(Arc::new(AbortOnDrop(tokio::spawn(checkpoint_wal(
                    pool.clone(),
                ))))),
            )
        };
        let head: i64 = sqlx::query_scalar("SELECT position FROM store_head WHERE id = 1")
            .fetch_one(&pool)
            .await?;
        let (tx, _) = watch::channel(to_u64(head, head, "head position")?);
        Ok(Self {
            pool,
            writer: Arc::new(Mutex::new(Writer {
                conn: writer,
                versions: VersionCache::default(),
            })),
            _checkpointer: checkpointer,
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
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn append(&self, batch: AppendBatch) -> Result<Vec<Appended>, StoreError> {
        plan::check_batch(&batch)?;
        if batch.events.is_empty() {
            return Ok(Vec::new());
        }
        let mut guard = self.writer.lock().await;
        let writer = &mut *guard;
        let mut tx = match writer.conn.as_mut() {
            Some(conn) => conn.begin_with("BEGIN IMMEDIATE").await?,
            None => self.pool.begin_with("BEGIN IMMEDIATE").await?,
        };
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
        let (mut versions, missing) = writer.versions.split(head.position, streams);
        let mut found = HashMap::new();
        for chunk in missing.chunks(LOOKUP_CHUNK) {
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
                    found.insert(
                        row.try_get::<String, _>("stream_id")?,
                        to_u64(v, 0, "stream version")?,
                    );
                }
            }
        }
        writer.versions.learn(&missing, &found);
        versions.extend(found);
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
        if let Err(e) = tx.commit().await {
            writer.versions.clear();
            return Err(e.into());
        }
        writer.versions.committed(head.position, &batch, &plan);
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
