//! Redaction of one text stream that arrives in pieces: text is released as soon as no value can
//! still be forming across it, holding back only a short tail (and an unfinished private key).

use crate::audit::Tally;
use crate::guard::TextGuard;
use crate::kind::{Action, PiiKind};
use crate::recognizers::PEM_MAX_BYTES;
use crate::scanner::Finding;
use std::sync::Arc;

/// Tail held back so a value split across chunks is seen whole: longer than any spaced value
/// (a grouped IBAN is 42 bytes, a card 23, a phone number about 20).
pub const WINDOW_BYTES: usize = 64;
/// A run without whitespace (key, e-mail, JWT) is held whole up to this size.
pub const RUN_CAP_BYTES: usize = 8 * 1024;
/// In a run longer than [`RUN_CAP_BYTES`] (minified JSON, compact tool arguments), the token at
/// its end made of characters keys, tokens and e-mails are written with (no quote, comma, brace
/// or colon) is still held whole up to this size: a JWT is a match only once its second dot has
/// arrived, and an e-mail once its domain has. A longer token (a base64 blob) keeps only the
/// window.
pub const VALUE_TOKEN_CAP_BYTES: usize = 8 * 1024;
// Already released text kept as left context (word boundaries, "SSN:" before a number).
const CONTEXT_BYTES: usize = 64;
const PEM_BEGIN: &str = "-----BEGIN";
const PEM_END_TAIL: &str = "PRIVATE KEY-----";

/// Incremental redactor for a single text stream (one choice, one content block).
#[derive(Clone)]
pub struct StreamRedactor {
    guard: Arc<TextGuard>,
    pending: String,
    context: String,
    tally: Tally,
    /// Block-action values in the held tail: reported with the detections (a stream that ends
    /// abnormally before they are released still shows what the provider sent) but not blocking
    /// (see `is_blocked`).
    held_blocks: Tally,
    /// `held_blocks` is out of date: the last pushes could release nothing (the held run is still
    /// growing), so they did not scan it; [`StreamRedactor::tally`] scans the held text then.
    held_stale: bool,
    /// After an oversized private key: drop text until its END line.
    swallowing: bool,
    /// Byte offset in `context` where the last released value ended: scanning resumes there, as
    /// a whole-text scan does, so a value glued to the previous one is found the same way.
    resume: usize,
    /// The custom patterns' prefix DFA cache (none without custom patterns).
    prefix_cache: Option<crate::scanner::PrefixCache>,
    /// JSON text (tool-call arguments): a value found outside a string (a number) is replaced by
    /// its placeholder as a string, so the arguments stay JSON.
    json: bool,
    /// JSON text: whether the released text ends inside a string.
    in_string: bool,
}

impl StreamRedactor {
    /// A redactor applying `guard`'s policy.
    pub fn new(guard: Arc<TextGuard>) -> StreamRedactor {
        StreamRedactor {
            prefix_cache: guard.custom_prefix_cache(),
            json: false,
            in_string: false,
            guard,
            pending: String::new(),
            context: String::new(),
            tally: Tally::default(),
            held_blocks: Tally::default(),
            held_stale: false,
            swallowing: false,
            resume: 0,
        }
    }

    /// A redactor for JSON text in which every escape is one character (the encoding of
    /// `json_text`): a value outside a string becomes a string placeholder.
    pub(crate) fn new_json(guard: Arc<TextGuard>) -> StreamRedactor {
        let mut r = StreamRedactor::new(guard);
        r.json = true;
        r
    }

    /// Adds `text` and returns the text that is safe to emit now (possibly empty).
    pub fn push(&mut self, text: &str) -> String {
        let mut text = text;
        if self.swallowing {
            self.pending.push_str(text);
            match self.pending.find(PEM_END_TAIL) {
                Some(i) => {
                    let rest = self.pending.split_off(i + PEM_END_TAIL.len());
                    self.pending = rest;
                    self.swallowing = false;
                    text = "";
                }
                None => {
                    keep_tail(&mut self.pending, PEM_END_TAIL.len());
                    return String::new();
                }
            }
        }
        self.pending.push_str(text);
        self.release(false)
    }

    /// Flushes everything still held, redacted.
    pub fn finish(&mut self) -> String {
        if self.swallowing {
            self.pending.clear();
            return String::new();
        }
        self.release(true)
    }

    /// Detections in the text released so far, and the block-action values still held back (a
    /// stream that breaks off before releasing them reports them all the same).
    pub fn tally(&self) -> Tally {
        let mut all = self.tally.clone();
        if self.held_stale {
            // Nothing could be released: every value found from the context's end on is held.
            let ctx_len = self.context.len();
            let joined = format!("{}{}", self.context, self.pending);
            let findings = self.guard.scan_from(&joined, self.resume.min(ctx_len));
            all.merge(&self.blocks_in(&joined, &findings, ctx_len));
        } else {
            all.merge(&self.held_blocks);
        }
        all
    }

