//! Per-request fault selection and timing overrides.
//!
//! Everything is chosen per request (by `model` or `x-mock-*` headers) so one
//! running mock can serve every test case, including concurrent ones.

use std::time::Duration;

use http::HeaderMap;

use crate::body::STALL;
use crate::errors::ApiError;
use crate::MockConfig;

/// Largest `x-mock-chunks` accepted; more would only measure the mock.
const MAX_CHUNKS: u64 = 1000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fault {
    /// An error status with a provider-format body.
    Error(u16),
    /// Never send the response head.
    Stall,
    /// Send the head (and the first event of a stream), then nothing.
    StallStream,
    /// Drop the connection: after two events for streams, before the head
    /// otherwise.
    Disconnect,
}

impl Fault {
    pub(crate) fn from_name(name: &str) -> Option<Fault> {
        Some(match name {
            "mock-error-400" => Fault::Error(400),
            "mock-error-401" => Fault::Error(401),
            "mock-error-429" => Fault::Error(429),
            "mock-error-500" => Fault::Error(500),
            "mock-error-503" => Fault::Error(503),
            "mock-stall" => Fault::Stall,
            "mock-stall-stream" => Fault::StallStream,
            "mock-disconnect" => Fault::Disconnect,
            _ => return None,
        })
    }

    /// The `x-mock-fault` header; an unknown name is a 400 so a typo in a test
    /// fails loudly instead of silently testing the happy path.
    pub(crate) fn from_headers(headers: &HeaderMap) -> Result<Option<Fault>, ApiError> {
        let Some(value) = headers.get("x-mock-fault") else {
            return Ok(None);
        };
        let name = value.to_str().unwrap_or_default().trim();
        if name.is_empty() || name == "none" {
            return Ok(None);
        }
        match Fault::from_name(name) {
            Some(fault) => Ok(Some(fault)),
            None => Err(ApiError::invalid_request(format!(
                "x-mock-fault: unknown fault {name:?}"
            ))),
        }
    }
}

/// Streaming shape and pacing of one request.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Timing {
    pub latency: Duration,
    pub chunk_delay: Duration,
    pub chunks: usize,
}

impl Timing {
    pub(crate) fn from_config(config: &MockConfig) -> Self {
        Self {
            latency: config.latency,
            chunk_delay: config.chunk_delay,
            chunks: config.chunks.max(1),
        }
    }

    /// Applies `x-mock-latency-ms`, `x-mock-chunk-delay-ms` and
    /// `x-mock-chunks`; malformed values are a 400 rather than ignored.
    pub(crate) fn with_headers(mut self, headers: &HeaderMap) -> Result<Self, ApiError> {
        if let Some(ms) = header_u64(headers, "x-mock-latency-ms")? {
            self.latency = millis(ms);
        }
        if let Some(ms) = header_u64(headers, "x-mock-chunk-delay-ms")? {
            self.chunk_delay = millis(ms);
        }
        if let Some(n) = header_u64(headers, "x-mock-chunks")? {
            if !(1..=MAX_CHUNKS).contains(&n) {
                return Err(ApiError::invalid_request(format!(
                    "x-mock-chunks must be between 1 and {MAX_CHUNKS}"
                )));
            }
            self.chunks = n as usize;
        }
        Ok(self)
    }
}

fn millis(ms: u64) -> Duration {
    Duration::from_millis(ms).min(STALL)
}

fn header_u64(headers: &HeaderMap, name: &str) -> Result<Option<u64>, ApiError> {
    let Some(value) = headers.get(name) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .map(Some)
        .ok_or_else(|| ApiError::invalid_request(format!("{name} must be an integer")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn names_map_to_faults() {
        assert_eq!(Fault::from_name("mock-error-429"), Some(Fault::Error(429)));
        assert_eq!(Fault::from_name("mock-stall"), Some(Fault::Stall));
        assert_eq!(Fault::from_name("gpt-4o"), None);
    }

    #[test]
    fn header_overrides_and_validation() {
        let mut h = HeaderMap::new();
        h.insert("x-mock-chunks", HeaderValue::from_static("3"));
        h.insert("x-mock-latency-ms", HeaderValue::from_static("20"));
        let t = Timing::from_config(&MockConfig::default())
            .with_headers(&h)
            .unwrap();
        assert_eq!((t.chunks, t.latency), (3, Duration::from_millis(20)));
        h.insert("x-mock-chunks", HeaderValue::from_static("0"));
        assert!(Timing::from_config(&MockConfig::default())
            .with_headers(&h)
            .is_err());
        h.insert("x-mock-fault", HeaderValue::from_static("mock-nope"));
        assert!(Fault::from_headers(&h).is_err());
    }
}
