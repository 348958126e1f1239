//! The audit log: list with filters, and verify the hash chain.

use crate::error::{ApiError, ApiResult};
use crate::extract::ApiQuery;
use crate::state::AppState;
use axum::extract::State;
use axum::Json;
use jiff::Timestamp;
use portcullis_core::audit::{AuditEntry, ChainBreak, ChainVerifier};
use portcullis_store::AuditFilter;
use serde::{Deserialize, Serialize};

const MAX_PAGE: u32 = 500;
const VERIFY_PAGE: u32 = 1000;

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    pub actor: Option<String>,
    /// An action (`group.create`), or a family ending in a dot (`group.`).
    pub action: Option<String>,
    pub target: Option<String>,
    /// RFC 3339; entries at or after.
    #[param(value_type = Option<String>)]
    pub since: Option<Timestamp>,
    /// RFC 3339; entries before.
    #[param(value_type = Option<String>)]
    pub until: Option<Timestamp>,
    /// Cursor from `next_before_id` of the previous page.
    pub before_id: Option<i64>,
    /// 1 to 500, default 100.
    pub limit: Option<u32>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct AuditPage {
    pub entries: Vec<AuditEntry>,
    /// Pass as `before_id` for the next (older) page; absent on the last page.
    pub next_before_id: Option<i64>,
}

/// Audit entries, newest first.
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(AuditQuery), responses((status = 200, body = AuditPage)))]
pub async fn list(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> ApiResult<Json<AuditPage>> {
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > MAX_PAGE {
        return Err(ApiError::bad_request(format!(
            "limit: must be between 1 and {MAX_PAGE}"
        )));
    }
    let filter = AuditFilter {
        actor: q.actor,
        action: q.action,
        target: q.target,
        since: q.since,
        until: q.until,
        before_id: q.before_id,
        limit,
    };
    let entries = state.store.list_audit(&filter).await?;
    let next_before_id = (entries.len() == limit as usize)
        .then(|| entries.last().map(|e| e.id))
        .flatten();
    Ok(Json(AuditPage {
        entries,
        next_before_id,
    }))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Verification {
    pub intact: bool,
    /// Entries verified before the first break (all of them when intact).
    pub checked: u64,
    pub first_broken: Option<ChainBreak>,
}

/// Recomputes the hash chain and names the first entry that does not verify.
#[utoipa::path(get, path = "/api/v1/audit/verify", tag = "audit", responses((status = 200, body = Verification)))]
pub async fn verify(State(state): State<AppState>) -> ApiResult<Json<Verification>> {
    let mut verifier = ChainVerifier::default();
    let mut after = 0;
    loop {
        let page = state.store.audit_chain(after, VERIFY_PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.id;
        for row in &page {
            if let Err(broken) = verifier.check(row) {
                return Ok(Json(Verification {
                    intact: false,
                    checked: verifier.checked(),
                    first_broken: Some(broken),
                }));
            }
        }
    }
    Ok(Json(Verification {
        intact: true,
        checked: verifier.checked(),
        first_broken: None,
    }))
}
