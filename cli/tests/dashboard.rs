//! The README's run command with the dashboard: `insights run --input samples/…` on the
//! embedded default serves the views; the dashboard link it prints opens in headless
//! Chromium (Debian's, driven by playwright-core from `api/tests/browser`, both installed by
//! `scripts/setup.sh`), whose screenshots show the charts drew data. On the way, the views
//! answer over HTTP and the sample's planted incident (fiber-broadband, 19 November) is
//! the anomaly found.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use testkit::OutputWithin;

use serde_json::Value;

mod common;
use common::{free_port, http, spawn_run};

/// The sample's messages that reach the sentiment view: its 3,000 lines less the 11 it
/// plants malformed, which go to the dead-letter topic.
const SCORED: u64 = 2989;

#[test]
fn the_dashboard_draws_the_pipelines_views_in_a_browser() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root");
    let browser = root.join("api/tests/browser");
    assert!(
        browser.join("node_modules/playwright-core").exists()
            && Path::new("/usr/bin/chromium").exists(),
        "the browser test needs Chromium and playwright-core: run scripts/setup.sh"
    );
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::copy(root.join("topology.toml"), dir.path().join("topology.toml")).expect("copies");
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port())
        .parse()
        .expect("address");
    let listen = addr.to_string();
    let samples = root.join("samples/interactions.jsonl");
    let (_running, rx) = spawn_run(
        dir.path(),
        &[
            "--listen".as_ref(),
            listen.as_ref(),
            "--sentiment-backend".as_ref(),
            "lexicon".as_ref(),
            "--input".as_ref(),
            samples.as_os_str(),
        ],
    );

    // The embedded default prints a ready link with a token.
    let mut log = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    let link = loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| panic!("no dashboard link: {log:#?}"));
        if let Some(link) = line.strip_prefix("insights: dashboard: ") {
            break link.trim().to_owned();
        }
        log.push(line);
    };
    let token = link
        .split_once("#token=")
        .expect("token in the link")
        .1
        .to_owned();
    assert!(link.starts_with(&format!("http://{addr}/")), "{link}");

    // Wait for the pipeline to drain and every view to catch up with the store: every
    // message scored, then the store's head unchanged over four polls (the later stages
    // pause for a few seconds at times; how many events they add, reviews included,
    // depends on the models, so no fixed count). Generous: on two busy cores a debug
    // build has taken over four minutes.
    let deadline = Instant::now() + Duration::from_secs(420);
    let (mut last_head, mut still) = (0, 0);
    loop {
        let (status, body) = http(addr, "GET", "/v1/views", &token, None);
        assert_eq!(status, 200, "{body}");
        let head = body["head"].as_u64().unwrap_or(0);
        let caught_up = body["views"]
            .as_array()
            .is_some_and(|v| v.iter().all(|v| v["lag"] == 0));
        let (_, sentiment) = http(addr, "GET", "/v1/views/sentiment", &token, None);
        let scored = sentiment["totals"]["n"].as_u64().unwrap_or(0);
        still = if caught_up && scored >= SCORED && head == last_head {
            still + 1
        } else {
            0
        };
        // Shown where the test fails: how far the pipeline got, poll by poll.
        eprintln!("head {head}, {scored} scored, views caught up: {caught_up}");
        if still == 4 {
            break;
        }
        last_head = head;
        assert!(
            Instant::now() < deadline,
            "views never settled ({scored} scored): {body}"
        );
        std::thread::sleep(Duration::from_secs(3));
    }

    let (status, sentiment) = http(
        addr,
        "GET",
        "/v1/views/sentiment?group_by=channel",
        &token,
        None,
    );
    assert_eq!(status, 200, "{sentiment}");
    assert_eq!(
        sentiment["totals"]["n"], SCORED,
        "every scored message: {}",
        sentiment["totals"]
    );
    assert_eq!(
        sentiment["series"].as_array().map(Vec::len),
        Some(5),
        "five channels"
    );
    let (_, anomalies) = http(addr, "GET", "/v1/views/anomalies", &token, None);
    let found: Vec<(&str, &str)> = anomalies["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| {
            (
                i["value"].as_str().unwrap_or(""),
                i["window_start"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert!(
        found.contains(&("fiber-broadband", "2026-11-19T00:00:00Z")),
        "the planted incident is found: {anomalies}"
    );
    let (_, conversations) = http(addr, "GET", "/v1/views/conversations?limit=1", &token, None);
    let id = conversations["items"][0]["conversation_id"]
        .as_str()
        .expect("a conversation")
        .to_owned();
    let (status, timeline) = http(
        addr,
        "GET",
        &format!("/v1/views/conversations/{id}"),
        &token,
        None,
    );
    assert_eq!(status, 200);
    assert_eq!(
        timeline["events"][0]["event_type"], "InteractionScrubbed",
        "{timeline}"
    );

    // The dashboard's token is a reviewer's too: decide one item, so that the agreement
    // table has a reading to compare with the model's label.
    let (status, queue) = http(addr, "GET", "/v1/reviews", &token, None);
    assert_eq!(status, 200, "{queue}");
    let first = queue["items"][0]["review_id"]
        .as_str()
        .unwrap_or_else(|| panic!("a review item: {queue}"))
        .to_owned();
    let (status, decided) = http(
        addr,
        "POST",
        &format!("/v1/reviews/{first}/decision"),
        &token,
        Some(serde_json::json!({"decision": "approve", "corrected_sentiment": "neutral"})),
    );
    assert_eq!(status, 200, "{decided}");
    let position = decided["position"].as_u64().expect("a position");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, agreement) = http(
            addr,
            "GET",
            &format!("/v1/views/agreement?min_position={position}"),
            &token,
            None,
        );
        if status == 200 {
            assert_eq!(agreement["model"]["n"], 1, "{agreement}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the agreement view did not reach the decision at {position}: {status} {agreement}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }

    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    let out = Command::new("node")
        .arg(browser.join("dashboard.mjs"))
        .arg(format!("http://{addr}"))
        .arg(&token)
        .arg(&shot)
        .output_within(testkit::COMMAND_LIMIT)
        .expect("runs node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "browser check failed:\n{stderr}\n{stdout}"
    );
    let summary: Value = serde_json::from_str(stdout.trim()).expect("a JSON summary");
    eprintln!("dashboard: {summary}; screenshot at {}", shot.display());
}
