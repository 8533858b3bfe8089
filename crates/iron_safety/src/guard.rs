//! A compiled scanner plus the actions of one direction: scans a text, records detections and
//! returns the redacted text.

use crate::audit::{DigestKey, Tally};
use crate::kind::{Action, Direction, PiiKind};
use crate::policy::SafetyPolicy;
use crate::scanner::{Finding, Scanner};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The order kinds are tried in when candidates start at the same position.
pub const SCAN_ORDER: [PiiKind; 7] = [
    PiiKind::Secret,
    PiiKind::Email,
    PiiKind::Iban,
    PiiKind::CreditCard,
    PiiKind::UsSsn,
    PiiKind::IpAddress,
    PiiKind::Phone,
];

/// Scanner and actions for one direction; cheap to share behind an `Arc`.
pub struct TextGuard {
    direction: Direction,
    scanner: Scanner,
    actions: Vec<(PiiKind, Action)>,
    /// Prompts only: what earlier scans of the same texts found.
    seen: Option<Mutex<SeenTexts>>,
    /// Keys the digests recorded for values found.
    digest_key: DigestKey,
}

/// Texts shorter than this are scanned every time (it costs less than keeping them).
const SEEN_MIN_TEXT: usize = 256;
/// Texts kept at most, in bytes; past it the store starts over.
const SEEN_MAX_BYTES: usize = 2 << 20;

/// The findings of prompt texts already scanned. A prompt repeats most of what the last one
/// sent: the system prompt, and in a conversation every earlier message, so without this the
/// scanning of a conversation grows with the square of its length. A hit compares the whole text
/// (the hash only finds the slot), so what is returned is exactly what a scan would find.
#[derive(Default)]
struct SeenTexts {
    by_hash: HashMap<u64, (Box<str>, Arc<[Finding]>)>,
    bytes: usize,
}

impl SeenTexts {
    fn get(&self, hash: u64, text: &str) -> Option<Arc<[Finding]>> {
        self.by_hash
            .get(&hash)
            .filter(|(t, _)| **t == *text)
            .map(|(_, f)| f.clone())
    }

    fn put(&mut self, hash: u64, text: &str, findings: Arc<[Finding]>) {
        if text.len() > SEEN_MAX_BYTES / 8 {
            return;
        }
        if self.bytes + text.len() > SEEN_MAX_BYTES {
            self.by_hash.clear();
            self.bytes = 0;
        }
        if let Some((old, _)) = self.by_hash.insert(hash, (text.into(), findings)) {
            self.bytes -= old.len();
        }
        self.bytes += text.len();
    }
}

/// A fast hash of the text, eight bytes at a time (collisions only cost a comparison).
fn text_hash(text: &str) -> u64 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let bytes = text.as_bytes();
    let mut h = bytes.len() as u64;
    let mut words = bytes.chunks_exact(8);
    for w in &mut words {
        let v = u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
        h = (h.rotate_left(5) ^ v).wrapping_mul(K);
    }
    for &b in words.remainder() {
        h = (h.rotate_left(5) ^ u64::from(b)).wrapping_mul(K);
    }
    h
}

impl TextGuard {
    /// Compiles the scanner for every kind whose action in `direction` is not `Off`; digests are
    /// keyed by `safety.digestKey`, else by a random key of this guard's own.
    pub fn new(policy: &SafetyPolicy, direction: Direction) -> Result<TextGuard, regex::Error> {
        let key = match &policy.digest_key {
            Some(secret) => DigestKey::from_secret(secret),
            None => DigestKey::random(),
        };
        TextGuard::with_digest_key(policy, direction, key)
    }

    /// [`TextGuard::new`] with the digest key given (one engine's two guards share theirs, so a
    /// value in a prompt and in an answer has one digest).
    pub fn with_digest_key(
        policy: &SafetyPolicy,
        direction: Direction,
        digest_key: DigestKey,
    ) -> Result<TextGuard, regex::Error> {
        let dp = policy.direction(direction);
        let mut actions = Vec::new();
        let kinds: Vec<PiiKind> = SCAN_ORDER
            .iter()
            .filter(|k| dp.action(k, direction) != Action::Off)
            .cloned()
            .collect();
        let custom: Vec<(String, String)> = policy
            .custom
            .iter()
            .filter(|c| dp.action(&PiiKind::Custom(c.name.clone()), direction) != Action::Off)
            .map(|c| (c.name.clone(), c.pattern.clone()))
            .collect();
        let scanner = Scanner::new(&kinds, &custom)?;
        for kind in scanner.kinds() {
            let a = dp.action(&kind, direction);
            actions.push((kind, a));
        }
        Ok(TextGuard {
            direction,
            scanner,
            actions,
            seen: (direction == Direction::Request).then(Mutex::default),
            digest_key,
        })
    }

