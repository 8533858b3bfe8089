//! Well-known credential and PII shapes, replaced wherever they appear in a log line.

use std::borrow::Cow;
use std::sync::LazyLock;

use regex::{Regex, RegexSet};

use crate::REDACTED;

/// (pattern, replacement). `${1}` keeps a harmless prefix such as `Bearer ` so the line stays readable.
/// Order matters: the Anthropic key shape runs before the generic `sk-` shape.
const SOURCES: &[(&str, &str)] = &[
    // Anthropic and OpenAI keys (sk-ant-…, sk-proj-…, sk-…).
    (r"sk-ant-[A-Za-z0-9_\-]{8,}", REDACTED),
    // A token may follow a URL escape (`api_key%3Dsk-…`), whose last hex digit leaves no word
    // boundary: the escape is kept, the token replaced.
    (
        r"(?:\b|(%[0-9A-Fa-f]{2}))sk-[A-Za-z0-9_\-]{16,}",
        "${1}[REDACTED]",
    ),
    // Prefixed keys glued to the word before them (`example.comsk-proj-…`).
    (r"sk-(?:proj|svcacct|admin)-[A-Za-z0-9_\-]{16,}", REDACTED),
    // Iron Cage tokens.
    (
        r"(?:\b|(%[0-9A-Fa-f]{2}))ic_[A-Za-z0-9_\-]{12,}",
        "${1}[REDACTED]",
    ),
    // HTTP auth schemes.
    (r"(?i)\b(bearer\s+)[A-Za-z0-9\-._~+/]+=*", "${1}[REDACTED]"),
    (r"(?i)\b(basic\s+)[A-Za-z0-9+/]{8,}=*", "${1}[REDACTED]"),
    // AWS access key ids, and secret keys when labelled as such.
    (
        r"(?:\b|(%[0-9A-Fa-f]{2}))(?:AKIA|ASIA|ABIA|ACCA|AIDA|AROA)[0-9A-Z]{16}\b",
        "${1}[REDACTED]",
    ),
    (
        r#"(?i)(aws_secret_access_key(?:\\?["'])?\s*[=:]\s*(?:\\?["'])?)[A-Za-z0-9/+=]{40}"#,
        "${1}[REDACTED]",
    ),
    // GitHub tokens.
    (
        r"(?:\b|(%[0-9A-Fa-f]{2}))(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{36,}",
        "${1}[REDACTED]",
    ),
    (
        r"(?:\b|(%[0-9A-Fa-f]{2}))github_pat_[A-Za-z0-9_]{22,}",
        "${1}[REDACTED]",
    ),
    // JWTs (header and payload are base64url JSON, so both start with eyJ).
    (
        r"(?:\b|(%[0-9A-Fa-f]{2}))eyJ[A-Za-z0-9_\-]{5,}\.eyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]*",
        "${1}[REDACTED]",
    ),
    // Labelled credentials in headers, JSON, query strings or Debug output.
    (
        r#"(?i)((?:api[_-]?key|apikey|access[_-]?token|refresh[_-]?token|client[_-]?secret|secret[_-]?key|password|passwd)(?:\\?["'])?\s*[:=]\s*(?:\\?["'])?)[^\s"'\\,;&}]{4,}"#,
        "${1}[REDACTED]",
    ),
    (
        r"(?i)([?&](?:key|token|sig|signature)=)[^&\s\x22'\\]+",
        "${1}[REDACTED]",
    ),
    // Personal data shapes, last (see `PII_FROM`). Email addresses.
    (
        r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}",
        REDACTED,
    ),
];

/// The index in `SOURCES` where personal data shapes (not credentials) begin.
const PII_FROM: usize = SOURCES.len() - 1;

