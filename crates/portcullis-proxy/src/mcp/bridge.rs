//! Stateless clients (2026-07-28) of a server that speaks only the session era
//! (2025-03-26 to 2025-11-25).
//!
//! ```text
//! first stateless request for a proxy ── POST server/discover (2026 headers)
//!   result names 2026-07-28 ─> the server is stateless: requests relayed as they are
//!   anything else           ─> the server has sessions: bridged, remembered 60 s
//! bridged request ── the gateway's own session with the server for the caller's
//!                    key (initialize with no client capabilities, then
//!                    notifications/initialized), opened once and reused
//!   server/discover      answered from the server's initialize result
//!   other requests       sent in that session; results upgraded (resultType,
//!                        caching hints) after the usual checks
//!   404 from the server  the session expired: reopened once, request resent
//! ```
//!
//! A federation is bridged the same way: the gateway initializes it (every
//! member) once per key, keeps the session it issued itself, and renews it
//! after five minutes (a member that restarted is then reached again).
//!
//! The session declares no client capabilities, so the server has no reason
//! to send sampling, elicitation or roots requests, which a stateless client
//! could not answer. Clients of one key share its session (the server's
//! per-session state, a log level say, is theirs together).

use super::call::McpCall;
use super::federation::{self, exchange_with, Failure, Members};
use super::session::SessionClaims;
use super::{Expected, McpRelay, Pending, Refusal, Target};
use crate::keys::Identity;
use crate::runtime::ProxyRuntime;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::StatusCode;
use http_body_util::BodyExt;
use portcullis_protocol::mcp::SESSION_HEADER;
use portcullis_protocol::mcp::{jsonrpc, stateless, SESSION_VERSIONS, VERSION_HEADER};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a probed server era is trusted before it is probed again (a
/// server upgraded in place is noticed within this).
const ERA_TTL: Duration = Duration::from_secs(60);
/// Bridged sessions kept at once (proxy and key); past this, one is dropped
/// (its next request opens a new one).
const MAX_SESSIONS: usize = 10_000;
/// The version the gateway asks for when it opens a session; the server may
/// answer an older one, which is then used.
const SESSION_VERSION: &str = "2025-11-25";

/// What the server behind a proxy speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UpstreamEra {
    Stateless,
    Sessions,
}

/// The gateway's own session with a session-era server, for one key.
pub(crate) struct Bridged {
    /// The server's `Mcp-Session-Id`, if it gave one.
    pub session: Option<String>,
    /// The negotiated `MCP-Protocol-Version`.
    pub version: HeaderValue,
    /// The server's `initialize` result (for `server/discover`).
    pub initialize: Value,
}

/// The gateway's own session with a federation, for one key.
pub(crate) struct BridgedFederation {
    pub claims: SessionClaims,
    /// The federation's merged `initialize` result (for `server/discover`).
    pub initialize: Value,
    opened: Instant,
}

/// How long a bridged federation session is used before it is opened again.
const FEDERATION_RENEWAL: Duration = Duration::from_secs(300);

#[derive(Default)]
pub(crate) struct Bridge {
    eras: Mutex<HashMap<String, (UpstreamEra, Instant)>>,
    sessions: Mutex<HashMap<(String, String), Arc<Bridged>>>,
    federations: Mutex<HashMap<(String, String), Arc<BridgedFederation>>>,
}

impl Bridge {
    /// The era of `proxy`'s server: remembered, or probed with `server/discover`.
    pub async fn upstream_era(&self, proxy: &ProxyRuntime) -> Result<UpstreamEra, Refusal> {
        if let Some((era, at)) = lock(&self.eras).get(&proxy.id) {
            if at.elapsed() < ERA_TTL {
                return Ok(*era);
            }
        }
        let era = probe(proxy).await?;
        let mut eras = lock(&self.eras);
        if eras.len() >= MAX_SESSIONS {
            eras.clear();
        }
        eras.insert(proxy.id.clone(), (era, Instant::now()));
        Ok(era)
    }

    /// The era of `proxy`'s server if it was probed lately (no probe).
    pub fn known_era(&self, proxy: &ProxyRuntime) -> Option<UpstreamEra> {
        lock(&self.eras)
            .get(&proxy.id)
            .filter(|(_, at)| at.elapsed() < ERA_TTL)
            .map(|(era, _)| *era)
    }

