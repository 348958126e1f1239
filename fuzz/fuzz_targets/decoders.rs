//! Every decoder on arbitrary text: no panic, output bounded by the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_policy::normalize::decode;

fuzz_target!(|data: &[u8]| {
    let Some((&min, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let min_len = usize::from(min % 40);
    let base = text.as_ptr() as usize;
    let inside = |run: &str| {
        let at = run.as_ptr() as usize - base;
        at + run.len() <= text.len() && text.get(at..at + run.len()) == Some(run)
    };

    let mut runs = Vec::new();
    decode::for_each_base64_run(text, min_len, |run| runs.push(run));
    for run in runs {
        assert!(inside(run));
        assert!(run.trim_end_matches('=').len() >= min_len.max(1));
        if let Some(bytes) = decode::decode_base64_run(run) {
            assert!(!bytes.is_empty());
            assert!(bytes.len() <= run.len() * 3 / 4 + 1, "{run:?}");
            let _ = decode::mostly_printable(&String::from_utf8_lossy(&bytes));
        }
    }

    decode::for_each_hex_run(text, min_len, |run, bytes| {
        assert!(inside(run));
        assert!(bytes.len() * 2 <= run.len(), "{run:?}");
        assert!(bytes.len() * 2 >= min_len.max(2) - 1);
    });

    for (name, decoder) in [
        ("url", decode::url_decode as fn(&str) -> Option<String>),
        ("html", decode::html_decode),
        ("escape", decode::escape_decode),
        ("morse", decode::morse_decode),
        ("respell", decode::respell),
        ("reverse", decode::reverse_decode),
    ] {
        // Respelling may add a space between the words of a run it takes apart.
        let bound = if name == "respell" {
            text.len() * 3 / 2
        } else {
            text.len()
        };
        if let Some(out) = decoder(text) {
            assert!(
                out.len() <= bound,
                "{name}: {} bytes out of {}",
                out.len(),
                text.len()
            );
            let _ = decode::mostly_printable(&out);
        }
    }
});
