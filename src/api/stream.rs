//! Streaming for the OpenAI-compatible route (Server-Sent Events).

use super::compat::CompatRequest;
use super::error::ApiError;
use super::middleware::RequestContext;
use crate::state::AppState;
use axum::response::Response;

pub async fn respond(_state: AppState, _ctx: RequestContext, _request: CompatRequest) -> Result<Response, ApiError> {
    Err(ApiError::Unsupported("stream".into(), "`stream: true` is not supported yet".into()))
}
