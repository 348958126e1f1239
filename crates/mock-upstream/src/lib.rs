//! A mock of the OpenAI and Anthropic APIs for tests and benchmarks: the real
//! response shapes, SSE streams chunked like the real ones, usage blocks, errors,
//! latency and faults chosen per request (by model name or `x-mock-fault`).

mod handlers;
mod text;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde::Serialize;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub type MockBody = BoxBody<Bytes, std::io::Error>;

#[derive(Clone, Debug)]
pub struct MockConfig {
    /// Content chunks per stream.
    pub chunks: usize,
    /// Wait before each stream chunk.
    pub chunk_delay: Duration,
    /// Wait before the response head.
    pub latency: Duration,
    /// When set, requests must present exactly this key.
    pub expected_key: Option<String>,
    /// Requests kept for inspection (oldest dropped).
    pub record_limit: usize,
}

impl Default for MockConfig {
    fn default() -> Self {
        Self {
            chunks: 8,
            chunk_delay: Duration::ZERO,
            latency: Duration::ZERO,
            expected_key: None,
            record_limit: 1000,
        }
    }
}

/// A request as the mock received it.
#[derive(Clone, Debug, Serialize)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    /// Lossy UTF-8, at most 64 KiB.
    pub body: String,
}

pub(crate) struct Shared {
    pub config: MockConfig,
    pub recorded: Mutex<VecDeque<RecordedRequest>>,
    pub counter: AtomicU64,
}

pub struct MockUpstream {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl MockUpstream {
    pub async fn start(addr: SocketAddr, config: MockConfig) -> std::io::Result<MockUpstream> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            config,
            recorded: Mutex::new(VecDeque::new()),
            counter: AtomicU64::new(0),
        });
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let server_shared = shared.clone();
        let task = tokio::spawn(async move {
            loop {
                let (stream, _) = tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok(conn) => conn,
                        Err(_) => continue,
                    },
                    _ = stopped.changed() => return,
                };
                let _ = stream.set_nodelay(true);
                let shared = server_shared.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| handlers::handle(shared.clone(), req));
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(MockUpstream {
            addr,
            shared,
            stop,
            task,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared
            .recorded
            .lock()
            .map(|r| r.iter().cloned().collect())
            .unwrap_or_default()
    }

    pub fn clear(&self) {
        if let Ok(mut r) = self.shared.recorded.lock() {
            r.clear();
        }
    }

    /// Stops accepting connections and ends the server task.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}
