//! Decoders for encodings attackers use to smuggle text past matchers.
//!
//! All decoders are single-pass, linear in their input, allocation-light, and never
//! panic. Run-based decoders (base64, hex) report each candidate run with its decoded
//! bytes; whole-text decoders (URL, HTML entities, escapes, Morse code,
//! respelling of spaced letters, leetspeak and words run together, and text
//! written backwards) return the full text with escapes replaced, or `None` when
//! nothing was decoded.

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;

pub use super::morse::morse_decode;
pub use super::respell::respell;
pub use super::reverse::reverse_decode;

/// Lenient URL-safe engine; standard-alphabet input is mapped to it first.
const B64_ENGINE: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Minimum share (percent) of printable chars for a decoded run to count as text.
const MIN_PRINTABLE_PERCENT: usize = 85;

/// Byte classes, looked up once per byte while scanning for encoded runs.
const B64: u8 = 1;
/// A byte a hex run can hold: a digit, or part of a `0x` / `\x` prefix.
const IN_HEX_RUN: u8 = 2;

const CLASSES: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        // `b` < 256, so the cast is exact.
        #[allow(clippy::cast_possible_truncation)]
        let c = b as u8;
        if c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'-' | b'_') {
            table[b] |= B64;
        }
        if c.is_ascii_hexdigit() || matches!(c, b'\\' | b'x' | b'X') {
            table[b] |= IN_HEX_RUN;
        }
        b += 1;
    }
    table
};

