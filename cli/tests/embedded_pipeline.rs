//! The README's run command, end to end: `insights run --until-idle --input
//! samples/interactions.jsonl` on the embedded default (in-process broker, SQLite), then
//! the store is checked: every sample is accounted for and no personal data the sample
//! generator put in (samples/generate.py) is stored in clear.

use std::path::Path;
use std::process::Command;
use testkit::OutputWithin;

use insights_event_store::{EventFilter, EventStore, SqliteStore};

const CARDS: &[&str] = &[
    "4111 1111 1111 1111",
    "5500 0000 0000 0004",
    "3400 000000 00009",
    "4012888888881881",
    "6011 0009 9013 9424",
];
const IBANS: &[&str] = &[
    "DE89 3704 0044 0532 0130 00",
    "GB82 WEST 1234 5698 7654 32",
    "FR14 2004 1010 0505 0001 3M02 606",
    "NL91 ABNA 0417 1643 00",
    "ES91 2100 0418 4502 0005 1332",
];
const PHONES: &[&str] = &[
    "(415) 555-0132",
    "+1 212-555-0187",
    "+44 20 7946 0958",
    "+49 30 901820",
    "06 12 34 56 78",
    "555-0199",
];
const SSNS: &[&str] = &["219-09-9999", "457-55-5462", "078-05-1121"];
const IPS: &[&str] = &["192.168.10.24", "10.0.0.7", "2001:db8::1f", "203.0.113.42"];
const FIRST: &[&str] = &[
    "Maria", "James", "Aisha", "Lukas", "Sofia", "Chen", "Olivia", "Mateo", "Fatima", "Noah",
    "Emma", "Liam", "Yuki", "Hannah", "Pierre", "Ana", "Tomasz", "Ingrid", "Kwame", "Priya",
];
const LAST: &[&str] = &[
    "Schmidt", "Garcia", "Okafor", "Müller", "Rossi", "Nguyen", "Johnson", "Dubois", "Kowalski",
    "Jensen", "Haddad", "Silva", "Tanaka", "Brown", "van Dijk", "Novak", "Larsen", "Mensah",
    "Patel", "Fischer",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sample_interactions_flow_into_the_store_without_personal_data() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root");
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::copy(root.join("topology.toml"), dir.path().join("topology.toml")).expect("copies");
    let out = Command::new(env!("CARGO_BIN_EXE_insights"))
        .args(["run", "--until-idle", "--ops-listen", "off", "--input"])
        .arg(root.join("samples/interactions.jsonl"))
        .arg("--sentiment-model")
        .arg(root.join("models/sentiment-minilm"))
        .arg("--encoder-dir")
        .arg(root.join(".tools/models/all-MiniLM-L6-v2"))
        .arg("--sentiment-multilingual-model")
        .arg(root.join("models/sentiment-use-multilingual"))
        .arg("--multilingual-encoder-dir")
        .arg(root.join(".tools/models/use-multilingual-v3"))
        .current_dir(dir.path())
        .env_remove("INSIGHTS_BROKERS")
        .env_remove("INSIGHTS_STORE_URL")
        .env_remove("INSIGHTS_PRIVACY_KEY")
        .output_within(testkit::COMMAND_LIMIT)
        .expect("runs insights");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("produced 3000 interactions"), "{stderr}");

    let url = format!("sqlite://{}", dir.path().join("data/insights.db").display());
    let store = SqliteStore::open(&url, 2).await.expect("opens the store");
    let events = store
        .read_all(0, 100_000, &EventFilter::All)
        .await
        .expect("reads");
    let count = |t: &str| events.iter().filter(|e| e.data.event_type == t).count();
    // Every sample is accounted for: scrubbed, or dead-lettered with its reason.
    assert_eq!(count("InteractionScrubbed") + count("DeadLettered"), 3000);
    assert!(
        count("DeadLettered") >= 5,
        "the samples hold malformed records"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!(
            "InteractionScrubbed    {}",
            count("InteractionScrubbed")
        )),
        "{stdout}"
    );
    assert!(store.verify().await.expect("verifies").is_intact());

    // Every scrubbed interaction is scored, by a trained model (not the fallback): English
    // messages by the fine-tuned English model, the samples' German, French, Spanish and
    // Dutch ones by the multilingual model.
    assert_eq!(
        count("SentimentScored"),
        count("InteractionScrubbed"),
        "{stdout}"
    );
    let mut labels = std::collections::BTreeMap::<String, usize>::new();
    let mut backends = std::collections::BTreeMap::<&str, usize>::new();
    for e in events
        .iter()
        .filter(|e| e.data.event_type == "SentimentScored")
    {
        let v: serde_json::Value = serde_json::from_slice(&e.data.payload).expect("JSON payload");
        let scored = &v;
        let english = scored["context"]["language"]
            .as_str()
            .is_none_or(|l| l.starts_with("en"));
        let (backend, model) = if english {
            ("transformer", "sentiment-minilm")
        } else {
            ("multilingual", "sentiment-use-multilingual")
        };
        assert_eq!(scored["backend"], backend, "{scored}");
        assert_eq!(scored["fallback"], false, "{scored}");
        assert_eq!(scored["model_name"], model, "{scored}");
        *backends.entry(backend).or_default() += 1;
        *labels
            .entry(scored["label"].as_str().unwrap_or_default().to_owned())
            .or_default() += 1;
    }
    assert_eq!(labels.len(), 3, "all three labels occur: {labels:?}");
    assert_eq!(backends.len(), 2, "both models scored: {backends:?}");

    // Every scored interaction gets a draft, then exactly one of an automatic approval or
    // a review request; with no LLM configured, retrieval and templates draft.
    assert_eq!(
        count("ResponseDrafted"),
        count("SentimentScored"),
        "{stdout}"
    );
    let auto = events
        .iter()
        .filter(|e| e.data.event_type == "ResponseApproved")
        .count();
    assert_eq!(auto + count("ReviewRequested"), count("ResponseDrafted"));
    assert!(auto > 0 && count("ReviewRequested") > 0, "{stdout}");
    let mut reasons = std::collections::BTreeMap::<String, usize>::new();
    for e in events
        .iter()
        .filter(|e| e.data.event_type == "ReviewRequested")
    {
        let v: serde_json::Value = serde_json::from_slice(&e.data.payload).expect("JSON payload");
        assert!(
            e.data.stream_id.starts_with("review-"),
            "{}",
            e.data.stream_id
        );
        assert!(
            !v["draft_text"].as_str().unwrap_or_default().is_empty(),
            "{v}"
        );
        for r in v["reasons"].as_array().into_iter().flatten() {
            *reasons
                .entry(r.as_str().unwrap_or_default().to_owned())
                .or_default() += 1;
        }
    }
    for expected in ["negative_sentiment", "human_requested", "intent:legal"] {
        assert!(
            reasons.contains_key(expected),
            "{expected} never fired: {reasons:?}"
        );
    }

    // Fairness reported the closed windows; a report's counts agree with the stored
    // outcomes it covers (negative sentiment by gender, recounted from the store).
    let payloads = |t: &str| -> Vec<serde_json::Value> {
        events
            .iter()
            .filter(|e| e.data.event_type == t)
            .map(|e| serde_json::from_slice(&e.data.payload).expect("JSON payload"))
            .collect()
    };
    let reports = payloads("FairnessReported");
    assert!(!reports.is_empty(), "{stdout}");
    let by_gender: Vec<&serde_json::Value> = reports
        .iter()
        .filter(|r| {
            r["outcome"] == "negative_sentiment" && r["attributes"] == serde_json::json!(["gender"])
        })
        .collect();
    assert!(
        by_gender.len() >= 10,
        "a report per closed day: {}",
        by_gender.len()
    );
    let sentiments = payloads("SentimentScored");
    let mut compared = 0;
    for report in by_gender {
        let (start, end) = (
            report["window_start"].as_i64().expect("start"),
            report["window_end"].as_i64().expect("end"),
        );
        let mut recount = std::collections::BTreeMap::<String, (i64, i64)>::new();
        for s in &sentiments {
            let t = s["context"]["sent_at"].as_i64().expect("sent_at");
            if t >= start && t < end {
                let gender = s["context"]["demographics"]["gender"]
                    .as_str()
                    .unwrap_or("unknown")
                    .to_owned();
                let entry = recount.entry(format!("gender={gender}")).or_default();
                entry.0 += 1;
                entry.1 += i64::from(s["label"] == "negative");
            }
        }
        // Samples are in time order and the watermark follows the slowest partition, so no
        // outcome is late: every group's counts are exact.
        for g in report["groups"].as_array().expect("groups") {
            let name = g["group"].as_str().expect("group name");
            assert_eq!(
                (g["count"].as_i64(), g["positives"].as_i64()),
                recount
                    .get(name)
                    .map(|(n, p)| (Some(*n), Some(*p)))
                    .unwrap_or_default(),
                "{name} in {report}"
            );
            compared += 1;
        }
    }
    assert!(compared >= 20, "{compared} groups compared");

    let stored: String = events
        .iter()
        .map(|e| String::from_utf8_lossy(&e.data.payload).into_owned())
        .collect::<Vec<_>>()
        .join("\n");
    let mut leaks: Vec<String> = Vec::new();
    for value in CARDS
        .iter()
        .chain(IBANS)
        .chain(PHONES)
        .chain(SSNS)
        .chain(IPS)
    {
        if stored.contains(value) {
            leaks.push((*value).to_owned());
        }
    }
    for first in FIRST {
        for last in LAST {
            let name = format!("{first} {last}");
            if stored.contains(&name) {
                leaks.push(name);
            }
        }
    }
    for email_domain in ["@example.com", "@mail.example.org", "@example.net"] {
        if stored.contains(email_domain) {
            leaks.push(email_domain.to_owned());
        }
    }
    assert!(stored.contains("cust_"), "customers are pseudonymised");
    assert!(
        !stored.contains("\"cust-0"),
        "raw customer ids never stored"
    );
    assert!(leaks.is_empty(), "personal data stored in clear: {leaks:?}");
}
