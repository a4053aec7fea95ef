//! Running a topology: the embedded broker, topic creation, launching every registered
//! processor as its own worker, producing input files, and the ops HTTP endpoints.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use insights_event_store::EventStore;
use insights_schemas::{Codec, Format, Interaction};
use insights_topology::{ProcessorSettings, Topology};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use tokio::sync::watch;

use crate::kafka::{KafkaSettings, producer};
use crate::metrics::Metrics;
use crate::worker::{Shared, StopWhen, Summary, run};
use crate::{Processor, RuntimeError};

/// A processor's worker, ready to run.
pub type Launch = Box<
    dyn FnOnce(
            ProcessorSettings,
            Shared,
            StopWhen,
            Pin<Box<dyn Future<Output = ()> + Send>>,
        ) -> Pin<Box<dyn Future<Output = Result<Summary, RuntimeError>> + Send>>
        + Send,
>;

/// Wraps a processor constructor as a [`Launch`].
pub fn launcher<P, F>(make: F) -> Launch
where
    P: Processor,
    F: FnOnce() -> P + Send + 'static,
{
    Box::new(move |settings, shared, stop, shutdown| {
        Box::pin(run(make(), settings, shared, stop, shutdown))
    })
}

/// An in-process Kafka-protocol broker (librdkafka's mock cluster) on a loopback port.
pub struct EmbeddedBroker {
    cluster: MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
}

impl std::fmt::Debug for EmbeddedBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedBroker")
            .field("bootstrap_servers", &self.bootstrap_servers())
            .finish()
    }
}

impl EmbeddedBroker {
    /// Starts a one-broker mock cluster.
    pub fn start() -> Result<Self, RuntimeError> {
        Ok(Self {
            cluster: MockCluster::new(1)?,
        })
    }

    /// Its `bootstrap.servers`.
    pub fn bootstrap_servers(&self) -> String {
        self.cluster.bootstrap_servers()
    }

    /// Takes the broker down (connections drop, requests fail) until [`Self::broker_up`]:
    /// for outage tests.
    pub fn broker_down(&self) -> Result<(), RuntimeError> {
        Ok(self.cluster.broker_down(1)?)
    }

    /// Brings the broker back.
    pub fn broker_up(&self) -> Result<(), RuntimeError> {
        Ok(self.cluster.broker_up(1)?)
    }

    /// Makes the next requests of kind `api` fail with `errors`, in order: for tests of
    /// retries.
    pub fn inject_request_errors(
        &self,
        api: rdkafka::types::RDKafkaApiKey,
        errors: &[rdkafka::types::RDKafkaRespErr],
    ) {
        self.cluster.request_errors(api, errors);
    }

    /// Creates every topic of the topology (the mock broker has no CreateTopics API).
    pub fn create_topics(&self, topology: &Topology) -> Result<(), RuntimeError> {
        for t in topology.topic_settings() {
            self.cluster
                .create_topic(&t.name, t.partitions as i32, 1)
                .or_else(ignore_exists)?;
        }
        Ok(())
    }
}

fn ignore_exists(e: rdkafka::error::KafkaError) -> Result<(), rdkafka::error::KafkaError> {
    match e.rdkafka_error_code() {
        Some(RDKafkaErrorCode::TopicAlreadyExists) => Ok(()),
        _ => Err(e),
    }
}

