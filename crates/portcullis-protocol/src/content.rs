//! The text of a request, by part, for inspection: what the user and system say,
//! the arguments of tool calls, and the results tools returned.

use crate::Endpoint;
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// User, system and assistant text.
    Prompt,
    ToolCall,
    ToolResult,
}

/// Calls `f` on every string leaf of a JSON value (tool-call inputs given as objects).
fn visit_leaves(value: &mut Value, part: Part, f: &mut impl FnMut(Part, &mut String)) {
    match value {
        Value::String(s) if !s.is_empty() => f(part, s),
        Value::Array(items) => items.iter_mut().for_each(|v| visit_leaves(v, part, f)),
        Value::Object(map) => map.values_mut().for_each(|v| visit_leaves(v, part, f)),
        _ => {}
    }
}

fn visit_text(value: &mut Value, part: Part, f: &mut impl FnMut(Part, &mut String)) {
    match value {
        Value::String(s) if !s.is_empty() => f(part, s),
        Value::Array(items) => {
            for item in items {
                if let Value::String(s) = item {
                    if !s.is_empty() {
                        f(part, s);
                    }
                    continue;
                }
                let kind = item["type"].as_str().map(str::to_owned);
                match kind.as_deref() {
                    Some("text" | "input_text" | "output_text") => {
                        visit_text(&mut item["text"], part, f)
                    }
                    // Anthropic blocks inside a message.
                    Some("tool_use") => visit_leaves(&mut item["input"], Part::ToolCall, f),
                    Some("tool_result") => visit_text(&mut item["content"], Part::ToolResult, f),
                    Some("function_call") => visit_text(&mut item["arguments"], Part::ToolCall, f),
                    Some("function_call_output") => {
                        visit_text(&mut item["output"], Part::ToolResult, f)
                    }
                    _ => {}
                }
            }
        }
        _ => {}
    }
}

/// Calls `f` on every piece of text in a request body worth scanning, by part;
/// `f` may rewrite it in place (redaction).
pub fn visit_request_texts(
    endpoint: Endpoint,
    body: &mut Value,
    mut f: impl FnMut(Part, &mut String),
) {
    let f = &mut f;
    match endpoint {
        Endpoint::ChatCompletions | Endpoint::Messages => {
            if body.get("system").is_some() {
                visit_text(&mut body["system"], Part::Prompt, f);
            }
            let Some(messages) = body.get_mut("messages").and_then(Value::as_array_mut) else {
                return;
            };
            for message in messages {
                let part = if message["role"] == "tool" {
                    Part::ToolResult
                } else {
                    Part::Prompt
                };
                if message.get("content").is_some() {
                    visit_text(&mut message["content"], part, f);
                }
                if let Some(calls) = message.get_mut("tool_calls").and_then(Value::as_array_mut) {
                    for call in calls {
                        if call.pointer("/function/arguments").is_some() {
                            visit_text(&mut call["function"]["arguments"], Part::ToolCall, f);
                        }
                    }
                }
            }
        }
        Endpoint::Completions => {
            if let Some(v) = body.get_mut("prompt") {
                visit_text(v, Part::Prompt, f);
            }
        }
        Endpoint::Embeddings => {
            if let Some(v) = body.get_mut("input") {
                visit_text(v, Part::Prompt, f);
            }
        }
        Endpoint::Responses => {
            if let Some(v) = body.get_mut("instructions") {
                visit_text(v, Part::Prompt, f);
            }
            match body.get_mut("input") {
                Some(Value::Array(items)) => {
                    for item in items {
                        if item.get("role").is_some() {
                            visit_text(&mut item["content"], Part::Prompt, f);
                        } else {
                            let mut wrapped = Value::Array(vec![item.take()]);
                            visit_text(&mut wrapped, Part::Prompt, f);
                            if let Value::Array(mut back) = wrapped {
                                *item = back.pop().unwrap_or(Value::Null);
                            }
                        }
                    }
                }
                Some(other) => visit_text(other, Part::Prompt, f),
                None => {}
            }
        }
        Endpoint::Models => {}
    }
}

/// Every piece of text in a request body worth scanning.
pub fn request_texts(endpoint: Endpoint, body: &Value) -> Vec<(Part, String)> {
    let mut out = Vec::new();
    let mut copy = body.clone();
    visit_request_texts(endpoint, &mut copy, |part, text| {
        out.push((part, std::mem::take(text)))
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn chat_parts_by_role() {
        let body = json!({"messages": [
            {"role": "system", "content": "be kind"},
            {"role": "user", "content": [{"type": "text", "text": "hello"}, {"type": "image_url", "image_url": {}}]},
            {"role": "assistant", "content": null, "tool_calls": [{"function": {"name": "f", "arguments": "{\"q\":1}"}}]},
            {"role": "tool", "content": "result text"}
        ]});
        let texts = request_texts(Endpoint::ChatCompletions, &body);
        assert_eq!(
            texts,
            vec![
                (Part::Prompt, "be kind".into()),
                (Part::Prompt, "hello".into()),
                (Part::ToolCall, "{\"q\":1}".into()),
                (Part::ToolResult, "result text".into()),
            ]
        );
    }

    #[test]
    fn anthropic_blocks_and_responses_input() {
        let body = json!({"system": [{"type": "text", "text": "sys"}], "messages": [{"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "t", "content": [{"type": "text", "text": "from tool"}]}]}]});
        let texts = request_texts(Endpoint::Messages, &body);
        assert_eq!(
            texts,
            vec![
                (Part::Prompt, "sys".into()),
                (Part::ToolResult, "from tool".into())
            ]
        );
        let texts = request_texts(Endpoint::Responses, &json!({"input": "just text"}));
        assert_eq!(texts, vec![(Part::Prompt, "just text".into())]);
    }
}
