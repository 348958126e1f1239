//! Routing and the response of each endpoint.

use crate::text::{embedding, reply_for, request_text, split, tokens};
use crate::{MockBody, RecordedRequest, Shared};
use base64::Engine;
use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use serde_json::{json, Value};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

const MAX_BODY: usize = 32 * 1024 * 1024;
const RECORD_BODY: usize = 64 * 1024;
const STALL: Duration = Duration::from_secs(3600);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Dialect {
    OpenAi,
    Anthropic,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum StreamFault {
    None,
    StallAfterFirst,
    DisconnectAfterTwo,
}

fn full(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<MockBody> {
    let mut r = Response::new(
        Full::new(body.into())
            .map_err(|never| match never {})
            .boxed(),
    );
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(content_type),
    );
    r
}

fn json_response(status: StatusCode, value: &Value) -> Response<MockBody> {
    full(status, "application/json", value.to_string())
}

fn error(dialect: Dialect, status: StatusCode, kind: &str, message: &str) -> Response<MockBody> {
    let body = match dialect {
        Dialect::OpenAi => {
            json!({"error": {"message": message, "type": kind, "param": null, "code": kind}})
        }
        Dialect::Anthropic => json!({"type": "error", "error": {"type": kind, "message": message}}),
    };
    json_response(status, &body)
}

fn header<'a>(req: &'a http::request::Parts, name: &str) -> Option<&'a str> {
    req.headers.get(name).and_then(|v| v.to_str().ok())
}

fn header_num(req: &http::request::Parts, name: &str) -> Option<u64> {
    header(req, name).and_then(|v| v.trim().parse().ok())
}

pub(crate) async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<MockBody>, std::io::Error> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_owned();
    match (&parts.method, path.as_str()) {
        (&Method::GET, "/health") => {
            return Ok(json_response(StatusCode::OK, &json!({"status": "ok"})))
        }
        (&Method::GET, "/__mock/requests") => {
            let recorded: Vec<RecordedRequest> = shared
                .recorded
                .lock()
                .map(|r| r.iter().cloned().collect())
                .unwrap_or_default();
            return Ok(json_response(
                StatusCode::OK,
                &serde_json::to_value(recorded).unwrap_or(Value::Null),
            ));
        }
        (&Method::DELETE, "/__mock/requests") => {
            if let Ok(mut r) = shared.recorded.lock() {
                r.clear();
            }
            return Ok(full(
                StatusCode::NO_CONTENT,
                "application/json",
                Bytes::new(),
            ));
        }
        _ => {}
    }
    let dialect = if path == "/v1/messages" {
        Dialect::Anthropic
    } else {
        Dialect::OpenAi
    };
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return Ok(error(
                dialect,
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request_error",
                "request body too large",
            ))
        }
    };
    record(&shared, &parts, &body);
    let n = shared.counter.fetch_add(1, Ordering::Relaxed) + 1;
    let mut response = respond(&shared, &parts, &path, dialect, &body, n).await;
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&format!("req_mock_{n}")) {
        headers.insert("x-request-id", v.clone());
        if dialect == Dialect::Anthropic {
            headers.insert("request-id", v);
        } else {
            headers.insert("openai-processing-ms", HeaderValue::from_static("1"));
        }
    }
    Ok(response)
}

fn record(shared: &Shared, parts: &http::request::Parts, body: &Bytes) {
    let entry = RecordedRequest {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: String::from_utf8_lossy(&body[..body.len().min(RECORD_BODY)]).into_owned(),
    };
    if let Ok(mut r) = shared.recorded.lock() {
        if r.len() >= shared.config.record_limit.max(1) {
            r.pop_front();
        }
        r.push_back(entry);
    }
}

