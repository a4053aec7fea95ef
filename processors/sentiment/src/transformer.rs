//! The transformer backend: all-MiniLM-L6-v2 (rust-bert's BERT on libtorch), mean pooling,
//! L2 normalisation, then the project's trained head and temperature.
//!
//! A model directory (`models/sentiment-minilm`) holds `model.json` ([`ModelCard`]) and
//! `head.safetensors`; the encoder's weights live elsewhere (installed by
//! `scripts/setup.sh`) and are checked against the sha256 the card names.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use rust_bert::bert::{BertConfig, BertEmbeddings, BertModel};
use rust_tokenizers::tokenizer::{BertTokenizer, Tokenizer, TruncationStrategy};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tch::{Device, Kind, Tensor, nn, nn::ModuleT};

use crate::{Backend, BackendKind, ModelInfo, Prediction, SentimentError};

/// The encoder's output width.
pub const EMBEDDING_DIM: i64 = 384;

/// Where setup.sh installs the encoder, relative to the project root.
pub const DEFAULT_ENCODER_DIR: &str = ".tools/models/all-MiniLM-L6-v2";

/// Where the shipped model lives, relative to the project root.
pub const DEFAULT_MODEL_DIR: &str = "models/sentiment-minilm";

/// `model.json`: what a trained model is and how it was made.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelCard {
    /// The model's name (on every event).
    pub name: String,
    /// Its version (on every event): bump it whenever the head or the data change.
    pub version: String,
    /// The encoder it was trained on.
    pub encoder: EncoderRef,
    /// Tokens per text (longer texts are truncated).
    pub max_tokens: usize,
    /// Hidden units of the head; 0 for a linear head.
    pub hidden: i64,
    /// Logits are divided by this before the softmax (calibration on the validation split).
    pub temperature: f64,
    /// β of the lexicon backend's softmax, fitted on the same split.
    pub lexicon_beta: f64,
    /// How the training run was set up and what it measured.
    pub training: serde_json::Value,
}

/// The encoder a head belongs to.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncoderRef {
    /// E.g. `sentence-transformers/all-MiniLM-L6-v2`.
    pub name: String,
    /// The registry package it comes from.
    pub package: String,
    /// sha256 of `model.safetensors`.
    pub sha256: String,
}

impl ModelCard {
    /// Reads `DIR/model.json`.
    pub fn read(dir: &Path) -> Result<ModelCard, SentimentError> {
        let path = dir.join("model.json");
        let text = std::fs::read_to_string(&path)
            .map_err(|e| SentimentError::Load(format!("{}: {e}", path.display())))?;
        serde_json::from_str(&text)
            .map_err(|e| SentimentError::Load(format!("{}: {e}", path.display())))
    }
}

fn load_err(what: impl std::fmt::Display) -> SentimentError {
    SentimentError::Load(what.to_string())
}

fn infer_err(what: impl std::fmt::Display) -> SentimentError {
    SentimentError::Inference(what.to_string())
}

/// sha256 of a file, hex.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// The encoder's arithmetic. bfloat16 halves the weights' width and, on CPUs with native
/// bf16 dot products (AVX512-BF16, AMX), runs the matrix products about 1.5× faster per
/// thread; the pooled embedding goes to the head in f32. Measured on the VADER test split
/// (2,391 sentences): accuracy 0.7273 in bf16 vs 0.7281 in f32 (two sentences differ).
/// On CPUs without native bf16 it would be emulated and slow, so `Auto` picks it only
/// where the CPU has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    /// bf16 where the CPU computes it natively, else f32.
    #[default]
    Auto,
    /// 32-bit floats, as the encoder was published and the head trained.
    F32,
    /// bfloat16 weights and activations.
    Bf16,
}

impl Precision {
    /// `Auto` decided for this CPU.
    pub fn resolve(self) -> Precision {
        match self {
            Precision::Auto if native_bf16() => Precision::Bf16,
            Precision::Auto => Precision::F32,
            other => other,
        }
    }

    /// `f32` or `bf16` (after [`Precision::resolve`]).
    pub fn name(self) -> &'static str {
        match self.resolve() {
            Precision::Bf16 => "bf16",
            _ => "f32",
        }
    }
}

