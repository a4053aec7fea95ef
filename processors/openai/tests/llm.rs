//! The OpenAI-compatible backend against a real LLM server (llama.cpp with SmolLM2-135M,
//! installed by scripts/setup.sh): the protocol, the circuit breaker when the server dies,
//! timeouts against a server that never answers, and the rate limit. Reply quality is not
//! tested: the model is tiny.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use insights_processor::{Output, drive};
use insights_response::openai::OpenAiConfig;
use insights_response::resilience::ResilienceConfig;
use insights_response::retrieval::Approved;
use insights_response::{ResponseConfig, ResponseError, ResponseProcessor};
use insights_schemas::{
    Envelope, Event, InteractionContext, SentimentLabel, SentimentScored, Timestamp,
};
use prometheus::Registry;
use testkit::{LlmServer, SilentServer};

/// The processor with its openai backend calling the server over HTTP.
fn build(
    config: &ResponseConfig,
    registry: Option<&Registry>,
    seed: Vec<Approved>,
) -> Result<ResponseProcessor, ResponseError> {
    let chat = insights_openai::chat_for(&config.openai, None).expect("a valid URL");
    ResponseProcessor::build(config, registry, seed, chat)
}

fn scored(n: u128, text: &str) -> Envelope {
    Envelope {
        event_id: uuid::Uuid::from_u128(n),
        schema_version: 1,
        stream_id: format!("conversation-c{n}"),
        causation_id: None,
        correlation_id: format!("corr-{n}"),
        occurred_at: Timestamp(1_790_000_000_000_000 + n as i64),
        producer: "sentiment".into(),
        producer_version: "test".into(),
        event: Event::SentimentScored(SentimentScored {
            context: InteractionContext {
                interaction_id: format!("i-{n}"),
                conversation_id: format!("c{n}"),
                tenant_id: "acme".into(),
                customer_pseudonym: "p".into(),
                channel: "chat".into(),
                product: Some("router".into()),
                language: Some("en".into()),
                demographics: BTreeMap::new(),
                sent_at: Timestamp(1_790_000_000_000_000),
            },
            text: text.into(),
            label: SentimentLabel::Neutral,
            scores: BTreeMap::new(),
            confidence: 0.9,
            model_name: "m".into(),
            model_version: "1".into(),
            backend: "transformer".into(),
            fallback: false,
            latency_micros: 1,
        }),
    }
}

/// Runs a batch the way the runtime does: `prepare` on all, then `process` on each.
fn run_batch(p: &mut ResponseProcessor, inputs: &[Envelope]) -> Vec<Vec<Output>> {
    drive(
        p,
        "interactions.scored",
        inputs,
        Timestamp(1_790_000_001_000_000),
    )
    .into_iter()
    .map(|r| r.expect("processed"))
    .collect()
}

fn config(base_url: String, resilience: ResilienceConfig) -> ResponseConfig {
    ResponseConfig {
        backends: vec!["openai".into(), "template".into()],
        openai: OpenAiConfig {
            base_url: Some(base_url),
            model: "smollm2-135m".into(),
            max_tokens: 16,
            resilience,
            ..Default::default()
        },
        ..Default::default()
    }
}

fn drafted(outputs: &[Output]) -> &insights_schemas::ResponseDrafted {
    match &outputs[0].event {
        Event::ResponseDrafted(d) => d,
        other => panic!("expected a draft, got {other:?}"),
    }
}

fn metric(registry: &Registry, name: &str, labels: &[(&str, &str)]) -> f64 {
    registry
        .gather()
        .iter()
        .filter(|f| f.name() == name)
        .flat_map(|f| f.get_metric().iter())
        .filter(|m| {
            labels.iter().all(|(k, v)| {
                m.get_label()
                    .iter()
                    .any(|l| l.name() == *k && l.value() == *v)
            })
        })
        // A family is a counter or a gauge; the other reads 0.
        .map(|m| m.get_counter().get_value() + m.get_gauge().get_value())
        .sum()
}

