//! Where a run's events go: the channel all runs share (the desktop app forwards every
//! event to its window) and the run's own, which a client following that one run reads,
//! so a run writing heavily never wakes the followers of another or makes them lag.

use crate::ExecutionEvent;
use tokio::sync::broadcast;

/// Events a subscriber to every run may fall behind by before it lags. Output events
/// carry at most one read (64 KiB), so a subscriber that stops reading holds up to
/// 64 MiB.
pub(crate) const CAPACITY: usize = 1024;
/// The same for a subscriber to one run (16 MiB at most): any viewer may follow runs,
/// so each run's own channel is kept smaller. A follower that lags reads what it
/// missed from the stored console.
pub(crate) const RUN_CAPACITY: usize = 256;

/// Sends one run's events to both channels.
#[derive(Clone)]
pub(crate) struct Announcer {
    all: broadcast::Sender<ExecutionEvent>,
    own: broadcast::Sender<ExecutionEvent>,
}

impl Announcer {
    /// An announcer with a new channel of the run's own beside `all`.
    pub fn new(all: broadcast::Sender<ExecutionEvent>) -> Self {
        let (own, _) = broadcast::channel(RUN_CAPACITY);
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

    /// Sends to both channels, whoever listens: a subscriber that arrives just before
    /// the send still hears it. (Output events are built only when [`Self::is_heard`];
    /// a follower fills any gap in the console from storage by offset.)
    pub fn send(&self, event: ExecutionEvent) {
        let _ = self.own.send(event.clone());
        let _ = self.all.send(event);
    }
}
