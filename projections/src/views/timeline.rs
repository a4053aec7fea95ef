//! The conversation timeline: every event of a conversation in log order, each with a
//! short PII-free summary, and one row per conversation (channel, product, first and last
//! message, messages, last sentiment, open reviews).

use std::collections::HashMap;

use async_trait::async_trait;
use insights_schemas::Timestamp;
use insights_schemas::{Envelope, Event, ReviewClaimed, ReviewEscalated, ReviewReleased};
use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{dim, page, polarity, range, time, with_times};
use crate::db::{Db, row_json, to_i64};
use crate::fold::{AnyQuery, Columns, fold, insert_new};
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
    "ReviewReleased",
    "ReviewEscalated",
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
        Event::ReviewReleased(r) => json!({
            "review_id": r.review_id, "reviewer": r.reviewer, "reason": r.reason,
            "released_by": r.released_by,
        }),
        Event::ReviewEscalated(x) => json!({
            "review_id": x.review_id, "from_priority": x.from_priority,
            "to_priority": x.to_priority, "missed_deadline": time(x.missed_deadline.micros()),
            "sla_deadline": time(x.sla_deadline.micros()), "level": x.level,
        }),
        Event::ReviewDecided(d) => json!({
            "interaction_id": d.context.interaction_id, "review_id": d.review_id,
            "reviewer": d.reviewer, "decision": d.decision, "reason": d.reason,
            "role": d.role, "settles": d.settles,
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

    async fn apply(
        &self,
        tx: &mut ViewTx<'_>,
        page: &[Recorded<'_>],
    ) -> Result<(), ProjectionError> {
        let reviews_table = tx.table("view_timeline_reviews");
        // Reviews requested in this page so far (the earlier ones are in the table).
        let mut requested: HashMap<String, String> = HashMap::new();
        let mut reviews = Vec::new();
        let mut timeline = Vec::with_capacity(page.len());
        let mut conversations = Vec::with_capacity(page.len());
        for r in page {
            let e = r.envelope;
            let conversation = match (&e.event, e.event.context()) {
                (_, Some(c)) => c.conversation_id.clone(),
                (Event::ReviewClaimed(ReviewClaimed { review_id, .. }), None)
                | (Event::ReviewReleased(ReviewReleased { review_id, .. }), None)
                | (Event::ReviewEscalated(ReviewEscalated { review_id, .. }), None) => {
                    let review = review_id.to_string();
                    let known =
                        match requested.get(&review) {
                            Some(conversation) => Some(conversation.clone()),
                            None => sqlx::query_scalar::<_, String>(&format!(
                                "SELECT conversation_id FROM {reviews_table} WHERE review_id = $1"
                            ))
                            .bind(review)
                            .fetch_optional(tx.conn())
                            .await?,
                        };
                    match known {
                        Some(conversation) => conversation,
                        None => continue,
                    }
                }
                _ => continue,
            };
            if matches!(e.event, Event::ReviewRequested(_)) {
                let review = e.event_id.to_string();
                requested
                    .entry(review.clone())
                    .or_insert_with(|| conversation.clone());
                reviews.push((review, conversation.clone()));
            }
            timeline.push(TimelineRow {
                conversation_id: conversation.clone(),
                position: to_i64(r.position),
                event_id: e.event_id.to_string(),
                event_type: e.event_type().to_owned(),
                occurred_at: e.occurred_at.micros(),
                recorded_at: r.recorded_at,
                producer: e.producer.clone(),
                producer_version: e.producer_version.clone(),
                summary: summary(e).to_string(),
            });
            let Some(c) = e.event.context() else {
                continue;
            };
            let sentiment = match &e.event {
                Event::SentimentScored(s) => Some(serde_json::to_value(s.label).map_or_else(
                    |_| String::new(),
                    |v| v.as_str().unwrap_or_default().to_owned(),
                )),
                _ => None,
            };
            let open = match &e.event {
                Event::ReviewRequested(_) => 1,
                // Only the decision that settles an item closes it (a second opinion's
                // first half does not).
                Event::ReviewDecided(d) if d.settles => -1,
                _ => 0,
            };
            conversations.push((
                (conversation,),
                ConversationChange {
                    tenant_id: c.tenant_id.clone(),
                    channel: c.channel.clone(),
                    product: dim(c.product.as_deref()).to_owned(),
                    language: dim(c.language.as_deref()).to_owned(),
                    at: c.sent_at.micros(),
                    message: i64::from(matches!(e.event, Event::InteractionScrubbed(_))),
                    sentiment,
                    open,
                },
            ));
        }
        insert_new(
            tx.conn(),
            &reviews_table,
            &["review_id", "conversation_id"],
            &["review_id"],
            &reviews,
            |(review, _)| (review.clone(),),
        )
        .await?;
        let table = tx.table("view_timeline");
        insert_new(
            tx.conn(),
            &table,
            TimelineRow::COLUMNS,
            &["conversation_id", "position"],
            &timeline,
            |t| (t.conversation_id.clone(), t.position),
        )
        .await?;
        let table = tx.table("view_conversations");
        fold(
            tx.conn(),
            &table,
            &["conversation_id"],
            Conversation::COLUMNS,
            &conversations,
            |row: &mut Option<Conversation>, c| match row {
                Some(t) => {
                    t.first_at = t.first_at.min(c.at);
                    t.last_at = t.last_at.max(c.at);
                    t.messages += c.message;
                    t.events += 1;
                    if c.sentiment.is_some() {
                        t.last_sentiment.clone_from(&c.sentiment);
                    }
                    t.open_reviews += c.open;
                }
                None => {
                    *row = Some(Conversation {
                        tenant_id: c.tenant_id.clone(),
                        channel: c.channel.clone(),
                        product: c.product.clone(),
                        language: c.language.clone(),
                        first_at: c.at,
                        last_at: c.at,
                        messages: c.message,
                        events: 1,
                        last_sentiment: c.sentiment.clone(),
                        open_reviews: c.open,
                    });
                }
            },
        )
        .await
    }
}

/// A row of `view_timeline`.
#[derive(Debug)]
struct TimelineRow {
    conversation_id: String,
    position: i64,
    event_id: String,
    event_type: String,
    occurred_at: i64,
    recorded_at: i64,
    producer: String,
    producer_version: String,
    summary: String,
}

impl TimelineRow {
    const COLUMNS: &'static [&'static str] = &[
        "conversation_id",
        "position",
        "event_id",
        "event_type",
        "occurred_at",
        "recorded_at",
        "producer",
        "producer_version",
        "summary",
    ];
}

impl Columns for TimelineRow {
    fn bind<'q>(&self, q: AnyQuery<'q>) -> AnyQuery<'q> {
        q.bind(self.conversation_id.clone())
            .bind(self.position)
            .bind(self.event_id.clone())
            .bind(self.event_type.clone())
            .bind(self.occurred_at)
            .bind(self.recorded_at)
            .bind(self.producer.clone())
            .bind(self.producer_version.clone())
            .bind(self.summary.clone())
    }

    fn read(row: &AnyRow, from: usize) -> Result<Self, sqlx::Error> {
        Ok(TimelineRow {
            conversation_id: row.try_get(from)?,
            position: row.try_get(from + 1)?,
            event_id: row.try_get(from + 2)?,
            event_type: row.try_get(from + 3)?,
            occurred_at: row.try_get(from + 4)?,
            recorded_at: row.try_get(from + 5)?,
            producer: row.try_get(from + 6)?,
            producer_version: row.try_get(from + 7)?,
            summary: row.try_get(from + 8)?,
        })
    }
}

