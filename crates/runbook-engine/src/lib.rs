//! The execution engine: runs a runbook version's blocks in order on the local host,
//! each command in its own process group, streaming output as events and handing
//! state and output to an [`ExecutionSink`] for persistence. It knows nothing of
//! storage or credentials: the core supplies the sink and the credential resolver.

mod command;
mod console;
mod control;
mod credentials;
mod events;
mod http;
mod mask;
mod recorder;
mod run;
mod template;

pub use command::{login_environment, EXECUTION_ID_VAR, OUTPUT_VAR};
pub use console::incomplete_tail_start;
pub use control::{ControlError, Prompt};
pub use credentials::{
    check_destination, Credential, CredentialError, CredentialResolver, Destination, NoCredentials,
    StaticCredentials,
};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use nix::sys::signal::Signal;
use runbook_domain::{
    Block, CommandBlock, ControlAction, Execution, ExecutionStatus, Runbook, StepResult,
    StepStatus, StopRequest,
};
use serde::Serialize;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{broadcast, watch};
use uuid::Uuid;

/// How often the processes a crashed run left are looked for while they get their grace.
const REAP_POLL: Duration = Duration::from_millis(100);

/// Where the engine persists what happens. The core implements it over the store.
#[async_trait]
pub trait ExecutionSink: Send + Sync + 'static {
    /// Changes of one run, in order; a sink that can should apply them in one
    /// transaction (all or nothing). A batch with the run's final state is the last.
    async fn record(&self, run: RunRef<'_>, records: &[RunRecord<'_>]) -> Result<(), SinkError>;
}

/// Why a sink did not store a batch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SinkError {
    /// The run is stored as ended already: another instance found its runner silent
    /// and marked it interrupted, and may have retried it. The run must not go on.
    #[error("the run has already ended in storage")]
    Ended,
    /// Anything else; worth trying again.
    #[error("{0}")]
    Failed(String),
}

/// The run a batch of records belongs to.
#[derive(Debug, Clone, Copy)]
pub struct RunRef<'a> {
    pub execution_id: Uuid,
    /// Who started the run.
    pub started_by: &'a str,
}

/// One change of a run, as handed to [`ExecutionSink::record`].
#[derive(Debug, Clone, Copy)]
pub enum RunRecord<'a> {
    Status {
        status: ExecutionStatus,
        started_at: Option<DateTime<Utc>>,
        finished_at: Option<DateTime<Utc>>,
    },
    Step {
        index: usize,
        step: &'a StepResult,
    },
    Output {
        offset: u64,
        data: &'a [u8],
    },
    /// A stop accepted: who asked for it and when.
    StopRequested(&'a StopRequest),
}

/// Something that happened in a run, as streamed to consoles (SSE, Tauri events).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ExecutionEvent {
    StepStarted {
        execution_id: Uuid,
        block_id: String,
    },
    Output {
        execution_id: Uuid,
        block_id: String,
        /// Byte offset of `text` in the run's whole console.
        offset: u64,
        text: String,
    },
    StepFinished {
        execution_id: Uuid,
        block_id: String,
        status: StepStatus,
        exit_code: Option<i32>,
        duration_ms: u64,
    },
    Status {
        execution_id: Uuid,
        status: ExecutionStatus,
    },
    /// A stop was accepted: the run's commands get their grace period, then the run
    /// ends `stopped`.
    StopRequested {
        execution_id: Uuid,
        /// Who asked for it.
        by: String,
        at: DateTime<Utc>,
    },
    /// A timer's time left: when it starts, every second, and on pause and resume.
    Countdown {
        execution_id: Uuid,
        block_id: String,
        remaining_ms: u64,
        total_ms: u64,
        paused: bool,
    },
}

impl ExecutionEvent {
    /// The run the event belongs to.
    pub fn execution_id(&self) -> Uuid {
        match self {
            ExecutionEvent::StepStarted { execution_id, .. }
            | ExecutionEvent::Output { execution_id, .. }
            | ExecutionEvent::StepFinished { execution_id, .. }
            | ExecutionEvent::Status { execution_id, .. }
            | ExecutionEvent::StopRequested { execution_id, .. }
            | ExecutionEvent::Countdown { execution_id, .. } => *execution_id,
        }
    }

    /// The event's name, as used for SSE `event:` lines.
    pub fn name(&self) -> &'static str {
        match self {
            ExecutionEvent::StepStarted { .. } => "step_started",
            ExecutionEvent::Output { .. } => "output",
            ExecutionEvent::StepFinished { .. } => "step_finished",
            ExecutionEvent::Status { .. } => "status",
            ExecutionEvent::StopRequested { .. } => "stop_requested",
            ExecutionEvent::Countdown { .. } => "countdown",
        }
    }
}

