//! Server-Sent Events for one execution: the current status first, then every
//! event of the run until it finishes (or the server shuts down).

use crate::error::ApiError;
use crate::routes::AppState;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::stream::{self, Stream, StreamExt};
use runbook_core::{Actor, ExecutionEvent};
use std::convert::Infallible;
use tokio::sync::broadcast::error::RecvError;
use uuid::Uuid;

pub async fn execution_events(
    state: AppState,
    actor: Actor,
    id: Uuid,
) -> Result<Response, ApiError> {
    // Subscribe before reading the state, so nothing falls between the two.
    let receiver = state.service.subscribe();
    let execution = state.service.get_execution(&actor, id).await?;
    let first = ExecutionEvent::Status {
        execution_id: id,
        status: execution.status,
    };
    // A run executed by another process sends no events here: the first status is all
    // this stream can say, and the client follows the run by reading it.
    let finished = execution.status.is_finished() || !state.service.is_live_here(id);
    let live = stream::unfold(
        (receiver, finished),
        move |(mut receiver, done)| async move {
            if done {
                return None;
            }
            loop {
                match receiver.recv().await {
                    Ok(event) if event.execution_id() == id => {
                        let ends = matches!(&event, ExecutionEvent::Status { status, .. } if status.is_finished());
                        return Some((event, (receiver, ends)));
                    }
                    Ok(_) => continue,
                    // Missed events cannot be replayed: end the stream, and the client
                    // reads the stored console and state from where it is.
                    Err(RecvError::Lagged(_)) | Err(RecvError::Closed) => return None,
                }
            }
        },
    );
    let mut shutdown = state.shutdown.clone();
    let stopping = async move {
        if shutdown.wait_for(|stop| *stop).await.is_err() {
            // No one can signal a shutdown any more: the stream ends with the run.
            std::future::pending::<()>().await;
        }
    };
    let events = stream::once(async move { first })
        .chain(live)
        .take_until(stopping)
        .map(to_sse);
    Ok(sse_response(events))
}

fn to_sse(event: ExecutionEvent) -> Result<Event, Infallible> {
    let data = serde_json::to_string(&event).expect("events serialize");
    Ok(Event::default().event(event.name()).data(data))
}

fn sse_response(
    events: impl Stream<Item = Result<Event, Infallible>> + Send + 'static,
) -> Response {
    Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response()
}
