//! Process groups: every agent leads its own group, so a stop reaches its children and grandchildren.
//!
//! Unix only. On Windows the agent is started normally and a stop terminates the process itself at
//! once (no SIGTERM grace, and grandchildren are not reached: that needs a Job Object, not done yet).

use std::time::{Duration, Instant};

/// The signals a stop sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StopSignal {
    /// SIGINT: what Ctrl-C sends (Python raises `KeyboardInterrupt`, its cleanup runs).
    Int,
    /// SIGHUP: the terminal went away.
    Hup,
    /// SIGQUIT: what Ctrl-\\ sends (Python and Node end at once, a core dump where enabled).
    Quit,
    #[default]
    Term,
    Kill,
}

impl StopSignal {
    /// The signal from its name (`SIGINT`, `SIGHUP`, `SIGQUIT`, `SIGTERM`, `SIGKILL`).
    pub fn from_name(name: &str) -> Option<StopSignal> {
        match name {
            "SIGINT" => Some(StopSignal::Int),
            "SIGHUP" => Some(StopSignal::Hup),
            "SIGQUIT" => Some(StopSignal::Quit),
            "SIGTERM" => Some(StopSignal::Term),
            "SIGKILL" => Some(StopSignal::Kill),
            _ => None,
        }
    }

    /// Its conventional name.
    pub fn name(self) -> &'static str {
        match self {
            StopSignal::Int => "SIGINT",
            StopSignal::Hup => "SIGHUP",
            StopSignal::Quit => "SIGQUIT",
            StopSignal::Term => "SIGTERM",
            StopSignal::Kill => "SIGKILL",
        }
    }

    #[cfg(unix)]
    fn number(self) -> libc::c_int {
        match self {
            StopSignal::Int => libc::SIGINT,
            StopSignal::Hup => libc::SIGHUP,
            StopSignal::Quit => libc::SIGQUIT,
            StopSignal::Term => libc::SIGTERM,
            StopSignal::Kill => libc::SIGKILL,
        }
    }
}

/// Make the spawned child the leader of a new process group (its pgid is its pid), with blocking
/// standard streams, and (Linux) sent SIGTERM if this process dies without stopping it.
///
/// - Standard streams: the agent shares Node's stdout and stderr, which Node puts in non-blocking
///   mode when they are pipes; most programs do not expect that and lose output on `EAGAIN` (a
///   review saw 23,696 of 300,000 lines arrive through `| slow-reader`). libuv clears the flag for
///   the children Node spawns; so do we.
/// - Parent death: a host that exits without `shutdown()` (an uncaught exception, `process.exit`, a
///   signal, OOM) would leave its agents running against a router that no longer exists.
///
/// With `take_terminal` (stdin is the terminal and this process is its foreground group, see
/// [`terminal_is_ours`]) the new group also becomes the terminal's foreground group, as a shell
/// does for the job it runs: the agent reads the terminal, and the terminal's Ctrl-C (SIGINT) and
/// Ctrl-\ (SIGQUIT) reach it as they would without iron-cage. Ctrl-Z is ignored in the agent (a
/// stopped foreground group that nobody resumes would hang the terminal); a process that resets
/// that (Node does) is resumed by the supervisor ([`resume_if_stopped`]). [`reclaim_terminal`]
/// takes the terminal back when it ends.
pub fn lead_new_group(cmd: &mut tokio::process::Command, take_terminal: bool) {
    #[cfg(unix)]
    {
        cmd.process_group(0);
        #[cfg(target_os = "linux")]
        let parent = std::process::id() as libc::pid_t;
        // SAFETY: the closure runs in the child between fork and exec and makes only
        // async-signal-safe calls (fcntl, sigaction, tcsetpgrp, prctl, getppid, getpid) on the
        // child's own descriptors and process; it allocates nothing and touches no lock.
        unsafe {
            cmd.pre_exec(move || {
                for fd in 0..=2 {
                    let flags = libc::fcntl(fd, libc::F_GETFL);
                    if flags >= 0 && flags & libc::O_NONBLOCK != 0 {
                        libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK);
                    }
                }
                if take_terminal {
                    // A background group changing the foreground group gets SIGTTOU unless it
                    // ignores it: ignored for the call, then back to the default.
                    let before = libc::signal(libc::SIGTTOU, libc::SIG_IGN);
                    libc::tcsetpgrp(0, libc::getpid());
                    libc::signal(libc::SIGTTOU, before);
                    libc::signal(libc::SIGTSTP, libc::SIG_IGN);
                }
                #[cfg(target_os = "linux")]
                {
                    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    // The parent may have died before the prctl: then nobody would signal us.
                    if libc::getppid() != parent {
                        return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
                    }
                }
                Ok(())
            });
        }
    }
    #[cfg(not(unix))]
    let _ = (cmd, take_terminal);
}

