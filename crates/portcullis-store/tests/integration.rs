//! The same store suite against SQLite (temporary file) and PostgreSQL (a fresh
//! schema in the `test` database; `TEST_DATABASE_URL` overrides the address).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed step should stop the test"
)]

use jiff::Timestamp;
use portcullis_core::audit::{AuditDraft, ChainVerifier};
use portcullis_core::model::{KeyScope, ProviderKind, RateLimits};
use portcullis_core::{api_key, MasterKey, Role};
use portcullis_store::*;
use std::future::Future;
use std::sync::Arc;

fn pg_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

fn t(secs: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + secs).unwrap()
}

/// Runs `suite` on both back ends.
async fn on_both<F, Fut>(suite: F)
where
    F: Fn(Arc<dyn Store>) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().unwrap();
    let sqlite = SqliteStore::open(&dir.path().join("test.db"))
        .await
        .unwrap();
    suite(Arc::new(sqlite)).await;

    let schema = format!("pcx_test_{}", uuid::Uuid::now_v7().simple());
    let pg = PgStore::connect(&pg_url(), Some(&schema))
        .await
        .unwrap_or_else(|e| {
            panic!(
                "PostgreSQL at {} is required for store tests (make test starts one): {e}",
                pg_url()
            )
        });
    let pg = Arc::new(pg);
    suite(pg.clone()).await;
    pg.drop_schema(&schema).await.unwrap();
    pg.close().await;
}

fn new_user(name: &str, role: Role) -> NewUser {
    NewUser {
        username: name.into(),
        password_hash: "$argon2id$fake".into(),
        role,
        must_change_password: false,
    }
}

#[tokio::test]
async fn users_sessions_and_roles() {
    on_both(|store| async move {
        let admin = store
            .create_user(new_user("admin", Role::Admin), t(0))
            .await
            .unwrap();
        assert!(matches!(
            store
                .create_user(new_user("admin", Role::ReadOnly), t(1))
                .await,
            Err(StoreError::Conflict(_))
        ));
        let dev = store
            .create_user(new_user("dev", Role::Developer), t(2))
            .await
            .unwrap();
        assert_eq!(store.list_users().await.unwrap().len(), 2);
        assert_eq!(store.count_active_admins().await.unwrap(), 1);

        let (found, hash) = store.user_with_hash("dev").await.unwrap().unwrap();
        assert_eq!(found.role, Role::Developer);
        assert_eq!(hash, "$argon2id$fake");

        let updated = store
            .update_user(
                &dev.id,
                UserPatch {
                    role: Some(Role::Admin),
                    disabled: None,
                },
                t(3),
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(updated.role, Role::Admin);
        assert_eq!(store.count_active_admins().await.unwrap(), 2);
        store
            .update_user(
                &dev.id,
                UserPatch {
                    role: None,
                    disabled: Some(true),
                },
                t(4),
            )
            .await
            .unwrap();
        assert_eq!(store.count_active_admins().await.unwrap(), 1);

        store
            .create_session(
                NewSession {
                    id: "s1".into(),
                    user_id: admin.id.clone(),
                    expires_at: t(100),
                },
                t(5),
            )
            .await
            .unwrap();
        store
            .create_session(
                NewSession {
                    id: "s2".into(),
                    user_id: admin.id.clone(),
                    expires_at: t(100),
                },
                t(5),
            )
            .await
            .unwrap();
        assert!(store.session_active("s1", t(50)).await.unwrap());
        assert!(
            !store.session_active("s1", t(101)).await.unwrap(),
            "expired session"
        );
        assert_eq!(
            store
                .revoke_user_sessions(&admin.id, Some("s2"), t(6))
                .await
                .unwrap(),
            1
        );
        assert!(!store.session_active("s1", t(50)).await.unwrap());
        assert!(store.session_active("s2", t(50)).await.unwrap());
        store.revoke_session("s2", t(7)).await.unwrap();
        assert!(!store.session_active("s2", t(50)).await.unwrap());

        assert!(store
            .set_password(&admin.id, "$argon2id$new", true, t(8))
            .await
            .unwrap());
        let (user, hash) = store.user_with_hash("admin").await.unwrap().unwrap();
        assert_eq!(hash, "$argon2id$new");
        assert!(user.must_change_password);
        assert!(store.delete_user(&dev.id).await.unwrap());
        assert!(store.user(&dev.id).await.unwrap().is_none());
    })
    .await;
}

#[tokio::test]
async fn groups_and_keys() {
    on_both(|store| async move {
        let group = store
            .create_group("team-a", "first team", t(0))
            .await
            .unwrap();
        assert!(matches!(
            store.create_group("team-a", "", t(1)).await,
            Err(StoreError::Conflict(_))
        ));
        let renamed = store
            .update_group(
                &group.id,
                GroupPatch {
                    name: Some("team-b".into()),
                    description: None,
                    rate_limits: None,
                    mcp_tool_allow: None,
                    mcp_tool_deny: None,
                },
                t(2),
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (renamed.name.as_str(), renamed.description.as_str()),
            ("team-b", "first team")
        );
        assert!(renamed.rate_limits.is_unlimited());
        let limited = RateLimits {
            rpm: Some(60),
            tpm: Some(100_000),
        };
        let patch = GroupPatch {
            rate_limits: Some(limited),
            ..GroupPatch::default()
        };
        let renamed = store
            .update_group(&group.id, patch, t(2))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (renamed.name.as_str(), renamed.rate_limits),
            ("team-b", limited)
        );
        // A patch without limits keeps them; one with limits replaces both.
        let patch = GroupPatch {
            description: Some("first team".into()),
            ..GroupPatch::default()
        };
        let same = store
            .update_group(&group.id, patch, t(2))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(same.rate_limits, limited);
        // MCP tool lists: replaced when given, kept otherwise.
        let patch = GroupPatch {
            mcp_tool_allow: Some(vec!["fs__*".into(), "echo".into()]),
            mcp_tool_deny: Some(vec!["fs__write".into()]),
            ..GroupPatch::default()
        };
        let listed = store
            .update_group(&group.id, patch, t(2))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(listed.mcp_tool_allow, ["fs__*", "echo"]);
        assert_eq!(listed.mcp_tool_deny, ["fs__write"]);
        assert_eq!(listed.rate_limits, limited);
        let only_rpm = RateLimits {
            rpm: Some(5),
            tpm: None,
        };
        let patch = GroupPatch {
            rate_limits: Some(only_rpm),
            ..GroupPatch::default()
        };
        let changed = store
            .update_group(&group.id, patch, t(2))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(changed.rate_limits, only_rpm);

        let generated = api_key::generate();
        let key = store
            .create_api_key(
                NewApiKey {
                    name: "ci".into(),
                    group_id: group.id.clone(),
                    prefix: generated.prefix.clone(),
                    key_hash: generated.hash.clone(),
                    scopes: vec![KeyScope::Llm, KeyScope::Admin],
                    expires_at: Some(t(1000)),
                    created_by: "user:admin".into(),
                    rate_limits: RateLimits {
                        rpm: None,
                        tpm: Some(1_000),
                    },
                },
                t(3),
            )
            .await
            .unwrap();
        assert_eq!(key.scopes, vec![KeyScope::Llm, KeyScope::Admin]);
        assert_eq!(key.rate_limits.tpm, Some(1_000));
        let key = store
            .set_api_key_rate_limits(&key.id, only_rpm)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(key.rate_limits, only_rpm);
        assert!(store
            .set_api_key_rate_limits("missing", only_rpm)
            .await
            .unwrap()
            .is_none());
        let (by_prefix, digest) = store
            .api_key_by_prefix(&generated.prefix)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(by_prefix.id, key.id);
        assert!(api_key::matches(&generated.plaintext, &digest));
        assert_eq!(store.list_api_keys(Some(&group.id)).await.unwrap().len(), 1);
        assert_eq!(store.list_api_keys(Some("nope")).await.unwrap().len(), 0);

        // A group with keys cannot be deleted.
        assert!(matches!(
            store.delete_group(&group.id).await,
            Err(StoreError::Conflict(_))
        ));
        // A key for a missing group is refused.
        let orphan = api_key::generate();
        let refused = store
            .create_api_key(
                NewApiKey {
                    name: "x".into(),
                    group_id: "missing".into(),
                    prefix: orphan.prefix,
                    key_hash: orphan.hash,
                    scopes: vec![KeyScope::Llm],
                    expires_at: None,
                    created_by: "t".into(),
                    rate_limits: RateLimits::default(),
                },
                t(4),
            )
            .await;
        assert!(
            matches!(refused, Err(StoreError::Conflict(_))),
            "{refused:?}"
        );

        store.touch_api_key(&key.id, t(5)).await.unwrap();
        let revoked = store.revoke_api_key(&key.id, t(6)).await.unwrap().unwrap();
        assert_eq!(revoked.last_used_at, Some(t(5)));
        assert_eq!(revoked.revoked_at, Some(t(6)));
        assert!(!revoked.is_usable_at(t(7)));
    })
    .await;
}

