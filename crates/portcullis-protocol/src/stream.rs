//! Watching a streamed response go by: usage, first token, end of stream, and
//! removal of the usage chunk the gateway asked for on the client's behalf.

use crate::answer::{DeltaEvent, TextFilter};
use crate::sse::{FrameTooLarge, SseFrame, SseFramer};
use crate::usage::{self, Usage};
use crate::{Dialect, Endpoint};
use bytes::{Bytes, BytesMut};

/// Largest single SSE event accepted from an upstream.
pub const MAX_EVENT_BYTES: usize = 4 * 1024 * 1024;

pub struct StreamObserver {
    endpoint: Endpoint,
    /// Rewrites or stops the answer text (placeholder restoring, response policies).
    filter: Option<Box<dyn TextFilter>>,
    /// The last text event, the template for releasing held-back text.
    last_delta: Option<DeltaEvent>,
    framer: SseFramer,
    frames: Vec<SseFrame>,
    strip_usage_chunk: bool,
    usage: Option<Usage>,
    saw_content: bool,
    done: bool,
}

/// What one upstream chunk means for the client.
#[derive(Debug, Default)]
pub struct Observed {
    /// Bytes to send to the client now (whole events only).
    pub forward: Bytes,
    /// This chunk carried the first content of the stream.
    pub first_content: bool,
    /// The filter stopped the answer: why. Nothing more may be forwarded.
    pub stopped: Option<String>,
}

impl std::fmt::Debug for StreamObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamObserver")
            .field("endpoint", &self.endpoint)
            .field("filtered", &self.filter.is_some())
            .finish_non_exhaustive()
    }
}

impl StreamObserver {
    /// `strip_usage_chunk`: the gateway added `include_usage`; drop that chunk.
    pub fn new(endpoint: Endpoint, strip_usage_chunk: bool) -> Self {
        Self {
            endpoint,
            filter: None,
            last_delta: None,
            framer: SseFramer::new(MAX_EVENT_BYTES),
            frames: Vec::new(),
            strip_usage_chunk,
            usage: None,
            saw_content: false,
            done: false,
        }
    }

    /// Passes every answer text through `filter` (events are rewritten when it
    /// changes them).
    pub fn with_filter(mut self, filter: Box<dyn TextFilter>) -> Self {
        self.filter = Some(filter);
        self
    }

    /// Runs the filter over one frame: the bytes to forward for it, or why the
    /// answer stops.
    fn filtered(&mut self, frame: SseFrame) -> Result<Bytes, String> {
        let Some(filter) = self.filter.as_mut() else {
            return Ok(frame.raw);
        };
        if let Some((event, text)) = DeltaEvent::parse(self.endpoint, &frame) {
            let out = filter.filter(&text)?;
            let bytes = if out == text {
                frame.raw
            } else if out.is_empty() {
                Bytes::new()
            } else {
                event.with_text(&out)
            };
            self.last_delta = Some(event);
            return Ok(bytes);
        }
        // Any other event ends a run of text: release what was held back.
        let held = filter.finish()?;
        match (&self.last_delta, held.is_empty()) {
            (Some(template), false) => Ok([template.with_text(&held), frame.raw].concat().into()),
            _ => Ok(frame.raw),
        }
    }

    /// Findings the filter recorded since the last call.
    pub fn take_findings(&mut self) -> Vec<serde_json::Value> {
        self.filter
            .as_mut()
            .map(|f| f.take_findings())
            .unwrap_or_default()
    }

    pub fn push(&mut self, chunk: &[u8]) -> Result<Observed, FrameTooLarge> {
        self.framer.push(chunk, &mut self.frames)?;
        let frames = std::mem::take(&mut self.frames);
        let mut observed = Observed::default();
        let mut forward = BytesMut::new();
        let mut forward_single: Option<Bytes> = None;
        let total = frames.len();
        for frame in frames {
            if !self.saw_content && self.is_content(&frame) {
                self.saw_content = true;
                observed.first_content = true;
            }
            let keep = self.observe(&frame);
            if keep {
                let raw = match self.filtered(frame) {
                    Ok(raw) => raw,
                    Err(why) => {
                        observed.stopped = Some(why);
                        return Ok(observed);
                    }
                };
                // The common case, one event per chunk, forwards without copying.
                if total == 1 {
                    forward_single = Some(raw);
                } else {
                    forward.extend_from_slice(&raw);
                }
            }
        }
        observed.forward = forward_single.unwrap_or_else(|| forward.freeze());
        Ok(observed)
    }

    /// Bytes held back when the upstream ended mid-event. The filter reads what
    /// it still holds, so its findings reach the exchange's event even when the
    /// upstream stopped without a closing event (nothing is left to stop then).
    pub fn finish(&mut self) -> Bytes {
        if let Some(filter) = self.filter.as_mut() {
            let _ = filter.finish();
        }
        match self.framer.finish() {
            Some(frame) => {
                let keep = self.observe(&frame);
                if keep {
                    frame.raw
                } else {
                    Bytes::new()
                }
            }
            None => Bytes::new(),
        }
    }

    pub fn usage(&self) -> Option<Usage> {
        self.usage
    }

    /// The upstream signalled a complete stream (`[DONE]`, `message_stop`, `response.completed`).
    pub fn completed(&self) -> bool {
        self.done
    }

