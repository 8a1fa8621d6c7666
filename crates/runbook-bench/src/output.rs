//! Output throughput and memory: one command block writing a large console (by
//! default 1 GB: as 2-byte lines, then as 1000-byte lines), executed by a service in a
//! child process on a fresh SQLite data directory, so that the child's peak RSS is the
//! kernel's own high-water mark for it. The baseline is the same shell pipeline into
//! `cat > /dev/null`; the memory baseline is the same child running `true`. Each case
//! runs three times, each run right after a baseline run: the medians are reported,
//! and the highest peak RSS.
//!
//! Process tree: the bench runs `runbook-bench output-probe DIR SCRIPT`, whose only
//! child is `runbook-bench output-worker DIR SCRIPT`; once the worker has been waited
//! for, the probe's `getrusage(RUSAGE_CHILDREN)` holds exactly what `wait4` reports for
//! the worker. The bench then reads the whole stored console back through the service
//! and checks its length before deleting the directory.

use crate::table::Row;
use anyhow::Context;
use nix::sys::resource::{getrusage, UsageWho};
use runbook_core::{Actor, Config, Service};
use runbook_domain::ExecutionStatus;
use serde_json::{json, Value};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Hidden subcommand: runs a worker and reports its peak RSS.
pub const PROBE: &str = "output-probe";
/// Hidden subcommand: executes one single-block runbook and reports its time.
pub const WORKER: &str = "output-worker";
/// Console size; `RUNBOOK_BENCH_OUTPUT_BYTES` overrides it for quick runs.
const DEFAULT_BYTES: u64 = 1_000_000_000;
/// Runs of each case, each paired with a baseline run.
const REPEATS: usize = 3;
const TARGET_MB_PER_S: f64 = 400.0;
const TARGET_RSS_MB: f64 = 100.0;
/// The command block's id, as it appears in the console's step lines.
const BLOCK_ID: &str = "out";

pub async fn run() -> anyhow::Result<Vec<Row>> {
    let bytes = match std::env::var("RUNBOOK_BENCH_OUTPUT_BYTES") {
        Ok(text) => text
            .parse::<u64>()
            .ok()
            .filter(|n| *n > 0)
            .context("RUNBOOK_BENCH_OUTPUT_BYTES must be a positive whole number of bytes")?,
        Err(_) => DEFAULT_BYTES,
    };
    let size = human_bytes(bytes);
    let idle = in_child("true", 0).await?;
    let cases = [
        ("2-byte lines", format!("yes | head -c {bytes}")),
        (
            "1000-byte lines",
            format!("yes \"$(head -c 999 /dev/zero | tr '\\0' x)\" | head -c {bytes}"),
        ),
    ];
    let mut rows = Vec::new();
    for (lines, script) in cases {
        let (mut raw, mut times, mut peak_rss_mb) = (Vec::new(), Vec::new(), 0.0_f64);
        for _ in 0..REPEATS {
            raw.push(raw_pipe(&script).await?);
            let run = in_child(&script, bytes).await?;
            times.push(run.time);
            peak_rss_mb = peak_rss_mb.max(run.peak_rss_mb);
        }
        let (time, raw) = (crate::table::median(&times), crate::table::median(&raw));
        let (measured, baseline) = (rate(bytes, time), rate(bytes, raw));
        rows.push(Row {
            benchmark: format!("{size} as {lines}: capture + persistence (median of {REPEATS})"),
            measured: format!("{measured:.0} MB/s"),
            baseline_name: "same pipeline into `cat > /dev/null`".to_string(),
            baseline: format!("{baseline:.0} MB/s"),
            ratio: measured / baseline,
            target: format!("≥ {TARGET_MB_PER_S} MB/s"),
            met: measured >= TARGET_MB_PER_S,
        });
        rows.push(Row {
            benchmark: format!(
                "{size} as {lines}: peak RSS of the service's process (highest of {REPEATS})"
            ),
            measured: format!("{peak_rss_mb:.1} MB"),
            baseline_name: "the same running `true`".to_string(),
            baseline: format!("{:.1} MB", idle.peak_rss_mb),
            ratio: peak_rss_mb / idle.peak_rss_mb,
            target: format!("≤ {TARGET_RSS_MB} MB"),
            met: peak_rss_mb <= TARGET_RSS_MB,
        });
    }
    Ok(rows)
}

/// What one child run measured.
struct ChildRun {
    time: Duration,
    peak_rss_mb: f64,
}

/// Runs `script` in a worker on a fresh data directory, checks that the console it
/// stored holds `bytes` bytes between the step's header and footer lines, and deletes
/// the directory.
async fn in_child(script: &str, bytes: u64) -> anyhow::Result<ChildRun> {
    let dir = tempfile::tempdir()?;
    let output = tokio::process::Command::new(std::env::current_exe()?)
        .arg(PROBE)
        .arg(dir.path())
        .arg(script)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .await?;
    anyhow::ensure!(output.status.success(), "{PROBE} failed: {}", output.status);
    let report: Value = serde_json::from_slice(&output.stdout).with_context(|| {
        format!(
            "{PROBE} printed {:?}",
            String::from_utf8_lossy(&output.stdout)
        )
    })?;
    let execution_id: Uuid = serde_json::from_value(report["execution_id"].clone())?;
    let seconds = report["seconds"].as_f64().context("no seconds")?;
    let max_rss_kib = report["max_rss_kib"].as_f64().context("no max_rss_kib")?;
    check_console(dir.path(), execution_id, bytes).await?;
    Ok(ChildRun {
        time: Duration::from_secs_f64(seconds),
        peak_rss_mb: max_rss_kib * 1024.0 / 1e6,
    })
}