/// True when this process's stdin is a terminal whose foreground group is ours: only then can an
/// agent be given the terminal (a background job's agent would be stopped by SIGTTIN on reading it).
#[cfg(unix)]
pub fn terminal_is_ours() -> bool {
    // SAFETY: isatty, tcgetpgrp and getpgrp take integers and touch no memory of ours.
    unsafe { libc::isatty(0) == 1 && libc::tcgetpgrp(0) == libc::getpgrp() }
}

#[cfg(not(unix))]
pub fn terminal_is_ours() -> bool {
    false
}

/// Make this process's group the terminal's foreground group again if group `pgid` (an agent that
/// was given the terminal) still is. SIGTTOU is blocked on the calling thread for the call: this
/// process is a background group until it returns.
#[cfg(unix)]
pub fn reclaim_terminal(pgid: u32) {
    let Ok(pgid) = libc::pid_t::try_from(pgid) else {
        return;
    };
    // SAFETY: plain integer calls, and signal-set calls on a local, zero-initialised sigset_t.
    unsafe {
        if libc::isatty(0) != 1 {
            return;
        }
        // The agent's group, or a group no process is left in (the agent's, once empty).
        let fg = libc::tcgetpgrp(0);
        let gone = fg <= 0
            || (libc::killpg(fg, 0) != 0
                && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH));
        if fg == libc::getpgrp() || (fg != pgid && !gone) {
            return;
        }
        let mut block: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut block);
        libc::sigaddset(&mut block, libc::SIGTTOU);
        libc::pthread_sigmask(libc::SIG_BLOCK, &block, &mut old);
        libc::tcsetpgrp(0, libc::getpgrp());
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
    }
}

#[cfg(not(unix))]
pub fn reclaim_terminal(_pgid: u32) {}

/// Send `sig` to every process of group `pgid`. True if the group existed.
#[cfg(unix)]
pub fn signal_group(pgid: u32, sig: StopSignal) -> bool {
    let Some(pgid) = agent_group(pgid) else {
        return false;
    };
    // SAFETY: killpg takes two integers and touches no memory of ours; std has no safe equivalent.
    unsafe { libc::killpg(pgid, sig.number()) == 0 }
}

/// Send `sig` to every process of group `pgid` (no process groups off Unix: nothing to do).
#[cfg(not(unix))]
pub fn signal_group(_pgid: u32, _sig: StopSignal) -> bool {
    false
}

/// Resume group `pgid` (SIGCONT) if a process in it is stopped by job control: the terminal's Ctrl-Z
/// (SIGTSTP), or SIGTTIN / SIGTTOU. An agent given the terminal is its foreground group, which only
/// iron-cage could resume: a stop there would hang the terminal. Ignoring SIGTSTP at spawn is not
/// enough, since Node resets signal dispositions at startup. True if it sent SIGCONT.
#[cfg(target_os = "linux")]
pub fn resume_if_stopped(pgid: u32) -> bool {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return false;
    };
    let stopped = dir.flatten().any(|entry| {
        let name = entry.file_name();
        name.to_str()
            .and_then(|s| s.parse::<u32>().ok())
            .and_then(proc_state_and_pgrp)
            // 'T': stopped by a signal ('t' is a debugger's stop: left alone).
            .is_some_and(|(state, pgrp)| pgrp == pgid && state == 'T')
    });
    stopped && continue_group(pgid)
}

