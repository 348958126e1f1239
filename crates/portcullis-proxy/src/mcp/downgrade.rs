//! Session clients (2025-03-26 to 2025-11-25) of a server that speaks only the
//! stateless era (2026-07-28): the reverse of [`super::bridge`].
//!
//! ```text
//! initialize ── server probed stateless ── POST server/discover (the client's
//!               capabilities and clientInfo in _meta) ── initialize result built
//!               from it ── the gateway's session id, carrying those _meta entries
//! later requests in that session
//!   ping, logging/setLevel                answered here ({})
//!   notifications/initialized, responses  accepted here (202)
//!   resources/(un)subscribe               -32601: the stateless era has subscriptions/listen
//!   others                                _meta added, headers mirrored, relayed;
//!                                         results stripped of resultType, ttlMs,
//!                                         cacheScope; input_required becomes an error
//! GET (no stream), DELETE (nothing upstream to end): answered here
//! ```

use super::bridge::UpstreamEra;
use super::federation::exchange_with;
use super::{json_response, McpRelay, Refusal, Target};
use crate::keys::Identity;
use crate::runtime::ProxyRuntime;
use axum::body::Body;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Response, StatusCode};
use portcullis_protocol::mcp::jsonrpc::{self, Kind};
use portcullis_protocol::mcp::{era, stateless, VERSION_HEADER};
use serde_json::{json, Value};

/// Most bytes of the client's capabilities and identity carried in its
/// session id; past this they are replaced by an empty declaration (the
/// session id has to stay a header).
const MAX_META_BYTES: usize = 768;

impl McpRelay {
    /// Whether a session client's `initialize` must be answered from a
    /// stateless server's `server/discover` (proxies with one HTTP server).
    pub(super) async fn serves_stateless(&self, proxy: &ProxyRuntime) -> Result<bool, Refusal> {
        if proxy.stdio.is_some() || proxy.federation.is_some() {
            return Ok(false);
        }
        Ok(self.bridge.upstream_era(proxy).await? == UpstreamEra::Stateless)
    }

    /// A session client's `initialize`, answered from the stateless server's
    /// `server/discover`: the JSON-RPC response and the session id to give it.
    pub(super) async fn initialize_from_discover(
        &self,
        proxy: &ProxyRuntime,
        identity: Option<&Identity>,
        message: &Value,
    ) -> Result<(Value, HeaderValue), Refusal> {
        let id = message.get("id").cloned().unwrap_or(Value::Null);
        let params = message.get("params").cloned().unwrap_or_else(|| json!({}));
        let requested = params
            .get("protocolVersion")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let mut meta = era::client_meta(&params);
        if meta.to_string().len() > MAX_META_BYTES {
            meta = era::client_meta(&json!({}));
        }
        let mut discover =
            json!({"jsonrpc": "2.0", "id": "portcullis-discover", "method": "server/discover"});
        era::stateless_request(&mut discover, &meta);
        let answer = exchange(proxy, &discover).await?;
        let result = answer
            .get("result")
            .filter(|r| {
                r.get("supportedVersions")
                    .and_then(Value::as_array)
                    .is_some_and(|v| v.iter().any(|v| v.as_str() == Some(stateless::VERSIONS[0])))
            })
            .ok_or_else(|| {
                Refusal::new(
                    StatusCode::BAD_GATEWAY,
                    jsonrpc::UPSTREAM_ERROR,
                    "the upstream MCP server's server/discover answer names no protocol version the gateway speaks",
                )
            })?;
        let initialized = era::initialize_result(result, requested);
        let version = initialized["protocolVersion"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let session = self.issue_session(proxy, identity, &version, None, Some(meta), false)?;
        Ok((
            json!({"jsonrpc": "2.0", "id": id, "result": initialized}),
            session,
        ))
    }
}

/// What the gateway answers a session client of a stateless server itself.
/// `None`: the message goes to the server.
pub(super) fn answer_locally(kind: &Kind) -> Option<Response<Body>> {
    let (id, method) = match kind {
        Kind::Request { id, method } => (id, method.as_str()),
        Kind::Notification { method } if method == "notifications/cancelled" => return None,
        // Nothing a stateless server reads: `initialized`, roots changes, and
        // responses (it sends no requests).
        Kind::Notification { .. } | Kind::Response { .. } => {
            let mut accepted = Response::new(Body::empty());
            *accepted.status_mut() = StatusCode::ACCEPTED;
            return Some(accepted);
        }
    };
    let answer = match method {
        // The stateless era has no ping; the level is per request there, and
        // this session's requests ask for none.
        "ping" | "logging/setLevel" => json!({"jsonrpc": "2.0", "id": id, "result": {}}),
        "resources/subscribe" | "resources/unsubscribe" => jsonrpc::error(
            id.clone(),
            jsonrpc::METHOD_NOT_FOUND,
            "resource subscriptions are not relayed to this proxy's server (protocol 2026-07-28)",
        ),
        _ => return None,
    };
    Some(json_response(StatusCode::OK, &answer))
}

/// The `MCP-Protocol-Version` header and the method mirrors of a request
/// relayed to a stateless server.
pub(super) fn stateless_headers(client: &HeaderMap) -> HeaderMap {
    let mut headers = client.clone();
    headers.insert(
        VERSION_HEADER,
        HeaderValue::from_static(stateless::VERSIONS[0]),
    );
    headers
}

async fn exchange(proxy: &ProxyRuntime, message: &Value) -> Result<Value, Refusal> {
    let headers = stateless_headers(&HeaderMap::new());
    let mirrors: Vec<(HeaderName, HeaderValue)> = super::mirror::method_mirrors(message);
    let target = Target {
        uri: proxy.mcp_uri.as_ref(),
        credential: proxy.credential_header.as_ref(),
    };
    let id = message.get("id").cloned().unwrap_or(Value::Null);
    exchange_with(
        proxy,
        target,
        &headers,
        &mirrors,
        None,
        message.to_string().into(),
        Some(&id),
    )
    .await
    .map_err(|f| {
        Refusal::new(
            StatusCode::BAD_GATEWAY,
            jsonrpc::UPSTREAM_ERROR,
            format!("the upstream MCP server is unavailable: {}", f.why),
        )
    })?
    .message
    .ok_or_else(|| {
        Refusal::new(
            StatusCode::BAD_GATEWAY,
            jsonrpc::UPSTREAM_ERROR,
            "the upstream MCP server did not answer",
        )
    })
}
