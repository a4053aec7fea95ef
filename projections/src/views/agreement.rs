//! Agreement: how far reviewers agree with each other and with the model, as Cohen's κ
//! over the log, overall, per reviewer and per day.
//!
//! - **Reviewer–reviewer**: every item that took two opinions (`ReviewDecided` with roles
//!   `first` and `second`) is a pair of ratings over approve / edit / reject. Per reviewer:
//!   the pairs the reviewer is in; per day: by the second opinion's day (UTC, by the
//!   decision's time).
//! - **Reviewer–model**: every opinion is a pair (the reviewer's reading of the message's
//!   sentiment, the model's label from the item's `ReviewRequested`). The reading is the
//!   `corrected_sentiment` where the reviewer gave one, else the model's label: a reviewer
//!   who leaves the label alone accepts it, as the review form says. Items whose request
//!   predates the label (v1) are left out.
//!
//! κ is `(p_o − p_e) / (1 − p_e)` over the categories either side used (what scikit-learn's
//! `cohen_kappa_score` computes); it is `null` where it is undefined (no pairs, or both sides
//! always gave one and the same category, p_e = 1).

use std::collections::BTreeMap;

use async_trait::async_trait;
use insights_schemas::{Event, Timestamp};
use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::Row;

use super::{DAY, bucket, range, time};
use crate::db::{Db, to_i64};
use crate::fold::insert_new;
use crate::{Projection, ProjectionError, Recorded, Table, ViewTx};

/// The agreement view.
#[derive(Debug, Clone, Copy)]
pub struct Agreement;

const TABLES: &[Table] = &[
    Table {
        name: "view_review_items",
        columns: "review_id TEXT PRIMARY KEY, model_sentiment TEXT NOT NULL, \
                  opinions_required BIGINT NOT NULL",
        indexes: &[],
    },
    Table {
        name: "view_review_opinions",
        columns: "review_id TEXT NOT NULL, reviewer TEXT NOT NULL, role TEXT NOT NULL, \
                  day BIGINT NOT NULL, decision TEXT NOT NULL, corrected_sentiment TEXT, \
                  position BIGINT NOT NULL, PRIMARY KEY (review_id, reviewer)",
        indexes: &[("by_day", "day")],
    },
];

#[async_trait]
impl Projection for Agreement {
    fn name(&self) -> &'static str {
        "agreement"
    }

    fn version(&self) -> i64 {
        1
    }

    fn tables(&self) -> &'static [Table] {
        TABLES
    }

    fn event_types(&self) -> Option<&'static [&'static str]> {
        Some(&["ReviewRequested", "ReviewDecided"])
    }

    async fn apply(
        &self,
        tx: &mut ViewTx<'_>,
        page: &[Recorded<'_>],
    ) -> Result<(), ProjectionError> {
        // Every review request of the page in one statement (most drafts ask for one),
        // the decisions in another.
        let mut items = Vec::new();
        let mut opinions = Vec::new();
        for r in page {
            let e = r.envelope;
            match &e.event {
                Event::ReviewRequested(q) => items.push((
                    e.event_id.to_string(),
                    q.sentiment_label.clone(),
                    i64::from(q.opinions_required),
                )),
                Event::ReviewDecided(d) => {
                    let decision = serde_json::to_value(d.decision)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default();
                    opinions.push((
                        d.review_id.to_string(),
                        d.reviewer.clone(),
                        d.role.clone(),
                        bucket(e.occurred_at.micros(), DAY),
                        decision,
                        d.corrected_sentiment.clone(),
                        to_i64(r.position),
                    ));
                }
                _ => {}
            }
        }
        let table = tx.table("view_review_items");
        insert_new(
            tx.conn(),
            &table,
            &["review_id", "model_sentiment", "opinions_required"],
            &["review_id"],
            &items,
            |(review, ..)| (review.clone(),),
        )
        .await?;
        let table = tx.table("view_review_opinions");
        insert_new(
            tx.conn(),
            &table,
            &[
                "review_id",
                "reviewer",
                "role",
                "day",
                "decision",
                "corrected_sentiment",
                "position",
            ],
            &["review_id", "reviewer"],
            &opinions,
            |(review, reviewer, ..)| (review.clone(), reviewer.clone()),
        )
        .await?;
        Ok(())
    }
}

