//! Interactions produced by Kafka clients nobody here wrote — Python `confluent-kafka`
//! (JSON, and Confluent-framed Avro from its own AvroSerializer and schema registry client)
//! and `kafka-python` — are consumed by the runtime like any other.

mod support;

use std::path::PathBuf;
use std::process::Command;
use testkit::OutputWithin;

use insights_schemas::{Catalogue, Codec};
use support::{RAW, run_until_idle, setup, stored};

fn python() -> PathBuf {
    let py = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.tools/venv/bin/python");
    assert!(
        py.exists(),
        "Python clients not installed at {}: run scripts/setup.sh",
        py.display()
    );
    py
}

fn produce_with(
    client: &str,
    brokers: &str,
    start: usize,
    count: usize,
    schema: Option<&std::path::Path>,
) -> String {
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/produce_interactions.py");
    let mut cmd = Command::new(python());
    cmd.arg(script)
        .args(["--brokers", brokers, "--topic", RAW, "--client", client])
        .args(["--count", &count.to_string(), "--start", &start.to_string()]);
    if let Some(s) = schema {
        cmd.arg("--schema").arg(s);
    }
    let out = cmd
        .output_within(testkit::COMMAND_LIMIT)
        .expect("runs python");
    assert!(
        out.status.success(),
        "{client} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_clients_json_and_confluent_avro_are_consumed() {
    let s = setup().await;
    let brokers = s.tansu.brokers();
    let schema_json = Catalogue::get()
        .current("Interaction")
        .expect("schema")
        .json
        .to_string();
    let schema_file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(schema_file.path(), &schema_json).expect("writes schema");

    produce_with("confluent-json", &brokers, 0, 20, None);
    produce_with("kafka-python", &brokers, 100, 20, None);
    let avro = produce_with(
        "confluent-avro",
        &brokers,
        200,
        20,
        Some(schema_file.path()),
    );
    let id: u32 = serde_json::from_str::<serde_json::Value>(avro.trim())
        .ok()
        .and_then(|v| v["schema_id"].as_u64())
        .and_then(|v| u32::try_from(v).ok())
        .unwrap_or_else(|| panic!("schema id printed, got {avro:?}"));

    // The registry assigned the id; the pipeline learns it (as it would from the registry).
    let mut codec = Codec::new();
    codec.register_id(id, &schema_json).expect("registers");
    let summary = run_until_idle(&s, codec, "echo-python").await;
    assert_eq!(
        (summary.consumed, summary.appended, summary.dead_lettered),
        (60, 60, 0),
        "{summary:?}"
    );
    let causes: std::collections::BTreeSet<String> = stored(&*s.store)
        .await
        .into_iter()
        .filter_map(|e| e.causation_id)
        .collect();
    for n in (0..20).chain(100..120).chain(200..220) {
        assert!(
            causes.contains(&format!("interaction:py-{n}")),
            "py-{n} stored"
        );
    }
}
