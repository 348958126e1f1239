//! Throttling of failed logins, per user name and per client address.
//!
//! Fixed windows in a bounded map: when the map is full, expired windows go first,
//! then the oldest, so an attacker cycling addresses cannot grow memory.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const MAX_TRACKED: usize = 10_000;

#[derive(Debug)]
struct Window {
    started: Instant,
    failures: u32,
}

#[derive(Debug)]
pub struct LoginLimiter {
    per_user: u32,
    per_addr: u32,
    window: Duration,
    windows: Mutex<HashMap<String, Window>>,
}

impl LoginLimiter {
    pub fn new(per_user: u32, per_addr: u32, window: Duration) -> Self {
        Self {
            per_user,
            per_addr,
            window,
            windows: Mutex::new(HashMap::new()),
        }
    }

    fn keys(username: &str, addr: Option<&str>) -> (String, Option<String>) {
        (format!("u:{username}"), addr.map(|a| format!("a:{a}")))
    }

    /// `Some(seconds to wait)` when this user or address is locked out.
    pub fn check(&self, username: &str, addr: Option<&str>, now: Instant) -> Option<u64> {
        let (user_key, addr_key) = Self::keys(username, addr);
        let windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        let blocked = |key: &str, limit: u32| {
            windows.get(key).and_then(|w| {
                let elapsed = now.saturating_duration_since(w.started);
                (elapsed < self.window && w.failures >= limit)
                    .then(|| (self.window - elapsed).as_secs().max(1))
            })
        };
        let by_user = blocked(&user_key, self.per_user);
        let by_addr = addr_key.as_deref().and_then(|k| blocked(k, self.per_addr));
        by_user.max(by_addr)
    }

    pub fn record_failure(&self, username: &str, addr: Option<&str>, now: Instant) {
        let (user_key, addr_key) = Self::keys(username, addr);
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        for key in std::iter::once(user_key).chain(addr_key) {
            if windows.len() >= MAX_TRACKED && !windows.contains_key(&key) {
                let window = self.window;
                windows.retain(|_, w| now.saturating_duration_since(w.started) < window);
                if windows.len() >= MAX_TRACKED {
                    if let Some(oldest) = windows
                        .iter()
                        .min_by_key(|(_, w)| w.started)
                        .map(|(k, _)| k.clone())
                    {
                        windows.remove(&oldest);
                    }
                }
            }
            let entry = windows.entry(key).or_insert(Window {
                started: now,
                failures: 0,
            });
            if now.saturating_duration_since(entry.started) >= self.window {
                *entry = Window {
                    started: now,
                    failures: 0,
                };
            }
            entry.failures += 1;
        }
    }

    /// A successful login clears the user's count (not the address's).
    pub fn record_success(&self, username: &str) {
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        windows.remove(&format!("u:{username}"));
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.windows.lock().map(|w| w.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_user_after_limit_and_releases_after_window() {
        let limiter = LoginLimiter::new(3, 100, Duration::from_secs(60));
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.check("alice", Some("10.0.0.1"), t0), None);
            limiter.record_failure("alice", Some("10.0.0.1"), t0);
        }
        assert!(limiter.check("alice", Some("10.0.0.2"), t0).is_some());
        assert_eq!(limiter.check("bob", Some("10.0.0.1"), t0), None);
        assert_eq!(
            limiter.check("alice", None, t0 + Duration::from_secs(61)),
            None
        );
    }

    #[test]
    fn locks_address_across_user_names() {
        let limiter = LoginLimiter::new(100, 2, Duration::from_secs(60));
        let t0 = Instant::now();
        limiter.record_failure("a", Some("1.2.3.4"), t0);
        limiter.record_failure("b", Some("1.2.3.4"), t0);
        assert!(limiter.check("c", Some("1.2.3.4"), t0).is_some());
        assert!(limiter.check("c", Some("1.2.3.5"), t0).is_none());
    }

    #[test]
    fn memory_stays_bounded() {
        let limiter = LoginLimiter::new(5, 5, Duration::from_secs(60));
        let t0 = Instant::now();
        for i in 0..(MAX_TRACKED + 500) {
            limiter.record_failure(&format!("user{i}"), None, t0);
        }
        assert!(limiter.tracked() <= MAX_TRACKED);
    }
}