/// Resume group `pgid` if its leader (our child) is stopped by job control (no `/proc` to look
/// at the rest of the group).
#[cfg(all(unix, not(target_os = "linux")))]
pub fn resume_if_stopped(pgid: u32) -> bool {
    let Ok(pid) = libc::id_t::try_from(pgid) else {
        return false;
    };
    // SAFETY: waitid writes only into the local, zero-initialised siginfo_t. WSTOPPED without
    // WEXITED never reaps: the exit status stays for the supervisor's wait.
    let stopped = unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        libc::waitid(libc::P_PID, pid, &mut info, libc::WSTOPPED | libc::WNOHANG) == 0
            && info.si_pid() != 0
    };
    stopped && continue_group(pgid)
}

#[cfg(not(unix))]
pub fn resume_if_stopped(_pgid: u32) -> bool {
    false
}

/// `pgid` as a group id signals may address: 0 or 1 would reach our own group or init's, never
/// what an agent's group means.
#[cfg(unix)]
fn agent_group(pgid: u32) -> Option<libc::pid_t> {
    libc::pid_t::try_from(pgid).ok().filter(|&g| g > 1)
}

#[cfg(unix)]
fn continue_group(pgid: u32) -> bool {
    let Some(pgid) = agent_group(pgid) else {
        return false;
    };
    // SAFETY: killpg takes two integers and touches no memory of ours.
    unsafe { libc::killpg(pgid, libc::SIGCONT) == 0 }
}

/// True while a live (not zombie) process remains in group `pgid`.
#[cfg(target_os = "linux")]
pub fn group_alive(pgid: u32) -> bool {
    // killpg(pgid, 0) also counts zombies, which linger where PID 1 does not reap (containers).
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return fallback_group_alive(pgid);
    };
    for entry in dir.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if let Some((state, pgrp)) = proc_state_and_pgrp(pid) {
            if pgrp == pgid && state != 'Z' && state != 'X' {
                return true;
            }
        }
    }
    false
}

/// True while a process remains in group `pgid`.
#[cfg(all(unix, not(target_os = "linux")))]
pub fn group_alive(pgid: u32) -> bool {
    fallback_group_alive(pgid)
}

/// Off Unix there are no groups to outlive the leader.
#[cfg(not(unix))]
pub fn group_alive(_pgid: u32) -> bool {
    false
}

#[cfg(unix)]
fn fallback_group_alive(pgid: u32) -> bool {
    let Some(pgid) = agent_group(pgid) else {
        return false;
    };
    // SAFETY: signal 0 only checks for existence; two integers, no memory.
    unsafe { libc::killpg(pgid, 0) == 0 }
}

/// State letter and process group of `pid`, from `/proc/<pid>/stat`.
#[cfg(target_os = "linux")]
pub fn proc_state_and_pgrp(pid: u32) -> Option<(char, u32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields resume after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let _ppid = fields.next()?;
    let pgrp = fields.next()?.parse().ok()?;
    Some((state, pgrp))
}

/// A process that left the agent's group (`setsid`, `setpgid`: daemons, some shells' job control)
/// but descends from its leader, so a stop must reach it too. Known by pid and start time, so a pid
/// the system has since reused is never signalled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Escapee {
    pid: u32,
    start: u64,
}

/// Fields of `/proc/<pid>/stat` a stop needs: state, parent, group, start time.
#[cfg(target_os = "linux")]
fn proc_stat(pid: u32) -> Option<(char, u32, u32, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let state = f.first()?.chars().next()?;
    Some((
        state,
        f.get(1)?.parse().ok()?,
        f.get(2)?.parse().ok()?,
        f.get(19)?.parse().ok()?,
    ))
}

