//! Run changes on SQLite, each batch in as few round trips as it can be.
//!
//! sqlx runs an SQLite connection on a thread of its own, and every statement is a
//! round trip to that thread: a run's start (begin, the execution, its steps, the
//! audit chain's head, the audit record, the new head, commit) took seven of them. Here
//! a run's start is one script, `BEGIN IMMEDIATE; ...; COMMIT`, sent to a connection
//! kept for run changes alone. A later batch first reads, inside its transaction, that
//! the run has not ended (a run stored as ended takes no more records), appends the
//! batch's output to the run's console file, then sends the rest as one script: three
//! round trips, and no second check for the console. The audit chain's head is remembered between
//! batches instead of read inside each: the record a script appends checks, in its own
//! statement, that the head is still the one remembered (a stale one leaves its link
//! NULL, which the column refuses), so a head moved by another writer fails the script;
//! it is then rolled back and written again in a transaction that reads the head first.
//!
//! A batch is written by a task of its own: once begun it ends in a commit or a
//! rollback, even if its caller is dropped, so the connection is never left inside a
//! transaction holding the database's write lock.

use crate::rows::AUDIT_COLUMNS;
use crate::{encode_detail, StoreError};
use chrono::{DateTime, Utc};
use runbook_domain::{AuditEvent, Execution, ExecutionStatus, StepResult, StopRequest};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, QueryBuilder, Sqlite, SqliteConnection};
use std::sync::Arc;
use tokio::sync::Mutex;
use uuid::Uuid;

/// Steps stored by one INSERT: 11 parameters each, well under SQLite's 32,766.
const STEPS_PER_INSERT: usize = 1000;
/// Steps written by one UPDATE: 9 parameters each.
const STEPS_PER_UPDATE: usize = 1000;

/// One change of a run, owned so that the task writing it does not borrow its caller.
pub(crate) enum Change {
    /// A new execution with one row per step.
    Execution {
        execution: Execution,
        runner: Option<Uuid>,
    },
    /// The latest state of steps of the run, by index.
    Steps(Vec<(usize, StepResult)>),
    Status {
        status: ExecutionStatus,
        started_at: Option<DateTime<Utc>>,
        finished_at: Option<DateTime<Utc>>,
    },
    /// Output kept in the database (a database without a file has no console files).
    Output { offset: u64, data: Vec<u8> },
    /// A stop accepted; the first one stored stays.
    StopRequested(StopRequest),
    /// Appended to the audit chain after the changes before it.
    Audit(AuditEvent),
}

/// Done inside a guarded write's transaction, once the run is found not to have ended
/// and before its changes: appending the batch's output to the run's console file. Done
/// again if the write is tried again, so it must be idempotent (appends are).
pub(crate) type InTransaction = Arc<dyn Fn() -> Result<(), StoreError> + Send + Sync>;

/// The connection run changes are written through. Cheap to clone.
#[derive(Clone)]
pub(crate) struct RunWriter {
    state: Arc<Mutex<WriterState>>,
    /// Held by a run's write from its check that the run has not ended until its
    /// changes are stored, and by a sweep: in this process, neither slips into the other.
    turn: Arc<Mutex<()>>,
}

struct WriterState {
    conn: SqliteConnection,
    /// The audit chain's end as this connection last wrote or read it.
    head: Option<Head>,
}

#[derive(Clone, PartialEq, Eq)]
struct Head {
    seq: i64,
    hash: String,
}

impl RunWriter {
    pub(crate) async fn open(options: &SqliteConnectOptions) -> Result<RunWriter, StoreError> {
        let conn = options.connect().await?;
        Ok(RunWriter {
            state: Arc::new(Mutex::new(WriterState { conn, head: None })),
            turn: Arc::new(Mutex::new(())),
        })
    }

    /// Waits for the turn to check and change runs' states.
    pub(crate) async fn turn(&self) -> tokio::sync::OwnedMutexGuard<()> {
        self.turn.clone().lock_owned().await
    }

