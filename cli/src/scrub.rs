//! `insights scrub`: the privacy processor's detection and anonymization over JSON lines,
//! for users' files and for the evaluation against Presidio.

use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use insights_privacy::{PrivacyConfig, Scope, scrub};
use serde_json::{Value, json};

use crate::jsonl::{json_lines, text_field};
use crate::parallel::map_in_order;

/// `insights scrub`.
#[derive(Debug, Args)]
pub struct ScrubArgs {
    /// JSON lines with a "text" field; `-` reads stdin.
    #[arg(long, default_value = "-")]
    file: PathBuf,
    /// Tenant that scopes pseudonyms.
    #[arg(long, default_value = "default")]
    tenant: String,
    /// Conversation that scopes pseudonyms (a line's "conversation_id" wins).
    #[arg(long, default_value = "scrub")]
    conversation: String,
    /// The pseudonym key file, read when INSIGHTS_PRIVACY_KEY is unset; without either, a
    /// random key for this run only.
    #[arg(long, default_value = "data/privacy.key")]
    privacy_key_file: PathBuf,
    /// Declared language of the lines, BCP 47 (a line's "language" wins): English, German,
    /// French, Spanish and Dutch each have a learned tagger, other languages get the rules
    /// alone; without one each line's language is detected.
    #[arg(long)]
    language: Option<String>,
    /// Least score for an entity type, e.g. `--threshold PERSON=0.6` (repeatable).
    #[arg(long = "threshold", value_name = "TYPE=SCORE", value_parser = parse_threshold)]
    thresholds: Vec<(&'static str, f64)>,
    /// Threads that scrub lines at once; 0, the default, one per core. The answers come out
    /// in the lines' order and are the same on any number of threads.
    #[arg(long, default_value_t = 0)]
    threads: usize,
}

/// Lines a thread takes at a time at most: a file's lines change threads in batches (a
/// handover per line cost a fifth of the time on two cores), stdin's as they come.
const BATCH: usize = 64;

/// `TYPE=SCORE` with a known entity type and a score in [0, 1].
pub(crate) fn parse_threshold(s: &str) -> Result<(&'static str, f64), String> {
    let (ty, score) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not TYPE=SCORE"))?;
    let ty = insights_privacy::tagger::entity_type(ty.trim())
        .ok_or_else(|| format!("unknown entity type {ty:?}"))?;
    let score: f64 = score
        .trim()
        .parse()
        .map_err(|_| format!("{score:?} is not a number"))?;
    if !(0.0..=1.0).contains(&score) {
        return Err(format!("a threshold is between 0 and 1, not {score}"));
    }
    Ok((ty, score))
}

pub fn run(args: ScrubArgs) -> Result<ExitCode> {
    let key = match crate::secrets::privacy_key(&args.privacy_key_file, false) {
        Ok(k) => k,
        Err(_) => {
            eprintln!(
                "insights: no pseudonym key configured; pseudonyms are valid for this run only"
            );
            let mut k = [0u8; 32];
            getrandom::fill(&mut k).map_err(|e| anyhow::anyhow!("no randomness for a key: {e}"))?;
            k
        }
    };
    let mut config = PrivacyConfig::new(key);
    config.thresholds.extend(args.thresholds.iter().copied());
    let threads = match args.threads {
        0 => std::thread::available_parallelism().map_or(1, usize::from),
        n => n,
    };
    let mut out = BufWriter::new(std::io::stdout().lock());
    let mut failed = 0usize;
    map_in_order(
        threads,
        || Ok(json_lines(&args.file)?.batches(BATCH)),
        |(n, line): (usize, String)| scrub_line(&config, &args, n, &line),
        |answer| {
            let Some(answer) = answer else {
                // Nothing more is ready: what was written goes out now.
                return Ok(out.flush()?);
            };
            if let Err((n, error)) = &answer {
                failed += 1;
                eprintln!("insights: line {n}: {error}");
            }
            let line = answer.unwrap_or_else(|(_, error)| json!({ "error": error }).to_string());
            writeln!(out, "{line}")?;
            Ok(())
        },
    )?;
    out.flush()?;
    if failed > 0 {
        eprintln!("insights: {failed} lines could not be scrubbed");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// The answer to line `n`: its scrubbed text and spans as a JSON line, or (the line's
/// number and) why it is not a line to scrub. Scrubbing itself failing stops the run.
fn scrub_line(
    config: &PrivacyConfig,
    args: &ScrubArgs,
    n: usize,
    line: &str,
) -> Result<Result<String, (usize, &'static str)>> {
    let (parsed, text) = match text_field(line) {
        Ok(found) => found,
        Err(error) => return Ok(Err((n, error))),
    };
    let conversation = parsed
        .get("conversation_id")
        .and_then(Value::as_str)
        .unwrap_or(&args.conversation);
    let language = parsed
        .get("language")
        .and_then(Value::as_str)
        .or(args.language.as_deref());
    let scope = Scope {
        language,
        ..Scope::new(&args.tenant, conversation)
    };
    let s = scrub(config, &scope, &text)?;
    let spans: Vec<Value> = s
        .original
        .iter()
        .map(|sp| {
            json!({"type": sp.entity_type, "start": sp.start, "end": sp.end, "score": sp.score,
                   "recognizer": sp.recognizer})
        })
        .collect();
    Ok(Ok(json!({"text": s.text, "spans": spans}).to_string()))
}

/// `insights train privacy`.
#[derive(Debug, Args)]
pub struct TrainPrivacyArgs {
    /// Labelled sentences, JSON lines {"template_id", "text", "spans": [{"type", "start",
    /// "end"}]} with char offsets (processors/privacy/data/generate_training.py).
    #[arg(long, default_value = ".tools/data/privacy/train.jsonl")]
    data: PathBuf,
    /// Where the model goes (tagger.bin and its model card README.md).
    #[arg(long, default_value = "processors/privacy/model")]
    out: PathBuf,
    /// Passes over the data.
    #[arg(long, default_value_t = 8)]
    epochs: usize,
    /// Shuffle seed.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Also write the validation sentences the selected detector gets wrong, as JSON lines
    /// {"template_id", "text", "missed": [{"type", "text"}], "wrong": [...]}, to this file.
    #[arg(long)]
    errors: Option<PathBuf>,
    /// The validation folds to cross-validate on: fold k holds the presidio-evaluator
    /// templates with `template_id % 5 == k` (fold 0 is the evaluation's test split and
    /// is never in the training data). Fewer folds train faster and choose on less.
    #[arg(long, value_delimiter = ',', default_value = "1,2,3,4", value_parser = clap::value_parser!(u32).range(1..=4))]
    folds: Vec<u32>,
    /// The language the tagger is for: its rule findings (phone plans, dates, identifiers)
    /// are the ones that language's text gets. English data comes from
    /// generate_training.py, the others' from generate_multilingual.py.
    #[arg(long, default_value = "en", value_parser = insights_privacy::TAGGED_LANGUAGES)]
    language: String,
    /// Probability that decoding during training goes on with the true previous tag rather
    /// than the model's own guess (below 1, the tagger also learns to end a span it should
    /// not have continued).
    #[arg(long, default_value_t = 1.0)]
    teacher_forcing: f64,
    /// Probability that a training sentence is also learned written all in lower case
    /// (validation sentences are never copied).
    #[arg(long, default_value_t = 0.0, value_parser = probability)]
    lower_case_copies: f64,
}

/// A number in [0, 1].
fn probability(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(p) if (0.0..=1.0).contains(&p) => Ok(p),
        _ => Err(format!("{s:?} is not a probability between 0 and 1")),
    }
}

pub fn train(args: TrainPrivacyArgs) -> Result<ExitCode> {
    use anyhow::Context;
    use insights_privacy::tagger::{CardOptions, Example, train_job};

    let mut examples = Vec::new();
    for line in json_lines(&args.data)? {
        let (n, line) = line?;
        examples.push(
            Example::from_json(&line)
                .map_err(|e| anyhow::anyhow!("{} line {n}: {e}", args.data.display()))?,
        );
    }
    anyhow::ensure!(
        !examples.is_empty(),
        "{} holds no sentences",
        args.data.display()
    );
    let card = CardOptions {
        language: args.language,
        data: args.data,
        out: args.out,
        epochs: args.epochs,
        seed: args.seed,
        folds: args.folds,
        teacher_forcing: args.teacher_forcing,
        lower_case_copies: args.lower_case_copies,
    };
    let trained = train_job(&examples, &card, args.errors.as_deref(), &mut |line| {
        eprintln!("train: {line}")
    })
    .with_context(|| format!("writing the model to {}", card.out.display()))?;
    if let (Some(n), Some(path)) = (trained.errors, &args.errors) {
        eprintln!(
            "train: {n} validation sentences with errors -> {}",
            path.display()
        );
    }
    let combined = &trained.model.meta["validation"]["combined"];
    let (p, r, _) = trained.any_pii;
    println!(
        "privacy tagger: validation F2 {:.3} (precision {:.3}, recall {:.3}); any-PII precision {p:.3}, recall {r:.3}; {} features; written to {}",
        combined["f2"].as_f64().unwrap_or(f64::NAN),
        combined["precision"].as_f64().unwrap_or(f64::NAN),
        combined["recall"].as_f64().unwrap_or(f64::NAN),
        trained.model.features(),
        trained.path.display()
    );
    Ok(ExitCode::SUCCESS)
}
