//! Secret values and the master key that seals provider credentials at rest.
//!
//! Sealed values are `v1:<key id>:<base64(nonce || ciphertext+tag)>`, AES-256-GCM with
//! a random 96-bit nonce. The caller passes associated data (the credential id) so a
//! ciphertext copied onto another row fails to open.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD as B64URL};
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::fmt;

/// A string that never shows itself in `Debug` or `Display`.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct SecretString(String);

impl SecretString {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretString(***)")
    }
}

impl<'de> serde::Deserialize<'de> for SecretString {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(SecretString)
    }
}

/// A masked hint of a secret, safe to show: `sk-...abcd`.
pub fn mask_hint(secret: &str) -> String {
    let chars: Vec<char> = secret.chars().collect();
    if chars.len() < 12 {
        return "****".to_owned();
    }
    let head: String = chars
        .iter()
        .take_while(|c| **c != '-' && **c != '_')
        .take(4)
        .collect();
    let head = if head.len() < chars.len() && matches!(chars.get(head.len()), Some('-' | '_')) {
        chars[..=head.len()].iter().collect::<String>()
    } else {
        String::new()
    };
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}...{tail}")
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("encryption key must be 32 bytes, given as 64 hex characters or base64 ({0})")]
    BadKey(&'static str),
    #[error("sealed value is malformed")]
    Malformed,
    #[error("sealed with master key {found} but the current master key is {current}")]
    WrongKey { found: String, current: String },
    #[error("sealed value failed authentication (tampered, or bound to another record)")]
    Authentication,
    #[error("sealed value is longer than {0} characters")]
    TooLong(usize),
}

/// The 256-bit master key.
#[derive(Clone)]
pub struct MasterKey {
    cipher: Aes256Gcm,
    id: String,
    bytes: [u8; 32],
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MasterKey(id={})", self.id)
    }
}

impl MasterKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        let id = hex::encode(
            &Sha256::digest([b"portcullis-master-key:".as_slice(), &bytes].concat())[..4],
        );
        let cipher = Aes256Gcm::new(&bytes.into());
        Self { cipher, id, bytes }
    }

    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Self::from_bytes(bytes)
    }

    /// Parses 64 hex characters or standard base64 of 32 bytes.
    pub fn parse(text: &str) -> Result<Self, SecretError> {
        let text = text.trim();
        let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            hex::decode(text).map_err(|_| SecretError::BadKey("invalid hex"))?
        } else {
            B64.decode(text)
                .map_err(|_| SecretError::BadKey("neither hex nor base64"))?
        };
        let bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|_| SecretError::BadKey("wrong length"))?;
        Ok(Self::from_bytes(bytes))
    }

    /// The key as base64, for writing the key file.
    pub fn to_base64(&self) -> String {
        B64.encode(self.bytes)
    }

    /// A short fingerprint stored beside sealed values; not secret.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// A 256-bit key for one other use of the master key: HMAC-SHA256 of `label`
    /// under the master key, so two uses never share a key and neither reveals
    /// the master key.
    pub fn derive(&self, label: &str) -> [u8; 32] {
        let context = [b"portcullis-derived-key:".as_slice(), label.as_bytes()].concat();
        match <Hmac<Sha256> as Mac>::new_from_slice(&self.bytes) {
            Ok(mut mac) => {
                mac.update(&context);
                mac.finalize().into_bytes().into()
            }
            // HMAC takes keys of any length, so this is never taken; were it
            // taken, a hash of key and label is still a separate key.
            Err(_) => Sha256::digest([self.bytes.as_slice(), &context].concat()).into(),
        }
    }

    /// A sealer for short tokens handed to clients, under a key derived for `label`.
    pub fn token_sealer(&self, label: &str) -> TokenSealer {
        TokenSealer {
            cipher: Aes256Gcm::new(&self.derive(label).into()),
        }
    }

    pub fn seal(&self, plaintext: &str, associated: &str) -> String {
        let blob = seal_blob(&self.cipher, plaintext.as_bytes(), associated.as_bytes());
        format!("v1:{}:{}", self.id, B64.encode(blob))
    }

    pub fn open(&self, sealed: &str, associated: &str) -> Result<SecretString, SecretError> {
        let mut parts = sealed.splitn(3, ':');
        let (Some("v1"), Some(key_id), Some(body)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(SecretError::Malformed);
        };
        if key_id != self.id {
            return Err(SecretError::WrongKey {
                found: key_id.to_owned(),
                current: self.id.clone(),
            });
        }
        let blob = B64.decode(body).map_err(|_| SecretError::Malformed)?;
        let plain = open_blob(&self.cipher, &blob, associated.as_bytes())?;
        String::from_utf8(plain)
            .map(SecretString)
            .map_err(|_| SecretError::Malformed)
    }
}

/// Seals short opaque tokens given to clients (AES-256-GCM, random 96-bit nonce,
/// URL-safe base64 without padding): whoever holds one can neither read nor
/// change it, and only a holder of the same master key can open it.
#[derive(Clone)]
pub struct TokenSealer {
    cipher: Aes256Gcm,
}

impl fmt::Debug for TokenSealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenSealer(***)")
    }
}

impl TokenSealer {
    pub fn seal(&self, plaintext: &[u8], associated: &[u8]) -> String {
        B64URL.encode(seal_blob(&self.cipher, plaintext, associated))
    }

