//! OpenAI endpoints: chat completions, legacy completions, embeddings,
//! Responses and models, in the shapes the real API sends today.

use std::borrow::Cow;

use bytes::{BufMut, Bytes};
use serde::{Deserialize, Serialize};

use crate::base64;
use crate::errors::ApiError;
use crate::handler::{parse_json, to_json, Ctx, Generated, Reply};
use crate::sse::{split_chunks, SseWriter};
use crate::text::{
    estimate_tokens, push_json_str, push_u64, OneOrMany, Part, Tokens, DEFAULT_MODEL,
};

/// Embedding size when the request does not ask for one: small, so tests can
/// print and compare vectors.
const DEFAULT_DIMENSIONS: u64 = 8;
const MAX_DIMENSIONS: u64 = 4096;

/// Model ids offered by `/v1/models`, with a fixed creation time so the body
/// can be built once.
const MODELS: &[&str] = &[
    "gpt-4o",
    "gpt-4o-mini",
    "text-embedding-3-small",
    "claude-sonnet-4-5",
];
const MODELS_CREATED: u64 = 1_715_367_049;

#[derive(Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: Option<bool>,
}

/// A chat/Anthropic message: only the role and the text matter here.
#[derive(Deserialize)]
pub(crate) struct Message {
    #[serde(default)]
    pub role: Option<String>,
    #[serde(default)]
    pub content: OneOrMany<Part>,
}

/// Character count of all messages (plus `extra`), and the text of the last
/// user message.
pub(crate) fn conversation(
    messages: &[Message],
    extra_chars: usize,
    accept: fn(&str) -> bool,
) -> (usize, Option<String>) {
    let mut chars = extra_chars;
    let mut last_user = None;
    for message in messages {
        let text = message.content.text(accept);
        chars += text.chars().count();
        if message.role.as_deref() == Some("user") {
            last_user = Some(text);
        }
    }
    (chars, last_user)
}

fn is_text(kind: &str) -> bool {
    kind == "text"
}

// ---------------------------------------------------------------- chat

#[derive(Deserialize)]
struct ChatRequest {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    messages: Vec<Message>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
}

#[derive(Serialize)]
struct ChatCompletion<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: [ChatChoice<'a>; 1],
    usage: ChatUsage,
    system_fingerprint: &'static str,
}

#[derive(Serialize)]
struct ChatChoice<'a> {
    index: u32,
    message: AssistantMessage<'a>,
    logprobs: (),
    finish_reason: &'static str,
}

#[derive(Serialize)]
struct AssistantMessage<'a> {
    role: &'static str,
    content: &'a str,
    refusal: (),
}

#[derive(Serialize)]
struct ChatUsage {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
    prompt_tokens_details: CachedTokens,
    completion_tokens_details: ReasoningTokens,
}

#[derive(Serialize)]
struct CachedTokens {
    cached_tokens: u64,
}

#[derive(Serialize)]
struct ReasoningTokens {
    reasoning_tokens: u64,
}

impl ChatUsage {
    fn new(tokens: Tokens) -> Self {
        Self {
            prompt_tokens: tokens.input,
            completion_tokens: tokens.output,
            total_tokens: tokens.total(),
            prompt_tokens_details: CachedTokens { cached_tokens: 0 },
            completion_tokens_details: ReasoningTokens {
                reasoning_tokens: 0,
            },
        }
    }
}

pub(crate) fn chat(ctx: &Ctx, body: &[u8]) -> Result<Generated, ApiError> {
    let req: ChatRequest = parse_json(body)?;
    let model = req.model.as_deref().unwrap_or(DEFAULT_MODEL);
    let fault = ctx.fault_for(model)?;
    let (input_chars, last_user) = conversation(&req.messages, 0, is_text);
    let reply = ctx.reply_for(last_user.as_deref());
    let tokens = Tokens::new(input_chars, &reply);
    let usage = ChatUsage::new(tokens);
    let id = format!("chatcmpl-mock-{}", ctx.n);
    let reply = if req.stream == Some(true) {
        let include_usage = req
            .stream_options
            .and_then(|o| o.include_usage)
            .unwrap_or(false);
        Reply::Sse(chat_stream(
            ctx,
            &id,
            model,
            &reply,
            include_usage.then_some(&usage),
        )?)
    } else {
        Reply::Json(to_json(&ChatCompletion {
            id: &id,
            object: "chat.completion",
            created: ctx.created,
            model,
            choices: [ChatChoice {
                index: 0,
                message: AssistantMessage {
                    role: "assistant",
                    content: &reply,
                    refusal: (),
                },
                logprobs: (),
                finish_reason: "stop",
            }],
            usage,
            system_fingerprint: "fp_mock",
        })?)
    };
    Ok(Generated { reply, fault })
}

