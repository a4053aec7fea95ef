//! An exported audit bundle round-trips: written from a real (SQLite) store, it verifies
//! offline with the store's own head, and a changed byte breaks it.

use insights_event_store::{AppendBatch, EventData, EventStore, SqliteStore, bundle};

fn event(n: u32) -> EventData {
    EventData {
        event_id: uuid::Uuid::from_u128(u128::from(n) + 1),
        stream_id: format!("conversation-{}", n % 3),
        event_type: "T".into(),
        schema_version: 1,
        causation_id: None,
        correlation_id: format!("c-{n}"),
        occurred_at: 1_790_000_000_000_000 + i64::from(n),
        producer: "bundle-test".into(),
        producer_version: "1".into(),
        payload: format!(r#"{{"n":{n},"text":"é \"quoted\""}}"#).into_bytes(),
    }
}

#[tokio::test]
async fn a_store_exports_a_bundle_that_verifies_offline() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("events.db").display());
    let store = SqliteStore::open(&url, 2).await.expect("opens the store");
    for batch in 0..3 {
        store
            .append(AppendBatch::new(
                (0..4).map(|i| event(batch * 4 + i)).collect(),
            ))
            .await
            .expect("appends");
    }
    let mut out = Vec::new();
    let mut pages = Vec::new();
    let head = bundle::export(&store, &mut out, |p| pages.push(p))
        .await
        .expect("exports");
    assert_eq!(head, store.head().await.expect("head"));
    assert_eq!(pages.last(), Some(&12), "progress reaches the head");

    let report = bundle::verify(out.as_slice(), |_| {}).expect("reads the bundle");
    assert!(report.is_intact(), "{:?}", report.broken);
    assert_eq!(report.events, 12);
    assert_eq!(report.head_hash, head.hash);

    let text = String::from_utf8(out).expect("UTF-8");
    let changed = text.replacen(r#"\"n\":5"#, r#"\"n\":6"#, 1);
    assert_ne!(changed, text, "the test changes a payload");
    let report = bundle::verify(changed.as_bytes(), |_| {}).expect("reads the bundle");
    assert!(
        !report.is_intact(),
        "a changed payload must break the chain"
    );
}
