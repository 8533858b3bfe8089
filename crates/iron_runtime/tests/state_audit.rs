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
        assert_eq!(err.code(), "AGENT_ID_IN_USE", "{text}");
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

/// Options of a static-key router on `up` keeping its state in `db`.
fn static_opts(up: &FakeProvider, db: &std::path::Path, extra: Value) -> String {
    let mut o = json!({ "providerKey": OPENAI_KEY, "providerBaseUrl": up.url(),
                        "statePath": db.to_string_lossy() });
    if let (Some(o), Some(e)) = (o.as_object_mut(), extra.as_object()) {
        o.extend(e.clone());
    }
    o.to_string()
}

/// POST a chat call with the router's own token (static-key routers mint one).
async fn chat(router: &iron_runtime::Router, model: &str) -> u16 {
    let auth = format!("Bearer {}", router.api_key());
    let resp = post_with(
        router,
        "/v1/chat/completions",
        chat_body(model).to_string(),
        &[("authorization", &auth)],
    )
    .await;
    status_json(resp).await.0
}

fn start_err(opts: &str) -> String {
    match iron_runtime::Router::start_json(opts) {
        Ok(_) => panic!("expected the router to refuse {opts}"),
        Err(e) => e.to_string(),
    }
}

/// A state file whose pages are damaged used to start with $0 restored (the read error was taken
/// for "nothing spent"), so the agent's budget started over. It is refused, naming the file, what
/// is wrong and the fix.
#[tokio::test]
async fn a_damaged_state_file_is_refused_not_restored_as_zero() {
    use std::io::{Seek, SeekFrom, Write};
    bounded(20, async {
        let dir = TempDir::new("damaged");
        let db = dir.0.join("state.db");
        {
            let store = Store::open(StoreConfig::at_path(&db)).expect("create");
            for n in 0..300u64 {
                store
                    .record_request(iron_runtime_state::RequestRow {
                        agent_id: "victim".into(),
                        request_id: n.to_string(),
                        model: "gpt-4o".into(),
                        status: 200,
                        cost_micros: 230,
                        ..Default::default()
                    })
                    .expect("row");
            }
            store.close().expect("close");
        }
        let up = FakeProvider::json(chat_completion()).await;
        let opts = static_opts(&up, &db, json!({ "agentId": "victim", "budgetUsd": 0.5 }));
        let router = iron_runtime::Router::start_json(&opts).expect("the intact file restores");
        assert_eq!(router.total_spent_micros(), 300 * 230);
        router.stop().await;
        // Every connection is closed, so the rows are in the file itself (the last connection to
        // close checkpoints the WAL). Pages 5 to 8 (of 4 KiB) overwritten, the header and the
        // schema intact.
        assert!(std::fs::metadata(&db).expect("size").len() > 8 * 4096);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(&db)
            .expect("open");
        f.seek(SeekFrom::Start(4 * 4096)).expect("seek");
        f.write_all(&[0xa5; 4 * 4096]).expect("damage");
        drop(f);

        let text = start_err(&opts);
        assert!(text.contains("invalid option statePath"), "{text}");
        assert!(text.contains("agent 'victim'"), "{text}");
        assert!(text.contains(&db.display().to_string()), "{text}");
        assert!(text.contains("is damaged"), "{text}");
        assert!(
            text.contains("restore it from a backup, or move it away"),
            "{text}"
        );
        assert!(text.contains("spent again at $0"), "{text}");
        // The refused router let the agent go: a fixed file starts at once.
        std::fs::remove_file(&db).expect("move the damaged file away");
        let _ = std::fs::remove_file(dir.0.join("state.db-wal"));
        let _ = std::fs::remove_file(dir.0.join("state.db-shm"));
        let fresh = iron_runtime::Router::start_json(&opts).expect("a new file starts");
        assert_eq!(fresh.total_spent_micros(), 0);
        fresh.stop().await;
    })
    .await;
}

