//! The use cases: runbooks, versions, executions, output and API keys.

use crate::access::{Lockout, LockoutPolicy};
use crate::audit::Subject;
use crate::credentials::VaultState;
use crate::follow::Following;
use crate::sink::StoreSink;
use crate::{Actor, CoreError};
use chrono::{DateTime, Utc};
use runbook_domain::validation::{parse_draft, parse_update};
use runbook_domain::{
    AuditOutcome, ControlAction, Execution, ExecutionStatus, OutputPage, ParamType, Role, Runbook,
    RunbookSummary, StepStatus, StopRequest, VersionInfo,
};
use runbook_engine::{ControlError, Engine, EngineConfig, ExecutionEvent};
use runbook_store::{ControlOutcome, ControlRequest, ExecutionFilter, RunbookFilter, Store};
use runbook_vault::{KeyLocation, KeySetting, KeySource, LoadedKey, MasterKey};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;
use uuid::Uuid;

/// Name of the SQLite file inside the data directory.
pub const SQLITE_FILE: &str = "runbook-studio.db";
/// Page size when a list request names none.
const DEFAULT_LIMIT: i64 = 50;
/// Largest page a list request may ask for.
const MAX_LIMIT: i64 = 500;
/// Longest text a parameter may be given, in bytes (as long as a script may be).
const MAX_PARAM_BYTES: usize = runbook_domain::validation::MAX_SCRIPT_BYTES;
/// Largest output page, in bytes.
const MAX_OUTPUT_PAGE: u64 = 1024 * 1024;
/// How often a run another process executes is read: by [`Service::wait_for_end`],
/// and for what changed by a follower ([`Following::into_events`]).
pub(crate) const ELSEWHERE_POLL: Duration = Duration::from_millis(250);
/// How long a control request for a run another process executes may wait to be taken.
const RELAY_PATIENCE: Duration = Duration::from_secs(5);
/// How often the requester looks for the answer.
const RELAY_ANSWER_POLL: Duration = Duration::from_millis(5);
/// How often the requester checks whether the run has ended meanwhile.
const RELAY_END_CHECK: Duration = Duration::from_millis(100);
/// How often a process that executes runs looks for control requests for them, where
/// the database does not announce them (SQLite).
const RELAY_TAKE_POLL: Duration = Duration::from_millis(20);
/// How long a run's process may stay silent before its run counts as interrupted.
pub const DEFAULT_HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(15);

/// Where the core keeps its data.
#[derive(Debug, Clone)]
pub struct Config {
    /// Directory for the SQLite file (when no database URL is given) and other local state.
    pub data_dir: PathBuf,
    /// `sqlite://…` or `postgres://…`; `None` means SQLite in `data_dir`.
    pub database_url: Option<String>,
    pub engine: EngineConfig,
    /// A run whose process gave no sign of life for this long is marked `interrupted`.
    pub heartbeat_timeout: Duration,
    /// Where the master key that encrypts credentials comes from.
    pub master_key: KeySetting,
    /// How many failed authentications a client may make before it gets 429.
    pub lockout: LockoutPolicy,
}

impl Config {
    /// Settings with everything in `data_dir` and default engine settings.
    /// The master key is kept in a key file there (no keychain); desktops and servers
    /// choose their source explicitly.
    pub fn from_data_dir(data_dir: impl Into<PathBuf>) -> Config {
        let data_dir = data_dir.into();
        Config {
            master_key: KeySetting::Platform {
                data_dir: data_dir.clone(),
                keychain: false,
            },
            lockout: LockoutPolicy::default(),
            data_dir,
            database_url: None,
            engine: EngineConfig::default(),
            heartbeat_timeout: DEFAULT_HEARTBEAT_TIMEOUT,
        }
    }

    /// The platform's data directory for Runbook Studio (e.g. `~/.local/share/runbook-studio`).
    pub fn default_data_dir() -> PathBuf {
        directories::ProjectDirs::from("dev", "Runbook Studio", "runbook-studio")
            .map(|dirs| dirs.data_dir().to_path_buf())
            .unwrap_or_else(|| PathBuf::from(".runbook-studio"))
    }

    /// The database URL in force.
    pub fn effective_database_url(&self) -> String {
        match &self.database_url {
            Some(url) if !url.trim().is_empty() => url.clone(),
            _ => format!("sqlite://{}", self.data_dir.join(SQLITE_FILE).display()),
        }
    }
}

/// Filters and paging for [`Service::list_runbooks`].
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RunbookQuery {
    pub q: Option<String>,
    pub tag: Option<String>,
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

/// Filters and paging for [`Service::list_executions`].
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ExecutionQuery {
    pub runbook_id: Option<Uuid>,
    pub status: Option<String>,
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

/// One page of a list and the total count matching its filter.
#[derive(Debug, Clone, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: i64,
}

/// A step of a run that waits for a person to acknowledge it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WaitingStep {
    pub execution_id: Uuid,
    pub runbook_name: String,
    pub block_id: String,
    /// The step's instructions (markdown), rendered as the run shows them.
    pub text: String,
}

/// The body of an execute request.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecuteRequest {
    #[serde(default)]
    pub params: serde_json::Map<String, serde_json::Value>,
    /// The version to run; `None` runs the current one.
    #[serde(default)]
    pub version: Option<i64>,
}

/// The core service. Cheap to clone.
#[derive(Clone)]
pub struct Service {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) vault: Arc<VaultState>,
    pub(crate) lockout: Arc<Lockout>,
    engine: Engine,
    /// This process, as the owner of the runs it executes.
    runner: Uuid,
    _upkeep: Arc<Upkeep>,
}

/// The background tasks that keep this process's runs alive in the store, interrupt
/// runs whose process died and answer control requests other processes leave for
/// this one's runs; they end with the last clone of the service.
struct Upkeep(Vec<tokio::task::JoinHandle<()>>);

