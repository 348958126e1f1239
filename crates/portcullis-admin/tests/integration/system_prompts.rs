//! System prompts through the API: templates, validation, bindings, audit, the
//! dry run, and what the data plane then sends upstream in each format.

use crate::support::*;
use axum::http::{Method, StatusCode};
use mock_upstream::{MockConfig, MockUpstream};
use portcullis_core::Role;
use serde_json::{json, Value};
use tower::ServiceExt;

const ALL_VARIABLES: &str =
    "Proxy {{proxy}} serves {{user}} of {{group}} at {{organization}} on {{date}}.";

async fn create(h: &Harness, token: &str, name: &str, content: &str) -> Value {
    let reply = h
        .call(
            Method::POST,
            "/api/v1/system-prompts",
            Some(token),
            Some(json!({"name": name, "description": "d", "content": content})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    reply.body
}

async fn bind(h: &Harness, token: &str, id: &str, bindings: Value) -> Reply {
    h.call(
        Method::PUT,
        &format!("/api/v1/system-prompts/{id}/bindings"),
        Some(token),
        Some(json!({ "bindings": bindings })),
    )
    .await
}

/// Replaces a template's bindings with one; asserts it was accepted.
async fn bind_one(
    h: &Harness,
    token: &str,
    template: &Value,
    kind: &str,
    target: &str,
    priority: i64,
) {
    let id = template["id"].as_str().unwrap();
    let binding = json!([{"target_kind": kind, "target": target, "priority": priority}]);
    let reply = bind(h, token, id, binding).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
}

async fn research_group(h: &Harness, token: &str) -> Value {
    let reply = h
        .call(
            Method::POST,
            "/api/v1/groups",
            Some(token),
            Some(json!({"name": "research"})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    reply.body
}

fn today() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%d").to_string()
}

#[tokio::test]
async fn templates_are_validated_stored_bound_and_audited() {
    let h = Harness::new().await;
    let (_, dev) = h.user("dev", Role::Developer).await;
    let (_, viewer) = h.user("viewer", Role::ReadOnly).await;

    let created = create(&h, &dev, "base", ALL_VARIABLES).await;
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(
        created["variables"],
        json!(["proxy", "user", "group", "organization", "date"])
    );
    assert_eq!(created["bindings"], json!([]));

    // Unknown variables, bad names and oversized content: 422 naming each.
    let reply = h
        .call(
            Method::POST,
            "/api/v1/system-prompts",
            Some(&dev),
            Some(json!({"name": " bad", "content": "Hi {{team}} and {{ user }}"})),
        )
        .await;
    assert_eq!(
        reply.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        reply.text
    );
    assert_eq!(error_code(&reply), "unprocessable");
    let problems = reply.body["error"]["problems"].to_string();
    assert!(problems.contains("{{team}}"), "{problems}");
    assert!(problems.contains("name:"), "{problems}");
    let big = "x".repeat(32 * 1024 + 1);
    let h_big = Harness::with_body_limit(128 * 1024).await;
    let (_, big_dev) = h_big.user("dev", Role::Developer).await;
    let reply = h_big
        .call(
            Method::POST,
            "/api/v1/system-prompts",
            Some(&big_dev),
            Some(json!({"name": "big", "content": big})),
        )
        .await;
    assert_eq!(
        reply.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        reply.text
    );
    assert!(reply.text.contains("32768 bytes"), "{}", reply.text);
    let reply = h
        .call(
            Method::POST,
            "/api/v1/system-prompts",
            Some(&dev),
            Some(json!({"name": "base", "content": "again"})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CONFLICT, "{}", reply.text);
    // Unknown fields are refused like everywhere else.
    let reply = h
        .call(
            Method::POST,
            "/api/v1/system-prompts",
            Some(&dev),
            Some(json!({"name": "n", "content": "c", "priority": 3})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text);
    // Viewers read, never write.
    let reply = h
        .call(
            Method::POST,
            "/api/v1/system-prompts",
            Some(&viewer),
            Some(json!({"name": "v", "content": "c"})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    let listed = h
        .call(Method::GET, "/api/v1/system-prompts", Some(&viewer), None)
        .await;
    assert_eq!(listed.status, StatusCode::OK);
    assert_eq!(listed.body.as_array().unwrap().len(), 1);

    // Update: partial, validated.
    let path = format!("/api/v1/system-prompts/{id}");
    let reply = h
        .call(
            Method::PATCH,
            &path,
            Some(&dev),
            Some(json!({"content": "Now {{nope}}"})),
        )
        .await;
    assert_eq!(
        reply.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        reply.text
    );
    let reply = h
        .call(
            Method::PATCH,
            &path,
            Some(&dev),
            Some(json!({"content": "Be kind to {{user}}."})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body["name"], "base");
    assert_eq!(reply.body["variables"], json!(["user"]));

    // Bindings: targets by id or name, each once, must exist.
    let group = research_group(&h, &dev).await;
    let proxy = crate::policies::proxy(&h, &dev, "edge", json!([])).await;
    let reply = bind(
        &h,
        &dev,
        &id,
        json!([
            {"target_kind": "group", "target": "nobody"},
            {"target_kind": "proxy", "target": "edge"},
            {"target_kind": "proxy", "target": proxy["id"]},
            {"target_kind": "proxy", "target": "edge", "priority": 5_000_000}
        ]),
    )
    .await;
    assert_eq!(
        reply.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        reply.text
    );
    let problems = reply.body["error"]["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 4, "{problems:?}");
    let problem = |i: usize| problems[i].as_str().unwrap();
    assert!(
        problem(0).starts_with("bindings[0].target: no group"),
        "{problems:?}"
    );
    assert!(problem(1).starts_with("bindings[2].target") && problem(1).contains("bound twice"));
    assert!(
        problem(2).starts_with("bindings[3].priority"),
        "{problems:?}"
    );
    assert!(problem(3).starts_with("bindings[3].target") && problem(3).contains("bound twice"));
    let reply = bind(
        &h,
        &dev,
        &id,
        json!([{"target_kind": "kingdom", "target": "x"}]),
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text);

    let reply = bind(
        &h,
        &dev,
        &id,
        json!([
            {"target_kind": "group", "target": "research", "priority": 2},
            {"target_kind": "proxy", "target": proxy["id"]}
        ]),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(
        reply.body["bindings"],
        json!([
            {"target_kind": "group", "target_id": group["id"], "target_name": "research", "priority": 2},
            {"target_kind": "proxy", "target_id": proxy["id"], "target_name": "edge", "priority": 0}
        ])
    );
    let one = h.call(Method::GET, &path, Some(&viewer), None).await;
    assert_eq!(one.body["bindings"].as_array().unwrap().len(), 2);

    // Deleting the group removes its binding.
    let reply = h
        .call(
            Method::DELETE,
            &format!("/api/v1/groups/{}", group["id"].as_str().unwrap()),
            Some(&dev),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text);
    let one = h.call(Method::GET, &path, Some(&viewer), None).await;
    assert_eq!(one.body["bindings"].as_array().unwrap().len(), 1);

    // Delete, then it is gone.
    let reply = h.call(Method::DELETE, &path, Some(&dev), None).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    let reply = h.call(Method::GET, &path, Some(&viewer), None).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    let reply = h.call(Method::DELETE, &path, Some(&dev), None).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);

    // Every change is in the audit chain, with who made it.
    let audit = h
        .call(
            Method::GET,
            "/api/v1/audit?action=system_prompt.",
            Some(&viewer),
            None,
        )
        .await;
    assert_eq!(audit.status, StatusCode::OK, "{}", audit.text);
    let entries = audit.body["entries"]
        .as_array()
        .or_else(|| audit.body.as_array())
        .unwrap()
        .clone();
    let actions: Vec<&str> = entries
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "system_prompt.delete",
            "system_prompt.bindings",
            "system_prompt.update",
            "system_prompt.create"
        ]
    );
    assert!(entries
        .iter()
        .all(|e| e["target"] == format!("system_prompt:{id}")));
    assert_eq!(entries[3]["details"]["content"], ALL_VARIABLES);
    assert_eq!(
        entries[1]["details"]["bindings"][0]["target_name"],
        "research"
    );
}

/// Sends one request through the gateway router under `/p/{proxy}`.
async fn relay(
    h: &Harness,
    proxy: &str,
    path: &str,
    key: &str,
    body: Value,
) -> (StatusCode, Value) {
    let request = axum::http::Request::builder()
        .method(Method::POST)
        .uri(format!("/p/{proxy}{path}"))
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {key}"))
        .header("x-portcullis-user", "alice@example.com")
        .header("anthropic-version", "2023-06-01")
        .body(axum::body::Body::from(body.to_string()))
        .unwrap();
    let response = h
        .state
        .data_plane
        .gateway_router()
        .oneshot(request)
        .await
        .unwrap();
    let status = response.status();
    let bytes = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn last_sent(mock: &MockUpstream) -> Value {
    serde_json::from_str(&mock.requests().last().unwrap().body).unwrap()
}

#[tokio::test]
async fn the_winning_prompt_reaches_the_upstream_in_every_format() {
    let mock = MockUpstream::start(([127, 0, 0, 1], 0).into(), MockConfig::default())
        .await
        .unwrap();
    let h = Harness::new().await;
    let (_, dev) = h.user("dev", Role::Developer).await;
    let group = research_group(&h, &dev).await;
    let key = h
        .call(
            Method::POST,
            "/api/v1/keys",
            Some(&dev),
            Some(json!({"name": "app", "group_id": group["id"]})),
        )
        .await
        .body;
    let key_id = key["api_key"]["id"].as_str().unwrap().to_owned();
    let key = key["key"].as_str().unwrap().to_owned();
    let proxy = h
        .call(
            Method::POST,
            "/api/v1/proxies",
            Some(&dev),
            Some(json!({"name": "edge", "provider": "openai", "upstream_url": mock.base_url(), "auto_start": true})),
        )
        .await;
    assert_eq!(proxy.status, StatusCode::CREATED, "{}", proxy.text);
    let claude = h
        .call(
            Method::POST,
            "/api/v1/proxies",
            Some(&dev),
            Some(json!({"name": "claude", "provider": "anthropic", "upstream_url": mock.base_url(), "auto_start": true})),
        )
        .await;
    assert_eq!(claude.status, StatusCode::CREATED, "{}", claude.text);

    // Before any binding the body goes through untouched.
    let chat = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]});
    let (status, _) = relay(&h, "edge", "/v1/chat/completions", &key, chat.clone()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(last_sent(&mock), chat);

    let by_proxy = create(&h, &dev, "proxy-wide", "Proxy {{proxy}} rules.").await;
    let by_group = create(&h, &dev, "research-team", ALL_VARIABLES).await;
    let lower = create(&h, &dev, "research-low", "Lower priority.").await;
    let id = |v: &Value| v["id"].as_str().unwrap().to_owned();
    bind_one(&h, &dev, &by_proxy, "proxy", "edge", 100).await;
    bind_one(&h, &dev, &by_group, "group", "research", 2).await;
    bind_one(&h, &dev, &lower, "group", "research", 1).await;
    let expected = format!(
        "Proxy edge serves alice@example.com of research at Acme on {}.",
        today()
    );

    // OpenAI chat: a system message first, the client's own kept after it.
    let (status, _) = relay(
        &h,
        "edge",
        "/v1/chat/completions",
        &key,
        json!({"model": "gpt-4o", "messages": [
            {"role": "system", "content": "client system"},
            {"role": "user", "content": "hi"}
        ]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        last_sent(&mock)["messages"],
        json!([
            {"role": "system", "content": expected},
            {"role": "system", "content": "client system"},
            {"role": "user", "content": "hi"}
        ])
    );

    // Responses: instructions, governed text first.
    let (status, _) = relay(
        &h,
        "edge",
        "/v1/responses",
        &key,
        json!({"model": "gpt-4o", "input": [{"role": "user", "content": "hi"}], "instructions": "Be terse."}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let sent = last_sent(&mock);
    assert_eq!(sent["instructions"], format!("{expected}\n\nBe terse."));
    assert_eq!(sent["input"], json!([{"role": "user", "content": "hi"}]));

    // Anthropic Messages: a text block first.
    let (status, body) = relay(
        &h,
        "claude",
        "/v1/messages",
        &key,
        json!({"model": "claude-sonnet-4-5", "max_tokens": 50, "system": [{"type": "text", "text": "client"}],
               "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let expected_claude = expected.replace("Proxy edge", "Proxy claude");
    assert_eq!(
        last_sent(&mock)["system"],
        json!([{"type": "text", "text": expected_claude}, {"type": "text", "text": "client"}])
    );

    // Embeddings have no system prompt: untouched.
    let embed = json!({"model": "text-embedding-3-small", "input": "x"});
    relay(&h, "edge", "/v1/embeddings", &key, embed.clone()).await;
    assert_eq!(last_sent(&mock), embed);

    // A system field of the wrong shape is refused, not sent ungoverned.
    let before = mock.requests().len();
    let (status, body) = relay(
        &h,
        "edge",
        "/v1/responses",
        &key,
        json!({"model": "gpt-4o", "input": "x", "instructions": 5}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(mock.requests().len(), before);

    // The dry run explains the same choice.
    let dry = h
        .call(
            Method::POST,
            "/api/v1/system-prompts/dry-run",
            Some(&dev),
            Some(json!({"proxy": "edge", "key": key_id, "user": "alice@example.com", "path": "/v1/chat/completions",
                        "body": {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}})),
        )
        .await;
    assert_eq!(dry.status, StatusCode::OK, "{}", dry.text);
    assert_eq!(dry.body["applied"], true);
    assert_eq!(dry.body["template"]["name"], "research-team");
    assert_eq!(dry.body["binding"]["target_kind"], "group");
    assert_eq!(dry.body["considered"].as_array().unwrap().len(), 3);
    assert!(dry.body["reason"]
        .as_str()
        .unwrap()
        .contains("group \"research\""));
    assert_eq!(dry.body["system_prompt"], expected);
    assert_eq!(dry.body["body"]["messages"][0]["content"], expected);
    // Without a group, the proxy's binding wins.
    let dry = h
        .call(
            Method::POST,
            "/api/v1/system-prompts/dry-run",
            Some(&dev),
            Some(json!({"proxy": "edge", "endpoint": "messages", "body": {"messages": [], "system": "s"}})),
        )
        .await;
    assert_eq!(dry.status, StatusCode::OK, "{}", dry.text);
    assert_eq!(dry.body["template"]["name"], "proxy-wide");
    assert_eq!(dry.body["body"]["system"], "Proxy edge rules.\n\ns");
    // Bad dry runs name every problem.
    let dry = h
        .call(
            Method::POST,
            "/api/v1/system-prompts/dry-run",
            Some(&dev),
            Some(json!({"proxy": "nowhere", "group": "nobody", "endpoint": "files", "body": {}})),
        )
        .await;
    assert_eq!(dry.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", dry.text);
    assert_eq!(dry.body["error"]["problems"].as_array().unwrap().len(), 3);

    // Unbinding the group's templates: the proxy's binding applies at once.
    bind(&h, &dev, &id(&by_group), json!([])).await;
    bind(&h, &dev, &id(&lower), json!([])).await;
    relay(&h, "edge", "/v1/chat/completions", &key, chat.clone()).await;
    assert_eq!(
        last_sent(&mock)["messages"][0],
        json!({"role": "system", "content": "Proxy edge rules."})
    );
    // Changing the content applies from the next request.
    h.call(
        Method::PATCH,
        &format!("/api/v1/system-prompts/{}", id(&by_proxy)),
        Some(&dev),
        Some(json!({"content": "v2 for {{group}}"})),
    )
    .await;
    relay(&h, "edge", "/v1/chat/completions", &key, chat.clone()).await;
    assert_eq!(
        last_sent(&mock)["messages"][0]["content"],
        "v2 for research"
    );
    // Deleting the template: untouched again.
    h.call(
        Method::DELETE,
        &format!("/api/v1/system-prompts/{}", id(&by_proxy)),
        Some(&dev),
        None,
    )
    .await;
    relay(&h, "edge", "/v1/chat/completions", &key, chat.clone()).await;
    assert_eq!(last_sent(&mock), chat);
    mock.shutdown().await;
}
