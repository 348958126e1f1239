//! The gateway's own reaction to `notifications/tools/list_changed`: it lists
//! the server's tools itself, in the session the notification came from, and
//! reconciles its inventory at once. A rug pull is caught (quarantine, alert)
//! when the server announces it, not at the client's next `tools/list`; the
//! notification is still relayed to the client.
//!
//! At most one re-listing per proxy per second (a server repeating the
//! notification cannot make the gateway flood it), at most 20 pages.
//!
//! A stdio server is re-listed before the next client request after it
//! started (a restarted process may bring other tools) or announced a change,
//! so a changed tool is quarantined before anyone can call it.

use super::call::McpCall;
use super::federation::exchange_with;
use super::stdio::StdioServer;
use super::{McpRelay, Target};
use crate::runtime::ProxyRuntime;
use http::header::{HeaderMap, HeaderValue};
use portcullis_core::proxy::Decision;
use portcullis_protocol::mcp::VERSION_HEADER;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const MIN_INTERVAL: Duration = Duration::from_secs(1);
const MAX_PAGES: usize = 20;

/// The session a stream belongs to, as the server knows it.
#[derive(Debug, Clone, Default)]
pub(crate) struct UpstreamSession {
    pub id: Option<String>,
    /// The `MCP-Protocol-Version` the client uses in it.
    pub version: Option<HeaderValue>,
}

impl UpstreamSession {
    pub fn new(id: Option<&str>, client: &HeaderMap) -> Self {
        Self {
            id: id.map(str::to_owned),
            version: client.get(VERSION_HEADER).cloned(),
        }
    }
}

/// When each proxy was last re-listed.
#[derive(Default)]
pub(crate) struct Relisted(Mutex<HashMap<String, Instant>>);

impl Relisted {
    /// Whether `proxy_id` may be re-listed now (and, if so, marks it).
    fn claim(&self, proxy_id: &str) -> bool {
        let mut last = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if last
            .get(proxy_id)
            .is_some_and(|at| now.duration_since(*at) < MIN_INTERVAL)
        {
            return false;
        }
        if last.len() > 10_000 {
            last.retain(|_, at| now.duration_since(*at) < MIN_INTERVAL);
        }
        last.insert(proxy_id.to_owned(), now);
        true
    }
}

/// Whether an SSE event's data is a `notifications/tools/list_changed`.
pub(crate) fn is_tools_list_changed(data: &str) -> bool {
    // The notification is short: large events (results) are not searched.
    data.len() <= 512
        && data.contains("notifications/tools/list_changed")
        && serde_json::from_str::<Value>(data).is_ok_and(|m| {
            m.get("method").and_then(Value::as_str) == Some("notifications/tools/list_changed")
                && m.get("id").is_none()
        })
}

impl McpRelay {
    /// Re-lists `proxy`'s tools in `session` in the background, unless it was
    /// done less than a second ago. Proxies with one HTTP server only.
    pub(crate) fn relist(self: &Arc<Self>, proxy: &Arc<ProxyRuntime>, session: &UpstreamSession) {
        if proxy.mcp_uri.is_none() || proxy.federation.is_some() || !self.relisted.claim(&proxy.id)
        {
            return;
        }
        let (relay, proxy, session) = (self.clone(), proxy.clone(), session.clone());
        tokio::spawn(async move { relay.relist_now(proxy, session).await });
    }

    async fn relist_now(&self, proxy: Arc<ProxyRuntime>, session: UpstreamSession) {
        let mut headers = HeaderMap::new();
        if let Some(v) = &session.version {
            headers.insert(VERSION_HEADER, v.clone());
        }
        let target = Target {
            uri: proxy.mcp_uri.as_ref(),
            credential: proxy.credential_header.as_ref(),
        };
        let listed = list_pages(|request| {
            let (headers, session) = (&headers, session.id.as_deref());
            let proxy = &proxy;
            async move {
                let id = request.get("id").cloned().unwrap_or(Value::Null);
                exchange_with(
                    proxy,
                    target,
                    headers,
                    &[],
                    session,
                    request.to_string().into(),
                    Some(&id),
                )
                .await
                .map_err(|f| f.why)?
                .message
                .ok_or_else(|| "no answer".to_owned())
            }
        })
        .await;
        self.reconcile_listed(&proxy, listed).await;
    }

