//! The MCP data plane: Streamable HTTP (protocol 2025-03-26 to 2025-11-25) at
//! `/mcp`, towards an upstream server speaking Streamable HTTP.
//!
//! ```text
//! POST /mcp ── key auth (scope mcp) ── body bounded (max_body_bytes) ── JSON-RPC check
//!   │            401 + WWW-Authenticate     413                        400: -32700 / -32600
//!   ├─ tools/call: inventory says approved? else JSON-RPC error (HTTP 200)
//!   │              arguments scanned at tool_call; block -> JSON-RPC error naming rules;
//!   │              redact -> values replaced by placeholders or masks
//!   ├─ forward: only MCP headers, the proxy's credential as Bearer
//!   └─ answer:  application/json -> read (bounded), rewrite, send
//!               text/event-stream -> relayed event by event (SSE framer); the event
//!               holding the response is rewritten:
//!                 tools/list -> inventory reconcile, non-approved tools removed
//!                 tools/call, prompts/get, resources/read -> what the model reads
//!                   scanned at tool_result; block -> JSON-RPC error; redact ->
//!                   rewritten; the arguments' placeholders put back
//! GET /mcp    server-to-client stream relayed; responses on it are dropped
//! DELETE /mcp session end, relayed
//! ```
//!
//! `Mcp-Session-Id` is the gateway's own (see [`session`]): issued on
//! `initialize`, sealed around the upstream's session id and the key that opened
//! it, and opened on every request (404 when it does not open for this proxy and
//! this key). Protocol versions are carried unchanged in `MCP-Protocol-Version`.

mod bridge;
pub mod call;
mod downgrade;
pub mod federation;
pub mod flows;
pub mod inventory;
mod legacy;
mod legacy_upstream;
mod mirror;
mod policy;
pub mod rebinding;
mod relist;
pub mod resume;
pub mod session;
pub mod stdio;
mod stream;

use crate::events::EventSink;
use crate::keys::{Identity, KeyAuthenticator, KeyRejection};
use crate::runtime::ProxyRuntime;
use axum::body::Body;
use bytes::Bytes;
use call::McpCall;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use inventory::Inventory;
use portcullis_core::flow::{FlowAction, Labels};
use portcullis_core::model::{KeyScope, RateLimits};
use portcullis_core::proxy::{AuthMode, Decision};
use portcullis_core::{Clock, MasterKey};
use portcullis_governance::ratelimit::{RateLimiter, Subject};
use portcullis_policy::redact::Redactor;
use portcullis_protocol::mcp::content::Shape;
use portcullis_protocol::mcp::jsonrpc::{self, Kind};
use portcullis_protocol::mcp::tools;
use portcullis_protocol::mcp::{self, SESSION_HEADER, VERSION_HEADER};
use portcullis_protocol::mcp::{era, stateless};
use portcullis_store::DynStore;
use serde_json::{json, Value};
use session::{SessionClaims, Sessions};
use std::sync::Arc;
use std::time::Instant;

/// Request headers passed to the upstream; every other one (the caller's
/// credentials, cookies, hop-by-hop headers) stays at the gateway.
/// `Mcp-Session-Id` is not among them: the upstream's is in the gateway's own.
const FORWARDED_REQUEST: [&str; 4] = ["accept", "content-type", VERSION_HEADER, LAST_EVENT_ID];
const LAST_EVENT_ID: &str = "last-event-id";
/// Response headers passed back to the client.
const FORWARDED_RESPONSE: [&str; 3] = ["content-type", VERSION_HEADER, "cache-control"];

/// What the response to the client's request needs before the client sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Pending {
    ToolsList,
    ToolsCall,
    PromptsGet,
    ResourcesRead,
    /// `tasks/result` (2025-11-25): the result of a task-augmented request,
    /// a tool's result delivered later; read like one.
    TaskResult,
    /// `tasks/get`: in the 2026-07-28 tasks extension a finished task carries
    /// its result (`result.result`), read like a tool's.
    TaskGet,
    Other,
}

impl Pending {
    /// The answer the model reads, which the policies look at.
    /// The method of the request, where it matters (events of resumed streams).
    fn method(self) -> &'static str {
        match self {
            Pending::ToolsList => "tools/list",
            Pending::ToolsCall => "tools/call",
            Pending::PromptsGet => "prompts/get",
            Pending::ResourcesRead => "resources/read",
            Pending::TaskResult => "tasks/result",
            Pending::TaskGet => "tasks/get",
            Pending::Other => "get",
        }
    }

    fn shape(self) -> Option<Shape> {
        match self {
            Pending::ToolsCall | Pending::TaskResult | Pending::TaskGet => Some(Shape::ToolResult),
            Pending::PromptsGet => Some(Shape::Prompt),
            Pending::ResourcesRead => Some(Shape::Resource),
            Pending::ToolsList | Pending::Other => None,
        }
    }
}

/// The client's request whose response the gateway waits for.
#[derive(Debug, Clone)]
pub(crate) struct Expected {
    pub id: Value,
    pub pending: Pending,
    /// The prompt's name or the resource's URI (as the client gave it).
    pub subject: String,
    /// Placeholders given to the call's arguments, put back in its result.
    pub redactor: Option<Arc<Redactor>>,
    /// A `tools/call` in a session: the flow key and the tool's labels, recorded
    /// when its result reaches the client.
    pub flow: Option<(String, Labels)>,
    /// A `tools/list` without a cursor: with no `nextCursor` in its result it is
    /// the server's whole list, so a known tool missing from it is gone.
    pub first_page: bool,
    /// The client and the server speak different protocol eras.
    pub translation: Option<Translation>,
}

/// How an answer crosses between protocol eras ([`era`]).
#[derive(Debug, Clone)]
pub(crate) enum Translation {
    /// A stateless client's request answered by a session-era server: the
    /// result of `method` is upgraded; log messages below `log_floor` (all of
    /// them when `None`: the client asked for none) and server requests do not
    /// reach the client.
    ToStateless {
        method: Arc<str>,
        log_floor: Option<u8>,
    },
    /// A session client's request answered by a stateless server: the
    /// stateless-only fields go; an `input_required` result becomes an error.
    ToSessions,
}

/// Shared by every MCP proxy.
pub struct McpRelay {
    keys: Arc<KeyAuthenticator>,
    events: EventSink,
    clock: Arc<dyn Clock>,
    inventory: Inventory,
    sessions: Sessions,
    event_ids: resume::EventIds,
    limiter: Arc<RateLimiter>,
    /// What each session has read, for the toxic-flow rules.
    flows: flows::FlowTracker,
    /// Sessions of the gateway's own for stateless clients of session-era servers.
    bridge: bridge::Bridge,
    /// Streams of clients of the legacy HTTP+SSE transport.
    legacy: legacy::LegacySessions,
    /// When each proxy's tools were last re-listed after a list_changed.
    relisted: relist::Relisted,
    /// Sessions ended with DELETE that no server holds.
    ended: session::Ended,
    /// Servers lately found not to speak the legacy HTTP+SSE transport.
    not_legacy: legacy_upstream::NotLegacy,
    /// The data plane listens on loopback only: proxies without caller keys
    /// are local servers and get DNS-rebinding protection ([`rebinding`]).
    loopback: bool,
}

/// Which transport generation a request belongs to (its `MCP-Protocol-Version`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Era {
    /// 2025-03-26 to 2025-11-25: `initialize`, then requests in a session.
    Sessions,
    /// 2026-07-28: every request self-contained, method and target mirrored
    /// in headers ([`stateless`]).
    Stateless,
}

/// A refusal before the upstream: HTTP status, JSON-RPC code, message.
struct Refusal {
    status: StatusCode,
    code: i64,
    message: String,
}

impl Refusal {
    /// The refusal as an HTTP answer whose request id is unknown.
    fn into_response(self) -> Response<Body> {
        http_error(self.status, Value::Null, self.code, &self.message)
    }

    fn new(status: StatusCode, code: i64, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }
}

