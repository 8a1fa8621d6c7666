//! Storage for Runbook Studio: the [`Store`] interface and its two implementations,
//! [`SqliteStore`] (embedded default) and [`PostgresStore`] (shared team database).
//! Each embeds its own migrations and applies them when opened.

mod postgres;
mod postgres_access;
mod rows;
mod sqlite;
mod sqlite_access;
mod sqlite_run;

pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use runbook_domain::{
    AuditEntry, AuditEvent, AuditOutcome, ControlAction, CredentialInfo, Execution,
    ExecutionStatus, Role, Runbook, RunbookDraft, RunbookSummary, StepDetail, StepResult,
    StopRequest, User, UserChange, VersionInfo,
};
use std::sync::Arc;
use uuid::Uuid;

/// One change of a running execution, as [`Store::record_run`] applies it.
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
    /// A stop accepted: who asked for it and when. The first one stored stays.
    StopRequested(&'a StopRequest),
    /// An audit record of the run (its end), committed with the changes it describes;
    /// appended after every other change of the batch.
    Audit(&'a AuditEvent),
}

/// A control action sent through the store to the process that executes the run
/// (another server instance, the desktop app, the command line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlRequest {
    pub id: Uuid,
    pub execution_id: Uuid,
    pub action: ControlAction,
    /// The step an acknowledgement answers, when the requester named one.
    pub block_id: Option<String>,
    /// Who asked (the actor's name): the executing process logs and audits the
    /// request as theirs.
    pub requested_by: String,
    /// The id of the requester's call (a REST request's), carried into the audit trail.
    pub request_id: Option<String>,
    pub requested_at: DateTime<Utc>,
}

/// What the executing process made of a [`ControlRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlOutcome {
    /// Done; the run's state right after it.
    Applied { status: ExecutionStatus },
    /// Not done, and why (the run was not in a state the action applies to).
    Refused { message: String },
}

/// Errors of the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The row changed since the caller read it (optimistic concurrency).
    #[error("the runbook was changed by someone else (current version {current})")]
    VersionConflict { current: i64 },
    /// The row the operation applies to does not exist.
    #[error("not found")]
    NotFound,
    /// The change would leave no enabled admin user and no usable admin key of no
    /// user; nothing was written.
    #[error("this is the last admin")]
    LastAdmin,
    /// A unique name is taken.
    #[error("the name is already taken")]
    Duplicate,
    /// The run has ended already (a sweep found its runner silent and marked it
    /// interrupted, say); what its runner sends late is refused.
    #[error("the execution has already ended")]
    Ended,
    /// What a multi-row change was based on changed under it; nothing was written.
    #[error("{0}")]
    Conflict(String),
    /// The database URL is not one this build understands.
    #[error("unsupported database URL `{0}`; use sqlite://... or postgres://...")]
    UnsupportedUrl(String),
    /// Stored data could not be decoded (it was written by something else).
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A file beside the database (a run's console) could not be read or written.
    #[error("storage file error: {0}")]
    Io(String),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl StoreError {
    /// True when the database could not serve the call for now (unreachable, shutting
    /// down, out of connections, busy, or a transaction that lost a race it may win on
    /// a second try) rather than for anything in the call: trying again later may work.
    pub fn is_unavailable(&self) -> bool {
        let StoreError::Database(error) = self else {
            return false;
        };
        match error {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => true,
            sqlx::Error::Database(database) => {
                if let Some(postgres) =
                    database.try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
                {
                    // Connection exceptions (08…), operator intervention such as a
                    // shutdown (57P…), too many connections (53300), serialization
                    // failures and deadlocks (40001, 40P01), and a database closed to
                    // connections: 55000 as the FATAL that refuses a connection, not
                    // the ERROR a statement gets for an object in the wrong state.
                    let code = postgres.code();
                    return code.starts_with("08")
                        || code.starts_with("57P")
                        || matches!(code, "53300" | "40001" | "40P01")
                        || code == "55000"
                            && matches!(postgres.severity(), sqlx::postgres::PgSeverity::Fatal);
                }
                // SQLite: busy and locked (5, 6), reported by their extended codes
                // (517 is SQLITE_BUSY_SNAPSHOT). Only SQLite's codes are numbers read
                // so: PostgreSQL's 42501 (insufficient privilege) is 5 in its low byte.
                let code = database.code();
                database
                    .try_downcast_ref::<sqlx::sqlite::SqliteError>()
                    .is_some()
                    && matches!(
                        code.as_deref().map(str::parse::<i32>),
                        Some(Ok(c)) if matches!(c & 0xff, 5 | 6)
                    )
            }
            _ => false,
        }
    }
}

/// Filters and paging for listing runbooks.
#[derive(Debug, Clone, Default)]
pub struct RunbookFilter {
    /// Case-insensitive text matched against name, tags and description.
    pub q: Option<String>,
    /// Exact tag.
    pub tag: Option<String>,
    pub limit: i64,
    pub offset: i64,
}

/// Filters and paging for listing executions.
#[derive(Debug, Clone, Default)]
pub struct ExecutionFilter {
    pub runbook_id: Option<Uuid>,
    pub status: Option<ExecutionStatus>,
    pub limit: i64,
    pub offset: i64,
}

/// A stored API key: only the hash of its token is kept.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiKeyRecord {
    pub id: Uuid,
    pub name: String,
    pub role: Role,
    pub token_hash: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// The user the key acts for (with the user's role), if any.
    pub user_id: Option<Uuid>,
}