#[tokio::test]
async fn credentials_are_stored_sealed_and_resealed() {
    on_both(|store| async move {
        let key = MasterKey::generate();
        let id = portcullis_core::id::new_id();
        let sealed = key.seal("sk-test-PLAINTEXT-0001", &id);
        let cred = store
            .create_credential(
                NewCredential {
                    id: id.clone(),
                    name: "openai".into(),
                    provider: ProviderKind::Openai,
                    hint: "sk-...0001".into(),
                    sealed,
                    master_key_id: key.id().into(),
                },
                t(0),
            )
            .await
            .unwrap();
        assert_eq!(cred.hint, "sk-...0001");
        let stored = store.sealed_credentials().await.unwrap();
        assert_eq!(stored.len(), 1);
        assert!(!stored[0].sealed.contains("PLAINTEXT"));
        assert_eq!(
            key.open(&stored[0].sealed, &id).unwrap().expose(),
            "sk-test-PLAINTEXT-0001"
        );

        let next = MasterKey::generate();
        let resealed = stored
            .iter()
            .map(|c| SealedCredential {
                id: c.id.clone(),
                sealed: next.seal(key.open(&c.sealed, &c.id).unwrap().expose(), &c.id),
            })
            .collect();
        store
            .reseal_credentials(resealed, next.id(), t(1))
            .await
            .unwrap();
        let after = store.sealed_credentials().await.unwrap();
        assert_eq!(
            next.open(&after[0].sealed, &id).unwrap().expose(),
            "sk-test-PLAINTEXT-0001"
        );
        assert_eq!(
            store.credential(&id).await.unwrap().unwrap().master_key_id,
            next.id()
        );
        assert!(store.delete_credential(&id).await.unwrap());
    })
    .await;
}

