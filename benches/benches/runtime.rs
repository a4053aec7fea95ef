//! Runtime throughput against the transport limit, on a real broker (Tansu 0.6.0).
//!
//! - **runtime**: a pass-through processor (one output per input, no logic) run by the
//!   runtime: consume → decode → process → append to the SQLite store → publish → commit;
//!   timed from start until the store holds every event.
//! - **transport limit**: plain rdkafka, no runtime: consume the same messages and produce
//!   the same bytes to another topic, waiting for every delivery.
//!
//! Each is run `RUNS` times on fresh topics; the median is printed with the ratio.
//! `cargo bench -p insights-benches --bench runtime` (benches/run.sh runs it).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use insights_event_store::{EventStore, SqliteStore};
use insights_runtime::{
    Context, KafkaSettings, Metrics, Output, ProcessError, Processor, Shared, StopWhen, consumer,
    producer, run,
};
use insights_schemas::{
    Codec, Event, Format, Interaction, InteractionContext, InteractionScrubbed,
};
use insights_topology::ProcessorSettings;
use rdkafka::Message;
use rdkafka::consumer::Consumer;
use rdkafka::producer::FutureRecord;
use testkit::Tansu;

const N: usize = 20_000;
const RUNS: usize = 3;

/// One output per input, no logic: what the runtime costs by itself.
struct PassThrough {
    out: String,
}

impl Processor for PassThrough {
    type Input = Interaction;
    fn name(&self) -> &str {
        "passthrough"
    }
    fn version(&self) -> &str {
        "bench"
    }
    fn process(&mut self, i: &Interaction, ctx: &Context<'_>) -> Result<Vec<Output>, ProcessError> {
        Ok(vec![Output {
            topic: self.out.clone(),
            stream_id: format!("conversation-{}", i.conversation_id),
            key: i.conversation_id.clone(),
            event: Event::InteractionScrubbed(InteractionScrubbed {
                context: InteractionContext::of(i, ctx.input_id, ""),
                text: i.text.clone(),
                pii: vec![],
                pii_counts: BTreeMap::new(),
                sealed: Vec::new(),
            }),
        }])
    }
}

fn message(n: usize) -> Vec<u8> {
    format!(
        r#"{{"interaction_id":"b-{n}","conversation_id":"c-{}","customer_id":"u-{n}","channel":"chat","product":"router","language":"en","text":"my router drops the connection every evening, message {n}","demographics":{{"age_band":"25-34"}},"sent_at":1790000000000000}}"#,
        n % 1000
    )
    .into_bytes()
}

async fn fill(tansu: &Tansu, topic: &str) {
    tansu.create_topic(topic, 6);
    let p = producer(&KafkaSettings::new(tansu.brokers())).expect("producer");
    let sends: Vec<_> = (0..N)
        .map(|n| {
            let p = p.clone();
            let topic = topic.to_owned();
            async move {
                let payload = message(n);
                let key = format!("c-{}", n % 1000);
                p.send(
                    FutureRecord::to(&topic).key(&key).payload(&payload),
                    Duration::from_secs(30),
                )
                .await
                .map_err(|(e, _)| e)
                .expect("delivered");
            }
        })
        .collect();
    futures::future::join_all(sends).await;
}

async fn runtime_once(tansu: &Tansu, run_id: usize) -> f64 {
    let input = format!("in-{run_id}");
    fill(tansu, &input).await;
    let (out, dead) = (format!("out-{run_id}"), format!("dead-{run_id}"));
    tansu.create_topic(&out, 6);
    tansu.create_topic(&dead, 1);
    let dir = tempfile::tempdir().expect("temp dir");
    let store: Arc<dyn EventStore> = Arc::new(
        SqliteStore::open(
            &format!("sqlite://{}", dir.path().join("e.db").display()),
            4,
        )
        .await
        .expect("store"),
    );
    let settings = ProcessorSettings {
        name: "passthrough".into(),
        inputs: vec![input],
        outputs: vec![out.clone()],
        group: format!("bench-runtime-{run_id}"),
        batch_size: 500,
        linger_ms: 20,
        concurrency: 1,
        max_message_bytes: 1 << 20,
        dead_letter_topic: dead,
    };
    let shared = Shared {
        store: Arc::clone(&store),
        kafka: KafkaSettings::new(tansu.brokers()),
        metrics: Metrics::new(),
        codec: Codec::new(),
        output_format: Format::SingleObject,
    };
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let started = Instant::now();
    let worker = tokio::spawn(run(
        PassThrough { out },
        settings,
        shared,
        StopWhen::Shutdown,
        async move {
            let _ = rx.await;
        },
    ));
    let mut first_event = None;
    loop {
        let head = store.head().await.expect("head").position;
        if head > 0 && first_event.is_none() {
            first_event = Some(started.elapsed());
        }
        if head >= N as u64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let elapsed = started.elapsed();
    let _ = tx.send(());
    worker.await.expect("worker task").expect("worker");
    // Exclude the consumer group join, which the transport run pays too but differently.
    let join = first_event.unwrap_or_default();
    N as f64 / (elapsed - join).as_secs_f64()
}

async fn transport_once(tansu: &Tansu, run_id: usize) -> f64 {
    let input = format!("tin-{run_id}");
    fill(tansu, &input).await;
    let out = format!("tout-{run_id}");
    tansu.create_topic(&out, 6);
    let kafka = KafkaSettings::new(tansu.brokers());
    let c = consumer(&kafka, &format!("bench-transport-{run_id}")).expect("consumer");
    c.subscribe(&[&input]).expect("subscribes");
    let p = producer(&kafka).expect("producer");
    let mut pending = Vec::with_capacity(N);
    let started = Instant::now();
    let mut first = None;
    for _ in 0..N {
        let m = c.recv().await.expect("message");
        first.get_or_insert_with(|| started.elapsed());
        c.store_offset_from_message(&m).expect("stores offset");
        let payload = m.payload().unwrap_or_default().to_vec();
        let key = m.key().unwrap_or_default().to_vec();
        let p = p.clone();
        pending.push(tokio::spawn(async move {
            p.send(
                FutureRecord::to("tout").key(&key).payload(&payload),
                Duration::from_secs(30),
            )
            .await
            .map_err(|(e, _)| e)
            .expect("delivered");
        }));
    }
    for t in pending {
        t.await.expect("send task");
    }
    c.commit_consumer_state(rdkafka::consumer::CommitMode::Sync)
        .expect("commits");
    let elapsed = started.elapsed() - first.unwrap_or_default();
    N as f64 / elapsed.as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    // `cargo test --benches` runs bench targets with --test: nothing to check here.
    if std::env::args().any(|a| a == "--test" || a == "--list") {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let tansu = Tansu::start();
        let mut runtime = Vec::new();
        let mut transport = Vec::new();
        for i in 0..RUNS {
            transport.push(transport_once(&tansu, i).await);
            runtime.push(runtime_once(&tansu, i).await);
            eprintln!(
                "run {i}: transport {:.0}/s, runtime {:.0}/s",
                transport[i], runtime[i]
            );
        }
        let (r, t) = (median(runtime), median(transport));
        println!(
            "| runtime (pass-through → SQLite store → publish → commit) | {r:.0} messages/s |"
        );
        println!(
            "| transport limit (rdkafka consume + produce, same bytes)  | {t:.0} messages/s |"
        );
        println!("| runtime / transport | {:.2}× |", r / t);
    });
}
