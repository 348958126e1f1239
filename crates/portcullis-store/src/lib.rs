//! Storage for the control plane.
//!
//! One [`Store`] trait, two implementations that run the same SQL: SQLite (the
//! embedded default, WAL mode) and PostgreSQL (for several replicas). Each back end
//! has its own versioned migrations under `migrations/`. SQL is never assembled
//! from values; every value is a bind parameter (`$1` works on both back ends).

mod a2a;
mod mcp;
mod postgres;
mod records;
mod scans;
mod spend;
mod sql;
mod sqlite;

pub use a2a::{
    A2aAgent, A2aStore, A2aTask, AgentCredential, AgentGrant, AgentSettings, AgentStatus,
    TaskFilter, TaskSighting, TaskStateAt, MAX_TASK_HISTORY,
};
pub use mcp::{McpStore, McpToolFilter, ToolSighting};
pub use postgres::PgStore;
pub use scans::{McpScanFilter, McpScanStore};
pub use spend::{BudgetPatch, NewBudget, ProxyTraffic, SpendStore, UsageDim, UsageQuery, UsageRow};
pub use sqlite::SqliteStore;

use async_trait::async_trait;
use jiff::Timestamp;
use portcullis_core::alert::{Alert, AlertStatus, Severity};
use portcullis_core::audit::{AuditDraft, AuditEntry, StoredAuditRow};
use portcullis_core::model::{ApiKey, Credential, Group, KeyScope, ProviderKind, RateLimits, User};
use portcullis_core::proxy::{ManagedBy, Proxy, ProxyEvent, ProxySpec};
use portcullis_core::Role;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique name is taken, or a record is still referenced.
    #[error("{0}")]
    Conflict(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// A stored value the code cannot read back (hand-edited row, newer schema).
    #[error("corrupt record: {0}")]
    Corrupt(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, Clone)]
pub struct NewUser {
    pub username: String,
    pub password_hash: String,
    pub role: Role,
    pub must_change_password: bool,
}

#[derive(Debug, Clone, Default)]
pub struct UserPatch {
    pub role: Option<Role>,
    pub disabled: Option<bool>,
}

#[derive(Debug, Clone)]
pub struct NewSession {
    pub id: String,
    pub user_id: String,
    pub expires_at: Timestamp,
}

#[derive(Debug, Clone, Default)]
pub struct GroupPatch {
    pub name: Option<String>,
    pub description: Option<String>,
    /// Replaces both limits when given.
    pub rate_limits: Option<RateLimits>,
    /// Replaces the list when given.
    pub mcp_tool_allow: Option<Vec<String>>,
    pub mcp_tool_deny: Option<Vec<String>>,
}

#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub name: String,
    pub group_id: String,
    pub prefix: String,
    pub key_hash: String,
    pub scopes: Vec<KeyScope>,
    pub expires_at: Option<Timestamp>,
    pub created_by: String,
    pub rate_limits: RateLimits,
}

/// A credential to store; `sealed` is already encrypted by the caller, bound to `id`.
#[derive(Debug, Clone)]
pub struct NewCredential {
    pub id: String,
    pub name: String,
    pub provider: ProviderKind,
    pub hint: String,
    pub sealed: String,
    pub master_key_id: String,
}

#[derive(Debug, Clone, Default)]
pub struct CredentialPatch {
    pub name: Option<String>,
    /// New secret: sealed value, hint and key id together.
    pub secret: Option<(String, String, String)>,
}

#[derive(Debug, Clone)]
pub struct SealedCredential {
    pub id: String,
    pub sealed: String,
}

#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub actor: Option<String>,
    /// Matches the action exactly, or every action under it when it ends in `.`.
    pub action: Option<String>,
    pub target: Option<String>,
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
    /// Entries with a smaller id (newest first pagination).
    pub before_id: Option<i64>,
    pub limit: u32,
}

/// Records whose owner can be the configuration file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    Group,
    Credential,
    ApiKey,
}

#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub proxy_id: Option<String>,
    pub group_id: Option<String>,
    pub key_id: Option<String>,
    pub model: Option<String>,
    pub status: Option<u16>,
    pub decision: Option<String>,
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
    /// Events older than this id (ids are time-ordered); newest first.
    pub before_id: Option<String>,
    pub limit: u32,
}

/// A user rule pack as stored; `pack` is its JSON (validated before it is stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyRecord {
    pub name: String,
    pub description: String,
    pub rule_count: u32,
    pub pack: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A user rule pack to store or replace.
#[derive(Debug, Clone)]
pub struct NewPolicy {
    pub name: String,
    pub description: String,
    pub rule_count: u32,
    pub pack: String,
}

