//! Router options: parsed from the JSON the TS facade passes, validated with errors that name the field.

use crate::provider::{provider_from_key, Provider};
use serde::Deserialize;

/// Where the real provider key comes from.
#[derive(Clone)]
pub enum KeySource {
    /// `GET {server_url}/api/keys`, cached for `ttl_secs`.
    Server {
        server_url: String,
        ttl_secs: u64,
        stale_grace_secs: u64,
        /// Whole-request limit of one key fetch (`keyServerTimeoutMs`).
        timeout_ms: u64,
    },
    /// A key given directly (`providerKey`), no key server.
    Static {
        key: String,
        base_url: Option<String>,
        provider: Provider,
    },
}

/// Options as the JS side spells them.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouterOptions {
    pub api_key: Option<String>,
    pub server_url: Option<String>,
    pub cache_ttl_seconds: Option<f64>,
    pub key_stale_grace_seconds: Option<f64>,
    pub key_server_timeout_ms: Option<f64>,
    pub provider_key: Option<String>,
    pub provider_base_url: Option<String>,
    pub provider: Option<String>,
    pub max_body_bytes: Option<f64>,
    pub budget_usd: Option<f64>,
    pub budget_warning_percent: Option<f64>,
    pub pricing: Option<serde_json::Value>,
    pub unknown_model: Option<serde_json::Value>,
    pub unmetered_calls: Option<String>,
    pub openai_project_service_tier: Option<String>,
    pub safety: Option<serde_json::Value>,
    pub reliability: Option<serde_json::Value>,
    pub state_path: Option<String>,
    pub agent_id: Option<String>,
    pub flush_interval_ms: Option<f64>,
    pub strict_persistence: Option<bool>,
    pub log_level: Option<String>,
    pub log_format: Option<String>,
    /// `stderr` (default) or `callback` (the JS facade attaches its logger).
    pub log_sink: Option<String>,
    pub dashboard_url: Option<String>,
    pub allowed_origins: Option<Vec<String>>,
    pub max_connections: Option<f64>,
    pub header_read_timeout_ms: Option<f64>,
    pub ws_heartbeat_ms: Option<f64>,
    /// Clients present a freshly minted token instead of `apiKey` (set by the agent runtime, so a
    /// spawned agent never holds the Iron Cage token, which could fetch the real key itself).
    pub mint_client_token: Option<bool>,
}

/// Validated router configuration.
#[derive(Clone)]
pub struct RouterConfig {
    /// The Iron Cage token: sent to the key server (and the dashboard), and what clients present
    /// unless `client_token` differs.
    pub ic_token: String,
    /// The token clients must present: `ic_token`, or a minted one (`mintClientToken`).
    pub client_token: String,
    pub key_source: KeySource,
    pub max_body_bytes: usize,
    pub max_connections: usize,
    pub header_read_timeout_ms: u64,
    /// Heartbeat interval of the events WebSocket and the dashboard push link.
    pub ws_heartbeat_ms: u64,
    pub allowed_origins: Vec<String>,
    pub raw: std::sync::Arc<RouterOptions>,
}

/// An invalid option: `field` names it as the user wrote it.
#[derive(Debug, thiserror::Error)]
#[error("invalid option {field}: {message}")]
pub struct ConfigError {
    pub field: String,
    pub message: String,
}

impl ConfigError {
    /// The error with the option values that are secrets (`providerKey`, `apiKey`, found in
    /// `options` even when they did not parse) and key-shaped strings replaced: a key pasted into
    /// the wrong option would otherwise be quoted back, and the error reaches JS, logs and stderr.
    pub fn scrubbed(self, options: &str) -> ConfigError {
        let doc: serde_json::Value = serde_json::from_str(options).unwrap_or_default();
        let secrets: Vec<&str> = ["providerKey", "apiKey"]
            .iter()
            .filter_map(|k| doc.get(*k)?.as_str())
            .filter(|s| s.len() >= 8)
            .collect();
        let scrub = |text: String| {
            let mut text = text;
            for s in &secrets {
                text = text.replace(s, iron_telemetry::REDACTED);
            }
            iron_telemetry::Redactor::new().redact(&text).into_owned()
        };
        ConfigError {
            field: scrub(self.field),
            message: scrub(self.message),
        }
    }
}

fn err(field: &str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        field: field.to_string(),
        message: message.into(),
    }
}

/// A URL as error messages show it: scheme, host, port and path only. User info, query and fragment
/// may hold credentials, and an error reaches JS, the CLI's stderr and the client's 502 body.
pub fn shown_url(url: &reqwest::Url) -> String {
    let mut s = format!("{}://{}", url.scheme(), url.host_str().unwrap_or(""));
    if let Some(port) = url.port() {
        s.push_str(&format!(":{port}"));
    }
    s.push_str(url.path());
    crate::keys::sanitize(&s)
}

