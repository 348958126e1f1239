//! The Redis connection shared by the counters of several gateway replicas.

use redis::aio::ConnectionManager;

#[derive(Debug, thiserror::Error)]
pub enum SharedError {
    #[error("redis URL is not valid: {0}")]
    BadUrl(String),
    #[error("redis is unreachable: {0}")]
    Unreachable(String),
    #[error("redis command failed: {0}")]
    Command(String),
}

impl From<redis::RedisError> for SharedError {
    fn from(e: redis::RedisError) -> Self {
        SharedError::Command(e.to_string())
    }
}

/// A reconnecting Redis connection; cheap to clone.
#[derive(Clone)]
pub struct Shared {
    pub(crate) conn: ConnectionManager,
    /// Prefix of every key, so tests and deployments can share one Redis.
    pub(crate) prefix: String,
}

impl Shared {
    /// Connects (and pings) so a bad URL fails at start, not on the first request.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, SharedError> {
        let client = redis::Client::open(url).map_err(|e| SharedError::BadUrl(e.to_string()))?;
        let mut conn = ConnectionManager::new(client)
            .await
            .map_err(|e| SharedError::Unreachable(e.to_string()))?;
        let _: String = redis::cmd("PING")
            .query_async(&mut conn)
            .await
            .map_err(|e| SharedError::Unreachable(e.to_string()))?;
        Ok(Self {
            conn,
            prefix: prefix.to_owned(),
        })
    }

    pub(crate) fn key(&self, parts: &[&str]) -> String {
        let mut k = self.prefix.clone();
        for p in parts {
            k.push(':');
            k.push_str(p);
        }
        k
    }
}
