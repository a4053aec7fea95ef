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
