//! stdio MCP servers: the gateway starts the server process from the proxy's
//! `upstream_command`, speaks newline-delimited JSON-RPC on its stdin and stdout,
//! and multiplexes every client onto the one session the process has.
//!
//! A server that speaks only the legacy HTTP+SSE transport (2024-11-05) is served
//! the same way ([`Upstream::LegacySse`]): one stream (`GET`) the gateway holds
//! open, whose `endpoint` event says where to POST; messages go out as POSTs and
//! come back as events on the stream, one session for every client.
//!
//! ```text
//! supervisor ── spawn (env cleared but PATH/HOME/LANG/TMPDIR + upstream_env, kill on drop)
//!   │           stderr: line by line into tracing (bounded), with the proxy name
//!   ├─ initialize (the gateway's own), notifications/initialized   phase Starting
//!   ├─ serve: client id <-> upstream id (u64), bounded in-flight   phase Up
//!   └─ exit / stdout closed: every pending request fails at once,  phase Down
//!      restart after 0.5 s doubling to 30 s (reset after a healthy minute)
//! ```

use bytes::{BufMut, Bytes, BytesMut};
use portcullis_protocol::mcp::jsonrpc;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, oneshot, watch};

/// Requests waiting for the server at once; more are refused.
pub const MAX_IN_FLIGHT: usize = 256;
/// Lines queued for the server's stdin.
const WRITE_QUEUE: usize = 64;
/// Longest stderr line logged; the rest of the line is cut.
const STDERR_LINE: usize = 2048;
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Up this long, the next failure restarts after the first back-off again.
const HEALTHY: Duration = Duration::from_secs(60);
/// Variables the server inherits from the gateway; everything else (the master
/// key among them) stays out of its environment.
const INHERITED_ENV: [&str; 4] = ["PATH", "HOME", "LANG", "TMPDIR"];
/// The version the gateway asks for; the server answers with one it speaks.
const PROTOCOL_VERSION: &str = "2025-11-25";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StdioError {
    #[error("the stdio MCP server is down: {0}")]
    Down(String),
    #[error("the stdio MCP server exited before answering")]
    Exited,
    #[error("the stdio MCP server did not answer within {0} ms")]
    Timeout(u128),
    #[error("the stdio MCP server has too many requests in flight; retry later")]
    Busy,
    #[error("the message is larger than this proxy's max_body_bytes")]
    TooLarge,
    #[error("the message is not a JSON-RPC object")]
    NotAnObject,
}

/// How to reach the server; from the proxy's spec.
#[derive(Clone)]
pub struct StdioConfig {
    pub proxy: Arc<str>,
    pub upstream: Upstream,
    pub request_timeout: Duration,
    pub max_message_bytes: usize,
}

/// What carries the one session.
#[derive(Clone)]
pub enum Upstream {
    /// A process the gateway runs.
    Process {
        command: String,
        args: Vec<String>,
        env: BTreeMap<String, String>,
    },
    /// A legacy HTTP+SSE server's stream.
    LegacySse(Box<LegacySseTarget>),
}

/// Where a legacy HTTP+SSE server's stream is, and how to reach it.
#[derive(Clone)]
pub struct LegacySseTarget {
    pub url: http::Uri,
    pub credential: Option<(http::HeaderName, http::HeaderValue)>,
    pub client: crate::upstream::UpstreamClient,
}

impl std::fmt::Debug for StdioConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Environment values and credentials may be secrets: names only.
        let mut d = f.debug_struct("StdioConfig");
        d.field("proxy", &self.proxy);
        match &self.upstream {
            Upstream::Process { command, args, env } => d
                .field("command", command)
                .field("args", &args.len())
                .field("env", &env.keys().collect::<Vec<_>>()),
            Upstream::LegacySse(target) => d.field("sse", &target.url.to_string()),
        };
        d.finish()
    }
}

