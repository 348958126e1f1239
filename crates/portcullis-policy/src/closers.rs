//! The literals that end every match of a blocking response rule ("closers")
//! and those that start it ("openers"). A streamed answer is scanned cheaply
//! piece by piece, with only a short reach back; when a piece ends a closer
//! (the `)` of a markdown image carrying data, the `=` of a query string) whose
//! pattern's opener is in the window, the whole window is scanned at once, so
//! the piece that would complete the match is never sent. A rendered link leaks
//! the moment it is complete.
//!
//! Both lists are read off the patterns as written, and matched ASCII
//! case-insensitively in the raw text. A pattern whose endings are not a finite
//! list of literals (it ends with a class or a repetition) has no closers, and a
//! match behind look-alike letters or an encoding shows neither list in the raw
//! text: those are found by the periodic wider scan instead (see
//! [`crate::stream_scan`]).

use crate::pack::{Action, Location, Pack};
use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use regex_syntax::hir::literal::{ExtractKind, Extractor};
use std::collections::BTreeMap;

#[derive(Debug, Default)]
pub(crate) struct Closers {
    /// The literals matches end with; `closer_owners[i]` are the patterns
    /// (numbered here) that literal `i` may end.
    closers: Option<AhoCorasick>,
    closer_owners: Vec<Vec<usize>>,
    longest_closer: usize,
    /// The literals matches start with, and whose they are. A closer counts only
    /// when one of its pattern's openers is in the window too: many closers are
    /// short words ("on", "is").
    openers: Option<AhoCorasick>,
    opener_owners: Vec<Vec<usize>>,
    longest_opener: usize,
    /// Patterns whose starts are not a list of literals: a closer is enough.
    open_anywhere: Vec<bool>,
}

impl Closers {
    pub fn of(packs: &[Pack]) -> Closers {
        let mut closers: BTreeMap<Vec<u8>, Vec<usize>> = BTreeMap::new();
        let mut openers: BTreeMap<Vec<u8>, Vec<usize>> = BTreeMap::new();
        let mut open_anywhere = Vec::new();
        let blocking = packs
            .iter()
            .flat_map(|p| &p.rules)
            .filter(|r| r.action == Action::Block && r.applies_to.contains(&Location::Response));
        for pattern in blocking.flat_map(|r| &r.patterns) {
            // Without closers, the periodic wider scan finds the pattern's long
            // matches.
            let Some(ends) = literals(pattern, ExtractKind::Suffix) else {
                continue;
            };
            let id = open_anywhere.len();
            for end in ends {
                closers.entry(end).or_default().push(id);
            }
            match literals(pattern, ExtractKind::Prefix) {
                Some(starts) => {
                    for start in starts {
                        openers.entry(start).or_default().push(id);
                    }
                    open_anywhere.push(false);
                }
                None => open_anywhere.push(true),
            }
        }
        let longest_closer = closers.keys().map(Vec::len).max().unwrap_or(0);
        let longest_opener = openers.keys().map(Vec::len).max().unwrap_or(0);
        let (closers, closer_owners) = automaton(closers);
        let (openers, opener_owners) = automaton(openers);
        Closers {
            closers,
            closer_owners,
            longest_closer,
            openers,
            opener_owners,
            longest_opener,
            open_anywhere,
        }
    }

    /// How many patterns have closers (they are numbered `0..len`).
    pub fn len(&self) -> usize {
        self.open_anywhere.len()
    }

    /// The patterns a closer ending in `text[piece_start..]` may complete, in
    /// order, without repeats.
    pub fn closing(&self, text: &str, piece_start: usize) -> Vec<usize> {
        let Some(closers) = &self.closers else {
            return Vec::new();
        };
        let from = piece_start.saturating_sub(self.longest_closer.saturating_sub(1));
        let Some(region) = text.as_bytes().get(from..) else {
            return Vec::new();
        };
        let mut closing: Vec<usize> = closers
            .find_overlapping_iter(region)
            .filter(|m| from + m.end() > piece_start)
            .flat_map(|m| self.closer_owners[m.pattern().as_usize()].iter().copied())
            .collect();
        closing.sort_unstable();
        closing.dedup();
        closing
    }

    /// Whether pattern `p`'s matches may start anywhere (no opener list).
    pub fn opens_anywhere(&self, p: usize) -> bool {
        self.open_anywhere.get(p).copied().unwrap_or(true)
    }