/// Creates the topology's topics on a real cluster (partitions, replication, retention);
/// existing topics are left as they are. Returns (topic, created?) per topic.
pub async fn create_topics(
    kafka: &KafkaSettings,
    topology: &Topology,
) -> Result<Vec<(String, bool)>, RuntimeError> {
    let mut config = rdkafka::ClientConfig::new();
    config.set("bootstrap.servers", &kafka.brokers);
    for (k, v) in &kafka.properties {
        config.set(k, v);
    }
    let admin: AdminClient<DefaultClientContext> = config.create()?;
    let settings = topology.topic_settings();
    let retention: Vec<String> = settings
        .iter()
        .map(|t| t.retention.kafka_retention_ms().to_string())
        .collect();
    let new: Vec<NewTopic<'_>> = settings
        .iter()
        .zip(&retention)
        .map(|(t, r)| {
            NewTopic::new(
                &t.name,
                t.partitions as i32,
                TopicReplication::Fixed(i32::from(t.replication_factor)),
            )
            .set("retention.ms", r)
        })
        .collect();
    let results = admin
        .create_topics(
            &new,
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        )
        .await?;
    let mut out = Vec::new();
    for r in results {
        match r {
            Ok(name) => out.push((name, true)),
            Err((name, RDKafkaErrorCode::TopicAlreadyExists)) => out.push((name, false)),
            Err((name, code)) => {
                return Err(RuntimeError::Kafka(rdkafka::error::KafkaError::AdminOp(
                    code,
                )))
                .inspect_err(|_| {
                    tracing::error!(topic = %name, ?code, "creating topic failed");
                });
            }
        }
    }
    Ok(out)
}

/// Topic names and partition counts as the cluster reports them.
pub fn list_topics(kafka: &KafkaSettings) -> Result<Vec<(String, usize)>, RuntimeError> {
    let producer = producer(kafka)?;
    let metadata = producer
        .client()
        .fetch_metadata(None, Duration::from_secs(10))?;
    let mut topics: Vec<(String, usize)> = metadata
        .topics()
        .iter()
        .filter(|t| !t.name().starts_with("__"))
        .map(|t| (t.name().to_owned(), t.partitions().len()))
        .collect();
    topics.sort();
    Ok(topics)
}

/// How `produce_lines` writes each line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProduceFormat {
    /// The line as it is (invalid lines too: the pipeline dead-letters them).
    Json,
    /// Parsed as an `Interaction` and encoded as Avro single-object.
    AvroSingleObject,
    /// Parsed and encoded in the Confluent wire format.
    Confluent,
}

/// What `produce_lines` did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Produced {
    /// Messages delivered.
    pub delivered: u64,
    /// Lines that could not be encoded in the chosen Avro format (skipped).
    pub unencodable: u64,
}

