//! The projection views over HTTP (analyst; admin holds every role).
//!
//! Every answer carries the position its view reflects (`X-Store-Position` and
//! `position`): the view had applied every event up to it when the answer was read (it may
//! hold later ones too). `min_position=P` waits, at most five seconds, until the view has
//! reached P — read-your-writes after an append — and answers 503 if it has not.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::response::Response;
use insights_projections::views::{
    agreement::{self, AgreementQuery},
    anomalies::{self, AnomaliesQuery},
    fairness::{self, FairnessQuery},
    health::{self, HealthQuery},
    responses::{self, ResponsesQuery},
    sentiment::{self, SentimentQuery},
    timeline::{self, ConversationsQuery},
};
use insights_projections::{ProjectionError, Views, views_status};
use serde::Deserialize;
use serde_json::Value;

use crate::{ApiError, ApiQuery, AppState, Caller, Role, at_position};

/// How long a `min_position` request waits for a view, at most.
const MAX_CATCH_UP_WAIT: Duration = Duration::from_secs(5);

impl From<ProjectionError> for ApiError {
    fn from(e: ProjectionError) -> Self {
        match e {
            ProjectionError::BadQuery(m) => ApiError::bad_request(m),
            other => ApiError::internal(other),
        }
    }
}

fn views(state: &AppState) -> Result<&Views, ApiError> {
    state
        .views
        .as_ref()
        .ok_or_else(|| ApiError::unavailable("this server does not serve the projection views"))
}

fn analyst(caller: &crate::Principal) -> Result<(), ApiError> {
    caller
        .require(Role::Analyst)
        .or_else(|_| caller.require(Role::Auditor))
}

/// Waits for `min_position` if asked, then returns the view's position.
async fn position(
    state: &AppState,
    views: &Views,
    view: &str,
    min_position: Option<u64>,
) -> Result<u64, ApiError> {
    match min_position {
        None => Ok(views.position(view).await?),
        Some(min) => {
            crate::within_head(state, min).await?;
            views
            .wait_for(view, min, MAX_CATCH_UP_WAIT)
            .await?
            .map_err(|at| {
                ApiError::unavailable(format!(
                    "the {view} view is at position {at}, behind the requested {min}; retry shortly"
                ))
            })
        }
    }
}

/// Answers `body` with the position, also as a field.
fn answer(position: u64, mut body: Value) -> Response {
    if let Value::Object(m) = &mut body {
        m.insert("position".into(), position.into());
    }
    at_position(position, body)
}

/// Answers a view query from the cache of answers at the view's position (see
/// [`Views::cached`]); `key` is the query without its `min_position`.
async fn cached_answer<F, Fut>(
    state: &AppState,
    views: &Views,
    view: &str,
    min_position: Option<u64>,
    key: String,
    compute: F,
) -> Result<Response, ApiError>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<Value, ProjectionError>>,
{
    let at = position(state, views, view, min_position).await?;
    let body = views
        .cached(format!("{view}:{key}"), at, || async move {
            let mut body = compute().await?;
            if let Value::Object(m) = &mut body {
                m.insert("position".into(), at.into());
            }
            Ok(body)
        })
        .await?;
    Ok(at_position(at, &*body))
}

/// `GET /v1/views`: each view's version, position and lag behind the store's head.
#[utoipa::path(
    get,
    path = "/v1/views",
    tag = "views",
    description = "Each view's version, position and lag behind the store's head",
    responses(
        (status = 200, description = "The view, with `position` (also in `X-Store-Position`)", body = serde_json::Value),
        (status = 400, description = "Bad parameters", body = serde_json::Value),
        (status = 401, description = "No valid token", body = serde_json::Value),
        (status = 403, description = "The token lacks the analyst or auditor role", body = serde_json::Value),
        (status = 503, description = "The view did not reach `min_position` in time", body = serde_json::Value),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    Caller(caller): Caller,
) -> Result<Response, ApiError> {
    analyst(&caller)?;
    let v = views(&state)?;
    let (head, status) = views_status(&v.db, &*state.store, &v.list).await?;
    Ok(at_position(
        head,
        serde_json::json!({"head": head, "views": status}),
    ))
}

