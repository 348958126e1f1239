//! Findings remembered for texts met again. A chat client re-sends its system
//! prompt and whole history with every turn, so without this an agent's 30th
//! request rescans the 29 turns already passed, and a conversation costs the
//! square of its length.
//!
//! A hit needs the same location and the same text, compared in full: no hash
//! collision can pass one text off as another. A text is kept from its second
//! sighting on (the first leaves only its hash), so traffic that never repeats
//! itself costs a hash per text, not a copy. Memory is bounded in bytes by two
//! generations: when the current one is full it becomes the previous one and the
//! old previous one is dropped, so texts still in use survive (a hit in the
//! previous generation moves the entry forward) and the rest age out.

use crate::engine::Finding;
use crate::pack::Location;
use std::collections::hash_map::RandomState;
use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex, PoisonError};

/// Texts shorter than this are cheap to scan and too many to be worth keeping.
pub const MIN_TEXT_BYTES: usize = 64;
/// Texts longer than this are scanned every time (a big one-off paste).
pub const MAX_TEXT_BYTES: usize = 64 * 1024;
/// Text bytes one generation holds (two generations: at most twice this).
pub const GENERATION_BYTES: usize = 2 * 1024 * 1024;
/// Hashes of texts seen once that one generation holds.
pub const GENERATION_SIGHTINGS: usize = 16 * 1024;

struct Entry {
    location: Location,
    text: Box<str>,
    findings: Arc<[Finding]>,
}

#[derive(Default)]
struct Generations {
    current: HashMap<u64, Entry>,
    previous: HashMap<u64, Entry>,
    /// Text bytes in `current`.
    bytes: usize,
    /// Keys of texts seen once, current and previous generation.
    sighted: HashSet<u64>,
    sighted_before: HashSet<u64>,
}

impl Generations {
    fn take(
        map: &mut HashMap<u64, Entry>,
        key: u64,
        location: Location,
        text: &str,
    ) -> Option<Entry> {
        let same = map
            .get(&key)
            .is_some_and(|e| e.location == location && &*e.text == text);
        same.then(|| map.remove(&key)).flatten()
    }

    /// Notes a sighting of `key`; true when it was seen before.
    fn sighted_again(&mut self, key: u64) -> bool {
        if self.sighted.contains(&key) || self.sighted_before.contains(&key) {
            return true;
        }
        if self.sighted.len() >= GENERATION_SIGHTINGS {
            self.sighted_before = std::mem::take(&mut self.sighted);
        }
        self.sighted.insert(key);
        false
    }

    fn insert(&mut self, key: u64, entry: Entry) {
        if self.bytes + entry.text.len() > GENERATION_BYTES {
            self.previous = std::mem::take(&mut self.current);
            self.bytes = 0;
        }
        self.bytes += entry.text.len();
        if let Some(old) = self.current.insert(key, entry) {
            self.bytes -= old.text.len();
        }
    }
}

/// What the memo knows of a text.
enum Lookup {
    Remembered(Arc<[Finding]>),
    /// Seen before but not kept yet: scan it and keep it.
    SeenBefore,
    /// Never seen: scan it, keep only its hash.
    FirstSighting,
}

/// The remembered findings of one engine (they are only valid for it).
#[derive(Default)]
pub struct Memo {
    hasher: RandomState,
    generations: Mutex<Generations>,
}

/// Sizes only: the texts are callers' prompts and may hold secrets.
impl std::fmt::Debug for Memo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Memo")
            .field("bytes_held", &self.bytes_held())
            .finish_non_exhaustive()
    }
}

impl Memo {
    /// Findings of `text` at `location`: remembered, or computed by `scan` and
    /// remembered when the text is of a size worth keeping. The flag says which.
    pub fn findings(
        &self,
        location: Location,
        text: &str,
        scan: impl FnOnce() -> Vec<Finding>,
    ) -> (Arc<[Finding]>, bool) {
        if !(MIN_TEXT_BYTES..=MAX_TEXT_BYTES).contains(&text.len()) {
            return (scan().into(), false);
        }
        let key = self.hasher.hash_one((location, text));
        match self.lookup(key, location, text) {
            Lookup::Remembered(found) => return (found, true),
            // Scanned outside the lock: other requests are not held up meanwhile.
            Lookup::FirstSighting => return (scan().into(), false),
            Lookup::SeenBefore => {}
        }
        let findings: Arc<[Finding]> = scan().into();
        self.lock().insert(
            key,
            Entry {
                location,
                text: text.into(),
                findings: findings.clone(),
            },
        );
        (findings, false)
    }

