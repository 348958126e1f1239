//! Resumable POST streams (SEP-1699, MCP 2025-11-25). A server may close the SSE
//! stream of a POST before the response, once it has sent an event with an `id`;
//! the client then GETs `/mcp` with `Last-Event-ID`, and the server replays what
//! followed, the response included. That response must be checked like any
//! other (tool results scanned, lists reconciled), yet on a GET stream the
//! gateway cannot tell which request a response answers.
//!
//! So the ids of the events of a POST stream are the gateway's own: sealed
//! (AES-256-GCM, under a key derived from the master key for this use only)
//! around the proxy, the caller's key, the request (id, kind, tool, subject) and
//! the server's event id. A `Last-Event-ID` that opens resumes that request: the
//! server gets its own event id back and the response on the GET stream is
//! checked as it would have been on the POST stream. Any other `Last-Event-ID`
//! goes to the server unchanged and responses on that stream are still dropped.
//! Nothing is stored, so any replica resumes any stream.
//!
//! What is lost on the way: the placeholders of redacted call arguments (the
//! resumed answer is not restored; it shows the placeholders).

use super::{Expected, Pending};
use portcullis_core::secret::{MasterKey, TokenSealer};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;

const KEY_LABEL: &str = "mcp event id v1";
const ASSOCIATED: &[u8] = b"portcullis-mcp-event-id";
/// Longest id the gateway opens; longer ones are the server's own.
const MAX_TOKEN_LEN: usize = 2048;
/// Longest server event id (or request id, tool name, subject) carried.
const MAX_FIELD_LEN: usize = 256;

#[derive(Serialize, Deserialize)]
struct Claims {
    proxy_id: String,
    subject: Option<String>,
    request_id: Value,
    pending: Pending,
    tool: Option<String>,
    name: String,
    event_id: String,
}

/// A request whose POST stream a GET takes over.
pub(crate) struct Resumed {
    pub expected: Expected,
    pub tool: Option<String>,
    /// The server's own event id, for its `Last-Event-ID`.
    pub event_id: String,
}

/// Seals and opens event ids.
#[derive(Clone)]
pub struct EventIds {
    sealer: TokenSealer,
}

impl fmt::Debug for EventIds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EventIds")
    }
}

impl EventIds {
    pub fn new(master_key: &MasterKey) -> Self {
        Self {
            sealer: master_key.token_sealer(KEY_LABEL),
        }
    }

    /// The id the client sees for the server's event `event_id` on the stream
    /// answering `expected`; `None` when something is too long to carry.
    pub(crate) fn seal(
        &self,
        proxy_id: &str,
        subject: Option<&str>,
        expected: &Expected,
        tool: Option<&str>,
        event_id: &str,
    ) -> Option<String> {
        let long = |s: &str| s.len() > MAX_FIELD_LEN;
        if long(event_id)
            || long(&expected.subject)
            || tool.is_some_and(long)
            || expected.id.as_str().is_some_and(long)
        {
            return None;
        }
        let claims = Claims {
            proxy_id: proxy_id.to_owned(),
            subject: subject.map(str::to_owned),
            request_id: expected.id.clone(),
            pending: expected.pending,
            tool: tool.map(str::to_owned),
            name: expected.subject.clone(),
            event_id: event_id.to_owned(),
        };
        let plain = serde_json::to_vec(&claims).ok()?;
        let token = self.sealer.seal(&plain, ASSOCIATED);
        (token.len() <= MAX_TOKEN_LEN).then_some(token)
    }

    /// The request a `Last-Event-ID` resumes, if the gateway sealed it for this
    /// proxy and this caller.
    pub(crate) fn open(
        &self,
        presented: &str,
        proxy_id: &str,
        subject: Option<&str>,
    ) -> Option<Resumed> {
        let plain = self
            .sealer
            .open(presented, ASSOCIATED, MAX_TOKEN_LEN)
            .ok()?;
        let claims: Claims = serde_json::from_slice(&plain).ok()?;
        if claims.proxy_id != proxy_id || claims.subject.as_deref() != subject {
            return None;
        }
        Some(Resumed {
            expected: Expected {
                id: claims.request_id,
                pending: claims.pending,
                subject: claims.name,
                redactor: None,
                // Not carried across a resumption: its result is not recorded,
                // and a resumed listing is not taken as the whole list.
                flow: None,
                first_page: false,
                translation: None,
            },
            tool: claims.tool,
            event_id: claims.event_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ids(byte: u8) -> EventIds {
        EventIds::new(&MasterKey::from_bytes([byte; 32]))
    }

    fn expected() -> Expected {
        Expected {
            id: json!(7),
            pending: Pending::ToolsCall,
            subject: String::new(),
            redactor: None,
            flow: None,
            first_page: false,
            translation: None,
        }
    }

    #[test]
    fn an_id_opens_for_its_proxy_and_caller_only() {
        let e = ids(1);
        let token = e
            .seal("p1", Some("k1"), &expected(), Some("add"), "stream-1/4")
            .unwrap();
        assert!(!token.contains("stream-1"), "{token}");
        let resumed = ids(1).open(&token, "p1", Some("k1")).unwrap();
        assert_eq!(resumed.expected.id, json!(7));
        assert_eq!(resumed.expected.pending, Pending::ToolsCall);
        assert_eq!(resumed.tool.as_deref(), Some("add"));
        assert_eq!(resumed.event_id, "stream-1/4");
        assert!(e.open(&token, "p2", Some("k1")).is_none());
        assert!(e.open(&token, "p1", Some("k2")).is_none());
        assert!(e.open(&token, "p1", None).is_none());
        assert!(ids(2).open(&token, "p1", Some("k1")).is_none());
    }

    #[test]
    fn the_servers_own_ids_and_tampered_ones_do_not_open() {
        let e = ids(1);
        assert!(e.open("stream-1/4", "p1", None).is_none());
        assert!(e.open("", "p1", None).is_none());
        let token = e.seal("p1", None, &expected(), None, "9").unwrap();
        let mut bytes = token.into_bytes();
        bytes[20] = if bytes[20] == b'A' { b'B' } else { b'A' };
        assert!(e
            .open(&String::from_utf8(bytes).unwrap(), "p1", None)
            .is_none());
        assert!(e.open(&"A".repeat(MAX_TOKEN_LEN + 1), "p1", None).is_none());
    }

    #[test]
    fn what_is_too_long_to_carry_is_not_sealed() {
        let e = ids(1);
        assert!(e
            .seal(
                "p1",
                None,
                &expected(),
                None,
                &"x".repeat(MAX_FIELD_LEN + 1)
            )
            .is_none());
        let mut long = expected();
        long.id = json!("i".repeat(MAX_FIELD_LEN + 1));
        assert!(e.seal("p1", None, &long, None, "1").is_none());
    }
}