    /// The digest a detection of `value` reports.
    pub fn digest(&self, value: &str) -> String {
        self.digest_key.digest(value)
    }

    /// Request or response.
    pub fn direction(&self) -> Direction {
        self.direction
    }

    /// The action for `kind` (`Off` when the kind is not scanned).
    pub fn action(&self, kind: &PiiKind) -> Action {
        self.actions
            .iter()
            .find(|(k, _)| k == kind)
            .map_or(Action::Off, |(_, a)| *a)
    }

    /// A cache for [`TextGuard::open_custom_prefix`], or `None` when no custom pattern is scanned.
    pub fn custom_prefix_cache(&self) -> Option<crate::scanner::PrefixCache> {
        self.scanner.custom_prefix_cache()
    }

    /// Where the end of `text` (from `from` on) may be the start of a custom value still forming.
    pub fn open_custom_prefix(
        &self,
        text: &str,
        from: usize,
        cache: &mut crate::scanner::PrefixCache,
    ) -> Option<usize> {
        self.scanner.open_custom_prefix(text, from, cache)
    }

    /// The confirmed values in `text`.
    pub fn scan(&self, text: &str) -> Vec<Finding> {
        self.scanner.scan(text)
    }

    /// The confirmed values in `text` starting at or after byte `start`.
    pub fn scan_from(&self, text: &str, start: usize) -> Vec<Finding> {
        self.scanner.scan_from(text, start)
    }

    /// Scans `text`, records every value in `tally`, and returns the text with redact- and
    /// block-action values replaced by placeholders, or `None` when nothing was replaced.
    pub fn process(&self, text: &str, tally: &mut Tally) -> Option<String> {
        let Some(seen) = self.seen.as_ref().filter(|_| text.len() >= SEEN_MIN_TEXT) else {
            let findings = self.scanner.scan(text);
            return self.apply(text, &findings, tally);
        };
        let hash = text_hash(text);
        let known = seen.lock().ok().and_then(|s| s.get(hash, text));
        let findings = match known {
            Some(f) => f,
            None => {
                let f: Arc<[Finding]> = self.scanner.scan(text).into();
                if let Ok(mut s) = seen.lock() {
                    s.put(hash, text, f.clone());
                }
                f
            }
        };
        self.apply(text, &findings, tally)
    }

    /// Records `findings` of `text` and applies their replacements (`None` when nothing changes).
    pub fn apply(&self, text: &str, findings: &[Finding], tally: &mut Tally) -> Option<String> {
        let mut out: Option<String> = None;
        let mut copied = 0;
        for f in findings {
            let Some(value) = text.get(f.span.clone()) else {
                continue;
            };
            let action = self.action(&f.kind);
            tally.record(&f.kind, action, self.digest(value), f.label);
            if matches!(action, Action::Redact | Action::Block) {
                let buf = out.get_or_insert_with(|| String::with_capacity(text.len()));
                buf.push_str(&text[copied..f.span.start]);
                buf.push_str(&f.kind.placeholder());
                copied = f.span.end;
            }
        }
        out.map(|mut s| {
            s.push_str(&text[copied..]);
            s
        })
    }

