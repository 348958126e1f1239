//! A server that speaks only the legacy HTTP+SSE transport (protocol
//! 2024-11-05), served like a stdio server: one session for every client
//! ([`super::stdio`]), carried by a stream the gateway holds open.
//!
//! ```text
//! GET <url> (Accept: text/event-stream, the proxy's credential)
//!   ├─ event: endpoint  data: <where to POST>: same scheme, host and port as
//!   │                   <url> or refused (the credential goes there too)
//!   ├─ writer: each message of the session -> POST <endpoint> (202 expected)
//!   └─ reader: each `message` event -> the session (responses by id; server
//!              requests answered as for stdio)
//! the stream ends -> the session fails its waiters; reconnect with back-off
//! ```

use super::stdio::{
    answer_server, handshake, stopped, Ended, LegacySseTarget, Phase, Session, StdioConfig,
    StdioServer, Upstream,
};
use crate::runtime::ProxyRuntime;
use crate::upstream::UpstreamClient;
use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use portcullis_protocol::sse::{SseFrame, SseFramer};
use serde_json::Value;
use std::sync::Arc;
use tokio::sync::{mpsc, watch};

/// Messages queued for POSTing.
const WRITE_QUEUE: usize = 64;

/// One life of the stream.
pub(super) async fn run(
    config: &StdioConfig,
    target: &LegacySseTarget,
    phase: &watch::Sender<Phase>,
    stop: &mut watch::Receiver<bool>,
) -> Ended {
    let (url, credential, client) = (&target.url, target.credential.as_ref(), &target.client);
    let limit = config.max_message_bytes;
    let Some(open) = stream_request(url, credential) else {
        return Ended::Failed("the server's URL is unusable".into());
    };
    let response = match tokio::time::timeout(config.request_timeout, client.request(open)).await {
        Err(_) => return Ended::Failed("its stream did not open in time".into()),
        Ok(Err(e)) => return Ended::Failed(format!("its stream did not open: {e}")),
        Ok(Ok(r)) => r,
    };
    if response.status() != StatusCode::OK || !is_event_stream(response.headers()) {
        return Ended::Failed(format!(
            "its stream answered HTTP {}",
            response.status().as_u16()
        ));
    }
    let mut body = response.into_body();
    let mut framer = SseFramer::new(limit);
    let mut frames: Vec<SseFrame> = Vec::new();
    // The endpoint comes first.
    let endpoint = loop {
        let next = tokio::time::timeout(config.request_timeout, body.frame()).await;
        let Ok(Some(Ok(frame))) = next else {
            return Ended::Failed("its stream gave no endpoint".into());
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if framer.push(&data, &mut frames).is_err() {
            return Ended::Failed("an event of its stream exceeded max_body_bytes".into());
        }
        if let Some(i) = frames
            .iter()
            .position(|f| f.event.as_deref() == Some("endpoint"))
        {
            let found = resolve_endpoint(url, frames[i].data.trim());
            frames.drain(..=i);
            match found {
                Some(uri) => break uri,
                None => {
                    return Ended::Failed("its endpoint is not on the server's own host".into())
                }
            }
        }
    };
    tracing::info!(proxy = %config.proxy, "legacy SSE MCP server connected");

    let (writer, mut queue) = mpsc::channel::<Bytes>(WRITE_QUEUE);
    let session = Arc::new(Session::new(writer));
    let poster = {
        let (client, credential, proxy) =
            (client.clone(), credential.cloned(), config.proxy.clone());
        let timeout = config.request_timeout;
        tokio::spawn(async move {
            while let Some(line) = queue.recv().await {
                let mut post = Request::builder()
                    .method(Method::POST)
                    .uri(endpoint.clone())
                    .header(header::CONTENT_TYPE, "application/json");
                if let Some((name, value)) = &credential {
                    post = post.header(name, value);
                }
                let Ok(post) = post.body(Full::new(line)) else {
                    continue;
                };
                match tokio::time::timeout(timeout, client.request(post)).await {
                    Ok(Ok(r)) if r.status().is_success() => {}
                    Ok(Ok(r)) => {
                        tracing::warn!(proxy = %proxy, status = r.status().as_u16(), "legacy SSE MCP server refused a message");
                    }
                    _ => {
                        tracing::warn!(proxy = %proxy, "legacy SSE MCP server did not take a message");
                    }
                }
            }
        })
    };
    let reader = {
        let (session, proxy) = (session.clone(), config.proxy.clone());
        tokio::spawn(async move {
            for frame in frames.drain(..) {
                deliver(&proxy, &session, &frame, limit);
            }
            while let Some(Ok(frame)) = body.frame().await {
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                if framer.push(&data, &mut frames).is_err() {
                    tracing::warn!(proxy = %proxy, limit, "legacy SSE MCP server sent an event over max_body_bytes");
                    return;
                }
                for frame in frames.drain(..) {
                    deliver(&proxy, &session, &frame, limit);
                }
            }
        })
    };
    let mut reader = reader;
    let ended = tokio::select! {
        r = handshake(&session, config) => match r {
            Ok(()) => None,
            Err(why) => Some(Ended::Failed(why)),
        },
        _ = &mut reader => Some(Ended::Failed("its stream ended".into())),
        _ = stopped(stop) => Some(Ended::Stopped),
    };
    let ended = match ended {
        Some(ended) => ended,
        None => {
            let _ = phase.send(Phase::Up(session.clone()));
            tracing::info!(proxy = %config.proxy, "legacy SSE MCP server initialized");
            tokio::select! {
                _ = &mut reader => Ended::Failed("its stream ended".into()),
                _ = stopped(stop) => Ended::Stopped,
            }
        }
    };
    session.close();
    reader.abort();
    poster.abort();
    ended
}

/// `GET <url>` for the server's event stream, with the proxy's credential.
fn stream_request(
    url: &Uri,
    credential: Option<&(HeaderName, HeaderValue)>,
) -> Option<Request<Full<Bytes>>> {
    let mut open = Request::builder()
        .method(Method::GET)
        .uri(url.clone())
        .header(header::ACCEPT, "text/event-stream");
    if let Some((name, value)) = credential {
        open = open.header(name, value);
    }
    open.body(Full::new(Bytes::new())).ok()
}

fn is_event_stream(headers: &http::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"))
}

/// A `message` event into the session.
fn deliver(proxy: &str, session: &Session, frame: &SseFrame, limit: usize) {
    if frame.data.trim().is_empty() || frame.event.as_deref().is_some_and(|e| e != "message") {
        return;
    }
    let Ok(message) = serde_json::from_str::<Value>(&frame.data) else {
        tracing::warn!(proxy = %proxy, "legacy SSE MCP server sent an event that is not JSON; dropped");
        return;
    };
    if let Some(other) = session.deliver(message) {
        answer_server(proxy, session, other, limit);
    }
}

/// The POST endpoint an `endpoint` event names, resolved against the stream's
/// URL: a path (absolute or relative) on the same origin, or an absolute URL
/// of that origin. Another origin is refused: the proxy's credential would go
/// there.
pub(super) fn resolve_endpoint(base: &Uri, data: &str) -> Option<Uri> {
    let (scheme, authority) = (base.scheme()?, base.authority()?);
    if data.is_empty() || data.chars().any(|c| c.is_control() || c == ' ') {
        return None;
    }
    if data.contains("://") {
        let uri: Uri = data.parse().ok()?;
        return (uri.scheme() == Some(scheme) && uri.authority() == Some(authority)).then_some(uri);
    }
    if data.starts_with("//") {
        return None;
    }
    let path = if data.starts_with('/') {
        data.to_owned()
    } else {
        let dir = base.path().rsplit_once('/').map_or("", |(dir, _)| dir);
        format!("{dir}/{data}")
    };
    format!("{scheme}://{authority}{path}").parse().ok()
}

/// Whether `url` serves the legacy transport: its `GET` opens an event stream
/// whose first event is `endpoint` (read within `timeout`, bounded).
pub(super) async fn speaks_legacy_sse(
    client: &UpstreamClient,
    url: &Uri,
    credential: Option<&(HeaderName, HeaderValue)>,
    timeout: std::time::Duration,
) -> bool {
    let Some(probe) = stream_request(url, credential) else {
        return false;
    };
    let look = async {
        let response = client.request(probe).await.ok()?;
        if response.status() != StatusCode::OK || !is_event_stream(response.headers()) {
            return None;
        }
        let mut body = response.into_body();
        let mut framer = SseFramer::new(8192);
        let mut frames = Vec::new();
        while let Some(Ok(frame)) = body.frame().await {
            let data = frame.into_data().ok()?;
            framer.push(&data, &mut frames).ok()?;
            if let Some(first) = frames.first() {
                return Some(first.event.as_deref() == Some("endpoint"));
            }
        }
        None
    };
    matches!(tokio::time::timeout(timeout, look).await, Ok(Some(true)))
}

impl super::McpRelay {
    /// The shared session with `proxy`'s server if it speaks only the legacy
    /// HTTP+SSE transport: the one already held, or a new one when a probe
    /// finds the transport (proxies with one HTTP server).
    pub(super) async fn legacy_server(
        &self,
        proxy: &Arc<ProxyRuntime>,
    ) -> Option<Arc<StdioServer>> {
        if let Some(server) = proxy.legacy_sse.get() {
            return Some(server.clone());
        }
        let url = proxy
            .mcp_uri
            .as_ref()
            .filter(|_| proxy.federation.is_none() && proxy.stdio.is_none())?;
        // A server found not to speak it is not probed again for a minute:
        // refused initializes do not each cost the server a GET.
        if self.not_legacy.recently(&proxy.id) {
            return None;
        }
        let credential = proxy.credential_header.as_ref();
        if !speaks_legacy_sse(&proxy.client, url, credential, proxy.first_byte_timeout).await {
            self.not_legacy.mark(&proxy.id);
            return None;
        }
        tracing::info!(proxy = %proxy.name, "MCP server speaks the legacy HTTP+SSE transport; holding one stream for every client");
        let server = StdioServer::start(StdioConfig {
            proxy: proxy.name.clone(),
            upstream: Upstream::LegacySse(Box::new(LegacySseTarget {
                url: url.clone(),
                credential: credential.cloned(),
                client: proxy.client.clone(),
            })),
            request_timeout: proxy.first_byte_timeout,
            max_message_bytes: proxy.max_body_bytes,
        });
        // Two first clients at once: the first one set wins, the other stops.
        Some(proxy.legacy_sse.get_or_init(|| server).clone())
    }
}

/// Proxies whose server was lately found not to speak the legacy transport.
#[derive(Default)]
pub(crate) struct NotLegacy(
    std::sync::Mutex<std::collections::HashMap<String, std::time::Instant>>,
);

impl NotLegacy {
    const FOR: std::time::Duration = std::time::Duration::from_secs(60);

    fn recently(&self, proxy_id: &str) -> bool {
        let probed = self.0.lock().unwrap_or_else(|p| p.into_inner());
        probed
            .get(proxy_id)
            .is_some_and(|at| at.elapsed() < Self::FOR)
    }

    fn mark(&self, proxy_id: &str) {
        let mut probed = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if probed.len() > 10_000 {
            probed.retain(|_, at| at.elapsed() < Self::FOR);
        }
        probed.insert(proxy_id.to_owned(), std::time::Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_stay_on_the_servers_origin() {
        let base: Uri = "http://127.0.0.1:9000/mcp/sse".parse().unwrap();
        let resolve = |d: &str| resolve_endpoint(&base, d).map(|u| u.to_string());
        assert_eq!(
            resolve("/messages/?session_id=ab").as_deref(),
            Some("http://127.0.0.1:9000/messages/?session_id=ab")
        );
        assert_eq!(
            resolve("messages?sessionId=1").as_deref(),
            Some("http://127.0.0.1:9000/mcp/messages?sessionId=1")
        );
        assert_eq!(
            resolve("http://127.0.0.1:9000/m").as_deref(),
            Some("http://127.0.0.1:9000/m")
        );
        assert_eq!(resolve("http://evil.example/m"), None);
        assert_eq!(resolve("http://127.0.0.1:9001/m"), None);
        assert_eq!(resolve("//evil.example/m"), None);
        assert_eq!(resolve("/a b"), None);
        assert_eq!(resolve(""), None);
    }
}
