//! Redact spans of arbitrary text, then restore it: whole and streamed in pieces,
//! the original comes back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_policy::redact::{Redactor, Replacement, Treatment};
use std::sync::Arc;

const ENTITIES: [&str; 3] = ["EMAIL", "AWS_KEY", "X"];

fn boundary(text: &str, mut at: usize) -> usize {
    at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

fuzz_target!(|data: &[u8]| {
    // [n_spans] [n_spans * (start, len, kind)] [n_cuts] [n_cuts * cut] text
    let Some((&n_spans, rest)) = data.split_first() else {
        return;
    };
    let n_spans = usize::from(n_spans % 8);
    let Some((spans, rest)) = rest.split_at_checked(n_spans * 3) else {
        return;
    };
    let Some((&n_cuts, rest)) = rest.split_first() else {
        return;
    };
    let n_cuts = usize::from(n_cuts % 6);
    let Some((cuts, rest)) = rest.split_at_checked(n_cuts) else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    // A text that already holds a placeholder of these entities cannot round-trip.
    if ENTITIES.iter().any(|e| text.contains(&format!("[{e}_"))) {
        return;
    }
    let scale = |b: u8| usize::from(b) * text.len() / 255;
    let replacements: Vec<Replacement> = spans
        .chunks_exact(3)
        .map(|c| {
            let start = boundary(text, scale(c[0]));
            let end = boundary(text, start + usize::from(c[1] % 64));
            Replacement {
                start,
                end,
                entity: Arc::from(ENTITIES[usize::from(c[2]) % ENTITIES.len()]),
                // Mask is irreversible by design; Block and Allow leave the text alone.
                treatment: match c[2] / 64 {
                    0 | 1 => Treatment::Restore,
                    2 => Treatment::Block,
                    _ => Treatment::Allow,
                },
            }
        })
        .collect();

    let mut redactor = Redactor::new();
    let redacted = redactor
        .redact(text, &replacements)
        .unwrap_or_else(|| text.to_owned());
    // Redacting the same values again gives the same placeholders.
    let again = redactor
        .redact(text, &replacements)
        .unwrap_or_else(|| text.to_owned());
    assert_eq!(again, redacted);
    assert_eq!(redactor.restore(&redacted), text);

    let redactor = Arc::new(redactor);
    let mut cut_at: Vec<usize> = cuts
        .iter()
        .map(|&c| boundary(&redacted, usize::from(c) * redacted.len() / 255))
        .collect();
    cut_at.sort_unstable();
    let mut stream = redactor.streaming();
    let mut out = String::new();
    let mut from = 0;
    for cut in cut_at.into_iter().chain([redacted.len()]) {
        out.push_str(&stream.push(&redacted[from..cut]));
        from = cut;
    }
    out.push_str(&stream.finish());
    assert!(!stream.holding());
    assert_eq!(out, text, "streamed restore differs; redacted {redacted:?}");
});
