//! The HTTP client the A2A gateway uses on an agent's behalf, with the SSRF policy
//! applied where it cannot be bypassed: at connect time, to the addresses actually
//! connected to. Names are resolved by [`GuardedResolver`], which drops every
//! refused address (a name that rebinds to 127.0.0.1 between registration and
//! call is refused at the call); IP literals, which hyper's connector does not
//! resolve, are checked by [`GuardedConnector`] before it connects. Only http and
//! https are spoken, and the client follows no redirects.

use bytes::Bytes;
use http::Uri;
use http_body_util::Full;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioIo;
use portcullis_core::net::{NetPolicy, Refused};
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpStream;
use tower::Service;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type BoxFuture<T> = Pin<Box<dyn Future<Output = Result<T, BoxError>> + Send>>;

pub type GuardedClient = Client<HttpsConnector<GuardedConnector>, Full<Bytes>>;

/// Addresses a name may resolve to at most (the rest are ignored).
const MAX_ADDRS: usize = 16;

/// Why a URL may not be fetched, before any connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlRefused {
    #[error("only http and https URLs are allowed")]
    Scheme,
    #[error("the URL has no host")]
    NoHost,
    #[error(transparent)]
    Address(#[from] Refused),
}

/// The checks that need no DNS: scheme, and the host if it is an IP literal.
pub fn check_uri(policy: &NetPolicy, uri: &Uri) -> Result<(), UrlRefused> {
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return Err(UrlRefused::Scheme);
    }
    let host = uri.host().ok_or(UrlRefused::NoHost)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = host.parse::<IpAddr>() {
        policy.check(ip)?;
    }
    Ok(())
}

/// A URL the agent will fetch or call for the caller (webhook, file URI): http(s)
/// only, a literal address checked, a name resolved here and refused if any of
/// its addresses is (the agent resolves it again later; a name that cannot be
/// resolved is refused too).
pub async fn check_outbound(policy: &NetPolicy, url: &str) -> Result<(), String> {
    let uri: Uri = url.parse().map_err(|_| "is not a valid URL".to_owned())?;
    check_uri(policy, &uri).map_err(|e| e.to_string())?;
    let host = uri.host().unwrap_or_default();
    if host.starts_with('[') || host.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    let lookup = tokio::net::lookup_host((host, 0));
    let found = tokio::time::timeout(Duration::from_secs(5), lookup)
        .await
        .map_err(|_| format!("host {host:?} did not resolve in time"))?
        .map_err(|_| format!("host {host:?} cannot be resolved"))?;
    for addr in found.take(MAX_ADDRS) {
        policy.check(addr.ip()).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// The policy's refusal somewhere in an error's chain, if that is why it failed.
pub fn refusal(e: &(dyn std::error::Error + 'static)) -> Option<UrlRefused> {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(r) = err.downcast_ref::<UrlRefused>() {
            return Some(r.clone());
        }
        if let Some(r) = err.downcast_ref::<Refused>() {
            return Some(UrlRefused::Address(*r));
        }
        cur = err.source();
    }
    None
}

/// The pooled client whose every connection passes `policy`.
pub fn client(
    policy: Arc<NetPolicy>,
    connect_timeout: Duration,
) -> Result<GuardedClient, crate::upstream::TlsError> {
    let resolver = GuardedResolver {
        policy: policy.clone(),
    };
    crate::upstream::pooled(GuardedConnector {
        inner: crate::upstream::http_connector(resolver, connect_timeout),
        policy,
    })
}

/// DNS through the system resolver, keeping only the addresses the policy allows.
#[derive(Clone)]
pub struct GuardedResolver {
    policy: Arc<NetPolicy>,
}

impl Service<Name> for GuardedResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = BoxError;
    type Future = BoxFuture<Self::Response>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let policy = self.policy.clone();
        Box::pin(async move {
            let found = tokio::net::lookup_host((name.as_str(), 0))
                .await
                .map_err(|e| Box::new(e) as BoxError)?;
            allowed(&policy, found.take(MAX_ADDRS)).map(Vec::into_iter)
        })
    }
}

/// The addresses `policy` allows; the first refusal when it allows none.
fn allowed(
    policy: &NetPolicy,
    addrs: impl Iterator<Item = SocketAddr>,
) -> Result<Vec<SocketAddr>, BoxError> {
    let mut kept = Vec::new();
    let mut refused = None;
    for addr in addrs {
        match policy.check(addr.ip()) {
            Ok(()) => kept.push(addr),
            Err(r) => {
                refused.get_or_insert(r);
            }
        }
    }
    match (kept.is_empty(), refused) {
        (true, Some(r)) => Err(Box::new(UrlRefused::Address(r))),
        _ => Ok(kept),
    }
}

