//! A small MCP client for the scanner: JSON-RPC requests over Streamable HTTP
//! (JSON or SSE answers) or over a child process's stdin/stdout. Every wait has a
//! deadline and every message a size limit.

use crate::checks::clip;
use crate::error::{Result, ScanError};
use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, ACCEPT, CONTENT_TYPE};
use http::{Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use portcullis_protocol::mcp::{era, stateless, SESSION_HEADER, VERSION_HEADER};
use portcullis_protocol::sse::SseFramer;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout};

/// The version offered in `initialize`; the server's answer is used afterwards.
pub const CLIENT_VERSION: &str = "2025-11-25";

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub timeout: Duration,
    pub max_message: usize,
}

/// What one HTTP exchange gave back.
#[derive(Debug)]
pub enum Reply {
    /// The JSON-RPC response to the request.
    Message(Value),
    /// 202/204: nothing to read (a notification was accepted).
    Accepted,
    /// A status the scanner reports (401, 403, 404, 5xx, ...).
    Status(StatusCode),
}

type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

pub struct HttpTransport {
    uri: Uri,
    /// How the server is named in errors (the URL without credentials, for the API).
    shown: String,
    headers: Vec<(HeaderName, HeaderValue)>,
    client: HttpClient,
    session: Option<HeaderValue>,
    version: Option<HeaderValue>,
    /// The server speaks the stateless era (2026-07-28): each request carries
    /// its `_meta` and mirrored headers, and there is no session.
    stateless: bool,
    limits: Limits,
}

impl HttpTransport {
    /// `shown` names the server in errors.
    pub fn new(
        uri: Uri,
        shown: String,
        headers: Vec<(HeaderName, HeaderValue)>,
        limits: Limits,
    ) -> Result<Self> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(limits.timeout));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
            .map_err(|e| ScanError::Tls(e.to_string()))?
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(4)
            .build(https);
        Ok(Self {
            uri,
            shown,
            headers,
            client,
            session: None,
            version: None,
            stateless: false,
            limits,
        })
    }

    pub fn set_version(&mut self, version: &str) {
        self.version = HeaderValue::from_str(version).ok();
    }

    /// From now on, requests are those of the stateless era.
    pub fn set_stateless(&mut self) {
        self.stateless = true;
    }

    /// Back to the session era (after a probe).
    pub fn set_sessions(&mut self) {
        self.stateless = false;
    }

    /// Posts one message; with `id`, waits for the response carrying it.
    /// `credentials: false` leaves out the `--header`s (the no-authentication probe).
    pub async fn post(
        &mut self,
        message: &Value,
        id: Option<i64>,
        credentials: bool,
    ) -> Result<Reply> {
        let limits = self.limits;
        tokio::time::timeout(limits.timeout, self.exchange(message, id, credentials))
            .await
            .map_err(|_| ScanError::Timeout(limits.timeout.as_secs()))?
    }

    async fn exchange(
        &mut self,
        message: &Value,
        id: Option<i64>,
        credentials: bool,
    ) -> Result<Reply> {
        let mut builder = Request::builder()
            .method(Method::POST)
            .uri(self.uri.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, "application/json, text/event-stream");
        let mut stateless_message = None;
        if self.stateless {
            let mut m = message.clone();
            era::stateless_request(&mut m, &scanner_meta());
            for (name, value) in stateless_headers(&m) {
                builder = builder.header(name, value);
            }
            stateless_message = Some(m);
        }
        let message = stateless_message.as_ref().unwrap_or(message);
        if credentials {
            for (name, value) in &self.headers {
                builder = builder.header(name, value);
            }
            if let Some(session) = &self.session {
                builder = builder.header(SESSION_HEADER, session);
            }
            if let Some(version) = self.version.as_ref().filter(|_| !self.stateless) {
                builder = builder.header(VERSION_HEADER, version);
            }
        }
        let request = builder
            .body(Full::new(Bytes::from(message.to_string())))
            .map_err(|e| ScanError::Protocol(format!("cannot build the request: {e}")))?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| ScanError::Unreachable {
                target: self.shown.clone(),
                detail: error_chain(&e),
            })?;
        let status = response.status();
        if credentials && self.session.is_none() {
            if let Some(session) = response.headers().get(SESSION_HEADER) {
                self.session = Some(session.clone());
            }
        }
        if status == StatusCode::ACCEPTED || status == StatusCode::NO_CONTENT {
            return Ok(Reply::Accepted);
        }
        if !status.is_success() {
            return Ok(Reply::Status(status));
        }
        let Some(id) = id else {
            return Ok(Reply::Accepted);
        };
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        let mut body = response.into_body();
        if content_type.starts_with("text/event-stream") {
            let mut framer = SseFramer::new(self.limits.max_message);
            let mut frames = Vec::new();
            let mut total = 0usize;
            let max_total = self.limits.max_message.saturating_mul(8);
            loop {
                let frame = match body.frame().await {
                    Some(frame) => frame.map_err(|e| {
                        ScanError::Protocol(format!("reading the event stream: {e}"))
                    })?,
                    None => break,
                };
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                total += data.len();
                if total > max_total {
                    return Err(ScanError::Protocol(format!(
                        "the event stream exceeded {max_total} bytes without a response"
                    )));
                }
                framer
                    .push(&data, &mut frames)
                    .map_err(|e| ScanError::Protocol(e.to_string()))?;
                for frame in frames.drain(..) {
                    if let Some(found) = response_in(&frame.data, id) {
                        return Ok(Reply::Message(found));
                    }
                }
            }
            if let Some(frame) = framer.finish() {
                if let Some(found) = response_in(&frame.data, id) {
                    return Ok(Reply::Message(found));
                }
            }
            return Err(ScanError::Protocol(format!(
                "the event stream ended without a response to request {id}"
            )));
        }
        let bytes = http_body_util::Limited::new(body, self.limits.max_message)
            .collect()
            .await
            .map_err(|e| {
                ScanError::Protocol(format!(
                    "reading the answer (limit {} bytes): {e}",
                    self.limits.max_message
                ))
            })?
            .to_bytes();
        let text = String::from_utf8_lossy(&bytes);
        match response_in(&text, id) {
            Some(found) => Ok(Reply::Message(found)),
            None => Err(ScanError::Protocol(format!("the answer (HTTP {status}, {content_type:?}) holds no JSON-RPC response to request {id}"))),
        }
    }

    /// Ends the session (best effort).
    pub async fn close(&mut self) {
        let Some(session) = self.session.take() else {
            return;
        };
        let mut builder = Request::builder()
            .method(Method::DELETE)
            .uri(self.uri.clone())
            .header(SESSION_HEADER, session);
        for (name, value) in &self.headers {
            builder = builder.header(name, value);
        }
        if let Ok(request) = builder.body(Full::new(Bytes::new())) {
            let _ =
                tokio::time::timeout(Duration::from_secs(2), self.client.request(request)).await;
        }
    }
}

