//! The MCP vulnerability scanner: connect to an MCP server as a client, list what
//! it offers and report security findings. One implementation for
//! `portcullis mcp scan` (the binary) and `POST /api/v1/mcp/scans` (the admin API).
//!
//! [`client`] speaks to the server (Streamable HTTP or stdio), [`scan`] enumerates
//! and runs the checks, [`checks`] holds the heuristics as pure functions. No
//! database, no configuration: the caller says what to scan and how far.

pub mod checks;
pub mod client;
mod error;
pub mod scan;

pub use client::{Limits, StdioCommand};
pub use error::{Result, ScanError};
pub use scan::{findings_for, Bounds, Engines, Finding, Inventory, Target};

use client::{HttpTransport, Session, StdioTransport, Transport};
use http::header::{HeaderName, HeaderValue};
use http::Uri;
use portcullis_policy::Severity;
use serde::Serialize;
use serde_json::Value;
use std::time::Duration;

/// Seconds to wait for each answer, connection included.
pub const DEFAULT_TIMEOUT_SECS: u64 = 10;
/// Largest message accepted from the server (eight times this for an SSE answer).
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;
/// Pages read per list.
pub const DEFAULT_MAX_PAGES: usize = 20;
/// Text resources read.
pub const DEFAULT_MAX_RESOURCES: usize = 20;
/// Resources announced larger than this are not read.
pub const MAX_RESOURCE_BYTES: u64 = 1024 * 1024;

impl Default for Limits {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(DEFAULT_TIMEOUT_SECS),
            max_message: DEFAULT_MAX_MESSAGE_BYTES,
        }
    }
}

impl Default for Bounds {
    fn default() -> Self {
        Self {
            max_pages: DEFAULT_MAX_PAGES,
            max_resources: DEFAULT_MAX_RESOURCES,
            max_resource_bytes: MAX_RESOURCE_BYTES,
        }
    }
}

/// What to scan.
#[derive(Debug, Clone)]
pub enum Server {
    /// A Streamable HTTP endpoint; `headers` go with every request (their values
    /// are sensitive) and `shown` names it in errors.
    Http {
        uri: Uri,
        shown: String,
        headers: Vec<(HeaderName, HeaderValue)>,
    },
    /// A program speaking MCP on its stdin and stdout.
    Stdio(StdioCommand),
}

/// How the server was reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TransportKind {
    StreamableHttp,
    Stdio,
}

impl TransportKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TransportKind::StreamableHttp => "streamable_http",
            TransportKind::Stdio => "stdio",
        }
    }
}

/// A server enumerated: where it is and what it lists. The checks
/// ([`findings_for`]) run over it.
#[derive(Debug, Clone)]
pub struct Scanned {
    pub target: Target,
    pub inventory: Inventory,
}

impl Scanned {
    pub fn transport(&self) -> TransportKind {
        match self.target {
            Target::Http { .. } => TransportKind::StreamableHttp,
            Target::Stdio => TransportKind::Stdio,
        }
    }
}

/// Parses an `http://` or `https://` URL.
pub fn parse_url(url: &str) -> Result<Uri> {
    let uri: Uri = url
        .parse()
        .map_err(|_| ScanError::Target(format!("{url:?} is not a valid URL")))?;
    let scheme = uri.scheme_str().unwrap_or("").to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return Err(ScanError::Target(
            "the URL must start with http:// or https://".into(),
        ));
    }
    Ok(uri)
}

/// The URL without `user:password@`, and without the query unless `query`
/// (a query may carry a token).
pub fn display_url(uri: &Uri, query: bool) -> String {
    let scheme = uri.scheme_str().unwrap_or("").to_ascii_lowercase();
    let authority = uri
        .authority()
        .map(|a| a.as_str().rsplit('@').next().unwrap_or(""))
        .unwrap_or("");
    let rest = if query {
        uri.path_and_query().map(|p| p.as_str()).unwrap_or("")
    } else {
        uri.path()
    };
    format!("{scheme}://{authority}{rest}")
}

/// Connects, runs the no-authentication probe (HTTP with headers), enumerates
/// within `bounds`, and ends the session. Errors up to the tool list are fatal.
pub async fn inspect(server: &Server, limits: Limits, bounds: Bounds) -> Result<Scanned> {
    let (mut session, mut target) = match server {
        Server::Http {
            uri,
            shown,
            headers,
        } => {
            let scheme = uri.scheme_str().unwrap_or("").to_ascii_lowercase();
            if scheme != "http" && scheme != "https" {
                return Err(ScanError::Target(
                    "the URL must start with http:// or https://".into(),
                ));
            }
            let host = uri.host().unwrap_or("").to_owned();
            let credentials = !headers.is_empty();
            let transport =
                HttpTransport::new(uri.clone(), shown.clone(), headers.clone(), limits)?;
            (
                Session::new(Transport::Http(Box::new(transport))),
                Target::Http {
                    scheme,
                    host,
                    credentials,
                    open: false,
                },
            )
        }
        Server::Stdio(command) => {
            let transport = StdioTransport::spawn(command, limits)?;
            (
                Session::new(Transport::Stdio(Box::new(transport))),
                Target::Stdio,
            )
        }
    };
    // The no-authentication check: initialize without any credential. Without
    // headers the real initialize below is that attempt.
    let open_without_headers = match &target {
        Target::Http {
            credentials: true, ..
        } => Some(scan::probe_open(&mut session).await),
        _ => None,
    };
    let enumerated = scan::enumerate(&mut session, bounds).await;
    session.close().await;
    let inventory = enumerated?;
    if let Target::Http {
        credentials, open, ..
    } = &mut target
    {
        *open = open_without_headers.unwrap_or(!*credentials);
    }
    Ok(Scanned { target, inventory })
}

/// `serverInfo` and the protocol version, clipped.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ServerInfo {
    pub name: Option<String>,
    pub version: Option<String>,
    pub protocol_version: Option<String>,
}

pub fn server_info(inv: &Inventory) -> ServerInfo {
    let info = inv.initialize.get("serverInfo");
    let text = |v: Option<&Value>, max| v.and_then(Value::as_str).map(|s| checks::clip(s, max));
    ServerInfo {
        name: text(info.and_then(|i| i.get("name")), 200),
        version: text(info.and_then(|i| i.get("version")), 100),
        protocol_version: text(inv.initialize.get("protocolVersion"), 40),
    }
}

pub fn severity_name(s: Severity) -> &'static str {
    match s {
        Severity::Info => "info",
        Severity::Low => "low",
        Severity::Medium => "medium",
        Severity::High => "high",
        Severity::Critical => "critical",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_shown_without_credentials() {
        let uri = parse_url("https://user:pw@mcp.example.com:8443/mcp?token=abc").unwrap();
        assert_eq!(
            display_url(&uri, true),
            "https://mcp.example.com:8443/mcp?token=abc"
        );
        assert_eq!(display_url(&uri, false), "https://mcp.example.com:8443/mcp");
        assert!(parse_url("ftp://example.com/mcp").is_err());
        assert!(parse_url("not a url").is_err());
    }
}