impl McpRelay {
    pub fn new(
        keys: Arc<KeyAuthenticator>,
        events: EventSink,
        store: DynStore,
        clock: Arc<dyn Clock>,
        master_key: &MasterKey,
        limiter: Arc<RateLimiter>,
        loopback: bool,
    ) -> Arc<Self> {
        Arc::new(Self {
            limiter,
            loopback,
            keys,
            events,
            clock: clock.clone(),
            inventory: Inventory::new(store, clock),
            sessions: Sessions::new(master_key),
            flows: flows::FlowTracker::default(),
            bridge: bridge::Bridge::default(),
            legacy: legacy::LegacySessions::default(),
            relisted: relist::Relisted::default(),
            ended: session::Ended::default(),
            not_legacy: legacy_upstream::NotLegacy::default(),
            event_ids: resume::EventIds::new(master_key),
        })
    }

    /// Opens the client's session id, if the request carries one. A refusal is
    /// logged with its reason; the client only learns the session is unknown.
    fn open_session(
        &self,
        proxy: &ProxyRuntime,
        headers: &HeaderMap,
        identity: Option<&Identity>,
    ) -> Result<Option<SessionClaims>, session::Rejection> {
        let Some(presented) = headers.get(SESSION_HEADER) else {
            return Ok(None);
        };
        let subject = identity.map(|i| i.key_id.as_str());
        self.sessions
            .open(presented, &proxy.id, subject)
            .and_then(|claims| {
                // Only the gateway knows such a session ended.
                if claims.stateless_meta.is_some() && self.ended.is_ended(presented) {
                    return Err(session::Rejection::Ended);
                }
                Ok(Some(claims))
            })
            .inspect_err(|why| {
                tracing::warn!(
                    proxy = %proxy.name,
                    key_id = subject.unwrap_or("-"),
                    reason = why.as_str(),
                    "MCP session id refused"
                );
            })
    }

    /// A new session id for the client that just initialized.
    fn issue_session(
        &self,
        proxy: &ProxyRuntime,
        identity: Option<&Identity>,
        version: &str,
        upstream: Option<&HeaderValue>,
        stateless_meta: Option<Value>,
        legacy_upstream: bool,
    ) -> Result<HeaderValue, Refusal> {
        let refuse = |e: session::IssueError| {
            tracing::warn!(proxy = %proxy.name, error = %e, "MCP session id not issued");
            Refusal::new(
                StatusCode::BAD_GATEWAY,
                jsonrpc::UPSTREAM_ERROR,
                format!("the gateway cannot open this session: {e}"),
            )
        };
        let upstreams = match upstream {
            Some(v) => vec![(String::new(), Sessions::upstream_id(v).map_err(refuse)?)],
            None => Vec::new(),
        };
        let claims = SessionClaims {
            proxy_id: proxy.id.clone(),
            subject: identity.map(|i| i.key_id.clone()),
            upstreams,
            protocol_version: Sessions::version(version),
            issued_at: self.clock.now().as_second(),
            stateless_meta,
            legacy_upstream,
        };
        self.sessions.issue(&claims).map_err(refuse)
    }

    /// Handles one request for an MCP proxy; `path` is relative to the proxy root.
    pub async fn handle(
        self: &Arc<Self>,
        proxy: Arc<ProxyRuntime>,
        req: Request<Body>,
        path: &str,
    ) -> Response<Body> {
        if self.loopback && proxy.auth_mode == AuthMode::None {
            if let Err(why) = rebinding::check(req.headers(), req.uri()) {
                tracing::warn!(
                    proxy = %proxy.name,
                    reason = why.as_str(),
                    "MCP request refused: DNS-rebinding protection"
                );
                return http_error(
                    StatusCode::FORBIDDEN,
                    Value::Null,
                    jsonrpc::INVALID_REQUEST,
                    "this local MCP proxy serves only loopback Host and Origin headers",
                );
            }
        }
        match (path, req.method()) {
            ("/mcp" | "/mcp/", _) => {}
            // The legacy HTTP+SSE transport ([`legacy`]).
            ("/sse", &Method::GET) => return self.open_legacy(proxy, req).await,
            ("/messages", &Method::POST) => return self.legacy_post(proxy, req).await,
            _ => {
                return http_error(
                    StatusCode::NOT_FOUND,
                    Value::Null,
                    jsonrpc::INVALID_REQUEST,
                    "MCP proxies serve Streamable HTTP at /mcp (and the legacy HTTP+SSE transport at /sse)",
                );
            }
        }
        let version = req.headers().get(mcp::VERSION_HEADER).map(|v| v.as_bytes());
        let era = match version {
            _ if !mcp::version_supported(version) => None,
            Some(v) if stateless::is_stateless(v) => Some(Era::Stateless),
            _ => Some(Era::Sessions),
        };
        if era.is_none() && *req.method() != Method::POST {
            return unsupported_version(req.headers(), None);
        }
        match *req.method() {
            // An unsupported version is refused once the request's id is known.
            Method::POST => self.post(proxy, req, era).await,
            // The stateless era has no server-to-client stream and no session
            // to end (`subscriptions/listen` is a POST).
            Method::GET | Method::DELETE if era == Some(Era::Stateless) => {
                method_not_allowed("MCP 2026-07-28 is stateless: use POST", "POST")
            }
            Method::GET | Method::DELETE => self.relay_other(proxy, req).await,
            _ => method_not_allowed("use POST, GET or DELETE", "GET, POST, DELETE"),
        }
    }

    async fn authenticate(
        &self,
        proxy: &ProxyRuntime,
        headers: &HeaderMap,
    ) -> Result<Option<Arc<Identity>>, Refusal> {
        if proxy.auth_mode == AuthMode::None {
            return Ok(None);
        }
        let refuse =
            |r: KeyRejection| Refusal::new(r.http_status(), jsonrpc::INVALID_REQUEST, r.message());
        self.keys
            .authenticate_headers(headers, KeyScope::Mcp)
            .await
            .map(Some)
            .map_err(refuse)
    }

