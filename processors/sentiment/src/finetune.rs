//! Fine-tuning the encoder together with the head (`insights train sentiment
//! --fine-tune`): every tensor of all-MiniLM-L6-v2 but the word embeddings is updated by
//! AdamW through rust-bert's BERT (a tch module), with a linear warm-up and decay, the
//! gradients clipped, batches of similar length (little padding) in a seeded order. The
//! epoch with the best validation accuracy is kept: its encoder tensors go to
//! `encoder.safetensors` as f16, the head to `head.safetensors`. The figures on the card
//! are measured on the files as written, loaded the way the processor loads them.

use std::time::Instant;

use serde_json::json;
use tch::{Device, Kind, Tensor, nn, nn::OptimizerConfig};

use crate::SentimentError;
use crate::data::Example;
use crate::train::{
    FineTune, Fitted, HEAD_FILE, Splits, TrainConfig, argmax_labels, embed_texts, evaluate, gold,
    labels_tensor,
};
use crate::transformer::{Encoder, FileRef, Head, Precision, sha256_file};

/// The fine-tuned encoder tensors in a model directory.
pub const ENCODER_FILE: &str = "encoder.safetensors";

/// Batches are sorted by length within runs of this many batches, then shuffled: similar
/// lengths together, different neighbours every epoch.
const BUCKET_BATCHES: usize = 50;

fn train_err(e: impl std::fmt::Display) -> SentimentError {
    SentimentError::Inference(e.to_string())
}

fn io_err(path: &std::path::Path, e: impl std::fmt::Display) -> SentimentError {
    SentimentError::Load(format!("{}: {e}", path.display()))
}

/// A seeded permutation of `0..n` from libtorch's generator.
fn permutation(n: usize) -> Vec<usize> {
    let perm = Tensor::randperm(n as i64, (Kind::Int64, Device::Cpu));
    Vec::<i64>::try_from(perm)
        .expect("randperm gives int64")
        .into_iter()
        .map(|i| i as usize)
        .collect()
}

/// One epoch's batches of example indices.
fn batches(idx: &[usize], examples: &[Example], batch_size: usize) -> Vec<Vec<usize>> {
    let shuffled: Vec<usize> = permutation(idx.len()).into_iter().map(|p| idx[p]).collect();
    let mut out = Vec::new();
    for run in shuffled.chunks(batch_size * BUCKET_BATCHES) {
        let mut run = run.to_vec();
        run.sort_by_key(|&i| examples[i].text.len());
        out.extend(run.chunks(batch_size).map(<[usize]>::to_vec));
    }
    permutation(out.len())
        .into_iter()
        .map(|p| std::mem::take(&mut out[p]))
        .collect()
}

/// The learning-rate factor at `step` of `total`: linear warm-up, then linear decay.
fn schedule(step: usize, total: usize, warmup: f64) -> f64 {
    let warm = ((total as f64 * warmup).round() as usize).max(1);
    if step < warm {
        (step + 1) as f64 / warm as f64
    } else {
        ((total - step) as f64 / (total - warm).max(1) as f64).max(0.0)
    }
}

/// Validation accuracy of the model being trained (no dropout, no gradients).
fn accuracy(
    encoder: &Encoder,
    head: &Head,
    examples: &[Example],
    idx: &[usize],
) -> Result<f64, SentimentError> {
    let mut order = idx.to_vec();
    order.sort_by_key(|&i| examples[i].text.len());
    let mut predicted = Vec::with_capacity(order.len());
    for chunk in order.chunks(64) {
        let texts: Vec<&str> = chunk.iter().map(|&i| examples[i].text.as_str()).collect();
        let logits = tch::no_grad(|| {
            encoder
                .embed_t(&texts, false)
                .map(|e| head.logits_t(&e, false))
        })?;
        predicted.extend(argmax_labels(&logits)?);
    }
    Ok(evaluate(&predicted, &gold(examples, &order)).accuracy)
}