/// Where the process is.
#[derive(Clone)]
pub(super) enum Phase {
    Starting,
    Up(Arc<Session>),
    Down(String),
}

/// The supervised server of one proxy. Dropping it (or [`StdioServer::stop`])
/// kills the process.
pub struct StdioServer {
    config: StdioConfig,
    phase: watch::Receiver<Phase>,
    stop: watch::Sender<bool>,
    supervisor: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for StdioServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StdioServer({:?})", self.config)
    }
}

impl Drop for StdioServer {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

impl StdioServer {
    /// Starts the supervisor (which starts the process); needs a tokio runtime.
    pub fn start(config: StdioConfig) -> Arc<Self> {
        let (phase_tx, phase) = watch::channel(Phase::Starting);
        let (stop, stop_rx) = watch::channel(false);
        let supervisor = tokio::spawn(supervise(config.clone(), phase_tx, stop_rx));
        Arc::new(Self {
            config,
            phase,
            stop,
            supervisor,
        })
    }

    /// Kills the process and waits (bounded) for the supervisor to reap it.
    pub async fn stop(&self) {
        let _ = self.stop.send(true);
        let wait = async {
            while !self.supervisor.is_finished() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(5), wait).await;
    }

    /// `None` when the server is up; otherwise whether it is down (not just
    /// starting) and why (for the proxy status).
    pub fn trouble(&self) -> Option<(bool, String)> {
        let what = match self.config.upstream {
            Upstream::Process { .. } => "stdio server",
            Upstream::LegacySse(_) => "legacy SSE server",
        };
        match &*self.phase.borrow() {
            Phase::Up(_) => None,
            Phase::Starting => Some((false, format!("{what} starting"))),
            Phase::Down(why) => Some((true, format!("{what} down: {why}"))),
        }
    }

    /// The current session; waits while the process starts, fails at once while
    /// it is down.
    async fn session(&self) -> Result<Arc<Session>, StdioError> {
        let mut phase = self.phase.clone();
        let wait = async {
            loop {
                let current = phase.borrow_and_update().clone();
                match current {
                    Phase::Up(session) => return Ok(session),
                    Phase::Down(why) => return Err(StdioError::Down(why)),
                    Phase::Starting => {
                        if phase.changed().await.is_err() {
                            return Err(StdioError::Down("stopped".into()));
                        }
                    }
                }
            }
        };
        tokio::time::timeout(self.config.request_timeout, wait)
            .await
            .unwrap_or(Err(StdioError::Timeout(
                self.config.request_timeout.as_millis(),
            )))
    }

    /// Sends a client request and returns the server's response under the
    /// client's id.
    pub async fn call(&self, message: Value) -> Result<Value, StdioError> {
        let session = self.session().await?;
        session
            .call(
                message,
                self.config.request_timeout,
                self.config.max_message_bytes,
            )
            .await
    }

    /// The answer to a client's `initialize`: the server's result of the
    /// gateway's own `initialize`, under the client's id.
    pub async fn initialize(&self, client_id: Value) -> Result<Value, StdioError> {
        let session = self.session().await?;
        let result = session.initialized.get().cloned().unwrap_or(Value::Null);
        Ok(json!({"jsonrpc": "2.0", "id": client_id, "result": result}))
    }

    /// Whether the running process's tools may have changed since the gateway
    /// last listed them (it started, or announced a change); clears the mark.
    pub async fn take_tools_changed(&self) -> bool {
        self.session()
            .await
            .is_ok_and(|s| s.tools_changed.swap(false, Ordering::AcqRel))
    }