    async fn post(
        self: &Arc<Self>,
        proxy: Arc<ProxyRuntime>,
        req: Request<Body>,
        era: Option<Era>,
    ) -> Response<Body> {
        let mut call = McpCall::new(proxy.clone(), self.events.clone(), self.clock.now());
        let started = call.started();
        let refused = |mut call: McpCall, id: Value, r: Refusal| {
            call.overhead = started.elapsed();
            call.finish(r.status.as_u16(), Decision::Blocked, Some(&r.message));
            http_error(r.status, id, r.code, &r.message)
        };
        match self.authenticate(&proxy, req.headers()).await {
            Ok(identity) => call.identity = identity,
            Err(r) => return refused(call, Value::Null, r),
        }
        let (parts, body) = req.into_parts();
        let body = match read_request(&proxy, &parts.headers, body).await {
            Ok(b) => b,
            Err(r) => return refused(call, Value::Null, r),
        };
        call.request_bytes = body.len() as u64;
        let Ok(message) = serde_json::from_slice::<Value>(&body) else {
            let r = Refusal::new(
                StatusCode::BAD_REQUEST,
                jsonrpc::PARSE_ERROR,
                "the body is not valid JSON",
            );
            return refused(call, Value::Null, r);
        };
        let kind = match jsonrpc::classify(&message) {
            Ok(kind) => kind,
            Err(e) => {
                let r = Refusal::new(
                    StatusCode::BAD_REQUEST,
                    jsonrpc::INVALID_REQUEST,
                    e.to_string(),
                );
                return refused(call, Value::Null, r);
            }
        };
        let request_id = match &kind {
            Kind::Request { id, .. } => id.clone(),
            _ => Value::Null,
        };
        let Some(era) = era else {
            // Fail closed: a protocol the gateway cannot read is not relayed blind.
            call.overhead = started.elapsed();
            call.finish(
                400,
                Decision::Blocked,
                Some("unsupported MCP-Protocol-Version"),
            );
            return unsupported_version(&parts.headers, Some((request_id, &message)));
        };
        if era == Era::Stateless {
            if let Err(r) = mirror::admit(&parts.headers, &message) {
                return refused(call, request_id, r);
            }
        }
        let initialize = era == Era::Sessions
            && matches!(&kind, Kind::Request { method, .. } if method == "initialize");
        // `initialize` opens a new session: an id it carries is not looked at;
        // the stateless era has none.
        let session = if initialize || era == Era::Stateless {
            None
        } else {
            match self.open_session(&proxy, &parts.headers, call.identity.as_deref()) {
                Ok(session) => session,
                Err(why) => {
                    let id = request_id;
                    call.overhead = started.elapsed();
                    call.finish(
                        404,
                        Decision::Blocked,
                        Some(&format!("MCP session id refused: {}", why.as_str())),
                    );
                    return unknown_session(id);
                }
            }
        };
        let initialize_message = initialize.then(|| message.clone());
        // One session the gateway holds for every client: a stdio process, or
        // a legacy SSE server's stream.
        let shared = match (
            &proxy.stdio,
            session.as_ref().is_some_and(|s| s.legacy_upstream),
        ) {
            (Some(server), _) => Some(server.clone()),
            (None, true) => match self.legacy_server(&proxy).await {
                Some(server) => Some(server),
                None => {
                    call.discard();
                    return unknown_session(request_id);
                }
            },
            (None, false) => None,
        };
        if let Some(server) = &shared {
            // A new process, or one that announced a change: its tools are
            // listed again before this request uses them ([`relist`]).
            self.relist_stdio_if_changed(&proxy, server).await;
        }
        // A session the gateway opened on a stateless server ([`downgrade`]).
        let downgraded = session.as_ref().and_then(|s| s.stateless_meta.clone());
        if downgraded.is_some() {
            if let Some(answer) = downgrade::answer_locally(&kind) {
                call.discard();
                return answer;
            }
        }
        let version = message
            .pointer("/params/protocolVersion")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let mut routed = None;
        let mut mirrors = Vec::new();
        let mut message = message;
        let mut body = body;
        let expected = match kind {
            Kind::Request { id, method } => {
                call.endpoint = format!("mcp:{}", jsonrpc::method_label(&method));
                let pending = match method.as_str() {
                    "tools/list" => Pending::ToolsList,
                    "tools/call" => Pending::ToolsCall,
                    "prompts/get" => Pending::PromptsGet,
                    "resources/read" => Pending::ResourcesRead,
                    "tasks/result" => Pending::TaskResult,
                    "tasks/get" => Pending::TaskGet,
                    _ => Pending::Other,
                };
                // What findings name (a tools/call's tool is in `call.tool`).
                let field = match pending {
                    Pending::PromptsGet => Some("/params/name"),
                    Pending::ResourcesRead => Some("/params/uri"),
                    Pending::TaskResult | Pending::TaskGet => Some("/params/taskId"),
                    _ => None,
                };
                let subject = field
                    .and_then(|f| message.pointer(f))
                    .and_then(Value::as_str)
                    .map(|s| s.chars().take(256).collect())
                    .unwrap_or_default();
                let mut redactor = None;
                let mut flow = None;
                let to_stateless = era == Era::Stateless || downgraded.is_some();
                if to_stateless {
                    mirrors = mirror::method_mirrors(&message);
                }
                if pending == Pending::ToolsCall {
                    // Flows are tracked per session the gateway issued.
                    let flow_key = session.as_ref().and_then(|_| {
                        let presented = parts.headers.get(SESSION_HEADER)?.to_str().ok()?;
                        Some(flows::session_key(&proxy.id, presented))
                    });
                    let mirrored = (era == Era::Stateless).then_some(&parts.headers);
                    match self
                        .admit_call(
                            &proxy,
                            &mut message,
                            &mut call,
                            flow_key.as_deref(),
                            mirrored,
                        )
                        .await
                    {
                        Ok((member, placeholders, labels, definition)) => {
                            flow = flow_key.map(|key| (key, labels));
                            routed = member;
                            if let Some(placeholders) = placeholders {
                                // The server gets the redacted arguments.
                                body = Bytes::from(message.to_string());
                                redactor = Some(Arc::new(placeholders));
                            }
                            if to_stateless {
                                // Mirrors of what the server gets, redacted
                                // values included, never the client's own.
                                mirror::param_mirrors(&definition, &message, &mut mirrors);
                            }
                        }
                        Err((code, text, data)) => {
                            // Tool failures are JSON-RPC errors in HTTP 200; a
                            // header that does not mirror the body is a 400.
                            let status = if code == stateless::HEADER_MISMATCH {
                                StatusCode::BAD_REQUEST
                            } else {
                                StatusCode::OK
                            };
                            call.overhead = started.elapsed();
                            call.finish(status.as_u16(), Decision::Blocked, Some(&text));
                            return json_response(
                                status,
                                &jsonrpc::error_with_data(id, code, &text, data),
                            );
                        }
                    }
                }
                let first_page = pending == Pending::ToolsList
                    && message.pointer("/params/cursor").is_none_or(Value::is_null);
                Some(Expected {
                    id,
                    pending,
                    subject,
                    redactor,
                    flow,
                    first_page,
                    translation: downgraded.as_ref().map(|_| Translation::ToSessions),
                })
            }
            Kind::Notification { .. } | Kind::Response { .. } => None,
        };
        let id = expected.as_ref().map_or(Value::Null, |e| e.id.clone());
        if let Some(members) = proxy.federation.clone() {
            let identity = call.identity.clone();
            let mut headers = std::borrow::Cow::Borrowed(&parts.headers);
            let mut expected = expected;
            let mut version = version;
            // A stateless client is served in a session of the gateway's own
            // with the federation ([`bridge`]).
            let bridged = if era == Era::Stateless {
                let fed = match self
                    .federation_session(&proxy, &members, identity.as_ref())
                    .await
                {
                    Ok(fed) => fed,
                    Err(r) => return failed(&mut call, id, r),
                };
                if let Some(e) = expected.as_mut() {
                    call.overhead = started.elapsed();
                    if let Some(answer) = bridge_request(e, &message, &fed.initialize, &mut call) {
                        return answer;
                    }
                }
                version = fed.claims.protocol_version.clone();
                if let Ok(v) = HeaderValue::from_str(&version) {
                    headers.to_mut().insert(VERSION_HEADER, v);
                }
                Some(fed)
            } else {
                None
            };
            call.overhead = started.elapsed();
            let request = federation::Request {
                headers: &headers,
                session: bridged.as_ref().map(|f| &f.claims).or(session.as_ref()),
                subject: identity.as_ref().map(|i| i.key_id.as_str()),
                version: &version,
                routed,
            };
            return self
                .post_federated(&proxy, &members, request, message, expected, call)
                .await;
        }
        if let Some(server) = shared {
            // One shared session towards the process: the client's id carries
            // no upstream session.
            let legacy = proxy.stdio.is_none();
            let issued = if initialize {
                match self.issue_session(
                    &proxy,
                    call.identity.as_deref(),
                    &version,
                    None,
                    None,
                    legacy,
                ) {
                    Ok(v) => Some(v),
                    Err(r) => return failed(&mut call, id, r),
                }
            } else {
                None
            };
            call.overhead = started.elapsed();
            let mut response = self
                .post_stdio(&proxy, &server, message, expected, call, era)
                .await;
            if let Some(issued) = issued {
                response.headers_mut().insert(SESSION_HEADER, issued);
            }
            return response;
        }

        if let Some(meta) = &downgraded {
            era::stateless_request(&mut message, meta);
            body = Bytes::from(message.to_string());
        }
        let mut expected = expected;
        let mut bridged = None;
        if era == Era::Stateless {
            match self.bridge.upstream_era(&proxy).await {
                Ok(bridge::UpstreamEra::Stateless) => {}
                Ok(bridge::UpstreamEra::Sessions) => {
                    let subject = call.identity.as_ref().map_or("", |i| i.key_id.as_str());
                    let b = match self.bridge.session(&proxy, subject).await {
                        Ok(b) => b,
                        Err(r) => return failed(&mut call, id, r),
                    };
                    if let Some(e) = expected.as_mut() {
                        call.overhead = started.elapsed();
                        if let Some(answer) = bridge_request(e, &message, &b.initialize, &mut call)
                        {
                            return answer;
                        }
                    }
                    bridged = Some(b);
                }
                Err(r) => return failed(&mut call, id, r),
            }
        }
        let send_once = |bridged: Option<&bridge::Bridged>| {
            let (headers, upstream_session, mirrors) = match bridged {
                // The session's version, not the client's; no mirrors: a
                // session-era server reads the body.
                Some(b) => {
                    let mut h = parts.headers.clone();
                    h.insert(VERSION_HEADER, b.version.clone());
                    (std::borrow::Cow::Owned(h), b.session.as_deref(), &[][..])
                }
                None if downgraded.is_some() => (
                    std::borrow::Cow::Owned(downgrade::stateless_headers(&parts.headers)),
                    None,
                    &mirrors[..],
                ),
                None => (
                    std::borrow::Cow::Borrowed(&parts.headers),
                    session.as_ref().and_then(|s| s.upstream("")),
                    &mirrors[..],
                ),
            };
            let upstream = build_upstream(
                &proxy,
                Method::POST,
                &headers,
                upstream_session,
                mirrors,
                body.clone(),
            );
            send(&proxy, upstream)
        };
        // The client's version, for re-listing in its session should the
        // answer's stream announce a tools change (a cheap clone).
        let client_version = parts.headers.get(VERSION_HEADER).cloned();
        call.overhead = started.elapsed();
        let mut response = match send_once(bridged.as_deref()).await {
            Ok(r) => r,
            Err(r) => return failed(&mut call, id, r),
        };
        if let Some(stale) = bridged
            .clone()
            .filter(|_| response.status() == StatusCode::NOT_FOUND)
        {
            // The server forgot the gateway's session: open a new one, once.
            let subject = call.identity.as_ref().map_or("", |i| i.key_id.as_str());
            self.bridge.forget(&proxy, subject, &stale);
            let fresh = match self.bridge.session(&proxy, subject).await {
                Ok(b) => b,
                Err(r) => return failed(&mut call, id, r),
            };
            response = match send_once(Some(&fresh)).await {
                Ok(r) => r,
                Err(r) => return failed(&mut call, id, r),
            };
            bridged = Some(fresh);
        }
        let head_at = Instant::now();
        let (parts, incoming) = response.into_parts();
        if let Err(r) = upstream_refused_us(parts.status) {
            return failed(&mut call, id, r);
        }
        if let Some(init) = initialize_message.filter(|_| parts.status.is_client_error()) {
            // A server that refuses the session era may speak only the
            // legacy HTTP+SSE transport: one shared session, as for stdio.
            if let Some(server) = self.legacy_server(&proxy).await {
                let issued = match self.issue_session(
                    &proxy,
                    call.identity.as_deref(),
                    &version,
                    None,
                    None,
                    true,
                ) {
                    Ok(v) => v,
                    Err(r) => return failed(&mut call, id, r),
                };
                let mut response = self
                    .post_stdio(&proxy, &server, init, expected, call, era)
                    .await;
                response.headers_mut().insert(SESSION_HEADER, issued);
                return response;
            }
            // Or only the stateless one: then the gateway translates
            // ([`downgrade`]).
            if let Ok(true) = self.serves_stateless(&proxy).await {
                let opened = self
                    .initialize_from_discover(&proxy, call.identity.as_deref(), &init)
                    .await;
                return match opened {
                    Ok((answer, session)) => {
                        call.finish(200, Decision::Allowed, None);
                        let mut r = json_response(StatusCode::OK, &answer);
                        r.headers_mut().insert(SESSION_HEADER, session);
                        r
                    }
                    Err(r) => failed(&mut call, id, r),
                };
            }
        }
        let content_type = content_type(&parts.headers);
        let mut head = Response::builder().status(parts.status);
        if let Some(headers) = head.headers_mut() {
            copy_response_headers(&parts.headers, headers);
            if bridged.is_some() || downgraded.is_some() {
                // The client's era is not the server's: the server's version
                // is not the client's business.
                headers.remove(VERSION_HEADER);
            }
        }
        if initialize && parts.status.is_success() {
            let upstream = parts.headers.get(SESSION_HEADER);
            match self.issue_session(
                &proxy,
                call.identity.as_deref(),
                &version,
                upstream,
                None,
                false,
            ) {
                Ok(issued) => {
                    if let Some(headers) = head.headers_mut() {
                        headers.insert(SESSION_HEADER, issued);
                    }
                }
                Err(r) => return failed(&mut call, id, r),
            }
        }
        let Some(expected) = expected else {
            // A notification or response from the client: relay the answer (202).
            call.discard();
            return finish_head(head, Body::new(incoming));
        };
        if !parts.status.is_success() {
            call.finish(
                parts.status.as_u16(),
                Decision::Error,
                Some(&format!("upstream answered {}", parts.status.as_u16())),
            );
            return finish_head(head, Body::new(incoming));
        }
        match content_type {
            ContentType::EventStream => {
                call.stream_started();
                call.overhead += head_at.elapsed();
                // The session a list_changed on this stream belongs to.
                let relist_in =
                    (bridged.is_none() && downgraded.is_none()).then(|| relist::UpstreamSession {
                        id: session
                            .as_ref()
                            .and_then(|s| s.upstream(""))
                            .map(str::to_owned),
                        version: client_version,
                    });
                let body = stream::spawn(
                    self.clone(),
                    proxy,
                    incoming,
                    (Some(expected), Some(call)),
                    relist_in,
                );
                finish_head(head, Body::new(body))
            }
            ContentType::Json | ContentType::Other => {
                let read = tokio::time::timeout(
                    proxy.idle_timeout,
                    read_bounded(incoming, proxy.max_body_bytes),
                )
                .await;
                let bytes = match read {
                    Ok(Ok(b)) => b,
                    Ok(Err(why)) => {
                        let r = Refusal::new(StatusCode::BAD_GATEWAY, jsonrpc::UPSTREAM_ERROR, why);
                        return failed(&mut call, expected.id, r);
                    }
                    Err(_) => {
                        let r = Refusal::new(
                            StatusCode::GATEWAY_TIMEOUT,
                            jsonrpc::UPSTREAM_ERROR,
                            "the upstream answer stalled",
                        );
                        return failed(&mut call, expected.id, r);
                    }
                };
                call.response_bytes = bytes.len() as u64;
                let processed = Instant::now();
                let out = match serde_json::from_slice::<Value>(&bytes) {
                    Ok(mut answer) if is_response_to(&answer, &expected.id) => {
                        let outcome = self.apply(&proxy, &expected, &mut answer, &mut call).await;
                        call.overhead += processed.elapsed();
                        finish_call(&mut call, outcome);
                        Bytes::from(answer.to_string())
                    }
                    _ if expected.pending == Pending::Other => {
                        call.finish(parts.status.as_u16(), Decision::Allowed, None);
                        bytes
                    }
                    _ => {
                        // The gateway cannot check what it cannot read: fail closed.
                        let r = Refusal::new(
                            StatusCode::BAD_GATEWAY,
                            jsonrpc::UPSTREAM_ERROR,
                            "the upstream's answer is not a JSON-RPC response to this request",
                        );
                        return failed(&mut call, expected.id, r);
                    }
                };
                if let Some(headers) = head.headers_mut() {
                    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(out.len()));
                }
                finish_head(head, Body::from(out))
            }
        }
    }

    /// A checked client message for a stdio server. Failures of the server are
    /// JSON-RPC errors with HTTP 200: they belong to one request, and the
    /// client's session with the gateway stays usable.
    async fn post_stdio(
        &self,
        proxy: &ProxyRuntime,
        server: &stdio::StdioServer,
        message: Value,
        expected: Option<Expected>,
        mut call: McpCall,
        era: Era,
    ) -> Response<Body> {
        let Some(expected) = expected else {
            server.notify(message).await;
            call.discard();
            let mut accepted = Response::new(Body::empty());
            *accepted.status_mut() = StatusCode::ACCEPTED;
            return accepted;
        };
        let method = message
            .get("method")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        // A stateless client is served on the process's one session, as
        // [`bridge`] does for HTTP servers.
        let mut expected = expected;
        if era == Era::Stateless {
            // Only `server/discover` reads the server's initialize result.
            let initialize = match method.as_str() {
                "server/discover" => match server.initialize(expected.id.clone()).await {
                    Ok(mut a) => a.get_mut("result").map(Value::take).unwrap_or_default(),
                    Err(_) => Value::Null,
                },
                _ => Value::Null,
            };
            if let Some(answer) = bridge_request(&mut expected, &message, &initialize, &mut call) {
                return answer;
            }
        }
        let answer = match method.as_str() {
            "initialize" if era == Era::Sessions => server.initialize(expected.id.clone()).await,
            _ => server.call(message).await,
        };
        let mut answer = match answer {
            Ok(answer) => answer,
            Err(e) => {
                let why = e.to_string();
                call.finish(200, Decision::Error, Some(&why));
                return json_response(
                    StatusCode::OK,
                    &jsonrpc::error(expected.id, jsonrpc::UPSTREAM_ERROR, &why),
                );
            }
        };
        let processed = Instant::now();
        let outcome = self.apply(proxy, &expected, &mut answer, &mut call).await;
        call.overhead += processed.elapsed();
        let out = answer.to_string();
        call.response_bytes = out.len() as u64;
        finish_call(&mut call, outcome);
        let mut response = Response::new(Body::from(out));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response
    }

    /// GET (the server-to-client stream) and DELETE (end of session).
    async fn relay_other(
        self: &Arc<Self>,
        proxy: Arc<ProxyRuntime>,
        req: Request<Body>,
    ) -> Response<Body> {
        let identity = match self.authenticate(&proxy, req.headers()).await {
            Ok(identity) => identity,
            Err(r) => return r.into_response(),
        };
        let method = req.method().clone();
        if proxy.stdio.is_some() {
            // One shared session towards the process: no server-to-client
            // stream, no client session to end.
            return method_not_allowed("this MCP proxy's server runs over stdio: use POST", "POST");
        }
        let session = match self.open_session(&proxy, req.headers(), identity.as_deref()) {
            Ok(session) => session,
            Err(why) => {
                let mut call = McpCall::new(proxy.clone(), self.events.clone(), self.clock.now());
                call.identity = identity;
                call.endpoint = format!("mcp:{}", method.as_str().to_ascii_lowercase());
                call.finish(
                    404,
                    Decision::Blocked,
                    Some(&format!("MCP session id refused: {}", why.as_str())),
                );
                return unknown_session(Value::Null);
            }
        };
        let legacy = session
            .as_ref()
            .map_or(proxy.legacy_sse.get().is_some(), |s| s.legacy_upstream);
        if legacy {
            // The shared session with a legacy SSE server: as for stdio.
            return method_not_allowed(
                "this MCP proxy's server speaks the legacy HTTP+SSE transport: use POST",
                "POST",
            );
        }
        let stateless_server = match &session {
            Some(s) => s.stateless_meta.is_some(),
            // Without a session: only a server already known to be stateless.
            None => {
                proxy.stdio.is_none()
                    && proxy.federation.is_none()
                    && self.bridge.known_era(&proxy) == Some(bridge::UpstreamEra::Stateless)
            }
        };
        if stateless_server {
            // A stateless server: no stream to listen on, nothing to end there.
            if method == Method::DELETE {
                if let Some(presented) = req.headers().get(SESSION_HEADER) {
                    self.ended.end(presented);
                }
                let mut done = Response::new(Body::empty());
                *done.status_mut() = StatusCode::NO_CONTENT;
                return done;
            }
            return method_not_allowed("this MCP proxy's server is stateless (protocol 2026-07-28): it has no server-to-client stream", "POST, DELETE");
        }
        if let Some(members) = &proxy.federation {
            return federation::end_or_refuse(
                &proxy,
                members,
                method,
                req.headers(),
                session.as_ref(),
            )
            .await;
        }
        // A GET that resumes a POST stream the gateway sealed the ids of: the
        // server gets its own event id, the response is checked (see [`resume`]).
        let resumed = req
            .headers()
            .get(LAST_EVENT_ID)
            .filter(|_| method == Method::GET)
            .and_then(|v| v.to_str().ok())
            .and_then(|presented| {
                let subject = identity.as_ref().map(|i| i.key_id.as_str());
                self.event_ids.open(presented, &proxy.id, subject)
            });
        let mut headers = None;
        if let Some(r) = &resumed {
            let mut h = req.headers().clone();
            match HeaderValue::from_str(&r.event_id) {
                Ok(v) => h.insert(LAST_EVENT_ID, v),
                Err(_) => h.remove(LAST_EVENT_ID),
            };
            headers = Some(h);
        }
        let upstream = build_upstream(
            &proxy,
            method.clone(),
            headers.as_ref().unwrap_or(req.headers()),
            session.as_ref().and_then(|s| s.upstream("")),
            &[],
            Bytes::new(),
        );
        let response = match send(&proxy, upstream).await {
            Ok(r) => r,
            Err(r) => return http_error(r.status, Value::Null, r.code, &r.message),
        };
        let (parts, incoming) = response.into_parts();
        if let Err(r) = upstream_refused_us(parts.status) {
            return http_error(r.status, Value::Null, r.code, &r.message);
        }
        let mut head = Response::builder().status(parts.status);
        if let Some(headers) = head.headers_mut() {
            copy_response_headers(&parts.headers, headers);
        }
        if method == Method::GET
            && parts.status.is_success()
            && content_type(&parts.headers) == ContentType::EventStream
        {
            let (expected, call) = match resumed {
                Some(r) => {
                    let mut call =
                        McpCall::new(proxy.clone(), self.events.clone(), self.clock.now());
                    call.identity = identity;
                    call.endpoint = format!("mcp:{}", r.expected.pending.method());
                    call.tool = r.tool;
                    call.stream_started();
                    (Some(r.expected), Some(call))
                }
                None => (None, None),
            };
            let upstream = relist::UpstreamSession::new(
                session.as_ref().and_then(|s| s.upstream("")),
                req.headers(),
            );
            let body = stream::spawn(
                self.clone(),
                proxy,
                incoming,
                (expected, call),
                Some(upstream),
            );
            return finish_head(head, Body::new(body));
        }
        finish_head(head, Body::new(incoming))
    }

    /// A `tools/call` before it leaves: the tool must be approved, the session's
    /// flow must allow it and its arguments must pass the policy. `Err`: JSON-RPC
    /// code, message, data. For a federation, the call is routed first; `Ok`: the
    /// member's index (`None` without federation), the placeholders when `redact`
    /// rules rewrote the arguments in `message`, and the tool's flow labels.
    async fn admit_call(
        &self,
        proxy: &ProxyRuntime,
        message: &mut Value,
        call: &mut McpCall,
        flow_key: Option<&str>,
        mirrored: Option<&HeaderMap>,
    ) -> Result<(Option<(usize, String)>, Option<Redactor>, Labels, Value), (i64, String, Value)>
    {
        let Some(name) = message
            .pointer("/params/name")
            .and_then(Value::as_str)
            .map(str::to_owned)
        else {
            return Err((
                jsonrpc::INVALID_PARAMS,
                "tools/call needs params.name".into(),
                json!({"reason": "invalid_params"}),
            ));
        };
        let name = name.as_str();
        call.tool = Some(name.chars().take(256).collect());
        if !tool_allowed(proxy, call.identity.as_deref(), name) {
            return Err(not_available(name));
        }
        let (member, server, own) = match &proxy.federation {
            None => (None, "", name),
            Some(members) => match self.route_tool(proxy, members, name).await {
                Ok((index, own)) => (Some(index), members.name(index), own),
                Err(refusal) => return Err(refusal),
            },
        };
        let definition = match self.inventory.check_call(proxy, server, own).await {
            Err(e) => {
                tracing::error!(proxy = %proxy.name, error = %e, "MCP tool inventory unavailable; call refused");
                return Err((
                    jsonrpc::GATEWAY_UNAVAILABLE,
                    "the gateway cannot check its tool inventory right now".into(),
                    json!({"reason": "inventory_unavailable"}),
                ));
            }
            Ok(Err(refusal)) => {
                let (reason, status) = match &refusal {
                    inventory::CallRefusal::Unknown => ("unknown_tool", Value::Null),
                    inventory::CallRefusal::NotApproved(s) => {
                        ("tool_not_approved", Value::from(s.as_str()))
                    }
                };
                return Err((
                    jsonrpc::INVALID_PARAMS,
                    refusal.message(name),
                    json!({"reason": reason, "status": status}),
                ));
            }
            Ok(Ok(definition)) => definition,
        };
        if let Some(headers) = mirrored {
            mirror::check_params(headers, &definition, message)?;
        }
        let labels = flows::labels_of(&proxy.mcp_tool_labels, name, &definition);
        if let Some(key) = flow_key {
            self.check_flow(proxy, key, name, labels, call)?;
        }
        let mut placeholders = None;
        if let (Some(engine), Some(params)) = (&proxy.policy, message.get_mut("params")) {
            match policy::check_arguments(engine, params, name, &mut call.findings) {
                Ok(redacted) => placeholders = redacted,
                Err(rules) => {
                    return Err((
                        jsonrpc::POLICY_BLOCKED,
                        format!("tool call blocked by policy: {}", rules.join(", ")),
                        json!({"reason": "policy", "rules": rules}),
                    ));
                }
            }
        }
        self.check_tool_rate(proxy, name, call.identity.as_deref())
            .await?;
        Ok((
            member.map(|index| (index, own.to_owned())),
            placeholders,
            labels,
            definition,
        ))
    }

    /// A tool result reached the client: its session has now read what the tool
    /// returns.
    fn record_flow(&self, expected: &Expected, call: &McpCall) {
        if let (Some((key, labels)), Some(tool)) = (&expected.flow, &call.tool) {
            self.flows.record(key, tool, *labels);
        }
    }

    /// The session's toxic-flow rules for a call of `name`: a broken `block` rule
    /// refuses it, an `alert` rule lets it through; either way the finding goes
    /// in the event (and raises an alert).
    fn check_flow(
        &self,
        proxy: &ProxyRuntime,
        key: &str,
        name: &str,
        labels: Labels,
        call: &mut McpCall,
    ) -> Result<(), (i64, String, Value)> {
        if labels.is_empty() {
            return Ok(());
        }
        let seen = self.flows.seen(key);
        let Some(rule) = portcullis_core::flow::judge(&proxy.mcp_flow_rules, seen.labels, labels)
        else {
            return Ok(());
        };
        let culprits = seen.culprits(rule);
        let why = flows::describe(rule, name, &culprits);
        let block = rule.action == FlowAction::Block;
        call.findings.push(json!({
            "rule": flows::TOXIC_FLOW_RULE,
            "category": "toxic_flow",
            "severity": "high",
            "action": if block { "block" } else { "alert" },
            "location": "tool_call",
            "flow": rule.describe(),
            "after": culprits,
        }));
        if !block {
            return Ok(());
        }
        Err((
            jsonrpc::POLICY_BLOCKED,
            format!("tool call blocked by flow policy: {why}"),
            json!({"reason": "toxic_flow", "flow": rule.describe(), "after": culprits}),
        ))
    }

    /// The proxy's per-key calls per minute for the tool (`mcp_tool_rate_limits`:
    /// the exact name, else the first matching glob). Fails closed when the
    /// limiter is away.
    async fn check_tool_rate(
        &self,
        proxy: &ProxyRuntime,
        name: &str,
        identity: Option<&Identity>,
    ) -> Result<(), (i64, String, Value)> {
        let Some((pattern, rpm)) = tool_rate(&proxy.mcp_tool_rates, name) else {
            return Ok(());
        };
        let key_id = identity.map_or("", |i| i.key_id.as_str());
        let bucket = format!("mcp:{}:{pattern}:{key_id}", proxy.id);
        let subject = Subject {
            key_id: &bucket,
            group_id: "",
            key: RateLimits {
                rpm: Some(u64::from(rpm)),
                tpm: None,
            },
            group: RateLimits::default(),
        };
        let verdict = self.limiter.check(&subject).await.map_err(|e| {
            tracing::error!(proxy = %proxy.name, error = %e, "rate limit check failed; refusing the MCP tool call");
            (
                jsonrpc::GATEWAY_UNAVAILABLE,
                "the gateway cannot check rate limits right now; retry shortly".to_owned(),
                json!({"reason": "limiter_unavailable"}),
            )
        })?;
        if verdict.allowed {
            return Ok(());
        }
        let secs = verdict.retry_after.as_secs().max(1);
        Err((
            jsonrpc::RATE_LIMITED,
            format!("rate limit exceeded for tool {name:?} ({rpm} calls per minute per key); retry after {secs} s"),
            json!({"reason": "rate_limited", "retry_after_secs": secs, "limit_per_minute": rpm}),
        ))
    }

    /// Applies the gateway's checks to the response to the client's request, in
    /// place, then puts it in the form of the client's protocol era. `Some`:
    /// what went wrong, the response now being a JSON-RPC error.
    pub(crate) async fn apply(
        &self,
        proxy: &ProxyRuntime,
        expected: &Expected,
        answer: &mut Value,
        call: &mut McpCall,
    ) -> Option<(Decision, String)> {
        let outcome = self.check_answer(proxy, expected, answer, call).await;
        if let Some(result) = answer.get_mut("result") {
            match &expected.translation {
                Some(Translation::ToStateless { method, .. }) => {
                    era::upgrade_result(method, result)
                }
                Some(Translation::ToSessions) => {
                    if let Err(why) = era::downgrade_result(result) {
                        *answer = jsonrpc::error(expected.id.clone(), jsonrpc::UPSTREAM_ERROR, why);
                        return Some((Decision::Error, why.into()));
                    }
                }
                None => {}
            }
            // The listing is filtered for the caller's key and group: a shared
            // cache must not hand it to another.
            if expected.pending == Pending::ToolsList {
                if let Some(scope) = result.get_mut("cacheScope") {
                    *scope = Value::from("private");
                }
            }
        }
        outcome
    }

    async fn check_answer(
        &self,
        proxy: &ProxyRuntime,
        expected: &Expected,
        answer: &mut Value,
        call: &mut McpCall,
    ) -> Option<(Decision, String)> {
        if answer.get("error").is_some() {
            return None;
        }
        let id = expected.id.clone();
        match expected.pending {
            Pending::Other => None,
            Pending::ToolsList => {
                let Some(listed) = answer.pointer("/result/tools").and_then(Value::as_array) else {
                    let why = "the server's tools/list result has no tools array";
                    *answer = jsonrpc::error(id, jsonrpc::UPSTREAM_ERROR, why);
                    return Some((Decision::Error, why.into()));
                };
                let whole = expected.first_page
                    && answer
                        .pointer("/result/nextCursor")
                        .is_none_or(Value::is_null);
                let reconciled = self
                    .inventory
                    .reconcile(proxy, "", listed, whole, &call.id, call.identity.as_deref())
                    .await;
                match reconciled {
                    Ok(listing) => {
                        call.findings.extend(listing.findings);
                        if let Some(Value::Array(tools)) = answer.pointer_mut("/result/tools") {
                            let identity = call.identity.as_deref();
                            tools.retain(|t| {
                                tools::tool_name(t).is_some_and(|n| {
                                    listing.visible.contains(n) && tool_allowed(proxy, identity, n)
                                })
                            });
                        }
                        None
                    }
                    Err(e) => {
                        tracing::error!(proxy = %proxy.name, error = %e, "MCP tool inventory unavailable; listing refused");
                        let why = "the gateway cannot check its tool inventory right now";
                        *answer = jsonrpc::error(id, jsonrpc::GATEWAY_UNAVAILABLE, why);
                        Some((Decision::Error, why.into()))
                    }
                }
            }
            Pending::ToolsCall
            | Pending::PromptsGet
            | Pending::ResourcesRead
            | Pending::TaskResult
            | Pending::TaskGet => {
                let shape = expected.pending.shape()?;
                let engine = proxy.policy.as_deref();
                let restore = expected.redactor.as_deref();
                if engine.is_none() && restore.is_none() {
                    self.record_flow(expected, call);
                    return None;
                }
                let tool = call.tool.clone().unwrap_or_default();
                let (subject, what) = match expected.pending {
                    Pending::PromptsGet => (("prompt", expected.subject.as_str()), "prompt"),
                    Pending::ResourcesRead => {
                        (("resource", expected.subject.as_str()), "resource contents")
                    }
                    Pending::TaskResult | Pending::TaskGet => {
                        (("task", expected.subject.as_str()), "task result")
                    }
                    _ => (("tool", tool.as_str()), "tool result"),
                };
                if expected.pending == Pending::TaskGet {
                    // A task's status: only a finished one carries a result.
                    answer.pointer("/result/result")?;
                }
                let found = match expected.pending {
                    Pending::TaskGet => answer.pointer_mut("/result/result"),
                    _ => answer.get_mut("result"),
                };
                let Some(result) = found else {
                    // Neither a result nor an error: nothing the client could use
                    // passes unchecked.
                    let why = "the server's answer has neither a result nor an error";
                    *answer = jsonrpc::error(id, jsonrpc::UPSTREAM_ERROR, why);
                    return Some((Decision::Error, why.into()));
                };
                let checked = policy::check_answer(
                    engine,
                    shape,
                    result,
                    subject,
                    restore,
                    &mut call.findings,
                );
                if checked.is_ok() {
                    self.record_flow(expected, call);
                }
                let rules = checked.err()?;
                let why = format!("{what} blocked by policy: {}", rules.join(", "));
                *answer = jsonrpc::error_with_data(
                    id,
                    jsonrpc::POLICY_BLOCKED,
                    &why,
                    json!({"reason": "policy", "rules": rules}),
                );
                Some((Decision::Blocked, why))
            }
        }
    }
}

