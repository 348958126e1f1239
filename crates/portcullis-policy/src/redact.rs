//! Reversible redaction: detected values become stable placeholders (`[EMAIL_1]`;
//! the same value gets the same placeholder throughout an exchange) before text
//! goes upstream, and placeholders in the answer are put back before the client
//! sees it, also when the answer arrives in pieces that split a placeholder.

use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

/// What happens to a detected entity of a given type (a pack's `entities` map).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Treatment {
    /// Placeholder upstream, original restored in the answer.
    #[default]
    Restore,
    /// Irreversibly masked: the provider and the client see `****1234`.
    Mask,
    /// The request is refused.
    Block,
    /// Left as it is; the finding is still recorded.
    Allow,
}

/// Placeholders are `[` + upper-case entity + `_` + number + `]`, at most this long.
pub const MAX_PLACEHOLDER_LEN: usize = 48;

/// One value to replace: byte range in the text and its entity label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replacement {
    pub start: usize,
    pub end: usize,
    pub entity: Arc<str>,
    pub treatment: Treatment,
}

/// The placeholders of one exchange.
#[derive(Debug, Default, Clone)]
pub struct Redactor {
    by_value: HashMap<(Arc<str>, String), Arc<str>>,
    originals: HashMap<Arc<str>, String>,
    counters: HashMap<Arc<str>, u32>,
}

/// Masks all but the last four characters of longer values.
fn mask(value: &str) -> String {
    let n = value.chars().count();
    let keep = if n >= 8 { 4 } else { 0 };
    let mut out: String = "*".repeat(n - keep);
    out.extend(value.chars().skip(n - keep));
    out
}

impl Redactor {
    pub fn new() -> Redactor {
        Redactor::default()
    }

    /// Nothing to restore.
    pub fn is_empty(&self) -> bool {
        self.originals.is_empty()
    }

    fn placeholder(&mut self, entity: &Arc<str>, value: &str) -> Arc<str> {
        let key = (entity.clone(), value.to_owned());
        if let Some(p) = self.by_value.get(&key) {
            return p.clone();
        }
        let n = self.counters.entry(entity.clone()).or_insert(0);
        *n += 1;
        let placeholder: Arc<str> = Arc::from(format!("[{entity}_{n}]"));
        self.by_value.insert(key, placeholder.clone());
        self.originals.insert(placeholder.clone(), value.to_owned());
        placeholder
    }

    /// Applies replacements (overlaps resolved: earliest first, then longest);
    /// `Block` and `Allow` leave the text alone. Returns `None` when nothing changed.
    pub fn redact(&mut self, text: &str, replacements: &[Replacement]) -> Option<String> {
        let mut todo: Vec<&Replacement> = replacements
            .iter()
            .filter(|r| matches!(r.treatment, Treatment::Restore | Treatment::Mask))
            .filter(|r| r.start < r.end && text.get(r.start..r.end).is_some())
            .collect();
        if todo.is_empty() {
            return None;
        }
        todo.sort_by(|a, b| a.start.cmp(&b.start).then(b.end.cmp(&a.end)));
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        for r in todo {
            if r.start < at {
                continue; // overlaps one already replaced
            }
            out.push_str(&text[at..r.start]);
            let value = &text[r.start..r.end];
            match r.treatment {
                Treatment::Mask => out.push_str(&mask(value)),
                _ => out.push_str(&self.placeholder(&r.entity, value)),
            }
            at = r.end;
        }
        out.push_str(&text[at..]);
        Some(out)
    }

