//! Hard upper bounds on what one request can bill, for budget holds.
//!
//! [`crate::estimate_input_tokens`] is a best guess (used to price a call whose usage never
//! arrived); a hold needs a bound the provider cannot exceed, or concurrent calls overshoot the
//! budget. The bounds here rest on facts, not on text statistics:
//! - byte-level BPE tokenizers (OpenAI, Anthropic) never give a token less than one byte, so the
//!   UTF-8 bytes of every text a request sends bound its text tokens;
//! - an image costs at most [`IMAGE_TOKENS`] tokens at any size or detail
//!   ([`GPT_4O_MINI_IMAGE_TOKENS`] on gpt-4o-mini, which counts image tokens ~33× higher;
//!   [`HIGH_RES_IMAGE_TOKENS`] on Claude Opus 4.7 and later, which read larger images;
//!   [`ORIGINAL_DETAIL_IMAGE_TOKENS`] for an OpenAI image sent with `detail: "original"`);
//! - an audio clip costs at most one token per [`AUDIO_BYTES_PER_TOKEN`] bytes of it, or for a PCM
//!   WAV clip [`WAV_AUDIO_TOKENS_PER_SECOND`] per second of the duration its header gives, and
//!   those tokens are held at the audio input rate;
//! - a billed call's input never exceeds the model's context window (a larger one is refused);
//! - input the request only refers to (a previous response, a stored file or prompt, a document
//!   by URL, an earlier audio answer by id) can be anything up to the context window.

use crate::api_kind::ApiKind;
use crate::price::ModelPrice;
use serde_json::Value;

/// Upper bound on one image's input tokens: OpenAI's patch models reach ~3,800 at the largest
/// detail, tiled models 1,445, Anthropic ~1,600 before Claude Opus 4.7.
pub const IMAGE_TOKENS: u64 = 4_096;
/// One image's input tokens at most on Claude Opus 4.7 and later, which read images up to 2,576
/// pixels on the long edge and ~3.75 megapixels, a visual token per 28 × 28 patch after padding
/// each side to a multiple of 28: at most 3.75M / 784 + (2,576 + 1,456) / 28 + 1 ≈ 4,928 tokens
/// (the older rule of width × height / 750 gives 5,000 for the same pixels).
pub const HIGH_RES_IMAGE_TOKENS: u64 = 5_000;
/// One image's input tokens at most with OpenAI's `detail: "original"`: up to 10,000 patches of
/// 32 × 32 pixels, times the model's patch multiplier, of which the largest OpenAI lists is
/// 2.46 (gpt-4.1-nano): 25,000.
pub const ORIGINAL_DETAIL_IMAGE_TOKENS: u64 = 25_000;
/// One image's input tokens at most for `gpt-4o-mini`, which OpenAI bills at 2,833 tokens per
/// image plus 5,667 per 512-pixel tile (its image prices equal gpt-4o's at a ~33× lower token
/// rate); a high-detail image is at most 8 tiles (2048 × 768 after scaling).
pub const GPT_4O_MINI_IMAGE_TOKENS: u64 = 2_833 + 8 * 5_667;

/// The image bound for `price`'s model (a fine-tuned `ft:gpt-4o-mini` counts images as its base
/// model does).
fn image_tokens(price: Option<&ModelPrice>) -> u64 {
    match price {
        Some(p) if base_model(&p.id).starts_with("gpt-4o-mini") => GPT_4O_MINI_IMAGE_TOKENS,
        Some(p)
            if p.provider == crate::Provider::Anthropic
                && crate::geo::claude_version(&p.id).is_some_and(|v| v >= (4, 7)) =>
        {
            HIGH_RES_IMAGE_TOKENS
        }
        _ => IMAGE_TOKENS,
    }
}

