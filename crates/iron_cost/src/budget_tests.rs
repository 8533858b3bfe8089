use super::*;
use std::thread;

#[test]
fn reserve_admits_exactly_up_to_the_limit() {
    let ledger = BudgetLedger::new(Some(1_000));
    let a = ledger.reserve(600).expect("fits");
    let denied = ledger.reserve(401).expect_err("601 + 401 > 1000");
    assert_eq!(
        denied,
        BudgetDenied {
            spent: 0,
            reserved: 600,
            limit: 1_000,
            requested: 401
        }
    );
    let b = ledger.reserve(400).expect("600 + 400 == 1000 fits");
    assert_eq!(
        ledger.status(),
        BudgetStatus {
            spent: 0,
            reserved: 1_000,
            limit: Some(1_000)
        }
    );
    a.cancel();
    drop(b.commit(250));
    assert_eq!(
        ledger.status(),
        BudgetStatus {
            spent: 250,
            reserved: 0,
            limit: Some(1_000)
        }
    );
}

#[test]
fn dropping_an_unsettled_reservation_releases_it() {
    let ledger = BudgetLedger::new(Some(100));
    {
        let _held = ledger.reserve(100).expect("fits");
        assert!(ledger.reserve(1).is_err());
    }
    assert_eq!(ledger.status().reserved, 0);
    assert!(ledger.reserve(100).is_ok());
}

#[test]
fn unlimited_ledger_admits_and_tracks() {
    let ledger = BudgetLedger::new(None);
    let r = ledger.reserve(u64::MAX).expect("unlimited");
    assert_eq!(r.amount(), u64::MAX);
    assert!(r.commit(7).is_empty());
    assert_eq!(
        ledger.status(),
        BudgetStatus {
            spent: 7,
            reserved: 0,
            limit: None
        }
    );
}

#[test]
fn thresholds_fire_once_per_crossing() {
    let ledger = BudgetLedger::new(Some(1_000));
    assert!(ledger.reserve(700).expect("fits").commit(700).is_empty());
    assert_eq!(
        ledger.reserve(100).expect("fits").commit(100),
        vec![BudgetThreshold::Warning {
            spent: 800,
            limit: 1_000
        }]
    );
    assert!(ledger.reserve(100).expect("fits").commit(100).is_empty());
    // An estimate that was too low can push spend past the limit.
    assert_eq!(
        ledger.reserve(100).expect("fits").commit(150),
        vec![BudgetThreshold::Exceeded {
            spent: 1_050,
            limit: 1_000
        }]
    );
    assert!(ledger.add_spent(10).is_empty());
    // Raising the limit re-arms both; lowering it again reports them again.
    assert!(ledger.set_limit(Some(10_000)).is_empty());
    assert_eq!(
        ledger.set_limit(Some(1_000)),
        vec![
            BudgetThreshold::Warning {
                spent: 1_060,
                limit: 1_000
            },
            BudgetThreshold::Exceeded {
                spent: 1_060,
                limit: 1_000
            }
        ]
    );
}

#[test]
fn restored_spend_and_custom_warning_percent() {
    let ledger = BudgetLedger::new(Some(2_000_000));
    ledger.set_warning_percent(50);
    assert_eq!(
        ledger.add_spent(1_000_000),
        vec![BudgetThreshold::Warning {
            spent: 1_000_000,
            limit: 2_000_000
        }]
    );
    let err = ledger.reserve(1_500_000).expect_err("only $1 left");
    assert_eq!(err.spent, 1_000_000);
}

#[test]
fn denial_message_names_amounts_and_fix() {
    let e = BudgetDenied {
        spent: 4_980_000,
        reserved: 0,
        limit: 5_000_000,
        requested: 400_000,
    };
    assert_eq!(
        e.to_string(),
        "budget $5.00 would be exceeded: $4.98 spent, $0.00 reserved by requests in flight, $0.02 left, \
         this request may cost up to $0.40 (its whole output limit, and its input counted at one \
         token per byte up to the model's context window); raise the budget (budgetUsd; --budget for iron-cage run) or lower max_tokens"
    );
}

#[test]
fn usd_formatting_keeps_small_amounts_visible() {
    assert_eq!(format_usd(0), "$0.00");
    assert_eq!(format_usd(160), "$0.00016");
    assert_eq!(format_usd(1_234_567), "$1.234567");
    assert_eq!(format_usd(12_500_000), "$12.50");
}

