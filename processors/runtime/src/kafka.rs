//! Kafka client configuration: the properties every consumer and producer gets, with the
//! user's librdkafka properties layered on top.

use std::collections::BTreeMap;

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::KafkaResult;
use rdkafka::producer::FutureProducer;
use rdkafka::statistics::Statistics;
use rdkafka::{ClientConfig, ClientContext, Offset, TopicPartitionList};

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
    settings.finish(consumer_config(settings, group)).create()
}

/// A consumer for reading assigned partitions to their end: it reports each end
/// (`enable.partition.eof`) as `KafkaError::PartitionEOF` from `recv`, which its context
/// does not log as an error. Never subscribes or commits.
pub(crate) fn reader(settings: &KafkaSettings, group: &str) -> KafkaResult<StreamConsumer<Reader>> {
    let mut c = settings.finish(consumer_config(settings, group));
    c.set("enable.partition.eof", "true");
    c.create_with_context(Reader)
}

/// [`reader`]'s context: librdkafka's errors logged, ends of partitions not.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Reader;

impl ClientContext for Reader {
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        if !matches!(error, rdkafka::error::KafkaError::PartitionEOF(_)) {
            tracing::error!(%error, reason, "librdkafka error");
        }
    }
}

impl ConsumerContext for Reader {}

/// The worker's consumer: like [`consumer`], with a context that commits what the worker
/// has handled when partitions are revoked in a rebalance.
pub(crate) fn worker_consumer(
    settings: &KafkaSettings,
    group: &str,
) -> KafkaResult<StreamConsumer<RebalanceContext>> {
    let mut c = consumer_config(settings, group);
    // Lag comes from the statistics (high watermarks seen in fetch responses), not from a
    // ListOffsets round trip per partition.
    c.set("statistics.interval.ms", "1000");
    settings
        .finish(c)
        .create_with_context(RebalanceContext::default())
}

/// Commits, when partitions are revoked, the offsets of everything the worker has
/// stored and published, and records the revocation so that the worker drops messages of
/// those partitions that it fetched but has not handled (their next owner, or this
/// consumer after reassignment, reads them again from the committed offset). Keeps the
/// partitions assigned now, so that a batch still in flight when its partition was
/// revoked does not commit over its next owner, and librdkafka's statistics (high
/// watermarks), so that lag is known without a round trip to the broker.
#[derive(Debug, Default)]
pub(crate) struct RebalanceContext {
    /// Per partition, the next offset to read, for everything handled so far.
    pub(crate) handled: Mutex<TopicPartitionList>,
    /// Bumped on every revocation.
    pub(crate) revocations: AtomicU64,
    /// Partitions revoked since the worker last looked.
    pub(crate) revoked: Mutex<BTreeSet<(String, i32)>>,
    /// Partitions assigned to this consumer now.
    pub(crate) assigned: Mutex<BTreeSet<(String, i32)>>,
    /// The latest statistics: when they came, and per assigned partition its high
    /// watermark and committed offset as librdkafka last saw them.
    pub(crate) watermarks: Mutex<Option<Watermarks>>,
}

/// Per partition, what librdkafka's latest statistics say about it.
#[derive(Debug, Clone)]
pub(crate) struct Watermarks {
    /// When the statistics arrived.
    pub(crate) at: Instant,
    /// (topic, partition) → (high watermark, committed offset); -1 where unknown.
    pub(crate) partitions: BTreeMap<(String, i32), (i64, i64)>,
}

impl RebalanceContext {
    /// Whether `partition` of `topic` is assigned to this consumer now.
    pub(crate) fn owns(&self, topic: &str, partition: i32) -> bool {
        self.assigned
            .lock()
            .map(|a| a.contains(&(topic.to_owned(), partition)))
            .unwrap_or(false)
    }

    /// Per assigned partition, messages behind the high watermark from what has been
    /// handled (or, where nothing has, from the committed offset), as of statistics that
    /// arrived after `since`; `None` if there are none that recent or nothing is assigned.
    pub(crate) fn lags_since(&self, since: Instant) -> Option<Vec<(String, i32, i64)>> {
        let marks = self.watermarks.lock().ok()?.clone()?;
        if marks.at < since {
            return None;
        }
        let assigned = self.assigned.lock().ok()?.clone();
        if assigned.is_empty() {
            return None;
        }
        let handled = self.handled.lock().ok()?.clone();
        let mut out = Vec::with_capacity(assigned.len());
        for (topic, partition) in assigned {
            let (high, committed) = *marks.partitions.get(&(topic.clone(), partition))?;
            if high < 0 {
                return None;
            }
            let done = match handled
                .find_partition(&topic, partition)
                .map(|e| e.offset())
            {
                Some(Offset::Offset(o)) => o.max(committed),
                _ => committed.max(0),
            };
            out.push((topic, partition, (high - done).max(0)));
        }
        Some(out)
    }
}

impl ClientContext for RebalanceContext {
    fn stats(&self, statistics: Statistics) {
        let mut partitions = BTreeMap::new();
        for (name, topic) in statistics.topics {
            for (id, p) in topic.partitions {
                // -1 is librdkafka's internal "unassigned" partition.
                if id >= 0 {
                    partitions.insert((name.clone(), id), (p.hi_offset, p.committed_offset));
                }
            }
        }
        if let Ok(mut w) = self.watermarks.lock() {
            *w = Some(Watermarks {
                at: Instant::now(),
                partitions,
            });
        }
    }
}

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
        if let Ok(mut assigned) = self.assigned.lock() {
            for e in tpl.elements() {
                assigned.remove(&(e.topic().to_owned(), e.partition()));
            }
        }
        self.revocations.fetch_add(1, Ordering::SeqCst);
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance
            && let Ok(mut assigned) = self.assigned.lock()
        {
            assigned.extend(
                tpl.elements()
                    .iter()
                    .map(|e| (e.topic().to_owned(), e.partition())),
            );
        }
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
        .set("heartbeat.interval.ms", "1000")
        // A fetch waits at most this long for data. Requests on a broker connection are
        // answered in order by some brokers (Tansu), so every other request of this client
        // (offset commits, metadata) can wait behind a long poll; Tansu 0.6.0 also holds
        // every fetch for part of this time even when it has data. 100 ms keeps a hop's
        // latency low everywhere, for at most ten empty fetches a second on an idle topic.
        .set("fetch.wait.max.ms", "100");
    c
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
