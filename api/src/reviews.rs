//! The human-review workflow.
//!
//! A review item is the store stream `review-<id>` (the id is the `ReviewRequested`
//! event's): the request, then claims, releases, escalations and decisions. Everything is
//! appended with the stream's expected version, so two reviewers can never both decide the
//! same step of an item: the second gets `409`. The decision that settles an item appends
//! `ReviewDecided` and, for approve and edit, `ResponseApproved` (the reply that goes out,
//! and what the retrieval backend learns from) in one atomic batch, then publishes them to
//! `review.decisions`.
//!
//! **Second opinions.** An item whose request says `opinions_required: 2` (the response
//! policy's sampled fraction, and every urgent or legal item) needs two decisions by
//! different reviewers, each made without seeing the other (a reviewer's view of an item
//! hides the other's decision until it is settled). The first (`role: first`) puts the
//! item back in the queue; the second (`second`) settles it when it is the same decision
//! (approve, edit or reject; for two edits, the second's text goes out) and otherwise
//! leaves it `disputed`, for an admin's ruling (`arbiter`), which settles it.
//!
//! **Escalation.** An item not settled by its SLA deadline is escalated by the API's review
//! keeper ([`escalate_overdue`]): `ReviewEscalated` raises its priority one step (urgent
//! stays urgent) and gives it a new deadline, the SLA of its new priority from then.
//!
//! A claim is a **lease**: a claimed item with no decision within the lease (`--review-lease`,
//! 30 minutes by default) goes back to the queue with a `ReviewReleased` event (reason
//! `expired`), written by the API process's lease keeper ([`expire_leases`]); a reviewer
//! can also hand an item back (`released`). Releases are appended with the stream's
//! expected version like everything else, so a decision and an expiry racing each other
//! cannot both land.
//!
//! Event ids are derived from the item, the reviewer and the request, so a client retrying
//! a request that timed out gets the same events back (the store's idempotency), while a
//! different reviewer's attempt conflicts.
//!
//! The queue view ([`ReviewQueue`]) is a projection kept in memory: folded from the store
//! on start and then live from a subscription; every answer carries the store position it
//! reflects.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use insights_event_store::envelope::{from_recorded, to_event_data};
use insights_event_store::{
    AppendBatch, EventFilter, EventStore, ExpectedVersion, PAGE_SIZE, RecordedEvent, StoreError,
    read_covered,
};
use insights_schemas::{
    Envelope, Event, InteractionContext, ResponseApproved, ReviewClaimed, ReviewDecided,
    ReviewDecision, ReviewEscalated, ReviewReleased, Timestamp, current_version, review_stream,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::watch;
use uuid::Uuid;

use crate::error::ApiError;
use crate::metrics::ReviewMetrics;

/// The event types the review workflow folds.
pub const REVIEW_EVENTS: [&str; 5] = [
    "ReviewRequested",
    "ReviewClaimed",
    "ReviewReleased",
    "ReviewEscalated",
    "ReviewDecided",
];

/// Who writes the releases of expired leases.
pub const LEASE_KEEPER: &str = "lease-keeper";

/// The producer name on events the API writes.
pub const PRODUCER: &str = "review-api";

/// Where an item is in the workflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Waiting for a reviewer.
    Open,
    /// A reviewer took it.
    Claimed,
    /// Two opinions disagree: an admin decides.
    Disputed,
    /// Settled.
    Decided,
}

impl Status {
    /// The name in the API and in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Open => "open",
            Status::Claimed => "claimed",
            Status::Disputed => "disputed",
            Status::Decided => "decided",
        }
    }
}

/// One reviewer's decision on an item.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Opinion {
    /// Who decided.
    pub reviewer: String,
    /// `sole`, `first`, `second` or `arbiter`.
    pub role: String,
    /// Whether it settled the item.
    pub settles: bool,
    /// The decision (hidden, as `null`, from other reviewers until the item is settled).
    pub decision: Option<ReviewDecision>,
    /// The sentiment the reviewer read, where it corrects the model (hidden likewise).
    pub corrected_sentiment: Option<String>,
    /// When.
    pub decided_at: Timestamp,
    #[serde(skip)]
    edited_text: Option<String>,
    #[serde(skip)]
    reason: Option<String>,
    #[serde(skip)]
    position: u64,
}

