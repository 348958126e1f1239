//! Identifiers: time-ordered UUIDv7 strings, so primary-key indexes stay append-mostly.

pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}
