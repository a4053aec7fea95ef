//! The key store on a real SQLite file and the machine's PostgreSQL, beside the event
//! store: both sets of migrations share the database's migration table in either order,
//! keys are kept once per subject, and an erased key stays erased.

use insights_event_store::{EventStore, PostgresStore, SqliteStore};
use insights_privacy::vault::{KeyStore, StoredKey};
use insights_vault_store::SqlKeys;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

fn wrapped(n: u8) -> StoredKey {
    StoredKey::Wrapped([n; 12], vec![n; 40])
}

fn exercise(keys: &SqlKeys, tenant: &str) {
    let subject = |s: &str| (tenant.to_owned(), s.to_owned());
    assert_eq!(keys.key(tenant, "ana").expect("reads"), None);
    assert_eq!(
        keys.insert_key(tenant, "ana", wrapped(1)).expect("inserts"),
        wrapped(1)
    );
    // A second insert keeps the first key (two replicas racing for one subject).
    assert_eq!(
        keys.insert_key(tenant, "ana", wrapped(2)).expect("inserts"),
        wrapped(1)
    );
    let stored = keys
        .insert_keys(vec![
            (subject("ben"), wrapped(3)),
            (subject("ana"), wrapped(4)),
        ])
        .expect("inserts a batch");
    assert_eq!(stored, vec![wrapped(3), wrapped(1)]);
    assert_eq!(
        keys.keys(&[subject("ben"), subject("cy"), subject("ana")])
            .expect("reads a batch"),
        vec![Some(wrapped(3)), None, Some(wrapped(1))]
    );
    assert!(keys.erase_key(tenant, "ana").expect("erases"));
    assert!(!keys.erase_key(tenant, "ana").expect("erases again"));
    assert_eq!(
        keys.key(tenant, "ana").expect("reads"),
        Some(StoredKey::Erased)
    );
    // A subject erased before any key was made gets none afterwards.
    assert!(!keys.erase_key(tenant, "dee").expect("erases"));
    assert_eq!(
        keys.insert_key(tenant, "dee", wrapped(5)).expect("inserts"),
        StoredKey::Erased
    );
}

#[test]
fn keys_live_beside_the_event_store_in_sqlite() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("events.db").display());
    let rt = runtime();
    // The event store first, then the keys, then the event store again: each set of
    // migrations leaves the other's alone.
    rt.block_on(SqliteStore::open(&url, 2))
        .expect("opens the store");
    let keys = SqlKeys::open(&url).expect("opens the key store");
    exercise(&keys, "t1");
    drop(keys);
    let store = rt
        .block_on(SqliteStore::open(&url, 2))
        .expect("reopens the store after the key store's migrations");
    assert_eq!(rt.block_on(store.head()).expect("head").position, 0);
    let again = SqlKeys::open(&url).expect("reopens the key store");
    assert_eq!(again.key("t1", "ben").expect("reads"), Some(wrapped(3)));
}

#[test]
fn keys_live_beside_the_event_store_in_postgres() {
    let rt = runtime();
    let admin = "postgres://postgres@127.0.0.1:5432/test";
    let schema = format!("vault_keys_{}", std::process::id());
    let url = rt.block_on(async {
        use sqlx::Executor;
        let pool = sqlx::PgPool::connect(admin)
            .await
            .expect("the machine's PostgreSQL at 127.0.0.1:5432, database test");
        pool.execute(
            format!("DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}").as_str(),
        )
        .await
        .expect("creates a schema");
        format!("{admin}?options=-c%20search_path%3D{schema}")
    });
    // The keys first this time, then the event store.
    let keys = SqlKeys::open(&url).expect("opens the key store");
    exercise(&keys, "t2");
    let store = rt
        .block_on(async {
            let options: sqlx::postgres::PgConnectOptions = url.parse()?;
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(2)
                .connect_with(options)
                .await?;
            PostgresStore::from_pool(pool)
                .await
                .map_err(|e| sqlx::Error::Protocol(e.to_string()))
        })
        .expect("opens the event store after the key store's migrations");
    assert_eq!(rt.block_on(store.head()).expect("head").position, 0);
    drop(store);
    rt.block_on(async {
        use sqlx::Executor;
        let pool = sqlx::PgPool::connect(admin).await.expect("connects");
        pool.execute(format!("DROP SCHEMA {schema} CASCADE").as_str())
            .await
            .expect("drops the schema");
    });
}
