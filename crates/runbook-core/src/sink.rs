//! Persists what the engine reports, through the store, and records the end of
//! every run in the audit trail.

use crate::audit::execution_finished;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use runbook_domain::{ExecutionStatus, StepResult};
use runbook_engine::{ExecutionSink, RunRecord};
use runbook_store::Store;
use std::sync::Arc;
use uuid::Uuid;

pub struct StoreSink(pub Arc<dyn Store>);

impl StoreSink {
    /// Appends `execution.finish` once a run's final state is stored.
    async fn audit_finish(&self, execution_id: Uuid, status: ExecutionStatus) {
        if !status.is_finished() {
            return;
        }
        let actor = match self.0.execution_started_by(execution_id).await {
            Ok(Some(started_by)) => started_by,
            _ => "unknown".to_string(),
        };
        execution_finished(self.0.as_ref(), &actor, execution_id, status).await;
    }
}

#[async_trait]
impl ExecutionSink for StoreSink {
    async fn status(
        &self,
        execution_id: Uuid,
        status: ExecutionStatus,
        started_at: Option<DateTime<Utc>>,
        finished_at: Option<DateTime<Utc>>,
    ) -> Result<(), String> {
        self.0
            .update_execution_status(execution_id, status, started_at, finished_at)
            .await
            .map_err(|e| e.to_string())?;
        self.audit_finish(execution_id, status).await;
        Ok(())
    }

    async fn step(
        &self,
        execution_id: Uuid,
        index: usize,
        step: &StepResult,
    ) -> Result<(), String> {
        self.0
            .update_step(execution_id, index, step)
            .await
            .map_err(|e| e.to_string())
    }

    async fn record(&self, execution_id: Uuid, records: &[RunRecord<'_>]) -> Result<(), String> {
        let finished = records.iter().find_map(|record| match *record {
            RunRecord::Status { status, .. } if status.is_finished() => Some(status),
            _ => None,
        });
        let records: Vec<runbook_store::RunRecord<'_>> = records
            .iter()
            .map(|record| match *record {
                RunRecord::Status {
                    status,
                    started_at,
                    finished_at,
                } => runbook_store::RunRecord::Status {
                    status,
                    started_at,
                    finished_at,
                },
                RunRecord::Step { index, step } => runbook_store::RunRecord::Step { index, step },
                RunRecord::Output { offset, data } => {
                    runbook_store::RunRecord::Output { offset, data }
                }
            })
            .collect();
        self.0
            .record_run(execution_id, &records)
            .await
            .map_err(|e| e.to_string())?;
        if let Some(status) = finished {
            self.audit_finish(execution_id, status).await;
        }
        Ok(())
    }

    async fn output(&self, execution_id: Uuid, offset: u64, data: &[u8]) -> Result<(), String> {
        self.0
            .append_output(execution_id, offset, data)
            .await
            .map_err(|e| e.to_string())
    }
}
