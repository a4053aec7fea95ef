//! Running a topology: launching every registered processor as its own worker and
//! stopping them together (the embedded broker and topics are in `topics`, producing input
//! files in `produce`, the ops endpoints in `ops`).

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

use insights_topology::{ProcessorSettings, Topology};
use tokio::sync::watch;

use crate::worker::{Shared, StopWhen, Summary, run};
use crate::{Processor, RuntimeError};

/// A processor's worker, ready to run.
pub type Launch = Box<
    dyn FnOnce(
            ProcessorSettings,
            Shared,
            StopWhen,
            Pin<Box<dyn Future<Output = ()> + Send>>,
        ) -> Pin<Box<dyn Future<Output = Result<Summary, RuntimeError>> + Send>>
        + Send,
>;

/// Wraps a processor constructor as a [`Launch`].
pub fn launcher<P, F>(make: F) -> Launch
where
    P: Processor,
    F: FnOnce() -> P + Send + 'static,
{
    Box::new(move |settings, shared, stop, shutdown| {
        Box::pin(run(make(), settings, shared, stop, shutdown))
    })
}

/// Runs the topology's processors that have a launcher in `registry` (all of them, or
/// only `only`), each as its own worker, until shutdown or, with [`StopWhen::Idle`], until
/// every one has drained its inputs. Returns each worker's summary; if a worker fails, the
/// others are stopped (each commits what it has done) and the first error is returned.
pub async fn run_processors(
    topology: &Topology,
    mut registry: BTreeMap<&'static str, Launch>,
    only: Option<&str>,
    shared: Shared,
    stop: StopWhen,
    shutdown: watch::Receiver<bool>,
) -> Result<BTreeMap<String, Summary>, RuntimeError> {
    let (stop_all, _) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    let running: Vec<String> = topology
        .processors
        .keys()
        .filter(|n| only.is_none_or(|o| o == *n) && registry.contains_key(n.as_str()))
        .cloned()
        .collect();
    // Each worker says when it has stopped; with `Idle`, a worker stops only after the
    // running processors that write its inputs have.
    let done: BTreeMap<String, watch::Sender<bool>> = running
        .iter()
        .map(|n| (n.clone(), watch::channel(false).0))
        .collect();
    for name in &running {
        let Some(launch) = registry.remove(name.as_str()) else {
            continue;
        };
        let stop = match &stop {
            StopWhen::Idle(quiet) => {
                let inputs = &topology.processors[name].inputs;
                let upstream: Vec<watch::Receiver<bool>> = running
                    .iter()
                    .filter(|u| *u != name)
                    .filter(|u| {
                        topology.processors[u.as_str()]
                            .outputs
                            .iter()
                            .any(|o| inputs.contains(o))
                    })
                    .map(|u| done[u].subscribe())
                    .collect();
                let (gate_tx, gate_rx) = watch::channel(upstream.is_empty());
                tokio::spawn(async move {
                    for mut rx in upstream {
                        let _ = rx.wait_for(|d| *d).await;
                    }
                    let _ = gate_tx.send(true);
                });
                StopWhen::IdleAfterUpstream(*quiet, gate_rx)
            }
            other => other.clone(),
        };
        let finished = done[name].clone();
        let settings = topology
            .processor(name)
            .ok_or_else(|| RuntimeError::Fatal {
                processor: name.clone(),
                message: "not declared in topology.toml".into(),
            })?;
        let mut rx = stop_all.subscribe();
        let signal: Pin<Box<dyn Future<Output = ()> + Send>> = Box::pin(async move {
            let _ = rx.wait_for(|stop| *stop).await;
        });
        let name = name.clone();
        let run = launch(settings, shared.clone(), stop, signal);
        tasks.spawn(async move {
            let result = run.await;
            finished.send_replace(true);
            (name, result)
        });
    }
    // The caller's shutdown stops every worker; so does the first worker that fails, so
    // that a supervisor sees the process end with the error instead of a half pipeline.
    let forward = {
        let stop_all = stop_all.clone();
        let mut shutdown = shutdown;
        tokio::spawn(async move {
            if shutdown.wait_for(|stop| *stop).await.is_ok() {
                stop_all.send_replace(true);
            }
        })
    };
    let mut summaries = BTreeMap::new();
    let mut first_error = None;
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((name, Ok(s))) => {
                summaries.insert(name, s);
            }
            Ok((name, Err(e))) => {
                tracing::error!(processor = %name, error = %e, "processor stopped; stopping the others");
                stop_all.send_replace(true);
                first_error.get_or_insert(e);
            }
            Err(e) => {
                stop_all.send_replace(true);
                first_error.get_or_insert(RuntimeError::Fatal {
                    processor: "?".into(),
                    message: format!("worker task failed: {e}"),
                });
            }
        }
    }
    forward.abort();
    match first_error {
        Some(e) => Err(e),
        None => Ok(summaries),
    }
}