/// What the scanner declares about itself on each stateless request.
fn scanner_meta() -> Value {
    json!({
        stateless::META_CAPABILITIES: {},
        "io.modelcontextprotocol/clientInfo": {"name": "portcullis-mcp-scan", "version": env!("CARGO_PKG_VERSION")},
    })
}

/// The headers a stateless request mirrors from its body.
fn stateless_headers(message: &Value) -> Vec<(&'static str, HeaderValue)> {
    let mut out = vec![(
        VERSION_HEADER,
        HeaderValue::from_static(stateless::VERSIONS[0]),
    )];
    let Some(method) = message.get("method").and_then(Value::as_str) else {
        return out;
    };
    if let Ok(v) = HeaderValue::from_str(&stateless::encode(method)) {
        out.push((stateless::METHOD_HEADER, v));
    }
    let target = stateless::named_field(method)
        .and_then(|(pointer, _)| message.pointer(pointer))
        .and_then(Value::as_str);
    if let Some(v) = target.and_then(|t| HeaderValue::from_str(&stateless::encode(t)).ok()) {
        out.push((stateless::NAME_HEADER, v));
    }
    out
}

/// The `server/discover` request of the stateless era.
pub fn discover_request(id: i64) -> Value {
    let mut message = json!({"jsonrpc": "2.0", "id": id, "method": "server/discover"});
    era::stateless_request(&mut message, &scanner_meta());
    message
}

