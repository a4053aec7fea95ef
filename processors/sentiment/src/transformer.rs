//! The transformer backend: all-MiniLM-L6-v2 (rust-bert's BERT on libtorch), mean pooling,
//! L2 normalisation, then the project's trained head and temperature.
//!
//! A model directory (`models/sentiment-minilm`) holds `model.json` ([`ModelCard`]) and
//! `head.safetensors`; the encoder's weights live elsewhere (installed by
//! `scripts/setup.sh`) and are checked against the sha256 the card names.

use std::io::Read;
use std::path::{Path, PathBuf};

use rust_bert::bert::{BertConfig, BertEmbeddings, BertModel};
use rust_tokenizers::tokenizer::{BertTokenizer, Tokenizer, TruncationStrategy};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tch::{Device, Kind, Tensor, nn, nn::ModuleT};

use crate::bert::{Arithmetic, PackedBert};
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
    /// The encoder's fine-tuned weights, in the model directory: every tensor of the
    /// published encoder but the word embeddings (which fine-tuning keeps frozen), stored
    /// as f16. Absent for a head trained on the frozen encoder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fine_tuned_encoder: Option<FileRef>,
    /// The head's weights and their checksum (absent on cards written before it was
    /// recorded; then `head.safetensors` is loaded unchecked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head: Option<FileRef>,
}

/// A file in the model directory and its sha256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRef {
    /// Its name, relative to the model directory.
    pub file: String,
    /// sha256 of its bytes, hex.
    pub sha256: String,
}

impl FileRef {
    /// The file under `dir`, after checking that its bytes are the ones named here.
    pub fn verified(&self, dir: &Path) -> Result<PathBuf, SentimentError> {
        let path = dir.join(&self.file);
        let sha256 =
            sha256_file(&path).map_err(|e| load_err(format!("{}: {e}", path.display())))?;
        if sha256 != self.sha256 {
            return Err(load_err(format!(
                "{}: sha256 {sha256}, but the model card names {}",
                path.display(),
                self.sha256
            )));
        }
        Ok(path)
    }
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
    /// The encoder's linear layers with int8 weights (dynamic quantization: FBGEMM's int8
    /// GEMM, activations quantized per call), the rest in f32 ([`crate::bert`]).
    Int8,
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

    /// How far a text's probabilities may move with its batch in this precision (after
    /// [`Precision::resolve`]): int8 not at all.
    pub fn batch_tolerance(self) -> f64 {
        match self.resolve() {
            Precision::Bf16 => crate::BF16_BATCH_TOLERANCE,
            Precision::Int8 => 0.0,
            _ => crate::BATCH_TOLERANCE,
        }
    }

