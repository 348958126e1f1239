//! Admin session tokens: HS256 JWTs carrying the user id and a session id (`jti`).
//! The session row makes logout and password changes revoke a token before it
//! expires; the user row is read on every call so role changes apply at once.

use hmac::{Hmac, Mac};
use jiff::Timestamp;
use jwt::{SignWithKey, VerifyWithKey};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::time::Duration;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub jti: String,
    pub iat: i64,
    pub exp: i64,
    pub iss: String,
}

const ISSUER: &str = "portcullis";

#[derive(Clone)]
pub struct TokenSigner {
    key: Hmac<Sha256>,
    ttl: Duration,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenSigner(ttl={:?})", self.ttl)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("signing secret is unusable")]
    Key,
    #[error("token could not be signed")]
    Sign,
}

impl TokenSigner {
    pub fn new(secret: &[u8], ttl: Duration) -> Result<Self, TokenError> {
        let key = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| TokenError::Key)?;
        Ok(Self { key, ttl })
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// A new token for `user_id`; returns it with its claims.
    pub fn issue(&self, user_id: &str, now: Timestamp) -> Result<(String, Claims), TokenError> {
        let iat = now.as_second();
        let claims = Claims {
            sub: user_id.to_owned(),
            jti: portcullis_core::id::new_id(),
            iat,
            exp: iat + self.ttl.as_secs() as i64,
            iss: ISSUER.to_owned(),
        };
        let token = claims
            .clone()
            .sign_with_key(&self.key)
            .map_err(|_| TokenError::Sign)?;
        Ok((token, claims))
    }

    /// Checks signature, issuer and expiry.
    pub fn verify(&self, token: &str, now: Timestamp) -> Option<Claims> {
        let claims: Claims = token.verify_with_key(&self.key).ok()?;
        (claims.iss == ISSUER && claims.exp > now.as_second()).then_some(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_tokens_verify_until_expiry_and_only_with_the_key() {
        let now = Timestamp::from_second(1_700_000_000).unwrap_or(Timestamp::UNIX_EPOCH);
        let signer = TokenSigner::new(&[7u8; 32], Duration::from_secs(60)).ok();
        let other = TokenSigner::new(&[8u8; 32], Duration::from_secs(60)).ok();
        let (Some(signer), Some(other)) = (signer, other) else {
            panic!("keys")
        };
        let Ok((token, claims)) = signer.issue("user-1", now) else {
            panic!("sign")
        };
        assert_eq!(signer.verify(&token, now).map(|c| c.jti), Some(claims.jti));
        assert!(other.verify(&token, now).is_none());
        let later = Timestamp::from_second(1_700_000_061).unwrap_or(Timestamp::UNIX_EPOCH);
        assert!(signer.verify(&token, later).is_none());
        let mut forged = token.clone();
        forged.insert(forged.len() / 2, 'x');
        assert!(signer.verify(&forged, now).is_none());
    }
}
