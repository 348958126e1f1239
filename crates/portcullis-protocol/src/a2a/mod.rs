//! A2A (Agent2Agent) wire formats, no networking: AgentCard validation for the
//! v0.3 and v1.0 shapes, the card rewrite that points clients at the gateway,
//! JSON-RPC method names of both versions, and the text of message parts.

mod card;
mod parts;

pub use card::{
    jsonrpc_url, jsonrpc_urls, rewrite_card, CardView, ProtocolVersion, GATEWAY_SCHEME,
    VERSION_HEADER, VERSION_NOT_SUPPORTED,
};
pub use parts::{visit_part_strings, PartField};

use crate::mcp::tools::{canonical_json, definition_hash};
use serde_json::{Map, Value};

/// Where an agent publishes its card (v0.3 and later).
pub const CARD_PATH: &str = "/.well-known/agent-card.json";
/// The older location, tried when the first one is missing.
pub const LEGACY_CARD_PATH: &str = "/.well-known/agent.json";

/// What a JSON-RPC method does, whatever the protocol version names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    SendMessage,
    StreamMessage,
    GetTask,
    CancelTask,
    /// v0.3 `tasks/resubscribe`, v1.0 `SubscribeToTask`: a stream of a task's events.
    Resubscribe,
    /// v1.0 `ListTasks`: the agent's tasks (the gateway keeps the caller's).
    ListTasks,
    /// v0.3 `tasks/pushNotificationConfig/set`, v1.0
    /// `CreateTaskPushNotificationConfig`: a webhook for a task.
    SetPushConfig,
    /// Reading, listing and deleting a task's webhooks.
    GetPushConfig,
    ListPushConfigs,
    DeletePushConfig,
    /// v0.3 `agent/getAuthenticatedExtendedCard`, v1.0 `GetExtendedAgentCard`.
    ExtendedCard,
}

impl Method {
    /// The methods of v0.3 and v1.0 by either name; `None` for any other.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "message/send" | "SendMessage" => Self::SendMessage,
            "message/stream" | "SendStreamingMessage" => Self::StreamMessage,
            "tasks/get" | "GetTask" => Self::GetTask,
            "tasks/cancel" | "CancelTask" => Self::CancelTask,
            "tasks/resubscribe" | "SubscribeToTask" => Self::Resubscribe,
            "ListTasks" => Self::ListTasks,
            "tasks/pushNotificationConfig/set" | "CreateTaskPushNotificationConfig" => {
                Self::SetPushConfig
            }
            "tasks/pushNotificationConfig/get" | "GetTaskPushNotificationConfig" => {
                Self::GetPushConfig
            }
            "tasks/pushNotificationConfig/list" | "ListTaskPushNotificationConfigs" => {
                Self::ListPushConfigs
            }
            "tasks/pushNotificationConfig/delete" | "DeleteTaskPushNotificationConfig" => {
                Self::DeletePushConfig
            }
            "agent/getAuthenticatedExtendedCard" | "GetExtendedAgentCard" => Self::ExtendedCard,
            _ => return None,
        })
    }

    /// Whether the request carries a message whose parts are scanned.
    pub fn carries_message(self) -> bool {
        matches!(self, Self::SendMessage | Self::StreamMessage)
    }

    /// The task the request is about: `params.id` of get, cancel and resubscribe
    /// (both versions), `params.message.taskId` of a message continuing a task,
    /// the task of a webhook request (`taskId`, or v0.3's `id`).
    pub fn task_id(self, params: &Value) -> Option<&str> {
        let str_at = |key: &str| params.get(key).and_then(Value::as_str);
        match self {
            Self::SendMessage | Self::StreamMessage => params
                .get("message")
                .and_then(|m| m.get("taskId"))
                .and_then(Value::as_str),
            Self::GetTask | Self::CancelTask | Self::Resubscribe => str_at("id"),
            Self::SetPushConfig => str_at("taskId"),
            Self::GetPushConfig | Self::ListPushConfigs | Self::DeletePushConfig => {
                str_at("taskId").or_else(|| str_at("id"))
            }
            Self::ListTasks | Self::ExtendedCard => None,
        }
    }

    /// Whether the request must name a task (and so be about one the caller owns).
    pub fn needs_task(self) -> bool {
        matches!(
            self,
            Self::GetTask
                | Self::CancelTask
                | Self::Resubscribe
                | Self::SetPushConfig
                | Self::GetPushConfig
                | Self::ListPushConfigs
                | Self::DeletePushConfig
        )
    }
}

