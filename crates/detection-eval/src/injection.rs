//! Prompt-injection detection: training data for the scorer, k-fold
//! cross-validation, and the figures per source.

use crate::data::{InjectionRow, CONTENT_SOURCE};
use crate::metrics::Counts;
use portcullis_policy::normalize::{fold_for_matching, normalize, Limits, View};
use portcullis_policy::scorer::features::Shape;
use portcullis_policy::scorer::train::{train, window_examples, Example, TrainConfig};
use portcullis_policy::scorer::Model;
use std::collections::{BTreeMap, HashSet};

/// A row made ready once: normalised views, shape, and where an inserted BIPIA
/// attack sits in the folded text.
pub struct Prepared {
    pub row: InjectionRow,
    pub views: Vec<View>,
    pub shape: Shape,
    /// Index into the attack list and byte range in `views[0]`.
    pub attack: Option<(usize, usize, usize)>,
}

pub fn prepare(rows: Vec<InjectionRow>, attacks_folded: &[String]) -> Vec<Prepared> {
    let limits = Limits::default();
    rows.into_iter()
        .map(|row| {
            let views = normalize(&row.text, &limits).views;
            // Content rows are what a tool returns: read as documents wherever
            // they come from.
            let shape = if row.source == CONTENT_SOURCE {
                Shape::Document
            } else {
                Shape::of(&row.text)
            };
            let folded = views.first().map_or("", |v| v.text.as_str());
            let attack = if row.is_attack() {
                attacks_folded
                    .iter()
                    .enumerate()
                    .filter(|(_, a)| !a.is_empty())
                    .find_map(|(i, a)| folded.find(a.as_str()).map(|at| (i, at, at + a.len())))
            } else {
                None
            };
            Prepared {
                row,
                views,
                shape,
                attack,
            }
        })
        .collect()
}

pub fn fold_attacks(attacks: &[String]) -> Vec<String> {
    attacks.iter().map(|a| fold_for_matching(a)).collect()
}

/// Benign requests at most this long also train the document windows as
/// instructions planted in content: a few sentences, short enough to hide in an
/// e-mail or a table.
pub const PLANTED_REQUEST_MAX_BYTES: usize = 400;

/// The sources whose benign rows are requests people make of an assistant.
/// jackhhao's benign rows are persona descriptions ("You are a blacksmith in a
/// small village..."): planted, they taught the document windows that any
/// sentence describing someone is an instruction (ordinary one-line tool results
/// scored 96-98). BIPIA's rows are the content itself.
const REQUEST_SOURCES: [&str; 2] = ["notinject", "wildguard-benign"];

/// Whether a row is a request someone could plant in content: a short benign
/// prompt of a request source.
fn plantable(p: &Prepared) -> bool {
    !p.row.is_attack()
        && p.shape == Shape::Prompt
        && p.row.text.len() <= PLANTED_REQUEST_MAX_BYTES
        && REQUEST_SOURCES.contains(&p.row.source.as_str())
}

/// Training windows from some rows, plus the bare attack strings not in `held_out`.
///
/// An indirect injection is a request addressed to the model, found in content it
/// reads. The attack strings teach the document windows a few such requests; the
/// short benign prompts among the rows teach them what requests look like in
/// general (asking for a poem, a translation, a fact), so a question nobody
/// planted in training still stands out in an e-mail. Only the short windows,
/// which read document-tagged features, learn from them: the same prompts stay
/// benign where they are what the user typed.
pub fn examples(
    rows: &[&Prepared],
    attacks_folded: &[String],
    held_out: &HashSet<usize>,
    config: &TrainConfig,
) -> Vec<Example> {
    let mut out = Vec::new();
    for p in rows {
        let Some(folded) = p.views.first().map(|v| v.text.as_str()) else {
            continue;
        };
        let attack = p.row.is_attack();
        out.extend(window_examples(
            folded,
            p.shape,
            config,
            |scale, start, end| {
                match (attack, p.attack) {
                    (false, _) => Some(false),
                    // An inserted instruction: only the windows that hold most of it.
                    (true, Some((_, a_start, a_end))) => {
                        let overlap = end.min(a_end).saturating_sub(start.max(a_start));
                        Some(overlap * 2 >= (a_end - a_start).min(end - start))
                    }
                    // A jailbreak prompt is an attack as a whole; which of its short
                    // windows carry the attack is not known, so they are left out.
                    (true, None) => (scale == 0).then_some(true),
                }
            },
        ));
    }
    for p in rows.iter().filter(|p| plantable(p)) {
        if let Some(folded) = p.views.first().map(|v| v.text.as_str()) {
            out.extend(window_examples(
                folded,
                Shape::Document,
                config,
                |scale, _, _| (scale == 1).then_some(true),
            ));
        }
    }
    for (i, a) in attacks_folded.iter().enumerate() {
        if !held_out.contains(&i) {
            out.extend(window_examples(a, Shape::Document, config, |_, _, _| {
                Some(true)
            }));
        }
    }
    out
}

