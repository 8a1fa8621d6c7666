//! Local processes: each command runs through its shell as the leader of a new
//! process group, so pause, stop and clean-up reach every process it started. Every
//! process carries its run's id in `RUNBOOK_EXECUTION_ID`, so what a crashed app
//! left behind can be found and ended when it starts again.

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use runbook_domain::Shell;
use std::collections::HashMap;
use std::ffi::{CString, OsStr, OsString};
use std::os::fd::OwnedFd;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use tokio::net::unix::pipe;
use tokio::process::Command;
use uuid::Uuid;

pub use runbook_domain::block::{EXECUTION_ID_VAR, OUTPUT_VAR};

/// Variables of the app itself that no command may see.
const PRIVATE_VARS: [&str; 3] = [
    "DATABASE_URL",
    "RUNBOOK_MASTER_KEY",
    "RUNBOOK_TEST_POSTGRES_URL",
];

/// The environment every command of a run starts from: the base environment (the
/// user's login-shell environment on desktops, else the app's own) without the app's
/// private variables, and the run's id. Built once for the run, so starting a step
/// only adds the step's own variables.
pub struct RunEnv {
    /// Base variables as (name, value, `NAME=value`), in a stable order.
    base: Vec<(OsString, OsString, CString)>,
    /// `RUNBOOK_EXECUTION_ID=…`.
    execution_id: CString,
    execution_id_value: String,
}

impl RunEnv {
    pub fn new(base: Option<&HashMap<String, String>>, execution_id: Uuid) -> RunEnv {
        let vars: Vec<(OsString, OsString)> = match base {
            Some(base) => base
                .iter()
                .map(|(name, value)| (name.into(), value.into()))
                .collect(),
            None => std::env::vars_os().collect(),
        };
        let mut base: Vec<_> = vars
            .into_iter()
            .filter(|(name, _)| {
                !PRIVATE_VARS.iter().any(|private| name == private)
                    && name != EXECUTION_ID_VAR
                    && name != OUTPUT_VAR
            })
            // A name or value no C string can hold cannot be passed on (the standard
            // library refuses to start the command at all).
            .filter_map(|(name, value)| {
                let entry = env_entry(&name, &value).ok()?;
                Some((name, value, entry))
            })
            .collect();
        base.sort_by(|a, b| a.0.cmp(&b.0));
        let execution_id_value = execution_id.to_string();
        RunEnv {
            base,
            execution_id: env_entry(EXECUTION_ID_VAR.as_ref(), execution_id_value.as_ref())
                .expect("a uuid holds no NUL"),
            execution_id_value,
        }
    }

    /// The base variables a command with the block's variables `own` keeps: those the
    /// block does not set itself.
    fn base_under<'a>(
        &'a self,
        own: &'a [(String, String)],
    ) -> impl Iterator<Item = &'a (OsString, OsString, CString)> {
        self.base
            .iter()
            .filter(|(name, _, _)| !own.iter().any(|(own, _)| name == own.as_str()))
    }
}

/// `NAME=value` as a C string.
fn env_entry(name: &OsStr, value: &OsStr) -> std::io::Result<CString> {
    use std::os::unix::ffi::OsStrExt;
    let mut entry = Vec::with_capacity(name.len() + value.len() + 1);
    entry.extend_from_slice(name.as_bytes());
    entry.push(b'=');
    entry.extend_from_slice(value.as_bytes());
    CString::new(entry).map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("the variable {} holds a NUL byte", name.to_string_lossy()),
        )
    })
}

/// What to run.
pub struct CommandSpec<'a> {
    /// The shell's executable: a path from [`resolve_shell`], or its bare name.
    pub program: &'a OsStr,
    pub script: &'a str,
    pub workdir: Option<&'a str>,
    /// The block's variables and injected secrets, in order.
    pub env: &'a [(String, String)],
    /// The environment of the run the command belongs to.
    pub run_env: &'a RunEnv,
    pub output_file: &'a Path,
}

