//! Governed system prompts: templates, their bindings to proxies and groups, and
//! a dry run that shows the request a proxy would send upstream. Every change
//! reloads the data plane's snapshot and is audited.

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::extract::ApiJson;
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use jiff::Timestamp;
use portcullis_protocol::system_prompt::{self, Injection, Template, Variable};
use portcullis_protocol::Endpoint;
use portcullis_proxy::prompts::{utc_date, Candidate, RequestFacts};
use portcullis_store::{BindingTarget, NewSystemPrompt, PromptBinding, SystemPromptRecord};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::HashMap;

/// Most templates kept.
pub const MAX_TEMPLATES: usize = 1000;
/// Most bindings of one template.
pub const MAX_BINDINGS: usize = 1000;
/// Priorities lie within ± this.
pub const MAX_PRIORITY: i64 = 1_000_000;
const MAX_DESCRIPTION_CHARS: usize = 1000;

#[derive(Serialize, utoipa::ToSchema)]
pub struct BindingView {
    /// `proxy` or `group`.
    #[schema(value_type = String)]
    pub target_kind: BindingTarget,
    pub target_id: String,
    /// None when the target no longer exists.
    pub target_name: Option<String>,
    /// Higher wins among bindings of the same kind; any group binding beats any
    /// proxy binding.
    pub priority: i64,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct SystemPromptView {
    pub id: String,
    pub name: String,
    pub description: String,
    pub content: String,
    /// The variables the content uses, e.g. `user`, `group`.
    pub variables: Vec<&'static str>,
    pub bindings: Vec<BindingView>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSystemPrompt {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// At most 32 KiB; variables: `{{user}}`, `{{group}}`, `{{date}}`,
    /// `{{organization}}`, `{{proxy}}`.
    pub content: String,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateSystemPrompt {
    pub name: Option<String>,
    pub description: Option<String>,
    pub content: Option<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BindingInput {
    /// `proxy` or `group`.
    #[schema(value_type = String)]
    pub target_kind: BindingTarget,
    /// The proxy or group, by id or name.
    pub target: String,
    #[serde(default)]
    pub priority: i64,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetBindings {
    /// Replaces every binding of the template; an empty list unbinds it.
    pub bindings: Vec<BindingInput>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DryRunRequest {
    /// The proxy, by id or name (it need not be running).
    pub proxy: String,
    /// The caller's group, by id or name.
    pub group: Option<String>,
    /// An API key id, standing for its group.
    pub key: Option<String>,
    /// The end user (`x-portcullis-user`); else the body's `user`.
    pub user: Option<String>,
    /// `chat_completions`, `responses`, `messages`, ...; or give `path`.
    pub endpoint: Option<String>,
    /// A proxy path such as `/v1/chat/completions`.
    pub path: Option<String>,
    /// The request body as the client would send it.
    #[schema(value_type = Object)]
    pub body: Value,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct DryRunTemplate {
    pub id: String,
    pub name: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct DryRunResult {
    pub endpoint: &'static str,
    /// Whether a governed prompt was put into the body.
    pub applied: bool,
    pub template: Option<DryRunTemplate>,
    /// The binding that won.
    pub binding: Option<BindingView>,
    /// Why this template (or none) applies.
    pub reason: String,
    /// Every binding that applies to this proxy and group, in the order they are
    /// considered: the first wins.
    pub considered: Vec<BindingView>,
    /// The rendered prompt.
    pub system_prompt: Option<String>,
    /// The body as it would go upstream (before stream-usage options).
    #[schema(value_type = Object)]
    pub body: Value,
}

fn variable_name(v: Variable) -> &'static str {
    match v {
        Variable::User => "user",
        Variable::Group => "group",
        Variable::Date => "date",
        Variable::Organization => "organization",
        Variable::Proxy => "proxy",
    }
}

/// Names of every proxy and group, for binding views.
async fn target_names(state: &AppState) -> ApiResult<HashMap<(BindingTarget, String), String>> {
    let mut names = HashMap::new();
    for p in state.store.list_proxies().await? {
        names.insert((BindingTarget::Proxy, p.id), p.spec.name);
    }
    for g in state.store.list_groups().await? {
        names.insert((BindingTarget::Group, g.id), g.name);
    }
    Ok(names)
}

fn binding_view(
    names: &HashMap<(BindingTarget, String), String>,
    target: BindingTarget,
    target_id: &str,
    priority: i64,
) -> BindingView {
    BindingView {
        target_kind: target,
        target_id: target_id.to_owned(),
        target_name: names.get(&(target, target_id.to_owned())).cloned(),
        priority,
    }
}

fn view(
    record: SystemPromptRecord,
    bindings: &[PromptBinding],
    names: &HashMap<(BindingTarget, String), String>,
) -> SystemPromptView {
    // Stored content was validated; an unparsable one shows no variables.
    let variables = Template::parse(&record.content)
        .map(|t| t.variables().iter().copied().map(variable_name).collect())
        .unwrap_or_default();
    SystemPromptView {
        bindings: bindings
            .iter()
            .filter(|b| b.template_id == record.id)
            .map(|b| binding_view(names, b.target, &b.target_id, b.priority))
            .collect(),
        id: record.id,
        name: record.name,
        description: record.description,
        content: record.content,
        variables,
        created_at: record.created_at,
        updated_at: record.updated_at,
    }
}

async fn load(state: &AppState, id: &str) -> ApiResult<SystemPromptRecord> {
    state
        .store
        .system_prompt(id)
        .await?
        .ok_or_else(|| ApiError::not_found("system prompt"))
}

async fn full_view(state: &AppState, record: SystemPromptRecord) -> ApiResult<SystemPromptView> {
    let bindings = state.store.list_prompt_bindings(Some(&record.id)).await?;
    Ok(view(record, &bindings, &target_names(state).await?))
}

/// Every problem with a template's fields.
fn problems(name: &str, description: &str, content: &str) -> Vec<String> {
    let mut out = Vec::new();
    if super::check_name("name", name).is_err() {
        out.push("name: 1-64 characters of letters, digits, spaces and . _ - @, without leading or trailing spaces".into());
    }
    if description.chars().count() > MAX_DESCRIPTION_CHARS {
        out.push(format!(
            "description: at most {MAX_DESCRIPTION_CHARS} characters"
        ));
    }
    if let Err(e) = Template::parse(content) {
        out.push(e.to_string());
    }
    out
}

/// The snapshot the proxies read must follow every change; a failed reload is
/// logged by the data plane and the change itself stands.
async fn reload(state: &AppState) {
    let _ = state.data_plane.refresh_prompts().await;
}

/// Every template with its bindings, by name.
#[utoipa::path(get, path = "/api/v1/system-prompts", tag = "system-prompts", responses((status = 200, body = [SystemPromptView])))]
pub async fn list(State(state): State<AppState>) -> ApiResult<Json<Vec<SystemPromptView>>> {
    let bindings = state.store.list_prompt_bindings(None).await?;
    let names = target_names(&state).await?;
    let records = state.store.list_system_prompts().await?;
    Ok(Json(
        records
            .into_iter()
            .map(|r| view(r, &bindings, &names))
            .collect(),
    ))
}

/// One template with its bindings.
#[utoipa::path(get, path = "/api/v1/system-prompts/{id}", tag = "system-prompts", params(("id" = String, Path)),
    responses((status = 200, body = SystemPromptView), (status = 404, body = crate::error::ErrorBody)))]
pub async fn get_one(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<SystemPromptView>> {
    let record = load(&state, &id).await?;
    Ok(Json(full_view(&state, record).await?))
}

/// Stores a template (unbound until `PUT .../bindings`). 422 lists every problem,
/// an unknown `{{variable}}` included.
#[utoipa::path(post, path = "/api/v1/system-prompts", tag = "system-prompts", request_body = CreateSystemPrompt,
    responses((status = 201, body = SystemPromptView), (status = 409, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<CreateSystemPrompt>,
) -> ApiResult<(StatusCode, Json<SystemPromptView>)> {
    let found = problems(&req.name, &req.description, &req.content);
    if !found.is_empty() {
        return Err(ApiError::unprocessable(found));
    }
    if state.store.list_system_prompts().await?.len() >= MAX_TEMPLATES {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            format!("at most {MAX_TEMPLATES} system prompts; delete one first"),
        ));
    }
    let record = state
        .store
        .create_system_prompt(
            NewSystemPrompt {
                name: req.name,
                description: req.description,
                content: req.content,
            },
            state.clock.now(),
        )
        .await?;
    state
        .audit(
            caller
                .draft(
                    "system_prompt.create",
                    format!("system_prompt:{}", record.id),
                )
                .details(json!({"name": record.name, "content": record.content})),
        )
        .await;
    Ok((StatusCode::CREATED, Json(full_view(&state, record).await?)))
}

/// Changes a template's name, description or content; bound proxies use the new
/// content from the next request.
#[utoipa::path(patch, path = "/api/v1/system-prompts/{id}", tag = "system-prompts", params(("id" = String, Path)), request_body = UpdateSystemPrompt,
    responses((status = 200, body = SystemPromptView), (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<UpdateSystemPrompt>,
) -> ApiResult<Json<SystemPromptView>> {
    let current = load(&state, &id).await?;
    let changes = json!({"name": req.name, "description": req.description, "content": req.content});
    let next = NewSystemPrompt {
        name: req.name.unwrap_or(current.name),
        description: req.description.unwrap_or(current.description),
        content: req.content.unwrap_or(current.content),
    };
    let found = problems(&next.name, &next.description, &next.content);
    if !found.is_empty() {
        return Err(ApiError::unprocessable(found));
    }
    let record = state
        .store
        .update_system_prompt(&id, next, state.clock.now())
        .await?
        .ok_or_else(|| ApiError::not_found("system prompt"))?;
    reload(&state).await;
    state
        .audit(
            caller
                .draft("system_prompt.update", format!("system_prompt:{id}"))
                .details(changes),
        )
        .await;
    Ok(Json(full_view(&state, record).await?))
}

/// Deletes a template and its bindings.
#[utoipa::path(delete, path = "/api/v1/system-prompts/{id}", tag = "system-prompts", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = crate::error::ErrorBody)))]
pub async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let current = load(&state, &id).await?;
    let bindings = state.store.list_prompt_bindings(Some(&id)).await?.len();
    if !state.store.delete_system_prompt(&id).await? {
        return Err(ApiError::not_found("system prompt"));
    }
    reload(&state).await;
    state
        .audit(
            caller
                .draft("system_prompt.delete", format!("system_prompt:{id}"))
                .details(json!({"name": current.name, "bindings_removed": bindings})),
        )
        .await;
    Ok(StatusCode::NO_CONTENT)
}

/// A proxy or group by id, else by name: its id and name.
async fn resolve_target(
    state: &AppState,
    kind: BindingTarget,
    target: &str,
) -> ApiResult<Option<(String, String)>> {
    Ok(match kind {
        BindingTarget::Proxy => match state.store.proxy(target).await? {
            Some(p) => Some((p.id, p.spec.name)),
            None => state
                .store
                .proxy_by_name(target)
                .await?
                .map(|p| (p.id, p.spec.name)),
        },
        BindingTarget::Group => match state.store.group(target).await? {
            Some(g) => Some((g.id, g.name)),
            None => state
                .store
                .list_groups()
                .await?
                .into_iter()
                .find(|g| g.name == target)
                .map(|g| (g.id, g.name)),
        },
    })
}

/// Replaces every binding of a template. Each target, a proxy or a group by id or
/// name, must exist and appear once.
#[utoipa::path(put, path = "/api/v1/system-prompts/{id}/bindings", tag = "system-prompts", params(("id" = String, Path)), request_body = SetBindings,
    responses((status = 200, body = SystemPromptView), (status = 404, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
pub async fn set_bindings(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<SetBindings>,
) -> ApiResult<Json<SystemPromptView>> {
    let record = load(&state, &id).await?;
    if req.bindings.len() > MAX_BINDINGS {
        return Err(ApiError::unprocessable(vec![format!(
            "bindings: at most {MAX_BINDINGS}"
        )]));
    }
    let mut found = Vec::new();
    let mut bindings: Vec<PromptBinding> = Vec::with_capacity(req.bindings.len());
    for (i, b) in req.bindings.iter().enumerate() {
        if b.priority.abs() > MAX_PRIORITY {
            found.push(format!(
                "bindings[{i}].priority: between -{MAX_PRIORITY} and {MAX_PRIORITY}"
            ));
        }
        if b.target.len() > 128 {
            found.push(format!(
                "bindings[{i}].target: no such {}",
                b.target_kind.as_str()
            ));
            continue;
        }
        let Some((target_id, _)) = resolve_target(&state, b.target_kind, &b.target).await? else {
            found.push(format!(
                "bindings[{i}].target: no {} with the id or name {:?}",
                b.target_kind.as_str(),
                b.target
            ));
            continue;
        };
        if bindings
            .iter()
            .any(|x| x.target == b.target_kind && x.target_id == target_id)
        {
            found.push(format!(
                "bindings[{i}].target: {} {:?} is bound twice",
                b.target_kind.as_str(),
                b.target
            ));
            continue;
        }
        bindings.push(PromptBinding {
            template_id: id.clone(),
            target: b.target_kind,
            target_id,
            priority: b.priority,
        });
    }
    if !found.is_empty() {
        return Err(ApiError::unprocessable(found));
    }
    let stored = state.store.set_prompt_bindings(&id, &bindings).await?;
    reload(&state).await;
    let names = target_names(&state).await?;
    let details: Vec<Value> = stored
        .iter()
        .map(|b| {
            json!({"target_kind": b.target.as_str(), "target_id": b.target_id,
                   "target_name": names.get(&(b.target, b.target_id.clone())), "priority": b.priority})
        })
        .collect();
    state
        .audit(
            caller
                .draft("system_prompt.bindings", format!("system_prompt:{id}"))
                .details(json!({"name": record.name, "bindings": details})),
        )
        .await;
    Ok(Json(view(record, &stored, &names)))
}

/// Why the first of `considered` won, or why none applies.
fn reason(
    endpoint: Endpoint,
    considered: &[&Candidate],
    names: &HashMap<(BindingTarget, String), String>,
) -> String {
    if !system_prompt::takes_system_prompt(endpoint) {
        return format!(
            "the {} endpoint has no system prompt; the body is sent unchanged",
            endpoint.as_str()
        );
    }
    let Some(first) = considered.first() else {
        return "no template is bound to this proxy or to the caller's group".into();
    };
    let name = names
        .get(&(first.target, first.target_id.clone()))
        .map_or(first.target_id.as_str(), String::as_str);
    let rivals = considered.len() - 1;
    match first.target {
        BindingTarget::Group => format!(
            "bound to group {name:?} with priority {}: a group binding beats any proxy binding, and it has the highest priority among the group's ({rivals} other binding(s) considered)",
            first.priority
        ),
        BindingTarget::Proxy => format!(
            "bound to proxy {name:?} with priority {}: the caller's group has no binding, and it has the highest priority among the proxy's ({rivals} other binding(s) considered)",
            first.priority
        ),
    }
}

/// Shows what a proxy would send upstream for a request: which template wins for
/// the proxy and group, why, and the resulting body. Nothing is sent or stored.
#[utoipa::path(post, path = "/api/v1/system-prompts/dry-run", tag = "system-prompts", request_body = DryRunRequest,
    responses((status = 200, body = DryRunResult), (status = 404, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
pub async fn dry_run(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<DryRunRequest>,
) -> ApiResult<Json<DryRunResult>> {
    let mut found = Vec::new();
    let endpoint = match (req.endpoint.as_deref(), req.path.as_deref()) {
        (Some(name), _) => Endpoint::from_label(name).or_else(|| {
            found.push(format!("endpoint: {name:?} is not one of chat_completions, completions, embeddings, responses, models, messages"));
            None
        }),
        (None, Some(path)) => Endpoint::from_path(path).or_else(|| {
            found.push(format!("path: {path:?} is not a proxy endpoint"));
            None
        }),
        (None, None) => {
            found.push("endpoint or path: one is required".into());
            None
        }
    };
    let proxy = resolve_target(&state, BindingTarget::Proxy, &req.proxy).await?;
    if proxy.is_none() {
        found.push(format!(
            "proxy: no proxy with the id or name {:?}",
            req.proxy
        ));
    }
    let mut group = match &req.group {
        Some(g) => {
            let resolved = resolve_target(&state, BindingTarget::Group, g).await?;
            if resolved.is_none() {
                found.push(format!("group: no group with the id or name {g:?}"));
            }
            resolved
        }
        None => None,
    };
    if let Some(key_id) = &req.key {
        match state.store.api_key(key_id).await? {
            None => found.push(format!("key: no API key with the id {key_id:?}")),
            Some(key) => match &group {
                Some((gid, _)) if *gid != key.group_id => {
                    found.push("key: belongs to another group than `group`".into())
                }
                _ => group = resolve_target(&state, BindingTarget::Group, &key.group_id).await?,
            },
        }
    }
    let (Some(endpoint), Some((proxy_id, proxy_name))) = (endpoint, proxy) else {
        return Err(ApiError::unprocessable(found));
    };
    if !found.is_empty() {
        return Err(ApiError::unprocessable(found));
    }
    let group_id = group.as_ref().map(|(id, _)| id.as_str());
    let snapshot = state.data_plane.prompts().snapshot();
    let names = target_names(&state).await?;
    let considered: Vec<&Candidate> = match system_prompt::takes_system_prompt(endpoint) {
        true => snapshot.candidates(&proxy_id, group_id),
        false => Vec::new(),
    };
    let why = reason(endpoint, &considered, &names);
    let user = req.user.clone().or_else(|| {
        req.body
            .get("user")
            .and_then(Value::as_str)
            .map(str::to_owned)
    });
    let date = utc_date(state.clock.now());
    let facts = RequestFacts {
        proxy_id: &proxy_id,
        proxy_name: &proxy_name,
        group_id,
        user: user.as_deref(),
        date: &date,
    };
    let mut body = req.body;
    let rendered = match considered.is_empty() {
        true => None,
        false => snapshot.render(&facts, state.data_plane.prompts().organization()),
    };
    let applied = match &rendered {
        None => false,
        Some(r) => match system_prompt::inject(endpoint, &mut body, &r.text) {
            Injection::Added => true,
            Injection::NotApplicable => false,
            Injection::Malformed(why) => {
                return Err(ApiError::unprocessable(vec![format!(
                    "body: {why} (the proxy would answer 400)"
                )]))
            }
        },
    };
    let winner = considered.first();
    Ok(Json(DryRunResult {
        endpoint: endpoint.as_str(),
        applied,
        template: winner.map(|c| DryRunTemplate {
            id: c.prompt.id.clone(),
            name: c.prompt.name.clone(),
        }),
        binding: winner.map(|c| binding_view(&names, c.target, &c.target_id, c.priority)),
        reason: why,
        considered: considered
            .iter()
            .map(|c| binding_view(&names, c.target, &c.target_id, c.priority))
            .collect(),
        system_prompt: rendered.map(|r| r.text),
        body,
    }))
}