    /// Puts the originals back. `escape` turns an original into the form the text
    /// needs (JSON string escaping for a raw JSON body).
    pub fn restore_with<'a>(
        &self,
        text: &'a str,
        escape: impl Fn(&str) -> Cow<'_, str>,
    ) -> Cow<'a, str> {
        if self.is_empty() || !text.contains('[') {
            return Cow::Borrowed(text);
        }
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        let mut changed = false;
        while let Some(open) = rest.find('[') {
            out.push_str(&rest[..open]);
            let candidate = &rest[open..];
            let close = candidate
                .bytes()
                .take(MAX_PLACEHOLDER_LEN)
                .position(|b| b == b']');
            match close.and_then(|c| self.originals.get(&candidate[..=c]).map(|o| (c, o))) {
                Some((c, original)) => {
                    out.push_str(&escape(original));
                    rest = &candidate[c + 1..];
                    changed = true;
                }
                None => {
                    out.push('[');
                    rest = &candidate[1..];
                }
            }
        }
        out.push_str(rest);
        if changed {
            Cow::Owned(out)
        } else {
            Cow::Borrowed(text)
        }
    }

    pub fn restore<'a>(&self, text: &'a str) -> Cow<'a, str> {
        self.restore_with(text, verbatim)
    }

    /// A restorer for text that arrives in pieces.
    pub fn streaming(self: &Arc<Self>) -> StreamRestorer {
        StreamRestorer {
            redactor: self.clone(),
            carry: String::new(),
        }
    }
}

/// Originals as they are (plain text).
pub fn verbatim(value: &str) -> Cow<'_, str> {
    Cow::Borrowed(value)
}

/// Escapes a value for the inside of a JSON string.
pub fn json_escape(value: &str) -> Cow<'_, str> {
    if !value
        .chars()
        .any(|c| c == '"' || c == '\\' || c.is_control())
    {
        return Cow::Borrowed(value);
    }
    let quoted = serde_json::Value::String(value.to_owned()).to_string();
    Cow::Owned(quoted[1..quoted.len() - 1].to_owned())
}

/// Restores placeholders in a stream of text pieces, holding back a tail that
/// could be the start of a placeholder until the next piece decides it.
#[derive(Debug, Clone)]
pub struct StreamRestorer {
    redactor: Arc<Redactor>,
    carry: String,
}

/// Where the held-back tail starts: at a `[` near the end whose following
/// characters could still grow into a placeholder.
fn hold_from(text: &str) -> usize {
    let window_start = text.len().saturating_sub(MAX_PLACEHOLDER_LEN);
    let mut start = window_start;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    match text[start..].rfind('[') {
        Some(i) => {
            let at = start + i;
            let tail = &text[at + 1..];
            let could_grow = tail
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
            if could_grow {
                at
            } else {
                text.len()
            }
        }
        None => text.len(),
    }
}

impl StreamRestorer {
    /// Text to emit for this piece (possibly empty while a placeholder is open).
    pub fn push(&mut self, piece: &str) -> String {
        self.push_with(piece, verbatim)
    }

    pub fn push_with(&mut self, piece: &str, escape: impl Fn(&str) -> Cow<'_, str>) -> String {
        self.carry.push_str(piece);
        let cut = hold_from(&self.carry);
        let tail = self.carry.split_off(cut);
        let head = std::mem::replace(&mut self.carry, tail);
        self.redactor.restore_with(&head, escape).into_owned()
    }

    /// Whatever is still held back.
    pub fn finish(&mut self) -> String {
        let rest = std::mem::take(&mut self.carry);
        self.redactor.restore(&rest).into_owned()
    }

