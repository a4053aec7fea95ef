//! `insights fairness`: the fairness metrics over a CSV, printed as JSON — for auditing any
//! dataset, and how the metrics are compared with Fairlearn and AIF360.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use insights_fairness::{Privileged, Report, TableSpec, read_csv};
use serde_json::{Value, json};

/// `insights fairness`.
#[derive(Debug, Args)]
pub struct FairnessArgs {
    /// A CSV with a header row; `-` reads stdin.
    #[arg(long)]
    input: PathBuf,
    /// Sensitive attribute columns, comma-separated; groups are their combinations.
    #[arg(long, value_delimiter = ',', required = true)]
    sensitive: Vec<String>,
    /// The predicted outcome column (0/1 or true/false).
    #[arg(long)]
    outcome: String,
    /// The ground-truth column, for the error-rate metrics (equalized odds, equal opportunity).
    #[arg(long)]
    label: Option<String>,
    /// ATTRIBUTE=VALUE: the privileged group for disparate impact and statistical parity.
    #[arg(long, value_parser = parse_privileged)]
    privileged: Option<Privileged>,
    /// Groups with fewer rows are listed but not compared.
    #[arg(long, default_value_t = 0)]
    min_group_size: u64,
    /// Bootstrap resamples for 95% intervals of the headline metrics (0: none).
    #[arg(long, default_value_t = 0)]
    bootstrap: u32,
    /// Seed of the bootstrap.
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

fn parse_privileged(s: &str) -> Result<Privileged, String> {
    let (attribute, value) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not ATTRIBUTE=VALUE"))?;
    Ok(Privileged {
        attribute: attribute.trim().to_owned(),
        value: value.trim().to_owned(),
    })
}

/// One headline metric of a report (None where it does not apply).
type Metric = fn(&Report) -> Option<f64>;

pub fn run(args: FairnessArgs) -> Result<ExitCode> {
    let spec = TableSpec {
        sensitive: args.sensitive,
        outcome: args.outcome,
        label: args.label,
        min_group_size: args.min_group_size,
        privileged: args.privileged,
    };
    let tally = if args.input.as_os_str() == "-" {
        read_csv(std::io::stdin().lock(), &spec)
    } else {
        let file = std::fs::File::open(&args.input)
            .with_context(|| format!("reading {}", args.input.display()))?;
        read_csv(std::io::BufReader::new(file), &spec)
    }
    .with_context(|| format!("{}", args.input.display()))?;
    let mut out = serde_json::to_value(spec.report(&tally))?;
    if args.bootstrap > 0 {
        let headline: [(&str, Metric); 4] = [
            ("demographic_parity_difference", |r| {
                Some(r.demographic_parity_difference)
            }),
            ("demographic_parity_ratio", |r| {
                Some(r.demographic_parity_ratio)
            }),
            ("equalized_odds_difference", |r| r.equalized_odds_difference),
            ("disparate_impact", |r| r.disparate_impact),
        ];
        let mut intervals = serde_json::Map::new();
        for (name, metric) in headline {
            if metric(&spec.report(&tally)).is_none() {
                continue;
            }
            let interval = tally.bootstrap(args.bootstrap, 0.95, args.seed, |t| {
                metric(&spec.report(t)).unwrap_or(f64::NAN)
            });
            intervals.insert(name.to_owned(), json!(interval));
        }
        out["intervals"] = Value::Object(intervals);
    }
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(ExitCode::SUCCESS)
}

/// `[processors.fairness.config]` of the topology, parsed and checked (its own rules, and
/// that every watermark topic is an input of the processor).
pub fn config(topology: &insights_topology::Topology) -> Result<insights_fairness::FairnessConfig> {
    let spec = topology.processors.get("fairness");
    let table = spec.map(|p| p.config.clone()).unwrap_or_default();
    let mut config: insights_fairness::FairnessConfig = toml::Value::Table(table)
        .try_into()
        .context("[processors.fairness.config] in topology.toml")?;
    if let Some(t) = spec.and_then(|p| p.outputs.first()) {
        config.reports_topic = t.clone();
    }
    // The watermark topics must be inputs (one never consumed would hold it forever).
    let inputs = spec.map(|p| p.inputs.clone()).unwrap_or_default();
    for t in &config.watermark_topics {
        if !inputs.contains(t) {
            anyhow::bail!(
                "[processors.fairness.config] watermark_topics: `{t}` is not an input of fairness"
            );
        }
        config
            .watermark_partitions
            .insert(t.clone(), topology.topic(t).map_or(0, |s| s.partitions));
    }
    config
        .validate()
        .map_err(|p| anyhow::anyhow!("[processors.fairness.config]: {}", p.join("; ")))?;
    Ok(config)
}

/// The streaming processor as `insights run` launches it: configured from topology.toml's
/// `[processors.fairness.config]`, its windows rebuilt from the outcome events in the
/// store (the processor counts each event id once, so Kafka redelivering some of them
/// afterwards double-counts nothing).
pub async fn streaming(
    topology: &insights_topology::Topology,
    store: &dyn insights_event_store::EventStore,
) -> Result<insights_fairness::FairnessProcessor> {
    let mut processor = insights_fairness::FairnessProcessor::new(config(topology)?)
        .map_err(|p| anyhow::anyhow!("[processors.fairness.config]: {}", p.join("; ")))?;
    let filter = insights_event_store::EventFilter::Types(
        [
            "SentimentScored",
            "ResponseDrafted",
            "ResponseApproved",
            "ReviewRequested",
            "ReviewDecided",
        ]
        .map(String::from)
        .to_vec(),
    );
    let mut after = 0;
    let mut replayed = 0usize;
    loop {
        let page = store.read_all(after, 5_000, &filter).await?;
        let Some(last) = page.last() else { break };
        after = last.position;
        let envelopes: Vec<_> = page
            .iter()
            .filter_map(|r| insights_runtime::records::from_recorded(r).ok())
            .collect();
        replayed += envelopes.len();
        processor.replay(&envelopes);
    }
    if replayed > 0 {
        eprintln!("insights: fairness rebuilt its windows from {replayed} stored outcome events");
    }
    Ok(processor)
}