/// A governed system prompt template; `content` is validated before it is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemPromptRecord {
    pub id: String,
    pub name: String,
    pub description: String,
    pub content: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A template to store or replace.
#[derive(Debug, Clone)]
pub struct NewSystemPrompt {
    pub name: String,
    pub description: String,
    pub content: String,
}

/// What a template is bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BindingTarget {
    Proxy,
    Group,
}

impl BindingTarget {
    pub fn as_str(self) -> &'static str {
        match self {
            BindingTarget::Proxy => "proxy",
            BindingTarget::Group => "group",
        }
    }
}

/// A template bound to one proxy or group; the higher priority wins among
/// bindings of the same kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptBinding {
    pub template_id: String,
    pub target: BindingTarget,
    pub target_id: String,
    pub priority: i64,
}

#[derive(Debug, Clone, Default)]
pub struct AlertFilter {
    pub status: Option<AlertStatus>,
    /// This severity or worse.
    pub min_severity: Option<Severity>,
    pub proxy_id: Option<String>,
    pub rule: Option<String>,
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
    /// Alerts older than this id (ids sort like `created_at`); newest first.
    pub before_id: Option<String>,
    pub limit: u32,
}

/// A status change; applied only while the alert still has `from`.
#[derive(Debug, Clone)]
pub struct AlertChange {
    pub from: AlertStatus,
    pub to: AlertStatus,
    pub by: String,
    pub note: Option<String>,
}