impl ApiKeyRecord {
    /// A key of no user with the admin role, neither revoked nor expired at `at`: it
    /// can manage users, keys and credentials on its own.
    pub fn is_standing_admin(&self, at: DateTime<Utc>) -> bool {
        self.user_id.is_none()
            && self.role == Role::Admin
            && self.revoked_at.is_none()
            && self.expires_at.is_none_or(|expires| expires > at)
    }
}

/// An enabled user with the admin role.
fn is_active_admin(user: &User) -> bool {
    user.role == Role::Admin && user.disabled_at.is_none()
}

/// A credential as stored: metadata and the sealed value (nonce || ciphertext).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialRecord {
    pub info: CredentialInfo,
    pub sealed: Vec<u8>,
}

/// Filters and paging for the audit trail, newest first.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub actor: Option<String>,
    /// An exact action, or a prefix when it ends with `.` (`credential.`).
    pub action: Option<String>,
    pub target: Option<String>,
    pub outcome: Option<AuditOutcome>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub limit: i64,
    pub offset: i64,
}

/// The storage interface every backend implements. Methods are small and
/// transactional; policy (validation, roles, versions) lives in the core.
/// Credentials, users, API keys and the audit trail.
#[async_trait]
pub trait AccessStore: Send + Sync {
    /// Stores a credential sealed under the key whose check value is `check`; fails with
    /// [`StoreError::Conflict`] when the database's key is another one by now (rotated),
    /// [`StoreError::Duplicate`] when the name is taken.
    async fn insert_credential(
        &self,
        record: &CredentialRecord,
        check: &[u8],
    ) -> Result<(), StoreError>;
    /// Every credential's metadata, by name.
    async fn list_credentials(&self) -> Result<Vec<CredentialInfo>, StoreError>;
    async fn get_credential(&self, id: Uuid) -> Result<Option<CredentialRecord>, StoreError>;
    async fn find_credential(&self, name: &str) -> Result<Option<CredentialRecord>, StoreError>;
    /// Replaces the metadata, and the sealed value too when `check` is given (checked
    /// like [`AccessStore::insert_credential`]); false when there is no such credential.
    async fn update_credential(
        &self,
        record: &CredentialRecord,
        check: Option<&[u8]>,
    ) -> Result<bool, StoreError>;
    /// Removes the row and its ciphertext; false when there was none.
    async fn delete_credential(&self, id: Uuid) -> Result<bool, StoreError>;
    async fn touch_credential(&self, id: Uuid, at: DateTime<Utc>) -> Result<(), StoreError>;
    /// The value sealed under the master key the credentials were sealed with.
    async fn vault_check(&self) -> Result<Option<Vec<u8>>, StoreError>;
    /// Stores the check value unless one exists; returns the one in force.
    async fn init_vault_check(&self, sealed: &[u8]) -> Result<Vec<u8>, StoreError>;
    /// Replaces every credential's sealed value (id, value read, new value) and the check
    /// value in one transaction. Unless the values read, the set of credentials and the
    /// check value are all still as read, it fails with [`StoreError::Conflict`] and
    /// writes nothing.
    async fn reseal_credentials(
        &self,
        resealed: &[(Uuid, Vec<u8>, Vec<u8>)],
        old_check: &[u8],
        check: &[u8],
    ) -> Result<(), StoreError>;

