//! `portcullis policy ...`: the detection engine from the command line. Needs no
//! database or configuration.

use crate::cli::PolicyCommand;
use anyhow::{anyhow, bail, Context, Result};
use portcullis_policy::{builtin, check_examples, Engine, Location, Pack};
use std::io::{BufRead, Write};

pub fn run(cmd: PolicyCommand) -> Result<()> {
    match cmd {
        PolicyCommand::List => {
            for pack in builtin::packs()? {
                println!(
                    "{:<24} {:>4} rules  {}",
                    pack.name,
                    pack.rules.len(),
                    pack.description
                );
            }
            Ok(())
        }
        PolicyCommand::Check {
            policies,
            location,
            text,
        } => {
            let engine = engine(&policies)?;
            let verdict = engine.verdict(parse_location(&location)?, &text);
            println!("{}", serde_json::to_string(&verdict)?);
            if verdict.blocked {
                std::process::exit(1);
            }
            Ok(())
        }
        PolicyCommand::Test { file } => {
            let packs = match file {
                Some(path) => {
                    let text = std::fs::read_to_string(&path)
                        .with_context(|| format!("cannot read {}", path.display()))?;
                    vec![Pack::from_json(&path.display().to_string(), &text)?]
                }
                None => builtin::packs()?,
            };
            let engine = Engine::compile(&packs)?;
            let mut failed = 0;
            for pack in &packs {
                let (failures, checked) = check_examples(pack, &engine);
                println!(
                    "{}: {} rules, {} examples, {} failed",
                    pack.name,
                    pack.rules.len(),
                    checked,
                    failures.len()
                );
                for f in &failures {
                    println!("  FAIL {f}");
                }
                failed += failures.len();
            }
            if failed > 0 {
                bail!("{failed} example(s) failed");
            }
            Ok(())
        }
        PolicyCommand::Scan { policies, location } => {
            let engine = engine(&policies)?;
            let location = parse_location(&location)?;
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            for line in std::io::stdin().lock().lines() {
                let line = line?;
                if line.trim().is_empty() {
                    continue;
                }
                // A bad line gets an error line; the stream goes on.
                let reply = match serde_json::from_str::<serde_json::Value>(&line) {
                    Ok(v) => match v["text"].as_str() {
                        Some(text) => serde_json::to_string(&engine.verdict(location, text))?,
                        None => serde_json::json!({"error": "each line must be a JSON object with a \"text\" string"}).to_string(),
                    },
                    Err(e) => serde_json::json!({"error": format!("not JSON: {e}")}).to_string(),
                };
                writeln!(out, "{reply}")?;
            }
            out.flush()?;
            Ok(())
        }
    }
}

fn engine(names: &[String]) -> Result<Engine> {
    let packs = if names.is_empty() {
        builtin::packs()?
    } else {
        builtin::select(names).map_err(|e| anyhow!(e))?
    };
    Ok(Engine::compile(&packs)?)
}

fn parse_location(text: &str) -> Result<Location> {
    serde_json::from_value(serde_json::Value::String(text.to_owned()))
        .map_err(|_| anyhow!("unknown location {text:?} (request, response, tool_call, tool_result, tool_description, agent_message)"))
}
