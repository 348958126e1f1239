//! Federation: one MCP proxy in front of several Streamable HTTP servers,
//! presented as one (naming rules in [`portcullis_protocol::mcp::federation`]).
//!
//! ```text
//! initialize      -> every member at once (each bounded by the proxy's timeouts);
//!                    the session id carries each member's session id;
//!                    capabilities merged, serverInfo names the federation
//! tools/list      -> every member; each member's tools reconciled with the
//!                    inventory under (proxy, server), then renamed and merged
//! prompts/list, resources/list, resources/templates/list -> merged, renamed
//! tools/call      -> routed by name to its member, name stripped; the answer
//!                    is scanned as for one server
//! prompts/get     -> routed by name; resources/read -> routed by URI; what
//!                    they answer is checked like a tool result
//! notifications   -> every member; ping -> answered by the gateway
//! ```
//!
//! A member that fails (connect error, timeout, 5xx, unreadable answer) is left
//! out of lists, logged, shown in the proxy's status and raised as an alert once
//! per outage; a request routed to it gets a JSON-RPC error naming it, and the
//! session goes on with the others. Answers are JSON (a member's SSE answer is
//! read to its response; its notifications and requests on the way are dropped).

use super::call::McpCall;
use super::session::{SessionClaims, Sessions};
use super::{
    build_request, content_type, finish_call, is_response_to, json_response, send, ContentType,
    Expected, McpRelay, Target, Translation, FORWARDED_REQUEST,
};
use crate::runtime::{bearer, BuildError, ProxyRuntime};
use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Method, Response, StatusCode, Uri};
use http_body_util::BodyExt;
use portcullis_core::alert::{Alert, AlertStatus, Severity};
use portcullis_core::proxy::{Decision, McpServerHealth, ProxySpec};
use portcullis_core::SecretString;
use portcullis_protocol::mcp::federation::{Federation, NameMap, PrefixMode};
use portcullis_protocol::mcp::tools;
use portcullis_protocol::mcp::SESSION_HEADER;
use portcullis_protocol::mcp::{era, jsonrpc};
use portcullis_protocol::sse::SseFramer;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// The alert rule of a federation member that stopped answering.
pub const SERVER_DOWN_RULE: &str = "mcp-server-unavailable";
/// The capabilities a federation routes; others a member has are not offered.
const ROUTED_CAPABILITIES: [&str; 3] = ["tools", "prompts", "resources"];

/// One member, compiled at start.
pub struct Member {
    pub name: String,
    uri: Uri,
    credential: Option<(HeaderName, HeaderValue)>,
    health: Mutex<McpServerHealth>,
}

/// The members of a federated proxy and its naming rules.
pub struct Members {
    pub rules: Federation,
    members: Vec<Member>,
}

impl std::fmt::Debug for Members {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Members({:?})", self.rules.members())
    }
}

impl Members {
    /// `credentials`: one per server of `spec.mcp_servers`, in order.
    pub fn build(
        spec: &ProxySpec,
        credentials: &[Option<SecretString>],
    ) -> Result<Self, BuildError> {
        let rules = rules_of(spec).map_err(BuildError::Federation)?;
        let mut members = Vec::with_capacity(spec.mcp_servers.len());
        for (i, server) in spec.mcp_servers.iter().enumerate() {
            let uri: Uri = server
                .upstream_url
                .parse()
                .map_err(|_| BuildError::BadUpstream(server.upstream_url.clone()))?;
            if uri.scheme().is_none() || uri.authority().is_none() {
                return Err(BuildError::BadUpstream(server.upstream_url.clone()));
            }
            let credential = match credentials.get(i).and_then(Option::as_ref) {
                Some(secret) => Some(bearer(secret)?),
                None => None,
            };
            members.push(Member {
                name: server.name.clone(),
                uri,
                credential,
                health: Mutex::new(McpServerHealth {
                    name: server.name.clone(),
                    up: true,
                    error: None,
                    since: None,
                }),
            });
        }
        Ok(Self { rules, members })
    }

