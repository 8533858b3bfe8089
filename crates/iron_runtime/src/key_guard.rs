//! Keeps the provider key out of the answers the router passes on, whatever their status or shape.
//!
//! A provider never sends its caller's key back in a successful answer, but something in front of
//! it may: a debug endpoint, a gateway that echoes requests, a server answering TRACE. The PII
//! policy's secret check reads only the text fields of known shapes (and can be turned off), so
//! every byte relayed to the client passes through this guard too: the key sent upstream, and its
//! JSON-escaped forms, become `[REDACTED***]`, as long as what they replace, so a body keeps the
//! length its head declared. A stream holds back only a tail that could be the start of the key
//! (never the end of an SSE event, a newline), so a normal stream is not delayed.

use bytes::{Bytes, BytesMut};
use memchr::memmem::Finder;
use std::sync::Arc;

/// Writes the mark over `span`: `[REDACTED]` padded with `*` to the span's length (`*`s alone
/// when shorter), plain ASCII that is valid inside a JSON string.
fn mark(span: &mut [u8]) {
    const MARK: &[u8] = b"[REDACTED";
    span.fill(b'*');
    if span.len() > MARK.len() {
        span[..MARK.len()].copy_from_slice(MARK);
        if let Some(last) = span.last_mut() {
            *last = b']';
        }
    }
}

/// Shorter "keys" would redact ordinary text; real keys are far longer.
const MIN_KEY_LEN: usize = 8;

/// The forms one key takes in an answer, with their searchers: built once per key (see
/// `ProviderKey`), shared by every call made with it.
pub struct KeyForms {
    finders: Vec<Finder<'static>>,
}

impl std::fmt::Debug for KeyForms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyForms([REDACTED])")
    }
}

impl KeyForms {
    /// The key as sent and as it reads inside a JSON string; `None` when it is too short to be told
    /// from ordinary text.
    pub fn new(key: &str) -> Option<Arc<KeyForms>> {
        if key.len() < MIN_KEY_LEN {
            return None;
        }
        let json = serde_json::to_string(key).unwrap_or_default();
        let escaped = json
            .strip_prefix('"')
            .and_then(|s| s.strip_suffix('"'))
            .unwrap_or(key);
        // `/` may be written `\/` in JSON (PHP and others do), and every character as `\uXXXX`.
        let slashed = escaped.replace('/', "\\/");
        let unicode = |upper: bool| -> String {
            key.encode_utf16()
                .map(|u| match upper {
                    true => format!("\\u{u:04X}"),
                    false => format!("\\u{u:04x}"),
                })
                .collect()
        };
        let (lower, upper) = (unicode(false), unicode(true));
        let mut forms: Vec<&[u8]> = Vec::new();
        for form in [
            key,
            escaped,
            slashed.as_str(),
            lower.as_str(),
            upper.as_str(),
        ] {
            if !forms.contains(&form.as_bytes()) {
                forms.push(form.as_bytes());
            }
        }
        Some(Arc::new(KeyForms {
            finders: forms.iter().map(|f| Finder::new(f).into_owned()).collect(),
        }))
    }
}

/// One answer's guard: the keys its call was sent with (two after a rotation), and what it holds.
pub(crate) struct KeyGuard {
    keys: Vec<Arc<KeyForms>>,
    /// The end of the previous piece, which may be the start of a key completed by the next one.
    held: BytesMut,
    /// Whether anything was replaced.
    pub(crate) redacted: bool,
}