impl Drop for Upkeep {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

impl Service {
    /// Opens the store (migrating it), marks runs a previous process left unfinished
    /// as `interrupted`, and starts the engine.
    pub async fn open(config: Config) -> Result<Service, CoreError> {
        std::fs::create_dir_all(&config.data_dir).map_err(|e| {
            CoreError::Internal(format!(
                "cannot create data directory {}: {e}",
                config.data_dir.display()
            ))
        })?;
        let url = config.effective_database_url();
        let store = runbook_store::connect(&url).await.map_err(|e| {
            CoreError::Internal(format!(
                "cannot open database {}: {e}",
                runbook_store::redact_url(&url)
            ))
        })?;
        let setting = config.master_key.clone();
        let loaded = tokio::task::spawn_blocking(move || setting.load())
            .await
            .map_err(|e| CoreError::Internal(e.to_string()))?
            .map_err(|e| CoreError::Setup(e.to_string()))?;
        Service::with_key(
            store,
            config.engine,
            config.heartbeat_timeout,
            loaded,
            config.lockout,
        )
        .await
    }

    /// A service over an already opened store, with a master key of its own (tests,
    /// benchmarks: a store nothing else opens with another key).
    ///
    /// Runs that no live process owns any more (their heartbeat is older than
    /// `heartbeat_timeout`) become `interrupted` now and whenever the upkeep task
    /// finds them later; runs of other live processes sharing the store are left alone.
    pub async fn with_store(
        store: Arc<dyn Store>,
        engine_config: EngineConfig,
        heartbeat_timeout: Duration,
    ) -> Result<Service, CoreError> {
        let loaded = LoadedKey {
            key: MasterKey::generate(),
            source: KeySource::Environment,
            location: KeyLocation::Environment,
            warning: None,
            created: false,
        };
        Service::with_key(
            store,
            engine_config,
            heartbeat_timeout,
            loaded,
            LockoutPolicy::default(),
        )
        .await
    }

    /// A service over an already opened store whose credentials are sealed with `key`.
    pub async fn with_key(
        store: Arc<dyn Store>,
        engine_config: EngineConfig,
        heartbeat_timeout: Duration,
        key: LoadedKey,
        lockout: LockoutPolicy,
    ) -> Result<Service, CoreError> {
        let vault = Arc::new(VaultState::open(store.as_ref(), key).await?);
        let engine = Engine::new(
            engine_config,
            Arc::new(StoreSink(store.clone())),
            Service::resolver(store.clone(), vault.clone()),
        );
        interrupt_orphans(store.as_ref(), &engine, heartbeat_timeout).await?;
        reap_leftovers(store.as_ref(), &engine).await;
        let runner = Uuid::new_v4();
        let upkeep = vec![
            tokio::spawn(upkeep(store.clone(), engine.clone(), heartbeat_timeout)),
            tokio::spawn(answer_controls(store.clone(), engine.clone())),
        ];
        Ok(Service {
            store,
            vault,
            lockout: Arc::new(Lockout::new(lockout)),
            engine,
            runner,
            _upkeep: Arc::new(Upkeep(upkeep)),
        })
    }

    /// Events of every run from now on (console output, step and status changes).
    pub fn subscribe(&self) -> broadcast::Receiver<ExecutionEvent> {
        self.engine.subscribe()
    }

    /// Stops live runs; call before the process exits. Waits, at most for the longest
    /// grace period of their commands, for them to end.
    pub async fn shutdown(&self) {
        self.engine.shutdown().await;
    }

    /// Returns once the processes crashed runs left, which this service set about ending
    /// when it opened, have ended (SIGKILLed at the latest when the default grace period
    /// is over): for a process about to exit without [`Service::shutdown`].
    pub async fn finish_reaping(&self) {
        self.engine.finish_reaping().await;
    }

    /// Kills the processes of the runs being stopped here now, without waiting for the
    /// rest of their grace periods: asked again to quit, a process does not wait.
    pub fn kill_now(&self) {
        self.engine.kill_now();
    }

    // ---- runbooks ----

    pub async fn list_runbooks(
        &self,
        actor: &Actor,
        query: RunbookQuery,
    ) -> Result<Page<RunbookSummary>, CoreError> {
        actor.require(Role::Viewer)?;
        let (limit, offset) = paging(query.limit, query.offset)?;
        if [&query.q, &query.tag]
            .into_iter()
            .flatten()
            .any(|text| text.contains('\0'))
        {
            return Err(CoreError::bad_request(
                "invalid_query",
                "search text may not contain U+0000",
            ));
        }
        let filter = RunbookFilter {
            q: query.q.map(|q| q.trim().to_string()),
            tag: query.tag,
            limit,
            offset,
        };
        let (items, total) = self.store.list_runbooks(&filter).await?;
        Ok(Page { items, total })
    }

    pub async fn get_runbook(&self, actor: &Actor, id: Uuid) -> Result<Runbook, CoreError> {
        actor.require(Role::Viewer)?;
        self.load_runbook(id).await
    }

    /// The runbook with this id, or else the one live runbook with exactly this name.
    pub async fn find_runbook(
        &self,
        actor: &Actor,
        name_or_id: &str,
    ) -> Result<Runbook, CoreError> {
        actor.require(Role::Viewer)?;
        if let Ok(id) = Uuid::parse_str(name_or_id) {
            return self.load_runbook(id).await;
        }
        // Every runbook the search finds, page by page: the one named so may be among
        // many whose name, tags or description merely contain it.
        let mut named = Vec::new();
        let mut filter = RunbookFilter {
            q: Some(name_or_id.to_string()),
            tag: None,
            limit: MAX_LIMIT,
            offset: 0,
        };
        loop {
            let (found, total) = self.store.list_runbooks(&filter).await?;
            let count = found.len() as i64;
            named.extend(
                found
                    .into_iter()
                    .filter(|r| r.name == name_or_id)
                    .map(|r| r.id),
            );
            filter.offset += count;
            if count == 0 || filter.offset >= total {
                break;
            }
        }
        match named.as_slice() {
            [only] => self.load_runbook(*only).await,
            [] => Err(CoreError::NotFound { what: "runbook" }),
            _ => Err(CoreError::unprocessable(
                "ambiguous_name",
                format!("several runbooks are named `{name_or_id}`; use the id"),
            )),
        }
    }

