//! Dead letters back through the pipeline, end to end on a real broker (Tansu), the privacy
//! processor as its own process: messages too large for the configured limit are
//! dead-lettered; a re-drive before the fix dead-letters them again (nothing lost); after
//! the limit is raised, a re-drive sends the new dead letters (the old ones were re-driven
//! already and are skipped) and the processor takes them: every interaction scrubbed
//! exactly once, every re-drive an event in the chain, and the chain verifies.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::process::Output;
use testkit::OutputWithin;

use insights_event_store::{EventFilter, EventStore, RecordedEvent, SqliteStore};
use testkit::Tansu;

mod common;

const SMALL: usize = 20;
const LARGE: usize = 2;

/// Runs `insights ARGS` to completion; it must succeed.
fn run(dir: &Path, brokers: &str, store: &str, args: &[&str]) -> Output {
    let out = common::insights(dir, brokers, store)
        .args(args)
        .output_within(testkit::COMMAND_LIMIT)
        .expect("runs insights");
    assert!(
        out.status.success(),
        "insights {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn set_limit(dir: &Path, root: &Path, bytes: usize) {
    let topology = std::fs::read_to_string(root.join("topology.toml")).expect("reads");
    let shipped = "max_message_bytes = 1048576\n";
    assert!(topology.contains(shipped));
    std::fs::write(
        dir.join("topology.toml"),
        topology.replacen(shipped, &format!("max_message_bytes = {bytes}\n"), 1),
    )
    .expect("writes the topology");
}

/// The JSON lines a re-drive printed, by action.
fn actions(out: &Output) -> HashMap<String, usize> {
    let mut by = HashMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
        *by.entry(v["action"].as_str().expect("action").to_owned())
            .or_default() += 1;
    }
    by
}

