//! The metrics over a CSV file: one row per outcome, columns for the sensitive attributes,
//! the prediction and optionally the ground truth (0/1 or true/false).

use std::collections::BTreeMap;
use std::io::Read;

use crate::metrics::{Interval, Privileged, Report, Tally};

/// Which columns mean what.
#[derive(Debug, Clone)]
pub struct TableSpec {
    /// Sensitive attribute columns; groups are their value combinations.
    pub sensitive: Vec<String>,
    /// The predicted outcome column.
    pub outcome: String,
    /// The ground-truth column, if any.
    pub label: Option<String>,
    /// Groups with fewer rows are listed but not compared.
    pub min_group_size: u64,
    /// For AIF360's disparate impact and statistical parity difference.
    pub privileged: Option<Privileged>,
}

/// Why a table could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TableError {
    /// Not readable as CSV.
    #[error("{0}")]
    Csv(#[from] csv::Error),
    /// A named column is missing.
    #[error("no column `{0}` in the header")]
    MissingColumn(String),
    /// A value is not a binary outcome.
    #[error("line {line}: `{value}` in column `{column}` is not 0/1 or true/false")]
    NotBinary {
        /// 1-based line number (the header is line 1).
        line: u64,
        /// The column.
        column: String,
        /// The value.
        value: String,
    },
    /// The privileged attribute is not among the sensitive ones.
    #[error("the privileged attribute `{0}` is not among the sensitive attributes")]
    PrivilegedNotSensitive(String),
}

fn binary(value: &str) -> Option<bool> {
    match value.trim() {
        "1" | "1.0" | "true" | "True" | "TRUE" => Some(true),
        "0" | "0.0" | "false" | "False" | "FALSE" => Some(false),
        _ => None,
    }
}

/// Reads the CSV and reports every metric.
pub fn report_csv(input: impl Read, spec: &TableSpec) -> Result<Report, TableError> {
    Ok(spec.report(&read_csv(input, spec)?))
}

impl TableSpec {
    /// The report of a tally read with this spec.
    pub fn report(&self, tally: &Tally) -> Report {
        tally.report(
            &self.sensitive,
            self.label.is_some(),
            self.min_group_size,
            self.privileged.as_ref(),
        )
    }

    /// 95 % bootstrap intervals (see [`Tally::bootstrap`]) of the headline metrics the
    /// tally defines: demographic parity difference and ratio, and, where defined,
    /// equalized odds difference and disparate impact.
    pub fn intervals(
        &self,
        tally: &Tally,
        resamples: u32,
        seed: u64,
    ) -> BTreeMap<&'static str, Interval> {
        type Metric = fn(&Report) -> Option<f64>;
        let headline: [(&'static str, Metric); 4] = [
            ("demographic_parity_difference", |r| {
                Some(r.demographic_parity_difference)
            }),
            ("demographic_parity_ratio", |r| {
                Some(r.demographic_parity_ratio)
            }),
            ("equalized_odds_difference", |r| r.equalized_odds_difference),
            ("disparate_impact", |r| r.disparate_impact),
        ];
        let report = self.report(tally);
        headline
            .into_iter()
            .filter(|(_, metric)| metric(&report).is_some())
            .map(|(name, metric)| {
                let interval = tally.bootstrap(resamples, 0.95, seed, |t| {
                    metric(&self.report(t)).unwrap_or(f64::NAN)
                });
                (name, interval)
            })
            .collect()
    }
}

/// Reads the CSV into counts per group.
pub fn read_csv(input: impl Read, spec: &TableSpec) -> Result<Tally, TableError> {
    if let Some(p) = &spec.privileged
        && !spec.sensitive.contains(&p.attribute)
    {
        return Err(TableError::PrivilegedNotSensitive(p.attribute.clone()));
    }
    let mut reader = csv::Reader::from_reader(input);
    let headers = reader.headers()?.clone();
    let column = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| TableError::MissingColumn(name.to_owned()))
    };
    let sensitive: Vec<usize> = spec
        .sensitive
        .iter()
        .map(|s| column(s))
        .collect::<Result<_, _>>()?;
    let outcome = column(&spec.outcome)?;
    let label = spec.label.as_deref().map(column).transpose()?;
    let mut tally = Tally::default();
    for (n, record) in reader.records().enumerate() {
        let record = record?;
        let line = n as u64 + 2;
        let read = |idx: usize, name: &str| -> Result<bool, TableError> {
            let value = record.get(idx).unwrap_or_default();
            binary(value).ok_or_else(|| TableError::NotBinary {
                line,
                column: name.to_owned(),
                value: value.to_owned(),
            })
        };
        let predicted = read(outcome, &spec.outcome)?;
        let actual = match (label, &spec.label) {
            (Some(idx), Some(name)) => Some(read(idx, name)?),
            _ => None,
        };
        let key = sensitive
            .iter()
            .map(|&i| record.get(i).unwrap_or_default().to_owned())
            .collect();
        tally.add(key, predicted, actual);
    }
    Ok(tally)
}
