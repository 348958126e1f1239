//! The Markdown report: every figure of `docs/detection.md`.

use crate::metrics::{fmt, Counts};
use crate::{data, injection, pii, secrets};
use anyhow::{Context, Result};
use portcullis_policy::scorer::train::TrainConfig;
use portcullis_policy::scorer::{Shape, DEFAULT_THRESHOLD};
use portcullis_policy::{builtin, Engine, Location};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

pub fn engine_of(names: &[&str]) -> Result<Engine> {
    let names: Vec<String> = names.iter().map(|s| (*s).to_owned()).collect();
    let mut packs = builtin::select(&names).map_err(anyhow::Error::msg)?;
    // The shipped scorer was trained on every row: measured here it would score
    // rows it has seen. The report pairs rules with out-of-fold scores instead.
    for pack in &mut packs {
        pack.classifiers.clear();
    }
    Engine::compile(&packs).context("compiling built-in packs")
}

/// Where the proxy would meet the text: typed prompts as requests, documents as
/// tool results.
fn location_of(shape: Shape) -> Location {
    match shape {
        Shape::Prompt => Location::Request,
        Shape::Document => Location::ToolResult,
    }
}

/// The group a source's figures are reported in (BIPIA attacks beside their
/// clean contexts).
fn group_of(source: &str) -> String {
    source
        .strip_prefix("bipia-attack-")
        .or_else(|| source.strip_prefix("bipia-clean-"))
        .map_or_else(|| source.to_owned(), |kind| format!("bipia-{kind}"))
}

pub fn render(datasets: &Path, folds: usize, sweep: bool, config: &TrainConfig) -> Result<String> {
    let mut out = String::new();
    injection_section(&mut out, datasets, folds, sweep, config)?;
    pii_section(&mut out, datasets)?;
    secrets_section(&mut out, datasets)?;
    Ok(out)
}

fn injection_section(
    out: &mut String,
    datasets: &Path,
    folds: usize,
    sweep: bool,
    config: &TrainConfig,
) -> Result<()> {
    let rows = data::scorer_rows(datasets)?;
    let attacks = injection::fold_attacks(&data::bipia_attacks(datasets)?);
    let prepared = injection::prepare(rows, &attacks);
    // Content rows have their own line and sweep column; the overall figures and
    // the targets are about the injection rows.
    let is_content = |i: usize| prepared[i].row.source == data::CONTENT_SOURCE;
    let injection_rows = (0..prepared.len()).filter(|&i| !is_content(i)).count();
    let rules = engine_of(&["llm-critical-security"])?;
    let scores = injection::cross_validate(&prepared, &attacks, folds, config);
    let length = injection::length_baseline(&prepared, folds);
    // The threshold the shipped pack blocks at.
    let threshold = builtin::select(&["llm-critical-security".to_owned()])
        .ok()
        .and_then(|packs| packs.first()?.classifiers.first().map(|c| c.threshold))
        .unwrap_or(DEFAULT_THRESHOLD);

    let by_rules: Vec<bool> = prepared
        .iter()
        .map(|p| rules.verdict(location_of(p.shape), &p.row.text).blocked)
        .collect();
    let by_scorer: Vec<bool> = scores.iter().map(|s| *s >= threshold).collect();
    let combined: Vec<bool> = by_rules
        .iter()
        .zip(&by_scorer)
        .map(|(a, b)| *a || *b)
        .collect();
    let methods: [(&str, &[bool]); 4] = [
        ("rules", &by_rules),
        ("scorer (out-of-fold)", &by_scorer),
        ("rules + scorer", &combined),
        ("length-only baseline", &length),
    ];

    let _ = writeln!(
        out,
        "## Prompt injection and jailbreak\n\n{} rows of `eval/injection-dev.jsonl`. \
         Rules: the pattern rules of the `llm-critical-security` pack (a row counts when it is blocked). \
         Scorer: {folds}-fold cross-validation, stratified by source and label; each row is \
         scored by a model trained without it and without the attack string inserted into it; \
         flagged at score ≥ {threshold}. Length-only baseline: \"attack when longer than t\", \
         t chosen on the training folds. The scorer also trains on {} ordinary sentences \
         (`eval/pii-dev.jsonl`) read as content a tool returns; they are scored out-of-fold \
         the same way and reported on their own line, outside the overall figures.\n",
        injection_rows,
        prepared.len() - injection_rows
    );

    let _ = writeln!(
        out,
        "### Flag rate per source\n\nRecall on attack rows, false-positive rate on benign rows.\n"
    );
    let _ = writeln!(
        out,
        "| source | label | rows | rules | scorer | rules + scorer | length baseline |"
    );
    let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|");
    let mut sources: BTreeMap<(String, u8), Vec<usize>> = BTreeMap::new();
    for (i, p) in prepared.iter().enumerate() {
        sources
            .entry((p.row.source.clone(), p.row.label))
            .or_default()
            .push(i);
    }
    for ((source, label), members) in &sources {
        let rate = |flags: &[bool]| {
            #[allow(clippy::cast_precision_loss)]
            let r = members.iter().filter(|&&i| flags[i]).count() as f64 / members.len() as f64;
            format!("{r:.3}")
        };
        let _ = writeln!(
            out,
            "| {source} | {} | {} | {} | {} | {} | {} |",
            if *label == 1 { "attack" } else { "benign" },
            members.len(),
            rate(&by_rules),
            rate(&by_scorer),
            rate(&combined),
            rate(&length),
        );
    }

    let _ = writeln!(
        out,
        "\n### Precision, recall and F1\n\nPer group (a BIPIA kind's attacks with its clean contexts), and overall.\n"
    );
    let _ = writeln!(
        out,
        "| group | method | precision | recall | F1 | false-positive rate |"
    );
    let _ = writeln!(out, "|---|---|---:|---:|---:|---:|");
    let mut groups: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, p) in prepared.iter().enumerate() {
        if is_content(i) {
            continue;
        }
        groups.entry(group_of(&p.row.source)).or_default().push(i);
        groups.entry("all".to_owned()).or_default().push(i);
    }
    for (group, members) in &groups {
        if !members.iter().any(|&i| prepared[i].row.is_attack()) {
            continue;
        }
        for (name, flags) in methods {
            let mut c = Counts::default();
            for &i in members {
                c.add(prepared[i].row.is_attack(), flags[i]);
            }
            let _ = writeln!(
                out,
                "| {group} | {name} | {} | {} | {} | {} |",
                fmt(c.precision()),
                fmt(c.recall()),
                fmt(c.f1()),
                fmt(c.fpr())
            );
        }
    }

    if sweep {
        let _ = writeln!(out, "\n### Threshold sweep (rules + scorer)\n");
        let _ = writeln!(
            out,
            "| threshold | recall | FPR | F1 | lowest source recall | content flagged |"
        );
        let _ = writeln!(out, "|---:|---:|---:|---:|---:|---:|");
        for t in (10..=95).step_by(5).chain([97, 98, 99]) {
            let flags: Vec<bool> = scores
                .iter()
                .zip(&by_rules)
                .map(|(s, r)| *r || *s >= t)
                .collect();
            let mut c = Counts::default();
            let mut content = Counts::default();
            for (i, (p, f)) in prepared.iter().zip(&flags).enumerate() {
                let counts = if is_content(i) { &mut content } else { &mut c };
                counts.add(p.row.is_attack(), *f);
            }
            let lowest = sources
                .iter()
                .filter(|((_, label), _)| *label == 1)
                .map(|(_, m)| {
                    #[allow(clippy::cast_precision_loss)]
                    let r = m.iter().filter(|&&i| flags[i]).count() as f64 / m.len() as f64;
                    r
                })
                .fold(1.0f64, f64::min);
            let _ = writeln!(
                out,
                "| {t} | {} | {} | {} | {lowest:.3} | {} |",
                fmt(c.recall()),
                fmt(c.fpr()),
                fmt(c.f1()),
                fmt(content.fpr())
            );
        }
    }
    out.push('\n');
    Ok(())
}

