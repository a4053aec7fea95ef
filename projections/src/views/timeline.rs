//! The conversation timeline: every event of a conversation in log order, each with a
//! short PII-free summary, and one row per conversation (channel, product, first and last
//! message, messages, last sentiment, open reviews).

use async_trait::async_trait;
use insights_schemas::Timestamp;
use insights_schemas::{Envelope, Event};
use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::Row;

use super::{dim, page, polarity, range, time, with_times};
use crate::db::{Db, row_json, to_i64};
use crate::{Projection, ProjectionError, Recorded, Table, ViewTx};

/// The timeline view.
#[derive(Debug, Clone, Copy)]
pub struct Timeline;

const TABLES: &[Table] = &[
    Table {
        name: "view_timeline",
        columns: "conversation_id TEXT NOT NULL, position BIGINT NOT NULL, event_id TEXT NOT NULL, \
                  event_type TEXT NOT NULL, occurred_at BIGINT NOT NULL, recorded_at BIGINT NOT NULL, \
                  producer TEXT NOT NULL, producer_version TEXT NOT NULL, summary TEXT NOT NULL, \
                  PRIMARY KEY (conversation_id, position)",
        indexes: &[],
    },
    Table {
        name: "view_conversations",
        columns: "conversation_id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, channel TEXT NOT NULL, \
                  product TEXT NOT NULL, language TEXT NOT NULL, first_at BIGINT NOT NULL, \
                  last_at BIGINT NOT NULL, messages BIGINT NOT NULL, events BIGINT NOT NULL, \
                  last_sentiment TEXT, open_reviews BIGINT NOT NULL",
        indexes: &[("by_last", "last_at")],
    },
    Table {
        name: "view_timeline_reviews",
        columns: "review_id TEXT PRIMARY KEY, conversation_id TEXT NOT NULL",
        indexes: &[],
    },
];

const TYPES: &[&str] = &[
    "InteractionScrubbed",
    "SentimentScored",
    "ResponseDrafted",
    "ResponseApproved",
    "ReviewRequested",
    "ReviewClaimed",
    "ReviewDecided",
];

/// What the timeline keeps of an event: the facts a person reading the conversation
/// needs, never personal data (texts here are the scrubbed ones).
fn summary(e: &Envelope) -> Value {
    match &e.event {
        Event::InteractionScrubbed(s) => json!({
            "interaction_id": s.context.interaction_id, "text": s.text,
            "pii_counts": s.pii_counts,
        }),
        Event::SentimentScored(s) => json!({
            "interaction_id": s.context.interaction_id, "label": s.label,
            "confidence": s.confidence, "polarity": polarity(s), "backend": s.backend,
            "model_version": s.model_version, "fallback": s.fallback,
        }),
        Event::ResponseDrafted(d) => json!({
            "interaction_id": d.context.interaction_id, "draft_text": d.draft_text,
            "backend": d.backend, "intent": d.intent, "fell_back": d.fell_back,
            "guardrails_failed": d.guardrails.iter().filter(|g| !g.passed).map(|g| &g.name).collect::<Vec<_>>(),
        }),
        Event::ResponseApproved(a) => json!({
            "interaction_id": a.context.interaction_id, "final_text": a.final_text,
            "approved_by": a.approved_by, "automatic": a.automatic,
        }),
        Event::ReviewRequested(r) => json!({
            "interaction_id": r.context.interaction_id, "review_id": e.event_id,
            "reasons": r.reasons, "priority": r.priority, "sla_deadline": time(r.sla_deadline.micros()),
        }),
        Event::ReviewClaimed(c) => json!({"review_id": c.review_id, "reviewer": c.reviewer}),
        Event::ReviewDecided(d) => json!({
            "interaction_id": d.context.interaction_id, "review_id": d.review_id,
            "reviewer": d.reviewer, "decision": d.decision, "reason": d.reason,
        }),
        _ => Value::Null,
    }
}

