//! `detection-eval`: trains the injection scorer shipped in the binary and writes
//! the detection-quality report of `docs/detection.md`.
//!
//! `make detection-model` runs `train`; `make detection-report` runs `report`.

mod data;
mod injection;
mod metrics;
mod pii;
mod report;
mod secrets;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use portcullis_policy::scorer::features::Windowing;
use portcullis_policy::scorer::train::TrainConfig;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    version,
    about = "Train the Portcullis injection scorer and measure detection quality"
)]
struct Cli {
    /// The public datasets folder (shared/datasets).
    #[arg(
        long,
        env = "PORTCULLIS_DATASETS",
        default_value = "../shared/datasets"
    )]
    datasets: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train on every row and write the model file.
    Train {
        #[arg(long, default_value = "crates/portcullis-policy/models/injection.bin")]
        out: PathBuf,
    },
    /// Cross-validate the scorer and score the built-in packs; prints Markdown.
    Report {
        /// Number of folds for the scorer's cross-validation.
        #[arg(long, default_value_t = 5)]
        folds: usize,
        /// Also print recall and false-positive rate at other thresholds.
        #[arg(long)]
        sweep: bool,
        /// Write the whole document (intro and figures) here instead of printing
        /// the figures.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Print the misses and false alarms of one PII type (e.g. PHONE_NUMBER).
    PiiErrors { kind: String },
    /// Print the scorer's out-of-fold misses and false alarms of one source
    /// (e.g. bipia-attack-email), with their scores, most confident first.
    InjectionErrors {
        source: String,
        #[arg(long, default_value_t = 5)]
        folds: usize,
        /// Score at which a row counts as flagged.
        #[arg(long, default_value_t = portcullis_policy::scorer::DEFAULT_THRESHOLD)]
        threshold: u8,
    },
    /// Scan every dataset text with all built-in packs and print the throughput.
    Speed {
        /// Passes over the texts.
        #[arg(long, default_value_t = 5)]
        rounds: usize,
        /// Only these built-in packs (default: all).
        #[arg(long = "pack")]
        packs: Vec<String>,
        /// Also list the slowest patterns (each timed alone).
        #[arg(long)]
        per_pattern: bool,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let config = train_config_from_env();
    match cli.command {
        Command::Train { out } => {
            let rows = data::scorer_rows(&cli.datasets)?;
            let attacks = injection::fold_attacks(&data::bipia_attacks(&cli.datasets)?);
            let prepared = injection::prepare(rows, &attacks);
            let model = injection::train_full(&prepared, &attacks, &config);
            let bytes = model.to_bytes();
            std::fs::write(&out, &bytes).with_context(|| format!("writing {}", out.display()))?;
            eprintln!(
                "wrote {} ({} bytes) from {} rows and {} attack strings",
                out.display(),
                bytes.len(),
                prepared.len(),
                attacks.len()
            );
        }
        Command::Speed {
            rounds,
            packs,
            per_pattern,
        } => speed(&cli.datasets, rounds, &packs, per_pattern)?,
        Command::PiiErrors { kind } => {
            let rows = data::pii_rows(&cli.datasets)?;
            let engine = report::engine_of(&["llm-compliance-gdpr"])?;
            for line in pii::errors(&rows, &engine, &kind) {
                println!("{line}");
            }
        }
        Command::InjectionErrors {
            source,
            folds,
            threshold,
        } => {
            let rows = data::scorer_rows(&cli.datasets)?;
            let attacks = injection::fold_attacks(&data::bipia_attacks(&cli.datasets)?);
            let prepared = injection::prepare(rows, &attacks);
            let scores = injection::cross_validate(&prepared, &attacks, folds.max(2), &config);
            for line in injection::errors(&prepared, &scores, &source, threshold) {
                println!("{line}");
            }
        }
        Command::Report { folds, sweep, out } => {
            let text = report::render(&cli.datasets, folds.max(2), sweep, &config)?;
            match out {
                Some(path) => {
                    let doc = format!("{}{text}", include_str!("intro.md"));
                    std::fs::write(&path, doc)
                        .with_context(|| format!("writing {}", path.display()))?;
                    eprintln!("wrote {}", path.display());
                }
                None => print!("{text}"),
            }
        }
    }
    Ok(())
}

/// Throughput of the full built-in engine (rules and scorer) on the dataset
/// texts, and of the scorer alone; a quick figure, the criterion benches are the
/// reference.
fn speed(
    datasets: &std::path::Path,
    rounds: usize,
    names: &[String],
    per_pattern: bool,
) -> Result<()> {
    use portcullis_policy::scorer::{Model, Shape};
    use portcullis_policy::{builtin, Engine, Location};
    let texts: Vec<String> = data::injection_rows(datasets)?
        .into_iter()
        .map(|r| r.text)
        .collect();
    let bytes: usize = texts.iter().map(String::len).sum::<usize>() * rounds;
    let packs = if names.is_empty() {
        builtin::packs()?
    } else {
        builtin::select(names).map_err(anyhow::Error::msg)?
    };
    let engine = Engine::compile(&packs)?;
    if per_pattern {
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        for (rule, pattern, secs) in portcullis_policy::engine::pattern_costs(&packs, &refs)
            .iter()
            .take(25)
        {
            println!(
                "{:>8.1} ms  {rule:<14} {}",
                secs * 1e3,
                pattern.chars().take(100).collect::<String>()
            );
        }
    }
    let time = |f: &dyn Fn(&str)| {
        let start = std::time::Instant::now();
        for _ in 0..rounds {
            texts.iter().for_each(|t| f(t));
        }
        #[allow(clippy::cast_precision_loss)]
        let mbs = bytes as f64 / start.elapsed().as_secs_f64() / 1e6;
        mbs
    };
    let all = time(&|t| {
        std::hint::black_box(engine.assess(Location::Request, t));
    });
    let model = Model::builtin();
    let scorer = time(&|t| {
        std::hint::black_box(model.score(t, Shape::Prompt));
    });
    let limits = portcullis_policy::normalize::Limits::default();
    let normalise = time(&|t| {
        std::hint::black_box(portcullis_policy::normalize::normalize(t, &limits));
    });
    println!(
        "{} texts, {} rules: engine {all:.1} MB/s, scorer alone {scorer:.1} MB/s, normaliser alone {normalise:.1} MB/s",
        texts.len(),
        engine.rule_count()
    );
    Ok(())
}

/// The default training settings; `PCX_TRAIN_*` variables override them for
/// experiments (the committed model uses the defaults).
fn train_config_from_env() -> TrainConfig {
    let mut c = TrainConfig::default();
    let var = |name: &str| std::env::var(format!("PCX_TRAIN_{name}")).ok();
    if let Some(v) = var("WINDOW").and_then(|v| v.parse().ok()) {
        c.windowings[0].size = v;
    }
    if let Some(v) = var("STRIDE").and_then(|v| v.parse().ok()) {
        c.windowings[0].stride = v;
    }
    // A second, short scale: `PCX_TRAIN_SHORT=12,4` (size, stride); `0` for none.
    if let Some(v) = var("SHORT") {
        c.windowings.truncate(1);
        let mut parts = v.split(',').filter_map(|p| p.trim().parse::<usize>().ok());
        if let (Some(size), Some(stride)) = (parts.next(), parts.next()) {
            if size > 0 {
                c.windowings.push(Windowing { size, stride });
            }
        }
    }
    if let Some(v) = var("EPOCHS").and_then(|v| v.parse().ok()) {
        c.epochs = v;
    }
    if let Some(v) = var("LR").and_then(|v| v.parse().ok()) {
        c.learning_rate = v;
    }
    if let Some(v) = var("L2").and_then(|v| v.parse().ok()) {
        c.l2 = v;
    }
    if let Some(v) = var("BITS").and_then(|v| v.parse().ok()) {
        c.bits = v;
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed weights are exactly what `make detection-model` trains.
    #[test]
    fn the_committed_model_is_reproducible() {
        let Some(datasets) = ["../../../shared/datasets", "/work/shared/datasets"]
            .iter()
            .map(PathBuf::from)
            .chain(std::env::var_os("PORTCULLIS_DATASETS").map(PathBuf::from))
            .find(|p| p.join("eval/injection-dev.jsonl").exists())
        else {
            eprintln!("SKIPPED: shared/datasets not found; set PORTCULLIS_DATASETS");
            return;
        };
        let rows = data::scorer_rows(&datasets).unwrap_or_default();
        let attacks = injection::fold_attacks(&data::bipia_attacks(&datasets).unwrap_or_default());
        let prepared = injection::prepare(rows, &attacks);
        let model = injection::train_full(&prepared, &attacks, &TrainConfig::default());
        let committed = include_bytes!("../../portcullis-policy/models/injection.bin");
        assert!(
            model.to_bytes() == committed.as_slice(),
            "models/injection.bin differs from a fresh training: run `make detection-model`"
        );
    }
}
