//! The HTTP API: what reviewers and analysts call.
//!
//! Every answer is JSON; every failure is an [`ApiError`] with a status, a stable code and
//! a message. Every endpoint needs a bearer token ([`auth`]); the role each needs is in
//! its doc. Answers that come from a projection carry the store position they reflect in
//! an `X-Store-Position` header and a `position` field.
//!
//! # Layout
//! - `error` — [`ApiError`] and its JSON body.
//! - `auth` — roles, the [`Authenticator`] seam and HS256 JWTs.
//! - `reviews` — the review workflow: items folded from their streams, claims and
//!   decisions appended with expected versions, the in-memory queue projection.
//! - this file — the router, the shared state, the extractors that turn bad input into
//!   JSON errors, and the handlers.
//!
//! # Endpoints
//! | method and path | role | what |
//! |---|---|---|
//! | `GET /v1/reviews?status=&limit=&offset=&min_position=` | reviewer, analyst | the queue (`status`: open, claimed, disputed, decided, pending, all) |
//! | `GET /v1/reviews/{id}` | reviewer, analyst | one item (other reviewers' opinions hidden until it is settled; admins see them) |
//! | `POST /v1/reviews/{id}/claim` | reviewer | take an item (a lease: it goes back to the queue if undecided in time) |
//! | `POST /v1/reviews/{id}/release` | reviewer (the holder), admin (any) | hand a claimed item back |
//! | `POST /v1/reviews/{id}/decision` | reviewer; admin on a disputed item | approve, edit or reject it (one of two opinions where it needs a second) |
//! | `GET /v1/audit/verify` | auditor | walk the log and check the hash chain |
//! | `GET /v1/events?from=&limit=&types=&stream=` | auditor, analyst | stored events, paged by position |
//! | `GET /v1/events/stream?from=&types=&stream=` | auditor, analyst | the same, then live, as Server-Sent Events |
//! | `GET /v1/views` | analyst, auditor | each view's version, position and lag |
//! | `GET /v1/views/sentiment?from=&to=&granularity=&group_by=&channel=&product=&language=&segment=&model_version=` | analyst, auditor | sentiment over time |
//! | `GET /v1/views/responses?from=&to=` | analyst, auditor | response metrics |
//! | `GET /v1/views/fairness?from=&to=&attributes=&outcome=` | analyst, auditor | latest fairness reports, alerts |
//! | `GET /v1/views/health?minutes=` | analyst, auditor | event rates, dead letters, producers, view lag |
//! | `GET /v1/views/anomalies?from=&to=&dimension=&value=` | analyst, auditor | sentiment anomalies |
//! | `GET /v1/views/agreement?from=&to=` | analyst, auditor | Cohen's κ: reviewer–reviewer, reviewer–model |
//! | `GET /v1/views/conversations?from=&to=&channel=&product=&open_reviews=` | analyst, auditor | conversations, latest first |
//! | `GET /v1/views/conversations/{id}` | analyst, auditor | one conversation's timeline |
//!
//! Every view answer takes `min_position` (read-your-writes; see the `views` module).
//!
//! `GET /` is the dashboard (a static page and `/dashboard.js`, no token needed for them;
//! the page asks for one, or takes it from the URL's `#token=` fragment, which never
//! reaches the server).
//!
//! Every client (bearer token) is rate limited ([`RateLimit`]): over the limit, `429` with
//! `Retry-After`.

pub mod auth;
pub mod error;
mod events;
pub mod jwks;
pub mod metrics;
mod openapi;
pub mod reviews;
mod views;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use insights_event_store::EventStore;
use insights_schemas::{Envelope, Timestamp};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use auth::{Authenticator, Either, JwtAuth, Principal, Role};
pub use error::ApiError;
pub use reviews::{ReviewItem, ReviewQueue, Status};

use crate::reviews::{DecisionRequest, ReleaseReason, Written};

/// Sends the events a request wrote to Kafka (`review.decisions`), so that the processors
/// downstream see them. Implemented by the binary over the runtime's producer.
#[async_trait]
pub trait Publisher: Send + Sync + std::fmt::Debug {
    /// Publishes `events` with the partition key `key` (the conversation id, so that a
    /// conversation's events stay in order on one partition), waiting for delivery.
    async fn publish(&self, key: &str, events: &[Envelope]) -> Result<(), String>;
}

