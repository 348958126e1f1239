//! The request path of an LLM proxy: authenticate, read the body (bounded), ask for
//! stream usage if needed, forward with the provider credential, relay the answer.

use crate::answer::AnswerFilter;
use crate::body::ObservedBody;
use crate::error::{ProxyError, Reason};
use crate::events::EventSink;
use crate::exchange::{Exchange, Outcome};
use crate::keys::{presented_key, KeyAuthenticator, KeyRejection};
use crate::runtime::ProxyRuntime;
use crate::spend::{Spend, BUDGET_HEADER};
use axum::body::Body;
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use portcullis_core::model::KeyScope;
use portcullis_core::proxy::{AuthMode, Decision};
use portcullis_core::Clock;
use portcullis_governance::ratelimit::{RateLimiter, Verdict, Window};
use portcullis_policy::redact::Redactor;
use portcullis_protocol::answer::TextFilter;
use portcullis_protocol::stream::StreamObserver;
use portcullis_protocol::{error, request, system_prompt, Dialect, Endpoint};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// End users are named by this header (or the body's `user` field).
pub const END_USER_HEADER: &str = "x-portcullis-user";
pub const OVERHEAD_HEADER: &str = "x-portcullis-overhead-ms";

/// What every proxy shares.
pub struct Relay {
    pub keys: Arc<KeyAuthenticator>,
    pub events: EventSink,
    pub clock: Arc<dyn Clock>,
    pub spend: Arc<Spend>,
    /// Governed system prompts: one snapshot for every proxy (see `prompts`).
    pub prompts: crate::prompts::Prompts,
    /// Requests and tokens per minute per key and group (in-process or Redis).
    pub limiter: Arc<RateLimiter>,
}

/// Hop-by-hop headers (RFC 9110 §7.6.1): never forwarded in either direction.
const HOP_BY_HOP: [&str; 7] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Request headers the gateway owns or must not pass on: the caller's credentials,
/// cookies, framing, and its own `x-portcullis-*` controls.
fn dropped_request_header(name: &HeaderName) -> bool {
    let name = name.as_str();
    HOP_BY_HOP.contains(&name)
        || matches!(
            name,
            "host"
                | "content-length"
                | "authorization"
                | "x-api-key"
                | "proxy-authorization"
                | "cookie"
                | "accept-encoding"
                | "forwarded"
                | "x-forwarded-for"
                | "x-forwarded-host"
                | "x-forwarded-proto"
        )
        || name.starts_with("x-portcullis-")
}

fn dropped_response_header(name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(&name.as_str()) || name.as_str() == "set-cookie"
}

/// Header names listed in `Connection` are hop-by-hop too.
fn connection_listed(headers: &HeaderMap) -> Vec<HeaderName> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect()
}

/// Refusals that may come before the request body was read (authentication, size,
/// method, rate limit): the connection is closed after them, so a client does not
/// reuse it for its next request while unread bytes are still in flight.
pub fn refused_unread(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::UNAUTHORIZED
            | StatusCode::FORBIDDEN
            | StatusCode::METHOD_NOT_ALLOWED
            | StatusCode::PAYLOAD_TOO_LARGE
            | StatusCode::TOO_MANY_REQUESTS
    )
}

