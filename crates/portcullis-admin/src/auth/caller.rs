//! Authentication of admin callers and the access check every route passes.

use crate::error::{ApiError, ApiResult};
use crate::routes::Access;
use crate::state::AppState;
use axum::extract::{ConnectInfo, FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use portcullis_core::audit::AuditDraft;
use portcullis_core::model::admin_role_of;
use portcullis_core::{api_key, Role};
use std::net::SocketAddr;

/// Don't rewrite `last_used_at` more often than this.
const TOUCH_INTERVAL_MS: i64 = 60_000;

#[derive(Debug, Clone)]
pub enum CallerKind {
    User {
        id: String,
        username: String,
        session_id: String,
    },
    ApiKey {
        id: String,
        prefix: String,
    },
}

/// An authenticated caller, put in the request by [`authorize`].
#[derive(Debug, Clone)]
pub struct Caller {
    pub kind: CallerKind,
    pub role: Role,
    /// Client IP, when the server has connection info.
    pub addr: Option<String>,
}

impl Caller {
    /// How the audit log names this caller.
    pub fn actor(&self) -> String {
        match &self.kind {
            CallerKind::User { username, .. } => format!("user:{username}"),
            CallerKind::ApiKey { prefix, .. } => format!("key:{prefix}"),
        }
    }

    /// An audit entry for an action by this caller.
    pub fn draft(&self, action: &str, target: impl Into<String>) -> AuditDraft {
        AuditDraft::new(self.actor(), action, target).from_addr(self.addr.clone())
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| ApiError::unauthenticated("authentication required"))
    }
}

fn presented_credential(headers: &HeaderMap) -> Option<&str> {
    if let Some(value) = headers.get(axum::http::header::AUTHORIZATION) {
        let value = value.to_str().ok()?;
        let (scheme, token) = value.split_once(' ')?;
        return scheme.eq_ignore_ascii_case("bearer").then(|| token.trim());
    }
    headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    addr: Option<String>,
) -> ApiResult<Caller> {
    let Some(presented) = presented_credential(headers) else {
        return Err(ApiError::unauthenticated(
            "authentication required: send Authorization: Bearer <token or admin API key>",
        ));
    };
    let now = state.clock.now();
    if let Some(prefix) = api_key::lookup_prefix(presented) {
        let Some((key, digest)) = state.store.api_key_by_prefix(prefix).await? else {
            return Err(ApiError::unauthenticated("invalid API key"));
        };
        if !api_key::matches(presented, &digest) || !key.is_usable_at(now) {
            return Err(ApiError::unauthenticated(
                "invalid, revoked or expired API key",
            ));
        }
        let Some(role) = admin_role_of(&key.scopes) else {
            return Err(ApiError::forbidden("this API key has no admin scope"));
        };
        let stale = key
            .last_used_at
            .is_none_or(|t| now.as_millisecond() - t.as_millisecond() > TOUCH_INTERVAL_MS);
        if stale {
            state.store.touch_api_key(&key.id, now).await?;
        }
        return Ok(Caller {
            kind: CallerKind::ApiKey {
                id: key.id,
                prefix: key.prefix,
            },
            role,
            addr,
        });
    }
    let Some(claims) = state.tokens.verify(presented, now) else {
        return Err(ApiError::unauthenticated("invalid or expired token"));
    };
    if !state.store.session_active(&claims.jti, now).await? {
        return Err(ApiError::unauthenticated("session ended; log in again"));
    }
    match state.store.user(&claims.sub).await? {
        Some(user) if !user.disabled => Ok(Caller {
            role: user.role,
            addr,
            kind: CallerKind::User {
                id: user.id,
                username: user.username,
                session_id: claims.jti,
            },
        }),
        _ => Err(ApiError::unauthenticated(
            "user no longer exists or is disabled",
        )),
    }
}

/// Runs on every matched admin route: looks up the route's declared access and
/// refuses callers without it. A route without a declaration is refused (fail
/// closed), and the role × route test fails on it.
pub async fn authorize(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let path = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned());
    let access = path
        .as_deref()
        .and_then(|p| state.access.get(req.method(), p));
    let required = match access {
        Some(Access::Public) => return next.run(req).await,
        Some(Access::Role(role)) => role,
        None => {
            tracing::error!(method = %req.method(), path = ?path, "route has no declared access; refusing");
            return ApiError::forbidden("this route declares no access rule").into_response();
        }
    };
    let addr = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string());
    let caller = match authenticate(&state, req.headers(), addr).await {
        Ok(caller) => caller,
        Err(e) => return e.into_response(),
    };
    if !caller.role.allows(required) {
        return ApiError::forbidden(format!(
            "this action needs the {required} role; you have {}",
            caller.role
        ))
        .into_response();
    }
    req.extensions_mut().insert(caller);
    next.run(req).await
}
