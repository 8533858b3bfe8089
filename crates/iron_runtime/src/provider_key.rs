//! The real provider key as the router holds it: its upstream, its auth header built once, and a
//! Debug output that never shows it.

use crate::provider::Provider;
use std::sync::Arc;

/// A real provider key. Its Debug output never shows the key.
#[derive(Clone)]
pub struct ProviderKey {
    pub provider: Provider,
    secret: Arc<str>,
    pub base_url: Arc<str>,
    /// `host` or `host:port` of `base_url`: the breaker's key for this upstream.
    pub host: Arc<str>,
    /// The upstream auth header's value (`Bearer <key>` or the bare key), built once and marked
    /// sensitive; `None` when the key holds bytes a header cannot carry.
    auth: Option<axum::http::HeaderValue>,
    /// The key's forms to keep out of answers, searched for in every relayed byte.
    forms: Option<Arc<crate::key_guard::KeyForms>>,
}

impl ProviderKey {
    /// A key for `base_url`, computing the upstream's host once.
    pub fn new(provider: Provider, secret: &str, base_url: String) -> ProviderKey {
        let host = reqwest::Url::parse(&base_url)
            .ok()
            .and_then(|u| {
                let h = u.host_str()?.to_string();
                Some(match u.port() {
                    Some(p) => format!("{h}:{p}"),
                    None => h,
                })
            })
            .unwrap_or_default();
        let auth = match provider {
            Provider::OpenAi => axum::http::HeaderValue::from_str(&format!("Bearer {secret}")),
            Provider::Anthropic => axum::http::HeaderValue::from_str(secret),
        }
        .ok()
        .map(|mut v| {
            v.set_sensitive(true);
            v
        });
        ProviderKey {
            provider,
            forms: crate::key_guard::KeyForms::new(secret),
            secret: Arc::from(secret),
            base_url: Arc::from(base_url),
            host: Arc::from(host),
            auth,
        }
    }

    /// What the relay searches answers for (see `key_guard`).
    pub(crate) fn guard_forms(&self) -> &Option<Arc<crate::key_guard::KeyForms>> {
        &self.forms
    }

    /// The key itself.
    pub fn expose(&self) -> &str {
        &self.secret
    }

    /// The upstream auth header's value, or `None` when the key is not a valid header value.
    pub fn auth_header(&self) -> Option<&axum::http::HeaderValue> {
        self.auth.as_ref()
    }

    /// Put this key in upstream headers built for another key of the same provider (the retry
    /// after a rotation); false when the key is not a valid header value.
    pub fn replace_auth(&self, headers: &mut axum::http::HeaderMap) -> bool {
        let Some(v) = self.auth.clone() else {
            return false;
        };
        let name = match self.provider {
            Provider::OpenAi => "authorization",
            Provider::Anthropic => "x-api-key",
        };
        headers.insert(name, v);
        true
    }
}

impl std::fmt::Debug for ProviderKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderKey")
            .field("provider", &self.provider)
            .field("base_url", &self.base_url)
            .field("secret", &"[REDACTED]")
            .finish()
    }
}
