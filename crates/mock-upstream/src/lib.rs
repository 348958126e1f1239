//! A stand-in for the OpenAI and Anthropic APIs, so the gateway's tests and
//! benchmarks can run without network access or provider keys.
//!
//! It answers with the providers' real JSON shapes and SSE event sequences,
//! echoes the caller's text (`"You said: ..."`) so tests can check that content
//! round-trips (or answers the `x-mock-answer` header's text, so a test can make
//! the answer say what no request does), and injects faults per request (by
//! `model` or `x-mock-fault`),
//! so a single running instance serves every test case.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use mock_upstream::{MockConfig, MockUpstream};
//! let mock = MockUpstream::start(([127, 0, 0, 1], 0).into(), MockConfig::default()).await?;
//! let url = format!("{}/v1/chat/completions", mock.base_url());
//! # let _ = url;
//! mock.shutdown().await;
//! # Ok(())
//! # }
//! ```

mod anthropic;
mod base64;
mod body;
mod errors;
mod faults;
mod handler;
mod openai;
mod recorder;
mod server;
mod sse;
mod text;

use std::time::Duration;

pub use recorder::RecordedRequest;
pub use server::MockUpstream;

/// Defaults for every request; most can be overridden per request with
/// `x-mock-*` headers so one running mock serves tests with different needs.
#[derive(Clone, Debug)]
pub struct MockConfig {
    /// Content chunks per stream (`x-mock-chunks` overrides). Exactly this many
    /// content deltas are sent, some empty when the reply is shorter, so that
    /// tests and benchmarks can rely on the frame count.
    pub chunks: usize,
    /// Wait before each SSE event of a stream (`x-mock-chunk-delay-ms`
    /// overrides), to model token generation time.
    pub chunk_delay: Duration,
    /// Wait before the response head of provider routes (`x-mock-latency-ms`
    /// overrides), to model time to first byte.
    pub latency: Duration,
    /// If set, provider routes require exactly this key and answer 401 in the
    /// provider's format otherwise; if unset any key, or none, is accepted.
    pub expected_key: Option<String>,
    /// Requests kept for inspection, oldest dropped first; 0 turns recording off.
    pub record_limit: usize,
}

impl Default for MockConfig {
    fn default() -> Self {
        Self {
            chunks: 8,
            chunk_delay: Duration::ZERO,
            latency: Duration::ZERO,
            expected_key: None,
            record_limit: 1000,
        }
    }
}
