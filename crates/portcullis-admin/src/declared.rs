//! Applying the resources declared in the configuration file. Called at start and
//! on reload; the declared set was validated whole when the file was read, and
//! clashes with records made through the API are checked before anything changes.

use crate::state::AppState;
use portcullis_config::Declared;
use portcullis_core::audit::AuditDraft;
use portcullis_core::model::ManagedBy;
use portcullis_core::secret::mask_hint;
use portcullis_core::{api_key, id};
use portcullis_store::{CredentialPatch, GroupPatch, NewApiKey, NewCredential, Resource};
use serde::Serialize;
use std::collections::HashMap;

#[derive(Debug, Default, Serialize, utoipa::ToSchema)]
pub struct Applied {
    pub groups: usize,
    pub credentials: usize,
    pub keys: usize,
    pub proxies: usize,
    /// File-managed records no longer declared, removed (keys: revoked).
    pub removed: Vec<String>,
    /// Proxies that failed to start (the rest of the set is applied).
    pub start_errors: Vec<String>,
}

fn store_err(e: portcullis_store::StoreError) -> Vec<String> {
    vec![e.to_string()]
}

/// Problems that would stop the set from applying cleanly.
async fn clashes(state: &AppState, declared: &Declared) -> Result<Vec<String>, Vec<String>> {
    let mut problems = Vec::new();
    let store = &state.store;
    let groups = store.list_groups().await.map_err(store_err)?;
    for g in &declared.groups {
        if groups
            .iter()
            .any(|x| x.name == g.name && x.managed_by == ManagedBy::Api)
        {
            problems.push(format!(
                "groups: {:?} already exists, created through the API",
                g.name
            ));
        }
    }
    let credentials = store.list_credentials().await.map_err(store_err)?;
    for c in &declared.credentials {
        if credentials
            .iter()
            .any(|x| x.name == c.name && x.managed_by == ManagedBy::Api)
        {
            problems.push(format!(
                "credentials: {:?} already exists, created through the API",
                c.name
            ));
        }
    }
    for k in &declared.keys {
        if let Some(prefix) = api_key::lookup_prefix(k.key.expose()) {
            if let Some((key, _)) = store.api_key_by_prefix(prefix).await.map_err(store_err)? {
                if key.managed_by == ManagedBy::Api {
                    problems.push(format!("keys: {:?} is already an API-created key", k.name));
                }
            }
        }
    }
    let proxies = store.list_proxies().await.map_err(store_err)?;
    for p in &declared.proxies {
        for existing in proxies.iter().filter(|x| x.managed_by == ManagedBy::Api) {
            if existing.spec.name == p.spec.name {
                problems.push(format!(
                    "proxies: {:?} already exists, created through the API",
                    p.spec.name
                ));
            } else if p.spec.listen_port.is_some()
                && existing.spec.listen_port == p.spec.listen_port
            {
                problems.push(format!(
                    "proxies: {:?} wants port {:?}, used by {:?}",
                    p.spec.name, p.spec.listen_port, existing.spec.name
                ));
            }
        }
    }
    Ok(problems)
}

