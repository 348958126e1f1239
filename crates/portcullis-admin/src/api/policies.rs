//! Rule packs: the built-in ones (read-only) and user packs kept in the store;
//! validation, dry runs, and which proxies use them.

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::extract::ApiJson;
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use jiff::Timestamp;
use portcullis_policy::{Finding, Location, Pack, Verdict};
use portcullis_proxy::manager::builtin_pack;
use portcullis_proxy::PolicyLookupError;
use portcullis_store::{NewPolicy, PolicyRecord};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Longest text a dry run scans.
pub const MAX_DRY_RUN_BYTES: usize = 256 * 1024;
/// Most rules in one user pack.
pub const MAX_RULES: usize = 1000;
/// Most policies on one proxy.
pub const MAX_PROXY_POLICIES: usize = 32;
/// Names that are routes under `/api/v1/policies/`.
const RESERVED: [&str; 1] = ["validate"];

const READ_ONLY: &str = "built-in packs are read-only; clone it (POST /api/v1/policies/{name}/clone) and change the copy";

#[derive(Serialize, utoipa::ToSchema)]
pub struct PolicySummary {
    pub name: String,
    pub description: String,
    pub rule_count: usize,
    /// Shipped in the binary, read-only.
    pub builtin: bool,
    /// None for built-in packs.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub created_at: Option<Timestamp>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub updated_at: Option<Timestamp>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct PolicyView {
    #[serde(flatten)]
    pub summary: PolicySummary,
    /// The whole pack in the documented JSON format.
    #[schema(value_type = Object)]
    pub pack: Value,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Validation {
    pub valid: bool,
    /// Each naming the rule id and field.
    pub problems: Vec<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CloneRequest {
    /// Name of the new user pack.
    pub name: String,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
// Named apart from the system prompts' dry run: the document keeps one schema per name.
#[schema(as = PolicyDryRunRequest)]
pub struct DryRunRequest {
    /// Scanned, never stored or logged; at most 256 KiB.
    pub text: String,
    /// request (default), response, tool_call, tool_result, tool_description, agent_message.
    #[serde(default = "request_location")]
    #[schema(value_type = String)]
    pub location: Location,
}

/// Where a finding matched in the dry-run text, in Unicode scalar values
/// (characters, not bytes or UTF-16 units): `start` inclusive, `end` exclusive.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TextSpan {
    pub start: usize,
    pub end: usize,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = PolicyDryRunFinding)]
pub struct DryRunFinding {
    pub rule: String,
    pub category: String,
    /// info, low, medium, high or critical.
    #[schema(value_type = String)]
    pub severity: portcullis_policy::Severity,
    /// block, redact, alert or log.
    #[schema(value_type = String)]
    pub action: portcullis_policy::Action,
    /// A classifier's score (0-100); absent for pattern rules.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<u8>,
    /// Where the rule matched in the text, for the console to highlight. Only the
    /// dry run (the caller's own text) carries positions; events never do. Empty
    /// for classifiers and for rules matched on the folded, case-insensitive view.
    pub spans: Vec<TextSpan>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = PolicyDryRunResult)]
pub struct DryRunResult {
    pub policy: String,
    #[schema(value_type = String)]
    pub location: Location,
    pub blocked: bool,
    /// Risk 0 (nothing found) to 100.
    pub score: u8,
    pub findings: Vec<DryRunFinding>,
}

fn request_location() -> Location {
    Location::Request
}

/// A pack as loaded: its origin and content.
struct Loaded {
    pack: Pack,
    record: Option<PolicyRecord>,
}

impl Loaded {
    fn summary(&self) -> PolicySummary {
        PolicySummary {
            name: self.pack.name.clone(),
            description: self.pack.description.clone(),
            rule_count: self.pack.rules.len(),
            builtin: self.record.is_none(),
            created_at: self.record.as_ref().map(|r| r.created_at),
            updated_at: self.record.as_ref().map(|r| r.updated_at),
        }
    }

