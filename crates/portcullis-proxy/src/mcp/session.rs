//! Client-facing MCP session ids.
//!
//! The gateway gives clients its own `Mcp-Session-Id`: AES-256-GCM (under a key
//! derived from the master key for this use only) over what the gateway needs to
//! serve the session: the proxy, the subject (the authenticated key id), the
//! upstream session id per upstream server, the protocol version and when it was
//! issued. Nothing is kept in memory, so any replica holding the same master key
//! serves any session; a client can neither read nor change the id, and an id
//! presented by another key, to another proxy, or altered opens to nothing: the
//! client is told 404, as for any session the gateway does not know.

use http::HeaderValue;
use portcullis_core::secret::{MasterKey, TokenSealer};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Label of the key derived from the master key for session ids.
const KEY_LABEL: &str = "mcp session id v1";
/// Associated data: the format, so a token sealed for another use cannot open here.
const ASSOCIATED: &[u8] = b"portcullis/mcp-session/v1";
/// Longest session id the gateway issues or reads (characters).
pub const MAX_TOKEN_LEN: usize = 2048;
/// Longest upstream session id the gateway carries.
pub const MAX_UPSTREAM_ID_LEN: usize = 256;
/// Most upstream servers one session id carries.
pub const MAX_UPSTREAMS: usize = 8;
/// Longest protocol version string carried.
const MAX_VERSION_LEN: usize = 32;

/// What a session id carries. `Debug` leaves out the upstream session ids.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionClaims {
    #[serde(rename = "p")]
    pub proxy_id: String,
    /// The key id that opened the session; `None` for proxies without keys.
    #[serde(rename = "s", default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// (upstream server, its session id); the server is `""` for a proxy with
    /// one upstream.
    #[serde(rename = "u", default, skip_serializing_if = "Vec::is_empty")]
    pub upstreams: Vec<(String, String)>,
    /// The protocol version the client initialized with.
    #[serde(rename = "v", default)]
    pub protocol_version: String,
    /// Unix seconds.
    #[serde(rename = "t")]
    pub issued_at: i64,
    /// The server speaks the stateless era: the client's capabilities and
    /// identity from its `initialize`, put in each request's `_meta`.
    #[serde(rename = "m", default, skip_serializing_if = "Option::is_none")]
    pub stateless_meta: Option<serde_json::Value>,
    /// The server speaks only the legacy HTTP+SSE transport: the session is
    /// the gateway's shared one with it ([`super::legacy_upstream`]).
    #[serde(rename = "l", default, skip_serializing_if = "std::ops::Not::not")]
    pub legacy_upstream: bool,
}

impl fmt::Debug for SessionClaims {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionClaims")
            .field("proxy_id", &self.proxy_id)
            .field("subject", &self.subject)
            .field(
                "upstreams",
                &self.upstreams.iter().map(|(s, _)| s).collect::<Vec<_>>(),
            )
            .field("protocol_version", &self.protocol_version)
            .field("issued_at", &self.issued_at)
            .field("stateless", &self.stateless_meta.is_some())
            .field("legacy_upstream", &self.legacy_upstream)
            .finish()
    }
}

impl SessionClaims {
    /// The upstream session id for `server`, if the upstream gave one.
    pub fn upstream(&self, server: &str) -> Option<&str> {
        self.upstreams
            .iter()
            .find(|(s, _)| s == server)
            .map(|(_, id)| id.as_str())
    }
}

/// Why a presented session id was refused: for the log only, the client is told
/// 404 whatever the reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// Not a session id of this gateway, altered, or sealed under another key.
    Unreadable,
    /// Issued by another proxy.
    OtherProxy,
    /// Issued to another key.
    OtherSubject,
    /// Ended with DELETE (sessions the gateway itself holds, see [`Ended`]).
    Ended,
}

impl Rejection {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unreadable => "unreadable or tampered",
            Self::OtherProxy => "issued by another proxy",
            Self::OtherSubject => "issued to another key",
            Self::Ended => "ended by its client",
        }
    }
}

/// Why a session id could not be issued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IssueError {
    #[error(
        "the upstream's session id is longer than {MAX_UPSTREAM_ID_LEN} bytes or not visible ASCII"
    )]
    UpstreamId,
    #[error("a session id cannot carry more than {MAX_UPSTREAMS} upstream sessions")]
    TooManyUpstreams,
    #[error("the session id would be longer than {MAX_TOKEN_LEN} characters")]
    TooLong,
}

/// Seals and opens session ids.
#[derive(Clone, Debug)]
pub struct Sessions {
    sealer: TokenSealer,
}

impl Sessions {
    pub fn new(master_key: &MasterKey) -> Self {
        Self {
            sealer: master_key.token_sealer(KEY_LABEL),
        }
    }

