//! E-mail addresses: a sane local part and a domain ending in a letters-only TLD that is not a file extension.
//! Internationalised addresses (RFC 6531 local parts, IDN domains) count when their non-ASCII letters
//! are Latin, Greek or Cyrillic (`jörg.müller@bücher.de`, `иван@пример.рф`): scripts written with
//! spaces between words. Scripts written without spaces (Chinese, Japanese, Thai) are left out: a
//! run of their text glued to an address (`请联系jane@example.com`) would otherwise be taken for its
//! local part and redacted with it.

use crate::kind::PiiKind;
use crate::recognizer::{Confirmed, Recognizer};
use std::ops::Range;

/// Finds e-mail addresses such as `jane.doe+tag@example.co.uk`.
pub struct EmailRecognizer;

/// The non-ASCII letters an address may hold, as the body of a regex character class: Latin-1
/// letters (not `×` and `÷`), Latin Extended-A and -B, combining accents, Greek (not its question
/// mark and middle dot), Cyrillic and its supplement, Latin Extended Additional (Vietnamese).
/// [`is_address_letter`] is the same set.
macro_rules! address_letters {
    () => {
        r"\u{C0}-\u{D6}\u{D8}-\u{F6}\u{F8}-\u{24F}\u{300}-\u{36F}\u{370}-\u{37D}\u{37F}-\u{386}\u{388}-\u{3FF}\u{400}-\u{52F}\u{1E00}-\u{1EFF}"
    };
}

/// True for a non-ASCII letter that an e-mail address may hold (see the module's note); the
/// streaming filter holds a word with these letters back as it does an ASCII one.
pub(crate) fn is_address_letter(c: char) -> bool {
    matches!(c,
        '\u{C0}'..='\u{D6}'
        | '\u{D8}'..='\u{F6}'
        | '\u{F8}'..='\u{24F}'
        | '\u{300}'..='\u{36F}'
        | '\u{370}'..='\u{37D}'
        | '\u{37F}'..='\u{386}'
        | '\u{388}'..='\u{3FF}'
        | '\u{400}'..='\u{52F}'
        | '\u{1E00}'..='\u{1EFF}')
}

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
        // (`xn--p1ai` for .рф), tried first so that `.xn` is not taken for the whole of it, or in
        // its own letters (`.рф`). An ASCII local part starts at a word boundary; one that starts
        // with a non-ASCII letter starts there (the ASCII boundary cannot see those letters as
        // word characters, so `édouard@` would otherwise lose its `é`).
        concat!(
            r"(?:(?-u:\b)[A-Za-z0-9_]|[",
            address_letters!(),
            r"])[A-Za-z0-9._%+\-",
            address_letters!(),
            r"]*@[A-Za-z0-9",
            address_letters!(),
            r"][A-Za-z0-9\-",
            address_letters!(),
            r"]*(?:\.[A-Za-z0-9\-",
            address_letters!(),
            r"]+)*\.(?:(?:[Xx][Nn]--[A-Za-z0-9]{2,59}|[A-Za-z]{2,24})(?-u:\b)|[",
            address_letters!(),
            r"]{2,24})"
        )
    }

    fn validate(&self, candidate: &str) -> bool {
        let Some((local, domain)) = candidate.rsplit_once('@') else {
            return false;
        };
        // Limits in characters: an internationalised address is measured in its letters (its
        // domain's ASCII form is longer, but close enough for telling addresses from noise).
        if local.is_empty() || local.chars().count() > 64 || domain.chars().count() > 253 {
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
                || label.chars().count() > 63
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
        let letters = tld.chars().count() >= 2
            && (tld.bytes().all(|b| b.is_ascii_alphabetic())
                || tld.chars().all(|c| !c.is_ascii() && is_address_letter(c)));
        punycode || (letters && !FILE_EXTENSIONS.contains(&tld_lower.as_str()))
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

    fn found(text: &str) -> Vec<&str> {
        let scanner = crate::Scanner::new(&[PiiKind::Email], &[]).expect("scanner");
        scanner
            .scan(text)
            .into_iter()
            .map(|f| &text[f.span])
            .collect()
    }

    #[test]
    fn internationalised_addresses_are_found_whole() {
        // Before: `ller@beispiel.de` (the name's first letters left in the text), and no match
        // at all for an IDN domain.
        assert_eq!(
            found("Mail an jörg.müller@beispiel.de, danke"),
            ["jörg.müller@beispiel.de"]
        );
        assert_eq!(
            found("écrire à édouard@exemple.fr."),
            ["édouard@exemple.fr"]
        );
        assert_eq!(found("orders: jane@bücher.de"), ["jane@bücher.de"]);
        assert_eq!(
            found("пишите: иван.петров@пример.рф — спасибо"),
            ["иван.петров@пример.рф"]
        );
        assert_eq!(
            found("Γράψτε στο νίκος@παράδειγμα.ελ τώρα"),
            ["νίκος@παράδειγμα.ελ"]
        );
        assert_eq!(found("liên hệ nguyễn@ví-dụ.vn nhé"), ["nguyễn@ví-dụ.vn"]);
        // ASCII addresses keep their edges; words around them stay.
        assert_eq!(found("Grüße an jane@example.com!"), ["jane@example.com"]);
        assert_eq!(found("café:jane@example.com"), ["jane@example.com"]);
        // Scripts without spaces are not taken into the local part.
        assert_eq!(found("请联系jane@example.com。谢谢"), ["jane@example.com"]);
        assert_eq!(found("メールはjane@example.comまで"), ["jane@example.com"]);
        // Still not addresses.
        assert!(found("logo@2x.png und grüße").is_empty());
        assert!(found("x@ä").is_empty());
    }

    #[test]
    fn the_letters_function_and_the_pattern_class_agree() {
        let class = regex::Regex::new(concat!("^[", address_letters!(), "]$")).expect("class");
        for cp in 0x80..0x3000u32 {
            let Some(c) = char::from_u32(cp) else {
                continue;
            };
            assert_eq!(
                class.is_match(c.encode_utf8(&mut [0; 4])),
                is_address_letter(c),
                "U+{cp:04X}"
            );
        }
    }

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