    pub fn name(&self, index: usize) -> &str {
        self.members.get(index).map_or("", |m| m.name.as_str())
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Each member's health as last seen.
    pub fn health(&self) -> Vec<McpServerHealth> {
        self.members
            .iter()
            .map(|m| m.health.lock().unwrap_or_else(|p| p.into_inner()).clone())
            .collect()
    }

    /// Records an exchange's outcome; `true` when the member just went down.
    fn mark(&self, index: usize, outcome: Result<(), &str>, now: jiff::Timestamp) -> bool {
        let Some(member) = self.members.get(index) else {
            return false;
        };
        let mut health = member.health.lock().unwrap_or_else(|p| p.into_inner());
        let was_up = health.up || health.since.is_none();
        match outcome {
            Ok(()) => {
                if !health.up || health.since.is_none() {
                    health.since = Some(now);
                }
                health.up = true;
                health.error = None;
                false
            }
            Err(why) => {
                if health.up || health.since.is_none() {
                    health.since = Some(now);
                }
                health.up = false;
                health.error = Some(why.chars().take(512).collect());
                was_up
            }
        }
    }
}

/// The naming rules of a spec with `mcp_servers`, or what is wrong with them
/// (each message naming its field).
pub fn rules_of(spec: &ProxySpec) -> Result<Federation, String> {
    if spec.mcp_servers.len() > super::session::MAX_UPSTREAMS {
        // One session id carries every member's session.
        return Err(format!(
            "mcp_servers: at most {} servers",
            super::session::MAX_UPSTREAMS
        ));
    }
    let mode = match spec.mcp_prefix_mode.as_deref() {
        None => PrefixMode::default(),
        Some(text) => PrefixMode::parse(text).ok_or_else(|| {
            format!("mcp_prefix_mode: {text:?} is not always, on_collision or never")
        })?,
    };
    let names = spec.mcp_servers.iter().map(|s| s.name.clone()).collect();
    Federation::new(names, spec.mcp_separator.as_deref(), mode).map_err(|e| {
        use portcullis_protocol::mcp::federation::FederationError as E;
        match e {
            E::Separator(_) => format!("mcp_separator: {e}"),
            _ => format!("mcp_servers: {e}"),
        }
    })
}

/// The client's request as the federation needs it.
pub(crate) struct Request<'a> {
    pub headers: &'a HeaderMap,
    pub session: Option<&'a SessionClaims>,
    pub version: &'a str,
    /// The key that opens the session (`None` for proxies without keys).
    pub subject: Option<&'a str>,
    /// `tools/call`: the member it was routed to when admitted, and the tool's
    /// own name there.
    pub routed: Option<(usize, String)>,
}

/// What every step of a federated request needs.
#[derive(Clone, Copy)]
struct Fed<'a> {
    proxy: &'a Arc<ProxyRuntime>,
    members: &'a Arc<Members>,
    request: &'a Request<'a>,
}

/// A member's answer to one message.
pub(super) struct Answer {
    /// The JSON-RPC response; `None` for a notification.
    pub message: Option<Value>,
    pub session: Option<HeaderValue>,
}

/// Why a member failed, for the client and the log. `down`: the member is
/// unavailable (connect error, timeout, 5xx, unreadable answer); a 4xx is about
/// this request (a client without a session, say) and says nothing of its health.
pub(super) struct Failure {
    pub why: String,
    pub down: bool,
}

impl Failure {
    fn down(why: impl Into<String>) -> Self {
        Self {
            why: why.into(),
            down: true,
        }
    }
}

