//! The pooled HTTP client towards providers: HTTP/1.1 and HTTP/2, rustls with the
//! Mozilla roots, TCP_NODELAY, per-proxy connect timeout.

use bytes::Bytes;
use http_body_util::Full;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::dns::GaiResolver;
use hyper_util::client::legacy::connect::{Connect, HttpConnector};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::time::Duration;

pub type UpstreamClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

#[derive(Debug, thiserror::Error)]
#[error("TLS set-up failed: {0}")]
pub struct TlsError(String);

pub fn client(connect_timeout: Duration) -> Result<UpstreamClient, TlsError> {
    pooled(http_connector(GaiResolver::new(), connect_timeout))
}

/// The TCP connector with the gateway's settings, resolving names with `resolver`.
pub fn http_connector<R>(resolver: R, connect_timeout: Duration) -> HttpConnector<R> {
    let mut http = HttpConnector::new_with_resolver(resolver);
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(connect_timeout));
    http.set_keepalive(Some(Duration::from_secs(60)));
    http
}

/// `connector` behind TLS (http and https), HTTP/1.1 and HTTP/2, pooled.
pub fn pooled<C>(connector: C) -> Result<Client<HttpsConnector<C>, Full<Bytes>>, TlsError>
where
    HttpsConnector<C>: Connect + Clone,
{
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
        .map_err(|e| TlsError(e.to_string()))?
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(connector);
    Ok(Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(512)
        .build(https))
}
