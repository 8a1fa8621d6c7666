//! The SQLite store: the embedded default, one file in the data directory.

use crate::rows::{outcome_columns, parse_uuid, taken_requests, OutcomeRow, CONTROL_COLUMNS};
use crate::sqlite_run::{Change, InTransaction, RunWriter};
use crate::{
    decode_draft, encode_draft, parse_enum, search_text, ApiKeyRecord, ControlOutcome,
    ControlRequest, ExecutionFilter, RunRecord, RunbookFilter, Store, StoreError,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use runbook_domain::{
    AuditEvent, Execution, Runbook, RunbookSummary, StepDetail, StepResult, VersionInfo,
};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{FromRow, QueryBuilder, Sqlite, SqlitePool};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/sqlite");

/// A [`Store`] on an SQLite file.
///
/// Run consoles are kept beside it, one append-only file per execution in
/// `<name>.console/`: writing output once, instead of through the WAL and again into
/// the database, is what lets capture keep up with a fast producer. A database without
/// a file (in memory) keeps consoles in its `execution_output` table, as PostgreSQL does.
#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// Run changes (a run's start, its state, its audit records) go through a
    /// connection of their own, a batch per round trip.
    runs: RunWriter,
    consoles: Option<Arc<Consoles>>,
}

/// The members of a step's detail a listing leaves out, as SQLite's JSON paths.
const LISTING_LEAVES_OUT: &str = "'$.stdout', '$.stderr', '$.response'";

impl SqliteStore {
    /// Opens (creating if needed) the database at `url` and applies migrations.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            // A connection to a local file does not drop like a network one: no ping
            // (a round trip to the connection's thread) before every use.
            .test_before_acquire(false)
            .connect_with(options.clone())
            .await?;
        MIGRATOR.run(&pool).await?;
        let runs = RunWriter::open(&options).await?;
        let filename = options.get_filename();
        let consoles = (!filename.as_os_str().is_empty() && filename != Path::new(":memory:"))
            .then(|| Arc::new(Consoles::beside(filename)));
        Ok(SqliteStore {
            pool,
            runs,
            consoles,
        })
    }

    /// The connection pool, for tests and tools.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// A transaction that writes. It takes the write lock at its start, so it waits
    /// its turn behind another writer instead of failing when that writer commits
    /// after this one has read (SQLITE_BUSY_SNAPSHOT).
    pub(crate) async fn write_tx(&self) -> Result<sqlx::Transaction<'static, Sqlite>, StoreError> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }
}

#[derive(FromRow)]
struct RunbookRow {
    id: String,
    content: String,
    version: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    updated_by: String,
}

impl RunbookRow {
    fn into_runbook(self) -> Result<Runbook, StoreError> {
        Ok(Runbook {
            id: parse_uuid(&self.id)?,
            draft: decode_draft(&self.content)?,
            version: self.version,
            created_at: self.created_at,
            updated_at: self.updated_at,
            updated_by: self.updated_by,
        })
    }
}

#[derive(FromRow)]
struct SummaryRow {
    id: String,
    name: String,
    description: String,
    tags: String,
    version: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    updated_by: String,
}

#[derive(FromRow)]
struct ExecutionRow {
    id: String,
    runbook_id: String,
    runbook_version: i64,
    runbook_name: String,
    status: String,
    params: String,
    started_by: String,
    created_at: DateTime<Utc>,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
    retry_of: Option<String>,
    retry_from: Option<String>,
    stop_requested_by: Option<String>,
    stop_requested_at: Option<DateTime<Utc>>,
}

#[derive(FromRow)]
struct ListedStepRow {
    execution_id: String,
    #[sqlx(flatten)]
    step: StepRow,
}

#[derive(FromRow)]
struct StepRow {
    block_id: String,
    status: String,
    exit_code: Option<i64>,
    http_status: Option<i64>,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
    output_bytes: i64,
    error: Option<String>,
    detail: Option<String>,
}

