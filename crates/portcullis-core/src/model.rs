//! Records the control plane manages. Secrets never appear in these types: password
//! and key digests and sealed credentials stay inside the store.

use crate::Role;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::str::FromStr;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct User {
    pub id: String,
    pub username: String,
    pub role: Role,
    pub disabled: bool,
    /// Set for a generated first password: the UI asks to change it.
    pub must_change_password: bool,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_login_at: Option<Timestamp>,
}

/// Who owns a record's definition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ManagedBy {
    Api,
    /// Declared in the configuration file; changed only there.
    File,
}

impl ManagedBy {
    pub fn as_str(self) -> &'static str {
        match self {
            ManagedBy::Api => "api",
            ManagedBy::File => "file",
        }
    }
}

/// Requests and tokens (input + output) per minute; `None` means no limit. Token
/// buckets: the full limit may be used in a burst, and it refills continuously.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(deny_unknown_fields)]
pub struct RateLimits {
    /// Requests per minute.
    #[serde(default)]
    pub rpm: Option<u64>,
    /// Tokens (input + output) per minute.
    #[serde(default)]
    pub tpm: Option<u64>,
}

impl RateLimits {
    /// Largest limit accepted: far above any real use, and exact in an `f64`.
    pub const MAX: u64 = 1_000_000_000_000;

    pub fn is_unlimited(&self) -> bool {
        self.rpm.is_none() && self.tpm.is_none()
    }

    /// What is wrong with these limits, as `field: problem` lines.
    pub fn problems(&self) -> Vec<String> {
        [("rpm", self.rpm), ("tpm", self.tpm)]
            .into_iter()
            .filter_map(|(name, v)| match v {
                Some(n) if n == 0 || n > Self::MAX => Some(format!(
                    "{name}: must be a whole number between 1 and {}",
                    Self::MAX
                )),
                _ => None,
            })
            .collect()
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Group {
    pub id: String,
    pub name: String,
    pub description: String,
    pub rate_limits: RateLimits,
    /// MCP tool names (as clients see them; `*` matches any run of characters)
    /// the group's keys may list and call on every MCP proxy; empty: all.
    pub mcp_tool_allow: Vec<String>,
    /// MCP tool names (or globs) hidden from and refused to the group's keys;
    /// wins over `mcp_tool_allow`.
    pub mcp_tool_deny: Vec<String>,
    pub managed_by: ManagedBy,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

/// What a key may be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum KeyScope {
    /// Call LLM proxies.
    Llm,
    /// Call MCP proxies.
    Mcp,
    /// Call A2A proxies.
    A2a,
    /// Call the admin API with the admin role.
    Admin,
    /// Call the admin API with the read-only role.
    AdminRead,
}

impl KeyScope {
    /// Scopes a key gets when none are asked for: the data plane only.
    pub const DEFAULT: [KeyScope; 3] = [KeyScope::Llm, KeyScope::Mcp, KeyScope::A2a];

    pub fn as_str(self) -> &'static str {
        match self {
            KeyScope::Llm => "llm",
            KeyScope::Mcp => "mcp",
            KeyScope::A2a => "a2a",
            KeyScope::Admin => "admin",
            KeyScope::AdminRead => "admin_read",
        }
    }

    /// The admin role this scope grants, if any.
    pub fn admin_role(self) -> Option<Role> {
        match self {
            KeyScope::Admin => Some(Role::Admin),
            KeyScope::AdminRead => Some(Role::ReadOnly),
            KeyScope::Llm | KeyScope::Mcp | KeyScope::A2a => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown scope {0:?} (expected llm, mcp, a2a, admin or admin_read)")]
pub struct UnknownScope(pub String);

impl FromStr for KeyScope {
    type Err = UnknownScope;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "llm" => Ok(KeyScope::Llm),
            "mcp" => Ok(KeyScope::Mcp),
            "a2a" => Ok(KeyScope::A2a),
            "admin" => Ok(KeyScope::Admin),
            "admin_read" => Ok(KeyScope::AdminRead),
            other => Err(UnknownScope(other.to_owned())),
        }
    }
}

/// The highest admin role a set of scopes grants.
pub fn admin_role_of(scopes: &[KeyScope]) -> Option<Role> {
    scopes.iter().filter_map(|s| s.admin_role()).max()
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ApiKey {
    pub id: String,
    pub name: String,
    pub group_id: String,
    /// `pcx_` and the 8-character lookup id; enough to recognise a key, not to use it.
    pub prefix: String,
    pub scopes: Vec<KeyScope>,
    /// The key's own limits; its group's apply too (the tighter one decides).
    pub rate_limits: RateLimits,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<Timestamp>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub revoked_at: Option<Timestamp>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_used_at: Option<Timestamp>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    pub created_by: String,
    pub managed_by: ManagedBy,
}

impl ApiKey {
    pub fn is_usable_at(&self, now: Timestamp) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|exp| exp > now)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    Openai,
    Anthropic,
    OpenaiCompatible,
}

impl ProviderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Openai => "openai",
            ProviderKind::Anthropic => "anthropic",
            ProviderKind::OpenaiCompatible => "openai_compatible",
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown provider {0:?} (expected openai, anthropic or openai_compatible)")]
pub struct UnknownProvider(pub String);

impl FromStr for ProviderKind {
    type Err = UnknownProvider;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "openai" => Ok(ProviderKind::Openai),
            "anthropic" => Ok(ProviderKind::Anthropic),
            "openai_compatible" | "openai-compatible" => Ok(ProviderKind::OpenaiCompatible),
            other => Err(UnknownProvider(other.to_owned())),
        }
    }
}

