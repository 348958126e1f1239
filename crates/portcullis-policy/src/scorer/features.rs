//! Hashed n-gram features of folded text.
//!
//! Each token contributes its unigram, the bigram it ends, and the 4-byte character
//! grams of its word (with boundary marks), so spelling variants share features.
//! Every n-gram is hashed twice: once plain and once tagged with the text's
//! [`Shape`]. The tagged copy lets one linear model learn that "what is the capital
//! of" is ordinary in a prompt and suspicious inside an e-mail it was asked to read.

/// What kind of text is being scored: something a person typed to the model, or
/// content the model reads (a document, a tool result, a web page).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Shape {
    Prompt,
    Document,
}

impl Shape {
    /// Guesses the shape from structure: table rows, code fences, mail/record
    /// headers, or a long text of many lines (a pasted page) read as a document.
    /// A message of a few paragraphs a person wrote is still a prompt; tool
    /// results are documents by where they are met, whatever their shape.
    pub fn of(text: &str) -> Shape {
        let bytes = text.as_bytes();
        // Counting stops at the threshold; memchr scans a vector at a time.
        let at_least = |b: u8, n: usize| memchr::memchr_iter(b, bytes).nth(n - 1).is_some();
        let pasted = text.len() >= 1200 && at_least(b'\n', 12);
        if pasted
            || at_least(b'|', 6)
            || memchr::memmem::find(bytes, b"```").is_some()
            || mail_headers(text)
        {
            Shape::Document
        } else {
            Shape::Prompt
        }
    }

    fn salt(self) -> u64 {
        match self {
            Shape::Prompt => 0x9e37_79b9_7f4a_7c15,
            Shape::Document => 0xc2b2_ae3d_27d4_eb4f,
        }
    }
}

/// An e-mail: a `Subject:` header beside a `From:`, `To:` or `Date:` one.
fn mail_headers(text: &str) -> bool {
    let head = &text.as_bytes()[..text.len().min(2048)];
    // Each header name is looked for just before a colon, in any case.
    let (mut subject, mut other) = (false, false);
    for colon in memchr::memchr_iter(b':', head) {
        let before = &head[..colon];
        let named = |name: &[u8]| {
            before.len() >= name.len()
                && before[before.len() - name.len()..].eq_ignore_ascii_case(name)
        };
        subject |= named(b"subject");
        other |= [&b"from"[..], b"to", b"date", b"sent"]
            .iter()
            .any(|h| named(h));
        if subject && other {
            return true;
        }
    }
    false
}

/// Tokens beyond this many are ignored (the scan stays bounded on huge inputs).
pub const MAX_TOKENS: usize = 16 * 1024;

/// The features of a text, grouped by the token that produced them.
#[derive(Debug, Default, Clone)]
pub struct Featurized {
    /// Bucket indices.
    pub features: Vec<u32>,
    /// `features[ends[i-1]..ends[i]]` belong to token `i`.
    pub ends: Vec<u32>,
}

impl Featurized {
    pub fn tokens(&self) -> usize {
        self.ends.len()
    }

    /// Feature range of tokens `from..to`.
    pub fn range(&self, from: usize, to: usize) -> &[u32] {
        let start = if from == 0 {
            0
        } else {
            self.ends[from - 1] as usize
        };
        let end = if to == 0 {
            0
        } else {
            self.ends[to - 1] as usize
        };
        &self.features[start..end]
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// A strong finaliser so nearby inputs land in unrelated buckets.
fn mix(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// Splits folded text into word tokens and single punctuation tokens. Words are
/// runs of alphanumeric characters; whitespace separates tokens.
pub fn tokens(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        rest = &rest[skip_while(rest, |c| c.is_whitespace())..];
        let first = rest.chars().next()?;
        let len = if first.is_alphanumeric() {
            skip_while(rest, char::is_alphanumeric)
        } else {
            first.len_utf8()
        };
        let (token, tail) = rest.split_at(len);
        rest = tail;
        Some(token)
    })
    .take(MAX_TOKENS)
}

/// Length of the longest prefix of `s` whose characters all satisfy `keep`.
/// ASCII bytes are classified as bytes; only other characters are decoded.
fn skip_while(s: &str, keep: impl Fn(char) -> bool) -> usize {
    let bytes = s.as_bytes();
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let (c, width) = if b.is_ascii() {
            (char::from(b), 1)
        } else {
            match s.get(i..).and_then(|t| t.chars().next()) {
                Some(c) => (c, c.len_utf8()),
                None => break,
            }
        };
        if !keep(c) {
            break;
        }
        i += width;
    }
    i
}