    /// (pattern, start) of every opener that ends in `text[from..]`.
    pub fn openers(&self, text: &str, from: usize, mut each: impl FnMut(usize, usize)) {
        let Some(openers) = &self.openers else {
            return;
        };
        let begin = from.saturating_sub(self.longest_opener.saturating_sub(1));
        let Some(region) = text.as_bytes().get(begin..) else {
            return;
        };
        for m in openers.find_overlapping_iter(region) {
            if begin + m.end() > from {
                for &p in &self.opener_owners[m.pattern().as_usize()] {
                    each(p, begin + m.start());
                }
            }
        }
    }

    /// Stateless form, for tests: `text[piece_start..]` may complete a match (a
    /// closer ends in it, and an opener of the same pattern is in `text`).
    #[cfg(test)]
    pub fn close_in(&self, text: &str, piece_start: usize) -> bool {
        let closing = self.closing(text, piece_start);
        let mut opened = vec![false; self.len()];
        self.openers(text, 0, |p, _| opened[p] = true);
        closing.iter().any(|&p| self.opens_anywhere(p) || opened[p])
    }
}

/// One automaton over the literals, ASCII case-insensitive (case-insensitive
/// rules match any case of what they spell), and the owners of each literal.
fn automaton(literals: BTreeMap<Vec<u8>, Vec<usize>>) -> (Option<AhoCorasick>, Vec<Vec<usize>>) {
    if literals.is_empty() {
        return (None, Vec::new());
    }
    let (words, owners): (Vec<Vec<u8>>, Vec<Vec<usize>>) = literals.into_iter().unzip();
    let automaton = AhoCorasickBuilder::new()
        .match_kind(MatchKind::Standard)
        .ascii_case_insensitive(true)
        .build(&words)
        .ok();
    (automaton, owners)
}

/// The literals every match of `pattern` ends (`Suffix`) or starts (`Prefix`)
/// with, or `None` when they are not a finite list of non-empty strings. The
/// pattern is read as written; the automaton adds ASCII case variants.
fn literals(pattern: &str, kind: ExtractKind) -> Option<Vec<Vec<u8>>> {
    let hir = regex_syntax::ParserBuilder::new()
        .build()
        .parse(pattern)
        .ok()?;
    let seq = Extractor::new().kind(kind).extract(&hir);
    let literals = seq.literals()?;
    if literals.is_empty() || literals.iter().any(|l| l.as_bytes().is_empty()) {
        return None;
    }
    Some(literals.iter().map(|l| l.as_bytes().to_vec()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builtin;

    fn default_closers() -> Closers {
        Closers::of(&builtin::packs().unwrap_or_default())
    }

    /// Every pattern of the rules whose matches leak when rendered has closers.
    #[test]
    fn markup_that_leaks_when_rendered_has_closers() {
        let packs = builtin::packs().unwrap_or_default();
        for id in ["PI-010", "EXF-002"] {
            let rule = packs.iter().flat_map(|p| &p.rules).find(|r| r.id == id);
            assert!(rule.is_some_and(|r| r.patterns.iter().all(|p| literals(
                p,
                ExtractKind::Suffix
            )
            .is_some())));
        }
    }

    #[test]
    fn a_closer_counts_only_when_it_ends_in_the_piece() {
        let closers = default_closers();
        let text = "see ![x](https://a.example/c?d=1)";
        let close = text.len() - 1;
        assert!(closers.close_in(text, close), "the `)` is the piece");
        assert!(!closers.close_in(text, text.len()), "nothing after the end");
        // "on" ends "developer mode on", but without its opener it is a word.
        let prose = "the lights are on";
        assert!(!closers.close_in(prose, prose.len() - 2));
        let jailbreak = "developer mode on";
        assert!(closers.close_in(jailbreak, jailbreak.len() - 2));
    }

    #[test]
    fn endings_are_read_from_the_pattern() {
        let ends = |p| literals(p, ExtractKind::Suffix);
        assert_eq!(
            ends(r"x(?:bar|baz)"),
            Some(vec![b"xbar".to_vec(), b"xbaz".to_vec()])
        );
        assert_eq!(ends(r"foo\w+"), None);
        assert_eq!(ends(r"a?"), None);
        let starts = literals(r"(?:ab|cd)\s+\w+", ExtractKind::Prefix);
        assert!(starts.is_some_and(|s| s
            .iter()
            .all(|l| l.starts_with(b"ab") || l.starts_with(b"cd"))));
    }
}
