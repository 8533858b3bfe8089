//! Credentials: OpenAI and Anthropic API keys, AWS access key ids, GitHub tokens, JWTs and PEM
//! private keys. Placeholder-looking keys (`sk-your-key-here`) lack the randomness of real ones.

use crate::kind::PiiKind;
use crate::recognizer::{Confirmed, Recognizer};
use std::ops::Range;

/// Finds API keys, tokens and private keys.
pub struct SecretRecognizer;

/// Longest PEM private key the scanner looks for (a 16384-bit RSA key is about 12 KB).
pub const PEM_MAX_BYTES: usize = 16 * 1024;

impl Recognizer for SecretRecognizer {
    fn kind(&self) -> PiiKind {
        PiiKind::Secret
    }

    fn pattern(&self) -> &str {
        concat!(
            r"-----BEGIN [A-Z0-9 ]{0,40}PRIVATE KEY-----(?:(?s:.)*?-----END [A-Z0-9 ]{0,40}PRIVATE KEY-----|[A-Za-z0-9+/=\r\n]*)",
            // A token starts a word, or follows a URL escape (`api_key%3Dsk-…`, `%20eyJ…`), whose
            // last hex digit leaves no word boundary; `confirm` cuts the escape off.
            r"|(?:(?-u:\b)|%[0-9A-Fa-f]{2})sk-[A-Za-z0-9_\-]{20,}",
            // OpenAI's and Anthropic's prefixed keys are distinctive enough to be found glued to
            // the word before them (`example.comsk-proj-…`).
            r"|sk-(?:proj|svcacct|admin|ant)-[A-Za-z0-9_\-]{20,}",
            r"|(?:(?-u:\b)|%[0-9A-Fa-f]{2})(?:AKIA|ASIA)[A-Z0-9]{16}(?-u:\b)",
            r"|(?:(?-u:\b)|%[0-9A-Fa-f]{2})(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,})",
            r"|(?:(?-u:\b)|%[0-9A-Fa-f]{2})eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}"
        )
    }

    fn validate(&self, candidate: &str) -> bool {
        match self.label(candidate) {
            "private key" => true,
            "Anthropic key" => random_looking(&candidate["sk-ant-".len()..]),
            "OpenAI key" => random_looking(candidate.trim_start_matches("sk-")),
            "AWS access key id" => {
                let body = &candidate[4..];
                body.len() == 16 && distinct(body) >= 6
            }
            "GitHub token" => {
                let body = candidate.split_once('_').map_or("", |(_, b)| b);
                body.len() >= 30 && body.bytes().any(|b| b.is_ascii_digit())
            }
            "JWT" => jwt_header_ok(candidate),
            _ => false,
        }
    }

    fn label(&self, candidate: &str) -> &'static str {
        if candidate.starts_with("-----BEGIN") {
            "private key"
        } else if candidate.starts_with("sk-ant-") {
            "Anthropic key"
        } else if candidate.starts_with("sk-") {
            "OpenAI key"
        } else if candidate.starts_with("AKIA") || candidate.starts_with("ASIA") {
            "AWS access key id"
        } else if candidate.starts_with("gh") || candidate.starts_with("github_pat_") {
            "GitHub token"
        } else if candidate.starts_with("eyJ") {
            "JWT"
        } else {
            ""
        }
    }

    fn short_candidates(&self) -> bool {
        false
    }

    /// An AWS access key id that is a presigned URL's credential (`X-Amz-Credential=AKIA…`, or the
    /// older `AWSAccessKeyId=AKIA…`) is not a secret: the id is public by design and the URL grants
    /// access to one object for a while, which is why it is handed to a provider to fetch an image.
    fn confirm(&self, text: &str, span: Range<usize>) -> Option<Confirmed> {
        // The URL escape a token may follow is not part of it.
        let span = if text.as_bytes().get(span.start) == Some(&b'%') {
            span.start + 3..span.end
        } else {
            span
        };
        let candidate = text.get(span.clone())?;
        if !self.validate(candidate) {
            return None;
        }
        let label = self.label(candidate);
        if label == "AWS access key id" && presigned_credential(&text.as_bytes()[..span.start]) {
            return None;
        }
        Some(Confirmed { label, span })
    }
}

