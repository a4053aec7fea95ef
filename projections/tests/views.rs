//! The projections against both backends: every view folded from a known log, a crash in
//! the middle of a page, a rebuild that dies and one that swaps, a view as of a past
//! position, a version change, and anomalies raised once.
//!
//! PostgreSQL: `INSIGHTS_TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/test`),
//! a schema per test.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use insights_event_store::envelope::to_event_data;
use insights_event_store::{AppendBatch, EventFilter, EventStore};
use insights_projections::views::{self, anomalies::AnomalyConfig};
use insights_projections::{Db, Projection, ProjectionError, Recorded, Runner, Table, ViewTx};
use insights_schemas::{
    DeadLettered, Envelope, Event, FairnessAlertRaised, FairnessReported, GroupStats,
    GuardrailResult, MetricInterval, ResponseApproved, ResponseDrafted, ReviewClaimed,
    ReviewDecided, ReviewDecision, ReviewRequested, SentimentLabel, Timestamp, review_stream,
};
use serde_json::Value;
use testkit::events::{context, envelope, scored_in};
use uuid::Uuid;

const DAY: i64 = 86_400_000_000;
/// Days of traffic in the test log.
const DAYS: i64 = 11;
/// 2026-11-09T00:00:00Z.
const START: i64 = 1_794_182_400_000_000;

struct Fixture {
    store: Arc<dyn EventStore>,
    url: String,
    cleanup: Option<(String, String)>,
    _dir: Option<tempfile::TempDir>,
}

impl Fixture {
    async fn sqlite() -> Fixture {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("events.db").display());
        let store = insights_event_store::open(&url, 4).await.expect("store");
        Fixture {
            store,
            url,
            cleanup: None,
            _dir: Some(dir),
        }
    }

    async fn postgres() -> Fixture {
        let base = std::env::var("INSIGHTS_TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        let schema = format!("views_{}", Uuid::new_v4().simple());
        let admin = admin(&base).await;
        sqlx::query(&format!("CREATE SCHEMA {schema}"))
            .execute(&admin)
            .await
            .expect("schema");
        let url = format!("{base}?options=-c%20search_path%3D{schema}");
        let store = insights_event_store::open(&url, 4).await.expect("store");
        Fixture {
            store,
            url,
            cleanup: Some((base, schema)),
            _dir: None,
        }
    }

    async fn db(&self) -> Db {
        Db::connect(&self.url, 4).await.expect("views db")
    }

    async fn drop_schema(self) {
        if let Some((base, schema)) = &self.cleanup {
            let admin = admin(base).await;
            sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
                .execute(&admin)
                .await
                .expect("drop schema");
        }
    }

    async fn count(&self, event_type: &str) -> usize {
        self.store
            .read_all(0, 100_000, &EventFilter::Types(vec![event_type.into()]))
            .await
            .expect("read")
            .len()
    }
}

/// A plain connection to the test database's default schema.
async fn admin(url: &str) -> sqlx::AnyPool {
    sqlx::any::install_default_drivers();
    sqlx::AnyPool::connect(url)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {url} is required: {e}"))
}