/// Accept `https://…` anywhere, `http://…` only for loopback hosts (tests and local servers).
pub fn validate_upstream_url(field: &str, url: &str) -> Result<String, ConfigError> {
    // A URL that does not parse is not echoed: it may be a key pasted into the wrong option.
    let parsed = reqwest::Url::parse(url).map_err(|e| {
        err(
            field,
            format!("is not a valid URL ({e}); expected https://host[:port][/path]"),
        )
    })?;
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(err(field, "must not contain credentials (user:password@); the key server authenticates with apiKey"));
    }
    let host = parsed.host_str().unwrap_or("");
    let loopback = is_loopback_host(host);
    match parsed.scheme() {
        "https" => {}
        "http" if loopback => {}
        "http" => {
            return Err(err(
                field,
                format!("must use https (plain http is only allowed for loopback hosts such as 127.0.0.1), got '{}'", shown_url(&parsed)),
            ))
        }
        s => return Err(err(field, format!("unsupported scheme '{}'; use https", crate::keys::sanitize(s)))),
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(err(
            field,
            format!(
                "must not have a query or fragment, got '{}?…'",
                shown_url(&parsed)
            ),
        ));
    }
    // The parsed form: what reqwest will use, so every accepted URL joins into a usable one.
    Ok(parsed.as_str().trim_end_matches('/').to_string())
}

/// `localhost`, `127.x.x.x` and `::1`.
pub fn is_loopback_host(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    if h.eq_ignore_ascii_case("localhost") {
        return true;
    }
    h.parse::<std::net::IpAddr>()
        .map(|ip| ip.is_loopback())
        .unwrap_or(false)
}

/// A number of seconds the option takes whole (`0.5` would otherwise read as 0: no cache at all).
fn whole_seconds(field: &str, x: f64) -> Result<u64, ConfigError> {
    if x.fract() != 0.0 {
        return Err(err(
            field,
            format!("must be a whole number of seconds, got {x}"),
        ));
    }
    Ok(x as u64)
}

fn positive(
    field: &str,
    v: Option<f64>,
    default: f64,
    min: f64,
    max: f64,
) -> Result<f64, ConfigError> {
    match v {
        None => Ok(default),
        Some(x) if x.is_finite() && x >= min && x <= max => Ok(x),
        Some(x) => Err(err(
            field,
            format!("must be a number between {min} and {max}, got {x}"),
        )),
    }
}

/// The shortest token clients may present (`apiKey`); minted tokens have 57 characters.
pub const MIN_TOKEN_CHARS: usize = 16;

