//! Rate limits end to end in process: limits set through the admin API, requests
//! through the gateway router to a mock upstream that records what reaches it.

use crate::support::*;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use mock_upstream::{MockConfig, MockUpstream};
use portcullis_core::Role;
use serde_json::{json, Value};
use tower::ServiceExt;

struct Setup {
    h: Harness,
    dev: String,
    mock: MockUpstream,
    group_id: String,
}

async fn setup(group_limits: Value) -> Setup {
    setup_on(Harness::new().await, group_limits).await
}

async fn setup_on(h: Harness, group_limits: Value) -> Setup {
    let (_, dev) = h.user("dev", Role::Developer).await;
    let mock = MockUpstream::start(([127, 0, 0, 1], 0).into(), MockConfig::default())
        .await
        .unwrap();
    let group = h
        .call(
            Method::POST,
            "/api/v1/groups",
            Some(&dev),
            Some(json!({"name": "team", "rate_limits": group_limits})),
        )
        .await;
    assert_eq!(group.status, StatusCode::CREATED, "{}", group.text);
    let proxy = h
        .call(
            Method::POST,
            "/api/v1/proxies",
            Some(&dev),
            Some(json!({"name": "llm", "provider": "openai", "upstream_url": mock.base_url()})),
        )
        .await;
    assert_eq!(proxy.status, StatusCode::CREATED, "{}", proxy.text);
    let id = proxy.body["id"].as_str().unwrap();
    let started = h
        .call(
            Method::POST,
            &format!("/api/v1/proxies/{id}/start"),
            Some(&dev),
            None,
        )
        .await;
    assert_eq!(started.status, StatusCode::OK, "{}", started.text);
    let group_id = group.body["id"].as_str().unwrap().to_owned();
    Setup {
        h,
        dev,
        mock,
        group_id,
    }
}

