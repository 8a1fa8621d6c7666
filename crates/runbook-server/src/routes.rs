//! The router: one small handler per endpoint of the REST contract.

use crate::error::ApiError;
use crate::extract::{
    parse_id, typed, ApiPath, ApiQuery, Caller, JsonBody, OptionalJsonBody, PresentedKey,
};
use crate::sse;
use axum::extract::{DefaultBodyLimit, State};
use axum::handler::HandlerWithoutStateExt;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, get_service, post, put};
use axum::{Json, Router};
use runbook_core::{AuditQuery, ExecutionQuery, RunbookQuery, Service};
use runbook_domain::ControlAction;
use serde::Deserialize;
use std::path::PathBuf;
use tokio::sync::watch;
use tower_http::services::{ServeDir, ServeFile};

/// Largest request body accepted, in bytes: twice the largest runbook, which validation
/// measures as compact JSON, so a runbook at its limit sent pretty-printed or with its
/// characters escaped still reaches validation and gets its field errors.
pub const MAX_BODY_BYTES: usize = 2 * runbook_domain::validation::MAX_RUNBOOK_BYTES;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub service: Service,
    /// Turns true when the server is shutting down; long-lived streams end then.
    pub shutdown: watch::Receiver<bool>,
    /// How often an event stream checks that the key it was opened with still holds:
    /// a key revoked or expired, or its user disabled, ends its streams within this.
    pub key_check: std::time::Duration,
}

impl AppState {
    pub fn new(service: Service, shutdown: watch::Receiver<bool>) -> AppState {
        AppState {
            service,
            shutdown,
            key_check: std::time::Duration::from_secs(15),
        }
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// The whole HTTP application: API routes, the OpenAPI document and, when
/// `ui_dir` holds a built UI, the UI at `/`.
pub fn app(state: AppState, ui_dir: Option<PathBuf>) -> Router {
    let api = Router::new()
        .route(
            "/healthz",
            get(|| async { Json(serde_json::json!({"status": "ok"})) }),
        )
        .route("/openapi.json", get(openapi))
        .route("/me", get(me))
        .route("/runbooks", get(list_runbooks).post(create_runbook))
        .route(
            "/runbooks/{id}",
            get(get_runbook).put(update_runbook).delete(delete_runbook),
        )
        .route("/runbooks/{id}/versions", get(list_versions))
        .route("/runbooks/{id}/versions/{version}", get(get_version))
        .route("/runbooks/{id}/rollback", post(rollback))
        .route("/runbooks/{id}/execute", post(execute))
        .route("/executions", get(list_executions))
        .route("/executions/{id}", get(get_execution))
        .route("/executions/{id}/output", get(read_output))
        .route("/executions/{id}/console", get(console_log))
        .route("/executions/{id}/export", get(export_execution))
        .route("/executions/{id}/events", get(events))
        .route("/executions/{id}/control", post(control))
        .route("/executions/{id}/retry", post(retry))
        .route(
            "/credentials",
            get(list_credentials).post(create_credential),
        )
        .route(
            "/credentials/{id}",
            get(get_credential)
                .put(update_credential)
                .delete(delete_credential),
        )
        .route("/users", get(list_users).post(create_user))
        .route("/users/{id}", put(update_user).delete(delete_user))
        .route("/keys", get(list_keys).post(create_key))
        .route("/keys/{id}", delete(revoke_key))
        .route("/audit", get(list_audit))
        .route("/audit/verify", get(verify_audit))
        .route("/vault", get(vault_status))
        .method_not_allowed_fallback(method_not_allowed);
    // The UI routes with the URL's fragment (a hash router), so only its real files
    // are served: any other path is an API 404, never the page.
    let api = match ui_dir.filter(|dir| dir.join("index.html").is_file()) {
        Some(dir) => {
            let index = ServeFile::new(dir.join("index.html"));
            let files = ServeDir::new(dir)
                .append_index_html_on_directories(false)
                .call_fallback_on_method_not_allowed(true)
                .fallback(not_found.into_service());
            api.route("/", get_service(index).fallback(method_not_allowed))
                .fallback_service(files)
        }
        None => api.fallback(not_found),
    };
    api.layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(crate::extract::request_id))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::not_found()
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this method is not allowed on this path",
    )
}

