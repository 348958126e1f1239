//! Literals that gate a pattern: strings every match must contain, so one
//! Aho-Corasick pass over a text tells which patterns can match at all and only
//! those run. On ordinary traffic almost no gate opens, and the cost of a scan
//! stops growing with the number of rules.

use regex_syntax::hir::{Class, Hir, HirKind};
use std::ops::Range;

/// Literals shorter than this occur in nearly every text: no use as a gate.
const MIN_LITERAL: usize = 3;
/// More alternatives than this and the gate is too wide to be worth keeping.
const MAX_LITERALS: usize = 64;
/// Classes up to this many characters are expanded into alternatives.
const MAX_CLASS: usize = 4;

/// Every match of a pattern contains one of `literals`, starting at most
/// `max_offset` bytes after the match does, and no match is longer than
/// `max_len` bytes (`None`: no bound).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Gate {
    pub literals: Vec<Vec<u8>>,
    pub max_offset: Option<usize>,
    pub max_len: Option<usize>,
}

impl Gate {
    /// Where a search must begin to find every match that holds the literal
    /// found at `literal_start`.
    pub fn search_from(&self, literal_start: usize) -> usize {
        self.max_offset
            .map_or(0, |offset| literal_start.saturating_sub(offset))
    }

    /// The stretch of text that holds every match containing the literal found
    /// at `literal_start`, when matches are bounded: a match starts at most
    /// `max_offset` before its literal and ends within `max_len` of its start.
    pub fn window(&self, literal_start: usize, text_len: usize) -> Option<Range<usize>> {
        let from = literal_start.saturating_sub(self.max_offset?);
        let end = literal_start.saturating_add(self.max_len?).min(text_len);
        Some(from..end)
    }
}

/// What is known of the text a pattern set runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TextForm {
    /// The text as it came.
    Raw,
    /// Folded views: every run of whitespace is one space, so a repeated
    /// whitespace class matches at most one byte there.
    SpaceCollapsed,
}

/// The gate of `pattern` (as it is compiled into a set), if it has a selective
/// one. Gates are searched ASCII-case-insensitively (which only ever opens them
/// more often); literals of case-insensitive patterns, which run on folded
/// text, are lower-cased in full.
pub(crate) fn gate(pattern: &str, case_insensitive: bool, form: TextForm) -> Option<Gate> {
    let hir = regex_syntax::ParserBuilder::new()
        .utf8(false)
        .build()
        .parse(pattern)
        .ok()?;
    let inner = required(&hir, form).map(|(literals, max_offset)| Gate {
        literals,
        max_offset,
        max_len: None,
    });
    // A prefix gate anchors the search at the literal; an inner one may be far
    // rarer ("system prompt" rather than "the"): take the more selective.
    let gate = match (prefix_gate(&hir), inner) {
        (Some(prefix), Some(inner)) if quality(&inner.literals) > quality(&prefix.literals) => {
            inner
        }
        (Some(prefix), _) => prefix,
        (None, inner) => inner?,
    };
    let mut literals: Vec<Vec<u8>> = gate
        .literals
        .into_iter()
        .map(|l| {
            if !case_insensitive {
                return l.to_ascii_lowercase();
            }
            match String::from_utf8(l) {
                Ok(s) => s.to_lowercase().into_bytes(),
                Err(e) => e.into_bytes().to_ascii_lowercase(),
            }
        })
        .collect();
    literals.sort();
    literals.dedup();
    if form == TextForm::SpaceCollapsed {
        // Folded views hold no tab or newline (whitespace is one space) and no
        // character folding removes (`ſ`, `K`): spellings with them never occur
        // there, and each costs the automaton states.
        // (A literal cut inside a character is kept: it says nothing here.)
        let occur = |l: &Vec<u8>| match std::str::from_utf8(l) {
            Ok(s) => s
                .chars()
                .all(|c| c == ' ' || !c.is_whitespace() && crate::lowercase::survives_folding(c)),
            Err(_) => true,
        };
        if literals.iter().any(occur) {
            literals.retain(occur);
        }
    }
    Some(Gate {
        literals,
        max_offset: gate.max_offset,
        max_len: max_len(&hir, form),
    })
}

/// Whether every match of `pattern` (as compiled into a set, with the set's case
/// folding: some non-ASCII letters fold to ASCII ones, the Kelvin sign to `k`)
/// holds a non-ASCII character, so the pattern cannot match ASCII text. `false`
/// when unsure.
pub(crate) fn needs_non_ascii(pattern: &str, case_insensitive: bool) -> bool {
    regex_syntax::ParserBuilder::new()
        .utf8(false)
        .case_insensitive(case_insensitive)
        .build()
        .parse(pattern)
        .is_ok_and(|hir| non_ascii_in_every_match(&hir))
}