/// statePath problems: a missing directory is created with or without agentId (with it, the lock
/// file used to be made before the directory and failed); a file that is not a database, a
/// directory and an empty path are refused naming `statePath`, the file and the fix.
#[tokio::test]
async fn state_path_problems_name_the_field_the_file_and_the_fix() {
    bounded(20, async {
        let dir = TempDir::new("statepath");
        let up = FakeProvider::json(chat_completion()).await;
        for (sub, extra) in [
            ("new1", json!({})),
            ("new2", json!({ "agentId": "a", "budgetUsd": 1 })),
        ] {
            let db = dir.0.join(sub).join("deeper").join("s.db");
            let router = iron_runtime::Router::start_json(&static_opts(&up, &db, extra))
                .expect("a missing directory is created");
            router.stop().await;
            assert!(db.is_file(), "{}", db.display());
        }

        let junk = dir.0.join("notes.db");
        std::fs::write(&junk, "not a database at all ".repeat(200)).expect("write");
        let text = start_err(&static_opts(&up, &junk, json!({ "agentId": "a" })));
        assert!(text.contains("invalid option statePath"), "{text}");
        assert!(text.contains(&junk.display().to_string()), "{text}");
        assert!(text.contains("is not a SQLite state file"), "{text}");
        assert!(text.contains("point statePath at another file"), "{text}");
        // No lock file was left next to a file that was refused.
        let locks = std::fs::read_dir(&dir.0)
            .expect("list")
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".lock"))
            .count();
        assert_eq!(locks, 0);

        let text = start_err(&static_opts(&up, &dir.0, json!({})));
        assert!(text.contains("invalid option statePath"), "{text}");
        assert!(text.contains("it is a directory"), "{text}");

        let text = start_err(&static_opts(&up, std::path::Path::new(""), json!({})));
        assert!(
            text.contains("invalid option statePath: is empty"),
            "{text}"
        );
        assert!(text.contains("leave statePath out"), "{text}");
    })
    .await;
}

fn lock_files(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("list")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".lock"))
        .collect();
    names.sort();
    names
}

/// Lock names used to map every other character to `_` and keep 64 characters, so `team/a` and
/// `team_a`, or two long ids with one beginning, shared a lock and the second was refused. Each id
/// has its own lock file, and the owner removes it when it stops.
#[tokio::test]
async fn each_agent_id_has_its_own_lock_file_removed_at_stop() {
    bounded(20, async {
        let dir = TempDir::new("locks");
        let db = dir.0.join("s.db");
        let up = FakeProvider::json(chat_completion()).await;
        let long = "x".repeat(64);
        let ids = [
            "team/a".to_string(),
            "team_a".to_string(),
            format!("{long}-1"),
            format!("{long}-2"),
        ];
        let mut routers = Vec::new();
        for id in &ids {
            let opts = static_opts(&up, &db, json!({ "agentId": id, "budgetUsd": 1 }));
            routers.push(
                iron_runtime::Router::start_json(&opts)
                    .unwrap_or_else(|e| panic!("agent '{id}' refused: {e}")),
            );
        }
        let names = lock_files(&dir.0);
        assert_eq!(names.len(), 4, "{names:?}");
        assert!(
            names.iter().any(|n| n.starts_with("s.db.team_a-")),
            "{names:?}"
        );
        // The same id is still refused.
        let text = start_err(&static_opts(&up, &db, json!({ "agentId": "team/a" })));
        assert!(text.contains("in use by another router"), "{text}");
        for r in &routers {
            r.stop().await;
        }
        assert_eq!(lock_files(&dir.0), Vec::<String>::new());
        // A refused router removes nothing: the owner's lock stays while it runs.
        let owner = iron_runtime::Router::start_json(&static_opts(
            &up,
            &db,
            json!({ "agentId": "team/a" }),
        ))
        .expect("starts after the stop");
        let _ = start_err(&static_opts(&up, &db, json!({ "agentId": "team/a" })));
        assert_eq!(lock_files(&dir.0).len(), 1);
        let again = iron_runtime::Router::start_json(&static_opts(
            &up,
            &db,
            json!({ "agentId": "team/a" }),
        ));
        assert!(again.is_err(), "still owned");
        owner.stop().await;
        assert_eq!(lock_files(&dir.0), Vec::<String>::new());
    })
    .await;
}

