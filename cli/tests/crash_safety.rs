//! Crash safety: the pipeline process is killed with SIGKILL again and again while it
//! works through 20,000 interactions on a real broker (Tansu); after a final run, the
//! store holds each expected event exactly once and its chain verifies.

use std::collections::HashSet;
use std::io::Write;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};
use testkit::OutputWithin;

use insights_event_store::{EventFilter, EventStore, SqliteStore};
use testkit::Tansu;

const N: usize = 20_000;
mod common;
use common::insights;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_pipeline_repeatedly_loses_and_duplicates_nothing() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root");
    let tansu = Tansu::start();
    let brokers = tansu.brokers();
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::copy(root.join("topology.toml"), dir.path().join("topology.toml")).expect("copies");
    let store_url = format!("sqlite://{}", dir.path().join("events.db").display());

    let created = insights(dir.path(), &brokers, &store_url)
        .args(["topics", "create"])
        .output_within(testkit::COMMAND_LIMIT)
        .expect("runs");
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );

    let input = dir.path().join("input.jsonl");
    let mut f = std::fs::File::create(&input).expect("creates input");
    for n in 0..N {
        writeln!(
            f,
            r#"{{"interaction_id":"crash-{n}","conversation_id":"conv-{}","customer_id":"u-{n}","channel":"chat","text":"my name is Maria Schmidt, card 4111 1111 1111 1111, message {n}","sent_at":"2026-11-23T10:00:00Z"}}"#,
            n % 500
        )
        .expect("writes");
    }
    drop(f);
    let produced = insights(dir.path(), &brokers, &store_url)
        .args(["produce", "--file"])
        .arg(&input)
        .output_within(testkit::COMMAND_LIMIT)
        .expect("runs");
    assert!(
        produced.status.success(),
        "{}",
        String::from_utf8_lossy(&produced.stderr)
    );

    let store = SqliteStore::open(&store_url, 2).await.expect("opens store");
    let mut kills = 0;
    for round in 0..4u64 {
        let before = store.head().await.expect("head").position;
        let mut child = insights(dir.path(), &brokers, &store_url)
            .args(["run", "--processor", "privacy", "--ops-listen", "off"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starts the pipeline");
        // Kill only once it is visibly working, at a different moment each round.
        let deadline = Instant::now() + Duration::from_secs(60);
        while store.head().await.expect("head").position <= before && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(150 * round)).await;
        child.kill().expect("SIGKILL");
        child.wait().expect("reaped");
        if store.head().await.expect("head").position < N as u64 {
            kills += 1;
        }
    }
    assert!(kills >= 3, "the pipeline was killed mid-run {kills} times");

    let last = insights(dir.path(), &brokers, &store_url)
        .args([
            "run",
            "--processor",
            "privacy",
            "--until-idle",
            "--ops-listen",
            "off",
        ])
        .output_within(testkit::COMMAND_LIMIT)
        .expect("runs");
    assert!(
        last.status.success(),
        "{}",
        String::from_utf8_lossy(&last.stderr)
    );

    let events = store
        .read_all(0, 2 * N, &EventFilter::All)
        .await
        .expect("reads");
    assert_eq!(
        events.len(),
        N,
        "one event per interaction, no more, no less"
    );
    let causes: HashSet<&str> = events
        .iter()
        .filter_map(|e| e.data.causation_id.as_deref())
        .collect();
    assert_eq!(causes.len(), N);
    assert!(
        events
            .iter()
            .all(|e| e.data.event_type == "InteractionScrubbed")
    );
    let report = store.verify().await.expect("verifies");
    assert!(report.is_intact(), "{:?}", report.broken);
}