    fn lookup(&self, key: u64, location: Location, text: &str) -> Lookup {
        let mut generations = self.lock();
        if let Some(entry) = generations.current.get(&key) {
            if entry.location == location && &*entry.text == text {
                return Lookup::Remembered(entry.findings.clone());
            }
            // Another text under this key: scan, and keep this one instead.
            return Lookup::SeenBefore;
        }
        // Still in use: carried into the current generation.
        if let Some(entry) = Generations::take(&mut generations.previous, key, location, text) {
            let findings = entry.findings.clone();
            generations.insert(key, entry);
            return Lookup::Remembered(findings);
        }
        if generations.sighted_again(key) {
            Lookup::SeenBefore
        } else {
            Lookup::FirstSighting
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Generations> {
        // The maps are consistent between statements; a panic elsewhere while
        // the lock was held cannot leave them half-updated in a way that matters.
        self.generations
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Text bytes held (both generations), for tests and diagnostics.
    pub fn bytes_held(&self) -> usize {
        let generations = self.lock();
        generations
            .current
            .values()
            .chain(generations.previous.values())
            .map(|e| e.text.len())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    /// A scan that finds nothing and counts itself.
    fn counted(scans: &Cell<usize>) -> Vec<Finding> {
        scans.set(scans.get() + 1);
        Vec::new()
    }

    fn text(i: usize) -> String {
        format!("{i:08} {}", "a remembered text of some length ".repeat(3))
    }

    #[test]
    fn a_text_seen_again_is_not_scanned_again() {
        let memo = Memo::default();
        let scans = Cell::new(0);
        let scan = || counted(&scans);
        // Kept from the second sighting: the third is not scanned.
        let remembered: Vec<bool> = (0..4)
            .map(|_| memo.findings(Location::Request, &text(1), scan).1)
            .collect();
        assert_eq!(remembered, [false, false, true, true]);
        assert_eq!(scans.get(), 2);
        // Another location or another text is another scan.
        memo.findings(Location::Response, &text(1), scan);
        memo.findings(Location::Request, &text(2), scan);
        assert_eq!(scans.get(), 4);
    }

    #[test]
    fn short_and_huge_texts_are_always_scanned() {
        let memo = Memo::default();
        let scans = Cell::new(0);
        let scan = || counted(&scans);
        let huge = "x".repeat(MAX_TEXT_BYTES + 1);
        for _ in 0..2 {
            memo.findings(Location::Request, "hi", scan);
            memo.findings(Location::Request, &huge, scan);
        }
        assert_eq!(scans.get(), 4);
        assert_eq!(memo.bytes_held(), 0);
    }

    #[test]
    fn memory_stays_bounded_and_texts_in_use_survive() {
        let memo = Memo::default();
        let kept = text(0);
        let scans = Cell::new(0);
        let scan = || counted(&scans);
        memo.findings(Location::Request, &kept, scan);
        memo.findings(Location::Request, &kept, scan);
        let each = text(1).len();
        for i in 1..(4 * GENERATION_BYTES / each) {
            // Every text twice, so each is kept.
            memo.findings(Location::Request, &text(i), Vec::new);
            memo.findings(Location::Request, &text(i), Vec::new);
            // Used now and then, as a system prompt is on every request.
            if i % 1000 == 0 {
                memo.findings(Location::Request, &kept, scan);
            }
        }
        assert!(memo.bytes_held() > GENERATION_BYTES / 2);
        assert!(memo.bytes_held() <= 2 * GENERATION_BYTES);
        assert_eq!(scans.get(), 2, "the text in use was dropped");
        // An old text that was not used again has aged out.
        memo.findings(Location::Request, &text(1), scan);
        assert_eq!(scans.get(), 3, "an unused text was kept");
    }

    #[test]
    fn debug_output_never_shows_a_text() {
        let memo = Memo::default();
        let secret = "my password is hunter2-hunter2, please keep it out of every log line";
        for _ in 0..3 {
            memo.findings(Location::Request, secret, Vec::new);
        }
        assert!(memo.bytes_held() > 0);
        assert!(!format!("{memo:?}").contains("hunter2"));
    }

    #[test]
    fn texts_seen_once_are_not_kept() {
        let memo = Memo::default();
        for i in 0..(4 * GENERATION_SIGHTINGS) {
            memo.findings(Location::Request, &text(i), Vec::new);
        }
        assert_eq!(memo.bytes_held(), 0);
        let generations = memo.lock();
        assert!(
            generations.sighted.len() + generations.sighted_before.len()
                <= 2 * GENERATION_SIGHTINGS
        );
    }
}
