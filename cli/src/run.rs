//! `insights run`: the pipeline, all in one process (the embedded default) or one part of
//! a deployment (`--processor NAME`, `--views-only`), with the HTTP API and ops endpoints.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use insights_event_store::EventStore;
use insights_runtime::{
    EmbeddedBroker, Health, KafkaSettings, Launch, Metrics, ProduceFormat, Shared, StopWhen,
    launcher, run_processors, serve_ops,
};
use insights_schemas::{Codec, Format};
use insights_topology::{ConfigError, ProcessorConfig};
use tokio::sync::watch;

use crate::assemble::sentiment::ModelArgs;
use crate::assemble::{api, privacy, response, views};
use crate::auth::{IdentityProviderArgs, SecretArgs};
use crate::settings::{self, Global, KafkaArgs};
use crate::{input, secrets};

/// `insights run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    kafka: KafkaArgs,
    /// Run only this processor (each can be its own process and replica set).
    #[arg(long)]
    processor: Option<String>,
    /// Exit when every input topic is drained, printing event counts per type.
    #[arg(long)]
    until_idle: bool,
    /// Produce this JSON-lines file of interactions first.
    #[arg(long)]
    input: Option<PathBuf>,
    /// Address of the HTTP server: the API (/v1/...) and /metrics, /healthz, /readyz;
    /// `off` to disable.
    #[arg(
        long = "listen",
        visible_alias = "ops-listen",
        default_value = "127.0.0.1:9898"
    )]
    listen: String,
    /// The pseudonym key file (64 hex digits), read when INSIGHTS_PRIVACY_KEY is unset;
    /// the embedded default creates it.
    #[arg(long, default_value = "data/privacy.key")]
    privacy_key_file: PathBuf,
    #[command(flatten)]
    sentiment: ModelArgs,
    #[command(flatten)]
    llm: response::LlmArgs,
    #[command(flatten)]
    secret: SecretArgs,
    #[command(flatten)]
    idp: IdentityProviderArgs,
    /// Do not run the projection views here (another process does). They run by default
    /// unless `--processor` picks one processor.
    #[arg(long)]
    no_projections: bool,
    /// Run no processor: only the projection views and the HTTP API (a deployment's API
    /// service; the processors run elsewhere).
    #[arg(long, conflicts_with_all = ["processor", "until_idle", "no_projections"])]
    views_only: bool,
    /// API requests per second per client (bearer token), with bursts of twice as many.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
    api_rate_limit: u32,
    /// How long a reviewer's claim lasts without a decision before the item goes back to
    /// the queue (`30m`, `2h`, …; `off`: claims never expire).
    #[arg(long, env = "INSIGHTS_REVIEW_LEASE", default_value = "30m", value_parser = Lease::parse)]
    review_lease: Lease,
    /// Do not escalate review items past their SLA deadline (by default the API raises an
    /// overdue item's priority a step and gives it the new priority's SLA, from
    /// `[processors.response.config.policy.sla_minutes]`).
    #[arg(long, env = "INSIGHTS_NO_REVIEW_ESCALATION")]
    no_review_escalation: bool,
}

/// `--review-lease`: a duration, or none (`off`).
#[derive(Debug, Clone, Copy)]
struct Lease(Option<Duration>);

impl Lease {
    fn parse(s: &str) -> Result<Lease, String> {
        if s == "off" {
            return Ok(Lease(None));
        }
        match insights_topology::parse_duration(s)? {
            d if d.is_zero() => Err("a lease must be longer than zero (or `off`)".into()),
            d => Ok(Lease(Some(d))),
        }
    }
}

impl RunArgs {
    /// What this process is, when it is one part of a deployment: its processor, or
    /// `views` for the views/API process; `None` for the whole pipeline.
    pub fn role(&self) -> Option<&str> {
        if self.views_only {
            Some("views")
        } else {
            self.processor.as_deref()
        }
    }
}

