//! Budget ledgers: per budget period, the settled spend and the estimates of
//! requests still in flight, in nano-dollars.
//!
//! A request is admitted while `spent + reserved < limit`; it then reserves its
//! estimate, and settles the real cost when it ends. Parallel requests therefore
//! overshoot the limit by at most the estimate of the last one admitted.

use crate::shared::{Shared, SharedError};
use std::collections::HashMap;
use std::sync::Mutex;

/// One budget's current period. A new period (month rollover, manual reset) is a
/// new account; the old one is dropped.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Account {
    pub budget_id: String,
    /// Period start in milliseconds since the epoch.
    pub period_start_ms: i64,
    /// Period end, so shared counters expire after it.
    pub period_end_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Balance {
    pub spent: i64,
    pub reserved: i64,
}

impl Balance {
    pub fn committed(&self) -> i64 {
        self.spent.saturating_add(self.reserved)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admission {
    pub admitted: bool,
    /// The balance after the reservation (or as found, when refused).
    pub balance: Balance,
}

#[derive(Default)]
struct LocalAccount {
    period_start_ms: i64,
    spent: i64,
    reserved: i64,
}

/// Where the counters live.
pub struct Ledger(Counters);

enum Counters {
    /// This process only.
    Local(Mutex<HashMap<String, LocalAccount>>),
    /// Shared by every replica using the same Redis; scripts hashed once.
    Shared(Shared, Scripts),
}

struct Scripts {
    reserve: redis::Script,
    settle: redis::Script,
    seed: redis::Script,
}

/// A Redis call that does not answer within this fails (the caller fails closed).
const REDIS_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(1_000);

async fn bounded<T>(
    call: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> Result<T, SharedError> {
    tokio::time::timeout(REDIS_TIMEOUT, call)
        .await
        .map_err(|_| SharedError::Command("no answer within 1 s".into()))?
        .map_err(SharedError::from)
}

/// Shared counters outlive their period by this much, for the usage API's sake.
const SHARED_GRACE_MS: i64 = 35 * 24 * 3600 * 1000;

const RESERVE: &str = r#"
local spent = tonumber(redis.call('HGET', KEYS[1], 'spent') or '0')
local reserved = tonumber(redis.call('HGET', KEYS[1], 'reserved') or '0')
if ARGV[3] == '1' and spent + reserved >= tonumber(ARGV[1]) then
  return {0, spent, reserved}
end
reserved = redis.call('HINCRBY', KEYS[1], 'reserved', ARGV[2])
redis.call('PEXPIREAT', KEYS[1], ARGV[4])
return {1, spent, reserved}
"#;

const SETTLE: &str = r#"
local reserved = redis.call('HINCRBY', KEYS[1], 'reserved', -tonumber(ARGV[1]))
if reserved < 0 then redis.call('HSET', KEYS[1], 'reserved', 0) end
redis.call('HINCRBY', KEYS[1], 'spent', ARGV[2])
redis.call('PEXPIREAT', KEYS[1], ARGV[3])
return 1
"#;

const SEED: &str = r#"
if redis.call('HSETNX', KEYS[1], 'spent', ARGV[1]) == 1 then
  redis.call('PEXPIREAT', KEYS[1], ARGV[2])
  return 1
end
return 0
"#;

impl Ledger {
    pub fn local() -> Self {
        Ledger(Counters::Local(Mutex::new(HashMap::new())))
    }

    pub fn shared(shared: Shared) -> Self {
        Ledger(Counters::Shared(
            shared,
            Scripts {
                reserve: redis::Script::new(RESERVE),
                settle: redis::Script::new(SETTLE),
                seed: redis::Script::new(SEED),
            },
        ))
    }

    fn with_local<T>(
        map: &Mutex<HashMap<String, LocalAccount>>,
        account: &Account,
        f: impl FnOnce(&mut LocalAccount) -> T,
    ) -> T {
        let mut map = map.lock().unwrap_or_else(|p| p.into_inner());
        let entry = map.entry(account.budget_id.clone()).or_default();
        if entry.period_start_ms != account.period_start_ms {
            // A newer period replaces the old; a late request of an older period
            // must not reopen it.
            if account.period_start_ms < entry.period_start_ms {
                let mut stale = LocalAccount::default();
                return f(&mut stale);
            }
            *entry = LocalAccount {
                period_start_ms: account.period_start_ms,
                ..LocalAccount::default()
            };
        }
        f(entry)
    }

    fn shared_key(shared: &Shared, account: &Account) -> String {
        shared.key(&[
            "budget",
            &account.budget_id,
            &account.period_start_ms.to_string(),
        ])
    }

    fn expiry(account: &Account) -> i64 {
        account.period_end_ms.saturating_add(SHARED_GRACE_MS)
    }

    /// Sets the spend already recorded for a period (from the events), unless
    /// counting has already started. Returns whether the seed was taken.
    pub async fn seed(&self, account: &Account, spent: i64) -> Result<bool, SharedError> {
        match &self.0 {
            Counters::Local(map) => Ok(Self::with_local(map, account, |a| {
                let fresh = a.spent == 0 && a.reserved == 0;
                if fresh {
                    a.spent = spent;
                }
                fresh
            })),
            Counters::Shared(shared, scripts) => {
                let mut conn = shared.conn.clone();
                let taken: i64 = bounded(
                    scripts
                        .seed
                        .key(Self::shared_key(shared, account))
                        .arg(spent)
                        .arg(Self::expiry(account))
                        .invoke_async(&mut conn),
                )
                .await?;
                Ok(taken == 1)
            }
        }
    }

    /// Admits a request and reserves `estimate`, or refuses it when `enforce` and
    /// the period is used up. Unenforced (warn) budgets always admit.
    pub async fn reserve(
        &self,
        account: &Account,
        limit: i64,
        estimate: i64,
        enforce: bool,
    ) -> Result<Admission, SharedError> {
        let estimate = estimate.max(0);
        match &self.0 {
            Counters::Local(map) => Ok(Self::with_local(map, account, |a| {
                let found = Balance {
                    spent: a.spent,
                    reserved: a.reserved,
                };
                if enforce && found.committed() >= limit {
                    return Admission {
                        admitted: false,
                        balance: found,
                    };
                }
                a.reserved = a.reserved.saturating_add(estimate);
                Admission {
                    admitted: true,
                    balance: Balance {
                        spent: a.spent,
                        reserved: a.reserved,
                    },
                }
            })),
            Counters::Shared(shared, scripts) => {
                let mut conn = shared.conn.clone();
                let (admitted, spent, reserved): (i64, i64, i64) = bounded(
                    scripts
                        .reserve
                        .key(Self::shared_key(shared, account))
                        .arg(limit)
                        .arg(estimate)
                        .arg(if enforce { "1" } else { "0" })
                        .arg(Self::expiry(account))
                        .invoke_async(&mut conn),
                )
                .await?;
                Ok(Admission {
                    admitted: admitted == 1,
                    balance: Balance { spent, reserved },
                })
            }
        }
    }

    /// Replaces a reservation by the real cost.
    pub async fn settle(
        &self,
        account: &Account,
        estimate: i64,
        actual: i64,
    ) -> Result<(), SharedError> {
        let (estimate, actual) = (estimate.max(0), actual.max(0));
        match &self.0 {
            Counters::Local(map) => {
                Self::with_local(map, account, |a| {
                    a.reserved = (a.reserved - estimate).max(0);
                    a.spent = a.spent.saturating_add(actual);
                });
                Ok(())
            }
            Counters::Shared(shared, scripts) => {
                let mut conn = shared.conn.clone();
                let _: i64 = bounded(
                    scripts
                        .settle
                        .key(Self::shared_key(shared, account))
                        .arg(estimate)
                        .arg(actual)
                        .arg(Self::expiry(account))
                        .invoke_async(&mut conn),
                )
                .await?;
                Ok(())
            }
        }
    }

    pub async fn balance(&self, account: &Account) -> Result<Balance, SharedError> {
        match &self.0 {
            Counters::Local(map) => Ok(Self::with_local(map, account, |a| Balance {
                spent: a.spent,
                reserved: a.reserved,
            })),
            Counters::Shared(shared, _) => {
                let mut conn = shared.conn.clone();
                let (spent, reserved): (Option<i64>, Option<i64>) = bounded(
                    redis::cmd("HMGET")
                        .arg(Self::shared_key(shared, account))
                        .arg("spent")
                        .arg("reserved")
                        .query_async(&mut conn),
                )
                .await?;
                Ok(Balance {
                    spent: spent.unwrap_or(0),
                    reserved: reserved.unwrap_or(0),
                })
            }
        }
    }

    /// Whether settling may run synchronously (no I/O): the local ledger.
    pub fn is_local(&self) -> bool {
        matches!(self.0, Counters::Local(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(start: i64) -> Account {
        Account {
            budget_id: "b1".into(),
            period_start_ms: start,
            period_end_ms: start + 1000,
        }
    }

    async fn exercise(ledger: &Ledger, acc: &Account) {
        assert!(ledger.seed(acc, 40).await.unwrap_or(false));
        assert!(!ledger.seed(acc, 99).await.unwrap_or(true), "seeded once");
        // limit 100: 40 spent, reserve 50 → 90 committed.
        let a = ledger
            .reserve(acc, 100, 50, true)
            .await
            .unwrap_or(Admission {
                admitted: false,
                balance: Balance {
                    spent: 0,
                    reserved: 0,
                },
            });
        assert!(a.admitted);
        assert_eq!(
            a.balance,
            Balance {
                spent: 40,
                reserved: 50
            }
        );
        // 90 < 100: one more is admitted and may overshoot by its estimate.
        let b = ledger.reserve(acc, 100, 50, true).await.map(|a| a.admitted);
        assert_eq!(b.ok(), Some(true));
        // 140 ≥ 100: refused when enforced, admitted when only warned.
        let c = ledger.reserve(acc, 100, 50, true).await.map(|a| a.admitted);
        assert_eq!(c.ok(), Some(false));
        let d = ledger
            .reserve(acc, 100, 10, false)
            .await
            .map(|a| a.admitted);
        assert_eq!(d.ok(), Some(true));
        ledger.settle(acc, 10, 0).await.ok();
        ledger.settle(acc, 50, 20).await.ok();
        ledger.settle(acc, 50, 30).await.ok();
        assert_eq!(
            ledger.balance(acc).await.ok(),
            Some(Balance {
                spent: 90,
                reserved: 0
            })
        );
    }

    #[tokio::test]
    async fn local_ledger_reserves_refuses_and_settles() {
        let ledger = Ledger::local();
        exercise(&ledger, &account(1000)).await;
        // A new period starts from zero; a late settle of the old one is ignored.
        let next = account(2000);
        assert_eq!(
            ledger.balance(&next).await.ok(),
            Some(Balance {
                spent: 0,
                reserved: 0
            })
        );
        ledger.settle(&account(1000), 0, 500).await.ok();
        assert_eq!(ledger.balance(&next).await.ok().map(|b| b.spent), Some(0));
    }

    #[tokio::test]
    async fn shared_ledger_behaves_like_the_local_one() {
        let url =
            std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        let prefix = format!("pcx-test-{}", std::process::id());
        let shared = Shared::connect(&url, &prefix)
            .await
            .unwrap_or_else(|e| panic!("Redis at {url} is required (make test starts one): {e}"));
        let start = jiff::Timestamp::now().as_millisecond();
        let ledger = Ledger::shared(shared.clone());
        let acc = account(start);
        exercise(&ledger, &acc).await;
        // A second handle (another replica) sees the same balance.
        let other = Ledger::shared(shared);
        assert_eq!(other.balance(&acc).await.ok().map(|b| b.spent), Some(90));
    }
}
