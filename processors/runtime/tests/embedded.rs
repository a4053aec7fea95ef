//! The runtime on the embedded broker (librdkafka's mock cluster), with its fault
//! injection: a broker outage mid-run and transient produce errors lose nothing.

mod support;

use std::sync::Arc;
use std::time::Duration;

use insights_event_store::{EventStore, SqliteStore};
use insights_runtime::{EmbeddedBroker, KafkaSettings, Metrics, Shared, StopWhen, run};
use insights_schemas::{Codec, Format};
use insights_topology::Topology;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use support::{EchoForRuntimeTests, RAW, SCRUBBED, settings, stored};
use testkit::read_topic;

const TOPOLOGY: &str = r#"
[topics."interactions.raw"]
value_schema = "Interaction"
role = "source"
partitions = 3
[topics."interactions.scrubbed"]
value_schema = "Envelope"
role = "sink"
partitions = 3
[topics."interactions.deadletter"]
role = "dead-letter"
partitions = 1
"#;

async fn start(n: usize) -> (EmbeddedBroker, Arc<dyn EventStore>, tempfile::TempDir) {
    let broker = EmbeddedBroker::start().expect("mock cluster");
    broker
        .create_topics(&Topology::parse(TOPOLOGY).expect("topology"))
        .expect("topics");
    support::produce_interactions(&broker.bootstrap_servers(), 0..n).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("e.db").display());
    let store: Arc<dyn EventStore> = Arc::new(SqliteStore::open(&url, 4).await.expect("store"));
    (broker, store, dir)
}

fn shared(broker: &EmbeddedBroker, store: &Arc<dyn EventStore>) -> Shared {
    Shared {
        store: Arc::clone(store),
        kafka: KafkaSettings::new(broker.bootstrap_servers()),
        metrics: Metrics::new(),
        codec: Codec::new(),
        output_format: Format::SingleObject,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_outage_mid_run_loses_nothing() {
    let (broker, store, _dir) = start(600).await;
    let mut s = settings("outage");
    s.batch_size = 20;
    // 5 ms a message (≥ 3 s of work), so the outage below hits a busy worker.
    let worker = tokio::spawn(run(
        support::SlowEcho(Duration::from_millis(5)),
        s,
        shared(&broker, &store),
        StopWhen::Idle(Duration::from_secs(4)),
        std::future::pending(),
    ));
    // Take the broker down once processing has begun, for three seconds.
    testkit::wait_until(
        "the worker to store its first events",
        Duration::from_secs(60),
        || async { store.head().await.expect("head").position > 0 },
    )
    .await;
    broker.broker_down().expect("down");
    tokio::time::sleep(Duration::from_secs(3)).await;
    // What was stored by the end of the outage: the rest was still to do while it lasted.
    let stored_during = store.head().await.expect("head").position;
    broker.broker_up().expect("up");
    let summary = tokio::time::timeout(Duration::from_secs(120), worker)
        .await
        .expect("finishes after the outage")
        .expect("task")
        .expect("worker survives the outage");
    assert_eq!(summary.dead_lettered, 0);
    assert!(
        stored_during < 600,
        "the outage must overlap work in flight: all 600 were stored before it ended"
    );
    let events = stored(&*store).await;
    assert_eq!(events.len(), 600, "{summary:?}");
    assert!(store.verify().await.expect("verifies").is_intact());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_produce_errors_are_retried_and_every_output_is_published() {
    let (broker, store, _dir) = start(100).await;
    broker.inject_request_errors(
        RDKafkaApiKey::Produce,
        &[
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
        ],
    );
    let summary = run(
        EchoForRuntimeTests,
        settings("produce-errors"),
        shared(&broker, &store),
        StopWhen::Idle(Duration::from_secs(3)),
        std::future::pending(),
    )
    .await
    .expect("worker");
    assert_eq!(summary.appended, 100);
    let published = read_topic(
        &broker.bootstrap_servers(),
        SCRUBBED,
        100,
        Duration::from_secs(30),
    )
    .await;
    let ids: std::collections::BTreeSet<Vec<u8>> = published
        .iter()
        .filter_map(|m| rdkafka::Message::payload(m).map(<[u8]>::to_vec))
        .collect();
    assert_eq!(
        ids.len(),
        100,
        "every output published once (idempotent producer)"
    );
}

/// A processor whose configuration is broken: fatal on the first message.
struct Broken;

impl insights_runtime::Processor for Broken {
    type Input = insights_schemas::Interaction;
    fn name(&self) -> &str {
        "broken"
    }
    fn version(&self) -> &str {
        "test"
    }
    fn process(
        &mut self,
        _: &insights_schemas::Interaction,
        _: &insights_runtime::Context<'_>,
    ) -> Result<Vec<insights_runtime::Output>, insights_runtime::ProcessError> {
        Err(insights_runtime::ProcessError::Fatal(
            "its model file is missing".into(),
        ))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_fatal_processor_stops_the_others_and_its_error_is_returned() {
    let (broker, store, _dir) = start(5).await;
    let topology = Topology::parse(&format!(
        "{TOPOLOGY}\n[processors.echo]\ninputs = [\"{RAW}\"]\noutputs = [\"{SCRUBBED}\"]\n\
         [processors.broken]\ninputs = [\"{RAW}\"]\noutputs = [\"{SCRUBBED}\"]\n"
    ))
    .expect("topology");
    let registry = std::collections::BTreeMap::from([
        ("echo", insights_runtime::launcher(|| EchoForRuntimeTests)),
        ("broken", insights_runtime::launcher(|| Broken)),
    ]);
    let (_keep_open, shutdown) = tokio::sync::watch::channel(false);
    let result = tokio::time::timeout(
        Duration::from_secs(60),
        insights_runtime::run_processors(
            &topology,
            registry,
            None,
            shared(&broker, &store),
            StopWhen::Shutdown,
            shutdown,
        ),
    )
    .await
    .expect("the healthy processor is stopped too, so the call returns");
    let err = result.expect_err("the fatal error is returned");
    assert!(
        err.to_string().contains("its model file is missing"),
        "{err}"
    );
}