/// Re-identification: the original value behind a token of the privacy processor's
/// encrypt operator, opened with the data subject's key from the vault.
#[async_trait]
pub trait Reidentifier: Send + Sync + std::fmt::Debug {
    /// The entity type and the original value behind `token` in `tenant`.
    async fn reveal(&self, tenant: &str, token: &str) -> Result<Revealed, RevealError>;
}

/// A value the vault opened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Revealed {
    /// The entity type (`PERSON`, `EMAIL_ADDRESS`, …).
    #[serde(rename = "type")]
    pub entity_type: String,
    /// The original value.
    pub value: String,
}

/// Why a token could not be opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RevealError {
    /// No scrubbed interaction of the tenant carries the token.
    NotFound,
    /// The data subject was erased: the value is gone for good.
    Erased,
    /// The vault failed (its store, or a value that does not authenticate).
    Failed(String),
}

/// What every handler shares.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The event store.
    pub store: Arc<dyn EventStore>,
    /// Who is calling.
    pub auth: Arc<dyn Authenticator>,
    /// The review queue projection (follow it with [`ReviewQueue::follow`]).
    pub reviews: ReviewQueue,
    /// Where reviewers' events are published; `None` stores them only.
    pub publisher: Option<Arc<dyn Publisher>>,
    /// The projection views; `None` answers their endpoints with 503.
    pub views: Option<insights_projections::Views>,
    /// Re-identification for auditors (`POST /v1/vault/reveal`); `None` where this process
    /// has no privacy secret or nothing is encrypted.
    pub vault: Option<Arc<dyn Reidentifier>>,
}

/// How long a `min_position` request waits for the projection, at most.
const MAX_CATCH_UP_WAIT: Duration = Duration::from_secs(5);

/// Requests per client (per bearer token; requests without one share a bucket).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Sustained requests per second.
    pub per_second: u32,
    /// Requests allowed at once above that.
    pub burst: u32,
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit {
            per_second: 50,
            burst: 100,
        }
    }
}

type Limiter = governor::DefaultKeyedRateLimiter<String>;

async fn rate_limited(
    State(limiter): State<Arc<Limiter>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    use governor::clock::{Clock, DefaultClock};
    use sha2::Digest;
    let client = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .map(|v| hex::encode(&sha2::Sha256::digest(v.as_bytes())[..12]))
        .unwrap_or_else(|| "anonymous".to_owned());
    match limiter.check_key(&client) {
        Ok(()) => next.run(request).await,
        Err(not_until) => {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            let mut response = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("too many requests; retry in {seconds} s"),
            )
            .into_response();
            if let Ok(v) = HeaderValue::from_str(&seconds.max(1).to_string()) {
                response
                    .headers_mut()
                    .insert(axum::http::header::RETRY_AFTER, v);
            }
            response
        }
    }
}

/// The API's routes with the default [`RateLimit`]. `/healthz`, `/readyz` and `/metrics`
/// are the runtime's ops routes, which the binary merges in front of these.
pub fn router(state: AppState) -> Router {
    router_with(state, RateLimit::default())
}

/// The API's routes with a rate limit per client.
pub fn router_with(state: AppState, limit: RateLimit) -> Router {
    let quota = governor::Quota::per_second(
        std::num::NonZeroU32::new(limit.per_second).unwrap_or(std::num::NonZeroU32::MIN),
    )
    .allow_burst(std::num::NonZeroU32::new(limit.burst).unwrap_or(std::num::NonZeroU32::MIN));
    let limiter = Arc::new(governor::RateLimiter::keyed(quota));
    // Forget clients whose buckets are full again, so the map does not grow with every
    // token ever seen; the task ends with the router.
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        let weak = Arc::downgrade(&limiter);
        runtime.spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(limiter) = weak.upgrade() else {
                    return;
                };
                limiter.retain_recent();
                limiter.shrink_to_fit();
            }
        });
    }
    routes()
        .into_iter()
        .fold(Router::new(), |router, (path, handler)| {
            router.route(path, handler)
        })
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this endpoint does not take that method",
            )
        })
        .with_state(state)
        .layer(axum::middleware::from_fn_with_state(limiter, rate_limited))
}

