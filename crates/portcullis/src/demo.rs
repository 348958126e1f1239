//! `serve --demo`: a group, a key and an LLM proxy backed by the built-in mock
//! provider, so a newcomer can send a request before owning a provider key.

use anyhow::Result;
use mock_upstream::{MockConfig, MockUpstream};
use portcullis_core::audit::AuditDraft;
use portcullis_core::model::KeyScope;
use portcullis_core::proxy::{ManagedBy, ProxySpec};
use portcullis_core::{api_key, Clock};
use portcullis_store::{DynStore, NewApiKey};
use std::net::SocketAddr;

pub const PROXY: &str = "demo";
const GROUP: &str = "demo";

pub struct Demo {
    /// Kept for the life of the server.
    pub _mock: MockUpstream,
    pub key: String,
}

pub async fn prepare(store: &DynStore, clock: &dyn Clock) -> Result<Demo> {
    let mock =
        MockUpstream::start(SocketAddr::from(([127, 0, 0, 1], 0)), MockConfig::default()).await?;
    let now = clock.now();
    let group = match store
        .list_groups()
        .await?
        .into_iter()
        .find(|g| g.name == GROUP)
    {
        Some(g) => g,
        None => {
            let g = store
                .create_group(GROUP, "Created by serve --demo", now)
                .await?;
            store
                .append_audit(
                    AuditDraft::new("system", "group.create", format!("group:{GROUP}"))
                        .details(serde_json::json!({"demo": true})),
                    now,
                )
                .await?;
            g
        }
    };
    let spec: ProxySpec = serde_json::from_value(serde_json::json!({
        "name": PROXY, "provider": "openai", "upstream_url": mock.base_url(), "auto_start": true,
    }))?;
    match store.proxy_by_name(PROXY).await? {
        // The mock listens on a new port each start.
        Some(existing) => {
            store.update_proxy(&existing.id, &spec, now).await?;
        }
        None => {
            store.create_proxy(&spec, ManagedBy::Api, now).await?;
            store
                .append_audit(
                    AuditDraft::new("system", "proxy.create", format!("proxy:{PROXY}"))
                        .details(serde_json::json!({"demo": true})),
                    now,
                )
                .await?;
        }
    }
    let generated = api_key::generate();
    let key = store
        .create_api_key(
            NewApiKey {
                name: format!("demo-{}", now.as_second()),
                group_id: group.id,
                prefix: generated.prefix.clone(),
                key_hash: generated.hash.clone(),
                scopes: KeyScope::DEFAULT.to_vec(),
                expires_at: None,
                created_by: "system".into(),
                rate_limits: Default::default(),
            },
            now,
        )
        .await?;
    store
        .append_audit(
            AuditDraft::new("system", "key.create", format!("key:{}", key.prefix))
                .details(serde_json::json!({"demo": true})),
            now,
        )
        .await?;
    Ok(Demo {
        _mock: mock,
        key: generated.plaintext,
    })
}
