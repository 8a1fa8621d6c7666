//! Control of a live run: the state an operator asks for (pause, resume, stop, kill,
//! acknowledge) and the state the run is in, kept under one lock so they cannot disagree.

use runbook_domain::{ControlAction, Execution, ExecutionStatus, StopRequest};
use std::sync::{Mutex, OnceLock};
use tokio::sync::watch;

/// Why a control action was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    /// The run is not live in this engine (finished, or never started here).
    #[error("the execution is not running")]
    NotRunning,
    /// The action does not fit the run's state (e.g. resume while running).
    #[error("cannot {action} an execution that is {status}")]
    InvalidState {
        action: &'static str,
        status: ExecutionStatus,
    },
    /// An acknowledgement of a step the run does not wait at (it waits at another, or
    /// at none): given twice, or for a prompt already answered.
    #[error("{}", not_waiting_at(.acknowledged, .waiting_at.as_deref()))]
    NotWaitingAt {
        acknowledged: String,
        waiting_at: Option<String>,
    },
}

fn not_waiting_at(acknowledged: &str, waiting_at: Option<&str>) -> String {
    match waiting_at {
        Some(current) => format!(
            "the execution waits at step `{current}`, not at `{acknowledged}`; nothing was acknowledged"
        ),
        None => format!(
            "the execution does not wait at step `{acknowledged}` (already acknowledged?); nothing was acknowledged"
        ),
    }
}

/// What the operator has asked for; the run task follows it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Requested {
    pub paused: bool,
    pub stopped: bool,
    /// A stopped run's commands are killed now, whatever is left of their grace period.
    pub killed: bool,
    /// Incremented by every acknowledgement.
    pub acknowledgements: u64,
}

/// The step a run waits at for a person to acknowledge it, as the run shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prompt {
    pub block_id: String,
    /// The step's instructions, rendered and with secrets masked, as in the console.
    pub text: String,
}

/// Shared between the engine's API and one run task.
pub struct RunControl {
    status: Mutex<ExecutionStatus>,
    /// What the run last asked a person to acknowledge; current while it is `waiting`.
    prompt: Mutex<Option<Prompt>>,
    /// Set (under `status`'s lock) when storage says the run has ended already.
    fenced: std::sync::atomic::AtomicBool,
    requested: watch::Sender<Requested>,
    /// True once the run has left the engine, its final state stored (or refused, the
    /// run having ended in storage already).
    ended: watch::Sender<bool>,
    /// The run as it was stored at its end, when everything it recorded was stored.
    stored_end: OnceLock<Execution>,
    /// Who asked for the run to stop, and when: the first stop or kill accepted from a
    /// person (a shutdown's or a fence's is not one).
    stop_request: OnceLock<StopRequest>,
}

impl RunControl {
    pub fn new(status: ExecutionStatus) -> Self {
        RunControl {
            status: Mutex::new(status),
            prompt: Mutex::new(None),
            fenced: std::sync::atomic::AtomicBool::new(false),
            requested: watch::Sender::new(Requested::default()),
            ended: watch::Sender::new(false),
            stored_end: OnceLock::new(),
            stop_request: OnceLock::new(),
        }
    }

    pub fn status(&self) -> ExecutionStatus {
        *self.status.lock().expect("run status lock")
    }

    /// Records the state the run task has moved to, and returns the state in force: a
    /// pause accepted meanwhile holds (the run is `paused`, not `running` or `waiting`,
    /// until it is resumed), so that what an operator was told took effect stays true
    /// and can be resumed.
    pub fn set_status(&self, status: ExecutionStatus) -> ExecutionStatus {
        let mut current = self.status.lock().expect("run status lock");
        let requested = *self.requested.borrow();
        let moving_on = matches!(status, ExecutionStatus::Running | ExecutionStatus::Waiting);
        *current = if moving_on && requested.paused && !requested.stopped {
            ExecutionStatus::Paused
        } else {
            status
        };
        *current
    }

    /// Records what the run is about to ask a person to acknowledge (before it moves
    /// to `waiting`, so that a run seen waiting has its prompt).
    pub fn set_prompt(&self, prompt: Prompt) {
        *self.prompt.lock().expect("run prompt lock") = Some(prompt);
    }

