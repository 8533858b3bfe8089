//! US social security numbers: `ddd-dd-dddd` anywhere; space, dot or no-separator forms only when a
//! context word ("ssn", "social security") comes shortly before. Invalid areas, groups and serials,
//! mixed delimiters and well-known sample numbers are rejected.

use crate::kind::PiiKind;
use crate::recognizer::{
    continues_number_run, digits_of, lower_context_before, Confirmed, Recognizer,
};
use std::ops::Range;

/// Finds SSNs such as `536-22-1234`, or `536 22 1234` after "SSN:".
pub struct UsSsnRecognizer;

const CONTEXT_WORDS: &[&str] = &[
    "ssn",
    "social security",
    "social sec",
    "ss#",
    "ss #",
    "ssns",
];

impl Recognizer for UsSsnRecognizer {
    fn kind(&self) -> PiiKind {
        PiiKind::UsSsn
    }

    fn pattern(&self) -> &str {
        r"(?-u:\b)[0-9]{3}[ .\-]?[0-9]{2}[ .\-]?[0-9]{4}(?-u:\b)"
    }

    fn validate(&self, candidate: &str) -> bool {
        let digits = digits_of(candidate);
        if digits.len() != 9 {
            return false;
        }
        let seps: Vec<char> = candidate.chars().filter(|c| !c.is_ascii_digit()).collect();
        if !(seps.is_empty() || (seps.len() == 2 && seps[0] == seps[1])) {
            return false;
        }
        let num = |r: Range<usize>| digits[r].iter().fold(0u32, |a, d| a * 10 + u32::from(*d));
        let (area, group, serial) = (num(0..3), num(3..5), num(5..9));
        if area == 0 || area == 666 || area >= 900 || group == 0 || serial == 0 {
            return false;
        }
        if digits.windows(2).all(|w| w[0] == w[1]) {
            return false;
        }
        let all = num(0..9);
        !matches!(
            all,
            123_456_789 | 78_051_120 | 219_099_999 | 987_654_320..=987_654_329
        )
    }

    fn confirm(&self, text: &str, span: Range<usize>) -> Option<Confirmed> {
        let candidate = text.get(span.clone())?;
        if continues_number_run(text, &span, &[' ', '-', '.', '/']) || !self.validate(candidate) {
            return None;
        }
        // Only the dashed form is distinctive enough on its own; bare nine digits are order numbers,
        // zip+4 codes and the like unless the text says it is an SSN.
        if !candidate.contains('-') {
            let context = lower_context_before(text, span.start, 48);
            if !CONTEXT_WORDS.iter().any(|w| context.contains(w)) {
                return None;
            }
        }
        Some(Confirmed { span, label: "" })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_invalid_ranges_and_needs_context_without_dashes() {
        let r = UsSsnRecognizer;
        assert!(r.validate("536-22-1234"));
        assert!(!r.validate("666-22-1234"));
        assert!(!r.validate("912-22-1234"));
        assert!(!r.validate("536-00-1234"));
        assert!(!r.validate("536-22-0000"));
        assert!(!r.validate("536-22 1234"));
        assert!(!r.validate("078-05-1120"));
        let text = "order 536221234 shipped";
        assert!(r.confirm(text, 6..15).is_none());
        let text = "my SSN is 536221234";
        assert_eq!(r.confirm(text, 10..19).map(|c| c.span), Some(10..19));
    }
}
