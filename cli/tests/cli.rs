//! The `insights` binary as users run it: exit codes and one-line errors.

use std::path::Path;
use std::process::{Command, Output};
use testkit::OutputWithin;

use insights_event_store::{AppendBatch, EventData, EventStore, SqliteStore};
use sqlx::Executor;

fn insights(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_insights"))
        .args(args)
        .current_dir(dir)
        .env_remove("INSIGHTS_STORE_URL")
        .env_remove("INSIGHTS_TOPOLOGY")
        .output_within(testkit::COMMAND_LIMIT)
        .expect("runs insights")
}

fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn the_shipped_topology_checks() {
    let o = insights(&["topology", "check"], repo_root());
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("valid"));
}

#[test]
fn a_broken_topology_fails_with_one_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let text = std::fs::read_to_string(repo_root().join("topology.toml"))
        .expect("reads")
        .replace("value_schema = \"Interaction\"", "value_schema = \"Nope\"");
    std::fs::write(dir.path().join("topology.toml"), text).expect("writes");
    let o = insights(&["topology", "check"], dir.path());
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("`Nope`"), "{err}");
}

#[test]
fn topology_check_reports_every_processors_config_problems_in_one_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let text = std::fs::read_to_string(repo_root().join("topology.toml"))
        .expect("reads")
        .replace("confidence = 0.95", "confidence = 1.5")
        .replace("window = \"1d\"", "window = \"fortnight\"")
        .replace("CREDIT_CARD = \"mask\"", "CREDIT_CARD = \"shred\"");
    std::fs::write(dir.path().join("topology.toml"), text).expect("writes");
    let o = insights(&["topology", "check"], dir.path());
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("[processors.fairness.config]"), "{err}");
    assert!(err.contains("alerts.confidence = 1.5"), "{err}");
    assert!(err.contains("window"), "{err}");
    assert!(
        err.contains("[processors.privacy.config]: operators: \"shred\" for CREDIT_CARD"),
        "{err}"
    );
}

#[test]
fn schemas_check_passes() {
    let o = insights(&["schemas", "check"], repo_root());
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn an_unsupported_store_url_is_one_readable_line() {
    let o = insights(&["store", "head", "--store", "mysql://x"], repo_root());
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("unsupported store URL"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_trace_protocol_not_built_in_is_one_readable_line() {
    let o = Command::new(env!("CARGO_BIN_EXE_insights"))
        .args(["topology", "check"])
        .current_dir(repo_root())
        .env_remove("INSIGHTS_TOPOLOGY")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317")
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
        .output_within(testkit::COMMAND_LIMIT)
        .expect("runs insights");
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("insights: OTEL_EXPORTER_OTLP_PROTOCOL=grpc: only `http/protobuf`"),
        "{err}"
    );
}

#[tokio::test]
async fn store_verify_names_the_tampered_position() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("e.db").display());
    let store = SqliteStore::open(&url, 2).await.expect("opens");
    let events = (0..5)
        .map(|i| EventData {
            event_id: uuid::Uuid::new_v4(),
            stream_id: format!("s{i}"),
            event_type: "T".into(),
            schema_version: 1,
            causation_id: None,
            correlation_id: "c".into(),
            occurred_at: 0,
            producer: "test".into(),
            producer_version: "1".into(),
            payload: b"{}".to_vec(),
        })
        .collect();
    store
        .append(AppendBatch::new(events))
        .await
        .expect("appends");

    let ok = insights(&["store", "verify", "--store", &url], dir.path());
    assert!(ok.status.success(), "{}", stderr(&ok));
    assert!(String::from_utf8_lossy(&ok.stdout).contains("chain intact"));

    store
        .pool()
        .execute("DROP TRIGGER events_no_update; UPDATE events SET payload = x'7b7d20' WHERE position = 3")
        .await
        .expect("tampers");
    let bad = insights(&["store", "verify", "--store", &url], dir.path());
    assert_eq!(bad.status.code(), Some(1));
    assert!(stderr(&bad).contains("position 3"), "{}", stderr(&bad));
}