impl Opinion {
    /// The request that would have written this opinion.
    fn request(&self) -> Option<DecisionRequest> {
        Some(DecisionRequest {
            decision: self.decision?,
            text: self.edited_text.clone(),
            reason: self.reason.clone(),
            corrected_sentiment: self.corrected_sentiment.clone(),
        })
    }
}

/// One review item, as reviewers see it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReviewItem {
    /// The item's id (the `ReviewRequested` event id).
    pub review_id: Uuid,
    /// Where it is.
    pub status: Status,
    /// low, normal, high, urgent.
    pub priority: String,
    /// The policy rules that fired.
    pub reasons: Vec<String>,
    /// When review was requested (µs since the epoch).
    pub requested_at: Timestamp,
    /// The SLA deadline (µs since the epoch); escalation moves it.
    pub sla_deadline: Timestamp,
    /// How many times the item missed its deadline (each raised its priority a step).
    pub escalations: i32,
    /// How many independent decisions it needs (1, or 2 for a second opinion).
    pub opinions_required: i32,
    /// The decisions made so far, in order.
    pub opinions: Vec<Opinion>,
    /// Who holds it (while claimed).
    pub claimed_by: Option<String>,
    /// When the current claim was made.
    pub claimed_at: Option<Timestamp>,
    /// Who settled it.
    pub decided_by: Option<String>,
    /// The settling decision.
    pub decision: Option<ReviewDecision>,
    /// When it was settled.
    pub decided_at: Option<Timestamp>,
    /// The draft's event id.
    pub draft_event_id: Uuid,
    /// The draft.
    pub draft_text: String,
    /// The customer's scrubbed message.
    pub inquiry_text: String,
    /// The message's intent.
    pub intent: String,
    /// The message's sentiment.
    pub sentiment_label: String,
    /// The backend that drafted.
    pub backend: String,
    /// The conversation.
    pub conversation_id: String,
    /// chat, email, …
    pub channel: String,
    /// The product.
    pub product: Option<String>,
    /// The customer's language.
    pub language: Option<String>,
    /// The item stream's version (for clients that want to show staleness).
    pub version: u64,
    #[serde(skip)]
    context: InteractionContext,
    #[serde(skip)]
    correlation_id: String,
}

impl ReviewItem {
    /// The item as `caller` may see it: until it is settled, a reviewer does not see the
    /// other reviewers' decisions (second opinions are independent); admins see all.
    pub fn as_seen_by(mut self, caller: &str, admin: bool) -> Self {
        if !admin && self.status != Status::Decided {
            for o in self.opinions.iter_mut().filter(|o| o.reviewer != caller) {
                o.decision = None;
                o.corrected_sentiment = None;
            }
        }
        self
    }

