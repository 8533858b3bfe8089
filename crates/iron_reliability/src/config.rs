//! The `reliability` section of the runtime config, read from JSON.

use serde::{Deserialize, Serialize};

use crate::breaker_config::BreakerConfig;
use crate::error::ConfigError;
use crate::retry::RetryPolicy;
use crate::timeouts::Timeouts;

/// Breaker, retry and timeout settings; every field optional, unknown fields rejected.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReliabilityConfig {
    /// Circuit-breaker settings.
    pub breaker: BreakerConfig,
    /// Retry budget and backoff.
    pub retry: RetryPolicy,
    /// Upstream timeouts.
    pub timeouts: Timeouts,
}

impl ReliabilityConfig {
    /// Parses and validates a JSON object; errors name the offending field's path.
    pub fn from_json(json: &str) -> Result<Self, ConfigError> {
        let value: serde_json::Value = serde_json::from_str(json)
            .map_err(|e| ConfigError::new("reliability", format!("is not valid JSON: {e}")))?;
        Self::from_value(value)
    }

    /// Reads and validates an already parsed JSON value (e.g. the `reliability` key of a larger config).
    pub fn from_value(value: serde_json::Value) -> Result<Self, ConfigError> {
        require_objects(&value)?;
        let given = |field: &str| value.get("timeouts").and_then(|t| t.get(field)).is_some();
        let defaulted = [!given("connectMs"), !given("firstByteMs"), !given("idleMs")];
        let mut config: Self = serde_path_to_error::deserialize(value).map_err(path_error)?;
        // A `totalMs` below a phase's default lowers that default (`{ totalMs: 60000 }` alone is
        // valid); a phase limit the user gave above `totalMs` is still refused.
        let t = &mut config.timeouts;
        let total = t.total_ms;
        for (slot, unset) in [&mut t.connect_ms, &mut t.first_byte_ms, &mut t.idle_ms]
            .into_iter()
            .zip(defaulted)
        {
            if unset {
                *slot = (*slot).min(total);
            }
        }
        config.validate()?;
        Ok(config)
    }

    /// Checks every section.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.breaker.validate()?;
        self.retry.validate()?;
        self.timeouts.validate()
    }
}

/// serde would also accept positional arrays for structs; a config must use named fields.
fn require_objects(value: &serde_json::Value) -> Result<(), ConfigError> {
    let Some(top) = value.as_object() else {
        return Err(ConfigError::new("reliability", "must be a JSON object"));
    };
    for (section, field) in [
        ("breaker", "reliability.breaker"),
        ("retry", "reliability.retry"),
        ("timeouts", "reliability.timeouts"),
    ] {
        if top.get(section).is_some_and(|v| !v.is_object()) {
            return Err(ConfigError::new(field, "must be a JSON object"));
        }
    }
    Ok(())
}

