//! The drivers that work from the store, on a real SQLite store: `restore` hands a
//! processor its stored events before it consumes (and counts what does not decode), and
//! `reprocess` appends a version's outputs once, however often it runs.

use insights_event_store::envelope::to_event_data;
use insights_event_store::{AppendBatch, EventData, EventFilter, EventStore, SqliteStore};
use insights_runtime::offline::{Restored, StoredInputs, reprocess, restore};
use insights_runtime::{Context, Output, ProcessError, Processor};
use insights_schemas::{DeadLettered, Envelope, Event, SubjectErased, Timestamp};

/// Restores from erasures; turns each erasure into one dead letter naming its subject.
#[derive(Debug, Default)]
struct Echo {
    restored: Vec<String>,
    version: &'static str,
}

impl Processor for Echo {
    type Input = Envelope;

    fn name(&self) -> &str {
        "echo"
    }

    fn version(&self) -> &str {
        self.version
    }

    fn restores_from(&self) -> &'static [&'static str] {
        &["SubjectErased"]
    }

    fn restore(&mut self, events: &[Envelope]) {
        for e in events {
            if let Event::SubjectErased(s) = &e.event {
                self.restored.push(s.subject.clone());
            }
        }
    }

    fn process(&mut self, input: &Envelope, _: &Context<'_>) -> Result<Vec<Output>, ProcessError> {
        let Event::SubjectErased(s) = &input.event else {
            return Err(ProcessError::Poison("not an erasure".into()));
        };
        if s.subject == "refuse-me" {
            return Err(ProcessError::Poison("refused".into()));
        }
        Ok(vec![Output {
            topic: "out".into(),
            stream_id: format!("echo-{}", s.subject),
            key: s.subject.clone(),
            event: Event::DeadLettered(DeadLettered {
                processor: "echo".into(),
                error_class: "poison".into(),
                error: s.subject.clone(),
                topic: "in".into(),
                partition: 0,
                offset: 0,
                payload_sha256: "00".into(),
                payload_size: 0,
            }),
        }])
    }
}

fn erasure(n: u128, subject: &str) -> Envelope {
    Envelope {
        event_id: uuid::Uuid::from_u128(n),
        schema_version: 1,
        stream_id: format!("subject-{subject}"),
        causation_id: None,
        correlation_id: format!("c-{n}"),
        occurred_at: Timestamp(1_790_000_000_000_000 + n as i64),
        producer: "test".into(),
        producer_version: "1".into(),
        event: Event::SubjectErased(SubjectErased {
            subject: subject.into(),
            requested_by: "dpo".into(),
            key_destroyed_at: Timestamp(1_790_000_000_000_000),
        }),
    }
}

async fn store_with_inputs(broken: bool) -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("events.db").display());
    let store = SqliteStore::open(&url, 2).await.expect("opens the store");
    let mut rows: Vec<EventData> = ["ana", "ben", "refuse-me"]
        .iter()
        .enumerate()
        .map(|(i, s)| to_event_data(&erasure(i as u128 + 1, s)))
        .collect();
    // An erasure whose payload is not one: restore skips and counts it.
    if broken {
        let mut row = to_event_data(&erasure(9, "broken"));
        row.payload = br#"{"nothing": "here"}"#.to_vec();
        rows.push(row);
    }
    store.append(AppendBatch::new(rows)).await.expect("appends");
    (dir, store)
}

#[tokio::test]
async fn restore_folds_the_processors_stored_events_and_counts_the_undecodable() {
    let (_dir, store) = store_with_inputs(true).await;
    let (echo, restored) = restore(Echo::default(), &store).await.expect("restores");
    assert_eq!(echo.restored, vec!["ana", "ben", "refuse-me"]);
    assert_eq!(
        restored,
        Restored {
            events: 3,
            undecodable: 1
        }
    );
}

async fn outputs(store: &SqliteStore) -> usize {
    store
        .read_all(0, 100, &EventFilter::Types(vec!["DeadLettered".into()]))
        .await
        .expect("reads")
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reprocessing_appends_a_versions_outputs_once() {
    let (_dir, store) = store_with_inputs(false).await;
    let inputs = StoredInputs {
        topic: "in".into(),
        types: vec!["SubjectErased".into()],
        batch: 2,
    };
    let now = Timestamp(1_800_000_000_000_000);
    let mut echo = Echo {
        version: "1",
        ..Echo::default()
    };
    let mut refused = Vec::new();
    let mut progress = Vec::new();
    let done = reprocess(
        &store,
        &mut echo,
        &inputs,
        now,
        |p| progress.push(p),
        |input, _| refused.push(input.event_id),
    )
    .await
    .expect("reprocesses");
    assert_eq!(
        (done.inputs, done.appended, done.already, done.refused),
        (3, 2, 0, 1)
    );
    assert_eq!(refused, vec![uuid::Uuid::from_u128(3)]);
    assert_eq!(progress, vec![2, 3], "progress per page, up to the head");
    assert_eq!(outputs(&store).await, 2);

    // The same version again (after a crash, say): nothing twice.
    let again = reprocess(&store, &mut echo, &inputs, now, |_| {}, |_, _| {})
        .await
        .expect("reprocesses");
    assert_eq!((again.appended, again.already), (0, 2));
    // A new version writes next to the old one.
    let mut v2 = Echo {
        version: "2",
        ..Echo::default()
    };
    let next = reprocess(&store, &mut v2, &inputs, now, |_| {}, |_, _| {})
        .await
        .expect("reprocesses");
    assert_eq!(next.appended, 2);
    assert_eq!(outputs(&store).await, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_input_that_does_not_decode_stops_reprocessing_naming_it() {
    let (_dir, store) = store_with_inputs(true).await;
    let inputs = StoredInputs {
        topic: "in".into(),
        types: vec!["SubjectErased".into()],
        batch: 10,
    };
    let err = reprocess(
        &store,
        &mut Echo::default(),
        &inputs,
        Timestamp(0),
        |_| {},
        |_, _| {},
    )
    .await
    .expect_err("the broken input stops the run");
    assert!(err.to_string().contains("position 4"), "{err}");
}
