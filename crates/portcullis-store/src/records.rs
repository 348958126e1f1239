//! Rows as stored, and their conversion to domain records. The column types are
//! ones both back ends decode alike (TEXT, 64-bit integers, booleans).

use crate::{Result, StoreError};
use jiff::Timestamp;
use portcullis_core::audit::{AuditDraft, AuditEntry, StoredAuditRow};
use portcullis_core::model::{ApiKey, Credential, Group, KeyScope, ManagedBy, RateLimits, User};
use portcullis_core::proxy::{AuthMode, Decision, Proxy, ProxyEvent, ProxyKind, ProxySpec};

pub(crate) fn ms(ts: Timestamp) -> i64 {
    ts.as_millisecond()
}

pub(crate) fn ts(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH)
}

pub(crate) fn scopes_text(scopes: &[KeyScope]) -> String {
    scopes
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

#[derive(sqlx::FromRow)]
pub(crate) struct UserRow {
    id: String,
    username: String,
    role: String,
    disabled: bool,
    must_change_password: bool,
    created_at: i64,
    updated_at: i64,
    last_login_at: Option<i64>,
}

impl TryFrom<UserRow> for User {
    type Error = StoreError;
    fn try_from(r: UserRow) -> Result<Self> {
        Ok(User {
            role: r
                .role
                .parse()
                .map_err(|e| StoreError::Corrupt(format!("user {}: {e}", r.id)))?,
            id: r.id,
            username: r.username,
            disabled: r.disabled,
            must_change_password: r.must_change_password,
            created_at: ts(r.created_at),
            updated_at: ts(r.updated_at),
            last_login_at: r.last_login_at.map(ts),
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct UserHashRow {
    #[sqlx(flatten)]
    pub user: UserRow,
    pub password_hash: String,
}

#[derive(sqlx::FromRow)]
pub(crate) struct GroupRow {
    id: String,
    name: String,
    description: String,
    rpm_limit: Option<i64>,
    tpm_limit: Option<i64>,
    mcp_tool_allow: String,
    mcp_tool_deny: String,
    managed_by: String,
    created_at: i64,
    updated_at: i64,
}

/// Limits as stored: NULL (or a value that cannot be a limit) is no limit.
pub(crate) fn limits(rpm: Option<i64>, tpm: Option<i64>) -> RateLimits {
    let positive = |v: Option<i64>| v.and_then(|n| u64::try_from(n).ok()).filter(|n| *n > 0);
    RateLimits {
        rpm: positive(rpm),
        tpm: positive(tpm),
    }
}

/// A limit as bound: limits are validated to at most `RateLimits::MAX`.
pub(crate) fn limit_col(v: Option<u64>) -> Option<i64> {
    v.map(|n| i64::try_from(n).unwrap_or(i64::MAX))
}

impl From<GroupRow> for Group {
    fn from(r: GroupRow) -> Self {
        Group {
            rate_limits: limits(r.rpm_limit, r.tpm_limit),
            // Written only from validated lists; an unreadable one denies every tool.
            mcp_tool_allow: serde_json::from_str(&r.mcp_tool_allow)
                .unwrap_or_else(|_| vec![String::new()]),
            mcp_tool_deny: serde_json::from_str(&r.mcp_tool_deny)
                .unwrap_or_else(|_| vec!["*".to_owned()]),
            id: r.id,
            name: r.name,
            description: r.description,
            managed_by: managed(&r.managed_by),
            created_at: ts(r.created_at),
            updated_at: ts(r.updated_at),
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct ApiKeyRow {
    id: String,
    name: String,
    group_id: String,
    prefix: String,
    scopes: String,
    rpm_limit: Option<i64>,
    tpm_limit: Option<i64>,
    expires_at: Option<i64>,
    revoked_at: Option<i64>,
    last_used_at: Option<i64>,
    created_at: i64,
    created_by: String,
    managed_by: String,
}

impl TryFrom<ApiKeyRow> for ApiKey {
    type Error = StoreError;
    fn try_from(r: ApiKeyRow) -> Result<Self> {
        let scopes = r
            .scopes
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::parse)
            .collect::<Result<Vec<KeyScope>, _>>()
            .map_err(|e| StoreError::Corrupt(format!("api key {}: {e}", r.id)))?;
        Ok(ApiKey {
            id: r.id,
            name: r.name,
            group_id: r.group_id,
            prefix: r.prefix,
            scopes,
            rate_limits: limits(r.rpm_limit, r.tpm_limit),
            expires_at: r.expires_at.map(ts),
            revoked_at: r.revoked_at.map(ts),
            last_used_at: r.last_used_at.map(ts),
            created_at: ts(r.created_at),
            created_by: r.created_by,
            managed_by: managed(&r.managed_by),
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct ApiKeyHashRow {
    #[sqlx(flatten)]
    pub key: ApiKeyRow,
    pub key_hash: String,
}

#[derive(sqlx::FromRow)]
pub(crate) struct CredentialRow {
    id: String,
    name: String,
    provider: String,
    hint: String,
    master_key_id: String,
    managed_by: String,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<CredentialRow> for Credential {
    type Error = StoreError;
    fn try_from(r: CredentialRow) -> Result<Self> {
        Ok(Credential {
            provider: r
                .provider
                .parse()
                .map_err(|e| StoreError::Corrupt(format!("credential {}: {e}", r.id)))?,
            id: r.id,
            name: r.name,
            hint: r.hint,
            master_key_id: r.master_key_id,
            managed_by: managed(&r.managed_by),
            created_at: ts(r.created_at),
            updated_at: ts(r.updated_at),
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct AuditRow {
    id: i64,
    at: i64,
    actor: String,
    action: String,
    target: String,
    details: String,
    client_addr: Option<String>,
    prev_hash: String,
    hash: String,
}

impl From<AuditRow> for AuditEntry {
    fn from(r: AuditRow) -> Self {
        AuditEntry {
            id: r.id,
            at: ts(r.at),
            details: serde_json::from_str(&r.details)
                .unwrap_or(serde_json::Value::String(r.details)),
            actor: r.actor,
            action: r.action,
            target: r.target,
            client_addr: r.client_addr,
            prev_hash: r.prev_hash,
            hash: r.hash,
        }
    }
}

impl From<AuditRow> for StoredAuditRow {
    fn from(r: AuditRow) -> Self {
        StoredAuditRow {
            id: r.id,
            at_ms: r.at,
            draft: AuditDraft {
                actor: r.actor,
                action: r.action,
                target: r.target,
                details: r.details,
                client_addr: r.client_addr,
            },
            prev_hash: r.prev_hash,
            hash: r.hash,
        }
    }
}

/// Maps unique and foreign-key violations to a readable conflict.
pub(crate) fn conflict(what: &str) -> impl Fn(sqlx::Error) -> StoreError + '_ {
    move |e| match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Conflict(format!("{what} already exists"))
        }
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => StoreError::Conflict(
            format!("{what} refers to a record that does not exist, or is still in use"),
        ),
        _ => StoreError::Database(e),
    }
}

fn enum_from<T: serde::de::DeserializeOwned>(what: &str, id: &str, text: &str) -> Result<T> {
    serde_json::from_value(serde_json::Value::String(text.to_owned()))
        .map_err(|_| StoreError::Corrupt(format!("{what} {id}: unknown value {text:?}")))
}

pub(crate) fn enum_text<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct ProxyRow {
    id: String,
    name: String,
    kind: String,
    provider: String,
    upstream_url: String,
    credential_id: Option<String>,
    listen_port: Option<i64>,
    auth_mode: String,
    auto_start: bool,
    connect_timeout_ms: i64,
    first_byte_timeout_ms: i64,
    idle_timeout_ms: i64,
    max_body_bytes: i64,
    policies: String,
    mcp_auto_approve: bool,
    upstream_command: Option<String>,
    upstream_args: String,
    upstream_env: String,
    mcp_servers: String,
    mcp_separator: Option<String>,
    mcp_prefix_mode: Option<String>,
    mcp_tool_allow: String,
    mcp_tool_deny: String,
    mcp_tool_rate_limits: String,
    mcp_tool_labels: String,
    mcp_flow_rules: Option<String>,
    managed_by: String,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<ProxyRow> for Proxy {
    type Error = StoreError;
    fn try_from(r: ProxyRow) -> Result<Self> {
        let id = r.id.clone();
        let spec = ProxySpec {
            name: r.name,
            kind: enum_from::<ProxyKind>("proxy", &id, &r.kind)?,
            provider: r
                .provider
                .parse()
                .map_err(|e| StoreError::Corrupt(format!("proxy {id}: {e}")))?,
            upstream_url: r.upstream_url,
            credential_id: r.credential_id,
            listen_port: r.listen_port.and_then(|p| u16::try_from(p).ok()),
            auth_mode: enum_from::<AuthMode>("proxy", &id, &r.auth_mode)?,
            auto_start: r.auto_start,
            connect_timeout_ms: r.connect_timeout_ms.max(0) as u64,
            first_byte_timeout_ms: r.first_byte_timeout_ms.max(0) as u64,
            idle_timeout_ms: r.idle_timeout_ms.max(0) as u64,
            max_body_bytes: r.max_body_bytes.max(0) as u64,
            policies: serde_json::from_str(&r.policies)
                .map_err(|_| StoreError::Corrupt(format!("proxy {id}: policies")))?,
            mcp_auto_approve: r.mcp_auto_approve,
            upstream_command: r.upstream_command,
            upstream_args: serde_json::from_str(&r.upstream_args)
                .map_err(|_| StoreError::Corrupt(format!("proxy {id}: upstream_args")))?,
            upstream_env: serde_json::from_str(&r.upstream_env)
                .map_err(|_| StoreError::Corrupt(format!("proxy {id}: upstream_env")))?,
            mcp_servers: serde_json::from_str(&r.mcp_servers)
                .map_err(|_| StoreError::Corrupt(format!("proxy {id}: mcp_servers")))?,
            mcp_separator: r.mcp_separator,
            mcp_prefix_mode: r.mcp_prefix_mode,
            mcp_tool_allow: serde_json::from_str(&r.mcp_tool_allow)
                .map_err(|_| StoreError::Corrupt(format!("proxy {id}: mcp_tool_allow")))?,
            mcp_tool_deny: serde_json::from_str(&r.mcp_tool_deny)
                .map_err(|_| StoreError::Corrupt(format!("proxy {id}: mcp_tool_deny")))?,
            mcp_tool_rate_limits: serde_json::from_str(&r.mcp_tool_rate_limits)
                .map_err(|_| StoreError::Corrupt(format!("proxy {id}: mcp_tool_rate_limits")))?,
            mcp_tool_labels: serde_json::from_str(&r.mcp_tool_labels)
                .map_err(|_| StoreError::Corrupt(format!("proxy {id}: mcp_tool_labels")))?,
            mcp_flow_rules: r
                .mcp_flow_rules
                .map(|text| serde_json::from_str(&text))
                .transpose()
                .map_err(|_| StoreError::Corrupt(format!("proxy {id}: mcp_flow_rules")))?,
        };
        Ok(Proxy {
            id: r.id,
            spec,
            managed_by: enum_from::<ManagedBy>("proxy", &id, &r.managed_by)?,
            created_at: ts(r.created_at),
            updated_at: ts(r.updated_at),
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct EventRow {
    id: String,
    at: i64,
    proxy_id: String,
    proxy_name: String,
    endpoint: String,
    key_id: Option<String>,
    group_id: Option<String>,
    end_user: Option<String>,
    model: Option<String>,
    status: i64,
    decision: String,
    error: Option<String>,
    stream: bool,
    latency_us: i64,
    ttft_us: Option<i64>,
    overhead_us: i64,
    input_tokens: i64,
    output_tokens: i64,
    cached_tokens: i64,
    request_bytes: i64,
    response_bytes: i64,
    findings: String,
    cost_usd: Option<f64>,
}

fn unsigned(v: i64) -> u64 {
    v.max(0) as u64
}

impl TryFrom<EventRow> for ProxyEvent {
    type Error = StoreError;
    fn try_from(r: EventRow) -> Result<Self> {
        let decision = enum_from::<Decision>("event", &r.id, &r.decision)?;
        Ok(ProxyEvent {
            at: ts(r.at),
            proxy_id: r.proxy_id,
            proxy_name: r.proxy_name,
            endpoint: r.endpoint,
            key_id: r.key_id,
            group_id: r.group_id,
            end_user: r.end_user,
            model: r.model,
            status: u16::try_from(r.status).unwrap_or(0),
            decision,
            error: r.error,
            stream: r.stream,
            latency_us: unsigned(r.latency_us),
            ttft_us: r.ttft_us.map(unsigned),
            overhead_us: unsigned(r.overhead_us),
            input_tokens: unsigned(r.input_tokens),
            output_tokens: unsigned(r.output_tokens),
            cached_tokens: unsigned(r.cached_tokens),
            request_bytes: unsigned(r.request_bytes),
            response_bytes: unsigned(r.response_bytes),
            findings: serde_json::from_str(&r.findings).unwrap_or(serde_json::Value::Array(vec![])),
            cost_usd: r.cost_usd,
            id: r.id,
        })
    }
}

pub(crate) fn signed(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Unknown owners read as the API's, which keeps them editable rather than stuck.
pub(crate) fn managed(text: &str) -> ManagedBy {
    match text {
        "file" => ManagedBy::File,
        _ => ManagedBy::Api,
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct PolicyRow {
    name: String,
    description: String,
    rule_count: i64,
    pack: String,
    created_at: i64,
    updated_at: i64,
}

impl From<PolicyRow> for crate::PolicyRecord {
    fn from(r: PolicyRow) -> Self {
        crate::PolicyRecord {
            name: r.name,
            description: r.description,
            rule_count: u32::try_from(r.rule_count).unwrap_or(0),
            pack: r.pack,
            created_at: ts(r.created_at),
            updated_at: ts(r.updated_at),
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct AlertRow {
    id: String,
    created_at: i64,
    event_id: String,
    proxy_id: String,
    proxy_name: String,
    rule: String,
    category: String,
    severity: String,
    action: String,
    location: String,
    key_id: Option<String>,
    group_id: Option<String>,
    status: String,
    status_changed_at: Option<i64>,
    status_changed_by: Option<String>,
    note: Option<String>,
}

impl TryFrom<AlertRow> for portcullis_core::alert::Alert {
    type Error = StoreError;
    fn try_from(r: AlertRow) -> Result<Self> {
        let corrupt = |e: String| StoreError::Corrupt(format!("alert {}: {e}", r.id));
        Ok(portcullis_core::alert::Alert {
            severity: r.severity.parse().map_err(corrupt)?,
            status: r.status.parse().map_err(corrupt)?,
            id: r.id,
            created_at: ts(r.created_at),
            event_id: r.event_id,
            proxy_id: r.proxy_id,
            proxy_name: r.proxy_name,
            rule: r.rule,
            category: r.category,
            action: r.action,
            location: r.location,
            key_id: r.key_id,
            group_id: r.group_id,
            status_changed_at: r.status_changed_at.map(ts),
            status_changed_by: r.status_changed_by,
            note: r.note,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct SystemPromptRow {
    id: String,
    name: String,
    description: String,
    content: String,
    created_at: i64,
    updated_at: i64,
}

impl From<SystemPromptRow> for crate::SystemPromptRecord {
    fn from(r: SystemPromptRow) -> Self {
        crate::SystemPromptRecord {
            id: r.id,
            name: r.name,
            description: r.description,
            content: r.content,
            created_at: ts(r.created_at),
            updated_at: ts(r.updated_at),
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct PromptBindingRow {
    template_id: String,
    target_kind: String,
    target_id: String,
    priority: i64,
}

impl TryFrom<PromptBindingRow> for crate::PromptBinding {
    type Error = StoreError;
    fn try_from(r: PromptBindingRow) -> Result<Self> {
        let target = match r.target_kind.as_str() {
            "proxy" => crate::BindingTarget::Proxy,
            "group" => crate::BindingTarget::Group,
            other => {
                return Err(StoreError::Corrupt(format!(
                    "binding of {}: unknown target kind {other:?}",
                    r.template_id
                )))
            }
        };
        Ok(crate::PromptBinding {
            template_id: r.template_id,
            target,
            target_id: r.target_id,
            priority: r.priority,
        })
    }
}
