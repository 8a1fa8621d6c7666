//! Forwards the core's execution events (output, step and status changes) to the webview.

use runbook_core::ExecutionEvent;
use tauri::{AppHandle, Emitter, Runtime};
use tokio::sync::broadcast::{error::RecvError, Receiver};

/// The Tauri event every execution event is emitted as; the payload is the serialized event.
pub const EXECUTION_EVENT: &str = "execution-event";

/// Emits every event from `events` to the app's webviews until the core closes the channel.
pub fn forward<R: Runtime>(app: AppHandle<R>, mut events: Receiver<ExecutionEvent>) {
    tauri::async_runtime::spawn(async move {
        loop {
            match events.recv().await {
                Ok(event) => {
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
