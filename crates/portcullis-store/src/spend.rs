//! Storage for cost control: operator prices, budgets and their resets, spend
//! sums and usage aggregates over events. Same SQL on both back ends.

use crate::records::ts;
use crate::{Result, StoreError};
use async_trait::async_trait;
use jiff::Timestamp;
use portcullis_core::alert::Alert;
use portcullis_core::budget::{Budget, BudgetScope, Enforcement};
use portcullis_core::pricing::{Price, PriceOverride};

#[derive(Debug, Clone)]
pub struct NewBudget {
    pub scope: BudgetScope,
    pub target_id: String,
    pub limit_usd: f64,
    pub warn_percent: u8,
    pub enforcement: Enforcement,
    pub timezone: String,
}

#[derive(Debug, Clone, Default)]
pub struct BudgetPatch {
    pub limit_usd: Option<f64>,
    pub warn_percent: Option<u8>,
    pub enforcement: Option<Enforcement>,
    pub timezone: Option<String>,
}

/// A dimension usage is grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageDim {
    Group,
    Key,
    Model,
    Proxy,
    /// UTC day.
    Day,
    /// UTC hour.
    Hour,
    /// UTC minute (the console's last-hour chart; not offered by `parse`).
    Minute,
}

impl UsageDim {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "group" => UsageDim::Group,
            "key" => UsageDim::Key,
            "model" => UsageDim::Model,
            "proxy" => UsageDim::Proxy,
            "day" => UsageDim::Day,
            "hour" => UsageDim::Hour,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Default)]
pub struct UsageQuery {
    pub group_by: Vec<UsageDim>,
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
    pub group_id: Option<String>,
    pub key_id: Option<String>,
    pub proxy_id: Option<String>,
    pub model: Option<String>,
    pub limit: u32,
}

/// One aggregate row; the dimensions not grouped by are `None`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct UsageRow {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy: Option<String>,
    /// Start of the day or hour bucket.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub bucket: Option<Timestamp>,
    pub requests: u64,
    pub blocked: u64,
    /// Exchanges that ended in an error (upstream or gateway).
    pub errors: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cached_tokens: u64,
    pub cost_usd: f64,
    /// Requests that used tokens of a model without a price (their cost is unknown).
    pub unpriced_requests: u64,
}

/// One proxy's traffic over a time range, by proxy id (A2A events carry the
/// agent's id there, so agents have rows too).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyTraffic {
    pub proxy_id: String,
    pub requests: u64,
    /// Exchanges that ended in an error (upstream or gateway).
    pub errors: u64,
    pub blocked: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
}

#[async_trait]
pub trait SpendStore: Send + Sync {
    async fn price_overrides(&self) -> Result<Vec<PriceOverride>>;
    /// Inserts or replaces the operator's price for a model.
    async fn put_price(&self, price: &PriceOverride, now: Timestamp) -> Result<()>;
    async fn delete_price(&self, model: &str) -> Result<bool>;

    async fn create_budget(&self, budget: NewBudget, now: Timestamp) -> Result<Budget>;
    async fn budget(&self, id: &str) -> Result<Option<Budget>>;
    async fn list_budgets(&self) -> Result<Vec<Budget>>;
    async fn update_budget(
        &self,
        id: &str,
        patch: BudgetPatch,
        now: Timestamp,
    ) -> Result<Option<Budget>>;
    async fn delete_budget(&self, id: &str) -> Result<bool>;
    /// Starts a new period now.
    async fn reset_budget(&self, id: &str, by: &str, now: Timestamp) -> Result<Option<Budget>>;
    async fn budget_resets(&self, id: &str) -> Result<Vec<Timestamp>>;

    /// Sum of event costs of a group or key in `[since, until)`.
    async fn spent_usd(
        &self,
        scope: BudgetScope,
        target_id: &str,
        since: Timestamp,
        until: Timestamp,
    ) -> Result<f64>;
    async fn usage(&self, query: &UsageQuery) -> Result<Vec<UsageRow>>;
    /// Requests, errors, blocked requests and tokens per proxy id since `since`;
    /// the `limit` busiest.
    async fn proxy_traffic(&self, since: Timestamp, limit: u32) -> Result<Vec<ProxyTraffic>>;
    /// Latencies (microseconds) of a proxy's newest `limit` events since `since`,
    /// newest first.
    async fn recent_latencies(
        &self,
        proxy_id: &str,
        since: Timestamp,
        limit: u32,
    ) -> Result<Vec<u64>>;

