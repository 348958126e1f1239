//! Packs shipped inside the binary.

use crate::pack::{Pack, PackError};

/// (name, JSON) of every built-in pack.
pub const PACKS: &[(&str, &str)] = &[
    ("secrets", include_str!("../packs/secrets.json")),
    (
        "llm-critical-security",
        include_str!("../packs/llm-critical-security.json"),
    ),
    (
        "llm-compliance-gdpr",
        include_str!("../packs/llm-compliance-gdpr.json"),
    ),
];

/// Parses every built-in pack; a failure here is a bug caught by the tests.
pub fn packs() -> Result<Vec<Pack>, PackError> {
    PACKS
        .iter()
        .map(|(name, json)| Pack::from_json(name, json))
        .collect()
}
