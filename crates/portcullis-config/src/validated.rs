//! The configuration as the program uses it: parsed, checked, typed.

use crate::raw::RawConfig;
use portcullis_core::alert::Severity;
use portcullis_core::telemetry::LogFormat;
use portcullis_core::SecretString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub database: Database,
    pub redis_url: Option<SecretString>,
    pub redis_prefix: String,
    pub jwt_secret: Option<SecretString>,
    pub encryption_key: Option<SecretString>,
    pub admin_password: Option<SecretString>,
    /// Fills `{{organization}}` in system prompts; empty when unset.
    pub organization: String,
    pub log_format: LogFormat,
    pub log_level: String,
    pub auth: AuthConfig,
    pub limits: LimitsConfig,
    pub drain_timeout: Duration,
    pub alerts: AlertsConfig,
    /// Where the gateway may connect on an A2A agent's behalf (SSRF policy).
    pub a2a_network: portcullis_core::net::NetPolicy,
    /// Between scheduled A2A card refreshes; `None`: off.
    pub a2a_refresh: Option<Duration>,
    /// Silence allowed inside an A2A agent's stream.
    pub a2a_stream_idle: Duration,
    /// Resources declared in the file.
    pub declared: crate::declared::Declared,
}

#[derive(Debug, Clone)]
pub enum Database {
    /// The embedded default: `<data_dir>/portcullis.db`.
    Sqlite { path: PathBuf },
    /// The URL may hold a password, hence secret.
    Postgres { url: SecretString },
}

#[derive(Debug, Clone)]
pub struct AuthConfig {
    pub token_ttl: Duration,
    pub login_max_failures_per_user: u32,
    pub login_max_failures_per_addr: u32,
    pub login_window: Duration,
}

#[derive(Debug, Clone)]
pub struct AlertsConfig {
    /// Findings at or above this severity become alerts.
    pub min_severity: Severity,
}

#[derive(Debug, Clone)]
pub struct LimitsConfig {
    pub admin_body_bytes: usize,
}

fn positive(errors: &mut Vec<String>, key: &str, value: u64, max: u64) -> u64 {
    if value == 0 || value > max {
        errors.push(format!("{key}: must be between 1 and {max}, got {value}"));
    }
    value
}