impl McpRelay {
    /// A `tools/call` name to its member and the member's own name.
    pub(crate) async fn route_tool<'n>(
        &self,
        proxy: &ProxyRuntime,
        members: &Members,
        exposed: &'n str,
    ) -> Result<(usize, &'n str), (i64, String, Value)> {
        let rules = &members.rules;
        if rules.mode() != PrefixMode::Never {
            if let Some(found) = route_prefixed(rules, exposed) {
                return Ok(found);
            }
        }
        if rules.mode() != PrefixMode::Always {
            let owners = self
                .inventory
                .servers_with(proxy, exposed)
                .await
                .map_err(|e| {
                    tracing::error!(proxy = %proxy.name, error = %e, "MCP tool inventory unavailable; call refused");
                    (
                        jsonrpc::GATEWAY_UNAVAILABLE,
                        "the gateway cannot check its tool inventory right now".to_owned(),
                        json!({"reason": "inventory_unavailable"}),
                    )
                })?;
            let indexes: Vec<usize> = owners
                .iter()
                .filter_map(|o| rules.members().iter().position(|m| m == o))
                .collect();
            if let [only] = indexes[..] {
                return Ok((only, exposed));
            }
        }
        Err((
            jsonrpc::INVALID_PARAMS,
            format!("tool {exposed:?} is not offered by any server of this federation; list the tools first"),
            json!({"reason": "unknown_tool", "status": Value::Null}),
        ))
    }

    pub(crate) async fn post_federated(
        &self,
        proxy: &Arc<ProxyRuntime>,
        members: &Arc<Members>,
        request: Request<'_>,
        message: Value,
        expected: Option<Expected>,
        mut call: McpCall,
    ) -> Response<axum::body::Body> {
        let fed = Fed {
            proxy,
            members,
            request: &request,
        };
        let Some(expected) = expected else {
            // Notifications go to every member; the client's responses to
            // server requests cannot be routed (none are relayed to it).
            if message.get("method").is_some() {
                let all: Vec<usize> = (0..members.len()).collect();
                self.fan_out(fed, &message, &all).await;
            }
            call.discard();
            let mut accepted = Response::new(axum::body::Body::empty());
            *accepted.status_mut() = StatusCode::ACCEPTED;
            return accepted;
        };
        let method = message
            .get("method")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let id = expected.id.clone();
        let mut session_header = None;
        let outcome: Result<Value, (i64, String, Value)> = match method.as_str() {
            "initialize" => match self.initialize(fed, &message).await {
                Ok((answer, header)) => {
                    session_header = Some(header);
                    Ok(answer)
                }
                Err(e) => Err(e),
            },
            "ping" => Ok(json!({"jsonrpc": "2.0", "id": id, "result": {}})),
            "tools/list" => self.list_tools(fed, &message, &mut call).await,
            "prompts/list" => self.list_merged(fed, &message, Listed::Prompts).await,
            "resources/list" => self.list_merged(fed, &message, Listed::Resources).await,
            "resources/templates/list" => self.list_merged(fed, &message, Listed::Templates).await,
            "tools/call" => match &request.routed {
                Some((index, own)) => {
                    let mut routed = message.clone();
                    routed["params"]["name"] = Value::from(own.as_str());
                    self.one(fed, &routed, *index).await
                }
                None => Err((
                    jsonrpc::INTERNAL_ERROR,
                    "the call was not routed".into(),
                    Value::Null,
                )),
            },
            "prompts/get" => self.get_prompt(fed, &message).await,
            "resources/read" => {
                let uri = message
                    .pointer("/params/uri")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                match members.rules.route_resource(uri) {
                    Some((index, own)) => {
                        let mut routed = message.clone();
                        routed["params"]["uri"] = Value::from(own);
                        self.one(fed, &routed, index)
                            .await
                            .map(|mut answer| {
                                prefix_contents(&members.rules, index, &mut answer);
                                answer
                            })
                    }
                    None => Err((
                        jsonrpc::INVALID_PARAMS,
                        format!("resource {uri:?} is not of a server of this federation (URIs are <server>+<uri>)"),
                        json!({"reason": "unknown_resource"}),
                    )),
                }
            }
            other => Err((
                jsonrpc::METHOD_NOT_FOUND,
                format!(
                    "{} is not routed by an MCP federation",
                    jsonrpc::method_label(other)
                ),
                Value::Null,
            )),
        };
        let processed = Instant::now();
        let mut answer = match outcome {
            Ok(answer) => answer,
            Err((code, text, data)) => {
                let decision = if code == jsonrpc::UPSTREAM_ERROR {
                    Decision::Error
                } else {
                    Decision::Blocked
                };
                call.finish(200, decision, Some(&text));
                let body = if data.is_null() {
                    jsonrpc::error(id, code, &text)
                } else {
                    jsonrpc::error_with_data(id, code, &text, data)
                };
                return self.answer(body, session_header);
            }
        };
        if expected.pending.shape().is_some() {
            let outcome = self.apply(proxy, &expected, &mut answer, &mut call).await;
            call.overhead += processed.elapsed();
            call.response_bytes = answer.to_string().len() as u64;
            finish_call(&mut call, outcome);
        } else {
            call.finish(200, Decision::Allowed, None);
            // Listings are checked as they are merged; a stateless client still
            // reads them in its era.
            if let (Some(Translation::ToStateless { method, .. }), Some(result)) =
                (&expected.translation, answer.get_mut("result"))
            {
                era::upgrade_result(method, result);
                if method.as_ref() == "tools/list" {
                    result["cacheScope"] = Value::from("private");
                }
            }
        }
        self.answer(answer, session_header)
    }

    fn answer(&self, body: Value, session: Option<HeaderValue>) -> Response<axum::body::Body> {
        let mut response = json_response(StatusCode::OK, &body);
        if let Some(session) = session {
            response.headers_mut().insert(SESSION_HEADER, session);
        }
        response
    }

    /// Sends `message` to the members `which`, at once; each answer in order.
    async fn fan_out(
        &self,
        fed: Fed<'_>,
        message: &Value,
        which: &[usize],
    ) -> Vec<(usize, Result<Answer, Failure>)> {
        let Fed {
            proxy,
            members,
            request,
        } = fed;
        let body = Bytes::from(message.to_string());
        let id = message.get("id").cloned();
        let mut tasks = tokio::task::JoinSet::new();
        for &index in which {
            let headers = forwarded(request.headers);
            let session = request
                .session
                .and_then(|s| s.upstream(members.name(index)))
                .map(str::to_owned);
            let (proxy, members, body, id) =
                (proxy.clone(), members.clone(), body.clone(), id.clone());
            tasks.spawn(async move {
                let answer = exchange(
                    &proxy,
                    &members,
                    index,
                    &headers,
                    session.as_deref(),
                    body,
                    id.as_ref(),
                )
                .await;
                (index, answer)
            });
        }
        let mut answers = Vec::with_capacity(which.len());
        while let Some(joined) = tasks.join_next().await {
            if let Ok(answer) = joined {
                answers.push(answer);
            }
        }
        answers.sort_by_key(|(index, _)| *index);
        for (index, answer) in &answers {
            let outcome = match answer {
                Ok(_) => Ok(()),
                Err(f) if f.down => Err(f.why.as_str()),
                Err(_) => continue,
            };
            self.record_health(proxy, members, *index, outcome).await;
        }
        answers
    }

    /// Health bookkeeping: a member that just went down is logged and alerted.
    async fn record_health(
        &self,
        proxy: &ProxyRuntime,
        members: &Members,
        index: usize,
        outcome: Result<(), &str>,
    ) {
        let now = self.clock.now();
        if !members.mark(index, outcome, now) {
            return;
        }
        let server = members.name(index);
        let why = outcome.err().unwrap_or_default();
        tracing::warn!(proxy = %proxy.name, server, error = why, "MCP federation server unavailable");
        let alert = Alert {
            id: portcullis_core::id::new_id_at(now),
            created_at: now,
            event_id: format!("mcp-server:{}:{server}:{}", proxy.id, now.as_second()),
            proxy_id: proxy.id.clone(),
            proxy_name: proxy.name.to_string(),
            rule: SERVER_DOWN_RULE.to_owned(),
            category: "availability".to_owned(),
            severity: Severity::Medium,
            action: "exclude".to_owned(),
            location: "mcp_server".to_owned(),
            key_id: None,
            group_id: None,
            status: AlertStatus::Open,
            status_changed_at: None,
            status_changed_by: None,
            note: Some(format!(
                "MCP server {server:?} of federation {:?} is unavailable and left out until it answers again: {why}",
                proxy.name
            )),
        };
        if let Err(e) = self.inventory.raise_alert(proxy, &alert).await {
            tracing::error!(proxy = %proxy.name, error = %e, "alert not stored");
        }
    }

    /// One member's answer to a routed request, its failure an error naming it.
    async fn one(
        &self,
        fed: Fed<'_>,
        message: &Value,
        index: usize,
    ) -> Result<Value, (i64, String, Value)> {
        let members = fed.members;
        let mut answers = self.fan_out(fed, message, &[index]).await;
        match answers.pop() {
            Some((
                _,
                Ok(Answer {
                    message: Some(answer),
                    ..
                }),
            )) => Ok(answer),
            Some((_, Err(f))) => Err(unavailable(members.name(index), &f.why)),
            _ => Err(unavailable(members.name(index), "no answer")),
        }
    }

    async fn initialize(
        &self,
        fed: Fed<'_>,
        message: &Value,
    ) -> Result<(Value, HeaderValue), (i64, String, Value)> {
        let Fed {
            proxy,
            members,
            request,
        } = fed;
        let all: Vec<usize> = (0..members.len()).collect();
        let answers = self.fan_out(fed, message, &all).await;
        let mut upstreams = Vec::new();
        let mut results: Vec<(usize, Value)> = Vec::new();
        let mut failures = Vec::new();
        for (index, answer) in answers {
            let name = members.name(index);
            match answer {
                Ok(Answer {
                    message: Some(mut answer),
                    session,
                }) if answer.get("result").is_some() => {
                    if let Some(value) = session {
                        match Sessions::upstream_id(&value) {
                            Ok(id) => upstreams.push((name.to_owned(), id)),
                            Err(e) => {
                                failures.push(format!("{name}: {e}"));
                                continue;
                            }
                        }
                    }
                    results.push((index, answer["result"].take()));
                }
                Ok(_) => failures.push(format!("{name}: refused initialize")),
                Err(f) => failures.push(format!("{name}: {}", f.why)),
            }
        }
        if results.is_empty() {
            return Err((
                jsonrpc::UPSTREAM_ERROR,
                format!(
                    "no MCP server of this federation answered: {}",
                    failures.join("; ")
                ),
                json!({"reason": "servers_unavailable"}),
            ));
        }
        let capabilities: Vec<(usize, &Value)> = results
            .iter()
            .map(|(i, r)| (*i, r.get("capabilities").unwrap_or(&Value::Null)))
            .collect();
        let mut merged = members.rules.merge_capabilities(&capabilities);
        if let Some(map) = merged.as_object_mut() {
            map.retain(|name, _| ROUTED_CAPABILITIES.contains(&name.as_str()));
        }
        let infos: Vec<(usize, &Value, Option<&str>)> = results
            .iter()
            .map(|(i, r)| {
                (
                    *i,
                    r.get("serverInfo").unwrap_or(&Value::Null),
                    r.get("instructions").and_then(Value::as_str),
                )
            })
            .collect();
        let (server_info, instructions) =
            members.rules.server_info(env!("CARGO_PKG_VERSION"), &infos);
        // The oldest version a member chose: every member speaks it.
        let version = results
            .iter()
            .filter_map(|(_, r)| r.get("protocolVersion").and_then(Value::as_str))
            .min()
            .unwrap_or(request.version)
            .to_owned();
        let claims = SessionClaims {
            proxy_id: proxy.id.clone(),
            subject: request.subject.map(str::to_owned),
            upstreams,
            protocol_version: Sessions::version(&version),
            issued_at: self.clock.now().as_second(),
            stateless_meta: None,
            legacy_upstream: false,
        };
        let header = self.sessions.issue(&claims).map_err(|e| {
            tracing::warn!(proxy = %proxy.name, error = %e, "MCP session id not issued");
            (
                jsonrpc::UPSTREAM_ERROR,
                format!("the gateway cannot open this session: {e}"),
                Value::Null,
            )
        })?;
        let answer = json!({
            "jsonrpc": "2.0",
            "id": message.get("id").cloned().unwrap_or(Value::Null),
            "result": {
                "protocolVersion": version,
                "capabilities": merged,
                "serverInfo": server_info,
                "instructions": instructions,
            }
        });
        Ok((answer, header))
    }

    async fn list_tools(
        &self,
        fed: Fed<'_>,
        message: &Value,
        call: &mut McpCall,
    ) -> Result<Value, (i64, String, Value)> {
        let Fed { proxy, members, .. } = fed;
        let listed = self.collect(fed, message, Listed::Tools).await;
        let names: Vec<(usize, Vec<String>)> = listed
            .iter()
            .map(|(i, tools)| {
                (
                    *i,
                    tools
                        .iter()
                        .filter_map(tools::tool_name)
                        .map(str::to_owned)
                        .collect(),
                )
            })
            .collect();
        let map = members.rules.names("tool", &names).map_err(|e| {
            tracing::warn!(proxy = %proxy.name, error = %e, "MCP federation cannot list its tools");
            (
                jsonrpc::UPSTREAM_ERROR,
                e.to_string(),
                json!({"reason": "name_collision"}),
            )
        })?;
        let mut merged = Vec::new();
        for (index, tools) in listed {
            let reconciled = self
                .inventory
                // Members' listings are first pages only: nothing is judged gone.
                .reconcile(proxy, members.name(index), &tools, false, &call.id, call.identity.as_deref())
                .await
                .map_err(|e| {
                    tracing::error!(proxy = %proxy.name, error = %e, "MCP tool inventory unavailable; listing refused");
                    (
                        jsonrpc::GATEWAY_UNAVAILABLE,
                        "the gateway cannot check its tool inventory right now".to_owned(),
                        Value::Null,
                    )
                })?;
            call.findings.extend(reconciled.findings);
            for mut tool in tools {
                let Some(own) = tools::tool_name(&tool).map(str::to_owned) else {
                    continue;
                };
                if !reconciled.visible.contains(&own) {
                    continue;
                }
                if let Some(exposed) = map.exposed(index, &own) {
                    if !super::tool_allowed(proxy, call.identity.as_deref(), exposed) {
                        continue;
                    }
                    tool["name"] = Value::from(exposed);
                    merged.push(tool);
                }
            }
        }
        Ok(
            json!({"jsonrpc": "2.0", "id": message.get("id").cloned().unwrap_or(Value::Null), "result": {"tools": merged}}),
        )
    }

    /// Prompts, resources or resource templates of every live member, renamed.
    async fn list_merged(
        &self,
        fed: Fed<'_>,
        message: &Value,
        kind: Listed,
    ) -> Result<Value, (i64, String, Value)> {
        let members = fed.members;
        let listed = self.collect(fed, message, kind).await;
        let mut merged = Vec::new();
        match kind {
            Listed::Tools | Listed::Prompts => {
                let map = prompt_names(members, &listed)?;
                for (index, items) in listed {
                    for mut item in items {
                        let exposed = item
                            .get("name")
                            .and_then(Value::as_str)
                            .and_then(|n| map.exposed(index, n))
                            .map(str::to_owned);
                        if let Some(exposed) = exposed {
                            item["name"] = Value::from(exposed);
                            merged.push(item);
                        }
                    }
                }
            }
            Listed::Resources | Listed::Templates => {
                for (index, items) in listed {
                    for mut item in items {
                        let field = kind.uri_field();
                        let Some(uri) = item.get(field).and_then(Value::as_str) else {
                            continue;
                        };
                        item[field] = Value::from(members.rules.resource_uri(index, uri));
                        merged.push(item);
                    }
                }
            }
        }
        let mut result = serde_json::Map::new();
        result.insert(kind.field().to_owned(), Value::Array(merged));
        Ok(
            json!({"jsonrpc": "2.0", "id": message.get("id").cloned().unwrap_or(Value::Null), "result": result}),
        )
    }

    /// Each answering member's items of a list; failures recorded.
    async fn collect(
        &self,
        fed: Fed<'_>,
        message: &Value,
        kind: Listed,
    ) -> Vec<(usize, Vec<Value>)> {
        let Fed { proxy, members, .. } = fed;
        let all: Vec<usize> = (0..members.len()).collect();
        let answers = self.fan_out(fed, message, &all).await;
        let mut listed = Vec::new();
        for (index, answer) in answers {
            let Ok(Answer {
                message: Some(mut answer),
                ..
            }) = answer
            else {
                continue; // recorded by fan_out
            };
            if answer.get("error").is_some() {
                continue; // a member without this capability
            }
            match answer
                .pointer_mut("/result")
                .and_then(|r| r.get_mut(kind.field()))
            {
                Some(Value::Array(items)) => listed.push((index, std::mem::take(items))),
                _ => {
                    let why = format!("its {} answer has no {} array", kind.method(), kind.field());
                    self.record_health(proxy, members, index, Err(&why)).await;
                }
            }
        }
        listed
    }

    /// `prompts/get`: the prompt names are listed again to route by them.
    async fn get_prompt(
        &self,
        fed: Fed<'_>,
        message: &Value,
    ) -> Result<Value, (i64, String, Value)> {
        let members = fed.members;
        let name = message
            .pointer("/params/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let list = json!({"jsonrpc": "2.0", "id": message.get("id").cloned().unwrap_or(Value::Null), "method": "prompts/list"});
        let listed = self.collect(fed, &list, Listed::Prompts).await;
        let map = prompt_names(members, &listed)?;
        let Some((index, own)) = map
            .route(name)
            .or_else(|| route_prefixed(&members.rules, name))
        else {
            return Err((
                jsonrpc::INVALID_PARAMS,
                format!("prompt {name:?} is not offered by any live server of this federation"),
                json!({"reason": "unknown_prompt"}),
            ));
        };
        let mut routed = message.clone();
        routed["params"]["name"] = Value::from(own);
        self.one(fed, &routed, index).await
    }
}

