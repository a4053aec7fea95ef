//! Test harness: a real Tansu broker process on a free loopback port, stopped on drop.

#![allow(dead_code)] // each test binary uses a different part

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use std::collections::BTreeMap;
use std::sync::Arc;

use insights_event_store::{EventFilter, EventStore, SqliteStore};
use insights_runtime::{
    Context, KafkaSettings, Metrics, Output, ProcessError, Processor, Shared, StopWhen, Summary,
    records, run,
};
use insights_schemas::{
    Codec, Envelope, Event, Format, Interaction, InteractionContext, InteractionScrubbed, Timestamp,
};
use insights_topology::ProcessorSettings;
use rdkafka::ClientConfig;
use rdkafka::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::OwnedMessage;
use rdkafka::producer::{FutureProducer, FutureRecord};

/// The Tansu binary: `INSIGHTS_TANSU`, or `.tools/bin/tansu` as `scripts/setup.sh` installs it.
pub fn tansu_binary() -> PathBuf {
    if let Ok(p) = std::env::var("INSIGHTS_TANSU") {
        return PathBuf::from(p);
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let bin = root.join(".tools/bin/tansu");
    assert!(
        bin.exists(),
        "Tansu not found at {}: run scripts/setup.sh",
        bin.display()
    );
    bin
}

/// A running Tansu broker with in-memory storage.
pub struct Tansu {
    child: Child,
    pub addr: SocketAddr,
}

impl Tansu {
    pub fn start() -> Tansu {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(tansu_binary())
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
                "--storage-engine",
                "memory://tansu/",
            ])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starts tansu");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("address");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(
                Instant::now() < deadline,
                "Tansu did not start listening on {addr}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Tansu { child, addr }
    }

    pub fn brokers(&self) -> String {
        self.addr.to_string()
    }

    pub fn create_topic(&self, name: &str, partitions: u32) {
        let out = Command::new(tansu_binary())
            .args([
                "topic",
                "create",
                name,
                "--partitions",
                &partitions.to_string(),
                "--broker",
                &format!("tcp://{}", self.addr),
            ])
            .output()
            .expect("runs tansu topic create");
        assert!(
            out.status.success(),
            "topic create {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn producer(brokers: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("message.timeout.ms", "10000")
        .create()
        .expect("producer")
}

pub async fn produce(p: &FutureProducer, topic: &str, key: &str, payload: &[u8]) {
    p.send(
        FutureRecord::to(topic).key(key).payload(payload),
        Duration::from_secs(10),
    )
    .await
    .unwrap_or_else(|(e, _)| panic!("produce to {topic}: {e}"));
}

/// Reads `topic` from the beginning in a fresh group until `n` messages arrived (or the
/// timeout passed), and returns them.
pub async fn read_topic(
    brokers: &str,
    topic: &str,
    n: usize,
    timeout: Duration,
) -> Vec<OwnedMessage> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("reader-{}", uuid::Uuid::new_v4()))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("session.timeout.ms", "6000")
        .create()
        .expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribes");
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + timeout;
    while out.len() < n {
        match tokio::time::timeout_at(deadline, consumer.recv()).await {
            Ok(Ok(m)) => out.push(m.detach()),
            Ok(Err(e)) => panic!("reading {topic}: {e}"),
            Err(_) => break,
        }
    }
    out
}

pub fn header(m: &OwnedMessage, key: &str) -> Option<String> {
    use rdkafka::message::Headers;
    let headers = m.headers()?;
    headers
        .iter()
        .find(|h| h.key == key)
        .and_then(|h| h.value.map(|v| String::from_utf8_lossy(v).into_owned()))
}

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
                context: InteractionContext {
                    interaction_id: ctx.input_id.to_owned(),
                    conversation_id: i.conversation_id.clone(),
                    tenant_id: i.tenant_id.clone(),
                    customer_pseudonym: "test".into(),
                    channel: i.channel.clone(),
                    product: i.product.clone(),
                    language: i.language.clone(),
                    demographics: i.demographics.clone(),
                    sent_at: i.sent_at,
                },
                text: i.text.clone(),
                pii: vec![],
                pii_counts: BTreeMap::new(),
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
        .map(|r| records::from_recorded(r).expect("valid envelope"))
        .collect()
}