/// Cohen's κ of two raters over `pairs` of their ratings: `None` with no pairs or where
/// chance agreement is certain (p_e = 1).
pub fn cohen_kappa<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Option<f64> {
    let mut a: BTreeMap<&str, f64> = BTreeMap::new();
    let mut b: BTreeMap<&str, f64> = BTreeMap::new();
    let (mut n, mut agree) = (0.0, 0.0);
    for (x, y) in pairs {
        *a.entry(x).or_default() += 1.0;
        *b.entry(y).or_default() += 1.0;
        n += 1.0;
        if x == y {
            agree += 1.0;
        }
    }
    if n == 0.0 {
        return None;
    }
    let observed = agree / n;
    let chance: f64 = a
        .iter()
        .map(|(k, na)| na / n * b.get(k).copied().unwrap_or(0.0) / n)
        .sum();
    (chance < 1.0).then(|| (observed - chance) / (1.0 - chance))
}

/// One opinion of a pair: (reviewer, day, decision).
type Opinion = (String, i64, String);

/// Agreement over a set of pairs: how many, the share that agree, κ.
fn summary(pairs: &[(&str, &str)]) -> Value {
    let agree = pairs.iter().filter(|(x, y)| x == y).count();
    json!({
        "n": pairs.len(),
        "agreement": (!pairs.is_empty()).then(|| agree as f64 / pairs.len() as f64),
        "kappa": cohen_kappa(pairs.iter().copied()),
    })
}

/// Pairs grouped by a key, as a list of summaries with the key's fields.
fn grouped<K: Ord>(
    pairs: &[(K, &str, &str)],
    fields: impl Fn(&K) -> serde_json::Map<String, Value>,
) -> Vec<Value> {
    let mut by: BTreeMap<&K, Vec<(&str, &str)>> = BTreeMap::new();
    for (k, x, y) in pairs {
        by.entry(k).or_default().push((*x, *y));
    }
    by.into_iter()
        .map(|(k, p)| {
            let mut row = fields(k);
            if let Value::Object(s) = summary(&p) {
                row.extend(s);
            }
            Value::Object(row)
        })
        .collect()
}

/// `GET /v1/views/agreement` parameters.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AgreementQuery {
    /// Decisions on days starting in this range (a pair by its second opinion's day).
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

