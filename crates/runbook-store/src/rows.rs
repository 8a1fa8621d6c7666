//! Rows of the access tables as both databases return them. Only ids differ: TEXT on
//! SQLite, UUID on PostgreSQL; [`RowId`] turns either into a [`Uuid`].

use crate::{
    parse_enum, ApiKeyRecord, ControlOutcome, ControlRequest, CredentialRecord, StoreError,
};
use chrono::{DateTime, Utc};
use runbook_domain::{AuditEntry, CredentialInfo, User};
use sqlx::query::Query;
use sqlx::{Database, Encode, FromRow, Type};
use uuid::Uuid;

pub(crate) const CREDENTIAL_COLUMNS: &str = "id, name, kind, description, username, header_name, hosts, sealed, created_at, updated_at, last_used_at, created_by, updated_by";
pub(crate) const AUDIT_COLUMNS: &str =
    "seq, at, actor, action, target, outcome, request_id, detail, prev_hash, hash";

/// Binds an audit record's values in [`AUDIT_COLUMNS`] order, for either database.
pub(crate) fn bind_audit<'q, DB>(
    query: Query<'q, DB, <DB as Database>::Arguments<'q>>,
    entry: &'q AuditEntry,
) -> Query<'q, DB, <DB as Database>::Arguments<'q>>
where
    DB: Database,
    i64: Encode<'q, DB> + Type<DB>,
    DateTime<Utc>: Encode<'q, DB> + Type<DB>,
    String: Encode<'q, DB> + Type<DB>,
    Option<String>: Encode<'q, DB> + Type<DB>,
    &'q str: Encode<'q, DB> + Type<DB>,
{
    query
        .bind(entry.seq)
        .bind(entry.at)
        .bind(&entry.actor)
        .bind(&entry.action)
        .bind(&entry.target)
        .bind(entry.outcome.as_str())
        .bind(&entry.request_id)
        .bind(&entry.detail)
        .bind(&entry.prev_hash)
        .bind(&entry.hash)
}

/// An id column as a database returns it.
pub(crate) trait RowId {
    fn into_uuid(self) -> Result<Uuid, StoreError>;
}

impl RowId for String {
    fn into_uuid(self) -> Result<Uuid, StoreError> {
        parse_uuid(&self)
    }
}

impl RowId for Uuid {
    fn into_uuid(self) -> Result<Uuid, StoreError> {
        Ok(self)
    }
}

pub(crate) fn parse_uuid(text: &str) -> Result<Uuid, StoreError> {
    Uuid::parse_str(text).map_err(|_| StoreError::Corrupt(format!("bad id `{text}`")))
}

/// A credential's hosts as stored: a JSON array.
pub(crate) fn hosts_json(hosts: &[String]) -> String {
    serde_json::Value::from(hosts).to_string()
}

#[derive(FromRow)]
pub(crate) struct CredentialRow<I> {
    id: I,
    name: String,
    kind: String,
    description: String,
    username: Option<String>,
    header_name: Option<String>,
    /// A JSON array of host patterns.
    hosts: String,
    sealed: Vec<u8>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    last_used_at: Option<DateTime<Utc>>,
    created_by: String,
    updated_by: String,
}

impl<I: RowId> CredentialRow<I> {
    pub(crate) fn into_record(self) -> Result<CredentialRecord, StoreError> {
        Ok(CredentialRecord {
            info: CredentialInfo {
                id: self.id.into_uuid()?,
                name: self.name,
                kind: parse_enum(&self.kind, "credential kind")?,
                description: self.description,
                username: self.username,
                header_name: self.header_name,
                hosts: serde_json::from_str(&self.hosts).map_err(|_| {
                    StoreError::Corrupt("a credential's hosts are not a JSON list".to_string())
                })?,
                created_at: self.created_at,
                updated_at: self.updated_at,
                last_used_at: self.last_used_at,
                created_by: self.created_by,
                updated_by: self.updated_by,
            },
            sealed: self.sealed,
        })
    }
}

#[derive(FromRow)]
pub(crate) struct UserRow<I> {
    id: I,
    name: String,
    role: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    disabled_at: Option<DateTime<Utc>>,
}

impl<I: RowId> UserRow<I> {
    pub(crate) fn into_user(self) -> Result<User, StoreError> {
        Ok(User {
            id: self.id.into_uuid()?,
            name: self.name,
            role: parse_enum(&self.role, "role")?,
            created_at: self.created_at,
            updated_at: self.updated_at,
            disabled_at: self.disabled_at,
        })
    }
}

#[derive(FromRow)]
pub(crate) struct ApiKeyRow<I> {
    id: I,
    name: String,
    role: String,
    token_hash: String,
    created_at: DateTime<Utc>,
    last_used_at: Option<DateTime<Utc>>,
    expires_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
    user_id: Option<I>,
}

impl<I: RowId> ApiKeyRow<I> {
    pub(crate) fn into_record(self) -> Result<ApiKeyRecord, StoreError> {
        Ok(ApiKeyRecord {
            id: self.id.into_uuid()?,
            name: self.name,
            role: parse_enum(&self.role, "role")?,
            token_hash: self.token_hash,
            created_at: self.created_at,
            last_used_at: self.last_used_at,
            expires_at: self.expires_at,
            revoked_at: self.revoked_at,
            user_id: self.user_id.map(RowId::into_uuid).transpose()?,
        })
    }
}

