//! Fairness: the latest report per attribute set and outcome (groups, rates and metrics),
//! and every alert.
//!
//! "Latest" is the latest window in which at least one group reached the minimum group
//! size (a window with too few messages to say anything — the quiet start of a day, the
//! tail of a backfill — does not hide the last one that did), else simply the latest.

use async_trait::async_trait;
use insights_schemas::Event;
use insights_schemas::Timestamp;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{page, range};
use crate::db::{Db, row_json, to_i64};
use crate::{Projection, ProjectionError, Recorded, Table, ViewTx};

/// The fairness view.
#[derive(Debug, Clone, Copy)]
pub struct Fairness;

const TABLES: &[Table] = &[
    Table {
        name: "view_fairness_latest",
        columns: "attributes TEXT NOT NULL, outcome TEXT NOT NULL, window_start BIGINT NOT NULL, \
                  window_end BIGINT NOT NULL, report_event_id TEXT NOT NULL, position BIGINT NOT NULL, \
                  min_group_size BIGINT NOT NULL, groups TEXT NOT NULL, metrics TEXT NOT NULL, \
                  excluded_groups TEXT NOT NULL, reported_groups BIGINT NOT NULL, \
                  confidence DOUBLE PRECISION, intervals TEXT NOT NULL, \
                  PRIMARY KEY (attributes, outcome)",
        indexes: &[],
    },
    Table {
        name: "view_fairness_alerts",
        columns: "event_id TEXT PRIMARY KEY, position BIGINT NOT NULL, attributes TEXT NOT NULL, \
                  outcome TEXT NOT NULL, metric TEXT NOT NULL, value DOUBLE PRECISION NOT NULL, \
                  threshold DOUBLE PRECISION NOT NULL, groups TEXT NOT NULL, window_start BIGINT NOT NULL, \
                  window_end BIGINT NOT NULL, confidence DOUBLE PRECISION, interval_low DOUBLE PRECISION, \
                  interval_high DOUBLE PRECISION, evidence DOUBLE PRECISION, method TEXT",
        indexes: &[("by_window", "window_end")],
    },
];

#[async_trait]
impl Projection for Fairness {
    fn name(&self) -> &'static str {
        "fairness"
    }

    fn version(&self) -> i64 {
        // 3: intervals and evidence (FairnessReported and FairnessAlertRaised v2).
        3
    }

    fn tables(&self) -> &'static [Table] {
        TABLES
    }

    fn event_types(&self) -> Option<&'static [&'static str]> {
        Some(&["FairnessReported", "FairnessAlertRaised"])
    }

    async fn apply(
        &self,
        tx: &mut ViewTx<'_>,
        page: &[Recorded<'_>],
    ) -> Result<(), ProjectionError> {
        // A report or an alert a day per attribute set and outcome: one statement each is
        // cheap.
        for r in page {
            apply_one(tx, *r).await?;
        }
        Ok(())
    }
}

async fn apply_one(tx: &mut ViewTx<'_>, r: Recorded<'_>) -> Result<(), ProjectionError> {
    let e = r.envelope;
    match &e.event {
        Event::FairnessReported(f) => {
            // A later window replaces an earlier one; a late report of an older window
            // does not.
            let table = tx.table("view_fairness_latest");
            sqlx::query(&format!(
                    "INSERT INTO {table} AS t (attributes, outcome, window_start, window_end, report_event_id, \
                     position, min_group_size, groups, metrics, excluded_groups, reported_groups, \
                     confidence, intervals) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
                     ON CONFLICT (attributes, outcome) DO UPDATE SET window_start = excluded.window_start, \
                     window_end = excluded.window_end, report_event_id = excluded.report_event_id, \
                     position = excluded.position, min_group_size = excluded.min_group_size, \
                     groups = excluded.groups, metrics = excluded.metrics, excluded_groups = excluded.excluded_groups, \
                     reported_groups = excluded.reported_groups, confidence = excluded.confidence, \
                     intervals = excluded.intervals \
                     WHERE excluded.window_end >= t.window_end \
                     AND (excluded.reported_groups > 0 OR t.reported_groups = 0)"
                ))
                .bind(f.attributes.join("+"))
                .bind(&f.outcome)
                .bind(f.window_start.micros())
                .bind(f.window_end.micros())
                .bind(e.event_id.to_string())
                .bind(to_i64(r.position))
                .bind(i64::from(f.min_group_size))
                .bind(json!(f.groups).to_string())
                .bind(json!(f.metrics).to_string())
                .bind(json!(f.excluded_groups).to_string())
                .bind(
                    f.groups
                        .iter()
                        .filter(|g| g.selection_rate.is_some())
                        .count() as i64,
                )
                .bind(f.confidence)
                .bind(json!(f.intervals).to_string())
                .execute(tx.conn())
                .await?;
        }
        Event::FairnessAlertRaised(a) => {
            let table = tx.table("view_fairness_alerts");
            sqlx::query(&format!(
                    "INSERT INTO {table} (event_id, position, attributes, outcome, metric, value, threshold, \
                     groups, window_start, window_end, confidence, interval_low, interval_high, evidence, \
                     method) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) \
                     ON CONFLICT (event_id) DO NOTHING"
                ))
                .bind(e.event_id.to_string())
                .bind(to_i64(r.position))
                .bind(a.attributes.join("+"))
                .bind(&a.outcome)
                .bind(&a.metric)
                .bind(a.value)
                .bind(a.threshold)
                .bind(json!(a.groups).to_string())
                .bind(a.window_start.micros())
                .bind(a.window_end.micros())
                .bind(a.confidence)
                .bind(a.interval_low)
                .bind(a.interval_high)
                .bind(a.evidence)
                .bind(a.method.as_deref())
                .execute(tx.conn())
                .await?;
        }
        _ => {}
    }
    Ok(())
}

