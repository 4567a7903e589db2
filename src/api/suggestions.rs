//! `/admin/kb/suggestions` (admin key): answers people from the team gave in handed-off chats,
//! drafted as knowledge; operators approve them (with edits) into documents, or reject them.

use super::access::CurrentSite;
use super::error::ApiError;
use super::extract::{is_json, parse_json, read_body};
use super::extract::{Path, Query};
use crate::api::state::AppState;
use crate::domain::rfc3339;
use crate::domain::{check_identifier, InvalidField};
use crate::human_loop::{suggestion_document_id, HumanLoop, SuggestionEdit, SuggestionError};
use crate::store::durable::SuggestionRecord;
use axum::extract::{Request, State};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use utoipa::ToSchema;

const STATUSES: [&str; 3] = ["pending", "approved", "rejected"];
/// An edited body may be as long as any document's.
const EDIT_BODY_DEADLINE: Duration = Duration::from_secs(30);

/// A suggestion as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SuggestionView {
    pub id: String,
    pub session_id: String,
    /// What the visitor asked before a person answered (redacted).
    pub question: String,
    /// What the person answered (redacted).
    pub answer: String,
    pub created_at: Option<String>,
    /// `pending`, `approved` or `rejected`.
    pub status: String,
    pub decided_at: Option<String>,
    /// The knowledge-base document an approved suggestion became.
    pub document_id: Option<String>,
}

impl From<SuggestionRecord> for SuggestionView {
    fn from(r: SuggestionRecord) -> Self {
        let document_id = (r.status == "approved").then(|| suggestion_document_id(&r.id));
        Self {
            created_at: rfc3339(r.created_ms),
            decided_at: r.decided_ms.and_then(rfc3339),
            document_id,
            id: r.id,
            session_id: crate::domain::visible_session_id(&r.session_id).to_owned(),
            question: r.question,
            answer: r.answer,
            status: r.status,
        }
    }
}

fn refused(e: SuggestionError) -> ApiError {
    match e {
        SuggestionError::NotFound => ApiError::SuggestionNotFound,
        SuggestionError::Decided(status) => ApiError::SuggestionDecided(status),
        SuggestionError::Invalid(field) => ApiError::Invalid(field),
        SuggestionError::Store(e) => ApiError::Unavailable(crate::error_chain::describe(&e)),
        SuggestionError::Knowledge(e) => {
            ApiError::Unavailable(format!("knowledge base: {}", crate::error_chain::describe(&e)))
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    pub status: Option<String>,
}

/// Suggestions, newest first (at most 1,000); every status when `status` is absent.
#[utoipa::path(get, path = "/admin/kb/suggestions", tag = "knowledge",
    params(("status" = Option<String>, Query, description = "`pending`, `approved` or `rejected`")),
    responses(
        (status = 200, description = "`{suggestions: [...]}`", body = Object),
        (status = 400, description = "`status` invalid"),
        (status = 401, description = "Missing or invalid admin key"),
        (status = 403, description = "Admin routes disabled"),
        (status = 503, description = "The durable store failed")
    ), security(("bearer" = [])))]
pub async fn list(
    State(human): State<Arc<HumanLoop>>,
    Extension(CurrentSite(site)): Extension<CurrentSite>,
    Query(query): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let status = match query.status.as_deref() {
        None | Some("") => None,
        Some(s) if STATUSES.contains(&s) => Some(s),
        Some(_) => {
            let message = "`status` must be pending, approved or rejected";
            return Err(InvalidField::new("status", "invalid_field", message).into());
        }
    };
    let records = human.suggestions(&site, status).await.map_err(|e| refused(e.into()))?;
    let suggestions: Vec<SuggestionView> = records.into_iter().map(Into::into).collect();
    Ok(Json(json!({ "suggestions": suggestions })))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct ApproveRequest {
    /// The document title, 1–300 characters (default: the question).
    pub title: Option<String>,
    /// The document body (default: the answer).
    pub body: Option<String>,
}

/// Approves a pending suggestion: it becomes document `suggestion-{id}`, searchable at once.
#[utoipa::path(post, path = "/admin/kb/suggestions/{id}/approve", tag = "knowledge",
    params(("id" = String, Path, description = "The suggestion")),
    request_body(content = ApproveRequest, description = "Optional edits"),
    responses(
        (status = 200, description = "Approved: the suggestion and `document: {id, version, chunks}`", body = Object),
        (status = 400, description = "`title` or `body` invalid"),
        (status = 401, description = "Missing or invalid admin key"),
        (status = 403, description = "Admin routes disabled"),
        (status = 404, description = "No such suggestion"),
        (status = 409, description = "Already approved or rejected"),
        (status = 415, description = "A body that is not application/json"),
        (status = 503, description = "The durable store failed")
    ), security(("bearer" = [])))]
pub async fn approve(
    State(state): State<AppState>,
    Extension(CurrentSite(site)): Extension<CurrentSite>,
    Path(id): Path<String>,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    check_identifier(&id, "id")?;
    let has_body = request.headers().get(axum::http::header::CONTENT_LENGTH).is_some_and(|v| v != "0")
        || request.headers().contains_key(axum::http::header::TRANSFER_ENCODING);
    let edit = if has_body {
        if !is_json(&request) {
            return Err(ApiError::UnsupportedMediaType);
        }
        let bytes = read_body(request, &state, EDIT_BODY_DEADLINE, state.settings.kb.import_limit_bytes).await?;
        let body: ApproveRequest = parse_json(&bytes)?;
        SuggestionEdit { title: body.title, body: body.body }
    } else {
        SuggestionEdit::default()
    };
    let (record, written) = state.human_loop.approve_suggestion(&site, &id, edit).await.map_err(refused)?;
    let document = json!({"id": suggestion_document_id(&id), "version": written.version, "chunks": written.chunks});
    let mut view = serde_json::to_value(SuggestionView::from(record)).unwrap_or_default();
    view["document"] = document;
    Ok(Json(view))
}

/// Rejects a pending suggestion.
#[utoipa::path(post, path = "/admin/kb/suggestions/{id}/reject", tag = "knowledge",
    params(("id" = String, Path, description = "The suggestion")),
    responses(
        (status = 200, description = "Rejected", body = SuggestionView),
        (status = 401, description = "Missing or invalid admin key"),
        (status = 403, description = "Admin routes disabled"),
        (status = 404, description = "No such suggestion"),
        (status = 409, description = "Already approved or rejected"),
        (status = 503, description = "The durable store failed")
    ), security(("bearer" = [])))]
pub async fn reject(
    State(human): State<Arc<HumanLoop>>,
    Extension(CurrentSite(site)): Extension<CurrentSite>,
    Path(id): Path<String>,
) -> Result<Json<SuggestionView>, ApiError> {
    check_identifier(&id, "id")?;
    let record = human.reject_suggestion(&site, &id).await.map_err(refused)?;
    Ok(Json(record.into()))
}
