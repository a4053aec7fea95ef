//! The review workflow's routes: list, get, claim, release and decide review items, and
//! the background task that expires leases and escalates overdue items.

use super::*;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListQuery {
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
pub(crate) struct ItemView {
    #[serde(flatten)]
    item: ReviewItem,
    /// Seconds since review was requested.
    age_seconds: i64,
    /// Undecided past its SLA deadline.
    overdue: bool,
}

/// An item as `caller` sees it (other reviewers' opinions hidden until it is settled).
pub(crate) fn view(item: &ReviewItem, caller: &Principal, now: Timestamp) -> ItemView {
    ItemView {
        age_seconds: (now.micros() - item.requested_at.micros()).max(0) / 1_000_000,
        overdue: item.status != Status::Decided && now > item.sla_deadline,
        item: item
            .clone()
            .as_seen_by(&caller.subject, caller.roles.contains(&Role::Admin)),
    }
}

pub(crate) async fn caught_up(state: &AppState, min_position: Option<u64>) -> Result<(), ApiError> {
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
pub(crate) async fn list_reviews(
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
pub(crate) async fn get_review(
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
pub(crate) struct PositionQuery {
    /// Read-your-writes: wait until the queue reflects this position.
    #[serde(default, deserialize_with = "insights_projections::views::bounded")]
    #[param(minimum = 0, maximum = 9007199254740991.0)]
    min_position: Option<u64>,
}

/// Publishes what a request wrote and lets the queue catch up with it.
pub(crate) async fn written(
    state: &AppState,
    caller: &Principal,
    w: Written,
) -> Result<Response, ApiError> {
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
pub(crate) async fn claim_review(
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
pub(crate) async fn release_review(
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
pub(crate) async fn decide_review(
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
