//! Tauri commands: thin adapters from the UI's `invoke` calls to the core service API. Each one
//! extracts its arguments, calls the core and returns the same JSON as the matching REST endpoint.

use crate::error::{parse_action, parse_id, parse_time, CommandError};
use crate::events::Followers;
use runbook_core::{
    Actor, ApiKeyInfo, AuditQuery, ExecutionQuery, NewApiKey, Page, RunbookQuery, Service,
    VaultStatus, VerifyReport,
};
use runbook_domain::{
    AuditEntry, CredentialInfo, Execution, OutputPage, Runbook, RunbookSummary, User, VersionInfo,
};
use serde::Serialize;
use serde_json::Value;
use std::path::PathBuf;
use tauri::{AppHandle, Runtime, State};

type CommandResult<T> = Result<T, CommandError>;

/// A list without paging, as `GET /runbooks/{id}/versions` returns it.
#[derive(Serialize)]
pub struct Items<T> {
    items: Vec<T>,
}

#[tauri::command]
pub async fn list_runbooks(
    service: State<'_, Service>,
    actor: State<'_, Actor>,
    q: Option<String>,
    tag: Option<String>,
    limit: Option<i64>,
    offset: Option<i64>,
) -> CommandResult<Page<RunbookSummary>> {
    let query = RunbookQuery {
        q,
        tag,
        limit,
        offset,
    };
    Ok(service.list_runbooks(&actor, query).await?)
}

#[tauri::command]
pub async fn get_runbook(
    service: State<'_, Service>,
    actor: State<'_, Actor>,
    id: String,
) -> CommandResult<Runbook> {
    Ok(service.get_runbook(&actor, parse_id(&id)?).await?)
}

#[tauri::command]
pub async fn create_runbook(
    service: State<'_, Service>,
    actor: State<'_, Actor>,
    body: Value,
) -> CommandResult<Runbook> {
    Ok(service.create_runbook(&actor, body).await?)
}

#[tauri::command]
pub async fn update_runbook(
    service: State<'_, Service>,
    actor: State<'_, Actor>,
    id: String,
    body: Value,
) -> CommandResult<Runbook> {
    Ok(service.update_runbook(&actor, parse_id(&id)?, body).await?)
}

#[tauri::command]
pub async fn delete_runbook(
    service: State<'_, Service>,
    actor: State<'_, Actor>,
    id: String,
) -> CommandResult<()> {
    Ok(service.delete_runbook(&actor, parse_id(&id)?).await?)
}

#[tauri::command]
pub async fn list_versions(
    service: State<'_, Service>,
    actor: State<'_, Actor>,
    id: String,
) -> CommandResult<Items<VersionInfo>> {
    let items = service.list_versions(&actor, parse_id(&id)?).await?;
    Ok(Items { items })
}

#[tauri::command]
pub async fn get_version(
    service: State<'_, Service>,
    actor: State<'_, Actor>,
    id: String,
    version: i64,
) -> CommandResult<Runbook> {
    Ok(service.get_version(&actor, parse_id(&id)?, version).await?)
}

#[tauri::command]
pub async fn rollback_runbook(
    service: State<'_, Service>,
    actor: State<'_, Actor>,
    id: String,
    version: i64,
) -> CommandResult<Runbook> {
    Ok(service.rollback(&actor, parse_id(&id)?, version).await?)
}

/// `body` is `{"params": {...}, "version": null}`; a missing body runs the current version.
#[tauri::command]
pub async fn execute_runbook(
    service: State<'_, Service>,
    actor: State<'_, Actor>,
    id: String,
    body: Option<Value>,
) -> CommandResult<Execution> {
    let body = body.unwrap_or(Value::Null);
    Ok(service.execute(&actor, parse_id(&id)?, body).await?)
}

#[tauri::command]
pub async fn get_execution(
    service: State<'_, Service>,
    actor: State<'_, Actor>,
    id: String,
) -> CommandResult<Execution> {
    Ok(service.get_execution(&actor, parse_id(&id)?).await?)
}

#[tauri::command]
pub async fn list_executions(
    service: State<'_, Service>,
    actor: State<'_, Actor>,
    runbook_id: Option<String>,
    status: Option<String>,
    limit: Option<i64>,
    offset: Option<i64>,
) -> CommandResult<Page<Execution>> {
    let query = ExecutionQuery {
        runbook_id: runbook_id.as_deref().map(parse_id).transpose()?,
        status,
        limit,
        offset,
    };
    Ok(service.list_executions(&actor, query).await?)
}

#[tauri::command]
pub async fn read_output(
    service: State<'_, Service>,
    actor: State<'_, Actor>,
    id: String,
    offset: u64,
    limit: u64,
) -> CommandResult<OutputPage> {
    Ok(service
        .read_output(&actor, parse_id(&id)?, offset, limit)
        .await?)
}

