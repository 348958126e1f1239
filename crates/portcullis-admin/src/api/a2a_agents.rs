//! The A2A agent registry: agents registered by URL (their AgentCard fetched) or
//! by pasted card, reviewed (approve, disable), refreshed on demand. Only approved
//! agents are served at `/a2a/{name}` on the gateway port.

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use portcullis_core::alert::{Alert, AlertStatus, Severity};
use portcullis_protocol::a2a;
use portcullis_store::{A2aAgent, AgentStatus};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// The rule an alert about a changed card carries.
pub const CARD_CHANGED_RULE: &str = "a2a-agent-card-changed";

/// Register by `url` (the card is fetched from `/.well-known/agent-card.json`,
/// then `/.well-known/agent.json`) or by pasting `card`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAgent {
    pub url: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub card: Option<Value>,
    /// The path name at the gateway (`/a2a/{name}`); default: the card's name
    /// made lower case with `-` for other characters.
    pub name: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct AgentList {
    pub agents: Vec<A2aAgent>,
}

/// Optional body of approve and refresh.
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentReview {
    /// Approve only if the stored card still has this hash.
    pub hash: Option<String>,
    /// Refresh with this card instead of fetching (pasted agents).
    #[schema(value_type = Option<Object>)]
    pub card: Option<Value>,
}

fn review_body(body: &[u8]) -> ApiResult<AgentReview> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(AgentReview::default());
    }
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(e.to_string()))
}

fn slug(name: &str) -> String {
    let mut out = String::new();
    for c in name.trim().chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').chars().take(64).collect()
}

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && !name.starts_with('-')
}

fn checked(card: &Value) -> ApiResult<()> {
    a2a::validate_card(card).map(|_| ()).map_err(|e| {
        ApiError::unprocessable(e.fields.iter().map(|f| format!("card.{f}")).collect())
    })
}

async fn fetch(state: &AppState, url: &str) -> ApiResult<Value> {
    if url.len() > 2048 {
        return Err(ApiError::unprocessable(vec![
            "url: at most 2048 bytes".into()
        ]));
    }
    state
        .data_plane
        .a2a()
        .fetch_card(url)
        .await
        .map_err(|e| ApiError::unprocessable(vec![format!("url: {e}")]))
}

async fn load(state: &AppState, id: &str) -> ApiResult<A2aAgent> {
    state
        .store
        .a2a_agent(id)
        .await?
        .ok_or_else(|| ApiError::not_found("A2A agent"))
}

/// Registers an agent (status `pending`).
#[utoipa::path(post, path = "/api/v1/a2a/agents", tag = "a2a", request_body = NewAgent,
    responses((status = 201, body = A2aAgent), (status = 409, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    body: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<A2aAgent>)> {
    let new: NewAgent =
        serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let (card, base_url) = match (new.card, new.url) {
        (Some(card), None) => (card, None),
        (None, Some(url)) => {
            let url = url.trim().trim_end_matches('/').to_owned();
            (fetch(&state, &url).await?, Some(url))
        }
        _ => {
            return Err(ApiError::bad_request(
                "give either url (to fetch the agent card) or card",
            ))
        }
    };
    checked(&card)?;
    let name = new
        .name
        .unwrap_or_else(|| slug(a2a::card_name(&card).unwrap_or_default()));
    if !valid_name(&name) {
        return Err(ApiError::unprocessable(vec![format!(
            "name: {name:?} must be 1 to 64 of a-z, 0-9, - and _"
        )]));
    }
    let now = state.clock.now();
    let agent = A2aAgent {
        id: portcullis_core::id::new_id(),
        name,
        base_url,
        card_hash: a2a::card_hash(&card),
        card,
        status: AgentStatus::Pending,
        created_at: now,
        updated_at: now,
        refreshed_at: now,
    };
    state.store.insert_a2a_agent(&agent).await?;
    state
        .audit(
            caller
                .draft("a2a_agent.create", format!("a2a_agent:{}", agent.name))
                .details(json!({"id": agent.id, "url": agent.base_url, "hash": agent.card_hash})),
        )
        .await;
    Ok((StatusCode::CREATED, Json(agent)))
}

/// Every registered agent, by name.
#[utoipa::path(get, path = "/api/v1/a2a/agents", tag = "a2a", responses((status = 200, body = AgentList)))]
pub async fn list(State(state): State<AppState>) -> ApiResult<Json<AgentList>> {
    Ok(Json(AgentList {
        agents: state.store.list_a2a_agents().await?,
    }))
}

/// One agent with its card.
#[utoipa::path(get, path = "/api/v1/a2a/agents/{id}", tag = "a2a", params(("id" = String, Path)),
    responses((status = 200, body = A2aAgent), (status = 404, body = crate::error::ErrorBody)))]
