//! Production mode as an operator runs it on one machine (scripts/cluster.sh): Tansu, a
//! PostgreSQL database of its own, one process per processor (sentiment with two
//! replicas) and the views/API process, drafting with a real llama.cpp server. A real
//! client (Python confluent-kafka) produces 100 interactions; every one is scrubbed,
//! scored and drafted; the views answer with a token signed by the cluster's secret; every
//! metric the Grafana dashboard and the alert rules query is exported by one of the running
//! processes; every interaction's trace, begun by the client's `traceparent`, reaches a real
//! OTLP receiver with spans from the processes it went through; `down` leaves no process
//! behind.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use testkit::OutputWithin;

use insights_event_store::{EventFilter, EventStore, PostgresStore};

mod common;

const N: usize = 100;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
}

fn cluster(dir: &Path, args: &[&str]) -> String {
    cluster_with(dir, args, &[])
}

fn cluster_with(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let out = Command::new(root().join("scripts/cluster.sh"))
        .args(args)
        .envs(env.iter().copied())
        .env("INSIGHTS_CLUSTER_DIR", dir)
        .env_remove("INSIGHTS_TOPOLOGY")
        .current_dir(root())
        .output_within(testkit::COMMAND_LIMIT)
        .expect("runs scripts/cluster.sh");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "cluster.sh {args:?}:\n{text}");
    text
}

/// Brings the cluster down when the test ends, however it ends.
struct Down<'a>(&'a Path);

impl Drop for Down<'_> {
    fn drop(&mut self) {
        let _ = Command::new(root().join("scripts/cluster.sh"))
            .arg("down")
            .env("INSIGHTS_CLUSTER_DIR", self.0)
            .current_dir(root())
            .output_within(testkit::COMMAND_LIMIT);
    }
}

async fn count(store: &dyn EventStore, event_type: &str) -> usize {
    store
        .read_all(0, 100_000, &EventFilter::Types(vec![event_type.into()]))
        .await
        .expect("reads the store")
        .len()
}

/// The metric families a process exports now.
fn families(port: u16) -> BTreeSet<String> {
    let (status, body) = common::get_text(port, "/metrics");
    assert_eq!(status, 200, "/metrics on {port}");
    body.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

/// `insights_…` names in a PromQL expression, histogram suffixes taken off.
fn queried(expr: &str) -> Vec<String> {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("insights_"))
        .map(|w| {
            ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| w.strip_suffix(s))
                .unwrap_or(w)
                .to_owned()
        })
        .collect()
}

