//! Groups (teams) that API keys belong to.

use super::check_name;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiJson;
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use portcullis_core::model::{Group, RateLimits};
use portcullis_store::GroupPatch;
use serde::Deserialize;
use serde_json::json;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateGroup {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Requests and tokens per minute for all the group's keys together.
    #[serde(default)]
    pub rate_limits: Option<RateLimits>,
    /// MCP tool names or globs (`fs__*`) the group's keys may list and call;
    /// empty: all. See `docs/mcp.md`.
    #[serde(default)]
    pub mcp_tool_allow: Vec<String>,
    /// MCP tool names or globs hidden from and refused to the group's keys.
    #[serde(default)]
    pub mcp_tool_deny: Vec<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateGroup {
    pub name: Option<String>,
    pub description: Option<String>,
    /// Replaces both limits: a field left out (or null) means no limit.
    pub rate_limits: Option<RateLimits>,
    /// Replaces the list when given.
    pub mcp_tool_allow: Option<Vec<String>>,
    /// Replaces the list when given.
    pub mcp_tool_deny: Option<Vec<String>>,
}

/// Both tool lists, each problem naming its field.
pub(crate) fn check_tool_lists(
    allow: Option<&Vec<String>>,
    deny: Option<&Vec<String>>,
) -> ApiResult<()> {
    let mut problems = Vec::new();
    for (field, list) in [("mcp_tool_allow", allow), ("mcp_tool_deny", deny)] {
        if let Some(list) = list {
            portcullis_core::mcp::tool_pattern_problems(field, list.iter(), &mut problems);
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ApiError::bad_request(problems.join("; ")))
    }
}

fn check_description(text: &str) -> ApiResult<()> {
    if text.chars().count() > 1000 {
        return Err(ApiError::bad_request(
            "description: at most 1000 characters",
        ));
    }
    Ok(())
}

/// All groups.
#[utoipa::path(get, path = "/api/v1/groups", tag = "groups", responses((status = 200, body = [Group])))]
pub async fn list(State(state): State<AppState>) -> ApiResult<Json<Vec<Group>>> {
    Ok(Json(state.store.list_groups().await?))
}

/// Creates a group.
#[utoipa::path(post, path = "/api/v1/groups", tag = "groups", request_body = CreateGroup, responses((status = 201, body = Group), (status = 409, body = crate::error::ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<CreateGroup>,
) -> ApiResult<(StatusCode, Json<Group>)> {
    check_name("name", &req.name)?;
    check_description(&req.description)?;
    let limits = req.rate_limits.unwrap_or_default();
    super::check_rate_limits(&limits)?;
    check_tool_lists(Some(&req.mcp_tool_allow), Some(&req.mcp_tool_deny))?;
    let now = state.clock.now();
    let mut group = state
        .store
        .create_group(&req.name, &req.description, now)
        .await?;
    if !limits.is_unlimited() || !req.mcp_tool_allow.is_empty() || !req.mcp_tool_deny.is_empty() {
        let patch = GroupPatch {
            rate_limits: Some(limits),
            mcp_tool_allow: Some(req.mcp_tool_allow),
            mcp_tool_deny: Some(req.mcp_tool_deny),
            ..GroupPatch::default()
        };
        group = state
            .store
            .update_group(&group.id, patch, now)
            .await?
            .ok_or_else(|| ApiError::not_found("group"))?;
    }
    // Templates may name the group ({{group}}); its bindings go with it.
    let _ = state.data_plane.refresh_prompts().await;
    state
        .audit(
            caller
                .draft("group.create", format!("group:{}", group.name))
                .details(json!({"id": group.id, "rate_limits": group.rate_limits,
                    "mcp_tool_allow": group.mcp_tool_allow, "mcp_tool_deny": group.mcp_tool_deny})),
        )
        .await;
    Ok((StatusCode::CREATED, Json(group)))
}

/// One group.
#[utoipa::path(get, path = "/api/v1/groups/{id}", tag = "groups", params(("id" = String, Path)), responses((status = 200, body = Group), (status = 404, body = crate::error::ErrorBody)))]
pub async fn get_one(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Group>> {
    state
        .store
        .group(&id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("group"))
}

/// Renames a group, changes its description or its rate limits.
#[utoipa::path(patch, path = "/api/v1/groups/{id}", tag = "groups", params(("id" = String, Path)), request_body = UpdateGroup, responses((status = 200, body = Group), (status = 404, body = crate::error::ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<UpdateGroup>,
) -> ApiResult<Json<Group>> {
    if let Some(name) = &req.name {
        check_name("name", name)?;
    }
    let current = state
        .store
        .group(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("group"))?;
    super::api_managed(current.managed_by)?;
    if let Some(text) = &req.description {
        check_description(text)?;
    }
    if let Some(limits) = &req.rate_limits {
        super::check_rate_limits(limits)?;
    }
    check_tool_lists(req.mcp_tool_allow.as_ref(), req.mcp_tool_deny.as_ref())?;
    let changes = json!({"name": req.name, "description": req.description, "rate_limits": req.rate_limits,
        "mcp_tool_allow": req.mcp_tool_allow, "mcp_tool_deny": req.mcp_tool_deny});
    // Cached key identities carry their group's limits and tool lists.
    let identities_change =
        req.rate_limits.is_some() || req.mcp_tool_allow.is_some() || req.mcp_tool_deny.is_some();
    let group = state
        .store
        .update_group(
            &id,
            GroupPatch {
                name: req.name,
                description: req.description,
                rate_limits: req.rate_limits,
                mcp_tool_allow: req.mcp_tool_allow,
                mcp_tool_deny: req.mcp_tool_deny,
            },
            state.clock.now(),
        )
        .await?
        .ok_or_else(|| ApiError::not_found("group"))?;
    if identities_change {
        state.data_plane.keys_changed();
    }
    let _ = state.data_plane.refresh_prompts().await;
    state
        .audit(
            caller
                .draft("group.update", format!("group:{}", group.name))
                .details(changes),
        )
        .await;
    Ok(Json(group))
}

/// Deletes a group that has no keys left.
#[utoipa::path(delete, path = "/api/v1/groups/{id}", tag = "groups", params(("id" = String, Path)), responses((status = 204), (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody)))]
pub async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let group = state
        .store
        .group(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("group"))?;
    super::api_managed(group.managed_by)?;
    state.store.delete_group(&id).await?;
    let _ = state.data_plane.refresh_prompts().await;
    state
        .audit(caller.draft("group.delete", format!("group:{}", group.name)))
        .await;
    Ok(StatusCode::NO_CONTENT)
}
