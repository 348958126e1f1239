//! The route table: every admin route with the access it needs, in one place.
//!
//! The table feeds the router, the access check in [`crate::auth::authorize`] and
//! the `x-required-role` of each operation in the OpenAPI document.

use crate::api;
use crate::state::AppState;
use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::Router;
use portcullis_core::Role;
use std::collections::HashMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No authentication (login, health).
    Public,
    /// An authenticated caller holding at least this role.
    Role(Role),
}

impl Access {
    pub fn label(self) -> &'static str {
        match self {
            Access::Public => "public",
            Access::Role(role) => role.as_str(),
        }
    }
}

/// Declared access per (method, path template).
#[derive(Debug, Default)]
pub struct AccessTable(HashMap<(Method, &'static str), Access>);

impl AccessTable {
    pub fn get(&self, method: &Method, path: &str) -> Option<Access> {
        self.0.get(&(method.clone(), path)).copied()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&Method, &'static str, Access)> {
        self.0.iter().map(|((m, p), a)| (m, *p, *a))
    }
}

pub struct RouteSpec {
    pub method: Method,
    pub path: &'static str,
    pub access: Access,
    handler: MethodRouter<AppState>,
}

fn route<H, T>(method: Method, path: &'static str, access: Access, handler: H) -> RouteSpec
where
    H: Handler<T, AppState>,
    T: 'static,
{
    // Only standard methods appear in the table, for which the conversion holds;
    // a route that failed it would be missing and fail the role x route test.
    let filter = MethodFilter::try_from(method.clone()).unwrap_or(MethodFilter::GET);
    RouteSpec {
        method,
        path,
        access,
        handler: on(filter, handler),
    }
}

/// Every route of the admin API.
pub fn specs() -> Vec<RouteSpec> {
    use Access::{Public, Role as R};
    const RO: Role = Role::ReadOnly;
    const DEV: Role = Role::Developer;
    const ADMIN: Role = Role::Admin;
    vec![
        route(Method::GET, "/healthz", Public, api::system::healthz),
        route(Method::GET, "/readyz", Public, api::system::readyz),
        route(Method::GET, "/metrics", Public, api::system::metrics),
        route(Method::POST, "/api/v1/auth/login", Public, api::auth::login),
        route(
            Method::POST,
            "/api/v1/auth/logout",
            R(RO),
            api::auth::logout,
        ),
        route(Method::GET, "/api/v1/auth/me", R(RO), api::auth::me),
        route(
            Method::POST,
            "/api/v1/auth/change-password",
            R(RO),
            api::auth::change_password,
        ),
        route(Method::GET, "/api/v1/users", R(ADMIN), api::users::list),
        route(Method::POST, "/api/v1/users", R(ADMIN), api::users::create),
        route(
            Method::GET,
            "/api/v1/users/{id}",
            R(ADMIN),
            api::users::get_one,
        ),
        route(
            Method::PATCH,
            "/api/v1/users/{id}",
            R(ADMIN),
            api::users::update,
        ),
        route(
            Method::DELETE,
            "/api/v1/users/{id}",
            R(ADMIN),
            api::users::remove,
        ),
        route(
            Method::POST,
            "/api/v1/users/{id}/password",
            R(ADMIN),
            api::users::set_password,
        ),
        route(Method::GET, "/api/v1/groups", R(RO), api::groups::list),
        route(Method::POST, "/api/v1/groups", R(DEV), api::groups::create),
        route(
            Method::GET,
            "/api/v1/groups/{id}",
            R(RO),
            api::groups::get_one,
        ),
        route(
            Method::PATCH,
            "/api/v1/groups/{id}",
            R(DEV),
            api::groups::update,
        ),
        route(
            Method::DELETE,
            "/api/v1/groups/{id}",
            R(DEV),
            api::groups::remove,
        ),
        route(Method::GET, "/api/v1/keys", R(RO), api::keys::list),
        route(Method::POST, "/api/v1/keys", R(DEV), api::keys::create),
        route(Method::GET, "/api/v1/keys/{id}", R(RO), api::keys::get_one),
        route(
            Method::PATCH,
            "/api/v1/keys/{id}",
            R(DEV),
            api::keys::update,
        ),
        route(
            Method::POST,
            "/api/v1/keys/{id}/revoke",
            R(DEV),
            api::keys::revoke,
        ),
        route(
            Method::GET,
            "/api/v1/credentials",
            R(RO),
            api::credentials::list,
        ),
        route(
            Method::POST,
            "/api/v1/credentials",
            R(ADMIN),
            api::credentials::create,
        ),
        route(
            Method::GET,
            "/api/v1/credentials/{id}",
            R(RO),
            api::credentials::get_one,
        ),
        route(
            Method::PATCH,
            "/api/v1/credentials/{id}",
            R(ADMIN),
            api::credentials::update,
        ),
        route(
            Method::DELETE,
            "/api/v1/credentials/{id}",
            R(ADMIN),
            api::credentials::remove,
        ),
        route(Method::GET, "/api/v1/proxies", R(RO), api::proxies::list),
        route(
            Method::POST,
            "/api/v1/proxies",
            R(DEV),
            api::proxies::create,
        ),
        route(
            Method::GET,
            "/api/v1/proxies/{id}",
            R(RO),
            api::proxies::get_one,
        ),
        route(
            Method::PATCH,
            "/api/v1/proxies/{id}",
            R(DEV),
            api::proxies::update,
        ),
        route(
            Method::DELETE,
            "/api/v1/proxies/{id}",
            R(DEV),
            api::proxies::remove,
        ),
        route(
            Method::POST,
            "/api/v1/proxies/{id}/start",
            R(DEV),
            api::proxies::start,
        ),
        route(
            Method::POST,
            "/api/v1/proxies/{id}/stop",
            R(DEV),
            api::proxies::stop,
        ),
        route(
            Method::POST,
            "/api/v1/proxies/{id}/restart",
            R(DEV),
            api::proxies::restart,
        ),
        route(
            Method::PUT,
            "/api/v1/proxies/{id}/policies",
            R(DEV),
            api::proxies::set_policies,
        ),
        route(Method::GET, "/api/v1/policies", R(RO), api::policies::list),
        route(
            Method::POST,
            "/api/v1/policies",
            R(DEV),
            api::policies::create,
        ),
        route(
            Method::POST,
            "/api/v1/policies/validate",
            R(RO),
            api::policies::validate,
        ),
        route(
            Method::GET,
            "/api/v1/policies/{name}",
            R(RO),
            api::policies::get_one,
        ),
        route(
            Method::PUT,
            "/api/v1/policies/{name}",
            R(DEV),
            api::policies::update,
        ),
        route(
            Method::DELETE,
            "/api/v1/policies/{name}",
            R(DEV),
            api::policies::remove,
        ),
        route(
            Method::POST,
            "/api/v1/policies/{name}/clone",
            R(DEV),
            api::policies::clone,
        ),
        route(
            Method::POST,
            "/api/v1/policies/{name}/dry-run",
            R(RO),
            api::policies::dry_run,
        ),
        route(
            Method::GET,
            "/api/v1/system-prompts",
            R(RO),
            api::system_prompts::list,
        ),
        route(
            Method::POST,
            "/api/v1/system-prompts",
            R(DEV),
            api::system_prompts::create,
        ),
        route(
            Method::POST,
            "/api/v1/system-prompts/dry-run",
            R(RO),
            api::system_prompts::dry_run,
        ),
        route(
            Method::GET,
            "/api/v1/system-prompts/{id}",
            R(RO),
            api::system_prompts::get_one,
        ),
        route(
            Method::PATCH,
            "/api/v1/system-prompts/{id}",
            R(DEV),
            api::system_prompts::update,
        ),
        route(
            Method::DELETE,
            "/api/v1/system-prompts/{id}",
            R(DEV),
            api::system_prompts::remove,
        ),
        route(
            Method::PUT,
            "/api/v1/system-prompts/{id}/bindings",
            R(DEV),
            api::system_prompts::set_bindings,
        ),
        route(Method::GET, "/api/v1/events", R(RO), api::events::list),
        route(Method::GET, "/api/v1/alerts", R(RO), api::alerts::list),
        route(
            Method::GET,
            "/api/v1/alerts/{id}",
            R(RO),
            api::alerts::get_one,
        ),
        route(
            Method::PATCH,
            "/api/v1/alerts/{id}",
            R(DEV),
            api::alerts::update,
        ),
        route(
            Method::GET,
            "/api/v1/a2a/agents",
            R(RO),
            api::a2a_agents::list,
        ),
        route(
            Method::POST,
            "/api/v1/a2a/agents",
            R(DEV),
            api::a2a_agents::create,
        ),
        route(
            Method::GET,
            "/api/v1/a2a/agents/{id}",
            R(RO),
            api::a2a_agents::get_one,
        ),
        route(
            Method::DELETE,
            "/api/v1/a2a/agents/{id}",
            R(DEV),
            api::a2a_agents::delete,
        ),
        route(
            Method::PATCH,
            "/api/v1/a2a/agents/{id}",
            R(DEV),
            api::a2a_agents::update,
        ),
        route(
            Method::GET,
            "/api/v1/a2a/tasks",
            R(RO),
            api::a2a_agents::tasks,
        ),
        route(
            Method::POST,
            "/api/v1/a2a/agents/{id}/refresh",
            R(DEV),
            api::a2a_agents::refresh,
        ),
        route(
            Method::POST,
            "/api/v1/a2a/agents/{id}/approve",
            R(DEV),
            api::a2a_agents::approve,
        ),
        route(
            Method::POST,
            "/api/v1/a2a/agents/{id}/disable",
            R(DEV),
            api::a2a_agents::disable,
        ),
        route(
            Method::GET,
            "/api/v1/mcp/tools",
            R(RO),
            api::mcp_tools::list,
        ),
        route(
            Method::GET,
            "/api/v1/mcp/tools/{id}",
            R(RO),
            api::mcp_tools::get_one,
        ),
        route(
            Method::POST,
            "/api/v1/mcp/tools/{id}/approve",
            R(DEV),
            api::mcp_tools::approve,
        ),
        route(
            Method::POST,
            "/api/v1/mcp/tools/{id}/disable",
            R(DEV),
            api::mcp_tools::disable,
        ),
        route(
            Method::GET,
            "/api/v1/mcp/scans",
            R(RO),
            api::mcp_scans::list,
        ),
        route(
            Method::POST,
            "/api/v1/mcp/scans",
            R(DEV),
            api::mcp_scans::create,
        ),
        route(
            Method::GET,
            "/api/v1/mcp/scans/{id}",
            R(RO),
            api::mcp_scans::get_one,
        ),
        route(Method::GET, "/api/v1/pricing", R(RO), api::pricing::list),
        route(
            Method::GET,
            "/api/v1/pricing/{model}",
            R(RO),
            api::pricing::get_one,
        ),
        route(
            Method::PUT,
            "/api/v1/pricing/{model}",
            R(ADMIN),
            api::pricing::put,
        ),
        route(
            Method::DELETE,
            "/api/v1/pricing/{model}",
            R(ADMIN),
            api::pricing::remove,
        ),
        route(Method::GET, "/api/v1/budgets", R(RO), api::budgets::list),
        route(
            Method::POST,
            "/api/v1/budgets",
            R(ADMIN),
            api::budgets::create,
        ),
        route(
            Method::GET,
            "/api/v1/budgets/{id}",
            R(RO),
            api::budgets::get_one,
        ),
        route(
            Method::PATCH,
            "/api/v1/budgets/{id}",
            R(ADMIN),
            api::budgets::update,
        ),
        route(
            Method::DELETE,
            "/api/v1/budgets/{id}",
            R(ADMIN),
            api::budgets::remove,
        ),
        route(
            Method::POST,
            "/api/v1/budgets/{id}/reset",
            R(ADMIN),
            api::budgets::reset,
        ),
        route(
            Method::GET,
            "/api/v1/budgets/{id}/history",
            R(RO),
            api::budgets::history,
        ),
        route(Method::GET, "/api/v1/usage", R(RO), api::usage::report),
        route(Method::GET, "/api/v1/stats", R(RO), api::stats::dashboard),
        route(
            Method::GET,
            "/api/v1/stats/proxies",
            R(RO),
            api::stats::proxies,
        ),
        route(Method::POST, "/api/v1/ws/ticket", R(RO), api::live::ticket),
        // The ticket is the credential: browsers cannot send a bearer header here.
        route(Method::GET, "/api/v1/ws", Public, api::live::socket),
        route(
            Method::POST,
            "/api/v1/config/reload",
            R(ADMIN),
            api::config::reload,
        ),
        route(Method::GET, "/api/v1/audit", R(RO), api::audit::list),
        route(
            Method::GET,
            "/api/v1/audit/verify",
            R(RO),
            api::audit::verify,
        ),
        route(
            Method::GET,
            "/api/v1/openapi.json",
            Public,
            api::system::openapi,
        ),
    ]
}

pub fn access_table(specs: &[RouteSpec]) -> AccessTable {
    AccessTable(
        specs
            .iter()
            .map(|s| ((s.method.clone(), s.path), s.access))
            .collect(),
    )
}

pub fn router(specs: Vec<RouteSpec>) -> Router<AppState> {
    specs.into_iter().fold(Router::new(), |router, spec| {
        router.route(spec.path, spec.handler)
    })
}
