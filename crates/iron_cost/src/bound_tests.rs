use super::*;
use crate::catalog::Catalog;
use serde_json::json;

fn chat(content: serde_json::Value) -> Value {
    json!({"model":"gpt-4o","messages":[{"role":"user","content":content}]})
}

#[test]
fn text_is_bounded_by_its_bytes_where_the_estimate_undercounts() {
    let gpt4o = Catalog::builtin().price("gpt-4o");
    // Texts a tokenizer splits into about one token per one or two bytes (a review measured the
    // best-guess estimate 2-3× under the real count on these).
    let spaced_digits: String = (0..4000).map(|i| format!("{} ", i % 10)).collect();
    let mixed: String = (0..2000)
        .map(|i| format!("a{}b{} ", i % 10, i % 7))
        .collect();
    let hex: String = (0..3000).map(|i| format!("{:02x} ", i % 256)).collect();
    for text in [spaced_digits, mixed, hex] {
        let body = chat(json!(text));
        let bound = input_token_bound(&body, ApiKind::OpenAiChat, gpt4o);
        assert!(bound >= text.len() as u64, "{bound} < {} bytes", text.len());
        assert!(bound >= crate::estimate_input_tokens(&body, ApiKind::OpenAiChat));
    }
}

#[test]
fn the_bound_never_exceeds_the_context_window() {
    let gpt4o = Catalog::builtin().price("gpt-4o");
    let body = chat(json!("x".repeat(2_000_000)));
    assert_eq!(
        input_token_bound(&body, ApiKind::OpenAiChat, gpt4o),
        128_000
    );
    // Unknown window, or a long-context tier a beta header unlocks: the largest window listed.
    assert_eq!(
        input_token_bound(&body, ApiKind::OpenAiChat, None),
        FALLBACK_CONTEXT_TOKENS
    );
    let sonnet = Catalog::builtin().price("claude-sonnet-4-5");
    assert!(sonnet.is_some_and(|p| p.long_context.is_some()));
    let body = json!({"messages":[{"role":"user","content":"x".repeat(2_000_000)}]});
    assert_eq!(
        input_token_bound(&body, ApiKind::AnthropicMessages, sonnet),
        FALLBACK_CONTEXT_TOKENS
    );
}

#[test]
fn input_the_request_only_refers_to_is_held_at_the_context_window() {
    let gpt4o = Catalog::builtin().price("gpt-4o");
    let r = ApiKind::OpenAiResponses;
    for body in [
        json!({"input":"next","previous_response_id":"resp_1"}),
        json!({"input":"next","conversation":"conv_1"}),
        json!({"prompt":{"id":"pmpt_1"}}),
        json!({"input":[{"type":"item_reference","id":"msg_1"}]}),
        json!({"input":[{"role":"user","content":[{"type":"input_file","file_id":"file-1"}]}]}),
        json!({"input":[{"role":"user","content":[{"type":"input_file","file_url":"https://x/a.pdf"}]}]}),
    ] {
        assert_eq!(input_token_bound(&body, r, gpt4o), 128_000, "{body}");
    }
    let doc = json!({"type":"document","source":{"type":"url","url":"https://x/a.pdf"}});
    let pdf = json!({"type":"document","source":{"type":"base64","media_type":"application/pdf","data":"JVBERi0="}});
    let chat_file =
        json!({"type":"file","file":{"file_data":"data:application/pdf;base64,JVBERi0="}});
    assert_eq!(
        input_token_bound(&chat(json!([chat_file])), ApiKind::OpenAiChat, gpt4o),
        128_000
    );
    for part in [doc, pdf] {
        let body = json!({"messages":[{"role":"user","content":[part]}]});
        assert_eq!(
            input_token_bound(&body, ApiKind::AnthropicMessages, None),
            FALLBACK_CONTEXT_TOKENS
        );
    }
    // A plain-text document is text.
    let text_doc = json!({"messages":[{"role":"user","content":[
        {"type":"document","source":{"type":"text","media_type":"text/plain","data":"hello"}}]}]});
    assert!(input_token_bound(&text_doc, ApiKind::AnthropicMessages, None) < 200);
    // Without a reference the same Responses body is bounded by its bytes.
    assert!(input_token_bound(&json!({"input":"next"}), r, gpt4o) < 100);
}

