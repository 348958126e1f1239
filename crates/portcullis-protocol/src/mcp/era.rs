//! Answers of a 2025-era server (sessions) made into what a 2026-07-28 client
//! (stateless) reads: every result names its `resultType`, cacheable results
//! carry caching hints, and `server/discover` is answered from the server's
//! `initialize` result.

use super::stateless;
use serde_json::{json, Map, Value};

/// Results a 2026-07-28 server marks with caching hints (`CacheableResult`).
fn cacheable(method: &str) -> bool {
    matches!(
        method,
        "server/discover"
            | "tools/list"
            | "prompts/list"
            | "resources/list"
            | "resources/templates/list"
            | "resources/read"
    )
}

/// Makes the result of `method` from a 2025-era server a valid 2026-07-28
/// result, in place: `resultType: "complete"` (an older server's results are
/// always complete), and for cacheable results `ttlMs: 0` (re-fetch every
/// time: an older server gave no hint) and `cacheScope: "private"`.
pub fn upgrade_result(method: &str, result: &mut Value) {
    let Value::Object(fields) = result else {
        return;
    };
    fields
        .entry("resultType")
        .or_insert_with(|| Value::from("complete"));
    if cacheable(method) {
        fields.entry("ttlMs").or_insert_with(|| Value::from(0));
        fields
            .entry("cacheScope")
            .or_insert_with(|| Value::from("private"));
    }
}

/// The `server/discover` result standing for a 2025-era server's `initialize`
/// result: its capabilities and instructions, its `serverInfo` in `_meta`,
/// and the stateless versions the gateway speaks to the client.
pub fn discover_result(initialize: &Value) -> Value {
    let mut result = Map::new();
    result.insert("resultType".into(), Value::from("complete"));
    result.insert("supportedVersions".into(), json!(stateless::VERSIONS));
    let capabilities = initialize
        .get("capabilities")
        .filter(|c| c.is_object())
        .cloned()
        .unwrap_or_else(|| json!({}));
    result.insert("capabilities".into(), server_capabilities(capabilities));
    if let Some(instructions) = initialize.get("instructions").filter(|i| i.is_string()) {
        result.insert("instructions".into(), instructions.clone());
    }
    result.insert("ttlMs".into(), Value::from(0));
    result.insert("cacheScope".into(), Value::from("private"));
    if let Some(info) = initialize.get("serverInfo").filter(|i| i.is_object()) {
        result.insert(
            "_meta".into(),
            json!({"io.modelcontextprotocol/serverInfo": info}),
        );
    }
    Value::Object(result)
}

/// A 2025 server's capabilities as the 2026-07-28 schema has them: `tasks`
/// moved to an extension, the rest is unchanged. Unknown keys stay (the set is
/// open).
fn server_capabilities(mut capabilities: Value) -> Value {
    if let Value::Object(fields) = &mut capabilities {
        fields.remove("tasks");
    }
    capabilities
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_gain_their_type_and_cache_hints() {
        let mut list = json!({"tools": []});
        upgrade_result("tools/list", &mut list);
        assert_eq!(
            list,
            json!({"tools": [], "resultType": "complete", "ttlMs": 0, "cacheScope": "private"})
        );
        let mut call = json!({"content": [], "resultType": "input_required"});
        upgrade_result("tools/call", &mut call);
        assert_eq!(call, json!({"content": [], "resultType": "input_required"}));
        let mut not_an_object = json!(null);
        upgrade_result("tools/call", &mut not_an_object);
        assert!(not_an_object.is_null());
    }

    #[test]
    fn discover_stands_for_initialize() {
        let init = json!({"protocolVersion": "2025-11-25", "capabilities": {"tools": {"listChanged": true}, "tasks": {}},
            "serverInfo": {"name": "files", "version": "1.2"}, "instructions": "Use read_file."});
        let d = discover_result(&init);
        assert_eq!(d["supportedVersions"], json!(["2026-07-28"]));
        assert_eq!(d["capabilities"], json!({"tools": {"listChanged": true}}));
        assert_eq!(
            d["_meta"]["io.modelcontextprotocol/serverInfo"]["name"],
            "files"
        );
        assert_eq!(d["instructions"], "Use read_file.");
        assert_eq!(
            (d["resultType"].as_str(), d["ttlMs"].as_u64()),
            (Some("complete"), Some(0))
        );
    }
}
