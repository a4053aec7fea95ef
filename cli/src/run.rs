//! `insights run`: the pipeline, all in one process (the embedded default) or one part of
//! a deployment (`--processor NAME`, `--views-only`), with the HTTP API and ops endpoints.
//! The flags, the environment and topology.toml are resolved here into an
//! [`insights_app::Plan`], once; `insights_app::run` assembles and runs it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use insights_app::{ApiPlan, Http, Plan, Processors, ResponsePlan, Role, StoreSettings};
use insights_privacy::PrivacySettings;
use insights_response::ResponseConfig;
use insights_topology::{ConfigError, ProcessorConfig, Topology};

use crate::auth::{IdentityProviderArgs, SecretArgs};
use crate::model::ModelArgs;
use crate::secrets;
use crate::settings::{self, Global, KafkaArgs};

/// `insights run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    kafka: KafkaArgs,
    /// Run only this processor (each can be its own process and replica set).
    #[arg(long)]
    processor: Option<String>,
    /// Exit when every input topic is drained, printing event counts per type.
    #[arg(long)]
    until_idle: bool,
    /// Produce this JSON-lines file of interactions first.
    #[arg(long)]
    input: Option<PathBuf>,
    /// Address of the HTTP server: the API (/v1/...) and /metrics, /healthz, /readyz;
    /// `off` to disable.
    #[arg(
        long = "listen",
        visible_alias = "ops-listen",
        default_value = "127.0.0.1:9898"
    )]
    listen: String,
    /// The pseudonym key file (64 hex digits), read when INSIGHTS_PRIVACY_KEY is unset;
    /// the embedded default creates it.
    #[arg(long, default_value = "data/privacy.key")]
    privacy_key_file: PathBuf,
    #[command(flatten)]
    sentiment: ModelArgs,
    #[command(flatten)]
    llm: LlmArgs,
    #[command(flatten)]
    secret: SecretArgs,
    #[command(flatten)]
    idp: IdentityProviderArgs,
    /// Do not run the projection views here (another process does). They run by default
    /// unless `--processor` picks one processor.
    #[arg(long)]
    no_projections: bool,
    /// Run no processor: only the projection views and the HTTP API (a deployment's API
    /// service; the processors run elsewhere).
    #[arg(long, conflicts_with_all = ["processor", "until_idle", "no_projections"])]
    views_only: bool,
    /// API requests per second per client (bearer token), with bursts of twice as many.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
    api_rate_limit: u32,
    /// How long a reviewer's claim lasts without a decision before the item goes back to
    /// the queue (`30m`, `2h`, …; `off`: claims never expire).
    #[arg(long, env = "INSIGHTS_REVIEW_LEASE", default_value = "30m", value_parser = Lease::parse)]
    review_lease: Lease,
    /// Do not escalate review items past their SLA deadline (by default the API raises an
    /// overdue item's priority a step and gives it the new priority's SLA, from
    /// `[processors.response.config.policy.sla_minutes]`).
    #[arg(long, env = "INSIGHTS_NO_REVIEW_ESCALATION")]
    no_review_escalation: bool,
}

/// `--review-lease`: a duration, or none (`off`).
#[derive(Debug, Clone, Copy)]
struct Lease(Option<Duration>);

impl Lease {
    fn parse(s: &str) -> Result<Lease, String> {
        if s == "off" {
            return Ok(Lease(None));
        }
        match insights_topology::parse_duration(s)? {
            d if d.is_zero() => Err("a lease must be longer than zero (or `off`)".into()),
            d => Ok(Lease(Some(d))),
        }
    }
}

/// LLM flags for the response processor.
#[derive(Debug, Args)]
struct LlmArgs {
    /// Base URL of an OpenAI-compatible API (e.g. http://127.0.0.1:8080/v1) for drafting.
    #[arg(long, env = "INSIGHTS_LLM_URL")]
    llm_url: Option<String>,
    /// The model name sent to that API.
    #[arg(long, env = "INSIGHTS_LLM_MODEL")]
    llm_model: Option<String>,
}

/// Runs `insights run`.
pub async fn run(global: &Global, args: RunArgs) -> Result<ExitCode> {
    insights_app::run(args.plan(global)?).await
}

impl RunArgs {
    /// What this process is, when it is one part of a deployment: its processor, or
    /// `views` for the views/API process; `None` for the whole pipeline.
    pub fn role(&self) -> Option<&str> {
        if self.views_only {
            Some("views")
        } else {
            self.processor.as_deref()
        }
    }

