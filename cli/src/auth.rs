//! Who may call the HTTP API: the project's own JWT secret and an organisation's identity
//! provider. A leaf (it reads secrets through `secrets`).

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use insights_api::JwtAuth;

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
        let key = crate::secrets::secret(
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

    /// The provider's settings, if one is configured (its keys are fetched when the API
    /// starts).
    pub fn config(&self) -> Option<insights_api::jwks::JwksConfig> {
        Some(insights_api::jwks::JwksConfig {
            url: self.jwks_url.clone()?,
            issuer: self.jwt_issuer.clone().unwrap_or_default(),
            audience: self.jwt_audience.clone(),
            roles_claim: self.jwt_roles_claim.clone(),
            role_prefix: self.jwt_role_prefix.clone(),
        })
    }
}
