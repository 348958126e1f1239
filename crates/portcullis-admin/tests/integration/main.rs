//! Admin API through the real router (in-process, `oneshot`), on a real SQLite store.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed step should stop the test"
)]

mod support;

mod access;
mod alerts;
mod audit;
mod auth;
mod budgets;
mod console;
mod input;
mod mcp;
mod policies;
mod rate_limits;
mod resources;
mod system_prompts;
