//! What the policy engine's findings on one text mean for the exchange: the rule
//! ids that block it, the spans redaction replaces (with their entity's
//! treatment), and the findings as events store them (never the matched text).

use portcullis_policy::redact::{Replacement, Treatment};
use portcullis_policy::{Action, Engine, Location};
use std::sync::Arc;

/// The verdict on one text.
#[derive(Debug, Default)]
pub(crate) struct Judgement {
    /// Rule ids whose findings block (a `block` rule, or an entity treated `block`).
    pub blocking: Vec<Arc<str>>,
    /// Spans to replace (`redact` rules; treatment from the packs' `entities`).
    pub replacements: Vec<Replacement>,
    /// The findings were remembered from an earlier sighting of the text.
    pub remembered: bool,
}

/// Scans `text` at `location`, adding each finding to `findings`.
pub(crate) fn judge(
    engine: &Engine,
    location: Location,
    text: &str,
    findings: &mut Vec<serde_json::Value>,
) -> Judgement {
    // Remembered: a chat re-sends its system prompt and history every turn.
    let scanned = engine.scan_remembered(location, text);
    let mut out = Judgement {
        remembered: scanned.remembered,
        ..Judgement::default()
    };
    for finding in scanned.findings.iter() {
        let treatment = match (finding.action, &finding.entity) {
            (Action::Redact, Some(entity)) => Some((engine.treatment(entity), entity)),
            _ => None,
        };
        let blocks = finding.action == Action::Block
            || treatment.is_some_and(|(t, _)| t == Treatment::Block);
        if blocks && !out.blocking.contains(&finding.rule_id) {
            out.blocking.push(finding.rule_id.clone());
        }
        if let Some((treatment, entity)) = treatment {
            out.replacements
                .extend(finding.spans.iter().map(|&(start, end)| Replacement {
                    start,
                    end,
                    entity: entity.clone(),
                    treatment,
                }));
        }
        findings.push(crate::relay::finding_json(finding));
    }
    out
}