/// The refusal of a tool the caller may not use: the same whether or not the
/// tool exists.
pub(crate) fn not_available(name: &str) -> (i64, String, Value) {
    (
        jsonrpc::INVALID_PARAMS,
        format!("tool {name:?} is not available to this key"),
        json!({"reason": "tool_not_allowed"}),
    )
}

/// Whether the proxy's and the caller's group's allow and deny lists let the
/// caller see and call the tool (by the name the client sees).
pub(crate) fn tool_allowed(proxy: &ProxyRuntime, identity: Option<&Identity>, name: &str) -> bool {
    proxy.mcp_access.allows(name) && identity.is_none_or(|i| i.group_tools.allows(name))
}

/// The rate limit that applies to a tool: the pattern naming it exactly, else the
/// first glob (in name order) that matches; the pattern and calls per minute.
fn tool_rate<'p>(
    rates: &'p [(String, portcullis_core::mcp::ToolPattern, u32)],
    name: &str,
) -> Option<(&'p str, u32)> {
    rates
        .iter()
        .find(|(p, _, _)| p == name)
        .or_else(|| rates.iter().find(|(_, m, _)| m.matches(name)))
        .map(|(p, _, rpm)| (p.as_str(), *rpm))
}

/// Ends a call that failed at or after the upstream, and says so to the client.
fn failed(call: &mut McpCall, id: Value, r: Refusal) -> Response<Body> {
    call.finish(r.status.as_u16(), Decision::Error, Some(&r.message));
    http_error(r.status, id, r.code, &r.message)
}