/// A catalog id without the `ft:` of a fine-tuned model.
fn base_model(id: &str) -> &str {
    id.strip_prefix("ft:").unwrap_or(id)
}
/// Bytes of an inline audio clip (decoded from base64) per audio token, at most.
///
/// OpenAI bills audio input at about 10 tokens a second (one per 100 ms: $0.06 a minute at
/// $100 per 1M tokens, as first announced). Chat accepts `wav` and `mp3` clips: the leanest MP3 is
/// 8 kbit/s (1,000 bytes a second, the lowest bitrate of MPEG-2.5 Layer III) and the leanest PCM
/// WAV 8 kHz 8-bit mono (8,000 bytes a second), so a clip has at least 100 bytes per token. 32
/// leaves room for a token rate up to 3× the documented one and for WAV files holding a lean
/// speech codec (G.723.1 runs at 5.3 kbit/s, 66 bytes per token); the context window caps the
/// hold of a long clip in any case.
pub const AUDIO_BYTES_PER_TOKEN: u64 = 32;
/// Audio tokens held per second of a WAV clip whose header fixes its duration (PCM, float, A-law
/// or µ-law samples), the duration rounded up to whole seconds; never more than the byte rule
/// ([`AUDIO_BYTES_PER_TOKEN`]) gives.
///
/// OpenAI bills audio input at about 10 tokens a second; 30 leaves the same 3× room for a higher
/// rate as the byte rule does. Such a clip's duration is its sample frames over its sample rate,
/// which the header gives (frames are `block_align` bytes), so it cannot be longer than the clip's
/// bytes over the header's bytes per second: the smallest of its `byte_rate` and `sample_rate`
/// times its frame size is used, whichever field a decoder reads. An ordinary 24 kHz 16-bit mono
/// clip (48,000 bytes a second) is held at 1,600 bytes a token instead of 32.
pub const WAV_AUDIO_TOKENS_PER_SECOND: u64 = 30;
/// Context assumed for a model whose context window the catalog does not give (or whose long
/// context tier means a beta can raise it): the largest window any listed model has.
pub const FALLBACK_CONTEXT_TOKENS: u64 = 1_050_000;
/// Tokens a provider adds for one tool it defines itself (e.g. Anthropic's computer or bash
/// tools), beyond the request's bytes.
const PROVIDER_TOOL_TOKENS: u64 = 2_048;
/// Tokens of the system prompt Anthropic adds to every Messages request that defines tools (its
/// tool-use pricing page: 346 with `tool_choice` auto or none and 313 with any or a tool on current
/// models, 530 on Claude 3 Opus with auto), billed as input but not in the request's bytes.
const ANTHROPIC_TOOL_SYSTEM_TOKENS: u64 = 600;
/// Tokens per message for role markers and separators, and per request.
const PER_MESSAGE_TOKENS: u64 = 8;
const PER_REQUEST_TOKENS: u64 = 16;
const MAX_DEPTH: usize = 256;
/// Bytes of an audio part besides its clip (`type`, `format` and their keys), counted as text.
const AUDIO_PART_TEXT_BYTES: usize = 96;

use crate::unmetered::is_anthropic_client_tool;
pub use crate::unmetered::{is_chat_search_model, searches_per_call, unmetered, Unmetered};

/// Context window to bound input by: the catalog's, unless the model has a long-context tier
/// (a beta header can then raise the window) or the catalog does not know it.
fn context_tokens(price: Option<&ModelPrice>) -> u64 {
    match price {
        Some(p) if p.long_context.is_none() => p.context_window.unwrap_or(FALLBACK_CONTEXT_TOKENS),
        _ => FALLBACK_CONTEXT_TOKENS,
    }
}

/// Upper bound on the input one request can bill, and on how much of it may be audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputBound {
    /// Input tokens of all kinds.
    pub tokens: u64,
    /// How many of `tokens` may be audio (all of them when the input is not carried whole).
    pub audio_tokens: u64,
}

impl InputBound {
    /// The whole context window, any of it audio: for input the request does not carry.
    fn whole(context: u64) -> InputBound {
        InputBound {
            tokens: context,
            audio_tokens: context,
        }
    }
}

/// Upper bound on the input tokens `body` can bill: [`input_bound`]`.tokens`.
pub fn input_token_bound(body: &Value, kind: ApiKind, price: Option<&ModelPrice>) -> u64 {
    input_bound(body, kind, price).tokens
}

