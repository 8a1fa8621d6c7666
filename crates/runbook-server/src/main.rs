//! `runbook-studio`: the headless binary. `serve` runs the REST server; `run`, `keys`
//! and `migrate` work on the same database from the command line.

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use runbook_core::{Actor, Config, ExecutionEvent, KeyRequest, KeySetting, Service};
use runbook_domain::{ControlAction, ExecutionStatus, Role};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use tokio::sync::watch;

/// Writes a line to stderr. A stderr that is gone (`2>&1 | head`, a hung-up terminal) is
/// no reason to panic, as `eprintln!` would: the line is dropped.
macro_rules! note {
    ($($arg:tt)*) => {{
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// Writes a line of the command's result to stdout. A stdout that is gone (`| head`, a
/// full disk) makes the command fail (exit 2) with a message, not panic as `println!`
/// would. Only where a `?` may return an `anyhow::Result`.
macro_rules! say {
    ($($arg:tt)*) => {
        writeln!(std::io::stdout(), $($arg)*).context("cannot write to stdout")?
    };
}

#[derive(Parser)]
#[command(
    name = "runbook-studio",
    version,
    about = "Author, version and run operational runbooks"
)]
struct Cli {
    /// Directory for the SQLite database and other local state.
    #[arg(long, global = true, env = "RUNBOOK_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// `sqlite://…` or `postgres://…`; unset means SQLite in the data directory.
    #[arg(long, global = true, env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Seconds a run's process may stay silent before its run counts as interrupted
    /// (when the process crashed); shorter means faster recovery, longer tolerates
    /// slower databases.
    #[arg(long, global = true, env = "RUNBOOK_HEARTBEAT_TIMEOUT", default_value_t = 15,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    heartbeat_timeout: u64,
    /// Seconds a stopped (or timed-out) command's processes get between SIGTERM and
    /// SIGKILL, unless its block sets `stop_grace_secs`.
    #[arg(long, global = true, env = "RUNBOOK_STOP_GRACE", default_value_t = 5,
          value_parser = clap::value_parser!(u64).range(0..=runbook_domain::validation::MAX_STOP_GRACE_SECS))]
    stop_grace: u64,
    /// File holding the base64 master key that encrypts credentials (created 0600 when
    /// missing). `RUNBOOK_MASTER_KEY` (base64) takes precedence; with neither, the key
    /// lives in the system keychain, or in `master.key` in the data directory.
    #[arg(long, global = true, env = "RUNBOOK_MASTER_KEY_FILE")]
    master_key_file: Option<PathBuf>,
    /// Do not use the system keychain for the master key (the variable takes true/false,
    /// 1/0, yes/no or on/off).
    #[arg(long, global = true, env = "RUNBOOK_NO_KEYCHAIN",
          value_parser = clap::builder::BoolishValueParser::new())]
    no_keychain: bool,
    /// Log filter, e.g. `info` or `runbook_server=debug`.
    #[arg(long, global = true, env = "RUNBOOK_LOG", default_value = "info",
          value_parser = log_filter)]
    log_level: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the REST API (and the web UI) until SIGTERM or Ctrl+C.
    Serve {
        #[arg(long, env = "RUNBOOK_ADDR", default_value = "127.0.0.1:8080")]
        addr: String,
        /// Directory of the built web UI, served at `/`.
        #[arg(long, env = "RUNBOOK_UI_DIR", default_value = "src-ui/dist")]
        ui_dir: PathBuf,
    },
    /// Run a runbook here and stream its console; exits 0 only if the run succeeds.
    Run {
        /// Runbook id or exact name.
        runbook: String,
        /// A parameter as NAME=VALUE (repeatable).
        #[arg(long = "param", value_name = "NAME=VALUE")]
        params: Vec<String>,
        /// Acknowledge confirmation steps without asking.
        #[arg(long)]
        yes: bool,
    },
    /// Run a failed, stopped or interrupted execution again from the step that did not
    /// succeed (earlier results are reused) and stream its console.
    Retry {
        /// The execution to retry.
        execution: String,
        /// Acknowledge confirmation steps without asking.
        #[arg(long)]
        yes: bool,
    },
    /// Pause, resume, stop, kill or acknowledge a run, wherever it executes on this
    /// database (the desktop app, a server, another terminal's `run`); prints its state
    /// after.
    Control {
        /// The execution to control.
        execution: String,
        /// pause, resume, stop, kill (a stop without the grace period, also while a stop
        /// waits it out) or acknowledge.
        action: ControlAction,
        /// The step an acknowledgement answers: refused unless the run waits there.
        #[arg(long, value_name = "BLOCK_ID")]
        step: Option<String>,
    },
    /// Print a run's whole console (secrets masked) as plain text, or with `--raw` as
    /// the terminal got it (colours, cursor moves); a live run's up to where it has got,
    /// or with `--follow` on until it ends, wherever it executes.
    Console {
        /// The execution whose console to print.
        execution: String,
        /// Keep the escape sequences (for `less -R` or a terminal).
        #[arg(long)]
        raw: bool,
        /// Go on printing what the run prints until it ends, as `run` does (in colour on
        /// a terminal), and exit as `run` does: 0 only if it succeeded. Ctrl+C leaves the
        /// run alone.
        #[arg(long, short)]
        follow: bool,
    },
    /// Manage API keys and the master key.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Manage users (who own API keys and hold a role).
    Users {
        #[command(subcommand)]
        command: UsersCommand,
    },
    /// Inspect the audit trail.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Apply database migrations and exit.
    Migrate,
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create a key; its token is printed once, alone on the last line.
    Create {
        #[arg(long)]
        name: String,
        /// The key's role (viewer, operator, editor, admin); default viewer.
        #[arg(long, conflicts_with = "user")]
        role: Option<Role>,
        /// Let the key act for this user (name or id), with the user's role.
        #[arg(long)]
        user: Option<String>,
        /// Expire the key after this many days.
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=3650))]
        expires_in_days: Option<u32>,
    },
    /// List keys (never their tokens).
    List,
    /// Revoke a key by id.
    Revoke { id: String },
    /// Re-encrypt every credential under a new master key, in one transaction, and
    /// keep the new key where the current one is kept.
    RotateMaster {
        /// Where to write the new key when the current one comes from
        /// RUNBOOK_MASTER_KEY (the file is created 0600; set the variable from it).
        #[arg(long)]
        new_key_file: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum UsersCommand {
    /// Add a user.
    Create {
        #[arg(long)]
        name: String,
        #[arg(long)]
        role: Role,
    },
    /// List users.
    List,
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check the hash chain; exits 1 and names the first broken record if it was tampered with.
    Verify,
}

/// A log filter `tracing` can read: a typo is refused, not silently read as `info`.
fn log_filter(text: &str) -> Result<String, String> {
    tracing_subscriber::EnvFilter::try_new(text)
        .map(|_| text.to_string())
        .map_err(|error| error.to_string())
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let database_url = cli.database_url.clone();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&cli.log_level))
        .with_writer(std::io::stderr)
        // Logs in colour on a terminal only: plain in a file, a pipe or the journal.
        .with_ansi(anstream::AutoStream::choice(&std::io::stderr()) != anstream::ColorChoice::Never)
        .init();
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    match runtime.block_on(dispatch(cli)) {
        Ok(code) => code,
        Err(error) => {
            let message = format!("{error:#}");
            note!(
                "error: {}",
                without_url_secrets(&message, database_url.as_deref())
            );
            std::process::ExitCode::from(2)
        }
    }
}