fn pii_section(out: &mut String, datasets: &Path) -> Result<()> {
    let rows = data::pii_rows(datasets)?;
    let engine = engine_of(&["llm-compliance-gdpr"])?;
    let counts = pii::evaluate(&rows, &engine);
    let _ = writeln!(
        out,
        "## PII by entity type\n\n{} sentences of `eval/pii-dev.jsonl`, scanned with the \
         `llm-compliance-gdpr` pack. A labelled span counts as found when a redaction span of \
         the same type overlaps it.\n",
        rows.len()
    );
    let _ = writeln!(
        out,
        "| type | labelled | found | false positives | precision | recall | F1 |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|");
    let mut all = Counts::default();
    for (kind, c) in &counts {
        all.tp += c.tp;
        all.fp += c.fp;
        all.fn_ += c.fn_;
        let _ = writeln!(
            out,
            "| {kind} | {} | {} | {} | {} | {} | {} |",
            c.positives(),
            c.tp,
            c.fp,
            fmt(c.precision()),
            fmt(c.recall()),
            fmt(c.f1())
        );
    }
    let _ = writeln!(
        out,
        "| all pattern-detectable | {} | {} | {} | {} | {} | {} |",
        all.positives(),
        all.tp,
        all.fp,
        fmt(all.precision()),
        fmt(all.recall()),
        fmt(all.f1())
    );
    let others = pii::other_types(&rows);
    let _ = writeln!(
        out,
        "\nNot measured, because no pattern can fairly find them (they need a language model): {}.\n",
        others
            .iter()
            .map(|(k, n)| format!("{k} ({n})"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}

fn secrets_section(out: &mut String, datasets: &Path) -> Result<()> {
    const PER_FORMAT: usize = 50;
    let engine = engine_of(&["secrets"])?;
    let results = secrets::evaluate(&engine, PER_FORMAT);
    let _ = writeln!(
        out,
        "## Secrets\n\n{PER_FORMAT} synthetic keys per provider format, generated at random from \
         the published format and embedded in ordinary sentences, scanned with the `secrets` pack.\n"
    );
    let _ = writeln!(out, "| format | generated | detected |");
    let _ = writeln!(out, "|---|---:|---:|");
    let (mut total, mut found) = (0, 0);
    for (name, generated, detected) in &results {
        total += generated;
        found += detected;
        let _ = writeln!(out, "| {name} | {generated} | {detected} |");
    }
    let _ = writeln!(out, "| **all** | {total} | {found} |");
    // False positives: every text in the sets that holds no secret.
    let clean: Vec<String> = data::injection_rows(datasets)?
        .into_iter()
        .map(|r| r.text)
        .chain(data::pii_rows(datasets)?.into_iter().map(|r| r.text))
        .collect();
    let flagged = clean
        .iter()
        .filter(|t| {
            engine
                .scan(Location::Request, t)
                .iter()
                .any(|f| &*f.category == "secrets")
        })
        .count();
    let _ = writeln!(
        out,
        "\nFalse positives: {flagged} of {} texts without secrets (every row of both eval files) \
         raised a `secrets` finding.\n",
        clean.len()
    );
    Ok(())
}
