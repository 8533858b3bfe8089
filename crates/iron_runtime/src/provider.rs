//! Provider detection from keys, model names and paths, and path normalisation.

use serde::Serialize;

/// An LLM provider the router can forward to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    OpenAi,
    Anthropic,
}

impl Provider {
    /// The lowercase name used in messages, events and the JS API.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::OpenAi => "openai",
            Provider::Anthropic => "anthropic",
        }
    }

    /// Parse the `provider` field of a key-server response.
    pub fn parse(name: &str) -> Option<Provider> {
        match name.trim().to_ascii_lowercase().as_str() {
            "openai" => Some(Provider::OpenAi),
            "anthropic" => Some(Provider::Anthropic),
            _ => None,
        }
    }

    /// The provider's public API origin, used when the key carries no `base_url`.
    pub fn default_base_url(self) -> &'static str {
        match self {
            Provider::OpenAi => "https://api.openai.com",
            Provider::Anthropic => "https://api.anthropic.com",
        }
    }
}

impl std::fmt::Display for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Provider of a real key from its format: `sk-ant-` is Anthropic, anything else OpenAI.
pub fn provider_from_key(key: &str) -> Provider {
    if key.starts_with("sk-ant-") {
        Provider::Anthropic
    } else {
        Provider::OpenAi
    }
}

/// Provider implied by a model name, or `None` when the name says nothing.
pub fn provider_from_model(model: &str) -> Option<Provider> {
    let m = model.trim().to_ascii_lowercase();
    if m.starts_with("claude") {
        return Some(Provider::Anthropic);
    }
    const OPENAI_PREFIXES: [&str; 8] = [
        "gpt-",
        "gpt4",
        "chatgpt-",
        "text-embedding-",
        "whisper-",
        "tts-",
        "dall-e-",
        "davinci",
    ];
    if OPENAI_PREFIXES.iter().any(|p| m.starts_with(p)) {
        return Some(Provider::OpenAi);
    }
    // o-series: `o1`, `o3-mini`, `o4-mini-2025-04-16`, but not `omni-…` or `o-foo`.
    let mut chars = m.chars();
    if chars.next() == Some('o') && chars.next().is_some_and(|c| c.is_ascii_digit()) {
        let rest: String = m
            .chars()
            .skip(1)
            .take_while(|c| c.is_ascii_digit())
            .collect();
        let after = &m[1 + rest.len()..];
        if after.is_empty() || after.starts_with('-') {
            return Some(Provider::OpenAi);
        }
    }
    None
}

/// Provider implied by the `model` field of a JSON body (`None` for bad JSON or no model).
pub fn provider_from_body(body: &[u8]) -> Option<Provider> {
    #[derive(serde::Deserialize)]
    struct ModelOnly<'a> {
        #[serde(borrow)]
        model: Option<std::borrow::Cow<'a, str>>,
    }
    let parsed: ModelOnly = serde_json::from_slice(body).ok()?;
    provider_from_model(parsed.model.as_deref()?)
}

/// Strip a leading `/openai` or `/anthropic` path segment (whole segment only).
/// Returns the remaining path (`/` when empty) and the provider the prefix named.
pub fn strip_provider_prefix(path: &str) -> (&str, Option<Provider>) {
    for (prefix, provider) in [
        ("/openai", Provider::OpenAi),
        ("/anthropic", Provider::Anthropic),
    ] {
        if let Some(rest) = path.strip_prefix(prefix) {
            if rest.is_empty() {
                return ("/", Some(provider));
            }
            if rest.starts_with('/') {
                return (rest, Some(provider));
            }
        }
    }
    (path, None)
}

/// Normalise the upstream path: collapse a doubled `/v1/v1/` (Anthropic SDK given the `/v1` URL)
/// and add `/v1` to well-known endpoints called without it.
pub fn normalise_path(path: &str) -> String {
    let mut p = path;
    while let Some(rest) = p.strip_prefix("/v1/v1") {
        if rest.is_empty() || rest.starts_with('/') {
            p = &p[3..];
        } else {
            break;
        }
    }
    const BARE: [&str; 6] = [
        "/chat/",
        "/responses",
        "/embeddings",
        "/completions",
        "/models",
        "/messages",
    ];
    if !p.starts_with("/v1/") && p != "/v1" && BARE.iter().any(|b| p.starts_with(b)) {
        return format!("/v1{p}");
    }
    p.to_string()
}