#[derive(Debug, Clone, Copy)]
enum Listed {
    Tools,
    Prompts,
    Resources,
    Templates,
}

impl Listed {
    fn field(self) -> &'static str {
        match self {
            Self::Tools => "tools",
            Self::Prompts => "prompts",
            Self::Resources => "resources",
            Self::Templates => "resourceTemplates",
        }
    }

    fn uri_field(self) -> &'static str {
        match self {
            Self::Templates => "uriTemplate",
            Self::Tools | Self::Prompts | Self::Resources => "uri",
        }
    }

    fn method(self) -> &'static str {
        match self {
            Self::Tools => "tools/list",
            Self::Prompts => "prompts/list",
            Self::Resources => "resources/list",
            Self::Templates => "resources/templates/list",
        }
    }
}

fn prompt_names(
    members: &Members,
    listed: &[(usize, Vec<Value>)],
) -> Result<NameMap, (i64, String, Value)> {
    let names: Vec<(usize, Vec<String>)> = listed
        .iter()
        .map(|(i, items)| {
            let names = items
                .iter()
                .filter_map(|p| p.get("name").and_then(Value::as_str))
                .map(str::to_owned)
                .collect();
            (*i, names)
        })
        .collect();
    members.rules.names("prompt", &names).map_err(|e| {
        (
            jsonrpc::UPSTREAM_ERROR,
            e.to_string(),
            json!({"reason": "name_collision"}),
        )
    })
}