/// Chunks are stamped from a shared prefix rather than serialised one by
/// one; `usage` is `Some` only when the client asked for it, and then every
/// other chunk carries `"usage": null` as OpenAI's do.
fn chat_stream(
    ctx: &Ctx,
    id: &str,
    model: &str,
    reply: &str,
    usage: Option<&ChatUsage>,
) -> Result<Vec<Bytes>, ApiError> {
    let mut prefix = Vec::with_capacity(160 + model.len());
    prefix.put_slice(b"{\"id\":");
    push_json_str(&mut prefix, id);
    prefix.put_slice(b",\"object\":\"chat.completion.chunk\",\"created\":");
    push_u64(&mut prefix, ctx.created);
    prefix.put_slice(b",\"model\":");
    push_json_str(&mut prefix, model);
    prefix.put_slice(b",\"system_fingerprint\":\"fp_mock\",\"choices\":[");
    let tail: &[u8] = if usage.is_some() {
        b",\"usage\":null}"
    } else {
        b"}"
    };

    let pieces = split_chunks(reply, ctx.chunks);
    let mut w = SseWriter::with_capacity(
        (prefix.len() + 120) * (pieces.len() + 4) + reply.len() * 2,
        pieces.len() + 4,
    );
    let buf = w.begin(None);
    buf.put_slice(&prefix);
    buf.put_slice(b"{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\",\"refusal\":null},\"logprobs\":null,\"finish_reason\":null}]");
    buf.put_slice(tail);
    w.end();
    for piece in pieces {
        let buf = w.begin(None);
        buf.put_slice(&prefix);
        buf.put_slice(b"{\"index\":0,\"delta\":{\"content\":");
        push_json_str(buf, piece);
        buf.put_slice(b"},\"logprobs\":null,\"finish_reason\":null}]");
        buf.put_slice(tail);
        w.end();
    }
    let buf = w.begin(None);
    buf.put_slice(&prefix);
    buf.put_slice(b"{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":\"stop\"}]");
    buf.put_slice(tail);
    w.end();
    finish_stream(w, &prefix, usage)
}

/// The end every OpenAI stream shares: the usage chunk when asked for, then `[DONE]`.
fn finish_stream<U: serde::Serialize>(
    mut w: SseWriter,
    prefix: &[u8],
    usage: Option<&U>,
) -> Result<Vec<Bytes>, ApiError> {
    if let Some(usage) = usage {
        let usage = serde_json::to_vec(usage).map_err(|e| ApiError::internal(e.to_string()))?;
        let buf = w.begin(None);
        buf.put_slice(prefix);
        buf.put_slice(b"],\"usage\":");
        buf.put_slice(&usage);
        buf.put_u8(b'}');
        w.end();
    }
    w.raw(None, b"[DONE]");
    Ok(w.finish())
}

// ---------------------------------------------------------- completions

/// A legacy prompt or embeddings input element: text, a token, or tokens.
#[derive(Deserialize)]
#[serde(untagged)]
enum PromptItem {
    Text(String),
    Token(i64),
    Tokens(Vec<i64>),
}

enum Input<'a> {
    Text(&'a str),
    Tokens(Cow<'a, [i64]>),
}

impl Input<'_> {
    fn tokens(&self) -> u64 {
        match self {
            Input::Text(text) => estimate_tokens(text.chars().count()),
            Input::Tokens(tokens) => tokens.len().max(1) as u64,
        }
    }
}

