//! The event-store contract: one suite, run against SQLite and the machine's PostgreSQL.
//!
//! PostgreSQL is reached at `INSIGHTS_TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`); each test works in a schema of its own,
//! dropped when it passes. A PostgreSQL that cannot be reached fails the tests: the
//! contract is only proven against a real server.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use insights_event_store::{
    AppendBatch, ChainBreak, ChainBreakKind, EventData, EventFilter, EventStore, ExpectedVersion,
    PostgresStore, SqliteStore, StoreError, read_covered, subscribe,
};
use sqlx::Executor;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;

#[allow(clippy::large_enum_variant)] // one per test; size does not matter
enum Fixture {
    Sqlite {
        store: SqliteStore,
        url: String,
        _dir: tempfile::TempDir,
    },
    Postgres {
        store: PostgresStore,
        options: PgConnectOptions,
        schema: String,
    },
}

fn pg_url() -> String {
    std::env::var("INSIGHTS_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

impl Fixture {
    async fn sqlite() -> Fixture {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("events.db").display());
        let store = SqliteStore::open(&url, 8)
            .await
            .expect("opens sqlite store");
        Fixture::Sqlite {
            store,
            url,
            _dir: dir,
        }
    }

    async fn postgres() -> Fixture {
        let schema = format!("contract_{}", Uuid::new_v4().simple());
        let base: PgConnectOptions = pg_url().parse().expect("valid URL");
        let admin = PgPoolOptions::new()
            .max_connections(1)
            .connect_with(base.clone())
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "PostgreSQL at {} is required for the contract tests: {e}",
                    pg_url()
                )
            });
        admin
            .execute(format!("CREATE SCHEMA {schema}").as_str())
            .await
            .expect("creates schema");
        admin.close().await;
        let options = base.options([("search_path", schema.as_str())]);
        let store = Self::pg_instance(&options).await;
        Fixture::Postgres {
            store,
            options,
            schema,
        }
    }

    async fn pg_instance(options: &PgConnectOptions) -> PostgresStore {
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .connect_with(options.clone())
            .await
            .expect("connects");
        PostgresStore::from_pool(pool)
            .await
            .expect("opens postgres store")
    }

    fn store(&self) -> Arc<dyn EventStore> {
        match self {
            Fixture::Sqlite { store, .. } => Arc::new(store.clone()),
            Fixture::Postgres { store, .. } => Arc::new(store.clone()),
        }
    }

    /// A second store on the same database, as another process would open it.
    async fn another_instance(&self) -> Arc<dyn EventStore> {
        match self {
            Fixture::Sqlite { url, .. } => {
                Arc::new(SqliteStore::open(url, 4).await.expect("opens"))
            }
            Fixture::Postgres { options, .. } => Arc::new(Self::pg_instance(options).await),
        }
    }

    async fn exec(&self, sql: &str) -> Result<(), sqlx::Error> {
        match self {
            Fixture::Sqlite { store, .. } => store.pool().execute(sql).await.map(|_| ()),
            Fixture::Postgres { store, .. } => store.pool().execute(sql).await.map(|_| ()),
        }
    }

    /// What a DBA with full rights would do before tampering: drop the append-only guard.
    async fn drop_append_only_guard(&self) {
        let sql = match self {
            Fixture::Sqlite { .. } => {
                "DROP TRIGGER events_no_update; DROP TRIGGER events_no_delete;"
            }
            Fixture::Postgres { .. } => "ALTER TABLE events DISABLE TRIGGER USER",
        };
        self.exec(sql).await.expect("drops the guard");
    }

    /// Writes a row to a caller-owned table and saves a checkpoint in one transaction.
    async fn write_view_and_checkpoint(&self, name: &str, position: u64, commit: bool) {
        match self {
            Fixture::Sqlite { store, .. } => {
                let mut tx = store.pool().begin().await.expect("begins");
                sqlx::query("INSERT INTO view_rows (position) VALUES ($1)")
                    .bind(position as i64)
                    .execute(&mut *tx)
                    .await
                    .expect("view write");
                SqliteStore::save_checkpoint_in(&mut tx, name, position)
                    .await
                    .expect("checkpoint");
                if commit {
                    tx.commit().await.expect("commits")
                } else {
                    tx.rollback().await.expect("rolls back")
                }
            }
            Fixture::Postgres { store, .. } => {
                let mut tx = store.pool().begin().await.expect("begins");
                sqlx::query("INSERT INTO view_rows (position) VALUES ($1)")
                    .bind(position as i64)
                    .execute(&mut *tx)
                    .await
                    .expect("view write");
                PostgresStore::save_checkpoint_in(&mut tx, name, position)
                    .await
                    .expect("checkpoint");
                if commit {
                    tx.commit().await.expect("commits")
                } else {
                    tx.rollback().await.expect("rolls back")
                }
            }
        }
    }

    async fn count_view_rows(&self) -> i64 {
        match self {
            Fixture::Sqlite { store, .. } => sqlx::query_scalar("SELECT count(*) FROM view_rows")
                .fetch_one(store.pool())
                .await
                .expect("counts"),
            Fixture::Postgres { store, .. } => sqlx::query_scalar("SELECT count(*) FROM view_rows")
                .fetch_one(store.pool())
                .await
                .expect("counts"),
        }
    }

    async fn cleanup(self) {
        if let Fixture::Postgres { store, schema, .. } = self {
            let pool = store.pool().clone();
            drop(store);
            let _ = pool
                .execute(format!("DROP SCHEMA {schema} CASCADE").as_str())
                .await;
            pool.close().await;
        }
    }
}