#[test]
fn images_count_their_maximum_whatever_their_size_or_source() {
    let gpt4o = Catalog::builtin().price("gpt-4o");
    let by_url = chat(json!([{"type":"image_url","image_url":{"url":"https://x/i.png"}}]));
    let tiny_inline =
        chat(json!([{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBO"}}]));
    for body in [by_url, tiny_inline] {
        let b = input_token_bound(&body, ApiKind::OpenAiChat, gpt4o);
        assert!((IMAGE_TOKENS..IMAGE_TOKENS + 100).contains(&b), "{b}");
    }
    let two = json!({"messages":[{"role":"user","content":[
        {"type":"image","source":{"type":"url","url":"https://x/a.png"}},
        {"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBO"}}]}]});
    assert!(input_token_bound(&two, ApiKind::AnthropicMessages, None) >= 2 * IMAGE_TOKENS);
    // gpt-4o-mini bills an image at up to 2,833 + 8 × 5,667 tokens (a high-detail 2048×768
    // image): a review's fake provider charged 36,835 for one against a hold of 4,096.
    let mini = Catalog::builtin().price("gpt-4o-mini");
    let image =
        chat(json!([{"type":"image_url","image_url":{"url":"https://x/i.png","detail":"high"}}]));
    let b = input_token_bound(&image, ApiKind::OpenAiChat, mini);
    assert!(b >= GPT_4O_MINI_IMAGE_TOKENS && b >= 48_169, "{b}");
    let dated = Catalog::builtin().price("gpt-4o-mini-2024-07-18");
    assert!(input_token_bound(&image, ApiKind::OpenAiChat, dated) >= 48_169);
}

#[test]
fn tool_schemas_are_text_even_when_a_property_looks_like_a_part() {
    let gpt4o = Catalog::builtin().price("gpt-4o");
    let body = json!({"messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{
        "name":"read","parameters":{"type":"object","properties":{"file_id":{"type":"string"},"image":{"type":"image"}}}}}]});
    let b = input_token_bound(&body, ApiKind::OpenAiChat, gpt4o);
    assert!((100..1000).contains(&b), "{b}");
}

#[test]
fn token_id_prompts_count_one_token_per_id() {
    let body = json!({"prompt":[[1,2,3],[4,5]]});
    let b = input_token_bound(&body, ApiKind::OpenAiCompletions, None);
    assert!((5..40).contains(&b), "{b}");
}

#[test]
fn provider_run_tools_and_background_calls_cannot_be_held() {
    let r = ApiKind::OpenAiResponses;
    assert_eq!(
        unmetered(&json!({"input":"x","background":true}), r),
        Some(Unmetered::Background)
    );
    assert_eq!(
        unmetered(
            &json!({"tools":[{"type":"function","name":"f"},{"type":"web_search"}]}),
            r
        ),
        Some(Unmetered::ServerTool("web_search".into()))
    );
    assert_eq!(
        unmetered(&json!({"tools":[{"type":"function","name":"f"}]}), r),
        None
    );
    let a = ApiKind::AnthropicMessages;
    assert_eq!(
        unmetered(
            &json!({"tools":[{"type":"web_fetch_20250910","name":"web_fetch"}]}),
            a
        ),
        Some(Unmetered::ServerTool("web_fetch_20250910".into()))
    );
    assert_eq!(
        unmetered(
            &json!({"mcp_servers":[{"type":"url","url":"https://m"}]}),
            a
        ),
        Some(Unmetered::ServerTool("mcp_servers".into()))
    );
    // Client tools: plain ones, and Anthropic's computer / bash / editor tools (run by the caller).
    assert_eq!(
        unmetered(
            &json!({"tools":[{"name":"f","input_schema":{}},{"type":"bash_20250124","name":"bash"}]}),
            a
        ),
        None
    );
    // Chat completions run no tools of their own but web search (see below); background is a
    // Responses option.
    assert_eq!(
        unmetered(
            &json!({"background":true,"tools":[{"type":"web_search"}]}),
            ApiKind::OpenAiChat
        ),
        None
    );
}

