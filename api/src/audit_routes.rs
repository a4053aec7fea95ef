//! The auditor's routes: verify the hash chain, re-identify a sealed value.

use super::*;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RevealRequest {
    token: String,
    #[serde(default = "default_tenant")]
    tenant: String,
}

pub(crate) fn default_tenant() -> String {
    "default".into()
}

/// `POST /v1/vault/reveal` (auditor), body `{"token", "tenant"?}`: the original value
/// behind a token of the encrypt operator. Every call is logged with the caller; the
/// answer is never cached.
#[utoipa::path(
    post,
    path = "/v1/vault/reveal",
    tag = "audit",
    description = "Re-identify: the original value behind an encrypt-operator token (auditor). Body {\"token\": \"<PERSON_v…>\", \"tenant\"?: \"default\"}; answer {\"token\", \"type\", \"value\"}",
    request_body(content = serde_json::Value, description = "The token and its tenant", content_type = "application/json"),
    responses(
        (status = 200, description = "The value: token, type, value", body = serde_json::Value),
        (status = 400, description = "A body that does not parse", body = serde_json::Value),
        (status = 404, description = "No scrubbed interaction of the tenant carries the token", body = serde_json::Value),
        (status = 410, description = "The data subject was erased; the value is gone", body = serde_json::Value),
        (status = 503, description = "This server has no vault (no privacy secret, or nothing is encrypted)", body = serde_json::Value),
        (status = 401, description = "No valid token", body = serde_json::Value),
        (status = 403, description = "The token lacks the role", body = serde_json::Value),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn vault_reveal(
    State(state): State<AppState>,
    Caller(caller): Caller,
    body: Bytes,
) -> Result<Response, ApiError> {
    caller.require(Role::Auditor)?;
    let request: RevealRequest = json_body(&body)?;
    let Some(vault) = &state.vault else {
        return Err(ApiError::unavailable(
            "re-identification is not available here: this server has no privacy secret or \
             encrypts nothing",
        ));
    };
    let outcome = vault.reveal(&request.tenant, &request.token).await;
    tracing::info!(
        caller = %caller.subject,
        tenant = %request.tenant,
        token = %request.token,
        revealed = outcome.is_ok(),
        "vault reveal"
    );
    let revealed = match outcome {
        Ok(r) => r,
        Err(RevealError::NotFound) => {
            return Err(ApiError::not_found(format!(
                "no sealed value for {} in tenant {}",
                request.token, request.tenant
            )));
        }
        Err(RevealError::Erased) => {
            return Err(ApiError::new(
                StatusCode::GONE,
                "erased",
                format!(
                    "the data subject of {} was erased; the value cannot be recovered",
                    request.token
                ),
            ));
        }
        Err(RevealError::Failed(e)) => return Err(ApiError::internal(e)),
    };
    let mut response = Json(serde_json::json!({
        "token": request.token,
        "type": revealed.entity_type,
        "value": revealed.value,
    }))
    .into_response();
    response.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    Ok(response)
}

/// `GET /v1/audit/verify` (auditor): walks the log up to the head as of the call, checks
/// positions and the hash chain; `intact: false` names the first bad position.
#[utoipa::path(
    get,
    path = "/v1/audit/verify",
    tag = "audit",
    description = "Walk the log and check positions and the hash chain (auditor)",
    responses(
        (status = 200, description = "The report: intact, counts by type, head hash, first bad position", body = serde_json::Value),
        (status = 401, description = "No valid token", body = serde_json::Value),
        (status = 403, description = "The token lacks the role", body = serde_json::Value),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn audit_verify(
    State(state): State<AppState>,
    Caller(caller): Caller,
) -> Result<Response, ApiError> {
    caller.require(Role::Auditor)?;
    let report = state.store.verify().await?;
    let broken = report
        .broken
        .map(|b| serde_json::json!({"position": b.position, "what": b.to_string()}));
    Ok(at_position(
        report.last_position,
        serde_json::json!({
            "intact": broken.is_none(),
            "events": report.events,
            "first_position": report.first_position,
            "last_position": report.last_position,
            "head_hash": hex::encode(report.head_hash),
            "by_type": report.by_type,
            "broken": broken,
        }),
    ))
}
