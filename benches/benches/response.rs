//! Response drafting throughput per backend, through the whole processor (intent,
//! drafting, guardrails, review policy), in messages/s on sample messages:
//! templates; retrieval over a memory of the ~3,000 sample messages' approved replies; and an OpenAI-compatible
//! LLM (llama.cpp's server with SmolLM2-135M, 32-token replies, 2 slots) — the last needs
//! `scripts/setup.sh` and is skipped without it.

use std::collections::BTreeMap;
use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use insights_response::intent::classify;
use insights_response::openai::OpenAiConfig;
use insights_response::resilience::ResilienceConfig;
use insights_response::retrieval::{Approved, primary_language};
use insights_response::{ResponseConfig, ResponseProcessor};
use insights_runtime::drive;
use insights_schemas::{
    Envelope, Event, InteractionContext, SentimentLabel, SentimentScored, Timestamp,
};

/// (text, language) of the valid sample interactions.
fn samples() -> Vec<(String, String)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples/interactions.jsonl");
    std::fs::read_to_string(path)
        .expect("samples")
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| {
            Some((
                v["text"].as_str()?.to_owned(),
                v["language"].as_str().unwrap_or("en").to_owned(),
            ))
        })
        .filter(|(t, _)| !t.is_empty() && t.len() < 500)
        .collect()
}

fn scored(n: usize, text: &str, language: &str) -> Envelope {
    Envelope {
        event_id: uuid::Uuid::from_u128(n as u128 + 1),
        schema_version: 1,
        stream_id: format!("conversation-c{n}"),
        causation_id: None,
        correlation_id: format!("corr-{n}"),
        occurred_at: Timestamp(1_790_000_000_000_000),
        producer: "sentiment".into(),
        producer_version: "bench".into(),
        event: Event::SentimentScored(SentimentScored {
            context: InteractionContext {
                interaction_id: format!("i-{n}"),
                conversation_id: format!("c{n}"),
                tenant_id: "acme".into(),
                customer_pseudonym: "p".into(),
                channel: "chat".into(),
                product: Some("router".into()),
                language: Some(language.into()),
                demographics: BTreeMap::new(),
                sent_at: Timestamp(1_790_000_000_000_000),
            },
            text: text.into(),
            label: if n.is_multiple_of(3) {
                SentimentLabel::Negative
            } else {
                SentimentLabel::Neutral
            },
            scores: BTreeMap::new(),
            confidence: 0.7,
            model_name: "m".into(),
            model_version: "1".into(),
            backend: "transformer".into(),
            fallback: false,
            latency_micros: 1,
        }),
    }
}

fn run_batch(p: &mut ResponseProcessor, inputs: &[Envelope]) -> usize {
    drive(
        p,
        "interactions.scored",
        inputs,
        Timestamp(1_790_000_001_000_000),
    )
    .into_iter()
    .map(|r| r.map_or(0, |o| o.len()))
    .sum()
}

fn bench(c: &mut Criterion) {
    let samples = samples();
    let batch: Vec<Envelope> = samples
        .iter()
        .step_by(7)
        .take(64)
        .enumerate()
        .map(|(n, (t, l))| scored(n, t, l))
        .collect();
    let mut group = c.benchmark_group("response");
    group.sample_size(20);
    group.throughput(Throughput::Elements(batch.len() as u64));

    let mut template = ResponseProcessor::build(
        &ResponseConfig {
            backends: vec!["template".into()],
            ..Default::default()
        },
        None,
        Vec::new(),
        None,
    )
    .expect("builds");
    group.bench_function("template", |b| b.iter(|| run_batch(&mut template, &batch)));

    // Reviewers' approvals for every valid sample message (about 3,000): each message of
    // the batch finds its own, after scoring every earlier reply of its intent and
    // language (the hit path, the costlier one).
    let seed: Vec<Approved> = samples
        .iter()
        .take(5_000)
        .map(|(t, l)| Approved {
            inquiry: t.clone(),
            reply: format!("Approved reply to: {t}"),
            intent: classify(t).intent,
            language: primary_language(Some(l)),
        })
        .collect();
    let mut retrieval = ResponseProcessor::build(
        &ResponseConfig {
            backends: vec!["retrieval".into(), "template".into()],
            ..Default::default()
        },
        None,
        seed,
        None,
    )
    .expect("builds");
    group.bench_function("retrieval_3k", |b| {
        b.iter(|| run_batch(&mut retrieval, &batch))
    });
    group.finish();

    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.tools/llm-venv/bin/python");
    if !venv.exists() {
        eprintln!("response/openai skipped: run scripts/setup.sh for the LLM server");
        return;
    }
    let server = testkit::LlmServer::start();
    let small: Vec<Envelope> = batch.iter().take(8).cloned().collect();
    let config = ResponseConfig {
        backends: vec!["openai".into(), "template".into()],
        concurrency: 2,
        openai: OpenAiConfig {
            base_url: Some(server.base_url()),
            model: "smollm2-135m".into(),
            max_tokens: 32,
            resilience: ResilienceConfig {
                timeout_ms: 120_000,
                requests_per_minute: 0,
                ..Default::default()
            },
            ..Default::default()
        },
        ..Default::default()
    };
    let chat = insights_openai::chat_for(&config.openai, None).expect("a valid URL");
    let mut openai = ResponseProcessor::build(&config, None, Vec::new(), chat).expect("builds");
    let mut group = c.benchmark_group("response");
    group.sample_size(10);
    group.throughput(Throughput::Elements(small.len() as u64));
    group.bench_function("openai_smollm2_135m", |b| {
        b.iter(|| run_batch(&mut openai, &small))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
