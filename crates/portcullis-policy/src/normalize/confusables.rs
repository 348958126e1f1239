//! Homoglyph folding: non-Latin letters that look like Latin ones map to the ASCII
//! lowercase letter they imitate.
//!
//! Fullwidth forms and mathematical alphanumerics are already handled by NFKC, which
//! runs before this table is consulted; this table covers what NFKC leaves alone
//! (Cyrillic, Greek, a few Latin-extension and Armenian/Cherokee-free look-alikes).

/// The ASCII lowercase letter `c` imitates, if `c` is a known homoglyph.
///
/// Only non-ASCII characters are mapped; ASCII input always returns `None`.
pub fn fold_confusable(c: char) -> Option<char> {
    if c.is_ascii() {
        return None;
    }
    let mapped = match c {
        // ---- Cyrillic ----
        'А' | 'а' => 'a',
        'В' | 'в' | 'Ь' | 'ь' => 'b',
        'С' | 'с' => 'c',
        'ԁ' => 'd',
        'Е' | 'е' | 'Ё' | 'ё' => 'e',
        'Һ' | 'һ' | 'Н' | 'н' => 'h',
        'І' | 'і' | 'Ї' | 'ї' | 'Ӏ' => 'i',
        'Ј' | 'ј' => 'j',
        'К' | 'к' => 'k',
        'ӏ' => 'l',
        'М' | 'м' => 'm',
        'П' | 'п' => 'n',
        'О' | 'о' => 'o',
        'Р' | 'р' => 'p',
        'Ԛ' | 'ԛ' => 'q',
        'Г' | 'г' => 'r',
        'Ѕ' | 'ѕ' => 's',
        'Т' | 'т' => 't',
        'Ц' | 'ц' => 'u',
        'Ѵ' | 'ѵ' => 'v',
        'Ԝ' | 'ԝ' | 'Ш' | 'ш' => 'w',
        'Х' | 'х' => 'x',
        'У' | 'у' | 'Ү' | 'ү' => 'y',
        // ---- Greek ----
        'Α' | 'α' => 'a',
        'Β' | 'β' => 'b',
        'Ϲ' | 'ϲ' => 'c',
        'Ε' | 'ε' => 'e',
        'Η' | 'η' => 'h',
        'Ι' | 'ι' | 'Ϊ' | 'ϊ' => 'i',
        'Ϳ' | 'ϳ' => 'j',
        'Κ' | 'κ' => 'k',
        'Μ' => 'm',
        'Ν' => 'n',
        'Ο' | 'ο' | 'σ' => 'o',
        'Ρ' | 'ρ' => 'p',
        'Τ' | 'τ' => 't',
        'Υ' | 'Ϋ' => 'y',
        'υ' | 'ϋ' => 'u',
        'ν' => 'v',
        'ω' => 'w',
        'Χ' | 'χ' => 'x',
        'Ζ' => 'z',
        // ---- Latin extensions / IPA that survive NFKC ----
        'ɑ' => 'a',
        'ƅ' => 'b',
        'ɡ' => 'g',
        'ı' => 'i',
        'ȷ' => 'j',
        'ĸ' => 'k',
        'ʟ' => 'l',
        'ɴ' => 'n',
        'ᴏ' => 'o',
        'ʀ' => 'r',
        'ꜱ' => 's',
        'ᴛ' => 't',
        'ᴜ' => 'u',
        'ᴠ' => 'v',
        'ᴡ' => 'w',
        'ʏ' => 'y',
        'ᴢ' => 'z',
        _ => return None,
    };
    Some(mapped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cyrillic_and_greek_fold_to_ascii() {
        let s: String = "іgnоrе"
            .chars()
            .map(|c| fold_confusable(c).unwrap_or(c))
            .collect();
        assert_eq!(s, "ignore");
        assert_eq!(fold_confusable('Α'), Some('a'));
        assert_eq!(fold_confusable('ο'), Some('o'));
        assert_eq!(fold_confusable('р'), Some('p'));
    }

    #[test]
    fn ascii_and_unrelated_chars_untouched() {
        for c in ['a', 'Z', '0', ' ', 'é', '漢', 'ß'] {
            assert_eq!(fold_confusable(c), None, "{c:?}");
        }
    }

    #[test]
    fn table_outputs_are_ascii_lowercase() {
        for cp in 0x80u32..0x3000 {
            if let Some(c) = char::from_u32(cp) {
                if let Some(m) = fold_confusable(c) {
                    assert!(m.is_ascii_lowercase(), "{c:?} -> {m:?}");
                }
            }
        }
    }
}