    pub fn holding(&self) -> bool {
        !self.carry.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn email_at(text: &str, value: &str) -> Replacement {
        let start = text.find(value).unwrap_or(0);
        Replacement {
            start,
            end: start + value.len(),
            entity: Arc::from("EMAIL"),
            treatment: Treatment::Restore,
        }
    }

    #[test]
    fn same_value_same_placeholder_and_back() {
        let mut r = Redactor::new();
        let text = "mail a@x.io or b@y.io";
        let reps = [email_at(text, "a@x.io"), email_at(text, "b@y.io")];
        let red = r.redact(text, &reps).unwrap_or_default();
        assert_eq!(red, "mail [EMAIL_1] or [EMAIL_2]");
        let again = r.redact("cc a@x.io", &[email_at("cc a@x.io", "a@x.io")]);
        assert_eq!(again.as_deref(), Some("cc [EMAIL_1]"));
        assert_eq!(
            r.restore("to [EMAIL_2], [EMAIL_1] and [EMAIL_3]"),
            "to b@y.io, a@x.io and [EMAIL_3]"
        );
    }

    #[test]
    fn mask_block_and_allow() {
        let mut r = Redactor::new();
        let text = "card 4111111111111111 ok";
        let mut rep = Replacement {
            start: 5,
            end: 21,
            entity: Arc::from("CREDIT_CARD"),
            treatment: Treatment::Mask,
        };
        assert_eq!(
            r.redact(text, &[rep.clone()]).as_deref(),
            Some("card ************1111 ok")
        );
        assert!(r.is_empty(), "masking keeps nothing to restore");
        rep.treatment = Treatment::Allow;
        assert_eq!(r.redact(text, &[rep.clone()]), None);
        rep.treatment = Treatment::Block;
        assert_eq!(r.redact(text, &[rep]), None);
    }

    #[test]
    fn json_escaped_restore() {
        let mut r = Redactor::new();
        let text = "say \"hi\"";
        r.redact(
            text,
            &[Replacement {
                start: 4,
                end: 8,
                entity: Arc::from("QUOTE"),
                treatment: Treatment::Restore,
            }],
        );
        assert_eq!(
            r.restore_with("{\"t\":\"[QUOTE_1]\"}", json_escape),
            "{\"t\":\"\\\"hi\\\"\"}"
        );
    }

    #[test]
    fn streaming_restores_placeholders_split_at_every_byte() {
        let mut r = Redactor::new();
        let text = "write to jane.doe@example.com and x@y.org";
        let reps = [
            email_at(text, "jane.doe@example.com"),
            email_at(text, "x@y.org"),
        ];
        r.redact(text, &reps);
        let r = Arc::new(r);
        let answer = "Sure: [EMAIL_1] [not one] [EMAIL_2][EMAIL_1]. [";
        let expected = r.restore(answer).into_owned();
        for cut in 0..=answer.len() {
            let mut s = r.streaming();
            let mut out = s.push(&answer[..cut]);
            out += &s.push(&answer[cut..]);
            out += &s.finish();
            assert_eq!(out, expected, "split at {cut}");
        }
        // One byte at a time.
        let mut s = r.streaming();
        let mut out = String::new();
        for ch in answer.chars() {
            out += &s.push(&ch.to_string());
        }
        out += &s.finish();
        assert_eq!(out, expected);
    }

    proptest! {
        #[test]
        fn redact_then_restore_is_identity(
            text in "[a-zA-Z0-9 @.\\[\\]_é\u{1F600}]{0,80}",
            cuts in proptest::collection::vec((0usize..80, 1usize..12), 0..4),
        ) {
            // Arbitrary spans on char boundaries, labelled with two entity types.
            let mut r = Redactor::new();
            let bounds: Vec<usize> = text.char_indices().map(|(i, _)| i).chain([text.len()]).collect();
            let reps: Vec<Replacement> = cuts
                .iter()
                .enumerate()
                .filter_map(|(i, (s, l))| {
                    let start = *bounds.get(*s % bounds.len())?;
                    let end = *bounds.get((*s % bounds.len() + l).min(bounds.len() - 1))?;
                    (start < end).then(|| Replacement {
                        start,
                        end,
                        entity: Arc::from(if i % 2 == 0 { "EMAIL" } else { "PHONE" }),
                        treatment: Treatment::Restore,
                    })
                })
                .collect();
            // Placeholder-shaped text already in the input would be ambiguous.
            prop_assume!(!text.contains("[EMAIL_") && !text.contains("[PHONE_"));
            let redacted = r.redact(&text, &reps).unwrap_or_else(|| text.clone());
            prop_assert_eq!(r.restore(&redacted), text.as_str());
            // And streamed in two pieces at any char boundary.
            let r = Arc::new(r);
            for cut in redacted.char_indices().map(|(i, _)| i) {
                let mut s = r.streaming();
                let mut out = s.push(&redacted[..cut]);
                out += &s.push(&redacted[cut..]);
                out += &s.finish();
                prop_assert_eq!(&out, &text);
            }
        }
    }
}
