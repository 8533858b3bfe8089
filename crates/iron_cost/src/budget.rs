//! The budget ledger: reserve a worst-case cost before a call, settle to the real cost after.
//!
//! One process is the source of truth, so a tiny `Mutex` suffices; it is only held for a few
//! integer operations and never across an await (this is sync code).

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

/// Default percentage of the limit at which a `Warning` is raised.
pub const DEFAULT_WARNING_PERCENT: u8 = 80;

/// A snapshot of the ledger, all amounts in micro-USD.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetStatus {
    /// Settled spend.
    pub spent: u64,
    /// Held by reservations of calls in flight.
    pub reserved: u64,
    /// The limit, or `None` for unlimited.
    pub limit: Option<u64>,
}

/// A threshold crossed by settled spend; each is reported once per crossing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BudgetThreshold {
    /// Spend reached the warning percentage of the limit.
    Warning {
        /// Spend after the crossing, micro-USD.
        spent: u64,
        /// The limit, micro-USD.
        limit: u64,
    },
    /// The budget is exhausted: spend reached the limit, or it refuses calls with nothing else
    /// holding it (see [`BudgetLedger::refused`]).
    Exceeded {
        /// Spend after the crossing, micro-USD.
        spent: u64,
        /// The limit, micro-USD.
        limit: u64,
    },
}

/// A reservation was refused because it would not fit in the remaining budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetDenied {
    /// Settled spend, micro-USD.
    pub spent: u64,
    /// Held by calls in flight, micro-USD.
    pub reserved: u64,
    /// The limit, micro-USD.
    pub limit: u64,
    /// The worst-case cost of the refused call, micro-USD.
    pub requested: u64,
}

impl fmt::Display for BudgetDenied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let left = self
            .limit
            .saturating_sub(self.spent.saturating_add(self.reserved));
        write!(
            f,
            "budget {} would be exceeded: {} spent, {} reserved by requests in flight, {} left, \
             this request may cost up to {} (its whole output limit, and its input counted at one \
             token per byte up to the model's context window); raise the budget (budgetUsd; --budget for iron-cage run) or lower max_tokens",
            format_usd(self.limit),
            format_usd(self.spent),
            format_usd(self.reserved),
            format_usd(left),
            format_usd(self.requested)
        )?;
        if self.reserved > 0 && self.spent.saturating_add(self.requested) <= self.limit {
            write!(f, ", or retry when the requests in flight have settled")?;
        }
        Ok(())
    }
}

impl std::error::Error for BudgetDenied {}

/// Formats micro-USD as dollars with at least 2 and at most 6 decimals (`$4.98`, `$0.000160`).
pub fn format_usd(micros: u64) -> String {
    let frac = format!("{:06}", micros % 1_000_000);
    let trimmed = frac.trim_end_matches('0');
    let decimals = if trimmed.len() < 2 {
        &frac[..2]
    } else {
        trimmed
    };
    format!("${}.{}", micros / 1_000_000, decimals)
}

#[derive(Debug)]
struct LedgerState {
    spent: u64,
    reserved: u64,
    limit: Option<u64>,
    warning_percent: u8,
    warned: bool,
    /// The limit the budget became exhausted at (`None`: not exhausted). A new limit re-arms
    /// `Exceeded` only above both it and spent: below it, calls are refused as before.
    exhausted_at: Option<u64>,
    /// Refusals since a call was last let through, counted while nothing else held budget.
    refused_in_a_row: u32,
    /// The holds were charged at close (see [`BudgetLedger::close_charging_holds`]): the
    /// reservations still out change nothing any more.
    closed: bool,
}

/// Refusals in a row, with nothing else holding budget and no call let through in between, that
/// make the budget exhausted.
pub const REFUSALS_IN_A_ROW: u32 = 3;

impl LedgerState {
    fn warn_reached(&self, limit: u64) -> bool {
        u128::from(self.spent) * 100 >= u128::from(limit) * u128::from(self.warning_percent)
    }

    /// Thresholds newly reached by the current spend; marks them reported.
    fn crossings(&mut self) -> Vec<BudgetThreshold> {
        let mut out = Vec::new();
        let Some(limit) = self.limit else { return out };
        if !self.warned && self.warn_reached(limit) {
            self.warned = true;
            out.push(BudgetThreshold::Warning {
                spent: self.spent,
                limit,
            });
        }
        if self.exhausted_at.is_none() && self.spent >= limit {
            self.exhausted_at = Some(limit);
            out.push(BudgetThreshold::Exceeded {
                spent: self.spent,
                limit,
            });
        }
        out
    }
}

/// Thread-safe spend ledger with atomic reserve-then-settle; clones share one ledger.
#[derive(Debug, Clone)]
pub struct BudgetLedger {
    state: Arc<Mutex<LedgerState>>,
}

impl BudgetLedger {
    /// A ledger with nothing spent and `limit` micro-USD (`None`: unlimited, still tracked).
    pub fn new(limit: Option<u64>) -> BudgetLedger {
        let state = LedgerState {
            spent: 0,
            reserved: 0,
            limit,
            warning_percent: DEFAULT_WARNING_PERCENT,
            warned: false,
            exhausted_at: None,
            refused_in_a_row: 0,
            closed: false,
        };
        BudgetLedger {
            state: Arc::new(Mutex::new(state)),
        }
    }

    /// Sets the warning percentage (clamped to 1..=100).
    pub fn set_warning_percent(&self, percent: u8) {
        self.lock().warning_percent = percent.clamp(1, 100);
    }