    /// True when the run `execution_id` is stored as ended.
    pub(crate) async fn has_ended(&self, execution_id: Uuid) -> Result<bool, StoreError> {
        self.state.lock().await.has_ended(execution_id).await
    }

    /// Applies `changes` to the run `execution_id` in one transaction.
    pub(crate) async fn write(
        &self,
        execution_id: Uuid,
        changes: Vec<Change>,
    ) -> Result<(), StoreError> {
        self.spawn_write(execution_id, changes, None).await
    }

    /// Applies `changes` to the run `execution_id` in one transaction, only if the run
    /// is not stored as ended ([`StoreError::Ended`] otherwise); `first` is done once
    /// it is known not to have ended, before the changes.
    pub(crate) async fn write_guarded(
        &self,
        execution_id: Uuid,
        changes: Vec<Change>,
        first: Option<InTransaction>,
    ) -> Result<(), StoreError> {
        let guard = Guard { first };
        self.spawn_write(execution_id, changes, Some(guard)).await
    }

    async fn spawn_write(
        &self,
        execution_id: Uuid,
        changes: Vec<Change>,
        guard: Option<Guard>,
    ) -> Result<(), StoreError> {
        let state = self.state.clone();
        let task = tokio::spawn(async move {
            let mut state = state.lock().await;
            state.apply(execution_id, &changes, guard.as_ref()).await
        });
        match task.await {
            Ok(result) => result,
            Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
            Err(_) => Err(StoreError::Io(
                "the write was cancelled by the runtime shutting down".to_string(),
            )),
        }
    }
}

/// What a guarded write does besides its changes.
struct Guard {
    first: Option<InTransaction>,
}

impl WriterState {
    async fn has_ended(&mut self, execution_id: Uuid) -> Result<bool, StoreError> {
        let status: Option<String> =
            sqlx::query_scalar("SELECT status FROM executions WHERE id = ?")
                .bind(execution_id.to_string())
                .fetch_optional(&mut self.conn)
                .await?;
        Ok(status.is_some_and(|status| crate::status_has_ended(&status)))
    }

    async fn apply(
        &mut self,
        execution_id: Uuid,
        changes: &[Change],
        guard: Option<&Guard>,
    ) -> Result<(), StoreError> {
        let audited = changes
            .iter()
            .any(|change| matches!(change, Change::Audit(_)));
        // Without a remembered head, it is read inside the transaction, under the write
        // lock: such a write cannot find it stale.
        let mut locked = audited && self.head.is_none();
        loop {
            match self.write(execution_id, changes, locked, guard).await {
                Ok(head) => {
                    self.head = head;
                    return Ok(());
                }
                Err(error) => {
                    // A failed statement leaves its transaction open; without one (BEGIN
                    // itself failed) the rollback fails, harmlessly.
                    let _ = sqlx::query("ROLLBACK").execute(&mut self.conn).await;
                    self.head = None;
                    if locked || !audited || matches!(error, StoreError::Ended) {
                        return Err(error);
                    }
                    // The remembered head may have gone stale: once more, under the lock.
                    locked = true;
                }
            }
        }
    }

    /// Writes `changes`, returning the audit chain's head after them.
    async fn write(
        &mut self,
        execution_id: Uuid,
        changes: &[Change],
        locked: bool,
        guard: Option<&Guard>,
    ) -> Result<Option<Head>, StoreError> {
        let begun = locked || guard.is_some();
        if begun {
            sqlx::query("BEGIN IMMEDIATE")
                .execute(&mut self.conn)
                .await?;
        }
        if let Some(guard) = guard {
            if self.has_ended(execution_id).await? {
                return Err(StoreError::Ended);
            }
            if let Some(first) = &guard.first {
                first()?;
            }
        }
        let head = if locked {
            let (seq, hash): (i64, String) =
                sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1")
                    .fetch_one(&mut self.conn)
                    .await?;
            Some(Head { seq, hash })
        } else {
            self.head.clone()
        };
        let (mut script, head) = script(execution_id, changes, !begun, head);
        script.build().execute(&mut self.conn).await?;
        Ok(head)
    }
}