/// Reads the run's whole console back, page by page (a page stops at a gap), and
/// checks it is the step's header, `bytes` bytes of output and the step's footer.
async fn check_console(dir: &Path, execution_id: Uuid, bytes: u64) -> anyhow::Result<()> {
    let service = Service::open(Config::from_data_dir(dir)).await?;
    let actor = Actor::system();
    let header = format!("\x1b[1;36m▶ {BLOCK_ID}\x1b[0m (command)\r\n");
    let mut offset = 0;
    // The end of the console read so far: enough to hold the footer.
    let mut tail = String::new();
    loop {
        let page = service
            .read_output(&actor, execution_id, offset, 1024 * 1024)
            .await?;
        if offset == 0 {
            anyhow::ensure!(
                page.text.starts_with(&header),
                "the console does not start with the step's header: {:?}",
                page.text.chars().take(80).collect::<String>()
            );
        }
        tail.push_str(&page.text);
        if tail.len() > 8192 {
            let mut cut = tail.len() - 4096;
            while !tail.is_char_boundary(cut) {
                cut += 1;
            }
            tail.drain(..cut);
        }
        let (next, complete) = (page.next_offset, page.complete);
        offset = next;
        if complete {
            break;
        }
        anyhow::ensure!(!page.text.is_empty(), "the console stops at byte {offset}");
    }
    let total = offset;
    // The footer: "✔ out" in green, then the step's time in ms.
    let marker = format!("\x1b[32m✔ {BLOCK_ID}\x1b[0m ");
    let footer_at = tail
        .rfind(&marker)
        .context("the console does not end with the step's footer")?;
    let footer = &tail[footer_at..];
    let millis = footer[marker.len()..]
        .strip_suffix(" ms\r\n")
        .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    anyhow::ensure!(millis.is_some(), "unexpected footer {footer:?}");
    let expected = header.len() as u64 + bytes + footer.len() as u64;
    anyhow::ensure!(
        total == expected,
        "the stored console holds {total} bytes, not {expected} ({bytes} of output)"
    );
    let execution = service.get_execution(&actor, execution_id).await?;
    let counted = execution.steps[0].output_bytes;
    anyhow::ensure!(
        counted == total,
        "the step counted {counted} bytes but {total} are stored"
    );
    Ok(())
}

/// Time for `script | cat > /dev/null` in a shell.
async fn raw_pipe(script: &str) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let status = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{script} | cat > /dev/null"))
        .status()
        .await?;
    anyhow::ensure!(status.success(), "the raw pipeline failed: {status}");
    Ok(start.elapsed())
}

/// `output-probe DIR SCRIPT`: runs the worker as its only child and prints the
/// worker's report with its peak RSS added.
pub fn probe(args: &[String]) -> anyhow::Result<()> {
    let output = std::process::Command::new(std::env::current_exe()?)
        .arg(WORKER)
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()?;
    anyhow::ensure!(
        output.status.success(),
        "{WORKER} failed: {}",
        output.status
    );
    // Only the worker has been waited for: this is its `wait4` ru_maxrss (in KiB),
    // which also covers the processes it waited for (the shell pipeline, a few MB).
    let usage = getrusage(UsageWho::RUSAGE_CHILDREN)?;
    let mut report: Value = serde_json::from_slice(&output.stdout)?;
    report["max_rss_kib"] = json!(usage.max_rss());
    println!("{report}");
    Ok(())
}

/// `output-worker DIR SCRIPT`: executes a one-block runbook running SCRIPT on a
/// service over DIR, waits until the run is over and stored, and prints the time.
pub async fn worker(args: &[String]) -> anyhow::Result<()> {
    let [dir, script] = args else {
        anyhow::bail!("usage: {WORKER} DIR SCRIPT");
    };
    let service = Service::open(Config::from_data_dir(dir)).await?;
    let actor = Actor::system();
    let runbook = service
        .create_runbook(
            &actor,
            json!({
                "name": "output",
                "blocks": [{"id": BLOCK_ID, "kind": "command", "script": script}]
            }),
        )
        .await?;
    let start = Instant::now();
    let execution = service.execute(&actor, runbook.id, json!({})).await?;
    // A run leaves the engine only once its final state is stored. Polling keeps the
    // worker from being a console subscriber that the engine would have to feed.
    while service.is_live_here(execution.id) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let seconds = start.elapsed().as_secs_f64();
    let execution = service.get_execution(&actor, execution.id).await?;
    anyhow::ensure!(
        execution.status == ExecutionStatus::Succeeded,
        "the output run ended {}",
        execution.status
    );
    println!(
        "{}",
        json!({"execution_id": execution.id, "seconds": seconds})
    );
    Ok(())
}

fn rate(bytes: u64, time: Duration) -> f64 {
    bytes as f64 / time.as_secs_f64() / 1e6
}

/// 1000000000 as "1 GB", 100000000 as "100 MB" (powers of ten).
fn human_bytes(bytes: u64) -> String {
    match bytes {
        b if b >= 1_000_000_000 && b % 1_000_000_000 == 0 => format!("{} GB", b / 1_000_000_000),
        b if b >= 1_000_000 && b % 1_000_000 == 0 => format!("{} MB", b / 1_000_000),
        b => format!("{b} bytes"),
    }
}