    /// Forwards a client notification, except those only the gateway may send
    /// on the shared session (`initialized`, `cancelled` with a client's id).
    pub async fn notify(&self, message: Value) {
        let method = message.get("method").and_then(Value::as_str).unwrap_or("");
        if matches!(
            method,
            "notifications/initialized" | "notifications/cancelled"
        ) {
            return;
        }
        if let Ok(session) = self.session().await {
            let _ = session.send(&message, self.config.max_message_bytes).await;
        }
    }
}

/// One process's JSON-RPC session: the ids the gateway gave to requests it is
/// waiting on, and the queue to the process's stdin.
pub(crate) struct Session {
    writer: mpsc::Sender<Bytes>,
    pending: Mutex<HashMap<u64, oneshot::Sender<Value>>>,
    next_id: AtomicU64,
    closed: AtomicBool,
    initialized: OnceLock<Value>,
    /// The server's tools may differ from the inventory's: a new process, or
    /// one that sent notifications/tools/list_changed.
    tools_changed: AtomicBool,
}

/// Removes a request's id from `pending` however its wait ends (answer, timeout,
/// client gone).
struct PendingGuard<'a> {
    session: &'a Session,
    id: u64,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.session.lock_pending().remove(&self.id);
    }
}

impl Session {
    pub(crate) fn new(writer: mpsc::Sender<Bytes>) -> Self {
        Self {
            writer,
            pending: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            closed: AtomicBool::new(false),
            initialized: OnceLock::new(),
            tools_changed: AtomicBool::new(true),
        }
    }

    fn lock_pending(&self) -> std::sync::MutexGuard<'_, HashMap<u64, oneshot::Sender<Value>>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sends `message` (a request) under a fresh upstream id and waits for the
    /// response, which comes back under the message's own id.
    pub(crate) async fn call(
        &self,
        mut message: Value,
        timeout: Duration,
        max_bytes: usize,
    ) -> Result<Value, StdioError> {
        let object = message.as_object_mut().ok_or(StdioError::NotAnObject)?;
        let client_id = object.get("id").cloned().unwrap_or(Value::Null);
        let (tx, rx) = oneshot::channel();
        let id = {
            let mut pending = self.lock_pending();
            if self.closed.load(Ordering::Acquire) {
                return Err(StdioError::Exited);
            }
            if pending.len() >= MAX_IN_FLIGHT {
                return Err(StdioError::Busy);
            }
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            pending.insert(id, tx);
            id
        };
        let _guard = PendingGuard { session: self, id };
        object.insert("id".into(), Value::from(id));
        let exchange = async {
            self.send(&message, max_bytes).await?;
            rx.await.map_err(|_| StdioError::Exited)
        };
        let mut answer = tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| StdioError::Timeout(timeout.as_millis()))??;
        if let Some(object) = answer.as_object_mut() {
            object.insert("id".into(), client_id);
        }
        Ok(answer)
    }

    /// Queues one message for the server's stdin.
    async fn send(&self, message: &Value, max_bytes: usize) -> Result<(), StdioError> {
        let line = frame(message, max_bytes)?;
        self.writer.send(line).await.map_err(|_| StdioError::Exited)
    }

    /// A line from the server: a response is handed to whoever waits for its id
    /// (an unknown id, late or forged, is dropped). Server requests and
    /// notifications are returned for the caller to deal with.
    pub(crate) fn deliver(&self, message: Value) -> Option<Value> {
        let is_response = message.get("method").is_none()
            && (message.get("result").is_some() || message.get("error").is_some());
        if !is_response {
            return Some(message);
        }
        let waiter = message
            .get("id")
            .and_then(Value::as_u64)
            .and_then(|id| self.lock_pending().remove(&id));
        if let Some(waiter) = waiter {
            let _ = waiter.send(message);
        }
        None
    }

    /// The process is gone: every waiting request fails now.
    pub(crate) fn close(&self) {
        let mut pending = self.lock_pending();
        self.closed.store(true, Ordering::Release);
        pending.clear();
    }
}

/// One JSON-RPC message as a stdio line: compact JSON (which has no raw newline)
/// and `\n`.
pub(crate) fn frame(message: &Value, max_bytes: usize) -> Result<Bytes, StdioError> {
    let mut out = BytesMut::new().writer();
    serde_json::to_writer(&mut out, message).map_err(|_| StdioError::NotAnObject)?;
    let mut out = out.into_inner();
    if out.len() > max_bytes {
        return Err(StdioError::TooLarge);
    }
    out.put_u8(b'\n');
    Ok(out.freeze())
}