/// Requests without the router's token used to write a ledger row each (anyone on the machine can
/// send them, and a file store keeps every row). They cost no disk; stats count them.
#[tokio::test]
async fn requests_without_the_token_leave_no_ledger_row() {
    bounded(20, async {
        let dir = TempDir::new("unauth");
        let db = dir.0.join("s.db");
        let up = FakeProvider::json(chat_completion()).await;
        let router =
            iron_runtime::Router::start_json(&static_opts(&up, &db, json!({ "agentId": "a" })))
                .expect("starts");
        let url = format!("{}/chat/completions", router.base_url());
        let mut events = router.events().subscribe();
        let began = std::time::Instant::now();
        let mut statuses = Vec::new();
        // More than the 20 failures a source may make: the last ones are 429s.
        for _ in 0..30 {
            let resp = client()
                .post(&url)
                .bearer_auth("ic_wrong_token_0123456789")
                .header("content-type", "application/json")
                .body(chat_body("gpt-4o-mini").to_string())
                .send()
                .await
                .expect("send");
            statuses.push(resp.status().as_u16());
        }
        assert!(
            statuses.contains(&401) && statuses.contains(&429),
            "{statuses:?}"
        );
        // A refusal by a policy is still recorded.
        let (status, _, _) = status_json(
            client()
                .post(&url)
                .bearer_auth(router.api_key())
                .body("{not json")
                .header("content-type", "application/json")
                .send()
                .await
                .expect("send"),
        )
        .await;
        let snap = router.shared().stats_snapshot();
        assert_eq!(snap.blocked_by_reason.get("auth"), Some(&30));
        // Anyone on the machine can send them in a loop: their `blocked` events come at most once
        // a second, so they cannot crowd real events out.
        let seconds = began.elapsed().as_secs() as usize;
        let mut auth_events = 0;
        while let Some(ev) = events.try_recv() {
            if let iron_runtime::RouterEvent::Blocked { reason, .. } = &**ev {
                auth_events += usize::from(reason == "auth");
            }
        }
        assert!(
            auth_events >= 1 && auth_events <= seconds + 1 && auth_events < 30,
            "{auth_events} auth events in {seconds} s"
        );
        router.stop().await;

        let store = Store::open(StoreConfig::at_path(&db)).expect("reopen");
        let rows = store.requests_for_agent("a").expect("rows");
        assert!(
            rows.iter()
                .all(|r| r.blocked_reason.as_deref() != Some("auth")),
            "{rows:?}"
        );
        assert!(
            rows.len() <= 1,
            "{rows:?} (the one authenticated call, status {status})"
        );
    })
    .await;
}

#[cfg(target_os = "linux")]
fn open_fds_under(dir: &std::path::Path) -> Vec<PathBuf> {
    std::fs::read_dir("/proc/self/fd")
        .expect("fd dir")
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|target| target.starts_with(dir))
        .collect()
}

/// `stop()` used to flush and keep the store open (its writer thread and files) until the router
/// was dropped. It closes them, with the router still referenced.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn stop_closes_the_state_file() {
    bounded(20, async {
        let dir = TempDir::new("close");
        let db = dir.0.join("s.db");
        let up = FakeProvider::json(chat_completion()).await;
        let router = iron_runtime::Router::start_json(&static_opts(
            &up,
            &db,
            json!({ "agentId": "a", "budgetUsd": 1 }),
        ))
        .expect("starts");
        assert_eq!(chat(&router, "gpt-4o-mini").await, 200);
        assert!(!open_fds_under(&dir.0).is_empty(), "the file is open");
        router.stop().await;
        assert_eq!(open_fds_under(&dir.0), Vec::<PathBuf>::new());
        assert!(router.shared().policies.ledger.store.is_closed());
        // Stats still answer, and the row made it to the file.
        let ledger = router.shared().stats_snapshot().ledger;
        assert_eq!((ledger.pending, ledger.dropped, ledger.failed), (0, 0, 0));
        assert!(ledger.committed >= 1);
        router.stop().await;
        let store = Store::open(StoreConfig::at_path(&db)).expect("reopen");
        assert_eq!(store.requests_for_agent("a").expect("rows").len(), 1);
    })
    .await;
}

/// A call's ledger row replaces its hold on file: after normal calls no hold is left, and the next
/// router restores exactly what was spent (nothing is counted twice).
#[tokio::test]
async fn settled_calls_leave_no_hold_and_restore_exactly() {
    bounded(20, async {
        let dir = TempDir::new("holds");
        let db = dir.0.join("s.db");
        let up = FakeProvider::json(chat_completion()).await;
        for strict in [false, true] {
            let agent = format!("holder-{strict}");
            let opts = static_opts(
                &up,
                &db,
                json!({ "agentId": agent, "budgetUsd": 1, "strictPersistence": strict }),
            );
            let router = iron_runtime::Router::start_json(&opts).expect("starts");
            for _ in 0..3 {
                assert_eq!(chat(&router, "gpt-4o-mini").await, 200);
            }
            let spent = router.total_spent_micros();
            assert!(spent > 0);
            router.stop().await;
            let store = Store::open(StoreConfig::at_path(&db)).expect("reopen");
            assert_eq!(store.holds().expect("holds"), vec![]);
            assert_eq!(store.spent_for_agent(&agent).expect("spent"), spent);
            drop(store);
            let again = iron_runtime::Router::start_json(&opts).expect("restarts");
            assert_eq!(again.total_spent_micros(), spent);
            again.stop().await;
        }
    })
    .await;
}
