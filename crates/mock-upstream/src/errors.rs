//! Provider-format error bodies, so the gateway's error mapping is tested
//! against what OpenAI and Anthropic really send.

use std::borrow::Cow;

use bytes::{BufMut, Bytes};
use http::{HeaderName, HeaderValue, Response, StatusCode};

use crate::body::MockBody;
use crate::text::push_json_str;

/// Which provider's conventions (error format, request-id header) a route
/// follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Flavor {
    OpenAi,
    Anthropic,
}

#[derive(Debug)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    openai_type: &'static str,
    anthropic_type: &'static str,
    code: Option<&'static str>,
    message: Cow<'static, str>,
    allow: Option<&'static str>,
}

impl ApiError {
    fn new(
        status: StatusCode,
        openai_type: &'static str,
        anthropic_type: &'static str,
        code: Option<&'static str>,
        message: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            status,
            openai_type,
            anthropic_type,
            code,
            message: message.into(),
            allow: None,
        }
    }

    pub(crate) fn invalid_request(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "invalid_request_error",
            None,
            message,
        )
    }

    pub(crate) fn invalid_json(err: &serde_json::Error) -> Self {
        Self::invalid_request(format!(
            "We could not parse the JSON body of your request: {err}"
        ))
    }

    pub(crate) fn missing_key(flavor: Flavor) -> Self {
        let message = match flavor {
            Flavor::OpenAi => "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            Flavor::Anthropic => "x-api-key header is required",
        };
        Self::new(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            "authentication_error",
            None,
            message,
        )
    }

    pub(crate) fn wrong_key(flavor: Flavor) -> Self {
        let message = match flavor {
            Flavor::OpenAi => "Incorrect API key provided.",
            Flavor::Anthropic => "invalid x-api-key",
        };
        Self::new(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            "authentication_error",
            Some("invalid_api_key"),
            message,
        )
    }

    /// The error a `mock-error-NNN` fault asks for.
    pub(crate) fn fault(status: u16) -> Self {
        match status {
            400 => Self::invalid_request("mock-error-400: bad request, as requested"),
            401 => Self::new(
                StatusCode::UNAUTHORIZED,
                "invalid_request_error",
                "authentication_error",
                Some("invalid_api_key"),
                "mock-error-401: incorrect API key provided, as requested",
            ),
            429 => Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "requests",
                "rate_limit_error",
                Some("rate_limit_exceeded"),
                "mock-error-429: rate limit reached, as requested. Please try again in 1s.",
            ),
            503 => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                "overloaded_error",
                None,
                "mock-error-503: the engine is currently overloaded, as requested",
            ),
            _ => Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "api_error",
                None,
                "mock-error-500: the server had an error while processing your request, as requested",
            ),
        }
    }

    pub(crate) fn not_found(method: &str, path: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "not_found_error",
            Some("unknown_url"),
            format!("Invalid URL ({method} {path})"),
        )
    }

    pub(crate) fn method_not_allowed(method: &str, path: &str, allow: &'static str) -> Self {
        let mut err = Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request_error",
            "invalid_request_error",
            Some("method_not_allowed"),
            format!("Invalid method for URL ({method} {path})"),
        );
        err.allow = Some(allow);
        err
    }

    pub(crate) fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            "request_too_large",
            Some("request_too_large"),
            format!("Request body exceeds the maximum size of {limit} bytes"),
        )
    }

    pub(crate) fn internal(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "api_error",
            None,
            message,
        )
    }

    pub(crate) fn body(&self, flavor: Flavor) -> Bytes {
        let mut out = Vec::with_capacity(self.message.len() + 96);
        match flavor {
            Flavor::OpenAi => {
                out.put_slice(b"{\"error\":{\"message\":");
                push_json_str(&mut out, &self.message);
                out.put_slice(b",\"type\":");
                push_json_str(&mut out, self.openai_type);
                out.put_slice(b",\"param\":null,\"code\":");
                match self.code {
                    Some(code) => push_json_str(&mut out, code),
                    None => out.put_slice(b"null"),
                }
                out.put_slice(b"}}");
            }
            Flavor::Anthropic => {
                out.put_slice(b"{\"type\":\"error\",\"error\":{\"type\":");
                push_json_str(&mut out, self.anthropic_type);
                out.put_slice(b",\"message\":");
                push_json_str(&mut out, &self.message);
                out.put_slice(b"}}");
            }
        }
        out.into()
    }

    pub(crate) fn into_response(self, flavor: Flavor) -> Response<MockBody> {
        let mut resp = Response::new(MockBody::full(self.body(flavor)));
        *resp.status_mut() = self.status;
        let headers = resp.headers_mut();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(allow) = self.allow {
            headers.insert(http::header::ALLOW, HeaderValue::from_static(allow));
        }
        if self.status == StatusCode::TOO_MANY_REQUESTS {
            for (name, value) in rate_limit_headers(flavor) {
                headers.insert(
                    HeaderName::from_static(name),
                    HeaderValue::from_static(value),
                );
            }
        }
        resp
    }
}

/// What a client needs to back off: `retry-after` plus each provider's
/// exhausted-quota headers.
fn rate_limit_headers(flavor: Flavor) -> &'static [(&'static str, &'static str)] {
    const OPENAI: &[(&str, &str)] = &[
        ("retry-after", "1"),
        ("x-ratelimit-limit-requests", "60"),
        ("x-ratelimit-remaining-requests", "0"),
        ("x-ratelimit-reset-requests", "1s"),
        ("x-ratelimit-limit-tokens", "150000"),
        ("x-ratelimit-remaining-tokens", "0"),
        ("x-ratelimit-reset-tokens", "1s"),
    ];
    const ANTHROPIC: &[(&str, &str)] = &[
        ("retry-after", "1"),
        ("x-ratelimit-limit-requests", "60"),
        ("x-ratelimit-remaining-requests", "0"),
        ("x-ratelimit-reset-requests", "1s"),
        ("anthropic-ratelimit-requests-limit", "60"),
        ("anthropic-ratelimit-requests-remaining", "0"),
    ];
    match flavor {
        Flavor::OpenAi => OPENAI,
        Flavor::Anthropic => ANTHROPIC,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_follow_each_provider_format() {
        let err = ApiError::fault(429);
        let openai: serde_json::Value = serde_json::from_slice(&err.body(Flavor::OpenAi)).unwrap();
        assert_eq!(openai["error"]["code"], "rate_limit_exceeded");
        assert!(openai["error"]["param"].is_null());
        let anthropic: serde_json::Value =
            serde_json::from_slice(&err.body(Flavor::Anthropic)).unwrap();
        assert_eq!(anthropic["type"], "error");
        assert_eq!(anthropic["error"]["type"], "rate_limit_error");
    }
}
