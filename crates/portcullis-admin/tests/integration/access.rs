//! Every route in the OpenAPI document, with every kind of caller.

use crate::support::*;
use axum::http::{Method, StatusCode};
use portcullis_core::model::KeyScope;
use portcullis_core::{Clock, Role, SystemClock};
use serde_json::json;

#[derive(Debug, Clone, Copy)]
enum Who {
    Nobody,
    User(Role),
    Key(Option<Role>),
}

async fn key_with(h: &Harness, group_id: &str, scopes: Vec<KeyScope>) -> String {
    stored_key(h, group_id, scopes).await.0
}

#[tokio::test]
async fn every_documented_route_enforces_its_declared_role() {
    let h = Harness::new().await;
    let mut user_ids = Vec::new();
    for role in Role::ALL {
        user_ids.push((role, h.user(&format!("user-{role}"), role).await.0));
    }
    let group = h
        .state
        .store
        .create_group("keys", "", SystemClock.now())
        .await
        .unwrap();
    let admin_key = key_with(&h, &group.id, vec![KeyScope::Admin]).await;
    let read_key = key_with(&h, &group.id, vec![KeyScope::AdminRead]).await;
    let llm_key = key_with(&h, &group.id, vec![KeyScope::Llm]).await;

    let doc = h
        .call(Method::GET, "/api/v1/openapi.json", None, None)
        .await
        .body;
    let paths = doc["paths"].as_object().expect("paths");
    let mut documented = Vec::new();
    let mut undeclared = Vec::new();
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            match op.get("x-required-role").and_then(|r| r.as_str()) {
                Some(role) => {
                    documented.push((method.to_uppercase(), path.clone(), role.to_owned()))
                }
                None => undeclared.push(format!("{} {path}", method.to_uppercase())),
            }
        }
    }
    assert!(
        undeclared.is_empty(),
        "routes in the OpenAPI document without a declared role: {undeclared:?}"
    );
    assert!(
        documented.len() >= 41,
        "only {} operations documented",
        documented.len()
    );

    // The route table and the document list the same operations.
    let mut table: Vec<String> = h
        .state
        .access
        .iter()
        .map(|(m, p, _)| format!("{m} {p}"))
        .filter(|r| r != "GET /api/v1/openapi.json")
        .collect();
    let mut doc_ops: Vec<String> = documented
        .iter()
        .map(|(m, p, _)| format!("{m} {p}"))
        .collect();
    table.sort();
    doc_ops.sort();
    assert_eq!(table, doc_ops, "route table and OpenAPI document disagree");

    let callers = [
        Who::Nobody,
        Who::User(Role::ReadOnly),
        Who::User(Role::Developer),
        Who::User(Role::Admin),
        Who::Key(Some(Role::Admin)),
        Who::Key(Some(Role::ReadOnly)),
        Who::Key(None),
    ];
    let mut checked = 0;
    for (method, path, required) in &documented {
        // Ids that exist nowhere, so no call changes state.
        let concrete = path
            .replace("{id}", "00000000-0000-0000-0000-000000000000")
            .replace("{name}", "no-such-policy");
        let method: Method = method.parse().unwrap();
        let body = matches!(method, Method::POST | Method::PATCH).then(|| json!({}));
        for who in callers {
            let token = match who {
                Who::Nobody => None,
                // A fresh session per call: logout must not spoil later calls.
                Who::User(role) => Some(
                    h.session(&user_ids.iter().find(|(r, _)| *r == role).unwrap().1)
                        .await,
                ),
                Who::Key(Some(Role::Admin)) => Some(admin_key.clone()),
                Who::Key(Some(_)) => Some(read_key.clone()),
                Who::Key(None) => Some(llm_key.clone()),
            };
            let reply = h
                .call(method.clone(), &concrete, token.as_deref(), body.clone())
                .await;
            let held = match who {
                Who::Nobody => None,
                Who::User(role) | Who::Key(Some(role)) => Some(role),
                Who::Key(None) => None,
            };
            let expected_denial = match (required.as_str(), who, held) {
                ("public", _, _) => None,
                (_, Who::Nobody, _) => Some(StatusCode::UNAUTHORIZED),
                (_, _, None) => Some(StatusCode::FORBIDDEN),
                (req, _, Some(role)) => {
                    let req: Role = req.parse().unwrap();
                    (!role.allows(req)).then_some(StatusCode::FORBIDDEN)
                }
            };
            match expected_denial {
                Some(status) => {
                    assert_eq!(
                        reply.status, status,
                        "{method} {path} as {who:?}: {}",
                        reply.text
                    );
                    error_code(&reply);
                }
                None => assert!(
                    reply.status != StatusCode::UNAUTHORIZED
                        && reply.status != StatusCode::FORBIDDEN
                        && reply.status.as_u16() < 500,
                    "{method} {path} as {who:?} should pass the access check, got {}: {}",
                    reply.status,
                    reply.text
                ),
            }
            checked += 1;
        }
    }
    assert_eq!(checked, documented.len() * callers.len());
}

