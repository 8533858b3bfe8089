//! Read what policy needs from a JSON request body without building a full tree when nothing changes it.

use bytes::Bytes;
use serde::Deserialize;

/// Fields the pipeline reads from a request body.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct RequestInfo {
    pub is_json: bool,
    pub model: Option<String>,
    pub stream: bool,
    pub max_output_tokens: Option<u64>,
    /// `stream_options` is present at all.
    pub has_stream_options: bool,
    pub include_usage: Option<bool>,
    /// The answer is to carry log probabilities (`logprobs`, `top_logprobs`, or a Responses
    /// `include` of `…logprobs`): they repeat the answer's text token by token.
    pub wants_logprobs: bool,
    /// The answer may bill output the stream does not show as text: a request with `reasoning`,
    /// `reasoning_effort` or Anthropic `thinking` turned on, an OpenAI reasoning model (o-series,
    /// gpt-5, codex), or one asking for an audio answer (`modalities` with `"audio"`, or `audio`).
    pub may_reason: bool,
}

#[derive(Deserialize)]
struct Light {
    model: Option<serde_json::Value>,
    stream: Option<serde_json::Value>,
    max_tokens: Option<serde_json::Value>,
    max_completion_tokens: Option<serde_json::Value>,
    max_output_tokens: Option<serde_json::Value>,
    #[serde(default, deserialize_with = "present")]
    stream_options: Option<serde_json::Value>,
    logprobs: Option<serde_json::Value>,
    top_logprobs: Option<serde_json::Value>,
    include: Option<serde_json::Value>,
    reasoning: Option<serde_json::Value>,
    reasoning_effort: Option<serde_json::Value>,
    thinking: Option<serde_json::Value>,
    modalities: Option<serde_json::Value>,
    audio: Option<serde_json::Value>,
}

/// `Some(value)` whenever the key is present, `null` included (plain `Option` would read null as absent).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<serde_json::Value>, D::Error> {
    serde::Deserialize::deserialize(d).map(Some)
}

/// Inspect a body; non-JSON bodies give a default `RequestInfo` with `is_json == false`.
pub fn inspect(body: &[u8]) -> RequestInfo {
    if !opens_object(body) {
        return RequestInfo::default();
    }
    let Ok(l) = serde_json::from_slice::<Light>(body) else {
        return RequestInfo::default();
    };
    from_light(l)
}

/// The first byte after whitespace opens a JSON object.
pub fn opens_object(body: &[u8]) -> bool {
    body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
}

/// [`inspect`] of a body already parsed (with no repeated key and no half surrogate pair, so
/// that the light read would have read it too): the same fields, without a second pass.
pub fn inspect_tree(doc: &serde_json::Value) -> RequestInfo {
    let Some(map) = doc.as_object() else {
        return RequestInfo::default();
    };
    // `Option<Value>` reads a null as absent, except where `present` keeps it.
    let get = |k: &str| map.get(k).filter(|v| !v.is_null()).cloned();
    from_light(Light {
        model: get("model"),
        stream: get("stream"),
        max_tokens: get("max_tokens"),
        max_completion_tokens: get("max_completion_tokens"),
        max_output_tokens: get("max_output_tokens"),
        stream_options: map.get("stream_options").cloned(),
        logprobs: get("logprobs"),
        top_logprobs: get("top_logprobs"),
        include: get("include"),
        reasoning: get("reasoning"),
        reasoning_effort: get("reasoning_effort"),
        thinking: get("thinking"),
        modalities: get("modalities"),
        audio: get("audio"),
    })
}

fn from_light(l: Light) -> RequestInfo {
    let num = |v: &Option<serde_json::Value>| v.as_ref().and_then(|x| x.as_u64());
    RequestInfo {
        is_json: true,
        model: l
            .model
            .as_ref()
            .and_then(|m| m.as_str())
            .map(|s| s.chars().take(256).collect()),
        stream: l.stream.as_ref().and_then(|s| s.as_bool()).unwrap_or(false),
        max_output_tokens: num(&l.max_completion_tokens)
            .or(num(&l.max_tokens))
            .or(num(&l.max_output_tokens)),
        has_stream_options: l.stream_options.is_some(),
        include_usage: l
            .stream_options
            .as_ref()
            .and_then(|o| o.get("include_usage"))
            .and_then(|v| v.as_bool()),
        wants_logprobs: wants_logprobs(&l),
        may_reason: may_reason(&l),
    }
}

