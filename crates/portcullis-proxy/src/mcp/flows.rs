//! What each MCP session has read, for the toxic-flow rules
//! ([`portcullis_core::flow`]): per session, the source labels of the tool results
//! it received and the first tool that brought each.
//!
//! Held in memory, per replica, bounded: past [`MAX_SESSIONS`] the oldest sessions
//! are forgotten (and start clean). A session served by several replicas is judged
//! on what each of them saw.

use portcullis_core::flow::{self, CompiledRule, Labels, ToolLabel};
use portcullis_core::mcp::ToolPattern;
use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// The rule id of toxic-flow findings and alerts.
pub const TOXIC_FLOW_RULE: &str = "mcp-toxic-flow";

/// Sessions remembered at once.
pub const MAX_SESSIONS: usize = 100_000;

/// A session's history: the labels seen, and the tool that first brought each.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    pub labels: Labels,
    by: [Option<String>; 4],
}

impl Seen {
    fn add(&mut self, labels: Labels, tool: &str) {
        for label in labels.iter() {
            let slot = &mut self.by[label as usize];
            if slot.is_none() {
                *slot = Some(tool.chars().take(128).collect());
            }
        }
        self.labels = self.labels.with(labels);
    }

    /// The tools that brought the labels of `rule.after`.
    pub fn culprits(&self, rule: &CompiledRule) -> Vec<String> {
        rule.after
            .iter()
            .filter_map(|l| self.by[l as usize].clone())
            .collect()
    }
}

/// The session key a flow is tracked under.
pub fn session_key(proxy_id: &str, session: &str) -> String {
    format!("{proxy_id}\u{0}{session}")
}

#[derive(Default)]
pub struct FlowTracker {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    sessions: HashMap<String, Seen>,
    /// Insertion order, for forgetting the oldest.
    order: VecDeque<String>,
}

impl FlowTracker {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Every write leaves the maps consistent; a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What the session has seen so far.
    pub fn seen(&self, key: &str) -> Seen {
        self.lock().sessions.get(key).cloned().unwrap_or_default()
    }

    /// Records a result of `tool` (with `labels`) in the session.
    pub fn record(&self, key: &str, tool: &str, labels: Labels) {
        let labels = labels.sources();
        if labels.is_empty() {
            return;
        }
        let mut inner = self.lock();
        if let Some(seen) = inner.sessions.get_mut(key) {
            seen.add(labels, tool);
            return;
        }
        while inner.sessions.len() >= MAX_SESSIONS {
            let Some(oldest) = inner.order.pop_front() else {
                break;
            };
            inner.sessions.remove(&oldest);
        }
        let mut seen = Seen::default();
        seen.add(labels, tool);
        inner.sessions.insert(key.to_owned(), seen);
        inner.order.push_back(key.to_owned());
    }

    /// Sessions remembered (for tests).
    pub fn len(&self) -> usize {
        self.lock().sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A tool's labels: the proxy's `mcp_tool_labels` (the exact name, else the first
/// matching glob in name order) or, failing that, its annotations.
pub fn labels_of(
    overrides: &[(String, ToolPattern, Labels)],
    name: &str,
    definition: &Value,
) -> Labels {
    overrides
        .iter()
        .find(|(p, _, _)| p == name)
        .or_else(|| overrides.iter().find(|(_, m, _)| m.matches(name)))
        .map_or_else(|| flow::labels_from_annotations(definition), |(_, _, l)| *l)
}

/// The refusal or report of a call that breaks `rule`.
pub fn describe(rule: &CompiledRule, tool: &str, culprits: &[String]) -> String {
    let after: Vec<&str> = rule.after.iter().map(ToolLabel::as_str).collect();
    format!(
        "tool {tool:?} ({}) called after this session received results of {} ({}): toxic flow",
        rule.call.as_str(),
        culprits
            .iter()
            .map(|c| format!("{c:?}"))
            .collect::<Vec<_>>()
            .join(", "),
        after.join(" + "),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_session_keeps_what_it_read_and_who_brought_it() {
        let tracker = FlowTracker::default();
        let key = session_key("p1", "s1");
        tracker.record(&key, "search", Labels::of(&[ToolLabel::UntrustedSource]));
        tracker.record(&key, "fetch", Labels::of(&[ToolLabel::UntrustedSource]));
        // What a tool does is not what it leaves behind.
        tracker.record(&key, "send_mail", Labels::of(&[ToolLabel::ExternalSink]));
        let seen = tracker.seen(&key);
        assert_eq!(seen.labels, Labels::of(&[ToolLabel::UntrustedSource]));
        let rules = CompiledRule::compile(&flow::default_rules());
        let rule = flow::judge(&rules, seen.labels, Labels::of(&[ToolLabel::ExternalSink]));
        let rule = rule.unwrap_or_else(|| panic!("no rule"));
        assert_eq!(seen.culprits(rule), ["search"]);
        assert_eq!(
            describe(rule, "send_mail", &seen.culprits(rule)),
            "tool \"send_mail\" (external_sink) called after this session received results of \"search\" (untrusted_source): toxic flow"
        );
        // Other sessions start clean.
        assert!(tracker.seen(&session_key("p1", "s2")).labels.is_empty());
        assert!(tracker.seen(&session_key("p2", "s1")).labels.is_empty());
    }

    #[test]
    fn the_oldest_sessions_are_forgotten_past_the_bound() {
        let tracker = FlowTracker::default();
        let label = Labels::of(&[ToolLabel::PrivateData]);
        for i in 0..MAX_SESSIONS + 10 {
            tracker.record(&format!("s{i}"), "read", label);
        }
        assert_eq!(tracker.len(), MAX_SESSIONS);
        assert!(tracker.seen("s0").labels.is_empty());
        assert_eq!(
            tracker.seen(&format!("s{}", MAX_SESSIONS + 9)).labels,
            label
        );
    }

    #[test]
    fn the_proxy_names_labels_before_annotations_do() {
        let overrides = vec![
            (
                "fetch_*".to_owned(),
                ToolPattern::new("fetch_*"),
                Labels::of(&[ToolLabel::UntrustedSource]),
            ),
            (
                "fetch_local".to_owned(),
                ToolPattern::new("fetch_local"),
                Labels::NONE,
            ),
        ];
        let annotated = json!({"annotations": {"openWorldHint": true}});
        assert_eq!(
            labels_of(&overrides, "fetch_web", &annotated),
            Labels::of(&[ToolLabel::UntrustedSource])
        );
        assert_eq!(
            labels_of(&overrides, "fetch_local", &annotated),
            Labels::NONE
        );
        assert_eq!(
            labels_of(&overrides, "post", &annotated),
            Labels::of(&[ToolLabel::ExternalSink])
        );
    }
}
