//! One circuit breaker per (provider, upstream host), created on first use.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use crate::breaker::{
    BreakerListener, BreakerSnapshot, CircuitBreaker, Permit, Rejected, Transition,
};
use crate::breaker_config::BreakerConfig;
use crate::clock::Clock;
use crate::error::ConfigError;

/// Told of every transition of every breaker as (provider, host, transition); must be quick and not panic.
pub type RegistryListener = Arc<dyn Fn(&str, &str, &Transition) + Send + Sync>;

type Breakers = HashMap<String, HashMap<String, CircuitBreaker>>;

/// Lazily created breakers sharing one config, clock and listener.
pub struct BreakerRegistry {
    config: BreakerConfig,
    clock: Arc<dyn Clock>,
    listener: Option<RegistryListener>,
    // Nested maps so the hot lookup by `&str` needs no key allocation.
    breakers: RwLock<Breakers>,
}

impl std::fmt::Debug for BreakerRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BreakerRegistry")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl BreakerRegistry {
    /// A registry without a listener; fails on an invalid config.
    pub fn new(config: BreakerConfig, clock: Arc<dyn Clock>) -> Result<Self, ConfigError> {
        Self::build(config, clock, None)
    }

    /// A registry that reports every breaker's transitions to `listener`.
    pub fn with_listener(
        config: BreakerConfig,
        clock: Arc<dyn Clock>,
        listener: RegistryListener,
    ) -> Result<Self, ConfigError> {
        Self::build(config, clock, Some(listener))
    }

    fn build(
        config: BreakerConfig,
        clock: Arc<dyn Clock>,
        listener: Option<RegistryListener>,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self {
            config,
            clock,
            listener,
            breakers: RwLock::new(HashMap::new()),
        })
    }

    /// The breaker for (provider, host), created closed on first use.
    pub fn breaker(&self, provider: &str, host: &str) -> CircuitBreaker {
        {
            let map = self.breakers.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(b) = map.get(provider).and_then(|hosts| hosts.get(host)) {
                return b.clone();
            }
        }
        let mut map = self
            .breakers
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let hosts = map.entry(provider.to_string()).or_default();
        if let Some(b) = hosts.get(host) {
            return b.clone(); // another thread created it meanwhile
        }
        let b = self.create(provider, host);
        hosts.insert(host.to_string(), b.clone());
        b
    }

    fn create(&self, provider: &str, host: &str) -> CircuitBreaker {
        let listener = self.listener.as_ref().map(|outer| {
            let outer = Arc::clone(outer);
            let (provider, host) = (provider.to_string(), host.to_string());
            let inner: BreakerListener = Arc::new(move |t: &Transition| outer(&provider, &host, t));
            inner
        });
        CircuitBreaker::from_valid(self.config.clone(), Arc::clone(&self.clock), listener)
    }

    /// Shorthand for `breaker(provider, host).try_acquire()`.
    pub fn try_acquire(&self, provider: &str, host: &str) -> Result<Permit, Rejected> {
        self.breaker(provider, host).try_acquire()
    }

    /// Snapshots of every breaker created so far, sorted by (provider, host).
    pub fn snapshots(&self) -> Vec<(String, String, BreakerSnapshot)> {
        let breakers: Vec<(String, String, CircuitBreaker)> = {
            let map = self.breakers.read().unwrap_or_else(PoisonError::into_inner);
            map.iter()
                .flat_map(|(p, hosts)| {
                    hosts
                        .iter()
                        .map(move |(h, b)| (p.clone(), h.clone(), b.clone()))
                })
                .collect()
        };
        let mut out: Vec<_> = breakers
            .into_iter()
            .map(|(p, h, b)| (p, h, b.snapshot()))
            .collect();
        out.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        out
    }

    /// The configuration every breaker in this registry uses.
    pub fn config(&self) -> &BreakerConfig {
        &self.config
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::breaker::BreakerState;
    use crate::clock::ManualClock;
    use crate::outcome::Outcome;

    #[test]
    fn breakers_are_per_provider_and_host_and_report_their_key() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&seen);
        let listener: RegistryListener = Arc::new(move |p: &str, h: &str, t: &Transition| {
            sink.lock()
                .unwrap()
                .push(format!("{p}|{h}|{}|{}", t.to, t.reason))
        });
        let reg = BreakerRegistry::with_listener(
            BreakerConfig::default(),
            Arc::new(ManualClock::new(0)),
            listener,
        )
        .unwrap();
        for _ in 0..5 {
            reg.try_acquire("openai", "api.openai.com")
                .unwrap()
                .record(Outcome::Failure);
        }
        assert!(reg.try_acquire("openai", "api.openai.com").is_err());
        assert!(reg.try_acquire("openai", "proxy.internal").is_ok());
        assert!(reg.try_acquire("anthropic", "api.openai.com").is_ok());
        assert_eq!(
            *seen.lock().unwrap(),
            ["openai|api.openai.com|open|5 consecutive failures"]
        );
        let snaps = reg.snapshots();
        let keys: Vec<_> = snaps
            .iter()
            .map(|(p, h, s)| (p.as_str(), h.as_str(), s.state))
            .collect();
        assert_eq!(
            keys,
            [
                ("anthropic", "api.openai.com", BreakerState::Closed),
                ("openai", "api.openai.com", BreakerState::Open),
                ("openai", "proxy.internal", BreakerState::Closed),
            ]
        );
    }

    #[test]
    fn same_key_returns_the_same_breaker() {
        let reg =
            BreakerRegistry::new(BreakerConfig::default(), Arc::new(ManualClock::new(0))).unwrap();
        reg.breaker("p", "h")
            .try_acquire()
            .unwrap()
            .record(Outcome::Failure);
        assert_eq!(reg.breaker("p", "h").snapshot().consecutive_failures, 1);
    }

    #[test]
    fn invalid_config_is_refused() {
        let c = BreakerConfig {
            half_open_probes: 0,
            ..Default::default()
        };
        let e = BreakerRegistry::new(c, Arc::new(ManualClock::new(0))).unwrap_err();
        assert_eq!(e.field, "reliability.breaker.halfOpenProbes");
    }
}