    pub async fn create_runbook(
        &self,
        actor: &Actor,
        body: serde_json::Value,
    ) -> Result<Runbook, CoreError> {
        let result = async {
            actor.require(Role::Editor)?;
            let draft = parse_draft(body)?;
            let now = now();
            let runbook = Runbook {
                id: Uuid::new_v4(),
                draft,
                version: 1,
                created_at: now,
                updated_at: now,
                updated_by: actor.name.clone(),
            };
            self.store.insert_runbook(&runbook, "Created").await?;
            Ok(runbook)
        }
        .await;
        self.audited(
            actor,
            "runbook.create",
            // A refused create has no id: its record still names what it was about.
            Subject::new("runbook:new"),
            result,
            |runbook| {
                Subject::new(format!("runbook:{}", runbook.id)).with(
                    serde_json::json!({"name": runbook.draft.name, "version": runbook.version}),
                )
            },
        )
        .await
    }

    pub async fn update_runbook(
        &self,
        actor: &Actor,
        id: Uuid,
        body: serde_json::Value,
    ) -> Result<Runbook, CoreError> {
        let result = async {
            actor.require(Role::Editor)?;
            let update = parse_update(body)?;
            let current = self.load_runbook(id).await?;
            let message = update.message.unwrap_or_default();
            self.save_new_version(current, update.draft, update.version, &message, actor)
                .await
        }
        .await;
        self.audited(
            actor,
            "runbook.update",
            Subject::new(format!("runbook:{id}")),
            result,
            |runbook| {
                Subject::none().with(
                    serde_json::json!({"name": runbook.draft.name, "version": runbook.version}),
                )
            },
        )
        .await
    }

    pub async fn delete_runbook(&self, actor: &Actor, id: Uuid) -> Result<(), CoreError> {
        let result = async {
            actor.require(Role::Editor)?;
            if self.store.delete_runbook(id, now()).await? {
                Ok(())
            } else {
                Err(CoreError::NotFound { what: "runbook" })
            }
        }
        .await;
        self.audited(
            actor,
            "runbook.delete",
            Subject::new(format!("runbook:{id}")),
            result,
            |_| Subject::none(),
        )
        .await
    }

    pub async fn list_versions(
        &self,
        actor: &Actor,
        id: Uuid,
    ) -> Result<Vec<VersionInfo>, CoreError> {
        actor.require(Role::Viewer)?;
        let versions = self.store.list_versions(id).await?;
        if versions.is_empty() {
            return Err(CoreError::NotFound { what: "runbook" });
        }
        Ok(versions)
    }

    pub async fn get_version(
        &self,
        actor: &Actor,
        id: Uuid,
        version: i64,
    ) -> Result<Runbook, CoreError> {
        actor.require(Role::Viewer)?;
        self.load_runbook(id).await?;
        self.store
            .get_version(id, version)
            .await?
            .ok_or(CoreError::NotFound { what: "version" })
    }

    /// Makes a new version whose content equals `version`; history is never rewritten.
    pub async fn rollback(
        &self,
        actor: &Actor,
        id: Uuid,
        version: i64,
    ) -> Result<Runbook, CoreError> {
        let result = async {
            actor.require(Role::Editor)?;
            let current = self.load_runbook(id).await?;
            let old = self
                .store
                .get_version(id, version)
                .await?
                .ok_or(CoreError::NotFound { what: "version" })?;
            let based_on = current.version;
            let message = format!("Rolled back to version {version}");
            self.save_new_version(current, old.draft, based_on, &message, actor)
                .await
        }
        .await;
        self.audited(
            actor,
            "runbook.rollback",
            Subject::new(format!("runbook:{id}")).with(serde_json::json!({"to_version": version})),
            result,
            |runbook| {
                Subject::none()
                    .with(serde_json::json!({"to_version": version, "version": runbook.version}))
            },
        )
        .await
    }

    async fn save_new_version(
        &self,
        current: Runbook,
        draft: runbook_domain::RunbookDraft,
        based_on: i64,
        message: &str,
        actor: &Actor,
    ) -> Result<Runbook, CoreError> {
        if based_on != current.version {
            return Err(CoreError::VersionConflict {
                based_on,
                current: current.version,
            });
        }
        let runbook = Runbook {
            draft,
            version: based_on + 1,
            updated_at: now(),
            updated_by: actor.name.clone(),
            ..current
        };
        match self.store.save_version(&runbook, based_on, message).await {
            Ok(()) => Ok(runbook),
            Err(runbook_store::StoreError::VersionConflict { current }) => {
                Err(CoreError::VersionConflict { based_on, current })
            }
            Err(other) => Err(other.into()),
        }
    }

    async fn load_runbook(&self, id: Uuid) -> Result<Runbook, CoreError> {
        self.store
            .get_runbook(id)
            .await?
            .ok_or(CoreError::NotFound { what: "runbook" })
    }

    // ---- executions ----

    /// Starts a run of the runbook (current version unless the request names one).
    pub async fn execute(
        &self,
        actor: &Actor,
        id: Uuid,
        body: serde_json::Value,
    ) -> Result<Execution, CoreError> {
        let result = async {
            actor.require(Role::Operator)?;
            let request: ExecuteRequest = if body.is_null() {
                ExecuteRequest::default()
            } else {
                serde_json::from_value(body)
                    .map_err(|e| CoreError::unprocessable("invalid_type", e.to_string()))?
            };
            let current = self.load_runbook(id).await?;
            let runbook = match request.version {
                None => current,
                Some(version) if version == current.version => current,
                Some(version) => self
                    .store
                    .get_version(id, version)
                    .await?
                    .ok_or(CoreError::NotFound { what: "version" })?,
            };
            let params = resolve_params(&runbook, request.params)?;
            let execution = Execution::queued(Uuid::new_v4(), &runbook, params, &actor.name, now());
            let detail = serde_json::json!({
                "runbook": execution.runbook_id, "version": execution.runbook_version,
            });
            self.launch(actor, "execution.start", detail, execution, runbook)
                .await
        }
        .await;
        self.audited_failure(
            actor,
            "execution.start",
            Subject::new(format!("runbook:{id}")),
            result,
        )
        .await
    }