#[test]
fn predicted_output_adds_to_the_output_bound() {
    let body = json!({"prediction":{"type":"content","content":"x".repeat(1000)}});
    assert!(extra_output_bound(&body, ApiKind::OpenAiChat) >= 1000);
    assert_eq!(extra_output_bound(&body, ApiKind::OpenAiResponses), 0);
}

/// A chat request to gpt-audio carrying one clip of `b64_chars` base64 characters.
fn audio_request(b64_chars: usize, extra: Value) -> Value {
    let mut body = json!({"model":"gpt-audio","messages":[{"role":"user","content":[
        {"type":"text","text":"What is said?"},
        {"type":"input_audio","input_audio":{"data":"A".repeat(b64_chars),"format":"mp3"}}]}]});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    body
}

#[test]
fn a_long_audio_clip_is_held_at_the_audio_rate() {
    let gpt_audio = Catalog::builtin().price("gpt-audio").expect("priced");
    // 4,000,000 base64 characters: 3,000,000 bytes, 50 minutes of the leanest MP3 (8 kbit/s),
    // billed at about 10 tokens a second: 30,000 audio tokens at $32/M = 960,000 µ$.
    let body = audio_request(4_000_000, json!({"max_completion_tokens": 100}));
    let bound = input_bound(&body, ApiKind::OpenAiChat, Some(gpt_audio));
    assert_eq!(bound.audio_tokens, 3_000_000 / AUDIO_BYTES_PER_TOKEN);
    assert!(bound.tokens >= bound.audio_tokens + 13);
    let billed = crate::Usage {
        input_tokens: 30_010,
        input_audio_tokens: 30_000,
        output_tokens: 100,
        ..crate::Usage::default()
    };
    let cost = crate::cost_micros(gpt_audio, crate::Provider::OpenAi, &billed);
    assert!(cost >= 960_000, "{cost}");
    // Held as text the clip was capped at the context window: 128,000 × $2.50/M = 320,000 µ$.
    let hold = crate::worst_case_micros(&body, ApiKind::OpenAiChat, gpt_audio).expect("held");
    assert!(hold >= cost, "hold {hold} < cost {cost}");
    // The whole bound may be audio at $32/M, or text at $2.50/M: every split is covered.
    assert_eq!(
        hold,
        bound.audio_tokens * 32 + ((bound.tokens - bound.audio_tokens) * 5).div_ceil(2) + 100 * 10
    );
}

#[test]
fn an_audio_answer_is_held_at_the_audio_output_rate() {
    let gpt_audio = Catalog::builtin().price("gpt-audio").expect("priced");
    let text = chat(json!("Say hello"))
        .as_object()
        .cloned()
        .map(Value::Object);
    let mut spoken = text.clone().expect("object");
    spoken["modalities"] = json!(["text", "audio"]);
    spoken["audio"] = json!({"voice":"alloy","format":"wav"});
    spoken["max_completion_tokens"] = json!(1000);
    let mut written = text.expect("object");
    written["max_completion_tokens"] = json!(1000);
    assert!(audio_output(&spoken));
    assert!(!audio_output(&written));
    // 1,000 output tokens all audio: 1000 × $64/M = 64,000 µ$.
    let all_audio = crate::Usage {
        output_tokens: 1000,
        output_audio_tokens: 1000,
        ..crate::Usage::default()
    };
    assert_eq!(
        crate::cost_micros(gpt_audio, crate::Provider::OpenAi, &all_audio),
        64_000
    );
    let hold = crate::worst_case_micros(&spoken, ApiKind::OpenAiChat, gpt_audio).expect("held");
    assert!(hold >= 64_000, "{hold}");
    // Without an audio answer, output is held at the text rate ($10/M).
    let hold = crate::worst_case_micros(&written, ApiKind::OpenAiChat, gpt_audio).expect("held");
    assert!((10_000..64_000).contains(&hold), "{hold}");
    // `audio` alone asks for an audio answer too.
    assert!(audio_output(
        &json!({"audio":{"voice":"alloy","format":"mp3"}})
    ));
}

