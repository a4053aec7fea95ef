//! The HTTP API as the binary runs it: the JWT secret, the Kafka publisher for reviewers'
//! events, and `insights token issue`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, bail};
use async_trait::async_trait;
use clap::Args;
use insights_api::{JwtAuth, Publisher, Role};
use insights_runtime::KafkaSettings;
use insights_schemas::{Codec, Envelope, Format};
use rdkafka::producer::{FutureProducer, FutureRecord};

/// Where the JWT secret comes from.
#[derive(Debug, Args)]
pub struct SecretArgs {
    /// The JWT signing secret file (64 hex digits), read when INSIGHTS_JWT_SECRET is unset;
    /// the embedded default creates it.
    #[arg(long, default_value = "data/jwt.secret")]
    jwt_secret_file: PathBuf,
}

impl SecretArgs {
    /// Whether a secret is configured (the variable is set or the file exists).
    pub fn configured(&self) -> bool {
        std::env::var_os("INSIGHTS_JWT_SECRET").is_some() || self.jwt_secret_file.exists()
    }

    /// The token signer and checker.
    pub fn auth(&self, may_create: bool) -> Result<JwtAuth> {
        let key = crate::pipeline::secret(
            "INSIGHTS_JWT_SECRET",
            &self.jwt_secret_file,
            may_create,
            "JWT secret",
        )?;
        Ok(JwtAuth::hs256(&key))
    }
}

/// An organisation's identity provider whose tokens the API accepts besides its own.
#[derive(Debug, Args)]
pub struct IdentityProviderArgs {
    /// The provider's JWKS URL (Keycloak: …/realms/R/protocol/openid-connect/certs; Auth0,
    /// Okta: …/.well-known/jwks.json; Entra ID: …/discovery/v2.0/keys): its RS256/ES256
    /// tokens are accepted.
    #[arg(long, env = "INSIGHTS_JWKS_URL", requires = "jwt_issuer")]
    jwks_url: Option<String>,
    /// The issuer (`iss`) the provider's tokens carry.
    #[arg(long, env = "INSIGHTS_JWT_ISSUER")]
    jwt_issuer: Option<String>,
    /// The audience (`aud`) they must be for, e.g. the API's client id.
    #[arg(long, env = "INSIGHTS_JWT_AUDIENCE")]
    jwt_audience: Option<String>,
    /// The claim holding the roles, a dotted path: realm_access.roles (Keycloak), roles
    /// (Entra ID app roles, Okta), a namespaced claim (Auth0).
    #[arg(long, env = "INSIGHTS_JWT_ROLES_CLAIM", default_value = "roles")]
    jwt_roles_claim: String,
    /// A prefix of the provider's role names (insights- for insights-reviewer).
    #[arg(long, env = "INSIGHTS_JWT_ROLE_PREFIX", default_value = "")]
    jwt_role_prefix: String,
}

impl IdentityProviderArgs {
    /// Whether a provider is configured.
    pub fn configured(&self) -> bool {
        self.jwks_url.is_some()
    }

    /// The provider's token checker, if one is configured (fetches its keys now).
    pub async fn auth(&self) -> Option<insights_api::jwks::JwksAuth> {
        let url = self.jwks_url.clone()?;
        Some(
            insights_api::jwks::JwksAuth::new(insights_api::jwks::JwksConfig {
                url,
                issuer: self.jwt_issuer.clone().unwrap_or_default(),
                audience: self.jwt_audience.clone(),
                roles_claim: self.jwt_roles_claim.clone(),
                role_prefix: self.jwt_role_prefix.clone(),
            })
            .await,
        )
    }
}

/// `insights token issue`.
#[derive(Debug, Args)]
pub struct IssueArgs {
    /// Who the token is for (recorded as the reviewer on review events).
    #[arg(long)]
    subject: String,
    /// A role: analyst, reviewer, auditor or admin; repeatable.
    #[arg(long = "role", required = true, value_parser = parse_role)]
    roles: Vec<Role>,
    /// How long it is valid: e.g. 30m, 8h, 7d.
    #[arg(long, default_value = "8h", value_parser = parse_ttl)]
    ttl: Duration,
    #[command(flatten)]
    secret: SecretArgs,
}

fn parse_role(s: &str) -> Result<Role, String> {
    Role::parse(s).ok_or_else(|| format!("{s:?} is not a role (analyst, reviewer, auditor, admin)"))
}

fn parse_ttl(s: &str) -> Result<Duration, String> {
    let d = insights_topology::parse_duration(s)?;
    if d.is_zero() {
        return Err("the duration must be positive".into());
    }
    Ok(d)
}

/// Prints a token. The secret must exist already (the running API must know it).
pub fn issue(args: &IssueArgs) -> Result<()> {
    if args.subject.trim().is_empty() {
        bail!("--subject is empty");
    }
    let auth = args.secret.auth(false)?;
    println!("{}", auth.issue(&args.subject, &args.roles, args.ttl)?);
    Ok(())
}

/// Publishes reviewers' events to `review.decisions`, encoded like the processors' outputs.
pub struct KafkaPublisher {
    producer: FutureProducer,
    topic: String,
    codec: Codec,
}

impl std::fmt::Debug for KafkaPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaPublisher")
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

impl KafkaPublisher {
    /// A publisher to `topic`.
    pub fn new(kafka: &KafkaSettings, topic: String) -> Result<Arc<Self>> {
        Ok(Arc::new(KafkaPublisher {
            producer: insights_runtime::producer(kafka)?,
            topic,
            codec: Codec::new(),
        }))
    }
}

#[async_trait]
impl Publisher for KafkaPublisher {
    async fn publish(&self, key: &str, events: &[Envelope]) -> Result<(), String> {
        // One after another: the idempotent producer keeps them in order on the partition.
        for e in events {
            let bytes = self
                .codec
                .encode(e, Format::SingleObject)
                .map_err(|err| format!("encoding {}: {err}", e.event_type()))?;
            self.producer
                .send(
                    FutureRecord::to(&self.topic)
                        .key(key)
                        .payload(bytes.as_slice()),
                    Duration::from_secs(10),
                )
                .await
                .map_err(|(err, _)| format!("publishing to {}: {err}", self.topic))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_roles_parse_or_say_why_not() {
        assert_eq!(parse_ttl("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_ttl("7d"), Ok(Duration::from_secs(604_800)));
        assert!(parse_ttl("8").is_err());
        assert!(parse_ttl("0h").is_err());
        assert!(parse_ttl("h").is_err());
        assert_eq!(parse_role("reviewer"), Ok(Role::Reviewer));
        assert!(parse_role("king").is_err());
    }
}
