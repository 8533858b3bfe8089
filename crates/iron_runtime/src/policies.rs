//! The policy objects one router holds, built once from its options.

use crate::config::{ConfigError, RouterConfig};
use crate::cost_policy::CostPolicy;
use crate::events::{now_ms, EventBus, RouterEvent};
use crate::ledger::Ledger;
use crate::logging::Logging;
use crate::safety_policy::SafetyPolicy;
use crate::server::StartError;
use iron_reliability::{
    BreakerRegistry, ReliabilityConfig, RetryPolicy, SystemClock, ThrottleTracker,
};
use std::sync::Arc;
use std::time::Duration;

/// Upstream timeouts.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    pub connect: Duration,
    pub first_byte: Duration,
    pub idle: Duration,
    pub total: Duration,
}

/// Breakers, retries and the 429 tracker.
pub struct Reliability {
    pub breakers: BreakerRegistry,
    pub retry: RetryPolicy,
    pub throttle: ThrottleTracker,
}

/// Everything policy-related for one router.
pub struct Policies {
    pub timeouts: Timeouts,
    pub cost: CostPolicy,
    pub safety: SafetyPolicy,
    pub reliability: Reliability,
    pub ledger: Arc<Ledger>,
    pub logging: Logging,
}

fn reliability_err(e: iron_reliability::ConfigError) -> ConfigError {
    let field = e.field.clone();
    ConfigError {
        field,
        message: e.reason,
    }
}

impl Policies {
    /// Build from the validated config.
    pub fn from_config(cfg: &RouterConfig, events: &EventBus) -> Result<Policies, StartError> {
        let raw = &cfg.raw;
        let cost = CostPolicy::from_options(
            raw.budget_usd,
            raw.budget_warning_percent,
            raw.pricing.as_ref(),
            raw.unknown_model.as_ref(),
            raw.unmetered_calls.as_deref(),
            events.clone(),
        )?;
        let mut cost = cost;
        cost.set_project_tier(raw.openai_project_service_tier.as_deref())?;
        let safety = SafetyPolicy::from_option(raw.safety.as_ref())?;
        let rel = match &raw.reliability {
            Some(v) => ReliabilityConfig::from_value(v.clone()).map_err(reliability_err)?,
            None => ReliabilityConfig::default(),
        };
        let t = &rel.timeouts;
        let timeouts = Timeouts {
            connect: t.connect(),
            first_byte: t.first_byte(),
            idle: t.idle(),
            total: t.total(),
        };
        let clock: Arc<dyn iron_reliability::Clock> = Arc::new(SystemClock::new());
        let bus = events.clone();
        let listener: iron_reliability::RegistryListener = Arc::new(move |provider, host, tr| {
            tracing::warn!(target: "iron_cage", provider, host, state = tr.to.as_str(), reason = %tr.reason, "circuit breaker changed state");
            bus.emit(RouterEvent::Circuit {
                ts_ms: now_ms(),
                provider: provider.to_string(),
                host: host.to_string(),
                state: tr.to.as_str().to_string(),
                reason: tr.reason.clone(),
            });
        });
        let breakers = BreakerRegistry::with_listener(rel.breaker.clone(), clock.clone(), listener)
            .map_err(reliability_err)?;
        let reliability = Reliability {
            breakers,
            retry: rel.retry.clone(),
            throttle: ThrottleTracker::new(clock),
        };
        let ledger = Arc::new(Ledger::open(
            raw.state_path.as_deref(),
            raw.agent_id.as_deref(),
            raw.flush_interval_ms,
            raw.strict_persistence.unwrap_or(false),
        )?);
        let restored = ledger.restored_spent()?;
        if restored > 0 {
            let crossed = cost.ledger.add_spent(restored);
            cost.report(crossed);
        }
        let audit = ledger.clone();
        events.set_audit_hook(Arc::new(move |e| audit.audit(e)));
        let mut secrets: Vec<&str> = vec![&cfg.ic_token, &cfg.client_token];
        if let crate::config::KeySource::Static { key, .. } = &cfg.key_source {
            secrets.push(key);
        }
        let logging = Logging::from_options(
            raw.log_level.as_deref(),
            raw.log_format.as_deref(),
            raw.log_sink.as_deref() != Some("callback"),
            &secrets,
        )?;
        Ok(Policies {
            timeouts,
            cost,
            safety,
            reliability,
            ledger,
            logging,
        })
    }

    /// Flush and release what the policies hold: the state store is committed and closed (its
    /// writer thread joined, the file closed), then the agent's lock released.
    pub async fn shutdown(&self) {
        self.shutdown_charging_left_holds(false).await;
    }

    /// As [`Policies::shutdown`]; with `charge_left`, the holds of calls still in flight are
    /// charged in the state file once it is closed (before the agent's lock goes). True when some
    /// were charged.
    pub async fn shutdown_charging_left_holds(&self, charge_left: bool) -> bool {
        self.ledger.close().await;
        let charged = charge_left && self.ledger.charge_left_holds().await;
        self.ledger.release();
        tracing::info!(target: "iron_cage", "router stopped");
        self.logging.close();
        charged
    }
}
