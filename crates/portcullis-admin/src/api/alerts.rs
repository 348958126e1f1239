//! Alerts raised from policy findings, and their review: open -> acknowledged ->
//! resolved or false_positive.

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::extract::{ApiJson, ApiQuery};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::Json;
use jiff::Timestamp;
use portcullis_core::alert::{Alert, AlertStatus, Severity};
use portcullis_store::{AlertChange, AlertFilter};
use serde::{Deserialize, Serialize};
use serde_json::json;

const DEFAULT_PAGE: u32 = 50;
const MAX_PAGE: u32 = 500;
const MAX_NOTE: usize = 2000;

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AlertQuery {
    /// open, acknowledged, resolved or false_positive.
    #[param(value_type = Option<String>)]
    pub status: Option<AlertStatus>,
    /// This severity or worse: info, low, medium, high, critical.
    #[param(value_type = Option<String>)]
    pub severity: Option<Severity>,
    /// Proxy id.
    pub proxy: Option<String>,
    /// Rule id.
    pub rule: Option<String>,
    #[param(value_type = Option<String>)]
    pub since: Option<Timestamp>,
    #[param(value_type = Option<String>)]
    pub until: Option<Timestamp>,
    /// Cursor from `next`.
    pub cursor: Option<String>,
    /// 1 to 500, default 50.
    pub limit: Option<u32>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct AlertPage {
    pub alerts: Vec<Alert>,
    /// Cursor for the next (older) page; none on the last one.
    pub next: Option<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertUpdate {
    /// acknowledged, resolved or false_positive.
    pub status: AlertStatus,
    /// Why; at most 2000 characters. Kept when omitted.
    pub note: Option<String>,
}

fn too_long(field: &str, value: &Option<String>, max: usize) -> ApiResult<()> {
    match value {
        Some(v) if v.len() > max => Err(ApiError::bad_request(format!(
            "{field}: at most {max} bytes"
        ))),
        _ => Ok(()),
    }
}

/// Alerts, newest first.
#[utoipa::path(get, path = "/api/v1/alerts", tag = "alerts", params(AlertQuery), responses((status = 200, body = AlertPage)))]
pub async fn list(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<AlertQuery>,
) -> ApiResult<Json<AlertPage>> {
    let limit = q.limit.unwrap_or(DEFAULT_PAGE);
    if limit == 0 || limit > MAX_PAGE {
        return Err(ApiError::bad_request(format!(
            "limit: must be between 1 and {MAX_PAGE}"
        )));
    }
    for (field, value) in [
        ("proxy", &q.proxy),
        ("rule", &q.rule),
        ("cursor", &q.cursor),
    ] {
        too_long(field, value, 128)?;
    }
    let filter = AlertFilter {
        status: q.status,
        min_severity: q.severity,
        proxy_id: q.proxy,
        rule: q.rule,
        since: q.since,
        until: q.until,
        before_id: q.cursor,
        limit,
    };
    let alerts = state.store.list_alerts(&filter).await?;
    let next = (alerts.len() == limit as usize)
        .then(|| alerts.last().map(|a| a.id.clone()))
        .flatten();
    Ok(Json(AlertPage { alerts, next }))
}

/// One alert.
#[utoipa::path(get, path = "/api/v1/alerts/{id}", tag = "alerts", params(("id" = String, Path)),
    responses((status = 200, body = Alert), (status = 404, body = crate::error::ErrorBody)))]
pub async fn get_one(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Alert>> {
    state
        .store
        .alert(&id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("alert"))
}

/// Moves an alert along its workflow; a closed alert stays closed (409).
#[utoipa::path(patch, path = "/api/v1/alerts/{id}", tag = "alerts", params(("id" = String, Path)), request_body = AlertUpdate,
    responses((status = 200, body = Alert), (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<AlertUpdate>,
) -> ApiResult<Json<Alert>> {
    too_long("note", &req.note, MAX_NOTE)?;
    let current = state
        .store
        .alert(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("alert"))?;
    current
        .status
        .transition(req.status)
        .map_err(|message| ApiError::new(ErrorCode::Conflict, message))?;
    let change = AlertChange {
        from: current.status,
        to: req.status,
        by: caller.actor(),
        note: req.note,
    };
    let alert = state
        .store
        .change_alert_status(&id, change, state.clock.now())
        .await?
        .ok_or_else(|| ApiError::not_found("alert"))?;
    state
        .audit(
            caller
                .draft("alert.status", format!("alert:{id}"))
                .details(json!({"from": current.status, "to": alert.status, "rule": alert.rule})),
        )
        .await;
    Ok(Json(alert))
}
