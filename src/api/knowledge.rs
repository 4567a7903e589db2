//! `/admin/kb/*` (admin key): the knowledge base's documents, bulk import, and search exactly as
//! the chat path searches.

use super::access::CurrentSite;
use super::error::ApiError;
use super::extract::{is_json, parse_json, read_body};
use super::extract::{whole_number, Path, Query};
use crate::api::state::AppState;
use crate::domain::{check_identifier, InvalidField};
use crate::knowledge::{DocumentInput, KbError, KnowledgeBase};
use crate::store::durable::KbRow;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use utoipa::ToSchema;

const DEFAULT_PAGE: i64 = 50;
const MAX_PAGE: i64 = 500;
/// An import may be megabytes: it gets longer than other bodies to arrive.
const IMPORT_BODY_DEADLINE: Duration = Duration::from_secs(120);

fn unavailable(e: KbError) -> ApiError {
    ApiError::Unavailable(format!("knowledge base: {}", crate::error_chain::describe(&e)))
}

/// A JSON body under `kb.import_limit_bytes` (the limit these routes' layer applies, and the one a
/// 413 names), with longer than other bodies to arrive.
async fn kb_body<T: serde::de::DeserializeOwned>(request: Request, state: &AppState) -> Result<T, ApiError> {
    if !is_json(&request) {
        return Err(ApiError::UnsupportedMediaType);
    }
    let bytes = read_body(request, state, IMPORT_BODY_DEADLINE, state.settings.kb.import_limit_bytes).await?;
    parse_json(&bytes)
}

/// The knowledge base of the request's site (`CurrentSite`), opened on first use.
pub struct SiteBase(pub Arc<KnowledgeBase>);

impl axum::extract::FromRequestParts<AppState> for SiteBase {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &AppState) -> Result<Self, ApiError> {
        let site = parts.extensions.get::<CurrentSite>().map(|s| s.0.clone()).ok_or(ApiError::Internal)?;
        state.knowledge.of(&site).await.map(SiteBase).map_err(unavailable)
    }
}

fn document_id(raw: &str) -> Result<(), ApiError> {
    Ok(check_identifier(raw, "id")?)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Upserted {
    pub id: String,
    pub version: i64,
    pub chunks: usize,
}

/// Creates or replaces a document; searchable here at once, on other replicas within seconds.
#[utoipa::path(put, path = "/admin/kb/documents/{id}", tag = "knowledge",
    params(("id" = String, Path, description = "1–128 of [A-Za-z0-9._:-]")),
    request_body = DocumentInput,
    responses(
        (status = 200, description = "Stored and indexed", body = Upserted),
        (status = 400, description = "A field is invalid (named in `error.field`)"),
        (status = 401, description = "Missing or invalid admin key"),
        (status = 403, description = "Admin routes disabled"),
        (status = 413, description = "Body over kb.import_limit_bytes (32 MiB)"),
        (status = 415, description = "Not application/json"),
        (status = 503, description = "The durable store failed")
    ), security(("bearer" = [])))]
pub async fn put_document(
    State(state): State<AppState>,
    SiteBase(kb): SiteBase,
    Path(id): Path<String>,
    request: Request,
) -> Result<Json<Upserted>, ApiError> {
    let body: DocumentInput = kb_body(request, &state).await?;
    document_id(&id)?;
    let doc = body.validate(Some(&id), "")?;
    let written = kb.write(vec![doc]).await.map_err(unavailable)?;
    Ok(Json(Upserted { id, version: written.version, chunks: written.chunks }))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ImportRequest {
    /// Up to 5,000 documents, each with its `id`.
    #[schema(value_type = Vec<DocumentInput>)]
    pub documents: Option<Vec<DocumentInput>>,
}

/// Stores many documents in one transaction under one version: all or nothing.
#[utoipa::path(post, path = "/admin/kb/import", tag = "knowledge",
    request_body = ImportRequest,
    responses(
        (status = 200, description = "Imported", body = Object),
        (status = 400, description = "A document is invalid (its index and field in `error.field`); nothing stored"),
        (status = 401, description = "Missing or invalid admin key"),
        (status = 403, description = "Admin routes disabled"),
        (status = 413, description = "Body over kb.import_limit_bytes (32 MiB)"),
        (status = 415, description = "Not application/json"),
        (status = 503, description = "The durable store failed")
    ), security(("bearer" = [])))]
pub async fn import(
    State(state): State<AppState>,
    SiteBase(kb): SiteBase,
    request: Request,
) -> Result<Json<serde_json::Value>, ApiError> {
    let body: ImportRequest = kb_body(request, &state).await?;
    let documents = crate::knowledge::document::validate_batch(body.documents)?;
    let imported = documents.len();
    let written = kb.write(documents).await.map_err(unavailable)?;
    Ok(Json(json!({"imported": imported, "version": written.version})))
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    pub cursor: Option<String>,
    pub limit: Option<String>,
    pub q: Option<String>,
}

fn summary(row: &KbRow, with_body: bool) -> serde_json::Value {
    let tags: serde_json::Value = serde_json::from_str(&row.tags).unwrap_or_else(|_| json!([]));
    let mut value = json!({
        "id": row.id, "title": row.title, "url": row.url, "locale": row.locale, "tags": tags,
        "version": row.version,
        "updatedAt": chrono::DateTime::from_timestamp_millis(row.updated_ms).map(|t| t.to_rfc3339()),
    });
    if with_body {
        value["body"] = json!(row.body);
    }
    value
}