/// `message` without the passwords `database_url` holds, as written or percent-decoded:
/// the core hides the user info's password of a well-formed URL, but not a `password`
/// query parameter or the password of a URL it cannot read (`postgres//u:pw@host`).
fn without_url_secrets(message: &str, database_url: Option<&str>) -> String {
    let mut message = message.to_string();
    for secret in database_url
        .map(runbook_core::url_secrets)
        .unwrap_or_default()
    {
        message = message.replace(&secret, "***");
    }
    message
}

async fn dispatch(cli: Cli) -> anyhow::Result<std::process::ExitCode> {
    let data_dir = cli.data_dir.unwrap_or_else(Config::default_data_dir);
    let master_key = match std::env::var("RUNBOOK_MASTER_KEY") {
        Ok(text) if !text.trim().is_empty() => KeySetting::Environment(text.into()),
        _ => match cli.master_key_file {
            Some(path) => KeySetting::File(path),
            None => KeySetting::Platform {
                data_dir: data_dir.clone(),
                keychain: !cli.no_keychain,
            },
        },
    };
    let mut config = Config {
        database_url: cli.database_url,
        heartbeat_timeout: std::time::Duration::from_secs(cli.heartbeat_timeout),
        master_key,
        ..Config::from_data_dir(data_dir)
    };
    config.engine.stop_grace = std::time::Duration::from_secs(cli.stop_grace);
    let service = Service::open(config).await.map_err(|e| match e {
        runbook_core::CoreError::Internal(detail) => anyhow::anyhow!(detail),
        other => anyhow::anyhow!(other),
    })?;
    let outcome = execute_command(service.clone(), cli.command).await;
    // What a crashed run left and this process set about ending gets its grace period
    // and SIGKILL before the process exits.
    service.finish_reaping().await;
    outcome
}