/// A2A's "task not found" error code (both versions).
pub const TASK_NOT_FOUND: i64 = -32001;
/// A2A's "extended agent card not configured" error code (v0.3 and v1.0).
pub const EXTENDED_CARD_NOT_CONFIGURED: i64 = -32007;

/// Task states of both versions, by their v0.3 names.
pub const TASK_STATES: [&str; 9] = [
    "submitted",
    "working",
    "input-required",
    "completed",
    "canceled",
    "failed",
    "rejected",
    "auth-required",
    "unknown",
];

/// A task id, its context and state, as an answer or stream event shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskSeen {
    pub task_id: String,
    pub context_id: Option<String>,
    /// One of [`TASK_STATES`].
    pub state: &'static str,
}

/// Longest task or context id recorded.
const MAX_TASK_ID: usize = 256;

/// A state of either version (`input-required`, `TASK_STATE_INPUT_REQUIRED`) by
/// its v0.3 name; `None` for anything else.
pub fn task_state(s: &str) -> Option<&'static str> {
    let name = s
        .strip_prefix("TASK_STATE_")
        .map(|v| v.to_ascii_lowercase().replace('_', "-"));
    let name = name.as_deref().unwrap_or(s);
    let name = if name == "unspecified" {
        "unknown"
    } else {
        name
    };
    TASK_STATES.iter().find(|t| **t == name).copied()
}

/// The task a JSON-RPC `result` is about, with its state: a v0.3 `Task` or
/// `status-update` event, a v1.0 `task` or `statusUpdate` member, or a v1.0 bare
/// `Task`. Messages and artifact updates carry no state and give `None`.
pub fn task_seen(result: &Value) -> Option<TaskSeen> {
    let (obj, id_key) = if let Some(t) = result.get("task") {
        (t, "id")
    } else if let Some(u) = result.get("statusUpdate") {
        (u, "taskId")
    } else {
        match result.get("kind").and_then(Value::as_str) {
            Some("task") => (result, "id"),
            Some("status-update") => (result, "taskId"),
            Some(_) => return None,
            None if result.get("status").is_some() => (result, "id"),
            None => return None,
        }
    };
    let id = obj.get(id_key).and_then(Value::as_str)?;
    let state = task_state(obj.get("status")?.get("state")?.as_str()?)?;
    if id.is_empty() || id.len() > MAX_TASK_ID {
        return None;
    }
    let context_id = obj
        .get("contextId")
        .and_then(Value::as_str)
        .filter(|c| c.len() <= MAX_TASK_ID)
        .map(str::to_owned);
    Some(TaskSeen {
        task_id: id.to_owned(),
        context_id,
        state,
    })
}

/// A card that fails validation: every field at fault, by JSON path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid agent card: {}", .fields.join("; "))]
pub struct InvalidCard {
    pub fields: Vec<String>,
}

/// Which card shape a card has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CardShape {
    /// v0.3: `url` (+ `preferredTransport`, `additionalInterfaces`).
    V03,
    /// v1.0: `supportedInterfaces` (each with `url`).
    V10,
}

fn non_empty_str(card: &Map<String, Value>, key: &str, fields: &mut Vec<String>) {
    match card.get(key) {
        Some(Value::String(s)) if !s.trim().is_empty() => {}
        Some(_) => fields.push(format!("{key}: must be a non-empty string")),
        None => fields.push(format!("{key}: required")),
    }
}

fn is_http_url(s: &str) -> bool {
    (s.starts_with("http://") || s.starts_with("https://")) && s.len() > "http://".len()
}

