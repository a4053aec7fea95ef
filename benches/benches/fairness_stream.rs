//! The streaming fairness processor: outcome events/s through `process` (dedupe by id,
//! five attribute sets, daily windows closing as the watermark moves, reports and alerts
//! built), on 100,000 seeded `SentimentScored` events over ten days — the same shape of
//! rows as `benches/fairness_eval.py` (gender × age band × region).

use std::collections::BTreeMap;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use insights_fairness::{FairnessConfig, FairnessProcessor};
use insights_runtime::{Context, Processor, Source};
use insights_schemas::{
    Envelope, Event, InteractionContext, SentimentLabel, SentimentScored, Timestamp,
};

const T0: i64 = 1_790_035_200_000_000;
const DAY: i64 = 86_400_000_000;

fn events(n: usize) -> Vec<Envelope> {
    let mut state: u64 = 42;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..n)
        .map(|i| {
            let g = (next() % 3) as usize;
            let a = (next() % 4) as usize;
            let r = (next() % 2) as usize;
            let negative = (next() % 100) < (20 + 15 * g + 10 * a) as u64;
            let t = T0 + (i as i64) * (10 * DAY) / n as i64;
            Envelope {
                event_id: uuid::Uuid::from_u128(i as u128 + 1),
                schema_version: 1,
                stream_id: "s".into(),
                causation_id: None,
                correlation_id: "c".into(),
                occurred_at: Timestamp(t),
                producer: "bench".into(),
                producer_version: "1".into(),
                event: Event::SentimentScored(SentimentScored {
                    context: InteractionContext {
                        interaction_id: format!("i-{i}"),
                        conversation_id: format!("c-{i}"),
                        tenant_id: "acme".into(),
                        customer_pseudonym: "p".into(),
                        channel: "chat".into(),
                        product: None,
                        language: None,
                        demographics: BTreeMap::from([
                            ("gender".into(), ["female", "male", "nonbinary"][g].into()),
                            (
                                "age_band".into(),
                                ["18-24", "25-44", "45-64", "65+"][a].into(),
                            ),
                            ("region".into(), ["eu", "na"][r].into()),
                        ]),
                        sent_at: Timestamp(t),
                    },
                    text: String::new(),
                    label: if negative {
                        SentimentLabel::Negative
                    } else {
                        SentimentLabel::Neutral
                    },
                    scores: BTreeMap::new(),
                    confidence: 0.9,
                    model_name: "m".into(),
                    model_version: "1".into(),
                    backend: "transformer".into(),
                    fallback: false,
                    latency_micros: 1,
                }),
            }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let input = events(100_000);
    let config = FairnessConfig {
        attributes: vec!["gender".into(), "age_band".into(), "region".into()],
        intersections: vec![
            vec!["gender".into(), "age_band".into()],
            vec!["gender".into(), "age_band".into(), "region".into()],
        ],
        privileged: BTreeMap::from([("gender".into(), "male".into())]),
        ..Default::default()
    };
    let source = Source {
        topic: "interactions.scored".into(),
        partition: 0,
        offset: 0,
    };
    let mut group = c.benchmark_group("fairness_stream");
    group.sample_size(10);
    group.throughput(Throughput::Elements(input.len() as u64));
    group.bench_function("100k_events_5_attribute_sets", |b| {
        b.iter(|| {
            let mut p = FairnessProcessor::new(config.clone()).expect("valid");
            let mut reports = 0;
            for e in &input {
                let id = e.event_id.to_string();
                let ctx = Context {
                    input_id: &id,
                    correlation_id: "c",
                    input_time: e.occurred_at,
                    now: Timestamp(T0),
                    source: &source,
                };
                reports += p.process(e, &ctx).map_or(0, |o| o.len());
            }
            reports
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
