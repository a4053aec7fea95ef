//! Same input, same facts: the 3,000 sample interactions through the embedded pipeline,
//! and again in production mode — Tansu, PostgreSQL, each processor its own process — with
//! the response processor held back until privacy and sentiment have finished and fairness
//! has read every score. Every `SentimentScored` (less its measured latency),
//! `FairnessReported` and `FairnessAlertRaised` is the same event, by id and content.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use insights_event_store::envelope::from_recorded;
use insights_event_store::{EventFilter, EventStore, PostgresStore, SqliteStore};
use insights_schemas::Event;
use testkit::Tansu;

mod common;
use common::free_port;

const KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
const COMPARED: [&str; 3] = ["SentimentScored", "FairnessReported", "FairnessAlertRaised"];

fn insights(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_insights"));
    cmd.current_dir(dir)
        .env("INSIGHTS_PRIVACY_KEY", KEY)
        .env_remove("INSIGHTS_BROKERS")
        .env_remove("INSIGHTS_STORE_URL")
        .env_remove("INSIGHTS_TOPOLOGY")
        .env_remove("INSIGHTS_JWT_SECRET")
        .env_remove("INSIGHTS_LLM_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd
}

/// Runs `cmd` to its end, at most `limit`; panics naming `what` if it fails or overruns.
fn finish(mut cmd: Command, what: &str, limit: Duration) {
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
    let status = wait_for_exit(&mut child, limit)
        .unwrap_or_else(|| panic!("{what} did not finish within {limit:?}"));
    if !status.success() {
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut err);
        }
        panic!("{what} failed ({status}): {err}");
    }
}

fn wait_for_exit(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("waits") {
            return Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The compared events of a store, by id, with what is measured rather than derived
/// (a score's latency) taken out.
async fn facts(store: &dyn EventStore) -> BTreeMap<uuid::Uuid, Event> {
    let mut out = BTreeMap::new();
    let mut from = 0;
    loop {
        let page = store
            .read_all(from, 5_000, &EventFilter::All)
            .await
            .expect("reads the store");
        let Some(last) = page.last() else {
            return out;
        };
        from = last.position;
        for r in &page {
            if !COMPARED.contains(&r.data.event_type.as_str()) {
                continue;
            }
            let envelope = from_recorded(r).expect("decodes a stored event");
            let mut event = envelope.event;
            if let Event::SentimentScored(s) = &mut event {
                s.latency_micros = 0;
            }
            out.insert(envelope.event_id, event);
        }
    }
}

fn psql(sql: &str) {
    let ok = Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-qc",
            sql,
        ])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "PostgreSQL on 127.0.0.1:5432 is needed: {sql}");
}

/// Messages the fairness process has consumed, from its /metrics.
fn consumed(port: u16) -> u64 {
    common::metric_sum(port, "insights_messages_consumed_total", "")
}

