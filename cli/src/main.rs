//! `insights`: the one binary operators run.
//!
//! Configuration is layered: `topology.toml` < environment variables < flags. Errors end
//! the process with one readable line on stderr and a non-zero exit code.

use std::process::ExitCode;

mod auth;
mod dlq;
mod fairness;
mod inspect;
mod jsonl;
mod model;
mod output;
mod parallel;
mod produce;
mod replay;
mod run;
mod scrub;
mod secrets;
mod sentiment;
mod settings;
mod token;
mod topics;
mod vault;

use anyhow::Result;
use clap::{Parser, Subcommand};
use insights_telemetry::{LogFormat, Telemetry};

use crate::settings::Global;

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

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the pipeline: every processor of topology.toml, or one.
    Run(run::RunArgs),
    /// Produce JSON lines of interactions (a file or stdin) to the input topic.
    Produce(produce::ProduceArgs),
    /// Find and replace personal data in JSON lines ({"text": ...}); spans on the input.
    Scrub(scrub::ScrubArgs),
    /// Re-identify a token of the encrypt operator, or erase a data subject's key.
    #[command(subcommand)]
    Vault(vault::VaultCommand),
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
    Issue(token::IssueArgs),
}

#[derive(Debug, Subcommand)]
enum TopicsCommand {
    /// Create every topic of topology.toml (existing ones are left alone).
    Create(topics::TopicsArgs),
    /// List the cluster's topics.
    List(topics::TopicsArgs),
}

#[derive(Debug, Subcommand)]
enum TrainCommand {
    /// The sentiment head on the VADER gold-standard sets (reproduces models/sentiment-minilm;
    /// with --multilingual, models/sentiment-use-multilingual).
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
    if let Ok(topology) = cli.global.topology_file() {
        insights_schemas::limit_allocations(topology.defaults.max_message_bytes);
    }
    cli.global.install_privacy_models()?;
    let global = &cli.global;
    match cli.command {
        Command::Topology(TopologyCommand::Check) => inspect::topology_check(global),
        Command::Schemas(SchemasCommand::List) => Ok(inspect::schemas_list()),
        Command::Schemas(SchemasCommand::Check) => Ok(inspect::schemas_check()),
        Command::Store(StoreCommand::Head) => inspect::store_head(global).await,
        Command::Store(StoreCommand::Verify) => inspect::store_verify(global).await,
        Command::Run(args) => run::run(global, args).await,
        Command::Replay(args) => replay::run(global, &args).await,
        Command::Token(TokenCommand::Issue(args)) => token::issue(&args),
        Command::Dlq(command) => dlq::run(global, command).await,
        Command::Produce(args) => produce::run(global, args).await,
        Command::Scrub(args) => scrub::run(args),
        Command::Vault(command) => vault::run(global, command).await,
        Command::Sentiment(args) => sentiment::run(args),
        Command::Fairness(args) => fairness::run(args),
        Command::Train(TrainCommand::Sentiment(args)) => sentiment::train(args),
        Command::Train(TrainCommand::Privacy(args)) => scrub::train(args),
        Command::Topics(TopicsCommand::Create(args)) => topics::create(global, args).await,
        Command::Topics(TopicsCommand::List(args)) => topics::list(global, args).await,
    }
}
