//! One run of one runbook version: walks its blocks in document order (into the
//! branch a conditional picks) and records every state change through the sink,
//! while following the operator's control requests.

use crate::command::{self, CommandSpec};
use crate::console::{Console, Utf8Stream};
use crate::control::{Prompt, Requested, RunControl};
use crate::credentials::{names_host, Credential, Destination, Written};
use crate::events::Announcer;
use crate::http;
use crate::mask::{Secrets, StreamMasker};
use crate::recorder::{Finished, Recorder};
use crate::template::{self, Quoting};
use crate::{EngineInner, ExecutionEvent};
use chrono::Utc;
use nix::sys::signal::Signal;
use runbook_domain::execution::MAX_CAPTURED_STREAM;
use runbook_domain::hosts::{written_origin, written_scheme};
use runbook_domain::template::is_template;
use runbook_domain::{
    ApiCallBlock, Block, Branch, CommandBlock, ConditionalBlock, Execution, ExecutionStatus,
    Runbook, Shell, StepStatus, TimerProgress,
};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe::Receiver;
use tokio::sync::watch;
use tokio::time::{sleep_until, Instant};

/// Longest time output is still read after a command's shell has exited (from
/// background processes holding its pipes) before the group is killed.
const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(1);
/// Longest time output is still read once a stopped command's processes were killed:
/// what holds its pipes then is no process of the run.
const DRAIN_AFTER_KILL: Duration = Duration::from_millis(200);
/// How often a stopped command's process group is checked for survivors during its
/// grace period, once its shell has exited.
const GRACE_POLL: Duration = Duration::from_millis(20);
/// Most bytes of a step's output file read for published outputs; a line cut by the
/// bound is not published.
const MAX_OUTPUT_FILE: u64 = 64 * 1024;
/// Bytes read from a command's stdout or stderr at once.
const READ_BUFFER: usize = 64 * 1024;
/// Reads made at once from each stream when a command has exited: enough to empty a
/// widened pipe.
const READS_AT_EXIT: usize = 16;
/// Bytes a stream carries before its pipe is widened (`command::widen_pipe`): only
/// commands that write in bulk pay for the larger pipe.
const BULK_AFTER: u64 = 1024 * 1024;
/// Most bytes of a response body shown in the console (all of it is stored with the step).
const MAX_BODY_SHOWN: usize = 4096;

/// How a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StepEnd {
    Succeeded,
    Failed,
    Stopped,
}

pub struct Run {
    inner: Arc<EngineInner>,
    execution: Execution,
    runbook: Runbook,
    control: Arc<RunControl>,
    events: Announcer,
    requested: watch::Receiver<Requested>,
    recorder: Recorder,
    console: Console,
    /// Step index of every block id.
    index_of: HashMap<String, usize>,
    /// Every secret resolved so far, masked in all output.
    secrets: Secrets,
    /// Buffers commands' stdout and stderr are read into.
    read_buffers: (Vec<u8>, Vec<u8>),
    /// The program started for each shell used so far: its path on the commands' PATH,
    /// or its bare name when it is not there.
    shells: HashMap<Shell, std::ffi::OsString>,
    /// The environment its commands start from, built at its first command.
    run_env: Option<command::RunEnv>,
    /// The pipes and pidfd of the last command that ended, let go once the next one
    /// has started: unregistering them takes longer than anything else between two
    /// commands.
    retired: Option<(Receiver, Receiver, command::Exit)>,
    /// Pipes for the next command, made while the last one ran.
    spare_pipes: Option<command::OutputPipes>,
    /// The step begun last, as (index, kind), while its start is not yet stored,
    /// announced or shown: a command's start is, once its process has started.
    unannounced: Option<(usize, &'static str)>,
    /// Set once the stop a person asked for is recorded and announced.
    stop_noted: bool,
}

impl Run {
    pub fn new(
        inner: Arc<EngineInner>,
        execution: Execution,
        runbook: Runbook,
        control: Arc<RunControl>,
        events: Announcer,
    ) -> Self {
        let requested = control.watch();
        let recorder = Recorder::start(
            inner.sink.clone(),
            execution.id,
            execution.started_by.clone(),
            control.clone(),
        );
        let console = Console::new(
            inner.clone(),
            events.clone(),
            recorder.clone(),
            execution.id,
        );
        let index_of = execution
            .steps
            .iter()
            .enumerate()
            .map(|(index, step)| (step.block_id.clone(), index))
            .collect();
        Run {
            inner,
            execution,
            runbook,
            control,
            events,
            requested,
            recorder,
            console,
            index_of,
            secrets: Secrets::default(),
            read_buffers: Default::default(),
            shells: HashMap::new(),
            run_env: None,
            retired: None,
            spare_pipes: None,
            unannounced: None,
            stop_noted: false,
        }
    }