    /// Folds one event of the item's stream into it; the first must be the request.
    /// `position` is the event's store position.
    fn apply(item: Option<Self>, e: &Envelope, stream_version: u64, position: u64) -> Option<Self> {
        match (&e.event, item) {
            (Event::ReviewRequested(r), _) => Some(ReviewItem {
                review_id: e.event_id,
                status: Status::Open,
                priority: r.priority.clone(),
                reasons: r.reasons.clone(),
                requested_at: e.occurred_at,
                sla_deadline: r.sla_deadline,
                escalations: 0,
                opinions_required: r.opinions_required.max(1),
                opinions: Vec::new(),
                claimed_by: None,
                claimed_at: None,
                decided_by: None,
                decision: None,
                decided_at: None,
                draft_event_id: r.draft_event_id,
                draft_text: r.draft_text.clone(),
                inquiry_text: r.inquiry_text.clone(),
                intent: r.intent.clone(),
                sentiment_label: r.sentiment_label.clone(),
                backend: r.backend.clone(),
                conversation_id: r.context.conversation_id.clone(),
                channel: r.context.channel.clone(),
                product: r.context.product.clone(),
                language: r.context.language.clone(),
                version: stream_version,
                context: r.context.clone(),
                correlation_id: e.correlation_id.clone(),
            }),
            (Event::ReviewClaimed(c), Some(mut item)) => {
                if matches!(item.status, Status::Open | Status::Claimed) {
                    item.status = Status::Claimed;
                    item.claimed_by = Some(c.reviewer.clone());
                    item.claimed_at = Some(e.occurred_at);
                }
                item.version = stream_version;
                Some(item)
            }
            (Event::ReviewReleased(_), Some(mut item)) => {
                if item.status == Status::Claimed {
                    item.status = Status::Open;
                    item.claimed_by = None;
                    item.claimed_at = None;
                }
                item.version = stream_version;
                Some(item)
            }
            (Event::ReviewEscalated(x), Some(mut item)) => {
                item.priority = x.to_priority.clone();
                item.sla_deadline = x.sla_deadline;
                item.escalations = x.level;
                item.version = stream_version;
                Some(item)
            }
            (Event::ReviewDecided(d), Some(mut item)) => {
                item.opinions.push(Opinion {
                    reviewer: d.reviewer.clone(),
                    role: d.role.clone(),
                    settles: d.settles,
                    decision: Some(d.decision),
                    corrected_sentiment: d.corrected_sentiment.clone(),
                    decided_at: e.occurred_at,
                    edited_text: d.edited_text.clone(),
                    reason: d.reason.clone(),
                    position,
                });
                item.claimed_by = None;
                item.claimed_at = None;
                if d.settles {
                    item.status = Status::Decided;
                    item.decided_by = Some(d.reviewer.clone());
                    item.decision = Some(d.decision);
                    item.decided_at = Some(e.occurred_at);
                } else if d.role == "second" {
                    item.status = Status::Disputed;
                } else {
                    item.status = Status::Open;
                }
                item.version = stream_version;
                Some(item)
            }
            (_, item) => item,
        }
    }

    /// The review id of a review-workflow event.
    fn id_of(e: &Envelope) -> Option<Uuid> {
        match &e.event {
            Event::ReviewRequested(_) => Some(e.event_id),
            Event::ReviewClaimed(c) => Some(c.review_id),
            Event::ReviewReleased(r) => Some(r.review_id),
            Event::ReviewEscalated(x) => Some(x.review_id),
            Event::ReviewDecided(d) => Some(d.review_id),
            _ => None,
        }
    }
}

#[derive(Debug, Default)]
struct QueueState {
    items: BTreeMap<Uuid, ReviewItem>,
    position: u64,
}

/// The review queue projection: every item, by id, and the store position it reflects.
#[derive(Debug, Clone)]
pub struct ReviewQueue {
    state: Arc<RwLock<QueueState>>,
    position: watch::Sender<u64>,
    metrics: Option<ReviewMetrics>,
}

impl Default for ReviewQueue {
    fn default() -> Self {
        ReviewQueue {
            state: Arc::default(),
            position: watch::channel(0).0,
            metrics: None,
        }
    }
}

impl ReviewQueue {
    /// A queue that keeps `metrics` (items by status and priority, escalations, releases)
    /// as it folds.
    pub fn with_metrics(metrics: ReviewMetrics) -> Self {
        ReviewQueue {
            metrics: Some(metrics),
            ..ReviewQueue::default()
        }
    }

