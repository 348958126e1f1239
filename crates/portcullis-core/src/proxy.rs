//! Proxies and the events of the exchanges they relay.

pub use crate::model::ManagedBy;
use crate::model::ProviderKind;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProxyKind {
    Llm,
    /// Model Context Protocol (Streamable HTTP at `/mcp`); see `docs/mcp.md`.
    Mcp,
}

/// How callers of a proxy authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    /// A Portcullis API key with the proxy's scope (the default).
    ApiKey,
    /// No caller authentication; for local experiments only.
    None,
}

pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 5_000;
pub const DEFAULT_FIRST_BYTE_TIMEOUT_MS: u64 = 120_000;
pub const DEFAULT_IDLE_TIMEOUT_MS: u64 = 60_000;
pub const DEFAULT_MAX_BODY_BYTES: u64 = 10 * 1024 * 1024;

/// The settable part of a proxy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProxySpec {
    /// Unique; the proxy is also served at `/p/{name}/` on the gateway port.
    pub name: String,
    #[serde(default = "default_kind")]
    pub kind: ProxyKind,
    /// The LLM provider's API format. Ignored by MCP proxies; defaults to
    /// `openai_compatible` when absent.
    #[serde(default = "default_provider")]
    pub provider: ProviderKind,
    /// Base URL of the provider, without `/v1` (`https://api.openai.com`); for an
    /// MCP proxy, the server's whole Streamable HTTP endpoint
    /// (`http://127.0.0.1:8000/mcp`). An MCP proxy with an `upstream_command`
    /// leaves it empty or sets it to `stdio:`.
    #[serde(default)]
    pub upstream_url: String,
    /// MCP proxies only: the program of a stdio MCP server the gateway starts and
    /// supervises (instead of `upstream_url`). Setting it needs the admin role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_command: Option<String>,
    /// Arguments of `upstream_command`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub upstream_args: Vec<String>,
    /// Environment of `upstream_command` (it does not inherit the gateway's,
    /// apart from `PATH`, `HOME`, `LANG` and `TMPDIR`). Values are never logged.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub upstream_env: BTreeMap<String, String>,
    /// Provider credential injected upstream; none for upstreams without auth.
    #[serde(default)]
    pub credential_id: Option<String>,
    /// Own port on the gateway's address; none to serve only under `/p/{name}/`.
    #[serde(default)]
    pub listen_port: Option<u16>,
    #[serde(default = "default_auth")]
    pub auth_mode: AuthMode,
    /// Start with the server.
    #[serde(default)]
    pub auto_start: bool,
    #[serde(default = "default_connect")]
    pub connect_timeout_ms: u64,
    /// Longest wait for the upstream's response head.
    #[serde(default = "default_first_byte")]
    pub first_byte_timeout_ms: u64,
    /// Longest silence inside a response body.
    #[serde(default = "default_idle")]
    pub idle_timeout_ms: u64,
    #[serde(default = "default_body")]
    pub max_body_bytes: u64,
    /// Policy names applied to the traffic (detection engine).
    #[serde(default)]
    pub policies: Vec<String>,
    /// MCP proxies only: tools seen for the first time are approved at once
    /// instead of waiting as `pending` (a changed definition is still quarantined).
    #[serde(default)]
    pub mcp_auto_approve: bool,
    /// MCP proxies only: a federation of several Streamable HTTP servers
    /// presented as one (instead of `upstream_url`); see `docs/mcp.md`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mcp_servers: Vec<McpServer>,
    /// Between a server's name and its tool and prompt names (`__` when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcp_separator: Option<String>,
    /// When names are prefixed by their server: `always` (default),
    /// `on_collision` or `never`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcp_prefix_mode: Option<String>,
    /// MCP proxies only: tool names (as clients see them, prefixed on a
    /// federation; `*` matches any run of characters) callers may list and call.
    /// Empty: every approved tool. See `docs/mcp.md`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mcp_tool_allow: Vec<String>,
    /// MCP proxies only: tool names (or globs) hidden from and refused to every
    /// caller; wins over `mcp_tool_allow`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mcp_tool_deny: Vec<String>,
    /// MCP proxies only: calls per minute per API key, by tool name or glob (the
    /// first pattern in name order that matches applies).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub mcp_tool_rate_limits: BTreeMap<String, u32>,
    /// MCP proxies only: the toxic-flow labels of tools, by tool name or glob (the
    /// exact name, else the first matching glob in name order); they replace the
    /// labels the tool's annotations give it. See `docs/mcp.md`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub mcp_tool_labels: BTreeMap<String, Vec<crate::flow::ToolLabel>>,
    /// MCP proxies only: the toxic-flow rules of each session; absent: the
    /// defaults (block `external_sink` and `destructive` after `untrusted_source`,
    /// alert on `external_sink` after `private_data`); empty: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcp_flow_rules: Option<Vec<crate::flow::FlowRule>>,
}