    /// Runs a failed, stopped or interrupted execution again from the step that did
    /// not succeed, with the same version and parameters; the results of the steps
    /// before it are carried over (marked `reused`) and the new run links to the old.
    pub async fn retry(&self, actor: &Actor, id: Uuid) -> Result<Execution, CoreError> {
        let result = async {
            actor.require(Role::Operator)?;
            let previous = self.load_execution(id).await?;
            if !matches!(
                previous.status,
                ExecutionStatus::Failed | ExecutionStatus::Stopped | ExecutionStatus::Interrupted
            ) {
                return Err(CoreError::InvalidState(format!(
                    "the execution is {}; only a failed, stopped or interrupted run can be retried",
                    previous.status
                )));
            }
            let runbook = self
                .store
                .get_version(previous.runbook_id, previous.runbook_version)
                .await?
                .ok_or(CoreError::NotFound { what: "runbook" })?;
            let continues: std::collections::HashMap<&str, bool> = runbook
                .all_blocks()
                .into_iter()
                .map(|block| (block.id(), block.failure_continues()))
                .collect();
            // Skipped steps inside a branch the run did not take are done with; skipped
            // steps the run never reached (it was stopped between steps) are not.
            let untaken = untaken_blocks(&runbook, &previous);
            let from = previous.steps.iter().position(|step| match step.status {
                StepStatus::Succeeded => false,
                StepStatus::Skipped => !untaken.contains(step.block_id.as_str()),
                StepStatus::Failed => !continues
                    .get(step.block_id.as_str())
                    .copied()
                    .unwrap_or(false),
                _ => true,
            });
            let Some(from) = from else {
                return Err(CoreError::InvalidState(
                    "every step of the execution succeeded; there is nothing to retry".to_string(),
                ));
            };
            let mut execution = Execution::queued(
                Uuid::new_v4(),
                &runbook,
                previous.params.clone(),
                &actor.name,
                now(),
            );
            execution.retry_of = Some(previous.id);
            execution.retry_from = Some(previous.steps[from].block_id.clone());
            for (step, earlier) in execution.steps.iter_mut().zip(&previous.steps).take(from) {
                *step = earlier.clone();
                step.output_bytes = 0;
                step.detail.reused = true;
            }
            let detail = serde_json::json!({"retry_of": id, "retry_from": execution.retry_from});
            // What the run left when its app crashed is gone before its steps run again.
            self.engine.finish_reaping_of(previous.id).await;
            self.launch(actor, "execution.retry", detail, execution, runbook)
                .await
        }
        .await;
        self.audited_failure(
            actor,
            "execution.retry",
            Subject::new(format!("execution:{id}")),
            result,
        )
        .await
    }

    /// Stores a queued execution, claims it for this process and starts it. The
    /// record of `action` (with `detail`) commits with the execution.
    async fn launch(
        &self,
        actor: &Actor,
        action: &str,
        detail: serde_json::Value,
        execution: Execution,
        runbook: Runbook,
    ) -> Result<Execution, CoreError> {
        if self.engine.is_closing() {
            return Err(CoreError::InvalidState(
                "the service is shutting down and starts no new runs".to_string(),
            ));
        }
        let audit = crate::audit::event(
            &actor.name,
            actor.request_id.as_deref(),
            action,
            Subject::new(format!("execution:{}", execution.id)).with(detail),
            AuditOutcome::Success,
        );
        match self
            .store
            .insert_execution(&execution, Some(self.runner), Some(&audit))
            .await
        {
            Ok(()) => {}
            Err(runbook_store::StoreError::Duplicate) if execution.retry_of.is_some() => {
                return Err(CoreError::Conflict {
                    code: "retry_in_progress",
                    message: "this run, or another run of its retry chain, is being retried \
                              already; stop that retry or wait for it to end before retrying \
                              again"
                        .to_string(),
                });
            }
            Err(error) => return Err(error.into()),
        }
        self.engine.start(execution.clone(), runbook);
        Ok(execution)
    }

    pub async fn get_execution(&self, actor: &Actor, id: Uuid) -> Result<Execution, CoreError> {
        actor.require(Role::Viewer)?;
        self.load_execution(id).await
    }

    /// The step the run `id` waits at for a person to acknowledge it, as the run shows
    /// it: the runbook's name, the step and its instructions rendered (secrets masked).
    /// Only for a run this process executes; `invalid_state` when it does not wait.
    pub async fn waiting_step(&self, actor: &Actor, id: Uuid) -> Result<WaitingStep, CoreError> {
        actor.require(Role::Viewer)?;
        let execution = self.load_execution(id).await?;
        let prompt = self.engine.prompt(id).ok_or_else(|| {
            CoreError::InvalidState(
                "the execution does not wait for an acknowledgement here".to_string(),
            )
        })?;
        Ok(WaitingStep {
            execution_id: execution.id,
            runbook_name: execution.runbook_name,
            block_id: prompt.block_id,
            text: prompt.text,
        })
    }

    /// The run `id` as it is now and, while this process executes it, its events:
    /// subscribed just before the run is read, so no change of the run's state is
    /// missed in between (some events may repeat what the read already shows; output
    /// events carry their offset, so a console skips what it has). Only this run's
    /// events arrive, however busy other runs are. A run another process executes is
    /// followed through what it stores ([`Following::into_events`]); a run that had
    /// finished when read has no events.
    pub async fn follow_execution(&self, actor: &Actor, id: Uuid) -> Result<Following, CoreError> {
        actor.require(Role::Viewer)?;
        let events = self.engine.subscribe_run(id);
        // Measured first: output stored while the run is read is told again rather
        // than missed (output events carry their offset).
        let offset = match events {
            Some(_) => 0,
            None => self.store.output_length(id).await?,
        };
        let execution = self.load_execution(id).await?;
        let unfinished = !execution.status.is_finished();
        let elsewhere = (events.is_none() && unfinished).then(|| crate::follow::Stored {
            store: self.store.clone(),
            offset,
        });
        let events = events.filter(|_| unfinished);
        Ok(Following {
            execution,
            events,
            elsewhere,
        })
    }

