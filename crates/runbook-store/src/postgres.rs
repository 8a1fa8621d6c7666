//! The PostgreSQL store: the shared team database.

use crate::rows::{outcome_columns, taken_requests, OutcomeRow, CONTROL_COLUMNS};
use crate::{
    decode_draft, encode_detail, encode_draft, parse_enum, search_text, ApiKeyRecord,
    ControlOutcome, ControlRequest, ExecutionFilter, RunRecord, RunbookFilter, Store, StoreError,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use runbook_domain::{
    AuditEvent, Execution, ExecutionStatus, Runbook, RunbookSummary, StepDetail, StepResult,
    VersionInfo,
};
use sqlx::postgres::{PgListener, PgPool, PgPoolOptions};
use sqlx::{FromRow, Postgres, QueryBuilder};
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/postgres");

/// The longest patience a control request is stored with.
const CENTURY: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
/// The channel on which a new control request is announced.
const CONTROL_CHANNEL: &str = "runbook_control_requests";
/// Longest wait for an announcement while listening works: a safety net for one
/// missed while the listener reconnected.
const CONTROL_NOTICE_PATIENCE: Duration = Duration::from_secs(1);

/// A [`Store`] on a PostgreSQL database.
#[derive(Clone)]
pub struct PostgresStore {
    pool: PgPool,
    /// Hears control requests as they are made (LISTEN), once a caller waits for them.
    control_listener: Arc<tokio::sync::Mutex<Option<PgListener>>>,
}

impl PostgresStore {
    /// Connects to the database at `url` and applies migrations.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(10)
            .acquire_timeout(Duration::from_secs(10))
            // Every transaction here is written for read committed (a statement that
            // waited for a row lock reads the row as committed): whatever the server's
            // default (repeatable read, serializable), sessions use it, or concurrent
            // saves and audit appends would fail with serialization errors.
            .after_connect(|conn, _| {
                Box::pin(async move {
                    sqlx::query(
                        "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ COMMITTED",
                    )
                    .execute(conn)
                    .await?;
                    Ok(())
                })
            })
            .connect(url)
            .await?;
        MIGRATOR.run(&pool).await?;
        Ok(PostgresStore {
            pool,
            control_listener: Arc::default(),
        })
    }

    /// The connection pool, for tests and tools.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

async fn listen(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CONTROL_CHANNEL).await?;
    Ok(listener)
}

#[derive(FromRow)]
struct RunbookRow {
    id: Uuid,
    content: String,
    version: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    updated_by: String,
}

