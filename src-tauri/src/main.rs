//! Runbook Studio desktop entry point: opens the core service and hosts the React UI in a window.

// No console window next to the app on Windows release builds.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

mod commands;
mod error;
mod events;

use runbook_core::{Actor, Config, KeySetting, Service};
use std::ffi::OsString;
use std::path::PathBuf;
use tauri::{App, Builder, Manager, RunEvent, Runtime};
#[cfg(unix)]
use tokio::signal::unix::SignalKind;
use tracing_subscriber::EnvFilter;

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        // Logs in colour on a terminal only: plain when the desktop starts the app.
        .with_ansi(anstream::AutoStream::choice(&std::io::stdout()) != anstream::ColorChoice::Never)
        .init();
    let config = config_from(
        std::env::var_os("RUNBOOK_DATA_DIR"),
        std::env::var("DATABASE_URL").ok(),
        std::env::var("RUNBOOK_STOP_GRACE").ok(),
    );
    // Where exported run reports are saved; the Downloads directory when unset.
    let export_dir = std::env::var_os("RUNBOOK_EXPORT_DIR")
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from);
    let app = with_commands(tauri::Builder::default())
        // Desktop notifications: a run that waits for an acknowledgement says so.
        .plugin(tauri_plugin_notification::init())
        .setup(move |app| {
            if let Some(dir) = export_dir {
                app.manage(commands::ExportDir(dir));
            }
            open_service(app, config)?;
            // A quit asked by the session or the terminal goes through `RunEvent::Exit`
            // as a closed window does, so live runs are stopped, not left behind.
            #[cfg(unix)]
            {
                let (handle, again) = (app.handle().clone(), app.handle().clone());
                // Asked again while live runs' commands clean up: they are killed at once.
                let kill_now = move || {
                    if let Some(service) = again.try_state::<Service>() {
                        tracing::warn!("asked again to quit: killing the live runs' processes now");
                        service.kill_now();
                    }
                };
                quit_on_signals(&QUIT_SIGNALS, move || handle.exit(0), kill_now)?;
            }
            Ok(())
        })
        .build(tauri::generate_context!());
    match app {
        Ok(app) => app.run(shut_down_on_exit),
        Err(error) => {
            eprintln!("Runbook Studio could not start: {error}");
            std::process::exit(1);
        }
    }
}

/// Where the data lives: `RUNBOOK_DATA_DIR` (else the platform data directory) and
/// `DATABASE_URL` (else SQLite in the data directory); empty values count as unset.
/// `RUNBOOK_STOP_GRACE`: the seconds a stopped command gets between SIGTERM and SIGKILL
/// unless its block says otherwise (5 s when unset, or when not a number of seconds
/// up to ten minutes, which the log says).
fn config_from(
    data_dir: Option<OsString>,
    database_url: Option<String>,
    stop_grace: Option<String>,
) -> Config {
    let data_dir = data_dir
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(Config::default_data_dir);
    let mut engine = runbook_core::EngineConfig::default();
    match stop_grace
        .as_deref()
        .map(str::trim)
        .filter(|text| !text.is_empty())
    {
        None => {}
        Some(text) => match text.parse::<u64>() {
            Ok(secs) if secs <= runbook_domain::validation::MAX_STOP_GRACE_SECS => {
                engine.stop_grace = std::time::Duration::from_secs(secs);
            }
            _ => tracing::warn!(
                value = text,
                "RUNBOOK_STOP_GRACE is not a number of seconds from 0 to {}; using {} s",
                runbook_domain::validation::MAX_STOP_GRACE_SECS,
                engine.stop_grace.as_secs()
            ),
        },
    }
    Config {
        engine,
        database_url: database_url.filter(|url| !url.trim().is_empty()),
        // The desktop keeps its master key in the system keychain; without one, in a
        // private key file in the data directory (and the UI says so).
        master_key: KeySetting::Platform {
            data_dir: data_dir.clone(),
            keychain: true,
        },
        ..Config::from_data_dir(data_dir)
    }
}

