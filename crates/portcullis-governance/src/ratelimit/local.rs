//! In-process buckets: one mutex over four maps (one per slot), keyed by key or
//! group id. The critical section is a few float operations, so one lock is
//! cheaper than sharding would be worth; lookups borrow the id, so only a caller's
//! first request allocates. Buckets that have refilled completely are the same as
//! new ones and are dropped when a map reaches its bound.

use super::bucket::Bucket;
use super::{wait_for, Slot, Subject, Verdict};
use portcullis_core::Clock;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Buckets per slot before idle ones are swept.
const MAX_BUCKETS: usize = 100_000;

pub struct LocalLimiter {
    clock: Arc<dyn Clock>,
    maps: Mutex<[HashMap<String, Bucket>; 4]>,
    max: usize,
}

impl LocalLimiter {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self::with_bound(clock, MAX_BUCKETS)
    }

    pub fn with_bound(clock: Arc<dyn Clock>, max: usize) -> Self {
        Self {
            clock,
            maps: Mutex::new(Default::default()),
            max: max.max(1),
        }
    }

    fn now_ms(&self) -> i64 {
        self.clock.now().as_millisecond()
    }

    /// Buckets held now, all slots together (for tests and sizing).
    pub fn len(&self) -> usize {
        self.lock().iter().map(HashMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, [HashMap<String, Bucket>; 4]> {
        // A panic elsewhere cannot leave a bucket half-written: every write is one
        // assignment of a `Copy` value.
        self.maps.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn check(&self, subject: &Subject<'_>) -> Verdict {
        let now = self.now_ms();
        let caps = subject.caps();
        let mut maps = self.lock();
        let mut levels = [0.0; 4];
        for slot in Slot::ALL {
            if let Some(cap) = caps[slot.index()] {
                let map = &mut maps[slot.index()];
                if let Some(bucket) = bucket_mut(map, subject.id(slot), cap, now, self.max) {
                    bucket.refill(cap, now);
                    levels[slot.index()] = bucket.level;
                }
            }
        }
        let wait = wait_for(&caps, &levels);
        let allowed = wait == 0;
        if allowed {
            for slot in Slot::ALL.into_iter().filter(|s| s.is_requests()) {
                if caps[slot.index()].is_some() {
                    if let Some(b) = maps[slot.index()].get_mut(subject.id(slot)) {
                        b.level -= 1.0;
                        levels[slot.index()] = b.level;
                    }
                }
            }
        }
        Verdict::new(&caps, &levels, allowed, wait)
    }

    pub fn settle(&self, subject: &Subject<'_>, tokens: u64) {
        let now = self.now_ms();
        let caps = subject.caps();
        let mut maps = self.lock();
        for slot in [Slot::KeyTokens, Slot::GroupTokens] {
            if let Some(cap) = caps[slot.index()] {
                let map = &mut maps[slot.index()];
                if let Some(bucket) = bucket_mut(map, subject.id(slot), cap, now, self.max) {
                    bucket.refill(cap, now);
                    bucket.level -= tokens as f64;
                }
            }
        }
    }
}

fn bucket_mut<'m>(
    map: &'m mut HashMap<String, Bucket>,
    id: &str,
    cap: u64,
    now: i64,
    max: usize,
) -> Option<&'m mut Bucket> {
    // Looked up by `&str` first so a known id allocates nothing.
    if !map.contains_key(id) {
        if map.len() >= max {
            sweep(map, now, max);
        }
        map.insert(id.to_owned(), Bucket::full(cap, now));
    }
    map.get_mut(id)
}

