//! Federation: several MCP servers presented as one. This module holds the
//! naming rules, without I/O: which names a member's tools and prompts get, how
//! a name a client uses finds its member again, how resource URIs stay routable,
//! how capabilities merge, and the honest `serverInfo` of the federation.
//!
//! - Tool and prompt names are prefixed `{member}{separator}{name}` according to
//!   [`PrefixMode`]: `always`, `on_collision` (only names two members both have),
//!   or `never` (a name two members both have is an error naming both).
//! - Resource URIs always get the member in front of their scheme:
//!   `docs+file:///a.txt` is `file:///a.txt` of member `docs`. A URI scheme may
//!   hold `+`, so the result is still a URI, and a client never has to guess.
//! - Member names are `[a-z][a-z0-9-]{0,31}`: valid in a tool name and at the
//!   start of a URI scheme, and never containing the separator's characters
//!   `_`, `.` or `:` .

use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};

/// Longest member name.
pub const MAX_MEMBER_LEN: usize = 32;
/// Most members of one federation.
pub const MAX_MEMBERS: usize = 16;
/// The separator when none is configured: `docs__search`.
pub const DEFAULT_SEPARATOR: &str = "__";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PrefixMode {
    #[default]
    Always,
    OnCollision,
    Never,
}

impl PrefixMode {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "always" => Some(Self::Always),
            "on_collision" => Some(Self::OnCollision),
            "never" => Some(Self::Never),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FederationError {
    #[error("a federation needs between 1 and {MAX_MEMBERS} servers")]
    MemberCount,
    #[error("server name {0:?}: use 1 to {MAX_MEMBER_LEN} characters a-z, 0-9 and -, starting with a letter")]
    MemberName(String),
    #[error("server name {0:?} is used twice")]
    DuplicateMember(String),
    #[error("separator {0:?}: use 1 to 4 of the characters _ . :")]
    Separator(String),
    #[error(
        "{kind} {name:?} is offered by both {first:?} and {second:?} and prefix_mode is never"
    )]
    Collision {
        kind: &'static str,
        name: String,
        first: String,
        second: String,
    },
}

/// The members of a federation and its naming rules, checked once when the
/// proxy is loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Federation {
    members: Vec<String>,
    separator: String,
    mode: PrefixMode,
}

/// The names a client sees, and for each the member and its own name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NameMap {
    routes: BTreeMap<String, (usize, String)>,
}

impl NameMap {
    /// The member index and the member's own name for a name the client used.
    pub fn route(&self, exposed: &str) -> Option<(usize, &str)> {
        self.routes
            .get(exposed)
            .map(|(member, name)| (*member, name.as_str()))
    }

    /// The name the client sees for `name` of `member`.
    pub fn exposed(&self, member: usize, name: &str) -> Option<&str> {
        self.routes
            .iter()
            .find(|(_, (m, n))| *m == member && n == name)
            .map(|(exposed, _)| exposed.as_str())
    }

    pub fn len(&self) -> usize {
        self.routes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}

impl Federation {
    pub fn new(
        members: Vec<String>,
        separator: Option<&str>,
        mode: PrefixMode,
    ) -> Result<Self, FederationError> {
        if members.is_empty() || members.len() > MAX_MEMBERS {
            return Err(FederationError::MemberCount);
        }
        let mut seen = BTreeSet::new();
        for name in &members {
            let mut chars = name.chars();
            let valid = name.len() <= MAX_MEMBER_LEN
                && chars.next().is_some_and(|c| c.is_ascii_lowercase())
                && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            if !valid {
                return Err(FederationError::MemberName(name.clone()));
            }
            if !seen.insert(name.as_str()) {
                return Err(FederationError::DuplicateMember(name.clone()));
            }
        }
        let separator = separator.unwrap_or(DEFAULT_SEPARATOR);
        if separator.is_empty()
            || separator.len() > 4
            || !separator.chars().all(|c| matches!(c, '_' | '.' | ':'))
        {
            return Err(FederationError::Separator(separator.to_owned()));
        }
        Ok(Self {
            members,
            separator: separator.to_owned(),
            mode,
        })
    }

    pub fn members(&self) -> &[String] {
        &self.members
    }

    pub fn separator(&self) -> &str {
        &self.separator
    }

    pub fn mode(&self) -> PrefixMode {
        self.mode
    }

    fn prefixed(&self, member: usize, name: &str) -> String {
        format!("{}{}{}", self.members[member], self.separator, name)
    }