    /// Folds one stored event (any type; others only advance the position).
    pub fn apply(&self, recorded: &RecordedEvent) {
        let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
        if REVIEW_EVENTS.contains(&recorded.data.event_type.as_str()) {
            match from_recorded(recorded) {
                Ok(e) => {
                    if let Some(id) = ReviewItem::id_of(&e) {
                        let item = state.items.remove(&id);
                        let before = item.as_ref().map(|i| (i.status, i.priority.clone()));
                        let item =
                            ReviewItem::apply(item, &e, recorded.stream_version, recorded.position);
                        if let Some(m) = &self.metrics {
                            let after = item.as_ref().map(|i| (i.status, i.priority.clone()));
                            m.observe(&e, before, after);
                        }
                        if let Some(item) = item {
                            state.items.insert(id, item);
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "review queue skipped an event"),
            }
        }
        drop(state);
        self.advance(recorded.position);
    }

    /// Records that the queue reflects the store up to `position` (no review event up to
    /// there is missing from it).
    pub fn advance(&self, position: u64) {
        let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
        state.position = state.position.max(position);
        let position = state.position;
        drop(state);
        self.position.send_replace(position);
    }

    /// The store position the queue reflects.
    pub fn position(&self) -> u64 {
        *self.position.borrow()
    }

    /// Waits until the queue reflects `position`, at most `timeout`; returns whether it does.
    pub async fn wait_for(&self, position: u64, timeout: Duration) -> bool {
        let mut rx = self.position.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|p| *p >= position))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// One item.
    pub fn get(&self, id: Uuid) -> Option<ReviewItem> {
        let state = self.state.read().unwrap_or_else(|p| p.into_inner());
        state.items.get(&id).cloned()
    }

    /// Items with `status` (all if `None`): open and claimed ones by priority, then
    /// deadline; decided ones most recent first.
    pub fn list(&self, status: Option<Status>) -> Vec<ReviewItem> {
        let state = self.state.read().unwrap_or_else(|p| p.into_inner());
        let mut items: Vec<ReviewItem> = state
            .items
            .values()
            .filter(|i| status.is_none_or(|s| i.status == s))
            .cloned()
            .collect();
        items.sort_by(|a, b| {
            let rank = |i: &ReviewItem| match i.priority.as_str() {
                "urgent" => 0,
                "high" => 1,
                "normal" => 2,
                _ => 3,
            };
            (a.status == Status::Decided)
                .cmp(&(b.status == Status::Decided))
                .then(
                    (a.status == Status::Disputed)
                        .cmp(&(b.status == Status::Disputed))
                        .reverse(),
                )
                .then_with(|| {
                    if a.status == Status::Decided {
                        b.decided_at.cmp(&a.decided_at)
                    } else {
                        rank(a)
                            .cmp(&rank(b))
                            .then(a.sla_deadline.cmp(&b.sla_deadline))
                    }
                })
                .then(a.review_id.cmp(&b.review_id))
        });
        items
    }

    /// Keeps the queue up to date with the store until the store fails: catch up from
    /// position 0, then live. Run it as a task.
    ///
    /// Only the review events are read (every process serving the API runs one of these:
    /// reading every event's payload made each a full reader of the log); the position
    /// still moves with every event, through [`read_covered`], as read-your-writes needs.
    pub async fn follow(self, store: Arc<dyn EventStore>) -> Result<(), StoreError> {
        let filter = EventFilter::Types(REVIEW_EVENTS.iter().map(|t| (*t).to_owned()).collect());
        let mut after = 0;
        loop {
            // Marked seen before reading, so an append between the read and the wait
            // still wakes it.
            let mut appended = store.appended();
            appended.borrow_and_update();
            let (events, covered) = read_covered(&*store, after, PAGE_SIZE, &filter).await?;
            for e in &events {
                self.apply(e);
            }
            self.advance(covered);
            after = covered;
            if events.len() < PAGE_SIZE {
                let _ = tokio::time::timeout(FOLLOW_POLL, appended.changed()).await;
            }
        }
    }
}

/// How late the queue sees an append when no wake-up arrives (another process writing
/// the same SQLite file; a PostgreSQL notification lost while its listener reconnects).
const FOLLOW_POLL: Duration = Duration::from_millis(500);

/// Reads one item from its own stream (the source of truth, never behind).
pub async fn load(store: &dyn EventStore, review_id: Uuid) -> Result<ReviewItem, ApiError> {
    let events = store
        .read_stream(&review_stream(&review_id), 0, 10_000)
        .await?;
    let mut item = None;
    for r in &events {
        let e = from_recorded(r).map_err(ApiError::internal)?;
        item = ReviewItem::apply(item, &e, r.stream_version, r.position);
    }
    item.ok_or_else(|| ApiError::not_found(format!("no review item {review_id}")))
}

/// A reviewer's decision as sent to the API.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionRequest {
    /// approve, edit or reject.
    pub decision: ReviewDecision,
    /// The reply to send instead of the draft (edit only).
    #[serde(default)]
    pub text: Option<String>,
    /// Why (required to reject).
    #[serde(default)]
    pub reason: Option<String>,
    /// The sentiment the reviewer reads in the message, if the model got it wrong.
    #[serde(default)]
    pub corrected_sentiment: Option<String>,
}

