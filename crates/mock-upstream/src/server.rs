//! Listener, connections and the handle tests hold.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};

use crate::handler::{handle, State};
use crate::{MockConfig, RecordedRequest};

/// A running mock. Dropping it stops the server too (like [`Self::shutdown`]
/// without waiting), so a test that forgets to shut down does not leak it.
pub struct MockUpstream {
    addr: SocketAddr,
    state: Arc<State>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl MockUpstream {
    /// Binds `addr` (port 0 picks a free port) and serves HTTP/1.1 and h2c
    /// on it from a background task of the current tokio runtime.
    pub async fn start(addr: SocketAddr, config: MockConfig) -> std::io::Result<MockUpstream> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State::new(config));
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(accept_loop(listener, Arc::clone(&state), stopped));
        Ok(MockUpstream {
            addr,
            state,
            stop,
            task,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://IP:PORT`, with a wildcard listen address replaced by loopback
    /// so the URL is always connectable.
    pub fn base_url(&self) -> String {
        let ip = match self.addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        format!("http://{}", SocketAddr::new(ip, self.addr.port()))
    }

    /// Recorded requests, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.recorder.snapshot()
    }

    pub fn clear(&self) {
        self.state.recorder.clear();
    }

    /// Stops accepting, drops every open connection (a stalled one would
    /// otherwise hold shutdown for an hour) and waits for the server task.
    pub async fn shutdown(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }

    /// Open connections; lets tests check that stalls end with the client.
    #[cfg(test)]
    fn active_connections(&self) -> usize {
        self.state.active.load(Ordering::SeqCst)
    }
}

/// Decrements the open-connection count however the connection task ends
/// (finished, failed or aborted).
struct ConnectionGuard(Arc<State>);

impl ConnectionGuard {
    fn new(state: &Arc<State>) -> Self {
        state.active.fetch_add(1, Ordering::SeqCst);
        Self(Arc::clone(state))
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::SeqCst);
    }
}

fn builder() -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // No timer is configured, so hyper's default header-read timeout would
    // only log a warning per connection; idle keep-alive connections from a
    // client pool must stay open anyway.
    builder.http1().keep_alive(true).header_read_timeout(None);
    builder
}

async fn accept_loop(listener: TcpListener, state: Arc<State>, mut stopped: oneshot::Receiver<()>) {
    let builder = Arc::new(builder());
    // Connection tasks live in a set so shutdown can end them all.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            // Either an explicit shutdown or the handle was dropped.
            _ = &mut stopped => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let guard = ConnectionGuard::new(&state);
                    connections.spawn(serve(stream, Arc::clone(&builder), Arc::clone(&state), guard));
                }
                Err(err) => {
                    // Typically out of file descriptors: back off instead of spinning.
                    tracing::debug!(%err, "mock-upstream: accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    connections.abort_all();
    while connections.join_next().await.is_some() {}
}

async fn serve(
    stream: TcpStream,
    builder: Arc<auto::Builder<TokioExecutor>>,
    state: Arc<State>,
    _open: ConnectionGuard,
) {
    // Small SSE frames must leave immediately, not wait for Nagle.
    let _ = stream.set_nodelay(true);
    let service = service_fn(move |req| handle(Arc::clone(&state), req));
    // Errors here are clients going away or deliberate faults; not logged,
    // as the mock stays silent per request.
    let _ = builder
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn wait_for(mock: &MockUpstream, connections: usize) {
        for _ in 0..200 {
            if mock.active_connections() == connections {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "expected {connections} open connections, have {}",
            mock.active_connections()
        );
    }

    async fn stalled_request(mock: &MockUpstream, fault: &str, stream: bool) -> TcpStream {
        let body = format!(
            r#"{{"model":"gpt-4o","stream":{stream},"messages":[{{"role":"user","content":"hi"}}]}}"#
        );
        let request = format!(
            "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\nx-mock-fault: {fault}\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        let mut tcp = TcpStream::connect(mock.addr()).await.unwrap();
        tcp.write_all(request.as_bytes()).await.unwrap();
        tcp
    }

    #[tokio::test]
    async fn stalled_connections_end_when_the_client_leaves() {
        let mock = MockUpstream::start(([127, 0, 0, 1], 0).into(), MockConfig::default())
            .await
            .unwrap();

        let tcp = stalled_request(&mock, "mock-stall", false).await;
        wait_for(&mock, 1).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(tcp);
        wait_for(&mock, 0).await;

        let mut tcp = stalled_request(&mock, "mock-stall-stream", true).await;
        let mut buf = [0u8; 4096];
        let n = tcp.read(&mut buf).await.unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
        wait_for(&mock, 1).await;
        drop(tcp);
        wait_for(&mock, 0).await;
        mock.shutdown().await;
    }

    #[tokio::test]
    async fn shutdown_ends_stalled_connections() {
        let mock = MockUpstream::start(([127, 0, 0, 1], 0).into(), MockConfig::default())
            .await
            .unwrap();
        let addr = mock.addr();
        let _tcp = stalled_request(&mock, "mock-stall", false).await;
        wait_for(&mock, 1).await;
        let state = Arc::clone(&mock.state);
        tokio::time::timeout(Duration::from_secs(2), mock.shutdown())
            .await
            .unwrap();
        assert_eq!(state.active.load(Ordering::SeqCst), 0);
        assert!(TcpStream::connect(addr).await.is_err());
    }

    #[tokio::test]
    async fn base_url_is_connectable_for_wildcard_listeners() {
        let mock = MockUpstream::start(([0, 0, 0, 0], 0).into(), MockConfig::default())
            .await
            .unwrap();
        assert_eq!(
            mock.base_url(),
            format!("http://127.0.0.1:{}", mock.addr().port())
        );
    }
}