#[tokio::test]
async fn audit_chain_appends_filters_and_verifies() {
    on_both(|store| async move {
        // Concurrent appends must still form one chain.
        let mut tasks = Vec::new();
        for i in 0..20 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let action = if i % 2 == 0 {
                    "group.create"
                } else {
                    "key.create"
                };
                store
                    .append_audit(
                        AuditDraft::new("user:admin", action, format!("t:{i}")),
                        t(i),
                    )
                    .await
                    .unwrap();
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        let rows = store.audit_chain(0, 1000).await.unwrap();
        assert_eq!(rows.len(), 20);
        let mut verifier = ChainVerifier::default();
        for row in &rows {
            verifier.check(row).unwrap();
        }

        let groups = store
            .list_audit(&AuditFilter {
                action: Some("group.".into()),
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(groups.len(), 10);
        assert!(groups.windows(2).all(|w| w[0].id > w[1].id), "newest first");
        let page = store
            .list_audit(&AuditFilter {
                limit: 5,
                ..Default::default()
            })
            .await
            .unwrap();
        let next = store
            .list_audit(&AuditFilter {
                limit: 5,
                before_id: Some(page[4].id),
                ..Default::default()
            })
            .await
            .unwrap();
        assert!(next[0].id < page[4].id);
        let exact = store
            .list_audit(&AuditFilter {
                action: Some("key.create".into()),
                target: Some("t:3".into()),
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(exact.len(), 1);
        let none = store
            .list_audit(&AuditFilter {
                action: Some("group%".into()),
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap();
        assert!(none.is_empty(), "LIKE wildcards in the filter are literal");
    })
    .await;
}

fn spec(name: &str, port: Option<u16>) -> portcullis_core::proxy::ProxySpec {
    serde_json::from_value(serde_json::json!({
        "name": name, "provider": "openai", "upstream_url": "http://127.0.0.1:9", "listen_port": port, "policies": ["llm-standard-security"]
    }))
    .unwrap()
}

fn event(i: u16, proxy: &str, group: &str, model: &str) -> portcullis_core::proxy::ProxyEvent {
    portcullis_core::proxy::ProxyEvent {
        id: portcullis_core::id::new_id(),
        at: t(i64::from(i)),
        proxy_id: proxy.into(),
        proxy_name: "p".into(),
        endpoint: "chat_completions".into(),
        key_id: Some("k".into()),
        group_id: Some(group.into()),
        end_user: None,
        model: Some(model.into()),
        status: if i.is_multiple_of(5) { 502 } else { 200 },
        decision: portcullis_core::proxy::Decision::Allowed,
        error: None,
        stream: i.is_multiple_of(2),
        latency_us: 1000 + u64::from(i),
        ttft_us: Some(500),
        overhead_us: 80,
        input_tokens: 10,
        output_tokens: 5,
        cached_tokens: 0,
        request_bytes: 100,
        response_bytes: 200,
        findings: serde_json::json!([]),
        cost_usd: Some(0.25),
    }
}

#[tokio::test]
async fn proxies_and_events() {
    use portcullis_core::proxy::ManagedBy;
    on_both(|store| async move {
        let p = store
            .create_proxy(&spec("alpha", Some(18123)), ManagedBy::Api, t(0))
            .await
            .unwrap();
        assert_eq!(p.spec.policies, vec!["llm-standard-security".to_owned()]);
        assert_eq!(p.spec.listen_port, Some(18123));
        assert!(matches!(
            store
                .create_proxy(&spec("alpha", None), ManagedBy::Api, t(1))
                .await,
            Err(StoreError::Conflict(_))
        ));
        assert!(
            matches!(
                store
                    .create_proxy(&spec("beta", Some(18123)), ManagedBy::Api, t(1))
                    .await,
                Err(StoreError::Conflict(_))
            ),
            "ports are unique"
        );
        let mut changed = p.spec.clone();
        changed.auto_start = true;
        changed.listen_port = None;
        let updated = store
            .update_proxy(&p.id, &changed, t(2))
            .await
            .unwrap()
            .unwrap();
        assert!(updated.spec.auto_start && updated.spec.listen_port.is_none());
        assert_eq!(
            store.proxy_by_name("alpha").await.unwrap().unwrap().id,
            p.id
        );

        let batch: Vec<_> = (0..30)
            .map(|i| {
                event(
                    i,
                    &p.id,
                    if i < 10 { "g1" } else { "g2" },
                    if i % 3 == 0 { "gpt-4o" } else { "gpt-4o-mini" },
                )
            })
            .collect();
        store.insert_events(&batch, None).await.unwrap();
        store.insert_events(&batch[..2], None).await.unwrap(); // replays are ignored
        let all = store
            .list_events(&EventFilter {
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(all.len(), 30);
        assert!(all.windows(2).all(|w| w[0].id > w[1].id));
        let g1 = store
            .list_events(&EventFilter {
                group_id: Some("g1".into()),
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(g1.len(), 10);
        let errors = store
            .list_events(&EventFilter {
                status: Some(502),
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(errors.len(), 6);
        let gpt4o = store
            .list_events(&EventFilter {
                model: Some("gpt-4o".into()),
                since: Some(t(10)),
                until: Some(t(20)),
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(gpt4o.len(), 3, "12, 15 and 18");
        let page = store
            .list_events(&EventFilter {
                limit: 7,
                ..Default::default()
            })
            .await
            .unwrap();
        let next = store
            .list_events(&EventFilter {
                limit: 100,
                before_id: Some(page[6].id.clone()),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(page.len() + next.len(), 30);
        assert_eq!(all[0].findings, serde_json::json!([]));
        assert!(store.delete_proxy(&p.id).await.unwrap());
    })
    .await;
}

fn new_policy(name: &str, rules: u32) -> NewPolicy {
    NewPolicy {
        name: name.into(),
        description: format!("{name} pack"),
        rule_count: rules,
        pack: format!(r#"{{"name":"{name}","rules":[]}}"#),
    }
}

#[tokio::test]
async fn policies_create_update_delete() {
    on_both(|store| async move {
        let a = store
            .create_policy(new_policy("team-a", 2), t(0))
            .await
            .unwrap();
        assert_eq!((a.rule_count, a.created_at, a.updated_at), (2, t(0), t(0)));
        assert!(matches!(
            store.create_policy(new_policy("team-a", 1), t(1)).await,
            Err(StoreError::Conflict(_))
        ));
        store
            .create_policy(new_policy("alpha", 1), t(1))
            .await
            .unwrap();
        let names: Vec<String> = store
            .list_policies()
            .await
            .unwrap()
            .into_iter()
            .map(|p| p.name)
            .collect();
        assert_eq!(names, ["alpha", "team-a"]);

        let mut changed = new_policy("team-a", 5);
        changed.description = "changed".into();
        let updated = store.update_policy(changed, t(9)).await.unwrap().unwrap();
        assert_eq!(
            (updated.rule_count, updated.description.as_str()),
            (5, "changed")
        );
        assert_eq!((updated.created_at, updated.updated_at), (t(0), t(9)));
        assert!(store
            .update_policy(new_policy("nope", 1), t(9))
            .await
            .unwrap()
            .is_none());
        assert!(store.policy("nope").await.unwrap().is_none());

        assert!(store.delete_policy("team-a").await.unwrap());
        assert!(!store.delete_policy("team-a").await.unwrap());
        assert!(store.policy("team-a").await.unwrap().is_none());
    })
    .await;
}

fn finding(rule: &str, severity: &str, location: &str) -> serde_json::Value {
    serde_json::json!({"rule": rule, "category": "secrets", "severity": severity, "action": "block", "location": location})
}

#[tokio::test]
async fn alerts_raised_from_findings_filtered_and_reviewed() {
    use portcullis_core::alert::{AlertStatus, Severity};
    on_both(|store| async move {
        let mut batch: Vec<_> = (0..6).map(|i| event(i, "px1", "g", "m")).collect();
        batch[0].findings = serde_json::json!([
            finding("R-CRIT", "critical", "request"),
            finding("R-LOW", "low", "request"),
            finding("R-CRIT", "critical", "request"), // twice in one event: one alert
            finding("R-CRIT", "critical", "tool_call"),
        ]);
        batch[1].findings = serde_json::json!([finding("R-HIGH", "high", "request")]);
        batch[2].findings = serde_json::json!([finding("R-MED", "medium", "response")]);
        batch[3].findings = serde_json::json!([{"rule": "R-BAD", "severity": "severe"}]);
        batch[4].proxy_id = "px2".into();
        batch[4].findings = serde_json::json!([finding("R-HIGH", "high", "request")]);

        let raised = store
            .insert_events(&batch, Some(Severity::High))
            .await
            .unwrap();
        assert_eq!(raised.len(), 4, "{raised:?}");
        // A replayed batch raises nothing more.
        let again = store
            .insert_events(&batch, Some(Severity::High))
            .await
            .unwrap();
        assert!(again.is_empty());
        // No threshold, no alerts.
        let quiet = vec![event(9, "px1", "g", "m")];
        let mut quiet = quiet;
        quiet[0].findings = serde_json::json!([finding("R-CRIT", "critical", "request")]);
        assert!(store.insert_events(&quiet, None).await.unwrap().is_empty());
        // Events without findings are stored (without asking which are new).
        let plain = vec![event(10, "px3", "g", "m")];
        assert!(store
            .insert_events(&plain, Some(Severity::High))
            .await
            .unwrap()
            .is_empty());
        let stored = store
            .list_events(&EventFilter {
                proxy_id: Some("px3".into()),
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(stored.len(), 1, "{stored:?}");

        let list = |f: AlertFilter| {
            let store = store.clone();
            async move {
                store
                    .list_alerts(&AlertFilter { limit: 100, ..f })
                    .await
                    .unwrap()
            }
        };
        let all = list(AlertFilter::default()).await;
        assert_eq!(all.len(), 4);
        assert!(all.windows(2).all(|w| w[0].id > w[1].id), "newest first");
        assert!(all.windows(2).all(|w| w[0].created_at >= w[1].created_at));
        assert_eq!(all[0].rule, "R-HIGH");
        assert_eq!(all[0].proxy_id, "px2");
        assert_eq!(all[0].created_at, batch[4].at);
        assert_eq!(all[0].event_id, batch[4].id);
        assert_eq!(all[0].status, AlertStatus::Open);
        assert_eq!(all[0].key_id.as_deref(), Some("k"));

        let critical = list(AlertFilter {
            min_severity: Some(Severity::Critical),
            ..Default::default()
        })
        .await;
        assert_eq!(critical.len(), 2);
        assert!(critical.iter().all(|a| a.rule == "R-CRIT"));
        let px2 = list(AlertFilter {
            proxy_id: Some("px2".into()),
            ..Default::default()
        })
        .await;
        assert_eq!(px2.len(), 1);
        let by_rule = list(AlertFilter {
            rule: Some("R-HIGH".into()),
            since: Some(t(1)),
            until: Some(t(2)),
            ..Default::default()
        })
        .await;
        assert_eq!(by_rule.len(), 1);
        assert_eq!(by_rule[0].event_id, batch[1].id);
        let page = list(AlertFilter {
            limit: 3,
            ..Default::default()
        })
        .await;
        let page = &page[..3.min(page.len())];
        let rest = list(AlertFilter {
            before_id: Some(page[2].id.clone()),
            ..Default::default()
        })
        .await;
        assert_eq!(page.len() + rest.len(), 4);

        let id = all[0].id.clone();
        let acked = store
            .change_alert_status(
                &id,
                AlertChange {
                    from: AlertStatus::Open,
                    to: AlertStatus::Acknowledged,
                    by: "alice".into(),
                    note: Some("looking".into()),
                },
                t(100),
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(acked.status, AlertStatus::Acknowledged);
        assert_eq!(acked.status_changed_by.as_deref(), Some("alice"));
        assert_eq!(acked.status_changed_at, Some(t(100)));
        assert_eq!(acked.note.as_deref(), Some("looking"));
        // A change based on a stale status is refused.
        let stale = store
            .change_alert_status(
                &id,
                AlertChange {
                    from: AlertStatus::Open,
                    to: AlertStatus::Resolved,
                    by: "bob".into(),
                    note: None,
                },
                t(101),
            )
            .await;
        assert!(matches!(stale, Err(StoreError::Conflict(_))), "{stale:?}");
        let resolved = store
            .change_alert_status(
                &id,
                AlertChange {
                    from: AlertStatus::Acknowledged,
                    to: AlertStatus::Resolved,
                    by: "bob".into(),
                    note: None,
                },
                t(102),
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(resolved.status, AlertStatus::Resolved);
        assert_eq!(
            resolved.note.as_deref(),
            Some("looking"),
            "kept when not given"
        );
        let open = list(AlertFilter {
            status: Some(AlertStatus::Open),
            ..Default::default()
        })
        .await;
        assert_eq!(open.len(), 3);
        assert!(store
            .change_alert_status(
                "no-such-alert",
                AlertChange {
                    from: AlertStatus::Open,
                    to: AlertStatus::Resolved,
                    by: "bob".into(),
                    note: None,
                },
                t(103),
            )
            .await
            .unwrap()
            .is_none());
    })
    .await;
}

fn new_prompt(name: &str, content: &str) -> NewSystemPrompt {
    NewSystemPrompt {
        name: name.into(),
        description: format!("{name} prompt"),
        content: content.into(),
    }
}

fn binding(target: BindingTarget, target_id: &str, priority: i64) -> PromptBinding {
    PromptBinding {
        template_id: String::new(),
        target,
        target_id: target_id.into(),
        priority,
    }
}

#[tokio::test]
async fn system_prompts_and_bindings() {
    use portcullis_core::proxy::ManagedBy;
    on_both(|store| async move {
        let a = store
            .create_system_prompt(new_prompt("base", "Hi {{user}}"), t(0))
            .await
            .unwrap();
        assert_eq!(
            (
                a.name.as_str(),
                a.content.as_str(),
                a.created_at,
                a.updated_at
            ),
            ("base", "Hi {{user}}", t(0), t(0))
        );
        assert!(matches!(
            store
                .create_system_prompt(new_prompt("base", "again"), t(1))
                .await,
            Err(StoreError::Conflict(_))
        ));
        let b = store
            .create_system_prompt(new_prompt("alpha", "A"), t(1))
            .await
            .unwrap();
        let names: Vec<String> = store
            .list_system_prompts()
            .await
            .unwrap()
            .into_iter()
            .map(|p| p.name)
            .collect();
        assert_eq!(names, ["alpha", "base"]);

        // Update: content and name change, the other name is taken.
        let updated = store
            .update_system_prompt(&a.id, new_prompt("base-2", "Hello"), t(5))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (
                updated.name.as_str(),
                updated.content.as_str(),
                updated.created_at,
                updated.updated_at
            ),
            ("base-2", "Hello", t(0), t(5))
        );
        assert!(matches!(
            store
                .update_system_prompt(&a.id, new_prompt("alpha", "x"), t(6))
                .await,
            Err(StoreError::Conflict(_))
        ));
        assert!(store
            .update_system_prompt("nope", new_prompt("n", "x"), t(6))
            .await
            .unwrap()
            .is_none());

        // Bindings: replaced as a whole, listed highest priority first.
        let group = store.create_group("team", "", t(0)).await.unwrap();
        let proxy = store
            .create_proxy(&spec("edge", None), ManagedBy::Api, t(0))
            .await
            .unwrap();
        let stored = store
            .set_prompt_bindings(
                &a.id,
                &[
                    binding(BindingTarget::Proxy, &proxy.id, 1),
                    binding(BindingTarget::Group, &group.id, 5),
                    binding(BindingTarget::Proxy, "other-proxy", 9),
                ],
            )
            .await
            .unwrap();
        assert_eq!(stored.len(), 3);
        assert!(stored.iter().all(|s| s.template_id == a.id));
        assert_eq!(stored[0].target, BindingTarget::Group);
        assert_eq!(
            (stored[1].target_id.as_str(), stored[1].priority),
            ("other-proxy", 9)
        );
        assert!(matches!(
            store
                .set_prompt_bindings(
                    &a.id,
                    &[
                        binding(BindingTarget::Group, &group.id, 1),
                        binding(BindingTarget::Group, &group.id, 2),
                    ],
                )
                .await,
            Err(StoreError::Conflict(_))
        ));
        // The failed replacement changed nothing.
        assert_eq!(
            store.list_prompt_bindings(Some(&a.id)).await.unwrap(),
            stored
        );
        store
            .set_prompt_bindings(&b.id, &[binding(BindingTarget::Group, &group.id, 3)])
            .await
            .unwrap();
        assert_eq!(store.list_prompt_bindings(None).await.unwrap().len(), 4);
        // Bindings to a template that does not exist are refused.
        assert!(store
            .set_prompt_bindings("nope", &[binding(BindingTarget::Group, &group.id, 3)])
            .await
            .is_err());

        // Deleting a proxy or group removes the bindings to it.
        assert!(store.delete_proxy(&proxy.id).await.unwrap());
        assert_eq!(
            store.list_prompt_bindings(Some(&a.id)).await.unwrap().len(),
            2
        );
        assert!(store.delete_group(&group.id).await.unwrap());
        let left = store.list_prompt_bindings(None).await.unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].target_id, "other-proxy");

        // Deleting a template removes its bindings.
        assert!(store.delete_system_prompt(&a.id).await.unwrap());
        assert!(!store.delete_system_prompt(&a.id).await.unwrap());
        assert!(store.system_prompt(&a.id).await.unwrap().is_none());
        assert!(store.list_prompt_bindings(None).await.unwrap().is_empty());
        // Emptying a template's bindings.
        store
            .set_prompt_bindings(&b.id, &[binding(BindingTarget::Proxy, "p", 0)])
            .await
            .unwrap();
        assert!(store
            .set_prompt_bindings(&b.id, &[])
            .await
            .unwrap()
            .is_empty());
    })
    .await;
}

#[tokio::test]
async fn prices_budgets_spend_and_usage() {
    use portcullis_core::budget::{BudgetScope, Enforcement};
    use portcullis_core::pricing::{Price, PriceOverride};
    on_both(|store| async move {
        // Operator prices: upsert, list, delete.
        let price = PriceOverride {
            model: "house-model".into(),
            provider: "custom".into(),
            price: Price::new(1.0, 2.0, 0.5),
        };
        store.put_price(&price, t(0)).await.unwrap();
        let mut changed = price.clone();
        changed.price.output = 3.0;
        store.put_price(&changed, t(1)).await.unwrap();
        assert_eq!(store.price_overrides().await.unwrap(), vec![changed]);
        assert!(store.delete_price("house-model").await.unwrap());
        assert!(!store.delete_price("house-model").await.unwrap());

        // Budgets: one per (scope, target); patch; reset history.
        let new = NewBudget {
            scope: BudgetScope::Group,
            target_id: "g1".into(),
            limit_usd: 10.0,
            warn_percent: 80,
            enforcement: Enforcement::Block,
            timezone: "UTC".into(),
        };
        let b = store.create_budget(new.clone(), t(0)).await.unwrap();
        assert!(matches!(
            store.create_budget(new.clone(), t(0)).await,
            Err(StoreError::Conflict(_))
        ));
        let key_budget = store
            .create_budget(
                NewBudget {
                    scope: BudgetScope::Key,
                    ..new.clone()
                },
                t(0),
            )
            .await
            .unwrap();
        let patched = store
            .update_budget(
                &b.id,
                BudgetPatch {
                    limit_usd: Some(20.0),
                    enforcement: Some(Enforcement::Warn),
                    ..Default::default()
                },
                t(5),
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (patched.limit_usd, patched.enforcement, patched.warn_percent),
            (20.0, Enforcement::Warn, 80)
        );
        assert!(patched.reset_at.is_none());
        let reset = store
            .reset_budget(&b.id, "admin", t(7))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(reset.reset_at, Some(t(7)));
        assert_eq!(store.budget_resets(&b.id).await.unwrap(), vec![t(7)]);
        assert!(store
            .reset_budget("nope", "admin", t(8))
            .await
            .unwrap()
            .is_none());
        assert_eq!(store.list_budgets().await.unwrap().len(), 2);
        assert!(store.delete_budget(&key_budget.id).await.unwrap());
        assert!(store.budget(&key_budget.id).await.unwrap().is_none());

        // Spend and usage from event costs: 10 events at $0.25, one unpriced.
        let mut events: Vec<_> = (0..10).map(|i| event(i, "p1", "g1", "gpt-4o")).collect();
        events.push(portcullis_core::proxy::ProxyEvent {
            cost_usd: None,
            model: Some("mystery".into()),
            ..event(20, "p1", "g2", "mystery")
        });
        store.insert_events(&events, None).await.unwrap();
        let spent = store
            .spent_usd(BudgetScope::Group, "g1", t(0), t(100))
            .await
            .unwrap();
        assert!((spent - 2.5).abs() < 1e-9, "{spent}");
        let spent = store
            .spent_usd(BudgetScope::Group, "g1", t(5), t(100))
            .await
            .unwrap();
        assert!((spent - 1.25).abs() < 1e-9, "window: {spent}");
        assert_eq!(
            store
                .spent_usd(BudgetScope::Key, "nobody", t(0), t(100))
                .await
                .unwrap(),
            0.0
        );

        let by_group = store
            .usage(&UsageQuery {
                group_by: vec![UsageDim::Group, UsageDim::Model],
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(by_group.len(), 2);
        let g1 = by_group
            .iter()
            .find(|r| r.group_id.as_deref() == Some("g1"))
            .unwrap();
        assert_eq!(
            (g1.requests, g1.input_tokens, g1.output_tokens),
            (10, 100, 50)
        );
        assert!((g1.cost_usd - 2.5).abs() < 1e-9);
        assert_eq!(g1.model.as_deref(), Some("gpt-4o"));
        assert!(g1.key_id.is_none() && g1.bucket.is_none());
        let g2 = by_group
            .iter()
            .find(|r| r.group_id.as_deref() == Some("g2"))
            .unwrap();
        assert_eq!(g2.unpriced_requests, 1);

        let by_day = store
            .usage(&UsageQuery {
                group_by: vec![UsageDim::Day],
                group_id: Some("g1".into()),
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(by_day.len(), 1);
        let day = by_day[0].bucket.unwrap();
        assert_eq!(day.as_second() % 86_400, 0);
        assert!(day <= t(0));
        let total = store
            .usage(&UsageQuery {
                since: Some(t(5)),
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(total.len(), 1);
        assert_eq!(total[0].requests, 6);
        let by_hour = store
            .usage(&UsageQuery {
                group_by: vec![UsageDim::Hour, UsageDim::Proxy, UsageDim::Key],
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap();
        assert!(by_hour
            .iter()
            .all(|r| r.proxy.as_deref() == Some("p") && r.key_id.is_some()));

        // Budget alerts: raised once per (event id, rule, location).
        let alert = portcullis_core::alert::Alert {
            id: portcullis_core::id::new_id(),
            created_at: t(9),
            event_id: format!("budget:{}:{}", b.id, 0),
            proxy_id: "p1".into(),
            proxy_name: "p".into(),
            rule: "BUDGET-WARNING".into(),
            category: "budget".into(),
            severity: portcullis_core::alert::Severity::Medium,
            action: "warn".into(),
            location: "budget".into(),
            key_id: None,
            group_id: Some("g1".into()),
            status: portcullis_core::alert::AlertStatus::Open,
            status_changed_at: None,
            status_changed_by: None,
            note: Some("80% of $20.00".into()),
        };
        assert!(store.raise_alert(&alert).await.unwrap());
        let again = portcullis_core::alert::Alert {
            id: portcullis_core::id::new_id(),
            ..alert.clone()
        };
        assert!(!store.raise_alert(&again).await.unwrap());
        let stored = store.alert(&alert.id).await.unwrap().unwrap();
        assert_eq!(stored.note.as_deref(), Some("80% of $20.00"));
    })
    .await;
}

#[tokio::test]
async fn mcp_tool_inventory() {
    use portcullis_core::mcp::{McpTool, ToolStatus};
    use portcullis_core::proxy::ManagedBy;
    on_both(|s| async move {
        let mut mcp_spec = spec("tools", None);
        mcp_spec.kind = portcullis_core::proxy::ProxyKind::Mcp;
        mcp_spec.mcp_auto_approve = true;
        let proxy = s
            .create_proxy(&mcp_spec, ManagedBy::Api, t(0))
            .await
            .unwrap();
        assert_eq!(proxy.spec.kind, portcullis_core::proxy::ProxyKind::Mcp);
        assert!(proxy.spec.mcp_auto_approve);
        assert_eq!(proxy.spec.upstream_command, None);

        // Tool access lists and per-tool rate limits round-trip.
        let mut limited = proxy.spec.clone();
        limited.mcp_tool_allow = vec!["fs__*".into()];
        limited.mcp_tool_deny = vec!["fs__write".into()];
        limited.mcp_tool_rate_limits = [("fs__read".to_owned(), 2)].into();
        // So do toxic-flow labels and rules (absent rules stay absent: the defaults).
        use portcullis_core::flow::{FlowAction, FlowRule, ToolLabel};
        limited.mcp_tool_labels = [("web__*".to_owned(), vec![ToolLabel::UntrustedSource])].into();
        let with_rules = portcullis_core::proxy::ProxySpec {
            mcp_flow_rules: Some(vec![FlowRule {
                after: vec![ToolLabel::PrivateData],
                call: ToolLabel::ExternalSink,
                action: FlowAction::Alert,
            }]),
            ..limited.clone()
        };
        assert_eq!(limited.mcp_flow_rules, None);
        for spec in [limited, with_rules] {
            let updated = s.update_proxy(&proxy.id, &spec, t(1)).await.unwrap();
            assert_eq!(updated.map(|p| p.spec), Some(spec));
        }

        // A stdio server's command, arguments and environment round-trip.
        let mut stdio = spec("local", None);
        stdio.kind = portcullis_core::proxy::ProxyKind::Mcp;
        stdio.upstream_url = "stdio:".into();
        stdio.upstream_command = Some("python3".into());
        stdio.upstream_args = vec!["server.py".into(), "--flag".into()];
        stdio.upstream_env = [("TOKEN".to_owned(), "v".to_owned())].into();
        let local = s.create_proxy(&stdio, ManagedBy::Api, t(0)).await.unwrap();
        assert_eq!(local.spec, stdio);
        stdio.upstream_args.clear();
        let updated = s
            .update_proxy(&local.id, &stdio, t(1))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(updated.spec, stdio);
        let mut federation = spec("fed", None);
        federation.kind = portcullis_core::proxy::ProxyKind::Mcp;
        federation.upstream_url = String::new();
        federation.mcp_servers = vec![portcullis_core::proxy::McpServer {
            name: "math".into(),
            upstream_url: "http://127.0.0.1:1/mcp".into(),
            credential_id: None,
        }];
        federation.mcp_separator = Some(".".into());
        federation.mcp_prefix_mode = Some("on_collision".into());
        let fed = s
            .create_proxy(&federation, ManagedBy::Api, t(0))
            .await
            .unwrap();
        assert_eq!(fed.spec, federation);
        federation.mcp_prefix_mode = None;
        let updated = s
            .update_proxy(&fed.id, &federation, t(1))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(updated.spec, federation);
        let tool = McpTool {
            id: portcullis_core::id::new_id(),
            proxy_id: proxy.id.clone(),
            server: String::new(),
            name: "add".into(),
            definition: serde_json::json!({"name": "add", "description": "Adds."}),
            hash: "h1".into(),
            status: ToolStatus::Pending,
            approved_hash: None,
            approved_definition: None,
            flagged_rules: vec![],
            first_seen_at: t(1),
            last_seen_at: t(1),
            approved_by: None,
            approved_at: None,
            status_changed_at: t(1),
        };
        assert!(s.insert_mcp_tool(&tool).await.unwrap());
        // A second replica inserting the same name changes nothing.
        let twin = McpTool {
            id: portcullis_core::id::new_id(),
            ..tool.clone()
        };
        assert!(!s.insert_mcp_tool(&twin).await.unwrap());
        assert_eq!(s.mcp_tool(&tool.id).await.unwrap().unwrap(), tool);
        // The same name on a federation member is another tool.
        let member = McpTool {
            id: portcullis_core::id::new_id(),
            server: "math".into(),
            ..tool.clone()
        };
        assert!(s.insert_mcp_tool(&member).await.unwrap());
        assert_eq!(
            s.mcp_tool_named(&proxy.id, "math", "add")
                .await
                .unwrap()
                .map(|t| t.id),
            Some(member.id.clone())
        );
        assert!(s
            .mcp_tool_named(&proxy.id, "docs", "add")
            .await
            .unwrap()
            .is_none());

        // Approval is for the stored hash only.
        assert!(!s
            .approve_mcp_tool(&tool.id, "other", "user:a", t(2))
            .await
            .unwrap());
        assert!(s
            .approve_mcp_tool(&tool.id, "h1", "user:a", t(2))
            .await
            .unwrap());
        let approved = s
            .mcp_tool_named(&proxy.id, "", "add")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(approved.status, ToolStatus::Approved);
        assert_eq!(approved.approved_hash.as_deref(), Some("h1"));
        assert_eq!(approved.approved_definition, Some(tool.definition.clone()));
        assert_eq!(approved.approved_by.as_deref(), Some("user:a"));
        assert_eq!(approved.approved_at, Some(t(2)));

        // A new definition is recorded; the approved one stays.
        let rules = vec!["MCP-001".to_owned()];
        s.record_mcp_tool(
            &tool.id,
            &ToolSighting {
                definition: r#"{"name":"add","description":"Adds. <IMPORTANT>"}"#,
                hash: "h2",
                status: ToolStatus::Quarantined,
                flagged_rules: &rules,
            },
            t(3),
        )
        .await
        .unwrap();
        let changed = s.mcp_tool(&tool.id).await.unwrap().unwrap();
        assert_eq!(changed.status, ToolStatus::Quarantined);
        assert_eq!(changed.hash, "h2");
        assert_eq!(changed.approved_hash.as_deref(), Some("h1"));
        assert_eq!(changed.flagged_rules, rules);
        assert_eq!(changed.status_changed_at, t(3));
        assert_eq!(changed.last_seen_at, t(3));
        assert_eq!(changed.first_seen_at, t(1));

        assert!(s
            .set_mcp_tool_status(&tool.id, ToolStatus::Disabled, t(4))
            .await
            .unwrap());
        assert!(!s
            .set_mcp_tool_status("nope", ToolStatus::Disabled, t(4))
            .await
            .unwrap());
        let filter = |status| McpToolFilter {
            proxy_id: Some(proxy.id.clone()),
            status,
            limit: 10,
        };
        assert_eq!(
            s.list_mcp_tools(&filter(Some(ToolStatus::Disabled)))
                .await
                .unwrap()
                .len(),
            1
        );
        assert!(s
            .list_mcp_tools(&filter(Some(ToolStatus::Approved)))
            .await
            .unwrap()
            .is_empty());
        assert_eq!(s.mcp_tools_of(&proxy.id).await.unwrap().len(), 2);

        // Tools go with their proxy.
        assert!(s.delete_proxy(&proxy.id).await.unwrap());
        assert!(s.mcp_tool(&tool.id).await.unwrap().is_none());
    })
    .await;
}

#[tokio::test]
async fn a2a_agent_registry() {
    use portcullis_store::{
        A2aAgent, AgentCredential, AgentGrant, AgentSettings, AgentStatus, StoreError,
    };
    on_both(|s| async move {
        let agent = A2aAgent {
            id: portcullis_core::id::new_id(),
            name: "echo".into(),
            base_url: Some("http://127.0.0.1:9".into()),
            card: serde_json::json!({"name": "Echo", "skills": []}),
            card_hash: "h1".into(),
            status: AgentStatus::Pending,
            created_at: t(0),
            updated_at: t(0),
            refreshed_at: t(0),
            settings: AgentSettings::default(),
        };
        s.insert_a2a_agent(&agent).await.unwrap();
        let twin = A2aAgent {
            id: portcullis_core::id::new_id(),
            ..agent.clone()
        };
        assert!(matches!(
            s.insert_a2a_agent(&twin).await,
            Err(StoreError::Conflict(_))
        ));
        assert_eq!(s.a2a_agent(&agent.id).await.unwrap(), Some(agent.clone()));
        assert_eq!(
            s.a2a_agent_named("echo").await.unwrap().map(|a| a.id),
            Some(agent.id.clone())
        );
        // Approval is refused when the card changed meanwhile.
        assert!(!s
            .set_a2a_agent_status(&agent.id, AgentStatus::Approved, Some("other"), t(1))
            .await
            .unwrap());
        assert!(s
            .set_a2a_agent_status(&agent.id, AgentStatus::Approved, Some("h1"), t(1))
            .await
            .unwrap());
        let card = serde_json::json!({"name": "Echo", "skills": [{"id": "x", "name": "X"}]});
        assert!(s
            .record_a2a_card(&agent.id, &card, "h2", AgentStatus::Changed, t(2))
            .await
            .unwrap());
        let got = s.a2a_agent(&agent.id).await.unwrap().unwrap();
        assert_eq!(got.status, AgentStatus::Changed);
        assert_eq!(got.card, card);
        assert_eq!(got.card_hash, "h2");
        assert_eq!(got.refreshed_at, t(2));
        assert_eq!(s.list_a2a_agents().await.unwrap().len(), 1);
        // Access, rate limit and credential are replaced together.
        let settings = AgentSettings {
            access: vec![
                AgentGrant {
                    group_id: "g1".into(),
                    skills: None,
                },
                AgentGrant {
                    group_id: "g2".into(),
                    skills: Some(vec!["x".into()]),
                },
            ],
            rate_limit_rpm: Some(30),
            credential: Some(AgentCredential {
                credential_id: "c1".into(),
                header: Some("x-agent-key".into()),
            }),
            policies: Some(vec!["llm-critical-security".into(), "my-pack".into()]),
        };
        assert!(s
            .set_a2a_agent_settings(&agent.id, &settings, t(3))
            .await
            .unwrap());
        let got = s.a2a_agent(&agent.id).await.unwrap().unwrap();
        assert_eq!(got.settings, settings);
        assert_eq!(got.updated_at, t(3));
        assert!(s
            .set_a2a_agent_settings(&agent.id, &AgentSettings::default(), t(4))
            .await
            .unwrap());
        let got = s.a2a_agent(&agent.id).await.unwrap().unwrap();
        assert_eq!(got.settings, AgentSettings::default());
        assert!(!s
            .set_a2a_agent_settings("nope", &settings, t(4))
            .await
            .unwrap());

        // Tasks: owned by the first key, states appended when they change.
        use portcullis_store::{TaskFilter, TaskSighting};
        let seen = |task: &str, key: &str, state: &str, at| TaskSighting {
            agent_id: agent.id.clone(),
            task_id: task.into(),
            context_id: Some("ctx".into()),
            key_id: key.into(),
            group_id: "g1".into(),
            state: state.into(),
            at: t(at),
        };
        s.record_a2a_task(&seen("t1", "k1", "submitted", 10))
            .await
            .unwrap();
        s.record_a2a_task(&seen("t1", "k1", "working", 11))
            .await
            .unwrap();
        s.record_a2a_task(&seen("t1", "k1", "working", 12))
            .await
            .unwrap();
        s.record_a2a_task(&seen("t1", "k2", "completed", 13))
            .await
            .unwrap();
        s.record_a2a_task(&seen("t2", "k2", "failed", 14))
            .await
            .unwrap();
        let t1 = s.a2a_task(&agent.id, "t1").await.unwrap().unwrap();
        assert_eq!(t1.key_id, "k1");
        assert_eq!(t1.state, "completed");
        let states: Vec<_> = t1.history.iter().map(|h| h.state.as_str()).collect();
        assert_eq!(states, ["submitted", "working", "completed"]);
        assert_eq!(t1.history[1].at, t(11));
        assert_eq!((t1.created_at, t1.updated_at), (t(10), t(13)));
        assert!(s.a2a_task(&agent.id, "t3").await.unwrap().is_none());
        let all = TaskFilter {
            limit: 10,
            ..Default::default()
        };
        let ids = |v: Vec<portcullis_store::A2aTask>| {
            v.into_iter().map(|t| t.task_id).collect::<Vec<_>>()
        };
        assert_eq!(ids(s.list_a2a_tasks(&all).await.unwrap()), ["t2", "t1"]);
        let by_key = TaskFilter {
            key_id: Some("k1".into()),
            ..all.clone()
        };
        assert_eq!(ids(s.list_a2a_tasks(&by_key).await.unwrap()), ["t1"]);
        let by_state = TaskFilter {
            state: Some("failed".into()),
            agent_id: Some(agent.id.clone()),
            ..all.clone()
        };
        assert_eq!(ids(s.list_a2a_tasks(&by_state).await.unwrap()), ["t2"]);
        let one = TaskFilter {
            limit: 1,
            ..all.clone()
        };
        assert_eq!(s.list_a2a_tasks(&one).await.unwrap().len(), 1);

        assert!(s.delete_a2a_agent(&agent.id).await.unwrap());
        // Tasks go with their agent.
        assert!(s.list_a2a_tasks(&all).await.unwrap().is_empty());
        assert!(!s.delete_a2a_agent(&agent.id).await.unwrap());
        assert!(s.list_a2a_agents().await.unwrap().is_empty());
    })
    .await;
}

#[tokio::test]
async fn traffic_and_latencies_per_proxy() {
    use portcullis_core::proxy::Decision;
    on_both(|store| async move {
        let mut batch = Vec::new();
        for i in 0..12u16 {
            let mut e = event(i, "busy", "g1", "gpt-4o");
            e.decision = match i % 4 {
                0 => Decision::Error,
                1 => Decision::Blocked,
                _ => Decision::Allowed,
            };
            batch.push(e);
        }
        for i in 0..3u16 {
            batch.push(event(100 + i, "quiet", "g2", "gpt-4o-mini"));
        }
        store.insert_events(&batch, None).await.unwrap();

        let all = store.proxy_traffic(t(0), 100).await.unwrap();
        assert_eq!(
            all,
            vec![
                ProxyTraffic {
                    proxy_id: "busy".into(),
                    requests: 12,
                    errors: 3,
                    blocked: 3,
                    input_tokens: 120,
                    output_tokens: 60,
                },
                ProxyTraffic {
                    proxy_id: "quiet".into(),
                    requests: 3,
                    errors: 0,
                    blocked: 0,
                    input_tokens: 30,
                    output_tokens: 15,
                },
            ],
            "busiest first"
        );
        // The range starts at `since`; the limit keeps the busiest.
        let late = store.proxy_traffic(t(10), 100).await.unwrap();
        assert_eq!(late[0].proxy_id, "quiet");
        assert_eq!(late[1].requests, 2, "events 10 and 11 of busy");
        assert_eq!(store.proxy_traffic(t(0), 1).await.unwrap().len(), 1);

        // Newest first, bounded, of that proxy only, in range.
        let newest = store.recent_latencies("busy", t(0), 5).await.unwrap();
        assert_eq!(newest, vec![1011, 1010, 1009, 1008, 1007]);
        let in_range = store.recent_latencies("busy", t(9), 100).await.unwrap();
        assert_eq!(in_range, vec![1011, 1010, 1009]);
        assert!(store
            .recent_latencies("nobody", t(0), 100)
            .await
            .unwrap()
            .is_empty());
    })
    .await;
}

#[tokio::test]
async fn mcp_scans_stored_listed_and_expired() {
    use portcullis_core::alert::Severity;
    use portcullis_core::mcp::{McpScan, ScanFinding, ScanServerInfo, ScanStatus, SeverityCounts};
    use portcullis_core::proxy::ManagedBy;
    on_both(|s| async move {
        let mut mcp_spec = spec("scanned", None);
        mcp_spec.kind = portcullis_core::proxy::ProxyKind::Mcp;
        let proxy = s
            .create_proxy(&mcp_spec, ManagedBy::Api, t(0))
            .await
            .unwrap();
        let running = |id: String, at: i64| McpScan {
            id,
            proxy_id: proxy.id.clone(),
            server: "docs".into(),
            transport: "streamable_http".into(),
            target: "http://127.0.0.1:8000/mcp".into(),
            requested_by: "user:admin".into(),
            started_at: t(at),
            finished_at: None,
            status: ScanStatus::Running,
            error: None,
            max_severity: None,
            counts: SeverityCounts::default(),
            findings: Vec::new(),
            server_info: ScanServerInfo::default(),
        };
        let first = running(portcullis_core::id::new_id_at(t(1)), 1);
        s.insert_mcp_scan(&first).await.unwrap();
        assert_eq!(s.mcp_scan(&first.id).await.unwrap().unwrap(), first);

        let findings = vec![
            ScanFinding {
                check: "poisoned-description".into(),
                severity: Severity::Critical,
                target: "tool:add".into(),
                message: "the description or schema matches MCP-003 (tool_poisoning)".into(),
                rules: vec!["MCP-003".into()],
            },
            ScanFinding {
                check: "well-known-name".into(),
                severity: Severity::Low,
                target: "tool:read_file".into(),
                message: "well known".into(),
                rules: Vec::new(),
            },
        ];
        let done = McpScan {
            finished_at: Some(t(3)),
            status: ScanStatus::Done,
            max_severity: Some(Severity::Critical),
            counts: SeverityCounts::of(&findings),
            findings,
            server_info: ScanServerInfo {
                name: Some("scan-vulnerable".into()),
                version: Some("1.0".into()),
                protocol_version: Some("2025-11-25".into()),
                tools: 8,
                resources: 2,
                resources_read: 2,
                prompts: 1,
                warnings: vec!["prompts/list: HTTP 500".into()],
            },
            ..first.clone()
        };
        assert!(s.finish_mcp_scan(&done).await.unwrap());
        // Only a running scan finishes.
        assert!(!s.finish_mcp_scan(&done).await.unwrap());
        let read = s.mcp_scan(&first.id).await.unwrap().unwrap();
        assert_eq!(read, done);
        assert_eq!(read.counts.critical, 1);
        assert_eq!(read.counts.low, 1);

        let second = running(portcullis_core::id::new_id_at(t(10)), 10);
        s.insert_mcp_scan(&second).await.unwrap();
        let all = s
            .list_mcp_scans(&McpScanFilter {
                limit: 10,
                ..McpScanFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(
            all.iter().map(|x| x.id.as_str()).collect::<Vec<_>>(),
            [second.id.as_str(), first.id.as_str()]
        );
        let page = s
            .list_mcp_scans(&McpScanFilter {
                proxy_id: Some(proxy.id.clone()),
                before_id: Some(second.id.clone()),
                limit: 10,
            })
            .await
            .unwrap();
        assert_eq!(page.len(), 1);
        assert_eq!(page[0].id, first.id);
        let other = s
            .list_mcp_scans(&McpScanFilter {
                proxy_id: Some("nope".into()),
                limit: 10,
                ..McpScanFilter::default()
            })
            .await
            .unwrap();
        assert!(other.is_empty());

        // A scan left running before the cutoff is failed; a finished one is not touched.
        assert_eq!(s.expire_mcp_scans(t(5), "x", t(20)).await.unwrap(), 0);
        assert_eq!(
            s.expire_mcp_scans(t(11), "interrupted", t(20))
                .await
                .unwrap(),
            1
        );
        let expired = s.mcp_scan(&second.id).await.unwrap().unwrap();
        assert_eq!(expired.status, ScanStatus::Failed);
        assert_eq!(expired.error.as_deref(), Some("interrupted"));
        assert_eq!(expired.finished_at, Some(t(20)));
        assert_eq!(s.mcp_scan(&first.id).await.unwrap().unwrap(), done);

        // Scans go with their proxy.
        assert!(s.delete_proxy(&proxy.id).await.unwrap());
        assert!(s.mcp_scan(&first.id).await.unwrap().is_none());
    })
    .await;
}
