//! Topics: the embedded broker (librdkafka's mock cluster) with the topology's topics, and
//! creating or listing them on a real cluster through the admin API.

use std::time::Duration;

use insights_topology::Topology;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::Producer;
use rdkafka::types::RDKafkaErrorCode;

use crate::RuntimeError;
use crate::kafka::{KafkaSettings, producer};

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
