//! Per-block overhead: runbooks of 20, 200 and 2,000 `true` command blocks executed
//! through the core service (SQLite in a temporary directory) and awaited until their
//! end is stored, each against the same number of sequential raw `sh -c true` spawns
//! timed in the same repetition. For reference, one size runs again with a subscriber
//! woken by every event of the run, as the CLI's console and the desktop app are. For one
//! size, the CPU time of both is split between this process and the shells it waited
//! for, which shows where the difference is spent.

use crate::table::{median, thousands, Row};
use runbook_core::{Actor, Config, ExecutionEvent, Service};
use runbook_domain::{ExecutionStatus, Runbook};
use runbook_store::Store;
use serde_json::json;
use std::time::{Duration, Instant};
use tokio::sync::broadcast::error::RecvError;
use uuid::Uuid;

/// (blocks, repetitions): fewer repetitions where one takes seconds.
const SIZES: [(usize, usize); 3] = [(20, 41), (200, 15), (2_000, 7)];
/// Engine time over raw spawn time, at most.
const TARGET_RATIO: f64 = 1.1;
/// The size whose CPU time is shown, split between this process and its shells.
const CPU_SIZE: usize = 200;
/// The size also run with a subscriber following every event, for reference.
const FOLLOWED_SIZE: usize = 200;

pub async fn run() -> anyhow::Result<Vec<Row>> {
    let dir = tempfile::tempdir()?;
    let config = Config::from_data_dir(dir.path());
    let store = runbook_store::connect(&config.effective_database_url()).await?;
    let service =
        Service::with_store(store.clone(), config.engine, config.heartbeat_timeout).await?;

    let warm_up = store_runbook(store.as_ref(), SIZES[0].0).await?;
    execute(&service, warm_up, Watcher::End).await?;

    let mut rows = Vec::new();
    let mut per_block = Vec::new();
    let mut cpu_row = None;
    let mut followed_row = None;
    for (blocks, repetitions) in SIZES {
        let runbook = store_runbook(store.as_ref(), blocks).await?;
        let (mut raw, mut engine, mut starts, mut ratios) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut followed = Vec::new();
        let (mut raw_cpu, mut engine_cpu) = (Cpu::default(), Cpu::default());
        // Each repetition pairs a run with raw spawns measured just before it, so the
        // machine's drift between repetitions (other guests, frequency) cancels out.
        for _ in 0..repetitions {
            let before = Cpu::used()?;
            let spawns = raw_spawns(blocks).await?;
            let between = Cpu::used()?;
            let run = execute(&service, runbook, Watcher::End).await?;
            let after = Cpu::used()?;
            raw_cpu = raw_cpu.plus(between.minus(before));
            engine_cpu = engine_cpu.plus(after.minus(between));
            if blocks == FOLLOWED_SIZE {
                let spawns = raw_spawns(blocks).await?;
                let run = execute(&service, runbook, Watcher::Follower).await?;
                followed.push(run.total.as_secs_f64() / spawns.as_secs_f64());
            }
            ratios.push(run.total.as_secs_f64() / spawns.as_secs_f64());
            raw.push(spawns);
            engine.push(run.total);
            starts.push(run.start);
        }
        let (raw, engine, start) = (median(&raw), median(&engine), median(&starts));
        ratios.sort_by(f64::total_cmp);
        let ratio = ratios[ratios.len() / 2];
        rows.push(Row {
            benchmark: format!(
                "{} `true` blocks through the service (median of {repetitions} paired ratios)",
                thousands(blocks)
            ),
            measured: format!(
                "{}, start {:.1} ms",
                total_and_per_block(engine, blocks),
                start.as_secs_f64() * 1000.0
            ),
            baseline_name: "raw `sh -c true` spawns".to_string(),
            baseline: total_and_per_block(raw, blocks),
            ratio,
            target: format!("≤ {TARGET_RATIO}× raw"),
            met: ratio <= TARGET_RATIO,
        });
        per_block.push((blocks, per_ms(engine, blocks), per_ms(raw, blocks)));
        if !followed.is_empty() {
            followed.sort_by(f64::total_cmp);
            followed_row = Some(Row {
                benchmark: format!(
                    "reference: {} `true` blocks with a subscriber woken by every event (median of {repetitions} paired ratios)",
                    thousands(blocks)
                ),
                measured: format!("{:.3}× raw", followed[followed.len() / 2]),
                baseline_name: "raw `sh -c true` spawns".to_string(),
                baseline: "timed before each run".to_string(),
                ratio: followed[followed.len() / 2],
                target: String::new(),
                met: true,
            });
        }
        if blocks == CPU_SIZE {
            let spawned = blocks * repetitions;
            cpu_row = Some(Row {
                benchmark: format!(
                    "reference: CPU per block at {} blocks, this process + its shells",
                    thousands(blocks)
                ),
                measured: engine_cpu.per_block(spawned),
                baseline_name: "the same for raw spawns".to_string(),
                baseline: raw_cpu.per_block(spawned),
                ratio: engine_cpu.total().as_secs_f64() / raw_cpu.total().as_secs_f64(),
                target: String::new(),
                met: true,
            });
        }
    }

    // A flat cost per block: the largest run costs per block what the smallest does.
    let (small, small_engine, small_raw) = per_block[0];
    let (large, large_engine, large_raw) = per_block[per_block.len() - 1];
    let (engine_growth, raw_growth) = (large_engine / small_engine, large_raw / small_raw);
    let ratio = engine_growth / raw_growth;
    rows.push(Row {
        benchmark: format!(
            "ms/block growth from {} to {} blocks, service",
            thousands(small),
            thousands(large)
        ),
        measured: format!("{engine_growth:.2}×"),
        baseline_name: "the same for raw spawns".to_string(),
        baseline: format!("{raw_growth:.2}×"),
        ratio,
        target: format!("≤ {TARGET_RATIO}× (flat)"),
        met: ratio <= TARGET_RATIO,
    });
    rows.extend(followed_row);
    rows.extend(cpu_row);
    rows.push(capture_floor().await?);
    Ok(rows)
}

