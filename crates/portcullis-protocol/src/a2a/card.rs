//! Protocol versions, and the card as the gateway serves it.
//!
//! An agent publishes a v0.3 card (`url`), a v1.0 card (`supportedInterfaces`), or
//! both at once (the a2a-sdk 1.x servers merge the two shapes). The gateway serves
//! the shape the agent published, pointing at itself, or exactly one shape when
//! the caller names a version in the `A2A-Version` header: a v1.0 client then gets
//! a card that is valid v1.0 and nothing else, a v0.3 client a valid v0.3 card.

use serde_json::{json, Map, Value};

/// The request header that names the protocol version (v1.0; absent means 0.3).
pub const VERSION_HEADER: &str = "a2a-version";
/// A2A's "version not supported" JSON-RPC error code (v1.0).
pub const VERSION_NOT_SUPPORTED: i64 = -32009;

/// The protocol versions the gateway relays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtocolVersion {
    V03,
    V10,
}

impl ProtocolVersion {
    /// The version an `A2A-Version` value names, by major.minor (the patch is
    /// ignored); absent or empty is 0.3, as the specification says. `None`: a
    /// version the gateway does not speak.
    pub fn from_header(value: Option<&str>) -> Option<Self> {
        let value = value.map(str::trim).unwrap_or("");
        if value.is_empty() {
            return Some(Self::V03);
        }
        let mut numbers = value.split('.');
        let major: u32 = numbers.next()?.parse().ok()?;
        let minor: u32 = numbers.next().unwrap_or("0").parse().ok()?;
        if let Some(patch) = numbers.next() {
            patch.parse::<u32>().ok()?;
        }
        if numbers.next().is_some() {
            return None;
        }
        match (major, minor) {
            (0, 3) => Some(Self::V03),
            (1, 0) => Some(Self::V10),
            _ => None,
        }
    }

    /// major.minor, as cards and headers write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V03 => "0.3",
            Self::V10 => "1.0",
        }
    }

    fn matches(self, version: &str) -> bool {
        Self::from_header(Some(version)) == Some(self) && !version.trim().is_empty()
    }
}

/// The shape of card to serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CardView {
    /// The shape(s) the agent published.
    AsPublished,
    /// Only the shape of this version.
    Only(ProtocolVersion),
}

fn is_jsonrpc(interface: &Value) -> bool {
    interface
        .get("protocolBinding")
        .or_else(|| interface.get("transport"))
        .and_then(Value::as_str)
        .is_some_and(|b| b.eq_ignore_ascii_case("JSONRPC"))
}

/// The agent's JSON-RPC endpoint for a request of `version`: the v1.0 interface
/// with a JSON-RPC binding of that version, else the v0.3 `url` for 0.3, else the
/// first JSON-RPC interface (the first interface when none says its binding).
pub fn jsonrpc_url(card: &Value, version: ProtocolVersion) -> Option<&str> {
    let interfaces = card
        .get("supportedInterfaces")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    fn url(i: &Value) -> Option<&str> {
        i.get("url").and_then(Value::as_str)
    }
    let same_version = interfaces.iter().find(|i| {
        is_jsonrpc(i)
            && i.get("protocolVersion")
                .and_then(Value::as_str)
                .is_some_and(|v| version.matches(v))
    });
    if let Some(u) = same_version.and_then(url) {
        return Some(u);
    }
    if let (ProtocolVersion::V03, Some(u)) = (version, card.get("url").and_then(Value::as_str)) {
        return Some(u);
    }
    interfaces
        .iter()
        .find(|i| is_jsonrpc(i))
        .or_else(|| interfaces.first())
        .and_then(url)
        .or_else(|| card.get("url").and_then(Value::as_str))
}

/// Every endpoint the gateway may send a request of some version to.
pub fn jsonrpc_urls(card: &Value) -> Vec<&str> {
    let mut urls: Vec<&str> = Vec::new();
    for version in [ProtocolVersion::V03, ProtocolVersion::V10] {
        if let Some(u) = jsonrpc_url(card, version) {
            if !urls.contains(&u) {
                urls.push(u);
            }
        }
    }
    urls
}

