//! Alerts: raised by the event writer from findings at or above the threshold
//! (the harness uses `high`), listed, filtered, paginated and reviewed.

use crate::support::*;
use axum::http::{Method, StatusCode};
use portcullis_core::proxy::{Decision, ProxyEvent};
use portcullis_core::Role;
use serde_json::{json, Value};
use std::time::Duration;

fn event(at_secs: i64, proxy: &str, findings: Value) -> ProxyEvent {
    ProxyEvent {
        id: portcullis_core::id::new_id(),
        at: jiff::Timestamp::from_second(1_800_000_000 + at_secs).unwrap(),
        proxy_id: proxy.into(),
        proxy_name: format!("{proxy}-name"),
        endpoint: "chat_completions".into(),
        key_id: Some("key-1".into()),
        group_id: Some("group-1".into()),
        end_user: None,
        model: Some("m".into()),
        status: 403,
        decision: Decision::Blocked,
        error: None,
        stream: false,
        latency_us: 10,
        ttft_us: None,
        overhead_us: 5,
        input_tokens: 0,
        output_tokens: 0,
        cached_tokens: 0,
        request_bytes: 10,
        response_bytes: 10,
        findings,
        cost_usd: None,
    }
}

fn finding(rule: &str, severity: &str) -> Value {
    json!({"rule": rule, "category": "secrets", "severity": severity, "action": "block", "location": "request"})
}

/// Waits for the event writer to have stored `n` alerts.
async fn wait_for_alerts(h: &Harness, token: &str, n: usize) -> Vec<Value> {
    for _ in 0..60 {
        let reply = h
            .call(Method::GET, "/api/v1/alerts?limit=500", Some(token), None)
            .await;
        let alerts = reply.body["alerts"].as_array().cloned().unwrap_or_default();
        if alerts.len() >= n {
            return alerts;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{n} alerts never arrived");
}

/// Emits events through the relay's sink, as the data plane does.
fn emit(h: &Harness, events: Vec<ProxyEvent>) {
    for e in events {
        h.state.data_plane.relay().events.emit(e);
    }
}

#[tokio::test]
async fn findings_at_or_above_the_threshold_become_alerts() {
    let h = Harness::new().await;
    let (_, ro) = h.user("ro", Role::ReadOnly).await;
    emit(
        &h,
        vec![
            event(
                1,
                "px1",
                json!([finding("R-CRIT", "critical"), finding("R-LOW", "low")]),
            ),
            event(2, "px1", json!([finding("R-MED", "medium")])),
            event(3, "px2", json!([finding("R-HIGH", "high")])),
            event(4, "px2", json!([])),
        ],
    );
    let alerts = wait_for_alerts(&h, &ro, 2).await;
    // Give a stray third alert the chance to show up before counting.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let alerts_now = wait_for_alerts(&h, &ro, 2).await;
    assert_eq!(alerts_now.len(), 2, "{alerts:?}");
    let rules: Vec<&str> = alerts_now
        .iter()
        .map(|a| a["rule"].as_str().unwrap())
        .collect();
    assert_eq!(rules, ["R-HIGH", "R-CRIT"], "newest first");
    let a = &alerts_now[1];
    assert_eq!(a["status"], "open");
    assert_eq!(a["severity"], "critical");
    assert_eq!(a["proxy_id"], "px1");
    assert_eq!(a["proxy_name"], "px1-name");
    assert_eq!(a["key_id"], "key-1");
    assert_eq!(a["group_id"], "group-1");
    assert_eq!(a["location"], "request");
    assert!(a["event_id"].is_string() && a["status_changed_at"].is_null());

    let one = h
        .call(
            Method::GET,
            &format!("/api/v1/alerts/{}", a["id"].as_str().unwrap()),
            Some(&ro),
            None,
        )
        .await;
    assert_eq!(one.status, StatusCode::OK);
    assert_eq!(one.body, *a);
    let missing = h
        .call(Method::GET, "/api/v1/alerts/nope", Some(&ro), None)
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);

    let metrics = h.call(Method::GET, "/metrics", None, None).await.text;
    for line in [
        "portcullis_alerts_total{severity=\"critical\"} 1",
        "portcullis_alerts_total{severity=\"high\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} missing:\n{metrics}");
    }
}

