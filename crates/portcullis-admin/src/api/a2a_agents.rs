//! The A2A agent registry: agents registered by URL (their AgentCard fetched) or
//! by pasted card, reviewed (approve, disable), refreshed on demand. Only approved
//! agents are served at `/a2a/{name}` on the gateway port.

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::extract::{ApiJson, ApiQuery};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use portcullis_core::alert::{Alert, AlertStatus, Severity};
use portcullis_protocol::a2a;
use portcullis_store::{
    A2aAgent, A2aTask, AgentCredential, AgentGrant, AgentSettings, AgentStatus, TaskFilter,
};
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

/// Changes who may call an agent, its rate limit, its upstream credential or its
/// policies; fields left out stay as they are.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentUpdate {
    /// The groups allowed to call the agent, each with the skill ids it sees
    /// (absent: every skill). Replaces the list; empty: nobody may call it.
    pub access: Option<Vec<AgentGrant>>,
    /// Requests per minute per key on this agent (1 to 1000000); null removes it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u64>)]
    pub rate_limit_rpm: Option<Option<u64>>,
    /// A stored credential sent to the agent; null removes it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<AgentCredential>)]
    pub credential: Option<Option<AgentCredential>>,
    /// Policy packs (built-in or user) the agent's messages and answers are
    /// scanned with, at `agent_message`; `[]` scans nothing; null restores the
    /// default (`llm-critical-security`).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<String>>)]
    pub policies: Option<Option<Vec<String>>>,
}

/// A field that is present, even as null: `Some(None)`; absent: `None` (default).
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// Most groups one agent lists, and skills per group.
const MAX_GRANTS: usize = 256;

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

/// The card is valid and its JSON-RPC endpoint is not refused by the SSRF policy
/// (an IP literal is judged here; a name when the gateway connects).
fn checked(state: &AppState, card: &Value) -> ApiResult<()> {
    a2a::validate_card(card).map_err(|e| {
        ApiError::unprocessable(e.fields.iter().map(|f| format!("card.{f}")).collect())
    })?;
    for url in a2a::jsonrpc_urls(card) {
        if let Err(e) = state.data_plane.a2a().check_url(url) {
            return Err(ApiError::unprocessable(vec![format!(
                "card endpoint {url:?}: {e} (see a2a.allow_private_networks and a2a.allowed_networks)"
            )]));
        }
    }
    Ok(())
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
    checked(&state, &card)?;
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
        settings: AgentSettings::default(),
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
    let (changed, hash) = apply_card(&state, &current, card).await?;
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

/// Stores a refreshed card: a different one sets the status to `changed` (a
/// disabled agent stays disabled) and raises an alert with the difference.
/// Returns whether it changed, and its hash.
async fn apply_card(
    state: &AppState,
    current: &A2aAgent,
    card: Value,
) -> ApiResult<(bool, String)> {
    checked(state, &card)?;
    let hash = a2a::card_hash(&card);
    let changed = hash != current.card_hash;
    let status = match (changed, current.status) {
        (false, s) | (true, s @ AgentStatus::Disabled) => s,
        (true, _) => AgentStatus::Changed,
    };
    let now = state.clock.now();
    if !state
        .store
        .record_a2a_card(&current.id, &card, &hash, status, now)
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
        let raised = state
            .data_plane
            .relay()
            .events
            .live()
            .raise_alert(state.store.as_ref(), &alert)
            .await;
        if let Err(e) = raised {
            tracing::error!(error = %e, agent = %current.name, "A2A card change alert not stored");
        }
        tracing::warn!(agent = %current.name, "A2A agent card changed; flagged until approved");
    }
    Ok((changed, hash))
}

/// Refreshes every agent registered by URL (not disabled ones) every `every`,
/// as the refresh endpoint does; a change is audited as `a2a_agent.refresh` by
/// `scheduler` and raises the same alert. Ends with the server.
pub fn spawn_card_refresh(state: AppState, every: std::time::Duration) {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                () = state.shutdown.triggered() => return,
            }
            refresh_all(&state).await;
        }
    });
}

async fn refresh_all(state: &AppState) {
    let agents = match state.store.list_a2a_agents().await {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(error = %e, "scheduled A2A card refresh: registry unreadable");
            return;
        }
    };
    for current in agents {
        let Some(url) = current.base_url.as_deref() else {
            continue;
        };
        if current.status == AgentStatus::Disabled {
            continue;
        }
        let refreshed = match fetch(state, url).await {
            Ok(card) => apply_card(state, &current, card).await,
            Err(e) => Err(e),
        };
        match refreshed {
            Ok((true, hash)) => {
                state
                    .audit(
                        portcullis_core::audit::AuditDraft::new(
                            "scheduler",
                            "a2a_agent.refresh",
                            format!("a2a_agent:{}", current.name),
                        )
                        .details(json!({"id": current.id, "changed": true, "from": current.card_hash, "hash": hash, "scheduled": true})),
                    )
                    .await;
            }
            Ok((false, _)) => {}
            Err(e) => {
                tracing::warn!(agent = %current.name, error = ?e, "scheduled A2A card refresh failed");
            }
        }
    }
}

