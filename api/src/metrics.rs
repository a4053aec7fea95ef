//! Request metrics for the API: `insights_http_requests_total{method,route,status}` and
//! `insights_http_request_duration_seconds{method,route}` (time to the response head);
//! and the review workflow's, kept by the review queue as it folds the log
//! ([`ReviewMetrics`]).
//!
//! `route` is the route's pattern (`/v1/reviews/{id}`), never the path, so ids and
//! whatever a client puts in a URL never become label values; requests that matched no
//! route share `unmatched`. `method` is the method when the API answers it (GET, POST),
//! else `other`, so invented verbs do not mint series either.

use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use insights_schemas::{Envelope, Event};
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry};

use crate::reviews::Status;

/// The request metric families.
#[derive(Debug, Clone)]
pub struct HttpMetrics {
    requests: IntCounterVec,
    seconds: HistogramVec,
}

impl HttpMetrics {
    /// Registers the families in `registry` (once per registry).
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let requests = IntCounterVec::new(
            Opts::new("insights_http_requests_total", "API requests answered"),
            &["method", "route", "status"],
        )?;
        let seconds = HistogramVec::new(
            HistogramOpts::new(
                "insights_http_request_duration_seconds",
                "Time from an API request to its response head",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            &["method", "route"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(seconds.clone()))?;
        Ok(Self { requests, seconds })
    }

    /// `router` with every request it answers counted and timed.
    pub fn instrument(&self, router: Router) -> Router {
        router.layer(axum::middleware::from_fn_with_state(self.clone(), record))
    }
}

/// The review workflow's metric families, folded from the log by the review queue (so
/// every API replica shows the same figures, from the whole history since the store began):
/// `insights_review_items{status,priority}` (items now in each state),
/// `insights_review_escalations_total{priority}` (by the priority escalated to) and
/// `insights_review_releases_total{reason}` (`released`, `expired`).
#[derive(Debug, Clone)]
pub struct ReviewMetrics {
    items: IntGaugeVec,
    escalations: IntCounterVec,
    releases: IntCounterVec,
}

const STATUSES: [Status; 4] = [
    Status::Open,
    Status::Claimed,
    Status::Disputed,
    Status::Decided,
];
const PRIORITIES: [&str; 4] = ["low", "normal", "high", "urgent"];

impl ReviewMetrics {
    /// Registers the families in `registry` (once per registry), every known series at 0.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let items = IntGaugeVec::new(
            Opts::new(
                "insights_review_items",
                "Review items by where they are in the workflow and their priority",
            ),
            &["status", "priority"],
        )?;
        let escalations = IntCounterVec::new(
            Opts::new(
                "insights_review_escalations_total",
                "Review items that missed their SLA deadline, by the priority they were raised to",
            ),
            &["priority"],
        )?;
        let releases = IntCounterVec::new(
            Opts::new(
                "insights_review_releases_total",
                "Claims that ended without a decision: released by a person or expired",
            ),
            &["reason"],
        )?;
        for status in STATUSES {
            for priority in PRIORITIES {
                items.with_label_values(&[status.as_str(), priority]);
            }
        }
        for priority in &PRIORITIES[1..] {
            escalations.with_label_values(&[priority]);
        }
        for reason in ["released", "expired"] {
            releases.with_label_values(&[reason]);
        }
        registry.register(Box::new(items.clone()))?;
        registry.register(Box::new(escalations.clone()))?;
        registry.register(Box::new(releases.clone()))?;
        Ok(Self {
            items,
            escalations,
            releases,
        })
    }

    /// Counts one folded event that moved an item from `before` to `after`.
    pub(crate) fn observe(
        &self,
        e: &Envelope,
        before: Option<(Status, String)>,
        after: Option<(Status, String)>,
    ) {
        match &e.event {
            Event::ReviewEscalated(x) => {
                self.escalations.with_label_values(&[&x.to_priority]).inc()
            }
            Event::ReviewReleased(r) => self.releases.with_label_values(&[&r.reason]).inc(),
            _ => {}
        }
        if before == after {
            return;
        }
        if let Some((status, priority)) = before {
            self.items
                .with_label_values(&[status.as_str(), &priority])
                .dec();
        }
        if let Some((status, priority)) = after {
            self.items
                .with_label_values(&[status.as_str(), &priority])
                .inc();
        }
    }
}

async fn record(State(metrics): State<HttpMetrics>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method: &'static str = match request.method().as_str() {
        "GET" => "GET",
        "POST" => "POST",
        "HEAD" => "HEAD",
        _ => "other",
    };
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    metrics
        .seconds
        .with_label_values(&[method, &route])
        .observe(started.elapsed().as_secs_f64());
    metrics
        .requests
        .with_label_values(&[method, &route, response.status().as_str()])
        .inc();
    response
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;

    #[tokio::test]
    async fn requests_are_counted_by_route_pattern_method_and_status() {
        let registry = Registry::new();
        let metrics = HttpMetrics::register(&registry).expect("registers");
        let router =
            metrics.instrument(Router::new().route("/v1/reviews/{id}", get(|| async { "ok" })));
        for (method, uri) in [
            ("GET", "/v1/reviews/abc"),
            ("GET", "/v1/reviews/def"),
            ("POST", "/v1/reviews/abc"),
            ("BREW", "/secret/customer-42"),
        ] {
            let request = Request::builder()
                .method(method)
                .uri(uri)
                .body(Body::empty())
                .expect("request");
            router.clone().oneshot(request).await.expect("answers");
        }
        let text = prometheus::TextEncoder::new()
            .encode_to_string(&registry.gather())
            .expect("encodes");
        assert!(
            text.contains(r#"insights_http_requests_total{method="GET",route="/v1/reviews/{id}",status="200"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"insights_http_requests_total{method="POST",route="/v1/reviews/{id}",status="405"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(
                r#"insights_http_requests_total{method="other",route="unmatched",status="404"} 1"#
            ),
            "{text}"
        );
        assert!(
            !text.contains("customer-42") && !text.contains("abc"),
            "{text}"
        );
        assert!(text.contains("insights_http_request_duration_seconds_bucket"));
    }
}
