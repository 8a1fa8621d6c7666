//! Write-behind persistence for one run: the run hands state changes and output to a
//! writer task and goes on at once, so storage latency never sits on a step's path.
//! Records are applied in order; the bounded queue keeps memory bounded when storage
//! is slower than the run.

use crate::{ExecutionSink, RunRecord};
use chrono::{DateTime, Utc};
use runbook_domain::{ExecutionStatus, StepResult};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

/// Records waiting for the writer, at most. Output records are at most one flush
/// batch each, so this bounds the memory a slow store can make the run hold.
const QUEUE: usize = 16;
/// How often a failed write is tried again, and the pause that grows between tries.
const RETRIES: u32 = 5;
/// How long the writer lets records gather before writing them together.
const GROUP_COMMIT: std::time::Duration = std::time::Duration::from_millis(2);
/// Records written in one transaction, at most.
const BATCH: usize = 64;
const RETRY_PAUSE: std::time::Duration = std::time::Duration::from_millis(200);

enum Record {
    Status {
        status: ExecutionStatus,
        started_at: Option<DateTime<Utc>>,
        finished_at: Option<DateTime<Utc>>,
        written: Option<oneshot::Sender<()>>,
    },
    Step {
        index: usize,
        step: Box<StepResult>,
    },
    Output {
        offset: u64,
        data: Vec<u8>,
    },
    /// Answered once everything before it is stored.
    Sync(oneshot::Sender<()>),
}

impl Record {
    /// True when the run waits until this record is stored.
    fn is_awaited(&self) -> bool {
        matches!(
            self,
            Record::Sync(_)
                | Record::Status {
                    written: Some(_),
                    ..
                }
        )
    }
}

/// The run's side of the queue. Cheap to clone.
#[derive(Clone)]
pub struct Recorder {
    queue: mpsc::Sender<Record>,
}

impl Recorder {
    /// Starts the writer task for `execution_id`.
    pub fn start(sink: Arc<dyn ExecutionSink>, execution_id: Uuid) -> Recorder {
        let (queue, records) = mpsc::channel(QUEUE);
        tokio::spawn(write(sink, execution_id, records));
        Recorder { queue }
    }

    pub async fn status(
        &self,
        status: ExecutionStatus,
        started_at: Option<DateTime<Utc>>,
        finished_at: Option<DateTime<Utc>>,
    ) {
        self.send(Record::Status {
            status,
            started_at,
            finished_at,
            written: None,
        })
        .await;
    }

    /// Records the final state and waits until it and everything before it is stored.
    pub async fn finish(&self, status: ExecutionStatus, finished_at: DateTime<Utc>) {
        let (written, stored) = oneshot::channel();
        self.send(Record::Status {
            status,
            started_at: None,
            finished_at: Some(finished_at),
            written: Some(written),
        })
        .await;
        let _ = stored.await;
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
        self.send(Record::Output { offset, data }).await;
    }

    async fn send(&self, record: Record) {
        if self.queue.send(record).await.is_err() {
            tracing::error!("the run's writer has stopped; a record is lost");
        }
    }
}

async fn write(
    sink: Arc<dyn ExecutionSink>,
    execution_id: Uuid,
    mut records: mpsc::Receiver<Record>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    // Whatever queued up while the last batch was written goes in one transaction.
    while records.recv_many(&mut batch, BATCH).await > 0 {
        // Group commit: unless someone waits for these records, the next ones get a
        // moment to join them, so a run of short steps costs few transactions.
        if !batch.iter().any(Record::is_awaited) {
            tokio::time::sleep(GROUP_COMMIT).await;
            while batch.len() < BATCH {
                match records.try_recv() {
                    Ok(record) => batch.push(record),
                    Err(_) => break,
                }
            }
        }
        let changes = changes_of(&batch);
        // A passing storage fault (a lock, a dropped connection) must not lose the records.
        let mut attempt = 0;
        loop {
            match sink.record(execution_id, &changes).await {
                Ok(()) => break,
                Err(error) if attempt < RETRIES => {
                    attempt += 1;
                    tracing::warn!(execution = %execution_id, %error, attempt, "retrying run records");
                    tokio::time::sleep(RETRY_PAUSE * attempt).await;
                }
                Err(error) => {
                    tracing::error!(execution = %execution_id, %error, "could not persist the run");
                    break;
                }
            }
        }
        for record in batch.drain(..) {
            match record {
                Record::Sync(done) => {
                    let _ = done.send(());
                }
                Record::Status {
                    written: Some(written),
                    ..
                } => {
                    let _ = written.send(());
                }
                _ => {}
            }
        }
    }
}

/// The changes a batch of records makes, in order (every step snapshot included, so
/// the store sees each state a step went through).
fn changes_of(batch: &[Record]) -> Vec<RunRecord<'_>> {
    batch
        .iter()
        .filter_map(|record| match record {
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
            Record::Step { index, step } => Some(RunRecord::Step {
                index: *index,
                step,
            }),
            Record::Output { offset, data } => Some(RunRecord::Output {
                offset: *offset,
                data,
            }),
            Record::Sync(_) => None,
        })
        .collect()
}
