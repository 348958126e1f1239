//! `portcullis mcp scan`: connect to an MCP server as a client and report security
//! findings. Needs no database or configuration.
//!
//! The scanner itself is the `portcullis-mcp-scan` crate (shared with the admin
//! API); this module reads the flags and prints the report.

use crate::cli::{McpCommand, McpScanArgs};
use anyhow::{anyhow, bail, Result};
use http::header::{HeaderName, HeaderValue};
use portcullis_mcp_scan::{
    checks, display_url, findings_for, parse_url, server_info, severity_name, Bounds, Engines,
    Finding, Inventory, Limits, ScanError, Scanned, Server, StdioCommand,
};
use portcullis_policy::Severity;
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

/// Parses `Name: value`; the error names the header but never shows its value.
fn parse_header(text: &str) -> Result<(HeaderName, HeaderValue)> {
    let (name, value) = text
        .split_once(':')
        .ok_or_else(|| anyhow!("--header must look like 'Name: value'"))?;
    let name = HeaderName::from_bytes(name.trim().as_bytes())
        .map_err(|_| anyhow!("--header: {:?} is not a valid header name", name.trim()))?;
    let mut value = HeaderValue::from_str(value.trim())
        .map_err(|_| anyhow!("--header {name}: the value is not a valid header value"))?;
    value.set_sensitive(true);
    Ok((name, value))
}

/// The scanner's error, with the CLI's hint for a refused credential.
fn cli_error(e: ScanError) -> anyhow::Error {
    match e {
        ScanError::Refused { .. } => anyhow!("{e}; pass --header 'Authorization: Bearer ...'"),
        other => anyhow!(other),
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
        ..Bounds::default()
    };
    // Compiling the packs takes a moment: do it while the server is enumerated.
    let engines = tokio::task::spawn_blocking(Engines::new);

    let (server, shown) = match (&args.url, args.command.is_empty()) {
        (Some(url), true) => {
            let uri = parse_url(url)?;
            let headers = args
                .headers
                .iter()
                .map(|h| parse_header(h))
                .collect::<Result<Vec<_>>>()?;
            // A URL with user:password@ would be printed; show it without.
            let shown = display_url(&uri, true);
            let server = Server::Http {
                shown: uri.to_string(),
                uri,
                headers,
            };
            (server, shown)
        }
        (None, false) => {
            let (program, rest) = args
                .command
                .split_first()
                .ok_or_else(|| anyhow!("no command after --"))?;
            let server = Server::Stdio(StdioCommand {
                program: program.clone(),
                args: rest.to_vec(),
                env: None,
            });
            (server, args.command.join(" "))
        }
        _ => bail!("give either a URL or a command after `--`"),
    };

    let scanned = portcullis_mcp_scan::inspect(&server, limits, bounds)
        .await
        .map_err(cli_error)?;
    let engines = engines
        .await
        .map_err(|e| anyhow!("compiling the detection packs: {e}"))??;
    let findings = findings_for(&scanned.target, &scanned.inventory, &engines);
    let failing = findings.iter().any(|f| f.severity >= fail_on);

    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report_json(&shown, &scanned, &findings, fail_on))?
        );
    } else {
        print!("{}", report_table(&shown, &scanned.inventory, &findings));
    }
    Ok(if failing {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn report_json(shown: &str, scanned: &Scanned, findings: &[Finding], fail_on: Severity) -> Value {
    let inv = &scanned.inventory;
    json!({
        "target": shown,
        "transport": scanned.transport().as_str(),
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
        info.name.as_deref().unwrap_or("?"),
        info.version.as_deref().unwrap_or("?"),
        info.protocol_version.as_deref().unwrap_or("?"),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_parse_without_echoing_values() {
        let (name, value) = parse_header("Authorization: Bearer s3cret").unwrap();
        assert_eq!(name, "authorization");
        assert!(value.is_sensitive());
        let err = parse_header("Authorization Bearer s3cret")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("s3cret"));
        let err = parse_header("X-Key: bad\u{7f}s3cret")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("s3cret"), "{err}");
    }
}