/// Where the desktop saves exported run reports: the user's Downloads directory (else
/// `exports` in the data directory).
pub struct ExportDir(pub PathBuf);

impl ExportDir {
    /// The error of a `what` that could not be saved here.
    fn unsaved<'a>(
        &'a self,
        what: &'a str,
    ) -> impl Fn(std::io::Error) -> runbook_core::CoreError + Copy + 'a {
        move |error| {
            runbook_core::CoreError::Setup(format!(
                "could not save the {what} in {}: {error}",
                self.0.display()
            ))
        }
    }
}

/// A run report the desktop saved.
#[derive(Serialize)]
pub struct SavedReport {
    path: String,
    file_name: String,
    truncated: bool,
}

/// Saves the run's report (what `GET /executions/{id}/export` returns) as a file and
/// tells where.
#[tauri::command]
pub async fn export_execution(
    service: State<'_, Service>,
    actor: State<'_, Actor>,
    exports: State<'_, ExportDir>,
    id: String,
) -> CommandResult<SavedReport> {
    let report = service.export_execution(&actor, parse_id(&id)?).await?;
    let path = exports.0.join(&report.file_name);
    std::fs::create_dir_all(&exports.0)
        .and_then(|()| std::fs::write(&path, report.text.as_bytes()))
        .map_err(exports.unsaved("report"))?;
    Ok(SavedReport {
        path: path.display().to_string(),
        file_name: report.file_name,
        truncated: report.truncated,
    })
}

/// A run's console the desktop saved.
#[derive(Serialize)]
pub struct SavedConsole {
    path: String,
    file_name: String,
    bytes: u64,
}

/// Saves the run's whole console as plain text (what `GET /executions/{id}/console`
/// returns) beside exported reports, a page at a time, and tells where. A console that
/// cannot be saved whole leaves no file behind.
#[tauri::command]
pub async fn save_console(
    service: State<'_, Service>,
    actor: State<'_, Actor>,
    exports: State<'_, ExportDir>,
    id: String,
) -> CommandResult<SavedConsole> {
    use tokio::io::AsyncWriteExt;
    let mut log = service
        .console_log(&actor, parse_id(&id)?, runbook_core::Escapes::Strip)
        .await?;
    let path = exports.0.join(&log.file_name);
    let unsaved = exports.unsaved("console");
    tokio::fs::create_dir_all(&exports.0)
        .await
        .map_err(unsaved)?;
    // Written beside its name and renamed once whole: a save that fails, or that the app
    // quitting cuts short, leaves no partial file, and the run's earlier save stays.
    let (file, part) = tempfile::Builder::new()
        .prefix(".")
        .suffix(".part")
        .tempfile_in(&exports.0)
        .map_err(unsaved)?
        .into_parts();
    let mut file = tokio::fs::File::from_std(file);
    let mut bytes = 0;
    while let Some(chunk) = log.next_chunk().await? {
        file.write_all(&chunk).await.map_err(unsaved)?;
        bytes += chunk.len() as u64;
    }
    file.flush().await.map_err(unsaved)?;
    drop(file);
    part.persist(&path).map_err(|error| unsaved(error.error))?;
    Ok(SavedConsole {
        path: path.display().to_string(),
        file_name: log.file_name,
        bytes,
    })
}

#[tauri::command]
pub async fn control_execution(
    service: State<'_, Service>,
    actor: State<'_, Actor>,
    id: String,
    action: String,
    block_id: Option<String>,
) -> CommandResult<Execution> {
    let action = parse_action(&action)?;
    let id = parse_id(&id)?;
    Ok(service
        .control_step(&actor, id, action, block_id.as_deref())
        .await?)
}

/// Follows, for one view, a run another process executes (a terminal's `run`, another
/// desktop on the shared database): its events are emitted as `execution-event` like
/// this process's own. True when the view is now counted among a follower's, and calls
/// `unfollow_execution` when it closes; false for a run this process executes (its
/// events are always emitted) or one that has ended.
#[tauri::command]
pub async fn follow_execution<R: Runtime>(
    app: AppHandle<R>,
    service: State<'_, Service>,
    actor: State<'_, Actor>,
    followers: State<'_, Followers>,
    id: String,
) -> CommandResult<bool> {
    Ok(followers
        .follow(&app, &service, &actor, parse_id(&id)?)
        .await?)
}

/// One view fewer follows the run (see `follow_execution`).
#[tauri::command]
pub fn unfollow_execution(followers: State<'_, Followers>, id: String) -> CommandResult<()> {
    followers.unfollow(parse_id(&id)?);
    Ok(())
}