    /// What the run waits for a person to acknowledge: none unless it is `waiting`.
    pub fn prompt(&self) -> Option<Prompt> {
        let prompt = self.prompt.lock().expect("run prompt lock");
        (self.status() == ExecutionStatus::Waiting)
            .then(|| prompt.clone())
            .flatten()
    }

    /// Settles the run's final state: `stopped` when a stop was accepted, `outcome`
    /// otherwise. From then on every action is refused, so none is accepted and then
    /// ignored while the run stores its end.
    pub fn finish(&self, outcome: ExecutionStatus) -> ExecutionStatus {
        let mut status = self.status.lock().expect("run status lock");
        let settled = if self.is_fenced() {
            ExecutionStatus::Interrupted
        } else if self.requested.borrow().stopped {
            ExecutionStatus::Stopped
        } else {
            outcome
        };
        *status = settled;
        settled
    }

    /// Stops a run that storage says has ended already; it will end `interrupted`.
    /// False when the run had settled its end before: nothing changes here then, and
    /// the run learns from its final write being refused.
    pub fn fence(&self) -> bool {
        let status = self.status.lock().expect("run status lock");
        if status.is_finished() || self.is_fenced() {
            return false;
        }
        self.fenced.store(true, std::sync::atomic::Ordering::SeqCst);
        self.requested.send_modify(|r| r.stopped = true);
        true
    }

    /// Cuts the grace period of a run being stopped short: its command's processes are
    /// killed now (a second Ctrl+C, a second quit signal). No effect on a run that is
    /// not being stopped.
    pub fn kill_now(&self) {
        self.requested.send_if_modified(|r| {
            let cut = r.stopped && !r.killed;
            r.killed |= cut;
            cut
        });
    }