    fn view(self) -> ApiResult<PolicyView> {
        Ok(PolicyView {
            summary: self.summary(),
            pack: serde_json::to_value(&self.pack).map_err(|_| ApiError::internal())?,
        })
    }
}

/// A built-in pack or a user pack by name; 404 when neither.
async fn load(state: &AppState, name: &str) -> ApiResult<Loaded> {
    let unusable = |e: portcullis_policy::pack::PackError| {
        tracing::error!(policy = %name, error = %e, "policy unusable");
        ApiError::internal()
    };
    if let Some(parsed) = builtin_pack(name) {
        return Ok(Loaded {
            pack: parsed.map_err(unusable)?,
            record: None,
        });
    }
    let record = state
        .store
        .policy(name)
        .await?
        .ok_or_else(|| ApiError::not_found("policy"))?;
    Ok(Loaded {
        pack: Pack::from_json(name, &record.pack).map_err(unusable)?,
        record: Some(record),
    })
}

fn is_builtin(name: &str) -> bool {
    portcullis_policy::builtin::names().any(|n| n == name)
}

/// User pack names appear in URLs: 1-64 letters, digits, `-` and `_`.
fn name_problem(name: &str) -> Option<String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !ok {
        return Some(
            "name: 1-64 characters of letters, digits, - and _ (it appears in URLs)".into(),
        );
    }
    RESERVED
        .contains(&name)
        .then(|| format!("name: {name:?} is reserved"))
}

/// CPU-bound work (regex compilation) off the async workers.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> ApiResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| ApiError::internal())
}

/// Parses, validates and compiles a pack body: the pack, or every problem.
fn check_pack(body: &Value) -> Result<Pack, Vec<String>> {
    let pack = Pack::from_json("pack", &body.to_string()).map_err(|e| e.problems)?;
    let mut problems: Vec<String> = name_problem(&pack.name).into_iter().collect();
    if pack.rules.len() > MAX_RULES {
        problems.push(format!("rules: at most {MAX_RULES} rules in one pack"));
    }
    if problems.is_empty() {
        if let Err(e) = portcullis_proxy::engines::check(std::slice::from_ref(&pack)) {
            problems.push(e.to_string());
        }
    }
    if problems.is_empty() {
        Ok(pack)
    } else {
        Err(problems)
    }
}

async fn checked_pack(body: Value) -> ApiResult<Pack> {
    blocking(move || check_pack(&body))
        .await?
        .map_err(ApiError::unprocessable)
}

fn record_of(pack: &Pack) -> ApiResult<NewPolicy> {
    Ok(NewPolicy {
        name: pack.name.clone(),
        description: pack.description.clone(),
        rule_count: u32::try_from(pack.rules.len()).unwrap_or(u32::MAX),
        pack: serde_json::to_string(pack).map_err(|_| ApiError::internal())?,
    })
}

/// Names of the proxies (running or not) whose policies include `name`.
/// Proxies, and A2A agents (as `a2a:<name>`), whose policies name the pack.
async fn proxies_using(state: &AppState, name: &str) -> ApiResult<Vec<String>> {
    let mut using: Vec<String> = state
        .store
        .list_proxies()
        .await?
        .into_iter()
        .filter(|p| p.spec.policies.iter().any(|n| n == name))
        .map(|p| p.spec.name)
        .collect();
    using.extend(
        state
            .store
            .list_a2a_agents()
            .await?
            .into_iter()
            .filter(|a| a.settings.policies.iter().flatten().any(|n| n == name))
            .map(|a| format!("a2a:{}", a.name)),
    );
    Ok(using)
}

