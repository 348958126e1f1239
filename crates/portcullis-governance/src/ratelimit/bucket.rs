//! Token-bucket arithmetic, shared by both back ends (the Redis script mirrors it).
//!
//! A bucket holds up to `cap` units and refills `cap` per minute, continuously.
//! A request needs one unit in every bucket that applies: request buckets give it
//! up, token buckets only have to be positive (actual tokens are debited after the
//! exchange, which may leave them negative and so delays what follows).

use std::time::Duration;

pub const WINDOW_MS: f64 = 60_000.0;

/// Units per millisecond.
pub fn rate(cap: u64) -> f64 {
    cap as f64 / WINDOW_MS
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    pub level: f64,
    pub at_ms: i64,
    /// The limit it was last used with, to tell when it is full again.
    pub cap: u64,
}

impl Bucket {
    pub fn full(cap: u64, now_ms: i64) -> Self {
        Self {
            level: cap as f64,
            at_ms: now_ms,
            cap,
        }
    }

    /// Brings the level up to `now_ms` under limit `cap`. A lowered limit clamps
    /// the level; a raised one grants its extra room at once (what was used stays
    /// used), so a caller does not wait out the old, smaller limit.
    pub fn refill(&mut self, cap: u64, now_ms: i64) {
        let elapsed = now_ms.saturating_sub(self.at_ms).max(0) as f64;
        let raised = cap.saturating_sub(self.cap) as f64;
        self.level = (self.level + raised + elapsed * rate(cap)).min(cap as f64);
        self.at_ms = self.at_ms.max(now_ms);
        self.cap = cap;
    }

    /// Whether it would be full at `now_ms`: then it equals a new bucket and can go.
    pub fn is_idle(&self, now_ms: i64) -> bool {
        let elapsed = now_ms.saturating_sub(self.at_ms).max(0) as f64;
        self.level + elapsed * rate(self.cap) >= self.cap as f64
    }
}

/// Milliseconds until a bucket at `level` holds one unit (0 if it does).
pub fn wait_ms(cap: u64, level: f64) -> u64 {
    if level >= 1.0 || cap == 0 {
        return 0;
    }
    ((1.0 - level) / rate(cap)).ceil() as u64
}

/// Time until a bucket at `level` is full again.
pub fn reset(cap: u64, level: f64) -> Duration {
    if cap == 0 || level >= cap as f64 {
        return Duration::ZERO;
    }
    Duration::from_millis(((cap as f64 - level) / rate(cap)).ceil() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_raised_limit_grants_its_extra_room_at_once() {
        let mut b = Bucket::full(1, 0);
        b.level = 0.0;
        b.refill(1000, 0);
        assert!((b.level - 999.0).abs() < 1e-9, "level {}", b.level);
        // Lowering clamps.
        b.refill(10, 0);
        assert_eq!(b.level, 10.0);
        // Same limit again: nothing granted without time passing.
        b.level = 0.0;
        b.refill(10, 0);
        assert_eq!(b.level, 0.0);
    }

    #[test]
    fn refills_continuously_up_to_the_cap() {
        let mut b = Bucket::full(60, 0);
        b.level = 0.0;
        b.refill(60, 500);
        assert!((b.level - 0.5).abs() < 1e-9);
        b.refill(60, 10_000);
        assert!((b.level - 10.0).abs() < 1e-9);
        b.refill(60, 10_000_000);
        assert_eq!(b.level, 60.0);
    }

    #[test]
    fn time_never_runs_backwards() {
        let mut b = Bucket::full(60, 1_000);
        b.level = 1.0;
        b.refill(60, 0);
        assert_eq!(b.level, 1.0);
        assert_eq!(b.at_ms, 1_000);
    }

    #[test]
    fn a_lowered_limit_clamps_the_level() {
        let mut b = Bucket::full(100, 0);
        b.refill(10, 0);
        assert_eq!(b.level, 10.0);
    }

    #[test]
    fn waits_are_exact_and_cover_debt() {
        // 60 per minute: one per second.
        assert_eq!(wait_ms(60, 1.0), 0);
        assert_eq!(wait_ms(60, 0.0), 1_000);
        assert_eq!(wait_ms(60, 0.5), 500);
        // 120 tokens in debt at 60 tpm: 121 s until one is back.
        assert_eq!(wait_ms(60, -120.0), 121_000);
        assert_eq!(reset(60, 0.0), Duration::from_secs(60));
        assert_eq!(reset(60, 60.0), Duration::ZERO);
    }

    #[test]
    fn idle_means_full_again() {
        let mut b = Bucket::full(60, 0);
        assert!(b.is_idle(0));
        b.level = -60.0;
        assert!(!b.is_idle(60_000));
        assert!(b.is_idle(120_000));
    }
}
