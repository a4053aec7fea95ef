//! Tokens from an organisation's identity provider (Keycloak, Auth0, Entra ID, Okta):
//! asymmetric JWTs (RS256/384/512, PS256/384/512, ES256/384) checked against the keys the
//! provider publishes at its JWKS URL.
//!
//! The key set is fetched when the authenticator starts, again when a token names a key
//! (`kid`) it does not hold (the provider rotated its keys; at most one fetch every 10 s),
//! and when it is older than 10 minutes (a withdrawn key stops validating). A token must
//! carry the configured issuer, the audience if one is configured, `sub` and `exp`; its
//! algorithm must be the key's; a `nbf` in the future (beyond 30 s of clock skew) is
//! refused like an `exp` in the past. Roles come from a claim named by a dotted path —
//! `realm_access.roles` (Keycloak), `roles` (Entra ID app roles, Okta), a namespaced claim
//! (Auth0) — as strings, optionally with a prefix (`insights-reviewer`); values that are
//! not one of the API's roles are ignored. A provider that cannot be reached when a key is
//! needed is a 503 (retry), not a 401.

use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, errors::ErrorKind};
use serde_json::Value;

use crate::auth::{Authenticator, Principal, Role, bearer_token};
use crate::error::ApiError;

/// The algorithms accepted from a provider: asymmetric only, so that a key set can never
/// be used as an HMAC secret.
const ALGORITHMS: [Algorithm; 8] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
];

/// At most one fetch this often on unknown keys.
const MIN_REFETCH: Duration = Duration::from_secs(10);
/// Keys older than this are fetched again before use.
const MAX_AGE: Duration = Duration::from_secs(600);

/// What tokens must be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwksConfig {
    /// The provider's JWKS URL.
    pub url: String,
    /// The `iss` tokens must carry.
    pub issuer: String,
    /// The `aud` tokens must include, if any.
    pub audience: Option<String>,
    /// Where the roles are: a dotted path into the claims.
    pub roles_claim: String,
    /// A prefix the provider's role names carry (`insights-` for `insights-reviewer`).
    pub role_prefix: String,
}

#[derive(Debug, Default)]
struct KeySet {
    keys: Vec<(Option<String>, Jwk)>,
    fetched: Option<Instant>,
    last_try: Option<Instant>,
}

/// Validates tokens against a provider's JWKS.
#[derive(Debug)]
pub struct JwksAuth {
    config: JwksConfig,
    client: reqwest::Client,
    keys: tokio::sync::Mutex<KeySet>,
}

impl JwksAuth {
    /// An authenticator for `config`; fetches the key set now (a provider that cannot be
    /// reached yet is logged and tried again when a token arrives).
    pub async fn new(config: JwksConfig) -> Self {
        let auth = JwksAuth {
            config,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap_or_default(),
            keys: tokio::sync::Mutex::new(KeySet::default()),
        };
        let mut keys = auth.keys.lock().await;
        if let Err(e) = auth.fetch(&mut keys).await {
            tracing::warn!(url = %auth.config.url, error = %e, "identity provider's key set not fetched yet");
        }
        drop(keys);
        auth
    }

    async fn fetch(&self, keys: &mut KeySet) -> Result<(), String> {
        keys.last_try = Some(Instant::now());
        let set: JwkSet = self
            .client
            .get(&self.config.url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| format!("not a JWK set: {e}"))?;
        // Signing keys only (a set may hold encryption keys too).
        keys.keys = set
            .keys
            .into_iter()
            .filter(|k| {
                !matches!(
                    k.common.public_key_use,
                    Some(jsonwebtoken::jwk::PublicKeyUse::Encryption)
                )
            })
            .map(|k| (k.common.key_id.clone(), k))
            .collect();
        keys.fetched = Some(Instant::now());
        Ok(())
    }

