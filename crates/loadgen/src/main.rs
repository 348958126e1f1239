//! `loadgen`: drives HTTP load at one URL and prints one JSON line of results.
//!
//! Modes: `closed` (N connections, each sends the next request when the last one
//! ends: throughput), `open` (requests start on a fixed schedule whatever the
//! answers: latency at a given rate, free of coordinated omission), `ttfb`
//! (sequential requests, time to the first body byte and to the end).

use bytes::Bytes;
use clap::{Parser, ValueEnum};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Mode {
    Closed,
    Open,
    Ttfb,
}

#[derive(Debug, Parser)]
#[command(about = "HTTP load generator for Portcullis benchmarks (loopback only)")]
struct Args {
    /// closed, open or ttfb.
    #[arg(long, value_enum)]
    mode: Mode,
    /// Target URL (must be on 127.0.0.0/8).
    #[arg(long)]
    url: String,
    /// JSON body file to POST. Each `{{n}}` in it becomes the request's number
    /// (8 digits), so no two requests carry the same text.
    #[arg(long)]
    body: std::path::PathBuf,
    /// Extra header, `Name: value` (repeatable).
    #[arg(long = "header")]
    headers: Vec<String>,
    /// Concurrent connections (closed mode).
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Requests per second (open mode).
    #[arg(long, default_value_t = 1000)]
    rate: u64,
    /// Seconds of measurement (closed and open).
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Seconds of warm-up before measuring.
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// Requests (ttfb mode).
    #[arg(long, default_value_t = 200)]
    requests: usize,
    /// Label printed with the results.
    #[arg(long, default_value = "")]
    label: String,
}

type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

struct Target {
    client: HttpClient,
    uri: http::Uri,
    body: Body,
    headers: Vec<(http::HeaderName, http::HeaderValue)>,
}

/// The body file, split at its `{{n}}` markers.
struct Body {
    pieces: Vec<Bytes>,
    sent: std::sync::atomic::AtomicU64,
}

impl Body {
    const MARKER: &'static [u8] = b"{{n}}";

