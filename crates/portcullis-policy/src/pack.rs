//! Rule packs: the JSON format policies are written in, and its validation.
//! Every error names the pack, the rule id and the field (docs/policies.md).

use crate::validators::Validator;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Block,
    Redact,
    Alert,
    Log,
}

/// Where in an exchange a rule looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Location {
    Request,
    Response,
    ToolCall,
    ToolResult,
    ToolDescription,
    AgentMessage,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Examples {
    #[serde(default)]
    pub positive: Vec<String>,
    #[serde(default)]
    pub negative: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub id: String,
    pub name: String,
    pub category: String,
    pub severity: Severity,
    pub action: Action,
    pub applies_to: Vec<Location>,
    /// OWASP LLM Top 10 (2025) entry, e.g. `LLM01:2025`.
    pub owasp: String,
    /// Regular expressions (Rust `regex` syntax); any one matching fires the rule.
    pub patterns: Vec<String>,
    /// Match the case-sensitive text (secrets, keys). Otherwise patterns match the
    /// folded, lower-cased views and are compiled case-insensitive.
    #[serde(default)]
    pub case_sensitive: bool,
    /// A checksum each match must pass.
    #[serde(default)]
    pub validator: Option<Validator>,
    /// Placeholder label when redacting (`EMAIL` gives `[EMAIL_1]`).
    #[serde(default)]
    pub entity: Option<String>,
    #[serde(default)]
    pub description: String,
    pub examples: Examples,
}

/// A statistical detector in a pack: fires when its model scores a text at or
/// above `threshold` (0–100). Its score also feeds the verdict's risk score.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Classifier {
    pub id: String,
    pub name: String,
    /// The built-in model: `prompt-injection`.
    pub model: String,
    pub category: String,
    pub severity: Severity,
    pub action: Action,
    pub threshold: u8,
    pub applies_to: Vec<Location>,
    pub owasp: String,
    #[serde(default)]
    pub description: String,
}

/// The models a classifier may name.
pub const MODELS: [&str; 1] = ["prompt-injection"];

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pack {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub classifiers: Vec<Classifier>,
    /// What `redact` rules do per entity label: `restore` (the default), `mask`,
    /// `block` or `allow`.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub entities: std::collections::BTreeMap<String, crate::redact::Treatment>,
    pub rules: Vec<Rule>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{pack}: {}", .problems.join("; "))]
pub struct PackError {
    pub pack: String,
    pub problems: Vec<String>,
}

const OWASP: [&str; 10] = [
    "LLM01:2025",
    "LLM02:2025",
    "LLM03:2025",
    "LLM04:2025",
    "LLM05:2025",
    "LLM06:2025",
    "LLM07:2025",
    "LLM08:2025",
    "LLM09:2025",
    "LLM10:2025",
];

impl Pack {
    /// Parses and validates a pack; `source` names it in errors before its name is known.
    pub fn from_json(source: &str, text: &str) -> Result<Pack, PackError> {
        let pack: Pack = serde_path_to_json(text).map_err(|problem| PackError {
            pack: source.to_owned(),
            problems: vec![problem],
        })?;
        pack.validate()?;
        Ok(pack)
    }

    /// Every problem at once, each naming rule id and field.
    pub fn validate(&self) -> Result<(), PackError> {
        let mut problems = Vec::new();
        if self.name.trim().is_empty() {
            problems.push("name: must not be empty".to_owned());
        }
        let mut ids = HashSet::new();
        for (i, rule) in self.rules.iter().enumerate() {
            let at = if rule.id.is_empty() {
                format!("rules[{i}]")
            } else {
                format!("rule {}", rule.id)
            };
            if rule.id.trim().is_empty() {
                problems.push(format!("{at}.id: must not be empty"));
            } else if !ids.insert(rule.id.as_str()) {
                problems.push(format!("{at}.id: duplicate id"));
            }
            if rule.patterns.is_empty() {
                problems.push(format!("{at}.patterns: give at least one"));
            }
            for (j, pattern) in rule.patterns.iter().enumerate() {
                if let Err(e) = crate::engine::compile_pattern(pattern, rule.case_sensitive) {
                    problems.push(format!("{at}.patterns[{j}]: {e}"));
                }
            }
            if rule.applies_to.is_empty() {
                problems.push(format!("{at}.applies_to: give at least one location"));
            }
            if !OWASP.contains(&rule.owasp.as_str()) {
                problems.push(format!(
                    "{at}.owasp: {:?} is not an OWASP LLM Top 10 (2025) id like LLM01:2025",
                    rule.owasp
                ));
            }
            if rule.examples.positive.is_empty() || rule.examples.negative.is_empty() {
                problems.push(format!(
                    "{at}.examples: give at least one positive and one negative example"
                ));
            }
            if rule.action == Action::Redact && rule.entity.is_none() {
                problems.push(format!(
                    "{at}.entity: a redacting rule needs an entity label"
                ));
            }
            if let Some(entity) = &rule.entity {
                if entity.is_empty()
                    || !entity
                        .bytes()
                        .all(|b| b.is_ascii_uppercase() || b == b'_' || b.is_ascii_digit())
                {
                    problems.push(format!("{at}.entity: upper-case letters, digits and _"));
                }
            }
        }
        for (i, c) in self.classifiers.iter().enumerate() {
            let at = if c.id.is_empty() {
                format!("classifiers[{i}]")
            } else {
                format!("classifier {}", c.id)
            };
            if c.id.trim().is_empty() {
                problems.push(format!("{at}.id: must not be empty"));
            } else if !ids.insert(c.id.as_str()) {
                problems.push(format!("{at}.id: duplicate id"));
            }
            if !MODELS.contains(&c.model.as_str()) {
                problems.push(format!(
                    "{at}.model: {:?} is not a built-in model ({})",
                    c.model,
                    MODELS.join(", ")
                ));
            }
            if !(1..=100).contains(&c.threshold) {
                problems.push(format!("{at}.threshold: between 1 and 100"));
            }
            if c.applies_to.is_empty() {
                problems.push(format!("{at}.applies_to: give at least one location"));
            }
            if c.action == Action::Redact {
                problems.push(format!(
                    "{at}.action: a classifier scores a whole text and cannot redact"
                ));
            }
            if !OWASP.contains(&c.owasp.as_str()) {
                problems.push(format!(
                    "{at}.owasp: {:?} is not an OWASP LLM Top 10 (2025) id like LLM01:2025",
                    c.owasp
                ));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(PackError {
                pack: self.name.clone(),
                problems,
            })
        }
    }
}

/// JSON with the failing field named, and the rule's id when it has one:
/// `rule PI-003.severity: unknown variant ...`.
fn serde_path_to_json(text: &str) -> Result<Pack, String> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
    serde_path_to_error::deserialize::<_, Pack>(&value).map_err(|e| {
        let path = e.path().to_string();
        let message = e.inner().to_string();
        // `rules[3].severity` -> `rule PI-003.severity`
        let named = path
            .strip_prefix("rules[")
            .and_then(|rest| rest.split_once(']'))
            .and_then(|(index, field)| {
                let id = value["rules"][index.parse::<usize>().ok()?]["id"].as_str()?;
                Some(format!("rule {id}{field}"))
            })
            .unwrap_or(path);
        format!("{named}: {message}")
    })
}
