//! Spend budgets on groups and keys: definition, live state, manual reset and
//! the history of past periods.

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::extract::ApiJson;
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use portcullis_core::budget::{time_zone, Budget, BudgetScope, Enforcement, Period};
use portcullis_proxy::spend::BudgetStatus;
use portcullis_store::{BudgetPatch, NewBudget};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// Periods listed by the history, newest kept.
const HISTORY_PERIODS: usize = 24;
const MAX_LIMIT_USD: f64 = 1e9;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateBudget {
    /// `group` or `key`.
    pub scope: BudgetScope,
    /// The group's or key's id.
    pub target_id: String,
    /// Monthly limit in USD.
    pub limit_usd: f64,
    /// Percent of the limit at which the budget warns (default 80).
    pub warn_percent: Option<u8>,
    /// `block` (402 at the limit, the default) or `warn`.
    pub enforcement: Option<Enforcement>,
    /// IANA time zone of the monthly periods (default UTC).
    pub timezone: Option<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateBudget {
    pub limit_usd: Option<f64>,
    pub warn_percent: Option<u8>,
    pub enforcement: Option<Enforcement>,
    pub timezone: Option<String>,
}

/// A budget with its state in the current period.
#[derive(Serialize, utoipa::ToSchema)]
pub struct BudgetView {
    #[serde(flatten)]
    pub budget: Budget,
    /// The group's or key's name.
    pub target_name: Option<String>,
    /// None when the ledger cannot be read right now.
    pub status: Option<BudgetStatus>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct BudgetList {
    pub budgets: Vec<BudgetView>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct PastPeriod {
    #[serde(flatten)]
    pub period: Period,
    /// Recorded event costs in the period.
    pub spent_usd: f64,
    /// Whether a manual reset ended it (otherwise the month did, or it is current).
    pub ended_by_reset: bool,
    pub current: bool,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct BudgetHistory {
    pub budget_id: String,
    /// Oldest first, at most 24.
    pub periods: Vec<PastPeriod>,
}

fn check(
    limit_usd: Option<f64>,
    warn_percent: Option<u8>,
    timezone: Option<&str>,
) -> ApiResult<()> {
    let mut problems = Vec::new();
    if let Some(l) = limit_usd {
        if !(l.is_finite() && l > 0.0 && l <= MAX_LIMIT_USD) {
            problems.push(format!(
                "limit_usd: a positive amount of USD, at most {MAX_LIMIT_USD}"
            ));
        }
    }
    if warn_percent.is_some_and(|w| !(1..=100).contains(&w)) {
        problems.push("warn_percent: from 1 to 100".to_owned());
    }
    if let Some(tz) = timezone {
        if let Err(e) = time_zone(tz) {
            problems.push(format!("timezone: {e}"));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ApiError::unprocessable(problems))
    }
}

async fn target_name(state: &AppState, scope: BudgetScope, id: &str) -> ApiResult<Option<String>> {
    Ok(match scope {
        BudgetScope::Group => state.store.group(id).await?.map(|g| g.name),
        BudgetScope::Key => state.store.api_key(id).await?.map(|k| k.name),
    })
}

async fn view(state: &AppState, budget: Budget) -> ApiResult<BudgetView> {
    let status = match state.data_plane.relay().spend.status(&budget).await {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, budget = %budget.id, "budget state unavailable");
            None
        }
    };
    Ok(BudgetView {
        target_name: target_name(state, budget.scope, &budget.target_id).await?,
        budget,
        status,
    })
}

async fn reload(state: &AppState) -> ApiResult<()> {
    state.data_plane.relay().spend.reload().await?;
    Ok(())
}

async fn find(state: &AppState, id: &str) -> ApiResult<Budget> {
    state
        .store
        .budget(id)
        .await?
        .ok_or_else(|| ApiError::not_found("budget"))
}

/// Every budget with its current spend, limit, remaining amount and period end.
#[utoipa::path(get, path = "/api/v1/budgets", tag = "budgets", responses((status = 200, body = BudgetList)))]
pub async fn list(State(state): State<AppState>) -> ApiResult<Json<BudgetList>> {
    let mut budgets = Vec::new();
    for b in state.store.list_budgets().await? {
        budgets.push(view(&state, b).await?);
    }
    Ok(Json(BudgetList { budgets }))
}

/// Sets a monthly budget on a group or a key (one each).
#[utoipa::path(post, path = "/api/v1/budgets", tag = "budgets", request_body = CreateBudget,
    responses((status = 201, body = BudgetView), (status = 409, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<CreateBudget>,
) -> ApiResult<(StatusCode, Json<BudgetView>)> {
    check(
        Some(req.limit_usd),
        req.warn_percent,
        req.timezone.as_deref(),
    )?;
    if target_name(&state, req.scope, &req.target_id)
        .await?
        .is_none()
    {
        return Err(ApiError::unprocessable(vec![format!(
            "target_id: no {} with this id",
            req.scope.as_str()
        )]));
    }
    let budget = state
        .store
        .create_budget(
            NewBudget {
                scope: req.scope,
                target_id: req.target_id,
                limit_usd: req.limit_usd,
                warn_percent: req.warn_percent.unwrap_or(80),
                enforcement: req.enforcement.unwrap_or(Enforcement::Block),
                timezone: req.timezone.unwrap_or_else(|| "UTC".into()),
            },
            state.clock.now(),
        )
        .await?;
    reload(&state).await?;
    state
        .audit(caller.draft("budget.create", format!("budget:{}", budget.id)).details(json!({
            "scope": budget.scope, "target_id": budget.target_id, "limit_usd": budget.limit_usd,
            "warn_percent": budget.warn_percent, "enforcement": budget.enforcement, "timezone": budget.timezone,
        })))
        .await;
    Ok((StatusCode::CREATED, Json(view(&state, budget).await?)))
}

/// One budget with its current state.
#[utoipa::path(get, path = "/api/v1/budgets/{id}", tag = "budgets", params(("id" = String, Path)),
    responses((status = 200, body = BudgetView), (status = 404, body = crate::error::ErrorBody)))]
pub async fn get_one(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<BudgetView>> {
    let budget = find(&state, &id).await?;
    Ok(Json(view(&state, budget).await?))
}

/// Changes the limit, threshold, enforcement or time zone; spend so far is kept.
#[utoipa::path(patch, path = "/api/v1/budgets/{id}", tag = "budgets", params(("id" = String, Path)), request_body = UpdateBudget,
    responses((status = 200, body = BudgetView), (status = 404, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<UpdateBudget>,
) -> ApiResult<Json<BudgetView>> {
    check(req.limit_usd, req.warn_percent, req.timezone.as_deref())?;
    let before = find(&state, &id).await?;
    let budget = state
        .store
        .update_budget(
            &id,
            BudgetPatch {
                limit_usd: req.limit_usd,
                warn_percent: req.warn_percent,
                enforcement: req.enforcement,
                timezone: req.timezone,
            },
            state.clock.now(),
        )
        .await?
        .ok_or_else(|| ApiError::not_found("budget"))?;
    reload(&state).await?;
    state
        .audit(caller.draft("budget.update", format!("budget:{id}")).details(json!({
            "from": {"limit_usd": before.limit_usd, "warn_percent": before.warn_percent, "enforcement": before.enforcement, "timezone": before.timezone},
            "to": {"limit_usd": budget.limit_usd, "warn_percent": budget.warn_percent, "enforcement": budget.enforcement, "timezone": budget.timezone},
        })))
        .await;
    Ok(Json(view(&state, budget).await?))
}

/// Removes a budget: the group or key is no longer limited.
#[utoipa::path(delete, path = "/api/v1/budgets/{id}", tag = "budgets", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = crate::error::ErrorBody)))]
pub async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    if !state.store.delete_budget(&id).await? {
        return Err(ApiError::not_found("budget"));
    }
    reload(&state).await?;
    state
        .audit(caller.draft("budget.delete", format!("budget:{id}")))
        .await;
    Ok(StatusCode::NO_CONTENT)
}

/// Starts a new period now: spend counts from zero until the month ends.
#[utoipa::path(post, path = "/api/v1/budgets/{id}/reset", tag = "budgets", params(("id" = String, Path)),
    responses((status = 200, body = BudgetView), (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody)))]
