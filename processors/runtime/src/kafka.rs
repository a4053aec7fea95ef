//! Kafka client configuration: the properties every consumer and producer gets, with the
//! user's librdkafka properties layered on top.

use std::collections::BTreeMap;

use rdkafka::ClientConfig;
use rdkafka::consumer::StreamConsumer;
use rdkafka::error::KafkaResult;
use rdkafka::producer::FutureProducer;

/// How to reach the brokers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaSettings {
    /// `bootstrap.servers`.
    pub brokers: String,
    /// librdkafka properties, applied last (they override ours).
    pub properties: BTreeMap<String, String>,
}

impl KafkaSettings {
    /// Settings for `brokers` with no extra properties.
    pub fn new(brokers: impl Into<String>) -> Self {
        Self {
            brokers: brokers.into(),
            properties: BTreeMap::new(),
        }
    }

    fn config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers);
        c
    }

    fn finish(&self, mut c: ClientConfig) -> ClientConfig {
        for (k, v) in &self.properties {
            c.set(k, v);
        }
        c
    }
}

/// A consumer in `group` that never commits on its own: the worker commits after the
/// outputs are stored and published.
pub fn consumer(settings: &KafkaSettings, group: &str) -> KafkaResult<StreamConsumer> {
    let mut c = settings.config();
    c.set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        // Fast group joins and failure detection (librdkafka's 45 s default makes the first
        // join take ~23 s against Tansu).
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "1000");
    settings.finish(c).create()
}

/// An idempotent producer: retries never duplicate or reorder within a partition.
pub fn producer(settings: &KafkaSettings) -> KafkaResult<FutureProducer> {
    let mut c = settings.config();
    c.set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("compression.type", "lz4")
        .set("message.timeout.ms", "30000");
    settings.finish(c).create()
}
