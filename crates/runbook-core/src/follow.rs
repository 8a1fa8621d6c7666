//! Following a run as it goes: the events of a run this process executes, straight
//! from its engine, or those of a run another process executes (another server
//! instance, the desktop app, a terminal's `run`), derived from what that process
//! stores.

use crate::service::ELSEWHERE_POLL;
use crate::CoreError;
use futures::stream::{self, BoxStream, StreamExt};
use runbook_domain::{Execution, StepStatus};
use runbook_engine::ExecutionEvent;
use runbook_store::Store;
use std::collections::VecDeque;
use std::sync::Arc;
use tokio::sync::broadcast::{self, error::RecvError};

/// Console bytes read at once while catching up; a reader that keeps up reads less.
const OUTPUT_PAGE: u64 = 256 * 1024;
/// Pages read in one look, at most: a console growing faster than that is followed
/// at the reader's pace, at most this much behind in memory.
const PAGES_PER_LOOK: usize = 4;
/// How often a paused timer's countdown is told again.
const PAUSED_RETELL: std::time::Duration = std::time::Duration::from_secs(1);

/// What [`crate::Service::follow_execution`] returns.
pub struct Following {
    pub execution: Execution,
    /// The run's events from just before `execution` was read, up to its final status;
    /// None when the run had finished or this process does not execute it. A channel
    /// that lags or closes without a final status (the run's task failed) means: read
    /// the stored state and console.
    pub events: Option<broadcast::Receiver<ExecutionEvent>>,
    /// For an unfinished run another process executes: what it had stored when
    /// `execution` was read, to follow from.
    pub(crate) elsewhere: Option<Stored>,
}

impl Following {
    /// True for an unfinished run another process executes: its events come from
    /// [`Following::into_events`] alone, never from this process's engine.
    pub fn is_elsewhere(&self) -> bool {
        self.elsewhere.is_some()
    }

    /// The run's events from `execution` on, up to its final status: the engine's, or
    /// for a run another process executes, derived from what it stores every
    /// [`ELSEWHERE_POLL`] (steps started and finished, new console output in those
    /// batches, state changes, a timer's time left as its whole seconds change). Ends early when events were
    /// missed (a follower of this process's run that fell behind); the stored state
    /// and console then tell the rest.
    pub fn into_events(self) -> BoxStream<'static, ExecutionEvent> {
        match (self.events, self.elsewhere) {
            (Some(receiver), _) => live(receiver),
            (None, Some(stored)) => stored.into_events(self.execution),
            (None, None) => stream::empty().boxed(),
        }
    }
}

fn live(receiver: broadcast::Receiver<ExecutionEvent>) -> BoxStream<'static, ExecutionEvent> {
    stream::unfold(Some(receiver), |receiver| async move {
        let mut receiver = receiver?;
        match receiver.recv().await {
            Ok(event) => {
                let ends =
                    matches!(&event, ExecutionEvent::Status { status, .. } if status.is_finished());
                Some((event, (!ends).then_some(receiver)))
            }
            // Missed events cannot be replayed: the follower reads the stored console
            // and state from where it is.
            Err(RecvError::Lagged(_)) | Err(RecvError::Closed) => None,
        }
    })
    .boxed()
}

/// Where a follower of a run another process executes starts.
pub(crate) struct Stored {
    pub store: Arc<dyn Store>,
    /// Console bytes stored when the run was read.
    pub offset: u64,
}

impl Stored {
    fn into_events(self, execution: Execution) -> BoxStream<'static, ExecutionEvent> {
        let reader = Reader {
            store: self.store,
            seen: execution,
            offset: self.offset,
            queue: VecDeque::new(),
            ended: false,
            behind: false,
            failing: false,
            countdown: None,
        };
        stream::unfold(reader, |mut reader| async move {
            loop {
                if let Some(event) = reader.queue.pop_front() {
                    return Some((event, reader));
                }
                if reader.ended {
                    return None;
                }
                if !reader.behind {
                    tokio::time::sleep(ELSEWHERE_POLL).await;
                }
                match reader.look().await {
                    Ok(()) => reader.failing = false,
                    Err(error) => {
                        // Storage that cannot answer for a moment does not end the
                        // stream; once per outage in the log.
                        if !reader.failing {
                            tracing::warn!(%error, execution = %reader.seen.id, "could not read a followed run");
                        }
                        reader.failing = true;
                        reader.behind = false;
                    }
                }
            }
        })
        .boxed()
    }
}

struct Reader {
    store: Arc<dyn Store>,
    /// The run as last read.
    seen: Execution,
    /// Console bytes already told.
    offset: u64,
    queue: VecDeque<ExecutionEvent>,
    ended: bool,
    /// More console was stored than one look reads: the next look comes at once.
    behind: bool,
    failing: bool,
    /// The countdown last told (the timer's block, its whole seconds left, paused), and when.
    countdown: Option<((String, u64, bool), std::time::Instant)>,
}

impl Reader {
    /// Reads the run and its new console, and queues what changed since the last look.
    async fn look(&mut self) -> Result<(), CoreError> {
        let Some(now) = self.store.get_execution(self.seen.id).await? else {
            // Runs are kept; were one gone, nothing more could be told of it.
            self.ended = true;
            return Ok(());
        };
        // Read after the state, the console holds at least what the state shows (a
        // run stores its output no later than the state that follows it).
        let output = self.read_console().await?;
        if self.behind {
            // Catching up: the output alone; steps and state are told once it has.
            self.queue_output(&now, output);
            return Ok(());
        }
        self.queue_changes(&now, output);
        self.seen = now;
        Ok(())
    }

