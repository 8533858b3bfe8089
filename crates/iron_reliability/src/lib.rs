//! iron_reliability: circuit breakers, retry and timeout policy for the LLM router.
//!
//! Everything here is synchronous and non-blocking: locks are held only for a few
//! field updates, so the async router can call it directly from its tasks.

mod breaker;
mod breaker_config;
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