impl std::str::FromStr for Precision {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Precision::Auto),
            "f32" => Ok(Precision::F32),
            "bf16" => Ok(Precision::Bf16),
            other => Err(format!("precision {other:?} is not auto, f32 or bf16")),
        }
    }
}

#[cfg(target_arch = "x86_64")]
fn native_bf16() -> bool {
    std::arch::is_x86_feature_detected!("avx512bf16")
}

#[cfg(not(target_arch = "x86_64"))]
fn native_bf16() -> bool {
    false
}

/// The sentence encoder: tokenizer + BERT, frozen.
pub struct Encoder {
    tokenizer: BertTokenizer,
    bert: BertModel<BertEmbeddings>,
    _vs: nn::VarStore,
    max_tokens: usize,
    /// sha256 of the weights it loaded.
    pub sha256: String,
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoder")
            .field("max_tokens", &self.max_tokens)
            .field("sha256", &self.sha256)
            .finish_non_exhaustive()
    }
}

impl Encoder {
    /// Loads `config.json`, `vocab.txt` and `model.safetensors` from `dir`, to run at
    /// `precision`.
    pub fn load(
        dir: &Path,
        max_tokens: usize,
        precision: Precision,
    ) -> Result<Encoder, SentimentError> {
        let file = |name: &str| -> Result<PathBuf, SentimentError> {
            let p = dir.join(name);
            if p.is_file() {
                Ok(p)
            } else {
                Err(load_err(format!(
                    "{} is missing (scripts/setup.sh installs the encoder)",
                    p.display()
                )))
            }
        };
        let config: BertConfig =
            serde_json::from_str(&std::fs::read_to_string(file("config.json")?).map_err(load_err)?)
                .map_err(|e| load_err(format!("config.json: {e}")))?;
        // all-MiniLM-L6-v2 is uncased: lower-case and strip accents, like BERT's
        // BasicTokenizer with do_lower_case.
        let tokenizer = BertTokenizer::from_file(file("vocab.txt")?, true, true)
            .map_err(|e| load_err(format!("vocab.txt: {e}")))?;
        let weights = file("model.safetensors")?;
        let sha256 = sha256_file(&weights).map_err(load_err)?;
        let mut vs = nn::VarStore::new(Device::Cpu);
        let bert = BertModel::<BertEmbeddings>::new_with_optional_pooler(vs.root(), &config, false);
        vs.load(&weights)
            .map_err(|e| load_err(format!("{}: {e}", weights.display())))?;
        vs.freeze();
        if precision.resolve() == Precision::Bf16 {
            vs.bfloat16();
        }
        Ok(Encoder {
            tokenizer,
            bert,
            _vs: vs,
            max_tokens,
            sha256,
        })
    }

    /// Sentence embeddings `[n, 384]`: mean of the last hidden states over the tokens,
    /// L2-normalised (what sentence-transformers computes for this model).
    ///
    /// A text's embedding does not depend on the texts it is embedded with: texts of one
    /// token count go through the encoder together, with no padding, so the shapes a text
    /// meets (and with them the order of every sum) follow from its own length; the rows
    /// of one forward pass are computed independently (matrix rows, per-token layer norm,
    /// per-sentence attention). `a_text_scores_the_same_alone_and_in_any_batch` checks
    /// bit-for-bit equality.
    pub fn embed(&self, texts: &[&str]) -> Result<Tensor, SentimentError> {
        let encoded = self.tokenizer.encode_list(
            texts,
            self.max_tokens,
            &TruncationStrategy::LongestFirst,
            0,
        );
        let mut by_length: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for (i, e) in encoded.iter().enumerate() {
            by_length.entry(e.token_ids.len()).or_default().push(i);
        }
        let mut rows: Vec<Option<Tensor>> = (0..texts.len()).map(|_| None).collect();
        for (length, members) in by_length {
            let ids: Vec<i64> = members
                .iter()
                .flat_map(|&i| encoded[i].token_ids.iter().copied())
                .collect();
            let shape = [members.len() as i64, length as i64];
            let ids = Tensor::from_slice(&ids).view(shape);
            let mask = Tensor::ones(shape, (Kind::Int64, Device::Cpu));
            let pooled = tch::no_grad(|| {
                let out = self
                    .bert
                    .forward_t(Some(&ids), Some(&mask), None, None, None, None, None, false)
                    .map_err(infer_err)?;
                let mean = out.hidden_state.mean_dim(1, false, Kind::Float);
                let norm = mean.norm_scalaropt_dim(2, 1, true).clamp_min(1e-12);
                Ok::<_, SentimentError>(mean / norm)
            })?;
            for (j, &i) in members.iter().enumerate() {
                rows[i] = Some(pooled.get(j as i64));
            }
        }
        let rows: Vec<Tensor> = rows.into_iter().flatten().collect();
        if rows.is_empty() {
            return Ok(Tensor::zeros(
                [0, EMBEDDING_DIM],
                (Kind::Float, Device::Cpu),
            ));
        }
        Ok(Tensor::stack(&rows, 0))
    }
}