struct Compiled {
    set: RegexSet,
    each: Vec<(Regex, &'static str)>,
}

static COMPILED: LazyLock<Compiled> = LazyLock::new(|| {
    // Sources are constants checked by a unit test; skipping a bad one beats panicking in a logger.
    let each: Vec<(Regex, &'static str)> = SOURCES
        .iter()
        .filter_map(|(src, rep)| Regex::new(src).ok().map(|re| (re, *rep)))
        .collect();
    let set =
        RegexSet::new(each.iter().map(|(re, _)| re.as_str())).unwrap_or_else(|_| RegexSet::empty());
    Compiled { set, each }
});

/// Replaces every known credential or email shape in `text` (credential shapes alone unless
/// `with_pii`).
pub(crate) fn redact_patterns(text: &str, with_pii: bool) -> Cow<'_, str> {
    let compiled = &*COMPILED;
    let hits = compiled.set.matches(text);
    if !hits.matched_any() {
        return Cow::Borrowed(text);
    }
    let mut out = Cow::Borrowed(text);
    for index in hits.iter().filter(|&i| with_pii || i < PII_FROM) {
        if let Some((re, replacement)) = compiled.each.get(index) {
            if let Cow::Owned(replaced) = re.replace_all(&out, *replacement) {
                out = Cow::Owned(replaced);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_alone_leave_personal_data() {
        assert!(SOURCES[PII_FROM].0.contains('@'));
        assert_eq!(
            redact_patterns("mail jane@example.com key AKIAIOSFODNN7EXAMPLE", false),
            "mail jane@example.com key [REDACTED]"
        );
    }

    #[test]
    fn every_pattern_compiles() {
        assert_eq!(COMPILED.each.len(), SOURCES.len());
        assert_eq!(COMPILED.set.len(), SOURCES.len());
    }

    #[test]
    fn known_shapes_are_replaced() {
        let cases = [
            (
                "key sk-ant-api03-AbCdEf123456_xyz end",
                "key [REDACTED] end",
            ),
            ("key sk-proj-ABCDEFGHIJKLMNOP1234 end", "key [REDACTED] end"),
            ("tok ic_local_0123456789abcdef0123", "tok [REDACTED]"),
            (
                "Authorization: Bearer abc.def-ghi",
                "Authorization: Bearer [REDACTED]",
            ),
            ("id AKIAIOSFODNN7EXAMPLE here", "id [REDACTED] here"),
            (
                "aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                "aws_secret_access_key=[REDACTED]",
            ),
            (
                "gh ghp_0123456789abcdefghijABCDEFGHIJ012345",
                "gh [REDACTED]",
            ),
            (
                "pat github_pat_11ABCDEFG0123456789_abcdefghijkl",
                "pat [REDACTED]",
            ),
            (
                "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig_part-1",
                "jwt [REDACTED]",
            ),
            ("mail jane.doe+x@mail.example.com!", "mail [REDACTED]!"),
            (r#"{"api_key":"abcd1234"}"#, r#"{"api_key":"[REDACTED]"}"#),
            (
                r#"{\"api_key\":\"abcd1234\"}"#,
                r#"{\"api_key\":\"[REDACTED]\"}"#,
            ),
            ("x-api-key: zzzz9999", "x-api-key: [REDACTED]"),
            (
                "GET /v1/m?key=AIzaSy123&alt=sse",
                "GET /v1/m?key=[REDACTED]&alt=sse",
            ),
            // After a URL escape there is no word boundary; the escape stays.
            (
                "url /cb?next%3Dsk-proj-ABCDEFGHIJKLMNOP1234 end",
                "url /cb?next%3D[REDACTED] end",
            ),
            (
                "h Bearer%20sk-ABCDEFGHIJKLMNOP1234",
                "h Bearer%20[REDACTED]",
            ),
            ("n%3Dic_live0123456789abcd x", "n%3D[REDACTED] x"),
            ("id%3DAKIAIOSFODNN7EXAMPLE x", "id%3D[REDACTED] x"),
            (
                "t%3DeyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig_part-1",
                "t%3D[REDACTED]",
            ),
            (
                "u%2Fghp_0123456789abcdefghijABCDEFGHIJ012345",
                "u%2F[REDACTED]",
            ),
            // A prefixed key glued to the word before it.
            (
                "see example.comsk-proj-ABCDEFGHIJKLMNOP1234 end",
                "see example.com[REDACTED] end",
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(redact_patterns(input, true), expected, "input: {input}");
        }
    }

    #[test]
    fn ordinary_text_is_untouched() {
        for text in [
            "task-runner started",
            "basic_auth disabled",
            "model gpt-4o, 12 tokens",
            "sk-short",
        ] {
            assert!(
                matches!(redact_patterns(text, true), Cow::Borrowed(_)),
                "{text}"
            );
        }
    }
}
