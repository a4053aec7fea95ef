//! The encrypt operator end to end on the embedded default: the privacy processor seals
//! values under the data subject's key (nothing in clear in the store), `insights vault
//! reveal` re-identifies a token, `insights vault erase` destroys the key — the value is
//! gone, a `SubjectErased` event is appended, and the hash chain still verifies.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};
use testkit::OutputWithin;

use common::{free_port, http, spawn_run};

use insights_event_store::{EventFilter, EventStore, SqliteStore};

fn insights(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_insights"))
        .args(args)
        .current_dir(dir)
        .env_remove("INSIGHTS_BROKERS")
        .env_remove("INSIGHTS_STORE_URL")
        .env_remove("INSIGHTS_PRIVACY_KEY")
        .output_within(testkit::COMMAND_LIMIT)
        .expect("runs insights")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sealed_values_reveal_until_the_subject_is_erased() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root");
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::copy(root.join("topology.toml"), dir.path().join("topology.toml")).expect("copies");
    let line = |id: &str, customer: &str, text: &str| {
        serde_json::json!({
            "interaction_id": id, "conversation_id": format!("conv-{customer}"),
            "customer_id": customer, "tenant_id": "acme", "channel": "email",
            "language": "en", "text": text, "sent_at": "2026-11-20T10:00:00Z",
        })
        .to_string()
    };
    let input = [
        line(
            "m1",
            "cust-7",
            "Hi, this is Maria Schmidt, reach me at maria.schmidt@example.com or +44 20 7946 0958",
        ),
        line(
            "m2",
            "cust-7",
            "Maria Schmidt again: is the router on its way?",
        ),
        line(
            "m3",
            "cust-8",
            "My name is Kwame Mensah and my card is 4111 1111 1111 1111",
        ),
    ]
    .join("\n");
    std::fs::write(dir.path().join("in.jsonl"), input + "\n").expect("writes");
    let run = insights(
        dir.path(),
        &[
            "run",
            "--processor",
            "privacy",
            "--until-idle",
            "--ops-listen",
            "off",
            "--no-projections",
            "--input",
            "in.jsonl",
        ],
    );
    assert!(run.status.success(), "{}", text(&run).1);

    let url = format!("sqlite://{}", dir.path().join("data/insights.db").display());
    let store = SqliteStore::open(&url, 2).await.expect("opens the store");
    let events = store
        .read_all(0, 1_000, &EventFilter::All)
        .await
        .expect("reads");
    let mut scrubbed: Vec<serde_json::Value> = events
        .iter()
        .filter(|e| e.data.event_type == "InteractionScrubbed")
        .map(|e| serde_json::from_slice(&e.data.payload).expect("JSON"))
        .collect();
    assert_eq!(scrubbed.len(), 3);
    // Conversations travel on their own partitions: the store's order is per conversation.
    scrubbed.sort_by_key(|s| s["context"]["interaction_id"].as_str().map(str::to_owned));
    let all = serde_json::to_string(&scrubbed).expect("json");
    for secret in [
        "Maria",
        "Schmidt",
        "maria.schmidt",
        "7946 0958",
        "Kwame",
        "1111 1111 1111",
    ] {
        assert!(!all.contains(secret), "{secret} stored in clear: {all}");
    }
    // The same person in two messages of the conversation: one token, sealed each time.
    let person_token = scrubbed[0]["sealed"]
        .as_array()
        .expect("sealed values")
        .iter()
        .find(|s| s["entity_type"] == "PERSON")
        .and_then(|s| s["token"].as_str())
        .expect("a sealed PERSON")
        .to_owned();
    assert!(
        scrubbed[1]["text"]
            .as_str()
            .is_some_and(|t| t.contains(&person_token)),
        "{}",
        scrubbed[1]
    );
    let email_token = scrubbed[0]["sealed"]
        .as_array()
        .expect("sealed")
        .iter()
        .find(|s| s["entity_type"] == "EMAIL_ADDRESS")
        .and_then(|s| s["token"].as_str())
        .expect("a sealed EMAIL_ADDRESS")
        .to_owned();
    // Cards are masked, not sealed.
    assert!(all.contains("**** **** **** 1111"), "{all}");

    let reveal =
        |token: &str| insights(dir.path(), &["vault", "reveal", "--tenant", "acme", token]);
    let o = reveal(&person_token);
    assert!(o.status.success(), "{}", text(&o).1);
    assert_eq!(text(&o).0.trim(), "Maria Schmidt");
    let o = reveal(&email_token);
    assert_eq!(text(&o).0.trim(), "maria.schmidt@example.com");
    let o = reveal("<PERSON_v0000000000000000>");
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).1.contains("no sealed value"), "{}", text(&o).1);

    // Over HTTP, for auditors: a views-only server, which opens the vault with the privacy
    // secret the pipeline created.
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port())
        .parse()
        .expect("address");
    let listen = addr.to_string();
    let (_server, rx) = spawn_run(
        dir.path(),
        &[
            "--views-only".as_ref(),
            "--listen".as_ref(),
            listen.as_ref(),
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut log = Vec::new();
    while !log
        .iter()
        .any(|l: &String| l.contains("API, metrics and health"))
    {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| panic!("the views-only server did not serve HTTP: {log:#?}"));
        log.push(line);
    }
    let token = |role: &str| {
        let o = insights(
            dir.path(),
            &["token", "issue", "--subject", "dpo", "--role", role],
        );
        assert!(o.status.success(), "{}", text(&o).1);
        text(&o).0.trim().to_owned()
    };
    let (auditor, analyst) = (token("auditor"), token("analyst"));
    let reveal_http = |bearer: &str, token: &str| {
        http(
            addr,
            "POST",
            "/v1/vault/reveal",
            bearer,
            Some(serde_json::json!({"token": token, "tenant": "acme"})),
        )
    };
    let (status, body) = reveal_http(&auditor, &person_token);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["value"], "Maria Schmidt", "{body}");
    assert_eq!(body["type"], "PERSON", "{body}");
    let (status, body) = reveal_http(&analyst, &person_token);
    assert_eq!(status, 403, "analysts do not re-identify: {body}");
    assert!(body["error"]["message"].is_string(), "{body}");
    let (status, body) = reveal_http(&auditor, "<PERSON_v0000000000000000>");
    assert_eq!(status, 404, "{body}");
    let (status, body) = http(
        addr,
        "POST",
        "/v1/vault/reveal",
        &auditor,
        Some(serde_json::json!({"tokn": person_token})),
    );
    assert_eq!(status, 400, "a misspelt field: {body}");

    let o = insights(
        dir.path(),
        &[
            "vault",
            "erase",
            "--tenant",
            "acme",
            "--customer",
            "cust-7",
            "--requested-by",
            "dpo@acme.example",
        ],
    );
    assert!(o.status.success(), "{}", text(&o).1);
    assert!(text(&o).0.contains("key destroyed"), "{}", text(&o).0);
    for token in [&person_token, &email_token] {
        let o = reveal(token);
        assert_eq!(o.status.code(), Some(1));
        let (_, err) = text(&o);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("erased"), "{err}");
    }
    let (status, body) = reveal_http(&auditor, &person_token);
    assert_eq!(status, 410, "erased is gone over HTTP too: {body}");
    assert_eq!(body["error"]["code"], "erased", "{body}");
    // The other subject is untouched.
    let kwame = scrubbed[2]["sealed"][0]["token"]
        .as_str()
        .expect("a sealed value of cust-8")
        .to_owned();
    assert_eq!(text(&reveal(&kwame)).0.trim(), "Kwame Mensah");

    let events = store
        .read_all(0, 1_000, &EventFilter::All)
        .await
        .expect("reads");
    let erased: Vec<serde_json::Value> = events
        .iter()
        .filter(|e| e.data.event_type == "SubjectErased")
        .map(|e| serde_json::from_slice(&e.data.payload).expect("JSON"))
        .collect();
    assert_eq!(erased.len(), 1);
    assert_eq!(erased[0]["requested_by"], "dpo@acme.example");
    assert_eq!(
        erased[0]["subject"],
        scrubbed[0]["context"]["customer_pseudonym"]
    );
    assert!(store.verify().await.expect("verifies").is_intact());
}
