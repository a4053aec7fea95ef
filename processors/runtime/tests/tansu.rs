//! The runtime against a real Kafka-protocol broker (Tansu 0.6.0) and a real store.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use insights_runtime::{Context, Processor, dead_letter_headers, envelope_for};
use insights_schemas::{Codec, Envelope, Event, Format, Timestamp};
use rdkafka::Message;
use support::{
    DEAD, EchoForRuntimeTests, RAW, SCRUBBED, interaction, run_until_idle, setup, stored,
};
use testkit::{header, produce, producer, read_topic};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interactions_in_any_format_become_events_exactly_once() {
    let s = setup().await;
    let p = producer(&s.tansu.brokers());
    let codec = Codec::new();
    let formats = [Format::Json, Format::SingleObject, Format::Confluent];
    for n in 0..150 {
        let i = interaction(n);
        let bytes = codec.encode(&i, formats[n % 3]).expect("encodes");
        produce(&p, RAW, &i.conversation_id, &bytes).await;
    }

    let first = run_until_idle(&s, Codec::new(), "echo-a").await;
    assert_eq!(
        (first.consumed, first.appended, first.dead_lettered),
        (150, 150, 0)
    );

    let events = stored(&*s.store).await;
    assert_eq!(events.len(), 150);
    let causes: BTreeSet<String> = events
        .iter()
        .filter_map(|e| e.causation_id.clone())
        .collect();
    assert_eq!(
        causes,
        (0..150).map(|n| format!("interaction:i-{n}")).collect()
    );
    assert!(
        events
            .iter()
            .all(|e| e.producer == "echo" && e.event_type() == "InteractionScrubbed")
    );

    // Published: the same events, keyed by conversation.
    let published = read_topic(&s.tansu.brokers(), SCRUBBED, 150, Duration::from_secs(30)).await;
    assert_eq!(published.len(), 150);
    let mut ids = BTreeSet::new();
    for m in &published {
        let e: Envelope = codec.decode(m.payload().expect("value")).expect("envelope");
        let Event::InteractionScrubbed(ref x) = e.event else {
            panic!("wrong event")
        };
        assert_eq!(m.key(), Some(x.context.conversation_id.as_bytes()));
        ids.insert(e.event_id);
    }
    assert_eq!(ids, events.iter().map(|e| e.event_id).collect());

    // Offsets were committed: the same group finds nothing new.
    let again = run_until_idle(&s, Codec::new(), "echo-a").await;
    assert_eq!(again.consumed, 0, "{again:?}");
    assert!(s.store.verify().await.expect("verifies").is_intact());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redelivered_input_is_not_stored_twice() {
    let s = setup().await;
    support::produce_interactions(&s.tansu.brokers(), 0..60).await;
    let first = run_until_idle(&s, Codec::new(), "echo-first").await;
    assert_eq!(first.appended, 60);
    // A group with no committed offsets gets everything again, as after a crash between
    // the append and the commit.
    let second = run_until_idle(&s, Codec::new(), "echo-second").await;
    assert_eq!(
        (second.consumed, second.appended, second.duplicates),
        (60, 0, 60)
    );
    assert_eq!(stored(&*s.store).await.len(), 60);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_messages_go_to_the_dead_letter_topic_with_reasons_and_nothing_else_is_lost() {
    let s = setup().await;
    let brokers = s.tansu.brokers();
    let p = producer(&brokers);
    let codec = Codec::new();
    let mut reject = interaction(1000);
    reject.text = "reject me".into();
    let envelope_not_interaction = {
        let ctx_source = insights_runtime::Source {
            topic: RAW.into(),
            partition: 0,
            offset: 0,
        };
        let ctx = Context {
            input_id: "x",
            correlation_id: "x",
            input_time: Timestamp(0),
            now: Timestamp(0),
            source: &ctx_source,
        };
        let out = EchoForRuntimeTests
            .process(&interaction(7), &ctx)
            .expect("processes")
            .remove(0);
        codec
            .encode(
                &envelope_for("echo", "test", &ctx, 0, &out),
                Format::SingleObject,
            )
            .expect("encodes")
    };
    let bad: Vec<(&str, Vec<u8>, &str)> = vec![
        ("garbage", b"not a record".to_vec(), "unknown format"),
        ("missing fields", b"{}".to_vec(), "missing field"),
        (
            "invalid utf-8",
            b"{\"text\": \"\xff\xfe\"}".to_vec(),
            "invalid JSON",
        ),
        ("oversize", vec![b'{'; 5000], "over the 4096 byte limit"),
        ("wrong schema", envelope_not_interaction, "schema mismatch"),
        (
            "rejected",
            serde_json::to_vec(&reject).expect("json"),
            "rejects this text",
        ),
    ];
    support::produce_interactions(&s.tansu.brokers(), 0..5).await;
    for (what, payload, _) in &bad {
        produce(&p, RAW, what, payload).await;
    }
    support::produce_interactions(&s.tansu.brokers(), 5..10).await;

    let summary = run_until_idle(&s, Codec::new(), "echo-poison").await;
    assert_eq!(
        (summary.consumed, summary.dead_lettered),
        (10 + bad.len() as u64, bad.len() as u64)
    );

    let dead = read_topic(&brokers, DEAD, bad.len(), Duration::from_secs(30)).await;
    assert_eq!(dead.len(), bad.len());
    for (what, payload, reason) in &bad {
        let m = dead
            .iter()
            .find(|m| m.key() == Some(what.as_bytes()))
            .unwrap_or_else(|| panic!("{what} was dead-lettered"));
        assert_eq!(
            m.payload(),
            Some(payload.as_slice()),
            "{what}: original bytes kept"
        );
        let error = header(m, dead_letter_headers::ERROR).expect("error header");
        assert!(error.contains(reason), "{what}: {error}");
        assert_eq!(
            header(m, dead_letter_headers::PROCESSOR).as_deref(),
            Some("echo")
        );
        assert_eq!(
            header(m, dead_letter_headers::ERROR_CLASS).as_deref(),
            Some("poison")
        );
        assert_eq!(header(m, dead_letter_headers::TOPIC).as_deref(), Some(RAW));
        assert!(header(m, dead_letter_headers::OFFSET).is_some());
    }

    let events = stored(&*s.store).await;
    let dead_events: Vec<&insights_schemas::DeadLettered> = events
        .iter()
        .filter_map(|e| match &e.event {
            Event::DeadLettered(d) => Some(d),
            _ => None,
        })
        .collect();
    assert_eq!(dead_events.len(), bad.len());
    assert!(
        dead_events
            .iter()
            .any(|d| d.error.contains("missing field") && d.payload_size == 2)
    );
    // The store never holds the rejected payloads themselves, only their digest.
    assert!(dead_events.iter().all(|d| d.payload_sha256.len() == 64));
    let scrubbed = events
        .iter()
        .filter(|e| e.event_type() == "InteractionScrubbed")
        .count();
    assert_eq!(scrubbed, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_joining_mid_run_shares_the_partitions_and_nothing_is_lost() {
    use std::sync::Arc;

    use insights_runtime::{KafkaSettings, Metrics, Shared, StopWhen, run};

    let s = setup().await;
    support::produce_interactions(&s.tansu.brokers(), 0..3000).await;
    let shared = || Shared {
        store: Arc::clone(&s.store),
        kafka: KafkaSettings::new(s.tansu.brokers()),
        metrics: Metrics::new(),
        codec: Codec::new(),
        output_format: Format::SingleObject,
    };
    let mut one = support::settings("echo-replicas");
    one.batch_size = 10;
    let two = one.clone();
    // 3 ms a message: the first replica is still busy (≥ 9 s) when the second has joined
    // (~3 s), whatever the machine.
    let first = tokio::spawn(run(
        support::SlowEcho(Duration::from_millis(3)),
        one,
        shared(),
        insights_runtime::StopWhen::Idle(Duration::from_secs(5)),
        std::future::pending(),
    ));
    // The second replica joins once the first is working: partitions are revoked from the
    // first and shared.
    testkit::wait_until(
        "the first replica to store 200 events",
        Duration::from_secs(120),
        || async { s.store.head().await.expect("head").position >= 200 },
    )
    .await;
    let second = run(
        EchoForRuntimeTests,
        two,
        shared(),
        StopWhen::Idle(Duration::from_secs(5)),
        std::future::pending(),
    );
    let b = tokio::time::timeout(Duration::from_secs(120), second)
        .await
        .expect("second stops")
        .expect("second");
    let a = tokio::time::timeout(Duration::from_secs(120), first)
        .await
        .expect("first stops")
        .expect("task")
        .expect("first");
    assert!(
        b.consumed > 0,
        "the second replica got partitions: {a:?} {b:?}"
    );
    assert_eq!(a.appended + b.appended, 3000, "{a:?} {b:?}");
    assert_eq!(stored(&*s.store).await.len(), 3000);
}

/// A worker subscribed to two topics takes what both hold in batches of up to
/// `batch_size` (a few thousand messages in a few batches on Tansu), not a small batch per
/// fetch response. Counted from the batch histogram; no timing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_two_topic_consumer_takes_thousands_of_messages_in_a_few_batches() {
    const MORE: &str = "interactions.more";
    const EACH: usize = 1_500;
    let s = setup().await;
    s.tansu.create_topic(MORE, 3);
    let p = producer(&s.tansu.brokers());
    for n in 0..2 * EACH {
        let i = interaction(n);
        let topic = if n < EACH { RAW } else { MORE };
        let json = serde_json::to_vec(&i).expect("json");
        produce(&p, topic, &i.conversation_id, &json).await;
    }
    let metrics = insights_runtime::Metrics::new();
    let shared = insights_runtime::Shared {
        store: std::sync::Arc::clone(&s.store),
        kafka: insights_runtime::KafkaSettings::new(s.tansu.brokers()),
        metrics: metrics.clone(),
        codec: Codec::new(),
        output_format: Format::SingleObject,
    };
    let mut settings = support::settings("two-topics");
    settings.inputs = vec![RAW.into(), MORE.into()];
    settings.batch_size = 500;
    settings.concurrency = 4;
    let summary = tokio::time::timeout(
        Duration::from_secs(120),
        insights_runtime::run(
            EchoForRuntimeTests,
            settings,
            shared,
            insights_runtime::StopWhen::Idle(Duration::from_secs(3)),
            std::future::pending(),
        ),
    )
    .await
    .expect("the worker drains both topics within 120 s and stops when idle")
    .expect("worker succeeds");
    assert_eq!(
        (summary.consumed, summary.appended),
        (2 * EACH as u64, 2 * EACH as u64)
    );
    let batches = metrics
        .batch_seconds
        .with_label_values(&["echo"])
        .get_sample_count();
    // 3,000 messages at up to 500 a batch: 6 at best; allow for batches cut short by the
    // linger time while fetches warm up, but not for a batch per fetch response.
    assert!(
        (6..=30).contains(&batches),
        "{batches} batches for {} messages",
        summary.consumed
    );
}
