//! Rebuild when the console build changes, or appears: release builds embed
//! `web/dist`, and a build made before `make web` must not keep the placeholder.

use std::path::Path;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let dist = Path::new("../../web/dist");
    if dist.exists() {
        println!("cargo:rerun-if-changed=../../web/dist");
    } else {
        // Changes when `make web` creates dist (cargo scans the folder).
        println!("cargo:rerun-if-changed=../../web");
    }
}