    /// Runs to the end; returns the run as stored at its end, unless its end was
    /// refused or not all of it could be stored.
    pub async fn execute(mut self) -> Option<Execution> {
        // Every credential the runbook names is masked from the first line of output.
        let names = credential_names(&self.runbook);
        if !names.is_empty() {
            let forms = self.inner.credentials.masking_forms(&names).await;
            self.secrets.add(forms);
        }
        let started = now();
        // A pause accepted while the run was queued holds in `control`; the check
        // before the first step records it.
        self.control.set_status(ExecutionStatus::Running);
        self.execution.status = ExecutionStatus::Running;
        self.execution.started_at = Some(started);
        self.recorder.started(started).await;
        self.events.send(ExecutionEvent::Status {
            execution_id: self.execution.id,
            status: ExecutionStatus::Running,
        });
        if let Some(from) = self.execution.retry_from.clone() {
            let line =
                format!("\x1b[2mretrying from step {from}; earlier results reused\x1b[0m\r\n");
            self.console.write("", &line).await;
        }
        let blocks = self.runbook.draft.blocks.clone();
        let mut stack = vec![blocks.iter()];
        let mut outcome = ExecutionStatus::Succeeded;
        while let Some(level) = stack.last_mut() {
            let Some(block) = level.next() else {
                stack.pop();
                continue;
            };
            let Some(&index) = self.index_of.get(block.id()) else {
                continue;
            };
            let end = if self.execution.steps[index].detail.reused {
                StepEnd::Succeeded
            } else {
                if !self.wait_while_paused().await {
                    outcome = ExecutionStatus::Stopped;
                    break;
                }
                self.step(index, block).await
            };
            match end {
                StepEnd::Succeeded => {}
                StepEnd::Failed if block.failure_continues() => {}
                StepEnd::Failed => {
                    outcome = ExecutionStatus::Failed;
                    break;
                }
                StepEnd::Stopped => {
                    outcome = ExecutionStatus::Stopped;
                    break;
                }
            }
            if let Block::Conditional(conditional) = block {
                match self.execution.steps[index].detail.branch {
                    Some(Branch::Then) => {
                        self.skip_all(&conditional.otherwise).await;
                        stack.push(conditional.then.iter());
                    }
                    Some(Branch::Else) => {
                        self.skip_all(&conditional.then).await;
                        stack.push(conditional.otherwise.iter());
                    }
                    None => {}
                }
            }
        }
        let outcome = self.control.finish(outcome);
        self.note_stop().await;
        if self.control.is_fenced() {
            let line = "\x1b[33mthis run was marked interrupted elsewhere while this app was \
                        silent; it was stopped, and nothing more of it is stored\x1b[0m\r\n";
            self.console.write("", line).await;
        }
        self.skip_pending().await;
        self.console.flush().await;
        // Clients that see the final state can read everything the run stored.
        let finished_at = now();
        let finished = self.recorder.finish(outcome, finished_at).await;
        let outcome = match finished {
            // Marked interrupted elsewhere just as it ended: that is what is stored.
            Finished::Refused => ExecutionStatus::Interrupted,
            Finished::Stored | Finished::Incomplete => outcome,
        };
        self.events.send(ExecutionEvent::Status {
            execution_id: self.execution.id,
            status: outcome,
        });
        if finished != Finished::Stored || self.control.is_fenced() {
            return None;
        }
        self.execution.status = outcome;
        self.execution.finished_at = Some(finished_at);
        Some(self.execution)
    }

    /// Records and announces a new run state (times are set at its start and end only):
    /// `status`, unless a pause accepted meanwhile holds the run `paused`.
    async fn set_status(&mut self, status: ExecutionStatus) {
        let status = self.control.set_status(status);
        if status == self.execution.status {
            return;
        }
        self.execution.status = status;
        self.recorder.status(status).await;
        self.events.send(ExecutionEvent::Status {
            execution_id: self.execution.id,
            status,
        });
    }

    /// Records and announces who asked for the run to stop, once a person's stop has
    /// been accepted; then returns it (none until then, and for a stop of the process's
    /// own). Stored at once, so every view shows the run stopping.
    async fn note_stop(&mut self) -> Option<runbook_domain::StopRequest> {
        let request = self.control.stop_request()?;
        if !self.stop_noted {
            self.stop_noted = true;
            self.execution.stop_requested = Some(request.clone());
            self.recorder.stop_requested(request.clone()).await;
            self.events.send(ExecutionEvent::StopRequested {
                execution_id: self.execution.id,
                by: request.by.clone(),
                at: request.at,
            });
        }
        Some(request)
    }

    async fn save_step(&mut self, index: usize) {
        self.recorder
            .step(index, &self.execution.steps[index])
            .await;
    }

    async fn set_step_status(&mut self, index: usize, status: StepStatus) {
        self.execution.steps[index].status = status;
        self.save_step(index).await;
    }

    /// Between steps: holds while paused. False when the run was stopped.
    async fn wait_while_paused(&mut self) -> bool {
        loop {
            let requested = *self.requested.borrow_and_update();
            if requested.stopped {
                return false;
            }
            if !requested.paused {
                if self.execution.status == ExecutionStatus::Paused {
                    self.set_status(ExecutionStatus::Running).await;
                }
                return true;
            }
            if self.execution.status != ExecutionStatus::Paused {
                self.console.flush().await;
                self.set_status(ExecutionStatus::Paused).await;
            }
            if self.requested.changed().await.is_err() {
                return false;
            }
        }
    }

    /// True when a stop or pause has been asked for. Checked right before a step
    /// starts its process or sends its request: preparing it (credentials above all)
    /// may take a while after the check between steps.
    fn held_back(&self) -> bool {
        let requested = self.requested.borrow();
        requested.stopped || requested.paused
    }

    /// Right before a step starts its work: holds while paused, the step shown as
    /// paused. False when the run was stopped: the step ends without its work.
    async fn wait_before_start(&mut self, index: usize) -> bool {
        self.announce_start().await;
        if self.requested.borrow().paused {
            self.pause_step(index).await;
        }
        let go_on = self.wait_while_paused().await;
        if go_on {
            self.resume_step(index).await;
        }
        go_on
    }

