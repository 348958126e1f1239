//! Groups, keys and credentials through the API.

use crate::support::*;
use axum::http::{Method, StatusCode};
use portcullis_core::Role;
use serde_json::json;

#[tokio::test]
async fn keys_are_shown_once_and_work_as_admin_credentials_by_scope() {
    let h = Harness::new().await;
    let (_, admin) = h.user("admin", Role::Admin).await;
    let group = h
        .call(
            Method::POST,
            "/api/v1/groups",
            Some(&admin),
            Some(json!({"name": "platform", "description": "the platform team"})),
        )
        .await;
    assert_eq!(group.status, StatusCode::CREATED);
    let group_id = group.body["id"].as_str().unwrap().to_owned();

    let created = h
        .call(
            Method::POST,
            "/api/v1/keys",
            Some(&admin),
            Some(json!({"name": "ops-bot", "group_id": group_id, "scopes": ["admin_read"]})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let key = created.body["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("pcx_"));
    let key_id = created.body["api_key"]["id"].as_str().unwrap().to_owned();

    // Never shown again, in any listing.
    let listed = h
        .call(
            Method::GET,
            &format!("/api/v1/keys?group_id={group_id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(listed.body.as_array().unwrap().len(), 1);
    assert!(!listed.text.contains(&key[12..]));
    let one = h
        .call(
            Method::GET,
            &format!("/api/v1/keys/{key_id}"),
            Some(&admin),
            None,
        )
        .await;
    assert!(!one.text.contains(&key[12..]));

    // admin_read: may read, may not write; x-api-key works too.
    assert_eq!(
        h.call(Method::GET, "/api/v1/groups", Some(&key), None)
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        h.call(
            Method::POST,
            "/api/v1/groups",
            Some(&key),
            Some(json!({"name": "x"}))
        )
        .await
        .status,
        StatusCode::FORBIDDEN
    );
    let req = axum::http::Request::builder()
        .uri("/api/v1/groups")
        .header("x-api-key", &key)
        .body(axum::body::Body::empty())
        .unwrap();
    assert_eq!(h.send(req).await.status, StatusCode::OK);
    // last_used_at is kept.
    let used = h
        .call(
            Method::GET,
            &format!("/api/v1/keys/{key_id}"),
            Some(&admin),
            None,
        )
        .await;
    assert!(used.body["last_used_at"].is_string());

    // Revocation is immediate; a tampered key never matches.
    let mut tampered = key.clone();
    tampered.pop();
    tampered.push(if key.ends_with('a') { 'b' } else { 'a' });
    assert_eq!(
        h.call(Method::GET, "/api/v1/groups", Some(&tampered), None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        h.call(
            Method::POST,
            &format!("/api/v1/keys/{key_id}/revoke"),
            Some(&admin),
            None
        )
        .await
        .status,
        StatusCode::OK
    );
    assert_eq!(
        h.call(Method::GET, "/api/v1/groups", Some(&key), None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );

    // A group with keys is not deleted.
    let del = h
        .call(
            Method::DELETE,
            &format!("/api/v1/groups/{group_id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(del.status, StatusCode::CONFLICT);
}

#[tokio::test]
async fn no_one_mints_a_key_more_powerful_than_themselves() {
    let h = Harness::new().await;
    let (_, dev) = h.user("dev", Role::Developer).await;
    let group = h
        .call(
            Method::POST,
            "/api/v1/groups",
            Some(&dev),
            Some(json!({"name": "g"})),
        )
        .await;
    let group_id = group.body["id"].as_str().unwrap();
    let admin_key = h
        .call(
            Method::POST,
            "/api/v1/keys",
            Some(&dev),
            Some(json!({"name": "k", "group_id": group_id, "scopes": ["admin"]})),
        )
        .await;
    assert_eq!(
        admin_key.status,
        StatusCode::FORBIDDEN,
        "{}",
        admin_key.text
    );
    let llm_key = h
        .call(
            Method::POST,
            "/api/v1/keys",
            Some(&dev),
            Some(json!({"name": "k", "group_id": group_id})),
        )
        .await;
    assert_eq!(llm_key.status, StatusCode::CREATED);
    assert_eq!(
        llm_key.body["api_key"]["scopes"],
        json!(["a2a", "llm", "mcp"])
    );
    let past = h
        .call(
            Method::POST,
            "/api/v1/keys",
            Some(&dev),
            Some(json!({"name": "k", "group_id": group_id, "expires_at": "2001-01-01T00:00:00Z"})),
        )
        .await;
    assert_eq!(past.status, StatusCode::BAD_REQUEST);
    let no_group = h
        .call(
            Method::POST,
            "/api/v1/keys",
            Some(&dev),
            Some(json!({"name": "k", "group_id": "nope"})),
        )
        .await;
    assert_eq!(no_group.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn credential_secrets_never_come_back() {
    let h = Harness::new().await;
    let (_, admin) = h.user("admin", Role::Admin).await;
    let secret = "sk-proj-TOPSECRET-aaaabbbbccccdddd1234";
    let created = h
        .call(
            Method::POST,
            "/api/v1/credentials",
            Some(&admin),
            Some(json!({"name": "openai-prod", "provider": "openai", "secret": secret})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    assert_eq!(created.body["hint"], "sk-...1234");
    let id = created.body["id"].as_str().unwrap().to_owned();

    let replaced = h
        .call(
            Method::PATCH,
            &format!("/api/v1/credentials/{id}"),
            Some(&admin),
            Some(json!({"secret": "sk-ant-NEWSECRET-zzzzyyyyxxxx9876"})),
        )
        .await;
    assert_eq!(replaced.body["hint"], "sk-...9876");
    let mut seen = vec![created.text, replaced.text];
    seen.push(
        h.call(Method::GET, "/api/v1/credentials", Some(&admin), None)
            .await
            .text,
    );
    seen.push(
        h.call(
            Method::GET,
            &format!("/api/v1/credentials/{id}"),
            Some(&admin),
            None,
        )
        .await
        .text,
    );
    seen.push(
        h.call(Method::GET, "/api/v1/audit", Some(&admin), None)
            .await
            .text,
    );
    for text in &seen {
        assert!(
            !text.contains("TOPSECRET") && !text.contains("NEWSECRET"),
            "secret leaked: {text}"
        );
    }
    // Not in the database file either (the WAL included).
    h.state.store.close().await;
    for entry in std::fs::read_dir(h.db_path.parent().unwrap()).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains("TOPSECRET") && !text.contains("NEWSECRET"));
    }
}

#[tokio::test]
async fn read_only_users_see_but_do_not_touch() {
    let h = Harness::new().await;
    let (_, admin) = h.user("admin", Role::Admin).await;
    let (_, viewer) = h.user("viewer", Role::ReadOnly).await;
    h.call(Method::POST, "/api/v1/credentials", Some(&admin), Some(json!({"name": "c", "provider": "anthropic", "secret": "sk-ant-api03-abcdefghijklmnop"}))).await;
    let list = h
        .call(Method::GET, "/api/v1/credentials", Some(&viewer), None)
        .await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(list.body[0]["provider"], "anthropic");
    assert_eq!(
        h.call(Method::GET, "/api/v1/users", Some(&viewer), None)
            .await
            .status,
        StatusCode::FORBIDDEN
    );
}
