//! When and how long to wait before retrying an upstream call.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::ConfigError;
use crate::retry_after::MAX_HONOURED_RETRY_AFTER;

/// Largest accepted `maxRetries`; more only multiplies load on a struggling provider.
const MAX_RETRIES_LIMIT: u32 = 10;

/// How the random part of a backoff is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Jitter {
    /// Uniform in `[0, backoff)`: spreads retries most.
    #[default]
    Full,
    /// Uniform in `[backoff/2, backoff)`: keeps a minimum wait.
    Equal,
}

/// Retry budget and backoff (`reliability.retry` in the JSON config).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct RetryPolicy {
    /// Retries after the first attempt; 0 disables retrying.
    pub max_retries: u32,
    /// Backoff before the first retry, doubled for each later one.
    pub base_ms: u64,
    /// Cap on one backoff.
    pub max_backoff_ms: u64,
    /// Cap on the time from the first attempt to the start of the last retry.
    pub max_total_ms: u64,
    /// Jitter mode (`"full"` or `"equal"`).
    pub jitter: Jitter,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 2,
            base_ms: 250,
            max_backoff_ms: 8_000,
            max_total_ms: 30_000,
            jitter: Jitter::Full,
        }
    }
}

impl RetryPolicy {
    /// Checks every field; the error names the first bad one by its JSON path.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_retries > MAX_RETRIES_LIMIT {
            return Err(ConfigError::new(
                "reliability.retry.maxRetries",
                format!("must be ≤ {MAX_RETRIES_LIMIT} (got {})", self.max_retries),
            ));
        }
        if self.base_ms < 1 {
            return Err(ConfigError::new(
                "reliability.retry.baseMs",
                "must be ≥ 1 (got 0)",
            ));
        }
        if self.max_backoff_ms < self.base_ms {
            return Err(ConfigError::new(
                "reliability.retry.maxBackoffMs",
                format!(
                    "must be ≥ baseMs ({}) (got {})",
                    self.base_ms, self.max_backoff_ms
                ),
            ));
        }
        if self.max_total_ms < 1 {
            return Err(ConfigError::new(
                "reliability.retry.maxTotalMs",
                "must be ≥ 1 (got 0)",
            ));
        }
        Ok(())
    }

    /// Delay before retry number `attempt + 1` (`attempt` = retries already made), or `None` to give up.
    ///
    /// A server `retry_after` replaces the backoff (capped at 60 s); if waiting it out would pass
    /// `max_total_ms` since the first attempt (`elapsed`), this returns `None`. `rng` yields values in `[0, 1)`.
    pub fn next_delay(
        &self,
        attempt: u32,
        retry_after: Option<Duration>,
        elapsed: Duration,
        rng: &mut impl FnMut() -> f64,
    ) -> Option<Duration> {
        if attempt >= self.max_retries {
            return None;
        }
        let delay = match retry_after {
            Some(wait) => wait.min(MAX_HONOURED_RETRY_AFTER),
            None => self.backoff(attempt, rng()),
        };
        let budget = Duration::from_millis(self.max_total_ms);
        (elapsed.saturating_add(delay) <= budget).then_some(delay)
    }

    /// Jittered exponential backoff: `min(max_backoff, base · 2^attempt)` scaled by `r`.
    fn backoff(&self, attempt: u32, r: f64) -> Duration {
        let ceiling = 1u64
            .checked_shl(attempt)
            .and_then(|factor| self.base_ms.checked_mul(factor))
            .unwrap_or(u64::MAX)
            .min(self.max_backoff_ms);
        let r = if r.is_finite() {
            r.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let ceiling = ceiling as f64;
        let ms = match self.jitter {
            Jitter::Full => ceiling * r,
            Jitter::Equal => ceiling / 2.0 + ceiling / 2.0 * r,
        };
        Duration::from_millis(ms as u64)
    }
}