/// The script applying `changes` (beginning its transaction if `begin`), and the
/// audit chain's head after it. Steps changed more than once are written once, with
/// their last state, before everything else; audit records go last (the chain's head
/// is the last lock a writer takes), their values in `AUDIT_COLUMNS` order.
fn script(
    execution_id: Uuid,
    changes: &[Change],
    begin: bool,
    mut head: Option<Head>,
) -> (QueryBuilder<'static, Sqlite>, Option<Head>) {
    let id = execution_id.to_string();
    let mut qb = QueryBuilder::new(if begin { "BEGIN IMMEDIATE;" } else { "" });
    for change in changes {
        if let Change::Execution { execution, runner } = change {
            push_insert_execution(&mut qb, execution, *runner);
        }
    }
    let mut steps = std::collections::BTreeMap::new();
    for change in changes {
        if let Change::Steps(changed) = change {
            steps.extend(changed.iter().map(|(index, step)| (*index, step)));
        }
    }
    let steps: Vec<(usize, &StepResult)> = steps.into_iter().collect();
    for slice in steps.chunks(STEPS_PER_UPDATE) {
        push_update_steps(&mut qb, &id, slice);
    }
    for change in changes {
        match change {
            Change::Status {
                status,
                started_at,
                finished_at,
            } => {
                qb.push(" UPDATE executions SET status = ")
                    .push_bind(status.as_str())
                    .push(", started_at = COALESCE(")
                    .push_bind(*started_at)
                    .push(", started_at), finished_at = COALESCE(")
                    .push_bind(*finished_at)
                    .push(", finished_at) WHERE id = ")
                    .push_bind(id.clone())
                    .push(";");
            }
            Change::Output { offset, data } => {
                // A chunk stored already (a batch tried again) is skipped.
                qb.push(" INSERT OR IGNORE INTO execution_output (execution_id, byte_offset, data) VALUES (")
                    .push_bind(id.clone())
                    .push(", ")
                    .push_bind(*offset as i64)
                    .push(", ")
                    .push_bind(data.clone())
                    .push(");");
            }
            Change::StopRequested(request) => {
                qb.push(" UPDATE executions SET stop_requested_by = ")
                    .push_bind(request.by.clone())
                    .push(", stop_requested_at = ")
                    .push_bind(request.at)
                    .push(" WHERE id = ")
                    .push_bind(id.clone())
                    .push(" AND stop_requested_at IS NULL;");
            }
            Change::Execution { .. } | Change::Steps(_) | Change::Audit(_) => {}
        }
    }
    for change in changes {
        if let Change::Audit(event) = change {
            let before = head
                .clone()
                .expect("the head is read before an audited batch");
            let entry = event.clone().chain(before.seq + 1, &before.hash);
            qb.push(format!(" INSERT INTO audit_log ({AUDIT_COLUMNS}) SELECT "));
            let mut values = qb.separated(", ");
            values
                .push_bind(entry.seq)
                .push_bind(entry.at)
                .push_bind(entry.actor)
                .push_bind(entry.action)
                .push_bind(entry.target)
                .push_bind(entry.outcome.as_str())
                .push_bind(entry.request_id)
                .push_bind(entry.detail);
            // The link, only if the head is the one this record was chained to.
            qb.push(", CASE WHEN seq = ")
                .push_bind(before.seq)
                .push(" AND hash = ")
                .push_bind(before.hash)
                .push(" THEN hash END, ")
                .push_bind(entry.hash.clone())
                .push(" FROM audit_head WHERE id = 1;");
            qb.push(" UPDATE audit_head SET seq = ")
                .push_bind(entry.seq)
                .push(", hash = ")
                .push_bind(entry.hash.clone())
                .push(" WHERE id = 1;");
            head = Some(Head {
                seq: entry.seq,
                hash: entry.hash,
            });
        }
    }
    qb.push(" COMMIT;");
    (qb, head)
}