    /// The upstream's `Mcp-Session-Id`, if it is one the gateway can carry.
    pub fn upstream_id(value: &HeaderValue) -> Result<String, IssueError> {
        let bytes = value.as_bytes();
        // The spec: visible ASCII (0x21 to 0x7E).
        if bytes.is_empty()
            || bytes.len() > MAX_UPSTREAM_ID_LEN
            || !bytes.iter().all(|b| (0x21..=0x7e).contains(b))
        {
            return Err(IssueError::UpstreamId);
        }
        value
            .to_str()
            .map(str::to_owned)
            .map_err(|_| IssueError::UpstreamId)
    }

    /// A protocol version as carried: bounded.
    pub fn version(requested: &str) -> String {
        requested.chars().take(MAX_VERSION_LEN).collect()
    }

    pub fn issue(&self, claims: &SessionClaims) -> Result<HeaderValue, IssueError> {
        if claims.upstreams.len() > MAX_UPSTREAMS {
            return Err(IssueError::TooManyUpstreams);
        }
        if claims
            .upstreams
            .iter()
            .any(|(_, id)| id.is_empty() || id.len() > MAX_UPSTREAM_ID_LEN)
        {
            return Err(IssueError::UpstreamId);
        }
        let plain = serde_json::to_vec(claims).map_err(|_| IssueError::TooLong)?;
        let token = self.sealer.seal(&plain, ASSOCIATED);
        if token.len() > MAX_TOKEN_LEN {
            return Err(IssueError::TooLong);
        }
        HeaderValue::from_str(&token).map_err(|_| IssueError::TooLong)
    }

