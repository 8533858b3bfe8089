//! IBANs: country code, per-country length, mod-97 check digits; with or without group spaces,
//! in any letter case (people type `de89 3704 …`; the check digits do not depend on case).

use crate::kind::PiiKind;
use crate::recognizer::{Confirmed, Recognizer};
use std::ops::Range;

/// Finds IBANs such as `DE89 3704 0044 0532 0130 00`, `GB82WEST12345698765432` or
/// `de89 3704 0044 0532 0130 00`.
pub struct IbanRecognizer;

// ISO 13616 registry: country code and total IBAN length.
const LENGTHS: &[(&str, usize)] = &[
    ("AD", 24),
    ("AE", 23),
    ("AL", 28),
    ("AT", 20),
    ("AZ", 28),
    ("BA", 20),
    ("BE", 16),
    ("BG", 22),
    ("BH", 22),
    ("BI", 27),
    ("BR", 29),
    ("BY", 28),
    ("CH", 21),
    ("CR", 22),
    ("CY", 28),
    ("CZ", 24),
    ("DE", 22),
    ("DJ", 27),
    ("DK", 18),
    ("DO", 28),
    ("EE", 20),
    ("EG", 29),
    ("ES", 24),
    ("FI", 18),
    ("FK", 18),
    ("FO", 18),
    ("FR", 27),
    ("GB", 22),
    ("GE", 22),
    ("GI", 23),
    ("GL", 18),
    ("GR", 27),
    ("GT", 28),
    ("HN", 28),
    ("HR", 21),
    ("HU", 28),
    ("IE", 22),
    ("IL", 23),
    ("IQ", 23),
    ("IS", 26),
    ("IT", 27),
    ("JO", 30),
    ("KW", 30),
    ("KZ", 20),
    ("LB", 28),
    ("LC", 32),
    ("LI", 21),
    ("LT", 20),
    ("LU", 20),
    ("LV", 21),
    ("LY", 25),
    ("MC", 27),
    ("MD", 24),
    ("ME", 22),
    ("MK", 19),
    ("MN", 20),
    ("MR", 27),
    ("MT", 31),
    ("MU", 30),
    ("NI", 28),
    ("NL", 18),
    ("NO", 15),
    ("OM", 23),
    ("PK", 24),
    ("PL", 28),
    ("PS", 29),
    ("PT", 25),
    ("QA", 29),
    ("RO", 24),
    ("RS", 22),
    ("RU", 33),
    ("SA", 24),
    ("SC", 31),
    ("SD", 18),
    ("SE", 24),
    ("SI", 19),
    ("SK", 24),
    ("SM", 27),
    ("SO", 23),
    ("ST", 25),
    ("SV", 28),
    ("TL", 23),
    ("TN", 24),
    ("TR", 26),
    ("UA", 29),
    ("VA", 22),
    ("VG", 24),
    ("XK", 20),
    ("YE", 30),
];

impl Recognizer for IbanRecognizer {
    fn kind(&self) -> PiiKind {
        PiiKind::Iban
    }

    fn pattern(&self) -> &str {
        // Any case: lower-case look-alikes (hashes, identifiers) are left to the country's
        // length and the check digits, which pass about one random candidate in 97.
        r"(?-u:\b)[A-Za-z]{2}[0-9]{2}(?: ?[A-Za-z0-9]{4}){2,7}(?: ?[A-Za-z0-9]{1,3})?(?-u:\b)"
    }

    fn validate(&self, candidate: &str) -> bool {
        let compact: String = candidate
            .chars()
            .filter(|c| *c != ' ')
            .map(|c| c.to_ascii_uppercase())
            .collect();
        expected_len(&compact) == Some(compact.len()) && mod97_ok(&compact)
    }

    fn confirm(&self, text: &str, span: Range<usize>) -> Option<Confirmed> {
        let candidate = text.get(span.clone())?;
        // The regex may have swallowed a following word ("… 0130 00 BANK", "… 0130 00 thanks");
        // cut at the country's length when that falls on a group boundary.
        let want = expected_len(candidate)?;
        let mut seen = 0;
        for (i, c) in candidate.char_indices() {
            if c != ' ' {
                seen += 1;
            }
            if seen == want {
                let end = i + c.len_utf8();
                let next = candidate[end..].chars().next();
                if next.is_some_and(|n| n != ' ') {
                    return None;
                }
                let value = &candidate[..end];
                return self.validate(value).then_some(Confirmed {
                    span: span.start..span.start + end,
                    label: "",
                });
            }
        }
        None
    }
}

/// The IBAN length of the country `s` starts with (in any case), if it issues IBANs.
fn expected_len(s: &str) -> Option<usize> {
    let cc = s.get(..2)?;
    LENGTHS
        .iter()
        .find(|(c, _)| c.eq_ignore_ascii_case(cc))
        .map(|(_, n)| *n)
}

/// ISO 7064 mod 97-10 on an upper-case IBAN: move the first four characters to the end, letters
/// become 10..35, and the whole number must leave remainder 1.
pub(crate) fn mod97_ok(iban: &str) -> bool {
    if iban.len() < 5
        || !iban
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
    {
        return false;
    }
    let (head, tail) = iban.split_at(4);
    let mut rem: u32 = 0;
    for b in tail.bytes().chain(head.bytes()) {
        if b.is_ascii_digit() {
            rem = (rem * 10 + u32::from(b - b'0')) % 97;
        } else {
            let v = u32::from(b - b'A') + 10;
            rem = (rem * 100 + v) % 97;
        }
    }
    rem == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_length_and_mod97() {
        let r = IbanRecognizer;
        assert!(r.validate("DE89 3704 0044 0532 0130 00"));
        assert!(r.validate("GB82WEST12345698765432"));
        assert!(!r.validate("DE88 3704 0044 0532 0130 00"));
        assert!(!r.validate("DE89 3704 0044 0532 0130"));
        let text = "pay DE89 3704 0044 0532 0130 00 BANK now";
        let c = r.confirm(text, 4..36).map(|c| c.span);
        assert_eq!(c, Some(4..31));
    }

    #[test]
    fn any_case_passes_the_same_checks() {
        let r = IbanRecognizer;
        assert!(r.validate("de89 3704 0044 0532 0130 00"));
        assert!(r.validate("gb82West12345698765432"));
        assert!(!r.validate("de88 3704 0044 0532 0130 00"));
        // A valid German IBAN's characters under Austria (20 long) fail on length.
        assert!(!r.validate("at89 3704 0044 0532 0130 00"));
        let text = "pay de89 3704 0044 0532 0130 00 thanks";
        let c = r.confirm(text, 4..38).map(|c| c.span);
        assert_eq!(c, Some(4..31));
    }
}
