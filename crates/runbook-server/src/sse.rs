//! Server-Sent Events for one execution: the current status first, then every
//! event of the run until it finishes (or the server shuts down, or the key that
//! opened the stream stops being valid), wherever the run executes.

use crate::error::ApiError;
use crate::extract::PresentedKey;
use crate::routes::AppState;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::stream::{self, Stream, StreamExt};
use runbook_core::{Actor, ExecutionEvent};
use std::convert::Infallible;
use uuid::Uuid;

pub async fn execution_events(
    state: AppState,
    actor: Actor,
    key: PresentedKey,
    id: Uuid,
) -> Result<Response, ApiError> {
    let following = state.service.follow_execution(&actor, id).await?;
    let first = ExecutionEvent::Status {
        execution_id: id,
        status: following.execution.status,
    };
    // Ends after the final status, or when events were missed: the client then reads
    // the stored console and state from where it is.
    let live = following.into_events();
    let mut shutdown = state.shutdown.clone();
    // Without anyone to signal a shutdown, the stream ends with the run.
    let stopping = async move { crate::routes::stopping(&mut shutdown).await };
    let key_state = state.clone();
    let key_lapses = async move {
        loop {
            tokio::time::sleep(key_state.key_check).await;
            // Only a refusal of the key ends the stream; storage that cannot answer
            // for a moment does not.
            if let Ok(false) = key.still_valid(&key_state).await {
                return;
            }
        }
    };
    let ends = async move {
        tokio::select! {
            () = stopping => {}
            () = key_lapses => {}
        }
    };
    let events = stream::once(async move { first })
        .chain(live)
        .take_until(ends)
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
