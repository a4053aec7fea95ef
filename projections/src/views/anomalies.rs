//! Anomalies: a product's or a channel's mean sentiment polarity in one time bucket
//! falling more than `threshold` standard deviations below the mean of its trailing
//! buckets. Detection raises an `AnomalyDetected` event (appended to the store through the
//! runner's outbox, with an id derived from the series and bucket, so a rebuild or a
//! crash never raises it twice); the view lists those events.
//!
//! A bucket is judged once the event time of every partition has moved past it — the
//! watermark. By default that is the fairness processor's: it reports a window only when
//! every partition of `interactions.scored` has passed it, so a `FairnessReported` for a
//! window ending at W says the log holds every scored message sent before W (a backfill
//! drains partitions one after another, hours of event time apart, so the latest event
//! time seen says little). Without the fairness processor, `watermark = "event_time"`
//! judges a bucket once any message is `lateness_buckets` buckets later. A message that
//! still arrives late re-judges its bucket (unless it was flagged already). Buckets with
//! fewer than `min_count` messages are neither judged nor part of a baseline; the
//! deviation used is at least `min_stddev`, and at least the standard error of the
//! bucket's own mean (its messages' spread over √n), so a small bucket's noise is not an
//! anomaly.

use async_trait::async_trait;
use std::collections::BTreeMap;

use insights_schemas::{
    AnomalyDetected, Envelope, Event, SentimentScored, Timestamp, current_version,
};
use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::Row;

use super::{MINUTE, bucket, dim, page, polarity, range};
use crate::db::{Db, row_json, to_i64};
use crate::fold::{fold, insert_new, load};
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
    /// What closes a bucket: `fairness` (the fairness processor's reports, default) or
    /// `event_time` (the latest message time seen, less `lateness_buckets`).
    pub watermark: Watermark,
    /// With `event_time`: buckets the latest message must be past a bucket to close it.
    pub lateness_buckets: i64,
}