    /// The key for `kid` (the only key when the token names none), fetching the set again
    /// where it is stale or lacks the key.
    async fn key(&self, kid: Option<&str>) -> Result<Jwk, ApiError> {
        let mut keys = self.keys.lock().await;
        let find = |keys: &KeySet| -> Option<Jwk> {
            match kid {
                Some(kid) => keys
                    .keys
                    .iter()
                    .find(|(k, _)| k.as_deref() == Some(kid))
                    .map(|(_, jwk)| jwk.clone()),
                None if keys.keys.len() == 1 => Some(keys.keys[0].1.clone()),
                None => None,
            }
        };
        let stale = keys.fetched.is_none_or(|at| at.elapsed() > MAX_AGE);
        let found = if stale { None } else { find(&keys) };
        if let Some(jwk) = found {
            return Ok(jwk);
        }
        let may_fetch = stale || keys.last_try.is_none_or(|at| at.elapsed() >= MIN_REFETCH);
        if may_fetch && let Err(e) = self.fetch(&mut keys).await {
            tracing::warn!(url = %self.config.url, error = %e, "fetching the identity provider's keys failed");
            if keys.fetched.is_none_or(|at| at.elapsed() > MAX_AGE) {
                return Err(ApiError::unavailable(
                    "the identity provider's keys cannot be fetched; retry shortly",
                ));
            }
        }
        find(&keys).ok_or_else(|| {
            ApiError::unauthorized(
                "invalid_token",
                "the token's signing key is not in the identity provider's key set",
            )
        })
    }
}

#[async_trait::async_trait]
impl Authenticator for JwksAuth {
    async fn authenticate(&self, headers: &HeaderMap) -> Result<Principal, ApiError> {
        let token = bearer_token(headers)?;
        let invalid = || ApiError::unauthorized("invalid_token", "the token is not valid");
        let header = jsonwebtoken::decode_header(token).map_err(|_| invalid())?;
        if !ALGORITHMS.contains(&header.alg) {
            return Err(invalid());
        }
        let jwk = self.key(header.kid.as_deref()).await?;
        if jwk
            .common
            .key_algorithm
            .and_then(|a| a.to_string().parse::<Algorithm>().ok())
            .is_some_and(|a| a != header.alg)
        {
            return Err(invalid());
        }
        let key = DecodingKey::from_jwk(&jwk).map_err(|_| invalid())?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_required_spec_claims(&["exp", "sub", "iss"]);
        validation.validate_nbf = true;
        validation.leeway = 30;
        match &self.config.audience {
            Some(aud) => validation.set_audience(&[aud]),
            None => validation.validate_aud = false,
        }
        let claims = jsonwebtoken::decode::<Value>(token, &key, &validation)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => {
                    ApiError::unauthorized("token_expired", "the token has expired")
                }
                _ => invalid(),
            })?
            .claims;
        let subject = claims["sub"]
            .as_str()
            .filter(|s| !s.is_empty())
            .ok_or_else(invalid)?
            .to_owned();
        Ok(Principal {
            subject,
            roles: roles(&claims, &self.config.roles_claim, &self.config.role_prefix),
        })
    }
}

/// The API roles named at `path` (dotted) in `claims`: an array of strings or one
/// space-separated string, each with `prefix` taken off.
pub fn roles(claims: &Value, path: &str, prefix: &str) -> Vec<Role> {
    let mut at = claims;
    for part in path.split('.').filter(|p| !p.is_empty()) {
        at = &at[part];
    }
    let names: Vec<&str> = match at {
        Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
        Value::String(s) => s.split_whitespace().collect(),
        _ => Vec::new(),
    };
    let mut out = Vec::new();
    for name in names {
        if let Some(role) = name.strip_prefix(prefix).and_then(Role::parse)
            && !out.contains(&role)
        {
            out.push(role);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn roles_come_from_a_dotted_claim_with_a_prefix_and_unknown_ones_are_ignored() {
        let keycloak = json!({"realm_access": {"roles": ["insights-reviewer", "offline_access", "insights-admin", "insights-reviewer"]}});
        assert_eq!(
            roles(&keycloak, "realm_access.roles", "insights-"),
            [Role::Reviewer, Role::Admin]
        );
        let entra = json!({"roles": ["analyst", "Auditor"]});
        assert_eq!(roles(&entra, "roles", ""), [Role::Analyst]);
        let scopes = json!({"scp": "auditor analyst"});
        assert_eq!(roles(&scopes, "scp", ""), [Role::Auditor, Role::Analyst]);
        assert!(roles(&json!({}), "roles", "").is_empty());
        assert!(roles(&json!({"roles": 7}), "roles", "").is_empty());
    }
}