    /// The bridged session of `subject` (a key id; empty without keys) on
    /// `proxy`, opened if there is none.
    pub async fn session(
        &self,
        proxy: &ProxyRuntime,
        subject: &str,
    ) -> Result<Arc<Bridged>, Refusal> {
        let key = (proxy.id.clone(), subject.to_owned());
        if let Some(open) = lock(&self.sessions).get(&key) {
            return Ok(open.clone());
        }
        let opened = Arc::new(open_session(proxy).await?);
        let mut sessions = lock(&self.sessions);
        if sessions.len() >= MAX_SESSIONS {
            if let Some(victim) = sessions.keys().next().cloned() {
                sessions.remove(&victim);
            }
        }
        sessions.insert(key, opened.clone());
        Ok(opened)
    }

    /// Drops `stale` (the server no longer knows it), unless it was replaced
    /// already.
    pub fn forget(&self, proxy: &ProxyRuntime, subject: &str, stale: &Arc<Bridged>) {
        let key = (proxy.id.clone(), subject.to_owned());
        let mut sessions = lock(&self.sessions);
        if sessions.get(&key).is_some_and(|s| Arc::ptr_eq(s, stale)) {
            sessions.remove(&key);
        }
    }
}

impl McpRelay {
    /// The bridged federation session of `identity`'s key on `proxy`, opened
    /// (every member initialized) if there is none or it is five minutes old.
    pub(super) async fn federation_session(
        &self,
        proxy: &Arc<ProxyRuntime>,
        members: &Arc<Members>,
        identity: Option<&Arc<Identity>>,
    ) -> Result<Arc<BridgedFederation>, Refusal> {
        let subject = identity.map(|i| i.key_id.as_str());
        let key = (proxy.id.clone(), subject.unwrap_or_default().to_owned());
        if let Some(open) = lock(&self.bridge.federations).get(&key) {
            if open.opened.elapsed() < FEDERATION_RENEWAL {
                return Ok(open.clone());
            }
        }
        let id = json!("portcullis-initialize");
        let init = json!({"jsonrpc": "2.0", "id": id, "method": "initialize", "params": {
            "protocolVersion": SESSION_VERSION, "capabilities": {}, "clientInfo": client_info()}});
        let headers = HeaderMap::new();
        let request = federation::Request {
            headers: &headers,
            session: None,
            version: SESSION_VERSION,
            subject,
            routed: None,
        };
        let expected = Expected {
            id,
            pending: Pending::Other,
            subject: String::new(),
            redactor: None,
            flow: None,
            first_page: false,
            translation: None,
        };
        let mut call = McpCall::new(proxy.clone(), self.events.clone(), self.clock.now());
        call.identity = identity.cloned();
        call.endpoint = "mcp:initialize".into();
        let response = self
            .post_federated(proxy, members, request, init, Some(expected), call)
            .await;
        let refused = |why: &str| {
            Refusal::new(
                StatusCode::BAD_GATEWAY,
                jsonrpc::UPSTREAM_ERROR,
                format!("the federation did not open a session: {why}"),
            )
        };
        let claims = response
            .headers()
            .get(SESSION_HEADER)
            .and_then(|v| self.sessions.open(v, &proxy.id, subject).ok())
            .ok_or_else(|| refused("no session"))?;
        let body = http_body_util::Limited::new(response.into_body(), proxy.max_body_bytes)
            .collect()
            .await
            .map_err(|_| refused("its answer could not be read"))?
            .to_bytes();
        let initialize = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|mut m| m.get_mut("result").map(Value::take))
            .ok_or_else(|| refused("its initialize answer has no result"))?;
        let opened = Arc::new(BridgedFederation {
            claims,
            initialize,
            opened: Instant::now(),
        });
        let mut federations = lock(&self.bridge.federations);
        if federations.len() >= MAX_SESSIONS {
            federations.retain(|_, f| f.opened.elapsed() < FEDERATION_RENEWAL);
        }
        federations.insert(key, opened.clone());
        Ok(opened)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn target(proxy: &ProxyRuntime) -> Target<'_> {
    Target {
        uri: proxy.mcp_uri.as_ref(),
        credential: proxy.credential_header.as_ref(),
    }
}

fn client_info() -> Value {
    json!({"name": "portcullis", "version": env!("CARGO_PKG_VERSION")})
}

