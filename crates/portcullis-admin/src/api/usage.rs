//! Usage for dashboards: requests, tokens and spend grouped by group, key,
//! model, proxy and day or hour.

use crate::error::{ApiError, ApiResult};
use crate::extract::ApiQuery;
use crate::state::AppState;
use axum::extract::State;
use axum::Json;
use jiff::Timestamp;
use portcullis_store::{UsageDim, UsageQuery, UsageRow};
use serde::{Deserialize, Serialize};

const DEFAULT_ROWS: u32 = 1000;
const MAX_ROWS: u32 = 10_000;

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct UsageParams {
    /// Comma-separated: group, key, model, proxy, and day or hour (UTC).
    /// Without it, one row totals everything that matches.
    pub group_by: Option<String>,
    #[param(value_type = Option<String>)]
    pub since: Option<Timestamp>,
    #[param(value_type = Option<String>)]
    pub until: Option<Timestamp>,
    /// Group id.
    pub group: Option<String>,
    /// Key id.
    pub key: Option<String>,
    /// Proxy id.
    pub proxy: Option<String>,
    pub model: Option<String>,
    /// 1 to 10000 rows, default 1000.
    pub limit: Option<u32>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct UsageReport {
    /// Newest bucket first, then highest spend.
    pub rows: Vec<UsageRow>,
}

fn dims(text: Option<&str>) -> ApiResult<Vec<UsageDim>> {
    let mut dims = Vec::new();
    for part in text
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        let dim = UsageDim::parse(part).ok_or_else(|| {
            ApiError::bad_request(format!(
                "group_by: {part:?} is not one of group, key, model, proxy, day, hour"
            ))
        })?;
        if !dims.contains(&dim) {
            dims.push(dim);
        }
    }
    if dims.contains(&UsageDim::Day) && dims.contains(&UsageDim::Hour) {
        return Err(ApiError::bad_request(
            "group_by: day and hour cannot be combined",
        ));
    }
    Ok(dims)
}

/// Aggregated usage and spend (from the events' recorded costs).
#[utoipa::path(get, path = "/api/v1/usage", tag = "usage", params(UsageParams), responses((status = 200, body = UsageReport)))]
pub async fn report(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<UsageParams>,
) -> ApiResult<Json<UsageReport>> {
    let limit = q.limit.unwrap_or(DEFAULT_ROWS);
    if limit == 0 || limit > MAX_ROWS {
        return Err(ApiError::bad_request(format!(
            "limit: must be between 1 and {MAX_ROWS}"
        )));
    }
    for (field, value) in [
        ("group", &q.group),
        ("key", &q.key),
        ("proxy", &q.proxy),
        ("model", &q.model),
    ] {
        if value.as_ref().is_some_and(|v| v.len() > 128) {
            return Err(ApiError::bad_request(format!("{field}: at most 128 bytes")));
        }
    }
    let query = UsageQuery {
        group_by: dims(q.group_by.as_deref())?,
        since: q.since,
        until: q.until,
        group_id: q.group,
        key_id: q.key,
        proxy_id: q.proxy,
        model: q.model,
        limit,
    };
    Ok(Json(UsageReport {
        rows: state.store.usage(&query).await?,
    }))
}