impl DecisionRequest {
    /// Checks the request against its decision.
    pub fn validate(&self) -> Result<(), ApiError> {
        let blank = |s: &Option<String>| s.as_deref().is_none_or(|t| t.trim().is_empty());
        match self.decision {
            ReviewDecision::Edit if blank(&self.text) => {
                return Err(ApiError::invalid("an edit needs the new reply in `text`"));
            }
            ReviewDecision::Approve | ReviewDecision::Reject if self.text.is_some() => {
                return Err(ApiError::invalid(
                    "`text` is only for edits; approve sends the draft as it is",
                ));
            }
            ReviewDecision::Reject if blank(&self.reason) => {
                return Err(ApiError::invalid("a rejection needs a `reason`"));
            }
            _ => {}
        }
        if let Some(s) = &self.corrected_sentiment
            && !["negative", "neutral", "positive"].contains(&s.as_str())
        {
            return Err(ApiError::invalid(format!(
                "corrected_sentiment must be negative, neutral or positive, not {s:?}"
            )));
        }
        Ok(())
    }

    fn fingerprint(&self) -> String {
        let mut h = Sha256::new();
        for part in [
            Some(format!("{:?}", self.decision)),
            self.text.clone(),
            self.reason.clone(),
            self.corrected_sentiment.clone(),
        ] {
            h.update(part.unwrap_or_default().as_bytes());
            h.update([0x1f]);
        }
        hex::encode(&h.finalize()[..8])
    }
}

/// What a claim or decision wrote.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Written {
    /// The item after the change.
    pub item: ReviewItem,
    /// The events written (or found written by an earlier identical request).
    pub events: Vec<Envelope>,
    /// The store position of the last of them.
    pub position: u64,
}

fn envelope(
    item: &ReviewItem,
    stream_id: String,
    key: &str,
    index: u32,
    now: Timestamp,
    event: Event,
) -> Envelope {
    Envelope {
        event_id: Envelope::derived_id(PRODUCER, key, item.requested_at, index),
        schema_version: current_version(event.event_type()).unwrap_or(1),
        stream_id,
        causation_id: Some(item.review_id.to_string()),
        correlation_id: item.correlation_id.clone(),
        occurred_at: now,
        producer: PRODUCER.into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        event,
    }
}

async fn append(
    store: &dyn EventStore,
    item: &ReviewItem,
    events: Vec<Envelope>,
) -> Result<u64, ApiError> {
    let batch = AppendBatch::new(events.iter().map(to_event_data).collect()).expect(
        review_stream(&item.review_id),
        ExpectedVersion::Exact(item.version),
    );
    let appended = store.append(batch).await?;
    Ok(appended.last().map_or(0, |a| a.position))
}

/// Appends one event to the item's stream (at its version) and folds it in.
async fn write_one(
    store: &dyn EventStore,
    item: ReviewItem,
    e: Envelope,
) -> Result<Written, ApiError> {
    let position = append(store, &item, vec![e.clone()]).await?;
    let version = item.version + 1;
    let item = ReviewItem::apply(Some(item), &e, version, position)
        .ok_or_else(|| ApiError::internal("fold"))?;
    Ok(Written {
        item,
        events: vec![e],
        position,
    })
}

