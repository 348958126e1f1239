//! Token usage as providers report it, normalised: input tokens include cached
//! ones; `cached_input_tokens` says how many of them were cache reads.

use crate::Dialect;
use serde::Deserialize;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cached_input_tokens: u64,
}

#[derive(Deserialize, Default)]
struct Details {
    #[serde(default)]
    cached_tokens: Option<u64>,
}

/// Every usage field either provider uses.
#[derive(Deserialize, Default)]
struct RawUsage {
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
    prompt_tokens_details: Option<Details>,
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    input_tokens_details: Option<Details>,
    cache_read_input_tokens: Option<u64>,
    cache_creation_input_tokens: Option<u64>,
}

impl RawUsage {
    fn normalise(self, dialect: Dialect) -> Usage {
        match dialect {
            Dialect::OpenAi => Usage {
                input_tokens: self.prompt_tokens.or(self.input_tokens).unwrap_or(0),
                output_tokens: self.completion_tokens.or(self.output_tokens).unwrap_or(0),
                cached_input_tokens: self
                    .prompt_tokens_details
                    .or(self.input_tokens_details)
                    .and_then(|d| d.cached_tokens)
                    .unwrap_or(0),
            },
            Dialect::Anthropic => {
                let read = self.cache_read_input_tokens.unwrap_or(0);
                Usage {
                    input_tokens: self.input_tokens.unwrap_or(0)
                        + read
                        + self.cache_creation_input_tokens.unwrap_or(0),
                    output_tokens: self.output_tokens.unwrap_or(0),
                    cached_input_tokens: read,
                }
            }
        }
    }
}

#[derive(Deserialize)]
struct WithUsage {
    usage: Option<RawUsage>,
}

/// Usage of a whole (non-streamed) response body.
pub fn from_body(dialect: Dialect, body: &[u8]) -> Option<Usage> {
    let parsed: WithUsage = serde_json::from_slice(body).ok()?;
    parsed.usage.map(|u| u.normalise(dialect))
}

pub(crate) fn from_value(dialect: Dialect, value: &serde_json::Value) -> Option<Usage> {
    let raw = RawUsage::deserialize(value).ok()?;
    Some(raw.normalise(dialect))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openai_chat_and_responses_and_anthropic() {
        let chat = br#"{"usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15,"prompt_tokens_details":{"cached_tokens":4}}}"#;
        assert_eq!(
            from_body(Dialect::OpenAi, chat),
            Some(Usage {
                input_tokens: 10,
                output_tokens: 5,
                cached_input_tokens: 4
            })
        );
        let responses = br#"{"usage":{"input_tokens":7,"output_tokens":3,"input_tokens_details":{"cached_tokens":1}}}"#;
        assert_eq!(
            from_body(Dialect::OpenAi, responses),
            Some(Usage {
                input_tokens: 7,
                output_tokens: 3,
                cached_input_tokens: 1
            })
        );
        let embeddings = br#"{"data":[],"usage":{"prompt_tokens":8,"total_tokens":8}}"#;
        assert_eq!(
            from_body(Dialect::OpenAi, embeddings).map(|u| u.input_tokens),
            Some(8)
        );
        let anthropic = br#"{"usage":{"input_tokens":10,"output_tokens":2,"cache_read_input_tokens":30,"cache_creation_input_tokens":5}}"#;
        assert_eq!(
            from_body(Dialect::Anthropic, anthropic),
            Some(Usage {
                input_tokens: 45,
                output_tokens: 2,
                cached_input_tokens: 30
            })
        );
        assert_eq!(from_body(Dialect::OpenAi, b"{}"), None);
        assert_eq!(from_body(Dialect::OpenAi, b"garbage"), None);
    }
}