/// What closes a bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Watermark {
    /// `FairnessReported` window ends.
    Fairness,
    /// The latest message time seen, less the allowed lateness.
    EventTime,
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
            watermark: Watermark::Fairness,
            lateness_buckets: 1,
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
                  n BIGINT NOT NULL, polarity_sum DOUBLE PRECISION NOT NULL, \
                  polarity_sqsum DOUBLE PRECISION NOT NULL, judged BIGINT NOT NULL, \
                  PRIMARY KEY (dimension, value, bucket_start)",
        indexes: &[("pending", "judged, bucket_start")],
    },
    Table {
        name: "view_anomaly_seen",
        columns: "interaction_id TEXT PRIMARY KEY",
        indexes: &[],
    },
    Table {
        name: "view_anomaly_watermark",
        columns: "id BIGINT PRIMARY KEY, complete_before BIGINT NOT NULL",
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

/// A bucket's state: not judged yet, judged, or judged and flagged (an anomaly raised).
const PENDING: i64 = 0;
const JUDGED: i64 = 1;
const FLAGGED: i64 = 2;

impl Anomalies {
    /// Judges one bucket of a series against its trailing buckets, raising an anomaly if
    /// it fell too far.
    async fn judge(
        &self,
        tx: &mut ViewTx<'_>,
        dimension: &str,
        value: &str,
        start: i64,
        cause: &Envelope,
    ) -> Result<(), ProjectionError> {
        let table = tx.table("view_anomaly_buckets");
        let row = sqlx::query(&format!(
            "UPDATE {table} SET judged = $1 WHERE dimension = $2 AND value = $3 AND bucket_start = $4 \
             RETURNING n, polarity_sum"
        ))
        .bind(JUDGED)
        .bind(dimension)
        .bind(value)
        .bind(start)
        .fetch_one(tx.conn())
        .await?;
        let n: i64 = row.try_get(0)?;
        let sum: f64 = row.try_get(1)?;
        let c = self.config;
        if n < c.min_count {
            return Ok(());
        }
        let width = self.width();
        let trailing = sqlx::query(&format!(
            "SELECT n, polarity_sum, polarity_sqsum FROM {table} WHERE dimension = $1 AND value = $2 \
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
            return Ok(());
        }
        let mut means = Vec::with_capacity(trailing.len());
        let (mut items, mut item_sum, mut item_sqsum) = (0_i64, 0.0, 0.0);
        for t in &trailing {
            let tn: i64 = t.try_get(0)?;
            let ts: f64 = t.try_get(1)?;
            let tq: f64 = t.try_get(2)?;
            means.push(ts / tn as f64);
            items += tn;
            item_sum += ts;
            item_sqsum += tq;
        }
        let (expected, between) = mean_std(&means);
        // The spread of single messages in the baseline, and so the standard error of this
        // bucket's mean.
        let item_mean = item_sum / items as f64;
        let item_std = (item_sqsum / items as f64 - item_mean * item_mean)
            .max(0.0)
            .sqrt();
        let stddev = between.max(item_std / (n as f64).sqrt()).max(c.min_stddev);
        let observed = sum / n as f64;
        if observed < expected - c.threshold * stddev {
            sqlx::query(&format!(
                "UPDATE {table} SET judged = $1 WHERE dimension = $2 AND value = $3 AND bucket_start = $4"
            ))
            .bind(FLAGGED)
            .bind(dimension)
            .bind(value)
            .bind(start)
            .execute(tx.conn())
            .await?;
            tx.emit(anomaly_event(
                dimension, value, start, width, expected, observed, stddev, cause,
            ));
        }
        Ok(())
    }

    /// Moves the watermark to `complete_before` if that is later, and judges every bucket
    /// that ends at or before it.
    async fn advance(
        &self,
        tx: &mut ViewTx<'_>,
        complete_before: i64,
        cause: &Envelope,
    ) -> Result<(), ProjectionError> {
        let watermark = tx.table("view_anomaly_watermark");
        let moved = sqlx::query(&format!(
            "INSERT INTO {watermark} AS t (id, complete_before) VALUES (1, $1) ON CONFLICT (id) \
             DO UPDATE SET complete_before = excluded.complete_before \
             WHERE excluded.complete_before > t.complete_before"
        ))
        .bind(complete_before)
        .execute(tx.conn())
        .await?
        .rows_affected();
        if moved == 0 {
            return Ok(());
        }
        let table = tx.table("view_anomaly_buckets");
        let pending = sqlx::query(&format!(
            "SELECT dimension, value, bucket_start FROM {table} WHERE judged = $1 AND bucket_start <= $2 \
             ORDER BY bucket_start, dimension, value"
        ))
        .bind(PENDING)
        .bind(complete_before - self.width())
        .fetch_all(tx.conn())
        .await?;
        for row in pending {
            let dimension: String = row.try_get(0)?;
            let value: String = row.try_get(1)?;
            let bucket_start: i64 = row.try_get(2)?;
            self.judge(tx, &dimension, &value, bucket_start, cause)
                .await?;
        }
        Ok(())
    }
}

/// The series a score counts in: its product's and its channel's.
fn series(s: &SentimentScored) -> [(&'static str, &str); 2] {
    [
        ("product", dim(s.context.product.as_deref())),
        ("channel", dim(Some(&s.context.channel))),
    ]
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
        4
    }

    fn tables(&self) -> &'static [Table] {
        TABLES
    }

    fn event_types(&self) -> Option<&'static [&'static str]> {
        Some(&["SentimentScored", "FairnessReported", "AnomalyDetected"])
    }

    async fn apply(
        &self,
        tx: &mut ViewTx<'_>,
        page: &[Recorded<'_>],
    ) -> Result<(), ProjectionError> {
        let mut i = 0;
        while i < page.len() {
            let scored = |r: &Recorded<'_>| matches!(r.envelope.event, Event::SentimentScored(_));
            if self.config.watermark == Watermark::Fairness && scored(&page[i]) {
                let run = page[i..].iter().take_while(|r| scored(r)).count();
                self.apply_scored(tx, &page[i..i + run]).await?;
                i += run;
            } else {
                self.apply_one(tx, page[i]).await?;
                i += 1;
            }
        }
        Ok(())
    }
}

impl Anomalies {
    /// A run of `SentimentScored` events with the fairness watermark (which they do not
    /// move): only additions to open buckets, folded in one pass, unless one of them
    /// falls in a bucket already judged; then one at a time, as that bucket is judged
    /// again after each.
    async fn apply_scored(
        &self,
        tx: &mut ViewTx<'_>,
        run: &[Recorded<'_>],
    ) -> Result<(), ProjectionError> {
        let mut interactions = Vec::with_capacity(run.len());
        let mut changes = Vec::with_capacity(run.len() * 2);
        for r in run {
            let Event::SentimentScored(s) = &r.envelope.event else {
                continue;
            };
            interactions.push((s.context.interaction_id.clone(),));
            let start = bucket(s.context.sent_at.micros(), self.width());
            let p = polarity(s);
            for (dimension, value) in series(s) {
                changes.push(((dimension.to_owned(), value.to_owned(), start), p));
            }
        }
        let table = tx.table("view_anomaly_buckets");
        let keys = ["dimension", "value", "bucket_start"];
        let states: BTreeMap<(String, String, i64), (i64,)> = load(
            tx.conn(),
            &table,
            &keys,
            &["judged"],
            changes.iter().map(|(k, _)| k),
        )
        .await?;
        if states.values().any(|&(judged,)| judged != PENDING) {
            for r in run {
                self.apply_one(tx, *r).await?;
            }
            return Ok(());
        }
        // One score per interaction: the first (a reprocessing with another model does not
        // count it twice).
        let seen = tx.table("view_anomaly_seen");
        let fresh = insert_new(
            tx.conn(),
            &seen,
            &["interaction_id"],
            &["interaction_id"],
            &interactions,
            Clone::clone,
        )
        .await?;
        let fresh: Vec<((String, String, i64), f64)> = fresh
            .into_iter()
            .flat_map(|i| changes[2 * i..2 * i + 2].iter().cloned())
            .collect();
        fold(
            tx.conn(),
            &table,
            &keys,
            &["n", "polarity_sum", "polarity_sqsum", "judged"],
            &fresh,
            |row: &mut Option<(i64, f64, f64, i64)>, &p| {
                let r = row.get_or_insert((0, 0.0, 0.0, PENDING));
                r.0 += 1;
                r.1 += p;
                r.2 += p * p;
            },
        )
        .await
    }

    /// One event, as it comes.
    async fn apply_one(&self, tx: &mut ViewTx<'_>, r: Recorded<'_>) -> Result<(), ProjectionError> {
        let e = r.envelope;
        match &e.event {
            Event::SentimentScored(s) => {
                // One score per interaction: the first (a reprocessing with another model
                // does not count it twice).
                let seen = tx.table("view_anomaly_seen");
                let fresh = sqlx::query(&format!(
                    "INSERT INTO {seen} (interaction_id) VALUES ($1) ON CONFLICT DO NOTHING"
                ))
                .bind(&s.context.interaction_id)
                .execute(tx.conn())
                .await?
                .rows_affected();
                if fresh == 0 {
                    return Ok(());
                }
                let start = bucket(s.context.sent_at.micros(), self.width());
                let table = tx.table("view_anomaly_buckets");
                for (dimension, value) in series(s) {
                    let p = polarity(s);
                    let judged: i64 = sqlx::query_scalar(&format!(
                        "INSERT INTO {table} AS t (dimension, value, bucket_start, n, polarity_sum, \
                         polarity_sqsum, judged) VALUES ($1, $2, $3, 1, $4, $5, $6) \
                         ON CONFLICT (dimension, value, bucket_start) DO UPDATE SET n = t.n + 1, \
                         polarity_sum = t.polarity_sum + excluded.polarity_sum, \
                         polarity_sqsum = t.polarity_sqsum + excluded.polarity_sqsum \
                         RETURNING judged"
                    ))
                    .bind(dimension)
                    .bind(value)
                    .bind(start)
                    .bind(p)
                    .bind(p * p)
                    .bind(PENDING)
                    .fetch_one(tx.conn())
                    .await?;
                    if judged == JUDGED {
                        // A late event: judge its bucket again.
                        self.judge(tx, dimension, value, start, e).await?;
                    }
                }
                if self.config.watermark == Watermark::EventTime {
                    let lateness = self.config.lateness_buckets.max(0) * self.width();
                    self.advance(tx, start - lateness, e).await?;
                }
            }
            Event::FairnessReported(f) if self.config.watermark == Watermark::Fairness => {
                let end = f.window_end.micros();
                self.advance(tx, bucket(end, self.width()), e).await?;
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
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AnomaliesQuery {
    /// Windows starting in this range.
    #[param(value_type = Option<String>, format = DateTime)]
    pub from: Option<Timestamp>,
    /// Before this instant (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    pub to: Option<Timestamp>,
    /// `product` or `channel`.
    pub dimension: Option<String>,
    /// The product or channel.
    pub value: Option<String>,
    /// Page size.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
    /// Page offset.
    #[serde(default, deserialize_with = "crate::views::bounded")]
    #[param(minimum = 0, maximum = 9007199254740991.0)]
    pub offset: Option<i64>,
    /// Read-your-writes (handled by the API).
    #[serde(default, deserialize_with = "crate::views::bounded")]
    #[param(minimum = 0, maximum = 9007199254740991.0)]
    pub min_position: Option<u64>,
}

/// Anomalies, newest window first.
pub async fn query(db: &Db, q: &AnomaliesQuery) -> Result<Value, ProjectionError> {
    let (from, to) = range(q.from, q.to)?;
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
