//! `insights replay`: the event log for audit. `--verify` walks the whole log (the store,
//! or an exported bundle with `--file`), checks positions and the hash chain, prints a
//! summary and exits 1 naming the first bad position; `--export FILE` writes an audit
//! bundle that verifies offline (its format: `insights_event_store::bundle`).

use std::io::{BufReader, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Args;
use insights_event_store::bundle;
use insights_event_store::{EventStore, VerifyReport};

use crate::output;
use crate::settings::{self, Global};

mod rebuild;
mod reprocess;
mod republish;

/// `insights replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Walk the whole log, verify positions and the hash chain, print a summary; exit 1
    /// naming the first bad position.
    #[arg(long)]
    verify: bool,
    /// With --verify: check this exported bundle instead of the store (offline).
    #[arg(long, requires = "verify")]
    file: Option<PathBuf>,
    /// Write an audit bundle of the whole log (JSON lines + head) to FILE.
    #[arg(long, conflicts_with = "file")]
    export: Option<PathBuf>,
    #[command(flatten)]
    rebuild: rebuild::RebuildArgs,
    #[command(flatten)]
    to_topic: republish::ToTopicArgs,
    #[command(flatten)]
    reprocess: reprocess::ReprocessArgs,
}

impl ReplayArgs {
    /// Whether the store is needed (a bundle verifies without it).
    pub fn needs_store(&self) -> bool {
        self.export.is_some()
            || (self.verify && self.file.is_none())
            || self.rebuild.wanted()
            || self.to_topic.wanted()
            || self.reprocess.wanted()
    }
}

/// Runs `insights replay`: the store is opened only where it is needed (a bundle
/// verifies without it), and the topology is optional (defaults where it is missing).
pub async fn run(global: &Global, args: &ReplayArgs) -> Result<ExitCode> {
    let topology = global.topology_file().ok().cloned();
    let opened = match args.needs_store() {
        true => {
            let store = settings::open_store(global).await?;
            let (url, _) = settings::store_url(global)?;
            Some((store, url))
        }
        false => None,
    };
    let store = opened.as_ref().map(|(s, url)| (s, url.as_str()));
    let topology = topology.as_ref();
    if !args.verify
        && args.export.is_none()
        && !args.rebuild.wanted()
        && !args.to_topic.wanted()
        && !args.reprocess.wanted()
    {
        bail!(
            "nothing to do: pass --verify [--file BUNDLE], --export FILE, --rebuild VIEW [--as-of POSITION], \
             --to-topic TOPIC [--from P] [--to Q] [--types A,B] or --reprocess sentiment"
        );
    }
    if args.reprocess.wanted() {
        let (store, _) = store.context("--reprocess needs the store")?;
        let done = reprocess::run(&**store, &args.reprocess).await?;
        eprintln!(
            "insights: reprocessed {} inputs: appended {}, already stored {}, refused {}",
            done.inputs, done.appended, done.already, done.refused
        );
    }
    if args.rebuild.wanted() {
        let (store, url) = store.context("--rebuild needs the store")?;
        let anomalies = insights_app::views::anomaly_config(topology)?;
        rebuild::rebuild(store, url, anomalies, &args.rebuild).await?;
    }
    if args.to_topic.wanted() {
        let (store, _) = store.context("--to-topic needs the store")?;
        let topology = topology.context("--to-topic needs the topology (for the brokers)")?;
        let n = republish::run(&**store, topology, &args.to_topic).await?;
        eprintln!("insights: published {n} events");
    }
    let store = store.map(|(s, _)| &**s);
    if let Some(path) = &args.export {
        let store = store.context("--export needs the store")?;
        export(store, path).await?;
    }
    if !args.verify {
        return Ok(ExitCode::SUCCESS);
    }
    let report = match &args.file {
        Some(path) => verify_bundle(path)?,
        None => verify_store(store.context("--verify needs the store or --file")?).await?,
    };
    Ok(output::summarize(&report))
}

async fn verify_store(store: &dyn EventStore) -> Result<VerifyReport> {
    let head = store.head().await?;
    let bar = output::bar(head.position, "verifying");
    let report = insights_event_store::verify_walk(store, &|at, _| bar.set_position(at)).await?;
    bar.finish_and_clear();
    Ok(report)
}

async fn export(store: &dyn EventStore, path: &PathBuf) -> Result<()> {
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut out = BufWriter::new(file);
    let bar = output::bar(store.head().await?.position, "exporting");
    let head = bundle::export(store, &mut out, |at| bar.set_position(at)).await?;
    bar.finish_and_clear();
    out.flush()?;
    eprintln!(
        "insights: exported positions 1..{} to {} (head {})",
        head.position,
        path.display(),
        hex::encode(head.hash)
    );
    Ok(())
}

fn verify_bundle(path: &PathBuf) -> Result<VerifyReport> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let bar = output::bar(len, "verifying");
    let report = bundle::verify(BufReader::new(file), |read| bar.set_position(read))
        .with_context(|| path.display().to_string());
    bar.finish_and_clear();
    report
}