impl RouterConfig {
    /// Parse and validate the options JSON.
    pub fn from_json(json: &str) -> Result<RouterConfig, ConfigError> {
        let de = &mut serde_json::Deserializer::from_str(json);
        let opts: RouterOptions = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let field = if path == "." {
                "options".to_string()
            } else {
                path
            };
            err(&field, e.into_inner().to_string())
        })?;
        RouterConfig::from_options(opts)
    }

    /// Validate typed options.
    pub fn from_options(o: RouterOptions) -> Result<RouterConfig, ConfigError> {
        let ic_token = o.api_key.clone().unwrap_or_default();
        let key_source = match (&o.provider_key, &o.server_url) {
            (Some(_), Some(_)) => return Err(err("providerKey", "give either providerKey or serverUrl, not both")),
            (Some(key), None) => {
                if key.trim().is_empty() {
                    return Err(err("providerKey", "must not be empty"));
                }
                let base_url = match &o.provider_base_url {
                    Some(u) => Some(validate_upstream_url("providerBaseUrl", u)?),
                    None => None,
                };
                let provider = match &o.provider {
                    Some(p) => Provider::parse(p).ok_or_else(|| err("provider", format!("must be 'openai' or 'anthropic', got '{p}'")))?,
                    None => provider_from_key(key),
                };
                // The key server's options mean nothing without one: say so instead of ignoring them.
                for (field, set) in [
                    ("cacheTtlSeconds", o.cache_ttl_seconds.is_some()),
                    ("keyStaleGraceSeconds", o.key_stale_grace_seconds.is_some()),
                    ("keyServerTimeoutMs", o.key_server_timeout_ms.is_some()),
                ] {
                    if set {
                        return Err(err(field, "only used with serverUrl (the key server); with providerKey there is no key to fetch or cache"));
                    }
                }
                KeySource::Static { key: key.clone(), base_url, provider }
            }
            (None, Some(url)) => {
                if ic_token.is_empty() {
                    return Err(err("apiKey", "the Iron Cage token (ic_…) is required with serverUrl"));
                }
                if o.provider_base_url.is_some() {
                    return Err(err("providerBaseUrl", "only used with providerKey; with serverUrl the key server gives base_url"));
                }
                if o.provider.is_some() {
                    return Err(err("provider", "only used with providerKey; with serverUrl the key server says which provider its key is for"));
                }
                KeySource::Server {
                    server_url: validate_upstream_url("serverUrl", url)?,
                    ttl_secs: whole_seconds("cacheTtlSeconds", positive("cacheTtlSeconds", o.cache_ttl_seconds, 300.0, 0.0, 86_400.0)?)?,
                    stale_grace_secs: whole_seconds("keyStaleGraceSeconds", positive("keyStaleGraceSeconds", o.key_stale_grace_seconds, 600.0, 0.0, 604_800.0)?)?,
                    timeout_ms: positive("keyServerTimeoutMs", o.key_server_timeout_ms, 10_000.0, 100.0, 300_000.0)? as u64,
                }
            }
            (None, None) => {
                return Err(err(
                    "serverUrl",
                    "give serverUrl (with apiKey, your Iron Cage token) or providerKey (a provider key used directly)",
                ))
            }
        };
        // In static mode without an IC token the router mints one so the local port is never open.
        let ic_token = if ic_token.is_empty() {
            crate::auth_token::mint()
        } else {
            ic_token
        };
        if ic_token.len() > 4096 {
            return Err(err("apiKey", "is longer than 4096 characters"));
        }
        if ic_token.chars().count() < MIN_TOKEN_CHARS {
            return Err(err(
                "apiKey",
                format!(
                    "is {} characters; clients present it to the router, so it must have at least {MIN_TOKEN_CHARS} \
                     (any local process can try to guess it). Use the token your Iron Cage server issued, \
                     or leave apiKey out with providerKey and the router mints one",
                    ic_token.chars().count()
                ),
            ));
        }
        let client_token = if o.mint_client_token == Some(true) {
            crate::auth_token::mint()
        } else {
            ic_token.clone()
        };
        let max_body_bytes = positive(
            "maxBodyBytes",
            o.max_body_bytes,
            32.0 * 1024.0 * 1024.0,
            1024.0,
            256.0 * 1024.0 * 1024.0,
        )? as usize;
        let max_connections =
            positive("maxConnections", o.max_connections, 1024.0, 1.0, 65_536.0)? as usize;
        let header_read_timeout_ms = positive(
            "headerReadTimeoutMs",
            o.header_read_timeout_ms,
            10_000.0,
            100.0,
            600_000.0,
        )? as u64;
        let ws_heartbeat_ms = positive(
            "wsHeartbeatMs",
            o.ws_heartbeat_ms,
            30_000.0,
            10.0,
            3_600_000.0,
        )? as u64;
        if let Some(b) = o.budget_usd {
            if !(b.is_finite() && b >= 0.0) {
                return Err(err(
                    "budgetUsd",
                    format!("must be a non-negative number of USD, got {b}"),
                ));
            }
        }
        if let Some(u) = &o.dashboard_url {
            let parsed = reqwest::Url::parse(u).map_err(|e| {
                err(
                    "dashboardUrl",
                    format!("is not a valid URL ({e}); expected wss://host[:port][/path]"),
                )
            })?;
            if !parsed.username().is_empty() || parsed.password().is_some() {
                return Err(err("dashboardUrl", "must not contain credentials (user:password@); the link authenticates with apiKey"));
            }
            let loop_ok = is_loopback_host(parsed.host_str().unwrap_or(""));
            if !(parsed.scheme() == "wss" || (parsed.scheme() == "ws" && loop_ok)) {
                return Err(err(
                    "dashboardUrl",
                    "must use wss:// (ws:// only for loopback hosts)",
                ));
            }
        }
        Ok(RouterConfig {
            ic_token,
            client_token,
            key_source,
            max_body_bytes,
            max_connections,
            header_read_timeout_ms,
            ws_heartbeat_ms,
            allowed_origins: o.allowed_origins.clone().unwrap_or_default(),
            // The policy sections stay as the user wrote them, for the crate that owns each schema.
            raw: std::sync::Arc::new(o),
        })
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn url_errors_never_echo_credentials_queries_or_unparseable_text() {
        for (field, url, secret) in [
            (
                "serverUrl",
                "http://user:pw-hunter2-secret@example.com/",
                "hunter2",
            ),
            (
                "serverUrl",
                "https://user:pw-hunter2-secret@example.com/",
                "hunter2",
            ),
            (
                "providerBaseUrl",
                "https://api.example.com/v1?token=qs-secret-991",
                "qs-secret-991",
            ),
            (
                "providerBaseUrl",
                "http://api.example.com/v1?token=qs-secret-991",
                "qs-secret-991",
            ),
            ("serverUrl", "sk-pasted-key-not-a-url-4471", "4471"),
        ] {
            let e = validate_upstream_url(field, url).expect_err(url);
            let text = e.to_string();
            assert!(!text.contains(secret), "{text}");
            assert!(
                text.starts_with(&format!("invalid option {field}: ")),
                "{text}"
            );
        }
        let e = RouterConfig::from_json(
            r#"{"providerKey":"sk-x","dashboardUrl":"wss://me:dash-pass-77@dash.example.com/ws"}"#,
        )
        .err()
        .unwrap();
        assert_eq!(e.field, "dashboardUrl");
        assert!(!e.to_string().contains("dash-pass-77"), "{e}");
        assert!(e.message.contains("credentials"), "{e}");
    }

    use super::*;

    #[test]
    fn names_the_field() {
        let e = RouterConfig::from_json(r#"{"apiKey":"ic_x","serverUrl":"http://example.com"}"#)
            .err()
            .unwrap();
        assert_eq!(e.field, "serverUrl");
        assert!(e.message.contains("https"), "{}", e.message);
        let e = RouterConfig::from_json(
            r#"{"apiKey":"ic_x","serverUrl":"https://x","cacheTtlSeconds":-1}"#,
        )
        .err()
        .unwrap();
        assert_eq!(e.field, "cacheTtlSeconds");
        // 0.5 would read as 0 (no cache at all): whole seconds only.
        let e = RouterConfig::from_json(
            r#"{"apiKey":"ic_x","serverUrl":"https://x","cacheTtlSeconds":0.5}"#,
        )
        .err()
        .unwrap();
        assert_eq!(e.field, "cacheTtlSeconds");
        assert!(e.message.contains("whole number"), "{}", e.message);
        // The key server's options without a key server are a mistake, not ignored.
        let e = RouterConfig::from_json(
            r#"{"providerKey":"sk-x","keyStaleGraceSeconds":-5,"keyServerTimeoutMs":1}"#,
        )
        .err()
        .unwrap();
        assert_eq!(e.field, "keyStaleGraceSeconds");
        assert!(e.message.contains("serverUrl"), "{}", e.message);
        // And static mode's without one: the key server names the provider.
        let e = RouterConfig::from_json(
            r#"{"apiKey":"ic_0123456789abcdef","serverUrl":"https://x","provider":"anthropic"}"#,
        )
        .err()
        .unwrap();
        assert_eq!(e.field, "provider");
        assert!(e.message.contains("providerKey"), "{}", e.message);
        let e = RouterConfig::from_json(r#"{"apiKey":"ic_x","serverUrl":"https://x","bogus":1}"#)
            .err()
            .unwrap();
        assert!(e.message.contains("bogus"), "{}", e.message);
        let e = RouterConfig::from_json(r#"{"apiKey":5}"#).err().unwrap();
        assert_eq!(e.field, "apiKey");
        let e = RouterConfig::from_json(r#"{"apiKey":"ic"}"#).err().unwrap();
        assert_eq!(e.field, "serverUrl");
    }

    #[test]
    fn loopback_http_is_allowed() {
        let c = RouterConfig::from_json(
            r#"{"apiKey":"ic_test_token_0123","serverUrl":"http://127.0.0.1:9/"}"#,
        )
        .unwrap();
        match c.key_source {
            KeySource::Server {
                server_url,
                ttl_secs,
                timeout_ms,
                ..
            } => {
                assert_eq!(server_url, "http://127.0.0.1:9");
                assert_eq!(ttl_secs, 300);
                assert_eq!(timeout_ms, 10_000);
            }
            _ => panic!("expected server source"),
        }
        assert!(is_loopback_host("[::1]"));
        assert!(is_loopback_host("localhost"));
        assert!(!is_loopback_host("127.0.0.1.evil.com"));
    }

    #[test]
    fn a_short_token_is_refused_with_the_fix() {
        for opts in [
            r#"{"apiKey":"ic_x","serverUrl":"http://127.0.0.1:9/"}"#,
            r#"{"apiKey":"secret","providerKey":"sk-x"}"#,
        ] {
            let e = RouterConfig::from_json(opts).err().unwrap();
            assert_eq!(e.field, "apiKey");
            assert!(e.message.contains("at least 16"), "{e}");
            assert!(!e.to_string().contains("secret\""), "{e}");
        }
        let c = RouterConfig::from_json(r#"{"apiKey":"0123456789abcdef","providerKey":"sk-x"}"#)
            .unwrap();
        assert_eq!(c.client_token, "0123456789abcdef");
    }

    #[test]
    fn static_key_mints_a_token() {
        let c = RouterConfig::from_json(r#"{"providerKey":"sk-ant-x"}"#).unwrap();
        assert!(c.ic_token.starts_with("ic_"));
        assert!(matches!(
            c.key_source,
            KeySource::Static {
                provider: Provider::Anthropic,
                ..
            }
        ));
    }
}