    /// The console stored since the last look (as much as one look reads), and its
    /// offset; the offset moves on past it.
    async fn read_console(&mut self) -> Result<Option<(u64, String)>, CoreError> {
        let mut bytes = Vec::new();
        self.behind = false;
        for _ in 0..PAGES_PER_LOOK {
            let from = self.offset + bytes.len() as u64;
            let page = self
                .store
                .read_output(self.seen.id, from, OUTPUT_PAGE)
                .await?;
            let full = page.len() as u64 == OUTPUT_PAGE;
            bytes.extend_from_slice(&page);
            self.behind = full;
            if !full {
                break;
            }
        }
        // Only where the follower came in (the console's length, measured while an
        // append was written) can a look start inside a character: skip its rest.
        let skip = bytes
            .iter()
            .take(3)
            .take_while(|b| (**b & 0b1100_0000) == 0b1000_0000)
            .count();
        // A look may end inside a character (a page boundary, or an append read while
        // it was written): that part waits for the next look.
        let complete = skip + runbook_engine::incomplete_tail_start(&bytes[skip..]);
        self.offset += skip as u64;
        if complete == skip {
            return Ok(None);
        }
        let offset = self.offset;
        self.offset += (complete - skip) as u64;
        Ok(Some((
            offset,
            String::from_utf8_lossy(&bytes[skip..complete]).into_owned(),
        )))
    }

    /// Output, told as the latest started step's.
    fn queue_output(&mut self, now: &Execution, output: Option<(u64, String)>) {
        let Some((offset, text)) = output else {
            return;
        };
        let block_id = now
            .steps
            .iter()
            .rev()
            .find(|step| step.started_at.is_some())
            .map(|step| step.block_id.clone())
            .unwrap_or_default();
        self.queue.push_back(ExecutionEvent::Output {
            execution_id: now.id,
            block_id,
            offset,
            text,
        });
    }

    /// Steps started, the new output, steps finished, and the run's state when it
    /// changed; the last when the run has ended.
    fn queue_changes(&mut self, now: &Execution, output: Option<(u64, String)>) {
        let execution_id = now.id;
        let seen = &self.seen;
        let mut started = Vec::new();
        let mut finished = Vec::new();
        for (index, step) in now.steps.iter().enumerate() {
            let (was_started, had_ended) = seen.steps.get(index).map_or((false, false), |old| {
                (old.started_at.is_some(), has_ended(old.status))
            });
            if step.started_at.is_some() && !was_started {
                started.push(ExecutionEvent::StepStarted {
                    execution_id,
                    block_id: step.block_id.clone(),
                });
            }
            if has_ended(step.status) && !had_ended {
                let duration_ms = match (step.started_at, step.finished_at) {
                    (Some(start), Some(end)) => (end - start).num_milliseconds().max(0) as u64,
                    _ => 0,
                };
                finished.push(ExecutionEvent::StepFinished {
                    execution_id,
                    block_id: step.block_id.clone(),
                    status: step.status,
                    exit_code: step.exit_code,
                    duration_ms,
                });
            }
        }
        let status_changed = now.status != seen.status;
        let stop_requested = now
            .stop_requested
            .as_ref()
            .filter(|_| seen.stop_requested.is_none())
            .map(|request| ExecutionEvent::StopRequested {
                execution_id,
                by: request.by.clone(),
                at: request.at,
            });
        self.queue.extend(started);
        self.queue_output(now, output);
        self.queue.extend(stop_requested);
        self.queue_countdown(now);
        self.queue.extend(finished);
        if status_changed {
            self.queue.push_back(ExecutionEvent::Status {
                execution_id,
                status: now.status,
            });
        }
        self.ended = now.status.is_finished();
    }

    /// The time left of a timer running or paused, as the run last stored it, when its
    /// whole seconds or its pause changed since the last told, and every second while
    /// paused (as the run's own process tells it).
    fn queue_countdown(&mut self, now: &Execution) {
        let timer = now.steps.iter().find_map(|step| {
            let paused = match step.status {
                StepStatus::Running => false,
                StepStatus::Paused => true,
                _ => return None,
            };
            step.detail
                .timer
                .map(|progress| (step.block_id.as_str(), progress, paused))
        });
        let Some((block_id, progress, paused)) = timer else {
            self.countdown = None;
            return;
        };
        let remaining_ms = progress.remaining_at(crate::service::now(), paused);
        let told = (block_id.to_string(), remaining_ms.div_ceil(1000), paused);
        // A paused timer is told again every second, as its own process does, so a view
        // that joins meanwhile learns the time left.
        if let Some((last, at)) = &self.countdown {
            if *last == told && (!paused || at.elapsed() < PAUSED_RETELL) {
                return;
            }
        }
        self.countdown = Some((told, std::time::Instant::now()));
        self.queue.push_back(ExecutionEvent::Countdown {
            execution_id: now.id,
            block_id: block_id.to_string(),
            remaining_ms,
            total_ms: progress.total_ms,
            paused,
        });
    }
}

/// A step that ran and ended (a skipped one never started).
fn has_ended(status: StepStatus) -> bool {
    matches!(
        status,
        StepStatus::Succeeded | StepStatus::Failed | StepStatus::Stopped
    )
}
