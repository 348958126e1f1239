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
use aho_corasick::automaton::{Automaton, StateID};
use aho_corasick::nfa::contiguous::NFA;
use aho_corasick::{Anchored, MatchKind};
use regex_syntax::hir::literal::{ExtractKind, Extractor};
use std::collections::BTreeMap;

/// Literals, each owned by some patterns, in an automaton a stream steps through
/// one byte at a time (its state carries over from piece to piece).
#[derive(Debug, Default)]
struct Literals {
    automaton: Option<NFA>,
    /// The patterns (numbered here) each literal belongs to.
    owners: Vec<Vec<usize>>,
    /// There were literals but no automaton could be built from them.
    failed: bool,
}

impl Literals {
    fn new(literals: BTreeMap<Vec<u8>, Vec<usize>>) -> Literals {
        let (words, owners): (Vec<Vec<u8>>, Vec<Vec<usize>>) = literals.into_iter().unzip();
        // Case-insensitive rules match any ASCII case of what they spell.
        let automaton = (!words.is_empty())
            .then(|| {
                NFA::builder()
                    .match_kind(MatchKind::Standard)
                    .ascii_case_insensitive(true)
                    .build(&words)
                    .ok()
            })
            .flatten();
        let failed = !words.is_empty() && automaton.is_none();
        Literals {
            automaton,
            owners,
            failed,
        }
    }

    fn start(&self) -> Option<StateID> {
        self.automaton.as_ref()?.start_state(Anchored::No).ok()
    }

    /// Steps `state` through `bytes`; `each(pattern, end, len)` for every
    /// literal that ends at `bytes[..end]`.
    fn feed(
        &self,
        state: &mut Option<StateID>,
        bytes: &[u8],
        mut each: impl FnMut(usize, usize, usize),
    ) {
        let (Some(automaton), Some(sid)) = (&self.automaton, state.as_mut()) else {
            return;
        };
        for (i, &byte) in bytes.iter().enumerate() {
            *sid = automaton.next_state(Anchored::No, *sid, byte);
            if automaton.is_match(*sid) {
                for k in 0..automaton.match_len(*sid) {
                    let literal = automaton.match_pattern(*sid, k);
                    let len = automaton.pattern_len(literal);
                    for &p in &self.owners[literal.as_usize()] {
                        each(p, i + 1, len);
                    }
                }
            }
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct Closers {
    /// The literals matches end with.
    closers: Literals,
    /// The literals matches start with. A closer counts only when one of its
    /// pattern's openers is in the window too: many closers are short words
    /// ("on", "is").
    openers: Literals,
    /// Patterns whose starts are not a list of literals: a closer is enough.
    open_anywhere: Vec<bool>,
}

/// Where a stream stands in the closers' and openers' automata, and where (in
/// stream bytes) the last opener of each pattern started.
#[derive(Debug, Clone, Default)]
pub(crate) struct Cursor {
    closer: Option<StateID>,
    opener: Option<StateID>,
    /// Bytes read so far.
    read: usize,
    opened_at: Vec<Option<usize>>,
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
        Closers {
            closers: Literals::new(closers),
            openers: Literals::new(openers),
            open_anywhere,
        }
    }

    /// A cursor at stream byte `read`, as if nothing came before it.
    pub fn cursor(&self, read: usize) -> Cursor {
        Cursor {
            closer: self.closers.start(),
            opener: self.openers.start(),
            read,
            opened_at: vec![None; self.open_anywhere.len()],
        }
    }

    /// Reads the stream's next `piece`. True when it may complete a match of a
    /// blocking rule: a closer ends in it, and the same pattern opens anywhere or
    /// its opener started at or after stream byte `window_start`.
    pub fn read(&self, cursor: &mut Cursor, piece: &[u8], window_start: usize) -> bool {
        // Fail closed: without the automata every piece may close a match, and
        // the whole window is scanned each time, as before closers existed.
        if self.closers.failed || self.openers.failed {
            cursor.read += piece.len();
            return true;
        }
        let base = cursor.read;
        cursor.read += piece.len();
        let opened_at = &mut cursor.opened_at;
        self.openers.feed(&mut cursor.opener, piece, |p, end, len| {
            if let Some(slot) = opened_at.get_mut(p) {
                *slot = Some((base + end).saturating_sub(len));
            }
        });
        let mut closes = false;
        self.closers.feed(&mut cursor.closer, piece, |p, _, _| {
            closes = closes
                || self.open_anywhere.get(p).copied().unwrap_or(true)
                || opened_at
                    .get(p)
                    .copied()
                    .flatten()
                    .is_some_and(|at| at >= window_start);
        });
        closes
    }
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

    /// Reads `text[..piece_start]`, then whether the piece may close a match.
    fn close_in(closers: &Closers, text: &str, piece_start: usize) -> bool {
        let mut cursor = closers.cursor(0);
        closers.read(&mut cursor, &text.as_bytes()[..piece_start], 0);
        closers.read(&mut cursor, &text.as_bytes()[piece_start..], 0)
    }

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
        assert!(close_in(&closers, text, close), "the `)` is the piece");
        assert!(
            !close_in(&closers, text, text.len()),
            "nothing after the end"
        );
        // "on" ends "developer mode on", but without its opener it is a word.
        let prose = "the lights are on";
        assert!(!close_in(&closers, prose, prose.len() - 2));
        let jailbreak = "developer mode on";
        assert!(close_in(&closers, jailbreak, jailbreak.len() - 2));
    }

    #[test]
    fn without_an_automaton_every_piece_may_close() {
        let closers = Closers {
            closers: Literals {
                failed: true,
                ..Literals::default()
            },
            ..Closers::default()
        };
        assert!(close_in(&closers, "the weather is mild", 4));
        assert!(!close_in(&Closers::default(), "the weather is mild", 4));
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
