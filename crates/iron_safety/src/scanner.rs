//! One multi-pattern regex (one pattern per recognizer, leftmost-first, reporting which pattern
//! matched) finds every kind of candidate in a single left-to-right pass; each candidate is then
//! confirmed by its recognizer's validator.

use crate::kind::PiiKind;
use crate::recognizer::Recognizer;
use crate::recognizers::{self, CustomRecognizer};
use regex::{Regex, RegexBuilder};
pub(crate) use regex_automata::hybrid::dfa::Cache as PrefixCache;
use regex_automata::hybrid::dfa::DFA as PrefixDfa;
use regex_automata::meta;
use regex_automata::{Anchored, Input};
use std::ops::Range;

/// A confirmed value in scanned text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// What the value is.
    pub kind: PiiKind,
    /// Byte range of the value in the scanned text.
    pub span: Range<usize>,
    /// Sub-type such as "OpenAI key" or "Visa" (may be empty).
    pub label: &'static str,
}

/// Finds all enabled kinds in one pass over the text.
pub struct Scanner {
    recognizers: Vec<Box<dyn Recognizer>>,
    /// All recognizer patterns in one lazy DFA; pattern i belongs to recognizer i.
    combined: Option<meta::Regex>,
    /// Each recognizer alone, used only to retry a rejected short candidate's start position (an
    /// anchored search: it looks no further than a value starting exactly there).
    singles: Vec<meta::Regex>,
    /// The custom patterns alone as an anchored lazy DFA, to tell whether the end of a stream's
    /// text could still grow into one of them (see [`Scanner::open_custom_prefix`]).
    custom_prefix: Option<PrefixDfa>,
}

/// How far back from the end of a stream's text a custom value still forming is looked for (and
/// so held back): longer than names, addresses and code names; a longer one is released in part.
pub const CUSTOM_PREFIX_BYTES: usize = 256;

// How far past a rejected candidate's start the per-kind retry looks; longer than any short value.
const RETRY_WINDOW: usize = 128;

impl Scanner {
    /// A scanner for the given built-in kinds (in that priority order) plus custom `(name, regex)` patterns.
    pub fn new(kinds: &[PiiKind], custom: &[(String, String)]) -> Result<Scanner, regex::Error> {
        let mut recs: Vec<Box<dyn Recognizer>> =
            kinds.iter().filter_map(recognizers::built_in).collect();
        for (name, pattern) in custom {
            recs.push(Box::new(CustomRecognizer::new(
                name.clone(),
                pattern.clone(),
            )));
        }
        let mut scanner = Scanner::from_recognizers(recs)?;
        if !custom.is_empty() {
            let patterns: Vec<&str> = custom.iter().map(|(_, p)| p.as_str()).collect();
            scanner.custom_prefix = Some(prefix_dfa(&patterns)?);
        }
        Ok(scanner)
    }

