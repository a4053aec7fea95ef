//! `insights replay --to-topic TOPIC [--from P] [--to Q] [--types A,B]`: stored events
//! back onto Kafka, encoded as the processors publish them (Avro single-object) and keyed
//! by their conversation (else their stream), in log order per key. Consumers that store
//! what they receive drop the copies by event id; processors re-derive the same output ids.

use anyhow::{Result, bail};
use clap::Args;
use insights_event_store::{EventFilter, EventStore};
use insights_runtime::KafkaSettings;
use insights_runtime::offline::{EnvelopeProducer, republish};

use crate::output;
use crate::settings::KafkaArgs;

/// `insights replay --to-topic`.
#[derive(Debug, Args)]
pub struct ToTopicArgs {
    /// Re-publish stored events to this Kafka topic.
    #[arg(long, value_name = "TOPIC")]
    to_topic: Option<String>,
    /// With --to-topic: from this position (inclusive; default the first).
    #[arg(long, requires = "to_topic", value_name = "POSITION")]
    from: Option<u64>,
    /// With --to-topic: up to this position (inclusive; default the head).
    #[arg(long, requires = "to_topic", value_name = "POSITION")]
    to: Option<u64>,
    /// With --to-topic: only these event types (comma-separated).
    #[arg(
        long,
        requires = "to_topic",
        value_delimiter = ',',
        value_name = "TYPES"
    )]
    types: Vec<String>,
    #[command(flatten)]
    kafka: KafkaArgs,
}

impl ToTopicArgs {
    /// Whether re-publishing was asked for.
    pub fn wanted(&self) -> bool {
        self.to_topic.is_some()
    }
}

/// Re-publishes; returns how many events went out.
pub async fn run(
    store: &dyn EventStore,
    topology: &insights_topology::Topology,
    args: &ToTopicArgs,
) -> Result<u64> {
    let Some(topic) = &args.to_topic else {
        return Ok(0);
    };
    if let Some(unknown) = args
        .types
        .iter()
        .find(|t| !insights_schemas::schema_exists(t))
    {
        bail!("--types: {unknown:?} is not an event type of the schema catalogue");
    }
    let kafka: KafkaSettings = args.kafka.required(topology)?;
    let head = store.head().await?.position;
    let from = args.from.unwrap_or(1).max(1);
    let to = args.to.unwrap_or(head).min(head);
    if from > to {
        bail!("nothing to publish: positions {from}..={to} (the head is {head})");
    }
    let filter = if args.types.is_empty() {
        EventFilter::All
    } else {
        EventFilter::Types(args.types.clone())
    };
    let producer = EnvelopeProducer::new(&kafka)?;
    let bar = output::bar(to - from + 1, &format!("publishing to {topic}"));
    let published = republish(store, &producer, topic, (from, to), &filter, |after| {
        bar.set_position(after - from + 1);
    })
    .await?;
    bar.finish_and_clear();
    Ok(published)
}
