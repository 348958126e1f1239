//! Rewriting one SSE event of an MCP stream: its data becomes the new message,
//! or its `id` the gateway's own; the event's other fields are kept.

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

/// The event's `id` field, if it has one (the last one counts, as in SSE).
pub fn event_id(raw: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(raw).ok()?;
    let mut id = None;
    for line in text.lines() {
        if line == "id" {
            id = Some("");
        } else if let Some(value) = line.strip_prefix("id:") {
            id = Some(value.strip_prefix(' ').unwrap_or(value));
        }
    }
    id.map(str::to_owned)
}

/// The event with `id` as its only `id` field; its other fields are kept.
pub fn replace_id(raw: &[u8], id: &str) -> Bytes {
    let text = String::from_utf8_lossy(raw);
    let mut out = String::with_capacity(text.len() + id.len() + 5);
    out.push_str("id: ");
    out.push_str(id);
    out.push('\n');
    for line in text.lines() {
        if line.is_empty() || line == "id" || line.starts_with("id:") {
            continue;
        }
        out.push_str(line);
        out.push('\n');
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
    fn reads_and_replaces_the_id() {
        let raw = b"id: s-1/4\r\nretry: 100\r\ndata: \r\n\r\n";
        assert_eq!(event_id(raw).as_deref(), Some("s-1/4"));
        assert_eq!(event_id(b"id:7\ndata: x\n\n").as_deref(), Some("7"));
        assert_eq!(event_id(b"id: 1\nid: 2\n\n").as_deref(), Some("2"));
        assert_eq!(event_id(b"data: {\"id\": 3}\n\n"), None);
        assert_eq!(
            &replace_id(raw, "sealed")[..],
            b"id: sealed\nretry: 100\ndata: \n\n"
        );
        assert_eq!(
            &replace_id(b"event: message\nid: 1\ndata: {}\n\n", "t")[..],
            b"id: t\nevent: message\ndata: {}\n\n"
        );
    }

    #[test]
    fn adds_data_when_there_was_none() {
        assert_eq!(&replace_data(b"id: 1\n\n", "x")[..], b"id: 1\ndata: x\n\n");
    }
}