/// The text before a key id ends a presigned URL's credential parameter name.
fn presigned_credential(before: &[u8]) -> bool {
    [
        "x-amz-credential=",
        "x-amz-credential%3d",
        "awsaccesskeyid=",
    ]
    .iter()
    .any(|name| {
        before.len() >= name.len()
            && before[before.len() - name.len()..].eq_ignore_ascii_case(name.as_bytes())
    })
}

/// Real keys are long random base62/base64url strings: at least 20 characters with upper case,
/// lower case and digits, and many distinct symbols.
fn random_looking(body: &str) -> bool {
    let body = body
        .trim_start_matches("proj-")
        .trim_start_matches("svcacct-")
        .trim_start_matches("admin-")
        .trim_start_matches("api03-");
    body.len() >= 20
        && body.bytes().any(|b| b.is_ascii_uppercase())
        && body.bytes().any(|b| b.is_ascii_lowercase())
        && body.bytes().any(|b| b.is_ascii_digit())
        && distinct(body) >= 12
}

fn distinct(s: &str) -> usize {
    let mut seen = [false; 256];
    s.bytes().for_each(|b| seen[b as usize] = true);
    seen.iter().filter(|x| **x).count()
}

/// The first JWT segment must be base64url JSON with an `alg` member.
fn jwt_header_ok(candidate: &str) -> bool {
    let Some(header) = candidate.split('.').next() else {
        return false;
    };
    let Some(bytes) = crate::b64::lenient_base64(header) else {
        return false;
    };
    match serde_json::from_slice::<serde_json::Value>(&bytes) {
        Ok(serde_json::Value::Object(map)) => map.contains_key("alg"),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The values `text` holds, as a scanner of every built-in kind finds them.
    fn found(text: &str) -> Vec<&str> {
        super::super::found(&PiiKind::BUILT_IN, text)
    }

    #[test]
    fn tokens_after_a_url_escape_or_glued_prefixed_keys_are_found_without_the_glue() {
        let key = "sk-proj-Xa9dK2LmQ7vB3nR8tY1wZ5cF6gH0jP4sU";
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJlLWJ5dGVz";
        for text in [
            format!("GET /v1?api_key%3D{key}&x=1"),
            format!("Authorization%3A%20Bearer%20{key}"),
            format!("see example.com{key} now"),
            format!("token%3D{jwt}"),
        ] {
            let want = if text.contains(jwt) { jwt } else { key };
            assert_eq!(found(&text), vec![want], "{text}");
        }
        assert_eq!(
            found("id%3DAKIAIOSFODNN7EXAMPLE"),
            vec!["AKIAIOSFODNN7EXAMPLE"]
        );
        // A presigned URL's credential is still its public half, escaped or not.
        assert!(found("X-Amz-Credential%3DAKIAIOSFODNN7EXAMPLE%2F2026").is_empty());
        // Only the prefixed keys are found glued to a word: a plain `sk-` inside one is a word.
        assert!(found("the task-Xa9dK2LmQ7vB3nR8tY1wZ5cF6gH0jP4sU list").is_empty());
    }

    #[test]
    fn real_looking_keys_pass_and_placeholders_fail() {
        let r = SecretRecognizer;
        assert!(r.validate("sk-proj-Xa9dK2LmQ7vB3nR8tY1wZ5cF6gH0jP4sU"));
        assert!(!r.validate("sk-your-openai-api-key-here"));
        assert!(r.validate("AKIAIOSFODNN7EXAMPLE"));
        assert!(!r.validate("AKIAAAAAAAAAAAAAAAAA"));
        // In a presigned URL the key id is the credential's public half: not a secret there.
        let url = "https://b.s3.amazonaws.com/cat.png?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20260101%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Signature=abc";
        let at = url.find("AKIA").unwrap();
        assert!(r.confirm(url, at..at + 20).is_none());
        let old =
            "https://b.s3.amazonaws.com/cat.png?AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Expires=1";
        let at = old.find("AKIA").unwrap();
        assert!(r.confirm(old, at..at + 20).is_none());
        let bare = "my key is AKIAIOSFODNN7EXAMPLE";
        let at = bare.find("AKIA").unwrap();
        assert!(r.confirm(bare, at..at + 20).is_some());
        assert!(r.validate("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJlLWJ5dGVz"));
        assert!(!r.validate("eyJub3RhIjoiand0In0.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJlLWJ5dGVz"));
        assert_eq!(
            crate::b64::lenient_base64("eyJhIjoxfQ"),
            Some(br#"{"a":1}"#.to_vec())
        );
    }
}
