//! Worst-case token estimates for a request body, made before it is sent (for reservations).

use crate::api_kind::ApiKind;
use crate::bound::{InputBound, Unmetered};
use crate::cost::{max_cost_micros_for, HoldTokens};
use crate::price::{ModelPrice, ServiceTier};
use serde_json::Value;

/// Output allowance when neither the request nor the catalog gives a limit.
pub const DEFAULT_MAX_OUTPUT_TOKENS: u64 = 32_768;
/// Tokens charged for one inline media blob (base64 image, audio or file), whatever its size:
/// counting base64 characters as text would over-reserve by orders of magnitude.
pub const MEDIA_BLOB_TOKENS: u64 = 4_096;
/// Extra tokens per 400 base64 characters of a media blob beyond the flat allowance (long PDFs).
const MEDIA_CHARS_PER_TOKEN: u64 = 400;
/// Strings at least this long under a media key are treated as blobs, not text.
const MEDIA_MIN_CHARS: usize = 1_024;
/// Nesting depth beyond which the walk stops (bodies from serde_json are at most 128 deep).
const MAX_DEPTH: usize = 256;

/// The request members whose text is the call's input, per API (none for `Other`).
pub(crate) fn input_fields(kind: ApiKind) -> &'static [&'static str] {
    match kind {
        ApiKind::OpenAiChat => &["messages", "tools", "functions", "response_format"],
        ApiKind::OpenAiCompletions => &["prompt", "suffix"],
        ApiKind::OpenAiResponses => &["input", "instructions", "tools", "text"],
        ApiKind::OpenAiEmbeddings => &["input"],
        ApiKind::AnthropicMessages | ApiKind::AnthropicCountTokens => {
            &["messages", "system", "tools"]
        }
        ApiKind::Other => &[],
    }
}

/// Conservative upper bound on the input tokens of `body`: characters of all text fields
/// (messages and their content parts, system, tools JSON, input, prompt, instructions) / 3,
/// rounded up, + 8 per message + 16. Token-id arrays count one token per id.
pub fn estimate_input_tokens(body: &Value, kind: ApiKind) -> u64 {
    text_estimate(body, kind, false)
}

/// The input a call is expected to bill, for pricing an answer whose usage never arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct InputEstimate {
    /// Input tokens of all kinds.
    pub tokens: u64,
    /// How many of `tokens` are audio (at most `tokens`).
    pub audio_tokens: u64,
    /// The service tier the request asks for (see [`requested_service_tier`]).
    pub service_tier: ServiceTier,
    /// The request asks Anthropic for US-only inference (`inference_geo: "us"`): a charge made
    /// without the answer's usage takes the US-only rate where the model bills it.
    pub us_only: bool,
}

impl InputEstimate {
    /// `tokens` of text input at standard rates.
    pub fn text(tokens: u64) -> InputEstimate {
        InputEstimate {
            tokens,
            ..InputEstimate::default()
        }
    }
}

/// The input `body` is expected to bill, at the tier it asks for: its text as
/// [`estimate_input_tokens`] counts it, and its images and inline audio clips as the hold's bound
/// ([`crate::input_bound`]) counts them (the audio as audio): a best guess would price a clip or a
/// gpt-4o-mini image far under its bill, and the provider bills them whole however the answer
/// ends. A request of text alone gets [`estimate_input_tokens`].
pub fn estimate_input(body: &Value, kind: ApiKind, price: Option<&ModelPrice>) -> InputEstimate {
    let media = crate::bound::media_tokens(body, kind, price);
    let (tokens, audio_tokens) = if media == crate::bound::MediaTokens::default() {
        (estimate_input_tokens(body, kind), 0)
    } else {
        let tokens = text_estimate(body, kind, true)
            .saturating_add(media.image)
            .saturating_add(media.audio);
        (tokens, media.audio.min(tokens))
    };
    InputEstimate {
        tokens,
        audio_tokens,
        service_tier: requested_service_tier(body, kind),
        us_only: crate::geo::asks_us_only(body, kind),
    }
}

/// [`estimate_input`] for a body known to carry no image or audio (its bytes name neither): the
/// text estimate at the tier it asks for, without the walk that looks for media.
pub fn estimate_input_text(body: &Value, kind: ApiKind) -> InputEstimate {
    InputEstimate {
        tokens: estimate_input_tokens(body, kind),
        audio_tokens: 0,
        service_tier: requested_service_tier(body, kind),
        us_only: crate::geo::asks_us_only(body, kind),
    }
}