/// `<member><separator><name>` to (member, name).
fn route_prefixed<'n>(rules: &Federation, exposed: &'n str) -> Option<(usize, &'n str)> {
    rules.members().iter().enumerate().find_map(|(i, member)| {
        exposed
            .strip_prefix(member.as_str())?
            .strip_prefix(rules.separator())
            .filter(|own| !own.is_empty())
            .map(|own| (i, own))
    })
}

/// A `resources/read` answer's contents keep the client-facing URIs.
fn prefix_contents(rules: &Federation, index: usize, answer: &mut Value) {
    if let Some(Value::Array(contents)) = answer.pointer_mut("/result/contents") {
        for item in contents {
            if let Some(uri) = item.get("uri").and_then(Value::as_str) {
                item["uri"] = Value::from(rules.resource_uri(index, uri));
            }
        }
    }
}

fn unavailable(server: &str, why: &str) -> (i64, String, Value) {
    (
        jsonrpc::UPSTREAM_ERROR,
        format!("MCP server {server:?} of this federation is unavailable: {why}"),
        json!({"reason": "server_unavailable", "server": server}),
    )
}

fn forwarded(client: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::new();
    for name in FORWARDED_REQUEST {
        // Each member negotiated its own stream; resumption is not federated.
        if name == "last-event-id" {
            continue;
        }
        for value in client.get_all(name) {
            out.append(HeaderName::from_static(name), value.clone());
        }
    }
    out
}