/// Carries out `command` on the opened service.
async fn execute_command(
    service: Service,
    command: Command,
) -> anyhow::Result<std::process::ExitCode> {
    match command {
        Command::Serve { addr, ui_dir } => serve(service, &addr, ui_dir).await?,
        Command::Run {
            runbook,
            params,
            yes,
        } => return run(service, &runbook, &params, yes).await,
        Command::Retry { execution, yes } => {
            let actor = Actor::local_admin();
            let id = execution
                .parse()
                .with_context(|| format!("`{execution}` is not an execution id"))?;
            // Caught before the run starts, so Ctrl+C at any moment stops it.
            let signals = OperatorSignals::install()?;
            // Subscribed before the run starts, so no line of it is missed.
            let events = service.subscribe();
            let retry = service.retry(&actor, id).await?;
            note!(
                "retrying run {id} from step {} as run {}",
                retry.retry_from.as_deref().unwrap_or("?"),
                retry.id
            );
            return follow(&service, &actor, signals, events, retry.id, yes).await;
        }
        Command::Control {
            execution,
            action,
            step,
        } => {
            let id = execution
                .parse()
                .with_context(|| format!("`{execution}` is not an execution id"))?;
            let execution = service
                .control_step(&Actor::local_admin(), id, action, step.as_deref())
                .await?;
            match &execution.stop_requested {
                Some(stop) if !execution.status.is_finished() => say!(
                    "Run {id} is stopping (stop requested by {}); it ends once its processes are gone.",
                    stop.by
                ),
                _ => say!("Run {id} is {}.", execution.status),
            }
        }
        Command::Console {
            execution,
            raw,
            follow,
        } => {
            let id = execution
                .parse()
                .with_context(|| format!("`{execution}` is not an execution id"))?;
            if follow {
                return follow_console(&service, id, raw).await;
            }
            let escapes = if raw {
                runbook_core::Escapes::Keep
            } else {
                runbook_core::Escapes::Strip
            };
            let mut log = service
                .console_log(&Actor::local_admin(), id, escapes)
                .await?;
            let mut stdout = std::io::stdout().lock();
            let mut written = Ok(());
            while let Some(chunk) = log.next_chunk().await? {
                written = stdout.write_all(&chunk);
                if written.is_err() {
                    break;
                }
            }
            match written.and_then(|()| stdout.flush()) {
                // A reader that has read enough (`| head`) is no failure.
                Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => {}
                written => written.context("cannot write to stdout")?,
            }
        }
        Command::Keys { command } => return keys(&service, command).await,
        Command::Users { command } => users(&service, command).await?,
        Command::Audit {
            command: AuditCommand::Verify,
        } => {
            let report = service.verify_audit(&Actor::system()).await?;
            return Ok(match report.broken {
                None => {
                    say!(
                        "The audit trail is intact: {} records checked.",
                        report.checked
                    );
                    std::process::ExitCode::SUCCESS
                }
                Some(broken) => {
                    say!(
                        "The audit trail is BROKEN at record #{}: {}",
                        broken.seq,
                        broken.reason
                    );
                    std::process::ExitCode::from(1)
                }
            });
        }
        Command::Migrate => say!("The database is migrated and up to date."),
    }
    Ok(std::process::ExitCode::SUCCESS)
}

