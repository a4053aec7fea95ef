//! Sentiment scoring, the second processor of the pipeline: consumes `InteractionScrubbed`,
//! emits `SentimentScored`.
//!
//! Two backends behind one trait, [`Backend`]:
//! - **transformer** (default): the all-MiniLM-L6-v2 sentence encoder on libtorch (tch;
//!   rust-bert's BERT while fine-tuning, a packed forward pass of our own for inference),
//!   mean-pooled, and a classification head this project trains itself ([`train`],
//!   `insights train sentiment`) on the VADER gold-standard sets;
//! - **lexicon**: a rule-for-rule port of VADER 3.3.2 ([`lexicon`]), also the fallback when
//!   the model cannot load (flagged on the event);
//! - **multilingual**: Google's multilingual Universal Sentence Encoder and a head trained
//!   on the same English sentences ([`multilingual`]), for the messages that are not in
//!   English, beside the transformer (the processor routes by the declared or detected
//!   language; the event names the backend that scored).
//!
//! Models are `Send` but not `Sync`, so they run on a dedicated pool of inference threads,
//! one model each, fed through a bounded channel with dynamic batching and a content-hash
//! cache in front ([`pool::Scorer`]).

mod bert;
pub mod data;
pub mod finetune;
pub mod lexicon;
pub mod multilingual;
pub mod pool;
mod processor;
pub mod train;
pub mod transformer;

use std::collections::BTreeMap;
use std::fmt;

pub use insights_schemas::SentimentLabel;
pub use pool::{PoolConfig, Scorer};
pub use processor::{SentimentConfig, SentimentProcessor};

/// How far a text's probabilities may move with the texts it is batched with in f32
/// (int8 is bit for bit; bf16: [`BF16_BATCH_TOLERANCE`]): the encoders pack a call's texts
/// into shared matrix products, and a CPU's GEMM kernels may block their sums by the
/// number of rows (seen on an AMD EPYC without AVX-512: 3e-9), so labels are identical and
/// probabilities within this of each other.
pub const BATCH_TOLERANCE: f64 = 1e-6;

/// [`BATCH_TOLERANCE`] for an encoder in bf16: oneDNN picks its bf16 kernel by the number
/// of rows, and on an Intel Xeon with AMX tiles a text's probabilities moved by up to
/// 4.2e-4 between batches (f32 on the same CPU: 1.6e-7; an AMD EPYC with AVX512-BF16 had
/// kept bf16 within 1e-6). A label can then change only for a text whose two likeliest
/// classes are within this of each other; `int8` is bit for bit.
pub const BF16_BATCH_TOLERANCE: f64 = 1e-3;

/// The labels in the order of every probability vector.
pub const LABELS: [SentimentLabel; 3] = [
    SentimentLabel::Negative,
    SentimentLabel::Neutral,
    SentimentLabel::Positive,
];

/// The name of a label.
pub fn label_name(label: SentimentLabel) -> &'static str {
    match label {
        SentimentLabel::Negative => "negative",
        SentimentLabel::Neutral => "neutral",
        SentimentLabel::Positive => "positive",
    }
}

/// Calibrated probabilities of negative, neutral and positive.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prediction {
    /// In [`LABELS`] order; they sum to 1.
    pub probs: [f64; 3],
}

impl Prediction {
    /// The most probable label (ties go to the earlier label, which never matters in practice).
    pub fn label(&self) -> Label {
        let mut best = 0;
        for i in 1..3 {
            if self.probs[i] > self.probs[best] {
                best = i;
            }
        }
        Label(LABELS[best])
    }

    /// The probability of the chosen label.
    pub fn confidence(&self) -> f64 {
        self.probs[self.label().index()]
    }

    /// `{"negative": p, "neutral": p, "positive": p}`.
    pub fn scores(&self) -> BTreeMap<String, f64> {
        LABELS
            .iter()
            .zip(self.probs)
            .map(|(l, p)| (label_name(*l).to_owned(), p))
            .collect()
    }
}

/// A label with its index and name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Label(pub SentimentLabel);

impl Label {
    /// Its position in [`LABELS`].
    pub fn index(self) -> usize {
        match self.0 {
            SentimentLabel::Negative => 0,
            SentimentLabel::Neutral => 1,
            SentimentLabel::Positive => 2,
        }
    }

    /// `negative`, `neutral` or `positive`.
    pub fn as_str(self) -> &'static str {
        label_name(self.0)
    }
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A numerically stable softmax of three logits.
pub(crate) fn softmax_prediction(logits: [f64; 3]) -> Prediction {
    let max = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let exp = logits.map(|z| (z - max).exp());
    let sum: f64 = exp.iter().sum();
    Prediction {
        probs: exp.map(|e| e / sum),
    }
}

/// Which kind of backend scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// The MiniLM encoder + trained head, on libtorch.
    Transformer,
    /// VADER's lexicon and rules.
    Lexicon,
    /// The multilingual encoder + trained head, for messages not in English.
    Multilingual,
}

impl BackendKind {
    /// `transformer` or `lexicon`, as on the events.
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Transformer => "transformer",
            BackendKind::Lexicon => "lexicon",
            BackendKind::Multilingual => "multilingual",
        }
    }
}

impl std::str::FromStr for BackendKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "transformer" => Ok(BackendKind::Transformer),
            "lexicon" => Ok(BackendKind::Lexicon),
            "multilingual" => Ok(BackendKind::Multilingual),
            other => Err(format!(
                "unknown sentiment backend `{other}` (transformer, multilingual or lexicon)"
            )),
        }
    }
}

/// What scored: stamped on every event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelInfo {
    /// E.g. `sentiment-minilm`.
    pub name: String,
    /// The trained model's version, e.g. `1.0.0`.
    pub version: String,
    /// The backend kind.
    pub backend: BackendKind,
}

/// Why scoring failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SentimentError {
    /// The model files are missing or unreadable.
    #[error("cannot load the sentiment model: {0}")]
    Load(String),
    /// Inference failed.
    #[error("inference failed: {0}")]
    Inference(String),
    /// The inference pool stopped.
    #[error("the inference pool has stopped")]
    PoolStopped,
}

/// A sentiment model. `Send` so it can live on an inference thread; not required to be
/// `Sync` (libtorch modules are not): one instance per thread.
pub trait Backend: Send {
    /// What it is.
    fn info(&self) -> &ModelInfo;
    /// Scores a batch of texts; one prediction per text, in order.
    fn predict(&mut self, texts: &[&str]) -> Result<Vec<Prediction>, SentimentError>;
}
