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
//! - `review_routes` — the review workflow's handlers and the lease/SLA keeper.
//! - `audit_routes` — chain verification and re-identification.
//! - `events`, `views` — the event log and the projection views.
//! - this file — the router, the shared state, and the extractors that turn bad input
//!   into JSON errors.
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

mod audit_routes;
pub mod auth;
pub mod error;
mod events;
pub mod jwks;
pub mod metrics;
mod openapi;
mod review_routes;
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

use audit_routes::{audit_verify, vault_reveal};
pub use auth::{Authenticator, Either, JwtAuth, Principal, Role};
pub use error::ApiError;
pub use review_routes::keep_reviews;
use review_routes::{claim_review, decide_review, get_review, list_reviews, release_review};
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

/// A JSON answer carrying the store position it reflects.
fn at_position(position: u64, body: impl Serialize) -> Response {
    let mut response = Json(body).into_response();
    if let Ok(v) = HeaderValue::from_str(&position.to_string()) {
        response.headers_mut().insert("x-store-position", v);
    }
    response
}