    fn is_content(&self, frame: &SseFrame) -> bool {
        match self.endpoint.dialect() {
            Dialect::Anthropic => frame.event.as_deref() == Some("content_block_delta"),
            Dialect::OpenAi => {
                frame.event.as_deref() == Some("response.output_text.delta")
                    || (frame.event.is_none()
                        && (frame.data.contains("\"content\":\"")
                            && !frame.data.contains("\"content\":\"\"")
                            || frame.data.contains("\"text\":\"")))
            }
        }
    }

    /// Records what the frame says; returns whether to forward it.
    fn observe(&mut self, frame: &SseFrame) -> bool {
        let data = frame.data.trim();
        match self.endpoint.dialect() {
            Dialect::Anthropic => match frame.event.as_deref() {
                Some("message_start") => {
                    if let Some(u) = parse(data)
                        .and_then(|v| usage::from_value(Dialect::Anthropic, &v["message"]["usage"]))
                    {
                        self.usage = Some(u);
                    }
                }
                Some("message_delta") => {
                    if let Some(v) = parse(data) {
                        let delta =
                            usage::from_value(Dialect::Anthropic, &v["usage"]).unwrap_or_default();
                        let u = self.usage.get_or_insert_with(Usage::default);
                        u.output_tokens = delta.output_tokens;
                    }
                }
                Some("message_stop") => self.done = true,
                _ => {}
            },
            Dialect::OpenAi if self.endpoint == Endpoint::Responses => {
                if frame.event.as_deref() == Some("response.completed")
                    || data.contains("\"type\":\"response.completed\"")
                {
                    self.done = true;
                    if let Some(u) = parse(data)
                        .and_then(|v| usage::from_value(Dialect::OpenAi, &v["response"]["usage"]))
                    {
                        self.usage = Some(u);
                    }
                }
            }
            Dialect::OpenAi => {
                if data == "[DONE]" {
                    self.done = true;
                } else if data.contains("\"usage\":{") {
                    if let Some(v) = parse(data) {
                        if let Some(u) = usage::from_value(Dialect::OpenAi, &v["usage"]) {
                            self.usage = Some(u);
                        }
                        let usage_only = v["choices"].as_array().is_some_and(|c| c.is_empty());
                        if usage_only && self.strip_usage_chunk {
                            return false;
                        }
                    }
                }
            }
        }
        true
    }
}

fn parse(data: &str) -> Option<serde_json::Value> {
    serde_json::from_str(data).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPENAI: &str = concat!(
        "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}],\"usage\":null}\n\n",
        "data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}],\"usage\":null}\n\n",
        "data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":null}\n\n",
        "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":2}}\n\n",
        "data: [DONE]\n\n"
    );

    fn run(
        endpoint: Endpoint,
        strip: bool,
        text: &str,
        piece: usize,
    ) -> (String, StreamObserver, usize) {
        let mut obs = StreamObserver::new(endpoint, strip);
        let mut out = Vec::new();
        let mut first_at = usize::MAX;
        for (i, chunk) in text.as_bytes().chunks(piece).enumerate() {
            let o = obs.push(chunk).unwrap_or_default();
            if o.first_content && first_at == usize::MAX {
                first_at = i;
            }
            out.extend_from_slice(&o.forward);
        }
        out.extend_from_slice(&obs.finish());
        (String::from_utf8(out).unwrap_or_default(), obs, first_at)
    }

    #[test]
    fn openai_usage_is_read_and_the_injected_chunk_stripped() {
        for piece in [1, 7, 64, 4096] {
            let (out, obs, _) = run(Endpoint::ChatCompletions, true, OPENAI, piece);
            assert_eq!(
                obs.usage(),
                Some(Usage {
                    input_tokens: 9,
                    output_tokens: 2,
                    cached_input_tokens: 0
                })
            );
            assert!(obs.completed());
            assert!(
                !out.contains("prompt_tokens"),
                "usage chunk stripped: {out}"
            );
            assert!(out.contains("Hel") && out.ends_with("data: [DONE]\n\n"));

            let (out, obs, _) = run(Endpoint::ChatCompletions, false, OPENAI, piece);
            assert_eq!(
                out, OPENAI,
                "forwarded unchanged when the client asked for usage"
            );
            assert!(obs.usage().is_some());
        }
    }

    #[test]
    fn anthropic_usage_comes_from_start_and_delta() {
        let stream = concat!(
            "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":12,\"output_tokens\":1,\"cache_read_input_tokens\":3}}}\n\n",
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n",
            "event: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":7}}\n\n",
            "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"
        );
        let (out, obs, first) = run(Endpoint::Messages, false, stream, 5);
        assert_eq!(out, stream);
        assert_eq!(
            obs.usage(),
            Some(Usage {
                input_tokens: 15,
                output_tokens: 7,
                cached_input_tokens: 3
            })
        );
        assert!(obs.completed());
        assert!(first > 0 && first < usize::MAX);
    }

    #[test]
    fn responses_usage_comes_from_completed() {
        let stream = concat!(
            "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"Hi\"}\n\n",
            "event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"usage\":{\"input_tokens\":4,\"output_tokens\":2}}}\n\n"
        );
        let (_, obs, _) = run(Endpoint::Responses, false, stream, 3);
        assert_eq!(
            obs.usage().map(|u| (u.input_tokens, u.output_tokens)),
            Some((4, 2))
        );
        assert!(obs.completed());
    }
}
