//! Unicode-level normalisation: NFKC, invisible-character removal, homoglyph folding,
//! lowercasing and whitespace collapse.

use unicode_normalization::{is_nfkc_quick, IsNormalized, UnicodeNormalization};

use super::confusables::fold_confusable;

/// Whether `c` is an invisible character that an attacker can use to split words:
/// zero-width characters, bidi controls, other `Cf` format characters, variation
/// selectors, tag characters and a few invisible fillers.
pub fn is_invisible(c: char) -> bool {
    let cp = c as u32;
    if cp < 0xAD {
        return false;
    }
    matches!(
        cp,
        0x00AD                      // soft hyphen
        | 0x034F                    // combining grapheme joiner
        | 0x0600..=0x0605           // Arabic number signs
        | 0x061C                    // Arabic letter mark
        | 0x06DD
        | 0x070F
        | 0x0890..=0x0891
        | 0x08E2
        | 0x115F..=0x1160           // Hangul fillers
        | 0x17B4..=0x17B5           // Khmer inherent vowels
        | 0x180B..=0x180F           // Mongolian FVS + vowel separator
        | 0x200B..=0x200F           // ZWSP, ZWNJ, ZWJ, LRM, RLM
        | 0x202A..=0x202E           // bidi embeddings / overrides
        | 0x2060..=0x206F           // word joiner, invisible operators, bidi isolates
        | 0x3164                    // Hangul filler
        | 0xFE00..=0xFE0F           // variation selectors
        | 0xFEFF                    // BOM / ZWNBSP
        | 0xFFA0                    // halfwidth Hangul filler
        | 0xFFF9..=0xFFFB           // interlinear annotation
        | 0x110BD
        | 0x110CD
        | 0x13430..=0x1343F         // Egyptian hieroglyph format controls
        | 0x1BCA0..=0x1BCA3         // shorthand format controls
        | 0x1D173..=0x1D17A         // musical symbol format controls
        | 0xE0000..=0xE007F         // tag characters
        | 0xE0100..=0xE01EF // variation selectors supplement
    )
}

/// NFKC-normalise `s`, or borrow it unchanged when it is already NFKC (fast path for
/// ASCII and most text).
fn nfkc(s: &str) -> std::borrow::Cow<'_, str> {
    if s.is_ascii() || is_nfkc_quick(s.chars()) == IsNormalized::Yes {
        std::borrow::Cow::Borrowed(s)
    } else {
        std::borrow::Cow::Owned(s.nfkc().collect())
    }
}

/// Stage 1: remove invisible characters and apply NFKC, preserving case. Returns the
/// text and the number of invisible characters removed.
///
/// This is the form in which encoded runs are searched for (base64 is case-sensitive).
pub fn strip_and_nfkc(s: &str) -> (String, usize) {
    let mut hidden = 0usize;
    let stripped: std::borrow::Cow<'_, str> = if s.is_ascii() {
        std::borrow::Cow::Borrowed(s)
    } else {
        let mut out = String::with_capacity(s.len());
        for c in s.chars() {
            if is_invisible(c) {
                hidden += 1;
            } else {
                out.push(c);
            }
        }
        std::borrow::Cow::Owned(out)
    };
    let normalized = nfkc(&stripped).into_owned();
    // NFKC does not produce format characters from visible ones, but be defensive so
    // the stage-1 text is guaranteed free of invisibles.
    if normalized.is_ascii() || !normalized.chars().any(is_invisible) {
        (normalized, hidden)
    } else {
        let mut out = String::with_capacity(normalized.len());
        for c in normalized.chars() {
            if is_invisible(c) {
                hidden += 1;
            } else {
                out.push(c);
            }
        }
        (out, hidden)
    }
}

/// Stage 2: fold homoglyphs, lowercase, re-apply NFKC (folding can create new
/// compositions, e.g. a Cyrillic `е` + combining acute becomes `é`), strip invisibles
/// and collapse whitespace. Input is expected to be stage-1 output. Returns the text
/// and the number of homoglyphs folded.
pub fn fold_case_and_space(s: &str) -> (String, usize) {
    fold_case_and_space_with(s, |_| {})
}