/// The live descendants of `leader` outside group `pgid` (found through their parents, so only
/// while the parent chain is alive: a stop looks before it signals anything).
#[cfg(target_os = "linux")]
pub fn escaped_descendants(leader: u32, pgid: u32) -> Vec<Escapee> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let procs: Vec<(u32, char, u32, u32, u64)> = dir
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            proc_stat(pid).map(|(st, ppid, pgrp, start)| (pid, st, ppid, pgrp, start))
        })
        .collect();
    let mut out = Vec::new();
    let mut frontier = vec![leader];
    let mut seen = std::collections::HashSet::from([leader]);
    while let Some(parent) = frontier.pop() {
        for &(pid, state, ppid, pgrp, start) in &procs {
            if ppid != parent || !seen.insert(pid) {
                continue;
            }
            frontier.push(pid);
            if pgrp != pgid && state != 'Z' && state != 'X' {
                out.push(Escapee { pid, start });
            }
        }
    }
    out
}

/// No `/proc` to follow parents through: only the group is reached.
#[cfg(not(target_os = "linux"))]
pub fn escaped_descendants(_leader: u32, _pgid: u32) -> Vec<Escapee> {
    Vec::new()
}

/// True while `e` is the same live process.
#[cfg(target_os = "linux")]
fn escapee_alive(e: &Escapee) -> bool {
    proc_stat(e.pid)
        .is_some_and(|(state, _, _, start)| start == e.start && state != 'Z' && state != 'X')
}

#[cfg(not(target_os = "linux"))]
fn escapee_alive(_e: &Escapee) -> bool {
    false
}

/// Sends `sig` to each escapee that is still the process it was.
pub fn signal_escapees(escapees: &[Escapee], sig: StopSignal) {
    #[cfg(unix)]
    for e in escapees.iter().filter(|e| escapee_alive(e)) {
        let Ok(pid) = libc::pid_t::try_from(e.pid) else {
            continue;
        };
        // SAFETY: kill takes two integers and touches no memory of ours.
        unsafe { libc::kill(pid, sig.number()) };
    }
    #[cfg(not(unix))]
    let _ = (escapees, sig);
}

/// True when none of `escapees` is still alive.
pub fn escapees_gone(escapees: &[Escapee]) -> bool {
    !escapees.iter().any(escapee_alive)
}

/// Wait until group `pgid` is empty or `deadline` passes. True if it emptied.
pub async fn wait_group_gone(pgid: u32, deadline: Instant) -> bool {
    loop {
        if !group_alive(pgid) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Processes left in the group after its leader ended: SIGTERM, then SIGKILL if still there at `deadline`.
pub async fn reap_leftovers(pgid: u32, deadline: Instant) {
    if !group_alive(pgid) {
        return;
    }
    signal_group(pgid, StopSignal::Term);
    if !wait_group_gone(pgid, deadline).await {
        signal_group(pgid, StopSignal::Kill);
        wait_group_gone(pgid, Instant::now() + Duration::from_secs(2)).await;
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn reads_our_own_stat() {
        let (state, pgrp) = proc_state_and_pgrp(std::process::id()).unwrap();
        assert!(matches!(state, 'R' | 'S'), "state {state}");
        assert!(pgrp > 0);
    }

    #[test]
    fn our_own_children_outside_our_group_are_found() {
        // A child in a group of its own, as `setsid` would leave it.
        let mut cmd = std::process::Command::new("sleep");
        cmd.arg("5");
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let mut child = cmd.spawn().expect("sleep");
        let me = std::process::id();
        let (_, pgrp) = proc_state_and_pgrp(me).expect("our group");
        let found = escaped_descendants(me, pgrp);
        assert!(found.iter().any(|e| e.pid == child.id()), "{found:?}");
        signal_escapees(&found, StopSignal::Kill);
        let _ = child.wait();
    }

    #[test]
    fn refuses_to_signal_low_groups() {
        assert!(!signal_group(0, StopSignal::Term));
        assert!(!signal_group(1, StopSignal::Term));
    }
}
