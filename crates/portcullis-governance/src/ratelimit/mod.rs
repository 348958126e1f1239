//! Requests and tokens per minute, per API key and per group.
//!
//! Up to four token buckets apply to a caller: the key's and its group's request
//! buckets, and their token buckets. A request passes when every one of them holds
//! at least one unit; it then takes one unit from each request bucket. The tokens an
//! exchange used are debited from the token buckets when it ends ([`RateLimiter::settle`]),
//! so a bucket may go negative and hold back the requests that follow. Checking
//! tokens by "is the bucket positive" needs no estimate of an answer's size and
//! lets the check run before the request body is read; the cost is that requests
//! already in flight may overshoot the limit together, which the debt then repays.
//!
//! Two back ends: in-process ([`local`]) for one gateway, Redis ([`remote`]) so that
//! several replicas share one limit.

pub mod bucket;
pub mod local;
pub mod remote;

use crate::shared::Shared;
use portcullis_core::model::RateLimits;
use portcullis_core::Clock;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum LimitError {
    /// The shared counter store did not answer; callers fail closed.
    #[error("the rate-limit store is unavailable: {0}")]
    Unavailable(String),
}

/// Who is asking, with the limits that apply (read from the key cache, never the
/// database).
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub key_id: &'a str,
    pub group_id: &'a str,
    pub key: RateLimits,
    pub group: RateLimits,
}

/// The four buckets, always in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Slot {
    KeyRequests,
    GroupRequests,
    KeyTokens,
    GroupTokens,
}

impl Slot {
    pub(crate) const ALL: [Slot; 4] = [
        Slot::KeyRequests,
        Slot::GroupRequests,
        Slot::KeyTokens,
        Slot::GroupTokens,
    ];

    pub(crate) fn index(self) -> usize {
        self as usize
    }

    pub(crate) fn is_requests(self) -> bool {
        matches!(self, Slot::KeyRequests | Slot::GroupRequests)
    }

    pub(crate) fn is_group(self) -> bool {
        matches!(self, Slot::GroupRequests | Slot::GroupTokens)
    }
}

impl Subject<'_> {
    pub fn is_limited(&self) -> bool {
        !(self.key.is_unlimited() && self.group.is_unlimited())
    }

    pub fn has_token_limit(&self) -> bool {
        self.key.tpm.is_some() || self.group.tpm.is_some()
    }

    /// The limit of each slot, `None` where there is none.
    pub(crate) fn caps(&self) -> [Option<u64>; 4] {
        [self.key.rpm, self.group.rpm, self.key.tpm, self.group.tpm]
    }

    pub(crate) fn id(&self, slot: Slot) -> &str {
        if slot.is_group() {
            self.group_id
        } else {
            self.key_id
        }
    }
}

/// One kind of limit as the caller sees it (OpenAI's `x-ratelimit-*` headers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub limit: u64,
    pub remaining: u64,
    /// Until the bucket is full again.
    pub reset: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub allowed: bool,
    /// When refused: how long until the request would pass (whole seconds, ≥ 1).
    pub retry_after: Duration,
    /// The tighter of the key's and the group's request limits, if any.
    pub requests: Option<Window>,
    pub tokens: Option<Window>,
}

impl Verdict {
    /// From the slots' limits and their levels after the check.
    pub(crate) fn new(
        caps: &[Option<u64>; 4],
        levels: &[f64; 4],
        allowed: bool,
        wait_ms: u64,
    ) -> Self {
        let window = |slots: [Slot; 2]| {
            slots
                .into_iter()
                .filter_map(|s| caps[s.index()].map(|cap| (cap, levels[s.index()])))
                .map(|(cap, level)| Window {
                    limit: cap,
                    remaining: level.max(0.0).floor() as u64,
                    reset: bucket::reset(cap, level),
                })
                .min_by_key(|w| (w.remaining, std::cmp::Reverse(w.reset)))
        };
        Self {
            allowed,
            retry_after: if allowed {
                Duration::ZERO
            } else {
                Duration::from_secs(wait_ms.div_ceil(1000).max(1))
            },
            requests: window([Slot::KeyRequests, Slot::GroupRequests]),
            tokens: window([Slot::KeyTokens, Slot::GroupTokens]),
        }
    }
}

/// Whether a request may pass, given every slot's level before it: the longest
/// wait among the buckets that lack a unit (0: it passes).
pub(crate) fn wait_for(caps: &[Option<u64>; 4], levels: &[f64; 4]) -> u64 {
    Slot::ALL
        .into_iter()
        .filter_map(|s| caps[s.index()].map(|cap| bucket::wait_ms(cap, levels[s.index()])))
        .max()
        .unwrap_or(0)
}

/// The limiter the data plane calls; one per gateway process.
pub enum RateLimiter {
    Local(local::LocalLimiter),
    Redis(remote::RedisLimiter),
}

impl RateLimiter {
    pub fn local(clock: Arc<dyn Clock>) -> Self {
        RateLimiter::Local(local::LocalLimiter::new(clock))
    }

    pub fn redis(shared: Shared) -> Self {
        RateLimiter::Redis(remote::RedisLimiter::new(shared))
    }

    /// `local` or `redis`, for logs and metrics.
    pub fn backend(&self) -> &'static str {
        match self {
            RateLimiter::Local(_) => "local",
            RateLimiter::Redis(_) => "redis",
        }
    }

    /// Checks and, if allowed, counts one request. Call only for a limited subject.
    pub async fn check(&self, subject: &Subject<'_>) -> Result<Verdict, LimitError> {
        match self {
            RateLimiter::Local(l) => Ok(l.check(subject)),
            RateLimiter::Redis(r) => r.check(subject).await,
        }
    }

    /// Debits the tokens an exchange used. Never waits: the Redis back end sends
    /// the debit from a task, and a failure is logged (the next check then fails
    /// closed if Redis is still away).
    pub fn settle(&self, subject: &Subject<'_>, tokens: u64) {
        if tokens == 0 || !subject.has_token_limit() {
            return;
        }
        match self {
            RateLimiter::Local(l) => l.settle(subject, tokens),
            RateLimiter::Redis(r) => r.settle(subject, tokens),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tighter_limit_shows_and_retry_after_rounds_up() {
        let caps = [Some(10), Some(100), None, Some(1000)];
        let v = Verdict::new(&caps, &[3.0, 50.0, 0.0, -20.0], false, 1_200);
        assert!(!v.allowed);
        assert_eq!(v.retry_after, Duration::from_secs(2));
        let r = v.requests.unwrap_or(Window {
            limit: 0,
            remaining: 0,
            reset: Duration::ZERO,
        });
        assert_eq!((r.limit, r.remaining), (10, 3));
        assert_eq!(r.reset, Duration::from_secs(42));
        let t = v.tokens.map(|w| (w.limit, w.remaining));
        assert_eq!(t, Some((1000, 0)));
        let ok = Verdict::new(&caps, &[3.0, 50.0, 0.0, 1.0], true, 0);
        assert_eq!(ok.retry_after, Duration::ZERO);
        let tiny = Verdict::new(&caps, &[0.0, 50.0, 0.0, 1.0], false, 3);
        assert_eq!(tiny.retry_after, Duration::from_secs(1));
    }

    #[test]
    fn waits_take_the_slowest_bucket() {
        let caps = [Some(60), Some(6), None, None];
        assert_eq!(wait_for(&caps, &[1.0, 1.0, 0.0, 0.0]), 0);
        assert_eq!(wait_for(&caps, &[0.0, 0.5, 0.0, 0.0]), 5_000);
        assert_eq!(wait_for(&[None; 4], &[0.0; 4]), 0);
    }
}