fn ev(stream: &str, event_type: &str) -> EventData {
    EventData {
        event_id: Uuid::new_v4(),
        stream_id: stream.to_owned(),
        event_type: event_type.to_owned(),
        schema_version: 1,
        causation_id: Some("cause".into()),
        correlation_id: "corr".into(),
        occurred_at: 1_790_000_000_000_000,
        producer: "contract".into(),
        producer_version: "1".into(),
        payload: format!(r#"{{"stream":"{stream}"}}"#).into_bytes(),
    }
}

async fn append(store: &dyn EventStore, events: Vec<EventData>) -> Vec<u64> {
    store
        .append(AppendBatch::new(events))
        .await
        .expect("appends")
        .iter()
        .map(|a| a.position)
        .collect()
}

async fn all_positions(store: &dyn EventStore) -> Vec<u64> {
    store
        .read_all(0, usize::MAX >> 1, &EventFilter::All)
        .await
        .expect("reads")
        .iter()
        .map(|e| e.position)
        .collect()
}

// ---- the contract ---------------------------------------------------------------------------

async fn positions_are_gapless_and_versions_count_per_stream(fx: &Fixture) {
    let store = fx.store();
    assert_eq!(store.head().await.expect("head").position, 0);
    let first = store
        .append(AppendBatch::new(vec![
            ev("a", "T"),
            ev("b", "T"),
            ev("a", "T"),
        ]))
        .await
        .expect("appends");
    let got: Vec<(u64, u64, bool)> = first
        .iter()
        .map(|r| (r.position, r.stream_version, r.duplicate))
        .collect();
    assert_eq!(got, vec![(1, 1, false), (2, 1, false), (3, 2, false)]);
    let second = store
        .append(AppendBatch::new(vec![ev("b", "U")]))
        .await
        .expect("appends");
    assert_eq!((second[0].position, second[0].stream_version), (4, 2));
    assert_eq!(store.head().await.expect("head").position, 4);
    assert_eq!(store.stream_version("a").await.expect("version"), Some(2));
    assert_eq!(store.stream_version("nope").await.expect("version"), None);
    assert!(
        store
            .append(AppendBatch::new(vec![]))
            .await
            .expect("empty ok")
            .is_empty()
    );
}

async fn a_batch_with_a_failed_expectation_writes_nothing(fx: &Fixture) {
    let store = fx.store();
    append(&*store, vec![ev("a", "T")]).await;
    let batch =
        AppendBatch::new(vec![ev("b", "T"), ev("a", "T")]).expect("a", ExpectedVersion::NoStream);
    let err = store.append(batch).await.expect_err("conflict");
    assert!(
        matches!(err, StoreError::WrongExpectedVersion { ref stream_id, actual: Some(1), .. } if stream_id == "a"),
        "{err}"
    );
    assert_eq!(all_positions(&*store).await, vec![1]);
    assert_eq!(store.stream_version("b").await.expect("version"), None);
    // The next append takes position 2: the failed one left no hole.
    assert_eq!(append(&*store, vec![ev("b", "T")]).await, vec![2]);
}

async fn expected_versions_are_checked(fx: &Fixture) {
    let store = fx.store();
    let with = |e: EventData, x: ExpectedVersion| {
        let s = e.stream_id.clone();
        AppendBatch::new(vec![e]).expect(s, x)
    };
    store
        .append(with(ev("s", "T"), ExpectedVersion::NoStream))
        .await
        .expect("new stream");
    store
        .append(with(ev("s", "T"), ExpectedVersion::Exact(1)))
        .await
        .expect("at 1");
    store
        .append(with(ev("s", "T"), ExpectedVersion::StreamExists))
        .await
        .expect("exists");
    store
        .append(with(ev("s", "T"), ExpectedVersion::Any))
        .await
        .expect("any");
    for (x, actual) in [
        (ExpectedVersion::Exact(2), Some(4)),
        (ExpectedVersion::NoStream, Some(4)),
    ] {
        match store.append(with(ev("s", "T"), x)).await {
            Err(StoreError::WrongExpectedVersion { actual: a, .. }) => assert_eq!(a, actual),
            other => panic!("expected a conflict for {x}, got {other:?}"),
        }
    }
    match store
        .append(with(ev("t", "T"), ExpectedVersion::StreamExists))
        .await
    {
        Err(StoreError::WrongExpectedVersion { actual: None, .. }) => {}
        other => panic!("expected a conflict, got {other:?}"),
    }
    // Two writers racing on the same expected version: exactly one wins.
    let (a, b) = tokio::join!(
        store.append(with(ev("s", "T"), ExpectedVersion::Exact(4))),
        store.append(with(ev("s", "T"), ExpectedVersion::Exact(4))),
    );
    assert_eq!(
        usize::from(a.is_ok()) + usize::from(b.is_ok()),
        1,
        "{a:?} {b:?}"
    );
    assert_eq!(store.stream_version("s").await.expect("version"), Some(5));
}

async fn a_retried_batch_is_a_no_op_forever(fx: &Fixture) {
    let store = fx.store();
    let batch =
        AppendBatch::new(vec![ev("a", "T"), ev("b", "T")]).expect("a", ExpectedVersion::NoStream);
    let first = store.append(batch.clone()).await.expect("appends");
    append(&*store, vec![ev("c", "T")]).await;
    // The retry passes (its expectation held the first time), writes nothing, and answers
    // with the stored positions.
    let retry = store.append(batch.clone()).await.expect("retry is a no-op");
    assert!(retry.iter().all(|r| r.duplicate));
    assert_eq!(
        retry
            .iter()
            .map(|r| (r.position, r.stream_version))
            .collect::<Vec<_>>(),
        first
            .iter()
            .map(|r| (r.position, r.stream_version))
            .collect::<Vec<_>>()
    );
    assert_eq!(store.head().await.expect("head").position, 3);
    // Permanent: another instance (a restarted process) sees the same.
    let other = fx.another_instance().await;
    let again = other
        .append(batch)
        .await
        .expect("retry from another instance");
    assert!(again.iter().all(|r| r.duplicate));
    assert_eq!(all_positions(&*store).await, vec![1, 2, 3]);
}

async fn a_partly_stored_batch_appends_only_the_new_events(fx: &Fixture) {
    let store = fx.store();
    let old = ev("a", "T");
    append(&*store, vec![old.clone()]).await;
    let fresh = ev("a", "T");
    let results = store
        .append(AppendBatch::new(vec![
            old.clone(),
            fresh.clone(),
            fresh.clone(),
        ]))
        .await
        .expect("appends");
    let got: Vec<(u64, bool)> = results.iter().map(|r| (r.position, r.duplicate)).collect();
    assert_eq!(got, vec![(1, true), (2, false), (2, true)]);
    assert_eq!(all_positions(&*store).await, vec![1, 2]);
    assert!(store.verify().await.expect("verifies").is_intact());
}

async fn reads_by_position_type_and_stream(fx: &Fixture) {
    let store = fx.store();
    let events: Vec<EventData> = (0..10)
        .map(|i| {
            ev(
                if i % 2 == 0 { "even" } else { "odd" },
                if i % 3 == 0 { "Fizz" } else { "Plain" },
            )
        })
        .collect();
    append(&*store, events.clone()).await;
    let page = store
        .read_all(3, 4, &EventFilter::All)
        .await
        .expect("reads");
    assert_eq!(
        page.iter().map(|e| e.position).collect::<Vec<_>>(),
        vec![4, 5, 6, 7]
    );
    assert_eq!(page[0].data, events[3]);
    let fizz = store
        .read_all(0, 100, &EventFilter::Types(vec!["Fizz".into()]))
        .await
        .expect("reads");
    assert_eq!(
        fizz.iter().map(|e| e.position).collect::<Vec<_>>(),
        vec![1, 4, 7, 10]
    );
    let none = store
        .read_all(0, 100, &EventFilter::Types(vec!["Nothing".into()]))
        .await
        .expect("reads");
    assert!(none.is_empty());
    let odd = store.read_stream("odd", 2, 100).await.expect("reads");
    assert_eq!(
        odd.iter().map(|e| e.stream_version).collect::<Vec<_>>(),
        vec![3, 4, 5]
    );
    assert_eq!(
        odd.iter().map(|e| e.position).collect::<Vec<_>>(),
        vec![6, 8, 10]
    );
    assert!(
        store
            .read_stream("missing", 0, 10)
            .await
            .expect("reads")
            .is_empty()
    );
}

async fn a_subscription_catches_up_then_goes_live(fx: &Fixture) {
    let store = fx.store();
    append(&*store, (0..7).map(|_| ev("s", "T")).collect()).await;
    let mut sub = subscribe(Arc::clone(&store), 2, EventFilter::All).with_page_size(2);
    for expected in 3..=7 {
        assert_eq!(sub.next().await.expect("next").position, expected);
    }
    let writer = Arc::clone(&store);
    let task = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        append(&*writer, vec![ev("s", "T"), ev("s", "Other"), ev("s", "T")]).await
    });
    let live = tokio::time::timeout(Duration::from_secs(5), async {
        let mut got = Vec::new();
        for _ in 0..3 {
            got.push(sub.next().await.expect("next").position);
        }
        got
    })
    .await
    .expect("live events arrive");
    assert_eq!(live, vec![8, 9, 10]);
    task.await.expect("writer");
    let mut typed = subscribe(store, 0, EventFilter::Types(vec!["Other".into()]));
    assert_eq!(typed.next().await.expect("next").position, 9);
    assert!(typed.try_next().await.expect("reads").is_none());
}

