//! What to run and how to supervise it: `AgentSpec` and `RuntimeOptions`, parsed from the JSON the
//! bindings pass, with errors that name the field and the fix.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// Restart on crash: at most `max_restarts` times, waiting `backoff` (doubling, capped) before each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartPolicy {
    pub max_restarts: u32,
    pub backoff: Duration,
}

/// Longest wait between two restarts, however many crashes came before.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

impl RestartPolicy {
    /// The wait before restart number `attempt` (1-based): backoff × 2^(attempt-1), at most `MAX_BACKOFF`.
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 1u32
            .checked_shl(attempt.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.backoff
            .checked_mul(factor)
            .unwrap_or(MAX_BACKOFF)
            .min(MAX_BACKOFF)
    }
}

/// What happens when the agent's budget is exhausted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BudgetAction {
    /// The agent keeps running; its LLM calls are refused with 402.
    KeepRunning,
    /// The agent is stopped (SIGTERM, then SIGKILL after the grace) and the reason recorded.
    Stop,
}

/// Where the child's stdin comes from (stdout and stderr are always inherited).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StdinMode {
    /// The parent's stdin (works for pipes and files; a terminal belongs to the foreground group only).
    Inherit,
    /// `/dev/null`.
    Null,
    /// The parent's stdin, and when it is a terminal of which this process is the foreground
    /// group, that terminal too: the agent's group becomes its foreground group while it runs
    /// (it reads the terminal, and Ctrl-C reaches it directly). Otherwise as `Inherit` when stdin
    /// is not a terminal, `Null` when it is one this process does not own (a background job).
    Terminal,
}

/// One agent to start.
#[derive(Debug, Clone)]
pub struct AgentSpec {
    /// A fixed agent id (`None`: a new one per start). With a state file, the same id is the same
    /// agent across runs: its spent is restored and its budget covers all of them.
    pub id: Option<String>,
    pub name: Option<String>,
    pub command: String,
    pub args: Vec<String>,
    pub cwd: Option<PathBuf>,
    pub env: BTreeMap<String, String>,
    pub budget_usd: Option<f64>,
    pub restart: Option<RestartPolicy>,
    pub on_budget_exhausted: BudgetAction,
    /// Grace between SIGTERM and SIGKILL for stops the runtime decides (budget, shutdown, cleanup).
    pub grace: Duration,
    pub stdin: StdinMode,
}

/// Options shared by every agent of one runtime.
#[derive(Debug, Clone, Default)]
pub struct RuntimeOptions {
    /// Router options (same JSON as `LlmRouter`) each agent's router starts from.
    pub router: serde_json::Map<String, serde_json::Value>,
    /// SQLite file for agent rows (and, through each router's `statePath`, its ledger).
    pub state_path: Option<PathBuf>,
}

/// An invalid option, naming the field as the user wrote it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("invalid option {field}: {message}")]
pub struct SpecError {
    pub field: String,
    pub message: String,
}

fn err(field: &str, message: impl Into<String>) -> SpecError {
    SpecError {
        field: field.to_string(),
        message: message.into(),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RestartJson {
    max_restarts: f64,
    backoff_ms: Option<f64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SpecJson {
    id: Option<String>,
    name: Option<String>,
    command: String,
    #[serde(default)]
    args: Vec<String>,
    cwd: Option<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    budget_usd: Option<f64>,
    restart: Option<RestartJson>,
    on_budget_exhausted: Option<String>,
    grace_ms: Option<f64>,
    stdin: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RuntimeJson {
    router: Option<serde_json::Map<String, serde_json::Value>>,
    state_path: Option<String>,
}

fn parse_json<T: serde::de::DeserializeOwned>(json: &str, what: &str) -> Result<T, SpecError> {
    let de = &mut serde_json::Deserializer::from_str(json);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." { what.to_string() } else { path };
        err(&field, e.into_inner().to_string())
    })
}

/// Milliseconds given as a JS number: finite, within `0..=max`.
pub fn duration_ms(field: &str, v: f64, max: f64) -> Result<Duration, SpecError> {
    if v.is_finite() && (0.0..=max).contains(&v) {
        Ok(Duration::from_millis(v as u64))
    } else {
        Err(err(
            field,
            format!("must be a number of milliseconds between 0 and {max}, got {v}"),
        ))
    }
}

/// Default grace between SIGTERM and SIGKILL.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(5);

/// The longest agent id accepted.
pub const MAX_AGENT_ID: usize = 64;

/// An agent id names the agent in the state file, events and logs: 1 to 64 ASCII letters, digits,
/// `.`, `_`, `-` or `:`, starting with a letter or digit.
fn check_agent_id(id: &str) -> Result<(), SpecError> {
    let ok = (1..=MAX_AGENT_ID).contains(&id.len())
        && id.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':'));
    if ok {
        Ok(())
    } else {
        Err(err(
            "id",
            format!(
                "must be 1 to {MAX_AGENT_ID} ASCII letters, digits, '.', '_', '-' or ':', starting with a letter or digit (e.g. 'researcher-1'), got {id:?}"
            ),
        ))
    }
}