pub fn error_response(dialect: Dialect, reason: Reason, message: &str) -> Response<Body> {
    let mut response = Response::new(Body::from(error::body(dialect, reason.kind(), message)));
    *response.status_mut() =
        StatusCode::from_u16(reason.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if reason == Reason::Unauthenticated {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"portcullis\""),
        );
    }
    let unread = matches!(
        reason,
        Reason::Unauthenticated
            | Reason::Forbidden
            | Reason::BodyTooLarge
            | Reason::MethodNotAllowed
            | Reason::RateLimited
    );
    if unread {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// A duration as OpenAI writes its resets: `250ms`, `6s`, `1m30s`.
fn reset_value(d: Duration) -> HeaderValue {
    let ms = d.as_millis();
    let text = if ms < 1_000 {
        format!("{ms}ms")
    } else {
        let secs = ms.div_ceil(1_000);
        match secs / 60 {
            0 => format!("{secs}s"),
            m => format!("{m}m{}s", secs % 60),
        }
    };
    HeaderValue::from_str(&text).unwrap_or(HeaderValue::from_static("0s"))
}

/// `x-ratelimit-*` (OpenAI's names) on every answer to a limited caller, and
/// `Retry-After` when refused.
fn rate_limit_headers(headers: &mut HeaderMap, verdict: &Verdict) {
    let mut put = |names: [&'static str; 3], window: Option<Window>| {
        let Some(w) = window else { return };
        let [limit, remaining, reset] = names.map(HeaderName::from_static);
        headers.insert(limit, HeaderValue::from(w.limit));
        headers.insert(remaining, HeaderValue::from(w.remaining));
        headers.insert(reset, reset_value(w.reset));
    };
    put(
        [
            "x-ratelimit-limit-requests",
            "x-ratelimit-remaining-requests",
            "x-ratelimit-reset-requests",
        ],
        verdict.requests,
    );
    put(
        [
            "x-ratelimit-limit-tokens",
            "x-ratelimit-remaining-tokens",
            "x-ratelimit-reset-tokens",
        ],
        verdict.tokens,
    );
    if !verdict.allowed {
        headers.insert(
            header::RETRY_AFTER,
            HeaderValue::from(verdict.retry_after.as_secs().max(1)),
        );
    }
}

fn overhead_value(d: Duration) -> HeaderValue {
    HeaderValue::from_str(&format!("{:.3}", d.as_secs_f64() * 1000.0))
        .unwrap_or(HeaderValue::from_static("0"))
}

impl Relay {
    /// Handles one request for `proxy`; `path` is relative to the proxy root.
    pub async fn handle(
        &self,
        proxy: Arc<ProxyRuntime>,
        req: Request<Body>,
        path: &str,
    ) -> Response<Body> {
        let started = Instant::now();
        let mut exchange = Exchange::new(
            proxy.clone(),
            self.events.clone(),
            self.spend.clone(),
            started,
            self.clock.now(),
        );
        match self.forward(&proxy, req, path, &mut exchange).await {
            // The exchange moves into the body, which ends it.
            Ok(mut upstream) => {
                if let Some(verdict) = &exchange.verdict {
                    rate_limit_headers(&mut upstream.parts.headers, verdict);
                }
                let exchange_header = exchange.budget_header.take();
                let body = ObservedBody::new(
                    upstream.incoming,
                    upstream.parts.status.as_u16(),
                    upstream.dialect,
                    upstream.observer,
                    exchange,
                );
                let mut parts = upstream.parts;
                if let Some(v) = exchange_header {
                    parts.headers.insert(BUDGET_HEADER, v);
                }
                Response::from_parts(parts, Body::new(body))
            }
            Err(e) => {
                let dialect = exchange
                    .endpoint
                    .map(Endpoint::dialect)
                    .unwrap_or(Dialect::OpenAi);
                let decision = if e.reason.is_upstream()
                    || matches!(e.reason, Reason::Internal | Reason::LimiterUnavailable)
                {
                    Decision::Error
                } else {
                    Decision::Blocked
                };
                // Before the upstream was called, all the time was the gateway's;
                // after, the wait was the upstream's.
                if !e.reason.is_upstream() {
                    exchange.overhead = started.elapsed();
                }
                exchange.finish(
                    Outcome {
                        status: e.reason.status(),
                        decision,
                        reason: Some(e.reason),
                        usage: None,
                    },
                    Some(&e.message),
                );
                let mut response = error_response(dialect, e.reason, &e.message);
                response
                    .headers_mut()
                    .insert(OVERHEAD_HEADER, overhead_value(exchange.overhead));
                if let Some(verdict) = &exchange.verdict {
                    rate_limit_headers(response.headers_mut(), verdict);
                }
                if let Some(v) = exchange.budget_header.take() {
                    response.headers_mut().insert(BUDGET_HEADER, v);
                }
                response
            }
        }
    }

    /// Counts the request against the key's and group's limits, before the body
    /// is read, so a refused request costs the gateway nothing more and never
    /// reaches the upstream. Unlimited callers skip it.
    async fn check_rate(
        &self,
        identity: &Arc<crate::keys::Identity>,
        exchange: &mut Exchange,
    ) -> Result<(), ProxyError> {
        let Some(subject) = identity.rate_subject() else {
            return Ok(());
        };
        let verdict = self.limiter.check(&subject).await.map_err(|e| {
            tracing::error!(error = %e, "rate limit check failed; refusing the request");
            ProxyError::new(
                Reason::LimiterUnavailable,
                "the gateway cannot check rate limits right now; retry shortly",
            )
        })?;
        exchange.verdict = Some(verdict);
        if subject.has_token_limit() {
            exchange.limiter = Some(self.limiter.clone());
        }
        if verdict.allowed {
            return Ok(());
        }
        Err(ProxyError::new(
            Reason::RateLimited,
            format!(
                "rate limit exceeded for this API key or its group; retry after {} s",
                verdict.retry_after.as_secs().max(1)
            ),
        ))
    }

    async fn forward(
        &self,
        proxy: &Arc<ProxyRuntime>,
        req: Request<Body>,
        path: &str,
        exchange: &mut Exchange,
    ) -> Result<Upstream, ProxyError> {
        let started = exchange.started;
        let endpoint = Endpoint::from_path(path).ok_or_else(|| {
            ProxyError::new(Reason::NotFound, format!("no such endpoint: {path}"))
        })?;
        exchange.endpoint = Some(endpoint);
        let expected = if endpoint.is_get() {
            Method::GET
        } else {
            Method::POST
        };
        if req.method() != expected {
            return Err(ProxyError::new(
                Reason::MethodNotAllowed,
                format!("use {expected} for this endpoint"),
            ));
        }

        if proxy.auth_mode == AuthMode::ApiKey {
            let presented = presented_key(req.headers()).ok_or_else(|| {
                ProxyError::new(Reason::Unauthenticated, KeyRejection::Missing.message())
            })?;
            // A cache miss reads the store: that is gateway time too.
            let identity = self
                .keys
                .authenticate(presented, KeyScope::Llm)
                .await
                .map_err(|r| {
                    let reason = match r {
                        KeyRejection::WrongScope => Reason::Forbidden,
                        KeyRejection::StoreUnavailable => Reason::Internal,
                        KeyRejection::Missing | KeyRejection::Invalid => Reason::Unauthenticated,
                    };
                    ProxyError::new(reason, r.message())
                })?;
            exchange.identity = Some(identity.clone());
            self.check_rate(&identity, exchange).await?;
        }
        exchange.end_user = req
            .headers()
            .get(END_USER_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(256).collect());

        let (parts, body) = req.into_parts();
        let declared = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|n| n > proxy.max_body_bytes) {
            return Err(ProxyError::new(
                Reason::BodyTooLarge,
                format!(
                    "request body is larger than this proxy's limit of {} bytes",
                    proxy.max_body_bytes
                ),
            ));
        }
        let body = Limited::new(body, proxy.max_body_bytes)
            .collect()
            .await
            .map_err(|e| {
                if e.downcast_ref::<LengthLimitError>().is_some() {
                    ProxyError::new(
                        Reason::BodyTooLarge,
                        format!(
                            "request body is larger than this proxy's limit of {} bytes",
                            proxy.max_body_bytes
                        ),
                    )
                } else {
                    ProxyError::new(Reason::BadRequest, "could not read the request body")
                }
            })?;
        let mut body = body.to_bytes();
        exchange.request_bytes = body.len() as u64;

        let mut strip_usage = false;
        if !endpoint.is_get() {
            let bad = |e: request::BadBody| ProxyError::new(Reason::BadRequest, e.to_string());
            // A governed prompt applies only where the format has a system prompt
            // and a template is bound; the snapshot is not even loaded otherwise.
            let prompts = (system_prompt::takes_system_prompt(endpoint) && self.prompts.any())
                .then(|| self.prompts.snapshot())
                .filter(|s| {
                    let group = exchange.identity.as_ref().map(|i| i.group_id.as_str());
                    s.pick(&proxy.id, group).is_some()
                });
            // With a policy or a prompt the whole body is needed: parse it once.
            let mut parsed: Option<serde_json::Value> =
                match proxy.policy.is_some() || prompts.is_some() {
                    true => Some(serde_json::from_slice(&body).map_err(|e| {
                        ProxyError::new(
                            Reason::BadRequest,
                            format!("request body is not valid JSON: {e}"),
                        )
                    })?),
                    false => None,
                };
            let info = match &parsed {
                Some(value) => request::inspect_value(value).map_err(bad)?,
                None => request::inspect(&body).map_err(bad)?,
            };
            if exchange.end_user.is_none() {
                exchange.end_user = info.user.as_ref().map(|u| u.chars().take(256).collect());
            }
            // Before the policies: a blocked request's event names its model too.
            exchange.model = info.model.clone();
            let mut changed = false;
            if let (Some(engine), Some(value)) = (&proxy.policy, parsed.as_mut()) {
                let redactor = inspect_request(engine, endpoint, value, exchange)?;
                changed = redactor.changed;
                exchange.redactor = Some(Arc::new(redactor.placeholders));
            }
            // After the inspection: the governed prompt is trusted, not scanned.
            if let (Some(snapshot), Some(value)) = (&prompts, parsed.as_mut()) {
                changed |= self.govern(snapshot, proxy, endpoint, value, exchange)?;
            }
            if let (true, Some(value)) = (changed, &parsed) {
                body = serde_json::to_vec(value)
                    .map_err(|_| ProxyError::new(Reason::Internal, "could not re-encode"))?
                    .into();
            }
            if let Some(rewritten) = request::with_stream_usage(endpoint, &info, &body) {
                body = rewritten;
                strip_usage = true;
            }
            exchange.stream = info.stream;
            // Last check before the upstream: a refused request reserves nothing.
            let admitted = self
                .spend
                .admit(
                    exchange.identity.as_deref(),
                    exchange.model.as_deref(),
                    body.len() as u64,
                    info.max_output_tokens,
                    (&proxy.id, &proxy.name),
                )
                .await?;
            exchange.holds = admitted.holds;
            exchange.budget_header = admitted.header;
        }

        let uri = proxy
            .upstream_uri(endpoint, parts.uri.query())
            .ok_or_else(|| ProxyError::new(Reason::Internal, "upstream URL unusable"))?;
        let listed = connection_listed(&parts.headers);
        let mut upstream = Request::builder().method(parts.method.clone()).uri(uri);
        if let Some(headers) = upstream.headers_mut() {
            for (name, value) in &parts.headers {
                if !dropped_request_header(name) && !listed.contains(name) {
                    headers.append(name.clone(), value.clone());
                }
            }
            // Bodies are observed for usage, so they must arrive uncompressed.
            headers.insert(
                header::ACCEPT_ENCODING,
                HeaderValue::from_static("identity"),
            );
            if let Some((name, value)) = &proxy.credential_header {
                headers.insert(name.clone(), value.clone());
            }
        }
        let upstream = upstream
            .body(Full::new(body))
            .map_err(|_| ProxyError::new(Reason::BadRequest, "request cannot be forwarded"))?;

        let sent = Instant::now();
        exchange.overhead = sent - started;
        let response =
            match tokio::time::timeout(proxy.first_byte_timeout, proxy.client.request(upstream))
                .await
            {
                Err(_) => {
                    return Err(ProxyError::new(
                        Reason::UpstreamTimeout,
                        format!(
                            "the upstream did not answer within {} ms",
                            proxy.first_byte_timeout.as_millis()
                        ),
                    ));
                }
                Ok(Err(e)) => {
                    tracing::warn!(proxy = %proxy.name, error = %e, "upstream request failed");
                    return Err(ProxyError::new(
                        Reason::UpstreamConnect,
                        "the upstream is unreachable",
                    ));
                }
                Ok(Ok(response)) => response,
            };
        let head_at = Instant::now();

        let (mut parts, incoming) = response.into_parts();
        let is_sse = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        let listed = connection_listed(&parts.headers);
        parts
            .headers
            .retain_names(|name| !dropped_response_header(name) && !listed.contains(name));
        let filter = parts
            .status
            .is_success()
            .then(|| AnswerFilter::new(proxy, exchange.redactor.as_ref()))
            .flatten();
        let mut incoming = UpstreamBody::Live(crate::coalesce::Coalesced::new(incoming));
        let mut observer = None;
        if is_sse {
            parts.headers.remove(header::CONTENT_LENGTH);
            let obs = StreamObserver::new(endpoint, strip_usage);
            observer = Some(match filter {
                Some(f) => obs.with_filter(Box::new(f)),
                None => obs,
            });
        } else if let Some(mut filter) = filter {
            // A whole answer is read before any of it is sent, so a blocked one
            // becomes a clean 403 and restored values fit the content length.
            let held = hold_answer(proxy, endpoint, incoming, &mut filter).await;
            exchange.findings.append(&mut filter.findings);
            let held = held?;
            parts
                .headers
                .insert(header::CONTENT_LENGTH, HeaderValue::from(held.len()));
            incoming = UpstreamBody::Held(Some(held));
        }
        exchange.overhead += head_at.elapsed();
        parts
            .headers
            .insert(OVERHEAD_HEADER, overhead_value(exchange.overhead));
        Ok(Upstream {
            parts,
            incoming,
            observer,
            dialect: endpoint.dialect(),
        })
    }

    /// Renders the bound template for this caller and puts it in the body;
    /// whether the body changed. A body whose system field has the wrong shape
    /// is refused rather than sent without the governed prompt.
    fn govern(
        &self,
        snapshot: &crate::prompts::PromptSnapshot,
        proxy: &ProxyRuntime,
        endpoint: Endpoint,
        value: &mut serde_json::Value,
        exchange: &Exchange,
    ) -> Result<bool, ProxyError> {
        let date = crate::prompts::utc_date(self.clock.now());
        let facts = crate::prompts::RequestFacts {
            proxy_id: &proxy.id,
            proxy_name: &proxy.name,
            group_id: exchange.identity.as_ref().map(|i| i.group_id.as_str()),
            user: exchange.end_user.as_deref(),
            date: &date,
        };
        let Some(rendered) = snapshot.render(&facts, self.prompts.organization()) else {
            return Ok(false);
        };
        match system_prompt::inject(endpoint, value, &rendered.text) {
            system_prompt::Injection::Added => {
                tracing::debug!(proxy = %proxy.name, template = %rendered.template_id, "system prompt injected");
                Ok(true)
            }
            system_prompt::Injection::NotApplicable => Ok(false),
            system_prompt::Injection::Malformed(why) => {
                Err(ProxyError::new(Reason::BadRequest, why))
            }
        }
    }
}

