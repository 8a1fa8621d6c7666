//! Where a run's events go: the channel all runs share (the desktop app forwards every
//! event to its window) and the run's own, which a client following that one run reads,
//! so a run writing heavily never wakes the followers of another or makes them lag.

use crate::ExecutionEvent;
use tokio::sync::broadcast;

/// Events a subscriber that stops reading may fall behind by before it lags. Output
/// events carry at most one read (64 KiB).
pub(crate) const CAPACITY: usize = 1024;

/// Sends one run's events to both channels.
#[derive(Clone)]
pub(crate) struct Announcer {
    all: broadcast::Sender<ExecutionEvent>,
    own: broadcast::Sender<ExecutionEvent>,
}

impl Announcer {
    /// An announcer with a new channel of the run's own beside `all`.
    pub fn new(all: broadcast::Sender<ExecutionEvent>) -> Self {
        let (own, _) = broadcast::channel(CAPACITY);
        Announcer { all, own }
    }

    /// The run's own channel.
    pub fn own(&self) -> &broadcast::Sender<ExecutionEvent> {
        &self.own
    }

    /// True when someone subscribes to either channel (so an event is worth building).
    pub fn is_heard(&self) -> bool {
        self.all.receiver_count() > 0 || self.own.receiver_count() > 0
    }

    pub fn send(&self, event: ExecutionEvent) {
        match (self.all.receiver_count() > 0, self.own.receiver_count() > 0) {
            (true, true) => {
                let _ = self.own.send(event.clone());
                let _ = self.all.send(event);
            }
            (true, false) => {
                let _ = self.all.send(event);
            }
            (false, true) => {
                let _ = self.own.send(event);
            }
            (false, false) => {}
        }
    }
}
