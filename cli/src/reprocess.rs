//! `insights replay --reprocess sentiment [--sentiment-model DIR …]`: runs the sentiment
//! processor, as configured now (e.g. a new model), over every scrubbed interaction in the
//! store and appends its `SentimentScored` events under its version. Old events are never
//! touched: the new ones sit next to them, with ids derived from the processor *and its
//! version*, so a second run of the same version (after a crash, say) appends nothing
//! twice, and the sentiment view keeps one series per model version to compare.
//!
//! Only processors whose inputs are in the store can be reprocessed: privacy's inputs are
//! the raw messages with personal data, which are never stored.

use anyhow::{Result, bail};
use clap::Args;
use insights_event_store::{AppendBatch, EventFilter, EventStore};
use insights_runtime::records::{envelope_for, from_recorded, to_event_data};
use insights_runtime::{Processor, drive_each};
use insights_schemas::{Envelope, Timestamp};

/// `insights replay --reprocess`.
#[derive(Debug, Args)]
pub struct ReprocessArgs {
    /// Run this processor (sentiment) over its inputs in the store, appending its events
    /// under its current version next to the old ones.
    #[arg(long, value_name = "PROCESSOR")]
    reprocess: Option<String>,
    /// With --reprocess: inputs per batch (the model's batch).
    #[arg(long, requires = "reprocess", default_value_t = 64)]
    batch: usize,
    #[command(flatten)]
    sentiment: crate::sentiment::ModelArgs,
}

impl ReprocessArgs {
    /// Whether reprocessing was asked for.
    pub fn wanted(&self) -> bool {
        self.reprocess.is_some()
    }
}

/// What a run did.
#[derive(Debug, Default)]
pub struct Reprocessed {
    /// Inputs read.
    pub inputs: u64,
    /// Events appended.
    pub appended: u64,
    /// Events this version had appended already.
    pub already: u64,
    /// Inputs the processor refused (their reasons are printed).
    pub refused: u64,
}

/// Runs the reprocessing.
pub async fn run(store: &dyn EventStore, args: &ReprocessArgs) -> Result<Reprocessed> {
    let Some(name) = args.reprocess.as_deref() else {
        return Ok(Reprocessed::default());
    };
    match name {
        "sentiment" => {}
        "privacy" => bail!(
            "privacy cannot be reprocessed: its inputs are the raw messages with personal data, which are never stored"
        ),
        other => bail!("--reprocess supports sentiment; {other:?} is not supported"),
    }
    let config = insights_sentiment::SentimentConfig {
        model: args.sentiment.choice(),
        ..Default::default()
    };
    let mut processor =
        tokio::task::block_in_place(|| insights_sentiment::SentimentProcessor::open(&config));
    let version = processor.version().to_owned();
    // Ids in a namespace of this version: a new version's events never collide with the
    // old ones, and the same version run twice collides with itself.
    let namespace = format!("{}@{version}", processor.name());
    eprintln!("insights: reprocessing with sentiment {version}");
    let head = store.head().await?.position;
    let bar = crate::replay::bar(head, "reprocessing");
    let filter = EventFilter::Types(vec!["InteractionScrubbed".into()]);
    let now = Timestamp(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX)),
    );
    let mut done = Reprocessed::default();
    let mut after = 0;
    while after < head {
        let page = store.read_all(after, args.batch.max(1), &filter).await?;
        let Some(last) = page.last().map(|r| r.position) else {
            break;
        };
        let mut inputs = Vec::with_capacity(page.len());
        for r in page.iter().take_while(|r| r.position <= head) {
            inputs.push((r.position, from_recorded(r)?));
        }
        let name = processor.name().to_owned();
        let refused = &mut done.refused;
        let outputs = tokio::task::block_in_place(|| {
            let inputs: Vec<(i64, &Envelope)> = inputs
                .iter()
                .map(|(position, e)| (i64::try_from(*position).unwrap_or(i64::MAX), e))
                .collect();
            let mut out = Vec::new();
            drive_each(
                &mut processor,
                "interactions.scrubbed",
                &inputs,
                now,
                |input, ctx, result| match result {
                    Ok(outputs) => {
                        for (i, o) in outputs.iter().enumerate() {
                            let index = u32::try_from(i).unwrap_or(u32::MAX);
                            let mut e = envelope_for(&name, &version, ctx, index, o);
                            e.event_id = Envelope::derived_id(
                                &namespace,
                                ctx.input_id,
                                ctx.input_time,
                                index,
                            );
                            out.push(e);
                        }
                    }
                    Err(e) => {
                        eprintln!("insights: input {}: refused: {e}", input.event_id);
                        *refused += 1;
                    }
                },
            );
            out
        });
        done.inputs += inputs.len() as u64;
        if !outputs.is_empty() {
            let appended = store
                .append(AppendBatch::new(
                    outputs.iter().map(to_event_data).collect(),
                ))
                .await?;
            let already = appended.iter().filter(|a| a.duplicate).count() as u64;
            done.already += already;
            done.appended += appended.len() as u64 - already;
        }
        after = last.min(head);
        bar.set_position(after);
    }
    bar.finish_and_clear();
    Ok(done)
}
