//! Prometheus metrics of the control plane: HTTP requests by route, method and
//! status, their latency, and the process (CPU, memory, file descriptors).

use crate::state::AppState;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
    method: String,
}

fn latency_histogram() -> Histogram {
    // 0.1 ms .. ~3.3 s
    Histogram::new(exponential_buckets(0.0001, 2.0, 16))
}

pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram, fn() -> Histogram>,
    pub failed_logins: Counter,
    pub audit_write_failures: Counter,
    process: ProcessMetrics,
}

struct ProcessMetrics {
    cpu_seconds: Counter<f64, AtomicU64>,
    last_cpu: Mutex<f64>,
    resident_bytes: Gauge,
    open_fds: Gauge,
    start_time: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        Self::with_registry(Registry::default())
    }

    /// Control-plane metrics added to a registry others (the data plane) use too.
    pub fn with_registry(mut registry: Registry) -> Self {
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        let failed_logins = Counter::default();
        let audit_write_failures = Counter::default();
        registry.register(
            "portcullis_http_requests",
            "Control-plane HTTP requests",
            requests.clone(),
        );
        registry.register(
            "portcullis_http_request_duration_seconds",
            "Control-plane HTTP request latency",
            latency.clone(),
        );
        registry.register(
            "portcullis_failed_logins",
            "Failed admin logins",
            failed_logins.clone(),
        );
        registry.register(
            "portcullis_audit_write_failures",
            "Audit entries that could not be written",
            audit_write_failures.clone(),
        );
        let process = ProcessMetrics {
            cpu_seconds: Counter::default(),
            last_cpu: Mutex::new(0.0),
            resident_bytes: Gauge::default(),
            open_fds: Gauge::default(),
            start_time: Gauge::default(),
        };
        process.start_time.set(jiff::Timestamp::now().as_second());
        registry.register(
            "process_cpu_seconds",
            "User and system CPU time",
            process.cpu_seconds.clone(),
        );
        registry.register(
            "process_resident_memory_bytes",
            "Resident memory",
            process.resident_bytes.clone(),
        );
        registry.register(
            "process_open_fds",
            "Open file descriptors",
            process.open_fds.clone(),
        );
        registry.register(
            "process_start_time_seconds",
            "Start time, Unix seconds",
            process.start_time.clone(),
        );
        Self {
            registry,
            requests,
            latency,
            failed_logins,
            audit_write_failures,
            process,
        }
    }

    pub fn observe(&self, route: String, method: String, status: u16, elapsed: Duration) {
        self.latency
            .get_or_create(&RouteLabels {
                route: route.clone(),
                method: method.clone(),
            })
            .observe(elapsed.as_secs_f64());
        self.requests
            .get_or_create(&RequestLabels {
                route,
                method,
                status,
            })
            .inc();
    }

    /// Text exposition, with process figures read just now.
    pub fn render(&self) -> Result<String, std::fmt::Error> {
        self.process.refresh();
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

impl ProcessMetrics {
    fn refresh(&self) {
        // Linux only; elsewhere the figures stay at zero.
        if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
            // Fields after the parenthesised command name; utime and stime are 14 and 15.
            if let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) {
                let fields: Vec<&str> = rest.split_whitespace().collect();
                let ticks = |i: usize| {
                    fields
                        .get(i)
                        .and_then(|v| v.parse::<f64>().ok())
                        .unwrap_or(0.0)
                };
                let cpu = (ticks(11) + ticks(12)) / 100.0;
                let mut last = self.last_cpu.lock().unwrap_or_else(|p| p.into_inner());
                if cpu > *last {
                    self.cpu_seconds.inc_by(cpu - *last);
                    *last = cpu;
                }
            }
        }
        if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
            let rss_kb = status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<i64>().ok());
            if let Some(kb) = rss_kb {
                self.resident_bytes.set(kb * 1024);
            }
        }
        if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
            self.open_fds.set(dir.count() as i64);
        }
    }
}

/// Counts and times every matched control-plane request.
pub async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_default();
    let method = req.method().as_str().to_owned();
    let response = next.run(req).await;
    state
        .metrics
        .observe(route, method, response.status().as_u16(), start.elapsed());
    response
}
