//! One run of one runbook version: walks its blocks in order and records every
//! state change through the sink, while following the operator's control requests.

use crate::command::{self, CommandSpec};
use crate::console::{Console, Utf8Stream};
use crate::control::{Requested, RunControl};
use crate::recorder::Recorder;
use crate::{EngineInner, ExecutionEvent};
use chrono::Utc;
use nix::sys::signal::Signal;
use runbook_domain::{Block, CommandBlock, Execution, ExecutionStatus, Runbook, StepStatus};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::sync::watch;
use tokio::time::{sleep_until, Instant};

/// Longest time output is still read after a command's shell has exited (from
/// background processes holding its pipes) before the group is killed.
const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(1);

/// How a step ended.
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
    requested: watch::Receiver<Requested>,
    recorder: Recorder,
    console: Console,
}

impl Run {
    pub fn new(
        inner: Arc<EngineInner>,
        execution: Execution,
        runbook: Runbook,
        control: Arc<RunControl>,
    ) -> Self {
        let requested = control.watch();
        let recorder = Recorder::start(inner.sink.clone(), execution.id);
        let console = Console::new(inner.clone(), recorder.clone(), execution.id);
        Run {
            inner,
            execution,
            runbook,
            control,
            requested,
            recorder,
            console,
        }
    }