/// Normalises the four accepted forms (string, strings, tokens, token
/// lists) into one input per expected result.
fn inputs(value: &OneOrMany<PromptItem>) -> Result<Vec<Input<'_>>, ApiError> {
    match value {
        OneOrMany::Null => Ok(Vec::new()),
        OneOrMany::One(text) => Ok(vec![Input::Text(text)]),
        OneOrMany::Many(items) => {
            if !items.is_empty() && items.iter().all(|i| matches!(i, PromptItem::Token(_))) {
                let tokens = items
                    .iter()
                    .filter_map(|i| match i {
                        PromptItem::Token(t) => Some(*t),
                        _ => None,
                    })
                    .collect();
                return Ok(vec![Input::Tokens(Cow::Owned(tokens))]);
            }
            items
                .iter()
                .map(|item| match item {
                    PromptItem::Text(text) => Ok(Input::Text(text)),
                    PromptItem::Tokens(tokens) => Ok(Input::Tokens(Cow::Borrowed(tokens))),
                    PromptItem::Token(_) => Err(ApiError::invalid_request(
                        "'$.input' is invalid: mixes tokens with strings or token lists",
                    )),
                })
                .collect()
        }
    }
}

#[derive(Deserialize)]
struct CompletionRequest {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    prompt: OneOrMany<PromptItem>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
}

#[derive(Serialize)]
struct TextCompletion<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: [TextChoice<'a>; 1],
    usage: CompletionUsage,
}

#[derive(Serialize)]
struct TextChoice<'a> {
    text: &'a str,
    index: u32,
    logprobs: (),
    finish_reason: &'static str,
}

#[derive(Serialize)]
struct CompletionUsage {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
}

pub(crate) fn completions(ctx: &Ctx, body: &[u8]) -> Result<Generated, ApiError> {
    let req: CompletionRequest = parse_json(body)?;
    let model = req.model.as_deref().unwrap_or(DEFAULT_MODEL);
    let fault = ctx.fault_for(model)?;
    let prompts = inputs(&req.prompt)?;
    let texts: Vec<&str> = prompts
        .iter()
        .filter_map(|p| match p {
            Input::Text(text) => Some(*text),
            Input::Tokens(_) => None,
        })
        .collect();
    let reply = ctx.reply_for(Some(&texts.join("\n")));
    let input = prompts.iter().map(Input::tokens).sum::<u64>().max(1);
    let output = estimate_tokens(reply.chars().count());
    let usage = CompletionUsage {
        prompt_tokens: input,
        completion_tokens: output,
        total_tokens: input + output,
    };
    let id = format!("cmpl-mock-{}", ctx.n);
    let reply = if req.stream == Some(true) {
        let include_usage = req
            .stream_options
            .and_then(|o| o.include_usage)
            .unwrap_or(false);
        Reply::Sse(completion_stream(
            ctx,
            &id,
            model,
            &reply,
            include_usage.then_some(&usage),
        )?)
    } else {
        Reply::Json(to_json(&TextCompletion {
            id: &id,
            object: "text_completion",
            created: ctx.created,
            model,
            choices: [TextChoice {
                text: &reply,
                index: 0,
                logprobs: (),
                finish_reason: "stop",
            }],
            usage,
        })?)
    };
    Ok(Generated { reply, fault })
}

fn completion_stream(
    ctx: &Ctx,
    id: &str,
    model: &str,
    reply: &str,
    usage: Option<&CompletionUsage>,
) -> Result<Vec<Bytes>, ApiError> {
    let mut prefix = Vec::with_capacity(128 + model.len());
    prefix.put_slice(b"{\"id\":");
    push_json_str(&mut prefix, id);
    prefix.put_slice(b",\"object\":\"text_completion\",\"created\":");
    push_u64(&mut prefix, ctx.created);
    prefix.put_slice(b",\"model\":");
    push_json_str(&mut prefix, model);
    prefix.put_slice(b",\"choices\":[");
    let tail: &[u8] = if usage.is_some() {
        b",\"usage\":null}"
    } else {
        b"}"
    };

    let pieces = split_chunks(reply, ctx.chunks);
    let mut w = SseWriter::with_capacity(
        (prefix.len() + 100) * (pieces.len() + 3) + reply.len() * 2,
        pieces.len() + 3,
    );
    for piece in pieces {
        let buf = w.begin(None);
        buf.put_slice(&prefix);
        buf.put_slice(b"{\"text\":");
        push_json_str(buf, piece);
        buf.put_slice(b",\"index\":0,\"logprobs\":null,\"finish_reason\":null}]");
        buf.put_slice(tail);
        w.end();
    }
    let buf = w.begin(None);
    buf.put_slice(&prefix);
    buf.put_slice(b"{\"text\":\"\",\"index\":0,\"logprobs\":null,\"finish_reason\":\"stop\"}]");
    buf.put_slice(tail);
    w.end();
    finish_stream(w, &prefix, usage)
}

// ----------------------------------------------------------- embeddings

