//! Local processes: each command runs through its shell as the leader of a new
//! process group, so pause, stop and clean-up reach every process it started. Every
//! process carries its run's id in `RUNBOOK_EXECUTION_ID`, so what a crashed app
//! left behind can be found and ended when it starts again.

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use runbook_domain::Shell;
use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use tokio::process::{Child, Command};
use uuid::Uuid;

pub use runbook_domain::block::{EXECUTION_ID_VAR, OUTPUT_VAR};

/// Variables of the app itself that no command may see.
const PRIVATE_VARS: [&str; 3] = [
    "DATABASE_URL",
    "RUNBOOK_MASTER_KEY",
    "RUNBOOK_TEST_POSTGRES_URL",
];

/// What to run.
pub struct CommandSpec<'a> {
    /// The shell's executable: a path from [`resolve_shell`], or its bare name.
    pub program: &'a OsStr,
    pub script: &'a str,
    pub workdir: Option<&'a str>,
    /// The block's variables and injected secrets, in order.
    pub env: &'a [(String, String)],
    /// The environment commands start from instead of the app's own (the user's
    /// login-shell environment on desktops).
    pub base_env: Option<&'a HashMap<String, String>>,
    pub execution_id: Uuid,
    pub output_file: &'a Path,
}

/// Starts the script as the leader of its own process group, output piped.
pub fn spawn(spec: &CommandSpec<'_>) -> std::io::Result<Child> {
    let mut command = Command::new(spec.program);
    command.arg("-c").arg(spec.script);
    if let Some(base) = spec.base_env {
        command.env_clear().envs(base);
    }
    for name in PRIVATE_VARS {
        command.env_remove(name);
    }
    // The run's own variables come last: they mark the processes the run must be able
    // to find and end, whatever a block sets (validation refuses those names too).
    command
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .env(EXECUTION_ID_VAR, spec.execution_id.to_string())
        .env(OUTPUT_VAR, spec.output_file)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    if let Some(dir) = spec.workdir {
        command.current_dir(dir);
    }
    command.spawn()
}

/// Where `shell` is on the PATH commands get (`base_env`'s, or the app's own), so it
/// is looked up once for a run rather than at every spawn. Naming the program by path
/// also lets the process be started with posix_spawn where a PATH of the caller's own
/// would otherwise make the standard library fall back to fork and exec. None when it
/// is not on that PATH (the spawn then reports it by name).
pub fn resolve_shell(shell: Shell, base_env: Option<&HashMap<String, String>>) -> Option<OsString> {
    let path = match base_env {
        Some(env) => env.get("PATH").map(OsString::from),
        None => std::env::var_os("PATH"),
    }?;
    which::which_in_global(shell.program(), Some(path))
        .ok()?
        .find(|candidate| candidate.is_absolute())
        .map(OsString::from)
}

/// Capacity a command's output pipe gets once the command writes in bulk.
const BULK_PIPE: i32 = 1024 * 1024;

/// Gives the pipe behind `pipe` room for [`BULK_PIPE`] bytes, so a command writing in
/// bulk is not stopped at every 64 KiB (Linux's default) until the reader catches up.
/// Best effort: where a system limit on pipe memory refuses, the pipe stays as it was;
/// systems other than Linux keep their own pipe sizes.
pub fn widen_pipe(pipe: impl std::os::fd::AsFd) {
    #[cfg(target_os = "linux")]
    let _ = nix::fcntl::fcntl(pipe, nix::fcntl::FcntlArg::F_SETPIPE_SZ(BULK_PIPE));
    #[cfg(not(target_os = "linux"))]
    let _ = pipe;
}

/// Sends `signal` to every process of the group led by `pgid`; a group that is
/// already gone is not an error.
pub fn signal_group(pgid: u32, signal: Signal) {
    let Ok(raw) = i32::try_from(pgid) else {
        return;
    };
    if let Err(errno) = killpg(Pid::from_raw(raw), signal) {
        if errno != nix::errno::Errno::ESRCH {
            tracing::warn!(pgid, ?signal, %errno, "could not signal process group");
        }
    }
}

