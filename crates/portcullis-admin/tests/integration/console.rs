//! The web console's server side: the embedded app with its history fallback,
//! the dashboard figures and the live WebSocket.

use crate::support::*;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use futures_util::StreamExt;
use portcullis_core::proxy::{Decision, ProxyEvent};
use portcullis_core::{Clock, Role, SystemClock};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::time::Duration;

fn event(decision: Decision, model: &str, findings: Value) -> ProxyEvent {
    ProxyEvent {
        id: portcullis_core::id::new_id(),
        at: SystemClock.now(),
        proxy_id: "px".into(),
        proxy_name: "live-proxy".into(),
        endpoint: "chat_completions".into(),
        key_id: None,
        group_id: None,
        end_user: None,
        model: Some(model.into()),
        status: match decision {
            Decision::Allowed => 200,
            Decision::Blocked => 403,
            Decision::Error => 502,
        },
        decision,
        error: None,
        stream: false,
        latency_us: 10,
        ttft_us: None,
        overhead_us: 5,
        input_tokens: 3,
        output_tokens: 4,
        cached_tokens: 0,
        request_bytes: 10,
        response_bytes: 10,
        findings,
        cost_usd: Some(0.25),
    }
}

fn high_finding() -> Value {
    json!([{"rule": "PI-001", "category": "prompt_injection", "severity": "critical", "action": "block", "location": "request"}])
}

async fn ticket(h: &Harness, token: &str) -> String {
    let reply = h
        .call(Method::POST, "/api/v1/ws/ticket", Some(token), None)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    reply.body["ticket"].as_str().unwrap().to_owned()
}

fn upgrade_attempt(ticket: &str, origin: Option<&str>) -> Request<Body> {
    let mut req = request(
        Method::GET,
        &format!("/api/v1/ws?ticket={ticket}"),
        None,
        None,
    );
    req.headers_mut()
        .insert("host", "127.0.0.1:8080".parse().unwrap());
    if let Some(origin) = origin {
        req.headers_mut().insert("origin", origin.parse().unwrap());
    }
    req
}

#[tokio::test]
async fn the_console_owns_every_path_but_the_api() {
    let h = Harness::new().await;
    let page = h.call(Method::GET, "/proxies/new", None, None).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert_eq!(page.headers["cache-control"], "no-cache");
    assert!(page.text.contains("<html"), "{}", page.text);
    // Names that merely start like a reserved prefix are console routes.
    let similar = h.call(Method::GET, "/apis-overview", None, None).await;
    assert_eq!(similar.status, StatusCode::OK);

    for (method, path) in [
        (Method::GET, "/api/v1/no-such-route"),
        (Method::POST, "/api/v1/no-such-route"),
        (Method::DELETE, "/api/v1/no-such-route"),
        (Method::GET, "/api"),
        (Method::GET, "/v1/models"),
        (Method::POST, "/v1/chat/completions"),
        (Method::GET, "/p/no-rest"),
        (Method::POST, "/alerts"),
    ] {
        let api = h.call(method.clone(), path, None, None).await;
        assert_eq!(api.status, StatusCode::NOT_FOUND, "{method} {path}");
        assert_eq!(error_code(&api), "not_found");
        assert_eq!(api.headers["cache-control"], "no-store");
    }
    let asset = h
        .call(Method::GET, "/assets/index-00000000.js", None, None)
        .await;
    assert_eq!(asset.status, StatusCode::NOT_FOUND);
    assert!(!asset.text.contains("<html"));
}

#[tokio::test]
async fn stats_sum_requests_errors_blocked_and_spend_per_bucket() {
    let h = Harness::new().await;
    let (_, ro) = h.user("ro", Role::ReadOnly).await;
    for e in [
        event(Decision::Allowed, "gpt-4o", json!([])),
        event(Decision::Allowed, "gpt-4o", json!([])),
        event(Decision::Error, "claude", json!([])),
        event(Decision::Blocked, "gpt-4o", high_finding()),
    ] {
        h.state.data_plane.relay().events.emit(e);
    }
    let mut stats = Value::Null;
    for _ in 0..50 {
        stats = h
            .call(Method::GET, "/api/v1/stats?range=1h", Some(&ro), None)
            .await
            .body;
        if stats["requests"] == 4 && stats["open_alerts"] == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(stats["requests"], 4, "{stats}");
    assert_eq!(stats["errors"], 1, "{stats}");
    assert_eq!(stats["blocked"], 1, "{stats}");
    assert_eq!(stats["open_alerts"], 1, "{stats}");
    assert_eq!(stats["cost_usd"], 1.0, "{stats}");
    assert_eq!(stats["spend_this_month_usd"], 1.0, "{stats}");
    assert_eq!(stats["bucket_seconds"], 60);
    let buckets = stats["buckets"].as_array().unwrap();
    assert!((60..=61).contains(&buckets.len()), "{}", buckets.len());
    let counted: u64 = buckets
        .iter()
        .map(|b| b["requests"].as_u64().unwrap())
        .sum();
    assert_eq!(counted, 4);
    assert_eq!(
        buckets.last().unwrap()["requests"],
        4,
        "the newest bucket holds them"
    );
    assert_eq!(stats["top_models"][0]["name"], "gpt-4o");
    assert_eq!(stats["top_models"][0]["requests"], 3);
    assert_eq!(
        stats["proxies"],
        json!({"running": 0, "stopped": 0, "error": 0})
    );

    let week = h
        .call(Method::GET, "/api/v1/stats?range=7d", Some(&ro), None)
        .await;
    assert_eq!(week.body["bucket_seconds"], 3600);
    assert!(week.body["buckets"].as_array().unwrap().len() >= 168);
    let bad = h
        .call(Method::GET, "/api/v1/stats?range=2h", Some(&ro), None)
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&bad), "bad_request");
}