fn path_error(e: serde_path_to_error::Error<serde_json::Error>) -> ConfigError {
    let path = e.path().to_string();
    let field = if path == "." || path.is_empty() {
        "reliability".to_string()
    } else {
        format!("reliability.{path}")
    };
    ConfigError {
        field,
        reason: e.into_inner().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::retry::Jitter;

    #[test]
    fn empty_object_gives_all_defaults() {
        assert_eq!(
            ReliabilityConfig::from_json("{}").unwrap(),
            ReliabilityConfig::default()
        );
        assert_eq!(
            ReliabilityConfig::from_json(r#"{"breaker":{}}"#).unwrap(),
            ReliabilityConfig::default()
        );
    }

    #[test]
    fn every_camel_case_field_is_read() {
        let json = r#"{
          "breaker": { "enabled": true, "failureRateThreshold": 75, "windowSize": 40, "minimumCalls": 8,
                       "consecutiveFailures": 3, "openMs": 1000, "halfOpenProbes": 2, "maxOpenMs": 9000 },
          "retry": { "maxRetries": 4, "baseMs": 100, "maxBackoffMs": 2000, "maxTotalMs": 10000, "jitter": "equal" },
          "timeouts": { "connectMs": 1, "firstByteMs": 2, "idleMs": 3, "totalMs": 4 }
        }"#;
        let c = ReliabilityConfig::from_json(json).unwrap();
        let b = &c.breaker;
        assert_eq!(b.failure_rate_threshold, 75.0);
        assert_eq!(
            (b.window_size, b.minimum_calls, b.consecutive_failures),
            (40, 8, 3)
        );
        assert_eq!(
            (b.open_ms, b.half_open_probes, b.max_open_ms),
            (1_000, 2, 9_000)
        );
        let r = &c.retry;
        assert_eq!(
            (
                r.max_retries,
                r.base_ms,
                r.max_backoff_ms,
                r.max_total_ms,
                r.jitter
            ),
            (4, 100, 2_000, 10_000, Jitter::Equal)
        );
        let t = &c.timeouts;
        assert_eq!(
            (t.connect_ms, t.first_byte_ms, t.idle_ms, t.total_ms),
            (1, 2, 3, 4)
        );
    }

    #[test]
    fn partial_sections_keep_other_defaults() {
        let c = ReliabilityConfig::from_json(
            r#"{"breaker":{"enabled":false},"retry":{"maxRetries":0}}"#,
        )
        .unwrap();
        assert!(!c.breaker.enabled);
        assert_eq!(c.breaker.window_size, 20);
        assert_eq!((c.retry.max_retries, c.retry.base_ms), (0, 250));
        assert_eq!(c.timeouts.total_ms, 900_000);
    }

    #[test]
    fn a_total_below_the_defaults_lowers_them_but_not_given_limits() {
        let c = ReliabilityConfig::from_json(r#"{"timeouts":{"totalMs":60000}}"#).unwrap();
        let t = &c.timeouts;
        assert_eq!(
            (t.connect_ms, t.first_byte_ms, t.idle_ms, t.total_ms),
            (10_000, 60_000, 60_000, 60_000)
        );
        let e = ReliabilityConfig::from_json(r#"{"timeouts":{"totalMs":60000,"idleMs":90000}}"#)
            .unwrap_err();
        assert_eq!(e.field, "reliability.timeouts.idleMs");
    }

    #[test]
    fn unknown_fields_are_named_with_their_path() {
        let e = ReliabilityConfig::from_json(r#"{"breaker":{"windowSzie":5}}"#).unwrap_err();
        assert_eq!(e.field, "reliability.breaker.windowSzie");
        assert!(e.reason.contains("unknown field `windowSzie`"), "{e}");
        let e = ReliabilityConfig::from_json(r#"{"circuit":{}}"#).unwrap_err();
        assert!(e.to_string().contains("unknown field `circuit`"), "{e}");
        // snake_case is not accepted: the JSON names are camelCase exactly.
        let e = ReliabilityConfig::from_json(r#"{"retry":{"max_retries":1}}"#).unwrap_err();
        assert!(e.reason.contains("unknown field `max_retries`"), "{e}");
    }

    #[test]
    fn wrong_types_and_invalid_values_are_named() {
        let e = ReliabilityConfig::from_json(r#"{"timeouts":{"idleMs":-1}}"#).unwrap_err();
        assert_eq!(e.field, "reliability.timeouts.idleMs");
        let e = ReliabilityConfig::from_json(r#"{"breaker":{"windowSize":0}}"#).unwrap_err();
        assert_eq!(
            e.to_string(),
            "reliability.breaker.windowSize must be ≥ 1 and ≤ 10000 (got 0)"
        );
        let e = ReliabilityConfig::from_json(r#"{"retry":{"jitter":"none"}}"#).unwrap_err();
        assert_eq!(e.field, "reliability.retry.jitter");
    }

    #[test]
    fn malformed_json_is_an_error_not_a_panic() {
        for bad in [
            "",
            "{",
            "[]",
            "null",
            "{\"breaker\":[]}",
            "{} trailing",
            "\u{0}",
        ] {
            assert!(ReliabilityConfig::from_json(bad).is_err(), "{bad:?}");
        }
        let e = ReliabilityConfig::from_json("[]").unwrap_err();
        assert_eq!(e.to_string(), "reliability must be a JSON object");
        let e = ReliabilityConfig::from_json(r#"{"retry":[2,250,8000,30000]}"#).unwrap_err();
        assert_eq!(e.to_string(), "reliability.retry must be a JSON object");
        let v = serde_json::json!({ "breaker": { "openMs": 5, "maxOpenMs": 1 } });
        assert_eq!(
            ReliabilityConfig::from_value(v).unwrap_err().field,
            "reliability.breaker.maxOpenMs"
        );
    }
}