async fn respond(
    shared: &Shared,
    parts: &http::request::Parts,
    path: &str,
    dialect: Dialect,
    body: &Bytes,
    n: u64,
) -> Response<MockBody> {
    let endpoint = match (&parts.method, path) {
        (
            &Method::POST,
            "/v1/chat/completions"
            | "/v1/completions"
            | "/v1/embeddings"
            | "/v1/responses"
            | "/v1/messages",
        ) => path,
        (&Method::GET, "/v1/models") => path,
        (
            _,
            "/v1/chat/completions"
            | "/v1/completions"
            | "/v1/embeddings"
            | "/v1/responses"
            | "/v1/messages"
            | "/v1/models",
        ) => {
            return error(
                dialect,
                StatusCode::METHOD_NOT_ALLOWED,
                "invalid_request_error",
                "method not allowed",
            );
        }
        _ => {
            return error(
                dialect,
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                &format!("unknown url {path}"),
            )
        }
    };

    let presented = match dialect {
        Dialect::OpenAi => header(parts, "authorization").and_then(|v| v.strip_prefix("Bearer ")),
        Dialect::Anthropic => header(parts, "x-api-key"),
    };
    if let Some(expected) = &shared.config.expected_key {
        if presented != Some(expected.as_str()) {
            return error(
                dialect,
                StatusCode::UNAUTHORIZED,
                "authentication_error",
                "invalid api key",
            );
        }
    }
    if dialect == Dialect::Anthropic && header(parts, "anthropic-version").is_none() {
        return error(
            dialect,
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "anthropic-version: header is required",
        );
    }

    let request: Value = if parts.method == Method::GET {
        Value::Null
    } else {
        match serde_json::from_slice(body) {
            Ok(v @ Value::Object(_)) => v,
            _ => {
                return error(
                    dialect,
                    StatusCode::BAD_REQUEST,
                    "invalid_request_error",
                    "body is not a JSON object",
                )
            }
        }
    };
    let model = request["model"].as_str().unwrap_or("mock-model").to_owned();
    let fault = header(parts, "x-mock-fault")
        .map(str::to_owned)
        .unwrap_or_else(|| model.clone());

    let latency = header_num(parts, "x-mock-latency-ms")
        .map(Duration::from_millis)
        .unwrap_or(shared.config.latency);
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if let Some(status) = fault
        .strip_prefix("mock-error-")
        .and_then(|s| s.parse::<u16>().ok())
    {
        return fault_error(dialect, status);
    }
    if fault == "mock-stall" {
        tokio::time::sleep(STALL).await;
    }
    let stream_fault = match fault.as_str() {
        "mock-stall-stream" => StreamFault::StallAfterFirst,
        "mock-disconnect" => StreamFault::DisconnectAfterTwo,
        _ => StreamFault::None,
    };
    if stream_fault == StreamFault::DisconnectAfterTwo && request["stream"] != true {
        let broken = futures_util::stream::once(async {
            Err::<Frame<Bytes>, _>(std::io::Error::other("mock disconnect"))
        });
        return Response::new(BodyExt::boxed(StreamBody::new(broken)));
    }

    let chunks = header_num(parts, "x-mock-chunks")
        .map(|c| c.clamp(1, 1000) as usize)
        .unwrap_or(shared.config.chunks);
    let delay = header_num(parts, "x-mock-chunk-delay-ms")
        .map(Duration::from_millis)
        .unwrap_or(shared.config.chunk_delay);
    let (all, last_user) = request_text(&request);
    let reply = reply_for(last_user.as_deref());
    let (input, output) = (tokens(&all), tokens(&reply));
    let created = 1_700_000_000 + n;
    let stream = request["stream"] == true;
    let pieces = split(&reply, chunks);

    match endpoint {
        "/v1/models" => {
            let data: Vec<Value> = ["gpt-4o", "gpt-4o-mini", "text-embedding-3-small", "claude-sonnet-4-5"]
                .iter()
                .map(|id| json!({"id": id, "object": "model", "created": 1_700_000_000, "owned_by": "mock"}))
                .collect();
            json_response(StatusCode::OK, &json!({"object": "list", "data": data}))
        }
        "/v1/embeddings" => embeddings(&request, &model),
        "/v1/chat/completions" | "/v1/completions" => {
            let chat = endpoint == "/v1/chat/completions";
            let usage = json!({"prompt_tokens": input, "completion_tokens": output, "total_tokens": input + output, "prompt_tokens_details": {"cached_tokens": 0}, "completion_tokens_details": {"reasoning_tokens": 0}});
            let (object, chunk_object) = if chat {
                ("chat.completion", "chat.completion.chunk")
            } else {
                ("text_completion", "text_completion")
            };
            let id = format!("{}-mock-{n}", if chat { "chatcmpl" } else { "cmpl" });
            if !stream {
                let choice = if chat {
                    json!({"index": 0, "message": {"role": "assistant", "content": reply, "refusal": null}, "logprobs": null, "finish_reason": "stop"})
                } else {
                    json!({"index": 0, "text": reply, "logprobs": null, "finish_reason": "stop"})
                };
                return json_response(
                    StatusCode::OK,
                    &json!({"id": id, "object": object, "created": created, "model": model, "choices": [choice], "usage": usage, "system_fingerprint": "fp_mock"}),
                );
            }
            let include_usage = request["stream_options"]["include_usage"] == true;
            let chunk = |choices: Value, usage: Value| {
                let mut c = json!({"id": id, "object": chunk_object, "created": created, "model": model, "system_fingerprint": "fp_mock", "choices": choices});
                if include_usage {
                    c["usage"] = usage;
                }
                Bytes::from(format!("data: {c}\n\n"))
            };
            let piece = |text: Value, finish: Value| {
                if chat {
                    json!([{"index": 0, "delta": text, "logprobs": null, "finish_reason": finish}])
                } else {
                    json!([{"index": 0, "text": text.get("content").cloned().unwrap_or(json!("")), "logprobs": null, "finish_reason": finish}])
                }
            };
            let mut events = vec![chunk(
                piece(json!({"role": "assistant", "content": ""}), Value::Null),
                Value::Null,
            )];
            events.extend(
                pieces
                    .iter()
                    .map(|p| chunk(piece(json!({"content": p}), Value::Null), Value::Null)),
            );
            events.push(chunk(piece(json!({}), json!("stop")), Value::Null));
            if include_usage {
                events.push(chunk(json!([]), usage));
            }
            events.push(Bytes::from_static(b"data: [DONE]\n\n"));
            sse(events, delay, stream_fault)
        }
        "/v1/responses" => {
            let usage = json!({"input_tokens": input, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": output, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": input + output});
            let msg_id = format!("msg_mock_{n}");
            let content = json!({"type": "output_text", "text": reply, "annotations": []});
            let item = json!({"type": "message", "id": msg_id, "status": "completed", "role": "assistant", "content": [content]});
            let done = json!({"id": format!("resp_mock_{n}"), "object": "response", "created_at": created, "status": "completed", "model": model, "output": [item], "usage": usage});
            if !stream {
                return json_response(StatusCode::OK, &done);
            }
            let mut in_progress = done.clone();
            in_progress["status"] = json!("in_progress");
            in_progress["output"] = json!([]);
            in_progress["usage"] = Value::Null;
            let mut seq = 0u64;
            let mut ev = |kind: &str, mut data: Value| {
                data["type"] = json!(kind);
                data["sequence_number"] = json!(seq);
                seq += 1;
                Bytes::from(format!("event: {kind}\ndata: {data}\n\n"))
            };
            let mut events = vec![
                ev("response.created", json!({"response": in_progress.clone()})),
                ev("response.in_progress", json!({"response": in_progress})),
                ev(
                    "response.output_item.added",
                    json!({"output_index": 0, "item": {"type": "message", "id": msg_id, "status": "in_progress", "role": "assistant", "content": []}}),
                ),
                ev(
                    "response.content_part.added",
                    json!({"item_id": msg_id, "output_index": 0, "content_index": 0, "part": {"type": "output_text", "text": "", "annotations": []}}),
                ),
            ];
            for p in &pieces {
                events.push(ev(
                    "response.output_text.delta",
                    json!({"item_id": msg_id, "output_index": 0, "content_index": 0, "delta": p}),
                ));
            }
            events.push(ev(
                "response.output_text.done",
                json!({"item_id": msg_id, "output_index": 0, "content_index": 0, "text": reply}),
            ));
            events.push(ev(
                "response.content_part.done",
                json!({"item_id": msg_id, "output_index": 0, "content_index": 0, "part": content}),
            ));
            events.push(ev(
                "response.output_item.done",
                json!({"output_index": 0, "item": item}),
            ));
            events.push(ev("response.completed", json!({"response": done})));
            sse(events, delay, stream_fault)
        }
        _ => {
            // Anthropic Messages.
            let usage = json!({"input_tokens": input, "output_tokens": output, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0});
            let id = format!("msg_mock_{n}");
            if !stream {
                return json_response(
                    StatusCode::OK,
                    &json!({"id": id, "type": "message", "role": "assistant", "model": model, "content": [{"type": "text", "text": reply}], "stop_reason": "end_turn", "stop_sequence": null, "usage": usage}),
                );
            }
            let ev =
                |kind: &str, data: Value| Bytes::from(format!("event: {kind}\ndata: {data}\n\n"));
            let mut events = vec![
                ev(
                    "message_start",
                    json!({"type": "message_start", "message": {"id": id, "type": "message", "role": "assistant", "model": model, "content": [], "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": input, "output_tokens": 1, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}}}),
                ),
                ev(
                    "content_block_start",
                    json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
                ),
                ev("ping", json!({"type": "ping"})),
            ];
            for p in &pieces {
                events.push(ev("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}})));
            }
            events.push(ev(
                "content_block_stop",
                json!({"type": "content_block_stop", "index": 0}),
            ));
            events.push(ev("message_delta", json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null}, "usage": {"output_tokens": output}})));
            events.push(ev("message_stop", json!({"type": "message_stop"})));
            sse(events, delay, stream_fault)
        }
    }
}