#[tokio::test]
async fn alerts_filter_and_paginate() {
    let h = Harness::new().await;
    let (_, ro) = h.user("ro", Role::ReadOnly).await;
    let events: Vec<ProxyEvent> = (0..12)
        .map(|i| {
            let (proxy, severity) = if i % 3 == 0 {
                ("px2", "critical")
            } else {
                ("px1", "high")
            };
            event(i, proxy, json!([finding(&format!("R-{i}"), severity)]))
        })
        .collect();
    emit(&h, events);
    wait_for_alerts(&h, &ro, 12).await;

    let get = |query: &'static str| {
        let h = &h;
        let ro = ro.clone();
        async move {
            let reply = h
                .call(
                    Method::GET,
                    &format!("/api/v1/alerts?{query}"),
                    Some(&ro),
                    None,
                )
                .await;
            assert_eq!(reply.status, StatusCode::OK, "{query}: {}", reply.text);
            reply.body
        }
    };
    assert_eq!(
        get("severity=critical").await["alerts"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
    assert_eq!(
        get("proxy=px1").await["alerts"].as_array().unwrap().len(),
        8
    );
    assert_eq!(get("rule=R-5").await["alerts"][0]["rule"], "R-5");
    let window = get("since=2027-01-15T08:00:02Z&until=2027-01-15T08:00:05Z").await;
    let rules: Vec<&str> = window["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["rule"].as_str().unwrap())
        .collect();
    assert_eq!(rules, ["R-4", "R-3", "R-2"], "{window}");
    assert_eq!(
        get("status=open").await["alerts"].as_array().unwrap().len(),
        12
    );
    assert_eq!(get("status=resolved").await["alerts"], json!([]));

    // Pages of 5: 5, 5, 2, newest first, no overlap.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/alerts?limit=5&cursor={c}"),
            None => "/api/v1/alerts?limit=5".to_owned(),
        };
        let page = h.call(Method::GET, &path, Some(&ro), None).await.body;
        for a in page["alerts"].as_array().unwrap() {
            seen.push(a["rule"].as_str().unwrap().to_owned());
        }
        match page["next"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    let expected: Vec<String> = (0..12).rev().map(|i| format!("R-{i}")).collect();
    assert_eq!(seen, expected);

    for bad in [
        "limit=0",
        "limit=501",
        "severity=severe",
        "status=closed",
        "unknown=1",
    ] {
        let reply = h
            .call(
                Method::GET,
                &format!("/api/v1/alerts?{bad}"),
                Some(&ro),
                None,
            )
            .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{bad}");
        error_code(&reply);
    }
}

#[tokio::test]
async fn status_workflow_records_who_and_refuses_reopening() {
    let h = Harness::new().await;
    let (_, ro) = h.user("ro", Role::ReadOnly).await;
    let (_, dev) = h.user("dev", Role::Developer).await;
    emit(
        &h,
        vec![
            event(1, "px1", json!([finding("R-A", "critical")])),
            event(2, "px1", json!([finding("R-B", "critical")])),
        ],
    );
    let alerts = wait_for_alerts(&h, &ro, 2).await;
    let (b, a) = (
        alerts[0]["id"].as_str().unwrap().to_owned(),
        alerts[1]["id"].as_str().unwrap().to_owned(),
    );
    let patch = |id: &str, token: &str, body: Value| {
        let path = format!("/api/v1/alerts/{id}");
        let token = token.to_owned();
        let h = &h;
        async move { h.call(Method::PATCH, &path, Some(&token), Some(body)).await }
    };

    let denied = patch(&a, &ro, json!({"status": "acknowledged"})).await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);

    let acked = patch(&a, &dev, json!({"status": "acknowledged", "note": "on it"})).await;
    assert_eq!(acked.status, StatusCode::OK, "{}", acked.text);
    assert_eq!(acked.body["status"], "acknowledged");
    assert_eq!(acked.body["status_changed_by"], "user:dev");
    assert_eq!(acked.body["note"], "on it");
    assert!(acked.body["status_changed_at"].is_string());

    let back = patch(&a, &dev, json!({"status": "open"})).await;
    assert_eq!(back.status, StatusCode::CONFLICT);
    assert!(
        back.text.contains("cannot go back to open"),
        "{}",
        back.text
    );

    let resolved = patch(&a, &dev, json!({"status": "resolved"})).await;
    assert_eq!(resolved.status, StatusCode::OK);
    assert_eq!(resolved.body["note"], "on it");
    for next in ["open", "acknowledged", "false_positive"] {
        let reply = patch(&a, &dev, json!({"status": next})).await;
        assert_eq!(reply.status, StatusCode::CONFLICT, "resolved -> {next}");
        assert!(reply.text.contains("closed"), "{}", reply.text);
        assert_eq!(error_code(&reply), "conflict");
    }

    // Open may close directly.
    let fp = patch(&b, &dev, json!({"status": "false_positive"})).await;
    assert_eq!(fp.status, StatusCode::OK);
    assert_eq!(fp.body["status"], "false_positive");

    for bad in [
        json!({"status": "done"}),
        json!({"status": "resolved", "note": "x".repeat(2001)}),
        json!({"status": "resolved", "extra": 1}),
    ] {
        let reply = patch(&b, &dev, bad).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text);
    }
    let missing = patch("nope", &dev, json!({"status": "resolved"})).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);

    let audit = h
        .call(
            Method::GET,
            "/api/v1/audit?action=alert.status",
            Some(&ro),
            None,
        )
        .await;
    assert_eq!(audit.body["entries"].as_array().unwrap().len(), 3);
    assert_eq!(audit.body["entries"][0]["target"], format!("alert:{b}"));
}