    /// Waits, at most `patience`, until the run has ended, and returns it as stored
    /// then (still unfinished when the patience ran out). A run this process executes
    /// is awaited until it has left the engine with its final state and all its output
    /// stored, and is returned as the engine stored it, without reading it back; a run
    /// executed by another instance is read every [`ELSEWHERE_POLL`].
    pub async fn wait_for_end(
        &self,
        actor: &Actor,
        id: Uuid,
        patience: Duration,
    ) -> Result<Execution, CoreError> {
        actor.require(Role::Viewer)?;
        let now = tokio::time::Instant::now();
        // A patience too large to add counts as a day: far beyond any caller's.
        let deadline = now
            .checked_add(patience)
            .unwrap_or(now + Duration::from_secs(86_400));
        loop {
            if self.is_live_here(id) {
                match tokio::time::timeout_at(deadline, self.engine.ended(id)).await {
                    Err(_) => return self.get_execution(actor, id).await,
                    Ok(Some(stored)) => return Ok(stored),
                    Ok(None) => {}
                }
            }
            let execution = self.get_execution(actor, id).await?;
            let now = tokio::time::Instant::now();
            if execution.status.is_finished() || now >= deadline {
                return Ok(execution);
            }
            tokio::time::sleep_until(deadline.min(now + ELSEWHERE_POLL)).await;
        }
    }

    pub async fn list_executions(
        &self,
        actor: &Actor,
        query: ExecutionQuery,
    ) -> Result<Page<Execution>, CoreError> {
        actor.require(Role::Viewer)?;
        let (limit, offset) = paging(query.limit, query.offset)?;
        let status = match query.status.as_deref().filter(|s| !s.is_empty()) {
            Some(text) => Some(text.parse::<ExecutionStatus>().map_err(|_| {
                CoreError::bad_request("invalid_query", format!("unknown status `{text}`"))
            })?),
            None => None,
        };
        let filter = ExecutionFilter {
            runbook_id: query.runbook_id,
            status,
            limit,
            offset,
        };
        let (mut items, total) = self.store.list_executions(&filter).await?;
        for execution in &mut items {
            self.overlay_live_status(execution);
        }
        Ok(Page { items, total })
    }

    /// A page of a run's console; pages never split a UTF-8 character.
    pub async fn read_output(
        &self,
        actor: &Actor,
        id: Uuid,
        offset: u64,
        limit: u64,
    ) -> Result<OutputPage, CoreError> {
        actor.require(Role::Viewer)?;
        let execution = self.load_execution(id).await?;
        // Four bytes hold any character: a smaller page could never make progress.
        if offset > i64::MAX as u64 {
            return Err(CoreError::bad_request(
                "invalid_query",
                "offset is beyond any console",
            ));
        }
        let limit = limit.clamp(4, MAX_OUTPUT_PAGE);
        let bytes = self.store.read_output(id, offset, limit).await?;
        // Skip a partial character at the start (an offset inside one)...
        let start = bytes
            .iter()
            .take(3)
            .take_while(|b| (**b & 0b1100_0000) == 0b1000_0000)
            .count();
        // ...and leave one cut off at the end for the next page.
        let end = match std::str::from_utf8(&bytes[start..]) {
            Err(e) if e.error_len().is_none() && bytes.len() as u64 == limit => {
                start + e.valid_up_to()
            }
            _ => bytes.len(),
        };
        let text = String::from_utf8_lossy(&bytes[start..end]).into_owned();
        Ok(OutputPage {
            offset,
            next_offset: offset + end as u64,
            complete: execution.status.is_finished() && (bytes.len() as u64) < limit,
            text,
        })
    }

    /// Pause, resume, stop, kill or acknowledge a live run.
    pub async fn control(
        &self,
        actor: &Actor,
        id: Uuid,
        action: ControlAction,
    ) -> Result<Execution, CoreError> {
        self.control_step(actor, id, action, None).await
    }

    /// Pause, resume, stop, kill or acknowledge a live run; an acknowledgement naming the
    /// step it answers (`step`) is refused (`invalid_state`) unless the run waits at
    /// that step, so one sent twice cannot confirm the next step unread.
    pub async fn control_step(
        &self,
        actor: &Actor,
        id: Uuid,
        action: ControlAction,
        step: Option<&str>,
    ) -> Result<Execution, CoreError> {
        // Set once the executing process answered a relayed request: it audited the
        // answer as this actor's, in the transaction that stored it.
        let mut audited_there = false;
        // Set when the executing process took the request and never answered: it may
        // have applied (and audited) it, so the record here says the outcome is unknown.
        let mut unknown = false;
        let result = async {
            actor.require(Role::Operator)?;
            let execution = self.load_execution(id).await?;
            match self.engine.control_at(id, action, step, &actor.name) {
                Ok(_) => self.load_execution(id).await,
                Err(ControlError::NotRunning) if execution.status.is_finished() => {
                    Err(CoreError::InvalidState(format!(
                        "the execution is {}; only a live run can be controlled",
                        execution.status
                    )))
                }
                // Another process executes it (another server, the desktop app, the
                // command line): the request goes to it through the store.
                Err(ControlError::NotRunning) => {
                    let outcome = match self.relay_control(actor, id, action, step).await? {
                        Relayed::Answered(outcome) => outcome,
                        Relayed::Unanswered(error) => {
                            unknown = true;
                            return Err(error);
                        }
                    };
                    audited_there = true;
                    let status = match outcome {
                        ControlOutcome::Applied { status } => status,
                        ControlOutcome::Refused { message } => {
                            return Err(CoreError::InvalidState(message))
                        }
                    };
                    let mut execution = self.load_execution(id).await?;
                    // The executing process stores who asked as it accepts the stop;
                    // the answer may come before that is stored. (A kill may follow
                    // someone else's stop not stored yet: not told.)
                    let stop = (action == ControlAction::Stop).then(|| StopRequest {
                        by: actor.name.clone(),
                        at: now(),
                    });
                    overlay(
                        &mut execution,
                        Live {
                            status: Some(status),
                            stop,
                        },
                    );
                    Ok(execution)
                }
                Err(
                    error @ (ControlError::InvalidState { .. } | ControlError::NotWaitingAt { .. }),
                ) => Err(CoreError::InvalidState(error.to_string())),
            }
        }
        .await;
        if audited_there {
            return result;
        }
        let mut subject = Subject::new(format!("execution:{id}"));
        if unknown {
            subject = subject.with(serde_json::json!({"applied": "unknown"}));
        }
        self.audited(actor, action.audit_name(), subject, result, |_| {
            Subject::none()
        })
        .await
    }