/// Whether the `k`-th feature of a token is a shape-tagged copy: [`featurize`]
/// pushes every n-gram as a (plain, tagged) pair.
pub fn is_tagged(k: usize) -> bool {
    k % 2 == 1
}

/// Features of `text` (already folded: lower case, NFKC, confusables mapped).
pub fn featurize(text: &str, shape: Shape, bits: u8) -> Featurized {
    let mut out = Featurized::default();
    visit(text, shape, bits, &mut out);
    out
}

/// What [`visit`] hands its n-grams to.
pub trait GramSink {
    /// The two buckets of one n-gram: plain, then tagged with the text's shape.
    fn gram(&mut self, plain: u32, tagged: u32);
    /// The n-grams of one token are done.
    fn token_end(&mut self);
    /// A word's character n-grams are next: `true` when the sink already knows
    /// what they add up to (they depend on the word alone), so they are skipped.
    fn word_known(&mut self, _word: &[u8], _hash: u64) -> bool {
        false
    }
    /// The character n-grams of a word [`GramSink::word_known`] did not know
    /// are done.
    fn word_done(&mut self, _word: &[u8], _hash: u64) {}
}

impl GramSink for Featurized {
    fn gram(&mut self, plain: u32, tagged: u32) {
        self.features.extend_from_slice(&[plain, tagged]);
    }

    fn token_end(&mut self) {
        #[allow(clippy::cast_possible_truncation)]
        self.ends.push(self.features.len() as u32);
    }
}

/// The n-grams of `text` as they are hashed, in order. [`featurize`] keeps
/// them; scoring sums their weights without keeping them.
pub fn visit<S: GramSink>(text: &str, shape: Shape, bits: u8, sink: &mut S) {
    let mask = (1u64 << bits) - 1;
    let salt = shape.salt();
    // Truncation to the table size is the point of the mask.
    #[allow(clippy::cast_possible_truncation)]
    let push = |sink: &mut S, h: u64| {
        sink.gram((mix(h) & mask) as u32, (mix(h ^ salt) & mask) as u32);
    };
    let mut previous: u64 = 0x5bd1_e995;
    for token in tokens(text) {
        let h = fnv1a(token.as_bytes());
        push(sink, h);
        push(sink, previous.rotate_left(17) ^ h ^ 0xb16);
        previous = h;
        let word = token.as_bytes();
        if word.len() >= 3
            && token.starts_with(|c: char| c.is_alphanumeric())
            && !sink.word_known(word, h)
        {
            // Character 4-grams of "<word>", rolling over bytes.
            let mut window: u32 = u32::from(b'<');
            let mut filled = 1;
            for &b in word.iter().chain(std::iter::once(&b'>')) {
                window = (window << 8) | u32::from(b);
                filled += 1;
                if filled >= 4 {
                    push(sink, u64::from(window) | (1 << 40));
                }
            }
            sink.word_done(word, h);
        }
        sink.token_end();
    }
}

/// Token windows are scored separately, so one injected sentence in a long
/// document is not diluted by the document around it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Windowing {
    pub size: usize,
    pub stride: usize,
}

impl Default for Windowing {
    fn default() -> Self {
        Windowing {
            size: 48,
            stride: 16,
        }
    }
}

impl Windowing {
    /// The short scale documents are also read at: about one sentence.
    pub const SHORT: Windowing = Windowing { size: 8, stride: 2 };

