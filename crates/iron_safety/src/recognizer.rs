//! The trait every recognizer implements, and small helpers for looking at the text around a candidate.

use crate::kind::PiiKind;
use std::ops::Range;

/// A candidate the recognizer accepted: the exact span to report and a short label such as "OpenAI key".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confirmed {
    /// Byte range of the value in the scanned text (may be narrower than the regex match).
    pub span: Range<usize>,
    /// Sub-type shown in block messages (empty when the kind says it all).
    pub label: &'static str,
}

/// One type of sensitive value: a candidate regex plus the validation that makes it precise.
pub trait Recognizer: Send + Sync {
    /// The kind this recognizer reports.
    fn kind(&self) -> PiiKind;
    /// Regex fragment finding candidates; no named groups, ASCII word boundaries only (`(?-u:\b)`).
    fn pattern(&self) -> &str;
    /// Whether the candidate text on its own is a real value of this kind (checksums, ranges, shapes).
    fn validate(&self, candidate: &str) -> bool;
    /// Short sub-type for messages, e.g. "OpenAI key"; empty by default.
    fn label(&self, _candidate: &str) -> &'static str {
        ""
    }
    /// Confirms a candidate found at `span` of `text`, looking at context when needed.
    fn confirm(&self, text: &str, span: Range<usize>) -> Option<Confirmed> {
        let candidate = text.get(span.clone())?;
        if self.validate(candidate) {
            Some(Confirmed {
                label: self.label(candidate),
                span,
            })
        } else {
            None
        }
    }
    /// True when candidates are short, so a rejected one is retried one character later.
    fn short_candidates(&self) -> bool {
        true
    }
}

/// The character just before byte `pos`, if any.
pub(crate) fn char_before(text: &str, pos: usize) -> Option<char> {
    text.get(..pos)?.chars().next_back()
}

/// The character at byte `pos`, if any.
pub(crate) fn char_at(text: &str, pos: usize) -> Option<char> {
    text.get(pos..)?.chars().next()
}

/// Up to `max` bytes of text before `pos`, lower-cased, for context-word checks.
pub(crate) fn lower_context_before(text: &str, pos: usize, max: usize) -> String {
    let mut from = pos.saturating_sub(max);
    while from > 0 && !text.is_char_boundary(from) {
        from -= 1;
    }
    text.get(from..pos).unwrap_or("").to_ascii_lowercase()
}

/// True when the candidate continues a longer run of digit groups, such as the tail of a UUID,
/// an ISBN or a longer dotted/dashed number: `<alnum><sep>` just before, or `<sep><alnum>` just after
/// (for a space separator the neighbour must be a digit, since words around a value are normal).
pub(crate) fn continues_number_run(text: &str, span: &Range<usize>, seps: &[char]) -> bool {
    run_continues_before(text, span.start, seps) || run_continues_after(text, span.end, seps)
}

/// `<alnum><sep>` just before `start` (see [`continues_number_run`]).
pub(crate) fn run_continues_before(text: &str, start: usize, seps: &[char]) -> bool {
    char_before(text, start).is_some_and(|sep| {
        seps.contains(&sep)
            && char_before(text, start - sep.len_utf8())
                .is_some_and(|c| neighbour_continues(sep, c))
    })
}

/// `<sep><alnum>` just after `end` (see [`continues_number_run`]).
pub(crate) fn run_continues_after(text: &str, end: usize, seps: &[char]) -> bool {
    char_at(text, end).is_some_and(|sep| {
        seps.contains(&sep)
            && char_at(text, end + sep.len_utf8()).is_some_and(|c| neighbour_continues(sep, c))
    })
}

fn neighbour_continues(sep: char, c: char) -> bool {
    // After a space (also a tab or a no-break space) a word is the next word, not the run.
    if sep.is_whitespace() {
        c.is_ascii_digit()
    } else {
        c.is_ascii_alphanumeric()
    }
}

/// The ASCII digits of `s`, in order.
pub(crate) fn digits_of(s: &str) -> Vec<u8> {
    s.bytes()
        .filter(u8::is_ascii_digit)
        .map(|b| b - b'0')
        .collect()
}
