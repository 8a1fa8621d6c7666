//! Errors as the UI receives them: `{"code", "message", "details"?}`, the same object the REST
//! API wraps in `{"error": ...}`.

use runbook_core::{CoreError, ErrorKind};
use runbook_domain::ControlAction;
use serde::{Serialize, Serializer};
use uuid::Uuid;

/// The rejection value of every command: a core error, serialized for the UI.
#[derive(Debug)]
pub struct CommandError(CoreError);

impl From<CoreError> for CommandError {
    fn from(error: CoreError) -> Self {
        if error.kind() == ErrorKind::Internal {
            // The UI only sees "internal error"; the cause goes to the log.
            tracing::error!(error = ?error, "command failed");
        }
        CommandError(error)
    }
}

impl Serialize for CommandError {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.to_json().serialize(serializer)
    }
}

/// Reads an id the UI sent as a string.
pub fn parse_id(raw: &str) -> Result<Uuid, CoreError> {
    Uuid::parse_str(raw).map_err(|_| CoreError::BadRequest {
        code: "invalid_id",
        message: format!("`{raw}` is not a valid id"),
    })
}

/// Reads a control action (`pause`, `resume`, `stop`, `acknowledge`) the UI sent as a string.
pub fn parse_action(raw: &str) -> Result<ControlAction, CoreError> {
    serde_json::from_value(serde_json::Value::from(raw)).map_err(|_| CoreError::BadRequest {
        code: "invalid_action",
        message: format!(
            "unknown action `{raw}`; expected pause, resume, stop, kill or acknowledge"
        ),
    })
}

/// Reads an optional RFC 3339 time the UI sent as a string.
pub fn parse_time(raw: Option<&str>) -> Result<Option<chrono::DateTime<chrono::Utc>>, CoreError> {
    match raw.filter(|text| !text.trim().is_empty()) {
        None => Ok(None),
        Some(text) => chrono::DateTime::parse_from_rfc3339(text.trim())
            .map(|time| Some(time.with_timezone(&chrono::Utc)))
            .map_err(|_| CoreError::BadRequest {
                code: "invalid_query",
                message: format!("`{text}` is not an RFC 3339 time"),
            }),
    }
}