/// Every interaction's trace (the id its producer sent in `traceparent`) has the privacy
/// processor's span as a child of the producer's span, carrying the interaction as its
/// correlation id; the traces of drafted interactions have spans from at least three
/// processes (privacy, a sentiment replica, response, fairness), one trace id each.
async fn traces_follow_interactions(receiver: &testkit::OtlpReceiver, ids: &Path, drafted: usize) {
    let sent: Vec<(String, String)> = std::fs::read_to_string(ids)
        .expect("the producer's trace ids")
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(interaction, trace)| (interaction.to_owned(), trace.to_owned()))
        .collect();
    assert_eq!(sent.len(), N, "one trace per interaction");
    // Whether a trace has reached the response processor, with spans from three processes
    // (service, pid) or more.
    let complete = |spans: &[serde_json::Value], trace: &str| -> bool {
        let spans: Vec<&serde_json::Value> =
            spans.iter().filter(|s| s["trace_id"] == trace).collect();
        let processes: BTreeSet<String> = spans
            .iter()
            .map(|s| format!("{}/{}", s["service"], s["pid"]))
            .collect();
        processes.len() >= 3 && spans.iter().any(|s| s["name"] == "response process")
    };
    testkit::wait_until(
        "the spans of every drafted interaction, from three processes, at the OTLP receiver",
        Duration::from_secs(60),
        || async {
            let spans = receiver.spans();
            sent.iter()
                .filter(|(_, trace)| complete(&spans, trace))
                .count()
                >= drafted
        },
    )
    .await;
    let spans = receiver.spans();
    for (interaction, trace) in &sent {
        let privacy = spans
            .iter()
            .find(|s| s["trace_id"] == trace.as_str() && s["name"] == "privacy process")
            .unwrap_or_else(|| panic!("no privacy span in the trace of {interaction}"));
        assert_eq!(privacy["service"], "insights-privacy");
        assert_eq!(privacy["kind"], "consumer");
        assert_eq!(
            privacy["attributes"]["correlation_id"],
            interaction.as_str()
        );
        assert_eq!(
            privacy["attributes"]["messaging.destination.name"],
            "interactions.raw"
        );
        // Its parent is the producer's span, which the receiver never saw.
        assert_eq!(privacy["parent_span_id"].as_str().map(str::len), Some(16));
        assert!(
            !spans
                .iter()
                .any(|s| s["span_id"] == privacy["parent_span_id"]),
            "the privacy span's parent is the client's"
        );
    }
    // A drafted interaction's trace holds each stage, the store appends among them.
    let full = sent
        .iter()
        .find(|(_, trace)| complete(&spans, trace))
        .map(|(_, trace)| trace)
        .expect("a trace from three processes");
    let names: BTreeSet<&str> = spans
        .iter()
        .filter(|s| s["trace_id"] == full.as_str())
        .filter_map(|s| s["name"].as_str())
        .collect();
    for name in [
        "privacy process",
        "sentiment process",
        "response process",
        "store append",
        "interactions.scrubbed publish",
        "interactions.scored publish",
    ] {
        assert!(
            names.contains(name),
            "{name} in the trace {full}: {names:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_cluster_runs_the_pipeline_and_exports_what_the_dashboard_shows() {
    let llm = testkit::LlmServer::start();
    let work = tempfile::tempdir().expect("temp dir");
    let dir = work.path().join("cluster");
    let db = format!("cluster_{}", uuid::Uuid::new_v4().simple());
    common::psql("postgres", &format!("CREATE DATABASE {db}"));
    let url = format!("postgres://postgres@127.0.0.1:5432/{db}");
    let (kafka_port, api_port) = (common::free_port(), common::free_port());
    let receiver = testkit::OtlpReceiver::start(work.path().join("spans.jsonl"));
    let _down = Down(&dir);
    cluster_with(
        &dir,
        &[
            "up",
            "--bin",
            env!("CARGO_BIN_EXE_insights"),
            "--store",
            &url,
            "--kafka-port",
            &kafka_port.to_string(),
            "--api-port",
            &api_port.to_string(),
            "--replicas",
            "sentiment=2",
            "--llm-url",
            &llm.base_url(),
        ],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.endpoint()),
            // Export often, so that the wait below is short.
            ("OTEL_BSP_SCHEDULE_DELAY", "200"),
        ],
    );
    let status = cluster(&dir, &["status"]);
    for process in [
        "tansu",
        "privacy-1",
        "sentiment-1",
        "sentiment-2",
        "response-1",
        "fairness-1",
        "api",
    ] {
        assert!(status.contains(process), "{process} in:\n{status}");
    }

    // A real third-party client produces.
    let input = work.path().join("input.jsonl");
    let lines: Vec<String> = std::fs::read_to_string(root().join("samples/interactions.jsonl"))
        .expect("samples")
        .lines()
        .filter(|l| {
            serde_json::from_str::<serde_json::Value>(l).is_ok_and(|v| v["text"].is_string())
        })
        .take(N)
        .map(str::to_owned)
        .collect();
    assert_eq!(lines.len(), N);
    std::fs::write(&input, lines.join("\n") + "\n").expect("writes");
    let produced = Command::new(root().join(".tools/venv/bin/python"))
        .arg(root().join("benches/e2e_produce.py"))
        .args(["--brokers", &format!("127.0.0.1:{kafka_port}")])
        .arg("--file")
        .arg(&input)
        .args(["--times", "/dev/null"])
        .arg("--trace-ids")
        .arg(work.path().join("traces.tsv"))
        .output_within(testkit::COMMAND_LIMIT)
        .expect("runs the Python producer (scripts/setup.sh installs it)");
    assert!(
        produced.status.success(),
        "{}",
        String::from_utf8_lossy(&produced.stderr)
    );

    let store = PostgresStore::open(&url, 2).await.expect("opens the store");
    testkit::wait_until(
        "every interaction scrubbed, scored and drafted (or dead-lettered)",
        Duration::from_secs(300),
        || async {
            let drafted = count(&store, "ResponseDrafted").await;
            let dead = count(&store, "DeadLettered").await;
            drafted + dead >= N && drafted == count(&store, "SentimentScored").await
        },
    )
    .await;
    assert!(store.verify().await.expect("verifies").is_intact());
    let drafted = count(&store, "ResponseDrafted").await;
    traces_follow_interactions(&receiver, &work.path().join("traces.tsv"), drafted).await;

    // The views answer, with a token from the cluster's own secret.
    let token = Command::new(env!("CARGO_BIN_EXE_insights"))
        .args(["token", "issue", "--subject", "ops", "--role", "analyst"])
        .env(
            "INSIGHTS_JWT_SECRET",
            std::fs::read_to_string(dir.join("jwt.secret")).expect("secret"),
        )
        .output_within(testkit::COMMAND_LIMIT)
        .expect("issues a token");
    let token = String::from_utf8_lossy(&token.stdout).trim().to_owned();
    let api: std::net::SocketAddr = format!("127.0.0.1:{api_port}").parse().expect("address");
    let (status, body) = common::http(api, "GET", "/v1/views/health", &token, None);
    assert_eq!(status, 200, "{body}");

    // Every family the dashboard and the alerts query is exported by a running process.
    let mut exported = BTreeSet::new();
    for name in std::fs::read_dir(dir.join("run"))
        .expect("run dir")
        .flatten()
    {
        let path = name.path();
        if path.extension().is_some_and(|e| e == "port") && !path.ends_with("tansu.port") {
            let port: u16 = std::fs::read_to_string(&path)
                .expect("port")
                .trim()
                .parse()
                .expect("a port");
            exported.extend(families(port));
        }
    }
    let dashboard = std::fs::read_to_string(root().join("deploy/grafana/dashboards/insights.json"))
        .expect("dashboard");
    let alerts =
        std::fs::read_to_string(root().join("deploy/prometheus/alerts.yml")).expect("alerts");
    let missing: BTreeSet<String> = queried(&dashboard)
        .into_iter()
        .chain(queried(&alerts))
        .filter(|name| !exported.contains(name))
        .collect();
    assert!(
        missing.is_empty(),
        "queried but exported by no process: {missing:?}"
    );

    // Down leaves no process behind.
    let pids: Vec<String> = std::fs::read_dir(dir.join("run"))
        .expect("run dir")
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "pid"))
        .map(|e| {
            std::fs::read_to_string(e.path())
                .expect("pid")
                .trim()
                .to_owned()
        })
        .collect();
    assert_eq!(pids.len(), 7, "{pids:?}");
    cluster(&dir, &["down"]);
    for pid in pids {
        // Gone, or a zombie nobody has reaped yet (its parent, the script, has exited).
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let running = state
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|s| s != "Z");
        assert!(!running, "process {pid} still runs after down");
    }
    common::psql("postgres", &format!("DROP DATABASE {db} WITH (FORCE)"));
}
