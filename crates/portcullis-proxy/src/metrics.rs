//! Data-plane metrics. Families are registered once; each proxy resolves its own
//! handles when it starts, so the request path only bumps atomics (the status
//! counter map is read-locked, and written once per new status code).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::collections::HashMap;
use std::sync::RwLock;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProxyLabel {
    pub proxy: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabels {
    pub proxy: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub proxy: String,
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub proxy: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TokenLabels {
    pub proxy: String,
    pub direction: String,
}

type Hist = Family<ProxyLabel, Histogram, fn() -> Histogram>;

fn seconds() -> Histogram {
    // 1 ms .. ~65 s
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

fn overhead() -> Histogram {
    // 10 µs .. ~80 ms: the gateway's own time is sub-millisecond.
    Histogram::new(exponential_buckets(0.00001, 2.0, 14))
}

#[derive(Clone)]
pub struct ProxyMetrics {
    requests: Family<StatusLabels, Counter>,
    latency: Hist,
    ttft: Hist,
    overhead: Hist,
    tokens: Family<TokenLabels, Counter>,
    upstream_errors: Family<ReasonLabels, Counter>,
    active_streams: Family<ProxyLabel, Gauge>,
    rate_limited: Family<ProxyLabel, Counter>,
    limiter_errors: Family<ProxyLabel, Counter>,
    policy_texts: Family<OutcomeLabels, Counter>,
    pub events_dropped: Counter,
    pub events_write_failures: Counter,
}

impl ProxyMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self {
            requests: Family::default(),
            latency: Family::new_with_constructor(seconds),
            ttft: Family::new_with_constructor(seconds),
            overhead: Family::new_with_constructor(overhead),
            tokens: Family::default(),
            upstream_errors: Family::default(),
            active_streams: Family::default(),
            rate_limited: Family::default(),
            limiter_errors: Family::default(),
            policy_texts: Family::default(),
            events_dropped: Counter::default(),
            events_write_failures: Counter::default(),
        };
        registry.register(
            "portcullis_proxy_requests",
            "Proxied requests by status",
            m.requests.clone(),
        );
        registry.register(
            "portcullis_proxy_request_duration_seconds",
            "Whole exchange, first byte in to last byte out",
            m.latency.clone(),
        );
        registry.register(
            "portcullis_proxy_time_to_first_token_seconds",
            "Time to the first streamed content",
            m.ttft.clone(),
        );
        registry.register(
            "portcullis_proxy_overhead_seconds",
            "Time spent in the gateway, upstream time excluded",
            m.overhead.clone(),
        );
        registry.register(
            "portcullis_proxy_tokens",
            "Tokens relayed",
            m.tokens.clone(),
        );
        registry.register(
            "portcullis_proxy_upstream_errors",
            "Upstream failures by reason",
            m.upstream_errors.clone(),
        );
        registry.register(
            "portcullis_proxy_active_streams",
            "Streams being relayed now",
            m.active_streams.clone(),
        );
        registry.register(
            "portcullis_proxy_rate_limited",
            "Requests refused with 429 by a key or group rate limit",
            m.rate_limited.clone(),
        );
        registry.register(
            "portcullis_proxy_rate_limiter_errors",
            "Requests refused with 503 because the shared rate-limit store did not answer",
            m.limiter_errors.clone(),
        );
        registry.register(
            "portcullis_proxy_policy_texts",
            "Request texts the policies judged: scanned, or remembered from an earlier request",
            m.policy_texts.clone(),
        );
        registry.register(
            "portcullis_events_dropped",
            "Events dropped because the queue was full",
            m.events_dropped.clone(),
        );
        registry.register(
            "portcullis_events_write_failures",
            "Events lost because the store refused them",
            m.events_write_failures.clone(),
        );
        m
    }

    /// Handles for one proxy.
    pub fn for_proxy(&self, name: &str) -> ProxyHandles {
        let label = ProxyLabel {
            proxy: name.to_owned(),
        };
        let token = |direction: &str| {
            self.tokens
                .get_or_create(&TokenLabels {
                    proxy: name.to_owned(),
                    direction: direction.to_owned(),
                })
                .clone()
        };
        let texts = |outcome: &str| {
            self.policy_texts
                .get_or_create(&OutcomeLabels {
                    proxy: name.to_owned(),
                    outcome: outcome.to_owned(),
                })
                .clone()
        };
        ProxyHandles {
            name: name.to_owned(),
            family: self.clone(),
            by_status: RwLock::new(HashMap::new()),
            latency: self.latency.get_or_create(&label).clone(),
            ttft: self.ttft.get_or_create(&label).clone(),
            overhead: self.overhead.get_or_create(&label).clone(),
            input_tokens: token("input"),
            output_tokens: token("output"),
            active_streams: self.active_streams.get_or_create(&label).clone(),
            rate_limited: self.rate_limited.get_or_create(&label).clone(),
            limiter_errors: self.limiter_errors.get_or_create(&label).clone(),
            texts_scanned: texts("scanned"),
            texts_remembered: texts("remembered"),
        }
    }
}

pub struct ProxyHandles {
    name: String,
    family: ProxyMetrics,
    by_status: RwLock<HashMap<u16, Counter>>,
    pub latency: Histogram,
    pub ttft: Histogram,
    pub overhead: Histogram,
    pub input_tokens: Counter,
    pub output_tokens: Counter,
    pub active_streams: Gauge,
    pub rate_limited: Counter,
    pub limiter_errors: Counter,
    texts_scanned: Counter,
    texts_remembered: Counter,
}

impl ProxyHandles {
    /// One request text judged by the policies, scanned now or remembered.
    pub fn count_policy_text(&self, remembered: bool) {
        if remembered {
            self.texts_remembered.inc();
        } else {
            self.texts_scanned.inc();
        }
    }

    pub fn count_status(&self, status: u16) {
        if let Some(c) = self
            .by_status
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&status)
        {
            c.inc();
            return;
        }
        let counter = self
            .family
            .requests
            .get_or_create(&StatusLabels {
                proxy: self.name.clone(),
                status,
            })
            .clone();
        counter.inc();
        self.by_status
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(status, counter);
    }

    pub fn count_upstream_error(&self, reason: &str) {
        self.family
            .upstream_errors
            .get_or_create(&ReasonLabels {
                proxy: self.name.clone(),
                reason: reason.to_owned(),
            })
            .inc();
    }
}
