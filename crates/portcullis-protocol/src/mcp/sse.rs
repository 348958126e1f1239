//! Rewriting one SSE event of an MCP stream: the event's other fields (`id`,
//! `event`, `retry`) are kept, so resumption ids survive; its data becomes the
//! new message.

use bytes::Bytes;

/// The event with its `data:` lines replaced by `data` (one line: JSON has no
/// raw newlines).
pub fn replace_data(raw: &[u8], data: &str) -> Bytes {
    let text = String::from_utf8_lossy(raw);
    let mut out = String::with_capacity(text.len() + data.len());
    let mut wrote = false;
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if line == "data" || line.starts_with("data:") {
            if !wrote {
                push_data(&mut out, data);
                wrote = true;
            }
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    if !wrote {
        push_data(&mut out, data);
    }
    out.push('\n');
    Bytes::from(out)
}

fn push_data(out: &mut String, data: &str) {
    for line in data.split('\n') {
        out.push_str("data: ");
        out.push_str(line.trim_end_matches('\r'));
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_id_and_event_fields() {
        let raw = b"event: message\r\nid: 42\r\ndata: {\"a\":\r\ndata: 1}\r\n\r\n";
        let out = replace_data(raw, "{\"b\":2}");
        assert_eq!(&out[..], b"event: message\nid: 42\ndata: {\"b\":2}\n\n");
    }

    #[test]
    fn adds_data_when_there_was_none() {
        assert_eq!(&replace_data(b"id: 1\n\n", "x")[..], b"id: 1\ndata: x\n\n");
    }
}