pub async fn get_one(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<A2aAgent>> {
    Ok(Json(load(&state, &id).await?))
}

/// Fetches the card again (or takes a pasted one). A different card sets the
/// status to `changed` (not served until approved again; a disabled agent stays
/// disabled) and raises an alert with the difference.
#[utoipa::path(post, path = "/api/v1/a2a/agents/{id}/refresh", tag = "a2a", params(("id" = String, Path)), request_body(content = Option<AgentReview>),
    responses((status = 200, body = A2aAgent), (status = 404, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
pub async fn refresh(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<Json<A2aAgent>> {
    let review = review_body(&body)?;
    let current = load(&state, &id).await?;
    let card = match (review.card, &current.base_url) {
        (Some(card), _) => card,
        (None, Some(url)) => fetch(&state, url).await?,
        (None, None) => {
            return Err(ApiError::unprocessable(vec![
                "card: this agent was pasted; give the new card".into(),
            ]))
        }
    };
    checked(&card)?;
    let hash = a2a::card_hash(&card);
    let changed = hash != current.card_hash;
    let status = match (changed, current.status) {
        (false, s) | (true, s @ AgentStatus::Disabled) => s,
        (true, _) => AgentStatus::Changed,
    };
    let now = state.clock.now();
    if !state
        .store
        .record_a2a_card(&id, &card, &hash, status, now)
        .await?
    {
        return Err(ApiError::not_found("A2A agent"));
    }
    if changed {
        let diff = a2a::card_diff(&current.card, &card);
        let alert = Alert {
            id: portcullis_core::id::new_id_at(now),
            created_at: now,
            event_id: format!(
                "a2a-card:{}:{}",
                current.id,
                hash.get(..16).unwrap_or(&hash)
            ),
            proxy_id: current.id.clone(),
            proxy_name: current.name.clone(),
            rule: CARD_CHANGED_RULE.to_owned(),
            category: "agent_card_changed".to_owned(),
            severity: Severity::High,
            action: "flag".to_owned(),
            location: "agent_card".to_owned(),
            key_id: None,
            group_id: None,
            status: AlertStatus::Open,
            status_changed_at: None,
            status_changed_by: None,
            note: Some(format!(
                "A2A agent {:?} changed its card and is {} until approved again.\n{diff}",
                current.name,
                status.as_str()
            )),
        };
        if let Err(e) = state.store.raise_alert(&alert).await {
            tracing::error!(error = %e, agent = %current.name, "A2A card change alert not stored");
        }
        tracing::warn!(agent = %current.name, "A2A agent card changed; flagged until approved");
    }
    state
        .audit(
            caller
                .draft("a2a_agent.refresh", format!("a2a_agent:{}", current.name))
                .details(
                    json!({"id": id, "changed": changed, "from": current.card_hash, "hash": hash}),
                ),
        )
        .await;
    Ok(Json(load(&state, &id).await?))
}

/// Approves the agent's current card: the gateway serves it.
#[utoipa::path(post, path = "/api/v1/a2a/agents/{id}/approve", tag = "a2a", params(("id" = String, Path)), request_body(content = Option<AgentReview>),
    responses((status = 200, body = A2aAgent), (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody)))]
pub async fn approve(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<Json<A2aAgent>> {
    let review = review_body(&body)?;
    let current = load(&state, &id).await?;
    let stale = || {
        ApiError::new(
            ErrorCode::Conflict,
            "the agent's card changed since it was read; review it again",
        )
    };
    if review
        .hash
        .as_ref()
        .is_some_and(|h| *h != current.card_hash)
    {
        return Err(stale());
    }
    if !state
        .store
        .set_a2a_agent_status(
            &id,
            AgentStatus::Approved,
            Some(&current.card_hash),
            state.clock.now(),
        )
        .await?
    {
        return Err(stale());
    }
    state
        .audit(
            caller
                .draft("a2a_agent.approve", format!("a2a_agent:{}", current.name))
                .details(json!({"id": id, "from": current.status, "hash": current.card_hash})),
        )
        .await;
    Ok(Json(load(&state, &id).await?))
}

/// Disables the agent: not served, whatever its card.
#[utoipa::path(post, path = "/api/v1/a2a/agents/{id}/disable", tag = "a2a", params(("id" = String, Path)),
    responses((status = 200, body = A2aAgent), (status = 404, body = crate::error::ErrorBody)))]
pub async fn disable(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<A2aAgent>> {
    let current = load(&state, &id).await?;
    if !state
        .store
        .set_a2a_agent_status(&id, AgentStatus::Disabled, None, state.clock.now())
        .await?
    {
        return Err(ApiError::not_found("A2A agent"));
    }
    state
        .audit(
            caller
                .draft("a2a_agent.disable", format!("a2a_agent:{}", current.name))
                .details(json!({"id": id, "from": current.status})),
        )
        .await;
    Ok(Json(load(&state, &id).await?))
}

/// Removes the agent from the registry.
#[utoipa::path(delete, path = "/api/v1/a2a/agents/{id}", tag = "a2a", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = crate::error::ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let current = load(&state, &id).await?;
    if !state.store.delete_a2a_agent(&id).await? {
        return Err(ApiError::not_found("A2A agent"));
    }
    state
        .audit(
            caller
                .draft("a2a_agent.delete", format!("a2a_agent:{}", current.name))
                .details(json!({"id": id})),
        )
        .await;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_cards() {
        assert_eq!(slug("Echo Agent!"), "echo-agent");
        assert!(valid_name(&slug("Echo Agent!")));
        assert!(!valid_name("a/b"));
        assert!(!valid_name(""));
    }
}