pub(crate) fn validate(raw: RawConfig, env: &dyn crate::EnvSource) -> Result<Config, Vec<String>> {
    let mut errors = Vec::new();
    let declared =
        crate::declared::resolve(&raw.groups, &raw.credentials, &raw.keys, &raw.proxies, env)
            .unwrap_or_else(|mut e| {
                errors.append(&mut e);
                Default::default()
            });

    let listen = raw.listen.parse::<SocketAddr>().unwrap_or_else(|_| {
        errors.push(format!(
            "listen: {:?} is not an address like 127.0.0.1:8080",
            raw.listen
        ));
        SocketAddr::from(([127, 0, 0, 1], 8080))
    });
    if raw.data_dir.trim().is_empty() {
        errors.push("data_dir: must not be empty".into());
    }
    let data_dir = PathBuf::from(&raw.data_dir);
    let database = match raw.database_url.as_deref().map(str::trim) {
        None | Some("") => Database::Sqlite {
            path: data_dir.join("portcullis.db"),
        },
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            Database::Postgres {
                url: SecretString::new(url),
            }
        }
        Some(_) => {
            errors.push("database_url: must start with postgres:// or postgresql:// (leave unset for the embedded SQLite)".into());
            Database::Sqlite {
                path: data_dir.join("portcullis.db"),
            }
        }
    };
    let prefix = &raw.redis_prefix;
    if prefix.is_empty()
        || prefix.len() > 64
        || !prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c))
    {
        errors.push("redis_prefix: 1-64 characters of letters, digits and - _ . :".into());
    }
    if let Some(url) = raw.redis_url.as_deref() {
        if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
            errors.push("redis_url: must start with redis:// or rediss://".into());
        }
    }
    if let Some(key) = raw.encryption_key.as_deref() {
        if let Err(e) = portcullis_core::MasterKey::parse(key) {
            errors.push(format!("encryption_key: {e}"));
        }
    }
    if let Some(secret) = raw.jwt_secret.as_deref() {
        if secret.len() < 32 {
            errors.push("jwt_secret: must be at least 32 characters".into());
        }
    }
    if let Some(pw) = raw.admin_password.as_deref() {
        if let Err(e) = portcullis_core::password::check_strength(pw) {
            errors.push(format!("admin_password: {e}"));
        }
    }
    let organization = raw.organization.as_deref().unwrap_or("").trim().to_owned();
    if organization.chars().count() > 128 || organization.chars().any(char::is_control) {
        errors.push("organization: at most 128 characters, on one line".into());
    }
    let log_format = match raw.log_format.as_str() {
        "text" => LogFormat::Text,
        "json" => LogFormat::Json,
        other => {
            errors.push(format!("log_format: {other:?} is not one of text, json"));
            LogFormat::Text
        }
    };
    let day = 24 * 3600;
    let auth = AuthConfig {
        token_ttl: Duration::from_secs(positive(
            &mut errors,
            "auth.token_ttl_secs",
            raw.auth.token_ttl_secs,
            day,
        )),
        login_max_failures_per_user: positive(
            &mut errors,
            "auth.login_max_failures_per_user",
            raw.auth.login_max_failures_per_user,
            1000,
        ) as u32,
        login_max_failures_per_addr: positive(
            &mut errors,
            "auth.login_max_failures_per_addr",
            raw.auth.login_max_failures_per_addr,
            100_000,
        ) as u32,
        login_window: Duration::from_secs(positive(
            &mut errors,
            "auth.login_window_secs",
            raw.auth.login_window_secs,
            day,
        )),
    };
    let limits = LimitsConfig {
        admin_body_bytes: positive(
            &mut errors,
            "limits.admin_body_bytes",
            raw.limits.admin_body_bytes,
            64 * 1024 * 1024,
        ) as usize,
    };
    let drain_timeout = Duration::from_secs(positive(
        &mut errors,
        "shutdown.drain_timeout_secs",
        raw.shutdown.drain_timeout_secs,
        3600,
    ));
    let alerts = AlertsConfig {
        min_severity: raw.alerts.min_severity.parse().unwrap_or_else(|e| {
            errors.push(format!("alerts.min_severity: {e}"));
            Severity::High
        }),
    };
    let mut a2a_network = portcullis_core::net::NetPolicy {
        allow_private: raw.a2a.allow_private_networks,
        allowed: Vec::new(),
    };
    let a2a_refresh = match raw.a2a.refresh_interval_secs {
        0 => None,
        secs => Some(Duration::from_secs(positive(
            &mut errors,
            "a2a.refresh_interval_secs",
            secs,
            7 * day,
        ))),
    };
    let a2a_stream_idle = Duration::from_secs(positive(
        &mut errors,
        "a2a.stream_idle_timeout_secs",
        raw.a2a.stream_idle_timeout_secs,
        day,
    ));
    for (i, block) in raw.a2a.allowed_networks.iter().enumerate() {
        match block.parse() {
            Ok(cidr) => a2a_network.allowed.push(cidr),
            Err(e) => errors.push(format!("a2a.allowed_networks[{i}]: {e}")),
        }
    }

    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Config {
        listen,
        data_dir,
        database,
        redis_url: raw.redis_url.map(SecretString::new),
        redis_prefix: raw.redis_prefix,
        jwt_secret: raw.jwt_secret.map(SecretString::new),
        encryption_key: raw.encryption_key.map(SecretString::new),
        admin_password: raw.admin_password.map(SecretString::new),
        organization,
        log_format,
        log_level: raw.log_level,
        auth,
        limits,
        drain_timeout,
        alerts,
        a2a_network,
        a2a_refresh,
        a2a_stream_idle,
        declared,
    })
}
