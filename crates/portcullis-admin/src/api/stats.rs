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
use portcullis_core::proxy::{ProxyKind, ProxyState};
use portcullis_store::{AlertFilter, UsageDim, UsageQuery, UsageRow};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

const TOP: u32 = 5;
/// Latency percentiles are taken over at most this many of a proxy's newest
/// requests in the range: the query stays bounded however busy the proxy is.
pub const LATENCY_SAMPLE: u32 = 500;
/// Proxies (and A2A agents, which share the events table) read per call.
const PROXY_ROWS: u32 = 1000;
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

    /// From the range's span ago until `now`.
    fn window(self, now: Timestamp) -> (Timestamp, Timestamp) {
        (now.checked_sub(self.shape().0).unwrap_or(now), now)
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
    let (_, width, dim) = range.shape();
    let (since, until) = range.window(state.clock.now());
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

#[derive(Serialize, utoipa::ToSchema, Debug, PartialEq)]
pub struct ProxyFigures {
    pub proxy_id: String,
    pub proxy_name: String,
    pub kind: ProxyKind,
    pub requests: u64,
    /// Exchanges that ended in an error (upstream or gateway).
    pub errors: u64,
    pub blocked: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Median latency in milliseconds over `latency_sample` requests; none without traffic.
    pub p50_latency_ms: Option<f64>,
    /// 95th percentile latency in milliseconds; none without traffic.
    pub p95_latency_ms: Option<f64>,
    /// How many of the newest requests in the range the percentiles are taken over.
    pub latency_sample: u64,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ProxyStats {
    pub range: Range,
    #[schema(value_type = String, format = DateTime)]
    pub since: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub until: Timestamp,
    /// Most requests per proxy the latency percentiles are taken over.
    pub latency_sample_limit: u32,
    /// Every proxy, by name, with zeros when it had no traffic in the range.
    pub proxies: Vec<ProxyFigures>,
}

/// The nearest-rank percentile `p` (0 to 100) of sorted values; none when empty.
fn percentile(sorted: &[u64], p: u32) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (u64::from(p) * sorted.len() as u64).div_ceil(100).max(1);
    let index = usize::try_from(rank - 1).unwrap_or(usize::MAX);
    sorted.get(index.min(sorted.len() - 1)).copied()
}

fn ms(us: Option<u64>) -> Option<f64> {
    us.map(|v| v as f64 / 1000.0)
}

/// Per-proxy figures for a time range: requests, errors, blocked requests,
/// tokens, and p50/p95 latency over the proxy's newest requests in the range.
#[utoipa::path(get, path = "/api/v1/stats/proxies", tag = "usage", params(StatsQuery),
    responses((status = 200, body = ProxyStats), (status = 400, body = crate::error::ErrorBody)))]
pub async fn proxies(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<StatsQuery>,
) -> ApiResult<Json<ProxyStats>> {
    let range = q.range.unwrap_or(Range::Day);
    let (since, until) = range.window(state.clock.now());
    let mut traffic: HashMap<String, portcullis_store::ProxyTraffic> = state
        .store
        .proxy_traffic(since, PROXY_ROWS)
        .await?
        .into_iter()
        .map(|t| (t.proxy_id.clone(), t))
        .collect();
    let mut proxies = state.store.list_proxies().await?;
    proxies.sort_by(|a, b| a.spec.name.cmp(&b.spec.name));
    let mut out = Vec::with_capacity(proxies.len());
    for proxy in proxies {
        let t = traffic.remove(&proxy.id);
        let mut latencies = match &t {
            Some(t) if t.requests > 0 => {
                state
                    .store
                    .recent_latencies(&proxy.id, since, LATENCY_SAMPLE)
                    .await?
            }
            _ => Vec::new(),
        };
        latencies.sort_unstable();
        out.push(ProxyFigures {
            proxy_name: proxy.spec.name,
            kind: proxy.spec.kind,
            proxy_id: proxy.id,
            requests: t.as_ref().map_or(0, |t| t.requests),
            errors: t.as_ref().map_or(0, |t| t.errors),
            blocked: t.as_ref().map_or(0, |t| t.blocked),
            input_tokens: t.as_ref().map_or(0, |t| t.input_tokens),
            output_tokens: t.as_ref().map_or(0, |t| t.output_tokens),
            p50_latency_ms: ms(percentile(&latencies, 50)),
            p95_latency_ms: ms(percentile(&latencies, 95)),
            latency_sample: latencies.len() as u64,
        });
    }
    Ok(Json(ProxyStats {
        range,
        since,
        until,
        latency_sample_limit: LATENCY_SAMPLE,
        proxies: out,
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
    fn percentiles_take_the_nearest_rank() {
        assert_eq!(percentile(&[], 50), None);
        assert_eq!(percentile(&[7], 50), Some(7));
        assert_eq!(percentile(&[7], 95), Some(7));
        let hundred: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&hundred, 50), Some(50));
        assert_eq!(percentile(&hundred, 95), Some(95));
        assert_eq!(percentile(&[1, 2, 3, 4], 50), Some(2));
        assert_eq!(percentile(&[1, 2, 3, 4], 95), Some(4));
        assert_eq!(percentile(&[1, 2, 3], 0), Some(1));
    }

    #[test]
    fn the_month_starts_on_the_first_at_midnight_utc() {
        let now: Timestamp = "2026-11-23T16:30:00Z".parse().unwrap_or_default();
        assert_eq!(month_start(now).to_string(), "2026-11-01T00:00:00Z");
    }
}
