//! Proxied exchanges, filtered and paginated.

use crate::error::{ApiError, ApiResult};
use crate::extract::ApiQuery;
use crate::state::AppState;
use axum::extract::State;
use axum::Json;
use jiff::Timestamp;
use portcullis_core::proxy::ProxyEvent;
use portcullis_store::EventFilter;
use serde::{Deserialize, Serialize};

const MAX_PAGE: u32 = 1000;

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct EventQuery {
    /// Proxy id.
    pub proxy: Option<String>,
    pub group_id: Option<String>,
    pub key_id: Option<String>,
    pub model: Option<String>,
    /// HTTP status returned to the client.
    pub status: Option<u16>,
    /// allowed, blocked or error.
    pub decision: Option<String>,
    #[param(value_type = Option<String>)]
    pub since: Option<Timestamp>,
    #[param(value_type = Option<String>)]
    pub until: Option<Timestamp>,
    /// Cursor from `next_before_id`.
    pub before_id: Option<String>,
    /// 1 to 1000, default 100.
    pub limit: Option<u32>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct EventPage {
    pub events: Vec<ProxyEvent>,
    pub next_before_id: Option<String>,
}

/// Events, newest first.
#[utoipa::path(get, path = "/api/v1/events", tag = "events", params(EventQuery), responses((status = 200, body = EventPage)))]
pub async fn list(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<EventQuery>,
) -> ApiResult<Json<EventPage>> {
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > MAX_PAGE {
        return Err(ApiError::bad_request(format!(
            "limit: must be between 1 and {MAX_PAGE}"
        )));
    }
    if let Some(d) = q.decision.as_deref() {
        if !matches!(d, "allowed" | "blocked" | "error") {
            return Err(ApiError::bad_request(
                "decision: must be allowed, blocked or error",
            ));
        }
    }
    let filter = EventFilter {
        proxy_id: q.proxy,
        group_id: q.group_id,
        key_id: q.key_id,
        model: q.model,
        status: q.status,
        decision: q.decision,
        since: q.since,
        until: q.until,
        before_id: q.before_id,
        limit,
    };
    let events = state.store.list_events(&filter).await?;
    let next_before_id = (events.len() == limit as usize)
        .then(|| events.last().map(|e| e.id.clone()))
        .flatten();
    Ok(Json(EventPage {
        events,
        next_before_id,
    }))
}
