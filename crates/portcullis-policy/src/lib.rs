//! The detection engine: turns text into findings. No I/O: policies arrive as data,
//! text arrives as `&str`, findings leave as values.

pub mod builtin;
mod closers;
pub mod engine;
mod literals;
mod lowercase;
pub mod memo;
pub mod normalize;
pub mod pack;
pub mod redact;
pub mod scorer;
pub mod stream_scan;
pub mod validators;
pub mod verdict;

pub use engine::{Assessment, Engine, Finding, Scanned};
pub use pack::{Action, Location, Pack, Severity};
pub use verdict::{check_examples, Verdict};
