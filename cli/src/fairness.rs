//! `insights fairness`: the fairness metrics over a CSV, printed as JSON — for auditing any
//! dataset, and how the metrics are compared with Fairlearn and AIF360.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use insights_fairness::{Privileged, TableSpec, read_csv};
use serde_json::json;

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
        out["intervals"] = json!(spec.intervals(&tally, args.bootstrap, args.seed));
    }
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(ExitCode::SUCCESS)
}