    /// The block-action values among `findings` that start at or after `cut` (held back).
    fn blocks_in(&self, joined: &str, findings: &[Finding], cut: usize) -> Tally {
        let mut held = Tally::default();
        for f in findings.iter().filter(|f| f.span.start >= cut) {
            if self.guard.action(&f.kind) == Action::Block {
                let value = joined.get(f.span.clone()).unwrap_or("");
                let digest = self.guard.digest(value);
                held.record(&f.kind, Action::Block, digest, f.label);
            }
        }
        held
    }

    /// The text held back so far (released by a later push together with what it adds).
    pub fn held(&self) -> &str {
        &self.pending
    }

    /// True while an oversized private key is being dropped up to its END line.
    pub fn is_swallowing(&self) -> bool {
        self.swallowing
    }

    /// True once a block-action value has been released (as its placeholder, by the push that
    /// found it, whose output the caller then drops instead of sending).
    ///
    /// A value still held back decides nothing: the held tail is exactly the text that more text
    /// may still change (`4111 1111 1111 1111` may be the start of a 28-digit reference that is no
    /// card), so blocking on it would stop answers the whole-text check lets through. Held text is
    /// never sent, so waiting until it is released leaks none of the value.
    pub fn is_blocked(&self) -> bool {
        self.tally.is_blocked()
    }

    fn release(&mut self, all: bool) -> String {
        let ctx_len = self.context.len();
        let mut joined = String::with_capacity(ctx_len + self.pending.len());
        joined.push_str(&self.context);
        joined.push_str(&self.pending);
        let len = joined.len();
        let mut cut = if all {
            len
        } else {
            self.safe_cut(&joined, ctx_len)
        };
        // A run still growing (a long word, minified JSON, a key arriving in pieces): nothing can
        // be released, so the held text is not scanned again on every piece (it is scanned once
        // it can go, or for `tally`). Every later step of this function would change nothing: the
        // findings only ever move the cut back, and it is at the context's end already. An
        // oversized private key is the exception: it is dropped while held.
        if !all
            && cut == ctx_len
            && self
                .open_private_key(&joined, ctx_len)
                .is_none_or(|start| len - start <= PEM_MAX_BYTES)
        {
            self.held_stale = true;
            return String::new();
        }
        self.held_stale = false;
        let findings: Vec<_> = self.guard.scan_from(&joined, self.resume.min(ctx_len));
        if !all {
            if let Some(cache) = self.prefix_cache.as_mut() {
                if let Some(p) = self.guard.open_custom_prefix(&joined, ctx_len, cache) {
                    cut = cut.min(p.max(ctx_len));
                }
            }
            for f in &findings {
                if f.span.start < cut && f.span.end > cut {
                    cut = f.span.start.max(ctx_len);
                }
            }
            if let Some(out) = self.pem_overflow(&joined, ctx_len, cut) {
                return out;
            }
        }
        self.held_blocks = self.blocks_in(&joined, &findings, cut);
        // Values straddling the released context are redacted from where the new text starts.
        let mut own: Vec<_> = findings
            .into_iter()
            .filter(|f| f.span.end > ctx_len && f.span.end <= cut)
            .collect();
        for f in &mut own {
            f.span.start = f.span.start.max(ctx_len);
        }
        let own_end = own.last().map_or(0, |f| f.span.end);
        let released = &joined[ctx_len..cut];
        let shifted: Vec<_> = own
            .into_iter()
            .map(|mut f| {
                f.span = f.span.start - ctx_len..f.span.end - ctx_len;
                f
            })
            .collect();
        let out = if self.json {
            let start_in_string = self.in_string;
            self.in_string ^= released.bytes().filter(|&b| b == b'"').count() % 2 == 1;
            self.guard
                .apply_json(released, &shifted, start_in_string, &mut self.tally)
        } else {
            self.guard.apply(released, &shifted, &mut self.tally)
        }
        .unwrap_or_else(|| released.to_string());
        let resume = own_end.max(self.resume.min(ctx_len));
        self.context = joined[..cut].to_string();
        // Keep the whole unfinished run as context too (up to the run cap): whether a value in it
        // is one (an e-mail's local part, a key's length) can depend on where the run began.
        let run = cut - run_start(&self.context, cut);
        keep_tail(
            &mut self.context,
            CONTEXT_BYTES.max(run.min(RUN_CAP_BYTES) + 8),
        );
        self.resume = resume.saturating_sub(cut - self.context.len());
        self.pending = joined[cut..].to_string();
        out
    }

