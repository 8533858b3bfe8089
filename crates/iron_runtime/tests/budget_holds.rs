//! Budget holds through the router for input the request does not show as text: an earlier audio
//! answer sent back by id, a WAV clip held by its duration, and Anthropic fast mode, whose premium
//! the price data does not carry.

mod common;

use common::*;
use iron_runtime::RouterEvent;
use serde_json::{json, Value};

/// The cost of the next settled call.
async fn next_cost(events: &mut iron_runtime::events::Subscription) -> u64 {
    loop {
        let ev = events.recv().await.expect("event bus open");
        if let RouterEvent::Response { cost_micros, .. } = &**ev {
            return *cost_micros;
        }
    }
}

fn audio_answer() -> Value {
    json!({ "id": "c", "object": "chat.completion", "model": "gpt-4o-audio-preview-2025-06-03",
        "choices": [{ "index": 0, "message": { "role": "assistant", "content": "ok" }, "finish_reason": "stop" }],
        "usage": { "prompt_tokens": 3060, "completion_tokens": 50,
            "prompt_tokens_details": { "cached_tokens": 0, "audio_tokens": 3000 } } })
}

/// Multi-turn audio chat sends earlier audio answers back by id, billed as audio input: a review
/// held five of them as ~30 bytes of text each and overshot a $0.05 budget 9.65×. They are held
/// at the whole context window at the audio rate (128,000 × $40/M on gpt-4o-audio-preview).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_audio_answer_sent_back_by_id_is_held_as_the_whole_context_of_audio() {
    bounded(20, async {
        let provider = FakeProvider::json(audio_answer()).await;
        let ks = FakeKeyServer::with_key(OPENAI_KEY, Some("openai"), &provider.url()).await;
        let mut messages = Vec::new();
        for i in 0..5 {
            messages.push(json!({ "role": "user", "content": "next?" }));
            messages.push(json!({ "role": "assistant", "audio": { "id": format!("audio_{i:024}") } }));
        }
        messages.push(json!({ "role": "user", "content": "summarise" }));
        let body = json!({ "model": "gpt-4o-audio-preview", "max_completion_tokens": 100, "messages": messages });
        let router = start_router(&ks, json!({ "budgetUsd": 1.0 }));
        let (code, v, text) = status_json(post(&router, "/v1/chat/completions", &body).await).await;
        assert_eq!(code, 402, "{text}");
        assert_eq!(v["error"]["code"], "budget_exceeded", "{text}");
        assert!(provider.seen().is_empty());
        router.stop().await;
        // With room for the hold (5,121,000 µ$) the call goes through and is charged its usage:
        // 3,000 audio tokens × $40/M + 60 text × $2.50/M + 50 output × $10/M = 120,650 µ$.
        let router = start_router(&ks, json!({ "budgetUsd": 6.0 }));
        let mut sub = router.events().subscribe();
        let (code, _, text) = status_json(post(&router, "/v1/chat/completions", &body).await).await;
        assert_eq!(code, 200, "{text}");
        assert_eq!(next_cost(&mut sub).await, 120_650);
        router.stop().await;
    })
    .await;
}