/// Upper bound on the input `body` can bill: text bytes, [`IMAGE_TOKENS`] per image, one token per
/// [`AUDIO_BYTES_PER_TOKEN`] bytes of inline audio (fewer for a WAV clip whose header gives its
/// duration: [`WAV_AUDIO_TOKENS_PER_SECOND`]; counted as audio), a fixed allowance per
/// provider-defined client tool and per message; the whole context window, any of it audio, when
/// the request refers to input it does not carry (`previous_response_id`, `conversation`, a stored
/// `prompt`, files and documents by id, URL or base64, an earlier audio answer by id). Never above
/// the context window.
pub fn input_bound(body: &Value, kind: ApiKind, price: Option<&ModelPrice>) -> InputBound {
    let context = context_tokens(price);
    if kind == ApiKind::Other {
        return InputBound::whole(context);
    }
    if kind == ApiKind::OpenAiResponses
        && ["previous_response_id", "conversation", "prompt"]
            .iter()
            .any(|k| body.get(k).is_some_and(|v| !v.is_null()))
    {
        return InputBound::whole(context);
    }
    let mut walk = walk_input(body, kind, price, false);
    if walk.hidden {
        return InputBound::whole(context);
    }
    if kind == ApiKind::AnthropicMessages {
        let provider_tools = body
            .get("tools")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter(|t| {
                        t.get("type")
                            .and_then(Value::as_str)
                            .is_some_and(is_anthropic_client_tool)
                    })
                    .count() as u64
            })
            .unwrap_or(0);
        walk.tokens = walk
            .tokens
            .saturating_add(provider_tools.saturating_mul(PROVIDER_TOOL_TOKENS));
        let any_tools = body
            .get("tools")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty());
        if any_tools {
            walk.tokens = walk.tokens.saturating_add(ANTHROPIC_TOOL_SYSTEM_TOKENS);
        }
    }
    let messages = ["messages", "input"]
        .iter()
        .filter_map(|f| body.get(f).and_then(Value::as_array))
        .map(|a| a.len() as u64)
        .sum::<u64>();
    let tokens = walk
        .bytes
        .saturating_add(walk.tokens)
        .saturating_add(walk.audio)
        .saturating_add(messages.saturating_mul(PER_MESSAGE_TOKENS))
        .saturating_add(PER_REQUEST_TOKENS)
        .min(context);
    InputBound {
        tokens,
        audio_tokens: walk.audio.min(tokens),
    }
}

/// Walks the input members of `body` (none for `Other`), counting what [`input_bound`] counts;
/// with `through_hidden`, also what comes after a part the request only refers to.
fn walk_input(
    body: &Value,
    kind: ApiKind,
    price: Option<&ModelPrice>,
    through_hidden: bool,
) -> Walk {
    let mut walk = Walk {
        image_tokens: image_tokens(price),
        through_hidden,
        ..Walk::default()
    };
    for field in crate::estimate::input_fields(kind) {
        if let Some(v) = body.get(field) {
            let mode = match *field {
                "tools" | "functions" | "response_format" | "text" => Mode::Plain,
                "prompt" => Mode::TokenIds,
                "input" if kind != ApiKind::OpenAiResponses => Mode::TokenIds,
                _ => Mode::Content,
            };
            walk.value(v, mode, 0);
        }
    }
    walk
}

/// Tokens of the media a request carries, counted as [`input_bound`] counts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct MediaTokens {
    /// Images: [`IMAGE_TOKENS`] each (the model's own image bound).
    pub(crate) image: u64,
    /// Inline audio clips: their audio tokens.
    pub(crate) audio: u64,
}

/// The images and inline audio clips of `body`, at the counts of [`input_bound`] (also where the
/// request refers to input it does not carry).
pub(crate) fn media_tokens(body: &Value, kind: ApiKind, price: Option<&ModelPrice>) -> MediaTokens {
    let walk = walk_input(body, kind, price, true);
    MediaTokens {
        image: walk.images,
        audio: walk.audio,
    }
}

/// Whether the answer to `body` may be audio: the request asks for it with `modalities`
/// containing `"audio"` or with an `audio` output configuration (OpenAI chat).
pub fn audio_output(body: &Value) -> bool {
    let modalities = body
        .get("modalities")
        .and_then(Value::as_array)
        .is_some_and(|m| m.iter().any(|x| x.as_str() == Some("audio")));
    modalities || body.get("audio").is_some_and(|a| !a.is_null())
}

/// Output the request can bill beyond its output limit: OpenAI's predicted output (`prediction`)
/// is billed as output where the model does not use it, one token per byte at most.
pub fn extra_output_bound(body: &Value, kind: ApiKind) -> u64 {
    if kind != ApiKind::OpenAiChat {
        return 0;
    }
    let mut walk = Walk {
        image_tokens: IMAGE_TOKENS,
        ..Walk::default()
    };
    if let Some(p) = body.get("prediction") {
        walk.value(p, Mode::Plain, 0);
    }
    walk.bytes.saturating_add(walk.tokens)
}

