//! Virtual API keys: shown once at creation, stored as a digest, revocable.

use super::check_name;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiQuery};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use jiff::Timestamp;
use portcullis_core::api_key;
use portcullis_core::model::{admin_role_of, ApiKey, KeyScope, RateLimits};
use portcullis_store::NewApiKey;
use serde::{Deserialize, Serialize};
use serde_json::json;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    pub name: String,
    pub group_id: String,
    /// Defaults to `llm`, `mcp`, `a2a`. `admin` and `admin_read` open the admin API.
    #[serde(default)]
    pub scopes: Option<Vec<KeyScope>>,
    /// RFC 3339 time after which the key stops working.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<Timestamp>,
    /// Requests and tokens per minute for this key (its group's limits apply too).
    #[serde(default)]
    pub rate_limits: Option<RateLimits>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateKey {
    /// Replaces both limits: a field left out (or null) means no limit.
    pub rate_limits: Option<RateLimits>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct CreatedKey {
    /// The key itself. Shown only in this response; store it now.
    pub key: String,
    pub api_key: ApiKey,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct KeyQuery {
    /// Only keys of this group.
    pub group_id: Option<String>,
}

/// API keys, newest first.
#[utoipa::path(get, path = "/api/v1/keys", tag = "keys", params(KeyQuery), responses((status = 200, body = [ApiKey])))]
pub async fn list(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<KeyQuery>,
) -> ApiResult<Json<Vec<ApiKey>>> {
    Ok(Json(
        state.store.list_api_keys(q.group_id.as_deref()).await?,
    ))
}

/// Creates a key for a group. The response holds the key; it is never shown again.
#[utoipa::path(post, path = "/api/v1/keys", tag = "keys", request_body = CreateKey, responses((status = 201, body = CreatedKey), (status = 400, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<CreateKey>,
) -> ApiResult<(StatusCode, Json<CreatedKey>)> {
    check_name("name", &req.name)?;
    let mut scopes = req.scopes.unwrap_or_else(|| KeyScope::DEFAULT.to_vec());
    scopes.sort_by_key(|s| s.as_str());
    scopes.dedup();
    if scopes.is_empty() {
        return Err(ApiError::bad_request("scopes: give at least one scope"));
    }
    // No one hands out more admin power than they hold.
    if let Some(granted) = admin_role_of(&scopes) {
        if !caller.role.allows(granted) {
            return Err(ApiError::forbidden(format!(
                "scopes: a key with {granted} access needs the {granted} role to create"
            )));
        }
    }
    let rate_limits = req.rate_limits.unwrap_or_default();
    super::check_rate_limits(&rate_limits)?;
    let now = state.clock.now();
    if req.expires_at.is_some_and(|t| t <= now) {
        return Err(ApiError::bad_request("expires_at: must be in the future"));
    }
    let group = state
        .store
        .group(&req.group_id)
        .await?
        .ok_or_else(|| ApiError::bad_request("group_id: no such group"))?;
    let generated = api_key::generate();
    let key = state
        .store
        .create_api_key(
            NewApiKey {
                name: req.name,
                group_id: group.id,
                prefix: generated.prefix.clone(),
                key_hash: generated.hash.clone(),
                scopes,
                expires_at: req.expires_at,
                created_by: caller.actor(),
                rate_limits,
            },
            now,
        )
        .await?;
    state
        .audit(caller.draft("key.create", format!("key:{}", key.prefix)).details(json!({"group": group.name, "scopes": key.scopes, "expires_at": key.expires_at, "rate_limits": key.rate_limits})))
        .await;
    Ok((
        StatusCode::CREATED,
        Json(CreatedKey {
            key: generated.plaintext,
            api_key: key,
        }),
    ))
}

/// One key (without its secret).
#[utoipa::path(get, path = "/api/v1/keys/{id}", tag = "keys", params(("id" = String, Path)), responses((status = 200, body = ApiKey), (status = 404, body = crate::error::ErrorBody)))]
pub async fn get_one(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<ApiKey>> {
    state
        .store
        .api_key(&id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("API key"))
}

/// The key, if it exists and the API may change it (not declared in the file).
async fn changeable(state: &AppState, id: &str) -> ApiResult<ApiKey> {
    let key = state
        .store
        .api_key(id)
        .await?
        .ok_or_else(|| ApiError::not_found("API key"))?;
    super::api_managed(key.managed_by)?;
    Ok(key)
}

/// Revokes a key at once; revoking twice is harmless.
#[utoipa::path(post, path = "/api/v1/keys/{id}/revoke", tag = "keys", params(("id" = String, Path)), responses((status = 200, body = ApiKey), (status = 404, body = crate::error::ErrorBody)))]
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<ApiKey>> {
    changeable(&state, &id).await?;
    let key = state
        .store
        .revoke_api_key(&id, state.clock.now())
        .await?
        .ok_or_else(|| ApiError::not_found("API key"))?;
    state.data_plane.keys_changed();
    state
        .audit(caller.draft("key.revoke", format!("key:{}", key.prefix)))
        .await;
    Ok(Json(key))
}

/// Changes a key's rate limits.
#[utoipa::path(patch, path = "/api/v1/keys/{id}", tag = "keys", params(("id" = String, Path)), request_body = UpdateKey, responses((status = 200, body = ApiKey), (status = 400, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<UpdateKey>,
) -> ApiResult<Json<ApiKey>> {
    let current = changeable(&state, &id).await?;
    let Some(limits) = req.rate_limits else {
        return Ok(Json(current));
    };
    super::check_rate_limits(&limits)?;
    let key = state
        .store
        .set_api_key_rate_limits(&id, limits)
        .await?
        .ok_or_else(|| ApiError::not_found("API key"))?;
    state.data_plane.keys_changed();
    state
        .audit(
            caller
                .draft("key.update", format!("key:{}", key.prefix))
                .details(json!({"rate_limits": key.rate_limits})),
        )
        .await;
    Ok(Json(key))
}
