//! What commands print besides their results: progress bars on stderr and the summary of
//! a chain verification. A leaf.

use std::process::ExitCode;

use indicatif::{ProgressBar, ProgressStyle};
use insights_event_store::VerifyReport;

/// A progress bar over `len` events, labelled `what`.
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
