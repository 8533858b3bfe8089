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

/// Greek or Cyrillic: scripts whose letters glued to an ASCII name (`почтыjane`) are a word in
/// front of the address, not part of it. (Latin letters mix with ASCII within one name: `jörg`.)
fn greek_or_cyrillic(c: char) -> bool {
    script(c) != 0
}

/// 1 for a Greek letter, 2 for a Cyrillic one (their blocks' signs, marks and symbols aside), else 0.
fn script(c: char) -> u8 {
    if !c.is_alphabetic() {
        return 0;
    }
    match c {
        '\u{386}' | '\u{388}'..='\u{3F5}' | '\u{3F7}'..='\u{3FF}' => 1,
        '\u{400}'..='\u{481}' | '\u{48A}'..='\u{52F}' => 2,
        _ => 0,
    }
}

/// A character a local part may begin with.
fn local_first(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || (is_address_letter(c) && c.is_alphabetic())
}

/// Where the address's local part begins in `local` (the text the pattern matched before `@`),
/// or `None` when no part of it is one: after the last `..` (`to...jane`), after a Greek or
/// Cyrillic word glued to an ASCII name (`почтыjane`), at a character a local part can begin
/// with, and no longer than 64 characters (cut after a dot: `a.long.dotted.run.jane`).
fn local_start(local: &str) -> Option<usize> {
    let mut start = local.rfind("..").map_or(0, |i| i + 2);
    // A word glued in front: Greek or Cyrillic letters only, then an ASCII letter (`почтыjane`).
    // Digits after such a name (`иван2000`) and a name mixing the scripts (`jаne` with a Cyrillic
    // `а`) are the address itself.
    let word = local[start..]
        .char_indices()
        .find(|&(_, c)| !greek_or_cyrillic(c))
        .filter(|&(i, c)| i > 0 && c.is_ascii_alphabetic());
    if let Some((i, _)) = word {
        start += i;
    }
    start += local[start..].find(local_first)?;
    while local[start..].chars().count() > 64 {
        start += local[start..].find('.')? + 1;
        start += local[start..].find(local_first)?;
    }
    let rest = &local[start..];
    (!rest.is_empty() && !rest.ends_with('.')).then_some(start)
}

/// How much of `domain` (the text the pattern matched after `@`) is the address's domain, or
/// `None` when none is: labels of 1 to 63 characters not starting or ending with `-`, at least
/// two, ending in a top-level domain of ASCII letters that is not a file extension
/// (`logo@2x.png`, `react@18.2.0.min.js` are files), its ASCII form (`xn--p1ai`), or Greek or
/// Cyrillic letters when the label before it is written in that script too (`пример.рф`). A word
/// glued behind the domain after a dot, in letters no top-level domain is written in, is cut off
/// (`mail.ru.Спасибо`), and one glued to an ASCII top-level domain is cut from it
/// (`example.comПривет`).
fn domain_len(domain: &str) -> Option<usize> {
    let mut labels: Vec<&str> = domain.split('.').collect();
    if let Some(bad) = labels.iter().position(|l| {
        l.is_empty() || l.chars().count() > 63 || l.starts_with('-') || l.ends_with('-')
    }) {
        labels.truncate(bad);
    }
    while labels.len() >= 2 {
        let tld = labels[labels.len() - 1];
        let names = &labels[..labels.len() - 1];
        let before: usize = names.iter().map(|l| l.len() + 1).sum();
        if tld_ok(tld, names) {
            let len = before + tld.len();
            return (domain[..len].chars().count() <= 253).then_some(len);
        }
        if tld.is_ascii() {
            // Not a top-level domain (a file extension, digits, one letter): no address.
            return None;
        }
        let ascii = tld.bytes().take_while(u8::is_ascii_alphabetic).count();
        if ascii > 0 {
            return tld_ok(&tld[..ascii], &[]).then_some(before + ascii);
        }
        labels.pop();
    }
    None
}