    /// The furthest point that can be released. Held back: the trailing run since the last
    /// whitespace or non-ASCII character other than a Latin, Greek or Cyrillic letter (it may
    /// still grow into an e-mail, key or JWT, which are ASCII but for an address's letters: text
    /// in scripts written without spaces flows as it comes), and, when that run
    /// is empty or a
    /// digit group, the digit groups just before it (a card, phone or IBAN written with spaces),
    /// within the tail window; also the start of an unfinished private key. Everything else flows
    /// at once, so ordinary prose reaches the client word by word.
    fn safe_cut(&self, joined: &str, ctx_len: usize) -> usize {
        let len = joined.len();
        let tail_start = run_start(joined, len);
        let mut cut = if len - tail_start > RUN_CAP_BYTES {
            let window = floor_boundary(joined, len.saturating_sub(WINDOW_BYTES));
            let token = value_token_start(joined, len);
            if len - token <= VALUE_TOKEN_CAP_BYTES {
                window.min(token)
            } else {
                window
            }
        } else {
            tail_start
        };
        if tail_start == len || may_become_group(&joined[tail_start..]) {
            let mut start = tail_start;
            loop {
                let token_end = joined[..start].trim_end_matches(char::is_whitespace).len();
                let token_start = after_last_whitespace(joined, token_end);
                let token = &joined[token_start..token_end];
                if token.is_empty() {
                    break;
                }
                if !is_digit_group(token) {
                    // `card:4111`, `IBAN=GB82`: the value's first group is glued to a label, which
                    // may itself be long (`…key:GB82`): only the glued group must be in the window.
                    // The run may also follow another value (`…ABCD+1 (415)`): its last 16 bytes
                    // are held, enough for any first group.
                    let glued = group_suffix(token);
                    let glued = &glued[glued.len().saturating_sub(16)..];
                    let glued_start = token_end - glued.len();
                    if !glued.is_empty()
                        && is_digit_group(glued)
                        && len - glued_start <= WINDOW_BYTES
                    {
                        start = glued_start;
                    }
                    break;
                }
                if len - token_start > WINDOW_BYTES {
                    break;
                }
                start = token_start;
            }
            cut = cut.min(start);
        }
        // Held only when an IBAN would be replaced or stop the stream (`log` and `off` let it
        // through anyway, so holding would only delay the words after it).
        if matches!(
            self.guard.action(&PiiKind::Iban),
            Action::Redact | Action::Block
        ) {
            if let Some(start) = open_iban_start(joined) {
                cut = cut.min(start);
            }
        }
        cut = cut.max(ctx_len);
        if let Some(start) = self.open_private_key(joined, ctx_len) {
            cut = cut.min(start);
        }
        cut
    }

    /// Start of a `-----BEGIN` whose header is unfinished or names a private key with no END yet.
    fn open_private_key(&self, joined: &str, ctx_len: usize) -> Option<usize> {
        // Only worth holding when the key would be replaced; `log` lets it through anyway.
        if !matches!(
            self.guard.action(&PiiKind::Secret),
            Action::Redact | Action::Block
        ) {
            return None;
        }
        // Nearly every piece has no dash at all: skip building a substring searcher for it.
        if !joined.as_bytes()[ctx_len..].contains(&b'-') {
            return None;
        }
        let mut from = ctx_len;
        while let Some(rel) = joined[from..].find(PEM_BEGIN) {
            let start = from + rel;
            let after = &joined[start + PEM_BEGIN.len()..];
            match after.find("-----") {
                None => return Some(start),
                Some(h) if after[..h].contains("PRIVATE KEY") => {
                    if !after[h + 5..].contains("-----END")
                        || !after[h + 5..].contains(PEM_END_TAIL)
                    {
                        return Some(start);
                    }
                }
                Some(_) => {}
            }
            from = start + PEM_BEGIN.len();
        }
        None
    }

    /// When an unfinished private key has grown past the cap, releases what precedes it, replaces
    /// the key with its placeholder and drops text until its END line: never leak a partial key.
    fn pem_overflow(&mut self, joined: &str, ctx_len: usize, cut: usize) -> Option<String> {
        let start = self.open_private_key(joined, ctx_len)?;
        if joined.len() - start <= PEM_MAX_BYTES || cut > start {
            return None;
        }
        let before = &joined[ctx_len..start];
        let findings = self.guard.scan(before);
        let mut out = self
            .guard
            .apply(before, &findings, &mut self.tally)
            .unwrap_or_else(|| before.to_string());
        let action = self.guard.action(&PiiKind::Secret);
        let digest = self.guard.digest(&joined[start..]);
        self.tally
            .record(&PiiKind::Secret, action, digest, "private key");
        out.push_str(&PiiKind::Secret.placeholder());
        self.context.clear();
        self.resume = 0;
        self.pending.clear();
        self.swallowing = true;
        Some(out)
    }
}

