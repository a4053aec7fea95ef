//! `insights produce`: JSON lines of interactions (a file or stdin) to the input topic.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, ValueEnum};
use insights_runtime::ProduceFormat;

use crate::settings::{self, Global, KafkaArgs};
use insights_app::input;

/// Wire format for `insights produce`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum WireFormat {
    /// Each line as it is.
    Json,
    /// Avro single-object encoding.
    Avro,
    /// Confluent wire format (embedded-registry schema ids).
    Confluent,
}

/// `insights produce`.
#[derive(Debug, Args)]
pub struct ProduceArgs {
    #[command(flatten)]
    kafka: KafkaArgs,
    /// JSON lines of interactions; `-` reads stdin.
    #[arg(long, default_value = "-")]
    file: PathBuf,
    /// How to encode each line.
    #[arg(long, value_enum, default_value = "json")]
    format: WireFormat,
    /// At most this many messages per second.
    #[arg(long)]
    rate: Option<u32>,
    /// The topic (default: the topology's interaction source topic).
    #[arg(long)]
    topic: Option<String>,
}

/// Runs `insights produce`.
pub async fn run(global: &Global, args: ProduceArgs) -> Result<ExitCode> {
    let topology = settings::load_topology(global)?;
    let kafka = args.kafka.required(&topology)?;
    let topic = match args.topic {
        Some(t) => t,
        None => input::input_topic(&topology)?,
    };
    let format = match args.format {
        WireFormat::Json => ProduceFormat::Json,
        WireFormat::Avro => ProduceFormat::AvroSingleObject,
        WireFormat::Confluent => ProduceFormat::Confluent,
    };
    let n = input::produce_file(&kafka, &topic, &args.file, format, args.rate).await?;
    eprintln!("insights: produced {n} messages to {topic}");
    Ok(ExitCode::SUCCESS)
}
