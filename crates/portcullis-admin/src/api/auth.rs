//! Log in, log out, who am I, change my password.

use crate::auth::{Caller, CallerKind};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::extract::{ApiJson, ClientAddr};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use jiff::Timestamp;
use portcullis_core::audit::AuditDraft;
use portcullis_core::model::User;
use portcullis_core::{password, Role};
use portcullis_store::NewSession;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::time::Instant;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct LoginResponse {
    pub token: String,
    pub token_type: &'static str,
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: Timestamp,
    pub user: User,
}

/// Exchanges a user name and password for a short-lived bearer token.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = LoginResponse), (status = 401, body = crate::error::ErrorBody), (status = 429, body = crate::error::ErrorBody)))]
pub async fn login(
    State(state): State<AppState>,
    addr: ClientAddr,
    ApiJson(req): ApiJson<LoginRequest>,
) -> ApiResult<Json<LoginResponse>> {
    let ip = addr.ip_string();
    if let Some(wait) = state
        .login_limiter
        .check(&req.username, ip.as_deref(), Instant::now())
    {
        tracing::warn!(username = %req.username, client = ?ip, "login throttled");
        let mut err = ApiError::new(
            ErrorCode::TooManyRequests,
            "too many failed logins; try again later",
        );
        err.retry_after = Some(wait);
        return Err(err);
    }
    let found = state.store.user_with_hash(&req.username).await?;
    // Verify against a dummy hash for unknown users, so timing does not reveal names.
    let hash = found
        .as_ref()
        .map(|(_, h)| h.as_str())
        .unwrap_or(password::dummy_hash());
    let Some(password_ok) = password::verify_async(req.password.clone(), hash.to_owned()).await
    else {
        return Err(busy());
    };
    let user = match found {
        Some((user, _)) if password_ok && !user.disabled => user,
        _ => {
            state
                .login_limiter
                .record_failure(&req.username, ip.as_deref(), Instant::now());
            state.metrics.failed_logins.inc();
            state
                .audit(
                    AuditDraft::new(
                        format!("user:{}", req.username),
                        "auth.login_failed",
                        format!("user:{}", req.username),
                    )
                    .from_addr(ip),
                )
                .await;
            return Err(ApiError::unauthenticated("invalid user name or password"));
        }
    };
    state.login_limiter.record_success(&req.username);
    let now = state.clock.now();
    let (token, claims) = state
        .tokens
        .issue(&user.id, now)
        .map_err(|_| ApiError::internal())?;
    let expires_at = Timestamp::from_second(claims.exp).map_err(|_| ApiError::internal())?;
    state
        .store
        .create_session(
            NewSession {
                id: claims.jti,
                user_id: user.id.clone(),
                expires_at,
            },
            now,
        )
        .await?;
    state.store.record_login(&user.id, now).await?;
    state
        .audit(
            AuditDraft::new(
                format!("user:{}", user.username),
                "auth.login",
                format!("user:{}", user.username),
            )
            .from_addr(ip),
        )
        .await;
    Ok(Json(LoginResponse {
        token,
        token_type: "Bearer",
        expires_at,
        user,
    }))
}

/// Ends the current session; its token stops working at once.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", responses((status = 204)))]
pub async fn logout(State(state): State<AppState>, caller: Caller) -> ApiResult<StatusCode> {
    let CallerKind::User { session_id, .. } = &caller.kind else {
        return Err(ApiError::bad_request(
            "API keys have no session to end; revoke the key instead",
        ));
    };
    state
        .store
        .revoke_session(session_id, state.clock.now())
        .await?;
    state
        .audit(caller.draft("auth.logout", caller.actor()))
        .await;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Me {
    pub role: Role,
    /// `user` or `api_key`.
    pub kind: &'static str,
    pub user: Option<User>,
    pub key_prefix: Option<String>,
}

/// The caller: their user record and role.
#[utoipa::path(get, path = "/api/v1/auth/me", tag = "auth", responses((status = 200, body = Me)))]
pub async fn me(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Me>> {
    Ok(Json(match caller.kind {
        CallerKind::User { id, .. } => Me {
            role: caller.role,
            kind: "user",
            user: state.store.user(&id).await?,
            key_prefix: None,
        },
        CallerKind::ApiKey { prefix, .. } => Me {
            role: caller.role,
            kind: "api_key",
            user: None,
            key_prefix: Some(prefix),
        },
    }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordRequest {
    pub current_password: String,
    pub new_password: String,
}

/// Changes the caller's password and ends their other sessions.
#[utoipa::path(post, path = "/api/v1/auth/change-password", tag = "auth", request_body = ChangePasswordRequest, responses((status = 204), (status = 400, body = crate::error::ErrorBody)))]
pub async fn change_password(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<ChangePasswordRequest>,
) -> ApiResult<StatusCode> {
    let CallerKind::User {
        id,
        username,
        session_id,
    } = &caller.kind
    else {
        return Err(ApiError::bad_request("only users have passwords"));
    };
    password::check_strength(&req.new_password)
        .map_err(|e| ApiError::bad_request(format!("new_password: {e}")))?;
    if req.new_password == req.current_password {
        return Err(ApiError::bad_request(
            "new_password: must differ from the current password",
        ));
    }
    let Some((_, hash)) = state.store.user_with_hash(username).await? else {
        return Err(ApiError::unauthenticated("user no longer exists"));
    };
    let (current, new) = (req.current_password, req.new_password);
    let new_hash = match password::verify_async(current, hash).await {
        None => return Err(busy()),
        Some(false) => None,
        Some(true) => Some(password::hash_async(new).await),
    };
    let new_hash = match new_hash {
        None => return Err(ApiError::bad_request("current_password: is wrong")),
        Some(h) => h.map_err(|_| ApiError::internal())?,
    };
    let now = state.clock.now();
    state.store.set_password(id, &new_hash, false, now).await?;
    let ended = state
        .store
        .revoke_user_sessions(id, Some(session_id), now)
        .await?;
    state
        .audit(
            caller
                .draft("user.password_change", caller.actor())
                .details(json!({"other_sessions_ended": ended})),
        )
        .await;
    Ok(StatusCode::NO_CONTENT)
}

/// Password work is queued on one thread; when the queue is full, say so.
pub(crate) fn busy() -> ApiError {
    let mut e = ApiError::new(
        ErrorCode::Unavailable,
        "too many logins in progress; retry in a moment",
    );
    e.retry_after = Some(1);
    e
}
