//! PostgreSQL, for several replicas sharing one state.

use crate::a2a::{a2a_agent_cols, a2a_task_cols, impl_a2a_store};
use crate::mcp::{impl_mcp_store, mcp_tool_cols};
use crate::records::*;
use crate::scans::{impl_mcp_scan_store, mcp_scan_cols};
use crate::spend::{budget_cols, impl_spend_store};
use crate::sql::{
    alert_cols, audit_cols, bind_spec, cred_cols, event_cols, group_cols, impl_store, key_cols,
    policy_cols, prompt_cols, proxy_cols, user_cols,
};
use crate::Result;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres, Transaction};
use std::str::FromStr;
use std::time::Duration;

/// Advisory-lock key that serialises audit appends across replicas.
const AUDIT_LOCK_KEY: i64 = 0x7063_785f_6175_6469; // "pcx_audi"

pub struct PgStore {
    pool: PgPool,
    audit_lock: tokio::sync::Mutex<()>,
}

impl PgStore {
    /// Connects and applies migrations. `schema`, when given, is created if missing
    /// and used as the search path (tests use one schema each).
    pub async fn connect(url: &str, schema: Option<&str>) -> Result<Self> {
        let mut options = PgConnectOptions::from_str(url)?;
        if let Some(schema) = schema {
            options = options.options([("search_path", schema)]);
        }
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await?;
        if let Some(schema) = schema {
            // Identifiers cannot be bound; accept only a plain identifier.
            if !schema
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
            {
                return Err(crate::StoreError::Corrupt(format!(
                    "invalid schema name {schema:?}"
                )));
            }
            sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""))
                .execute(&pool)
                .await?;
        }
        let store = Self {
            pool,
            audit_lock: tokio::sync::Mutex::new(()),
        };
        crate::Store::migrate(&store).await?;
        Ok(store)
    }

    /// Drops a test schema and everything in it.
    pub async fn drop_schema(&self, schema: &str) -> Result<()> {
        if !schema
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(crate::StoreError::Corrupt(format!(
                "invalid schema name {schema:?}"
            )));
        }
        sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    fn migrator() -> sqlx::migrate::Migrator {
        sqlx::migrate!("./migrations/postgres")
    }

    async fn lock_audit_chain(tx: &mut Transaction<'static, Postgres>) -> Result<()> {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(AUDIT_LOCK_KEY)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }
}

impl_store!(PgStore, sqlx::Postgres, crate::Backend::Postgres);
impl_spend_store!(PgStore, sqlx::Postgres);
impl_a2a_store!(PgStore);
impl_mcp_store!(PgStore, sqlx::Postgres);
impl_mcp_scan_store!(PgStore);