/// How a walk reads what it meets.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// Message content: typed parts (images, files, stored items) are recognised.
    Content,
    /// Prompts and embedding inputs, where numbers are token ids.
    TokenIds,
    /// Schemas and settings sent as text: every key and value is text, whatever it is called.
    Plain,
}

#[derive(Default)]
struct Walk {
    /// UTF-8 bytes of texts, with the quotes, colons and commas of their JSON (tool schemas and
    /// structured content reach the model as text).
    bytes: u64,
    /// Tokens counted directly: images, token ids.
    tokens: u64,
    /// Tokens of images (a part of `tokens`).
    images: u64,
    /// Audio tokens of inline clips.
    audio: u64,
    /// The request refers to input it does not carry.
    hidden: bool,
    /// Keep counting after `hidden` is set (for the media of an estimate).
    through_hidden: bool,
    /// Tokens one image can bill for this model.
    image_tokens: u64,
}

impl Walk {
    fn add(&mut self, bytes: usize) {
        self.bytes = self.bytes.saturating_add(bytes as u64);
    }

    fn value(&mut self, v: &Value, mode: Mode, depth: usize) {
        if self.hidden && !self.through_hidden {
            return;
        }
        if depth > MAX_DEPTH {
            // serde_json refuses nesting deeper than 128, so no parsed body gets here.
            self.hidden = true;
            return;
        }
        match v {
            Value::String(s) => self.add(s.len() + 3),
            Value::Number(_) if mode == Mode::TokenIds => {
                self.tokens = self.tokens.saturating_add(1)
            }
            // A parsed number prints in at most 24 characters (f64, i64 or u64).
            Value::Number(_) => self.add(25),
            Value::Array(items) => {
                self.add(2);
                items.iter().for_each(|i| self.value(i, mode, depth + 1))
            }
            Value::Object(map) => self.object(map, mode, depth),
            Value::Bool(_) | Value::Null => self.add(6),
        }
    }

    fn object(&mut self, map: &serde_json::Map<String, Value>, mode: Mode, depth: usize) {
        if mode != Mode::Plain && self.special_part(map) {
            return;
        }
        self.add(2);
        let inner = if mode == Mode::TokenIds {
            Mode::Content
        } else {
            mode
        };
        for (k, v) in map {
            self.add(k.len() + 3);
            self.value(v, inner, depth + 1);
        }
    }

    /// Images count [`IMAGE_TOKENS`]; audio clips their audio tokens; files, documents, stored
    /// items and earlier audio answers sent back by id make the input hidden.
    fn special_part(&mut self, map: &serde_json::Map<String, Value>) -> bool {
        // An earlier audio answer sent back by id (OpenAI chat: an assistant turn's
        // `"audio": {"id": "audio_…"}`): the provider feeds it to the model as audio input of a
        // length the request does not show.
        if map
            .get("audio")
            .is_some_and(|a| a.is_object() && a.get("id").is_some())
        {
            self.hidden = true;
            return true;
        }
        let ty = map.get("type").and_then(Value::as_str).unwrap_or("");
        // Audio: OpenAI `{"type":"input_audio","input_audio":{"data":<base64>,"format":…}}`.
        if ty == "input_audio" {
            let clip = map.get("input_audio");
            let data = clip.and_then(|a| a.get("data")).and_then(Value::as_str);
            match data {
                Some(b64) => {
                    // Base64 carries 3 bytes in 4 characters.
                    let bytes = (b64.len() as u64).saturating_mul(3) / 4;
                    let by_bytes = bytes.div_ceil(AUDIO_BYTES_PER_TOKEN);
                    let wav = clip
                        .and_then(|a| a.get("format"))
                        .and_then(Value::as_str)
                        .is_some_and(|f| f.eq_ignore_ascii_case("wav"));
                    let tokens = match wav.then(|| wav_bytes_per_second(b64)).flatten() {
                        Some(rate) => bytes
                            .div_ceil(rate)
                            .saturating_mul(WAV_AUDIO_TOKENS_PER_SECOND)
                            .min(by_bytes),
                        None => by_bytes,
                    };
                    self.audio = self.audio.saturating_add(tokens);
                    // The part's type, format and keys, as text.
                    self.add(AUDIO_PART_TEXT_BYTES);
                }
                // A clip by reference: its length is unknown here.
                None => self.hidden = true,
            }
            return true;
        }
        // Images: OpenAI chat `image_url`, Responses `input_image`, Anthropic `image`.
        if matches!(ty, "image_url" | "input_image" | "image") {
            // OpenAI's `detail: "original"` (chat: inside `image_url`) reads far larger images.
            let detail = map
                .get("detail")
                .or_else(|| map.get("image_url").and_then(|u| u.get("detail")))
                .and_then(Value::as_str);
            let tokens = if detail == Some("original") {
                self.image_tokens.max(ORIGINAL_DETAIL_IMAGE_TOKENS)
            } else {
                self.image_tokens
            };
            self.tokens = self.tokens.saturating_add(tokens);
            self.images = self.images.saturating_add(tokens);
            return true;
        }
        // Files and documents (PDF pages are text plus an image each): by reference or inline,
        // their tokens are not their bytes. Anthropic documents with a plain-text source are text.
        let text_document = ty == "document"
            && map
                .get("source")
                .and_then(|s| s.get("type"))
                .and_then(Value::as_str)
                .is_some_and(|t| t == "text" || t == "content");
        if (matches!(ty, "file" | "input_file" | "document" | "item_reference") && !text_document)
            || map.contains_key("file_id")
            || map.contains_key("file_url")
        {
            self.hidden = true;
            return true;
        }
        false
    }
}