/// The answer's body: straight from the upstream, or read whole and rewritten.
/// An enum, not a boxed body, so the common path costs no allocation.
pub enum UpstreamBody {
    Live(crate::coalesce::Coalesced<hyper::body::Incoming>),
    Held(Option<Bytes>),
}

impl http_body::Body for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            UpstreamBody::Live(inner) => std::pin::Pin::new(inner).poll_frame(cx),
            UpstreamBody::Held(held) => {
                std::task::Poll::Ready(held.take().map(|b| Ok(http_body::Frame::data(b))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            UpstreamBody::Live(inner) => inner.is_end_stream(),
            UpstreamBody::Held(held) => held.is_none(),
        }
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match self {
            UpstreamBody::Live(inner) => inner.size_hint(),
            UpstreamBody::Held(held) => {
                http_body::SizeHint::with_exact(held.as_ref().map_or(0, |b| b.len() as u64))
            }
        }
    }
}

/// Largest non-streamed answer read whole for restoring or inspection.
const HELD_ANSWER_LIMIT: usize = 8 * 1024 * 1024;

async fn read_bounded(mut body: UpstreamBody) -> Result<Bytes, ProxyError> {
    let mut buf = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| {
            ProxyError::new(
                Reason::UpstreamBroken,
                "the upstream connection broke mid-response",
            )
        })?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > HELD_ANSWER_LIMIT {
                return Err(ProxyError::new(
                    Reason::UpstreamBroken,
                    "the answer is too large to inspect",
                ));
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}