    async fn step(&mut self, index: usize, block: &Block) -> StepEnd {
        let block_id = block.id().to_string();
        let started = now();
        let clock = Instant::now();
        {
            let step = &mut self.execution.steps[index];
            step.status = StepStatus::Running;
            step.started_at = Some(started);
        }
        self.unannounced = Some((index, block.kind()));
        // A command's start is stored and announced once its process has started, so
        // that this runs beside the command rather than before it.
        if !matches!(block, Block::Command(_)) {
            self.announce_start().await;
        }

        let end = match block {
            Block::Instruction(instruction) => {
                self.instruction(index, &block_id, &instruction.text, instruction.confirm)
                    .await
            }
            Block::Command(command) => self.command(index, command).await,
            Block::Timer(timer) => self.timer(index, &block_id, timer.seconds).await,
            Block::ApiCall(call) => self.api_call(index, call).await,
            Block::Conditional(conditional) => self.conditional(index, conditional).await,
        };

        self.announce_start().await;
        let status = match end {
            StepEnd::Succeeded => StepStatus::Succeeded,
            StepEnd::Failed => StepStatus::Failed,
            StepEnd::Stopped => StepStatus::Stopped,
        };
        let duration_ms = clock.elapsed().as_millis() as u64;
        let exit_code = self.execution.steps[index].exit_code;
        let footer = match (&end, exit_code) {
            (StepEnd::Succeeded, _) => format!("\x1b[32m✔ {block_id}\x1b[0m {duration_ms} ms\r\n"),
            (StepEnd::Failed, Some(code)) => {
                format!("\x1b[31m✘ {block_id}\x1b[0m exit code {code}, {duration_ms} ms\r\n")
            }
            (StepEnd::Failed, None) => format!("\x1b[31m✘ {block_id}\x1b[0m {duration_ms} ms\r\n"),
            (StepEnd::Stopped, _) => format!("\x1b[33m■ {block_id}\x1b[0m stopped\r\n"),
        };
        self.count_output(index, &block_id, &footer).await;
        // The step's output is handed over before its end (records are stored in
        // order): storage never shows a step ended ahead of its last output, which is
        // what a follower of the run in another process reads.
        self.console.flush().await;
        {
            let step = &mut self.execution.steps[index];
            step.status = status;
            step.finished_at = Some(now());
        }
        self.save_step(index).await;
        self.events.send(ExecutionEvent::StepFinished {
            execution_id: self.execution.id,
            block_id,
            status,
            exit_code,
            duration_ms,
        });
        end
    }

    /// Stores and announces the start of the step begun last, and shows its header,
    /// unless that is done already; before anything else of the step is shown.
    async fn announce_start(&mut self) {
        let Some((index, kind)) = self.unannounced.take() else {
            return;
        };
        self.save_step(index).await;
        let block_id = self.execution.steps[index].block_id.clone();
        self.events.send(ExecutionEvent::StepStarted {
            execution_id: self.execution.id,
            block_id: block_id.clone(),
        });
        let header = format!("\x1b[1;36m▶ {block_id}\x1b[0m ({kind})\r\n");
        self.count_output(index, &block_id, &header).await;
    }

    async fn count_output(&mut self, index: usize, block_id: &str, text: &str) {
        let written = self.console.write(block_id, text).await;
        self.execution.steps[index].output_bytes += written;
    }

    async fn fail_step(&mut self, index: usize, block_id: &str, error: String) -> StepEnd {
        self.announce_start().await;
        let error = self.secrets.mask(&error);
        self.count_output(index, block_id, &format!("\x1b[31m{error}\x1b[0m\r\n"))
            .await;
        self.execution.steps[index].error = Some(error);
        StepEnd::Failed
    }

    /// Renders a template against the run's context as it is now.
    fn render(&self, source: &str, quoting: Quoting) -> Result<String, String> {
        if !is_template(source) {
            return Ok(source.to_string());
        }
        template::render(source, &template::context(&self.execution), quoting)
    }

    /// Resolves a credential for a step that sends it to `destination` and adds its
    /// value to the masked secrets.
    async fn credential(
        &mut self,
        name: &str,
        block_id: &str,
        destination: Destination<'_>,
    ) -> Result<Credential, String> {
        let credential = self
            .inner
            .credentials
            .resolve(name, self.execution.id, block_id, destination)
            .await
            .map_err(|e| e.to_string())?;
        self.secrets.add(credential.secret_forms());
        Ok(credential)
    }

    async fn instruction(
        &mut self,
        index: usize,
        block_id: &str,
        text: &str,
        confirm: bool,
    ) -> StepEnd {
        let text = match self.render(text, Quoting::Raw) {
            Ok(text) => text,
            Err(error) => return self.fail_step(index, block_id, error).await,
        };
        let masked = self.secrets.mask(&text);
        if !masked.is_empty() {
            let shown = masked.replace('\n', "\r\n");
            self.count_output(index, block_id, &format!("{shown}\r\n"))
                .await;
        }
        if !confirm {
            return StepEnd::Succeeded;
        }
        self.control.set_prompt(Prompt {
            block_id: block_id.to_string(),
            text: masked,
        });
        // What the person must confirm is stored before the run shows it waits for them.
        self.console.flush().await;
        self.recorder.sync().await;
        self.set_step_status(index, StepStatus::Waiting).await;
        // A pause accepted as the run was about to wait holds: the run waits once resumed.
        let seen = loop {
            if !self.wait_while_paused().await {
                return StepEnd::Stopped;
            }
            let seen = self.requested.borrow_and_update().acknowledgements;
            self.set_status(ExecutionStatus::Waiting).await;
            if self.execution.status == ExecutionStatus::Waiting {
                break seen;
            }
        };
        loop {
            let requested = *self.requested.borrow_and_update();
            if requested.stopped {
                return StepEnd::Stopped;
            }
            if requested.acknowledgements > seen {
                self.set_status(ExecutionStatus::Running).await;
                return StepEnd::Succeeded;
            }
            if self.requested.changed().await.is_err() {
                return StepEnd::Stopped;
            }
        }
    }

    fn countdown(&self, block_id: &str, remaining: Duration, total: Duration, paused: bool) {
        self.events.send(ExecutionEvent::Countdown {
            execution_id: self.execution.id,
            block_id: block_id.to_string(),
            remaining_ms: remaining.as_millis() as u64,
            total_ms: total.as_millis() as u64,
            paused,
        });
    }