    /// Fails with [`StoreError::Duplicate`] when the name is taken.
    async fn insert_user(&self, user: &User) -> Result<(), StoreError>;
    async fn list_users(&self) -> Result<Vec<User>, StoreError>;
    async fn get_user(&self, id: Uuid) -> Result<Option<User>, StoreError>;
    /// Applies `change` to the user as stored when it is written, so concurrent changes
    /// of other fields are kept; the user as changed, or none when there is no such
    /// user. Like deleting a user and revoking a key, it fails with
    /// [`StoreError::LastAdmin`] and writes nothing when it would take away the last
    /// admin: no enabled admin user and no standing admin key
    /// ([`ApiKeyRecord::is_standing_admin`]) would remain. Such changes are serialized
    /// with each other, so two admins demoting each other cannot both succeed.
    async fn update_user(
        &self,
        id: Uuid,
        change: UserChange,
        at: DateTime<Utc>,
    ) -> Result<Option<User>, StoreError>;
    /// Deletes the user and revokes its keys, in one transaction (see
    /// [`AccessStore::update_user`] for the last admin).
    async fn delete_user(&self, id: Uuid, at: DateTime<Utc>) -> Result<bool, StoreError>;

    /// Every key, newest first.
    async fn list_api_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError>;
    /// Revokes the key unless it is revoked already (the first time stays); see
    /// [`AccessStore::update_user`] for the last admin.
    async fn revoke_api_key(&self, id: Uuid, at: DateTime<Utc>) -> Result<bool, StoreError>;

    /// Appends a record at the end of the chain (serialized with every other writer).
    async fn append_audit(&self, event: AuditEvent) -> Result<AuditEntry, StoreError>;
    async fn list_audit(&self, filter: &AuditFilter) -> Result<(Vec<AuditEntry>, i64), StoreError>;
    /// Up to `limit` records after `after_seq`, in chain order.
    async fn audit_chain(&self, after_seq: i64, limit: i64) -> Result<Vec<AuditEntry>, StoreError>;
    /// The last record's position and hash, as the chain's head records them.
    async fn audit_head(&self) -> Result<(i64, String), StoreError>;
}

#[async_trait]
pub trait Store: AccessStore + Send + Sync {
    /// Stores a new runbook as version 1.
    async fn insert_runbook(&self, runbook: &Runbook, message: &str) -> Result<(), StoreError>;
    /// Lists live runbooks by name, with the total matching the filter.
    async fn list_runbooks(
        &self,
        filter: &RunbookFilter,
    ) -> Result<(Vec<RunbookSummary>, i64), StoreError>;
    /// The current version of a live runbook.
    async fn get_runbook(&self, id: Uuid) -> Result<Option<Runbook>, StoreError>;
    /// Stores `runbook` (whose `version` is `based_on + 1`) as a new version, if the
    /// current version is still `based_on`; otherwise nothing changes.
    async fn save_version(
        &self,
        runbook: &Runbook,
        based_on: i64,
        message: &str,
    ) -> Result<(), StoreError>;
    /// Deletes a live runbook; its versions stay for the executions that ran them.
    async fn delete_runbook(&self, id: Uuid, at: DateTime<Utc>) -> Result<bool, StoreError>;
    /// History of a live runbook, newest first.
    async fn list_versions(&self, id: Uuid) -> Result<Vec<VersionInfo>, StoreError>;
    /// The content of one version of a live runbook.
    async fn get_version(&self, id: Uuid, version: i64) -> Result<Option<Runbook>, StoreError>;

