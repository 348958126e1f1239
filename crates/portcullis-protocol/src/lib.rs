//! Wire formats of the AI APIs Portcullis relays, free of networking: which
//! endpoint a request targets, what it asks for, how its stream is framed, where
//! the usage is, and how errors look to each provider's clients.

pub mod a2a;
pub mod answer;
pub mod content;
pub mod endpoint;
pub mod error;
pub mod mcp;
pub mod request;
pub mod sse;
pub mod stream;
pub mod system_prompt;
pub mod usage;

pub use endpoint::{Dialect, Endpoint};
pub use error::ErrorKind;
pub use usage::Usage;