    /// Leaves a control request for the process that executes run `id` and waits for
    /// its answer: the run's state after the action, or why the action does not fit.
    /// That process audits the answer; an error here is the caller's to audit.
    async fn relay_control(
        &self,
        actor: &Actor,
        id: Uuid,
        action: ControlAction,
        step: Option<&str>,
    ) -> Result<Relayed, CoreError> {
        // The engine reads the step of an acknowledgement only; one that is no block id
        // matches no step (and PostgreSQL could not even store it, were it to hold NUL).
        let step = step.filter(|_| action == ControlAction::Acknowledge);
        if let Some(step) = step.filter(|step| !runbook_domain::validation::is_block_id(step)) {
            return Err(CoreError::InvalidState(format!(
                "`{}` is not a block id, so the execution does not wait there; nothing was \
                 acknowledged",
                step.escape_debug()
            )));
        }
        let request = ControlRequest {
            id: Uuid::new_v4(),
            execution_id: id,
            action,
            block_id: step.map(str::to_owned),
            requested_by: actor.name.clone(),
            request_id: actor.request_id.clone(),
            requested_at: now(),
        };
        // Not taken within the patience, it is withdrawn below; should this process be
        // gone by then, it expires, so a process that comes back later never applies it.
        self.store.request_control(&request, RELAY_PATIENCE).await?;
        // Whatever ends the wait before an answer (a store error, the caller going away)
        // withdraws the request, so it is not applied after the caller heard it failed.
        let mut pending = PendingRequest {
            store: Some(self.store.clone()),
            id: request.id,
        };
        let start = tokio::time::Instant::now();
        let mut next_check = start + RELAY_END_CHECK;
        // Once a withdrawal finds the request taken, it stays taken: no more tries
        // (each a write, which on SQLite waits for the database's one write lock).
        let mut taken = false;
        let outcome = loop {
            tokio::time::sleep(RELAY_ANSWER_POLL).await;
            if let Some(outcome) = self.store.control_outcome(request.id).await? {
                break outcome;
            }
            // A run that ended meanwhile (here a moment ago, or there) takes no requests.
            if !taken && tokio::time::Instant::now() >= next_check {
                next_check += RELAY_END_CHECK;
                let status = self.load_execution(id).await?.status;
                if status.is_finished() {
                    if self.store.withdraw_control(request.id).await? {
                        pending.store = None;
                        return Err(CoreError::InvalidState(format!(
                            "the execution is {status}; only a live run can be controlled"
                        )));
                    }
                    taken = true;
                }
            }
            let waited = start.elapsed();
            if !taken && waited >= RELAY_PATIENCE {
                if !self.store.withdraw_control(request.id).await? {
                    taken = true;
                    continue;
                }
                pending.store = None;
                return Err(CoreError::RunnerUnavailable(format!(
                    "the process that executes this run did not take the request within {} s, \
                     and it was withdrawn: that process may be suspended, cut off from the \
                     database or gone (then the run counts as interrupted once its heartbeat \
                     lapses); try again",
                    RELAY_PATIENCE.as_secs()
                )));
            }
            if waited >= 2 * RELAY_PATIENCE {
                // Taken, so maybe applied, but never answered: the run's state tells.
                pending.store = None;
                return Ok(Relayed::Unanswered(CoreError::RunnerUnavailable(format!(
                    "the process that executes this run took the request but did not answer \
                     within {} s; reload the run to see whether it was applied",
                    (2 * RELAY_PATIENCE).as_secs()
                ))));
            }
        };
        pending.store = None;
        if let Err(error) = self.store.forget_control(request.id).await {
            tracing::warn!(%error, "could not delete an answered control request");
        }
        Ok(Relayed::Answered(outcome))
    }

    async fn load_execution(&self, id: Uuid) -> Result<Execution, CoreError> {
        // Live state first: a run leaves the engine only after storing its final state, so
        // once the live state is gone, the store read that follows has the final one.
        let live = self.live(id);
        let mut execution = self
            .store
            .get_execution(id)
            .await?
            .ok_or(CoreError::NotFound { what: "execution" })?;
        overlay(&mut execution, live);
        Ok(execution)
    }

    /// True when this process is executing the run (so its events stream from here).
    pub fn is_live_here(&self, id: Uuid) -> bool {
        self.engine.live_status(id).is_some()
    }

    fn overlay_live_status(&self, execution: &mut Execution) {
        overlay(execution, self.live(execution.id));
    }

    /// What the engine knows of a run it executes, ahead of storage.
    fn live(&self, id: Uuid) -> Live {
        Live {
            status: self.engine.live_status(id),
            stop: self.engine.stop_request(id),
        }
    }
}

/// Ids of the blocks inside conditional branches `execution` did not take (nested
/// ones included), as its conditionals' recorded branches say.
fn untaken_blocks<'a>(
    runbook: &'a Runbook,
    execution: &Execution,
) -> std::collections::HashSet<&'a str> {
    use runbook_domain::{Block, Branch};
    fn all<'a>(blocks: &'a [Block], out: &mut std::collections::HashSet<&'a str>) {
        for block in blocks {
            out.insert(block.id());
            if let Block::Conditional(conditional) = block {
                all(&conditional.then, out);
                all(&conditional.otherwise, out);
            }
        }
    }
    fn walk<'a>(
        blocks: &'a [Block],
        branches: &std::collections::HashMap<&str, Branch>,
        out: &mut std::collections::HashSet<&'a str>,
    ) {
        for block in blocks {
            if let Block::Conditional(conditional) = block {
                match branches.get(conditional.id.as_str()) {
                    Some(Branch::Then) => {
                        all(&conditional.otherwise, out);
                        walk(&conditional.then, branches, out);
                    }
                    Some(Branch::Else) => {
                        all(&conditional.then, out);
                        walk(&conditional.otherwise, branches, out);
                    }
                    // Never decided: the run did not get that far.
                    None => {}
                }
            }
        }
    }
    let branches = execution
        .steps
        .iter()
        .filter_map(|step| Some((step.block_id.as_str(), step.detail.branch?)))
        .collect();
    let mut out = std::collections::HashSet::new();
    walk(&runbook.draft.blocks, &branches, &mut out);
    out
}

