//! The legacy HTTP+SSE transport (protocol 2024-11-05) towards clients: older
//! clients open a stream with `GET /sse`, are told where to POST, and read every
//! answer on that stream.
//!
//! ```text
//! GET /sse ── key auth ── session: unguessable id, bound to the proxy and key,
//!   │                     a bounded queue (64 events) feeding the stream
//!   └─ event: endpoint   data: messages?sessionId=<id>   (relative: /sse's sibling)
//! POST /messages?sessionId=<id> ── same key ── the message goes through the
//!   │   Streamable HTTP path (McpRelay::post: every check, event and policy),
//!   │   carrying the gateway's Mcp-Session-Id and version from the session
//!   └─ 202; the answer (JSON, or each event of an SSE answer) is put on the stream
//! ```
//!
//! Sessions live in this replica's memory (at most 10,000): the transport needs
//! the POSTs to reach the replica that holds the stream, as for any server of it.
//! A session ends when its client closes the stream.

use super::{http_error, Era, McpRelay};
use crate::channel_body::ChannelBody;
use crate::runtime::ProxyRuntime;
use axum::body::Body;
use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use portcullis_protocol::mcp::{jsonrpc, SESSION_HEADER, SESSION_VERSIONS, VERSION_HEADER};
use portcullis_protocol::sse::{SseFrame, SseFramer};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// Sessions held at once by this replica.
const MAX_SESSIONS: usize = 10_000;
/// Events waiting for a slow client; past this a POST waits.
const QUEUE: usize = 64;
/// A comment on an idle stream, so proxies in between keep it open.
const KEEPALIVE: Duration = Duration::from_secs(15);

struct LegacySession {
    proxy_id: String,
    subject: Option<String>,
    events: mpsc::Sender<Bytes>,
    /// The gateway's `Mcp-Session-Id` and the negotiated version, once the
    /// client's `initialize` went through.
    state: Mutex<(Option<HeaderValue>, Option<HeaderValue>)>,
}

#[derive(Default)]
pub(crate) struct LegacySessions {
    open: Mutex<HashMap<String, Arc<LegacySession>>>,
}

impl LegacySessions {
    fn get(&self, id: &str) -> Option<Arc<LegacySession>> {
        lock(&self.open).get(id).cloned()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn message_event(data: &str) -> Bytes {
    let mut out = String::with_capacity(data.len() + 24);
    out.push_str("event: message\n");
    for line in data.lines() {
        out.push_str("data: ");
        out.push_str(line);
        out.push('\n');
    }
    out.push('\n');
    Bytes::from(out)
}

impl McpRelay {
    /// `GET /sse`: a new legacy session and its stream.
    pub(super) async fn open_legacy(
        self: &Arc<Self>,
        proxy: Arc<ProxyRuntime>,
        req: Request<Body>,
    ) -> Response<Body> {
        let identity = match self.authenticate(&proxy, req.headers()).await {
            Ok(identity) => identity,
            Err(r) => return r.into_response(),
        };
        let id = portcullis_core::id::unguessable();
        let (events, body) = ChannelBody::channel(QUEUE);
        let session = Arc::new(LegacySession {
            proxy_id: proxy.id.clone(),
            subject: identity.map(|i| i.key_id.clone()),
            events: events.clone(),
            state: Mutex::new((None, None)),
        });
        {
            let mut open = lock(&self.legacy.open);
            if open.len() >= MAX_SESSIONS {
                return http_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    Value::Null,
                    jsonrpc::INVALID_REQUEST,
                    "too many legacy SSE sessions on this gateway; use Streamable HTTP at /mcp",
                );
            }
            open.insert(id.clone(), session);
        }
        let endpoint = Bytes::from(format!(
            "event: endpoint\ndata: messages?sessionId={id}\n\n"
        ));
        // Fits: the queue is empty.
        let _ = events.try_send(endpoint);
        let relay = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(KEEPALIVE);
            tick.tick().await;
            loop {
                tokio::select! {
                    _ = events.closed() => break,
                    _ = tick.tick() => {
                        if events.send(Bytes::from_static(b": keepalive\n\n")).await.is_err() {
                            break;
                        }
                    }
                }
            }
            lock(&relay.legacy.open).remove(&id);
        });
        let mut response = Response::new(Body::new(body));
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        response
    }

    /// `POST /messages?sessionId=`: one client message, checked and relayed
    /// like a Streamable HTTP POST; its answer goes on the session's stream.
    pub(super) async fn legacy_post(
        self: &Arc<Self>,
        proxy: Arc<ProxyRuntime>,
        req: Request<Body>,
    ) -> Response<Body> {
        let unknown = || {
            http_error(
                StatusCode::NOT_FOUND,
                Value::Null,
                jsonrpc::INVALID_REQUEST,
                "session not found: open a new one with GET /sse",
            )
        };
        let Some(session) = session_param(req.uri().query())
            .and_then(|id| self.legacy.get(id))
            .filter(|s| s.proxy_id == proxy.id)
        else {
            return unknown();
        };
        let identity = match self.authenticate(&proxy, req.headers()).await {
            Ok(identity) => identity,
            Err(r) => return r.into_response(),
        };
        if identity.as_ref().map(|i| &i.key_id) != session.subject.as_ref() {
            tracing::warn!(proxy = %proxy.name, "legacy MCP session presented by another key");
            return unknown();
        }
        let (mut parts, body) = req.into_parts();
        parts.headers.remove(SESSION_HEADER);
        parts.headers.remove(VERSION_HEADER);
        {
            let (mcp_session, version) = &*lock(&session.state);
            if let Some(v) = mcp_session {
                parts.headers.insert(SESSION_HEADER, v.clone());
            }
            if let Some(v) = version {
                parts.headers.insert(VERSION_HEADER, v.clone());
            }
        }
        parts.headers.insert(
            header::ACCEPT,
            HeaderValue::from_static("application/json, text/event-stream"),
        );
        let answer = self
            .post(
                proxy.clone(),
                Request::from_parts(parts, body),
                Some(Era::Sessions),
            )
            .await;
        let status = answer.status();
        if !status.is_success() {
            // Refused before the server (bad JSON, too large, unknown session):
            // the POST itself says so.
            return answer;
        }
        let (parts, body) = answer.into_parts();
        if let Some(issued) = parts.headers.get(SESSION_HEADER) {
            lock(&session.state).0 = Some(issued.clone());
        }
        let event_stream = parts
            .headers
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
        if status != StatusCode::ACCEPTED {
            let limit = proxy.max_body_bytes;
            tokio::spawn(forward(session, body, event_stream, limit));
        }
        let mut accepted = Response::new(Body::from("Accepted"));
        *accepted.status_mut() = StatusCode::ACCEPTED;
        accepted
    }
}