/// `GET /v1/views/fairness` parameters.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct FairnessQuery {
    /// Alerts whose window ended in this range.
    #[param(value_type = Option<String>, format = DateTime)]
    pub from: Option<Timestamp>,
    /// Before this instant (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    pub to: Option<Timestamp>,
    /// Only this attribute set (`gender`, `age_band+gender`).
    pub attributes: Option<String>,
    /// Only this outcome.
    pub outcome: Option<String>,
    /// Alerts per page.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
    /// Alerts page offset.
    #[serde(default, deserialize_with = "crate::views::bounded")]
    #[param(minimum = 0, maximum = 9007199254740991.0)]
    pub offset: Option<i64>,
    /// Read-your-writes (handled by the API).
    #[serde(default, deserialize_with = "crate::views::bounded")]
    #[param(minimum = 0, maximum = 9007199254740991.0)]
    pub min_position: Option<u64>,
}

/// The latest report per attribute set and outcome, and the alerts, newest first.
pub async fn query(db: &Db, q: &FairnessQuery) -> Result<Value, ProjectionError> {
    let (from, to) = range(q.from, q.to)?;
    let (limit, offset) = page(q.limit, q.offset)?;
    let attributes = q.attributes.as_deref().unwrap_or("");
    let outcome = q.outcome.as_deref().unwrap_or("");
    let reports = sqlx::query(
        "SELECT * FROM view_fairness_latest WHERE ($1 = '' OR attributes = $1) AND ($2 = '' OR outcome = $2) \
         ORDER BY attributes, outcome",
    )
    .bind(attributes)
    .bind(outcome)
    .fetch_all(db.pool())
    .await?;
    let alerts = sqlx::query(
        "SELECT * FROM view_fairness_alerts WHERE ($1 = '' OR attributes = $1) AND ($2 = '' OR outcome = $2) \
         AND window_end >= $3 AND window_end < $4 ORDER BY window_end DESC, position DESC LIMIT $5 OFFSET $6",
    )
    .bind(attributes)
    .bind(outcome)
    .bind(from)
    .bind(to)
    .bind(limit)
    .bind(offset)
    .fetch_all(db.pool())
    .await?;
    Ok(json!({
        "reports": reports.iter().map(|r| with_json(row_json(r), &["groups", "metrics", "excluded_groups", "intervals"])).collect::<Vec<_>>(),
        "alerts": alerts.iter().map(|r| with_json(row_json(r), &["groups"])).collect::<Vec<_>>(),
    }))
}

/// Parses the JSON text columns `keys` of a row back into JSON, and turns the window
/// bounds into timestamps.
pub(crate) fn with_json(mut row: serde_json::Map<String, Value>, keys: &[&str]) -> Value {
    for key in keys {
        if let Some(Value::String(s)) = row.get(*key) {
            let parsed = serde_json::from_str(s).unwrap_or(Value::Null);
            row.insert((*key).to_owned(), parsed);
        }
    }
    Value::Object(super::with_times(row, &["window_start", "window_end"]))
}