    fn new(file: Vec<u8>) -> Body {
        let mut pieces = Vec::new();
        let mut rest = &file[..];
        while let Some(at) = rest
            .windows(Self::MARKER.len())
            .position(|w| w == Self::MARKER)
        {
            pieces.push(Bytes::copy_from_slice(&rest[..at]));
            rest = &rest[at + Self::MARKER.len()..];
        }
        pieces.push(Bytes::copy_from_slice(rest));
        Body {
            pieces,
            sent: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn next(&self) -> Bytes {
        if self.pieces.len() == 1 {
            return self.pieces[0].clone();
        }
        let n = self.sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let number = format!("{:08}", n % 100_000_000);
        let mut out = Vec::with_capacity(self.pieces.iter().map(Bytes::len).sum::<usize>() + 64);
        for (i, piece) in self.pieces.iter().enumerate() {
            if i > 0 {
                out.extend_from_slice(number.as_bytes());
            }
            out.extend_from_slice(piece);
        }
        out.into()
    }
}

impl Target {
    /// Sends one request; returns (status, time to first body byte, total).
    async fn send(&self) -> Result<(u16, Duration, Duration), String> {
        let started = Instant::now();
        let mut req =
            http::Request::post(self.uri.clone()).header("content-type", "application/json");
        for (n, v) in &self.headers {
            req = req.header(n, v);
        }
        let req = req
            .body(Full::new(self.body.next()))
            .map_err(|e| e.to_string())?;
        let resp = self.client.request(req).await.map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let mut body = resp.into_body();
        let mut first = None;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| e.to_string())?;
            if first.is_none() && frame.data_ref().is_some_and(|d| !d.is_empty()) {
                first = Some(started.elapsed());
            }
        }
        let total = started.elapsed();
        Ok((status, first.unwrap_or(total), total))
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let args = Args::parse();
    let uri: http::Uri = args.url.parse().map_err(|e| format!("bad --url: {e}"))?;
    let host = uri.host().unwrap_or_default();
    if !(host == "localhost" || host.starts_with("127.")) {
        return Err("loadgen only targets loopback addresses".into());
    }
    let body =
        Body::new(std::fs::read(&args.body).map_err(|e| format!("cannot read --body: {e}"))?);
    let mut headers = Vec::new();
    for h in &args.headers {
        let (n, v) = h
            .split_once(':')
            .ok_or_else(|| format!("bad --header {h:?}"))?;
        headers.push((
            http::HeaderName::from_bytes(n.trim().as_bytes()).map_err(|e| e.to_string())?,
            http::HeaderValue::from_str(v.trim()).map_err(|e| e.to_string())?,
        ));
    }
    let mut connector = hyper_util::client::legacy::connect::HttpConnector::new();
    connector.set_nodelay(true);
    let client: HttpClient = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(4096)
        .build(connector);
    let target = Arc::new(Target {
        client,
        uri,
        body,
        headers,
    });

    let result = match args.mode {
        Mode::Closed => closed(target, args.connections, args.warmup, args.duration).await,
        Mode::Open => open(target, args.rate, args.warmup, args.duration).await,
        Mode::Ttfb => ttfb(target, args.requests).await,
    };
    let mut result = result;
    result["label"] = serde_json::Value::String(args.label);
    println!("{result}");
    Ok(())
}

async fn closed(
    target: Arc<Target>,
    connections: usize,
    warmup: u64,
    duration: u64,
) -> serde_json::Value {
    let measuring = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let lat = Arc::new(Mutex::new(Vec::<Duration>::new()));
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (t, measuring, done, ok, errors, lat) = (
            target.clone(),
            measuring.clone(),
            done.clone(),
            ok.clone(),
            errors.clone(),
            lat.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut local = Vec::new();
            while !done.load(Ordering::Relaxed) {
                let r = t.send().await;
                if measuring.load(Ordering::Relaxed) && !done.load(Ordering::Relaxed) {
                    match r {
                        Ok((s, _, total)) if s < 400 => {
                            ok.fetch_add(1, Ordering::Relaxed);
                            local.push(total);
                        }
                        _ => {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
            if let Ok(mut l) = lat.lock() {
                l.extend(local);
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(warmup)).await;
    measuring.store(true, Ordering::Relaxed);
    let began = Instant::now();
    tokio::time::sleep(Duration::from_secs(duration)).await;
    done.store(true, Ordering::Relaxed);
    let elapsed = began.elapsed().as_secs_f64();
    for t in tasks {
        let _ = t.await;
    }
    let mut lat = lat.lock().map(|l| l.clone()).unwrap_or_default();
    lat.sort();
    serde_json::json!({
        "mode": "closed", "connections": connections,
        "rps": ok.load(Ordering::Relaxed) as f64 / elapsed,
        "errors": errors.load(Ordering::Relaxed),
        "p50_ms": percentile(&lat, 0.5), "p99_ms": percentile(&lat, 0.99),
    })
}

async fn open(target: Arc<Target>, rate: u64, warmup: u64, duration: u64) -> serde_json::Value {
    let interval = Duration::from_nanos(1_000_000_000 / rate.max(1));
    let lat = Arc::new(Mutex::new(Vec::<Duration>::new()));
    let errors = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let warm_end = start + Duration::from_secs(warmup);
    let end = warm_end + Duration::from_secs(duration);
    let mut next = start;
    let mut tasks = tokio::task::JoinSet::new();
    while next < end {
        tokio::time::sleep_until(next.into()).await;
        let scheduled = next;
        let measured = scheduled >= warm_end;
        let (t, lat, errors) = (target.clone(), lat.clone(), errors.clone());
        tasks.spawn(async move {
            let r = t.send().await;
            // Latency from the scheduled start: a late send counts against the system.
            let total = scheduled.elapsed();
            if measured {
                match r {
                    Ok((s, _, _)) if s < 400 => {
                        if let Ok(mut l) = lat.lock() {
                            l.push(total);
                        }
                    }
                    _ => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        });
        next += interval;
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    let mut lat = lat.lock().map(|l| l.clone()).unwrap_or_default();
    lat.sort();
    serde_json::json!({
        "mode": "open", "rate": rate, "completed": lat.len(),
        "errors": errors.load(Ordering::Relaxed),
        "p50_ms": percentile(&lat, 0.5), "p90_ms": percentile(&lat, 0.9), "p99_ms": percentile(&lat, 0.99),
    })
}

async fn ttfb(target: Arc<Target>, requests: usize) -> serde_json::Value {
    // A few unmeasured requests open the connection and warm caches.
    for _ in 0..5 {
        let _ = target.send().await;
    }
    let mut first = Vec::new();
    let mut total = Vec::new();
    let mut errors = 0u64;
    for _ in 0..requests {
        match target.send().await {
            Ok((s, f, t)) if s < 400 => {
                first.push(f);
                total.push(t);
            }
            _ => errors += 1,
        }
    }
    first.sort();
    total.sort();
    serde_json::json!({
        "mode": "ttfb", "requests": requests, "errors": errors,
        "ttfb_p50_ms": percentile(&first, 0.5), "ttfb_p99_ms": percentile(&first, 0.99),
        "total_p50_ms": percentile(&total, 0.5),
    })
}
