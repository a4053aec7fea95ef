//! Who is calling: bearer tokens with roles.
//!
//! The seam is [`Authenticator`]: headers in, a [`Principal`] or a 401 out. Two
//! implementations: [`JwtAuth`], HS256-signed JWTs carrying the subject and roles, issued
//! by operators with `insights token issue`; and [`crate::jwks::JwksAuth`], tokens from an
//! identity provider checked against its JWKS. [`Either`] takes both, choosing by the
//! token's algorithm. Handlers ask the principal for a role ([`Principal::require`]);
//! `admin` holds every role.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::{HeaderMap, header};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;

/// What a caller may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads views.
    Analyst,
    /// Works the review queue.
    Reviewer,
    /// Verifies and replays the log.
    Auditor,
    /// Everything.
    Admin,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 4] = [Role::Analyst, Role::Reviewer, Role::Auditor, Role::Admin];

    /// The role's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Analyst => "analyst",
            Role::Reviewer => "reviewer",
            Role::Auditor => "auditor",
            Role::Admin => "admin",
        }
    }

    /// The role with this name.
    pub fn parse(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == name)
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Who (recorded as the reviewer on review events).
    pub subject: String,
    /// What they may do.
    pub roles: Vec<Role>,
}

impl Principal {
    /// Ok if the caller holds `role` (or is admin), else 403.
    pub fn require(&self, role: Role) -> Result<(), ApiError> {
        if self.roles.iter().any(|r| *r == role || *r == Role::Admin) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "this needs the `{}` role; the token has {}",
                role.as_str(),
                if self.roles.is_empty() {
                    "none".to_owned()
                } else {
                    self.roles
                        .iter()
                        .map(|r| r.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            )))
        }
    }
}

/// Turns request headers into a caller.
#[async_trait::async_trait]
pub trait Authenticator: Send + Sync + std::fmt::Debug {
    /// The caller, or a 401 (a 503 when what checks tokens cannot be reached).
    async fn authenticate(&self, headers: &HeaderMap) -> Result<Principal, ApiError>;
}

/// The token of an `Authorization: Bearer <token>` header, or a 401.
pub(crate) fn bearer_token(headers: &HeaderMap) -> Result<&str, ApiError> {
    let value = headers.get(header::AUTHORIZATION).ok_or_else(|| {
        ApiError::unauthorized("missing_token", "send Authorization: Bearer <token>")
    })?;
    value
        .to_str()
        .ok()
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            ApiError::unauthorized(
                "invalid_token",
                "the Authorization header is not `Bearer <token>`",
            )
        })
}

/// HS256 tokens (`insights token issue`) and an identity provider's, each by its own
/// checker, chosen by the token's algorithm.
#[derive(Debug)]
pub struct Either {
    /// The shared-secret tokens, if a secret is configured.
    pub hs256: Option<JwtAuth>,
    /// The provider's tokens, if a JWKS URL is configured.
    pub jwks: Option<crate::jwks::JwksAuth>,
}

#[async_trait::async_trait]
impl Authenticator for Either {
    async fn authenticate(&self, headers: &HeaderMap) -> Result<Principal, ApiError> {
        let token = bearer_token(headers)?;
        let hs256 = jsonwebtoken::decode_header(token).is_ok_and(|h| h.alg == Algorithm::HS256);
        match (hs256, &self.hs256, &self.jwks) {
            (true, Some(auth), _) => auth.authenticate(headers).await,
            (false, _, Some(auth)) => auth.authenticate(headers).await,
            _ => Err(ApiError::unauthorized(
                "invalid_token",
                "the token is not valid",
            )),
        }
    }
}

/// The token issuer and audience.
const ISSUER: &str = "customerai-insights";

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    roles: Vec<Role>,
    iss: String,
    iat: u64,
    exp: u64,
}

/// HS256 JWTs with a shared secret.
#[derive(Clone)]
pub struct JwtAuth {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for JwtAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtAuth").finish_non_exhaustive()
    }
}

