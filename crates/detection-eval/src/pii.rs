//! PII by entity type: the engine's redaction spans against labelled spans.

use crate::data::PiiRow;
use crate::metrics::Counts;
use portcullis_policy::{Engine, Location};
use std::collections::BTreeMap;

/// Dataset type ← the entity label our rules put on a finding.
pub const TYPES: &[(&str, &[&str])] = &[
    ("CREDIT_CARD", &["CREDIT_CARD"]),
    ("EMAIL_ADDRESS", &["EMAIL"]),
    ("PHONE_NUMBER", &["PHONE"]),
    ("IBAN_CODE", &["IBAN"]),
    ("US_SSN", &["US_SSN"]),
    ("IP_ADDRESS", &["IP_ADDRESS"]),
];

fn dataset_type(entity: &str) -> Option<&'static str> {
    TYPES
        .iter()
        .find(|(_, ours)| ours.contains(&entity))
        .map(|(t, _)| *t)
}

fn overlaps(a: (usize, usize), b: (usize, usize)) -> bool {
    a.0 < b.1 && b.0 < a.1
}

/// Span-level counts per pattern-detectable type. A labelled span is found when a
/// predicted span of the same type overlaps it; a predicted span that overlaps no
/// labelled span of its type is a false positive.
pub fn evaluate(rows: &[PiiRow], engine: &Engine) -> BTreeMap<&'static str, Counts> {
    let mut counts: BTreeMap<&'static str, Counts> =
        TYPES.iter().map(|(t, _)| (*t, Counts::default())).collect();
    for row in rows {
        // Dataset offsets count characters; ours are bytes.
        let byte_at = |char_index: usize| {
            row.text
                .char_indices()
                .nth(char_index)
                .map_or(row.text.len(), |(b, _)| b)
        };
        let mut predicted: Vec<(&'static str, (usize, usize))> = Vec::new();
        for finding in engine.scan(Location::Request, &row.text) {
            let Some(kind) = finding.entity.as_deref().and_then(dataset_type) else {
                continue;
            };
            predicted.extend(finding.spans.iter().map(|s| (kind, *s)));
        }
        for (kind, _) in TYPES {
            let gold: Vec<(usize, usize)> = row
                .spans
                .iter()
                .filter(|s| s.kind == *kind)
                .map(|s| (byte_at(s.start), byte_at(s.end)))
                .collect();
            let ours: Vec<(usize, usize)> = predicted
                .iter()
                .filter(|(k, _)| k == kind)
                .map(|(_, s)| *s)
                .collect();
            let c = counts.entry(kind).or_default();
            for g in &gold {
                c.add(true, ours.iter().any(|o| overlaps(*o, *g)));
            }
            for o in &ours {
                if !gold.iter().any(|g| overlaps(*o, *g)) {
                    c.add(false, true);
                }
            }
        }
    }
    counts
}

/// The misses and false alarms of one dataset type, one line each, for working on
/// its rules (`detection-eval pii-errors PHONE_NUMBER`).
pub fn errors(rows: &[PiiRow], engine: &Engine, kind: &str) -> Vec<String> {
    let mut out = Vec::new();
    for row in rows {
        let byte_at = |char_index: usize| {
            row.text
                .char_indices()
                .nth(char_index)
                .map_or(row.text.len(), |(b, _)| b)
        };
        let ours: Vec<(usize, usize)> = engine
            .scan(Location::Request, &row.text)
            .iter()
            .filter(|f| f.entity.as_deref().and_then(dataset_type) == Some(kind))
            .flat_map(|f| f.spans.clone())
            .collect();
        let gold: Vec<(usize, usize)> = row
            .spans
            .iter()
            .filter(|s| s.kind == kind)
            .map(|s| (byte_at(s.start), byte_at(s.end)))
            .collect();
        let text = |s: (usize, usize)| row.text.get(s.0..s.1).unwrap_or("?").to_owned();
        for g in &gold {
            if !ours.iter().any(|o| overlaps(*o, *g)) {
                out.push(format!("MISS {:?}    in {:?}", text(*g), row.text));
            }
        }
        for o in &ours {
            if !gold.iter().any(|g| overlaps(*o, *g)) {
                out.push(format!("FALSE {:?}    in {:?}", text(*o), row.text));
            }
        }
    }
    out
}

/// Labelled types no pattern can fairly find, with their span counts.
pub fn other_types(rows: &[PiiRow]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for s in rows.iter().flat_map(|r| &r.spans) {
        if !TYPES.iter().any(|(t, _)| *t == s.kind) {
            *out.entry(s.kind.clone()).or_insert(0) += 1;
        }
    }
    out
}