/// GET and DELETE on a federation: no server-to-client stream (405); the end
/// of a session goes to every member that holds one of it (204).
pub(crate) async fn end_or_refuse(
    proxy: &ProxyRuntime,
    members: &Members,
    method: Method,
    headers: &HeaderMap,
    session: Option<&SessionClaims>,
) -> Response<axum::body::Body> {
    if method != Method::DELETE {
        let mut r = super::http_error(
            StatusCode::METHOD_NOT_ALLOWED,
            Value::Null,
            jsonrpc::INVALID_REQUEST,
            "an MCP federation has no server-to-client stream: use POST",
        );
        r.headers_mut().insert(
            http::header::ALLOW,
            HeaderValue::from_static("POST, DELETE"),
        );
        return r;
    }
    let headers = forwarded(headers);
    for member in &members.members {
        let Some(upstream) = session.and_then(|s| s.upstream(&member.name)) else {
            continue;
        };
        let target = Target {
            uri: Some(&member.uri),
            credential: member.credential.as_ref(),
        };
        let request = build_request(
            target,
            Method::DELETE,
            &headers,
            Some(upstream),
            Bytes::new(),
        );
        if let Err(r) = send(proxy, request).await {
            tracing::info!(proxy = %proxy.name, server = %member.name, error = %r.message, "MCP session end not delivered");
        }
    }
    let mut done = Response::new(axum::body::Body::empty());
    *done.status_mut() = StatusCode::NO_CONTENT;
    done
}

