//! Streaming redaction throughput: text pushed to a `StreamRedactor` in small pieces, as a provider
//! streams it (minified JSON, a run without whitespace, in 4-byte pieces; prose in 4- and 16-byte
//! pieces). `cargo run --release -p iron_safety --example stream_bench`; compare two builds in one
//! sitting (figures move with the machine).
use iron_safety::{SafetyEngine, SafetyPolicy, StreamRedactor};
fn main() {
    let policy = SafetyPolicy::from_json_str(r#"{"response":{"default":"redact"}}"#).unwrap();
    let guard = SafetyEngine::new(&policy).unwrap().response_guard();
    let json: String = (0..200)
        .map(|i| format!("{{\"id\":{i},\"name\":\"item-{i}\",\"tags\":[\"a\",\"b\"]}},"))
        .collect();
    let prose =
        "The quick brown fox jumps over the lazy dog and writes to the team about the release. "
            .repeat(80);
    for (name, text, n) in [
        ("minified json 4B", &json, 4usize),
        ("prose 4B", &prose, 4),
        ("prose 16B", &prose, 16),
    ] {
        let pieces: Vec<&str> = text
            .as_bytes()
            .chunks(n)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        let reps = 20;
        let st = std::time::Instant::now();
        for _ in 0..reps {
            let mut r = StreamRedactor::new(guard.clone());
            let mut out = 0;
            for p in &pieces {
                out += r.push(p).len();
            }
            out += r.finish().len();
            assert!(out > 0);
        }
        let el = st.elapsed().as_secs_f64() / reps as f64;
        println!(
            "{name}: {} bytes, {:.2} MB/s",
            text.len(),
            text.len() as f64 / el / 1e6
        );
    }
}
