//! `make bench`: the engine's per-block overhead against raw process spawns, output
//! throughput and peak memory against a raw pipe, control latency over REST, and
//! `GET /runbooks?limit=50` latency with 10,000 runbooks on SQLite and PostgreSQL.
//! Prints one table; every figure is compared with a baseline measured in the same run.
//!
//! `RUNBOOK_BENCH_ONLY=blocks,output,control,list` picks some of the benchmarks;
//! `RUNBOOK_BENCH_OUTPUT_BYTES` shrinks the 1 GB console of the output benchmark.
//! MB means 10^6 bytes throughout.

mod blocks;
mod control;
mod listing;
mod output;
mod server;
mod table;

use std::future::Future;

const BENCHMARKS: [&str; 4] = ["blocks", "output", "control", "list"];

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        // On a worker of the runtime, like the service's own tasks: from the thread
        // that drives `block_on`, every event and every exit would be one more
        // wake-up of another thread, for the engine and the baselines alike.
        None => runtime()?.block_on(async { tokio::spawn(run_all()).await? }),
        Some(output::PROBE) => output::probe(&args[1..]),
        Some(output::WORKER) => runtime()?.block_on(output::worker(&args[1..])),
        Some(other) => anyhow::bail!("unknown argument `{other}`: the bench takes none"),
    }
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}

async fn run_all() -> anyhow::Result<()> {
    let only = std::env::var("RUNBOOK_BENCH_ONLY").unwrap_or_default();
    let chosen: Vec<&str> = only
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .collect();
    if let Some(unknown) = chosen.iter().find(|name| !BENCHMARKS.contains(name)) {
        anyhow::bail!("RUNBOOK_BENCH_ONLY: unknown benchmark `{unknown}`; known: {BENCHMARKS:?}");
    }
    let wanted = |name: &str| chosen.is_empty() || chosen.contains(&name);

    let load_before = load_average();
    let mut rows = Vec::new();
    if wanted("blocks") {
        rows.extend(section("per-block overhead", blocks::run()).await?);
    }
    if wanted("output") {
        rows.extend(section("output throughput and memory", output::run()).await?);
    }
    if wanted("control") {
        rows.extend(section("control latency", control::run()).await?);
    }
    if wanted("list") {
        rows.extend(section("list latency", listing::run()).await?);
    }
    println!();
    table::print(&rows);
    let missed = rows.iter().filter(|row| !row.met).count();
    let targeted = rows.iter().filter(|row| !row.target.is_empty()).count();
    println!("\n{targeted} figures with a target, {missed} missed it.");
    // Other work on the machine skews every figure; say how busy it was.
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "Load average (1 min) {} at the start, {} at the end, on {cores} cores.",
        load_before,
        load_average()
    );
    Ok(())
}

/// The one-minute load average, as the kernel reports it.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "unknown".to_string())
}

/// Runs one benchmark, saying on stderr what is going on (the whole bench takes minutes).
async fn section<T>(
    name: &str,
    bench: impl Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    eprintln!("measuring {name}…");
    let start = std::time::Instant::now();
    let result = bench.await;
    eprintln!("  {name}: {:.1} s", start.elapsed().as_secs_f64());
    result
}
