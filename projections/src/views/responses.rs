//! Response metrics per day: drafts by backend and their latency, time from the customer's
//! message to the draft, fallbacks, guardrail hits by guardrail, automatic approvals vs
//! reviews (by priority and reason), reviewers' decisions, intents.
//!
//! One long table `(day, metric, dim) → (n, total)`: `n` counts, `total` sums a quantity
//! (milliseconds, seconds) whose mean is `total / n`.

use std::collections::BTreeMap;

use async_trait::async_trait;
use insights_schemas::Timestamp;
use insights_schemas::{Envelope, Event};
use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::Row;

use super::{DAY, bucket, range};
use crate::db::Db;
use crate::fold::fold;
use crate::{Projection, ProjectionError, Recorded, Table, ViewTx};

/// The response metrics view.
#[derive(Debug, Clone, Copy)]
pub struct Responses;

const TABLES: &[Table] = &[Table {
    name: "view_response_metrics",
    columns: "day BIGINT NOT NULL, metric TEXT NOT NULL, dim TEXT NOT NULL, n BIGINT NOT NULL, \
              total DOUBLE PRECISION NOT NULL, PRIMARY KEY (day, metric, dim)",
    indexes: &[],
}];

#[async_trait]
impl Projection for Responses {
    fn name(&self) -> &'static str {
        "responses"
    }

    fn version(&self) -> i64 {
        1
    }

    fn tables(&self) -> &'static [Table] {
        TABLES
    }

    fn event_types(&self) -> Option<&'static [&'static str]> {
        Some(&[
            "ResponseDrafted",
            "ResponseApproved",
            "ReviewRequested",
            "ReviewDecided",
        ])
    }

    async fn apply(
        &self,
        tx: &mut ViewTx<'_>,
        page: &[Recorded<'_>],
    ) -> Result<(), ProjectionError> {
        let mut changes = Vec::new();
        for r in page {
            let Some((sent_at, rows)) = metrics(r.envelope) else {
                continue;
            };
            let day = bucket(sent_at.micros(), DAY);
            for (metric, dim, total) in rows {
                changes.push(((day, metric.to_owned(), dim), total));
            }
        }
        let table = tx.table("view_response_metrics");
        fold(
            tx.conn(),
            &table,
            &["day", "metric", "dim"],
            &["n", "total"],
            &changes,
            |row: &mut Option<(i64, f64)>, total| {
                let (n, sum) = row.get_or_insert((0, 0.0));
                *n += 1;
                *sum += total;
            },
        )
        .await
    }
}

/// What one event adds to a metric: `(metric, dim, quantity)`.
type Metric = (&'static str, String, f64);

/// The metrics one event adds to, and the time of the customer's message it is about;
/// `None` for events the view does not count.
fn metrics(e: &Envelope) -> Option<(Timestamp, Vec<Metric>)> {
    let mut rows: Vec<Metric> = Vec::new();
    let sent_at = match &e.event {
        Event::ResponseDrafted(d) => {
            rows.push((
                "drafts",
                d.backend.clone(),
                d.latency_micros as f64 / 1_000.0,
            ));
            rows.push((
                "time_to_draft_s",
                d.backend.clone(),
                (e.occurred_at.micros() - d.context.sent_at.micros()).max(0) as f64 / 1e6,
            ));
            if d.fell_back {
                rows.push(("fell_back", d.backend.clone(), 0.0));
            }
            for g in d.guardrails.iter().filter(|g| !g.passed) {
                rows.push(("guardrail_hit", g.name.clone(), 0.0));
            }
            rows.push(("intent", d.intent.clone(), 0.0));
            d.context.sent_at
        }
        Event::ResponseApproved(a) => {
            let metric = if a.automatic {
                "auto_approved"
            } else {
                "reviewer_approved"
            };
            rows.push((metric, String::new(), 0.0));
            a.context.sent_at
        }
        Event::ReviewRequested(q) => {
            rows.push(("review_requested", q.priority.clone(), 0.0));
            for reason in &q.reasons {
                rows.push(("review_reason", reason.clone(), 0.0));
            }
            q.context.sent_at
        }
        // Settling decisions count as the item's outcome; opinions that did not settle
        // it (a first of two, a disagreeing second) as opinions.
        Event::ReviewDecided(d) if !d.settles => {
            let decision = serde_json::to_value(d.decision)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            rows.push(("review_opinion", decision, 0.0));
            d.context.sent_at
        }
        Event::ReviewDecided(d) => {
            let decision = serde_json::to_value(d.decision)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            rows.push(("review_decided", decision, 0.0));
            d.context.sent_at
        }
        _ => return None,
    };
    Some((sent_at, rows))
}

/// `GET /v1/views/responses` parameters.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ResponsesQuery {
    /// Days starting in this range.
    #[param(value_type = Option<String>, format = DateTime)]
    pub from: Option<Timestamp>,
    /// Before this instant (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    pub to: Option<Timestamp>,
    /// Read-your-writes (handled by the API).
    #[serde(default, deserialize_with = "crate::views::bounded")]
    #[param(minimum = 0, maximum = 9007199254740991.0)]
    pub min_position: Option<u64>,
}