/// The processors this build can run, by their topology.toml name. Each processor crate
/// registers here as it lands; the topology may name processors this build lacks.
/// Models load when their processor launches, so `--processor privacy` loads none.
fn registry(
    privacy: (
        insights_privacy::PrivacyConfig,
        Option<Arc<insights_privacy::vault::Vault>>,
    ),
    sentiment: insights_sentiment::SentimentConfig,
    response: Option<insights_response::ResponseProcessor>,
    fairness: Option<insights_fairness::FairnessProcessor>,
) -> BTreeMap<&'static str, Launch> {
    let mut registry = BTreeMap::from([
        (
            "privacy",
            launcher(move || {
                let (config, vault) = privacy;
                let p = insights_privacy::PrivacyProcessor::new(config);
                match vault {
                    Some(v) => p.with_vault(v),
                    None => p,
                }
            }),
        ),
        (
            "sentiment",
            launcher(move || insights_sentiment::SentimentProcessor::open(&sentiment)),
        ),
    ]);
    if let Some(p) = response {
        registry.insert("response", launcher(move || p));
    }
    if let Some(p) = fairness {
        registry.insert("fairness", launcher(move || p));
    }
    registry
}

/// Runs `insights run`.
pub async fn run(global: &Global, args: RunArgs) -> Result<ExitCode> {
    let topology = settings::load_topology(global)?;
    if let Some(p) = &args.processor
        && !topology.processors.contains_key(p)
    {
        bail!(
            "processor `{p}` is not declared in {}",
            global.topology.display()
        );
    }
    let store = settings::open_store(global).await?;
    let (kafka, embedded) = match args.kafka.settings(&topology) {
        Some(k) => (k, None),
        None => {
            let broker = EmbeddedBroker::start().context("starting the embedded broker")?;
            broker.create_topics(&topology)?;
            eprintln!(
                "insights: embedded broker at {}",
                broker.bootstrap_servers()
            );
            (KafkaSettings::new(broker.bootstrap_servers()), Some(broker))
        }
    };

    if let Some(file) = &args.input {
        let topic = input::input_topic(&topology)?;
        let produced = input::produce_file(&kafka, &topic, file, ProduceFormat::Json, None).await?;
        eprintln!(
            "insights: produced {produced} interactions from {} to {topic}",
            file.display()
        );
    }

    let wanted: Vec<&String> = topology
        .processors
        .keys()
        .filter(|n| !args.views_only && args.processor.as_ref().is_none_or(|p| p == *n))
        .collect();
    // Only the privacy processor uses the pseudonym key; a process that does not run it
    // needs none (the registry's privacy entry is then never launched).
    let key = if wanted.iter().any(|n| *n == "privacy") {
        secrets::privacy_key(&args.privacy_key_file, embedded.is_some())?
    } else {
        [0; 32]
    };
    let privacy_config = privacy::config(key, &topology)?;
    // The vault's key store is opened only where privacy runs and something is encrypted.
    let vault = if wanted.iter().any(|n| *n == "privacy") && privacy::encrypts(&privacy_config) {
        let (url, _) = settings::store_url(global)?;
        Some(privacy::vault(&privacy_config, &url)?)
    } else {
        None
    };
    let metrics = Metrics::new();
    let response_config = response::config(&topology, &args.llm)?;
    let response = if wanted.iter().any(|n| *n == "response") {
        // Reviewers' approvals are restored from the store when it starts.
        let p = insights_response::ResponseProcessor::build(
            &response_config,
            Some(metrics.registry()),
            Vec::new(),
        )?;
        for note in p.notes() {
            eprintln!("insights: response: {note}");
        }
        eprintln!(
            "insights: response drafts with {}",
            p.backends().join(" → ")
        );
        Some(p)
    } else {
        None
    };
    let fairness = if wanted.iter().any(|n| *n == "fairness") {
        let config = insights_fairness::FairnessConfig::from_topology(&topology)?;
        Some(
            insights_fairness::FairnessProcessor::new(config)
                .map_err(|p| ConfigError::new("fairness", p))?,
        )
    } else {
        None
    };
    // Auditors re-identify over the API with the vault privacy runs with, else (opened only
    // if the API is served) one opened with the privacy secret if it is at hand.
    let api_vault = {
        let running = vault.clone();
        let topology = &topology;
        let key_file = args.privacy_key_file.clone();
        move || running.or_else(|| privacy::reveal_vault(&key_file, topology, global))
    };
    let sentiment = insights_sentiment::SentimentConfig {
        model: args.sentiment.choice(),
        ..insights_sentiment::SentimentConfig::from_topology(&topology)?
    };
    let registry = registry((privacy_config, vault), sentiment, response, fairness);
    let missing: Vec<&str> = wanted
        .iter()
        .filter(|n| !registry.contains_key(n.as_str()))
        .map(|n| n.as_str())
        .collect();
    if !args.views_only && missing.len() == wanted.len() {
        eprintln!(
            "insights: pipeline not yet runnable: no processor named in {} is implemented in this build ({}); \
             the runtime, store and broker are ready",
            global.topology.display(),
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
    let views = if args.processor.is_none() && !args.no_projections {
        let (url, _) = settings::store_url(global)?;
        let views = views::start(&store, &url, &topology, &metrics, stop_rx.clone()).await?;
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
    if args.listen != "off" {
        let addr: SocketAddr = args
            .listen
            .parse()
            .with_context(|| format!("--listen {:?} is not an address", args.listen))?;
        let options = api::ApiOptions {
            secret: &args.secret,
            idp: &args.idp,
            api_rate_limit: args.api_rate_limit,
            review_lease: args.review_lease.0,
            no_review_escalation: args.no_review_escalation,
        };
        let api = api::router(
            &options,
            &topology,
            &kafka,
            api::ApiSources {
                store: &store,
                views: views.clone(),
                metrics: &metrics,
            },
            api_vault,
            embedded.is_some(),
        )
        .await?;
        let mut rx = stop_rx.clone();
        let bound = serve_ops(
            addr,
            metrics.clone(),
            health.clone(),
            Arc::clone(&store),
            api,
            async move {
                let _ = rx.wait_for(|stop| *stop).await;
            },
        )
        .await
        .with_context(|| format!("serving HTTP on {addr}"))?;
        eprintln!(
            "insights: API, metrics and health on http://{bound} (a reviewer token: insights token issue --subject NAME --role reviewer)"
        );
        if embedded.is_some() && views.is_some() {
            // The laptop default: a ready link to the dashboard (a 12-hour token for
            // reading views and working the review queue; never an admin one).
            let token = args.secret.auth(false)?.issue(
                "dashboard",
                &[
                    insights_api::Role::Analyst,
                    insights_api::Role::Reviewer,
                    insights_api::Role::Auditor,
                ],
                Duration::from_secs(12 * 3600),
            )?;
            eprintln!("insights: dashboard: http://{bound}/#token={token}");
        }
    }
    if args.views_only {
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
    let stop = if args.until_idle {
        StopWhen::Idle(Duration::from_secs(3))
    } else {
        StopWhen::Shutdown
    };
    health.set_ready(true);
    let summaries = run_processors(
        &topology,
        registry,
        args.processor.as_deref(),
        shared,
        stop,
        stop_rx,
    )
    .await?;
    for (name, s) in &summaries {
        eprintln!(
            "insights: {name}: consumed {}, appended {}, already stored {}, dead-lettered {}",
            s.consumed, s.appended, s.duplicates, s.dead_lettered
        );
    }
    if args.until_idle {
        if let Some(views) = &views {
            views::settle(views, &*store, Duration::from_secs(120)).await?;
        }
        print_counts(&*store).await?;
    }
    Ok(ExitCode::SUCCESS)
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
