//! The Model Context Protocol as the gateway reads it, without I/O: JSON-RPC
//! message classification and errors ([`jsonrpc`]), tool definitions, their
//! canonical hash and the text the policy engine scans ([`tools`]), and SSE event
//! rewriting ([`sse`]).
//!
//! Messages stay `serde_json::Value`s so fields the gateway does not know (newer
//! protocol versions, `_meta`) pass through untouched.

pub mod jsonrpc;
pub mod sse;
pub mod tools;

/// Protocol versions of the Streamable HTTP transport with sessions that the
/// gateway relays (the `MCP-Protocol-Version` header).
pub const SESSION_VERSIONS: [&str; 3] = ["2025-03-26", "2025-06-18", "2025-11-25"];
pub const SESSION_HEADER: &str = "mcp-session-id";
pub const VERSION_HEADER: &str = "mcp-protocol-version";