/// Sets which groups may call the agent (and the skills each sees), its rate
/// limit per key, the credential the gateway sends upstream, and the policy
/// packs its messages and answers are scanned with.
#[utoipa::path(patch, path = "/api/v1/a2a/agents/{id}", tag = "a2a", params(("id" = String, Path)), request_body = AgentUpdate,
    responses((status = 200, body = A2aAgent), (status = 404, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<AgentUpdate>,
) -> ApiResult<Json<A2aAgent>> {
    let current = load(&state, &id).await?;
    let mut settings = current.settings.clone();
    let mut problems = Vec::new();
    if let Some(access) = req.access {
        check_access(&state, &current.card, &access, &mut problems).await?;
        settings.access = access;
    }
    if let Some(rpm) = req.rate_limit_rpm {
        if rpm.is_some_and(|n| n == 0 || n > 1_000_000) {
            problems.push("rate_limit_rpm: between 1 and 1000000, or null".into());
        }
        settings.rate_limit_rpm = rpm;
    }
    if let Some(credential) = req.credential {
        if let Some(c) = &credential {
            check_credential(&state, c, &mut problems).await?;
        }
        settings.credential = credential;
    }
    if let Some(policies) = req.policies {
        if let Some(names) = &policies {
            if let Err(mut found) = super::policies::resolve_for_proxy(&state, names).await? {
                problems.append(&mut found);
            }
        }
        settings.policies = policies;
    }
    if !problems.is_empty() {
        return Err(ApiError::unprocessable(problems));
    }
    if !state
        .store
        .set_a2a_agent_settings(&id, &settings, state.clock.now())
        .await?
    {
        return Err(ApiError::not_found("A2A agent"));
    }
    state
        .audit(
            caller
                .draft("a2a_agent.update", format!("a2a_agent:{}", current.name))
                .details(json!({"id": id, "from": current.settings, "to": settings})),
        )
        .await;
    Ok(Json(load(&state, &id).await?))
}

/// Groups exist and are listed once; skills are the card's, listed once.
async fn check_access(
    state: &AppState,
    card: &Value,
    access: &[AgentGrant],
    problems: &mut Vec<String>,
) -> ApiResult<()> {
    if access.len() > MAX_GRANTS {
        problems.push(format!("access: at most {MAX_GRANTS} groups"));
        return Ok(());
    }
    let card_skills: Vec<&str> = card
        .get("skills")
        .and_then(Value::as_array)
        .map(|s| s.iter().filter_map(|k| k.get("id")?.as_str()).collect())
        .unwrap_or_default();
    for (i, grant) in access.iter().enumerate() {
        if access[..i].iter().any(|g| g.group_id == grant.group_id) {
            problems.push(format!("access[{i}].group_id: listed twice"));
        } else if grant.group_id.len() > 64 || state.store.group(&grant.group_id).await?.is_none() {
            problems.push(format!("access[{i}].group_id: no such group"));
        }
        let Some(skills) = &grant.skills else {
            continue;
        };
        if skills.is_empty() || skills.len() > MAX_GRANTS {
            problems.push(format!(
                "access[{i}].skills: 1 to {MAX_GRANTS} skill ids, or leave it out for every skill"
            ));
        }
        for (j, skill) in skills.iter().enumerate() {
            if skills[..j].contains(skill) {
                problems.push(format!("access[{i}].skills[{j}]: listed twice"));
            } else if !card_skills.contains(&skill.as_str()) {
                problems.push(format!(
                    "access[{i}].skills[{j}]: the card has no skill {:?}",
                    skill.chars().take(64).collect::<String>()
                ));
            }
        }
    }
    Ok(())
}

/// Header names the gateway owns or that would break the exchange.
const RESERVED_HEADERS: [&str; 8] = [
    "host",
    "content-length",
    "content-type",
    "transfer-encoding",
    "connection",
    "accept",
    "a2a-version",
    "a2a-extensions",
];

async fn check_credential(
    state: &AppState,
    credential: &AgentCredential,
    problems: &mut Vec<String>,
) -> ApiResult<()> {
    if credential.credential_id.len() > 64
        || state
            .store
            .credential(&credential.credential_id)
            .await?
            .is_none()
    {
        problems.push("credential.credential_id: no such credential".into());
    }
    if let Some(header) = &credential.header {
        let lower = header.to_ascii_lowercase();
        if header.len() > 64
            || axum::http::HeaderName::from_bytes(header.as_bytes()).is_err()
            || RESERVED_HEADERS.contains(&lower.as_str())
            || lower.starts_with("x-portcullis-")
        {
            problems.push(format!(
                "credential.header: {:?} is not a header name the gateway may set",
                header.chars().take(64).collect::<String>()
            ));
        }
    }
    Ok(())
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

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct TaskQuery {
    pub agent_id: Option<String>,
    /// The key that created the task.
    pub key_id: Option<String>,
    pub group_id: Option<String>,
    /// submitted, working, input-required, completed, canceled, failed, rejected,
    /// auth-required or unknown.
    pub state: Option<String>,
    pub context_id: Option<String>,
    /// 1 to 1000, default 100.
    pub limit: Option<u32>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct TaskList {
    pub tasks: Vec<A2aTask>,
}

/// Tasks seen through the gateway, most recently updated first.
#[utoipa::path(get, path = "/api/v1/a2a/tasks", tag = "a2a", params(TaskQuery),
    responses((status = 200, body = TaskList), (status = 400, body = crate::error::ErrorBody)))]
pub async fn tasks(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<TaskQuery>,
) -> ApiResult<Json<TaskList>> {
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > 1000 {
        return Err(ApiError::bad_request("limit: must be between 1 and 1000"));
    }
    if let Some(s) = q.state.as_deref() {
        if !a2a::TASK_STATES.contains(&s) {
            return Err(ApiError::bad_request(format!(
                "state: one of {}",
                a2a::TASK_STATES.join(", ")
            )));
        }
    }
    let filter = TaskFilter {
        agent_id: q.agent_id,
        key_id: q.key_id,
        group_id: q.group_id,
        state: q.state,
        context_id: q.context_id,
        limit,
    };
    Ok(Json(TaskList {
        tasks: state.store.list_a2a_tasks(&filter).await?,
    }))
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
