//! A registered key never reaches a sink, however it is logged.

mod common;

use std::fmt;

use common::{for_target, line_sink, record_sink};
use iron_telemetry::{LevelFilter, LogFormat, Redactor};

/// Deliberately matches none of the built-in patterns, so only exact-secret matching can catch it.
const CANARY: &str = "zz9Canary0042Value7x";

#[derive(Debug)]
#[allow(dead_code)] // Read only through Debug, which is the point.
struct ProviderConfig {
    base_url: String,
    api_key: String,
}

#[derive(Debug)]
struct InnerError(String);
impl fmt::Display for InnerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "upstream said: bad key {}", self.0)
    }
}
impl std::error::Error for InnerError {}

#[derive(Debug)]
struct OuterError(InnerError);
impl fmt::Display for OuterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("key fetch failed")
    }
}
impl std::error::Error for OuterError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

macro_rules! log_everywhere {
    ($level:expr) => {{
        let cfg = ProviderConfig {
            base_url: "https://api.example".into(),
            api_key: CANARY.into(),
        };
        let err = OuterError(InnerError(format!("...{CANARY}...")));
        let span = tracing::span!(target: "t_canary", $level, "request", token = CANARY);
        let _entered = span.enter();
        tracing::event!(target: "t_canary", $level, "using key {CANARY} now");
        tracing::event!(target: "t_canary", $level, key = CANARY, "field");
        tracing::event!(target: "t_canary", $level, url = %format!("https://x/?q=a{CANARY}b"), "embedded");
        tracing::event!(target: "t_canary", $level, cfg = ?cfg, "debug struct");
        tracing::event!(target: "t_canary", $level, error = &err as &dyn std::error::Error, "error chain");
        tracing::event!(target: "t_canary", $level, "{cfg:?} / {err}");
    }};
}

#[test]
fn canary_key_never_reaches_any_sink() {
    let (h1, records) = record_sink(LevelFilter::TRACE);
    let (h2, json) = line_sink(LevelFilter::TRACE, LogFormat::Json);
    let (h3, text) = line_sink(LevelFilter::TRACE, LogFormat::Text);
    assert!(h1.register_secret(CANARY));

    log_everywhere!(tracing::Level::TRACE);
    log_everywhere!(tracing::Level::DEBUG);
    log_everywhere!(tracing::Level::INFO);
    log_everywhere!(tracing::Level::WARN);
    log_everywhere!(tracing::Level::ERROR);

    let mine = for_target(&records, "t_canary");
    assert_eq!(mine.len(), 30, "6 events at each of 5 levels");
    for r in &mine {
        assert!(!r.message.contains(CANARY), "message leaked: {}", r.message);
        assert!(
            !r.fields_json.contains(CANARY),
            "field leaked: {}",
            r.fields_json
        );
    }
    let first = &mine[0];
    assert_eq!(first.message, "using key [REDACTED] now");
    assert!(
        first.fields_json.contains(r#""token":"[REDACTED]""#),
        "{}",
        first.fields_json
    );
    let chain = mine
        .iter()
        .find(|r| r.message == "error chain")
        .expect("error event");
    assert!(
        chain
            .fields_json
            .contains("key fetch failed: upstream said: bad key ...[REDACTED]..."),
        "{}",
        chain.fields_json
    );
    let embedded = mine
        .iter()
        .find(|r| r.message == "embedded")
        .expect("embedded event");
    assert!(
        embedded.fields_json.contains("q=a[REDACTED]b"),
        "{}",
        embedded.fields_json
    );

    for lines in [&json, &text] {
        let lines = lines.lock().unwrap_or_else(|p| p.into_inner());
        let mine: Vec<_> = lines.iter().filter(|l| l.contains("t_canary")).collect();
        assert_eq!(mine.len(), 30);
        assert!(mine.iter().all(|l| !l.contains(CANARY)));
    }
    drop((h1, h2, h3));
}

#[test]
fn credential_and_pii_shapes_are_redacted_without_registration() {
    let (_h, records) = record_sink(LevelFilter::INFO);
    tracing::info!(
        target: "t_patterns",
        auth = "Bearer sk-ant-api03-AAAABBBBCCCCDDDD",
        "mail from jane.doe@example.com with ghp_0123456789abcdefghijABCDEFGHIJ012345"
    );
    let mine = for_target(&records, "t_patterns");
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].message, "mail from [REDACTED] with [REDACTED]");
    assert_eq!(mine[0].fields_json, r#"{"auth":"Bearer [REDACTED]"}"#);
}

#[test]
fn the_global_redactor_is_usable_directly() {
    let r = Redactor::global();
    assert!(r.register_secret("direct-use-secret-123"));
    assert_eq!(
        r.redact("body: {\"error\":\"direct-use-secret-123 invalid\"}"),
        "body: {\"error\":\"[REDACTED] invalid\"}"
    );
}
