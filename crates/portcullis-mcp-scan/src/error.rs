//! The scanner's errors: why a server could not be scanned at all. Problems met
//! on the way (a list or a read that failed) are warnings of the inventory.

/// Messages name the server and what failed, never a header value or an
/// environment value; server-provided text is clipped.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// The target cannot be scanned as given (bad URL, no command).
    #[error("{0}")]
    Target(String),
    #[error("TLS set-up failed: {0}")]
    Tls(String),
    /// Connecting failed (refused, DNS, TLS handshake).
    #[error("cannot reach {target}: {detail}")]
    Unreachable { target: String, detail: String },
    /// The stdio server's program could not be started.
    #[error("cannot start {program:?}: {detail}")]
    Start { program: String, detail: String },
    /// No answer within the per-answer timeout (seconds).
    #[error("no answer within {0} s")]
    Timeout(u64),
    /// HTTP 401 or 403.
    #[error("{method}: the server refused the credentials (HTTP {status})")]
    Refused { method: String, status: u16 },
    /// An answer MCP does not allow here: an HTTP error status, a JSON-RPC error
    /// to `initialize` or `tools/list`, no response, a message over the limit.
    #[error("{0}")]
    Protocol(String),
    /// The built-in detection packs did not compile.
    #[error("compiling the detection packs: {0}")]
    Engines(String),
}

pub type Result<T, E = ScanError> = std::result::Result<T, E>;