async fn events(store: &dyn EventStore, event_type: &str) -> Vec<RecordedEvent> {
    store
        .read_all(0, 100_000, &EventFilter::Types(vec![event_type.into()]))
        .await
        .expect("reads the store")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_redriven_after_the_fix_are_processed_once_and_recorded() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root");
    let tansu = Tansu::start();
    let brokers = tansu.brokers();
    let dir = tempfile::tempdir().expect("temp dir");
    let dir = dir.path();
    set_limit(dir, root, 2_048);
    let store_url = format!("sqlite://{}", dir.join("events.db").display());
    let run = |args: &[&str]| run(dir, &brokers, &store_url, args);
    run(&["topics", "create"]);

    let input = dir.join("input.jsonl");
    let mut f = std::fs::File::create(&input).expect("creates input");
    for n in 0..SMALL + LARGE {
        let text = if n < SMALL {
            format!("My name is Maria Schmidt and my order {n} is late")
        } else {
            format!(
                "My name is Maria Schmidt. {}",
                "The parcel never came. ".repeat(120)
            )
        };
        let line = serde_json::json!({
            "interaction_id": format!("dlq-{n}"), "conversation_id": format!("conv-{n}"),
            "customer_id": format!("u-{n}"), "channel": "email", "text": text,
            "sent_at": "2026-11-23T10:00:00Z",
        });
        writeln!(f, "{line}").expect("writes");
    }
    drop(f);
    run(&["produce", "--file", input.to_str().expect("utf-8 path")]);
    let privacy = [
        "run",
        "--processor",
        "privacy",
        "--until-idle",
        "--ops-listen",
        "off",
    ];
    // The first run logs JSON lines: each dead letter's says where it came from.
    let logged = common::insights(dir, &brokers, &store_url)
        .args(privacy)
        .env("INSIGHTS_LOG_FORMAT", "json")
        .output_within(testkit::COMMAND_LIMIT)
        .expect("runs insights");
    assert!(logged.status.success());
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&logged.stderr)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|v: &serde_json::Value| v["fields"]["message"] == "message dead-lettered")
        .collect();
    assert_eq!(lines.len(), LARGE, "one JSON line per dead letter");
    for line in &lines {
        let f = &line["fields"];
        assert_eq!(f["processor"], "privacy");
        assert_eq!(f["topic"], "interactions.raw");
        assert_eq!(f["error_class"], "poison");
        assert!(f["partition"].is_u64() && f["offset"].is_u64(), "{line}");
        assert!(
            f["event_id"].as_str().is_some_and(|id| id.len() == 36),
            "{line}"
        );
        assert!(
            f["correlation_id"]
                .as_str()
                .is_some_and(|c| c.starts_with("kafka:interactions.raw/")),
            "{line}"
        );
    }

    let store = SqliteStore::open(&store_url, 2)
        .await
        .expect("opens the store");
    assert_eq!(events(&store, "InteractionScrubbed").await.len(), SMALL);
    let dead = events(&store, "DeadLettered").await;
    assert_eq!(dead.len(), LARGE, "the large ones are dead-lettered");

    // A dry run lists them and records nothing.
    let listed = run(&["dlq", "redrive", "--dry-run", "--processor", "privacy"]);
    assert_eq!(
        actions(&listed),
        HashMap::from([("would-redrive".into(), LARGE)])
    );
    assert!(events(&store, "DeadLetterRedriven").await.is_empty());

    // Re-driven before the fix: dead-lettered again, not lost.
    let first = run(&["dlq", "redrive", "--reason", "first try", "--by", "ana"]);
    assert_eq!(actions(&first), HashMap::from([("redriven".into(), LARGE)]));
    run(&privacy);
    assert_eq!(events(&store, "DeadLettered").await.len(), 2 * LARGE);
    assert_eq!(events(&store, "InteractionScrubbed").await.len(), SMALL);

    // The fix, then the re-drive: the new dead letters go, the old ones are skipped.
    set_limit(dir, root, 1_048_576);
    let fixed = run(&[
        "dlq",
        "redrive",
        "--processor",
        "privacy",
        "--error-class",
        "poison",
        "--reason",
        "raised max_message_bytes",
        "--by",
        "ana",
    ]);
    assert_eq!(
        actions(&fixed),
        HashMap::from([
            ("redriven".into(), LARGE),
            ("already-redriven".into(), LARGE)
        ])
    );
    let again = run(&["dlq", "redrive", "--reason", "once more"]);
    assert_eq!(
        actions(&again),
        HashMap::from([("already-redriven".into(), 2 * LARGE)]),
        "a second run sends nothing twice"
    );
    run(&privacy);

    let scrubbed = events(&store, "InteractionScrubbed").await;
    let mut ids: Vec<String> = scrubbed
        .iter()
        .map(|e| {
            let payload: serde_json::Value =
                serde_json::from_slice(&e.data.payload).expect("JSON payload");
            payload["context"]["interaction_id"]
                .as_str()
                .expect("interaction id")
                .to_owned()
        })
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(
        scrubbed.len(),
        SMALL + LARGE,
        "each interaction scrubbed once"
    );
    assert_eq!(ids.len(), SMALL + LARGE);

    let redriven = events(&store, "DeadLetterRedriven").await;
    assert_eq!(redriven.len(), 2 * LARGE, "one event per re-driven message");
    let dead_ids: Vec<String> = events(&store, "DeadLettered")
        .await
        .iter()
        .map(|e| e.data.event_id.to_string())
        .collect();
    for e in &redriven {
        let payload: serde_json::Value =
            serde_json::from_slice(&e.data.payload).expect("JSON payload");
        assert_eq!(payload["redriven_by"], "ana");
        assert_eq!(payload["processor"], "privacy");
        assert_eq!(payload["topic"], "interactions.raw");
        let cause = e.data.causation_id.clone().expect("a cause");
        assert!(dead_ids.contains(&cause), "{cause} is a DeadLettered event");
    }
    let report = store.verify().await.expect("verifies");
    assert!(report.is_intact(), "{:?}", report.broken);
}