/// Reads a whole answer, restores and inspects its text; a block is an error.
async fn hold_answer(
    proxy: &ProxyRuntime,
    endpoint: Endpoint,
    body: UpstreamBody,
    filter: &mut AnswerFilter,
) -> Result<Bytes, ProxyError> {
    let read = tokio::time::timeout(proxy.idle_timeout, read_bounded(body))
        .await
        .map_err(|_| ProxyError::new(Reason::UpstreamIdle, "the upstream answer stalled"))??;
    let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(&read) else {
        return Ok(read); // not JSON: nothing we know how to read
    };
    let mut outcome = Ok(());
    let mut changed = false;
    portcullis_protocol::answer::visit_answer_texts(endpoint, &mut value, |text| {
        if outcome.is_err() {
            return;
        }
        let restored = filter.filter(text).and_then(|mut head| {
            filter.finish().map(|tail| {
                head.push_str(&tail);
                head
            })
        });
        match restored {
            Ok(t) if t != *text => {
                *text = t;
                changed = true;
            }
            Ok(_) => {}
            Err(why) => outcome = Err(why),
        }
    });
    outcome.map_err(|why| ProxyError::new(Reason::PolicyBlocked, why))?;
    // Nothing restored: the upstream's bytes go out as they came.
    if !changed {
        return Ok(read);
    }
    serde_json::to_vec(&value)
        .map(Bytes::from)
        .map_err(|_| ProxyError::new(Reason::Internal, "could not re-encode the answer"))
}

