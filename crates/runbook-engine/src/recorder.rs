//! Write-behind persistence for one run: the run hands state changes and output to a
//! writer task and goes on at once, so storage latency never sits on a step's path.
//! Records are applied in order. The writer gathers records for a short window and
//! stores them in one transaction; handing one over does not wake it, so a run of
//! short steps costs the writer one wake-up and one transaction per window. Output
//! waiting to be stored is bounded in bytes, so memory stays bounded when storage is
//! slower than the run.

use crate::control::RunControl;
use crate::{ExecutionSink, RunRecord, RunRef, SinkError};
use chrono::{DateTime, Utc};
use runbook_domain::{ExecutionStatus, StepResult, StopRequest};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, Notify, OwnedSemaphorePermit, Semaphore};
use uuid::Uuid;

/// Records waiting for the writer, at most (state records are small; output is
/// bounded by [`OUTPUT_BUDGET`]).
const QUEUE: usize = 4096;
/// Output bytes handed over and not yet stored, at most. A larger batch waits for
/// the whole budget.
const OUTPUT_BUDGET: usize = 16 * 1024 * 1024;
/// Output bytes written in one transaction, at most: a quarter of the budget, so the run
/// keeps reading into the rest while a batch is written.
const BATCH_BYTES: usize = OUTPUT_BUDGET / 4;
/// How often a failed write is tried again, and the pause that grows between tries.
const RETRIES: u32 = 5;
const RETRY_PAUSE: std::time::Duration = std::time::Duration::from_millis(200);
/// How long records may gather before they are written together, unless the run's
/// state changed or someone waits for them.
const GROUP_COMMIT: std::time::Duration = std::time::Duration::from_millis(20);
/// Records written in one transaction, at most.
const BATCH: usize = 512;

enum Record {
    Status {
        status: ExecutionStatus,
        started_at: Option<DateTime<Utc>>,
        finished_at: Option<DateTime<Utc>>,
        /// Told what became of the state.
        written: Option<oneshot::Sender<Finished>>,
        /// Stored at once rather than with the records gathering behind it.
        urgent: bool,
    },
    Step {
        index: usize,
        step: Box<StepResult>,
    },
    Output {
        offset: u64,
        data: Vec<u8>,
        /// Its share of the output budget, returned once it is stored.
        _budget: OwnedSemaphorePermit,
    },
    /// A stop accepted, stored at once so that every view shows the run stopping.
    StopRequested(StopRequest),
    /// Answered once everything before it is stored.
    Sync(oneshot::Sender<()>),
}

impl Record {
    /// A change of the run's state (rare: pause, resume, waiting, end), or something
    /// the run waits for: stored at once, with what was handed over before it.
    fn is_urgent(&self) -> bool {
        matches!(
            self,
            Record::Status { urgent: true, .. } | Record::StopRequested(_) | Record::Sync(_)
        )
    }

    fn output_len(&self) -> usize {
        match self {
            Record::Output { data, .. } => data.len(),
            _ => 0,
        }
    }
}

/// What became of a run's final state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finished {
    /// Stored, and everything recorded before it.
    Stored,
    /// Refused: storage says the run had ended there already (another instance marked
    /// it interrupted).
    Refused,
    /// Stored or not, some records before it could not be stored: storage kept failing.
    Incomplete,
}

/// The run's side of the queue. Cheap to clone.
#[derive(Clone)]
pub struct Recorder {
    queue: mpsc::Sender<Record>,
    /// Ends the writer's gathering window early: someone waits, or output is piling up.
    hurry: Arc<Notify>,
    output_budget: Arc<Semaphore>,
}

impl Recorder {
    /// Starts the writer task for the run `execution_id`, started by `started_by`.
    /// The run is fenced through `control` when storage says it has ended already.
    pub fn start(
        sink: Arc<dyn ExecutionSink>,
        execution_id: Uuid,
        started_by: String,
        control: Arc<RunControl>,
    ) -> Recorder {
        let (queue, records) = mpsc::channel(QUEUE);
        let hurry = Arc::new(Notify::new());
        tokio::spawn(write(
            sink,
            Writer {
                execution_id,
                started_by,
                control,
            },
            records,
            hurry.clone(),
        ));
        Recorder {
            queue,
            hurry,
            output_budget: Arc::new(Semaphore::new(OUTPUT_BUDGET)),
        }
    }