/// A provider credential as the API shows it: never the secret, only a hint.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Credential {
    pub id: String,
    pub name: String,
    pub provider: ProviderKind,
    /// Masked form such as `sk-...abcd`.
    pub hint: String,
    /// Fingerprint of the master key that sealed it.
    pub master_key_id: String,
    pub managed_by: ManagedBy,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_scope_grants_the_highest_role() {
        assert_eq!(admin_role_of(&KeyScope::DEFAULT), None);
        assert_eq!(
            admin_role_of(&[KeyScope::AdminRead, KeyScope::Admin]),
            Some(Role::Admin)
        );
        assert_eq!(
            admin_role_of(&[KeyScope::Llm, KeyScope::AdminRead]),
            Some(Role::ReadOnly)
        );
    }

    #[test]
    fn rate_limits_are_positive_and_bounded() {
        let ok = RateLimits {
            rpm: Some(1),
            tpm: Some(RateLimits::MAX),
        };
        assert!(ok.problems().is_empty());
        assert!(!ok.is_unlimited());
        assert!(RateLimits::default().is_unlimited());
        let bad = RateLimits {
            rpm: Some(0),
            tpm: Some(RateLimits::MAX + 1),
        };
        let problems = bad.problems();
        assert_eq!(problems.len(), 2);
        assert!(problems[0].starts_with("rpm: "), "{problems:?}");
        let parsed: Result<RateLimits, _> = serde_json::from_str(r#"{"rpm": 5, "burst": 1}"#);
        assert!(parsed.is_err(), "unknown fields are refused");
    }

    #[test]
    fn expiry_and_revocation() {
        let now = Timestamp::from_second(1_000).unwrap_or(Timestamp::UNIX_EPOCH);
        let mut key = ApiKey {
            id: "k".into(),
            name: "n".into(),
            group_id: "g".into(),
            prefix: "pcx_abcdefgh".into(),
            scopes: vec![KeyScope::Llm],
            rate_limits: RateLimits::default(),
            expires_at: None,
            revoked_at: None,
            last_used_at: None,
            created_at: now,
            created_by: "admin".into(),
            managed_by: ManagedBy::Api,
        };
        assert!(key.is_usable_at(now));
        key.expires_at = Some(now);
        assert!(!key.is_usable_at(now));
        key.expires_at = None;
        key.revoked_at = Some(now);
        assert!(!key.is_usable_at(now));
    }
}
