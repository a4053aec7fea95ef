//! `insights run`, `insights produce`, `insights topics`: the Kafka side of the CLI.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use insights_event_store::EventStore;
use insights_runtime::{
    EmbeddedBroker, Health, KafkaSettings, Launch, Metrics, ProduceFormat, Shared, StopWhen,
    create_topics, launcher, list_topics, produce_lines, run_processors, serve_ops,
};
use insights_schemas::{Codec, Format};
use insights_topology::{TopicRole, Topology};
use tokio::sync::watch;

use crate::Global;

/// Kafka connection flags, layered over topology.toml's `[kafka]`.
#[derive(Debug, Args)]
pub struct KafkaArgs {
    /// bootstrap.servers; none (here, in INSIGHTS_BROKERS or in topology.toml) starts the
    /// embedded broker.
    #[arg(long, env = "INSIGHTS_BROKERS")]
    brokers: Option<String>,
    /// A librdkafka property, KEY=VALUE; repeatable.
    #[arg(short = 'X', long = "kafka-property", value_parser = parse_property)]
    properties: Vec<(String, String)>,
}

fn parse_property(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("{s:?} is not KEY=VALUE"))
}

impl KafkaArgs {
    /// The brokers and properties: topology.toml < env < flags. `None` brokers: embedded.
    fn settings(&self, topology: &Topology) -> Option<KafkaSettings> {
        let brokers = self
            .brokers
            .clone()
            .or_else(|| topology.kafka.brokers.clone())?;
        let mut properties = topology.kafka.properties.clone();
        properties.extend(self.properties.iter().cloned());
        Some(KafkaSettings {
            brokers,
            properties,
        })
    }

    pub(crate) fn required(&self, topology: &Topology) -> Result<KafkaSettings> {
        self.settings(topology).context(
            "no Kafka brokers configured: pass --brokers, set INSIGHTS_BROKERS or [kafka] brokers",
        )
    }
}

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
    sentiment: crate::sentiment::ModelArgs,
    #[command(flatten)]
    llm: crate::response::LlmArgs,
    #[command(flatten)]
    secret: crate::api::SecretArgs,
    #[command(flatten)]
    idp: crate::api::IdentityProviderArgs,
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
    sentiment_model: insights_sentiment::pool::ModelChoice,
    response: Option<insights_response::ResponseProcessor>,
    fairness: Option<insights_fairness::FairnessProcessor>,
    topology: &Topology,
) -> BTreeMap<&'static str, Launch> {
    let output = |name: &str| {
        topology
            .processor(name)
            .and_then(|p| p.outputs.first().cloned())
    };
    let mut sentiment = insights_sentiment::SentimentConfig {
        model: sentiment_model,
        ..Default::default()
    };
    if let Some(out) = output("sentiment") {
        sentiment.output_topic = out;
    }
    if let Some(p) = topology.processor("sentiment") {
        // A Kafka batch is spread over the pool's threads in model batches of at most
        // the pool's size (32): a Kafka batch of 500 in one model call would leave the
        // other threads idle.
        sentiment.pool.max_batch = p.batch_size.clamp(1, sentiment.pool.max_batch);
    }
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

/// The secret behind pseudonyms: `INSIGHTS_PRIVACY_KEY` (64 hex digits), else the key
/// file. Only the embedded default creates a missing key file: replicas of a real
/// deployment must share one key, or the same person gets different pseudonyms.
pub(crate) fn privacy_key(file: &Path, may_create: bool) -> Result<[u8; 32]> {
    secret("INSIGHTS_PRIVACY_KEY", file, may_create, "pseudonym key")
}