/// Standard base64 of `bytes`.
fn base64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A 21-second 24 kHz 16-bit mono WAV (~$0.009 of audio on gpt-4o-audio-preview) was held at one
/// token per 32 bytes, ~$1.3, and refused on a $0.50 budget. Its header gives its duration: it is
/// held at 30 audio tokens a second (22 whole seconds: 660 × $40/M = 26,400 µ$, plus its text
/// and output).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wav_clip_is_held_by_the_duration_its_header_gives() {
    bounded(20, async {
        let provider = FakeProvider::json(json!({ "id": "c", "object": "chat.completion", "model": "gpt-4o-audio-preview",
            "choices": [{ "index": 0, "message": { "role": "assistant", "content": "ok" }, "finish_reason": "stop" }],
            "usage": { "prompt_tokens": 230, "completion_tokens": 20, "prompt_tokens_details": { "audio_tokens": 210 } } }))
        .await;
        let ks = FakeKeyServer::with_key(OPENAI_KEY, Some("openai"), &provider.url()).await;
        let secs = 21;
        let mut wav = Vec::new();
        wav.extend_from_slice(b"RIFF");
        wav.extend_from_slice(&(36 + secs * 48_000u32).to_le_bytes());
        wav.extend_from_slice(b"WAVEfmt ");
        for field in [16u32, 1 | (1 << 16), 24_000, 48_000, 2 | (16 << 16)] {
            wav.extend_from_slice(&field.to_le_bytes());
        }
        wav.extend_from_slice(b"data");
        wav.extend_from_slice(&(secs * 48_000u32).to_le_bytes());
        wav.resize(wav.len() + (secs * 48_000) as usize, 1);
        let body = json!({ "model": "gpt-4o-audio-preview", "max_completion_tokens": 100,
            "messages": [{ "role": "user", "content": [
                { "type": "input_audio", "input_audio": { "data": base64(&wav), "format": "wav" } }] }] });
        let router = start_router(&ks, json!({ "budgetUsd": 0.5 }));
        let mut sub = router.events().subscribe();
        let (code, _, text) = status_json(post(&router, "/v1/chat/completions", &body).await).await;
        assert_eq!(code, 200, "{text}");
        // 210 audio tokens × $40/M + 20 text × $2.50/M + 20 output × $10/M = 8,650 µ$.
        assert_eq!(next_cost(&mut sub).await, 8_650);
        router.stop().await;
    })
    .await;
}

/// Anthropic fast mode (`speed: "fast"`) bills several times the standard rates, which the price
/// data does not carry: a review's three calls on a $1 budget were charged $0.505 each and billed
/// $1.01 each. Under a budget it is refused, saying why and what to do; allowed, it is charged at
/// the standard rates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_fast_mode_is_refused_under_a_budget_unless_allowed() {
    bounded(20, async {
        let provider = FakeProvider::json(json!({ "id": "msg_1", "type": "message", "role": "assistant",
            "model": "claude-opus-5", "content": [{ "type": "text", "text": "ok" }], "stop_reason": "max_tokens",
            "usage": { "input_tokens": 1000, "output_tokens": 20000, "service_tier": "standard", "speed": "fast" } }))
        .await;
        let ks = FakeKeyServer::with_key(ANTHROPIC_KEY, Some("anthropic"), &provider.url()).await;
        let body = json!({ "model": "claude-opus-5", "speed": "fast", "max_tokens": 20000,
            "messages": [{ "role": "user", "content": "refactor" }] })
        .to_string();
        let headers = [
            ("x-api-key", IC),
            ("anthropic-version", "2023-06-01"),
            ("anthropic-beta", "fast-mode-2026-02-01"),
        ];
        let router = start_router(&ks, json!({ "budgetUsd": 1.0 }));
        let (code, v, text) =
            status_json(post_with(&router, "/v1/messages", body.clone(), &headers).await).await;
        assert_eq!(code, 400, "{text}");
        assert_eq!(v["error"]["type"], "invalid_request_error", "{text}");
        let message = v["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("fast mode")
                && message.contains("without speed: 'fast'")
                && message.contains("unmeteredCalls: 'allow'"),
            "{message}"
        );
        assert!(provider.seen().is_empty());
        router.stop().await;
        // Allowed: charged at standard rates, 1000 × $5 + 20000 × $25 (per 1M) = 505,000 µ$.
        let router = start_router(&ks, json!({ "budgetUsd": 1.0, "unmeteredCalls": "allow" }));
        let mut sub = router.events().subscribe();
        let (code, _, text) =
            status_json(post_with(&router, "/v1/messages", body, &headers).await).await;
        assert_eq!(code, 200, "{text}");
        assert_eq!(next_cost(&mut sub).await, 505_000);
        router.stop().await;
    })
    .await;
}
