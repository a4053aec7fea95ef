//! What one `insights run` process is to do, every setting resolved.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use insights_api::JwtAuth;
use insights_api::jwks::JwksConfig;
use insights_api::reviews::Sla;
use insights_fairness::FairnessConfig;
use insights_privacy::PrivacyConfig;
use insights_response::ResponseConfig;
use insights_runtime::KafkaSettings;
use insights_sentiment::SentimentConfig;
use insights_topology::Topology;

/// `insights run`, resolved: built by the binary from its flags, the environment and
/// topology.toml, read by [`crate::run`].
#[derive(Debug)]
pub struct Plan {
    /// topology.toml, validated as a graph.
    pub topology: Topology,
    /// Where it was read from (for messages).
    pub topology_path: PathBuf,
    /// The event store.
    pub store: StoreSettings,
    /// The cluster; `None` starts the embedded broker (and creates the topology's topics).
    pub kafka: Option<KafkaSettings>,
    /// Which part of the pipeline this process is.
    pub role: Role,
    /// Exit when every input topic is drained (and the views caught up), printing the
    /// store's event counts per type.
    pub until_idle: bool,
    /// A JSON-lines file of interactions to produce to the input topic first.
    pub input: Option<PathBuf>,
    /// Whether the projection views run in this process.
    pub projections: bool,
    /// The configuration of each processor this process runs.
    pub processors: Processors,
    /// The HTTP server (API, metrics, health); `None`: off.
    pub http: Option<Http>,
}

impl Plan {
    /// Whether the broker is the embedded one (the laptop default).
    pub fn embedded(&self) -> bool {
        self.kafka.is_none()
    }
}

/// Which part of a deployment a process is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// Every processor of the topology (and, unless told otherwise, the views).
    Pipeline,
    /// One processor (each can be its own process and replica set).
    Processor(String),
    /// No processor: the views and the HTTP API.
    Views,
}

impl Role {
    /// Whether this process runs the processor `name`.
    pub fn runs(&self, name: &str) -> bool {
        match self {
            Role::Pipeline => true,
            Role::Processor(p) => p == name,
            Role::Views => false,
        }
    }
}

/// The event store's URL and pool size.
#[derive(Debug, Clone)]
pub struct StoreSettings {
    /// `sqlite://PATH` or `postgres://…`.
    pub url: String,
    /// The pool's size.
    pub max_connections: u32,
}

/// Each processor's configuration, present where this process runs it.
#[derive(Debug, Default)]
pub struct Processors {
    /// Privacy, with the pseudonym key.
    pub privacy: Option<PrivacyConfig>,
    /// Sentiment, with the model chosen by flags or the environment.
    pub sentiment: Option<SentimentConfig>,
    /// Response, with the LLM chosen by flags or the environment.
    pub response: Option<ResponsePlan>,
    /// Fairness.
    pub fairness: Option<FairnessConfig>,
}

/// The response processor's configuration and the LLM API's bearer token.
pub struct ResponsePlan {
    /// topology.toml's `[processors.response.config]` with the flags over it.
    pub config: ResponseConfig,
    /// The token, from the variable `config.openai.api_key_env` names, if set.
    pub api_key: Option<String>,
}

impl std::fmt::Debug for ResponsePlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponsePlan")
            .field("config", &self.config)
            .field("api_key", &self.api_key.as_ref().map(|_| "<secret>"))
            .finish()
    }
}

/// The HTTP server.
#[derive(Debug)]
pub struct Http {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The API under `/v1`; `None` serves only the ops endpoints (no way to check tokens).
    pub api: Option<ApiPlan>,
}

/// How the API checks tokens and keeps the review queue.
#[derive(Debug)]
pub struct ApiPlan {
    /// The project's own HS256 tokens, where a secret is configured (or, embedded, made).
    pub hs256: Option<JwtAuth>,
    /// An organisation's identity provider whose tokens are accepted too.
    pub jwks: Option<JwksConfig>,
    /// Requests per second per client; bursts of twice as many.
    pub rate_limit: u32,
    /// How long a reviewer's claim lasts without a decision (`None`: forever).
    pub review_lease: Option<Duration>,
    /// Deadlines per priority past which an open review item escalates (`None`: never).
    pub sla: Option<Sla>,
    /// The pseudonym key, for a process that does not run privacy to open the vault for
    /// re-identification (`POST /v1/vault/reveal`); `None` leaves it off there.
    pub reveal_key: Option<[u8; 32]>,
    /// Print a link to the dashboard with a 12-hour reading and reviewing token (the
    /// embedded default with its views).
    pub dashboard_link: bool,
}
