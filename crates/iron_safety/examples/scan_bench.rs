//! Throughput of the single-pass scanner against the one-regex-per-kind baseline, on generated
//! chat-like text with few and with many hits. Run: `cargo run --release --example scan_bench`.

use iron_safety::naive::NaiveScanner;
use iron_safety::{Scanner, SCAN_ORDER};
use std::time::Instant;

const WORDS: &[&str] = &[
    "the",
    "model",
    "answer",
    "please",
    "could",
    "you",
    "explain",
    "why",
    "this",
    "function",
    "returns",
    "an",
    "error",
    "when",
    "I",
    "call",
    "it",
    "with",
    "version",
    "2.1",
    "of",
    "library;",
    "here",
    "is",
    "stack",
    "trace:",
    "at",
    "line",
    "42,",
    "column",
    "7.",
    "Thanks!",
    "Sure,",
    "let's",
    "look",
    "at",
    "config",
    "file",
    "(settings.json)",
    "and",
    "check",
    "timeout",
    "value",
    "30s",
    "retry",
    "count",
    "3",
    "café",
    "naïve",
    "über",
    "—",
    "résumé",
    "2024-05-01",
    "10:30",
    "v1.2.3",
    "x86_64",
    "#1234",
    "100%",
];
const HITS: &[&str] = &[
    "jane.doe@example.com",
    "+44 20 7946 0958",
    "(415) 555-2671",
    "4111 1111 1111 1111",
    "SSN 536-22-1234",
    "DE89 3704 0044 0532 0130 00",
    "192.168.1.20",
    "sk-proj-Ab3dEf9hIjK1mNoP2rStU7wXyZ0aBcD4eFgH5iJkL6mNoP8qRsT",
];

/// Deterministic pseudo-random text of about `bytes` bytes with one hit every `hit_every` words.
fn corpus(bytes: usize, hit_every: usize) -> String {
    let mut s = String::with_capacity(bytes + 64);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut n = 0usize;
    while s.len() < bytes {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        n += 1;
        if n.is_multiple_of(hit_every) {
            s.push_str(HITS[(x as usize >> 8) % HITS.len()]);
        } else {
            s.push_str(WORDS[(x as usize) % WORDS.len()]);
        }
        s.push(if n.is_multiple_of(17) { '\n' } else { ' ' });
    }
    s
}

fn mb_per_s(label: &str, text: &str, mut scan: impl FnMut(&str) -> usize) -> f64 {
    // Scan in 16 KB messages, as a proxy sees them.
    let chunks: Vec<&str> = text.split_inclusive('\n').collect();
    let mut messages = Vec::new();
    let mut start = 0;
    let mut len = 0;
    for c in &chunks {
        len += c.len();
        if len >= 16 * 1024 {
            messages.push(&text[start..start + len]);
            start += len;
            len = 0;
        }
    }
    messages.push(&text[start..start + len]);
    let mut found = scan(messages[0]);
    let rounds = 3;
    let t = Instant::now();
    for _ in 0..rounds {
        found = messages.iter().map(|m| scan(m)).sum();
    }
    let secs = t.elapsed().as_secs_f64();
    let rate = (text.len() * rounds) as f64 / secs / 1e6;
    println!("{label:<28} {rate:>9.1} MB/s  ({found} findings)");
    rate
}

fn main() {
    let scanner = Scanner::new(&SCAN_ORDER, &[]).expect("scanner");
    let naive = NaiveScanner::new(&SCAN_ORDER).expect("naive");
    for (name, every) in [
        ("few hits (1 per ~2000 words)", 2000),
        ("many hits (1 per 20 words)", 20),
    ] {
        let text = corpus(16 * 1024 * 1024, every);
        println!("{name}, {} MB:", text.len() / 1_000_000);
        let a = mb_per_s("  single-pass scanner", &text, |m| scanner.scan(m).len());
        let b = mb_per_s("  naive (one pass per kind)", &text, |m| {
            naive.scan(m).len()
        });
        println!("  speed-up {:.1}x", a / b);
    }
}
