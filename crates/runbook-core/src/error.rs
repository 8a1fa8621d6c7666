//! Errors of the core API, each with a stable machine-readable code.

use runbook_domain::{Role, ValidationErrors};
use runbook_store::StoreError;

/// The class of an error: front ends map it to a status (HTTP) or a UI treatment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    BadRequest,
    Unauthenticated,
    Forbidden,
    NotFound,
    Conflict,
    Invalid,
    TooManyRequests,
    /// The database cannot serve the call for now; trying again later may work.
    Unavailable,
    Internal,
}

/// An error of a core operation.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// The request itself is malformed (bad id, bad query).
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    /// Well-formed but breaks the rules (validation).
    #[error("{0}")]
    Invalid(ValidationErrors),
    /// Well-formed but not acceptable for another reason.
    #[error("{message}")]
    Unprocessable { code: &'static str, message: String },
    #[error("no credentials, or credentials that are not valid")]
    Unauthenticated,
    #[error("this needs the {needed} role; you are {actual}")]
    Forbidden { needed: Role, actual: Role },
    #[error("{what} not found")]
    NotFound { what: &'static str },
    #[error("the runbook changed since version {based_on} (it is now at version {current}); reload and apply your edit again")]
    VersionConflict { based_on: i64, current: i64 },
    #[error("{0}")]
    InvalidState(String),
    /// A unique name is taken, or the like.
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// Too many failed authentications from this client; try again later.
    #[error("too many failed authentications; try again in {retry_after_secs} s")]
    TooManyAttempts { retry_after_secs: u64 },
    /// The service cannot start or act as configured (master key, data directory);
    /// the message is for the operator.
    #[error("{0}")]
    Setup(String),
    /// The database could not serve the call for now (unreachable, shutting down,
    /// busy); the cause is logged, never shown.
    #[error("the database cannot be reached or is busy; try again shortly")]
    Unavailable(String),
    /// The process that executes a run did not answer a control request passed to it
    /// through the database; the message says what may have happened.
    #[error("{0}")]
    RunnerUnavailable(String),
    /// A fault on our side; the message is logged, never shown.
    #[error("internal error")]
    Internal(String),
}

impl CoreError {
    /// The stable snake_case code clients match on.
    pub fn code(&self) -> &str {
        match self {
            CoreError::BadRequest { code, .. } | CoreError::Unprocessable { code, .. } => code,
            CoreError::Invalid(errors) => errors.code(),
            CoreError::Unauthenticated => "unauthenticated",
            CoreError::Forbidden { .. } => "forbidden",
            CoreError::NotFound { .. } => "not_found",
            CoreError::VersionConflict { .. } => "version_conflict",
            CoreError::InvalidState(_) => "invalid_state",
            CoreError::Conflict { code, .. } => code,
            CoreError::TooManyAttempts { .. } => "too_many_attempts",
            CoreError::Setup(_) => "setup",
            CoreError::Unavailable(_) => "unavailable",
            CoreError::RunnerUnavailable(_) => "runner_unavailable",
            CoreError::Internal(_) => "internal",
        }
    }

    pub fn kind(&self) -> ErrorKind {
        match self {
            CoreError::BadRequest { .. } => ErrorKind::BadRequest,
            CoreError::Invalid(_) | CoreError::Unprocessable { .. } => ErrorKind::Invalid,
            CoreError::Unauthenticated => ErrorKind::Unauthenticated,
            CoreError::Forbidden { .. } => ErrorKind::Forbidden,
            CoreError::NotFound { .. } => ErrorKind::NotFound,
            CoreError::VersionConflict { .. }
            | CoreError::InvalidState(_)
            | CoreError::Conflict { .. } => ErrorKind::Conflict,
            CoreError::TooManyAttempts { .. } => ErrorKind::TooManyRequests,
            CoreError::Unavailable(_) | CoreError::RunnerUnavailable(_) => ErrorKind::Unavailable,
            CoreError::Internal(_) | CoreError::Setup(_) => ErrorKind::Internal,
        }
    }

    /// Structured details for clients: field errors, or the current version on a conflict.
    pub fn details(&self) -> Option<serde_json::Value> {
        match self {
            CoreError::Invalid(errors) => serde_json::to_value(&errors.errors).ok(),
            CoreError::VersionConflict { based_on, current } => Some(serde_json::json!({
                "based_on": based_on, "current_version": current
            })),
            CoreError::TooManyAttempts { retry_after_secs } => Some(serde_json::json!({
                "retry_after_secs": retry_after_secs
            })),
            _ => None,
        }
    }

    /// The message fit to show a client (internal details stay in the logs).
    pub fn public_message(&self) -> String {
        self.to_string()
    }

    /// `{"code", "message", "details"?}`, as the desktop app receives errors.
    pub fn to_json(&self) -> serde_json::Value {
        let mut body = serde_json::json!({"code": self.code(), "message": self.public_message()});
        if let Some(details) = self.details() {
            body["details"] = details;
        }
        body
    }

    pub(crate) fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        CoreError::BadRequest {
            code,
            message: message.into(),
        }
    }

    pub(crate) fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        CoreError::Unprocessable {
            code,
            message: message.into(),
        }
    }
}

impl From<ValidationErrors> for CoreError {
    fn from(errors: ValidationErrors) -> Self {
        CoreError::Invalid(errors)
    }
}

impl From<StoreError> for CoreError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound => CoreError::NotFound { what: "runbook" },
            StoreError::Conflict(message) => CoreError::InvalidState(message),
            // The store refuses it (writing nothing) whatever the caller checked before,
            // so two admins demoting each other cannot both succeed.
            StoreError::LastAdmin => CoreError::Conflict {
                code: "last_admin",
                message: "this is the last admin: make another user an admin first, so that \
                          someone can still manage users, keys and credentials"
                    .to_string(),
            },
            StoreError::Ended => {
                CoreError::InvalidState("the execution has already ended".to_string())
            }
            other if other.is_unavailable() => {
                tracing::warn!(error = %other, "storage unavailable");
                CoreError::Unavailable(other.to_string())
            }
            other => {
                tracing::error!(error = %other, "storage error");
                CoreError::Internal(other.to_string())
            }
        }
    }
}
