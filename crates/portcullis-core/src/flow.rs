//! Toxic flows: what an MCP session has read decides what it may call next.
//!
//! Tools carry labels: a tool whose results come from outside (`untrusted_source`:
//! web pages, issues, mail), one that returns private data (`private_data`), one
//! that sends data out (`external_sink`) and one that destroys (`destructive`).
//! A flow rule refuses (or only reports) a call of a labelled kind once the session
//! has received a result of another kind: after a web page was read, an injected
//! instruction in it must not be able to send mail or delete files.
//!
//! Labels come from the tool's MCP annotations when they say so explicitly, unless
//! the proxy's `mcp_tool_labels` names the tool; rules are the proxy's
//! `mcp_flow_rules`, or [`default_rules`] when it has none.

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ToolLabel {
    /// Its results carry content from outside (web, mail, tickets): it may hold
    /// injected instructions.
    UntrustedSource,
    /// Its results carry private data (files, databases, mailboxes).
    PrivateData,
    /// It sends data outside (mail, HTTP posts, messages, public comments).
    ExternalSink,
    /// It deletes or overwrites.
    Destructive,
}

impl ToolLabel {
    pub const ALL: [ToolLabel; 4] = [
        ToolLabel::UntrustedSource,
        ToolLabel::PrivateData,
        ToolLabel::ExternalSink,
        ToolLabel::Destructive,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ToolLabel::UntrustedSource => "untrusted_source",
            ToolLabel::PrivateData => "private_data",
            ToolLabel::ExternalSink => "external_sink",
            ToolLabel::Destructive => "destructive",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// A set of labels, one bit each.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Labels(u8);

impl Labels {
    pub const NONE: Labels = Labels(0);

    pub fn of(labels: &[ToolLabel]) -> Labels {
        Labels(labels.iter().fold(0, |bits, l| bits | l.bit()))
    }

    pub fn has(self, label: ToolLabel) -> bool {
        self.0 & label.bit() != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn with(self, other: Labels) -> Labels {
        Labels(self.0 | other.0)
    }

    /// Whether every label of `other` is in `self`.
    pub fn contains(self, other: Labels) -> bool {
        self.0 & other.0 == other.0
    }

    pub fn iter(self) -> impl Iterator<Item = ToolLabel> {
        ToolLabel::ALL.into_iter().filter(move |l| self.has(*l))
    }

    /// The labels a result leaves behind in its session (what it read, not what
    /// it did).
    pub fn sources(self) -> Labels {
        Labels(self.0 & (ToolLabel::UntrustedSource.bit() | ToolLabel::PrivateData.bit()))
    }
}

/// The labels a tool's own annotations give it. Only explicit hints count (the
/// MCP defaults would make nearly every tool destructive and open-world):
/// `openWorldHint` with `readOnlyHint` reads the outside world; `openWorldHint`
/// without `readOnlyHint` writes to it; `destructiveHint` without `readOnlyHint`
/// destroys.
pub fn labels_from_annotations(definition: &Value) -> Labels {
    let Some(a) = definition.get("annotations") else {
        return Labels::NONE;
    };
    let hint = |name: &str| a.get(name).and_then(Value::as_bool);
    let read_only = hint("readOnlyHint") == Some(true);
    let open_world = hint("openWorldHint") == Some(true);
    let mut labels = Vec::new();
    if open_world && read_only {
        labels.push(ToolLabel::UntrustedSource);
    }
    if open_world && !read_only {
        labels.push(ToolLabel::ExternalSink);
    }
    if hint("destructiveHint") == Some(true) && !read_only {
        labels.push(ToolLabel::Destructive);
    }
    Labels::of(&labels)
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FlowAction {
    /// Refuse the call (JSON-RPC error, blocked event, alert).
    #[default]
    Block,
    /// Let it through and raise an alert.
    Alert,
}

/// "Once the session has received a result of a tool labelled with every one of
/// `after`, a call of a tool labelled `call` is refused (or reported)."
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FlowRule {
    pub after: Vec<ToolLabel>,
    pub call: ToolLabel,
    #[serde(default)]
    pub action: FlowAction,
}

/// Most rules a proxy may have.
pub const MAX_FLOW_RULES: usize = 32;

/// The rules of a proxy that sets none.
pub fn default_rules() -> Vec<FlowRule> {
    let rule = |after: &[ToolLabel], call, action| FlowRule {
        after: after.to_vec(),
        call,
        action,
    };
    vec![
        // An instruction planted in a page or a ticket must not send data out...
        rule(
            &[ToolLabel::UntrustedSource],
            ToolLabel::ExternalSink,
            FlowAction::Block,
        ),
        // ...nor destroy anything.
        rule(
            &[ToolLabel::UntrustedSource],
            ToolLabel::Destructive,
            FlowAction::Block,
        ),
        // Private data on its way out is worth a look.
        rule(
            &[ToolLabel::PrivateData],
            ToolLabel::ExternalSink,
            FlowAction::Alert,
        ),
    ]
}

/// Problems of a proxy's `mcp_flow_rules`.
pub fn rule_problems(rules: &[FlowRule], out: &mut Vec<String>) {
    if rules.len() > MAX_FLOW_RULES {
        out.push(format!("mcp_flow_rules: at most {MAX_FLOW_RULES} rules"));
    }
    for (i, r) in rules.iter().enumerate() {
        if r.after.is_empty() {
            out.push(format!(
                "mcp_flow_rules[{i}].after: name at least one label"
            ));
        }
    }
}

/// A rule ready to match: label sets as bits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompiledRule {
    pub after: Labels,
    pub call: ToolLabel,
    pub action: FlowAction,
}

impl CompiledRule {
    pub fn compile(rules: &[FlowRule]) -> Vec<CompiledRule> {
        rules
            .iter()
            .map(|r| CompiledRule {
                after: Labels::of(&r.after),
                call: r.call,
                action: r.action,
            })
            .collect()
    }

    /// The rule's wording in refusals and alerts.
    pub fn describe(&self) -> String {
        let after: Vec<&str> = self.after.iter().map(ToolLabel::as_str).collect();
        format!("{} after {}", self.call.as_str(), after.join(" + "))
    }
}

/// The first blocking rule that a call of a tool with `labels` breaks in a session
/// that has seen `seen`, else the first alerting one.
pub fn judge(rules: &[CompiledRule], seen: Labels, labels: Labels) -> Option<&CompiledRule> {
    let broken =
        |r: &&CompiledRule| !r.after.is_empty() && labels.has(r.call) && seen.contains(r.after);
    rules
        .iter()
        .filter(broken)
        .find(|r| r.action == FlowAction::Block)
        .or_else(|| rules.iter().find(broken))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use ToolLabel::*;

    #[test]
    fn only_explicit_annotations_label_a_tool() {
        let of = |a: Value| labels_from_annotations(&json!({"name": "t", "annotations": a}));
        assert_eq!(labels_from_annotations(&json!({"name": "t"})), Labels::NONE);
        assert_eq!(of(json!({})), Labels::NONE);
        assert_eq!(
            of(json!({"readOnlyHint": true, "openWorldHint": true})),
            Labels::of(&[UntrustedSource])
        );
        assert_eq!(
            of(json!({"openWorldHint": true})),
            Labels::of(&[ExternalSink])
        );
        assert_eq!(
            of(json!({"destructiveHint": true, "openWorldHint": false})),
            Labels::of(&[Destructive])
        );
        // A read-only tool destroys nothing, whatever else it says.
        assert_eq!(
            of(json!({"readOnlyHint": true, "destructiveHint": true})),
            Labels::NONE
        );
    }

    #[test]
    fn the_default_rules_block_untrusted_to_sink_and_report_private_to_sink() {
        let rules = CompiledRule::compile(&default_rules());
        let sink = Labels::of(&[ExternalSink]);
        assert_eq!(judge(&rules, Labels::NONE, sink), None);
        let hit = judge(&rules, Labels::of(&[UntrustedSource]), sink);
        assert_eq!(hit.map(|r| r.action), Some(FlowAction::Block));
        assert_eq!(
            hit.map(CompiledRule::describe).as_deref(),
            Some("external_sink after untrusted_source")
        );
        let hit = judge(&rules, Labels::of(&[PrivateData]), sink);
        assert_eq!(hit.map(|r| r.action), Some(FlowAction::Alert));
        // Both seen: the blocking rule wins.
        let hit = judge(&rules, Labels::of(&[PrivateData, UntrustedSource]), sink);
        assert_eq!(hit.map(|r| r.action), Some(FlowAction::Block));
        // A source after a source is fine.
        let source = Labels::of(&[UntrustedSource]);
        assert_eq!(judge(&rules, source, source), None);
    }

    #[test]
    fn a_rule_needs_every_label_it_names() {
        let rules = CompiledRule::compile(&[FlowRule {
            after: vec![UntrustedSource, PrivateData],
            call: ExternalSink,
            action: FlowAction::Block,
        }]);
        let sink = Labels::of(&[ExternalSink]);
        assert!(judge(&rules, Labels::of(&[UntrustedSource]), sink).is_none());
        assert!(judge(&rules, Labels::of(&[UntrustedSource, PrivateData]), sink).is_some());
    }

    #[test]
    fn results_leave_only_what_they_read() {
        let all = Labels::of(&ToolLabel::ALL);
        assert_eq!(all.sources(), Labels::of(&[UntrustedSource, PrivateData]));
    }

    #[test]
    fn rules_are_validated() {
        let mut out = Vec::new();
        rule_problems(
            &[FlowRule {
                after: vec![],
                call: Destructive,
                action: FlowAction::Alert,
            }],
            &mut out,
        );
        assert_eq!(out, ["mcp_flow_rules[0].after: name at least one label"]);
        let parsed: Result<FlowRule, _> =
            serde_json::from_value(json!({"after": ["untrusted_source"], "call": "nope"}));
        assert!(parsed.is_err());
    }
}