#[test]
fn an_audio_part_without_inline_data_is_held_at_the_context_window() {
    let gpt_audio = Catalog::builtin().price("gpt-audio").expect("priced");
    let body = chat(json!([{"type":"input_audio","input_audio":{"format":"wav"}}]));
    assert_eq!(
        input_bound(&body, ApiKind::OpenAiChat, Some(gpt_audio)),
        InputBound {
            tokens: 128_000,
            audio_tokens: 128_000
        }
    );
}

/// Multi-turn audio chat sends an earlier audio answer back by id; the provider bills it as audio
/// input (a review's fake provider billed 3,000 audio tokens for five such turns, held as ~30
/// bytes of text each).
#[test]
fn an_earlier_audio_answer_sent_back_by_id_is_held_at_the_context_window_as_audio() {
    let audio_model = Catalog::builtin().price("gpt-4o-audio-preview");
    let mut messages = Vec::new();
    for i in 0..5 {
        messages.push(json!({"role":"user","content":"next?"}));
        messages.push(json!({"role":"assistant","audio":{"id":format!("audio_{i:024}")}}));
    }
    messages.push(json!({"role":"user","content":"summarise"}));
    let body =
        json!({"model":"gpt-4o-audio-preview","max_completion_tokens":100,"messages":messages});
    let whole = InputBound {
        tokens: 128_000,
        audio_tokens: 128_000,
    };
    assert_eq!(input_bound(&body, ApiKind::OpenAiChat, audio_model), whole);
    // Held at the audio rate: 128,000 × $40/M, plus 100 output tokens × $10/M.
    let hold = crate::worst_case_micros(&body, ApiKind::OpenAiChat, audio_model.expect("priced"));
    assert_eq!(hold, Ok(128_000 * 40 + 100 * 10));
    // An `audio` member that is not a reference (a string, an output setting without an id) is
    // text as before.
    let text = json!({"messages":[{"role":"assistant","content":"hi","audio":{"voice":"alloy"}}]});
    assert!(input_token_bound(&text, ApiKind::OpenAiChat, audio_model) < 200);
}

/// Chat completions search the web when asked with `web_search_options`, and the search models
/// always do: each search is billed a fee the tokens do not show (a review forwarded 20 searches
/// on a $0.01 budget).
#[test]
fn chat_web_search_cannot_be_held() {
    let c = ApiKind::OpenAiChat;
    let messages = json!([{"role":"user","content":"news today?"}]);
    assert_eq!(
        unmetered(
            &json!({"model":"gpt-4o","web_search_options":{},"messages":messages}),
            c
        ),
        Some(Unmetered::ServerTool("web_search_options".into()))
    );
    for model in [
        "gpt-4o-mini-search-preview",
        "gpt-4o-search-preview-2025-03-11",
        "openai/GPT-4o-search-preview",
        "gpt-5-search-api",
    ] {
        let u = unmetered(&json!({"model":model,"messages":messages}), c);
        assert_eq!(u, Some(Unmetered::SearchModel(model.into())), "{model}");
        assert_eq!(searches_per_call(c, model), 1, "{model}");
        assert_eq!(searches_per_call(ApiKind::OpenAiResponses, model), 0);
    }
    let plain = json!({"model":"gpt-4o-mini","web_search_options":null,"messages":messages});
    assert_eq!(unmetered(&plain, c), None);
    assert_eq!(searches_per_call(c, "gpt-4o-mini"), 0);
    let message = Unmetered::SearchModel("gpt-4o-search-preview".into()).to_string();
    assert!(message.contains("web search on every call"), "{message}");
}

/// Allowed, a search model's call is held with its one search fee where the data lists one.
#[test]
fn a_chat_search_model_is_held_with_its_search_fee() {
    let catalog = Catalog::builtin();
    let mini = catalog.price("gpt-4o-mini-search-preview").expect("priced");
    assert_eq!(
        mini.web_search,
        Some(10_000_000_000),
        "$10 per 1,000 searches"
    );
    let body = |model: &str| {
        json!({"model":model,"max_completion_tokens":200,
            "messages":[{"role":"user","content":"news today?"}]})
    };
    let c = ApiKind::OpenAiChat;
    let searching = crate::worst_case_micros(&body("gpt-4o-mini-search-preview"), c, mini);
    let plain = crate::worst_case_micros(&body("gpt-4o-mini"), c, mini);
    assert_eq!(searching, plain.map(|p| p + 10_000));
}

