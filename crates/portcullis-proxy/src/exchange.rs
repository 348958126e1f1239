//! One exchange from first byte in to last byte out. It ends exactly once: by the
//! relay on success or error, or on drop when the client went away first; either
//! way its event is emitted and its metrics recorded.

use crate::error::Reason;
use crate::events::EventSink;
use crate::keys::Identity;
use crate::runtime::ProxyRuntime;
use crate::spend::{Hold, Spend};
use jiff::Timestamp;
use portcullis_core::proxy::{Decision, ProxyEvent};
use portcullis_governance::ratelimit::{RateLimiter, Verdict};
use portcullis_protocol::{Endpoint, Usage};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct Exchange {
    pub proxy: Arc<ProxyRuntime>,
    sink: EventSink,
    pub started: Instant,
    at: Timestamp,
    pub endpoint: Option<Endpoint>,
    pub identity: Option<Arc<Identity>>,
    pub end_user: Option<String>,
    pub model: Option<String>,
    pub stream: bool,
    pub request_bytes: u64,
    /// Time spent in the gateway so far (upstream waits excluded).
    pub overhead: Duration,
    pub ttft: Option<Duration>,
    pub response_bytes: u64,
    /// Policy findings, as stored in the event.
    pub findings: Vec<serde_json::Value>,
    /// Placeholders put into the request, to restore in the answer.
    pub redactor: Option<Arc<portcullis_policy::redact::Redactor>>,
    spend: Arc<Spend>,
    /// Budget reservations to settle with the real cost.
    pub holds: Vec<Hold>,
    /// The caller's budget state, reported on the answer.
    pub budget_header: Option<http::HeaderValue>,
    /// The rate-limit check, for the `x-ratelimit-*` headers.
    pub verdict: Option<Verdict>,
    /// Set when the caller has a token limit: the exchange's tokens are debited.
    pub limiter: Option<Arc<RateLimiter>>,
    stream_counted: bool,
    done: bool,
}

/// How an exchange ended.
#[derive(Debug, Clone, Copy)]
pub struct Outcome {
    pub status: u16,
    pub decision: Decision,
    pub reason: Option<Reason>,
    pub usage: Option<Usage>,
}

impl Exchange {
    pub fn new(
        proxy: Arc<ProxyRuntime>,
        sink: EventSink,
        spend: Arc<Spend>,
        started: Instant,
        at: Timestamp,
    ) -> Self {
        Self {
            proxy,
            sink,
            started,
            at,
            endpoint: None,
            identity: None,
            end_user: None,
            model: None,
            stream: false,
            request_bytes: 0,
            overhead: Duration::ZERO,
            ttft: None,
            response_bytes: 0,
            findings: Vec::new(),
            redactor: None,
            spend,
            holds: Vec::new(),
            budget_header: None,
            verdict: None,
            limiter: None,
            stream_counted: false,
            done: false,
        }
    }

    /// A streamed response started relaying.
    pub fn stream_started(&mut self) {
        if !self.stream_counted {
            self.stream_counted = true;
            self.proxy.metrics.active_streams.inc();
        }
    }

    pub fn finish(&mut self, outcome: Outcome, error: Option<&str>) {
        if self.done {
            return;
        }
        self.done = true;
        let m = &self.proxy.metrics;
        if self.stream_counted {
            m.active_streams.dec();
        }
        let latency = self.started.elapsed();
        m.count_status(outcome.status);
        m.latency.observe(latency.as_secs_f64());
        m.overhead.observe(self.overhead.as_secs_f64());
        if let Some(t) = self.ttft {
            m.ttft.observe(t.as_secs_f64());
        }
        let usage = outcome.usage.unwrap_or_default();
        m.input_tokens.inc_by(usage.input_tokens);
        m.output_tokens.inc_by(usage.output_tokens);
        match outcome.reason {
            Some(reason) if reason.is_upstream() => m.count_upstream_error(reason.as_str()),
            Some(Reason::RateLimited) => {
                m.rate_limited.inc();
            }
            Some(Reason::LimiterUnavailable) => {
                m.limiter_errors.inc();
            }
            _ => {}
        }
        let used = usage.input_tokens + usage.output_tokens;
        if let (Some(limiter), Some(identity)) = (&self.limiter, &self.identity) {
            if let Some(subject) = identity.rate_subject() {
                limiter.settle(&subject, used);
            }
        }
        let cost_usd = self.spend.cost_usd(self.model.as_deref(), &usage);
        self.spend.settle(
            std::mem::take(&mut self.holds),
            self.model.as_deref(),
            &usage,
            (&self.proxy.id, &self.proxy.name),
        );
        let micros = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.sink.emit(ProxyEvent {
            id: portcullis_core::id::new_id(),
            at: self.at,
            proxy_id: self.proxy.id.clone(),
            proxy_name: self.proxy.name.to_string(),
            endpoint: self
                .endpoint
                .map(|e| e.as_str())
                .unwrap_or("unknown")
                .to_owned(),
            key_id: self.identity.as_ref().map(|i| i.key_id.clone()),
            group_id: self.identity.as_ref().map(|i| i.group_id.clone()),
            end_user: self.end_user.take(),
            model: self.model.take(),
            status: outcome.status,
            decision: outcome.decision,
            error: error
                .map(str::to_owned)
                .or_else(|| outcome.reason.map(|r| r.as_str().to_owned())),
            stream: self.stream,
            latency_us: micros(latency),
            ttft_us: self.ttft.map(micros),
            overhead_us: micros(self.overhead),
            input_tokens: usage.input_tokens,
            output_tokens: usage.output_tokens,
            cached_tokens: usage.cached_input_tokens,
            request_bytes: self.request_bytes,
            response_bytes: self.response_bytes,
            findings: serde_json::Value::Array(std::mem::take(&mut self.findings)),
            cost_usd,
        });
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        if !self.done {
            let reason = Reason::ClientClosed;
            self.finish(
                Outcome {
                    status: reason.status(),
                    decision: Decision::Error,
                    reason: Some(reason),
                    usage: None,
                },
                None,
            );
        }
    }
}
