//! What a scan means for a caller: blocked or not, a 0–100 risk score, and the
//! findings without the matched text.

use crate::engine::{Assessment, Engine, Finding};
use crate::pack::{Action, Location, Pack, Severity};
use serde::Serialize;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FindingSummary {
    pub rule: String,
    pub category: String,
    pub severity: Severity,
    pub action: Action,
    /// A classifier's score; absent for pattern rules.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<u8>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Verdict {
    pub blocked: bool,
    /// Risk 0 (nothing found) to 100: the most severe pattern finding, or the
    /// injection scorer's score when higher.
    pub score: u8,
    pub findings: Vec<FindingSummary>,
}

pub fn severity_score(severity: Severity) -> u8 {
    match severity {
        Severity::Info => 5,
        Severity::Low => 25,
        Severity::Medium => 50,
        Severity::High => 80,
        Severity::Critical => 95,
    }
}

impl From<&[Finding]> for Verdict {
    fn from(findings: &[Finding]) -> Self {
        Verdict {
            blocked: findings.iter().any(|f| f.action == Action::Block),
            score: findings
                .iter()
                .map(|f| f.score.unwrap_or_else(|| severity_score(f.severity)))
                .max()
                .unwrap_or(0),
            findings: findings
                .iter()
                .map(|f| FindingSummary {
                    rule: f.rule_id.to_string(),
                    category: f.category.to_string(),
                    severity: f.severity,
                    action: f.action,
                    score: f.score,
                })
                .collect(),
        }
    }
}

impl From<&Assessment> for Verdict {
    fn from(assessment: &Assessment) -> Self {
        let mut verdict = Verdict::from(assessment.findings.as_slice());
        verdict.score = verdict.score.max(assessment.model_score.unwrap_or(0));
        verdict
    }
}

impl Engine {
    pub fn verdict(&self, location: Location, text: &str) -> Verdict {
        Verdict::from(&self.assess(location, text))
    }
}

/// Runs a pack's examples against an engine: positives must fire their rule,
/// negatives must not. Returns one line per failure, and how many were checked.
pub fn check_examples(pack: &Pack, engine: &Engine) -> (Vec<String>, usize) {
    let mut failures = Vec::new();
    let mut checked = 0;
    for rule in &pack.rules {
        let Some(location) = rule.applies_to.first().copied() else {
            continue;
        };
        let fires = |text: &str| {
            engine
                .scan(location, text)
                .iter()
                .any(|f| *f.rule_id == *rule.id)
        };
        for text in &rule.examples.positive {
            checked += 1;
            if !fires(text) {
                failures.push(format!("{}: should fire on {text:?}", rule.id));
            }
        }
        for text in &rule.examples.negative {
            checked += 1;
            if fires(text) {
                failures.push(format!("{}: should not fire on {text:?}", rule.id));
            }
        }
    }
    (failures, checked)
}