/// The protocol versions of the agent's JSON-RPC endpoints, in the card's order
/// (each once, as the card writes it): v1.0 interfaces, then the v0.3 `url`.
fn jsonrpc_versions(card: &Value) -> Vec<String> {
    let mut versions: Vec<String> = Vec::new();
    // "0.3" and "0.3.0" are one version; unknown versions are kept as written.
    let key = |v: &str| {
        ProtocolVersion::from_header(Some(v))
            .map_or_else(|| v.to_owned(), |p| p.as_str().to_owned())
    };
    let mut add = |v: &str| {
        if !versions.iter().any(|seen| key(seen) == key(v)) {
            versions.push(v.to_owned());
        }
    };
    if let Some(list) = card.get("supportedInterfaces").and_then(Value::as_array) {
        let jsonrpc: Vec<&Value> = list.iter().filter(|i| is_jsonrpc(i)).collect();
        let chosen = if jsonrpc.is_empty() {
            list.iter().take(1).collect()
        } else {
            jsonrpc
        };
        for i in chosen {
            add(i
                .get("protocolVersion")
                .and_then(Value::as_str)
                .unwrap_or("1.0"));
        }
    }
    if card.get("url").is_some() {
        add(legacy_version(card));
    }
    versions
}

/// A v0.3 card's `protocolVersion`, `0.3.0` when it has none.
fn legacy_version(card: &Value) -> &str {
    card.get("protocolVersion")
        .and_then(Value::as_str)
        .filter(|v| ProtocolVersion::from_header(Some(v)) == Some(ProtocolVersion::V03))
        .unwrap_or("0.3.0")
}

/// The name of the gateway's security scheme in served cards.
pub const GATEWAY_SCHEME: &str = "portcullis";
const SCHEME_DESCRIPTION: &str = "A Portcullis API key with the a2a scope";

/// Members only a v0.3 card has.
const V03_ONLY: [&str; 6] = [
    "url",
    "preferredTransport",
    "protocolVersion",
    "additionalInterfaces",
    "security",
    "supportsAuthenticatedExtendedCard",
];
/// Members only a v1.0 card has.
const V10_ONLY: [&str; 2] = ["supportedInterfaces", "securityRequirements"];

