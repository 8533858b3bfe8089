//! The filter's fast path for plain text events (`TextDelta::read` + `on_text_delta`) sends the
//! same bytes, finds the same values and blocks at the same event as the general path, for every
//! labelled corpus line streamed in pieces as OpenAI chat, completions, Responses and Anthropic
//! events.

mod corpus_lines;

use iron_safety::{
    ApiShape, FilterOutcome, SafetyEngine, SafetyPolicy, SseOutputFilter, TextDelta,
};
use serde_json::json;

fn filter(api: ApiShape, policy: &str) -> SseOutputFilter {
    let policy = SafetyPolicy::from_json_str(policy).expect("policy");
    SafetyEngine::new(&policy).expect("engine").sse_filter(api)
}

/// The events of one answer whose text arrives in `pieces`.
fn events(api: ApiShape, pieces: &[String]) -> Vec<(Option<&'static str>, String)> {
    let mut out = Vec::new();
    match api {
        ApiShape::AnthropicMessages => {
            out.push((
                Some("message_start"),
                json!({"type":"message_start","message":{"id":"m","usage":{"input_tokens":3}}})
                    .to_string(),
            ));
            out.push((Some("content_block_start"), json!({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}).to_string()));
            for p in pieces {
                out.push((Some("content_block_delta"), json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":p}}).to_string()));
            }
            out.push((
                Some("content_block_stop"),
                json!({"type":"content_block_stop","index":0}).to_string(),
            ));
            out.push((
                Some("message_stop"),
                json!({"type":"message_stop"}).to_string(),
            ));
        }
        ApiShape::OpenAiResponses => {
            let full: String = pieces.concat();
            // The done event names no item: text it flushes takes the item id the deltas carried.
            let item = json!({"type":"message","id":"msg_1","role":"assistant","content":[{"type":"output_text","text":full}]});
            out.push((
                Some("response.created"),
                json!({"type":"response.created","response":{"id":"r","output":[]}}).to_string(),
            ));
            for (n, p) in pieces.iter().enumerate() {
                out.push((Some("response.output_text.delta"), json!({"type":"response.output_text.delta","item_id":"msg_1","output_index":0,"content_index":0,"delta":p,"sequence_number":n}).to_string()));
            }
            out.push((Some("response.output_text.done"), json!({"type":"response.output_text.done","output_index":0,"content_index":0,"text":full}).to_string()));
            out.push((Some("response.content_part.done"), json!({"type":"response.content_part.done","item_id":"msg_1","output_index":0,"content_index":0,"part":{"type":"output_text","text":full}}).to_string()));
            out.push((
                Some("response.output_item.done"),
                json!({"type":"response.output_item.done","output_index":0,"item":item})
                    .to_string(),
            ));
            out.push((Some("response.completed"), json!({"type":"response.completed","response":{"id":"r","output":[item],"usage":{"input_tokens":3,"output_tokens":9}}}).to_string()));
        }
        ApiShape::OpenAiCompletions => {
            for p in pieces {
                out.push((None, json!({"id":"c","object":"text_completion","created":7,"model":"m","choices":[{"index":0,"text":p,"finish_reason":null}]}).to_string()));
            }
            out.push((None, json!({"id":"c","object":"text_completion","created":7,"model":"m","choices":[{"index":0,"text":"","finish_reason":"stop"}]}).to_string()));
            out.push((None, "[DONE]".to_string()));
        }
        _ => {
            out.push((None, json!({"id":"c","object":"chat.completion.chunk","created":7,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}).to_string()));
            for p in pieces {
                out.push((None, json!({"id":"c","object":"chat.completion.chunk","created":7,"model":"m","system_fingerprint":"fp","choices":[{"index":0,"delta":{"content":p},"logprobs":null,"finish_reason":null}]}).to_string()));
            }
            out.push((None, json!({"id":"c","object":"chat.completion.chunk","created":7,"model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}).to_string()));
            out.push((None, "[DONE]".to_string()));
        }
    }
    out
}

/// What the client receives, and how the stream ended.
fn run(
    api: ApiShape,
    policy: &str,
    evs: &[(Option<&'static str>, String)],
    fast: bool,
) -> (String, String, usize) {
    let mut f = filter(api, policy);
    let mut sent = String::new();
    let mut fast_hits = 0;
    let render = |sent: &mut String, name: Option<&str>, data: &str| {
        sent.push_str(&format!("{name:?}|{data}\n"));
    };
    for (name, data) in evs {
        let outcome = match TextDelta::read(api, *name, data).filter(|_| fast) {
            Some(d) => {
                fast_hits += 1;
                f.on_text_delta(&d, *name, data)
            }
            None => f.on_event(*name, data),
        };
        match outcome {
            FilterOutcome::Unchanged => render(&mut sent, *name, data),
            FilterOutcome::Emit(out) => out
                .iter()
                .for_each(|(n, d)| render(&mut sent, n.as_deref(), d)),
            FilterOutcome::Block { message } => return (sent, message, fast_hits),
        }
    }
    match f.finish() {
        FilterOutcome::Emit(out) => out
            .iter()
            .for_each(|(n, d)| render(&mut sent, n.as_deref(), d)),
        FilterOutcome::Block { message } => return (sent, message, fast_hits),
        FilterOutcome::Unchanged => {}
    }
    (sent, format!("{:?}", f.detections()), fast_hits)
}

#[test]
fn fast_path_matches_the_general_path_on_the_corpus() {
    let policies = [
        r#"{"response":{"default":"redact"}}"#,
        r#"{"response":{"default":"log","secret":"redact"}}"#,
        r#"{"response":{"default":"redact","creditCard":"block","usSsn":"block"}}"#,
    ];
    let mut compared = 0;
    let mut fast_hits = 0;
    let mut mismatches = Vec::new();
    for l in corpus_lines::plain_lines() {
        let text = format!("Lead \"quoted\" text. {l} end.");
        let chars: Vec<char> = text.chars().collect();
        // Piece size and policy take turns from line to line (every pairing recurs often).
        let size = [1, 3, 7, 2][compared % 4];
        let policy = policies[compared % policies.len()];
        let pieces: Vec<String> = chars.chunks(size).map(|c| c.iter().collect()).collect();
        for api in [
            ApiShape::OpenAiChat,
            ApiShape::OpenAiCompletions,
            ApiShape::OpenAiResponses,
            ApiShape::AnthropicMessages,
        ] {
            let evs = events(api, &pieces);
            let general = run(api, policy, &evs, false);
            let fast = run(api, policy, &evs, true);
            fast_hits += fast.2;
            if (&general.0, &general.1) != (&fast.0, &fast.1) {
                mismatches.push(format!("{api:?} {policy} size {size}: {l}"));
            }
        }
        compared += 1;
    }
    assert!(compared > 300, "corpus lines compared: {compared}");
    assert!(fast_hits > 10_000, "events on the fast path: {fast_hits}");
    assert!(
        mismatches.is_empty(),
        "{} mismatches, first: {:#?}",
        mismatches.len(),
        &mismatches[..mismatches.len().min(5)]
    );
}
