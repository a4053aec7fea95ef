//! Sentiment backends: sentences/s at batch 1 and 32 on sentences from the VADER test split
//! (the transformer needs `scripts/setup.sh` and the shipped model; skipped without them).
//! The Python peer runs the same encoder and head in `benches/sentiment_eval.py`.

use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use insights_sentiment::data::{Split, load_gold};
use insights_sentiment::lexicon::LexiconBackend;
use insights_sentiment::pool::ModelChoice;
use insights_sentiment::transformer::{
    DEFAULT_ENCODER_DIR, DEFAULT_MODEL_DIR, Precision, TransformerBackend,
};
use insights_sentiment::{Backend, BackendKind, PoolConfig, Scorer};

fn root(p: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(p)
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn sentences(n: usize) -> Vec<String> {
    let examples = load_gold(&root(".tools/data/vader")).expect("run scripts/setup.sh");
    examples
        .into_iter()
        .filter(|e| e.split == Split::Test)
        .take(n)
        .map(|e| e.text)
        .collect()
}

fn bench(c: &mut Criterion, name: &str, backend: &mut dyn Backend, texts: &[&str]) {
    let mut group = c.benchmark_group(format!("sentiment/{name}"));
    group.sample_size(10);
    for batch in [1usize, 32] {
        group.throughput(Throughput::Elements(texts.len() as u64));
        group.bench_function(format!("batch{batch}"), |b| {
            b.iter(|| {
                for chunk in texts.chunks(batch) {
                    backend.predict(chunk).expect("scores");
                }
            })
        });
    }
    group.finish();
}

/// The processor's path: the pool (length-sorted dynamic batches), cache off so every
/// iteration runs the model.
fn bench_pool(c: &mut Criterion, texts: &[&str], precision: Precision) {
    let mut group = c.benchmark_group(format!("sentiment/pool-{}", precision.name()));
    group.sample_size(10);
    group.throughput(Throughput::Elements(texts.len() as u64));
    for batch in [1usize, 32] {
        let scorer = Scorer::open(
            &ModelChoice {
                backend: BackendKind::Transformer,
                model_dir: root(DEFAULT_MODEL_DIR),
                encoder_dir: root(DEFAULT_ENCODER_DIR),
                precision,
                multilingual: None,
            },
            &PoolConfig {
                max_batch: batch,
                cache_entries: 0,
                // BENCH_WORKERS / BENCH_THREADS compare pool layouts.
                workers: env_or("BENCH_WORKERS", PoolConfig::default().workers),
                torch_threads: Some(env_or("BENCH_THREADS", 1)),
                ..PoolConfig::default()
            },
        );
        if scorer.fallback_reason().is_some() {
            eprintln!("skipping the pool: the transformer does not load");
            return;
        }
        group.bench_function(format!("batch{batch}"), |b| {
            b.iter(|| scorer.score(texts).expect("scores"))
        });
    }
    group.finish();
}

fn sentiment(c: &mut Criterion) {
    let owned = sentences(256);
    let texts: Vec<&str> = owned.iter().map(String::as_str).collect();
    // f32 and int8 always; bf16 where this CPU computes it natively (what `auto` picks).
    let mut precisions = vec![Precision::F32, Precision::Int8];
    if Precision::Auto.resolve() == Precision::Bf16 {
        precisions.push(Precision::Bf16);
    }
    for &precision in &precisions {
        match TransformerBackend::load_at(
            &root(DEFAULT_MODEL_DIR),
            &root(DEFAULT_ENCODER_DIR),
            precision,
        ) {
            Ok(mut model) => bench(
                c,
                &format!("transformer-{}", precision.name()),
                &mut model,
                &texts,
            ),
            Err(e) => eprintln!("skipping the transformer: {e}"),
        }
        bench_pool(c, &texts, precision);
    }
    bench(c, "lexicon", &mut LexiconBackend::default(), &texts);
}

criterion_group!(benches, sentiment);
criterion_main!(benches);