/// Every route the API serves, with its handlers: the router is built from this table, and
/// [`route_paths`] lists it (the OpenAPI document must cover every `/v1/` path).
fn routes() -> Vec<(&'static str, axum::routing::MethodRouter<AppState>)> {
    vec![
        ("/", get(dashboard_page)),
        ("/dashboard.js", get(dashboard_script)),
        ("/openapi.json", get(openapi::document)),
        ("/v1/reviews", get(list_reviews)),
        ("/v1/reviews/{id}", get(get_review)),
        ("/v1/reviews/{id}/claim", post(claim_review)),
        ("/v1/reviews/{id}/release", post(release_review)),
        ("/v1/reviews/{id}/decision", post(decide_review)),
        ("/v1/audit/verify", get(audit_verify)),
        ("/v1/vault/reveal", post(vault_reveal)),
        ("/v1/events", get(events::list_events)),
        ("/v1/events/stream", get(events::stream_events)),
        ("/v1/views", get(views::list)),
        ("/v1/views/sentiment", get(views::get_sentiment)),
        ("/v1/views/responses", get(views::get_responses)),
        ("/v1/views/agreement", get(views::get_agreement)),
        ("/v1/views/fairness", get(views::get_fairness)),
        ("/v1/views/health", get(views::get_health)),
        ("/v1/views/anomalies", get(views::get_anomalies)),
        ("/v1/views/conversations", get(views::get_conversations)),
        ("/v1/views/conversations/{id}", get(views::get_conversation)),
    ]
}

/// The paths the router serves, from the same table it is built from.
pub fn route_paths() -> Vec<&'static str> {
    routes().into_iter().map(|(path, _)| path).collect()
}

/// The dashboard page (no data in it: its script reads the API with the user's token).
async fn dashboard_page() -> Response {
    static_asset(
        include_str!("dashboard/index.html"),
        "text/html; charset=utf-8",
    )
}

/// The dashboard's script.
async fn dashboard_script() -> Response {
    static_asset(
        include_str!("dashboard/dashboard.js"),
        "text/javascript; charset=utf-8",
    )
}

fn static_asset(body: &'static str, content_type: &'static str) -> Response {
    use axum::http::header;
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'unsafe-inline'; img-src 'self' data:",
        ),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller(pub Principal);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        state.auth.authenticate(&parts.headers).await.map(Caller)
    }
}

/// Query parameters, with a JSON 400 when they do not parse.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(q)| ApiQuery(q))
            .map_err(|e| ApiError::bad_request(e.body_text()))
    }
}

fn json_body<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("request body: {e}")))
}

fn review_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::not_found(format!("no review item {raw:?}")))
}

/// A JSON answer carrying the store position it reflects.
fn at_position(position: u64, body: impl Serialize) -> Response {
    let mut response = Json(body).into_response();
    if let Ok(v) = HeaderValue::from_str(&position.to_string()) {
        response.headers_mut().insert("x-store-position", v);
    }
    response
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// open, claimed, decided, pending (open + claimed, the default) or all.
    #[param(pattern = "^(open|claimed|decided|pending|all)$")]
    status: Option<String>,
    /// Items per page (1..=500, default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<usize>,
    /// Items to skip.
    #[serde(default, deserialize_with = "insights_projections::views::bounded")]
    #[param(minimum = 0, maximum = 9007199254740991.0)]
    offset: Option<usize>,
    /// Read-your-writes: wait until the queue reflects this position.
    #[serde(default, deserialize_with = "insights_projections::views::bounded")]
    #[param(minimum = 0, maximum = 9007199254740991.0)]
    min_position: Option<u64>,
}

#[derive(Debug, Serialize)]
struct ItemView {
    #[serde(flatten)]
    item: ReviewItem,
    /// Seconds since review was requested.
    age_seconds: i64,
    /// Undecided past its SLA deadline.
    overdue: bool,
}