    /// Inserts an alert unless one with the same (event id, rule, location) exists:
    /// `true` when it is new. Lets replicas raise a period's budget alert once.
    async fn raise_alert(&self, alert: &Alert) -> Result<bool>;
}

#[derive(sqlx::FromRow)]
pub(crate) struct PriceRow {
    model: String,
    provider: String,
    input_usd: f64,
    output_usd: f64,
    cached_input_usd: f64,
}

impl From<PriceRow> for PriceOverride {
    fn from(r: PriceRow) -> Self {
        PriceOverride {
            model: r.model,
            provider: r.provider,
            price: Price::new(r.input_usd, r.output_usd, r.cached_input_usd),
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct BudgetRow {
    id: String,
    scope: String,
    target_id: String,
    limit_usd: f64,
    warn_percent: i64,
    enforcement: String,
    timezone: String,
    reset_at: Option<i64>,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<BudgetRow> for Budget {
    type Error = StoreError;
    fn try_from(r: BudgetRow) -> Result<Self> {
        let scope = BudgetScope::parse(&r.scope)
            .ok_or_else(|| StoreError::Corrupt(format!("budget {}: scope {:?}", r.id, r.scope)))?;
        let enforcement = Enforcement::parse(&r.enforcement).ok_or_else(|| {
            StoreError::Corrupt(format!("budget {}: enforcement {:?}", r.id, r.enforcement))
        })?;
        Ok(Budget {
            scope,
            enforcement,
            target_id: r.target_id,
            limit_usd: r.limit_usd,
            warn_percent: u8::try_from(r.warn_percent.clamp(0, 100)).unwrap_or(100),
            timezone: r.timezone,
            reset_at: r.reset_at.map(ts),
            created_at: ts(r.created_at),
            updated_at: ts(r.updated_at),
            id: r.id,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct UsageSqlRow {
    group_id: Option<String>,
    key_id: Option<String>,
    model: Option<String>,
    proxy: Option<String>,
    bucket: Option<i64>,
    requests: i64,
    blocked: i64,
    errors: i64,
    input_tokens: i64,
    output_tokens: i64,
    cached_tokens: i64,
    cost_usd: f64,
    unpriced: i64,
}

impl From<UsageSqlRow> for UsageRow {
    fn from(r: UsageSqlRow) -> Self {
        let n = |v: i64| v.max(0) as u64;
        UsageRow {
            group_id: r.group_id,
            key_id: r.key_id,
            model: r.model,
            proxy: r.proxy,
            bucket: r.bucket.map(ts),
            requests: n(r.requests),
            blocked: n(r.blocked),
            errors: n(r.errors),
            input_tokens: n(r.input_tokens),
            output_tokens: n(r.output_tokens),
            cached_tokens: n(r.cached_tokens),
            cost_usd: r.cost_usd,
            unpriced_requests: n(r.unpriced),
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct ProxyTrafficRow {
    proxy_id: String,
    requests: i64,
    errors: i64,
    blocked: i64,
    input_tokens: i64,
    output_tokens: i64,
}

impl From<ProxyTrafficRow> for ProxyTraffic {
    fn from(r: ProxyTrafficRow) -> Self {
        let n = |v: i64| v.max(0) as u64;
        ProxyTraffic {
            proxy_id: r.proxy_id,
            requests: n(r.requests),
            errors: n(r.errors),
            blocked: n(r.blocked),
            input_tokens: n(r.input_tokens),
            output_tokens: n(r.output_tokens),
        }
    }
}

/// The SELECT of a usage query. Only fixed column expressions are spliced in;
/// every value is a bind parameter.
pub(crate) fn usage_sql(dims: &[UsageDim]) -> String {
    let has = |d: UsageDim| dims.contains(&d);
    let pick = |d: UsageDim, expr: &str, null: &str| {
        if has(d) {
            expr.to_owned()
        } else {
            null.to_owned()
        }
    };
    let bucket = if has(UsageDim::Minute) {
        "(at / 60000) * 60000"
    } else if has(UsageDim::Hour) {
        "(at / 3600000) * 3600000"
    } else if has(UsageDim::Day) {
        "(at / 86400000) * 86400000"
    } else {
        "CAST(NULL AS BIGINT)"
    };
    let null_text = "CAST(NULL AS TEXT)";
    let columns = [
        (UsageDim::Group, "group_id"),
        (UsageDim::Key, "key_id"),
        (UsageDim::Model, "model"),
        (UsageDim::Proxy, "proxy_name"),
    ];
    let mut select: Vec<String> = columns
        .iter()
        .map(|(d, c)| pick(*d, c, null_text))
        .collect();
    select.push(bucket.to_owned());
    let mut group: Vec<&str> = columns
        .iter()
        .filter(|(d, _)| has(*d))
        .map(|(_, c)| *c)
        .collect();
    if has(UsageDim::Minute) || has(UsageDim::Hour) || has(UsageDim::Day) {
        group.push(bucket);
    }
    let group_by = if group.is_empty() {
        String::new()
    } else {
        format!(" GROUP BY {}", group.join(", "))
    };
    format!(
        "SELECT {} AS group_id, {} AS key_id, {} AS model, {} AS proxy, {} AS bucket, \
         COUNT(*) AS requests, \
         CAST(COALESCE(SUM(CASE WHEN decision = 'blocked' THEN 1 ELSE 0 END), 0) AS BIGINT) AS blocked, \
         CAST(COALESCE(SUM(CASE WHEN decision = 'error' THEN 1 ELSE 0 END), 0) AS BIGINT) AS errors, \
         CAST(COALESCE(SUM(input_tokens), 0) AS BIGINT) AS input_tokens, \
         CAST(COALESCE(SUM(output_tokens), 0) AS BIGINT) AS output_tokens, \
         CAST(COALESCE(SUM(cached_tokens), 0) AS BIGINT) AS cached_tokens, \
         COALESCE(SUM(cost_usd), 0.0) AS cost_usd, \
         CAST(COALESCE(SUM(CASE WHEN cost_usd IS NULL AND input_tokens + output_tokens > 0 THEN 1 ELSE 0 END), 0) AS BIGINT) AS unpriced \
         FROM events WHERE ($1 IS NULL OR at >= $1) AND ($2 IS NULL OR at < $2) \
         AND ($3 IS NULL OR group_id = $3) AND ($4 IS NULL OR key_id = $4) \
         AND ($5 IS NULL OR proxy_id = $5) AND ($6 IS NULL OR model = $6){group_by} \
         ORDER BY 5 DESC, 12 DESC LIMIT $7",
        select[0], select[1], select[2], select[3], select[4]
    )
}

macro_rules! budget_cols {
    () => {
        "id, scope, target_id, limit_usd, warn_percent, enforcement, timezone, reset_at, created_at, updated_at"
    };
}

macro_rules! impl_spend_store {
    ($store:ty, $db:ty) => {
        #[async_trait::async_trait]
        impl $crate::spend::SpendStore for $store {
            async fn price_overrides(&self) -> $crate::Result<Vec<portcullis_core::pricing::PriceOverride>> {
                let rows = sqlx::query_as::<_, $crate::spend::PriceRow>(
                    "SELECT model, provider, input_usd, output_usd, cached_input_usd FROM model_prices ORDER BY model",
                )
                .fetch_all(&self.pool)
                .await?;
                Ok(rows.into_iter().map(Into::into).collect())
            }

            async fn put_price(&self, p: &portcullis_core::pricing::PriceOverride, now: jiff::Timestamp) -> $crate::Result<()> {
                sqlx::query(
                    "INSERT INTO model_prices (model, provider, input_usd, output_usd, cached_input_usd, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (model) DO UPDATE SET provider = $2, \
                     input_usd = $3, output_usd = $4, cached_input_usd = $5, updated_at = $6",
                )
                .bind(&p.model)
                .bind(&p.provider)
                .bind(p.price.input)
                .bind(p.price.output)
                .bind(p.price.cached_input)
                .bind($crate::records::ms(now))
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn delete_price(&self, model: &str) -> $crate::Result<bool> {
                let done = sqlx::query("DELETE FROM model_prices WHERE model = $1").bind(model).execute(&self.pool).await?;
                Ok(done.rows_affected() > 0)
            }

            async fn create_budget(&self, b: $crate::spend::NewBudget, now: jiff::Timestamp) -> $crate::Result<portcullis_core::budget::Budget> {
                let id = portcullis_core::id::new_id();
                sqlx::query(
                    "INSERT INTO budgets (id, scope, target_id, limit_usd, warn_percent, enforcement, timezone, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
                )
                .bind(&id)
                .bind(b.scope.as_str())
                .bind(&b.target_id)
                .bind(b.limit_usd)
                .bind(i64::from(b.warn_percent))
                .bind(b.enforcement.as_str())
                .bind(&b.timezone)
                .bind($crate::records::ms(now))
                .execute(&self.pool)
                .await
                .map_err($crate::records::conflict(&format!("a budget for this {}", b.scope.as_str())))?;
                self.budget(&id).await?.ok_or_else(|| $crate::StoreError::Corrupt("budget vanished after insert".into()))
            }

            async fn budget(&self, id: &str) -> $crate::Result<Option<portcullis_core::budget::Budget>> {
                let q = concat!("SELECT ", budget_cols!(), " FROM budgets WHERE id = $1");
                sqlx::query_as::<_, $crate::spend::BudgetRow>(q).bind(id).fetch_optional(&self.pool).await?.map(TryInto::try_into).transpose()
            }

            async fn list_budgets(&self) -> $crate::Result<Vec<portcullis_core::budget::Budget>> {
                let q = concat!("SELECT ", budget_cols!(), " FROM budgets ORDER BY id");
                sqlx::query_as::<_, $crate::spend::BudgetRow>(q).fetch_all(&self.pool).await?.into_iter().map(TryInto::try_into).collect()
            }

            async fn update_budget(&self, id: &str, p: $crate::spend::BudgetPatch, now: jiff::Timestamp) -> $crate::Result<Option<portcullis_core::budget::Budget>> {
                sqlx::query(
                    "UPDATE budgets SET limit_usd = COALESCE($2, limit_usd), warn_percent = COALESCE($3, warn_percent), \
                     enforcement = COALESCE($4, enforcement), timezone = COALESCE($5, timezone), updated_at = $6 WHERE id = $1",
                )
                .bind(id)
                .bind(p.limit_usd)
                .bind(p.warn_percent.map(i64::from))
                .bind(p.enforcement.map(|e| e.as_str()))
                .bind(p.timezone.as_deref())
                .bind($crate::records::ms(now))
                .execute(&self.pool)
                .await?;
                self.budget(id).await
            }

            async fn delete_budget(&self, id: &str) -> $crate::Result<bool> {
                let done = sqlx::query("DELETE FROM budgets WHERE id = $1").bind(id).execute(&self.pool).await?;
                Ok(done.rows_affected() > 0)
            }

            async fn reset_budget(&self, id: &str, by: &str, now: jiff::Timestamp) -> $crate::Result<Option<portcullis_core::budget::Budget>> {
                let mut tx = self.pool.begin().await?;
                let done = sqlx::query("UPDATE budgets SET reset_at = $2, updated_at = $2 WHERE id = $1")
                    .bind(id)
                    .bind($crate::records::ms(now))
                    .execute(&mut *tx)
                    .await?;
                if done.rows_affected() == 0 {
                    return Ok(None);
                }
                sqlx::query("INSERT INTO budget_resets (budget_id, at, by_user) VALUES ($1, $2, $3) ON CONFLICT (budget_id, at) DO NOTHING")
                    .bind(id)
                    .bind($crate::records::ms(now))
                    .bind(by)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                self.budget(id).await
            }

            async fn budget_resets(&self, id: &str) -> $crate::Result<Vec<jiff::Timestamp>> {
                let rows: Vec<i64> = sqlx::query_scalar("SELECT at FROM budget_resets WHERE budget_id = $1 ORDER BY at")
                    .bind(id)
                    .fetch_all(&self.pool)
                    .await?;
                Ok(rows.into_iter().map($crate::records::ts).collect())
            }

            async fn spent_usd(&self, scope: portcullis_core::budget::BudgetScope, target_id: &str, since: jiff::Timestamp, until: jiff::Timestamp) -> $crate::Result<f64> {
                let q = match scope {
                    portcullis_core::budget::BudgetScope::Group => "SELECT COALESCE(SUM(cost_usd), 0.0) FROM events WHERE group_id = $1 AND at >= $2 AND at < $3",
                    portcullis_core::budget::BudgetScope::Key => "SELECT COALESCE(SUM(cost_usd), 0.0) FROM events WHERE key_id = $1 AND at >= $2 AND at < $3",
                };
                Ok(sqlx::query_scalar::<_, f64>(q)
                    .bind(target_id)
                    .bind($crate::records::ms(since))
                    .bind($crate::records::ms(until))
                    .fetch_one(&self.pool)
                    .await?)
            }

            async fn usage(&self, q: &$crate::spend::UsageQuery) -> $crate::Result<Vec<$crate::spend::UsageRow>> {
                let sql = $crate::spend::usage_sql(&q.group_by);
                let rows = sqlx::query_as::<_, $crate::spend::UsageSqlRow>(&sql)
                    .bind(q.since.map($crate::records::ms))
                    .bind(q.until.map($crate::records::ms))
                    .bind(q.group_id.as_deref())
                    .bind(q.key_id.as_deref())
                    .bind(q.proxy_id.as_deref())
                    .bind(q.model.as_deref())
                    .bind(i64::from(q.limit))
                    .fetch_all(&self.pool)
                    .await?;
                Ok(rows.into_iter().map(Into::into).collect())
            }

            async fn proxy_traffic(&self, since: jiff::Timestamp, limit: u32) -> $crate::Result<Vec<$crate::spend::ProxyTraffic>> {
                let rows = sqlx::query_as::<_, $crate::spend::ProxyTrafficRow>(
                    "SELECT proxy_id, COUNT(*) AS requests, \
                     CAST(COALESCE(SUM(CASE WHEN decision = 'error' THEN 1 ELSE 0 END), 0) AS BIGINT) AS errors, \
                     CAST(COALESCE(SUM(CASE WHEN decision = 'blocked' THEN 1 ELSE 0 END), 0) AS BIGINT) AS blocked, \
                     CAST(COALESCE(SUM(input_tokens), 0) AS BIGINT) AS input_tokens, \
                     CAST(COALESCE(SUM(output_tokens), 0) AS BIGINT) AS output_tokens \
                     FROM events WHERE at >= $1 GROUP BY proxy_id ORDER BY 2 DESC, proxy_id LIMIT $2",
                )
                .bind($crate::records::ms(since))
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                Ok(rows.into_iter().map(Into::into).collect())
            }

            async fn recent_latencies(&self, proxy_id: &str, since: jiff::Timestamp, limit: u32) -> $crate::Result<Vec<u64>> {
                // The (proxy_id, at) index serves this newest-first read.
                let rows: Vec<i64> = sqlx::query_scalar(
                    "SELECT latency_us FROM events WHERE proxy_id = $1 AND at >= $2 ORDER BY at DESC LIMIT $3",
                )
                .bind(proxy_id)
                .bind($crate::records::ms(since))
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                Ok(rows.into_iter().map(|v| v.max(0) as u64).collect())
            }

            async fn raise_alert(&self, a: &portcullis_core::alert::Alert) -> $crate::Result<bool> {
                let q = "INSERT INTO alerts (id, created_at, event_id, proxy_id, proxy_name, rule, category, severity, severity_rank, action, location, key_id, group_id, status, note) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) ON CONFLICT (event_id, rule, location) DO NOTHING";
                let done = sqlx::query(q)
                    .bind(&a.id)
                    .bind($crate::records::ms(a.created_at))
                    .bind(&a.event_id)
                    .bind(&a.proxy_id)
                    .bind(&a.proxy_name)
                    .bind(&a.rule)
                    .bind(&a.category)
                    .bind(a.severity.as_str())
                    .bind(a.severity.rank())
                    .bind(&a.action)
                    .bind(&a.location)
                    .bind(a.key_id.as_deref())
                    .bind(a.group_id.as_deref())
                    .bind(a.status.as_str())
                    .bind(a.note.as_deref())
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() > 0)
            }
        }
    };
}

pub(crate) use {budget_cols, impl_spend_store};