    /// [`TextGuard::apply`] for JSON text in which every escape is one character (so each `"` is
    /// a string delimiter), starting inside a string when `in_string`, keeping the text JSON:
    /// a value outside any string (a number, with its sign, fraction and exponent) becomes its
    /// placeholder as a string; a value that crosses a string's quotes (a custom pattern over
    /// `"Jane":"Doe"`) has each of its parts inside a string replaced, the quotes and JSON's
    /// punctuation between strings kept.
    pub fn apply_json(
        &self,
        text: &str,
        findings: &[Finding],
        in_string: bool,
        tally: &mut Tally,
    ) -> Option<String> {
        let mut out: Option<String> = None;
        let mut copied = 0;
        let mut state = in_string;
        for f in findings {
            let Some(value) = text.get(f.span.clone()) else {
                continue;
            };
            let action = self.action(&f.kind);
            tally.record(&f.kind, action, self.digest(value), f.label);
            if !matches!(action, Action::Redact | Action::Block) || f.span.start < copied {
                continue;
            }
            let before = &text[copied..f.span.start];
            state ^= before.bytes().filter(|&b| b == b'"').count() % 2 == 1;
            let buf = out.get_or_insert_with(|| String::with_capacity(text.len() + 8));
            let placeholder = f.kind.placeholder();
            if !state && !value.contains('"') {
                // A bare token: the whole JSON number it is part of becomes a string.
                let start = if before.ends_with('-') {
                    f.span.start - 1
                } else {
                    f.span.start
                };
                let tail = text[f.span.end..]
                    .bytes()
                    .take_while(|b| b.is_ascii_digit() || b"+-.eE".contains(b))
                    .count();
                buf.push_str(&text[copied..start]);
                buf.push('"');
                buf.push_str(&placeholder);
                buf.push('"');
                copied = f.span.end + tail;
                continue;
            }
            buf.push_str(before);
            // Parts inside strings become the placeholder; between strings, JSON's punctuation
            // and whitespace stay and any other token (a number, a literal) becomes a string.
            let mut part_open = false;
            for c in value.chars() {
                if c == '"' {
                    buf.push('"');
                    state = !state;
                    part_open = false;
                } else if state {
                    if !part_open {
                        buf.push_str(&placeholder);
                        part_open = true;
                    }
                } else if c.is_whitespace() || "{}[],:".contains(c) {
                    buf.push(c);
                    part_open = false;
                } else if !part_open {
                    buf.push('"');
                    buf.push_str(&placeholder);
                    buf.push('"');
                    part_open = true;
                }
            }
            copied = f.span.end;
        }
        out.map(|mut s| {
            s.push_str(&text[copied..]);
            s
        })
    }

    /// [`TextGuard::process`] for a whole JSON text (see [`TextGuard::apply_json`]).
    pub fn process_json(&self, text: &str, tally: &mut Tally) -> Option<String> {
        let findings = self.scanner.scan(text);
        self.apply_json(text, &findings, false, tally)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(direction: Direction) -> TextGuard {
        let policy = SafetyPolicy::from_json_str(r#"{"request":{"default":"redact"}}"#).unwrap();
        TextGuard::new(&policy, direction).unwrap()
    }

    #[test]
    fn a_prompt_seen_before_gives_what_a_scan_gives_and_is_kept_bounded() {
        let g = guard(Direction::Request);
        let base = "You are a helpful assistant. ".repeat(12);
        let texts = [
            format!("{base} Write to jane.doe@example.com or call +1 415 555 2671."),
            format!("{base} Nothing personal here at all."),
            format!("{base} Write to jane.doe@example.org or call +1 415 555 2671."),
        ];
        for round in 0..3 {
            for t in &texts {
                let (mut a, mut b) = (Tally::default(), Tally::default());
                let cached = g.process(t, &mut a);
                let scanned = g.apply(t, &g.scan(t), &mut b);
                assert_eq!(cached, scanned, "round {round}: {t}");
                assert_eq!(
                    format!("{:?}", a.detections(Direction::Request)),
                    format!("{:?}", b.detections(Direction::Request))
                );
            }
        }
        let seen = g.seen.as_ref().unwrap().lock().unwrap();
        assert_eq!(seen.by_hash.len(), 3);
        assert_eq!(seen.bytes, texts.iter().map(String::len).sum::<usize>());
        drop(seen);
        // Never more than the cap, whatever comes.
        for i in 0..3_000 {
            g.process(
                &format!("{base} message number {i} {}", "x".repeat(900)),
                &mut Tally::default(),
            );
            assert!(g.seen.as_ref().unwrap().lock().unwrap().bytes <= SEEN_MAX_BYTES);
        }
        // Answers are not kept: they rarely repeat.
        let r = guard(Direction::Response);
        assert!(r.seen.is_none());
    }

    #[test]
    fn the_hash_only_finds_the_slot_the_text_decides() {
        let g = guard(Direction::Request);
        let clean = "a".repeat(300);
        let dirty = format!("{} jane.doe@example.com", "a".repeat(280));
        let mut seen = g.seen.as_ref().unwrap().lock().unwrap();
        // The clean text's findings stored under the hash of the dirty one: not returned for it.
        seen.put(text_hash(&dirty), &clean, Arc::from(Vec::new()));
        assert!(seen.get(text_hash(&dirty), &dirty).is_none());
        drop(seen);
        assert!(g.process(&dirty, &mut Tally::default()).is_some());
    }
}
