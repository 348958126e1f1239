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

fn push_text(out: &mut Vec<(Part, String)>, part: Part, value: &Value) {
    match value {
        Value::String(s) if !s.is_empty() => out.push((part, s.clone())),
        Value::Array(items) => {
            for item in items {
                match item["type"].as_str() {
                    Some("text" | "input_text" | "output_text") => {
                        push_text(out, part, &item["text"])
                    }
                    // Anthropic blocks inside a message.
                    Some("tool_use") => out.push((Part::ToolCall, item["input"].to_string())),
                    Some("tool_result") => push_text(out, Part::ToolResult, &item["content"]),
                    Some("function_call") => push_text(out, Part::ToolCall, &item["arguments"]),
                    Some("function_call_output") => {
                        push_text(out, Part::ToolResult, &item["output"])
                    }
                    _ if item.is_string() => push_text(out, part, item),
                    _ => {}
                }
            }
        }
        _ => {}
    }
}

/// Every piece of text in a request body worth scanning.
pub fn request_texts(endpoint: Endpoint, body: &Value) -> Vec<(Part, String)> {
    let mut out = Vec::new();
    match endpoint {
        Endpoint::ChatCompletions | Endpoint::Messages => {
            push_text(&mut out, Part::Prompt, &body["system"]);
            for message in body["messages"].as_array().into_iter().flatten() {
                let part = if message["role"] == "tool" {
                    Part::ToolResult
                } else {
                    Part::Prompt
                };
                push_text(&mut out, part, &message["content"]);
                for call in message["tool_calls"].as_array().into_iter().flatten() {
                    push_text(&mut out, Part::ToolCall, &call["function"]["arguments"]);
                }
            }
        }
        Endpoint::Completions => push_text(&mut out, Part::Prompt, &body["prompt"]),
        Endpoint::Embeddings => push_text(&mut out, Part::Prompt, &body["input"]),
        Endpoint::Responses => {
            push_text(&mut out, Part::Prompt, &body["instructions"]);
            match &body["input"] {
                Value::Array(items) => {
                    for item in items {
                        if item.get("role").is_some() {
                            push_text(&mut out, Part::Prompt, &item["content"]);
                        } else {
                            push_text(&mut out, Part::Prompt, &Value::Array(vec![item.clone()]));
                        }
                    }
                }
                other => push_text(&mut out, Part::Prompt, other),
            }
        }
        Endpoint::Models => {}
    }
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
