//! Proxy instances: define, change, start, stop, and see their status.

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::extract::ApiJson;
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use portcullis_core::proxy::{ManagedBy, Proxy, ProxySpec, ProxyStatus};
use portcullis_core::role::Role;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

#[derive(Serialize, utoipa::ToSchema)]
pub struct ProxyView {
    #[serde(flatten)]
    pub proxy: Proxy,
    pub status: ProxyStatus,
}

fn view(state: &AppState, mut proxy: Proxy) -> ProxyView {
    let status = state.data_plane.status(&proxy);
    // Environment values of stdio servers may be secrets: write-only.
    for value in proxy.spec.upstream_env.values_mut() {
        *value = REDACTED.into();
    }
    ProxyView { proxy, status }
}

/// What the API shows instead of an `upstream_env` value.
const REDACTED: &str = "<redacted>";

/// Running a program on the gateway host is an admin power: setting or changing
/// a stdio server's command, arguments or environment needs the admin role.
fn may_run(caller: &Caller, before: Option<&ProxySpec>, after: &ProxySpec) -> ApiResult<()> {
    let same = before.is_some_and(|b| {
        b.upstream_command == after.upstream_command
            && b.upstream_args == after.upstream_args
            && b.upstream_env == after.upstream_env
    });
    let touches = after.runs_command() || before.is_some_and(ProxySpec::runs_command);
    if touches && !same && caller.role != Role::Admin {
        return Err(ApiError::forbidden(
            "upstream_command: only admins may set or change the program a proxy runs",
        ));
    }
    Ok(())
}

async fn load(state: &AppState, id: &str) -> ApiResult<Proxy> {
    state
        .store
        .proxy(id)
        .await?
        .ok_or_else(|| ApiError::not_found("proxy"))
}

