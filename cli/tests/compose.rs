//! `docker-compose.kafka.yml` cannot run here (no Docker engine); this checks that it is
//! well-formed and agrees with `topology.toml`.

use std::collections::BTreeSet;
use std::path::Path;

use insights_topology::Topology;
use serde_yaml_ng::Value;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
}

fn compose() -> Value {
    let text = std::fs::read_to_string(root().join("docker-compose.kafka.yml"))
        .expect("reads compose file");
    let mut doc: Value = serde_yaml_ng::from_str(&text).expect("compose file is YAML");
    doc.apply_merge().expect("merge keys resolve");
    doc
}

fn strings(v: &Value) -> Vec<String> {
    v.as_sequence()
        .map(|s| {
            s.iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn compose_file_is_well_formed_and_matches_the_topology() {
    let doc = compose();
    let top = doc.as_mapping().expect("a mapping");
    for key in top.keys() {
        let key = key.as_str().expect("string keys");
        assert!(
            ["services", "volumes", "networks"].contains(&key) || key.starts_with("x-"),
            "unknown top-level key {key}"
        );
    }
    let services = doc["services"].as_mapping().expect("services");
    let names: BTreeSet<&str> = services.keys().filter_map(Value::as_str).collect();
    let volumes: BTreeSet<&str> = doc["volumes"]
        .as_mapping()
        .map(|m| m.keys().filter_map(Value::as_str).collect())
        .unwrap_or_default();

    for (name, svc) in services {
        let name = name.as_str().expect("service name");
        let image = svc["image"]
            .as_str()
            .unwrap_or_else(|| panic!("{name} has an image"));
        let tag = image.rsplit_once(':').map(|(_, t)| t).unwrap_or("");
        assert!(
            !tag.is_empty() && tag != "latest",
            "{name}: image {image} must be pinned"
        );
        if let Some(deps) = svc["depends_on"].as_mapping() {
            for dep in deps.keys().filter_map(Value::as_str) {
                assert!(
                    names.contains(dep),
                    "{name} depends on unknown service {dep}"
                );
            }
        }
        for v in strings(&svc["volumes"]) {
            let source = v.split(':').next().unwrap_or("");
            if !source.starts_with('.') && !source.starts_with('/') {
                assert!(
                    volumes.contains(source),
                    "{name} uses undeclared volume {source}"
                );
            }
        }
    }

    let topology = Topology::load(root().join("topology.toml")).expect("topology loads");
    for processor in topology.processors.keys() {
        let svc = &services[processor.as_str()];
        let command = strings(&svc["command"]);
        assert_eq!(
            command.get(..3),
            Some(
                &[
                    "run".to_owned(),
                    "--processor".to_owned(),
                    processor.clone()
                ][..]
            ),
            "service {processor} runs processor {processor}"
        );
        let key = svc["environment"]["INSIGHTS_PRIVACY_KEY"]
            .as_str()
            .unwrap_or("");
        assert!(
            key.contains(":?"),
            "{processor}: the pseudonym key is required, not defaulted"
        );
        // Traces go to a service of the file that takes OTLP/HTTP.
        let endpoint = svc["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"]
            .as_str()
            .unwrap_or("");
        let collector = endpoint
            .rsplit("-http://")
            .next()
            .and_then(|e| e.trim_end_matches('}').split_once(':'))
            .map(|(host, port)| (host.to_owned(), port.to_owned()));
        let Some((host, port)) = collector else {
            panic!(
                "{processor}: OTEL_EXPORTER_OTLP_ENDPOINT defaults to a service, got {endpoint:?}"
            );
        };
        assert_eq!(port, "4318", "{processor}: OTLP/HTTP is port 4318");
        assert!(
            strings(&services[host.as_str()]["ports"])
                .iter()
                .any(|p| p.ends_with(":4318")),
            "{processor}: the trace collector {host} takes OTLP/HTTP on 4318"
        );
        assert!(
            svc["environment"].get("RUST_LOG").is_none(),
            "{processor}: the binary reads INSIGHTS_LOG, not RUST_LOG"
        );
        let store = svc["environment"]["INSIGHTS_STORE_URL"]
            .as_str()
            .unwrap_or("");
        assert!(
            store.starts_with("postgres://"),
            "{processor} uses PostgreSQL, got {store:?}"
        );
    }
}