#[tokio::test]
async fn websocket_tickets_are_single_use_same_origin_and_die_with_the_session() {
    let h = Harness::new().await;
    let (_, token) = h.user("dev", Role::Developer).await;
    let none = h.call(Method::POST, "/api/v1/ws/ticket", None, None).await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);

    let unknown = h.send(upgrade_attempt("forged", None)).await;
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(&unknown), "unauthenticated");

    // Another site's page cannot use a ticket; the refusal does not spend it.
    let t = ticket(&h, &token).await;
    let foreign = h
        .send(upgrade_attempt(&t, Some("http://evil.example")))
        .await;
    assert_eq!(foreign.status, StatusCode::FORBIDDEN);
    // Same origin: the ticket is good (no upgrade headers here, so 400), and spent.
    let same = h
        .send(upgrade_attempt(&t, Some("http://127.0.0.1:8080")))
        .await;
    assert_eq!(same.status, StatusCode::BAD_REQUEST, "{}", same.text);
    let again = h.send(upgrade_attempt(&t, None)).await;
    assert_eq!(again.status, StatusCode::UNAUTHORIZED);

    // A ticket issued before logout is worthless after it.
    let t = ticket(&h, &token).await;
    h.call(Method::POST, "/api/v1/auth/logout", Some(&token), None)
        .await;
    let ended = h.send(upgrade_attempt(&t, None)).await;
    assert_eq!(ended.status, StatusCode::UNAUTHORIZED);
}

async fn serve(h: &Harness) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = h
        .router
        .clone()
        .into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

#[tokio::test]
async fn the_live_socket_pushes_events_alerts_and_proxy_status() {
    let h = Harness::new().await;
    let (_, ro) = h.user("viewer", Role::ReadOnly).await;
    let (_, admin) = h.user("boss", Role::Admin).await;
    let addr = serve(&h).await;
    let t = ticket(&h, &ro).await;
    let (mut socket, _) =
        tokio_tungstenite::connect_async(format!("ws://{addr}/api/v1/ws?ticket={t}"))
            .await
            .unwrap();

    let mut seen: Vec<Value> = Vec::new();
    // The subscription starts just after the upgrade: emit until the feed answers.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !(seen.iter().any(|m| m["type"] == "event") && seen.iter().any(|m| m["type"] == "alert"))
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "messages seen: {seen:?}"
        );
        if seen.is_empty() {
            h.state.data_plane.relay().events.emit(event(
                Decision::Blocked,
                "gpt-4o",
                high_finding(),
            ));
        }
        if let Ok(Some(Ok(message))) =
            tokio::time::timeout(Duration::from_millis(300), socket.next()).await
        {
            if let Ok(text) = message.to_text() {
                seen.push(serde_json::from_str(text).unwrap());
            }
        }
    }
    let event = seen.iter().find(|m| m["type"] == "event").unwrap();
    assert_eq!(event["data"]["proxy_name"], "live-proxy");
    assert_eq!(event["data"]["decision"], "blocked");
    let alert = seen.iter().find(|m| m["type"] == "alert").unwrap();
    assert_eq!(alert["data"]["rule"], "PI-001");
    assert_eq!(alert["data"]["status"], "open");

    // A proxy started through the API is announced with its new status.
    let created = h
        .call(
            Method::POST,
            "/api/v1/proxies",
            Some(&admin),
            Some(json!({"name": "announced", "upstream_url": "http://127.0.0.1:9", "auto_start": true})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let status = loop {
        let message = tokio::time::timeout(Duration::from_secs(5), socket.next())
            .await
            .expect("a proxy_status message")
            .unwrap()
            .unwrap();
        let value: Value = serde_json::from_str(message.to_text().unwrap()).unwrap();
        if value["type"] == "proxy_status" {
            break value;
        }
    };
    assert_eq!(status["data"]["proxy_name"], "announced");
    assert_eq!(status["data"]["status"]["state"], "running");
}

#[tokio::test]
async fn operation_ids_are_unique_for_client_generators() {
    let h = Harness::new().await;
    let doc = h
        .call(Method::GET, "/api/v1/openapi.json", None, None)
        .await
        .body;
    let mut ids = Vec::new();
    for item in doc["paths"].as_object().unwrap().values() {
        for op in item.as_object().unwrap().values() {
            ids.push(op["operationId"].as_str().unwrap().to_owned());
        }
    }
    let count = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), count, "duplicate operationIds");
    assert!(ids.contains(&"groups_list".to_owned()), "{ids:?}");
}