/// A filtered read says how far it is complete: past the other types' events up to the
/// head when the read is not full, only up to its last event when it is.
async fn a_filtered_read_covers_up_to_the_head(fx: &Fixture) {
    let store = fx.store();
    let other = |n| ["A", "B", "A", "A", "B", "A"][n];
    append(&*store, (0..6).map(|n| ev("s", other(n))).collect()).await;
    let b = EventFilter::Types(vec!["B".into()]);
    let positions = |events: &[insights_event_store::RecordedEvent]| {
        events.iter().map(|e| e.position).collect::<Vec<_>>()
    };
    let (events, covered) = read_covered(&*store, 0, 10, &b).await.expect("reads");
    assert_eq!((positions(&events), covered), (vec![2, 5], 6));
    let (events, covered) = read_covered(&*store, 0, 1, &b).await.expect("reads");
    assert_eq!((positions(&events), covered), (vec![2], 2));
    let (events, covered) = read_covered(&*store, 5, 10, &b).await.expect("reads");
    assert_eq!((positions(&events), covered), (vec![], 6));
    let none = EventFilter::Types(vec!["C".into()]);
    let (events, covered) = read_covered(&*store, 0, 10, &none).await.expect("reads");
    assert_eq!((positions(&events), covered), (vec![], 6));
}