type ApiKeyRow = crate::rows::ApiKeyRow<String>;
type ControlRow = crate::rows::ControlRow<String>;

impl StepRow {
    fn into_step(self) -> Result<StepResult, StoreError> {
        Ok(StepResult {
            block_id: self.block_id,
            status: parse_enum(&self.status, "step status")?,
            exit_code: self.exit_code.map(|c| c as i32),
            http_status: self.http_status.map(|s| s as u16),
            started_at: self.started_at,
            finished_at: self.finished_at,
            output_bytes: self.output_bytes.max(0) as u64,
            error: self.error,
            detail: match self.detail {
                Some(json) => serde_json::from_str(&json)
                    .map_err(|e| StoreError::Corrupt(format!("step detail: {e}")))?,
                None => StepDetail::default(),
            },
        })
    }
}

impl SqliteStore {
    async fn steps_of(&self, execution_id: &str) -> Result<Vec<StepResult>, StoreError> {
        let rows: Vec<StepRow> = sqlx::query_as(
            "SELECT block_id, status, exit_code, http_status, started_at, finished_at, output_bytes, error, detail
             FROM execution_steps WHERE execution_id = ? ORDER BY idx",
        )
        .bind(execution_id)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(StepRow::into_step).collect()
    }

    async fn load_execution(&self, row: ExecutionRow) -> Result<Execution, StoreError> {
        let steps = self.steps_of(&row.id).await?;
        row.into_execution(steps)
    }
}