#[derive(FromRow)]
pub(crate) struct AuditRow {
    seq: i64,
    at: DateTime<Utc>,
    actor: String,
    action: String,
    target: Option<String>,
    outcome: String,
    request_id: Option<String>,
    detail: Option<String>,
    prev_hash: String,
    hash: String,
}

impl AuditRow {
    pub(crate) fn into_entry(self) -> Result<AuditEntry, StoreError> {
        Ok(AuditEntry {
            seq: self.seq,
            at: self.at,
            actor: self.actor,
            action: self.action,
            target: self.target,
            outcome: parse_enum(&self.outcome, "audit outcome")?,
            request_id: self.request_id,
            detail: self.detail,
            prev_hash: self.prev_hash,
            hash: self.hash,
        })
    }
}

/// How many enabled admin users there are, for [`admin_remains`].
pub(crate) const ACTIVE_ADMIN_USERS: &str =
    "SELECT COUNT(*) FROM users WHERE role = 'admin' AND disabled_at IS NULL";
/// The unrevoked admin keys of no user, for [`admin_remains`].
pub(crate) const ADMIN_KEYS_OF_NO_USER: &str =
    "SELECT * FROM api_keys WHERE user_id IS NULL AND role = 'admin' AND revoked_at IS NULL";

/// Fails with [`StoreError::LastAdmin`] unless one of `admin_users` (enabled admin
/// users) or `keys` (as [`ADMIN_KEYS_OF_NO_USER`] finds them) remains at `at`.
pub(crate) fn admin_remains<I: RowId>(
    admin_users: i64,
    keys: Vec<ApiKeyRow<I>>,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    if admin_users > 0 {
        return Ok(());
    }
    for key in keys {
        if key.into_record()?.is_standing_admin(at) {
            return Ok(());
        }
    }
    Err(StoreError::LastAdmin)
}

pub(crate) const CONTROL_COLUMNS: &str =
    "id, execution_id, action, block_id, requested_by, request_id, requested_at";

/// A control request's row ([`CONTROL_COLUMNS`]).
#[derive(FromRow)]
pub(crate) struct ControlRow<I> {
    id: I,
    execution_id: I,
    action: String,
    block_id: Option<String>,
    requested_by: String,
    request_id: Option<String>,
    requested_at: DateTime<Utc>,
}

impl<I: RowId> ControlRow<I> {
    pub(crate) fn into_request(self) -> Result<ControlRequest, StoreError> {
        Ok(ControlRequest {
            id: self.id.into_uuid()?,
            execution_id: self.execution_id.into_uuid()?,
            action: parse_enum(&self.action, "control action")?,
            block_id: self.block_id,
            requested_by: self.requested_by,
            request_id: self.request_id,
            requested_at: self.requested_at,
        })
    }
}

/// The requests a take returned, oldest first. One this version cannot read (an action
/// a newer version added) is left out, unanswered, rather than failing the others taken
/// with it: its requester reports that no process answered.
pub(crate) fn taken_requests<I: RowId>(
    rows: Vec<ControlRow<I>>,
) -> Result<Vec<ControlRequest>, StoreError> {
    let mut requests = Vec::with_capacity(rows.len());
    for row in rows {
        let action = row.action.clone();
        match row.into_request() {
            Ok(request) => requests.push(request),
            Err(error) => {
                tracing::warn!(%error, action, "a control request this version cannot apply is left unanswered");
            }
        }
    }
    requests.sort_by_key(|request| (request.requested_at, request.id));
    Ok(requests)
}

/// A control request's answer as stored: the run's state after an applied action,
/// or why it was refused.
#[derive(FromRow)]
pub(crate) struct OutcomeRow {
    answered_at: Option<DateTime<Utc>>,
    status: Option<String>,
    refusal: Option<String>,
}

impl OutcomeRow {
    pub(crate) const COLUMNS: &str = "answered_at, status, refusal";

    /// The outcome, once the request is answered.
    pub(crate) fn into_outcome(self) -> Result<Option<ControlOutcome>, StoreError> {
        if self.answered_at.is_none() {
            return Ok(None);
        }
        match (self.status, self.refusal) {
            (_, Some(message)) => Ok(Some(ControlOutcome::Refused { message })),
            (Some(status), None) => Ok(Some(ControlOutcome::Applied {
                status: parse_enum(&status, "status")?,
            })),
            (None, None) => Err(StoreError::Corrupt(
                "a control request answered with neither a state nor a refusal".into(),
            )),
        }
    }
}

/// An outcome as its two columns (`status`, `refusal`).
pub(crate) fn outcome_columns(outcome: &ControlOutcome) -> (Option<&'static str>, Option<&str>) {
    match outcome {
        ControlOutcome::Applied { status } => (Some(status.as_str()), None),
        ControlOutcome::Refused { message } => (None, Some(message)),
    }
}