    /// `f32`, `bf16` or `int8` (after [`Precision::resolve`]).
    pub fn name(self) -> &'static str {
        match self.resolve() {
            Precision::Bf16 => "bf16",
            Precision::Int8 => "int8",
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
            "int8" => Ok(Precision::Int8),
            other => Err(format!(
                "precision {other:?} is not auto, f32, bf16 or int8"
            )),
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

/// BERT's layer-norm epsilon (rust-bert's, and all-MiniLM-L6-v2's `config.json`).
const LAYER_NORM_EPS: f64 = 1e-12;

/// The word-embedding matrix: the one tensor fine-tuning leaves as published (a third of
/// the encoder's weights; most rows are words the training data never uses).
const WORD_EMBEDDINGS: &str = "embeddings.word_embeddings.weight";

/// The sentence encoder: tokenizer + BERT (frozen, except while fine-tuning).
pub struct Encoder {
    tokenizer: BertTokenizer,
    bert: BertModel<BertEmbeddings>,
    /// The inference forward pass over packed texts ([`crate::bert`]); absent in an
    /// encoder being fine-tuned, which runs rust-bert's `bert` with gradients.
    packed: Option<PackedBert>,
    layers: i64,
    heads: i64,
    vs: nn::VarStore,
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
    /// Loads `config.json`, `vocab.txt` and `model.safetensors` from `dir`, then the
    /// fine-tuned weights from `fine_tuned` where given, frozen, to run at `precision`.
    pub fn load(
        dir: &Path,
        fine_tuned: Option<&Path>,
        max_tokens: usize,
        precision: Precision,
    ) -> Result<Encoder, SentimentError> {
        let mut encoder = Self::load_f32(dir, fine_tuned, max_tokens)?;
        encoder.vs.freeze();
        let arithmetic = match precision.resolve() {
            Precision::Bf16 => {
                encoder.vs.bfloat16();
                Arithmetic::Float
            }
            Precision::Int8 => Arithmetic::Int8,
            _ => Arithmetic::Float,
        };
        encoder.packed = Some(PackedBert::new(
            &encoder.vs.variables(),
            encoder.layers,
            encoder.heads,
            LAYER_NORM_EPS,
            arithmetic,
        )?);
        Ok(encoder)
    }

    /// [`Encoder::load`] in f32 with every tensor but the word embeddings trainable: the
    /// starting point of fine-tuning.
    pub fn trainable(dir: &Path, max_tokens: usize) -> Result<Encoder, SentimentError> {
        let encoder = Self::load_f32(dir, None, max_tokens)?;
        for (name, tensor) in encoder.vs.variables() {
            if name == WORD_EMBEDDINGS {
                let _ = tensor.set_requires_grad(false);
            }
        }
        Ok(encoder)
    }

    fn load_f32(
        dir: &Path,
        fine_tuned: Option<&Path>,
        max_tokens: usize,
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
        if let Some(path) = fine_tuned {
            overlay(&vs, path)?;
        }
        Ok(Encoder {
            tokenizer,
            bert,
            packed: None,
            layers: config.num_hidden_layers,
            heads: config.num_attention_heads,
            vs,
            max_tokens,
            sha256,
        })
    }

    /// The encoder's variables (an optimizer is built on them while fine-tuning).
    pub fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }

    /// Writes every trainable tensor (all but the word embeddings) to `path` as f16
    /// safetensors: what [`Encoder::load`] lays over the published weights.
    pub fn save_fine_tuned(&self, path: &Path) -> Result<(), SentimentError> {
        let mut tensors: Vec<(String, Tensor)> = self
            .vs
            .variables()
            .into_iter()
            .filter(|(name, _)| name != WORD_EMBEDDINGS)
            .map(|(name, t)| (name, t.detach().to_kind(Kind::Half)))
            .collect();
        // Sorted names: the same weights give the same bytes.
        tensors.sort_by(|a, b| a.0.cmp(&b.0));
        Tensor::write_safetensors(&tensors, path)
            .map_err(|e| load_err(format!("{}: {e}", path.display())))
    }

    /// Sentence embeddings `[n, 384]` for training: the texts padded to the longest, the
    /// mean over each text's own tokens, L2-normalised — what [`Encoder::embed`] computes,
    /// with gradients and, when `train`, dropout.
    pub fn embed_t(&self, texts: &[&str], train: bool) -> Result<Tensor, SentimentError> {
        let encoded = self.tokenizer.encode_list(
            texts,
            self.max_tokens,
            &TruncationStrategy::LongestFirst,
            0,
        );
        let longest = encoded.iter().map(|e| e.token_ids.len()).max().unwrap_or(0);
        let mut ids = Vec::with_capacity(texts.len() * longest);
        let mut mask = Vec::with_capacity(texts.len() * longest);
        for e in &encoded {
            ids.extend(e.token_ids.iter().copied());
            mask.extend(std::iter::repeat_n(1i64, e.token_ids.len()));
            // [PAD] is id 0 in BERT's vocabulary.
            ids.extend(std::iter::repeat_n(0i64, longest - e.token_ids.len()));
            mask.extend(std::iter::repeat_n(0i64, longest - e.token_ids.len()));
        }
        let shape = [texts.len() as i64, longest as i64];
        let ids = Tensor::from_slice(&ids).view(shape);
        let mask = Tensor::from_slice(&mask).view(shape);
        let out = self
            .bert
            .forward_t(Some(&ids), Some(&mask), None, None, None, None, None, train)
            .map_err(infer_err)?;
        let weights = mask.to_kind(Kind::Float).unsqueeze(-1);
        let mean = (out.hidden_state * &weights).sum_dim_intlist(1, false, Kind::Float)
            / weights.sum_dim_intlist(1, false, Kind::Float);
        let norm = mean.norm_scalaropt_dim(2, 1, true).clamp_min(1e-12);
        Ok(mean / norm)
    }

    /// Sentence embeddings `[n, 384]`: mean of the last hidden states over the tokens,
    /// L2-normalised (what sentence-transformers computes for this model).
    ///
    /// The texts go through the encoder packed, without padding ([`crate::bert`]): what
    /// a text's embedding may depend on beside the text is the last bits of the float
    /// matrix products, never its neighbours' tokens.
    /// `a_text_scores_the_same_alone_and_in_any_batch` checks the tolerance, and int8's
    /// bit-for-bit equality. An encoder being fine-tuned has no packed pass and embeds as
    /// in training ([`Encoder::embed_t`]), without dropout.
    pub fn embed(&self, texts: &[&str]) -> Result<Tensor, SentimentError> {
        let Some(packed) = &self.packed else {
            return tch::no_grad(|| self.embed_t(texts, false));
        };
        let encoded = self.tokenizer.encode_list(
            texts,
            self.max_tokens,
            &TruncationStrategy::LongestFirst,
            0,
        );
        let ids: Vec<&[i64]> = encoded.iter().map(|e| e.token_ids.as_slice()).collect();
        tch::no_grad(|| {
            let mean = packed.mean_hidden(&ids)?;
            let norm = mean.norm_scalaropt_dim(2, 1, true).clamp_min(1e-12);
            Ok(mean / norm)
        })
    }
}

/// Copies the tensors of a fine-tuned weights file over the encoder's (converting f16 to
/// the variables' kind); a name the encoder does not have is an error, so a file made for
/// another architecture cannot half-load.
fn overlay(vs: &nn::VarStore, path: &Path) -> Result<(), SentimentError> {
    let tensors =
        Tensor::read_safetensors(path).map_err(|e| load_err(format!("{}: {e}", path.display())))?;
    let variables = vs.variables();
    for (name, value) in tensors {
        let Some(var) = variables.get(&name) else {
            return Err(load_err(format!(
                "{}: {name} is not a tensor of this encoder",
                path.display()
            )));
        };
        let mut var = var.shallow_clone();
        tch::no_grad(|| var.f_copy_(&value))
            .map_err(|e| load_err(format!("{}: {name}: {e}", path.display())))?;
    }
    Ok(())
}

/// The classification head: linear, or one hidden ReLU layer with dropout in training.
#[derive(Debug)]
pub struct Head {
    layers: nn::SequentialT,
}

impl Head {
    /// Builds the head's variables under `path`, for embeddings `input` wide.
    pub fn new(path: &nn::Path<'_>, input: i64, hidden: i64, dropout: f64) -> Head {
        let mut layers = nn::seq_t();
        if hidden > 0 {
            layers = layers
                .add(nn::linear(
                    path / "hidden",
                    input,
                    hidden,
                    Default::default(),
                ))
                .add_fn(|x| x.relu())
                .add_fn_t(move |x, train| x.dropout(dropout, train))
                .add(nn::linear(path / "out", hidden, 3, Default::default()));
        } else {
            layers = layers.add(nn::linear(path / "out", input, 3, Default::default()));
        }
        Head { layers }
    }

