//! Runtime test support: the broker harness comes from `testkit`; here, a processor made
//! for these tests and the steps most tests share.

#![allow(dead_code)] // each test binary uses a different part

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use insights_event_store::{EventFilter, EventStore, SqliteStore};
use insights_runtime::{
    Context, KafkaSettings, Metrics, Output, ProcessError, Processor, Shared, StopWhen, Summary,
    run,
};
use insights_schemas::{
    Codec, Envelope, Event, Format, Interaction, InteractionContext, InteractionScrubbed, Timestamp,
};
use insights_topology::ProcessorSettings;
use testkit::Tansu;

pub const RAW: &str = "interactions.raw";
pub const SCRUBBED: &str = "interactions.scrubbed";
pub const DEAD: &str = "interactions.deadletter";

/// A processor for these tests only: it passes the text through untouched (scrubbing is
/// the privacy crate's job) and rejects the text "reject me", which is enough to exercise
/// every path of the runtime.
pub struct EchoForRuntimeTests;

impl Processor for EchoForRuntimeTests {
    type Input = Interaction;

    fn name(&self) -> &str {
        "echo"
    }

    fn version(&self) -> &str {
        "test"
    }

    fn process(&mut self, i: &Interaction, ctx: &Context<'_>) -> Result<Vec<Output>, ProcessError> {
        if i.text == "reject me" {
            return Err(ProcessError::Poison(
                "the test processor rejects this text".into(),
            ));
        }
        Ok(vec![Output {
            topic: SCRUBBED.into(),
            stream_id: format!("conversation-{}", i.conversation_id),
            key: i.conversation_id.clone(),
            event: Event::InteractionScrubbed(InteractionScrubbed {
                context: InteractionContext::of(i, ctx.input_id, "test"),
                text: i.text.clone(),
                pii: vec![],
                pii_counts: BTreeMap::new(),
                sealed: Vec::new(),
            }),
        }])
    }
}

pub fn interaction(n: usize) -> Interaction {
    Interaction {
        interaction_id: Some(format!("i-{n}")),
        conversation_id: format!("c-{}", n % 20),
        customer_id: format!("u-{n}"),
        channel: "chat".into(),
        product: Some("router".into()),
        language: Some("en".into()),
        text: format!("message number {n}"),
        demographics: BTreeMap::new(),
        sent_at: Timestamp(1_790_000_000_000_000 + n as i64),
        tenant_id: "default".into(),
    }
}

/// The echo processor, taking `per_message` for each message: long enough runs for tests
/// that need something to happen while a worker is busy (a replica joining).
pub struct SlowEcho(pub Duration);

impl Processor for SlowEcho {
    type Input = Interaction;

    fn name(&self) -> &str {
        "echo"
    }

    fn version(&self) -> &str {
        "test"
    }

    fn process(&mut self, i: &Interaction, ctx: &Context<'_>) -> Result<Vec<Output>, ProcessError> {
        std::thread::sleep(self.0);
        EchoForRuntimeTests.process(i, ctx)
    }
}

/// Produces interactions `range` as JSON to the raw topic, keyed by conversation.
pub async fn produce_interactions(brokers: &str, range: std::ops::Range<usize>) {
    let p = testkit::producer(brokers);
    for n in range {
        let i = interaction(n);
        testkit::produce(
            &p,
            RAW,
            &i.conversation_id,
            &serde_json::to_vec(&i).expect("json"),
        )
        .await;
    }
}

pub fn settings(group: &str) -> ProcessorSettings {
    ProcessorSettings {
        name: "echo".into(),
        inputs: vec![RAW.into()],
        outputs: vec![SCRUBBED.into()],
        group: group.into(),
        batch_size: 50,
        linger_ms: 20,
        concurrency: 1,
        max_message_bytes: 4096,
        dead_letter_topic: DEAD.into(),
    }
}

pub struct Setup {
    pub tansu: Tansu,
    pub store: Arc<dyn EventStore>,
    _dir: tempfile::TempDir,
}

pub async fn setup() -> Setup {
    let tansu = Tansu::start();
    tansu.create_topic(RAW, 3);
    tansu.create_topic(SCRUBBED, 3);
    tansu.create_topic(DEAD, 1);
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("events.db").display());
    let store: Arc<dyn EventStore> = Arc::new(SqliteStore::open(&url, 4).await.expect("store"));
    Setup {
        tansu,
        store,
        _dir: dir,
    }
}

pub async fn run_until_idle(s: &Setup, codec: Codec, group: &str) -> Summary {
    let shared = Shared {
        store: Arc::clone(&s.store),
        kafka: KafkaSettings::new(s.tansu.brokers()),
        metrics: Metrics::new(),
        codec,
        output_format: Format::SingleObject,
    };
    tokio::time::timeout(
        Duration::from_secs(90),
        run(
            EchoForRuntimeTests,
            settings(group),
            shared,
            StopWhen::Idle(Duration::from_secs(3)),
            std::future::pending(),
        ),
    )
    .await
    .expect("worker stops when idle")
    .expect("worker succeeds")
}

pub async fn stored(store: &dyn EventStore) -> Vec<Envelope> {
    store
        .read_all(0, 100_000, &EventFilter::All)
        .await
        .expect("reads")
        .iter()
        .map(|r| insights_event_store::envelope::from_recorded(r).expect("valid envelope"))
        .collect()
}
