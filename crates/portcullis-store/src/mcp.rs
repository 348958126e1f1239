//! Storage for the MCP tool inventory. Same SQL on both back ends.

use crate::records::ts;
use crate::{Result, StoreError};
use async_trait::async_trait;
use jiff::Timestamp;
use portcullis_core::mcp::{McpTool, ToolStatus};

#[derive(Debug, Clone, Default)]
pub struct McpToolFilter {
    pub proxy_id: Option<String>,
    pub status: Option<ToolStatus>,
    pub limit: u32,
}

/// A listing's view of a known tool: its definition now, and the status the
/// inventory decided for it.
#[derive(Debug, Clone)]
pub struct ToolSighting<'a> {
    pub definition: &'a str,
    pub hash: &'a str,
    pub status: ToolStatus,
    pub flagged_rules: &'a [String],
}

#[async_trait]
pub trait McpStore: Send + Sync {
    /// Every tool of one proxy (of every server of a federation), by server and name.
    async fn mcp_tools_of(&self, proxy_id: &str) -> Result<Vec<McpTool>>;
    async fn mcp_tool(&self, id: &str) -> Result<Option<McpTool>>;
    /// One tool of one proxy's server (`""` without federation), by its own
    /// name (the `tools/call` check).
    async fn mcp_tool_named(
        &self,
        proxy_id: &str,
        server: &str,
        name: &str,
    ) -> Result<Option<McpTool>>;
    /// By proxy, then name.
    async fn list_mcp_tools(&self, filter: &McpToolFilter) -> Result<Vec<McpTool>>;
    /// Stores a tool seen for the first time; `false` when another replica stored
    /// it meanwhile (the caller reads it back).
    async fn insert_mcp_tool(&self, tool: &McpTool) -> Result<bool>;
    /// Records a listing of a known tool: definition, hash, status, flags.
    async fn record_mcp_tool(
        &self,
        id: &str,
        seen: &ToolSighting<'_>,
        now: Timestamp,
    ) -> Result<()>;
    /// Approves the definition stored now, if its hash is still `hash`; `false`
    /// when the tool does not exist or its definition changed meanwhile.
    async fn approve_mcp_tool(
        &self,
        id: &str,
        hash: &str,
        by: &str,
        now: Timestamp,
    ) -> Result<bool>;
    /// Sets a status other than approved (disable).
    async fn set_mcp_tool_status(
        &self,
        id: &str,
        status: ToolStatus,
        now: Timestamp,
    ) -> Result<bool>;
}

#[derive(sqlx::FromRow)]
pub(crate) struct McpToolRow {
    id: String,
    proxy_id: String,
    server: String,
    name: String,
    definition: String,
    hash: String,
    status: String,
    approved_hash: Option<String>,
    approved_definition: Option<String>,
    flagged_rules: String,
    first_seen_at: i64,
    last_seen_at: i64,
    approved_by: Option<String>,
    approved_at: Option<i64>,
    status_changed_at: i64,
}

impl TryFrom<McpToolRow> for McpTool {
    type Error = StoreError;
    fn try_from(r: McpToolRow) -> Result<Self> {
        let corrupt = |what: &str| StoreError::Corrupt(format!("mcp tool {}: {what}", r.id));
        let definition = serde_json::from_str(&r.definition).map_err(|_| corrupt("definition"))?;
        let approved_definition = r
            .approved_definition
            .as_deref()
            .map(serde_json::from_str)
            .transpose()
            .map_err(|_| corrupt("approved_definition"))?;
        let status = r.status.parse().map_err(|_| corrupt("status"))?;
        let flagged_rules =
            serde_json::from_str(&r.flagged_rules).map_err(|_| corrupt("flagged_rules"))?;
        Ok(McpTool {
            id: r.id,
            proxy_id: r.proxy_id,
            server: r.server,
            name: r.name,
            definition,
            hash: r.hash,
            status,
            approved_hash: r.approved_hash,
            approved_definition,
            flagged_rules,
            first_seen_at: ts(r.first_seen_at),
            last_seen_at: ts(r.last_seen_at),
            approved_by: r.approved_by,
            approved_at: r.approved_at.map(ts),
            status_changed_at: ts(r.status_changed_at),
        })
    }
}

macro_rules! mcp_tool_cols { () => { "id, proxy_id, server, name, definition, hash, status, approved_hash, approved_definition, flagged_rules, first_seen_at, last_seen_at, approved_by, approved_at, status_changed_at" }; }