    /// Records a change of the run's state, stored at once.
    pub async fn status(&self, status: ExecutionStatus) {
        self.send(Record::Status {
            status,
            started_at: None,
            finished_at: None,
            written: None,
            urgent: true,
        })
        .await;
    }

    /// Records that the run has started: stored with its first steps' records rather
    /// than at once, so that storing it does not compete with its first command (the
    /// engine shows a run that has started as running whatever storage says).
    pub async fn started(&self, started_at: DateTime<Utc>) {
        self.send(Record::Status {
            status: ExecutionStatus::Running,
            started_at: Some(started_at),
            finished_at: None,
            written: None,
            urgent: false,
        })
        .await;
    }

    /// Records the final state and waits until it and everything before it is stored
    /// (or could not be).
    pub async fn finish(&self, status: ExecutionStatus, finished_at: DateTime<Utc>) -> Finished {
        let (written, stored) = oneshot::channel();
        self.send(Record::Status {
            status,
            started_at: None,
            finished_at: Some(finished_at),
            written: Some(written),
            urgent: true,
        })
        .await;
        stored.await.unwrap_or(Finished::Incomplete)
    }

    /// Records who asked for the run to stop, and when; stored at once.
    pub async fn stop_requested(&self, request: StopRequest) {
        self.send(Record::StopRequested(request)).await;
    }

    /// Waits until everything recorded so far is stored.
    pub async fn sync(&self) {
        let (done, stored) = oneshot::channel();
        self.send(Record::Sync(done)).await;
        let _ = stored.await;
    }

    pub async fn step(&self, index: usize, step: &StepResult) {
        self.send(Record::Step {
            index,
            step: Box::new(step.clone()),
        })
        .await;
    }

    pub async fn output(&self, offset: u64, data: Vec<u8>) {
        let share = data.len().clamp(1, OUTPUT_BUDGET) as u32;
        let budget = match self.output_budget.clone().try_acquire_many_owned(share) {
            Ok(budget) => budget,
            Err(_) => {
                // The writer is behind: let it write what it has, and wait for room.
                self.hurry.notify_one();
                match self.output_budget.clone().acquire_many_owned(share).await {
                    Ok(budget) => budget,
                    Err(_) => return,
                }
            }
        };
        // A batch's worth waiting: no reason to let more gather.
        let in_flight = OUTPUT_BUDGET - self.output_budget.available_permits();
        let hurry = in_flight >= BATCH_BYTES;
        self.send(Record::Output {
            offset,
            data,
            _budget: budget,
        })
        .await;
        if hurry {
            self.hurry.notify_one();
        }
    }

    async fn send(&self, record: Record) {
        let urgent = record.is_urgent();
        if self.queue.send(record).await.is_err() {
            tracing::error!("the run's writer has stopped; a record is lost");
        }
        if urgent {
            self.hurry.notify_one();
        }
    }
}

/// Whose records the writer stores.
struct Writer {
    execution_id: Uuid,
    started_by: String,
    control: Arc<RunControl>,
}

