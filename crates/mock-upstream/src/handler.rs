//! Request flow shared by every route: routing, body limits, recording,
//! authentication, faults, latency and the headers every response carries.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use http_body::Body as _;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::body::{End, MockBody, MockError, STALL};
use crate::errors::{ApiError, Flavor};
use crate::faults::{Fault, Timing};
use crate::recorder::Recorder;
use crate::text::push_u64;
use crate::{anthropic, openai, MockConfig};

/// Largest request body accepted; bigger ones get 413 like the real APIs.
pub(crate) const MAX_BODY: usize = 32 * 1024 * 1024;

/// Shared by all connections; everything in it is either immutable,
/// atomic, or behind a lock that is never held across an await.
pub(crate) struct State {
    pub config: MockConfig,
    pub recorder: Recorder,
    next_id: AtomicU64,
    /// Open connections, so tests can prove stalls do not leak tasks.
    pub active: AtomicUsize,
    /// Constant bodies, serialised once.
    models: Bytes,
    health: Bytes,
}

impl State {
    pub(crate) fn new(config: MockConfig) -> Self {
        Self {
            recorder: Recorder::new(config.record_limit),
            config,
            next_id: AtomicU64::new(0),
            active: AtomicUsize::new(0),
            models: openai::models_body(),
            health: Bytes::from_static(br#"{"status":"ok"}"#),
        }
    }

    fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed) + 1
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Endpoint {
    Chat,
    Completions,
    Embeddings,
    Responses,
    Models,
    Messages,
}

impl Endpoint {
    fn flavor(self) -> Flavor {
        match self {
            Endpoint::Messages => Flavor::Anthropic,
            _ => Flavor::OpenAi,
        }
    }
}

enum Route {
    ListRequests,
    ClearRequests,
    Health,
    Provider(Endpoint),
    WrongMethod(Flavor, &'static str),
    NotFound,
}

impl Route {
    fn of(method: &Method, path: &str) -> Route {
        let (allowed, route) = match path {
            "/__mock/requests" => {
                return match *method {
                    Method::GET => Route::ListRequests,
                    Method::DELETE => Route::ClearRequests,
                    _ => Route::WrongMethod(Flavor::OpenAi, "GET, DELETE"),
                }
            }
            "/health" => (Method::GET, Route::Health),
            "/v1/chat/completions" => (Method::POST, Route::Provider(Endpoint::Chat)),
            "/v1/completions" => (Method::POST, Route::Provider(Endpoint::Completions)),
            "/v1/embeddings" => (Method::POST, Route::Provider(Endpoint::Embeddings)),
            "/v1/responses" => (Method::POST, Route::Provider(Endpoint::Responses)),
            "/v1/models" => (Method::GET, Route::Provider(Endpoint::Models)),
            "/v1/messages" => (Method::POST, Route::Provider(Endpoint::Messages)),
            _ => return Route::NotFound,
        };
        if *method == allowed {
            return route;
        }
        let flavor = match route {
            Route::Provider(endpoint) => endpoint.flavor(),
            _ => Flavor::OpenAi,
        };
        let allow = if allowed == Method::GET {
            "GET"
        } else {
            "POST"
        };
        Route::WrongMethod(flavor, allow)
    }

    /// Error format and provider headers; `None` for the mock's own routes.
    fn flavor(&self) -> Option<Flavor> {
        match self {
            Route::ListRequests | Route::ClearRequests | Route::Health => None,
            Route::Provider(endpoint) => Some(endpoint.flavor()),
            Route::WrongMethod(flavor, _) => Some(*flavor),
            Route::NotFound => Some(Flavor::OpenAi),
        }
    }
}

/// Per-request facts the endpoint builders need.
pub(crate) struct Ctx {
    pub n: u64,
    pub created: u64,
    pub chunks: usize,
    header_fault: Option<Fault>,
    /// `x-mock-answer`: the answer to give whatever was asked, so a test can
    /// make the answer say what no request says (response inspection).
    answer: Option<String>,
}

impl Ctx {
    /// The answer to a conversation whose last user text is `user_text`.
    pub(crate) fn reply_for(&self, user_text: Option<&str>) -> String {
        match &self.answer {
            Some(answer) => answer.clone(),
            None => crate::text::reply_for(user_text),
        }
    }

    /// The fault for this request (`x-mock-fault` wins over `model`); error
    /// faults come back as the error to send.
    pub(crate) fn fault_for(&self, model: &str) -> Result<Option<Fault>, ApiError> {
        match self.header_fault.or_else(|| Fault::from_name(model)) {
            Some(Fault::Error(status)) => Err(ApiError::fault(status)),
            fault => Ok(fault),
        }
    }
}

/// A successful answer before faults and pacing are applied.
pub(crate) enum Reply {
    Json(Bytes),
    /// One entry per SSE event (and per body frame).
    Sse(Vec<Bytes>),
}

pub(crate) struct Generated {
    pub reply: Reply,
    /// Only stall/disconnect faults; error faults are returned as errors.
    pub fault: Option<Fault>,
}

pub(crate) fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::invalid_json(&e))
}

