//! The sentiment model as the flags and environment choose it (`run`, `sentiment`,
//! `replay --reprocess`). A leaf.

use std::path::PathBuf;

use clap::Args;
use insights_sentiment::BackendKind;
use insights_sentiment::pool::{ModelChoice, MultilingualChoice};

/// Which sentiment model to use: shared by `run` and `sentiment`.
#[derive(Debug, Clone, Args)]
pub struct ModelArgs {
    /// transformer (the trained MiniLM model; messages not in English go to the
    /// multilingual model beside it), multilingual (that model for every message) or
    /// lexicon (VADER).
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
    /// The multilingual model's directory, for messages declared or detected in a language
    /// other than English.
    #[arg(
        long,
        env = "INSIGHTS_SENTIMENT_MULTILINGUAL_MODEL",
        default_value = insights_sentiment::multilingual::DEFAULT_MODEL_DIR
    )]
    sentiment_multilingual_model: PathBuf,
    /// The multilingual encoder's directory (installed by scripts/setup.sh).
    #[arg(
        long,
        env = "INSIGHTS_MULTILINGUAL_ENCODER_DIR",
        default_value = insights_sentiment::multilingual::DEFAULT_ENCODER_DIR
    )]
    multilingual_encoder_dir: PathBuf,
    /// With the transformer: read every message with it, whatever its language (no
    /// multilingual model).
    #[arg(long, env = "INSIGHTS_SENTIMENT_ENGLISH_ONLY")]
    sentiment_english_only: bool,
}

impl ModelArgs {
    /// The backend, model and precision chosen.
    pub fn choice(&self) -> ModelChoice {
        ModelChoice {
            backend: self.sentiment_backend,
            model_dir: self.sentiment_model.clone(),
            encoder_dir: self.encoder_dir.clone(),
            precision: self.sentiment_precision,
            multilingual: (!self.sentiment_english_only).then(|| MultilingualChoice {
                model_dir: self.sentiment_multilingual_model.clone(),
                encoder_dir: self.multilingual_encoder_dir.clone(),
            }),
        }
    }
}
