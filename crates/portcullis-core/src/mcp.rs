//! The MCP tool inventory: every tool an MCP proxy has seen, and whether callers
//! may see and call it.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// Where a tool is in its review. Only `approved` tools are listed to clients and
/// callable; everything else fails closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ToolStatus {
    /// Seen, not yet reviewed.
    Pending,
    Approved,
    /// Turned off by an operator.
    Disabled,
    /// Its definition changed after approval, or a policy flagged it: hidden and
    /// refused until approved again.
    Quarantined,
}

impl ToolStatus {
    pub const ALL: [ToolStatus; 4] = [
        ToolStatus::Pending,
        ToolStatus::Approved,
        ToolStatus::Disabled,
        ToolStatus::Quarantined,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ToolStatus::Pending => "pending",
            ToolStatus::Approved => "approved",
            ToolStatus::Disabled => "disabled",
            ToolStatus::Quarantined => "quarantined",
        }
    }
}

impl std::str::FromStr for ToolStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ToolStatus::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| format!("{s:?} is not one of pending, approved, disabled, quarantined"))
    }
}

/// One tool of one MCP proxy, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct McpTool {
    pub id: String,
    pub proxy_id: String,
    /// The federation member that offers it; empty for a proxy with one server.
    #[serde(default)]
    pub server: String,
    /// The tool's own name on its server (without a federation prefix).
    pub name: String,
    /// The whole definition as the server last listed it.
    #[schema(value_type = Object)]
    pub definition: serde_json::Value,
    /// SHA-256 (hex) of the definition's canonical JSON (sorted keys, no spaces).
    pub hash: String,
    pub status: ToolStatus,
    /// The hash that was approved, when the tool was ever approved.
    pub approved_hash: Option<String>,
    /// The definition that was approved (to show what changed).
    #[schema(value_type = Option<Object>)]
    pub approved_definition: Option<serde_json::Value>,
    /// Rule ids of `block` findings on the description or schema when last seen.
    pub flagged_rules: Vec<String>,
    #[schema(value_type = String, format = DateTime)]
    pub first_seen_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub last_seen_at: Timestamp,
    pub approved_by: Option<String>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub approved_at: Option<Timestamp>,
    #[schema(value_type = String, format = DateTime)]
    pub status_changed_at: Timestamp,
}

/// Where a stored scan of an MCP server is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ScanStatus {
    Running,
    Done,
    /// The server could not be scanned (unreachable, refused, timed out): see `error`.
    Failed,
}

impl ScanStatus {
    pub const ALL: [ScanStatus; 3] = [ScanStatus::Running, ScanStatus::Done, ScanStatus::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            ScanStatus::Running => "running",
            ScanStatus::Done => "done",
            ScanStatus::Failed => "failed",
        }
    }
}

impl std::str::FromStr for ScanStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ScanStatus::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| format!("{s:?} is not one of running, done, failed"))
    }
}

/// One finding of a scan. It names the check and, for rule matches, the rules;
/// never the matched text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ScanFinding {
    /// The check: `no-auth`, `poisoned-description`, `dangerous-capability`, ...
    pub check: String,
    pub severity: crate::alert::Severity,
    /// `server`, `tool:NAME`, `prompt:NAME` or `resource:URI`.
    pub target: String,
    pub message: String,
    /// The detection rules behind a rule match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<String>,
}

/// How many findings of each severity a scan has.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SeverityCounts {
    pub critical: u32,
    pub high: u32,
    pub medium: u32,
    pub low: u32,
    pub info: u32,
}

impl SeverityCounts {
    pub fn of(findings: &[ScanFinding]) -> Self {
        use crate::alert::Severity;
        let mut counts = Self::default();
        for f in findings {
            let slot = match f.severity {
                Severity::Critical => &mut counts.critical,
                Severity::High => &mut counts.high,
                Severity::Medium => &mut counts.medium,
                Severity::Low => &mut counts.low,
                Severity::Info => &mut counts.info,
            };
            *slot += 1;
        }
        counts
    }
}

/// What the scanned server said it is and how much it lists.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct ScanServerInfo {
    pub name: Option<String>,
    pub version: Option<String>,
    pub protocol_version: Option<String>,
    pub tools: u32,
    pub resources: u32,
    pub resources_read: u32,
    pub prompts: u32,
    /// Lists or reads that failed, pages left unread (the scan went on).
    pub warnings: Vec<String>,
}

/// One scan of one server of an MCP proxy, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct McpScan {
    /// UUIDv7: ids sort like `started_at`.
    pub id: String,
    pub proxy_id: String,
    /// The federation member scanned; empty for a proxy with one server.
    #[serde(default)]
    pub server: String,
    /// `streamable_http` or `stdio`.
    pub transport: String,
    /// What was scanned: the URL without credentials or query, or the stdio
    /// program (without its arguments or environment).
    pub target: String,
    /// The user or key that asked for it.
    pub requested_by: String,
    #[schema(value_type = String, format = DateTime)]
    pub started_at: Timestamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub finished_at: Option<Timestamp>,
    pub status: ScanStatus,
    /// Why it failed.
    pub error: Option<String>,
    /// The most severe finding's severity; none without findings.
    pub max_severity: Option<crate::alert::Severity>,
    pub counts: SeverityCounts,
    /// Most severe first.
    pub findings: Vec<ScanFinding>,
    pub server_info: ScanServerInfo,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip() {
        for s in ToolStatus::ALL {
            assert_eq!(s.as_str().parse::<ToolStatus>(), Ok(s));
        }
        assert!("nope".parse::<ToolStatus>().is_err());
        for s in ScanStatus::ALL {
            assert_eq!(s.as_str().parse::<ScanStatus>(), Ok(s));
        }
    }
}