async fn check(state: &AppState, spec: &ProxySpec) -> ApiResult<()> {
    let mut problems = spec.problems();
    if let Err(mut found) = super::policies::resolve_for_proxy(state, &spec.policies).await? {
        problems.append(&mut found);
    }
    if let Some(id) = &spec.credential_id {
        if state.store.credential(id).await?.is_none() {
            problems.push("credential_id: no such credential".into());
        }
    }
    if !spec.mcp_servers.is_empty() {
        if let Err(problem) = portcullis_proxy::mcp::federation::rules_of(spec) {
            problems.push(problem);
        }
        for (i, server) in spec.mcp_servers.iter().enumerate() {
            if let Some(id) = &server.credential_id {
                if state.store.credential(id).await?.is_none() {
                    problems.push(format!(
                        "mcp_servers[{i}].credential_id: no such credential"
                    ));
                }
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ApiError::bad_request(problems.join("; ")))
    }
}

fn file_managed(proxy: &Proxy) -> ApiResult<()> {
    match proxy.managed_by {
        ManagedBy::Api => Ok(()),
        ManagedBy::File => Err(ApiError::new(
            ErrorCode::Conflict,
            "this proxy is declared in the configuration file; change it there and reload",
        )),
    }
}

fn start_failed(e: portcullis_proxy::StartError) -> ApiError {
    ApiError::new(
        ErrorCode::Conflict,
        format!("the proxy could not start: {e}"),
    )
}

/// Every proxy with its status.
#[utoipa::path(get, path = "/api/v1/proxies", tag = "proxies", responses((status = 200, body = [ProxyView])))]
pub async fn list(State(state): State<AppState>) -> ApiResult<Json<Vec<ProxyView>>> {
    let proxies = state.store.list_proxies().await?;
    Ok(Json(proxies.into_iter().map(|p| view(&state, p)).collect()))
}

/// Defines a proxy; starts it at once when `auto_start` is set.
#[utoipa::path(post, path = "/api/v1/proxies", tag = "proxies", request_body = ProxySpec,
    responses((status = 201, body = ProxyView), (status = 400, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(spec): ApiJson<ProxySpec>,
) -> ApiResult<(StatusCode, Json<ProxyView>)> {
    may_run(&caller, None, &spec)?;
    let spec = spec.normalized();
    check(&state, &spec).await?;
    let proxy = state
        .store
        .create_proxy(&spec, ManagedBy::Api, state.clock.now())
        .await?;
    state.audit(caller.draft("proxy.create", format!("proxy:{}", proxy.spec.name)).details(json!({"id": proxy.id, "kind": proxy.spec.kind, "upstream_url": proxy.spec.upstream_url, "upstream_command": proxy.spec.upstream_command, "upstream_args": proxy.spec.upstream_args, "upstream_env": proxy.spec.upstream_env.keys().collect::<Vec<_>>(), "provider": proxy.spec.provider}))).await;
    if proxy.spec.auto_start {
        // A failure to start is visible in the status; the definition stands.
        let _ = state.data_plane.start(&proxy).await;
    }
    Ok((StatusCode::CREATED, Json(view(&state, proxy))))
}

/// One proxy with its status.
#[utoipa::path(get, path = "/api/v1/proxies/{id}", tag = "proxies", params(("id" = String, Path)), responses((status = 200, body = ProxyView), (status = 404, body = crate::error::ErrorBody)))]
pub async fn get_one(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<ProxyView>> {
    let proxy = load(&state, &id).await?;
    Ok(Json(view(&state, proxy)))
}

/// Changes some fields of a proxy; a running proxy restarts with them.
#[utoipa::path(patch, path = "/api/v1/proxies/{id}", tag = "proxies", params(("id" = String, Path)), request_body = Object,
    responses((status = 200, body = ProxyView), (status = 400, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(patch): ApiJson<serde_json::Map<String, Value>>,
) -> ApiResult<Json<ProxyView>> {
    let current = load(&state, &id).await?;
    file_managed(&current)?;
    let mut merged = serde_json::to_value(&current.spec).map_err(|_| ApiError::internal())?;
    if let Some(fields) = merged.as_object_mut() {
        for (k, v) in &patch {
            fields.insert(k.clone(), v.clone());
        }
    }
    let mut spec: ProxySpec = serde_path_to_error::deserialize(merged)
        .map_err(|e| ApiError::bad_request(format!("{}: {}", e.path(), e.inner())))?;
    // A value shown redacted and sent back keeps the stored one.
    for (name, value) in spec.upstream_env.iter_mut() {
        if value == REDACTED {
            *value = current
                .spec
                .upstream_env
                .get(name)
                .cloned()
                .ok_or_else(|| {
                    ApiError::bad_request(format!("upstream_env.{name}: give the value"))
                })?;
        }
    }
    may_run(&caller, Some(&current.spec), &spec)?;
    let spec = spec.normalized();
    check(&state, &spec).await?;
    let changed = json!({"changed": patch.keys().collect::<Vec<_>>()});
    let proxy = replace_spec(&state, &caller, &current, spec, "proxy.update", changed).await?;
    Ok(Json(view(&state, proxy)))
}

/// Stores a proxy's new spec, audits it, and restarts the proxy if it was running
/// (a failure to start shows in its status).
async fn replace_spec(
    state: &AppState,
    caller: &Caller,
    current: &Proxy,
    spec: ProxySpec,
    action: &str,
    details: serde_json::Value,
) -> ApiResult<Proxy> {
    let was_running = state.data_plane.lookup(&current.spec.name).is_some();
    let proxy = state
        .store
        .update_proxy(&current.id, &spec, state.clock.now())
        .await?
        .ok_or_else(|| ApiError::not_found("proxy"))?;
    state
        .audit(
            caller
                .draft(action, format!("proxy:{}", proxy.spec.name))
                .details(details),
        )
        .await;
    if was_running {
        state.data_plane.stop(current).await;
        let _ = state.data_plane.start(&proxy).await;
    }
    Ok(proxy)
}

/// Stops and deletes a proxy.
#[utoipa::path(delete, path = "/api/v1/proxies/{id}", tag = "proxies", params(("id" = String, Path)), responses((status = 204), (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody)))]
pub async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let proxy = load(&state, &id).await?;
    file_managed(&proxy)?;
    state.data_plane.forget(&proxy).await;
    state.store.delete_proxy(&id).await?;
    // Its system prompt bindings went with it.
    let _ = state.data_plane.refresh_prompts().await;
    state
        .audit(caller.draft("proxy.delete", format!("proxy:{}", proxy.spec.name)))
        .await;
    Ok(StatusCode::NO_CONTENT)
}

/// Starts a proxy. A port in use or an unusable credential is a 409 naming it.
#[utoipa::path(post, path = "/api/v1/proxies/{id}/start", tag = "proxies", params(("id" = String, Path)), responses((status = 200, body = ProxyStatus), (status = 409, body = crate::error::ErrorBody)))]
pub async fn start(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<ProxyStatus>> {
    let proxy = load(&state, &id).await?;
    let status = state.data_plane.start(&proxy).await.map_err(start_failed)?;
    state
        .audit(caller.draft("proxy.start", format!("proxy:{}", proxy.spec.name)))
        .await;
    Ok(Json(status))
}

/// Stops a proxy; in-flight exchanges may finish.
#[utoipa::path(post, path = "/api/v1/proxies/{id}/stop", tag = "proxies", params(("id" = String, Path)), responses((status = 200, body = ProxyStatus)))]
pub async fn stop(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<ProxyStatus>> {
    let proxy = load(&state, &id).await?;
    let status = state.data_plane.stop(&proxy).await;
    state
        .audit(caller.draft("proxy.stop", format!("proxy:{}", proxy.spec.name)))
        .await;
    Ok(Json(status))
}

/// Stops and starts a proxy (to pick up a changed credential, for instance).
#[utoipa::path(post, path = "/api/v1/proxies/{id}/restart", tag = "proxies", params(("id" = String, Path)), responses((status = 200, body = ProxyStatus), (status = 409, body = crate::error::ErrorBody)))]
pub async fn restart(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<ProxyStatus>> {
    let proxy = load(&state, &id).await?;
    let status = state
        .data_plane
        .restart(&proxy)
        .await
        .map_err(start_failed)?;
    state
        .audit(caller.draft("proxy.restart", format!("proxy:{}", proxy.spec.name)))
        .await;
    Ok(Json(status))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyAssignment {
    /// Built-in or user pack names, applied together.
    pub policies: Vec<String>,
}

/// Sets the policies of a proxy; a running proxy restarts with them. Unknown names
/// and packs that cannot run together are a 422 naming them.
#[utoipa::path(put, path = "/api/v1/proxies/{id}/policies", tag = "proxies", params(("id" = String, Path)), request_body = PolicyAssignment,
    responses((status = 200, body = ProxyView), (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
pub async fn set_policies(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<PolicyAssignment>,
) -> ApiResult<Json<ProxyView>> {
    let current = load(&state, &id).await?;
    file_managed(&current)?;
    if let Err(problems) = super::policies::resolve_for_proxy(&state, &req.policies).await? {
        return Err(ApiError::unprocessable(problems));
    }
    let spec = ProxySpec {
        policies: req.policies,
        ..current.spec.clone()
    };
    let details = json!({"from": current.spec.policies, "to": spec.policies});
    let proxy = replace_spec(&state, &caller, &current, spec, "proxy.policies", details).await?;
    Ok(Json(view(&state, proxy)))
}