/// Minimal validation of both shapes: name, description, version, an endpoint
/// (`url` or `supportedInterfaces`), capabilities object, skills array of
/// objects with id and name, default input and output modes.
pub fn validate_card(card: &Value) -> Result<CardShape, InvalidCard> {
    let mut fields = Vec::new();
    let Some(obj) = card.as_object() else {
        return Err(InvalidCard {
            fields: vec!["$: the card must be a JSON object".into()],
        });
    };
    non_empty_str(obj, "name", &mut fields);
    if !obj.get("description").is_some_and(Value::is_string) {
        fields.push("description: required string".into());
    }
    if !obj.get("version").is_some_and(Value::is_string) {
        fields.push("version: required string".into());
    }
    let shape = match (obj.get("supportedInterfaces"), obj.get("url")) {
        (Some(Value::Array(list)), _) => {
            if list.is_empty() {
                fields.push("supportedInterfaces: at least one interface".into());
            }
            for (i, iface) in list.iter().enumerate() {
                match iface.get("url").and_then(Value::as_str) {
                    Some(u) if is_http_url(u) => {}
                    _ => fields.push(format!("supportedInterfaces[{i}].url: an http(s) URL")),
                }
            }
            CardShape::V10
        }
        (Some(_), _) => {
            fields.push("supportedInterfaces: must be an array".into());
            CardShape::V10
        }
        (None, Some(Value::String(u))) if is_http_url(u) => CardShape::V03,
        (None, Some(_)) => {
            fields.push("url: an http(s) URL".into());
            CardShape::V03
        }
        (None, None) => {
            fields.push("url or supportedInterfaces: required".into());
            CardShape::V03
        }
    };
    if !obj.get("capabilities").is_some_and(Value::is_object) {
        fields.push("capabilities: required object".into());
    }
    for key in ["defaultInputModes", "defaultOutputModes"] {
        if !obj.get(key).is_some_and(Value::is_array) {
            fields.push(format!("{key}: required array of media types"));
        }
    }
    match obj.get("skills") {
        Some(Value::Array(skills)) => {
            for (i, skill) in skills.iter().enumerate() {
                for key in ["id", "name"] {
                    if !skill.get(key).is_some_and(Value::is_string) {
                        fields.push(format!("skills[{i}].{key}: required string"));
                    }
                }
            }
        }
        Some(_) => fields.push("skills: must be an array".into()),
        None => fields.push("skills: required array".into()),
    }
    if fields.is_empty() {
        Ok(shape)
    } else {
        Err(InvalidCard { fields })
    }
}

/// SHA-256 (hex) of the card's canonical JSON.
pub fn card_hash(card: &Value) -> String {
    definition_hash(card)
}

/// The card's name (after validation, always present).
pub fn card_name(card: &Value) -> Option<&str> {
    card.get("name").and_then(Value::as_str)
}

/// Keeps only the skills whose id is in `ids` (the skills a caller may use).
pub fn keep_skills(card: &mut Value, ids: &[String]) {
    if let Some(Value::Array(skills)) = card.get_mut("skills") {
        skills.retain(|s| {
            s.get("id")
                .and_then(Value::as_str)
                .is_some_and(|id| ids.iter().any(|i| i == id))
        });
    }
}

/// The text of a message's parts to scan: text parts as they are, data parts as
/// JSON text, file names and URIs; one part per line. Accepts both part shapes
/// (v0.3 `kind`, v1.0 members `text` / `data` / `file` / `url`).
pub fn message_text(params: &Value) -> String {
    let mut out = String::new();
    let Some(parts) = params
        .get("message")
        .and_then(|m| m.get("parts"))
        .and_then(Value::as_array)
    else {
        return out;
    };
    let mut push = |s: &str| {
        if !s.is_empty() {
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(s);
        }
    };
    for part in parts {
        if let Some(text) = part.get("text").and_then(Value::as_str) {
            push(text);
        }
        if let Some(data) = part.get("data") {
            push(&canonical_json(data));
        }
        let file = part.get("file").unwrap_or(part);
        for key in ["name", "filename", "uri", "url"] {
            if let Some(s) = file.get(key).and_then(Value::as_str) {
                push(s);
            }
        }
    }
    out
}

