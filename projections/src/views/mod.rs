//! The views: each module owns its tables, its fold and the queries the API serves.
//!
//! | view | tables | from |
//! |---|---|---|
//! | `timeline` | `view_timeline`, `view_conversations`, `view_timeline_reviews` | every event of a conversation |
//! | `sentiment` | `view_sentiment`, `view_sentiment_models` | `SentimentScored` |
//! | `responses` | `view_response_metrics` | drafts, approvals, reviews |
//! | `fairness` | `view_fairness_latest`, `view_fairness_alerts` | fairness reports and alerts |
//! | `health` | `view_event_rate`, `view_dead_letters`, `view_producers` | every event |
//! | `anomalies` | `view_anomaly_buckets`, `view_anomalies` | `SentimentScored` → `AnomalyDetected` |
//! | `agreement` | `view_review_items`, `view_review_opinions` | review requests and decisions |
//!
//! Time buckets are UTC and by the interaction's own time (`sent_at`), so a replay of old
//! traffic lands where it happened; pipeline health is by the store's time.

pub mod agreement;
pub mod anomalies;
pub mod fairness;
pub mod health;
pub mod responses;
pub mod sentiment;
pub mod timeline;

use std::sync::Arc;

use insights_schemas::{SentimentScored, Timestamp};

use crate::{Projection, ProjectionError};

/// Microseconds in a minute, an hour, a day.
pub const MINUTE: i64 = 60_000_000;
/// Microseconds in an hour.
pub const HOUR: i64 = 60 * MINUTE;
/// Microseconds in a day.
pub const DAY: i64 = 24 * HOUR;

/// The start of the bucket of `width` microseconds that holds `t`.
pub fn bucket(t: i64, width: i64) -> i64 {
    t.div_euclid(width) * width
}

/// Every view, in the order the API lists them.
pub fn all(anomaly: anomalies::AnomalyConfig) -> Vec<Arc<dyn Projection>> {
    vec![
        Arc::new(timeline::Timeline),
        Arc::new(sentiment::Sentiment),
        Arc::new(responses::Responses),
        Arc::new(fairness::Fairness),
        Arc::new(health::Health),
        Arc::new(anomalies::Anomalies::new(anomaly)),
        Arc::new(agreement::Agreement),
    ]
}

/// The names of every view.
pub const NAMES: &[&str] = &[
    "timeline",
    "sentiment",
    "responses",
    "fairness",
    "health",
    "anomalies",
    "agreement",
];

/// One view by name, or an error naming the views there are.
pub fn by_name(
    name: &str,
    anomaly: anomalies::AnomalyConfig,
) -> Result<Arc<dyn Projection>, ProjectionError> {
    all(anomaly)
        .into_iter()
        .find(|v| v.name() == name)
        .ok_or_else(|| {
            ProjectionError::Config(format!(
                "no view named {name:?} (views: {})",
                NAMES.join(", ")
            ))
        })
}

/// A time range in query parameters, RFC 3339 `from` (inclusive) and `to` (exclusive), as
/// microseconds with open ends as the extremes; an empty or inverted range selects nothing
/// (`to` is moved up to `from`), as every parameter is valid on its own.
pub fn range(
    from: Option<Timestamp>,
    to: Option<Timestamp>,
) -> Result<(i64, i64), ProjectionError> {
    let from = from.map_or(i64::MIN, Timestamp::micros);
    let to = to.map_or(i64::MAX, Timestamp::micros);
    Ok((from, to.max(from)))
}

/// An instant as the API shows it: RFC 3339 in UTC.
pub fn time(micros: i64) -> serde_json::Value {
    serde_json::Value::String(Timestamp(micros).to_string())
}

/// Turns the microsecond columns `keys` of a row into RFC 3339 instants.
pub fn with_times(
    mut row: serde_json::Map<String, serde_json::Value>,
    keys: &[&str],
) -> serde_json::Map<String, serde_json::Value> {
    for key in keys {
        if let Some(t) = row.get(*key).and_then(serde_json::Value::as_i64) {
            row.insert((*key).to_owned(), time(t));
        }
    }
    row
}

/// The largest integer a query parameter takes (2^53 − 1: every JSON client holds it
/// exactly); the OpenAPI document states it as each parameter's maximum.
pub const MAX_QUERY_INTEGER: u64 = (1 << 53) - 1;

/// Deserializes an optional non-negative integer parameter, at most [`MAX_QUERY_INTEGER`]
/// (`#[serde(default, deserialize_with = "bounded")]`), so that what the document
/// declares out of range is refused as it says.
pub fn bounded<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de> + TryInto<i128> + Copy,
{
    use serde::Deserialize as _;
    use serde::de::Error;
    let value = Option::<T>::deserialize(d)?;
    if let Some(v) = value {
        let wide: i128 = v.try_into().map_err(|_| D::Error::custom("out of range"))?;
        if !(0..=i128::from(MAX_QUERY_INTEGER)).contains(&wide) {
            return Err(D::Error::custom(format!(
                "{wide} is outside 0..={MAX_QUERY_INTEGER}"
            )));
        }
    }
    Ok(value)
}

/// A page of a list: `limit` (1..=1000, default 100) and `offset`.
pub fn page(limit: Option<i64>, offset: Option<i64>) -> Result<(i64, i64), ProjectionError> {
    let limit = limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ProjectionError::BadQuery(
            "limit must be within 1..=1000".into(),
        ));
    }
    let offset = offset.unwrap_or(0);
    if offset < 0 {
        return Err(ProjectionError::BadQuery(
            "offset must not be negative".into(),
        ));
    }
    Ok((limit, offset))
}

/// A sentiment event's score on one axis: P(positive) − P(negative), in [−1, 1].
pub fn polarity(s: &SentimentScored) -> f64 {
    s.scores.get("positive").copied().unwrap_or(0.0)
        - s.scores.get("negative").copied().unwrap_or(0.0)
}

/// `x`, or `"(none)"` for a missing dimension (a key column cannot be NULL).
pub fn dim(x: Option<&str>) -> &str {
    match x {
        Some(s) if !s.is_empty() => s,
        _ => "(none)",
    }
}
