//! The ops endpoints: /metrics, /healthz and /readyz answer as operators expect.

use std::sync::Arc;

use insights_event_store::{EventStore, SqliteStore};
use insights_runtime::{Health, Metrics, serve_ops};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connects");
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .expect("writes");
    let mut response = String::new();
    s.read_to_string(&mut response).await.expect("reads");
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status line");
    let body = response
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    (status, body)
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("e.db").display());
    let store: Arc<dyn EventStore> = Arc::new(SqliteStore::open(&url, 2).await.expect("store"));
    let metrics = Metrics::new();
    metrics
        .consumed
        .with_label_values(&["privacy", "interactions.raw"])
        .inc_by(3);
    let health = Health::default();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let addr = serve_ops(
        "127.0.0.1:0".parse().expect("addr"),
        metrics,
        health.clone(),
        store,
        axum::Router::new(),
        async {
            let _ = rx.await;
        },
    )
    .await
    .expect("serves");

    assert_eq!(get(addr, "/healthz").await.0, 200);
    let (status, body) = get(addr, "/readyz").await;
    assert_eq!(status, 503, "not ready before the workers start: {body}");
    health.set_ready(true);
    let (status, body) = get(addr, "/readyz").await;
    assert_eq!((status, body.trim()), (200, "ready at position 0"));
    let (status, body) = get(addr, "/metrics").await;
    assert_eq!(status, 200);
    assert!(
        body.contains(
            r#"insights_messages_consumed_total{processor="privacy",topic="interactions.raw"} 3"#
        ),
        "{body}"
    );
    assert_eq!(get(addr, "/nope").await.0, 404);
    let _ = tx.send(());
}