/// [`estimate_input_tokens`]; with `skip_media`, images and audio clips in message content are
/// left out (the caller counts them).
fn text_estimate(body: &Value, kind: ApiKind, skip_media: bool) -> u64 {
    let fields = input_fields(kind);
    let mut size = Size::default();
    if kind == ApiKind::Other {
        size.walk(body, None, 0);
    }
    for field in fields {
        let Some(v) = body.get(field) else { continue };
        if *field == "tools" || *field == "functions" {
            // Tool schemas are sent to the model as JSON text.
            size.chars = size.chars.saturating_add(json_chars(v));
        } else {
            // Schemas and settings are text whatever their members are called.
            size.skip_media = skip_media && !matches!(*field, "response_format" | "text");
            size.walk(v, Some(field), 0);
        }
    }
    let messages = ["messages", "input"]
        .iter()
        .filter_map(|f| body.get(f).and_then(Value::as_array))
        .map(|a| a.len() as u64)
        .sum::<u64>();
    size.chars
        .div_ceil(3)
        .saturating_add(size.tokens)
        .saturating_add(messages.saturating_mul(8))
        .saturating_add(16)
}

/// The output limit the request sets (`max_tokens` / `max_completion_tokens` /
/// `max_output_tokens`), if any: `null` is no limit (the provider's default applies), and a
/// whole number written as a float (`1e4`, `100.0`) is that number.
pub fn requested_output_tokens(body: &Value) -> Option<u64> {
    ["max_tokens", "max_completion_tokens", "max_output_tokens"]
        .iter()
        .find_map(|k| body.get(k).and_then(crate::usage::as_count))
}

/// The output limit for one answer when the request sets none: the model's maximum, else 32768.
/// The router writes it into such requests while a budget is set (see [`output_limit_field`]), so
/// that the provider cannot produce more than was held.
pub fn default_output_tokens(price: Option<&ModelPrice>) -> u64 {
    price
        .and_then(|p| p.max_output_tokens)
        .unwrap_or(DEFAULT_MAX_OUTPUT_TOKENS)
}

/// Where an API takes its output limit, when the router may add one: OpenAI chat
/// (`max_completion_tokens`, which includes reasoning) and Responses (`max_output_tokens`).
/// Legacy completions default to 16 tokens and Anthropic requires `max_tokens`, so neither needs it.
pub fn output_limit_field(kind: ApiKind) -> Option<&'static str> {
    match kind {
        ApiKind::OpenAiChat => Some("max_completion_tokens"),
        ApiKind::OpenAiResponses => Some("max_output_tokens"),
        _ => None,
    }
}

/// The output allowance to reserve for: the request's own limit (even above the catalog's
/// maximum: a beta header can raise the model's), else the model's maximum, else 32768 (legacy
/// completions: their default of 16), times the number of answers: `n` / `best_of` (at most
/// 128) and, for legacy completions, the number of prompts. Embeddings and count_tokens: 0.
pub fn max_output_tokens(body: &Value, kind: ApiKind, price: Option<&ModelPrice>) -> u64 {
    if matches!(
        kind,
        ApiKind::OpenAiEmbeddings | ApiKind::AnthropicCountTokens
    ) {
        return 0;
    }
    let out = match (requested_output_tokens(body), kind) {
        (Some(n), _) => n,
        (None, ApiKind::OpenAiCompletions) => LEGACY_COMPLETIONS_DEFAULT_TOKENS,
        (None, _) => default_output_tokens(price),
    };
    let choices = match kind {
        ApiKind::OpenAiChat | ApiKind::OpenAiCompletions => ["n", "best_of"]
            .iter()
            // `2.0` is 2 answers, as the output limits read it.
            .filter_map(|k| body.get(k).and_then(crate::usage::as_count))
            .max()
            .unwrap_or(1)
            .clamp(1, 128),
        _ => 1,
    };
    // `prompt` may be a list of prompts (strings or token-id lists): one answer set per prompt.
    let prompts = match (kind, body.get("prompt")) {
        (ApiKind::OpenAiCompletions, Some(Value::Array(items)))
            if items.iter().any(|i| !i.is_number()) =>
        {
            items.len().max(1) as u64
        }
        _ => 1,
    };
    out.saturating_mul(choices).saturating_mul(prompts)
}

