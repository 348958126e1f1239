//! Scans of MCP proxies' servers: the checks of `portcullis mcp scan` (the
//! `portcullis-mcp-scan` crate) run against every upstream of a proxy, in the
//! background; each server's result is stored as one row of `mcp_scans`, and
//! findings at or above high raise alerts.

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::extract::{ApiJson, ApiQuery};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::header::{HeaderName, HeaderValue, AUTHORIZATION};
use axum::http::StatusCode;
use axum::Json;
use jiff::Timestamp;
use portcullis_core::alert::{Alert, AlertStatus, Severity};
use portcullis_core::mcp::{McpScan, ScanFinding, ScanServerInfo, ScanStatus, SeverityCounts};
use portcullis_core::proxy::{Proxy, ProxyKind};
use portcullis_core::role::Role;
use portcullis_mcp_scan::{
    display_url, parse_url, server_info, severity_name, Bounds, Engines, Limits, Scanned, Server,
    StdioCommand, TransportKind,
};
use portcullis_store::McpScanFilter;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::OnceCell;

const DEFAULT_PAGE: u32 = 50;
const MAX_PAGE: u32 = 500;
/// Longest a whole scan of one server may take (each answer has the CLI's
/// 10 s on top of this bound).
pub const SCAN_DEADLINE: Duration = Duration::from_secs(60);
/// Proxies scanned at once by this replica; more is a 429.
const MAX_CONCURRENT: usize = 4;
/// Findings and warnings kept per row (the rest are counted in the message).
const MAX_FINDINGS: usize = 500;
const MAX_WARNINGS: usize = 50;
/// Findings at or above this raise an alert.
const ALERT_AT: Severity = Severity::High;

/// The scanner's state: the detection packs (compiled once, on the first scan)
/// and the proxies being scanned.
#[derive(Default)]
pub struct Scanner {
    engines: OnceCell<Arc<Engines>>,
    running: Mutex<HashSet<String>>,
}

impl Scanner {
    async fn engines(&self) -> Result<Arc<Engines>, String> {
        self.engines
            .get_or_try_init(|| async {
                match tokio::task::spawn_blocking(Engines::new).await {
                    Ok(Ok(engines)) => Ok(Arc::new(engines)),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(e) => Err(format!("compiling the detection packs: {e}")),
                }
            })
            .await
            .cloned()
    }

    /// Claims the proxy for one scan; the guard gives it back.
    fn claim(self: &Arc<Self>, proxy_id: &str) -> ApiResult<Claim> {
        let mut running = self.running.lock().map_err(|_| ApiError::internal())?;
        if running.contains(proxy_id) {
            return Err(ApiError::new(
                ErrorCode::Conflict,
                "a scan of this proxy is already running",
            ));
        }
        if running.len() >= MAX_CONCURRENT {
            return Err(ApiError::new(
                ErrorCode::TooManyRequests,
                format!("{MAX_CONCURRENT} proxies are being scanned; retry when one finishes"),
            ));
        }
        running.insert(proxy_id.to_owned());
        Ok(Claim {
            scanner: self.clone(),
            proxy_id: proxy_id.to_owned(),
        })
    }
}

struct Claim {
    scanner: Arc<Scanner>,
    proxy_id: String,
}