/// The upstream's answer, ready to relay: head already filtered, body not yet read.
struct Upstream {
    parts: http::response::Parts,
    incoming: UpstreamBody,
    observer: Option<StreamObserver>,
    dialect: Dialect,
}

trait RetainNames {
    fn retain_names(&mut self, keep: impl Fn(&HeaderName) -> bool);
}

impl RetainNames for HeaderMap {
    fn retain_names(&mut self, keep: impl Fn(&HeaderName) -> bool) {
        let drop: Vec<HeaderName> = self.keys().filter(|n| !keep(n)).cloned().collect();
        for name in drop {
            self.remove(name);
        }
    }
}

/// A finding as stored in an event: never the matched text.
pub(crate) fn finding_json(finding: &portcullis_policy::Finding) -> serde_json::Value {
    let mut v = serde_json::json!({
        "rule": &*finding.rule_id,
        "category": &*finding.category,
        "severity": finding.severity,
        "action": finding.action,
        "location": finding.location,
    });
    if let Some(score) = finding.score {
        v["score"] = score.into();
    }
    if let Some(entity) = &finding.entity {
        v["entity"] = serde_json::Value::from(&**entity);
    }
    v
}

/// What inspecting a request did to it.
struct Redaction {
    placeholders: Redactor,
    changed: bool,
}

