//! Telephone numbers: international `+<cc> …` and common national formats (US, UK, DE, FR), with
//! digit-count checks and rejection of dates, versions, timestamps and digit groups inside longer runs.

use crate::kind::PiiKind;
use crate::recognizer::{char_at, char_before, continues_number_run, Confirmed, Recognizer};
use std::ops::Range;

/// Finds phone numbers such as `+44 20 7946 0958`, `(415) 555-2671` or `01 23 45 67 89`.
pub struct PhoneRecognizer;

const SEPARATORS: [char; 4] = [' ', '.', '-', '/'];

impl Recognizer for PhoneRecognizer {
    fn kind(&self) -> PiiKind {
        PiiKind::Phone
    }

    fn pattern(&self) -> &str {
        concat!(
            // international: +<cc> then up to six digit groups, optionally parenthesised
            r"\+[1-9][0-9]{0,3}(?:[ .\-]?\(?[0-9]{1,5}\)?){1,6}",
            // US / NANP: optional leading 1, (415) 555-2671, 415-555-2671, 415.555.2671, 415 555 2671
            r"|(?:(?-u:\b)1[ .\-]?)?(?:\([2-9][0-9]{2}\) ?|(?-u:\b)[2-9][0-9]{2}[ .\-])[2-9][0-9]{2}[ .\-][0-9]{4}(?-u:\b)",
            // national with trunk 0 and an area code of 3+ digits: UK 020 7946 0958, DE 030/1234567
            r"|(?-u:\b)0[1-9][0-9]{1,4}[ /\-][0-9]{3,8}(?:[ \-][0-9]{3,5})?(?-u:\b)",
            // FR pairs: 01 23 45 67 89, 06.12.34.56.78
            r"|(?-u:\b)0[1-9](?:[ .\-][0-9]{2}){4}(?-u:\b)"
        )
    }

    fn validate(&self, candidate: &str) -> bool {
        let digits = candidate.bytes().filter(u8::is_ascii_digit).count();
        let Some(first) = candidate.chars().next() else {
            return false;
        };
        if first == '+' {
            return validate_international(candidate, digits);
        }
        if first == '0' && !candidate.contains('(') {
            return validate_national(candidate, digits);
        }
        validate_us(candidate, digits)
    }

    fn confirm(&self, text: &str, span: Range<usize>) -> Option<Confirmed> {
        let mut span = span;
        // `(mobile +44 20 7946 0958)`: the pattern's optional `)` took the closing parenthesis.
        if text.get(span.clone()).is_some_and(|c| {
            c.starts_with('+')
                && c.ends_with(')')
                && c.matches(')').count() > c.matches('(').count()
        }) {
            span.end -= 1;
        }
        let candidate = text.get(span.clone())?;
        // `+` glued to a word, digit, `:` or `)` is arithmetic or a UTC offset, not a phone number;
        // except after a phone link's scheme (`tel:+14155552671`, `sms:`, `callto:`).
        if candidate.starts_with('+') {
            if let Some(c) = char_before(text, span.start) {
                if c.is_ascii_alphanumeric()
                    || (c == ':' && !after_phone_scheme(&text[..span.start - 1]))
                    || c == ')'
                    || c == '_'
                {
                    return None;
                }
            }
        }
        if char_at(text, span.end).is_some_and(|c| c.is_ascii_digit()) {
            return None;
        }
        if continues_number_run(text, &span, &SEPARATORS) {
            return None;
        }
        self.validate(candidate)
            .then_some(Confirmed { span, label: "" })
    }
}

/// `before` (the text before a `:`) ends with a URI scheme that names a phone number, as a whole
/// word: `tel`, `sms`, `callto`, `facetime`, `facetime-audio` (`hotel:` is not one).
fn after_phone_scheme(before: &str) -> bool {
    ["tel", "sms", "callto", "facetime", "facetime-audio"]
        .iter()
        .any(|scheme| {
            let Some(at) = before.len().checked_sub(scheme.len()) else {
                return false;
            };
            before
                .get(at..)
                .is_some_and(|s| s.eq_ignore_ascii_case(scheme))
                && !before[..at].chars().next_back().is_some_and(|c| {
                    c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '+' | '_')
                })
        })
}