/// A started command: its pid (which also names its process group), its output, and
/// its end.
pub struct Started {
    pub pid: u32,
    pub stdout: pipe::Receiver,
    pub stderr: pipe::Receiver,
    pub exit: Exit,
    /// The app's own copies of the pipes' write ends, to be closed once the command
    /// has exited (see [`Writers`]).
    pub writers: Writers,
}

/// Copies of a command's stdout and stderr write ends, held by the app while the
/// command runs. Without them, the pipes would hang up while the exiting shell closes
/// its descriptors, a moment before its exit is visible: the app would be woken
/// twice, and the first time on the CPU where the shell is still exiting, delaying
/// it. Held, the exit comes first; the copies are then dropped and the pipes are
/// read to their end at once.
pub struct Writers(#[allow(dead_code)] Option<(OwnedFd, OwnedFd)>);

impl Writers {
    /// Closes the copies: the pipes end once no process of the command holds them.
    pub fn close(&mut self) {
        self.0 = None;
    }
}

/// The pipes for a command's stdout and stderr, each as (read end, write end). A run
/// makes the next command's while the current one runs, so starting a step does not
/// wait for them.
pub struct OutputPipes {
    out: (OwnedFd, OwnedFd),
    err: (OwnedFd, OwnedFd),
}

impl OutputPipes {
    pub fn new() -> std::io::Result<OutputPipes> {
        // Close-on-exec on every platform: only the command gets the write ends.
        let pipe = || -> std::io::Result<(OwnedFd, OwnedFd)> {
            let (read, write) = std::io::pipe()?;
            Ok((read.into(), write.into()))
        };
        Ok(OutputPipes {
            out: pipe()?,
            err: pipe()?,
        })
    }
}

/// Reads what `pipe` holds now, without waiting: none when it is empty and still
/// open; `Ok(0)` at its end.
pub fn read_now(pipe: &pipe::Receiver, buf: &mut [u8]) -> Option<std::io::Result<usize>> {
    use std::os::fd::AsFd;
    loop {
        match nix::unistd::read(pipe.as_fd(), buf) {
            Ok(n) => return Some(Ok(n)),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(nix::errno::Errno::EAGAIN) => return None,
            Err(errno) => return Some(Err(errno.into())),
        }
    }
}

/// Starts the script as the leader of its own process group, stdin on `/dev/null`,
/// stdout and stderr piped. The process is killed if [`Exit`] is dropped before it
/// ends.
pub fn spawn(spec: &CommandSpec<'_>, pipes: OutputPipes) -> std::io::Result<Started> {
    #[cfg(target_os = "linux")]
    if spec.workdir.is_none() && direct::supported() {
        return direct::spawn(spec, pipes);
    }
    spawn_with_tokio(spec, pipes)
}

/// Through the standard library (by way of tokio), which can also start the command
/// in a working directory of its own.
fn spawn_with_tokio(spec: &CommandSpec<'_>, pipes: OutputPipes) -> std::io::Result<Started> {
    let mut command = Command::new(spec.program);
    command.arg("-c").arg(spec.script).env_clear();
    command.envs(
        spec.run_env
            .base_under(spec.env)
            .map(|(name, value, _)| (name, value)),
    );
    // The run's own variables come last: they mark the processes the run must be able
    // to find and end, whatever a block sets (validation refuses those names too).
    command
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .env(EXECUTION_ID_VAR, &spec.run_env.execution_id_value)
        .env(OUTPUT_VAR, spec.output_file);
    let OutputPipes {
        out: (out_read, out_write),
        err: (err_read, err_write),
    } = pipes;
    command
        .stdin(Stdio::null())
        .stdout(Stdio::from(out_write.try_clone()?))
        .stderr(Stdio::from(err_write.try_clone()?))
        .process_group(0)
        .kill_on_drop(true);
    if let Some(dir) = spec.workdir {
        command.current_dir(dir);
    }
    let child = command.spawn()?;
    // `command` holds the copies of the write ends it passed on: only ours must stay.
    drop(command);
    let pid = child
        .id()
        .ok_or_else(|| std::io::Error::other("the process vanished at start"))?;
    Ok(Started {
        pid,
        stdout: receiver(out_read)?,
        stderr: receiver(err_read)?,
        exit: Exit(ExitInner::Child(child)),
        writers: Writers(Some((out_write, err_write))),
    })
}

/// The read end of an output pipe, for the runtime.
fn receiver(fd: OwnedFd) -> std::io::Result<pipe::Receiver> {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    fcntl(&fd, FcntlArg::F_SETFL(OFlag::O_NONBLOCK))?;
    pipe::Receiver::from_owned_fd_unchecked(fd)
}

/// The end of a started command.
pub struct Exit(ExitInner);

enum ExitInner {
    Child(tokio::process::Child),
    #[cfg(target_os = "linux")]
    Pidfd(direct::Reaper),
}

impl Exit {
    /// Waits for the command to end; cancel-safe, and once it has ended, returns the
    /// same status again.
    pub async fn wait(&mut self) -> std::io::Result<ExitStatus> {
        match &mut self.0 {
            ExitInner::Child(child) => child.wait().await,
            #[cfg(target_os = "linux")]
            ExitInner::Pidfd(reaper) => reaper.wait().await,
        }
    }
}

/// Starting commands with posix_spawn from an environment built once per run, a
/// `/dev/null` opened once, and waiting for them through a pidfd: what the standard
/// library does for every spawn (copying the whole environment into a map and out
/// again, opening `/dev/null`) is most of what a step of a trivial command costs beyond
/// the spawn itself.
#[cfg(target_os = "linux")]
mod direct {
    use super::{
        receiver, CommandSpec, Exit, ExitInner, OutputPipes, Started, EXECUTION_ID_VAR, OUTPUT_VAR,
    };
    use nix::spawn::{posix_spawn, PosixSpawnAttr, PosixSpawnFileActions, PosixSpawnFlags};
    use nix::sys::signal::{SigSet, Signal};
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    use nix::unistd::Pid;
    use std::ffi::{CStr, CString};
    use std::os::fd::{AsRawFd, OwnedFd};
    use std::os::unix::process::ExitStatusExt;
    use std::process::ExitStatus;
    use std::sync::OnceLock;
    use tokio::io::unix::AsyncFd;

    /// Whether this kernel gives pidfds (Linux 5.3 and later); commands are started
    /// through the standard library where it does not.
    pub fn supported() -> bool {
        static SUPPORTED: OnceLock<bool> = OnceLock::new();
        *SUPPORTED.get_or_init(|| {
            rustix::process::pidfd_open(
                rustix::process::getpid(),
                rustix::process::PidfdFlags::NONBLOCK,
            )
            .is_ok()
        })
    }

    /// `/dev/null`, opened once, read-only, for every command's stdin.
    fn dev_null() -> std::io::Result<&'static std::fs::File> {
        static NULL: OnceLock<std::fs::File> = OnceLock::new();
        if let Some(file) = NULL.get() {
            return Ok(file);
        }
        let file = std::fs::File::open("/dev/null")?;
        Ok(NULL.get_or_init(|| file))
    }

    fn c_string(text: impl Into<Vec<u8>>) -> std::io::Result<CString> {
        CString::new(text).map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "the script or a path holds a NUL byte",
            )
        })
    }

    pub fn spawn(spec: &CommandSpec<'_>, pipes: OutputPipes) -> std::io::Result<Started> {
        use std::os::unix::ffi::OsStrExt;
        let run_env = spec.run_env;
        let own: Vec<CString> = spec
            .env
            .iter()
            .filter(|(name, _)| name != EXECUTION_ID_VAR && name != OUTPUT_VAR)
            .map(|(name, value)| super::env_entry(name.as_ref(), value.as_ref()))
            .collect::<Result<_, _>>()?;
        let output = super::env_entry(OUTPUT_VAR.as_ref(), spec.output_file.as_os_str())?;
        let mut envp: Vec<&CStr> = Vec::with_capacity(run_env.base.len() + own.len() + 2);
        envp.extend(
            run_env
                .base_under(spec.env)
                .map(|(_, _, entry)| entry.as_c_str()),
        );
        // The run's own variables come last: they mark the processes the run must be
        // able to find and end, whatever a block sets (validation refuses those names).
        envp.extend(own.iter().map(CString::as_c_str));
        envp.push(&run_env.execution_id);
        envp.push(&output);

        let program = c_string(spec.program.as_bytes())?;
        let args = [program.as_c_str(), c"-c", &c_string(spec.script)?];

        let OutputPipes {
            out: (out_read, out_write),
            err: (err_read, err_write),
        } = pipes;
        let mut actions = PosixSpawnFileActions::init()?;
        actions.add_dup2(dev_null()?.as_raw_fd(), 0)?;
        actions.add_dup2(out_write.as_raw_fd(), 1)?;
        actions.add_dup2(err_write.as_raw_fd(), 2)?;
        // As the standard library starts processes: no signal blocked, SIGPIPE (which
        // Rust programs ignore) back to its default, and here a process group of its own.
        let mut attr = PosixSpawnAttr::init()?;
        attr.set_pgroup(Pid::from_raw(0))?;
        attr.set_sigmask(&SigSet::empty())?;
        attr.set_sigdefault(&SigSet::from(Signal::SIGPIPE))?;
        attr.set_flags(
            PosixSpawnFlags::POSIX_SPAWN_SETPGROUP
                | PosixSpawnFlags::POSIX_SPAWN_SETSIGMASK
                | PosixSpawnFlags::POSIX_SPAWN_SETSIGDEF,
        )?;
        let pid = posix_spawn(program.as_c_str(), &actions, &attr, &args, &envp)?;

        let reaper = match Reaper::new(pid) {
            Ok(reaper) => reaper,
            Err(error) => {
                // Not expected once pidfds are supported; the process must not be left.
                let _ = nix::sys::signal::killpg(pid, Signal::SIGKILL);
                let _ = waitpid(pid, None);
                return Err(error);
            }
        };
        Ok(Started {
            pid: pid.as_raw() as u32,
            stdout: receiver(out_read)?,
            stderr: receiver(err_read)?,
            exit: Exit(ExitInner::Pidfd(reaper)),
            writers: super::Writers(Some((out_write, err_write))),
        })
    }

    /// Waits for a child through its pidfd, which becomes readable when it ends, and
    /// reaps it. Dropped before then, it kills the child and reaps it on a thread.
    pub struct Reaper {
        pid: Pid,
        pidfd: AsyncFd<OwnedFd>,
        status: Option<ExitStatus>,
    }

    impl Reaper {
        fn new(pid: Pid) -> std::io::Result<Reaper> {
            let raw = rustix::process::Pid::from_raw(pid.as_raw())
                .ok_or_else(|| std::io::Error::other("posix_spawn gave pid 0"))?;
            let pidfd = rustix::process::pidfd_open(raw, rustix::process::PidfdFlags::NONBLOCK)?;
            // Deprecated because an arbitrary `AsRawFd` may close or swap its descriptor
            // while registered (tokio#8587); an `OwnedFd` owned by the `AsyncFd` cannot.
            #[allow(deprecated)]
            Ok(Reaper {
                pid,
                pidfd: AsyncFd::with_interest(pidfd, tokio::io::Interest::READABLE)?,
                status: None,
            })
        }

        pub async fn wait(&mut self) -> std::io::Result<ExitStatus> {
            loop {
                if let Some(status) = self.status {
                    return Ok(status);
                }
                let mut ready = self.pidfd.readable().await?;
                match waitpid(self.pid, Some(WaitPidFlag::WNOHANG)) {
                    Ok(WaitStatus::Exited(_, code)) => {
                        self.status = Some(ExitStatus::from_raw((code & 0xff) << 8));
                    }
                    Ok(WaitStatus::Signaled(_, signal, core)) => {
                        let core = if core { 0x80 } else { 0 };
                        self.status = Some(ExitStatus::from_raw(signal as i32 | core));
                    }
                    Ok(_) => ready.clear_ready(),
                    Err(nix::errno::Errno::EINTR) => {}
                    Err(errno) => return Err(errno.into()),
                }
            }
        }
    }

    impl Drop for Reaper {
        fn drop(&mut self) {
            if self.status.is_some() {
                return;
            }
            let pid = self.pid;
            if matches!(
                waitpid(pid, Some(WaitPidFlag::WNOHANG)),
                Ok(WaitStatus::StillAlive)
            ) {
                let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
                // Reaped off this thread: a process in uninterruptible sleep takes a
                // moment to die of SIGKILL.
                let _ = std::thread::Builder::new()
                    .name("reap".into())
                    .spawn(move || waitpid(pid, None));
            }
        }
    }
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
    marked_processes(wanted, None)
}

