//! Request text extraction, token estimates and hand-written JSON pieces.
//!
//! The streaming paths build their per-chunk events from templates instead of
//! serialising a struct per chunk, which keeps the mock cheap enough to
//! benchmark against; the helpers for that live here.

use std::fmt;
use std::marker::PhantomData;

use bytes::BufMut;
use serde::de::{Deserialize, Deserializer, SeqAccess, Visitor};

/// Reply when the request carries no user text.
pub(crate) const DEFAULT_REPLY: &str = "Hello from mock-upstream.";

/// Model echoed back when the request names none.
pub(crate) const DEFAULT_MODEL: &str = "mock-model";

/// Roughly what real tokenizers give for English (about 4 characters a
/// token); exact counts do not matter, stable arithmetic does.
pub(crate) fn estimate_tokens(chars: usize) -> u64 {
    chars.div_ceil(4).max(1) as u64
}

/// The deterministic reply: tests send text and look for it in the answer.
pub(crate) fn reply_for(user_text: Option<&str>) -> String {
    // `REVERSE: txet` answers "text": lets tests make the answer say what the
    // request does not (response inspection).
    if let Some(rest) = user_text.and_then(|t| t.strip_prefix("REVERSE: ")) {
        return rest.chars().rev().collect();
    }
    match user_text {
        Some(text) if !text.is_empty() => format!("You said: {text}"),
        _ => DEFAULT_REPLY.to_owned(),
    }
}

/// A provider field that is either a plain string or an array (message
/// `content`, Anthropic `system`, Responses `input`, embeddings `input`).
/// Hand-written because `#[serde(untagged)]` buffers the whole value and
/// reports useless errors.
#[derive(Debug, Default)]
pub(crate) enum OneOrMany<T> {
    #[default]
    Null,
    One(String),
    Many(Vec<T>),
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for OneOrMany<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);

        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = OneOrMany<T>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an array")
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(OneOrMany::One(v.to_owned()))
            }

            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(OneOrMany::One(v))
            }

            fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
                Ok(OneOrMany::Null)
            }

            fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
                Ok(OneOrMany::Null)
            }

            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
                d.deserialize_any(self)
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(256));
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(OneOrMany::Many(items))
            }
        }

        deserializer.deserialize_any(V(PhantomData))
    }
}

/// One content part/block; only `type` and `text` matter to the mock, other
/// fields (images, tool calls) are ignored.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct Part {
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub text: Option<String>,
}

impl OneOrMany<Part> {
    /// The text of the parts whose type passes `accept`, joined by newlines
    /// (a plain string is taken whole).
    pub(crate) fn text(&self, accept: fn(&str) -> bool) -> String {
        match self {
            OneOrMany::Null => String::new(),
            OneOrMany::One(s) => s.clone(),
            OneOrMany::Many(parts) => {
                let mut out = String::new();
                let texts = parts
                    .iter()
                    .filter(|p| p.kind.as_deref().is_some_and(accept))
                    .filter_map(|p| p.text.as_deref());
                for (i, t) in texts.enumerate() {
                    if i > 0 {
                        out.push('\n');
                    }
                    out.push_str(t);
                }
                out
            }
        }
    }
}

/// Input and output token counts, derived from character counts.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Tokens {
    pub input: u64,
    pub output: u64,
}

impl Tokens {
    pub(crate) fn new(input_chars: usize, reply: &str) -> Self {
        Self {
            input: estimate_tokens(input_chars),
            output: estimate_tokens(reply.chars().count()),
        }
    }

    pub(crate) fn total(self) -> u64 {
        self.input + self.output
    }
}

/// Appends `s` as a JSON string literal (with quotes).
pub(crate) fn push_json_str(out: &mut impl BufMut, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.put_u8(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => &[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(b >> 4) as usize],
                HEX[(b & 0xf) as usize],
            ],
            _ => continue,
        };
        out.put_slice(&bytes[start..i]);
        out.put_slice(escape);
        start = i + 1;
    }
    out.put_slice(&bytes[start..]);
    out.put_u8(b'"');
}

/// Appends `n` in decimal without going through `fmt`.
pub(crate) fn push_u64(out: &mut impl BufMut, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.put_slice(&digits[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_estimate_rounds_up_with_minimum_one() {
        assert_eq!(estimate_tokens(0), 1);
        assert_eq!(estimate_tokens(1), 1);
        assert_eq!(estimate_tokens(4), 1);
        assert_eq!(estimate_tokens(5), 2);
        assert_eq!(estimate_tokens(8), 2);
    }

    #[test]
    fn json_escaping_round_trips() {
        for s in [
            "plain",
            "quote \" back \\ slash",
            "nl\n\r\t",
            "\u{1}\u{1f}",
            "héllo ✓ 日本",
            "",
        ] {
            let mut lit = Vec::new();
            push_json_str(&mut lit, s);
            let back: String = serde_json::from_slice(&lit).unwrap();
            assert_eq!(back, s);
        }
    }

    #[test]
    fn decimal_writer() {
        for n in [0, 7, 10, 12345, u64::MAX] {
            let mut out = Vec::new();
            push_u64(&mut out, n);
            assert_eq!(String::from_utf8(out).unwrap(), n.to_string());
        }
    }

    #[test]
    fn content_parts_are_filtered_and_joined() {
        let c: OneOrMany<Part> = serde_json::from_str(
            r#"[{"type":"text","text":"a"},{"type":"image_url","image_url":{}},{"type":"text","text":"b"}]"#,
        )
        .unwrap();
        assert_eq!(c.text(|t| t == "text"), "a\nb");
        let c: OneOrMany<Part> = serde_json::from_str(r#""whole""#).unwrap();
        assert_eq!(c.text(|t| t == "text"), "whole");
        let c: OneOrMany<Part> = serde_json::from_str("null").unwrap();
        assert_eq!(c.text(|t| t == "text"), "");
        assert!(serde_json::from_str::<OneOrMany<Part>>("12").is_err());
    }
}
