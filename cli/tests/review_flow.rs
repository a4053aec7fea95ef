//! The review workflow end to end through the runtime: `insights run` on the embedded
//! default drafts replies and requests reviews; a reviewer, with a token from
//! `insights token issue`, claims and edits one over HTTP, and a second reviewer agrees (an
//! urgent item needs two opinions); the decisions land in the store
//! and on `review.decisions`, where the response processor picks it up.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use testkit::OutputWithin;

use insights_event_store::{EventFilter, EventStore, SqliteStore};
use insights_schemas::{Codec, Envelope, Event};
use serde_json::json;

mod common;
use common::{free_port, http, spawn_run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reviewers_decision_over_http_lands_in_the_store_and_on_its_topic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root");
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::copy(root.join("topology.toml"), dir.path().join("topology.toml")).expect("copies");
    // A few customers who need a person: a legal threat, a request for a human.
    let input = dir.path().join("input.jsonl");
    let lines: Vec<String> = [
        "Your router is garbage and your support is worse. I'm talking to my lawyer.",
        "I don't want a bot. Please let me talk to a real person.",
        "How do I change the wifi password on my router?",
    ]
    .iter()
    .enumerate()
    .map(|(i, text)| {
        json!({
            "interaction_id": format!("m-{i}"),
            "conversation_id": format!("conv-{i}"),
            "customer_id": format!("cust-{i}"),
            "channel": "chat",
            "product": "router",
            "language": "en",
            "text": text,
            "demographics": {"gender": "female"},
            "sent_at": "2026-11-20T10:00:00Z"
        })
        .to_string()
    })
    .collect();
    std::fs::write(&input, lines.join("\n") + "\n").expect("writes input");

    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("address");
    let listen = addr.to_string();
    let (running, rx) = spawn_run(
        dir.path(),
        &[
            "--listen".as_ref(),
            listen.as_ref(),
            "--sentiment-backend".as_ref(),
            "lexicon".as_ref(),
            "--input".as_ref(),
            input.as_os_str(),
        ],
    );
    let mut log = Vec::new();
    let mut brokers = None;
    let deadline = Instant::now() + Duration::from_secs(120);
    while !log
        .iter()
        .any(|l: &String| l.contains("API, metrics and health"))
    {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| panic!("insights run did not serve HTTP: {log:#?}"));
        if let Some(b) = line.strip_prefix("insights: embedded broker at ") {
            brokers = Some(b.trim().to_owned());
        }
        log.push(line);
    }
    let brokers = brokers.expect("the embedded broker's address");

    let issue = |subject: &str| {
        let issued = Command::new(env!("CARGO_BIN_EXE_insights"))
            .args([
                "token",
                "issue",
                "--subject",
                subject,
                "--role",
                "reviewer",
                "--ttl",
                "1h",
            ])
            .current_dir(dir.path())
            .env_remove("INSIGHTS_JWT_SECRET")
            .output_within(testkit::COMMAND_LIMIT)
            .expect("issues a token");
        assert!(
            issued.status.success(),
            "{}",
            String::from_utf8_lossy(&issued.stderr)
        );
        String::from_utf8_lossy(&issued.stdout).trim().to_owned()
    };
    let token = issue("alice");
    let bob = issue("bob");

    // The two that need a person reach the queue (the lexicon may send the third too,
    // for low confidence).
    let deadline = Instant::now() + Duration::from_secs(120);
    let queue = loop {
        let (status, body) = http(addr, "GET", "/v1/reviews", &token, None);
        assert_eq!(status, 200, "{body}");
        let intents: Vec<&str> = body["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|i| i["intent"].as_str())
            .collect();
        if intents.contains(&"legal") && intents.contains(&"human_request") {
            break body;
        }
        assert!(Instant::now() < deadline, "the queue never filled: {body}");
        std::thread::sleep(Duration::from_millis(300));
    };
    let (status, body) = http(addr, "GET", "/v1/reviews", "not-a-token", None);
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("invalid_token"))
    );
    let item = &queue["items"][0];
    assert_eq!(
        item["priority"], "urgent",
        "the legal threat comes first: {queue}"
    );
    let id = item["review_id"].as_str().expect("an id").to_owned();

    let (status, body) = http(
        addr,
        "POST",
        &format!("/v1/reviews/{id}/claim"),
        &token,
        None,
    );
    assert_eq!(status, 200, "{body}");
    let reply = "We are sorry about the trouble. A senior colleague will call you today.";
    let (status, body) = http(
        addr,
        "POST",
        &format!("/v1/reviews/{id}/decision"),
        &token,
        Some(json!({"decision": "edit", "text": reply, "corrected_sentiment": "negative"})),
    );
    assert_eq!(status, 200, "{body}");
    // An urgent item needs a second opinion (the default policy): Bob's, the same.
    assert_eq!(body["item"]["status"], "open", "{body}");
    assert_eq!(body["item"]["opinions_required"], 2, "{body}");
    let (status, body) = http(addr, "POST", &format!("/v1/reviews/{id}/claim"), &bob, None);
    assert_eq!(status, 200, "{body}");
    let (status, body) = http(
        addr,
        "POST",
        &format!("/v1/reviews/{id}/decision"),
        &bob,
        Some(json!({"decision": "edit", "text": reply})),
    );
    assert_eq!(status, 200, "{body}");
    let position = body["position"].as_u64().expect("a position");
    let (_, body) = http(
        addr,
        "GET",
        &format!("/v1/reviews/{id}?min_position={position}"),
        &token,
        None,
    );
    assert_eq!(
        body["item"]["status"], "decided",
        "read-your-writes: {body}"
    );

    // Published for the processors downstream: the claims, the opinions and the reply.
    let messages =
        testkit::read_topic(&brokers, "review.decisions", 5, Duration::from_secs(30)).await;
    let codec = Codec::new();
    let published: Vec<Envelope> = messages
        .iter()
        .filter_map(|m| rdkafka::Message::payload(m))
        .map(|p| codec.decode::<Envelope>(p).expect("decodes"))
        .collect();
    let types: Vec<&str> = published.iter().map(Envelope::event_type).collect();
    assert_eq!(
        types,
        [
            "ReviewClaimed",
            "ReviewDecided",
            "ReviewClaimed",
            "ReviewDecided",
            "ResponseApproved"
        ],
        "{published:?}"
    );

    // Stop the pipeline (SIGTERM drains it) and read the store.
    let pid = running.0.id();
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let mut running = running;
    let deadline = Instant::now() + Duration::from_secs(60);
    while running.0.try_wait().expect("waits").is_none() {
        assert!(
            Instant::now() < deadline,
            "insights run did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let url = format!("sqlite://{}", dir.path().join("data/insights.db").display());
    let store = SqliteStore::open(&url, 2).await.expect("opens the store");
    let events: Vec<Envelope> = store
        .read_all(0, 100_000, &EventFilter::All)
        .await
        .expect("reads")
        .iter()
        .map(|r| insights_event_store::envelope::from_recorded(r).expect("decodes"))
        .collect();
    let decided: Vec<_> = events
        .iter()
        .filter_map(|e| match &e.event {
            Event::ReviewDecided(d) => Some(d),
            _ => None,
        })
        .collect();
    let opinions: Vec<(&str, &str, bool)> = decided
        .iter()
        .map(|d| (d.reviewer.as_str(), d.role.as_str(), d.settles))
        .collect();
    assert_eq!(
        opinions,
        [("alice", "first", false), ("bob", "second", true)]
    );
    assert!(decided.iter().all(|d| d.review_id.to_string() == id));
    let approved: Vec<_> = events
        .iter()
        .filter_map(|e| match &e.event {
            Event::ResponseApproved(a) if !a.automatic => Some(a),
            _ => None,
        })
        .collect();
    assert_eq!(approved.len(), 1);
    assert_eq!(approved[0].final_text, reply);
    assert!(
        events
            .iter()
            .filter(|e| e.event_type() == "ResponseDrafted")
            .count()
            >= 2
    );
    assert!(store.verify().await.expect("verifies").is_intact());
}
