//! Spend budgets: a monthly USD limit on a group or a key, its period (calendar
//! month in the budget's time zone, restarted by a manual reset) and its state.

use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BudgetScope {
    Group,
    Key,
}

impl BudgetScope {
    pub fn as_str(self) -> &'static str {
        match self {
            BudgetScope::Group => "group",
            BudgetScope::Key => "key",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "group" => Some(BudgetScope::Group),
            "key" => Some(BudgetScope::Key),
            _ => None,
        }
    }
}

/// What happens at the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Enforcement {
    /// Refuse with 402 before anything is sent upstream.
    Block,
    /// Let the request through; alert once per period and report it in a header.
    Warn,
}

impl Enforcement {
    pub fn as_str(self) -> &'static str {
        match self {
            Enforcement::Block => "block",
            Enforcement::Warn => "warn",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "block" => Some(Enforcement::Block),
            "warn" => Some(Enforcement::Warn),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Budget {
    pub id: String,
    pub scope: BudgetScope,
    /// The group or key id.
    pub target_id: String,
    pub limit_usd: f64,
    /// Percent of the limit at which the budget turns to `warning` (and alerts).
    pub warn_percent: u8,
    pub enforcement: Enforcement,
    /// IANA time zone whose calendar months delimit periods.
    pub timezone: String,
    /// The last manual reset: the current period started then.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub reset_at: Option<Timestamp>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

/// A budgeting period: `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Period {
    #[schema(value_type = String, format = DateTime)]
    pub start: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub end: Timestamp,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown time zone {0:?} (use an IANA name such as UTC or Europe/Paris)")]
pub struct UnknownTimeZone(pub String);

pub fn time_zone(name: &str) -> Result<TimeZone, UnknownTimeZone> {
    TimeZone::get(name).map_err(|_| UnknownTimeZone(name.to_owned()))
}

/// The calendar month containing `at` in `tz`.
pub fn month_of(at: Timestamp, tz: &TimeZone) -> Period {
    let zoned = at.to_zoned(tz.clone());
    let start = zoned
        .first_of_month()
        .and_then(|d| d.start_of_day())
        .unwrap_or(zoned);
    let end = start
        .checked_add(1.month())
        .map(|z| z.timestamp())
        .unwrap_or(Timestamp::MAX);
    Period {
        start: start.timestamp(),
        end,
    }
}

impl Budget {
    pub fn limit_nanos(&self) -> i64 {
        crate::pricing::nanos(self.limit_usd)
    }

    /// The period `now` falls in: the calendar month, started later by a manual
    /// reset made inside it. A time zone that no longer resolves counts as UTC.
    pub fn period_at(&self, now: Timestamp) -> Period {
        let tz = time_zone(&self.timezone).unwrap_or(TimeZone::UTC);
        let month = month_of(now, &tz);
        match self.reset_at {
            Some(r) if r > month.start && r <= now => Period {
                start: r,
                end: month.end,
            },
            _ => month,
        }
    }

    /// Every period from the budget's creation to `now`, oldest first (at most
    /// `limit`, the newest kept).
    pub fn periods_until(&self, now: Timestamp, resets: &[Timestamp], limit: usize) -> Vec<Period> {
        let tz = time_zone(&self.timezone).unwrap_or(TimeZone::UTC);
        let mut bounds: Vec<Timestamp> = Vec::new();
        let mut month = month_of(self.created_at, &tz);
        bounds.push(self.created_at);
        while month.end <= now {
            bounds.push(month.end);
            month = month_of(month.end, &tz);
        }
        bounds.extend(
            resets
                .iter()
                .copied()
                .filter(|r| *r > self.created_at && *r <= now),
        );
        bounds.sort();
        bounds.dedup();
        let mut periods: Vec<Period> = bounds
            .windows(2)
            .map(|w| Period {
                start: w[0],
                end: w[1],
            })
            .collect();
        if let Some(last) = bounds.last() {
            periods.push(Period {
                start: *last,
                end: month_of(*last, &tz).end,
            });
        }
        let skip = periods.len().saturating_sub(limit);
        periods.split_off(skip)
    }
}

/// Ordered: `Exceeded` is worse than `Warning`, which is worse than `Ok`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BudgetState {
    Ok,
    /// At or above the warning threshold.
    Warning,
    /// At or above the limit.
    Exceeded,
}

impl BudgetState {
    pub fn as_str(self) -> &'static str {
        match self {
            BudgetState::Ok => "ok",
            BudgetState::Warning => "warning",
            BudgetState::Exceeded => "exceeded",
        }
    }

    pub fn of(spent_nanos: i64, limit_nanos: i64, warn_percent: u8) -> Self {
        if spent_nanos >= limit_nanos {
            BudgetState::Exceeded
        } else if (spent_nanos as i128) * 100 >= (limit_nanos as i128) * i128::from(warn_percent) {
            BudgetState::Warning
        } else {
            BudgetState::Ok
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap_or(Timestamp::UNIX_EPOCH)
    }

    fn budget(tz: &str, reset_at: Option<Timestamp>) -> Budget {
        Budget {
            id: "b".into(),
            scope: BudgetScope::Group,
            target_id: "g".into(),
            limit_usd: 10.0,
            warn_percent: 80,
            enforcement: Enforcement::Block,
            timezone: tz.into(),
            reset_at,
            created_at: ts("2026-09-15T10:00:00Z"),
            updated_at: ts("2026-09-15T10:00:00Z"),
        }
    }

    #[test]
    fn periods_are_calendar_months_in_the_budget_time_zone() {
        let utc = budget("UTC", None).period_at(ts("2026-11-23T12:00:00Z"));
        assert_eq!(utc.start, ts("2026-11-01T00:00:00Z"));
        assert_eq!(utc.end, ts("2026-12-01T00:00:00Z"));
        // 23:30 UTC on Nov 30 is already December in Paris (UTC+1).
        let paris = budget("Europe/Paris", None).period_at(ts("2026-11-30T23:30:00Z"));
        assert_eq!(paris.start, ts("2026-11-30T23:00:00Z"));
        assert_eq!(paris.end, ts("2026-12-31T23:00:00Z"));
        assert!(time_zone("Mars/Olympus").is_err());
    }

    #[test]
    fn a_reset_starts_the_period_until_the_month_ends() {
        let b = budget("UTC", Some(ts("2026-11-20T08:00:00Z")));
        let p = b.period_at(ts("2026-11-23T12:00:00Z"));
        assert_eq!(p.start, ts("2026-11-20T08:00:00Z"));
        assert_eq!(p.end, ts("2026-12-01T00:00:00Z"));
        // Next month the reset no longer matters.
        let p = b.period_at(ts("2026-12-02T00:00:00Z"));
        assert_eq!(p.start, ts("2026-12-01T00:00:00Z"));
    }

    #[test]
    fn history_splits_at_month_ends_and_resets() {
        let b = budget("UTC", None);
        let resets = [ts("2026-10-10T00:00:00Z")];
        let periods = b.periods_until(ts("2026-11-23T00:00:00Z"), &resets, 10);
        let starts: Vec<Timestamp> = periods.iter().map(|p| p.start).collect();
        assert_eq!(
            starts,
            vec![
                ts("2026-09-15T10:00:00Z"),
                ts("2026-10-01T00:00:00Z"),
                ts("2026-10-10T00:00:00Z"),
                ts("2026-11-01T00:00:00Z"),
            ]
        );
        assert_eq!(periods[2].end, ts("2026-11-01T00:00:00Z"));
        assert_eq!(periods[3].end, ts("2026-12-01T00:00:00Z"));
        assert_eq!(
            b.periods_until(ts("2026-11-23T00:00:00Z"), &resets, 2)
                .len(),
            2
        );
    }

    #[test]
    fn state_follows_the_thresholds() {
        assert_eq!(BudgetState::of(0, 100, 80), BudgetState::Ok);
        assert_eq!(BudgetState::of(79, 100, 80), BudgetState::Ok);
        assert_eq!(BudgetState::of(80, 100, 80), BudgetState::Warning);
        assert_eq!(BudgetState::of(100, 100, 80), BudgetState::Exceeded);
        assert_eq!(BudgetState::of(5, 0, 80), BudgetState::Exceeded);
    }
}
