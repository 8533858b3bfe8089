//! Token usage reported by providers, normalised into one shape.

pub mod anthropic;
pub mod openai;
pub mod stream;

use crate::api_kind::ApiKind;
use crate::price::ServiceTier;
use serde_json::Value;

/// Billed tokens of one call. `input_tokens` is UNCACHED input on every provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    /// Input tokens billed at the plain input rate (cache reads and writes excluded).
    pub input_tokens: u64,
    /// Input tokens served from the prompt cache.
    pub cache_read_tokens: u64,
    /// Input tokens written to a 5-minute cache (OpenAI `cache_write_tokens` land here too).
    pub cache_write_5m_tokens: u64,
    /// Input tokens written to a 1-hour cache.
    pub cache_write_1h_tokens: u64,
    /// Output tokens, reasoning included.
    pub output_tokens: u64,
    /// Reasoning / thinking tokens: informational, already inside `output_tokens`.
    pub reasoning_tokens: u64,
    /// Audio tokens among `input_tokens` (priced at the audio input rate; the rest is text).
    pub input_audio_tokens: u64,
    /// Audio tokens among `cache_read_tokens` (priced at the cached audio rate).
    pub cache_read_audio_tokens: u64,
    /// Audio tokens among `output_tokens` (priced at the audio output rate).
    pub output_audio_tokens: u64,
    /// Web searches the provider ran for the call (Anthropic `server_tool_use.web_search_requests`,
    /// OpenAI Responses `web_search_call` output items), each billed the model's search fee. A chat
    /// answer does not count them: see [`crate::searches_per_call`].
    pub web_search_requests: u64,
    /// The tier OpenAI says it served the call at (the answer's `service_tier`, beside `usage`);
    /// standard for Anthropic and when the answer does not say.
    pub service_tier: ServiceTier,
    /// Anthropic ran the call on US-only infrastructure (`usage.inference_geo: "us"`), billed at
    /// 1.1× on the models [`crate::us_only_uplift_applies`] names.
    pub us_only: bool,
}

impl Usage {
    /// All input tokens: uncached, cache reads and cache writes.
    pub fn total_input_tokens(&self) -> u64 {
        self.input_tokens
            .saturating_add(self.cache_read_tokens)
            .saturating_add(self.cache_write_5m_tokens)
            .saturating_add(self.cache_write_1h_tokens)
    }
}

/// Usage from a complete (non-streaming) JSON response body of `kind`; `None` when the body
/// carries none. `count_tokens` is free, so it yields zero usage.
pub fn usage_from_response(kind: ApiKind, body: &Value) -> Option<Usage> {
    let usage = with_tier(
        kind,
        usage_member(kind, body.get("usage")),
        body.get("service_tier"),
    );
    with_searches(kind, usage, body.get("output"))
}

/// Usage from a response's top-level `usage` value already read (`None` when it has none), for
/// every kind but `count_tokens` and `Other`, which read the whole body ([`usage_from_bytes`]).
/// An OpenAI answer's service tier is not inside `usage`, so the usage is standard-tier: read
/// OpenAI answers with [`usage_from_member_with_tier`], [`usage_from_bytes`] or
/// [`usage_from_response`].
pub fn usage_from_member(kind: ApiKind, usage: Option<&Value>) -> Option<Usage> {
    match kind {
        ApiKind::AnthropicCountTokens | ApiKind::Other => None,
        _ => usage_member(kind, usage),
    }
}

/// [`usage_from_member`] for an answer whose `service_tier` (OpenAI: it decides the rates) was
/// read beside its `usage` member.
pub fn usage_from_member_with_tier(
    kind: ApiKind,
    usage: Option<&Value>,
    service_tier: Option<&Value>,
) -> Option<Usage> {
    with_tier(kind, usage_from_member(kind, usage), service_tier)
}

/// Usage from the body's `usage` member (`None` when it has none).
fn usage_member(kind: ApiKind, usage: Option<&Value>) -> Option<Usage> {
    match kind {
        ApiKind::OpenAiChat | ApiKind::OpenAiCompletions => openai::chat_usage(usage?),
        ApiKind::OpenAiResponses => openai::responses_usage(usage?),
        ApiKind::OpenAiEmbeddings => openai::embeddings_usage(usage?),
        ApiKind::AnthropicMessages => anthropic::messages_usage(usage?),
        ApiKind::AnthropicCountTokens => Some(Usage::default()),
        ApiKind::Other => None,
    }
}