/// Documents in id order, `limit` (1–500, default 50) at a time; pass `nextCursor` back as `cursor`.
#[utoipa::path(get, path = "/admin/kb/documents", tag = "knowledge",
    params(
        ("cursor" = Option<String>, Query, description = "`nextCursor` of the previous page"),
        ("limit" = Option<u32>, Query, description = "1–500, default 50"),
        ("q" = Option<String>, Query, description = "Only documents whose id or title contains this (any case)"),
    ),
    responses(
        (status = 200, description = "`{documents: [...], nextCursor, total}` (`total`: documents matching `q`)", body = Object),
        (status = 400, description = "`limit` or `cursor` invalid"),
        (status = 401, description = "Missing or invalid admin key"),
        (status = 403, description = "Admin routes disabled"),
        (status = 503, description = "The durable store failed")
    ), security(("bearer" = [])))]
pub async fn list_documents(
    SiteBase(kb): SiteBase,
    Query(query): Query<ListQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let limit = whole_number(query.limit.as_deref(), "limit", DEFAULT_PAGE, 1..=MAX_PAGE)?;
    let cursor = query.cursor.filter(|c| !c.is_empty());
    if let Some(cursor) = &cursor {
        check_identifier(cursor, "cursor")?;
    }
    let filter = query.q.as_deref().map(str::trim).filter(|q| !q.is_empty());
    if filter.is_some_and(|q| q.chars().count() > 200) {
        return Err(InvalidField::new("q", "invalid_field", "`q` must be at most 200 characters").into());
    }
    let page = kb.page(cursor.as_deref(), filter, limit).await.map_err(unavailable)?;
    let documents: Vec<_> = page.rows.iter().map(|r| summary(r, false)).collect();
    Ok(Json(json!({"documents": documents, "nextCursor": page.next_cursor, "total": page.total})))
}

/// One document, with its body.
#[utoipa::path(get, path = "/admin/kb/documents/{id}", tag = "knowledge",
    params(("id" = String, Path, description = "The document")),
    responses(
        (status = 200, description = "The document", body = Object),
        (status = 400, description = "Invalid id"),
        (status = 401, description = "Missing or invalid admin key"),
        (status = 403, description = "Admin routes disabled"),
        (status = 404, description = "`document_not_found`"),
        (status = 503, description = "The durable store failed")
    ), security(("bearer" = [])))]
pub async fn get_document(SiteBase(kb): SiteBase, Path(id): Path<String>) -> Result<Response, ApiError> {
    document_id(&id)?;
    let row = kb.document(&id).await.map_err(unavailable)?.ok_or(ApiError::DocumentNotFound)?;
    Ok(Json(summary(&row, true)).into_response())
}

/// Removes a document from the knowledge base (and from every replica's index).
#[utoipa::path(delete, path = "/admin/kb/documents/{id}", tag = "knowledge",
    params(("id" = String, Path, description = "The document")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Invalid id"),
        (status = 401, description = "Missing or invalid admin key"),
        (status = 403, description = "Admin routes disabled"),
        (status = 404, description = "`document_not_found`"),
        (status = 503, description = "The durable store failed")
    ), security(("bearer" = [])))]
pub async fn delete_document(SiteBase(kb): SiteBase, Path(id): Path<String>) -> Result<Response, ApiError> {
    document_id(&id)?;
    match kb.delete(&id).await.map_err(unavailable)? {
        true => Ok(StatusCode::NO_CONTENT.into_response()),
        false => Err(ApiError::DocumentNotFound),
    }
}

#[derive(Debug, Deserialize)]
pub struct SearchQuery {
    pub q: Option<String>,
    pub k: Option<String>,
    pub locale: Option<String>,
}

/// The chat path's retrieval for `q`, best first, with relevance scores (0–1).
#[utoipa::path(get, path = "/admin/kb/search", tag = "knowledge",
    params(
        ("q" = String, Query, description = "The question, 1–4,000 characters"),
        ("k" = Option<u32>, Query, description = "Results, 1–50 (default 5)"),
        ("locale" = Option<String>, Query, description = "The visitor's locale (en, fr, es, de)"),
    ),
    responses(
        (status = 200, description = "`{results: [{id, title, url, score, passage}]}`", body = Object),
        (status = 400, description = "`q` missing or `k` invalid"),
        (status = 401, description = "Missing or invalid admin key"),
        (status = 403, description = "Admin routes disabled")
    ), security(("bearer" = [])))]
pub async fn search(
    SiteBase(kb): SiteBase,
    Query(query): Query<SearchQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let q = crate::domain::UserText::parse(query.q.as_deref(), "q", 4000)?;
    let k = whole_number(query.k.as_deref(), "k", 5, 1..=50)?;
    let locale = query.locale.as_deref().filter(|l| !l.is_empty());
    let passages = kb.search_like_chat(q.as_str(), locale, k).await.map_err(unavailable)?;
    let results: Vec<_> = passages
        .into_iter()
        .map(|p| {
            let score = (f64::from(p.score) * 10_000.0).round() / 10_000.0;
            json!({"id": p.id, "title": p.title, "url": p.url, "score": score, "passage": p.text})
        })
        .collect();
    Ok(Json(json!({"results": results})))
}

/// How far the knowledge base is: documents, chunks, how many chunks have a vector of the
/// embeddings model in use (the others are searched by keywords until the background task embeds
/// them), and that model (null: keywords only).
#[utoipa::path(get, path = "/admin/kb/status", tag = "knowledge",
    responses(
        (status = 200, description = "`{documents, chunks, embeddedChunks, model}`", body = crate::knowledge::KbStatus),
        (status = 401, description = "Missing or invalid admin key"),
        (status = 403, description = "Admin routes disabled")
    ), security(("bearer" = [])))]
pub async fn status(SiteBase(kb): SiteBase) -> Json<crate::knowledge::KbStatus> {
    Json(kb.status())
}
