//! What the gateway needs to know about a request body before forwarding it.

use crate::Endpoint;
use bytes::Bytes;
use serde::Deserialize;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestInfo {
    pub model: Option<String>,
    pub stream: bool,
    /// The client asked for a usage chunk at the end of the stream itself.
    pub client_wants_stream_usage: bool,
    /// The end user the body names: OpenAI `user`, Anthropic `metadata.user_id`.
    pub user: Option<String>,
    /// The cap on generated tokens the client set (`max_tokens`,
    /// `max_completion_tokens` or `max_output_tokens`), for cost estimates.
    pub max_output_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct Peek<'a> {
    #[serde(borrow, default)]
    model: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
    #[serde(borrow, default)]
    user: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    metadata: Option<Metadata>,
    #[serde(default)]
    max_tokens: Option<serde_json::Number>,
    #[serde(default)]
    max_completion_tokens: Option<serde_json::Number>,
    #[serde(default)]
    max_output_tokens: Option<serde_json::Number>,
}

#[derive(Deserialize)]
struct Metadata {
    #[serde(default)]
    user_id: Option<String>,
}

#[derive(Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: Option<bool>,
}

#[derive(Debug, thiserror::Error)]
#[error("request body is not valid JSON: {0}")]
pub struct BadBody(String);

/// Reads model and streaming flags; the body must be a JSON object.
pub fn inspect(body: &[u8]) -> Result<RequestInfo, BadBody> {
    let peek: Peek<'_> = serde_json::from_slice(body).map_err(|e| BadBody(e.to_string()))?;
    Ok(info_of(peek))
}

/// The same as [`inspect`], from a body already parsed (when a policy needs the
/// whole value anyway, the body is parsed once).
pub fn inspect_value(body: &serde_json::Value) -> Result<RequestInfo, BadBody> {
    let peek = Peek::deserialize(body).map_err(|e| BadBody(e.to_string()))?;
    Ok(info_of(peek))
}

fn info_of(peek: Peek<'_>) -> RequestInfo {
    RequestInfo {
        model: peek.model.map(|m| m.into_owned()),
        stream: peek.stream.unwrap_or(false),
        client_wants_stream_usage: peek
            .stream_options
            .and_then(|o| o.include_usage)
            .unwrap_or(false),
        user: peek
            .user
            .map(|u| u.into_owned())
            .or_else(|| peek.metadata.and_then(|m| m.user_id)),
        // A cap that is not a whole number is the upstream's to refuse.
        max_output_tokens: [
            peek.max_completion_tokens,
            peek.max_output_tokens,
            peek.max_tokens,
        ]
        .into_iter()
        .flatten()
        .find_map(|n| n.as_u64()),
    }
}

/// For OpenAI streams that did not ask for usage, a body that does: the gateway
/// needs the counts, and strips the extra chunk before the client sees it.
/// `None` when the body can be forwarded as it is.
pub fn with_stream_usage(endpoint: Endpoint, info: &RequestInfo, body: &[u8]) -> Option<Bytes> {
    let applies = matches!(endpoint, Endpoint::ChatCompletions | Endpoint::Completions);
    if !applies || !info.stream || info.client_wants_stream_usage {
        return None;
    }
    let mut value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let object = value.as_object_mut()?;
    let options = object
        .entry("stream_options")
        .or_insert_with(|| serde_json::json!({}));
    options
        .as_object_mut()?
        .insert("include_usage".into(), serde_json::Value::Bool(true));
    serde_json::to_vec(&value).ok().map(Bytes::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_model_and_stream_flags() {
        let info =
            inspect(br#"{"model":"gpt-4o","stream":true,"messages":[]}"#).unwrap_or_default();
        assert_eq!(info.model.as_deref(), Some("gpt-4o"));
        assert!(info.stream && !info.client_wants_stream_usage);
        assert_eq!(
            inspect(br#"{"model":"m","user":"u-1"}"#)
                .unwrap_or_default()
                .user
                .as_deref(),
            Some("u-1")
        );
        assert_eq!(
            inspect(br#"{"metadata":{"user_id":"u-2"}}"#)
                .unwrap_or_default()
                .user
                .as_deref(),
            Some("u-2")
        );
        assert!(inspect(b"not json").is_err());
        assert!(inspect(b"[1,2]").is_err());
        let value = serde_json::json!({"model": "gpt-4o", "stream": true, "user": "u"});
        assert_eq!(
            inspect_value(&value).ok(),
            inspect(value.to_string().as_bytes()).ok()
        );
        assert!(inspect_value(&serde_json::json!([1])).is_err());
    }

    #[test]
    fn reads_the_output_cap_of_every_dialect() {
        let cap = |body: &str| {
            inspect(body.as_bytes())
                .ok()
                .and_then(|i| i.max_output_tokens)
        };
        assert_eq!(cap(r#"{"max_tokens":256}"#), Some(256));
        assert_eq!(
            cap(r#"{"max_completion_tokens":64,"max_tokens":9}"#),
            Some(64)
        );
        assert_eq!(cap(r#"{"max_output_tokens":32}"#), Some(32));
        assert_eq!(cap(r#"{"max_tokens":null}"#), None);
        // Odd caps pass through for the upstream to judge.
        assert_eq!(cap(r#"{"max_tokens":-1}"#), None);
        assert_eq!(cap(r#"{"max_tokens":1.5}"#), None);
        assert_eq!(cap(r#"{"model":"m"}"#), None);
    }

    #[test]
    fn adds_stream_usage_only_when_missing() {
        let body = br#"{"model":"m","stream":true,"stream_options":{"foo":1}}"#;
        let info = inspect(body).unwrap_or_default();
        let rewritten =
            with_stream_usage(Endpoint::ChatCompletions, &info, body).unwrap_or_default();
        let v: serde_json::Value = serde_json::from_slice(&rewritten).unwrap_or_default();
        assert_eq!(v["stream_options"]["include_usage"], true);
        assert_eq!(v["stream_options"]["foo"], 1);

        let asked = br#"{"model":"m","stream":true,"stream_options":{"include_usage":true}}"#;
        assert!(with_stream_usage(
            Endpoint::ChatCompletions,
            &inspect(asked).unwrap_or_default(),
            asked
        )
        .is_none());
        let plain = br#"{"model":"m"}"#;
        assert!(with_stream_usage(
            Endpoint::ChatCompletions,
            &inspect(plain).unwrap_or_default(),
            plain
        )
        .is_none());
        let anthropic = br#"{"model":"m","stream":true}"#;
        assert!(with_stream_usage(
            Endpoint::Messages,
            &inspect(anthropic).unwrap_or_default(),
            anthropic
        )
        .is_none());
    }
}