pub(crate) fn to_json<T: Serialize>(value: &T) -> Result<Bytes, ApiError> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(|e| ApiError::internal(format!("mock-upstream could not encode its reply: {e}")))
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pub(crate) async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<MockBody>, MockError> {
    let started = Instant::now();
    let n = state.next_id();
    let route = Route::of(req.method(), req.uri().path());
    let flavor = route.flavor();
    let response = match route {
        // Inspection is not recorded: reading the log must not change it.
        Route::ListRequests => match to_json(&state.recorder.snapshot()) {
            Ok(body) => json_response(StatusCode::OK, MockBody::full(body)),
            Err(err) => err.into_response(Flavor::OpenAi),
        },
        Route::ClearRequests => {
            state.recorder.clear();
            let mut resp = Response::new(MockBody::full(Bytes::new()));
            *resp.status_mut() = StatusCode::NO_CONTENT;
            resp
        }
        route => {
            let (parts, body) = req.into_parts();
            let error_flavor = flavor.unwrap_or(Flavor::OpenAi);
            let body = match read_body(&parts.headers, body).await {
                Ok(body) => body,
                Err(ReadError::TooLarge) => {
                    state.recorder.record(&parts, &[]);
                    let resp = ApiError::too_large(MAX_BODY).into_response(error_flavor);
                    return Ok(finish(resp, flavor, n, started));
                }
                Err(ReadError::Broken(e)) => return Err(MockError::RequestBody(e)),
            };
            state.recorder.record(&parts, &body);
            match route {
                Route::Provider(endpoint) => {
                    return provider(&state, endpoint, &parts, &body, n, started).await
                }
                Route::Health => {
                    json_response(StatusCode::OK, MockBody::full(state.health.clone()))
                }
                Route::WrongMethod(flavor, allow) => {
                    ApiError::method_not_allowed(parts.method.as_str(), parts.uri.path(), allow)
                        .into_response(flavor)
                }
                _ => ApiError::not_found(parts.method.as_str(), parts.uri.path())
                    .into_response(Flavor::OpenAi),
            }
        }
    };
    Ok(finish(response, flavor, n, started))
}

async fn provider(
    state: &State,
    endpoint: Endpoint,
    parts: &Parts,
    body: &[u8],
    n: u64,
    started: Instant,
) -> Result<Response<MockBody>, MockError> {
    let flavor = endpoint.flavor();
    let defaults = Timing::from_config(&state.config);
    let (timing, generated) = match defaults.with_headers(&parts.headers) {
        Ok(timing) => (
            timing,
            generate(state, endpoint, parts, body, n, timing.chunks),
        ),
        Err(err) => (defaults, Err(err)),
    };
    let response = match generated {
        Err(err) => err.into_response(flavor),
        Ok(Generated { fault, reply }) => match (fault, reply) {
            (Some(Fault::Stall), _) => {
                // Dropped with the connection if the client gives up first.
                tokio::time::sleep(STALL).await;
                return Err(MockError::StallEnded(STALL));
            }
            (Some(Fault::Disconnect), Reply::Json(_)) => {
                wait(timing.latency).await;
                return Err(MockError::Disconnect);
            }
            (Some(Fault::StallStream), Reply::Json(_)) => {
                let body = MockBody::stream(Vec::new(), Duration::ZERO, End::Stall);
                json_response(StatusCode::OK, body)
            }
            (_, Reply::Json(bytes)) => json_response(StatusCode::OK, MockBody::full(bytes)),
            (fault, Reply::Sse(mut frames)) => {
                let end = match fault {
                    Some(Fault::StallStream) => {
                        frames.truncate(1);
                        End::Stall
                    }
                    Some(Fault::Disconnect) => {
                        frames.truncate(2);
                        End::Abort
                    }
                    _ => End::Finish,
                };
                sse_response(MockBody::stream(frames, timing.chunk_delay, end))
            }
        },
    };
    wait(timing.latency).await;
    Ok(finish(response, Some(flavor), n, started))
}

