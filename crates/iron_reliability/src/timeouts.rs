//! Upstream timeouts (`reliability.timeouts` in the JSON config).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::ConfigError;

/// Connect, first-byte, between-chunk and whole-request time limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct Timeouts {
    /// TCP + TLS connect.
    pub connect_ms: u64,
    /// From sending the request to the response headers (long prompts on slow models need minutes).
    pub first_byte_ms: u64,
    /// Between two body chunks of a stream (longer than Anthropic's ping cadence); also how long a
    /// client may take none of a relayed answer before it is handled as a client that left.
    pub idle_ms: u64,
    /// Whole request including the streamed body and its delivery to the client (above the SDKs'
    /// 10-minute default).
    pub total_ms: u64,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect_ms: 10_000,
            first_byte_ms: 120_000,
            idle_ms: 120_000,
            total_ms: 900_000,
        }
    }
}

impl Timeouts {
    /// Checks every field is ≥ 1 ms and no phase limit exceeds `totalMs`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let phases = [
            ("reliability.timeouts.connectMs", self.connect_ms),
            ("reliability.timeouts.firstByteMs", self.first_byte_ms),
            ("reliability.timeouts.idleMs", self.idle_ms),
        ];
        if self.total_ms < 1 {
            return Err(ConfigError::new(
                "reliability.timeouts.totalMs",
                "must be ≥ 1 (got 0)",
            ));
        }
        for (field, value) in phases {
            if value < 1 {
                return Err(ConfigError::new(field, "must be ≥ 1 (got 0)"));
            }
            if value > self.total_ms {
                return Err(ConfigError::new(
                    field,
                    format!("must be ≤ totalMs ({}) (got {value})", self.total_ms),
                ));
            }
        }
        Ok(())
    }

    /// Connect limit as a `Duration`.
    pub fn connect(&self) -> Duration {
        Duration::from_millis(self.connect_ms)
    }

    /// First-byte limit as a `Duration`.
    pub fn first_byte(&self) -> Duration {
        Duration::from_millis(self.first_byte_ms)
    }

    /// Idle (between chunks) limit as a `Duration`.
    pub fn idle(&self) -> Duration {
        Duration::from_millis(self.idle_ms)
    }

    /// Whole-request limit as a `Duration`.
    pub fn total(&self) -> Duration {
        Duration::from_millis(self.total_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let t = Timeouts::default();
        assert!(t.validate().is_ok());
        assert_eq!(t.connect(), Duration::from_secs(10));
        assert_eq!(t.first_byte(), Duration::from_secs(120));
        assert_eq!(t.idle(), Duration::from_secs(120));
        assert_eq!(t.total(), Duration::from_secs(900));
    }

    #[test]
    fn validation_names_fields() {
        let d = Timeouts::default;
        let e = Timeouts {
            connect_ms: 0,
            ..d()
        }
        .validate()
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "reliability.timeouts.connectMs must be ≥ 1 (got 0)"
        );
        let e = Timeouts {
            idle_ms: 1_000_000,
            ..d()
        }
        .validate()
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "reliability.timeouts.idleMs must be ≤ totalMs (900000) (got 1000000)"
        );
        assert_eq!(
            Timeouts { total_ms: 0, ..d() }
                .validate()
                .unwrap_err()
                .field,
            "reliability.timeouts.totalMs"
        );
        assert_eq!(
            Timeouts {
                first_byte_ms: 0,
                ..d()
            }
            .validate()
            .unwrap_err()
            .field,
            "reliability.timeouts.firstByteMs"
        );
    }
}