fn unavailable(failure: &Failure) -> Refusal {
    Refusal::new(
        StatusCode::BAD_GATEWAY,
        jsonrpc::UPSTREAM_ERROR,
        format!("the upstream MCP server is unavailable: {}", failure.why),
    )
}

/// Asks the server for `server/discover` as a 2026-07-28 client would. A
/// result naming a stateless version: stateless; a refusal (a 4xx, a JSON-RPC
/// error, a result without it): sessions; no answer: the server is down.
async fn probe(proxy: &ProxyRuntime) -> Result<UpstreamEra, Refusal> {
    let version = stateless::VERSIONS[0];
    let mut headers = HeaderMap::new();
    headers.insert(VERSION_HEADER, HeaderValue::from_static(version));
    let mirror = [(
        HeaderName::from_static(stateless::METHOD_HEADER),
        HeaderValue::from_static("server/discover"),
    )];
    let id = json!("portcullis-discover");
    let body = json!({"jsonrpc": "2.0", "id": id, "method": "server/discover", "params": {"_meta": {
        stateless::META_VERSION: version,
        "io.modelcontextprotocol/clientInfo": client_info(),
        "io.modelcontextprotocol/clientCapabilities": {},
    }}});
    let answer = exchange_with(
        proxy,
        target(proxy),
        &headers,
        &mirror,
        None,
        body.to_string().into(),
        Some(&id),
    )
    .await;
    let era = match answer {
        Ok(answer) => {
            let speaks = answer
                .message
                .as_ref()
                .and_then(|m| m.pointer("/result/supportedVersions"))
                .and_then(Value::as_array)
                .is_some_and(|versions| versions.iter().any(|v| v.as_str() == Some(version)));
            if speaks {
                UpstreamEra::Stateless
            } else {
                UpstreamEra::Sessions
            }
        }
        Err(failure) if !failure.down => UpstreamEra::Sessions,
        Err(failure) => return Err(unavailable(&failure)),
    };
    tracing::info!(proxy = %proxy.name, era = ?era, "MCP upstream protocol era probed");
    Ok(era)
}

/// `initialize` and `notifications/initialized` with the server.
async fn open_session(proxy: &ProxyRuntime) -> Result<Bridged, Refusal> {
    let id = json!("portcullis-initialize");
    let body = json!({"jsonrpc": "2.0", "id": id, "method": "initialize", "params": {
        "protocolVersion": SESSION_VERSION,
        "capabilities": {},
        "clientInfo": client_info(),
    }});
    let answer = exchange_with(
        proxy,
        target(proxy),
        &HeaderMap::new(),
        &[],
        None,
        body.to_string().into(),
        Some(&id),
    )
    .await
    .map_err(|f| unavailable(&f))?;
    let refused = |why: &str| {
        Refusal::new(
            StatusCode::BAD_GATEWAY,
            jsonrpc::UPSTREAM_ERROR,
            format!("the upstream MCP server did not open a session: {why}"),
        )
    };
    let result = answer
        .message
        .and_then(|mut m| m.get_mut("result").map(Value::take))
        .ok_or_else(|| refused("its initialize answer has no result"))?;
    let negotiated = result
        .get("protocolVersion")
        .and_then(Value::as_str)
        .and_then(|v| SESSION_VERSIONS.into_iter().find(|s| *s == v))
        .ok_or_else(|| refused("it answered a protocol version the gateway does not relay"))?;
    let session = match answer.session {
        Some(v) => Some(
            v.to_str()
                .ok()
                .filter(|s| !s.is_empty() && s.len() <= 512)
                .ok_or_else(|| refused("its session id is not visible ASCII"))?
                .to_owned(),
        ),
        None => None,
    };
    let version = HeaderValue::from_static(negotiated);
    let mut headers = HeaderMap::new();
    headers.insert(VERSION_HEADER, version.clone());
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    exchange_with(
        proxy,
        target(proxy),
        &headers,
        &[],
        session.as_deref(),
        initialized.to_string().into(),
        None,
    )
    .await
    .map_err(|f| unavailable(&f))?;
    tracing::info!(proxy = %proxy.name, version = negotiated, "MCP session opened for stateless clients");
    Ok(Bridged {
        session,
        version,
        initialize: result,
    })
}