/// URLs in a message request that the agent may fetch or call: the push
/// notification webhook (`configuration.pushNotificationConfig.url`, both
/// versions) and file URIs of the message's parts (v0.3 `file.uri`, v1.0 `url`).
pub fn outbound_urls(params: &Value) -> Vec<&str> {
    let mut urls = Vec::new();
    // A message's webhook (both versions); a webhook set on a task (v0.3
    // `pushNotificationConfig.url`, v1.0 `url` on the params themselves).
    let webhooks = [
        params
            .get("configuration")
            .and_then(|c| c.get("pushNotificationConfig")),
        params.get("pushNotificationConfig"),
        params.get("taskId").and(Some(params)),
    ];
    for config in webhooks.into_iter().flatten() {
        if let Some(u) = config.get("url").and_then(Value::as_str) {
            urls.push(u);
        }
    }
    let parts = params
        .get("message")
        .and_then(|m| m.get("parts"))
        .and_then(Value::as_array);
    for part in parts.into_iter().flatten() {
        if let Some(u) = part
            .get("file")
            .and_then(|f| f.get("uri"))
            .or_else(|| part.get("url"))
            .and_then(Value::as_str)
        {
            urls.push(u);
        }
    }
    urls
}

/// A short, readable account of what changed between two cards: url/interfaces
/// and skills added, removed or changed.
pub fn card_diff(before: &Value, after: &Value) -> String {
    let mut lines = Vec::new();
    for key in ["url", "supportedInterfaces", "additionalInterfaces"] {
        if before.get(key) != after.get(key) {
            let show = |v: Option<&Value>| v.map_or_else(|| "(none)".to_owned(), canonical_json);
            lines.push(format!(
                "{key}: {} -> {}",
                truncate(&show(before.get(key)), 200),
                truncate(&show(after.get(key)), 200)
            ));
        }
    }
    let skills = |card: &Value| -> Vec<(String, String)> {
        card.get("skills")
            .and_then(Value::as_array)
            .map(|s| {
                s.iter()
                    .map(|k| {
                        let id = k.get("id").and_then(Value::as_str).unwrap_or("?");
                        (id.to_owned(), canonical_json(k))
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let (old, new) = (skills(before), skills(after));
    for (id, def) in &new {
        match old.iter().find(|(o, _)| o == id) {
            None => lines.push(format!("skill added: {id}")),
            Some((_, d)) if d != def => lines.push(format!("skill changed: {id}")),
            Some(_) => {}
        }
    }
    for (id, _) in &old {
        if !new.iter().any(|(n, _)| n == id) {
            lines.push(format!("skill removed: {id}"));
        }
    }
    if lines.is_empty() {
        lines.push("other fields changed".into());
    }
    lines.join("\n")
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Cards of both shapes, for the tests of this module and its children.
#[cfg(test)]
pub(crate) mod fixtures {
    use serde_json::{json, Value};

    pub fn v03() -> Value {
        json!({
            "name": "echo", "description": "Echoes", "version": "1.0.0",
            "url": "http://127.0.0.1:9999/", "preferredTransport": "JSONRPC",
            "protocolVersion": "0.3.0",
            "capabilities": {"streaming": true},
            "defaultInputModes": ["text/plain"], "defaultOutputModes": ["text/plain"],
            "skills": [{"id": "echo", "name": "Echo", "description": "d", "tags": []}]
        })
    }

    pub fn v10() -> Value {
        json!({
            "name": "echo", "description": "Echoes", "version": "1.0.0",
            "supportedInterfaces": [
                {"url": "http://127.0.0.1:9999/rest", "protocolBinding": "HTTP+JSON", "protocolVersion": "1.0"},
                {"url": "http://127.0.0.1:9999/rpc", "protocolBinding": "JSONRPC", "protocolVersion": "1.0"}
            ],
            "capabilities": {},
            "defaultInputModes": ["text/plain"], "defaultOutputModes": ["text/plain"],
            "skills": []
        })
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::{v03, v10};
    use super::*;
    use serde_json::json;

    #[test]
    fn both_shapes_validate() {
        assert_eq!(validate_card(&v03()), Ok(CardShape::V03));
        assert_eq!(validate_card(&v10()), Ok(CardShape::V10));
    }

    #[test]
    fn invalid_cards_name_their_fields() {
        let err = validate_card(&json!({"name": "", "url": "ftp://x", "skills": [{"id": 1}]}))
            .err()
            .map(|e| e.fields)
            .unwrap_or_default();
        for want in [
            "name:",
            "description:",
            "url:",
            "capabilities:",
            "skills[0].id:",
            "skills[0].name:",
        ] {
            assert!(err.iter().any(|f| f.starts_with(want)), "{want} in {err:?}");
        }
        assert!(validate_card(&json!([])).is_err());
        let mut no_endpoint = v03();
        no_endpoint.as_object_mut().map(|o| o.remove("url"));
        let e = validate_card(&no_endpoint).err().map(|e| e.fields);
        assert_eq!(
            e,
            Some(vec!["url or supportedInterfaces: required".to_owned()])
        );
    }

    #[test]
    fn tasks_are_seen_in_both_versions() {
        let v03_task = json!({"kind": "task", "id": "t1", "contextId": "c1",
            "status": {"state": "input-required"}});
        assert_eq!(
            task_seen(&v03_task),
            Some(TaskSeen {
                task_id: "t1".into(),
                context_id: Some("c1".into()),
                state: "input-required"
            })
        );
        let update = json!({"kind": "status-update", "taskId": "t1", "contextId": "c1",
            "status": {"state": "completed"}, "final": true});
        assert_eq!(task_seen(&update).map(|t| t.state), Some("completed"));
        let v10 = json!({"task": {"id": "t2", "contextId": "c2",
            "status": {"state": "TASK_STATE_AUTH_REQUIRED"}}});
        assert_eq!(
            task_seen(&v10).map(|t| (t.task_id, t.state)),
            Some(("t2".into(), "auth-required"))
        );
        let v10_update =
            json!({"statusUpdate": {"taskId": "t2", "status": {"state": "TASK_STATE_CANCELED"}}});
        assert_eq!(task_seen(&v10_update).map(|t| t.state), Some("canceled"));
        let bare = json!({"id": "t3", "status": {"state": "TASK_STATE_WORKING"}});
        assert_eq!(task_seen(&bare).map(|t| t.state), Some("working"));
        for none in [
            json!({"kind": "message", "taskId": "t1", "parts": []}),
            json!({"kind": "artifact-update", "taskId": "t1"}),
            json!({"kind": "task", "id": "t1", "status": {"state": "exploded"}}),
            json!({"kind": "task", "id": "", "status": {"state": "working"}}),
            json!("x"),
        ] {
            assert_eq!(task_seen(&none), None, "{none}");
        }
        assert_eq!(task_state("TASK_STATE_UNSPECIFIED"), Some("unknown"));
        assert_eq!(task_state("rejected"), Some("rejected"));
    }

    #[test]
    fn outbound_urls_of_both_versions() {
        let p = json!({
            "configuration": {"pushNotificationConfig": {"url": "http://hook/"}},
            "message": {"parts": [
                {"kind": "file", "file": {"uri": "https://f/1", "name": "a"}},
                {"kind": "text", "text": "http://not-a-url-field/"},
                {"url": "https://f/2", "filename": "b"}
            ]}
        });
        assert_eq!(
            outbound_urls(&p),
            ["http://hook/", "https://f/1", "https://f/2"]
        );
        assert!(outbound_urls(&json!({})).is_empty());
    }

    #[test]
    fn task_ids_of_requests() {
        let get = json!({"id": "t1", "historyLength": 2});
        assert_eq!(Method::GetTask.task_id(&get), Some("t1"));
        assert_eq!(Method::parse("SubscribeToTask"), Some(Method::Resubscribe));
        assert_eq!(Method::Resubscribe.task_id(&get), Some("t1"));
        let send = json!({"message": {"taskId": "t9", "parts": []}});
        assert_eq!(Method::SendMessage.task_id(&send), Some("t9"));
        assert_eq!(Method::SendMessage.task_id(&json!({"message": {}})), None);
    }

    #[test]
    fn skills_are_filtered_by_id() {
        let mut card = v03();
        card["skills"] =
            json!([{"id": "a", "name": "A"}, {"id": "b", "name": "B"}, {"name": "no id"}]);
        keep_skills(&mut card, &["b".to_owned(), "zzz".to_owned()]);
        assert_eq!(card["skills"], json!([{"id": "b", "name": "B"}]));
        keep_skills(&mut card, &[]);
        assert_eq!(card["skills"], json!([]));
        assert_eq!(validate_card(&card), Ok(CardShape::V03));
    }

    #[test]
    fn parts_of_both_versions_are_extracted() {
        let p = json!({"message": {"role": "user", "parts": [
            {"kind": "text", "text": "hello"},
            {"kind": "data", "data": {"b": 1, "a": "x"}},
            {"kind": "file", "file": {"name": "f.txt", "uri": "http://h/f"}},
            {"text": "v1 text"},
            {"url": "https://h/g", "filename": "g.pdf"}
        ]}});
        assert_eq!(
            message_text(&p),
            "hello\n{\"a\":\"x\",\"b\":1}\nf.txt\nhttp://h/f\nv1 text\ng.pdf\nhttps://h/g"
        );
        assert_eq!(message_text(&json!({})), "");
    }

    #[test]
    fn methods_of_both_versions() {
        assert_eq!(Method::parse("message/send"), Some(Method::SendMessage));
        assert_eq!(Method::parse("SendMessage"), Some(Method::SendMessage));
        assert_eq!(
            Method::parse("SendStreamingMessage"),
            Some(Method::StreamMessage)
        );
        assert_eq!(Method::parse("tasks/cancel"), Some(Method::CancelTask));
        assert_eq!(Method::parse("nope"), None);
        let set_v03 = json!({"taskId": "t1", "pushNotificationConfig": {"url": "http://a/hook"}});
        let set_v10 = json!({"taskId": "t2", "url": "http://b/hook"});
        for (name, params, task, url) in [
            (
                "tasks/pushNotificationConfig/set",
                &set_v03,
                "t1",
                "http://a/hook",
            ),
            (
                "CreateTaskPushNotificationConfig",
                &set_v10,
                "t2",
                "http://b/hook",
            ),
        ] {
            let m = Method::parse(name);
            assert_eq!(m, Some(Method::SetPushConfig));
            assert_eq!(m.and_then(|m| m.task_id(params)), Some(task));
            assert_eq!(outbound_urls(params), vec![url]);
        }
        let get_v03 = json!({"id": "t1", "pushNotificationConfigId": "c"});
        let get_v10 = json!({"taskId": "t2", "id": "c"});
        assert_eq!(Method::GetPushConfig.task_id(&get_v03), Some("t1"));
        assert_eq!(Method::DeletePushConfig.task_id(&get_v10), Some("t2"));
        assert!(Method::ListPushConfigs.needs_task() && !Method::ListTasks.needs_task());
        assert_eq!(
            Method::parse("GetExtendedAgentCard"),
            Method::parse("agent/getAuthenticatedExtendedCard")
        );
    }

    #[test]
    fn diff_names_skills_and_url() {
        let mut after = v03();
        after["url"] = json!("http://other/");
        after["skills"] = json!([{"id": "shell", "name": "Shell"}]);
        let d = card_diff(&v03(), &after);
        assert!(d.contains("url:"), "{d}");
        assert!(d.contains("skill added: shell"), "{d}");
        assert!(d.contains("skill removed: echo"), "{d}");
        assert_ne!(card_hash(&v03()), card_hash(&after));
    }
}