pub async fn reset(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<BudgetView>> {
    let before = find(&state, &id).await?;
    let spent = state
        .data_plane
        .relay()
        .spend
        .status(&before)
        .await
        .map(|s| s.spent_usd)
        .ok();
    let now = state.clock.now();
    if before.reset_at == Some(now) {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            "the budget was reset at this very moment",
        ));
    }
    let budget = state
        .store
        .reset_budget(&id, &caller.actor(), now)
        .await?
        .ok_or_else(|| ApiError::not_found("budget"))?;
    reload(&state).await?;
    state
        .audit(
            caller
                .draft("budget.reset", format!("budget:{id}"))
                .details(json!({"spent_usd_before": spent, "limit_usd": budget.limit_usd})),
        )
        .await;
    Ok(Json(view(&state, budget).await?))
}

/// Past and current periods with the spend recorded in each.
#[utoipa::path(get, path = "/api/v1/budgets/{id}/history", tag = "budgets", params(("id" = String, Path)),
    responses((status = 200, body = BudgetHistory), (status = 404, body = crate::error::ErrorBody)))]
pub async fn history(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<BudgetHistory>> {
    let budget = find(&state, &id).await?;
    let resets = state.store.budget_resets(&id).await?;
    let now = state.clock.now();
    let mut periods = Vec::new();
    for period in budget.periods_until(now, &resets, HISTORY_PERIODS) {
        let spent_usd = state
            .store
            .spent_usd(budget.scope, &budget.target_id, period.start, period.end)
            .await?;
        periods.push(PastPeriod {
            ended_by_reset: resets.contains(&period.end),
            current: period.start <= now && now < period.end,
            period,
            spent_usd,
        });
    }
    Ok(Json(BudgetHistory {
        budget_id: id,
        periods,
    }))
}