/// Like [`usage_from_response`] on raw bytes; malformed JSON yields `None`. Only the `usage`
/// member is kept; the rest of the answer is skipped, not built as a tree.
pub fn usage_from_bytes(kind: ApiKind, body: &[u8]) -> Option<Usage> {
    #[derive(serde::Deserialize)]
    struct Top {
        #[serde(default)]
        usage: Option<Value>,
        #[serde(default)]
        service_tier: Option<Value>,
        /// Responses output items, counted for their web search calls without a tree.
        #[serde(default)]
        output: SearchCalls,
    }
    match kind {
        // Any JSON at all counts for these, not only objects with a `usage` member.
        ApiKind::AnthropicCountTokens | ApiKind::Other => {
            usage_from_response(kind, &serde_json::from_slice(body).ok()?)
        }
        _ => {
            let top = serde_json::from_slice::<Top>(body).ok()?;
            let usage = with_tier(
                kind,
                usage_member(kind, top.usage.as_ref()),
                top.service_tier.as_ref(),
            );
            usage.map(|mut u| {
                if kind == ApiKind::OpenAiResponses {
                    u.web_search_requests = top.output.0;
                }
                u
            })
        }
    }
}

/// The number of `web_search_call` items in a Responses `output` array, read without building
/// the items (anything that is not an array counts none).
#[derive(Default)]
struct SearchCalls(u64);

impl<'de> serde::Deserialize<'de> for SearchCalls {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(CountVisitor)
    }
}

/// One output item: true when it is an object whose `type` is `web_search_call`.
struct IsSearchCall(bool);

impl<'de> serde::Deserialize<'de> for IsSearchCall {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ItemVisitor)
    }
}

/// The scalar visits of a visitor that reads them as `$out` ("nothing to count").
macro_rules! ignore_scalars {
    ($out:expr) => {
        fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
            Ok($out)
        }
        fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
            Ok($out)
        }
        fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
            Ok($out)
        }
        fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
            Ok($out)
        }
        fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
            Ok($out)
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok($out)
        }
    };
}

struct CountVisitor;

