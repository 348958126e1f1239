//! The MCP tool inventory: every tool the MCP proxies have seen, and its review
//! (approve, disable). Only approved tools are listed to clients and callable.

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::extract::ApiQuery;
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::Json;
use portcullis_core::mcp::{McpTool, ToolStatus};
use portcullis_store::McpToolFilter;
use serde::{Deserialize, Serialize};
use serde_json::json;

const DEFAULT_PAGE: u32 = 500;
const MAX_PAGE: u32 = 5000;

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ToolQuery {
    /// Proxy id.
    pub proxy: Option<String>,
    /// pending, approved, disabled or quarantined.
    #[param(value_type = Option<String>)]
    pub status: Option<ToolStatus>,
    /// 1 to 5000, default 500.
    pub limit: Option<u32>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ToolList {
    pub tools: Vec<McpTool>,
}

/// Optional body of approve and disable.
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ToolReview {
    /// Approve only if the stored definition still has this hash (what the
    /// reviewer saw); a changed definition is a 409.
    pub hash: Option<String>,
}

fn review_body(body: &[u8]) -> ApiResult<ToolReview> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(ToolReview::default());
    }
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(e.to_string()))
}

async fn load(state: &AppState, id: &str) -> ApiResult<McpTool> {
    state
        .store
        .mcp_tool(id)
        .await?
        .ok_or_else(|| ApiError::not_found("MCP tool"))
}

async fn target(state: &AppState, tool: &McpTool) -> String {
    let proxy = match state.store.proxy(&tool.proxy_id).await {
        Ok(Some(p)) => p.spec.name,
        _ => tool.proxy_id.clone(),
    };
    format!("mcp_tool:{proxy}/{}", tool.name)
}

/// Tools seen by MCP proxies, by proxy and name.
#[utoipa::path(get, path = "/api/v1/mcp/tools", tag = "mcp", params(ToolQuery), responses((status = 200, body = ToolList)))]
pub async fn list(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<ToolQuery>,
) -> ApiResult<Json<ToolList>> {
    let limit = q.limit.unwrap_or(DEFAULT_PAGE);
    if limit == 0 || limit > MAX_PAGE {
        return Err(ApiError::bad_request(format!(
            "limit: must be between 1 and {MAX_PAGE}"
        )));
    }
    if q.proxy.as_ref().is_some_and(|p| p.len() > 128) {
        return Err(ApiError::bad_request("proxy: at most 128 bytes"));
    }
    let filter = McpToolFilter {
        proxy_id: q.proxy,
        status: q.status,
        limit,
    };
    let tools = state.store.list_mcp_tools(&filter).await?;
    Ok(Json(ToolList { tools }))
}

/// One tool with its whole definition and the approved one.
#[utoipa::path(get, path = "/api/v1/mcp/tools/{id}", tag = "mcp", params(("id" = String, Path)),
    responses((status = 200, body = McpTool), (status = 404, body = crate::error::ErrorBody)))]
pub async fn get_one(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<McpTool>> {
    Ok(Json(load(&state, &id).await?))
}

/// Approves the tool's current definition: clients see it and may call it. A
/// quarantined tool is approved again this way, after review.
#[utoipa::path(post, path = "/api/v1/mcp/tools/{id}/approve", tag = "mcp", params(("id" = String, Path)), request_body(content = Option<ToolReview>),
    responses((status = 200, body = McpTool), (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody)))]
pub async fn approve(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<Json<McpTool>> {
    let review = review_body(&body)?;
    let current = load(&state, &id).await?;
    let changed = || {
        ApiError::new(
            ErrorCode::Conflict,
            "the tool's definition changed since it was read; review it again",
        )
    };
    if review.hash.as_ref().is_some_and(|h| *h != current.hash) {
        return Err(changed());
    }
    let now = state.clock.now();
    if !state
        .store
        .approve_mcp_tool(&id, &current.hash, &caller.actor(), now)
        .await?
    {
        return Err(changed());
    }
    let target = target(&state, &current).await;
    state
        .audit(
            caller
                .draft("mcp_tool.approve", target)
                .details(json!({"id": id, "from": current.status, "hash": current.hash})),
        )
        .await;
    Ok(Json(load(&state, &id).await?))
}

/// Disables a tool: hidden from clients and refused, whatever its definition.
#[utoipa::path(post, path = "/api/v1/mcp/tools/{id}/disable", tag = "mcp", params(("id" = String, Path)), request_body(content = Option<ToolReview>),
    responses((status = 200, body = McpTool), (status = 404, body = crate::error::ErrorBody)))]
pub async fn disable(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<Json<McpTool>> {
    review_body(&body)?;
    let current = load(&state, &id).await?;
    if !state
        .store
        .set_mcp_tool_status(&id, ToolStatus::Disabled, state.clock.now())
        .await?
    {
        return Err(ApiError::not_found("MCP tool"));
    }
    let target = target(&state, &current).await;
    state
        .audit(
            caller
                .draft("mcp_tool.disable", target)
                .details(json!({"id": id, "from": current.status, "hash": current.hash})),
        )
        .await;
    Ok(Json(load(&state, &id).await?))
}