    /// Logits `[n, 3]` for embeddings `[n, input]`.
    pub fn logits_t(&self, embeddings: &Tensor, train: bool) -> Tensor {
        self.layers.forward_t(embeddings, train)
    }

    /// Logits `[n, 3]` computed one embedding at a time, for inference: a matrix product's
    /// rounding may depend on how many rows it has (a single row goes through another
    /// kernel), and the head costs nothing next to the encoder.
    pub fn logits_rows(&self, embeddings: &Tensor) -> Tensor {
        let rows: Vec<Tensor> = (0..embeddings.size()[0])
            .map(|i| self.logits_t(&embeddings.narrow(0, i, 1), false))
            .collect();
        if rows.is_empty() {
            return Tensor::zeros([0, 3], (Kind::Float, Device::Cpu));
        }
        Tensor::cat(&rows, 0)
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

/// A model directory's trained head, frozen, with its temperature: what turns a
/// backend's embeddings into calibrated probabilities.
#[derive(Debug)]
pub struct TrainedHead {
    head: Head,
    _vs: nn::VarStore,
    temperature: f64,
}

impl TrainedHead {
    /// The head `card` names in `model_dir` (checked against its sha256; cards written
    /// before the checksum was recorded name none, and `head.safetensors` is read
    /// unchecked), for embeddings `input` wide.
    pub fn load(model_dir: &Path, card: &ModelCard, input: i64) -> Result<Self, SentimentError> {
        let mut vs = nn::VarStore::new(Device::Cpu);
        let head = Head::new(&vs.root(), input, card.hidden, 0.0);
        let file = match &card.head {
            Some(file) => file.verified(model_dir)?,
            None => model_dir.join(crate::train::HEAD_FILE),
        };
        vs.load(&file)
            .map_err(|e| load_err(format!("{}: {e}", file.display())))?;
        vs.freeze();
        Ok(TrainedHead {
            head,
            _vs: vs,
            temperature: card.temperature,
        })
    }

    /// Calibrated probabilities for embeddings `[n, input]`, one row at a time.
    pub fn predict(&self, embeddings: &Tensor) -> Result<Vec<Prediction>, SentimentError> {
        let logits = tch::no_grad(|| self.head.logits_rows(embeddings));
        probabilities(&logits, self.temperature)
    }
}

/// The transformer backend.
#[derive(Debug)]
pub struct TransformerBackend {
    encoder: Encoder,
    head: TrainedHead,
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
        let fine_tuned = match &card.fine_tuned_encoder {
            Some(file) => Some(file.verified(model_dir)?),
            None => None,
        };
        let encoder = Encoder::load(
            encoder_dir,
            fine_tuned.as_deref(),
            card.max_tokens,
            precision,
        )?;
        if encoder.sha256 != card.encoder.sha256 {
            return Err(load_err(format!(
                "{} is not the encoder {} was trained on (sha256 {}, expected {})",
                encoder_dir.display(),
                model_dir.display(),
                encoder.sha256,
                card.encoder.sha256
            )));
        }
        let head = TrainedHead::load(model_dir, &card, EMBEDDING_DIM)?;
        Ok(TransformerBackend {
            encoder,
            head,
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
        self.head.predict(&self.encoder.embed(texts)?)
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
        assert_eq!("int8".parse::<Precision>(), Ok(Precision::Int8));
        assert_eq!(Precision::Int8.name(), "int8");
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
        let auto = Precision::Auto;
        scores_do_not_depend_on_the_batch(auto, auto.batch_tolerance());
    }

    #[test]
    fn an_f32_text_scores_the_same_alone_and_in_any_batch() {
        scores_do_not_depend_on_the_batch(Precision::F32, crate::BATCH_TOLERANCE);
    }

    /// The packed inference pass computes what rust-bert's BERT (the training forward, with
    /// padding and an attention mask) computes: same embeddings to float rounding.
    #[test]
    fn the_packed_pass_embeds_like_the_training_forward() {
        let model = shipped(Precision::F32);
        let texts = [
            "no",
            "The router keeps dropping and support never calls back.",
            "Thanks, <PERSON> fixed it in five minutes!",
            "ok",
            "It works now, but it took three weeks and five calls to get here.",
        ];
        let packed = model.encoder.embed(&texts).expect("embeds");
        let padded = tch::no_grad(|| model.encoder.embed_t(&texts, false)).expect("embeds");
        assert_eq!(packed.size(), vec![5, EMBEDDING_DIM]);
        let worst = (&packed - &padded).abs().max().double_value(&[]);
        assert!(worst < 1e-5, "the packed pass is off by {worst:e}");
    }

    #[test]
    fn an_int8_text_scores_the_same_alone_and_in_any_batch() {
        // One text a pass: bit for bit.
        scores_do_not_depend_on_the_batch(Precision::Int8, Precision::Int8.batch_tolerance());
    }

    fn scores_do_not_depend_on_the_batch(precision: Precision, tolerance: f64) {
        let mut model = shipped(precision);
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
        // The largest move, reported whether or not it is within the tolerance.
        let mut largest = (0.0, String::new());
        for batch in &batches {
            let input: Vec<&str> = batch.iter().map(|&i| refs[i]).collect();
            let got = model.predict(&input).expect("scores");
            for (&i, p) in batch.iter().zip(&got) {
                let context = format!(
                    "{:?}: {p:?} in a batch of {} vs {:?} alone",
                    refs[i],
                    batch.len(),
                    alone[i]
                );
                if tolerance == 0.0 {
                    assert_eq!(bits(p), bits(&alone[i]), "{context}");
                } else {
                    assert_eq!(p.label(), alone[i].label(), "{context}");
                    let worst = p
                        .probs
                        .iter()
                        .zip(&alone[i].probs)
                        .map(|(a, b)| (a - b).abs())
                        .fold(0.0, f64::max);
                    if worst > largest.0 {
                        largest = (worst, context);
                    }
                }
            }
        }
        eprintln!("{}: largest move {:e}", precision.name(), largest.0);
        assert!(
            largest.0 <= tolerance,
            "{}: off by {:e} (tolerance {tolerance:e})",
            largest.1,
            largest.0
        );
    }

    #[test]
    fn the_shipped_model_files_match_its_card() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(DEFAULT_MODEL_DIR);
        let card = ModelCard::read(&dir).expect("the shipped card reads");
        let encoder = card
            .fine_tuned_encoder
            .expect("the shipped model is fine-tuned: its card names the encoder weights");
        let head = card
            .head
            .expect("the shipped card names the head's weights");
        encoder
            .verified(&dir)
            .expect("encoder.safetensors matches the card");
        head.verified(&dir)
            .expect("head.safetensors matches the card");
    }

    /// Clear texts get f32's labels at `precision`, and probabilities within `tolerance`.
    fn scores_like_f32(precision: Precision, tolerance: f64) {
        let texts = [
            "I love this phone, the support team was wonderful!",
            "This is the worst service I have ever had. Refund me now.",
            "My order number is 4411 and it ships on Tuesday.",
            "Terrible router, it drops every hour and nobody helps.",
            "Thank you so much, everything works perfectly now.",
        ];
        let f32 = shipped(Precision::F32).predict(&texts).expect("scores");
        let other = shipped(precision).predict(&texts).expect("scores");
        for (a, b) in f32.iter().zip(&other) {
            assert_eq!(a.label(), b.label(), "{a:?} vs {b:?} ({precision:?})");
            for (x, y) in a.probs.iter().zip(&b.probs) {
                assert!((x - y).abs() < tolerance, "{a:?} vs {b:?} ({precision:?})");
            }
        }
    }

    #[test]
    fn int8_scores_like_f32() {
        scores_like_f32(Precision::Int8, 0.1);
    }

    #[test]
    fn bf16_scores_like_f32() {
        scores_like_f32(Precision::Bf16, 0.05);
    }
}
