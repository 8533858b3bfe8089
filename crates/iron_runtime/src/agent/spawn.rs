//! Starting the agent's process: its command, its environment wired to its router, its own process group.

use super::process_group::lead_new_group;
use super::spec::{AgentSpec, StdinMode};
use std::process::Stdio;
use tokio::process::{Child, Command};

/// The variables an agent's SDKs and scripts read, pointing at its router.
pub struct RouterEnv {
    pub openai_base_url: String,
    pub anthropic_base_url: String,
    pub token: String,
    pub agent_id: String,
    /// Values the agent must not see (the provider key, the Iron Cage token): any variable holding
    /// one, inherited or given in the spec, is removed from its environment.
    pub secrets: Vec<String>,
}

/// Variables the CLI reads the router's own secrets from; never passed on to an agent.
pub const ROUTER_SECRET_VARS: [&str; 2] = ["IRON_CAGE_PROVIDER_KEY", "IRON_CAGE_SERVER_TOKEN"];

impl RouterEnv {
    /// `(name, value)` pairs; these win over the parent's and the spec's variables of the same name.
    pub fn pairs(&self) -> [(&'static str, &str); 7] {
        [
            ("OPENAI_BASE_URL", &self.openai_base_url),
            ("OPENAI_API_KEY", &self.token),
            ("ANTHROPIC_BASE_URL", &self.anthropic_base_url),
            ("ANTHROPIC_API_KEY", &self.token),
            ("IRON_CAGE_ROUTER_URL", &self.anthropic_base_url),
            ("IRON_CAGE_TOKEN", &self.token),
            ("IRON_CAGE_AGENT_ID", &self.agent_id),
        ]
    }
}

/// Start `spec` with `env`: stdout and stderr inherited, stdin per the spec, leading a new process group.
/// The error message names the cause and the fix.
pub fn spawn_agent(spec: &AgentSpec, env: &RouterEnv) -> Result<Child, String> {
    if let Some(dir) = &spec.cwd {
        if !dir.is_dir() {
            return Err(format!(
                "cwd '{}' is not a directory: create it or pass an existing one",
                dir.display()
            ));
        }
    }
    let mut cmd = Command::new(&spec.command);
    cmd.args(&spec.args).envs(&spec.env);
    for name in secret_vars(spec, env) {
        cmd.env_remove(name);
    }
    cmd.envs(env.pairs())
        .stdout(inherited(Std::Out))
        .stderr(inherited(Std::Err))
        .stdin(match spec.stdin {
            StdinMode::Inherit => inherited(Std::In),
            StdinMode::Null => Stdio::null(),
        })
        // The supervisor always reaps; killing on drop would skip the SIGTERM grace.
        .kill_on_drop(false);
    if let Some(dir) = &spec.cwd {
        cmd.current_dir(dir);
    }
    lead_new_group(&mut cmd);
    cmd.spawn()
        .map_err(|e| describe_spawn_error(&spec.command, &e))
}

/// Names of the variables (inherited or from the spec) that are the router's secret variables or
/// hold one of its secrets (a key exported under any name, e.g. `--provider-key "$MY_KEY"`).
fn secret_vars(spec: &AgentSpec, env: &RouterEnv) -> Vec<std::ffi::OsString> {
    // A short secret only by the whole value: as a substring it would match unrelated variables.
    let holds_secret = |v: &std::ffi::OsStr| {
        v.to_str().is_some_and(|v| {
            env.secrets
                .iter()
                .any(|s| v == s || (s.len() >= 12 && v.contains(s.as_str())))
        })
    };
    let mut names: Vec<std::ffi::OsString> =
        ROUTER_SECRET_VARS.iter().map(|n| (*n).into()).collect();
    for (k, v) in std::env::vars_os() {
        if holds_secret(&v) {
            names.push(k);
        }
    }
    for (k, v) in &spec.env {
        if holds_secret(std::ffi::OsStr::new(v)) {
            names.push(k.into());
        }
    }
    names
}

enum Std {
    In,
    Out,
    Err,
}

/// The parent's stdio stream for the child. Plain inheritance is not enough: a host such as Node may
/// mark its fds 0-2 close-on-exec, and the child would start with them closed. A duplicate handed over
/// explicitly is `dup2`ed into place, which clears that flag.
#[cfg(unix)]
fn inherited(which: Std) -> Stdio {
    use std::os::fd::AsFd;
    let dup = match which {
        Std::In => std::io::stdin().as_fd().try_clone_to_owned(),
        Std::Out => std::io::stdout().as_fd().try_clone_to_owned(),
        Std::Err => std::io::stderr().as_fd().try_clone_to_owned(),
    };
    dup.map(Stdio::from).unwrap_or_else(|_| Stdio::inherit())
}

#[cfg(not(unix))]
fn inherited(_which: Std) -> Stdio {
    Stdio::inherit()
}

fn describe_spawn_error(command: &str, e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => format!(
            "command '{command}' not found: check that it is installed and on PATH, or give its full path"
        ),
        std::io::ErrorKind::PermissionDenied => format!(
            "command '{command}' is not executable: make it executable (chmod +x) or run it through its interpreter"
        ),
        _ => format!("could not start '{command}': {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(command: &str) -> AgentSpec {
        AgentSpec::from_json(&serde_json::json!({ "command": command }).to_string()).unwrap()
    }

    fn env() -> RouterEnv {
        RouterEnv {
            openai_base_url: "http://127.0.0.1:1/v1".into(),
            anthropic_base_url: "http://127.0.0.1:1".into(),
            token: "ic_local_x".into(),
            agent_id: "agt_1".into(),
            secrets: vec![],
        }
    }

    #[tokio::test]
    async fn missing_command_names_the_fix() {
        let e = spawn_agent(&spec("iron-cage-no-such-command-xyz"), &env()).unwrap_err();
        assert!(e.contains("not found") && e.contains("PATH"), "{e}");
    }

    #[tokio::test]
    async fn missing_cwd_names_the_fix() {
        let mut s = spec("true");
        s.cwd = Some("/nonexistent/iron-cage-dir".into());
        let e = spawn_agent(&s, &env()).unwrap_err();
        assert!(e.contains("not a directory"), "{e}");
    }
}
