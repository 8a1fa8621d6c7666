//! `runbook-studio`: the headless binary. `serve` runs the REST server; `run`, `keys`
//! and `migrate` work on the same database from the command line.

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use runbook_core::{Actor, Config, ExecutionEvent, Service};
use runbook_domain::{ControlAction, ExecutionStatus, Role};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use tokio::sync::watch;

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
    /// Log filter, e.g. `info` or `runbook_server=debug`.
    #[arg(long, global = true, env = "RUNBOOK_LOG", default_value = "info")]
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
    /// Manage API keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
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
        #[arg(long, default_value = "viewer")]
        role: Role,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&cli.log_level)
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    match runtime.block_on(dispatch(cli)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::from(2)
        }
    }
}

async fn dispatch(cli: Cli) -> anyhow::Result<std::process::ExitCode> {
    let config = Config {
        data_dir: cli.data_dir.unwrap_or_else(Config::default_data_dir),
        database_url: cli.database_url,
        heartbeat_timeout: std::time::Duration::from_secs(cli.heartbeat_timeout),
        ..Config::from_data_dir(".")
    };
    let service = Service::open(config).await.map_err(|e| match e {
        runbook_core::CoreError::Internal(detail) => anyhow::anyhow!(detail),
        other => anyhow::anyhow!(other),
    })?;
    match cli.command {
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
            // Subscribed before the run starts, so no line of it is missed.
            let events = service.subscribe();
            let retry = service.retry(&actor, id).await?;
            eprintln!(
                "retrying run {id} from step {} as run {}",
                retry.retry_from.as_deref().unwrap_or("?"),
                retry.id
            );
            return follow(&service, &actor, events, retry.id, yes).await;
        }
        Command::Keys {
            command: KeysCommand::Create { name, role },
        } => {
            let key = service
                .create_api_key(&Actor::system(), &name, role)
                .await?;
            println!(
                "Created API key `{}` ({}, id {}).",
                key.key.name, key.key.role, key.key.id
            );
            println!("Store this token now; it is not shown again:");
            println!("{}", key.token);
        }
        Command::Migrate => println!("The database is migrated and up to date."),
    }
    Ok(std::process::ExitCode::SUCCESS)
}

async fn serve(service: Service, addr: &str, ui_dir: PathBuf) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let state = runbook_server::AppState {
        service: service.clone(),
        shutdown: stop_rx,
    };
    let app = runbook_server::app(state, Some(ui_dir))
        .layer(tower_http::trace::TraceLayer::new_for_http());
    tracing::info!("listening on http://{}", listener.local_addr()?);
    let stopping = async move {
        shutdown_signal().await;
        tracing::info!("shutting down: stopping live runs");
        service.shutdown().await;
        let _ = stop_tx.send(true);
    };
    axum::serve(listener, app)
        .with_graceful_shutdown(stopping)
        .await?;
    Ok(())
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
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
    // Subscribed before the run starts, so no line of it is missed.
    let events = service.subscribe();
    let execution = service
        .execute(&actor, id, serde_json::json!({ "params": values }))
        .await?;
    follow(&service, &actor, events, execution.id, yes).await
}

/// Streams a run's console to the terminal until it ends: Ctrl+C stops it, Ctrl+Z
/// pauses and resumes it, confirmations are asked for (or given with `--yes`).
async fn follow(
    service: &Service,
    actor: &Actor,
    mut events: tokio::sync::broadcast::Receiver<ExecutionEvent>,
    execution_id: uuid::Uuid,
    yes: bool,
) -> anyhow::Result<std::process::ExitCode> {
    use tokio::signal::unix::{signal, SignalKind};
    let actor = actor.clone();
    let mut stdout = std::io::stdout();
    let mut interrupt = std::pin::pin!(shutdown_signal());
    let mut suspend = signal(SignalKind::from_raw(nix::libc::SIGTSTP))?;
    loop {
        let received = tokio::select! {
            received = events.recv() => received,
            _ = &mut interrupt => {
                eprintln!("stopping the run (its whole process tree)…");
                let _ = service.control(&actor, execution_id, ControlAction::Stop).await;
                interrupt.set(shutdown_signal());
                continue;
            }
            _ = suspend.recv() => {
                let current = service.get_execution(&actor, execution_id).await?;
                let action = if current.status == ExecutionStatus::Paused {
                    ControlAction::Resume
                } else {
                    ControlAction::Pause
                };
                match service.control(&actor, execution_id, action).await {
                    Ok(now) => eprintln!("\nrun {} (Ctrl+Z again to {})", now.status,
                        if now.status == ExecutionStatus::Paused { "resume" } else { "pause" }),
                    Err(error) => eprintln!("\n{error}"),
                }
                continue;
            }
        };
        let event = match received {
            Ok(event) if event.execution_id() == execution_id => event,
            Ok(_) => continue,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(skipped)) => {
                // Output was skipped on the terminal; the state is read back so no
                // confirmation or end of run is missed.
                eprintln!("({skipped} events skipped; the full console is stored with the run)");
                let current = service.get_execution(&actor, execution_id).await?;
                ExecutionEvent::Status {
                    execution_id,
                    status: current.status,
                }
            }
            Err(_) => bail!("the engine stopped"),
        };
        match event {
            ExecutionEvent::Output { text, .. } => {
                stdout.write_all(text.replace("\r\n", "\n").as_bytes())?;
                stdout.flush()?;
            }
            ExecutionEvent::Status {
                status: ExecutionStatus::Waiting,
                ..
            } => {
                if !(yes || confirm_on_tty()?) {
                    service
                        .control(&actor, execution_id, ControlAction::Stop)
                        .await?;
                    continue;
                }
                // A confirmation already given (seen twice after skipped events) is fine.
                if let Err(error) = service
                    .control(&actor, execution_id, ControlAction::Acknowledge)
                    .await
                {
                    tracing::debug!(%error, "acknowledge");
                }
            }
            ExecutionEvent::Status { status, .. } if status.is_finished() => {
                eprintln!("run {} {status}", execution_id);
                if status != ExecutionStatus::Succeeded {
                    eprintln!(
                        "retry it from the step that did not succeed: runbook-studio retry {}",
                        execution_id
                    );
                }
                return Ok(exit_code_for(status));
            }
            _ => {}
        }
    }
}

fn exit_code_for(status: ExecutionStatus) -> std::process::ExitCode {
    if status == ExecutionStatus::Succeeded {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::from(1)
    }
}

fn confirm_on_tty() -> anyhow::Result<bool> {
    if !std::io::stdin().is_terminal() {
        eprintln!("this step needs a confirmation and stdin is not a terminal; pass --yes to acknowledge automatically");
        return Ok(false);
    }
    eprint!("Continue? [y/N] ");
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}