#[derive(Deserialize)]
struct EmbeddingsRequest {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    input: OneOrMany<PromptItem>,
    #[serde(default)]
    dimensions: Option<u64>,
    #[serde(default)]
    encoding_format: Option<String>,
}

#[derive(Serialize)]
struct EmbeddingList<'a> {
    object: &'static str,
    data: Vec<EmbeddingItem>,
    model: &'a str,
    usage: EmbeddingUsage,
}

#[derive(Serialize)]
struct EmbeddingItem {
    object: &'static str,
    index: usize,
    embedding: EmbeddingValue,
}

#[derive(Serialize)]
#[serde(untagged)]
enum EmbeddingValue {
    Float(Vec<f32>),
    Base64(String),
}

#[derive(Serialize)]
struct EmbeddingUsage {
    prompt_tokens: u64,
    total_tokens: u64,
}

pub(crate) fn embeddings(ctx: &Ctx, body: &[u8]) -> Result<Generated, ApiError> {
    let req: EmbeddingsRequest = parse_json(body)?;
    let model = req.model.as_deref().unwrap_or(DEFAULT_MODEL);
    let fault = ctx.fault_for(model)?;
    let base64 = match req.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(ApiError::invalid_request(format!(
                "Invalid encoding_format {other:?}: expected 'float' or 'base64'"
            )))
        }
    };
    let dimensions = req.dimensions.unwrap_or(DEFAULT_DIMENSIONS);
    if !(1..=MAX_DIMENSIONS).contains(&dimensions) {
        return Err(ApiError::invalid_request(format!(
            "dimensions must be between 1 and {MAX_DIMENSIONS}"
        )));
    }
    let items = inputs(&req.input)?;
    if items.is_empty() {
        return Err(ApiError::invalid_request(
            "'$.input' is invalid: provide a string, an array of strings or tokens",
        ));
    }
    let data = items
        .iter()
        .enumerate()
        .map(|(index, input)| {
            let vector = embedding(input, dimensions as usize);
            let embedding = if base64 {
                let bytes: Vec<u8> = vector.iter().flat_map(|v| v.to_le_bytes()).collect();
                EmbeddingValue::Base64(base64::encode(&bytes))
            } else {
                EmbeddingValue::Float(vector)
            };
            EmbeddingItem {
                object: "embedding",
                index,
                embedding,
            }
        })
        .collect();
    let tokens = items.iter().map(Input::tokens).sum();
    let list = EmbeddingList {
        object: "list",
        data,
        model,
        usage: EmbeddingUsage {
            prompt_tokens: tokens,
            total_tokens: tokens,
        },
    };
    Ok(Generated {
        reply: Reply::Json(to_json(&list)?),
        fault,
    })
}

/// A unit vector that depends only on the input, so tests can compare
/// embeddings across calls (and across processes).
fn embedding(input: &Input<'_>, dimensions: usize) -> Vec<f32> {
    const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut seed = FNV_OFFSET;
    let mut feed = |bytes: &[u8]| {
        for &b in bytes {
            seed = (seed ^ u64::from(b)).wrapping_mul(FNV_PRIME);
        }
    };
    match input {
        Input::Text(text) => feed(text.as_bytes()),
        Input::Tokens(tokens) => {
            feed(b"\0tokens");
            for t in tokens.iter() {
                feed(&t.to_le_bytes());
            }
        }
    }
    let mut vector: Vec<f32> = (0..dimensions as u64)
        .map(|i| {
            let x = splitmix64(seed ^ i.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            // Top 24 bits -> [-1, 1).
            (x >> 40) as f32 / (1u32 << 23) as f32 - 1.0
        })
        .collect();
    let norm = vector.iter().map(|v| v * v).sum::<f32>().sqrt();
    if norm > 0.0 {
        vector.iter_mut().for_each(|v| *v /= norm);
    } else if let Some(first) = vector.first_mut() {
        *first = 1.0;
    }
    vector
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

// ------------------------------------------------------------ responses

#[derive(Deserialize)]
struct ResponsesRequest {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    input: OneOrMany<InputItem>,
    #[serde(default)]
    instructions: Option<String>,
    #[serde(default)]
    stream: Option<bool>,
}

#[derive(Deserialize)]
struct InputItem {
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    content: OneOrMany<Part>,
}

fn is_response_text(kind: &str) -> bool {
    matches!(kind, "input_text" | "output_text" | "text")
}

#[derive(Serialize)]
struct ResponseObject<'a> {
    id: &'a str,
    object: &'static str,
    created_at: u64,
    status: &'static str,
    error: (),
    incomplete_details: (),
    model: &'a str,
    output: Vec<&'a OutputMessage<'a>>,
    usage: Option<ResponsesUsage>,
}

#[derive(Serialize)]
struct OutputMessage<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    id: &'a str,
    status: &'static str,
    role: &'static str,
    content: Vec<OutputText<'a>>,
}

