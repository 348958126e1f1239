//! Reading the public datasets in `shared/datasets/` (see its README.md).

use anyhow::{Context, Result};
use serde::Deserialize;
use std::path::Path;

#[derive(Debug, Clone, Deserialize)]
pub struct InjectionRow {
    pub text: String,
    pub label: u8,
    pub source: String,
}

impl InjectionRow {
    pub fn is_attack(&self) -> bool {
        self.label == 1
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct PiiSpan {
    #[serde(rename = "type")]
    pub kind: String,
    pub start: usize,
    pub end: usize,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PiiRow {
    pub text: String,
    pub spans: Vec<PiiSpan>,
}

fn jsonl<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Vec<T>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l).with_context(|| format!("{}:{}", path.display(), i + 1))
        })
        .collect()
}

pub fn injection_rows(datasets: &Path) -> Result<Vec<InjectionRow>> {
    jsonl(&datasets.join("eval/injection-dev.jsonl"))
}

pub fn pii_rows(datasets: &Path) -> Result<Vec<PiiRow>> {
    jsonl(&datasets.join("eval/pii-dev.jsonl"))
}

/// The source name of ordinary sentences scored as content (see [`content_rows`]).
pub const CONTENT_SOURCE: &str = "presidio-sentences";

/// Ordinary sentences (the PII set's chat lines, bios, customer messages and
/// trivia), as benign content a tool could return. The injection rows hold
/// little content besides BIPIA's e-mails, code and tables; without these the
/// scorer took most plain prose read as a document for an attack.
pub fn content_rows(datasets: &Path) -> Result<Vec<InjectionRow>> {
    Ok(pii_rows(datasets)?
        .into_iter()
        .map(|r| InjectionRow {
            text: r.text,
            label: 0,
            source: CONTENT_SOURCE.to_owned(),
        })
        .collect())
}

/// Every row the scorer is trained and measured on: the injection rows, then the
/// content rows.
pub fn scorer_rows(datasets: &Path) -> Result<Vec<InjectionRow>> {
    let mut rows = injection_rows(datasets)?;
    rows.extend(content_rows(datasets)?);
    Ok(rows)
}

/// BIPIA's training attack instructions (text and code), the strings its builder
/// inserts into clean contexts.
pub fn bipia_attacks(datasets: &Path) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for file in [
        "bipia/text_attack_train.json",
        "bipia/code_attack_train.json",
    ] {
        let path = datasets.join(file);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let by_category: std::collections::BTreeMap<String, Vec<String>> =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        out.extend(by_category.into_values().flatten());
    }
    Ok(out)
}