fn non_ascii_in_every_match(hir: &Hir) -> bool {
    match hir.kind() {
        HirKind::Literal(lit) => !lit.0.is_ascii(),
        HirKind::Class(Class::Unicode(c)) => c.iter().all(|r| !r.start().is_ascii()),
        HirKind::Class(Class::Bytes(c)) => c.iter().all(|r| !r.start().is_ascii()),
        HirKind::Capture(capture) => non_ascii_in_every_match(&capture.sub),
        HirKind::Repetition(rep) => rep.min > 0 && non_ascii_in_every_match(&rep.sub),
        HirKind::Concat(children) => children.iter().any(non_ascii_in_every_match),
        HirKind::Alternation(children) => children.iter().all(non_ascii_in_every_match),
        HirKind::Empty | HirKind::Look(_) => false,
    }
}

/// The longest match of `hir` on text of this form, if bounded.
fn max_len(hir: &Hir, form: TextForm) -> Option<usize> {
    match hir.kind() {
        HirKind::Repetition(rep) if form == TextForm::SpaceCollapsed && is_space(&rep.sub) => {
            Some(usize::from(rep.max != Some(0)))
        }
        HirKind::Repetition(rep) => {
            let once = max_len(&rep.sub, form)?;
            if once == 0 {
                return Some(0);
            }
            usize::try_from(rep.max?).ok()?.checked_mul(once)
        }
        HirKind::Concat(children) => children
            .iter()
            .try_fold(0usize, |sum, h| sum.checked_add(max_len(h, form)?)),
        HirKind::Alternation(children) => children
            .iter()
            .try_fold(0usize, |longest, h| Some(longest.max(max_len(h, form)?))),
        HirKind::Capture(capture) => max_len(&capture.sub, form),
        _ => hir.properties().maximum_len(),
    }
}

/// A class of ASCII whitespace only (what `\s` becomes in a set).
fn is_space(hir: &Hir) -> bool {
    const SPACE: &[u32] = &[0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x20];
    match hir.kind() {
        HirKind::Class(Class::Unicode(c)) => c
            .iter()
            .all(|r| (u32::from(r.start())..=u32::from(r.end())).all(|ch| SPACE.contains(&ch))),
        HirKind::Class(Class::Bytes(c)) => c
            .iter()
            .all(|r| (u32::from(r.start())..=u32::from(r.end())).all(|b| SPACE.contains(&b))),
        _ => false,
    }
}

/// The literals every match starts with, from regex-syntax's own extractor
/// (it sees through alternations of prefixes better than [`required`]).
fn prefix_gate(hir: &Hir) -> Option<Gate> {
    let mut extractor = regex_syntax::hir::literal::Extractor::new();
    extractor
        .kind(regex_syntax::hir::literal::ExtractKind::Prefix)
        .limit_total(128);
    let seq = extractor.extract(hir);
    let literals = seq.literals()?;
    if literals.is_empty() || literals.iter().any(|l| l.as_bytes().len() < MIN_LITERAL) {
        return None;
    }
    Some(Gate {
        literals: literals.iter().map(|l| l.as_bytes().to_vec()).collect(),
        max_offset: Some(0),
        max_len: None,
    })
}

/// The finite set of strings `hir` matches, when it is small.
fn exact(hir: &Hir) -> Option<Vec<Vec<u8>>> {
    match hir.kind() {
        HirKind::Empty | HirKind::Look(_) => Some(vec![Vec::new()]),
        HirKind::Literal(lit) => Some(vec![lit.0.to_vec()]),
        HirKind::Class(class) => class_members(class),
        HirKind::Capture(capture) => exact(&capture.sub),
        HirKind::Concat(children) => children
            .iter()
            .try_fold(vec![Vec::new()], |acc, child| cross(&acc, &exact(child)?)),
        HirKind::Alternation(children) => {
            let mut all = Vec::new();
            for child in children {
                all.extend(exact(child)?);
                if all.len() > MAX_LITERALS {
                    return None;
                }
            }
            Some(all)
        }
        HirKind::Repetition(rep) if Some(rep.min) == rep.max && rep.min <= 4 => {
            let once = exact(&rep.sub)?;
            (0..rep.min).try_fold(vec![Vec::new()], |acc, _| cross(&acc, &once))
        }
        HirKind::Repetition(_) => None,
    }
}

fn class_members(class: &Class) -> Option<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    match class {
        Class::Unicode(c) => {
            for range in c.iter() {
                for ch in range.start()..=range.end() {
                    if out.len() == MAX_CLASS {
                        return None;
                    }
                    out.push(ch.to_ascii_lowercase().to_string().into_bytes());
                }
            }
        }
        Class::Bytes(c) => {
            for range in c.iter() {
                for b in range.start()..=range.end() {
                    if out.len() == MAX_CLASS {
                        return None;
                    }
                    out.push(vec![b.to_ascii_lowercase()]);
                }
            }
        }
    }
    // Gates are searched ASCII-case-insensitively, so `(?i)s` needs only `s`
    // and `ſ`, not `S` as well.
    out.sort();
    out.dedup();
    Some(out)
}

