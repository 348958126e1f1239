//! `normalize` on arbitrary text, with the default limits and with tiny ones.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_policy::normalize::{fold_for_matching, normalize, Limits, Origin, MAX_VIEWS};
use std::collections::HashSet;

const TINY: Limits = Limits {
    max_input_bytes: 64,
    max_decode_depth: 3,
    max_decoded_bytes: 48,
    min_encoded_len: 4,
};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for limits in [Limits::default(), TINY] {
        let n = normalize(text, &limits);
        // views[0] exists and is the folded whole input (after truncation).
        assert!(!n.views.is_empty());
        assert_eq!(n.views[0].origin, Origin::Normalized);
        assert!(n.views.len() <= MAX_VIEWS, "{} views", n.views.len());
        assert_eq!(n.truncated, text.len() > limits.max_input_bytes);
        let kept = if n.truncated {
            let mut end = limits.max_input_bytes;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            &text[..end]
        } else {
            text
        };
        assert_eq!(n.views[0].text, fold_for_matching(kept));
        // Decoded views: within the byte budget, non-empty, distinct, decoded origin.
        let decoded: usize = n.views[1..].iter().map(|v| v.text.len()).sum();
        assert!(
            decoded <= limits.max_decoded_bytes,
            "{decoded} decoded bytes > {}",
            limits.max_decoded_bytes
        );
        let mut seen = HashSet::new();
        for (i, view) in n.views.iter().enumerate() {
            assert!(seen.insert(view.text.as_str()), "view {i} repeats");
            if i > 0 {
                assert!(!view.text.is_empty());
                assert_ne!(view.origin, Origin::Normalized);
            }
        }
        if limits.max_decode_depth == 0 {
            assert_eq!(n.views.len(), 1);
        }
    }
    // Documented: folding is idempotent.
    let once = fold_for_matching(text);
    assert_eq!(fold_for_matching(&once), once);
});
