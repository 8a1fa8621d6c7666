//! The test harness shared by the engine's test files: an in-memory sink standing in
//! for the store, run builders, and /proc inspection of processes.
#![allow(dead_code)]

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use runbook_domain::{
    Block, ControlAction, Execution, ExecutionStatus, Runbook, RunbookDraft, StepResult,
    StepStatus, StopRequest,
};
use runbook_engine::{
    ControlError, CredentialResolver, Engine, EngineConfig, ExecutionEvent, ExecutionSink,
    NoCredentials, RunRecord, RunRef, SinkError,
};
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::broadcast::error::RecvError;
use uuid::Uuid;

/// Longest any wait in these tests may take before it counts as a hang.
pub const PATIENCE: Duration = Duration::from_secs(30);

// ---- the recording sink ----

/// Everything the engine handed to the sink, in order.
#[derive(Debug, Clone, Default)]
pub struct Record {
    pub statuses: Vec<ExecutionStatus>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// The latest state of each step, by index.
    pub steps: Vec<Option<StepResult>>,
    /// Every step state as recorded, in order.
    pub step_history: Vec<(usize, StepStatus)>,
    pub output: Vec<u8>,
    pub output_calls: usize,
    /// Every stop request recorded, in order.
    pub stop_requests: Vec<StopRequest>,
    /// Contract violations seen by the sink (wrong execution, gaps in output offsets).
    pub problems: Vec<String>,
}

impl Record {
    pub fn status(&self) -> Option<ExecutionStatus> {
        self.statuses.last().copied()
    }

    pub fn is_finished(&self) -> bool {
        self.status().is_some_and(ExecutionStatus::is_finished)
    }

    pub fn step(&self, index: usize) -> &StepResult {
        self.steps
            .get(index)
            .and_then(Option::as_ref)
            .unwrap_or_else(|| panic!("step {index} was never recorded; {self:#?}"))
    }

    pub fn step_status(&self, index: usize) -> Option<StepStatus> {
        self.steps
            .get(index)
            .and_then(Option::as_ref)
            .map(|s| s.status)
    }

    pub fn text(&self) -> String {
        String::from_utf8(self.output.clone()).expect("the console is UTF-8")
    }

    /// The statuses a step went through, consecutive repeats collapsed.
    pub fn step_statuses(&self, index: usize) -> Vec<StepStatus> {
        let mut seen: Vec<StepStatus> = Vec::new();
        for (i, status) in &self.step_history {
            if *i == index && seen.last() != Some(status) {
                seen.push(*status);
            }
        }
        seen
    }

    /// The run statuses, consecutive repeats collapsed.
    pub fn run_statuses(&self) -> Vec<ExecutionStatus> {
        let mut seen: Vec<ExecutionStatus> = Vec::new();
        for status in &self.statuses {
            if seen.last() != Some(status) {
                seen.push(*status);
            }
        }
        seen
    }
}

pub struct MemorySink {
    pub execution_id: Uuid,
    pub record: Mutex<Record>,
    /// What storage refuses, as a store does once another instance marked the run
    /// interrupted: nothing yet, every batch, or batches with the run's final state.
    pub refuse: Mutex<Refuse>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Refuse {
    #[default]
    Nothing,
    Everything,
    TheEnd,
}

impl MemorySink {
    pub fn check_id(&self, record: &mut Record, id: Uuid) {
        if id != self.execution_id {
            record
                .problems
                .push(format!("call for unknown execution {id}"));
        }
    }
}

#[async_trait]
impl ExecutionSink for MemorySink {
    async fn record(&self, run: RunRef<'_>, records: &[RunRecord<'_>]) -> Result<(), SinkError> {
        let ends = records.iter().any(
            |change| matches!(change, RunRecord::Status { status, .. } if status.is_finished()),
        );
        match *self.refuse.lock().unwrap() {
            Refuse::Everything => return Err(SinkError::Ended),
            Refuse::TheEnd if ends => return Err(SinkError::Ended),
            _ => {}
        }
        let mut record = self.record.lock().unwrap();
        self.check_id(&mut record, run.execution_id);
        for change in records {
            match *change {
                RunRecord::Status {
                    status,
                    started_at,
                    finished_at,
                } => {
                    record.statuses.push(status);
                    record.started_at = started_at.or(record.started_at);
                    record.finished_at = finished_at.or(record.finished_at);
                }
                RunRecord::Step { index, step } => {
                    if record.steps.len() <= index {
                        record.steps.resize(index + 1, None);
                    }
                    record.steps[index] = Some(step.clone());
                    record.step_history.push((index, step.status));
                }
                RunRecord::Output { offset, data } => {
                    if offset != record.output.len() as u64 {
                        let problem = format!(
                            "output batch at offset {offset}, but {} bytes were persisted",
                            record.output.len()
                        );
                        record.problems.push(problem);
                    }
                    if data.is_empty() {
                        record.problems.push("an empty output batch".to_string());
                    }
                    record.output.extend_from_slice(data);
                    record.output_calls += 1;
                }
                RunRecord::StopRequested(request) => {
                    if record.is_finished() {
                        record
                            .problems
                            .push("a stop request recorded after the run's end".to_string());
                    }
                    record.stop_requests.push(request.clone());
                }
            }
        }
        Ok(())
    }
}

