//! The PostgreSQL backend.
//!
//! Appends lock the single `store_head` row (`SELECT … FOR UPDATE`), so writers from any
//! number of processes take positions one transaction at a time and a rollback leaves no
//! hole. Rows go in with one `INSERT … SELECT FROM UNNEST(…)` per batch. A committed
//! append sends `NOTIFY insights_events, '<head>'`; every store instance listens and wakes
//! its subscriptions, so processes see each other's appends without polling.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};
use sqlx::{PgConnection, Row};
use tokio::sync::watch;
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
    ..sqlx::migrate!("./migrations/postgres")
};

/// The notification channel for committed appends.
pub const NOTIFY_CHANNEL: &str = "insights_events";

/// The PostgreSQL event store. Cheap to clone; clones share the pool and the listener.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
    appended: Arc<watch::Sender<u64>>,
    versions: Arc<std::sync::Mutex<VersionCache>>,
    _listener: Arc<AbortOnDrop>,
}

impl PostgresStore {
    /// Connects to `url`, applies migrations and starts listening for appends.
    pub async fn open(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let options: PgConnectOptions = url.parse()?;
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(2))
            .acquire_timeout(Duration::from_secs(10))
            // No ping before each use: sqlx already pings a connection when it comes back
            // to the pool (and drops a broken one), so a connection that died while idle
            // fails one operation, which callers retry; the ping before use cost one more
            // round trip per statement batch.
            .test_before_acquire(false)
            .connect_with(options)
            .await?;
        Self::from_pool(pool).await
    }

    /// Uses an existing pool (e.g. one whose connections set a `search_path`), applies
    /// migrations and starts listening for appends.
    pub async fn from_pool(pool: PgPool) -> Result<Self, StoreError> {
        MIGRATOR.run(&pool).await?;
        let head: i64 = sqlx::query_scalar("SELECT position FROM store_head WHERE id = 1")
            .fetch_one(&pool)
            .await?;
        let (tx, _) = watch::channel(to_u64(head, head, "head position")?);
        let appended = Arc::new(tx);
        let mut listener = PgListener::connect_with(&pool).await?;
        listener.listen(NOTIFY_CHANNEL).await?;
        let task = tokio::spawn(listen(listener, Arc::clone(&appended)));
        Ok(Self {
            pool,
            appended,
            versions: Arc::default(),
            _listener: Arc::new(AbortOnDrop(task)),
        })
    }

    fn version_cache(&self) -> std::sync::MutexGuard<'_, VersionCache> {
        // A panic while holding this lock leaves at worst a cache that the next head check
        // discards.
        self.versions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The connection pool, for callers that write their own tables in the same database
    /// (projections) and save checkpoints in the same transaction.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Saves a checkpoint on `conn`, typically inside the caller's transaction, so that it
    /// commits or rolls back together with the caller's own writes.
    pub async fn save_checkpoint_in(
        conn: &mut PgConnection,
        name: &str,
        position: u64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO checkpoints (name, position, updated_at) VALUES ($1, $2, now()) \
             ON CONFLICT (name) DO UPDATE SET position = excluded.position, updated_at = excluded.updated_at",
        )
        .bind(name)
        .bind(to_i64(position))
        .execute(conn)
        .await?;
        Ok(())
    }
}

