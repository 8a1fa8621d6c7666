//! Forwards the core's execution events (output, step and status changes) to the webview,
//! and raises a desktop notification when a run waits for someone to acknowledge a step.

use runbook_core::{Actor, ExecutionEvent, Service, WaitingStep};
use runbook_domain::ExecutionStatus;
use std::collections::HashMap;
use tauri::{AppHandle, Emitter, Manager, Runtime};
use tauri_plugin_notification::{Notification, NotificationExt};
use tokio::sync::broadcast::{error::RecvError, Receiver};
use uuid::Uuid;

/// The Tauri event every execution event is emitted as; the payload is the serialized event.
pub const EXECUTION_EVENT: &str = "execution-event";

/// Longest excerpt of a step's instructions shown in a notification, in characters.
const NOTICE_EXCERPT: usize = 140;

/// Emits every event from `events` to the app's webviews until the core closes the channel.
/// A run that starts waiting for an acknowledgement also raises a desktop notification
/// naming the runbook and the step, so an operator working in another window knows.
pub fn forward<R: Runtime>(
    app: AppHandle<R>,
    service: Service,
    actor: Actor,
    mut events: Receiver<ExecutionEvent>,
) {
    tauri::async_runtime::spawn(async move {
        // The step each live run started last: the one a run that starts waiting waits at.
        let mut current: HashMap<Uuid, String> = HashMap::new();
        loop {
            match events.recv().await {
                Ok(event) => {
                    match &event {
                        ExecutionEvent::StepStarted {
                            execution_id,
                            block_id,
                        } => {
                            current.insert(*execution_id, block_id.clone());
                        }
                        ExecutionEvent::Status {
                            execution_id,
                            status: ExecutionStatus::Waiting,
                        } => {
                            if let Some(block_id) = current.get(execution_id) {
                                notify_waiting(&app, &service, &actor, *execution_id, block_id);
                            }
                        }
                        ExecutionEvent::Status {
                            execution_id,
                            status,
                        } if status.is_finished() => {
                            current.remove(execution_id);
                        }
                        _ => {}
                    }
                    if let Err(error) = app.emit(EXECUTION_EVENT, &event) {
                        tracing::warn!(%error, "could not forward an execution event");
                    }
                }
                // The console catches up from the stored output (`read_output`).
                Err(RecvError::Lagged(skipped)) => {
                    tracing::warn!(skipped, "execution events dropped: the webview fell behind");
                    // A step start may be among them: better no notification than a wrong one.
                    current.clear();
                }
                Err(RecvError::Closed) => break,
            }
        }
    });
}

/// Shows "waiting for you" for the step `block_id` of the run, off the forwarding loop.
fn notify_waiting<R: Runtime>(
    app: &AppHandle<R>,
    service: &Service,
    actor: &Actor,
    execution_id: Uuid,
    block_id: &str,
) {
    let (app, service, actor, block_id) = (
        app.clone(),
        service.clone(),
        actor.clone(),
        block_id.to_string(),
    );
    tauri::async_runtime::spawn(async move {
        let step = match service.waiting_step(&actor, execution_id, &block_id).await {
            Ok(step) => step,
            Err(error) => {
                tracing::warn!(%error, %execution_id, "no notification for the waiting run");
                return;
            }
        };
        // Present only where the notification plugin is (not in the IPC tests).
        if app.try_state::<Notification<R>>().is_none() {
            return;
        }
        let (title, body) = waiting_notice(&step);
        if let Err(error) = app.notification().builder().title(title).body(body).show() {
            tracing::warn!(%error, "could not show a notification");
        }
    });
}

/// The notification's title and body for a run waiting at `step`: the runbook, the step
/// and the first line of its instructions, without markdown markers.
pub fn waiting_notice(step: &WaitingStep) -> (String, String) {
    let title = format!("“{}” waits for you", step.runbook_name);
    let line = step
        .text
        .lines()
        .map(|line| {
            line.trim_start_matches(['#', '>', '-', '*', ' ', '\t'])
                .trim()
        })
        .find(|line| !line.is_empty())
        .unwrap_or_default();
    let mut excerpt: String = line.chars().take(NOTICE_EXCERPT).collect();
    if line.chars().count() > NOTICE_EXCERPT {
        excerpt.push('…');
    }
    let body = if excerpt.is_empty() {
        format!("Step “{}” needs your acknowledgement.", step.block_id)
    } else {
        format!(
            "Step “{}” needs your acknowledgement: {excerpt}",
            step.block_id
        )
    };
    (title, body)
}
