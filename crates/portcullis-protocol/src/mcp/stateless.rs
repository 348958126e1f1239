//! The stateless era of Streamable HTTP (protocol 2026-07-28): no `initialize`
//! and no session; every request carries its protocol version, client info and
//! capabilities in `params._meta`, and mirrors its method and target into HTTP
//! headers (`Mcp-Method`, `Mcp-Name`) so intermediaries can route on them.
//!
//! A mismatch between the headers and the body is a confused-deputy vector: a
//! hop that routes or authorises on `Mcp-Name: read_file` while the server runs
//! the body's `delete_file`. The gateway reads the body, so it refuses any
//! request whose headers disagree with it, as the spec asks of servers.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::Value;

/// Protocol versions of the stateless transport that the gateway relays.
pub const VERSIONS: [&str; 1] = ["2026-07-28"];
pub const METHOD_HEADER: &str = "mcp-method";
pub const NAME_HEADER: &str = "mcp-name";
/// Prefix of the headers mirroring tool arguments marked `x-mcp-header`.
pub const PARAM_HEADER_PREFIX: &str = "mcp-param-";
/// `_meta` key of the request's protocol version.
pub const META_VERSION: &str = "io.modelcontextprotocol/protocolVersion";

/// Headers and body disagree, or a required header is missing or malformed
/// (HTTP 400).
pub const HEADER_MISMATCH: i64 = -32020;
/// The request's protocol version is not one the receiver speaks (HTTP 400;
/// `data` lists `supported` and `requested`).
pub const UNSUPPORTED_VERSION: i64 = -32022;

/// Whether `version` (an `MCP-Protocol-Version` value) is of the stateless era.
pub fn is_stateless(version: &[u8]) -> bool {
    VERSIONS.iter().any(|v| v.as_bytes() == version)
}