/// Produces lines (bytes, so that lines which are not valid UTF-8 go through too, for the
/// pipeline to dead-letter) to `topic`, keyed by their `conversation_id`, at most `rate`
/// per second if given; calls `progress` after each delivery.
pub async fn produce_lines(
    kafka: &KafkaSettings,
    topic: &str,
    lines: impl Iterator<Item = Vec<u8>>,
    format: ProduceFormat,
    rate: Option<u32>,
    mut progress: impl FnMut(u64),
) -> Result<Produced, RuntimeError> {
    let producer: FutureProducer = producer(kafka)?;
    let codec = Codec::new();
    let mut out = Produced::default();
    let mut pacer =
        rate.map(|r| tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(r.max(1)))));
    let mut in_flight = futures::stream::FuturesUnordered::new();
    for line in lines {
        let mut line = line;
        while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            line.pop();
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let key = serde_json::from_slice::<serde_json::Value>(&line)
            .ok()
            .and_then(|v| {
                v.get("conversation_id")
                    .and_then(|c| c.as_str())
                    .map(str::to_owned)
            })
            .unwrap_or_default();
        let payload = match format {
            ProduceFormat::Json => line,
            ProduceFormat::AvroSingleObject | ProduceFormat::Confluent => {
                let wire = if format == ProduceFormat::Confluent {
                    Format::Confluent
                } else {
                    Format::SingleObject
                };
                match codec
                    .decode::<Interaction>(&line)
                    .map_err(|e| e.to_string())
                    .and_then(|i| codec.encode(&i, wire).map_err(|e| e.to_string()))
                {
                    Ok(bytes) => bytes,
                    Err(e) => {
                        tracing::warn!(error = %e, "line skipped: cannot be encoded as Avro");
                        out.unencodable += 1;
                        continue;
                    }
                }
            }
        };
        if let Some(p) = pacer.as_mut() {
            p.tick().await;
        }
        let producer = producer.clone();
        let topic = topic.to_owned();
        // With traces on, each interaction's trace starts here (the span ends at delivery).
        let span = tracing::info_span!(
            target: insights_telemetry::TARGET,
            "produce",
            otel.name = %format_args!("{topic} publish"),
            otel.kind = "producer",
            messaging.system = "kafka",
            messaging.operation.type = "send",
            messaging.destination.name = topic.as_str(),
        );
        let headers = crate::trace::inject(&span);
        in_flight.push(async move {
            let mut record = FutureRecord::to(&topic)
                .key(key.as_str())
                .payload(payload.as_slice());
            if let Some(headers) = headers {
                record = record.headers(headers);
            }
            let delivered = producer.send(record, Duration::from_secs(30)).await;
            drop(span);
            delivered
        });
        // A send is handed to librdkafka when its future is first polled: poll now, so a
        // paced message leaves when it is paced, and collect what has been delivered.
        while let Some(Some(result)) =
            futures::FutureExt::now_or_never(futures::StreamExt::next(&mut in_flight))
        {
            result.map_err(|(e, _)| RuntimeError::Kafka(e))?;
            out.delivered += 1;
            progress(out.delivered);
        }
        // Bounded: at most 10k messages in flight.
        while in_flight.len() >= 10_000 {
            deliver(&mut in_flight, &mut out, &mut progress).await?;
        }
    }
    while !in_flight.is_empty() {
        deliver(&mut in_flight, &mut out, &mut progress).await?;
    }
    Ok(out)
}

async fn deliver<F>(
    in_flight: &mut futures::stream::FuturesUnordered<F>,
    out: &mut Produced,
    progress: &mut impl FnMut(u64),
) -> Result<(), RuntimeError>
where
    F: Future<Output = rdkafka::producer::future_producer::OwnedDeliveryResult>,
{
    use futures::StreamExt;
    if let Some(result) = in_flight.next().await {
        result.map_err(|(e, _)| RuntimeError::Kafka(e))?;
        out.delivered += 1;
        progress(out.delivered);
    }
    Ok(())
}

/// Shared health state for `/readyz`.
#[derive(Debug, Clone, Default)]
pub struct Health {
    ready: Arc<AtomicBool>,
}

impl Health {
    /// Marks the process ready (workers started, store open).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }
}

#[derive(Clone)]
struct OpsState {
    metrics: Metrics,
    health: Health,
    store: Arc<dyn EventStore>,
}

/// Serves `/metrics`, `/healthz` (the process is up) and `/readyz` (workers started and
/// the store answers), plus the routes of `api` (the HTTP API; `Router::new()` for none),
/// until `shutdown` resolves. Returns the bound address.
pub async fn serve_ops(
    addr: SocketAddr,
    metrics: Metrics,
    health: Health,
    store: Arc<dyn EventStore>,
    api: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<SocketAddr, std::io::Error> {
    let state = OpsState {
        metrics,
        health,
        store,
    };
    let app = Router::new()
        .route(
            "/metrics",
            get(|State(s): State<OpsState>| async move { s.metrics.render() }),
        )
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(|State(s): State<OpsState>| async move {
                if !s.health.ready.load(Ordering::SeqCst) {
                    return (StatusCode::SERVICE_UNAVAILABLE, "starting\n".to_owned());
                }
                match s.store.head().await {
                    Ok(h) => (
                        StatusCode::OK,
                        format!("ready at position {}\n", h.position),
                    ),
                    Err(e) => (
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!("store unavailable: {e}\n"),
                    ),
                }
            }),
        )
        .with_state(state)
        .merge(api);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!(error = %e, "ops server failed");
        }
    });
    Ok(bound)
}

