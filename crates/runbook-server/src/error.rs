//! The JSON error body of the API and the mapping from core errors to statuses.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use runbook_core::{CoreError, ErrorKind};

/// The `Retry-After` of a 503: the database could not serve the call for now.
const UNAVAILABLE_RETRY_AFTER_SECS: u64 = 2;

/// An error answered as `{"error": {"code", "message", "details"?}}`.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    pub details: Option<serde_json::Value>,
    /// Seconds for the `Retry-After` header of a 429.
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code: code.to_string(),
            message: message.into(),
            details: None,
            retry_after: None,
        }
    }

    pub fn not_found() -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such resource")
    }
}

impl From<CoreError> for ApiError {
    fn from(error: CoreError) -> Self {
        let status = match error.kind() {
            ErrorKind::BadRequest => StatusCode::BAD_REQUEST,
            ErrorKind::Unauthenticated => StatusCode::UNAUTHORIZED,
            ErrorKind::Forbidden => StatusCode::FORBIDDEN,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::Conflict => StatusCode::CONFLICT,
            ErrorKind::Invalid => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorKind::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        };
        match &error {
            CoreError::Internal(detail) => tracing::error!(%detail, "internal error"),
            CoreError::Setup(detail) => tracing::error!(%detail, "configuration error"),
            _ => {}
        }
        ApiError {
            status,
            code: error.code().to_string(),
            message: error.public_message(),
            details: error.details(),
            retry_after: match error {
                CoreError::TooManyAttempts { retry_after_secs } => Some(retry_after_secs),
                CoreError::Unavailable(_) | CoreError::RunnerUnavailable(_) => {
                    Some(UNAVAILABLE_RETRY_AFTER_SECS)
                }
                _ => None,
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = serde_json::json!({"code": self.code, "message": self.message});
        if let Some(details) = self.details {
            error["details"] = details;
        }
        let mut response =
            (self.status, Json(serde_json::json!({ "error": error }))).into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_that_cannot_serve_is_a_503_to_try_again_and_keeps_its_cause_in_the_log() {
        let error = ApiError::from(CoreError::Unavailable(
            "pool timed out at postgres://team-db.internal".to_string(),
        ));
        assert_eq!(error.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(error.code, "unavailable");
        assert_eq!(error.retry_after, Some(UNAVAILABLE_RETRY_AFTER_SECS));
        assert!(!error.message.contains("team-db"), "{}", error.message);
        let response = error.into_response();
        assert_eq!(
            response.headers()[axum::http::header::RETRY_AFTER],
            UNAVAILABLE_RETRY_AFTER_SECS.to_string()
        );
    }
}
