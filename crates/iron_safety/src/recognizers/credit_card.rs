//! Payment card numbers: 12–19 digits, optional space or dash groups, Luhn checksum and a known
//! issuer prefix whose length rules fit.

use crate::kind::PiiKind;
use crate::recognizer::{
    digits_of, run_continues_after, run_continues_before, Confirmed, Recognizer,
};
use std::ops::Range;

/// Finds card numbers such as `4111 1111 1111 1111` or `3782-822463-10005`.
pub struct CreditCardRecognizer;

impl Recognizer for CreditCardRecognizer {
    fn kind(&self) -> PiiKind {
        PiiKind::CreditCard
    }

    fn pattern(&self) -> &str {
        // Groups split by a space, two spaces, a tab, a no-break space (also the narrow and the
        // figure one that typesetting puts between digit groups), a dash or a dot.
        r"(?-u:\b)[1-9](?:(?:[ \t\-.\xA0\u{2007}\u{202F}]|  )?[0-9]){11,18}(?-u:\b)"
    }

    fn validate(&self, candidate: &str) -> bool {
        let digits = digits_of(candidate);
        if !(12..=19).contains(&digits.len()) || !grouping_ok(candidate) {
            return false;
        }
        if digits.windows(2).all(|w| w[0] == w[1]) {
            return false;
        }
        luhn_ok(&digits) && issuer(&digits).is_some()
    }

    fn label(&self, candidate: &str) -> &'static str {
        issuer(&digits_of(candidate)).unwrap_or("")
    }

    /// The longest valid number from the candidate's start: the pattern is greedy, so a card
    /// followed on the same line by its expiry or security code (`4111 1111 1111 1111 12/26`,
    /// `4111111111111111 123`) first matches with part of that; trailing groups are dropped
    /// until a card is left. A number that goes on as a longer run of digit groups (a UUID's
    /// tail, an account number) is not a card, unless what follows is just an expiry or code.
    fn confirm(&self, text: &str, span: Range<usize>) -> Option<Confirmed> {
        if run_continues_before(text, span.start, &RUN_SEPARATORS) {
            return None;
        }
        let mut end = span.end;
        loop {
            let candidate = text.get(span.start..end)?;
            if self.validate(candidate)
                && (!run_continues_after(text, end, &RUN_SEPARATORS)
                    || expiry_or_code_follows(text, end))
            {
                return Some(Confirmed {
                    label: self.label(candidate),
                    span: span.start..end,
                });
            }
            let cut = candidate
                .rfind(|c: char| !c.is_ascii_digit())
                .filter(|&i| i > 0)?;
            end = span.start
                + candidate[..cut]
                    .trim_end_matches(|c: char| !c.is_ascii_digit())
                    .len();
        }
    }
}

const RUN_SEPARATORS: [char; 8] = [' ', '\t', '-', '.', '/', '\u{a0}', '\u{2007}', '\u{202f}'];

/// After a card number: an expiry (`12/26`, `12/2026`) and / or a 3–4 digit security code, in
/// either order, each after one separator, and nothing more of the run.
fn expiry_or_code_follows(text: &str, end: usize) -> bool {
    let mut at = end;
    let (mut expiry, mut code) = (false, false);
    while let Some(len) = companion_at(text, at, !expiry, !code) {
        if len.1 {
            expiry = true;
        } else {
            code = true;
        }
        at += 1 + len.0;
        if !run_continues_after(text, at, &RUN_SEPARATORS) {
            return !text[at..].starts_with(|c: char| c.is_ascii_alphanumeric());
        }
    }
    false
}

