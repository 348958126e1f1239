//! Prices, budgets and usage through the real router and data plane, against the
//! in-process mock upstream, with a clock the test moves.

use crate::support::*;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use jiff::Timestamp;
use mock_upstream::{MockConfig, MockUpstream};
use portcullis_core::model::KeyScope;
use portcullis_core::{Clock, ManualClock, SystemClock};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

/// A model priced by the test: $1,000 per million tokens each way, so a short
/// request costs a few cents.
const MODEL: &str = "budget-test-model";

struct World {
    h: Harness,
    clock: ManualClock,
    mock: MockUpstream,
    admin: String,
    caller: String,
    group_id: String,
}

async fn key(h: &Harness, group_id: &str, scopes: Vec<KeyScope>) -> (String, String) {
    stored_key(h, group_id, scopes).await
}

async fn world(start: &str) -> World {
    let clock = ManualClock::at(start.parse::<Timestamp>().unwrap());
    let h = Harness::with_clock(Arc::new(clock.clone())).await;
    world_on(h, clock).await
}

async fn world_on(h: Harness, clock: ManualClock) -> World {
    let mock = MockUpstream::start(([127, 0, 0, 1], 0).into(), MockConfig::default())
        .await
        .unwrap();
    let group = h
        .state
        .store
        .create_group("team", "", SystemClock.now())
        .await
        .unwrap();
    // Admin calls use an admin-scoped key: sessions would expire as the clock jumps.
    let (admin, _) = key(&h, &group.id, vec![KeyScope::Admin]).await;
    let (caller, _) = key(&h, &group.id, vec![KeyScope::Llm]).await;
    let w = World {
        h,
        clock,
        mock,
        admin,
        caller,
        group_id: group.id,
    };
    let created = w
        .call(
            Method::POST,
            "/api/v1/proxies",
            json!({"name": "paid", "provider": "openai", "upstream_url": w.mock.base_url(), "auth_mode": "api_key"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let id = created.body["id"].as_str().unwrap().to_owned();
    let started = w
        .call(
            Method::POST,
            &format!("/api/v1/proxies/{id}/start"),
            json!(null),
        )
        .await;
    assert_eq!(started.status, StatusCode::OK, "{}", started.text);
    let priced = w
        .call(
            Method::PUT,
            &format!("/api/v1/pricing/{MODEL}"),
            json!({"provider": "custom", "input": 1000.0, "output": 1000.0}),
        )
        .await;
    assert_eq!(priced.status, StatusCode::OK, "{}", priced.text);
    w
}

struct Answer {
    status: StatusCode,
    budget: Option<String>,
    body: Value,
}

impl World {
    async fn call(&self, method: Method, path: &str, body: Value) -> Reply {
        let body = (!body.is_null()).then_some(body);
        self.h.call(method, path, Some(&self.admin), body).await
    }

    async fn chat(&self, text: &str) -> Answer {
        let request = Request::builder()
            .method(Method::POST)
            .uri("/p/paid/v1/chat/completions")
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {}", self.caller))
            .body(Body::from(
                json!({"model": MODEL, "max_tokens": 200, "messages": [{"role": "user", "content": text}]})
                    .to_string(),
            ))
            .unwrap();
        let response = self
            .h
            .state
            .data_plane
            .gateway_router()
            .oneshot(request)
            .await
            .unwrap();
        let status = response.status();
        let budget = response
            .headers()
            .get("x-portcullis-budget")
            .map(|v| v.to_str().unwrap().to_owned());
        let bytes = http_body_util::BodyExt::collect(response.into_body())
            .await
            .unwrap()
            .to_bytes();
        Answer {
            status,
            budget,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        }
    }

    async fn budget(&self, limit: f64, enforcement: &str) -> String {
        let reply = self
            .call(
                Method::POST,
                "/api/v1/budgets",
                json!({"scope": "group", "target_id": self.group_id, "limit_usd": limit, "warn_percent": 50, "enforcement": enforcement}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
        reply.body["id"].as_str().unwrap().to_owned()
    }

    /// The budget's state once every running request has settled.
    async fn settled(&self, id: &str) -> Value {
        for _ in 0..200 {
            let view = self
                .call(Method::GET, &format!("/api/v1/budgets/{id}"), json!(null))
                .await
                .body;
            if view["status"]["reserved_usd"].as_f64() == Some(0.0) {
                return view;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("reservations never settled");
    }

    async fn alerts(&self, rule: &str) -> Vec<Value> {
        let reply = self
            .call(
                Method::GET,
                &format!("/api/v1/alerts?rule={rule}"),
                json!(null),
            )
            .await;
        reply.body["alerts"].as_array().cloned().unwrap_or_default()
    }
}

#[tokio::test]
async fn a_block_budget_refuses_with_402_before_the_upstream_and_resets() {
    let w = world("2026-11-20T12:00:00Z").await;
    let id = w.budget(0.05, "block").await;

    // Spend until the budget refuses; each answer reports the state.
    let mut passed = 0;
    let refused = loop {
        let answer = w.chat("hello there, how much is this?").await;
        w.settled(&id).await;
        if answer.status != StatusCode::OK {
            break answer;
        }
        assert!(answer.budget.as_deref().unwrap().contains("limit_usd=0.05"));
        passed += 1;
        assert!(passed < 20, "the budget never ran out");
    };
    assert!(passed >= 1);
    assert_eq!(refused.status, StatusCode::PAYMENT_REQUIRED);
    assert_eq!(
        refused.body["error"]["code"], "budget_exceeded",
        "{}",
        refused.body
    );
    assert_eq!(refused.body["error"]["type"], "insufficient_quota");
    assert!(
        refused.budget.is_none(),
        "a refused request reports no admission"
    );
    // The upstream saw exactly the admitted requests.
    assert_eq!(w.mock.requests().len(), passed);
    let view = w.settled(&id).await;
    assert_eq!(view["status"]["state"], "exceeded", "{view}");
    assert_eq!(view["status"]["period"]["end"], "2026-12-01T00:00:00Z");
    assert!(view["status"]["spent_usd"].as_f64().unwrap() >= 0.05);
    assert_eq!(view["target_name"], "team");

    // Spent and refused requests are recorded with their costs.
    let mut usage = Value::Null;
    for _ in 0..100 {
        usage = w
            .call(
                Method::GET,
                "/api/v1/usage?group_by=group,model",
                json!(null),
            )
            .await
            .body;
        if usage["rows"][0]["requests"].as_u64() == Some(passed as u64 + 1) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let row = &usage["rows"][0];
    assert_eq!(row["group_id"], w.group_id.as_str(), "{usage}");
    assert_eq!(row["model"], MODEL);
    assert_eq!(row["blocked"], 1);
    assert!(
        (row["cost_usd"].as_f64().unwrap() - view["status"]["spent_usd"].as_f64().unwrap()).abs()
            < 1e-9
    );
    assert!(!w.alerts("BUDGET-EXCEEDED").await.is_empty());

    // A new month starts a new period by itself.
    w.clock.set("2026-12-01T00:00:01Z".parse().unwrap());
    let december = w.chat("hello again").await;
    assert_eq!(december.status, StatusCode::OK, "{}", december.body);
    let view = w.settled(&id).await;
    assert_eq!(view["status"]["period"]["start"], "2026-12-01T00:00:00Z");
    assert!(view["status"]["spent_usd"].as_f64().unwrap() < 0.05);

    // Exhaust December, then reset by hand.
    while w.chat("spend it all").await.status == StatusCode::OK {
        w.settled(&id).await;
    }
    w.clock.advance_ms(60_000);
    let reset = w
        .call(
            Method::POST,
            &format!("/api/v1/budgets/{id}/reset"),
            json!(null),
        )
        .await;
    assert_eq!(reset.status, StatusCode::OK, "{}", reset.text);
    assert_eq!(reset.body["status"]["spent_usd"], 0.0);
    assert_eq!(w.chat("after the reset").await.status, StatusCode::OK);

    // History: November, December up to the reset, and the current period.
    let history = w
        .call(
            Method::GET,
            &format!("/api/v1/budgets/{id}/history"),
            json!(null),
        )
        .await
        .body;
    let periods = history["periods"].as_array().unwrap();
    assert_eq!(periods.len(), 3, "{history}");
    assert!(periods[0]["spent_usd"].as_f64().unwrap() >= 0.05);
    assert_eq!(periods[1]["ended_by_reset"], true);
    assert_eq!(periods[2]["current"], true);

    // Every change is audited.
    let audit = w
        .call(Method::GET, "/api/v1/audit?action=budget.", json!(null))
        .await
        .body;
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .map(|a| a.iter().filter_map(|e| e["action"].as_str()).collect())
        .unwrap_or_default();
    assert!(
        actions.contains(&"budget.create") && actions.contains(&"budget.reset"),
        "{audit}"
    );
    w.mock.shutdown().await;
}

#[tokio::test]
async fn a_warn_budget_lets_requests_through_with_a_header_and_one_alert() {
    let w = world("2026-11-20T12:00:00Z").await;
    let id = w.budget(0.05, "warn").await;
    let mut live = w.h.state.data_plane.relay().events.live().subscribe();
    let mut states = Vec::new();
    for _ in 0..8 {
        let answer = w.chat("hello there, how much is this?").await;
        assert_eq!(answer.status, StatusCode::OK);
        states.push(answer.budget.unwrap().split(';').next().unwrap().to_owned());
        w.settled(&id).await;
    }
    assert_eq!(states[0], "ok");
    assert!(states.contains(&"warning".to_owned()), "{states:?}");
    assert_eq!(states.last().unwrap(), "exceeded", "{states:?}");
    assert_eq!(w.mock.requests().len(), 8);
    // One alert per threshold per period, however many requests crossed it.
    let mut warnings = Vec::new();
    for _ in 0..100 {
        warnings = w.alerts("BUDGET-WARNING").await;
        if !warnings.is_empty() && !w.alerts("BUDGET-EXCEEDED").await.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_eq!(warnings[0]["group_id"], w.group_id.as_str());
    assert_eq!(warnings[0]["category"], "budget");
    assert_eq!(w.alerts("BUDGET-EXCEEDED").await.len(), 1);
    // The console's live feed carried both, once each.
    let mut pushed = Vec::new();
    for _ in 0..100 {
        while let Ok(message) = live.try_recv() {
            if let portcullis_proxy::events::LiveMessage::Alert(alert) = message {
                pushed.push(alert.rule);
            }
        }
        if pushed.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    pushed.sort();
    assert_eq!(pushed, ["BUDGET-EXCEEDED", "BUDGET-WARNING"]);
    w.mock.shutdown().await;
}

#[tokio::test]
async fn parallel_requests_overspend_by_at_most_one_estimate() {
    let w = world("2026-11-20T12:00:00Z").await;
    let limit = 0.20;
    let id = w.budget(limit, "block").await;
    let text = "parallel spending test";
    let body_bytes =
        json!({"model": MODEL, "max_tokens": 200, "messages": [{"role": "user", "content": text}]})
            .to_string()
            .len() as f64;
    // The gateway's estimate: body bytes / 4 input tokens + max_tokens output.
    let estimate = ((body_bytes / 4.0).floor() + 200.0) * 1000.0 / 1e6;
    let w = Arc::new(w);
    let mut tasks = Vec::new();
    for _ in 0..60 {
        let w = w.clone();
        tasks.push(tokio::spawn(async move { w.chat(text).await.status }));
    }
    let mut ok = 0;
    let mut refused = 0;
    for t in tasks {
        match t.await.unwrap() {
            StatusCode::OK => ok += 1,
            StatusCode::PAYMENT_REQUIRED => refused += 1,
            other => panic!("unexpected {other}"),
        }
    }
    let view = w.settled(&id).await;
    let spent = view["status"]["spent_usd"].as_f64().unwrap();
    assert!(refused > 0 && ok > 0, "ok {ok}, refused {refused}");
    assert!(
        spent <= limit + estimate + 1e-9,
        "spent {spent} over limit {limit} + one estimate {estimate}"
    );
    assert_eq!(w.mock.requests().len(), ok);
}

#[tokio::test]
async fn prices_are_listed_overridden_and_unknown_models_flagged() {
    let w = world("2026-11-20T12:00:00Z").await;
    let list = w
        .call(Method::GET, "/api/v1/pricing", json!(null))
        .await
        .body;
    let models = list["models"].as_array().unwrap();
    assert!(models.len() > 40);
    for provider in ["openai", "anthropic", "google", "mistral"] {
        assert!(
            models.iter().any(|m| m["provider"] == provider),
            "{provider}"
        );
    }
    let ours = models.iter().find(|m| m["model"] == MODEL).unwrap();
    assert_eq!(ours["source"], "override");
    let resolved = w
        .call(
            Method::GET,
            "/api/v1/pricing/gpt-4o-2024-08-06",
            json!(null),
        )
        .await
        .body;
    assert_eq!(resolved["matched"], "gpt-4o");
    assert_eq!(resolved["price"]["input"], 2.5);
    let bad = w
        .call(
            Method::PUT,
            "/api/v1/pricing/x",
            json!({"input": -1.0, "output": 1.0}),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);

    // A model without a price: the event is flagged (cost null), and a block
    // budget refuses it rather than let it spend unseen.
    let request = |model: &str| {
        Request::builder()
            .method(Method::POST)
            .uri("/p/paid/v1/chat/completions")
            .header("authorization", format!("Bearer {}", w.caller))
            .body(Body::from(
                json!({"model": model, "messages": [{"role": "user", "content": "hi"}]})
                    .to_string(),
            ))
            .unwrap()
    };
    let gateway = w.h.state.data_plane.gateway_router();
    let answer = gateway.clone().oneshot(request("house-llm")).await.unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    // The exchange ends (and its event is written) when the body has been read.
    http_body_util::BodyExt::collect(answer.into_body())
        .await
        .unwrap();
    let mut usage = Value::Null;
    for _ in 0..100 {
        usage = w
            .call(Method::GET, "/api/v1/usage?model=house-llm", json!(null))
            .await
            .body;
        if usage["rows"][0]["requests"] == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(usage["rows"][0]["unpriced_requests"], 1, "{usage}");
    let events = w
        .call(Method::GET, "/api/v1/events?model=house-llm", json!(null))
        .await
        .body;
    assert!(events["events"][0]["cost_usd"].is_null(), "{events}");
    w.budget(10.0, "block").await;
    let answer = gateway.oneshot(request("house-llm")).await.unwrap();
    assert_eq!(answer.status(), StatusCode::PAYMENT_REQUIRED);
    // Deleting the override restores nothing for a custom model: 404 the second time.
    let gone = w
        .call(
            Method::DELETE,
            &format!("/api/v1/pricing/{MODEL}"),
            json!(null),
        )
        .await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT);
    let again = w
        .call(
            Method::DELETE,
            &format!("/api/v1/pricing/{MODEL}"),
            json!(null),
        )
        .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_shared_ledger_keeps_the_budget_and_fails_closed_when_redis_is_away() {
    let relay = Cuttable::start().await;
    let shared = relay.shared("pcx-test:budget").await;
    let clock = ManualClock::at("2026-11-20T12:00:00Z".parse().unwrap());
    let h = Harness::with_shared(Arc::new(clock.clone()), shared).await;
    let w = world_on(h, clock).await;
    let id = w.budget(0.05, "block").await;
    let mut passed = 0;
    while w.chat("hello there, how much is this?").await.status == StatusCode::OK {
        w.settled(&id).await;
        passed += 1;
        assert!(passed < 20, "the budget never ran out");
    }
    assert_eq!(w.mock.requests().len(), passed);
    let view = w.settled(&id).await;
    assert!(
        view["status"]["spent_usd"].as_f64().unwrap() >= 0.05,
        "{view}"
    );

    // Redis gone: a budgeted caller is refused at once, never let through.
    relay.cut();
    w.clock.set("2026-12-01T00:00:01Z".parse().unwrap());
    let started = std::time::Instant::now();
    let refused = w.chat("is anyone there?").await;
    assert_eq!(
        refused.status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "{}",
        refused.body
    );
    assert!(refused.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("budgets"));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        w.mock.requests().len(),
        passed,
        "nothing reached the upstream"
    );
}
