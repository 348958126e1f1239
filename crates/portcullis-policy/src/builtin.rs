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
    (
        "llm-standard-security",
        include_str!("../packs/llm-standard-security.json"),
    ),
    (
        "mcp-advanced-security",
        include_str!("../packs/mcp-advanced-security.json"),
    ),
    (
        "mcp-encoding-detection",
        include_str!("../packs/mcp-encoding-detection.json"),
    ),
];

/// Parses every built-in pack; a failure here is a bug caught by the tests.
pub fn packs() -> Result<Vec<Pack>, PackError> {
    PACKS
        .iter()
        .map(|(name, json)| Pack::from_json(name, json))
        .collect()
}

/// The names of the built-in packs.
pub fn names() -> impl Iterator<Item = &'static str> {
    PACKS.iter().map(|(name, _)| *name)
}

/// The built-in packs with these names; an unknown name is an error naming it.
pub fn select(names: &[String]) -> Result<Vec<Pack>, String> {
    names
        .iter()
        .map(|name| match PACKS.iter().find(|(n, _)| n == name) {
            Some((n, json)) => Pack::from_json(n, json).map_err(|e| e.to_string()),
            None => Err(format!(
                "unknown policy {name:?} (built-in: {})",
                PACKS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
            )),
        })
        .collect()
}
