//! Constant-time check of the agent's Iron Cage token.

use axum::http::HeaderMap;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Holds only the SHA-256 of the IC token, so comparisons take the same time whatever the length or
/// content of the presented token, and the token itself is not kept twice in memory.
pub struct TokenCheck {
    digest: [u8; 32],
}

impl TokenCheck {
    /// Remember the digest of the expected token.
    pub fn new(token: &str) -> Self {
        TokenCheck {
            digest: Sha256::digest(token.as_bytes()).into(),
        }
    }

    /// True when `presented` is the expected token, in constant time.
    pub fn matches(&self, presented: &str) -> bool {
        let d: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        d.ct_eq(&self.digest).into()
    }

    /// True when the request carries the token in `Authorization: Bearer` or `x-api-key`.
    pub fn check_headers(&self, headers: &HeaderMap) -> bool {
        let mut ok = false;
        if let Some(v) = headers.get("authorization").and_then(|v| v.to_str().ok()) {
            if let Some(t) = v
                .strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
            {
                ok |= self.matches(t.trim());
            }
        }
        if let Some(v) = headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
            ok |= self.matches(v.trim());
        }
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_either_header() {
        let c = TokenCheck::new("ic_abc");
        let mut h = HeaderMap::new();
        h.insert("authorization", "Bearer ic_abc".parse().unwrap());
        assert!(c.check_headers(&h));
        let mut h = HeaderMap::new();
        h.insert("x-api-key", "ic_abc".parse().unwrap());
        assert!(c.check_headers(&h));
        let mut h = HeaderMap::new();
        h.insert("x-api-key", "ic_abd".parse().unwrap());
        assert!(!c.check_headers(&h));
        h.insert("authorization", "Bearer ic_ab".parse().unwrap());
        assert!(!c.check_headers(&h));
        assert!(!c.check_headers(&HeaderMap::new()));
    }
}