/// A top-level domain (see [`domain_len`]); `names` are the labels before it.
fn tld_ok(tld: &str, names: &[&str]) -> bool {
    let lower = tld.to_ascii_lowercase();
    if let Some(rest) = lower.strip_prefix("xn--") {
        return rest.len() >= 2 && rest.bytes().all(|b| b.is_ascii_alphanumeric());
    }
    if tld.len() >= 2 && tld.bytes().all(|b| b.is_ascii_alphabetic()) {
        return !FILE_EXTENSIONS.contains(&lower.as_str());
    }
    let first = tld.chars().next().map_or(0, script);
    first != 0
        && tld.chars().count() >= 2
        && tld.chars().all(|c| script(c) == first)
        // The name it is registered under (the label before it) is written in that script, as
        // those registries require (`пример.рф`, `mail.пример.рф`; not `comПривет.Как`).
        && names.last().is_some_and(|l| {
            l.chars().any(|c| script(c) == first)
                && l.chars().all(|c| script(c) == first || c.is_ascii_digit() || c == '-')
        })
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
        // The whole candidate is an address: nothing to trim off either end.
        candidate.rsplit_once('@').is_some_and(|(local, domain)| {
            local_start(local) == Some(0) && domain_len(domain) == Some(domain.len())
        })
    }

    fn confirm(&self, text: &str, span: Range<usize>) -> Option<Confirmed> {
        let candidate = text.get(span.clone())?;
        // The pattern's match may begin with a word glued in front (`Хм..ivan@`, `see...jane@`,
        // a dotted run longer than a local part) or end with one glued behind
        // (`ivan@mail.ru.Спасибо`): the address is what is left once they are cut off.
        let at = candidate.rfind('@')?;
        let start = span.start + local_start(&candidate[..at])?;
        let end = span.start + at + 1 + domain_len(&candidate[at + 1..])?;
        // `git@github.com:org/repo.git`, `user@host:8080`, `deploy@host.example.com:~/app`: an
        // scp-style path or a port, not a mailbox. `jane@example.com:Winter2024!` (a leaked
        // login line) is an address followed by something else.
        if let Some(after) = text.get(end..).and_then(|r| r.strip_prefix(':')) {
            // The word ends at whitespace or at non-ASCII text (`jane@example.com:пароль/2024` is
            // a login line, not a path).
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
        Some(Confirmed {
            span: start..end,
            label: "",
        })
    }

    fn short_candidates(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(text: &str) -> Vec<&str> {
        super::super::found(&[PiiKind::Email], text)
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
    fn a_word_glued_to_an_address_is_cut_off_not_taken_for_it() {
        // In front: the match began at the glued word and the whole was rejected, so the
        // address went out as it was.
        for (text, address) in [
            ("Хм..ivan@mail.ru", "ivan@mail.ru"),
            ("Привет..ivan@mail.ru спасибо", "ivan@mail.ru"),
            ("Write to...jane@example.com", "jane@example.com"),
            ("Γράψτε..nikos@example.gr", "nikos@example.gr"),
            ("почтыjane@example.com", "jane@example.com"),
            // Behind: a sentence after a full stop with no space is not the domain's end.
            ("ivan@mail.ru.Спасибо за помощь", "ivan@mail.ru"),
            ("στο nikos@example.gr.Ευχαριστώ πολύ", "nikos@example.gr"),
            ("jane@example.comПривет.Как дела", "jane@example.com"),
        ] {
            assert_eq!(found(text), [address], "{text}");
        }
        // A dotted run longer than a local part: the address's end of it, at a dot.
        let long =
            "Straße.Nummer.Zwölf.Hausnummer.Einhundertdreiundzwanzig.Erdgeschoss.jane@example.com";
        let got = found(long);
        assert_eq!(got.len(), 1, "{got:?}");
        let local = got[0].split('@').next().unwrap_or("");
        assert!(got[0].ends_with(".Erdgeschoss.jane@example.com"), "{got:?}");
        assert!(
            local.chars().count() <= 64 && !local.starts_with('.'),
            "{got:?}"
        );
    }

    #[test]
    fn cutting_a_glued_word_keeps_the_address_and_what_the_word_holds() {
        // The cut-off word is scanned for the other kinds: a card or SSN glued in front of an
        // address is not lost with it.
        let scanner = crate::Scanner::new(&crate::SCAN_ORDER, &[]).expect("scanner");
        for (text, want) in [
            (
                "4111111111111111..jane@example.com",
                vec![
                    (PiiKind::CreditCard, "4111111111111111"),
                    (PiiKind::Email, "jane@example.com"),
                ],
            ),
            (
                "SSN 536-22-1234..jane@example.com",
                vec![
                    (PiiKind::UsSsn, "536-22-1234"),
                    (PiiKind::Email, "jane@example.com"),
                ],
            ),
        ] {
            let got: Vec<(PiiKind, &str)> = scanner
                .scan(text)
                .into_iter()
                .map(|f| (f.kind, &text[f.span]))
                .collect();
            assert_eq!(got, want, "{text}");
        }
        // Names that are addresses whole: digits after a Cyrillic name, a name mixing scripts.
        assert_eq!(found("write иван2000@mail.ru now"), ["иван2000@mail.ru"]);
        assert_eq!(found("write jаne@example.com now"), ["jаne@example.com"]);
        assert_eq!(found("ivan@mail.пример.рф"), ["ivan@mail.пример.рф"]);
        // A login line: the address, whatever the password is written in.
        assert_eq!(found("jane@example.com:пароль/2024"), ["jane@example.com"]);
        // Files stay files, however many dots they have.
        for file in [
            "react@18.2.0.min.js",
            "logo@2x.dark.png",
            "bootstrap@5.3.0.bundle.min.js",
        ] {
            assert!(found(file).is_empty(), "{file}: {:?}", found(file));
        }
    }

    #[test]
    fn a_non_ascii_top_level_domain_is_letters_of_the_name_s_script() {
        for junk in [
            "user@host.рé",
            "user@host.\u{301}\u{301}",
            "user@host.΄΄",
            "user@host.҂҂",
            "user@host.ǃǃ",
            "x@y.϶϶",
            "Preis@3Stück.зз",
            "ivan@mail.рф",
        ] {
            assert!(found(junk).is_empty(), "{junk}: {:?}", found(junk));
        }
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