    /// Client-facing names for the members' tools (or prompts: `kind` names
    /// them in errors). `listed`: (member index, its names), for the members
    /// that answered. Under `never`, a name two members share is an error.
    pub fn names(
        &self,
        kind: &'static str,
        listed: &[(usize, Vec<String>)],
    ) -> Result<NameMap, FederationError> {
        let mut owners: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (member, names) in listed {
            for name in names {
                let entry = owners.entry(name.as_str()).or_default();
                if !entry.contains(member) {
                    entry.push(*member);
                }
            }
        }
        let mut routes: BTreeMap<String, (usize, String)> = BTreeMap::new();
        for (name, members) in owners {
            let shared = members.len() > 1;
            if shared && self.mode == PrefixMode::Never {
                return Err(FederationError::Collision {
                    kind,
                    name: name.to_owned(),
                    first: self.members[members[0]].clone(),
                    second: self.members[members[1]].clone(),
                });
            }
            for member in members {
                let exposed = match self.mode {
                    PrefixMode::Always => self.prefixed(member, name),
                    PrefixMode::OnCollision if shared => self.prefixed(member, name),
                    PrefixMode::OnCollision | PrefixMode::Never => name.to_owned(),
                };
                // An unprefixed name may equal another member's prefixed one
                // (`docs__echo` as a tool's own name): never route it by chance.
                if let Some((other, _)) = routes.get(&exposed) {
                    return Err(FederationError::Collision {
                        kind,
                        name: exposed,
                        first: self.members[*other].clone(),
                        second: self.members[member].clone(),
                    });
                }
                routes.insert(exposed, (member, name.to_owned()));
            }
        }
        Ok(NameMap { routes })
    }

    /// The client-facing URI of a member's resource: the member before its scheme.
    pub fn resource_uri(&self, member: usize, uri: &str) -> String {
        format!("{}+{}", self.members[member], uri)
    }

    /// The member and its own URI for a client-facing resource URI.
    pub fn route_resource<'u>(&self, uri: &'u str) -> Option<(usize, &'u str)> {
        let (member, rest) = uri.split_once('+')?;
        let index = self.members.iter().position(|m| m == member)?;
        (!rest.is_empty()).then_some((index, rest))
    }

    /// Capabilities of the federation: a capability any live member has, with
    /// `listChanged` if any has it. `resources.subscribe` is left out (the
    /// gateway does not route subscriptions), and so is `experimental`.
    pub fn merge_capabilities(&self, answered: &[(usize, &Value)]) -> Value {
        let mut merged = Map::new();
        for (_, capabilities) in answered {
            let Some(capabilities) = capabilities.as_object() else {
                continue;
            };
            for (name, value) in capabilities {
                if name == "experimental" {
                    continue;
                }
                let slot = merged
                    .entry(name.clone())
                    .or_insert_with(|| Value::Object(Map::new()));
                if value.get("listChanged") == Some(&Value::Bool(true)) {
                    slot["listChanged"] = Value::Bool(true);
                }
            }
        }
        Value::Object(merged)
    }

    /// The `initialize` result's `serverInfo` and `instructions` for a federation:
    /// the gateway by name, the members that answered and the ones that did not.
    /// `answered`: (member index, its `serverInfo`, its `instructions`).
    pub fn server_info(
        &self,
        gateway_version: &str,
        answered: &[(usize, &Value, Option<&str>)],
    ) -> (Value, String) {
        let up: Vec<String> = answered
            .iter()
            .map(|(member, info, _)| {
                let name = info.get("name").and_then(Value::as_str).unwrap_or("?");
                let version = info.get("version").and_then(Value::as_str).unwrap_or("?");
                format!(
                    "{} ({} {})",
                    self.members[*member],
                    clip(name, 64),
                    clip(version, 32)
                )
            })
            .collect();
        let down: Vec<&str> = (0..self.members.len())
            .filter(|m| !answered.iter().any(|(a, _, _)| a == m))
            .map(|m| self.members[m].as_str())
            .collect();
        let info = json!({
            "name": "portcullis",
            "title": format!("Portcullis federation of {}", self.members.join(", ")),
            "version": gateway_version,
        });
        let mut instructions = format!(
            "This server is a Portcullis gateway federating {} MCP servers: {}.",
            self.members.len(),
            up.join(", ")
        );
        if !down.is_empty() {
            instructions.push_str(&format!(" Unavailable now: {}.", down.join(", ")));
        }
        match self.mode {
            PrefixMode::Always => instructions.push_str(&format!(
                " Tool and prompt names are <server>{}<name>.",
                self.separator
            )),
            PrefixMode::OnCollision => instructions.push_str(&format!(
                " Names two servers share are <server>{}<name>.",
                self.separator
            )),
            PrefixMode::Never => {}
        }
        instructions.push_str(" Resource URIs are <server>+<uri>.");
        for (member, _, text) in answered {
            if let Some(text) = text.filter(|t| !t.is_empty()) {
                instructions.push_str(&format!(
                    "\n\n[{}] {}",
                    self.members[*member],
                    clip(text, 2048)
                ));
            }
        }
        (info, instructions)
    }
}

