//! `insights replay --to-topic TOPIC [--from P] [--to Q] [--types A,B]`: stored events
//! back onto Kafka, encoded as the processors publish them (Avro single-object) and keyed
//! by their conversation (else their stream), in log order per key. Consumers that store
//! what they receive drop the copies by event id; processors re-derive the same output ids.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use insights_event_store::{EventFilter, EventStore};
use insights_runtime::KafkaSettings;
use insights_runtime::records::from_recorded;
use insights_schemas::{Codec, Format};
use rdkafka::producer::FutureRecord;

/// Events per page read and published at once.
const PAGE: usize = 1_000;

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
    kafka: crate::pipeline::KafkaArgs,
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
    let producer = insights_runtime::producer(&kafka)?;
    let codec = Codec::new();
    let bar = crate::replay::bar(to - from + 1, &format!("publishing to {topic}"));
    let mut after = from - 1;
    let mut published = 0;
    while after < to {
        let page = store.read_all(after, PAGE, &filter).await?;
        let Some(last) = page.last().map(|e| e.position) else {
            break;
        };
        let mut records = Vec::with_capacity(page.len());
        for r in page.iter().take_while(|r| r.position <= to) {
            let envelope = from_recorded(r)?;
            let key = envelope
                .event
                .context()
                .map_or_else(|| envelope.stream_id.clone(), |c| c.conversation_id.clone());
            let bytes = codec
                .encode(&envelope, Format::SingleObject)
                .with_context(|| format!("encoding the event at position {}", r.position))?;
            records.push((r.position, key, bytes));
        }
        let sends = records.iter().map(|(_, key, bytes)| {
            producer.send(
                FutureRecord::to(topic).key(key).payload(bytes.as_slice()),
                Duration::from_secs(30),
            )
        });
        for ((position, _, _), result) in records.iter().zip(futures::future::join_all(sends).await)
        {
            result.map_err(|(e, _)| {
                anyhow::anyhow!("publishing position {position} to {topic}: {e}")
            })?;
        }
        published += records.len() as u64;
        after = last.min(to);
        bar.set_position(after - from + 1);
    }
    bar.finish_and_clear();
    Ok(published)
}