// ---- building runs ----

pub fn block(value: serde_json::Value) -> Block {
    serde_json::from_value(value).expect("a well-formed block")
}

pub fn command(id: &str, script: &str) -> Block {
    block(json!({"id": id, "kind": "command", "script": script}))
}

/// Events of one run, collected in the background (lagged events are counted, not lost silently).
#[derive(Default)]
pub struct Events {
    pub items: Vec<ExecutionEvent>,
    pub lagged: u64,
}

pub struct Harness {
    pub engine: Engine,
    pub sink: Arc<MemorySink>,
    pub events: Arc<Mutex<Events>>,
    pub execution_id: Uuid,
    pub started: Instant,
}

pub fn quick_config() -> EngineConfig {
    EngineConfig {
        stop_grace: Duration::from_secs(1),
        ..EngineConfig::default()
    }
}

impl Harness {
    pub fn start(blocks: Vec<Block>) -> Harness {
        Harness::start_with(quick_config(), blocks)
    }

    pub fn start_with(config: EngineConfig, blocks: Vec<Block>) -> Harness {
        Harness::start_full(
            config,
            blocks,
            serde_json::Map::new(),
            Arc::new(NoCredentials),
            |_| {},
        )
    }

    /// Starts a run with parameters, credentials, and a last say on the queued execution.
    pub fn start_full(
        config: EngineConfig,
        blocks: Vec<Block>,
        params: serde_json::Map<String, serde_json::Value>,
        credentials: Arc<dyn CredentialResolver>,
        prepare: impl FnOnce(&mut Execution),
    ) -> Harness {
        let now = Utc::now();
        let runbook = Runbook {
            id: Uuid::new_v4(),
            draft: RunbookDraft {
                name: "engine test".to_string(),
                description: String::new(),
                tags: Vec::new(),
                params: Vec::new(),
                blocks,
            },
            version: 1,
            created_at: now,
            updated_at: now,
            updated_by: "tester".to_string(),
        };
        let mut execution = Execution::queued(Uuid::new_v4(), &runbook, params, "tester", now);
        prepare(&mut execution);
        let sink = Arc::new(MemorySink {
            execution_id: execution.id,
            record: Mutex::new(Record::default()),
            refuse: Mutex::new(Refuse::Nothing),
        });
        let engine = Engine::new(config, sink.clone(), credentials);
        let events = Arc::new(Mutex::new(Events::default()));
        let mut receiver = engine.subscribe();
        let collected = events.clone();
        let execution_id = execution.id;
        tokio::spawn(async move {
            loop {
                match receiver.recv().await {
                    Ok(event) if event.execution_id() == execution_id => {
                        collected.lock().unwrap().items.push(event)
                    }
                    Ok(_) => {}
                    Err(RecvError::Lagged(missed)) => collected.lock().unwrap().lagged += missed,
                    Err(RecvError::Closed) => break,
                }
            }
        });
        engine.start(execution, runbook);
        Harness {
            engine,
            sink,
            events,
            execution_id,
            started: Instant::now(),
        }
    }

    pub fn record(&self) -> Record {
        self.sink.record.lock().unwrap().clone()
    }

