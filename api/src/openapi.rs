//! The OpenAPI document, generated from the handlers' annotations (utoipa) and served at
//! `GET /openapi.json` without a token.

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "CustomerAI Insights API",
        description = "Projection views, the human-review workflow, the event log and its audit. \
                       Every endpoint but /openapi.json, the dashboard and the ops endpoints \
                       (/healthz, /readyz, /metrics) needs a bearer token (`insights token issue`). \
                       Errors are JSON: {\"error\": {\"code\", \"message\"}}; 429 carries Retry-After."
    ),
    paths(
        crate::review_routes::list_reviews,
        crate::review_routes::get_review,
        crate::review_routes::claim_review,
        crate::review_routes::release_review,
        crate::review_routes::decide_review,
        crate::audit_routes::audit_verify,
        crate::audit_routes::vault_reveal,
        crate::events::list_events,
        crate::events::stream_events,
        crate::views::list,
        crate::views::get_sentiment,
        crate::views::get_responses,
        crate::views::get_fairness,
        crate::views::get_health,
        crate::views::get_anomalies,
        crate::views::get_agreement,
        crate::views::get_conversations,
        crate::views::get_conversation,
    ),
    modifiers(&Bearer),
    tags(
        (name = "views", description = "Projection views (analyst, auditor)"),
        (name = "reviews", description = "The human-review workflow"),
        (name = "events", description = "The event log (auditor, analyst)"),
        (name = "audit", description = "Hash-chain verification and re-identification (auditor)"),
    )
)]
struct ApiDoc;

/// Declares the bearer-token scheme the paths refer to.
struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// The document.
pub fn spec() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// `GET /openapi.json`.
pub(crate) async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(spec())
}
