//! `insights`: the one binary operators run.
//!
//! Configuration is layered: `topology.toml` < environment variables < flags. Errors end
//! the process with one readable line on stderr and a non-zero exit code.

use std::path::PathBuf;
use std::process::ExitCode;

mod api;
mod dlq;
mod fairness;
mod jsonl;
mod pipeline;
mod privacy;
mod replay;
mod reprocess;
mod republish;
mod response;
mod scrub;
mod sentiment;
mod views;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use insights_event_store::EventStore;
use insights_telemetry::{LogFormat, Telemetry};
use insights_topology::{Topology, validate};

#[derive(Debug, Parser)]
#[command(
    name = "insights",
    version,
    about = "CustomerAI Insights: an event-sourced pipeline for customer-service interactions"
)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Args)]
pub(crate) struct Global {
    /// The topology file.
    #[arg(
        long,
        global = true,
        env = "INSIGHTS_TOPOLOGY",
        default_value = "topology.toml"
    )]
    pub(crate) topology: PathBuf,
    /// Event store URL (sqlite://PATH or postgres://...); overrides [store] url.
    #[arg(long, global = true, env = "INSIGHTS_STORE_URL")]
    pub(crate) store: Option<String>,
    /// A privacy tagger written by `insights train privacy` (its tagger.bin), used in place
    /// of the one built in: `PATH` for English, `LANG=PATH` for another language (de, fr,
    /// es, nl). Repeatable; comma-separated in the variable.
    #[arg(
        long,
        global = true,
        env = "INSIGHTS_PRIVACY_MODEL",
        value_delimiter = ','
    )]
    pub(crate) privacy_model: Vec<String>,
    /// Log lines on stderr as text or as JSON objects (one per line).
    #[arg(
        long,
        global = true,
        env = "INSIGHTS_LOG_FORMAT",
        default_value = "text",
        value_parser = ["text", "json"]
    )]
    pub(crate) log_format: String,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the pipeline: every processor of topology.toml, or one.
    Run(pipeline::RunArgs),
    /// Produce JSON lines of interactions (a file or stdin) to the input topic.
    Produce(pipeline::ProduceArgs),
    /// Find and replace personal data in JSON lines ({"text": ...}); spans on the input.
    Scrub(scrub::ScrubArgs),
    /// Re-identify a token of the encrypt operator, or erase a data subject's key.
    #[command(subcommand)]
    Vault(privacy::VaultCommand),
    /// Score the sentiment of JSON lines ({"text": ...}) with the processor's model.
    Sentiment(sentiment::SentimentArgs),
    /// Fairness metrics (Fairlearn/AIF360 definitions) over a CSV of outcomes, as JSON.
    Fairness(fairness::FairnessArgs),
    /// Train a model and write it with its model card.
    #[command(subcommand)]
    Train(TrainCommand),
    /// Create or list the topology's topics on the cluster.
    #[command(subcommand)]
    Topics(TopicsCommand),
    /// Check topology.toml.
    #[command(subcommand)]
    Topology(TopologyCommand),
    /// Inspect the Avro schemas.
    #[command(subcommand)]
    Schemas(SchemasCommand),
    /// Inspect the event store.
    #[command(subcommand)]
    Store(StoreCommand),
    /// Issue API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Dead-lettered messages: re-drive them through the pipeline once their cause is fixed.
    #[command(subcommand)]
    Dlq(dlq::DlqCommand),
    /// The event log for audit: verify it (or an exported bundle), export a bundle.
    Replay(replay::ReplayArgs),
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Print a bearer token for the HTTP API, signed with the JWT secret.
    Issue(api::IssueArgs),
}

#[derive(Debug, Subcommand)]
enum TopicsCommand {
    /// Create every topic of topology.toml (existing ones are left alone).
    Create(pipeline::TopicsArgs),
    /// List the cluster's topics.
    List(pipeline::TopicsArgs),
}

#[derive(Debug, Subcommand)]
enum TrainCommand {
    /// The sentiment head on the VADER gold-standard sets (reproduces models/sentiment-minilm).
    Sentiment(sentiment::TrainSentimentArgs),
    /// The privacy tagger on presidio-evaluator sentences (reproduces
    /// processors/privacy/model/tagger.bin).
    Privacy(scrub::TrainPrivacyArgs),
}