/// The log the tests fold: 264 interactions over eleven days (two products, two channels),
/// each scrubbed, scored, drafted and then approved automatically or reviewed; product
/// tv-box's day 8 is all negative; three dead letters; a fairness report per day and an alert.
fn log() -> Vec<Envelope> {
    let mut out = Vec::new();
    let mut id = 1_000_u128;
    let mut next = || {
        id += 1;
        id
    };
    let labels = [
        SentimentLabel::Negative,
        SentimentLabel::Neutral,
        SentimentLabel::Positive,
        SentimentLabel::Positive,
    ];
    let mut n = 0_u128;
    for day in 0..DAYS {
        for product in ["router", "tv-box"] {
            for k in 0..12_i64 {
                n += 1;
                let mut c = context(n, START + day * DAY + k * 3_600_000_000);
                c.product = Some(product.into());
                c.channel = if k % 2 == 0 { "email" } else { "chat" }.into();
                c.demographics.insert(
                    "plan".into(),
                    if k % 3 == 0 { "premium" } else { "basic" }.into(),
                );
                let conv = c.conversation_id.clone();
                let label = if day == 8 && product == "tv-box" {
                    SentimentLabel::Negative
                } else {
                    labels[(k % 4) as usize]
                };
                out.push(envelope(
                    next(),
                    &conv,
                    "privacy",
                    Event::InteractionScrubbed(insights_schemas::InteractionScrubbed {
                        context: c.clone(),
                        text: format!("message {n} from <PERSON>"),
                        pii: vec![],
                        pii_counts: [("PERSON".to_owned(), 1)].into(),
                        sealed: Vec::new(),
                    }),
                ));
                out.push(scored_in(next(), c.clone(), "text", label, 0.8));
                let draft_id = next();
                out.push(envelope(
                    draft_id,
                    &conv,
                    "response",
                    Event::ResponseDrafted(ResponseDrafted {
                        context: c.clone(),
                        draft_text: "We are on it.".into(),
                        backend: if k % 4 == 0 { "template" } else { "openai" }.into(),
                        model: None,
                        intent: "technical".into(),
                        sentiment_label: "neutral".into(),
                        sentiment_confidence: 0.8,
                        guardrails: vec![GuardrailResult {
                            name: "no_pii".into(),
                            passed: k % 6 != 0,
                            detail: None,
                        }],
                        fell_back: k % 4 == 0,
                        latency_micros: 2_000,
                        prompt_tokens: None,
                        completion_tokens: None,
                    }),
                ));
                if label == SentimentLabel::Negative {
                    let review = next();
                    let review_id = Uuid::from_u128(review);
                    let mut request = envelope(
                        review,
                        &conv,
                        "response",
                        Event::ReviewRequested(ReviewRequested {
                            context: c.clone(),
                            draft_event_id: Uuid::from_u128(draft_id),
                            reasons: vec!["negative_sentiment".into()],
                            priority: "high".into(),
                            sla_deadline: Timestamp(START + 20 * DAY),
                            draft_text: "We are on it.".into(),
                            inquiry_text: "text".into(),
                            intent: "technical".into(),
                            sentiment_label: "negative".into(),
                            backend: "openai".into(),
                            opinions_required: 1,
                        }),
                    );
                    request.stream_id = review_stream(&review_id);
                    out.push(request);
                    if k % 2 == 0 {
                        let mut claim = envelope(
                            next(),
                            &conv,
                            "api",
                            Event::ReviewClaimed(ReviewClaimed {
                                review_id,
                                reviewer: "rita".into(),
                            }),
                        );
                        claim.stream_id = review_stream(&review_id);
                        out.push(claim);
                        let mut decided = envelope(
                            next(),
                            &conv,
                            "api",
                            Event::ReviewDecided(ReviewDecided {
                                context: c.clone(),
                                review_id,
                                reviewer: "rita".into(),
                                decision: ReviewDecision::Approve,
                                edited_text: None,
                                reason: None,
                                corrected_sentiment: None,
                                role: "sole".into(),
                                settles: true,
                            }),
                        );
                        decided.stream_id = review_stream(&review_id);
                        out.push(decided);
                        out.push(approved(next(), &c, draft_id, false));
                    }
                } else {
                    out.push(approved(next(), &c, draft_id, true));
                }
            }
        }
    }
    for i in 0..3 {
        out.push(envelope(
            next(),
            "dlq",
            "privacy",
            Event::DeadLettered(DeadLettered {
                processor: "privacy".into(),
                error_class: "poison".into(),
                error: format!("line {i} is not JSON"),
                topic: "interactions.raw".into(),
                partition: 0,
                offset: i,
                payload_sha256: "00".into(),
                payload_size: 3,
            }),
        ));
    }
    // A report per day, as the fairness processor emits them once every partition has
    // passed the day (the anomaly view's watermark); day 1 is unfair and alerts.
    for w in 0..DAYS {
        let dp = if w == 1 { 0.3 } else { 0.05 };
        let report = next();
        out.push(envelope(
            report,
            "fairness",
            "fairness",
            Event::FairnessReported(FairnessReported {
                window_start: Timestamp(START + w * DAY),
                window_end: Timestamp(START + (w + 1) * DAY),
                attributes: vec!["gender".into()],
                outcome: "negative_sentiment".into(),
                groups: vec![GroupStats {
                    group: "female".into(),
                    count: 40,
                    positives: 10,
                    selection_rate: Some(0.25),
                    true_positive_rate: None,
                    false_positive_rate: None,
                    selection_rate_low: Some(0.14),
                    selection_rate_high: Some(0.40),
                }],
                metrics: [("demographic_parity_difference".to_owned(), Some(dp))].into(),
                min_group_size: 30,
                excluded_groups: vec![],
                confidence: Some(0.95),
                intervals: [(
                    "demographic_parity_difference".to_owned(),
                    MetricInterval {
                        low: dp - 0.04,
                        high: dp + 0.05,
                    },
                )]
                .into(),
            }),
        ));
        if dp > 0.2 {
            out.push(envelope(
                next(),
                "fairness",
                "fairness",
                Event::FairnessAlertRaised(FairnessAlertRaised {
                    report_event_id: Uuid::from_u128(report),
                    window_start: Timestamp(START + w * DAY),
                    window_end: Timestamp(START + (w + 1) * DAY),
                    attributes: vec!["gender".into()],
                    outcome: "negative_sentiment".into(),
                    metric: "demographic_parity_difference".into(),
                    value: dp,
                    threshold: 0.2,
                    groups: vec!["female".into(), "male".into()],
                    confidence: Some(0.95),
                    interval_low: Some(dp - 0.04),
                    interval_high: Some(dp + 0.05),
                    evidence: Some(0.99),
                    method: Some("newcombe".into()),
                }),
            ));
        }
    }
    // A quiet window after the last one: too few messages for any group. It must not hide
    // the last report that said something.
    out.push(envelope(
        next(),
        "fairness",
        "fairness",
        Event::FairnessReported(FairnessReported {
            window_start: Timestamp(START + DAYS * DAY),
            window_end: Timestamp(START + (DAYS + 1) * DAY),
            attributes: vec!["gender".into()],
            outcome: "negative_sentiment".into(),
            groups: vec![GroupStats {
                group: "female".into(),
                count: 2,
                positives: 1,
                selection_rate: None,
                true_positive_rate: None,
                false_positive_rate: None,
                selection_rate_low: None,
                selection_rate_high: None,
            }],
            metrics: [("demographic_parity_difference".to_owned(), None)].into(),
            min_group_size: 30,
            excluded_groups: vec!["female".into()],
            confidence: Some(0.95),
            intervals: Default::default(),
        }),
    ));
    out
}

