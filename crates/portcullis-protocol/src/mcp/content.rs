//! What a server's answer puts in front of the model: the text of a
//! `tools/call` result, of a `prompts/get` result's messages and of a
//! `resources/read` result's contents. The gateway scans it (joined, see
//! [`text_of`]) and rewrites it in place (redaction, restored placeholders,
//! [`visit_texts`]).

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::Value;

/// Which result a value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// `tools/call`: `content` blocks and `structuredContent`.
    ToolResult,
    /// `prompts/get`: `description` and each message's content block.
    Prompt,
    /// `resources/read`: `contents`.
    Resource,
}

/// A blob is decoded (and scanned) only when its MIME type says text and its
/// base64 is at most this long; other blobs are not read.
pub const MAX_DECODED_BLOB: usize = 1 << 20;

/// Calls `f` on every text the model would read in `result`, in place. Keys of
/// `structuredContent` are passed as copies: they are scanned, not rewritten.
/// Text-like blobs are decoded for `f` and encoded again when `f` changed them.
pub fn visit_texts(shape: Shape, result: &mut Value, f: &mut dyn FnMut(&mut String)) {
    match shape {
        Shape::ToolResult => {
            if let Some(Value::Array(blocks)) = result.get_mut("content") {
                blocks.iter_mut().for_each(|b| block(b, f));
            }
            if let Some(s) = result.get_mut("structuredContent") {
                strings(s, f);
            }
        }
        Shape::Prompt => {
            if let Some(Value::String(s)) = result.get_mut("description") {
                f(s);
            }
            if let Some(Value::Array(messages)) = result.get_mut("messages") {
                for m in messages {
                    if let Some(b) = m.get_mut("content") {
                        block(b, f);
                    }
                }
            }
        }
        Shape::Resource => {
            if let Some(Value::Array(contents)) = result.get_mut("contents") {
                contents.iter_mut().for_each(|c| resource(c, f));
            }
        }
    }
}

/// Every text of `result`, one per line (what the policy engine scans).
pub fn text_of(shape: Shape, result: &mut Value) -> String {
    let mut out = String::new();
    visit_texts(shape, result, &mut |s| {
        out.push_str(s);
        out.push('\n');
    });
    out
}

/// A content block: text, an embedded resource, or a resource link's words.
/// Images and audio carry no text.
fn block(block: &mut Value, f: &mut dyn FnMut(&mut String)) {
    let Value::Object(map) = block else {
        return;
    };
    for field in ["text", "name", "title", "description"] {
        if let Some(Value::String(s)) = map.get_mut(field) {
            f(s);
        }
    }
    if let Some(r) = map.get_mut("resource") {
        resource(r, f);
    }
}

/// Resource contents: `text`, or a `blob` whose MIME type is text-like.
fn resource(contents: &mut Value, f: &mut dyn FnMut(&mut String)) {
    let Value::Object(map) = contents else {
        return;
    };
    if let Some(Value::String(s)) = map.get_mut("text") {
        f(s);
    }
    let texty = map
        .get("mimeType")
        .and_then(Value::as_str)
        .is_some_and(text_like);
    if !texty {
        return;
    }
    let Some(Value::String(blob)) = map.get_mut("blob") else {
        return;
    };
    if blob.len() > MAX_DECODED_BLOB {
        return;
    }
    let Some(mut text) = STANDARD
        .decode(blob.as_bytes())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
    else {
        return;
    };
    let before = text.clone();
    f(&mut text);
    if text != before {
        *blob = STANDARD.encode(text.as_bytes());
    }
}

/// `text/*`, JSON, XML, YAML, JavaScript: MIME types whose bytes are text.
pub fn text_like(mime: &str) -> bool {
    let mime = mime
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    mime.starts_with("text/")
        || ["json", "xml", "yaml", "javascript"]
            .iter()
            .any(|k| mime.starts_with("application/") && mime.contains(k))
}

