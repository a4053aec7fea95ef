//! Producing input files: lines of interactions to a topic, as JSON, Avro single-object or
//! the Confluent wire format, keyed by conversation, optionally rate-limited.

use std::time::Duration;

use insights_schemas::{Codec, Format, Interaction};
use rdkafka::producer::{FutureProducer, FutureRecord};

use crate::RuntimeError;
use crate::kafka::{KafkaSettings, producer};

/// How `produce_lines` writes each line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProduceFormat {
    /// The line as it is (invalid lines too: the pipeline dead-letters them).
    Json,
    /// Parsed as an `Interaction` and encoded as Avro single-object.
    AvroSingleObject,
    /// Parsed and encoded in the Confluent wire format.
    Confluent,
}

/// What `produce_lines` did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Produced {
    /// Messages delivered.
    pub delivered: u64,
    /// Lines that could not be encoded in the chosen Avro format (skipped).
    pub unencodable: u64,
}

/// Produces lines (bytes, so that lines which are not valid UTF-8 go through too, for the
/// pipeline to dead-letter) to `topic`, keyed by their `conversation_id`, at most `rate`
/// per second if given; calls `progress` after each delivery.
pub async fn produce_lines(
    kafka: &KafkaSettings,
    topic: &str,
    lines: impl Iterator<Item = Vec<u8>>,
    format: ProduceFormat,
    rate: Option<u32>,
    mut progress: impl FnMut(u64),
) -> Result<Produced, RuntimeError> {
    let producer: FutureProducer = producer(kafka)?;
    let codec = Codec::new();
    let mut out = Produced::default();
    let mut pacer =
        rate.map(|r| tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(r.max(1)))));
    let mut in_flight = futures::stream::FuturesUnordered::new();
    for line in lines {
        let mut line = line;
        while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            line.pop();
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let key = serde_json::from_slice::<serde_json::Value>(&line)
            .ok()
            .and_then(|v| {
                v.get("conversation_id")
                    .and_then(|c| c.as_str())
                    .map(str::to_owned)
            })
            .unwrap_or_default();
        let payload = match format {
            ProduceFormat::Json => line,
            ProduceFormat::AvroSingleObject | ProduceFormat::Confluent => {
                let wire = if format == ProduceFormat::Confluent {
                    Format::Confluent
                } else {
                    Format::SingleObject
                };
                match codec
                    .decode::<Interaction>(&line)
                    .map_err(|e| e.to_string())
                    .and_then(|i| codec.encode(&i, wire).map_err(|e| e.to_string()))
                {
                    Ok(bytes) => bytes,
                    Err(e) => {
                        tracing::warn!(error = %e, "line skipped: cannot be encoded as Avro");
                        out.unencodable += 1;
                        continue;
                    }
                }
            }
        };
        if let Some(p) = pacer.as_mut() {
            p.tick().await;
        }
        let producer = producer.clone();
        let topic = topic.to_owned();
        // With traces on, each interaction's trace starts here (the span ends at delivery).
        let span = tracing::info_span!(
            target: insights_telemetry::TARGET,
            "produce",
            otel.name = %format_args!("{topic} publish"),
            otel.kind = "producer",
            messaging.system = "kafka",
            messaging.operation.type = "send",
            messaging.destination.name = topic.as_str(),
        );
        let headers = crate::trace::inject(&span);
        in_flight.push(async move {
            let mut record = FutureRecord::to(&topic)
                .key(key.as_str())
                .payload(payload.as_slice());
            if let Some(headers) = headers {
                record = record.headers(headers);
            }
            let delivered = producer.send(record, Duration::from_secs(30)).await;
            drop(span);
            delivered
        });
        // A send is handed to librdkafka when its future is first polled: poll now, so a
        // paced message leaves when it is paced, and collect what has been delivered.
        while let Some(Some(result)) =
            futures::FutureExt::now_or_never(futures::StreamExt::next(&mut in_flight))
        {
            result.map_err(|(e, _)| RuntimeError::Kafka(e))?;
            out.delivered += 1;
            progress(out.delivered);
        }
        // Bounded: at most 10k messages in flight.
        while in_flight.len() >= 10_000 {
            deliver(&mut in_flight, &mut out, &mut progress).await?;
        }
    }
    while !in_flight.is_empty() {
        deliver(&mut in_flight, &mut out, &mut progress).await?;
    }
    Ok(out)
}

async fn deliver<F>(
    in_flight: &mut futures::stream::FuturesUnordered<F>,
    out: &mut Produced,
    progress: &mut impl FnMut(u64),
) -> Result<(), RuntimeError>
where
    F: Future<Output = rdkafka::producer::future_producer::OwnedDeliveryResult>,
{
    use futures::StreamExt;
    if let Some(result) = in_flight.next().await {
        result.map_err(|(e, _)| RuntimeError::Kafka(e))?;
        out.delivered += 1;
        progress(out.delivered);
    }
    Ok(())
}