/// `GET /v1/views/sentiment?from=&to=&granularity=&group_by=&channel=&product=&language=&segment=&model_version=`.
#[utoipa::path(
    get,
    path = "/v1/views/sentiment",
    tag = "views",
    description = "Sentiment over time: counts by label and mean polarity per bucket, optionally one series per group",
    params(SentimentQuery),
    responses(
        (status = 200, description = "The view, with `position` (also in `X-Store-Position`)", body = serde_json::Value),
        (status = 400, description = "Bad parameters", body = serde_json::Value),
        (status = 401, description = "No valid token", body = serde_json::Value),
        (status = 403, description = "The token lacks the analyst or auditor role", body = serde_json::Value),
        (status = 503, description = "The view did not reach `min_position` in time", body = serde_json::Value),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn get_sentiment(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ApiQuery(mut q): ApiQuery<SentimentQuery>,
) -> Result<Response, ApiError> {
    analyst(&caller)?;
    let v = views(&state)?;
    let min = q.min_position.take();
    let key = format!("{q:?}");
    cached_answer(&state, v, "sentiment", min, key, || {
        sentiment::query(&v.db, &q)
    })
    .await
}

/// `GET /v1/views/responses?from=&to=`.
#[utoipa::path(
    get,
    path = "/v1/views/responses",
    tag = "views",
    description = "Response metrics: drafts, fallbacks, automatic approvals vs reviews, guardrail hits",
    params(ResponsesQuery),
    responses(
        (status = 200, description = "The view, with `position` (also in `X-Store-Position`)", body = serde_json::Value),
        (status = 400, description = "Bad parameters", body = serde_json::Value),
        (status = 401, description = "No valid token", body = serde_json::Value),
        (status = 403, description = "The token lacks the analyst or auditor role", body = serde_json::Value),
        (status = 503, description = "The view did not reach `min_position` in time", body = serde_json::Value),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn get_responses(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ApiQuery(mut q): ApiQuery<ResponsesQuery>,
) -> Result<Response, ApiError> {
    analyst(&caller)?;
    let v = views(&state)?;
    let min = q.min_position.take();
    let key = format!("{q:?}");
    cached_answer(&state, v, "responses", min, key, || {
        responses::query(&v.db, &q)
    })
    .await
}

/// `GET /v1/views/agreement?from=&to=`.
#[utoipa::path(
    get,
    path = "/v1/views/agreement",
    tag = "views",
    description = "Cohen's kappa between the two reviewers of second-opinion items (approve/edit/reject) and between reviewers' sentiment readings and the model's labels: overall, per reviewer, per day",
    params(AgreementQuery),
    responses(
        (status = 200, description = "The view, with `position` (also in `X-Store-Position`)", body = serde_json::Value),
        (status = 400, description = "Bad parameters", body = serde_json::Value),
        (status = 401, description = "No valid token", body = serde_json::Value),
        (status = 403, description = "The token lacks the analyst or auditor role", body = serde_json::Value),
        (status = 503, description = "The view did not reach `min_position` in time", body = serde_json::Value),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn get_agreement(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ApiQuery(mut q): ApiQuery<AgreementQuery>,
) -> Result<Response, ApiError> {
    analyst(&caller)?;
    let v = views(&state)?;
    let min = q.min_position.take();
    let key = format!("{q:?}");
    cached_answer(&state, v, "agreement", min, key, || {
        agreement::query(&v.db, &q)
    })
    .await
}

/// `GET /v1/views/fairness?from=&to=&attributes=&outcome=&limit=&offset=`.
#[utoipa::path(
    get,
    path = "/v1/views/fairness",
    tag = "views",
    description = "The latest fairness report per attribute set and outcome, and the alerts",
    params(FairnessQuery),
    responses(
        (status = 200, description = "The view, with `position` (also in `X-Store-Position`)", body = serde_json::Value),
        (status = 400, description = "Bad parameters", body = serde_json::Value),
        (status = 401, description = "No valid token", body = serde_json::Value),
        (status = 403, description = "The token lacks the analyst or auditor role", body = serde_json::Value),
        (status = 503, description = "The view did not reach `min_position` in time", body = serde_json::Value),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn get_fairness(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ApiQuery(mut q): ApiQuery<FairnessQuery>,
) -> Result<Response, ApiError> {
    analyst(&caller)?;
    let v = views(&state)?;
    let min = q.min_position.take();
    let key = format!("{q:?}");
    cached_answer(&state, v, "fairness", min, key, || {
        fairness::query(&v.db, &q)
    })
    .await
}

/// `GET /v1/views/health?minutes=`: the health view plus every view's lag.
#[utoipa::path(
    get,
    path = "/v1/views/health",
    tag = "views",
    description = "Pipeline health: event rates, dead letters, producers, view lag",
    params(HealthQuery),
    responses(
        (status = 200, description = "The view, with `position` (also in `X-Store-Position`)", body = serde_json::Value),
        (status = 400, description = "Bad parameters", body = serde_json::Value),
        (status = 401, description = "No valid token", body = serde_json::Value),
        (status = 403, description = "The token lacks the analyst or auditor role", body = serde_json::Value),
        (status = 503, description = "The view did not reach `min_position` in time", body = serde_json::Value),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn get_health(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ApiQuery(q): ApiQuery<HealthQuery>,
) -> Result<Response, ApiError> {
    analyst(&caller)?;
    let v = views(&state)?;
    let at = position(&state, v, "health", q.min_position).await?;
    let mut body = health::query(&v.db, &q).await?;
    let (head, status) = views_status(&v.db, &*state.store, &v.list).await?;
    if let Value::Object(m) = &mut body {
        m.insert("head".into(), head.into());
        m.insert("views".into(), serde_json::json!(status));
    }
    Ok(answer(at, body))
}

/// `GET /v1/views/anomalies?from=&to=&dimension=&value=&limit=&offset=`.
#[utoipa::path(
    get,
    path = "/v1/views/anomalies",
    tag = "views",
    description = "Sentiment anomalies, newest first",
    params(AnomaliesQuery),
    responses(
        (status = 200, description = "The view, with `position` (also in `X-Store-Position`)", body = serde_json::Value),
        (status = 400, description = "Bad parameters", body = serde_json::Value),
        (status = 401, description = "No valid token", body = serde_json::Value),
        (status = 403, description = "The token lacks the analyst or auditor role", body = serde_json::Value),
        (status = 503, description = "The view did not reach `min_position` in time", body = serde_json::Value),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn get_anomalies(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ApiQuery(mut q): ApiQuery<AnomaliesQuery>,
) -> Result<Response, ApiError> {
    analyst(&caller)?;
    let v = views(&state)?;
    let min = q.min_position.take();
    let key = format!("{q:?}");
    cached_answer(&state, v, "anomalies", min, key, || {
        anomalies::query(&v.db, &q)
    })
    .await
}

/// `GET /v1/views/conversations?from=&to=&channel=&product=&open_reviews=&limit=&offset=`.
#[utoipa::path(
    get,
    path = "/v1/views/conversations",
    tag = "views",
    description = "Conversations, latest first",
    params(ConversationsQuery),
    responses(
        (status = 200, description = "The view, with `position` (also in `X-Store-Position`)", body = serde_json::Value),
        (status = 400, description = "Bad parameters", body = serde_json::Value),
        (status = 401, description = "No valid token", body = serde_json::Value),
        (status = 403, description = "The token lacks the analyst or auditor role", body = serde_json::Value),
        (status = 503, description = "The view did not reach `min_position` in time", body = serde_json::Value),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn get_conversations(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ApiQuery(mut q): ApiQuery<ConversationsQuery>,
) -> Result<Response, ApiError> {
    analyst(&caller)?;
    let v = views(&state)?;
    let min = q.min_position.take();
    let key = format!("{q:?}");
    cached_answer(&state, v, "timeline", min, key, || {
        timeline::conversations(&v.db, &q)
    })
    .await
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct TimelineQuery {
    /// Events per page (1..=1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
    /// Events after this position.
    #[serde(default, deserialize_with = "insights_projections::views::bounded")]
    #[param(minimum = 0, maximum = 9007199254740991.0)]
    after_position: Option<u64>,
    /// Read-your-writes: wait until the view reflects this position.
    #[serde(default, deserialize_with = "insights_projections::views::bounded")]
    #[param(minimum = 0, maximum = 9007199254740991.0)]
    min_position: Option<u64>,
}

/// `GET /v1/views/conversations/{id}?limit=&after_position=`: the conversation and its
/// events in log order.
#[utoipa::path(
    get,
    path = "/v1/views/conversations/{id}",
    tag = "views",
    description = "One conversation and its events in log order",
    params(("id" = String, Path, description = "The conversation id"), TimelineQuery),
    responses(
        (status = 200, description = "The view, with `position` (also in `X-Store-Position`)", body = serde_json::Value),
        (status = 400, description = "Bad parameters", body = serde_json::Value),
        (status = 401, description = "No valid token", body = serde_json::Value),
        (status = 403, description = "The token lacks the analyst or auditor role", body = serde_json::Value),
        (status = 404, description = "No such conversation", body = serde_json::Value),
        (status = 503, description = "The view did not reach `min_position` in time", body = serde_json::Value),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn get_conversation(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<TimelineQuery>,
) -> Result<Response, ApiError> {
    analyst(&caller)?;
    let v = views(&state)?;
    let at = position(&state, v, "timeline", q.min_position).await?;
    let body = timeline::conversation(&v.db, &id, q.limit, q.after_position)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no conversation {id:?}")))?;
    Ok(answer(at, body))
}