/// WAV format tags whose samples have a fixed size, so the header fixes the duration: PCM, IEEE
/// float, A-law, µ-law.
const FIXED_SIZE_WAV_FORMATS: [u16; 4] = [1, 3, 6, 7];
/// The format tag of WAVE_FORMAT_EXTENSIBLE, whose sample format is in its extension.
const WAV_FORMAT_EXTENSIBLE: u16 = 0xFFFE;
/// Bytes of a clip decoded to find its `fmt ` chunk (chunks such as `LIST` may come first).
const WAV_HEADER_BYTES: usize = 1_024;

/// The fewest bytes a second of the base64 WAV clip `b64` can hold, from its RIFF header: the
/// smaller of its `byte_rate` and its sample rate times its frame size (the smaller of
/// `block_align` and the channels' sample bytes). `None` when there is no readable header or its
/// samples are not of a fixed size (compressed formats).
fn wav_bytes_per_second(b64: &str) -> Option<u64> {
    let head = decode_base64_prefix(b64, WAV_HEADER_BYTES);
    if head.len() < 12 || &head[0..4] != b"RIFF" || &head[8..12] != b"WAVE" {
        return None;
    }
    let u16_at = |b: &[u8], i: usize| Some(u16::from_le_bytes(b.get(i..i + 2)?.try_into().ok()?));
    let u32_at = |b: &[u8], i: usize| Some(u32::from_le_bytes(b.get(i..i + 4)?.try_into().ok()?));
    let mut at = 12;
    let fmt = loop {
        let id = head.get(at..at + 4)?;
        let size = u32_at(&head, at + 4)? as usize;
        if id == b"fmt " {
            break head.get(at + 8..(at + 8).saturating_add(size).min(head.len()))?;
        }
        // Chunks are padded to an even size.
        at = at
            .checked_add(8)?
            .checked_add(size)?
            .checked_add(size % 2)?;
    };
    let mut tag = u16_at(fmt, 0)?;
    if tag == WAV_FORMAT_EXTENSIBLE {
        // The sub-format GUID starts with the format tag it extends.
        tag = u16_at(fmt, 24)?;
    }
    if !FIXED_SIZE_WAV_FORMATS.contains(&tag) {
        return None;
    }
    let channels = u64::from(u16_at(fmt, 2)?);
    let sample_rate = u64::from(u32_at(fmt, 4)?);
    let byte_rate = u64::from(u32_at(fmt, 8)?);
    let block_align = u64::from(u16_at(fmt, 12)?);
    let bits = u64::from(u16_at(fmt, 14)?);
    let frame = block_align.min((channels * bits).div_ceil(8));
    let rate = byte_rate.min(sample_rate.saturating_mul(frame));
    (rate > 0).then_some(rate)
}

/// Up to `max` bytes decoded from the start of base64 text (standard or URL-safe alphabet); the
/// decoding stops at padding or at the first character of neither.
fn decode_base64_prefix(b64: &str, max: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(max + 2);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in b64.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => break,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
        if out.len() >= max {
            break;
        }
    }
    out
}

#[cfg(test)]
#[path = "bound_tests.rs"]
mod tests;