/// Resolves a proxy's policy names and compiles them together: the packs, or
/// every problem (unknown names, rules clashing across packs).
pub(crate) async fn resolve_for_proxy(
    state: &AppState,
    names: &[String],
) -> ApiResult<Result<Vec<Pack>, Vec<String>>> {
    let mut problems = Vec::new();
    if names.len() > MAX_PROXY_POLICIES {
        problems.push(format!("policies: at most {MAX_PROXY_POLICIES} per proxy"));
    }
    let mut packs = Vec::new();
    for (i, name) in names.iter().enumerate() {
        if name.len() > 64 {
            problems.push(format!("policies[{i}]: names are at most 64 characters"));
            continue;
        }
        if names[..i].contains(name) {
            problems.push(format!("policies: {name:?} is listed twice"));
            continue;
        }
        match portcullis_proxy::resolve_policies(state.store.as_ref(), std::slice::from_ref(name))
            .await
        {
            Ok(mut found) => packs.append(&mut found),
            Err(PolicyLookupError::Store(e)) => return Err(e.into()),
            Err(e) => problems.push(format!("policies: {e}")),
        }
    }
    if !problems.is_empty() {
        return Ok(Err(problems));
    }
    blocking(move || match portcullis_proxy::engines::check(&packs) {
        Ok(()) => Ok(packs),
        Err(e) => Err(vec![format!("policies: {e}")]),
    })
    .await
}

/// Every pack: built-in first, then user packs by name.
#[utoipa::path(get, path = "/api/v1/policies", tag = "policies", responses((status = 200, body = [PolicySummary])))]
pub async fn list(State(state): State<AppState>) -> ApiResult<Json<Vec<PolicySummary>>> {
    let mut out = Vec::new();
    for name in portcullis_policy::builtin::names() {
        out.push(load(&state, name).await?.summary());
    }
    for record in state.store.list_policies().await? {
        out.push(PolicySummary {
            name: record.name,
            description: record.description,
            rule_count: record.rule_count as usize,
            builtin: false,
            created_at: Some(record.created_at),
            updated_at: Some(record.updated_at),
        });
    }
    Ok(Json(out))
}

/// One pack, whole, with its metadata.
#[utoipa::path(get, path = "/api/v1/policies/{name}", tag = "policies", params(("name" = String, Path)),
    responses((status = 200, body = PolicyView), (status = 404, body = crate::error::ErrorBody)))]