/// The classification head: linear, or one hidden ReLU layer with dropout in training.
#[derive(Debug)]
pub struct Head {
    layers: nn::SequentialT,
}

impl Head {
    /// Builds the head's variables under `path`.
    pub fn new(path: &nn::Path<'_>, hidden: i64, dropout: f64) -> Head {
        let mut layers = nn::seq_t();
        if hidden > 0 {
            layers = layers
                .add(nn::linear(
                    path / "hidden",
                    EMBEDDING_DIM,
                    hidden,
                    Default::default(),
                ))
                .add_fn(|x| x.relu())
                .add_fn_t(move |x, train| x.dropout(dropout, train))
                .add(nn::linear(path / "out", hidden, 3, Default::default()));
        } else {
            layers = layers.add(nn::linear(
                path / "out",
                EMBEDDING_DIM,
                3,
                Default::default(),
            ));
        }
        Head { layers }
    }

    /// Logits `[n, 3]` for embeddings `[n, 384]`.
    pub fn logits_t(&self, embeddings: &Tensor, train: bool) -> Tensor {
        self.layers.forward_t(embeddings, train)
    }
}

/// Calibrated probabilities from logits and a temperature.
pub fn probabilities(logits: &Tensor, temperature: f64) -> Result<Vec<Prediction>, SentimentError> {
    let probs = (logits / temperature).softmax(-1, Kind::Double);
    let flat = Vec::<f64>::try_from(probs.flatten(0, -1)).map_err(infer_err)?;
    Ok(flat
        .chunks_exact(3)
        .map(|c| Prediction {
            probs: [c[0], c[1], c[2]],
        })
        .collect())
}

/// The transformer backend.
#[derive(Debug)]
pub struct TransformerBackend {
    encoder: Encoder,
    head: Head,
    _head_vs: nn::VarStore,
    temperature: f64,
    info: ModelInfo,
}

impl TransformerBackend {
    /// Loads a trained model and its encoder, checking that the encoder is the one the
    /// head was trained on; the encoder runs at [`Precision::Auto`].
    pub fn load(model_dir: &Path, encoder_dir: &Path) -> Result<Self, SentimentError> {
        Self::load_at(model_dir, encoder_dir, Precision::Auto)
    }

    /// [`TransformerBackend::load`] at a chosen precision.
    pub fn load_at(
        model_dir: &Path,
        encoder_dir: &Path,
        precision: Precision,
    ) -> Result<Self, SentimentError> {
        let card = ModelCard::read(model_dir)?;
        let encoder = Encoder::load(encoder_dir, card.max_tokens, precision)?;
        if encoder.sha256 != card.encoder.sha256 {
            return Err(load_err(format!(
                "{} is not the encoder {} was trained on (sha256 {}, expected {})",
                encoder_dir.display(),
                model_dir.display(),
                encoder.sha256,
                card.encoder.sha256
            )));
        }
        let mut head_vs = nn::VarStore::new(Device::Cpu);
        let head = Head::new(&head_vs.root(), card.hidden, 0.0);
        let head_file = model_dir.join("head.safetensors");
        head_vs
            .load(&head_file)
            .map_err(|e| load_err(format!("{}: {e}", head_file.display())))?;
        head_vs.freeze();
        Ok(TransformerBackend {
            encoder,
            head,
            _head_vs: head_vs,
            temperature: card.temperature,
            info: ModelInfo {
                name: card.name,
                version: card.version,
                backend: BackendKind::Transformer,
            },
        })
    }
}

