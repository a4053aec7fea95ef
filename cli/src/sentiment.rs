//! `insights sentiment` (score JSON lines with the processor's model) and
//! `insights train sentiment` (reproduce the shipped model).

use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use insights_sentiment::train::{FineTune, TrainConfig};
use insights_sentiment::{PoolConfig, Scorer};
use serde_json::json;

use crate::jsonl::{json_lines, text_field};
use crate::model::ModelArgs;

/// `insights sentiment`.
#[derive(Debug, Args)]
pub struct SentimentArgs {
    /// JSON lines with a "text" field and, optionally, a "language" (BCP 47; detected when
    /// absent); `-` reads stdin.
    #[arg(long, default_value = "-")]
    file: PathBuf,
    #[command(flatten)]
    model: ModelArgs,
    /// Texts per model call.
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
}

pub fn run(args: SentimentArgs) -> Result<ExitCode> {
    let pool = PoolConfig {
        max_batch: args.batch_size.max(1),
        max_wait: Duration::from_millis(2),
        ..PoolConfig::default()
    };
    let scorer = Scorer::open(&args.model.choice(), &pool);
    if let Some(reason) = scorer.fallback_reason() {
        eprintln!("insights: scoring with the lexicon: {reason}");
    }
    if let Some(reason) = scorer.multilingual_error() {
        eprintln!("insights: the English model reads every language: {reason}");
    }
    let mut out = BufWriter::new(std::io::stdout().lock());
    let mut failed = 0usize;
    // Chunks of lines go to the pool together, so the model sees full batches.
    let mut pending: Vec<Line> = Vec::new();
    let chunk = args.batch_size.max(1) * 8;
    for line in json_lines(&args.file)? {
        let (n, line) = line?;
        pending.push((
            n,
            text_field(&line).map(|(value, t)| {
                let language = value
                    .get("language")
                    .and_then(serde_json::Value::as_str)
                    .map(str::to_owned);
                (t, language)
            }),
        ));
        if pending.len() >= chunk {
            failed += score_lines(&scorer, &mut pending, &mut out)?;
        }
    }
    failed += score_lines(&scorer, &mut pending, &mut out)?;
    out.flush()?;
    if failed > 0 {
        eprintln!("insights: {failed} lines could not be scored");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// A line's number and its text and declared language, or why it has none.
type Line = (usize, Result<(String, Option<String>), &'static str>);

/// Scores the pending lines in one call and writes their answers in order; returns how
/// many lines were bad.
fn score_lines(scorer: &Scorer, pending: &mut Vec<Line>, out: &mut impl Write) -> Result<usize> {
    let texts: Vec<(&str, Option<&str>)> = pending
        .iter()
        .filter_map(|(_, t)| t.as_ref().ok())
        .map(|(t, l)| (t.as_str(), l.as_deref()))
        .collect();
    let mut scored = scorer.score_in(&texts)?.into_iter();
    let mut bad = 0;
    for (n, text) in pending.drain(..) {
        match text {
            Ok(_) => {
                let s = scored.next().context("one score per text")?;
                let (p, info) = (s.prediction, scorer.info_of(&s));
                writeln!(
                    out,
                    "{}",
                    json!({"label": p.label().as_str(), "score": p.confidence(),
                           "scores": p.scores(), "backend": info.backend.as_str(),
                           "model": format!("{}-{}", info.name, info.version)})
                )?;
            }
            Err(error) => {
                bad += 1;
                eprintln!("insights: line {n}: {error}");
                writeln!(out, "{}", json!({ "error": error }))?;
            }
        }
    }
    Ok(bad)
}

/// `insights train sentiment`.
#[derive(Debug, Args)]
pub struct TrainSentimentArgs {
    /// The VADER gold-standard sets (installed by scripts/setup.sh).
    #[arg(long, default_value = ".tools/data/vader")]
    data: PathBuf,
    /// The project's customer-service messages, trained on beside the VADER sets.
    #[arg(long, default_value = insights_sentiment::data::DEFAULT_SUPPORT_FILE)]
    support: PathBuf,
    /// Leave the customer-service messages out (VADER sets only).
    #[arg(long)]
    no_support: bool,
    /// The encoder's directory [default: the MiniLM encoder's, or with --multilingual the
    /// multilingual encoder's].
    #[arg(long)]
    encoder_dir: Option<PathBuf>,
    /// Where the model goes (model.json, head.safetensors, README.md; encoder.safetensors
    /// when fine-tuning) [default: models/sentiment-minilm, or with --multilingual
    /// models/sentiment-use-multilingual].
    #[arg(long)]
    out: Option<PathBuf>,
    /// The model's version, stamped on every event it scores [default: 2.0.0, or with
    /// --multilingual 1.0.0].
    #[arg(long)]
    version: Option<String>,
    /// Train the multilingual model instead: a head on the frozen multilingual encoder,
    /// on the same English sentences, measured on the project's messages in four more
    /// languages.
    #[arg(long, conflicts_with = "fine_tune")]
    multilingual: bool,
    /// Hidden units of the head; 0 trains a linear head.
    #[arg(long, default_value_t = 256)]
    hidden: i64,
    /// Passes over the train split [default: 40 for the head alone, 3 when fine-tuning].
    #[arg(long)]
    epochs: Option<usize>,
    /// Seed for initialisation, shuffling and dropout.
    #[arg(long, default_value_t = 42)]
    seed: i64,
    /// Fine-tune the encoder with the head (every tensor but the word embeddings; about
    /// half an hour on 2 cores) instead of training the head alone on frozen embeddings.
    #[arg(long)]
    fine_tune: bool,
    /// With --fine-tune: the encoder's peak learning rate.
    #[arg(long, default_value_t = 5e-5, requires = "fine_tune")]
    encoder_lr: f64,
    /// With --fine-tune: train on at most this many train-split sentences (a seeded
    /// sample), for a quick trial.
    #[arg(long, requires = "fine_tune")]
    limit: Option<usize>,
}

pub fn train(args: TrainSentimentArgs) -> Result<ExitCode> {
    let defaults = if args.fine_tune {
        TrainConfig {
            fine_tune: Some(FineTune {
                encoder_learning_rate: args.encoder_lr,
                limit: args.limit,
                ..FineTune::default()
            }),
            ..TrainConfig::fine_tuning()
        }
    } else if args.multilingual {
        TrainConfig::multilingual()
    } else {
        TrainConfig::default()
    };
    let out = args.out.unwrap_or(defaults.out_dir.clone());
    let config = TrainConfig {
        data_dir: args.data,
        support_file: (!args.no_support).then_some(args.support),
        encoder_dir: args.encoder_dir.unwrap_or(defaults.encoder_dir.clone()),
        out_dir: out.clone(),
        version: args.version.unwrap_or(defaults.version.clone()),
        hidden: args.hidden,
        epochs: args.epochs.unwrap_or(defaults.epochs),
        seed: args.seed,
        ..defaults
    };
    let card = insights_sentiment::train::train(&config, &mut |line| {
        eprintln!("train: {line}");
    })?;
    let all = &card.training["test"]["all"];
    println!(
        "{} {}: test accuracy {:.4} (lexicon {:.4}) on {} sentences; written to {}",
        card.name,
        card.version,
        all["transformer"]["accuracy"].as_f64().unwrap_or(f64::NAN),
        all["lexicon"]["accuracy"].as_f64().unwrap_or(f64::NAN),
        all["n"],
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}
