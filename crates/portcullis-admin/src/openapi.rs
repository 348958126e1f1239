//! The OpenAPI document, generated from the handlers' annotations; each operation
//! carries the role its route declares (`x-required-role`).

use crate::api;
use crate::routes::{Access, AccessTable};
use serde_json::{json, Value};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).description(Some("A token from /api/v1/auth/login, or an API key with the admin or admin_read scope")).build()),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Portcullis admin API", description = "Control plane of the Portcullis AI security gateway."),
    paths(
        api::system::healthz, api::system::readyz, api::system::metrics,
        api::auth::login, api::auth::logout, api::auth::me, api::auth::change_password,
        api::users::list, api::users::create, api::users::get_one, api::users::update, api::users::remove, api::users::set_password,
        api::groups::list, api::groups::create, api::groups::get_one, api::groups::update, api::groups::remove,
        api::keys::list, api::keys::create, api::keys::get_one, api::keys::update, api::keys::revoke,
        api::credentials::list, api::credentials::create, api::credentials::get_one, api::credentials::update, api::credentials::remove,
        api::proxies::list, api::proxies::create, api::proxies::get_one, api::proxies::update, api::proxies::remove,
        api::proxies::start, api::proxies::stop, api::proxies::restart, api::proxies::set_policies,
        api::policies::list, api::policies::create, api::policies::validate, api::policies::get_one,
        api::policies::update, api::policies::remove, api::policies::clone, api::policies::dry_run,
        api::system_prompts::list, api::system_prompts::create, api::system_prompts::dry_run, api::system_prompts::get_one,
        api::system_prompts::update, api::system_prompts::remove, api::system_prompts::set_bindings,
        api::events::list,
        api::alerts::list, api::alerts::get_one, api::alerts::update,
        api::a2a_agents::list, api::a2a_agents::create, api::a2a_agents::get_one, api::a2a_agents::delete,
        api::a2a_agents::update, api::a2a_agents::tasks, api::a2a_agents::refresh, api::a2a_agents::approve, api::a2a_agents::disable,
        api::mcp_tools::list, api::mcp_tools::get_one, api::mcp_tools::approve, api::mcp_tools::disable,
        api::mcp_scans::create, api::mcp_scans::list, api::mcp_scans::get_one,
        api::pricing::list, api::pricing::get_one, api::pricing::put, api::pricing::remove,
        api::budgets::list, api::budgets::create, api::budgets::get_one, api::budgets::update,
        api::budgets::remove, api::budgets::reset, api::budgets::history,
        api::usage::report, api::stats::dashboard, api::stats::proxies,
        api::live::ticket, api::live::socket,
        api::config::reload,
        api::audit::list, api::audit::verify,
    ),
    components(schemas(crate::error::ErrorBody, crate::error::ErrorCode)),
    modifiers(&BearerAuth),
    tags(
        (name = "system", description = "Health, readiness, metrics"),
        (name = "auth", description = "Sessions and passwords"),
        (name = "users", description = "Admin users and roles"),
        (name = "groups", description = "Teams that own API keys"),
        (name = "keys", description = "Virtual API keys"),
        (name = "credentials", description = "Provider credentials, encrypted at rest"),
        (name = "proxies", description = "Proxy instances: definition, start, stop, status"),
        (name = "policies", description = "Rule packs: built-in and user packs, validation, dry runs"),
        (name = "system-prompts", description = "Governed system prompt templates, their bindings to proxies and groups, dry runs"),
        (name = "events", description = "Proxied exchanges"),
        (name = "alerts", description = "Alerts raised from policy findings, and their review"),
        (name = "a2a", description = "A2A agent registry: register by URL or card, refresh, approve, disable; access by group and skill, rate limit, upstream credential; tasks seen"),
        (name = "mcp", description = "MCP tool inventory: tools seen by MCP proxies, approve and disable; scans of MCP proxies' servers and their stored findings"),
        (name = "pricing", description = "Model prices: built-in table and overrides"),
        (name = "budgets", description = "Monthly spend budgets on groups and keys"),
        (name = "usage", description = "Spend and tokens by group, key, model, proxy and time"),
        (name = "live", description = "The console's live feed: a WebSocket of events, alerts and proxy status changes"),
        (name = "config", description = "Configuration file reload"),
        (name = "audit", description = "Tamper-evident audit log"),
    )
)]
struct ApiDoc;

/// The document with each operation's declared access; operations without one are
/// left unmarked (and fail the role test).
pub fn document(access: &AccessTable) -> Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or(Value::Null);
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        for (path, item) in paths.iter_mut() {
            let Some(ops) = item.as_object_mut() else {
                continue;
            };
            for (method, op) in ops.iter_mut() {
                let Ok(method) = method.to_ascii_uppercase().parse::<axum::http::Method>() else {
                    continue;
                };
                let (Some(op), Some(rule)) = (op.as_object_mut(), access.get(&method, path)) else {
                    continue;
                };
                // utoipa names operations after their handler (`list`, `create`):
                // prefixed with the tag, they are unique as OpenAPI requires.
                let tag = op
                    .get("tags")
                    .and_then(|t| t.get(0))
                    .and_then(Value::as_str)
                    .map(|t| t.replace('-', "_"));
                if let (Some(tag), Some(Value::String(id))) = (tag, op.get_mut("operationId")) {
                    *id = format!("{tag}_{id}");
                }
                if let Some(params) = op.get_mut("parameters").and_then(Value::as_array_mut) {
                    query_params_in_query(path, params);
                }
                op.insert("x-required-role".into(), json!(rule.label()));
                let security = match rule {
                    Access::Public => json!([]),
                    Access::Role(_) => json!([{"bearer": []}]),
                };
                op.insert("security".into(), security);
            }
        }
    }
    doc
}

/// `#[derive(IntoParams)]` structs are documented `in: path` unless told otherwise;
/// a parameter the path template does not name is a query parameter, required only
/// when its type cannot be null.
fn query_params_in_query(path: &str, params: &mut [Value]) {
    for param in params {
        let Some(name) = param.get("name").and_then(Value::as_str) else {
            continue;
        };
        if param.get("in").and_then(Value::as_str) != Some("path")
            || path.contains(&format!("{{{name}}}"))
        {
            continue;
        }
        let nullable = param["schema"]["type"]
            .as_array()
            .is_some_and(|types| types.iter().any(|t| t == "null"));
        param["in"] = json!("query");
        param["required"] = json!(!nullable);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_not_in_the_path_template_are_query_parameters() {
        let mut params = vec![
            json!({"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}),
            json!({"name": "limit", "in": "path", "required": true, "schema": {"type": ["integer", "null"]}}),
            json!({"name": "ticket", "in": "path", "required": true, "schema": {"type": "string"}}),
        ];
        query_params_in_query("/api/v1/things/{id}", &mut params);
        assert_eq!(params[0]["in"], "path");
        assert_eq!(
            (&params[1]["in"], &params[1]["required"]),
            (&json!("query"), &json!(false))
        );
        assert_eq!(
            (&params[2]["in"], &params[2]["required"]),
            (&json!("query"), &json!(true))
        );
    }
}