/// Ends a call after its response was checked.
pub(crate) fn finish_call(call: &mut McpCall, outcome: Option<(Decision, String)>) {
    match outcome {
        None => call.finish(200, Decision::Allowed, None),
        Some((decision, why)) => call.finish(200, decision, Some(&why)),
    }
}

pub(crate) fn is_response_to(message: &Value, id: &Value) -> bool {
    matches!(jsonrpc::classify(message), Ok(Kind::Response { id: ref got }) if got == id)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ContentType {
    Json,
    EventStream,
    Other,
}

fn content_type(headers: &HeaderMap) -> ContentType {
    let value = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if value.starts_with("text/event-stream") {
        ContentType::EventStream
    } else if value.starts_with("application/json") {
        ContentType::Json
    } else {
        ContentType::Other
    }
}

fn copy_response_headers(from: &HeaderMap, to: &mut HeaderMap) {
    for name in FORWARDED_RESPONSE {
        for value in from.get_all(name) {
            to.append(HeaderName::from_static(name), value.clone());
        }
    }
}

fn finish_head(head: http::response::Builder, body: Body) -> Response<Body> {
    head.body(body).unwrap_or_else(|_| {
        http_error(
            StatusCode::BAD_GATEWAY,
            Value::Null,
            jsonrpc::UPSTREAM_ERROR,
            "the upstream's answer cannot be relayed",
        )
    })
}

/// What a client is told for a session id that does not open: the same as for a
/// session that ended, whatever the reason.
fn unknown_session(id: Value) -> Response<Body> {
    http_error(
        StatusCode::NOT_FOUND,
        id,
        jsonrpc::INVALID_REQUEST,
        "session not found: initialize a new session",
    )
}

fn build_upstream(
    proxy: &ProxyRuntime,
    method: Method,
    client: &HeaderMap,
    upstream_session: Option<&str>,
    mirrors: &[(HeaderName, HeaderValue)],
    body: Bytes,
) -> Result<Request<Full<Bytes>>, Refusal> {
    let target = Target {
        uri: proxy.mcp_uri.as_ref(),
        credential: proxy.credential_header.as_ref(),
    };
    build_request(target, method, client, upstream_session, body).map(|mut r| {
        r.headers_mut().extend(mirrors.iter().cloned());
        r
    })
}

/// Where an upstream request goes: a proxy's one server or a federation member.
#[derive(Clone, Copy)]
pub(crate) struct Target<'a> {
    uri: Option<&'a http::Uri>,
    credential: Option<&'a (HeaderName, HeaderValue)>,
}

