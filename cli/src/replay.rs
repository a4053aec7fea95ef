//! `insights replay`: the event log for audit. `--verify` walks the whole log (the store,
//! or an exported bundle with `--file`), checks positions and the hash chain, prints a
//! summary and exits 1 naming the first bad position; `--export FILE` writes an audit
//! bundle that verifies offline (its format: `insights_event_store::bundle`).

use std::io::{BufReader, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use insights_event_store::bundle;
use insights_event_store::{EventFilter, EventStore, Head, PAGE_SIZE, VerifyReport};

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
    rebuild: crate::views::RebuildArgs,
    #[command(flatten)]
    to_topic: crate::republish::ToTopicArgs,
    #[command(flatten)]
    reprocess: crate::reprocess::ReprocessArgs,
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

pub(crate) fn bar(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} events ({per_sec})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(what.to_owned());
    bar
}

/// Runs `insights replay`.
pub async fn run(
    store: Option<(&Arc<dyn EventStore>, &str)>,
    topology: Option<&insights_topology::Topology>,
    args: &ReplayArgs,
) -> Result<ExitCode> {
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
        let done = crate::reprocess::run(&**store, &args.reprocess).await?;
        eprintln!(
            "insights: reprocessed {} inputs: appended {}, already stored {}, refused {}",
            done.inputs, done.appended, done.already, done.refused
        );
    }
    if args.rebuild.wanted() {
        let (store, url) = store.context("--rebuild needs the store")?;
        let anomalies = crate::views::anomaly_config(topology)?;
        crate::views::rebuild(store, url, anomalies, &args.rebuild).await?;
    }
    if args.to_topic.wanted() {
        let (store, _) = store.context("--to-topic needs the store")?;
        let topology = topology.context("--to-topic needs the topology (for the brokers)")?;
        let n = crate::republish::run(&**store, topology, &args.to_topic).await?;
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
    Ok(summarize(&report))
}

async fn verify_store(store: &dyn EventStore) -> Result<VerifyReport> {
    let head = store.head().await?;
    let bar = bar(head.position, "verifying");
    let report = insights_event_store::verify_walk(store, &|at, _| bar.set_position(at)).await?;
    bar.finish_and_clear();
    Ok(report)
}

/// Prints a verification summary; the exit code says whether the chain holds.
pub fn summarize(report: &VerifyReport) -> ExitCode {
    let types: Vec<String> = report
        .by_type
        .iter()
        .map(|(t, n)| format!("{t}={n}"))
        .collect();
    println!(
        "events {} positions {}..{} head {} types [{}]",
        report.events,
        report.first_position,
        report.last_position,
        hex::encode(report.head_hash),
        types.join(", ")
    );
    match &report.broken {
        None => {
            println!("chain intact");
            ExitCode::SUCCESS
        }
        Some(b) => {
            eprintln!("insights: chain broken at {b}");
            ExitCode::FAILURE
        }
    }
}

async fn export(store: &dyn EventStore, path: &PathBuf) -> Result<()> {
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut out = BufWriter::new(file);
    bundle::write_header(&mut out)?;
    let head = store.head().await?;
    let bar = bar(head.position, "exporting");
    let mut after = 0;
    let mut last_hash = insights_event_store::GENESIS_HASH;
    // Export up to the head read at the start: a consistent cut of a log that may grow.
    while after < head.position {
        let page = store.read_all(after, PAGE_SIZE, &EventFilter::All).await?;
        let Some(last) = page.last() else { break };
        for e in page.iter().take_while(|e| e.position <= head.position) {
            bundle::write_event(&mut out, e)?;
            after = e.position;
            last_hash = e.hash;
        }
        if last.position > head.position {
            break;
        }
        bar.set_position(after);
    }
    bar.finish_and_clear();
    bundle::write_head(
        &mut out,
        &Head {
            position: after,
            hash: last_hash,
        },
    )?;
    out.flush()?;
    eprintln!(
        "insights: exported positions 1..{after} to {} (head {})",
        path.display(),
        hex::encode(last_hash)
    );
    Ok(())
}

fn verify_bundle(path: &PathBuf) -> Result<VerifyReport> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let bar = bar(len, "verifying");
    let report = bundle::verify(BufReader::new(file), |read| bar.set_position(read))
        .with_context(|| path.display().to_string());
    bar.finish_and_clear();
    report
}