fn may_reason(l: &Light) -> bool {
    let set = |v: &Option<serde_json::Value>| v.as_ref().is_some_and(|v| !v.is_null());
    let thinking_on = l
        .thinking
        .as_ref()
        .and_then(|t| t.get("type"))
        .and_then(|t| t.as_str())
        .is_some_and(|t| t != "disabled");
    let model = l.model.as_ref().and_then(|m| m.as_str()).unwrap_or("");
    let model = model.rsplit('/').next().unwrap_or(model);
    // GPT-5 and later, the o-series and codex models reason by default; so do Claude 5 models
    // (adaptive thinking on unless turned off) and may newer ones.
    let gpt_generation = model
        .strip_prefix("gpt-")
        .map(|rest| {
            rest.bytes()
                .take_while(u8::is_ascii_digit)
                .collect::<Vec<u8>>()
        })
        .and_then(|d| std::str::from_utf8(&d).ok()?.parse::<u32>().ok());
    let reasoning_model = gpt_generation.is_some_and(|g| g >= 5)
        || model.contains("codex")
        || (model.starts_with('o') && model[1..].starts_with(|c: char| c.is_ascii_digit()))
        || iron_cost::claude_version(&model.to_ascii_lowercase()).is_some_and(|v| v >= (5, 0));
    // Audio is billed by the token but streamed as base64 bytes, not as text the estimate counts.
    let audio_answer = set(&l.audio)
        || l.modalities
            .as_ref()
            .and_then(|m| m.as_array())
            .is_some_and(|m| m.iter().any(|x| x.as_str() == Some("audio")));
    set(&l.reasoning) || set(&l.reasoning_effort) || thinking_on || reasoning_model || audio_answer
}

fn wants_logprobs(l: &Light) -> bool {
    let positive = |v: &Option<serde_json::Value>| match v {
        Some(serde_json::Value::Bool(b)) => *b,
        Some(serde_json::Value::Number(n)) => n.as_f64().is_some_and(|x| x > 0.0),
        _ => false,
    };
    let included = l
        .include
        .as_ref()
        .and_then(|v| v.as_array())
        .is_some_and(|a| {
            a.iter()
                .filter_map(|x| x.as_str())
                .any(|x| x.ends_with("logprobs"))
        });
    positive(&l.logprobs) || positive(&l.top_logprobs) || included
}