#[derive(Debug, Subcommand)]
enum TopologyCommand {
    /// Parse and validate the topology as a graph.
    Check,
}

#[derive(Debug, Subcommand)]
enum SchemasCommand {
    /// List schemas with their versions, fingerprints and embedded-registry ids.
    List,
    /// Check every schema against its released versions.
    Check,
}

#[derive(Debug, Subcommand)]
enum StoreCommand {
    /// Print the head position and hash.
    Head,
    /// Walk the whole log and verify positions and the hash chain; exits 1 naming the
    /// first bad position.
    Verify,
}

/// mimalloc instead of glibc's malloc: the pipeline allocates many small short-lived
/// buffers across threads (records, envelopes, rows), and glibc's arenas spent about a fifth
/// of the embedded pipeline's CPU in malloc and free (perf, 10,000 interactions).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Logs (stderr) and, when OTEL_EXPORTER_OTLP_ENDPOINT is set, traces: before the async
    // runtime, which the exporter's HTTP client must not be created in.
    let format = if cli.global.log_format == "json" {
        LogFormat::Json
    } else {
        LogFormat::Text
    };
    let telemetry = match Telemetry::init(format, &service_name(&cli.command)) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("insights: {e}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("insights: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = match runtime.block_on(run(cli)) {
        Ok(code) => code,
        // The reader went away (`insights replay … | head`): not an error of ours.
        Err(e) if broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("insights: {e:#}");
            ExitCode::FAILURE
        }
    };
    telemetry.shutdown();
    code
}

/// The default `service.name` of this process's spans: `insights-PROCESSOR` for one
/// processor (`run --processor`), `insights-views` for the views/API process,
/// `insights-produce`, and `insights` for the rest (the embedded pipeline).
fn service_name(command: &Command) -> String {
    match command {
        Command::Run(args) => match args.role() {
            Some(role) => format!("insights-{role}"),
            None => "insights".into(),
        },
        Command::Produce(_) => "insights-produce".into(),
        Command::Dlq(_) => "insights-dlq".into(),
        _ => "insights".into(),
    }
}

fn broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            || cause
                .downcast_ref::<serde_json::Error>()
                .and_then(serde_json::Error::io_error_kind)
                == Some(std::io::ErrorKind::BrokenPipe)
    })
}