impl Drop for Claim {
    fn drop(&mut self) {
        if let Ok(mut running) = self.scanner.running.lock() {
            running.remove(&self.proxy_id);
        }
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScanRequest {
    /// The MCP proxy whose servers are scanned.
    pub proxy_id: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ScanStarted {
    /// One running scan per server (federation member), in the proxy's order.
    pub scans: Vec<McpScan>,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ScanQuery {
    /// Proxy id.
    pub proxy: Option<String>,
    /// Cursor from `next`.
    pub cursor: Option<String>,
    /// 1 to 500, default 50.
    pub limit: Option<u32>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ScanPage {
    pub scans: Vec<McpScan>,
    /// Cursor for the next (older) page; none on the last one.
    pub next: Option<String>,
}

/// One upstream to scan.
struct Upstream {
    /// The federation member's name; empty for a proxy with one server.
    name: String,
    server: Server,
    transport: TransportKind,
    /// What is stored as `target`: no credential, query or environment.
    target: String,
}

fn unprocessable(message: String) -> ApiError {
    ApiError::new(ErrorCode::Unprocessable, message)
}

async fn bearer(state: &AppState, credential_id: Option<&str>) -> ApiResult<Vec<Header>> {
    let Some(id) = credential_id else {
        return Ok(Vec::new());
    };
    let sealed = state
        .store
        .sealed_credentials()
        .await?
        .into_iter()
        .find(|c| c.id == id)
        .ok_or_else(|| unprocessable(format!("credential {id} of the proxy does not exist")))?;
    let secret = state
        .master_key
        .open(&sealed.sealed, &sealed.id)
        .map_err(|e| {
            tracing::error!(error = %e, credential = id, "credential cannot be opened for a scan");
            ApiError::internal()
        })?;
    let mut value = HeaderValue::from_str(&format!("Bearer {}", secret.expose()))
        .map_err(|_| unprocessable(format!("credential {id} is not a valid header value")))?;
    value.set_sensitive(true);
    Ok(vec![(AUTHORIZATION, value)])
}

type Header = (HeaderName, HeaderValue);

async fn http_upstream(
    state: &AppState,
    name: &str,
    url: &str,
    credential_id: Option<&str>,
) -> ApiResult<Upstream> {
    let uri = parse_url(url).map_err(|e| unprocessable(format!("upstream_url: {e}")))?;
    let target = display_url(&uri, false);
    Ok(Upstream {
        name: name.to_owned(),
        server: Server::Http {
            uri,
            shown: target.clone(),
            headers: bearer(state, credential_id).await?,
        },
        transport: TransportKind::StreamableHttp,
        target,
    })
}

/// Every upstream of an MCP proxy: its stdio program, its one HTTP server, or
/// each federation member, with the credentials and environment the data plane
/// uses.
async fn upstreams(state: &AppState, proxy: &Proxy) -> ApiResult<Vec<Upstream>> {
    let spec = &proxy.spec;
    if let Some(program) = &spec.upstream_command {
        return Ok(vec![Upstream {
            name: String::new(),
            server: Server::Stdio(StdioCommand {
                program: program.clone(),
                args: spec.upstream_args.clone(),
                env: Some(spec.upstream_env.clone()),
            }),
            transport: TransportKind::Stdio,
            target: program.clone(),
        }]);
    }
    if spec.mcp_servers.is_empty() {
        let one = http_upstream(state, "", &spec.upstream_url, spec.credential_id.as_deref());
        return Ok(vec![one.await?]);
    }
    let mut out = Vec::with_capacity(spec.mcp_servers.len());
    for member in &spec.mcp_servers {
        out.push(
            http_upstream(
                state,
                &member.name,
                &member.upstream_url,
                member.credential_id.as_deref(),
            )
            .await?,
        );
    }
    Ok(out)
}

/// Scans every server of an MCP proxy in the background; answers at once with
/// the running scans (one per server). Poll `GET /api/v1/mcp/scans/{id}`.
#[utoipa::path(post, path = "/api/v1/mcp/scans", tag = "mcp", operation_id = "create_scan", request_body = ScanRequest,
    responses((status = 202, body = ScanStarted), (status = 400, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody),
        (status = 409, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody),
        (status = 429, body = crate::error::ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<ScanRequest>,
) -> ApiResult<(StatusCode, Json<ScanStarted>)> {
    if req.proxy_id.is_empty() || req.proxy_id.len() > 128 {
        return Err(ApiError::bad_request("proxy_id: 1 to 128 bytes"));
    }
    let proxy = state
        .store
        .proxy(&req.proxy_id)
        .await?
        .ok_or_else(|| ApiError::not_found("proxy"))?;
    if proxy.spec.kind != ProxyKind::Mcp {
        return Err(ApiError::bad_request(format!(
            "proxy_id: {:?} is an LLM proxy; only MCP proxies are scanned",
            proxy.spec.name
        )));
    }
    // The scan starts the proxy's program: the same power as configuring it.
    if proxy.spec.runs_command() && caller.role != Role::Admin {
        return Err(ApiError::forbidden(
            "only admins may scan a stdio proxy: the scan starts its upstream_command",
        ));
    }
    let upstreams = upstreams(&state, &proxy).await?;
    let claim = state.scans.claim(&proxy.id)?;
    let now = state.clock.now();
    // Scans left running by a process that ended, or past every bound.
    let cutoff = now.checked_sub(SCAN_DEADLINE * 2).unwrap_or(now);
    state
        .store
        .expire_mcp_scans(cutoff, "interrupted: the scan did not finish", now)
        .await?;
    let actor = caller.actor();
    let mut scans = Vec::with_capacity(upstreams.len());
    for up in &upstreams {
        let scan = McpScan {
            id: portcullis_core::id::new_id_at(now),
            proxy_id: proxy.id.clone(),
            server: up.name.clone(),
            transport: up.transport.as_str().to_owned(),
            target: up.target.clone(),
            requested_by: actor.clone(),
            started_at: now,
            finished_at: None,
            status: ScanStatus::Running,
            error: None,
            max_severity: None,
            counts: SeverityCounts::default(),
            findings: Vec::new(),
            server_info: ScanServerInfo::default(),
        };
        state.store.insert_mcp_scan(&scan).await?;
        scans.push(scan);
    }
    state
        .audit(
            caller
                .draft("mcp_scan.run", format!("proxy:{}", proxy.spec.name))
                .details(json!({
                    "proxy_id": proxy.id,
                    "scans": scans.iter().map(|s| &s.id).collect::<Vec<_>>(),
                    "targets": upstreams.iter().map(|u| json!({"server": u.name, "target": u.target})).collect::<Vec<_>>(),
                })),
        )
        .await;
    let jobs: Vec<(McpScan, Server)> = scans
        .iter()
        .cloned()
        .zip(upstreams.into_iter().map(|u| u.server))
        .collect();
    tokio::spawn(run_all(state.clone(), proxy, jobs, claim));
    Ok((StatusCode::ACCEPTED, Json(ScanStarted { scans })))
}

/// Scans the servers side by side; each row is finished as its scan ends. The
/// claim on the proxy is held until the last one.
async fn run_all(state: AppState, proxy: Proxy, jobs: Vec<(McpScan, Server)>, _claim: Claim) {
    let proxy = Arc::new(proxy);
    let mut set = tokio::task::JoinSet::new();
    for (scan, server) in jobs {
        set.spawn(run_one(state.clone(), proxy.clone(), scan, server));
    }
    while set.join_next().await.is_some() {}
}

async fn run_one(state: AppState, proxy: Arc<Proxy>, mut scan: McpScan, server: Server) {
    let started = std::time::Instant::now();
    let outcome = tokio::select! {
        outcome = scan_server(&state, &server) => outcome,
        () = state.shutdown.triggered() => Err("interrupted: the gateway is shutting down".to_owned()),
    };
    scan.finished_at = Some(state.clock.now());
    match outcome {
        Ok(found) => finish_done(&mut scan, found),
        Err(error) => {
            scan.status = ScanStatus::Failed;
            scan.error = Some(error);
        }
    }
    tracing::info!(proxy = %proxy.spec.name, server = %scan.server, status = scan.status.as_str(),
        findings = scan.findings.len(), ms = started.elapsed().as_millis() as u64, "MCP scan finished");
    match state.store.finish_mcp_scan(&scan).await {
        Ok(true) => raise_alerts(&state, &proxy, &scan).await,
        Ok(false) => tracing::warn!(scan = %scan.id, "MCP scan expired before it finished"),
        Err(e) => tracing::error!(error = %e, scan = %scan.id, "MCP scan result not stored"),
    }
}

/// What the scan found, or why it could not run.
struct Found {
    scanned: Scanned,
    findings: Vec<portcullis_mcp_scan::Finding>,
}

async fn scan_server(state: &AppState, server: &Server) -> Result<Found, String> {
    let engines = state.scans.engines().await?;
    let inspected = tokio::time::timeout(
        SCAN_DEADLINE,
        portcullis_mcp_scan::inspect(server, Limits::default(), Bounds::default()),
    )
    .await
    .map_err(|_| format!("the scan took longer than {} s", SCAN_DEADLINE.as_secs()))?;
    let scanned = inspected.map_err(|e| e.to_string())?;
    let findings = portcullis_mcp_scan::findings_for(&scanned.target, &scanned.inventory, &engines);
    Ok(Found { scanned, findings })
}

fn finish_done(scan: &mut McpScan, found: Found) {
    let inv = &found.scanned.inventory;
    let info = server_info(inv);
    let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    let mut warnings: Vec<String> = inv.warnings.iter().take(MAX_WARNINGS).cloned().collect();
    if found.findings.len() > MAX_FINDINGS {
        warnings.push(format!(
            "{} findings; the first {MAX_FINDINGS} (most severe first) are stored",
            found.findings.len()
        ));
    }
    let findings: Vec<ScanFinding> = found
        .findings
        .iter()
        .map(|f| ScanFinding {
            check: f.id.to_owned(),
            severity: core_severity(f.severity),
            target: f.target.clone(),
            message: f.message.clone(),
            rules: f.rules.clone(),
        })
        .collect();
    scan.counts = SeverityCounts::of(&findings);
    scan.max_severity = findings.iter().map(|f| f.severity).max();
    scan.findings = findings.into_iter().take(MAX_FINDINGS).collect();
    scan.server_info = ScanServerInfo {
        name: info.name,
        version: info.version,
        protocol_version: info.protocol_version,
        tools: count(inv.tools.len()),
        resources: count(inv.resources.len()),
        resources_read: count(inv.contents.len()),
        prompts: count(inv.prompts.len()),
        warnings,
    };
    scan.status = ScanStatus::Done;
}

fn core_severity(s: portcullis_policy::Severity) -> Severity {
    severity_name(s).parse().unwrap_or(Severity::Info)
}

/// One alert per (check, target) at or above high, rule `mcp-scan-<check>`.
async fn raise_alerts(state: &AppState, proxy: &Proxy, scan: &McpScan) {
    let live = state.data_plane.relay().events.live();
    let at: Timestamp = scan.finished_at.unwrap_or(scan.started_at);
    for f in scan.findings.iter().filter(|f| f.severity >= ALERT_AT) {
        let server = if scan.server.is_empty() {
            String::new()
        } else {
            format!(" (server {})", scan.server)
        };
        let alert = Alert {
            id: portcullis_core::id::new_id_at(at),
            created_at: at,
            event_id: format!("mcp-scan:{}", scan.id),
            proxy_id: proxy.id.clone(),
            proxy_name: proxy.spec.name.clone(),
            rule: format!("mcp-scan-{}", f.check),
            category: f.check.clone(),
            severity: f.severity,
            action: "flag".to_owned(),
            location: f.target.clone(),
            key_id: None,
            group_id: None,
            status: AlertStatus::Open,
            status_changed_at: None,
            status_changed_by: None,
            note: Some(format!("MCP scan {}{server}: {}", scan.id, f.message)),
        };
        if let Err(e) = live.raise_alert(state.store.as_ref(), &alert).await {
            tracing::error!(error = %e, scan = %scan.id, "MCP scan alert not stored");
        }
    }
}

/// Scans, newest first.
#[utoipa::path(get, path = "/api/v1/mcp/scans", tag = "mcp", operation_id = "list_scans", params(ScanQuery), responses((status = 200, body = ScanPage)))]
pub async fn list(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<ScanQuery>,
) -> ApiResult<Json<ScanPage>> {
    let limit = q.limit.unwrap_or(DEFAULT_PAGE);
    if limit == 0 || limit > MAX_PAGE {
        return Err(ApiError::bad_request(format!(
            "limit: must be between 1 and {MAX_PAGE}"
        )));
    }
    for (field, value) in [("proxy", &q.proxy), ("cursor", &q.cursor)] {
        if value.as_ref().is_some_and(|v| v.len() > 128) {
            return Err(ApiError::bad_request(format!("{field}: at most 128 bytes")));
        }
    }
    let filter = McpScanFilter {
        proxy_id: q.proxy,
        before_id: q.cursor,
        limit,
    };
    let scans = state.store.list_mcp_scans(&filter).await?;
    let next = (scans.len() == limit as usize)
        .then(|| scans.last().map(|s| s.id.clone()))
        .flatten();
    Ok(Json(ScanPage { scans, next }))
}

/// One scan with its findings.
#[utoipa::path(get, path = "/api/v1/mcp/scans/{id}", tag = "mcp", operation_id = "get_scan", params(("id" = String, Path)),
    responses((status = 200, body = McpScan), (status = 404, body = crate::error::ErrorBody)))]
pub async fn get_one(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<McpScan>> {
    state
        .store
        .mcp_scan(&id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("MCP scan"))
}