/// Two proxies created through the API; traffic for one of them (and for an A2A
/// agent, whose events share the table), then the figures as a read-only user.
async fn per_proxy_figures(h: &Harness) {
    let (_, admin) = h.user("boss", Role::Admin).await;
    let (_, ro) = h.user("viewer", Role::ReadOnly).await;
    let mut ids = Vec::new();
    for name in ["zeta", "alpha"] {
        let created = h
            .call(
                Method::POST,
                "/api/v1/proxies",
                Some(&admin),
                Some(json!({"name": name, "upstream_url": "http://127.0.0.1:9", "auto_start": false})),
            )
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
        ids.push(created.body["id"].as_str().unwrap().to_owned());
    }
    let busy = &ids[0];
    let now = SystemClock.now();
    // 20 requests of 1..=20 ms: 2 errors, 3 blocked; one two hours old.
    for i in 1..=20u64 {
        let decision = match i {
            1 | 2 => Decision::Error,
            3..=5 => Decision::Blocked,
            _ => Decision::Allowed,
        };
        let mut e = event(decision, "gpt-4o", json!([]));
        e.proxy_id = busy.clone();
        e.proxy_name = "zeta".into();
        e.latency_us = i * 1000;
        if i == 20 {
            e.at = now
                .checked_sub(jiff::SignedDuration::from_hours(2))
                .unwrap();
        }
        h.state.data_plane.relay().events.emit(e);
    }
    let mut agent = event(Decision::Allowed, "agent", json!([]));
    agent.proxy_id = "an-agent-id".into();
    h.state.data_plane.relay().events.emit(agent);

    let mut day = Value::Null;
    for _ in 0..50 {
        day = h
            .call(Method::GET, "/api/v1/stats/proxies", Some(&ro), None)
            .await
            .body;
        if day["proxies"][1]["requests"] == 20 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(day["range"], "24h", "{day}");
    assert_eq!(day["latency_sample_limit"], 500);
    let proxies = day["proxies"].as_array().unwrap();
    assert_eq!(proxies.len(), 2, "proxies only, not agents: {day}");
    let (quiet, figures) = (&proxies[0], &proxies[1]);
    assert_eq!(quiet["proxy_name"], "alpha", "by name");
    assert_eq!(quiet["requests"], 0);
    assert_eq!(quiet["p50_latency_ms"], Value::Null);
    assert_eq!(quiet["latency_sample"], 0);
    assert_eq!(figures["proxy_id"], busy.as_str());
    assert_eq!(figures["kind"], "llm");
    assert_eq!(figures["requests"], 20);
    assert_eq!(figures["errors"], 2);
    assert_eq!(figures["blocked"], 3);
    assert_eq!(figures["input_tokens"], 60);
    assert_eq!(figures["output_tokens"], 80);
    assert_eq!(figures["p50_latency_ms"], 10.0);
    assert_eq!(figures["p95_latency_ms"], 19.0);
    assert_eq!(figures["latency_sample"], 20);

    // The last hour leaves out the old request (the slowest).
    let hour = h
        .call(
            Method::GET,
            "/api/v1/stats/proxies?range=1h",
            Some(&ro),
            None,
        )
        .await;
    assert_eq!(hour.status, StatusCode::OK, "{}", hour.text);
    let figures = &hour.body["proxies"][1];
    assert_eq!(figures["requests"], 19);
    assert_eq!(figures["p95_latency_ms"], 19.0);
    assert_eq!(figures["latency_sample"], 19);

    let bad = h
        .call(
            Method::GET,
            "/api/v1/stats/proxies?range=2h",
            Some(&ro),
            None,
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&bad), "bad_request");
    let nobody = h
        .call(Method::GET, "/api/v1/stats/proxies", None, None)
        .await;
    assert_eq!(nobody.status, StatusCode::UNAUTHORIZED);
    let group = h
        .state
        .store
        .create_group("callers", "", SystemClock.now())
        .await
        .unwrap();
    let (llm_key, _) = stored_key(h, &group.id, vec![portcullis_core::model::KeyScope::Llm]).await;
    let refused = h
        .call(Method::GET, "/api/v1/stats/proxies", Some(&llm_key), None)
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn per_proxy_figures_on_sqlite() {
    per_proxy_figures(&Harness::new().await).await;
}

#[tokio::test]
async fn per_proxy_figures_on_postgres() {
    let h = Harness::postgres().await;
    per_proxy_figures(&h).await;
    h.drop_postgres().await;
}