/// Now, to the microsecond: the precision both databases keep.
pub(crate) fn now() -> DateTime<Utc> {
    use chrono::SubsecRound;
    Utc::now().trunc_subsecs(6)
}

/// Marks runs whose process stopped as interrupted and ends what they left running.
async fn interrupt_orphans(
    store: &dyn Store,
    engine: &Engine,
    timeout: Duration,
) -> Result<usize, CoreError> {
    let now = now();
    let stale_before = now - chrono::Duration::from_std(timeout).unwrap_or(chrono::Duration::MAX);
    let audit = |id| crate::audit::finish_event("system", id, ExecutionStatus::Interrupted);
    let interrupted = store
        .interrupt_unfinished(now, stale_before, Some(&audit))
        .await?;
    if !interrupted.is_empty() {
        let killed = engine.reap(&interrupted);
        if killed > 0 {
            give_leftovers_their_grace(store, engine, &interrupted).await;
        }
        tracing::warn!(
            interrupted = interrupted.len(),
            killed,
            "runs whose process stopped are now interrupted"
        );
    }
    Ok(interrupted.len())
}

/// Ends processes on this machine that belong to interrupted runs (left by an app
/// that crashed while another instance marked its runs interrupted, say). Processes
/// of runs that ended normally (daemons a step started on purpose) are left alone.
async fn reap_leftovers(store: &dyn Store, engine: &Engine) {
    let mut finished = Vec::new();
    for id in engine.foreign_runs() {
        match store.get_execution(id).await {
            Ok(Some(execution)) if execution.status == ExecutionStatus::Interrupted => {
                finished.push(id)
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "could not check a run's leftover processes"),
        }
    }
    if !finished.is_empty() {
        let killed = engine.reap(&finished);
        if killed > 0 {
            give_leftovers_their_grace(store, engine, &finished).await;
        }
        tracing::warn!(killed, "ended processes left from finished runs");
    }
}

/// Gives what the runs `ids` left, being reaped already (SIGTERM sent, the default grace
/// counting, so a retry finds them reaped), the grace period of the command each run
/// was running when its process stopped, read from storage (the default stays where
/// it cannot be read).
async fn give_leftovers_their_grace(store: &dyn Store, engine: &Engine, ids: &[Uuid]) {
    for &id in ids {
        let execution = match store.get_execution(id).await {
            Ok(execution) => execution,
            Err(error) => {
                tracing::warn!(%error, "could not read an interrupted run's step; its leftovers get the default grace period");
                None
            }
        };
        let runbook = match &execution {
            Some(execution) => store
                .get_version(execution.runbook_id, execution.runbook_version)
                .await
                .unwrap_or_else(|error| {
                    tracing::warn!(%error, "could not read an interrupted run's runbook; its leftovers get the default grace period");
                    None
                }),
            None => None,
        };
        engine.give_leftovers(
            id,
            engine.leftover_grace(execution.as_ref(), runbook.as_ref()),
        );
    }
}

/// A control request left in the store and not yet answered; dropped while `store` is
/// set, it is withdrawn (on a task of its own, as a drop cannot wait), unless taken.
struct PendingRequest {
    store: Option<Arc<dyn Store>>,
    id: Uuid,
}

impl Drop for PendingRequest {
    fn drop(&mut self) {
        let (Some(store), Ok(runtime)) = (self.store.take(), tokio::runtime::Handle::try_current())
        else {
            return;
        };
        let id = self.id;
        runtime.spawn(async move {
            if let Err(error) = store.withdraw_control(id).await {
                tracing::warn!(%error, "could not withdraw an abandoned control request");
            }
        });
    }
}

/// How a relayed control request ended, short of an error before anyone took it.
enum Relayed {
    /// The executing process answered (and audited the answer).
    Answered(ControlOutcome),
    /// It took the request and did not answer in time: maybe applied, maybe not.
    Unanswered(CoreError),
}

/// Applies the control requests other processes leave in the store for the runs this
/// one executes, and answers them.
async fn answer_controls(store: Arc<dyn Store>, engine: Engine) {
    let mut failing = false;
    loop {
        let live = engine.live_ids();
        if live.is_empty() {
            tokio::time::sleep(RELAY_TAKE_POLL).await;
            continue;
        }
        let requests = match store.take_control_requests(&live, now()).await {
            Ok(requests) => {
                failing = false;
                requests
            }
            Err(error) => {
                // Once per outage, not several times a second.
                if !failing {
                    tracing::warn!(%error, "could not read control requests for live runs");
                }
                failing = true;
                Vec::new()
            }
        };
        for request in requests {
            let outcome = match engine.control_at(
                request.execution_id,
                request.action,
                request.block_id.as_deref(),
                &request.requested_by,
            ) {
                Ok(status) => ControlOutcome::Applied { status },
                Err(ControlError::NotRunning) => ControlOutcome::Refused {
                    message: "the execution has ended; only a live run can be controlled"
                        .to_string(),
                },
                Err(error) => ControlOutcome::Refused {
                    message: error.to_string(),
                },
            };
            match &outcome {
                ControlOutcome::Applied { status } => tracing::info!(
                    execution = %request.execution_id,
                    action = request.action.as_str(),
                    by = %request.requested_by,
                    %status,
                    "applied a control request from another process"
                ),
                ControlOutcome::Refused { message } => tracing::info!(
                    execution = %request.execution_id,
                    action = request.action.as_str(),
                    by = %request.requested_by,
                    reason = %message,
                    "refused a control request from another process"
                ),
            }
            // On the trail as the requester's, whether or not they are there to read it.
            let audit = crate::audit::relayed_control_event(&request, &outcome);
            let answered = match store
                .answer_control(request.id, &outcome, now(), Some(&audit))
                .await
            {
                Ok(()) => Ok(()),
                // The action is applied: the answer and its record go on separately
                // rather than be lost together.
                Err(error) => {
                    tracing::warn!(%error, "could not answer a control request with its audit record; trying each alone");
                    if let Err(error) = store.append_audit(audit).await {
                        tracing::error!(%error, action = request.action.audit_name(), "could not append to the audit trail");
                    }
                    store
                        .answer_control(request.id, &outcome, now(), None)
                        .await
                }
            };
            if let Err(error) = answered {
                tracing::warn!(%error, "could not answer a control request");
            }
        }
        store.control_requested(RELAY_TAKE_POLL).await;
    }
}