/// hyper's TCP connector behind the checks it would skip: scheme, and IP-literal
/// hosts (which it connects to without asking the resolver).
#[derive(Clone)]
pub struct GuardedConnector {
    inner: HttpConnector<GuardedResolver>,
    policy: Arc<NetPolicy>,
}

impl Service<Uri> for GuardedConnector {
    type Response = TokioIo<TcpStream>;
    type Error = BoxError;
    type Future = BoxFuture<Self::Response>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        if let Err(e) = check_uri(&self.policy, &dst) {
            return Box::pin(std::future::ready(Err(Box::new(e) as BoxError)));
        }
        let connecting = self.inner.call(dst);
        Box::pin(async move { connecting.await.map_err(Into::into) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn deny() -> Arc<NetPolicy> {
        Arc::new(NetPolicy::default())
    }

    #[test]
    fn literal_hosts_and_schemes_are_checked() {
        let p = NetPolicy::default();
        let uri = |s: &str| s.parse::<Uri>().unwrap();
        assert!(check_uri(&p, &uri("http://93.184.216.34/x")).is_ok());
        assert!(check_uri(&p, &uri("https://agent.example.com/")).is_ok());
        for bad in [
            "http://127.0.0.1:8080/",
            "http://[::1]/",
            "http://[::ffff:169.254.169.254]/latest",
            "http://169.254.169.254/latest/meta-data",
            "http://10.0.0.5/",
            "http://0.0.0.0:80/",
        ] {
            assert!(
                matches!(check_uri(&p, &uri(bad)), Err(UrlRefused::Address(_))),
                "{bad}"
            );
        }
        assert_eq!(
            check_uri(&p, &uri("ftp://93.184.216.34/")),
            Err(UrlRefused::Scheme)
        );
        let open = NetPolicy::permissive();
        assert!(check_uri(&open, &uri("http://127.0.0.1:1/")).is_ok());
    }

    #[tokio::test]
    async fn outbound_urls_are_checked_with_their_names_resolved() {
        let p = NetPolicy::default();
        for bad in [
            "http://169.254.169.254/latest",
            "http://localhost:8080/hook",
            "file:///etc/passwd",
            "not a url",
        ] {
            assert!(check_outbound(&p, bad).await.is_err(), "{bad}");
        }
        assert!(check_outbound(&p, "https://93.184.216.34/hook")
            .await
            .is_ok());
        let private = NetPolicy {
            allow_private: true,
            allowed: Vec::new(),
        };
        assert!(check_outbound(&private, "http://localhost:1/")
            .await
            .is_ok());
        assert!(check_outbound(&private, "http://169.254.169.254/")
            .await
            .is_err());
    }

    #[test]
    fn resolved_addresses_are_filtered() {
        let p = NetPolicy::default();
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        let mixed = [a("127.0.0.1:80"), a("93.184.216.34:80")];
        let kept = allowed(&p, mixed.into_iter()).unwrap();
        assert_eq!(kept, vec![a("93.184.216.34:80")]);
        let all_bad = [a("127.0.0.1:80"), a("[::1]:80")];
        let err = allowed(&p, all_bad.into_iter()).unwrap_err();
        assert!(matches!(
            refusal(err.as_ref()),
            Some(UrlRefused::Address(_))
        ));
        assert!(allowed(&p, std::iter::empty()).unwrap().is_empty());
    }

    /// A server on loopback; the guarded client must not reach it by IP or by
    /// name (`localhost` resolves to loopback: the resolver path), and must when
    /// the policy allows private networks.
    #[tokio::test]
    async fn connections_to_refused_addresses_never_happen() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tokio::spawn(async move {
                    use tokio::io::{AsyncReadExt, AsyncWriteExt};
                    let mut buf = [0u8; 1024];
                    let _ = sock.read(&mut buf).await;
                    let _ = sock
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                        .await;
                });
            }
        });
        let get = |url: String| {
            http::Request::get(url)
                .body(Full::new(Bytes::new()))
                .unwrap()
        };
        let guarded = client(deny(), Duration::from_secs(2)).unwrap();
        for url in [
            format!("http://127.0.0.1:{port}/"),
            format!("http://localhost:{port}/"),
            format!("http://[::ffff:127.0.0.1]:{port}/"),
        ] {
            let err = guarded.request(get(url.clone())).await.unwrap_err();
            assert!(refusal(&err).is_some(), "{url}: {err:?}");
        }
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 0);

        let open = client(
            Arc::new(NetPolicy {
                allow_private: true,
                allowed: Vec::new(),
            }),
            Duration::from_secs(2),
        )
        .unwrap();
        let resp = open
            .request(get(format!("http://127.0.0.1:{port}/")))
            .await
            .unwrap();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"ok");
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
    }
}