/// Fine-tunes, keeps the best epoch on disk, and measures the written model.
pub(crate) fn fit(
    config: &TrainConfig,
    fine_tune: &FineTune,
    examples: &[Example],
    splits: &Splits,
    progress: &mut dyn FnMut(&str),
) -> Result<Fitted, SentimentError> {
    tch::manual_seed(config.seed);
    let encoder = Encoder::trainable(&config.encoder_dir, config.max_tokens)?;
    let mut head_vs = nn::VarStore::new(Device::Cpu);
    let head = Head::new(
        &head_vs.root(),
        crate::transformer::EMBEDDING_DIM,
        config.hidden,
        config.dropout,
    );
    let adamw = nn::AdamW::default().wd(config.weight_decay);
    let mut encoder_opt = adamw
        .build(encoder.var_store(), fine_tune.encoder_learning_rate)
        .map_err(train_err)?;
    let mut head_opt = adamw
        .build(&head_vs, config.learning_rate)
        .map_err(train_err)?;

    let train: Vec<usize> = match fine_tune.limit {
        Some(limit) if limit < splits.train.len() => permutation(splits.train.len())
            .into_iter()
            .take(limit)
            .map(|p| splits.train[p])
            .collect(),
        _ => splits.train.clone(),
    };
    let batch_size = config.batch_size.max(1) as usize;
    let per_epoch = batches(&train, examples, batch_size).len();
    let total = per_epoch * config.epochs;
    progress(&format!(
        "fine-tuning on {} sentences: {} epochs of {per_epoch} batches",
        train.len(),
        config.epochs
    ));

    let encoder_file = config.out_dir.join(ENCODER_FILE);
    let head_file = config.out_dir.join(HEAD_FILE);
    let started = Instant::now();
    let (mut best_acc, mut best_epoch) = (-1.0, 0);
    let mut epoch_losses = Vec::new();
    let mut step = 0;
    for epoch in 1..=config.epochs {
        let mut loss_sum = 0.0;
        let epoch_batches = batches(&train, examples, batch_size);
        for (b, batch) in epoch_batches.iter().enumerate() {
            let factor = schedule(step, total, fine_tune.warmup);
            encoder_opt.set_lr(fine_tune.encoder_learning_rate * factor);
            head_opt.set_lr(config.learning_rate * factor);
            let texts: Vec<&str> = batch.iter().map(|&i| examples[i].text.as_str()).collect();
            let picked: Vec<&Example> = batch.iter().map(|&i| &examples[i]).collect();
            let logits = head.logits_t(&encoder.embed_t(&texts, true)?, true);
            let loss = logits.cross_entropy_for_logits(&labels_tensor(&picked));
            encoder_opt.zero_grad();
            head_opt.zero_grad();
            loss.backward();
            encoder_opt.clip_grad_norm(fine_tune.clip_norm);
            head_opt.clip_grad_norm(fine_tune.clip_norm);
            encoder_opt.step();
            head_opt.step();
            loss_sum += loss.double_value(&[]);
            step += 1;
            if (b + 1) % 50 == 0 {
                progress(&format!(
                    "epoch {epoch}: batch {} of {per_epoch}, mean loss {:.4} ({:.0}s)",
                    b + 1,
                    loss_sum / (b + 1) as f64,
                    started.elapsed().as_secs_f64()
                ));
            }
        }
        let mean_loss = loss_sum / epoch_batches.len().max(1) as f64;
        epoch_losses.push(mean_loss);
        let acc = accuracy(&encoder, &head, examples, &splits.validation)?;
        if acc > best_acc {
            best_acc = acc;
            best_epoch = epoch;
            encoder.save_fine_tuned(&encoder_file)?;
            head_vs
                .save(&head_file)
                .map_err(|e| io_err(&head_file, e))?;
        }
        progress(&format!(
            "epoch {epoch}: mean train loss {mean_loss:.4}, validation accuracy {acc:.4} \
             (best {best_acc:.4} at {best_epoch}; {:.0}s)",
            started.elapsed().as_secs_f64()
        ));
    }
    let seconds = started.elapsed().as_secs_f64();
    // Freeze the head's variables before loading the best epoch back.
    head_vs.freeze();
    drop((encoder_opt, head_opt));

    // What was written, loaded as the processor loads it.
    let file = FileRef {
        file: ENCODER_FILE.into(),
        sha256: sha256_file(&encoder_file).map_err(|e| io_err(&encoder_file, e))?,
    };
    let shipped = Encoder::load(
        &config.encoder_dir,
        Some(&encoder_file),
        config.max_tokens,
        Precision::F32,
    )?;
    head_vs
        .load(&head_file)
        .map_err(|e| io_err(&head_file, e))?;
    let logits_of = |idx: &[usize], progress: &mut dyn FnMut(&str)| {
        let texts: Vec<&str> = idx.iter().map(|&i| examples[i].text.as_str()).collect();
        let embeddings = embed_texts(&shipped, &texts, progress)?;
        Ok::<_, SentimentError>(tch::no_grad(|| head.logits_rows(&embeddings)))
    };
    let val_logits = logits_of(&splits.validation, progress)?;
    let test_logits = logits_of(&splits.test, progress)?;
    let val_acc = evaluate(
        &argmax_labels(&val_logits)?,
        &gold(examples, &splits.validation),
    )
    .accuracy;
    Ok(Fitted {
        val_logits,
        test_logits,
        encoder_sha256: shipped.sha256.clone(),
        fine_tuned_encoder: Some(file),
        training: json!({
            "mode": "fine-tune",
            "fine_tune": {
                "epochs": config.epochs, "best_epoch": best_epoch,
                "train_sentences": train.len(), "batch_size": batch_size,
                "optimizer": "AdamW", "weight_decay": config.weight_decay,
                "encoder_learning_rate": fine_tune.encoder_learning_rate,
                "head_learning_rate": config.learning_rate,
                "warmup": fine_tune.warmup, "clip_norm": fine_tune.clip_norm,
                "hidden": config.hidden, "dropout": config.dropout, "seed": config.seed,
                "frozen": ["embeddings.word_embeddings.weight"], "stored_as": "f16",
                "epoch_losses": epoch_losses,
                "validation_accuracy_in_training": best_acc,
                "seconds": seconds,
            },
        }),
        validation_accuracy: val_acc,
    })
}