/// Every `a` followed by every `b`, unless that makes too many.
fn cross(a: &[Vec<u8>], b: &[Vec<u8>]) -> Option<Vec<Vec<u8>>> {
    if a.len() * b.len() > MAX_LITERALS {
        return None;
    }
    Some(
        a.iter()
            .flat_map(|x| {
                b.iter().map(move |y| {
                    let mut v = x.clone();
                    v.extend_from_slice(y);
                    v
                })
            })
            .collect(),
    )
}

fn selective(literals: &[Vec<u8>]) -> bool {
    !literals.is_empty()
        && literals.len() <= MAX_LITERALS
        && literals.iter().all(|l| l.len() >= MIN_LITERAL)
}

/// How good a gate is: longer shortest literal first, then fewer literals.
fn quality(literals: &[Vec<u8>]) -> (usize, std::cmp::Reverse<usize>) {
    let shortest = literals.iter().map(Vec::len).min().unwrap_or(0);
    // Beyond 8 bytes a literal is rare enough; prefer fewer alternatives then.
    (shortest.min(8), std::cmp::Reverse(literals.len()))
}

type Required = (Vec<Vec<u8>>, Option<usize>);

/// Literals of which every match of `hir` contains one, and the furthest from
/// the match start one can begin.
fn required(hir: &Hir, form: TextForm) -> Option<Required> {
    if let Some(set) = exact(hir).filter(|s| selective(s)) {
        return Some((set, Some(0)));
    }
    match hir.kind() {
        HirKind::Capture(capture) => required(&capture.sub, form),
        HirKind::Repetition(rep) if rep.min >= 1 => required(&rep.sub, form),
        HirKind::Alternation(children) => {
            let mut all = Vec::new();
            let mut furthest = Some(0);
            for child in children {
                let (literals, offset) = required(child, form)?;
                all.extend(literals);
                furthest = furthest.zip(offset).map(|(a, b)| a.max(b));
            }
            selective(&all).then_some((all, furthest))
        }
        HirKind::Concat(children) => concat_required(children, form),
        _ => None,
    }
}

/// The best gate inside a concatenation: a run of consecutive children with
/// finite sets (joined into longer literals), or one child's own gate.
fn concat_required(children: &[Hir], form: TextForm) -> Option<Required> {
    // Longest a match of children[..i] can be, for each i.
    let mut before: Vec<Option<usize>> = Vec::with_capacity(children.len() + 1);
    before.push(Some(0));
    for child in children {
        let last = before.last().copied().flatten();
        before.push(last.zip(max_len(child, form)).map(|(a, b)| a + b));
    }
    let mut best: Option<Required> = None;
    let mut consider = |candidate: Required| {
        if !selective(&candidate.0) {
            return;
        }
        if best
            .as_ref()
            .is_none_or(|b| quality(&candidate.0) > quality(&b.0))
        {
            best = Some(candidate);
        }
    };
    let mut run: Option<(usize, Vec<Vec<u8>>)> = None;
    for (i, child) in children.iter().enumerate() {
        match exact(child) {
            Some(set) => {
                let joined = run
                    .as_ref()
                    .and_then(|(start, acc)| cross(acc, &set).map(|j| (*start, j)));
                match joined {
                    Some(j) => run = Some(j),
                    None => {
                        if let Some((start, acc)) = run.take() {
                            consider((acc, before[start]));
                        }
                        run = Some((i, set));
                    }
                }
            }
            None => {
                if let Some((start, acc)) = run.take() {
                    consider((acc, before[start]));
                }
                if let Some((literals, offset)) = required(child, form) {
                    consider((literals, before[i].zip(offset).map(|(a, b)| a + b)));
                }
            }
        }
    }
    if let Some((start, acc)) = run {
        consider((acc, before[start]));
    }
    best
}

#[cfg(test)]
mod tests {
    #[test]
    fn patterns_that_only_match_non_ascii_text_are_told_apart() {
        use super::needs_non_ascii;
        assert!(needs_non_ascii(r"[\x{200B}-\x{200F}\x{FEFF}]", false));
        assert!(needs_non_ascii(
            r"[A-Za-z][\x{0400}-\x{04FF}]+[A-Za-z]",
            false
        ));
        assert!(needs_non_ascii(r"(?:é|ü)x", false));
        // Something ASCII can match, or the part that is not may be absent.
        assert!(!needs_non_ascii(
            r"[A-Za-z][\x{0400}-\x{04FF}]*[A-Za-z]",
            false
        ));
        assert!(!needs_non_ascii(r"(?:é|u)x", false));
        assert!(!needs_non_ascii(r"[\x{200B}\x{FEFF}]|zwsp", false));
        assert!(!needs_non_ascii(r"\bignore\b", false));
        // The Kelvin sign folds to `k`: case-insensitively it matches ASCII.
        assert!(needs_non_ascii("\u{212A}", false));
        assert!(!needs_non_ascii("\u{212A}", true));
    }