async fn keys(service: &Service, command: KeysCommand) -> anyhow::Result<std::process::ExitCode> {
    let actor = Actor::system();
    match command {
        KeysCommand::Create {
            name,
            role,
            user,
            expires_in_days,
        } => {
            let user_id = match user {
                Some(user) => Some(find_user(service, &user).await?),
                None => None,
            };
            let request = KeyRequest {
                name,
                role: role.or(user_id.is_none().then_some(Role::Viewer)),
                user_id,
                expires_at: expires_in_days
                    .map(|days| chrono::Utc::now() + chrono::Duration::days(days.into())),
            };
            let key = service.issue_key(&actor, request).await?;
            writeln!(
                std::io::stdout(),
                "Created API key `{}` ({}, id {}).\nStore this token now; it is not shown again:\n{}",
                key.key.name,
                key.key.role,
                key.key.id,
                key.token
            )
            .with_context(|| {
                format!(
                    "key {} was created but its token could not be written; revoke it",
                    key.key.id
                )
            })?;
        }
        KeysCommand::List => {
            for key in service.list_api_keys(&actor).await? {
                let state = match (key.revoked_at, key.expires_at) {
                    (Some(at), _) => format!("revoked {}", at.format("%Y-%m-%d %H:%M")),
                    (None, Some(at)) => format!("expires {}", at.format("%Y-%m-%d %H:%M")),
                    (None, None) => "active".to_string(),
                };
                say!(
                    "{}  {:<8}  {:<24}  {}{}",
                    key.id,
                    key.role,
                    key.name,
                    state,
                    key.user_name
                        .map(|u| format!("  (user {u})"))
                        .unwrap_or_default()
                );
            }
        }
        KeysCommand::Revoke { id } => {
            let id = id
                .parse()
                .with_context(|| format!("`{id}` is not a key id"))?;
            service.revoke_api_key(&actor, id).await?;
            say!("Revoked key {id}.");
        }
        KeysCommand::RotateMaster { new_key_file } => {
            let report = service
                .rotate_master_key(&actor, new_key_file.as_deref())
                .await?;
            say!(
                "Re-encrypted {} credentials under a new master key, now kept in {}.",
                report.credentials,
                report.key_location
            );
            if new_key_file.is_some() {
                say!("Set RUNBOOK_MASTER_KEY from that file before the next start.");
            }
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}

async fn users(service: &Service, command: UsersCommand) -> anyhow::Result<()> {
    let actor = Actor::system();
    match command {
        UsersCommand::Create { name, role } => {
            let user = service
                .create_user(&actor, serde_json::json!({"name": name, "role": role}))
                .await?;
            say!(
                "Created user `{}` ({}, id {}).",
                user.name,
                user.role,
                user.id
            );
        }
        UsersCommand::List => {
            for user in service.list_users(&actor).await? {
                let state = if user.disabled_at.is_some() {
                    "disabled"
                } else {
                    "active"
                };
                say!(
                    "{}  {:<8}  {:<24}  {}",
                    user.id,
                    user.role,
                    user.name,
                    state
                );
            }
        }
    }
    Ok(())
}

/// A user by id or exact name.
async fn find_user(service: &Service, user: &str) -> anyhow::Result<uuid::Uuid> {
    let users = service.list_users(&Actor::system()).await?;
    users
        .iter()
        .find(|u| u.id.to_string() == user || u.name == user)
        .map(|u| u.id)
        .with_context(|| format!("no user is named `{user}`"))
}

async fn serve(service: Service, addr: &str, ui_dir: PathBuf) -> anyhow::Result<()> {
    if !ui_dir.join("index.html").is_file() {
        // The default is relative to the working directory: say why `/` answers 404.
        tracing::warn!(
            "no built web UI in {} (no index.html): only the API is served; build it with \
             `make ui` and point --ui-dir (RUNBOOK_UI_DIR) at its dist directory",
            ui_dir.display()
        );
    }
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let state = runbook_server::AppState::new(service.clone(), stop_rx.clone());
    let app = runbook_server::app(state, Some(ui_dir))
        .layer(tower_http::trace::TraceLayer::new_for_http());
    tracing::info!("listening on http://{}", listener.local_addr()?);
    // Caught from here on: a signal that comes while the server starts is not lost.
    let mut shutdown = ShutdownSignals::install()?;
    let stopping = async move {
        shutdown.recv().await;
        tracing::info!(
            "shutting down: stopping live runs (a second signal kills their processes at once)"
        );
        tokio::select! {
            () = service.shutdown() => {}
            () = shutdown.recv() => {
                tracing::warn!("asked again: killing the live runs' processes now");
                service.kill_now();
                service.shutdown().await;
            }
        }
        let _ = stop_tx.send(true);
    };
    let server = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(stopping);
    // Requests still being answered get a while to end; one a client stopped reading
    // (a console download left paused) would otherwise hold the server up for good.
    let mut stopped = stop_rx;
    let drained = async move {
        if stopped.wait_for(|stop| *stop).await.is_err() {
            std::future::pending::<()>().await;
        }
        tokio::time::sleep(SHUTDOWN_DRAIN).await;
    };
    tokio::select! {
        served = server => served?,
        () = drained => tracing::warn!(
            "requests still open {} s into the shutdown; closing their connections",
            SHUTDOWN_DRAIN.as_secs()
        ),
    }
    Ok(())
}

/// How long a server shutting down waits for the requests it is still answering.
const SHUTDOWN_DRAIN: std::time::Duration = std::time::Duration::from_secs(10);

/// Ctrl+C (SIGINT), SIGTERM and SIGHUP (the terminal, an SSH session say, went away),
/// caught from the moment [`ShutdownSignals::install`] returns: their default action
/// (ending the process at once, leaving runs `running` and their processes orphaned) no
/// longer applies, however late the task that waits for them first runs.
struct ShutdownSignals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
    hangup: tokio::signal::unix::Signal,
}

impl ShutdownSignals {
    fn install() -> std::io::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(ShutdownSignals {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
            hangup: signal(SignalKind::hangup())?,
        })
    }

    async fn recv(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
            _ = self.hangup.recv() => {}
        }
    }
}

async fn run(
    service: Service,
    runbook: &str,
    params: &[String],
    yes: bool,
) -> anyhow::Result<std::process::ExitCode> {
    let actor = Actor::local_admin();
    let id = match service.find_runbook(&actor, runbook).await {
        Ok(found) => found.id,
        Err(runbook_core::CoreError::NotFound { .. }) => bail!("no runbook is named `{runbook}`"),
        Err(other) => return Err(other.into()),
    };
    let mut values = serde_json::Map::new();
    for param in params {
        let Some((name, value)) = param.split_once('=') else {
            bail!("--param takes NAME=VALUE, got `{param}`");
        };
        // The core converts text to each parameter's declared type.
        values.insert(
            name.to_string(),
            serde_json::Value::String(value.to_string()),
        );
    }
    // Caught before the run starts, so Ctrl+C at any moment stops it.
    let signals = OperatorSignals::install()?;
    // Subscribed before the run starts, so no line of it is missed.
    let events = service.subscribe();
    let execution = service
        .execute(&actor, id, serde_json::json!({ "params": values }))
        .await?;
    follow(&service, &actor, signals, events, execution.id, yes).await
}

