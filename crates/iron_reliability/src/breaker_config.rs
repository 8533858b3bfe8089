//! Circuit-breaker settings (`reliability.breaker` in the JSON config).

use serde::{Deserialize, Serialize};

use crate::error::ConfigError;

/// Largest accepted window; bounds the per-breaker ring buffer whatever the config says.
const MAX_WINDOW_SIZE: u32 = 10_000;
/// Largest accepted number of concurrent half-open probes.
const MAX_HALF_OPEN_PROBES: u32 = 1_000;

/// When a breaker opens and how long it stays open.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct BreakerConfig {
    /// `false` turns the breaker off: every call is admitted and nothing is counted.
    pub enabled: bool,
    /// Failure rate in percent (0 < x ≤ 100) at or above which the breaker opens.
    pub failure_rate_threshold: f64,
    /// Number of most recent calls the failure rate is computed over (count-based sliding window).
    pub window_size: u32,
    /// Calls needed in the window before the rate can open the breaker (capped at `window_size`).
    pub minimum_calls: u32,
    /// Consecutive failures that open the breaker regardless of the rate.
    pub consecutive_failures: u32,
    /// How long the breaker stays open after its first trip.
    pub open_ms: u64,
    /// Cap on the open time, which doubles on each consecutive failed half-open probe round.
    pub max_open_ms: u64,
    /// Probe calls admitted in half-open; all must succeed to close.
    pub half_open_probes: u32,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            failure_rate_threshold: 50.0,
            window_size: 20,
            minimum_calls: 10,
            consecutive_failures: 5,
            open_ms: 30_000,
            max_open_ms: 300_000,
            half_open_probes: 3,
        }
    }
}

impl BreakerConfig {
    /// Checks every field; the error names the first bad one by its JSON path.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let t = self.failure_rate_threshold;
        if !(t.is_finite() && t > 0.0 && t <= 100.0) {
            return Err(ConfigError::new(
                "reliability.breaker.failureRateThreshold",
                format!("must be a percentage > 0 and ≤ 100 (got {t})"),
            ));
        }
        if self.window_size < 1 || self.window_size > MAX_WINDOW_SIZE {
            return Err(ConfigError::new(
                "reliability.breaker.windowSize",
                format!(
                    "must be ≥ 1 and ≤ {MAX_WINDOW_SIZE} (got {})",
                    self.window_size
                ),
            ));
        }
        if self.minimum_calls < 1 {
            return Err(ConfigError::new(
                "reliability.breaker.minimumCalls",
                "must be ≥ 1 (got 0)",
            ));
        }
        if self.consecutive_failures < 1 {
            return Err(ConfigError::new(
                "reliability.breaker.consecutiveFailures",
                "must be ≥ 1 (got 0)",
            ));
        }
        if self.open_ms < 1 {
            return Err(ConfigError::new(
                "reliability.breaker.openMs",
                "must be ≥ 1 (got 0)",
            ));
        }
        if self.max_open_ms < self.open_ms {
            return Err(ConfigError::new(
                "reliability.breaker.maxOpenMs",
                format!(
                    "must be ≥ openMs ({}) (got {})",
                    self.open_ms, self.max_open_ms
                ),
            ));
        }
        if self.half_open_probes < 1 || self.half_open_probes > MAX_HALF_OPEN_PROBES {
            return Err(ConfigError::new(
                "reliability.breaker.halfOpenProbes",
                format!(
                    "must be ≥ 1 and ≤ {MAX_HALF_OPEN_PROBES} (got {})",
                    self.half_open_probes
                ),
            ));
        }
        Ok(())
    }

    /// Minimum calls actually applied: a count window can never hold more than `window_size`.
    pub(crate) fn effective_minimum_calls(&self) -> u32 {
        self.minimum_calls.min(self.window_size)
    }

    /// Open time after `level` consecutive failed half-open rounds: `open_ms · 2^level`, capped.
    pub(crate) fn open_duration_ms(&self, level: u32) -> u64 {
        let grown = 1u64
            .checked_shl(level)
            .and_then(|factor| self.open_ms.checked_mul(factor))
            .unwrap_or(u64::MAX);
        grown.min(self.max_open_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err_of(c: BreakerConfig) -> String {
        c.validate().unwrap_err().to_string()
    }

    #[test]
    fn defaults_are_valid_and_documented_values() {
        let c = BreakerConfig::default();
        assert!(c.validate().is_ok());
        assert_eq!(c.failure_rate_threshold, 50.0);
        assert_eq!(
            (c.window_size, c.minimum_calls, c.consecutive_failures),
            (20, 10, 5)
        );
        assert_eq!(
            (c.open_ms, c.max_open_ms, c.half_open_probes),
            (30_000, 300_000, 3)
        );
        assert!(c.enabled);
    }

    #[test]
    fn each_invalid_field_is_named() {
        let d = BreakerConfig::default;
        assert_eq!(
            err_of(BreakerConfig {
                window_size: 0,
                ..d()
            }),
            "reliability.breaker.windowSize must be ≥ 1 and ≤ 10000 (got 0)"
        );
        for t in [0.0, -1.0, 100.5, f64::NAN, f64::INFINITY] {
            let e = err_of(BreakerConfig {
                failure_rate_threshold: t,
                ..d()
            });
            assert!(
                e.starts_with("reliability.breaker.failureRateThreshold "),
                "{e}"
            );
        }
        assert!(err_of(BreakerConfig {
            minimum_calls: 0,
            ..d()
        })
        .starts_with("reliability.breaker.minimumCalls "));
        assert!(err_of(BreakerConfig {
            consecutive_failures: 0,
            ..d()
        })
        .starts_with("reliability.breaker.consecutiveFailures "));
        assert!(
            err_of(BreakerConfig { open_ms: 0, ..d() }).starts_with("reliability.breaker.openMs ")
        );
        assert_eq!(
            err_of(BreakerConfig {
                max_open_ms: 1_000,
                ..d()
            }),
            "reliability.breaker.maxOpenMs must be ≥ openMs (30000) (got 1000)"
        );
        assert!(err_of(BreakerConfig {
            half_open_probes: 0,
            ..d()
        })
        .starts_with("reliability.breaker.halfOpenProbes "));
        assert!(BreakerConfig {
            failure_rate_threshold: 100.0,
            ..d()
        }
        .validate()
        .is_ok());
    }

    #[test]
    fn open_duration_doubles_and_caps() {
        let c = BreakerConfig::default();
        assert_eq!(c.open_duration_ms(0), 30_000);
        assert_eq!(c.open_duration_ms(1), 60_000);
        assert_eq!(c.open_duration_ms(3), 240_000);
        assert_eq!(c.open_duration_ms(4), 300_000);
        assert_eq!(c.open_duration_ms(200), 300_000);
        let huge = BreakerConfig {
            open_ms: u64::MAX / 2,
            max_open_ms: u64::MAX,
            ..c
        };
        assert_eq!(huge.open_duration_ms(2), u64::MAX);
    }

    #[test]
    fn minimum_calls_is_capped_at_window() {
        let c = BreakerConfig {
            window_size: 5,
            minimum_calls: 10,
            ..Default::default()
        };
        assert_eq!(c.effective_minimum_calls(), 5);
    }
}
