//! A proxy compiled for the request path: everything that can be worked out once
//! per start is worked out here.

use crate::metrics::{ProxyHandles, ProxyMetrics};
use crate::upstream::{self, UpstreamClient};
use http::{HeaderName, HeaderValue, Uri};
use portcullis_core::flow::{CompiledRule, Labels};
use portcullis_core::model::ProviderKind;
use portcullis_core::proxy::{AuthMode, Proxy, ProxyKind};
use portcullis_core::SecretString;
use portcullis_protocol::Endpoint;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("upstream_url {0:?} is not a usable URL")]
    BadUpstream(String),
    #[error("the credential cannot be sent as a header")]
    BadCredential,
    #[error(transparent)]
    Tls(#[from] upstream::TlsError),
    #[error("policies: {0}")]
    Policy(String),
    #[error("mcp_servers: {0}")]
    Federation(String),
}

pub struct ProxyRuntime {
    pub id: String,
    pub name: Arc<str>,
    pub provider: ProviderKind,
    pub kind: ProxyKind,
    pub auth_mode: AuthMode,
    /// MCP proxies: the server's Streamable HTTP endpoint, as configured.
    pub mcp_uri: Option<Uri>,
    /// MCP proxies: new tools are approved at once.
    pub mcp_auto_approve: bool,
    /// MCP proxies: the compiled `mcp_tool_allow` and `mcp_tool_deny`.
    pub mcp_access: portcullis_core::mcp::ToolAccess,
    /// MCP proxies: `mcp_tool_rate_limits` compiled, in name order: the pattern
    /// as written (it names the bucket), its matcher, calls per minute.
    pub mcp_tool_rates: Vec<(String, portcullis_core::mcp::ToolPattern, u32)>,
    /// MCP proxies: `mcp_tool_labels` compiled, in name order (pattern as
    /// written, matcher, labels).
    pub mcp_tool_labels: Vec<(String, portcullis_core::mcp::ToolPattern, Labels)>,
    /// MCP proxies: the session flow rules (the defaults when the spec has none).
    pub mcp_flow_rules: Vec<CompiledRule>,
    /// MCP proxies with an `upstream_command`: the supervised stdio server
    /// (attached at start by the data plane; `mcp_uri` is then `None`).
    pub stdio: Option<Arc<crate::mcp::stdio::StdioServer>>,
    /// An HTTP server found to speak only the legacy HTTP+SSE transport: its
    /// stream, held for every client (set at the first client's initialize;
    /// ends with this runtime).
    pub legacy_sse: std::sync::OnceLock<Arc<crate::mcp::stdio::StdioServer>>,
    /// MCP proxies with `mcp_servers`: the federation's members (attached at
    /// start; `mcp_uri` is then `None`).
    pub federation: Option<Arc<crate::mcp::federation::Members>>,
    /// Upstream URI per endpoint, without query (LLM proxies).
    uris: Vec<(Endpoint, Uri)>,
    base: String,
    /// The provider credential as the provider wants it; marked sensitive so it
    /// never appears in debug output.
    pub credential_header: Option<(HeaderName, HeaderValue)>,
    pub first_byte_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_body_bytes: usize,
    pub client: UpstreamClient,
    pub metrics: ProxyHandles,
    /// The proxy's policies, compiled once at start (shared by proxies with the
    /// same packs); none when it has no policy.
    pub policy: Option<Arc<portcullis_policy::Engine>>,
    /// The console's live feed, for alerts raised on the request path outside
    /// the event writer (attached at start by the data plane).
    pub live: crate::events::Live,
}

impl std::fmt::Debug for ProxyRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ProxyRuntime({}, {})", self.name, self.base)
    }
}

