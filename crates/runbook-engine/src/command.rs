//! Local processes: each command runs through its shell as the leader of a new
//! process group, so pause, stop and clean-up reach every process it started.

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use runbook_domain::Shell;
use std::collections::BTreeMap;
use std::process::{ExitStatus, Stdio};
use tokio::process::{Child, Command};

/// What to run.
pub struct CommandSpec<'a> {
    pub shell: Shell,
    pub script: &'a str,
    pub workdir: Option<&'a str>,
    pub env: &'a BTreeMap<String, String>,
}

/// Starts the script as the leader of its own process group, output piped.
pub fn spawn(spec: &CommandSpec<'_>) -> std::io::Result<Child> {
    let mut command = Command::new(spec.shell.program());
    command
        .arg("-c")
        .arg(spec.script)
        .envs(spec.env)
        // The app's own secrets are not the command's business.
        .env_remove("DATABASE_URL")
        .env_remove("RUNBOOK_MASTER_KEY")
        .env_remove("RUNBOOK_TEST_POSTGRES_URL")
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
