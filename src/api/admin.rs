//! `/admin/*` (admin key only): the kill switch, sessions, and the weekly report.

use super::access::CurrentSite;
use super::error::ApiError;
use super::extract::JsonBody;
use super::extract::{Path, Query};
use super::middleware::RequestContext;
use super::sessions::site_session;
use crate::chat::ChatService;
use crate::human_loop::{HumanLoop, SessionView};
use crate::review::Review;
use crate::sites::SiteRegistry;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::sync::Arc;
use utoipa::ToSchema;

#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub struct KillSwitch {
    /// true: every reply is a static one and nothing reaches OpenAI.
    pub enabled: Option<bool>,
}

/// Whether the kill switch is on.
#[utoipa::path(get, path = "/admin/kill-switch", tag = "admin", responses(
    (status = 200, description = "Current state", body = KillSwitch),
    (status = 401, description = "Missing or invalid admin key"),
    (status = 403, description = "Admin routes disabled (no VELOCHAT_ADMIN_KEY)")
), security(("bearer" = [])))]
pub async fn get_kill_switch(
    State(chat): State<Arc<ChatService>>,
    Extension(CurrentSite(site)): Extension<CurrentSite>,
) -> Response {
    Json(json!({"enabled": chat.site_kill_switch(&site).await})).into_response()
}

/// Flips the kill switch (on every replica sharing the store). Logged with who and when.
#[utoipa::path(put, path = "/admin/kill-switch", tag = "admin", request_body = KillSwitch, responses(
    (status = 200, description = "New state", body = KillSwitch),
    (status = 400, description = "`enabled` missing or not a boolean"),
    (status = 401, description = "Missing or invalid admin key"),
    (status = 403, description = "Admin routes disabled (no VELOCHAT_ADMIN_KEY)"),
    (status = 415, description = "Not application/json"),
    (status = 503, description = "The shared store did not take the change")
), security(("bearer" = [])))]
pub async fn put_kill_switch(
    State(chat): State<Arc<ChatService>>,
    State(sites): State<Arc<SiteRegistry>>,
    Extension(ctx): Extension<RequestContext>,
    Extension(CurrentSite(site)): Extension<CurrentSite>,
    JsonBody(body): JsonBody<KillSwitch>,
) -> Result<Response, ApiError> {
    let enabled = body.enabled.ok_or_else(|| crate::domain::InvalidField::missing("enabled"))?;
    chat.set_site_kill_switch(&site, enabled, &sites).await.map_err(|e| match e {
        crate::sites::SiteError::Store(e) => {
            ApiError::Unavailable(format!("kill switch not stored: {}", crate::error_chain::describe(&e)))
        }
        other => other.into(),
    })?;
    tracing::warn!(enabled, by = "admin", site = %site.id, requestId = %ctx.request_id, at = %chrono::Utc::now().to_rfc3339(), "kill switch flipped");
    Ok(Json(json!({"enabled": enabled})).into_response())
}

/// A session's state.
#[utoipa::path(get, path = "/admin/sessions/{sessionId}", tag = "admin",
    params(("sessionId" = String, Path, description = "The session")),
    responses(
        (status = 200, description = "The session", body = Object),
        (status = 400, description = "Invalid session id"),
        (status = 401, description = "Missing or invalid admin key"),
        (status = 403, description = "Admin routes disabled"),
        (status = 404, description = "No state kept for that session")
    ), security(("bearer" = [])))]
pub async fn get_session(
    State(human): State<Arc<HumanLoop>>,
    Extension(CurrentSite(site)): Extension<CurrentSite>,
    Path(raw): Path<String>,
) -> Result<Json<SessionView>, ApiError> {
    let id = site_session(&site, &raw)?;
    human.session_view(id.as_str()).await.map(Json).ok_or(ApiError::SessionNotFound)
}

/// Hands the session back to the bot (sends a `released` webhook event when a human owned it).
#[utoipa::path(post, path = "/admin/sessions/{sessionId}/release", tag = "admin",
    params(("sessionId" = String, Path, description = "The session")),
    responses(
        (status = 200, description = "The session, now `bot`", body = Object),
        (status = 400, description = "Invalid session id"),
        (status = 401, description = "Missing or invalid admin key"),
        (status = 403, description = "Admin routes disabled"),
        (status = 404, description = "No state kept for that session")
    ), security(("bearer" = [])))]
pub async fn release_session(
    state: State<Arc<HumanLoop>>,
    site: Extension<CurrentSite>,
    path: Path<String>,
) -> Result<Json<SessionView>, ApiError> {
    super::sessions::release(state, site, path).await
}

