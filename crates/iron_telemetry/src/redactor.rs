//! The redactor every log field and message passes through.

use std::borrow::Cow;
use std::sync::{LazyLock, RwLock};

use crate::patterns::redact_patterns;
use crate::secrets::SecretSet;

/// What a redacted secret, token or PII value is replaced with.
pub const REDACTED: &str = "[REDACTED]";

/// Replaces registered secrets (exact, even inside longer strings) and known credential/PII shapes.
#[derive(Debug, Default)]
pub struct Redactor {
    secrets: RwLock<SecretSet>,
}

static GLOBAL: LazyLock<Redactor> = LazyLock::new(Redactor::default);

impl Redactor {
    /// An empty redactor (patterns only until secrets are registered).
    pub fn new() -> Self {
        Self::default()
    }

    /// The process-wide redactor used by every telemetry sink.
    pub fn global() -> &'static Redactor {
        &GLOBAL
    }

    /// Registers a secret to be replaced wherever it appears; `false` if shorter than 8 bytes (ignored).
    ///
    /// Only hashes are kept. The forms the secret takes inside `{:?}` output and JSON strings are
    /// registered too, since those escape quotes and backslashes.
    pub fn register_secret(&self, secret: &str) -> bool {
        let debug = format!("{secret:?}");
        let json = serde_json::to_string(secret).unwrap_or_default();
        let mut set = self.secrets.write().unwrap_or_else(|p| p.into_inner());
        if !set.insert(secret.as_bytes()) {
            return false;
        }
        for quoted in [debug.as_str(), json.as_str()] {
            let inner = quoted
                .strip_prefix('"')
                .and_then(|s| s.strip_suffix('"'))
                .unwrap_or(quoted);
            if inner != secret {
                set.insert(inner.as_bytes());
            }
        }
        true
    }

    /// `text` with secrets and known credential/PII shapes replaced by `[REDACTED]`.
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        self.redact_with(text, true)
    }

    /// `text` with secrets and known credential shapes replaced, personal data (emails) left for
    /// a policy of its own to handle.
    pub fn redact_credentials<'a>(&self, text: &'a str) -> Cow<'a, str> {
        self.redact_with(text, false)
    }

    fn redact_with<'a>(&self, text: &'a str, with_pii: bool) -> Cow<'a, str> {
        let without_secrets = self.redact_secrets(text);
        match redact_patterns(&without_secrets, with_pii) {
            Cow::Borrowed(_) => without_secrets,
            Cow::Owned(s) => Cow::Owned(s),
        }
    }

    /// Whether `bytes` hold a registered secret (a real key, a token), without copying them.
    pub fn holds_secret(&self, bytes: &[u8]) -> bool {
        let set = self.secrets.read().unwrap_or_else(|p| p.into_inner());
        !set.is_empty() && !set.find(bytes).is_empty()
    }

    fn redact_secrets<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let set = self.secrets.read().unwrap_or_else(|p| p.into_inner());
        if set.is_empty() {
            return Cow::Borrowed(text);
        }
        let mut hits = set.find(text.as_bytes());
        drop(set);
        if hits.is_empty() {
            return Cow::Borrowed(text);
        }
        hits.sort_by_key(|r| r.start);
        let bytes = text.as_bytes();
        let mut out = Vec::with_capacity(text.len());
        let mut cursor = 0;
        for hit in hits {
            if hit.end <= cursor {
                continue;
            }
            if hit.start >= cursor {
                out.extend_from_slice(&bytes[cursor..hit.start]);
                out.extend_from_slice(REDACTED.as_bytes());
            }
            // An overlapping hit only extends the span already replaced.
            cursor = hit.end;
        }
        out.extend_from_slice(&bytes[cursor..]);
        // UTF-8 matches of a UTF-8 secret always fall on char boundaries; lossy is only a guard.
        Cow::Owned(
            String::from_utf8(out)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_secret_is_replaced_inside_longer_strings() {
        let r = Redactor::new();
        assert!(r.register_secret("Zq9-canary-Zq9"));
        assert_eq!(r.redact("pre-Zq9-canary-Zq9-post"), "pre-[REDACTED]-post");
        assert_eq!(
            r.redact("Zq9-canary-Zq9Zq9-canary-Zq9"),
            "[REDACTED][REDACTED]"
        );
        assert_eq!(r.redact("Zq9-canary-Zq"), "Zq9-canary-Zq");
    }

    #[test]
    fn overlapping_secrets_become_one_span() {
        let r = Redactor::new();
        r.register_secret("abcdefgh12");
        r.register_secret("gh12345678");
        assert_eq!(r.redact("<abcdefgh12345678>"), "<[REDACTED]>");
    }

    #[test]
    fn escaped_forms_of_a_secret_are_caught() {
        let secret = r#"qu\"ote-secret"#;
        let r = Redactor::new();
        r.register_secret(secret);
        let debug = format!("{secret:?}");
        assert!(debug.contains(r#"qu\\\"ote"#), "{debug}");
        assert!(!r.redact(&debug).contains("ote-secret"), "{debug}");
        let json = serde_json::to_string(secret).unwrap_or_default();
        assert!(!r.redact(&json).contains("ote-secret"), "{json}");
    }

    #[test]
    fn short_secrets_are_refused() {
        let r = Redactor::new();
        assert!(!r.register_secret("abc"));
        assert_eq!(r.redact("abc abc"), "abc abc");
    }

    #[test]
    fn non_ascii_text_around_a_secret_survives() {
        let r = Redactor::new();
        r.register_secret("été-secret-😀");
        assert_eq!(r.redact("日été-secret-😀本"), "日[REDACTED]本");
    }
}
