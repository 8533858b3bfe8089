//! What a finished upstream call means for the breaker.

/// How one call counts towards a circuit breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The provider served the call; counts as a success.
    Success,
    /// The provider failed (5xx, 529, connect error, timeout, in-stream error event).
    Failure,
    /// Says nothing about provider health (client error, client abort, 429); releases a probe slot.
    Ignored,
}

/// Classifies an upstream HTTP status: 5xx/529 fail, 4xx (incl. 429) are ignored, 1xx–3xx succeed.
///
/// 429 is ignored here because rate limits are per key and tracked by `ThrottleTracker`;
/// connection errors, timeouts and mid-stream error events are recorded as `Failure` by the router.
pub fn classify_status(status: u16) -> Outcome {
    match status {
        500..=599 => Outcome::Failure,
        400..=499 => Outcome::Ignored,
        100..=399 => Outcome::Success,
        // Not a valid HTTP status: the upstream is misbehaving.
        _ => Outcome::Failure,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_breaker_outcomes() {
        for s in [500, 502, 503, 504, 529, 501, 599] {
            assert_eq!(classify_status(s), Outcome::Failure, "{s}");
        }
        for s in [429, 400, 401, 403, 404, 408, 413, 422, 499] {
            assert_eq!(classify_status(s), Outcome::Ignored, "{s}");
        }
        for s in [200, 201, 204, 301, 304] {
            assert_eq!(classify_status(s), Outcome::Success, "{s}");
        }
        assert_eq!(classify_status(0), Outcome::Failure);
        assert_eq!(classify_status(999), Outcome::Failure);
    }
}
