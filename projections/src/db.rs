//! The views' database: the store's own (PostgreSQL or SQLite) through sqlx's `Any`
//! driver, so that one set of SQL serves both backends.
//!
//! The SQL here and in the views keeps to what both dialects read the same way: `$n`
//! parameters, `INSERT … ON CONFLICT … DO UPDATE`, `RETURNING`, `BIGINT`, `DOUBLE
//! PRECISION` and `TEXT` columns, `CAST(SUM(…) AS BIGINT)` (PostgreSQL sums integers as
//! `NUMERIC`, which `Any` does not decode).

use std::time::Duration;

use serde_json::{Map, Value};
use sqlx::AnyConnection;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Column, Row};

use crate::ProjectionError;

/// Which database a [`Db`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// PostgreSQL.
    Postgres,
    /// SQLite.
    Sqlite,
}

/// A pool on the views' database.
#[derive(Debug, Clone)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
}

/// The projections' own bookkeeping: one checkpoint per view (the position its tables
/// reflect and the version of the code that wrote them), and the outbox of events a view
/// decided to append (written in the view's transaction, appended to the store after it).
const BOOKKEEPING: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS projection_checkpoints (
        name TEXT PRIMARY KEY,
        position BIGINT NOT NULL,
        version BIGINT NOT NULL,
        updated_at BIGINT NOT NULL
    )",
    "CREATE TABLE IF NOT EXISTS projection_outbox (
        event_id TEXT PRIMARY KEY,
        view TEXT NOT NULL,
        envelope TEXT NOT NULL
    )",
];

impl Db {
    /// Connects to `url` (`sqlite://PATH`, `sqlite::memory:` or `postgres://…`) and
    /// creates the bookkeeping tables. An in-memory SQLite database lives in one
    /// connection, kept open as long as the pool.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Db, ProjectionError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(ProjectionError::Config(format!(
                "unsupported database URL {url:?} (sqlite://PATH, sqlite::memory: or postgres://…)"
            )));
        };
        let memory = url.contains(":memory:") || url.contains("mode=memory");
        let mut options = AnyPoolOptions::new()
            .max_connections(if memory { 1 } else { max_connections.max(1) })
            .acquire_timeout(Duration::from_secs(30))
            // As the event store's pool: no ping before each use (sqlx pings on release
            // and drops a broken connection; the runner retries a failed page).
            .test_before_acquire(false);
        if memory {
            options = options
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None);
        }
        let pool = options.connect(url).await?;
        let db = Db { pool, backend };
        for ddl in BOOKKEEPING {
            sqlx::query(ddl).execute(&db.pool).await?;
        }
        Ok(db)
    }

    /// A fresh in-memory SQLite database (for a view as of a past position).
    pub async fn memory() -> Result<Db, ProjectionError> {
        Db::connect("sqlite::memory:", 1).await
    }

    /// The pool.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The backend.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A view's checkpoint: the position its tables reflect and the version that wrote
    /// them, `None` if it was never built.
    pub async fn checkpoint(&self, view: &str) -> Result<Option<(u64, i64)>, ProjectionError> {
        let row =
            sqlx::query("SELECT position, version FROM projection_checkpoints WHERE name = $1")
                .bind(view)
                .fetch_optional(&self.pool)
                .await?;
        row.map(|r| Ok((to_u64(r.try_get::<i64, _>(0)?), r.try_get::<i64, _>(1)?)))
            .transpose()
    }

    /// Every row of `table` as JSON objects, in a stable order (by their JSON text), so
    /// that two builds of a view compare equal row for row.
    pub async fn dump(&self, table: &str) -> Result<Vec<Map<String, Value>>, ProjectionError> {
        let rows = sqlx::query(&format!("SELECT * FROM {table}"))
            .fetch_all(&self.pool)
            .await?;
        let mut out: Vec<(String, Map<String, Value>)> = rows
            .iter()
            .map(|r| {
                let m = row_json(r);
                (Value::Object(m.clone()).to_string(), m)
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out.into_iter().map(|(_, m)| m).collect())
    }

    /// Whether `table` exists.
    pub async fn table_exists(&self, table: &str) -> Result<bool, ProjectionError> {
        let sql = match self.backend {
            Backend::Sqlite => {
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = $1"
            }
            Backend::Postgres => {
                "SELECT COUNT(*) FROM information_schema.tables \
                 WHERE table_schema = current_schema() AND table_name = $1"
            }
        };
        let n: i64 = sqlx::query_scalar(sql)
            .bind(table)
            .fetch_one(&self.pool)
            .await?;
        Ok(n > 0)
    }
}

/// Takes the view's checkpoint row for this transaction (creating it at position 0) and
/// returns its position: the first write of the transaction, so that in SQLite the
/// transaction holds the write lock from here on, and in PostgreSQL the row lock keeps a
/// second runner of the same view (another replica, a rebuild's swap) out until commit.
pub(crate) async fn claim_checkpoint(
    conn: &mut AnyConnection,
    view: &str,
    version: i64,
) -> Result<u64, ProjectionError> {
    let position: i64 = sqlx::query_scalar(
        "INSERT INTO projection_checkpoints (name, position, version, updated_at) \
         VALUES ($1, 0, $2, $3) \
         ON CONFLICT (name) DO UPDATE SET updated_at = projection_checkpoints.updated_at \
         RETURNING position",
    )
    .bind(view)
    .bind(version)
    .bind(now_micros())
    .fetch_one(&mut *conn)
    .await?;
    Ok(to_u64(position))
}

/// Saves the view's checkpoint inside the caller's transaction.
pub(crate) async fn save_checkpoint(
    conn: &mut AnyConnection,
    view: &str,
    position: u64,
    version: i64,
) -> Result<(), ProjectionError> {
    sqlx::query(
        "UPDATE projection_checkpoints SET position = $1, version = $2, updated_at = $3 WHERE name = $4",
    )
    .bind(to_i64(position))
    .bind(version)
    .bind(now_micros())
    .bind(view)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// A row as a JSON object: integers, reals, text and nulls by column name.
pub fn row_json(row: &AnyRow) -> Map<String, Value> {
    let mut out = Map::new();
    for (i, column) in row.columns().iter().enumerate() {
        let value = if let Ok(v) = row.try_get::<Option<i64>, _>(i) {
            v.map_or(Value::Null, Value::from)
        } else if let Ok(v) = row.try_get::<Option<f64>, _>(i) {
            v.map_or(Value::Null, Value::from)
        } else if let Ok(v) = row.try_get::<Option<String>, _>(i) {
            v.map_or(Value::Null, Value::from)
        } else {
            Value::Null
        };
        out.insert(column.name().to_owned(), value);
    }
    out
}

pub(crate) fn now_micros() -> i64 {
    insights_schemas::Timestamp::now().micros()
}

/// Positions are `u64` in the store and `BIGINT` here.
pub(crate) fn to_i64(position: u64) -> i64 {
    i64::try_from(position).unwrap_or(i64::MAX)
}

pub(crate) fn to_u64(position: i64) -> u64 {
    u64::try_from(position).unwrap_or(0)
}
