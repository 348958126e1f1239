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