/// Fold of each row: stratified by (source, label), deterministic.
pub fn assign_folds(rows: &[Prepared], k: usize) -> Vec<usize> {
    let mut strata: BTreeMap<(&str, u8), Vec<usize>> = BTreeMap::new();
    for (i, p) in rows.iter().enumerate() {
        strata
            .entry((p.row.source.as_str(), p.row.label))
            .or_default()
            .push(i);
    }
    let mut fold = vec![0; rows.len()];
    for members in strata.values() {
        let mut members = members.clone();
        // Order by a hash of the text, not by file position.
        members.sort_by_key(|&i| stable_hash(&rows[i].row.text));
        for (n, i) in members.into_iter().enumerate() {
            fold[i] = n % k;
        }
    }
    fold
}

fn stable_hash(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Trains on every row (and every attack string): the shipped model.
pub fn train_full(rows: &[Prepared], attacks_folded: &[String], config: &TrainConfig) -> Model {
    let all: Vec<&Prepared> = rows.iter().collect();
    train(
        &examples(&all, attacks_folded, &HashSet::new(), config),
        config,
    )
}

/// Out-of-fold scores: each row scored by a model that never saw it, nor the
/// attack string inserted into it.
pub fn cross_validate(
    rows: &[Prepared],
    attacks_folded: &[String],
    k: usize,
    config: &TrainConfig,
) -> Vec<u8> {
    let folds = assign_folds(rows, k);
    let mut scores = vec![0u8; rows.len()];
    for fold in 0..k {
        let (test, train_rows): (Vec<usize>, Vec<usize>) =
            (0..rows.len()).partition(|&i| folds[i] == fold);
        let held_out: HashSet<usize> = test
            .iter()
            .filter_map(|&i| rows[i].attack.map(|a| a.0))
            .collect();
        let train_refs: Vec<&Prepared> = train_rows.iter().map(|&i| &rows[i]).collect();
        let model = train(
            &examples(&train_refs, attacks_folded, &held_out, config),
            config,
        );
        for i in test {
            scores[i] = model.score_views(&rows[i].views, rows[i].shape);
        }
    }
    scores
}

/// The rows of one source the scorer gets wrong at `threshold`: score, shape and
/// the start of the text (or of the planted attack), most confident first.
pub fn errors(rows: &[Prepared], scores: &[u8], source: &str, threshold: u8) -> Vec<String> {
    let mut wrong: Vec<(u8, String)> = rows
        .iter()
        .zip(scores)
        .filter(|(p, &s)| p.row.source == source && p.row.is_attack() != (s >= threshold))
        .map(|(p, &s)| {
            let text = p.views.first().map_or("", |v| v.text.as_str());
            let shown = p
                .attack
                .and_then(|(_, a, b)| text.get(a..b))
                .unwrap_or(text);
            let snippet: String = shown.chars().take(120).collect();
            (
                s,
                format!("{s:>3} {:?} {}", p.shape, snippet.replace('\n', " ")),
            )
        })
        .collect();
    // Attacks missed: lowest first; false alarms: highest first.
    wrong.sort_by_key(|(s, _)| if *s >= threshold { 255 - *s } else { *s });
    wrong.into_iter().map(|(_, line)| line).collect()
}

/// Out-of-fold predictions of the length-only baseline: "attack when longer
/// than t", t chosen on the training folds for the best F1.
pub fn length_baseline(rows: &[Prepared], k: usize) -> Vec<bool> {
    let folds = assign_folds(rows, k);
    let mut predicted = vec![false; rows.len()];
    for fold in 0..k {
        let train_rows: Vec<&Prepared> = rows
            .iter()
            .zip(&folds)
            .filter(|(_, f)| **f != fold)
            .map(|(p, _)| p)
            .collect();
        let mut candidates: Vec<usize> = train_rows.iter().map(|p| p.row.text.len()).collect();
        candidates.sort_unstable();
        candidates.dedup();
        let best = candidates
            .iter()
            .step_by((candidates.len() / 400).max(1))
            .map(|&t| {
                let mut c = Counts::default();
                for p in &train_rows {
                    c.add(p.row.is_attack(), p.row.text.len() >= t);
                }
                (t, c.f1().unwrap_or(0.0))
            })
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map_or(usize::MAX, |b| b.0);
        for (i, p) in rows.iter().enumerate() {
            if folds[i] == fold {
                predicted[i] = p.row.text.len() >= best;
            }
        }
    }
    predicted
}
