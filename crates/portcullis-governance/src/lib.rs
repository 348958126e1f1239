//! Spend and usage control for the data plane: request/token rate limits and
//! budget ledgers. Each has an in-process back end (one gateway) and a Redis back
//! end (several replicas share one limit).

pub mod budget;
pub mod ratelimit;
pub mod shared;