/// [`processes_of`], and with `step_output`, only the processes whose
/// `RUNBOOK_OUTPUT` names that file: those started by the step it belongs to.
fn marked_processes(
    wanted: &dyn Fn(Uuid) -> bool,
    step_output: Option<&Path>,
) -> Vec<(i32, i32, Uuid)> {
    use std::os::unix::ffi::OsStrExt;
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let own = std::process::id() as i32;
    let prefix = format!("{EXECUTION_ID_VAR}=");
    let output = step_output.map(|path| {
        let mut entry = format!("{OUTPUT_VAR}=").into_bytes();
        entry.extend_from_slice(path.as_os_str().as_bytes());
        entry
    });
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
        if let Some(output) = &output {
            if !environ
                .split(|b| *b == 0)
                .any(|var| var == output.as_slice())
            {
                continue;
            }
        }
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
    signal_processes_of(wanted, &[Signal::SIGKILL])
}

/// Sends `signals`, in order, to every process of the given runs (and their process
/// groups); returns how many processes were found.
pub fn signal_processes_of(wanted: &dyn Fn(Uuid) -> bool, signals: &[Signal]) -> usize {
    let found = processes_of(wanted);
    for signal in signals {
        signal_found(&found, *signal);
    }
    found.len()
}

/// Sends `signals`, in order, to the processes of run `execution` that left the
/// process group `group` (`setsid`, daemons), and to their groups: a stop's SIGTERM
/// reaches them with the group's, so they too get the grace period to end cleanly.
/// With `step_output`, only to those the step writing that output file started, as
/// a pause does: what earlier steps left running is not the paused step's.
pub fn signal_escaped(
    execution: Uuid,
    group: u32,
    step_output: Option<&Path>,
    signals: &[Signal],
) -> usize {
    let escaped: Vec<_> = marked_processes(&|of| of == execution, step_output)
        .into_iter()
        .filter(|(_, pgid, _)| u32::try_from(*pgid).ok() != Some(group))
        .collect();
    for signal in signals {
        signal_found(&escaped, *signal);
    }
    escaped.len()
}

