//! The LLM endpoints a proxy serves and the dialect each speaks.

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    OpenAi,
    Anthropic,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    ChatCompletions,
    Completions,
    Embeddings,
    Responses,
    Models,
    Messages,
}

impl Endpoint {
    pub const ALL: [Endpoint; 6] = [
        Endpoint::ChatCompletions,
        Endpoint::Completions,
        Endpoint::Embeddings,
        Endpoint::Responses,
        Endpoint::Models,
        Endpoint::Messages,
    ];

    /// The endpoint with this label (see [`Endpoint::as_str`]).
    pub fn from_label(label: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.as_str() == label)
    }

    /// Recognises a path relative to the proxy root (`/v1/chat/completions`).
    pub fn from_path(path: &str) -> Option<Self> {
        let path = path.strip_suffix('/').unwrap_or(path);
        Some(match path {
            "/v1/chat/completions" | "/chat/completions" => Endpoint::ChatCompletions,
            "/v1/completions" | "/completions" => Endpoint::Completions,
            "/v1/embeddings" | "/embeddings" => Endpoint::Embeddings,
            "/v1/responses" | "/responses" => Endpoint::Responses,
            "/v1/models" | "/models" => Endpoint::Models,
            "/v1/messages" | "/messages" => Endpoint::Messages,
            _ => return None,
        })
    }

    pub fn dialect(self) -> Dialect {
        match self {
            Endpoint::Messages => Dialect::Anthropic,
            Endpoint::ChatCompletions
            | Endpoint::Completions
            | Endpoint::Embeddings
            | Endpoint::Responses
            | Endpoint::Models => Dialect::OpenAi,
        }
    }

    /// The upstream path, under the provider's base URL (which ends before `/v1`).
    pub fn upstream_path(self) -> &'static str {
        match self {
            Endpoint::ChatCompletions => "/v1/chat/completions",
            Endpoint::Completions => "/v1/completions",
            Endpoint::Embeddings => "/v1/embeddings",
            Endpoint::Responses => "/v1/responses",
            Endpoint::Models => "/v1/models",
            Endpoint::Messages => "/v1/messages",
        }
    }

    /// Metric and event label.
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::ChatCompletions => "chat_completions",
            Endpoint::Completions => "completions",
            Endpoint::Embeddings => "embeddings",
            Endpoint::Responses => "responses",
            Endpoint::Models => "models",
            Endpoint::Messages => "messages",
        }
    }

    pub fn is_get(self) -> bool {
        matches!(self, Endpoint::Models)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_endpoints_and_dialects() {
        assert_eq!(
            Endpoint::from_path("/v1/chat/completions"),
            Some(Endpoint::ChatCompletions)
        );
        assert_eq!(
            Endpoint::from_path("/v1/messages/"),
            Some(Endpoint::Messages)
        );
        assert_eq!(
            Endpoint::from_path("/v1/messages").map(Endpoint::dialect),
            Some(Dialect::Anthropic)
        );
        assert_eq!(Endpoint::from_path("/v1/files"), None);
        for e in Endpoint::ALL {
            assert_eq!(Endpoint::from_label(e.as_str()), Some(e));
        }
        assert_eq!(Endpoint::from_label("files"), None);
    }
}