pub async fn apply(
    state: &AppState,
    declared: &Declared,
    actor: &str,
) -> Result<Applied, Vec<String>> {
    let problems = clashes(state, declared).await?;
    if !problems.is_empty() {
        return Err(problems);
    }
    let store = &state.store;
    let now = state.clock.now();
    let mut applied = Applied::default();

    let mut group_ids = HashMap::new();
    let existing_groups = store.list_groups().await.map_err(store_err)?;
    for g in &declared.groups {
        let group = match existing_groups.iter().find(|x| x.name == g.name) {
            Some(x)
                if x.description == g.description
                    && x.rate_limits == g.rate_limits
                    && x.mcp_tool_allow == g.mcp_tool_allow
                    && x.mcp_tool_deny == g.mcp_tool_deny =>
            {
                x.clone()
            }
            Some(x) => store
                .update_group(
                    &x.id,
                    GroupPatch {
                        name: None,
                        description: Some(g.description.clone()),
                        rate_limits: Some(g.rate_limits),
                        mcp_tool_allow: Some(g.mcp_tool_allow.clone()),
                        mcp_tool_deny: Some(g.mcp_tool_deny.clone()),
                    },
                    now,
                )
                .await
                .map_err(store_err)?
                .unwrap_or_else(|| x.clone()),
            None => {
                let created = store
                    .create_group(&g.name, &g.description, now)
                    .await
                    .map_err(store_err)?;
                if !g.rate_limits.is_unlimited()
                    || !g.mcp_tool_allow.is_empty()
                    || !g.mcp_tool_deny.is_empty()
                {
                    let patch = GroupPatch {
                        rate_limits: Some(g.rate_limits),
                        mcp_tool_allow: Some(g.mcp_tool_allow.clone()),
                        mcp_tool_deny: Some(g.mcp_tool_deny.clone()),
                        ..GroupPatch::default()
                    };
                    store
                        .update_group(&created.id, patch, now)
                        .await
                        .map_err(store_err)?;
                }
                store
                    .set_managed_by(Resource::Group, &created.id, ManagedBy::File)
                    .await
                    .map_err(store_err)?;
                created
            }
        };
        group_ids.insert(g.name.clone(), group.id);
        applied.groups += 1;
    }

    let mut credential_ids = HashMap::new();
    let existing_credentials = store.list_credentials().await.map_err(store_err)?;
    let sealed = store.sealed_credentials().await.map_err(store_err)?;
    for c in &declared.credentials {
        let id = match existing_credentials.iter().find(|x| x.name == c.name) {
            Some(x) => {
                let current = sealed
                    .iter()
                    .find(|s| s.id == x.id)
                    .and_then(|s| state.master_key.open(&s.sealed, &s.id).ok());
                if current.as_ref().map(|s| s.expose()) != Some(c.secret.expose()) {
                    let secret = (
                        state.master_key.seal(c.secret.expose(), &x.id),
                        mask_hint(c.secret.expose()),
                        state.master_key.id().to_owned(),
                    );
                    store
                        .update_credential(
                            &x.id,
                            CredentialPatch {
                                name: None,
                                secret: Some(secret),
                            },
                            now,
                        )
                        .await
                        .map_err(store_err)?;
                }
                x.id.clone()
            }
            None => {
                let new_id = id::new_id();
                store
                    .create_credential(
                        NewCredential {
                            id: new_id.clone(),
                            name: c.name.clone(),
                            provider: c.provider,
                            hint: mask_hint(c.secret.expose()),
                            sealed: state.master_key.seal(c.secret.expose(), &new_id),
                            master_key_id: state.master_key.id().to_owned(),
                        },
                        now,
                    )
                    .await
                    .map_err(store_err)?;
                store
                    .set_managed_by(Resource::Credential, &new_id, ManagedBy::File)
                    .await
                    .map_err(store_err)?;
                new_id
            }
        };
        credential_ids.insert(c.name.clone(), id);
        applied.credentials += 1;
    }

    let mut declared_prefixes = Vec::new();
    for k in &declared.keys {
        let Some(prefix) = api_key::lookup_prefix(k.key.expose()) else {
            continue;
        };
        declared_prefixes.push(prefix.to_owned());
        let existing = store.api_key_by_prefix(prefix).await.map_err(store_err)?;
        if let Some((x, _)) = &existing {
            if x.rate_limits != k.rate_limits {
                store
                    .set_api_key_rate_limits(&x.id, k.rate_limits)
                    .await
                    .map_err(store_err)?;
            }
        }
        if existing.is_none() {
            let group_id = group_ids.get(&k.group).cloned().unwrap_or_default();
            let key = store
                .create_api_key(
                    NewApiKey {
                        name: k.name.clone(),
                        group_id,
                        prefix: prefix.to_owned(),
                        key_hash: api_key::digest(k.key.expose()),
                        scopes: k.scopes.clone(),
                        expires_at: None,
                        created_by: "config".into(),
                        rate_limits: k.rate_limits,
                    },
                    now,
                )
                .await
                .map_err(store_err)?;
            store
                .set_managed_by(Resource::ApiKey, &key.id, ManagedBy::File)
                .await
                .map_err(store_err)?;
        }
        applied.keys += 1;
    }

    let existing_proxies = store.list_proxies().await.map_err(store_err)?;
    for p in &declared.proxies {
        let mut spec = p.spec.clone();
        spec.credential_id = p
            .credential
            .as_ref()
            .and_then(|name| credential_ids.get(name).cloned());
        let proxy = match existing_proxies.iter().find(|x| x.spec.name == spec.name) {
            Some(x) if x.spec == spec => x.clone(),
            Some(x) => {
                let updated = store
                    .update_proxy(&x.id, &spec, now)
                    .await
                    .map_err(store_err)?
                    .unwrap_or_else(|| x.clone());
                if state.data_plane.lookup(&x.spec.name).is_some() {
                    state.data_plane.stop(x).await;
                    if let Err(e) = state.data_plane.start(&updated).await {
                        applied
                            .start_errors
                            .push(format!("{}: {e}", updated.spec.name));
                    }
                }
                updated
            }
            None => store
                .create_proxy(&spec, ManagedBy::File, now)
                .await
                .map_err(store_err)?,
        };
        if proxy.spec.auto_start && state.data_plane.lookup(&proxy.spec.name).is_none() {
            if let Err(e) = state.data_plane.start(&proxy).await {
                applied
                    .start_errors
                    .push(format!("{}: {e}", proxy.spec.name));
            }
        }
        applied.proxies += 1;
    }

    // Whatever the file managed and no longer declares goes away.
    for x in store
        .list_proxies()
        .await
        .map_err(store_err)?
        .into_iter()
        .filter(|x| x.managed_by == ManagedBy::File)
    {
        if !declared.proxies.iter().any(|p| p.spec.name == x.spec.name) {
            state.data_plane.forget(&x).await;
            store.delete_proxy(&x.id).await.map_err(store_err)?;
            applied.removed.push(format!("proxy:{}", x.spec.name));
        }
    }
    for x in store
        .list_api_keys(None)
        .await
        .map_err(store_err)?
        .into_iter()
        .filter(|x| x.managed_by == ManagedBy::File && x.revoked_at.is_none())
    {
        if !declared_prefixes.contains(&x.prefix) {
            store.revoke_api_key(&x.id, now).await.map_err(store_err)?;
            applied.removed.push(format!("key:{}", x.prefix));
        }
    }
    for x in store
        .list_credentials()
        .await
        .map_err(store_err)?
        .into_iter()
        .filter(|x| x.managed_by == ManagedBy::File)
    {
        if !declared.credentials.iter().any(|c| c.name == x.name)
            && store.delete_credential(&x.id).await.is_ok()
        {
            applied.removed.push(format!("credential:{}", x.name));
        }
    }
    for x in store
        .list_groups()
        .await
        .map_err(store_err)?
        .into_iter()
        .filter(|x| x.managed_by == ManagedBy::File)
    {
        if !declared.groups.iter().any(|g| g.name == x.name)
            && store.delete_group(&x.id).await.is_ok()
        {
            applied.removed.push(format!("group:{}", x.name));
        }
    }
    state.data_plane.keys_changed();
    state
        .audit(AuditDraft::new(actor, "config.apply", "config").details(serde_json::json!({
            "groups": applied.groups, "credentials": applied.credentials, "keys": applied.keys, "proxies": applied.proxies,
            "removed": applied.removed, "start_errors": applied.start_errors,
        })))
        .await;
    // Declared groups may be new, renamed or gone: names and bindings follow.
    let _ = state.data_plane.refresh_prompts().await;
    Ok(applied)
}
