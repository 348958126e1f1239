//! `portcullis keys ...`

use super::init_logging;
use crate::bootstrap::{self, KeySource, MASTER_KEY_FILE};
use crate::cli::{GlobalArgs, KeysCommand};
use anyhow::{anyhow, bail, Context, Result};
use portcullis_core::audit::AuditDraft;
use portcullis_core::{api_key, Clock, MasterKey, SystemClock};
use portcullis_store::{DynStore, NewApiKey, SealedCredential};

const ACTOR: &str = "cli";

pub async fn run(global: &GlobalArgs, cmd: KeysCommand) -> Result<()> {
    if let KeysCommand::Generate = cmd {
        println!("{}", api_key::generate().plaintext);
        return Ok(());
    }
    let config = bootstrap::load_config(global, None)?;
    init_logging(&config)?;
    let opened = bootstrap::open(config).await?;
    let store = opened.store.clone();
    let result = match cmd {
        KeysCommand::Create {
            group,
            name,
            scopes,
            expires_in_days,
            create_group,
        } => {
            create(
                &store,
                &group,
                &name,
                &scopes,
                expires_in_days,
                create_group,
            )
            .await
        }
        KeysCommand::List { group, json } => list(&store, group.as_deref(), json).await,
        KeysCommand::Revoke { key } => revoke(&store, &key).await,
        KeysCommand::Generate => Ok(()),
        KeysCommand::RotateMaster { new_key_file } => {
            if super::serve::server_running(&opened.config.data_dir) {
                Err(anyhow!("a server is running on this data directory; stop it before rotating the master key"))
            } else {
                rotate_master(
                    &store,
                    &opened.master_key,
                    &opened.key_source,
                    new_key_file.as_deref(),
                )
                .await
            }
        }
    };
    store.close().await;
    result
}

async fn create(
    store: &DynStore,
    group: &str,
    name: &str,
    scopes: &[String],
    days: Option<u32>,
    create_group: bool,
) -> Result<()> {
    let clock = SystemClock;
    let now = clock.now();
    let scopes = bootstrap::parse_scopes(scopes)?;
    let existing = store
        .list_groups()
        .await?
        .into_iter()
        .find(|g| g.name == group);
    let group = match existing {
        Some(g) => g,
        None if create_group => {
            let g = store.create_group(group, "", now).await?;
            store
                .append_audit(
                    AuditDraft::new(ACTOR, "group.create", format!("group:{}", g.name)),
                    now,
                )
                .await?;
            g
        }
        None => bail!("no group named {group:?} (add --create-group to create it)"),
    };
    let expires_at = days
        .map(|d| now.checked_add(jiff::SignedDuration::from_hours(24 * i64::from(d))))
        .transpose()?;
    let generated = api_key::generate();
    let key = store
        .create_api_key(
            NewApiKey {
                name: name.to_owned(),
                group_id: group.id.clone(),
                prefix: generated.prefix.clone(),
                key_hash: generated.hash.clone(),
                scopes,
                expires_at,
                created_by: ACTOR.into(),
                rate_limits: Default::default(),
            },
            now,
        )
        .await?;
    store
        .append_audit(
            AuditDraft::new(ACTOR, "key.create", format!("key:{}", key.prefix))
                .details(serde_json::json!({"group": group.name, "scopes": key.scopes})),
            now,
        )
        .await?;
    println!("{}", generated.plaintext);
    eprintln!(
        "created key {} ({}) for group {}; the key above is shown only once",
        key.prefix, key.id, group.name
    );
    Ok(())
}

async fn list(store: &DynStore, group: Option<&str>, json: bool) -> Result<()> {
    let group_id = match group {
        Some(name) => Some(
            store
                .list_groups()
                .await?
                .into_iter()
                .find(|g| g.name == name)
                .ok_or_else(|| anyhow!("no group named {name:?}"))?
                .id,
        ),
        None => None,
    };
    for key in store.list_api_keys(group_id.as_deref()).await? {
        if json {
            println!("{}", serde_json::to_string(&key)?);
        } else {
            let state = if key.revoked_at.is_some() {
                "revoked"
            } else {
                "active"
            };
            let scopes: Vec<&str> = key.scopes.iter().map(|s| s.as_str()).collect();
            println!(
                "{:<14} {:<20} {:<8} {:<24} {}",
                key.prefix,
                key.name,
                state,
                scopes.join(","),
                key.id
            );
        }
    }
    Ok(())
}

async fn revoke(store: &DynStore, key: &str) -> Result<()> {
    let found = match store.api_key(key).await? {
        Some(k) => Some(k),
        None => store.api_key_by_prefix(key).await?.map(|(k, _)| k),
    };
    let key = found.ok_or_else(|| anyhow!("no API key with id or prefix {key:?}"))?;
    let now = SystemClock.now();
    store.revoke_api_key(&key.id, now).await?;
    store
        .append_audit(
            AuditDraft::new(ACTOR, "key.revoke", format!("key:{}", key.prefix)),
            now,
        )
        .await?;
    println!("revoked {}", key.prefix);
    Ok(())
}

/// Reseals every credential under a new key in one transaction. With a key file we
/// manage, the new key is written beside it first and renamed after the commit, so
/// an interruption is finished or undone at the next start.
async fn rotate_master(
    store: &DynStore,
    current: &MasterKey,
    source: &KeySource,
    new_key_file: Option<&std::path::Path>,
) -> Result<()> {
    let new_key = match new_key_file {
        Some(path) => MasterKey::parse(&std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?)?,
        None if matches!(source, KeySource::File(_)) => MasterKey::generate(),
        None => bail!("the master key comes from PORTCULLIS_ENCRYPTION_KEY or the config file; put the new key in a file and pass --new-key-file"),
    };
    if new_key.id() == current.id() {
        bail!("the new key is the current key");
    }
    let pending = match source {
        KeySource::File(path) => {
            let pending = path.with_extension("key.new");
            let _ = std::fs::remove_file(&pending);
            bootstrap::write_secret_file(&pending, &new_key.to_base64())?;
            Some((pending, path.clone()))
        }
        KeySource::Configured => None,
    };
    let sealed = store.sealed_credentials().await?;
    let resealed = sealed
        .iter()
        .map(|c| {
            let plain = current
                .open(&c.sealed, &c.id)
                .with_context(|| format!("cannot open credential {}", c.id))?;
            Ok(SealedCredential {
                id: c.id.clone(),
                sealed: new_key.seal(plain.expose(), &c.id),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let now = SystemClock.now();
    store
        .reseal_credentials(resealed, new_key.id(), now)
        .await?;
    if let Some((pending, path)) = pending {
        std::fs::rename(&pending, &path).with_context(|| {
            format!(
                "resealed, but cannot move {} to {}; the next start finishes it",
                pending.display(),
                MASTER_KEY_FILE
            )
        })?;
    }
    store
        .append_audit(AuditDraft::new(ACTOR, "credential.rotate_master", "master_key").details(serde_json::json!({"from": current.id(), "to": new_key.id(), "credentials": sealed.len()})), now)
        .await?;
    println!(
        "re-encrypted {} credential(s): master key {} -> {}",
        sealed.len(),
        current.id(),
        new_key.id()
    );
    if matches!(source, KeySource::Configured) {
        println!("now set PORTCULLIS_ENCRYPTION_KEY (or encryption_key) to the new key before starting the server");
    }
    Ok(())
}
