//! Storage for the scans of MCP servers run from the admin API. Same SQL on both
//! back ends.

use crate::records::ts;
use crate::{Result, StoreError};
use async_trait::async_trait;
use jiff::Timestamp;
use portcullis_core::mcp::{McpScan, SeverityCounts};

#[derive(Debug, Clone, Default)]
pub struct McpScanFilter {
    pub proxy_id: Option<String>,
    /// Scans older than this id (ids sort like `started_at`); newest first.
    pub before_id: Option<String>,
    pub limit: u32,
}

#[async_trait]
pub trait McpScanStore: Send + Sync {
    /// Stores a scan as it starts: who, what and when (its outcome is empty).
    async fn insert_mcp_scan(&self, scan: &McpScan) -> Result<()>;
    /// Records the outcome of a running scan: end time, status, error, findings,
    /// counts and server info. `false` when it is not running any more.
    async fn finish_mcp_scan(&self, scan: &McpScan) -> Result<bool>;
    async fn mcp_scan(&self, id: &str) -> Result<Option<McpScan>>;
    /// Newest first.
    async fn list_mcp_scans(&self, filter: &McpScanFilter) -> Result<Vec<McpScan>>;
    /// Marks scans still `running` that started before `cutoff` as failed with
    /// `reason` (their process ended or they outlived every bound). Returns how many.
    async fn expire_mcp_scans(
        &self,
        cutoff: Timestamp,
        reason: &str,
        now: Timestamp,
    ) -> Result<u64>;
}

#[derive(sqlx::FromRow)]
pub(crate) struct McpScanRow {
    id: String,
    proxy_id: String,
    server: String,
    transport: String,
    target: String,
    requested_by: String,
    started_at: i64,
    finished_at: Option<i64>,
    status: String,
    error: Option<String>,
    max_severity: Option<String>,
    critical_count: i64,
    high_count: i64,
    medium_count: i64,
    low_count: i64,
    info_count: i64,
    findings: String,
    server_info: String,
}

impl TryFrom<McpScanRow> for McpScan {
    type Error = StoreError;
    fn try_from(r: McpScanRow) -> Result<Self> {
        let corrupt = |what: &str| StoreError::Corrupt(format!("mcp scan {}: {what}", r.id));
        let count = |n: i64| u32::try_from(n).unwrap_or(0);
        Ok(McpScan {
            status: r.status.parse().map_err(|_| corrupt("status"))?,
            max_severity: r
                .max_severity
                .as_deref()
                .map(str::parse)
                .transpose()
                .map_err(|_| corrupt("max_severity"))?,
            findings: serde_json::from_str(&r.findings).map_err(|_| corrupt("findings"))?,
            server_info: serde_json::from_str(&r.server_info)
                .map_err(|_| corrupt("server_info"))?,
            counts: SeverityCounts {
                critical: count(r.critical_count),
                high: count(r.high_count),
                medium: count(r.medium_count),
                low: count(r.low_count),
                info: count(r.info_count),
            },
            id: r.id,
            proxy_id: r.proxy_id,
            server: r.server,
            transport: r.transport,
            target: r.target,
            requested_by: r.requested_by,
            started_at: ts(r.started_at),
            finished_at: r.finished_at.map(ts),
            error: r.error,
        })
    }
}

macro_rules! mcp_scan_cols { () => { "id, proxy_id, server, transport, target, requested_by, started_at, finished_at, status, error, max_severity, critical_count, high_count, medium_count, low_count, info_count, findings, server_info" }; }

macro_rules! impl_mcp_scan_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::scans::McpScanStore for $store {
            async fn insert_mcp_scan(&self, s: &portcullis_core::mcp::McpScan) -> $crate::Result<()> {
                // The outcome columns keep their defaults until finish_mcp_scan.
                sqlx::query("INSERT INTO mcp_scans (id, proxy_id, server, transport, target, requested_by, started_at, status) \
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
                    .bind(&s.id)
                    .bind(&s.proxy_id)
                    .bind(&s.server)
                    .bind(&s.transport)
                    .bind(&s.target)
                    .bind(&s.requested_by)
                    .bind($crate::records::ms(s.started_at))
                    .bind(s.status.as_str())
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn finish_mcp_scan(&self, s: &portcullis_core::mcp::McpScan) -> $crate::Result<bool> {
                let done = sqlx::query("UPDATE mcp_scans SET finished_at = $2, status = $3, error = $4, max_severity = $5, \
                                        critical_count = $6, high_count = $7, medium_count = $8, low_count = $9, info_count = $10, \
                                        findings = $11, server_info = $12 WHERE id = $1 AND status = 'running'")
                    .bind(&s.id)
                    .bind(s.finished_at.map($crate::records::ms))
                    .bind(s.status.as_str())
                    .bind(s.error.as_deref())
                    .bind(s.max_severity.map(|v| v.as_str()))
                    .bind(i64::from(s.counts.critical))
                    .bind(i64::from(s.counts.high))
                    .bind(i64::from(s.counts.medium))
                    .bind(i64::from(s.counts.low))
                    .bind(i64::from(s.counts.info))
                    .bind(serde_json::to_string(&s.findings).unwrap_or_else(|_| "[]".into()))
                    .bind(serde_json::to_string(&s.server_info).unwrap_or_else(|_| "{}".into()))
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn mcp_scan(&self, id: &str) -> $crate::Result<Option<portcullis_core::mcp::McpScan>> {
                let q = concat!("SELECT ", mcp_scan_cols!(), " FROM mcp_scans WHERE id = $1");
                sqlx::query_as::<_, $crate::scans::McpScanRow>(q).bind(id).fetch_optional(&self.pool).await?.map(TryInto::try_into).transpose()
            }

            async fn list_mcp_scans(&self, f: &$crate::scans::McpScanFilter) -> $crate::Result<Vec<portcullis_core::mcp::McpScan>> {
                let q = concat!("SELECT ", mcp_scan_cols!(), " FROM mcp_scans WHERE ($1 IS NULL OR proxy_id = $1) AND ($2 IS NULL OR id < $2) ORDER BY id DESC LIMIT $3");
                sqlx::query_as::<_, $crate::scans::McpScanRow>(q)
                    .bind(f.proxy_id.as_deref())
                    .bind(f.before_id.as_deref())
                    .bind(i64::from(f.limit))
                    .fetch_all(&self.pool)
                    .await?
                    .into_iter()
                    .map(TryInto::try_into)
                    .collect()
            }

            async fn expire_mcp_scans(&self, cutoff: jiff::Timestamp, reason: &str, now: jiff::Timestamp) -> $crate::Result<u64> {
                let done = sqlx::query("UPDATE mcp_scans SET status = 'failed', error = $2, finished_at = $3 WHERE status = 'running' AND started_at < $1")
                    .bind($crate::records::ms(cutoff))
                    .bind(reason)
                    .bind($crate::records::ms(now))
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected())
            }
        }
    };
}

pub(crate) use {impl_mcp_scan_store, mcp_scan_cols};