fn is_b64_char(b: u8) -> bool {
    CLASSES[usize::from(b)] & B64 != 0
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Whether decoded text is mostly printable (>= 85% of chars, with U+FFFD from invalid
/// UTF-8 and control chars other than `\n`, `\r`, `\t` counting as unprintable).
pub fn mostly_printable(s: &str) -> bool {
    let mut total = 0usize;
    let mut printable = 0usize;
    for c in s.chars() {
        total += 1;
        let bad = c == '\u{FFFD}' || (c.is_control() && !matches!(c, '\n' | '\r' | '\t'));
        if !bad {
            printable += 1;
        }
    }
    total > 0 && printable * 100 >= total * MIN_PRINTABLE_PERCENT
}

/// Call `f(run)` for every maximal base64 run (standard or URL-safe alphabet, trailing
/// `=` padding included) with at least `min_len` non-padding characters.
pub fn for_each_base64_run<'a>(s: &'a str, min_len: usize, mut f: impl FnMut(&'a str)) {
    let b = s.as_bytes();
    let n = b.len();
    let mut i = 0;
    while i < n {
        if !is_b64_char(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < n && is_b64_char(b[i]) {
            i += 1;
        }
        let body_len = i - start;
        let mut pad = 0;
        while i < n && b[i] == b'=' && pad < 2 {
            i += 1;
            pad += 1;
        }
        if body_len >= min_len.max(1) {
            // All bytes in start..i are ASCII, so these are char boundaries.
            if let Some(run) = s.get(start..i) {
                f(run);
            }
        }
    }
}

/// Decode one base64 run (either alphabet, padding optional). `None` if undecodable.
pub fn decode_base64_run(run: &str) -> Option<Vec<u8>> {
    let mut buf: Vec<u8> = run
        .bytes()
        .filter(|&c| c != b'=')
        .map(|c| match c {
            b'+' => b'-',
            b'/' => b'_',
            other => other,
        })
        .collect();
    if buf.len() % 4 == 1 {
        buf.pop();
    }
    if buf.is_empty() {
        return None;
    }
    B64_ENGINE.decode(&buf).ok()
}

/// Call `f(run, bytes)` for every hex run with at least `min_digits` hex digits. A run is
/// a maximal sequence of hex digits, optionally with `0x` / `\x` prefixes between byte
/// groups (`0x69676e`, `\x69\x67\x6e`). Odd-length runs drop their last digit.
pub fn for_each_hex_run<'a>(s: &'a str, min_digits: usize, mut f: impl FnMut(&'a str, &[u8])) {
    let b = s.as_bytes();
    let min_digits = min_digits.max(2);
    let mut nibbles: Vec<u8> = Vec::new();
    let mut bytes: Vec<u8> = Vec::new();
    // A run lies inside a stretch of digits and prefix bytes, so only stretches
    // long enough to hold `min_digits` digits are parsed; prose has few.
    let mut at = 0;
    while at < b.len() {
        if CLASSES[usize::from(b[at])] & IN_HEX_RUN == 0 {
            at += 1;
            continue;
        }
        let from = at;
        while at < b.len() && CLASSES[usize::from(b[at])] & IN_HEX_RUN != 0 {
            at += 1;
        }
        if at - from >= min_digits {
            hex_runs_in(
                &b[..at],
                from,
                min_digits,
                &mut nibbles,
                &mut bytes,
                |range, decoded| {
                    // Runs are ASCII, so their ends are char boundaries.
                    if let Some(run) = s.get(range) {
                        f(run, decoded);
                    }
                },
            );
        }
    }
}

/// The hex runs of `b[from..]` (a stretch of [`IN_HEX_RUN`] bytes that ends `b`).
fn hex_runs_in(
    b: &[u8],
    from: usize,
    min_digits: usize,
    nibbles: &mut Vec<u8>,
    bytes: &mut Vec<u8>,
    mut f: impl FnMut(std::ops::Range<usize>, &[u8]),
) {
    let n = b.len();
    let mut i = from;
    while i < n {
        let start = i;
        let mut j = i;
        nibbles.clear();
        loop {
            let prefix = j + 2 < n
                && matches!(b[j + 1], b'x' | b'X')
                && (b[j] == b'\\' || (b[j] == b'0' && nibbles.len().is_multiple_of(2)))
                && hex_val(b[j + 2]).is_some();
            if prefix {
                j += 2;
                continue;
            }
            match b.get(j).copied().and_then(hex_val) {
                Some(v) => {
                    nibbles.push(v);
                    j += 1;
                }
                None => break,
            }
        }
        if j == start {
            i += 1;
            continue;
        }
        i = j;
        if nibbles.len() < min_digits {
            continue;
        }
        bytes.clear();
        bytes.extend(nibbles.chunks_exact(2).map(|p| (p[0] << 4) | p[1]));
        f(start..j, bytes);
    }
}

/// Whether `s` contains `%` followed by two hex digits.
fn has_percent_escape(s: &str) -> bool {
    let b = s.as_bytes();
    memchr::memchr_iter(b'%', b)
        .any(|i| i + 2 < b.len() && hex_val(b[i + 1]).is_some() && hex_val(b[i + 2]).is_some())
}

/// Percent-decode the whole text. `None` when there is no `%XX` escape.
pub fn url_decode(s: &str) -> Option<String> {
    if !has_percent_escape(s) {
        return None;
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex_val(b[i + 1]), hex_val(b[i + 2])) {
                out.push((h << 4) | l);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

const NAMED_ENTITIES: [(&str, char); 6] = [
    ("lt;", '<'),
    ("gt;", '>'),
    ("amp;", '&'),
    ("quot;", '"'),
    ("apos;", '\''),
    ("nbsp;", '\u{a0}'),
];

/// Parse an HTML entity starting just after `&` in `b[i..]`. Returns the decoded char
/// and the number of bytes consumed after the `&`.
fn parse_entity(b: &[u8]) -> Option<(char, usize)> {
    if b.first() == Some(&b'#') {
        let (radix, mut j) = match b.get(1) {
            Some(b'x' | b'X') => (16u32, 2usize),
            _ => (10u32, 1usize),
        };
        let digits_start = j;
        let mut value: u32 = 0;
        while let Some(d) = b.get(j).and_then(|&c| char::from(c).to_digit(radix)) {
            // Saturate instead of overflowing; anything past U+10FFFF is invalid anyway.
            value = value.saturating_mul(radix).saturating_add(d);
            j += 1;
            if j - digits_start > 12 {
                break;
            }
        }
        if j == digits_start {
            return None;
        }
        if b.get(j) == Some(&b';') {
            j += 1;
        }
        let c = match char::from_u32(value) {
            Some('\0') | None => '\u{FFFD}',
            Some(c) => c,
        };
        return Some((c, j));
    }
    for (name, c) in NAMED_ENTITIES {
        let nb = name.as_bytes();
        if b.len() >= nb.len() && b[..nb.len()].eq_ignore_ascii_case(nb) {
            return Some((c, nb.len()));
        }
    }
    None
}

/// Decode HTML numeric and the common named entities. `None` if nothing was decoded.
pub fn html_decode(s: &str) -> Option<String> {
    if !s.contains('&') {
        return None;
    }
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut last = 0;
    let mut i = 0;
    let mut changed = false;
    while i < b.len() {
        if b[i] == b'&' {
            if let Some((c, used)) = b.get(i + 1..).and_then(parse_entity) {
                out.push_str(s.get(last..i).unwrap_or(""));
                out.push(c);
                i += 1 + used;
                last = i;
                changed = true;
                continue;
            }
        }
        i += 1;
    }
    if !changed {
        return None;
    }
    out.push_str(s.get(last..).unwrap_or(""));
    Some(out)
}

/// Parse exactly `n` hex digits at `b[i..]`.
fn hex_digits(b: &[u8], i: usize, n: usize) -> Option<u32> {
    let digits = b.get(i..i + n)?;
    let mut v = 0u32;
    for &d in digits {
        v = (v << 4) | u32::from(hex_val(d)?);
    }
    Some(v)
}

/// One parsed escape: either a code unit/point (`\u`, `\U`, `\u{..}`) or a raw byte (`\x`).
enum Escape {
    Unit(u32),
    Byte(u8),
}

/// Parse an escape at `b[i]` (which must be `\`). Returns it and its length in bytes.
fn parse_escape(b: &[u8], i: usize) -> Option<(Escape, usize)> {
    if b.get(i) != Some(&b'\\') {
        return None;
    }
    match b.get(i + 1)? {
        b'x' => hex_digits(b, i + 2, 2).map(|v| (Escape::Byte(v as u8), 4)),
        b'U' => hex_digits(b, i + 2, 8).map(|v| (Escape::Unit(v), 10)),
        b'u' => {
            if b.get(i + 2) == Some(&b'{') {
                let start = i + 3;
                let mut j = start;
                let mut v = 0u32;
                while let Some(d) = b.get(j).copied().and_then(hex_val) {
                    if j - start >= 6 {
                        return None;
                    }
                    v = (v << 4) | u32::from(d);
                    j += 1;
                }
                if j == start || b.get(j) != Some(&b'}') {
                    return None;
                }
                Some((Escape::Unit(v), j + 1 - i))
            } else {
                hex_digits(b, i + 2, 4).map(|v| (Escape::Unit(v), 6))
            }
        }
        _ => None,
    }
}

/// Flush pending `\xXX` bytes: as UTF-8 if valid, otherwise as Latin-1.
fn flush_bytes(pending: &mut Vec<u8>, out: &mut String) {
    if pending.is_empty() {
        return;
    }
    match std::str::from_utf8(pending) {
        Ok(s) => out.push_str(s),
        Err(_) => out.extend(pending.iter().map(|&b| char::from(b))),
    }
    pending.clear();
}

/// Decode `\uXXXX`, `\u{X..}`, `\UXXXXXXXX` and `\xXX` escapes (surrogate pairs are
/// combined; lone surrogates become U+FFFD). `None` if nothing was decoded.
pub fn escape_decode(s: &str) -> Option<String> {
    if !s.contains('\\') {
        return None;
    }
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut pending: Vec<u8> = Vec::new();
    let mut last = 0;
    let mut i = 0;
    let mut changed = false;
    while i < b.len() {
        if b[i] != b'\\' {
            i += 1;
            continue;
        }
        let Some((esc, len)) = parse_escape(b, i) else {
            i += 1;
            continue;
        };
        if last < i {
            flush_bytes(&mut pending, &mut out);
            out.push_str(s.get(last..i).unwrap_or(""));
        }
        changed = true;
        i += len;
        match esc {
            Escape::Byte(v) => pending.push(v),
            Escape::Unit(u) => {
                flush_bytes(&mut pending, &mut out);
                let c = if (0xD800..0xDC00).contains(&u) {
                    // High surrogate: combine with a following \uDC00..\uDFFF.
                    match parse_escape(b, i) {
                        Some((Escape::Unit(lo), len2)) if (0xDC00..0xE000).contains(&lo) => {
                            i += len2;
                            char::from_u32(0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00))
                        }
                        _ => None,
                    }
                } else {
                    char::from_u32(u)
                };
                out.push(match c {
                    Some('\0') | None => '\u{FFFD}',
                    Some(c) => c,
                });
            }
        }
        last = i;
    }
    if !changed {
        return None;
    }
    flush_bytes(&mut pending, &mut out);
    out.push_str(s.get(last..).unwrap_or(""));
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// Parsing only the stretches that can hold a run finds exactly the runs
        /// a parse of the whole text finds.
        #[test]
        fn stretch_prefilter_keeps_every_hex_run(
            pieces in proptest::collection::vec(
                proptest::sample::select(vec!["0", "x", "X", "\\", "a", "F", "9", "g", " ", "0x", "\\x", "é"]),
                0..80,
            ),
            min in 2usize..20,
        ) {
            let text = pieces.concat();
            let mut fast = Vec::new();
            for_each_hex_run(&text, min, |run, bytes| fast.push((run.to_owned(), bytes.to_vec())));
            let (mut nibbles, mut bytes) = (Vec::new(), Vec::new());
            let mut whole = Vec::new();
            hex_runs_in(text.as_bytes(), 0, min, &mut nibbles, &mut bytes, |range, decoded| {
                whole.push((text[range].to_owned(), decoded.to_vec()));
            });
            proptest::prop_assert_eq!(fast, whole);
        }
    }

    #[test]
    fn base64_runs_found_and_decoded() {
        let mut runs = Vec::new();
        for_each_base64_run("x aWdub3JlIGFsbCBwcmV2aW91cw== y short", 16, |r| {
            runs.push(r)
        });
        assert_eq!(runs, vec!["aWdub3JlIGFsbCBwcmV2aW91cw=="]);
        assert_eq!(
            decode_base64_run(runs[0]).unwrap(),
            b"ignore all previous".to_vec()
        );
        // URL-safe alphabet, no padding.
        assert_eq!(decode_base64_run("-_-_").unwrap(), vec![0xfb, 0xff, 0xbf]);
        assert_eq!(decode_base64_run("+/+/").unwrap(), vec![0xfb, 0xff, 0xbf]);
    }

    #[test]
    fn hex_runs_with_prefixes() {
        let mut got = Vec::new();
        for_each_hex_run(
            "a 69676e6f7265 b \\x69\\x67\\x6e\\x6f 0x69676e6f",
            8,
            |r, b| got.push((r.to_string(), String::from_utf8(b.to_vec()).unwrap())),
        );
        assert_eq!(got.len(), 3, "{got:?}");
        assert_eq!(got[0].1, "ignore");
        assert_eq!(got[1].1, "igno");
        assert_eq!(got[2].1, "igno");
    }

    #[test]
    fn url_decoding() {
        assert_eq!(url_decode("no escapes"), None);
        assert_eq!(url_decode("%69gnore%20all%").unwrap(), "ignore all%");
        assert_eq!(url_decode("%E2%82%AC").unwrap(), "€");
    }

    #[test]
    fn html_decoding() {
        assert_eq!(html_decode("a & b"), None);
        assert_eq!(
            html_decode("&#105;gnore&#x20;&lt;all&GT;&nbsp;&#99999999999;").unwrap(),
            "ignore <all>\u{a0}\u{FFFD}"
        );
    }

    #[test]
    fn escape_decoding() {
        assert_eq!(escape_decode("plain \\n"), None);
        assert_eq!(
            escape_decode("\\u0069gnore \\x61ll \\u{70}rev \\ud83d\\ude00").unwrap(),
            "ignore all prev 😀"
        );
        // Lone surrogates and bad code points never panic.
        assert_eq!(
            escape_decode("\\ud800x\\udc00").unwrap(),
            "\u{FFFD}x\u{FFFD}"
        );
        assert_eq!(escape_decode("\\UFFFFFFFF").unwrap(), "\u{FFFD}");
        assert_eq!(escape_decode("\\xe2\\x82\\xac").unwrap(), "€");
        assert_eq!(escape_decode("\\xff").unwrap(), "\u{ff}");
        assert_eq!(escape_decode("\\u12"), None);
    }

    #[test]
    fn printable_ratio() {
        assert!(mostly_printable("hello world"));
        assert!(!mostly_printable("\u{1}\u{2}\u{3}abc"));
        assert!(!mostly_printable(""));
    }
}
