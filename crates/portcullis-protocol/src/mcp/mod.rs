//! The Model Context Protocol as the gateway reads it, without I/O: JSON-RPC
//! message classification and errors ([`jsonrpc`]), tool definitions, their
//! canonical hash and the text the policy engine scans ([`tools`]), the text of
//! results, prompts and resources the model reads ([`content`]), SSE event
//! rewriting ([`sse`]), the naming rules of a federation of servers
//! ([`federation`]), and the header rules of the stateless era ([`stateless`]).
//!
//! Messages stay `serde_json::Value`s so fields the gateway does not know (newer
//! protocol versions, `_meta`) pass through untouched.

pub mod content;
pub mod era;
pub mod federation;
pub mod jsonrpc;
pub mod sse;
pub mod stateless;
pub mod tools;

/// Protocol versions of the Streamable HTTP transport with sessions that the
/// gateway relays (the `MCP-Protocol-Version` header).
pub const SESSION_VERSIONS: [&str; 3] = ["2025-03-26", "2025-06-18", "2025-11-25"];
pub const SESSION_HEADER: &str = "mcp-session-id";
pub const VERSION_HEADER: &str = "mcp-protocol-version";

/// Whether a request's `MCP-Protocol-Version` is one the gateway understands.
/// Absent is fine (the initialize request, and 2025-03-26 clients, send none).
pub fn version_supported(header: Option<&[u8]>) -> bool {
    header.is_none_or(|v| {
        SESSION_VERSIONS.iter().any(|s| s.as_bytes() == v) || stateless::is_stateless(v)
    })
}

/// Every protocol version the gateway relays, oldest first (the `supported`
/// list of an unsupported-version error).
pub fn supported_versions() -> impl Iterator<Item = &'static str> {
    SESSION_VERSIONS.into_iter().chain(stateless::VERSIONS)
}

#[cfg(test)]
mod tests {
    #[test]
    fn versions() {
        assert!(super::version_supported(None));
        assert!(super::version_supported(Some(b"2025-06-18")));
        assert!(super::version_supported(Some(b"2025-11-25")));
        assert!(super::version_supported(Some(b"2026-07-28")));
        assert!(!super::version_supported(Some(b"2026-01-01")));
        assert!(!super::version_supported(Some(b"")));
    }
}
