//! `/admin/sites`: the operator's registry of sites and their keys (a site's own admin key is
//! refused here: `require_operator`).

use super::error::ApiError;
use super::extract::{JsonBody, Path};
use crate::domain::{rfc3339, InvalidField, SiteId};
use crate::sites::{Site, SiteKey, SiteRegistry, SiteRole, SiteSettings};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;
use utoipa::ToSchema;

const MAX_NAME_CHARS: usize = 200;
const MAX_LABEL_CHARS: usize = 200;

/// A site as answered (the handoff webhook secret is write-only: never here).
fn site_view(site: &Site) -> Value {
    json!({"id": site.id.as_str(), "name": site.name, "settings": site.settings.public(),
           "createdAt": rfc3339(site.created_ms), "updatedAt": rfc3339(site.updated_ms)})
}

fn key_view(key: &SiteKey) -> Value {
    json!({"id": key.id, "role": key.role.as_str(), "label": key.label, "createdAt": rfc3339(key.created_ms),
           "lastUsedAt": key.last_used_ms.and_then(rfc3339)})
}

fn site_id(raw: &str) -> Result<SiteId, ApiError> {
    Ok(SiteId::parse(raw, "siteId")?)
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct SitePut {
    /// Shown in the console's site picker; 1–200 characters.
    pub name: Option<String>,
    /// Every setting optional (unset = the deployment's configuration): `instructions`, `model`,
    /// `defaultLocale`, `staticReplies`, `holdingText`, `killSwitch`, `budget`, `handoff`,
    /// `alertWebhookUrl`, `limits`, `allowedLinkHosts`.
    #[schema(value_type = Option<Object>)]
    pub settings: Option<Value>,
}

/// Every site, `default` included.
#[utoipa::path(get, path = "/admin/sites", tag = "sites", responses(
    (status = 200, description = "`{\"sites\": [...]}`"),
    (status = 401, description = "Missing or invalid admin key"),
    (status = 403, description = "Not the operator key, or admin routes disabled")
), security(("bearer" = [])))]
pub async fn list(State(sites): State<Arc<SiteRegistry>>) -> Response {
    let all: Vec<Value> = sites.sites().iter().map(|s| site_view(s)).collect();
    Json(json!({ "sites": all })).into_response()
}

/// One site.
#[utoipa::path(get, path = "/admin/sites/{siteId}", tag = "sites",
    params(("siteId" = String, Path, description = "`[a-z0-9][a-z0-9-]{0,62}`")), responses(
    (status = 200, description = "The site"),
    (status = 400, description = "Invalid site id"),
    (status = 401, description = "Missing or invalid admin key"),
    (status = 403, description = "Not the operator key, or admin routes disabled"),
    (status = 404, description = "`site_not_found`")
), security(("bearer" = [])))]
pub async fn get(State(sites): State<Arc<SiteRegistry>>, Path(raw): Path<String>) -> Result<Response, ApiError> {
    let id = site_id(&raw)?;
    let site = sites.site(id.as_str()).ok_or(ApiError::SiteNotFound)?;
    Ok(Json(site_view(&site)).into_response())
}

/// Creates or updates a site; applies on every replica within 2 s.
#[utoipa::path(put, path = "/admin/sites/{siteId}", tag = "sites", request_body = SitePut,
    params(("siteId" = String, Path, description = "`[a-z0-9][a-z0-9-]{0,62}`")), responses(
    (status = 200, description = "The site as stored"),
    (status = 400, description = "An invalid id, name or setting (named)"),
    (status = 401, description = "Missing or invalid admin key"),
    (status = 403, description = "Not the operator key, or admin routes disabled"),
    (status = 415, description = "Not application/json"),
    (status = 503, description = "The store did not take the change")
), security(("bearer" = [])))]
pub async fn put(
    State(sites): State<Arc<SiteRegistry>>,
    Path(raw): Path<String>,
    JsonBody(body): JsonBody<SitePut>,
) -> Result<Response, ApiError> {
    let id = site_id(&raw)?;
    let name = body.name.ok_or_else(|| InvalidField::missing("name"))?;
    if name.trim().is_empty() || name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(InvalidField::new("name", "invalid_field", "`name` must be 1–200 printable characters").into());
    }
    let settings = SiteSettings::parse(body.settings.as_ref())?;
    let site = sites.put(id, name, settings).await?;
    Ok(Json(site_view(&site)).into_response())
}

