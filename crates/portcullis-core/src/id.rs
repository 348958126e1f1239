//! Identifiers: time-ordered UUIDv7 strings, so primary-key indexes stay append-mostly.

/// An unguessable identifier: 24 alphanumerics from the OS's generator (about
/// 142 bits), for ids that grant access when presented.
pub fn unguessable() -> String {
    use rand::distributions::{Alphanumeric, DistString};
    Alphanumeric.sample_string(&mut rand::rngs::OsRng, 24)
}

pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// A UUIDv7 carrying `at` (millisecond precision) instead of the current time, for
/// records that should sort by when something happened rather than when written.
pub fn new_id_at(at: jiff::Timestamp) -> String {
    let secs = u64::try_from(at.as_second()).unwrap_or(0);
    let nanos = u32::try_from(at.subsec_nanosecond()).unwrap_or(0);
    let ts = uuid::Timestamp::from_unix(uuid::NoContext, secs, nanos);
    uuid::Uuid::new_v7(ts).to_string()
}