#[test]
fn running_a_processor_this_build_lacks_says_so_plainly() {
    let dir = tempfile::tempdir().expect("temp dir");
    // A topology naming a processor no crate of this build provides.
    let topology = std::fs::read_to_string(repo_root().join("topology.toml")).expect("reads")
        + "\n[topics.\"translations\"]\nvalue_schema = \"Envelope\"\nrole = \"sink\"\n\n\
           [processors.translation]\ninputs = [\"interactions.scored\"]\noutputs = [\"translations\"]\n";
    std::fs::write(dir.path().join("topology.toml"), topology).expect("writes");
    let o = insights(
        &["run", "--processor", "translation", "--ops-listen", "off"],
        dir.path(),
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("pipeline not yet runnable"),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("(translation)"), "{}", stderr(&o));
    // The embedded default store was created and migrated on the way.
    assert!(dir.path().join("data/insights.db").exists());
}

#[test]
fn an_undeclared_processor_is_one_readable_line() {
    let o = insights(
        &["run", "--processor", "nope", "--ops-listen", "off"],
        repo_root(),
    );
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("`nope` is not declared"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn scrub_reports_spans_on_the_original_text_in_chars() {
    let input = "{\"text\":\"Grüße! My name is Maria Schmidt, IBAN DE89 3704 0044 0532 0130 00\"}\nnot json\n";
    // The language declared, as the pipeline does from the interaction: undeclared, the
    // English tagger reads the greeting "Grüße!" as a name (recorded on issue 4).
    let o = piped_with(
        &["scrub", "--language", "de"],
        repo_root(),
        input,
        &[("INSIGHTS_PRIVACY_KEY", &"11".repeat(32))],
    );
    assert_eq!(o.status.code(), Some(1), "one bad line");
    assert!(stderr(&o).contains("line 2"), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let first: serde_json::Value =
        serde_json::from_str(out.lines().next().expect("a line")).expect("JSON");
    let original = "Grüße! My name is Maria Schmidt, IBAN DE89 3704 0044 0532 0130 00";
    let found: Vec<(String, String)> = first["spans"]
        .as_array()
        .expect("spans")
        .iter()
        .map(|s| {
            let (start, end) = (
                s["start"].as_u64().expect("start") as usize,
                s["end"].as_u64().expect("end") as usize,
            );
            (
                s["type"].as_str().expect("type").to_owned(),
                original.chars().skip(start).take(end - start).collect(),
            )
        })
        .collect();
    assert_eq!(
        found,
        vec![
            ("PERSON".to_owned(), "Maria Schmidt".to_owned()),
            (
                "IBAN_CODE".to_owned(),
                "DE89 3704 0044 0532 0130 00".to_owned()
            )
        ]
    );
    assert!(!first["text"].as_str().expect("text").contains("Maria"));
    assert_eq!(
        out.lines().nth(1),
        Some(r#"{"error":"not a JSON object with a \"text\" string"}"#)
    );
}

#[test]
fn scrub_answers_the_same_in_the_same_order_on_any_number_of_threads() {
    // Sample interactions in five languages, with a bad line among them.
    let samples = std::fs::read_to_string(repo_root().join("samples/interactions.jsonl"))
        .expect("reads the samples");
    let mut lines: Vec<&str> = samples.lines().take(400).collect();
    lines.insert(150, "{\"no_text\": true}");
    let input = lines.join("\n") + "\n";
    let run = |threads: &str| {
        piped_with(
            &["scrub", "--threads", threads],
            repo_root(),
            &input,
            &[("INSIGHTS_PRIVACY_KEY", &"22".repeat(32))],
        )
    };
    let one = run("1");
    assert_eq!(one.status.code(), Some(1), "one bad line: {}", stderr(&one));
    assert!(stderr(&one).contains("line 151:"), "{}", stderr(&one));
    let out = String::from_utf8_lossy(&one.stdout).into_owned();
    assert_eq!(out.lines().count(), 401, "one answer per line");
    assert!(
        out.lines()
            .nth(150)
            .expect("line 151")
            .starts_with("{\"error\"")
    );
    for threads in ["3", "0"] {
        let many = run(threads);
        assert_eq!(many.status.code(), Some(1), "--threads {threads}");
        assert_eq!(stderr(&many), stderr(&one), "--threads {threads}");
        assert!(
            many.stdout == one.stdout,
            "--threads {threads} answered differently from one thread"
        );
    }
}

#[test]
fn scrub_answers_a_line_while_stdin_stays_open() {
    use std::io::{BufRead, Write};
    use std::process::Stdio;
    for threads in ["1", "2"] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_insights"))
            .args(["scrub", "--threads", threads])
            .current_dir(repo_root())
            .env("INSIGHTS_PRIVACY_KEY", "33".repeat(32))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starts insights scrub");
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(b"{\"text\": \"Please call Maria Lopez on +44 20 7946 0958\"}\n")
            .expect("writes a line");
        stdin.flush().expect("flushes");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = std::io::BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let limit = std::time::Duration::from_secs(120);
        let answer = rx.recv_timeout(limit);
        // stdin closes only now: the answer had to come while it was open.
        drop(stdin);
        let deadline = std::time::Instant::now() + limit;
        let status = loop {
            if let Some(status) = child.try_wait().expect("waits") {
                break status;
            }
            if std::time::Instant::now() >= deadline {
                let _ = child.kill();
                panic!("--threads {threads}: scrub still running {limit:?} after stdin closed");
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        let answer = answer.unwrap_or_else(|_| {
            panic!(
                "--threads {threads}: no answer within {limit:?} to a line while stdin stayed open"
            )
        });
        assert!(
            answer.contains("PERSON") && !answer.contains("Maria"),
            "{answer}"
        );
        assert!(status.success(), "--threads {threads}: {status}");
    }
}

#[test]
fn train_privacy_writes_a_model_its_card_and_the_validation_errors() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Templates 2–4 train; template 1 (`% 5 == 1`) validates; the first and last names
    // differ, so what the validation sentences hold is partly new to the model.
    let firsts = [
        "Maria", "Jonas", "Akira", "Lena", "Omar", "Chloé", "Pavel", "Sunita",
    ];
    let lasts = [
        "Schmidt", "Berg", "Tanaka", "Novak", "Haddad", "Martin", "Ivanov", "Rao",
    ];
    let mut data = String::new();
    for (i, (first, last)) in firsts.iter().zip(lasts).enumerate() {
        for (template, before, after) in [
            (2, "Please call ", " back today."),
            (3, "My name is ", " and I need help."),
            (4, "Send it to ", " at the office."),
            (1, "Ask ", " about the invoice."),
        ] {
            let name = format!("{first} {last}");
            let start = before.chars().count();
            let end = start + name.chars().count();
            data.push_str(
                &serde_json::json!({
                    "template_id": template + 5 * i,
                    "text": format!("{before}{name}{after}"),
                    "spans": [{"type": "PERSON", "start": start, "end": end}],
                })
                .to_string(),
            );
            data.push('\n');
        }
    }
    std::fs::write(dir.path().join("train.jsonl"), &data).expect("data");
    let o = insights(
        &[
            "train",
            "privacy",
            "--data",
            "train.jsonl",
            "--out",
            "model",
            "--epochs",
            "3",
            "--errors",
            "errors.jsonl",
        ],
        dir.path(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        dir.path()
            .join("model/tagger.bin")
            .metadata()
            .expect("model")
            .len()
            > 0
    );
    let card = std::fs::read_to_string(dir.path().join("model/README.md")).expect("card");
    assert!(
        card.contains("validating") || card.contains("Validation"),
        "{card}"
    );
    // Every line of the errors file names a validation sentence and what went wrong in it.
    let errors = std::fs::read_to_string(dir.path().join("errors.jsonl")).expect("errors");
    for line in errors.lines().filter(|l| !l.is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line).expect("JSON");
        assert_eq!(v["template_id"].as_u64().map(|t| t % 5), Some(1), "{line}");
        assert!(
            v["text"].as_str().expect("text").starts_with("Ask "),
            "{line}"
        );
        let listed = v["missed"].as_array().expect("missed").len()
            + v["wrong"].as_array().expect("wrong").len();
        assert!(listed > 0, "a line without an error: {line}");
    }
    // The trained model serves `scrub` in place of the built-in one; a file that is not a
    // model is one readable line.
    let o = piped(
        &["--privacy-model", "model/tagger.bin", "scrub"],
        dir.path(),
        "{\"text\":\"Please call Sunita Rao back today.\"}\n",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let o = piped(
        &["--privacy-model", "model/README.md", "scrub"],
        dir.path(),
        "{\"text\":\"hello\"}\n",
    );
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stderr(&o).trim().lines().count(), 1, "{}", stderr(&o));
    assert!(stderr(&o).contains("not a tagger model"), "{}", stderr(&o));
    // No errors listed only where validation was perfect.
    assert_eq!(
        errors.trim().is_empty(),
        card.contains("combined **1.000**"),
        "{errors}\n{card}"
    );

    // A span with an unknown type is one readable line naming the file and line.
    std::fs::write(
        dir.path().join("bad.jsonl"),
        r#"{"template_id": 2, "text": "Hi Maria", "spans": [{"type": "NAME", "start": 3, "end": 8}]}"#,
    )
    .expect("bad data");
    let o = insights(
        &["train", "privacy", "--data", "bad.jsonl", "--out", "model2"],
        dir.path(),
    );
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("bad.jsonl line 1") && err.contains("NAME"),
        "{err}"
    );
}

#[test]
fn produce_sends_every_line_even_one_that_is_not_utf8() {
    let tansu = testkit::Tansu::start();
    tansu.create_topic("interactions.raw", 1);
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("in.jsonl");
    let mut bytes = b"{\"conversation_id\":\"c1\",\"text\":\"one\"}\n".to_vec();
    bytes.extend_from_slice(b"{\"text\": \"\xff\xfe garbled\"}\n\n");
    bytes.extend_from_slice(b"{\"conversation_id\":\"c3\",\"text\":\"three\"}");
    std::fs::write(&file, bytes).expect("writes");
    let o = Command::new(env!("CARGO_BIN_EXE_insights"))
        .args(["produce", "--brokers", &tansu.brokers(), "--file"])
        .arg(&file)
        .current_dir(repo_root())
        .output_within(testkit::COMMAND_LIMIT)
        .expect("runs");
    assert!(o.status.success(), "{}", stderr(&o));
    // Regression: the invalid line used to end reading silently.
    assert!(stderr(&o).contains("produced 3 messages"), "{}", stderr(&o));
}

fn piped(args: &[&str], dir: &Path, input: &str) -> Output {
    piped_with(args, dir, input, &[])
}

/// Runs insights in `dir` with `input` on stdin and extra environment variables (bounded
/// like every command a test runs).
fn piped_with(args: &[&str], dir: &Path, input: &str, env: &[(&str, &str)]) -> Output {
    let stdin = tempfile::NamedTempFile::new().expect("a stdin file");
    std::fs::write(stdin.path(), input).expect("writes stdin");
    Command::new(env!("CARGO_BIN_EXE_insights"))
        .args(args)
        .current_dir(dir)
        .envs(env.iter().copied())
        .stdin(std::fs::File::open(stdin.path()).expect("opens stdin"))
        .output_within(testkit::COMMAND_LIMIT)
        .expect("runs insights")
}

#[test]
fn sentiment_scores_json_lines_with_either_backend() {
    let input = "{\"text\":\"This is awful, I am furious and want a refund.\"}\n\
                 not json\n\
                 {\"text\":\"Thank you so much, that was wonderful help!\"}\n\
                 {\"text\":\"Vielen Dank, der Techniker war großartig!\",\"language\":\"de\"}\n";
    for backend in ["transformer", "lexicon"] {
        let o = piped(
            &["sentiment", "--sentiment-backend", backend],
            repo_root(),
            input,
        );
        assert_eq!(o.status.code(), Some(1), "one bad line");
        assert!(stderr(&o).contains("line 2"), "{}", stderr(&o));
        assert!(
            !stderr(&o).contains("falls back") && !stderr(&o).contains("with the lexicon:"),
            "the {backend} model loads: {}",
            stderr(&o)
        );
        let out: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).expect("JSON"))
            .collect();
        assert_eq!(out.len(), 4, "one answer per line, in order");
        // German goes to the multilingual model beside the transformer; the lexicon
        // reads everything when it is asked for.
        let german = if backend == "transformer" {
            "multilingual"
        } else {
            backend
        };
        assert_eq!(out[0]["backend"], backend, "{}", out[0]);
        assert_eq!(out[3]["backend"], german, "{}", out[3]);
        if backend == "transformer" {
            assert_eq!(out[3]["label"], "positive", "{}", out[3]);
            assert_eq!(out[3]["model"], "sentiment-use-multilingual-1.0.0");
        }
        assert_eq!(out[0]["label"], "negative", "{backend}: {}", out[0]);
        assert!(out[1]["error"].is_string());
        assert_eq!(out[2]["label"], "positive", "{backend}: {}", out[2]);
        let scores = out[2]["scores"].as_object().expect("scores");
        let sum: f64 = scores.values().filter_map(|v| v.as_f64()).sum();
        assert!((sum - 1.0).abs() < 1e-9);
        assert_eq!(out[2]["score"], scores["positive"]);
    }
}

#[test]
fn sentiment_without_its_model_falls_back_to_the_lexicon_and_says_so() {
    let dir = tempfile::tempdir().expect("temp dir");
    let o = piped(&["sentiment"], dir.path(), "{\"text\":\"I love it\"}\n");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("scoring with the lexicon"),
        "{}",
        stderr(&o)
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("positive"));
}