/// Anthropic fast mode bills a multiple of the standard rates the price data does not carry.
#[test]
fn anthropic_fast_mode_cannot_be_held() {
    let a = ApiKind::AnthropicMessages;
    let body = |speed: Value| {
        json!({"model":"claude-opus-5","max_tokens":100,"speed":speed,
            "messages":[{"role":"user","content":"refactor"}]})
    };
    assert_eq!(
        unmetered(&body(json!("fast")), a),
        Some(Unmetered::FastMode)
    );
    assert_eq!(
        unmetered(&body(json!("FAST")), a),
        Some(Unmetered::FastMode)
    );
    assert_eq!(unmetered(&body(json!("standard")), a), None);
    assert_eq!(unmetered(&body(Value::Null), a), None);
    // `speed` is Anthropic's; OpenAI requests are not read for it.
    assert_eq!(unmetered(&body(json!("fast")), ApiKind::OpenAiChat), None);
    let message = Unmetered::FastMode.to_string();
    assert!(
        message.contains("speed: 'fast'") && message.contains("without speed: 'fast'"),
        "{message}"
    );
}

/// A fine-tuned gpt-4o-mini counts image tokens as gpt-4o-mini does.
#[test]
fn a_fine_tuned_gpt_4o_mini_gets_the_gpt_4o_mini_image_bound() {
    let ft = Catalog::builtin().price("ft:gpt-4o-mini-2024-07-18:org::abc");
    assert_eq!(ft.map(|p| p.id.as_str()), Some("ft:gpt-4o-mini"));
    let two = chat(json!([
        {"type":"image_url","image_url":{"url":"https://e.x/a.png","detail":"high"}},
        {"type":"image_url","image_url":{"url":"https://e.x/b.png"}}]));
    assert!(input_token_bound(&two, ApiKind::OpenAiChat, ft) >= 2 * GPT_4O_MINI_IMAGE_TOKENS);
    // A fine-tuned gpt-4o keeps the general bound.
    let ft_4o = Catalog::builtin().price("ft:gpt-4o-2024-08-06:org::abc");
    assert_eq!(ft_4o.map(|p| p.id.as_str()), Some("ft:gpt-4o"));
    let b = input_token_bound(&two, ApiKind::OpenAiChat, ft_4o);
    assert!(
        (2 * IMAGE_TOKENS..2 * IMAGE_TOKENS + 100).contains(&b),
        "{b}"
    );
}

/// A WAV file: `fmt ` chunk fields as given, then `data` bytes of 1s.
fn wav(
    tag: u16,
    channels: u16,
    rate: u32,
    byte_rate: u32,
    align: u16,
    bits: u16,
    data: usize,
) -> Vec<u8> {
    let mut w = Vec::with_capacity(44 + data);
    w.extend_from_slice(b"RIFF");
    w.extend_from_slice(&((36 + data) as u32).to_le_bytes());
    w.extend_from_slice(b"WAVE");
    // A LIST chunk before `fmt ` (odd-sized, so padded): the header is found past it.
    w.extend_from_slice(b"LIST");
    w.extend_from_slice(&3u32.to_le_bytes());
    w.extend_from_slice(b"abc\0");
    w.extend_from_slice(b"fmt ");
    w.extend_from_slice(&16u32.to_le_bytes());
    w.extend_from_slice(&tag.to_le_bytes());
    w.extend_from_slice(&channels.to_le_bytes());
    w.extend_from_slice(&rate.to_le_bytes());
    w.extend_from_slice(&byte_rate.to_le_bytes());
    w.extend_from_slice(&align.to_le_bytes());
    w.extend_from_slice(&bits.to_le_bytes());
    w.extend_from_slice(b"data");
    w.extend_from_slice(&(data as u32).to_le_bytes());
    w.resize(w.len() + data, 1);
    w
}

