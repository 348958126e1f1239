//! Handlers of the admin API, one module per resource.

pub mod a2a_agents;
pub mod alerts;
pub mod audit;
pub mod auth;
pub mod budgets;
pub mod config;
pub mod credentials;
pub mod events;
pub mod groups;
pub mod keys;
pub mod live;
pub mod mcp_scans;
pub mod mcp_tools;
pub mod policies;
pub mod pricing;
pub mod proxies;
pub mod stats;
pub mod system;
pub mod system_prompts;
pub mod usage;
pub mod users;

use crate::error::ApiError;

/// Names: 1 to 64 characters of letters, digits, space and `._-@`.
pub(crate) fn check_name(field: &str, value: &str) -> Result<(), ApiError> {
    let ok = !value.trim().is_empty()
        && value.len() <= 64
        && value.trim() == value
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || " ._-@".contains(c));
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "{field}: must be 1-64 characters of letters, digits, spaces and . _ - @, without leading or trailing spaces"
        )))
    }
}

/// Records declared in the configuration file change only there.
/// Rate limits are positive whole numbers (a negative or fractional one is already
/// refused by the JSON reader).
pub(crate) fn check_rate_limits(
    limits: &portcullis_core::model::RateLimits,
) -> Result<(), ApiError> {
    match limits.problems().first() {
        Some(problem) => Err(ApiError::bad_request(format!("rate_limits.{problem}"))),
        None => Ok(()),
    }
}

pub(crate) fn api_managed(managed_by: portcullis_core::model::ManagedBy) -> Result<(), ApiError> {
    match managed_by {
        portcullis_core::model::ManagedBy::Api => Ok(()),
        portcullis_core::model::ManagedBy::File => Err(ApiError::new(
            crate::error::ErrorCode::Conflict,
            "this record is declared in the configuration file; change it there and reload",
        )),
    }
}