/// Totals over the range, rates, breakdowns, and a daily series.
pub async fn query(db: &Db, q: &ResponsesQuery) -> Result<Value, ProjectionError> {
    let (from, to) = range(q.from, q.to)?;
    let rows = sqlx::query(
        "SELECT metric, dim, CAST(SUM(n) AS BIGINT), SUM(total) FROM view_response_metrics \
         WHERE day >= $1 AND day < $2 GROUP BY metric, dim ORDER BY metric, dim",
    )
    .bind(from)
    .bind(to)
    .fetch_all(db.pool())
    .await?;
    let mut by: BTreeMap<String, BTreeMap<String, (i64, f64)>> = BTreeMap::new();
    for row in &rows {
        by.entry(row.try_get(0)?)
            .or_default()
            .insert(row.try_get(1)?, (row.try_get(2)?, row.try_get(3)?));
    }
    let sum = |metric: &str| -> i64 { by.get(metric).map_or(0, |m| m.values().map(|v| v.0).sum()) };
    let counts = |metric: &str| -> BTreeMap<String, i64> {
        by.get(metric)
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.0)).collect())
            .unwrap_or_default()
    };
    let mut backends = serde_json::Map::new();
    if let Some(drafts) = by.get("drafts") {
        for (backend, (n, latency)) in drafts {
            let fell_back = by
                .get("fell_back")
                .and_then(|m| m.get(backend))
                .map_or(0, |v| v.0);
            let ttd = by.get("time_to_draft_s").and_then(|m| m.get(backend));
            backends.insert(
                backend.clone(),
                json!({
                    "drafts": n,
                    "fell_back": fell_back,
                    "mean_latency_ms": ratio(*latency, *n),
                    "mean_time_to_draft_s": ttd.and_then(|(k, t)| ratio(*t, *k)),
                }),
            );
        }
    }
    let drafts = sum("drafts");
    let auto = sum("auto_approved");
    let reviewed = sum("review_requested");
    let daily = sqlx::query(
        "SELECT day, metric, CAST(SUM(n) AS BIGINT) FROM view_response_metrics \
         WHERE day >= $1 AND day < $2 AND metric IN ('drafts', 'fell_back', 'auto_approved', 'review_requested') \
         GROUP BY day, metric ORDER BY day",
    )
    .bind(from)
    .bind(to)
    .fetch_all(db.pool())
    .await?;
    let mut days: BTreeMap<i64, serde_json::Map<String, Value>> = BTreeMap::new();
    for row in &daily {
        let day: i64 = row.try_get(0)?;
        let metric: String = row.try_get(1)?;
        let n: i64 = row.try_get(2)?;
        days.entry(day).or_default().insert(metric, n.into());
    }
    Ok(json!({
        "drafts": drafts,
        "fell_back": sum("fell_back"),
        "fallback_rate": ratio(sum("fell_back") as f64, drafts),
        "auto_approved": auto,
        "review_requested": reviewed,
        "reviewer_approved": sum("reviewer_approved"),
        "auto_approval_rate": ratio(auto as f64, auto + reviewed),
        "by_backend": backends,
        "guardrail_hits": counts("guardrail_hit"),
        "review_priorities": counts("review_requested"),
        "review_reasons": counts("review_reason"),
        "review_decisions": counts("review_decided"),
        "review_non_settling_opinions": counts("review_opinion"),
        "intents": counts("intent"),
        "daily": days.into_iter().map(|(day, mut m)| {
            m.insert("day".into(), super::time(day));
            Value::Object(m)
        }).collect::<Vec<_>>(),
    }))
}

fn ratio(x: f64, n: i64) -> Option<f64> {
    (n > 0).then(|| x / n as f64)
}
