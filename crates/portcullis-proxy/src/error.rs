//! Why a proxied request failed, where the fault lies, and how the caller sees it.

use portcullis_protocol::ErrorKind;

/// Low-cardinality reason, used as a metric label and in events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    Unauthenticated,
    /// The key may not use this proxy (scope).
    Forbidden,
    /// A policy rule with action `block` fired.
    PolicyBlocked,
    /// A `block` budget of the caller is used up.
    BudgetExceeded,
    BadRequest,
    NotFound,
    MethodNotAllowed,
    BodyTooLarge,
    /// Over the key's or the group's requests or tokens per minute.
    RateLimited,
    /// The shared rate-limit counters (Redis) did not answer: refused, fail closed.
    LimiterUnavailable,
    ProxyStopped,
    UpstreamConnect,
    UpstreamTimeout,
    UpstreamIdle,
    UpstreamBroken,
    ClientClosed,
    Internal,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Unauthenticated => "unauthenticated",
            Reason::Forbidden => "forbidden",
            Reason::PolicyBlocked => "policy_blocked",
            Reason::BudgetExceeded => "budget_exceeded",
            Reason::BadRequest => "bad_request",
            Reason::NotFound => "not_found",
            Reason::MethodNotAllowed => "method_not_allowed",
            Reason::BodyTooLarge => "body_too_large",
            Reason::RateLimited => "rate_limited",
            Reason::LimiterUnavailable => "limiter_unavailable",
            Reason::ProxyStopped => "proxy_stopped",
            Reason::UpstreamConnect => "upstream_connect",
            Reason::UpstreamTimeout => "upstream_timeout",
            Reason::UpstreamIdle => "upstream_idle",
            Reason::UpstreamBroken => "upstream_broken",
            Reason::ClientClosed => "client_closed",
            Reason::Internal => "internal",
        }
    }

    /// The caller's protocol error for this reason. Exhaustive on purpose: a new
    /// reason must decide how it looks to clients.
    pub fn kind(self) -> ErrorKind {
        match self {
            Reason::Unauthenticated => ErrorKind::Authentication,
            Reason::Forbidden => ErrorKind::PermissionDenied,
            Reason::PolicyBlocked => ErrorKind::PolicyViolation,
            Reason::BudgetExceeded => ErrorKind::BudgetExceeded,
            Reason::BadRequest | Reason::MethodNotAllowed => ErrorKind::InvalidRequest,
            Reason::NotFound => ErrorKind::NotFound,
            Reason::BodyTooLarge => ErrorKind::PayloadTooLarge,
            Reason::RateLimited => ErrorKind::RateLimited,
            Reason::ProxyStopped | Reason::UpstreamConnect | Reason::UpstreamBroken => {
                ErrorKind::UpstreamUnavailable
            }
            Reason::UpstreamTimeout | Reason::UpstreamIdle => ErrorKind::UpstreamTimeout,
            Reason::ClientClosed | Reason::Internal | Reason::LimiterUnavailable => {
                ErrorKind::Internal
            }
        }
    }

    pub fn status(self) -> u16 {
        match self {
            Reason::MethodNotAllowed => 405,
            Reason::ProxyStopped | Reason::LimiterUnavailable => 503,
            Reason::ClientClosed => 499,
            other => other.kind().status(),
        }
    }

    /// Whether the fault is the upstream's (counted as upstream errors).
    pub fn is_upstream(self) -> bool {
        matches!(
            self,
            Reason::UpstreamConnect
                | Reason::UpstreamTimeout
                | Reason::UpstreamIdle
                | Reason::UpstreamBroken
        )
    }
}

#[derive(Debug, Clone)]
pub struct ProxyError {
    pub reason: Reason,
    /// Safe to show the caller: never echoes upstream payloads or credentials.
    pub message: String,
}

impl ProxyError {
    pub fn new(reason: Reason, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
        }
    }
}