    /// True once [`RunControl::fence`] has stopped the run.
    pub fn is_fenced(&self) -> bool {
        self.fenced.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Keeps the run as it was stored at its end, for those waiting for the end:
    /// only when the final state and everything recorded before it were stored.
    pub fn keep_stored_end(&self, execution: Execution) {
        let _ = self.stored_end.set(execution);
    }

    /// Marks the run as ended: it has left the engine.
    pub fn end(&self) {
        self.ended.send_replace(true);
    }

    /// Returns once [`RunControl::end`] has been called, with the run as stored at its
    /// end if [`RunControl::keep_stored_end`] kept it.
    pub async fn ended(&self) -> Option<Execution> {
        let mut ended = self.ended.subscribe();
        // The sender lives as long as `self`, so the wait cannot fail.
        let _ = ended.wait_for(|ended| *ended).await;
        self.stored_end.get().cloned()
    }

    /// Who asked for the run to stop, and when, once a person's stop or kill was accepted.
    pub fn stop_request(&self) -> Option<StopRequest> {
        self.stop_request.get().cloned()
    }

    /// A receiver that sees every request.
    pub fn watch(&self) -> watch::Receiver<Requested> {
        self.requested.subscribe()
    }

    /// Applies an operator's action, returning the state the run moves to.
    #[cfg(test)]
    pub fn apply(&self, action: ControlAction) -> Result<ExecutionStatus, ControlError> {
        self.apply_at(action, None, Some("tester"))
    }

    /// Applies an action of the user `by` (none: the process itself, shutting down);
    /// an acknowledgement that names a step (`step`) is accepted only while the run
    /// waits at that step, so an acknowledgement sent twice (a double click, a retried
    /// request, two operators) cannot confirm the next step unread. Other actions do
    /// not depend on the step. The first stop or kill accepted from a user is kept as
    /// the run's [`StopRequest`].
    pub fn apply_at(
        &self,
        action: ControlAction,
        step: Option<&str>,
        by: Option<&str>,
    ) -> Result<ExecutionStatus, ControlError> {
        // Kept before the run is told, so that it finds who asked once it sees the stop.
        let note_stopper = || {
            if let Some(by) = by {
                // To the microsecond, as every database keeps it.
                let _ = self.stop_request.set(StopRequest {
                    by: by.to_string(),
                    at: chrono::SubsecRound::trunc_subsecs(chrono::Utc::now(), 6),
                });
            }
        };
        let mut status = self.status.lock().expect("run status lock");
        let current = *status;
        let refused = || ControlError::InvalidState {
            action: action.as_str(),
            status: current,
        };
        // A kill stops the run without grace, or cuts short the grace of a stop; a run
        // fenced off (ended in storage) refuses it as it refuses a stop.
        if action == ControlAction::Kill && !current.is_finished() && !self.is_fenced() {
            note_stopper();
            self.requested.send_modify(|r| {
                r.stopped = true;
                r.killed = true;
            });
            // The run reports `stopped` once its processes are gone.
            return Ok(current);
        }
        let requested = *self.requested.borrow();
        if requested.stopped {
            return Err(refused());
        }
        if let (ControlAction::Acknowledge, Some(step)) = (action, step) {
            let prompt = self.prompt.lock().expect("run prompt lock");
            let waiting_at = (current == ExecutionStatus::Waiting)
                .then(|| prompt.as_ref().map(|prompt| prompt.block_id.clone()))
                .flatten();
            if waiting_at.as_deref() != Some(step) {
                return Err(ControlError::NotWaitingAt {
                    acknowledged: step.to_string(),
                    waiting_at,
                });
            }
        }
        let next = match (action, current) {
            (ControlAction::Pause, ExecutionStatus::Running | ExecutionStatus::Queued) => {
                self.requested.send_modify(|r| r.paused = true);
                ExecutionStatus::Paused
            }
            (ControlAction::Resume, ExecutionStatus::Paused) => {
                self.requested.send_modify(|r| r.paused = false);
                ExecutionStatus::Running
            }
            (ControlAction::Acknowledge, ExecutionStatus::Waiting) => {
                self.requested.send_modify(|r| r.acknowledgements += 1);
                ExecutionStatus::Running
            }
            (ControlAction::Stop, s) if !s.is_finished() => {
                note_stopper();
                self.requested.send_modify(|r| r.stopped = true);
                // The run reports `stopped` once its processes are gone.
                current
            }
            _ => return Err(refused()),
        };
        *status = next;
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_finished_run_refuses_every_action_and_a_late_stop_wins() {
        let control = RunControl::new(ExecutionStatus::Running);
        assert_eq!(
            control.finish(ExecutionStatus::Succeeded),
            ExecutionStatus::Succeeded
        );
        for action in ControlAction::ALL {
            assert_eq!(
                control.apply(action),
                Err(ControlError::InvalidState {
                    action: action.as_str(),
                    status: ExecutionStatus::Succeeded
                })
            );
        }

        // A stop accepted before the run settles its end makes it `stopped`.
        let control = RunControl::new(ExecutionStatus::Running);
        assert_eq!(
            control.apply(ControlAction::Stop),
            Ok(ExecutionStatus::Running)
        );
        assert_eq!(
            control.finish(ExecutionStatus::Succeeded),
            ExecutionStatus::Stopped
        );
    }

    #[test]
    fn a_kill_stops_without_grace_and_cuts_a_stop_s_grace_short() {
        // Without a stop before it (here of a paused run): a stop that kills.
        let control = RunControl::new(ExecutionStatus::Paused);
        let requests = control.watch();
        assert_eq!(
            control.apply(ControlAction::Kill),
            Ok(ExecutionStatus::Paused)
        );
        let requested = *requests.borrow();
        assert!(requested.stopped && requested.killed, "{requested:?}");
        assert_eq!(
            control.finish(ExecutionStatus::Succeeded),
            ExecutionStatus::Stopped
        );

        // After a stop, which refuses every other action.
        let control = RunControl::new(ExecutionStatus::Running);
        let requests = control.watch();
        control.apply(ControlAction::Stop).unwrap();
        assert!(!requests.borrow().killed);
        assert!(control.apply(ControlAction::Pause).is_err());
        assert_eq!(
            control.apply(ControlAction::Kill),
            Ok(ExecutionStatus::Running)
        );
        assert!(requests.borrow().killed);
        // Asked twice (two operators, a retried request): still accepted.
        assert!(control.apply(ControlAction::Kill).is_ok());
    }

    #[test]
    fn a_fenced_run_stops_and_ends_interrupted_unless_it_settled_first() {
        let control = RunControl::new(ExecutionStatus::Running);
        assert!(control.fence());
        assert!(control.watch().borrow().stopped, "the run is told to stop");
        assert!(!control.fence(), "fencing twice changes nothing");
        assert!(control.apply(ControlAction::Resume).is_err());
        assert!(
            control.apply(ControlAction::Kill).is_err(),
            "refused as a stop is"
        );
        assert!(!control.watch().borrow().killed);
        assert_eq!(
            control.finish(ExecutionStatus::Succeeded),
            ExecutionStatus::Interrupted
        );

        let control = RunControl::new(ExecutionStatus::Running);
        assert_eq!(
            control.finish(ExecutionStatus::Failed),
            ExecutionStatus::Failed
        );
        assert!(!control.fence(), "a run that settled its end keeps it");
        assert!(!control.watch().borrow().stopped);
    }

    #[test]
    fn an_accepted_pause_holds_over_the_state_the_run_moves_to() {
        // Paused while the run was about to wait for an acknowledgement: it shows as
        // paused, may be resumed, and only then waits.
        let control = RunControl::new(ExecutionStatus::Running);
        assert_eq!(
            control.apply(ControlAction::Pause),
            Ok(ExecutionStatus::Paused)
        );
        assert_eq!(
            control.set_status(ExecutionStatus::Waiting),
            ExecutionStatus::Paused
        );
        assert_eq!(control.status(), ExecutionStatus::Paused);
        assert!(control.apply(ControlAction::Acknowledge).is_err());
        assert_eq!(
            control.apply(ControlAction::Resume),
            Ok(ExecutionStatus::Running)
        );
        assert_eq!(
            control.set_status(ExecutionStatus::Waiting),
            ExecutionStatus::Waiting
        );

        // Paused while queued: the run's start does not undo it.
        let control = RunControl::new(ExecutionStatus::Queued);
        assert_eq!(
            control.apply(ControlAction::Pause),
            Ok(ExecutionStatus::Paused)
        );
        assert_eq!(
            control.set_status(ExecutionStatus::Running),
            ExecutionStatus::Paused
        );
        // A stop overrides the pause: the run reports what it does as it winds down.
        assert!(control.apply(ControlAction::Stop).is_ok());
        assert_eq!(
            control.set_status(ExecutionStatus::Running),
            ExecutionStatus::Running
        );
    }

    #[test]
    fn actions_follow_the_state_machine() {
        let control = RunControl::new(ExecutionStatus::Running);
        assert!(matches!(
            control.apply(ControlAction::Resume),
            Err(ControlError::InvalidState {
                action: "resume",
                ..
            })
        ));
        assert_eq!(
            control.apply(ControlAction::Pause),
            Ok(ExecutionStatus::Paused)
        );
        assert!(control.watch().borrow().paused);
        assert_eq!(
            control.apply(ControlAction::Resume),
            Ok(ExecutionStatus::Running)
        );
        assert!(control.apply(ControlAction::Acknowledge).is_err());
        let prompt = Prompt {
            block_id: "drain".to_string(),
            text: "Drain node-7".to_string(),
        };
        control.set_prompt(prompt.clone());
        assert_eq!(control.prompt(), None, "not waiting yet");
        control.set_status(ExecutionStatus::Waiting);
        assert_eq!(control.prompt(), Some(prompt));
        assert_eq!(
            control.apply_at(ControlAction::Acknowledge, Some("cordon"), Some("tester")),
            Err(ControlError::NotWaitingAt {
                acknowledged: "cordon".to_string(),
                waiting_at: Some("drain".to_string())
            }),
            "an acknowledgement of another step is refused"
        );
        assert_eq!(control.watch().borrow().acknowledgements, 0);
        assert_eq!(
            control.apply_at(ControlAction::Acknowledge, Some("drain"), Some("tester")),
            Ok(ExecutionStatus::Running)
        );
        assert_eq!(control.prompt(), None, "acknowledged: no longer waiting");
        assert_eq!(control.watch().borrow().acknowledgements, 1);
        let again = control.apply_at(ControlAction::Acknowledge, Some("drain"), Some("tester"));
        assert_eq!(
            again,
            Err(ControlError::NotWaitingAt {
                acknowledged: "drain".to_string(),
                waiting_at: None
            }),
            "the same acknowledgement sent twice confirms nothing more"
        );
        assert!(again
            .unwrap_err()
            .to_string()
            .contains("already acknowledged"));
        assert_eq!(control.watch().borrow().acknowledgements, 1);
        assert_eq!(
            control.apply(ControlAction::Stop),
            Ok(ExecutionStatus::Running)
        );
        assert!(control.watch().borrow().stopped);
        assert!(
            control.apply(ControlAction::Stop).is_err(),
            "a second stop is refused"
        );
    }
}
