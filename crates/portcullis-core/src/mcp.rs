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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip() {
        for s in ToolStatus::ALL {
            assert_eq!(s.as_str().parse::<ToolStatus>(), Ok(s));
        }
        assert!("nope".parse::<ToolStatus>().is_err());
    }
}