    /// Every setting resolved: topology.toml < environment < flags, the secrets read (or,
    /// embedded, created), each processor's configuration this process runs validated.
    fn plan(self, global: &Global) -> Result<Plan> {
        let topology = settings::load_topology(global)?;
        let role = match (self.views_only, &self.processor) {
            (true, _) => Role::Views,
            (false, None) => Role::Pipeline,
            (false, Some(p)) if topology.processors.contains_key(p) => Role::Processor(p.clone()),
            (false, Some(p)) => bail!(
                "processor `{p}` is not declared in {}",
                global.topology.display()
            ),
        };
        let (url, max_connections) = settings::store_url(global)?;
        let kafka = self.kafka.settings(&topology);
        let embedded = kafka.is_none();
        let runs = |name: &str| role.runs(name) && topology.processors.contains_key(name);
        let processors = Processors {
            // Only the privacy processor uses the pseudonym key; a process that does not
            // run it needs none.
            privacy: match runs(PrivacySettings::NAME) {
                true => Some(
                    PrivacySettings::from_topology(&topology)?
                        .with_key(secrets::privacy_key(&self.privacy_key_file, embedded)?),
                ),
                false => None,
            },
            sentiment: match runs(insights_sentiment::SentimentConfig::NAME) {
                true => Some(insights_sentiment::SentimentConfig {
                    model: self.sentiment.choice(),
                    ..insights_sentiment::SentimentConfig::from_topology(&topology)?
                }),
                false => None,
            },
            response: match runs(ResponseConfig::NAME) {
                true => {
                    let config = self.llm.config(&topology)?;
                    let api_key = std::env::var(&config.openai.api_key_env).ok();
                    Some(ResponsePlan { config, api_key })
                }
                false => None,
            },
            fairness: match runs(insights_fairness::FairnessConfig::NAME) {
                true => Some(insights_fairness::FairnessConfig::from_topology(&topology)?),
                false => None,
            },
        };
        let projections = role == Role::Views || (role == Role::Pipeline && !self.no_projections);
        let http = match self.listen.as_str() {
            "off" => None,
            listen => Some(Http {
                addr: listen
                    .parse::<SocketAddr>()
                    .with_context(|| format!("--listen {listen:?} is not an address"))?,
                // The API lives where the views are (the whole pipeline, or `--views-only`):
                // a processor replica has no views to serve, and its review queue would
                // fold the log once more in every replica.
                api: match &role {
                    Role::Processor(name) => {
                        eprintln!(
                            "insights: the {name} replica serves the ops endpoints only (/healthz, /readyz, /metrics); \
                             the API is served where the views run (`insights run --views-only`)"
                        );
                        None
                    }
                    _ => self.api(
                        &topology,
                        embedded,
                        projections,
                        processors.privacy.is_some(),
                    )?,
                },
            }),
        };
        Ok(Plan {
            topology,
            topology_path: global.topology.clone(),
            store: StoreSettings {
                url,
                max_connections,
            },
            kafka,
            role,
            until_idle: self.until_idle,
            input: self.input,
            projections,
            processors,
            http,
        })
    }

    /// How the API checks tokens; `None` where it has no way to (a processor replica on a
    /// real cluster need not serve it).
    fn api(
        &self,
        topology: &Topology,
        embedded: bool,
        projections: bool,
        runs_privacy: bool,
    ) -> Result<Option<ApiPlan>> {
        if !embedded && !self.secret.configured() && !self.idp.configured() {
            eprintln!(
                "insights: API disabled: no JWT secret (set INSIGHTS_JWT_SECRET or --jwt-secret-file) and no identity provider (--jwks-url)"
            );
            return Ok(None);
        }
        let sla = match self.no_review_escalation {
            true => None,
            false => {
                let m = ResponseConfig::from_topology(topology)?.policy.sla_minutes;
                let minutes = |n: u32| Duration::from_secs(u64::from(n) * 60);
                Some(insights_api::reviews::Sla {
                    urgent: minutes(m.urgent),
                    high: minutes(m.high),
                    normal: minutes(m.normal),
                    low: minutes(m.low),
                })
            }
        };
        Ok(Some(ApiPlan {
            // The project's own tokens where a secret is (or, embedded, may be made).
            hs256: (embedded || self.secret.configured())
                .then(|| self.secret.auth(embedded))
                .transpose()?,
            jwks: self.idp.config(),
            rate_limit: self.api_rate_limit,
            review_lease: self.review_lease.0,
            sla,
            // Never created here: a process that does not run privacy only reads it.
            reveal_key: match runs_privacy {
                true => None,
                false => secrets::privacy_key(&self.privacy_key_file, false).ok(),
            },
            dashboard_link: embedded && projections,
        }))
    }
}

impl LlmArgs {
    /// The response processor's configuration: topology.toml, then the flags and
    /// environment.
    fn config(&self, topology: &Topology) -> Result<ResponseConfig> {
        let mut config = ResponseConfig::from_topology(topology)?;
        if self.llm_url.is_none() && self.llm_model.is_none() {
            return Ok(config);
        }
        if let Some(url) = &self.llm_url {
            config.openai.base_url = Some(url.clone());
        }
        if let Some(model) = &self.llm_model {
            config.openai.model = model.clone();
        }
        config
            .validate()
            .map_err(|p| ConfigError::new(ResponseConfig::NAME, p))?;
        Ok(config)
    }
}