/// A 32-byte secret: the environment variable `var` (64 hex digits), else `file`, which
/// is created with a random secret (mode 0600) if missing and `may_create`.
pub(crate) fn secret(var: &str, file: &Path, may_create: bool, what: &str) -> Result<[u8; 32]> {
    let parse = |hex_text: &str, from: &str| -> Result<[u8; 32]> {
        let bytes = hex::decode(hex_text.trim()).with_context(|| format!("{from} is not hex"))?;
        bytes
            .try_into()
            .map_err(|_| anyhow::anyhow!("{from} must be 32 bytes (64 hex digits)"))
    };
    if let Ok(k) = std::env::var(var) {
        return parse(&k, var);
    }
    match std::fs::read_to_string(file) {
        Ok(text) => parse(&text, &file.display().to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && may_create => {
            let mut key = [0u8; 32];
            getrandom::fill(&mut key)
                .map_err(|e| anyhow::anyhow!("no randomness for a new {what}: {e}"))?;
            if let Some(dir) = file.parent() {
                std::fs::create_dir_all(dir)?;
            }
            write_private(file, &hex::encode(key))?;
            eprintln!("insights: created a new {what} at {}", file.display());
            Ok(key)
        }
        Err(e) => Err(anyhow::anyhow!(
            "no {what}: set {var} or provide {} ({e})",
            file.display()
        )),
    }
}

fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

pub async fn run(global: &Global, args: RunArgs) -> Result<ExitCode> {
    let topology = crate::load_topology(global)?;
    if let Some(p) = &args.processor
        && !topology.processors.contains_key(p)
    {
        bail!(
            "processor `{p}` is not declared in {}",
            global.topology.display()
        );
    }
    let store = crate::open_store(global).await?;
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
        let topic = input_topic(&topology)?;
        let produced = produce_file(&kafka, &topic, file, ProduceFormat::Json, None).await?;
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
        privacy_key(&args.privacy_key_file, embedded.is_some())?
    } else {
        [0; 32]
    };
    let privacy_config = crate::privacy::config(key, &topology)?;
    // The vault's key store is opened only where privacy runs and something is encrypted.
    let vault =
        if wanted.iter().any(|n| *n == "privacy") && crate::privacy::encrypts(&privacy_config) {
            let (url, _) = crate::store_url(global)?;
            Some(crate::privacy::vault(&privacy_config, &url)?)
        } else {
            None
        };
    let metrics = Metrics::new();
    let response_config = crate::response::config(&topology, &args.llm)?;
    let response = if wanted.iter().any(|n| *n == "response") {
        let seed =
            crate::response::approved_replies(&*store, response_config.retrieval.capacity).await?;
        let p = insights_response::ResponseProcessor::build(
            &response_config,
            Some(metrics.registry()),
            seed,
        )?;
        for note in p.notes() {
            eprintln!("insights: response: {note}");
        }
        eprintln!(
            "insights: response drafts with {} ({} approved replies remembered)",
            p.backends().join(" → "),
            p.memory().read().map_or(0, |m| m.len())
        );
        Some(p)
    } else {
        None
    };
    let fairness = if wanted.iter().any(|n| *n == "fairness") {
        Some(crate::fairness::streaming(&topology, &*store).await?)
    } else {
        None
    };
    // Auditors re-identify over the API with the vault privacy runs with, else (opened only
    // if the API is served) one opened with the privacy secret if it is at hand.
    let api_vault = {
        let running = vault.clone();
        let topology = &topology;
        let key_file = args.privacy_key_file.clone();
        move || running.or_else(|| reveal_vault(&key_file, topology, global))
    };
    let registry = registry(
        (privacy_config, vault),
        args.sentiment.choice(),
        response,
        fairness,
        &topology,
    );
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
        let (url, _) = crate::store_url(global)?;
        let views = crate::views::start(&store, &url, &topology, &metrics, stop_rx.clone()).await?;
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
        let api = api_router(
            &args,
            &topology,
            &kafka,
            ApiSources {
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
            crate::views::settle(views, &*store, Duration::from_secs(120)).await?;
        }
        print_counts(&*store).await?;
    }
    Ok(ExitCode::SUCCESS)
}

/// What the API serves from, and where its metrics go.
struct ApiSources<'a> {
    store: &'a Arc<dyn EventStore>,
    views: Option<insights_projections::Views>,
    metrics: &'a insights_runtime::Metrics,
}