async fn a_subscription_sees_another_instances_appends(fx: &Fixture) {
    let store = fx.store();
    let other = fx.another_instance().await;
    let mut sub =
        subscribe(store, 0, EventFilter::All).with_poll_interval(Duration::from_millis(200));
    let task = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        append(&*other, vec![ev("x", "T")]).await
    });
    let e = tokio::time::timeout(Duration::from_secs(5), sub.next())
        .await
        .expect("arrives")
        .expect("reads");
    assert_eq!(e.position, 1);
    task.await.expect("writer");
}

async fn checkpoints_commit_and_roll_back_with_the_callers_writes(fx: &Fixture) {
    let store = fx.store();
    fx.exec("CREATE TABLE view_rows (position BIGINT NOT NULL)")
        .await
        .expect("view table");
    assert_eq!(store.checkpoint("proj").await.expect("reads"), None);
    store.save_checkpoint("proj", 3).await.expect("saves");
    assert_eq!(store.checkpoint("proj").await.expect("reads"), Some(3));
    fx.write_view_and_checkpoint("proj", 7, false).await;
    assert_eq!(store.checkpoint("proj").await.expect("reads"), Some(3));
    assert_eq!(fx.count_view_rows().await, 0);
    fx.write_view_and_checkpoint("proj", 7, true).await;
    assert_eq!(store.checkpoint("proj").await.expect("reads"), Some(7));
    assert_eq!(fx.count_view_rows().await, 1);
    assert_eq!(store.checkpoint("other").await.expect("reads"), None);
}

