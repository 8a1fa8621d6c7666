//! The audit trail: every change, run control, credential use, key and user change
//! and failed authentication is appended to a hash chain; admins read and verify it.

use crate::service::{now, paging};
use crate::{Actor, CoreError, Page, Service};
use chrono::{DateTime, Datelike, Utc};
use runbook_domain::{AuditEntry, AuditEvent, AuditOutcome, ChainBreak, ChainVerifier, Role};
use runbook_store::{AuditFilter, Store};
use serde::{Deserialize, Serialize};

/// Records read per round trip while verifying.
const VERIFY_BATCH: i64 = 1000;

/// Filters and paging for [`Service::list_audit`].
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    pub actor: Option<String>,
    /// An exact action, or a prefix ending in `.` (`credential.`).
    pub action: Option<String>,
    pub target: Option<String>,
    pub outcome: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

/// The result of walking the whole chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    pub ok: bool,
    pub checked: u64,
    pub broken: Option<ChainBreak>,
}

/// What an audited operation was about.
pub(crate) struct Subject {
    pub target: Option<String>,
    pub detail: Option<serde_json::Value>,
}

impl Subject {
    pub fn new(target: impl Into<String>) -> Subject {
        Subject {
            target: Some(target.into()),
            detail: None,
        }
    }

    pub fn none() -> Subject {
        Subject {
            target: None,
            detail: None,
        }
    }

    pub fn with(mut self, detail: serde_json::Value) -> Subject {
        self.detail = Some(detail);
        self
    }
}

/// One record, stamped now.
pub(crate) fn event(
    actor: &str,
    request_id: Option<&str>,
    action: &str,
    subject: Subject,
    outcome: AuditOutcome,
) -> AuditEvent {
    AuditEvent {
        at: now(),
        actor: actor.to_string(),
        action: action.to_string(),
        target: subject.target,
        outcome,
        request_id: request_id.map(str::to_string),
        detail: subject.detail.map(|detail| detail.to_string()),
    }
}

/// Appends one record. A failure to write it is logged loudly: the operation it
/// describes has already happened and cannot be undone here.
pub(crate) async fn append(
    store: &dyn Store,
    actor: &str,
    request_id: Option<&str>,
    action: &str,
    subject: Subject,
    outcome: AuditOutcome,
) {
    let event = event(actor, request_id, action, subject, outcome);
    if let Err(error) = store.append_audit(event).await {
        tracing::error!(%error, action, "could not append to the audit trail");
    }
}

/// The record of a run's end in `status`, on behalf of `actor` (who started it, or
/// `system` for a run found interrupted).
pub(crate) fn finish_event(
    actor: &str,
    execution_id: uuid::Uuid,
    status: runbook_domain::ExecutionStatus,
) -> AuditEvent {
    let outcome = if status == runbook_domain::ExecutionStatus::Succeeded {
        AuditOutcome::Success
    } else {
        AuditOutcome::Failure
    };
    let subject = Subject::new(format!("execution:{execution_id}"))
        .with(serde_json::json!({"status": status}));
    event(actor, None, "execution.finish", subject, outcome)
}

/// The record of a control request another process made and this one answered, as
/// that process would have recorded the same outcome of a run it executed itself.
pub(crate) fn relayed_control_event(
    request: &runbook_store::ControlRequest,
    outcome: &runbook_store::ControlOutcome,
) -> AuditEvent {
    let result = match outcome {
        runbook_store::ControlOutcome::Applied { .. } => Ok(()),
        runbook_store::ControlOutcome::Refused { message } => {
            Err(CoreError::InvalidState(message.clone()))
        }
    };
    let subject = Subject::new(format!("execution:{}", request.execution_id));
    let (subject, outcome) = judged(subject, &result, |_| Subject::none());
    event(
        &request.requested_by,
        request.request_id.as_deref(),
        request.action.audit_name(),
        subject,
        outcome,
    )
}

/// The record of an operation that had the result `result`: on `before`'s target, or
/// the one `after` names from a value (a created id); a refusal of the role is
/// `denied`, any other error a failure noting its code.
pub(crate) fn judged<T>(
    before: Subject,
    result: &Result<T, CoreError>,
    after: impl FnOnce(&T) -> Subject,
) -> (Subject, AuditOutcome) {
    match result {
        Ok(value) => {
            let subject = after(value);
            let subject = Subject {
                target: subject.target.or(before.target),
                detail: subject.detail.or(before.detail),
            };
            (subject, AuditOutcome::Success)
        }
        Err(CoreError::Forbidden { .. }) => (before, AuditOutcome::Denied),
        Err(error) => {
            let mut detail = before.detail.unwrap_or_else(|| serde_json::json!({}));
            if let Some(object) = detail.as_object_mut() {
                object.insert("error".into(), error.code().into());
            }
            (
                Subject {
                    target: before.target,
                    detail: Some(detail),
                },
                AuditOutcome::Failure,
            )
        }
    }
}

