//! The console dashboard's figures in one call: requests, errors and blocked
//! requests over time, top groups and models, spend this month, open alerts and
//! proxy states. Built on the usage aggregates (one SQL query each), never on
//! reading events one by one.

use crate::error::ApiResult;
use crate::extract::ApiQuery;
use crate::state::AppState;
use axum::extract::State;
use axum::Json;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use portcullis_core::alert::AlertStatus;
use portcullis_core::proxy::ProxyState;
use portcullis_store::{AlertFilter, UsageDim, UsageQuery, UsageRow};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

const TOP: u32 = 5;
/// Open alerts counted exactly up to this many.
const ALERT_COUNT_CAP: u32 = 1000;

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub enum Range {
    #[serde(rename = "1h")]
    Hour,
    #[serde(rename = "24h")]
    Day,
    #[serde(rename = "7d")]
    Week,
}

impl Range {
    /// The span, the bucket width and the dimension that buckets it.
    fn shape(self) -> (SignedDuration, i64, UsageDim) {
        match self {
            Range::Hour => (SignedDuration::from_hours(1), 60, UsageDim::Minute),
            Range::Day => (SignedDuration::from_hours(24), 3600, UsageDim::Hour),
            Range::Week => (SignedDuration::from_hours(24 * 7), 3600, UsageDim::Hour),
        }
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct StatsQuery {
    /// 1h (minute buckets), 24h or 7d (hour buckets); default 24h.
    #[param(value_type = Option<String>)]
    pub range: Option<Range>,
}

#[derive(Serialize, utoipa::ToSchema, Default, Debug, PartialEq)]
pub struct Bucket {
    #[schema(value_type = String, format = DateTime)]
    pub start: Timestamp,
    pub requests: u64,
    pub errors: u64,
    pub blocked: u64,
    pub cost_usd: f64,
}

#[derive(Serialize, utoipa::ToSchema, Debug)]
pub struct Top {
    /// Group id or model name; none for traffic without one.
    pub id: Option<String>,
    /// The group's name (models: the model).
    pub name: Option<String>,
    pub requests: u64,
    pub cost_usd: f64,
}

#[derive(Serialize, utoipa::ToSchema, Default, Debug)]
pub struct ProxyCounts {
    pub running: u64,
    pub stopped: u64,
    pub error: u64,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Stats {
    pub range: Range,
    #[schema(value_type = String, format = DateTime)]
    pub since: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub until: Timestamp,
    pub bucket_seconds: i64,
    /// Oldest first, every bucket of the range present (zeros included).
    pub buckets: Vec<Bucket>,
    pub requests: u64,
    pub errors: u64,
    pub blocked: u64,
    pub cost_usd: f64,
    pub top_groups: Vec<Top>,
    pub top_models: Vec<Top>,
    /// Recorded spend since the first of this month (UTC).
    pub spend_this_month_usd: f64,
    /// Open alerts, counted up to 1000.
    pub open_alerts: u64,
    pub proxies: ProxyCounts,
}

/// Every bucket from `since` to `until`, filled from the rows that have traffic.
fn fill(rows: &[UsageRow], since: Timestamp, until: Timestamp, width_s: i64) -> Vec<Bucket> {
    let width_ms = width_s * 1000;
    let first = since.as_millisecond().div_euclid(width_ms) * width_ms;
    let by_start: HashMap<i64, &UsageRow> = rows
        .iter()
        .filter_map(|r| r.bucket.map(|b| (b.as_millisecond(), r)))
        .collect();
    let mut out = Vec::new();
    let mut at = first;
    while at <= until.as_millisecond() {
        let start = Timestamp::from_millisecond(at).unwrap_or(since);
        out.push(match by_start.get(&at) {
            Some(r) => Bucket {
                start,
                requests: r.requests,
                errors: r.errors,
                blocked: r.blocked,
                cost_usd: r.cost_usd,
            },
            None => Bucket {
                start,
                ..Bucket::default()
            },
        });
        at += width_ms;
    }
    out
}

fn month_start(now: Timestamp) -> Timestamp {
    let date = now.to_zoned(TimeZone::UTC).date().first_of_month();
    date.to_zoned(TimeZone::UTC)
        .map(|z| z.timestamp())
        .unwrap_or(now)
}

/// Dashboard figures for a time range.
#[utoipa::path(get, path = "/api/v1/stats", tag = "usage", params(StatsQuery),
    responses((status = 200, body = Stats), (status = 400, body = crate::error::ErrorBody)))]
pub async fn dashboard(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<StatsQuery>,
) -> ApiResult<Json<Stats>> {
    let range = q.range.unwrap_or(Range::Day);
    let (span, width, dim) = range.shape();
    let until = state.clock.now();
    let since = until.checked_sub(span).unwrap_or(until);
    let query = |group_by: Vec<UsageDim>, since: Timestamp, limit: u32| UsageQuery {
        group_by,
        since: Some(since),
        until: None,
        limit,
        ..UsageQuery::default()
    };
    // 7 days of hours is 168 buckets; a minute more than the span covers a partial one.
    let series = state.store.usage(&query(vec![dim], since, 1000)).await?;
    let totals = state.store.usage(&query(vec![], since, 1)).await?;
    let groups = state
        .store
        .usage(&query(vec![UsageDim::Group], since, TOP))
        .await?;
    let models = state
        .store
        .usage(&query(vec![UsageDim::Model], since, TOP))
        .await?;
    let month = state
        .store
        .usage(&query(vec![], month_start(until), 1))
        .await?;
    let names: HashMap<String, String> = state
        .store
        .list_groups()
        .await?
        .into_iter()
        .map(|g| (g.id, g.name))
        .collect();
    let open_alerts = state
        .store
        .list_alerts(&AlertFilter {
            status: Some(AlertStatus::Open),
            limit: ALERT_COUNT_CAP,
            ..AlertFilter::default()
        })
        .await?
        .len() as u64;
    let mut proxies = ProxyCounts::default();
    for proxy in state.store.list_proxies().await? {
        match state.data_plane.status(&proxy).state {
            ProxyState::Running => proxies.running += 1,
            ProxyState::Stopped => proxies.stopped += 1,
            ProxyState::Error => proxies.error += 1,
        }
    }
    let total = totals.first();
    Ok(Json(Stats {
        range,
        since,
        until,
        bucket_seconds: width,
        buckets: fill(&series, since, until, width),
        requests: total.map_or(0, |t| t.requests),
        errors: total.map_or(0, |t| t.errors),
        blocked: total.map_or(0, |t| t.blocked),
        cost_usd: total.map_or(0.0, |t| t.cost_usd),
        top_groups: groups
            .into_iter()
            .map(|r| Top {
                name: r.group_id.as_ref().and_then(|id| names.get(id).cloned()),
                id: r.group_id,
                requests: r.requests,
                cost_usd: r.cost_usd,
            })
            .collect(),
        top_models: models
            .into_iter()
            .map(|r| Top {
                name: r.model.clone(),
                id: r.model,
                requests: r.requests,
                cost_usd: r.cost_usd,
            })
            .collect(),
        spend_this_month_usd: month.first().map_or(0.0, |m| m.cost_usd),
        open_alerts,
        proxies,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(at_ms: i64, requests: u64) -> UsageRow {
        UsageRow {
            group_id: None,
            key_id: None,
            model: None,
            proxy: None,
            bucket: Timestamp::from_millisecond(at_ms).ok(),
            requests,
            blocked: 1,
            errors: 0,
            input_tokens: 0,
            output_tokens: 0,
            cached_tokens: 0,
            cost_usd: 0.5,
            unpriced_requests: 0,
        }
    }

    #[test]
    fn every_bucket_of_the_range_is_present_oldest_first() {
        let since = Timestamp::from_millisecond(90_000).unwrap_or_default();
        let until = Timestamp::from_millisecond(300_000).unwrap_or_default();
        let buckets = fill(&[row(180_000, 7)], since, until, 60);
        let starts: Vec<i64> = buckets.iter().map(|b| b.start.as_millisecond()).collect();
        assert_eq!(starts, vec![60_000, 120_000, 180_000, 240_000, 300_000]);
        assert_eq!(buckets[2].requests, 7);
        assert_eq!(buckets[2].blocked, 1);
        assert_eq!(
            buckets[0].requests + buckets[1].requests + buckets[4].requests,
            0
        );
    }

    #[test]
    fn the_month_starts_on_the_first_at_midnight_utc() {
        let now: Timestamp = "2026-11-23T16:30:00Z".parse().unwrap_or_default();
        assert_eq!(month_start(now).to_string(), "2026-11-01T00:00:00Z");
    }
}