    /// Re-lists a stdio server's tools if they may have changed, before the
    /// request that is about to use them.
    pub(crate) async fn relist_stdio_if_changed(
        &self,
        proxy: &Arc<ProxyRuntime>,
        server: &StdioServer,
    ) {
        if !server.take_tools_changed().await {
            return;
        }
        let listed =
            list_pages(
                |request| async move { server.call(request).await.map_err(|e| e.to_string()) },
            )
            .await;
        self.reconcile_listed(proxy, listed).await;
    }

    /// Reconciles a listing made by the gateway and records it as an event.
    async fn reconcile_listed(
        &self,
        proxy: &Arc<ProxyRuntime>,
        listed: Result<(Vec<Value>, bool), String>,
    ) {
        let mut call = McpCall::new(proxy.clone(), self.events.clone(), self.clock.now());
        call.endpoint = "mcp:tools/list".into();
        let (tools, whole) = match listed {
            Ok(listed) => listed,
            Err(why) => {
                tracing::info!(proxy = %proxy.name, error = %why, "MCP tools not re-listed");
                call.finish(502, Decision::Error, Some(&why));
                return;
            }
        };
        match self
            .inventory
            .reconcile(proxy, "", &tools, whole, &call.id, None)
            .await
        {
            Ok(listing) => {
                call.findings.extend(listing.findings);
                call.finish(200, Decision::Allowed, Some(RELISTED));
            }
            Err(e) => {
                tracing::error!(proxy = %proxy.name, error = %e, "MCP tool inventory unavailable; re-listing dropped");
                call.finish(
                    503,
                    Decision::Error,
                    Some("the tool inventory is unavailable"),
                );
            }
        }
    }
}

/// The note of the events of the gateway's own listings.
const RELISTED: &str =
    "re-listed by the gateway: the server announced or may have a change of tools";

/// Every page of `tools/list` through `ask` (one JSON-RPC request, its
/// response): the tools and whether that is the server's whole list.
async fn list_pages<F, Fut>(mut ask: F) -> Result<(Vec<Value>, bool), String>
where
    F: FnMut(Value) -> Fut,
    Fut: std::future::Future<Output = Result<Value, String>>,
{
    let mut tools = Vec::new();
    let mut cursor: Option<Value> = None;
    for page in 0..MAX_PAGES {
        let params = cursor
            .take()
            .map_or_else(|| json!({}), |c| json!({"cursor": c}));
        let request = json!({"jsonrpc": "2.0", "id": format!("portcullis-relist-{page}"),
            "method": "tools/list", "params": params});
        let mut answer = ask(request).await?;
        let Some(mut result) = answer.get_mut("result").map(Value::take) else {
            return Err("the server's tools/list answer has no result".into());
        };
        if let Some(Value::Array(listed)) = result.get_mut("tools").map(Value::take) {
            tools.extend(listed);
        }
        match result.get("nextCursor").filter(|c| !c.is_null()) {
            Some(next) => cursor = Some(next.clone()),
            None => return Ok((tools, true)),
        }
    }
    Ok((tools, false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_notification_itself_triggers() {
        assert!(is_tools_list_changed(
            r#"{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}"#
        ));
        assert!(!is_tools_list_changed(
            r#"{"jsonrpc":"2.0","method":"notifications/message","params":{"data":"notifications/tools/list_changed"}}"#
        ));
        assert!(!is_tools_list_changed(
            r#"{"jsonrpc":"2.0","id":1,"method":"notifications/tools/list_changed"}"#
        ));
    }

    #[test]
    fn at_most_once_a_second_per_proxy() {
        let r = Relisted::default();
        assert!(r.claim("a"));
        assert!(!r.claim("a"));
        assert!(r.claim("b"));
    }
}