/// One server of an MCP federation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct McpServer {
    /// `[a-z][a-z0-9-]{0,31}`: the prefix of its tools and prompts.
    pub name: String,
    /// Its Streamable HTTP endpoint (`http://127.0.0.1:8000/mcp`).
    pub upstream_url: String,
    /// Credential sent to it as `Authorization: Bearer`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_id: Option<String>,
}

/// Problems of an http(s) upstream URL, each naming `field`.
fn url_problems(field: &str, url: &str, out: &mut Vec<String>) {
    if !(url.starts_with("http://") || url.starts_with("https://"))
        || url.len() < 10
        || url.contains(char::is_whitespace)
    {
        out.push(format!("{field}: must be an http:// or https:// URL"));
    }
    if url.contains('?') || url.contains('#') {
        out.push(format!("{field}: must not contain a query or fragment"));
    }
    // A password in the URL would be shown wherever the URL is (API, console,
    // logs): secrets belong in a credential, sealed.
    let authority = url
        .split_once("://")
        .map_or("", |(_, rest)| rest.split('/').next().unwrap_or(""));
    if authority.contains('@') {
        out.push(format!(
            "{field}: must not carry a user name or password; store the secret as a credential and set credential_id"
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::url_problems;

    #[test]
    fn urls_carry_no_secrets() {
        let problems = |url: &str| {
            let mut out = Vec::new();
            url_problems("upstream_url", url, &mut out);
            out
        };
        assert!(problems("https://api.example.com/v1").is_empty());
        assert!(problems("http://127.0.0.1:8080/mcp/a@b").is_empty());
        let found = problems("https://user:s3cret@api.example.com/v1");
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("credential_id") && !found[0].contains("s3cret"));
        assert_eq!(problems("https://api.example.com/v1?key=1").len(), 1);
    }
}

fn default_kind() -> ProxyKind {
    ProxyKind::Llm
}
fn default_provider() -> ProviderKind {
    ProviderKind::OpenaiCompatible
}
fn default_auth() -> AuthMode {
    AuthMode::ApiKey
}
fn default_connect() -> u64 {
    DEFAULT_CONNECT_TIMEOUT_MS
}
fn default_first_byte() -> u64 {
    DEFAULT_FIRST_BYTE_TIMEOUT_MS
}
fn default_idle() -> u64 {
    DEFAULT_IDLE_TIMEOUT_MS
}
fn default_body() -> u64 {
    DEFAULT_MAX_BODY_BYTES
}

/// Highest per-key calls per minute in `mcp_tool_rate_limits`.
pub const MAX_TOOL_CALLS_PER_MINUTE: u32 = 1_000_000;

/// `upstream_url` of an MCP proxy whose server is a stdio process.
pub const STDIO_URL: &str = "stdio:";

impl ProxySpec {
    /// The spec as stored: a command-bearing proxy's URL reads `stdio:`.
    pub fn normalized(mut self) -> Self {
        if self.upstream_command.is_some() && self.upstream_url.is_empty() {
            self.upstream_url = STDIO_URL.into();
        }
        self
    }

    /// Fields whose change runs a different program on the gateway host.
    pub fn runs_command(&self) -> bool {
        self.upstream_command.is_some()
    }

    /// Every problem with the spec, each naming its field.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 64
            && self
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !name_ok {
            out.push(
                "name: 1-64 characters of letters, digits, - and _ (it appears in URLs)".into(),
            );
        }
        let url = self.upstream_url.as_str();
        if let Some(command) = &self.upstream_command {
            if self.kind != ProxyKind::Mcp {
                out.push("upstream_command: only MCP proxies run stdio servers".into());
            }
            if command.trim().is_empty() || command.len() > 4096 || command.contains('\0') {
                out.push("upstream_command: must name a program (1-4096 characters)".into());
            }
            if !(url.is_empty() || url == STDIO_URL) {
                out.push("upstream_url: must be empty or `stdio:` with upstream_command".into());
            }
            if self.credential_id.is_some() {
                out.push(
                    "credential_id: stdio servers take no credential; use upstream_env".into(),
                );
            }
        } else {
            if !self.upstream_args.is_empty() {
                out.push("upstream_args: only with upstream_command".into());
            }
            if !self.upstream_env.is_empty() {
                out.push("upstream_env: only with upstream_command".into());
            }
            if self.mcp_servers.is_empty() {
                url_problems("upstream_url", url, &mut out);
            }
        }
        if !self.mcp_servers.is_empty() {
            if self.kind != ProxyKind::Mcp {
                out.push("mcp_servers: only MCP proxies federate servers".into());
            }
            if self.upstream_command.is_some() {
                out.push("mcp_servers: not with upstream_command (federation members speak Streamable HTTP)".into());
            }
            if !url.is_empty() {
                out.push("upstream_url: must be empty with mcp_servers".into());
            }
            if self.credential_id.is_some() {
                out.push("credential_id: give each of mcp_servers its own credential_id".into());
            }
            for (i, server) in self.mcp_servers.iter().enumerate() {
                url_problems(
                    &format!("mcp_servers[{i}].upstream_url"),
                    &server.upstream_url,
                    &mut out,
                );
            }
        } else if self.mcp_separator.is_some() || self.mcp_prefix_mode.is_some() {
            out.push("mcp_separator, mcp_prefix_mode: only with mcp_servers".into());
        }
        if self.upstream_args.len() > 256
            || self
                .upstream_args
                .iter()
                .any(|a| a.len() > 4096 || a.contains('\0'))
        {
            out.push("upstream_args: at most 256 arguments of at most 4096 characters".into());
        }
        let env_name_ok = |k: &str| {
            !k.is_empty()
                && k.len() <= 256
                && !k.starts_with(|c: char| c.is_ascii_digit())
                && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        };
        if self.upstream_env.len() > 256 || !self.upstream_env.keys().all(|k| env_name_ok(k)) {
            out.push(
                "upstream_env: at most 256 names of letters, digits and _ (not starting with a digit)"
                    .into(),
            );
        }
        if self
            .upstream_env
            .values()
            .any(|v| v.len() > 65_536 || v.contains('\0'))
        {
            out.push("upstream_env: values must be under 64 KiB, without NUL".into());
        }
        if self.mcp_auto_approve && self.kind != ProxyKind::Mcp {
            out.push("mcp_auto_approve: only MCP proxies have a tool inventory".into());
        }
        crate::mcp::tool_pattern_problems("mcp_tool_allow", self.mcp_tool_allow.iter(), &mut out);
        crate::mcp::tool_pattern_problems("mcp_tool_deny", self.mcp_tool_deny.iter(), &mut out);
        crate::mcp::tool_pattern_problems(
            "mcp_tool_rate_limits",
            self.mcp_tool_rate_limits.keys(),
            &mut out,
        );
        if self
            .mcp_tool_rate_limits
            .values()
            .any(|&n| n == 0 || n > MAX_TOOL_CALLS_PER_MINUTE)
        {
            out.push(format!(
                "mcp_tool_rate_limits: calls per minute must be between 1 and {MAX_TOOL_CALLS_PER_MINUTE}"
            ));
        }
        crate::mcp::tool_pattern_problems("mcp_tool_labels", self.mcp_tool_labels.keys(), &mut out);
        if let Some(rules) = &self.mcp_flow_rules {
            crate::flow::rule_problems(rules, &mut out);
        }
        if self.kind != ProxyKind::Mcp
            && !(self.mcp_tool_allow.is_empty()
                && self.mcp_tool_deny.is_empty()
                && self.mcp_tool_rate_limits.is_empty()
                && self.mcp_tool_labels.is_empty()
                && self.mcp_flow_rules.is_none())
        {
            out.push(
                "mcp_tool_allow, mcp_tool_deny, mcp_tool_rate_limits, mcp_tool_labels, mcp_flow_rules: only MCP proxies have tools"
                    .into(),
            );
        }
        if self.listen_port == Some(0) {
            out.push("listen_port: must be 1-65535, or absent".into());
        }
        for (field, value, max) in [
            ("connect_timeout_ms", self.connect_timeout_ms, 600_000),
            (
                "first_byte_timeout_ms",
                self.first_byte_timeout_ms,
                3_600_000,
            ),
            ("idle_timeout_ms", self.idle_timeout_ms, 3_600_000),
            ("max_body_bytes", self.max_body_bytes, 256 * 1024 * 1024),
        ] {
            if value == 0 || value > max {
                out.push(format!("{field}: must be between 1 and {max}"));
            }
        }
        out
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Proxy {
    pub id: String,
    #[serde(flatten)]
    pub spec: ProxySpec,
    pub managed_by: ManagedBy,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

/// What the gateway did with an exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Relayed to the upstream.
    Allowed,
    /// Refused by the gateway (auth, limits, policy).
    Blocked,
    /// Relaying failed (upstream down, timeout, client gone).
    Error,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allowed => "allowed",
            Decision::Blocked => "blocked",
            Decision::Error => "error",
        }
    }
}

/// One proxied exchange.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ProxyEvent {
    pub id: String,
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    pub proxy_id: String,
    pub proxy_name: String,
    pub endpoint: String,
    pub key_id: Option<String>,
    pub group_id: Option<String>,
    /// The end user named by the caller (`x-portcullis-user` or the body's `user`).
    pub end_user: Option<String>,
    pub model: Option<String>,
    pub status: u16,
    pub decision: Decision,
    pub error: Option<String>,
    pub stream: bool,
    pub latency_us: u64,
    /// Time to the first streamed content.
    pub ttft_us: Option<u64>,
    /// Time spent in the gateway itself, upstream time excluded.
    pub overhead_us: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cached_tokens: u64,
    pub request_bytes: u64,
    pub response_bytes: u64,
    #[schema(value_type = Vec<Object>)]
    pub findings: serde_json::Value,
    /// USD; `None` when tokens were used but the model has no price.
    pub cost_usd: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProxyState {
    Running,
    Stopped,
    Error,
}

/// Where a proxy is now, as the data plane sees it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ProxyStatus {
    pub state: ProxyState,
    /// Why it is in `error`.
    pub reason: Option<String>,
    /// Its own address, when it has a port.
    pub listen_addr: Option<String>,
    /// The path prefix on the gateway port.
    pub gateway_path: String,
    #[schema(value_type = String, format = DateTime)]
    pub since: Timestamp,
    /// MCP federations: each server's health as last seen by the gateway.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mcp_servers: Vec<McpServerHealth>,
}

/// A federation member as the gateway last saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct McpServerHealth {
    pub name: String,
    /// `false` after its last exchange failed (connect error, timeout, 5xx).
    pub up: bool,
    /// What went wrong, when it is down.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When it was last seen up or down; none before the first exchange.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub since: Option<Timestamp>,
}