    /// Stores a new execution with its pending steps; with a runner, claimed by it (see
    /// [`Store::claim_execution`]) as of its creation. `audit` (the run's start) is
    /// appended to the audit trail in the same transaction. A retry of a run whose
    /// retry chain (the run first retried and every retry of a retry of it) holds a
    /// live retry (queued, running, paused or waiting) already fails with
    /// [`StoreError::Duplicate`], and nothing is stored.
    async fn insert_execution(
        &self,
        execution: &Execution,
        runner: Option<Uuid>,
        audit: Option<&AuditEvent>,
    ) -> Result<(), StoreError>;
    async fn get_execution(&self, id: Uuid) -> Result<Option<Execution>, StoreError>;
    /// Who started an execution, without loading its steps.
    async fn execution_started_by(&self, id: Uuid) -> Result<Option<String>, StoreError>;
    /// Lists executions, newest first, with the total matching the filter. Their steps
    /// come without the streams and response they captured (`stdout`, `stderr`,
    /// `response`: up to a MiB and more each, far too much for a page of runs); the
    /// rest of each step's detail (outputs, branch, reused) is there. `get_execution`
    /// has it all.
    async fn list_executions(
        &self,
        filter: &ExecutionFilter,
    ) -> Result<(Vec<Execution>, i64), StoreError>;
    /// Records a new run state and its start/finish times.
    async fn update_execution_status(
        &self,
        id: Uuid,
        status: ExecutionStatus,
        started_at: Option<DateTime<Utc>>,
        finished_at: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        let status = RunRecord::Status {
            status,
            started_at,
            finished_at,
        };
        self.record_run(id, &[status]).await
    }
    /// Records the state of the step at `index`.
    async fn update_step(
        &self,
        execution_id: Uuid,
        index: usize,
        step: &StepResult,
    ) -> Result<(), StoreError> {
        self.record_run(execution_id, &[RunRecord::Step { index, step }])
            .await
    }
    /// Appends a chunk of console output that starts at byte `offset`.
    async fn append_output(
        &self,
        execution_id: Uuid,
        offset: u64,
        data: &[u8],
    ) -> Result<(), StoreError> {
        self.record_run(execution_id, &[RunRecord::Output { offset, data }])
            .await
    }
    /// Applies several changes of one run, in order, in one transaction. A run stored
    /// as ended refuses them all with [`StoreError::Ended`]: its last state stands.
    async fn record_run(
        &self,
        execution_id: Uuid,
        records: &[RunRecord<'_>],
    ) -> Result<(), StoreError>;
    /// Up to `limit` bytes of console output starting at `offset`.
    async fn read_output(
        &self,
        execution_id: Uuid,
        offset: u64,
        limit: u64,
    ) -> Result<Vec<u8>, StoreError>;
    /// How many bytes of console output the execution has stored (0 for none).
    async fn output_length(&self, execution_id: Uuid) -> Result<u64, StoreError>;
    /// Records that `runner` (one process) is running the execution, alive as of `at`.
    async fn claim_execution(
        &self,
        id: Uuid,
        runner: Uuid,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// Renews the sign of life of those of the given executions that are unfinished;
    /// returns them (a run missing from the answer has ended, or is gone).
    async fn heartbeat(&self, ids: &[Uuid], at: DateTime<Utc>) -> Result<Vec<Uuid>, StoreError>;
    /// Marks `interrupted` every unfinished execution (and its unfinished steps) whose
    /// runner gave no sign of life since `stale_before` (an unclaimed one counts from its
    /// creation); returns the runs that changed. `audit` gives the record of each such
    /// run's end, appended in the same transaction.
    async fn interrupt_unfinished(
        &self,
        at: DateTime<Utc>,
        stale_before: DateTime<Utc>,
        audit: Option<&(dyn Fn(Uuid) -> AuditEvent + Sync)>,
    ) -> Result<Vec<Uuid>, StoreError>;

    /// Leaves a control request for the process that executes its run, to be taken
    /// within `patience` of now at most: by the database's clock where it has one
    /// (PostgreSQL), so requester and executor need not agree on the time; otherwise
    /// from `requested_at`. A process that comes back later never applies it.
    async fn request_control(
        &self,
        request: &ControlRequest,
        patience: std::time::Duration,
    ) -> Result<(), StoreError>;
    /// Returns when a control request may have been made since the last call: as soon
    /// as one is announced where the database announces them (PostgreSQL; then true),
    /// otherwise after `fallback` (false). A caller takes requests after it either way.
    async fn control_requested(&self, fallback: std::time::Duration) -> bool {
        tokio::time::sleep(fallback).await;
        false
    }
    /// Takes the requests no one has taken yet for the given executions, oldest first;
    /// each is taken once, however many processes ask, and none once it has expired
    /// (see [`Store::request_control`]; without the database's clock, by `at`).
    async fn take_control_requests(
        &self,
        executions: &[Uuid],
        at: DateTime<Utc>,
    ) -> Result<Vec<ControlRequest>, StoreError>;
    /// Records the outcome of a request taken earlier, with its audit record in the
    /// same transaction: the action is on the trail whether or not its requester is
    /// still there to read the answer.
    async fn answer_control(
        &self,
        id: Uuid,
        outcome: &ControlOutcome,
        at: DateTime<Utc>,
        audit: Option<&AuditEvent>,
    ) -> Result<(), StoreError>;
    /// The request's outcome, once it is answered.
    async fn control_outcome(&self, id: Uuid) -> Result<Option<ControlOutcome>, StoreError>;
    /// Deletes the request unless a process has taken it; true when it was deleted
    /// (so it will never be applied).
    async fn withdraw_control(&self, id: Uuid) -> Result<bool, StoreError>;
    /// Deletes the request, whatever its state.
    async fn forget_control(&self, id: Uuid) -> Result<(), StoreError>;
    /// Deletes requests made before `before` (left by requesters that went away);
    /// returns how many.
    async fn purge_control_requests(&self, before: DateTime<Utc>) -> Result<u64, StoreError>;

    async fn insert_api_key(&self, key: &ApiKeyRecord) -> Result<(), StoreError>;
    /// The key whose token hashes to `token_hash`, if any.
    async fn find_api_key(&self, token_hash: &str) -> Result<Option<ApiKeyRecord>, StoreError>;
    async fn touch_api_key(&self, id: Uuid, at: DateTime<Utc>) -> Result<(), StoreError>;
}

/// Opens the store a URL names (`sqlite://…` or `postgres://…`) and migrates it.
pub async fn connect(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::connect(url).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PostgresStore::connect(url).await?))
    } else {
        Err(StoreError::UnsupportedUrl(redact_url(url)))
    }
}

