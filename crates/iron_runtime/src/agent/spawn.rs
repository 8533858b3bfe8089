//! Starting the agent's process: its command, its environment wired to its router, its own process group.

use super::process_group::{lead_new_group, terminal_is_ours};
use super::spec::{AgentSpec, StdinMode};
use std::ffi::{OsStr, OsString};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
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

/// Hosts an agent reaches its router by: an HTTP proxy in the environment (`HTTP_PROXY`,
/// `ALL_PROXY`, honoured by Python's httpx and requests, curl, …) must not get its calls, prompt
/// and router token included.
pub const ROUTER_HOSTS: [&str; 2] = ["127.0.0.1", "localhost"];

/// `NO_PROXY` / `no_proxy` for the agent: the value it would have had (its own case, else the other
/// case's, from the spec or inherited) with the router's hosts appended where missing.
fn no_proxy_pairs(spec: &AgentSpec) -> [(&'static str, String); 2] {
    let get = |name: &str| {
        spec.env
            .get(name)
            .cloned()
            .or_else(|| std::env::var_os(name).map(|v| v.to_string_lossy().into_owned()))
            .filter(|v| !v.trim().is_empty())
    };
    let upper = get("NO_PROXY");
    let lower = get("no_proxy");
    [
        (
            "NO_PROXY",
            with_router_hosts(upper.clone().or(lower.clone())),
        ),
        ("no_proxy", with_router_hosts(lower.or(upper))),
    ]
}

/// `value` (a comma-separated host list) with [`ROUTER_HOSTS`] appended where missing.
pub fn with_router_hosts(value: Option<String>) -> String {
    let mut out = value
        .unwrap_or_default()
        .trim()
        .trim_end_matches(',')
        .to_string();
    for host in ROUTER_HOSTS {
        let present = out
            .split(',')
            .any(|h| h.trim() == "*" || h.trim().eq_ignore_ascii_case(host));
        if !present {
            if !out.is_empty() {
                out.push(',');
            }
            out.push_str(host);
        }
    }
    out
}

/// A started agent process, and whether its group was given the terminal.
#[derive(Debug)]
pub struct Spawned {
    pub child: Child,
    pub has_terminal: bool,
}

/// Start `spec` with `env`: stdout and stderr inherited, stdin per the spec, leading a new process group.
/// The error message names the cause and the fix.
pub fn spawn_agent(spec: &AgentSpec, env: &RouterEnv) -> Result<Spawned, String> {
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
    let (stdin, take_terminal) = match spec.stdin {
        StdinMode::Inherit => (inherited(Std::In), false),
        StdinMode::Null => (Stdio::null(), false),
        StdinMode::Terminal if !std::io::stdin().is_terminal() => (inherited(Std::In), false),
        // A background job's agent would be stopped (SIGTTIN) when it reads the terminal.
        StdinMode::Terminal if !terminal_is_ours() => (Stdio::null(), false),
        StdinMode::Terminal => (inherited(Std::In), true),
    };
    cmd.envs(env.pairs())
        .envs(no_proxy_pairs(spec))
        .stdout(inherited(Std::Out))
        .stderr(inherited(Std::Err))
        .stdin(stdin)
        // The supervisor always reaps; killing on drop would skip the SIGTERM grace.
        .kill_on_drop(false);
    if let Some(dir) = &spec.cwd {
        cmd.current_dir(dir);
    }
    lead_new_group(&mut cmd, take_terminal);
    let child = cmd.spawn().map_err(|e| describe_spawn_error(spec, &e))?;
    Ok(Spawned {
        child,
        has_terminal: take_terminal,
    })
}

/// Names of the variables (inherited or from the spec) that are the router's secret variables or
/// hold one of its secrets (a key exported under any name, e.g. `--provider-key "$MY_KEY"`).
fn secret_vars(spec: &AgentSpec, env: &RouterEnv) -> Vec<OsString> {
    let mut names: Vec<OsString> = ROUTER_SECRET_VARS.iter().map(|n| (*n).into()).collect();
    for (k, v) in std::env::vars_os() {
        if holds_secret(&v, &env.secrets) {
            names.push(k);
        }
    }
    for (k, v) in &spec.env {
        if holds_secret(OsStr::new(v), &env.secrets) {
            names.push(k.into());
        }
    }
    names
}

/// True when `value` is one of `secrets`, or contains one of 12 bytes or more. Compared as bytes:
/// a value that is not valid UTF-8 around a key still holds the key. A short secret only by the
/// whole value: as a substring it would match unrelated variables.
fn holds_secret(value: &OsStr, secrets: &[String]) -> bool {
    let v = value.as_encoded_bytes();
    secrets.iter().any(|s| {
        let s = s.as_bytes();
        v == s || (s.len() >= 12 && memchr::memmem::find(v, s).is_some())
    })
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

fn describe_spawn_error(spec: &AgentSpec, e: &std::io::Error) -> String {
    let command = spec.command.as_str();
    match e.kind() {
        std::io::ErrorKind::NotFound => match resolve(spec) {
            // The file is there: what is missing is the program that runs it.
            Some(path) => match interpreter(&path) {
                Some(interp) => format!(
                    "command '{command}' exists, but its interpreter '{interp}' (its #! line) was not found: install it, correct the #! line, or run the script through an interpreter you have (e.g. python3 {command})"
                ),
                None => format!(
                    "command '{command}' exists ({}), but the system could not run it (its interpreter or loader is missing): check that it was built for this machine",
                    path.display()
                ),
            },
            None => format!(
                "command '{command}' not found: check that it is installed and on PATH, or give its full path{}",
                if cfg!(windows) && !command.contains('.') {
                    " (on Windows a .cmd or .bat command, such as npx or npm, is named with its extension: npx.cmd)"
                } else {
                    ""
                }
            ),
        },
        std::io::ErrorKind::PermissionDenied => format!(
            "command '{command}' is not executable: make it executable (chmod +x) or run it through its interpreter"
        ),
        _ => format!("could not start '{command}': {e}"),
    }
}

/// The file `spec.command` names, if there is one: a path (relative to the agent's cwd), or the
/// first match on the agent's `PATH`.
fn resolve(spec: &AgentSpec) -> Option<PathBuf> {
    let base = |p: PathBuf| match &spec.cwd {
        Some(dir) if p.is_relative() => dir.join(p),
        _ => p,
    };
    let command = Path::new(&spec.command);
    if command.components().count() > 1 || spec.command.contains('/') {
        let path = base(command.to_path_buf());
        return path.is_file().then_some(path);
    }
    let path_var: OsString = spec
        .env
        .get("PATH")
        .map(OsString::from)
        .or_else(|| std::env::var_os("PATH"))?;
    std::env::split_paths(&path_var)
        .map(|dir| base(dir.join(command)))
        .find(|p| p.is_file())
}

/// The interpreter a script's `#!` line names.
fn interpreter(path: &Path) -> Option<String> {
    use std::io::Read;
    let mut head = [0u8; 256];
    let n = std::fs::File::open(path).ok()?.read(&mut head).ok()?;
    let line = head[..n].strip_prefix(b"#!")?;
    let line = line.split(|b| *b == b'\n').next()?;
    let text = String::from_utf8_lossy(line);
    text.split_whitespace().next().map(str::to_string)
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
    async fn a_script_whose_interpreter_is_missing_is_not_called_missing() {
        let dir = std::env::temp_dir().join(format!("iron-shebang-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let script = dir.join("old.py");
        std::fs::write(
            &script,
            "#!/opt/iron-cage-no-such-venv/bin/python3\nprint(1)\n",
        )
        .unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let e = spawn_agent(&spec(script.to_str().unwrap()), &env()).unwrap_err();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(
            e.contains("exists")
                && e.contains("'/opt/iron-cage-no-such-venv/bin/python3' (its #! line)"),
            "{e}"
        );
    }

    #[test]
    fn no_proxy_gets_the_router_hosts_appended() {
        assert_eq!(with_router_hosts(None), "127.0.0.1,localhost");
        assert_eq!(
            with_router_hosts(Some("corp.example, .internal,".into())),
            "corp.example, .internal,127.0.0.1,localhost"
        );
        assert_eq!(
            with_router_hosts(Some("LOCALHOST,127.0.0.1".into())),
            "LOCALHOST,127.0.0.1"
        );
        assert_eq!(with_router_hosts(Some("*".into())), "*");
    }

    #[test]
    fn a_secret_is_found_in_a_value_that_is_not_utf8() {
        let secrets = vec!["sk-secret-provider-key-0123".to_string()];
        #[cfg(unix)]
        {
            use std::os::unix::ffi::OsStrExt;
            let mut raw = vec![0xff, 0xfe];
            raw.extend_from_slice(b"Bearer sk-secret-provider-key-0123");
            assert!(std::str::from_utf8(&raw).is_err());
            assert!(holds_secret(OsStr::from_bytes(&raw), &secrets));
            assert!(!holds_secret(OsStr::from_bytes(&[0xff, b'x']), &secrets));
        }
        assert!(holds_secret(
            OsStr::new("sk-secret-provider-key-0123"),
            &secrets
        ));
        assert!(!holds_secret(OsStr::new("sk-secret"), &secrets));
    }

    #[tokio::test]
    async fn missing_cwd_names_the_fix() {
        let mut s = spec("true");
        s.cwd = Some("/nonexistent/iron-cage-dir".into());
        let e = spawn_agent(&s, &env()).unwrap_err();
        assert!(e.contains("not a directory"), "{e}");
    }
}
