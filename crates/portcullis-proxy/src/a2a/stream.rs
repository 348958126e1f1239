//! An agent's SSE answer (`message/stream`, `SendStreamingMessage`, resubscribe)
//! relayed event by event. A task reads the agent, frames events (each bounded),
//! records the tasks they show, inspects their parts, and hands them to the
//! client through a small bounded channel. An event a policy blocks is replaced by
//! a JSON-RPC error event and the stream ends; so does a stream that breaks, sends
//! an oversized event, or falls silent for longer than the idle timeout. The
//! call's event is emitted when the stream ends.

use super::inspect::{self, Blocked, Placeholders};
use super::tasks::{Owner, Tasks};
use super::{A2aRelay, Call};
use crate::channel_body::ChannelBody;
use bytes::Bytes;
use http_body_util::BodyExt;
use portcullis_core::proxy::Decision;
use portcullis_policy::Engine;
use portcullis_protocol::mcp::jsonrpc;
use portcullis_protocol::sse::{SseFrame, SseFramer};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Events in flight between the agent and the client.
const CHANNEL: usize = 16;
/// Largest event relayed.
pub(crate) const MAX_EVENT: usize = 1024 * 1024;

/// What the relay of one stream needs.
pub(crate) struct Streaming {
    pub relay: Arc<A2aRelay>,
    pub tasks: Arc<Tasks>,
    pub owner: Owner,
    /// `None`: the agent's policies do not look at messages.
    pub engine: Option<Arc<Engine>>,
    pub placeholders: Placeholders,
    /// The request's JSON-RPC id, for the error event that ends a stream.
    pub id: Value,
    pub call: Call,
    pub idle: Duration,
}

/// How the stream ended.
enum End {
    Done,
    ClientGone,
    Blocked(Vec<String>),
    Failed(String),
}

pub(crate) fn spawn<B>(job: Streaming, incoming: B) -> ChannelBody
where
    B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: std::fmt::Display + Send,
{
    let (tx, body) = ChannelBody::channel(CHANNEL);
    tokio::spawn(pump(job, incoming, tx));
    body
}

async fn pump<B>(mut job: Streaming, mut incoming: B, tx: mpsc::Sender<Bytes>)
where
    B: http_body::Body<Data = Bytes> + Send + Unpin,
    B::Error: std::fmt::Display + Send,
{
    let mut framer = SseFramer::new(MAX_EVENT);
    let mut frames: Vec<SseFrame> = Vec::new();
    let end = loop {
        let next = match tokio::time::timeout(job.idle, incoming.frame()).await {
            Err(_) => {
                break End::Failed(format!(
                    "the agent's stream was silent for {} s",
                    job.idle.as_secs()
                ))
            }
            Ok(None) => {
                frames.extend(framer.finish());
                break job.send(&mut frames, &tx).await.unwrap_or(End::Done);
            }
            Ok(Some(Err(e))) => {
                tracing::debug!(error = %e, "A2A agent stream broke");
                break End::Failed("the agent's stream broke off".into());
            }
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(data) = next.into_data() else { continue };
        job.call.response_bytes += data.len() as u64;
        if framer.push(&data, &mut frames).is_err() {
            break End::Failed(format!(
                "the agent sent a stream event over {MAX_EVENT} bytes"
            ));
        }
        if let Some(end) = job.send(&mut frames, &tx).await {
            break end;
        }
    };
    // Dropping the agent's body here ends the upstream request.
    drop(incoming);
    let (decision, error, last) = match end {
        End::Done => (Decision::Allowed, None, None),
        End::ClientGone => (
            Decision::Allowed,
            Some("the client went away".to_owned()),
            None,
        ),
        End::Blocked(rules) => {
            let message = format!("answer blocked by policy: {}", rules.join(", "));
            let data = json!({"reason": "policy_violation", "rules": rules});
            let event = error_event(&job.id, super::POLICY_BLOCKED, &message, data);
            (Decision::Blocked, Some(message), Some(event))
        }
        End::Failed(message) => {
            let data = json!({"reason": "upstream_stream"});
            let event = error_event(&job.id, jsonrpc::UPSTREAM_ERROR, &message, data);
            (Decision::Error, Some(message), Some(event))
        }
    };
    if let Some(event) = last {
        let _ = tx.send(event).await;
    }
    job.relay.emit(job.call, 200, decision, error.as_deref());
}

impl Streaming {
    /// Relays the framed events; how the stream ends if it must.
    async fn send(&mut self, frames: &mut Vec<SseFrame>, tx: &mpsc::Sender<Bytes>) -> Option<End> {
        for frame in frames.drain(..) {
            match self.pass(frame) {
                Ok(bytes) => {
                    if tx.send(bytes).await.is_err() {
                        return Some(End::ClientGone);
                    }
                }
                Err(Blocked(rules)) => return Some(End::Blocked(rules)),
            }
        }
        None
    }

    /// The bytes to relay for one event: as received, or re-encoded when its parts
    /// were redacted or restored.
    fn pass(&mut self, frame: SseFrame) -> Result<Bytes, Blocked> {
        let Ok(mut message) = serde_json::from_str::<Value>(&frame.data) else {
            return Ok(frame.raw);
        };
        self.tasks.see_event(&self.owner, &message);
        let Some(engine) = &self.engine else {
            return Ok(frame.raw);
        };
        let changed = inspect::answer(
            engine,
            &self.placeholders,
            &mut message,
            &mut self.call.findings,
        )?;
        Ok(if changed {
            encode(frame.event.as_deref(), &message)
        } else {
            frame.raw
        })
    }
}

fn encode(event: Option<&str>, message: &Value) -> Bytes {
    let mut out = String::new();
    if let Some(name) = event {
        out.push_str("event: ");
        out.push_str(name);
        out.push('\n');
    }
    out.push_str("data: ");
    out.push_str(&message.to_string());
    out.push_str("\n\n");
    Bytes::from(out)
}

fn error_event(id: &Value, code: i64, message: &str, data: Value) -> Bytes {
    encode(
        None,
        &jsonrpc::error_with_data(id.clone(), code, message, data),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_reencoded_as_one_data_line() {
        let message = json!({"jsonrpc": "2.0", "id": 1, "result": {"text": "a\nb"}});
        let bytes = encode(Some("message"), &message);
        let text = std::str::from_utf8(&bytes).unwrap_or("");
        assert!(text.starts_with("event: message\ndata: {"), "{text}");
        assert!(text.ends_with("}\n\n"));
        assert_eq!(
            text.matches('\n').count(),
            3,
            "the JSON's newline stays escaped"
        );
    }
}
