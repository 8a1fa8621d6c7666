//! Executions (runs of a runbook version), their steps and their console output.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

/// The state of a whole run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExecutionStatus {
    Queued,
    Running,
    Paused,
    Waiting,
    Succeeded,
    Failed,
    Stopped,
    Interrupted,
}

impl ExecutionStatus {
    /// All statuses, in lifecycle order.
    pub const ALL: [ExecutionStatus; 8] = [
        ExecutionStatus::Queued,
        ExecutionStatus::Running,
        ExecutionStatus::Paused,
        ExecutionStatus::Waiting,
        ExecutionStatus::Succeeded,
        ExecutionStatus::Failed,
        ExecutionStatus::Stopped,
        ExecutionStatus::Interrupted,
    ];

    /// The stable lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            ExecutionStatus::Queued => "queued",
            ExecutionStatus::Running => "running",
            ExecutionStatus::Paused => "paused",
            ExecutionStatus::Waiting => "waiting",
            ExecutionStatus::Succeeded => "succeeded",
            ExecutionStatus::Failed => "failed",
            ExecutionStatus::Stopped => "stopped",
            ExecutionStatus::Interrupted => "interrupted",
        }
    }

    /// True once the run can no longer change.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            ExecutionStatus::Succeeded
                | ExecutionStatus::Failed
                | ExecutionStatus::Stopped
                | ExecutionStatus::Interrupted
        )
    }
}

impl fmt::Display for ExecutionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error for a status name that does not exist.
#[derive(Debug, thiserror::Error)]
#[error("unknown status `{0}`")]
pub struct UnknownStatus(pub String);

impl FromStr for ExecutionStatus {
    type Err = UnknownStatus;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ExecutionStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_string()))
    }
}

/// The state of one step (one block) of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Pending,
    Running,
    Paused,
    Waiting,
    Succeeded,
    Failed,
    Skipped,
    Stopped,
}

impl StepStatus {
    const ALL: [StepStatus; 8] = [
        StepStatus::Pending,
        StepStatus::Running,
        StepStatus::Paused,
        StepStatus::Waiting,
        StepStatus::Succeeded,
        StepStatus::Failed,
        StepStatus::Skipped,
        StepStatus::Stopped,
    ];

    /// The stable lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Pending => "pending",
            StepStatus::Running => "running",
            StepStatus::Paused => "paused",
            StepStatus::Waiting => "waiting",
            StepStatus::Succeeded => "succeeded",
            StepStatus::Failed => "failed",
            StepStatus::Skipped => "skipped",
            StepStatus::Stopped => "stopped",
        }
    }
}

impl FromStr for StepStatus {
    type Err = UnknownStatus;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        StepStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_string()))
    }
}

/// The recorded result of one step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepResult {
    pub block_id: String,
    pub status: StepStatus,
    pub exit_code: Option<i32>,
    pub http_status: Option<u16>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub output_bytes: u64,
    /// Why the step failed, in a sentence; absent on success.
    #[serde(default)]
    pub error: Option<String>,
    /// What the step produced for later steps (outputs, captured streams, response).
    #[serde(flatten)]
    pub detail: StepDetail,
}

/// Most bytes of a step's stdout or stderr kept for later steps (the tail); the
/// console keeps everything.
pub const MAX_CAPTURED_STREAM: usize = 64 * 1024;
/// Most bytes of an HTTP response body kept; its full size is noted.
pub const MAX_CAPTURED_BODY: usize = 1024 * 1024;

/// The parts of a step's result that later steps can use, stored with the step.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StepDetail {
    /// Named values the step published (`KEY=VALUE` lines in `$RUNBOOK_OUTPUT`).
    #[serde(default)]
    pub outputs: BTreeMap<String, String>,
    /// The last [`MAX_CAPTURED_STREAM`] bytes of a command's stdout, secrets masked.
    #[serde(default)]
    pub stdout: String,
    /// The last [`MAX_CAPTURED_STREAM`] bytes of a command's stderr, secrets masked.
    #[serde(default)]
    pub stderr: String,
    /// An api_call's response.
    #[serde(default)]
    pub response: Option<HttpResponse>,
    /// The branch a conditional took.
    #[serde(default)]
    pub branch: Option<Branch>,
    /// True when the result was carried over from the run this one retries.
    #[serde(default)]
    pub reused: bool,
    /// A timer's time left, stored as it starts, pauses and resumes: a view of a run
    /// another process executes counts down from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timer: Option<TimerProgress>,
}

/// A timer's time left as of `at`: while it runs, less by the time since; while it is
/// paused, as it is.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TimerProgress {
    /// The timer's whole time.
    pub total_ms: u64,
    /// Its time left at `at`.
    pub remaining_ms: u64,
    pub at: DateTime<Utc>,
}

impl TimerProgress {
    /// The time left at `now` for a timer that is running (`paused` false) or paused:
    /// never more than at `at`, nor less than none.
    pub fn remaining_at(&self, now: DateTime<Utc>, paused: bool) -> u64 {
        if paused {
            return self.remaining_ms;
        }
        let elapsed = (now - self.at).num_milliseconds().max(0) as u64;
        self.remaining_ms.saturating_sub(elapsed)
    }
}

/// A captured HTTP response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: BTreeMap<String, String>,
    /// The body as text, at most [`MAX_CAPTURED_BODY`] bytes of it, secrets masked.
    pub body: String,
    /// The body's full size in bytes.
    pub body_bytes: u64,
    /// True when `body` holds only the beginning of the body.
    pub truncated: bool,
}

/// Which list of blocks a conditional ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Branch {
    Then,
    Else,
}