/// Runs the topology's processors that have a launcher in `registry` (all of them, or
/// only `only`), each as its own worker, until shutdown or, with [`StopWhen::Idle`], until
/// every one has drained its inputs. Returns each worker's summary; if a worker fails, the
/// others are stopped (each commits what it has done) and the first error is returned.
pub async fn run_processors(
    topology: &Topology,
    mut registry: BTreeMap<&'static str, Launch>,
    only: Option<&str>,
    shared: Shared,
    stop: StopWhen,
    shutdown: watch::Receiver<bool>,
) -> Result<BTreeMap<String, Summary>, RuntimeError> {
    let (stop_all, _) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    let running: Vec<String> = topology
        .processors
        .keys()
        .filter(|n| only.is_none_or(|o| o == *n) && registry.contains_key(n.as_str()))
        .cloned()
        .collect();
    // Each worker says when it has stopped; with `Idle`, a worker stops only after the
    // running processors that write its inputs have.
    let done: BTreeMap<String, watch::Sender<bool>> = running
        .iter()
        .map(|n| (n.clone(), watch::channel(false).0))
        .collect();
    for name in &running {
        let Some(launch) = registry.remove(name.as_str()) else {
            continue;
        };
        let stop = match &stop {
            StopWhen::Idle(quiet) => {
                let inputs = &topology.processors[name].inputs;
                let upstream: Vec<watch::Receiver<bool>> = running
                    .iter()
                    .filter(|u| *u != name)
                    .filter(|u| {
                        topology.processors[u.as_str()]
                            .outputs
                            .iter()
                            .any(|o| inputs.contains(o))
                    })
                    .map(|u| done[u].subscribe())
                    .collect();
                let (gate_tx, gate_rx) = watch::channel(upstream.is_empty());
                tokio::spawn(async move {
                    for mut rx in upstream {
                        let _ = rx.wait_for(|d| *d).await;
                    }
                    let _ = gate_tx.send(true);
                });
                StopWhen::IdleAfterUpstream(*quiet, gate_rx)
            }
            other => other.clone(),
        };
        let finished = done[name].clone();
        let settings = topology
            .processor(name)
            .ok_or_else(|| RuntimeError::Fatal {
                processor: name.clone(),
                message: "not declared in topology.toml".into(),
            })?;
        let mut rx = stop_all.subscribe();
        let signal: Pin<Box<dyn Future<Output = ()> + Send>> = Box::pin(async move {
            let _ = rx.wait_for(|stop| *stop).await;
        });
        let name = name.clone();
        let run = launch(settings, shared.clone(), stop, signal);
        tasks.spawn(async move {
            let result = run.await;
            finished.send_replace(true);
            (name, result)
        });
    }
    // The caller's shutdown stops every worker; so does the first worker that fails, so
    // that a supervisor sees the process end with the error instead of a half pipeline.
    let forward = {
        let stop_all = stop_all.clone();
        let mut shutdown = shutdown;
        tokio::spawn(async move {
            if shutdown.wait_for(|stop| *stop).await.is_ok() {
                stop_all.send_replace(true);
            }
        })
    };
    let mut summaries = BTreeMap::new();
    let mut first_error = None;
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((name, Ok(s))) => {
                summaries.insert(name, s);
            }
            Ok((name, Err(e))) => {
                tracing::error!(processor = %name, error = %e, "processor stopped; stopping the others");
                stop_all.send_replace(true);
                first_error.get_or_insert(e);
            }
            Err(e) => {
                stop_all.send_replace(true);
                first_error.get_or_insert(RuntimeError::Fatal {
                    processor: "?".into(),
                    message: format!("worker task failed: {e}"),
                });
            }
        }
    }
    forward.abort();
    match first_error {
        Some(e) => Err(e),
        None => Ok(summaries),
    }
}