    /// A scanner over arbitrary recognizers; earlier ones win when candidates start at the same place.
    pub fn from_recognizers(
        recognizers: Vec<Box<dyn Recognizer>>,
    ) -> Result<Scanner, regex::Error> {
        // Compiled with `regex` first so that a bad custom pattern gets its familiar error message.
        let singles = recognizers
            .iter()
            .map(|r| {
                build(r.pattern())?;
                meta::Regex::builder()
                    .configure(meta::Config::new().nfa_size_limit(Some(64 * 1024 * 1024)))
                    .build(r.pattern())
                    .map_err(|e| regex::Error::CompiledTooBig(e.size_limit().unwrap_or(0)))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if recognizers.is_empty() {
            return Ok(Scanner {
                recognizers,
                combined: None,
                singles,
                custom_prefix: None,
            });
        }
        let patterns: Vec<&str> = recognizers.iter().map(|r| r.pattern()).collect();
        let config = meta::Config::new()
            .nfa_size_limit(Some(64 * 1024 * 1024))
            .hybrid_cache_capacity(16 * 1024 * 1024);
        // The patterns already compiled one by one above, so a failure here is a size limit.
        let combined = meta::Regex::builder()
            .configure(config)
            .build_many(&patterns)
            .map_err(|e| regex::Error::CompiledTooBig(e.size_limit().unwrap_or(0)))?;
        Ok(Scanner {
            recognizers,
            combined: Some(combined),
            singles,
            custom_prefix: None,
        })
    }

    /// A cache for [`Scanner::open_custom_prefix`] (one per stream), or `None` without custom
    /// patterns.
    pub fn custom_prefix_cache(&self) -> Option<PrefixCache> {
        self.custom_prefix.as_ref().map(PrefixDfa::create_cache)
    }

    /// The earliest position at or after `from`, within the last [`CUSTOM_PREFIX_BYTES`] of
    /// `text`, where the rest of `text` is the beginning of a custom pattern's match that more
    /// text could complete (`Jane` or `Jane ` for `Jane Doe`, `221 Baker ` for an address). A
    /// stream holds that tail back instead of releasing the first words of a value. The DFA
    /// giving up (a Unicode word boundary before non-ASCII text, a thrashing cache) counts as
    /// "could be": holding is the safe side.
    pub fn open_custom_prefix(
        &self,
        text: &str,
        from: usize,
        cache: &mut PrefixCache,
    ) -> Option<usize> {
        let dfa = self.custom_prefix.as_ref()?;
        let len = text.len();
        let mut p = from.max(len.saturating_sub(CUSTOM_PREFIX_BYTES));
        while p < len {
            if text.is_char_boundary(p) && prefix_alive(dfa, cache, text, p) {
                return Some(p);
            }
            p += 1;
        }
        None
    }

    /// The kinds this scanner looks for, in priority order.
    pub fn kinds(&self) -> Vec<PiiKind> {
        self.recognizers.iter().map(|r| r.kind()).collect()
    }

    /// All confirmed values in `text`, in order, never overlapping.
    pub fn scan(&self, text: &str) -> Vec<Finding> {
        self.scan_from(text, 0)
    }

    /// Like [`Scanner::scan`] but looking for values only from byte `start` on (the text before
    /// it still counts as left context), as a whole-text scan does after a value ending there.
    pub fn scan_from(&self, text: &str, start: usize) -> Vec<Finding> {
        let mut out = Vec::new();
        self.scan_range(text, start, text.len(), &mut out);
        out
    }

    /// The values in `text[start..end]` (the text around it as context), appended to `out`.
    fn scan_range(&self, text: &str, start: usize, end: usize, out: &mut Vec<Finding>) {
        let Some(combined) = &self.combined else {
            return;
        };
        let mut pos = start;
        while pos <= end {
            let Some(m) = combined.search(&Input::new(text).span(pos..end)) else {
                break;
            };
            let span = m.range();
            let idx = m.pattern().as_usize();
            let Some(rec) = self.recognizers.get(idx) else {
                break;
            };
            if let Some(c) = rec
                .confirm(text, span.clone())
                .filter(|c| !c.span.is_empty())
            {
                // A recognizer that cut a glued word off the front of its match (an e-mail's
                // `4111111111111111..jane@`): that word may hold values of its own.
                if c.span.start > span.start {
                    self.scan_range(text, span.start, c.span.start, out);
                }
                pos = c.span.end;
                out.push(Finding {
                    kind: rec.kind(),
                    span: c.span,
                    label: c.label,
                });
                continue;
            }
            if let Some(f) = self.retry_at(text, span.start, end, idx) {
                pos = f.span.end;
                out.push(f);
                continue;
            }
            pos = if rec.short_candidates() || span.is_empty() {
                next_boundary(text, span.start)
            } else {
                span.end
            };
        }
    }

    /// Another short kind may match at the same start where the winning alternative was rejected
    /// (a Luhn-failing "card" that is a valid phone number, say).
    fn retry_at(&self, text: &str, start: usize, end: usize, rejected: usize) -> Option<Finding> {
        let mut limit = (start + RETRY_WINDOW).min(end);
        while !text.is_char_boundary(limit) {
            limit -= 1;
        }
        let window = &text[..limit];
        for (i, rec) in self.recognizers.iter().enumerate() {
            if i == rejected || !rec.short_candidates() {
                continue;
            }
            let input = Input::new(window)
                .span(start..limit)
                .anchored(Anchored::Yes);
            let Some(m) = self.singles[i].search(&input) else {
                continue;
            };
            if m.end() == limit && limit < text.len() {
                continue;
            }
            if let Some(c) = rec.confirm(text, m.range()).filter(|c| !c.span.is_empty()) {
                return Some(Finding {
                    kind: rec.kind(),
                    span: c.span,
                    label: c.label,
                });
            }
        }
        None
    }
}

/// Compiles a scanner regex with room for the large lazy DFA a combined alternation needs.
pub(crate) fn build(pattern: &str) -> Result<Regex, regex::Error> {
    RegexBuilder::new(pattern)
        .size_limit(64 * 1024 * 1024)
        .dfa_size_limit(64 * 1024 * 1024)
        .build()
}

/// The custom patterns as one anchored lazy DFA (starts anchored at any position asked).
fn prefix_dfa(patterns: &[&str]) -> Result<PrefixDfa, regex::Error> {
    let config = PrefixDfa::config()
        .unicode_word_boundary(true)
        .cache_capacity(2 * 1024 * 1024);
    PrefixDfa::builder()
        .configure(config)
        .thompson(
            regex_automata::nfa::thompson::Config::new().nfa_size_limit(Some(64 * 1024 * 1024)),
        )
        .build_many(patterns)
        .map_err(|_| regex::Error::CompiledTooBig(64 * 1024 * 1024))
}

/// True when `text[start..]` can be extended into a match of some pattern starting at `start`
/// (or the DFA gave up).
fn prefix_alive(dfa: &PrefixDfa, cache: &mut PrefixCache, text: &str, start: usize) -> bool {
    let input = Input::new(text)
        .span(start..text.len())
        .anchored(Anchored::Yes);
    let Ok(mut sid) = dfa.start_state_forward(cache, &input) else {
        return true;
    };
    for &b in &text.as_bytes()[start..] {
        match dfa.next_state(cache, sid, b) {
            Ok(next) if next.is_dead() => return false,
            Ok(next) if next.is_quit() => return true,
            Ok(next) => sid = next,
            Err(_) => return true,
        }
    }
    true
}

fn next_boundary(text: &str, at: usize) -> usize {
    let mut next = at + 1;
    while next < text.len() && !text.is_char_boundary(next) {
        next += 1;
    }
    next
}