/// An item as `caller` sees it (other reviewers' opinions hidden until it is settled).
fn view(item: &ReviewItem, caller: &Principal, now: Timestamp) -> ItemView {
    ItemView {
        age_seconds: (now.micros() - item.requested_at.micros()).max(0) / 1_000_000,
        overdue: item.status != Status::Decided && now > item.sla_deadline,
        item: item
            .clone()
            .as_seen_by(&caller.subject, caller.roles.contains(&Role::Admin)),
    }
}

/// A `min_position` beyond the store's head names an event that does not exist: the
/// client's mistake (400), not a view that is behind (503).
pub(crate) async fn within_head(state: &AppState, min_position: u64) -> Result<(), ApiError> {
    let head = state.store.head().await?.position;
    if min_position > head {
        return Err(ApiError::bad_request(format!(
            "min_position {min_position} is beyond the store's head ({head})"
        )));
    }
    Ok(())
}

async fn caught_up(state: &AppState, min_position: Option<u64>) -> Result<(), ApiError> {
    if let Some(p) = min_position {
        within_head(state, p).await?;
    }
    if let Some(p) = min_position
        && !state.reviews.wait_for(p, MAX_CATCH_UP_WAIT).await
    {
        return Err(ApiError::unavailable(format!(
            "the review view is at position {}, behind the requested {p}; retry shortly",
            state.reviews.position()
        )));
    }
    Ok(())
}

/// `GET /v1/reviews` (reviewer, analyst).
#[utoipa::path(
    get,
    path = "/v1/reviews",
    tag = "reviews",
    description = "The review queue: urgent first, then by deadline",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of review items, with `position`", body = serde_json::Value),
        (status = 400, description = "Bad parameters", body = serde_json::Value),
        (status = 503, description = "The queue did not reach `min_position` in time", body = serde_json::Value),
        (status = 401, description = "No valid token", body = serde_json::Value),
        (status = 403, description = "The token lacks the role", body = serde_json::Value),
    ),
    security(("bearer" = []))
)]
async fn list_reviews(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Response, ApiError> {
    caller
        .require(Role::Reviewer)
        .or_else(|_| caller.require(Role::Analyst))?;
    let (statuses, name): (&[Status], &str) = match q.status.as_deref().unwrap_or("pending") {
        "open" => (&[Status::Open], "open"),
        "claimed" => (&[Status::Claimed], "claimed"),
        "disputed" => (&[Status::Disputed], "disputed"),
        "decided" => (&[Status::Decided], "decided"),
        "pending" => (
            &[Status::Open, Status::Claimed, Status::Disputed],
            "pending",
        ),
        "all" => (
            &[
                Status::Open,
                Status::Claimed,
                Status::Disputed,
                Status::Decided,
            ],
            "all",
        ),
        other => {
            return Err(ApiError::bad_request(format!(
                "status must be open, claimed, disputed, decided, pending or all, not {other:?}"
            )));
        }
    };
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::bad_request("limit must be within 1..=500"));
    }
    caught_up(&state, q.min_position).await?;
    let position = state.reviews.position();
    let items: Vec<ReviewItem> = state
        .reviews
        .list(None)
        .into_iter()
        .filter(|i| statuses.contains(&i.status))
        .collect();
    let now = Timestamp::now();
    let page: Vec<ItemView> = items
        .iter()
        .skip(q.offset.unwrap_or(0))
        .take(limit)
        .map(|i| view(i, &caller, now))
        .collect();
    Ok(at_position(
        position,
        serde_json::json!({
            "position": position,
            "status": name,
            "total": items.len(),
            "items": page,
        }),
    ))
}