/// String values at any depth (object keys as copies).
fn strings(value: &mut Value, f: &mut dyn FnMut(&mut String)) {
    match value {
        Value::String(s) => f(s),
        Value::Array(items) => items.iter_mut().for_each(|v| strings(v, f)),
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                f(&mut k.clone());
                strings(v, f);
            }
        }
        _ => {}
    }
}

/// String values of a `tools/call`'s `arguments`, at any depth, in place (keys
/// are left alone).
pub fn visit_arguments(params: &mut Value, f: &mut dyn FnMut(&mut String)) {
    fn values(value: &mut Value, f: &mut dyn FnMut(&mut String)) {
        match value {
            Value::String(s) => f(s),
            Value::Array(items) => items.iter_mut().for_each(|v| values(v, f)),
            Value::Object(map) => map.values_mut().for_each(|v| values(v, f)),
            _ => {}
        }
    }
    if let Some(args) = params.get_mut("arguments") {
        values(args, f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tool_results_give_text_blocks_resources_and_structured_strings() {
        let mut result = json!({"content": [
            {"type": "text", "text": "hello"},
            {"type": "resource", "resource": {"uri": "u", "text": "doc"}},
            {"type": "image", "data": "AAAA", "mimeType": "image/png"},
            {"type": "resource_link", "uri": "file:///x", "name": "x.txt", "description": "notes"}
        ], "structuredContent": {"k": ["v", 1, {"n": "w"}]}});
        assert_eq!(
            text_of(Shape::ToolResult, &mut result),
            "hello\ndoc\nx.txt\nnotes\nk\nv\nn\nw\n"
        );
        // Rewriting touches values, never keys or non-text blocks.
        visit_texts(Shape::ToolResult, &mut result, &mut |s| {
            *s = s.to_uppercase()
        });
        assert_eq!(result["content"][0]["text"], "HELLO");
        assert_eq!(result["content"][2]["data"], "AAAA");
        assert_eq!(
            result["structuredContent"],
            json!({"k": ["V", 1, {"n": "W"}]})
        );
    }

    #[test]
    fn prompts_give_their_description_and_messages() {
        let mut result = json!({"description": "d", "messages": [
            {"role": "user", "content": {"type": "text", "text": "hi"}},
            {"role": "user", "content": {"type": "resource", "resource": {"uri": "u", "mimeType": "text/plain", "blob": STANDARD.encode("inner")}}}
        ]});
        assert_eq!(text_of(Shape::Prompt, &mut result), "d\nhi\ninner\n");
    }

    #[test]
    fn text_blobs_are_decoded_and_encoded_again_binary_ones_are_not() {
        let mut result = json!({"contents": [
            {"uri": "a", "mimeType": "text/plain", "text": "plain"},
            {"uri": "b", "mimeType": "application/json; charset=utf-8", "blob": STANDARD.encode("{\"a\":1}")},
            {"uri": "c", "mimeType": "image/png", "blob": STANDARD.encode("not read")},
            {"uri": "d", "mimeType": "text/plain", "blob": "!!not base64"}
        ]});
        assert_eq!(text_of(Shape::Resource, &mut result), "plain\n{\"a\":1}\n");
        visit_texts(Shape::Resource, &mut result, &mut |s| {
            *s = s.replace('1', "2")
        });
        assert_eq!(result["contents"][1]["blob"], STANDARD.encode("{\"a\":2}"));
        assert_eq!(result["contents"][3]["blob"], "!!not base64");
    }

    #[test]
    fn arguments_rewrite_values_at_any_depth() {
        let mut params =
            json!({"name": "t", "arguments": {"to": "a@b.c", "cc": ["d@e.f", 3], "o": {"k": "x"}}});
        visit_arguments(&mut params, &mut |s| *s = format!("<{s}>"));
        assert_eq!(
            params["arguments"],
            json!({"to": "<a@b.c>", "cc": ["<d@e.f>", 3], "o": {"k": "<x>"}})
        );
        assert_eq!(params["name"], "t");
    }
}
