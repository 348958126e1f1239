//! Errors in the caller's protocol: OpenAI error objects, Anthropic error objects,
//! and the final SSE event that ends a cut stream.

use crate::Dialect;
use bytes::Bytes;
use serde_json::json;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    InvalidRequest,
    Authentication,
    PermissionDenied,
    PolicyViolation,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    BudgetExceeded,
    UpstreamUnavailable,
    UpstreamTimeout,
    Internal,
}

impl ErrorKind {
    pub fn status(self) -> u16 {
        match self {
            ErrorKind::InvalidRequest => 400,
            ErrorKind::Authentication => 401,
            ErrorKind::BudgetExceeded => 402,
            ErrorKind::PermissionDenied | ErrorKind::PolicyViolation => 403,
            ErrorKind::NotFound => 404,
            ErrorKind::PayloadTooLarge => 413,
            ErrorKind::RateLimited => 429,
            ErrorKind::Internal => 500,
            ErrorKind::UpstreamUnavailable => 502,
            ErrorKind::UpstreamTimeout => 504,
        }
    }

    /// OpenAI's `type` and `code`.
    fn openai(self) -> (&'static str, &'static str) {
        match self {
            ErrorKind::InvalidRequest => ("invalid_request_error", "invalid_request"),
            ErrorKind::Authentication => ("authentication_error", "invalid_api_key"),
            ErrorKind::PermissionDenied => ("permission_error", "permission_denied"),
            ErrorKind::PolicyViolation => ("policy_violation", "policy_violation"),
            ErrorKind::NotFound => ("invalid_request_error", "unknown_url"),
            ErrorKind::PayloadTooLarge => ("invalid_request_error", "request_too_large"),
            ErrorKind::RateLimited => ("rate_limit_error", "rate_limit_exceeded"),
            ErrorKind::BudgetExceeded => ("insufficient_quota", "budget_exceeded"),
            ErrorKind::UpstreamUnavailable => ("api_error", "upstream_unavailable"),
            ErrorKind::UpstreamTimeout => ("api_error", "upstream_timeout"),
            ErrorKind::Internal => ("api_error", "internal_error"),
        }
    }

    /// Anthropic's error `type`.
    fn anthropic(self) -> &'static str {
        match self {
            ErrorKind::InvalidRequest | ErrorKind::PayloadTooLarge => "invalid_request_error",
            ErrorKind::Authentication => "authentication_error",
            ErrorKind::PermissionDenied => "permission_error",
            ErrorKind::PolicyViolation => "policy_violation",
            ErrorKind::NotFound => "not_found_error",
            ErrorKind::RateLimited => "rate_limit_error",
            ErrorKind::BudgetExceeded => "billing_error",
            ErrorKind::UpstreamUnavailable | ErrorKind::Internal => "api_error",
            ErrorKind::UpstreamTimeout => "timeout_error",
        }
    }
}

fn object(dialect: Dialect, kind: ErrorKind, message: &str) -> serde_json::Value {
    match dialect {
        Dialect::OpenAi => {
            let (kind_type, code) = kind.openai();
            json!({"error": {"message": message, "type": kind_type, "param": null, "code": code}})
        }
        Dialect::Anthropic => {
            json!({"type": "error", "error": {"type": kind.anthropic(), "message": message}})
        }
    }
}

/// A JSON error body.
pub fn body(dialect: Dialect, kind: ErrorKind, message: &str) -> Bytes {
    Bytes::from(object(dialect, kind, message).to_string())
}

/// The SSE event that ends a stream the gateway had to cut.
pub fn sse_event(dialect: Dialect, kind: ErrorKind, message: &str) -> Bytes {
    let data = object(dialect, kind, message);
    match dialect {
        Dialect::OpenAi => Bytes::from(format!("data: {data}\n\n")),
        Dialect::Anthropic => Bytes::from(format!("event: error\ndata: {data}\n\n")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_follow_each_provider() {
        let openai: serde_json::Value =
            serde_json::from_slice(&body(Dialect::OpenAi, ErrorKind::Authentication, "bad key"))
                .unwrap_or_default();
        assert_eq!(openai["error"]["type"], "authentication_error");
        assert_eq!(openai["error"]["message"], "bad key");
        let anthropic: serde_json::Value = serde_json::from_slice(&body(
            Dialect::Anthropic,
            ErrorKind::UpstreamTimeout,
            "slow",
        ))
        .unwrap_or_default();
        assert_eq!(anthropic["type"], "error");
        assert_eq!(anthropic["error"]["type"], "timeout_error");
        assert!(
            sse_event(Dialect::Anthropic, ErrorKind::PolicyViolation, "x")
                .starts_with(b"event: error\ndata: {")
        );
        assert!(sse_event(Dialect::OpenAi, ErrorKind::PolicyViolation, "x").ends_with(b"\n\n"));
    }
}
