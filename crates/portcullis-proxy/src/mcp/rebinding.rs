//! DNS-rebinding protection for MCP proxies that anyone on the machine may call.
//!
//! An MCP proxy without caller authentication (`auth_mode: none`) on a loopback
//! listener is what the MCP transport calls a local server: a web page whose
//! host name an attacker re-points at 127.0.0.1 would reach it from the browser,
//! with the page's own name in `Host` and `Origin`. Such a proxy therefore
//! serves only requests whose `Host` (or `:authority`) is a loopback name and
//! whose `Origin`, when present, is a loopback origin; anything else is refused
//! before the upstream (MCP 2025-11-25, transports: "Servers MUST validate the
//! Origin header"; "When running locally, servers SHOULD bind only to
//! localhost").
//!
//! A proxy with caller keys is not concerned: a rebinding page has no key.

use http::header::{HeaderMap, HOST, ORIGIN};
use http::Uri;
use std::net::{Ipv4Addr, Ipv6Addr};

/// Why a request was refused (logged; the client gets one message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// No `Host` header and no authority in the request target.
    NoHost,
    /// `Host` names something other than this machine's loopback.
    Host,
    /// `Origin` is present and is not a loopback origin (`null` included).
    Origin,
}

impl Rejection {
    pub fn as_str(self) -> &'static str {
        match self {
            Rejection::NoHost => "no_host",
            Rejection::Host => "host_not_loopback",
            Rejection::Origin => "origin_not_loopback",
        }
    }
}

/// Checks the request's `Host` and `Origin` (call it only for proxies the
/// protection applies to).
pub fn check(headers: &HeaderMap, uri: &Uri) -> Result<(), Rejection> {
    let host = match headers.get(HOST) {
        Some(v) => v.to_str().ok(),
        None => uri.authority().map(|a| a.as_str()),
    };
    let host = host.ok_or(Rejection::NoHost)?;
    if !is_loopback_authority(host) {
        return Err(Rejection::Host);
    }
    if let Some(origin) = headers.get(ORIGIN) {
        let origin = origin.to_str().map_err(|_| Rejection::Origin)?;
        let authority = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"))
            .ok_or(Rejection::Origin)?;
        if !is_loopback_authority(authority) {
            return Err(Rejection::Origin);
        }
    }
    Ok(())
}

/// `localhost`, an IPv4 loopback address or `[::1]`, with an optional port;
/// nothing else (no user info, path or trailing dot).
fn is_loopback_authority(authority: &str) -> bool {
    if let Some(rest) = authority.strip_prefix('[') {
        let Some((v6, after)) = rest.split_once(']') else {
            return false;
        };
        let port_ok = after.is_empty() || after.strip_prefix(':').is_some_and(is_port);
        return port_ok && v6.parse::<Ipv6Addr>().is_ok_and(|ip| ip.is_loopback());
    }
    let host = match authority.rsplit_once(':') {
        Some((host, port)) if is_port(port) => host,
        Some(_) => return false,
        None => authority,
    };
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<Ipv4Addr>().is_ok_and(|ip| ip.is_loopback())
}

/// 1 to 5 digits.
fn is_port(p: &str) -> bool {
    (1..=5).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Request;

    fn check_parts(p: &http::request::Parts) -> Result<(), Rejection> {
        check(&p.headers, &p.uri)
    }

    fn parts(host: Option<&str>, origin: Option<&str>) -> http::request::Parts {
        let mut b = Request::builder().method("POST").uri("/mcp");
        if let Some(h) = host {
            b = b.header(HOST, h);
        }
        if let Some(o) = origin {
            b = b.header(ORIGIN, o);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn loopback_hosts_and_origins_pass() {
        for host in [
            "localhost",
            "LOCALHOST:8080",
            "127.0.0.1",
            "127.0.0.1:3001",
            "127.1.2.3:80",
            "[::1]",
            "[::1]:9000",
        ] {
            assert_eq!(check_parts(&parts(Some(host), None)), Ok(()), "{host}");
            let origin = format!("http://{host}");
            assert_eq!(
                check_parts(&parts(Some(host), Some(&origin))),
                Ok(()),
                "{origin}"
            );
        }
        assert_eq!(
            check_parts(&parts(Some("localhost:1"), Some("https://127.0.0.1:443"))),
            Ok(())
        );
    }

    #[test]
    fn other_hosts_are_refused() {
        for host in [
            "evil.example.com",
            "evil.example.com:3001",
            "localhost.evil.example.com",
            "localhost.",
            "127.0.0.1.nip.io",
            "10.0.0.1:80",
            "0.0.0.0",
            "[::2]:80",
            "[::1",
            "localhost:",
            "localhost:123456",
            "localhost:80x",
            "user@localhost",
        ] {
            assert_eq!(
                check_parts(&parts(Some(host), None)),
                Err(Rejection::Host),
                "{host}"
            );
        }
        assert_eq!(check_parts(&parts(None, None)), Err(Rejection::NoHost));
    }

    #[test]
    fn a_foreign_origin_is_refused_even_with_a_loopback_host() {
        for origin in [
            "http://evil.example.com",
            "http://evil.example.com:3001",
            "null",
            "file://",
            "127.0.0.1",
            "http://127.0.0.1/x",
        ] {
            assert_eq!(
                check_parts(&parts(Some("127.0.0.1:3001"), Some(origin))),
                Err(Rejection::Origin),
                "{origin}"
            );
        }
    }

    #[test]
    fn the_authority_of_the_request_target_stands_in_for_a_missing_host() {
        let p = Request::builder()
            .uri("http://127.0.0.1:3001/mcp")
            .body(())
            .unwrap()
            .into_parts()
            .0;
        assert_eq!(check_parts(&p), Ok(()));
        let p = Request::builder()
            .uri("http://evil.example.com/mcp")
            .body(())
            .unwrap()
            .into_parts()
            .0;
        assert_eq!(check_parts(&p), Err(Rejection::Host));
    }
}