#[tokio::test]
async fn unauthenticated_replies_carry_www_authenticate() {
    let h = Harness::new().await;
    let reply = h.call(Method::GET, "/api/v1/groups", None, None).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert!(reply.headers.get("www-authenticate").is_some());
    let reply = h
        .call(
            Method::GET,
            "/api/v1/groups",
            Some("eyJhbGciOiJIUzI1NiJ9.e30.forged"),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
}

/// The declared access of every route, pinned: loosening one fails here and shows
/// up in review.
#[tokio::test]
async fn declared_access_is_as_reviewed() {
    let h = Harness::new().await;
    let mut table: Vec<String> = h
        .state
        .access
        .iter()
        .map(|(m, p, a)| format!("{:<6} {p} {}", m.as_str(), a.label()))
        .collect();
    table.sort();
    let expected = "\
DELETE /api/v1/a2a/agents/{id} developer
DELETE /api/v1/budgets/{id} admin
DELETE /api/v1/credentials/{id} admin
DELETE /api/v1/groups/{id} developer
DELETE /api/v1/policies/{name} developer
DELETE /api/v1/pricing/{model} admin
DELETE /api/v1/proxies/{id} developer
DELETE /api/v1/system-prompts/{id} developer
DELETE /api/v1/users/{id} admin
GET    /api/v1/a2a/agents read_only
GET    /api/v1/a2a/agents/{id} read_only
GET    /api/v1/a2a/tasks read_only
GET    /api/v1/alerts read_only
GET    /api/v1/alerts/{id} read_only
GET    /api/v1/audit read_only
GET    /api/v1/audit/verify read_only
GET    /api/v1/auth/me read_only
GET    /api/v1/budgets read_only
GET    /api/v1/budgets/{id} read_only
GET    /api/v1/budgets/{id}/history read_only
GET    /api/v1/credentials read_only
GET    /api/v1/credentials/{id} read_only
GET    /api/v1/events read_only
GET    /api/v1/groups read_only
GET    /api/v1/groups/{id} read_only
GET    /api/v1/keys read_only
GET    /api/v1/keys/{id} read_only
GET    /api/v1/mcp/scans read_only
GET    /api/v1/mcp/scans/{id} read_only
GET    /api/v1/mcp/tools read_only
GET    /api/v1/mcp/tools/{id} read_only
GET    /api/v1/openapi.json public
GET    /api/v1/policies read_only
GET    /api/v1/policies/{name} read_only
GET    /api/v1/pricing read_only
GET    /api/v1/pricing/{model} read_only
GET    /api/v1/proxies read_only
GET    /api/v1/proxies/{id} read_only
GET    /api/v1/stats read_only
GET    /api/v1/stats/proxies read_only
GET    /api/v1/system-prompts read_only
GET    /api/v1/system-prompts/{id} read_only
GET    /api/v1/usage read_only
GET    /api/v1/users admin
GET    /api/v1/users/{id} admin
GET    /api/v1/ws public
GET    /healthz public
GET    /metrics public
GET    /readyz public
PATCH  /api/v1/a2a/agents/{id} developer
PATCH  /api/v1/alerts/{id} developer
PATCH  /api/v1/budgets/{id} admin
PATCH  /api/v1/credentials/{id} admin
PATCH  /api/v1/groups/{id} developer
PATCH  /api/v1/keys/{id} developer
PATCH  /api/v1/proxies/{id} developer
PATCH  /api/v1/system-prompts/{id} developer
PATCH  /api/v1/users/{id} admin
POST   /api/v1/a2a/agents developer
POST   /api/v1/a2a/agents/{id}/approve developer
POST   /api/v1/a2a/agents/{id}/disable developer
POST   /api/v1/a2a/agents/{id}/refresh developer
POST   /api/v1/auth/change-password read_only
POST   /api/v1/auth/login public
POST   /api/v1/auth/logout read_only
POST   /api/v1/budgets admin
POST   /api/v1/budgets/{id}/reset admin
POST   /api/v1/config/reload admin
POST   /api/v1/credentials admin
POST   /api/v1/groups developer
POST   /api/v1/keys developer
POST   /api/v1/keys/{id}/revoke developer
POST   /api/v1/mcp/scans developer
POST   /api/v1/mcp/tools/{id}/approve developer
POST   /api/v1/mcp/tools/{id}/disable developer
POST   /api/v1/policies developer
POST   /api/v1/policies/validate read_only
POST   /api/v1/policies/{name}/clone developer
POST   /api/v1/policies/{name}/dry-run read_only
POST   /api/v1/proxies developer
POST   /api/v1/proxies/{id}/restart developer
POST   /api/v1/proxies/{id}/start developer
POST   /api/v1/proxies/{id}/stop developer
POST   /api/v1/system-prompts developer
POST   /api/v1/system-prompts/dry-run read_only
POST   /api/v1/users admin
POST   /api/v1/users/{id}/password admin
POST   /api/v1/ws/ticket read_only
PUT    /api/v1/policies/{name} developer
PUT    /api/v1/pricing/{model} admin
PUT    /api/v1/proxies/{id}/policies developer
PUT    /api/v1/system-prompts/{id}/bindings developer";
    assert_eq!(table.join("\n"), expected);
}