#[tauri::command]
pub async fn retry_execution(
    service: State<'_, Service>,
    actor: State<'_, Actor>,
    id: String,
) -> CommandResult<Execution> {
    Ok(service.retry(&actor, parse_id(&id)?).await?)
}

/// The local profile the desktop acts as: `{"name", "role"}`.
#[tauri::command]
pub fn whoami(actor: State<'_, Actor>) -> Actor {
    actor.inner().clone()
}

// ---- credentials, users, keys, audit (admin) ----

#[tauri::command]
pub async fn list_credentials(
    service: State<'_, Service>,
    actor: State<'_, Actor>,
) -> CommandResult<Items<CredentialInfo>> {
    let items = service.list_credentials(&actor).await?;
    Ok(Items { items })
}

#[tauri::command]
pub async fn get_credential(
    service: State<'_, Service>,
    actor: State<'_, Actor>,
    id: String,
) -> CommandResult<CredentialInfo> {
    Ok(service.get_credential(&actor, parse_id(&id)?).await?)
}

#[tauri::command]
pub async fn create_credential(
    service: State<'_, Service>,
    actor: State<'_, Actor>,
    body: Value,
) -> CommandResult<CredentialInfo> {
    Ok(service.create_credential(&actor, body).await?)
}

#[tauri::command]
pub async fn update_credential(
    service: State<'_, Service>,
    actor: State<'_, Actor>,
    id: String,
    body: Value,
) -> CommandResult<CredentialInfo> {
    Ok(service
        .update_credential(&actor, parse_id(&id)?, body)
        .await?)
}

#[tauri::command]
pub async fn delete_credential(
    service: State<'_, Service>,
    actor: State<'_, Actor>,
    id: String,
) -> CommandResult<()> {
    Ok(service.delete_credential(&actor, parse_id(&id)?).await?)
}

#[tauri::command]
pub async fn list_users(
    service: State<'_, Service>,
    actor: State<'_, Actor>,
) -> CommandResult<Items<User>> {
    let items = service.list_users(&actor).await?;
    Ok(Items { items })
}

#[tauri::command]
pub async fn create_user(
    service: State<'_, Service>,
    actor: State<'_, Actor>,
    body: Value,
) -> CommandResult<User> {
    Ok(service.create_user(&actor, body).await?)
}

#[tauri::command]
pub async fn update_user(
    service: State<'_, Service>,
    actor: State<'_, Actor>,
    id: String,
    body: Value,
) -> CommandResult<User> {
    Ok(service.update_user(&actor, parse_id(&id)?, body).await?)
}

#[tauri::command]
pub async fn delete_user(
    service: State<'_, Service>,
    actor: State<'_, Actor>,
    id: String,
) -> CommandResult<()> {
    Ok(service.delete_user(&actor, parse_id(&id)?).await?)
}

#[tauri::command]
pub async fn list_api_keys(
    service: State<'_, Service>,
    actor: State<'_, Actor>,
) -> CommandResult<Items<ApiKeyInfo>> {
    let items = service.list_api_keys(&actor).await?;
    Ok(Items { items })
}

#[tauri::command]
pub async fn create_api_key(
    service: State<'_, Service>,
    actor: State<'_, Actor>,
    body: Value,
) -> CommandResult<NewApiKey> {
    Ok(service.create_key(&actor, body).await?)
}

#[tauri::command]
pub async fn revoke_api_key(
    service: State<'_, Service>,
    actor: State<'_, Actor>,
    id: String,
) -> CommandResult<()> {
    Ok(service.revoke_api_key(&actor, parse_id(&id)?).await?)
}

#[allow(clippy::too_many_arguments)]
#[tauri::command]
pub async fn list_audit(
    service: State<'_, Service>,
    caller: State<'_, Actor>,
    actor: Option<String>,
    action: Option<String>,
    target: Option<String>,
    outcome: Option<String>,
    since: Option<String>,
    until: Option<String>,
    limit: Option<i64>,
    offset: Option<i64>,
) -> CommandResult<Page<AuditEntry>> {
    let query = AuditQuery {
        actor,
        action,
        target,
        outcome,
        since: parse_time(since.as_deref())?,
        until: parse_time(until.as_deref())?,
        limit,
        offset,
    };
    Ok(service.list_audit(&caller, query).await?)
}

#[tauri::command]
pub async fn verify_audit(
    service: State<'_, Service>,
    actor: State<'_, Actor>,
) -> CommandResult<VerifyReport> {
    Ok(service.verify_audit(&actor).await?)
}

#[tauri::command]
pub fn vault_status(
    service: State<'_, Service>,
    actor: State<'_, Actor>,
) -> CommandResult<VaultStatus> {
    Ok(service.vault_status(&actor)?)
}