fn approved(
    n: u128,
    c: &insights_schemas::InteractionContext,
    draft: u128,
    automatic: bool,
) -> Envelope {
    envelope(
        n,
        &c.conversation_id,
        if automatic { "response" } else { "api" },
        Event::ResponseApproved(ResponseApproved {
            context: c.clone(),
            draft_event_id: Uuid::from_u128(draft),
            final_text: "We are on it.".into(),
            approved_by: if automatic { "auto" } else { "rita" }.into(),
            automatic,
            reasons: vec![],
            inquiry_text: String::new(),
            intent: "technical".into(),
        }),
    )
}

async fn fill(store: &dyn EventStore, events: &[Envelope]) {
    for chunk in events.chunks(500) {
        store
            .append(AppendBatch::new(chunk.iter().map(to_event_data).collect()))
            .await
            .expect("append");
    }
}

fn view(name: &str) -> Arc<dyn Projection> {
    views::by_name(name, AnomalyConfig::default()).expect("view")
}

async fn build(db: &Db, store: &Arc<dyn EventStore>, name: &str, page: usize) -> Runner {
    let mut r = Runner::new(db.clone(), Arc::clone(store), view(name)).with_page(page);
    r.open().await.expect("open");
    r.catch_up(None).await.expect("catch up");
    r
}

async fn dump(db: &Db, v: &dyn Projection) -> Vec<(String, Vec<serde_json::Map<String, Value>>)> {
    let mut out = Vec::new();
    for t in v.tables() {
        out.push((t.name.to_owned(), db.dump(t.name).await.expect("dump")));
    }
    out
}

/// A view that fails on its `fail_at`-th event (counting from 1), as a crash would in the
/// middle of a transaction; optionally claims another version.
#[derive(Debug)]
struct Failing {
    inner: Arc<dyn Projection>,
    fail_at: usize,
    seen: AtomicUsize,
    version: i64,
}

#[async_trait]
impl Projection for Failing {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn version(&self) -> i64 {
        self.version
    }
    fn tables(&self) -> &'static [Table] {
        self.inner.tables()
    }
    fn event_types(&self) -> Option<&'static [&'static str]> {
        self.inner.event_types()
    }
    async fn apply(
        &self,
        tx: &mut ViewTx<'_>,
        page: &[Recorded<'_>],
    ) -> Result<(), ProjectionError> {
        let before = self.seen.fetch_add(page.len(), Ordering::SeqCst);
        // Applies the events before the failing one first, as a crash mid-page would.
        if (before + 1..=before + page.len()).contains(&self.fail_at) {
            let ok = self.fail_at - before - 1;
            self.inner.apply(tx, &page[..ok]).await?;
            return Err(ProjectionError::Config("crash".into()));
        }
        self.inner.apply(tx, page).await
    }
}

fn failing(name: &str, fail_at: usize, version: i64) -> Arc<dyn Projection> {
    Arc::new(Failing {
        inner: view(name),
        fail_at,
        seen: AtomicUsize::new(0),
        version,
    })
}