/// The length of an expiry (`true`) or a security code (`false`) after one separator at `at`.
fn companion_at(
    text: &str,
    at: usize,
    want_expiry: bool,
    want_code: bool,
) -> Option<(usize, bool)> {
    let rest = text.get(at..)?.strip_prefix([' ', '/', '-'])?;
    let b = rest.as_bytes();
    let digits = |from: usize| {
        b[from.min(b.len())..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count()
    };
    let first = digits(0);
    let month_ok =
        |b: &[u8]| (1..=12).contains(&(u32::from(b[0] - b'0') * 10 + u32::from(b[1] - b'0')));
    match first {
        2 if want_expiry && b.get(2) == Some(&b'/') && month_ok(b) => match digits(3) {
            n @ (2 | 4) => Some((3 + n, true)),
            _ => None,
        },
        3 | 4 if want_code => Some((first, false)),
        _ => None,
    }
}

/// Separators, when present, are all the same (one space, two spaces, a tab, a no-break space, a
/// dash or a dot) and split the number into groups of 3–6 digits (4-4-4-4, 4-6-5, 4-4-4-4-3), the first
/// being 4.
fn grouping_ok(candidate: &str) -> bool {
    let groups: Vec<&str> = candidate
        .split(|c: char| !c.is_ascii_digit())
        .filter(|g| !g.is_empty())
        .collect();
    if groups.len() == 1 {
        return true;
    }
    let seps: Vec<&str> = candidate
        .split(|c: char| c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .collect();
    if seps.windows(2).any(|w| w[0] != w[1]) {
        return false;
    }
    groups[0].len() == 4 && groups.iter().all(|g| (3..=6).contains(&g.len()))
}

/// The Luhn (mod 10) checksum over all digits.
pub(crate) fn luhn_ok(digits: &[u8]) -> bool {
    let mut sum = 0u32;
    for (i, d) in digits.iter().rev().enumerate() {
        let mut v = u32::from(*d);
        if i % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    sum.is_multiple_of(10)
}

/// The card network for a known issuer prefix whose allowed lengths include this number's.
fn issuer(digits: &[u8]) -> Option<&'static str> {
    let len = digits.len();
    let prefix = |n: usize| -> u32 {
        digits
            .iter()
            .take(n)
            .fold(0, |acc, d| acc * 10 + u32::from(*d))
    };
    let (p1, p2, p3, p4, p6) = (prefix(1), prefix(2), prefix(3), prefix(4), prefix(6));
    let in_len = |lens: &[usize]| lens.contains(&len);
    if p1 == 4 && in_len(&[13, 16, 19]) {
        return Some("Visa");
    }
    if ((51..=55).contains(&p2) || (2221..=2720).contains(&p4)) && len == 16 {
        return Some("Mastercard");
    }
    if (p2 == 34 || p2 == 37) && len == 15 {
        return Some("American Express");
    }
    if (p4 == 6011 || p2 == 65 || (644..=649).contains(&p3) || (622126..=622925).contains(&p6))
        && (16..=19).contains(&len)
    {
        return Some("Discover");
    }
    if (3528..=3589).contains(&p4) && (16..=19).contains(&len) {
        return Some("JCB");
    }
    if ((300..=305).contains(&p3) || p2 == 36 || p2 == 38 || p2 == 39) && (14..=19).contains(&len) {
        return Some("Diners Club");
    }
    if p2 == 62 && (16..=19).contains(&len) {
        return Some("UnionPay");
    }
    if (2200..=2204).contains(&p4) && (16..=19).contains(&len) {
        return Some("Mir");
    }
    if (p2 == 50 || (56..=69).contains(&p2)) && (12..=19).contains(&len) {
        return Some("Maestro");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn_and_issuer_rules() {
        let r = CreditCardRecognizer;
        assert!(r.validate("4111 1111 1111 1111"));
        assert!(r.validate("378282246310005"));
        assert!(r.validate("5555-5555-5555-4444"));
        assert!(!r.validate("4111 1111 1111 1112"));
        assert!(!r.validate("4111-1111 1111-1111"));
        assert!(!r.validate("1234567812345670"));
        assert_eq!(r.label("4111111111111111"), "Visa");
    }
}