/// A tool-name pattern of an allow list, deny list or rate limit: a literal name,
/// or a glob where `*` stands for any run of characters (`fs__*`). Compiled once
/// when the proxy is loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolPattern {
    /// The pattern split at `*`; one part means no wildcard.
    parts: Vec<String>,
}

/// Longest pattern accepted, and most patterns in one list.
pub const MAX_TOOL_PATTERN: usize = 256;
pub const MAX_TOOL_PATTERNS: usize = 256;

impl ToolPattern {
    pub fn new(pattern: &str) -> Self {
        Self {
            parts: pattern.split('*').map(str::to_owned).collect(),
        }
    }

    /// Whether a pattern is acceptable: 1-256 characters, no whitespace or
    /// control characters.
    pub fn valid(pattern: &str) -> bool {
        !pattern.is_empty()
            && pattern.len() <= MAX_TOOL_PATTERN
            && !pattern.chars().any(|c| c.is_whitespace() || c.is_control())
    }

    pub fn matches(&self, name: &str) -> bool {
        let Some((first, rest)) = self.parts.split_first() else {
            return false;
        };
        let Some((last, middle)) = rest.split_last() else {
            return name == first;
        };
        let Some(mut tail) = name.strip_prefix(first.as_str()) else {
            return false;
        };
        for part in middle {
            match tail.find(part.as_str()) {
                Some(at) => tail = &tail[at + part.len()..],
                None => return false,
            }
        }
        tail.len() >= last.len() && tail.ends_with(last.as_str())
    }
}

/// Allow and deny lists of tool names, compiled: deny wins; an empty allow list
/// allows every name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolAccess {
    allow: Vec<ToolPattern>,
    deny: Vec<ToolPattern>,
}

impl ToolAccess {
    pub fn new(allow: &[String], deny: &[String]) -> Self {
        let compile = |list: &[String]| list.iter().map(|p| ToolPattern::new(p)).collect();
        Self {
            allow: compile(allow),
            deny: compile(deny),
        }
    }

    pub fn is_open(&self) -> bool {
        self.allow.is_empty() && self.deny.is_empty()
    }

    pub fn allows(&self, name: &str) -> bool {
        !self.deny.iter().any(|p| p.matches(name))
            && (self.allow.is_empty() || self.allow.iter().any(|p| p.matches(name)))
    }
}

/// Problems of a list of tool-name patterns, each naming `field`.
pub fn tool_pattern_problems<'a>(
    field: &str,
    patterns: impl ExactSizeIterator<Item = &'a String>,
    out: &mut Vec<String>,
) {
    if patterns.len() > MAX_TOOL_PATTERNS {
        out.push(format!("{field}: at most {MAX_TOOL_PATTERNS} patterns"));
    }
    for (i, p) in patterns.enumerate() {
        if !ToolPattern::valid(p) {
            out.push(format!(
                "{field}[{i}]: a tool name or glob (`*` matches anything) of 1-{MAX_TOOL_PATTERN} characters without spaces"
            ));
        }
    }
}

#[cfg(test)]
mod pattern_tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn globs_match_literally_except_for_stars() {
        let m = |p: &str, n: &str| ToolPattern::new(p).matches(n);
        assert!(m("echo", "echo"));
        assert!(!m("echo", "echo2"));
        assert!(!m("echo", "ech"));
        assert!(m("fs__*", "fs__read"));
        assert!(m("fs__*", "fs__"));
        assert!(!m("fs__*", "git__fs__read"));
        assert!(m("*_file", "read_file"));
        assert!(!m("*_file", "read_files"));
        assert!(m("*", "anything"));
        assert!(m("a*b*c", "abc"));
        assert!(m("a*b*c", "aXbYc"));
        assert!(!m("a*b*c", "aXc"));
        assert!(!m("ab*ba", "aba"));
        assert!(m("a.b?", "a.b?"));
        assert!(!m("a.b?", "aXbc"));
    }

    #[test]
    fn deny_wins_and_an_empty_allow_list_allows_all() {
        let open = ToolAccess::new(&[], &[]);
        assert!(open.is_open() && open.allows("x"));
        let access = ToolAccess::new(&strings(&["fs__*", "echo"]), &strings(&["fs__write"]));
        assert!(access.allows("fs__read"));
        assert!(access.allows("echo"));
        assert!(!access.allows("fs__write"));
        assert!(!access.allows("add"));
        let deny_only = ToolAccess::new(&[], &strings(&["danger*"]));
        assert!(deny_only.allows("add"));
        assert!(!deny_only.allows("danger_zone"));
    }

    #[test]
    fn patterns_are_validated() {
        let mut out = Vec::new();
        tool_pattern_problems(
            "mcp_tool_allow",
            strings(&["ok", "", "a b"]).iter(),
            &mut out,
        );
        assert_eq!(out.len(), 2);
        assert!(out[0].starts_with("mcp_tool_allow[1]:"));
        assert!(out[1].starts_with("mcp_tool_allow[2]:"));
    }
}
