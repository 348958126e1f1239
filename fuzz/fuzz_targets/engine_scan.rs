//! Arbitrary text scanned with the built-in packs at every location; spans are
//! valid ranges of the text, and redacting the findings round-trips. The text is
//! also streamed in three pieces through a `StreamScanner` (each rule at most once).
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_policy::redact::{Redactor, Replacement};
use portcullis_policy::stream_scan::StreamScanner;
use portcullis_policy::{builtin, Engine, Location};
use std::collections::HashSet;
use std::sync::{Arc, OnceLock};

const LOCATIONS: [Location; 6] = [
    Location::Request,
    Location::Response,
    Location::ToolCall,
    Location::ToolResult,
    Location::ToolDescription,
    Location::AgentMessage,
];

fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let packs = builtin::packs().expect("built-in packs load");
        Engine::compile(&packs).expect("built-in packs compile")
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let engine = engine();
    for location in LOCATIONS {
        let assessment = engine.assess(location, text);
        let mut replacements = Vec::new();
        for f in &assessment.findings {
            assert_eq!(f.location, location);
            for &(start, end) in &f.spans {
                assert!(start < end && text.get(start..end).is_some(), "{f:?}");
                if let Some(entity) = &f.entity {
                    replacements.push(Replacement {
                        start,
                        end,
                        entity: Arc::clone(entity),
                        treatment: engine.treatment(entity),
                    });
                }
            }
        }
        let placeholder_like = text.contains('[');
        let mut redactor = Redactor::new();
        if let Some(redacted) = redactor.redact(text, &replacements) {
            let masked = replacements
                .iter()
                .any(|r| r.treatment == portcullis_policy::redact::Treatment::Mask);
            if !placeholder_like && !masked {
                assert_eq!(redactor.restore(&redacted), text);
            }
        }
    }

    let boundary = |mut at: usize| {
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        at
    };
    let (a, b) = (boundary(text.len() / 3), boundary(text.len() * 2 / 3));
    let mut scanner = StreamScanner::new(Location::Response);
    let mut reported = HashSet::new();
    for piece in [&text[..a], &text[a..b], &text[b..]] {
        for f in scanner.push(engine, piece) {
            assert!(reported.insert(f.rule_id.clone()), "{} twice", f.rule_id);
        }
    }
});