/// Streams a run's console to the terminal until it ends (in colour on a terminal only):
/// Ctrl+C stops it, Ctrl+Z pauses and resumes it, confirmations are asked for (or given
/// with `--yes`).
async fn follow(
    service: &Service,
    actor: &Actor,
    signals: OperatorSignals,
    events: tokio::sync::broadcast::Receiver<ExecutionEvent>,
    execution_id: uuid::Uuid,
    yes: bool,
) -> anyhow::Result<std::process::ExitCode> {
    let followed = follow_events(service, actor, signals, events, execution_id, yes).await;
    if followed.is_err() {
        // The CLI is about to exit: the run must not be left `running` with its processes
        // orphaned. It is stopped (its whole process tree) and recorded as such first.
        service.shutdown().await;
    }
    followed.with_context(|| format!("run {execution_id} was stopped"))
}

async fn follow_events(
    service: &Service,
    actor: &Actor,
    signals: OperatorSignals,
    mut events: tokio::sync::broadcast::Receiver<ExecutionEvent>,
    execution_id: uuid::Uuid,
    yes: bool,
) -> anyhow::Result<std::process::ExitCode> {
    let actor = actor.clone();
    // Colours reach a terminal; a pipe or a file gets plain text (NO_COLOR and
    // CLICOLOR_FORCE are honoured). Escapes split across chunks are stripped whole.
    let mut stdout = Terminal::new(anstream::AutoStream::auto(std::io::stdout()));
    // Ctrl+C and Ctrl+Z act at once, whatever this loop is busy with (writing a long
    // backlog to a slow terminal, asking for a confirmation); they were caught before
    // the run started, so one pressed before this task first runs counts too.
    let controls = tokio::spawn(operator_controls(
        signals,
        service.clone(),
        actor.clone(),
        execution_id,
    ));
    let _controls = AbortOnDrop(controls);
    // Console bytes written so far. Events skipped while the terminal was slower than the
    // run leave a gap: it is filled from the stored console before the next event's text.
    let mut printed: u64 = 0;
    // Lines typed on the terminal, read by a thread once a confirmation is first asked.
    let mut terminal_lines = None;
    // Whether the console was found closed (`| head`) and the run stopped for it.
    let mut stopped_for_closed_console = false;
    loop {
        if let (false, Some(error)) = (stopped_for_closed_console, stdout.lost()) {
            // Nobody reads the console any more: as a program writing to a closed pipe
            // ends, the run stops (its whole process tree) instead of going on unwatched,
            // and is recorded as stopped.
            stopped_for_closed_console = true;
            note!("the console cannot be written ({error}): stopping the run (its whole process tree)…");
            if let Err(error) = service
                .control(&actor, execution_id, ControlAction::Stop)
                .await
            {
                tracing::debug!(%error, "stop");
            }
        }
        let received = events.recv().await;
        let event = match received {
            Ok(event) if event.execution_id() == execution_id => event,
            Ok(_) => continue,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(skipped)) => {
                // The state is read back so no confirmation or end of run is missed; the
                // skipped output is read back from the stored console.
                tracing::debug!(skipped, "console events skipped; reading them back");
                // What is stored comes first, so a confirmation is asked after the output
                // that led up to it.
                printed = print_stored(
                    service,
                    &actor,
                    execution_id,
                    printed,
                    Until::Stored,
                    &mut stdout,
                )
                .await?;
                let current = service.get_execution(&actor, execution_id).await?;
                ExecutionEvent::Status {
                    execution_id,
                    status: current.status,
                }
            }
            Err(_) => bail!("the engine stopped"),
        };
        match event {
            ExecutionEvent::Output { offset, text, .. } => {
                let piece = (offset, text.as_str());
                printed = print_output(service, &actor, execution_id, printed, piece, &mut stdout)
                    .await?;
            }
            ExecutionEvent::Status {
                status: ExecutionStatus::Waiting,
                ..
            } => {
                // The answer is for this step alone: the same wait seen twice (after
                // skipped events) must not confirm the next step unread.
                let Ok(step) = service.waiting_step(&actor, execution_id).await else {
                    // Acknowledged or stopped elsewhere meanwhile: its events tell.
                    continue;
                };
                let answer = if yes {
                    Answer::Yes
                } else {
                    confirm_on_tty(service, &actor, execution_id, &mut terminal_lines).await?
                };
                let action = match answer {
                    Answer::Yes => ControlAction::Acknowledge,
                    Answer::No => ControlAction::Stop,
                    // Stopped with Ctrl+C, or acknowledged elsewhere, while asking.
                    Answer::Moot => continue,
                };
                // The run may have moved on meanwhile (a confirmation given elsewhere, a
                // stop, the same wait seen twice after skipped events): its own events
                // tell what happened next.
                let answered = service
                    .control_step(&actor, execution_id, action, Some(&step.block_id))
                    .await;
                if let Err(error) = answered {
                    tracing::debug!(%error, ?action, "control after the confirmation prompt");
                }
            }
            ExecutionEvent::Status { status, .. } if status.is_finished() => {
                return print_end(service, &actor, execution_id, printed, status, &mut stdout)
                    .await;
            }
            _ => {}
        }
    }
}

/// Ends a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The signals a followed run answers to, caught from the moment they are installed.
struct OperatorSignals {
    shutdown: ShutdownSignals,
    /// Ctrl+Z; none where it cannot be caught (the run then cannot be paused from here).
    suspend: Option<tokio::signal::unix::Signal>,
}

