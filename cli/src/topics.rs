//! `insights topics create|list`: the topology's topics on the cluster.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use insights_runtime::{create_topics, list_topics};

use crate::settings::{self, Global, KafkaArgs};

/// `insights topics create` / `list`.
#[derive(Debug, Args)]
pub struct TopicsArgs {
    #[command(flatten)]
    kafka: KafkaArgs,
}

/// Runs `insights topics create`.
pub async fn create(global: &Global, args: TopicsArgs) -> Result<ExitCode> {
    let topology = settings::load_topology(global)?;
    let kafka = args.kafka.required(&topology)?;
    for (topic, created) in create_topics(&kafka, &topology).await? {
        println!("{topic:<28} {}", if created { "created" } else { "exists" });
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `insights topics list`.
pub async fn list(global: &Global, args: TopicsArgs) -> Result<ExitCode> {
    let topology = settings::load_topology(global)?;
    let kafka = args.kafka.required(&topology)?;
    let topics = tokio::task::spawn_blocking(move || list_topics(&kafka)).await??;
    for (topic, partitions) in topics {
        let declared = if topology.topics.contains_key(&topic) {
            ""
        } else {
            "  (not in topology.toml)"
        };
        println!("{topic:<28} {partitions} partitions{declared}");
    }
    Ok(ExitCode::SUCCESS)
}
