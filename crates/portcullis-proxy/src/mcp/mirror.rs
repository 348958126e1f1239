//! Requests of the stateless era (2026-07-28): their mirrored headers checked
//! against the body on the way in, and rebuilt from the body on the way out.
//!
//! The gateway never forwards the client's `Mcp-Method`, `Mcp-Name` or
//! `Mcp-Param-*`: it writes them from the message the server gets, so a
//! redacted argument is not leaked through its header mirror and a server or
//! load balancer behind the gateway routes on what was checked.

use super::Refusal;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::StatusCode;
use portcullis_protocol::mcp::stateless::{self, Mismatch};
use serde_json::{json, Value};

/// Whether a stateless request's headers mirror its body. Refusals are HTTP
/// 400, as the spec says.
pub(super) fn admit(headers: &HeaderMap, message: &Value) -> Result<(), Refusal> {
    let get = |name: &str| headers.get(name).map(HeaderValue::as_bytes);
    let version = get(portcullis_protocol::mcp::VERSION_HEADER).unwrap_or_default();
    stateless::check_headers(
        version,
        get(stateless::METHOD_HEADER),
        get(stateless::NAME_HEADER),
        message,
    )
    .map_err(|why: Mismatch| {
        Refusal::new(
            StatusCode::BAD_REQUEST,
            stateless::HEADER_MISMATCH,
            why.to_string(),
        )
    })
}

/// `Mcp-Method` and `Mcp-Name` for the message as forwarded.
pub(super) fn method_mirrors(message: &Value) -> Vec<(HeaderName, HeaderValue)> {
    let mut out = Vec::new();
    let Some(method) = message.get("method").and_then(Value::as_str) else {
        return out;
    };
    push(&mut out, stateless::METHOD_HEADER, method);
    let target = stateless::named_field(method)
        .and_then(|(pointer, _)| message.pointer(pointer))
        .and_then(Value::as_str);
    if let Some(target) = target {
        push(&mut out, stateless::NAME_HEADER, target);
    }
    out
}

/// Adds the `Mcp-Param-*` mirrors of a `tools/call` of the tool `definition`
/// to `out`, from the arguments in `message` (as forwarded).
pub(super) fn param_mirrors(
    definition: &Value,
    message: &Value,
    out: &mut Vec<(HeaderName, HeaderValue)>,
) {
    let (Some(schema), Some(arguments)) = (
        definition.get("inputSchema"),
        message.pointer("/params/arguments"),
    ) else {
        return;
    };
    for (suffix, value) in stateless::param_headers(schema, arguments) {
        let name = format!("{}{suffix}", stateless::PARAM_HEADER_PREFIX);
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::from_str(&value)) {
            out.push((name, value));
        }
    }
}

/// The client's `Mcp-Param-*` headers must mirror the arguments they name (as
/// the client sent them, before any redaction): a missing, malformed or
/// different mirror is refused, as the spec asks of servers. Mirrors the tool
/// does not declare are dropped.
pub(super) fn check_params(
    headers: &HeaderMap,
    definition: &Value,
    message: &Value,
) -> Result<(), (i64, String, Value)> {
    let (Some(schema), Some(arguments)) = (
        definition.get("inputSchema"),
        message.pointer("/params/arguments"),
    ) else {
        return Ok(());
    };
    for (suffix, expected) in stateless::param_headers(schema, arguments) {
        let name = format!("{}{suffix}", stateless::PARAM_HEADER_PREFIX);
        let sent = headers.get(name.as_str()).map(HeaderValue::as_bytes);
        let matches = sent
            .and_then(stateless::decode)
            .is_some_and(|sent| Some(sent) == stateless::decode(expected.as_bytes()));
        if !matches {
            let why = if sent.is_none() {
                "is missing"
            } else {
                "does not match the argument it mirrors"
            };
            return Err((
                stateless::HEADER_MISMATCH,
                format!("the {name} header {why}"),
                json!({"reason": "header_mismatch", "header": name}),
            ));
        }
    }
    Ok(())
}

fn push(out: &mut Vec<(HeaderName, HeaderValue)>, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(&stateless::encode(value)) {
        out.push((HeaderName::from_static(name), v));
    }
}
