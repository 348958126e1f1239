//! Bad input gets a JSON 4xx naming the problem, and the server carries on.

use crate::support::*;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use portcullis_core::Role;
use serde_json::json;

fn raw(
    path: &str,
    token: &str,
    content_type: Option<&str>,
    body: impl Into<Body>,
) -> Request<Body> {
    let mut b = Request::builder()
        .method(Method::POST)
        .uri(path)
        .header("authorization", format!("Bearer {token}"));
    if let Some(ct) = content_type {
        b = b.header("content-type", ct);
    }
    b.body(body.into()).unwrap()
}

#[tokio::test]
async fn malformed_bodies_get_named_errors() {
    let h = Harness::new().await;
    let (_, token) = h.user("admin", Role::Admin).await;
    let cases: Vec<(&str, Request<Body>, StatusCode, &str, &str)> = vec![
        (
            "malformed JSON",
            raw(
                "/api/v1/groups",
                &token,
                Some("application/json"),
                "{\"name\": ",
            ),
            StatusCode::BAD_REQUEST,
            "bad_request",
            "EOF",
        ),
        (
            "wrong type",
            raw(
                "/api/v1/groups",
                &token,
                Some("application/json"),
                "{\"name\": 42}",
            ),
            StatusCode::BAD_REQUEST,
            "bad_request",
            "name",
        ),
        (
            "unknown field",
            raw(
                "/api/v1/groups",
                &token,
                Some("application/json"),
                "{\"name\": \"a\", \"colour\": 1}",
            ),
            StatusCode::BAD_REQUEST,
            "bad_request",
            "colour",
        ),
        (
            "missing field",
            raw(
                "/api/v1/keys",
                &token,
                Some("application/json"),
                "{\"name\": \"k\"}",
            ),
            StatusCode::BAD_REQUEST,
            "bad_request",
            "group_id",
        ),
        (
            "bad enum",
            raw(
                "/api/v1/users",
                &token,
                Some("application/json"),
                "{\"username\":\"x\",\"password\":\"long-enough-password\",\"role\":\"root\"}",
            ),
            StatusCode::BAD_REQUEST,
            "bad_request",
            "role",
        ),
        (
            "oversized",
            raw(
                "/api/v1/groups",
                &token,
                Some("application/json"),
                format!("{{\"name\": \"{}\"}}", "a".repeat(BODY_LIMIT * 4)),
            ),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "limit",
        ),
        (
            "no content type",
            raw("/api/v1/groups", &token, None, "{\"name\": \"a\"}"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "application/json",
        ),
        (
            "not UTF-8",
            raw(
                "/api/v1/groups",
                &token,
                Some("application/json"),
                vec![0xff, 0xfe, 0x00],
            ),
            StatusCode::BAD_REQUEST,
            "bad_request",
            "",
        ),
        (
            "bad name",
            raw(
                "/api/v1/groups",
                &token,
                Some("application/json"),
                "{\"name\": \"  \"}",
            ),
            StatusCode::BAD_REQUEST,
            "bad_request",
            "name",
        ),
    ];
    for (label, req, status, code, mention) in cases {
        let reply = h.send(req).await;
        assert_eq!(reply.status, status, "{label}: {}", reply.text);
        assert_eq!(error_code(&reply), code, "{label}");
        assert!(
            reply.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains(mention),
            "{label}: {}",
            reply.text
        );
    }
    let bad_query = h
        .call(Method::GET, "/api/v1/audit?limit=lots", Some(&token), None)
        .await;
    assert_eq!(bad_query.status, StatusCode::BAD_REQUEST);
    assert!(bad_query.text.contains("limit"));
    let bad_limit = h
        .call(
            Method::GET,
            "/api/v1/audit?limit=100000",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(bad_limit.status, StatusCode::BAD_REQUEST);
    // Still serving.
    assert_eq!(
        h.call(Method::GET, "/api/v1/groups", Some(&token), None)
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_in_json() {
    let h = Harness::new().await;
    let missing = h
        .call(Method::GET, "/api/v1/nothing-here", None, None)
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(error_code(&missing), "not_found");
    let wrong = h
        .call(Method::PUT, "/api/v1/groups", None, Some(json!({})))
        .await;
    assert_eq!(wrong.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(error_code(&wrong), "method_not_allowed");
    assert_eq!(wrong.headers["cache-control"], "no-store");
}