impl<'de> serde::de::Visitor<'de> for CountVisitor {
    type Value = SearchCalls;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    ignore_scalars!(SearchCalls(0));
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<SearchCalls, A::Error> {
        let mut n = 0;
        while let Some(IsSearchCall(hit)) = seq.next_element()? {
            n += u64::from(hit);
        }
        Ok(SearchCalls(n))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<SearchCalls, A::Error> {
        while map
            .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
            .is_some()
        {}
        Ok(SearchCalls(0))
    }
}

struct ItemVisitor;

impl<'de> serde::de::Visitor<'de> for ItemVisitor {
    type Value = IsSearchCall;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    ignore_scalars!(IsSearchCall(false));
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<IsSearchCall, A::Error> {
        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(IsSearchCall(false))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<IsSearchCall, A::Error> {
        let mut hit = false;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if key == "type" {
                let v: Value = map.next_value()?;
                hit = v.as_str() == Some("web_search_call");
            } else {
                map.next_value::<serde::de::IgnoredAny>()?;
            }
        }
        Ok(IsSearchCall(hit))
    }
}

fn with_searches(kind: ApiKind, usage: Option<Usage>, output: Option<&Value>) -> Option<Usage> {
    usage.map(|mut u| {
        if kind == ApiKind::OpenAiResponses {
            u.web_search_requests = openai::web_search_calls(output);
        }
        u
    })
}

/// Sets the service tier an OpenAI answer reports (its top-level `service_tier`) on its usage.
fn with_tier(kind: ApiKind, usage: Option<Usage>, tier: Option<&Value>) -> Option<Usage> {
    let openai = matches!(
        kind,
        ApiKind::OpenAiChat | ApiKind::OpenAiCompletions | ApiKind::OpenAiResponses
    );
    usage.map(|mut u| {
        if let Some(name) = tier.and_then(Value::as_str).filter(|_| openai) {
            u.service_tier = ServiceTier::parse(name);
        }
        u
    })
}

/// A token count: a non-negative integer, also when JSON writes it as a number with no fraction
/// (`1e5`, `12.0`: the same value to any JSON reader). `None` for anything else: negative,
/// fractional, out of range, not a number.
pub fn as_count(v: &Value) -> Option<u64> {
    if let Some(n) = v.as_u64() {
        return Some(n);
    }
    let f = v.as_f64()?;
    // 2^64: the first value a u64 cannot hold.
    (f >= 0.0 && f.fract() == 0.0 && f < 18_446_744_073_709_551_616.0).then_some(f as u64)
}

/// The count at `path`, or `None` when it is absent, null or unreadable (see [`as_count`]).
pub(crate) fn count(v: &Value, path: &[&str]) -> Option<u64> {
    as_count(path.iter().try_fold(v, |v, key| v.get(key))?)
}

/// True when `usage` can be priced from its counts at `paths`: it is an object, at least one of
/// them is there, and every one there (not null) is a count. A count the router cannot read
/// (negative, fractional, a string) would be priced as 0 tokens: such a usage is unreadable, and
/// the call is charged as one whose usage never arrived, not as a call that cost nothing.
pub(crate) fn readable(usage: &Value, paths: &[&[&str]]) -> bool {
    if !usage.is_object() {
        return false;
    }
    let mut any = false;
    for path in paths {
        match path.iter().try_fold(usage, |v, key| v.get(key)) {
            None | Some(Value::Null) => {}
            Some(v) if as_count(v).is_some() => any = true,
            Some(_) => return false,
        }
    }
    any
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_search_calls_are_counted_from_the_bytes_whatever_the_output_holds() {
        let body = br#"{"output":[{"type":"web_search_call","id":"ws_1","action":{"type":"search"}},{"id":"m","type":"message","content":[{"type":"output_text","text":"web_search_call"}]},{"type":"web_search_call"},"odd",[1],null],"usage":{"input_tokens":5,"output_tokens":2}}"#;
        let u = usage_from_bytes(ApiKind::OpenAiResponses, body).expect("usage");
        assert_eq!(u.web_search_requests, 2);
        let odd = br#"{"output":"text","usage":{"input_tokens":5,"output_tokens":2}}"#;
        let u = usage_from_bytes(ApiKind::OpenAiResponses, odd).expect("usage");
        assert_eq!(u.web_search_requests, 0);
        let chat =
            br#"{"choices":[],"output":{"a":1},"usage":{"prompt_tokens":1,"completion_tokens":1}}"#;
        assert!(usage_from_bytes(ApiKind::OpenAiChat, chat).is_some());
    }

    #[test]
    fn malformed_or_usage_less_bodies_yield_none() {
        assert_eq!(usage_from_bytes(ApiKind::OpenAiChat, b"{not json"), None);
        assert_eq!(
            usage_from_bytes(ApiKind::OpenAiChat, b"{\"id\":\"x\"}"),
            None
        );
        assert_eq!(
            usage_from_bytes(ApiKind::AnthropicMessages, b"{\"usage\":null}"),
            None
        );
        assert_eq!(
            usage_from_bytes(ApiKind::Other, b"{\"usage\":{\"prompt_tokens\":1}}"),
            None
        );
        assert_eq!(usage_from_bytes(ApiKind::OpenAiChat, &[0xff, 0xfe]), None);
    }

    #[test]
    fn a_usage_member_read_elsewhere_meters_as_the_whole_body_does() {
        let bodies = [
            (
                ApiKind::OpenAiChat,
                r#"{"choices":[],"usage":{"prompt_tokens":10,"completion_tokens":4,"prompt_tokens_details":{"cached_tokens":6},"completion_tokens_details":{"reasoning_tokens":2}}}"#,
            ),
            (ApiKind::OpenAiChat, r#"{"choices":[],"usage":null}"#),
            (ApiKind::OpenAiChat, r#"{"choices":[]}"#),
            (
                ApiKind::OpenAiCompletions,
                r#"{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":5}}"#,
            ),
            (
                ApiKind::AnthropicMessages,
                r#"{"content":[],"usage":{"input_tokens":3,"output_tokens":9,"cache_read_input_tokens":100,"cache_creation_input_tokens":20}}"#,
            ),
        ];
        for (kind, body) in bodies {
            let tree: Value = serde_json::from_str(body).unwrap();
            let member = tree.get("usage").filter(|u| !u.is_null());
            assert_eq!(
                usage_from_member(kind, member),
                usage_from_bytes(kind, body.as_bytes()),
                "{kind:?} {body}"
            );
        }
        assert!(usage_from_member(
            ApiKind::OpenAiChat,
            serde_json::from_str::<Value>(bodies[0].1)
                .unwrap()
                .get("usage")
        )
        .is_some());
        // These two read the whole body, not a member.
        let u = serde_json::json!({"input_tokens": 3});
        assert_eq!(
            usage_from_member(ApiKind::AnthropicCountTokens, Some(&u)),
            None
        );
        assert_eq!(usage_from_member(ApiKind::Other, Some(&u)), None);
    }

    #[test]
    fn count_tokens_is_free() {
        let v = serde_json::json!({"input_tokens": 1234});
        assert_eq!(
            usage_from_response(ApiKind::AnthropicCountTokens, &v),
            Some(Usage::default())
        );
    }

    #[test]
    fn total_input_sums_every_input_kind() {
        let u = Usage {
            input_tokens: 1,
            cache_read_tokens: 2,
            cache_write_5m_tokens: 4,
            cache_write_1h_tokens: 8,
            ..Usage::default()
        };
        assert_eq!(u.total_input_tokens(), 15);
    }
}
