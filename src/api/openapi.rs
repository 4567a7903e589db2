//! The OpenAPI document, generated from the handlers' annotations.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("A caller key (VELOCHAT_API_KEYS) or, for /admin, VELOCHAT_ADMIN_KEY"))
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "velochat", description = "A deadline-bound OpenAI support-bot gateway for Wix Chat / Velo backends. \
        Every error body is `{\"error\": {\"code\", \"message\", ...}}`."),
    paths(
        super::chat::send_chat_message,
        super::compat::chat_completions,
        super::compat::list_models,
        super::health::healthz,
        super::health::readyz,
        super::health::metrics,
        openapi_json,
        super::admin::get_kill_switch,
        super::admin::put_kill_switch,
        super::admin::get_session,
        super::admin::release_session,
        super::admin::take_over_session,
        super::admin::erase_session,
        super::admin::report,
        super::operator::overview,
        super::operator::handoffs,
        super::operator::transcript,
        super::knowledge::put_document,
        super::knowledge::import,
        super::knowledge::list_documents,
        super::knowledge::get_document,
        super::knowledge::delete_document,
        super::knowledge::status, super::knowledge::search,
        super::suggestions::list,
        super::suggestions::approve,
        super::suggestions::reject,
        super::sessions::handoff,
        super::sessions::release,
        super::sessions::agent_message, super::sessions::messages,
        super::sites::list, super::sites::get, super::sites::put, super::sites::delete,
        super::sites::create_key, super::sites::list_keys, super::sites::revoke_key,
    ),
    components(schemas(super::chat::SendChatMessageRequest, super::chat::SendChatMessageResponse, super::chat::HistoryEntry, super::admin::KillSwitch,
        super::knowledge::Upserted, super::knowledge::ImportRequest, crate::knowledge::DocumentInput, crate::knowledge::SourceRef,
        super::suggestions::SuggestionView, super::suggestions::ApproveRequest, super::compat::stream::StreamEvent, crate::knowledge::KbStatus, super::sites::SitePut, super::sites::KeyCreate)),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "ops", responses(
    (status = 200, description = "OpenAPI 3.1 document", content_type = "application/json"),
    (status = 401, description = "Missing or invalid key"),
    (status = 403, description = "Not served anonymously on a public address")
), security(("bearer" = [])))]
pub async fn openapi_json(
    axum::extract::State(state): axum::extract::State<crate::api::state::AppState>,
) -> axum::Json<serde_json::Value> {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    super::openapi_constraints::constrain(&mut doc, &state.settings);
    axum::Json(doc)
}
