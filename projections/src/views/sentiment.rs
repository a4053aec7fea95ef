//! Sentiment analytics: counts by label and mean polarity (P(positive) − P(negative)) per
//! hour and per day × channel × product × language × segment × model version.
//!
//! The segment is the customer's declared `segment` attribute, or their `plan` when they
//! have none (the sample data's plans: basic, plus, premium). The model version is a key,
//! so that a reprocessing with a new model (`insights replay --reprocess sentiment`) adds
//! its own rows next to the old ones instead of counting interactions twice; queries read
//! one version (the latest by default) or compare them. An interaction counts once per
//! model version, however often that version scored it.

use async_trait::async_trait;
use insights_schemas::Timestamp;
use insights_schemas::{Event, SentimentLabel, SentimentScored};
use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::Row;

use super::{DAY, HOUR, bucket, dim, polarity, range};
use crate::db::{Db, to_i64};
use crate::fold::{fold, insert_new};
use crate::{Projection, ProjectionError, Recorded, Table, ViewTx};

/// The sentiment view.
#[derive(Debug, Clone, Copy)]
pub struct Sentiment;

const TABLES: &[Table] = &[
    Table {
        name: "view_sentiment",
        columns: "granularity TEXT NOT NULL, bucket_start BIGINT NOT NULL, channel TEXT NOT NULL, \
                  product TEXT NOT NULL, language TEXT NOT NULL, segment TEXT NOT NULL, \
                  model_version TEXT NOT NULL, n BIGINT NOT NULL, negative BIGINT NOT NULL, \
                  neutral BIGINT NOT NULL, positive BIGINT NOT NULL, polarity_sum DOUBLE PRECISION NOT NULL, \
                  PRIMARY KEY (granularity, bucket_start, channel, product, language, segment, model_version)",
        indexes: &[("by_version", "model_version, granularity, bucket_start")],
    },
    Table {
        name: "view_sentiment_seen",
        columns: "interaction_id TEXT NOT NULL, model_version TEXT NOT NULL, \
                  PRIMARY KEY (interaction_id, model_version)",
        indexes: &[],
    },
    Table {
        name: "view_sentiment_models",
        columns: "model_version TEXT PRIMARY KEY, n BIGINT NOT NULL, first_position BIGINT NOT NULL, \
                  last_position BIGINT NOT NULL",
        indexes: &[],
    },
];

#[async_trait]
impl Projection for Sentiment {
    fn name(&self) -> &'static str {
        "sentiment"
    }

    fn version(&self) -> i64 {
        2
    }

    fn tables(&self) -> &'static [Table] {
        TABLES
    }

    fn event_types(&self) -> Option<&'static [&'static str]> {
        Some(&["SentimentScored"])
    }

    async fn apply(
        &self,
        tx: &mut ViewTx<'_>,
        page: &[Recorded<'_>],
    ) -> Result<(), ProjectionError> {
        let scored: Vec<(&Recorded<'_>, &SentimentScored, String)> = page
            .iter()
            .filter_map(|r| match &r.envelope.event {
                Event::SentimentScored(s) => {
                    Some((r, s, model_version(&s.model_name, &s.model_version)))
                }
                _ => None,
            })
            .collect();
        // Each interaction counts once per model version, however often it was scored (a
        // reprocessing run with the version that scored it live).
        let seen: Vec<(String, String)> = scored
            .iter()
            .map(|(_, s, version)| (s.context.interaction_id.clone(), version.clone()))
            .collect();
        let table = tx.table("view_sentiment_seen");
        let fresh = insert_new(
            tx.conn(),
            &table,
            &["interaction_id", "model_version"],
            &["interaction_id", "model_version"],
            &seen,
            Clone::clone,
        )
        .await?;
        let mut buckets = Vec::with_capacity(fresh.len() * 2);
        let mut models = Vec::with_capacity(fresh.len());
        for i in fresh {
            let (r, s, version) = &scored[i];
            let c = &s.context;
            let segment = c
                .demographics
                .get("segment")
                .or_else(|| c.demographics.get("plan"))
                .map(String::as_str);
            let counts = match s.label {
                SentimentLabel::Negative => (1_i64, 0_i64, 0_i64),
                SentimentLabel::Neutral => (0, 1, 0),
                SentimentLabel::Positive => (0, 0, 1),
            };
            for (granularity, width) in [("hour", HOUR), ("day", DAY)] {
                buckets.push((
                    (
                        granularity.to_owned(),
                        bucket(c.sent_at.micros(), width),
                        c.channel.clone(),
                        dim(c.product.as_deref()).to_owned(),
                        dim(c.language.as_deref()).to_owned(),
                        dim(segment).to_owned(),
                        version.clone(),
                    ),
                    (counts, polarity(s)),
                ));
            }
            models.push(((version.clone(),), to_i64(r.position)));
        }
        let table = tx.table("view_sentiment");
        fold(
            tx.conn(),
            &table,
            &[
                "granularity",
                "bucket_start",
                "channel",
                "product",
                "language",
                "segment",
                "model_version",
            ],
            &["n", "negative", "neutral", "positive", "polarity_sum"],
            &buckets,
            |row: &mut Option<(i64, i64, i64, i64, f64)>, &((neg, neu, pos), p)| {
                let r = row.get_or_insert((0, 0, 0, 0, 0.0));
                r.0 += 1;
                r.1 += neg;
                r.2 += neu;
                r.3 += pos;
                r.4 += p;
            },
        )
        .await?;
        let table = tx.table("view_sentiment_models");
        fold(
            tx.conn(),
            &table,
            &["model_version"],
            &["n", "first_position", "last_position"],
            &models,
            |row: &mut Option<(i64, i64, i64)>, &position| {
                let r = row.get_or_insert((0, position, position));
                r.0 += 1;
                r.2 = position;
            },
        )
        .await
    }
}

/// The version key of a model: `name@version`.
fn model_version(name: &str, version: &str) -> String {
    format!("{name}@{version}")
}

/// What a series is grouped by, besides time.
const GROUPS: &[&str] = &["channel", "product", "language", "segment"];

/// `GET /v1/views/sentiment` parameters.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SentimentQuery {
    /// Buckets starting in this range.
    #[param(value_type = Option<String>, format = DateTime)]
    pub from: Option<Timestamp>,
    /// Before this instant (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    pub to: Option<Timestamp>,
    /// `hour` or `day` (default).
    #[param(pattern = "^(hour|day)$")]
    pub granularity: Option<String>,
    /// One series per value of `channel`, `product`, `language` or `segment`.
    #[param(pattern = "^(|channel|product|language|segment)$")]
    pub group_by: Option<String>,
    /// Filters.
    pub channel: Option<String>,
    /// Filters.
    pub product: Option<String>,
    /// Filters.
    pub language: Option<String>,
    /// Filters.
    pub segment: Option<String>,
    /// `name@version` of the model; default the one that scored most recently.
    pub model_version: Option<String>,
    /// Read-your-writes (handled by the API).
    #[serde(default, deserialize_with = "crate::views::bounded")]
    #[param(minimum = 0, maximum = 9007199254740991.0)]
    pub min_position: Option<u64>,
}