fn build_request(
    target: Target<'_>,
    method: Method,
    client: &HeaderMap,
    upstream_session: Option<&str>,
    body: Bytes,
) -> Result<Request<Full<Bytes>>, Refusal> {
    let uri = target.uri.cloned().ok_or_else(|| {
        Refusal::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            jsonrpc::INTERNAL_ERROR,
            "upstream URL unusable",
        )
    })?;
    let is_post = method == Method::POST;
    let mut builder = Request::builder().method(method).uri(uri);
    if let Some(headers) = builder.headers_mut() {
        for name in FORWARDED_REQUEST {
            for value in client.get_all(name) {
                headers.append(HeaderName::from_static(name), value.clone());
            }
        }
        if is_post {
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
        }
        if !headers.contains_key(header::ACCEPT) {
            headers.insert(
                header::ACCEPT,
                HeaderValue::from_static("application/json, text/event-stream"),
            );
        }
        headers.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("identity"),
        );
        if let Some((name, value)) = target.credential {
            headers.insert(name.clone(), value.clone());
        }
        // Checked to be visible ASCII when the session id was issued.
        if let Some(value) = upstream_session.and_then(|s| HeaderValue::from_str(s).ok()) {
            headers.insert(SESSION_HEADER, value);
        }
    }
    builder.body(Full::new(body)).map_err(|_| {
        Refusal::new(
            StatusCode::BAD_REQUEST,
            jsonrpc::INVALID_REQUEST,
            "request cannot be forwarded",
        )
    })
}