/// Renews the runs this process executes and sweeps up orphans, a few times per timeout.
async fn upkeep(store: Arc<dyn Store>, engine: Engine, timeout: Duration) {
    let mut tick = tokio::time::interval(timeout / 3);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let live = engine.live_ids();
        match store.heartbeat(&live, now()).await {
            // A live run storage no longer has as unfinished was marked interrupted by
            // another instance while this one was silent (suspended, cut off): it may
            // have been retried there already, so it must not go on here.
            Ok(renewed) => {
                let ended: Vec<Uuid> = live
                    .into_iter()
                    .filter(|id| !renewed.contains(id))
                    .collect();
                engine.fence(&ended);
            }
            Err(error) => tracing::error!(%error, "could not renew the heartbeat of live runs"),
        }
        let _ = interrupt_orphans(store.as_ref(), &engine, timeout).await;
        // Requests whose requester gave up and went away without withdrawing them.
        let abandoned = now() - chrono::Duration::hours(1);
        if let Err(error) = store.purge_control_requests(abandoned).await {
            tracing::warn!(%error, "could not purge old control requests");
        }
    }
}

/// A run's state as the process executing it knows it, ahead of what is stored.
struct Live {
    status: Option<ExecutionStatus>,
    /// A stop accepted, which may not be stored yet.
    stop: Option<StopRequest>,
}

/// A control action changes the live state at once; the stored one follows a moment
/// later. A finished state shows only once it is stored, with everything before it; a
/// stop request stored first stays.
fn overlay(execution: &mut Execution, live: Live) {
    if execution.status.is_finished() {
        return;
    }
    if let Some(status) = live.status.filter(|status| !status.is_finished()) {
        execution.status = status;
    }
    if execution.stop_requested.is_none() {
        execution.stop_requested = live.stop;
    }
}

pub(crate) fn paging(limit: Option<i64>, offset: Option<i64>) -> Result<(i64, i64), CoreError> {
    let limit = limit.unwrap_or(DEFAULT_LIMIT);
    let offset = offset.unwrap_or(0);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(CoreError::bad_request(
            "invalid_query",
            format!("limit must be from 1 to {MAX_LIMIT}"),
        ));
    }
    if offset < 0 {
        return Err(CoreError::bad_request(
            "invalid_query",
            "offset must not be negative",
        ));
    }
    Ok((limit, offset))
}

/// Checks the given parameters against the runbook's declarations and fills defaults.
fn resolve_params(
    runbook: &Runbook,
    mut given: serde_json::Map<String, serde_json::Value>,
) -> Result<serde_json::Map<String, serde_json::Value>, CoreError> {
    if let Some(unknown) = given
        .keys()
        .find(|name| !runbook.draft.params.iter().any(|p| &p.name == *name))
    {
        return Err(CoreError::unprocessable(
            "unknown_param",
            format!("the runbook has no parameter `{unknown}`"),
        ));
    }
    let mut resolved = serde_json::Map::new();
    for param in &runbook.draft.params {
        let value = given
            .remove(&param.name)
            .filter(|v| !v.is_null())
            .or_else(|| param.default.clone().filter(|v| !v.is_null()));
        let Some(value) = value else {
            if param.required {
                return Err(CoreError::unprocessable(
                    "missing_param",
                    format!("parameter `{}` is required", param.name),
                ));
            }
            continue;
        };
        // Text from a form or a command line converts to the declared type.
        let value = match (param.param_type, &value) {
            (ParamType::Number, serde_json::Value::String(text)) => text
                .trim()
                .parse::<serde_json::Number>()
                .map(serde_json::Value::Number)
                .unwrap_or(value),
            (ParamType::Boolean, serde_json::Value::String(text)) => match text.trim() {
                "true" => serde_json::Value::Bool(true),
                "false" => serde_json::Value::Bool(false),
                _ => value,
            },
            _ => value,
        };
        // A whole number written `5.0` or `1e3` is the integer it names: as a float it
        // would render `1000.0` into a script and be a `double` to a condition.
        let value = match value {
            serde_json::Value::Number(number) => serde_json::Value::Number(whole(number)),
            other => other,
        };
        let fits = match param.param_type {
            ParamType::String => value.as_str().is_some_and(|text| !text.contains('\0')),
            ParamType::Number => value.is_number(),
            ParamType::Boolean => value.is_boolean(),
        };
        if !fits {
            let kind = match param.param_type {
                ParamType::String => "string",
                ParamType::Number => "number",
                ParamType::Boolean => "boolean (true or false)",
            };
            return Err(CoreError::unprocessable(
                "invalid_param",
                format!("parameter `{}` must be a {kind}", param.name),
            ));
        }
        if value
            .as_str()
            .is_some_and(|text| text.len() > MAX_PARAM_BYTES)
        {
            return Err(CoreError::unprocessable(
                "param_too_long",
                format!(
                    "parameter `{}` is longer than {MAX_PARAM_BYTES} bytes",
                    param.name
                ),
            ));
        }
        resolved.insert(param.name.clone(), value);
    }
    Ok(resolved)
}

/// `number` as an integer when it is a float with a whole value in `i64`'s range.
fn whole(number: serde_json::Number) -> serde_json::Number {
    match number.as_f64() {
        // -2^63 and 2^63 are exact as floats; every whole float from the one and below
        // the other fits.
        Some(float)
            if number.is_f64()
                && float.fract() == 0.0
                && (i64::MIN as f64..-(i64::MIN as f64)).contains(&float) =>
        {
            serde_json::Number::from(float as i64)
        }
        _ => number,
    }
}
