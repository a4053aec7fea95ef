//! The ops HTTP endpoints every process serves: `/metrics`, `/healthz`, `/readyz`, with
//! the HTTP API's routes merged in.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use insights_event_store::EventStore;

use crate::metrics::Metrics;

/// Shared health state for `/readyz`.
#[derive(Debug, Clone, Default)]
pub struct Health {
    ready: Arc<AtomicBool>,
}

impl Health {
    /// Marks the process ready (workers started, store open).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }
}

#[derive(Clone)]
struct OpsState {
    metrics: Metrics,
    health: Health,
    store: Arc<dyn EventStore>,
}

/// Serves `/metrics`, `/healthz` (the process is up) and `/readyz` (workers started and
/// the store answers), plus the routes of `api` (the HTTP API; `Router::new()` for none),
/// until `shutdown` resolves. Returns the bound address.
pub async fn serve_ops(
    addr: SocketAddr,
    metrics: Metrics,
    health: Health,
    store: Arc<dyn EventStore>,
    api: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<SocketAddr, std::io::Error> {
    let state = OpsState {
        metrics,
        health,
        store,
    };
    let app = Router::new()
        .route(
            "/metrics",
            get(|State(s): State<OpsState>| async move { s.metrics.render() }),
        )
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(|State(s): State<OpsState>| async move {
                if !s.health.ready.load(Ordering::SeqCst) {
                    return (StatusCode::SERVICE_UNAVAILABLE, "starting\n".to_owned());
                }
                match s.store.head().await {
                    Ok(h) => (
                        StatusCode::OK,
                        format!("ready at position {}\n", h.position),
                    ),
                    Err(e) => (
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!("store unavailable: {e}\n"),
                    ),
                }
            }),
        )
        .with_state(state)
        .merge(api);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!(error = %e, "ops server failed");
        }
    });
    Ok(bound)
}
