//! The audit trail records admin actions and detects tampering.

use crate::support::*;
use axum::http::{Method, StatusCode};
use portcullis_core::Role;
use serde_json::json;

#[tokio::test]
async fn admin_actions_are_recorded_with_actor_and_target() {
    let h = Harness::new().await;
    let (_, admin) = h.user("admin", Role::Admin).await;
    let group = h
        .call(
            Method::POST,
            "/api/v1/groups",
            Some(&admin),
            Some(json!({"name": "team"})),
        )
        .await;
    let gid = group.body["id"].as_str().unwrap();
    h.call(
        Method::PATCH,
        &format!("/api/v1/groups/{gid}"),
        Some(&admin),
        Some(json!({"description": "d"})),
    )
    .await;
    h.call(
        Method::POST,
        "/api/v1/users",
        Some(&admin),
        Some(json!({"username": "eve", "password": "long-enough-password", "role": "developer"})),
    )
    .await;

    let page = h
        .call(Method::GET, "/api/v1/audit?limit=2", Some(&admin), None)
        .await;
    let entries = page.body["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0]["action"], "user.create");
    assert_eq!(entries[0]["actor"], "user:admin");
    assert_eq!(entries[0]["target"], "user:eve");
    let next = page.body["next_before_id"].as_i64().unwrap();
    let older = h
        .call(
            Method::GET,
            &format!("/api/v1/audit?before_id={next}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(older.body["entries"][0]["action"], "group.create");
    let family = h
        .call(
            Method::GET,
            "/api/v1/audit?action=group.",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(family.body["entries"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn tampering_with_a_row_is_reported_at_the_first_broken_entry() {
    let h = Harness::new().await;
    let (_, admin) = h.user("admin", Role::Admin).await;
    for name in ["a", "b", "c", "d"] {
        h.call(
            Method::POST,
            "/api/v1/groups",
            Some(&admin),
            Some(json!({"name": name})),
        )
        .await;
    }
    let verify = h
        .call(Method::GET, "/api/v1/audit/verify", Some(&admin), None)
        .await;
    assert_eq!(verify.status, StatusCode::OK);
    assert_eq!(verify.body["intact"], true);
    assert_eq!(verify.body["checked"], 4);

    // Someone with file access rewrites history.
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", h.db_path.display()))
        .await
        .unwrap();
    sqlx::query("UPDATE audit_log SET target = 'group:innocent' WHERE id = 2")
        .execute(&pool)
        .await
        .unwrap();
    let broken = h
        .call(Method::GET, "/api/v1/audit/verify", Some(&admin), None)
        .await;
    assert_eq!(broken.body["intact"], false);
    assert_eq!(broken.body["first_broken"]["entry_id"], 2);
    assert_eq!(broken.body["checked"], 1);

    // Deleting a row instead breaks the one after it.
    sqlx::query("UPDATE audit_log SET target = 'group:b' WHERE id = 2")
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(
        h.call(Method::GET, "/api/v1/audit/verify", Some(&admin), None)
            .await
            .body["intact"],
        true
    );
    sqlx::query("DELETE FROM audit_log WHERE id = 3")
        .execute(&pool)
        .await
        .unwrap();
    let gap = h
        .call(Method::GET, "/api/v1/audit/verify", Some(&admin), None)
        .await;
    assert_eq!(gap.body["first_broken"]["entry_id"], 4);
}