    /// Opens a token of at most `max_len` characters (checked before any work).
    pub fn open(
        &self,
        token: &str,
        associated: &[u8],
        max_len: usize,
    ) -> Result<Vec<u8>, SecretError> {
        if token.len() > max_len {
            return Err(SecretError::TooLong(max_len));
        }
        let blob = B64URL.decode(token).map_err(|_| SecretError::Malformed)?;
        open_blob(&self.cipher, &blob, associated)
    }
}

/// `nonce || ciphertext+tag`, with a random 96-bit nonce.
fn seal_blob(cipher: &Aes256Gcm, plaintext: &[u8], associated: &[u8]) -> Vec<u8> {
    let mut nonce = [0u8; 12];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let payload = Payload {
        msg: plaintext,
        aad: associated,
    };
    // Encryption with a valid 32-byte key and 12-byte nonce cannot fail for
    // inputs under 64 GiB; map the impossible error to an empty ciphertext
    // that will fail to open rather than panic.
    let ciphertext = cipher
        .encrypt(Nonce::from_slice(&nonce), payload)
        .unwrap_or_default();
    let mut blob = Vec::with_capacity(12 + ciphertext.len());
    blob.extend_from_slice(&nonce);
    blob.extend_from_slice(&ciphertext);
    blob
}

fn open_blob(cipher: &Aes256Gcm, blob: &[u8], associated: &[u8]) -> Result<Vec<u8>, SecretError> {
    if blob.len() < 12 + 16 {
        return Err(SecretError::Malformed);
    }
    let (nonce, ciphertext) = blob.split_at(12);
    cipher
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: ciphertext,
                aad: associated,
            },
        )
        .map_err(|_| SecretError::Authentication)
}

/// Key id recorded in a sealed value, without opening it.
pub fn sealed_key_id(sealed: &str) -> Option<&str> {
    let mut parts = sealed.splitn(3, ':');
    match (parts.next(), parts.next()) {
        (Some("v1"), Some(id)) => Some(id),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_and_open_round_trip_and_bind_to_record() {
        let key = MasterKey::generate();
        let sealed = key.seal("sk-live-1234567890", "cred-1");
        assert!(!sealed.contains("sk-live"));
        assert_eq!(
            key.open(&sealed, "cred-1")
                .ok()
                .map(|s| s.expose().to_owned()),
            Some("sk-live-1234567890".into())
        );
        assert!(matches!(
            key.open(&sealed, "cred-2"),
            Err(SecretError::Authentication)
        ));
    }

    #[test]
    fn another_key_is_recognised_by_id() {
        let a = MasterKey::generate();
        let b = MasterKey::generate();
        let sealed = a.seal("x", "id");
        assert!(matches!(
            b.open(&sealed, "id"),
            Err(SecretError::WrongKey { .. })
        ));
        assert_eq!(sealed_key_id(&sealed), Some(a.id()));
    }

    #[test]
    fn tampered_ciphertext_fails() {
        let key = MasterKey::generate();
        let sealed = key.seal("secret value", "id");
        let mut bytes = sealed.into_bytes();
        let last = bytes.len() - 3;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(bytes).unwrap_or_default();
        assert!(key.open(&tampered, "id").is_err());
    }

    #[test]
    fn tokens_round_trip_and_fail_when_tampered_or_under_another_key() {
        let key = MasterKey::generate();
        let sealer = key.token_sealer("test tokens");
        let token = sealer.seal(b"payload", b"ctx");
        assert!(token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_eq!(
            sealer.open(&token, b"ctx", 1024).ok().as_deref(),
            Some(b"payload".as_slice())
        );
        assert!(matches!(
            sealer.open(&token, b"other", 1024),
            Err(SecretError::Authentication)
        ));
        assert!(matches!(
            sealer.open(&token, b"ctx", 10),
            Err(SecretError::TooLong(10))
        ));
        // Every single flipped character is detected.
        for i in 0..token.len() {
            let mut bytes = token.clone().into_bytes();
            bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
            let tampered = String::from_utf8(bytes).unwrap_or_default();
            assert!(sealer.open(&tampered, b"ctx", 1024).is_err(), "byte {i}");
        }
        // Another label, or another master key, is another key.
        assert!(key
            .token_sealer("other use")
            .open(&token, b"ctx", 1024)
            .is_err());
        assert!(MasterKey::generate()
            .token_sealer("test tokens")
            .open(&token, b"ctx", 1024)
            .is_err());
        // The same master key (another replica) opens it.
        let replica = MasterKey::parse(&key.to_base64()).map(|k| k.token_sealer("test tokens"));
        assert!(replica.is_ok_and(|s| s.open(&token, b"ctx", 1024).is_ok()));
        assert_ne!(key.derive("a"), key.derive("b"));
        assert_ne!(key.derive("a"), key.bytes);
    }

    #[test]
    fn parses_hex_and_base64_keys() {
        let key = MasterKey::generate();
        let again = MasterKey::parse(&key.to_base64())
            .ok()
            .map(|k| k.id().to_owned());
        assert_eq!(again.as_deref(), Some(key.id()));
        assert!(MasterKey::parse(&"ab".repeat(32)).is_ok());
        assert!(MasterKey::parse("short").is_err());
    }

    #[test]
    fn hints_show_only_prefix_and_last_four() {
        assert_eq!(mask_hint("sk-proj-abcdefghijklmnop1234"), "sk-...1234");
        assert_eq!(mask_hint("abcdefghijklmnopqrstuvwxyz"), "...wxyz");
        assert_eq!(mask_hint("short"), "****");
        assert!(!format!("{:?}", SecretString::new("hunter2")).contains("hunter2"));
    }
}
