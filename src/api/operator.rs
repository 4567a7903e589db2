//! `/admin/*` reads behind the operator console (admin key, or a console session): the overview's
//! 30 days, the handoffs a person owns with their SLA state, and one session's transcript.

use super::error::ApiError;
use super::extract::{Path, Query};
use crate::domain::rfc3339;
use crate::domain::InvalidField;
use crate::human_loop::HumanLoop;
use crate::review::Review;
use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

fn unavailable(e: crate::store::StoreError) -> ApiError {
    ApiError::Unavailable(crate::error_chain::describe(&e))
}

#[derive(Debug, Deserialize)]
pub struct OverviewQuery {
    pub days: Option<String>,
}

/// The overview: per day (UTC, oldest first) the three support metrics and volume, then what
/// holds now — circuit, kill switch, budget use, and the window's totals.
#[utoipa::path(get, path = "/admin/overview", tag = "admin",
    params(("days" = Option<u32>, Query, description = "1–90, default 30")),
    responses(
        (status = 200, description = "`{days: [...], totals, circuit, killSwitch, budget}`", body = Object),
        (status = 400, description = "`days` invalid"),
        (status = 401, description = "Missing or invalid admin key"),
        (status = 403, description = "Admin routes disabled"),
        (status = 503, description = "The durable store failed")
    ), security(("bearer" = [])))]
pub async fn overview(
    State(review): State<Arc<Review>>,
    axum::Extension(super::access::CurrentSite(site)): axum::Extension<super::access::CurrentSite>,
    Query(query): Query<OverviewQuery>,
) -> Result<Json<Value>, ApiError> {
    let days =
        match query.days.as_deref() {
            None | Some("") => 30,
            Some(raw) => raw.parse::<u32>().ok().filter(|d| (1..=90).contains(d)).ok_or_else(|| {
                InvalidField::new("days", "invalid_field", "`days` must be a whole number from 1 to 90")
            })?,
        };
    Ok(Json(review.overview(&site, days).await.map_err(unavailable)?.0))
}

/// Sessions a person owns now: how long the visitor has waited and the SLA state.
#[utoipa::path(get, path = "/admin/handoffs", tag = "admin",
    responses(
        (status = 200, description = "`{handoffs: [{sessionId, startedAt, reason, waitingSeconds, firstAgentAt, slaState}]}`", body = Object),
        (status = 401, description = "Missing or invalid admin key"),
        (status = 403, description = "Admin routes disabled"),
        (status = 503, description = "The durable store failed")
    ), security(("bearer" = [])))]
pub async fn handoffs(
    State(review): State<Arc<Review>>,
    axum::Extension(super::access::CurrentSite(site)): axum::Extension<super::access::CurrentSite>,
) -> Result<Json<Value>, ApiError> {
    let list = review.handoffs(&site).await.map_err(unavailable)?;
    Ok(Json(json!({ "handoffs": list })))
}

/// What was said in the session's current (or last) handoff: visitor, bot and agent turns.
#[utoipa::path(get, path = "/admin/sessions/{sessionId}/transcript", tag = "admin",
    params(("sessionId" = String, Path, description = "The session")),
    responses(
        (status = 200, description = "`{sessionId, messages: [{role, text, author, at}]}`", body = Object),
        (status = 400, description = "Invalid session id"),
        (status = 401, description = "Missing or invalid admin key"),
        (status = 403, description = "Admin routes disabled"),
        (status = 404, description = "No state kept for that session"),
        (status = 503, description = "The durable store failed")
    ), security(("bearer" = [])))]
pub async fn transcript(
    State(human): State<Arc<HumanLoop>>,
    axum::Extension(super::access::CurrentSite(site)): axum::Extension<super::access::CurrentSite>,
    Path(raw): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = super::sessions::site_session(&site, &raw)?;
    let (view, messages) =
        human.transcript(id.as_str()).await.map_err(unavailable)?.ok_or(ApiError::SessionNotFound)?;
    let messages: Vec<Value> = messages
        .into_iter()
        .map(|m| json!({"role": m.role, "text": m.text, "author": m.author, "at": rfc3339(m.at_ms)}))
        .collect();
    Ok(Json(json!({"sessionId": raw, "mode": view.mode, "messages": messages})))
}