pub async fn get_one(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<PolicyView>> {
    Ok(Json(load(&state, &name).await?.view()?))
}

/// Stores a user pack (the documented JSON format). 422 lists every problem.
#[utoipa::path(post, path = "/api/v1/policies", tag = "policies", request_body = Object,
    responses((status = 201, body = PolicyView), (status = 409, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<(StatusCode, Json<PolicyView>)> {
    let pack = checked_pack(body).await?;
    if is_builtin(&pack.name) {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            format!(
                "a built-in pack is named {:?}; choose another name",
                pack.name
            ),
        ));
    }
    let record = state
        .store
        .create_policy(record_of(&pack)?, state.clock.now())
        .await?;
    state
        .audit(
            caller
                .draft("policy.create", format!("policy:{}", pack.name))
                .details(json!({"rules": pack.rules.len()})),
        )
        .await;
    let view = Loaded {
        pack,
        record: Some(record),
    }
    .view()?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// Replaces a user pack; running proxies that use it restart with the new rules.
#[utoipa::path(put, path = "/api/v1/policies/{name}", tag = "policies", params(("name" = String, Path)), request_body = Object,
    responses((status = 200, body = PolicyView), (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<PolicyView>> {
    if is_builtin(&name) {
        return Err(ApiError::new(ErrorCode::Conflict, READ_ONLY));
    }
    if state.store.policy(&name).await?.is_none() {
        return Err(ApiError::not_found("policy"));
    }
    let pack = checked_pack(body).await?;
    if pack.name != name {
        return Err(ApiError::unprocessable(vec![format!(
            "name: must be {name:?} as in the URL (clone a pack to copy it under another name)"
        )]));
    }
    check_still_compiles(&state, &pack).await?;
    let record = state
        .store
        .update_policy(record_of(&pack)?, state.clock.now())
        .await?
        .ok_or_else(|| ApiError::not_found("policy"))?;
    let restarted = state.data_plane.restart_using(&name).await;
    state
        .audit(
            caller
                .draft("policy.update", format!("policy:{name}"))
                .details(json!({"rules": pack.rules.len(), "restarted": restarted})),
        )
        .await;
    Loaded {
        pack,
        record: Some(record),
    }
    .view()
    .map(Json)
}

/// The changed pack must still compile beside the other packs of every proxy
/// using it, or those proxies would fail to start.
async fn check_still_compiles(state: &AppState, pack: &Pack) -> ApiResult<()> {
    let mut problems = Vec::new();
    for proxy in state.store.list_proxies().await? {
        let names = &proxy.spec.policies;
        if !names.contains(&pack.name) {
            continue;
        }
        let others: Vec<String> = names.iter().filter(|n| **n != pack.name).cloned().collect();
        let mut packs =
            match portcullis_proxy::resolve_policies(state.store.as_ref(), &others).await {
                Ok(packs) => packs,
                Err(PolicyLookupError::Store(e)) => return Err(e.into()),
                // Already broken for another reason; this change does not make it worse.
                Err(_) => continue,
            };
        packs.push(pack.clone());
        if let Err(e) = blocking(move || portcullis_proxy::engines::check(&packs)).await? {
            problems.push(format!("proxy {}: {e}", proxy.spec.name));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ApiError::unprocessable(problems))
    }
}

/// Deletes a user pack no proxy uses.
#[utoipa::path(delete, path = "/api/v1/policies/{name}", tag = "policies", params(("name" = String, Path)),
    responses((status = 204), (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody)))]
pub async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    if is_builtin(&name) {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            "built-in packs are read-only and cannot be deleted",
        ));
    }
    let using = proxies_using(&state, &name).await?;
    if !using.is_empty() {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            format!(
                "policy {name:?} is assigned to proxies {}; remove it from them first",
                using.join(", ")
            ),
        ));
    }
    if !state.store.delete_policy(&name).await? {
        return Err(ApiError::not_found("policy"));
    }
    state
        .audit(caller.draft("policy.delete", format!("policy:{name}")))
        .await;
    Ok(StatusCode::NO_CONTENT)
}

/// Copies a built-in or user pack into a new user pack.
#[utoipa::path(post, path = "/api/v1/policies/{name}/clone", tag = "policies", params(("name" = String, Path)), request_body = CloneRequest,
    responses((status = 201, body = PolicyView), (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
pub async fn clone(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    ApiJson(req): ApiJson<CloneRequest>,
) -> ApiResult<(StatusCode, Json<PolicyView>)> {
    if let Some(problem) = name_problem(&req.name) {
        return Err(ApiError::unprocessable(vec![problem]));
    }
    let mut pack = load(&state, &name).await?.pack;
    if is_builtin(&req.name) {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            format!(
                "a built-in pack is named {:?}; choose another name",
                req.name
            ),
        ));
    }
    pack.name = req.name;
    let record = state
        .store
        .create_policy(record_of(&pack)?, state.clock.now())
        .await?;
    state
        .audit(
            caller
                .draft("policy.clone", format!("policy:{}", pack.name))
                .details(json!({"from": name})),
        )
        .await;
    let view = Loaded {
        pack,
        record: Some(record),
    }
    .view()?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// Checks a pack without storing it.
#[utoipa::path(post, path = "/api/v1/policies/validate", tag = "policies", request_body = Object,
    responses((status = 200, body = Validation)))]
pub async fn validate(ApiJson(body): ApiJson<Value>) -> ApiResult<Json<Validation>> {
    let problems = blocking(move || check_pack(&body).err().unwrap_or_default()).await?;
    Ok(Json(Validation {
        valid: problems.is_empty(),
        problems,
    }))
}

/// Scans a text with one pack and returns the verdict, with where each rule
/// matched; the text is neither stored nor logged.
#[utoipa::path(post, path = "/api/v1/policies/{name}/dry-run", tag = "policies", params(("name" = String, Path)), request_body = DryRunRequest,
    responses((status = 200, body = DryRunResult), (status = 404, body = crate::error::ErrorBody), (status = 413, body = crate::error::ErrorBody)))]