/// The response with this id in a JSON text (an object, or an array of messages).
fn response_in(text: &str, id: i64) -> Option<Value> {
    let value: Value = serde_json::from_str(text.trim()).ok()?;
    // An error with a null id answers a request the server could not read.
    let is_it = |m: &Value| match m.get("id") {
        Some(Value::Null) => m.get("error").is_some(),
        Some(v) => {
            v.as_i64() == Some(id) && (m.get("result").is_some() || m.get("error").is_some())
        }
        None => false,
    };
    match value {
        Value::Array(items) => items.into_iter().find(is_it),
        other => is_it(&other).then_some(other),
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// A server started as a child process, speaking newline-delimited JSON-RPC.
pub struct StdioTransport {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    limits: Limits,
}

/// The gateway's own variables a server started with an explicit environment
/// still gets (as the data plane's stdio servers do).
const INHERITED_ENV: [&str; 4] = ["PATH", "HOME", "LANG", "TMPDIR"];

/// A stdio server to start.
#[derive(Debug, Clone, Default)]
pub struct StdioCommand {
    pub program: String,
    pub args: Vec<String>,
    /// `None`: the process inherits this one's environment (the CLI). `Some`: the
    /// environment is cleared but for `PATH`, `HOME`, `LANG`, `TMPDIR`, then these
    /// are set (a proxy's `upstream_env`).
    pub env: Option<BTreeMap<String, String>>,
}

impl StdioTransport {
    pub fn spawn(command: &StdioCommand, limits: Limits) -> Result<Self> {
        let program = &command.program;
        if program.is_empty() {
            return Err(ScanError::Target("no command after --".into()));
        }
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(&command.args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        if let Some(env) = &command.env {
            cmd.env_clear();
            for name in INHERITED_ENV {
                if let Some(value) = std::env::var_os(name) {
                    cmd.env(name, value);
                }
            }
            cmd.envs(env);
        }
        let mut child = cmd.spawn().map_err(|e| ScanError::Start {
            program: program.clone(),
            detail: e.to_string(),
        })?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(ScanError::Start {
                program: program.clone(),
                detail: "no stdin or stdout".into(),
            });
        };
        Ok(Self {
            child,
            stdin: Some(stdin),
            stdout: BufReader::new(stdout),
            limits,
        })
    }

    async fn write(&mut self, message: &Value) -> Result<()> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| ScanError::Protocol("the server's stdin is closed".into()))?;
        let failed =
            |e: std::io::Error| ScanError::Protocol(format!("writing to the server's stdin: {e}"));
        let mut line = message.to_string();
        line.push('\n');
        stdin.write_all(line.as_bytes()).await.map_err(failed)?;
        stdin.flush().await.map_err(failed)?;
        Ok(())
    }

    pub async fn send(&mut self, message: &Value, id: Option<i64>) -> Result<Reply> {
        let limits = self.limits;
        tokio::time::timeout(limits.timeout, self.exchange(message, id))
            .await
            .map_err(|_| ScanError::Timeout(limits.timeout.as_secs()))?
    }

    async fn exchange(&mut self, message: &Value, id: Option<i64>) -> Result<Reply> {
        self.write(message).await?;
        let Some(id) = id else {
            return Ok(Reply::Accepted);
        };
        let mut line = Vec::new();
        loop {
            line.clear();
            let limit = self.limits.max_message as u64 + 1;
            let n = (&mut self.stdout)
                .take(limit)
                .read_until(b'\n', &mut line)
                .await
                .map_err(|e| ScanError::Protocol(format!("reading the server's stdout: {e}")))?;
            if n == 0 {
                return Err(ScanError::Protocol(
                    "the server closed its stdout (exited?)".into(),
                ));
            }
            if line.len() as u64 >= limit && line.last() != Some(&b'\n') {
                return Err(ScanError::Protocol(format!(
                    "a message exceeded {} bytes",
                    self.limits.max_message
                )));
            }
            let text = String::from_utf8_lossy(&line);
            if let Some(found) = response_in(&text, id) {
                return Ok(Reply::Message(found));
            }
            // A request from the server: answer ping, refuse the rest, so it does not wait.
            if let Ok(msg) = serde_json::from_str::<Value>(text.trim()) {
                if let (Some(req_id), Some(method)) =
                    (msg.get("id"), msg.get("method").and_then(Value::as_str))
                {
                    let answer = if method == "ping" {
                        json!({"jsonrpc": "2.0", "id": req_id, "result": {}})
                    } else {
                        json!({"jsonrpc": "2.0", "id": req_id, "error": {"code": -32601, "message": "not supported by portcullis mcp scan"}})
                    };
                    self.write(&answer).await?;
                }
            }
        }
    }

    /// Closes stdin, gives the server a moment to exit, then kills it.
    pub async fn close(&mut self) {
        self.stdin = None;
        if tokio::time::timeout(Duration::from_secs(2), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

/// Either transport, with JSON-RPC ids.
pub struct Session {
    transport: Transport,
    next_id: i64,
}

pub enum Transport {
    Http(Box<HttpTransport>),
    Stdio(Box<StdioTransport>),
}

impl Session {
    pub fn new(transport: Transport) -> Self {
        Self {
            transport,
            next_id: 1,
        }
    }

    pub fn http_mut(&mut self) -> Option<&mut HttpTransport> {
        match &mut self.transport {
            Transport::Http(h) => Some(h),
            Transport::Stdio(_) => None,
        }
    }

    /// Sends a request and returns its `result`; a JSON-RPC error or an HTTP
    /// status is an error.
    pub async fn request(&mut self, method: &str, params: Value) -> Result<Value> {
        let id = self.next_id;
        self.next_id += 1;
        let message = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let reply = match &mut self.transport {
            Transport::Http(h) => h.post(&message, Some(id), true).await?,
            Transport::Stdio(s) => s.send(&message, Some(id)).await?,
        };
        match reply {
            Reply::Message(m) => {
                if let Some(error) = m.get("error") {
                    let code = error.get("code").and_then(Value::as_i64).unwrap_or(0);
                    let text = error.get("message").and_then(Value::as_str).unwrap_or("");
                    return Err(ScanError::Protocol(format!(
                        "{method}: JSON-RPC error {code}: {}",
                        clip(text, 200)
                    )));
                }
                Ok(m.get("result").cloned().unwrap_or(Value::Null))
            }
            Reply::Accepted => Err(ScanError::Protocol(format!(
                "{method}: the server accepted the request but sent no response"
            ))),
            Reply::Status(status)
                if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN =>
            {
                Err(ScanError::Refused {
                    method: method.to_owned(),
                    status: status.as_u16(),
                })
            }
            Reply::Status(status) => Err(ScanError::Protocol(format!("{method}: HTTP {status}"))),
        }
    }

    /// A fresh id for a request sent outside [`Session::request`].
    pub fn take_id(&mut self) -> i64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    pub async fn notify(&mut self, method: &str) -> Result<()> {
        let message = json!({"jsonrpc": "2.0", "method": method});
        let reply = match &mut self.transport {
            Transport::Http(h) => h.post(&message, None, true).await?,
            Transport::Stdio(s) => s.send(&message, None).await?,
        };
        match reply {
            Reply::Status(status) => Err(ScanError::Protocol(format!("{method}: HTTP {status}"))),
            Reply::Message(_) | Reply::Accepted => Ok(()),
        }
    }

    pub fn set_version(&mut self, version: &str) {
        if let Transport::Http(h) = &mut self.transport {
            h.set_version(version);
        }
    }

    /// Switches an HTTP session to the stateless era; `false` for stdio.
    pub fn set_stateless(&mut self) -> bool {
        match &mut self.transport {
            Transport::Http(h) => {
                h.set_stateless();
                true
            }
            Transport::Stdio(_) => false,
        }
    }

    pub async fn close(&mut self) {
        match &mut self.transport {
            Transport::Http(h) => h.close().await,
            Transport::Stdio(s) => s.close().await,
        }
    }
}

/// The `initialize` request the scanner sends.
pub fn initialize_params() -> Value {
    json!({
        "protocolVersion": CLIENT_VERSION,
        "capabilities": {},
        "clientInfo": {"name": "portcullis-mcp-scan", "version": env!("CARGO_PKG_VERSION")},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_by_id() {
        assert!(response_in(r#"{"jsonrpc":"2.0","id":3,"result":{}}"#, 3).is_some());
        assert!(response_in(r#"{"jsonrpc":"2.0","id":2,"result":{}}"#, 3).is_none());
        assert!(response_in(r#"{"jsonrpc":"2.0","method":"notifications/message"}"#, 3).is_none());
        assert!(response_in(
            r#"[{"jsonrpc":"2.0","method":"x"},{"jsonrpc":"2.0","id":3,"error":{}}]"#,
            3
        )
        .is_some());
        assert!(response_in("not json", 3).is_none());
        assert!(response_in(r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700}}"#, 3).is_some());
        assert!(response_in(r#"{"jsonrpc":"2.0","id":null,"result":{}}"#, 3).is_none());
    }
}