/// Buckets of one model version's sentiment, optionally one series per group, plus the
/// totals over the range and the model versions there are.
pub async fn query(db: &Db, q: &SentimentQuery) -> Result<Value, ProjectionError> {
    let (from, to) = range(q.from, q.to)?;
    let granularity = q.granularity.as_deref().unwrap_or("day");
    if !matches!(granularity, "hour" | "day") {
        return Err(ProjectionError::BadQuery(
            "granularity must be hour or day".into(),
        ));
    }
    let group = match q.group_by.as_deref() {
        None | Some("") => None,
        Some(g) if GROUPS.contains(&g) => Some(g),
        Some(g) => {
            return Err(ProjectionError::BadQuery(format!(
                "group_by must be one of {}, not {g:?}",
                GROUPS.join(", ")
            )));
        }
    };
    let models = sqlx::query(
        "SELECT model_version, n, last_position FROM view_sentiment_models ORDER BY last_position DESC",
    )
    .fetch_all(db.pool())
    .await?;
    let mut versions = Vec::with_capacity(models.len());
    for m in &models {
        versions.push(
            json!({"model_version": m.try_get::<String, _>(0)?, "n": m.try_get::<i64, _>(1)?}),
        );
    }
    let version = match &q.model_version {
        Some(v) => v.clone(),
        None => match models.first() {
            Some(m) => m.try_get(0)?,
            None => String::new(),
        },
    };
    // PostgreSQL refuses a constant in GROUP BY: group by the column only when there is one.
    let group_col = group.unwrap_or("''");
    let group_by = group.map(|g| format!(", {g}")).unwrap_or_default();
    let sql = format!(
        "SELECT bucket_start, {group_col} AS grp, CAST(SUM(n) AS BIGINT), CAST(SUM(negative) AS BIGINT), \
         CAST(SUM(neutral) AS BIGINT), CAST(SUM(positive) AS BIGINT), SUM(polarity_sum) \
         FROM view_sentiment WHERE model_version = $1 AND granularity = $2 \
         AND bucket_start >= $3 AND bucket_start < $4 \
         AND ($5 = '' OR channel = $5) AND ($6 = '' OR product = $6) \
         AND ($7 = '' OR language = $7) AND ($8 = '' OR segment = $8) \
         GROUP BY bucket_start{group_by} ORDER BY grp, bucket_start"
    );
    let rows = sqlx::query(&sql)
        .bind(&version)
        .bind(granularity)
        .bind(from)
        .bind(to)
        .bind(q.channel.as_deref().unwrap_or(""))
        .bind(q.product.as_deref().unwrap_or(""))
        .bind(q.language.as_deref().unwrap_or(""))
        .bind(q.segment.as_deref().unwrap_or(""))
        .fetch_all(db.pool())
        .await?;
    let mut series: Vec<(String, Vec<Value>)> = Vec::new();
    let mut totals = [0_i64; 4];
    let mut polarity_total = 0.0;
    for row in &rows {
        let grp: String = row.try_get(1)?;
        let n: i64 = row.try_get(2)?;
        let counts = [n, row.try_get(3)?, row.try_get(4)?, row.try_get(5)?];
        let polarity_sum: f64 = row.try_get(6)?;
        for (t, c) in totals.iter_mut().zip(counts) {
            *t += c;
        }
        polarity_total += polarity_sum;
        let point = json!({
            "bucket_start": super::time(row.try_get(0)?),
            "n": n, "negative": counts[1], "neutral": counts[2], "positive": counts[3],
            "mean_polarity": mean(polarity_sum, n),
        });
        match series.last_mut() {
            Some((g, points)) if *g == grp => points.push(point),
            _ => series.push((grp, vec![point])),
        }
    }
    Ok(json!({
        "granularity": granularity,
        "group_by": group,
        "model_version": version,
        "model_versions": versions,
        "totals": {
            "n": totals[0], "negative": totals[1], "neutral": totals[2], "positive": totals[3],
            "mean_polarity": mean(polarity_total, totals[0]),
        },
        "series": series.into_iter().map(|(g, points)| json!({"group": group.map(|_| g), "points": points})).collect::<Vec<_>>(),
    }))
}

fn mean(sum: f64, n: i64) -> Option<f64> {
    (n > 0).then(|| sum / n as f64)
}