    pub async fn execute(mut self) {
        let started = now();
        self.set_status(ExecutionStatus::Running, Some(started), None)
            .await;
        let blocks: Vec<Block> = self.runbook.all_blocks().into_iter().cloned().collect();
        let mut outcome = ExecutionStatus::Succeeded;
        for (index, block) in blocks.iter().enumerate() {
            if !self.wait_while_paused().await {
                outcome = ExecutionStatus::Stopped;
                break;
            }
            match self.step(index, block).await {
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
        }
        if self.requested.borrow().stopped {
            outcome = ExecutionStatus::Stopped;
        }
        self.skip_pending().await;
        self.console.flush().await;
        // Clients that see the final state can read everything the run stored.
        self.recorder.finish(outcome, now()).await;
        self.control.set_status(outcome);
        let _ = self.inner.events.send(ExecutionEvent::Status {
            execution_id: self.execution.id,
            status: outcome,
        });
    }

    /// Records and announces a new run state.
    async fn set_status(
        &mut self,
        status: ExecutionStatus,
        started_at: Option<chrono::DateTime<Utc>>,
        finished_at: Option<chrono::DateTime<Utc>>,
    ) {
        self.control.set_status(status);
        self.execution.status = status;
        self.recorder.status(status, started_at, finished_at).await;
        let _ = self.inner.events.send(ExecutionEvent::Status {
            execution_id: self.execution.id,
            status,
        });
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
                    self.set_status(ExecutionStatus::Running, None, None).await;
                }
                return true;
            }
            if self.execution.status != ExecutionStatus::Paused {
                self.console.flush().await;
                self.set_status(ExecutionStatus::Paused, None, None).await;
            }
            if self.requested.changed().await.is_err() {
                return false;
            }
        }
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
        self.save_step(index).await;
        let _ = self.inner.events.send(ExecutionEvent::StepStarted {
            execution_id: self.execution.id,
            block_id: block_id.clone(),
        });
        let header = format!("\x1b[1;36m▶ {block_id}\x1b[0m ({})\r\n", block.kind());
        self.count_output(index, &block_id, &header).await;

        let end = match block {
            Block::Instruction(instruction) => {
                self.instruction(index, &block_id, &instruction.text, instruction.confirm)
                    .await
            }
            Block::Command(command) => self.command(index, command).await,
            Block::Timer(timer) => self.timer(index, &block_id, timer.seconds).await,
            Block::ApiCall(_) | Block::Conditional(_) => {
                self.fail_step(
                    index,
                    &block_id,
                    format!("{} blocks cannot run in this version", block.kind()),
                )
                .await
            }
        };

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
        {
            let step = &mut self.execution.steps[index];
            step.status = status;
            step.finished_at = Some(now());
        }
        self.save_step(index).await;
        let _ = self.inner.events.send(ExecutionEvent::StepFinished {
            execution_id: self.execution.id,
            block_id,
            status,
            exit_code,
            duration_ms,
        });
        end
    }

    async fn count_output(&mut self, index: usize, block_id: &str, text: &str) {
        let written = self.console.write(block_id, text).await;
        self.execution.steps[index].output_bytes += written;
    }

    async fn fail_step(&mut self, index: usize, block_id: &str, error: String) -> StepEnd {
        self.count_output(index, block_id, &format!("\x1b[31m{error}\x1b[0m\r\n"))
            .await;
        self.execution.steps[index].error = Some(error);
        StepEnd::Failed
    }

    async fn instruction(
        &mut self,
        index: usize,
        block_id: &str,
        text: &str,
        confirm: bool,
    ) -> StepEnd {
        if !text.is_empty() {
            let shown = text.replace('\n', "\r\n");
            self.count_output(index, block_id, &format!("{shown}\r\n"))
                .await;
        }
        if !confirm {
            return StepEnd::Succeeded;
        }
        // What the person must confirm is stored before the run shows it waits for them.
        self.console.flush().await;
        self.recorder.sync().await;
        let seen = self.requested.borrow_and_update().acknowledgements;
        self.set_step_status(index, StepStatus::Waiting).await;
        self.set_status(ExecutionStatus::Waiting, None, None).await;
        loop {
            let requested = *self.requested.borrow_and_update();
            if requested.stopped {
                return StepEnd::Stopped;
            }
            if requested.acknowledgements > seen {
                self.set_status(ExecutionStatus::Running, None, None).await;
                return StepEnd::Succeeded;
            }
            if self.requested.changed().await.is_err() {
                return StepEnd::Stopped;
            }
        }
    }

    async fn timer(&mut self, index: usize, block_id: &str, seconds: u64) -> StepEnd {
        self.count_output(index, block_id, &format!("waiting {seconds} s\r\n"))
            .await;
        self.console.flush().await;
        let mut remaining = Duration::from_secs(seconds);
        loop {
            let requested = *self.requested.borrow_and_update();
            if requested.stopped {
                return StepEnd::Stopped;
            }
            if requested.paused {
                self.pause_step(index).await;
                if self.requested.changed().await.is_err() {
                    return StepEnd::Stopped;
                }
                continue;
            }
            self.resume_step(index).await;
            let resumed = Instant::now();
            tokio::select! {
                _ = tokio::time::sleep(remaining) => return StepEnd::Succeeded,
                changed = self.requested.changed() => {
                    if changed.is_err() {
                        return StepEnd::Stopped;
                    }
                    remaining = remaining.saturating_sub(resumed.elapsed());
                }
            }
        }
    }

    async fn pause_step(&mut self, index: usize) {
        if self.execution.steps[index].status != StepStatus::Paused {
            self.console.flush().await;
            self.set_step_status(index, StepStatus::Paused).await;
            self.set_status(ExecutionStatus::Paused, None, None).await;
        }
    }

    async fn resume_step(&mut self, index: usize) {
        if self.execution.steps[index].status == StepStatus::Paused {
            self.set_step_status(index, StepStatus::Running).await;
            self.set_status(ExecutionStatus::Running, None, None).await;
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
            ..
        } = block;
        let spec = CommandSpec {
            shell: *shell,
            script,
            workdir: workdir.as_deref(),
            env,
        };
        let mut child = match command::spawn(&spec) {
            Ok(child) => child,
            Err(error) => {
                return self
                    .fail_step(
                        index,
                        block_id,
                        format!("could not start {}: {error}", shell.program()),
                    )
                    .await
            }
        };
        let pgid = child.id().expect("a just-spawned child has a pid");
        // Nothing the command started outlives its step, even if this task is dropped.
        let _group = command::GroupGuard(pgid);
        let mut stdout = child.stdout.take().expect("stdout is piped");
        let mut stderr = child.stderr.take().expect("stderr is piped");
        let (mut out_buf, mut err_buf) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
        let (mut out_text, mut err_text) = (Utf8Stream::default(), Utf8Stream::default());
        let (mut out_open, mut err_open) = (true, true);
        let mut exit = None;
        let mut stopping = false;
        let mut timed_out = false;
        let far = Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600);
        let mut timeout_at = timeout_secs.map_or(far, |s| Instant::now() + Duration::from_secs(s));
        let mut paused_at: Option<Instant> = None;
        let mut kill_at = far;
        let mut drain_until = far;
        let mut flush_tick = tokio::time::interval(self.inner.config.flush_interval);

        while exit.is_none() || out_open || err_open {
            tokio::select! {
                read = stdout.read(&mut out_buf), if out_open => match read {
                    Ok(0) | Err(_) => {
                        out_open = false;
                        let rest = out_text.finish();
                        self.count_output(index, block_id, &rest).await;
                    }
                    Ok(n) => {
                        let text = out_text.decode(&out_buf[..n]);
                        self.count_output(index, block_id, &text).await;
                    }
                },
                read = stderr.read(&mut err_buf), if err_open => match read {
                    Ok(0) | Err(_) => {
                        err_open = false;
                        let rest = err_text.finish();
                        self.count_output(index, block_id, &rest).await;
                    }
                    Ok(n) => {
                        let text = err_text.decode(&err_buf[..n]);
                        self.count_output(index, block_id, &text).await;
                    }
                },
                status = child.wait(), if exit.is_none() => {
                    exit = Some(status);
                    drain_until = Instant::now() + DRAIN_AFTER_EXIT;
                }
                _ = flush_tick.tick() => self.console.flush().await,
                changed = self.requested.changed(), if !stopping => {
                    let requested = if changed.is_ok() { *self.requested.borrow_and_update() } else { Requested { stopped: true, ..Requested::default() } };
                    if requested.stopped {
                        stopping = true;
                        command::signal_group(pgid, Signal::SIGTERM);
                        command::signal_group(pgid, Signal::SIGCONT);
                        kill_at = Instant::now() + self.inner.config.stop_grace;
                    } else if requested.paused && paused_at.is_none() {
                        command::signal_group(pgid, Signal::SIGSTOP);
                        paused_at = Some(Instant::now());
                        self.pause_step(index).await;
                    } else if !requested.paused {
                        if let Some(since) = paused_at.take() {
                            timeout_at += since.elapsed();
                            command::signal_group(pgid, Signal::SIGCONT);
                            self.resume_step(index).await;
                        }
                    }
                }
                _ = sleep_until(timeout_at), if paused_at.is_none() && !stopping && exit.is_none() => {
                    timed_out = true;
                    stopping = true;
                    command::signal_group(pgid, Signal::SIGTERM);
                    kill_at = Instant::now() + self.inner.config.stop_grace;
                }
                _ = sleep_until(kill_at) => {
                    command::signal_group(pgid, Signal::SIGKILL);
                    kill_at = far;
                }
                _ = sleep_until(drain_until) => break,
            }
        }
        drop(_group);

        let code = exit.and_then(|status| status.ok()).map(command::exit_code);
        self.execution.steps[index].exit_code = code;
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

    /// Steps the run never reached are recorded as skipped.
    async fn skip_pending(&mut self) {
        for index in 0..self.execution.steps.len() {
            if self.execution.steps[index].status == StepStatus::Pending {
                self.set_step_status(index, StepStatus::Skipped).await;
            }
        }
    }
}

/// Now, to the microsecond: the precision both databases keep.
fn now() -> chrono::DateTime<Utc> {
    use chrono::SubsecRound;
    Utc::now().trunc_subsecs(6)
}