/// Waits until the fairness process has consumed `n` messages; fails at `deadline`.
async fn await_consumed(port: u16, n: u64, deadline: Instant, what: &str) {
    while consumed(port) < n {
        assert!(
            Instant::now() < deadline,
            "fairness did not read the {n} {what} in time (read {})",
            consumed(port)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_input_gives_the_same_facts_however_fast_each_processor_runs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root");
    let samples = root.join("samples/interactions.jsonl");
    let limit = Duration::from_secs(600);

    // Run A: embedded, every processor in one process.
    let a = tempfile::tempdir().expect("temp dir");
    std::fs::copy(root.join("topology.toml"), a.path().join("topology.toml")).expect("copies");
    let mut run = insights(a.path());
    run.args([
        "run",
        "--until-idle",
        "--sentiment-backend",
        "lexicon",
        "--listen",
        "off",
    ])
    .arg("--input")
    .arg(&samples);
    finish(run, "the embedded run", limit);
    let url_a = format!("sqlite://{}", a.path().join("data/insights.db").display());
    let store_a = SqliteStore::open(&url_a, 1)
        .await
        .expect("opens run A's store");
    let facts_a = facts(&store_a).await;

    // Run B: production mode, response last.
    let b = tempfile::tempdir().expect("temp dir");
    std::fs::copy(root.join("topology.toml"), b.path().join("topology.toml")).expect("copies");
    let tansu = Tansu::start();
    let db = format!("determinism_{}", uuid::Uuid::new_v4().simple());
    psql(&format!("CREATE DATABASE {db}"));
    let url_b = format!("postgres://postgres@127.0.0.1:5432/{db}");
    let cmd = |args: &[&str]| {
        let mut c = insights(b.path());
        c.env("INSIGHTS_BROKERS", tansu.brokers())
            .env("INSIGHTS_STORE_URL", &url_b)
            .args(args);
        c
    };
    finish(cmd(&["topics", "create"]), "topics create", limit);
    let mut produce = cmd(&["produce", "--file"]);
    produce.arg(&samples);
    finish(produce, "producing the samples", limit);
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut fairness = cmd(&["run", "--processor", "fairness", "--listen", &listen])
        .spawn()
        .expect("starts fairness");
    for p in ["privacy", "sentiment"] {
        finish(
            cmd(&[
                "run",
                "--processor",
                p,
                "--until-idle",
                "--sentiment-backend",
                "lexicon",
                "--listen",
                "off",
            ]),
            &format!("{p} --until-idle"),
            limit,
        );
    }
    let store_b = PostgresStore::open(&url_b, 2)
        .await
        .expect("opens run B's store");
    let count = |types: &'static [&'static str]| {
        let store = &store_b;
        async move {
            let filter = EventFilter::Types(types.iter().map(|t| (*t).to_owned()).collect());
            store
                .read_all(0, 100_000, &filter)
                .await
                .expect("reads")
                .len() as u64
        }
    };
    let scored = count(&["SentimentScored"]).await;
    assert!(scored > 2_900, "run B scored {scored} interactions");
    // Fairness reads every score while no draft exists: it must hold every window.
    let deadline = Instant::now() + limit;
    await_consumed(port, scored, deadline, "scores").await;
    assert_eq!(
        count(&["FairnessReported"]).await,
        0,
        "a window closed before its drafts could arrive"
    );
    finish(
        cmd(&[
            "run",
            "--processor",
            "response",
            "--until-idle",
            "--listen",
            "off",
        ]),
        "response --until-idle",
        limit,
    );
    let expected = count(&[
        "SentimentScored",
        "ResponseDrafted",
        "ResponseApproved",
        "ReviewRequested",
    ])
    .await;
    await_consumed(port, expected, deadline, "outcome events").await;
    // SIGTERM: fairness finishes the batch in flight and stops.
    let _ = Command::new("kill")
        .args(["-TERM", &fairness.id().to_string()])
        .status();
    let status = wait_for_exit(&mut fairness, Duration::from_secs(60))
        .expect("fairness stops within a minute of SIGTERM");
    assert!(status.success(), "fairness exited with {status}");
    let facts_b = facts(&store_b).await;
    drop(store_b);
    psql(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"));

    for kind in COMPARED {
        let of = |f: &BTreeMap<uuid::Uuid, Event>| {
            f.iter()
                .filter(|(_, e)| e.event_type() == kind)
                .map(|(id, e)| (*id, e.clone()))
                .collect::<BTreeMap<_, _>>()
        };
        let (in_a, in_b) = (of(&facts_a), of(&facts_b));
        if kind != "FairnessAlertRaised" {
            assert!(!in_a.is_empty(), "run A has no {kind}");
        }
        let only_a = in_a.keys().filter(|k| !in_b.contains_key(k)).count();
        let only_b = in_b.keys().filter(|k| !in_a.contains_key(k)).count();
        let differ: Vec<_> = in_a
            .iter()
            .filter(|(k, e)| in_b.get(*k).is_some_and(|other| other != *e))
            .collect();
        assert!(
            only_a == 0 && only_b == 0 && differ.is_empty(),
            "{kind}: {} in run A, {} in run B; {only_a} only in A, {only_b} only in B, {} differ{}",
            in_a.len(),
            in_b.len(),
            differ.len(),
            differ
                .first()
                .map(|(k, e)| format!("; first: {k}\nA: {e:?}\nB: {:?}", in_b[*k]))
                .unwrap_or_default()
        );
    }
}
