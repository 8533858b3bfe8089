//! The router's audit trail and ledger read back from the SQLite file with the state crate's own reader:
//! key fetches, PII detections and budget thresholds are audited even with no event subscriber, as
//! summaries only (no key, token or prompt text), and each forwarded or refused call is one ledger row.

mod common;

use common::*;
use iron_runtime_state::{Store, StoreConfig};
use serde_json::{json, Value};
use std::path::PathBuf;

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let p = std::env::temp_dir().join(format!("iron-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&p).expect("temp dir");
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const PROMPT_EMAIL: &str = "please write to jane.doe@example.com today";

#[tokio::test]
async fn audit_trail_holds_key_pii_and_budget_summaries_without_secrets_or_text() {
    bounded(20, async {
        let dir = TempDir::new("audit");
        let db = dir.0.join("state.db");
        // gpt-4o-mini, 5 prompt + 1 completion tokens: 5 × 0.15 + 1 × 0.60 = 1.35 µ$, rounded up to 2.
        let up = FakeProvider::json(chat_completion()).await;
        let ks = FakeKeyServer::with_key(OPENAI_KEY, Some("openai"), &up.url()).await;
        let router = start_router(
            &ks,
            json!({ "statePath": db.to_string_lossy(), "agentId": "audit-agent", "budgetUsd": 1,
                    "safety": { "request": { "email": "redact" } } }),
        );
        router.ready().await.expect("key fetched");
        let body = json!({ "model": "gpt-4o-mini", "max_tokens": 5,
                           "messages": [{ "role": "user", "content": PROMPT_EMAIL }] });
        let (status, _, _) = status_json(post(&router, "/v1/chat/completions", &body).await).await;
        assert_eq!(status, 200);
        // The prompt reached the provider redacted.
        assert!(!String::from_utf8_lossy(&up.only().body).contains("jane.doe"));
        // 2 µ$ spent against a new 1 µ$ limit: warning and exceeded.
        router.set_budget_usd(Some(0.000_001)).expect("set budget");
        let plain = json!({ "model": "gpt-4o-mini", "max_tokens": 5,
                            "messages": [{ "role": "user", "content": "hello" }] });
        let (status, _, _) = status_json(post(&router, "/v1/chat/completions", &plain).await).await;
        assert_eq!(status, 402);
        router.stop().await;

        let store = Store::open(StoreConfig::at_path(&db)).expect("reopen");
        // Newest first from the reader; put them in the order they happened.
        let mut audit = store.audit_events(100).expect("audit rows");
        audit.reverse();
        let mut kinds: Vec<&str> = audit.iter().map(|a| a.kind.as_str()).collect();
        kinds.sort_unstable();
        assert_eq!(
            kinds,
            [
                "budget_threshold",
                "budget_threshold",
                "key_fetch",
                "pii_detected"
            ]
        );
        for a in &audit {
            assert_eq!(a.agent_id, "audit-agent");
            for secret in [IC, OPENAI_KEY, "jane.doe", "example.com", "please write"] {
                assert!(!a.detail_json.contains(secret), "{} holds {secret}", a.kind);
            }
        }
        let pii: Value = audit
            .iter()
            .find(|a| a.kind == "pii_detected")
            .map(|a| serde_json::from_str(&a.detail_json).expect("json"))
            .expect("pii row");
        assert_eq!(pii["direction"], "request");
        assert_eq!(pii["detections"][0]["kind"], "email");
        assert_eq!(pii["detections"][0]["count"], 1);
        assert_eq!(pii["detections"][0]["action"], "redact");
        // SHA-256 of the value, 64 hex digits: recognisable without being readable.
        let digest = pii["detections"][0]["sha256"][0].as_str().expect("digest");
        assert_eq!(digest.len(), 64);
        let levels: Vec<String> = audit
            .iter()
            .filter(|a| a.kind == "budget_threshold")
            .map(|a| {
                let v: Value = serde_json::from_str(&a.detail_json).expect("json");
                v["level"].as_str().unwrap_or("").to_string()
            })
            .collect();
        assert_eq!(levels, ["warning", "exceeded"]);
        let key: Value = audit
            .iter()
            .find(|a| a.kind == "key_fetch")
            .map(|a| serde_json::from_str(&a.detail_json).expect("json"))
            .expect("key row");
        assert_eq!(key["action"], "fetched");
        assert_eq!(key["provider"], "openai");

        let rows = store.requests_for_agent("audit-agent").expect("rows");
        assert_eq!(rows.len(), 2);
        let (ok, refused) = (&rows[0], &rows[1]);
        assert_eq!(
            (ok.status, ok.input_tokens, ok.output_tokens, ok.cost_micros),
            (200, 5, 1, 2)
        );
        assert_eq!(ok.model, "gpt-4o-mini");
        assert_eq!(ok.blocked_reason, None);
        assert_eq!(
            (
                refused.status,
                refused.cost_micros,
                refused.blocked_reason.as_deref()
            ),
            (402, 0, Some("budget"))
        );
        assert_eq!(store.spent_for_agent("audit-agent").expect("spent"), 2);
    })
    .await;
}

#[tokio::test]
async fn without_state_path_the_ledger_lives_in_memory_and_nothing_is_restored() {
    bounded(20, async {
        let up = FakeProvider::json(chat_completion()).await;
        let ks = FakeKeyServer::with_key(OPENAI_KEY, Some("openai"), &up.url()).await;
        let router = start_router(&ks, json!({ "agentId": "mem-agent" }));
        router.ready().await.expect("key fetched");
        assert_eq!(router.total_spent_micros(), 0);
        let (status, _, _) =
            status_json(post(&router, "/v1/chat/completions", &chat_body("gpt-4o-mini")).await)
                .await;
        assert_eq!(status, 200);
        let store = router.shared().policies.ledger.store.clone();
        store.flush().expect("flush");
        let rows = store.requests_for_agent("mem-agent").expect("rows");
        assert_eq!(rows.len(), 1);
        assert_eq!((rows[0].input_tokens, rows[0].output_tokens), (5, 1));
        router.stop().await;
        // A second in-memory router with the same agentId starts from nothing.
        let again = start_router(&ks, json!({ "agentId": "mem-agent" }));
        again.ready().await.expect("key fetched");
        assert_eq!(again.total_spent_micros(), 0);
        again.stop().await;
    })
    .await;
}

/// Two routers restoring the same agent's spent from one state file would each enforce the whole
/// budget (a review spent $1.996 on $1 this way): the second is refused while the first runs, and
/// starts once it stopped.
#[tokio::test]
async fn one_agent_budget_has_one_router_at_a_time() {
    bounded(20, async {
        let dir = TempDir::new("owner");
        let db = dir.0.join("state.db");
        let up = FakeProvider::json(chat_completion()).await;
        let ks = FakeKeyServer::with_key(OPENAI_KEY, Some("openai"), &up.url()).await;
        let opts = json!({ "apiKey": IC, "serverUrl": ks.url(), "statePath": db.to_string_lossy(),
                           "agentId": "shared-agent", "budgetUsd": 1 });
        let first = iron_runtime::Router::start_json(&opts.to_string()).expect("first starts");
        let err = iron_runtime::Router::start_json(&opts.to_string())
            .err()
            .expect("a second router for the same agent is refused");
        let text = err.to_string();
        assert!(text.contains("agentId"), "{text}");
        assert!(text.contains("in use by another router"), "{text}");
        assert!(
            text.contains(&std::process::id().to_string()),
            "names the owner: {text}"
        );
        // Another agent in the same file is fine.
        let mut other = opts.clone();
        other["agentId"] = json!("other-agent");
        let neighbour = iron_runtime::Router::start_json(&other.to_string()).expect("other agent");
        first.stop().await;
        let second =
            iron_runtime::Router::start_json(&opts.to_string()).expect("starts after stop");
        second.stop().await;
        neighbour.stop().await;
    })
    .await;
}
