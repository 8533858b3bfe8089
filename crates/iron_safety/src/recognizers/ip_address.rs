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
            if follows_version_word(text, span.start) {
                return None;
            }
        }
        self.validate(candidate).then(|| Confirmed {
            label: self.label(candidate),
            span,
        })
    }
}

// Words after which a dotted quad is a version number, not an address.
const VERSION_WORDS: &[&str] = &[
    "v", "ver", "rev", "revision", "release", "build", "firmware", "fw", "tag", "patch",
];

/// True for `version 1.2.3.4`, `Version: 1.0.0.0`, `AssemblyVersion("1.0.0.0")`, `release-1.2.3.4`,
/// `rev 4.2.0.1` and product tokens such as `nginx/1.25.3.1`.
fn follows_version_word(text: &str, start: usize) -> bool {
    let context = lower_context_before(text, start, 32);
    let bytes = context.as_bytes();
    // `name/1.2.3.4`: a product token, unlike `http://10.0.0.1` where `/` follows `/`.
    if bytes.len() >= 2
        && bytes[bytes.len() - 1] == b'/'
        && bytes[bytes.len() - 2].is_ascii_alphanumeric()
    {
        return true;
    }
    let trimmed = context.trim_end_matches(|c: char| c.is_whitespace() || ":=(\"'-_#".contains(c));
    let word_start = trimmed
        .char_indices()
        .rev()
        .find(|(_, c)| !c.is_ascii_alphabetic())
        .map_or(0, |(i, c)| i + c.len_utf8());
    let word = &trimmed[word_start..];
    word.ends_with("version") || VERSION_WORDS.contains(&word)
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
        for v in [
            "Version: 2.4.1.0 shipped",
            "AssemblyVersion(\"1.0.0.0\")",
            "release-1.2.3.4 tag",
            "nginx/1.25.3.1 server",
        ] {
            let start = v.find(|c: char| c.is_ascii_digit()).unwrap_or(0);
            let end = start
                + v[start..]
                    .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                    .unwrap_or(v.len() - start);
            assert!(r.confirm(v, start..end).is_none(), "{v}");
        }
        assert!(r.confirm("server 10.0.0.1", 7..15).is_some());
        assert!(r.confirm("http://10.0.0.1/x", 7..15).is_some());
        let text = "host 10.0.0.1 down";
        assert_eq!(r.confirm(text, 5..13).map(|c| c.label), Some("IPv4"));
    }
}
