//! One multi-pattern regex (one pattern per recognizer, leftmost-first, reporting which pattern
//! matched) finds every kind of candidate in a single left-to-right pass; each candidate is then
//! confirmed by its recognizer's validator.

use crate::kind::PiiKind;
use crate::recognizer::Recognizer;
use crate::recognizers::{self, CustomRecognizer};
use regex::{Regex, RegexBuilder};
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
}

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
        Scanner::from_recognizers(recs)
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
        })
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
        let Some(combined) = &self.combined else {
            return out;
        };
        let mut pos = start;
        while pos <= text.len() {
            let Some(m) = combined.search(&Input::new(text).span(pos..text.len())) else {
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
                pos = c.span.end;
                out.push(Finding {
                    kind: rec.kind(),
                    span: c.span,
                    label: c.label,
                });
                continue;
            }
            if let Some(f) = self.retry_at(text, span.start, idx) {
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
        out
    }

    /// Another short kind may match at the same start where the winning alternative was rejected
    /// (a Luhn-failing "card" that is a valid phone number, say).
    fn retry_at(&self, text: &str, start: usize, rejected: usize) -> Option<Finding> {
        let mut limit = (start + RETRY_WINDOW).min(text.len());
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

fn next_boundary(text: &str, at: usize) -> usize {
    let mut next = at + 1;
    while next < text.len() && !text.is_char_boundary(next) {
        next += 1;
    }
    next
}