impl Service {
    /// Records `action` by `actor` with the outcome `result` had, and passes `result` on.
    /// `subject` names the target from the result (a created id) when it succeeded.
    pub(crate) async fn audited<T>(
        &self,
        actor: &Actor,
        action: &str,
        before: Subject,
        result: Result<T, CoreError>,
        after: impl FnOnce(&T) -> Subject,
    ) -> Result<T, CoreError> {
        let (subject, outcome) = judged(before, &result, after);
        append(
            self.store.as_ref(),
            &actor.name,
            actor.request_id.as_deref(),
            action,
            subject,
            outcome,
        )
        .await;
        result
    }

    /// Records `action` by `actor` when it failed or was refused; its success was
    /// recorded in the transaction that made the change.
    pub(crate) async fn audited_failure<T>(
        &self,
        actor: &Actor,
        action: &str,
        before: Subject,
        result: Result<T, CoreError>,
    ) -> Result<T, CoreError> {
        match result {
            Ok(value) => Ok(value),
            Err(error) => {
                self.audited(actor, action, before, Err(error), |_: &T| Subject::none())
                    .await
            }
        }
    }

    /// Checks the role for an operation that changes nothing; a refusal is audited.
    pub(crate) async fn require(
        &self,
        actor: &Actor,
        needed: Role,
        action: &str,
    ) -> Result<(), CoreError> {
        let allowed = actor.require(needed);
        if allowed.is_err() {
            append(
                self.store.as_ref(),
                &actor.name,
                actor.request_id.as_deref(),
                action,
                Subject::none(),
                AuditOutcome::Denied,
            )
            .await;
        }
        allowed
    }

    /// A page of the audit trail, newest first (admin).
    pub async fn list_audit(
        &self,
        actor: &Actor,
        query: AuditQuery,
    ) -> Result<Page<AuditEntry>, CoreError> {
        self.require(actor, Role::Admin, "audit.read").await?;
        let (limit, offset) = paging(query.limit, query.offset)?;
        let outcome = match query.outcome.as_deref().filter(|o| !o.is_empty()) {
            Some(text) => Some(
                text.parse::<AuditOutcome>()
                    .map_err(|message| CoreError::bad_request("invalid_query", message))?,
            ),
            None => None,
        };
        let texts = [&query.actor, &query.action, &query.target];
        if texts.into_iter().flatten().any(|t| t.contains('\0')) {
            return Err(CoreError::bad_request(
                "invalid_query",
                "filters may not contain U+0000",
            ));
        }
        // chrono reads signed and five-digit years; PostgreSQL refuses many of them.
        for (name, at) in [("since", query.since), ("until", query.until)] {
            if at.is_some_and(|at| !(1..=9999).contains(&at.year())) {
                return Err(CoreError::bad_request(
                    "invalid_query",
                    format!("`{name}` must be a time in the years 1 to 9999"),
                ));
            }
        }
        let filter = AuditFilter {
            actor: query.actor,
            action: query.action,
            target: query.target,
            outcome,
            since: query.since,
            until: query.until,
            limit,
            offset,
        };
        let (items, total) = self.store.list_audit(&filter).await?;
        Ok(Page { items, total })
    }

    /// Walks the whole chain and reports the first broken link (admin).
    pub async fn verify_audit(&self, actor: &Actor) -> Result<VerifyReport, CoreError> {
        self.require(actor, Role::Admin, "audit.verify").await?;
        // Walk every stored record, then compare the end with the head. Records appended
        // meanwhile move the head on: walk on to it. A record beyond the head, or a head
        // beyond the last record, is a break like any other.
        let mut verifier = ChainVerifier::default();
        let mut after = 0;
        let head = loop {
            let walked_to = after;
            loop {
                let batch = self.store.audit_chain(after, VERIFY_BATCH).await?;
                let Some(last) = batch.last() else { break };
                after = last.seq;
                if !batch.iter().all(|entry| verifier.check(entry)) {
                    break;
                }
            }
            let head = self.store.audit_head().await?;
            let no_new_records = after == walked_to;
            if verifier.broken().is_some() || verifier.last_seq() >= head.0 || no_new_records {
                break head;
            }
        };
        verifier.finish(Some((head.0, &head.1)));
        let broken = verifier.broken().cloned();
        Ok(VerifyReport {
            ok: broken.is_none(),
            checked: verifier.checked(),
            broken,
        })
    }
}
