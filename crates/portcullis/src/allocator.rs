//! glibc's allocator, tuned for a long-running server before it starts.
//!
//! glibc keeps freed memory inside its arenas: the 7 MiB argon2 block of every
//! login and the scratch space of compiling a policy engine would otherwise stay
//! resident for good, and every tokio worker gets an arena of its own. A fixed mmap
//! threshold returns large blocks to the OS when freed, and two arenas bound the
//! fragmentation (measured: idle RSS with the benchmark's proxies 53 -> 38 MB).
//!
//! The settings are glibc tunables, which glibc reads only when a process starts,
//! so `serve` re-executes itself once with them set. Nothing changes when the
//! caller set `GLIBC_TUNABLES` already, off glibc, or if the re-exec fails.

/// The tunables `serve` runs with.
pub const TUNABLES: &str =
    "glibc.malloc.mmap_threshold=262144:glibc.malloc.trim_threshold=1048576:glibc.malloc.arena_max=2";

/// Re-executes the current process with [`TUNABLES`]; returns only when it did not
/// (already tuned, not glibc, or the exec failed).
pub fn tune_and_reexec() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::os::unix::process::CommandExt;
        if std::env::var_os("GLIBC_TUNABLES").is_some() {
            return;
        }
        let Ok(exe) = std::env::current_exe() else {
            return;
        };
        let mut args = std::env::args_os();
        let argv0 = args.next().unwrap_or_else(|| exe.clone().into_os_string());
        let error = std::process::Command::new(&exe)
            .arg0(argv0)
            .args(args)
            .env("GLIBC_TUNABLES", TUNABLES)
            .exec();
        // Still here: run untuned rather than not at all.
        eprintln!("note: running without allocator tuning ({error})");
    }
}

/// Hands the pages glibc holds free back to the system (`malloc_trim(0)`). glibc
/// returns memory only from the top of an arena, so the scratch space of
/// compiling a policy engine, freed below the engine's live automata, would stay
/// resident (measured: 6 MB of the benchmark's idle RSS). Called after each
/// compile, which is rare (a policy load, or the first message an engine is
/// compiled for), never per request: it briefly locks each arena in turn.
pub fn release_freed() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[allow(unsafe_code, reason = "the one allocator call; see the SAFETY note")]
    // SAFETY: `malloc_trim` takes no pointers and touches only glibc's own free
    // lists, under the arenas' locks; it is safe to call from any thread.
    unsafe {
        libc::malloc_trim(0);
    }
}