#[test]
fn drafts_through_a_real_llm_server_then_falls_back_when_it_dies() {
    let mut server = LlmServer::start();
    let registry = Registry::new();
    let mut p = build(
        &config(
            server.base_url(),
            ResilienceConfig {
                timeout_ms: 30_000,
                max_retries: 1,
                initial_backoff_ms: 10,
                breaker_failures: 2,
                breaker_open_ms: 60_000,
                ..Default::default()
            },
        ),
        Some(&registry),
        Vec::new(),
    )
    .expect("builds");
    assert_eq!(p.backends(), ["openai", "template"]);

    let first = run_batch(
        &mut p,
        &[
            scored(1, "How do I change the wifi password on my router?"),
            scored(2, "Can you tell me when my contract ends?"),
        ],
    );
    for out in &first {
        let d = drafted(out);
        assert_eq!(d.backend, "openai", "{d:?}");
        assert!(!d.fell_back);
        assert_eq!(d.model.as_deref(), Some("smollm2-135m"));
        assert!(d.prompt_tokens.unwrap_or(0) > 0);
        assert!(d.completion_tokens.unwrap_or(0) > 0);
        assert!(!d.draft_text.trim().is_empty());
        assert_eq!(out.len(), 2, "a draft and a decision");
    }
    assert_eq!(
        metric(
            &registry,
            "insights_response_backend_calls_total",
            &[("backend", "openai"), ("outcome", "ok")]
        ),
        2.0
    );

    // The server dies mid-run: every message still gets a draft (a template), marked as a
    // fallback and sent to review, never approved on its own.
    server.kill();
    let inputs: Vec<Envelope> = (10..16)
        .map(|n| scored(n, "My router is slow today"))
        .collect();
    let after = run_batch(&mut p, &inputs);
    assert_eq!(after.len(), inputs.len(), "nothing lost");
    for out in &after {
        let d = drafted(out);
        assert_eq!(d.backend, "template");
        assert!(d.fell_back);
        let Event::ReviewRequested(r) = &out[1].event else {
            panic!("a fallback draft must be reviewed: {out:?}")
        };
        assert!(
            r.reasons.iter().any(|x| x == "template_fallback"),
            "{:?}",
            r.reasons
        );
    }
    assert_eq!(
        metric(
            &registry,
            "insights_response_breaker_state",
            &[("backend", "openai")]
        ),
        1.0,
        "the breaker is open"
    );
    let unavailable = metric(
        &registry,
        "insights_response_backend_calls_total",
        &[("backend", "openai"), ("outcome", "unavailable")],
    );
    let fast_failed = metric(
        &registry,
        "insights_response_backend_calls_total",
        &[("backend", "openai"), ("outcome", "breaker_open")],
    );
    assert!(unavailable >= 2.0, "{unavailable}");
    assert!(
        fast_failed >= 1.0,
        "calls after the breaker opened fail fast: {fast_failed}"
    );
    assert_eq!(unavailable + fast_failed, inputs.len() as f64);
}

#[test]
fn a_server_that_never_answers_times_out_into_a_fallback() {
    let silent = SilentServer::start();
    let registry = Registry::new();
    let mut p = build(
        &config(
            format!("http://{}/v1", silent.addr),
            ResilienceConfig {
                timeout_ms: 300,
                max_retries: 1,
                initial_backoff_ms: 10,
                ..Default::default()
            },
        ),
        Some(&registry),
        Vec::new(),
    )
    .expect("builds");
    let started = Instant::now();
    let out = run_batch(&mut p, &[scored(1, "Where is my order?")]);
    let d = drafted(&out[0]);
    assert_eq!((d.backend.as_str(), d.fell_back), ("template", true));
    assert!(
        matches!(out[0][1].event, Event::ReviewRequested(_)),
        "a timeout is never an approval"
    );
    assert_eq!(
        metric(
            &registry,
            "insights_response_backend_calls_total",
            &[("backend", "openai"), ("outcome", "timeout")]
        ),
        1.0
    );
    assert_eq!(
        metric(
            &registry,
            "insights_response_backend_retries_total",
            &[("backend", "openai")]
        ),
        1.0
    );
    // Two attempts of 300 ms: the timeout bounded the wait (a lower bound; no upper one).
    assert!(started.elapsed() >= Duration::from_millis(600));
}

#[test]
fn the_rate_limit_is_respected_against_the_real_server() {
    let server = LlmServer::start();
    let mut p = build(
        &ResponseConfig {
            concurrency: 8,
            ..config(
                server.base_url(),
                ResilienceConfig {
                    // Two requests a second, a burst of two.
                    requests_per_minute: 120,
                    max_queue_ms: 30_000,
                    timeout_ms: 60_000,
                    ..Default::default()
                },
            )
        },
        None,
        Vec::new(),
    )
    .expect("builds");
    let inputs: Vec<Envelope> = (1..=6).map(|n| scored(n, "Thanks for the help!")).collect();
    let started = Instant::now();
    let out = run_batch(&mut p, &inputs);
    // Six requests at two a second after a burst of two cannot finish in under 2 s,
    // however fast the server is.
    assert!(
        started.elapsed() >= Duration::from_millis(1_900),
        "{:?}",
        started.elapsed()
    );
    assert!(out.iter().all(|o| drafted(o).backend == "openai"));
}
