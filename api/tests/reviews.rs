//! The review workflow over HTTP, against a real SQLite event store holding review items
//! that the real response processor requested: auth, claims, decisions, conflicts between
//! reviewers, retries, validation and the queue view.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use insights_api::{AppState, JwtAuth, ReviewQueue, Role};
use insights_event_store::envelope::{from_recorded, to_event_data};
use insights_event_store::{AppendBatch, EventFilter, EventStore};
use insights_processor::{Context, Processor, Source, envelope_for};
use insights_response::policy::SecondOpinion;
use insights_response::{ResponseConfig, ResponseProcessor};
use insights_schemas::{Envelope, Event, SentimentLabel, Timestamp};
use serde_json::{Value, json};
use testkit::events::scored;
use tower::ServiceExt;

const SECRET: &[u8] = b"test secret, 32 bytes or more....";

struct Harness {
    _dir: tempfile::TempDir,
    store: Arc<dyn EventStore>,
    reviews: ReviewQueue,
    /// Where the review queue's metrics are.
    registry: prometheus::Registry,
    app: axum::Router,
    auth: JwtAuth,
    /// Stops the projection runners when the harness goes.
    _stop: tokio::sync::watch::Sender<bool>,
}

impl Harness {
    async fn new() -> Harness {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("events.db").display());
        let store = insights_event_store::open(&url, 4).await.expect("store");
        let registry = prometheus::Registry::new();
        let reviews = ReviewQueue::with_metrics(
            insights_api::metrics::ReviewMetrics::register(&registry).expect("registers"),
        );
        tokio::spawn(reviews.clone().follow(Arc::clone(&store)));
        let db = insights_projections::Db::connect(&url, 4)
            .await
            .expect("views db");
        let list = insights_projections::views::all(Default::default());
        let (stop_tx, stop) = tokio::sync::watch::channel(false);
        insights_projections::run_all(&db, &store, &list, None, stop)
            .await
            .expect("views");
        let state = AppState {
            store: Arc::clone(&store),
            auth: Arc::new(JwtAuth::hs256(SECRET)),
            reviews: reviews.clone(),
            publisher: None,
            views: Some(insights_projections::Views::new(db, list)),
            vault: None,
        };
        Harness {
            _dir: dir,
            store,
            reviews,
            registry,
            app: insights_api::router(state),
            auth: JwtAuth::hs256(SECRET),
            _stop: stop_tx,
        }
    }

    fn token(&self, subject: &str, roles: &[Role]) -> String {
        self.auth
            .issue(subject, roles, Duration::from_secs(600))
            .expect("token")
    }

    /// Has the real response processor draft replies to these messages and stores its
    /// outputs; returns the review ids it requested. Every item needs one decision.
    async fn requested(&self, messages: &[(&str, SentimentLabel, f64)]) -> Vec<String> {
        let mut config = ResponseConfig::default();
        config.policy.second_opinion = SecondOpinion {
            fraction: 0.0,
            priorities: Vec::new(),
            intents: Vec::new(),
        };
        self.requested_with(&config, messages).await
    }

    /// [`Harness::requested`] with `config`'s policy.
    async fn requested_with(
        &self,
        config: &ResponseConfig,
        messages: &[(&str, SentimentLabel, f64)],
    ) -> Vec<String> {
        let mut p = ResponseProcessor::build(config, None, Vec::new(), None).expect("builds");
        let mut reviews = Vec::new();
        for (n, (text, label, confidence)) in messages.iter().enumerate() {
            let input = scored(n as u128 + 1, text, *label, *confidence);
            let id = input.event_id.to_string();
            let source = Source {
                topic: "interactions.scored".into(),
                partition: 0,
                offset: n as i64,
            };
            let ctx = Context {
                input_id: &id,
                correlation_id: &input.correlation_id,
                input_time: input.occurred_at,
                now: Timestamp(1_790_000_010_000_000),
                source: &source,
            };
            let outputs = tokio::task::block_in_place(|| {
                p.prepare(&[&input]);
                p.process(&input, &ctx).expect("processed")
            });
            let envelopes: Vec<Envelope> = outputs
                .iter()
                .enumerate()
                .map(|(i, o)| envelope_for("response", "test", &ctx, i as u32, o))
                .collect();
            for e in &envelopes {
                if let Event::ReviewRequested(_) = e.event {
                    reviews.push(e.event_id.to_string());
                }
            }
            self.store
                .append(AppendBatch::new(
                    envelopes.iter().map(to_event_data).collect(),
                ))
                .await
                .expect("stored");
        }
        reviews
    }

    async fn call(
        &self,
        method: &str,
        uri: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value, Option<String>) {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let req = match body {
            Some(b) => req
                .header("content-type", "application/json")
                .body(Body::from(b.to_string())),
            None => req.body(Body::empty()),
        }
        .expect("request");
        let res = self.app.clone().oneshot(req).await.expect("answer");
        let status = res.status();
        let position = res
            .headers()
            .get("x-store-position")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = res.into_body().collect().await.expect("body").to_bytes();
        let json = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
            panic!(
                "{method} {uri}: not JSON: {}",
                String::from_utf8_lossy(&bytes)
            )
        });
        (status, json, position)
    }

    async fn events_of(&self, event_type: &str) -> Vec<Envelope> {
        self.store
            .read_all(0, 10_000, &EventFilter::Types(vec![event_type.into()]))
            .await
            .expect("read")
            .iter()
            .map(|r| from_recorded(r).expect("decodes"))
            .collect()
    }
}

