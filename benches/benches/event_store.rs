//! Event-store throughput: appends of 1 KB events in batches of 1, 100 and 1000 on both
//! backends, next to Message DB's `write_message` (the peer) and raw `COPY` of the same
//! rows (the limit) on the same PostgreSQL; then read and verify throughput.
//!
//! Run through `benches/run.sh`, which installs Message DB and creates the databases.
//! Environment:
//! - `INSIGHTS_BENCH_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/insights_bench`)
//! - `INSIGHTS_BENCH_MESSAGEDB_URL` (default `postgres://postgres@127.0.0.1:5432/message_store`);
//!   the Message DB peer is skipped with a message when it is not installed there.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use insights_benches::{event_1kb, event_1kb_pipeline_id};
use insights_event_store::{
    AppendBatch, EventData, EventFilter, EventStore, PostgresStore, SqliteStore,
};
use sqlx::Executor;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use tokio::runtime::Runtime;

const BATCHES: [usize; 3] = [1, 100, 1000];
const READ_EVENTS: usize = 50_000;

fn env_or(key: &str, default: &str) -> String {
    std::env::var(key).unwrap_or_else(|_| default.to_owned())
}

/// A SQLite store in a file of `dir`.
fn sqlite_store(rt: &Runtime, dir: &std::path::Path, file: &str) -> SqliteStore {
    rt.block_on(SqliteStore::open(
        &format!("sqlite://{}", dir.join(file).display()),
        4,
    ))
    .expect("sqlite store")
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// A PostgreSQL store in a fresh schema of the bench database.
async fn pg_store(schema: &str) -> (PostgresStore, PgPool) {
    let base: PgConnectOptions = env_or(
        "INSIGHTS_BENCH_DATABASE_URL",
        "postgres://postgres@127.0.0.1:5432/insights_bench",
    )
    .parse()
    .expect("valid URL");
    let admin = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(base.clone())
        .await
        .expect("bench database reachable (run benches/run.sh)");
    admin
        .execute(format!("DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}").as_str())
        .await
        .expect("fresh schema");
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .connect_with(base.options([("search_path", schema)]))
        .await
        .expect("connects");
    let store = PostgresStore::from_pool(pool.clone()).await.expect("store");
    (store, pool)
}

fn batch_of(n: usize, seq: &AtomicI64) -> Vec<EventData> {
    (0..n)
        .map(|_| event_1kb(seq.fetch_add(1, Ordering::Relaxed)))
        .collect()
}

fn appends(c: &mut Criterion) {
    let rt = runtime();
    let seq = Arc::new(AtomicI64::new(0));
    let dir = tempfile::tempdir().expect("temp dir");
    let sqlite = sqlite_store(&rt, dir.path(), "bench.db");
    let (pg, pg_pool) = rt.block_on(pg_store("bench_append"));
    rt.block_on(pg_pool.execute("CREATE TABLE copy_limit (LIKE events INCLUDING ALL)"))
        .expect("copy table");
    let message_db = rt.block_on(message_db_pool());
    let sqlite_limit = rt.block_on(sqlite_limit_pool(dir.path()));

    let mut group = c.benchmark_group("append_1kb");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(8));
    for &n in &BATCHES {
        group.throughput(Throughput::Elements(n as u64));
        let stores = [
            ("sqlite", Arc::new(sqlite.clone()) as Arc<dyn EventStore>),
            ("postgres", Arc::new(pg.clone())),
        ];
        bench_store_appends(&mut group, &rt, &stores, n, || {
            AppendBatch::new(batch_of(n, &seq))
        });
        group.bench_function(format!("sqlite_insert_limit/batch_{n}"), |b| {
            b.to_async(&rt).iter_batched(
                || batch_of(n, &seq),
                |events| insert_rows(&sqlite_limit, events),
                BatchSize::PerIteration,
            )
        });
        group.bench_function(format!("postgres_copy_limit/batch_{n}"), |b| {
            b.to_async(&rt).iter_batched(
                || batch_of(n, &seq),
                |events| copy_rows(&pg_pool, events),
                BatchSize::PerIteration,
            )
        });
        if let Some(mdb) = &message_db {
            group.bench_function(format!("message_db_write_message/batch_{n}"), |b| {
                b.to_async(&rt).iter_batched(
                    || batch_of(n, &seq),
                    |events| write_messages(mdb, events),
                    BatchSize::PerIteration,
                )
            });
        }
    }
    group.finish();

    // The same appends with ids derived as the pipeline derives them (time-ordered).
    let ordered = AtomicI64::new(0);
    let mut group = c.benchmark_group("append_1kb_pipeline_ids");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(8));
    for &n in &BATCHES[1..] {
        group.throughput(Throughput::Elements(n as u64));
        let stores = [
            ("sqlite", Arc::new(sqlite.clone()) as Arc<dyn EventStore>),
            ("postgres", Arc::new(pg.clone())),
        ];
        bench_store_appends(&mut group, &rt, &stores, n, || {
            AppendBatch::new(
                (0..n)
                    .map(|_| event_1kb_pipeline_id(ordered.fetch_add(1, Ordering::Relaxed)))
                    .collect(),
            )
        });
    }
    group.finish();
}

