//! A key-store outage in the middle of the work: the vault's key table (on the store's
//! PostgreSQL) goes away while the privacy processor seals values for customers it has not
//! seen, and comes back a few seconds later. The batch in hand waits (a dependency failure,
//! retried with backoff) and completes after the recovery: every interaction scrubbed
//! exactly once, nothing dead-lettered.

use std::path::Path;
use std::time::{Duration, Instant};

use insights_event_store::{EventFilter, EventStore, PostgresStore};

mod common;
use common::{free_port, spawn_run};

const N: usize = 1_500;

async fn count(store: &dyn EventStore, event_type: &str) -> usize {
    let filter = EventFilter::Types(vec![event_type.into()]);
    let mut n = 0;
    let mut from = 0;
    loop {
        let page = store
            .read_all(from, 5_000, &filter)
            .await
            .expect("reads the store");
        let Some(last) = page.last() else {
            return n;
        };
        from = last.position;
        n += page.len();
    }
}

/// The dependency failures the privacy worker has retried, from its /metrics.
fn dependency_retries(port: u16) -> u64 {
    common::metric_sum(port, "insights_retries_total", "\"dependency\"")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_store_outage_holds_the_batch_and_loses_nothing() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root");
    let dir = tempfile::tempdir().expect("temp dir");
    // The shipped topology with small privacy batches, so that most batches are still to be
    // processed (and need the key store) when the outage begins.
    let topology = std::fs::read_to_string(root.join("topology.toml")).expect("reads");
    assert!(topology.contains("[processors.privacy]\n"));
    let topology = topology.replacen(
        "[processors.privacy]\n",
        "[processors.privacy]\nbatch_size = 50\n",
        1,
    );
    std::fs::write(dir.path().join("topology.toml"), topology).expect("writes the topology");
    let input = dir.path().join("input.jsonl");
    let lines: Vec<String> = (0..N)
        .map(|i| {
            serde_json::json!({
                "interaction_id": format!("m{i}"), "conversation_id": format!("conv-{i}"),
                "customer_id": format!("cust-{i}"), "tenant_id": "acme", "channel": "email",
                "language": "en", "sent_at": "2026-11-20T10:00:00Z",
                "text": format!("Hello, this is Maria Schmidt, write to maria.{i}@example.com please"),
            })
            .to_string()
        })
        .collect();
    std::fs::write(&input, lines.join("\n") + "\n").expect("writes the input");

    let db = format!("key_outage_{}", uuid::Uuid::new_v4().simple());
    common::psql("postgres", &format!("CREATE DATABASE {db}"));
    let url = format!("postgres://postgres@127.0.0.1:5432/{db}");
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let (mut run, stderr) = spawn_run(
        dir.path(),
        &[
            "--until-idle".as_ref(),
            "--input".as_ref(),
            input.as_os_str(),
            "--processor".as_ref(),
            "privacy".as_ref(),
            "--store".as_ref(),
            url.as_ref(),
            "--no-projections".as_ref(),
            "--listen".as_ref(),
            listen.as_ref(),
            "--log-format".as_ref(),
            "json".as_ref(),
        ],
    );
    let store = PostgresStore::open(&url, 2).await.expect("opens the store");

    // Take the key table away once the first interactions are scrubbed, with most of the
    // work still to do.
    testkit::wait_until(
        "the first interaction to be scrubbed",
        Duration::from_secs(180),
        || async { count(&store, "InteractionScrubbed").await > 0 },
    )
    .await;
    common::psql(
        &db,
        "ALTER TABLE vault_subject_keys RENAME TO vault_subject_keys_away",
    );
    let before = count(&store, "InteractionScrubbed").await;
    assert!(
        before < N,
        "the outage must begin while work remains ({before} of {N} done)"
    );
    // The processor meets the outage (a retried dependency failure, not a dead letter)…
    testkit::wait_until(
        "the privacy worker to retry a dependency failure (the key store's outage)",
        Duration::from_secs(60),
        || async { dependency_retries(port) > 0 },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let during = count(&store, "InteractionScrubbed").await;
    assert!(
        during < N,
        "work must still be waiting on the key store ({during} of {N} done)"
    );
    // …and the key store comes back.
    common::psql(
        &db,
        "ALTER TABLE vault_subject_keys_away RENAME TO vault_subject_keys",
    );

    let deadline = Instant::now() + Duration::from_secs(240);
    let status = loop {
        if let Some(status) = run.0.try_wait().expect("waits") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "insights run --until-idle did not finish within 240 s of the recovery"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let logged: Vec<String> = stderr.try_iter().collect();
    let rest = logged.join("\n");
    assert!(status.success(), "insights run failed ({status}): {rest}");
    // The retry's log line says which message waits: JSON with the message's coordinates
    // and ids.
    let retries: Vec<serde_json::Value> = logged
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| {
            v["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("dependency failure"))
        })
        .collect();
    assert!(!retries.is_empty(), "no JSON retry line in: {rest}");
    for line in &retries {
        let f = &line["fields"];
        assert_eq!(f["processor"], "privacy", "{line}");
        assert_eq!(f["topic"], "interactions.raw", "{line}");
        assert!(f["partition"].is_i64() && f["offset"].is_i64(), "{line}");
        let interaction = f["event_id"].as_str().unwrap_or_default();
        assert!(interaction.starts_with("interaction:m"), "{line}");
        assert_eq!(f["correlation_id"], interaction, "{line}");
    }

    let scrubbed = store
        .read_all(
            0,
            100_000,
            &EventFilter::Types(vec!["InteractionScrubbed".into()]),
        )
        .await
        .expect("reads");
    let ids: std::collections::BTreeSet<String> = scrubbed
        .iter()
        .map(|r| {
            insights_event_store::envelope::from_recorded(r)
                .expect("decodes")
                .event
                .context()
                .expect("has a context")
                .interaction_id
                .clone()
        })
        .collect();
    assert_eq!(scrubbed.len(), N, "every interaction scrubbed once");
    assert_eq!(ids.len(), N, "no interaction scrubbed twice");
    assert_eq!(
        count(&store, "DeadLettered").await,
        0,
        "an outage is retried, never dead-lettered"
    );
    assert!(store.verify().await.expect("verifies").is_intact());
    drop(store);
    drop(run);
    common::psql(
        "postgres",
        &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
    );
}
