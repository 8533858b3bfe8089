//! Which upstream endpoint a request targets, from its path.

use crate::provider::Provider;

/// The priced endpoint families; decides how usage is read and input estimated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ApiKind {
    /// `POST /v1/chat/completions`.
    OpenAiChat,
    /// `POST /v1/completions` (legacy).
    OpenAiCompletions,
    /// `POST /v1/responses`.
    OpenAiResponses,
    /// `POST /v1/embeddings`.
    OpenAiEmbeddings,
    /// `POST /v1/messages`.
    AnthropicMessages,
    /// `POST /v1/messages/count_tokens` (not billed).
    AnthropicCountTokens,
    /// Anything else (models list, response retrieval, ...): not priced here.
    Other,
}

impl ApiKind {
    /// Classifies a request path; accepts it with or without `/v1` (also a doubled `/v1/v1`),
    /// a trailing slash, and a query string.
    pub fn from_path(provider: Provider, path: &str) -> ApiKind {
        let path = path.split(['?', '#']).next().unwrap_or_default();
        let mut p = path.trim_end_matches('/');
        while let Some(rest) = p.strip_prefix("/v1") {
            if !rest.is_empty() && !rest.starts_with('/') {
                break;
            }
            p = rest;
        }
        match (provider, p) {
            (Provider::OpenAi, "/chat/completions") => ApiKind::OpenAiChat,
            (Provider::OpenAi, "/completions") => ApiKind::OpenAiCompletions,
            (Provider::OpenAi, "/responses") => ApiKind::OpenAiResponses,
            (Provider::OpenAi, "/embeddings") => ApiKind::OpenAiEmbeddings,
            (Provider::Anthropic, "/messages") => ApiKind::AnthropicMessages,
            (Provider::Anthropic, "/messages/count_tokens") => ApiKind::AnthropicCountTokens,
            _ => ApiKind::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ApiKind::*;
    use Provider::*;

    #[test]
    fn classifies_sdk_paths_with_and_without_v1() {
        assert_eq!(
            ApiKind::from_path(OpenAi, "/v1/chat/completions"),
            OpenAiChat
        );
        assert_eq!(ApiKind::from_path(OpenAi, "/chat/completions/"), OpenAiChat);
        assert_eq!(
            ApiKind::from_path(OpenAi, "/v1/completions"),
            OpenAiCompletions
        );
        assert_eq!(
            ApiKind::from_path(OpenAi, "/v1/responses?x=1"),
            OpenAiResponses
        );
        assert_eq!(
            ApiKind::from_path(OpenAi, "/v1/embeddings"),
            OpenAiEmbeddings
        );
        assert_eq!(
            ApiKind::from_path(Anthropic, "/v1/messages"),
            AnthropicMessages
        );
        assert_eq!(
            ApiKind::from_path(Anthropic, "/v1/v1/messages"),
            AnthropicMessages
        );
        assert_eq!(
            ApiKind::from_path(Anthropic, "/v1/messages/count_tokens"),
            AnthropicCountTokens
        );
    }

    #[test]
    fn other_paths_and_wrong_provider_are_other() {
        assert_eq!(ApiKind::from_path(OpenAi, "/v1/responses/resp_123"), Other);
        assert_eq!(ApiKind::from_path(OpenAi, "/v1/models"), Other);
        assert_eq!(ApiKind::from_path(OpenAi, "/v1/messages"), Other);
        assert_eq!(ApiKind::from_path(Anthropic, "/v1/chat/completions"), Other);
        assert_eq!(ApiKind::from_path(Anthropic, "/v1x/messages"), Other);
        assert_eq!(ApiKind::from_path(Anthropic, ""), Other);
    }
}