/// A URL with any password replaced where it stands (the user info's, and any
/// `…password=` parameter's), fit for errors and logs.
pub fn redact_url(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("//").map_or(0, |at| at + 2);
    let authority_end = base[authority_start..]
        .find('/')
        .map_or(base.len(), |at| authority_start + at);
    let mut redacted = match base[authority_start..authority_end].rsplit_once('@') {
        Some((user_info, _)) => match user_info.split_once(':') {
            Some((user, _)) => format!(
                "{}{user}:***{}",
                &base[..authority_start],
                &base[authority_start + user_info.len()..]
            ),
            None => base.to_string(),
        },
        None => base.to_string(),
    };
    if let Some(query) = query {
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((name, _)) if name.to_ascii_lowercase().contains("password") => {
                    format!("{name}=***")
                }
                _ => pair.to_string(),
            })
            .collect();
        redacted = format!("{redacted}?{}", pairs.join("&"));
    }
    redacted
}

/// The passwords a database URL holds, as written and percent-decoded: its user
/// info's and those of any `…password=` parameter (libpq's form). Found even in a
/// URL with a mistyped scheme, so an error about that URL can leave them out.
pub fn url_secrets(url: &str) -> Vec<String> {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let after_scheme = base.split_once("//").map_or(base, |(_, rest)| rest);
    let authority = after_scheme.split('/').next().unwrap_or_default();
    let in_user_info = authority
        .rsplit_once('@')
        .and_then(|(user_info, _)| user_info.split_once(':'))
        .map(|(_, password)| password);
    let in_query = query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .filter(|(name, _)| name.to_ascii_lowercase().contains("password"))
        .map(|(_, value)| value);
    let mut secrets: Vec<String> = in_user_info
        .into_iter()
        .chain(in_query)
        .filter(|secret| !secret.is_empty())
        .flat_map(|secret| {
            let decoded = percent_encoding::percent_decode_str(secret).decode_utf8_lossy();
            [secret.to_string(), decoded.into_owned()]
        })
        .collect();
    // The longest first, so that a secret holding another is replaced whole.
    secrets.sort_by_key(|secret| std::cmp::Reverse(secret.len()));
    secrets.dedup();
    secrets
}

