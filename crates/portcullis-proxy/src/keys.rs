//! Authenticating callers by Portcullis API key, with a short-lived cache so the
//! request path reads the database only for keys it has not seen recently.
//!
//! The cache is keyed by the SHA-256 of the presented key (never the key itself).
//! Revocation through the admin API clears it at once; on other replicas a revoked
//! key stops working within [`POSITIVE_TTL`].

use jiff::Timestamp;
use portcullis_core::model::{KeyScope, RateLimits};
use portcullis_core::{api_key, Clock};
use portcullis_governance::ratelimit::Subject;
use portcullis_store::DynStore;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

pub const POSITIVE_TTL: Duration = Duration::from_secs(5);
const NEGATIVE_TTL: Duration = Duration::from_secs(2);
const MAX_ENTRIES: usize = 50_000;
/// Don't rewrite `last_used_at` more often than this.
const TOUCH_INTERVAL_MS: i64 = 60_000;

/// Who is calling, as far as the data plane cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub key_id: String,
    pub group_id: String,
    pub scopes: Vec<KeyScope>,
    pub expires_at: Option<Timestamp>,
    /// The key's own limits and its group's, as of when the key was cached.
    pub key_limits: RateLimits,
    pub group_limits: RateLimits,
    /// The group's MCP tool allow and deny lists, compiled when the key was cached.
    pub group_tools: portcullis_core::mcp::ToolAccess,
}

impl Identity {
    /// What the rate limiter needs; `None` when neither key nor group is limited.
    pub fn rate_subject(&self) -> Option<Subject<'_>> {
        let subject = Subject {
            key_id: &self.key_id,
            group_id: &self.group_id,
            key: self.key_limits,
            group: self.group_limits,
        };
        subject.is_limited().then_some(subject)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRejection {
    Missing,
    Invalid,
    /// Valid key without the scope this proxy kind needs.
    WrongScope,
    StoreUnavailable,
}

impl KeyRejection {
    /// The HTTP status a refusal gets on protocols whose errors are not a provider's
    /// (MCP, A2A): 401, 403 for a key without the scope, 503 when keys cannot be read.
    pub fn http_status(self) -> http::StatusCode {
        match self {
            KeyRejection::Missing | KeyRejection::Invalid => http::StatusCode::UNAUTHORIZED,
            KeyRejection::WrongScope => http::StatusCode::FORBIDDEN,
            KeyRejection::StoreUnavailable => http::StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            KeyRejection::Missing => {
                "missing API key: send Authorization: Bearer pcx_... or x-api-key"
            }
            KeyRejection::Invalid => "invalid, revoked or expired API key",
            KeyRejection::WrongScope => "this API key is not allowed to use this proxy",
            KeyRejection::StoreUnavailable => "the gateway cannot check API keys right now",
        }
    }
}

struct Entry {
    fetched: Instant,
    identity: Option<Arc<Identity>>,
}

pub struct KeyAuthenticator {
    store: DynStore,
    clock: Arc<dyn Clock>,
    cache: RwLock<HashMap<String, Entry>>,
}

impl KeyAuthenticator {
    pub fn new(store: DynStore, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            clock,
            cache: RwLock::new(HashMap::new()),
        }
    }

    /// Forgets every cached key (after a revocation or a key change).
    pub fn invalidate(&self) {
        self.cache
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// The key a request presents in its headers, authenticated for `scope`.
    pub async fn authenticate_headers(
        &self,
        headers: &http::HeaderMap,
        scope: KeyScope,
    ) -> Result<Arc<Identity>, KeyRejection> {
        let presented = presented_key(headers).ok_or(KeyRejection::Missing)?;
        self.authenticate(presented, scope).await
    }

    pub async fn authenticate(
        &self,
        presented: &str,
        scope: KeyScope,
    ) -> Result<Arc<Identity>, KeyRejection> {
        let digest = api_key::digest(presented);
        let now = self.clock.now();
        let cached = {
            let cache = self.cache.read().unwrap_or_else(|p| p.into_inner());
            cache.get(&digest).and_then(|e| {
                let ttl = if e.identity.is_some() {
                    POSITIVE_TTL
                } else {
                    NEGATIVE_TTL
                };
                (e.fetched.elapsed() < ttl).then(|| e.identity.clone())
            })
        };
        let identity = match cached {
            Some(identity) => identity,
            None => {
                let identity = self.load(presented, now).await?;
                self.remember(digest, identity.clone());
                identity
            }
        };
        let identity = identity.ok_or(KeyRejection::Invalid)?;
        if identity.expires_at.is_some_and(|t| t <= now) {
            return Err(KeyRejection::Invalid);
        }
        if !identity.scopes.contains(&scope) {
            return Err(KeyRejection::WrongScope);
        }
        Ok(identity)
    }

    async fn load(
        &self,
        presented: &str,
        now: Timestamp,
    ) -> Result<Option<Arc<Identity>>, KeyRejection> {
        let Some(prefix) = api_key::lookup_prefix(presented) else {
            return Ok(None);
        };
        let found = self.store.api_key_by_prefix(prefix).await.map_err(|e| {
            tracing::error!(error = %e, "API key lookup failed");
            KeyRejection::StoreUnavailable
        })?;
        let Some((key, digest)) = found else {
            return Ok(None);
        };
        if !api_key::matches(presented, &digest) || !key.is_usable_at(now) {
            return Ok(None);
        }
        // The group's limits ride along in the cache, so the request path never
        // reads them from the database.
        let group = self.store.group(&key.group_id).await.map_err(|e| {
            tracing::error!(error = %e, "group lookup failed");
            KeyRejection::StoreUnavailable
        })?;
        let (group_limits, group_tools) = group
            .map(|g| {
                let tools =
                    portcullis_core::mcp::ToolAccess::new(&g.mcp_tool_allow, &g.mcp_tool_deny);
                (g.rate_limits, tools)
            })
            .unwrap_or_default();
        let stale = key
            .last_used_at
            .is_none_or(|t| now.as_millisecond() - t.as_millisecond() > TOUCH_INTERVAL_MS);
        if stale {
            let (store, id) = (self.store.clone(), key.id.clone());
            tokio::spawn(async move {
                if let Err(e) = store.touch_api_key(&id, now).await {
                    tracing::warn!(error = %e, "could not record API key use");
                }
            });
        }
        Ok(Some(Arc::new(Identity {
            key_id: key.id,
            group_id: key.group_id,
            scopes: key.scopes,
            expires_at: key.expires_at,
            key_limits: key.rate_limits,
            group_limits,
            group_tools,
        })))
    }

    fn remember(&self, digest: String, identity: Option<Arc<Identity>>) {
        let mut cache = self.cache.write().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= MAX_ENTRIES {
            cache.retain(|_, e| e.fetched.elapsed() < POSITIVE_TTL);
            if cache.len() >= MAX_ENTRIES {
                cache.clear();
            }
        }
        cache.insert(
            digest,
            Entry {
                fetched: Instant::now(),
                identity,
            },
        );
    }
}

/// The key a caller presented: `Authorization: Bearer ...` or `x-api-key`.
pub fn presented_key(headers: &http::HeaderMap) -> Option<&str> {
    if let Some(v) = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        if let Some((scheme, token)) = v.split_once(' ') {
            if scheme.eq_ignore_ascii_case("bearer") {
                return Some(token.trim());
            }
        }
    }
    headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}
