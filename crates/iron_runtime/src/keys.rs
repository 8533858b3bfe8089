//! The provider key: fetched from the Iron Cage key server (`GET /api/keys`), cached for a TTL with a
//! single-flight refresh, served stale for a grace period when a refresh fails.

use crate::config::{validate_upstream_url, KeySource};
use crate::events::{EventBus, RouterEvent};
use crate::provider::{provider_from_key, Provider};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

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
            secret: Arc::from(secret),
            base_url: Arc::from(base_url),
            host: Arc::from(host),
            auth,
        }
    }

    /// The key itself.
    pub fn expose(&self) -> &str {
        &self.secret
    }

    /// The upstream auth header's value, or `None` when the key is not a valid header value.
    pub fn auth_header(&self) -> Option<&axum::http::HeaderValue> {
        self.auth.as_ref()
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

struct Cached {
    key: ProviderKey,
    fetched_at: Instant,
}

/// Why a key could not be had; the message is safe to show (never contains a key).
#[derive(Debug, Clone)]
pub struct KeyError(pub String);

/// Cache of the one key behind this router's IC token.
pub struct KeyCache {
    source: KeySource,
    ic_token: String,
    http: reqwest::Client,
    cached: RwLock<Option<Arc<Cached>>>,
    refresh: tokio::sync::Mutex<Option<Instant>>,
    events: EventBus,
    pub fetch_count: std::sync::atomic::AtomicU64,
    /// In static mode, the one key, built once.
    static_key: Option<ProviderKey>,
}

const RETRY_FAILED_REFRESH_AFTER: Duration = Duration::from_secs(5);
const MAX_KEY_RESPONSE_BYTES: usize = 64 * 1024;

impl KeyCache {
    /// A cache for `source`; nothing is fetched until asked.
    pub fn new(source: KeySource, ic_token: String, events: EventBus) -> Self {
        let timeout = match &source {
            KeySource::Server { timeout_ms, .. } => Duration::from_millis(*timeout_ms),
            KeySource::Static { .. } => Duration::from_secs(10),
        };
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .timeout(timeout)
            .no_proxy()
            .build()
            .expect("reqwest client with static settings");
        let static_key = match &source {
            KeySource::Static {
                key,
                base_url,
                provider,
            } => {
                let base = base_url
                    .clone()
                    .unwrap_or_else(|| provider.default_base_url().to_string());
                Some(ProviderKey::new(*provider, key, base))
            }
            KeySource::Server { .. } => None,
        };
        KeyCache {
            static_key,
            source,
            ic_token,
            http,
            cached: RwLock::new(None),
            refresh: tokio::sync::Mutex::new(None),
            events,
            fetch_count: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn current(&self) -> Option<Arc<Cached>> {
        self.cached.read().ok().and_then(|g| g.clone())
    }

    /// The key, from cache when fresh; otherwise one caller refreshes while the others wait for it.
    pub async fn get(&self) -> Result<ProviderKey, KeyError> {
        let (ttl, grace) = match &self.source {
            KeySource::Static {
                key,
                base_url,
                provider,
            } => {
                return Ok(self.static_key.clone().unwrap_or_else(|| {
                    let base = base_url
                        .clone()
                        .unwrap_or_else(|| provider.default_base_url().to_string());
                    ProviderKey::new(*provider, key, base)
                }))
            }
            KeySource::Server {
                ttl_secs,
                stale_grace_secs,
                ..
            } => (
                Duration::from_secs(*ttl_secs),
                Duration::from_secs(*stale_grace_secs),
            ),
        };
        if let Some(c) = self.current() {
            if c.fetched_at.elapsed() < ttl {
                return Ok(c.key.clone());
            }
        }
        let mut last_failure = self.refresh.lock().await;
        // Another caller may have refreshed while this one waited.
        let stale = self.current();
        if let Some(c) = &stale {
            if c.fetched_at.elapsed() < ttl {
                return Ok(c.key.clone());
            }
            // A refresh failed moments ago: serve the stale key rather than hammering the server.
            if let Some(at) = *last_failure {
                if at.elapsed() < RETRY_FAILED_REFRESH_AFTER && c.fetched_at.elapsed() < ttl + grace
                {
                    return Ok(c.key.clone());
                }
            }
        }
        match self.fetch().await {
            Ok(key) => {
                let refreshed = stale.is_some();
                if let Ok(mut w) = self.cached.write() {
                    *w = Some(Arc::new(Cached {
                        key: key.clone(),
                        fetched_at: Instant::now(),
                    }));
                }
                *last_failure = None;
                tracing::info!(target: "iron_cage", provider = key.provider.as_str(), refreshed, "provider key fetched from the key server");
                self.events.emit(RouterEvent::Key {
                    action: if refreshed { "refreshed" } else { "fetched" }.into(),
                    provider: Some(key.provider.as_str().into()),
                    message: None,
                });
                Ok(key)
            }
            Err(e) => {
                *last_failure = Some(Instant::now());
                if let Some(c) = stale {
                    if c.fetched_at.elapsed() < ttl + grace {
                        tracing::warn!(target: "iron_cage", error = %e.0, "key refresh failed; serving the cached key");
                        self.events.emit(RouterEvent::Key {
                            action: "stale".into(),
                            provider: Some(c.key.provider.as_str().into()),
                            message: Some(format!(
                                "key refresh failed, serving the cached key: {}",
                                e.0
                            )),
                        });
                        return Ok(c.key.clone());
                    }
                }
                tracing::warn!(target: "iron_cage", error = %e.0, "could not get the provider key");
                self.events.emit(RouterEvent::Key {
                    action: "failed".into(),
                    provider: None,
                    message: Some(e.0.clone()),
                });
                Err(e)
            }
        }
    }

    async fn fetch(&self) -> Result<ProviderKey, KeyError> {
        let KeySource::Server {
            server_url,
            timeout_ms,
            ..
        } = &self.source
        else {
            return Err(KeyError("no key server configured".into()));
        };
        self.fetch_count
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let url = format!("{server_url}/api/keys");
        let resp = self
            .http
            .get(&url)
            .bearer_auth(&self.ic_token)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| {
                let why = if e.is_timeout() {
                    format!("no answer within {timeout_ms} ms (keyServerTimeoutMs)")
                } else {
                    describe_reqwest(&e)
                };
                KeyError(format!(
                    "could not reach the key server at {server_url}: {why}"
                ))
            })?;
        let status = resp.status();
        let body = read_limited(resp, MAX_KEY_RESPONSE_BYTES)
            .await
            .map_err(|e| KeyError(format!("key server at {server_url}: {e}")))?;
        if !status.is_success() {
            let server_msg = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| {
                    v.get("error").and_then(|e| {
                        e.as_str().map(str::to_string).or_else(|| {
                            e.get("message")
                                .and_then(|m| m.as_str())
                                .map(str::to_string)
                        })
                    })
                })
                .map(|m| server_message(&m))
                .unwrap_or_else(|| "no error message".into());
            let hint = match status.as_u16() {
                401 => " (the Iron Cage token was rejected: check apiKey)",
                403 => " (the provider key is disabled in the Iron Cage dashboard)",
                404 => " (no provider key is assigned to this token's project)",
                400 => " (the token is not assigned to a project)",
                429 => " (the key server is rate limiting; retry later)",
                _ => "",
            };
            return Err(KeyError(format!(
                "key server answered {}: {server_msg}{hint}",
                status.as_u16()
            )));
        }
        parse_key_response(&body)
    }
}

/// Parse `{provider?, api_key, base_url?}`; missing provider is detected from the key.
pub fn parse_key_response(body: &[u8]) -> Result<ProviderKey, KeyError> {
    #[derive(serde::Deserialize)]
    struct KeyResponse {
        provider: Option<String>,
        api_key: Option<String>,
        base_url: Option<String>,
    }
    let r: KeyResponse = serde_json::from_slice(body).map_err(|_| KeyError("key server sent a response that is not the expected JSON {provider?, api_key, base_url?}".into()))?;
    let key = r
        .api_key
        .filter(|k| !k.trim().is_empty())
        .ok_or_else(|| KeyError("key server response has no api_key".into()))?;
    if key.len() > 8192 || key.chars().any(|c| c.is_control() || c == ' ') {
        return Err(KeyError(
            "key server sent an api_key that is not a valid header value".into(),
        ));
    }
    crate::logging::register_secret(&key);
    let provider = match r.provider.as_deref() {
        Some(p) => Provider::parse(p).ok_or_else(|| {
            KeyError(format!(
                "key server named an unsupported provider '{}'",
                sanitize(p)
            ))
        })?,
        None => provider_from_key(&key),
    };
    let base_url = match r.base_url.filter(|u| !u.trim().is_empty()) {
        Some(u) => validate_upstream_url("base_url", &u).map_err(|e| {
            KeyError(format!(
                "key server sent an unusable base_url: {}",
                e.message
            ))
        })?,
        None => provider.default_base_url().to_string(),
    };
    Ok(ProviderKey::new(provider, &key, base_url))
}

/// A key server's error message as it may be shown: secrets redacted while the text is whole (a key
/// cut by the length bound would no longer match), then bounded, then redacted again.
fn server_message(m: &str) -> String {
    crate::logging::redact(&sanitize(&crate::logging::redact(m)))
}

/// Keep only printable text of bounded length from a server message.
pub fn sanitize(s: &str) -> String {
    let s: String = s.chars().filter(|c| !c.is_control()).take(300).collect();
    s
}

/// A reqwest error without its URL (which never holds a key here, but may hold paths).
pub fn describe_reqwest(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "connection refused or failed".into()
    } else {
        let mut s = e.without_url_ref().to_string();
        let mut src = std::error::Error::source(e);
        while let Some(inner) = src {
            s.push_str(": ");
            s.push_str(&inner.to_string());
            src = inner.source();
        }
        s
    }
}

