//! Anomalies: a product's or a channel's mean sentiment polarity in one time bucket
//! falling more than `threshold` standard deviations below the mean of its trailing
//! buckets. Detection raises an `AnomalyDetected` event (appended to the store through the
//! runner's outbox, with an id derived from the series and bucket, so a rebuild or a
//! crash never raises it twice); the view lists those events.
//!
//! A bucket is judged once, when the first event of a later bucket arrives for its series
//! (events arrive roughly in time order; a late event still counts in the bucket's figures,
//! but does not re-judge it). Buckets with fewer than `min_count` events are neither
//! judged nor part of a trailing window; the standard deviation is at least
//! `min_stddev`, so that a very steady series does not alarm on noise.

use async_trait::async_trait;
use insights_schemas::{AnomalyDetected, Envelope, Event, Timestamp, current_version};
use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::Row;

use super::{MINUTE, Range, bucket, dim, page, polarity};
use crate::db::{Db, row_json, to_i64};
use crate::{Projection, ProjectionError, Recorded, Table, ViewTx};

/// Detection settings (`[projections.anomalies]`).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnomalyConfig {
    /// Bucket width in minutes (default a day: the sample traffic is a few thousand
    /// messages over two weeks; an hour suits real volumes).
    pub bucket_minutes: i64,
    /// Trailing buckets the baseline is taken from.
    pub trailing: usize,
    /// Trailing buckets needed before a bucket is judged.
    pub min_buckets: usize,
    /// Events a bucket needs to be judged or to count in a baseline.
    pub min_count: i64,
    /// Standard deviations below the baseline that make an anomaly.
    pub threshold: f64,
    /// The least standard deviation used.
    pub min_stddev: f64,
}

impl Default for AnomalyConfig {
    fn default() -> Self {
        AnomalyConfig {
            bucket_minutes: 24 * 60,
            trailing: 7,
            min_buckets: 3,
            min_count: 8,
            threshold: 3.0,
            min_stddev: 0.05,
        }
    }
}

/// The metric anomalies are raised on.
pub const METRIC: &str = "sentiment_polarity_mean";

/// The anomaly view.
#[derive(Debug, Clone, Copy)]
pub struct Anomalies {
    config: AnomalyConfig,
}

impl Anomalies {
    /// The view with these settings.
    pub fn new(config: AnomalyConfig) -> Self {
        Anomalies { config }
    }

    fn width(&self) -> i64 {
        self.config.bucket_minutes.max(1) * MINUTE
    }
}

const TABLES: &[Table] = &[
    Table {
        name: "view_anomaly_buckets",
        columns: "dimension TEXT NOT NULL, value TEXT NOT NULL, bucket_start BIGINT NOT NULL, \
                  n BIGINT NOT NULL, polarity_sum DOUBLE PRECISION NOT NULL, judged BIGINT NOT NULL, \
                  PRIMARY KEY (dimension, value, bucket_start)",
        indexes: &[],
    },
    Table {
        name: "view_anomalies",
        columns: "event_id TEXT PRIMARY KEY, position BIGINT NOT NULL, dimension TEXT NOT NULL, \
                  value TEXT NOT NULL, metric TEXT NOT NULL, expected DOUBLE PRECISION NOT NULL, \
                  observed DOUBLE PRECISION NOT NULL, stddev DOUBLE PRECISION NOT NULL, \
                  window_start BIGINT NOT NULL, window_end BIGINT NOT NULL",
        indexes: &[("by_window", "window_start")],
    },
];