/// Drops buckets that are full again; if too many are still in use, drops the
/// least recently used tenth (they lose their debt: the bound wins over exactness).
fn sweep(map: &mut HashMap<String, Bucket>, now: i64, max: usize) {
    map.retain(|_, b| !b.is_idle(now));
    if map.len() < max {
        return;
    }
    tracing::warn!(
        buckets = map.len(),
        "rate-limit buckets at their bound; dropping the least recently used"
    );
    let mut ages: Vec<i64> = map.values().map(|b| b.at_ms).collect();
    let cut = ages.len() / 10;
    let (_, threshold, _) = ages.select_nth_unstable(cut);
    let threshold = *threshold;
    map.retain(|_, b| b.at_ms > threshold);
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_core::model::RateLimits;
    use portcullis_core::ManualClock;
    use std::time::Duration;

    fn limits(rpm: Option<u64>, tpm: Option<u64>) -> RateLimits {
        RateLimits { rpm, tpm }
    }

    fn setup() -> (ManualClock, LocalLimiter) {
        let clock = ManualClock::at(jiff::Timestamp::UNIX_EPOCH);
        let limiter = LocalLimiter::new(Arc::new(clock.clone()));
        (clock, limiter)
    }

    fn subject<'a>(key: &'a str, k: RateLimits, g: RateLimits) -> Subject<'a> {
        Subject {
            key_id: key,
            group_id: "g1",
            key: k,
            group: g,
        }
    }

    #[test]
    fn a_burst_up_to_the_limit_then_refusal_then_refill() {
        let (clock, l) = setup();
        let s = subject("k1", limits(Some(3), None), RateLimits::default());
        for left in [2, 1, 0] {
            let v = l.check(&s);
            assert!(v.allowed);
            assert_eq!(v.requests.map(|w| (w.limit, w.remaining)), Some((3, left)));
        }
        let v = l.check(&s);
        assert!(!v.allowed);
        // 3 per minute: one every 20 s.
        assert_eq!(v.retry_after, Duration::from_secs(20));
        clock.advance_ms(19_999);
        assert!(!l.check(&s).allowed);
        clock.advance_ms(1);
        assert!(l.check(&s).allowed);
        assert!(!l.check(&s).allowed);
    }

    #[test]
    fn refused_requests_take_nothing() {
        let (clock, l) = setup();
        let s = subject("k1", limits(Some(60), None), RateLimits::default());
        for _ in 0..60 {
            assert!(l.check(&s).allowed);
        }
        for _ in 0..100 {
            assert!(!l.check(&s).allowed);
        }
        clock.advance_ms(1_000);
        assert!(l.check(&s).allowed);
    }

    #[test]
    fn token_debt_delays_the_next_requests() {
        let (clock, l) = setup();
        let s = subject("k1", limits(None, Some(600)), RateLimits::default());
        assert!(l.check(&s).allowed);
        // 1,200 tokens used: 600 in debt; 10 tokens per second come back.
        l.settle(&s, 1_200);
        let v = l.check(&s);
        assert!(!v.allowed);
        assert_eq!(v.retry_after, Duration::from_secs(61));
        assert_eq!(v.tokens.map(|w| w.remaining), Some(0));
        clock.advance_ms(60_000);
        assert!(!l.check(&s).allowed);
        clock.advance_ms(200);
        let v = l.check(&s);
        assert!(v.allowed);
        assert!(v.tokens.is_some_and(|w| w.remaining <= 2 && w.limit == 600));
    }

    #[test]
    fn the_group_limit_binds_all_its_keys() {
        let (_clock, l) = setup();
        let group = limits(Some(2), None);
        let a = subject("a", RateLimits::default(), group);
        let b = subject("b", limits(Some(100), None), group);
        assert!(l.check(&a).allowed);
        let v = l.check(&b);
        assert!(v.allowed);
        // The group's bucket is the tighter one, so it is what the headers show.
        assert_eq!(v.requests.map(|w| (w.limit, w.remaining)), Some((2, 0)));
        assert!(!l.check(&a).allowed);
        assert!(!l.check(&b).allowed);
    }

    #[test]
    fn a_key_limit_refusal_does_not_spend_the_group() {
        let (_clock, l) = setup();
        let group = limits(Some(10), None);
        let tight = subject("tight", limits(Some(1), None), group);
        let other = subject("other", RateLimits::default(), group);
        assert!(l.check(&tight).allowed);
        for _ in 0..5 {
            assert!(!l.check(&tight).allowed);
        }
        let v = l.check(&other);
        assert_eq!(v.requests.map(|w| w.remaining), Some(8));
    }

    #[test]
    fn idle_buckets_are_swept_at_the_bound() {
        let clock = ManualClock::at(jiff::Timestamp::UNIX_EPOCH);
        let l = LocalLimiter::with_bound(Arc::new(clock.clone()), 10);
        let ids: Vec<String> = (0..30).map(|i| format!("k{i}")).collect();
        for id in &ids {
            let s = subject(id, limits(Some(60), None), RateLimits::default());
            assert!(l.check(&s).allowed);
            clock.advance_ms(1_000);
        }
        assert!(l.len() <= 10, "held {}", l.len());
        // A key that is being limited keeps its bucket while others come and go.
        let (clock, l) = (clock, l);
        let hot = subject("hot", limits(Some(1), None), RateLimits::default());
        assert!(l.check(&hot).allowed);
        for id in &ids[..5] {
            let s = subject(id, limits(Some(60), None), RateLimits::default());
            l.check(&s);
        }
        assert!(!l.check(&hot).allowed);
        clock.advance_ms(60_000);
        assert!(l.check(&hot).allowed);
    }

    #[test]
    fn unlimited_subjects_are_not_limited() {
        let s = subject("k", RateLimits::default(), RateLimits::default());
        assert!(!s.is_limited());
        let (_c, l) = setup();
        l.settle(&s, 1_000_000);
        assert!(l.check(&s).allowed);
        assert!(l.is_empty());
    }
}
