//! E-mail addresses: a sane local part and a domain ending in a letters-only TLD that is not a file extension.

use crate::kind::PiiKind;
use crate::recognizer::{Confirmed, Recognizer};
use std::ops::Range;

/// Finds e-mail addresses such as `jane.doe+tag@example.co.uk`.
pub struct EmailRecognizer;

// Suffixes that look like TLDs but are file names such as `logo@2x.png` or `pkg@1.0.js`.
const FILE_EXTENSIONS: &[&str] = &[
    "png", "jpg", "jpeg", "gif", "svg", "webp", "bmp", "ico", "js", "mjs", "cjs", "ts", "tsx",
    "jsx", "css", "scss", "map", "json", "yaml", "yml", "txt", "md", "py", "rs", "go", "java",
    "rb", "php", "html", "htm", "xml", "lock", "toml", "tgz", "zip", "gz",
];

impl Recognizer for EmailRecognizer {
    fn kind(&self) -> PiiKind {
        PiiKind::Email
    }

    fn pattern(&self) -> &str {
        // The top-level domain is letters, or an internationalised one in its ASCII form
        // (`xn--p1ai` for .рф), tried first so that `.xn` is not taken for the whole of it.
        r"(?-u:\b)[A-Za-z0-9_][A-Za-z0-9._%+\-]*@[A-Za-z0-9][A-Za-z0-9\-]*(?:\.[A-Za-z0-9\-]+)*\.(?:[Xx][Nn]--[A-Za-z0-9]{2,59}|[A-Za-z]{2,24})(?-u:\b)"
    }

    fn validate(&self, candidate: &str) -> bool {
        let Some((local, domain)) = candidate.rsplit_once('@') else {
            return false;
        };
        if local.is_empty() || local.len() > 64 || domain.len() > 253 {
            return false;
        }
        if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
            return false;
        }
        let labels: Vec<&str> = domain.split('.').collect();
        if labels.len() < 2 {
            return false;
        }
        for label in &labels {
            if label.is_empty()
                || label.len() > 63
                || label.starts_with('-')
                || label.ends_with('-')
            {
                return false;
            }
        }
        let tld = labels[labels.len() - 1];
        let tld_lower = tld.to_ascii_lowercase();
        let punycode = tld_lower
            .strip_prefix("xn--")
            .is_some_and(|rest| rest.len() >= 2 && rest.bytes().all(|b| b.is_ascii_alphanumeric()));
        punycode
            || (tld.len() >= 2
                && tld.bytes().all(|b| b.is_ascii_alphabetic())
                && !FILE_EXTENSIONS.contains(&tld_lower.as_str()))
    }

    fn confirm(&self, text: &str, span: Range<usize>) -> Option<Confirmed> {
        let candidate = text.get(span.clone())?;
        // `git@github.com:org/repo.git`, `user@host:8080`, `deploy@host.example.com:~/app`: an
        // scp-style path or a port, not a mailbox. `jane@example.com:Winter2024!` (a leaked
        // login line) is an address followed by something else.
        if let Some(after) = text.get(span.end..).and_then(|r| r.strip_prefix(':')) {
            // The word ends at whitespace or at non-ASCII text, where a stream may release it.
            let word = after
                .split(|c: char| c.is_whitespace() || !c.is_ascii())
                .next()
                .unwrap_or("");
            // A port is at most 65535; `jane@x.io:123456` is an address and a password.
            let port = (1..=5).contains(&word.len())
                && word.bytes().all(|b| b.is_ascii_digit())
                && word.parse::<u32>().is_ok_and(|p| p <= 65_535);
            // `backup@nas.example.com::photos` is an rsync module.
            let path = word.starts_with(['/', '~', ':'])
                || word.contains('/')
                || word.ends_with(".git")
                || word.starts_with("./");
            if port || path {
                return None;
            }
        }
        self.validate(candidate)
            .then_some(Confirmed { span, label: "" })
    }

    fn short_candidates(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_common_addresses_and_rejects_file_names() {
        let r = EmailRecognizer;
        assert!(r.validate("jane.doe+tag@example.co.uk"));
        assert!(r.validate("a@b.io"));
        assert!(!r.validate("logo@2x.png"));
        assert!(!r.validate("user@host.c"));
        assert!(!r.validate("a..b@example.com"));
        assert!(!r.validate("x@-bad.com"));
        assert!(!r.validate("x@1.2"));
        let scp = "git@github.com:org/repo.git";
        assert!(r.confirm(scp, 0..14).is_none());
        assert!(r.confirm("user@host.example.com:8080", 0..21).is_none());
        let combo = "jane.doe@example.com:Winter2024!";
        assert_eq!(r.confirm(combo, 0..20).map(|c| c.span), Some(0..20));
        let sentence = "write to ops@example.com: we reply fast";
        assert_eq!(r.confirm(sentence, 9..24).map(|c| c.span), Some(9..24));
    }
}
