//! The sentiment model as the flags and environment choose it (`run`, `sentiment`,
//! `replay --reprocess`). A leaf.

use std::path::PathBuf;

use clap::Args;
use insights_sentiment::BackendKind;
use insights_sentiment::pool::ModelChoice;

/// Which sentiment model to use: shared by `run` and `sentiment`.
#[derive(Debug, Clone, Args)]
pub struct ModelArgs {
    /// transformer (the trained MiniLM model) or lexicon (VADER).
    #[arg(
        long,
        env = "INSIGHTS_SENTIMENT_BACKEND",
        default_value = "transformer"
    )]
    sentiment_backend: BackendKind,
    /// The trained model's directory (model.json, head.safetensors).
    #[arg(
        long,
        env = "INSIGHTS_SENTIMENT_MODEL",
        default_value = insights_sentiment::transformer::DEFAULT_MODEL_DIR
    )]
    sentiment_model: PathBuf,
    /// The MiniLM encoder's directory (installed by scripts/setup.sh).
    #[arg(
        long,
        env = "INSIGHTS_ENCODER_DIR",
        default_value = insights_sentiment::transformer::DEFAULT_ENCODER_DIR
    )]
    encoder_dir: PathBuf,
    /// The encoder's arithmetic: auto (bf16 where the CPU has native bf16, else f32), f32,
    /// bf16, or int8 (dynamically quantized linear layers).
    #[arg(long, env = "INSIGHTS_SENTIMENT_PRECISION", default_value = "auto")]
    sentiment_precision: insights_sentiment::transformer::Precision,
}

impl ModelArgs {
    /// The backend, model and precision chosen.
    pub fn choice(&self) -> ModelChoice {
        ModelChoice {
            backend: self.sentiment_backend,
            model_dir: self.sentiment_model.clone(),
            encoder_dir: self.encoder_dir.clone(),
            precision: self.sentiment_precision,
        }
    }
}
