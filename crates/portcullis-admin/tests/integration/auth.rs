//! Login, throttling, logout, password changes, disabling.

use crate::support::*;
use axum::http::{Method, StatusCode};
use portcullis_core::Role;
use serde_json::json;

async fn login(h: &Harness, user: &str, password: &str) -> Reply {
    h.call(
        Method::POST,
        "/api/v1/auth/login",
        None,
        Some(json!({"username": user, "password": password})),
    )
    .await
}

#[tokio::test]
async fn login_issues_a_working_token_and_logout_revokes_it() {
    let h = Harness::new().await;
    h.user("alice", Role::Developer).await;
    let reply = login(&h, "alice", PASSWORD).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body["token_type"], "Bearer");
    assert_eq!(reply.body["user"]["role"], "developer");
    assert!(reply.body["user"].get("password_hash").is_none());
    let token = reply.body["token"].as_str().unwrap().to_owned();

    let me = h
        .call(Method::GET, "/api/v1/auth/me", Some(&token), None)
        .await;
    assert_eq!(me.body["user"]["username"], "alice");
    assert_eq!(
        h.call(Method::POST, "/api/v1/auth/logout", Some(&token), None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    let after = h
        .call(Method::GET, "/api/v1/auth/me", Some(&token), None)
        .await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn wrong_passwords_and_unknown_users_look_alike() {
    let h = Harness::new().await;
    h.user("alice", Role::Admin).await;
    let wrong = login(&h, "alice", "not-the-password").await;
    let unknown = login(&h, "mallory", "not-the-password").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.text, unknown.text);
}

#[tokio::test]
async fn failed_logins_are_throttled_per_user() {
    let h = Harness::new().await;
    h.user("alice", Role::Admin).await;
    for _ in 0..5 {
        assert_eq!(
            login(&h, "alice", "wrong-password-x").await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    // Now even the right password is refused until the window passes.
    let throttled = login(&h, "alice", PASSWORD).await;
    assert_eq!(
        throttled.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        throttled.text
    );
    assert_eq!(error_code(&throttled), "too_many_requests");
    let retry: u64 = throttled.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry > 0 && retry <= 900);
    // The failures were audited.
    let (_, admin) = h.user("root", Role::Admin).await;
    let audit = h
        .call(
            Method::GET,
            "/api/v1/audit?action=auth.login_failed",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(audit.body["entries"].as_array().unwrap().len(), 5);
    assert_eq!(audit.body["entries"][0]["client_addr"], "127.0.0.1");
}

#[tokio::test]
async fn failed_logins_are_throttled_per_address() {
    let h = Harness::new().await;
    for i in 0..20 {
        assert_eq!(
            login(&h, &format!("user{i}"), "wrong-password-x")
                .await
                .status,
            StatusCode::UNAUTHORIZED
        );
    }
    h.user("alice", Role::Admin).await;
    assert_eq!(
        login(&h, "alice", PASSWORD).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn changing_the_password_ends_other_sessions() {
    let h = Harness::new().await;
    let (id, current) = h.user("alice", Role::ReadOnly).await;
    let other = h.session(&id).await;
    let weak = h
        .call(
            Method::POST,
            "/api/v1/auth/change-password",
            Some(&current),
            Some(json!({"current_password": PASSWORD, "new_password": "short"})),
        )
        .await;
    assert_eq!(weak.status, StatusCode::BAD_REQUEST);
    assert!(weak.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("new_password"));
    let wrong = h.call(Method::POST, "/api/v1/auth/change-password", Some(&current), Some(json!({"current_password": "nope-nope-nope", "new_password": "a-much-better-password"}))).await;
    assert_eq!(wrong.status, StatusCode::BAD_REQUEST);
    let ok = h
        .call(
            Method::POST,
            "/api/v1/auth/change-password",
            Some(&current),
            Some(json!({"current_password": PASSWORD, "new_password": "a-much-better-password"})),
        )
        .await;
    assert_eq!(ok.status, StatusCode::NO_CONTENT, "{}", ok.text);
    assert_eq!(
        h.call(Method::GET, "/api/v1/auth/me", Some(&current), None)
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        h.call(Method::GET, "/api/v1/auth/me", Some(&other), None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        login(&h, "alice", "a-much-better-password").await.status,
        StatusCode::OK
    );
    assert_eq!(
        login(&h, "alice", PASSWORD).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn role_changes_and_disabling_apply_at_once() {
    let h = Harness::new().await;
    let (_, admin) = h.user("admin", Role::Admin).await;
    let (bob_id, bob) = h.user("bob", Role::Developer).await;
    let create = |token: String| {
        let h = &h;
        async move {
            h.call(
                Method::POST,
                "/api/v1/groups",
                Some(&token),
                Some(json!({"name": format!("g-{}", portcullis_core::id::new_id())})),
            )
            .await
            .status
        }
    };
    assert_eq!(create(bob.clone()).await, StatusCode::CREATED);
    let demote = h
        .call(
            Method::PATCH,
            &format!("/api/v1/users/{bob_id}"),
            Some(&admin),
            Some(json!({"role": "read_only"})),
        )
        .await;
    assert_eq!(demote.status, StatusCode::OK, "{}", demote.text);
    assert_eq!(create(bob.clone()).await, StatusCode::FORBIDDEN);
    h.call(
        Method::PATCH,
        &format!("/api/v1/users/{bob_id}"),
        Some(&admin),
        Some(json!({"disabled": true})),
    )
    .await;
    assert_eq!(
        h.call(Method::GET, "/api/v1/groups", Some(&bob), None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        login(&h, "bob", PASSWORD).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn the_last_admin_cannot_be_removed_or_demoted() {
    let h = Harness::new().await;
    let (admin_id, admin) = h.user("admin", Role::Admin).await;
    let demote = h
        .call(
            Method::PATCH,
            &format!("/api/v1/users/{admin_id}"),
            Some(&admin),
            Some(json!({"role": "developer"})),
        )
        .await;
    assert_eq!(demote.status, StatusCode::CONFLICT);
    let disable = h
        .call(
            Method::PATCH,
            &format!("/api/v1/users/{admin_id}"),
            Some(&admin),
            Some(json!({"disabled": true})),
        )
        .await;
    assert_eq!(disable.status, StatusCode::CONFLICT);
    let (other_id, _) = h.user("second", Role::Admin).await;
    assert_eq!(
        h.call(
            Method::DELETE,
            &format!("/api/v1/users/{admin_id}"),
            Some(&admin),
            None
        )
        .await
        .status,
        StatusCode::CONFLICT,
        "not yourself"
    );
    assert_eq!(
        h.call(
            Method::DELETE,
            &format!("/api/v1/users/{other_id}"),
            Some(&admin),
            None
        )
        .await
        .status,
        StatusCode::NO_CONTENT
    );
}
