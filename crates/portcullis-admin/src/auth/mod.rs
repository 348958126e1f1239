//! Who is calling the admin API, and may they?

mod caller;
mod limiter;
mod tokens;

pub use caller::{authorize, Caller, CallerKind};
pub use limiter::LoginLimiter;
pub use tokens::{Claims, TokenError, TokenSigner};