#[test]
fn concurrent_reservations_never_overshoot_and_all_settle() {
    const LIMIT: u64 = 2_000_000;
    let ledger = BudgetLedger::new(Some(LIMIT));
    let workers: Vec<_> = (0..16u64)
        .map(|t| {
            let ledger = ledger.clone();
            thread::spawn(move || {
                let mut seed = t.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                let mut events = Vec::new();
                for i in 0..3_000u64 {
                    seed = seed
                        .wrapping_mul(6_364_136_223_846_793_005)
                        .wrapping_add(1_442_695_040_888_963_407);
                    let amount = 1 + (seed >> 33) % 5_000;
                    let status = ledger.status();
                    assert!(
                        status.spent + status.reserved <= LIMIT,
                        "overshoot: {status:?}"
                    );
                    let Ok(r) = ledger.reserve(amount) else {
                        continue;
                    };
                    match i % 3 {
                        0 => events.extend(r.commit(amount / 2)),
                        1 => r.cancel(),
                        _ => drop(r),
                    }
                }
                events
            })
        })
        .collect();
    let events: Vec<BudgetThreshold> = workers
        .into_iter()
        .flat_map(|w| w.join().expect("worker"))
        .collect();
    let status = ledger.status();
    assert_eq!(status.reserved, 0);
    assert!(status.spent <= LIMIT);
    let warnings = events
        .iter()
        .filter(|e| matches!(e, BudgetThreshold::Warning { .. }))
        .count();
    assert_eq!(warnings, 1, "the 80% warning is reported exactly once");
}

#[test]
fn refusals_exhaust_the_budget_once() {
    let ledger = BudgetLedger::new(Some(1_000));
    assert!(ledger.reserve(900).expect("fits").commit(900).len() == 1);
    // 100 left: a refused call whose model's cheapest call costs 50 is not exhaustion.
    assert!(ledger.reserve(200).is_err());
    assert!(ledger.refused(Some(50)).is_empty());
    // A call let through in between starts the count over.
    ledger.reserve(10).expect("fits").cancel();
    assert!(ledger.refused(Some(50)).is_empty());
    // With a call in flight the refusal says little.
    let held = ledger.reserve(60).expect("fits");
    assert!(ledger.refused(Some(50)).is_empty());
    drop(held);
    // Less left than the cheapest call: exhausted, once.
    let exceeded = vec![BudgetThreshold::Exceeded {
        spent: 900,
        limit: 1_000,
    }];
    assert_eq!(ledger.refused(Some(150)), exceeded);
    assert!(ledger.is_exhausted());
    assert!(ledger.refused(Some(150)).is_empty());
    // Lowering the limit keeps it exhausted; raising it re-arms.
    assert!(ledger.set_limit(Some(950)).is_empty());
    assert!(ledger.refused(Some(150)).is_empty());
    assert!(ledger.set_limit(Some(2_000)).is_empty());
    assert!(!ledger.is_exhausted());
    // Refusals in a row (the cheapest call unknown) exhaust it too.
    assert_eq!(
        ledger.set_limit(Some(1_000)),
        vec![BudgetThreshold::Warning {
            spent: 900,
            limit: 1_000
        }]
    );
    assert!(ledger.refused(None).is_empty());
    assert!(ledger.refused(None).is_empty());
    assert_eq!(ledger.refused(None), exceeded);
}

#[test]
fn closing_charges_the_holds_once() {
    let ledger = BudgetLedger::new(Some(1_000));
    let a = ledger.reserve(300).expect("fits");
    let b = ledger.reserve(200).expect("fits");
    ledger.reserve(100).expect("fits").commit(50);
    assert_eq!(ledger.close_charging_holds(), 500);
    // What settles later changes nothing: the holds were charged.
    assert!(a.commit(10).is_empty());
    drop(b);
    assert_eq!(
        ledger.status(),
        BudgetStatus {
            spent: 550,
            reserved: 0,
            limit: Some(1_000)
        }
    );
}

#[test]
fn a_raise_that_leaves_the_limit_below_where_it_was_exhausted_does_not_re_arm() {
    let ledger = BudgetLedger::new(Some(1_000));
    assert_eq!(ledger.reserve(900).expect("fits").commit(900).len(), 1);
    let at_1000 = vec![BudgetThreshold::Exceeded {
        spent: 900,
        limit: 1_000,
    }];
    assert_eq!(ledger.refused(Some(150)), at_1000);
    // Lowered, then raised back short of the limit it was exhausted at: it never stopped
    // refusing, so this is the same crossing.
    assert!(ledger.set_limit(Some(950)).is_empty());
    assert!(ledger.set_limit(Some(990)).is_empty());
    assert!(ledger.is_exhausted());
    assert!(ledger.refused(Some(150)).is_empty());
    // Raised past it: re-armed; a later exhaustion is a new crossing, reported once.
    assert!(ledger.set_limit(Some(1_010)).is_empty());
    assert!(!ledger.is_exhausted());
    let at_1010 = vec![BudgetThreshold::Exceeded {
        spent: 900,
        limit: 1_010,
    }];
    assert_eq!(ledger.refused(Some(150)), at_1010);
    assert!(ledger.refused(Some(150)).is_empty());
    // Raised so calls flow, spent grows, then lowered below spent: a new crossing at once.
    assert!(ledger.set_limit(Some(5_000)).is_empty());
    assert!(ledger
        .reserve(1_000)
        .expect("fits")
        .commit(1_000)
        .is_empty());
    assert_eq!(
        ledger.set_limit(Some(1_500)),
        vec![
            BudgetThreshold::Warning {
                spent: 1_900,
                limit: 1_500
            },
            BudgetThreshold::Exceeded {
                spent: 1_900,
                limit: 1_500
            }
        ]
    );
    assert!(ledger.set_limit(Some(1_000)).is_empty());
}
