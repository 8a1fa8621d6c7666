//! Persists what the engine reports, through the store.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use runbook_domain::{ExecutionStatus, StepResult};
use runbook_engine::{ExecutionSink, RunRecord};
use runbook_store::Store;
use std::sync::Arc;
use uuid::Uuid;

pub struct StoreSink(pub Arc<dyn Store>);

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
            .map_err(|e| e.to_string())
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
            .map_err(|e| e.to_string())
    }

    async fn output(&self, execution_id: Uuid, offset: u64, data: &[u8]) -> Result<(), String> {
        self.0
            .append_output(execution_id, offset, data)
            .await
            .map_err(|e| e.to_string())
    }
}
