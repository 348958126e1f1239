//! Translation between the protocol eras, both ways.
//!
//! - A 2025-era server's answers made into what a 2026-07-28 client reads:
//!   every result names its `resultType`, cacheable results carry caching
//!   hints, and `server/discover` is answered from the server's `initialize`
//!   result.
//! - A 2025-era client's requests made into what a 2026-07-28 server reads:
//!   `initialize` answered from `server/discover`, the client's capabilities and
//!   identity put in every request's `_meta`, and results stripped of the
//!   stateless-only fields.

use super::{stateless, SESSION_VERSIONS};
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

/// The `initialize` result standing for a stateless server's `server/discover`
/// result, for a client that asked for `requested`: that version when the
/// gateway relays it, else the newest session version.
pub fn initialize_result(discover: &Value, requested: &str) -> Value {
    let version = SESSION_VERSIONS
        .into_iter()
        .find(|v| *v == requested)
        .unwrap_or(SESSION_VERSIONS[SESSION_VERSIONS.len() - 1]);
    let server_info = discover
        .pointer("/_meta/io.modelcontextprotocol~1serverInfo")
        .filter(|i| i.get("name").is_some_and(Value::is_string))
        .cloned()
        .unwrap_or_else(|| json!({"name": "mcp-server", "version": "unknown"}));
    let mut capabilities = discover
        .get("capabilities")
        .filter(|c| c.is_object())
        .cloned()
        .unwrap_or_else(|| json!({}));
    if let Value::Object(fields) = &mut capabilities {
        // Extensions (tasks among them) are negotiated per request in the
        // stateless era; a session client is not offered them.
        fields.remove("extensions");
    }
    let mut result = json!({
        "protocolVersion": version,
        "capabilities": capabilities,
        "serverInfo": server_info,
    });
    if let Some(instructions) = discover.get("instructions").filter(|i| i.is_string()) {
        result["instructions"] = instructions.clone();
    }
    result
}

/// What a session client declared at `initialize` and a stateless server needs
/// on every request: its capabilities and identity, as `_meta` entries, and a
/// log level.
pub fn client_meta(initialize_params: &Value) -> Value {
    let capabilities = initialize_params
        .get("capabilities")
        .filter(|c| c.is_object())
        .cloned()
        .unwrap_or_else(|| json!({}));
    let info = initialize_params
        .get("clientInfo")
        .filter(|i| i.is_object())
        .cloned()
        .unwrap_or_else(|| json!({"name": "mcp-client", "version": "unknown"}));
    // A session-era server sends log messages until the client sets a level;
    // a stateless one only when the request asks: ask for all of them.
    json!({
        stateless::META_CAPABILITIES: capabilities,
        "io.modelcontextprotocol/clientInfo": info,
        stateless::META_LOG_LEVEL: "debug",
    })
}

/// Makes a session client's request a stateless one, in place: the protocol
/// version and `client_meta` go into `params._meta` (keys the client set
/// itself are kept).
pub fn stateless_request(message: &mut Value, client_meta: &Value) {
    let Value::Object(fields) = message else {
        return;
    };
    let params = fields.entry("params").or_insert_with(|| json!({}));
    let Value::Object(params) = params else {
        return;
    };
    let meta = params.entry("_meta").or_insert_with(|| json!({}));
    let Value::Object(meta) = meta else {
        return;
    };
    meta.insert(
        stateless::META_VERSION.into(),
        Value::from(stateless::VERSIONS[0]),
    );
    if let Value::Object(entries) = client_meta {
        for (k, v) in entries {
            meta.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
}

/// Makes a stateless server's result one a session client reads, in place: the
/// stateless-only fields go. `Err` when the result asks the client for input
/// (`input_required`): a session client waits for server requests instead,
/// which a stateless server does not send.
pub fn downgrade_result(result: &mut Value) -> Result<(), &'static str> {
    let Value::Object(fields) = result else {
        return Ok(());
    };
    match fields.get("resultType").and_then(Value::as_str) {
        None | Some("complete") => {}
        Some("input_required") => {
            return Err("the server asked the client for input (elicitation, sampling or roots), which the gateway does not relay to clients of protocol 2025-11-25 and earlier");
        }
        Some(_) => return Err("the server answered a result type clients of protocol 2025-11-25 and earlier cannot read"),
    }
    for field in ["resultType", "ttlMs", "cacheScope"] {
        fields.remove(field);
    }
    Ok(())
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

    #[test]
    fn a_session_client_meets_a_stateless_server() {
        let discover = json!({"resultType": "complete", "supportedVersions": ["2026-07-28"],
            "capabilities": {"tools": {}, "extensions": {"io.modelcontextprotocol/tasks": {}}},
            "_meta": {"io.modelcontextprotocol/serverInfo": {"name": "new", "version": "2"}}, "ttlMs": 0, "cacheScope": "public"});
        let init = initialize_result(&discover, "2025-06-18");
        assert_eq!(
            init,
            json!({"protocolVersion": "2025-06-18", "capabilities": {"tools": {}},
            "serverInfo": {"name": "new", "version": "2"}})
        );
        assert_eq!(
            initialize_result(&discover, "2024-01-01")["protocolVersion"],
            "2025-11-25"
        );

        let meta = client_meta(
            &json!({"protocolVersion": "2025-11-25", "capabilities": {"elicitation": {}},
            "clientInfo": {"name": "ide", "version": "1"}}),
        );
        let mut call = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "x",
            "_meta": {"progressToken": 7}}});
        stateless_request(&mut call, &meta);
        assert_eq!(
            call["params"]["_meta"],
            json!({"progressToken": 7,
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {"elicitation": {}},
            "io.modelcontextprotocol/clientInfo": {"name": "ide", "version": "1"},
            "io.modelcontextprotocol/logLevel": "debug"})
        );
        let mut list = json!({"jsonrpc": "2.0", "id": 4, "method": "tools/list"});
        stateless_request(&mut list, &meta);
        assert_eq!(
            list["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"],
            "2026-07-28"
        );

        let mut done =
            json!({"tools": [], "resultType": "complete", "ttlMs": 5, "cacheScope": "public"});
        assert_eq!(downgrade_result(&mut done), Ok(()));
        assert_eq!(done, json!({"tools": []}));
        let mut asks = json!({"resultType": "input_required", "inputRequests": {}});
        assert!(downgrade_result(&mut asks).is_err());
    }
}
