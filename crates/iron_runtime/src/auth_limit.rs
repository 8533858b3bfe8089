//! Failed-authentication rate limit per connection source. Only failures count, so an agent with
//! the right token is never slowed down; a local process guessing tokens gets 429 after a burst.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const WINDOW: Duration = Duration::from_secs(10);
const MAX_FAILURES: u32 = 20;
const MAX_SOURCES: usize = 4096;

/// Failure counts per source address in a fixed window.
#[derive(Default)]
pub struct AuthLimiter {
    failures: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

/// The key failures from `ip` count under: every loopback address is one source, since a local
/// process can connect from any of 127.0.0.0/8 and would get a fresh allowance from each.
fn source(ip: IpAddr) -> IpAddr {
    if ip.is_loopback() {
        IpAddr::from([127, 0, 0, 1])
    } else {
        ip
    }
}

impl AuthLimiter {
    /// Seconds to wait when `ip` is over the limit now, without counting a failure.
    pub fn limited(&self, ip: IpAddr) -> Option<u64> {
        let now = Instant::now();
        let map = self.failures.lock().ok()?;
        let (start, failures) = *map.get(&source(ip))?;
        let elapsed = now.duration_since(start);
        (elapsed < WINDOW && failures > MAX_FAILURES)
            .then(|| WINDOW.saturating_sub(elapsed).as_secs().max(1))
    }

    /// Record a failure from `ip`; returns seconds to wait when the source is over the limit.
    pub fn on_failure(&self, ip: IpAddr) -> Option<u64> {
        let ip = source(ip);
        let now = Instant::now();
        let Ok(mut map) = self.failures.lock() else {
            return None;
        };
        if map.len() >= MAX_SOURCES {
            map.retain(|_, (start, _)| now.duration_since(*start) < WINDOW);
        }
        let entry = map.entry(ip).or_insert((now, 0));
        if now.duration_since(entry.0) >= WINDOW {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
        if entry.1 > MAX_FAILURES {
            let left = WINDOW.saturating_sub(now.duration_since(entry.0));
            return Some(left.as_secs().max(1));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_after_a_burst_of_failures() {
        let l = AuthLimiter::default();
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        for _ in 0..MAX_FAILURES {
            assert!(l.on_failure(ip).is_none());
        }
        let wait = l.on_failure(ip).expect("limited");
        assert!((1..=10).contains(&wait));
        assert_eq!(l.limited(ip), Some(wait));
        // Another loopback address is the same machine: no fresh allowance.
        let other: IpAddr = "127.0.0.2".parse().unwrap();
        assert!(l.on_failure(other).is_some());
        assert!(l.limited("::1".parse().unwrap()).is_some());
        // Another host's failures are its own.
        let remote: IpAddr = "10.0.0.2".parse().unwrap();
        assert!(l.on_failure(remote).is_none());
        assert!(l.limited(remote).is_none());
    }
}
