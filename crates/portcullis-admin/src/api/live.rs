//! The console's live feed: `GET /api/v1/ws`, a WebSocket pushing
//! `{"type": "event" | "alert" | "proxy_status", "data": ...}` as things happen.
//!
//! Browsers cannot put an `Authorization` header on a WebSocket, so the console
//! first trades its bearer token for a ticket (`POST /api/v1/ws/ticket`, an
//! ordinary authenticated route): single use, valid 30 seconds, bound to the
//! caller. The upgrade presents the ticket in the query string and, from a
//! browser, must come from the admin origin itself (`Origin` host = `Host`).
//! A user's session is checked again at the upgrade and every 30 seconds: a
//! logout or a disabled account closes the socket.

use crate::auth::{Caller, CallerKind};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::extract::ApiQuery;
use crate::state::AppState;
use axum::extract::ws::{
    rejection::WebSocketUpgradeRejection, Message, WebSocket, WebSocketUpgrade,
};
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Json;
use portcullis_core::Role;
use portcullis_proxy::events::LiveMessage;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::sync::broadcast::error::RecvError;

/// How long a ticket can wait for its upgrade.
pub const TICKET_TTL: Duration = Duration::from_secs(30);
/// Tickets outstanding at once; past it new ones are refused until some expire.
const MAX_TICKETS: usize = 1024;
/// How often an open socket re-checks its session.
const RECHECK_EVERY: Duration = Duration::from_secs(30);

struct Ticket {
    caller: Caller,
    expires: Instant,
}

/// Outstanding WebSocket tickets, bounded.
#[derive(Default)]
pub struct Tickets(Mutex<HashMap<String, Ticket>>);

impl Tickets {
    fn issue(&self, caller: Caller, now: Instant) -> Option<String> {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, t| t.expires > now);
        if map.len() >= MAX_TICKETS {
            return None;
        }
        let ticket = portcullis_core::password::generate();
        map.insert(
            ticket.clone(),
            Ticket {
                caller,
                expires: now + TICKET_TTL,
            },
        );
        Some(ticket)
    }

    /// The ticket's caller, once: a ticket is removed when presented.
    fn redeem(&self, ticket: &str, now: Instant) -> Option<Caller> {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(ticket)
            .filter(|t| t.expires > now)
            .map(|t| t.caller)
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct WsTicket {
    /// Present it as `GET /api/v1/ws?ticket=...`; single use.
    pub ticket: String,
    pub expires_in_seconds: u64,
}

/// A single-use ticket for opening the live WebSocket.
#[utoipa::path(post, path = "/api/v1/ws/ticket", tag = "live",
    responses((status = 200, body = WsTicket), (status = 503, body = crate::error::ErrorBody)))]
pub async fn ticket(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<WsTicket>> {
    let Some(ticket) = state.tickets.issue(caller, Instant::now()) else {
        return Err(ApiError::new(
            ErrorCode::Unavailable,
            "too many pending WebSocket tickets; try again shortly",
        ));
    };
    Ok(Json(WsTicket {
        ticket,
        expires_in_seconds: TICKET_TTL.as_secs(),
    }))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct WsQuery {
    /// From `POST /api/v1/ws/ticket`.
    pub ticket: String,
}

/// A browser's WebSocket must come from the admin origin: `Origin`'s host and port
/// equal `Host`. Clients that send no `Origin` (not browsers) hold a ticket only
/// a bearer token could get, so they pass.
pub(crate) fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let (Ok(origin), Some(Ok(host))) = (
        origin.to_str(),
        headers.get(header::HOST).map(|h| h.to_str()),
    ) else {
        return false;
    };
    let authority = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    authority.is_some_and(|a| a.eq_ignore_ascii_case(host))
}

/// The live feed of events, alerts and proxy status changes.
#[utoipa::path(get, path = "/api/v1/ws", tag = "live", params(WsQuery),
    description = "WebSocket. Each text message is {\"type\": \"event\" | \"alert\" | \"proxy_status\" | \"lagged\", \"data\": ...}; `lagged` says how many messages a slow client lost.",
    responses((status = 101, description = "Switching to the WebSocket protocol"),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody)))]
pub async fn socket(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<WsQuery>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    if !same_origin(&headers) {
        return Err(ApiError::forbidden(
            "WebSocket origin does not match the admin host",
        ));
    }
    let Some(caller) = state.tickets.redeem(&q.ticket, Instant::now()) else {
        return Err(ApiError::unauthenticated(
            "invalid, used or expired WebSocket ticket",
        ));
    };
    if !caller.role.allows(Role::ReadOnly) || !still_valid(&state, &caller).await? {
        return Err(ApiError::unauthenticated("session ended; log in again"));
    }
    let upgrade = upgrade.map_err(|r| ApiError::bad_request(r.body_text()))?;
    Ok(upgrade
        .on_upgrade(move |socket| feed(state, caller, socket))
        .into_response())
}

/// A user's session is still active and the user still enabled.
async fn still_valid(state: &AppState, caller: &Caller) -> ApiResult<bool> {
    let CallerKind::User { id, session_id, .. } = &caller.kind else {
        return Ok(true);
    };
    let now = state.clock.now();
    if !state.store.session_active(session_id, now).await? {
        return Ok(false);
    }
    Ok(state.store.user(id).await?.is_some_and(|u| !u.disabled))
}

fn encode(message: &LiveMessage) -> Option<Message> {
    serde_json::to_string(message)
        .ok()
        .map(|text| Message::Text(text.into()))
}

async fn feed(state: AppState, caller: Caller, mut socket: WebSocket) {
    let mut live = state.data_plane.relay().events.live().subscribe();
    let mut recheck = tokio::time::interval(RECHECK_EVERY);
    recheck.tick().await;
    loop {
        let outgoing = tokio::select! {
            received = live.recv() => match received {
                Ok(message) => encode(&message),
                Err(RecvError::Lagged(lost)) => Some(Message::Text(
                    serde_json::json!({"type": "lagged", "data": {"lost": lost}}).to_string().into(),
                )),
                Err(RecvError::Closed) => break,
            },
            incoming = socket.recv() => match incoming {
                // The console sends nothing; pings are answered by the library.
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => None,
            },
            _ = recheck.tick() => {
                if !matches!(still_valid(&state, &caller).await, Ok(true)) {
                    break;
                }
                None
            }
            _ = state.shutdown.triggered() => break,
        };
        if let Some(message) = outgoing {
            if socket.send(message).await.is_err() {
                return;
            }
        }
    }
    let _ = socket.send(Message::Close(None)).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(origin: Option<&'static str>, host: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static(host));
        if let Some(o) = origin {
            h.insert(header::ORIGIN, HeaderValue::from_static(o));
        }
        h
    }

    #[test]
    fn origin_must_be_the_admin_host() {
        assert!(same_origin(&headers(
            Some("http://127.0.0.1:8080"),
            "127.0.0.1:8080"
        )));
        assert!(same_origin(&headers(
            Some("https://gw.example"),
            "gw.example"
        )));
        assert!(same_origin(&headers(None, "127.0.0.1:8080")));
        assert!(!same_origin(&headers(
            Some("http://evil.example"),
            "127.0.0.1:8080"
        )));
        assert!(!same_origin(&headers(
            Some("http://127.0.0.1:9999"),
            "127.0.0.1:8080"
        )));
        assert!(!same_origin(&headers(Some("null"), "127.0.0.1:8080")));
    }
}