/// Scans the request's text by part, in place: a `block` finding (or an entity
/// whose treatment is `block`) refuses it; `redact` findings are replaced by
/// placeholders or masks before the request goes upstream.
fn inspect_request(
    engine: &portcullis_policy::Engine,
    endpoint: Endpoint,
    value: &mut serde_json::Value,
    exchange: &mut Exchange,
) -> Result<Redaction, ProxyError> {
    use portcullis_policy::Location;
    use portcullis_protocol::content::{visit_request_texts, Part};
    let mut blocking: Vec<Arc<str>> = Vec::new();
    let mut redaction = Redaction {
        placeholders: Redactor::new(),
        changed: false,
    };
    visit_request_texts(endpoint, value, |part, text| {
        let location = match part {
            Part::Prompt => Location::Request,
            Part::ToolCall => Location::ToolCall,
            Part::ToolResult => Location::ToolResult,
        };
        let judged = crate::judge::judge(engine, location, text, &mut exchange.findings);
        exchange.proxy.metrics.count_policy_text(judged.remembered);
        for rule in judged.blocking {
            if !blocking.contains(&rule) {
                blocking.push(rule);
            }
        }
        let replacements = judged.replacements;
        if let Some(new) = redaction.placeholders.redact(text, &replacements) {
            *text = new;
            redaction.changed = true;
        }
    });
    if blocking.is_empty() {
        return Ok(redaction);
    }
    let ids: Vec<&str> = blocking.iter().map(|r| &**r).collect();
    Err(ProxyError::new(
        Reason::PolicyBlocked,
        format!("blocked by policy: {}", ids.join(", ")),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resets_read_like_openai_durations() {
        let text = |ms| reset_value(Duration::from_millis(ms));
        assert_eq!(text(0), "0ms");
        assert_eq!(text(250), "250ms");
        assert_eq!(text(1_000), "1s");
        assert_eq!(text(5_001), "6s");
        assert_eq!(text(90_000), "1m30s");
    }

    #[test]
    fn headers_name_each_kind_and_retry_after_only_when_refused() {
        let window = Window {
            limit: 60,
            remaining: 0,
            reset: Duration::from_secs(60),
        };
        let refused = Verdict {
            allowed: false,
            retry_after: Duration::from_secs(2),
            requests: Some(window),
            tokens: None,
        };
        let mut headers = HeaderMap::new();
        rate_limit_headers(&mut headers, &refused);
        assert_eq!(headers["x-ratelimit-limit-requests"], "60");
        assert_eq!(headers["x-ratelimit-remaining-requests"], "0");
        assert_eq!(headers["x-ratelimit-reset-requests"], "1m0s");
        assert_eq!(headers[header::RETRY_AFTER], "2");
        assert!(!headers.contains_key("x-ratelimit-limit-tokens"));

        let allowed = Verdict {
            allowed: true,
            retry_after: Duration::ZERO,
            requests: None,
            tokens: Some(window),
        };
        let mut headers = HeaderMap::new();
        rate_limit_headers(&mut headers, &allowed);
        assert_eq!(headers["x-ratelimit-limit-tokens"], "60");
        assert!(!headers.contains_key(header::RETRY_AFTER));
        assert!(!headers.contains_key("x-ratelimit-limit-requests"));
    }

    #[test]
    fn refusals_map_to_429_and_503_in_the_callers_protocol() {
        assert_eq!(Reason::RateLimited.status(), 429);
        assert_eq!(Reason::LimiterUnavailable.status(), 503);
        let r = error_response(Dialect::Anthropic, Reason::RateLimited, "slow down");
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    }
}
