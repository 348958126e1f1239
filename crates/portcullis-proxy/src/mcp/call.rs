//! One MCP exchange as an event: a JSON-RPC request from its arrival to its
//! response (or refusal). Like [`crate::exchange::Exchange`] it ends exactly
//! once; dropping it unfinished means the client went away.
//!
//! Event mapping: `endpoint` is `mcp:<method>` (`mcp` when the body was refused
//! before its method was known), `model` holds the tool name of a `tools/call`,
//! token and cost columns stay zero.

use crate::events::EventSink;
use crate::keys::Identity;
use crate::runtime::ProxyRuntime;
use jiff::Timestamp;
use portcullis_core::proxy::{Decision, ProxyEvent};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct McpCall {
    pub proxy: Arc<ProxyRuntime>,
    sink: EventSink,
    pub id: String,
    started: Instant,
    at: Timestamp,
    /// `mcp:<method>`.
    pub endpoint: String,
    pub tool: Option<String>,
    pub identity: Option<Arc<Identity>>,
    pub stream: bool,
    pub request_bytes: u64,
    pub response_bytes: u64,
    /// Time spent in the gateway (upstream waits excluded).
    pub overhead: Duration,
    pub findings: Vec<serde_json::Value>,
    stream_counted: bool,
    done: bool,
}

impl McpCall {
    pub fn new(proxy: Arc<ProxyRuntime>, sink: EventSink, at: Timestamp) -> Self {
        Self {
            proxy,
            sink,
            id: portcullis_core::id::new_id_at(at),
            started: Instant::now(),
            at,
            endpoint: "mcp".to_owned(),
            tool: None,
            identity: None,
            stream: false,
            request_bytes: 0,
            response_bytes: 0,
            overhead: Duration::ZERO,
            findings: Vec::new(),
            stream_counted: false,
            done: false,
        }
    }

    pub fn started(&self) -> Instant {
        self.started
    }

    pub fn stream_started(&mut self) {
        if !self.stream_counted {
            self.stream_counted = true;
            self.stream = true;
            self.proxy.metrics.active_streams.inc();
        }
    }

    pub fn finish(&mut self, status: u16, decision: Decision, error: Option<&str>) {
        if self.done {
            return;
        }
        self.done = true;
        let m = &self.proxy.metrics;
        if self.stream_counted {
            m.active_streams.dec();
        }
        let latency = self.started.elapsed();
        m.count_status(status);
        m.latency.observe(latency.as_secs_f64());
        m.overhead.observe(self.overhead.as_secs_f64());
        let micros = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.sink.emit(ProxyEvent {
            id: self.id.clone(),
            at: self.at,
            proxy_id: self.proxy.id.clone(),
            proxy_name: self.proxy.name.to_string(),
            endpoint: std::mem::take(&mut self.endpoint),
            key_id: self.identity.as_ref().map(|i| i.key_id.clone()),
            group_id: self.identity.as_ref().map(|i| i.group_id.clone()),
            end_user: None,
            model: self.tool.take(),
            status,
            decision,
            error: error.map(|e| e.chars().take(512).collect()),
            stream: self.stream,
            latency_us: micros(latency),
            ttft_us: None,
            overhead_us: micros(self.overhead),
            input_tokens: 0,
            output_tokens: 0,
            cached_tokens: 0,
            request_bytes: self.request_bytes,
            response_bytes: self.response_bytes,
            findings: serde_json::Value::Array(std::mem::take(&mut self.findings)),
            cost_usd: None,
        });
    }
}

impl Drop for McpCall {
    fn drop(&mut self) {
        if !self.done {
            self.finish(499, Decision::Error, Some("client_closed"));
        }
    }
}

impl McpCall {
    /// Ends without an event (client notifications and responses are relayed,
    /// not recorded).
    pub fn discard(mut self) {
        self.done = true;
        if self.stream_counted {
            self.proxy.metrics.active_streams.dec();
        }
    }
}
