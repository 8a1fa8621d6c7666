//! `make bench`: measures the engine's per-block overhead against raw process spawns,
//! and `GET /runbooks?limit=50` latency with 10,000 runbooks on SQLite and PostgreSQL.
//! Prints one table; every figure is compared with a baseline measured in the same run.

use anyhow::Context;
use runbook_core::{Actor, Config, ExecutionEvent, Service};
use runbook_domain::{ExecutionStatus, Role};
use runbook_server::{app, AppState};
use serde_json::json;
use std::time::{Duration, Instant};
use tokio::sync::watch;

const BLOCKS: usize = 200;
const RUNBOOKS: usize = 10_000;
const REQUESTS: usize = 200;
const REPEATS: usize = 5;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut rows = Vec::new();

    let dir = tempfile::tempdir()?;
    let service = Service::open(Config::from_data_dir(dir.path())).await?;
    let (raw, engine) = engine_overhead(&service).await?;
    rows.push(Row::new(
        &format!("{BLOCKS} `true` blocks (median of {REPEATS})"),
        "raw `sh -c true` spawns",
        raw,
        engine,
        "≤ 1.25× raw",
    ));
    let per_block = (engine.as_secs_f64() - raw.as_secs_f64()) * 1000.0 / BLOCKS as f64;

    let sqlite = list_latency(&service).await?;
    rows.push(Row::new(
        &format!("GET /runbooks?limit=50, {RUNBOOKS} runbooks, SQLite (median)"),
        "GET /healthz",
        sqlite.0,
        sqlite.1,
        "≤ 5 ms",
    ));

    let base_url = std::env::var("RUNBOOK_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string());
    let database = format!("rbs_bench_{}", uuid::Uuid::new_v4().simple());
    let admin = sqlx::PgPool::connect(&base_url)
        .await
        .context("PostgreSQL is needed for the PostgreSQL figures (RUNBOOK_TEST_POSTGRES_URL)")?;
    sqlx::query(&format!("CREATE DATABASE {database}"))
        .execute(&admin)
        .await?;
    let pg_url = replace_database(&base_url, &database);
    let pg = Service::open(Config {
        database_url: Some(pg_url),
        ..Config::from_data_dir(dir.path().join("pg"))
    })
    .await?;
    let postgres = list_latency(&pg).await;
    drop(pg);
    let _ = sqlx::query(&format!("DROP DATABASE {database} WITH (FORCE)"))
        .execute(&admin)
        .await;
    let postgres = postgres?;
    rows.push(Row::new(
        &format!("GET /runbooks?limit=50, {RUNBOOKS} runbooks, PostgreSQL (median)"),
        "GET /healthz",
        postgres.0,
        postgres.1,
        "≤ 5 ms",
    ));

    print_table(&rows);
    println!(
        "\nengine overhead per block (persistence included): {per_block:.3} ms (target ≤ 0.5 ms)"
    );
    Ok(())
}

struct Row {
    what: String,
    baseline_name: String,
    baseline: Duration,
    measured: Duration,
    target: String,
}

impl Row {
    fn new(
        what: &str,
        baseline_name: &str,
        baseline: Duration,
        measured: Duration,
        target: &str,
    ) -> Row {
        Row {
            what: what.to_string(),
            baseline_name: baseline_name.to_string(),
            baseline,
            measured,
            target: target.to_string(),
        }
    }
}