impl OperatorSignals {
    fn install() -> std::io::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(OperatorSignals {
            shutdown: ShutdownSignals::install()?,
            suspend: signal(SignalKind::from_raw(nix::libc::SIGTSTP))
                .inspect_err(|error| tracing::warn!(%error, "Ctrl+Z cannot pause the run"))
                .ok(),
        })
    }
}

/// Ctrl+C (or SIGTERM, or a hang-up) stops the run, its whole process tree; Ctrl+Z
/// pauses it, and resumes it when pressed again.
async fn operator_controls(
    signals: OperatorSignals,
    service: Service,
    actor: Actor,
    execution_id: uuid::Uuid,
) {
    let OperatorSignals {
        mut shutdown,
        mut suspend,
    } = signals;
    let mut stopping = false;
    loop {
        tokio::select! {
            _ = shutdown.recv() => {
                if stopping {
                    note!("killing its processes now…");
                    service.kill_now();
                    continue;
                }
                stopping = true;
                note!("stopping the run (its whole process tree; Ctrl+C again kills it at once)…");
                if let Err(error) = service.control(&actor, execution_id, ControlAction::Stop).await {
                    tracing::debug!(%error, "stop");
                }
            }
            _ = async {
                match suspend.as_mut() {
                    Some(suspend) => suspend.recv().await,
                    None => std::future::pending().await,
                }
            } => {
                let paused = match service.get_execution(&actor, execution_id).await {
                    Ok(current) => current.status == ExecutionStatus::Paused,
                    Err(error) => {
                        note!("\n{error}");
                        continue;
                    }
                };
                let action = if paused { ControlAction::Resume } else { ControlAction::Pause };
                match service.control(&actor, execution_id, action).await {
                    Ok(now) => note!("\nrun {} (Ctrl+Z again to {})", now.status,
                        if now.status == ExecutionStatus::Paused { "resume" } else { "pause" }),
                    Err(error) => note!("\n{error}"),
                }
            }
        }
    }
}

/// How far [`print_stored`] reads.
#[derive(Clone, Copy)]
enum Until {
    /// Up to this offset, waiting a little for bytes a live run has not stored yet.
    Offset(u64),
    /// Up to what is stored now.
    Stored,
    /// To the end: the run has ended, so all of it is stored.
    End,
}

/// Writes the console text `text` found at `offset` (an output event's) after the
/// `printed` bytes written so far: a gap before it is filled from the stored console,
/// and what was written already is skipped. Returns the bytes written in all.
async fn print_output(
    service: &Service,
    actor: &Actor,
    execution_id: uuid::Uuid,
    mut printed: u64,
    (offset, text): (u64, &str),
    stdout: &mut Terminal<impl Write>,
) -> anyhow::Result<u64> {
    if offset > printed {
        let until = Until::Offset(offset);
        printed = print_stored(service, actor, execution_id, printed, until, stdout).await?;
    }
    let end = offset + text.len() as u64;
    if end > printed {
        // Whole characters on both sides: events and pages never split one.
        let fresh = usize::try_from(printed.saturating_sub(offset))
            .ok()
            .and_then(|skip| text.get(skip..))
            .unwrap_or(text);
        stdout.write_text(fresh);
        stdout.flush();
        printed = end;
    }
    Ok(printed)
}

/// Prints what the terminal has not shown of a run that has ended (everything is stored
/// by now) and its outcome; the exit code tells the outcome.
async fn print_end(
    service: &Service,
    actor: &Actor,
    execution_id: uuid::Uuid,
    printed: u64,
    status: ExecutionStatus,
    stdout: &mut Terminal<impl Write>,
) -> anyhow::Result<std::process::ExitCode> {
    print_stored(service, actor, execution_id, printed, Until::End, stdout).await?;
    stdout.finish();
    note!("run {execution_id} {status}");
    if status != ExecutionStatus::Succeeded {
        note!("retry it from the step that did not succeed: runbook-studio retry {execution_id}");
    }
    Ok(exit_code_for(status))
}