/// Mean and sample standard deviation.
fn mean_std(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = if xs.len() > 1 {
        xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (mean, var.sqrt())
}

impl Anomalies {
    /// Judges the series' buckets before `current` that are not judged yet.
    async fn judge(
        &self,
        tx: &mut ViewTx<'_>,
        dimension: &str,
        value: &str,
        current: i64,
        cause: &Envelope,
    ) -> Result<(), ProjectionError> {
        let table = tx.table("view_anomaly_buckets");
        let pending = sqlx::query(&format!(
            "SELECT bucket_start, n, polarity_sum FROM {table} \
             WHERE dimension = $1 AND value = $2 AND judged = 0 AND bucket_start < $3 ORDER BY bucket_start"
        ))
        .bind(dimension)
        .bind(value)
        .bind(current)
        .fetch_all(tx.conn())
        .await?;
        let width = self.width();
        let c = self.config;
        for row in pending {
            let start: i64 = row.try_get(0)?;
            let n: i64 = row.try_get(1)?;
            let sum: f64 = row.try_get(2)?;
            sqlx::query(&format!(
                "UPDATE {table} SET judged = 1 WHERE dimension = $1 AND value = $2 AND bucket_start = $3"
            ))
            .bind(dimension)
            .bind(value)
            .bind(start)
            .execute(tx.conn())
            .await?;
            if n < c.min_count {
                continue;
            }
            let trailing = sqlx::query(&format!(
                "SELECT n, polarity_sum FROM {table} WHERE dimension = $1 AND value = $2 \
                 AND bucket_start < $3 AND bucket_start >= $4 AND n >= $5"
            ))
            .bind(dimension)
            .bind(value)
            .bind(start)
            .bind(start - width * c.trailing as i64)
            .bind(c.min_count)
            .fetch_all(tx.conn())
            .await?;
            if trailing.len() < c.min_buckets.max(1) {
                continue;
            }
            let mut means = Vec::with_capacity(trailing.len());
            for t in &trailing {
                let tn: i64 = t.try_get(0)?;
                let ts: f64 = t.try_get(1)?;
                means.push(ts / tn as f64);
            }
            let (expected, std) = mean_std(&means);
            let stddev = std.max(c.min_stddev);
            let observed = sum / n as f64;
            if observed < expected - c.threshold * stddev {
                tx.emit(anomaly_event(
                    dimension, value, start, width, expected, observed, stddev, cause,
                ));
            }
        }
        Ok(())
    }
}

#[allow(clippy::too_many_arguments)]
fn anomaly_event(
    dimension: &str,
    value: &str,
    start: i64,
    width: i64,
    expected: f64,
    observed: f64,
    stddev: f64,
    cause: &Envelope,
) -> Envelope {
    let key = format!("{dimension}={value}@{start}/{width}");
    let end = Timestamp(start + width);
    let event_id = Envelope::derived_id("anomalies", &key, end, 0);
    Envelope {
        event_id,
        schema_version: current_version("AnomalyDetected").unwrap_or(1),
        stream_id: format!("anomaly-{dimension}-{value}"),
        causation_id: Some(cause.event_id.to_string()),
        correlation_id: event_id.to_string(),
        occurred_at: end,
        producer: "anomalies".to_owned(),
        producer_version: env!("CARGO_PKG_VERSION").to_owned(),
        event: Event::AnomalyDetected(AnomalyDetected {
            product: (dimension == "product").then(|| value.to_owned()),
            channel: (dimension == "channel").then(|| value.to_owned()),
            metric: METRIC.to_owned(),
            expected,
            observed,
            stddev,
            window_start: Timestamp(start),
            window_end: end,
        }),
    }
}

#[async_trait]
impl Projection for Anomalies {
    fn name(&self) -> &'static str {
        "anomalies"
    }

    fn version(&self) -> i64 {
        1
    }

    fn tables(&self) -> &'static [Table] {
        TABLES
    }

    fn event_types(&self) -> Option<&'static [&'static str]> {
        Some(&["SentimentScored", "AnomalyDetected"])
    }

    async fn apply(&self, tx: &mut ViewTx<'_>, r: Recorded<'_>) -> Result<(), ProjectionError> {
        let e = r.envelope;
        match &e.event {
            Event::SentimentScored(s) => {
                let start = bucket(s.context.sent_at.micros(), self.width());
                let table = tx.table("view_anomaly_buckets");
                for (dimension, value) in [
                    ("product", dim(s.context.product.as_deref())),
                    ("channel", dim(Some(&s.context.channel))),
                ] {
                    self.judge(tx, dimension, value, start, e).await?;
                    sqlx::query(&format!(
                        "INSERT INTO {table} AS t (dimension, value, bucket_start, n, polarity_sum, judged) \
                         VALUES ($1, $2, $3, 1, $4, 0) ON CONFLICT (dimension, value, bucket_start) \
                         DO UPDATE SET n = t.n + 1, polarity_sum = t.polarity_sum + excluded.polarity_sum"
                    ))
                    .bind(dimension)
                    .bind(value)
                    .bind(start)
                    .bind(polarity(s))
                    .execute(tx.conn())
                    .await?;
                }
            }
            Event::AnomalyDetected(a) => {
                let (dimension, value) = match (&a.product, &a.channel) {
                    (Some(p), _) => ("product", p.as_str()),
                    (None, Some(c)) => ("channel", c.as_str()),
                    (None, None) => ("all", "(all)"),
                };
                let table = tx.table("view_anomalies");
                sqlx::query(&format!(
                    "INSERT INTO {table} (event_id, position, dimension, value, metric, expected, observed, \
                     stddev, window_start, window_end) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                     ON CONFLICT (event_id) DO NOTHING"
                ))
                .bind(e.event_id.to_string())
                .bind(to_i64(r.position))
                .bind(dimension)
                .bind(value)
                .bind(&a.metric)
                .bind(a.expected)
                .bind(a.observed)
                .bind(a.stddev)
                .bind(a.window_start.micros())
                .bind(a.window_end.micros())
                .execute(tx.conn())
                .await?;
            }
            _ => {}
        }
        Ok(())
    }
}

/// `GET /v1/views/anomalies` parameters.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnomaliesQuery {
    /// Windows starting in this range.
    #[serde(flatten)]
    pub range: Range,
    /// `product` or `channel`.
    pub dimension: Option<String>,
    /// The product or channel.
    pub value: Option<String>,
    /// Page size.
    pub limit: Option<i64>,
    /// Page offset.
    pub offset: Option<i64>,
    /// Read-your-writes (handled by the API).
    pub min_position: Option<u64>,
}

/// Anomalies, newest window first.
pub async fn query(db: &Db, q: &AnomaliesQuery) -> Result<Value, ProjectionError> {
    let (from, to) = q.range.micros()?;
    let (limit, offset) = page(q.limit, q.offset)?;
    let rows = sqlx::query(
        "SELECT * FROM view_anomalies WHERE window_start >= $1 AND window_start < $2 \
         AND ($3 = '' OR dimension = $3) AND ($4 = '' OR value = $4) \
         ORDER BY window_start DESC, dimension, value LIMIT $5 OFFSET $6",
    )
    .bind(from)
    .bind(to)
    .bind(q.dimension.as_deref().unwrap_or(""))
    .bind(q.value.as_deref().unwrap_or(""))
    .bind(limit)
    .bind(offset)
    .fetch_all(db.pool())
    .await?;
    Ok(json!({
        "items": rows.iter().map(|r| super::fairness::with_json(row_json(r), &[])).collect::<Vec<_>>(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_and_sample_deviation() {
        let (m, s) = mean_std(&[1.0, 2.0, 3.0, 4.0]);
        assert!((m - 2.5).abs() < 1e-12);
        assert!((s - 1.290_994_448_735_805_6).abs() < 1e-12);
        assert_eq!(mean_std(&[0.3]), (0.3, 0.0));
    }
}
