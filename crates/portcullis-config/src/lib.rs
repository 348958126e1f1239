//! Configuration: an optional YAML file, then `PORTCULLIS_*` environment variables,
//! then command-line flags, each overriding the one before.
//!
//! Every scalar key has a variable: its path joined with `_`, upper-cased, behind
//! `PORTCULLIS_` (`auth.token_ttl_secs` is `PORTCULLIS_AUTH_TOKEN_TTL_SECS`). Unknown
//! keys, unknown `PORTCULLIS_*` variables and invalid values are refused, naming the
//! key. The environment is read through [`EnvSource`] so tests never touch the
//! process environment.

mod declared;
mod env;
mod raw;
mod validated;

pub use declared::{Declared, DeclaredCredential, DeclaredKey, DeclaredProxy, RawGroup};
pub use env::{all_variables, EnvSource, ProcessEnv, VarList};
pub use raw::RawConfig;
pub use validated::{AlertsConfig, AuthConfig, Config, Database, LimitsConfig};

use serde_json::Value;
use std::path::Path;

/// Variables read by the binary itself rather than mapped onto a key.
pub const RESERVED_VARS: &[&str] = &["PORTCULLIS_CONFIG"];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid YAML: {message}")]
    Yaml { path: String, message: String },
    #[error("invalid configuration:\n  - {}", .0.join("\n  - "))]
    Invalid(Vec<String>),
}

/// Values given on the command line; they win over file and environment.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub listen: Option<String>,
    pub data_dir: Option<String>,
    pub log_format: Option<String>,
}

/// Reads, layers and validates the configuration.
pub fn load(
    file: Option<&Path>,
    env: &dyn EnvSource,
    overrides: &Overrides,
) -> Result<Config, ConfigError> {
    let mut tree = match file {
        Some(path) => read_file(path)?,
        None => Value::Object(Default::default()),
    };
    if tree.is_null() {
        tree = Value::Object(Default::default());
    }
    let mut errors = env::apply(&mut tree, env);
    apply_overrides(&mut tree, overrides);
    if !errors.is_empty() {
        return Err(ConfigError::Invalid(errors));
    }
    let raw: RawConfig = serde_path_to_error::deserialize(tree).map_err(|e| {
        let path = e.path().to_string();
        let message = e.inner().to_string();
        ConfigError::Invalid(vec![if path == "." {
            message
        } else {
            format!("{path}: {message}")
        }])
    })?;
    validated::validate(raw, env).map_err(|mut e| {
        errors.append(&mut e);
        ConfigError::Invalid(errors)
    })
}

fn read_file(path: &Path) -> Result<Value, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.display().to_string(),
        source,
    })?;
    serde_yaml_ng::from_str(&text).map_err(|e| ConfigError::Yaml {
        path: path.display().to_string(),
        message: e.to_string(),
    })
}

fn apply_overrides(tree: &mut Value, overrides: &Overrides) {
    let Value::Object(map) = tree else { return };
    for (key, value) in [
        ("listen", &overrides.listen),
        ("data_dir", &overrides.data_dir),
        ("log_format", &overrides.log_format),
    ] {
        if let Some(v) = value {
            map.insert(key.to_owned(), Value::String(v.clone()));
        }
    }
}

#[cfg(test)]
mod tests;
