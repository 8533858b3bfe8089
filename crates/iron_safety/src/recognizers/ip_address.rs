//! IPv4 and IPv6 addresses, parsed with `std::net` rather than only matched; dotted quads that are
//! part of a longer dotted run or follow "version" are version strings, not addresses.

use crate::kind::PiiKind;
use crate::recognizer::{
    char_at, char_before, continues_number_run, lower_context_before, Confirmed, Recognizer,
};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::ops::Range;

/// Finds addresses such as `192.168.1.20` or `2001:db8::8a2e:370:7334`.
pub struct IpAddressRecognizer;

impl Recognizer for IpAddressRecognizer {
    fn kind(&self) -> PiiKind {
        PiiKind::IpAddress
    }

    fn pattern(&self) -> &str {
        concat!(
            r"(?-u:\b)[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}(?-u:\b)",
            r"|(?:(?-u:\b)[0-9A-Fa-f]{1,4})?(?::[0-9A-Fa-f]{0,4}){2,8}(?:(?:\.[0-9]{1,3}){3})?"
        )
    }

    fn validate(&self, candidate: &str) -> bool {
        if candidate.contains(':') {
            candidate != "::"
                && candidate.bytes().any(|b| b.is_ascii_digit())
                && candidate.parse::<Ipv6Addr>().is_ok()
        } else {
            candidate.parse::<Ipv4Addr>().is_ok()
        }
    }

    fn label(&self, candidate: &str) -> &'static str {
        if candidate.contains(':') {
            "IPv6"
        } else {
            "IPv4"
        }
    }

    fn confirm(&self, text: &str, span: Range<usize>) -> Option<Confirmed> {
        let candidate = text.get(span.clone())?;
        if candidate.contains(':') {
            // `Foo::bar`, `a::b`, MAC-like or longer colon runs are code, not addresses.
            let glued = |c: Option<char>| {
                c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
            };
            if glued(char_before(text, span.start)) || glued(char_at(text, span.end)) {
                return None;
            }
        } else {
            if continues_number_run(text, &span, &['.']) {
                return None;
            }
            let context = lower_context_before(text, span.start, 12);
            let context = context.trim_end();
            if context.ends_with("version") || context.ends_with("ver") || context.ends_with(" v") {
                return None;
            }
        }
        self.validate(candidate).then(|| Confirmed {
            label: self.label(candidate),
            span,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects_version_runs() {
        let r = IpAddressRecognizer;
        assert!(r.validate("192.168.1.20"));
        assert!(r.validate("2001:db8::8a2e:370:7334"));
        assert!(!r.validate("256.1.1.1"));
        assert!(!r.validate("10:30:00"));
        let text = "release 1.2.3.4.5 is out";
        assert!(r.confirm(text, 8..15).is_none());
        let text = "host 10.0.0.1 down";
        assert_eq!(r.confirm(text, 5..13).map(|c| c.label), Some("IPv4"));
    }
}
