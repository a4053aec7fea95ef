//! Fine-tuning on a tiny set: the training loss falls, the written model loads the way the
//! processor loads it and scores, and a changed weights file is refused.

use std::path::{Path, PathBuf};

use insights_sentiment::Backend;
use insights_sentiment::train::{FineTune, TrainConfig, train};
use insights_sentiment::transformer::{DEFAULT_ENCODER_DIR, ModelCard, TransformerBackend};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A scratch directory, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        let dir = std::env::temp_dir().join(format!("insights-fine-tune-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("a scratch directory");
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The four VADER files, each with a few clearly rated sentences.
fn write_tiny_gold(dir: &Path) {
    let files = [
        "tweets_GroundTruth.txt",
        "movieReviewSnippets_GroundTruth.txt",
        "amazonReviewSnippets_GroundTruth.txt",
        "nytEditorialSnippets_GroundTruth.txt",
    ];
    for (f, file) in files.iter().enumerate() {
        let mut text = String::new();
        for i in 0..12 {
            let id = f * 100 + i;
            let (rating, sentence) = match i % 3 {
                0 => (3.1, format!("I love it, wonderful service number {id}!")),
                1 => (
                    -3.2,
                    format!("Awful, broken again and nobody helps, case {id}."),
                ),
                _ => (0.0, format!("The parcel {id} arrives on Tuesday.")),
            };
            text.push_str(&format!("{id}\t{rating}\t{sentence}\n"));
        }
        std::fs::write(dir.join(file), text).expect("writes a gold file");
    }
}

#[test]
fn fine_tuning_lowers_the_loss_and_the_result_loads_and_scores() {
    let scratch = Scratch::new();
    let data = scratch.0.join("data");
    let out = scratch.0.join("model");
    std::fs::create_dir_all(&data).expect("data dir");
    write_tiny_gold(&data);
    let encoder_dir = root().join(DEFAULT_ENCODER_DIR);
    let config = TrainConfig {
        data_dir: data,
        support_file: None,
        encoder_dir: encoder_dir.clone(),
        out_dir: out.clone(),
        epochs: 4,
        batch_size: 8,
        learning_rate: 2e-3,
        max_tokens: 32,
        fine_tune: Some(FineTune {
            encoder_learning_rate: 1e-4,
            ..FineTune::default()
        }),
        ..TrainConfig::fine_tuning()
    };
    let card = train(&config, &mut |line| eprintln!("train: {line}"))
        .expect("fine-tuning runs (scripts/setup.sh installs the encoder)");

    let losses = insights_sentiment::finetune::epoch_losses(&card);
    assert_eq!(
        losses.len(),
        4,
        "one mean loss per epoch: {:?}",
        card.training
    );
    assert!(
        losses[3] < losses[0],
        "the training loss should fall over four epochs: {losses:?}"
    );

    // The card on disk names the weights file by its checksum.
    let written = ModelCard::read(&out).expect("model.json");
    let file = written
        .fine_tuned_encoder
        .clone()
        .expect("a fine-tuned card names its encoder weights");
    file.verified(&out).expect("the weights match the card");

    let mut model = TransformerBackend::load(&out, &encoder_dir).expect("the result loads");
    let texts = ["I love it, wonderful service!", "Awful, broken again."];
    let scored = model.predict(&texts).expect("scores");
    assert_eq!(scored.len(), 2);
    for p in &scored {
        let sum: f64 = p.probs.iter().sum();
        assert!((sum - 1.0).abs() < 1e-9, "{p:?}");
    }

    // One changed byte in the weights: refused, with the file named.
    let path = out.join(&file.file);
    let mut bytes = std::fs::read(&path).expect("reads the weights");
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&path, bytes).expect("rewrites the weights");
    let err = TransformerBackend::load(&out, &encoder_dir)
        .expect_err("changed weights must not load")
        .to_string();
    assert!(err.contains("encoder.safetensors"), "{err}");
}
