//! Incremental server-sent-event framing.
//!
//! Bytes arrive in arbitrary pieces; [`SseFramer`] hands back whole events, each
//! with its raw bytes (to forward unchanged) and its `event` and `data` fields (to
//! observe). Memory is bounded: an event larger than the limit is an error.

use bytes::{Bytes, BytesMut};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseFrame {
    /// The event exactly as received, terminating blank line included.
    pub raw: Bytes,
    pub event: Option<String>,
    /// `data:` lines joined with `\n`.
    pub data: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("an SSE event exceeded {0} bytes")]
pub struct FrameTooLarge(pub usize);

#[derive(Debug)]
pub struct SseFramer {
    buf: BytesMut,
    max_event: usize,
    /// Where to resume looking for the end of the current event.
    scanned: usize,
}

impl SseFramer {
    pub fn new(max_event: usize) -> Self {
        Self {
            buf: BytesMut::new(),
            max_event,
            scanned: 0,
        }
    }

    /// Adds bytes and appends every event they complete to `out`.
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<SseFrame>) -> Result<(), FrameTooLarge> {
        self.buf.extend_from_slice(chunk);
        while let Some(end) = self.find_event_end() {
            let raw = self.buf.split_to(end).freeze();
            self.scanned = 0;
            out.push(parse(raw));
        }
        if self.buf.len() > self.max_event {
            return Err(FrameTooLarge(self.max_event));
        }
        Ok(())
    }

    /// Whatever is left when the stream ends (an event without its blank line).
    pub fn finish(&mut self) -> Option<SseFrame> {
        if self.buf.iter().all(|b| b.is_ascii_whitespace()) {
            self.buf.clear();
            return None;
        }
        Some(parse(self.buf.split().freeze()))
    }

    /// Index just past the blank line ending the first event (`\n\n`, `\r\n\r\n`,
    /// `\r\r`), if the buffer holds one.
    fn find_event_end(&mut self) -> Option<usize> {
        let bytes = &self.buf[..];
        let mut i = self.scanned.saturating_sub(3);
        while let Some(pos) = memchr::memchr2(b'\n', b'\r', &bytes[i..]) {
            let at = i + pos;
            let rest = &bytes[at..];
            for sep in [&b"\r\n\r\n"[..], b"\n\n", b"\r\r", b"\n\r\n", b"\r\n\n"] {
                if rest.starts_with(sep) {
                    return Some(at + sep.len());
                }
            }
            i = at + 1;
        }
        self.scanned = bytes.len();
        None
    }
}

fn parse(raw: Bytes) -> SseFrame {
    let text = String::from_utf8_lossy(&raw);
    let mut event = None;
    let mut data: Option<String> = None;
    for line in text.split(['\n', '\r']) {
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "event" => event = Some(value.to_owned()),
            "data" => match &mut data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => data = Some(value.to_owned()),
            },
            _ => {}
        }
    }
    SseFrame {
        raw,
        event,
        data: data.unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STREAM: &str = "event: message_start\ndata: {\"a\":1}\n\n: comment\ndata: line1\ndata: line2\n\ndata: [DONE]\r\n\r\n";

    fn frames_of(pieces: &[&[u8]]) -> Vec<SseFrame> {
        let mut framer = SseFramer::new(1 << 20);
        let mut out = Vec::new();
        for p in pieces {
            framer.push(p, &mut out).unwrap_or_default();
        }
        out
    }

    #[test]
    fn frames_whole_events_with_fields() {
        let frames = frames_of(&[STREAM.as_bytes()]);
        assert_eq!(frames.len(), 3);
        assert_eq!(frames[0].event.as_deref(), Some("message_start"));
        assert_eq!(frames[0].data, "{\"a\":1}");
        assert_eq!(frames[1].data, "line1\nline2");
        assert_eq!(frames[2].data, "[DONE]");
        let joined: Vec<u8> = frames.iter().flat_map(|f| f.raw.to_vec()).collect();
        assert_eq!(joined, STREAM.as_bytes());
    }

    #[test]
    fn any_split_gives_the_same_frames() {
        let whole = frames_of(&[STREAM.as_bytes()]);
        let bytes = STREAM.as_bytes();
        for a in 0..bytes.len() {
            for b in a..bytes.len() {
                let split = frames_of(&[&bytes[..a], &bytes[a..b], &bytes[b..]]);
                assert_eq!(split, whole, "split at {a}/{b}");
            }
        }
    }

    #[test]
    fn oversized_events_are_refused() {
        let mut framer = SseFramer::new(16);
        let mut out = Vec::new();
        assert_eq!(framer.push(&[b'x'; 32], &mut out), Err(FrameTooLarge(16)));
    }

    #[test]
    fn trailing_event_without_blank_line_is_kept() {
        let mut framer = SseFramer::new(1024);
        let mut out = Vec::new();
        let _ = framer.push(b"data: tail", &mut out);
        assert!(out.is_empty());
        assert_eq!(framer.finish().map(|f| f.data), Some("tail".to_owned()));
    }
}