/// Appends the `FROM … WHERE …` of a runbook listing to `qb`; both backends share it.
fn push_runbook_filter<'a, DB>(qb: &mut sqlx::QueryBuilder<'a, DB>, filter: &'a RunbookFilter)
where
    DB: sqlx::Database,
    String: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    &'a str: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
{
    qb.push(" FROM runbooks r WHERE r.deleted_at IS NULL");
    if let Some(q) = filter.q.as_deref().filter(|q| !q.is_empty()) {
        qb.push(" AND r.search_text LIKE ")
            .push_bind(like_pattern(q))
            .push(" ESCAPE '\\'");
    }
    if let Some(tag) = filter.tag.as_deref().filter(|t| !t.is_empty()) {
        qb.push(" AND EXISTS (SELECT 1 FROM runbook_tags t WHERE t.runbook_id = r.id AND t.tag = ")
            .push_bind(tag)
            .push(")");
    }
}

/// Lowercased text a runbook is searched by.
fn search_text(draft: &RunbookDraft) -> String {
    format!(
        "{}\n{}\n{}",
        draft.name,
        draft.tags.join("\n"),
        draft.description
    )
    .to_lowercase()
}

/// A `LIKE` pattern matching `q` anywhere, with LIKE's wildcards escaped (escape char `\`).
fn like_pattern(q: &str) -> String {
    let escaped = q
        .to_lowercase()
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

fn decode_draft(content: &str) -> Result<RunbookDraft, StoreError> {
    serde_json::from_str(content).map_err(|e| StoreError::Corrupt(format!("runbook content: {e}")))
}

fn encode_draft(draft: &RunbookDraft) -> String {
    serde_json::to_string(draft).expect("a runbook draft always serializes")
}

/// A step's detail as stored: nothing for a step that produced none.
fn encode_detail(detail: &StepDetail) -> Option<String> {
    (detail != &StepDetail::default())
        .then(|| serde_json::to_string(detail).expect("a step detail always serializes"))
}

/// Why a sealed value was not written: the key changed under the writer.
pub(crate) fn rotated() -> StoreError {
    StoreError::Conflict(
        "the master key was rotated by another process; restart this one to use the new key".into(),
    )
}

/// Why a rotation was not written: something it read changed meanwhile.
pub(crate) fn changed_during_rotation() -> StoreError {
    StoreError::Conflict(
        "credentials or the master key changed during the rotation; nothing was changed, run it again"
            .into(),
    )
}

/// A unique-constraint violation becomes [`StoreError::Duplicate`].
pub(crate) fn unique_violation(error: sqlx::Error) -> StoreError {
    match &error {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Duplicate,
        _ => StoreError::Database(error),
    }
}

/// Appends the audit filter's conditions (after a `WHERE 1=1`).
fn push_audit_filter<'a, DB>(qb: &mut sqlx::QueryBuilder<'a, DB>, filter: &'a AuditFilter)
where
    DB: sqlx::Database,
    String: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    &'a str: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    i32: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    DateTime<Utc>: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
{
    if let Some(actor) = filter.actor.as_deref().filter(|a| !a.is_empty()) {
        qb.push(" AND actor = ").push_bind(actor);
    }
    match filter.action.as_deref().filter(|a| !a.is_empty()) {
        // Not LIKE: SQLite's ignores ASCII case, PostgreSQL's does not, and an exact
        // action matches its case on both.
        Some(prefix) if prefix.ends_with('.') => {
            qb.push(" AND substr(action, 1, ")
                .push_bind(i32::try_from(prefix.chars().count()).unwrap_or(i32::MAX))
                .push(") = ")
                .push_bind(prefix);
        }
        Some(action) => {
            qb.push(" AND action = ").push_bind(action);
        }
        None => {}
    }
    match filter.target.as_deref().filter(|t| !t.is_empty()) {
        Some(target) if target.contains(':') => {
            qb.push(" AND target = ").push_bind(target);
        }
        // A bare name (`payments-token`) matches itself and the name under any kind
        // (`credential:payments-token`): exactly, after the kind's colon.
        Some(name) => {
            let chars = i32::try_from(name.chars().count()).unwrap_or(i32::MAX);
            qb.push(" AND (target = ")
                .push_bind(name)
                .push(" OR (length(target) > ")
                .push_bind(chars)
                .push(" AND substr(target, length(target) - ")
                .push_bind(chars)
                .push(", 1) = ':' AND substr(target, length(target) - ")
                .push_bind(chars)
                .push(" + 1) = ")
                .push_bind(name)
                .push("))");
        }
        None => {}
    }
    if let Some(outcome) = filter.outcome {
        qb.push(" AND outcome = ").push_bind(outcome.as_str());
    }
    if let Some(since) = filter.since {
        qb.push(" AND at >= ").push_bind(since);
    }
    if let Some(until) = filter.until {
        qb.push(" AND at < ").push_bind(until);
    }
}

fn parse_enum<T: std::str::FromStr>(text: &str, what: &str) -> Result<T, StoreError> {
    text.parse()
        .map_err(|_| StoreError::Corrupt(format!("unknown {what} `{text}`")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords_in_urls() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db:5432/x"),
            "postgres://app:***@db:5432/x"
        );
        assert_eq!(
            redact_url("postgres://postgres@127.0.0.1/test"),
            "postgres://postgres@127.0.0.1/test"
        );
        // libpq's parameter form, a mistyped scheme, a percent-encoded password.
        assert_eq!(
            redact_url("postgres://ops@db/x?sslmode=require&password=pw-Zq7%21x"),
            "postgres://ops@db/x?sslmode=require&password=***"
        );
        assert_eq!(
            redact_url("postgres//u:hunter2@db/x"),
            "postgres//u:***@db/x"
        );
        // Replaced where it stands, not wherever its text appears.
        assert_eq!(
            redact_url("postgres://postgres:postgres@db/postgres"),
            "postgres://postgres:***@db/postgres"
        );
        assert_eq!(
            url_secrets("postgres://u:a%40b@db/x"),
            ["a%40b".to_string(), "a@b".to_string()]
        );
    }

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(like_pattern("50%_Off"), "%50\\%\\_off%");
    }
}