/// CPU time (user + system) of this process, all threads, and of its children that
/// have been waited for: the shells, whether raw or started by the engine.
#[derive(Clone, Copy, Default)]
struct Cpu {
    own: Duration,
    children: Duration,
}

impl Cpu {
    fn used() -> anyhow::Result<Cpu> {
        use nix::sys::resource::{getrusage, Usage, UsageWho};
        let time = |usage: Usage| {
            let micros = |t: nix::sys::time::TimeVal| {
                Duration::from_micros(t.tv_sec() as u64 * 1_000_000 + t.tv_usec() as u64)
            };
            micros(usage.user_time()) + micros(usage.system_time())
        };
        Ok(Cpu {
            own: time(getrusage(UsageWho::RUSAGE_SELF)?),
            children: time(getrusage(UsageWho::RUSAGE_CHILDREN)?),
        })
    }

    fn minus(self, earlier: Cpu) -> Cpu {
        Cpu {
            own: self.own.saturating_sub(earlier.own),
            children: self.children.saturating_sub(earlier.children),
        }
    }

    fn plus(self, other: Cpu) -> Cpu {
        Cpu {
            own: self.own + other.own,
            children: self.children + other.children,
        }
    }

    fn total(self) -> Duration {
        self.own + self.children
    }

    fn per_block(self, blocks: usize) -> String {
        let micros = |time: Duration| time.as_secs_f64() * 1e6 / blocks as f64;
        format!(
            "{:.0} + {:.0} µs/block",
            micros(self.own),
            micros(self.children)
        )
    }
}