fn signal_found(found: &[(i32, i32, Uuid)], signal: Signal) -> usize {
    let own_group = nix::unistd::getpgrp().as_raw();
    for (pid, pgid, _) in found {
        if *pgid != own_group && *pgid > 1 {
            let _ = killpg(Pid::from_raw(*pgid), signal);
        }
        let _ = nix::sys::signal::kill(Pid::from_raw(*pid), signal);
    }
    found.len()
}

/// The environment of the user's login shell (`$SHELL -l`), so commands find what
/// the user's profile puts on PATH even when the app was started from a desktop
/// launcher. None when it cannot be read within a few seconds.
pub fn login_environment() -> Option<HashMap<String, String>> {
    let shell = std::env::var("SHELL").ok().filter(|s| !s.is_empty())?;
    login_environment_of(&shell, LOGIN_PATIENCE)
}

/// How long the login shell has to print its environment.
const LOGIN_PATIENCE: std::time::Duration = std::time::Duration::from_secs(5);
/// Most bytes of a login shell's output read.
const LOGIN_OUTPUT_LIMIT: usize = 4 * 1024 * 1024;

/// The environment `shell -l -c 'env -0'` prints within `patience`. The shell runs in a
/// process group of its own, all of which is killed if it takes longer. Once the shell
/// has exited, `env -0` has written everything: what its profile left running in the
/// background (an agent, `tool &`) may hold the output open, so reading stops when the
/// output ends or goes quiet, not only at its end.
fn login_environment_of(
    shell: &str,
    patience: std::time::Duration,
) -> Option<HashMap<String, String>> {
    use std::os::unix::process::CommandExt;
    use std::time::{Duration, Instant};
    let mut child = std::process::Command::new(shell)
        .args(["-l", "-c", "env -0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .ok()?;
    let group = Pid::from_raw(child.id() as i32);
    let mut stdout = child.stdout.take()?;
    let (sender, chunks) = std::sync::mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        let mut buffer = vec![0; 64 * 1024];
        while let Ok(n @ 1..) = std::io::Read::read(&mut stdout, &mut buffer) {
            if sender.send(buffer[..n].to_vec()).is_err() {
                return;
            }
        }
    });
    let deadline = Instant::now() + patience;
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => break,
            Ok(Some(_)) | Err(_) => return None,
            Ok(None) if Instant::now() > deadline => {
                let _ = killpg(group, Signal::SIGKILL);
                let _ = child.wait();
                tracing::warn!(%shell, "the login shell did not print its environment in time");
                return None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    let mut bytes = Vec::new();
    while bytes.len() < LOGIN_OUTPUT_LIMIT && Instant::now() < deadline {
        match chunks.recv_timeout(Duration::from_millis(200)) {
            Ok(chunk) => bytes.extend_from_slice(&chunk),
            // The output ended, or went quiet with something else holding it open.
            Err(_) => break,
        }
    }
    let env: HashMap<String, String> = bytes
        .split(|b| *b == 0)
        .filter_map(|var| std::str::from_utf8(var).ok())
        .filter_map(|var| var.split_once('='))
        .filter(|(name, _)| !name.is_empty())
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect();
    env.contains_key("PATH").then_some(env)
}

#[cfg(test)]
mod tests {
    use super::login_environment_of;
    use std::os::unix::fs::PermissionsExt;
    use std::time::{Duration, Instant};

    /// A stand-in login shell running `body` (it ignores its arguments).
    fn shell(dir: &std::path::Path, name: &str, body: &str) -> String {
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path.to_string_lossy().into_owned()
    }

    #[test]
    fn a_profile_that_leaves_a_process_behind_does_not_hold_up_the_login_environment() {
        let dir = tempfile::tempdir().unwrap();
        // The profile starts something that keeps the shell's output open for 30 s.
        let lingering = shell(
            dir.path(),
            "lingering",
            "sleep 30 &\nPATH=/opt/x:$PATH env -0",
        );
        let start = Instant::now();
        let env = login_environment_of(&lingering, Duration::from_secs(5)).expect("an environment");
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "{:?}",
            start.elapsed()
        );
        assert!(env["PATH"].starts_with("/opt/x:"), "{env:?}");

        // A shell that never finishes is given up on at the deadline.
        let stuck = shell(dir.path(), "stuck", "sleep 30");
        let start = Instant::now();
        assert!(login_environment_of(&stuck, Duration::from_millis(300)).is_none());
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "{:?}",
            start.elapsed()
        );
    }
}
