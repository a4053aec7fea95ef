//! The HTTP API as `insights run` serves it: token checking, the review queue following
//! the store, reviewers' events published to Kafka, re-identification through the vault.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use async_trait::async_trait;
use insights_api::Publisher;
use insights_event_store::EventStore;
use insights_runtime::KafkaSettings;
use insights_runtime::offline::EnvelopeProducer;
use insights_schemas::Envelope;
use insights_topology::Topology;

use super::{privacy, response};
use crate::auth::{IdentityProviderArgs, SecretArgs};

/// How the API is to run (from `insights run`'s flags).
#[derive(Debug)]
pub(crate) struct ApiOptions<'a> {
    /// The project's own token secret.
    pub(crate) secret: &'a SecretArgs,
    /// An identity provider's tokens.
    pub(crate) idp: &'a IdentityProviderArgs,
    /// Requests per second per client.
    pub(crate) api_rate_limit: u32,
    /// How long a reviewer's claim lasts (`None`: forever).
    pub(crate) review_lease: Option<Duration>,
    /// Whether overdue review items stay where they are.
    pub(crate) no_review_escalation: bool,
}

/// What the API serves from, and where its metrics go.
pub(crate) struct ApiSources<'a> {
    pub(crate) store: &'a Arc<dyn EventStore>,
    pub(crate) views: Option<insights_projections::Views>,
    pub(crate) metrics: &'a insights_runtime::Metrics,
}

/// The API's routes (requests counted and timed), with the review queue following the
/// store and reviewers' events published to the topic the response processor reads them
/// from.
pub(crate) async fn router(
    args: &ApiOptions<'_>,
    topology: &Topology,
    kafka: &KafkaSettings,
    sources: ApiSources<'_>,
    vault: impl FnOnce() -> Option<Arc<insights_privacy::vault::Vault>>,
    embedded: bool,
) -> Result<axum::Router> {
    let ApiSources {
        store,
        views,
        metrics,
    } = sources;
    let http = insights_api::metrics::HttpMetrics::register(metrics.registry())
        .context("registering the API's request metrics")?;
    if !embedded && !args.secret.configured() && !args.idp.configured() {
        // A processor replica against a real cluster need not serve the API; one without
        // a way to check tokens serves only the ops endpoints.
        eprintln!(
            "insights: API disabled: no JWT secret (set INSIGHTS_JWT_SECRET or --jwt-secret-file) and no identity provider (--jwks-url)"
        );
        return Ok(http.instrument(axum::Router::new()));
    }
    // The project's own tokens where a secret is (or, embedded, may be made), and the
    // identity provider's where one is configured.
    let hs256 = (embedded || args.secret.configured())
        .then(|| args.secret.auth(embedded))
        .transpose()?;
    let auth = insights_api::Either {
        hs256,
        jwks: args.idp.auth().await,
    };
    let vault = vault();
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
    let sla = match args.no_review_escalation {
        true => None,
        false => {
            let m = response::config(topology, &response::LlmArgs::default())?
                .policy
                .sla_minutes;
            let minutes = |n: u32| Duration::from_secs(u64::from(n) * 60);
            Some(insights_api::reviews::Sla {
                urgent: minutes(m.urgent),
                high: minutes(m.high),
                normal: minutes(m.normal),
                low: minutes(m.low),
            })
        }
    };
    if args.review_lease.is_some() || sla.is_some() {
        tokio::spawn(insights_api::keep_reviews(
            Arc::clone(store),
            reviews.clone(),
            publisher.clone(),
            args.review_lease,
            sla,
        ));
    }
    let limit = insights_api::RateLimit {
        per_second: args.api_rate_limit,
        burst: args.api_rate_limit.saturating_mul(2),
    };
    Ok(http.instrument(insights_api::router_with(
        insights_api::AppState {
            store: Arc::clone(store),
            auth: Arc::new(auth),
            reviews,
            publisher,
            views,
            vault: vault.map(|v| {
                Arc::new(privacy::StoreReidentifier::new(Arc::clone(store), v))
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
