//! Arbitrary bytes as a pack: loading may fail, compiling a loaded pack may fail,
//! neither may panic; a compiled pack is checked against its own examples.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_policy::{check_examples, Engine, Pack};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(pack) = Pack::from_json("fuzz", text) else {
        return;
    };
    if let Ok(engine) = Engine::compile(std::slice::from_ref(&pack)) {
        let _ = check_examples(&pack, &engine);
    }
});
