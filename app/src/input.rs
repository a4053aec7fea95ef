//! Interactions into the pipeline: the topology's input topic, and a JSON-lines file (or
//! stdin) produced to it with a progress bar (`insights run --input` and `insights produce`).

use std::io::BufRead;
use std::path::Path;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use insights_runtime::{KafkaSettings, ProduceFormat, produce_lines};
use insights_topology::{TopicRole, Topology};

/// The source topic that takes raw interactions.
pub fn input_topic(topology: &Topology) -> Result<String> {
    topology
        .topic_settings()
        .into_iter()
        .find(|t| t.role == TopicRole::Source && t.value_schema.as_deref() == Some("Interaction"))
        .map(|t| t.name)
        .context("topology.toml has no source topic with value_schema = \"Interaction\"")
}

/// Produces `file` (`-`: stdin) to `topic`; returns how many messages were delivered.
pub async fn produce_file(
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
