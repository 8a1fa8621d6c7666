//! Forwards the core's execution events (output, step and status changes) to the webview,
//! and raises a desktop notification when a run waits for someone to acknowledge a step.
//! Runs another process executes are followed, while a view shows them, through what
//! that process stores.

use futures::StreamExt;
use runbook_core::{Actor, CoreError, ExecutionEvent, Service, WaitingStep};
use runbook_domain::ExecutionStatus;
use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
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

/// The runs another process executes (a terminal's `runbook-studio run`, another
/// desktop on a shared PostgreSQL) that views of this app follow. Their events, derived
/// from what that process stores ([`runbook_core::Following::into_events`]), are emitted
/// as [`EXECUTION_EVENT`] like this process's own: one follower per run however many
/// views show it, for as long as one does, until the run ends.
#[derive(Clone, Default)]
pub struct Followers(Arc<Mutex<Registry>>);

#[derive(Default)]
struct Registry {
    /// Tells a follower that ended from a newer one of the same run.
    started: u64,
    runs: HashMap<Uuid, Follower>,
}

struct Follower {
    views: usize,
    number: u64,
    task: tauri::async_runtime::JoinHandle<()>,
}

impl Followers {
    /// One more view follows the run. True when its events come from a follower of this
    /// registry (the view calls [`Followers::unfollow`] when it closes); false for a run
    /// this process executes, whose events are always emitted, or one that has ended.
    pub async fn follow<R: Runtime>(
        &self,
        app: &AppHandle<R>,
        service: &Service,
        actor: &Actor,
        execution_id: Uuid,
    ) -> Result<bool, CoreError> {
        // Asked of the core every time: it checks the caller's role.
        let following = service.follow_execution(actor, execution_id).await?;
        if !following.is_elsewhere() {
            return Ok(false);
        }
        let mut registry = self.lock();
        if let Some(follower) = registry.runs.get_mut(&execution_id) {
            follower.views += 1;
            return Ok(true);
        }
        registry.started += 1;
        let number = registry.started;
        let mut events = following.into_events();
        let (app, followers) = (app.clone(), self.clone());
        // Ends with the run (its final status emitted), or when the last view leaves.
        let task = tauri::async_runtime::spawn(async move {
            while let Some(event) = events.next().await {
                if let Err(error) = app.emit(EXECUTION_EVENT, &event) {
                    tracing::warn!(%error, "could not forward a followed run's event");
                }
            }
            followers.ended(execution_id, number);
        });
        registry.runs.insert(
            execution_id,
            Follower {
                views: 1,
                number,
                task,
            },
        );
        Ok(true)
    }

    /// One view fewer follows the run; when none is left, its follower stops.
    pub fn unfollow(&self, execution_id: Uuid) {
        let mut registry = self.lock();
        if let Entry::Occupied(mut entry) = registry.runs.entry(execution_id) {
            let follower = entry.get_mut();
            follower.views = follower.views.saturating_sub(1);
            if follower.views == 0 {
                entry.remove().task.abort();
            }
        }
    }

    /// Stops every follower: the page that counted its views loads again (a reload), and
    /// its views will not leave.
    pub fn clear(&self) {
        for (_, follower) in self.lock().runs.drain() {
            follower.task.abort();
        }
    }

    /// Runs followed now, for the tests.
    #[cfg(test)]
    pub fn followed(&self) -> Vec<Uuid> {
        self.lock().runs.keys().copied().collect()
    }

    /// Forgets follower `number` of the run, which ended with the run.
    fn ended(&self, execution_id: Uuid, number: u64) {
        let mut registry = self.lock();
        if let Entry::Occupied(entry) = registry.runs.entry(execution_id) {
            if entry.get().number == number {
                entry.remove();
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
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