fn floor_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Start of the token at the end of `text[..end]` made of the characters keys, tokens and
/// e-mail addresses are written with.
fn value_token_start(text: &str, end: usize) -> usize {
    let keep: usize = text[..end]
        .chars()
        .rev()
        .take_while(|&c| {
            c.is_ascii_alphanumeric()
                || "._~+/=@%-".contains(c)
                || crate::recognizers::is_address_letter(c)
        })
        .map(char::len_utf8)
        .sum();
    end - keep
}

/// Keeps only the last `max` bytes (at a char boundary) of `s`.
fn keep_tail(s: &mut String, max: usize) {
    if s.len() > max {
        let mut from = s.len() - max;
        while !s.is_char_boundary(from) {
            from += 1;
        }
        s.drain(..from);
    }
}

/// Byte index just after the last whitespace before `end` (0 when there is none).
fn after_last_whitespace(text: &str, end: usize) -> usize {
    text[..end]
        .char_indices()
        .rev()
        .find(|(_, c)| c.is_whitespace())
        .map_or(0, |(i, c)| i + c.len_utf8())
}

/// Byte index just after the last whitespace or other non-word character before `end` (0 when
/// there is none): where a run of text that could hold a value begins. Every built-in value is
/// ASCII but for the Latin, Greek and Cyrillic letters of an internationalised e-mail address
/// (a card's no-break-space separators are whitespace), so none crosses any other non-ASCII
/// character; custom patterns, which may match any text, are held by their own prefix check.
fn run_start(text: &str, end: usize) -> usize {
    let bytes = &text.as_bytes()[..end];
    let mut i = end;
    while i > 0 {
        let b = bytes[i - 1];
        if b.is_ascii() {
            if matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c) {
                return i;
            }
            i -= 1;
            continue;
        }
        // A non-ASCII character: its first byte is the last one before `i` that is not a
        // continuation byte.
        let mut start = i - 1;
        while start > 0 && (bytes[start] & 0xC0) == 0x80 {
            start -= 1;
        }
        let letter = text[start..i]
            .chars()
            .next()
            .is_some_and(crate::recognizers::is_address_letter);
        if !letter {
            return i;
        }
        i = start;
    }
    0
}

/// A short token that can be one group of a spaced card, phone, IBAN or SSN (`4111`, `(415)`,
/// `+44`, `DE89`, `555-2671`), including the letters-only bank code of an IBAN (`WEST`, `AIBK`).
fn is_digit_group(token: &str) -> bool {
    let bank_code = (1..=4).contains(&token.len()) && token.bytes().all(|b| b.is_ascii_uppercase());
    bank_code
        || (token.len() <= 16
            && token.bytes().any(|b| b.is_ascii_digit())
            && token.bytes().all(is_group_byte))
}

/// Start of a spaced IBAN that may still be arriving at the end of `text`: a country code and
/// check digits in any case (`gb82`, maybe glued to a label: `iban=gb82`) followed by groups of
/// four letters or digits one space apart, the last maybe unfinished, all within the window.
/// Lower-case letters-only groups (`west`, `aibk`) are not digit groups, since every short word
/// of prose would be held; the IBAN's first group before them is what holds them.
fn open_iban_start(text: &str) -> Option<usize> {
    let b = text.as_bytes();
    let floor = b.len().saturating_sub(WINDOW_BYTES);
    let mut end = b.len();
    let mut head = None;
    loop {
        let start = b[..end]
            .iter()
            .rposition(|c| !c.is_ascii_alphanumeric())
            .map_or(0, |i| i + 1);
        let group = &b[start..end];
        // Only the last group may be unfinished; one before it holds whole groups of four.
        let whole = !group.is_empty() && group.len().is_multiple_of(4);
        if start < floor || (end < b.len() && !whole) {
            break;
        }
        if group.len() >= 4
            && group[..2].iter().all(u8::is_ascii_alphabetic)
            && group[2..4].iter().all(u8::is_ascii_digit)
        {
            head = Some(start);
        }
        if start == 0 || b[start - 1] != b' ' {
            break;
        }
        end = start - 1;
    }
    head
}

/// An unfinished trailing run that may still grow into a group (`(`, `+`, `WE`, `41`).
fn may_become_group(run: &str) -> bool {
    is_digit_group(run)
        || (run.len() <= 16
            && run
                .bytes()
                .all(|b| is_group_byte(b) && !b.is_ascii_lowercase()))
}

fn is_group_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"()+-./".contains(&b)
}

/// The longest tail of `token` made of group characters (`4111` in `card:4111`).
fn group_suffix(token: &str) -> &str {
    let keep = token
        .bytes()
        .rev()
        .take_while(|b| is_group_byte(*b))
        .count();
    &token[token.len() - keep..]
}
