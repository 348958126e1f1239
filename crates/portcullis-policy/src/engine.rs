//! Packs compiled for matching. Compiled once per policy load: per location, one
//! `RegexSet` over every pattern says which rules fire in a single pass over the
//! text, so the cost of a scan grows with the text, not with the number of rules;
//! only the rules that fired run again to find their spans and checksums.

use crate::normalize::{normalize, Limits};
use crate::pack::{Action, Location, Pack, Severity};
use crate::validators::Validator;
use regex::{Regex, RegexBuilder, RegexSet, RegexSetBuilder};
use std::collections::HashMap;
use std::sync::Arc;

/// Compiled-size ceiling per pattern, so one pack cannot exhaust memory.
const PATTERN_SIZE_LIMIT: usize = 2 * 1024 * 1024;

pub(crate) fn compile_pattern(pattern: &str, case_sensitive: bool) -> Result<Regex, regex::Error> {
    RegexBuilder::new(pattern)
        .case_insensitive(!case_sensitive)
        .size_limit(PATTERN_SIZE_LIMIT)
        .build()
}

#[derive(Debug)]
struct CompiledRule {
    id: Arc<str>,
    category: Arc<str>,
    severity: Severity,
    action: Action,
    entity: Option<Arc<str>>,
    validator: Option<Validator>,
    case_sensitive: bool,
    regexes: Vec<Regex>,
}

/// The patterns of one location and one text form, with the rule each came from.
#[derive(Debug)]
struct PatternSet {
    set: RegexSet,
    rule_of: Vec<usize>,
}

#[derive(Debug, Default)]
struct LocationSets {
    exact: Option<PatternSet>,
    folded: Option<PatternSet>,
}

/// One rule that fired on one text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub rule_id: Arc<str>,
    pub category: Arc<str>,
    pub severity: Severity,
    pub action: Action,
    pub location: Location,
    pub entity: Option<Arc<str>>,
    /// Byte ranges in the scanned text, for case-sensitive rules (redaction uses
    /// them); empty when the match was in a folded or decoded view.
    pub spans: Vec<(usize, usize)>,
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Pack(#[from] crate::pack::PackError),
    #[error("rule {rule} appears in more than one pack")]
    DuplicateRule { rule: String },
    #[error("patterns of location {location:?} do not compile together: {message}")]
    Set { location: Location, message: String },
}

#[derive(Debug, Default)]
pub struct Engine {
    rules: Vec<CompiledRule>,
    sets: HashMap<Location, LocationSets>,
    limits: Limits,
}

impl Engine {
    pub fn compile(packs: &[Pack]) -> Result<Engine, EngineError> {
        let mut rules = Vec::new();
        let mut seen = std::collections::HashSet::new();
        // (location, exact?) -> (patterns, rule index per pattern)
        let mut pending: HashMap<(Location, bool), (Vec<String>, Vec<usize>)> = HashMap::new();
        for pack in packs {
            pack.validate()?;
            for rule in &pack.rules {
                if !seen.insert(rule.id.clone()) {
                    return Err(EngineError::DuplicateRule {
                        rule: rule.id.clone(),
                    });
                }
                let index = rules.len();
                let regexes = rule
                    .patterns
                    .iter()
                    .filter_map(|p| compile_pattern(p, rule.case_sensitive).ok())
                    .collect();
                for location in &rule.applies_to {
                    let entry = pending.entry((*location, rule.case_sensitive)).or_default();
                    for p in &rule.patterns {
                        entry.0.push(p.clone());
                        entry.1.push(index);
                    }
                }
                rules.push(CompiledRule {
                    id: Arc::from(rule.id.as_str()),
                    category: Arc::from(rule.category.as_str()),
                    severity: rule.severity,
                    action: rule.action,
                    entity: rule.entity.as_deref().map(Arc::from),
                    validator: rule.validator,
                    case_sensitive: rule.case_sensitive,
                    regexes,
                });
            }
        }
        let mut sets: HashMap<Location, LocationSets> = HashMap::new();
        for ((location, exact), (patterns, rule_of)) in pending {
            let set = RegexSetBuilder::new(&patterns)
                .case_insensitive(!exact)
                .size_limit(PATTERN_SIZE_LIMIT * 16)
                .build()
                .map_err(|e| EngineError::Set {
                    location,
                    message: e.to_string(),
                })?;
            let entry = sets.entry(location).or_default();
            let compiled = Some(PatternSet { set, rule_of });
            if exact {
                entry.exact = compiled;
            } else {
                entry.folded = compiled;
            }
        }
        Ok(Engine {
            rules,
            sets,
            limits: Limits::default(),
        })
    }

    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }

    /// Every rule that fires on `text` at `location`, once each, most severe first.
    pub fn scan(&self, location: Location, text: &str) -> Vec<Finding> {
        let Some(sets) = self.sets.get(&location) else {
            return Vec::new();
        };
        let mut fired: Vec<Finding> = Vec::new();
        if let Some(exact) = &sets.exact {
            for index in dedup_rules(exact.set.matches(text).iter().map(|p| exact.rule_of[p])) {
                let rule = &self.rules[index];
                let spans: Vec<(usize, usize)> = rule
                    .regexes
                    .iter()
                    .flat_map(|r| r.find_iter(text))
                    .filter(|m| rule.validator.is_none_or(|v| v.check(m.as_str())))
                    .map(|m| (m.start(), m.end()))
                    .collect();
                if !spans.is_empty() {
                    fired.push(self.finding(rule, location, spans));
                }
            }
        }
        if let Some(folded) = &sets.folded {
            let normalized = normalize(text, &self.limits);
            let mut hit = Vec::new();
            for view in &normalized.views {
                hit.extend(
                    folded
                        .set
                        .matches(&view.text)
                        .iter()
                        .map(|p| folded.rule_of[p]),
                );
            }
            for index in dedup_rules(hit.into_iter()) {
                let rule = &self.rules[index];
                // A checksum rule must also pass on some view's match.
                let valid = rule.validator.is_none_or(|v| {
                    normalized.views.iter().any(|view| {
                        rule.regexes
                            .iter()
                            .flat_map(|r| r.find_iter(&view.text))
                            .any(|m| v.check(m.as_str()))
                    })
                });
                if valid && !rule.case_sensitive {
                    fired.push(self.finding(rule, location, Vec::new()));
                }
            }
        }
        fired.sort_by(|a, b| {
            b.severity
                .cmp(&a.severity)
                .then_with(|| a.rule_id.cmp(&b.rule_id))
        });
        fired
    }

    fn finding(
        &self,
        rule: &CompiledRule,
        location: Location,
        spans: Vec<(usize, usize)>,
    ) -> Finding {
        Finding {
            rule_id: rule.id.clone(),
            category: rule.category.clone(),
            severity: rule.severity,
            action: rule.action,
            location,
            entity: rule.entity.clone(),
            spans,
        }
    }
}

fn dedup_rules(indices: impl Iterator<Item = usize>) -> Vec<usize> {
    let mut v: Vec<usize> = indices.collect();
    v.sort_unstable();
    v.dedup();
    v
}