async fn openapi() -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        include_str!("openapi.json"),
    )
        .into_response()
}

async fn me(Caller(actor): Caller) -> Json<runbook_core::Actor> {
    Json(actor)
}

async fn list_runbooks(
    State(state): State<AppState>,
    Caller(actor): Caller,
    ApiQuery(query): ApiQuery<RunbookQuery>,
) -> ApiResult<Response> {
    let page = state.service.list_runbooks(&actor, query).await?;
    Ok(Json(page).into_response())
}

async fn create_runbook(
    State(state): State<AppState>,
    Caller(actor): Caller,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let runbook = state.service.create_runbook(&actor, body).await?;
    Ok((StatusCode::CREATED, Json(runbook)).into_response())
}

async fn get_runbook(
    State(state): State<AppState>,
    Caller(actor): Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Response> {
    let runbook = state.service.get_runbook(&actor, parse_id(&id)?).await?;
    Ok(Json(runbook).into_response())
}

async fn update_runbook(
    State(state): State<AppState>,
    Caller(actor): Caller,
    ApiPath(id): ApiPath<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let runbook = state
        .service
        .update_runbook(&actor, parse_id(&id)?, body)
        .await?;
    Ok(Json(runbook).into_response())
}

async fn delete_runbook(
    State(state): State<AppState>,
    Caller(actor): Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    state.service.delete_runbook(&actor, parse_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_versions(
    State(state): State<AppState>,
    Caller(actor): Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Response> {
    let items = state.service.list_versions(&actor, parse_id(&id)?).await?;
    Ok(Json(serde_json::json!({ "items": items })).into_response())
}

async fn get_version(
    State(state): State<AppState>,
    Caller(actor): Caller,
    ApiPath((id, version)): ApiPath<(String, String)>,
) -> ApiResult<Response> {
    let version: i64 = version.parse().map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_id",
            "the version in the path is not a number",
        )
    })?;
    let runbook = state
        .service
        .get_version(&actor, parse_id(&id)?, version)
        .await?;
    Ok(Json(runbook).into_response())
}

#[derive(Deserialize)]
struct RollbackBody {
    version: i64,
}

async fn rollback(
    State(state): State<AppState>,
    Caller(actor): Caller,
    ApiPath(id): ApiPath<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let id = parse_id(&id)?;
    let RollbackBody { version } = typed(body)?;
    let runbook = state.service.rollback(&actor, id, version).await?;
    Ok(Json(runbook).into_response())
}

async fn execute(
    State(state): State<AppState>,
    Caller(actor): Caller,
    ApiPath(id): ApiPath<String>,
    OptionalJsonBody(body): OptionalJsonBody,
) -> ApiResult<Response> {
    let execution = state.service.execute(&actor, parse_id(&id)?, body).await?;
    Ok((StatusCode::ACCEPTED, Json(execution)).into_response())
}

async fn list_executions(
    State(state): State<AppState>,
    Caller(actor): Caller,
    ApiQuery(query): ApiQuery<ExecutionQuery>,
) -> ApiResult<Response> {
    let page = state.service.list_executions(&actor, query).await?;
    Ok(Json(page).into_response())
}

async fn get_execution(
    State(state): State<AppState>,
    Caller(actor): Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Response> {
    let execution = state.service.get_execution(&actor, parse_id(&id)?).await?;
    Ok(Json(execution).into_response())
}

#[derive(Deserialize)]
struct OutputQuery {
    offset: Option<u64>,
    limit: Option<u64>,
}

async fn read_output(
    State(state): State<AppState>,
    Caller(actor): Caller,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<OutputQuery>,
) -> ApiResult<Response> {
    let page = state
        .service
        .read_output(
            &actor,
            parse_id(&id)?,
            query.offset.unwrap_or(0),
            query.limit.unwrap_or(65536),
        )
        .await?;
    Ok(Json(page).into_response())
}

#[derive(Deserialize)]
struct ConsoleQuery {
    #[serde(default)]
    escapes: runbook_core::Escapes,
}

/// The run's whole console as a file, streamed a page at a time: plain text, or with
/// `escapes=keep` the bytes as stored. A live run's console is sent up to where it has
/// got to.
async fn console_log(
    State(state): State<AppState>,
    Caller(actor): Caller,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<ConsoleQuery>,
) -> ApiResult<Response> {
    use axum::http::header::{HeaderValue, CONTENT_DISPOSITION, CONTENT_TYPE};
    let mut log = state
        .service
        .console_log(&actor, parse_id(&id)?, query.escapes)
        .await?;
    // The first page is read before answering, so a store that fails at once is an
    // error status, not an empty file.
    let first = log.next_chunk().await?;
    let disposition = attachment(&log.file_name);
    // A failure after the first page, or a shutdown, cuts the body short: the client sees
    // the transfer end unfinished, not a file that looks whole, and a shutdown does not
    // wait for a long one.
    let rest = futures::stream::try_unfold(
        (log, state.shutdown.clone()),
        |(mut log, mut shutdown)| async move {
            let chunk = tokio::select! {
                biased;
                () = stopping(&mut shutdown) => {
                    return Err(runbook_core::CoreError::Unavailable(
                        "the server is shutting down".to_string(),
                    ))
                }
                chunk = log.next_chunk() => chunk?,
            };
            Ok(chunk.map(|chunk| (chunk, (log, shutdown))))
        },
    );
    let pages = futures::StreamExt::chain(futures::stream::iter(first.map(Ok)), rest);
    Ok((
        [
            (
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            ),
            (CONTENT_DISPOSITION, disposition),
        ],
        axum::body::Body::from_stream(pages),
    )
        .into_response())
}

/// `Content-Disposition` for a file named `file_name`, which the core makes of ASCII
/// letters, digits, `-` and `.` only: safe in the header.
fn attachment(file_name: &str) -> axum::http::HeaderValue {
    axum::http::HeaderValue::from_str(&format!("attachment; filename=\"{file_name}\""))
        .unwrap_or_else(|_| axum::http::HeaderValue::from_static("attachment"))
}

/// Returns once the server is shutting down; never if no one can shut it down.
pub(crate) async fn stopping(shutdown: &mut watch::Receiver<bool>) {
    if shutdown.wait_for(|stop| *stop).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// The run as a Markdown report, to save as a file.
async fn export_execution(
    State(state): State<AppState>,
    Caller(actor): Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Response> {
    use axum::http::header::{HeaderName, HeaderValue, CONTENT_DISPOSITION, CONTENT_TYPE};
    let report = state
        .service
        .export_execution(&actor, parse_id(&id)?)
        .await?;
    let disposition = attachment(&report.file_name);
    let mut response = (
        [
            (
                CONTENT_TYPE,
                HeaderValue::from_static("text/markdown; charset=utf-8"),
            ),
            (CONTENT_DISPOSITION, disposition),
        ],
        report.text,
    )
        .into_response();
    if report.truncated {
        response.headers_mut().insert(
            HeaderName::from_static("x-console-truncated"),
            HeaderValue::from_static("true"),
        );
    }
    Ok(response)
}

async fn events(
    State(state): State<AppState>,
    Caller(actor): Caller,
    key: PresentedKey,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Response> {
    sse::execution_events(state, actor, key, parse_id(&id)?).await
}

/// Unknown fields are refused: a misspelt `block_id` (`blockId`) would otherwise
/// turn a guarded acknowledgement into one that confirms whatever step waits.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ControlBody {
    action: ControlAction,
    /// For an acknowledgement: the step it answers; refused unless the run waits there.
    #[serde(default)]
    block_id: Option<String>,
}

async fn control(
    State(state): State<AppState>,
    Caller(actor): Caller,
    ApiPath(id): ApiPath<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let id = parse_id(&id)?;
    let ControlBody { action, block_id } = typed(body)?;
    let execution = state
        .service
        .control_step(&actor, id, action, block_id.as_deref())
        .await?;
    Ok(Json(execution).into_response())
}

async fn retry(
    State(state): State<AppState>,
    Caller(actor): Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Response> {
    let execution = state.service.retry(&actor, parse_id(&id)?).await?;
    Ok((StatusCode::ACCEPTED, Json(execution)).into_response())
}

// ---- credentials, users, keys, audit (admin) ----

fn items<T: serde::Serialize>(items: Vec<T>) -> Response {
    Json(serde_json::json!({ "items": items })).into_response()
}

async fn list_credentials(
    State(state): State<AppState>,
    Caller(actor): Caller,
) -> ApiResult<Response> {
    Ok(items(state.service.list_credentials(&actor).await?))
}

async fn get_credential(
    State(state): State<AppState>,
    Caller(actor): Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Response> {
    let credential = state.service.get_credential(&actor, parse_id(&id)?).await?;
    Ok(Json(credential).into_response())
}

async fn create_credential(
    State(state): State<AppState>,
    Caller(actor): Caller,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let credential = state.service.create_credential(&actor, body).await?;
    Ok((StatusCode::CREATED, Json(credential)).into_response())
}

async fn update_credential(
    State(state): State<AppState>,
    Caller(actor): Caller,
    ApiPath(id): ApiPath<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let credential = state
        .service
        .update_credential(&actor, parse_id(&id)?, body)
        .await?;
    Ok(Json(credential).into_response())
}

async fn delete_credential(
    State(state): State<AppState>,
    Caller(actor): Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    state
        .service
        .delete_credential(&actor, parse_id(&id)?)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_users(State(state): State<AppState>, Caller(actor): Caller) -> ApiResult<Response> {
    Ok(items(state.service.list_users(&actor).await?))
}

async fn create_user(
    State(state): State<AppState>,
    Caller(actor): Caller,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let user = state.service.create_user(&actor, body).await?;
    Ok((StatusCode::CREATED, Json(user)).into_response())
}

async fn update_user(
    State(state): State<AppState>,
    Caller(actor): Caller,
    ApiPath(id): ApiPath<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let user = state
        .service
        .update_user(&actor, parse_id(&id)?, body)
        .await?;
    Ok(Json(user).into_response())
}

async fn delete_user(
    State(state): State<AppState>,
    Caller(actor): Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    state.service.delete_user(&actor, parse_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_keys(State(state): State<AppState>, Caller(actor): Caller) -> ApiResult<Response> {
    Ok(items(state.service.list_api_keys(&actor).await?))
}

async fn create_key(
    State(state): State<AppState>,
    Caller(actor): Caller,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let key = state.service.create_key(&actor, body).await?;
    Ok((StatusCode::CREATED, Json(key)).into_response())
}

async fn revoke_key(
    State(state): State<AppState>,
    Caller(actor): Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    state.service.revoke_api_key(&actor, parse_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_audit(
    State(state): State<AppState>,
    Caller(actor): Caller,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> ApiResult<Response> {
    let page = state.service.list_audit(&actor, query).await?;
    Ok(Json(page).into_response())
}

async fn verify_audit(State(state): State<AppState>, Caller(actor): Caller) -> ApiResult<Response> {
    let report = state.service.verify_audit(&actor).await?;
    Ok(Json(report).into_response())
}

async fn vault_status(State(state): State<AppState>, Caller(actor): Caller) -> ApiResult<Response> {
    let status = state.service.vault_status(&actor)?;
    Ok(Json(status).into_response())
}
