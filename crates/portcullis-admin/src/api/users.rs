//! Admin users: create, list, change role, disable, reset password, delete.

use super::check_name;
use crate::auth::{Caller, CallerKind};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::extract::ApiJson;
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use portcullis_core::model::User;
use portcullis_core::{password, Role};
use portcullis_store::{NewUser, UserPatch};
use serde::Deserialize;
use serde_json::json;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    pub username: String,
    pub password: String,
    pub role: Role,
    /// Ask the user to change the password at first login (default true).
    #[serde(default)]
    pub must_change_password: Option<bool>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUser {
    pub role: Option<Role>,
    pub disabled: Option<bool>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetPassword {
    pub password: String,
    #[serde(default)]
    pub must_change_password: Option<bool>,
}

pub(crate) async fn hash_password(pw: String) -> ApiResult<String> {
    password::check_strength(&pw).map_err(|e| ApiError::bad_request(format!("password: {e}")))?;
    password::hash_async(pw).await.map_err(|e| match e {
        password::PasswordError::Busy => super::auth::busy(),
        _ => ApiError::internal(),
    })
}

fn is_self(caller: &Caller, id: &str) -> bool {
    matches!(&caller.kind, CallerKind::User { id: me, .. } if me == id)
}

/// All admin users.
#[utoipa::path(get, path = "/api/v1/users", tag = "users", responses((status = 200, body = [User])))]
pub async fn list(State(state): State<AppState>) -> ApiResult<Json<Vec<User>>> {
    Ok(Json(state.store.list_users().await?))
}

/// Creates a user.
#[utoipa::path(post, path = "/api/v1/users", tag = "users", request_body = CreateUser, responses((status = 201, body = User), (status = 409, body = crate::error::ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<CreateUser>,
) -> ApiResult<(StatusCode, Json<User>)> {
    check_name("username", &req.username)?;
    let password_hash = hash_password(req.password).await?;
    let user = state
        .store
        .create_user(
            NewUser {
                username: req.username,
                password_hash,
                role: req.role,
                must_change_password: req.must_change_password.unwrap_or(true),
            },
            state.clock.now(),
        )
        .await?;
    state
        .audit(
            caller
                .draft("user.create", format!("user:{}", user.username))
                .details(json!({"role": user.role})),
        )
        .await;
    Ok((StatusCode::CREATED, Json(user)))
}

/// One user.
#[utoipa::path(get, path = "/api/v1/users/{id}", tag = "users", params(("id" = String, Path)), responses((status = 200, body = User), (status = 404, body = crate::error::ErrorBody)))]
pub async fn get_one(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<User>> {
    state
        .store
        .user(&id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("user"))
}

async fn would_orphan_admins(state: &AppState, target: &User) -> ApiResult<bool> {
    Ok(target.role == Role::Admin
        && !target.disabled
        && state.store.count_active_admins().await? <= 1)
}

/// Changes a user's role or disables them. Disabling ends their sessions.
#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "users", params(("id" = String, Path)), request_body = UpdateUser, responses((status = 200, body = User), (status = 409, body = crate::error::ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<UpdateUser>,
) -> ApiResult<Json<User>> {
    let target = state
        .store
        .user(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    let demotes = req.role.is_some_and(|r| r != Role::Admin) || req.disabled == Some(true);
    if demotes && would_orphan_admins(&state, &target).await? {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            "this is the last active admin; make another admin first",
        ));
    }
    let now = state.clock.now();
    let user = state
        .store
        .update_user(
            &id,
            UserPatch {
                role: req.role,
                disabled: req.disabled,
            },
            now,
        )
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    if req.disabled == Some(true) {
        state.store.revoke_user_sessions(&id, None, now).await?;
    }
    state
        .audit(
            caller
                .draft("user.update", format!("user:{}", user.username))
                .details(json!({"role": req.role, "disabled": req.disabled})),
        )
        .await;
    Ok(Json(user))
}

/// Deletes a user (not yourself, not the last admin).
#[utoipa::path(delete, path = "/api/v1/users/{id}", tag = "users", params(("id" = String, Path)), responses((status = 204), (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody)))]
pub async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let target = state
        .store
        .user(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    if is_self(&caller, &id) {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            "you cannot delete yourself",
        ));
    }
    if would_orphan_admins(&state, &target).await? {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            "this is the last active admin; make another admin first",
        ));
    }
    state.store.delete_user(&id).await?;
    state
        .audit(caller.draft("user.delete", format!("user:{}", target.username)))
        .await;
    Ok(StatusCode::NO_CONTENT)
}

/// Sets another user's password and ends their sessions.
#[utoipa::path(post, path = "/api/v1/users/{id}/password", tag = "users", params(("id" = String, Path)), request_body = SetPassword, responses((status = 204), (status = 404, body = crate::error::ErrorBody)))]
pub async fn set_password(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<SetPassword>,
) -> ApiResult<StatusCode> {
    let target = state
        .store
        .user(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    let hash = hash_password(req.password).await?;
    let now = state.clock.now();
    state
        .store
        .set_password(&id, &hash, req.must_change_password.unwrap_or(true), now)
        .await?;
    state.store.revoke_user_sessions(&id, None, now).await?;
    state
        .audit(caller.draft("user.password_reset", format!("user:{}", target.username)))
        .await;
    Ok(StatusCode::NO_CONTENT)
}