async fn write(
    sink: Arc<dyn ExecutionSink>,
    writer: Writer,
    mut records: mpsc::Receiver<Record>,
    hurry: Arc<Notify>,
) {
    let execution_id = writer.execution_id;
    let mut batch = Vec::with_capacity(BATCH);
    // Set once storage refused the run as ended: later records are dropped unwritten.
    let mut ended = false;
    // Set once a batch could not be stored, however often it was tried.
    let mut lost = false;
    // True when the last batch was cut at its limits: records are waiting already.
    let mut behind = false;
    while let Some(first) = records.recv().await {
        // Group commit: unless something is urgent or the writer is behind (a burst of
        // instant steps), later records get a moment to join.
        if !first.is_urgent() && !behind {
            tokio::select! {
                _ = tokio::time::sleep(GROUP_COMMIT) => {}
                _ = hurry.notified() => {}
            }
        }
        let mut bytes = first.output_len();
        batch.push(first);
        behind = true;
        while batch.len() < BATCH && bytes < BATCH_BYTES {
            match records.try_recv() {
                Ok(record) => {
                    bytes += record.output_len();
                    batch.push(record);
                }
                Err(_) => {
                    behind = false;
                    break;
                }
            }
        }
        let changes = changes_of(&batch);
        // A passing storage fault (a lock, a dropped connection) must not lose the records.
        let mut attempt = 0;
        while !ended {
            let run = RunRef {
                execution_id,
                started_by: &writer.started_by,
            };
            match sink.record(run, &changes).await {
                Ok(()) => break,
                Err(SinkError::Ended) => {
                    ended = true;
                    writer.control.fence();
                }
                Err(error) if attempt < RETRIES => {
                    attempt += 1;
                    tracing::warn!(execution = %execution_id, %error, attempt, "retrying run records");
                    tokio::time::sleep(RETRY_PAUSE * attempt).await;
                }
                Err(error) => {
                    tracing::error!(execution = %execution_id, %error, "could not persist the run");
                    lost = true;
                    break;
                }
            }
        }
        drop(changes);
        for record in batch.drain(..) {
            match record {
                Record::Sync(done) => {
                    let _ = done.send(());
                }
                Record::Status {
                    written: Some(written),
                    ..
                } => {
                    let _ = written.send(if ended {
                        Finished::Refused
                    } else if lost {
                        Finished::Incomplete
                    } else {
                        Finished::Stored
                    });
                }
                _ => {}
            }
        }
    }
}

/// The changes a batch of records makes, in order. A step's state is taken from its
/// last record in the batch: the batch is stored in one transaction, so the states
/// before it could never be seen anyway.
fn changes_of(batch: &[Record]) -> Vec<RunRecord<'_>> {
    let mut last_of_step = std::collections::HashMap::new();
    for (position, record) in batch.iter().enumerate() {
        if let Record::Step { index, .. } = record {
            last_of_step.insert(*index, position);
        }
    }
    batch
        .iter()
        .enumerate()
        .filter_map(|(position, record)| match record {
            Record::Status {
                status,
                started_at,
                finished_at,
                ..
            } => Some(RunRecord::Status {
                status: *status,
                started_at: *started_at,
                finished_at: *finished_at,
            }),
            Record::Step { index, step } => {
                (last_of_step.get(index) == Some(&position)).then_some(RunRecord::Step {
                    index: *index,
                    step,
                })
            }
            Record::Output { offset, data, .. } => Some(RunRecord::Output {
                offset: *offset,
                data,
            }),
            Record::StopRequested(request) => Some(RunRecord::StopRequested(request)),
            Record::Sync(_) => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use runbook_domain::StepStatus;

    fn step(index: usize, status: StepStatus) -> Record {
        Record::Step {
            index,
            step: Box::new(StepResult {
                status,
                ..StepResult::pending(format!("b{index}"))
            }),
        }
    }

    #[test]
    fn a_batch_keeps_each_steps_last_state_and_the_order_of_everything_else() {
        let budget = Arc::new(Semaphore::new(8));
        let batch = vec![
            Record::Status {
                status: ExecutionStatus::Running,
                started_at: None,
                finished_at: None,
                written: None,
                urgent: true,
            },
            step(0, StepStatus::Running),
            Record::Output {
                offset: 0,
                data: b"out".to_vec(),
                _budget: budget.clone().try_acquire_many_owned(3).unwrap(),
            },
            step(0, StepStatus::Succeeded),
            step(1, StepStatus::Running),
            Record::StopRequested(StopRequest {
                by: "bob".to_string(),
                at: Utc::now(),
            }),
            Record::Sync(oneshot::channel().0),
        ];
        let changes: Vec<String> = changes_of(&batch)
            .iter()
            .map(|change| match change {
                RunRecord::Status { status, .. } => format!("run {status}"),
                RunRecord::Step { index, step } => format!("step {index} {}", step.status.as_str()),
                RunRecord::Output { offset, data } => format!("output {offset}+{}", data.len()),
                RunRecord::StopRequested(request) => format!("stop requested by {}", request.by),
            })
            .collect();
        assert_eq!(
            changes,
            [
                "run running",
                "output 0+3",
                "step 0 succeeded",
                "step 1 running",
                "stop requested by bob"
            ]
        );
        drop(batch);
        assert_eq!(
            budget.available_permits(),
            8,
            "stored output returns its budget"
        );
    }
}