/// Benchmarks appending batches made by `make` to each store, as `STORE/batch_N`.
fn bench_store_appends(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    rt: &Runtime,
    stores: &[(&str, Arc<dyn EventStore>)],
    n: usize,
    make: impl Fn() -> AppendBatch,
) {
    for (name, store) in stores {
        group.bench_function(format!("{name}/batch_{n}"), |b| {
            b.to_async(rt).iter_batched(
                &make,
                |batch| {
                    let store = Arc::clone(store);
                    async move { store.append(batch).await.expect("appends") }
                },
                BatchSize::PerIteration,
            )
        });
    }
}

async fn message_db_pool() -> Option<PgPool> {
    let url = env_or(
        "INSIGHTS_BENCH_MESSAGEDB_URL",
        "postgres://postgres@127.0.0.1:5432/message_store",
    );
    let options: PgConnectOptions = url.parse().ok()?;
    let pool = match PgPoolOptions::new()
        .max_connections(2)
        .connect_with(options.options([("search_path", "message_store,public")]))
        .await
    {
        Ok(p) => p,
        Err(e) => {
            eprintln!(
                "Message DB peer skipped: cannot connect to {url}: {e} (benches/run.sh installs it)"
            );
            return None;
        }
    };
    let installed: bool =
        sqlx::query_scalar("SELECT to_regproc('message_store.write_message') IS NOT NULL")
            .fetch_one(&pool)
            .await
            .unwrap_or(false);
    if !installed {
        eprintln!(
            "Message DB peer skipped: write_message is not installed at {url} (benches/run.sh installs it)"
        );
        return None;
    }
    Some(pool)
}

/// Message DB's way to write a batch: `write_message` per message in one transaction.
async fn write_messages(pool: &PgPool, events: Vec<EventData>) {
    let mut tx = pool.begin().await.expect("begins");
    for e in &events {
        let data = std::str::from_utf8(&e.payload).expect("json payload");
        let metadata = format!(
            r#"{{"correlationStreamName":"{}","causationMessageStreamName":"{}"}}"#,
            e.correlation_id,
            e.causation_id.as_deref().unwrap_or("")
        );
        sqlx::query("SELECT message_store.write_message($1, $2, $3, $4::jsonb, $5::jsonb)")
            .bind(e.event_id.to_string())
            .bind(format!("conversation-{}", e.stream_id))
            .bind(&e.event_type)
            .bind(data)
            .bind(metadata)
            .execute(&mut *tx)
            .await
            .expect("write_message");
    }
    tx.commit().await.expect("commits");
}

static COPY_POSITION: AtomicI64 = AtomicI64::new(0);

/// The limit: the same rows streamed with COPY into an identically indexed table, with no
/// locking, lookups or hashing.
async fn copy_rows(pool: &PgPool, events: Vec<EventData>) {
    let mut text = String::with_capacity(events.len() * 2400);
    for e in &events {
        let position = COPY_POSITION.fetch_add(1, Ordering::Relaxed) + 1;
        text.push_str(&format!(
            "{position}\t{}\t{}\t{position}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t\\\\x{}\t\\\\x{}\n",
            e.event_id,
            e.stream_id,
            e.event_type,
            e.schema_version,
            e.causation_id.as_deref().unwrap_or("\\N"),
            e.correlation_id,
            e.occurred_at,
            e.occurred_at,
            e.producer,
            e.producer_version,
            hex::encode(&e.payload),
            hex::encode([0u8; 32]),
        ));
    }
    let mut conn = pool.acquire().await.expect("connection");
    let mut tx = sqlx::Connection::begin(&mut *conn).await.expect("begins");
    let mut copy = tx
        .copy_in_raw(
            "COPY copy_limit (position, event_id, stream_id, stream_version, event_type, schema_version, causation_id, \
             correlation_id, occurred_at, recorded_at, producer, producer_version, payload, hash) FROM STDIN",
        )
        .await
        .expect("copy in");
    copy.send(text.as_bytes()).await.expect("sends");
    copy.finish().await.expect("finishes");
    tx.commit().await.expect("commits");
}

