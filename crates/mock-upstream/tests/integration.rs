#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]
//! Talks to an in-process `MockUpstream` over real HTTP, as the gateway does.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use mock_upstream::{MockConfig, MockUpstream};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

type HttpClient = Client<HttpConnector, Full<Bytes>>;

const ANTHROPIC: &[(&str, &str)] = &[("x-api-key", "k"), ("anthropic-version", "2023-06-01")];

fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

async fn start(config: MockConfig) -> MockUpstream {
    MockUpstream::start("127.0.0.1:0".parse().unwrap(), config)
        .await
        .unwrap()
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    fn text(&self) -> String {
        String::from_utf8(self.body.to_vec()).expect("body is UTF-8")
    }

    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("missing header {name}"))
            .to_str()
            .unwrap()
    }
}

fn request(
    mock: &MockUpstream,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Request<Full<Bytes>> {
    let mut builder = Request::builder()
        .method(method)
        .uri(format!("{}{path}", mock.base_url()));
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(Full::new(body.into())).unwrap()
}

async fn send(client: &HttpClient, req: Request<Full<Bytes>>) -> Reply {
    let resp = client.request(req).await.unwrap();
    let (parts, body) = resp.into_parts();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body: body.collect().await.unwrap().to_bytes(),
    }
}

async fn post(mock: &MockUpstream, path: &str, headers: &[(&str, &str)], body: &Value) -> Reply {
    let mut all = vec![("content-type", "application/json")];
    all.extend_from_slice(headers);
    let req = request(mock, Method::POST, path, &all, body.to_string());
    send(&client(), req).await
}

async fn get(mock: &MockUpstream, path: &str) -> Reply {
    send(
        &client(),
        request(mock, Method::GET, path, &[], Bytes::new()),
    )
    .await
}

#[derive(Debug)]
struct Event {
    name: Option<String>,
    data: String,
}

impl Event {
    fn json(&self) -> Value {
        serde_json::from_str(&self.data)
            .unwrap_or_else(|e| panic!("event data not JSON ({e}): {}", self.data))
    }
}

/// Strict SSE parse: every block is `[event: X\n]data: Y` and ends in a blank line.
fn parse_sse(body: &str) -> Vec<Event> {
    assert!(
        body.ends_with("\n\n"),
        "stream must end with a blank line: {body:?}"
    );
    body.trim_end_matches('\n')
        .split("\n\n")
        .map(|block| {
            let mut name = None;
            let mut data = None;
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event: ") {
                    name = Some(v.to_owned());
                } else if let Some(v) = line.strip_prefix("data: ") {
                    data = Some(v.to_owned());
                } else {
                    panic!("unexpected SSE line {line:?}");
                }
            }
            Event {
                name,
                data: data.expect("every event has data"),
            }
        })
        .collect()
}

fn tokens(chars: usize) -> u64 {
    chars.div_ceil(4).max(1) as u64
}

fn chars(s: &str) -> usize {
    s.chars().count()
}

fn chat_body(user: &str, extra: Value) -> Value {
    let mut body = json!({
        "model": "gpt-4o",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": user},
        ],
    });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

