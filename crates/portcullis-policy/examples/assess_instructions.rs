//! Instructions one `Engine::assess` takes, for `make detection-instructions`:
//! `valgrind --tool=callgrind` counts them the same on a busy or a quiet
//! machine, unlike time. Runs `assess` N times on one of the benchmark texts.
//!
//! `assess_instructions N prompt|BYTES`
#![allow(
    clippy::expect_used,
    reason = "a measurement aid with broken built-in packs should stop loudly"
)]

#[path = "../benches/support/texts.rs"]
mod texts;

use portcullis_policy::{builtin, Engine, Location};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(runs), Some(which)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: assess_instructions N prompt|BYTES");
        std::process::exit(2);
    };
    let runs: usize = runs.parse().expect("N is a number");
    let text = match which.as_str() {
        "prompt" => texts::prompt(),
        bytes => texts::document(bytes.parse().expect("BYTES is a number")),
    };
    let packs = builtin::packs().expect("built-in packs load");
    let engine = Engine::compile(&packs).expect("built-in packs compile");
    let mut findings = 0;
    for _ in 0..runs {
        findings += engine
            .assess(Location::Request, std::hint::black_box(&text))
            .findings
            .len();
    }
    println!("{findings} findings");
}
