//! Tokens from an identity provider, checked against its JWKS served over HTTP on
//! loopback the way Keycloak serves it (`tests/fixtures/idp-test-jwks.json`, the public
//! half of `idp-test-key.der`, an RSA key made for these tests only): valid tokens carry
//! their roles through; wrong issuer, audience, key, algorithm or signature, and expired
//! tokens are 401; a rotated key is fetched; a provider that is down is a 503; the
//! project's own HS256 tokens still work beside the provider's.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::{HeaderMap, HeaderValue, header};
use insights_api::jwks::{JwksAuth, JwksConfig};
use insights_api::{Authenticator, Either, JwtAuth, Role};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

const ISSUER: &str = "https://idp.test/realms/acme";
const KEY: &[u8] = include_bytes!("fixtures/idp-test-key.der");
const JWKS: &str = include_str!("fixtures/idp-test-jwks.json");

/// A JWKS endpoint whose key set can be changed, counting fetches.
struct Provider {
    url: String,
    keys: Arc<std::sync::Mutex<Value>>,
    fetches: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

async fn provider() -> Provider {
    let keys = Arc::new(std::sync::Mutex::new(
        serde_json::from_str::<Value>(JWKS).expect("fixture JWKS"),
    ));
    let fetches = Arc::new(AtomicUsize::new(0));
    let (k, f) = (Arc::clone(&keys), Arc::clone(&fetches));
    let app = axum::Router::new().route(
        "/realms/acme/protocol/openid-connect/certs",
        axum::routing::get(move || {
            let (k, f) = (Arc::clone(&k), Arc::clone(&f));
            async move {
                f.fetch_add(1, Ordering::SeqCst);
                let body = k.lock().expect("keys").to_string();
                ([(header::CONTENT_TYPE, "application/json")], body)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binds");
    let addr = listener.local_addr().expect("address");
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.expect("serves");
    });
    Provider {
        url: format!("http://{addr}/realms/acme/protocol/openid-connect/certs"),
        keys,
        fetches,
        task,
    }
}

fn config(url: &str) -> JwksConfig {
    JwksConfig {
        url: url.to_owned(),
        issuer: ISSUER.into(),
        audience: Some("insights".into()),
        roles_claim: "realm_access.roles".into(),
        role_prefix: "insights-".into(),
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

fn claims() -> Value {
    json!({
        "sub": "ana@acme.example", "iss": ISSUER, "aud": ["insights", "account"],
        "iat": now(), "exp": now() + 300,
        "realm_access": {"roles": ["insights-reviewer", "offline_access"]},
    })
}

fn sign(kid: Option<&str>, alg: Algorithm, claims: &Value) -> String {
    let mut h = Header::new(alg);
    h.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&h, claims, &EncodingKey::from_rsa_der(KEY)).expect("signs")
}

fn bearer(token: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        header::AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {token}")).expect("header"),
    );
    h
}

#[tokio::test]
async fn a_providers_tokens_are_checked_against_its_key_set() {
    let idp = provider().await;
    let auth = JwksAuth::new(config(&idp.url)).await;
    assert_eq!(idp.fetches.load(Ordering::SeqCst), 1, "fetched at start");

    let p = auth
        .authenticate(&bearer(&sign(
            Some("test-key-1"),
            Algorithm::RS256,
            &claims(),
        )))
        .await
        .expect("a valid token");
    assert_eq!(p.subject, "ana@acme.example");
    assert_eq!(p.roles, [Role::Reviewer]);

    let mut wrong_issuer = claims();
    wrong_issuer["iss"] = json!("https://evil.test/");
    let mut wrong_audience = claims();
    wrong_audience["aud"] = json!("another-api");
    let mut expired = claims();
    expired["exp"] = json!(now() - 3_600);
    let mut not_yet = claims();
    not_yet["nbf"] = json!(now() + 3_600);
    let mut no_subject = claims();
    no_subject.as_object_mut().expect("object").remove("sub");
    let valid = sign(Some("test-key-1"), Algorithm::RS256, &claims());
    let (head, rest) = valid.split_once('.').expect("a JWT");
    let (payload, _) = rest.split_once('.').expect("a JWT");
    let mut forged_claims = claims();
    forged_claims["realm_access"]["roles"] = json!(["insights-admin"]);
    let forged_payload = base64url(&forged_claims.to_string());
    let forged = format!(
        "{head}.{forged_payload}.{}",
        valid.rsplit('.').next().expect("sig")
    );
    let unsigned = format!("{}.{payload}.", base64url(r#"{"alg":"none","typ":"JWT"}"#));
    let hmac_with_public_key = {
        // The key set's bytes as an HMAC secret: the classic algorithm confusion.
        let h = Header::new(Algorithm::HS256);
        jsonwebtoken::encode(&h, &claims(), &EncodingKey::from_secret(JWKS.as_bytes()))
            .expect("signs")
    };
    for (token, code) in [
        (
            sign(Some("test-key-1"), Algorithm::RS256, &wrong_issuer),
            "invalid_token",
        ),
        (
            sign(Some("test-key-1"), Algorithm::RS256, &wrong_audience),
            "invalid_token",
        ),
        (
            sign(Some("test-key-1"), Algorithm::RS256, &expired),
            "token_expired",
        ),
        (
            sign(Some("test-key-1"), Algorithm::RS256, &no_subject),
            "invalid_token",
        ),
        (
            sign(Some("test-key-1"), Algorithm::RS384, &claims()),
            "invalid_token",
        ),
        (forged, "invalid_token"),
        (unsigned, "invalid_token"),
        (hmac_with_public_key, "invalid_token"),
    ] {
        let e = auth
            .authenticate(&bearer(&token))
            .await
            .expect_err("refused");
        assert_eq!((e.status.as_u16(), e.code), (401, code), "{token}");
    }

    // A key the set does not hold is refused; the set is fetched again for unknown keys at
    // most once every 10 s (it was fetched at start), so a flood of them costs the provider
    // nothing (the next test shows the fetch after 10 s).
    let before = idp.fetches.load(Ordering::SeqCst);
    for _ in 0..2 {
        let e = auth
            .authenticate(&bearer(&sign(
                Some("rotated-key"),
                Algorithm::RS256,
                &claims(),
            )))
            .await
            .expect_err("unknown key");
        assert_eq!(e.status.as_u16(), 401);
    }
    assert_eq!(idp.fetches.load(Ordering::SeqCst), before);
    idp.task.abort();
}

#[tokio::test]
async fn a_rotated_key_is_fetched_and_a_provider_that_is_down_is_a_503() {
    let idp = provider().await;
    // The provider publishes the same key under a new id only after the API started.
    let auth = JwksAuth::new(config(&idp.url)).await;
    idp.keys.lock().expect("keys")["keys"][0]["kid"] = json!("test-key-2");
    tokio::time::sleep(Duration::from_secs(10)).await;
    let p = auth
        .authenticate(&bearer(&sign(
            Some("test-key-2"),
            Algorithm::RS256,
            &claims(),
        )))
        .await
        .expect("the rotated key is fetched");
    assert_eq!(p.roles, [Role::Reviewer]);

    // Down from the start: no key at all, so a 503 (retry), never a 401 for a good token.
    idp.task.abort();
    let _ = idp.task.await;
    let down = JwksAuth::new(config(&idp.url)).await;
    let e = down
        .authenticate(&bearer(&sign(
            Some("test-key-2"),
            Algorithm::RS256,
            &claims(),
        )))
        .await
        .expect_err("provider down");
    assert_eq!((e.status.as_u16(), e.code), (503, "unavailable"));
}

#[tokio::test]
async fn the_projects_own_tokens_and_the_providers_are_both_accepted() {
    let idp = provider().await;
    let own = JwtAuth::hs256(b"0123456789abcdef0123456789abcdef");
    let token = own
        .issue("ops", &[Role::Auditor], Duration::from_secs(60))
        .expect("issues");
    let either = Either {
        hs256: Some(own),
        jwks: Some(JwksAuth::new(config(&idp.url)).await),
    };
    let p = either
        .authenticate(&bearer(&token))
        .await
        .expect("own token");
    assert_eq!(p.roles, [Role::Auditor]);
    let p = either
        .authenticate(&bearer(&sign(
            Some("test-key-1"),
            Algorithm::RS256,
            &claims(),
        )))
        .await
        .expect("provider's token");
    assert_eq!(p.roles, [Role::Reviewer]);
    // Without a secret, HS256 tokens are refused outright.
    let provider_only = Either {
        hs256: None,
        jwks: Some(JwksAuth::new(config(&idp.url)).await),
    };
    let e = provider_only
        .authenticate(&bearer(&token))
        .await
        .expect_err("no secret here");
    assert_eq!(e.status.as_u16(), 401);
    idp.task.abort();
}

fn base64url(text: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = text.as_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}