/// Engine settings.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// How long a stopped command gets between SIGTERM and SIGKILL.
    pub stop_grace: Duration,
    /// Output is persisted at least this often while a command writes.
    pub flush_interval: Duration,
    /// Output is persisted once this many bytes are buffered.
    pub flush_bytes: usize,
    /// The environment commands start from; None means the app's own. Desktops set
    /// the user's login-shell environment here.
    pub base_env: Option<Arc<HashMap<String, String>>>,
}

impl EngineConfig {
    /// How long `command`'s processes get between SIGTERM and SIGKILL: its own
    /// `stop_grace_secs`, else [`EngineConfig::stop_grace`].
    pub fn grace_of(&self, command: &CommandBlock) -> Duration {
        // Bounded here too: a runbook stored before validation knew the field, or one
        // handed to the engine directly, is not held to the limit otherwise.
        command.stop_grace_secs.map_or(self.stop_grace, |secs| {
            Duration::from_secs(secs.min(runbook_domain::validation::MAX_STOP_GRACE_SECS))
        })
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            stop_grace: Duration::from_secs(5),
            flush_interval: Duration::from_millis(100),
            flush_bytes: 1024 * 1024,
            base_env: None,
        }
    }
}

/// Takes a run out of the engine when its task ends, however it ends.
struct Leaving {
    engine: Engine,
    id: Uuid,
    control: Arc<control::RunControl>,
}

/// A run this engine executes: its controls and its own event channel.
struct Live {
    control: Arc<control::RunControl>,
    events: broadcast::Sender<ExecutionEvent>,
    /// The longest its commands get between SIGTERM and SIGKILL when stopped.
    grace: Duration,
}

impl Drop for Leaving {
    fn drop(&mut self) {
        if let Ok(mut runs) = self.engine.inner.runs.lock() {
            runs.remove(&self.id);
        }
        self.control.end();
    }
}

/// Runs executions. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<EngineInner>,
}

struct EngineInner {
    config: EngineConfig,
    sink: Arc<dyn ExecutionSink>,
    credentials: Arc<dyn CredentialResolver>,
    http: std::sync::OnceLock<http::Clients>,
    events: broadcast::Sender<ExecutionEvent>,
    runs: Mutex<HashMap<Uuid, Live>>,
    closing: std::sync::atomic::AtomicBool,
    /// Where steps write the outputs they publish: made at the first command, removed
    /// with the engine (or at its shutdown). One directory for all runs, so a run does
    /// not make and remove one of its own.
    scratch: Mutex<Option<tempfile::TempDir>>,
    /// What crashed runs left, being given its grace period before SIGKILL: each run,
    /// with a channel that closes once its processes are gone.
    reapers: Mutex<Vec<(Uuid, watch::Receiver<()>)>>,
    /// The grace periods given to runs being reaped, where not the default.
    leftover_graces: Mutex<HashMap<Uuid, Duration>>,
    /// Set to tell those tasks to kill at once (a second quit signal).
    reap_now: watch::Sender<bool>,
}

impl EngineInner {
    fn http_clients(&self) -> http::Clients {
        self.http.get_or_init(http::Clients::new).clone()
    }

    /// The file a step of a run publishes its outputs in (removed once read).
    fn output_file(&self, execution_id: Uuid, index: usize) -> std::io::Result<PathBuf> {
        let mut scratch = self.scratch.lock().expect("scratch directory lock");
        let dir = match &mut *scratch {
            Some(dir) => dir,
            none => none.insert(
                tempfile::Builder::new()
                    .prefix("runbook-steps-")
                    .tempdir()?,
            ),
        };
        Ok(dir.path().join(format!("{execution_id}-{index}.env")))
    }
}

impl Engine {
    /// An engine persisting through `sink`, resolving credentials through `credentials`.
    pub fn new(
        config: EngineConfig,
        sink: Arc<dyn ExecutionSink>,
        credentials: Arc<dyn CredentialResolver>,
    ) -> Self {
        let (events, _) = broadcast::channel(events::CAPACITY);
        Engine {
            inner: Arc::new(EngineInner {
                config,
                sink,
                credentials,
                http: std::sync::OnceLock::new(),
                events,
                runs: Mutex::new(HashMap::new()),
                closing: std::sync::atomic::AtomicBool::new(false),
                scratch: Mutex::new(None),
                reapers: Mutex::new(Vec::new()),
                leftover_graces: Mutex::new(HashMap::new()),
                reap_now: watch::Sender::new(false),
            }),
        }
    }

