//! Request metrics for the API: `insights_http_requests_total{method,route,status}` and
//! `insights_http_request_duration_seconds{method,route}` (time to the response head).
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
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

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