trait WithoutUrlRef {
    fn without_url_ref(&self) -> String;
}
impl WithoutUrlRef for reqwest::Error {
    fn without_url_ref(&self) -> String {
        let s = self.to_string();
        match self.url() {
            Some(u) => s.replace(u.as_str(), "<url>"),
            None => s,
        }
    }
}

async fn read_limited(resp: reqwest::Response, limit: usize) -> Result<Vec<u8>, String> {
    use futures_util::StreamExt;
    let mut out = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| describe_reqwest(&e))?;
        if out.len() + chunk.len() > limit {
            return Err(format!("response larger than {limit} bytes"));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_key_at_the_length_bound_of_a_server_message_is_not_half_shown() {
        // Not key-shaped (no sk- prefix): only the registered secret catches it.
        let secret = "zq7PRIVATEkeyMaterial0123456789abcdefXYZ";
        crate::logging::register_secret(secret);
        // The key straddles the 300-character bound: cut first, its first half would survive.
        let m = format!("{}{secret} was revoked", "x".repeat(280));
        let shown = server_message(&m);
        assert!(!shown.contains("zq7PRIVATE"), "{shown}");
        assert!(shown.chars().count() <= 300);
    }

    use super::*;

    #[test]
    fn parses_key_responses() {
        let k = parse_key_response(br#"{"api_key":"sk-ant-x"}"#).unwrap();
        assert_eq!(k.provider, Provider::Anthropic);
        assert_eq!(&*k.base_url, "https://api.anthropic.com");
        let k = parse_key_response(
            br#"{"provider":"openai","api_key":"sk-x","base_url":"http://127.0.0.1:5/"}"#,
        )
        .unwrap();
        assert_eq!(&*k.base_url, "http://127.0.0.1:5");
        assert!(!format!("{k:?}").contains("sk-x"));
        assert!(parse_key_response(br#"{"api_key":""}"#).is_err());
        assert!(
            parse_key_response(br#"{"api_key":"sk","base_url":"http://evil.example"}"#).is_err()
        );
        assert!(parse_key_response(br#"{"api_key":"sk","provider":"gemini"}"#).is_err());
        assert!(parse_key_response(b"<html>").is_err());
        assert!(parse_key_response(br#"{"api_key":"sk\nx"}"#).is_err());
    }
}