/// `reviewer` claims an item. Claiming one's own claim again changes nothing.
pub async fn claim(
    store: &dyn EventStore,
    review_id: Uuid,
    reviewer: &str,
    now: Timestamp,
) -> Result<Written, ApiError> {
    let item = load(store, review_id).await?;
    match (&item.status, item.claimed_by.as_deref()) {
        (Status::Decided, _) => {
            return Err(ApiError::conflict(
                "already_decided",
                format!("review {review_id} is already decided"),
            ));
        }
        (Status::Disputed, _) => {
            return Err(ApiError::conflict(
                "disputed",
                format!("review {review_id} has two opinions that disagree: an admin decides"),
            ));
        }
        _ if item.opinions.iter().any(|o| o.reviewer == reviewer) => {
            return Err(ApiError::conflict(
                "already_gave_opinion",
                format!(
                    "you gave your opinion on review {review_id}; its second must come from another reviewer"
                ),
            ));
        }
        (Status::Claimed, Some(by)) if by == reviewer => {
            let position = store.head().await?.position;
            return Ok(Written {
                item,
                events: Vec::new(),
                position,
            });
        }
        (Status::Claimed, Some(by)) => {
            return Err(ApiError::conflict(
                "claimed_by_another",
                format!("review {review_id} is claimed by {by}"),
            ));
        }
        _ => {}
    }
    let key = format!("{review_id}/claim/{}/{reviewer}", item.version);
    let e = envelope(
        &item,
        review_stream(&review_id),
        &key,
        0,
        now,
        Event::ReviewClaimed(ReviewClaimed {
            review_id,
            reviewer: reviewer.to_owned(),
        }),
    );
    write_one(store, item, e).await
}

/// Why a claim ends without a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReleaseReason {
    /// Its reviewer (or an admin) handed it back.
    Released,
    /// The lease ran out.
    Expired,
}

impl ReleaseReason {
    fn as_str(self) -> &'static str {
        match self {
            ReleaseReason::Released => "released",
            ReleaseReason::Expired => "expired",
        }
    }
}

/// Hands a claimed item back to the queue. `by` is the caller (or [`LEASE_KEEPER`]);
/// `admin` may release another reviewer's claim. The event's id is derived from the claim
/// it ends, so a retried release, or a second keeper, writes nothing more.
pub async fn release(
    store: &dyn EventStore,
    review_id: Uuid,
    by: &str,
    admin: bool,
    reason: ReleaseReason,
    now: Timestamp,
) -> Result<Written, ApiError> {
    let item = load(store, review_id).await?;
    let (Status::Claimed, Some(holder), Some(claimed_at)) =
        (item.status, item.claimed_by.clone(), item.claimed_at)
    else {
        return Err(ApiError::conflict(
            "not_claimed",
            format!("review {review_id} is not claimed"),
        ));
    };
    if reason == ReleaseReason::Released && holder != by && !admin {
        return Err(ApiError::conflict(
            "claimed_by_another",
            format!("review {review_id} is claimed by {holder}"),
        ));
    }
    let key = format!("{review_id}/release/{}", item.version);
    let e = envelope(
        &item,
        review_stream(&review_id),
        &key,
        0,
        now,
        Event::ReviewReleased(ReviewReleased {
            review_id,
            reviewer: holder,
            reason: reason.as_str().into(),
            released_by: by.to_owned(),
            claimed_at,
        }),
    );
    write_one(store, item, e).await
}