async fn send(
    proxy: &ProxyRuntime,
    request: Result<Request<Full<Bytes>>, Refusal>,
) -> Result<Response<hyper::body::Incoming>, Refusal> {
    let request = request?;
    match tokio::time::timeout(proxy.first_byte_timeout, proxy.client.request(request)).await {
        Err(_) => Err(Refusal::new(
            StatusCode::GATEWAY_TIMEOUT,
            jsonrpc::UPSTREAM_ERROR,
            format!(
                "the upstream MCP server did not answer within {} ms",
                proxy.first_byte_timeout.as_millis()
            ),
        )),
        Ok(Err(e)) => {
            tracing::warn!(proxy = %proxy.name, error = %e, "MCP upstream request failed");
            Err(Refusal::new(
                StatusCode::BAD_GATEWAY,
                jsonrpc::UPSTREAM_ERROR,
                "the upstream MCP server is unreachable",
            ))
        }
        Ok(Ok(response)) => Ok(response),
    }
}

/// The upstream refusing the gateway's own credential is the gateway's problem,
/// not the client's: never pass its auth challenge on.
fn upstream_refused_us(status: StatusCode) -> Result<(), Refusal> {
    match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(Refusal::new(
            StatusCode::BAD_GATEWAY,
            jsonrpc::UPSTREAM_ERROR,
            "the upstream MCP server refused the gateway's credential",
        )),
        _ => Ok(()),
    }
}