/// True while a process of the group led by `pgid` is alive (zombies, which only wait
/// to be reaped, do not count).
pub fn group_alive(pgid: u32) -> bool {
    let Ok(raw) = i32::try_from(pgid) else {
        return false;
    };
    if killpg(Pid::from_raw(raw), None).is_err() {
        return false;
    }
    let Ok(entries) = std::fs::read_dir("/proc") else {
        // No /proc: a group that answers a signal is alive.
        return true;
    };
    entries.flatten().any(|entry| {
        let is_pid = entry
            .file_name()
            .to_str()
            .is_some_and(|name| name.bytes().all(|b| b.is_ascii_digit()));
        if !is_pid {
            return false;
        }
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            return false;
        };
        // `pid (comm) state ppid pgrp …`; comm may hold spaces and parentheses.
        let Some((_, rest)) = stat.rsplit_once(") ") else {
            return false;
        };
        let mut fields = rest.split(' ');
        let state = fields.next();
        let pgrp = fields.nth(1).and_then(|f| f.parse::<i32>().ok());
        pgrp == Some(raw) && state != Some("Z") && state != Some("X")
    })
}

/// Kills the process group it names when dropped.
pub struct GroupGuard(pub u32);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        signal_group(self.0, Signal::SIGKILL);
    }
}

/// The exit code a shell would report: the code, or 128 + the signal number.
pub fn exit_code(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|signal| 128 + signal))
        .unwrap_or(-1)
}

/// Processes (pid, process group) whose environment marks them as belonging to
/// one of the runs in `wanted`, found through /proc. Empty where there is no /proc.
pub fn processes_of(wanted: &dyn Fn(Uuid) -> bool) -> Vec<(i32, i32, Uuid)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let own = std::process::id() as i32;
    let prefix = format!("{EXECUTION_ID_VAR}=");
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        if pid == own {
            continue;
        }
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        let marker = environ
            .split(|b| *b == 0)
            .find_map(|var| var.strip_prefix(prefix.as_bytes()))
            .and_then(|id| std::str::from_utf8(id).ok())
            .and_then(|id| Uuid::parse_str(id).ok());
        let Some(id) = marker.filter(|id| wanted(*id)) else {
            continue;
        };
        let pgid = nix::unistd::getpgid(Some(Pid::from_raw(pid)))
            .map(Pid::as_raw)
            .unwrap_or(pid);
        found.push((pid, pgid, id));
    }
    found
}

/// Kills every process left from the given runs (with their process groups);
/// returns how many processes were found.
pub fn kill_processes_of(wanted: &dyn Fn(Uuid) -> bool) -> usize {
    let found = processes_of(wanted);
    let own_group = nix::unistd::getpgrp().as_raw();
    for (pid, pgid, _) in &found {
        if *pgid != own_group && *pgid > 1 {
            let _ = killpg(Pid::from_raw(*pgid), Signal::SIGKILL);
        }
        let _ = nix::sys::signal::kill(Pid::from_raw(*pid), Signal::SIGKILL);
    }
    found.len()
}

/// The environment of the user's login shell (`$SHELL -l`), so commands find what
/// the user's profile puts on PATH even when the app was started from a desktop
/// launcher. None when it cannot be read within a few seconds.
pub fn login_environment() -> Option<HashMap<String, String>> {
    let shell = std::env::var("SHELL").ok().filter(|s| !s.is_empty())?;
    let mut child = std::process::Command::new(&shell)
        .args(["-l", "-c", "env -0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let mut stdout = child.stdout.take()?;
    let reader = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut stdout, &mut bytes).map(|_| bytes)
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => break,
            Ok(Some(_)) | Err(_) => return None,
            Ok(None) if std::time::Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                tracing::warn!(%shell, "the login shell did not print its environment in time");
                return None;
            }
            Ok(None) => std::thread::sleep(std::time::Duration::from_millis(20)),
        }
    }
    let bytes = reader.join().ok()?.ok()?;
    let env: HashMap<String, String> = bytes
        .split(|b| *b == 0)
        .filter_map(|var| std::str::from_utf8(var).ok())
        .filter_map(|var| var.split_once('='))
        .filter(|(name, _)| !name.is_empty())
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect();
    env.contains_key("PATH").then_some(env)
}
