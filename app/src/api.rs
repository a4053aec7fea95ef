//! The HTTP API as `insights run` serves it: token checking, the review queue following
//! the store, reviewers' events published to Kafka, re-identification through the vault.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use async_trait::async_trait;
use insights_api::Publisher;
use insights_event_store::EventStore;
use insights_privacy::vault::Vault;
use insights_runtime::offline::EnvelopeProducer;
use insights_runtime::{KafkaSettings, Metrics};
use insights_schemas::Envelope;
use insights_topology::Topology;

use crate::plan::ApiPlan;
use crate::privacy::StoreReidentifier;

/// What the API serves from, and where its metrics go.
pub(crate) struct ApiSources<'a> {
    pub(crate) store: &'a Arc<dyn EventStore>,
    pub(crate) views: Option<insights_projections::Views>,
    pub(crate) metrics: &'a Metrics,
}

/// No API, only the ops endpoints: a process with no way to check tokens.
pub(crate) fn ops_only(metrics: &Metrics) -> Result<axum::Router> {
    let http = insights_api::metrics::HttpMetrics::register(metrics.registry())
        .context("registering the API's request metrics")?;
    Ok(http.instrument(axum::Router::new()))
}

/// The dashboard's address with a 12-hour token for reading views and working the review
/// queue (never an admin one), where the plan asks for it.
pub(crate) fn dashboard_link(api: &ApiPlan, bound: SocketAddr) -> Option<Result<String>> {
    let auth = api.hs256.as_ref().filter(|_| api.dashboard_link)?;
    let token = auth.issue(
        "dashboard",
        &[
            insights_api::Role::Analyst,
            insights_api::Role::Reviewer,
            insights_api::Role::Auditor,
        ],
        Duration::from_secs(12 * 3600),
    );
    Some(
        token
            .map(|token| format!("http://{bound}/#token={token}"))
            .context("issuing the dashboard's token"),
    )
}

/// The API's routes (requests counted and timed), with the review queue following the
/// store and reviewers' events published to the topic the response processor reads them
/// from.
pub(crate) async fn router(
    options: &ApiPlan,
    topology: &Topology,
    kafka: &KafkaSettings,
    sources: ApiSources<'_>,
    vault: Option<Arc<Vault>>,
) -> Result<axum::Router> {
    let ApiSources {
        store,
        views,
        metrics,
    } = sources;
    let http = insights_api::metrics::HttpMetrics::register(metrics.registry())
        .context("registering the API's request metrics")?;
    let jwks = match &options.jwks {
        Some(config) => Some(insights_api::jwks::JwksAuth::new(config.clone()).await),
        None => None,
    };
    let auth = insights_api::Either {
        hs256: options.hs256.clone(),
        jwks,
    };
    let reviews = insights_api::ReviewQueue::with_metrics(
        insights_api::metrics::ReviewMetrics::register(metrics.registry())
            .context("registering the review metrics")?,
    );
    {
        let reviews = reviews.clone();
        let store = Arc::clone(store);
        tokio::spawn(async move {
            if let Err(e) = reviews.follow(store).await {
                eprintln!("insights: the review queue stopped following the store: {e}");
            }
        });
    }
    let publisher: Option<Arc<dyn insights_api::Publisher>> = match topology
        .topics
        .contains_key(REVIEW_DECISIONS)
    {
        true => Some(Arc::new(KafkaPublisher {
            producer: EnvelopeProducer::new(kafka)?,
            topic: REVIEW_DECISIONS.to_owned(),
        })),
        false => {
            eprintln!(
                "insights: no `{REVIEW_DECISIONS}` topic in the topology: reviewers' decisions are stored, not published"
            );
            None
        }
    };
    if options.review_lease.is_some() || options.sla.is_some() {
        tokio::spawn(insights_api::keep_reviews(
            Arc::clone(store),
            reviews.clone(),
            publisher.clone(),
            options.review_lease,
            options.sla,
        ));
    }
    let limit = insights_api::RateLimit {
        per_second: options.rate_limit,
        burst: options.rate_limit.saturating_mul(2),
    };
    Ok(http.instrument(insights_api::router_with(
        insights_api::AppState {
            store: Arc::clone(store),
            auth: Arc::new(auth),
            reviews,
            publisher,
            views,
            vault: vault.map(|v| {
                Arc::new(StoreReidentifier::new(Arc::clone(store), v))
                    as Arc<dyn insights_api::Reidentifier>
            }),
        },
        limit,
    )))
}

/// The topic reviewers' events are published to.
const REVIEW_DECISIONS: &str = "review.decisions";

/// Publishes reviewers' events to `review.decisions`, encoded like the processors' outputs.
#[derive(Debug)]
struct KafkaPublisher {
    producer: EnvelopeProducer,
    topic: String,
}

#[async_trait]
impl Publisher for KafkaPublisher {
    async fn publish(&self, key: &str, events: &[Envelope]) -> Result<(), String> {
        // One after another: the idempotent producer keeps them in order on the partition.
        for e in events {
            self.producer
                .send(&self.topic, key, e)
                .await
                .map_err(|err| err.to_string())?;
        }
        Ok(())
    }
}