#[async_trait]
pub trait Store: SpendStore + McpStore + McpScanStore + A2aStore + Send + Sync + 'static {
    fn backend(&self) -> Backend;
    /// Applies pending migrations.
    async fn migrate(&self) -> Result<()>;
    async fn ping(&self) -> Result<()>;
    async fn close(&self);

    async fn create_user(&self, user: NewUser, now: Timestamp) -> Result<User>;
    async fn user(&self, id: &str) -> Result<Option<User>>;
    /// The user and their password hash, for login.
    async fn user_with_hash(&self, username: &str) -> Result<Option<(User, String)>>;
    async fn list_users(&self) -> Result<Vec<User>>;
    async fn update_user(&self, id: &str, patch: UserPatch, now: Timestamp)
        -> Result<Option<User>>;
    async fn set_password(
        &self,
        id: &str,
        hash: &str,
        must_change: bool,
        now: Timestamp,
    ) -> Result<bool>;
    async fn delete_user(&self, id: &str) -> Result<bool>;
    /// Enabled users with the admin role.
    async fn count_active_admins(&self) -> Result<u64>;
    async fn record_login(&self, id: &str, now: Timestamp) -> Result<()>;

    async fn create_session(&self, session: NewSession, now: Timestamp) -> Result<()>;
    /// Whether the session exists, is not revoked and has not expired.
    async fn session_active(&self, id: &str, now: Timestamp) -> Result<bool>;
    async fn revoke_session(&self, id: &str, now: Timestamp) -> Result<()>;
    /// Revokes every session of a user except `keep`.
    async fn revoke_user_sessions(
        &self,
        user_id: &str,
        keep: Option<&str>,
        now: Timestamp,
    ) -> Result<u64>;

    async fn create_group(&self, name: &str, description: &str, now: Timestamp) -> Result<Group>;
    async fn group(&self, id: &str) -> Result<Option<Group>>;
    async fn list_groups(&self) -> Result<Vec<Group>>;
    async fn update_group(
        &self,
        id: &str,
        patch: GroupPatch,
        now: Timestamp,
    ) -> Result<Option<Group>>;
    /// Refused with `Conflict` while keys still belong to the group.
    async fn delete_group(&self, id: &str) -> Result<bool>;

    async fn create_api_key(&self, key: NewApiKey, now: Timestamp) -> Result<ApiKey>;
    async fn api_key(&self, id: &str) -> Result<Option<ApiKey>>;
    /// The key and its stored digest, by display prefix.
    async fn api_key_by_prefix(&self, prefix: &str) -> Result<Option<(ApiKey, String)>>;
    async fn list_api_keys(&self, group_id: Option<&str>) -> Result<Vec<ApiKey>>;
    async fn revoke_api_key(&self, id: &str, now: Timestamp) -> Result<Option<ApiKey>>;
    /// Replaces both of a key's limits.
    async fn set_api_key_rate_limits(&self, id: &str, limits: RateLimits)
        -> Result<Option<ApiKey>>;
    async fn touch_api_key(&self, id: &str, now: Timestamp) -> Result<()>;

    async fn create_credential(
        &self,
        credential: NewCredential,
        now: Timestamp,
    ) -> Result<Credential>;
    async fn credential(&self, id: &str) -> Result<Option<Credential>>;
    async fn list_credentials(&self) -> Result<Vec<Credential>>;
    async fn update_credential(
        &self,
        id: &str,
        patch: CredentialPatch,
        now: Timestamp,
    ) -> Result<Option<Credential>>;
    async fn delete_credential(&self, id: &str) -> Result<bool>;
    async fn sealed_credentials(&self) -> Result<Vec<SealedCredential>>;
    /// Replaces every sealed value in one transaction (master-key rotation).
    async fn reseal_credentials(
        &self,
        resealed: Vec<SealedCredential>,
        master_key_id: &str,
        now: Timestamp,
    ) -> Result<()>;

    async fn create_proxy(
        &self,
        spec: &ProxySpec,
        managed_by: ManagedBy,
        now: Timestamp,
    ) -> Result<Proxy>;
    async fn proxy(&self, id: &str) -> Result<Option<Proxy>>;
    async fn proxy_by_name(&self, name: &str) -> Result<Option<Proxy>>;
    async fn list_proxies(&self) -> Result<Vec<Proxy>>;
    async fn update_proxy(
        &self,
        id: &str,
        spec: &ProxySpec,
        now: Timestamp,
    ) -> Result<Option<Proxy>>;
    async fn delete_proxy(&self, id: &str) -> Result<bool>;

    /// Writes a batch of events in one transaction, with the alerts their findings
    /// raise at or above `alert_min` (none when `None`). Replayed events and their
    /// alerts are ignored. Returns the alerts raised by events new to the store.
    async fn insert_events(
        &self,
        events: &[ProxyEvent],
        alert_min: Option<Severity>,
    ) -> Result<Vec<Alert>>;
    /// Newest first.
    async fn list_events(&self, filter: &EventFilter) -> Result<Vec<ProxyEvent>>;

    /// Refused with `Conflict` when the name is taken.
    async fn create_policy(&self, policy: NewPolicy, now: Timestamp) -> Result<PolicyRecord>;
    async fn policy(&self, name: &str) -> Result<Option<PolicyRecord>>;
    /// By name.
    async fn list_policies(&self) -> Result<Vec<PolicyRecord>>;
    /// Replaces description, rule count and pack; `None` when there is no such pack.
    async fn update_policy(
        &self,
        policy: NewPolicy,
        now: Timestamp,
    ) -> Result<Option<PolicyRecord>>;
    async fn delete_policy(&self, name: &str) -> Result<bool>;

    /// Refused with `Conflict` when the name is taken.
    async fn create_system_prompt(
        &self,
        prompt: NewSystemPrompt,
        now: Timestamp,
    ) -> Result<SystemPromptRecord>;
    async fn system_prompt(&self, id: &str) -> Result<Option<SystemPromptRecord>>;
    /// By name.
    async fn list_system_prompts(&self) -> Result<Vec<SystemPromptRecord>>;
    /// Replaces name, description and content; `Conflict` when the new name is taken.
    async fn update_system_prompt(
        &self,
        id: &str,
        prompt: NewSystemPrompt,
        now: Timestamp,
    ) -> Result<Option<SystemPromptRecord>>;
    /// Deletes the template and its bindings.
    async fn delete_system_prompt(&self, id: &str) -> Result<bool>;
    /// Replaces every binding of a template in one transaction (`template_id` of
    /// each binding is ignored). Returns the bindings as stored.
    async fn set_prompt_bindings(
        &self,
        template_id: &str,
        bindings: &[PromptBinding],
    ) -> Result<Vec<PromptBinding>>;
    /// Every binding, or those of one template; by template, kind, priority (highest
    /// first), target.
    async fn list_prompt_bindings(&self, template_id: Option<&str>) -> Result<Vec<PromptBinding>>;

    async fn alert(&self, id: &str) -> Result<Option<Alert>>;
    /// Newest first.
    async fn list_alerts(&self, filter: &AlertFilter) -> Result<Vec<Alert>>;
    /// Applies the change if the alert still has `change.from`: `Ok(None)` when it
    /// does not exist, `Conflict` when its status moved meanwhile.
    async fn change_alert_status(
        &self,
        id: &str,
        change: AlertChange,
        now: Timestamp,
    ) -> Result<Option<Alert>>;

    async fn set_managed_by(
        &self,
        resource: Resource,
        id: &str,
        by: portcullis_core::model::ManagedBy,
    ) -> Result<()>;

    /// Appends to the hash chain; appends are serialised so the chain never forks.
    async fn append_audit(&self, draft: AuditDraft, now: Timestamp) -> Result<AuditEntry>;
    /// Newest first.
    async fn list_audit(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>>;
    /// Oldest first, ids above `after_id`, for verification.
    async fn audit_chain(&self, after_id: i64, limit: u32) -> Result<Vec<StoredAuditRow>>;
}

pub type DynStore = Arc<dyn Store>;
