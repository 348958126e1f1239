//! Server-sent-event framing and reply chunking.

use bytes::{BufMut, Bytes, BytesMut};
use serde::Serialize;

/// Builds a whole stream's events into one buffer (one allocation) and hands
/// them out as cheap slices, one per body frame.
pub(crate) struct SseWriter {
    buf: BytesMut,
    ends: Vec<usize>,
}

impl SseWriter {
    pub(crate) fn with_capacity(bytes: usize, events: usize) -> Self {
        Self {
            buf: BytesMut::with_capacity(bytes),
            ends: Vec::with_capacity(events),
        }
    }

    /// Starts an event: the optional `event:` line and `data: `; the caller
    /// writes the payload into [`Self::buf`] and calls [`Self::end`].
    pub(crate) fn begin(&mut self, event: Option<&str>) -> &mut BytesMut {
        if let Some(name) = event {
            self.buf.put_slice(b"event: ");
            self.buf.put_slice(name.as_bytes());
            self.buf.put_u8(b'\n');
        }
        self.buf.put_slice(b"data: ");
        &mut self.buf
    }

    pub(crate) fn end(&mut self) {
        self.buf.put_slice(b"\n\n");
        self.ends.push(self.buf.len());
    }

    /// An event whose data is already-encoded JSON (or `[DONE]`).
    pub(crate) fn raw(&mut self, event: Option<&str>, data: &[u8]) {
        self.begin(event).put_slice(data);
        self.end();
    }

    pub(crate) fn json<T: Serialize>(
        &mut self,
        event: Option<&str>,
        value: &T,
    ) -> Result<(), serde_json::Error> {
        serde_json::to_writer(self.begin(event).writer(), value)?;
        self.end();
        Ok(())
    }

    pub(crate) fn finish(self) -> Vec<Bytes> {
        let all = self.buf.freeze();
        let mut start = 0;
        self.ends
            .iter()
            .map(|&end| {
                let frame = all.slice(start..end);
                start = end;
                frame
            })
            .collect()
    }
}

/// Splits `text` into exactly `n` (at least 1) pieces of near-equal character
/// count, earlier pieces taking the remainder. Splitting on `char` boundaries
/// keeps every piece valid UTF-8, as real providers' deltas are; pieces are
/// empty when the text has fewer characters than `n`.
pub(crate) fn split_chunks(text: &str, n: usize) -> Vec<&str> {
    let n = n.max(1);
    let total = text.chars().count();
    let (base, extra) = (total / n, total % n);
    let mut pieces = Vec::with_capacity(n);
    let mut rest = text;
    for i in 0..n {
        let count = base + usize::from(i < extra);
        let at = rest
            .char_indices()
            .nth(count)
            .map_or(rest.len(), |(at, _)| at);
        let (piece, tail) = rest.split_at_checked(at).unwrap_or((rest, ""));
        pieces.push(piece);
        rest = tail;
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_into_near_equal_pieces() {
        assert_eq!(split_chunks("abcdefghij", 3), ["abcd", "efg", "hij"]);
        assert_eq!(split_chunks("abc", 1), ["abc"]);
        assert_eq!(split_chunks("abc", 0), ["abc"]);
        assert_eq!(split_chunks("abcdef", 3), ["ab", "cd", "ef"]);
    }

    #[test]
    fn short_text_gives_empty_tail_pieces() {
        assert_eq!(split_chunks("ab", 4), ["a", "b", "", ""]);
        assert_eq!(split_chunks("", 2), ["", ""]);
    }

    #[test]
    fn never_splits_a_utf8_character() {
        let text = "héllo wörld ✓ 日本 🦀";
        for n in 1..=30 {
            let pieces = split_chunks(text, n);
            assert_eq!(pieces.len(), n);
            assert_eq!(pieces.concat(), text);
            let counts: Vec<usize> = pieces.iter().map(|p| p.chars().count()).collect();
            let (min, max) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
            assert!(max - min <= 1, "uneven split {counts:?}");
        }
    }

    #[test]
    fn writer_frames_each_event() {
        let mut w = SseWriter::with_capacity(64, 3);
        w.raw(None, b"{\"a\":1}");
        w.json(Some("ping"), &serde_json::json!({"type": "ping"}))
            .unwrap();
        w.raw(None, b"[DONE]");
        let frames = w.finish();
        assert_eq!(frames[0], "data: {\"a\":1}\n\n");
        assert_eq!(frames[1], "event: ping\ndata: {\"type\":\"ping\"}\n\n");
        assert_eq!(frames[2], "data: [DONE]\n\n");
    }
}
