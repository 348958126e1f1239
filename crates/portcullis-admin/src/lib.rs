//! Portcullis control plane: the admin REST API under `/api/v1`, its
//! authentication and roles, health, readiness, metrics and the OpenAPI document.

pub mod api;
pub mod auth;
pub mod declared;
pub mod error;
pub mod extract;
pub mod metrics;
pub mod openapi;
pub mod routes;
pub mod state;

use crate::auth::{LoginLimiter, TokenSigner};
use crate::error::{ApiError, ErrorCode};
use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderValue};
use axum::middleware::{from_fn, from_fn_with_state};
use axum::Router;
use portcullis_config::{AuthConfig, LimitsConfig};
use portcullis_core::drain::Shutdown;
use portcullis_core::{Clock, MasterKey};
use portcullis_store::DynStore;
use std::sync::Arc;

pub use state::AppState;

/// What the control plane is built from.
pub struct AdminParts {
    pub store: DynStore,
    pub clock: Arc<dyn Clock>,
    pub master_key: Arc<MasterKey>,
    pub jwt_secret: Vec<u8>,
    pub auth: AuthConfig,
    pub limits: LimitsConfig,
    pub shutdown: Shutdown,
    pub metrics: Arc<metrics::Metrics>,
    pub data_plane: Arc<portcullis_proxy::DataPlane>,
    /// Re-reads the configuration file; none when the server runs without one.
    pub reload: Option<state::Reloader>,
}

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("JWT secret unusable: {0}")]
    Token(#[from] auth::TokenError),
}

/// Builds the router and the state behind it.
pub fn build(parts: AdminParts) -> Result<(Router, AppState), AdminError> {
    let specs = routes::specs();
    let access = Arc::new(routes::access_table(&specs));
    let state = AppState {
        store: parts.store,
        clock: parts.clock,
        master_key: parts.master_key,
        tokens: Arc::new(TokenSigner::new(&parts.jwt_secret, parts.auth.token_ttl)?),
        login_limiter: Arc::new(LoginLimiter::new(
            parts.auth.login_max_failures_per_user,
            parts.auth.login_max_failures_per_addr,
            parts.auth.login_window,
        )),
        metrics: parts.metrics,
        access,
        shutdown: parts.shutdown,
        data_plane: parts.data_plane,
        reload: parts.reload,
        tickets: Arc::default(),
        scans: Arc::default(),
    };
    let router = routes::router(specs)
        .route_layer(from_fn_with_state(state.clone(), auth::authorize))
        .route_layer(from_fn_with_state(state.clone(), metrics::track))
        .fallback(fallback)
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                ErrorCode::MethodNotAllowed,
                "method not allowed on this route",
            )
        })
        .layer(DefaultBodyLimit::max(parts.limits.admin_body_bytes))
        .layer(from_fn(security_headers))
        .with_state(state.clone());
    Ok((router, state))
}

/// Paths no console page lives under: API clients and SDKs that miss a route get
/// the JSON 404, not the app.
const NOT_CONSOLE: [&str; 5] = ["/api", "/p", "/a2a", "/mcp", "/v1"];

/// Unknown API paths (and anything but GET or HEAD) are a JSON 404; other paths
/// belong to the web console (its files, or its client routes via `index.html`).
async fn fallback(method: axum::http::Method, uri: axum::http::Uri) -> axum::response::Response {
    use axum::response::IntoResponse;
    let path = uri.path();
    let reserved = NOT_CONSOLE.iter().any(|p| {
        path == *p
            || path
                .strip_prefix(p)
                .is_some_and(|rest| rest.starts_with('/'))
    });
    let readable = method == axum::http::Method::GET || method == axum::http::Method::HEAD;
    if reserved || !readable {
        return ApiError::new(ErrorCode::NotFound, "no such route").into_response();
    }
    portcullis_console::serve(&method, &uri)
}

/// API answers are never cached and never sniffed as another type.
async fn security_headers(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let mut response = next.run(req).await;
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}