fn print_table(rows: &[Row]) {
    println!(
        "| {:<58} | {:>11} | {:<24} | {:>11} | {:>6} | {:<12} |",
        "benchmark", "measured", "baseline", "baseline", "ratio", "target"
    );
    println!(
        "|{:-<60}|{:->13}|{:-<26}|{:->13}|{:->8}|{:-<14}|",
        "", "", "", "", "", ""
    );
    for row in rows {
        println!(
            "| {:<58} | {:>8.3} ms | {:<24} | {:>8.3} ms | {:>5.2}× | {:<12} |",
            row.what,
            row.measured.as_secs_f64() * 1000.0,
            row.baseline_name,
            row.baseline.as_secs_f64() * 1000.0,
            row.measured.as_secs_f64() / row.baseline.as_secs_f64(),
            row.target
        );
    }
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// (raw spawns, engine run) for BLOCKS trivial commands, medians of REPEATS.
async fn engine_overhead(service: &Service) -> anyhow::Result<(Duration, Duration)> {
    let actor = Actor::local_admin();
    let blocks: Vec<_> = (0..BLOCKS)
        .map(|i| json!({"id": format!("b{i}"), "kind": "command", "script": "true"}))
        .collect();
    let runbook = service
        .create_runbook(&actor, json!({"name": "bench", "blocks": blocks}))
        .await?;
    let mut raw = Vec::new();
    let mut engine = Vec::new();
    for _ in 0..REPEATS {
        let start = Instant::now();
        for _ in 0..BLOCKS {
            let status = tokio::process::Command::new("sh")
                .arg("-c")
                .arg("true")
                .status()
                .await?;
            anyhow::ensure!(status.success());
        }
        raw.push(start.elapsed());

        let mut events = service.subscribe();
        let start = Instant::now();
        let execution = service.execute(&actor, runbook.id, json!({})).await?;
        loop {
            match events.recv().await? {
                ExecutionEvent::Status {
                    execution_id,
                    status,
                } if execution_id == execution.id && status.is_finished() => {
                    anyhow::ensure!(status == ExecutionStatus::Succeeded, "bench run {status}");
                    break;
                }
                _ => {}
            }
        }
        engine.push(start.elapsed());
    }
    Ok((median(raw), median(engine)))
}

/// (GET /healthz, GET /runbooks?limit=50) medians over a real socket with RUNBOOKS stored.
async fn list_latency(service: &Service) -> anyhow::Result<(Duration, Duration)> {
    let actor = Actor::system();
    for i in 0..RUNBOOKS {
        service
            .create_runbook(
                &actor,
                json!({
                    "name": format!("Runbook {i:05}"),
                    "description": "Restart the service and check its health",
                    "tags": [format!("team-{}", i % 20)],
                    "blocks": [{"id": "a", "kind": "command", "script": "systemctl restart x"}]
                }),
            )
            .await?;
    }
    let key = service
        .create_api_key(&actor, "bench", Role::Viewer)
        .await?
        .token;
    let (_stop, shutdown) = watch::channel(false);
    let router = app(
        AppState {
            service: service.clone(),
            shutdown,
        },
        None,
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let server = tokio::spawn(async move { axum_serve(listener, router).await });
    let client = reqwest::Client::new();
    let time = |path: &'static str| {
        let client = client.clone();
        let base = base.clone();
        let key = key.clone();
        async move {
            let mut samples = Vec::with_capacity(REQUESTS);
            for i in 0..REQUESTS + 10 {
                let start = Instant::now();
                let response = client
                    .get(format!("{base}{path}"))
                    .header("x-api-key", &key)
                    .send()
                    .await?;
                anyhow::ensure!(
                    response.status().is_success(),
                    "{path}: {}",
                    response.status()
                );
                response.bytes().await?;
                if i >= 10 {
                    samples.push(start.elapsed());
                }
            }
            Ok::<_, anyhow::Error>(median(samples))
        }
    };
    let baseline = time("/healthz").await?;
    let list = time("/runbooks?limit=50").await?;
    server.abort();
    Ok((baseline, list))
}

async fn axum_serve(listener: tokio::net::TcpListener, router: axum::Router) {
    let _ = axum::serve(listener, router).await;
}

fn replace_database(url: &str, database: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let base = match base.rfind('/') {
        Some(slash) if slash > base.find("://").map_or(0, |i| i + 2) => &base[..slash],
        _ => base,
    };
    match query {
        Some(query) => format!("{base}/{database}?{query}"),
        None => format!("{base}/{database}"),
    }
}