/// Releases every claim in `queue` older than `lease` at `now` (the lease keeper's tick;
/// `now` is a parameter so tests set the clock). A claim decided or released meanwhile
/// (by this or another API process) loses the race on the stream's version and is
/// skipped. Returns what was written.
pub async fn expire_leases(
    store: &dyn EventStore,
    queue: &ReviewQueue,
    lease: Duration,
    now: Timestamp,
) -> Result<Vec<Written>, ApiError> {
    let lease = i64::try_from(lease.as_micros()).unwrap_or(i64::MAX);
    let mut written = Vec::new();
    for item in queue.list(Some(Status::Claimed)) {
        let expired = item
            .claimed_at
            .is_some_and(|at| at.micros().saturating_add(lease) <= now.micros());
        if !expired {
            continue;
        }
        match release(
            store,
            item.review_id,
            LEASE_KEEPER,
            true,
            ReleaseReason::Expired,
            now,
        )
        .await
        {
            Ok(w) => written.push(w),
            // Decided, released or claimed again since the queue was read.
            Err(e) if e.is_conflict() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(written)
}

/// `reviewer` decides an item that nobody else holds: its sole decision, one of its two
/// opinions, or (`admin`, on a disputed item) the ruling.
pub async fn decide(
    store: &dyn EventStore,
    review_id: Uuid,
    reviewer: &str,
    admin: bool,
    request: &DecisionRequest,
    now: Timestamp,
) -> Result<Written, ApiError> {
    request.validate()?;
    let item = load(store, review_id).await?;
    let fingerprint = request.fingerprint();
    if let Some(mine) = item.opinions.iter().find(|o| o.reviewer == reviewer) {
        // The same request again (a retry) gets its events back, rebuilt as they were
        // written (their ids and times come from the stored decision); anything else
        // conflicts.
        if mine
            .request()
            .is_some_and(|r| r.fingerprint() == fingerprint)
        {
            let key = format!("{review_id}/decide/{reviewer}/{fingerprint}");
            let events = decision_events(
                &item,
                &key,
                reviewer,
                request,
                (&mine.role, mine.settles),
                mine.decided_at,
            );
            // The store's head is at or past the whole batch.
            let position = store.head().await?.position.max(mine.position);
            return Ok(Written {
                position,
                item,
                events,
            });
        }
        return Err(match item.status {
            Status::Decided => already_decided(&item),
            _ => ApiError::conflict(
                "already_gave_opinion",
                format!("you already gave your opinion on review {review_id}"),
            ),
        });
    }
    let (role, settles) = match item.status {
        Status::Decided => return Err(already_decided(&item)),
        Status::Disputed if admin => ("arbiter", true),
        Status::Disputed => {
            return Err(ApiError::conflict(
                "disputed",
                format!("review {review_id} has two opinions that disagree: an admin decides"),
            ));
        }
        Status::Open | Status::Claimed => {
            if let Some(by) = item.claimed_by.as_deref()
                && by != reviewer
            {
                return Err(ApiError::conflict(
                    "claimed_by_another",
                    format!("review {review_id} is claimed by {by}"),
                ));
            }
            match (item.opinions_required, item.opinions.first()) {
                (..=1, _) => ("sole", true),
                (_, None) => ("first", false),
                (_, Some(first)) => ("second", first.decision == Some(request.decision)),
            }
        }
    };
    let key = format!("{review_id}/decide/{reviewer}/{fingerprint}");
    let events = decision_events(&item, &key, reviewer, request, (role, settles), now);
    let position = append(store, &item, events.clone()).await?;
    let version = item.version + 1;
    let item = ReviewItem::apply(Some(item), &events[0], version, position)
        .ok_or_else(|| ApiError::internal("fold"))?;
    Ok(Written {
        item,
        events,
        position,
    })
}

fn already_decided(item: &ReviewItem) -> ApiError {
    ApiError::conflict(
        "already_decided",
        format!(
            "review {} was already decided by {}",
            item.review_id,
            item.decided_by.as_deref().unwrap_or("someone")
        ),
    )
}

/// A decision's events: `ReviewDecided`, and the reply that goes out if it settles the
/// item with approve or edit.
fn decision_events(
    item: &ReviewItem,
    key: &str,
    reviewer: &str,
    request: &DecisionRequest,
    (role, settles): (&str, bool),
    at: Timestamp,
) -> Vec<Envelope> {
    let decided = envelope(
        item,
        review_stream(&item.review_id),
        key,
        0,
        at,
        Event::ReviewDecided(ReviewDecided {
            context: item.context.clone(),
            review_id: item.review_id,
            reviewer: reviewer.to_owned(),
            decision: request.decision,
            edited_text: request.text.clone(),
            reason: request.reason.clone(),
            corrected_sentiment: request.corrected_sentiment.clone(),
            role: role.to_owned(),
            settles,
        }),
    );
    let mut events = vec![decided];
    if settles {
        events.extend(approval(item, key, reviewer, request, at));
    }
    events
}

/// The SLA of each priority: how long an item has from its request, or from an
/// escalation, to be settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct Sla {
    pub urgent: Duration,
    pub high: Duration,
    pub normal: Duration,
    pub low: Duration,
}

impl Sla {
    fn of(&self, priority: &str) -> Duration {
        match priority {
            "urgent" => self.urgent,
            "high" => self.high,
            "normal" => self.normal,
            _ => self.low,
        }
    }
}

/// One step up: low → normal → high → urgent (which stays urgent). A priority the workflow
/// does not know goes to high.
pub fn next_priority(priority: &str) -> &'static str {
    match priority {
        "low" => "normal",
        "normal" => "high",
        _ => "urgent",
    }
}

