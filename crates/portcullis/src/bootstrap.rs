//! Start-up shared by every command: configuration, data directory, secrets, store.

use crate::cli::GlobalArgs;
use anyhow::{bail, Context, Result};
use base64::Engine;
use portcullis_config::{Config, Database, Overrides, ProcessEnv};
use portcullis_core::model::KeyScope;
use portcullis_core::secret::sealed_key_id;
use portcullis_core::{password, Clock, MasterKey};
use portcullis_store::{DynStore, NewUser, PgStore, SqliteStore};
use rand::RngCore;
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub const JWT_SECRET_FILE: &str = "jwt.secret";
pub const MASTER_KEY_FILE: &str = "encryption.key";

/// Where the master key came from: a file we manage, or the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    File(PathBuf),
    Configured,
}

pub struct Opened {
    pub config: Config,
    pub store: DynStore,
    pub master_key: MasterKey,
    pub key_source: KeySource,
    pub jwt_secret: Vec<u8>,
}

pub fn load_config(global: &GlobalArgs, listen: Option<String>) -> Result<Config> {
    let overrides = Overrides {
        listen,
        data_dir: global.data_dir.clone(),
        log_format: global.log_format.clone(),
    };
    Ok(portcullis_config::load(
        global.config.as_deref(),
        &ProcessEnv,
        &overrides,
    )?)
}

/// Creates the data directory (mode 0700), loads or generates secrets, opens the
/// store and applies migrations.
pub async fn open(config: Config) -> Result<Opened> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&config.data_dir)
        .with_context(|| format!("cannot create data directory {}", config.data_dir.display()))?;

    let jwt_secret = match &config.jwt_secret {
        Some(s) => s.expose().as_bytes().to_vec(),
        None => read_or_create_secret(&config.data_dir.join(JWT_SECRET_FILE), || {
            let mut bytes = [0u8; 48];
            rand::rngs::OsRng.fill_bytes(&mut bytes);
            base64::engine::general_purpose::STANDARD.encode(bytes)
        })?
        .into_bytes(),
    };
    let (master_key, key_source) = match &config.encryption_key {
        Some(k) => (MasterKey::parse(k.expose())?, KeySource::Configured),
        None => {
            let path = config.data_dir.join(MASTER_KEY_FILE);
            let text = read_or_create_secret(&path, || MasterKey::generate().to_base64())?;
            (
                MasterKey::parse(&text)
                    .with_context(|| format!("{} is not a valid key", path.display()))?,
                KeySource::File(path),
            )
        }
    };

    let store: DynStore = match &config.database {
        Database::Sqlite { path } => Arc::new(
            SqliteStore::open(path)
                .await
                .with_context(|| format!("cannot open SQLite database {}", path.display()))?,
        ),
        Database::Postgres { url } => Arc::new(
            PgStore::connect(url.expose(), None)
                .await
                .context("cannot connect to PostgreSQL (database_url)")?,
        ),
    };
    let master_key = finish_interrupted_rotation(&store, master_key, &key_source).await?;
    check_master_key(&store, &master_key).await?;
    Ok(Opened {
        config,
        store,
        master_key,
        key_source,
        jwt_secret,
    })
}

/// Reads a secret file, or creates it with mode 0600 holding `generate()`.
fn read_or_create_secret(path: &Path, generate: impl FnOnce() -> String) -> Result<String> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                tracing::warn!(path = %path.display(), mode = format!("{mode:o}"), "secret file is readable by others; chmod 600 it");
            }
            Ok(text.trim().to_owned())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let value = generate();
            write_secret_file(path, &value)?;
            tracing::info!(path = %path.display(), "generated secret file");
            Ok(value)
        }
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Writes a new secret file with mode 0600; refuses to overwrite.
pub fn write_secret_file(path: &Path, value: &str) -> Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(value.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()?;
    Ok(())
}

/// A rotation writes `encryption.key.new`, reseals in one transaction, then renames.
/// If it stopped between the two, the credentials are sealed with the new key:
/// finish the rename. If it stopped before the commit, drop the new file.
async fn finish_interrupted_rotation(
    store: &DynStore,
    current: MasterKey,
    source: &KeySource,
) -> Result<MasterKey> {
    let KeySource::File(path) = source else {
        return Ok(current);
    };
    let pending = path.with_extension("key.new");
    let Ok(text) = std::fs::read_to_string(&pending) else {
        return Ok(current);
    };
    let new_key = MasterKey::parse(&text).context("encryption.key.new is not a valid key")?;
    let sealed = store.sealed_credentials().await?;
    if sealed
        .iter()
        .any(|c| sealed_key_id(&c.sealed) == Some(new_key.id()))
    {
        std::fs::rename(&pending, path).context("cannot finish the interrupted key rotation")?;
        tracing::warn!("finished an interrupted master-key rotation");
        Ok(new_key)
    } else {
        std::fs::remove_file(&pending)?;
        tracing::warn!("discarded an unfinished master-key rotation");
        Ok(current)
    }
}

/// Refuses to run with a master key that cannot open the stored credentials.
async fn check_master_key(store: &DynStore, key: &MasterKey) -> Result<()> {
    let sealed = store.sealed_credentials().await?;
    if let Some(other) = sealed
        .iter()
        .filter_map(|c| sealed_key_id(&c.sealed))
        .find(|id| *id != key.id())
    {
        bail!(
            "provider credentials were encrypted with master key {other}, but the configured key is {}. \
             Set PORTCULLIS_ENCRYPTION_KEY (or restore {MASTER_KEY_FILE} in the data directory) to the key they were sealed with.",
            key.id()
        );
    }
    Ok(())
}

/// On first start, creates the `admin` user; returns the password to show once if
/// it was generated.
pub async fn ensure_first_admin(
    store: &DynStore,
    config: &Config,
    clock: &dyn Clock,
) -> Result<Option<String>> {
    if !store.list_users().await?.is_empty() {
        return Ok(None);
    }
    let (pw, generated) = match &config.admin_password {
        Some(p) => (p.expose().to_owned(), false),
        None => (password::generate(), true),
    };
    let hash = password::hash_async(pw.clone()).await?;
    let user = store
        .create_user(
            NewUser {
                username: "admin".into(),
                password_hash: hash,
                role: portcullis_core::Role::Admin,
                must_change_password: generated,
            },
            clock.now(),
        )
        .await?;
    store
        .append_audit(
            portcullis_core::audit::AuditDraft::new(
                "system",
                "user.create",
                format!("user:{}", user.username),
            )
            .details(serde_json::json!({"role": "admin", "first_run": true})),
            clock.now(),
        )
        .await?;
    Ok(generated.then_some(pw))
}

pub fn parse_scopes(given: &[String]) -> Result<Vec<KeyScope>> {
    if given.is_empty() {
        return Ok(KeyScope::DEFAULT.to_vec());
    }
    given
        .iter()
        .map(|s| s.parse::<KeyScope>().map_err(anyhow::Error::from))
        .collect()
}
