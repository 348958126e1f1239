//! The configuration as written: plain serde types, unknown fields refused.
//! Defaults here are the documented defaults (docs/configuration.md).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawConfig {
    /// Control-plane address (admin API, UI, metrics, `/p/{proxy}`).
    pub listen: String,
    /// Where the SQLite database and generated secrets live.
    pub data_dir: String,
    /// `postgres://...` to use PostgreSQL instead of the embedded SQLite.
    pub database_url: Option<String>,
    /// `redis://...` for shared counters across replicas.
    pub redis_url: Option<String>,
    /// Prefix of every Redis key, so several deployments can share one Redis.
    pub redis_prefix: String,
    /// HMAC secret for admin session tokens; generated into the data dir if unset.
    pub jwt_secret: Option<String>,
    /// 32-byte master key (hex or base64); generated into the data dir if unset.
    pub encryption_key: Option<String>,
    /// Password of the first `admin` user; random and printed once if unset.
    pub admin_password: Option<String>,
    /// Organization name, for the `{{organization}}` variable of system prompts.
    pub organization: Option<String>,
    /// `text` or `json`.
    pub log_format: String,
    /// Level or filter directives, e.g. `info` or `info,portcullis_admin=debug`.
    pub log_level: String,
    pub auth: RawAuth,
    pub limits: RawLimits,
    pub shutdown: RawShutdown,
    pub alerts: RawAlerts,
    pub a2a: RawA2a,
    /// Declared resources (applied at start and on reload; file-managed).
    pub groups: Vec<crate::declared::RawGroup>,
    pub credentials: Vec<crate::declared::RawCredential>,
    pub keys: Vec<crate::declared::RawKey>,
    pub proxies: Vec<crate::declared::RawProxy>,
}

impl Default for RawConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            data_dir: "./data".into(),
            database_url: None,
            redis_url: None,
            redis_prefix: "portcullis".into(),
            jwt_secret: None,
            encryption_key: None,
            admin_password: None,
            organization: None,
            log_format: "text".into(),
            log_level: "info".into(),
            auth: RawAuth::default(),
            limits: RawLimits::default(),
            shutdown: RawShutdown::default(),
            alerts: RawAlerts::default(),
            a2a: RawA2a::default(),
            groups: Vec::new(),
            credentials: Vec::new(),
            keys: Vec::new(),
            proxies: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawAuth {
    /// Lifetime of an admin session token.
    pub token_ttl_secs: u64,
    /// Failed logins allowed per user name within the window.
    pub login_max_failures_per_user: u64,
    /// Failed logins allowed per client address within the window.
    pub login_max_failures_per_addr: u64,
    pub login_window_secs: u64,
}

impl Default for RawAuth {
    fn default() -> Self {
        Self {
            token_ttl_secs: 3600,
            login_max_failures_per_user: 5,
            login_max_failures_per_addr: 20,
            login_window_secs: 900,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawLimits {
    /// Largest request body the admin API accepts.
    pub admin_body_bytes: u64,
}

impl Default for RawLimits {
    fn default() -> Self {
        Self {
            admin_body_bytes: 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawShutdown {
    /// How long in-flight requests may finish after SIGTERM.
    pub drain_timeout_secs: u64,
}

impl Default for RawShutdown {
    fn default() -> Self {
        Self {
            drain_timeout_secs: 30,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawAlerts {
    /// Findings at or above this severity raise an alert: info, low, medium, high
    /// or critical.
    pub min_severity: String,
}

impl Default for RawAlerts {
    fn default() -> Self {
        Self {
            min_severity: "high".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawA2a {
    /// Let the gateway reach agents (cards and endpoints) on loopback and private
    /// addresses (RFC 1918, CGNAT, IPv6 ULA). Off: only public addresses.
    pub allow_private_networks: bool,
    /// Address blocks (CIDR) the gateway may reach whatever their class, e.g.
    /// `10.20.0.0/16`. File only.
    pub allowed_networks: Vec<String>,
    /// Seconds between scheduled card refreshes of agents registered by URL;
    /// 0 turns them off.
    pub refresh_interval_secs: u64,
    /// Seconds of silence inside an agent's stream before the gateway ends it
    /// with an error event.
    pub stream_idle_timeout_secs: u64,
}

impl Default for RawA2a {
    fn default() -> Self {
        Self {
            allow_private_networks: false,
            allowed_networks: Vec::new(),
            refresh_interval_secs: 3600,
            stream_idle_timeout_secs: 300,
        }
    }
}
