//! Persists what the engine reports, through the store. The batch that holds a
//! run's final state also appends `execution.finish` to the audit trail, in the same
//! transaction: a run is never stored as ended without the record of its end.

use crate::audit::finish_event;
use async_trait::async_trait;
use runbook_engine::{ExecutionSink, RunRecord, RunRef, SinkError};
use runbook_store::{Store, StoreError};
use std::sync::Arc;

pub struct StoreSink(pub Arc<dyn Store>);

#[async_trait]
impl ExecutionSink for StoreSink {
    async fn record(&self, run: RunRef<'_>, records: &[RunRecord<'_>]) -> Result<(), SinkError> {
        let finished = records.iter().find_map(|record| match *record {
            RunRecord::Status { status, .. } if status.is_finished() => Some(status),
            _ => None,
        });
        let audit = finished.map(|status| finish_event(run.started_by, run.execution_id, status));
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
                RunRecord::StopRequested(request) => {
                    runbook_store::RunRecord::StopRequested(request)
                }
            })
            .chain(audit.as_ref().map(runbook_store::RunRecord::Audit))
            .collect();
        self.0
            .record_run(run.execution_id, &records)
            .await
            .map_err(|error| match error {
                StoreError::Ended => SinkError::Ended,
                other => SinkError::Failed(other.to_string()),
            })
    }
}