    /// Events of every run from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<ExecutionEvent> {
        self.inner.events.subscribe()
    }

    /// Events of the run `id` from now on, up to its final status (the channel closes
    /// after it); None when this engine does not execute that run (any more). Other
    /// runs' events never reach this channel, however many they send.
    pub fn subscribe_run(&self, id: Uuid) -> Option<broadcast::Receiver<ExecutionEvent>> {
        self.inner
            .runs
            .lock()
            .expect("run registry lock")
            .get(&id)
            .map(|live| live.events.subscribe())
    }

    /// Starts running `execution` (stored already, status queued) of `runbook` in the background.
    pub fn start(&self, execution: Execution, runbook: Runbook) {
        let control = Arc::new(control::RunControl::new(execution.status));
        let events = events::Announcer::new(self.inner.events.clone());
        let grace = runbook
            .all_blocks()
            .into_iter()
            .filter_map(|block| match block {
                Block::Command(command) => Some(self.inner.config.grace_of(command)),
                _ => None,
            })
            .max()
            .unwrap_or(self.inner.config.stop_grace);
        self.inner.runs.lock().expect("run registry lock").insert(
            execution.id,
            Live {
                control: control.clone(),
                events: events.own().clone(),
                grace,
            },
        );
        let engine = self.clone();
        tokio::spawn(async move {
            // Even if the run panics, it leaves the registry and its waiters are woken
            // (its heartbeat then lapses, and a sweep marks it interrupted).
            let _leaving = Leaving {
                engine: engine.clone(),
                id: execution.id,
                control: control.clone(),
            };
            let stored_end = run::Run::new(
                engine.inner.clone(),
                execution,
                runbook,
                control.clone(),
                events,
            )
            .execute()
            .await;
            if let Some(execution) = stored_end {
                control.keep_stored_end(execution);
            }
        });
    }

    /// Returns once the run `id` has ended here (its final state stored, or refused
    /// because the run had ended in storage already), at once when this engine does not
    /// execute it (any more). With the run as stored at its end, when this engine ran it
    /// to an end it stored with everything before it; None otherwise (read it from
    /// storage then).
    pub async fn ended(&self, id: Uuid) -> Option<Execution> {
        match self.run(id) {
            Some(control) => control.ended().await,
            None => None,
        }
    }

    /// Ends the given runs, which storage says have ended already (interrupted by
    /// another instance while this one was silent): their processes are stopped as by
    /// a stop, nothing more of them is stored, and they end as `interrupted`. Runs that
    /// have settled their own end are left alone.
    pub fn fence(&self, ids: &[Uuid]) {
        for id in ids {
            if let Some(control) = self.run(*id) {
                if control.fence() {
                    tracing::warn!(execution = %id, "the run was marked interrupted elsewhere; stopping it");
                }
            }
        }
    }

    /// The runs this engine is executing now.
    pub fn live_ids(&self) -> Vec<Uuid> {
        self.inner
            .runs
            .lock()
            .expect("run registry lock")
            .keys()
            .copied()
            .collect()
    }

    /// True once [`Engine::shutdown`] has begun: no new run may start.
    pub fn is_closing(&self) -> bool {
        self.inner.closing.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The live state of a run this engine is executing, if any.
    pub fn live_status(&self, id: Uuid) -> Option<ExecutionStatus> {
        self.run(id).map(|control| control.status())
    }

    /// Who asked a run this engine is executing to stop, and when, once a stop was
    /// accepted (it may not be stored yet).
    pub fn stop_request(&self, id: Uuid) -> Option<StopRequest> {
        self.run(id).and_then(|control| control.stop_request())
    }

    /// What a run this engine is executing waits for a person to acknowledge: none
    /// unless it is `waiting`.
    pub fn prompt(&self, id: Uuid) -> Option<Prompt> {
        self.run(id).and_then(|control| control.prompt())
    }

    /// Applies a control action of the user `by` to a live run; returns the state it
    /// moves to.
    pub fn control(
        &self,
        id: Uuid,
        action: ControlAction,
        by: &str,
    ) -> Result<ExecutionStatus, ControlError> {
        self.control_at(id, action, None, by)
    }

    /// Applies a control action of the user `by` to a live run, an acknowledgement only
    /// if the run waits at `step` when one is named (see
    /// [`control::RunControl::apply_at`]).
    pub fn control_at(
        &self,
        id: Uuid,
        action: ControlAction,
        step: Option<&str>,
        by: &str,
    ) -> Result<ExecutionStatus, ControlError> {
        match self.run(id) {
            Some(control) => control.apply_at(action, step, Some(by)),
            None => Err(ControlError::NotRunning),
        }
    }

    /// Kills the processes of every run being stopped now, without waiting for the rest
    /// of their grace periods: what a second Ctrl+C or quit signal asks for.
    pub fn kill_now(&self) {
        for (control, _) in self.live_controls() {
            control.kill_now();
        }
        self.inner.reap_now.send_replace(true);
    }

    /// The controls of the runs live here, each with the longest grace its commands get.
    fn live_controls(&self) -> Vec<(Arc<control::RunControl>, Duration)> {
        let runs = self.inner.runs.lock().expect("run registry lock");
        runs.values()
            .map(|live| (live.control.clone(), live.grace))
            .collect()
    }

    /// Stops every live run and waits (up to the longest stop grace of their commands
    /// plus a second) for them to end.
    pub async fn shutdown(&self) {
        self.inner
            .closing
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let runs = self.live_controls();
        let grace = runs.iter().map(|(_, grace)| *grace).max();
        for (control, _) in &runs {
            let _ = control.apply_at(ControlAction::Stop, None, None);
        }
        let deadline = tokio::time::Instant::now()
            + grace.unwrap_or(self.inner.config.stop_grace)
            + Duration::from_secs(1);
        // The runs wind down together: waiting for each in turn takes as long as the slowest.
        let mut ended = true;
        for (control, _) in &runs {
            if tokio::time::timeout_at(deadline, control.ended())
                .await
                .is_err()
            {
                ended = false;
                break;
            }
        }
        // What crashed runs left is ended whatever became of the live runs (each reaper
        // ends within its grace period).
        self.finish_reaping().await;
        // No run is left to write there: an app that exits without dropping the engine
        // leaves no directory behind.
        if ended {
            if let Ok(mut scratch) = self.inner.scratch.lock() {
                scratch.take();
            }
        }
    }

    /// The grace period what a crashed run left gets between SIGTERM and SIGKILL: that
    /// of the command it was running (or had paused) when its process stopped, as a
    /// stop of that command would have given it; the default where it ran none, or
    /// the run or its runbook is not known. For [`Engine::give_leftovers`].
    pub fn leftover_grace(
        &self,
        execution: Option<&Execution>,
        runbook: Option<&Runbook>,
    ) -> Duration {
        let config = &self.inner.config;
        // The sweep that marks a run interrupted stops the step it was at, with the run's
        // own end time; one not swept yet is still running or paused.
        let running = execution.and_then(|execution| {
            execution.steps.iter().find(|step| match step.status {
                StepStatus::Running | StepStatus::Paused => true,
                StepStatus::Stopped => {
                    execution.status == ExecutionStatus::Interrupted
                        && step.finished_at.is_some()
                        && step.finished_at == execution.finished_at
                }
                _ => false,
            })
        });
        running
            .zip(runbook)
            .and_then(|(step, runbook)| {
                runbook
                    .all_blocks()
                    .into_iter()
                    .find_map(|block| match block {
                        Block::Command(command) if command.id == step.block_id => {
                            Some(config.grace_of(command))
                        }
                        _ => None,
                    })
            })
            .unwrap_or(config.stop_grace)
    }

    /// Ends the processes still alive of the given runs (left by an app that crashed
    /// mid-run, say) as a stop would: SIGTERM now (and SIGCONT, for those a pause left
    /// suspended), then SIGKILL, in the background, for whatever of a run is left once
    /// its grace period is over (the default, unless [`Engine::give_leftovers`] sets
    /// another; at once, asked to kill now or shutting down), so a script's clean-up
    /// trap runs. Runs this engine executes are never touched. Returns how many
    /// processes there were.
    pub fn reap(&self, runs: &[Uuid]) -> usize {
        let live = self.live_ids();
        let runs: Vec<Uuid> = runs
            .iter()
            .copied()
            .filter(|id| !live.contains(id))
            .collect();
        if runs.is_empty() {
            return 0;
        }
        let wanted = {
            let runs = runs.clone();
            move |id: Uuid| runs.contains(&id)
        };
        let found = command::signal_processes_of(&wanted, &[Signal::SIGTERM, Signal::SIGCONT]);
        if found == 0 {
            return 0;
        }
        let runtime = match tokio::runtime::Handle::try_current() {
            Ok(runtime) if !self.is_closing() && !*self.inner.reap_now.borrow() => runtime,
            // Nothing would wait for the grace period: none.
            _ => {
                command::kill_processes_of(&wanted);
                return found;
            }
        };
        let mut kill_now = self.inner.reap_now.subscribe();
        let reaped_at = tokio::time::Instant::now();
        let default = self.inner.config.stop_grace;
        let inner = Arc::downgrade(&self.inner);
        // Each run's processes left, with a channel dropped once they are gone: those
        // waiting for that run see it close.
        let (mut waiting, ended): (Vec<_>, Vec<_>) = runs
            .iter()
            .map(|id| {
                let (done, ended) = watch::channel(());
                ((*id, done), (*id, ended))
            })
            .unzip();
        runtime.spawn(async move {
            while !*kill_now.borrow_and_update() {
                let now = tokio::time::Instant::now();
                // Each run's grace as last given, read again at every look.
                let deadline_of = |id: Uuid| {
                    let given = inner
                        .upgrade()
                        .and_then(|inner| inner.leftover_graces.lock().ok()?.get(&id).copied());
                    reaped_at + given.unwrap_or(default)
                };
                let (over, left): (Vec<_>, Vec<_>) = waiting
                    .into_iter()
                    .partition(|(id, _)| deadline_of(*id) <= now);
                if !over.is_empty() {
                    command::kill_processes_of(&|id| over.iter().any(|(run, _)| *run == id));
                }
                drop(over);
                let alive: Vec<Uuid> =
                    command::processes_of(&|id| left.iter().any(|(run, _)| *run == id))
                        .into_iter()
                        .map(|(_, _, id)| id)
                        .collect();
                waiting = left
                    .into_iter()
                    .filter(|(id, _)| alive.contains(id))
                    .collect();
                let Some(next) = waiting.iter().map(|(id, _)| deadline_of(*id)).min() else {
                    break;
                };
                tokio::select! {
                    _ = tokio::time::sleep_until(next.min(now + REAP_POLL)) => {}
                    // The engine is gone: nobody is left to wait for the grace period.
                    changed = kill_now.changed() => if changed.is_err() { break },
                }
            }
            command::kill_processes_of(&wanted);
            drop(waiting);
            if let Some(inner) = inner.upgrade() {
                if let Ok(mut graces) = inner.leftover_graces.lock() {
                    graces.retain(|id, _| !runs.contains(id));
                }
            }
        });
        let mut reapers = self.inner.reapers.lock().expect("reaper list lock");
        reapers.retain(|(_, ended)| ended.has_changed().is_ok());
        reapers.extend(ended);
        found
    }

    /// Gives what run `id` left, being reaped, `grace` from its reaping's start before
    /// SIGKILL instead of the default (see [`Engine::leftover_grace`]).
    pub fn give_leftovers(&self, id: Uuid, grace: Duration) {
        let reaping = self
            .inner
            .reapers
            .lock()
            .expect("reaper list lock")
            .iter()
            .any(|(run, ended)| *run == id && ended.has_changed().is_ok());
        if reaping {
            if let Ok(mut graces) = self.inner.leftover_graces.lock() {
                graces.insert(id, grace);
            }
        }
    }

    /// Returns once what [`Engine::reap`] set about ending of run `id` has ended
    /// (SIGKILLed at the latest when its grace period is over): before the run is
    /// retried, so the new run does not overlap what the old one left.
    pub async fn finish_reaping_of(&self, id: Uuid) {
        self.wait_for_reapers(|run| run == id).await;
    }

    /// Returns once everything [`Engine::reap`] set about ending has ended: for a
    /// process about to exit.
    pub async fn finish_reaping(&self) {
        self.wait_for_reapers(|_| true).await;
    }

    async fn wait_for_reapers(&self, of: impl Fn(Uuid) -> bool) {
        let waiting: Vec<watch::Receiver<()>> = self
            .inner
            .reapers
            .lock()
            .expect("reaper list lock")
            .iter()
            .filter(|(run, _)| of(*run))
            .map(|(_, ended)| ended.clone())
            .collect();
        for mut ended in waiting {
            // Closes when the reaper is done; nothing is ever sent.
            while ended.changed().await.is_ok() {}
        }
    }

    /// Runs marked on processes of this machine that this engine does not execute.
    pub fn foreign_runs(&self) -> Vec<Uuid> {
        let live = self.live_ids();
        let mut ids: Vec<Uuid> = command::processes_of(&|id| !live.contains(&id))
            .into_iter()
            .map(|(_, _, id)| id)
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }

    fn run(&self, id: Uuid) -> Option<Arc<control::RunControl>> {
        self.inner
            .runs
            .lock()
            .expect("run registry lock")
            .get(&id)
            .map(|live| live.control.clone())
    }
}