/// Ask an OpenAI chat stream for its usage chunk. Without `stream_options` the key is inserted as
/// bytes (no re-serialisation); otherwise the object is edited.
pub fn inject_include_usage(body: &Bytes, info: &RequestInfo) -> Option<Bytes> {
    if !info.has_stream_options {
        let pos = body.iter().position(|b| *b == b'{')?;
        let rest = &body[pos + 1..];
        let empty = rest.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'}');
        let mut out = Vec::with_capacity(body.len() + 48);
        out.extend_from_slice(&body[..=pos]);
        out.extend_from_slice(br#""stream_options":{"include_usage":true}"#);
        if !empty {
            out.push(b',');
        }
        out.extend_from_slice(rest);
        return Some(Bytes::from(out));
    }
    let mut v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let opts = v.get_mut("stream_options")?;
    if !opts.is_object() {
        *opts = serde_json::json!({});
    }
    opts.as_object_mut()?
        .insert("include_usage".into(), serde_json::Value::Bool(true));
    serde_json::to_vec(&v).ok().map(Bytes::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_fields() {
        let i = inspect(
            br#"{"model":"gpt-4o","stream":true,"max_completion_tokens":50,"messages":[]}"#,
        );
        assert!(i.is_json && i.stream);
        assert_eq!(i.model.as_deref(), Some("gpt-4o"));
        assert_eq!(i.max_output_tokens, Some(50));
        assert!(!i.has_stream_options);
        assert!(!inspect(b"--boundary").is_json);
        assert!(!inspect(b"{not json").is_json);
        assert!(!i.wants_logprobs);
        for b in [
            &br#"{"logprobs":true}"#[..],
            br#"{"logprobs":5}"#,
            br#"{"top_logprobs":2}"#,
            br#"{"include":["message.output_text.logprobs"]}"#,
        ] {
            assert!(inspect(b).wants_logprobs, "{}", String::from_utf8_lossy(b));
        }
        for b in [
            &br#"{"logprobs":false}"#[..],
            br#"{"logprobs":null,"top_logprobs":0}"#,
            br#"{"include":["reasoning.encrypted_content"]}"#,
        ] {
            assert!(!inspect(b).wants_logprobs, "{}", String::from_utf8_lossy(b));
        }
    }

    #[test]
    fn an_audio_answer_may_bill_output_the_stream_shows_no_text_of() {
        for b in [
            &br#"{"model":"gpt-audio","modalities":["text","audio"],"audio":{"voice":"alloy","format":"pcm16"}}"#[..],
            br#"{"model":"gpt-audio","modalities":["audio"]}"#,
            br#"{"model":"gpt-audio","audio":{"voice":"alloy","format":"wav"}}"#,
        ] {
            assert!(inspect(b).may_reason, "{}", String::from_utf8_lossy(b));
        }
        for b in [
            &br#"{"model":"gpt-audio","modalities":["text"]}"#[..],
            br#"{"model":"gpt-audio","audio":null}"#,
        ] {
            assert!(!inspect(b).may_reason, "{}", String::from_utf8_lossy(b));
        }
    }

    /// Models that think or reason by default: a stream of theirs cut short may have billed
    /// hidden tokens, so it is charged its hold.
    #[test]
    fn models_that_reason_by_default_are_known_by_name() {
        for model in [
            "gpt-5",
            "gpt-5.4-mini",
            "gpt-6-sol",
            "gpt-6.1-sol",
            "o3",
            "o4-mini",
            "gpt-5.3-codex",
            "claude-opus-5-5",
            "claude-fable-5-1",
            "claude-sonnet-5",
        ] {
            let b = format!(r#"{{"model":"{model}"}}"#);
            assert!(inspect(b.as_bytes()).may_reason, "{model}");
        }
        for model in [
            "gpt-4o",
            "gpt-4.1-mini",
            "claude-opus-4-7",
            "claude-3-7-sonnet-latest",
        ] {
            let b = format!(r#"{{"model":"{model}"}}"#);
            assert!(!inspect(b.as_bytes()).may_reason, "{model}");
        }
    }

    #[test]
    fn a_parsed_tree_reads_as_the_light_read_does() {
        for b in [
            &br#"{"model":"gpt-4o","stream":true,"max_completion_tokens":50,"messages":[]}"#[..],
            br#"{"model":null,"stream":null,"max_tokens":null,"stream_options":null}"#,
            br#"{"model":"o3-mini","stream_options":{"include_usage":false},"max_tokens":7.0}"#,
            br#"{"model":5,"stream":"yes","max_output_tokens":-1,"stream_options":{}}"#,
            br#"{"logprobs":true,"top_logprobs":0,"include":["x.logprobs"]}"#,
            br#"{"logprobs":null,"include":null,"reasoning":null,"reasoning_effort":"low"}"#,
            br#"{"thinking":{"type":"disabled"},"audio":null,"modalities":["audio"]}"#,
            br#"{"thinking":{"type":"enabled","budget_tokens":1024},"model":"claude-sonnet-4-5"}"#,
            br#"{"model":"openrouter/openai/gpt-5-mini","max_tokens":18446744073709551615}"#,
            br#"{}"#,
        ] {
            let (tree, masked) = crate::unique_json::parse_unique_masked(b).unwrap();
            assert!(masked.is_none());
            assert_eq!(
                inspect_tree(&tree),
                inspect(b),
                "{}",
                String::from_utf8_lossy(b)
            );
        }
        assert_eq!(
            inspect_tree(&serde_json::json!([1])),
            RequestInfo::default()
        );
    }

    #[test]
    fn injects_usage() {
        let b = Bytes::from_static(br#" {"model":"gpt-4o","stream":true}"#);
        let i = inspect(&b);
        let out = inject_include_usage(&b, &i).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["stream_options"]["include_usage"], true);
        assert_eq!(v["model"], "gpt-4o");
        let b = Bytes::from_static(br#"{"stream":true,"stream_options":{"include_usage":false}}"#);
        let out = inject_include_usage(&b, &inspect(&b)).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["stream_options"]["include_usage"], true);
        let b = Bytes::from_static(b"{}");
        let out = inject_include_usage(&b, &inspect(&b)).unwrap();
        assert!(serde_json::from_slice::<serde_json::Value>(&out).is_ok());
    }
}
