//! Watches one agent's router events: records last activity, notices an exhausted budget, and with
//! `onBudgetExhausted: 'stop'` asks the supervisor to stop the agent, saying why.

use super::spec::BudgetAction;
use super::supervised::{StopRequest, SupervisedAgent};
use crate::events::{RouterEvent, Subscription};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Run until `cancel` fires (the agent finished).
pub(crate) async fn watch_router(
    agent: Arc<SupervisedAgent>,
    mut events: Subscription,
    cancel: CancellationToken,
) {
    loop {
        let event = tokio::select! {
            _ = cancel.cancelled() => return,
            e = events.recv() => match e {
                Some(e) => e,
                None => return,
            },
        };
        match &**event {
            RouterEvent::Request { ts_ms, .. } | RouterEvent::Response { ts_ms, .. } => {
                agent.state().last_activity_ms = Some(*ts_ms);
            }
            RouterEvent::Budget { level, .. } if level == "exceeded" => on_exhausted(&agent),
            RouterEvent::Blocked { reason, ts_ms, .. } if reason == "budget" => {
                agent.state().last_activity_ms = Some(*ts_ms);
                on_exhausted(&agent);
            }
            _ => {}
        }
    }
}

fn on_exhausted(agent: &SupervisedAgent) {
    let first = {
        let mut s = agent.state();
        let first = !s.budget_exhausted;
        s.budget_exhausted = true;
        first && !s.stop_requested
    };
    if !first || agent.spec.on_budget_exhausted != BudgetAction::Stop {
        return;
    }
    let b = agent.budget_status();
    let limit = b
        .limit_micros
        .map(|l| format!("${:.6}", l as f64 / 1e6))
        .unwrap_or_else(|| "none".into());
    let reason = format!(
        "budget exhausted: ${:.6} spent of {limit} (onBudgetExhausted: 'stop'); raise budgetUsd to let it run longer",
        b.spent_micros as f64 / 1e6
    );
    agent.request_stop(StopRequest {
        grace: agent.spec.grace,
        reason,
    });
}
