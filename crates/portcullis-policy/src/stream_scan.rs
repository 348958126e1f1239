//! Scanning text that arrives in pieces (a streamed answer): each piece is
//! scanned together with the tail of what came before, so a pattern split across
//! pieces is still found. Memory is bounded by the carry-over window.

use crate::engine::{Engine, Finding};
use crate::pack::Location;
use std::collections::HashSet;
use std::sync::Arc;

/// Bytes of earlier text scanned again with each piece: longer than any pattern
/// the built-in packs match in a response.
pub const CARRY_BYTES: usize = 512;

#[derive(Debug)]
pub struct StreamScanner {
    location: Location,
    carry: String,
    reported: HashSet<Arc<str>>,
}

impl StreamScanner {
    pub fn new(location: Location) -> StreamScanner {
        StreamScanner {
            location,
            carry: String::new(),
            reported: HashSet::new(),
        }
    }

    /// Findings first seen with this piece (each rule is reported once per stream).
    pub fn push(&mut self, engine: &Engine, piece: &str) -> Vec<Finding> {
        if piece.is_empty() {
            return Vec::new();
        }
        self.carry.push_str(piece);
        let found: Vec<Finding> = engine
            .scan(self.location, &self.carry)
            .into_iter()
            .filter(|f| self.reported.insert(f.rule_id.clone()))
            .collect();
        if self.carry.len() > CARRY_BYTES {
            let mut cut = self.carry.len() - CARRY_BYTES;
            while !self.carry.is_char_boundary(cut) {
                cut += 1;
            }
            self.carry.drain(..cut);
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builtin;

    #[test]
    fn a_pattern_split_at_every_byte_is_found_once() {
        let packs = builtin::select(&["secrets".to_owned()]).unwrap_or_default();
        let engine = Engine::compile(&packs).unwrap_or_default();
        let text = "here you go: AKIAIOSFODNN7EXAMPLE, keep it safe";
        for cut in 1..text.len() {
            let mut s = StreamScanner::new(Location::Response);
            let mut found = s.push(&engine, &text[..cut]);
            found.extend(s.push(&engine, &text[cut..]));
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

    #[test]
    fn the_window_stays_bounded() {
        let engine = Engine::default();
        let mut s = StreamScanner::new(Location::Response);
        for _ in 0..1000 {
            s.push(&engine, "lorem ipsum dolor sit amet é ");
        }
        assert!(s.carry.len() <= CARRY_BYTES);
    }
}
