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
use insights_event_store::EventStore;
use insights_runtime::Processor;
use insights_runtime::offline::{Reprocessed, StoredInputs, reprocess};

use crate::model::ModelArgs;
use crate::output;

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
    sentiment: ModelArgs,
}

impl ReprocessArgs {
    /// Whether reprocessing was asked for.
    pub fn wanted(&self) -> bool {
        self.reprocess.is_some()
    }
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
    eprintln!(
        "insights: reprocessing with sentiment {}",
        processor.version()
    );
    let head = store.head().await?.position;
    let bar = output::bar(head, "reprocessing");
    let inputs = StoredInputs {
        topic: "interactions.scrubbed".into(),
        types: vec!["InteractionScrubbed".into()],
        batch: args.batch,
    };
    let done = reprocess(
        store,
        &mut processor,
        &inputs,
        insights_schemas::Timestamp::now(),
        |position| bar.set_position(position),
        |input, e| eprintln!("insights: input {}: refused: {e}", input.event_id),
    )
    .await?;
    bar.finish_and_clear();
    Ok(done)
}