/// The card as the gateway serves it: every JSON-RPC endpoint replaced by
/// `gateway_url` (one per protocol version the agent speaks; other bindings are
/// not relayed), the agent's security schemes replaced by the gateway's (a bearer
/// Portcullis key; the agent's own credential is the gateway's business), no
/// signatures (they would not match); the rest unchanged.
pub fn rewrite_card(card: &Value, gateway_url: &str, view: CardView) -> Value {
    let mut out = card.clone();
    let versions = jsonrpc_versions(card);
    let legacy = legacy_version(card).to_owned();
    let Some(obj) = out.as_object_mut() else {
        return out;
    };
    let published_v10 = obj.contains_key("supportedInterfaces");
    let published_v03 = obj.contains_key("url");
    let (v03, v10) = match view {
        CardView::AsPublished => (published_v03, published_v10),
        CardView::Only(ProtocolVersion::V03) => (true, false),
        CardView::Only(ProtocolVersion::V10) => (false, true),
    };
    for key in V03_ONLY.iter().chain(&V10_ONLY) {
        obj.remove(*key);
    }
    obj.remove("signatures");
    let mut scheme = Map::new();
    if v10 {
        let mut interfaces: Vec<Value> = versions
            .iter()
            .map(
                |v| json!({"url": gateway_url, "protocolBinding": "JSONRPC", "protocolVersion": v}),
            )
            .collect();
        if interfaces.is_empty() {
            interfaces.push(
                json!({"url": gateway_url, "protocolBinding": "JSONRPC", "protocolVersion": "1.0"}),
            );
        }
        obj.insert("supportedInterfaces".into(), Value::Array(interfaces));
        obj.insert(
            "securityRequirements".into(),
            json!([{"schemes": {GATEWAY_SCHEME: {"list": []}}}]),
        );
        scheme.insert(
            "httpAuthSecurityScheme".into(),
            json!({"scheme": "Bearer", "description": SCHEME_DESCRIPTION}),
        );
    }
    if v03 {
        obj.insert("url".into(), Value::from(gateway_url));
        obj.insert("preferredTransport".into(), Value::from("JSONRPC"));
        obj.insert("protocolVersion".into(), Value::from(legacy));
        if card.get("additionalInterfaces").is_some() {
            obj.insert(
                "additionalInterfaces".into(),
                json!([{"url": gateway_url, "transport": "JSONRPC"}]),
            );
        }
        obj.insert("security".into(), json!([{GATEWAY_SCHEME: []}]));
        scheme.insert("type".into(), Value::from("http"));
        scheme.insert("scheme".into(), Value::from("bearer"));
        scheme.insert("description".into(), Value::from(SCHEME_DESCRIPTION));
    }
    obj.insert(
        "securitySchemes".into(),
        json!({GATEWAY_SCHEME: Value::Object(scheme)}),
    );
    // The agent's per-skill requirements name schemes the served card no longer has.
    if let Some(Value::Array(skills)) = obj.get_mut("skills") {
        for skill in skills.iter_mut().filter_map(Value::as_object_mut) {
            skill.remove("security");
            skill.remove("securityRequirements");
        }
    }
    // The gateway serves no authenticated extended card.
    if let Some(Value::Object(caps)) = obj.get_mut("capabilities") {
        caps.remove("extendedAgentCard");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shared v0.3 card with security of its own and an extended card.
    fn v03() -> Value {
        let mut card = crate::a2a::fixtures::v03();
        card["securitySchemes"] = json!({"k": {"type": "apiKey", "in": "header", "name": "x-k"}});
        card["security"] = json!([{"k": []}]);
        card["supportsAuthenticatedExtendedCard"] = json!(true);
        card["skills"] = json!([{"id": "echo", "name": "Echo", "security": [{"k": []}]}]);
        card
    }

    /// The shared v1.0 card with a v0.3 interface, security and a signature.
    fn v10() -> Value {
        let mut card = crate::a2a::fixtures::v10();
        if let Some(list) = card["supportedInterfaces"].as_array_mut() {
            list.push(json!({"url": "http://127.0.0.1:9999/old", "protocolBinding": "JSONRPC", "protocolVersion": "0.3"}));
        }
        card["capabilities"] = json!({"extendedAgentCard": true});
        card["securitySchemes"] =
            json!({"k": {"apiKeySecurityScheme": {"location": "header", "name": "x-k"}}});
        card["securityRequirements"] = json!([{"schemes": {"k": {"list": []}}}]);
        card["signatures"] = json!([{"protected": "x", "signature": "y"}]);
        card
    }

    /// What an a2a-sdk 1.x server publishes: both shapes merged.
    fn merged() -> Value {
        let mut card = v10();
        for (k, v) in v03().as_object().into_iter().flatten() {
            if !card.as_object().is_some_and(|c| c.contains_key(k)) {
                card[k] = v.clone();
            }
        }
        card
    }

    const GW: &str = "http://gw:8080/a2a/echo";

    #[test]
    fn versions_are_read_by_major_and_minor() {
        use ProtocolVersion::*;
        for (header, want) in [
            (None, Some(V03)),
            (Some(""), Some(V03)),
            (Some("0.3"), Some(V03)),
            (Some("0.3.0"), Some(V03)),
            (Some("1.0"), Some(V10)),
            (Some(" 1.0.2 "), Some(V10)),
            (Some("1"), Some(V10)),
            (Some("2.0"), None),
            (Some("0.2.5"), None),
            (Some("1.0.x"), None),
            (Some("1.0.0.0"), None),
            (Some("latest"), None),
        ] {
            assert_eq!(ProtocolVersion::from_header(header), want, "{header:?}");
        }
    }

    #[test]
    fn requests_go_to_the_endpoint_of_their_version() {
        use ProtocolVersion::*;
        assert_eq!(jsonrpc_url(&v03(), V03), Some("http://127.0.0.1:9999/"));
        assert_eq!(jsonrpc_url(&v03(), V10), Some("http://127.0.0.1:9999/"));
        assert_eq!(jsonrpc_url(&v10(), V10), Some("http://127.0.0.1:9999/rpc"));
        assert_eq!(jsonrpc_url(&v10(), V03), Some("http://127.0.0.1:9999/old"));
        let no_binding = json!({"supportedInterfaces": [{"url": "http://a/"}]});
        assert_eq!(jsonrpc_url(&no_binding, V10), Some("http://a/"));
        assert_eq!(
            jsonrpc_urls(&v10()),
            vec!["http://127.0.0.1:9999/old", "http://127.0.0.1:9999/rpc"]
        );
    }

    #[test]
    fn a_v03_card_points_at_the_gateway_with_its_scheme_only() {
        let out = rewrite_card(&v03(), GW, CardView::AsPublished);
        assert_eq!(out["url"], GW);
        assert_eq!(out["protocolVersion"], "0.3.0");
        assert_eq!(out["name"], "echo");
        assert_eq!(
            out["securitySchemes"],
            json!({"portcullis": {"type": "http", "scheme": "bearer",
                "description": "A Portcullis API key with the a2a scope"}})
        );
        assert_eq!(out["security"], json!([{"portcullis": []}]));
        assert_eq!(out["skills"], json!([{"id": "echo", "name": "Echo"}]));
        assert!(out.get("supportsAuthenticatedExtendedCard").is_none());
        assert!(out.get("supportedInterfaces").is_none());
        assert_eq!(
            crate::a2a::validate_card(&out),
            Ok(crate::a2a::CardShape::V03)
        );
    }

    #[test]
    fn a_v10_card_lists_one_gateway_interface_per_version() {
        let out = rewrite_card(&v10(), GW, CardView::AsPublished);
        assert_eq!(
            out["supportedInterfaces"],
            json!([
                {"url": GW, "protocolBinding": "JSONRPC", "protocolVersion": "1.0"},
                {"url": GW, "protocolBinding": "JSONRPC", "protocolVersion": "0.3"}
            ])
        );
        assert_eq!(
            out["securitySchemes"]["portcullis"],
            json!({"httpAuthSecurityScheme": {"scheme": "Bearer",
                "description": "A Portcullis API key with the a2a scope"}})
        );
        assert_eq!(
            out["securityRequirements"],
            json!([{"schemes": {"portcullis": {"list": []}}}])
        );
        for gone in ["security", "url", "signatures"] {
            assert!(out.get(gone).is_none(), "{gone}");
        }
        assert_eq!(out["capabilities"], json!({}));
    }

    #[test]
    fn a_merged_card_stays_merged_unless_a_version_is_asked_for() {
        let both = rewrite_card(&merged(), GW, CardView::AsPublished);
        assert_eq!(both["url"], GW);
        assert_eq!(
            both["supportedInterfaces"].as_array().map(Vec::len),
            Some(2)
        );
        let scheme = &both["securitySchemes"]["portcullis"];
        assert_eq!(
            (&scheme["type"], &scheme["scheme"]),
            (&json!("http"), &json!("bearer"))
        );
        assert_eq!(scheme["httpAuthSecurityScheme"]["scheme"], "Bearer");

        let v10_only = rewrite_card(&merged(), GW, CardView::Only(ProtocolVersion::V10));
        for gone in V03_ONLY {
            assert!(v10_only.get(gone).is_none(), "{gone}");
        }
        assert!(v10_only["securitySchemes"]["portcullis"]
            .get("type")
            .is_none());

        let v03_only = rewrite_card(&merged(), GW, CardView::Only(ProtocolVersion::V03));
        for gone in V10_ONLY {
            assert!(v03_only.get(gone).is_none(), "{gone}");
        }
        assert_eq!(v03_only["url"], GW);
        assert!(v03_only["securitySchemes"]["portcullis"]
            .get("httpAuthSecurityScheme")
            .is_none());
        // A v0.3 card asked for as v1.0: one interface, of version 0.3.0.
        let up = rewrite_card(&v03(), GW, CardView::Only(ProtocolVersion::V10));
        assert_eq!(
            up["supportedInterfaces"],
            json!([{"url": GW, "protocolBinding": "JSONRPC", "protocolVersion": "0.3.0"}])
        );
    }
}
