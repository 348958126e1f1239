//! `bare-proxy`: the least an HTTP/1.1 reverse proxy on Portcullis' own stack
//! (tokio, hyper, hyper-util's pooled client) does: read the request, send it
//! upstream on a pooled connection, stream the answer back. No authentication,
//! routing, inspection, metrics or events.
//!
//! `make bench` runs it beside the gateway as a floor: what any proxy on this
//! stack costs on the same machine, so the gateway's own share of the gap to
//! "direct" is visible. A benchmark aid only; never a product surface.

use bytes::Bytes;
use clap::Parser;
use http::uri::{Authority, Scheme};
use http::{Request, Response, StatusCode, Uri};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::net::SocketAddr;

#[derive(Debug, Parser)]
#[command(about = "Minimal reverse proxy on hyper: a floor for `make bench` (loopback only)")]
struct Args {
    /// Address to listen on (must be loopback).
    #[arg(long)]
    listen: SocketAddr,
    /// Upstream `host:port` (must be loopback).
    #[arg(long)]
    upstream: SocketAddr,
}

type Upstream = Client<HttpConnector, Incoming>;
type Answer = Response<BoxBody<Bytes, hyper::Error>>;

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    if !args.listen.ip().is_loopback() || !args.upstream.ip().is_loopback() {
        eprintln!("bare-proxy: listen and upstream must be loopback addresses");
        return std::process::ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bare-proxy: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bare-proxy: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn serve(args: Args) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let upstream: Upstream = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(512)
        .build(connector);
    let authority = Authority::try_from(args.upstream.to_string())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    loop {
        let (tcp, _) = listener.accept().await?;
        let _ = tcp.set_nodelay(true);
        let upstream = upstream.clone();
        let authority = authority.clone();
        tokio::spawn(async move {
            let service =
                service_fn(move |request| forward(upstream.clone(), authority.clone(), request));
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), service)
                .await;
        });
    }
}

async fn forward(
    upstream: Upstream,
    authority: Authority,
    request: Request<Incoming>,
) -> Result<Answer, hyper::Error> {
    let (mut parts, body) = request.into_parts();
    let mut uri = Uri::builder().scheme(Scheme::HTTP).authority(authority);
    if let Some(path) = parts.uri.path_and_query() {
        uri = uri.path_and_query(path.clone());
    }
    parts.uri = match uri.build() {
        Ok(uri) => uri,
        Err(_) => return Ok(status(StatusCode::BAD_REQUEST)),
    };
    match upstream.request(Request::from_parts(parts, body)).await {
        Ok(answer) => Ok(answer.map(BodyExt::boxed)),
        Err(_) => Ok(status(StatusCode::BAD_GATEWAY)),
    }
}

fn status(code: StatusCode) -> Answer {
    let mut answer = Response::new(
        Full::new(Bytes::new())
            .map_err(|never| match never {})
            .boxed(),
    );
    *answer.status_mut() = code;
    answer
}