impl AgentSpec {
    /// Parse and validate `{ command, args?, cwd?, env?, budgetUsd?, restart?, onBudgetExhausted?, ... }`.
    pub fn from_json(json: &str) -> Result<AgentSpec, SpecError> {
        let s: SpecJson = parse_json(json, "agent options")?;
        if let Some(id) = &s.id {
            check_agent_id(id)?;
        }
        if s.command.trim().is_empty() {
            return Err(err(
                "command",
                "must name a program to run, e.g. 'python3' or 'node'",
            ));
        }
        if s.command.contains('\0') {
            return Err(err("command", "must not contain NUL characters"));
        }
        if s.args.iter().any(|a| a.contains('\0')) {
            return Err(err("args", "must not contain NUL characters"));
        }
        for (k, v) in &s.env {
            if k.is_empty() || k.contains('=') || k.contains('\0') || v.contains('\0') {
                return Err(err(
                    &format!("env.{k}"),
                    "names must be non-empty without '=' or NUL; values without NUL",
                ));
            }
        }
        if let Some(b) = s.budget_usd {
            if !(b.is_finite() && b >= 0.0) {
                return Err(err(
                    "budgetUsd",
                    format!("must be a non-negative number of USD, got {b}"),
                ));
            }
        }
        let restart = match s.restart {
            None => None,
            Some(r) => {
                if !(r.max_restarts.is_finite()
                    && r.max_restarts >= 0.0
                    && r.max_restarts <= 1_000_000.0
                    && r.max_restarts.fract() == 0.0)
                {
                    return Err(err(
                        "restart.maxRestarts",
                        format!(
                            "must be a whole number from 0 to 1000000, got {}",
                            r.max_restarts
                        ),
                    ));
                }
                let backoff = duration_ms(
                    "restart.backoffMs",
                    r.backoff_ms.unwrap_or(1000.0),
                    3_600_000.0,
                )?;
                Some(RestartPolicy {
                    max_restarts: r.max_restarts as u32,
                    backoff,
                })
            }
        };
        let on_budget_exhausted = match s.on_budget_exhausted.as_deref() {
            None | Some("keep-running") => BudgetAction::KeepRunning,
            Some("stop") => BudgetAction::Stop,
            Some(other) => {
                return Err(err(
                    "onBudgetExhausted",
                    format!("must be 'keep-running' or 'stop', got '{other}'"),
                ))
            }
        };
        let grace = match s.grace_ms {
            None => DEFAULT_GRACE,
            Some(g) => duration_ms("graceMs", g, 3_600_000.0)?,
        };
        let stdin = match s.stdin.as_deref() {
            None | Some("null") | Some("ignore") => StdinMode::Null,
            Some("inherit") => StdinMode::Inherit,
            Some("terminal") => StdinMode::Terminal,
            Some(other) => {
                return Err(err(
                    "stdin",
                    format!("must be 'inherit', 'ignore' or 'terminal', got '{other}'"),
                ))
            }
        };
        Ok(AgentSpec {
            id: s.id,
            name: s.name.filter(|n| !n.trim().is_empty()),
            command: s.command,
            args: s.args,
            cwd: s.cwd.map(PathBuf::from),
            env: s.env,
            budget_usd: s.budget_usd,
            restart,
            on_budget_exhausted,
            grace,
            stdin,
        })
    }
}