#[derive(Serialize)]
struct OutputText<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    text: &'a str,
    annotations: [(); 0],
}

#[derive(Serialize)]
struct ResponsesUsage {
    input_tokens: u64,
    input_tokens_details: CachedTokens,
    output_tokens: u64,
    output_tokens_details: ReasoningTokens,
    total_tokens: u64,
}

#[derive(Serialize)]
struct ResponseEvent<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    sequence_number: u64,
    response: &'a ResponseObject<'a>,
}

#[derive(Serialize)]
struct ItemEvent<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    sequence_number: u64,
    output_index: u32,
    item: &'a OutputMessage<'a>,
}

#[derive(Serialize)]
struct PartEvent<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    sequence_number: u64,
    item_id: &'a str,
    output_index: u32,
    content_index: u32,
    part: &'a OutputText<'a>,
}

#[derive(Serialize)]
struct TextDoneEvent<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    sequence_number: u64,
    item_id: &'a str,
    output_index: u32,
    content_index: u32,
    text: &'a str,
    logprobs: [(); 0],
}

pub(crate) fn responses(ctx: &Ctx, body: &[u8]) -> Result<Generated, ApiError> {
    let req: ResponsesRequest = parse_json(body)?;
    let model = req.model.as_deref().unwrap_or(DEFAULT_MODEL);
    let fault = ctx.fault_for(model)?;
    let mut chars = req.instructions.as_deref().map_or(0, |s| s.chars().count());
    let last_user = match &req.input {
        OneOrMany::Null => None,
        OneOrMany::One(text) => {
            chars += text.chars().count();
            Some(text.clone())
        }
        OneOrMany::Many(items) => {
            let mut last_user = None;
            for item in items {
                let text = item.content.text(is_response_text);
                chars += text.chars().count();
                if item.role.as_deref() == Some("user") {
                    last_user = Some(text);
                }
            }
            last_user
        }
    };
    let reply = ctx.reply_for(last_user.as_deref());
    let tokens = Tokens::new(chars, &reply);
    let usage = ResponsesUsage {
        input_tokens: tokens.input,
        input_tokens_details: CachedTokens { cached_tokens: 0 },
        output_tokens: tokens.output,
        output_tokens_details: ReasoningTokens {
            reasoning_tokens: 0,
        },
        total_tokens: tokens.total(),
    };
    let id = format!("resp_mock_{}", ctx.n);
    let message_id = format!("msg_mock_{}", ctx.n);
    let message = OutputMessage {
        kind: "message",
        id: &message_id,
        status: "completed",
        role: "assistant",
        content: vec![OutputText {
            kind: "output_text",
            text: &reply,
            annotations: [],
        }],
    };
    let completed = ResponseObject {
        id: &id,
        object: "response",
        created_at: ctx.created,
        status: "completed",
        error: (),
        incomplete_details: (),
        model,
        output: vec![&message],
        usage: Some(usage),
    };
    let reply = if req.stream == Some(true) {
        Reply::Sse(responses_stream(ctx, &completed, &message)?)
    } else {
        Reply::Json(to_json(&completed)?)
    };
    Ok(Generated { reply, fault })
}