    /// Notes on the step, to be stored with its next record, the timer's time left as
    /// of now, from which views of the run in other processes count down.
    fn note_timer(&mut self, index: usize, remaining: Duration, total: Duration) {
        self.execution.steps[index].detail.timer = Some(TimerProgress {
            total_ms: total.as_millis() as u64,
            remaining_ms: remaining.as_millis() as u64,
            at: now(),
        });
    }

    async fn timer(&mut self, index: usize, block_id: &str, seconds: u64) -> StepEnd {
        self.count_output(index, block_id, &format!("waiting {seconds} s\r\n"))
            .await;
        self.console.flush().await;
        let total = Duration::from_secs(seconds);
        let mut remaining = total;
        self.note_timer(index, remaining, total);
        self.save_step(index).await;
        loop {
            let requested = *self.requested.borrow_and_update();
            if requested.stopped {
                // Stored with the step's end: the time that was left.
                self.note_timer(index, remaining, total);
                return StepEnd::Stopped;
            }
            if requested.paused {
                // Stored with the step's pause.
                self.note_timer(index, remaining, total);
                self.pause_step(index).await;
                // Said again every second while paused, so a view opened meanwhile
                // learns the time left (as a running timer's ticks tell it).
                loop {
                    self.countdown(block_id, remaining, total, true);
                    tokio::select! {
                        changed = self.requested.changed() => {
                            if changed.is_err() {
                                return StepEnd::Stopped;
                            }
                            break;
                        }
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
                continue;
            }
            // Stored with the step's resume (after a pause: the time left is unchanged).
            self.note_timer(index, remaining, total);
            self.resume_step(index).await;
            let resumed = Instant::now();
            let deadline = resumed + remaining;
            // Ticks on whole seconds of what is left, so a countdown reads 30, 29, ...
            let mut next_tick = resumed + (remaining - Duration::from_secs(remaining.as_secs()));
            loop {
                self.countdown(
                    block_id,
                    deadline.saturating_duration_since(Instant::now()),
                    total,
                    false,
                );
                if next_tick <= Instant::now() {
                    next_tick += Duration::from_secs(1);
                }
                tokio::select! {
                    _ = sleep_until(deadline) => {
                        self.countdown(block_id, Duration::ZERO, total, false);
                        self.note_timer(index, Duration::ZERO, total);
                        return StepEnd::Succeeded;
                    }
                    _ = sleep_until(next_tick) => {}
                    changed = self.requested.changed() => {
                        if changed.is_err() {
                            return StepEnd::Stopped;
                        }
                        remaining = deadline.saturating_duration_since(Instant::now());
                        break;
                    }
                }
            }
        }
    }

    async fn pause_step(&mut self, index: usize) {
        if self.execution.steps[index].status != StepStatus::Paused {
            self.console.flush().await;
            self.set_step_status(index, StepStatus::Paused).await;
            self.set_status(ExecutionStatus::Paused).await;
        }
    }

    async fn resume_step(&mut self, index: usize) {
        if self.execution.steps[index].status == StepStatus::Paused {
            self.set_step_status(index, StepStatus::Running).await;
            self.set_status(ExecutionStatus::Running).await;
        }
    }

    /// Awaits `work` unless a stop comes first (`None` then: the work is dropped). A pause
    /// lets it finish.
    async fn unless_stopped<T>(&mut self, work: impl std::future::Future<Output = T>) -> Option<T> {
        tokio::pin!(work);
        loop {
            tokio::select! {
                result = &mut work => return Some(result),
                changed = self.requested.changed() => {
                    if changed.is_err() || self.requested.borrow_and_update().stopped {
                        return None;
                    }
                }
            }
        }
    }

    async fn conditional(&mut self, index: usize, block: &ConditionalBlock) -> StepEnd {
        let context = template::context(&self.execution);
        // A stop does not wait for an evaluation that takes long (comprehensions over
        // a large list): it is abandoned. A pause lets it finish; the next step waits.
        let evaluation = template::evaluate_apart(&block.expr, context);
        let Some(result) = self.unless_stopped(evaluation).await else {
            return StepEnd::Stopped;
        };
        match result {
            Ok(result) => {
                let (branch, name, count) = if result {
                    (Branch::Then, "then", block.then.len())
                } else {
                    (Branch::Else, "else", block.otherwise.len())
                };
                self.execution.steps[index].detail.branch = Some(branch);
                let line = format!(
                    "{} is {result}: {name} ({count} block{})\r\n",
                    self.secrets.mask(&block.expr),
                    if count == 1 { "" } else { "s" }
                );
                self.count_output(index, &block.id, &line).await;
                StepEnd::Succeeded
            }
            Err(error) => {
                self.fail_step(index, &block.id, format!("condition failed: {error}"))
                    .await
            }
        }
    }

    async fn api_call(&mut self, index: usize, block: &ApiCallBlock) -> StepEnd {
        let block_id = block.id.as_str();
        let rendered = (|| -> Result<_, String> {
            let url = self.render(&block.url, Quoting::Raw)?;
            let mut headers = BTreeMap::new();
            for (name, value) in &block.headers {
                headers.insert(name.clone(), self.render(value, Quoting::Raw)?);
            }
            let body = match &block.body {
                Some(body) => Some(self.render(body, Quoting::Raw)?),
                None => None,
            };
            Ok((url, headers, body))
        })();
        let (url, headers, body) = match rendered {
            Ok(parts) => parts,
            Err(error) => return self.fail_step(index, block_id, error).await,
        };
        let credential = match &block.credential {
            Some(name) => {
                let parsed = match reqwest::Url::parse(&url) {
                    Ok(parsed) => parsed,
                    Err(error) => {
                        let error = format!("invalid URL `{url}`: {error}");
                        return self.fail_step(index, block_id, error).await;
                    }
                };
                let written = if written_origin(&block.url) == Some(parsed.origin()) {
                    Written::Origin
                } else if written_scheme(&block.url).as_deref() == Some(parsed.scheme()) {
                    Written::Scheme
                } else {
                    Written::Nothing
                };
                // A Host header of its own would pick the server behind the host the
                // credential was checked against.
                let host = headers
                    .iter()
                    .find(|(name, _)| name.eq_ignore_ascii_case("host"));
                if let Some((_, value)) = host.filter(|(_, value)| !names_host(value, &parsed)) {
                    let error = format!(
                        "a call that carries a credential cannot send a Host header (`{value}`) other than its URL's host"
                    );
                    return self.fail_step(index, block_id, error).await;
                }
                let destination = Destination::Request {
                    url: &parsed,
                    written,
                };
                match self.credential(name, block_id, destination).await {
                    Ok(credential) => Some(credential),
                    Err(error) => return self.fail_step(index, block_id, error).await,
                }
            }
            None => None,
        };
        let line = format!("{} {}\r\n", block.method.as_str(), self.secrets.mask(&url));
        self.count_output(index, block_id, &line).await;
        self.console.flush().await;
        let timeout = block
            .timeout_secs
            .map_or(http::DEFAULT_TIMEOUT, Duration::from_secs);
        let request = http::Request {
            method: block.method,
            url,
            headers,
            body,
            credential,
            timeout,
        };
        if self.held_back() && !self.wait_before_start(index).await {
            return StepEnd::Stopped;
        }
        let clients = self.inner.http_clients();
        let clock = Instant::now();
        // A pause lets the request in flight finish; the next step waits. A stop abandons it.
        let Some(result) = self.unless_stopped(http::send(&clients, request)).await else {
            return StepEnd::Stopped;
        };
        let elapsed = clock.elapsed().as_millis();
        let mut response = match result {
            Ok(response) => response,
            Err(error) => return self.fail_step(index, block_id, error).await,
        };
        // A body kept up to its bound may end inside a secret: that start is masked too.
        response.body = if response.truncated {
            self.secrets.mask_cut(&response.body)
        } else {
            self.secrets.mask(&response.body)
        };
        for value in response.headers.values_mut() {
            *value = self.secrets.mask(value);
        }
        let status = response.status;
        let mut shown = format!(
            "→ {status} in {elapsed} ms, {} byte{}\r\n",
            response.body_bytes,
            if response.body_bytes == 1 { "" } else { "s" }
        );
        if !response.body.is_empty() {
            let mut end = response.body.len().min(MAX_BODY_SHOWN);
            while !response.body.is_char_boundary(end) {
                end -= 1;
            }
            shown.push_str(&response.body[..end].replace('\n', "\r\n"));
            if end < response.body.len() || response.truncated {
                shown.push_str(" …");
            }
            shown.push_str("\r\n");
        }
        self.count_output(index, block_id, &shown).await;
        let step = &mut self.execution.steps[index];
        step.http_status = Some(status);
        step.detail.response = Some(response);
        if block.expect_status.contains(&status) {
            StepEnd::Succeeded
        } else {
            let expected: Vec<String> = block.expect_status.iter().map(u16::to_string).collect();
            let mut error = format!("HTTP status {status}, expected {}", expected.join(" or "));
            // A call with a credential stops at a redirect to another origin: say so.
            let location = step
                .detail
                .response
                .as_ref()
                .and_then(|r| r.headers.get("location"));
            if let Some(location) = location.filter(|_| block.credential.is_some()) {
                error.push_str(&format!(
                    ": the response redirects to `{location}`, which a call that carries a credential does not follow to another origin"
                ));
            }
            self.fail_step(index, block_id, error).await
        }
    }

    /// The grace period a stopping command gets: its own, at most the configured default
    /// for a run fenced off (another instance marked it interrupted and may run it again).
    fn stop_grace(&self, own: Duration) -> Duration {
        if self.control.is_fenced() {
            own.min(self.inner.config.stop_grace)
        } else {
            own
        }
    }

    async fn command(&mut self, index: usize, block: &CommandBlock) -> StepEnd {
        let CommandBlock {
            id: block_id,
            script,
            shell,
            timeout_secs,
            workdir,
            env,
            expect_exit_codes,
            secrets,
            ..
        } = block;
        let prepared = (|| -> Result<_, String> {
            let script = self.render(script, Quoting::Shell)?;
            let workdir = workdir
                .as_deref()
                .map(|dir| self.render(dir, Quoting::Raw))
                .transpose()?;
            let mut vars = Vec::with_capacity(env.len() + secrets.len());
            for (name, value) in env {
                vars.push((name.clone(), self.render(value, Quoting::Raw)?));
            }
            Ok((script, workdir, vars))
        })();
        let (script, workdir, mut vars) = match prepared {
            Ok(parts) => parts,
            Err(error) => return self.fail_step(index, block_id, error).await,
        };
        if !secrets.is_empty() {
            // Resolving credentials may take a while: the step shows as started meanwhile.
            self.announce_start().await;
        }
        for (name, credential_name) in secrets {
            match self
                .credential(credential_name, block_id, Destination::Environment)
                .await
            {
                Ok(credential) => vars.push((name.clone(), credential.env_value().to_string())),
                Err(error) => return self.fail_step(index, block_id, error).await,
            }
        }
        let output_file = match self.inner.output_file(self.execution.id, index) {
            Ok(path) => path,
            Err(error) => {
                return self
                    .fail_step(
                        index,
                        block_id,
                        format!("could not prepare the step: {error}"),
                    )
                    .await
            }
        };
        let base_env = self.inner.config.base_env.clone();
        let program = self
            .shells
            .entry(*shell)
            .or_insert_with(|| {
                command::resolve_shell(*shell, base_env.as_deref())
                    .unwrap_or_else(|| shell.program().into())
            })
            .clone();
        // Nothing awaited from here to the spawn.
        if self.held_back() && !self.wait_before_start(index).await {
            return StepEnd::Stopped;
        }
        let execution_id = self.execution.id;
        let spec = CommandSpec {
            program: &program,
            script: &script,
            workdir: workdir.as_deref(),
            env: &vars,
            run_env: self
                .run_env
                .get_or_insert_with(|| command::RunEnv::new(base_env.as_deref(), execution_id)),
            output_file: &output_file,
        };
        let pipes = match self.spare_pipes.take() {
            Some(pipes) => Ok(pipes),
            None => command::OutputPipes::new(),
        };
        let started = match pipes.and_then(|pipes| command::spawn(&spec, pipes)) {
            Ok(child) => child,
            Err(error) => {
                let place = match &workdir {
                    Some(dir) => format!(" in {dir}"),
                    None => String::new(),
                };
                return self
                    .fail_step(
                        index,
                        block_id,
                        format!("could not start {}{place}: {error}", shell.program()),
                    )
                    .await;
            }
        };
        drop(vars);
        let command::Started {
            pid: pgid,
            mut stdout,
            mut stderr,
            exit: mut child,
            mut writers,
        } = started;
        // Nothing the command started outlives its step, even if this task is dropped
        // (here, or while its start is announced); its timeout counts from its start.
        let _group = command::GroupGuard(pgid);
        let grace = self.inner.config.grace_of(block);
        let spawned_at = Instant::now();
        self.announce_start().await;
        // While the command runs: the last one's pipes go, the next one's are made.
        self.retired = None;
        self.spare_pipes = command::OutputPipes::new().ok();
        let mut out = Stream::new(&self.secrets);
        let mut err = Stream::new(&self.secrets);
        // Read buffers are kept from step to step: a run of short steps allocates once.
        let (mut out_buf, mut err_buf) = std::mem::take(&mut self.read_buffers);
        out_buf.resize(READ_BUFFER, 0);
        err_buf.resize(READ_BUFFER, 0);
        let (mut out_open, mut err_open) = (true, true);
        let mut exit = None;
        let mut stopping = false;
        // Set once a stopped command's grace period is over and its processes are killed.
        let mut killed = false;
        // The run's controls are gone (its task is being dropped): counts as a stop.
        let mut requests_closed = false;
        let mut timed_out = false;
        let far = Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600);
        let mut timeout_at = timeout_secs.map_or(far, |s| spawned_at + Duration::from_secs(s));
        let mut paused_at: Option<Instant> = None;
        let mut kill_at = far;
        let mut drain_until = far;
        let flush_interval = self.inner.config.flush_interval;
        let mut flush_tick =
            tokio::time::interval_at(Instant::now() + flush_interval, flush_interval);

        while exit.is_none() || out_open || err_open {
            tokio::select! {
                read = stdout.read(&mut out_buf), if out_open => {
                    let text = out.take(read, &stdout, &out_buf, &mut out_open);
                    self.count_output(index, block_id, &text).await;
                },
                read = stderr.read(&mut err_buf), if err_open => {
                    let text = err.take(read, &stderr, &err_buf, &mut err_open);
                    self.count_output(index, block_id, &text).await;
                },
                status = child.wait(), if exit.is_none() => {
                    exit = Some(status);
                    // The drain counts from a pause the exit came in (see resume).
                    let base = paused_at.unwrap_or_else(Instant::now);
                    drain_until = drain_until.min(base + DRAIN_AFTER_EXIT);
                    // Unless a process the shell left holds them, the pipes end now,
                    // and what they hold is read without waiting (a process left writing
                    // is read on by this loop, within the drain period).
                    writers.close();
                    self.read_ready(index, block_id, &mut out, &stdout, &mut out_buf, &mut out_open).await;
                    self.read_ready(index, block_id, &mut err, &stderr, &mut err_buf, &mut err_open).await;
                }
                _ = flush_tick.tick() => self.console.flush().await,
                // Watched while stopping too, for a request to kill at once.
                changed = self.requested.changed(), if !killed && !requests_closed => {
                    requests_closed = changed.is_err();
                    let requested = if changed.is_ok() { *self.requested.borrow_and_update() } else { Requested { stopped: true, ..Requested::default() } };
                    if requested.stopped {
                        // Stored and told at once, also when a timeout's SIGTERM came first.
                        let by = self.note_stop().await.map(|request| format!(" by {}", request.by)).unwrap_or_default();
                        if !stopping {
                            stopping = true;
                            command::signal_group(pgid, Signal::SIGTERM);
                            command::signal_group(pgid, Signal::SIGCONT);
                            command::signal_escaped(self.execution.id, pgid, None, &[Signal::SIGTERM, Signal::SIGCONT]);
                            let grace = self.stop_grace(grace);
                            kill_at = Instant::now() + grace;
                            let line = if requested.killed {
                                format!("\x1b[33m■ kill requested{by}: the step's processes are killed now\x1b[0m\r\n")
                            } else {
                                format!("\x1b[33m■ stop requested{by}: SIGTERM sent to the step's processes; SIGKILL in {} s unless they exit\x1b[0m\r\n", grace.as_secs_f64())
                            };
                            self.count_output(index, block_id, &line).await;
                        } else if requested.killed && kill_at != far {
                            let line = format!("\x1b[33m■ kill requested{by}: the step's processes are killed now\x1b[0m\r\n");
                            self.count_output(index, block_id, &line).await;
                        }
                        if requested.killed {
                            kill_at = kill_at.min(Instant::now());
                        }
                    } else if requested.paused && paused_at.is_none() {
                        command::signal_group(pgid, Signal::SIGSTOP);
                        // What the step started that left its group (setsid) is
                        // suspended with it; found by its marks, which takes a moment.
                        command::signal_escaped(self.execution.id, pgid, Some(&output_file), &[Signal::SIGSTOP]);
                        paused_at = Some(Instant::now());
                        self.pause_step(index).await;
                    } else if !requested.paused {
                        if let Some(since) = paused_at.take() {
                            let paused_for = since.elapsed();
                            timeout_at += paused_for;
                            if drain_until != far {
                                drain_until += paused_for;
                            }
                            command::signal_group(pgid, Signal::SIGCONT);
                            command::signal_escaped(self.execution.id, pgid, Some(&output_file), &[Signal::SIGCONT]);
                            self.resume_step(index).await;
                        }
                    }
                }
                _ = sleep_until(timeout_at), if paused_at.is_none() && !stopping && exit.is_none() => {
                    timed_out = true;
                    stopping = true;
                    command::signal_group(pgid, Signal::SIGTERM);
                    command::signal_escaped(self.execution.id, pgid, None, &[Signal::SIGTERM]);
                    kill_at = Instant::now() + self.stop_grace(grace);
                }
                _ = sleep_until(kill_at) => {
                    command::signal_group(pgid, Signal::SIGKILL);
                    // A process that left the group (setsid) is out of the signals'
                    // reach and may hold the pipes: it still carries the run's mark.
                    let id = self.execution.id;
                    command::kill_processes_of(&|of| of == id);
                    kill_at = far;
                    killed = true;
                    // What the pipes hold now is read; whatever holds them still is
                    // none of the run's processes, and is not waited for.
                    drain_until = Instant::now() + DRAIN_AFTER_KILL;
                }
                // Once stopping, what the shell started gets the whole grace period;
                // while paused, the drain waits.
                _ = sleep_until(drain_until), if killed || (!stopping && paused_at.is_none()) => break,
            }
        }
        if paused_at.is_some() && !stopping {
            // The step ended while paused (its shell had exited and the pipes closed):
            // what it started that left the group and was suspended with it runs on, as
            // it would after a step that ended unpaused.
            command::signal_escaped(
                self.execution.id,
                pgid,
                Some(&output_file),
                &[Signal::SIGCONT],
            );
        }
        // Pipes a process the step left still holds are not waited for any longer: what
        // they hold now is read, and what their streams held back is released.
        if out_open {
            self.end_stream(index, block_id, &mut out, &stdout, &mut out_buf)
                .await;
        }
        if err_open {
            self.end_stream(index, block_id, &mut err, &stderr, &mut err_buf)
                .await;
        }
        if stopping && kill_at != far {
            // The shell has gone (a shell dies of SIGTERM at once) while what it started
            // may still be cleaning up after it: the group, and what left it, get the
            // rest of their grace period before the SIGKILL below.
            let id = self.execution.id;
            while Instant::now() < kill_at
                && !self.requested.borrow().killed
                && (command::group_alive(pgid) || !command::processes_of(&|of| of == id).is_empty())
            {
                tokio::time::sleep(GRACE_POLL).await;
            }
        }
        drop(_group);
        self.read_buffers = (out_buf, err_buf);
        self.retired = Some((stdout, stderr, child));
        if stopping {
            // A process that left the group (setsid) still carries the run's mark.
            let id = self.execution.id;
            command::kill_processes_of(&|of| of == id);
        }

        let code = exit.and_then(|status| status.ok()).map(command::exit_code);
        {
            let secrets = &self.secrets;
            let step = &mut self.execution.steps[index];
            step.exit_code = code;
            step.detail.stdout = out.into_tail();
            step.detail.stderr = err.into_tail();
            if let Some(outputs) = read_outputs(&output_file, secrets) {
                step.detail.outputs = outputs;
                let _ = std::fs::remove_file(&output_file);
            }
        }
        if timed_out {
            let secs = timeout_secs.unwrap_or_default();
            return self
                .fail_step(index, block_id, format!("timed out after {secs} s"))
                .await;
        }
        if stopping {
            return StepEnd::Stopped;
        }
        match code {
            Some(code) if expect_exit_codes.contains(&code) => StepEnd::Succeeded,
            Some(code) => {
                self.execution.steps[index].error = Some(format!("exit code {code}"));
                StepEnd::Failed
            }
            None => {
                self.fail_step(index, block_id, "lost track of the process".to_string())
                    .await
            }
        }
    }

    /// Reads what a command's pipe holds now, without waiting.
    async fn read_ready(
        &mut self,
        index: usize,
        block_id: &str,
        stream: &mut Stream,
        pipe: &Receiver,
        buf: &mut [u8],
        open: &mut bool,
    ) {
        for _ in 0..READS_AT_EXIT {
            if !*open {
                break;
            }
            let Some(read) = command::read_now(pipe, buf) else {
                break;
            };
            let text = stream.take(read, pipe, buf, open);
            self.count_output(index, block_id, &text).await;
        }
    }

    /// Ends a stream whose pipe is still open: reads what it holds now, then releases
    /// what the stream held back (a possible start of a secret, part of a character).
    async fn end_stream(
        &mut self,
        index: usize,
        block_id: &str,
        stream: &mut Stream,
        pipe: &Receiver,
        buf: &mut [u8],
    ) {
        let mut open = true;
        self.read_ready(index, block_id, stream, pipe, buf, &mut open)
            .await;
        if open {
            let text = stream.finish();
            self.count_output(index, block_id, &text).await;
        }
    }

    /// Marks every block of an untaken branch (nested ones included) as skipped.
    async fn skip_all(&mut self, blocks: &[Block]) {
        let mut pending = blocks.iter().collect::<Vec<_>>();
        while let Some(block) = pending.pop() {
            if let Some(&index) = self.index_of.get(block.id()) {
                if self.execution.steps[index].status == StepStatus::Pending {
                    self.set_step_status(index, StepStatus::Skipped).await;
                }
            }
            if let Block::Conditional(conditional) = block {
                pending.extend(conditional.then.iter().chain(&conditional.otherwise));
            }
        }
    }

    /// Steps the run never reached are recorded as skipped.
    async fn skip_pending(&mut self) {
        for index in 0..self.execution.steps.len() {
            if self.execution.steps[index].status == StepStatus::Pending {
                self.set_step_status(index, StepStatus::Skipped).await;
            }
        }
    }
}

/// The credentials a runbook's blocks name (nested ones included), each once.
fn credential_names(runbook: &Runbook) -> Vec<String> {
    let mut names: Vec<String> = runbook
        .draft
        .all_blocks()
        .into_iter()
        .flat_map(|block| match block {
            Block::Command(command) => command.secrets.values().cloned().collect(),
            Block::ApiCall(call) => call.credential.iter().cloned().collect(),
            _ => Vec::new(),
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

/// One output stream of a command: masked, decoded, and its tail kept for later steps.
struct Stream {
    masker: StreamMasker,
    text: Utf8Stream,
    tail: String,
    /// Bytes read so far.
    read: u64,
}

impl Stream {
    fn new(secrets: &Secrets) -> Self {
        Stream {
            masker: secrets.stream(),
            text: Utf8Stream::default(),
            tail: String::new(),
            read: 0,
        }
    }

    /// The text of one read from `pipe` into `buf`; at the pipe's end (or a failed
    /// read), whatever is held back, and `open` becomes false.
    fn take(
        &mut self,
        read: std::io::Result<usize>,
        pipe: &Receiver,
        buf: &[u8],
        open: &mut bool,
    ) -> String {
        match read {
            Ok(0) | Err(_) => {
                *open = false;
                self.finish()
            }
            Ok(n) => {
                if self.count(n) {
                    command::widen_pipe(pipe);
                }
                self.push(&buf[..n])
            }
        }
    }

    /// Counts `n` bytes read; true once, when they make the stream a bulk one.
    fn count(&mut self, n: usize) -> bool {
        let before = self.read;
        self.read += n as u64;
        before < BULK_AFTER && self.read >= BULK_AFTER
    }

    fn push(&mut self, bytes: &[u8]) -> String {
        let text = if self.masker.is_active() {
            let masked = self.masker.push(bytes);
            self.text.decode(&masked)
        } else {
            self.text.decode(bytes)
        };
        self.keep(&text);
        text
    }

    fn finish(&mut self) -> String {
        let masked = self.masker.finish();
        let mut text = self.text.decode(&masked);
        text.push_str(&self.text.finish());
        self.keep(&text);
        text
    }

    /// The tail kept, within its bound of [`MAX_CAPTURED_STREAM`] bytes.
    fn into_tail(mut self) -> String {
        let cut = self.tail.len() - tail_of(&self.tail, MAX_CAPTURED_STREAM).len();
        self.tail.drain(..cut);
        self.tail
    }

    /// Keeps the end of the text for the tail, up to twice its bound (it is cut to its
    /// bound once, when stored).
    fn keep(&mut self, text: &str) {
        if text.len() >= MAX_CAPTURED_STREAM {
            self.tail.clear();
            self.tail.push_str(tail_of(text, MAX_CAPTURED_STREAM));
            return;
        }
        self.tail.push_str(text);
        if self.tail.len() > 2 * MAX_CAPTURED_STREAM {
            let keep_from = self.tail.len() - tail_of(&self.tail, MAX_CAPTURED_STREAM).len();
            self.tail.drain(..keep_from);
        }
    }
}

/// The last at most `max` bytes of `text`, on a character boundary.
fn tail_of(text: &str, max: usize) -> &str {
    let mut start = text.len().saturating_sub(max);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

/// The `KEY=VALUE` lines a step wrote to its output file (masked); other lines are
/// ignored. None when the step wrote no file; nothing is published from what is not a
/// regular file.
fn read_outputs(path: &std::path::Path, secrets: &Secrets) -> Option<BTreeMap<String, String>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let mut bytes = Vec::new();
    // The step may have put a FIFO (or a symlink to one, or to a terminal) in the file's
    // place: opening that waits for a writer, which would hold the run, and this thread,
    // for ever. Opened without waiting, it is then left unread.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits())
        .open(path)
        .ok()?;
    if !file.metadata().is_ok_and(|meta| meta.is_file()) {
        return Some(BTreeMap::new());
    }
    if file
        .take(MAX_OUTPUT_FILE + 1)
        .read_to_end(&mut bytes)
        .is_err()
    {
        return Some(BTreeMap::new());
    }
    if bytes.len() as u64 > MAX_OUTPUT_FILE {
        // The file goes on past the bound: the line it cuts is not the value written,
        // and could end inside a secret that masking would no longer recognise.
        let whole = bytes[..MAX_OUTPUT_FILE as usize]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |newline| newline + 1);
        bytes.truncate(whole);
    }
    let outputs = String::from_utf8_lossy(&bytes)
        .lines()
        .filter_map(|line| line.split_once('='))
        .filter(|(key, _)| {
            let mut chars = key.chars();
            matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
                && key.len() <= 64
        })
        .map(|(key, value)| (key.to_string(), secrets.mask(value)))
        .collect();
    Some(outputs)
}

/// Now, to the microsecond: the precision both databases keep.
fn now() -> chrono::DateTime<Utc> {
    use chrono::SubsecRound;
    Utc::now().trunc_subsecs(6)
}
