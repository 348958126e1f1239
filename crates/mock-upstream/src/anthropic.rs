//! Anthropic Messages API (`POST /v1/messages`), plain and streamed.

use bytes::{BufMut, Bytes};
use serde::{Deserialize, Serialize};

use crate::errors::ApiError;
use crate::handler::{parse_json, to_json, Ctx, Generated, Reply};
use crate::openai::{conversation, Message};
use crate::sse::{split_chunks, SseWriter};
use crate::text::{push_json_str, push_u64, OneOrMany, Part, Tokens, DEFAULT_MODEL};

#[derive(Deserialize)]
struct MessagesRequest {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    system: OneOrMany<Part>,
    #[serde(default)]
    messages: Vec<Message>,
    #[serde(default)]
    stream: Option<bool>,
}

#[derive(Serialize)]
struct MessageObject<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    role: &'static str,
    model: &'a str,
    content: Vec<TextBlock<'a>>,
    stop_reason: Option<&'static str>,
    stop_sequence: (),
    usage: Usage,
}

#[derive(Serialize)]
struct TextBlock<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    text: &'a str,
}

#[derive(Serialize)]
struct Usage {
    input_tokens: u64,
    output_tokens: u64,
    cache_creation_input_tokens: u64,
    cache_read_input_tokens: u64,
}

#[derive(Serialize)]
struct MessageStart<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    message: MessageObject<'a>,
}

fn is_text(kind: &str) -> bool {
    kind == "text"
}

pub(crate) fn messages(ctx: &Ctx, body: &[u8]) -> Result<Generated, ApiError> {
    let req: MessagesRequest = parse_json(body)?;
    let model = req.model.as_deref().unwrap_or(DEFAULT_MODEL);
    let fault = ctx.fault_for(model)?;
    let system_chars = req.system.text(is_text).chars().count();
    let (input_chars, last_user) = conversation(&req.messages, system_chars, is_text);
    let reply = ctx.reply_for(last_user.as_deref());
    let tokens = Tokens::new(input_chars, &reply);
    let id = format!("msg_mock_{}", ctx.n);
    let message = |content, stop_reason, output_tokens| MessageObject {
        id: &id,
        kind: "message",
        role: "assistant",
        model,
        content,
        stop_reason,
        stop_sequence: (),
        usage: Usage {
            input_tokens: tokens.input,
            output_tokens,
            cache_creation_input_tokens: 0,
            cache_read_input_tokens: 0,
        },
    };
    let reply = if req.stream == Some(true) {
        // Like the real API, message_start reports one output token so far.
        let start = MessageStart {
            kind: "message_start",
            message: message(Vec::new(), None, 1),
        };
        Reply::Sse(stream(ctx, &start, &reply, tokens)?)
    } else {
        let content = vec![TextBlock {
            kind: "text",
            text: &reply,
        }];
        Reply::Json(to_json(&message(content, Some("end_turn"), tokens.output))?)
    };
    Ok(Generated { reply, fault })
}

fn stream(
    ctx: &Ctx,
    start: &MessageStart<'_>,
    reply: &str,
    tokens: Tokens,
) -> Result<Vec<Bytes>, ApiError> {
    let pieces = split_chunks(reply, ctx.chunks);
    let mut w = SseWriter::with_capacity(
        1024 + reply.len() * 2 + pieces.len() * 120,
        pieces.len() + 6,
    );
    w.json(Some("message_start"), start)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    w.raw(
        Some("content_block_start"),
        br#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
    );
    w.raw(Some("ping"), br#"{"type": "ping"}"#);
    for piece in pieces {
        let buf = w.begin(Some("content_block_delta"));
        buf.put_slice(
            br#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"#,
        );
        push_json_str(buf, piece);
        buf.put_slice(b"}}");
        w.end();
    }
    w.raw(
        Some("content_block_stop"),
        br#"{"type":"content_block_stop","index":0}"#,
    );
    let buf = w.begin(Some("message_delta"));
    buf.put_slice(br#"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":"#);
    push_u64(buf, tokens.output);
    buf.put_slice(b"}}");
    w.end();
    w.raw(Some("message_stop"), br#"{"type":"message_stop"}"#);
    Ok(w.finish())
}
