//! iron_reliability: circuit breakers, retry and timeout policy for the LLM router.
//!
//! Everything here is synchronous and non-blocking: locks are held only for a few
//! field updates, so the async router can call it directly from its tasks.
//!
//! ```
//! use std::sync::Arc;
//! use iron_reliability::{classify_status, BreakerRegistry, ConfigError, ManualClock, ReliabilityConfig};
//!
//! let config = ReliabilityConfig::from_json(r#"{"breaker":{"consecutiveFailures":2}}"#)?;
//! let clock = ManualClock::new(0);
//! let breakers = BreakerRegistry::new(config.breaker.clone(), Arc::new(clock.clone()))?;
//! for _ in 0..2 {
//!     let permit = breakers.try_acquire("anthropic", "api.anthropic.com").expect("closed");
//!     permit.record(classify_status(529)); // overloaded counts as a failure
//! }
//! let rejected = breakers.try_acquire("anthropic", "api.anthropic.com").unwrap_err();
//! assert_eq!(rejected.retry_after_secs(), 30); // for the `retry-after` header of the 503/529
//! # Ok::<(), ConfigError>(())
//! ```

mod breaker;
mod breaker_config;
mod breaker_machine;
mod clock;
mod config;
mod error;
mod outcome;
mod registry;
mod retry;
mod retry_after;
mod throttle;
mod timeouts;
mod window;

pub use breaker::{
    BreakerListener, BreakerSnapshot, BreakerState, CircuitBreaker, Permit, Rejected, Transition,
};
pub use breaker_config::BreakerConfig;
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::ReliabilityConfig;
pub use error::ConfigError;
pub use outcome::{classify_status, Outcome};
pub use registry::{BreakerRegistry, RegistryListener};
pub use retry::{is_retryable_status, Jitter, RetryPolicy};
pub use retry_after::{
    parse_retry_after, parse_retry_after_ms, retry_after_from_headers, MAX_HONOURED_RETRY_AFTER,
};
pub use throttle::ThrottleTracker;
pub use timeouts::Timeouts;