fn clip(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fed(mode: PrefixMode) -> Federation {
        Federation::new(vec!["math".into(), "docs".into()], None, mode).unwrap()
    }

    fn listed() -> Vec<(usize, Vec<String>)> {
        vec![
            (0, vec!["add".into(), "echo".into()]),
            (1, vec!["search".into(), "echo".into()]),
        ]
    }

    fn names(map: &NameMap) -> Vec<&str> {
        map.routes.keys().map(String::as_str).collect()
    }

    #[test]
    fn always_prefixes_every_name_and_routes_back() {
        let map = fed(PrefixMode::Always).names("tool", &listed()).unwrap();
        assert_eq!(
            names(&map),
            ["docs__echo", "docs__search", "math__add", "math__echo"]
        );
        assert_eq!(map.route("docs__echo"), Some((1, "echo")));
        assert_eq!(map.route("math__echo"), Some((0, "echo")));
        assert_eq!(map.route("echo"), None);
        assert_eq!(map.exposed(1, "search"), Some("docs__search"));
    }

    #[test]
    fn on_collision_prefixes_only_shared_names() {
        let map = fed(PrefixMode::OnCollision)
            .names("tool", &listed())
            .unwrap();
        assert_eq!(names(&map), ["add", "docs__echo", "math__echo", "search"]);
        assert_eq!(map.route("add"), Some((0, "add")));
        assert_eq!(map.route("search"), Some((1, "search")));
        assert_eq!(map.route("docs__echo"), Some((1, "echo")));
        // A tool whose own name looks prefixed cannot shadow another's.
        let tricky = vec![
            (0, vec!["echo".into()]),
            (1, vec!["echo".into(), "math__echo".into()]),
        ];
        assert!(matches!(
            fed(PrefixMode::OnCollision).names("tool", &tricky),
            Err(FederationError::Collision { .. })
        ));
        // With one member down there is no collision left.
        let map = fed(PrefixMode::OnCollision)
            .names("tool", &listed()[..1])
            .unwrap();
        assert_eq!(names(&map), ["add", "echo"]);
    }

    #[test]
    fn never_refuses_a_shared_name_naming_both_servers() {
        let err = fed(PrefixMode::Never).names("tool", &listed()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "tool \"echo\" is offered by both \"math\" and \"docs\" and prefix_mode is never"
        );
        let map = fed(PrefixMode::Never)
            .names("prompt", &[(0, vec!["a".into()]), (1, vec!["b".into()])])
            .unwrap();
        assert_eq!(map.route("b"), Some((1, "b")));
    }

    #[test]
    fn configuration_is_checked() {
        let new = |members: &[&str], sep: Option<&str>| {
            Federation::new(
                members.iter().map(|m| m.to_string()).collect(),
                sep,
                PrefixMode::Always,
            )
        };
        assert!(new(&["a", "b-2"], Some(".")).is_ok());
        assert_eq!(new(&[], None), Err(FederationError::MemberCount));
        assert_eq!(
            new(&["a", "a"], None),
            Err(FederationError::DuplicateMember("a".into()))
        );
        for bad in ["Docs", "my_docs", "1x", "", "x+y", &"a".repeat(33)] {
            assert_eq!(
                new(&[bad], None),
                Err(FederationError::MemberName(bad.to_string())),
                "{bad}"
            );
        }
        for bad in ["", "-", "/", "_____"] {
            assert_eq!(
                new(&["a"], Some(bad)),
                Err(FederationError::Separator(bad.into()))
            );
        }
        assert_eq!(
            PrefixMode::parse("on_collision"),
            Some(PrefixMode::OnCollision)
        );
        assert_eq!(PrefixMode::parse("sometimes"), None);
    }

    #[test]
    fn resource_uris_carry_their_server_in_the_scheme() {
        let f = fed(PrefixMode::Never);
        let uri = f.resource_uri(1, "file:///notes/a.txt");
        assert_eq!(uri, "docs+file:///notes/a.txt");
        assert_eq!(f.route_resource(&uri), Some((1, "file:///notes/a.txt")));
        assert_eq!(f.route_resource("file:///notes/a.txt"), None);
        assert_eq!(f.route_resource("other+file:///a"), None);
        assert_eq!(f.route_resource("docs+"), None);
    }

    #[test]
    fn capabilities_merge_and_server_info_is_honest() {
        let f = fed(PrefixMode::Always);
        let a = json!({"tools": {"listChanged": true}, "logging": {}, "experimental": {"x": {}}});
        let b = json!({"tools": {}, "resources": {"subscribe": true, "listChanged": false}, "prompts": {}});
        let merged = f.merge_capabilities(&[(0, &a), (1, &b)]);
        assert_eq!(
            merged,
            json!({"tools": {"listChanged": true}, "logging": {}, "resources": {}, "prompts": {}})
        );
        let info = json!({"name": "math-server", "version": "1.2"});
        let (server, instructions) = f.server_info("0.1.0", &[(0, &info, Some("Use add."))]);
        assert_eq!(server["name"], "portcullis");
        assert_eq!(server["title"], "Portcullis federation of math, docs");
        assert!(
            instructions.contains("math (math-server 1.2)"),
            "{instructions}"
        );
        assert!(
            instructions.contains("Unavailable now: docs."),
            "{instructions}"
        );
        assert!(instructions.contains("<server>__<name>"));
        assert!(instructions.ends_with("[math] Use add."), "{instructions}");
    }
}
