//! Extractors that turn every kind of bad request into the API's JSON errors:
//! the caller (from `X-API-KEY`), JSON bodies, ids and query strings.

use crate::error::ApiError;
use crate::routes::AppState;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use bytes::Bytes;
use runbook_core::Actor;
use serde::de::DeserializeOwned;
use uuid::Uuid;

/// The id of the request being served: the client's `X-Request-Id` when it is a
/// sensible one, else a new UUID. It is echoed in the response and audited.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// Gives every request a [`RequestId`] and every response its `x-request-id` header.
pub async fn request_id(
    mut request: Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let given = request
        .headers()
        .get("x-request-id")
        .and_then(|value| value.to_str().ok())
        .filter(|id| {
            (1..=100).contains(&id.len())
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        })
        .map(str::to_string);
    let id = given.unwrap_or_else(|| Uuid::new_v4().to_string());
    request.extensions_mut().insert(RequestId(id.clone()));
    let mut response = next.run(request).await;
    if let Ok(value) = axum::http::HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

/// The authenticated caller, carrying the request id.
pub struct Caller(pub Actor);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let key = PresentedKey::from_parts(parts)?;
        let actor = key.authenticate(state).await?;
        Ok(Caller(match parts.extensions.get::<RequestId>() {
            Some(RequestId(id)) => actor.with_request_id(id.clone()),
            None => actor,
        }))
    }
}

/// The API key a request presents and the client presenting it, for a response that
/// outlives the request (an event stream) to check the key again while it goes on.
#[derive(Clone)]
pub struct PresentedKey {
    token: String,
    /// The peer address: it identifies a client for the failed-authentication lockout.
    client: String,
}

impl PresentedKey {
    fn from_parts(parts: &Parts) -> Result<PresentedKey, ApiError> {
        let token = parts
            .headers
            .get("x-api-key")
            .and_then(|value| value.to_str().ok())
            .unwrap_or("")
            .trim();
        if token.is_empty() {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "send an API key in the X-API-KEY header",
            ));
        }
        let client = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|info| info.0.ip().to_string())
            .unwrap_or_else(|| "local".to_string());
        Ok(PresentedKey {
            token: token.to_string(),
            client,
        })
    }

    /// Who the key belongs to now: refused once it is revoked or expired, or its user
    /// disabled (a refusal counts toward the client's lockout).
    pub async fn authenticate(&self, state: &AppState) -> Result<Actor, ApiError> {
        Ok(state
            .service
            .authenticate(&self.token, &self.client)
            .await?)
    }

    /// Whether the key, which authenticated its request, still holds.
    pub async fn still_valid(&self, state: &AppState) -> Result<bool, ApiError> {
        Ok(state.service.key_still_valid(&self.token).await?)
    }
}

impl FromRequestParts<AppState> for PresentedKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, ApiError> {
        PresentedKey::from_parts(parts)
    }
}

/// A JSON object body; typed parsing and validation happen in the core. An empty
/// body, or JSON that is not an object, is a malformed request (400 `bad_request`).
pub struct JsonBody(pub serde_json::Value);

impl FromRequest<AppState> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        match read_json(req, state).await? {
            Some(body) => Ok(JsonBody(body)),
            None => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "the body is empty; send a JSON object",
            )),
        }
    }
}

/// Like [`JsonBody`], but an empty body is allowed and given as `null` (every field
/// of the request is optional).
pub struct OptionalJsonBody(pub serde_json::Value);

impl FromRequest<AppState> for OptionalJsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let body = read_json(req, state).await?;
        Ok(OptionalJsonBody(body.unwrap_or(serde_json::Value::Null)))
    }
}

/// The body as a JSON object, or `None` when it is empty (whitespace only).
async fn read_json(req: Request, state: &AppState) -> Result<Option<serde_json::Value>, ApiError> {
    let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!(
                    "the body is larger than {} bytes",
                    crate::routes::MAX_BODY_BYTES
                ),
            )
        } else {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_request",
                rejection.body_text(),
            )
        }
    })?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let body: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            format!("the body is not valid JSON: {e}"),
        )
    })?;
    if !body.is_object() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "the body must be a JSON object",
        ));
    }
    Ok(Some(body))
}

/// A typed JSON body whose type errors are 422s.
pub fn typed<T: DeserializeOwned>(body: serde_json::Value) -> Result<T, ApiError> {
    serde_json::from_value(body).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_type",
            e.to_string(),
        )
    })
}

/// A UUID path segment.
pub fn parse_id(text: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(text).map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_id",
            "the id in the path is not a UUID",
        )
    })
}

/// Path parameters parsed into `T`; a bad one (such as invalid UTF-8 once
/// percent-decoded) is a 400 `invalid_id`.
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|path| ApiPath(path.0))
            .map_err(|rejection| {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_id", rejection.body_text())
            })
    }
}

/// A query string parsed into `T`; a bad one is a 400 `invalid_query`. A parameter
/// with an empty value (`?limit=`) counts as absent, whatever the endpoint.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let query = without_empty_values(parts.uri.query().unwrap_or(""));
        serde_urlencoded_from_str(&query).map(ApiQuery)
    }
}

/// The query string without its `name=` (and bare `name`) pairs: an empty value
/// stays empty once decoded, so this needs no decoding.
fn without_empty_values(query: &str) -> String {
    query
        .split('&')
        .filter(|pair| {
            pair.split_once('=')
                .is_some_and(|(_, value)| !value.is_empty())
        })
        .collect::<Vec<_>>()
        .join("&")
}

fn serde_urlencoded_from_str<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    axum::extract::Query::<T>::try_from_uri(
        &format!("/?{query}").parse().map_err(|_| {
            ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", "bad query string")
        })?,
    )
    .map(|q| q.0)
    .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", e.body_text()))
}