#[async_trait]
impl Projection for Timeline {
    fn name(&self) -> &'static str {
        "timeline"
    }

    fn version(&self) -> i64 {
        1
    }

    fn tables(&self) -> &'static [Table] {
        TABLES
    }

    fn event_types(&self) -> Option<&'static [&'static str]> {
        Some(TYPES)
    }

    async fn apply(&self, tx: &mut ViewTx<'_>, r: Recorded<'_>) -> Result<(), ProjectionError> {
        let e = r.envelope;
        let reviews = tx.table("view_timeline_reviews");
        let conversation = match (&e.event, e.event.context()) {
            (_, Some(c)) => c.conversation_id.clone(),
            (Event::ReviewClaimed(c), None) => {
                let row = sqlx::query(&format!(
                    "SELECT conversation_id FROM {reviews} WHERE review_id = $1"
                ))
                .bind(c.review_id.to_string())
                .fetch_optional(tx.conn())
                .await?;
                match row {
                    Some(row) => row.try_get(0)?,
                    None => return Ok(()),
                }
            }
            _ => return Ok(()),
        };
        if matches!(e.event, Event::ReviewRequested(_)) {
            sqlx::query(&format!(
                "INSERT INTO {reviews} (review_id, conversation_id) VALUES ($1, $2) \
                 ON CONFLICT (review_id) DO NOTHING"
            ))
            .bind(e.event_id.to_string())
            .bind(&conversation)
            .execute(tx.conn())
            .await?;
        }
        let timeline = tx.table("view_timeline");
        sqlx::query(&format!(
            "INSERT INTO {timeline} (conversation_id, position, event_id, event_type, occurred_at, \
             recorded_at, producer, producer_version, summary) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (conversation_id, position) DO NOTHING"
        ))
        .bind(&conversation)
        .bind(to_i64(r.position))
        .bind(e.event_id.to_string())
        .bind(e.event_type())
        .bind(e.occurred_at.micros())
        .bind(r.recorded_at)
        .bind(&e.producer)
        .bind(&e.producer_version)
        .bind(summary(e).to_string())
        .execute(tx.conn())
        .await?;

        let Some(c) = e.event.context() else {
            return Ok(());
        };
        let message = i64::from(matches!(e.event, Event::InteractionScrubbed(_)));
        let sentiment = match &e.event {
            Event::SentimentScored(s) => Some(serde_json::to_value(s.label).map_or_else(
                |_| String::new(),
                |v| v.as_str().unwrap_or_default().to_owned(),
            )),
            _ => None,
        };
        let open = match &e.event {
            Event::ReviewRequested(_) => 1,
            Event::ReviewDecided(_) => -1,
            _ => 0,
        };
        let conversations = tx.table("view_conversations");
        sqlx::query(&format!(
            "INSERT INTO {conversations} AS t (conversation_id, tenant_id, channel, product, language, \
             first_at, last_at, messages, events, last_sentiment, open_reviews) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 1, $9, $10) \
             ON CONFLICT (conversation_id) DO UPDATE SET \
             first_at = CASE WHEN excluded.first_at < t.first_at THEN excluded.first_at ELSE t.first_at END, \
             last_at = CASE WHEN excluded.last_at > t.last_at THEN excluded.last_at ELSE t.last_at END, \
             messages = t.messages + excluded.messages, events = t.events + 1, \
             last_sentiment = COALESCE(excluded.last_sentiment, t.last_sentiment), \
             open_reviews = t.open_reviews + excluded.open_reviews"
        ))
        .bind(&conversation)
        .bind(&c.tenant_id)
        .bind(&c.channel)
        .bind(dim(c.product.as_deref()))
        .bind(dim(c.language.as_deref()))
        .bind(c.sent_at.micros())
        .bind(c.sent_at.micros())
        .bind(message)
        .bind(sentiment)
        .bind(open)
        .execute(tx.conn())
        .await?;
        Ok(())
    }
}

/// `GET /v1/views/conversations` parameters.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ConversationsQuery {
    /// Last message in this range.
    #[param(value_type = Option<String>, format = DateTime)]
    pub from: Option<Timestamp>,
    /// Before this instant (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    pub to: Option<Timestamp>,
    /// Only this channel.
    pub channel: Option<String>,
    /// Only this product.
    pub product: Option<String>,
    /// Only conversations with undecided reviews.
    pub open_reviews: Option<bool>,
    /// Page size.
    pub limit: Option<i64>,
    /// Page offset.
    pub offset: Option<i64>,
    /// Read-your-writes (handled by the API).
    pub min_position: Option<u64>,
}

/// Conversations, most recent first.
pub async fn conversations(db: &Db, q: &ConversationsQuery) -> Result<Value, ProjectionError> {
    let (from, to) = range(q.from, q.to)?;
    let (limit, offset) = page(q.limit, q.offset)?;
    let filter = "last_at >= $1 AND last_at < $2 AND ($3 = '' OR channel = $3) \
                  AND ($4 = '' OR product = $4) AND ($5 = 0 OR open_reviews > 0)";
    let channel = q.channel.clone().unwrap_or_default();
    let product = q.product.clone().unwrap_or_default();
    let open = i64::from(q.open_reviews.unwrap_or(false));
    let total: i64 = sqlx::query_scalar(&format!(
        "SELECT COUNT(*) FROM view_conversations WHERE {filter}"
    ))
    .bind(from)
    .bind(to)
    .bind(&channel)
    .bind(&product)
    .bind(open)
    .fetch_one(db.pool())
    .await?;
    let rows = sqlx::query(&format!(
        "SELECT * FROM view_conversations WHERE {filter} \
         ORDER BY last_at DESC, conversation_id LIMIT $6 OFFSET $7"
    ))
    .bind(from)
    .bind(to)
    .bind(&channel)
    .bind(&product)
    .bind(open)
    .bind(limit)
    .bind(offset)
    .fetch_all(db.pool())
    .await?;
    Ok(json!({
        "total": total,
        "items": rows.iter().map(|r| with_times(row_json(r), &["first_at", "last_at"])).collect::<Vec<_>>(),
    }))
}

/// One conversation and its events in log order (`None` if the view has never seen it).
pub async fn conversation(
    db: &Db,
    conversation_id: &str,
    limit: Option<i64>,
    after_position: Option<u64>,
) -> Result<Option<Value>, ProjectionError> {
    let (limit, _) = page(limit, None)?;
    let Some(head) = sqlx::query("SELECT * FROM view_conversations WHERE conversation_id = $1")
        .bind(conversation_id)
        .fetch_optional(db.pool())
        .await?
    else {
        return Ok(None);
    };
    let rows = sqlx::query(
        "SELECT position, event_id, event_type, occurred_at, recorded_at, producer, producer_version, summary \
         FROM view_timeline WHERE conversation_id = $1 AND position > $2 ORDER BY position LIMIT $3",
    )
    .bind(conversation_id)
    .bind(to_i64(after_position.unwrap_or(0)))
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    let events: Vec<Value> = rows
        .iter()
        .map(|row| {
            let mut m = with_times(row_json(row), &["occurred_at", "recorded_at"]);
            if let Some(Value::String(s)) = m.remove("summary") {
                m.insert(
                    "summary".into(),
                    serde_json::from_str(&s).unwrap_or(Value::Null),
                );
            }
            Value::Object(m)
        })
        .collect();
    Ok(Some(json!({
        "conversation": with_times(row_json(&head), &["first_at", "last_at"]),
        "events": events,
    })))
}