/// Why a stateless request's headers do not match its body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Mismatch {
    #[error("the Mcp-Method header is missing")]
    MissingMethod,
    #[error("the Mcp-Method header does not match the body's method")]
    Method,
    #[error("the Mcp-Name header is missing (required for {0})")]
    MissingName(&'static str),
    #[error("the Mcp-Name header does not match the body's {0}")]
    Name(&'static str),
    #[error("the MCP-Protocol-Version header does not match params._meta[\"{META_VERSION}\"]")]
    Version,
    #[error("the {0} header is not a valid value (plain visible ASCII or =?base64?...?=)")]
    Malformed(&'static str),
}

/// The request field `Mcp-Name` mirrors for `method`, as a JSON pointer and a
/// name for messages.
pub fn named_field(method: &str) -> Option<(&'static str, &'static str)> {
    match method {
        "tools/call" | "prompts/get" => Some(("/params/name", "params.name")),
        "resources/read" => Some(("/params/uri", "params.uri")),
        "tasks/get" | "tasks/update" | "tasks/cancel" => Some(("/params/taskId", "params.taskId")),
        _ => None,
    }
}

/// Checks a stateless message against its mirrored headers: `version` is the
/// `MCP-Protocol-Version` header, `method` and `name` the `Mcp-Method` and
/// `Mcp-Name` headers as sent (`None` when absent). Requests and notifications
/// must name their method; a request whose method has a target must name it;
/// a request must carry the header's version in `_meta`. Responses (to a
/// server's requests, which this era no longer has) carry no method and pass.
pub fn check_headers(
    version: &[u8],
    method: Option<&[u8]>,
    name: Option<&[u8]>,
    message: &Value,
) -> Result<(), Mismatch> {
    let Some(body_method) = message.get("method").and_then(Value::as_str) else {
        return Ok(());
    };
    let method = method.ok_or(Mismatch::MissingMethod)?;
    if decode(method).ok_or(Mismatch::Malformed("Mcp-Method"))? != body_method.as_bytes() {
        return Err(Mismatch::Method);
    }
    let is_request = message.get("id").is_some();
    if let Some((pointer, field)) = named_field(body_method) {
        if let Some(target) = message.pointer(pointer).and_then(Value::as_str) {
            let name = name.ok_or(Mismatch::MissingName(field))?;
            if decode(name).ok_or(Mismatch::Malformed("Mcp-Name"))? != target.as_bytes() {
                return Err(Mismatch::Name(field));
            }
        }
    }
    if is_request {
        let declared = message
            .pointer("/params/_meta")
            .and_then(|m| m.get(META_VERSION))
            .and_then(Value::as_str);
        // An absent version is the server's to refuse (-32602); a different
        // one is a mismatch.
        if declared.is_some_and(|d| d.as_bytes() != version) {
            return Err(Mismatch::Version);
        }
    }
    Ok(())
}

/// `_meta` key of the client's capabilities for this request.
pub const META_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
/// `_meta` key of the log level the client asks for on this request.
pub const META_LOG_LEVEL: &str = "io.modelcontextprotocol/logLevel";

/// Requests a stateless client may send (the schema's `ClientRequest`, without
/// the tasks extension).
pub const CLIENT_METHODS: [&str; 10] = [
    "server/discover",
    "tools/list",
    "tools/call",
    "prompts/list",
    "prompts/get",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "completion/complete",
    "subscriptions/listen",
];

/// What a stateless request's `params._meta` must carry: its protocol version
/// and its client capabilities (an object). `Err`: the invalid-params message.
pub fn check_meta(message: &Value) -> Result<(), &'static str> {
    let meta = message
        .pointer("/params/_meta")
        .and_then(Value::as_object)
        .ok_or("params._meta is required on every request of this protocol version")?;
    if !meta.get(META_VERSION).is_some_and(Value::is_string) {
        return Err("params._meta lacks io.modelcontextprotocol/protocolVersion");
    }
    if !meta.get(META_CAPABILITIES).is_some_and(Value::is_object) {
        return Err("params._meta lacks io.modelcontextprotocol/clientCapabilities (an object)");
    }
    Ok(())
}

/// Severity of an MCP log level (`debug` 0 to `emergency` 7).
pub fn log_severity(level: &str) -> Option<u8> {
    const LEVELS: [&str; 8] = [
        "debug",
        "info",
        "notice",
        "warning",
        "error",
        "critical",
        "alert",
        "emergency",
    ];
    LEVELS.iter().position(|l| *l == level).map(|p| p as u8)
}

/// A mirrored header value as the text it stands for: plain visible ASCII
/// (spaces and tabs inside), or `=?base64?<standard base64>?=` for values
/// that are not. `None` when it is neither.
pub fn decode(value: &[u8]) -> Option<Vec<u8>> {
    if let Some(inner) = value
        .strip_prefix(b"=?base64?")
        .and_then(|v| v.strip_suffix(b"?="))
    {
        return STANDARD.decode(inner).ok();
    }
    let plain = value
        .iter()
        .all(|&b| b == b'\t' || (0x20..0x7f).contains(&b));
    plain.then(|| value.to_vec())
}

/// The header value mirroring `value`, encoded as the spec says: plain when it
/// is printable ASCII without leading or trailing whitespace, base64 otherwise.
pub fn encode(value: &str) -> String {
    let bytes = value.as_bytes();
    let edge_space = |b: Option<&u8>| matches!(b, Some(b' ' | b'\t'));
    let plain = bytes.iter().all(|&b| (0x20..0x7f).contains(&b))
        && !edge_space(bytes.first())
        && !edge_space(bytes.last());
    if plain {
        value.to_owned()
    } else {
        format!("=?base64?{}?=", STANDARD.encode(bytes))
    }
}

/// The `Mcp-Param-*` headers a `tools/call` of a tool with `input_schema`
/// carries for `arguments`: `(header name suffix, encoded value)` for each
/// top-level property marked `x-mcp-header` whose argument is a string, a
/// number or a boolean. The gateway sends these (computed from the arguments
/// it forwards, after redaction) instead of the client's own.
pub fn param_headers(input_schema: &Value, arguments: &Value) -> Vec<(String, String)> {
    let Some(properties) = input_schema.get("properties").and_then(Value::as_object) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (property, schema) in properties {
        let Some(header) = schema.get("x-mcp-header").and_then(Value::as_str) else {
            continue;
        };
        let valid_name = !header.is_empty()
            && header.len() <= 64
            && header
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid_name {
            continue;
        }
        let text = match arguments.get(property) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            Some(Value::Bool(b)) => b.to_string(),
            _ => continue,
        };
        let encoded = encode(&text);
        // The spec's limit: a longer mirror is left out.
        if encoded.len() <= 8192 {
            out.push((header.to_ascii_lowercase(), encoded));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn call(name: &str, version: &str) -> Value {
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
            "name": name, "arguments": {}, "_meta": {META_VERSION: version}}})
    }

    #[test]
    fn headers_must_mirror_the_body() {
        let v = b"2026-07-28".as_slice();
        let ok = call("read_file", "2026-07-28");
        assert_eq!(
            check_headers(v, Some(b"tools/call"), Some(b"read_file"), &ok),
            Ok(())
        );
        assert_eq!(
            check_headers(v, Some(b"tools/call"), Some(b"delete_file"), &ok),
            Err(Mismatch::Name("params.name"))
        );
        assert_eq!(
            check_headers(v, Some(b"tools/list"), Some(b"read_file"), &ok),
            Err(Mismatch::Method)
        );
        assert_eq!(
            check_headers(v, None, Some(b"read_file"), &ok),
            Err(Mismatch::MissingMethod)
        );
        assert_eq!(
            check_headers(v, Some(b"tools/call"), None, &ok),
            Err(Mismatch::MissingName("params.name"))
        );
        let other = call("read_file", "2026-01-01");
        assert_eq!(
            check_headers(v, Some(b"tools/call"), Some(b"read_file"), &other),
            Err(Mismatch::Version)
        );
        let encoded = encode("lire ünë");
        assert!(encoded.starts_with("=?base64?"), "{encoded}");
        let unicode = call("lire ünë", "2026-07-28");
        assert_eq!(
            check_headers(v, Some(b"tools/call"), Some(encoded.as_bytes()), &unicode),
            Ok(())
        );
        assert_eq!(
            check_headers(v, Some(b"tools/call"), Some(b"=?base64?%%%?="), &unicode),
            Err(Mismatch::Malformed("Mcp-Name"))
        );
        let read = json!({"jsonrpc": "2.0", "id": 2, "method": "resources/read",
            "params": {"uri": "file:///a b", "_meta": {}}});
        assert_eq!(
            check_headers(v, Some(b"resources/read"), Some(b"file:///a b"), &read),
            Ok(())
        );
        let list =
            json!({"jsonrpc": "2.0", "id": 3, "method": "tools/list", "params": {"_meta": {}}});
        assert_eq!(check_headers(v, Some(b"tools/list"), None, &list), Ok(()));
    }

    #[test]
    fn meta_names_version_and_capabilities() {
        let ok = json!({"params": {"_meta": {META_VERSION: "2026-07-28", META_CAPABILITIES: {}}}});
        assert_eq!(check_meta(&ok), Ok(()));
        for bad in [
            json!({"params": {}}),
            json!({"params": {"_meta": {META_CAPABILITIES: {}}}}),
            json!({"params": {"_meta": {META_VERSION: "2026-07-28"}}}),
            json!({"params": {"_meta": {META_VERSION: "2026-07-28", META_CAPABILITIES: []}}}),
        ] {
            assert!(check_meta(&bad).is_err(), "{bad}");
        }
        assert_eq!(log_severity("warning"), Some(3));
        assert_eq!(log_severity("loud"), None);
    }

    #[test]
    fn values_are_encoded_only_when_a_header_cannot_carry_them() {
        assert_eq!(encode("us-west1"), "us-west1");
        assert_eq!(encode("Hello, 世界"), "=?base64?SGVsbG8sIOS4lueVjA==?=");
        assert_eq!(encode(" padded "), "=?base64?IHBhZGRlZCA=?=");
        assert_eq!(encode("line1\nline2"), "=?base64?bGluZTEKbGluZTI=?=");
        for v in ["us-west1", "Hello, 世界", " padded ", "line1\nline2"] {
            assert_eq!(decode(encode(v).as_bytes()).as_deref(), Some(v.as_bytes()));
        }
        assert_eq!(decode(b"a\x01b"), None);
    }

    #[test]
    fn param_headers_come_from_marked_primitive_arguments() {
        let schema = json!({"type": "object", "properties": {
            "region": {"type": "string", "x-mcp-header": "Region"},
            "limit": {"type": "integer", "x-mcp-header": "Limit"},
            "filter": {"type": "object", "x-mcp-header": "Filter"},
            "bad": {"type": "string", "x-mcp-header": "a:b"},
            "query": {"type": "string"}}});
        let args =
            json!({"region": "eu west", "limit": 5, "filter": {"a": 1}, "bad": "x", "query": "q"});
        let mut headers = param_headers(&schema, &args);
        headers.sort();
        assert_eq!(
            headers,
            vec![
                ("limit".into(), "5".into()),
                ("region".into(), "eu west".into())
            ]
        );
    }
}
