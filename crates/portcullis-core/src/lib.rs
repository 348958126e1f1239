//! Portcullis core: the domain vocabulary shared by every other crate.
//!
//! Nothing here opens a socket or a database. Secrets live in types whose `Debug`
//! never prints them, so a stray `tracing` field cannot leak one.

pub mod alert;
pub mod api_key;
pub mod audit;
pub mod budget;
pub mod clock;
pub mod drain;
pub mod flow;
pub mod id;
pub mod mcp;
pub mod model;
pub mod net;
pub mod password;
pub mod pricing;
pub mod proxy;
pub mod role;
pub mod secret;
pub mod telemetry;

pub use clock::{Clock, ManualClock, SystemClock};
pub use role::Role;
pub use secret::{MasterKey, SecretString};