impl RuntimeOptions {
    /// Parse `{ router: { ...LlmRouter options }, statePath? }`.
    pub fn from_json(json: &str) -> Result<RuntimeOptions, SpecError> {
        let r: RuntimeJson = parse_json(json, "runtime options")?;
        let router = r.router.unwrap_or_default();
        for (owned, instead) in [
            ("budgetUsd", "startAgent({ budgetUsd })"),
            ("agentId", "startAgent({ id })"),
        ] {
            if router.contains_key(owned) {
                return Err(err(
                    &format!("router.{owned}"),
                    format!("is set per agent: pass it as {instead} instead"),
                ));
            }
        }
        if r.state_path.as_deref().is_some_and(|p| p.trim().is_empty()) {
            return Err(err(
                "statePath",
                "is empty: give the path of a SQLite file (a missing directory is created), or leave statePath out to keep the state in memory",
            ));
        }
        Ok(RuntimeOptions {
            router,
            state_path: r.state_path.map(PathBuf::from),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_full_spec() {
        let s = AgentSpec::from_json(
            r#"{"name":"a","command":"python3","args":["-u","x.py"],"env":{"K":"v"},
                "budgetUsd":0.5,"restart":{"maxRestarts":3,"backoffMs":100},
                "onBudgetExhausted":"stop","graceMs":250,"stdin":"inherit"}"#,
        )
        .unwrap();
        assert_eq!(s.args, vec!["-u", "x.py"]);
        assert_eq!(
            s.restart,
            Some(RestartPolicy {
                max_restarts: 3,
                backoff: Duration::from_millis(100)
            })
        );
        assert_eq!(s.on_budget_exhausted, BudgetAction::Stop);
        assert_eq!(s.grace, Duration::from_millis(250));
        assert_eq!(s.stdin, StdinMode::Inherit);
        assert_eq!(s.id, None);
        let long = "a".repeat(MAX_AGENT_ID);
        for id in ["researcher-1", "team.a:bot_2", long.as_str()] {
            let s = AgentSpec::from_json(&format!(r#"{{"command":"x","id":"{id}"}}"#)).unwrap();
            assert_eq!(s.id.as_deref(), Some(id));
        }
        let too_long = format!(r#"{{"command":"x","id":"{long}a"}}"#);
        assert_eq!(AgentSpec::from_json(&too_long).unwrap_err().field, "id");
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (r#"{"command":""}"#, "command"),
            (r#"{"command":"x","budgetUsd":-1}"#, "budgetUsd"),
            (
                r#"{"command":"x","restart":{"maxRestarts":1.5}}"#,
                "restart.maxRestarts",
            ),
            (
                r#"{"command":"x","onBudgetExhausted":"pause"}"#,
                "onBudgetExhausted",
            ),
            (r#"{"command":"x","graceMs":-5}"#, "graceMs"),
            (r#"{"command":"x","bogus":1}"#, "bogus"),
            (r#"{"command":"x","env":{"A=B":"c"}}"#, "env.A=B"),
            (r#"{"command":"x","id":""}"#, "id"),
            (r#"{"command":"x","id":"-x"}"#, "id"),
            (r#"{"command":"x","id":"a b"}"#, "id"),
            (r#"{"command":"x","id":"a/../b"}"#, "id"),
            (r#"{"command":"x","id":"é"}"#, "id"),
            (r#"{"args":[]}"#, "agent options"),
            ("not json", "agent options"),
        ];
        for (json, field) in cases {
            let e = AgentSpec::from_json(json).unwrap_err();
            assert_eq!(e.field, field, "{json}: {e}");
        }
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let p = RestartPolicy {
            max_restarts: 10,
            backoff: Duration::from_millis(100),
        };
        assert_eq!(p.delay(1), Duration::from_millis(100));
        assert_eq!(p.delay(3), Duration::from_millis(400));
        assert_eq!(p.delay(40), MAX_BACKOFF);
    }

    #[test]
    fn runtime_refuses_per_agent_router_fields() {
        let e = RuntimeOptions::from_json(r#"{"router":{"providerKey":"k","budgetUsd":1}}"#)
            .unwrap_err();
        assert_eq!(e.field, "router.budgetUsd");
        let o =
            RuntimeOptions::from_json(r#"{"router":{"providerKey":"k"},"statePath":"/tmp/s.db"}"#)
                .unwrap();
        assert_eq!(o.state_path, Some(PathBuf::from("/tmp/s.db")));
        let e = RuntimeOptions::from_json(r#"{"router":{"providerKey":"k"},"statePath":""}"#)
            .expect_err("an empty statePath is refused");
        assert_eq!(e.field, "statePath");
        assert!(e.message.contains("leave statePath out"), "{}", e.message);
    }
}