/// Content deltas of a chat stream, checking the chunk protocol on the way.
fn chat_stream_pieces(events: &[Event], include_usage: bool) -> (Vec<String>, Option<Value>) {
    assert_eq!(events.last().unwrap().data, "[DONE]");
    let chunks: Vec<Value> = events[..events.len() - 1].iter().map(Event::json).collect();
    for c in &chunks {
        assert_eq!(c["object"], "chat.completion.chunk");
        assert!(c["id"].as_str().unwrap().starts_with("chatcmpl-mock-"));
        assert!(events.iter().all(|e| e.name.is_none()));
        if include_usage {
            assert!(c.get("usage").is_some(), "usage key on every chunk: {c}");
        } else {
            assert!(
                c.get("usage").is_none(),
                "no usage key without include_usage: {c}"
            );
        }
    }
    assert_eq!(
        chunks[0]["choices"][0]["delta"],
        json!({"role": "assistant", "content": "", "refusal": null})
    );
    let usage = if include_usage {
        let last = chunks.last().unwrap();
        assert_eq!(last["choices"], json!([]));
        Some(last["usage"].clone())
    } else {
        None
    };
    let body_chunks = &chunks[1..chunks.len() - usize::from(include_usage)];
    let (finish, content) = body_chunks.split_last().unwrap();
    assert_eq!(finish["choices"][0]["delta"], json!({}));
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
    let pieces = content
        .iter()
        .map(|c| {
            assert!(c["choices"][0]["finish_reason"].is_null());
            if include_usage {
                assert!(c["usage"].is_null());
            }
            c["choices"][0]["delta"]["content"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    (pieces, usage)
}

#[tokio::test]
async fn chat_non_stream_shape_and_usage() {
    let mock = start(MockConfig::default()).await;
    let reply = post(
        &mock,
        "/v1/chat/completions",
        &[],
        &chat_body("Hello there", json!({})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("content-type"), "application/json");
    assert!(reply.header("x-request-id").starts_with("req_mock_"));
    reply.header("openai-processing-ms").parse::<u64>().unwrap();
    let v = reply.json();
    assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-mock-"));
    assert_eq!(v["object"], "chat.completion");
    assert!(v["created"].as_u64().unwrap() > 1_600_000_000);
    assert_eq!(v["model"], "gpt-4o");
    assert_eq!(v["system_fingerprint"], "fp_mock");
    let choice = &v["choices"][0];
    assert_eq!(v["choices"].as_array().unwrap().len(), 1);
    assert_eq!(choice["index"], 0);
    assert_eq!(
        choice["message"],
        json!({"role": "assistant", "content": "You said: Hello there", "refusal": null})
    );
    assert!(choice["logprobs"].is_null());
    assert_eq!(choice["finish_reason"], "stop");

    let usage = &v["usage"];
    let prompt = tokens(chars("You are terse.") + chars("Hello there"));
    let completion = tokens(chars("You said: Hello there"));
    assert_eq!(usage["prompt_tokens"], prompt);
    assert_eq!(usage["completion_tokens"], completion);
    assert_eq!(usage["total_tokens"], prompt + completion);
    assert_eq!(usage["prompt_tokens_details"], json!({"cached_tokens": 0}));
    assert_eq!(
        usage["completion_tokens_details"],
        json!({"reasoning_tokens": 0})
    );

    // Content parts: text parts of the last user message are joined.
    let parts = json!({"model": "gpt-4o", "messages": [
        {"role": "user", "content": "earlier"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": [
            {"type": "text", "text": "part one"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
            {"type": "text", "text": "part two"}
        ]},
    ]});
    let v = post(&mock, "/v1/chat/completions", &[], &parts)
        .await
        .json();
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "You said: part one\npart two"
    );

    let none = json!({"model": "gpt-4o", "messages": [{"role": "system", "content": "s"}]});
    let v = post(&mock, "/v1/chat/completions", &[], &none).await.json();
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "Hello from mock-upstream."
    );
    mock.shutdown().await;
}

#[tokio::test]
async fn chat_stream_without_include_usage() {
    let mock = start(MockConfig::default()).await;
    let body = chat_body("Stream me something", json!({"stream": true}));
    let reply = post(&mock, "/v1/chat/completions", &[], &body).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("content-type"), "text/event-stream");
    let events = parse_sse(&reply.text());
    let (pieces, usage) = chat_stream_pieces(&events, false);
    assert!(usage.is_none());
    assert_eq!(pieces.len(), 8, "default chunk count");
    assert_eq!(pieces.concat(), "You said: Stream me something");
    mock.shutdown().await;
}

#[tokio::test]
async fn chat_stream_include_usage_adds_a_usage_chunk() {
    let mock = start(MockConfig::default()).await;
    let body = chat_body(
        "Count my tokens",
        json!({"stream": true, "stream_options": {"include_usage": true}}),
    );
    let events = parse_sse(&post(&mock, "/v1/chat/completions", &[], &body).await.text());
    let (pieces, usage) = chat_stream_pieces(&events, true);
    assert_eq!(pieces.concat(), "You said: Count my tokens");
    let usage = usage.unwrap();
    let prompt = tokens(chars("You are terse.") + chars("Count my tokens"));
    let completion = tokens(chars("You said: Count my tokens"));
    assert_eq!(usage["prompt_tokens"], prompt);
    assert_eq!(usage["completion_tokens"], completion);
    assert_eq!(usage["total_tokens"], prompt + completion);

    // include_usage: false behaves like no stream_options at all.
    let body = chat_body(
        "x",
        json!({"stream": true, "stream_options": {"include_usage": false}}),
    );
    let events = parse_sse(&post(&mock, "/v1/chat/completions", &[], &body).await.text());
    chat_stream_pieces(&events, false);
    mock.shutdown().await;
}

#[tokio::test]
async fn stream_arrives_incrementally() {
    let mock = start(MockConfig {
        chunks: 5,
        chunk_delay: Duration::from_millis(30),
        ..MockConfig::default()
    })
    .await;
    let body = chat_body("pace me", json!({"stream": true}));
    let req = request(
        &mock,
        Method::POST,
        "/v1/chat/completions",
        &[],
        body.to_string(),
    );
    let started = Instant::now();
    let resp = client().request(req).await.unwrap();
    let mut body = resp.into_body();
    let mut frames = Vec::new();
    let mut first_at = None;
    while let Some(frame) = body.frame().await {
        let data = frame.unwrap().into_data().unwrap();
        first_at.get_or_insert_with(|| started.elapsed());
        frames.push(data);
    }
    let total = started.elapsed();
    let first = first_at.unwrap();
    // role + 5 content + finish + [DONE], 30 ms before each.
    assert!(total >= Duration::from_millis(8 * 30), "total {total:?}");
    assert!(
        first < Duration::from_millis(150),
        "first frame after {first:?}"
    );
    assert!(
        total - first >= Duration::from_millis(150),
        "first {first:?}, total {total:?}"
    );
    assert!(
        frames.len() >= 6,
        "events should arrive as separate frames, got {}",
        frames.len()
    );
    let all: Vec<u8> = frames.concat();
    let events = parse_sse(std::str::from_utf8(&all).unwrap());
    assert_eq!(events.len(), 8);
    mock.shutdown().await;
}

#[tokio::test]
async fn completions_plain_and_stream() {
    let mock = start(MockConfig::default()).await;
    let body = json!({"model": "gpt-3.5-turbo-instruct", "prompt": "Say this is a test"});
    let v = post(&mock, "/v1/completions", &[], &body).await.json();
    assert_eq!(v["object"], "text_completion");
    assert!(v["id"].as_str().unwrap().starts_with("cmpl-mock-"));
    assert_eq!(v["choices"][0]["text"], "You said: Say this is a test");
    assert_eq!(v["choices"][0]["index"], 0);
    assert!(v["choices"][0]["logprobs"].is_null());
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    let prompt = tokens(chars("Say this is a test"));
    let completion = tokens(chars("You said: Say this is a test"));
    assert_eq!(
        v["usage"],
        json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion})
    );

    let body = json!({"model": "m", "prompt": "abc", "stream": true, "stream_options": {"include_usage": true}});
    let events = parse_sse(&post(&mock, "/v1/completions", &[], &body).await.text());
    assert_eq!(events.last().unwrap().data, "[DONE]");
    let chunks: Vec<Value> = events[..events.len() - 1].iter().map(Event::json).collect();
    let usage_chunk = chunks.last().unwrap();
    assert_eq!(usage_chunk["choices"], json!([]));
    assert_eq!(usage_chunk["usage"]["prompt_tokens"], 1);
    let finish = &chunks[chunks.len() - 2];
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
    let text: String = chunks[..chunks.len() - 2]
        .iter()
        .map(|c| {
            assert_eq!(c["object"], "text_completion");
            assert!(c["usage"].is_null());
            c["choices"][0]["text"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(text, "You said: abc");
    mock.shutdown().await;
}

#[tokio::test]
async fn anthropic_messages_shape_and_usage() {
    let mock = start(MockConfig::default()).await;
    let body = json!({
        "model": "claude-sonnet-4-5",
        "max_tokens": 100,
        "system": [{"type": "text", "text": "Be brief."}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi Claude"}]}],
    });
    let reply = post(&mock, "/v1/messages", ANTHROPIC, &body).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("request-id"), reply.header("x-request-id"));
    assert!(reply.headers.get("openai-processing-ms").is_none());
    let v = reply.json();
    assert!(v["id"].as_str().unwrap().starts_with("msg_mock_"));
    assert_eq!(v["type"], "message");
    assert_eq!(v["role"], "assistant");
    assert_eq!(v["model"], "claude-sonnet-4-5");
    assert_eq!(
        v["content"],
        json!([{"type": "text", "text": "You said: Hi Claude"}])
    );
    assert_eq!(v["stop_reason"], "end_turn");
    assert!(v["stop_sequence"].is_null());
    assert_eq!(
        v["usage"],
        json!({
            "input_tokens": tokens(chars("Be brief.") + chars("Hi Claude")),
            "output_tokens": tokens(chars("You said: Hi Claude")),
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        })
    );
    mock.shutdown().await;
}

#[tokio::test]
async fn anthropic_stream_event_order_and_usage() {
    let mock = start(MockConfig::default()).await;
    let body = json!({
        "model": "claude-sonnet-4-5", "max_tokens": 100, "stream": true,
        "system": "Be brief.",
        "messages": [{"role": "user", "content": "Stream please"}],
    });
    let reply = post(
        &mock,
        "/v1/messages",
        &[("x-mock-chunks", "3"), ANTHROPIC[0], ANTHROPIC[1]],
        &body,
    )
    .await;
    assert_eq!(reply.header("content-type"), "text/event-stream");
    let events = parse_sse(&reply.text());
    let names: Vec<&str> = events.iter().map(|e| e.name.as_deref().unwrap()).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop",
        ]
    );
    for e in &events {
        assert_eq!(
            e.json()["type"],
            e.name.as_deref().unwrap(),
            "type matches event name"
        );
    }
    let start = events[0].json();
    assert_eq!(start["message"]["content"], json!([]));
    assert!(start["message"]["stop_reason"].is_null());
    assert_eq!(
        start["message"]["usage"]["input_tokens"],
        tokens(chars("Be brief.") + chars("Stream please"))
    );
    assert_eq!(start["message"]["usage"]["output_tokens"], 1);
    assert_eq!(
        events[1].json()["content_block"],
        json!({"type": "text", "text": ""})
    );
    let text: String = events[3..6]
        .iter()
        .map(|e| {
            let v = e.json();
            assert_eq!(v["index"], 0);
            assert_eq!(v["delta"]["type"], "text_delta");
            v["delta"]["text"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(text, "You said: Stream please");
    let delta = events[7].json();
    assert_eq!(
        delta["delta"],
        json!({"stop_reason": "end_turn", "stop_sequence": null})
    );
    assert_eq!(
        delta["usage"]["output_tokens"],
        tokens(chars("You said: Stream please"))
    );
    mock.shutdown().await;
}

#[tokio::test]
async fn anthropic_requires_version_header() {
    let mock = start(MockConfig::default()).await;
    let body = json!({"model": "claude-sonnet-4-5", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]});
    let reply = post(&mock, "/v1/messages", &[("x-api-key", "k")], &body).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let v = reply.json();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "invalid_request_error");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("anthropic-version"));
    mock.shutdown().await;
}