/// Checks in the order the real APIs do (roughly): explicit header fault,
/// required headers, key, body, then a fault chosen by `model`.
fn generate(
    state: &State,
    endpoint: Endpoint,
    parts: &Parts,
    body: &[u8],
    n: u64,
    chunks: usize,
) -> Result<Generated, ApiError> {
    let header_fault = Fault::from_headers(&parts.headers)?;
    if let Some(Fault::Error(status)) = header_fault {
        return Err(ApiError::fault(status));
    }
    if endpoint == Endpoint::Messages && !parts.headers.contains_key("anthropic-version") {
        return Err(ApiError::invalid_request(
            "anthropic-version: header is required",
        ));
    }
    check_key(
        state.config.expected_key.as_deref(),
        endpoint.flavor(),
        &parts.headers,
    )?;
    let answer = parts
        .headers
        .get("x-mock-answer")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let ctx = Ctx {
        n,
        created: unix_now(),
        chunks,
        header_fault,
        answer,
    };
    match endpoint {
        Endpoint::Chat => openai::chat(&ctx, body),
        Endpoint::Completions => openai::completions(&ctx, body),
        Endpoint::Embeddings => openai::embeddings(&ctx, body),
        Endpoint::Responses => openai::responses(&ctx, body),
        Endpoint::Models => Ok(Generated {
            reply: Reply::Json(state.models.clone()),
            fault: ctx.fault_for("")?,
        }),
        Endpoint::Messages => anthropic::messages(&ctx, body),
    }
}

fn check_key(expected: Option<&str>, flavor: Flavor, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(expected) = expected else {
        return Ok(());
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let presented = match flavor {
        Flavor::OpenAi => header("authorization").and_then(|v| {
            let (scheme, key) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| key.trim())
        }),
        Flavor::Anthropic => header("x-api-key").map(str::trim),
    };
    match presented {
        None | Some("") => Err(ApiError::missing_key(flavor)),
        Some(key) if key == expected => Ok(()),
        Some(_) => Err(ApiError::wrong_key(flavor)),
    }
}

enum ReadError {
    TooLarge,
    Broken(Box<dyn std::error::Error + Send + Sync>),
}

async fn read_body(headers: &HeaderMap, body: Incoming) -> Result<Bytes, ReadError> {
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > MAX_BODY as u64) {
        return Err(ReadError::TooLarge);
    }
    if body.is_end_stream() {
        return Ok(Bytes::new());
    }
    match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<LengthLimitError>() => Err(ReadError::TooLarge),
        Err(e) => Err(ReadError::Broken(e)),
    }
}

async fn wait(duration: Duration) {
    if !duration.is_zero() {
        tokio::time::sleep(duration).await;
    }
}

fn json_response(status: StatusCode, body: MockBody) -> Response<MockBody> {
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

fn sse_response(body: MockBody) -> Response<MockBody> {
    let mut resp = Response::new(body);
    let headers = resp.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache"),
    );
    resp
}

/// Adds the ids and timing headers clients (and the gateway) log and relay.
fn finish(
    mut resp: Response<MockBody>,
    flavor: Option<Flavor>,
    n: u64,
    started: Instant,
) -> Response<MockBody> {
    let mut id = Vec::with_capacity(32);
    id.extend_from_slice(b"req_mock_");
    push_u64(&mut id, n);
    let headers = resp.headers_mut();
    if let Ok(id) = HeaderValue::from_bytes(&id) {
        if flavor == Some(Flavor::Anthropic) {
            headers.insert(HeaderName::from_static("request-id"), id.clone());
        }
        headers.insert(HeaderName::from_static("x-request-id"), id);
    }
    if flavor == Some(Flavor::OpenAi) {
        let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        headers.insert(
            HeaderName::from_static("openai-processing-ms"),
            HeaderValue::from(ms),
        );
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_and_methods() {
        assert!(matches!(
            Route::of(&Method::POST, "/v1/chat/completions"),
            Route::Provider(Endpoint::Chat)
        ));
        assert!(matches!(
            Route::of(&Method::GET, "/v1/messages"),
            Route::WrongMethod(Flavor::Anthropic, "POST")
        ));
        assert!(matches!(Route::of(&Method::GET, "/nope"), Route::NotFound));
        assert!(matches!(
            Route::of(&Method::DELETE, "/__mock/requests"),
            Route::ClearRequests
        ));
    }

    #[test]
    fn key_check_per_flavor() {
        let mut h = HeaderMap::new();
        assert!(check_key(None, Flavor::OpenAi, &h).is_ok());
        assert!(check_key(Some("k"), Flavor::OpenAi, &h).is_err());
        h.insert("authorization", HeaderValue::from_static("Bearer k"));
        assert!(check_key(Some("k"), Flavor::OpenAi, &h).is_ok());
        assert!(check_key(Some("other"), Flavor::OpenAi, &h).is_err());
        h.insert("x-api-key", HeaderValue::from_static("k"));
        assert!(check_key(Some("k"), Flavor::Anthropic, &h).is_ok());
    }
}