/// What one event changes in its conversation's row.
#[derive(Debug)]
struct ConversationChange {
    tenant_id: String,
    channel: String,
    product: String,
    language: String,
    at: i64,
    message: i64,
    sentiment: Option<String>,
    open: i64,
}

/// A row of `view_conversations` (less its key).
#[derive(Debug)]
struct Conversation {
    tenant_id: String,
    channel: String,
    product: String,
    language: String,
    first_at: i64,
    last_at: i64,
    messages: i64,
    events: i64,
    last_sentiment: Option<String>,
    open_reviews: i64,
}

impl Conversation {
    const COLUMNS: &'static [&'static str] = &[
        "tenant_id",
        "channel",
        "product",
        "language",
        "first_at",
        "last_at",
        "messages",
        "events",
        "last_sentiment",
        "open_reviews",
    ];
}

impl Columns for Conversation {
    fn bind<'q>(&self, q: AnyQuery<'q>) -> AnyQuery<'q> {
        q.bind(self.tenant_id.clone())
            .bind(self.channel.clone())
            .bind(self.product.clone())
            .bind(self.language.clone())
            .bind(self.first_at)
            .bind(self.last_at)
            .bind(self.messages)
            .bind(self.events)
            .bind(self.last_sentiment.clone())
            .bind(self.open_reviews)
    }

    fn read(row: &AnyRow, from: usize) -> Result<Self, sqlx::Error> {
        Ok(Conversation {
            tenant_id: row.try_get(from)?,
            channel: row.try_get(from + 1)?,
            product: row.try_get(from + 2)?,
            language: row.try_get(from + 3)?,
            first_at: row.try_get(from + 4)?,
            last_at: row.try_get(from + 5)?,
            messages: row.try_get(from + 6)?,
            events: row.try_get(from + 7)?,
            last_sentiment: row.try_get(from + 8)?,
            open_reviews: row.try_get(from + 9)?,
        })
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