macro_rules! impl_mcp_store {
    ($store:ty, $db:ty) => {
        #[async_trait::async_trait]
        impl $crate::mcp::McpStore for $store {
            async fn mcp_tools_of(&self, proxy_id: &str) -> $crate::Result<Vec<portcullis_core::mcp::McpTool>> {
                let q = concat!("SELECT ", mcp_tool_cols!(), " FROM mcp_tools WHERE proxy_id = $1 ORDER BY server, name");
                sqlx::query_as::<_, $crate::mcp::McpToolRow>(q).bind(proxy_id).fetch_all(&self.pool).await?.into_iter().map(TryInto::try_into).collect()
            }

            async fn mcp_tool(&self, id: &str) -> $crate::Result<Option<portcullis_core::mcp::McpTool>> {
                let q = concat!("SELECT ", mcp_tool_cols!(), " FROM mcp_tools WHERE id = $1");
                sqlx::query_as::<_, $crate::mcp::McpToolRow>(q).bind(id).fetch_optional(&self.pool).await?.map(TryInto::try_into).transpose()
            }

            async fn mcp_tool_named(&self, proxy_id: &str, server: &str, name: &str) -> $crate::Result<Option<portcullis_core::mcp::McpTool>> {
                let q = concat!("SELECT ", mcp_tool_cols!(), " FROM mcp_tools WHERE proxy_id = $1 AND server = $2 AND name = $3");
                sqlx::query_as::<_, $crate::mcp::McpToolRow>(q).bind(proxy_id).bind(server).bind(name).fetch_optional(&self.pool).await?.map(TryInto::try_into).transpose()
            }

            async fn list_mcp_tools(&self, f: &$crate::mcp::McpToolFilter) -> $crate::Result<Vec<portcullis_core::mcp::McpTool>> {
                let q = concat!("SELECT ", mcp_tool_cols!(), " FROM mcp_tools WHERE ($1 IS NULL OR proxy_id = $1) AND ($2 IS NULL OR status = $2) ORDER BY proxy_id, server, name LIMIT $3");
                sqlx::query_as::<_, $crate::mcp::McpToolRow>(q)
                    .bind(f.proxy_id.as_deref())
                    .bind(f.status.map(|s| s.as_str()))
                    .bind(i64::from(f.limit))
                    .fetch_all(&self.pool)
                    .await?
                    .into_iter()
                    .map(TryInto::try_into)
                    .collect()
            }

            async fn insert_mcp_tool(&self, t: &portcullis_core::mcp::McpTool) -> $crate::Result<bool> {
                let q = concat!("INSERT INTO mcp_tools (", mcp_tool_cols!(), ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) ON CONFLICT (proxy_id, server, name) DO NOTHING");
                let done = sqlx::query(q)
                    .bind(&t.id)
                    .bind(&t.proxy_id)
                    .bind(&t.server)
                    .bind(&t.name)
                    .bind(t.definition.to_string())
                    .bind(&t.hash)
                    .bind(t.status.as_str())
                    .bind(t.approved_hash.as_deref())
                    .bind(t.approved_definition.as_ref().map(|d| d.to_string()))
                    .bind(serde_json::to_string(&t.flagged_rules).unwrap_or_else(|_| "[]".into()))
                    .bind($crate::records::ms(t.first_seen_at))
                    .bind($crate::records::ms(t.last_seen_at))
                    .bind(t.approved_by.as_deref())
                    .bind(t.approved_at.map($crate::records::ms))
                    .bind($crate::records::ms(t.status_changed_at))
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn record_mcp_tool(&self, id: &str, seen: &$crate::mcp::ToolSighting<'_>, now: jiff::Timestamp) -> $crate::Result<()> {
                sqlx::query("UPDATE mcp_tools SET definition = $2, hash = $3, \
                             status_changed_at = CASE WHEN status = $4 THEN status_changed_at ELSE $6 END, \
                             status = $4, flagged_rules = $5, last_seen_at = $6 WHERE id = $1")
                    .bind(id)
                    .bind(seen.definition)
                    .bind(seen.hash)
                    .bind(seen.status.as_str())
                    .bind(serde_json::to_string(seen.flagged_rules).unwrap_or_else(|_| "[]".into()))
                    .bind($crate::records::ms(now))
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn approve_mcp_tool(&self, id: &str, hash: &str, by: &str, now: jiff::Timestamp) -> $crate::Result<bool> {
                let done = sqlx::query("UPDATE mcp_tools SET status = 'approved', approved_hash = hash, approved_definition = definition, \
                                        approved_by = $3, approved_at = $4, status_changed_at = $4 WHERE id = $1 AND hash = $2")
                    .bind(id)
                    .bind(hash)
                    .bind(by)
                    .bind($crate::records::ms(now))
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn set_mcp_tool_status(&self, id: &str, status: portcullis_core::mcp::ToolStatus, now: jiff::Timestamp) -> $crate::Result<bool> {
                let done = sqlx::query("UPDATE mcp_tools SET status = $2, status_changed_at = $3 WHERE id = $1")
                    .bind(id)
                    .bind(status.as_str())
                    .bind($crate::records::ms(now))
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() > 0)
            }
        }
    };
}

pub(crate) use {impl_mcp_store, mcp_tool_cols};