pub async fn dry_run(
    State(state): State<AppState>,
    Path(name): Path<String>,
    ApiJson(req): ApiJson<DryRunRequest>,
) -> ApiResult<Json<DryRunResult>> {
    if req.text.len() > MAX_DRY_RUN_BYTES {
        return Err(ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("text: at most {MAX_DRY_RUN_BYTES} bytes"),
        ));
    }
    let pack = load(&state, &name).await?.pack;
    let location = req.location;
    let (verdict, findings) = blocking(move || {
        // The engine a proxy with this one pack already holds, if any.
        portcullis_proxy::engines::shared(std::slice::from_ref(&pack)).map(|engine| {
            let assessment = engine.assess(location, &req.text);
            let findings = with_char_spans(&req.text, &assessment.findings);
            (Verdict::from(&assessment), findings)
        })
    })
    .await?
    .map_err(|e| {
        tracing::error!(policy = %name, error = %e, "stored policy does not compile");
        ApiError::internal()
    })?;
    Ok(Json(DryRunResult {
        policy: name,
        location,
        blocked: verdict.blocked,
        score: verdict.score,
        findings,
    }))
}

/// The findings with their byte spans turned into character offsets.
fn with_char_spans(text: &str, findings: &[Finding]) -> Vec<DryRunFinding> {
    let chars = CharOffsets::new(
        text,
        findings
            .iter()
            .flat_map(|f| f.spans.iter().flat_map(|&(s, e)| [s, e])),
    );
    findings
        .iter()
        .map(|f| DryRunFinding {
            rule: f.rule_id.to_string(),
            category: f.category.to_string(),
            severity: f.severity,
            action: f.action,
            score: f.score,
            spans: f
                .spans
                .iter()
                .map(|&(start, end)| TextSpan {
                    start: chars.of(start),
                    end: chars.of(end),
                })
                .collect(),
        })
        .collect()
}

/// Character offsets of a few byte offsets in one text, found in one pass.
struct CharOffsets {
    /// (byte offset, character offset), sorted by byte offset.
    known: Vec<(usize, usize)>,
}

impl CharOffsets {
    fn new(text: &str, bytes: impl Iterator<Item = usize>) -> Self {
        let mut wanted: Vec<usize> = bytes.collect();
        wanted.sort_unstable();
        wanted.dedup();
        let mut known = Vec::with_capacity(wanted.len());
        let mut pending = wanted.into_iter().peekable();
        let boundaries = text
            .char_indices()
            .map(|(i, _)| i)
            .chain(std::iter::once(text.len()));
        for (chars, byte) in boundaries.enumerate() {
            // An offset inside a character (never from the engine) counts as the next one.
            while let Some(w) = pending.next_if(|&w| w <= byte) {
                known.push((w, chars));
            }
        }
        let end = text.chars().count();
        known.extend(pending.map(|w| (w, end)));
        Self { known }
    }

    fn of(&self, byte: usize) -> usize {
        match self.known.binary_search_by_key(&byte, |&(b, _)| b) {
            Ok(i) => self.known.get(i).map_or(0, |&(_, c)| c),
            Err(_) => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::CharOffsets;

    #[test]
    fn byte_offsets_become_character_offsets() {
        // "é" is 2 bytes, "🙂" 4 bytes (2 UTF-16 units, 1 character).
        let text = "é🙂 ab";
        let chars = CharOffsets::new(text, [0, 2, 6, 7, 9, 9, 40].into_iter());
        assert_eq!(chars.of(0), 0);
        assert_eq!(chars.of(2), 1);
        assert_eq!(chars.of(6), 2);
        assert_eq!(chars.of(7), 3);
        assert_eq!(chars.of(9), 5, "the end of the text");
        assert_eq!(chars.of(40), 5, "past the end counts as the end");
        assert_eq!(CharOffsets::new("", [0].into_iter()).of(0), 0);
    }
}