/// Escalates every unsettled item in `queue` whose deadline has passed at `now` (the
/// review keeper's tick; `now` is a parameter so tests set the clock): `ReviewEscalated`
/// raises its priority a step and sets a new deadline, `now` plus the new priority's
/// SLA. Its id is derived from the item and the escalation's level, so two keepers write
/// it once, and an item that changed meanwhile loses the race on the stream's version
/// and waits for the next tick. Returns what was written.
pub async fn escalate_overdue(
    store: &dyn EventStore,
    queue: &ReviewQueue,
    sla: &Sla,
    now: Timestamp,
) -> Result<Vec<Written>, ApiError> {
    let mut written = Vec::new();
    for item in queue.list(None) {
        if item.status == Status::Decided || item.sla_deadline.micros() > now.micros() {
            continue;
        }
        let item = load(store, item.review_id).await?;
        if item.status == Status::Decided || item.sla_deadline.micros() > now.micros() {
            continue;
        }
        let to = next_priority(&item.priority);
        let span = i64::try_from(sla.of(to).as_micros()).unwrap_or(i64::MAX);
        let level = item.escalations.saturating_add(1);
        let key = format!("{}/escalate/{level}", item.review_id);
        let e = envelope(
            &item,
            review_stream(&item.review_id),
            &key,
            0,
            now,
            Event::ReviewEscalated(ReviewEscalated {
                review_id: item.review_id,
                from_priority: item.priority.clone(),
                to_priority: to.to_owned(),
                missed_deadline: item.sla_deadline,
                sla_deadline: Timestamp(now.micros().saturating_add(span)),
                level,
            }),
        );
        match write_one(store, item, e).await {
            Ok(w) => written.push(w),
            Err(e) if e.is_conflict() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(written)
}

/// The `ResponseApproved` an approve or edit sends out, on the conversation's stream.
fn approval(
    item: &ReviewItem,
    key: &str,
    reviewer: &str,
    request: &DecisionRequest,
    now: Timestamp,
) -> Option<Envelope> {
    let final_text = match request.decision {
        ReviewDecision::Approve => item.draft_text.clone(),
        ReviewDecision::Edit => request.text.clone()?.trim().to_owned(),
        ReviewDecision::Reject => return None,
    };
    Some(envelope(
        item,
        format!("conversation-{}", item.conversation_id),
        key,
        1,
        now,
        Event::ResponseApproved(ResponseApproved {
            context: item.context.clone(),
            draft_event_id: item.draft_event_id,
            final_text,
            approved_by: reviewer.to_owned(),
            automatic: false,
            reasons: vec![format!("review:{}", decision_name(request.decision))],
            inquiry_text: item.inquiry_text.clone(),
            intent: item.intent.clone(),
        }),
    ))
}

/// The decision's name.
pub fn decision_name(d: ReviewDecision) -> &'static str {
    match d {
        ReviewDecision::Approve => "approve",
        ReviewDecision::Edit => "edit",
        ReviewDecision::Reject => "reject",
    }
}