/// The API's routes (requests counted and timed), with the review queue following the
/// store and reviewers' events published to the topic the response processor reads them
/// from.
async fn api_router(
    args: &RunArgs,
    topology: &Topology,
    kafka: &KafkaSettings,
    sources: ApiSources<'_>,
    vault: impl FnOnce() -> Option<Arc<insights_privacy::vault::Vault>>,
    embedded: bool,
) -> Result<axum::Router> {
    let ApiSources {
        store,
        views,
        metrics,
    } = sources;
    let http = insights_api::metrics::HttpMetrics::register(metrics.registry())
        .context("registering the API's request metrics")?;
    if !embedded && !args.secret.configured() && !args.idp.configured() {
        // A processor replica against a real cluster need not serve the API; one without
        // a way to check tokens serves only the ops endpoints.
        eprintln!(
            "insights: API disabled: no JWT secret (set INSIGHTS_JWT_SECRET or --jwt-secret-file) and no identity provider (--jwks-url)"
        );
        return Ok(http.instrument(axum::Router::new()));
    }
    // The project's own tokens where a secret is (or, embedded, may be made), and the
    // identity provider's where one is configured.
    let hs256 = (embedded || args.secret.configured())
        .then(|| args.secret.auth(embedded))
        .transpose()?;
    let auth = insights_api::Either {
        hs256,
        jwks: args.idp.auth().await,
    };
    let vault = vault();
    let reviews = insights_api::ReviewQueue::with_metrics(
        insights_api::metrics::ReviewMetrics::register(metrics.registry())
            .context("registering the review metrics")?,
    );
    {
        let reviews = reviews.clone();
        let store = Arc::clone(store);
        tokio::spawn(async move {
            if let Err(e) = reviews.follow(store).await {
                eprintln!("insights: the review queue stopped following the store: {e}");
            }
        });
    }
    let publisher: Option<Arc<dyn insights_api::Publisher>> = match topology
        .topics
        .contains_key(REVIEW_DECISIONS)
    {
        true => Some(crate::api::KafkaPublisher::new(
            kafka,
            REVIEW_DECISIONS.to_owned(),
        )?),
        false => {
            eprintln!(
                "insights: no `{REVIEW_DECISIONS}` topic in the topology: reviewers' decisions are stored, not published"
            );
            None
        }
    };
    let sla = match args.no_review_escalation {
        true => None,
        false => {
            let m = crate::response::config(topology, &crate::response::LlmArgs::default())?
                .policy
                .sla_minutes;
            let minutes = |n: u32| Duration::from_secs(u64::from(n) * 60);
            Some(insights_api::reviews::Sla {
                urgent: minutes(m.urgent),
                high: minutes(m.high),
                normal: minutes(m.normal),
                low: minutes(m.low),
            })
        }
    };
    if args.review_lease.0.is_some() || sla.is_some() {
        tokio::spawn(insights_api::keep_reviews(
            Arc::clone(store),
            reviews.clone(),
            publisher.clone(),
            args.review_lease.0,
            sla,
        ));
    }
    let limit = insights_api::RateLimit {
        per_second: args.api_rate_limit,
        burst: args.api_rate_limit.saturating_mul(2),
    };
    Ok(http.instrument(insights_api::router_with(
        insights_api::AppState {
            store: Arc::clone(store),
            auth: Arc::new(auth),
            reviews,
            publisher,
            views,
            vault: vault.map(|v| {
                Arc::new(crate::privacy::StoreReidentifier::new(Arc::clone(store), v))
                    as Arc<dyn insights_api::Reidentifier>
            }),
        },
        limit,
    )))
}

/// A vault for re-identification in a process that does not run privacy (`--views-only`,
/// an API replica): only where the privacy secret can be read (never created here) and the
/// topology encrypts something; otherwise the reveal endpoint answers 503.
fn reveal_vault(
    key_file: &Path,
    topology: &Topology,
    global: &crate::Global,
) -> Option<Arc<insights_privacy::vault::Vault>> {
    let key = privacy_key(key_file, false).ok()?;
    let config = crate::privacy::config(key, topology).ok()?;
    if !crate::privacy::encrypts(&config) {
        return None;
    }
    let (url, _) = crate::store_url(global).ok()?;
    match crate::privacy::vault(&config, &url) {
        Ok(v) => Some(v),
        Err(e) => {
            eprintln!("insights: re-identification over the API is off: {e:#}");
            None
        }
    }
}

/// The topic reviewers' events are published to.
const REVIEW_DECISIONS: &str = "review.decisions";

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

/// The source topic that takes raw interactions.
fn input_topic(topology: &Topology) -> Result<String> {
    topology
        .topic_settings()
        .into_iter()
        .find(|t| t.role == TopicRole::Source && t.value_schema.as_deref() == Some("Interaction"))
        .map(|t| t.name)
        .context("topology.toml has no source topic with value_schema = \"Interaction\"")
}