const LEGAL: (&str, SentimentLabel, f64) = (
    "Your router is garbage and I'm talking to my lawyer.",
    SentimentLabel::Negative,
    0.97,
);
const HUMAN: (&str, SentimentLabel, f64) = (
    "I don't want a bot. Please let me talk to a real person.",
    SentimentLabel::Negative,
    0.6,
);
const CALM: (&str, SentimentLabel, f64) = (
    "How do I change the wifi password on my router?",
    SentimentLabel::Neutral,
    0.95,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_matrix() {
    let h = Harness::new().await;
    let ids = h.requested(&[LEGAL]).await;
    let claim = format!("/v1/reviews/{}/claim", ids[0]);

    let (status, body, _) = h.call("GET", "/v1/reviews", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "missing_token");

    let expired = h
        .auth
        .issue_at("old", &[Role::Reviewer], 1_000, Duration::from_secs(60))
        .expect("token");
    let (status, body, _) = h.call("GET", "/v1/reviews", Some(&expired), None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("token_expired"))
    );

    let analyst = h.token("ann", &[Role::Analyst]);
    let (status, _, _) = h
        .call("GET", "/v1/reviews?min_position=1", Some(&analyst), None)
        .await;
    assert_eq!(status, StatusCode::OK, "analysts read the queue");
    let (status, body, _) = h.call("POST", &claim, Some(&analyst), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "but do not review: {body}");
    assert_eq!(body["error"]["code"], "forbidden");

    let auditor = h.token("aud", &[Role::Auditor]);
    let (status, _, _) = h.call("GET", "/v1/reviews", Some(&auditor), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body, position) = h
        .call("GET", "/v1/audit/verify", Some(&auditor), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["intact"], true);
    assert_eq!(body["events"], 2);
    assert_eq!(body["by_type"]["ReviewRequested"], 1);
    assert_eq!(position.as_deref(), Some("2"));
    let (status, _, _) = h
        .call("GET", "/v1/audit/verify", Some(&analyst), None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "auditors only");

    let admin = h.token("root", &[Role::Admin]);
    let (status, _, _) = h.call("POST", &claim, Some(&admin), None).await;
    assert_eq!(status, StatusCode::OK, "admin holds every role");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claim_edit_and_conflicts_between_reviewers() {
    let h = Harness::new().await;
    let ids = h.requested(&[LEGAL, CALM]).await;
    assert_eq!(ids.len(), 1, "the calm question was approved automatically");
    let id = &ids[0];
    let alice = h.token("alice", &[Role::Reviewer]);
    let bob = h.token("bob", &[Role::Reviewer]);

    // The queue shows the item, urgent, with its reasons, texts and the view's position.
    let (status, body, position) = h
        .call("GET", "/v1/reviews?min_position=4", Some(&alice), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(position.as_deref(), Some("4"));
    assert_eq!(body["position"], 4);
    assert_eq!(body["total"], 1);
    let item = &body["items"][0];
    assert_eq!(item["review_id"], id.as_str());
    assert_eq!(item["status"], "open");
    assert_eq!(item["priority"], "urgent");
    assert_eq!(
        item["reasons"],
        json!(["negative_sentiment", "intent:legal"])
    );
    assert!(
        item["inquiry_text"]
            .as_str()
            .unwrap_or_default()
            .contains("lawyer")
    );
    assert!(!item["draft_text"].as_str().unwrap_or_default().is_empty());
    assert_eq!(
        item["overdue"], true,
        "requested in 2026-09, deadline long past"
    );
    assert!(item["age_seconds"].as_i64().unwrap_or(0) > 0);

    let (status, body, _) = h
        .call(
            "POST",
            &format!("/v1/reviews/{id}/claim"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["item"]["claimed_by"], "alice");
    // Claiming one's own item again changes nothing; another reviewer cannot take it.
    let (status, body, _) = h
        .call(
            "POST",
            &format!("/v1/reviews/{id}/claim"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(
        (status, body["event_ids"].as_array().map(Vec::len)),
        (StatusCode::OK, Some(0))
    );
    let (status, body, _) = h
        .call("POST", &format!("/v1/reviews/{id}/claim"), Some(&bob), None)
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("claimed_by_another"))
    );
    let decision = json!({"decision": "reject", "reason": "bob disagrees"});
    let (status, _, _) = h
        .call(
            "POST",
            &format!("/v1/reviews/{id}/decision"),
            Some(&bob),
            Some(decision),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);

    let edit = json!({
        "decision": "edit",
        "text": "We are sorry. A senior colleague will call you today about your router.",
        "corrected_sentiment": "negative"
    });
    let (status, body, _) = h
        .call(
            "POST",
            &format!("/v1/reviews/{id}/decision"),
            Some(&alice),
            Some(edit.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["item"]["status"], "decided");
    let first_ids = body["event_ids"].clone();
    assert_eq!(first_ids.as_array().map(Vec::len), Some(2));

    // A retried request (the answer was lost) gets the same events; nothing is added.
    let (status, body, _) = h
        .call(
            "POST",
            &format!("/v1/reviews/{id}/decision"),
            Some(&alice),
            Some(edit),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["event_ids"], first_ids);
    // A different decision on a decided item conflicts, from anyone.
    let approve = json!({"decision": "approve"});
    let (status, body, _) = h
        .call(
            "POST",
            &format!("/v1/reviews/{id}/decision"),
            Some(&alice),
            Some(approve),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("already_decided"))
    );

    let decided = h.events_of("ReviewDecided").await;
    assert_eq!(decided.len(), 1);
    let Event::ReviewDecided(d) = &decided[0].event else {
        unreachable!()
    };
    assert_eq!(
        (d.reviewer.as_str(), d.corrected_sentiment.as_deref()),
        ("alice", Some("negative"))
    );
    assert_eq!(decided[0].stream_id, format!("review-{id}"));
    let approved: Vec<_> = h
        .events_of("ResponseApproved")
        .await
        .into_iter()
        .filter_map(|e| match e.event {
            Event::ResponseApproved(a) if !a.automatic => Some(a),
            _ => None,
        })
        .collect();
    assert_eq!(approved.len(), 1);
    assert_eq!(approved[0].approved_by, "alice");
    assert!(
        approved[0]
            .final_text
            .starts_with("We are sorry. A senior colleague")
    );
    assert!(approved[0].inquiry_text.contains("lawyer"));

    // The decided item leaves the pending queue and shows under `decided`.
    let (_, body, _) = h.call("GET", "/v1/reviews", Some(&alice), None).await;
    assert_eq!(body["total"], 0);
    let (_, body, _) = h
        .call("GET", "/v1/reviews?status=decided", Some(&alice), None)
        .await;
    assert_eq!(body["items"][0]["decision"], "edit");
    assert_eq!(body["items"][0]["decided_by"], "alice");
    assert!(h.store.verify().await.expect("verify").broken.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_are_leases_handed_back_by_their_holder_or_ended_by_the_clock() {
    use insights_api::reviews::{LEASE_KEEPER, expire_leases};
    let h = Harness::new().await;
    let ids = h.requested(&[LEGAL, HUMAN]).await;
    assert_eq!(ids.len(), 2);
    let ana = h.token("ana", &[Role::Reviewer]);
    let ben = h.token("ben", &[Role::Reviewer]);
    let root = h.token("root", &[Role::Admin]);
    let path = |id: &str, what: &str| format!("/v1/reviews/{id}/{what}");

    // Only the holder hands an item back; then anyone may take it.
    let (status, body, _) = h
        .call("POST", &path(&ids[0], "claim"), Some(&ana), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body, _) = h
        .call("POST", &path(&ids[0], "release"), Some(&ben), None)
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "claimed_by_another");
    let (status, body, _) = h
        .call("POST", &path(&ids[0], "release"), Some(&ana), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["item"]["status"], "open");
    assert_eq!(body["item"]["claimed_by"], Value::Null);
    let (status, body, _) = h
        .call("POST", &path(&ids[0], "release"), Some(&ana), None)
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "not_claimed");
    // An admin may end anyone's claim.
    let (status, _, _) = h
        .call("POST", &path(&ids[0], "claim"), Some(&ben), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body, _) = h
        .call("POST", &path(&ids[0], "release"), Some(&root), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let released = h.events_of("ReviewReleased").await;
    let reasons: Vec<(String, String, String)> = released
        .iter()
        .map(|e| match &e.event {
            Event::ReviewReleased(r) => {
                (r.reviewer.clone(), r.reason.clone(), r.released_by.clone())
            }
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(
        reasons,
        [
            ("ana".into(), "released".into(), "ana".into()),
            ("ben".into(), "released".into(), "root".into()),
        ]
    );

    // A lease runs out on the clock the keeper is given, not before.
    let (status, body, position) = h
        .call("POST", &path(&ids[1], "claim"), Some(&ana), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let position: u64 = position.and_then(|p| p.parse().ok()).expect("a position");
    assert!(
        h.reviews.wait_for(position, Duration::from_secs(10)).await,
        "the queue reaches the claim"
    );
    let claimed_at = h
        .events_of("ReviewClaimed")
        .await
        .last()
        .expect("claimed")
        .occurred_at;
    let lease = Duration::from_secs(30 * 60);
    let at = |micros: i64| Timestamp(claimed_at.micros() + micros);
    let early = expire_leases(&*h.store, &h.reviews, lease, at(30 * 60 * 1_000_000 - 1))
        .await
        .expect("expires");
    assert!(early.is_empty(), "a lease with a microsecond left stays");
    let ended = expire_leases(&*h.store, &h.reviews, lease, at(30 * 60 * 1_000_000))
        .await
        .expect("expires");
    assert_eq!(ended.len(), 1);
    let Event::ReviewReleased(r) = &ended[0].events[0].event else {
        panic!("a release: {:?}", ended[0].events)
    };
    assert_eq!(
        (
            r.reason.as_str(),
            r.released_by.as_str(),
            r.reviewer.as_str()
        ),
        ("expired", LEASE_KEEPER, "ana")
    );
    assert_eq!(r.claimed_at, claimed_at);
    assert!(
        h.reviews
            .wait_for(ended[0].position, Duration::from_secs(10))
            .await
    );
    // Nothing more to expire; the item is back in the queue for anyone.
    let again = expire_leases(&*h.store, &h.reviews, lease, at(3_600_000_000))
        .await
        .expect("expires");
    assert!(again.is_empty());
    let (_, body, _) = h
        .call("GET", &format!("/v1/reviews/{}", ids[1]), Some(&ben), None)
        .await;
    assert_eq!(
        body["item"]["status"].as_str().or(body["status"].as_str()),
        Some("open"),
        "{body}"
    );

    // A decision before the keeper's tick wins: nothing is released after it.
    let (status, _, _) = h
        .call("POST", &path(&ids[1], "claim"), Some(&ben), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body, position) = h
        .call(
            "POST",
            &path(&ids[1], "decision"),
            Some(&ben),
            Some(json!({"decision": "approve"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let position: u64 = position.and_then(|p| p.parse().ok()).expect("a position");
    assert!(h.reviews.wait_for(position, Duration::from_secs(10)).await);
    let after = expire_leases(&*h.store, &h.reviews, lease, at(i64::MAX / 2))
        .await
        .expect("expires");
    assert!(after.is_empty(), "a decided item is never released");
    assert_eq!(h.events_of("ReviewReleased").await.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_reviewers_deciding_at_once_cannot_both_win() {
    let h = Harness::new().await;
    let ids = h.requested(&[LEGAL, HUMAN, LEGAL]).await;
    assert_eq!(ids.len(), 3);
    let alice = h.token("alice", &[Role::Reviewer]);
    let bob = h.token("bob", &[Role::Reviewer]);
    for id in &ids {
        let uri = format!("/v1/reviews/{id}/decision");
        let (a, b) = tokio::join!(
            h.call(
                "POST",
                &uri,
                Some(&alice),
                Some(json!({"decision": "approve"}))
            ),
            h.call(
                "POST",
                &uri,
                Some(&bob),
                Some(json!({"decision": "reject", "reason": "no"}))
            ),
        );
        let mut statuses = [a.0, b.0];
        statuses.sort();
        assert_eq!(
            statuses,
            [StatusCode::OK, StatusCode::CONFLICT],
            "{a:?} {b:?}"
        );
    }
    assert_eq!(h.events_of("ReviewDecided").await.len(), 3);
}

/// The review metric lines of the harness's registry that start with `prefix`.
fn metric(h: &Harness, series: &str) -> f64 {
    let text = prometheus::TextEncoder::new()
        .encode_to_string(&h.registry.gather())
        .expect("encodes");
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no series {series} in\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_opinion_settles_an_item_when_two_reviewers_agree_and_an_admin_rules_when_they_do_not()
 {
    let h = Harness::new().await;
    // The default policy: every urgent (here: legal) item needs two opinions.
    let ids = h
        .requested_with(&ResponseConfig::default(), &[LEGAL, LEGAL])
        .await;
    assert_eq!(ids.len(), 2);
    let requested = h.events_of("ReviewRequested").await;
    assert!(requested.iter().all(|e| matches!(
        &e.event,
        Event::ReviewRequested(r) if r.opinions_required == 2
    )));
    let alice = h.token("alice", &[Role::Reviewer]);
    let bob = h.token("bob", &[Role::Reviewer]);
    let carol = h.token("carol", &[Role::Reviewer]);
    let dana = h.token("dana", &[Role::Admin]);
    let path = |id: &str, what: &str| format!("/v1/reviews/{id}/{what}");
    let decide = |token: &str, id: &str, body: Value| {
        let (token, uri) = (token.to_owned(), path(id, "decision"));
        let h = &h;
        async move { h.call("POST", &uri, Some(&token), Some(body)).await }
    };

    // Concurrent claims: exactly one owner.
    let claim = path(&ids[0], "claim");
    let (a, b) = tokio::join!(
        h.call("POST", &claim, Some(&alice), None),
        h.call("POST", &claim, Some(&bob), None),
    );
    let mut statuses = [a.0, b.0];
    statuses.sort();
    assert_eq!(
        statuses,
        [StatusCode::OK, StatusCode::CONFLICT],
        "{a:?} {b:?}"
    );
    let holder = if a.0 == StatusCode::OK { &alice } else { &bob };
    let (status, _, _) = h
        .call("POST", &path(&ids[0], "release"), Some(holder), None)
        .await;
    assert_eq!(status, StatusCode::OK);

    // The first opinion settles nothing: the item goes back to the queue, no reply goes out.
    let (status, body, _) = decide(&alice, &ids[0], json!({"decision": "approve"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["item"]["status"], "open");
    assert_eq!(body["item"]["opinions"][0]["role"], "first");
    assert_eq!(body["item"]["opinions"][0]["decision"], "approve");
    let first_ids = body["event_ids"].clone();
    assert_eq!(first_ids.as_array().map(Vec::len), Some(1), "{body}");
    // A retry gets the same event back; the same reviewer cannot give the second opinion.
    let (status, body, _) = decide(&alice, &ids[0], json!({"decision": "approve"})).await;
    assert_eq!(
        (status, &body["event_ids"]),
        (StatusCode::OK, &first_ids),
        "{body}"
    );
    for (status, body, _) in [
        decide(
            &alice,
            &ids[0],
            json!({"decision": "reject", "reason": "changed my mind"}),
        )
        .await,
        h.call("POST", &path(&ids[0], "claim"), Some(&alice), None)
            .await,
    ] {
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (StatusCode::CONFLICT, Some("already_gave_opinion")),
            "{body}"
        );
    }
    // Bob does not see Alice's decision (independent opinions); an admin does.
    let (_, body, _) = h
        .call("GET", &format!("/v1/reviews/{}", ids[0]), Some(&bob), None)
        .await;
    let seen = &body["item"]["opinions"][0];
    assert_eq!(
        (&seen["reviewer"], &seen["decision"]),
        (&json!("alice"), &Value::Null),
        "{body}"
    );
    let (_, body, _) = h
        .call("GET", &format!("/v1/reviews/{}", ids[0]), Some(&dana), None)
        .await;
    assert_eq!(body["item"]["opinions"][0]["decision"], "approve");
    // Bob agrees: settled, and the draft goes out.
    let (status, body, _) = decide(&bob, &ids[0], json!({"decision": "approve"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["item"]["status"], "decided");
    assert_eq!(body["item"]["decided_by"], "bob");
    assert_eq!(
        body["event_ids"].as_array().map(Vec::len),
        Some(2),
        "{body}"
    );

    // On the second item they disagree: disputed until an admin rules.
    let (status, _, _) = decide(&alice, &ids[1], json!({"decision": "approve"})).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body, _) = decide(
        &bob,
        &ids[1],
        json!({"decision": "reject", "reason": "promises too much"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["item"]["status"], "disputed");
    assert_eq!(body["event_ids"].as_array().map(Vec::len), Some(1));
    for (status, body, _) in [
        decide(&carol, &ids[1], json!({"decision": "approve"})).await,
        h.call("POST", &path(&ids[1], "claim"), Some(&carol), None)
            .await,
    ] {
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (StatusCode::CONFLICT, Some("disputed")),
            "{body}"
        );
    }
    let (_, body, _) = h
        .call("GET", "/v1/reviews?status=disputed", Some(&carol), None)
        .await;
    assert_eq!(body["total"], 1, "{body}");
    assert_eq!(
        metric(
            &h,
            r#"insights_review_items{priority="urgent",status="disputed"}"#
        ),
        1.0
    );
    let ruling =
        json!({"decision": "edit", "text": "We hear you. A senior colleague will call you today."});
    let (status, body, position) = decide(&dana, &ids[1], ruling).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let position = position.expect("a position");
    assert_eq!(body["item"]["status"], "decided");
    assert_eq!(body["item"]["decision"], "edit");
    assert_eq!(body["event_ids"].as_array().map(Vec::len), Some(2));

    // The log: four opinions with their roles, and one reply per item.
    let roles: Vec<(String, String, bool)> = h
        .events_of("ReviewDecided")
        .await
        .into_iter()
        .map(|e| match e.event {
            Event::ReviewDecided(d) => (d.reviewer, d.role, d.settles),
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(
        roles,
        [
            ("alice".into(), "first".into(), false),
            ("bob".into(), "second".into(), true),
            ("alice".into(), "first".into(), false),
            ("bob".into(), "second".into(), false),
            ("dana".into(), "arbiter".into(), true),
        ]
    );
    let replies: Vec<(String, String)> = h
        .events_of("ResponseApproved")
        .await
        .into_iter()
        .filter_map(|e| match e.event {
            Event::ResponseApproved(a) if !a.automatic => Some((a.approved_by, a.final_text)),
            _ => None,
        })
        .collect();
    assert_eq!(replies.len(), 2, "{replies:?}");
    assert_eq!(replies[0].0, "bob");
    assert_eq!(
        replies[1],
        (
            "dana".into(),
            "We hear you. A senior colleague will call you today.".into()
        )
    );

    // Agreement over the log: two pairs, one agreeing (approve/approve), one not
    // (approve/reject): p_o = 0.5 = p_e, κ = 0. Against the model, every reading kept its
    // label (negative): all agree, κ undefined (one category throughout).
    let analyst = h.token("ann", &[Role::Analyst]);
    let (status, body, _) = h
        .call(
            "GET",
            &format!("/v1/views/agreement?min_position={position}"),
            Some(&analyst),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let reviewers = &body["reviewers"];
    assert_eq!(
        (&reviewers["n"], &reviewers["disagreements"]),
        (&json!(2), &json!(1)),
        "{body}"
    );
    assert_eq!(reviewers["kappa"], 0.0, "{body}");
    assert_eq!(
        reviewers["by_reviewer"].as_array().map(Vec::len),
        Some(2),
        "{body}"
    );
    assert_eq!(
        (&body["model"]["n"], &body["model"]["agreement"]),
        (&json!(5), &json!(1.0))
    );
    assert_eq!(body["model"]["kappa"], Value::Null);
    assert!(h.store.verify().await.expect("verify").broken.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overdue_items_escalate_a_step_at_a_time_on_the_clock_the_keeper_is_given() {
    use insights_api::reviews::{Sla, escalate_overdue};
    let h = Harness::new().await;
    // HUMAN asks for a person: high priority, due in the policy's 60 minutes.
    let ids = h.requested(&[HUMAN, HUMAN]).await;
    assert_eq!(ids.len(), 2);
    let minutes = |n: u64| Duration::from_secs(n * 60);
    let sla = Sla {
        urgent: minutes(15),
        high: minutes(60),
        normal: minutes(240),
        low: minutes(1440),
    };
    let requested = h.events_of("ReviewRequested").await;
    let Event::ReviewRequested(r) = &requested[0].event else {
        unreachable!()
    };
    assert_eq!(r.priority, "high");
    let deadline = r.sla_deadline.micros();
    let head = h.store.head().await.expect("head").position;
    assert!(h.reviews.wait_for(head, Duration::from_secs(10)).await);
    // The second item is decided in time: it never escalates.
    let ben = h.token("ben", &[Role::Reviewer]);
    let (status, _, position) = h
        .call(
            "POST",
            &format!("/v1/reviews/{}/decision", ids[1]),
            Some(&ben),
            Some(json!({"decision": "approve"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let position: u64 = position.and_then(|p| p.parse().ok()).expect("a position");
    assert!(h.reviews.wait_for(position, Duration::from_secs(10)).await);

    let tick = |micros: i64| {
        let h = &h;
        let sla = &sla;
        async move {
            let written = escalate_overdue(&*h.store, &h.reviews, sla, Timestamp(micros))
                .await
                .expect("escalates");
            if let Some(w) = written.last() {
                assert!(
                    h.reviews
                        .wait_for(w.position, Duration::from_secs(10))
                        .await
                );
            }
            written
        }
    };
    assert!(tick(deadline - 1).await.is_empty(), "not due yet");
    let first = tick(deadline).await;
    assert_eq!(first.len(), 1);
    let Event::ReviewEscalated(x) = &first[0].events[0].event else {
        panic!("an escalation: {:?}", first[0].events)
    };
    assert_eq!(x.review_id.to_string(), ids[0]);
    assert_eq!(
        (x.from_priority.as_str(), x.to_priority.as_str(), x.level),
        ("high", "urgent", 1)
    );
    assert_eq!(x.missed_deadline.micros(), deadline);
    assert_eq!(x.sla_deadline.micros(), deadline + 15 * 60_000_000);
    assert!(
        tick(deadline + 1).await.is_empty(),
        "the new deadline holds"
    );
    // Urgent stays urgent; the next miss is level 2.
    let second = tick(deadline + 15 * 60_000_000).await;
    let Event::ReviewEscalated(x) = &second[0].events[0].event else {
        panic!("an escalation")
    };
    assert_eq!((x.to_priority.as_str(), x.level), ("urgent", 2));
    let (_, body, _) = h
        .call("GET", &format!("/v1/reviews/{}", ids[0]), Some(&ben), None)
        .await;
    assert_eq!(body["item"]["priority"], "urgent");
    assert_eq!(body["item"]["escalations"], 2);
    assert_eq!(
        metric(
            &h,
            r#"insights_review_escalations_total{priority="urgent"}"#
        ),
        2.0
    );
    assert_eq!(
        metric(
            &h,
            r#"insights_review_items{priority="urgent",status="open"}"#
        ),
        1.0
    );
    assert_eq!(
        metric(
            &h,
            r#"insights_review_items{priority="high",status="open"}"#
        ),
        0.0
    );
    assert_eq!(h.events_of("ReviewEscalated").await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_json_errors() {
    let h = Harness::new().await;
    let ids = h.requested(&[LEGAL]).await;
    let t = h.token("alice", &[Role::Reviewer]);
    let uri = format!("/v1/reviews/{}/decision", ids[0]);
    let cases: Vec<(&str, String, Option<Value>, StatusCode, &str)> = vec![
        (
            "POST",
            uri.clone(),
            Some(json!({"decision": "edit"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
        ),
        (
            "POST",
            uri.clone(),
            Some(json!({"decision": "reject"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
        ),
        (
            "POST",
            uri.clone(),
            Some(json!({"decision": "approve", "text": "x"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
        ),
        (
            "POST",
            uri.clone(),
            Some(json!({"decision": "approve", "corrected_sentiment": "angry"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
        ),
        (
            "POST",
            uri.clone(),
            Some(json!({"decision": "maybe"})),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            "POST",
            uri.clone(),
            Some(json!({"decision": "approve", "colour": 1})),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            "POST",
            "/v1/reviews/not-a-uuid/claim".into(),
            None,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "POST",
            format!("/v1/reviews/{}/claim", uuid::Uuid::nil()),
            None,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "GET",
            "/v1/reviews?status=sleeping".into(),
            None,
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            "GET",
            "/v1/reviews?limit=0".into(),
            None,
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            "GET",
            "/v1/reviews?limit=ten".into(),
            None,
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            "GET",
            "/v1/nothing-here".into(),
            None,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "DELETE",
            "/v1/reviews".into(),
            None,
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
    ];
    for (method, uri, body, status, code) in cases {
        let (got, json, _) = h.call(method, &uri, Some(&t), body).await;
        assert_eq!(
            (got, json["error"]["code"].as_str()),
            (status, Some(code)),
            "{method} {uri}: {json}"
        );
        assert!(
            json["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
    // A malformed body is a 400 with a JSON error too.
    let req = Request::builder()
        .method("POST")
        .uri(&uri)
        .header("authorization", format!("Bearer {t}"))
        .body(Body::from("{not json"))
        .expect("request");
    let res = h.app.clone().oneshot(req).await.expect("answer");
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    // min_position beyond the log: no such event, a 400 at once (not a wait, not a hang).
    let (status, json, _) = h
        .call("GET", "/v1/reviews?min_position=999", Some(&t), None)
        .await;
    assert_eq!(
        (status, json["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("bad_request")),
        "{json}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_paged_by_position_and_streamed_live() {
    let h = Harness::new().await;
    h.requested(&[LEGAL, CALM, HUMAN]).await; // 6 events
    let auditor = h.token("aud", &[Role::Auditor]);

    let (status, body, position) = h
        .call("GET", "/v1/events?limit=4", Some(&auditor), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["count"], 4);
    assert_eq!(body["next"], 4);
    assert_eq!(position.as_deref(), Some("4"));
    assert_eq!(body["events"][0]["position"], 1);
    assert_eq!(body["events"][0]["event_type"], "ResponseDrafted");
    assert!(body["events"][0]["payload"]["draft_text"].is_string());
    let (_, rest, _) = h
        .call("GET", "/v1/events?from=4", Some(&auditor), None)
        .await;
    assert_eq!(rest["count"], 2);
    let (_, reviews, _) = h
        .call(
            "GET",
            "/v1/events?types=ReviewRequested",
            Some(&auditor),
            None,
        )
        .await;
    assert_eq!(reviews["count"], 2);
    let stream = reviews["events"][0]["stream_id"]
        .as_str()
        .expect("stream")
        .to_owned();
    let (_, one, _) = h
        .call(
            "GET",
            &format!("/v1/events?stream={stream}"),
            Some(&auditor),
            None,
        )
        .await;
    assert_eq!(one["count"], 1);
    let reviewer = h.token("rev", &[Role::Reviewer]);
    let (status, _, _) = h.call("GET", "/v1/events", Some(&reviewer), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // The live feed: the stored events after `from`, then a new one as it is stored.
    let req = Request::builder()
        .uri("/v1/events/stream?from=4&types=ReviewRequested,ReviewClaimed")
        .header("authorization", format!("Bearer {auditor}"))
        .body(Body::empty())
        .expect("request");
    let res = h.app.clone().oneshot(req).await.expect("answer");
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.headers()["content-type"].to_str().unwrap_or_default(),
        "text/event-stream"
    );
    let mut body = res.into_body().into_data_stream();
    let admin = h.token("root", &[Role::Admin]);
    let id = reviews["events"][1]["event_id"]
        .as_str()
        .expect("id")
        .to_owned();
    let (status, _, _) = h
        .call(
            "POST",
            &format!("/v1/reviews/{id}/claim"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let mut text = String::new();
    while !text.contains("event: ReviewClaimed") {
        let chunk =
            tokio::time::timeout(Duration::from_secs(10), futures::StreamExt::next(&mut body))
                .await
                .expect("the feed delivers")
                .expect("open")
                .expect("chunk");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(text.contains("event: ReviewRequested"), "{text}");
    assert!(text.contains("id: 6"), "{text}");
    assert!(
        !text.contains("event: ResponseDrafted"),
        "types are filtered: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_client_is_rate_limited_with_retry_after() {
    let h = Harness::new().await;
    let state = AppState {
        store: Arc::clone(&h.store),
        auth: Arc::new(JwtAuth::hs256(SECRET)),
        reviews: ReviewQueue::default(),
        publisher: None,
        views: None,
        vault: None,
    };
    let app = insights_api::router_with(
        state,
        insights_api::RateLimit {
            per_second: 1,
            burst: 2,
        },
    );
    let get = |token: String| {
        let app = app.clone();
        async move {
            let req = Request::builder()
                .uri("/v1/reviews")
                .header("authorization", format!("Bearer {token}"))
                .body(Body::empty())
                .expect("request");
            app.oneshot(req).await.expect("answer")
        }
    };
    let alice = h.token("alice", &[Role::Reviewer]);
    assert_eq!(get(alice.clone()).await.status(), StatusCode::OK);
    assert_eq!(get(alice.clone()).await.status(), StatusCode::OK);
    let limited = get(alice.clone()).await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = limited.headers()["retry-after"]
        .to_str()
        .ok()
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in seconds");
    assert!((1..=2).contains(&retry), "{retry}");
    let body = limited
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let json: Value = serde_json::from_slice(&body).expect("JSON");
    assert_eq!(json["error"]["code"], "rate_limited");
    // Another client has its own budget.
    let bob = h.token("bob", &[Role::Reviewer]);
    assert_eq!(get(bob).await.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn views_carry_their_position_and_wait_for_min_position() {
    let h = Harness::new().await;
    let scored: Vec<Envelope> = (1..=5)
        .map(|n| scored(n, "fine", SentimentLabel::Positive, 0.9))
        .collect();
    let appended = h
        .store
        .append(AppendBatch::new(scored.iter().map(to_event_data).collect()))
        .await
        .expect("stored");
    let head = appended.last().expect("appended").position;
    let analyst = h.token("ann", &[Role::Analyst]);

    // Read-your-writes: the answer reflects at least the position asked for.
    let uri = format!("/v1/views/sentiment?min_position={head}&granularity=hour");
    let (status, body, position) = h.call("GET", &uri, Some(&analyst), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["totals"]["n"], 5);
    assert_eq!(body["totals"]["positive"], 5);
    let at: u64 = position.expect("X-Store-Position").parse().expect("number");
    assert!(at >= head);
    assert_eq!(body["position"], at);

    let (status, body, _) = h
        .call(
            "GET",
            &format!("/v1/views/conversations/c3?min_position={head}"),
            Some(&analyst),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["events"][0]["event_type"], "SentimentScored");
    let (status, body, _) = h
        .call("GET", "/v1/views/conversations/c99", Some(&analyst), None)
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );

    let (status, body, _) = h.call("GET", "/v1/views", Some(&analyst), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["views"].as_array().map(Vec::len), Some(7), "{body}");
    for path in [
        "responses",
        "agreement",
        "fairness",
        "health",
        "anomalies",
        "conversations",
    ] {
        let (status, body, position) = h
            .call("GET", &format!("/v1/views/{path}"), Some(&analyst), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        assert!(position.is_some(), "{path} carries its position");
    }

    // A position beyond the store's head names no event: the client's mistake, 400.
    let far = format!("/v1/views/sentiment?min_position={}", head + 1_000);
    let (status, body, _) = h.call("GET", &far, Some(&analyst), None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("bad_request")),
        "{body}"
    );
    // An empty or inverted range selects nothing (each parameter is valid alone).
    let (status, body, _) = h
        .call(
            "GET",
            "/v1/views/sentiment?from=2026-11-10T00:00:00Z&to=2026-11-09T00:00:00Z",
            Some(&analyst),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Bad queries, auth.
    for bad in [
        "/v1/views/sentiment?group_by=shoe",
        "/v1/views/sentiment?granularity=week",
        "/v1/views/sentiment?bogus=1",
        "/v1/views/sentiment?from=yesterday",
        "/v1/views/fairness?limit=0",
        "/v1/views/health?minutes=99999",
    ] {
        let (status, body, _) = h.call("GET", bad, Some(&analyst), None).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("bad_request")),
            "{bad}: {body}"
        );
    }
    let (status, _, _) = h.call("GET", "/v1/views/sentiment", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let reviewer = h.token("rita", &[Role::Reviewer]);
    let (status, _, _) = h
        .call("GET", "/v1/views/sentiment", Some(&reviewer), None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let expired = h
        .auth
        .issue_at("old", &[Role::Analyst], 1_000, Duration::from_secs(60))
        .expect("token");
    let (status, _, _) = h
        .call("GET", "/v1/views/sentiment", Some(&expired), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_covers_every_endpoint() {
    let h = Harness::new().await;
    let (status, doc, _) = h.call("GET", "/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK, "served without a token");
    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
        "{doc}"
    );
    let mut paths: Vec<&str> = doc["paths"]
        .as_object()
        .expect("paths")
        .keys()
        .map(String::as_str)
        .collect();
    paths.sort_unstable();
    // Every path the router serves under /v1/, from the table the router is built from.
    let mut served: Vec<&str> = insights_api::route_paths()
        .into_iter()
        .filter(|p| p.starts_with("/v1/"))
        .collect();
    served.sort_unstable();
    assert!(served.len() >= 16, "{served:?}");
    assert_eq!(
        paths, served,
        "the OpenAPI document's paths and the router's"
    );
    // Each documented path answers (not the router's 404) — with 401 here, no token.
    for path in &paths {
        let uri = path.replace("{id}", "00000000-0000-0000-0000-000000000000");
        // The method the document names for the path.
        let method = doc["paths"][*path]
            .as_object()
            .and_then(|m| m.keys().next())
            .expect("a method")
            .to_uppercase();
        let (status, body, _) = h.call(&method, &uri, None, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {uri}: {body}");
    }
    let sentiment = &doc["paths"]["/v1/views/sentiment"]["get"];
    let params: Vec<&str> = sentiment["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    for wanted in [
        "from",
        "to",
        "granularity",
        "group_by",
        "min_position",
        "model_version",
    ] {
        assert!(params.contains(&wanted), "{wanted} in {params:?}");
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
}
