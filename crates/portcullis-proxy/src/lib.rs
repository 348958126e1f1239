//! The data plane: proxies that relay LLM API traffic.
//!
//! A proxy is compiled once into a [`runtime::ProxyRuntime`] (upstream address,
//! injected credential header, limits, metric handles) and published in an
//! atomically swapped map, so the request path takes no lock and reads no database
//! except for a caller key it has not seen in the last seconds.

pub mod a2a;
pub mod answer;
pub mod body;
pub mod channel_body;
pub(crate) mod coalesce;
pub mod engines;
pub mod error;
pub mod events;
pub mod exchange;
pub(crate) mod judge;
pub mod keys;
pub mod manager;
pub mod mcp;
pub mod metrics;
pub mod prompts;
pub mod relay;
pub mod runtime;
pub mod spend;
pub mod upstream;

pub use manager::{resolve_policies, DataPlane, PolicyLookupError, StartError};