/// `GET /v1/reviews/{id}` (reviewer, analyst).
#[utoipa::path(
    get,
    path = "/v1/reviews/{id}",
    tag = "reviews",
    description = "One review item",
    params(("id" = String, Path, description = "The review id"), PositionQuery),
    responses(
        (status = 200, description = "The item", body = serde_json::Value),
        (status = 400, description = "Bad parameters (`min_position` beyond the store's head)", body = serde_json::Value),
        (status = 404, description = "No such item", body = serde_json::Value),
        (status = 401, description = "No valid token", body = serde_json::Value),
        (status = 403, description = "The token lacks the role", body = serde_json::Value),
        (status = 503, description = "The queue did not reach `min_position` in time", body = serde_json::Value),
    ),
    security(("bearer" = []))
)]
async fn get_review(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<PositionQuery>,
) -> Result<Response, ApiError> {
    caller
        .require(Role::Reviewer)
        .or_else(|_| caller.require(Role::Analyst))?;
    let id = review_id(&id)?;
    caught_up(&state, q.min_position).await?;
    let position = state.reviews.position();
    let item = state
        .reviews
        .get(id)
        .ok_or_else(|| ApiError::not_found(format!("no review item {id}")))?;
    Ok(at_position(
        position,
        serde_json::json!({"position": position, "item": view(&item, &caller, Timestamp::now())}),
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct PositionQuery {
    /// Read-your-writes: wait until the queue reflects this position.
    #[serde(default, deserialize_with = "insights_projections::views::bounded")]
    #[param(minimum = 0, maximum = 9007199254740991.0)]
    min_position: Option<u64>,
}

/// Publishes what a request wrote and lets the queue catch up with it.
async fn written(state: &AppState, caller: &Principal, w: Written) -> Result<Response, ApiError> {
    if let Some(publisher) = &state.publisher
        && !w.events.is_empty()
    {
        publisher
            .publish(&w.item.conversation_id, &w.events)
            .await
            .map_err(|e| {
                ApiError::unavailable(format!(
                    "stored at position {} but not yet published ({e}); retry the same request",
                    w.position
                ))
            })?;
    }
    // Read-your-writes for the caller's next GET; a lagging view does not fail the write.
    state
        .reviews
        .wait_for(w.position, Duration::from_secs(2))
        .await;
    let ids: Vec<String> = w.events.iter().map(|e| e.event_id.to_string()).collect();
    Ok(at_position(
        w.position,
        serde_json::json!({
            "position": w.position,
            "event_ids": ids,
            "item": view(&w.item, caller, Timestamp::now()),
        }),
    ))
}

/// `POST /v1/reviews/{id}/claim` (reviewer).
#[utoipa::path(
    post,
    path = "/v1/reviews/{id}/claim",
    tag = "reviews",
    description = "Take a review item (reviewer)",
    params(("id" = String, Path, description = "The review id")),
    responses(
        (status = 200, description = "Claimed: the events written and the item", body = serde_json::Value),
        (status = 404, description = "No such item", body = serde_json::Value),
        (status = 409, description = "Claimed by another reviewer, already decided, or changed meanwhile", body = serde_json::Value),
        (status = 401, description = "No valid token", body = serde_json::Value),
        (status = 403, description = "The token lacks the role", body = serde_json::Value),
    ),
    security(("bearer" = []))
)]
async fn claim_review(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    caller.require(Role::Reviewer)?;
    let id = review_id(&id)?;
    let w = reviews::claim(&*state.store, id, &caller.subject, Timestamp::now()).await?;
    written(&state, &caller, w).await
}

/// `POST /v1/reviews/{id}/release` (reviewer holding the claim; admin: any claim).
#[utoipa::path(
    post,
    path = "/v1/reviews/{id}/release",
    tag = "reviews",
    description = "Hand a claimed item back to the queue (the reviewer holding it; an admin may release any claim)",
    params(("id" = String, Path, description = "The review id")),
    responses(
        (status = 200, description = "Released: the events written and the item", body = serde_json::Value),
        (status = 404, description = "No such item", body = serde_json::Value),
        (status = 409, description = "Not claimed, claimed by another reviewer, or changed meanwhile", body = serde_json::Value),
        (status = 401, description = "No valid token", body = serde_json::Value),
        (status = 403, description = "The token lacks the role", body = serde_json::Value),
    ),
    security(("bearer" = []))
)]
async fn release_review(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    caller.require(Role::Reviewer)?;
    let id = review_id(&id)?;
    let admin = caller.roles.contains(&Role::Admin);
    let w = reviews::release(
        &*state.store,
        id,
        &caller.subject,
        admin,
        ReleaseReason::Released,
        Timestamp::now(),
    )
    .await?;
    written(&state, &caller, w).await
}