impl Backend for TransformerBackend {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn predict(&mut self, texts: &[&str]) -> Result<Vec<Prediction>, SentimentError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let embeddings = self.encoder.embed(texts)?;
        // The head one embedding at a time: a matrix product's rounding may depend on
        // how many rows it has (a single row goes through another kernel), and the head
        // costs nothing next to the encoder.
        let logits = tch::no_grad(|| {
            let rows: Vec<Tensor> = (0..embeddings.size()[0])
                .map(|i| self.head.logits_t(&embeddings.narrow(0, i, 1), false))
                .collect();
            Tensor::cat(&rows, 0)
        });
        probabilities(&logits, self.temperature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precision_parses_and_auto_resolves_to_a_concrete_one() {
        assert_eq!("bf16".parse::<Precision>(), Ok(Precision::Bf16));
        assert_eq!("f32".parse::<Precision>(), Ok(Precision::F32));
        assert_eq!("auto".parse::<Precision>(), Ok(Precision::Auto));
        assert!("fp8".parse::<Precision>().unwrap_err().contains("fp8"));
        assert_ne!(Precision::Auto.resolve(), Precision::Auto);
        assert_eq!(Precision::F32.resolve(), Precision::F32);
        assert_eq!(Precision::Bf16.name(), "bf16");
    }

    fn shipped(precision: Precision) -> TransformerBackend {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        TransformerBackend::load_at(
            &root.join(DEFAULT_MODEL_DIR),
            &root.join(DEFAULT_ENCODER_DIR),
            precision,
        )
        .expect("the shipped model loads (scripts/setup.sh installs the encoder)")
    }

    #[test]
    fn a_text_scores_the_same_alone_and_in_any_batch() {
        let mut model = shipped(Precision::Auto);
        // Many texts of a few token counts, so that each text shares its forward pass
        // with a different number of others, at different rows, from batch to batch.
        let mut texts: Vec<String> = (0..40)
            .map(|i| match i % 4 {
                0 => format!("router {i} keeps failing and support never calls back"),
                1 => format!("thanks, ticket {i} was solved quickly"),
                2 => format!("my bill for month {i} is wrong again!"),
                _ => format!("great help, {i} stars"),
            })
            .collect();
        texts.push("no".into());
        texts.push("It works now, but it took three weeks and five calls to get here.".into());
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let alone: Vec<Prediction> = refs
            .iter()
            .map(|t| model.predict(&[t]).expect("scores")[0])
            .collect();
        let bits = |p: &Prediction| p.probs.map(f64::to_bits);
        let mut batches: Vec<Vec<usize>> = vec![(0..refs.len()).collect()];
        batches.push((0..refs.len()).rev().collect());
        batches.push((0..refs.len()).step_by(3).collect());
        batches.push((5..17).chain(0..3).collect());
        for batch in &batches {
            let input: Vec<&str> = batch.iter().map(|&i| refs[i]).collect();
            let got = model.predict(&input).expect("scores");
            for (&i, p) in batch.iter().zip(&got) {
                assert_eq!(
                    bits(p),
                    bits(&alone[i]),
                    "{:?}: {p:?} in a batch of {} vs {:?} alone",
                    refs[i],
                    batch.len(),
                    alone[i]
                );
            }
        }
    }

    #[test]
    fn bf16_scores_like_f32() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let load = |p| {
            TransformerBackend::load_at(
                &root.join(DEFAULT_MODEL_DIR),
                &root.join(DEFAULT_ENCODER_DIR),
                p,
            )
            .expect("the shipped model loads (scripts/setup.sh installs the encoder)")
        };
        let texts = [
            "I love this phone, the support team was wonderful!",
            "This is the worst service I have ever had. Refund me now.",
            "My order number is 4411 and it ships on Tuesday.",
            "Terrible router, it drops every hour and nobody helps.",
        ];
        let f32 = load(Precision::F32).predict(&texts).expect("scores");
        let bf16 = load(Precision::Bf16).predict(&texts).expect("scores");
        for (a, b) in f32.iter().zip(&bf16) {
            assert_eq!(a.label(), b.label(), "{a:?} vs {b:?}");
            for (x, y) in a.probs.iter().zip(&b.probs) {
                assert!((x - y).abs() < 0.05, "{a:?} vs {b:?}");
            }
        }
    }
}
