//! Compiled policy engines, shared by every proxy and A2A agent that scans with
//! the same packs. An engine holds ~10 MB of automata; compiling it once per
//! distinct set of packs keeps memory flat as proxies are added, and a restart
//! with unchanged packs skips the compile.
//!
//! Held weakly: an engine lives as long as something uses it.

use portcullis_policy::engine::EngineError;
use portcullis_policy::{Engine, Pack};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};

static ENGINES: Mutex<Option<HashMap<[u8; 32], Weak<Engine>>>> = Mutex::new(None);

/// Run after every fresh compile (the binary hands freed scratch memory back to
/// the system there); set once at start.
static AFTER_COMPILE: OnceLock<fn()> = OnceLock::new();

/// Sets what runs after each fresh compile; only the first call counts.
pub fn after_compile(hook: fn()) {
    let _ = AFTER_COMPILE.set(hook);
}

/// The packs' identity: SHA-256 of their JSON, so an edited user pack is a new set.
fn fingerprint(packs: &[Pack]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for pack in packs {
        // Serialising plain data cannot fail; an empty entry would still differ
        // by position from any real pack.
        hasher.update(serde_json::to_vec(pack).unwrap_or_default());
        hasher.update([0]);
    }
    hasher.finalize().into()
}

/// The engine of `packs`: the one already compiled, or a new one.
pub fn shared(packs: &[Pack]) -> Result<Arc<Engine>, EngineError> {
    let (engine, compiled) = obtain(packs)?;
    if compiled {
        run_after_compile();
    }
    Ok(engine)
}

/// The engine of `packs`, and whether this call compiled it.
fn obtain(packs: &[Pack]) -> Result<(Arc<Engine>, bool), EngineError> {
    let key = fingerprint(packs);
    let cached = |engines: &mut Option<HashMap<[u8; 32], Weak<Engine>>>| {
        engines.as_ref()?.get(&key)?.upgrade()
    };
    if let Some(engine) = cached(&mut lock()) {
        return Ok((engine, false));
    }
    // Compiled outside the lock: two callers may both compile; either result
    // serves.
    let engine = Arc::new(Engine::compile(packs)?);
    let mut engines = lock();
    if let Some(existing) = cached(&mut engines) {
        return Ok((existing, true));
    }
    let map = engines.get_or_insert_with(HashMap::new);
    map.retain(|_, e| e.strong_count() > 0);
    map.insert(key, Arc::downgrade(&engine));
    Ok((engine, true))
}

/// Compiles `packs` only to learn whether they compile (validation, dry checks),
/// then hands the memory back as a kept engine's compile does.
pub fn check(packs: &[Pack]) -> Result<(), EngineError> {
    let compiled = Engine::compile(packs).map(drop);
    run_after_compile();
    compiled
}

fn run_after_compile() {
    if let Some(hook) = AFTER_COMPILE.get() {
        hook();
    }
}

fn lock() -> std::sync::MutexGuard<'static, Option<HashMap<[u8; 32], Weak<Engine>>>> {
    // The map holds only weak pointers: a poisoned lock left nothing half-done.
    ENGINES.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Built-in packs under names of this test's own, so no other test holds
    /// the same engines.
    fn packs(names: &[&str]) -> Vec<Pack> {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut packs =
            portcullis_policy::builtin::select(&names).unwrap_or_else(|e| panic!("{e}"));
        for p in &mut packs {
            p.name = format!("engines-test-{}", p.name);
        }
        packs
    }

    #[test]
    fn only_a_fresh_compile_reports_itself() {
        let (engine, compiled) =
            obtain(&packs(&["llm-compliance-gdpr"])).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            compiled,
            "the first request compiles (and the memory hook runs)"
        );
        let (again, compiled) =
            obtain(&packs(&["llm-compliance-gdpr"])).unwrap_or_else(|e| panic!("{e}"));
        assert!(Arc::ptr_eq(&engine, &again));
        assert!(!compiled, "a cache hit does not run the hook");
    }

    #[test]
    fn the_same_packs_share_one_engine_while_it_is_used() {
        let a = shared(&packs(&["secrets"])).unwrap_or_else(|e| panic!("{e}"));
        let b = shared(&packs(&["secrets"])).unwrap_or_else(|e| panic!("{e}"));
        assert!(Arc::ptr_eq(&a, &b));
        let other =
            shared(&packs(&["secrets", "llm-compliance-gdpr"])).unwrap_or_else(|e| panic!("{e}"));
        assert!(!Arc::ptr_eq(&a, &other));
        // An edited pack is another set.
        let mut edited = packs(&["secrets"]);
        edited[0].rules.truncate(1);
        let e = shared(&edited).unwrap_or_else(|e| panic!("{e}"));
        assert!(!Arc::ptr_eq(&a, &e));
        assert!(e.rule_count() < a.rule_count());
        // Once nothing holds it, it is dropped (the next caller compiles anew).
        let weak = Arc::downgrade(&a);
        drop((a, b));
        assert!(weak.upgrade().is_none());
    }
}
