//! Virtual API keys handed to apps and agents: `pcx_` + 8-character lookup id +
//! 32-character secret, base62. Only a SHA-256 of the whole key is stored (the key
//! has ~238 bits of entropy, so a slow hash adds nothing); the lookup id finds the
//! row and the digests are compared in constant time.

use rand::distributions::{Alphanumeric, DistString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub const PREFIX: &str = "pcx_";
const LOOKUP_LEN: usize = 8;
const SECRET_LEN: usize = 32;
/// Length of the stored, displayable prefix (`pcx_` + lookup id).
pub const DISPLAY_PREFIX_LEN: usize = PREFIX.len() + LOOKUP_LEN;

/// A freshly generated key: the plaintext is shown once and then dropped.
pub struct NewApiKey {
    pub plaintext: String,
    pub prefix: String,
    pub hash: String,
}

impl std::fmt::Debug for NewApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NewApiKey(prefix={})", self.prefix)
    }
}

pub fn generate() -> NewApiKey {
    let mut rng = rand::rngs::OsRng;
    let plaintext = format!(
        "{PREFIX}{}{}",
        Alphanumeric.sample_string(&mut rng, LOOKUP_LEN),
        Alphanumeric.sample_string(&mut rng, SECRET_LEN)
    );
    let prefix = plaintext[..DISPLAY_PREFIX_LEN].to_owned();
    let hash = digest(&plaintext);
    NewApiKey {
        plaintext,
        prefix,
        hash,
    }
}

/// The stored prefix of a presented key, if it is shaped like one of ours.
pub fn lookup_prefix(presented: &str) -> Option<&str> {
    let well_formed = presented.len() == DISPLAY_PREFIX_LEN + SECRET_LEN
        && presented.starts_with(PREFIX)
        && presented[PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric());
    well_formed.then(|| &presented[..DISPLAY_PREFIX_LEN])
}

pub fn digest(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// Constant-time check of a presented key against a stored digest.
pub fn matches(presented: &str, stored_digest: &str) -> bool {
    digest(presented)
        .as_bytes()
        .ct_eq(stored_digest.as_bytes())
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_are_well_formed_and_verify() {
        let key = generate();
        assert!(key.plaintext.starts_with("pcx_"));
        assert_eq!(lookup_prefix(&key.plaintext), Some(key.prefix.as_str()));
        assert!(matches(&key.plaintext, &key.hash));
        assert!(!matches(
            &format!("{}x", &key.plaintext[..key.plaintext.len() - 1]),
            &key.hash
        ));
        assert!(!format!("{key:?}").contains(&key.plaintext[DISPLAY_PREFIX_LEN..]));
    }

    #[test]
    fn rejects_foreign_shapes() {
        assert_eq!(lookup_prefix("sk-abc"), None);
        assert_eq!(lookup_prefix("pcx_short"), None);
        assert_eq!(lookup_prefix(&format!("pcx_{}", "!".repeat(40))), None);
    }
}
