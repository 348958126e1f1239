//! Admin user passwords: argon2id with a random salt, PHC-encoded.

use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use base64::engine::general_purpose::STANDARD_NO_PAD as B64;
use base64::Engine;
use std::sync::Mutex;
use subtle::ConstantTimeEq;

/// OWASP's argon2id setting of 7 MiB and 5 passes, equivalent in strength to the
/// 19 MiB / 2 passes default. One hash at a time: a flood of logins can neither
/// exhaust memory nor leave a 19 MiB block behind in each allocator arena (idle
/// RSS grew from 13 to 73 MB after three parallel logins with the default).
const MEMORY_KIB: u32 = 7 * 1024;
const PASSES: u32 = 5;
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
const OUTPUT_LEN: usize = 32;

/// Runs `work` with argon2's working memory: allocated for this hash and freed
/// after it. The server tunes the allocator (`portcullis serve` sets glibc's mmap
/// threshold) so the 7 MiB block goes back to the OS rather than staying in an
/// arena; one hash at a time bounds it whatever the concurrency.
fn with_memory<T>(work: impl FnOnce(&mut [Block]) -> T) -> T {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let mut memory = vec![Block::default(); MEMORY_KIB as usize];
    work(&mut memory)
}

type Job = Box<dyn FnOnce() + Send>;
/// Hashing waits here; a full queue refuses rather than piles up work.
const QUEUE: usize = 64;

/// The one thread that hashes: every hash reuses its allocator arena, so memory
/// stays at one hash's worth whatever the concurrency.
fn worker() -> Option<&'static std::sync::mpsc::SyncSender<Job>> {
    static WORKER: std::sync::OnceLock<Option<std::sync::mpsc::SyncSender<Job>>> =
        std::sync::OnceLock::new();
    WORKER
        .get_or_init(|| {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Job>(QUEUE);
            std::thread::Builder::new()
                .name("argon2".into())
                .spawn(move || {
                    while let Ok(job) = rx.recv() {
                        job();
                    }
                })
                .ok()
                .map(|_| tx)
        })
        .as_ref()
}

/// Runs `work` on the hashing thread; `None` when the queue is full (busy).
async fn on_worker<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    worker()?
        .try_send(Box::new(move || {
            let _ = tx.send(work());
        }))
        .ok()?;
    rx.await.ok()
}

/// [`hash`] on the hashing thread.
pub async fn hash_async(password: String) -> Result<String, PasswordError> {
    on_worker(move || hash(&password))
        .await
        .unwrap_or(Err(PasswordError::Busy))
}

/// [`verify`] on the hashing thread; `None` when too many are waiting.
pub async fn verify_async(password: String, phc: String) -> Option<bool> {
    on_worker(move || verify(&password, &phc)).await
}

fn argon2() -> Argon2<'static> {
    let params = Params::new(MEMORY_KIB, PASSES, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}
use rand::distributions::{Alphanumeric, DistString};

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("password must be at least {min} characters")]
    TooShort { min: usize },
    #[error("password must be at most {max} characters")]
    TooLong { max: usize },
    #[error("password hashing failed")]
    Hash,
    #[error("too many password operations in progress; retry")]
    Busy,
}

pub const MIN_LEN: usize = 12;
pub const MAX_LEN: usize = 256;

pub fn check_strength(password: &str) -> Result<(), PasswordError> {
    let len = password.chars().count();
    if len < MIN_LEN {
        return Err(PasswordError::TooShort { min: MIN_LEN });
    }
    if len > MAX_LEN {
        return Err(PasswordError::TooLong { max: MAX_LEN });
    }
    Ok(())
}

pub fn hash(password: &str) -> Result<String, PasswordError> {
    let salt = SaltString::generate(&mut OsRng);
    let mut salt_buf = [0u8; 64];
    let salt_raw = salt
        .as_salt()
        .decode_b64(&mut salt_buf)
        .map_err(|_| PasswordError::Hash)?;
    let mut out = [0u8; OUTPUT_LEN];
    with_memory(|memory| {
        argon2().hash_password_into_with_memory(password.as_bytes(), salt_raw, &mut out, memory)
    })
    .map_err(|_| PasswordError::Hash)?;
    Ok(format!(
        "$argon2id$v=19$m={MEMORY_KIB},t={PASSES},p=1${}${}",
        salt.as_str(),
        B64.encode(out)
    ))
}

/// Constant-time verification. Hashes made with our parameters reuse the hashing
/// thread's memory; others (older parameters) take the allocating path.
pub fn verify(password: &str, phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    let ours = parsed.algorithm.as_str() == "argon2id"
        && parsed.params.get_decimal("m") == Some(MEMORY_KIB)
        && parsed.params.get_decimal("t") == Some(PASSES)
        && parsed.params.get_decimal("p") == Some(1);
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return false;
    };
    if !ours || expected.len() != OUTPUT_LEN {
        let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
        return Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
    }
    let mut salt_buf = [0u8; 64];
    let Ok(salt_raw) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    let mut out = [0u8; OUTPUT_LEN];
    if with_memory(|memory| {
        argon2().hash_password_into_with_memory(password.as_bytes(), salt_raw, &mut out, memory)
    })
    .is_err()
    {
        return false;
    }
    out.ct_eq(expected.as_bytes()).into()
}

/// A hash that no password matches, verified against when a user does not exist so
/// that the response time does not reveal which user names exist.
pub fn dummy_hash() -> &'static str {
    "$argon2id$v=19$m=7168,t=5,p=1$c29tZXNhbHRzb21lc2FsdA$2gy3VW6ytQ1C1yH3VuZbd5J1O2kwIhT0M3e2jiOzhfE"
}

/// A random password for the first admin: 24 alphanumerics, about 142 bits.
pub fn generate() -> String {
    Alphanumeric.sample_string(&mut rand::rngs::OsRng, 24)
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::PasswordHasher;

    #[test]
    fn hashes_verify_and_differ_per_salt() {
        let a = hash("correct horse battery").unwrap_or_default();
        let b = hash("correct horse battery").unwrap_or_default();
        assert_ne!(a, b);
        assert!(a.starts_with("$argon2id$v=19$m=7168,t=5,p=1$"));
        assert!(verify("correct horse battery", &a));
        assert!(!verify("wrong horse battery", &a));
        assert!(!verify("anything", "not a hash"));
        assert!(!verify("anything", dummy_hash()));
        // Our PHC strings are standard: the argon2 crate verifies them too.
        let parsed = PasswordHash::new(&a)
            .map_err(|_| ())
            .unwrap_or_else(|_| panic!("PHC"));
        assert!(Argon2::default()
            .verify_password(b"correct horse battery", &parsed)
            .is_ok());
        // And hashes made elsewhere with other parameters still verify.
        let legacy = Argon2::default()
            .hash_password(b"legacy password", &SaltString::generate(&mut OsRng))
            .map(|h| h.to_string())
            .unwrap_or_default();
        assert!(verify("legacy password", &legacy));
        assert!(!verify("other password", &legacy));
    }

    #[test]
    fn strength_rules() {
        assert!(check_strength("short").is_err());
        assert!(check_strength(&"x".repeat(300)).is_err());
        assert!(check_strength(&generate()).is_ok());
    }
}
