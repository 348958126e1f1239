//! `portcullis mcp scan`: connect to an MCP server as a client and report security
//! findings. Needs no database or configuration.
//!
//! [`client`] speaks to the server (Streamable HTTP or stdio), [`scan`] enumerates
//! and runs the checks, [`checks`] holds the heuristics as pure functions.

mod checks;
mod client;
mod scan;

use crate::cli::{McpCommand, McpScanArgs};
use anyhow::{anyhow, bail, Result};
use client::{HttpTransport, Limits, Session, StdioTransport, Transport};
use portcullis_policy::Severity;
use scan::{Bounds, Engines, Finding, Inventory, Target};
use serde_json::{json, Value};
use std::process::ExitCode;
use std::time::Duration;

/// Exit code for connection and protocol errors (1 is "findings at or above --fail-on").
const EXIT_ERROR: u8 = 2;

pub async fn run(cmd: McpCommand) -> Result<ExitCode> {
    match cmd {
        McpCommand::Scan(args) => Ok(scan_command(args).await),
    }
}

async fn scan_command(args: McpScanArgs) -> ExitCode {
    match scan_and_report(&args).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

fn parse_severity(text: &str) -> Result<Severity> {
    serde_json::from_value(Value::String(text.to_ascii_lowercase())).map_err(|_| {
        anyhow!("--fail-on: unknown severity {text:?} (info, low, medium, high, critical)")
    })
}

fn severity_name(s: Severity) -> &'static str {
    match s {
        Severity::Info => "info",
        Severity::Low => "low",
        Severity::Medium => "medium",
        Severity::High => "high",
        Severity::Critical => "critical",
    }
}

async fn scan_and_report(args: &McpScanArgs) -> Result<ExitCode> {
    let fail_on = parse_severity(&args.fail_on)?;
    if args.timeout == 0 {
        bail!("--timeout must be at least 1 second");
    }
    let limits = Limits {
        timeout: Duration::from_secs(args.timeout),
        max_message: args.max_message_bytes.clamp(1024, 64 * 1024 * 1024),
    };
    let bounds = Bounds {
        max_pages: args.max_pages.clamp(1, 1000),
        max_resources: args.max_resources.min(1000),
        max_resource_bytes: 1024 * 1024,
    };
    // Compiling the packs takes a moment: do it while the server is enumerated.
    let engines = tokio::task::spawn_blocking(Engines::new);

    let (mut session, mut target, shown) = match (&args.url, args.command.is_empty()) {
        (Some(url), true) => {
            let uri: http::Uri = url
                .parse()
                .map_err(|_| anyhow!("{url:?} is not a valid URL"))?;
            let scheme = uri.scheme_str().unwrap_or("").to_ascii_lowercase();
            if scheme != "http" && scheme != "https" {
                bail!("the URL must start with http:// or https://");
            }
            let host = uri.host().unwrap_or("").to_owned();
            let headers = args
                .headers
                .iter()
                .map(|h| client::parse_header(h))
                .collect::<Result<Vec<_>>>()?;
            let credentials = !headers.is_empty();
            // A URL with user:password@ would be printed; show it without.
            let shown = format!(
                "{scheme}://{}{}",
                uri.authority()
                    .map(|a| a.as_str().rsplit('@').next().unwrap_or(""))
                    .unwrap_or(""),
                uri.path_and_query().map(|p| p.as_str()).unwrap_or("")
            );
            let transport = HttpTransport::new(uri, headers, limits)?;
            (
                Session::new(Transport::Http(Box::new(transport))),
                Target::Http {
                    scheme,
                    host,
                    credentials,
                    open: false,
                },
                shown,
            )
        }
        (None, false) => {
            let transport = StdioTransport::spawn(&args.command, limits)?;
            (
                Session::new(Transport::Stdio(Box::new(transport))),
                Target::Stdio,
                args.command.join(" "),
            )
        }
        _ => bail!("give either a URL or a command after `--`"),
    };

    // The no-authentication check: initialize without any credential. Without
    // --header the real initialize below is that attempt.
    let open_without_headers = match &target {
        Target::Http {
            credentials: true, ..
        } => Some(scan::probe_open(&mut session).await),
        _ => None,
    };
    let enumerated = scan::enumerate(&mut session, bounds).await;
    session.close().await;
    let inv = enumerated?;
    if let Target::Http {
        credentials, open, ..
    } = &mut target
    {
        *open = open_without_headers.unwrap_or(!*credentials);
    }
    let engines = engines
        .await
        .map_err(|e| anyhow!("compiling the detection packs: {e}"))??;
    let findings = scan::findings_for(&target, &inv, &engines);
    let failing = findings.iter().any(|f| f.severity >= fail_on);

    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report_json(&shown, &target, &inv, &findings, fail_on))?
        );
    } else {
        print!("{}", report_table(&shown, &inv, &findings));
    }
    Ok(if failing {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn server_info(inv: &Inventory) -> Value {
    let info = inv
        .initialize
        .get("serverInfo")
        .cloned()
        .unwrap_or(Value::Null);
    json!({
        "name": info.get("name").and_then(Value::as_str).map(|s| checks::clip(s, 200)),
        "version": info.get("version").and_then(Value::as_str).map(|s| checks::clip(s, 100)),
        "protocol_version": inv.initialize.get("protocolVersion").and_then(Value::as_str).map(|s| checks::clip(s, 40)),
    })
}

fn report_json(
    shown: &str,
    target: &Target,
    inv: &Inventory,
    findings: &[Finding],
    fail_on: Severity,
) -> Value {
    let transport = match target {
        Target::Http { .. } => "streamable_http",
        Target::Stdio => "stdio",
    };
    json!({
        "target": shown,
        "transport": transport,
        "server": server_info(inv),
        "counts": {
            "tools": inv.tools.len(),
            "resources": inv.resources.len(),
            "resources_read": inv.contents.len(),
            "prompts": inv.prompts.len(),
        },
        "warnings": inv.warnings,
        "fail_on": severity_name(fail_on),
        "max_severity": findings.iter().map(|f| f.severity).max().map(severity_name),
        "findings": findings,
    })
}

fn report_table(shown: &str, inv: &Inventory, findings: &[Finding]) -> String {
    use std::fmt::Write;
    let info = server_info(inv);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} {} {} (protocol {}): {} tools, {} resources ({} read), {} prompts",
        checks::clip(shown, 200),
        info["name"].as_str().unwrap_or("?"),
        info["version"].as_str().unwrap_or("?"),
        info["protocol_version"].as_str().unwrap_or("?"),
        inv.tools.len(),
        inv.resources.len(),
        inv.contents.len(),
        inv.prompts.len()
    );
    for w in &inv.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    if findings.is_empty() {
        let _ = writeln!(out, "no findings");
        return out;
    }
    let id_w = findings
        .iter()
        .map(|f| f.id.len())
        .max()
        .unwrap_or(2)
        .max(2);
    let target_w = findings
        .iter()
        .map(|f| f.target.chars().count())
        .max()
        .unwrap_or(6)
        .clamp(6, 48);
    let _ = writeln!(
        out,
        "{:<8}  {:<id_w$}  {:<target_w$}  MESSAGE",
        "SEVERITY", "ID", "TARGET"
    );
    for f in findings {
        let _ = writeln!(
            out,
            "{:<8}  {:<id_w$}  {:<target_w$}  {}",
            severity_name(f.severity),
            f.id,
            checks::clip(&f.target, target_w),
            f.message
        );
    }
    let _ = writeln!(out, "{} finding(s)", findings.len());
    out
}