fn session_param(query: Option<&str>) -> Option<&str> {
    query?
        .split('&')
        .find_map(|pair| pair.strip_prefix("sessionId="))
        .filter(|id| !id.is_empty() && id.len() <= 64)
}

/// Puts one answer on the session's stream: a JSON body as one event, an SSE
/// body event by event. Learns the negotiated version from an `initialize`
/// result.
async fn forward(session: Arc<LegacySession>, mut body: Body, event_stream: bool, limit: usize) {
    let mut framer = SseFramer::new(limit);
    let mut frames: Vec<SseFrame> = Vec::new();
    let mut whole = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let Ok(Ok(data)) = frame.map(|f| f.into_data()) else {
            continue;
        };
        if !event_stream {
            if whole.len() + data.len() > limit {
                return;
            }
            whole.extend_from_slice(&data);
            continue;
        }
        if framer.push(&data, &mut frames).is_err() {
            return;
        }
        for frame in frames.drain(..) {
            if !frame.data.trim().is_empty() && !deliver(&session, &frame.data).await {
                return;
            }
        }
    }
    if let Some(frame) = framer.finish() {
        if !frame.data.trim().is_empty() {
            deliver(&session, &frame.data).await;
        }
    }
    if !whole.is_empty() {
        if let Ok(text) = std::str::from_utf8(&whole) {
            deliver(&session, text).await;
        }
    }
}

/// One JSON-RPC message onto the stream; `false` when the client is gone.
async fn deliver(session: &LegacySession, data: &str) -> bool {
    if let Ok(message) = serde_json::from_str::<Value>(data) {
        let negotiated = message
            .pointer("/result/protocolVersion")
            .and_then(Value::as_str)
            .filter(|v| SESSION_VERSIONS.contains(v));
        if let Some(v) = negotiated.and_then(|v| HeaderValue::from_str(v).ok()) {
            lock(&session.state).1 = Some(v);
        }
    }
    session.events.send(message_event(data)).await.is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_id_comes_from_the_query() {
        assert_eq!(session_param(Some("sessionId=abc")), Some("abc"));
        assert_eq!(session_param(Some("x=1&sessionId=abc")), Some("abc"));
        assert_eq!(session_param(Some("sessionId=")), None);
        assert_eq!(session_param(None), None);
        let long = format!("sessionId={}", "a".repeat(65));
        assert_eq!(session_param(Some(&long)), None);
    }

    #[test]
    fn events_carry_every_line_of_their_data() {
        assert_eq!(
            &message_event("{\"a\":1}")[..],
            b"event: message\ndata: {\"a\":1}\n\n"
        );
        assert_eq!(
            &message_event("a\nb")[..],
            b"event: message\ndata: a\ndata: b\n\n"
        );
    }
}