/// Forwards notifications to the watch channel. `PgListener` reconnects by itself; a
/// notification lost while it does is covered by subscriptions' bounded polling.
async fn listen(mut listener: PgListener, appended: Arc<watch::Sender<u64>>) {
    loop {
        match listener.recv().await {
            Ok(n) => {
                let position = n.payload().parse::<u64>().unwrap_or(0);
                appended.send_modify(|v| *v = (*v).max(position));
            }
            Err(e) => {
                tracing::warn!(error = %e, "event store listener failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

#[async_trait]
impl EventStore for PostgresStore {
    fn backend(&self) -> &'static str {
        "postgresql"
    }

    async fn append(&self, batch: AppendBatch) -> Result<Vec<Appended>, StoreError> {
        plan::check_batch(&batch)?;
        if batch.events.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.pool.begin().await?;
        // Lock the head (serialising writers), and make the rest of this transaction plan
        // every statement for its actual arguments: a generic plan cached while the table
        // was small, or for one-event batches, slowed 100-event batches tenfold (measured;
        // see benches/RESULTS.md).
        let head = head_from_row(
            &sqlx::query(
                "SELECT position, hash, set_config('plan_cache_mode', 'force_custom_plan', true) \
                 FROM store_head WHERE id = 1 FOR UPDATE",
            )
            .fetch_one(&mut *tx)
            .await?,
        )?;

        let ids = plan::ids(&batch);
        let mut existing = HashMap::new();
        for row in sqlx::query(
            "SELECT event_id, position, stream_version FROM events WHERE event_id = ANY($1)",
        )
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await?
        {
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
        if let Some(results) = plan::all_duplicates(&batch, &existing) {
            tx.rollback().await?;
            return Ok(results);
        }

        let streams = plan::streams_needed(&batch, &existing);
        let (mut versions, missing) = self.version_cache().split(head.position, streams);
        let mut found = HashMap::new();
        let rows = if missing.is_empty() {
            Vec::new()
        } else {
            sqlx::query(
                "SELECT s.stream_id, (SELECT max(stream_version) FROM events e WHERE e.stream_id = s.stream_id) AS version \
                 FROM unnest($1::text[]) AS s(stream_id)",
            )
            .bind(&missing)
            .fetch_all(&mut *tx)
            .await?
        };
        for row in rows {
            if let Some(v) = row.try_get::<Option<i64>, _>("version")? {
                found.insert(
                    row.try_get::<String, _>("stream_id")?,
                    to_u64(v, 0, "stream version")?,
                );
            }
        }
        self.version_cache().learn(&missing, &found);
        versions.extend(found);

        let plan = plan::plan(&batch, head, &existing, &versions, plan::now_micros())?;
        let n = plan.rows.len();
        let mut position = Vec::with_capacity(n);
        let mut event_id = Vec::with_capacity(n);
        let mut stream_id = Vec::with_capacity(n);
        let mut stream_version = Vec::with_capacity(n);
        let mut event_type = Vec::with_capacity(n);
        let mut schema_version = Vec::with_capacity(n);
        let mut causation_id = Vec::with_capacity(n);
        let mut correlation_id = Vec::with_capacity(n);
        let mut occurred_at = Vec::with_capacity(n);
        let mut producer = Vec::with_capacity(n);
        let mut producer_version = Vec::with_capacity(n);
        let mut payload: Vec<&[u8]> = Vec::with_capacity(n);
        let mut hash: Vec<&[u8]> = Vec::with_capacity(n);
        for row in &plan.rows {
            let e = &batch.events[row.index];
            position.push(to_i64(row.position));
            event_id.push(e.event_id);
            stream_id.push(e.stream_id.as_str());
            stream_version.push(to_i64(row.stream_version));
            event_type.push(e.event_type.as_str());
            schema_version.push(e.schema_version);
            causation_id.push(e.causation_id.as_deref());
            correlation_id.push(e.correlation_id.as_str());
            occurred_at.push(e.occurred_at);
            producer.push(e.producer.as_str());
            producer_version.push(e.producer_version.as_str());
            payload.push(&e.payload);
            hash.push(&row.hash);
        }
        // Rows, head and notification in one statement: one round trip.
        sqlx::query(
            "WITH inserted AS ( \
                INSERT INTO events (position, event_id, stream_id, stream_version, event_type, schema_version, \
                    causation_id, correlation_id, occurred_at, recorded_at, producer, producer_version, payload, hash) \
                SELECT p, i, s, v, t, sv, c, r, o, $10, pr, pv, pl, h FROM unnest( \
                    $1::bigint[], $2::uuid[], $3::text[], $4::bigint[], $5::text[], $6::int[], $7::text[], \
                    $8::text[], $9::bigint[], $11::text[], $12::text[], $13::bytea[], $14::bytea[]) \
                AS u(p, i, s, v, t, sv, c, r, o, pr, pv, pl, h) \
                RETURNING 1), \
             head AS (UPDATE store_head SET position = $15, hash = $16 WHERE id = 1 RETURNING position) \
             SELECT pg_notify($17, position::text), (SELECT count(*) FROM inserted) FROM head",
        )
        .bind(&position)
        .bind(&event_id)
        .bind(&stream_id)
        .bind(&stream_version)
        .bind(&event_type)
        .bind(&schema_version)
        .bind(&causation_id)
        .bind(&correlation_id)
        .bind(&occurred_at)
        .bind(plan.recorded_at)
        .bind(&producer)
        .bind(&producer_version)
        .bind(&payload)
        .bind(&hash)
        .bind(to_i64(plan.new_head.position))
        .bind(plan.new_head.hash.as_slice())
        .bind(NOTIFY_CHANNEL)
        .execute(&mut *tx)
        .await?;
        if let Err(e) = tx.commit().await {
            self.version_cache().clear();
            return Err(e.into());
        }
        self.version_cache().committed(head.position, &batch, &plan);
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
        let rows =
            match filter {
                EventFilter::All => sqlx::query(&format!(
                    "SELECT {COLUMNS} FROM events WHERE position > $1 ORDER BY position LIMIT $2"
                ))
                .bind(to_i64(after))
                .bind(limit)
                .fetch_all(&self.pool)
                .await?,
                EventFilter::Types(types) => {
                    sqlx::query(&format!(
                        "SELECT {COLUMNS} FROM events WHERE position > $1 AND event_type = ANY($3) \
                     ORDER BY position LIMIT $2"
                    ))
                    .bind(to_i64(after))
                    .bind(limit)
                    .bind(types)
                    .fetch_all(&self.pool)
                    .await?
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
            "SELECT {COLUMNS} FROM events WHERE stream_id = $1 AND stream_version > $2 \
             ORDER BY stream_version LIMIT $3"
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
            sqlx::query_scalar("SELECT max(stream_version) FROM events WHERE stream_id = $1")
                .bind(stream_id)
                .fetch_one(&self.pool)
                .await?;
        v.map(|v| to_u64(v, 0, "stream version")).transpose()
    }

    async fn checkpoint(&self, name: &str) -> Result<Option<u64>, StoreError> {
        let v: Option<i64> = sqlx::query_scalar("SELECT position FROM checkpoints WHERE name = $1")
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