/// Wire format for `insights produce`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum WireFormat {
    /// Each line as it is.
    Json,
    /// Avro single-object encoding.
    Avro,
    /// Confluent wire format (embedded-registry schema ids).
    Confluent,
}

/// `insights produce`.
#[derive(Debug, Args)]
pub struct ProduceArgs {
    #[command(flatten)]
    kafka: KafkaArgs,
    /// JSON lines of interactions; `-` reads stdin.
    #[arg(long, default_value = "-")]
    file: PathBuf,
    /// How to encode each line.
    #[arg(long, value_enum, default_value = "json")]
    format: WireFormat,
    /// At most this many messages per second.
    #[arg(long)]
    rate: Option<u32>,
    /// The topic (default: the topology's interaction source topic).
    #[arg(long)]
    topic: Option<String>,
}

pub async fn produce(global: &Global, args: ProduceArgs) -> Result<ExitCode> {
    let topology = crate::load_topology(global)?;
    let kafka = args.kafka.required(&topology)?;
    let topic = match args.topic {
        Some(t) => t,
        None => input_topic(&topology)?,
    };
    let format = match args.format {
        WireFormat::Json => ProduceFormat::Json,
        WireFormat::Avro => ProduceFormat::AvroSingleObject,
        WireFormat::Confluent => ProduceFormat::Confluent,
    };
    let n = produce_file(&kafka, &topic, &args.file, format, args.rate).await?;
    eprintln!("insights: produced {n} messages to {topic}");
    Ok(ExitCode::SUCCESS)
}

async fn produce_file(
    kafka: &KafkaSettings,
    topic: &str,
    file: &Path,
    format: ProduceFormat,
    rate: Option<u32>,
) -> Result<u64> {
    // Streamed, never held in memory; a file is counted first for the progress bar.
    let (lines, bar): (Box<dyn Iterator<Item = Vec<u8>>>, ProgressBar) = if file == Path::new("-") {
        let stdin = std::io::BufReader::new(std::io::stdin());
        (
            Box::new(stdin.split(b'\n').map_while(Result::ok)),
            ProgressBar::new_spinner(),
        )
    } else {
        let open = || {
            std::fs::File::open(file)
                .map(std::io::BufReader::new)
                .with_context(|| format!("reading {}", file.display()))
        };
        let total = open()?
            .split(b'\n')
            .map_while(Result::ok)
            .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
            .count();
        (
            Box::new(open()?.split(b'\n').map_while(Result::ok)),
            ProgressBar::new(total as u64),
        )
    };
    bar.set_style(
        ProgressStyle::with_template("{spinner} {pos}/{len} messages {per_sec} [{elapsed}]")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let produced =
        produce_lines(kafka, topic, lines, format, rate, |n| bar.set_position(n)).await?;
    bar.finish_and_clear();
    if produced.unencodable > 0 {
        eprintln!(
            "insights: {} lines could not be encoded in the chosen format and were skipped",
            produced.unencodable
        );
    }
    Ok(produced.delivered)
}

/// `insights topics create` / `list`.
#[derive(Debug, Args)]
pub struct TopicsArgs {
    #[command(flatten)]
    kafka: KafkaArgs,
}

pub async fn topics_create(global: &Global, args: TopicsArgs) -> Result<ExitCode> {
    let topology = crate::load_topology(global)?;
    let kafka = args.kafka.required(&topology)?;
    for (topic, created) in create_topics(&kafka, &topology).await? {
        println!("{topic:<28} {}", if created { "created" } else { "exists" });
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn topics_list(global: &Global, args: TopicsArgs) -> Result<ExitCode> {
    let topology = crate::load_topology(global)?;
    let kafka = args.kafka.required(&topology)?;
    let topics = tokio::task::spawn_blocking(move || list_topics(&kafka)).await??;
    for (topic, partitions) in topics {
        let declared = if topology.topics.contains_key(&topic) {
            ""
        } else {
            "  (not in topology.toml)"
        };
        println!("{topic:<28} {partitions} partitions{declared}");
    }
    Ok(ExitCode::SUCCESS)
}