async fn run(cli: Cli) -> Result<ExitCode> {
    // Before any decoder runs: nothing read from a message may make it allocate more than
    // the largest message accepted (errors in the topology are reported by the command).
    if let Ok(topology) = Topology::load(&cli.global.topology) {
        insights_schemas::limit_allocations(topology.defaults.max_message_bytes);
    }
    for choice in &cli.global.privacy_model {
        let (language, path) = match choice.split_once('=') {
            Some((language, path)) => (language, path),
            None => ("en", choice.as_str()),
        };
        let bytes =
            std::fs::read(path).with_context(|| format!("reading the privacy model {path}"))?;
        let model = insights_privacy::tagger::Model::from_bytes(&bytes)
            .map_err(|e| anyhow::anyhow!("the privacy model {path}: {e}"))?;
        insights_privacy::use_model_for(language, model).map_err(anyhow::Error::msg)?;
    }
    match cli.command {
        Command::Topology(TopologyCommand::Check) => {
            let topology = load_topology(&cli.global)?;
            let problems = processor_config_problems(&topology);
            if !problems.is_empty() {
                bail!("{}: {}", cli.global.topology.display(), problems.join("; "));
            }
            println!(
                "{}: {} topics, {} processors, valid",
                cli.global.topology.display(),
                topology.topics.len(),
                topology.processors.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Schemas(SchemasCommand::List) => {
            for v in insights_schemas::Catalogue::get().all_current() {
                println!(
                    "{:<22} v{:<3} fingerprint {:016x}  id {}",
                    v.name, v.version, v.fingerprint, v.local_id
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Schemas(SchemasCommand::Check) => {
            let errors = insights_schemas::compat::check(insights_schemas::Catalogue::get());
            if errors.is_empty() {
                println!("every schema equals its latest release and reads all earlier releases");
                return Ok(ExitCode::SUCCESS);
            }
            for e in &errors {
                eprintln!("insights: {e}");
            }
            Ok(ExitCode::FAILURE)
        }
        Command::Store(cmd) => {
            let store = open_store(&cli.global).await?;
            match cmd {
                StoreCommand::Head => {
                    let head = store.head().await?;
                    println!("position {} hash {}", head.position, hex(&head.hash));
                    Ok(ExitCode::SUCCESS)
                }
                StoreCommand::Verify => verify(&*store).await,
            }
        }
        Command::Run(args) => pipeline::run(&cli.global, args).await,
        Command::Replay(args) => {
            let topology = Topology::load(&cli.global.topology).ok();
            match args.needs_store() {
                true => {
                    let store = open_store(&cli.global).await?;
                    let (url, _) = store_url(&cli.global)?;
                    replay::run(Some((&store, url.as_str())), topology.as_ref(), &args).await
                }
                false => replay::run(None, topology.as_ref(), &args).await,
            }
        }
        Command::Token(TokenCommand::Issue(args)) => {
            api::issue(&args)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Dlq(command) => dlq::run(&cli.global, command).await,
        Command::Produce(args) => pipeline::produce(&cli.global, args).await,
        Command::Scrub(args) => scrub::run(args),
        Command::Vault(command) => privacy::run(&cli.global, command).await,
        Command::Sentiment(args) => sentiment::run(args),
        Command::Fairness(args) => fairness::run(args),
        Command::Train(TrainCommand::Sentiment(args)) => sentiment::train(args),
        Command::Train(TrainCommand::Privacy(args)) => scrub::train(args),
        Command::Topics(TopicsCommand::Create(args)) => {
            pipeline::topics_create(&cli.global, args).await
        }
        Command::Topics(TopicsCommand::List(args)) => {
            pipeline::topics_list(&cli.global, args).await
        }
    }
}

pub(crate) fn load_topology(global: &Global) -> Result<Topology> {
    let topology = Topology::load(&global.topology)?;
    validate(&topology, insights_schemas::schema_exists)
        .map_err(|e| anyhow::anyhow!("{}", e.to_string().replace('\n', ";")))?;
    Ok(topology)
}

/// Every processor's `config` table parsed and checked as `insights run` does it (without
/// flags, environment or secrets), one problem per entry.
fn processor_config_problems(topology: &Topology) -> Vec<String> {
    let has = |name: &str| topology.processors.contains_key(name);
    let checks = [
        // The key only derives pseudonyms; any key checks the table.
        has("privacy").then(|| privacy::config([0; 32], topology).map(drop)),
        has("response")
            .then(|| response::config(topology, &response::LlmArgs::default()).map(drop)),
        has("fairness").then(|| fairness::config(topology).map(drop)),
    ];
    checks
        .into_iter()
        .flatten()
        .filter_map(|r| r.err().map(|e| format!("{e:#}")))
        .collect()
}

/// The event store's URL and pool size: `--store`/`INSIGHTS_STORE_URL`, else the topology's.
pub(crate) fn store_url(global: &Global) -> Result<(String, u32)> {
    let (url, max) = match &global.store {
        Some(url) => (url.clone(), 8),
        None => {
            let topology = Topology::load(&global.topology)?;
            (topology.store.url, topology.store.max_connections)
        }
    };
    if url.is_empty() {
        bail!("no event store configured: set [store] url, INSIGHTS_STORE_URL or --store");
    }
    Ok((url, max))
}

pub(crate) async fn open_store(global: &Global) -> Result<std::sync::Arc<dyn EventStore>> {
    let (url, max) = store_url(global)?;
    insights_event_store::open(&url, max)
        .await
        .with_context(|| format!("opening the event store at {url}"))
}

async fn verify(store: &dyn EventStore) -> Result<ExitCode> {
    Ok(replay::summarize(&store.verify().await?))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