async fn read_request(
    proxy: &ProxyRuntime,
    headers: &HeaderMap,
    body: Body,
) -> Result<Bytes, Refusal> {
    let too_large = || {
        Refusal::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            jsonrpc::INVALID_REQUEST,
            format!(
                "the message is larger than this proxy's limit of {} bytes",
                proxy.max_body_bytes
            ),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > proxy.max_body_bytes) {
        return Err(too_large());
    }
    match Limited::new(body, proxy.max_body_bytes).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(too_large()),
        Err(_) => Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            jsonrpc::INVALID_REQUEST,
            "could not read the request body",
        )),
    }
}

async fn read_bounded(
    mut body: hyper::body::Incoming,
    limit: usize,
) -> Result<Bytes, &'static str> {
    let mut buf = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| "the upstream connection broke mid-response")?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > limit {
                return Err("the upstream's answer is larger than this proxy's max_body_bytes");
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}

fn json_response(status: StatusCode, value: &Value) -> Response<Body> {
    let mut response = Response::new(Body::from(value.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// 405 with the methods the path takes.
fn method_not_allowed(message: &str, allow: &'static str) -> Response<Body> {
    let mut r = http_error(
        StatusCode::METHOD_NOT_ALLOWED,
        Value::Null,
        jsonrpc::INVALID_REQUEST,
        message,
    );
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    r
}

/// 400 with an `UnsupportedProtocolVersionError` (the request's id when it is
/// known). A client that speaks the stateless era (it mirrors its method, or
/// puts a version in `_meta`) is offered the stateless versions, as
/// `server/discover` lists them; any other, every version the gateway relays.
fn unsupported_version(headers: &HeaderMap, request: Option<(Value, &Value)>) -> Response<Body> {
    let requested = headers
        .get(mcp::VERSION_HEADER)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    let stateless_client = headers.contains_key(stateless::METHOD_HEADER)
        || request.as_ref().is_some_and(|(_, m)| {
            m.pointer("/params/_meta")
                .and_then(|meta| meta.get(stateless::META_VERSION))
                .is_some()
        });
    let supported: Vec<&str> = if stateless_client {
        stateless::VERSIONS.to_vec()
    } else {
        mcp::supported_versions().collect()
    };
    let message = format!(
        "unsupported MCP-Protocol-Version {requested:?}: this gateway relays {}",
        supported.join(", ")
    );
    let mut body = json!({"jsonrpc": "2.0", "error": {
        "code": stateless::UNSUPPORTED_VERSION,
        "message": message,
        "data": {"supported": supported, "requested": requested},
    }});
    if let Some((id, _)) = request.filter(|(id, _)| !id.is_null()) {
        body["id"] = id;
    }
    json_response(StatusCode::BAD_REQUEST, &body)
}

/// What the gateway answers a stateless client of a session-era server itself
/// (the gateway is the stateless server it talks to): an invalid `_meta`
/// (400, -32602), a method the stateless era does not have or the bridge
/// cannot serve (404, -32601), and `server/discover` from the server's
/// `initialize` result. `None`: the request goes to the server.
fn answer_locally(message: &Value, id: &Value, initialize: &Value) -> Option<(StatusCode, Value)> {
    if let Err(why) = stateless::check_meta(message) {
        let error = jsonrpc::error(id.clone(), jsonrpc::INVALID_PARAMS, why);
        return Some((StatusCode::BAD_REQUEST, error));
    }
    let method = message.get("method").and_then(Value::as_str).unwrap_or("");
    match method {
        "server/discover" => Some((
            StatusCode::OK,
            json!({"jsonrpc": "2.0", "id": id, "result": era::discover_result(initialize)}),
        )),
        // No server-to-client stream to listen on in a bridged session.
        "subscriptions/listen" => Some((
            StatusCode::NOT_FOUND,
            jsonrpc::error(
                id.clone(),
                jsonrpc::METHOD_NOT_FOUND,
                "subscriptions/listen is not available: this proxy's server speaks the session era",
            ),
        )),
        m if stateless::CLIENT_METHODS.contains(&m) => None,
        _ => Some((
            StatusCode::NOT_FOUND,
            jsonrpc::error(
                id.clone(),
                jsonrpc::METHOD_NOT_FOUND,
                &format!(
                    "method not found in protocol 2026-07-28: {}",
                    jsonrpc::method_label(method)
                ),
            ),
        )),
    }
}

/// A stateless client's request to a session-era server (or federation):
/// answered here ([`answer_locally`]: the event finished, the response given),
/// or prepared to be relayed ([`bridge_expected`]).
fn bridge_request(
    expected: &mut Expected,
    message: &Value,
    initialize: &Value,
    call: &mut McpCall,
) -> Option<Response<Body>> {
    if let Some((status, answer)) = answer_locally(message, &expected.id, initialize) {
        let decision = if status.is_success() {
            Decision::Allowed
        } else {
            Decision::Blocked
        };
        call.finish(status.as_u16(), decision, None);
        return Some(json_response(status, &answer));
    }
    bridge_expected(expected, message);
    None
}

/// A bridged request's answer is upgraded to the stateless form, and its log
/// messages kept to the level asked for in `_meta`.
fn bridge_expected(expected: &mut Expected, message: &Value) {
    let method = message.get("method").and_then(Value::as_str).unwrap_or("");
    let log_floor = message
        .pointer("/params/_meta")
        .and_then(|m| m.get(stateless::META_LOG_LEVEL))
        .and_then(Value::as_str)
        .and_then(stateless::log_severity);
    expected.translation = Some(Translation::ToStateless {
        method: method.into(),
        log_floor,
    });
}

/// An HTTP-level refusal with a JSON-RPC error body (no `id` when `id` is
/// null: the request's id is unknown).
pub fn http_error(status: StatusCode, id: Value, code: i64, message: &str) -> Response<Body> {
    let mut response = json_response(status, &jsonrpc::mcp_error(id, code, message));
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"portcullis\""),
        );
    }
    if crate::relay::refused_unread(status) {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::tool_rate;
    use portcullis_core::mcp::ToolPattern;

    #[test]
    fn the_exact_name_wins_then_the_first_glob_in_name_order() {
        let rates: Vec<_> = [("fs__*", 30), ("fs__w*", 5), ("fs__write", 2)]
            .into_iter()
            .map(|(p, n)| (p.to_owned(), ToolPattern::new(p), n))
            .collect();
        assert_eq!(tool_rate(&rates, "fs__write"), Some(("fs__write", 2)));
        assert_eq!(tool_rate(&rates, "fs__wipe"), Some(("fs__*", 30)));
        assert_eq!(tool_rate(&rates, "fs__read"), Some(("fs__*", 30)));
        assert_eq!(tool_rate(&rates, "echo"), None);
    }
}
