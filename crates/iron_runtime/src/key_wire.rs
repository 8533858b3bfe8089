//! The key server's answer as the router reads it (`{provider?, api_key, base_url?}`), and its
//! error messages and transport errors as they may be shown: bounded, without control characters,
//! URLs or secrets.

use crate::config::validate_upstream_url;
use crate::key_error::KeyError;
use crate::provider::{provider_from_key, Provider};
use crate::provider_key::ProviderKey;

/// Parse `{provider?, api_key, base_url?}`; missing provider is detected from the key.
pub fn parse_key_response(body: &[u8]) -> Result<ProviderKey, KeyError> {
    #[derive(serde::Deserialize)]
    struct KeyResponse {
        provider: Option<String>,
        api_key: Option<String>,
        base_url: Option<String>,
    }
    let r: KeyResponse = serde_json::from_slice(body).map_err(|_| KeyError::unavailable("key server sent a response that is not the expected JSON {provider?, api_key, base_url?}"))?;
    let key = r
        .api_key
        .filter(|k| !k.trim().is_empty())
        .ok_or_else(|| KeyError::unavailable("key server response has no api_key"))?;
    if key.len() > 8192 || key.chars().any(|c| c.is_control() || c == ' ') {
        return Err(KeyError::unavailable(
            "key server sent an api_key that is not a valid header value",
        ));
    }
    crate::logging::register_secret(&key);
    let provider = match r.provider.as_deref() {
        Some(p) => Provider::parse(p).ok_or_else(|| {
            KeyError::unavailable(format!(
                "key server named an unsupported provider '{}'",
                sanitize(p)
            ))
        })?,
        None => provider_from_key(&key),
    };
    let base_url = match r.base_url.filter(|u| !u.trim().is_empty()) {
        Some(u) => validate_upstream_url("base_url", &u).map_err(|e| {
            KeyError::unavailable(format!(
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
pub(crate) fn server_message(m: &str) -> String {
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

pub(crate) async fn read_limited(resp: reqwest::Response, limit: usize) -> Result<Vec<u8>, String> {
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
