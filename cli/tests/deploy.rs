//! `deploy/`: the Prometheus config and alert rules pass promtool (syntax and the rules'
//! unit tests), every metric family the code registers has a dashboard panel, every
//! metric the dashboard and the alerts query exists, and every alert is unit-tested.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use testkit::OutputWithin;

use serde_yaml_ng::Value as Yaml;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
}

fn promtool(args: &[&str]) {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(root())
        .output_within(testkit::COMMAND_LIMIT)
        .expect("promtool runs (scripts/setup.sh installs Debian's prometheus package)");
    assert!(
        out.status.success(),
        "promtool {args:?}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn prometheus_config_and_alert_rules_pass_promtool_and_their_unit_tests() {
    promtool(&["check", "config", "deploy/prometheus/prometheus.yml"]);
    promtool(&["check", "rules", "deploy/prometheus/alerts.yml"]);
    promtool(&["test", "rules", "deploy/prometheus/alerts.test.yml"]);
}

fn rust_sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("reads a source dir") {
        let path = entry.expect("dir entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if path.is_dir() {
            if !name.starts_with('.') && !["target", "node_modules", "tests"].contains(&name) {
                rust_sources(&path, out);
            }
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

/// `insights_…` names in `text`, histogram series suffixes taken off.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(at) = text[i..].find("insights_") {
        let start = i + at;
        let boundary =
            start == 0 || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        let mut end = start;
        while end < bytes.len() && (bytes[end].is_ascii_lowercase() || bytes[end] == b'_') {
            end += 1;
        }
        if boundary {
            let name = &text[start..end];
            let name = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(name);
            names.insert(name.to_owned());
        }
        i = end.max(start + 1);
    }
    names
}

/// Every metric family registered in the workspace's code: the string literals starting
/// `insights_` in the files that build Prometheus metric options.
fn registered_families() -> BTreeSet<String> {
    let mut files = Vec::new();
    rust_sources(root(), &mut files);
    let mut families = BTreeSet::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("reads a source file");
        if !text.contains("Opts::new(") {
            continue;
        }
        for literal in text.split('"').skip(1).step_by(2) {
            if literal.starts_with("insights_") {
                families.extend(metric_names(literal));
            }
        }
    }
    families
}

fn dashboard_queries() -> Vec<String> {
    let text = std::fs::read_to_string(root().join("deploy/grafana/dashboards/insights.json"))
        .expect("reads the dashboard");
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("dashboard is JSON");
    let mut queries = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        if panel["type"] == "row" {
            continue;
        }
        assert_eq!(
            panel["datasource"]["uid"], "prometheus",
            "panel {} queries the provisioned data source",
            panel["title"]
        );
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "panel {} has a query", panel["title"]);
        for t in targets {
            queries.push(t["expr"].as_str().expect("a PromQL expr").to_owned());
        }
    }
    queries
}

fn alert_rules() -> Vec<Yaml> {
    let text = std::fs::read_to_string(root().join("deploy/prometheus/alerts.yml"))
        .expect("reads the alert rules");
    let doc: Yaml = serde_yaml_ng::from_str(&text).expect("alerts are YAML");
    doc["groups"]
        .as_sequence()
        .expect("groups")
        .iter()
        .flat_map(|g| g["rules"].as_sequence().expect("rules").clone())
        .collect()
}

#[test]
fn every_metric_family_has_a_panel_and_every_query_names_real_metrics() {
    let families = registered_families();
    // The families this test must find, so that a change to how metrics are registered
    // cannot empty the list and pass.
    for known in [
        "insights_messages_consumed_total",
        "insights_events_stored_total",
        "insights_consumer_lag",
        "insights_response_breaker_state",
        "insights_projection_lag_events",
        "insights_http_requests_total",
        "insights_http_request_duration_seconds",
    ] {
        assert!(
            families.contains(known),
            "{known} not found in {families:?}"
        );
    }
    let queries = dashboard_queries();
    let shown: BTreeSet<String> = queries.iter().flat_map(|q| metric_names(q)).collect();
    let missing: Vec<&String> = families.difference(&shown).collect();
    assert!(missing.is_empty(), "no dashboard panel for {missing:?}");
    let rules = alert_rules();
    let alerted: BTreeSet<String> = rules
        .iter()
        .flat_map(|r| metric_names(r["expr"].as_str().expect("expr")))
        .collect();
    for name in shown.iter().chain(&alerted) {
        assert!(
            families.contains(name),
            "{name} is queried but no code registers it"
        );
    }
}

#[test]
fn every_alert_says_what_happened_and_has_a_unit_test() {
    let tests = std::fs::read_to_string(root().join("deploy/prometheus/alerts.test.yml"))
        .expect("reads the rule tests");
    let tests: Yaml = serde_yaml_ng::from_str(&tests).expect("rule tests are YAML");
    let tested: BTreeSet<String> = tests["tests"]
        .as_sequence()
        .expect("tests")
        .iter()
        .flat_map(|t| {
            t["alert_rule_test"]
                .as_sequence()
                .cloned()
                .unwrap_or_default()
        })
        // A test expecting no alert does not show the alert fires.
        .filter(|a| a["exp_alerts"].as_sequence().is_some_and(|e| !e.is_empty()))
        .filter_map(|a| a["alertname"].as_str().map(str::to_owned))
        .collect();
    let rules = alert_rules();
    assert!(rules.len() >= 10, "{} alert rules", rules.len());
    let mut untested = Vec::new();
    for rule in &rules {
        let name = rule["alert"].as_str().expect("an alerting rule");
        assert!(
            ["warning", "critical"].contains(&rule["labels"]["severity"].as_str().unwrap_or("")),
            "{name} has a severity"
        );
        assert!(
            rule["annotations"]["summary"]
                .as_str()
                .is_some_and(|s| !s.is_empty()),
            "{name} has a summary"
        );
        if !tested.contains(name) {
            untested.push(name.to_owned());
        }
    }
    assert!(
        untested.is_empty(),
        "alerts with no firing unit test: {untested:?}"
    );
}

#[test]
fn the_compose_file_provisions_prometheus_and_grafana_from_deploy() {
    let text = std::fs::read_to_string(root().join("docker-compose.kafka.yml"))
        .expect("reads compose file");
    let doc: Yaml = serde_yaml_ng::from_str(&text).expect("compose file is YAML");
    for service in ["prometheus", "grafana"] {
        let volumes = doc["services"][service]["volumes"]
            .as_sequence()
            .unwrap_or_else(|| panic!("{service} has volumes"));
        for v in volumes.iter().filter_map(Yaml::as_str) {
            let source = v.split(':').next().unwrap_or("");
            if source.starts_with("./") {
                assert!(
                    root().join(source).exists(),
                    "{service} mounts {source}, which does not exist"
                );
            }
        }
    }
    let datasource = std::fs::read_to_string(
        root().join("deploy/grafana/provisioning/datasources/prometheus.yml"),
    )
    .expect("reads the data source");
    let datasource: Yaml = serde_yaml_ng::from_str(&datasource).expect("YAML");
    assert_eq!(
        datasource["datasources"][0]["uid"].as_str(),
        Some("prometheus"),
        "the uid the dashboard's panels name"
    );
    assert_eq!(
        datasource["datasources"][0]["url"].as_str(),
        Some("http://prometheus:9090")
    );
}
