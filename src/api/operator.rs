//! `/admin/*` reads behind the operator console (admin key, or a console session): the overview's
//! 30 days, the handoffs a person owns with their SLA state, and one session's transcript.

use super::error::ApiError;
use super::extract::{Path, Query};
use super::rfc3339;
use crate::domain::{InvalidField, SessionId};
use crate::state::AppState;
use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

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
    State(state): State<AppState>,
    Query(query): Query<OverviewQuery>,
) -> Result<Json<Value>, ApiError> {
    let days =
        match query.days.as_deref() {
            None | Some("") => 30,
            Some(raw) => raw.parse::<u32>().ok().filter(|d| (1..=90).contains(d)).ok_or_else(|| {
                InvalidField::new("days", "invalid_field", "`days` must be a whole number from 1 to 90")
            })?,
        };
    let now = chrono::Utc::now().timestamp_millis();
    let since = now - now.rem_euclid(86_400_000) - i64::from(days - 1) * 86_400_000;
    let durable = state.orchestrator.durable();
    let events = durable.events_since(since).await.map_err(unavailable)?;
    let low = state.settings.handoff.low_confidence_threshold;
    let per_day = crate::report::daily(&events, days, now, low);
    let totals = crate::report::compute(&events, since, now, low);
    let circuit = match state.orchestrator.circuit_state() {
        crate::completion::CircuitState::Closed => "closed",
        crate::completion::CircuitState::Open => "open",
        crate::completion::CircuitState::HalfOpen => "half_open",
    };
    let budget: serde_json::Map<String, Value> = ["monthly_tokens", "daily_tokens", "monthly_usd"]
        .into_iter()
        .map(|kind| (kind.to_owned(), json!(state.metrics.budget_used_ratio.with_label_values(&[kind]).get())))
        .collect();
    Ok(Json(json!({
        "days": per_day,
        "totals": {
            "replies": totals.replies, "sessions": totals.sessions, "bySource": totals.by_source,
            "fallbackReasons": totals.fallback_reasons, "promptTokens": totals.prompt_tokens,
            "completionTokens": totals.completion_tokens, "costUsd": totals.cost_usd,
        },
        "circuit": circuit,
        "killSwitch": state.orchestrator.store().kill_switch().await,
        "budgetUsedRatio": budget,
        "budgetLimits": {
            "monthlyTokens": state.settings.budget.monthly_tokens, "dailyTokens": state.settings.budget.daily_tokens,
            "monthlyUsd": state.settings.budget.monthly_usd,
        },
    })))
}

/// Sessions a person owns now: how long the visitor has waited and the SLA state.
#[utoipa::path(get, path = "/admin/handoffs", tag = "admin",
    responses(
        (status = 200, description = "`{handoffs: [{sessionId, startedAt, reason, waitingSeconds, firstAgentAt, slaState}]}`", body = Object),
        (status = 401, description = "Missing or invalid admin key"),
        (status = 403, description = "Admin routes disabled"),
        (status = 503, description = "The durable store failed")
    ), security(("bearer" = [])))]
pub async fn handoffs(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let open = state.orchestrator.durable().open_handoffs().await.map_err(unavailable)?;
    let now = chrono::Utc::now().timestamp_millis();
    let sla = state.settings.handoff.sla_ms as i64;
    let mut list = Vec::new();
    for h in open {
        // A row can outlive its ownership (erased, or released before this version): show only
        // sessions a person still owns.
        let owned = state.orchestrator.session_view(&h.session_id).await;
        if !owned.is_some_and(|v| v.mode == crate::store::Mode::Human) {
            continue;
        }
        let waited_until = h.first_agent_ms.unwrap_or(now);
        let sla_state = match (h.first_agent_ms, h.sla_breached) {
            (_, true) => "breached",
            (Some(_), false) => "answered",
            (None, false) if sla > 0 && now - h.started_ms >= sla => "breached",
            (None, false) => "waiting",
        };
        list.push(json!({
            "sessionId": h.session_id, "startedAt": rfc3339(h.started_ms), "reason": h.reason,
            "waitingSeconds": ((waited_until - h.started_ms).max(0) as f64 / 1000.0).round(),
            "firstAgentAt": h.first_agent_ms.and_then(rfc3339), "slaState": sla_state,
            "slaSeconds": sla / 1000,
        }));
    }
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
pub async fn transcript(State(state): State<AppState>, Path(raw): Path<String>) -> Result<Json<Value>, ApiError> {
    let id = SessionId::parse(Some(&raw), "sessionId")?;
    let view = state.orchestrator.session_view(id.as_str()).await.ok_or(ApiError::SessionNotFound)?;
    let messages = state
        .orchestrator
        .durable()
        .session_messages(id.as_str(), i64::from(view.handoffs))
        .await
        .map_err(unavailable)?;
    let messages: Vec<Value> = messages
        .into_iter()
        .map(|m| json!({"role": m.role, "text": m.text, "author": m.author, "at": rfc3339(m.at_ms)}))
        .collect();
    Ok(Json(json!({"sessionId": id.as_str(), "mode": view.mode, "messages": messages})))
}