/// [`fold_case_and_space`], handing each word of the result to `on_word` as it
/// goes (in its original case on the ASCII path), so a check on words costs no
/// pass of its own.
pub fn fold_case_and_space_with(s: &str, mut on_word: impl FnMut(&[u8])) -> (String, usize) {
    let mut confusables = 0usize;
    let mut mapped = String::with_capacity(s.len());
    if s.is_ascii() {
        // The common case in one pass: ASCII is already NFKC and has no
        // confusables or invisibles, so only case and spacing change.
        // Words (runs of anything but ASCII whitespace and controls, all of which
        // are at most a space or DEL) are lowercased a slice at a time and
        // joined by one space.
        let mut out = Vec::with_capacity(s.len());
        let words = s
            .as_bytes()
            .split(|&b| b <= b' ' || b == 0x7f)
            .filter(|w| !w.is_empty());
        for word in words {
            if !out.is_empty() {
                out.push(b' ');
            }
            on_word(word);
            out.extend(word.iter().map(u8::to_ascii_lowercase));
        }
        // Only ASCII bytes were pushed.
        return (String::from_utf8(out).unwrap_or_default(), 0);
    } else {
        for c in s.chars() {
            if let Some(m) = fold_confusable(c) {
                confusables += 1;
                mapped.push(m);
                continue;
            }
            for lc in c.to_lowercase() {
                if let Some(m) = fold_confusable(lc) {
                    confusables += 1;
                    mapped.push(m);
                } else {
                    mapped.push(lc);
                }
            }
        }
    }
    let renormalized = nfkc(&mapped);
    let folded = collapse_whitespace(&renormalized);
    folded.split(' ').for_each(|word| on_word(word.as_bytes()));
    (folded, confusables)
}

/// Map every whitespace and control character to a space, drop invisibles, collapse
/// runs of spaces to one and trim both ends.
pub fn collapse_whitespace(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut pending_space = false;
    for c in s.chars() {
        if c.is_whitespace() || c.is_control() {
            pending_space = true;
        } else if is_invisible(c) {
            continue;
        } else {
            if pending_space && !out.is_empty() {
                out.push(' ');
            }
            pending_space = false;
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full(s: &str) -> (String, usize, usize) {
        let (a, h) = strip_and_nfkc(s);
        let (b, c) = fold_case_and_space(&a);
        (b, h, c)
    }

    #[test]
    fn nfkc_fullwidth() {
        assert_eq!(full("ｉｇｎｏｒｅ").0, "ignore");
        assert_eq!(full("𝐢𝐠𝐧𝐨𝐫𝐞").0, "ignore");
    }

    #[test]
    fn zero_width_removed_and_counted() {
        let (s, hidden, _) = full("ig\u{200b}nore");
        assert_eq!(s, "ignore");
        assert_eq!(hidden, 1);
    }

    #[test]
    fn bidi_and_tags_removed() {
        let (s, hidden, _) = full("\u{202e}ign\u{2066}ore\u{202c}\u{e0041}\u{fe0f}");
        assert_eq!(s, "ignore");
        assert_eq!(hidden, 5);
    }

    #[test]
    fn cyrillic_homoglyphs_fold() {
        let (s, _, n) = full("\u{456}gn\u{43e}r\u{435}");
        assert_eq!(s, "ignore");
        assert_eq!(n, 3);
    }

    #[test]
    fn lowercase_and_whitespace_collapse() {
        assert_eq!(
            full("  IGNORE\t\n\u{3000}ALL\u{0}\u{85}previous  ").0,
            "ignore all previous"
        );
    }

    #[test]
    fn stage1_preserves_case() {
        assert_eq!(strip_and_nfkc("ＡｂＣ").0, "AbC");
    }
}
