//! Text normalisation ahead of detection.
//!
//! Attackers hide phrases such as "ignore previous instructions" behind Unicode tricks
//! (fullwidth letters, zero-width joiners, bidi overrides, Cyrillic homoglyphs) and
//! encodings (base64, hex, percent-encoding, HTML entities, escape sequences).
//! [`normalize`] turns one input into a set of [`View`]s that matchers scan:
//! `views[0]` is the folded form of the whole input, further views are decoded
//! payloads (themselves folded, and decoded again up to [`Limits::max_decode_depth`]).
//!
//! Everything is linear-time and bounded by [`Limits`]; nothing here panics.

mod confusables;
/// The individual decoders, public for the fuzz targets (`fuzz/`); not a stable API.
#[doc(hidden)]
pub mod decode;
mod morse;
mod respell;
mod reverse;
mod segment;
mod unicode;

use std::collections::hash_map::RandomState;
use std::collections::{HashSet, VecDeque};
use std::hash::BuildHasher;

pub use confusables::fold_confusable;
pub use unicode::is_invisible;

/// Hard cap on the number of views one input can produce (including `views[0]`).
pub const MAX_VIEWS: usize = 64;

/// Resource bounds for [`normalize`].
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Input beyond this many bytes is truncated (on a char boundary) and reported.
    pub max_input_bytes: usize,
    /// Decoded text may itself be decoded this many levels (0 disables decoding).
    pub max_decode_depth: u8,
    /// Total bytes across all decoded views (`views[1..]`).
    pub max_decoded_bytes: usize,
    /// Shortest base64 / hex run worth decoding (in encoded characters / hex digits).
    pub min_encoded_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_input_bytes: 1024 * 1024,
            max_decode_depth: 2,
            max_decoded_bytes: 256 * 1024,
            min_encoded_len: 16,
        }
    }
}

/// One view of the input that detectors scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    pub text: String,
    pub origin: Origin,
}

/// Where a [`View`]'s text came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Origin {
    Normalized,
    Base64,
    Hex,
    UrlEncoded,
    HtmlEntities,
    UnicodeEscapes,
    /// Morse code read back (`.. --. -. --- .-. .`).
    Morse,
    /// Spaced letters joined, leetspeak read back and instruction words run
    /// together taken apart (`1gn0r3`, `i g n o r e`, `ignoreallprevious...`).
    Respelled,
    /// Text written backwards read forwards (`snoitcurtsni suoiverp lla erongi`).
    Reversed,
}

/// The result of [`normalize`].
#[derive(Debug, Clone, Default)]
pub struct Normalized {
    /// `views[0]` is always the [`Origin::Normalized`] form of the whole input.
    pub views: Vec<View>,
    /// The input exceeded [`Limits::max_input_bytes`] and was truncated.
    pub truncated: bool,
    /// Zero-width / bidi / other invisible format characters removed (all views).
    pub hidden_chars: usize,
    /// Homoglyphs folded to ASCII (all views).
    pub confusables: usize,
}

/// Longest prefix of `s` that is at most `max` bytes and ends on a char boundary.
fn truncate_at_boundary(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while end > 0 && !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or("")
}

/// Fold a short string for matching: NFKC, invisible removal, homoglyph folding,
/// lowercase and whitespace collapse. No decoding. Idempotent.
pub fn fold_for_matching(s: &str) -> String {
    let (stage1, _) = unicode::strip_and_nfkc(s);
    unicode::fold_case_and_space(&stage1).0
}

/// A decoder that rewrites a whole text, or returns `None` when nothing was decoded.
type WholeTextDecoder = fn(&str) -> Option<String>;

struct Builder {
    out: Normalized,
    /// Hashes of the views so far (keyed per call, so no input can aim for a
    /// collision); `views[0]` is hashed only once a decoded view turns up.
    seen_views: HashSet<u64>,
    seen_runs: HashSet<(Origin, u64)>,
    hasher: RandomState,
    budget_left: usize,
}

impl Builder {
    fn full(&self) -> bool {
        self.budget_left == 0 || self.out.views.len() >= MAX_VIEWS
    }

    /// True the first time this (origin, run) pair is seen.
    fn first_time(&mut self, origin: Origin, run: &str) -> bool {
        let h = self.hasher.hash_one(run);
        self.seen_runs.insert((origin, h))
    }

