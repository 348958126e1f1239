//! The embedded default: one SQLite file in WAL mode.

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
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool, Transaction};
use std::path::Path;
use std::time::Duration;

pub struct SqliteStore {
    pool: SqlitePool,
    audit_lock: tokio::sync::Mutex<()>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and applies migrations.
    pub async fn open(path: &Path) -> Result<Self> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await?;
        let store = Self {
            pool,
            audit_lock: tokio::sync::Mutex::new(()),
        };
        crate::Store::migrate(&store).await?;
        Ok(store)
    }

    fn migrator() -> sqlx::migrate::Migrator {
        sqlx::migrate!("./migrations/sqlite")
    }

    /// Takes SQLite's write lock before reading the chain head, so a second process
    /// (the CLI beside a running server) waits instead of forking the chain.
    async fn lock_audit_chain(tx: &mut Transaction<'static, Sqlite>) -> Result<()> {
        // A no-op write upgrades the transaction to a writer at once.
        sqlx::query("UPDATE audit_log SET id = id WHERE 0")
            .execute(&mut **tx)
            .await?;
        Ok(())
    }
}

impl_store!(SqliteStore, sqlx::Sqlite, crate::Backend::Sqlite);
impl_spend_store!(SqliteStore, sqlx::Sqlite);
impl_a2a_store!(SqliteStore);
impl_mcp_store!(SqliteStore, sqlx::Sqlite);
impl_mcp_scan_store!(SqliteStore);