#[tokio::test]
async fn responses_plain_and_stream() {
    let mock = start(MockConfig::default()).await;
    let body = json!({"model": "gpt-4o", "instructions": "Be nice.", "input": "Tell me a joke"});
    let v = post(&mock, "/v1/responses", &[], &body).await.json();
    assert!(v["id"].as_str().unwrap().starts_with("resp_mock_"));
    assert_eq!(v["object"], "response");
    assert_eq!(v["status"], "completed");
    assert_eq!(v["model"], "gpt-4o");
    let item = &v["output"][0];
    assert_eq!(item["type"], "message");
    assert!(item["id"].as_str().unwrap().starts_with("msg_mock_"));
    assert_eq!(item["status"], "completed");
    assert_eq!(item["role"], "assistant");
    assert_eq!(
        item["content"],
        json!([{"type": "output_text", "text": "You said: Tell me a joke", "annotations": []}])
    );
    let input = tokens(chars("Be nice.") + chars("Tell me a joke"));
    let output = tokens(chars("You said: Tell me a joke"));
    assert_eq!(
        v["usage"],
        json!({
            "input_tokens": input, "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": output, "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": input + output,
        })
    );

    let body = json!({"model": "gpt-4o", "stream": true, "input": [
        {"role": "user", "content": "first"},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "answer"}]},
        {"role": "user", "content": [{"type": "input_text", "text": "second"}]},
    ]});
    let reply = post(&mock, "/v1/responses", &[("x-mock-chunks", "4")], &body).await;
    let events = parse_sse(&reply.text());
    let names: Vec<&str> = events.iter().map(|e| e.name.as_deref().unwrap()).collect();
    let mut expected = vec![
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ];
    expected.extend(["response.output_text.delta"; 4]);
    expected.extend([
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]);
    assert_eq!(names, expected);
    assert!(events.iter().all(|e| e.data != "[DONE]"));
    let values: Vec<Value> = events.iter().map(Event::json).collect();
    for (i, (v, name)) in values.iter().zip(&names).enumerate() {
        assert_eq!(v["type"], *name);
        assert_eq!(v["sequence_number"], i as u64);
    }
    assert_eq!(values[0]["response"]["status"], "in_progress");
    let delta: String = values[4..8]
        .iter()
        .map(|v| v["delta"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(delta, "You said: second");
    assert_eq!(values[8]["text"], "You said: second");
    let done = &values[11]["response"];
    assert_eq!(done["status"], "completed");
    assert_eq!(done["output"][0]["content"][0]["text"], "You said: second");
    let input = tokens(chars("first") + chars("answer") + chars("second"));
    assert_eq!(done["usage"]["input_tokens"], input);
    assert_eq!(
        done["usage"]["output_tokens"],
        tokens(chars("You said: second"))
    );
    mock.shutdown().await;
}

/// Standard base64 decoding, to check the mock's encoder from the outside.
fn base64_decode(s: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes().filter(|&c| c != b'=') {
        acc = acc << 6 | ALPHABET.iter().position(|&a| a == c).unwrap() as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

#[tokio::test]
async fn embeddings_dimensions_determinism_and_base64() {
    let mock = start(MockConfig::default()).await;
    let body = json!({"model": "text-embedding-3-small", "input": "hello world"});
    let v = post(&mock, "/v1/embeddings", &[], &body).await.json();
    assert_eq!(v["object"], "list");
    assert_eq!(v["model"], "text-embedding-3-small");
    assert_eq!(v["data"][0]["object"], "embedding");
    assert_eq!(v["data"][0]["index"], 0);
    let vector: Vec<f64> = serde_json::from_value(v["data"][0]["embedding"].clone()).unwrap();
    assert_eq!(vector.len(), 8);
    let norm: f64 = vector.iter().map(|x| x * x).sum::<f64>().sqrt();
    assert!((norm - 1.0).abs() < 1e-4, "unit norm, got {norm}");
    let t = tokens(chars("hello world"));
    assert_eq!(v["usage"], json!({"prompt_tokens": t, "total_tokens": t}));

    let again = post(&mock, "/v1/embeddings", &[], &body).await.json();
    assert_eq!(
        again["data"][0]["embedding"], v["data"][0]["embedding"],
        "deterministic"
    );

    let body = json!({"model": "m", "input": ["hello world", "other"], "dimensions": 16});
    let many = post(&mock, "/v1/embeddings", &[], &body).await.json();
    assert_eq!(many["data"].as_array().unwrap().len(), 2);
    assert_eq!(many["data"][1]["index"], 1);
    assert_eq!(many["data"][0]["embedding"].as_array().unwrap().len(), 16);
    assert_ne!(many["data"][0]["embedding"], many["data"][1]["embedding"]);

    let body = json!({"model": "m", "input": "hello world", "encoding_format": "base64"});
    let b64 = post(&mock, "/v1/embeddings", &[], &body).await.json();
    let bytes = base64_decode(b64["data"][0]["embedding"].as_str().unwrap());
    assert_eq!(bytes.len(), 8 * 4);
    for (chunk, expected) in bytes.chunks(4).zip(&vector) {
        let x = f32::from_le_bytes(chunk.try_into().unwrap());
        assert!((f64::from(x) - expected).abs() < 1e-6, "{x} vs {expected}");
    }

    let tokens_input = json!({"model": "m", "input": [[1, 2, 3], [4, 5]]});
    let v = post(&mock, "/v1/embeddings", &[], &tokens_input)
        .await
        .json();
    assert_eq!(v["data"].as_array().unwrap().len(), 2);
    assert_eq!(v["usage"]["prompt_tokens"], 5);

    let too_big = json!({"model": "m", "input": "x", "dimensions": 5000});
    assert_eq!(
        post(&mock, "/v1/embeddings", &[], &too_big).await.status,
        StatusCode::BAD_REQUEST
    );
    mock.shutdown().await;
}

#[tokio::test]
async fn models_and_health() {
    let mock = start(MockConfig::default()).await;
    let v = get(&mock, "/v1/models").await.json();
    assert_eq!(v["object"], "list");
    let ids: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    for id in [
        "gpt-4o",
        "gpt-4o-mini",
        "text-embedding-3-small",
        "claude-sonnet-4-5",
    ] {
        assert!(ids.contains(&id), "{id} listed");
    }
    assert_eq!(v["data"][0]["object"], "model");
    assert_eq!(v["data"][0]["owned_by"], "mock");
    let health = get(&mock, "/health").await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.json(), json!({"status": "ok"}));
    assert!(health.header("x-request-id").starts_with("req_mock_"));
    mock.shutdown().await;
}

#[tokio::test]
async fn expected_key_is_enforced_in_each_format() {
    let mock = start(MockConfig {
        expected_key: Some("sk-right".into()),
        ..MockConfig::default()
    })
    .await;
    let chat = chat_body("hi", json!({}));
    let missing = post(&mock, "/v1/chat/completions", &[], &chat).await;
    assert_eq!(missing.status, StatusCode::UNAUTHORIZED);
    let v = missing.json();
    assert_eq!(v["error"]["type"], "invalid_request_error");
    assert!(v["error"]["param"].is_null());
    let wrong = post(
        &mock,
        "/v1/chat/completions",
        &[("authorization", "Bearer sk-wrong")],
        &chat,
    )
    .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.json()["error"]["code"], "invalid_api_key");
    let right = post(
        &mock,
        "/v1/chat/completions",
        &[("authorization", "Bearer sk-right")],
        &chat,
    )
    .await;
    assert_eq!(right.status, StatusCode::OK);

    let msg = json!({"model": "claude-sonnet-4-5", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]});
    let wrong = post(
        &mock,
        "/v1/messages",
        &[
            ("x-api-key", "sk-wrong"),
            ("anthropic-version", "2023-06-01"),
        ],
        &msg,
    )
    .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        wrong.json(),
        json!({"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}})
    );
    let bearer = post(
        &mock,
        "/v1/messages",
        &[
            ("authorization", "Bearer sk-right"),
            ("anthropic-version", "2023-06-01"),
        ],
        &msg,
    )
    .await;
    assert_eq!(
        bearer.status,
        StatusCode::UNAUTHORIZED,
        "Anthropic reads x-api-key only"
    );
    let right = post(
        &mock,
        "/v1/messages",
        &[
            ("x-api-key", "sk-right"),
            ("anthropic-version", "2023-06-01"),
        ],
        &msg,
    )
    .await;
    assert_eq!(right.status, StatusCode::OK);
    mock.shutdown().await;
}

#[tokio::test]
async fn error_faults_use_the_provider_format() {
    let mock = start(MockConfig::default()).await;
    for status in [400u16, 401, 429, 500, 503] {
        let name = format!("mock-error-{status}");
        let mut body = chat_body("hi", json!({}));
        body["model"] = json!(name);
        let reply = post(&mock, "/v1/chat/completions", &[], &body).await;
        assert_eq!(reply.status.as_u16(), status, "{name} by model");
        let v = reply.json();
        assert!(v["error"]["message"].is_string() && v["error"]["type"].is_string());
        assert!(v["error"]["param"].is_null() && v["error"].get("code").is_some());
        assert!(reply.header("x-request-id").starts_with("req_mock_"));

        let msg = json!({"model": "claude-sonnet-4-5", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]});
        let reply = post(
            &mock,
            "/v1/messages",
            &[("x-mock-fault", &name), ANTHROPIC[0], ANTHROPIC[1]],
            &msg,
        )
        .await;
        assert_eq!(reply.status.as_u16(), status, "{name} by header");
        let v = reply.json();
        assert_eq!(v["type"], "error");
        let expected_type = match status {
            400 => "invalid_request_error",
            401 => "authentication_error",
            429 => "rate_limit_error",
            500 => "api_error",
            _ => "overloaded_error",
        };
        assert_eq!(v["error"]["type"], expected_type);
        if status == 429 {
            assert_eq!(reply.header("retry-after"), "1");
            assert_eq!(reply.header("x-ratelimit-remaining-requests"), "0");
        }
    }
    let mut body = chat_body("hi", json!({}));
    body["model"] = json!("mock-error-500");
    let reply = post(
        &mock,
        "/v1/chat/completions",
        &[("x-mock-fault", "mock-error-429")],
        &body,
    )
    .await;
    assert_eq!(
        reply.status,
        StatusCode::TOO_MANY_REQUESTS,
        "header wins over model"
    );
    assert_eq!(reply.header("retry-after"), "1");
    assert_eq!(reply.header("x-ratelimit-reset-requests"), "1s");
    let reply = send(
        &client(),
        request(
            &mock,
            Method::GET,
            "/v1/models",
            &[("x-mock-fault", "mock-error-503")],
            Bytes::new(),
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    let reply = post(
        &mock,
        "/v1/chat/completions",
        &[("x-mock-fault", "mock-typo")],
        &chat_body("hi", json!({})),
    )
    .await;
    assert_eq!(
        reply.status,
        StatusCode::BAD_REQUEST,
        "unknown fault names are rejected"
    );
    mock.shutdown().await;
}

async fn assert_still_serving(mock: &MockUpstream) {
    let reply = post(
        mock,
        "/v1/chat/completions",
        &[],
        &chat_body("still there?", json!({})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.json()["choices"][0]["message"]["content"],
        "You said: still there?"
    );
}

#[tokio::test]
async fn stall_fault_times_out_and_server_recovers() {
    let mock = start(MockConfig::default()).await;
    let mut body = chat_body("hi", json!({}));
    body["model"] = json!("mock-stall");
    let req = request(
        &mock,
        Method::POST,
        "/v1/chat/completions",
        &[],
        body.to_string(),
    );
    let started = Instant::now();
    let outcome = tokio::time::timeout(Duration::from_millis(300), client().request(req)).await;
    assert!(outcome.is_err(), "mock-stall must not answer");
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_still_serving(&mock).await;
    mock.shutdown().await;
}

#[tokio::test]
async fn stall_stream_fault_sends_head_and_first_event_only() {
    let mock = start(MockConfig::default()).await;
    let body = chat_body("hi", json!({"stream": true}));
    let req = request(
        &mock,
        Method::POST,
        "/v1/chat/completions",
        &[("x-mock-fault", "mock-stall-stream")],
        body.to_string(),
    );
    let client = client();
    let resp = tokio::time::timeout(Duration::from_millis(300), client.request(req))
        .await
        .expect("head arrives")
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.into_body();
    let first = tokio::time::timeout(Duration::from_millis(300), body.frame())
        .await
        .expect("first event arrives")
        .unwrap()
        .unwrap()
        .into_data()
        .unwrap();
    let events = parse_sse(std::str::from_utf8(&first).unwrap());
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].json()["choices"][0]["delta"]["role"], "assistant");
    let next = tokio::time::timeout(Duration::from_millis(300), body.frame()).await;
    assert!(next.is_err(), "nothing after the first event");
    drop(body);
    assert_still_serving(&mock).await;
    mock.shutdown().await;
}

#[tokio::test]
async fn disconnect_fault_aborts_streams_and_drops_plain_requests() {
    let mock = start(MockConfig::default()).await;
    let mut body = chat_body("hi", json!({"stream": true}));
    body["model"] = json!("mock-disconnect");
    let req = request(
        &mock,
        Method::POST,
        "/v1/chat/completions",
        &[],
        body.to_string(),
    );
    let resp = client().request(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.into_body();
    let mut received = Vec::new();
    let error = loop {
        match body.frame().await {
            Some(Ok(frame)) => received.extend_from_slice(&frame.into_data().unwrap()),
            Some(Err(err)) => break err,
            None => panic!("stream ended cleanly; expected an abort"),
        }
    };
    let _ = error;
    let events = parse_sse(std::str::from_utf8(&received).unwrap());
    assert_eq!(events.len(), 2, "two events before the drop");

    let mut plain = chat_body("hi", json!({}));
    plain["model"] = json!("mock-disconnect");
    let req = request(
        &mock,
        Method::POST,
        "/v1/chat/completions",
        &[],
        plain.to_string(),
    );
    assert!(
        client().request(req).await.is_err(),
        "no response for plain requests"
    );

    // Anthropic streams drop the same way.
    let msg = json!({"model": "mock-disconnect", "max_tokens": 5, "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    let req = request(
        &mock,
        Method::POST,
        "/v1/messages",
        ANTHROPIC,
        msg.to_string(),
    );
    let resp = client().request(req).await.unwrap();
    assert!(resp.into_body().collect().await.is_err());
    assert_still_serving(&mock).await;
    mock.shutdown().await;
}

#[tokio::test]
async fn recorder_shows_what_the_client_sent() {
    let mock = start(MockConfig::default()).await;
    let body = chat_body("record me", json!({}));
    let reply = post(
        &mock,
        "/v1/chat/completions?trace=1",
        &[("x-trace", "abc"), ("authorization", "Bearer sk-test")],
        &body,
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);

    let recorded = mock.requests();
    assert_eq!(recorded.len(), 1);
    let r = &recorded[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/v1/chat/completions?trace=1");
    let header = |name: &str| {
        r.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(header("x-trace"), Some("abc"));
    assert_eq!(header("authorization"), Some("Bearer sk-test"));
    assert_eq!(header("content-type"), Some("application/json"));
    assert_eq!(r.body, body.to_string());

    // The same over HTTP, without recording the inspection itself.
    let listed = get(&mock, "/__mock/requests").await.json();
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["path"], "/v1/chat/completions?trace=1");
    assert_eq!(listed[0]["body"], body.to_string());
    assert!(listed[0]["headers"]
        .as_array()
        .unwrap()
        .contains(&json!(["x-trace", "abc"])));
    assert_eq!(
        get(&mock, "/__mock/requests")
            .await
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let cleared = send(
        &client(),
        request(&mock, Method::DELETE, "/__mock/requests", &[], Bytes::new()),
    )
    .await;
    assert_eq!(cleared.status, StatusCode::NO_CONTENT);
    assert!(mock.requests().is_empty());

    // Bodies are capped at 64 KiB; clear() empties the log.
    let big = "x".repeat(100 * 1024);
    let req = request(&mock, Method::POST, "/v1/embeddings", &[], big);
    assert_eq!(send(&client(), req).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(mock.requests()[0].body.len(), 64 * 1024);
    mock.clear();
    assert!(mock.requests().is_empty());
    mock.shutdown().await;

    let small = start(MockConfig {
        record_limit: 2,
        ..MockConfig::default()
    })
    .await;
    for path in ["/health", "/v1/models", "/nope"] {
        get(&small, path).await;
    }
    let paths: Vec<String> = small.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, ["/v1/models", "/nope"], "oldest dropped first");
    small.shutdown().await;
}

#[tokio::test]
async fn utf8_reply_is_split_without_corruption() {
    let mock = start(MockConfig::default()).await;
    let user = "héllo wörld ✓ 日本";
    let expected = format!("You said: {user}");
    for chunks in ["3", "7", "25", "40"] {
        let reply = post(
            &mock,
            "/v1/chat/completions",
            &[("x-mock-chunks", chunks)],
            &chat_body(user, json!({"stream": true})),
        )
        .await;
        let text = reply.text();
        assert!(!text.contains('\u{fffd}'));
        let (pieces, _) = chat_stream_pieces(&parse_sse(&text), false);
        assert_eq!(pieces.len(), chunks.parse::<usize>().unwrap());
        assert_eq!(pieces.concat(), expected);
        let counts: Vec<usize> = pieces.iter().map(|p| chars(p)).collect();
        assert!(
            counts.iter().max().unwrap() - counts.iter().min().unwrap() <= 1,
            "{counts:?}"
        );

        let msg = json!({"model": "claude-sonnet-4-5", "max_tokens": 5, "stream": true, "messages": [{"role": "user", "content": user}]});
        let reply = post(
            &mock,
            "/v1/messages",
            &[("x-mock-chunks", chunks), ANTHROPIC[0], ANTHROPIC[1]],
            &msg,
        )
        .await;
        let text: String = parse_sse(&reply.text())
            .iter()
            .filter(|e| e.name.as_deref() == Some("content_block_delta"))
            .map(|e| e.json()["delta"]["text"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(text, expected);
    }
    let v = post(
        &mock,
        "/v1/chat/completions",
        &[],
        &chat_body(user, json!({})),
    )
    .await
    .json();
    assert_eq!(v["choices"][0]["message"]["content"], expected);
    mock.shutdown().await;
}

#[tokio::test]
async fn routing_and_request_errors() {
    let mock = start(MockConfig::default()).await;
    let reply = get(&mock, "/v1/nope").await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(
        reply.json(),
        json!({"error": {"message": "Invalid URL (GET /v1/nope)", "type": "invalid_request_error", "param": null, "code": "unknown_url"}})
    );
    let reply = get(&mock, "/v1/chat/completions").await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(reply.header("allow"), "POST");
    assert!(reply.json()["error"]["message"].is_string());

    let bad = request(
        &mock,
        Method::POST,
        "/v1/chat/completions",
        &[],
        "{not json",
    );
    let reply = send(&client(), bad).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.json()["error"]["type"], "invalid_request_error");
    let bad = request(&mock, Method::POST, "/v1/messages", ANTHROPIC, "{not json");
    let reply = send(&client(), bad).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.json()["type"], "error");
    assert_eq!(reply.json()["error"]["type"], "invalid_request_error");
    mock.shutdown().await;
}

async fn read_response(tcp: &mut TcpStream) -> String {
    let mut buf = vec![0u8; 8192];
    let mut got = Vec::new();
    loop {
        let n = tcp.read(&mut buf).await.unwrap();
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got).into_owned();
        if let Some(head_end) = text.find("\r\n\r\n") {
            let length: usize = text[..head_end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            if got.len() >= head_end + 4 + length {
                return text;
            }
        }
        assert!(n > 0, "connection closed early: {text:?}");
    }
}

#[tokio::test]
async fn raw_http1_keep_alive_and_body_limit() {
    let mock = start(MockConfig::default()).await;
    let mut tcp = TcpStream::connect(mock.addr()).await.unwrap();
    for _ in 0..2 {
        tcp.write_all(b"GET /health HTTP/1.1\r\nhost: mock\r\n\r\n")
            .await
            .unwrap();
        let response = read_response(&mut tcp).await;
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        assert!(response.ends_with(r#"{"status":"ok"}"#));
    }

    let mut tcp = TcpStream::connect(mock.addr()).await.unwrap();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: mock\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        32 * 1024 * 1024 + 1
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    let response = read_response(&mut tcp).await;
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");
    assert!(response.contains("\"error\""));
    mock.shutdown().await;
}

#[tokio::test]
async fn h2c_prior_knowledge_is_served() {
    let mock = start(MockConfig::default()).await;
    let h2: HttpClient = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http();
    let body = chat_body("over h2", json!({"stream": true}));
    let req = request(
        &mock,
        Method::POST,
        "/v1/chat/completions",
        &[("content-type", "application/json")],
        body.to_string(),
    );
    let resp = h2.request(req).await.unwrap();
    assert_eq!(resp.version(), http::Version::HTTP_2);
    let text = resp.into_body().collect().await.unwrap().to_bytes();
    let (pieces, _) = chat_stream_pieces(&parse_sse(std::str::from_utf8(&text).unwrap()), false);
    assert_eq!(pieces.concat(), "You said: over h2");

    // Over h2 a disconnect resets the stream after two events.
    let mut body = chat_body("hi", json!({"stream": true}));
    body["model"] = json!("mock-disconnect");
    let req = request(
        &mock,
        Method::POST,
        "/v1/chat/completions",
        &[],
        body.to_string(),
    );
    let mut body = h2.request(req).await.unwrap().into_body();
    let mut received = Vec::new();
    loop {
        match body.frame().await {
            Some(Ok(frame)) => received.extend_from_slice(&frame.into_data().unwrap()),
            Some(Err(_)) => break,
            None => panic!("stream ended cleanly; expected a reset"),
        }
    }
    assert_eq!(parse_sse(std::str::from_utf8(&received).unwrap()).len(), 2);
    let health = send(
        &h2,
        request(&mock, Method::GET, "/health", &[], Bytes::new()),
    )
    .await;
    assert_eq!(
        health.status,
        StatusCode::OK,
        "the h2 connection survives a reset stream"
    );
    mock.shutdown().await;
}

#[tokio::test]
async fn per_request_overrides() {
    let mock = start(MockConfig::default()).await;
    let started = Instant::now();
    let reply = post(
        &mock,
        "/v1/chat/completions",
        &[("x-mock-latency-ms", "120")],
        &chat_body("slow", json!({})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(120));
    assert!(reply.header("openai-processing-ms").parse::<u64>().unwrap() >= 120);

    let started = Instant::now();
    let body = chat_body("paced", json!({"stream": true}));
    let reply = post(
        &mock,
        "/v1/chat/completions",
        &[("x-mock-chunk-delay-ms", "20"), ("x-mock-chunks", "2")],
        &body,
    )
    .await;
    // role + 2 content + finish + [DONE]
    assert!(started.elapsed() >= Duration::from_millis(5 * 20));
    let (pieces, _) = chat_stream_pieces(&parse_sse(&reply.text()), false);
    assert_eq!(pieces.len(), 2);

    for bad in [
        ("x-mock-chunks", "0"),
        ("x-mock-chunks", "1001"),
        ("x-mock-latency-ms", "soon"),
    ] {
        let reply = post(
            &mock,
            "/v1/chat/completions",
            &[bad],
            &chat_body("x", json!({})),
        )
        .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{bad:?}");
    }
    mock.shutdown().await;
}

#[tokio::test]
async fn shutdown_stops_accepting() {
    let mock = start(MockConfig::default()).await;
    let addr = mock.addr();
    assert_eq!(get(&mock, "/health").await.status, StatusCode::OK);
    mock.shutdown().await;
    assert!(TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn binary_prints_ready_line_and_exits_on_sigterm() {
    use tokio::io::AsyncBufReadExt;

    let exe = env!("CARGO_BIN_EXE_mock-upstream");
    let help = tokio::process::Command::new(exe)
        .arg("--help")
        .output()
        .await
        .unwrap();
    assert!(help.status.success());
    let help = String::from_utf8(help.stdout).unwrap();
    for flag in [
        "--listen",
        "--chunks",
        "--chunk-delay-ms",
        "--latency-ms",
        "--expected-key",
        "--threads",
    ] {
        assert!(help.contains(flag), "--help mentions {flag}");
    }

    let mut child = tokio::process::Command::new(exe)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--threads",
            "1",
            "--expected-key",
            "sk-bin",
        ])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .expect("ready line in time")
        .unwrap()
        .unwrap();
    let url = line
        .strip_prefix("mock-upstream listening on ")
        .expect("ready line format");
    assert!(url.starts_with("http://127.0.0.1:"), "{line}");

    let req = Request::post(format!("{url}/v1/chat/completions"))
        .header("authorization", "Bearer sk-bin")
        .body(Full::new(Bytes::from(
            chat_body("bin", json!({})).to_string(),
        )))
        .unwrap();
    let reply = send(&client(), req).await;
    assert_eq!(reply.status, StatusCode::OK);

    let pid = child.id().unwrap().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("exits after SIGTERM")
        .unwrap();
    assert!(status.success(), "clean exit, got {status}");
}

#[tokio::test]
async fn x_mock_answer_sets_the_answer_whatever_was_asked() {
    let mock = start(MockConfig::default()).await;
    let body = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hello"}]});
    let answer = ("x-mock-answer", "the answer says what the request does not");
    let reply = post(&mock, "/v1/chat/completions", &[answer], &body).await;
    let json = reply.json();
    assert_eq!(json["choices"][0]["message"]["content"], answer.1);
    let body = json!({"model": "claude-sonnet-4-5", "max_tokens": 10,
                      "messages": [{"role": "user", "content": "hello"}]});
    let reply = post(
        &mock,
        "/v1/messages",
        &[answer, ANTHROPIC[0], ANTHROPIC[1]],
        &body,
    )
    .await;
    let json = reply.json();
    assert_eq!(json["content"][0]["text"], answer.1);
    // Without the header the caller's text is echoed.
    let body = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hello"}]});
    let reply = post(&mock, "/v1/chat/completions", &[], &body).await;
    let json = reply.json();
    assert_eq!(json["choices"][0]["message"]["content"], "You said: hello");
    mock.shutdown().await;
}