/// Provider implied by an unambiguous endpoint path (already normalised).
pub fn provider_from_path(path: &str) -> Option<Provider> {
    if path.starts_with("/v1/messages")
        || path.starts_with("/v1/complete") && !path.starts_with("/v1/completions")
    {
        return Some(Provider::Anthropic);
    }
    const OPENAI: [&str; 4] = [
        "/v1/chat/completions",
        "/v1/responses",
        "/v1/embeddings",
        "/v1/completions",
    ];
    if OPENAI.iter().any(|p| path.starts_with(p)) {
        return Some(Provider::OpenAi);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_detection() {
        assert_eq!(provider_from_key("sk-ant-api03-xxx"), Provider::Anthropic);
        assert_eq!(provider_from_key("sk-ant-abc123"), Provider::Anthropic);
        assert_eq!(provider_from_key("sk-proj-xxx"), Provider::OpenAi);
        assert_eq!(provider_from_key("sk-abc123"), Provider::OpenAi);
        assert_eq!(provider_from_key("unknown-key"), Provider::OpenAi);
        assert_eq!(provider_from_key(""), Provider::OpenAi);
    }

    #[test]
    fn prefix_stripping_whole_segment_only() {
        assert_eq!(
            strip_provider_prefix("/anthropic/v1/messages"),
            ("/v1/messages", Some(Provider::Anthropic))
        );
        assert_eq!(
            strip_provider_prefix("/anthropic"),
            ("/", Some(Provider::Anthropic))
        );
        assert_eq!(strip_provider_prefix("/anthropicX"), ("/anthropicX", None));
        assert_eq!(
            strip_provider_prefix("/anthropicX/v1"),
            ("/anthropicX/v1", None)
        );
        assert_eq!(
            strip_provider_prefix("/openai/v1/chat/completions"),
            ("/v1/chat/completions", Some(Provider::OpenAi))
        );
        assert_eq!(
            strip_provider_prefix("/openai"),
            ("/", Some(Provider::OpenAi))
        );
        assert_eq!(strip_provider_prefix("/openaiv1"), ("/openaiv1", None));
        assert_eq!(
            strip_provider_prefix("/v1/chat/completions"),
            ("/v1/chat/completions", None)
        );
        assert_eq!(strip_provider_prefix("/"), ("/", None));
    }

    #[test]
    fn model_detection() {
        for m in [
            "claude-sonnet-4-20250514",
            "claude-3-opus-20240229",
            "claude-3-haiku-20240307",
        ] {
            assert_eq!(provider_from_model(m), Some(Provider::Anthropic), "{m}");
        }
        for m in [
            "gpt-5-nano",
            "gpt-4o",
            "gpt-4o-mini",
            "gpt-3.5-turbo",
            "o1-preview",
            "o1",
            "o3-mini",
            "o4-mini",
            "chatgpt-4o-latest",
            "text-embedding-3-small",
        ] {
            assert_eq!(provider_from_model(m), Some(Provider::OpenAi), "{m}");
        }
        for m in [
            "llama-3.1-70b",
            "omni-moderation",
            "o-custom",
            "mistral-large",
            "",
        ] {
            assert_eq!(provider_from_model(m), None, "{m}");
        }
    }

    #[test]
    fn body_model_detection() {
        assert_eq!(
            provider_from_body(br#"{"model":"claude-3-5-haiku-latest"}"#),
            Some(Provider::Anthropic)
        );
        assert_eq!(
            provider_from_body(br#"{"model":"gpt-4o","messages":[]}"#),
            Some(Provider::OpenAi)
        );
        assert_eq!(provider_from_body(br#"{"messages":[]}"#), None);
        assert_eq!(provider_from_body(br#"{"model":42}"#), None);
        assert_eq!(provider_from_body(b"not json"), None);
        assert_eq!(provider_from_body(b""), None);
    }

    #[test]
    fn path_normalisation() {
        assert_eq!(normalise_path("/v1/v1/messages"), "/v1/messages");
        assert_eq!(normalise_path("/v1/messages"), "/v1/messages");
        assert_eq!(normalise_path("/chat/completions"), "/v1/chat/completions");
        assert_eq!(normalise_path("/v1/v1x"), "/v1/v1x");
        assert_eq!(normalise_path("/"), "/");
        assert_eq!(
            provider_from_path("/v1/messages/count_tokens"),
            Some(Provider::Anthropic)
        );
        assert_eq!(
            provider_from_path("/v1/completions"),
            Some(Provider::OpenAi)
        );
        assert_eq!(provider_from_path("/v1/models"), None);
    }
}