fn responses_stream(
    ctx: &Ctx,
    completed: &ResponseObject<'_>,
    message: &OutputMessage<'_>,
) -> Result<Vec<Bytes>, ApiError> {
    let enc = |e: serde_json::Error| ApiError::internal(e.to_string());
    let text = message.content.first().map_or("", |c| c.text);
    let pieces = split_chunks(text, ctx.chunks);
    let mut w =
        SseWriter::with_capacity(2048 + text.len() * 6 + pieces.len() * 200, pieces.len() + 8);
    let mut seq = 0u64;
    let mut next = || {
        seq += 1;
        seq - 1
    };

    let in_progress = ResponseObject {
        status: "in_progress",
        output: Vec::new(),
        usage: None,
        ..*completed
    };
    for kind in ["response.created", "response.in_progress"] {
        let event = ResponseEvent {
            kind,
            sequence_number: next(),
            response: &in_progress,
        };
        w.json(Some(kind), &event).map_err(enc)?;
    }
    let item_in_progress = OutputMessage {
        kind: "message",
        id: message.id,
        status: "in_progress",
        role: "assistant",
        content: Vec::new(),
    };
    let kind = "response.output_item.added";
    let event = ItemEvent {
        kind,
        sequence_number: next(),
        output_index: 0,
        item: &item_in_progress,
    };
    w.json(Some(kind), &event).map_err(enc)?;
    let empty_part = OutputText {
        kind: "output_text",
        text: "",
        annotations: [],
    };
    let kind = "response.content_part.added";
    let event = PartEvent {
        kind,
        sequence_number: next(),
        item_id: message.id,
        output_index: 0,
        content_index: 0,
        part: &empty_part,
    };
    w.json(Some(kind), &event).map_err(enc)?;

    let kind = "response.output_text.delta";
    for piece in pieces {
        let buf = w.begin(Some(kind));
        buf.put_slice(b"{\"type\":\"response.output_text.delta\",\"sequence_number\":");
        push_u64(buf, next());
        buf.put_slice(b",\"item_id\":");
        push_json_str(buf, message.id);
        buf.put_slice(b",\"output_index\":0,\"content_index\":0,\"delta\":");
        push_json_str(buf, piece);
        buf.put_slice(b",\"logprobs\":[]}");
        w.end();
    }

    let kind = "response.output_text.done";
    let event = TextDoneEvent {
        kind,
        sequence_number: next(),
        item_id: message.id,
        output_index: 0,
        content_index: 0,
        text,
        logprobs: [],
    };
    w.json(Some(kind), &event).map_err(enc)?;
    let full_part = OutputText {
        kind: "output_text",
        text,
        annotations: [],
    };
    let kind = "response.content_part.done";
    let event = PartEvent {
        kind,
        sequence_number: next(),
        item_id: message.id,
        output_index: 0,
        content_index: 0,
        part: &full_part,
    };
    w.json(Some(kind), &event).map_err(enc)?;
    let kind = "response.output_item.done";
    let event = ItemEvent {
        kind,
        sequence_number: next(),
        output_index: 0,
        item: message,
    };
    w.json(Some(kind), &event).map_err(enc)?;
    let kind = "response.completed";
    let event = ResponseEvent {
        kind,
        sequence_number: next(),
        response: completed,
    };
    w.json(Some(kind), &event).map_err(enc)?;
    Ok(w.finish())
}

// --------------------------------------------------------------- models

#[derive(Serialize)]
struct ModelList {
    object: &'static str,
    data: Vec<ModelEntry>,
}

#[derive(Serialize)]
struct ModelEntry {
    id: &'static str,
    object: &'static str,
    created: u64,
    owned_by: &'static str,
}

pub(crate) fn models_body() -> Bytes {
    let list = ModelList {
        object: "list",
        data: MODELS
            .iter()
            .map(|&id| ModelEntry {
                id,
                object: "model",
                created: MODELS_CREATED,
                owned_by: "mock",
            })
            .collect(),
    };
    to_json(&list).unwrap_or_else(|err| err.body(crate::errors::Flavor::OpenAi))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Input<'_> {
        Input::Text(s)
    }

    #[test]
    fn embeddings_are_deterministic_unit_vectors() {
        let a = embedding(&text("hello"), 8);
        assert_eq!(a, embedding(&text("hello"), 8));
        assert_ne!(a, embedding(&text("hellp"), 8));
        let norm: f32 = a.iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5);
        assert_eq!(embedding(&text("x"), 4096).len(), 4096);
    }

    #[test]
    fn prompt_forms_normalise() {
        let p: OneOrMany<PromptItem> = serde_json::from_str("[1,2,3]").unwrap();
        assert!(matches!(inputs(&p).unwrap()[..], [Input::Tokens(ref t)] if t.len() == 3));
        let p: OneOrMany<PromptItem> = serde_json::from_str(r#"["a",[1,2]]"#).unwrap();
        assert_eq!(inputs(&p).unwrap().len(), 2);
        let p: OneOrMany<PromptItem> = serde_json::from_str(r#"["a",1]"#).unwrap();
        assert!(inputs(&p).is_err());
    }
}