impl ExecutionRow {
    fn into_execution(self, steps: Vec<StepResult>) -> Result<Execution, StoreError> {
        Ok(Execution {
            id: parse_uuid(&self.id)?,
            runbook_id: parse_uuid(&self.runbook_id)?,
            runbook_version: self.runbook_version,
            runbook_name: self.runbook_name,
            status: parse_enum(&self.status, "execution status")?,
            params: serde_json::from_str(&self.params)
                .map_err(|e| StoreError::Corrupt(format!("execution params: {e}")))?,
            started_by: self.started_by,
            created_at: self.created_at,
            started_at: self.started_at,
            finished_at: self.finished_at,
            steps,
            retry_of: self.retry_of.as_deref().map(parse_uuid).transpose()?,
            retry_from: self.retry_from,
            stop_requested: match (self.stop_requested_by, self.stop_requested_at) {
                (Some(by), Some(at)) => Some(runbook_domain::StopRequest { by, at }),
                _ => None,
            },
        })
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn insert_runbook(&self, runbook: &Runbook, message: &str) -> Result<(), StoreError> {
        let id = runbook.id.to_string();
        let content = encode_draft(&runbook.draft);
        let tags = serde_json::to_string(&runbook.draft.tags).expect("tags serialize");
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "INSERT INTO runbooks (id, name, description, tags, search_text, content, version, created_at, updated_at, updated_by)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&id)
        .bind(&runbook.draft.name)
        .bind(&runbook.draft.description)
        .bind(&tags)
        .bind(search_text(&runbook.draft))
        .bind(&content)
        .bind(runbook.version)
        .bind(runbook.created_at)
        .bind(runbook.updated_at)
        .bind(&runbook.updated_by)
        .execute(&mut *tx)
        .await?;
        insert_tags(&mut tx, &id, &runbook.draft.tags).await?;
        insert_version(&mut tx, &id, runbook, &content, message).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn list_runbooks(
        &self,
        filter: &RunbookFilter,
    ) -> Result<(Vec<RunbookSummary>, i64), StoreError> {
        let mut count = QueryBuilder::<Sqlite>::new("SELECT COUNT(*)");
        crate::push_runbook_filter(&mut count, filter);
        let total: i64 = count.build_query_scalar().fetch_one(&self.pool).await?;

        let mut page = QueryBuilder::<Sqlite>::new(
            "SELECT r.id, r.name, r.description, r.tags, r.version, r.created_at, r.updated_at, r.updated_by",
        );
        crate::push_runbook_filter(&mut page, filter);
        page.push(" ORDER BY r.name, r.id LIMIT ")
            .push_bind(filter.limit)
            .push(" OFFSET ")
            .push_bind(filter.offset);
        let rows: Vec<SummaryRow> = page.build_query_as().fetch_all(&self.pool).await?;
        let items = rows
            .into_iter()
            .map(|row| {
                Ok(RunbookSummary {
                    id: parse_uuid(&row.id)?,
                    name: row.name,
                    description: row.description,
                    tags: serde_json::from_str(&row.tags)
                        .map_err(|e| StoreError::Corrupt(format!("tags: {e}")))?,
                    version: row.version,
                    created_at: row.created_at,
                    updated_at: row.updated_at,
                    updated_by: row.updated_by,
                })
            })
            .collect::<Result<_, StoreError>>()?;
        Ok((items, total))
    }

    async fn get_runbook(&self, id: Uuid) -> Result<Option<Runbook>, StoreError> {
        let row: Option<RunbookRow> = sqlx::query_as(
            "SELECT id, content, version, created_at, updated_at, updated_by
             FROM runbooks WHERE id = ? AND deleted_at IS NULL",
        )
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.map(RunbookRow::into_runbook).transpose()
    }

    async fn save_version(
        &self,
        runbook: &Runbook,
        based_on: i64,
        message: &str,
    ) -> Result<(), StoreError> {
        let id = runbook.id.to_string();
        let content = encode_draft(&runbook.draft);
        let tags = serde_json::to_string(&runbook.draft.tags).expect("tags serialize");
        let mut tx = self.write_tx().await?;
        let updated = sqlx::query(
            "UPDATE runbooks SET name = ?, description = ?, tags = ?, search_text = ?, content = ?,
                 version = ?, updated_at = ?, updated_by = ?
             WHERE id = ? AND version = ? AND deleted_at IS NULL",
        )
        .bind(&runbook.draft.name)
        .bind(&runbook.draft.description)
        .bind(&tags)
        .bind(search_text(&runbook.draft))
        .bind(&content)
        .bind(runbook.version)
        .bind(runbook.updated_at)
        .bind(&runbook.updated_by)
        .bind(&id)
        .bind(based_on)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 0 {
            let current: Option<i64> = sqlx::query_scalar(
                "SELECT version FROM runbooks WHERE id = ? AND deleted_at IS NULL",
            )
            .bind(&id)
            .fetch_optional(&mut *tx)
            .await?;
            return Err(match current {
                Some(current) => StoreError::VersionConflict { current },
                None => StoreError::NotFound,
            });
        }
        sqlx::query("DELETE FROM runbook_tags WHERE runbook_id = ?")
            .bind(&id)
            .execute(&mut *tx)
            .await?;
        insert_tags(&mut tx, &id, &runbook.draft.tags).await?;
        insert_version(&mut tx, &id, runbook, &content, message).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn delete_runbook(&self, id: Uuid, at: DateTime<Utc>) -> Result<bool, StoreError> {
        let mut tx = self.write_tx().await?;
        let done =
            sqlx::query("UPDATE runbooks SET deleted_at = ? WHERE id = ? AND deleted_at IS NULL")
                .bind(at)
                .bind(id.to_string())
                .execute(&mut *tx)
                .await?;
        sqlx::query("DELETE FROM runbook_tags WHERE runbook_id = ?")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    async fn list_versions(&self, id: Uuid) -> Result<Vec<VersionInfo>, StoreError> {
        #[derive(FromRow)]
        struct Row {
            version: i64,
            created_at: DateTime<Utc>,
            created_by: String,
            message: String,
        }
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT v.version, v.created_at, v.created_by, v.message FROM runbook_versions v
             JOIN runbooks r ON r.id = v.runbook_id AND r.deleted_at IS NULL
             WHERE v.runbook_id = ? ORDER BY v.version DESC",
        )
        .bind(id.to_string())
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| VersionInfo {
                version: r.version,
                created_at: r.created_at,
                created_by: r.created_by,
                message: r.message,
            })
            .collect())
    }

    async fn get_version(&self, id: Uuid, version: i64) -> Result<Option<Runbook>, StoreError> {
        let row: Option<RunbookRow> = sqlx::query_as(
            "SELECT v.runbook_id AS id, v.content, v.version, r.created_at, v.created_at AS updated_at,
                    v.created_by AS updated_by
             FROM runbook_versions v JOIN runbooks r ON r.id = v.runbook_id AND r.deleted_at IS NULL
             WHERE v.runbook_id = ? AND v.version = ?",
        )
        .bind(id.to_string())
        .bind(version)
        .fetch_optional(&self.pool)
        .await?;
        row.map(RunbookRow::into_runbook).transpose()
    }

    async fn insert_execution(
        &self,
        execution: &Execution,
        runner: Option<Uuid>,
        audit: Option<&AuditEvent>,
    ) -> Result<(), StoreError> {
        let mut changes = vec![Change::Execution {
            execution: execution.clone(),
            runner,
        }];
        changes.extend(audit.map(|event| Change::Audit(event.clone())));
        self.runs
            .write(execution.id, changes)
            .await
            .map_err(|error| match error {
                StoreError::Database(error) => crate::unique_violation(error),
                other => other,
            })
    }

    async fn execution_started_by(&self, id: Uuid) -> Result<Option<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT started_by FROM executions WHERE id = ?")
                .bind(id.to_string())
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn get_execution(&self, id: Uuid) -> Result<Option<Execution>, StoreError> {
        let row: Option<ExecutionRow> = sqlx::query_as("SELECT * FROM executions WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(row) => Ok(Some(self.load_execution(row).await?)),
            None => Ok(None),
        }
    }

    async fn list_executions(
        &self,
        filter: &ExecutionFilter,
    ) -> Result<(Vec<Execution>, i64), StoreError> {
        fn push_filter(qb: &mut QueryBuilder<'_, Sqlite>, filter: &ExecutionFilter) {
            qb.push(" FROM executions WHERE 1 = 1");
            if let Some(runbook_id) = filter.runbook_id {
                qb.push(" AND runbook_id = ")
                    .push_bind(runbook_id.to_string());
            }
            if let Some(status) = filter.status {
                qb.push(" AND status = ").push_bind(status.as_str());
            }
        }
        let mut count = QueryBuilder::<Sqlite>::new("SELECT COUNT(*)");
        push_filter(&mut count, filter);
        let total: i64 = count.build_query_scalar().fetch_one(&self.pool).await?;
        let mut page = QueryBuilder::<Sqlite>::new("SELECT *");
        push_filter(&mut page, filter);
        page.push(" ORDER BY created_at DESC, id LIMIT ")
            .push_bind(filter.limit)
            .push(" OFFSET ")
            .push_bind(filter.offset);
        let rows: Vec<ExecutionRow> = page.build_query_as().fetch_all(&self.pool).await?;
        if rows.is_empty() {
            return Ok((Vec::new(), total));
        }
        // The steps of the whole page in one query, each without its captured streams
        // and response (see `Store::list_executions`).
        let mut steps = QueryBuilder::<Sqlite>::new(format!(
            "SELECT execution_id, block_id, status, exit_code, http_status, started_at, finished_at,
                    output_bytes, error, json_remove(detail, {LISTING_LEAVES_OUT}) AS detail
             FROM execution_steps WHERE execution_id IN ("
        ));
        let mut ids = steps.separated(", ");
        for row in &rows {
            ids.push_bind(&row.id);
        }
        steps.push(") ORDER BY execution_id, idx");
        let mut by_run: std::collections::HashMap<String, Vec<StepResult>> = Default::default();
        for listed in steps
            .build_query_as::<ListedStepRow>()
            .fetch_all(&self.pool)
            .await?
        {
            by_run
                .entry(listed.execution_id)
                .or_default()
                .push(listed.step.into_step()?);
        }
        let items = rows
            .into_iter()
            .map(|row| {
                let steps = by_run.remove(&row.id).unwrap_or_default();
                row.into_execution(steps)
            })
            .collect::<Result<_, _>>()?;
        Ok((items, total))
    }

    async fn record_run(
        &self,
        execution_id: Uuid,
        records: &[RunRecord<'_>],
    ) -> Result<(), StoreError> {
        // Database changes check in their own transaction that the run has not ended,
        // and the batch's output is appended to the console file inside it, after the
        // check. A batch of output alone is checked on its own, on a turn that a sweep
        // in this process waits for (one in another process, which needs this runner
        // silent for the whole heartbeat timeout, could slip in between).
        let _turn = self.runs.turn().await;
        let mut console: Option<InTransaction> = None;
        if let Some(consoles) = &self.consoles {
            // Output first: a state stored after it never claims more than is there.
            let output: Vec<(u64, &[u8])> = records
                .iter()
                .filter_map(|record| match *record {
                    RunRecord::Output { offset, data } => Some((offset, data)),
                    _ => None,
                })
                .collect();
            if output.len() == records.len() {
                if !output.is_empty() {
                    if self.runs.has_ended(execution_id).await? {
                        return Err(StoreError::Ended);
                    }
                    consoles.append(execution_id, &output)?;
                }
                return Ok(());
            }
            if !output.is_empty() {
                // Appended inside the transaction storing the rest, once it has found
                // the run not ended: one check serves both.
                let owned: Vec<(u64, Vec<u8>)> = output
                    .iter()
                    .map(|&(offset, data)| (offset, data.to_vec()))
                    .collect();
                let consoles = consoles.clone();
                console = Some(Arc::new(move || {
                    let chunks: Vec<(u64, &[u8])> = owned
                        .iter()
                        .map(|(offset, data)| (*offset, data.as_slice()))
                        .collect();
                    consoles.append(execution_id, &chunks)
                }));
            }
        }
        let mut steps = Vec::new();
        let mut changes = Vec::with_capacity(records.len());
        for record in records {
            match *record {
                RunRecord::Status {
                    status,
                    started_at,
                    finished_at,
                } => changes.push(Change::Status {
                    status,
                    started_at,
                    finished_at,
                }),
                RunRecord::Step { index, step } => steps.push((index, step.clone())),
                RunRecord::Output { .. } if self.consoles.is_some() => {}
                RunRecord::Output { offset, data } => changes.push(Change::Output {
                    offset,
                    data: data.to_vec(),
                }),
                RunRecord::StopRequested(request) => {
                    changes.push(Change::StopRequested(request.clone()))
                }
                RunRecord::Audit(event) => changes.push(Change::Audit(event.clone())),
            }
        }
        if !steps.is_empty() {
            changes.push(Change::Steps(steps));
        }
        self.runs
            .write_guarded(execution_id, changes, console)
            .await
    }

    async fn read_output(
        &self,
        execution_id: Uuid,
        offset: u64,
        limit: u64,
    ) -> Result<Vec<u8>, StoreError> {
        if let Some(read) = self
            .consoles
            .as_ref()
            .and_then(|consoles| consoles.read(execution_id, offset, limit).transpose())
        {
            return read;
        }
        let end = offset.saturating_add(limit).min(i64::MAX as u64) as i64;
        let id = execution_id.to_string();
        let chunks: Vec<(i64, Vec<u8>)> = sqlx::query_as(
            "SELECT byte_offset, data FROM execution_output
             WHERE execution_id = ?1 AND byte_offset < ?3 AND byte_offset >= COALESCE(
                 (SELECT MAX(byte_offset) FROM execution_output WHERE execution_id = ?1 AND byte_offset <= ?2), 0)
             ORDER BY byte_offset",
        )
        .bind(&id)
        .bind(offset as i64)
        .bind(end)
        .fetch_all(&self.pool)
        .await?;
        Ok(crate::stitch(chunks, offset, limit))
    }

    async fn output_length(&self, execution_id: Uuid) -> Result<u64, StoreError> {
        if let Some(length) = self
            .consoles
            .as_ref()
            .and_then(|consoles| consoles.length(execution_id).transpose())
        {
            return length;
        }
        // The last chunk ends the console (chunks are appended without holes).
        let end: Option<i64> = sqlx::query_scalar(
            "SELECT byte_offset + length(data) FROM execution_output
             WHERE execution_id = ? ORDER BY byte_offset DESC LIMIT 1",
        )
        .bind(execution_id.to_string())
        .fetch_optional(&self.pool)
        .await?;
        Ok(end.unwrap_or(0).max(0) as u64)
    }

    async fn claim_execution(
        &self,
        id: Uuid,
        runner: Uuid,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE executions SET runner_id = ?, heartbeat_at = ? WHERE id = ?")
            .bind(runner.to_string())
            .bind(at)
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn heartbeat(&self, ids: &[Uuid], at: DateTime<Utc>) -> Result<Vec<Uuid>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut qb = QueryBuilder::<Sqlite>::new("UPDATE executions SET heartbeat_at = ");
        qb.push_bind(at)
            .push(" WHERE status IN ('queued', 'running', 'paused', 'waiting') AND id IN (");
        let mut ids_list = qb.separated(", ");
        for id in ids {
            ids_list.push_bind(id.to_string());
        }
        qb.push(") RETURNING id");
        let renewed: Vec<String> = qb.build_query_scalar().fetch_all(&self.pool).await?;
        renewed.iter().map(|id| parse_uuid(id)).collect()
    }

    async fn interrupt_unfinished(
        &self,
        at: DateTime<Utc>,
        stale_before: DateTime<Utc>,
        audit: Option<&(dyn Fn(Uuid) -> AuditEvent + Sync)>,
    ) -> Result<Vec<Uuid>, StoreError> {
        let _turn = self.runs.turn().await;
        // Writes first, so the transaction holds the write lock from its first statement.
        const ORPHANS: &str = "SELECT id FROM executions
             WHERE status IN ('queued', 'running', 'paused', 'waiting')
               AND COALESCE(heartbeat_at, created_at) < ?";
        let mut tx = self.write_tx().await?;
        sqlx::query(&format!(
            "UPDATE execution_steps SET status = 'stopped', finished_at = ?
             WHERE status IN ('running', 'paused', 'waiting') AND execution_id IN ({ORPHANS})"
        ))
        .bind(at)
        .bind(stale_before)
        .execute(&mut *tx)
        .await?;
        let done: Vec<String> = sqlx::query_scalar(&format!(
            "UPDATE executions SET status = 'interrupted', finished_at = ? WHERE id IN ({ORPHANS})
             RETURNING id"
        ))
        .bind(at)
        .bind(stale_before)
        .fetch_all(&mut *tx)
        .await?;
        let mut done = done
            .iter()
            .map(|id| parse_uuid(id))
            .collect::<Result<Vec<_>, _>>()?;
        done.sort();
        if let Some(audit) = audit {
            for id in &done {
                crate::sqlite_access::chain_audit(&mut tx, audit(*id)).await?;
            }
        }
        tx.commit().await?;
        Ok(done)
    }

    async fn request_control(
        &self,
        request: &ControlRequest,
        patience: Duration,
    ) -> Result<(), StoreError> {
        // Compared as text with the takers' `at`: a four-digit year at most.
        let last = DateTime::from_timestamp(253_402_300_799, 0).expect("9999-12-31");
        let expires_at = chrono::Duration::from_std(patience)
            .ok()
            .and_then(|patience| request.requested_at.checked_add_signed(patience))
            .map_or(last, |expires_at| expires_at.min(last));
        sqlx::query(
            "INSERT INTO control_requests
                 (id, execution_id, action, block_id, requested_by, request_id,
                  requested_at, expires_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(request.id.to_string())
        .bind(request.execution_id.to_string())
        .bind(request.action.as_str())
        .bind(&request.block_id)
        .bind(&request.requested_by)
        .bind(&request.request_id)
        .bind(request.requested_at)
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn take_control_requests(
        &self,
        executions: &[Uuid],
        at: DateTime<Utc>,
    ) -> Result<Vec<ControlRequest>, StoreError> {
        if executions.is_empty() {
            return Ok(Vec::new());
        }
        let ids = |qb: &mut QueryBuilder<Sqlite>| {
            let mut list = qb.separated(", ");
            for id in executions {
                list.push_bind(id.to_string());
            }
        };
        // Asked several times a second while runs go on: a read, which never waits
        // for a writer, and a write only when there is something to take.
        let mut qb = QueryBuilder::<Sqlite>::new(
            "SELECT EXISTS (SELECT 1 FROM control_requests
             WHERE taken_at IS NULL AND (expires_at IS NULL OR expires_at > ",
        );
        qb.push_bind(at).push(") AND execution_id IN (");
        ids(&mut qb);
        qb.push("))");
        let pending: bool = qb.build_query_scalar().fetch_one(&self.pool).await?;
        if !pending {
            return Ok(Vec::new());
        }
        let mut qb = QueryBuilder::<Sqlite>::new("UPDATE control_requests SET taken_at = ");
        qb.push_bind(at)
            .push(" WHERE taken_at IS NULL AND (expires_at IS NULL OR expires_at > ")
            .push_bind(at)
            .push(") AND execution_id IN (");
        ids(&mut qb);
        qb.push(format!(") RETURNING {CONTROL_COLUMNS}"));
        let rows: Vec<ControlRow> = qb.build_query_as().fetch_all(&self.pool).await?;
        taken_requests(rows)
    }

    async fn answer_control(
        &self,
        id: Uuid,
        outcome: &ControlOutcome,
        at: DateTime<Utc>,
        audit: Option<&AuditEvent>,
    ) -> Result<(), StoreError> {
        let (status, refusal) = outcome_columns(outcome);
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "UPDATE control_requests SET answered_at = ?, status = ?, refusal = ? WHERE id = ?",
        )
        .bind(at)
        .bind(status)
        .bind(refusal)
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?;
        if let Some(event) = audit {
            crate::sqlite_access::chain_audit(&mut tx, event.clone()).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn control_outcome(&self, id: Uuid) -> Result<Option<ControlOutcome>, StoreError> {
        let row: Option<OutcomeRow> = sqlx::query_as(&format!(
            "SELECT {} FROM control_requests WHERE id = ?",
            OutcomeRow::COLUMNS
        ))
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(OutcomeRow::into_outcome).transpose()?.flatten())
    }

    async fn withdraw_control(&self, id: Uuid) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM control_requests WHERE id = ? AND taken_at IS NULL")
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn forget_control(&self, id: Uuid) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM control_requests WHERE id = ?")
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn purge_control_requests(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM control_requests WHERE requested_at < ?")
            .bind(before)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    async fn insert_api_key(&self, key: &ApiKeyRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO api_keys (id, name, role, token_hash, created_at, last_used_at, expires_at, revoked_at, user_id)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(key.id.to_string())
        .bind(&key.name)
        .bind(key.role.as_str())
        .bind(&key.token_hash)
        .bind(key.created_at)
        .bind(key.last_used_at)
        .bind(key.expires_at)
        .bind(key.revoked_at)
        .bind(key.user_id.map(|id| id.to_string()))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn find_api_key(&self, token_hash: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        let row: Option<ApiKeyRow> = sqlx::query_as("SELECT * FROM api_keys WHERE token_hash = ?")
            .bind(token_hash)
            .fetch_optional(&self.pool)
            .await?;
        row.map(ApiKeyRow::into_record).transpose()
    }

    async fn touch_api_key(&self, id: Uuid, at: DateTime<Utc>) -> Result<(), StoreError> {
        sqlx::query("UPDATE api_keys SET last_used_at = ? WHERE id = ?")
            .bind(at)
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

async fn insert_tags(
    tx: &mut sqlx::Transaction<'_, Sqlite>,
    id: &str,
    tags: &[String],
) -> Result<(), StoreError> {
    for tag in tags {
        sqlx::query("INSERT OR IGNORE INTO runbook_tags (runbook_id, tag) VALUES (?, ?)")
            .bind(id)
            .bind(tag)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

async fn insert_version(
    tx: &mut sqlx::Transaction<'_, Sqlite>,
    id: &str,
    runbook: &Runbook,
    content: &str,
    message: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO runbook_versions (runbook_id, version, content, created_at, created_by, message)
         VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(id)
    .bind(runbook.version)
    .bind(content)
    .bind(runbook.updated_at)
    .bind(&runbook.updated_by)
    .bind(message)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Append-only console files, one per execution.
struct Consoles {
    dir: PathBuf,
    /// The file last appended to, kept open: a run appends batch after batch to its own.
    last: std::sync::Mutex<Option<(Uuid, std::fs::File)>>,
}

/// A console file's I/O error, naming the run.
fn console_error(execution_id: Uuid) -> impl Fn(std::io::Error) -> StoreError + Copy {
    move |e| StoreError::Io(format!("console of {execution_id}: {e}"))
}

impl Consoles {
    /// `runbook-studio.db` keeps its consoles in `runbook-studio.console/`.
    fn beside(database: &Path) -> Consoles {
        Consoles {
            dir: database.with_extension("console"),
            last: std::sync::Mutex::new(None),
        }
    }

    fn path(&self, execution_id: Uuid) -> PathBuf {
        self.dir.join(format!("{execution_id}.log"))
    }

    /// Appends `chunks` in order. A chunk already stored whole (a retried write) is
    /// skipped; one that would leave a hole or overlap partly refuses the whole call
    /// before anything is written.
    fn append(&self, execution_id: Uuid, chunks: &[(u64, &[u8])]) -> Result<(), StoreError> {
        use std::io::Write;
        let io = console_error(execution_id);
        let mut last = self
            .last
            .lock()
            .map_err(|_| StoreError::Io("the console files' lock is poisoned".to_string()))?;
        let file = match &mut *last {
            Some((id, file)) if *id == execution_id => file,
            other => {
                std::fs::create_dir_all(&self.dir).map_err(io)?;
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(self.path(execution_id))
                    .map_err(io)?;
                &mut other.insert((execution_id, file)).1
            }
        };
        let stored = file.metadata().map_err(io)?.len();
        let mut end = stored;
        let mut new = Vec::with_capacity(chunks.len());
        for &(offset, data) in chunks {
            let chunk_end = offset + data.len() as u64;
            if chunk_end <= stored {
                continue;
            }
            if offset != end {
                return Err(StoreError::Conflict(format!(
                    "output at offset {offset} does not follow the {end} bytes stored"
                )));
            }
            end = chunk_end;
            new.push(data);
        }
        for data in new {
            file.write_all(data).map_err(io)?;
        }
        Ok(())
    }

    /// The console file's length; `None` when the run has none.
    fn length(&self, execution_id: Uuid) -> Result<Option<u64>, StoreError> {
        match std::fs::metadata(self.path(execution_id)) {
            Ok(metadata) => Ok(Some(metadata.len())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(console_error(execution_id)(e)),
        }
    }

    /// Up to `limit` bytes from `offset`; `None` when the run has no console file.
    fn read(
        &self,
        execution_id: Uuid,
        offset: u64,
        limit: u64,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        use std::io::{Read, Seek, SeekFrom};
        let io = console_error(execution_id);
        let mut file = match std::fs::File::open(self.path(execution_id)) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(e)),
        };
        let len = file.metadata().map_err(io)?.len();
        if offset >= len {
            return Ok(Some(Vec::new()));
        }
        file.seek(SeekFrom::Start(offset)).map_err(io)?;
        let mut bytes = Vec::with_capacity(limit.min(len - offset) as usize);
        file.take(limit).read_to_end(&mut bytes).map_err(io)?;
        Ok(Some(bytes))
    }
}
