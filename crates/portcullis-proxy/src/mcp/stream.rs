//! An upstream SSE stream relayed event by event. A task reads the upstream
//! (bounded per event by the SSE framer), checks the event holding the response
//! to the client's request (which may need the store), and hands events to the
//! client's body through a small bounded channel: nothing waits for the whole
//! stream, and a slow client slows the upstream read instead of filling memory.

use super::call::McpCall;
use super::relist::{is_tools_list_changed, UpstreamSession};
use super::{finish_call, is_response_to, Expected, McpRelay, Translation};
pub use crate::channel_body::ChannelBody;
use crate::runtime::ProxyRuntime;
use bytes::Bytes;
use http_body_util::BodyExt;
use portcullis_core::proxy::Decision;
use portcullis_protocol::mcp::jsonrpc::{self, Kind};
use portcullis_protocol::mcp::sse;
use portcullis_protocol::sse::{SseFrame, SseFramer};
use serde_json::Value;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Events in flight between the upstream reader and the client.
const CHANNEL: usize = 16;

/// Starts relaying. `request`: the POST's request and its event; none for the
/// GET stream, on which responses are dropped (the gateway cannot tell which
/// request they answer, so it cannot check them). `upstream`: the server's
/// session, re-listed when it announces a tools change ([`super::relist`]).
pub(crate) fn spawn(
    relay: Arc<McpRelay>,
    proxy: Arc<ProxyRuntime>,
    incoming: hyper::body::Incoming,
    request: (Option<Expected>, Option<McpCall>),
    upstream: Option<UpstreamSession>,
) -> ChannelBody {
    let (tx, body) = ChannelBody::channel(CHANNEL);
    let (expected, call) = request;
    tokio::spawn(pump(relay, proxy, incoming, expected, call, upstream, tx));
    body
}