/// Joins stored output chunks into the `limit` bytes that start at `offset`.
/// `chunks` are (start offset, bytes), ordered, the first one starting at or before `offset`.
fn stitch(chunks: Vec<(i64, Vec<u8>)>, offset: u64, limit: u64) -> Vec<u8> {
    let end = offset.saturating_add(limit);
    let mut out = Vec::new();
    for (start, data) in chunks {
        let start = start.max(0) as u64;
        let chunk_end = start + data.len() as u64;
        if chunk_end <= offset || start >= end {
            continue;
        }
        // A gap (a batch that was never stored) ends the page, so text stays at its offsets.
        if start > offset + out.len() as u64 {
            break;
        }
        let from = offset.saturating_sub(start) as usize;
        let to = (end.min(chunk_end) - start) as usize;
        out.extend_from_slice(&data[from..to]);
    }
    out
}

#[cfg(test)]
mod stitch_tests {
    use super::stitch;

    #[test]
    fn stitches_a_window_across_chunks() {
        let chunks = vec![(0, b"hello ".to_vec()), (6, b"world".to_vec())];
        assert_eq!(stitch(chunks.clone(), 3, 5), b"lo wo");
        assert_eq!(stitch(chunks.clone(), 0, 100), b"hello world");
        assert_eq!(stitch(chunks, 11, 10), b"");
    }

    #[test]
    fn stops_at_a_gap_between_chunks() {
        let chunks = vec![(0, b"abc".to_vec()), (10, b"xyz".to_vec())];
        assert_eq!(stitch(chunks.clone(), 0, 100), b"abc");
        assert_eq!(stitch(chunks, 10, 100), b"xyz");
    }
}

/// True when a stored execution status names an ended run. An unreadable one counts
/// as live: refusing a run's records is for runs known to have ended.
pub(crate) fn status_has_ended(status: &str) -> bool {
    status
        .parse::<runbook_domain::ExecutionStatus>()
        .is_ok_and(|status| status.is_finished())
}