/// Whether an upstream status is worth retrying: 500, 502, 503, 504 and 529 (not 501, not 4xx).
pub fn is_retryable_status(status: u16) -> bool {
    matches!(status, 500 | 502 | 503 | 504 | 529)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixed(r: f64) -> impl FnMut() -> f64 {
        move || r
    }

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn full_jitter_backoff_doubles_and_caps() {
        let p = RetryPolicy {
            max_retries: 10,
            max_total_ms: 1_000_000,
            ..Default::default()
        };
        let d = |attempt, r| p.next_delay(attempt, None, Duration::ZERO, &mut fixed(r));
        assert_eq!(d(0, 0.5), Some(ms(125)));
        assert_eq!(d(1, 0.5), Some(ms(250)));
        assert_eq!(d(2, 1.0), Some(ms(1_000)));
        // 250 · 2^6 = 16 000 is capped at 8 000.
        assert_eq!(d(6, 0.5), Some(ms(4_000)));
        assert_eq!(d(9, 0.0), Some(ms(0)));
        // Out-of-range randomness is clamped rather than trusted.
        assert_eq!(d(0, 7.0), Some(ms(250)));
        assert_eq!(d(0, f64::NAN), Some(ms(0)));
    }

    #[test]
    fn equal_jitter_keeps_half_the_backoff() {
        let p = RetryPolicy {
            jitter: Jitter::Equal,
            ..Default::default()
        };
        assert_eq!(
            p.next_delay(0, None, Duration::ZERO, &mut fixed(0.0)),
            Some(ms(125))
        );
        assert_eq!(
            p.next_delay(1, None, Duration::ZERO, &mut fixed(0.5)),
            Some(ms(375))
        );
    }

    #[test]
    fn attempts_are_bounded_and_zero_disables() {
        let p = RetryPolicy::default();
        assert!(p
            .next_delay(1, None, Duration::ZERO, &mut fixed(0.5))
            .is_some());
        assert_eq!(p.next_delay(2, None, Duration::ZERO, &mut fixed(0.5)), None);
        let off = RetryPolicy {
            max_retries: 0,
            ..Default::default()
        };
        assert_eq!(
            off.next_delay(0, None, Duration::ZERO, &mut fixed(0.5)),
            None
        );
    }

    #[test]
    fn retry_after_is_honoured_and_capped_at_sixty_seconds() {
        let p = RetryPolicy {
            max_total_ms: 120_000,
            ..Default::default()
        };
        let mut never = || -> f64 { panic!("rng must not be used when the server gave a wait") };
        assert_eq!(
            p.next_delay(0, Some(ms(3_000)), Duration::ZERO, &mut never),
            Some(ms(3_000))
        );
        assert_eq!(
            p.next_delay(
                0,
                Some(Duration::from_secs(600)),
                Duration::ZERO,
                &mut never
            ),
            Some(Duration::from_secs(60))
        );
    }

    #[test]
    fn total_time_budget_stops_retries() {
        let p = RetryPolicy::default(); // 30 s budget
                                        // 29.9 s spent + 3 s requested wait exceeds the budget.
        assert_eq!(
            p.next_delay(0, Some(ms(3_000)), ms(29_900), &mut fixed(0.5)),
            None
        );
        assert_eq!(
            p.next_delay(0, Some(ms(3_000)), ms(27_000), &mut fixed(0.5)),
            Some(ms(3_000))
        );
        assert_eq!(p.next_delay(1, None, ms(29_800), &mut fixed(0.5)), None);
        assert_eq!(
            p.next_delay(1, None, ms(29_750), &mut fixed(0.5)),
            Some(ms(250))
        );
    }

    #[test]
    fn retryable_statuses() {
        for s in [500, 502, 503, 504, 529] {
            assert!(is_retryable_status(s), "{s}");
        }
        for s in [501, 505, 400, 401, 404, 408, 409, 429, 200] {
            assert!(!is_retryable_status(s), "{s}");
        }
    }

    #[test]
    fn validation_names_fields() {
        let d = RetryPolicy::default;
        assert!(d().validate().is_ok());
        let e = RetryPolicy { base_ms: 0, ..d() }.validate().unwrap_err();
        assert_eq!(
            e.to_string(),
            "reliability.retry.baseMs must be ≥ 1 (got 0)"
        );
        let e = RetryPolicy {
            max_backoff_ms: 100,
            ..d()
        }
        .validate()
        .unwrap_err();
        assert_eq!(e.field, "reliability.retry.maxBackoffMs");
        assert_eq!(
            RetryPolicy {
                max_retries: 11,
                ..d()
            }
            .validate()
            .unwrap_err()
            .field,
            "reliability.retry.maxRetries"
        );
        assert_eq!(
            RetryPolicy {
                max_total_ms: 0,
                ..d()
            }
            .validate()
            .unwrap_err()
            .field,
            "reliability.retry.maxTotalMs"
        );
    }
}