/// Why a token could not be issued.
#[derive(Debug, thiserror::Error)]
#[error("cannot issue a token: {0}")]
pub struct IssueError(String);

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl JwtAuth {
    /// Tokens signed and checked with `secret` (at least 32 bytes is wise).
    pub fn hs256(secret: &[u8]) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "sub", "iss"]);
        validation.leeway = 5;
        JwtAuth {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
        }
    }

    /// A token for `subject` with `roles`, valid for `ttl` from now.
    pub fn issue(
        &self,
        subject: &str,
        roles: &[Role],
        ttl: Duration,
    ) -> Result<String, IssueError> {
        self.issue_at(subject, roles, unix_now(), ttl)
    }

    /// A token issued at `iat` (seconds since the epoch), valid for `ttl`.
    pub fn issue_at(
        &self,
        subject: &str,
        roles: &[Role],
        iat: u64,
        ttl: Duration,
    ) -> Result<String, IssueError> {
        if subject.trim().is_empty() {
            return Err(IssueError("the subject is empty".into()));
        }
        let claims = Claims {
            sub: subject.to_owned(),
            roles: roles.to_vec(),
            iss: ISSUER.into(),
            iat,
            exp: iat.saturating_add(ttl.as_secs()),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| IssueError(e.to_string()))
    }
}

#[async_trait::async_trait]
impl Authenticator for JwtAuth {
    async fn authenticate(&self, headers: &HeaderMap) -> Result<Principal, ApiError> {
        let token = bearer_token(headers)?;
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => {
                    ApiError::unauthorized("token_expired", "the token has expired")
                }
                _ => ApiError::unauthorized("invalid_token", "the token is not valid"),
            })?;
        Ok(Principal {
            subject: data.claims.sub,
            roles: data.claims.roles,
        })
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn bearer(token: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {token}")).expect("header"),
        );
        h
    }

    #[tokio::test]
    async fn issued_tokens_authenticate_with_their_roles() {
        let auth = JwtAuth::hs256(b"0123456789abcdef0123456789abcdef");
        let token = auth
            .issue("alice", &[Role::Reviewer], Duration::from_secs(60))
            .expect("issued");
        let p = auth.authenticate(&bearer(&token)).await.expect("valid");
        assert_eq!(p.subject, "alice");
        assert!(p.require(Role::Reviewer).is_ok());
        let denied = p.require(Role::Auditor).expect_err("not an auditor");
        assert_eq!(denied.status.as_u16(), 403);
        let admin = Principal {
            subject: "root".into(),
            roles: vec![Role::Admin],
        };
        assert!(Role::ALL.iter().all(|r| admin.require(*r).is_ok()));
    }

    #[tokio::test]
    async fn missing_bad_forged_and_expired_tokens_are_401() {
        let auth = JwtAuth::hs256(b"0123456789abcdef0123456789abcdef");
        let other = JwtAuth::hs256(b"another secret, another issuer..");
        let cases = [
            (HeaderMap::new(), "missing_token"),
            (bearer("not-a-jwt"), "invalid_token"),
            (
                bearer(
                    &other
                        .issue("mallory", &[Role::Admin], Duration::from_secs(60))
                        .expect("issued"),
                ),
                "invalid_token",
            ),
            (
                bearer(
                    &auth
                        .issue_at("bob", &[Role::Reviewer], 1_000_000, Duration::from_secs(60))
                        .expect("issued"),
                ),
                "token_expired",
            ),
        ];
        for (headers, code) in cases {
            let e = auth.authenticate(&headers).await.expect_err("refused");
            assert_eq!((e.status.as_u16(), e.code), (401, code));
        }
        let mut basic = HeaderMap::new();
        basic.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic YTpi"),
        );
        assert_eq!(
            auth.authenticate(&basic).await.expect_err("refused").code,
            "invalid_token"
        );
        assert!(auth.issue(" ", &[], Duration::from_secs(1)).is_err());
    }
}