/// What [`read_line`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Line {
    /// A whole line in the buffer, without its `\n` (or `\r\n`).
    Complete,
    /// A line longer than the limit; the buffer holds its first `limit` bytes and
    /// the rest was skipped.
    TooLong,
}

/// Reads one line into `buf` (cleared first), never holding more than `limit`
/// bytes of it. `None` at end of input (a last line without `\n` counts).
pub(crate) async fn read_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    limit: usize,
) -> std::io::Result<Option<Line>> {
    buf.clear();
    let mut too_long = false;
    let mut seen = false;
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(seen.then_some(if too_long {
                Line::TooLong
            } else {
                Line::Complete
            }));
        }
        seen = true;
        let (chunk, used, done) = match available.iter().position(|b| *b == b'\n') {
            Some(at) => (&available[..at], at + 1, true),
            None => (available, available.len(), false),
        };
        let room = limit.saturating_sub(buf.len());
        if chunk.len() > room {
            too_long = true;
        }
        buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
        reader.consume(used);
        if done {
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
            return Ok(Some(if too_long {
                Line::TooLong
            } else {
                Line::Complete
            }));
        }
    }
}

/// Runs the process again and again until stopped.
async fn supervise(
    config: StdioConfig,
    phase: watch::Sender<Phase>,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = FIRST_BACKOFF;
    loop {
        let _ = phase.send(Phase::Starting);
        let began = Instant::now();
        let why = match run(&config, &phase, &mut stop).await {
            Ended::Stopped => return,
            Ended::Failed(why) => why,
        };
        if began.elapsed() >= HEALTHY {
            backoff = FIRST_BACKOFF;
        }
        tracing::warn!(proxy = %config.proxy, reason = %why, retry_in_ms = backoff.as_millis() as u64, "stdio MCP server down");
        let _ = phase.send(Phase::Down(format!(
            "{why}; restarting in {} ms",
            backoff.as_millis()
        )));
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stopped(&mut stop) => return,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

pub(super) async fn stopped(stop: &mut watch::Receiver<bool>) {
    // A dropped sender means the server handle is gone: stop as well.
    let _ = stop.wait_for(|s| *s).await;
}

pub(super) enum Ended {
    Stopped,
    Failed(String),
}

/// One life of the process, or of the legacy SSE stream.
async fn run(
    config: &StdioConfig,
    phase: &watch::Sender<Phase>,
    stop: &mut watch::Receiver<bool>,
) -> Ended {
    match &config.upstream {
        Upstream::Process { command, args, env } => {
            run_process(config, (command, args, env), phase, stop).await
        }
        Upstream::LegacySse(target) => {
            super::legacy_upstream::run(config, target, phase, stop).await
        }
    }
}

/// The gateway's own `initialize` and `notifications/initialized` on a new
/// session; the result is kept for the clients' `initialize`.
pub(super) async fn handshake(session: &Session, config: &StdioConfig) -> Result<(), String> {
    let init = json!({
        "jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {
            "protocolVersion": PROTOCOL_VERSION,
            "capabilities": {},
            "clientInfo": {"name": "portcullis", "version": env!("CARGO_PKG_VERSION")},
        },
    });
    let answer = session
        .call(init, config.request_timeout, config.max_message_bytes)
        .await
        .map_err(|e| format!("initialize failed: {e}"))?;
    let result = answer
        .get("result")
        .cloned()
        .ok_or_else(|| "the server refused initialize".to_owned())?;
    let _ = session.initialized.set(result);
    let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    session
        .send(&note, config.max_message_bytes)
        .await
        .map_err(|e| e.to_string())
}

async fn run_process(
    config: &StdioConfig,
    (program, args, env): (&String, &Vec<String>, &BTreeMap<String, String>),
    phase: &watch::Sender<Phase>,
    stop: &mut watch::Receiver<bool>,
) -> Ended {
    let mut command = Command::new(program);
    command
        .args(args)
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for name in INHERITED_ENV {
        if let Some(value) = std::env::var_os(name) {
            command.env(name, value);
        }
    }
    command.envs(env);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => return Ended::Failed(format!("cannot start {program:?}: {e}")),
    };
    tracing::info!(proxy = %config.proxy, command = %program, pid = child.id().unwrap_or(0), "stdio MCP server started");
    let (Some(stdin), Some(stdout), Some(stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        reap(&mut child).await;
        return Ended::Failed("its standard streams are unavailable".into());
    };
    let proxy = config.proxy.clone();
    let stderr_task = tokio::spawn(async move {
        let mut reader = BufReader::new(stderr);
        let mut buf = Vec::new();
        while let Ok(Some(_)) = read_line(&mut reader, &mut buf, STDERR_LINE).await {
            let line = String::from_utf8_lossy(&buf);
            tracing::info!(proxy = %proxy, line = %line.trim_end(), "stdio MCP server stderr");
        }
    });
    let (writer, mut queue) = mpsc::channel::<Bytes>(WRITE_QUEUE);
    let writer_task = tokio::spawn(async move {
        let mut stdin = stdin;
        while let Some(line) = queue.recv().await {
            if stdin.write_all(&line).await.is_err() || stdin.flush().await.is_err() {
                break;
            }
        }
    });
    let session = Arc::new(Session::new(writer));
    let mut reader_task = tokio::spawn(read_stdout(
        config.proxy.clone(),
        BufReader::new(stdout),
        session.clone(),
        config.max_message_bytes,
    ));

    let ended = tokio::select! {
        r = handshake(&session, config) => match r {
            Ok(()) => None,
            Err(why) => Some(Ended::Failed(why)),
        },
        status = child.wait() => Some(Ended::Failed(exit_text(status))),
        _ = stopped(stop) => Some(Ended::Stopped),
    };
    let ended = match ended {
        Some(ended) => ended,
        None => {
            let _ = phase.send(Phase::Up(session.clone()));
            tracing::info!(proxy = %config.proxy, "stdio MCP server initialized");
            tokio::select! {
                status = child.wait() => Ended::Failed(exit_text(status)),
                _ = &mut reader_task => Ended::Failed("it closed its stdout".into()),
                _ = stopped(stop) => Ended::Stopped,
            }
        }
    };
    session.close();
    reap(&mut child).await;
    reader_task.abort();
    writer_task.abort();
    // stderr ends with the process; a grandchild holding it open is not waited for.
    let _ = tokio::time::timeout(Duration::from_secs(1), stderr_task).await;
    ended
}

fn exit_text(status: std::io::Result<std::process::ExitStatus>) -> String {
    match status {
        Ok(status) => format!("it exited ({status})"),
        Err(e) => format!("waiting for it failed: {e}"),
    }
}

/// Kills the process (if still running) and waits for it, so no zombie is left.
async fn reap(child: &mut Child) {
    if let Ok(None) = child.try_wait() {
        let _ = child.start_kill();
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
}

/// Reads the server's stdout until it closes.
async fn read_stdout<R: AsyncBufRead + Unpin>(
    proxy: Arc<str>,
    mut reader: R,
    session: Arc<Session>,
    limit: usize,
) {
    let mut buf = Vec::new();
    loop {
        match read_line(&mut reader, &mut buf, limit).await {
            Ok(None) | Err(_) => return,
            Ok(Some(Line::TooLong)) => {
                // Its request waits until the timeout: the id cannot be trusted
                // from a cut line.
                tracing::warn!(proxy = %proxy, limit, "stdio MCP server wrote a message over max_body_bytes; dropped");
            }
            Ok(Some(Line::Complete)) => {
                if buf.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                let Ok(message) = serde_json::from_slice::<Value>(&buf) else {
                    tracing::warn!(proxy = %proxy, bytes = buf.len(), "stdio MCP server wrote a line that is not JSON; dropped");
                    continue;
                };
                if let Some(other) = session.deliver(message) {
                    answer_server(&proxy, &session, other, limit);
                }
            }
        }
    }
}

/// Requests and notifications from the server. There is no client to relay them
/// to on a shared session: `ping` is answered, other requests are refused.
pub(super) fn answer_server(proxy: &str, session: &Session, message: Value, limit: usize) {
    let method = message.get("method").and_then(Value::as_str).unwrap_or("");
    match message.get("id") {
        None if method == "notifications/tools/list_changed" => {
            // Acted on before the next client request ([`super::relist`]).
            session.tools_changed.store(true, Ordering::Release);
        }
        None => {
            tracing::debug!(proxy = %proxy, method = %method, "stdio MCP server notification dropped");
        }
        Some(id) => {
            let answer = if method == "ping" {
                json!({"jsonrpc": "2.0", "id": id, "result": {}})
            } else {
                jsonrpc::error(
                    id.clone(),
                    jsonrpc::METHOD_NOT_FOUND,
                    "the gateway does not relay server requests from stdio servers",
                )
            };
            // Never wait here: the reader blocked on a full stdin queue while the
            // server blocks on a full stdout would be a deadlock.
            let sent = frame(&answer, limit).map(|line| session.writer.try_send(line));
            if !matches!(sent, Ok(Ok(()))) {
                tracing::warn!(proxy = %proxy, method = %method, "stdio MCP server request not answered (queue full)");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_are_bounded_and_split() {
        let input: &[u8] = b"{\"a\":1}\r\n0123456789abcdef\nlast";
        let mut reader = input;
        let mut buf = Vec::new();
        assert_eq!(
            read_line(&mut reader, &mut buf, 10).await.ok(),
            Some(Some(Line::Complete))
        );
        assert_eq!(buf, b"{\"a\":1}");
        assert_eq!(
            read_line(&mut reader, &mut buf, 10).await.ok(),
            Some(Some(Line::TooLong))
        );
        assert_eq!(buf, b"0123456789");
        assert_eq!(
            read_line(&mut reader, &mut buf, 10).await.ok(),
            Some(Some(Line::Complete))
        );
        assert_eq!(buf, b"last");
        assert_eq!(read_line(&mut reader, &mut buf, 10).await.ok(), Some(None));
    }

    #[test]
    fn frames_are_one_line() {
        let line = frame(&json!({"text": "a\nb"}), 100).unwrap();
        assert_eq!(&line[..], b"{\"text\":\"a\\nb\"}\n");
        assert_eq!(
            frame(&json!({"text": "long"}), 5),
            Err(StdioError::TooLarge)
        );
    }

    /// Two clients using the same id get distinct upstream ids and each its own
    /// answer back under its own id, whatever the order of the answers.
    #[tokio::test]
    async fn ids_are_mapped_and_restored() {
        let (tx, mut rx) = mpsc::channel(8);
        let session = Arc::new(Session::new(tx));
        let timeout = Duration::from_secs(5);
        let call = |session: Arc<Session>, tag: &'static str| {
            tokio::spawn(async move {
                let msg = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": tag}});
                session.call(msg, timeout, 1024).await
            })
        };
        let a = call(session.clone(), "a");
        let b = call(session.clone(), "b");
        let mut sent = Vec::new();
        for _ in 0..2 {
            let line = rx.recv().await.unwrap();
            sent.push(serde_json::from_slice::<Value>(&line).unwrap());
        }
        let ids: Vec<u64> = sent.iter().map(|m| m["id"].as_u64().unwrap()).collect();
        assert_ne!(ids[0], ids[1]);
        for m in sent.iter().rev() {
            let answer =
                json!({"jsonrpc": "2.0", "id": m["id"], "result": {"tag": m["params"]["name"]}});
            assert!(session.deliver(answer).is_none());
        }
        let a = a.await.unwrap().unwrap();
        let b = b.await.unwrap().unwrap();
        assert_eq!(
            (a["id"].clone(), a["result"]["tag"].clone()),
            (json!(1), json!("a"))
        );
        assert_eq!(
            (b["id"].clone(), b["result"]["tag"].clone()),
            (json!(1), json!("b"))
        );
        assert!(session.lock_pending().is_empty());
        // An unknown id is dropped; a server request is handed back.
        assert!(session
            .deliver(json!({"jsonrpc": "2.0", "id": 99, "result": {}}))
            .is_none());
        let ping = json!({"jsonrpc": "2.0", "id": 7, "method": "ping"});
        assert_eq!(session.deliver(ping.clone()), Some(ping));
    }

    #[tokio::test]
    async fn closing_fails_waiters_at_once() {
        let (tx, _rx) = mpsc::channel(8);
        let session = Arc::new(Session::new(tx));
        let waiting = {
            let session = session.clone();
            tokio::spawn(async move {
                let msg = json!({"jsonrpc": "2.0", "id": "x", "method": "tools/list"});
                session.call(msg, Duration::from_secs(60), 1024).await
            })
        };
        while session.lock_pending().is_empty() {
            tokio::task::yield_now().await;
        }
        session.close();
        let got = tokio::time::timeout(Duration::from_secs(1), waiting).await;
        assert_eq!(got.unwrap().unwrap(), Err(StdioError::Exited));
        let msg = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
        assert_eq!(
            session.call(msg, Duration::from_secs(1), 1024).await,
            Err(StdioError::Exited)
        );
    }

    #[tokio::test]
    async fn timeouts_forget_the_request() {
        let (tx, _rx) = mpsc::channel(8);
        let session = Session::new(tx);
        let msg = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
        assert_eq!(
            session.call(msg, Duration::from_millis(20), 1024).await,
            Err(StdioError::Timeout(20))
        );
        assert!(session.lock_pending().is_empty());
    }

    /// A real process: `sh` answering one request, then exiting; the supervisor
    /// reports it down and the next call fails at once.
    #[tokio::test]
    async fn a_process_is_supervised() {
        let script = r#"id() { echo "$1" | sed 's/.*"id":\([0-9]*\).*/\1/'; }
read line; echo "{\"jsonrpc\":\"2.0\",\"id\":$(id "$line"),\"result\":{\"protocolVersion\":\"2025-06-18\",\"capabilities\":{},\"serverInfo\":{\"name\":\"sh\",\"version\":\"1\"}}}"
read note; echo oops >&2
read req; echo "{\"jsonrpc\":\"2.0\",\"id\":$(id "$req"),\"result\":{\"ok\":true}}"; exit 3"#;
        let server = StdioServer::start(StdioConfig {
            proxy: Arc::from("t"),
            upstream: Upstream::Process {
                command: "sh".into(),
                args: vec!["-c".into(), script.into()],
                env: BTreeMap::new(),
            },
            request_timeout: Duration::from_secs(5),
            max_message_bytes: 4096,
        });
        let init = server.initialize(json!("c1")).await.unwrap();
        assert_eq!(init["id"], "c1");
        assert_eq!(init["result"]["serverInfo"]["name"], "sh");
        let answer = server
            .call(json!({"jsonrpc": "2.0", "id": "q", "method": "tools/list"}))
            .await
            .unwrap();
        assert_eq!(
            answer,
            json!({"jsonrpc": "2.0", "id": "q", "result": {"ok": true}})
        );
        let started = Instant::now();
        loop {
            if server.trouble().is_some_and(|(down, _)| down) {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(5));
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let err = server
            .call(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
            .await;
        assert!(matches!(err, Err(StdioError::Down(_))));
        server.stop().await;
        assert!(server.supervisor.is_finished());
    }
}
