//! Executions (runs of a runbook version), their steps and their console output.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
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
    fn statuses_round_trip_and_know_when_finished() {
        for status in ExecutionStatus::ALL {
            assert_eq!(status.as_str().parse::<ExecutionStatus>().unwrap(), status);
        }
        assert!(ExecutionStatus::Interrupted.is_finished());
        assert!(!ExecutionStatus::Paused.is_finished());
        assert!("done".parse::<ExecutionStatus>().is_err());
    }

    #[test]
    fn step_statuses_round_trip() {
        for status in StepStatus::ALL {
            assert_eq!(status.as_str().parse::<StepStatus>().unwrap(), status);
        }
    }
}