/// The review keeper of the API process. Every tick (a tenth of the lease, between 1 s and
/// 1 min; 30 s without leases) it releases the claims older than `lease`
/// ([`reviews::expire_leases`]) and escalates the items past their deadline
/// ([`reviews::escalate_overdue`], with `sla`), and publishes what it wrote. Runs until the
/// process ends; a store outage is logged and retried at the next tick. Several API
/// processes may run one each: the stream's version lets one change land per step.
pub async fn keep_reviews(
    store: Arc<dyn EventStore>,
    queue: ReviewQueue,
    publisher: Option<Arc<dyn Publisher>>,
    lease: Option<Duration>,
    sla: Option<reviews::Sla>,
) {
    let tick = lease.map_or(Duration::from_secs(30), |l| {
        (l / 10).clamp(Duration::from_secs(1), Duration::from_secs(60))
    });
    let mut ticks = tokio::time::interval(tick);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let mut written = Vec::new();
        if let Some(lease) = lease {
            match reviews::expire_leases(&*store, &queue, lease, Timestamp::now()).await {
                Ok(w) => written.extend(w),
                Err(e) => tracing::warn!(error = %e,
                    "expiring review leases failed; retrying at the next tick"),
            }
        }
        if let Some(sla) = &sla {
            match reviews::escalate_overdue(&*store, &queue, sla, Timestamp::now()).await {
                Ok(w) => written.extend(w),
                Err(e) => tracing::warn!(error = %e,
                    "escalating overdue reviews failed; retrying at the next tick"),
            }
        }
        for w in written {
            tracing::info!(review_id = %w.item.review_id, priority = %w.item.priority,
                status = w.item.status.as_str(), "review keeper: {}",
                w.events.first().map_or("", |e| e.event.event_type()));
            if let Some(p) = &publisher
                && let Err(e) = p.publish(&w.item.conversation_id, &w.events).await
            {
                tracing::warn!(review_id = %w.item.review_id, error = %e,
                    "the review keeper's event is stored but not published");
            }
        }
    }
}