/// Standard base64 of `bytes`.
fn base64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn wav_audio_tokens(clip: &[u8], format: &str) -> u64 {
    let body =
        chat(json!([{"type":"input_audio","input_audio":{"data":base64(clip),"format":format}}]));
    input_bound(&body, ApiKind::OpenAiChat, None).audio_tokens
}

/// A 24 kHz 16-bit mono WAV holds 48,000 bytes a second (~4,800 bytes a billed token): held at one
/// token per 32 bytes, a 21-second clip (~$0.009 of audio) was held at ~$1.3.
#[test]
fn a_pcm_wav_clip_is_held_by_its_duration() {
    let secs = 21;
    let clip = wav(1, 1, 24_000, 48_000, 2, 16, secs * 48_000);
    let by_bytes = (clip.len() as u64).div_ceil(AUDIO_BYTES_PER_TOKEN);
    // 21 s of samples and the header: 22 whole seconds at 30 tokens a second.
    assert_eq!(
        wav_audio_tokens(&clip, "wav"),
        22 * WAV_AUDIO_TOKENS_PER_SECOND
    );
    assert!(22 * WAV_AUDIO_TOKENS_PER_SECOND * 40 < by_bytes);
    // Not a WAV by its format, or a compressed WAV (MPEG Layer 3 in RIFF): the byte rule.
    assert_eq!(wav_audio_tokens(&clip, "mp3"), by_bytes);
    let mp3_in_wav = wav(0x55, 1, 24_000, 4_000, 1, 0, secs * 4_000);
    let mp3_bytes = (mp3_in_wav.len() as u64).div_ceil(AUDIO_BYTES_PER_TOKEN);
    assert_eq!(wav_audio_tokens(&mp3_in_wav, "wav"), mp3_bytes);
    // A header whose fields disagree is read at its fewest bytes a second (the longest duration):
    // a byte rate of 1,000,000 beside 24 kHz × 2 bytes is read as 48,000; a block_align of 64
    // beside 1 channel × 16 bits as 2 bytes a frame.
    let lying = wav(1, 1, 24_000, 1_000_000, 64, 16, secs * 48_000);
    assert_eq!(
        wav_audio_tokens(&lying, "WAV"),
        22 * WAV_AUDIO_TOKENS_PER_SECOND
    );
    // Never above the byte rule (8 kHz 8-bit: 8,000 bytes a second, 30 tokens for 1 s of 8,044
    // bytes against 252 by bytes; a 1 byte a second header: the byte rule).
    let lean = wav(1, 1, 8_000, 8_000, 1, 8, 8_000);
    assert_eq!(
        wav_audio_tokens(&lean, "wav"),
        2 * WAV_AUDIO_TOKENS_PER_SECOND
    );
    let slow = wav(1, 1, 1, 1, 1, 8, 8_000);
    assert_eq!(
        wav_audio_tokens(&slow, "wav"),
        (slow.len() as u64).div_ceil(AUDIO_BYTES_PER_TOKEN)
    );
    // No readable header: the byte rule.
    let noise = vec![7u8; 48_000];
    assert_eq!(wav_audio_tokens(&noise, "wav"), 1_500);
    let truncated = &clip[..20];
    assert_eq!(wav_audio_tokens(truncated, "wav"), 1);
}

#[test]
fn anthropic_tools_add_the_tool_use_system_prompt_anthropic_bills() {
    let sonnet = Catalog::builtin().price("claude-sonnet-4-5");
    let plain = json!({"model":"claude-sonnet-4-5","max_tokens":1,"messages":[{"role":"user","content":"hi"}]});
    let mut with_tool = plain.clone();
    with_tool["tools"] =
        json!([{"name":"get_time","description":"now","input_schema":{"type":"object"}}]);
    let without = input_token_bound(&plain, ApiKind::AnthropicMessages, sonnet);
    let with = input_token_bound(&with_tool, ApiKind::AnthropicMessages, sonnet);
    let tool_bytes = with_tool["tools"].to_string().len() as u64;
    // Anthropic adds up to 530 tokens of system prompt to a request with tools (346 on current
    // models), billed as input and not in the request's bytes.
    assert!(
        with >= without + tool_bytes + 530,
        "{with} < {without} + {tool_bytes} + 530"
    );
    let mut empty = plain.clone();
    empty["tools"] = json!([]);
    assert_eq!(
        input_token_bound(&empty, ApiKind::AnthropicMessages, sonnet),
        without + 2
    );
}

