//! The log over HTTP: pages of stored events from a position (`GET /v1/events`) and a live
//! Server-Sent Events feed (`GET /v1/events/stream`) for dashboards — both filterable by
//! event type and stream.

use std::convert::Infallible;

use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use insights_event_store::envelope::from_recorded;
use insights_event_store::{EventFilter, RecordedEvent};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{ApiError, ApiQuery, AppState, Caller, Role, at_position};

/// Pages scanned at most for one answer when a stream filter drops most events.
const MAX_SCAN_PAGES: usize = 20;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct EventsQuery {
    /// Events after this position (0: from the start).
    #[serde(default, deserialize_with = "insights_projections::views::bounded")]
    #[param(minimum = 0, maximum = 9007199254740991.0)]
    from: Option<u64>,
    /// At most this many (1..=1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
    /// Comma-separated event types.
    types: Option<String>,
    /// Only this stream.
    stream: Option<String>,
}

impl EventsQuery {
    fn filter(&self) -> EventFilter {
        match &self.types {
            Some(t) => EventFilter::Types(
                t.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect(),
            ),
            None => EventFilter::All,
        }
    }
}

fn allowed(caller: &crate::Principal) -> Result<(), ApiError> {
    caller
        .require(Role::Auditor)
        .or_else(|_| caller.require(Role::Analyst))
}

/// A stored event as JSON: its envelope (with the payload as JSON) and where it is.
pub(crate) fn event_json(r: &RecordedEvent) -> Value {
    let mut v = match from_recorded(r) {
        Ok(e) => serde_json::to_value(&e).unwrap_or(Value::Null),
        // A type this build does not know: the raw fields.
        Err(_) => json!({
            "event_id": r.data.event_id,
            "event_type": r.data.event_type,
            "stream_id": r.data.stream_id,
            "payload": serde_json::from_slice::<Value>(&r.data.payload).unwrap_or(Value::Null),
        }),
    };
    if let Some(o) = v.as_object_mut() {
        o.insert("position".into(), json!(r.position));
        o.insert("stream_version".into(), json!(r.stream_version));
        o.insert("recorded_at".into(), json!(r.recorded_at));
    }
    v
}

/// `GET /v1/events?from=&limit=&types=&stream=` (auditor, analyst): the next page, and
/// `next`, the position to ask from for the page after.
#[utoipa::path(
    get,
    path = "/v1/events",
    tag = "events",
    description = "Stored events after a position, a page at a time; `next` is where the following page starts",
    params(EventsQuery),
    responses(
        (status = 200, description = "Events", body = serde_json::Value),
        (status = 400, description = "Bad parameters", body = serde_json::Value),
        (status = 401, description = "No valid token", body = serde_json::Value),
        (status = 403, description = "The token lacks the auditor or analyst role", body = serde_json::Value),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn list_events(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ApiQuery(q): ApiQuery<EventsQuery>,
) -> Result<Response, ApiError> {
    allowed(&caller)?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request("limit must be within 1..=1000"));
    }
    let filter = q.filter();
    let mut after = q.from.unwrap_or(0);
    let mut events = Vec::new();
    for _ in 0..MAX_SCAN_PAGES {
        let page = state.store.read_all(after, limit, &filter).await?;
        let Some(last) = page.last() else { break };
        after = last.position;
        for r in &page {
            if q.stream.as_deref().is_none_or(|s| s == r.data.stream_id) && events.len() < limit {
                events.push(event_json(r));
            }
        }
        if events.len() >= limit {
            break;
        }
    }
    Ok(at_position(
        after,
        json!({"next": after, "count": events.len(), "events": events}),
    ))
}

/// `GET /v1/events/stream?from=&types=&stream=` (auditor, analyst): every matching event
/// after `from`, then new ones as they are stored, as Server-Sent Events (`id` = position,
/// `event` = type, `data` = the event as JSON). A reconnecting client resumes from the
/// `Last-Event-ID` it saw.
#[utoipa::path(
    get,
    path = "/v1/events/stream",
    tag = "events",
    description = "Matching stored events, then new ones as they are stored, as Server-Sent Events (resumes from Last-Event-ID)",
    params(EventsQuery),
    responses(
        (status = 200, description = "Events", body = String, content_type = "text/event-stream"),
        (status = 400, description = "Bad parameters", body = serde_json::Value),
        (status = 401, description = "No valid token", body = serde_json::Value),
        (status = 403, description = "The token lacks the auditor or analyst role", body = serde_json::Value),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn stream_events(
    State(state): State<AppState>,
    Caller(caller): Caller,
    headers: axum::http::HeaderMap,
    ApiQuery(q): ApiQuery<EventsQuery>,
) -> Result<Response, ApiError> {
    allowed(&caller)?;
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let from = resume.or(q.from).unwrap_or(0);
    let subscription = insights_event_store::subscribe(state.store.clone(), from, q.filter());
    let stream_filter = q.stream.clone();
    Ok(Sse::new(feed(subscription, stream_filter))
        .keep_alive(KeepAlive::default())
        .into_response())
}

fn feed(
    subscription: insights_event_store::Subscription,
    stream_filter: Option<String>,
) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    futures::stream::unfold(
        (subscription, stream_filter),
        |(mut sub, stream_filter)| async move {
            loop {
                let r = match sub.next().await {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::warn!(error = %e, "event stream ended");
                        return None;
                    }
                };
                if stream_filter
                    .as_deref()
                    .is_some_and(|s| s != r.data.stream_id)
                {
                    continue;
                }
                let event = SseEvent::default()
                    .id(r.position.to_string())
                    .event(r.data.event_type.clone())
                    .data(event_json(&r).to_string());
                return Some((Ok(event), (sub, stream_filter)));
            }
        },
    )
}