/// Registers the commands the UI invokes. A page that loads again (a reload) starts with
/// no runs followed: those its previous load followed are stopped, as its views never
/// leave them.
fn with_commands<R: Runtime>(builder: Builder<R>) -> Builder<R> {
    builder
        .on_page_load(|webview, payload| {
            if payload.event() == tauri::webview::PageLoadEvent::Started {
                if let Some(followers) = webview.try_state::<events::Followers>() {
                    followers.clear();
                }
            }
        })
        .invoke_handler(tauri::generate_handler![
            commands::list_runbooks,
            commands::get_runbook,
            commands::create_runbook,
            commands::update_runbook,
            commands::delete_runbook,
            commands::list_versions,
            commands::get_version,
            commands::rollback_runbook,
            commands::execute_runbook,
            commands::get_execution,
            commands::list_executions,
            commands::read_output,
            commands::export_execution,
            commands::save_console,
            commands::control_execution,
            commands::follow_execution,
            commands::unfollow_execution,
            commands::retry_execution,
            commands::whoami,
            commands::list_credentials,
            commands::get_credential,
            commands::create_credential,
            commands::update_credential,
            commands::delete_credential,
            commands::list_users,
            commands::create_user,
            commands::update_user,
            commands::delete_user,
            commands::list_api_keys,
            commands::create_api_key,
            commands::revoke_api_key,
            commands::list_audit,
            commands::verify_audit,
            commands::vault_status,
        ])
}

/// Opens the core service, manages it with the local profile, and bridges its events.
fn open_service<R: Runtime>(
    app: &mut App<R>,
    mut config: Config,
) -> Result<(), Box<dyn std::error::Error>> {
    // Commands see what the user's shell profile sets up (PATH above all), even when
    // the app was started from a desktop launcher with a bare environment.
    match runbook_core::login_environment() {
        Some(env) => config.engine.base_env = Some(std::sync::Arc::new(env)),
        None => tracing::warn!(
            "could not read the login shell's environment; commands inherit the app's"
        ),
    }
    let exports = app
        .path()
        .download_dir()
        .unwrap_or_else(|_| config.data_dir.join("exports"));
    // Kept if set already (tests save elsewhere).
    app.manage(commands::ExportDir(exports));
    let data_dir = config.data_dir.display().to_string();
    let service = tauri::async_runtime::block_on(Service::open(config))
        // Debug, not Display: an internal error's Display hides its cause.
        .map_err(|error| format!("cannot open the data store in {data_dir}: {error:?}"))?;
    tracing::info!(data_dir, "data store open");
    // Subscribe before any run can start, so the UI misses no event.
    let actor = Actor::local_admin();
    events::forward(
        app.handle().clone(),
        service.clone(),
        actor.clone(),
        service.subscribe(),
    );
    app.manage(service);
    app.manage(actor);
    app.manage(events::Followers::default());
    Ok(())
}

/// The signals that ask the app to quit: SIGTERM (the session ends), SIGINT (Ctrl+C on
/// the terminal that started it), SIGHUP (that terminal goes away).
#[cfg(unix)]
const QUIT_SIGNALS: [SignalKind; 3] = [
    SignalKind::terminate(),
    SignalKind::interrupt(),
    SignalKind::hangup(),
];

/// Calls `quit` once one of `signals` arrives, and `again` for every one after it; they
/// are caught from the moment this returns. Their default action would end the process
/// at once, leaving the commands of live runs (each in a process group of its own, which
/// no terminal signal reaches) running until the next start reaps them.
#[cfg(unix)]
fn quit_on_signals(
    signals: &[SignalKind],
    quit: impl FnOnce() + Send + 'static,
    again: impl Fn() + Send + 'static,
) -> std::io::Result<()> {
    // Registered inside the runtime (its signal driver), before this returns.
    let caught = tauri::async_runtime::block_on(async {
        signals
            .iter()
            .map(|kind| tokio::signal::unix::signal(*kind))
            .collect::<std::io::Result<Vec<_>>>()
    })?;
    let (asked, mut asked_to_quit) = tokio::sync::mpsc::channel::<()>(4);
    for mut signal in caught {
        let asked = asked.clone();
        tauri::async_runtime::spawn(async move {
            while signal.recv().await.is_some() {
                let _ = asked.try_send(());
            }
        });
    }
    drop(asked);
    tauri::async_runtime::spawn(async move {
        if asked_to_quit.recv().await.is_some() {
            tracing::info!("asked to quit: stopping live runs (asked again, their processes are killed at once)");
            quit();
        }
        while asked_to_quit.recv().await.is_some() {
            again();
        }
    });
    Ok(())
}

/// Stops live runs (their whole process groups) when the app quits.
fn shut_down_on_exit<R: Runtime>(app: &tauri::AppHandle<R>, event: RunEvent) {
    if let RunEvent::Exit = event {
        if let Some(service) = app.try_state::<Service>() {
            tauri::async_runtime::block_on(service.shutdown());
        }
    }
}

#[cfg(test)]
mod tests;
