//! Parsing of `retry-after` (delta-seconds or HTTP-date) and `retry-after-ms` headers.

use std::time::{Duration, SystemTime};

/// Longest server-requested wait the retry policy honours (openai-node ignores values above this).
pub const MAX_HONOURED_RETRY_AFTER: Duration = Duration::from_secs(60);

/// No valid header value is longer; longer input is rejected before any parsing.
const MAX_HEADER_LEN: usize = 64;

/// Parses `retry-after`: delta-seconds (a fractional value is tolerated) or an HTTP-date relative to `now`.
///
/// A date in the past yields zero. Negative, non-numeric or malformed values yield `None`.
pub fn parse_retry_after(header: &str, now: SystemTime) -> Option<Duration> {
    let value = header.trim();
    if value.is_empty() || value.len() > MAX_HEADER_LEN {
        return None;
    }
    if value.as_bytes()[0].is_ascii_digit() {
        return Duration::try_from_secs_f64(parse_non_negative(value)?).ok();
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Parses `retry-after-ms`: a non-negative number of milliseconds.
pub fn parse_retry_after_ms(header: &str) -> Option<Duration> {
    let value = header.trim();
    if value.is_empty() || value.len() > MAX_HEADER_LEN {
        return None;
    }
    Duration::try_from_secs_f64(parse_non_negative(value)? / 1_000.0).ok()
}

/// The server's requested wait: `retry-after-ms` when valid, else `retry-after` (the SDKs' order).
pub fn retry_after_from_headers(
    retry_after_ms: Option<&str>,
    retry_after: Option<&str>,
    now: SystemTime,
) -> Option<Duration> {
    retry_after_ms
        .and_then(parse_retry_after_ms)
        .or_else(|| retry_after.and_then(|v| parse_retry_after(v, now)))
}

/// Plain decimal digits with at most one dot; rejects signs, exponents, `inf` and `NaN`.
fn parse_non_negative(value: &str) -> Option<f64> {
    let mut dots = 0;
    for b in value.bytes() {
        match b {
            b'0'..=b'9' => {}
            b'.' => dots += 1,
            _ => return None,
        }
    }
    if dots > 1 || value.starts_with('.') || value.ends_with('.') {
        return None;
    }
    value.parse::<f64>().ok().filter(|v| v.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(unix_secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(unix_secs)
    }

    // Sun, 06 Nov 1994 08:49:37 GMT is the RFC 7231 example date.
    const RFC_EXAMPLE_UNIX: u64 = 784_111_777;

    #[test]
    fn delta_seconds() {
        let now = at(0);
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after("  0 ", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("1.5", now),
            Some(Duration::from_millis(1_500))
        );
        for bad in [
            "-1", "+3", "1e3", "abc", "", "1.2.3", "5.", "NaN", "inf", "3 s",
        ] {
            assert_eq!(parse_retry_after(bad, now), None, "{bad:?}");
        }
        assert_eq!(parse_retry_after(&"9".repeat(10_000), now), None);
    }

    #[test]
    fn http_date_forms() {
        let now = at(RFC_EXAMPLE_UNIX - 30);
        let want = Some(Duration::from_secs(30));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now),
            want
        );
        assert_eq!(
            parse_retry_after("Sunday, 06-Nov-94 08:49:37 GMT", now),
            want
        );
        assert_eq!(parse_retry_after("Sun Nov  6 08:49:37 1994", now), want);
        // A date already past means "retry now".
        let later = at(RFC_EXAMPLE_UNIX + 10);
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", later),
            Some(Duration::ZERO)
        );
        for bad in [
            "Sun, 32 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994",
            "Ünïcödé, 06 Nov 1994 08:49:37 GMT",
        ] {
            assert_eq!(parse_retry_after(bad, now), None, "{bad:?}");
        }
    }

    #[test]
    fn milliseconds_header_and_preference() {
        assert_eq!(
            parse_retry_after_ms("250"),
            Some(Duration::from_millis(250))
        );
        assert_eq!(
            parse_retry_after_ms("0.5"),
            Some(Duration::from_micros(500))
        );
        assert_eq!(parse_retry_after_ms("-5"), None);
        let now = at(0);
        assert_eq!(
            retry_after_from_headers(Some("1500"), Some("9"), now),
            Some(Duration::from_millis(1_500))
        );
        assert_eq!(
            retry_after_from_headers(Some("soon"), Some("9"), now),
            Some(Duration::from_secs(9))
        );
        assert_eq!(retry_after_from_headers(None, None, now), None);
    }
}