async fn every_view_folds_the_log(fx: Fixture) {
    fill(&*fx.store, &log()).await;
    let db = fx.db().await;
    for name in views::NAMES {
        build(&db, &fx.store, name, 97).await;
    }
    // Raised anomalies are appended after their transaction; fold them in too.
    let anomalies = build(&db, &fx.store, "anomalies", 97).await;
    assert_eq!(
        anomalies.position(),
        fx.store.head().await.expect("head").position
    );

    let s = views::sentiment::query(&db, &Default::default())
        .await
        .expect("sentiment");
    assert_eq!(s["totals"]["n"], 264, "{s}");
    assert_eq!(s["model_version"], "m@1");
    assert_eq!(s["series"][0]["points"].as_array().map(Vec::len), Some(11));
    let by_product = views::sentiment::query(
        &db,
        &serde_json::from_value(serde_json::json!({"group_by": "product", "granularity": "hour"}))
            .expect("q"),
    )
    .await
    .expect("sentiment by product");
    let groups: Vec<&str> = by_product["series"]
        .as_array()
        .expect("series")
        .iter()
        .filter_map(|s| s["group"].as_str())
        .collect();
    assert_eq!(groups, ["router", "tv-box"]);
    assert_eq!(
        by_product["series"][1]["points"].as_array().map(Vec::len),
        Some(132)
    );
    let bad = serde_json::from_value::<views::sentiment::SentimentQuery>(
        serde_json::json!({"group_by": "shoe"}),
    )
    .expect("q");
    assert!(matches!(
        views::sentiment::query(&db, &bad).await,
        Err(ProjectionError::BadQuery(_))
    ));

    let r = views::responses::query(&db, &Default::default())
        .await
        .expect("responses");
    let negatives = 11 * 2 * 3 + 9; // three per product-day, and tv-box's whole day 8
    assert_eq!(r["drafts"], 264, "{r}");
    assert_eq!(r["review_requested"], negatives);
    assert_eq!(r["auto_approved"], 264 - negatives);
    assert_eq!(r["fell_back"], 66);
    assert_eq!(r["guardrail_hits"]["no_pii"], 44);
    assert_eq!(r["by_backend"]["template"]["drafts"], 66);
    assert_eq!(r["daily"].as_array().map(Vec::len), Some(11));

    let conv = views::timeline::conversation(&db, "c1", None, None)
        .await
        .expect("timeline")
        .expect("c1 exists");
    let types: Vec<&str> = conv["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["event_type"].as_str())
        .collect();
    // Interaction 1 is negative (k = 0): reviewed, claimed, decided, approved.
    assert_eq!(
        types,
        [
            "InteractionScrubbed",
            "SentimentScored",
            "ResponseDrafted",
            "ReviewRequested",
            "ReviewClaimed",
            "ReviewDecided",
            "ResponseApproved"
        ]
    );
    assert_eq!(conv["conversation"]["open_reviews"], 0);
    assert_eq!(conv["conversation"]["last_sentiment"], "negative");
    let list = views::timeline::conversations(&db, &Default::default())
        .await
        .expect("list");
    assert_eq!(list["total"], 264);
    assert!(
        views::timeline::conversation(&db, "nope", None, None)
            .await
            .expect("q")
            .is_none()
    );

    let f = views::fairness::query(&db, &Default::default())
        .await
        .expect("fairness");
    assert_eq!(f["reports"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        f["reports"][0]["metrics"]["demographic_parity_difference"], 0.05,
        "the latest window's"
    );
    assert_eq!(
        f["reports"][0]["window_end"],
        views::time(START + DAYS * DAY)
    );
    // Intervals reach the view: the report's by metric, each group's, the alert's.
    let dpd = &f["reports"][0]["intervals"]["demographic_parity_difference"];
    assert!(
        (dpd["low"].as_f64().expect("low") - 0.01).abs() < 1e-12,
        "{f}"
    );
    assert_eq!(f["reports"][0]["confidence"], 0.95);
    assert_eq!(f["reports"][0]["groups"][0]["selection_rate_high"], 0.40);
    assert_eq!(f["alerts"].as_array().map(Vec::len), Some(1));
    assert_eq!(f["alerts"][0]["value"], 0.3);
    assert_eq!(f["alerts"][0]["evidence"], 0.99);
    assert_eq!(f["alerts"][0]["method"], "newcombe");
    assert!((f["alerts"][0]["interval_low"].as_f64().expect("low") - 0.26).abs() < 1e-12);

    let h = views::health::query(&db, &Default::default())
        .await
        .expect("health");
    assert_eq!(h["dead_letters"][0]["n"], 3, "{h}");
    let rate: i64 = h["event_rate"]
        .as_array()
        .expect("rates")
        .iter()
        .filter_map(|r| r["n"].as_i64())
        .sum();
    assert_eq!(
        rate as u64,
        fx.store.head().await.expect("head").position - 2,
        "all but the anomalies appended after the health view caught up"
    );

    // tv-box's day 8, and the chat channel it pulled down (email's messages spread too
    // widely for a drop of that size in twelve messages to count).
    let a = views::anomalies::query(&db, &Default::default())
        .await
        .expect("anomalies");
    let found: Vec<(String, String)> = a["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| {
            (
                i["dimension"].as_str().unwrap_or("").to_owned(),
                i["value"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert_eq!(found.len(), 2, "{a}");
    assert!(found.contains(&("product".into(), "tv-box".into())));
    assert!(found.contains(&("channel".into(), "chat".into())));
    assert_eq!(a["items"][0]["window_start"], views::time(START + 8 * DAY));
    assert_eq!(fx.count("AnomalyDetected").await, 2);
    fx.drop_schema().await;
}

async fn a_crash_mid_page_applies_nothing_twice(fx: Fixture) {
    fill(&*fx.store, &log()).await;
    let clean = Db::memory().await.expect("memory db");
    for name in views::NAMES {
        // Crash half-way through the view's events, a few pages in.
        let filter = match view(name).event_types() {
            Some(types) => EventFilter::Types(types.iter().map(|t| (*t).to_owned()).collect()),
            None => EventFilter::All,
        };
        let n = fx
            .store
            .read_all(0, 100_000, &filter)
            .await
            .expect("read")
            .len();
        let page = (n / 5).max(1);
        let db = fx.db().await;
        let mut crashing = Runner::new(
            db.clone(),
            Arc::clone(&fx.store),
            failing(name, n / 2 + 1, view(name).version()),
        )
        .with_page(page);
        crashing.open().await.expect("open");
        let err = crashing.catch_up(None).await.expect_err("crashes half-way");
        assert!(err.to_string().contains("crash"));
        let at = db.checkpoint(name).await.expect("cp").expect("exists").0;
        assert!(at > 0, "{name}: the pages before the crash committed");
        drop(crashing);
        let resumed = build(&db, &fx.store, name, page).await;
        assert!(resumed.position() > at);
        let reference =
            Runner::new(clean.clone(), Arc::clone(&fx.store), view(name)).without_emitting();
        let mut reference = reference.with_page(1_000);
        reference.open().await.expect("open");
        reference
            .catch_up(Some(resumed.position()))
            .await
            .expect("reference");
        assert_eq!(
            dump(&db, &*view(name)).await,
            dump(&clean, &*view(name)).await,
            "{name}"
        );
    }
    fx.drop_schema().await;
}

async fn rebuilds_swap_atomically(fx: Fixture) {
    let events = log();
    fill(&*fx.store, &events[..events.len() / 2]).await;
    let db = fx.db().await;
    let mut live = build(&db, &fx.store, "sentiment", 100).await;
    let before = dump(&db, &*view("sentiment")).await;
    let position = live.position();

    // A rebuild that dies half-way leaves the live view and its checkpoint alone.
    let mut dying = Runner::new(
        db.clone(),
        Arc::clone(&fx.store),
        failing("sentiment", 100, view("sentiment").version()),
    )
    .with_page(30);
    dying.open().await.expect("open");
    assert!(dying.rebuild(&|_, _| {}).await.is_err());
    assert_eq!(dump(&db, &*view("sentiment")).await, before);
    assert_eq!(
        db.checkpoint("sentiment").await.expect("cp"),
        Some((position, view("sentiment").version()))
    );
    assert!(
        db.table_exists("view_sentiment__next")
            .await
            .expect("exists")
    );

    // More events arrive; a rebuild folds them all and swaps.
    fill(&*fx.store, &events[events.len() / 2..]).await;
    let mut rebuilt =
        Runner::new(db.clone(), Arc::clone(&fx.store), view("sentiment")).with_page(33);
    let reported = std::sync::Mutex::new(Vec::new());
    let at = rebuilt
        .rebuild(&|p, head| reported.lock().expect("lock").push((p, head)))
        .await
        .expect("rebuild");
    assert_eq!(at, fx.store.head().await.expect("head").position);
    assert!(
        reported.lock().expect("lock").len() > 3,
        "progress is reported per page"
    );
    assert!(
        !db.table_exists("view_sentiment__next")
            .await
            .expect("exists")
    );
    let s = views::sentiment::query(&db, &Default::default())
        .await
        .expect("q");
    assert_eq!(s["totals"]["n"], 264);

    // The live runner notices that its checkpoint moved and goes on from there.
    live.catch_up(None).await.expect("live");
    assert_eq!(live.position(), at);
    let s = views::sentiment::query(&db, &Default::default())
        .await
        .expect("q");
    assert_eq!(s["totals"]["n"], 264, "nothing counted twice");

    // A new version of the view's code rebuilds on open.
    let mut v2 = Runner::new(
        db.clone(),
        Arc::clone(&fx.store),
        failing("sentiment", 0, view("sentiment").version() + 1),
    );
    v2.open().await.expect("open v2");
    assert_eq!(
        db.checkpoint("sentiment").await.expect("cp"),
        Some((at, view("sentiment").version() + 1))
    );
    fx.drop_schema().await;
}

async fn views_as_of_a_past_position(fx: Fixture) {
    fill(&*fx.store, &log()).await;
    let scored = fx
        .store
        .read_all(
            0,
            100_000,
            &EventFilter::Types(vec!["SentimentScored".into()]),
        )
        .await
        .expect("read");
    let as_of = scored[99].position;
    let past = Db::memory().await.expect("memory");
    let mut r =
        Runner::new(past.clone(), Arc::clone(&fx.store), view("anomalies")).without_emitting();
    r.open().await.expect("open");
    assert_eq!(r.catch_up(Some(as_of)).await.expect("as of"), as_of);
    let mut r = Runner::new(past.clone(), Arc::clone(&fx.store), view("sentiment"));
    r.open().await.expect("open");
    r.catch_up(Some(as_of)).await.expect("as of");
    let s = views::sentiment::query(&past, &Default::default())
        .await
        .expect("q");
    assert_eq!(s["totals"]["n"], 100);
    assert_eq!(
        fx.count("AnomalyDetected").await,
        0,
        "a view of the past raises nothing"
    );
    fx.drop_schema().await;
}

async fn anomalies_are_raised_once(fx: Fixture) {
    fill(&*fx.store, &log()).await;
    let db = fx.db().await;
    let mut r = build(&db, &fx.store, "anomalies", 50).await;
    assert_eq!(fx.count("AnomalyDetected").await, 2);
    r.rebuild(&|_, _| {}).await.expect("rebuild");
    r.catch_up(None).await.expect("catch up");
    assert_eq!(
        fx.count("AnomalyDetected").await,
        2,
        "the same ids: the store drops them"
    );
    let a = views::anomalies::query(&db, &Default::default())
        .await
        .expect("q");
    assert_eq!(a["items"].as_array().map(Vec::len), Some(2));
    let e = &a["items"][0];
    assert!(e["observed"].as_f64() < e["expected"].as_f64());
    fx.drop_schema().await;
}

async fn an_event_time_watermark_needs_no_fairness_reports(fx: Fixture) {
    let events: Vec<Envelope> = log()
        .into_iter()
        .filter(|e| !matches!(e.event, Event::FairnessReported(_)))
        .collect();
    fill(&*fx.store, &events).await;
    let db = fx.db().await;
    let config = AnomalyConfig {
        watermark: views::anomalies::Watermark::EventTime,
        ..AnomalyConfig::default()
    };
    let fairness_only = view("anomalies");
    let mut r = Runner::new(db.clone(), Arc::clone(&fx.store), fairness_only);
    r.open().await.expect("open");
    r.catch_up(None).await.expect("catch up");
    assert_eq!(
        fx.count("AnomalyDetected").await,
        0,
        "no reports, no watermark"
    );
    let mut r = Runner::new(
        Db::memory().await.expect("memory"),
        Arc::clone(&fx.store),
        Arc::new(views::anomalies::Anomalies::new(config)),
    );
    r.open().await.expect("open");
    r.catch_up(None).await.expect("catch up");
    assert_eq!(fx.count("AnomalyDetected").await, 2);
    fx.drop_schema().await;
}

async fn each_interaction_counts_once_per_model_version(fx: Fixture) {
    let events = log();
    fill(&*fx.store, &events).await;
    // A reprocessing run: every scored interaction again, by the same model (new ids) and
    // by a new one.
    let mut again = Vec::new();
    let mut id = 900_000_u128;
    for e in &events {
        if let Event::SentimentScored(s) = &e.event {
            for version in ["1", "2"] {
                id += 1;
                let mut copy = e.clone();
                copy.event_id = Uuid::from_u128(id);
                if let Event::SentimentScored(c) = &mut copy.event {
                    c.model_version = version.into();
                    c.label = SentimentLabel::Neutral;
                }
                copy.producer_version = format!("test+{}", s.model_version);
                again.push(copy);
            }
        }
    }
    fill(&*fx.store, &again).await;
    let db = fx.db().await;
    build(&db, &fx.store, "sentiment", 500).await;
    build(&db, &fx.store, "anomalies", 500).await;
    let latest = views::sentiment::query(&db, &Default::default())
        .await
        .expect("q");
    assert_eq!(
        latest["model_version"], "m@2",
        "the latest version by default"
    );
    assert_eq!(latest["totals"]["n"], 264);
    assert_eq!(latest["totals"]["neutral"], 264);
    let first: views::sentiment::SentimentQuery =
        serde_json::from_value(serde_json::json!({"model_version": "m@1"})).expect("q");
    let first = views::sentiment::query(&db, &first).await.expect("q");
    assert_eq!(
        first["totals"]["n"], 264,
        "not 528: the copies by m@1 count once"
    );
    assert_eq!(
        first["totals"]["negative"],
        11 * 2 * 3 + 9,
        "the first scores stand"
    );
    assert_eq!(
        fx.count("AnomalyDetected").await,
        2,
        "anomalies take the first score"
    );
    fx.drop_schema().await;
}

/// The test log with each day's fairness report right after that day's messages, and then
/// late negative scores for every day, 24 of them for day 5 (after their day's report, so
/// the anomaly view judges those buckets again after each, and flags day 5's then).
fn interleaved() -> Vec<Envelope> {
    let (reports, rest): (Vec<_>, Vec<_>) = log()
        .into_iter()
        .partition(|e| matches!(e.event, Event::FairnessReported(_)));
    let mut reports = reports.into_iter().peekable();
    let mut out = Vec::new();
    for e in rest {
        if let Some(t) = e.event.context().map(|c| c.sent_at.micros()) {
            while let Some(r) = reports.next_if(
                |r| matches!(&r.event, Event::FairnessReported(f) if f.window_end.micros() <= t),
            ) {
                out.push(r);
            }
        }
        out.push(e);
    }
    out.extend(reports);
    for day in 0..DAYS {
        for k in 0..if day == 5 { 24 } else { 1 } {
            let n = 50_000 + u128::try_from(day * 100 + k).expect("small");
            let mut c = context(n, START + day * DAY + k + 1);
            c.product = Some("tv-box".into());
            c.channel = "chat".into();
            out.push(scored_in(
                n + 1_000,
                c,
                "text",
                SentimentLabel::Negative,
                0.9,
            ));
        }
    }
    out
}

async fn a_page_at_a_time_equals_one_event_at_a_time(fx: Fixture) {
    fill(&*fx.store, &interleaved()).await;
    for name in views::NAMES {
        let mut dumps = Vec::new();
        for page in [1, 7, 1_000] {
            // Pages of 7 in the backend under test, the others in SQLite in memory.
            let db = if page == 7 {
                fx.db().await
            } else {
                Db::memory().await.expect("memory db")
            };
            let mut runner = Runner::new(db.clone(), Arc::clone(&fx.store), view(name))
                .without_emitting()
                .with_page(page);
            runner.open().await.expect("open");
            runner.catch_up(None).await.expect("catch up");
            dumps.push((page, dump(&db, &*view(name)).await));
        }
        if *name == "anomalies" {
            // The late scores of day 5 had its buckets judged again, and flagged.
            let day5 = START + 5 * DAY;
            let flagged = dumps[0].1[0]
                .1
                .iter()
                .filter(|r| r["bucket_start"] == day5 && r["judged"] == 2)
                .count();
            assert_eq!(
                flagged, 2,
                "day 5's product and channel buckets are flagged"
            );
        }
        let rows: usize = dumps[0].1.iter().map(|(_, rows)| rows.len()).sum();
        assert!(rows > 0, "{name}: the view holds rows");
        for (page, d) in &dumps[1..] {
            assert!(
                *d == dumps[0].1,
                "{name}: pages of {page} differ from one event at a time"
            );
        }
    }
    fx.drop_schema().await;
}

macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Fixture::sqlite().await).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Fixture::postgres().await).await;
                }
            )*
        }
    };
}