    use super::{gate, Gate, TextForm};

    fn gate_raw(pattern: &str, ci: bool) -> Option<Gate> {
        gate(pattern, ci, TextForm::Raw)
    }

    fn lits(gate: &Gate) -> Vec<&str> {
        gate.literals
            .iter()
            .map(|l| std::str::from_utf8(l).unwrap_or("?"))
            .collect()
    }

    #[test]
    fn prefixes_gate_at_the_match_start() {
        let g = gate_raw(r"\b(?:ignore|Forget)\s+all", true).expect("gated");
        assert_eq!(lits(&g), ["forget", "ignore"]);
        assert_eq!(g.max_offset, Some(0));
    }

    #[test]
    fn inner_literals_gate_with_their_furthest_offset() {
        // The best literal is the longest, after a bounded word.
        let g = gate_raw(r"[a-z]{1,10}[ \t]?password\s*[:=]", true).expect("gated");
        assert_eq!(lits(&g), ["password"]);
        assert_eq!(g.max_offset, Some(11));
        assert_eq!(g.search_from(30), 19);
        assert_eq!(g.search_from(5), 0);
    }

    #[test]
    fn a_rarer_inner_literal_beats_a_common_prefix() {
        let g = gate_raw(
            r"\b(?:your|the)\s+(?:system\s+prompt|initial\s+rules)",
            true,
        )
        .expect("gated");
        assert_eq!(lits(&g), ["initial", "system"]);
        assert_eq!(g.max_offset, None, "Unicode \\s+ is unbounded");
    }

    #[test]
    fn folded_text_bounds_whitespace_runs_to_one_byte() {
        let pattern = r"(?-u:\b)you[\t\n\x0B\x0C\r ]+are(?-u:[^\n]){0,40}now";
        let raw = gate_raw(pattern, true).expect("gated");
        assert_eq!(raw.max_len, None);
        assert_eq!(raw.window(100, 1000), None);
        let folded = gate(pattern, true, TextForm::SpaceCollapsed).expect("gated");
        assert_eq!(folded.max_len, Some(3 + 1 + 3 + 40 + 3));
        assert_eq!(folded.max_offset, Some(0));
        assert_eq!(folded.window(100, 1000), Some(100..150));
        assert_eq!(folded.window(990, 1000), Some(990..1000));
    }

    #[test]
    fn unbounded_prefixes_search_from_the_start() {
        let g = gate_raw(r"[a-z]+@evil\.example", true).expect("gated");
        assert_eq!(lits(&g), ["@evil.example"]);
        assert_eq!(g.max_offset, None);
        assert_eq!(g.search_from(100), 0);
    }

    #[test]
    fn small_classes_join_neighbouring_literals() {
        let g = gate_raw(r"[0-9]{4}api[_-]key[0-9]", false).expect("gated");
        assert_eq!(lits(&g), ["api-key", "api_key"]);
        assert_eq!(g.max_offset, Some(4));
    }

    #[test]
    fn inline_case_insensitivity_keeps_non_ascii_case_variants() {
        let g = gate_raw(r"(?i)[0-9]{2}pass", false).expect("gated");
        // `ſ` (long s) matches `s` case-insensitively.
        assert_eq!(lits(&g), ["pass", "pasſ", "paſs", "paſſ"]);
    }

    #[test]
    fn alternations_need_a_gate_in_every_branch() {
        let g = gate_raw(r"(?:[0-9]+token|secret[0-9]+)", false).expect("gated");
        assert_eq!(lits(&g), ["secret", "token"]);
        assert_eq!(g.max_offset, None, "one branch has an unbounded prefix");
        assert_eq!(gate_raw(r"(?:[0-9]+token|[0-9]{3})", false), None);
    }

    #[test]
    fn patterns_without_selective_literals_are_not_gated() {
        assert_eq!(gate_raw(r"[0-9]{3}-[0-9]{2}-[0-9]{4}", false), None);
        assert_eq!(gate_raw(r"(?-u:[^\n]){0,5}x", true), None);
        assert_eq!(gate_raw(r"ab|xyz", false), None, "too short to gate");
        assert_eq!(gate_raw(r"(?:password)?[a-z]+", false), None, "optional");
    }
}
