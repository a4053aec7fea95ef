//! The projection views as a run keeps them: following the log, and waiting for them to
//! catch up before `--until-idle` exits.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use insights_event_store::EventStore;
use insights_projections::views::{self, anomalies::AnomalyConfig};
use insights_projections::{Db, RunnerMetrics, Views};
use insights_topology::Topology;
use tokio::sync::watch;

/// The anomaly detector's settings: `[projections.anomalies]`, defaults otherwise.
pub fn anomaly_config(topology: Option<&Topology>) -> Result<AnomalyConfig> {
    match topology.and_then(|t| t.projections.get("anomalies")) {
        Some(table) => table
            .clone()
            .try_into()
            .context("[projections.anomalies] in the topology"),
        None => Ok(AnomalyConfig::default()),
    }
}

/// Opens the views in the store's database, brings each up to date (rebuilding those a
/// new version of the code changed) and follows the log with them until `stop`.
pub async fn start(
    store: &Arc<dyn EventStore>,
    url: &str,
    topology: &Topology,
    metrics: &insights_runtime::Metrics,
    stop: watch::Receiver<bool>,
) -> Result<Views> {
    let db = Db::connect(url, 4)
        .await
        .with_context(|| format!("opening the views' database at {url}"))?;
    let list = views::all(anomaly_config(Some(topology))?);
    let runner_metrics = RunnerMetrics::register(metrics.registry())
        .context("registering the projection metrics")?;
    insights_projections::run_all(&db, store, &list, Some(runner_metrics), stop)
        .await
        .context("starting the projection views")?;
    Ok(Views::new(db, list))
}

/// Waits (at most `timeout`) until every view has applied the whole log; the store's head
/// may move meanwhile (the anomaly view appends), so this reads it again until it holds.
pub async fn settle(views: &Views, store: &dyn EventStore, timeout: Duration) -> Result<()> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let head = store.head().await?.position;
        let mut behind = Vec::new();
        for v in &views.list {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if let Err(at) = views.wait_for(v.name(), head, left).await? {
                behind.push(format!("{} at {at}", v.name()));
            }
        }
        if !behind.is_empty() {
            anyhow::bail!("views still behind position {head}: {}", behind.join(", "));
        }
        if store.head().await?.position == head {
            return Ok(());
        }
    }
}