impl RunbookRow {
    fn into_runbook(self) -> Result<Runbook, StoreError> {
        Ok(Runbook {
            id: self.id,
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
    id: Uuid,
    name: String,
    description: String,
    tags: sqlx::types::Json<Vec<String>>,
    version: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    updated_by: String,
}

#[derive(FromRow)]
struct ExecutionRow {
    id: Uuid,
    runbook_id: Uuid,
    runbook_version: i64,
    runbook_name: String,
    status: String,
    params: sqlx::types::Json<serde_json::Map<String, serde_json::Value>>,
    started_by: String,
    created_at: DateTime<Utc>,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
    retry_of: Option<Uuid>,
    retry_from: Option<String>,
    stop_requested_by: Option<String>,
    stop_requested_at: Option<DateTime<Utc>>,
}

/// A step as a listing reads it: its detail as text, read without the streams and
/// response it captured.
#[derive(FromRow)]
struct ListedStepRow {
    execution_id: Uuid,
    #[sqlx(flatten)]
    step: StepRow<String>,
}

/// The parts of a step's detail a listing keeps; the rest is skipped while parsing.
#[derive(serde::Deserialize)]
struct ListedDetail {
    #[serde(default)]
    outputs: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    branch: Option<runbook_domain::Branch>,
    #[serde(default)]
    reused: bool,
    #[serde(default)]
    timer: Option<runbook_domain::TimerProgress>,
}

fn listed_detail(text: Option<String>) -> Result<StepDetail, StoreError> {
    let Some(text) = text else {
        return Ok(StepDetail::default());
    };
    let listed: ListedDetail = serde_json::from_str(&text)
        .map_err(|e| StoreError::Corrupt(format!("step detail: {e}")))?;
    Ok(StepDetail {
        outputs: listed.outputs,
        branch: listed.branch,
        reused: listed.reused,
        timer: listed.timer,
        ..StepDetail::default()
    })
}

/// A step's row, its detail read as `D`.
#[derive(FromRow)]
struct StepRow<D> {
    block_id: String,
    status: String,
    exit_code: Option<i32>,
    http_status: Option<i32>,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
    output_bytes: i64,
    error: Option<String>,
    detail: Option<D>,
}

type ApiKeyRow = crate::rows::ApiKeyRow<Uuid>;
type ControlRow = crate::rows::ControlRow<Uuid>;

const EXECUTION_COLUMNS: &str = "id, runbook_id, runbook_version, runbook_name, status, params, started_by, created_at, started_at, finished_at, retry_of, retry_from, stop_requested_by, stop_requested_at";

impl PostgresStore {
    async fn steps_of(&self, execution_id: Uuid) -> Result<Vec<StepResult>, StoreError> {
        let rows: Vec<StepRow<sqlx::types::Json<StepDetail>>> = sqlx::query_as(
            "SELECT block_id, status, exit_code, http_status, started_at, finished_at, output_bytes, error, detail
             FROM execution_steps WHERE execution_id = $1 ORDER BY idx",
        )
        .bind(execution_id)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|row| row.into_step(|detail| Ok(detail.map(|json| json.0).unwrap_or_default())))
            .collect()
    }

    async fn load_execution(&self, row: ExecutionRow) -> Result<Execution, StoreError> {
        let steps = self.steps_of(row.id).await?;
        row.into_execution(steps)
    }
}

impl<D> StepRow<D> {
    fn into_step(
        self,
        detail: impl FnOnce(Option<D>) -> Result<StepDetail, StoreError>,
    ) -> Result<StepResult, StoreError> {
        Ok(StepResult {
            block_id: self.block_id,
            status: parse_enum(&self.status, "step status")?,
            exit_code: self.exit_code,
            http_status: self.http_status.map(|s| s as u16),
            started_at: self.started_at,
            finished_at: self.finished_at,
            output_bytes: self.output_bytes.max(0) as u64,
            error: self.error,
            detail: detail(self.detail)?,
        })
    }
}

impl ExecutionRow {
    fn into_execution(self, steps: Vec<StepResult>) -> Result<Execution, StoreError> {
        Ok(Execution {
            steps,
            id: self.id,
            runbook_id: self.runbook_id,
            runbook_version: self.runbook_version,
            runbook_name: self.runbook_name,
            status: parse_enum(&self.status, "execution status")?,
            params: self.params.0,
            started_by: self.started_by,
            created_at: self.created_at,
            started_at: self.started_at,
            finished_at: self.finished_at,
            retry_of: self.retry_of,
            retry_from: self.retry_from,
            stop_requested: match (self.stop_requested_by, self.stop_requested_at) {
                (Some(by), Some(at)) => Some(runbook_domain::StopRequest { by, at }),
                _ => None,
            },
        })
    }
}

#[async_trait]
impl Store for PostgresStore {
    async fn insert_runbook(&self, runbook: &Runbook, message: &str) -> Result<(), StoreError> {
        let content = encode_draft(&runbook.draft);
        let tags = serde_json::to_string(&runbook.draft.tags).expect("tags serialize");
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO runbooks (id, name, description, tags, search_text, content, version, created_at, updated_at, updated_by)
             VALUES ($1, $2, $3, $4::jsonb, $5, $6::jsonb, $7, $8, $9, $10)",
        )
        .bind(runbook.id)
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
        insert_tags(&mut tx, runbook.id, &runbook.draft.tags).await?;
        insert_version(&mut tx, runbook, &content, message).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn list_runbooks(
        &self,
        filter: &RunbookFilter,
    ) -> Result<(Vec<RunbookSummary>, i64), StoreError> {
        let unfiltered = filter.q.as_deref().is_none_or(str::is_empty)
            && filter.tag.as_deref().is_none_or(str::is_empty);
        let total: i64 = if unfiltered {
            // Kept by a trigger (migration 0005): counting 10,000 rows costs milliseconds.
            sqlx::query_scalar("SELECT live FROM runbook_count")
                .fetch_one(&self.pool)
                .await?
        } else {
            let mut count = QueryBuilder::<Postgres>::new("SELECT COUNT(*)");
            crate::push_runbook_filter(&mut count, filter);
            count.build_query_scalar().fetch_one(&self.pool).await?
        };

        let mut page = QueryBuilder::<Postgres>::new(
            "SELECT r.id, r.name, r.description, r.tags, r.version, r.created_at, r.updated_at, r.updated_by",
        );
        crate::push_runbook_filter(&mut page, filter);
        // By the bytes of the name, as SQLite orders it: the database's collation
        // (en_US, ICU) would order names otherwise, and differently after an upgrade.
        page.push(r#" ORDER BY r.name COLLATE "C", r.id LIMIT "#)
            .push_bind(filter.limit)
            .push(" OFFSET ")
            .push_bind(filter.offset);
        let rows: Vec<SummaryRow> = page.build_query_as().fetch_all(&self.pool).await?;
        let items = rows
            .into_iter()
            .map(|row| RunbookSummary {
                id: row.id,
                name: row.name,
                description: row.description,
                tags: row.tags.0,
                version: row.version,
                created_at: row.created_at,
                updated_at: row.updated_at,
                updated_by: row.updated_by,
            })
            .collect();
        Ok((items, total))
    }

    async fn get_runbook(&self, id: Uuid) -> Result<Option<Runbook>, StoreError> {
        let row: Option<RunbookRow> = sqlx::query_as(
            "SELECT id, content::text AS content, version, created_at, updated_at, updated_by
             FROM runbooks WHERE id = $1 AND deleted_at IS NULL",
        )
        .bind(id)
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
        let content = encode_draft(&runbook.draft);
        let tags = serde_json::to_string(&runbook.draft.tags).expect("tags serialize");
        let mut tx = self.pool.begin().await?;
        let updated = sqlx::query(
            "UPDATE runbooks SET name = $1, description = $2, tags = $3::jsonb, search_text = $4,
                 content = $5::jsonb, version = $6, updated_at = $7, updated_by = $8
             WHERE id = $9 AND version = $10 AND deleted_at IS NULL",
        )
        .bind(&runbook.draft.name)
        .bind(&runbook.draft.description)
        .bind(&tags)
        .bind(search_text(&runbook.draft))
        .bind(&content)
        .bind(runbook.version)
        .bind(runbook.updated_at)
        .bind(&runbook.updated_by)
        .bind(runbook.id)
        .bind(based_on)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 0 {
            let current: Option<i64> = sqlx::query_scalar(
                "SELECT version FROM runbooks WHERE id = $1 AND deleted_at IS NULL",
            )
            .bind(runbook.id)
            .fetch_optional(&mut *tx)
            .await?;
            return Err(match current {
                Some(current) => StoreError::VersionConflict { current },
                None => StoreError::NotFound,
            });
        }
        sqlx::query("DELETE FROM runbook_tags WHERE runbook_id = $1")
            .bind(runbook.id)
            .execute(&mut *tx)
            .await?;
        insert_tags(&mut tx, runbook.id, &runbook.draft.tags).await?;
        insert_version(&mut tx, runbook, &content, message).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn delete_runbook(&self, id: Uuid, at: DateTime<Utc>) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let done =
            sqlx::query("UPDATE runbooks SET deleted_at = $1 WHERE id = $2 AND deleted_at IS NULL")
                .bind(at)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        sqlx::query("DELETE FROM runbook_tags WHERE runbook_id = $1")
            .bind(id)
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
             WHERE v.runbook_id = $1 ORDER BY v.version DESC",
        )
        .bind(id)
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
            "SELECT v.runbook_id AS id, v.content::text AS content, v.version, r.created_at,
                    v.created_at AS updated_at, v.created_by AS updated_by
             FROM runbook_versions v JOIN runbooks r ON r.id = v.runbook_id AND r.deleted_at IS NULL
             WHERE v.runbook_id = $1 AND v.version = $2",
        )
        .bind(id)
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
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            // A retry joins the chain of the run it retries (that run's root, or that
            // run itself): the chain has one live retry at a time.
            "INSERT INTO executions (id, runbook_id, runbook_version, runbook_name, status, params, started_by, created_at, started_at, finished_at, retry_of, retry_from, runner_id, heartbeat_at, retry_root)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14,
                     COALESCE((SELECT COALESCE(retry_root, id) FROM executions WHERE id = $11), $11))",
        )
        .bind(execution.id)
        .bind(execution.runbook_id)
        .bind(execution.runbook_version)
        .bind(&execution.runbook_name)
        .bind(execution.status.as_str())
        .bind(sqlx::types::Json(&execution.params))
        .bind(&execution.started_by)
        .bind(execution.created_at)
        .bind(execution.started_at)
        .bind(execution.finished_at)
        .bind(execution.retry_of)
        .bind(&execution.retry_from)
        .bind(runner)
        .bind(runner.map(|_| execution.created_at))
        .execute(&mut *tx)
        .await
        .map_err(crate::unique_violation)?;
        // Bind parameters are limited to 65535 a statement: steps go in slices.
        for (slice_index, slice) in execution.steps.chunks(1000).enumerate() {
            let mut qb = QueryBuilder::<Postgres>::new(
                "INSERT INTO execution_steps (execution_id, idx, block_id, status, exit_code, http_status,
                     started_at, finished_at, output_bytes, error, detail) ",
            );
            qb.push_values(slice.iter().enumerate(), |mut row, (index, step)| {
                row.push_bind(execution.id)
                    .push_bind((slice_index * 1000 + index) as i32)
                    .push_bind(&step.block_id)
                    .push_bind(step.status.as_str())
                    .push_bind(step.exit_code)
                    .push_bind(step.http_status.map(i32::from))
                    .push_bind(step.started_at)
                    .push_bind(step.finished_at)
                    .push_bind(step.output_bytes as i64)
                    .push_bind(&step.error)
                    .push_bind(encode_detail(&step.detail))
                    .push_unseparated("::json");
            });
            qb.build().execute(&mut *tx).await?;
        }
        if let Some(event) = audit {
            crate::postgres_access::chain_audit(&mut tx, event.clone()).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn execution_started_by(&self, id: Uuid) -> Result<Option<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT started_by FROM executions WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn get_execution(&self, id: Uuid) -> Result<Option<Execution>, StoreError> {
        let row: Option<ExecutionRow> = sqlx::query_as(&format!(
            "SELECT {EXECUTION_COLUMNS} FROM executions WHERE id = $1"
        ))
        .bind(id)
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
        fn push_filter(qb: &mut QueryBuilder<'_, Postgres>, filter: &ExecutionFilter) {
            qb.push(" FROM executions WHERE TRUE");
            if let Some(runbook_id) = filter.runbook_id {
                qb.push(" AND runbook_id = ").push_bind(runbook_id);
            }
            if let Some(status) = filter.status {
                qb.push(" AND status = ").push_bind(status.as_str());
            }
        }
        let mut count = QueryBuilder::<Postgres>::new("SELECT COUNT(*)");
        push_filter(&mut count, filter);
        let total: i64 = count.build_query_scalar().fetch_one(&self.pool).await?;
        let mut page = QueryBuilder::<Postgres>::new(format!("SELECT {EXECUTION_COLUMNS}"));
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
        // and response (see `Store::list_executions`). PostgreSQL cannot take those
        // out of the `json` detail (its JSON functions refuse the NUL a stream may
        // hold), so rows are read one at a time and the parts skipped while parsing:
        // at most one step's whole detail is held at once.
        let ids: Vec<Uuid> = rows.iter().map(|row| row.id).collect();
        let mut by_run: std::collections::HashMap<Uuid, Vec<StepResult>> = Default::default();
        let mut listed = sqlx::query_as::<_, ListedStepRow>(
            "SELECT execution_id, block_id, status, exit_code, http_status, started_at, finished_at,
                    output_bytes, error, detail::text AS detail
             FROM execution_steps WHERE execution_id = ANY($1) ORDER BY execution_id, idx",
        )
        .bind(&ids)
        .fetch(&self.pool);
        while let Some(row) = listed.try_next().await? {
            by_run
                .entry(row.execution_id)
                .or_default()
                .push(row.step.into_step(listed_detail)?);
        }
        drop(listed);
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
        let mut tx = self.pool.begin().await?;
        // The run's row first, then its steps, as a sweep locks them: a late write and
        // a sweep of the same run then wait for each other in turn, never in a cycle.
        let status: Option<String> =
            sqlx::query_scalar("SELECT status FROM executions WHERE id = $1 FOR UPDATE")
                .bind(execution_id)
                .fetch_optional(&mut *tx)
                .await?;
        if status.is_some_and(|status| crate::status_has_ended(&status)) {
            return Err(StoreError::Ended);
        }
        for record in records {
            match *record {
                RunRecord::Status {
                    status,
                    started_at,
                    finished_at,
                } => write_status(&mut *tx, execution_id, status, started_at, finished_at).await?,
                RunRecord::Step { index, step } => {
                    write_step(&mut *tx, execution_id, index, step).await?
                }
                RunRecord::Output { offset, data } => {
                    write_output(&mut *tx, execution_id, offset, data).await?
                }
                RunRecord::StopRequested(request) => {
                    sqlx::query(
                        "UPDATE executions SET stop_requested_by = $2, stop_requested_at = $3
                         WHERE id = $1 AND stop_requested_at IS NULL",
                    )
                    .bind(execution_id)
                    .bind(&request.by)
                    .bind(request.at)
                    .execute(&mut *tx)
                    .await?;
                }
                RunRecord::Audit(_) => {}
            }
        }
        // Audit records last: the chain's head is the last lock a writer takes.
        for record in records {
            if let RunRecord::Audit(event) = *record {
                crate::postgres_access::chain_audit(&mut tx, event.clone()).await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    async fn read_output(
        &self,
        execution_id: Uuid,
        offset: u64,
        limit: u64,
    ) -> Result<Vec<u8>, StoreError> {
        let end = offset.saturating_add(limit).min(i64::MAX as u64) as i64;
        let chunks: Vec<(i64, Vec<u8>)> = sqlx::query_as(
            "SELECT byte_offset, data FROM execution_output
             WHERE execution_id = $1 AND byte_offset < $3 AND byte_offset >= COALESCE(
                 (SELECT MAX(byte_offset) FROM execution_output WHERE execution_id = $1 AND byte_offset <= $2), 0)
             ORDER BY byte_offset",
        )
        .bind(execution_id)
        .bind(offset as i64)
        .bind(end)
        .fetch_all(&self.pool)
        .await?;
        Ok(crate::stitch(chunks, offset, limit))
    }

    async fn output_length(&self, execution_id: Uuid) -> Result<u64, StoreError> {
        // The last chunk ends the console (chunks are appended without holes).
        let end: Option<i64> = sqlx::query_scalar(
            "SELECT byte_offset + octet_length(data) FROM execution_output
             WHERE execution_id = $1 ORDER BY byte_offset DESC LIMIT 1",
        )
        .bind(execution_id)
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
        sqlx::query("UPDATE executions SET runner_id = $1, heartbeat_at = $2 WHERE id = $3")
            .bind(runner)
            .bind(at)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn heartbeat(&self, ids: &[Uuid], at: DateTime<Utc>) -> Result<Vec<Uuid>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        Ok(sqlx::query_scalar(
            "UPDATE executions SET heartbeat_at = $1
             WHERE id = ANY($2) AND status IN ('queued', 'running', 'paused', 'waiting')
             RETURNING id",
        )
        .bind(at)
        .bind(ids)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn interrupt_unfinished(
        &self,
        at: DateTime<Utc>,
        stale_before: DateTime<Utc>,
        audit: Option<&(dyn Fn(Uuid) -> AuditEvent + Sync)>,
    ) -> Result<Vec<Uuid>, StoreError> {
        let mut tx = self.pool.begin().await?;
        // Locks the orphans, so two instances sweeping at once interrupt each run once.
        let orphans: Vec<Uuid> = sqlx::query_scalar(
            "SELECT id FROM executions
             WHERE status IN ('queued', 'running', 'paused', 'waiting')
               AND COALESCE(heartbeat_at, created_at) < $1
             ORDER BY id
             FOR UPDATE SKIP LOCKED",
        )
        .bind(stale_before)
        .fetch_all(&mut *tx)
        .await?;
        if !orphans.is_empty() {
            sqlx::query(
                "UPDATE execution_steps SET status = 'stopped', finished_at = $1
                 WHERE execution_id = ANY($2) AND status IN ('running', 'paused', 'waiting')",
            )
            .bind(at)
            .bind(&orphans)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "UPDATE executions SET status = 'interrupted', finished_at = $1 WHERE id = ANY($2)",
            )
            .bind(at)
            .bind(&orphans)
            .execute(&mut *tx)
            .await?;
            if let Some(audit) = audit {
                for id in &orphans {
                    crate::postgres_access::chain_audit(&mut tx, audit(*id)).await?;
                }
            }
        }
        tx.commit().await?;
        Ok(orphans)
    }

    async fn request_control(
        &self,
        request: &ControlRequest,
        patience: Duration,
    ) -> Result<(), StoreError> {
        // Announced as it commits, so the executing process takes it at once; it
        // expires by the database's clock, which every instance reads alike.
        sqlx::query(
            "WITH added AS (
                 INSERT INTO control_requests
                     (id, execution_id, action, block_id, requested_by, request_id,
                      requested_at, expires_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7,
                         clock_timestamp() + $8::bigint * interval '1 microsecond')
                 RETURNING id
             )
             SELECT pg_notify($9, id::text) FROM added",
        )
        .bind(request.id)
        .bind(request.execution_id)
        .bind(request.action.as_str())
        .bind(&request.block_id)
        .bind(&request.requested_by)
        .bind(&request.request_id)
        .bind(request.requested_at)
        // A century at most: beyond, the database's timestamps would overflow.
        .bind(patience.min(CENTURY).as_micros() as i64)
        .bind(CONTROL_CHANNEL)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn control_requested(&self, fallback: Duration) -> bool {
        let mut listener = self.control_listener.lock().await;
        if listener.is_none() {
            match listen(&self.pool).await {
                Ok(listening) => *listener = Some(listening),
                Err(error) => tracing::debug!(%error, "cannot listen for control requests"),
            }
        }
        let Some(listening) = listener.as_mut() else {
            tokio::time::sleep(fallback).await;
            return false;
        };
        match tokio::time::timeout(CONTROL_NOTICE_PATIENCE, listening.recv()).await {
            Ok(Ok(_)) => true,
            Err(_) => false,
            Ok(Err(error)) => {
                // Listened again on the next call; meanwhile the caller looks anyway.
                tracing::debug!(%error, "lost the control request listener");
                *listener = None;
                tokio::time::sleep(fallback).await;
                false
            }
        }
    }

    async fn take_control_requests(
        &self,
        executions: &[Uuid],
        at: DateTime<Utc>,
    ) -> Result<Vec<ControlRequest>, StoreError> {
        if executions.is_empty() {
            return Ok(Vec::new());
        }
        // A second taker waits for the first's row locks, then finds them taken.
        let rows: Vec<ControlRow> = sqlx::query_as(&format!(
            "UPDATE control_requests SET taken_at = $1
             WHERE taken_at IS NULL AND execution_id = ANY($2)
               AND (expires_at IS NULL OR expires_at > clock_timestamp())
             RETURNING {CONTROL_COLUMNS}"
        ))
        .bind(at)
        .bind(executions)
        .fetch_all(&self.pool)
        .await?;
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
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE control_requests SET answered_at = $1, status = $2, refusal = $3
             WHERE id = $4",
        )
        .bind(at)
        .bind(status)
        .bind(refusal)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if let Some(event) = audit {
            crate::postgres_access::chain_audit(&mut tx, event.clone()).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn control_outcome(&self, id: Uuid) -> Result<Option<ControlOutcome>, StoreError> {
        let row: Option<OutcomeRow> = sqlx::query_as(&format!(
            "SELECT {} FROM control_requests WHERE id = $1",
            OutcomeRow::COLUMNS
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(OutcomeRow::into_outcome).transpose()?.flatten())
    }

    async fn withdraw_control(&self, id: Uuid) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM control_requests WHERE id = $1 AND taken_at IS NULL")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn forget_control(&self, id: Uuid) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM control_requests WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn purge_control_requests(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM control_requests WHERE requested_at < $1")
            .bind(before)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    async fn insert_api_key(&self, key: &ApiKeyRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO api_keys (id, name, role, token_hash, created_at, last_used_at, expires_at, revoked_at, user_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(key.id)
        .bind(&key.name)
        .bind(key.role.as_str())
        .bind(&key.token_hash)
        .bind(key.created_at)
        .bind(key.last_used_at)
        .bind(key.expires_at)
        .bind(key.revoked_at)
        .bind(key.user_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn find_api_key(&self, token_hash: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        let row: Option<ApiKeyRow> = sqlx::query_as("SELECT * FROM api_keys WHERE token_hash = $1")
            .bind(token_hash)
            .fetch_optional(&self.pool)
            .await?;
        row.map(ApiKeyRow::into_record).transpose()
    }

    async fn touch_api_key(&self, id: Uuid, at: DateTime<Utc>) -> Result<(), StoreError> {
        sqlx::query("UPDATE api_keys SET last_used_at = $1 WHERE id = $2")
            .bind(at)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

async fn insert_tags(
    tx: &mut sqlx::Transaction<'_, Postgres>,
    id: Uuid,
    tags: &[String],
) -> Result<(), StoreError> {
    for tag in tags {
        sqlx::query(
            "INSERT INTO runbook_tags (runbook_id, tag) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(id)
        .bind(tag)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

async fn insert_version(
    tx: &mut sqlx::Transaction<'_, Postgres>,
    runbook: &Runbook,
    content: &str,
    message: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO runbook_versions (runbook_id, version, content, created_at, created_by, message)
         VALUES ($1, $2, $3::jsonb, $4, $5, $6)",
    )
    .bind(runbook.id)
    .bind(runbook.version)
    .bind(content)
    .bind(runbook.updated_at)
    .bind(&runbook.updated_by)
    .bind(message)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn write_status<'e>(
    executor: impl sqlx::PgExecutor<'e>,
    id: Uuid,
    status: ExecutionStatus,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE executions SET status = $1, started_at = COALESCE($2, started_at),
             finished_at = COALESCE($3, finished_at) WHERE id = $4",
    )
    .bind(status.as_str())
    .bind(started_at)
    .bind(finished_at)
    .bind(id)
    .execute(executor)
    .await?;
    Ok(())
}

async fn write_step<'e>(
    executor: impl sqlx::PgExecutor<'e>,
    execution_id: Uuid,
    index: usize,
    step: &StepResult,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE execution_steps SET status = $1, exit_code = $2, http_status = $3, started_at = $4,
             finished_at = $5, output_bytes = $6, error = $7, detail = $8::json
         WHERE execution_id = $9 AND idx = $10",
    )
    .bind(step.status.as_str())
    .bind(step.exit_code)
    .bind(step.http_status.map(i32::from))
    .bind(step.started_at)
    .bind(step.finished_at)
    .bind(step.output_bytes as i64)
    .bind(&step.error)
    .bind(encode_detail(&step.detail))
    .bind(execution_id)
    .bind(index as i32)
    .execute(executor)
    .await?;
    Ok(())
}

async fn write_output<'e>(
    executor: impl sqlx::PgExecutor<'e>,
    execution_id: Uuid,
    offset: u64,
    data: &[u8],
) -> Result<(), StoreError> {
    // A chunk stored already (a batch tried again after its commit's answer was lost)
    // is skipped, as SQLite's console file skips it.
    sqlx::query(
        "INSERT INTO execution_output (execution_id, byte_offset, data) VALUES ($1, $2, $3)
         ON CONFLICT (execution_id, byte_offset) DO NOTHING",
    )
    .bind(execution_id)
    .bind(offset as i64)
    .bind(data)
    .execute(executor)
    .await?;
    Ok(())
}
