//! Case-insensitive patterns narrowed to the text they run on. Folded views
//! hold no character that lowercasing or NFKC would change (see
//! [`crate::normalize::fold_for_matching`] and its tests), so a
//! case-insensitive pattern can drop the upper-case half of every small class
//! without changing what it matches there. What it gains: `(?i)print` is five literal bytes again, not
//! 32 spellings, so the regex engine finds its literals with a vector search
//! instead of walking every byte of the text with its automaton.

use regex_syntax::hir::{
    Class, ClassBytes, ClassBytesRange, ClassUnicode, ClassUnicodeRange, Hir, HirKind,
};
use unicode_normalization::UnicodeNormalization;

/// Classes with more characters than this are left as they are: they do not
/// yield literals anyway, and subtracting from them (`[^"]`) would only add
/// ranges to the automaton.
const MAX_NARROWED: u32 = 256;

/// Whether `c` can be part of a folded view: lowercasing and NFKC leave it
/// as it is. (`ſ` and `K`, which case-insensitive matching pairs with `s` and
/// `k`, are not: NFKC turns them into those letters.)
pub(crate) fn survives_folding(c: char) -> bool {
    let mut lower = c.to_lowercase();
    let lowercase = lower.next() == Some(c) && lower.next().is_none();
    let mut nfkc = std::iter::once(c).nfkc();
    lowercase && nfkc.next() == Some(c) && nfkc.next().is_none()
}

/// `hir` without the characters folding removes, where that narrows a small
/// class; everything else is rebuilt unchanged.
pub(crate) fn narrow(hir: &Hir) -> Hir {
    match hir.kind() {
        HirKind::Class(class) => narrow_class(class).map_or_else(|| hir.clone(), Hir::class),
        HirKind::Empty | HirKind::Literal(_) | HirKind::Look(_) => hir.clone(),
        HirKind::Repetition(rep) => {
            let mut rep = rep.clone();
            rep.sub = Box::new(narrow(&rep.sub));
            Hir::repetition(rep)
        }
        HirKind::Capture(capture) => {
            let mut capture = capture.clone();
            capture.sub = Box::new(narrow(&capture.sub));
            Hir::capture(capture)
        }
        HirKind::Concat(children) => Hir::concat(children.iter().map(narrow).collect()),
        HirKind::Alternation(children) => Hir::alternation(children.iter().map(narrow).collect()),
    }
}

/// A small class without the characters folding removes; `None` for a large
/// one, and for one that would be left empty (a class of upper-case letters
/// only matches nothing here, but is kept as written rather than made empty).
fn narrow_class(class: &Class) -> Option<Class> {
    let narrowed = match class {
        Class::Unicode(class) => {
            let size: u32 = class
                .iter()
                .map(|r| u32::from(r.end()) - u32::from(r.start()) + 1)
                .sum();
            (size <= MAX_NARROWED).then(|| {
                Class::Unicode(ClassUnicode::new(
                    class
                        .iter()
                        .flat_map(|r| r.start()..=r.end())
                        .filter(|&c| survives_folding(c))
                        .map(|c| ClassUnicodeRange::new(c, c)),
                ))
            })?
        }
        Class::Bytes(class) => {
            let size: u32 = class
                .iter()
                .map(|r| u32::from(r.end() - r.start()) + 1)
                .sum();
            (size <= MAX_NARROWED).then(|| {
                let mut narrowed = class.clone();
                narrowed.difference(&ClassBytes::new([ClassBytesRange::new(b'A', b'Z')]));
                Class::Bytes(narrowed)
            })?
        }
    };
    (!narrowed.is_empty()).then_some(narrowed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use regex_automata::meta;

    fn parse(pattern: &str) -> Hir {
        regex_syntax::ParserBuilder::new()
            .case_insensitive(true)
            .utf8(false)
            .build()
            .parse(pattern)
            .expect("test patterns parse")
    }

    #[test]
    fn literals_of_a_narrowed_pattern_are_lowercase_only() {
        let hir = narrow(&parse(r"(?:print|show) your (?:instructions|prompt)"));
        let mut extractor = regex_syntax::hir::literal::Extractor::new();
        extractor.kind(regex_syntax::hir::literal::ExtractKind::Prefix);
        let seq = extractor.extract(&hir);
        let literals: Vec<&[u8]> = seq
            .literals()
            .map(|l| l.iter().map(|l| l.as_bytes()).collect())
            .unwrap_or_default();
        assert_eq!(
            literals,
            [
                &b"print your instructions"[..],
                b"print your prompt",
                b"show your instructions",
                b"show your prompt"
            ]
        );
    }

    /// Every case-insensitive pattern of the built-in packs, narrowed, matches
    /// the same folded texts as before (every rule's examples, folded: each
    /// pattern against every text).
    #[test]
    fn built_in_patterns_match_folded_text_as_before() {
        let packs = crate::builtin::packs().expect("built-in packs load");
        let rules: Vec<_> = packs.iter().flat_map(|p| &p.rules).collect();
        let texts: Vec<String> = rules
            .iter()
            .flat_map(|r| r.examples.positive.iter().chain(&r.examples.negative))
            .map(|t| crate::normalize::fold_for_matching(t))
            .collect();
        let mut compared = 0;
        for rule in rules.iter().filter(|r| !r.case_sensitive) {
            for pattern in &rule.patterns {
                let hir = parse(&crate::engine::set_form(pattern));
                let original = meta::Regex::builder().build_from_hir(&hir).expect("builds");
                let narrowed = meta::Regex::builder()
                    .build_from_hir(&narrow(&hir))
                    .expect("builds");
                for text in &texts {
                    assert_eq!(
                        original.is_match(text),
                        narrowed.is_match(text),
                        "{}: {pattern} on {text:?}",
                        rule.id
                    );
                    compared += 1;
                }
            }
        }
        assert!(compared > 100_000, "{compared}");
    }

    #[test]
    fn only_characters_folding_changes_are_dropped() {
        for c in ['A', 'Z', 'É', '\u{212A}', 'Σ', 'ſ', 'ﬁ', '\u{FF41}'] {
            assert!(!survives_folding(c), "{c:?}");
        }
        for c in ['a', 'ß', 'é', 'σ', '1', ' ', 'я'] {
            assert!(survives_folding(c), "{c:?}");
        }
    }
}
