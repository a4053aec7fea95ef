//! Kafka client configuration: the properties every consumer and producer gets, with the
//! user's librdkafka properties layered on top.

use std::collections::BTreeMap;

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::KafkaResult;
use rdkafka::producer::FutureProducer;
use rdkafka::{ClientConfig, ClientContext, TopicPartitionList};

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
    consumer_config(settings, group).create()
}

/// The worker's consumer: like [`consumer`], with a context that commits what the worker
/// has handled when partitions are revoked in a rebalance.
pub(crate) fn worker_consumer(
    settings: &KafkaSettings,
    group: &str,
) -> KafkaResult<StreamConsumer<RebalanceContext>> {
    consumer_config(settings, group).create_with_context(RebalanceContext::default())
}

/// Commits, when partitions are revoked, the offsets of everything the worker has
/// stored and published, and records the revocation so that the worker drops messages of
/// those partitions that it fetched but has not handled (their next owner, or this
/// consumer after reassignment, reads them again from the committed offset).
#[derive(Debug, Default)]
pub(crate) struct RebalanceContext {
    /// Per partition, the next offset to read, for everything handled so far.
    pub(crate) handled: Mutex<TopicPartitionList>,
    /// Bumped on every revocation.
    pub(crate) revocations: AtomicU64,
    /// Partitions revoked since the worker last looked.
    pub(crate) revoked: Mutex<BTreeSet<(String, i32)>>,
}

impl ClientContext for RebalanceContext {}

impl ConsumerContext for RebalanceContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(tpl) = rebalance else {
            return;
        };
        let handled = self.handled.lock().map(|h| h.clone()).unwrap_or_default();
        let mut mine = TopicPartitionList::new();
        for e in tpl.elements() {
            if let Some(h) = handled.find_partition(e.topic(), e.partition()) {
                let _ = mine.add_partition_offset(e.topic(), e.partition(), h.offset());
            }
        }
        if mine.count() > 0
            && let Err(e) = consumer.commit(&mine, CommitMode::Sync)
        {
            tracing::warn!(error = %e, "commit on revocation failed; those messages will be redelivered");
        }
        // Offsets of partitions no longer ours must not be committed again later.
        if let Ok(mut h) = self.handled.lock() {
            let mut kept = TopicPartitionList::new();
            for e in h.elements() {
                if tpl.find_partition(e.topic(), e.partition()).is_none() {
                    let _ = kept.add_partition_offset(e.topic(), e.partition(), e.offset());
                }
            }
            *h = kept;
        }
        if let Ok(mut revoked) = self.revoked.lock() {
            revoked.extend(
                tpl.elements()
                    .iter()
                    .map(|e| (e.topic().to_owned(), e.partition())),
            );
        }
        self.revocations.fetch_add(1, Ordering::SeqCst);
    }
}

fn consumer_config(settings: &KafkaSettings, group: &str) -> ClientConfig {
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
    settings.finish(c)
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