/// `POST /v1/reviews/{id}/decision` (reviewer), body
/// `{"decision": "approve"|"edit"|"reject", "text"?, "reason"?, "corrected_sentiment"?}`.
#[utoipa::path(
    post,
    path = "/v1/reviews/{id}/decision",
    tag = "reviews",
    description = "Approve, edit or reject a draft (reviewer): {\"decision\": \"approve\"|\"edit\"|\"reject\", \"text\"?, \"reason\"?, \"corrected_sentiment\"?}. An item needing two opinions takes one from each of two reviewers; when they disagree it is disputed and an admin's decision settles it",
    params(("id" = String, Path, description = "The review id")),
    request_body(content = serde_json::Value, description = "The decision", content_type = "application/json"),
    responses(
        (status = 200, description = "Decided: the events written and the item", body = serde_json::Value),
        (status = 400, description = "A body that does not parse", body = serde_json::Value),
        (status = 404, description = "No such item", body = serde_json::Value),
        (status = 409, description = "Decided already, claimed by another reviewer, your opinion already given (a second opinion comes from another reviewer), or disputed (an admin rules)", body = serde_json::Value),
        (status = 422, description = "An invalid decision (an edit without text, a rejection without a reason)", body = serde_json::Value),
        (status = 401, description = "No valid token", body = serde_json::Value),
        (status = 403, description = "The token lacks the role", body = serde_json::Value),
    ),
    security(("bearer" = []))
)]
async fn decide_review(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    caller.require(Role::Reviewer)?;
    let id = review_id(&id)?;
    let request: DecisionRequest = json_body(&body)?;
    let admin = caller.roles.contains(&Role::Admin);
    let w = reviews::decide(
        &*state.store,
        id,
        &caller.subject,
        admin,
        &request,
        Timestamp::now(),
    )
    .await?;
    written(&state, &caller, w).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RevealRequest {
    token: String,
    #[serde(default = "default_tenant")]
    tenant: String,
}

fn default_tenant() -> String {
    "default".into()
}

/// `POST /v1/vault/reveal` (auditor), body `{"token", "tenant"?}`: the original value
/// behind a token of the encrypt operator. Every call is logged with the caller; the
/// answer is never cached.
#[utoipa::path(
    post,
    path = "/v1/vault/reveal",
    tag = "audit",
    description = "Re-identify: the original value behind an encrypt-operator token (auditor). Body {\"token\": \"<PERSON_v…>\", \"tenant\"?: \"default\"}; answer {\"token\", \"type\", \"value\"}",
    request_body(content = serde_json::Value, description = "The token and its tenant", content_type = "application/json"),
    responses(
        (status = 200, description = "The value: token, type, value", body = serde_json::Value),
        (status = 400, description = "A body that does not parse", body = serde_json::Value),
        (status = 404, description = "No scrubbed interaction of the tenant carries the token", body = serde_json::Value),
        (status = 410, description = "The data subject was erased; the value is gone", body = serde_json::Value),
        (status = 503, description = "This server has no vault (no privacy secret, or nothing is encrypted)", body = serde_json::Value),
        (status = 401, description = "No valid token", body = serde_json::Value),
        (status = 403, description = "The token lacks the role", body = serde_json::Value),
    ),
    security(("bearer" = []))
)]
async fn vault_reveal(
    State(state): State<AppState>,
    Caller(caller): Caller,
    body: Bytes,
) -> Result<Response, ApiError> {
    caller.require(Role::Auditor)?;
    let request: RevealRequest = json_body(&body)?;
    let Some(vault) = &state.vault else {
        return Err(ApiError::unavailable(
            "re-identification is not available here: this server has no privacy secret or \
             encrypts nothing",
        ));
    };
    let outcome = vault.reveal(&request.tenant, &request.token).await;
    tracing::info!(
        caller = %caller.subject,
        tenant = %request.tenant,
        token = %request.token,
        revealed = outcome.is_ok(),
        "vault reveal"
    );
    let revealed = match outcome {
        Ok(r) => r,
        Err(RevealError::NotFound) => {
            return Err(ApiError::not_found(format!(
                "no sealed value for {} in tenant {}",
                request.token, request.tenant
            )));
        }
        Err(RevealError::Erased) => {
            return Err(ApiError::new(
                StatusCode::GONE,
                "erased",
                format!(
                    "the data subject of {} was erased; the value cannot be recovered",
                    request.token
                ),
            ));
        }
        Err(RevealError::Failed(e)) => return Err(ApiError::internal(e)),
    };
    let mut response = Json(serde_json::json!({
        "token": request.token,
        "type": revealed.entity_type,
        "value": revealed.value,
    }))
    .into_response();
    response.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    Ok(response)
}

/// `GET /v1/audit/verify` (auditor): walks the log up to the head as of the call, checks
/// positions and the hash chain; `intact: false` names the first bad position.
#[utoipa::path(
    get,
    path = "/v1/audit/verify",
    tag = "audit",
    description = "Walk the log and check positions and the hash chain (auditor)",
    responses(
        (status = 200, description = "The report: intact, counts by type, head hash, first bad position", body = serde_json::Value),
        (status = 401, description = "No valid token", body = serde_json::Value),
        (status = 403, description = "The token lacks the role", body = serde_json::Value),
    ),
    security(("bearer" = []))
)]
async fn audit_verify(
    State(state): State<AppState>,
    Caller(caller): Caller,
) -> Result<Response, ApiError> {
    caller.require(Role::Auditor)?;
    let report = state.store.verify().await?;
    let broken = report
        .broken
        .map(|b| serde_json::json!({"position": b.position, "what": b.to_string()}));
    Ok(at_position(
        report.last_position,
        serde_json::json!({
            "intact": broken.is_none(),
            "events": report.events,
            "first_position": report.first_position,
            "last_position": report.last_position,
            "head_hash": hex::encode(report.head_hash),
            "by_type": report.by_type,
            "broken": broken,
        }),
    ))
}
