//! The Redis back end against the Redis on 127.0.0.1:6379 (`make services`).
//! Each test uses its own key prefix so parallel runs do not meet.

mod redis_limits;