impl StepResult {
    /// A step that has not started yet.
    pub fn pending(block_id: impl Into<String>) -> Self {
        StepResult {
            block_id: block_id.into(),
            status: StepStatus::Pending,
            exit_code: None,
            http_status: None,
            started_at: None,
            finished_at: None,
            output_bytes: 0,
            error: None,
            detail: StepDetail::default(),
        }
    }
}

/// One run of one runbook version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Execution {
    pub id: Uuid,
    pub runbook_id: Uuid,
    pub runbook_version: i64,
    pub runbook_name: String,
    pub status: ExecutionStatus,
    pub params: serde_json::Map<String, serde_json::Value>,
    pub started_by: String,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub steps: Vec<StepResult>,
    /// The run this one retries, if any.
    #[serde(default)]
    pub retry_of: Option<Uuid>,
    /// The block this run (a retry) started from; the steps before it were reused.
    #[serde(default)]
    pub retry_from: Option<String>,
    /// Who asked for the run to stop, and when: set once a stop (or a kill) is accepted,
    /// so that every view shows a run being stopped as such while its commands get their
    /// grace period, whoever asked and from wherever.
    #[serde(default)]
    pub stop_requested: Option<StopRequest>,
}

/// A stop accepted by the process executing a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StopRequest {
    /// The user who asked for it.
    pub by: String,
    pub at: DateTime<Utc>,
}

impl Execution {
    /// A new run of `runbook` at its version, queued, with one pending step per block
    /// (nested ones included, in document order).
    pub fn queued(
        id: Uuid,
        runbook: &crate::Runbook,
        params: serde_json::Map<String, serde_json::Value>,
        started_by: impl Into<String>,
        created_at: DateTime<Utc>,
    ) -> Execution {
        Execution {
            id,
            runbook_id: runbook.id,
            runbook_version: runbook.version,
            runbook_name: runbook.draft.name.clone(),
            status: ExecutionStatus::Queued,
            params,
            started_by: started_by.into(),
            created_at,
            started_at: None,
            finished_at: None,
            retry_of: None,
            retry_from: None,
            stop_requested: None,
            steps: runbook
                .all_blocks()
                .into_iter()
                .map(|block| StepResult::pending(block.id()))
                .collect(),
        }
    }
}

/// A control request on a running execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ControlAction {
    Pause,
    Resume,
    Stop,
    Acknowledge,
    /// A stop that does not wait: the running command's processes get SIGKILL at once,
    /// also when a stop is already waiting out their grace period.
    Kill,
}

impl ControlAction {
    pub const ALL: [ControlAction; 5] = [
        ControlAction::Pause,
        ControlAction::Resume,
        ControlAction::Stop,
        ControlAction::Acknowledge,
        ControlAction::Kill,
    ];

    /// The action's name as the API writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            ControlAction::Pause => "pause",
            ControlAction::Resume => "resume",
            ControlAction::Stop => "stop",
            ControlAction::Acknowledge => "acknowledge",
            ControlAction::Kill => "kill",
        }
    }

    /// The action's name in the audit trail.
    pub fn audit_name(self) -> &'static str {
        match self {
            ControlAction::Pause => "execution.pause",
            ControlAction::Resume => "execution.resume",
            ControlAction::Stop => "execution.stop",
            ControlAction::Acknowledge => "execution.acknowledge",
            ControlAction::Kill => "execution.kill",
        }
    }
}

/// Error for a control action name that does not exist.
#[derive(Debug, thiserror::Error)]
#[error("unknown action `{0}` (pause, resume, stop, kill or acknowledge)")]
pub struct UnknownAction(pub String);

impl FromStr for ControlAction {
    type Err = UnknownAction;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ControlAction::ALL
            .into_iter()
            .find(|action| action.as_str() == s)
            .ok_or_else(|| UnknownAction(s.to_string()))
    }
}

/// A page of an execution's console.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputPage {
    pub offset: u64,
    pub next_offset: u64,
    /// True when the run has finished and no output lies beyond `next_offset`.
    pub complete: bool,
    pub text: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timers_time_left_runs_down_from_when_it_was_stored_unless_paused() {
        let at = Utc::now();
        let progress = TimerProgress {
            total_ms: 30_000,
            remaining_ms: 12_000,
            at,
        };
        let later = |ms| at + chrono::Duration::milliseconds(ms);
        assert_eq!(progress.remaining_at(later(2_500), false), 9_500);
        assert_eq!(progress.remaining_at(later(2_500), true), 12_000);
        // Never below none, nor above what was stored (a clock behind the runner's).
        assert_eq!(progress.remaining_at(later(60_000), false), 0);
        assert_eq!(progress.remaining_at(later(-5_000), false), 12_000);
        // Stored only when set: steps of other kinds keep their JSON.
        let json = serde_json::to_value(StepDetail::default()).unwrap();
        assert!(json.get("timer").is_none(), "{json}");
    }

    #[test]
    fn statuses_round_trip_and_know_when_finished() {
        for status in ExecutionStatus::ALL {
            assert_eq!(status.as_str().parse::<ExecutionStatus>().unwrap(), status);
        }
        assert!(ExecutionStatus::Interrupted.is_finished());
        assert!(!ExecutionStatus::Paused.is_finished());
        assert!("done".parse::<ExecutionStatus>().is_err());
    }

    #[test]
    fn control_actions_round_trip_as_the_api_writes_them() {
        for action in ControlAction::ALL {
            assert_eq!(action.as_str().parse::<ControlAction>().unwrap(), action);
            assert_eq!(
                serde_json::to_value(action).unwrap(),
                serde_json::json!(action.as_str())
            );
        }
        assert!("Pause".parse::<ControlAction>().is_err());
    }

    #[test]
    fn step_statuses_round_trip() {
        for status in StepStatus::ALL {
            assert_eq!(status.as_str().parse::<StepStatus>().unwrap(), status);
        }
    }
}
