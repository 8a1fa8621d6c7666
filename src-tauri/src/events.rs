//! Forwards the core's execution events (output, step and status changes) to the webview,
//! and raises a desktop notification when a run waits for someone to acknowledge a step.

use runbook_core::{Actor, ExecutionEvent, Service, WaitingStep};
use runbook_domain::ExecutionStatus;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
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
    let notified = Notified::default();
    tauri::async_runtime::spawn(async move {
        loop {
            match events.recv().await {
                Ok(event) => {
                    match &event {
                        ExecutionEvent::Status {
                            execution_id,
                            status: ExecutionStatus::Waiting,
                        } => notify_waiting(&app, &service, &actor, *execution_id, &notified),
                        ExecutionEvent::Status {
                            execution_id,
                            status,
                        } if status.is_finished() => notified.forget(*execution_id),
                        _ => {}
                    }
                    if let Err(error) = app.emit(EXECUTION_EVENT, &event) {
                        tracing::warn!(%error, "could not forward an execution event");
                    }
                }
                // The console catches up from the stored output (`read_output`).
                Err(RecvError::Lagged(skipped)) => {
                    tracing::warn!(skipped, "execution events dropped: the webview fell behind");
                }
                Err(RecvError::Closed) => break,
            }
        }
    });
}

/// Shows "waiting for you" for the step the run waits at, off the forwarding loop. The
/// engine says which step that is and how the run shows it, and only while the run
/// still waits: an acknowledgement that came first leaves nothing to notify.
fn notify_waiting<R: Runtime>(
    app: &AppHandle<R>,
    service: &Service,
    actor: &Actor,
    execution_id: Uuid,
    notified: &Notified,
) {
    let (app, service, actor) = (app.clone(), service.clone(), actor.clone());
    let notified = notified.clone();
    tauri::async_runtime::spawn(async move {
        let step = match service.waiting_step(&actor, execution_id).await {
            Ok(step) => step,
            Err(error) => {
                tracing::info!(%error, %execution_id, "no notification for the waiting run");
                return;
            }
        };
        // Two waits in quick succession (the first acknowledged before its lookup) both
        // find the second step: it is announced once.
        if !notified.first(execution_id, &step.block_id) {
            return;
        }
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

/// The steps of live runs a notification has been shown for.
#[derive(Clone, Default)]
pub struct Notified(Arc<Mutex<HashSet<(Uuid, String)>>>);

impl Notified {
    /// True the first time it is asked for this step of this run.
    pub fn first(&self, execution_id: Uuid, block_id: &str) -> bool {
        let mut seen = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        seen.insert((execution_id, block_id.to_string()))
    }

    /// Forgets a run that has ended.
    pub fn forget(&self, execution_id: Uuid) {
        let mut seen = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        seen.retain(|(id, _)| *id != execution_id);
    }
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
