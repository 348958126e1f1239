//! JSON-RPC 2.0 as MCP uses it: one message per HTTP body (batches were removed
//! in 2025-06-18), ids that are strings or numbers.

use serde_json::{json, Value};

pub const PARSE_ERROR: i64 = -32700;
pub const INVALID_REQUEST: i64 = -32600;
pub const METHOD_NOT_FOUND: i64 = -32601;
pub const INVALID_PARAMS: i64 = -32602;
pub const INTERNAL_ERROR: i64 = -32603;
/// Implementation-defined (server error range): a policy rule blocked the message.
pub const POLICY_BLOCKED: i64 = -32001;
/// Implementation-defined: the gateway could not check the tool inventory or the
/// policy, so it refused (fail closed).
pub const GATEWAY_UNAVAILABLE: i64 = -32002;
/// Implementation-defined: the upstream server failed or answered unusably.
pub const UPSTREAM_ERROR: i64 = -32003;
/// Implementation-defined: a per-key tool rate limit refused the call (`data`
/// carries `retry_after_secs`).
pub const RATE_LIMITED: i64 = -32004;

/// What a message is.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Request { id: Value, method: String },
    Notification { method: String },
    Response { id: Value },
}

/// Why a JSON value is not a JSON-RPC message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    #[error("batches are not supported: send one JSON-RPC message per request")]
    Batch,
    #[error("a JSON-RPC message must be an object")]
    NotObject,
    #[error("jsonrpc must be \"2.0\"")]
    Version,
    #[error("method must be a string")]
    Method,
    #[error("id must be a string or a number")]
    Id,
    #[error("a response needs exactly one of result and error")]
    Response,
}

/// Classifies one message.
pub fn classify(value: &Value) -> Result<Kind, Invalid> {
    let obj = match value {
        Value::Object(obj) => obj,
        Value::Array(_) => return Err(Invalid::Batch),
        _ => return Err(Invalid::NotObject),
    };
    if obj.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err(Invalid::Version);
    }
    let id = obj.get("id");
    if let Some(id) = id {
        if !(id.is_string() || id.is_number()) {
            return Err(Invalid::Id);
        }
    }
    match obj.get("method") {
        Some(Value::String(method)) => Ok(match id {
            Some(id) => Kind::Request {
                id: id.clone(),
                method: method.clone(),
            },
            None => Kind::Notification {
                method: method.clone(),
            },
        }),
        Some(_) => Err(Invalid::Method),
        None => {
            let id = id.ok_or(Invalid::Response)?;
            match (obj.contains_key("result"), obj.contains_key("error")) {
                (true, false) | (false, true) => Ok(Kind::Response { id: id.clone() }),
                _ => Err(Invalid::Response),
            }
        }
    }
}

/// A JSON-RPC 2.0 error response. `id` is `null` when the request's id is
/// unknown, as JSON-RPC 2.0 requires (A2A answers this way).
pub fn error(id: Value, code: i64, message: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
}

/// An MCP error response. MCP's schema types `id` as an optional string or
/// integer, never `null`: an error to a request whose id is unknown (a body
/// that is not JSON, a refusal before the body is read) leaves it out.
pub fn mcp_error(id: Value, code: i64, message: &str) -> Value {
    if id.is_null() {
        json!({"jsonrpc": "2.0", "error": {"code": code, "message": message}})
    } else {
        error(id, code, message)
    }
}

/// The same, with `data` (rule ids, reasons) for machines.
pub fn error_with_data(id: Value, code: i64, message: &str, data: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message, "data": data}})
}

/// The method name as recorded in events and metrics: printable ASCII, at most
/// 64 bytes.
pub fn method_label(method: &str) -> String {
    method
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(64)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_requests_notifications_and_responses() {
        let req = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"});
        assert_eq!(
            classify(&req),
            Ok(Kind::Request {
                id: json!(1),
                method: "tools/list".into()
            })
        );
        let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        assert_eq!(
            classify(&note),
            Ok(Kind::Notification {
                method: "notifications/initialized".into()
            })
        );
        let resp = json!({"jsonrpc": "2.0", "id": "a", "result": {}});
        assert_eq!(classify(&resp), Ok(Kind::Response { id: json!("a") }));
    }

    #[test]
    fn refuses_what_is_not_a_message() {
        assert_eq!(classify(&json!([])), Err(Invalid::Batch));
        assert_eq!(classify(&json!("x")), Err(Invalid::NotObject));
        assert_eq!(
            classify(&json!({"jsonrpc": "1.0", "id": 1, "method": "a"})),
            Err(Invalid::Version)
        );
        assert_eq!(
            classify(&json!({"jsonrpc": "2.0", "id": 1, "method": 3})),
            Err(Invalid::Method)
        );
        assert_eq!(
            classify(&json!({"jsonrpc": "2.0", "id": {}, "method": "a"})),
            Err(Invalid::Id)
        );
        assert_eq!(
            classify(&json!({"jsonrpc": "2.0", "id": 1, "result": 1, "error": {}})),
            Err(Invalid::Response)
        );
        assert_eq!(
            classify(&json!({"jsonrpc": "2.0", "result": 1})),
            Err(Invalid::Response)
        );
    }

    #[test]
    fn errors_and_labels() {
        let e = error(Value::Null, PARSE_ERROR, "bad");
        assert_eq!(e["error"]["code"], -32700);
        assert!(e.as_object().unwrap()["id"].is_null());
        let e = mcp_error(Value::Null, PARSE_ERROR, "bad");
        assert_eq!(e["error"]["code"], -32700);
        assert!(!e.as_object().unwrap().contains_key("id"), "{e}");
        assert_eq!(
            mcp_error(json!(7), PARSE_ERROR, "bad"),
            error(json!(7), PARSE_ERROR, "bad")
        );
        assert_eq!(mcp_error(json!("a"), PARSE_ERROR, "bad")["id"], "a");
        assert_eq!(method_label("tools/call\n\u{200b}x"), "tools/callx");
        assert_eq!(method_label(&"a".repeat(100)).len(), 64);
    }
}