/// A human agent takes the session: the bot goes quiet (sends a `handoff` webhook event).
#[utoipa::path(post, path = "/admin/sessions/{sessionId}/handoff", tag = "admin",
    params(("sessionId" = String, Path, description = "The session")),
    responses(
        (status = 200, description = "The session, now `human`", body = Object),
        (status = 400, description = "Invalid session id"),
        (status = 401, description = "Missing or invalid key"),
        (status = 403, description = "Admin routes disabled")
    ), security(("bearer" = [])))]
pub async fn take_over_session(
    state: State<Arc<HumanLoop>>,
    site: Extension<CurrentSite>,
    path: Path<String>,
) -> Result<Json<SessionView>, ApiError> {
    super::sessions::handoff(state, site, path).await
}

/// Erases a session's state, events and outbox entries (privacy requests).
#[utoipa::path(delete, path = "/admin/sessions/{sessionId}", tag = "admin",
    params(("sessionId" = String, Path, description = "The session")),
    responses(
        (status = 200, description = "Erased", body = Object),
        (status = 400, description = "Invalid session id"),
        (status = 401, description = "Missing or invalid admin key"),
        (status = 403, description = "Admin routes disabled"),
        (status = 503, description = "The durable store failed")
    ), security(("bearer" = [])))]
pub async fn erase_session(
    State(human): State<Arc<HumanLoop>>,
    Extension(CurrentSite(site)): Extension<CurrentSite>,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    let id = site_session(&site, &raw)?;
    let rows = human.erase(id.as_str()).await.map_err(|e| ApiError::Unavailable(format!("erase failed: {e}")))?;
    Ok(Json(json!({"sessionId": raw, "erased": true, "rowsRemoved": rows})).into_response())
}

#[derive(Debug, Deserialize)]
pub struct ReportQuery {
    pub since: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
}

fn day(raw: &str, field: &str) -> Result<chrono::NaiveDate, ApiError> {
    chrono::NaiveDate::parse_from_str(raw, "%Y-%m-%d").map_err(|_| {
        ApiError::Invalid(crate::domain::InvalidField::new(
            field,
            "invalid_field",
            format!("`{field}` must be a date like 2026-11-30"),
        ))
    })
}

/// `[from 00:00, to + 1 day)` in UTC, from `from`/`to` (either may be left out: a week). Reversed
/// dates are swapped and a span over 366 days ends at `to`: any two dates give a report.
fn date_range(from: Option<&str>, to: Option<&str>) -> Result<(i64, i64), ApiError> {
    let to = match to {
        Some(raw) => day(raw, "to")?,
        None => chrono::Utc::now().date_naive(),
    };
    let from = match from {
        Some(raw) => day(raw, "from")?,
        None => to - chrono::Duration::days(6),
    };
    let (from, to) = if from <= to { (from, to) } else { (to, from) };
    let from = from.max(to - chrono::Duration::days(366));
    let start = from.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc().timestamp_millis();
    let end = to.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc().timestamp_millis() + 86_400_000;
    Ok((start, end))
}

/// The weekly review as JSON: the last `since` (`7d`, the default), or the days `from`–`to`.
#[utoipa::path(get, path = "/admin/report", tag = "admin",
    params(
        ("since" = Option<String>, Query, description = "How far back, e.g. 7d, 24h (default 7d)"),
        ("from" = Option<String>, Query, description = "First day, YYYY-MM-DD (UTC); with `to`, instead of `since`"),
        ("to" = Option<String>, Query, description = "Last day, YYYY-MM-DD (UTC), included"),
    ),
    responses(
        (status = 200, description = "The report", body = Object),
        (status = 400, description = "`since`, `from` or `to` invalid"),
        (status = 401, description = "Missing or invalid admin key"),
        (status = 403, description = "Admin routes disabled"),
        (status = 503, description = "The durable store failed")
    ), security(("bearer" = [])))]
pub async fn report(
    State(review): State<Arc<Review>>,
    Extension(CurrentSite(site)): Extension<CurrentSite>,
    Query(query): Query<ReportQuery>,
) -> Result<Response, ApiError> {
    let built = if query.from.is_some() || query.to.is_some() {
        let (since, until) = date_range(query.from.as_deref(), query.to.as_deref())?;
        review.report_between(&site, since, until).await
    } else {
        let since = query.since.as_deref().unwrap_or("7d");
        let window = crate::review::parse_since(since).map_err(|e| {
            ApiError::Invalid(crate::domain::InvalidField::new("since", "invalid_field", e.to_string()))
        })?;
        review.report_since(&site, window).await
    };
    let report = built.map_err(|e| ApiError::Unavailable(format!("report failed: {e}")))?;
    Ok(Json(report).into_response())
}
