//! Resources declared in the configuration file: groups, provider credentials,
//! API keys and proxies. Secrets are `${ENV_VAR}` references, resolved at load.
//! The whole set is validated before any of it is applied.

use crate::env::EnvSource;
use portcullis_core::model::{KeyScope, ProviderKind, RateLimits};
use portcullis_core::proxy::ProxySpec;
use portcullis_core::SecretString;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGroup {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// `{rpm, tpm}` for all the group's keys together.
    #[serde(default)]
    pub rate_limits: RateLimits,
    /// MCP tool names or globs the group's keys may list and call; empty: all.
    #[serde(default)]
    pub mcp_tool_allow: Vec<String>,
    /// MCP tool names or globs hidden from and refused to the group's keys.
    #[serde(default)]
    pub mcp_tool_deny: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCredential {
    pub name: String,
    pub provider: ProviderKind,
    /// `${ENV_VAR}`; a literal secret in the file is refused.
    pub secret: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKey {
    pub name: String,
    /// Group name.
    pub group: String,
    /// `${ENV_VAR}` holding a `pcx_` key (make one with `portcullis keys generate`).
    pub key: String,
    #[serde(default)]
    pub scopes: Option<Vec<KeyScope>>,
    /// `{rpm, tpm}` for this key alone.
    #[serde(default)]
    pub rate_limits: RateLimits,
}

/// A proxy as written in the file: the API's fields, with the credential by name.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RawProxy {
    /// Credential name (instead of `credential_id`).
    #[serde(default)]
    pub credential: Option<String>,
    #[serde(flatten)]
    pub spec: serde_json::Map<String, serde_json::Value>,
}

/// Declared resources, checked and with secrets resolved.
#[derive(Debug, Clone, Default)]
pub struct Declared {
    pub groups: Vec<RawGroup>,
    pub credentials: Vec<DeclaredCredential>,
    pub keys: Vec<DeclaredKey>,
    pub proxies: Vec<DeclaredProxy>,
}

#[derive(Debug, Clone)]
pub struct DeclaredCredential {
    pub name: String,
    pub provider: ProviderKind,
    pub secret: SecretString,
}

#[derive(Debug, Clone)]
pub struct DeclaredKey {
    pub name: String,
    pub group: String,
    pub key: SecretString,
    pub scopes: Vec<KeyScope>,
    pub rate_limits: RateLimits,
}

#[derive(Debug, Clone)]
pub struct DeclaredProxy {
    pub spec: ProxySpec,
    pub credential: Option<String>,
}

/// Resolves a whole-value `${NAME}` reference.
fn secret_ref(
    field: &str,
    value: &str,
    env: &HashMap<String, String>,
    errors: &mut Vec<String>,
) -> SecretString {
    let name = value.strip_prefix("${").and_then(|v| v.strip_suffix('}'));
    match name {
        Some(name) => match env.get(name) {
            Some(v) if !v.is_empty() => SecretString::new(v.clone()),
            _ => {
                errors.push(format!("{field}: environment variable {name} is not set"));
                SecretString::default()
            }
        },
        None => {
            errors.push(format!(
                "{field}: give secrets as ${{ENV_VAR}} references, not literally"
            ));
            SecretString::default()
        }
    }
}

pub(crate) fn resolve(
    groups: &[RawGroup],
    credentials: &[RawCredential],
    keys: &[RawKey],
    proxies: &[RawProxy],
    env: &dyn EnvSource,
) -> Result<Declared, Vec<String>> {
    let env: HashMap<String, String> = env.vars().into_iter().collect();
    let mut errors = Vec::new();
    let unique = |kind: &str, names: Vec<&str>, errors: &mut Vec<String>| -> HashSet<String> {
        let mut seen = HashSet::new();
        for n in names {
            if !seen.insert(n.to_owned()) {
                errors.push(format!("{kind}: {n:?} is declared twice"));
            }
        }
        seen
    };
    let group_names = unique(
        "groups",
        groups.iter().map(|g| g.name.as_str()).collect(),
        &mut errors,
    );
    let credential_names = unique(
        "credentials",
        credentials.iter().map(|c| c.name.as_str()).collect(),
        &mut errors,
    );
    unique(
        "keys",
        keys.iter().map(|k| k.name.as_str()).collect(),
        &mut errors,
    );

    for (i, g) in groups.iter().enumerate() {
        if g.name.trim().is_empty() || g.name.len() > 64 {
            errors.push(format!("groups[{i}].name: 1-64 characters"));
        }
        for p in g.rate_limits.problems() {
            errors.push(format!("groups[{i}].rate_limits.{p}"));
        }
        for (field, list) in [
            ("mcp_tool_allow", &g.mcp_tool_allow),
            ("mcp_tool_deny", &g.mcp_tool_deny),
        ] {
            portcullis_core::mcp::tool_pattern_problems(
                &format!("groups[{i}].{field}"),
                list.iter(),
                &mut errors,
            );
        }
    }
    let credentials = credentials
        .iter()
        .enumerate()
        .map(|(i, c)| DeclaredCredential {
            name: c.name.clone(),
            provider: c.provider,
            secret: secret_ref(
                &format!("credentials[{i}].secret"),
                &c.secret,
                &env,
                &mut errors,
            ),
        })
        .collect();
    let keys = keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            if !group_names.contains(&k.group) {
                errors.push(format!("keys[{i}].group: no declared group {:?}", k.group));
            }
            let key = secret_ref(&format!("keys[{i}].key"), &k.key, &env, &mut errors);
            if !key.is_empty() && portcullis_core::api_key::lookup_prefix(key.expose()).is_none() {
                errors.push(format!(
                    "keys[{i}].key: the variable does not hold a pcx_ key"
                ));
            }
            let scopes = k
                .scopes
                .clone()
                .unwrap_or_else(|| KeyScope::DEFAULT.to_vec());
            if scopes.is_empty() {
                errors.push(format!("keys[{i}].scopes: give at least one"));
            }
            for p in k.rate_limits.problems() {
                errors.push(format!("keys[{i}].rate_limits.{p}"));
            }
            DeclaredKey {
                name: k.name.clone(),
                group: k.group.clone(),
                key,
                scopes,
                rate_limits: k.rate_limits,
            }
        })
        .collect();
    let mut proxy_names = HashSet::new();
    let mut ports = HashSet::new();
    let proxies = proxies
        .iter()
        .enumerate()
        .filter_map(|(i, p)| {
            if p.spec.contains_key("credential_id") {
                errors.push(format!(
                    "proxies[{i}].credential_id: name the credential with `credential` instead"
                ));
            }
            let spec: ProxySpec =
                match serde_path_to_error::deserialize(serde_json::Value::Object(p.spec.clone())) {
                    Ok(spec) => ProxySpec::normalized(spec),
                    Err(e) => {
                        errors.push(format!("proxies[{i}].{}: {}", e.path(), e.inner()));
                        return None;
                    }
                };
            errors.extend(
                spec.problems()
                    .into_iter()
                    .map(|m| format!("proxies[{i}].{m}")),
            );
            for (j, server) in spec.mcp_servers.iter().enumerate() {
                if server.credential_id.is_some() {
                    errors.push(format!(
                        "proxies[{i}].mcp_servers[{j}].credential_id: not supported in the file yet; declare the federation through the API"
                    ));
                }
            }
            if !proxy_names.insert(spec.name.clone()) {
                errors.push(format!("proxies: {:?} is declared twice", spec.name));
            }
            if let Some(port) = spec.listen_port {
                if !ports.insert(port) {
                    errors.push(format!("proxies[{i}].listen_port: {port} is used twice"));
                }
            }
            if let Some(c) = &p.credential {
                if !credential_names.contains(c) {
                    errors.push(format!(
                        "proxies[{i}].credential: no declared credential {c:?}"
                    ));
                }
            }
            Some(DeclaredProxy {
                spec,
                credential: p.credential.clone(),
            })
        })
        .collect();
    if errors.is_empty() {
        Ok(Declared {
            groups: groups.to_vec(),
            credentials,
            keys,
            proxies,
        })
    } else {
        Err(errors)
    }
}
