//! What words' character n-grams add up to, remembered per thread. A word's
//! 4-grams depend on the word alone, and most words of a text were met before
//! (`the`, `summarise`, `instructions`): one probe here replaces hashing and
//! looking up a dozen n-grams. Exact: a hit compares the word itself, not only
//! its hash, so a score never depends on what was scored before.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};

/// Longer words are not remembered: they are rare, and the slots stay small.
pub(super) const MAX_WORD: usize = 16;

/// Slots per thread (40 bytes each: 160 KiB, made on a thread's first score).
const SLOTS: usize = 4096;

/// A word's n-gram sums: plain weights, shape-tagged weights, n-grams.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Sums {
    pub plain: i32,
    pub shaped: i32,
    pub grams: u16,
}

#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    /// The model the sums were taken with; 0 for an empty slot.
    model: u64,
    shape: u8,
    len: u8,
    word: [u8; MAX_WORD],
    sums: Sums,
}

#[derive(Debug)]
pub(super) struct WordCache {
    slots: Box<[Slot]>,
}

/// One key of the cache: the model, the text's shape and the word.
#[derive(Debug, Clone, Copy)]
pub(super) struct Key<'a> {
    pub model: u64,
    pub shape: u8,
    pub word: &'a [u8],
    /// The word's hash, which the features already computed.
    pub hash: u64,
}

impl Key<'_> {
    fn slot(&self) -> usize {
        let mixed = (self.hash ^ u64::from(self.shape)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        // The top bits of the product are the best mixed; SLOTS is a power of two.
        (mixed >> (64 - SLOTS.trailing_zeros())) as usize
    }
}

impl Default for WordCache {
    fn default() -> WordCache {
        WordCache {
            slots: vec![Slot::default(); SLOTS].into_boxed_slice(),
        }
    }
}

impl WordCache {
    pub fn get(&self, key: Key<'_>) -> Option<Sums> {
        let slot = self.slots.get(key.slot())?;
        let hit = slot.model == key.model
            && slot.shape == key.shape
            && slot.word.get(..usize::from(slot.len)) == Some(key.word);
        hit.then_some(slot.sums)
    }

    pub fn put(&mut self, key: Key<'_>, sums: Sums) {
        let (Some(slot), Ok(len)) = (self.slots.get_mut(key.slot()), u8::try_from(key.word.len()))
        else {
            return;
        };
        let Some(word) = slot.word.get_mut(..key.word.len()) else {
            return;
        };
        word.copy_from_slice(key.word);
        slot.len = len;
        slot.model = key.model;
        slot.shape = key.shape;
        slot.sums = sums;
    }
}

thread_local! {
    static CACHE: RefCell<Option<WordCache>> = const { RefCell::new(None) };
}

/// Runs `f` with this thread's cache, or with none if the cache is in use
/// (a scorer never nests) or the thread is going away. `f` runs once.
pub(super) fn with_cache<R>(mut f: impl FnMut(Option<&mut WordCache>) -> R) -> R {
    CACHE
        .try_with(|cell| {
            let mut slot = cell.try_borrow_mut().ok()?;
            Some(f(Some(slot.get_or_insert_with(WordCache::default))))
        })
        .ok()
        .flatten()
        .unwrap_or_else(|| f(None))
}

/// A number no other model of this process has: what the cache keys sums by.
pub(super) fn next_model_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(model: u64, shape: u8, word: &[u8]) -> Key<'_> {
        Key {
            model,
            shape,
            word,
            hash: word
                .iter()
                .fold(7u64, |h, &b| h.wrapping_mul(31) ^ u64::from(b)),
        }
    }

    #[test]
    fn remembers_by_model_shape_and_word() {
        let mut cache = WordCache::default();
        let sums = Sums {
            plain: -5,
            shaped: 9,
            grams: 4,
        };
        cache.put(key(1, 0, b"word"), sums);
        assert_eq!(cache.get(key(1, 0, b"word")), Some(sums));
        assert_eq!(cache.get(key(2, 0, b"word")), None);
        assert_eq!(cache.get(key(1, 1, b"word")), None);
        assert_eq!(cache.get(key(1, 0, b"wore")), None);
    }

    #[test]
    fn a_word_with_the_same_hash_is_not_taken_for_another() {
        let mut cache = WordCache::default();
        let sums = Sums {
            plain: 1,
            shaped: 2,
            grams: 3,
        };
        cache.put(key(1, 0, b"first"), sums);
        let forged = Key {
            word: b"other",
            ..key(1, 0, b"first")
        };
        assert_eq!(cache.get(forged), None);
    }

    #[test]
    fn nested_use_gets_no_cache_instead_of_panicking() {
        let inner = with_cache(|outer| {
            assert!(outer.is_some());
            with_cache(|inner| inner.is_some())
        });
        assert!(!inner);
    }
}
