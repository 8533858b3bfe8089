//! The one error type of this crate: an invalid configuration value.

use std::fmt;

/// A configuration value that cannot be used; `field` is the full JSON path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Full path of the offending field, e.g. `reliability.breaker.windowSize`.
    pub field: String,
    /// What is wrong and what is accepted, e.g. `must be ≥ 1 (got 0)`.
    pub reason: String,
}

impl ConfigError {
    pub(crate) fn new(field: &str, reason: impl Into<String>) -> Self {
        Self {
            field: field.to_string(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.field, self.reason)
    }
}

impl std::error::Error for ConfigError {}