impl KeyGuard {
    /// A guard for the keys a call was sent with; `None` when none can be guarded.
    pub(crate) fn new<'a>(
        keys: impl IntoIterator<Item = &'a Option<Arc<KeyForms>>>,
    ) -> Option<KeyGuard> {
        let keys: Vec<Arc<KeyForms>> = keys.into_iter().flatten().cloned().collect();
        (!keys.is_empty()).then(|| KeyGuard {
            keys,
            held: BytesMut::new(),
            redacted: false,
        })
    }

    /// A whole answer with every occurrence of the key replaced.
    pub(crate) fn whole(&mut self, body: Vec<u8>) -> Vec<u8> {
        match self.replace(&body) {
            Some(out) => out,
            None => body,
        }
    }

    /// The part of a streamed piece that can go to the client now: the key replaced, and a tail
    /// that could begin the key kept until the next piece (or [`Self::finish`]) tells.
    pub(crate) fn pass(&mut self, piece: Bytes) -> Bytes {
        if self.held.is_empty() && self.replace(&piece).is_none() {
            let keep = self.tail_to_hold(&piece);
            if keep == 0 {
                return piece;
            }
            self.held.extend_from_slice(&piece[piece.len() - keep..]);
            return piece.slice(..piece.len() - keep);
        }
        let mut data = std::mem::take(&mut self.held);
        data.extend_from_slice(&piece);
        let data = match self.replace(&data) {
            Some(out) => BytesMut::from(&out[..]),
            None => data,
        };
        let keep = self.tail_to_hold(&data);
        let mut data = data;
        self.held = data.split_off(data.len() - keep);
        data.freeze()
    }

    /// What is still held at the end of the answer (it did not turn out to be the key).
    pub(crate) fn finish(&mut self) -> Bytes {
        std::mem::take(&mut self.held).freeze()
    }

    /// `text` with every key form replaced, or `None` when it holds none.
    fn replace(&mut self, text: &[u8]) -> Option<Vec<u8>> {
        let mut hits: Vec<(usize, usize)> = Vec::new();
        for f in self.keys.iter().flat_map(|k| &k.finders) {
            let n = f.needle().len();
            hits.extend(f.find_iter(text).map(|at| (at, at + n)));
        }
        if hits.is_empty() {
            return None;
        }
        self.redacted = true;
        let mut out = text.to_vec();
        for (start, end) in hits {
            mark(&mut out[start..end]);
        }
        Some(out)
    }

    /// How many bytes at the end of `text` are a proper start of some key form (0 nearly always:
    /// an SSE event ends with a newline, a JSON document with `}`).
    fn tail_to_hold(&self, text: &[u8]) -> usize {
        let mut keep = 0;
        for f in self.keys.iter().flat_map(|k| &k.finders) {
            let needle = f.needle();
            let window = needle.len().saturating_sub(1).min(text.len());
            let tail = &text[text.len() - window..];
            // The longest suffix of `tail` that the needle starts with.
            for i in memchr::memchr_iter(needle[0], tail) {
                let suffix = &tail[i..];
                if needle.starts_with(suffix) {
                    keep = keep.max(suffix.len());
                    break;
                }
            }
        }
        keep
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "sk-CANARY-Qx7Lm2Vb9Kp4Tz8Wd3Rf6Hn1Jc5";

    fn guard(key: &str) -> KeyGuard {
        KeyGuard::new([&KeyForms::new(key)]).unwrap()
    }

    fn run(guard: &mut KeyGuard, pieces: &[&[u8]]) -> (Vec<u8>, Vec<usize>) {
        let mut out = Vec::new();
        let mut sizes = Vec::new();
        for p in pieces {
            let b = guard.pass(Bytes::copy_from_slice(p));
            sizes.push(b.len());
            out.extend_from_slice(&b);
        }
        out.extend_from_slice(&guard.finish());
        (out, sizes)
    }

    /// The mark over `n` bytes.
    fn masked(n: usize) -> String {
        format!("[REDACTED{}]", "*".repeat(n - 10))
    }

    #[test]
    fn a_key_in_a_whole_answer_is_replaced_in_every_form_keeping_the_length() {
        let mut g = guard(KEY);
        let body = format!(r#"{{"a":"{KEY}","b":"x{KEY}y"}}"#).into_bytes();
        let len = body.len();
        let out = String::from_utf8(g.whole(body)).unwrap();
        let m = masked(KEY.len());
        assert_eq!(out, format!(r#"{{"a":"{m}","b":"x{m}y"}}"#));
        assert_eq!(out.len(), len);
        assert!(g.redacted);
        let mut g = guard("sk/ab+cd\"ef");
        let out = g.whole(br#"{"k":"sk\/ab+cd\"ef","j":"sk/ab+cd\"ef"}"#.to_vec());
        let (m13, m12) = (masked(13), masked(12));
        assert_eq!(out, format!(r#"{{"k":"{m13}","j":"{m12}"}}"#).into_bytes());
        // Every character escaped, in either case of hex digit.
        let escaped: String = KEY
            .chars()
            .map(|c| format!("\\u{:04x}", c as u32))
            .collect();
        let mut g = guard(KEY);
        let out = g.whole(
            format!(
                r#"{{"a":"{escaped}","b":"{}"}}"#,
                escaped.to_uppercase().replace("\\U", "\\u")
            )
            .into_bytes(),
        );
        let m = masked(escaped.len());
        assert_eq!(
            String::from_utf8(out).unwrap(),
            format!(r#"{{"a":"{m}","b":"{m}"}}"#)
        );
        // Short spans are all stars.
        let mut span = *b"abcdefgh";
        mark(&mut span);
        assert_eq!(&span, b"********");
    }

    #[test]
    fn a_key_split_across_pieces_never_goes_out_and_nothing_else_is_held() {
        let event = format!("data: {{\"id\":\"{KEY}\"}}\n\n");
        for cut in 1..event.len() {
            let mut g = guard(KEY);
            let (out, _) = run(
                &mut g,
                &[&event.as_bytes()[..cut], &event.as_bytes()[cut..]],
            );
            let out = String::from_utf8(out).unwrap();
            let m = masked(KEY.len());
            assert_eq!(out, format!("data: {{\"id\":\"{m}\"}}\n\n"), "cut at {cut}");
        }
        // Ordinary events go out whole, at once.
        let mut g = guard(KEY);
        let pieces: [&[u8]; 3] = [b"data: {\"a\":\"s\"}\n\n", b"data: sk-CAN", b"ARY\n\n"];
        let (out, sizes) = run(&mut g, &pieces);
        assert_eq!(sizes[0], pieces[0].len());
        assert_eq!(
            sizes[1],
            b"data: ".len(),
            "only the possible start of the key waits"
        );
        assert_eq!(out, b"data: {\"a\":\"s\"}\n\ndata: sk-CANARY\n\n".to_vec());
        assert!(!g.redacted);
    }

    #[test]
    fn short_keys_are_not_guarded() {
        assert!(KeyForms::new("short").is_none());
        assert!(KeyGuard::new([&KeyForms::new("short")]).is_none());
    }
}