/// Claude Opus 4.7 and later read images up to ~3.75 megapixels (up to ~4,900 visual tokens);
/// earlier Claude models downscale to ~1,600 tokens, within the general bound.
#[test]
fn claude_opus_4_7_and_later_get_the_high_resolution_image_bound() {
    let two = json!({"messages":[{"role":"user","content":[
        {"type":"image","source":{"type":"url","url":"https://x/a.png"}},
        {"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBO"}}]}]});
    let bound = |model: &str| {
        let p = Catalog::builtin().price(model).expect(model);
        input_token_bound(&two, ApiKind::AnthropicMessages, Some(p))
    };
    for model in [
        "claude-opus-4-7",
        "claude-opus-4-8",
        "claude-opus-5",
        "claude-fable-5-1",
    ] {
        let b = bound(model);
        assert!(
            (2 * HIGH_RES_IMAGE_TOKENS..2 * HIGH_RES_IMAGE_TOKENS + 100).contains(&b),
            "{model}: {b}"
        );
    }
    for model in ["claude-opus-4-6", "claude-sonnet-4-6", "claude-haiku-4-5"] {
        let b = bound(model);
        assert!(
            (2 * IMAGE_TOKENS..2 * IMAGE_TOKENS + 100).contains(&b),
            "{model}: {b}"
        );
    }
}

/// An OpenAI image sent with `detail: "original"` can bill up to 10,000 patches times the model's
/// multiplier: held at [`ORIGINAL_DETAIL_IMAGE_TOKENS`], in chat and in Responses.
#[test]
fn an_original_detail_image_is_held_at_the_original_detail_bound() {
    let gpt54 = Catalog::builtin().price("gpt-5.4");
    let chat_image = chat(
        json!([{"type":"image_url","image_url":{"url":"https://x/i.png","detail":"original"}}]),
    );
    let b = input_token_bound(&chat_image, ApiKind::OpenAiChat, gpt54);
    assert!(
        (ORIGINAL_DETAIL_IMAGE_TOKENS..ORIGINAL_DETAIL_IMAGE_TOKENS + 100).contains(&b),
        "{b}"
    );
    let responses = json!({"model":"gpt-5.4","input":[{"role":"user","content":[
        {"type":"input_image","image_url":"https://x/i.png","detail":"original"}]}]});
    let b = input_token_bound(&responses, ApiKind::OpenAiResponses, gpt54);
    assert!(b >= ORIGINAL_DETAIL_IMAGE_TOKENS, "{b}");
    // `high` keeps the general bound; gpt-4o-mini's own is larger than the original one.
    let high =
        chat(json!([{"type":"image_url","image_url":{"url":"https://x/i.png","detail":"high"}}]));
    assert!(input_token_bound(&high, ApiKind::OpenAiChat, gpt54) < ORIGINAL_DETAIL_IMAGE_TOKENS);
    let mini = Catalog::builtin().price("gpt-4o-mini");
    assert!(input_token_bound(&chat_image, ApiKind::OpenAiChat, mini) >= GPT_4O_MINI_IMAGE_TOKENS);
}

/// Server-side compaction bills summary passes the request does not bound: not held.
#[test]
fn anthropic_compaction_cannot_be_held() {
    let a = ApiKind::AnthropicMessages;
    let body = |ty: &str| {
        json!({"model":"claude-opus-4-6","max_tokens":100,
            "context_management":{"edits":[{"type":ty,"trigger":{"type":"input_tokens","value":150000}}]},
            "messages":[{"role":"user","content":"hi"}]})
    };
    assert_eq!(
        unmetered(&body("compact_20260112"), a),
        Some(Unmetered::Compaction)
    );
    // Clearing old tool results only removes input: held as usual.
    assert_eq!(unmetered(&body("clear_tool_uses_20250919"), a), None);
    assert!(Unmetered::Compaction.to_string().contains("compact"));
}