/// OpenAI's default `max_tokens` for legacy completions.
const LEGACY_COMPLETIONS_DEFAULT_TOKENS: u64 = 16;

/// The service tier an OpenAI request asks for in `service_tier`: `priority`, `flex`, else
/// standard (`auto`, `default` or none).
///
/// `auto` and no tier run at the project's default tier, which is standard unless the project's
/// owner set another in its settings; the router cannot see that setting, so it holds them at
/// standard rates. A request that must be held at priority rates says `service_tier: "priority"`,
/// and one that must never run at them says `"default"`. Settlement prices the tier the answer
/// reports either way.
pub fn requested_service_tier(body: &Value, kind: ApiKind) -> ServiceTier {
    match kind {
        ApiKind::OpenAiChat | ApiKind::OpenAiCompletions | ApiKind::OpenAiResponses => body
            .get("service_tier")
            .and_then(Value::as_str)
            .map_or(ServiceTier::Standard, ServiceTier::parse),
        _ => ServiceTier::Standard,
    }
}

/// Worst-case cost of sending `body` to the model `price` describes, in micro-USD: the input
/// bound of [`crate::input_bound`] and the output allowance (plus predicted output), at the rates
/// of the service tier it asks for (see [`worst_case_micros_for`]).
pub fn worst_case_micros(
    body: &Value,
    kind: ApiKind,
    price: &ModelPrice,
) -> Result<u64, Unmetered> {
    worst_case_micros_for(
        body,
        kind,
        price,
        crate::bound::input_bound(body, kind, Some(price)),
    )
}

/// [`worst_case_micros`] for a given bound on the input: its audio part at audio rates, the
/// output at audio rates too when the request asks for an audio answer. A request for priority
/// processing is held at priority rates, and cannot be held ([`Unmetered::ServiceTier`]) when the
/// data has none for the model at this input size; one for flex at the higher of the flex and
/// standard rates (flex is never dearer, but a hold must not rest on that).
pub fn worst_case_micros_for(
    body: &Value,
    kind: ApiKind,
    price: &ModelPrice,
    input: InputBound,
) -> Result<u64, Unmetered> {
    let asked = requested_service_tier(body, kind);
    let at = |tier| worst_case_micros_at(body, kind, price, input, tier);
    match asked {
        ServiceTier::Standard => Ok(at(ServiceTier::Standard).unwrap_or(u64::MAX)),
        ServiceTier::Flex => Ok(at(ServiceTier::Standard)
            .unwrap_or(u64::MAX)
            .max(at(ServiceTier::Flex).unwrap_or(0))),
        ServiceTier::Priority | ServiceTier::Ultrafast => at(asked).ok_or(Unmetered::ServiceTier {
            tier: asked.as_str(),
            model: price.id.clone(),
        }),
    }
}

/// The worst case of `body` at the rates of `tier`, whatever it asks for, with the search fee of
/// each search the call runs whatever its answer says ([`crate::searches_per_call`]); `None` when
/// the data has no rates for that tier at this input size.
pub fn worst_case_micros_at(
    body: &Value,
    kind: ApiKind,
    price: &ModelPrice,
    input: InputBound,
    tier: ServiceTier,
) -> Option<u64> {
    let tokens = max_cost_micros_for(
        price,
        price.provider,
        &HoldTokens {
            input: input.tokens,
            input_audio: input.audio_tokens,
            output: max_output_tokens(body, kind, Some(price))
                .saturating_add(crate::bound::extra_output_bound(body, kind)),
            audio_output: crate::bound::audio_output(body),
            tier,
            us_only: crate::geo::may_run_us_only(body, kind),
        },
    )?;
    let model = body.get("model").and_then(Value::as_str).unwrap_or("");
    let searches = crate::bound::searches_per_call(kind, model);
    let fees = u128::from(searches) * u128::from(price.web_search.unwrap_or(0));
    Some(tokens.saturating_add(crate::cost::pico_to_micros_ceil(fees)))
}

#[derive(Default)]
struct Size {
    chars: u64,
    tokens: u64,
    /// Leave out image and audio parts (counted elsewhere).
    skip_media: bool,
}