    /// Holds `amount` micro-USD if `spent + reserved + amount <= limit`, checked and applied in
    /// one critical section so concurrent calls can never overshoot together.
    pub fn reserve(&self, amount: u64) -> Result<Reservation, BudgetDenied> {
        let mut s = self.lock();
        if let Some(limit) = s.limit {
            let committed = u128::from(s.spent) + u128::from(s.reserved);
            if committed + u128::from(amount) > u128::from(limit) {
                return Err(BudgetDenied {
                    spent: s.spent,
                    reserved: s.reserved,
                    limit,
                    requested: amount,
                });
            }
        }
        s.reserved = s.reserved.saturating_add(amount);
        s.refused_in_a_row = 0;
        drop(s);
        Ok(Reservation {
            state: Arc::clone(&self.state),
            amount,
            settled: false,
        })
    }

    /// Current spent / reserved / limit, read atomically.
    pub fn status(&self) -> BudgetStatus {
        let s = self.lock();
        BudgetStatus {
            spent: s.spent,
            reserved: s.reserved,
            limit: s.limit,
        }
    }

    /// Changes the limit. Thresholds no longer reached are re-armed: the warning when spent is
    /// under its share of the new limit, an exhaustion when the new limit is above both spent and
    /// the limit it was exhausted at (or removed). Those the current spend reaches under the new
    /// limit and not yet reported are returned (once per crossing).
    pub fn set_limit(&self, limit: Option<u64>) -> Vec<BudgetThreshold> {
        let mut s = self.lock();
        s.limit = limit;
        s.refused_in_a_row = 0;
        if let Some(l) = limit {
            s.warned = s.warned && s.warn_reached(l);
            // Exhausted by refusals with spent under the limit, it stays so until the limit goes
            // past the one it was exhausted at: a smaller raise (after lowering it) lets no more
            // calls through than before, so the next refusal is the same crossing.
            let spent = s.spent;
            s.exhausted_at = s.exhausted_at.filter(|&at| spent >= l || l <= at);
        } else {
            s.warned = false;
            s.exhausted_at = None;
        }
        s.crossings()
    }

    /// Records that a call was refused for the budget; returns `Exceeded` (once per crossing) when
    /// that makes the budget exhausted: nothing else holds budget (holds of calls in flight may
    /// come back), and what is left is less than `cheapest` (the smallest call the refused call's
    /// model can make; `None` when unknown), or this is the [`REFUSALS_IN_A_ROW`]th refusal with
    /// no call let through in between.
    pub fn refused(&self, cheapest: Option<u64>) -> Vec<BudgetThreshold> {
        let mut s = self.lock();
        let Some(limit) = s.limit else {
            return Vec::new();
        };
        if s.reserved > 0 {
            s.refused_in_a_row = 0;
            return Vec::new();
        }
        s.refused_in_a_row = s.refused_in_a_row.saturating_add(1);
        let left = limit.saturating_sub(s.spent);
        let exhausted = s.spent >= limit
            || cheapest.is_some_and(|min| left < min)
            || s.refused_in_a_row >= REFUSALS_IN_A_ROW;
        if !exhausted || s.exhausted_at.is_some() {
            return Vec::new();
        }
        s.exhausted_at = Some(limit);
        vec![BudgetThreshold::Exceeded {
            spent: s.spent,
            limit,
        }]
    }

    /// The owner stops waiting for the calls that hold budget: their holds become spent now, and
    /// those reservations settling or dropped later change nothing. Returns the micro-USD charged.
    pub fn close_charging_holds(&self) -> u64 {
        let mut s = self.lock();
        let held = s.reserved;
        s.spent = s.spent.saturating_add(held);
        s.reserved = 0;
        s.closed = true;
        held
    }

    /// Whether the budget counts as exhausted now (see [`BudgetThreshold::Exceeded`]).
    pub fn is_exhausted(&self) -> bool {
        self.lock().exhausted_at.is_some()
    }

    /// Adds spend settled outside a reservation (e.g. restored after a restart).
    pub fn add_spent(&self, amount: u64) -> Vec<BudgetThreshold> {
        let mut s = self.lock();
        s.spent = s.spent.saturating_add(amount);
        s.crossings()
    }

    fn lock(&self) -> MutexGuard<'_, LedgerState> {
        lock(&self.state)
    }
}

/// Budget held for one call in flight; dropping it unsettled releases it (an aborted request
/// can never leak a reservation).
#[derive(Debug)]
#[must_use = "a reservation is released as soon as it is dropped"]
pub struct Reservation {
    state: Arc<Mutex<LedgerState>>,
    amount: u64,
    settled: bool,
}

impl Reservation {
    /// The micro-USD held.
    pub fn amount(&self) -> u64 {
        self.amount
    }

    /// Releases the hold and records `actual` micro-USD as spent (it may exceed the hold when an
    /// estimate was low). Returns thresholds this spend crossed.
    pub fn commit(mut self, actual: u64) -> Vec<BudgetThreshold> {
        self.settled = true;
        let mut s = lock(&self.state);
        if s.closed {
            return Vec::new();
        }
        s.reserved = s.reserved.saturating_sub(self.amount);
        s.spent = s.spent.saturating_add(actual);
        s.crossings()
    }

    /// Releases the hold without spending anything.
    pub fn cancel(mut self) {
        self.release();
    }

    fn release(&mut self) {
        if !self.settled {
            self.settled = true;
            let mut s = lock(&self.state);
            if s.closed {
                return;
            }
            s.reserved = s.reserved.saturating_sub(self.amount);
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.release();
    }
}

/// The state is plain integers updated without panicking code, so a poisoned lock still holds
/// consistent values and is safe to reuse.
fn lock(state: &Mutex<LedgerState>) -> MutexGuard<'_, LedgerState> {
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
#[path = "budget_tests.rs"]
mod tests;