both_backends!(
    every_view_folds_the_log,
    a_crash_mid_page_applies_nothing_twice,
    rebuilds_swap_atomically,
    views_as_of_a_past_position,
    anomalies_are_raised_once,
    an_event_time_watermark_needs_no_fairness_reports,
    each_interaction_counts_once_per_model_version,
    a_page_at_a_time_equals_one_event_at_a_time,
    agreement_equals_scikit_learn,
);

#[tokio::test]
async fn answers_are_computed_once_per_position() {
    let views = insights_projections::Views::new(
        Db::memory().await.expect("memory"),
        views::all(AnomalyConfig::default()),
    );
    let calls = AtomicUsize::new(0);
    let compute = |n: u64| {
        calls.fetch_add(1, Ordering::SeqCst);
        async move { Ok(serde_json::json!({ "n": n })) }
    };
    let a = views.cached("q".into(), 5, || compute(1)).await.expect("a");
    let b = views.cached("q".into(), 5, || compute(2)).await.expect("b");
    assert_eq!(
        (a["n"].clone(), b["n"].clone()),
        (1.into(), 1.into()),
        "the same position: cached"
    );
    let c = views.cached("q".into(), 6, || compute(3)).await.expect("c");
    assert_eq!(c["n"], 3, "a new position: computed again");
    let d = views
        .cached("other".into(), 6, || compute(4))
        .await
        .expect("d");
    assert_eq!(d["n"], 4, "another query: its own answer");
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

/// The agreement view's κ equals scikit-learn's `cohen_kappa_score` (1.9.1, in
/// `.tools/fairness-venv`) on a random log of reviews: sole decisions, pairs of opinions
/// that agree or disagree (then an arbiter's ruling), an item waiting for its second
/// opinion, corrections of the model's label, and requests without a label.
async fn agreement_equals_scikit_learn(fx: Fixture) {
    let reviewers = ["ana", "ben", "cy", "dee"];
    let labels = ["negative", "neutral", "positive"];
    let decisions = [
        ReviewDecision::Approve,
        ReviewDecision::Edit,
        ReviewDecision::Reject,
    ];
    let name = |d: ReviewDecision| match d {
        ReviewDecision::Approve => "approve",
        ReviewDecision::Edit => "edit",
        ReviewDecision::Reject => "reject",
    };
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move |below: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % below
    };
    let mut events = Vec::new();
    // What the view must pair up, known from the generator: (a, b, day, x, y) and
    // (reviewer, day, reading, model).
    let mut pairs: Vec<(String, String, String, String, String)> = Vec::new();
    let mut readings: Vec<(String, String, String, String)> = Vec::new();
    /// Some time in the first four days: (its day, the instant).
    fn when(next: &mut impl FnMut(u64) -> u64) -> (i64, i64) {
        let day = START + (next(4) as i64) * DAY;
        (day, day + (next(86_400) as i64) * 1_000_000)
    }
    let mut id = 50_000_u128;
    for item in 0..400_u128 {
        id += 4;
        let review_id = Uuid::from_u128(900_000 + item);
        let c = context(item, START);
        let model = if next(20) == 0 {
            ""
        } else {
            labels[next(3) as usize]
        };
        let double = next(2) == 0 || item == 399;
        let mut request = envelope(
            review_id.as_u128(),
            &c.conversation_id,
            "response",
            Event::ReviewRequested(ReviewRequested {
                context: c.clone(),
                draft_event_id: Uuid::from_u128(item),
                reasons: vec!["negative_sentiment".into()],
                priority: "high".into(),
                sla_deadline: Timestamp(START + DAY),
                draft_text: "We are on it.".into(),
                inquiry_text: "text".into(),
                intent: "technical".into(),
                sentiment_label: model.into(),
                backend: "openai".into(),
                opinions_required: if double { 2 } else { 1 },
            }),
        );
        request.stream_id = review_stream(&review_id);
        events.push(request);
        let opinion = |n: u128,
                       (day, at): (i64, i64),
                       reviewer: &str,
                       role: &str,
                       settles: bool,
                       decision,
                       corrected| {
            let mut e = envelope(
                n,
                &c.conversation_id,
                "review-api",
                Event::ReviewDecided(ReviewDecided {
                    context: c.clone(),
                    review_id,
                    reviewer: reviewer.into(),
                    decision,
                    edited_text: (decision == ReviewDecision::Edit).then(|| "Better.".into()),
                    reason: (decision == ReviewDecision::Reject).then(|| "No.".into()),
                    corrected_sentiment: corrected,
                    role: role.into(),
                    settles,
                }),
            );
            e.stream_id = review_stream(&review_id);
            e.occurred_at = Timestamp(at);
            (e, Timestamp(day).to_string())
        };
        let mut read = |reviewer: &str, day: &str, corrected: &Option<String>| {
            if !model.is_empty() {
                readings.push((
                    reviewer.into(),
                    day.into(),
                    corrected.clone().unwrap_or_else(|| model.into()),
                    model.into(),
                ));
            }
        };
        let a = reviewers[next(4) as usize];
        let x = decisions[next(3) as usize];
        let corrected = (next(10) < 3).then(|| labels[next(3) as usize].to_owned());
        if !double {
            let (e, day) = opinion(
                id + 1,
                when(&mut next),
                a,
                "sole",
                true,
                x,
                corrected.clone(),
            );
            events.push(e);
            read(a, &day, &corrected);
            continue;
        }
        let (e, day_a) = opinion(
            id + 1,
            when(&mut next),
            a,
            "first",
            false,
            x,
            corrected.clone(),
        );
        events.push(e);
        read(a, &day_a, &corrected);
        if item == 399 {
            // Still waiting for its second opinion: no pair yet.
            continue;
        }
        let b = loop {
            let b = reviewers[next(4) as usize];
            if b != a {
                break b;
            }
        };
        let y = if next(10) < 6 {
            x
        } else {
            decisions[next(3) as usize]
        };
        let corrected = (next(10) < 3).then(|| labels[next(3) as usize].to_owned());
        let (e, day_b) = opinion(
            id + 2,
            when(&mut next),
            b,
            "second",
            x == y,
            y,
            corrected.clone(),
        );
        events.push(e);
        read(b, &day_b, &corrected);
        pairs.push((a.into(), b.into(), day_b, name(x).into(), name(y).into()));
        if x != y {
            let (e, day) = opinion(id + 3, when(&mut next), "root", "arbiter", true, y, None);
            events.push(e);
            read("root", &day, &None);
        }
    }
    fill(&*fx.store, &events).await;
    let db = fx.db().await;
    build(&db, &fx.store, "agreement", 61).await;
    let ours = views::agreement::query(&db, &Default::default())
        .await
        .expect("agreement");

    let input = serde_json::json!({"pairs": pairs, "readings": readings});
    let venv =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.tools/fairness-venv/bin/python");
    assert!(
        venv.exists(),
        "{} is missing: run scripts/setup.sh",
        venv.display()
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("agreement.json");
    std::fs::write(&path, input.to_string()).expect("writes the input");
    let out = {
        use testkit::OutputWithin as _;
        std::process::Command::new(venv)
            .arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/agreement.py"))
            .arg(&path)
            .output_within(testkit::COMMAND_LIMIT)
            .expect("runs the reference")
    };
    assert!(
        out.status.success(),
        "the reference failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs: Value = serde_json::from_slice(&out.stdout).expect("reference JSON");

    let same = |what: &str, ours: &Value, theirs: &Value| {
        assert_eq!(ours["n"], theirs["n"], "{what}: n");
        for field in ["agreement", "kappa"] {
            match (ours[field].as_f64(), theirs[field].as_f64()) {
                (Some(a), Some(b)) => {
                    assert!(
                        (a - b).abs() <= 1e-12,
                        "{what}: {field} ours {a}, sklearn {b}"
                    )
                }
                (a, b) => assert_eq!(a, b, "{what}: {field} (null where undefined)"),
            }
        }
    };
    let mut compared = 0;
    for (side, groups) in [
        ("reviewers", &["by_reviewer", "by_day"][..]),
        ("model", &["by_reviewer", "by_day", "by_reviewer_day"][..]),
    ] {
        same(side, &ours[side], &theirs[side]["all"]);
        for group in groups {
            let reference = theirs[side][group].as_object().expect("groups");
            let rows = ours[side][*group].as_array().expect("rows");
            assert_eq!(rows.len(), reference.len(), "{side} {group}: {ours}");
            for row in rows {
                let key = match *group {
                    "by_reviewer" => row["reviewer"].clone(),
                    "by_day" => row["day"].clone(),
                    _ => serde_json::json!([row["reviewer"], row["day"]]),
                };
                let theirs = reference
                    .iter()
                    .find(|(k, _)| serde_json::from_str::<Value>(k).ok() == Some(key.clone()))
                    .map(|(_, v)| v)
                    .unwrap_or_else(|| panic!("{side} {group}: no reference for {key}"));
                same(&format!("{side} {group} {key}"), row, theirs);
                compared += 1;
            }
        }
    }
    assert!(compared >= 30, "{compared} groups compared");
    assert!(
        ours["reviewers"]["n"].as_u64().is_some_and(|n| n > 150),
        "{ours}"
    );
    assert!(
        ours["reviewers"]["disagreements"]
            .as_u64()
            .is_some_and(|n| n > 30),
        "{ours}"
    );
    fx.drop_schema().await;
}
