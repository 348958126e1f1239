//! Alerts: findings severe enough to need a person, and their review workflow.

use crate::proxy::ProxyEvent;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// How serious a finding is; ordered, so a threshold compares with `>=`.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 5] = [
        Severity::Info,
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    /// 0 (info) to 4 (critical), as stored for range filters.
    pub fn rank(self) -> i64 {
        self as i64
    }
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Severity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Severity::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| format!("{s:?} is not one of info, low, medium, high, critical"))
    }
}

/// Where an alert is in its review.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlertStatus {
    Open,
    Acknowledged,
    Resolved,
    FalsePositive,
}

impl AlertStatus {
    pub const ALL: [AlertStatus; 4] = [
        AlertStatus::Open,
        AlertStatus::Acknowledged,
        AlertStatus::Resolved,
        AlertStatus::FalsePositive,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::Open => "open",
            AlertStatus::Acknowledged => "acknowledged",
            AlertStatus::Resolved => "resolved",
            AlertStatus::FalsePositive => "false_positive",
        }
    }

    /// Resolved and false-positive alerts are closed for good.
    pub fn is_closed(self) -> bool {
        matches!(self, AlertStatus::Resolved | AlertStatus::FalsePositive)
    }

    /// The workflow: open -> acknowledged -> resolved | false_positive; open may
    /// close directly; nothing goes back to open and a closed alert stays closed.
    /// `Err` explains a refused move.
    pub fn transition(self, next: AlertStatus) -> Result<(), String> {
        if self.is_closed() {
            return Err(format!(
                "the alert is already closed ({}); a closed alert cannot be reopened or changed",
                self.as_str()
            ));
        }
        match next {
            AlertStatus::Open => Err("an alert cannot go back to open".into()),
            n if n == self => Err(format!("the alert is already {}", self.as_str())),
            _ => Ok(()),
        }
    }
}

impl std::str::FromStr for AlertStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AlertStatus::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| {
                format!("{s:?} is not one of open, acknowledged, resolved, false_positive")
            })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Alert {
    /// UUIDv7 carrying the event's time, so ids sort like `created_at`.
    pub id: String,
    /// When the exchange that raised it happened.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    pub event_id: String,
    pub proxy_id: String,
    pub proxy_name: String,
    pub rule: String,
    pub category: String,
    pub severity: Severity,
    /// The rule's action (block, redact, alert, log).
    pub action: String,
    /// Where the text was (request, response, tool_call, ...).
    pub location: String,
    pub key_id: Option<String>,
    pub group_id: Option<String>,
    pub status: AlertStatus,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub status_changed_at: Option<Timestamp>,
    /// The user or key that last changed the status.
    pub status_changed_by: Option<String>,
    pub note: Option<String>,
}

/// The alerts an event raises: one per (rule, location) finding at or above `min`.
/// Findings that do not parse (no rule, unknown severity) raise nothing.
pub fn alerts_for(event: &ProxyEvent, min: Severity) -> Vec<Alert> {
    let Some(findings) = event.findings.as_array() else {
        return Vec::new();
    };
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for finding in findings {
        let text = |key: &str| finding.get(key).and_then(|v| v.as_str()).unwrap_or("");
        let Ok(severity) = text("severity").parse::<Severity>() else {
            continue;
        };
        let (rule, location) = (text("rule"), text("location"));
        if severity < min || rule.is_empty() || !seen.insert((rule, location)) {
            continue;
        }
        out.push(Alert {
            id: crate::id::new_id_at(event.at),
            created_at: event.at,
            event_id: event.id.clone(),
            proxy_id: event.proxy_id.clone(),
            proxy_name: event.proxy_name.clone(),
            rule: rule.to_owned(),
            category: text("category").to_owned(),
            severity,
            action: text("action").to_owned(),
            location: location.to_owned(),
            key_id: event.key_id.clone(),
            group_id: event.group_id.clone(),
            status: AlertStatus::Open,
            status_changed_at: None,
            status_changed_by: None,
            note: None,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workflow_moves_forward_only() {
        use AlertStatus::*;
        assert!(Open.transition(Acknowledged).is_ok());
        assert!(Open.transition(Resolved).is_ok());
        assert!(Open.transition(FalsePositive).is_ok());
        assert!(Acknowledged.transition(Resolved).is_ok());
        assert!(Acknowledged.transition(FalsePositive).is_ok());
        assert!(Acknowledged.transition(Open).is_err());
        assert!(Acknowledged.transition(Acknowledged).is_err());
        for closed in [Resolved, FalsePositive] {
            for next in AlertStatus::ALL {
                assert!(closed.transition(next).is_err());
            }
        }
    }

    #[test]
    fn severity_orders_and_parses() {
        assert!(Severity::Critical > Severity::High);
        assert_eq!("medium".parse::<Severity>(), Ok(Severity::Medium));
        assert!("severe".parse::<Severity>().is_err());
    }
}
