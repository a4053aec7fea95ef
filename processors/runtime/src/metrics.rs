//! The Prometheus metric families every processor exports, with the same names and labels.

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry};

/// Metric families, registered in one registry served at `/metrics`.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    /// Messages taken from input topics.
    pub consumed: IntCounterVec,
    /// Events appended and published to output topics.
    pub produced: IntCounterVec,
    /// Events newly appended to the store (redeliveries not counted), by type.
    pub stored: IntCounterVec,
    /// Messages sent to the dead-letter topic, by error class.
    pub dead_lettered: IntCounterVec,
    /// Retries, by what was retried (process, store, publish).
    pub retries: IntCounterVec,
    /// Seconds from a batch's first message to its offsets' commit.
    pub batch_seconds: HistogramVec,
    /// Seconds a batch spends in each stage: `fill` (first message to the batch taken),
    /// `process`, `store_queue`, `store`, `publish_queue`, `publish` (sent to every
    /// delivery acknowledged), `commit`.
    pub stage_seconds: HistogramVec,
    /// Messages behind the partition's high watermark.
    pub lag: IntGaugeVec,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers the families.
    pub fn new() -> Self {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
            c
        };
        let consumed = counter(
            "insights_messages_consumed_total",
            "Messages taken from input topics",
            &["processor", "topic"],
        );
        let produced = counter(
            "insights_events_produced_total",
            "Events appended to the store and published",
            &["processor", "topic"],
        );
        let stored = counter(
            "insights_events_stored_total",
            "Events newly appended to the store (a redelivery's duplicates not counted), by type",
            &["processor", "event_type"],
        );
        let dead_lettered = counter(
            "insights_messages_dead_lettered_total",
            "Messages sent to the dead-letter topic",
            &["processor", "error_class"],
        );
        let retries = counter(
            "insights_retries_total",
            "Retried operations",
            &["processor", "operation"],
        );
        let batch_seconds = HistogramVec::new(
            HistogramOpts::new(
                "insights_batch_duration_seconds",
                "Time from a batch's first message to its commit",
            )
            .buckets(vec![
                0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            &["processor"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(batch_seconds.clone()))
            .expect("unique metric");
        let stage_seconds = HistogramVec::new(
            HistogramOpts::new(
                "insights_stage_duration_seconds",
                "Time a batch spends in each stage of the worker",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
            &["processor", "stage"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(stage_seconds.clone()))
            .expect("unique metric");
        let lag = IntGaugeVec::new(
            Opts::new(
                "insights_consumer_lag",
                "Messages behind the high watermark",
            ),
            &["processor", "topic", "partition"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(lag.clone()))
            .expect("unique metric");
        Self {
            registry,
            consumed,
            produced,
            stored,
            dead_lettered,
            retries,
            batch_seconds,
            stage_seconds,
            lag,
        }
    }

    /// Creates `processor`'s counters at zero (dead letters per class, retries per
    /// operation), so that they are exported before their first increment: the first dead
    /// letter then shows in `increase()`, and dashboards show 0 rather than no data.
    pub fn prepare(&self, processor: &str) {
        for class in [
            crate::ErrorClass::Poison,
            crate::ErrorClass::RetriesExhausted,
        ] {
            self.dead_lettered
                .with_label_values(&[processor, class.as_str()]);
        }
        for operation in ["consume", "process", "dependency", "store", "publish"] {
            self.retries.with_label_values(&[processor, operation]);
        }
    }

    /// Records `seconds` spent by a batch of `processor` in `stage`.
    pub fn stage(&self, processor: &str, stage: &str, seconds: f64) {
        self.stage_seconds
            .with_label_values(&[processor, stage])
            .observe(seconds);
    }

    /// The registry, to serve or to add families to.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The text exposition of every family.
    pub fn render(&self) -> String {
        let encoder = prometheus::TextEncoder::new();
        encoder
            .encode_to_string(&self.registry.gather())
            .unwrap_or_else(|e| format!("# encoding metrics failed: {e}\n"))
    }
}