enum End {
    Done,
    ClientGone,
    Idle,
    Broken(&'static str),
}

async fn pump(
    relay: Arc<McpRelay>,
    proxy: Arc<ProxyRuntime>,
    mut incoming: hyper::body::Incoming,
    expected: Option<Expected>,
    mut call: Option<McpCall>,
    upstream: Option<UpstreamSession>,
    tx: mpsc::Sender<Bytes>,
) {
    let mut framer = SseFramer::new(proxy.max_body_bytes);
    let mut frames: Vec<SseFrame> = Vec::new();
    let mut answered = false;
    // The client holds an event id it can resume this stream with.
    let mut resumable = false;
    // The POST stream waits for one response; the GET stream may be quiet for long.
    let idle = expected.is_some().then_some(proxy.idle_timeout);
    let end = loop {
        let next = async {
            match idle {
                Some(limit) => tokio::time::timeout(limit, incoming.frame()).await.ok(),
                None => Some(incoming.frame().await),
            }
        };
        let next = tokio::select! {
            n = next => n,
            _ = tx.closed() => break End::ClientGone,
        };
        let mut ended = false;
        let chunk = match next {
            None => break End::Idle,
            Some(None) => {
                ended = true;
                if let Some(frame) = framer.finish() {
                    frames.push(frame);
                }
                Bytes::new()
            }
            Some(Some(Err(_))) => break End::Broken("the upstream connection broke mid-stream"),
            Some(Some(Ok(frame))) => match frame.into_data() {
                Ok(data) => data,
                Err(_) => continue,
            },
        };
        if !chunk.is_empty() && framer.push(&chunk, &mut frames).is_err() {
            break End::Broken("an upstream SSE event exceeded max_body_bytes");
        }
        for mut frame in frames.drain(..) {
            if let Some(c) = call.as_mut() {
                c.response_bytes += frame.raw.len() as u64;
            }
            if let (Some(expected), Some(c)) = (expected.as_ref(), call.as_ref()) {
                resumable |= relay.seal_event_id(&proxy, expected, c, &mut frame);
            }
            if let Some(session) = upstream
                .as_ref()
                .filter(|_| is_tools_list_changed(&frame.data))
            {
                relay.relist(&proxy, session);
            }
            let out = relay
                .check_event(&proxy, frame, expected.as_ref(), &mut call, &mut answered)
                .await;
            if let Some(out) = out {
                if tx.send(out).await.is_err() {
                    return; // the client left; dropping the call records it
                }
            }
        }
        if ended {
            break End::Done;
        }
    };
    let (Some(expected), Some(mut call)) = (expected, call) else {
        return;
    };
    if answered {
        return;
    }
    let why = match end {
        End::Done if resumable => {
            // SSE polling (SEP-1699): the client resumes with Last-Event-ID,
            // and the response is checked on that GET stream.
            call.finish(200, Decision::Allowed, Some(RESUMABLE));
            return;
        }
        End::Done => "the upstream's stream ended before the response",
        End::ClientGone => return,
        End::Idle => "the upstream's stream stalled",
        End::Broken(why) => why,
    };
    // Tell the client rather than leave it waiting.
    let error = jsonrpc::error(expected.id, jsonrpc::UPSTREAM_ERROR, why);
    let _ = tx
        .send(Bytes::from(format!("event: message\ndata: {error}\n\n")))
        .await;
    call.finish(502, Decision::Error, Some(why));
}

/// Whether a server message on a bridged request's stream reaches the
/// stateless client: never a request (the stateless era has none), log
/// messages only at or above the level the client asked for.
fn bridged_event(expected: &Expected, kind: &Kind, message: &Value) -> bool {
    match kind {
        Kind::Notification { method } if method == "notifications/message" => {
            let level = message
                .pointer("/params/level")
                .and_then(Value::as_str)
                .and_then(portcullis_protocol::mcp::stateless::log_severity);
            let floor = match &expected.translation {
                Some(Translation::ToStateless { log_floor, .. }) => *log_floor,
                _ => return true,
            };
            matches!((floor, level), (Some(floor), Some(l)) if l >= floor)
        }
        Kind::Notification { .. } => true,
        _ => false,
    }
}

/// The event of a request whose server closed its stream for the client to resume.
const RESUMABLE: &str =
    "the server closed the stream before the response; the client may resume it";

impl McpRelay {
    /// Gives an event of a request's stream the gateway's own id (see
    /// [`super::resume`]); whether it did.
    fn seal_event_id(
        &self,
        proxy: &ProxyRuntime,
        expected: &Expected,
        call: &McpCall,
        frame: &mut SseFrame,
    ) -> bool {
        let Some(id) = sse::event_id(&frame.raw).filter(|id| !id.is_empty()) else {
            return false;
        };
        let subject = call.identity.as_ref().map(|i| i.key_id.as_str());
        let sealed = self
            .event_ids
            .seal(&proxy.id, subject, expected, call.tool.as_deref(), &id);
        match sealed {
            Some(sealed) => {
                frame.raw = sse::replace_id(&frame.raw, &sealed);
                true
            }
            None => false,
        }
    }

    /// One event: relayed as is, rewritten (the checked response), or dropped.
    async fn check_event(
        &self,
        proxy: &ProxyRuntime,
        frame: SseFrame,
        expected: Option<&Expected>,
        call: &mut Option<McpCall>,
        answered: &mut bool,
    ) -> Option<Bytes> {
        if frame.data.trim().is_empty() {
            return Some(frame.raw); // comments, retry hints, priming events
        }
        let Ok(mut message) = serde_json::from_str::<Value>(&frame.data) else {
            return Some(frame.raw); // not JSON-RPC: nothing a client could act on
        };
        match jsonrpc::classify(&message) {
            Ok(Kind::Response { .. }) => {}
            Ok(kind)
                if expected.is_some_and(|e| {
                    matches!(e.translation, Some(Translation::ToStateless { .. }))
                }) =>
            {
                return bridged_event(expected?, &kind, &message).then_some(frame.raw);
            }
            _ => return Some(frame.raw), // server requests and notifications
        }
        let (Some(expected), Some(c)) = (expected, call.as_mut()) else {
            tracing::debug!(proxy = %proxy.name, "response on the GET stream dropped");
            return None;
        };
        if *answered || !is_response_to(&message, &expected.id) {
            tracing::debug!(proxy = %proxy.name, "unexpected response on a POST stream dropped");
            return None;
        }
        *answered = true;
        let started = std::time::Instant::now();
        let outcome = self.apply(proxy, expected, &mut message, c).await;
        c.overhead += started.elapsed();
        finish_call(c, outcome);
        Some(sse::replace_data(&frame.raw, &message.to_string()))
    }
}