/// Prints a run's console so far and what it prints next, until it ends, wherever it
/// executes; as `run` does, in colour on a terminal only (always with `raw`). Ctrl+C
/// leaves the run alone. Exits as `run` does, by the run's outcome, or with 0 when
/// nobody reads the console any more (`| head`).
async fn follow_console(
    service: &Service,
    execution_id: uuid::Uuid,
    raw: bool,
) -> anyhow::Result<std::process::ExitCode> {
    use futures::StreamExt;
    let actor = Actor::local_admin();
    let colours = if raw {
        anstream::ColorChoice::Always
    } else {
        anstream::ColorChoice::Auto
    };
    let mut stdout = Terminal::new(anstream::AutoStream::new(std::io::stdout(), colours));
    let mut printed = 0;
    loop {
        // Followed from just before it is read, so nothing between the two is missed.
        let following = service.follow_execution(&actor, execution_id).await?;
        let status = following.execution.status;
        if status.is_finished() {
            let code =
                print_end(service, &actor, execution_id, printed, status, &mut stdout).await?;
            return Ok(match stdout.lost() {
                Some(_) => std::process::ExitCode::SUCCESS,
                None => code,
            });
        }
        printed = print_stored(
            service,
            &actor,
            execution_id,
            printed,
            Until::Stored,
            &mut stdout,
        )
        .await?;
        let mut events = following.into_events();
        // Until the run's final state, or events missed: the state is then read again.
        loop {
            if stdout.lost().is_some() {
                return Ok(std::process::ExitCode::SUCCESS);
            }
            // A quiet run writes nothing that would find the console closed: it is
            // looked at every second meanwhile (`| grep -m1 …` has what it wanted).
            let event = match tokio::time::timeout(CONSOLE_CHECK, events.next()).await {
                Ok(Some(event)) => event,
                Ok(None) => break,
                Err(_) if stdout_hung_up() => return Ok(std::process::ExitCode::SUCCESS),
                Err(_) => continue,
            };
            match event {
                ExecutionEvent::Output { offset, text, .. } => {
                    let piece = (offset, text.as_str());
                    printed =
                        print_output(service, &actor, execution_id, printed, piece, &mut stdout)
                            .await?;
                }
                ExecutionEvent::Status { status, .. } if status.is_finished() => break,
                _ => {}
            }
        }
    }
}

/// How often a follower with nothing to print checks that its console is still read.
const CONSOLE_CHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// True when nothing reads stdout any more: a pipe whose reader has gone, or a
/// terminal that hung up.
fn stdout_hung_up() -> bool {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd;
    let stdout = std::io::stdout();
    let mut fds = [PollFd::new(stdout.as_fd(), PollFlags::empty())];
    match poll(&mut fds, PollTimeout::ZERO) {
        Ok(_) => fds[0]
            .revents()
            .is_some_and(|events| events.intersects(PollFlags::POLLERR | PollFlags::POLLHUP)),
        Err(_) => false,
    }
}