    /// Normalise decoded text and add it as a view. Returns its stage-1 form (original
    /// case, for further decoding) when a new view was added.
    fn add_view(&mut self, origin: Origin, raw: &str) -> Option<String> {
        if self.full() {
            return None;
        }
        // Bound the work on oversized decodes; folding rarely grows text, and the view
        // is truncated to the exact budget below.
        let work_cap = self.budget_left.saturating_mul(2);
        let raw = truncate_at_boundary(raw, work_cap);
        let (stage1, hidden) = unicode::strip_and_nfkc(raw);
        let stage1 = truncate_at_boundary(&stage1, work_cap).to_owned();
        let (text, confusables) = unicode::fold_case_and_space(&stage1);
        let text = truncate_at_boundary(&text, self.budget_left);
        if text.is_empty() {
            return None;
        }
        if self.seen_views.is_empty() {
            let first = self
                .out
                .views
                .first()
                .map(|v| self.hasher.hash_one(&v.text));
            self.seen_views.extend(first);
        }
        if !self.seen_views.insert(self.hasher.hash_one(text)) {
            return None;
        }
        let text = text.to_owned();
        self.budget_left -= text.len();
        self.out.hidden_chars += hidden;
        self.out.confusables += confusables;
        self.out.views.push(View { text, origin });
        Some(stage1)
    }

    /// Run every decoder over one stage-1 text; returns the decoded candidates.
    fn decode_all(&mut self, text: &str, limits: &Limits) -> Vec<(Origin, String)> {
        let mut found: Vec<(Origin, String)> = Vec::new();
        let mut runs: Vec<&str> = Vec::new();
        decode::for_each_base64_run(text, limits.min_encoded_len, |r| runs.push(r));
        for run in runs.drain(..) {
            if !self.first_time(Origin::Base64, run) {
                continue;
            }
            // A run may start with a few non-base64 characters that happen to be in the
            // alphabet ("path/aWdu..."); base64 is 4-char aligned, so retry at the three
            // other alignments when the run as a whole does not decode to text.
            for skip in 0..4 {
                let Some(sub) = run.get(skip..) else { break };
                if skip > 0 && sub.trim_end_matches('=').len() < limits.min_encoded_len {
                    break;
                }
                if let Some(bytes) = decode::decode_base64_run(sub) {
                    let s = String::from_utf8_lossy(&bytes);
                    if decode::mostly_printable(&s) {
                        found.push((Origin::Base64, s.into_owned()));
                        break;
                    }
                }
            }
        }
        let mut hex_found: Vec<(&str, String)> = Vec::new();
        decode::for_each_hex_run(text, limits.min_encoded_len, |run, bytes| {
            let s = String::from_utf8_lossy(bytes);
            if decode::mostly_printable(&s) {
                hex_found.push((run, s.into_owned()));
            }
        });
        for (run, s) in hex_found {
            if self.first_time(Origin::Hex, run) {
                found.push((Origin::Hex, s));
            }
        }
        let whole: [(Origin, WholeTextDecoder); 5] = [
            (Origin::UrlEncoded, decode::url_decode),
            (Origin::HtmlEntities, decode::html_decode),
            (Origin::UnicodeEscapes, decode::escape_decode),
            (Origin::Morse, decode::morse_decode),
            (Origin::Respelled, decode::respell),
        ];
        for (origin, decoder) in whole {
            if let Some(s) = decoder(text) {
                if self.first_time(origin, text) {
                    found.push((origin, s));
                }
            }
        }
        found
    }
}

/// Normalise `input` and add decoded views of embedded encodings. See the module docs.
pub fn normalize(input: &str, limits: &Limits) -> Normalized {
    let truncated_input = truncate_at_boundary(input, limits.max_input_bytes);
    let truncated = truncated_input.len() < input.len();
    let (stage1, hidden) = unicode::strip_and_nfkc(truncated_input);
    // Words written backwards are counted as the text is folded.
    let mut backwards = reverse::Backwards::default();
    let (text0, confusables) =
        unicode::fold_case_and_space_with(&stage1, |word| backwards.see(word));

    let mut b = Builder {
        out: Normalized {
            views: Vec::new(),
            truncated,
            hidden_chars: hidden,
            confusables,
        },
        seen_views: HashSet::new(),
        seen_runs: HashSet::new(),
        hasher: RandomState::new(),
        budget_left: limits.max_decoded_bytes,
    };
    b.out.views.push(View {
        text: text0,
        origin: Origin::Normalized,
    });

    let mut queue: VecDeque<(String, u8)> = VecDeque::new();
    if backwards.enough() && limits.max_decode_depth > 0 {
        let reversed: String = stage1.chars().rev().collect();
        if let Some(next) = b.add_view(Origin::Reversed, &reversed) {
            queue.push_back((next, 1));
        }
    }
    queue.push_back((stage1, 0));
    while let Some((text, depth)) = queue.pop_front() {
        if depth >= limits.max_decode_depth || b.full() {
            continue;
        }
        for (origin, decoded) in b.decode_all(&text, limits) {
            if let Some(next) = b.add_view(origin, &decoded) {
                if depth + 1 < limits.max_decode_depth {
                    queue.push_back((next, depth + 1));
                }
            }
        }
    }
    b.out
}

#[cfg(test)]
mod tests;