/// κ between reviewers and between reviewers and the model, overall, per reviewer, per
/// day (and, against the model, per reviewer and day).
pub async fn query(db: &Db, q: &AgreementQuery) -> Result<Value, ProjectionError> {
    let (from, to) = range(q.from, q.to)?;
    let day_of = |d: &i64| serde_json::Map::from_iter([("day".to_owned(), time(*d))]);
    let reviewer_of =
        |r: &String| serde_json::Map::from_iter([("reviewer".to_owned(), Value::from(r.as_str()))]);

    // Reviewer–reviewer: the two opinions of each item whose second falls in the range.
    let rows = sqlx::query(
        "SELECT review_id, reviewer, role, day, decision FROM view_review_opinions \
         WHERE role IN ('first', 'second') AND review_id IN (SELECT review_id FROM \
         view_review_opinions WHERE role = 'second' AND day >= $1 AND day < $2) \
         ORDER BY review_id, role",
    )
    .bind(from)
    .bind(to)
    .fetch_all(db.pool())
    .await?;
    let mut items: BTreeMap<String, [Option<Opinion>; 2]> = BTreeMap::new();
    for row in &rows {
        let slot = usize::from(row.try_get::<String, _>(2)? == "second");
        items.entry(row.try_get(0)?).or_default()[slot] =
            Some((row.try_get(1)?, row.try_get(3)?, row.try_get(4)?));
    }
    // (first reviewer, second reviewer, the second's day, first decision, second decision)
    let pairs: Vec<(&str, &str, i64, &str, &str)> = items
        .values()
        .filter_map(|[a, b]| {
            let (a, b) = (a.as_ref()?, b.as_ref()?);
            Some((a.0.as_str(), b.0.as_str(), b.1, a.2.as_str(), b.2.as_str()))
        })
        .collect();
    let all: Vec<(&str, &str)> = pairs.iter().map(|p| (p.3, p.4)).collect();
    let by_reviewer: Vec<(String, &str, &str)> = pairs
        .iter()
        .flat_map(|p| [(p.0.to_owned(), p.3, p.4), (p.1.to_owned(), p.3, p.4)])
        .collect();
    let by_day: Vec<(i64, &str, &str)> = pairs.iter().map(|p| (p.2, p.3, p.4)).collect();
    let mut reviewers = summary(&all);
    reviewers["disagreements"] = pairs.iter().filter(|p| p.3 != p.4).count().into();
    reviewers["by_reviewer"] = grouped(&by_reviewer, reviewer_of).into();
    reviewers["by_day"] = grouped(&by_day, day_of).into();

    // Reviewer–model: every opinion in the range on an item with the model's label.
    let rows = sqlx::query(
        "SELECT o.reviewer, o.day, o.corrected_sentiment, i.model_sentiment \
         FROM view_review_opinions o JOIN view_review_items i ON i.review_id = o.review_id \
         WHERE o.day >= $1 AND o.day < $2 AND i.model_sentiment <> '' \
         ORDER BY o.position",
    )
    .bind(from)
    .bind(to)
    .fetch_all(db.pool())
    .await?;
    let mut readings: Vec<(String, i64, String, String)> = Vec::with_capacity(rows.len());
    for row in &rows {
        let model: String = row.try_get(3)?;
        let corrected: Option<String> = row.try_get(2)?;
        readings.push((
            row.try_get(0)?,
            row.try_get(1)?,
            corrected.unwrap_or_else(|| model.clone()),
            model,
        ));
    }
    let all: Vec<(&str, &str)> = readings
        .iter()
        .map(|r| (r.2.as_str(), r.3.as_str()))
        .collect();
    let by_reviewer: Vec<(String, &str, &str)> = readings
        .iter()
        .map(|r| (r.0.clone(), r.2.as_str(), r.3.as_str()))
        .collect();
    let by_day: Vec<(i64, &str, &str)> = readings
        .iter()
        .map(|r| (r.1, r.2.as_str(), r.3.as_str()))
        .collect();
    let by_both: Vec<((String, i64), &str, &str)> = readings
        .iter()
        .map(|r| ((r.0.clone(), r.1), r.2.as_str(), r.3.as_str()))
        .collect();
    let mut model = summary(&all);
    model["by_reviewer"] = grouped(&by_reviewer, reviewer_of).into();
    model["by_day"] = grouped(&by_day, day_of).into();
    model["by_reviewer_day"] = grouped(&by_both, |(r, d)| {
        let mut m = reviewer_of(r);
        m.extend(day_of(d));
        m
    })
    .into();
    Ok(json!({"reviewers": reviewers, "model": model}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kappa_of_known_tables() {
        // Perfect agreement over two categories: 1; none beyond chance: 0.
        assert_eq!(cohen_kappa([("a", "a"), ("b", "b")]), Some(1.0));
        assert_eq!(
            cohen_kappa([("a", "a"), ("a", "b"), ("b", "a"), ("b", "b")]),
            Some(0.0)
        );
        // Two categories, 35 of 50 agree; one rater says yes half the time, the other 60 %.
        let mut pairs = vec![("yes", "yes"); 20];
        pairs.extend(vec![("yes", "no"); 5]);
        pairs.extend(vec![("no", "yes"); 10]);
        pairs.extend(vec![("no", "no"); 15]);
        let k = cohen_kappa(pairs.iter().copied()).expect("defined");
        // p_o = 0.7, p_e = 0.5·0.6 + 0.5·0.4 = 0.5.
        assert!((k - 0.4).abs() < 1e-12, "{k}");
        // Undefined: nothing, or one category throughout.
        assert_eq!(cohen_kappa([]), None);
        assert_eq!(cohen_kappa([("a", "a"), ("a", "a")]), None);
    }
}
