//! A plan, run: the embedded broker where no cluster is named, the processors this
//! process runs, the views and the HTTP API, until the input is drained or a signal.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use insights_event_store::EventStore;
use insights_privacy::vault::Vault;
use insights_runtime::{
    EmbeddedBroker, Health, KafkaSettings, Launch, Metrics, ProduceFormat, Shared, StopWhen,
    launcher, run_processors, serve_ops,
};
use insights_schemas::{Codec, Format};
use insights_topology::ConfigError;
use tokio::sync::watch;

use crate::plan::{Plan, Processors, Role};
use crate::{api, input, privacy, views};

/// Runs `plan`: exit code 2 where the topology names no processor this build has.
pub async fn run(plan: Plan) -> Result<ExitCode> {
    let store = insights_event_store::open(&plan.store.url, plan.store.max_connections)
        .await
        .with_context(|| format!("opening the event store at {}", plan.store.url))?;
    let (kafka, _embedded) = match &plan.kafka {
        Some(k) => (k.clone(), None),
        None => {
            let broker = EmbeddedBroker::start().context("starting the embedded broker")?;
            broker.create_topics(&plan.topology)?;
            eprintln!(
                "insights: embedded broker at {}",
                broker.bootstrap_servers()
            );
            (KafkaSettings::new(broker.bootstrap_servers()), Some(broker))
        }
    };

    if let Some(file) = &plan.input {
        let topic = input::input_topic(&plan.topology)?;
        let produced = input::produce_file(&kafka, &topic, file, ProduceFormat::Json, None).await?;
        eprintln!(
            "insights: produced {produced} interactions from {} to {topic}",
            file.display()
        );
    }

    let metrics = Metrics::new();
    let Assembled {
        launches: registry,
        vault,
    } = assemble(&plan, &metrics)?;
    let wanted: Vec<&str> = plan
        .topology
        .processors
        .keys()
        .map(String::as_str)
        .filter(|n| plan.role.runs(n))
        .collect();
    let missing: Vec<&str> = wanted
        .iter()
        .copied()
        .filter(|n| !registry.contains_key(n))
        .collect();
    if plan.role != Role::Views && missing.len() == wanted.len() {
        eprintln!(
            "insights: pipeline not yet runnable: no processor named in {} is implemented in this build ({}); \
             the runtime, store and broker are ready",
            plan.topology_path.display(),
            missing.join(", ")
        );
        return Ok(ExitCode::from(2));
    }
    if !missing.is_empty() {
        eprintln!(
            "insights: not implemented in this build, skipped: {}",
            missing.join(", ")
        );
    }

    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        eprintln!("insights: shutting down: draining in-flight batches");
        let _ = stop_tx.send(true);
    });
    let views = if plan.projections {
        let views = views::start(
            &store,
            &plan.store.url,
            &plan.topology,
            &metrics,
            stop_rx.clone(),
        )
        .await?;
        eprintln!(
            "insights: projection views following the store: {}",
            views
                .list
                .iter()
                .map(|v| v.name())
                .collect::<Vec<_>>()
                .join(", ")
        );
        Some(views)
    } else {
        None
    };
    let health = Health::default();
    if let Some(http) = &plan.http {
        let router = match &http.api {
            Some(options) => {
                // Auditors re-identify with the vault privacy runs with, else one opened
                // with the pseudonym key where it is at hand.
                let vault = vault.clone().or_else(|| {
                    privacy::reveal_vault(options.reveal_key?, &plan.topology, &plan.store.url)
                });
                api::router(
                    options,
                    &plan.topology,
                    &kafka,
                    api::ApiSources {
                        store: &store,
                        views: views.clone(),
                        metrics: &metrics,
                    },
                    vault,
                )
                .await?
            }
            None => api::ops_only(&metrics)?,
        };
        let mut rx = stop_rx.clone();
        let bound = serve_ops(
            http.addr,
            metrics.clone(),
            health.clone(),
            Arc::clone(&store),
            router,
            async move {
                let _ = rx.wait_for(|stop| *stop).await;
            },
        )
        .await
        .with_context(|| format!("serving HTTP on {}", http.addr))?;
        eprintln!(
            "insights: API, metrics and health on http://{bound} (a reviewer token: insights token issue --subject NAME --role reviewer)"
        );
        if let Some(link) = http
            .api
            .as_ref()
            .and_then(|a| api::dashboard_link(a, bound))
        {
            eprintln!("insights: dashboard: {}", link?);
        }
    }
    if plan.role == Role::Views {
        health.set_ready(true);
        let mut rx = stop_rx.clone();
        let _ = rx.wait_for(|stop| *stop).await;
        return Ok(ExitCode::SUCCESS);
    }
    let shared = Shared {
        store: Arc::clone(&store),
        kafka,
        metrics,
        codec: Codec::new(),
        output_format: Format::SingleObject,
    };
    let stop = if plan.until_idle {
        StopWhen::Idle(Duration::from_secs(3))
    } else {
        StopWhen::Shutdown
    };
    health.set_ready(true);
    let only = match &plan.role {
        Role::Processor(name) => Some(name.as_str()),
        _ => None,
    };
    let summaries = run_processors(&plan.topology, registry, only, shared, stop, stop_rx).await?;
    for (name, s) in &summaries {
        eprintln!(
            "insights: {name}: consumed {}, appended {}, already stored {}, dead-lettered {}",
            s.consumed, s.appended, s.duplicates, s.dead_lettered
        );
    }
    if plan.until_idle {
        if let Some(views) = &views {
            views::settle(views, &*store, Duration::from_secs(120)).await?;
        }
        print_counts(&*store).await?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The processors this process runs.
struct Assembled {
    /// By their topology.toml name, ready to launch (models load when their processor
    /// launches).
    launches: BTreeMap<&'static str, Launch>,
    /// The vault privacy seals with, if it runs here and seals anything.
    vault: Option<Arc<Vault>>,
}

fn assemble(plan: &Plan, metrics: &Metrics) -> Result<Assembled> {
    let Processors {
        privacy: privacy_config,
        sentiment,
        response,
        fairness,
    } = &plan.processors;
    let mut registry = BTreeMap::new();
    let mut vault = None;
    if let Some(config) = privacy_config.clone() {
        // The vault's key store is opened only where something is sealed.
        if config.encrypts() {
            vault = Some(privacy::vault(&config, &plan.store.url)?);
        }
        let with = vault.clone();
        registry.insert(
            "privacy",
            launcher(move || {
                let p = insights_privacy::PrivacyProcessor::new(config);
                match with {
                    Some(v) => p.with_vault(v),
                    None => p,
                }
            }),
        );
    }
    if let Some(config) = sentiment.clone() {
        registry.insert(
            "sentiment",
            launcher(move || insights_sentiment::SentimentProcessor::open(&config)),
        );
    }
    if let Some(plan) = response {
        // Reviewers' approvals are restored from the store when it starts.
        let chat = insights_openai::chat_for(&plan.config.openai, plan.api_key.clone())
            .map_err(|e| ConfigError::new("response", vec![e]))?;
        let p = insights_response::ResponseProcessor::build(
            &plan.config,
            Some(metrics.registry()),
            Vec::new(),
            chat,
        )?;
        for note in p.notes() {
            eprintln!("insights: response: {note}");
        }
        eprintln!(
            "insights: response drafts with {}",
            p.backends().join(" → ")
        );
        registry.insert("response", launcher(move || p));
    }
    if let Some(config) = fairness.clone() {
        let p = insights_fairness::FairnessProcessor::new(config)
            .map_err(|p| ConfigError::new("fairness", p))?;
        registry.insert("fairness", launcher(move || p));
    }
    Ok(Assembled {
        launches: registry,
        vault,
    })
}

async fn print_counts(store: &dyn EventStore) -> Result<()> {
    let report = store.verify().await?;
    for (event_type, n) in &report.by_type {
        println!("{event_type:<22} {n}");
    }
    println!("{:<22} {}", "total", report.events);
    if let Some(b) = report.broken {
        bail!("chain broken at {b}");
    }
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
