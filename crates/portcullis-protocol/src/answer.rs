//! The text of a model's answer, for inspection and placeholder restoring: in a
//! whole response body, and in the delta events of a stream.

use crate::sse::SseFrame;
use crate::Endpoint;
use bytes::Bytes;
use serde_json::Value;

/// Something that reads an answer's text as it goes by and may rewrite it
/// (restore placeholders) or stop it (a policy blocked it).
pub trait TextFilter: Send {
    /// Text to pass on for this piece; `Err` carries why the answer must stop.
    fn filter(&mut self, piece: &str) -> Result<String, String>;
    /// Text held back so far, at the end of the answer.
    fn finish(&mut self) -> Result<String, String>;
    /// Findings recorded since the last call, for the exchange's event.
    fn take_findings(&mut self) -> Vec<Value> {
        Vec::new()
    }
}

/// Calls `f` on every answer text in a whole (non-streamed) response body.
pub fn visit_answer_texts(endpoint: Endpoint, body: &mut Value, mut f: impl FnMut(&mut String)) {
    let mut each = |v: Option<&mut Value>| {
        if let Some(Value::String(s)) = v {
            f(s);
        }
    };
    match endpoint {
        Endpoint::ChatCompletions | Endpoint::Completions => {
            for choice in body
                .get_mut("choices")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                each(choice.pointer_mut("/message/content"));
                each(choice.get_mut("text"));
            }
        }
        Endpoint::Messages => {
            for block in body
                .get_mut("content")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                each(block.get_mut("text"));
            }
        }
        Endpoint::Responses => {
            for item in body
                .get_mut("output")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                for part in item
                    .get_mut("content")
                    .and_then(Value::as_array_mut)
                    .into_iter()
                    .flatten()
                {
                    each(part.get_mut("text"));
                }
            }
        }
        Endpoint::Embeddings | Endpoint::Models => {}
    }
}

/// Where a stream event carries answer text.
fn delta_pointer(endpoint: Endpoint, event: Option<&str>, value: &Value) -> Option<&'static str> {
    match endpoint {
        Endpoint::ChatCompletions => Some("/choices/0/delta/content"),
        Endpoint::Completions => Some("/choices/0/text"),
        Endpoint::Messages => (event == Some("content_block_delta")
            || value["type"] == "content_block_delta")
            .then_some("/delta/text"),
        Endpoint::Responses => (event == Some("response.output_text.delta")
            || value["type"] == "response.output_text.delta")
            .then_some("/delta"),
        Endpoint::Embeddings | Endpoint::Models => None,
    }
}

/// A stream event with answer text, parsed so the text can be replaced.
#[derive(Debug, Clone)]
pub struct DeltaEvent {
    event: Option<String>,
    value: Value,
    pointer: &'static str,
}

impl DeltaEvent {
    /// The event's answer text, if it is a text delta.
    pub fn parse(endpoint: Endpoint, frame: &SseFrame) -> Option<(DeltaEvent, String)> {
        let data = frame.data.trim();
        if !data.starts_with('{') {
            return None;
        }
        let value: Value = serde_json::from_str(data).ok()?;
        let pointer = delta_pointer(endpoint, frame.event.as_deref(), &value)?;
        let text = value.pointer(pointer)?.as_str()?.to_owned();
        Some((
            DeltaEvent {
                event: frame.event.clone(),
                value,
                pointer,
            },
            text,
        ))
    }

    /// The event again, carrying `text` instead.
    pub fn with_text(&self, text: &str) -> Bytes {
        let mut value = self.value.clone();
        if let Some(slot) = value.pointer_mut(self.pointer) {
            *slot = Value::String(text.to_owned());
        }
        let mut out = String::new();
        if let Some(event) = &self.event {
            out.push_str("event: ");
            out.push_str(event);
            out.push('\n');
        }
        out.push_str("data: ");
        out.push_str(&value.to_string());
        out.push_str("\n\n");
        Bytes::from(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sse::SseFramer;
    use serde_json::json;

    #[test]
    fn whole_bodies_by_dialect() {
        let mut chat =
            json!({"choices": [{"message": {"content": "a"}}, {"message": {"content": "b"}}]});
        let mut seen = Vec::new();
        visit_answer_texts(Endpoint::ChatCompletions, &mut chat, |t| {
            seen.push(t.clone());
            *t = t.to_uppercase();
        });
        assert_eq!(seen, ["a", "b"]);
        assert_eq!(chat["choices"][1]["message"]["content"], "B");
        let mut msg =
            json!({"content": [{"type": "text", "text": "hi"}, {"type": "tool_use", "input": {}}]});
        let mut n = 0;
        visit_answer_texts(Endpoint::Messages, &mut msg, |_| n += 1);
        assert_eq!(n, 1);
    }

    #[test]
    fn stream_deltas_are_rewritten_in_place() {
        let mut framer = SseFramer::new(1 << 20);
        let mut frames = Vec::new();
        let _ = framer.push(
            b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"[EMA\"}}\n\ndata: {\"choices\":[{\"delta\":{\"content\":\"x\"}}]}\n\n",
            &mut frames,
        );
        let (event, text) =
            DeltaEvent::parse(Endpoint::Messages, &frames[0]).unwrap_or_else(|| panic!("no delta"));
        assert_eq!(text, "[EMA");
        let again = event.with_text("a@b.io");
        let s = String::from_utf8_lossy(&again);
        assert!(s.starts_with("event: content_block_delta\ndata: {"));
        assert!(s.contains("\"text\":\"a@b.io\"") && s.ends_with("\n\n"));
        let (_, text) = DeltaEvent::parse(Endpoint::ChatCompletions, &frames[1])
            .unwrap_or_else(|| panic!("no delta"));
        assert_eq!(text, "x");
        assert!(DeltaEvent::parse(Endpoint::Messages, &frames[1]).is_none());
    }
}