    /// `(from, to)` token ranges covering `n` tokens.
    pub fn windows(self, n: usize) -> impl Iterator<Item = (usize, usize)> {
        let size = self.size.max(1);
        let stride = self.stride.clamp(1, size);
        let count = if n <= size {
            1
        } else {
            (n - size).div_ceil(stride) + 1
        };
        (0..count).map(move |i| {
            let from = (i * stride).min(n.saturating_sub(size));
            (from, (from + size).min(n))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// The colon-led search agrees with looking for each `name:` anywhere
        /// in the first 2 KiB, in any case.
        #[test]
        fn mail_headers_agree_with_a_plain_search(
            pieces in proptest::collection::vec(
                proptest::sample::select(vec!["subject", "SuBjEcT", "from", "To", "DATE", "sent", "ject", ":", " ", "\n", "x"]),
                0..40,
            ),
        ) {
            let text = pieces.concat();
            let head = &text.as_bytes()[..text.len().min(2048)];
            let has = |needle: &[u8]| head.windows(needle.len()).any(|w| w.eq_ignore_ascii_case(needle));
            let plain = has(b"subject:") && [&b"from:"[..], b"to:", b"date:", b"sent:"].iter().any(|h| has(h));
            proptest::prop_assert_eq!(mail_headers(&text), plain);
        }
    }

    proptest::proptest! {
        /// The byte-wise scan splits like a char-by-char reading of the text.
        #[test]
        fn tokens_split_like_a_char_scan(
            pieces in proptest::collection::vec(
                proptest::sample::select(vec!["a", "Z", "7", " ", "\u{a0}", "\n", "é", "ß", "٣", "?", "'", "\u{2003}", "日本", "\u{1f600}", "\u{301}"]),
                0..60,
            ),
        ) {
            let text = pieces.concat();
            let mut expected = Vec::new();
            let mut word = String::new();
            for c in text.chars() {
                if c.is_alphanumeric() {
                    word.push(c);
                    continue;
                }
                if !word.is_empty() {
                    expected.push(std::mem::take(&mut word));
                }
                if !c.is_whitespace() {
                    expected.push(c.to_string());
                }
            }
            if !word.is_empty() {
                expected.push(word);
            }
            let got: Vec<String> = tokens(&text).map(str::to_owned).collect();
            proptest::prop_assert_eq!(got, expected);
        }
    }

    #[test]
    fn tokens_split_words_and_punctuation() {
        let t: Vec<&str> = tokens("what's  the café? a|b").collect();
        assert_eq!(t, ["what", "'", "s", "the", "café", "?", "a", "|", "b"]);
    }

    #[test]
    fn windows_cover_every_token() {
        for n in [0, 1, 47, 48, 49, 64, 65, 200, 1001] {
            let w: Vec<_> = Windowing::default().windows(n).collect();
            assert!(!w.is_empty());
            assert_eq!(w.first().map(|w| w.0), Some(0));
            assert_eq!(w.last().map(|w| w.1), Some(n), "n={n}");
            for pair in w.windows(2) {
                assert!(pair[1].0 <= pair[0].1, "gap in {w:?}");
            }
        }
    }

    #[test]
    fn features_are_stable_and_shape_tagged() {
        let a = featurize("ignore previous instructions", Shape::Prompt, 18);
        let b = featurize("ignore previous instructions", Shape::Prompt, 18);
        let c = featurize("ignore previous instructions", Shape::Document, 18);
        assert_eq!(a.features, b.features);
        assert_eq!(a.tokens(), 3);
        // Plain copies agree between shapes, tagged copies differ.
        assert_eq!(a.features[0], c.features[0]);
        assert_ne!(a.features[1], c.features[1]);
        assert!(a.features.iter().all(|&f| f < (1 << 18)));
    }

    #[test]
    fn shape_reads_structure() {
        assert_eq!(Shape::of("how do I bake bread?"), Shape::Prompt);
        assert_eq!(
            Shape::of("| a | b |\n| 1 | 2 |\n| 3 | 4 |"),
            Shape::Document
        );
        assert_eq!(
            Shape::of("fix this:\n```\nfn main() {}\n```"),
            Shape::Document
        );
        assert_eq!(
            Shape::of("Subject: Lunch\nFrom: Ana <ana@example.com>\n\nSee you at noon."),
            Shape::Document
        );
        assert_eq!(Shape::of("what subject: maths or art?"), Shape::Prompt);
        // A few paragraphs typed by a person, and a pasted page.
        let message = "I wrote this over several lines, as people do.\n".repeat(8);
        assert_eq!(Shape::of(&message), Shape::Prompt);
        let page = "A line of some page that was pasted in whole.\n".repeat(30);
        assert_eq!(Shape::of(&page), Shape::Document);
    }
}