fn fault_error(dialect: Dialect, status: u16) -> Response<MockBody> {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let kind = match (dialect, status.as_u16()) {
        (_, 400) => "invalid_request_error",
        (_, 401) => "authentication_error",
        (_, 429) => "rate_limit_error",
        (Dialect::Anthropic, 529 | 503) => "overloaded_error",
        _ => "api_error",
    };
    let mut r = error(
        dialect,
        status,
        kind,
        &format!("mock error {}", status.as_u16()),
    );
    if status == StatusCode::TOO_MANY_REQUESTS {
        let h = r.headers_mut();
        h.insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
        h.insert("x-ratelimit-limit-requests", HeaderValue::from_static("60"));
        h.insert(
            "x-ratelimit-remaining-requests",
            HeaderValue::from_static("0"),
        );
        h.insert("x-ratelimit-reset-requests", HeaderValue::from_static("1s"));
    }
    r
}

fn embeddings(request: &Value, model: &str) -> Response<MockBody> {
    let inputs: Vec<String> = match &request["input"] {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items
            .iter()
            .map(|i| {
                i.as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| i.to_string())
            })
            .collect(),
        _ => {
            return error(
                Dialect::OpenAi,
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "input: required",
            )
        }
    };
    let dims = request["dimensions"].as_u64().unwrap_or(8).clamp(1, 4096) as usize;
    let base64 = request["encoding_format"] == "base64";
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, text)| {
            let v = embedding(text, dims);
            let encoded = if base64 {
                let bytes: Vec<u8> = v.iter().flat_map(|f| f.to_le_bytes()).collect();
                json!(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(v)
            };
            json!({"object": "embedding", "index": i, "embedding": encoded})
        })
        .collect();
    let used: u64 = inputs.iter().map(|t| tokens(t)).sum();
    json_response(
        StatusCode::OK,
        &json!({"object": "list", "data": data, "model": model, "usage": {"prompt_tokens": used, "total_tokens": used}}),
    )
}

/// A server-sent-event response; each event is its own body frame.
fn sse(events: Vec<Bytes>, delay: Duration, fault: StreamFault) -> Response<MockBody> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(16);
    tokio::spawn(async move {
        for (i, event) in events.into_iter().enumerate() {
            match fault {
                StreamFault::StallAfterFirst if i == 1 => {
                    // Hold the connection until the client gives up.
                    tokio::select! {
                        _ = tx.closed() => {}
                        _ = tokio::time::sleep(STALL) => {}
                    }
                    return;
                }
                StreamFault::DisconnectAfterTwo if i == 2 => {
                    let _ = tx.send(Err(std::io::Error::other("mock disconnect"))).await;
                    return;
                }
                _ => {}
            }
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            if tx.send(Ok(Frame::data(event))).await.is_err() {
                return;
            }
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let mut r = Response::new(BodyExt::boxed(StreamBody::new(stream)));
    let h = r.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache"),
    );
    r
}