impl Setup {
    /// A new key in the group; returns (key, key id).
    async fn key(&self, limits: Value) -> (String, String) {
        let reply = self
            .h
            .call(
                Method::POST,
                "/api/v1/keys",
                Some(&self.dev),
                Some(json!({"name": "app", "group_id": self.group_id, "rate_limits": limits})),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
        (
            reply.body["key"].as_str().unwrap().to_owned(),
            reply.body["api_key"]["id"].as_str().unwrap().to_owned(),
        )
    }

    async fn chat(&self, key: &str) -> Reply {
        self.llm(key, "/p/llm/v1/chat/completions", json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello there"}]}))
            .await
    }

    async fn llm(&self, key: &str, path: &str, body: Value) -> Reply {
        let req = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header("authorization", format!("Bearer {key}"))
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        let response = self
            .h
            .state
            .data_plane
            .gateway_router()
            .oneshot(req)
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        Reply {
            status,
            headers,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            text: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }
}

fn header<'a>(reply: &'a Reply, name: &str) -> &'a str {
    reply
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

#[tokio::test]
async fn a_key_over_its_rpm_gets_429_and_the_upstream_sees_nothing() {
    let s = setup(json!(null)).await;
    let (key, key_id) = s.key(json!({"rpm": 2})).await;
    for remaining in ["1", "0"] {
        let ok = s.chat(&key).await;
        assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
        assert_eq!(header(&ok, "x-ratelimit-limit-requests"), "2");
        assert_eq!(header(&ok, "x-ratelimit-remaining-requests"), remaining);
        assert!(header(&ok, "x-ratelimit-reset-requests").ends_with('s'));
        assert!(ok.headers.get("retry-after").is_none());
    }
    let limited = s.chat(&key).await;
    assert_eq!(
        limited.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        limited.text
    );
    assert_eq!(limited.body["error"]["type"], "rate_limit_error");
    assert_eq!(limited.body["error"]["code"], "rate_limit_exceeded");
    // 2 per minute: one every 30 s.
    let retry: u64 = header(&limited, "retry-after").parse().unwrap();
    assert!((29..=30).contains(&retry), "retry-after {retry}");
    assert_eq!(header(&limited, "x-ratelimit-remaining-requests"), "0");
    assert_eq!(
        s.mock.requests().len(),
        2,
        "the refused request reached the upstream"
    );

    // The refusal is an event (blocked) and a metric.
    let mut blocked = Value::Null;
    for _ in 0..50 {
        let events =
            s.h.call(
                Method::GET,
                &format!("/api/v1/events?key_id={key_id}&decision=blocked"),
                Some(&s.dev),
                None,
            )
            .await;
        if let Some(e) = events.body["events"].as_array().and_then(|a| a.first()) {
            blocked = e.clone();
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(blocked["status"], 429, "no blocked event: {blocked}");
    let metrics = s.h.call(Method::GET, "/metrics", None, None).await;
    assert!(
        metrics
            .text
            .contains("portcullis_proxy_rate_limited_total{proxy=\"llm\"} 1"),
        "{}",
        metrics.text
    );
    s.mock.shutdown().await;
}

#[tokio::test]
async fn group_limits_bind_every_key_and_a_change_applies_at_once() {
    let s = setup(json!(null)).await;
    let (a, _) = s.key(json!(null)).await;
    let (b, _) = s.key(json!({"rpm": 100})).await;
    // Unlimited callers get no rate-limit headers.
    let free = s.chat(&a).await;
    assert_eq!(free.status, StatusCode::OK);
    assert!(free.headers.get("x-ratelimit-limit-requests").is_none());

    let patched =
        s.h.call(
            Method::PATCH,
            &format!("/api/v1/groups/{}", s.group_id),
            Some(&s.dev),
            Some(json!({"rate_limits": {"rpm": 2}})),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    assert_eq!(patched.body["rate_limits"], json!({"rpm": 2, "tpm": null}));
    assert_eq!(s.chat(&a).await.status, StatusCode::OK);
    let second = s.chat(&b).await;
    assert_eq!(second.status, StatusCode::OK);
    // The group's bucket is the tighter one.
    assert_eq!(header(&second, "x-ratelimit-limit-requests"), "2");
    assert_eq!(header(&second, "x-ratelimit-remaining-requests"), "0");
    // Anthropic callers get Anthropic's error shape.
    let limited = s
        .llm(
            &b,
            "/p/llm/v1/messages",
            json!({"model": "claude-3-5-haiku", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    assert_eq!(
        limited.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        limited.text
    );
    assert_eq!(limited.body["type"], "error");
    assert_eq!(limited.body["error"]["type"], "rate_limit_error");
    assert!(limited.headers.get("retry-after").is_some());
    assert_eq!(s.chat(&a).await.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(s.mock.requests().len(), 3);
    s.mock.shutdown().await;
}

#[tokio::test]
async fn used_tokens_are_debited_and_hold_back_the_next_request() {
    let s = setup(json!(null)).await;
    let (key, _) = s.key(json!({"tpm": 5})).await;
    let first = s.chat(&key).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    assert_eq!(header(&first, "x-ratelimit-limit-tokens"), "5");
    let used = first.body["usage"]["total_tokens"].as_u64().unwrap();
    assert!(used > 5, "the mock answered with {used} tokens");
    let limited = s.chat(&key).await;
    assert_eq!(
        limited.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        limited.text
    );
    assert_eq!(header(&limited, "x-ratelimit-remaining-tokens"), "0");
    // In debt by (used - 5) tokens at 5 a minute: minutes, not seconds.
    let retry: u64 = header(&limited, "retry-after").parse().unwrap();
    assert!(retry >= 60, "retry-after {retry}");
    assert_eq!(s.mock.requests().len(), 1);

    // Raising the key's limit applies to the next request.
    let id = s.h.state.store.list_api_keys(None).await.unwrap()[0]
        .id
        .clone();
    let patched =
        s.h.call(
            Method::PATCH,
            &format!("/api/v1/keys/{id}"),
            Some(&s.dev),
            Some(json!({"rate_limits": {"tpm": 1000000}})),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    assert_eq!(patched.body["rate_limits"]["tpm"], 1_000_000);
    assert_eq!(s.chat(&key).await.status, StatusCode::OK);
    s.mock.shutdown().await;
}

#[tokio::test]
async fn limits_must_be_positive_whole_numbers() {
    let s = setup(json!({"rpm": 10, "tpm": 1000})).await;
    let group =
        s.h.call(
            Method::GET,
            &format!("/api/v1/groups/{}", s.group_id),
            Some(&s.dev),
            None,
        )
        .await;
    assert_eq!(group.body["rate_limits"], json!({"rpm": 10, "tpm": 1000}));
    for bad in [
        json!({"rpm": 0}),
        json!({"tpm": -5}),
        json!({"rpm": 1.5}),
        json!({"rpm": "10"}),
        json!({"rpm": 10, "burst": 3}),
        json!({"rpm": 1_000_000_000_001u64}),
    ] {
        let group =
            s.h.call(
                Method::POST,
                "/api/v1/groups",
                Some(&s.dev),
                Some(json!({"name": "other", "rate_limits": bad})),
            )
            .await;
        assert_eq!(
            group.status,
            StatusCode::BAD_REQUEST,
            "{bad}: {}",
            group.text
        );
        let key =
            s.h.call(
                Method::POST,
                "/api/v1/keys",
                Some(&s.dev),
                Some(json!({"name": "k", "group_id": s.group_id, "rate_limits": bad})),
            )
            .await;
        assert_eq!(key.status, StatusCode::BAD_REQUEST, "{bad}: {}", key.text);
    }
    let zero =
        s.h.call(
            Method::POST,
            "/api/v1/groups",
            Some(&s.dev),
            Some(json!({"name": "other", "rate_limits": {"rpm": 0}})),
        )
        .await;
    assert!(
        zero.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("rate_limits.rpm"),
        "{}",
        zero.text
    );
    let (_, id) = s.key(json!({"rpm": 3})).await;
    let missing =
        s.h.call(
            Method::PATCH,
            "/api/v1/keys/nope",
            Some(&s.dev),
            Some(json!({"rate_limits": {"rpm": 3}})),
        )
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    // Clearing: rate_limits with no fields means no limit.
    let cleared =
        s.h.call(
            Method::PATCH,
            &format!("/api/v1/keys/{id}"),
            Some(&s.dev),
            Some(json!({"rate_limits": {}})),
        )
        .await;
    assert_eq!(
        cleared.body["rate_limits"],
        json!({"rpm": null, "tpm": null})
    );
    s.mock.shutdown().await;
}

#[tokio::test]
async fn a_redis_outage_refuses_with_503_and_never_reaches_the_upstream() {
    use portcullis_governance::ratelimit::RateLimiter;
    let relay = Cuttable::start().await;
    let shared = relay.shared("pcx-test:outage").await;
    let s = setup_on(
        Harness::with_limiter(RateLimiter::redis(shared)).await,
        json!(null),
    )
    .await;
    let (key, _) = s.key(json!({"rpm": 100})).await;
    let ok = s.chat(&key).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    assert_eq!(header(&ok, "x-ratelimit-remaining-requests"), "99");

    relay.cut();
    let started = std::time::Instant::now();
    let refused = s.chat(&key).await;
    assert_eq!(
        refused.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        refused.text
    );
    assert_eq!(refused.body["error"]["type"], "api_error");
    assert!(started.elapsed() < std::time::Duration::from_secs(3));
    // Unlimited keys do not need Redis.
    let (free, _) = s.key(json!(null)).await;
    assert_eq!(s.chat(&free).await.status, StatusCode::OK);
    assert_eq!(s.mock.requests().len(), 2);
    let metrics = s.h.call(Method::GET, "/metrics", None, None).await;
    assert!(
        metrics
            .text
            .contains("portcullis_proxy_rate_limiter_errors_total{proxy=\"llm\"} 1"),
        "{}",
        metrics.text
    );
    s.mock.shutdown().await;
}