impl ProxyRuntime {
    /// `policies` are the proxy's packs, already resolved from its policy names
    /// (built-in or stored; see [`crate::manager::resolve_policies`]).
    pub fn build(
        proxy: &Proxy,
        credential: Option<&SecretString>,
        metrics: &ProxyMetrics,
        policies: &[portcullis_policy::Pack],
    ) -> Result<Self, BuildError> {
        let spec = &proxy.spec;
        let mut base = spec.upstream_url.trim_end_matches('/').to_owned();
        // Accept the provider's documented base URL with or without `/v1`.
        if let Some(stripped) = base.strip_suffix("/v1") {
            base = stripped.to_owned();
        }
        let uri_for = |endpoint: Endpoint| -> Result<(Endpoint, Uri), BuildError> {
            let uri: Uri = format!("{base}{}", endpoint.upstream_path())
                .parse()
                .map_err(|_| BuildError::BadUpstream(spec.upstream_url.clone()))?;
            if uri.scheme().is_none() || uri.authority().is_none() {
                return Err(BuildError::BadUpstream(spec.upstream_url.clone()));
            }
            Ok((endpoint, uri))
        };
        let uris = match spec.kind {
            ProxyKind::Llm => Endpoint::ALL
                .iter()
                .map(|e| uri_for(*e))
                .collect::<Result<Vec<_>, _>>()?,
            ProxyKind::Mcp => Vec::new(),
        };
        let credential_header = match credential {
            None => None,
            // MCP servers take OAuth-style bearer tokens.
            Some(secret) if spec.kind == ProxyKind::Mcp => Some(bearer(secret)?),
            Some(secret) => {
                let (name, value) = match spec.provider {
                    ProviderKind::Anthropic => (
                        HeaderName::from_static("x-api-key"),
                        secret.expose().to_owned(),
                    ),
                    ProviderKind::Openai | ProviderKind::OpenaiCompatible => (
                        http::header::AUTHORIZATION,
                        format!("Bearer {}", secret.expose()),
                    ),
                };
                Some((name, sensitive(&value)?))
            }
        };
        let mcp_uri = match spec.kind {
            ProxyKind::Llm => None,
            ProxyKind::Mcp if spec.upstream_command.is_some() || !spec.mcp_servers.is_empty() => {
                None
            }
            ProxyKind::Mcp => {
                let uri: Uri = spec
                    .upstream_url
                    .parse()
                    .map_err(|_| BuildError::BadUpstream(spec.upstream_url.clone()))?;
                if uri.scheme().is_none() || uri.authority().is_none() {
                    return Err(BuildError::BadUpstream(spec.upstream_url.clone()));
                }
                Some(uri)
            }
        };
        Ok(Self {
            id: proxy.id.clone(),
            name: Arc::from(spec.name.as_str()),
            provider: spec.provider,
            kind: spec.kind,
            auth_mode: spec.auth_mode,
            mcp_uri,
            stdio: None,
            legacy_sse: std::sync::OnceLock::new(),
            federation: None,
            mcp_auto_approve: spec.mcp_auto_approve,
            mcp_access: portcullis_core::mcp::ToolAccess::new(
                &spec.mcp_tool_allow,
                &spec.mcp_tool_deny,
            ),
            mcp_tool_rates: spec
                .mcp_tool_rate_limits
                .iter()
                .map(|(p, &rpm)| (p.clone(), portcullis_core::mcp::ToolPattern::new(p), rpm))
                .collect(),
            mcp_tool_labels: spec
                .mcp_tool_labels
                .iter()
                .map(|(p, labels)| {
                    let matcher = portcullis_core::mcp::ToolPattern::new(p);
                    (p.clone(), matcher, Labels::of(labels))
                })
                .collect(),
            mcp_flow_rules: CompiledRule::compile(
                spec.mcp_flow_rules
                    .as_deref()
                    .unwrap_or(&portcullis_core::flow::default_rules()),
            ),
            uris,
            base,
            credential_header,
            first_byte_timeout: Duration::from_millis(spec.first_byte_timeout_ms),
            idle_timeout: Duration::from_millis(spec.idle_timeout_ms),
            max_body_bytes: usize::try_from(spec.max_body_bytes).unwrap_or(usize::MAX),
            client: upstream::client(Duration::from_millis(spec.connect_timeout_ms))?,
            metrics: metrics.for_proxy(&spec.name),
            policy: compile_policies(policies)?,
            live: crate::events::Live::detached(),
        })
    }

    /// Where to send a request for `endpoint`, with the caller's query string.
    pub fn upstream_uri(&self, endpoint: Endpoint, query: Option<&str>) -> Option<Uri> {
        let (_, uri) = self.uris.iter().find(|(e, _)| *e == endpoint)?;
        match query {
            None | Some("") => Some(uri.clone()),
            Some(q) => format!("{}{}?{q}", self.base, endpoint.upstream_path())
                .parse()
                .ok(),
        }
    }
}

/// One engine over every pack (shared with everything using the same packs);
/// none without packs.
pub fn compile_policies(
    packs: &[portcullis_policy::Pack],
) -> Result<Option<Arc<portcullis_policy::Engine>>, BuildError> {
    if packs.is_empty() {
        return Ok(None);
    }
    crate::engines::shared(packs)
        .map(Some)
        .map_err(|e| BuildError::Policy(e.to_string()))
}

/// An OAuth-style bearer credential (MCP servers), marked sensitive.
pub(crate) fn bearer(secret: &SecretString) -> Result<(HeaderName, HeaderValue), BuildError> {
    Ok((
        http::header::AUTHORIZATION,
        sensitive(&format!("Bearer {}", secret.expose()))?,
    ))
}

fn sensitive(value: &str) -> Result<HeaderValue, BuildError> {
    let mut value = HeaderValue::from_str(value).map_err(|_| BuildError::BadCredential)?;
    value.set_sensitive(true);
    Ok(value)
}