/// The SQLite limit: the same rows, multi-row INSERTs in one transaction, into a table
/// with the store's columns and indexes and the store's pragmas, with no lookups, locking
/// or hashing.
async fn sqlite_limit_pool(dir: &std::path::Path) -> sqlx::SqlitePool {
    use sqlx::sqlite::{
        SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
    };
    let options = SqliteConnectOptions::new()
        .filename(dir.join("limit.db"))
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .pragma("cache_size", "-65536")
        .pragma("mmap_size", "268435456");
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .expect("limit database");
    pool.execute(
        "CREATE TABLE events (position INTEGER PRIMARY KEY, event_id BLOB NOT NULL UNIQUE, stream_id TEXT NOT NULL, \
         stream_version INTEGER NOT NULL, event_type TEXT NOT NULL, schema_version INTEGER NOT NULL, causation_id TEXT, \
         correlation_id TEXT NOT NULL, occurred_at INTEGER NOT NULL, recorded_at INTEGER NOT NULL, producer TEXT NOT NULL, \
         producer_version TEXT NOT NULL, payload BLOB NOT NULL, hash BLOB NOT NULL, UNIQUE (stream_id, stream_version)); \
         CREATE INDEX events_by_type ON events (event_type, position);",
    )
    .await
    .expect("limit table");
    pool
}

static LIMIT_POSITION: AtomicI64 = AtomicI64::new(0);

async fn insert_rows(pool: &sqlx::SqlitePool, events: Vec<EventData>) {
    let mut tx = pool.begin().await.expect("begins");
    for chunk in events.chunks(100) {
        let sql = format!(
            "INSERT INTO events VALUES {}",
            vec!["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"; chunk.len()].join(", ")
        );
        let mut q = sqlx::query(&sql);
        for e in chunk {
            let position = LIMIT_POSITION.fetch_add(1, Ordering::Relaxed) + 1;
            q = q
                .bind(position)
                .bind(e.event_id)
                .bind(e.stream_id.as_str())
                .bind(position)
                .bind(e.event_type.as_str())
                .bind(e.schema_version)
                .bind(e.causation_id.as_deref())
                .bind(e.correlation_id.as_str())
                .bind(e.occurred_at)
                .bind(e.occurred_at)
                .bind(e.producer.as_str())
                .bind(e.producer_version.as_str())
                .bind(e.payload.as_slice())
                .bind([0u8; 32].as_slice());
        }
        q.execute(&mut *tx).await.expect("inserts");
    }
    tx.commit().await.expect("commits");
}

fn reads(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("temp dir");
    let sqlite = sqlite_store(&rt, dir.path(), "read.db");
    let (pg, _pool) = rt.block_on(pg_store("bench_read"));
    let stores: [(&str, Arc<dyn EventStore>); 2] =
        [("sqlite", Arc::new(sqlite)), ("postgres", Arc::new(pg))];
    let seq = AtomicI64::new(0);
    for (_, store) in &stores {
        rt.block_on(async {
            for _ in 0..READ_EVENTS / 1000 {
                store
                    .append(AppendBatch::new(batch_of(1000, &seq)))
                    .await
                    .expect("fills");
            }
        });
    }
    let mut group = c.benchmark_group("read_1kb");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10))
        .throughput(Throughput::Elements(READ_EVENTS as u64));
    for (name, store) in &stores {
        group.bench_function(format!("{name}/read_all_{READ_EVENTS}"), |b| {
            b.to_async(&rt).iter(|| async {
                let mut after = 0;
                let mut n = 0;
                loop {
                    let page = store
                        .read_all(after, 5000, &EventFilter::All)
                        .await
                        .expect("reads");
                    let Some(last) = page.last() else { break };
                    after = last.position;
                    n += page.len();
                }
                assert_eq!(n, READ_EVENTS);
            })
        });
        group.bench_function(format!("{name}/verify_{READ_EVENTS}"), |b| {
            b.to_async(&rt).iter(|| async {
                let r = store.verify().await.expect("verifies");
                assert!(r.is_intact());
            })
        });
    }
    group.finish();
}

criterion_group!(benches, appends, reads);
criterion_main!(benches);