/// `insights fairness` on stdin, grouped by `gender`, outcome `y_pred`, plus `extra`.
fn fairness(extra: &[&str], csv: &str) -> Output {
    let mut args = vec![
        "fairness",
        "--input",
        "-",
        "--sensitive",
        "gender",
        "--outcome",
        "y_pred",
    ];
    args.extend_from_slice(extra);
    piped(&args, repo_root(), csv)
}

#[test]
fn fairness_reports_a_csv_as_json_and_names_a_bad_value() {
    let csv = "gender,y_pred,y_true\nf,1,1\nf,0,1\nm,1,0\nm,1,1\n";
    let o = fairness(&["--label", "y_true", "--privileged", "gender=m"], csv);
    assert!(o.status.success(), "{}", stderr(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(report["demographic_parity_difference"], 0.5);
    assert_eq!(report["disparate_impact"], 0.5);
    assert_eq!(report["groups"].as_array().expect("groups").len(), 2);
    assert!(
        report.get("intervals").is_none(),
        "no bootstrap unless asked"
    );

    let rows: String = (0..400)
        .map(|i| {
            format!(
                "{},{},{}\n",
                ["f", "m"][i % 2],
                u8::from(i % 5 < 2 + i % 2),
                i % 3 % 2
            )
        })
        .collect();
    let o = fairness(
        &["--bootstrap", "200"],
        &format!("gender,y_pred,y_true\n{rows}"),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    let dpd = report["demographic_parity_difference"]
        .as_f64()
        .expect("dpd");
    let interval = &report["intervals"]["demographic_parity_difference"];
    assert!(interval["low"].as_f64().expect("low") <= dpd, "{interval}");
    assert!(
        interval["high"].as_f64().expect("high") >= dpd,
        "{interval}"
    );
    assert!(report["intervals"].get("disparate_impact").is_none());

    let bad = fairness(&[], "gender,y_pred\nf,maybe\n");
    assert_eq!(bad.status.code(), Some(1));
    assert_eq!(stderr(&bad).lines().count(), 1, "{}", stderr(&bad));
    assert!(stderr(&bad).contains("line 2"), "{}", stderr(&bad));
}

#[tokio::test]
async fn replay_verifies_the_store_and_exported_bundles_offline() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("e.db").display());
    let store = SqliteStore::open(&url, 2).await.expect("opens");
    let events = (0..5)
        .map(|i| EventData {
            event_id: uuid::Uuid::new_v4(),
            stream_id: format!("s{i}"),
            event_type: if i % 2 == 0 { "A" } else { "B" }.into(),
            schema_version: 1,
            causation_id: (i > 0).then(|| "cause".to_owned()),
            correlation_id: "c".into(),
            occurred_at: 1_790_000_000_000_000 + i,
            producer: "test".into(),
            producer_version: "1".into(),
            payload: format!("{{\"n\": {i}, \"text\": \"caf\u{e9} \u{1f600}\"}}").into_bytes(),
        })
        .collect();
    store
        .append(AppendBatch::new(events))
        .await
        .expect("appends");

    let verified = insights(&["replay", "--verify", "--store", &url], dir.path());
    assert!(verified.status.success(), "{}", stderr(&verified));
    let summary = String::from_utf8_lossy(&verified.stdout).into_owned();
    assert!(summary.contains("events 5 positions 1..5"), "{summary}");
    assert!(summary.contains("types [A=3, B=2]"), "{summary}");
    assert!(summary.contains("chain intact"), "{summary}");

    let bundle = dir.path().join("audit.jsonl");
    let exported = insights(
        &[
            "replay",
            "--export",
            bundle.to_str().expect("utf-8"),
            "--store",
            &url,
        ],
        dir.path(),
    );
    assert!(exported.status.success(), "{}", stderr(&exported));
    // Offline: no store needed.
    let offline = insights(
        &[
            "replay",
            "--verify",
            "--file",
            bundle.to_str().expect("utf-8"),
        ],
        dir.path(),
    );
    assert!(offline.status.success(), "{}", stderr(&offline));
    assert_eq!(
        String::from_utf8_lossy(&offline.stdout),
        summary,
        "the bundle verifies to the same summary as the store"
    );

    // Tampering with an exported event is caught at its position.
    let text = std::fs::read_to_string(&bundle).expect("reads");
    let tampered = dir.path().join("tampered.jsonl");
    std::fs::write(&tampered, text.replacen("\\\"n\\\": 2", "\\\"n\\\": 7", 1)).expect("writes");
    assert_ne!(std::fs::read_to_string(&tampered).expect("reads"), text);
    let bad = insights(
        &[
            "replay",
            "--verify",
            "--file",
            tampered.to_str().expect("utf-8"),
        ],
        dir.path(),
    );
    assert_eq!(bad.status.code(), Some(1));
    assert!(stderr(&bad).contains("position 3"), "{}", stderr(&bad));

    // A bundle cut short has no head line: one readable error.
    let cut: String = text.lines().take(4).map(|l| format!("{l}\n")).collect();
    let truncated = dir.path().join("truncated.jsonl");
    std::fs::write(&truncated, cut).expect("writes");
    let short = insights(
        &[
            "replay",
            "--verify",
            "--file",
            truncated.to_str().expect("utf-8"),
        ],
        dir.path(),
    );
    assert_eq!(short.status.code(), Some(1));
    assert_eq!(stderr(&short).lines().count(), 1, "{}", stderr(&short));
    assert!(stderr(&short).contains("truncated"), "{}", stderr(&short));

    let nothing = insights(&["replay", "--store", &url], dir.path());
    assert_eq!(nothing.status.code(), Some(1));
    assert!(
        stderr(&nothing).contains("nothing to do"),
        "{}",
        stderr(&nothing)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_republishes_a_range_of_one_type_to_a_topic() {
    use insights_schemas::{Codec, Envelope, Event, SentimentLabel};
    use rdkafka::Message;

    let tansu = testkit::Tansu::start();
    tansu.create_topic("replayed", 1);
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("e.db").display());
    let store = SqliteStore::open(&url, 2).await.expect("opens");
    // Positions 1..=6 scored messages, 7 one of another type, 8 a scored one again.
    let mut events: Vec<Envelope> = (1..=6)
        .map(|n| testkit::events::scored(n, "fine", SentimentLabel::Positive, 0.9))
        .collect();
    let mut other = testkit::events::scored(7, "x", SentimentLabel::Neutral, 0.5);
    if let Event::SentimentScored(s) = &other.event {
        other.event = Event::InteractionScrubbed(insights_schemas::InteractionScrubbed {
            context: s.context.clone(),
            text: "x".into(),
            pii: vec![],
            pii_counts: Default::default(),
            sealed: Vec::new(),
        });
    }
    events.push(other);
    events.push(testkit::events::scored(
        8,
        "late",
        SentimentLabel::Negative,
        0.9,
    ));
    store
        .append(AppendBatch::new(
            events
                .iter()
                .map(insights_event_store::envelope::to_event_data)
                .collect(),
        ))
        .await
        .expect("appends");

    let o = insights(
        &[
            "replay",
            "--to-topic",
            "replayed",
            "--from",
            "2",
            "--to",
            "7",
            "--types",
            "SentimentScored",
            "--brokers",
            &tansu.brokers(),
            "--store",
            &url,
        ],
        repo_root(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("published 5 events"), "{}", stderr(&o));
    let messages = testkit::read_topic(
        &tansu.brokers(),
        "replayed",
        6,
        std::time::Duration::from_secs(20),
    )
    .await;
    assert_eq!(messages.len(), 5, "positions 2..=6, only the scored ones");
    let codec = Codec::new();
    for (m, n) in messages.iter().zip(2..) {
        let e: Envelope = codec
            .decode(m.payload().expect("payload"))
            .expect("decodes");
        assert_eq!(e, events[n - 1], "in log order, unchanged");
        assert_eq!(
            m.key(),
            Some(format!("c{n}").as_bytes()),
            "keyed by conversation"
        );
    }

    let bad = insights(
        &[
            "replay",
            "--to-topic",
            "replayed",
            "--types",
            "Nope",
            "--brokers",
            &tansu.brokers(),
            "--store",
            &url,
        ],
        repo_root(),
    );
    assert_eq!(bad.status.code(), Some(1));
    assert_eq!(stderr(&bad).lines().count(), 1, "{}", stderr(&bad));
    assert!(stderr(&bad).contains("\"Nope\""), "{}", stderr(&bad));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reprocess_appends_a_new_versions_scores_once_and_never_touches_old_ones() {
    use insights_event_store::EventFilter;
    use insights_schemas::{Envelope, Event, InteractionScrubbed};

    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("e.db").display());
    let store = SqliteStore::open(&url, 2).await.expect("opens");
    let texts = [
        "I love it, thank you!",
        "This is terrible.",
        "Where is my parcel?",
    ];
    let scrubbed: Vec<Envelope> = texts
        .iter()
        .enumerate()
        .map(|(i, text)| {
            let n = i as u128 + 1;
            testkit::events::envelope(
                n,
                &format!("c{n}"),
                "privacy",
                Event::InteractionScrubbed(InteractionScrubbed {
                    context: testkit::events::context(n, 1_790_000_000_000_000),
                    text: (*text).into(),
                    pii: vec![],
                    pii_counts: Default::default(),
                    sealed: Vec::new(),
                }),
            )
        })
        .collect();
    store
        .append(AppendBatch::new(
            scrubbed
                .iter()
                .map(insights_event_store::envelope::to_event_data)
                .collect(),
        ))
        .await
        .expect("appends");
    let before = store.head().await.expect("head");

    let args = [
        "replay",
        "--reprocess",
        "sentiment",
        "--sentiment-backend",
        "lexicon",
        "--store",
        &url,
    ];
    let first = insights(&args, dir.path());
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(
        stderr(&first).contains("reprocessed 3 inputs: appended 3, already stored 0"),
        "{}",
        stderr(&first)
    );
    let again = insights(&args, dir.path());
    assert!(
        stderr(&again).contains("appended 0, already stored 3"),
        "{}",
        stderr(&again)
    );

    let scored = store
        .read_all(0, 100, &EventFilter::Types(vec!["SentimentScored".into()]))
        .await
        .expect("reads");
    assert_eq!(scored.len(), 3);
    for (r, input) in scored.iter().zip(&scrubbed) {
        let e = insights_event_store::envelope::from_recorded(r).expect("decodes");
        assert_eq!(e.producer, "sentiment");
        assert!(
            e.producer_version.contains("vader"),
            "{}",
            e.producer_version
        );
        assert_eq!(
            e.causation_id.as_deref(),
            Some(input.event_id.to_string().as_str())
        );
    }
    // The old events are as they were: the chain up to the old head verifies unchanged.
    let all = store
        .read_all(0, 100, &EventFilter::All)
        .await
        .expect("reads");
    assert_eq!(all[before.position as usize - 1].hash, before.hash);
    let verified = insights(&["replay", "--verify", "--store", &url], dir.path());
    assert!(verified.status.success(), "{}", stderr(&verified));

    let privacy = insights(
        &["replay", "--reprocess", "privacy", "--store", &url],
        dir.path(),
    );
    assert_eq!(privacy.status.code(), Some(1));
    assert_eq!(stderr(&privacy).lines().count(), 1, "{}", stderr(&privacy));
    assert!(
        stderr(&privacy).contains("never stored"),
        "{}",
        stderr(&privacy)
    );
}