/// Deletes a site with its keys, knowledge base, sessions, transcripts, suggestions and handoffs.
#[utoipa::path(delete, path = "/admin/sites/{siteId}", tag = "sites",
    params(("siteId" = String, Path, description = "`[a-z0-9][a-z0-9-]{0,62}`")), responses(
    (status = 204, description = "Deleted"),
    (status = 400, description = "Invalid site id"),
    (status = 401, description = "Missing or invalid admin key"),
    (status = 403, description = "Not the operator key, or admin routes disabled"),
    (status = 404, description = "`site_not_found`"),
    (status = 409, description = "`default` cannot be deleted")
), security(("bearer" = [])))]
pub async fn delete(State(sites): State<Arc<SiteRegistry>>, Path(raw): Path<String>) -> Result<Response, ApiError> {
    let id = site_id(&raw)?;
    sites.delete(id.as_str()).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct KeyCreate {
    /// `caller` (chat and session routes) or `admin` (the site's /admin routes and console).
    pub role: Option<String>,
    pub label: Option<String>,
}

/// Makes a key for the site: the key is in this answer once and stored only as a hash.
#[utoipa::path(post, path = "/admin/sites/{siteId}/keys", tag = "sites", request_body = KeyCreate,
    params(("siteId" = String, Path, description = "`[a-z0-9][a-z0-9-]{0,62}`")), responses(
    (status = 201, description = "`{\"id\", \"role\", \"label\", \"key\", \"createdAt\"}`"),
    (status = 400, description = "Invalid role or label"),
    (status = 401, description = "Missing or invalid admin key"),
    (status = 403, description = "Not the operator key, or admin routes disabled"),
    (status = 404, description = "`site_not_found`"),
    (status = 415, description = "Not application/json")
), security(("bearer" = [])))]
pub async fn create_key(
    State(sites): State<Arc<SiteRegistry>>,
    Path(raw): Path<String>,
    JsonBody(body): JsonBody<KeyCreate>,
) -> Result<Response, ApiError> {
    let id = site_id(&raw)?;
    let role = body.role.as_deref().ok_or_else(|| InvalidField::missing("role"))?;
    let role = SiteRole::parse(role)
        .ok_or_else(|| InvalidField::new("role", "invalid_field", "`role` must be \"caller\" or \"admin\""))?;
    if body.label.as_ref().is_some_and(|l| l.chars().count() > MAX_LABEL_CHARS || l.chars().any(char::is_control)) {
        return Err(
            InvalidField::new("label", "invalid_field", "`label` must be at most 200 printable characters").into()
        );
    }
    let minted = sites.create_key(id.as_str(), role, body.label).await?;
    let k = &minted.key;
    let body = json!({"id": k.id, "role": k.role.as_str(), "label": k.label, "key": minted.secret,
                      "createdAt": rfc3339(k.created_ms)});
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// The site's keys (never the keys themselves).
#[utoipa::path(get, path = "/admin/sites/{siteId}/keys", tag = "sites",
    params(("siteId" = String, Path, description = "`[a-z0-9][a-z0-9-]{0,62}`")), responses(
    (status = 200, description = "`{\"keys\": [{\"id\", \"role\", \"label\", \"createdAt\", \"lastUsedAt\"}]}`"),
    (status = 400, description = "Invalid site id"),
    (status = 401, description = "Missing or invalid admin key"),
    (status = 403, description = "Not the operator key, or admin routes disabled"),
    (status = 404, description = "`site_not_found`")
), security(("bearer" = [])))]
pub async fn list_keys(State(sites): State<Arc<SiteRegistry>>, Path(raw): Path<String>) -> Result<Response, ApiError> {
    let id = site_id(&raw)?;
    let keys: Vec<Value> = sites.keys(id.as_str()).await?.iter().map(key_view).collect();
    Ok(Json(json!({ "keys": keys })).into_response())
}

/// Revokes a key: refused on every replica within 2 s.
#[utoipa::path(delete, path = "/admin/sites/{siteId}/keys/{keyId}", tag = "sites",
    params(("siteId" = String, Path, description = "`[a-z0-9][a-z0-9-]{0,62}`"),
           ("keyId" = String, Path, description = "The key's id")), responses(
    (status = 204, description = "Revoked"),
    (status = 400, description = "Invalid site id"),
    (status = 401, description = "Missing or invalid admin key"),
    (status = 403, description = "Not the operator key, or admin routes disabled"),
    (status = 404, description = "`site_not_found` or `key_not_found`")
), security(("bearer" = [])))]
pub async fn revoke_key(
    State(sites): State<Arc<SiteRegistry>>,
    Path((raw, key_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let id = site_id(&raw)?;
    sites.revoke_key(id.as_str(), &key_id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
