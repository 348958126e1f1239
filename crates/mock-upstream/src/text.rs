//! What the mock says and how it counts: a reply derived from the request, so
//! tests can check that content round-trips, and approximate token counts.

use serde_json::Value;

/// Joins the text of a message `content` (a string or an array of parts).
pub fn content_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| match p {
                Value::String(s) => Some(s.as_str()),
                _ if p["type"] == "text" || p["type"] == "input_text" => p["text"].as_str(),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

/// All text a request sends (for input token counts) and its last user text.
pub fn request_text(body: &Value) -> (String, Option<String>) {
    let mut all = String::new();
    let mut last_user = None;
    if let Some(system) = body.get("system") {
        all.push_str(&content_text(system));
    }
    if let Some(messages) = body["messages"].as_array() {
        for m in messages {
            let text = content_text(&m["content"]);
            all.push_str(&text);
            if m["role"] == "user" {
                last_user = Some(text);
            }
        }
    }
    match &body["prompt"] {
        Value::String(s) => {
            all.push_str(s);
            last_user = Some(s.clone());
        }
        Value::Array(items) => {
            let joined = items
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(" ");
            all.push_str(&joined);
            last_user = Some(joined);
        }
        _ => {}
    }
    match &body["input"] {
        Value::String(s) => {
            all.push_str(s);
            last_user = Some(s.clone());
        }
        Value::Array(items) => {
            for item in items {
                let text = match item {
                    Value::String(s) => s.clone(),
                    _ => content_text(&item["content"]),
                };
                all.push_str(&text);
                if item.is_string() || item["role"] == "user" {
                    last_user = Some(text);
                }
            }
        }
        _ => {}
    }
    if let Some(instructions) = body["instructions"].as_str() {
        all.push_str(instructions);
    }
    (all, last_user)
}

pub fn reply_for(last_user: Option<&str>) -> String {
    match last_user {
        Some(text) if !text.trim().is_empty() => format!("You said: {text}"),
        _ => "Hello from mock-upstream.".to_owned(),
    }
}

/// About four characters a token, at least one.
pub fn tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4).max(1)
}

/// Splits text into `n` pieces of about equal length, on character boundaries.
pub fn split(text: &str, n: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let n = n.clamp(1, chars.len().max(1));
    let size = chars.len().div_ceil(n).max(1);
    chars.chunks(size).map(|c| c.iter().collect()).collect()
}

/// A deterministic unit vector from the text.
pub fn embedding(text: &str, dims: usize) -> Vec<f32> {
    let mut state: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        state = (state ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
    }
    let mut v: Vec<f32> = (0..dims)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ((state >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        })
        .collect();
    let norm = v
        .iter()
        .map(|x| x * x)
        .sum::<f32>()
        .sqrt()
        .max(f32::EPSILON);
    v.iter_mut().for_each(|x| *x /= norm);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_on_character_boundaries() {
        let text = "héllo wörld ✓ 日本";
        for n in 1..30 {
            let parts = split(text, n);
            assert_eq!(parts.concat(), text);
            assert!(parts.len() <= n.max(1));
        }
        assert_eq!(split("", 4), Vec::<String>::new());
    }

    #[test]
    fn replies_and_counts() {
        let body = serde_json::json!({"system": "be kind", "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]});
        let (all, last) = request_text(&body);
        assert_eq!(last.as_deref(), Some("hi"));
        assert_eq!(reply_for(last.as_deref()), "You said: hi");
        assert_eq!(tokens(&all), 3);
        let e = embedding("x", 8);
        assert_eq!(e, embedding("x", 8));
        assert!((e.iter().map(|v| v * v).sum::<f32>() - 1.0).abs() < 1e-4);
    }
}