/// Letter-and-digit runs longer than this are not words (hashes, keys, base64).
const LONG_RUN: u64 = 12;

/// Byte classes for [`Size::add_text`]: ASCII letters and digits, ASCII whitespace, other ASCII,
/// and otherwise `UTF8_LEAD` plus the length of the character a lead byte starts (2 to 4).
const WORD: u8 = 0;
const SPACE: u8 = 1;
const SYMBOL: u8 = 2;
const UTF8_LEAD: u8 = 8;
static BYTE_CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = if b.is_ascii_alphanumeric() {
            WORD
        } else if b.is_ascii_whitespace() {
            SPACE
        } else if b.is_ascii() {
            SYMBOL
        } else if b >= 0xF0 {
            UTF8_LEAD + 4
        } else if b >= 0xE0 {
            UTF8_LEAD + 3
        } else {
            UTF8_LEAD + 2
        };
        i += 1;
    }
    t
};

impl Size {
    /// Text weight as an upper bound on tokens for what tokenizers split finely: plain words and
    /// spaces count at 3 characters a token; ASCII punctuation and symbols one token each; long
    /// letter-and-digit runs (hashes, keys, base64) 2 characters a token; non-ASCII characters (CJK,
    /// emoji) one token per UTF-8 byte beyond the first, at least one.
    fn add_text(&mut self, s: &str) {
        // One table lookup per byte (prompts are mostly ASCII and this runs over every byte);
        // counts are kept in locals and added once.
        let bytes = s.as_bytes();
        let (mut chars, mut tokens) = (0u64, 0u64);
        let mut i = 0;
        while i < bytes.len() {
            match BYTE_CLASS[bytes[i] as usize] {
                WORD => {
                    let start = i;
                    i += 1;
                    while i < bytes.len() && BYTE_CLASS[bytes[i] as usize] == WORD {
                        i += 1;
                    }
                    let run = (i - start) as u64;
                    if run > LONG_RUN {
                        tokens += run.div_ceil(2);
                    } else {
                        chars += run;
                    }
                }
                SPACE => {
                    chars += 1;
                    i += 1;
                }
                SYMBOL => {
                    tokens += 1;
                    i += 1;
                }
                // A UTF-8 lead byte gives the character's length (`s` is valid UTF-8).
                lead => {
                    let len = (lead - UTF8_LEAD) as u64;
                    tokens += (len - 1).max(1);
                    i += len as usize;
                }
            }
        }
        self.chars = self.chars.saturating_add(chars);
        self.tokens = self.tokens.saturating_add(tokens);
    }

    fn walk(&mut self, v: &Value, key: Option<&str>, depth: usize) {
        if depth > MAX_DEPTH {
            return;
        }
        match v {
            Value::String(s) if is_media_blob(key, s) => {
                let extra = (s.len() as u64) / MEDIA_CHARS_PER_TOKEN;
                self.tokens = self.tokens.saturating_add(MEDIA_BLOB_TOKENS.max(extra));
            }
            Value::String(s) => self.add_text(s),
            // Token ids in `prompt` / `input` arrays: one token each.
            Value::Number(_) if matches!(key, Some("prompt" | "input")) => {
                self.tokens = self.tokens.saturating_add(1)
            }
            Value::Array(items) => items.iter().for_each(|i| self.walk(i, key, depth + 1)),
            Value::Object(map) if self.skip_media && is_media_part(map) => {}
            Value::Object(map) => map
                .iter()
                .for_each(|(k, v)| self.walk(v, Some(k), depth + 1)),
            _ => {}
        }
    }
}

/// An image or audio part, as [`crate::input_bound`] recognises them.
fn is_media_part(map: &serde_json::Map<String, Value>) -> bool {
    matches!(
        map.get("type").and_then(Value::as_str),
        Some("image_url" | "input_image" | "image" | "input_audio")
    )
}

fn is_media_blob(key: Option<&str>, s: &str) -> bool {
    s.len() >= MEDIA_MIN_CHARS
        && match key {
            Some("data" | "file_data") => true,
            Some("url" | "image_url") => s.starts_with("data:"),
            _ => false,
        }
}

fn json_chars(v: &Value) -> u64 {
    serde_json::to_string(v)
        .map(|s| s.chars().count() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
#[path = "estimate_tests.rs"]
mod tests;