/// Writes the stored console of the run from byte `from` on, as far as `until` says.
/// Returns the offset reached.
async fn print_stored(
    service: &Service,
    actor: &Actor,
    execution_id: uuid::Uuid,
    mut from: u64,
    until: Until,
    stdout: &mut Terminal<impl Write>,
) -> anyhow::Result<u64> {
    const PAGE: u64 = 1024 * 1024;
    let patience = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if stdout.lost().is_some() {
            // Nobody reads it: the stored console is not read back for nothing.
            break;
        }
        let limit = match until {
            Until::Offset(to) if from >= to => break,
            Until::Offset(to) => (to - from).min(PAGE),
            Until::Stored | Until::End => PAGE,
        };
        let page = service
            .read_output(actor, execution_id, from, limit)
            .await?;
        if page.next_offset > from {
            stdout.write_text(&page.text);
            from = page.next_offset;
            continue;
        }
        if page.complete || matches!(until, Until::Stored) {
            break;
        }
        if std::time::Instant::now() > patience {
            note!(
                "(the console from byte {from} on is not stored yet; it will be kept with the run)"
            );
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    stdout.flush();
    Ok(from)
}

/// Where the console goes. Its `\r\n` line ends (written for terminal emulators)
/// become `\n`, also when one is split between two pieces of text; a lone `\r` (a
/// progress line redrawn) is kept.
///
/// Once a write fails (a closed pipe, `| head`; a hung-up terminal), the error is kept
/// in [`Terminal::lost`] and everything after it is dropped.
struct Terminal<W: Write> {
    out: W,
    /// A `\r` ended the last piece: it is written once the next piece shows whether a
    /// `\n` follows.
    held_cr: bool,
    /// Why the console can no longer be written.
    lost: Option<std::io::Error>,
}

impl<W: Write> Terminal<W> {
    fn new(out: W) -> Self {
        Terminal {
            out,
            held_cr: false,
            lost: None,
        }
    }

    /// Why the console can no longer be written, once a write failed.
    fn lost(&self) -> Option<&std::io::Error> {
        self.lost.as_ref()
    }

    /// Keeps the first error; what comes after it is not written.
    fn keep(&mut self, written: impl FnOnce(&mut Self) -> std::io::Result<()>) {
        if self.lost.is_none() {
            if let Err(error) = written(self) {
                self.lost = Some(error);
            }
        }
    }

    fn write_text(&mut self, text: &str) {
        self.keep(|terminal| terminal.write_piece(text));
    }

    fn write_piece(&mut self, text: &str) -> std::io::Result<()> {
        if text.is_empty() {
            return Ok(());
        }
        if std::mem::take(&mut self.held_cr) && !text.starts_with('\n') {
            self.out.write_all(b"\r")?;
        }
        let text = match text.strip_suffix('\r') {
            Some(body) => {
                self.held_cr = true;
                body
            }
            None => text,
        };
        self.out.write_all(text.replace("\r\n", "\n").as_bytes())
    }

    fn flush(&mut self) {
        self.keep(|terminal| terminal.out.flush());
    }

    /// Writes what is held back; the console has ended.
    fn finish(&mut self) {
        self.keep(|terminal| {
            if std::mem::take(&mut terminal.held_cr) {
                terminal.out.write_all(b"\r")?;
            }
            terminal.out.flush()
        });
    }
}

fn exit_code_for(status: ExecutionStatus) -> std::process::ExitCode {
    if status == ExecutionStatus::Succeeded {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::from(1)
    }
}

/// What the operator answered at the confirmation prompt.
#[derive(Debug, PartialEq)]
enum Answer {
    Yes,
    No,
    /// The run stopped waiting before an answer came (Ctrl+C stopped it, or the
    /// confirmation was given elsewhere).
    Moot,
}

/// How often the run is read while the prompt waits for an answer.
const PROMPT_POLL: std::time::Duration = std::time::Duration::from_millis(200);

/// Lines read from stdin by a thread of their own.
type Lines = tokio::sync::mpsc::UnboundedReceiver<std::io::Result<String>>;

/// Asks on the terminal whether the waiting run may go on. Stdin is read on a thread
/// of its own, so a run that stops waiting meanwhile (Ctrl+C stopped it, or it was
/// acknowledged elsewhere) ends the question at once instead of leaving the CLI
/// blocked on stdin. One thread serves every prompt of the run, so no answer is read
/// by a question that is over.
async fn confirm_on_tty(
    service: &Service,
    actor: &Actor,
    execution_id: uuid::Uuid,
    lines: &mut Option<Lines>,
) -> anyhow::Result<Answer> {
    if !std::io::stdin().is_terminal() {
        note!("this step needs a confirmation and stdin is not a terminal; pass --yes to acknowledge automatically");
        return Ok(Answer::No);
    }
    let lines = lines.get_or_insert_with(|| {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        // A plain thread: a read still blocked on stdin when the CLI exits must not
        // hold the exit up, as a task of the runtime's blocking pool would.
        std::thread::spawn(move || loop {
            let mut line = String::new();
            let read = std::io::stdin().read_line(&mut line);
            let end = matches!(read, Ok(0) | Err(_));
            if tx.send(read.map(|_| line)).is_err() || end {
                break;
            }
        });
        rx
    });
    // What was typed before the question is not an answer to it.
    while lines.try_recv().is_ok() {}
    {
        let mut stderr = std::io::stderr();
        let _ = write!(stderr, "Continue? [y/N] ").and_then(|()| stderr.flush());
    }
    loop {
        tokio::select! {
            line = lines.recv() => {
                let answer = match line {
                    Some(Ok(line)) => line,
                    Some(Err(error)) => return Err(error.into()),
                    None => String::new(),
                };
                return Ok(if matches!(answer.trim(), "y" | "Y" | "yes") { Answer::Yes } else { Answer::No });
            }
            _ = tokio::time::sleep(PROMPT_POLL) => {
                let current = service.get_execution(actor, execution_id).await?;
                if current.status != ExecutionStatus::Waiting {
                    note!();
                    return Ok(Answer::Moot);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Terminal;

    fn written(pieces: &[&str]) -> String {
        let mut terminal = Terminal::new(Vec::new());
        for piece in pieces {
            terminal.write_text(piece);
        }
        terminal.finish();
        assert!(terminal.lost().is_none());
        String::from_utf8(terminal.out).unwrap()
    }

    #[test]
    fn line_ends_become_newlines_even_when_split_between_pieces() {
        assert_eq!(written(&["a\r\nb\r\n"]), "a\nb\n");
        assert_eq!(written(&["a\r", "\nb\r", "\n"]), "a\nb\n");
        assert_eq!(written(&["a\r", "", "\nb"]), "a\nb");
    }

    /// Takes `room` bytes, then fails as a pipe whose reader went away.
    struct ClosingPipe {
        taken: Vec<u8>,
        room: usize,
    }

    impl std::io::Write for ClosingPipe {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if self.taken.len() >= self.room {
                return Err(std::io::ErrorKind::BrokenPipe.into());
            }
            let n = buf.len().min(self.room - self.taken.len());
            self.taken.extend_from_slice(&buf[..n]);
            Ok(n)
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_closed_console_is_noted_once_and_what_follows_is_dropped() {
        let mut terminal = Terminal::new(ClosingPipe {
            taken: Vec::new(),
            room: 4,
        });
        terminal.write_text("one\n");
        assert!(terminal.lost().is_none());
        terminal.write_text("two\n");
        assert_eq!(
            terminal.lost().map(std::io::Error::kind),
            Some(std::io::ErrorKind::BrokenPipe)
        );
        terminal.out.room = 100;
        terminal.write_text("three\n");
        terminal.flush();
        terminal.finish();
        assert_eq!(terminal.out.taken, b"one\n");
    }

    #[test]
    fn a_lone_carriage_return_is_kept() {
        assert_eq!(written(&["50%\r", "60%\r", "done\n"]), "50%\r60%\rdone\n");
        assert_eq!(written(&["working\r"]), "working\r");
        assert_eq!(written(&["\r\r", "\n"]), "\r\n");
    }
}