fn validate_international(candidate: &str, digits: usize) -> bool {
    if !(7..=15).contains(&digits) {
        return false;
    }
    let national: Vec<u8> = candidate
        .bytes()
        .filter(u8::is_ascii_digit)
        .skip(1)
        .collect();
    if national.windows(2).all(|w| w[0] == w[1]) {
        return false;
    }
    // Every +1… number is NANP: exactly 1 + 10 digits.
    if candidate.starts_with("+1") && digits != 11 {
        return false;
    }
    balanced_parens(candidate)
}

fn validate_us(candidate: &str, digits: usize) -> bool {
    if digits != 10 && !(digits == 11 && candidate.starts_with('1')) {
        return false;
    }
    if !candidate.contains('(') {
        // 415-555.2671 mixes separators: more likely a code than a number.
        let seps: Vec<char> = candidate.chars().filter(|c| !c.is_ascii_digit()).collect();
        if seps.windows(2).any(|w| w[0] != w[1]) {
            return false;
        }
    }
    let d: Vec<u8> = candidate.bytes().filter(u8::is_ascii_digit).collect();
    !d.windows(2).all(|w| w[0] == w[1])
}

fn validate_national(candidate: &str, digits: usize) -> bool {
    if !(9..=12).contains(&digits) {
        return false;
    }
    let groups: Vec<&str> = candidate.split(|c: char| !c.is_ascii_digit()).collect();
    let seps: Vec<char> = candidate.chars().filter(|c| !c.is_ascii_digit()).collect();
    // One separator style throughout, except a DE area-code slash: 030/123 4567.
    let rest = if seps.first() == Some(&'/') {
        &seps[1..]
    } else {
        &seps[..]
    };
    if rest.windows(2).any(|w| w[0] != w[1]) || rest.contains(&'/') {
        return false;
    }
    // Dates such as 01.02.2024 or 03-04-1999 followed by more digits.
    if groups.len() >= 3 && groups[0].len() == 2 && groups[1].len() == 2 && groups[2].len() == 4 {
        return false;
    }
    true
}

fn balanced_parens(s: &str) -> bool {
    s.matches('(').count() == s.matches(')').count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digit_counts_and_shapes() {
        let r = PhoneRecognizer;
        assert!(r.validate("+44 20 7946 0958"));
        assert!(r.validate("(415) 555-2671"));
        assert!(r.validate("415.555.2671"));
        assert!(r.validate("01 23 45 67 89"));
        assert!(!r.validate("415-555.2671"));
        assert!(!r.validate("+1 555 1234"));
        assert!(!r.validate("01.02.2024 1234"));
        assert!(!r.validate("+1000000"));
    }

    #[test]
    fn numbers_in_phone_links_are_found_and_offsets_still_are_not() {
        use crate::recognizer::Recognizer as _;
        let r = PhoneRecognizer;
        let re = regex::Regex::new(r.pattern()).expect("pattern");
        let found = |text: &str| {
            re.find_iter(text)
                .filter_map(|m| r.confirm(text, m.range()))
                .map(|c| text[c.span].to_string())
                .collect::<Vec<_>>()
        };
        for text in [
            "[Call us](tel:+14155552671)",
            "<a href=\"tel:+14155552671\">call</a>",
            "TEL:+14155552671",
            "sms:+14155552671?body=hi",
            "callto:+14155552671",
        ] {
            assert_eq!(found(text), ["+14155552671"], "{text}");
        }
        assert_eq!(found("tel:+44 20 7946 0958"), ["+44 20 7946 0958"]);
        for text in ["at 12:+14155552671", "hotel:+14155552671", "x:+14155552671"] {
            assert!(found(text).is_empty(), "{text}");
        }
    }
}