/// For reference, what capturing output costs by itself: the raw spawns again, each
/// with stdout and stderr piped and read to their end as a step's are, against plain
/// raw spawns timed just before. The engine's ratios include this cost.
async fn capture_floor() -> anyhow::Result<Row> {
    const SPAWNS: usize = 200;
    let (mut raw, mut piped, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..15 {
        let plain = raw_spawns(SPAWNS).await?;
        let captured = piped_spawns(SPAWNS).await?;
        ratios.push(captured.as_secs_f64() / plain.as_secs_f64());
        raw.push(plain);
        piped.push(captured);
    }
    ratios.sort_by(f64::total_cmp);
    Ok(Row {
        benchmark: format!(
            "reference: {SPAWNS} raw spawns with stdout and stderr piped and read (median of 15 paired ratios)"
        ),
        measured: total_and_per_block(median(&piped), SPAWNS),
        baseline_name: "raw `sh -c true` spawns".to_string(),
        baseline: total_and_per_block(median(&raw), SPAWNS),
        ratio: ratios[ratios.len() / 2],
        target: String::new(),
        met: true,
    })
}

/// Time for `count` sequential `sh -c true` processes whose output is piped and read
/// until both streams end, each awaited.
async fn piped_spawns(count: usize) -> anyhow::Result<Duration> {
    use tokio::io::AsyncReadExt;
    let start = Instant::now();
    let (mut out_buf, mut err_buf) = (vec![0; 64 * 1024], vec![0; 64 * 1024]);
    for _ in 0..count {
        let mut child = tokio::process::Command::new("sh")
            .arg("-c")
            .arg("true")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()?;
        let mut stdout = child.stdout.take().expect("piped");
        let mut stderr = child.stderr.take().expect("piped");
        let (mut out_open, mut err_open, mut exit) = (true, true, None);
        while out_open || err_open || exit.is_none() {
            tokio::select! {
                read = stdout.read(&mut out_buf), if out_open => out_open = matches!(read, Ok(n) if n > 0),
                read = stderr.read(&mut err_buf), if err_open => err_open = matches!(read, Ok(n) if n > 0),
                status = child.wait(), if exit.is_none() => exit = Some(status?),
            }
        }
        anyhow::ensure!(exit.is_some_and(|status| status.success()));
    }
    Ok(start.elapsed())
}

/// Stores a runbook of `blocks` `true` commands straight through the store: the
/// largest size is beyond the 500 blocks that validation lets a user save, and going
/// around validation for every size keeps the three runs alike.
async fn store_runbook(store: &dyn Store, blocks: usize) -> anyhow::Result<Uuid> {
    let blocks: Vec<_> = (0..blocks)
        .map(|i| json!({"id": format!("b{i}"), "kind": "command", "script": "true"}))
        .collect();
    let now = chrono::Utc::now();
    let runbook: Runbook = serde_json::from_value(json!({
        "id": Uuid::new_v4(),
        "name": format!("bench {} blocks", blocks.len()),
        "blocks": blocks,
        "version": 1,
        "created_at": now,
        "updated_at": now,
        "updated_by": "bench",
    }))?;
    store.insert_runbook(&runbook, "Created").await?;
    Ok(runbook.id)
}

/// How long one run took.
struct Timing {
    /// From the execute call until the run's end (its final state stored).
    total: Duration,
    /// The execute call alone: storing the execution with one pending step per block.
    start: Duration,
}

/// Who waits for the run's end.
#[derive(Clone, Copy, PartialEq)]
enum Watcher {
    /// A caller awaiting the end alone, as a REST client or a script would.
    End,
    /// A subscriber to every run's events, woken for each event of the run as it
    /// happens, as the CLI's console and the desktop app are.
    Follower,
}

async fn execute(service: &Service, runbook: Uuid, watcher: Watcher) -> anyhow::Result<Timing> {
    let mut events = (watcher == Watcher::Follower).then(|| service.subscribe());
    let actor = Actor::local_admin();
    let begin = Instant::now();
    let execution = service.execute(&actor, runbook, json!({})).await?;
    let start = begin.elapsed();
    let status = match &mut events {
        None => {
            service
                .wait_for_end(&actor, execution.id, Duration::from_secs(600))
                .await?
                .status
        }
        Some(events) => loop {
            match events.recv().await {
                Ok(ExecutionEvent::Status {
                    execution_id,
                    status,
                }) if execution_id == execution.id && status.is_finished() => break status,
                // Falling behind only drops older events; the final one is still to come.
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => anyhow::bail!("the engine's event channel closed"),
            }
        },
    };
    anyhow::ensure!(status == ExecutionStatus::Succeeded, "bench run {status}");
    Ok(Timing {
        total: begin.elapsed(),
        start,
    })
}

/// Time for `count` sequential `sh -c true` processes, each awaited.
async fn raw_spawns(count: usize) -> anyhow::Result<Duration> {
    let start = Instant::now();
    for _ in 0..count {
        let status = tokio::process::Command::new("sh")
            .arg("-c")
            .arg("true")
            .status()
            .await?;
        anyhow::ensure!(status.success());
    }
    Ok(start.elapsed())
}

fn per_ms(total: Duration, blocks: usize) -> f64 {
    total.as_secs_f64() * 1000.0 / blocks as f64
}

fn total_and_per_block(total: Duration, blocks: usize) -> String {
    format!(
        "{:.1} ms = {:.3} ms/block",
        total.as_secs_f64() * 1000.0,
        per_ms(total, blocks)
    )
}
