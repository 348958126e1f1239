//! The strings of A2A message parts, wherever a request, an answer or a stream
//! event carries parts: a message's `parts`, a task's status message, history and
//! artifacts, an artifact update. Both part shapes: v0.3 (`kind`, `file.name`,
//! `file.uri`) and v1.0 (`text`, `data`, `url`, `filename`).

use serde_json::Value;

/// Which string of a part is visited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartField {
    /// A text part's text.
    Text,
    /// A string anywhere inside a data part.
    Data,
    /// A file's name.
    FileName,
    /// A file's URI; scanned but never rewritten (it would no longer resolve).
    FileUri,
}

impl PartField {
    /// Whether a redaction may rewrite this string.
    pub fn rewritable(self) -> bool {
        self != PartField::FileUri
    }
}

/// Deepest nesting walked; JSON deeper than this is not looked into (serde_json
/// refuses input nested beyond 128 anyway).
const MAX_DEPTH: usize = 64;

/// Calls `f` with every part string under `value`, mutably. Changes made to a
/// [`PartField::FileUri`] string are discarded.
pub fn visit_part_strings(value: &mut Value, f: &mut dyn FnMut(PartField, &mut String)) {
    walk(value, f, 0);
}

fn walk(value: &mut Value, f: &mut dyn FnMut(PartField, &mut String), depth: usize) {
    if depth > MAX_DEPTH {
        return;
    }
    match value {
        Value::Object(obj) => {
            for (key, child) in obj.iter_mut() {
                match (key.as_str(), child) {
                    ("parts", Value::Array(parts)) => {
                        for part in parts {
                            visit_part(part, f, depth + 1);
                        }
                    }
                    (_, child) => walk(child, f, depth + 1),
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                walk(item, f, depth + 1);
            }
        }
        _ => {}
    }
}

fn visit_part(part: &mut Value, f: &mut dyn FnMut(PartField, &mut String), depth: usize) {
    let Some(obj) = part.as_object_mut() else {
        return;
    };
    if let Some(Value::String(text)) = obj.get_mut("text") {
        f(PartField::Text, text);
    }
    if let Some(data) = obj.get_mut("data") {
        strings(data, f, depth + 1);
    }
    // v0.3 keeps file fields under `file`; v1.0 on the part itself.
    let file = match obj.get_mut("file") {
        Some(Value::Object(file)) => file,
        _ => obj,
    };
    for (key, field) in [
        ("name", PartField::FileName),
        ("filename", PartField::FileName),
        ("uri", PartField::FileUri),
        ("url", PartField::FileUri),
    ] {
        if let Some(Value::String(s)) = file.get_mut(key) {
            if field.rewritable() {
                f(field, s);
            } else {
                let mut copy = s.clone();
                f(field, &mut copy);
            }
        }
    }
}

/// Every string leaf of a data part.
fn strings(value: &mut Value, f: &mut dyn FnMut(PartField, &mut String), depth: usize) {
    if depth > MAX_DEPTH {
        return;
    }
    match value {
        Value::String(s) => f(PartField::Data, s),
        Value::Array(items) => items.iter_mut().for_each(|v| strings(v, f, depth + 1)),
        Value::Object(obj) => obj.values_mut().for_each(|v| strings(v, f, depth + 1)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn seen(value: &mut Value) -> Vec<(PartField, String)> {
        let mut out = Vec::new();
        visit_part_strings(value, &mut |field, s| out.push((field, s.clone())));
        out
    }

    #[test]
    fn parts_of_requests_answers_and_events_in_both_versions() {
        let mut v03_task = json!({"result": {"kind": "task", "id": "t",
            "status": {"state": "completed", "message": {"parts": [{"kind": "text", "text": "status"}]}},
            "artifacts": [{"parts": [{"kind": "file", "file": {"name": "a.txt", "uri": "https://x/a"}}]}],
            "history": [{"parts": [{"kind": "data", "data": {"k": ["v", 1, {"n": "deep"}]}}]}]}});
        assert_eq!(
            seen(&mut v03_task),
            vec![
                (PartField::FileName, "a.txt".into()),
                (PartField::FileUri, "https://x/a".into()),
                (PartField::Data, "v".into()),
                (PartField::Data, "deep".into()),
                (PartField::Text, "status".into()),
            ]
        );
        let mut v10_event = json!({"result": {"artifactUpdate": {"artifact": {"parts": [
            {"text": "one"}, {"url": "https://x/b", "filename": "b.pdf"}]}}}});
        assert_eq!(
            seen(&mut v10_event),
            vec![
                (PartField::Text, "one".into()),
                (PartField::FileName, "b.pdf".into()),
                (PartField::FileUri, "https://x/b".into()),
            ]
        );
    }

    #[test]
    fn rewrites_apply_except_to_uris() {
        let mut request = json!({"params": {"message": {"parts": [
            {"kind": "text", "text": "hi"}, {"kind": "file", "file": {"name": "n", "uri": "u"}}]}}});
        visit_part_strings(&mut request, &mut |_, s| s.push('!'));
        let parts = &request["params"]["message"]["parts"];
        assert_eq!(parts[0]["text"], "hi!");
        assert_eq!(parts[1]["file"], json!({"name": "n!", "uri": "u"}));
    }

    #[test]
    fn a_parts_key_inside_data_is_data() {
        let mut v = json!({"parts": [{"data": {"parts": [{"text": "inner"}]}}]});
        assert_eq!(seen(&mut v), vec![(PartField::Data, "inner".into())]);
    }
}
