//! Control latency over the REST API on a real socket: for a run waiting in a
//! `sleep 60` command and one waiting in a 60 s timer, the time from sending
//! `POST /executions/{id}/control` until `GET /executions/{id}` shows the new status,
//! and until it shows the step in that state too (the step's state is only stored once
//! the run itself has acted: signalled the process group, or stopped counting).
//! The baseline is one `GET /executions/{id}` of the same live run. Then the same for
//! requests sent to another instance on the same database (SQLite, then PostgreSQL),
//! which relays them to the instance executing the run through the database.

use crate::listing::ScratchDatabase;
use crate::server::Server;
use crate::table::{median, ms, percentile, Row};
use runbook_core::{Actor, Config, Service};
use runbook_domain::Role;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// Runs per kind of block; each is paused, resumed and stopped once.
const RUNS: usize = 20;
const TARGET_MS: f64 = 50.0;
/// Pause between two polls of the run, so polling does not starve the server.
const POLL: Duration = Duration::from_millis(1);
/// Longest wait for any state before the bench gives up.
const GIVE_UP: Duration = Duration::from_secs(20);

/// An operator request, the status it leads to and the state of the step then.
struct Action {
    name: &'static str,
    status: &'static str,
    step: &'static str,
}

const ACTIONS: [Action; 3] = [
    Action {
        name: "pause",
        status: "paused",
        step: "paused",
    },
    Action {
        name: "resume",
        status: "running",
        step: "running",
    },
    Action {
        name: "stop",
        status: "stopped",
        step: "stopped",
    },
];

pub async fn run() -> anyhow::Result<Vec<Row>> {
    let dir = tempfile::tempdir()?;
    let service = Service::open(Config::from_data_dir(dir.path())).await?;
    let server = Server::start(&service, Role::Operator).await?;
    let mut rows = Vec::new();
    for (what, block) in [
        ("`sleep 60` command", command_block()),
        (
            "60 s timer",
            json!({"id": "wait", "kind": "timer", "seconds": 60}),
        ),
    ] {
        rows.extend(measure(&service, &server, &server, what, block, true).await?);
    }

    // The run executes in one instance, the requests go to another on the same database,
    // which relays them through it: the figures a team behind a load balancer sees.
    let other = Service::open(Config::from_data_dir(dir.path())).await?;
    let other_server = Server::start(&other, Role::Operator).await?;
    let what = "`sleep 60` command, via another instance, SQLite";
    rows.extend(
        measure(
            &service,
            &server,
            &other_server,
            what,
            command_block(),
            false,
        )
        .await?,
    );
    drop((server, other_server, service, other));

    let database = ScratchDatabase::create().await?;
    let relayed = async {
        let config = || database.config(&dir.path().join("pg"));
        let (executor, requester) = (
            Service::open(config()).await?,
            Service::open(config()).await?,
        );
        let (executor_server, requester_server) = (
            Server::start(&executor, Role::Operator).await?,
            Server::start(&requester, Role::Operator).await?,
        );
        let what = "`sleep 60` command, via another instance, PostgreSQL";
        measure(
            &executor,
            &executor_server,
            &requester_server,
            what,
            command_block(),
            false,
        )
        .await
    }
    .await;
    database.drop().await;
    rows.extend(relayed?);
    Ok(rows)
}

fn command_block() -> Value {
    json!({"id": "wait", "kind": "command", "script": "sleep 60"})
}

/// Starts RUNS runs of `block` through `executor` and pauses, resumes and stops each
/// through `requester` (the same server, or another instance on the same database),
/// timing until `requester` shows each new state; with `steps`, also until it shows
/// the step in that state.
async fn measure(
    service: &Service,
    executor: &Server,
    requester: &Server,
    what: &str,
    block: Value,
    steps: bool,
) -> anyhow::Result<Vec<Row>> {
    let runbook = service
        .create_runbook(
            &Actor::system(),
            json!({"name": format!("control {what}"), "blocks": [block]}),
        )
        .await?;
    let mut reads = Vec::new();
    let mut shown: [Vec<Duration>; 3] = Default::default();
    let mut stored: [Vec<Duration>; 3] = Default::default();
    for _ in 0..RUNS {
        let execution = executor
            .post(&format!("/runbooks/{}/execute", runbook.id), &json!({}))
            .await?;
        let id = execution["id"]
            .as_str()
            .ok_or_else(|| anyhow::anyhow!("execute answered without an id"))?
            .to_string();
        let path = format!("/executions/{id}");
        wait_for(requester, &path, |run| step_status(run) == Some("running")).await?;
        let start = Instant::now();
        requester.get(&path).await?;
        reads.push(start.elapsed());
        for (i, action) in ACTIONS.iter().enumerate() {
            let (status, step) = control(requester, &id, action).await?;
            shown[i].push(status);
            stored[i].push(step);
        }
    }
    let mut rows = Vec::new();
    for (i, action) in ACTIONS.iter().enumerate() {
        rows.push(row(
            format!("{} → `{}` shown, {what}", action.name, action.status),
            &shown[i],
            &reads,
        ));
        // A stopped run shows `stopped` only once stored: the same figure again.
        if steps && action.name != "stop" {
            rows.push(row(
                format!("{} → step `{}` stored, {what}", action.name, action.step),
                &stored[i],
                &reads,
            ));
        }
    }
    Ok(rows)
}

fn row(benchmark: String, samples: &[Duration], reads: &[Duration]) -> Row {
    let (median_ms, p95) = (median(samples), percentile(samples, 95));
    Row {
        benchmark: format!("{benchmark} (median / p95 of {RUNS})"),
        measured: format!("{} / {}", ms(median_ms), ms(p95)),
        baseline_name: "GET /executions/{id}".to_string(),
        baseline: format!("{} / {}", ms(median(reads)), ms(percentile(reads, 95))),
        ratio: median_ms.as_secs_f64() / median(reads).as_secs_f64(),
        target: format!("p95 ≤ {TARGET_MS} ms"),
        met: p95.as_secs_f64() * 1000.0 <= TARGET_MS,
    }
}

/// Sends `action` and returns the times until the run shows its status, and until it
/// shows its step in the matching state as well.
async fn control(
    server: &Server,
    id: &str,
    action: &Action,
) -> anyhow::Result<(Duration, Duration)> {
    let path = format!("/executions/{id}");
    let start = Instant::now();
    server
        .post(&format!("{path}/control"), &json!({"action": action.name}))
        .await?;
    let mut shown = None;
    wait_for(server, &path, |run| {
        if run["status"] != action.status {
            return false;
        }
        shown.get_or_insert_with(|| start.elapsed());
        step_status(run) == Some(action.step)
    })
    .await?;
    let stored = start.elapsed();
    Ok((shown.unwrap_or(stored), stored))
}

fn step_status(run: &Value) -> Option<&str> {
    run["steps"][0]["status"].as_str()
}

/// Polls `path` until `done` holds for the run it shows.
async fn wait_for(
    server: &Server,
    path: &str,
    mut done: impl FnMut(&Value) -> bool,
) -> anyhow::Result<()> {
    let start = Instant::now();
    loop {
        let run = server.get(path).await?;
        if done(&run) {
            return Ok(());
        }
        anyhow::ensure!(
            start.elapsed() < GIVE_UP,
            "{path} never reached the state awaited; last: {run}"
        );
        tokio::time::sleep(POLL).await;
    }
}