fn push_insert_execution(
    qb: &mut QueryBuilder<'static, Sqlite>,
    execution: &Execution,
    runner: Option<Uuid>,
) {
    let id = execution.id.to_string();
    qb.push(
        " INSERT INTO executions (id, runbook_id, runbook_version, runbook_name, status, params,
             started_by, created_at, started_at, finished_at, retry_of, retry_from, runner_id,
             heartbeat_at, retry_root) VALUES (",
    );
    qb.separated(", ")
        .push_bind(id.clone())
        .push_bind(execution.runbook_id.to_string())
        .push_bind(execution.runbook_version)
        .push_bind(execution.runbook_name.clone())
        .push_bind(execution.status.as_str())
        .push_bind(serde_json::Value::Object(execution.params.clone()).to_string())
        .push_bind(execution.started_by.clone())
        .push_bind(execution.created_at)
        .push_bind(execution.started_at)
        .push_bind(execution.finished_at)
        .push_bind(execution.retry_of.map(|id| id.to_string()))
        .push_bind(execution.retry_from.clone())
        .push_bind(runner.map(|runner| runner.to_string()))
        .push_bind(runner.map(|_| execution.created_at));
    // A retry joins the chain of the run it retries (that run's root, or that run
    // itself): the chain has one live retry at a time.
    match execution.retry_of.map(|id| id.to_string()) {
        Some(previous) => {
            qb.push(", COALESCE((SELECT COALESCE(retry_root, id) FROM executions WHERE id = ")
                .push_bind(previous.clone())
                .push("), ")
                .push_bind(previous)
                .push(")");
        }
        None => {
            qb.push(", NULL");
        }
    }
    qb.push(");");
    // A statement takes at most 32,766 parameters: steps go in slices.
    for (slice_index, slice) in execution.steps.chunks(STEPS_PER_INSERT).enumerate() {
        qb.push(
            " INSERT INTO execution_steps (execution_id, idx, block_id, status, exit_code,
                 http_status, started_at, finished_at, output_bytes, error, detail) ",
        );
        qb.push_values(slice.iter().enumerate(), |mut row, (index, step)| {
            row.push_bind(id.clone())
                .push_bind((slice_index * STEPS_PER_INSERT + index) as i64)
                .push_bind(step.block_id.clone());
            push_step_state(&mut row, step);
        });
        qb.push(";");
    }
}

/// Writes the state of several steps of one execution in one statement.
fn push_update_steps(
    qb: &mut QueryBuilder<'static, Sqlite>,
    execution_id: &str,
    steps: &[(usize, &StepResult)],
) {
    qb.push(
        " WITH changed (idx, status, exit_code, http_status, started_at, finished_at,
             output_bytes, error, detail) AS (",
    );
    qb.push_values(steps, |mut row, (index, step)| {
        row.push_bind(*index as i64);
        push_step_state(&mut row, step);
    });
    qb.push(
        ") UPDATE execution_steps SET status = changed.status, exit_code = changed.exit_code,
             http_status = changed.http_status, started_at = changed.started_at,
             finished_at = changed.finished_at, output_bytes = changed.output_bytes,
             error = changed.error, detail = changed.detail
         FROM changed WHERE execution_steps.execution_id = ",
    );
    qb.push_bind(execution_id.to_string());
    qb.push(" AND execution_steps.idx = changed.idx;");
}

/// Binds the columns of a step's state, in the order `status, exit_code, http_status,
/// started_at, finished_at, output_bytes, error, detail`.
fn push_step_state(
    row: &mut sqlx::query_builder::Separated<'_, 'static, Sqlite, &'static str>,
    step: &StepResult,
) {
    row.push_bind(step.status.as_str())
        .push_bind(step.exit_code)
        .push_bind(step.http_status.map(i64::from))
        .push_bind(step.started_at)
        .push_bind(step.finished_at)
        .push_bind(step.output_bytes as i64)
        .push_bind(step.error.clone())
        .push_bind(encode_detail(&step.detail));
}