    /// Opens a presented session id for `proxy_id` and `subject`.
    pub fn open(
        &self,
        presented: &HeaderValue,
        proxy_id: &str,
        subject: Option<&str>,
    ) -> Result<SessionClaims, Rejection> {
        let token = presented.to_str().map_err(|_| Rejection::Unreadable)?;
        let plain = self
            .sealer
            .open(token, ASSOCIATED, MAX_TOKEN_LEN)
            .map_err(|_| Rejection::Unreadable)?;
        let claims: SessionClaims =
            serde_json::from_slice(&plain).map_err(|_| Rejection::Unreadable)?;
        if claims.proxy_id != proxy_id {
            return Err(Rejection::OtherProxy);
        }
        if claims.subject.as_deref() != subject {
            return Err(Rejection::OtherSubject);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> SessionClaims {
        SessionClaims {
            proxy_id: "proxy-1".into(),
            subject: Some("key-1".into()),
            upstreams: vec![("".into(), "0f9c2a7e4b5d4e6f8a1b2c3d4e5f6a7b".into())],
            protocol_version: "2025-11-25".into(),
            issued_at: 1_790_000_000,
            stateless_meta: None,
            legacy_upstream: false,
        }
    }

    #[test]
    fn seals_and_opens_on_another_replica() {
        let key = MasterKey::generate();
        let token = Sessions::new(&key).issue(&claims());
        let Ok(token) = token else {
            panic!("not issued: {token:?}")
        };
        let text = token.to_str().unwrap_or_default();
        assert!(
            !text.contains("0f9c2a7e"),
            "the upstream id is not readable"
        );
        assert!(!text.contains("key-1") && !text.contains("proxy-1"));
        assert!(text.len() < 300, "{} characters", text.len());
        let replica = MasterKey::parse(&key.to_base64()).map(|k| Sessions::new(&k));
        let Ok(replica) = replica else {
            panic!("key does not parse")
        };
        let opened = replica.open(&token, "proxy-1", Some("key-1"));
        assert_eq!(opened.as_ref().ok(), Some(&claims()));
        assert_eq!(
            opened.ok().and_then(|c| c.upstream("").map(str::to_owned)),
            Some("0f9c2a7e4b5d4e6f8a1b2c3d4e5f6a7b".to_owned())
        );
    }

    #[test]
    fn a_session_on_a_stateless_server_carries_the_clients_meta() {
        let sessions = Sessions::new(&MasterKey::generate());
        let meta = serde_json::json!({
            "io.modelcontextprotocol/clientCapabilities": {"elicitation": {"form": {}}, "roots": {}},
            "io.modelcontextprotocol/clientInfo": {"name": "an-ide", "version": "12.3.4"},
            "io.modelcontextprotocol/logLevel": "debug"});
        let claims = SessionClaims {
            upstreams: Vec::new(),
            stateless_meta: Some(meta),
            ..claims()
        };
        let Ok(token) = sessions.issue(&claims) else {
            panic!("not issued")
        };
        assert!(token.len() < 800, "{} characters", token.len());
        let opened = sessions.open(&token, "proxy-1", Some("key-1"));
        assert_eq!(opened.ok(), Some(claims));
    }

    #[test]
    fn an_ended_id_stays_ended() {
        let ended = Ended::default();
        let (a, b) = (
            HeaderValue::from_static("session-a"),
            HeaderValue::from_static("session-b"),
        );
        assert!(!ended.is_ended(&a));
        ended.end(&a);
        ended.end(&a);
        assert!(ended.is_ended(&a) && !ended.is_ended(&b));
    }

    #[test]
    fn another_subject_proxy_or_key_is_refused() {
        let key = MasterKey::generate();
        let sessions = Sessions::new(&key);
        let Ok(token) = sessions.issue(&claims()) else {
            panic!("not issued")
        };
        assert_eq!(
            sessions.open(&token, "proxy-1", Some("key-2")),
            Err(Rejection::OtherSubject)
        );
        assert_eq!(
            sessions.open(&token, "proxy-1", None),
            Err(Rejection::OtherSubject)
        );
        assert_eq!(
            sessions.open(&token, "proxy-2", Some("key-1")),
            Err(Rejection::OtherProxy)
        );
        assert_eq!(
            Sessions::new(&MasterKey::generate()).open(&token, "proxy-1", Some("key-1")),
            Err(Rejection::Unreadable)
        );
        // Sealed by the master key's other use (credentials): not a session id.
        let sealed = key.seal("{}", "x");
        let other = HeaderValue::from_str(&sealed).unwrap_or(HeaderValue::from_static("x"));
        assert_eq!(
            sessions.open(&other, "proxy-1", Some("key-1")),
            Err(Rejection::Unreadable)
        );
    }

    #[test]
    fn tampered_or_oversized_ids_are_refused() {
        let sessions = Sessions::new(&MasterKey::generate());
        let Ok(token) = sessions.issue(&claims()) else {
            panic!("not issued")
        };
        let text = token.to_str().unwrap_or_default().to_owned();
        for i in [0, text.len() / 2, text.len() - 1] {
            let mut bytes = text.clone().into_bytes();
            bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
            let tampered = HeaderValue::from_bytes(&bytes).unwrap_or(HeaderValue::from_static("x"));
            assert_eq!(
                sessions.open(&tampered, "proxy-1", Some("key-1")),
                Err(Rejection::Unreadable),
                "byte {i}"
            );
        }
        let long = HeaderValue::from_str(&"A".repeat(MAX_TOKEN_LEN + 1))
            .unwrap_or(HeaderValue::from_static("x"));
        assert_eq!(
            sessions.open(&long, "proxy-1", Some("key-1")),
            Err(Rejection::Unreadable)
        );
        // An upstream id the gateway will not carry.
        assert_eq!(
            Sessions::upstream_id(&HeaderValue::from_static("has space")),
            Err(IssueError::UpstreamId)
        );
        let huge = HeaderValue::from_str(&"a".repeat(MAX_UPSTREAM_ID_LEN + 1))
            .unwrap_or(HeaderValue::from_static(""));
        assert_eq!(Sessions::upstream_id(&huge), Err(IssueError::UpstreamId));
        let many = SessionClaims {
            upstreams: (0..=MAX_UPSTREAMS)
                .map(|i| (i.to_string(), "id".to_owned()))
                .collect(),
            ..claims()
        };
        assert_eq!(sessions.issue(&many), Err(IssueError::TooManyUpstreams));
    }

    #[test]
    fn debug_leaves_out_upstream_session_ids() {
        let shown = format!("{:?}", claims());
        assert!(!shown.contains("0f9c2a7e"), "{shown}");
        assert!(shown.contains("key-1"));
    }
}

/// Session ids ended with DELETE whose end no server enforces: those of
/// sessions the gateway answers itself (a session client of a stateless
/// server). Kept in this replica's memory, the 100,000 most recent; another
/// replica does not know of them.
#[derive(Default)]
pub struct Ended(std::sync::Mutex<EndedIds>);

/// SHA-256 digests of ended ids, and the order they ended in (oldest first).
#[derive(Default)]
pub struct EndedIds {
    ids: std::collections::HashSet<[u8; 32]>,
    order: std::collections::VecDeque<[u8; 32]>,
}

impl Ended {
    const MAX: usize = 100_000;

    fn digest(presented: &HeaderValue) -> [u8; 32] {
        use sha2::Digest as _;
        sha2::Sha256::digest(presented.as_bytes()).into()
    }

    pub fn end(&self, presented: &HeaderValue) {
        let digest = Self::digest(presented);
        let mut ended = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if ended.ids.insert(digest) {
            ended.order.push_back(digest);
            if ended.order.len() > Self::MAX {
                if let Some(oldest) = ended.order.pop_front() {
                    ended.ids.remove(&oldest);
                }
            }
        }
    }

    pub fn is_ended(&self, presented: &HeaderValue) -> bool {
        let digest = Self::digest(presented);
        let ended = self.0.lock().unwrap_or_else(|p| p.into_inner());
        ended.ids.contains(&digest)
    }
}