/// The mean training loss of each epoch, as recorded on a fine-tuned card.
pub fn epoch_losses(card: &crate::transformer::ModelCard) -> Vec<f64> {
    card.training["fine_tune"]["epoch_losses"]
        .as_array()
        .map(|a| a.iter().filter_map(serde_json::Value::as_f64).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_warms_up_then_decays_to_zero() {
        let f: Vec<f64> = (0..10).map(|s| schedule(s, 10, 0.2)).collect();
        assert_eq!(f[0], 0.5);
        assert_eq!(f[1], 1.0);
        assert_eq!(f[2], 1.0, "{f:?}");
        assert!(f.windows(2).skip(2).all(|w| w[1] < w[0]), "{f:?}");
        assert!(f[9] > 0.0 && f[9] < 0.2, "{f:?}");
    }

    #[test]
    fn batches_cover_every_example_once_in_similar_lengths() {
        tch::manual_seed(1);
        let examples: Vec<Example> = (0..200)
            .map(|i| Example {
                set: "tweets",
                id: i.to_string(),
                text: "x".repeat(1 + i % 37),
                rating: 0.0,
                label: crate::SentimentLabel::Neutral,
                split: crate::data::Split::Train,
            })
            .collect();
        let idx: Vec<usize> = (0..200).collect();
        let got = batches(&idx, &examples, 8);
        assert_eq!(got.len(), 25);
        let mut all: Vec<usize> = got.iter().flatten().copied().collect();
        all.sort_unstable();
        assert_eq!(all, idx);
        // Sorted within each batch's run: a batch spans few lengths.
        for b in &got {
            let lens: Vec<usize> = b.iter().map(|&i| examples[i].text.len()).collect();
            assert!(lens.windows(2).all(|w| w[0] <= w[1]), "{lens:?}");
        }
    }
}
