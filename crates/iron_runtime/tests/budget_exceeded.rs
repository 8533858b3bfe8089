//! The budget's `exceeded` level fires when the budget starts refusing calls for good (the holds
//! keep spent from ever reaching the limit), once per crossing.

mod common;

use common::*;
use iron_runtime::RouterEvent;
use serde_json::json;

fn levels(sub: &mut iron_runtime::events::Subscription) -> Vec<(String, String)> {
    let mut out = Vec::new();
    while let Some(e) = sub.try_recv() {
        match &**e {
            RouterEvent::Budget { level, .. } => out.push(("budget".into(), level.clone())),
            RouterEvent::Blocked { code, .. } => out.push(("blocked".into(), code.clone())),
            _ => {}
        }
    }
    out
}

/// A router with a $0.0001 budget over a provider whose every call costs $0.000018 and more (30
/// output tokens of gpt-4o-mini), held at up to $0.000075.
async fn router_with_a_hundredth_of_a_cent() -> (FakeProvider, FakeKeyServer, iron_runtime::Router)
{
    let mut answer = chat_completion();
    answer["usage"] = json!({ "prompt_tokens": 5, "completion_tokens": 30, "total_tokens": 35 });
    let up = FakeProvider::json(answer).await;
    let ks = FakeKeyServer::with_key(OPENAI_KEY, Some("openai"), &up.url()).await;
    let router = start_router(&ks, json!({ "budgetUsd": 0.0001 }));
    router.ready().await.expect("key");
    (up, ks, router)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exceeded_fires_once_when_calls_are_refused_with_less_left_than_the_cheapest_call() {
    bounded(20, async {
        let (_up, _ks, router) = router_with_a_hundredth_of_a_cent().await;
        let mut sub = router.events().subscribe();
        let body = json!({ "model": "gpt-4o-mini", "max_tokens": 100,
                           "messages": [{ "role": "user", "content": "hi" }] });
        let mut statuses = Vec::new();
        for _ in 0..40 {
            let resp = post(&router, "/v1/chat/completions", &body).await;
            statuses.push(resp.status().as_u16());
            let _ = resp.text().await;
            if statuses.iter().filter(|s| **s == 402).count() >= 4 {
                break;
            }
        }
        assert!(
            statuses.contains(&200) && statuses.ends_with(&[402, 402, 402, 402]),
            "{statuses:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let seen = levels(&mut sub);
        let exceeded: Vec<usize> = seen
            .iter()
            .enumerate()
            .filter(|(_, e)| e.1 == "exceeded")
            .map(|(i, _)| i)
            .collect();
        assert_eq!(exceeded.len(), 1, "one exceeded per crossing: {seen:?}");
        // At the first refusal that exhausts it (less left than a max_tokens: 1 call of the same
        // model, or the third refusal in a row), before that refusal's blocked event.
        let first_blocked = seen.iter().position(|e| e.0 == "blocked").expect("blocked");
        assert!(exceeded[0] < first_blocked + 3 * 2, "{seen:?}");
        assert_eq!(
            seen[exceeded[0] + 1],
            ("blocked".to_string(), "BUDGET_EXCEEDED".to_string()),
            "{seen:?}"
        );
        let status = router.budget_status();
        assert!(
            status.spent_micros < status.limit_micros.unwrap_or(0),
            "spent stays under the limit"
        );

        // Raising the budget re-arms it: no event now, another crossing later.
        router.set_budget_usd(Some(1.0)).expect("budget");
        assert_eq!(
            post(&router, "/v1/chat/completions", &body)
                .await
                .status()
                .as_u16(),
            200
        );
        assert!(levels(&mut sub).iter().all(|e| e.1 != "exceeded"));
        router.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_call_refused_with_budget_left_is_not_exhaustion() {
    bounded(20, async {
        let up = FakeProvider::json(chat_completion()).await;
        let ks = FakeKeyServer::with_key(OPENAI_KEY, Some("openai"), &up.url()).await;
        let router = start_router(&ks, json!({ "budgetUsd": 0.01 }));
        router.ready().await.expect("key");
        let mut sub = router.events().subscribe();
        let big = json!({ "model": "gpt-4o", "max_tokens": 100000,
                          "messages": [{ "role": "user", "content": "hi" }] });
        assert_eq!(
            post(&router, "/v1/chat/completions", &big)
                .await
                .status()
                .as_u16(),
            402
        );
        let small = json!({ "model": "gpt-4o", "max_tokens": 10,
                            "messages": [{ "role": "user", "content": "hi" }] });
        assert_eq!(
            post(&router, "/v1/chat/completions", &small)
                .await
                .status()
                .as_u16(),
            200
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let seen = levels(&mut sub);
        assert!(seen.iter().all(|e| e.1 != "exceeded"), "{seen:?}");
        router.stop().await;
    })
    .await;
}

/// Calls until four in a row are refused for the budget; the statuses seen.
async fn spend_until_refused(router: &iron_runtime::Router, body: &serde_json::Value) -> Vec<u16> {
    let mut statuses = Vec::new();
    for _ in 0..60 {
        let resp = post(router, "/v1/chat/completions", body).await;
        statuses.push(resp.status().as_u16());
        let _ = resp.text().await;
        if statuses.ends_with(&[402, 402, 402, 402]) {
            break;
        }
    }
    statuses
}

fn count(seen: &[(String, String)], level: &str) -> usize {
    seen.iter()
        .filter(|e| e.0 == "budget" && e.1 == level)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_new_exhaustion_after_a_raise_fires_exceeded_once() {
    bounded(30, async {
        let (_up, _ks, router) = router_with_a_hundredth_of_a_cent().await;
        let mut sub = router.events().subscribe();
        let body = json!({ "model": "gpt-4o-mini", "max_tokens": 100,
                           "messages": [{ "role": "user", "content": "hi" }] });
        let settle = || tokio::time::sleep(std::time::Duration::from_millis(50));

        let statuses = spend_until_refused(&router, &body).await;
        assert!(statuses.ends_with(&[402; 4]), "{statuses:?}");
        settle().await;
        let seen = levels(&mut sub);
        assert_eq!(count(&seen, "exceeded"), 1, "{seen:?}");

        // Raised: calls flow until the new limit refuses them; exceeded again, once.
        router.set_budget_usd(Some(0.0003)).expect("budget");
        let statuses = spend_until_refused(&router, &body).await;
        assert_eq!(statuses[0], 200, "{statuses:?}");
        assert!(statuses.ends_with(&[402; 4]), "{statuses:?}");
        settle().await;
        let seen = levels(&mut sub);
        assert_eq!(count(&seen, "exceeded"), 1, "{seen:?}");

        // Raised, a call, then lowered below what was spent: a new crossing, reported at once.
        router.set_budget_usd(Some(1.0)).expect("budget");
        let resp = post(&router, "/v1/chat/completions", &body).await;
        assert_eq!(resp.status().as_u16(), 200);
        let _ = resp.text().await;
        settle().await;
        assert!(levels(&mut sub).is_empty());
        let spent = router.budget_status().spent_micros;
        router
            .set_budget_usd(Some(spent as f64 / 2e6))
            .expect("budget");
        let seen = levels(&mut sub);
        assert_eq!(
            (count(&seen, "warning"), count(&seen, "exceeded")),
            (1, 1),
            "{seen:?}"
        );

        // Lowered further, or refused again: the same crossing, no second event.
        router
            .set_budget_usd(Some(spent as f64 / 4e6))
            .expect("budget");
        let resp = post(&router, "/v1/chat/completions", &body).await;
        assert_eq!(resp.status().as_u16(), 402);
        let _ = resp.text().await;
        settle().await;
        let seen = levels(&mut sub);
        assert_eq!(count(&seen, "exceeded"), 0, "{seen:?}");
        router.stop().await;
    })
    .await;
}
