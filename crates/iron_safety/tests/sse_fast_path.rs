//! The filter's fast path for plain text events (`TextDelta::read` + `on_text_delta`) sends the
//! same bytes, finds the same values and blocks at the same event as the general path, for every
//! labelled corpus line streamed in pieces as OpenAI chat, completions, Responses and Anthropic
//! events.

mod corpus_lines;

use iron_safety::{
    ApiShape, DeltaTemplate, FilterOutcome, RunOutcome, SafetyEngine, SafetyPolicy,
    SseOutputFilter, TextDelta,
};
use serde_json::json;

/// The four streamed shapes with text events.
const APIS: [ApiShape; 4] = [
    ApiShape::OpenAiChat,
    ApiShape::OpenAiCompletions,
    ApiShape::OpenAiResponses,
    ApiShape::AnthropicMessages,
];

/// Response policies the corpus is streamed under, in turn: redact all, log all, block some.
const POLICIES: [&str; 3] = [
    r#"{"response":{"default":"redact"}}"#,
    r#"{"response":{"default":"log","secret":"redact"}}"#,
    r#"{"response":{"default":"redact","creditCard":"block","usSsn":"block"}}"#,
];

/// A filter for `policy`, with one digest key for all (the paths compared report equal digests).
fn filter(api: ApiShape, policy: &str) -> SseOutputFilter {
    let mut policy = SafetyPolicy::from_json_str(policy).expect("policy");
    policy.digest_key = Some("sse-fast-path-digest-key".into());
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
    let mut compared = 0;
    let mut fast_hits = 0;
    let mut mismatches = Vec::new();
    for l in corpus_lines::plain_lines() {
        let text = format!("Lead \"quoted\" text. {l} end.");
        let chars: Vec<char> = text.chars().collect();
        // Piece size and policy take turns from line to line (every pairing recurs often).
        let size = [1, 3, 7, 2][compared % 4];
        let policy = POLICIES[compared % POLICIES.len()];
        let pieces: Vec<String> = chars.chunks(size).map(|c| c.iter().collect()).collect();
        for api in APIS {
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

/// The text a client reads from the events it was sent.
fn client_text(api: ApiShape, sent: &[(Option<String>, String)]) -> String {
    let mut text = String::new();
    for (_, data) in sent {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(data) else {
            continue;
        };
        let piece = match api {
            ApiShape::OpenAiChat => v.pointer("/choices/0/delta/content"),
            ApiShape::OpenAiCompletions => v.pointer("/choices/0/text"),
            ApiShape::OpenAiResponses if v["type"] == "response.output_text.delta" => {
                v.pointer("/delta")
            }
            ApiShape::AnthropicMessages if v["type"] == "content_block_delta" => {
                v.pointer("/delta/text")
            }
            _ => None,
        };
        text.push_str(piece.and_then(|p| p.as_str()).unwrap_or(""));
    }
    text
}

/// Events sent, block message, detections, events filtered in runs.
type RelayOutcome = (Vec<(Option<String>, String)>, Option<String>, String, usize);

/// Sends `evs` through a filter the way the relay does: text events shaped like the last one
/// read (a `DeltaTemplate`) wait in runs of up to `max_run` and are filtered as one piece (event
/// by event when the filter says so).
/// Returns the events sent, the block message if any, the detections, and how many events ran.
fn relay_in_runs(
    api: ApiShape,
    policy: &str,
    evs: &[(Option<&'static str>, String)],
    max_run: usize,
) -> RelayOutcome {
    fn flush(
        f: &mut SseOutputFilter,
        t: &DeltaTemplate,
        run: &mut Vec<(Option<&'static str>, String)>,
        sent: &mut Vec<(Option<String>, String)>,
    ) -> Result<(), String> {
        if run.is_empty() {
            return Ok(());
        }
        let deltas: Vec<TextDelta<'_>> = run
            .iter()
            .map(|(n, d)| t.read(*n, d).expect("still matches"))
            .collect();
        let texts: Vec<&str> = deltas.iter().map(TextDelta::text).collect();
        match f.on_text_run(deltas[0].key(), &texts) {
            None => {
                for (d, (n, data)) in deltas.iter().zip(run.iter()) {
                    match f.on_text_delta(d, *n, data) {
                        FilterOutcome::Unchanged => {
                            sent.push((n.map(str::to_string), data.clone()))
                        }
                        FilterOutcome::Emit(out) => sent.extend(out),
                        FilterOutcome::Block { message } => return Err(message),
                    }
                }
            }
            Some(RunOutcome::Block { message }) => return Err(message),
            Some(RunOutcome::Texts(per_event)) => {
                for ((d, (n, data)), text) in deltas.iter().zip(run.iter()).zip(per_event) {
                    let data = match text {
                        None => data.clone(),
                        Some(t) => d.rewrite(data, &t).expect("a text read in place"),
                    };
                    sent.push((n.map(str::to_string), data));
                }
            }
        }
        run.clear();
        Ok(())
    }
    let mut f = filter(api, policy);
    let mut t = DeltaTemplate::default();
    let mut run: Vec<(Option<&'static str>, String)> = Vec::new();
    let mut sent = Vec::new();
    let mut in_runs = 0;
    for (name, data) in evs {
        if let Some(d) = t.read(*name, data) {
            let key = run.first().map(|(n, d)| t.read(*n, d).expect("run").key());
            if run.len() >= max_run || key.is_some_and(|k| k != d.key()) {
                if let Err(m) = flush(&mut f, &t, &mut run, &mut sent) {
                    return (sent, Some(m), String::new(), in_runs);
                }
            }
            in_runs += 1;
            run.push((*name, data.clone()));
            continue;
        }
        if let Err(m) = flush(&mut f, &t, &mut run, &mut sent) {
            return (sent, Some(m), String::new(), in_runs);
        }
        let outcome = match TextDelta::read(api, *name, data) {
            Some(d) => {
                t.learn(*name, data, &d);
                f.on_text_delta(&d, *name, data)
            }
            None => f.on_event(*name, data),
        };
        match outcome {
            FilterOutcome::Unchanged => sent.push((name.map(str::to_string), data.clone())),
            FilterOutcome::Emit(out) => sent.extend(out),
            FilterOutcome::Block { message } => {
                return (sent, Some(message), String::new(), in_runs)
            }
        }
    }
    if let Err(m) = flush(&mut f, &t, &mut run, &mut sent) {
        return (sent, Some(m), String::new(), in_runs);
    }
    match f.finish() {
        FilterOutcome::Emit(out) => sent.extend(out),
        FilterOutcome::Block { message } => return (sent, Some(message), String::new(), in_runs),
        FilterOutcome::Unchanged => {}
    }
    (sent, None, format!("{:?}", f.detections()), in_runs)
}

#[test]
fn text_filtered_in_runs_reaches_the_client_as_event_by_event_on_the_corpus() {
    let (mut compared, mut in_runs, mut blocked) = (0, 0, 0);
    let mut mismatches = Vec::new();
    for l in corpus_lines::plain_lines() {
        // Words with the space before them, as models stream, and fixed-size pieces.
        let text = format!("Lead \"quoted\" text. {l} end.");
        let pieces: Vec<String> = if compared % 2 == 0 {
            text.split_inclusive(' ')
                .map(str::to_string)
                .collect::<Vec<_>>()
                .iter()
                .map(|w| format!(" {}", w.trim_end()))
                .collect()
        } else {
            let chars: Vec<char> = text.chars().collect();
            chars
                .chunks([1, 3, 7][compared % 3])
                .map(|c| c.iter().collect())
                .collect()
        };
        let policy = POLICIES[compared % POLICIES.len()];
        let max_run = [2, 5, 64][compared % 3];
        for api in APIS {
            let evs = events(api, &pieces);
            // Event by event: the fast path, whose equality with the general path is tested above.
            let mut one = filter(api, policy);
            let mut sent_one = Vec::new();
            let mut block_one = None;
            for (name, data) in &evs {
                let outcome = match TextDelta::read(api, *name, data) {
                    Some(d) => one.on_text_delta(&d, *name, data),
                    None => one.on_event(*name, data),
                };
                match outcome {
                    FilterOutcome::Unchanged => {
                        sent_one.push((name.map(str::to_string), data.clone()))
                    }
                    FilterOutcome::Emit(out) => sent_one.extend(out),
                    FilterOutcome::Block { message } => {
                        block_one = Some(message);
                        break;
                    }
                }
            }
            if block_one.is_none() {
                if let FilterOutcome::Emit(out) = one.finish() {
                    sent_one.extend(out);
                }
            }
            let (sent, block, detections, ran) = relay_in_runs(api, policy, &evs, max_run);
            in_runs += ran;
            let (a, b) = (client_text(api, &sent_one), client_text(api, &sent));
            let same = match (&block_one, &block) {
                (None, None) => a == b && detections == format!("{:?}", one.detections()),
                // A run that holds a value to block goes event by event: the same text before it.
                (Some(m1), Some(m2)) => {
                    blocked += 1;
                    m1 == m2 && a == b
                }
                _ => false,
            };
            if !same {
                mismatches.push(format!(
                    "{api:?} {policy} run {max_run}: {l}\n  one: {a}\n  run: {b}\n  {block_one:?}\n  {block:?}"
                ));
            }
        }
        compared += 1;
    }
    assert!(
        mismatches.is_empty(),
        "{} mismatches, first: {:#?}",
        mismatches.len(),
        &mismatches[..mismatches.len().min(5)]
    );
    assert!(compared > 300, "corpus lines compared: {compared}");
    // Responses events carry a sequence number, so only the other three shapes form runs.
    assert!(in_runs > 15_000, "events filtered in runs: {in_runs}");
    assert!(blocked > 50, "blocked streams compared: {blocked}");
}