/// One message to one member and its response (read to the end, bounded by
/// the proxy's body limit and timeouts). `id`: the request's id, `None` for a
/// notification.
async fn exchange(
    proxy: &ProxyRuntime,
    members: &Members,
    index: usize,
    headers: &HeaderMap,
    session: Option<&str>,
    body: Bytes,
    id: Option<&Value>,
) -> Result<Answer, Failure> {
    let Some(member) = members.members.get(index) else {
        return Err(Failure::down("no such server"));
    };
    let target = Target {
        uri: Some(&member.uri),
        credential: member.credential.as_ref(),
    };
    exchange_with(proxy, target, headers, &[], session, body, id).await
}

/// One message to one server and its response, read to the end (bounded).
/// `extra`: headers sent as they are (the client's `headers` are filtered).
pub(super) async fn exchange_with(
    proxy: &ProxyRuntime,
    target: Target<'_>,
    headers: &HeaderMap,
    extra: &[(HeaderName, HeaderValue)],
    session: Option<&str>,
    body: Bytes,
    id: Option<&Value>,
) -> Result<Answer, Failure> {
    let request = build_request(target, Method::POST, headers, session, body).map(|mut r| {
        r.headers_mut().extend(extra.iter().cloned());
        r
    });
    let response = send(proxy, request)
        .await
        .map_err(|r| Failure::down(r.message))?;
    let (parts, mut incoming) = response.into_parts();
    let status = parts.status;
    if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
        return Err(Failure::down("it refused the gateway's credential"));
    }
    if !status.is_success() {
        return Err(Failure {
            why: format!("it answered HTTP {}", status.as_u16()),
            down: status.is_server_error(),
        });
    }
    let session = parts.headers.get(SESSION_HEADER).cloned();
    let Some(id) = id else {
        return Ok(Answer {
            message: None,
            session,
        });
    };
    let kind = content_type(&parts.headers);
    let limit = proxy.max_body_bytes;
    let read = async {
        let mut framer = SseFramer::new(limit);
        let mut frames = Vec::new();
        let mut buf = bytes::BytesMut::new();
        while let Some(frame) = incoming.frame().await {
            let frame = frame.map_err(|_| "the connection broke mid-answer".to_owned())?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            if kind == ContentType::EventStream {
                framer.push(&data, &mut frames).map_err(|e| e.to_string())?;
                for event in frames.drain(..) {
                    if let Ok(message) = serde_json::from_str::<Value>(&event.data) {
                        if is_response_to(&message, id) {
                            return Ok(message);
                        }
                    }
                }
            } else {
                if buf.len() + data.len() > limit {
                    return Err("its answer is larger than this proxy's max_body_bytes".into());
                }
                buf.extend_from_slice(&data);
            }
        }
        match serde_json::from_slice::<Value>(&buf) {
            Ok(message) if is_response_to(&message, id) => Ok(message),
            _ => Err("its answer is not a JSON-RPC response to this request".to_owned()),
        }
    };
    match tokio::time::timeout(proxy.idle_timeout, read).await {
        Ok(Ok(message)) => Ok(Answer {
            message: Some(message),
            session,
        }),
        Ok(Err(why)) => Err(Failure::down(why)),
        Err(_) => Err(Failure::down(format!(
            "its answer stalled for {} ms",
            proxy.idle_timeout.as_millis()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_core::proxy::McpServer;

    fn spec(mode: Option<&str>, separator: Option<&str>) -> ProxySpec {
        let mut spec: ProxySpec =
            serde_json::from_value(json!({"name": "fed", "kind": "mcp"})).unwrap();
        spec.mcp_servers = ["math", "docs"]
            .iter()
            .map(|n| McpServer {
                name: (*n).to_owned(),
                upstream_url: format!("http://127.0.0.1:9/{n}/mcp"),
                credential_id: None,
            })
            .collect();
        spec.mcp_prefix_mode = mode.map(str::to_owned);
        spec.mcp_separator = separator.map(str::to_owned);
        spec
    }

    #[test]
    fn rules_name_the_field_at_fault() {
        assert!(rules_of(&spec(Some("on_collision"), Some("."))).is_ok());
        let err = rules_of(&spec(Some("sometimes"), None)).unwrap_err();
        assert!(err.starts_with("mcp_prefix_mode:"), "{err}");
        let err = rules_of(&spec(None, Some("/"))).unwrap_err();
        assert!(err.starts_with("mcp_separator:"), "{err}");
        let mut bad = spec(None, None);
        bad.mcp_servers[1].name = "Docs".into();
        let err = rules_of(&bad).unwrap_err();
        assert!(
            err.starts_with("mcp_servers: server name \"Docs\""),
            "{err}"
        );
    }

    #[test]
    fn prefixed_names_route_to_their_member_without_prefix() {
        let rules = rules_of(&spec(None, None)).unwrap();
        assert_eq!(route_prefixed(&rules, "docs__echo"), Some((1, "echo")));
        assert_eq!(route_prefixed(&rules, "math__add"), Some((0, "add")));
        assert_eq!(route_prefixed(&rules, "math__"), None);
        assert_eq!(route_prefixed(&rules, "echo"), None);
        assert_eq!(route_prefixed(&rules, "other__echo"), None);
        let dotted = rules_of(&spec(None, Some("."))).unwrap();
        assert_eq!(route_prefixed(&dotted, "docs.a__b"), Some((1, "a__b")));
    }

    #[test]
    fn member_health_goes_down_once_and_comes_back() {
        let members = Members::build(&spec(None, None), &[None, None]).unwrap();
        let now = jiff::Timestamp::UNIX_EPOCH;
        assert!(!members.mark(0, Ok(()), now));
        assert!(members.mark(1, Err("refused"), now));
        // Still down: no second alert.
        assert!(!members.mark(1, Err("refused again"), now));
        let health = members.health();
        assert!(health[0].up);
        assert!(!health[1].up);
        assert_eq!(health[1].error.as_deref(), Some("refused again"));
        assert!(!members.mark(1, Ok(()), now));
        assert!(members.health()[1].up);
        assert!(members.health()[1].error.is_none());
    }

    #[test]
    fn read_answers_keep_client_facing_uris() {
        let rules = rules_of(&spec(None, None)).unwrap();
        let mut answer = json!({"result": {"contents": [{"uri": "file:///a.txt", "text": "x"}]}});
        prefix_contents(&rules, 1, &mut answer);
        assert_eq!(answer["result"]["contents"][0]["uri"], "docs+file:///a.txt");
    }
}