async fn concurrent_writers_leave_no_gaps(fx: &Fixture) {
    let store = fx.store();
    let other = fx.another_instance().await;
    let mut tasks = Vec::new();
    for w in 0..8u32 {
        let store = if w % 2 == 0 {
            Arc::clone(&store)
        } else {
            Arc::clone(&other)
        };
        tasks.push(tokio::spawn(async move {
            let mut written = 0usize;
            for b in 0..10u32 {
                let stream = format!("w{w}");
                let mut batch = AppendBatch::new((0..5).map(|_| ev(&stream, "T")).collect());
                if b % 3 == 2 {
                    // A batch that must fail and roll back; it may take no position.
                    batch = batch.expect(stream, ExpectedVersion::NoStream);
                    assert!(store.append(batch).await.is_err());
                } else {
                    written += store.append(batch).await.expect("appends").len();
                }
            }
            written
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.expect("writer");
    }
    let positions = all_positions(&*store).await;
    assert_eq!(positions, (1..=total as u64).collect::<Vec<_>>());
    let report = store.verify().await.expect("verifies");
    assert!(report.is_intact(), "{:?}", report.broken);
    assert_eq!(report.events, total as u64);
    for w in 0..8 {
        let versions: Vec<u64> = store
            .read_stream(&format!("w{w}"), 0, 1000)
            .await
            .expect("reads")
            .iter()
            .map(|e| e.stream_version)
            .collect();
        assert_eq!(versions, (1..=versions.len() as u64).collect::<Vec<_>>());
    }
}

async fn the_database_refuses_updates_and_deletes(fx: &Fixture) {
    let store = fx.store();
    append(&*store, vec![ev("a", "T"), ev("a", "T")]).await;
    for sql in [
        "UPDATE events SET producer = 'mallory' WHERE position = 1",
        "DELETE FROM events WHERE position = 2",
    ] {
        let err = fx.exec(sql).await.expect_err("refused");
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }
    assert!(store.verify().await.expect("verifies").is_intact());
}

async fn verify_reports_an_intact_log(fx: &Fixture) {
    let store = fx.store();
    let empty = store.verify().await.expect("verifies");
    assert!(empty.is_intact());
    assert_eq!(empty.events, 0);
    append(&*store, vec![ev("a", "A"), ev("b", "B"), ev("a", "A")]).await;
    let r = store.verify().await.expect("verifies");
    assert!(r.is_intact());
    assert_eq!((r.events, r.first_position, r.last_position), (3, 1, 3));
    assert_eq!(r.by_type.get("A"), Some(&2));
    assert_eq!(r.head_hash, store.head().await.expect("head").hash);
}

/// Each way of tampering, on a fresh log of 10 events, is found at its position.
async fn tampering_is_found_at_its_position(fx: &Fixture) {
    let cases: [(&str, &[&str], ChainBreak); 6] = [
        (
            "edited payload",
            &["UPDATE events SET correlation_id = 'forged' WHERE position = 4"],
            ChainBreak {
                position: 4,
                kind: ChainBreakKind::HashMismatch,
            },
        ),
        (
            "deleted row",
            &["DELETE FROM events WHERE position = 6"],
            ChainBreak {
                position: 6,
                kind: ChainBreakKind::Missing,
            },
        ),
        (
            "reordered rows",
            &[
                "UPDATE events SET position = -1 WHERE position = 3",
                "UPDATE events SET position = 3 WHERE position = 2",
                "UPDATE events SET position = 2 WHERE position = -1",
            ],
            ChainBreak {
                position: 2,
                kind: ChainBreakKind::HashMismatch,
            },
        ),
        (
            "truncated tail",
            &["DELETE FROM events WHERE position >= 9"],
            ChainBreak {
                position: 9,
                kind: ChainBreakKind::Missing,
            },
        ),
        (
            // Rows the head never covered: written around the store, or the head moved back.
            "rows beyond the head",
            &[
                "UPDATE store_head SET position = 8, hash = (SELECT hash FROM events WHERE position = 8)",
            ],
            ChainBreak {
                position: 9,
                kind: ChainBreakKind::HeadMismatch,
            },
        ),
        (
            "replaced hash",
            &[
                "UPDATE events SET hash = (SELECT hash FROM events WHERE position = 1) WHERE position = 7",
            ],
            ChainBreak {
                position: 7,
                kind: ChainBreakKind::HashMismatch,
            },
        ),
    ];
    for (what, statements, expected) in cases {
        let fresh = match fx {
            Fixture::Sqlite { .. } => Fixture::sqlite().await,
            Fixture::Postgres { .. } => Fixture::postgres().await,
        };
        let store = fresh.store();
        append(
            &*store,
            (0..10).map(|i| ev(&format!("s{}", i % 3), "T")).collect(),
        )
        .await;
        assert!(store.verify().await.expect("verifies").is_intact());
        fresh.drop_append_only_guard().await;
        for sql in statements {
            fresh
                .exec(sql)
                .await
                .unwrap_or_else(|e| panic!("{what}: {sql}: {e}"));
        }
        let report = store.verify().await.expect("verifies");
        assert_eq!(report.broken, Some(expected), "{what}");
        fresh.cleanup().await;
    }
}

async fn invalid_events_are_rejected(fx: &Fixture) {
    let store = fx.store();
    let mut bad = ev("", "T");
    assert!(matches!(
        store.append(AppendBatch::new(vec![bad.clone()])).await,
        Err(StoreError::Invalid(_))
    ));
    bad.stream_id = "s".into();
    bad.event_type.clear();
    assert!(matches!(
        store.append(AppendBatch::new(vec![bad])).await,
        Err(StoreError::Invalid(_))
    ));
    assert_eq!(store.head().await.expect("head").position, 0);
}

async fn payloads_and_optional_fields_round_trip_exactly(fx: &Fixture) {
    let store = fx.store();
    let mut a = ev("s", "T");
    a.payload = (0..=255u8).collect();
    a.causation_id = None;
    let mut b = ev("s", "T");
    b.payload = Vec::new();
    b.stream_id = "strömung 🚀".into();
    append(&*store, vec![a.clone(), b.clone()]).await;
    let got = store
        .read_all(0, 10, &EventFilter::All)
        .await
        .expect("reads");
    assert_eq!(got[0].data, a);
    assert_eq!(got[1].data, b);
    let ids: HashSet<Uuid> = got.iter().map(|e| e.data.event_id).collect();
    assert_eq!(ids.len(), 2);
}

macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let fx = super::Fixture::sqlite().await;
                    super::$name(&fx).await;
                    fx.cleanup().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let fx = super::Fixture::postgres().await;
                    super::$name(&fx).await;
                    fx.cleanup().await;
                }
            )*
        }
    };
}

contract!(
    positions_are_gapless_and_versions_count_per_stream,
    a_batch_with_a_failed_expectation_writes_nothing,
    expected_versions_are_checked,
    a_retried_batch_is_a_no_op_forever,
    a_partly_stored_batch_appends_only_the_new_events,
    reads_by_position_type_and_stream,
    a_subscription_catches_up_then_goes_live,
    a_filtered_read_covers_up_to_the_head,
    a_subscription_sees_another_instances_appends,
    checkpoints_commit_and_roll_back_with_the_callers_writes,
    concurrent_writers_leave_no_gaps,
    the_database_refuses_updates_and_deletes,
    verify_reports_an_intact_log,
    tampering_is_found_at_its_position,
    invalid_events_are_rejected,
    payloads_and_optional_fields_round_trip_exactly,
);