    /// From now on, storage refuses what `refuse` names, as ended.
    pub fn refuse(&self, refuse: Refuse) {
        *self.sink.refuse.lock().unwrap() = refuse;
    }

    /// Waits for the run's final status event and for it to leave the engine; returns
    /// the announced status.
    pub async fn announced_end(&self) -> ExecutionStatus {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let last = self
                .events
                .lock()
                .unwrap()
                .items
                .iter()
                .find_map(|e| match e {
                    ExecutionEvent::Status { status, .. } if status.is_finished() => Some(*status),
                    _ => None,
                });
            if let Some(status) = last {
                if self.engine.live_status(self.execution_id).is_none() {
                    return status;
                }
            }
            assert!(Instant::now() < deadline, "the run never ended");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub fn control(&self, action: ControlAction) -> Result<ExecutionStatus, ControlError> {
        self.engine.control(self.execution_id, action, "tester")
    }

    /// Waits until `done` holds for what the sink recorded.
    pub async fn wait_for(&self, what: &str, done: impl Fn(&Record) -> bool) -> Record {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let record = self.record();
            if done(&record) {
                return record;
            }
            assert!(
                Instant::now() < deadline,
                "gave up waiting for {what}; recorded so far: {record:#?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits for the run to end (persisted and announced) and checks the sink's contract.
    pub async fn finish(&self) -> Record {
        let record = self
            .wait_for("the run to finish", Record::is_finished)
            .await;
        let deadline = Instant::now() + PATIENCE;
        while !self
            .events
            .lock()
            .unwrap()
            .items
            .iter()
            .any(|e| matches!(e, ExecutionEvent::Status { status, .. } if status.is_finished()))
        {
            assert!(Instant::now() < deadline, "no final status event");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(record.problems.is_empty(), "{:?}", record.problems);
        assert!(
            record.started_at.is_some() && record.finished_at.is_some(),
            "start and finish times are recorded"
        );
        // The run task leaves the engine's registry just after announcing its end.
        let deadline = Instant::now() + Duration::from_secs(2);
        while self.engine.live_status(self.execution_id).is_some() {
            assert!(
                Instant::now() < deadline,
                "a finished run is no longer live"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        record
    }

    pub fn events(&self) -> Vec<ExecutionEvent> {
        self.events.lock().unwrap().items.clone()
    }
}

// ---- processes ----

/// A number no other test run uses, to put in a command line and find it in /proc.
pub fn marker(whole_seconds: u32) -> String {
    format!(
        "{whole_seconds}.{:06}",
        Uuid::new_v4().as_u128() % 1_000_000
    )
}

/// The ids of every process, from /proc.
fn pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .expect("/proc is readable")
        .flatten()
        .filter_map(|entry| entry.file_name().to_string_lossy().parse().ok())
        .collect()
}

/// Live (not zombie) processes whose command line contains `marker`, with their state letter.
pub fn processes_with(marker: &str) -> Vec<(u32, char)> {
    let mut found = Vec::new();
    for pid in pids() {
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        if !String::from_utf8_lossy(&cmdline).contains(marker) {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // The state follows the parenthesised command name, which may itself hold spaces.
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next())
            .unwrap_or('?');
        if !matches!(state, 'Z' | 'X') {
            found.push((pid, state));
        }
    }
    found
}

pub async fn wait_for_processes(marker: &str, what: &str, done: impl Fn(&[(u32, char)]) -> bool) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let found = processes_with(marker);
        if done(&found) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "gave up waiting for {what}; processes with `{marker}`: {found:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub async fn wait_until_gone(marker: &str) {
    wait_for_processes(marker, "every process to be gone", |found| found.is_empty()).await;
}

/// Live processes whose environment marks them as belonging to run `execution_id`.
pub fn processes_of_run(execution_id: Uuid) -> Vec<u32> {
    let mark = format!("{}={execution_id}", runbook_engine::EXECUTION_ID_VAR);
    let mut found = Vec::new();
    for pid in pids() {
        // A zombie's environment reads as empty, so only live processes match.
        let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        if environ.split(|b| *b == 0).any(|var| var == mark.as_bytes()) {
            found.push(pid);
        }
    }
    found
}
