//! Engine tests with real processes: ordering and capture of output, failure policies,
//! env and workdir, timeouts, stop/pause/resume of whole process groups (checked in
//! /proc), confirmations, timers, output events and batched persistence. The sink is an
//! in-memory recorder standing in for the store.

mod common;

use common::*;
use runbook_domain::{ControlAction, ExecutionStatus, StepStatus};
use runbook_engine::{ControlError, Engine, EngineConfig, ExecutionEvent};
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;
// ---- tests ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_run_in_order_and_their_output_is_captured_in_order() {
    let run = Harness::start(vec![
        command(
            "first",
            "echo out-1; echo err-1 >&2; echo out-2; echo err-2 >&2; echo out-3",
        ),
        command("second", "printf 'second step\\n'; echo err-3 >&2"),
    ]);
    let record = run.finish().await;

    assert_eq!(
        record.run_statuses(),
        [ExecutionStatus::Running, ExecutionStatus::Succeeded]
    );
    for index in 0..2 {
        let step = record.step(index);
        assert_eq!(step.status, StepStatus::Succeeded);
        assert_eq!(step.exit_code, Some(0));
        assert!(step.started_at.is_some() && step.finished_at.is_some());
        // The writer stores a step's latest state per batch: a short step's running
        // state may be stored together with its end.
        let statuses = record.step_statuses(index);
        assert!(
            matches!(
                statuses.as_slice(),
                [StepStatus::Succeeded] | [StepStatus::Running, StepStatus::Succeeded]
            ),
            "{statuses:?}"
        );
    }
    let text = record.text();
    let position = |needle: &str| {
        text.find(needle)
            .unwrap_or_else(|| panic!("`{needle}` is missing from {text:?}"))
    };
    // Each stream keeps its order; the second step's output follows all of the first's.
    assert!(position("out-1") < position("out-2") && position("out-2") < position("out-3"));
    assert!(position("err-1") < position("err-2"));
    assert!(position("out-3") < position("second step"));
    assert!(position("err-2") < position("second step"));
    assert!(position("▶ first") < position("out-1"));
    assert!(position("▶ second") > position("out-3"));
    // A step's footer closes it before the next step's header opens.
    assert!(position("out-3") < position("✔ first"));
    assert!(position("✔ first") < position("▶ second"));
    assert!(position("second step") < position("✔ second"));
    assert_eq!(
        record.step(0).output_bytes + record.step(1).output_bytes,
        record.output.len() as u64,
        "every byte of the console belongs to a step"
    );

    let events: Vec<String> = run
        .events()
        .iter()
        .filter_map(|event| match event {
            ExecutionEvent::StepStarted { block_id, .. } => Some(format!("start {block_id}")),
            ExecutionEvent::StepFinished {
                block_id,
                status,
                exit_code,
                ..
            } => Some(format!("end {block_id} {} {exit_code:?}", status.as_str())),
            ExecutionEvent::Status { status, .. } => Some(status.to_string()),
            ExecutionEvent::StopRequested { by, .. } => Some(format!("stop requested by {by}")),
            ExecutionEvent::Output { .. } | ExecutionEvent::Countdown { .. } => None,
        })
        .collect();
    assert_eq!(
        events,
        [
            "running",
            "start first",
            "end first succeeded Some(0)",
            "start second",
            "end second succeeded Some(0)",
            "succeeded",
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_command_fails_the_run_and_skips_later_steps() {
    let run = Harness::start(vec![
        command("ok", "echo fine"),
        command("bad", "echo before-failure; exit 3"),
        command("later", "echo never-printed"),
        block(json!({"id": "pause", "kind": "timer", "seconds": 1})),
    ]);
    let record = run.finish().await;

    assert_eq!(record.status(), Some(ExecutionStatus::Failed));
    assert_eq!(record.step(0).status, StepStatus::Succeeded);
    let bad = record.step(1);
    assert_eq!((bad.status, bad.exit_code), (StepStatus::Failed, Some(3)));
    let error = bad.error.as_deref().expect("a failed step says why");
    assert!(error.contains('3'), "{error}");
    assert_eq!(record.step(2).status, StepStatus::Skipped);
    assert_eq!(record.step(3).status, StepStatus::Skipped);
    assert_eq!(record.step(2).started_at, None);
    let text = record.text();
    assert!(text.contains("before-failure"));
    assert!(text.contains("exit code 3"), "{text:?}");
    assert!(!text.contains("never-printed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expected_nonzero_exit_code_is_a_success() {
    let run = Harness::start(vec![
        block(json!({"id": "grep", "kind": "command", "script": "exit 3",
                     "expect_exit_codes": [0, 3]})),
        block(
            json!({"id": "strict", "kind": "command", "script": "exit 0",
                     "expect_exit_codes": [3]}),
        ),
    ]);
    let record = run.finish().await;
    assert_eq!(
        (record.step(0).status, record.step(0).exit_code),
        (StepStatus::Succeeded, Some(3))
    );
    assert_eq!(record.step(0).error, None);
    assert_eq!(
        (record.step(1).status, record.step(1).exit_code),
        (StepStatus::Failed, Some(0)),
        "0 is a failure when it is not among the expected codes"
    );
    assert_eq!(record.status(), Some(ExecutionStatus::Failed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_failure_continue_records_the_failure_and_goes_on() {
    let run = Harness::start(vec![
        block(json!({"id": "flaky", "kind": "command", "script": "exit 1",
                     "on_failure": "continue"})),
        command("next", "echo carried-on"),
    ]);
    let record = run.finish().await;
    assert_eq!(
        (record.step(0).status, record.step(0).exit_code),
        (StepStatus::Failed, Some(1))
    );
    assert_eq!(record.step(1).status, StepStatus::Succeeded);
    assert!(record.text().contains("carried-on"));
    assert_eq!(record.status(), Some(ExecutionStatus::Succeeded));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn env_and_workdir_reach_the_process() {
    let dir = tempfile::tempdir().unwrap();
    let workdir = dir.path().canonicalize().unwrap();
    let run = Harness::start(vec![block(json!({
        "id": "show", "kind": "command",
        "script": "echo \"dir=$(pwd -P)\"; echo \"greeting=$GREETING $TARGET\"",
        "workdir": workdir.to_str().unwrap(),
        "env": {"GREETING": "hello", "TARGET": "big world"}
    }))]);
    let record = run.finish().await;
    assert_eq!(record.status(), Some(ExecutionStatus::Succeeded));
    let text = record.text();
    assert!(
        text.contains(&format!("dir={}\n", workdir.display())),
        "{text:?}"
    );
    assert!(text.contains("greeting=hello big world\n"), "{text:?}");
}

/// A command starts the same way with or without a working directory of its own (the
/// two are started by different means): the block's variables over the app's, the
/// run's own variables, no signal blocked, SIGPIPE at its default (a pipeline such as
/// `yes | head` needs it; Rust programs ignore it), stdin on /dev/null.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_start_alike_with_or_without_a_working_directory() {
    std::env::set_var("RUNBOOK_TEST_SHADOWED", "from-the-app");
    let dir = tempfile::tempdir().unwrap();
    // The shell's signal state is read with builtins: dash blocks every signal while it
    // starts a child, so a child reading it could see that moment.
    let script = "echo \"shadowed=$RUNBOOK_TEST_SHADOWED\"; \
        env | grep -c '^RUNBOOK_TEST_SHADOWED='; \
        echo \"run=${RUNBOOK_EXECUTION_ID:+set} outputs=${RUNBOOK_OUTPUT:+set}\"; \
        while read -r line; do case $line in SigBlk:*|SigIgn:*) echo \"$line\";; esac; \
        done < /proc/$$/status; \
        readlink /proc/$$/fd/0; \
        yes | head -n 2";
    let mut ignored_by_each = Vec::new();
    for workdir in [None, Some(dir.path().to_str().unwrap())] {
        let mut spec = json!({
            "id": "show", "kind": "command", "script": script,
            "env": {"RUNBOOK_TEST_SHADOWED": "from-the-block"}
        });
        if let Some(workdir) = workdir {
            spec["workdir"] = json!(workdir);
        }
        let record = Harness::start(vec![block(spec)]).finish().await;
        assert_eq!(record.status(), Some(ExecutionStatus::Succeeded));
        let stdout = &record.step(0).detail.stdout;
        let ignored = stdout
            .lines()
            .find_map(|line| line.strip_prefix("SigIgn:\t"))
            .and_then(|mask| u64::from_str_radix(mask, 16).ok())
            .unwrap_or_else(|| panic!("{stdout:?}"));
        // Bit n - 1 stands for signal n. What the app was started with ignoring (a shell
        // starting it in the background ignores SIGINT and SIGQUIT) is passed on, as
        // the standard library does; SIGPIPE, which Rust itself ignores, is not.
        assert_eq!(
            ignored & (1 << 12),
            0,
            "ignored {ignored:x}, workdir {workdir:?}"
        );
        ignored_by_each.push(ignored);
        assert_eq!(
            stdout.replace(&format!("SigIgn:\t{ignored:016x}\n"), ""),
            "shadowed=from-the-block\n1\nrun=set outputs=set\n\
             SigBlk:\t0000000000000000\n/dev/null\ny\ny\n",
            "workdir {workdir:?}"
        );
        assert_eq!(record.step(0).detail.stderr, "", "workdir {workdir:?}");
    }
    assert_eq!(ignored_by_each[0], ignored_by_each[1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_start_from_the_base_environment_and_find_programs_on_its_path() {
    use std::os::unix::fs::PermissionsExt;
    // What a desktop gets from the user's login shell: their own PATH and variables.
    let bin = tempfile::tempdir().unwrap();
    let probe = bin.path().join("runbook-probe");
    std::fs::write(&probe, "#!/bin/sh\necho probe-ran\n").unwrap();
    std::fs::set_permissions(&probe, std::fs::Permissions::from_mode(0o755)).unwrap();
    let login_path = format!("{}:/usr/bin:/bin", bin.path().display());
    let base_env: std::collections::HashMap<String, String> = [
        ("PATH".to_string(), login_path.clone()),
        ("FROM_PROFILE".to_string(), "yes".to_string()),
    ]
    .into();
    let config = EngineConfig {
        base_env: Some(Arc::new(base_env)),
        ..quick_config()
    };
    let run = Harness::start_with(
        config,
        vec![
            command(
                "login-env",
                "runbook-probe; echo \"profile=$FROM_PROFILE path=$PATH\"; echo \"home=${HOME-unset}\"",
            ),
            block(json!({"id": "bash-too", "kind": "command", "shell": "bash",
                         "script": "runbook-probe; echo \"bash=$BASH_VERSION\""})),
        ],
    );
    let record = run.finish().await;
    let text = record.text();
    assert_eq!(record.status(), Some(ExecutionStatus::Succeeded), "{text}");
    assert_eq!(text.matches("probe-ran\n").count(), 2, "{text:?}");
    assert!(
        text.contains(&format!("profile=yes path={login_path}\n")),
        "{text:?}"
    );
    // Only the base environment: the app's own variables stay out.
    assert!(text.contains("home=unset\n"), "{text:?}");
    assert!(
        text.contains("bash=5") || text.contains("bash=4"),
        "{text:?}"
    );

    // A shell that is not on that PATH is not taken from the app's own.
    let run = Harness::start_with(
        EngineConfig {
            base_env: Some(Arc::new(
                [("PATH".to_string(), bin.path().display().to_string())].into(),
            )),
            ..quick_config()
        },
        vec![command("no-shell", "echo never")],
    );
    let record = run.finish().await;
    assert_eq!(record.status(), Some(ExecutionStatus::Failed));
    assert!(
        record.text().contains("could not start sh"),
        "{}",
        record.text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_apps_own_secrets_do_not_reach_commands() {
    // The server's database URL (with its password) is in its environment.
    std::env::set_var("DATABASE_URL", "postgres://app:hunter2@db/prod");
    let run = Harness::start(vec![command(
        "leak",
        "echo \"db=${DATABASE_URL:-unset}\"; env | grep -c hunter2 || true",
    )]);
    let record = run.finish().await;
    let text = record.text();
    assert!(text.contains("db=unset\n0\n"), "{text:?}");
    assert!(!text.contains("hunter2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_workdir_fails_the_step_with_a_message() {
    let run = Harness::start(vec![
        command("before", "echo fine"),
        block(json!({"id": "lost", "kind": "command", "script": "echo hi",
                     "workdir": "/nonexistent/runbook-studio-test"})),
        command("after", "echo never"),
    ]);
    let record = run.finish().await;
    assert_eq!(record.status(), Some(ExecutionStatus::Failed));
    let step = record.step(1);
    assert_eq!(step.status, StepStatus::Failed);
    assert!(step
        .error
        .as_deref()
        .unwrap_or("")
        .contains("could not start"));
    assert_eq!(record.step(2).status, StepStatus::Skipped);
    // The console tells the story in order, though the step never had a process.
    let text = record.text();
    let order = [
        "▶ before",
        "fine",
        "✔ before",
        "▶ lost",
        "could not start",
        "✘ lost",
    ];
    let positions: Vec<usize> = order
        .iter()
        .map(|needle| {
            text.find(needle)
                .unwrap_or_else(|| panic!("`{needle}` is missing from {text:?}"))
        })
        .collect();
    assert!(
        positions.windows(2).all(|pair| pair[0] < pair[1]),
        "{text:?}"
    );
    assert!(!text.contains("▶ after"), "{text:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_kills_the_command_and_fails_the_step() {
    let sleeper = marker(30);
    let run = Harness::start(vec![
        block(json!({"id": "slow", "kind": "command", "timeout_secs": 1,
                     "script": format!("echo started; sleep {sleeper}; echo unreachable")})),
        command("after", "echo never"),
    ]);
    let record = run.finish().await;
    assert!(
        run.started.elapsed() < Duration::from_secs(20),
        "the timeout, not the sleep, ended the step"
    );
    assert_eq!(record.status(), Some(ExecutionStatus::Failed));
    let step = record.step(0);
    assert_eq!(step.status, StepStatus::Failed);
    assert_eq!(step.error.as_deref(), Some("timed out after 1 s"));
    let text = record.text();
    assert!(text.contains("started") && text.contains("timed out after 1 s"));
    assert!(!text.contains("unreachable"));
    assert_eq!(record.step(1).status, StepStatus::Skipped);
    wait_until_gone(&sleeper).await;
}

// A shell that ends while a process it left keeps writing to its stdout: the step
// still ends once the drain period is over, with what was written meanwhile, and the
// writer goes with the step's process group.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_ends_while_a_process_it_left_keeps_writing() {
    let mark = marker(309);
    let run = Harness::start(vec![
        command(
            "flood",
            &format!(": {mark}; (while :; do echo tick; done) & echo started"),
        ),
        command("after", "echo after-ran"),
    ]);
    let record = tokio::time::timeout(Duration::from_secs(60), run.finish())
        .await
        .expect("the step ended although its output never went quiet");
    assert_eq!(record.status(), Some(ExecutionStatus::Succeeded));
    let text = record.text();
    assert!(text.contains("started"), "{text:.200}");
    assert!(text.contains("tick"), "what the writer wrote is kept");
    assert!(text.contains("after-ran"));
    wait_until_gone(&mark).await;
}

/// The capacity of the pipe a process has as its descriptor `fd`.
#[cfg(target_os = "linux")]
fn pipe_capacity(pid: u32, fd: u32) -> i32 {
    use std::os::unix::fs::OpenOptionsExt;
    // Opening /proc/<pid>/fd/<n> of a pipe opens that same pipe; non-blocking, so
    // the open never waits for the other end.
    let pipe = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(format!("/proc/{pid}/fd/{fd}"))
        .unwrap_or_else(|error| panic!("open fd {fd} of process {pid}: {error}"));
    nix::fcntl::fcntl(&pipe, nix::fcntl::FcntlArg::F_GETPIPE_SZ).expect("F_GETPIPE_SZ")
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_written_in_bulk_gets_a_wider_pipe_and_a_quiet_one_keeps_its_own() {
    let sleeper = marker(300);
    let run = Harness::start(vec![command(
        "bulk",
        &format!("head -c 3000000 /dev/zero | tr '\\0' x; echo; echo quiet >&2; sleep {sleeper}"),
    )]);
    // The shell and the sleep share the step's pipes; the sleep runs once the bulk
    // output is all written.
    let is_sleep = |pid: u32| {
        std::fs::read(format!("/proc/{pid}/cmdline"))
            .is_ok_and(|cmdline| cmdline.starts_with(b"sleep"))
    };
    wait_for_processes(&sleeper, "the sleep after the bulk output", |found| {
        found.iter().any(|(pid, _)| is_sleep(*pid))
    })
    .await;
    let (pid, _) = processes_with(&sleeper)
        .into_iter()
        .find(|(pid, _)| is_sleep(*pid))
        .expect("the sleep runs");
    assert_eq!(
        pipe_capacity(pid, 1),
        1024 * 1024,
        "stdout carried megabytes: its pipe was widened"
    );
    assert_eq!(
        pipe_capacity(pid, 2),
        64 * 1024,
        "stderr carried a line: its pipe is the default"
    );
    run.control(ControlAction::Stop).unwrap();
    let record = run.finish().await;
    assert_eq!(record.status(), Some(ExecutionStatus::Stopped));
    let text = record.text();
    // What the step wrote, without the line about the stop (wherever it came in).
    let start = text.find("■ stop requested").expect("the stop is shown");
    let tail = "unless they exit";
    let end = start + text[start..].find(tail).expect("the whole line") + tail.len();
    let written = format!("{}{}", &text[..start], &text[end..]);
    assert_eq!(written.matches('x').count(), 3_000_000, "no byte lost");
    assert!(written.contains("quiet"));
    wait_until_gone(&sleeper).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_kills_the_whole_process_group() {
    let sleeper = marker(301);
    let run = Harness::start(vec![
        command(
            "background",
            &format!("sleep {sleeper} & sleep {sleeper} & wait"),
        ),
        command("after", "echo never"),
    ]);
    // The shell and both sleeps carry the marker in their command lines.
    wait_for_processes(&sleeper, "the shell and its two sleeps", |found| {
        found.len() >= 3
    })
    .await;

    assert_eq!(
        run.control(ControlAction::Stop),
        Ok(ExecutionStatus::Running),
        "a stop is accepted; the run reports `stopped` once its processes are gone"
    );
    let record = run.finish().await;
    assert_eq!(record.status(), Some(ExecutionStatus::Stopped));
    assert_eq!(record.step(0).status, StepStatus::Stopped);
    assert_eq!(record.step(1).status, StepStatus::Skipped);
    wait_until_gone(&sleeper).await;
    assert!(matches!(
        run.control(ControlAction::Stop),
        Err(ControlError::NotRunning)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_ignoring_sigterm_is_killed_after_the_grace_period() {
    let sleeper = marker(302);
    let grace = Duration::from_secs(1);
    let run = Harness::start_with(
        EngineConfig {
            stop_grace: grace,
            ..EngineConfig::default()
        },
        vec![command(
            "stubborn",
            &format!("trap '' TERM; while true; do sleep {sleeper}; done"),
        )],
    );
    wait_for_processes(&sleeper, "the stubborn sleep", |found| found.len() >= 2).await;

    let stopped_at = Instant::now();
    run.control(ControlAction::Stop).unwrap();
    // Who asked is stored at once, not with the end: every view shows the run stopping
    // while its command gets its grace period.
    run.wait_for("the stop request stored", |record| {
        !record.stop_requests.is_empty()
    })
    .await;
    assert!(
        stopped_at.elapsed() < grace,
        "stored at once, not with the run's end"
    );
    let record = run.finish().await;
    let took = stopped_at.elapsed();
    assert!(
        took >= grace - Duration::from_millis(100),
        "SIGKILL came only after the grace period, yet the run ended after {took:?}"
    );
    assert!(took < Duration::from_secs(20), "took {took:?}");
    assert_eq!(record.status(), Some(ExecutionStatus::Stopped));
    assert_eq!(record.step(0).status, StepStatus::Stopped);
    assert_eq!(record.stop_requests.len(), 1, "{:?}", record.stop_requests);
    assert_eq!(record.stop_requests[0].by, "tester");
    assert!(record.problems.is_empty(), "{:?}", record.problems);
    assert!(
        record.text().contains(
            "■ stop requested by tester: SIGTERM sent to the step's processes; SIGKILL in 1 s unless they exit"
        ),
        "{}",
        record.text()
    );
    wait_until_gone(&sleeper).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_cleaning_up_after_sigterm_gets_the_grace_period_after_its_shell_dies() {
    let sleeper = marker(303);
    let dir = tempfile::tempdir().unwrap();
    let done = dir.path().join("cleaned");
    // The shell dies of SIGTERM at once; the worker it started (output redirected, so
    // the step's pipes close with the shell) traps SIGTERM and needs a while to clean up.
    let worker = format!(
        "trap 'sleep 1.5; echo cleaned > {}; exit 0' TERM; while true; do sleep {sleeper}; done",
        done.display()
    );
    let run = Harness::start_with(
        EngineConfig {
            stop_grace: Duration::from_secs(10),
            ..EngineConfig::default()
        },
        vec![command(
            "migrate",
            &format!("sh -c \"{worker}\" >/dev/null 2>&1 & wait"),
        )],
    );
    // The marker is in the command lines of both shells and the sleep: the sleep runs
    // only once the worker has set its trap.
    wait_for_processes(&sleeper, "both shells and the worker's sleep", |found| {
        found.len() >= 3
    })
    .await;

    let stopped_at = Instant::now();
    run.control(ControlAction::Stop).unwrap();
    let record = run.finish().await;
    let took = stopped_at.elapsed();
    assert_eq!(record.status(), Some(ExecutionStatus::Stopped));
    assert_eq!(
        std::fs::read_to_string(&done).unwrap_or_default(),
        "cleaned\n",
        "the worker finished its clean-up before any SIGKILL (the stop took {took:?})"
    );
    assert!(
        took < Duration::from_secs(8),
        "the step ended once its group was gone, not at the end of the grace period: {took:?}"
    );
    wait_until_gone(&sleeper).await;
}

/// A run, under a default grace period of 1 s, of one command that needs `cleanup`
/// seconds after SIGTERM to write "cleaned" to `done`; `fields` go into its block.
fn slow_cleaner(
    sleeper: &str,
    cleanup: &str,
    done: &std::path::Path,
    fields: serde_json::Value,
) -> Harness {
    let script = format!(
        "trap 'sleep {cleanup}; echo cleaned > {}; exit 0' TERM; while true; do sleep {sleeper}; done",
        done.display()
    );
    let mut command = json!({"id": "migrate", "kind": "command", "script": script});
    if let (Some(command), Some(fields)) = (command.as_object_mut(), fields.as_object()) {
        command.extend(fields.clone());
    }
    Harness::start_with(
        EngineConfig {
            stop_grace: Duration::from_secs(1),
            ..EngineConfig::default()
        },
        vec![block(command)],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_s_own_stop_grace_period_replaces_the_default() {
    let (slow, stubborn) = (marker(316), marker(317));
    let dir = tempfile::tempdir().unwrap();
    let done = dir.path().join("cleaned");
    // Needs 2 s to clean up after SIGTERM, where the engine's default allows 1 s.
    let run = slow_cleaner(&slow, "2", &done, json!({"stop_grace_secs": 10}));
    wait_for_processes(&slow, "the migration's sleep", |found| found.len() >= 2).await;
    run.control(ControlAction::Stop).unwrap();
    let record = run.finish().await;
    assert_eq!(record.status(), Some(ExecutionStatus::Stopped));
    assert_eq!(
        std::fs::read_to_string(&done).unwrap_or_default(),
        "cleaned\n",
        "the command finished its clean-up within its own grace period"
    );
    wait_until_gone(&slow).await;

    // A timeout's SIGTERM is followed by the same grace period.
    let slow = marker(321);
    let done = dir.path().join("cleaned-after-timeout");
    let run = slow_cleaner(
        &slow,
        "2",
        &done,
        json!({"timeout_secs": 1, "stop_grace_secs": 10}),
    );
    let record = run.finish().await;
    assert_eq!(record.step(0).status, StepStatus::Failed);
    assert_eq!(
        std::fs::read_to_string(&done).unwrap_or_default(),
        "cleaned\n",
        "the timed-out command finished its clean-up within its own grace period"
    );
    wait_until_gone(&slow).await;

    // A grace period of 0 kills at once what ignores SIGTERM, where the default is long.
    let run = Harness::start_with(
        EngineConfig {
            stop_grace: Duration::from_secs(60),
            ..EngineConfig::default()
        },
        vec![block(json!({
            "id": "stubborn", "kind": "command", "stop_grace_secs": 0,
            "script": format!("trap '' TERM; while true; do sleep {stubborn}; done"),
        }))],
    );
    wait_for_processes(&stubborn, "the stubborn sleep", |found| found.len() >= 2).await;
    let stopped_at = Instant::now();
    run.control(ControlAction::Stop).unwrap();
    let record = run.finish().await;
    assert!(
        stopped_at.elapsed() < Duration::from_secs(30),
        "killed long before the default grace period: {:?}",
        stopped_at.elapsed()
    );
    assert_eq!(record.status(), Some(ExecutionStatus::Stopped));
    wait_until_gone(&stubborn).await;
}

/// A run of one command that ignores SIGTERM, with a ten-minute grace period, once the
/// command's shell and its sleep (marked `whole_seconds`) are running; and the marker.
async fn ignoring_sigterm_for_ten_minutes(whole_seconds: u32) -> (Harness, String) {
    let stubborn = marker(whole_seconds);
    let script = format!("echo started; trap '' TERM; while true; do sleep {stubborn}; done");
    let run = Harness::start(vec![block(json!({
        "id": "stubborn", "kind": "command", "script": script, "stop_grace_secs": 600,
    }))]);
    wait_for_processes(&stubborn, "the stubborn sleep", |found| found.len() >= 2).await;
    (run, stubborn)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_grace_period_is_cut_short_when_asked_to_kill_and_for_a_fenced_run() {
    // Asked to kill (a second Ctrl+C): the rest of a ten-minute grace period is not waited for.
    let (run, stubborn) = ignoring_sigterm_for_ten_minutes(319).await;
    // Not stopping yet: nothing to cut short, and the run goes on.
    run.engine.kill_now();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(processes_with(&stubborn).len(), 2, "the command runs on");
    assert!(!run.record().is_finished());
    run.control(ControlAction::Stop).unwrap();
    run.engine.kill_now();
    let record = tokio::time::timeout(Duration::from_secs(60), run.finish())
        .await
        .expect("killed long before the grace period ends");
    assert_eq!(record.status(), Some(ExecutionStatus::Stopped));
    wait_until_gone(&stubborn).await;

    // An operator's kill: a stop without the grace period.
    let (run, stubborn) = ignoring_sigterm_for_ten_minutes(322).await;
    run.control(ControlAction::Kill).unwrap();
    let record = tokio::time::timeout(Duration::from_secs(60), run.finish())
        .await
        .expect("killed without its grace period");
    assert_eq!(record.status(), Some(ExecutionStatus::Stopped));
    assert_eq!(record.step(0).status, StepStatus::Stopped);
    assert_eq!(record.stop_requests.len(), 1, "{:?}", record.stop_requests);
    assert!(
        record
            .text()
            .contains("■ kill requested by tester: the step's processes are killed now"),
        "{}",
        record.text()
    );
    wait_until_gone(&stubborn).await;

    // Fenced off (marked interrupted elsewhere, maybe retried there): at most the
    // configured default (1 s here), not the block's ten minutes.
    let (run, stubborn) = ignoring_sigterm_for_ten_minutes(320).await;
    run.refuse(Refuse::Everything);
    run.engine.fence(&[run.execution_id]);
    let end = tokio::time::timeout(Duration::from_secs(60), run.announced_end())
        .await
        .expect("killed long before the block's grace period ends");
    assert_eq!(end, ExecutionStatus::Interrupted);
    wait_until_gone(&stubborn).await;
}

/// A process carrying the mark of run `run`, as a crashed app's step leaves it: the
/// leader of its own group, with a child; waited for on a thread, so it leaves no zombie.
fn leftover_of(run: Uuid, script: &str) -> u32 {
    use std::os::unix::process::CommandExt;
    let mut child = std::process::Command::new("sh")
        .args(["-c", script])
        .env(runbook_engine::EXECUTION_ID_VAR, run.to_string())
        .process_group(0)
        .spawn()
        .unwrap();
    let pid = child.id();
    std::thread::spawn(move || child.wait());
    pid
}

#[tokio::test]
async fn a_crashed_runs_leftovers_get_the_grace_period_of_the_command_it_was_running() {
    let run = Harness::start_with(
        EngineConfig {
            stop_grace: Duration::from_secs(3),
            ..EngineConfig::default()
        },
        vec![command("noop", "true")],
    );
    run.finish().await;
    let now = chrono::Utc::now();
    let runbook: runbook_domain::Runbook = serde_json::from_value(json!({
        "id": Uuid::new_v4(), "name": "drain", "version": 1,
        "created_at": now, "updated_at": now, "updated_by": "tester",
        "blocks": [
            {"id": "warn", "kind": "command", "script": "true"},
            {"id": "check", "kind": "conditional", "expr": "true", "then": [
                {"id": "drain", "kind": "command", "script": "drain", "stop_grace_secs": 45},
            ]},
            {"id": "migrate", "kind": "command", "script": "m", "stop_grace_secs": 100000},
            {"id": "wait", "kind": "timer", "seconds": 60},
        ],
    }))
    .unwrap();
    let crashed_at = |block: &str, status: StepStatus| {
        let mut execution = runbook_domain::Execution::queued(
            Uuid::new_v4(),
            &runbook,
            serde_json::Map::new(),
            "tester",
            now,
        );
        // As the sweep that found it interrupted stores it: the step it was at stopped,
        // with the run's end time.
        let swept = now + chrono::Duration::seconds(20);
        execution.status = ExecutionStatus::Interrupted;
        execution.finished_at = Some(swept);
        for step in &mut execution.steps {
            if step.block_id == block {
                step.status = status;
                step.finished_at = Some(swept);
            } else if step.status == StepStatus::Pending {
                step.status = StepStatus::Skipped;
            }
        }
        execution
    };
    let grace = |execution: &runbook_domain::Execution| {
        run.engine.leftover_grace(Some(execution), Some(&runbook))
    };
    for (block, status, secs) in [
        // Inside a branch, as a stop of that command would have given it; or not swept yet.
        ("drain", StepStatus::Stopped, 45),
        ("drain", StepStatus::Running, 45),
        ("drain", StepStatus::Paused, 45),
        // A command without its own: the default.
        ("warn", StepStatus::Running, 3),
        // Bounded however the runbook was stored.
        ("migrate", StepStatus::Stopped, 600),
        // Between commands (a timer running, nothing running).
        ("wait", StepStatus::Running, 3),
        ("drain", StepStatus::Succeeded, 3),
    ] {
        assert_eq!(
            grace(&crashed_at(block, status)),
            Duration::from_secs(secs),
            "{block} {status:?}"
        );
    }
    // A step stopped before the sweep (the run stopped there itself) is not where it was.
    let mut earlier = crashed_at("drain", StepStatus::Stopped);
    earlier.steps[2].finished_at = Some(now);
    assert_eq!(grace(&earlier), Duration::from_secs(3));
    // The run or its runbook unknown.
    let drained = crashed_at("drain", StepStatus::Running);
    assert_eq!(
        run.engine.leftover_grace(Some(&drained), None),
        Duration::from_secs(3)
    );
    assert_eq!(
        run.engine.leftover_grace(None, Some(&runbook)),
        Duration::from_secs(3)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_crashed_run_left_gets_sigterm_and_the_grace_period_before_sigkill() {
    let run = Harness::start_with(
        EngineConfig {
            stop_grace: Duration::from_secs(2),
            ..EngineConfig::default()
        },
        vec![command("noop", "true")],
    );
    run.finish().await;
    let dir = tempfile::tempdir().unwrap();
    let cleaned = dir.path().join("cleaned");
    let (tidy, stubborn) = (marker(323), marker(324));
    let (crashed, patient, other) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let tidy_group = leftover_of(
        crashed,
        &format!(
            "trap 'echo cleaned > {}; exit 0' TERM; while :; do sleep {tidy}; done",
            cleaned.display()
        ),
    );
    leftover_of(
        crashed,
        &format!("trap '' TERM; while :; do sleep {stubborn}; done"),
    );
    // Another crashed run whose command had a longer grace period of its own.
    let lingering = marker(327);
    leftover_of(
        patient,
        &format!("trap '' TERM; while :; do sleep {lingering}; done"),
    );
    // Another run's process is none of the reap's business.
    let bystander = marker(325);
    leftover_of(other, &format!("exec sleep {bystander}"));
    // Each shell with its sleep: its trap is set by then.
    wait_for_processes(&tidy, "the tidy leftover", |found| found.len() >= 2).await;
    wait_for_processes(&stubborn, "the stubborn leftover", |found| found.len() >= 2).await;
    wait_for_processes(&lingering, "the patient leftover", |found| found.len() >= 2).await;
    wait_for_processes(&bystander, "the bystander", |found| !found.is_empty()).await;
    // The tidy one was paused when its app crashed: only a SIGCONT lets its trap run.
    let stopped = std::process::Command::new("kill")
        .args(["-STOP", "--", &format!("-{tidy_group}")])
        .status()
        .unwrap();
    assert!(stopped.success());
    wait_for_processes(&tidy, "the tidy leftover to be stopped (T)", |found| {
        found.iter().all(|(_, state)| *state == 'T')
    })
    .await;

    let reaped_at = Instant::now();
    assert!(
        run.engine.reap(&[crashed, patient]) >= 6,
        "the three shells and their sleeps"
    );
    // Once read from storage: the grace of the command the patient run was at.
    run.engine.give_leftovers(patient, Duration::from_secs(4));
    // The clean-up trap ran: SIGTERM first.
    wait_until_gone(&tidy).await;
    assert_eq!(std::fs::read_to_string(&cleaned).unwrap(), "cleaned\n");
    // What ignores SIGTERM has the grace period, then SIGKILL.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !processes_with(&stubborn).is_empty() || reaped_at.elapsed() >= Duration::from_secs(2),
        "killed before its grace period was over"
    );
    // A retry of the run waits for this: until the SIGKILL at the grace period's end.
    run.engine.finish_reaping_of(crashed).await;
    assert!(reaped_at.elapsed() >= Duration::from_millis(1900));
    wait_until_gone(&stubborn).await;
    assert_eq!(
        processes_with(&bystander).len(),
        1,
        "another run's process lives on"
    );
    // Each run's leftovers have their own run's grace period.
    assert_eq!(
        processes_with(&lingering).len(),
        2,
        "killed before its own grace period was over"
    );
    run.engine.finish_reaping_of(patient).await;
    assert!(reaped_at.elapsed() >= Duration::from_millis(3900));
    wait_until_gone(&lingering).await;
    run.engine.reap(&[other]);
    wait_until_gone(&bystander).await;

    // Asked to kill now (a second quit signal): the grace period is not waited out.
    let (last, stubborn) = (Uuid::new_v4(), marker(326));
    leftover_of(
        last,
        &format!("trap '' TERM; while :; do sleep {stubborn}; done"),
    );
    wait_for_processes(&stubborn, "the last leftover", |found| found.len() >= 2).await;
    let reaped_at = Instant::now();
    assert!(run.engine.reap(&[last]) >= 2);
    run.engine.kill_now();
    wait_until_gone(&stubborn).await;
    assert!(
        reaped_at.elapsed() < Duration::from_millis(1900),
        "{:?}",
        reaped_at.elapsed()
    );
    // The run's retry would not wait for it either.
    tokio::time::timeout(Duration::from_secs(1), run.engine.finish_reaping_of(last))
        .await
        .expect("nothing left to wait for");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutting_down_waits_for_the_longest_grace_period_of_a_live_run() {
    let slow = marker(318);
    let dir = tempfile::tempdir().unwrap();
    let done = dir.path().join("cleaned");
    let run = slow_cleaner(&slow, "2.5", &done, json!({"stop_grace_secs": 10}));
    wait_for_processes(&slow, "the migration's sleep", |found| found.len() >= 2).await;
    // What an app quitting or a server told to stop does: no person asked for it.
    run.engine.shutdown().await;
    assert_eq!(
        run.record().stop_requests,
        vec![],
        "a shutdown is nobody's stop"
    );
    assert_eq!(
        std::fs::read_to_string(&done).unwrap_or_default(),
        "cleaned\n",
        "the shutdown waited for the command's clean-up"
    );
    assert_eq!(run.finish().await.status(), Some(ExecutionStatus::Stopped));
    wait_until_gone(&slow).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_suspends_the_process_group_and_resume_continues_it() {
    let dir = tempfile::tempdir().unwrap();
    let sleeper = marker(303);
    let script = format!(
        "sleep {sleeper} & echo waiting-for-release; \
         while [ ! -e release ]; do sleep 0.05; done; echo released; kill $!"
    );
    let run = Harness::start(vec![
        block(json!({"id": "held", "kind": "command", "script": script,
                     "workdir": dir.path().to_str().unwrap()})),
        command("after", "echo after-resume"),
    ]);
    wait_for_processes(&sleeper, "the shell and its sleep", |found| {
        found.len() >= 2
    })
    .await;
    // Stored as running first: a pause within the same batch would keep only its own
    // state of the step (as a store would), and the history below could not show both.
    run.wait_for("the step to be stored as running", |r| {
        r.step_status(0) == Some(StepStatus::Running)
    })
    .await;

    assert_eq!(
        run.control(ControlAction::Pause),
        Ok(ExecutionStatus::Paused)
    );
    run.wait_for("the run and step to be paused", |r| {
        r.status() == Some(ExecutionStatus::Paused) && r.step_status(0) == Some(StepStatus::Paused)
    })
    .await;
    wait_for_processes(&sleeper, "every process to be stopped (T)", |found| {
        found.len() >= 2 && found.iter().all(|(_, state)| *state == 'T')
    })
    .await;
    assert!(matches!(
        run.control(ControlAction::Pause),
        Err(ControlError::InvalidState { .. })
    ));

    // The shell would react to the file within 50 ms if it were running.
    std::fs::write(dir.path().join("release"), b"").unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let held = run.record();
    assert_eq!(held.status(), Some(ExecutionStatus::Paused));
    let shown: String = run
        .events()
        .iter()
        .filter_map(|e| match e {
            ExecutionEvent::Output { text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    assert!(shown.contains("waiting-for-release"));
    assert!(
        !shown.contains("released"),
        "a paused shell ran on: {shown:?}"
    );
    assert!(processes_with(&sleeper).iter().all(|(_, s)| *s == 'T'));

    assert_eq!(
        run.control(ControlAction::Resume),
        Ok(ExecutionStatus::Running)
    );
    let record = run.finish().await;
    assert_eq!(record.status(), Some(ExecutionStatus::Succeeded));
    let text = record.text();
    assert!(text.find("released").unwrap() < text.find("after-resume").unwrap());
    assert_eq!(
        record.run_statuses(),
        [
            ExecutionStatus::Running,
            ExecutionStatus::Paused,
            ExecutionStatus::Running,
            ExecutionStatus::Succeeded
        ]
    );
    // The step's return to running and its end may be stored in one batch, which keeps
    // a step's last state only; the run's states above are all kept.
    let step = record.step_statuses(0);
    assert_eq!(
        step[..2],
        [StepStatus::Running, StepStatus::Paused],
        "{step:?}"
    );
    assert_eq!(step.last(), Some(&StepStatus::Succeeded), "{step:?}");
    assert!(step.len() <= 4, "{step:?}");
    wait_until_gone(&sleeper).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_a_paused_command_ends_the_run() {
    let sleeper = marker(304);
    // `exec`: a shell that started the sleep itself could be paused while waiting in
    // vfork for the sleep to start, and would then show `D`, not `T`, until resumed.
    let run = Harness::start(vec![command("held", &format!("exec sleep {sleeper}"))]);
    wait_for_processes(&sleeper, "the sleep", |found| !found.is_empty()).await;
    run.control(ControlAction::Pause).unwrap();
    wait_for_processes(&sleeper, "the sleep to be stopped (T)", |found| {
        !found.is_empty() && found.iter().all(|(_, state)| *state == 'T')
    })
    .await;

    run.control(ControlAction::Stop).unwrap();
    let record = run.finish().await;
    assert_eq!(record.status(), Some(ExecutionStatus::Stopped));
    assert_eq!(record.step(0).status, StepStatus::Stopped);
    wait_until_gone(&sleeper).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_confirmation_waits_for_an_acknowledgement() {
    let run = Harness::start(vec![
        block(json!({"id": "check", "kind": "instruction",
                     "text": "Look at the dashboard\nthen confirm", "confirm": true})),
        command("act", "echo acting"),
    ]);
    let waiting = run
        .wait_for("the run to wait for a confirmation", |r| {
            r.status() == Some(ExecutionStatus::Waiting)
        })
        .await;
    assert_eq!(waiting.step_status(0), Some(StepStatus::Waiting));
    assert_eq!(
        waiting.step_status(1),
        None,
        "the next step has not started"
    );
    assert_eq!(
        run.engine.live_status(run.execution_id),
        Some(ExecutionStatus::Waiting)
    );
    assert!(matches!(
        run.control(ControlAction::Resume),
        Err(ControlError::InvalidState { .. })
    ));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(run.record().step_status(1), None, "still waiting");

    assert_eq!(
        run.control(ControlAction::Acknowledge),
        Ok(ExecutionStatus::Running)
    );
    let record = run.finish().await;
    assert_eq!(record.status(), Some(ExecutionStatus::Succeeded));
    assert_eq!(
        record.run_statuses(),
        [
            ExecutionStatus::Running,
            ExecutionStatus::Waiting,
            ExecutionStatus::Running,
            ExecutionStatus::Succeeded
        ]
    );
    assert_eq!(record.step(0).status, StepStatus::Succeeded);
    let text = record.text();
    assert!(text.find("then confirm").unwrap() < text.find("acting").unwrap());
    assert!(
        text.contains("Look at the dashboard\r\nthen confirm"),
        "{text:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_told_by_storage_that_it_ended_stops_its_processes_and_ends_interrupted() {
    let sleeper = marker(30);
    let run = Harness::start(vec![
        command(
            "loop",
            &format!("sleep {sleeper} & while true; do echo tick; sleep 0.05; done"),
        ),
        command("after", "echo never"),
    ]);
    let before = run
        .wait_for("the loop to tick", |r| r.text().contains("tick"))
        .await;
    wait_for_processes(&sleeper, "the background sleep", |found| !found.is_empty()).await;

    // Another instance marked the run interrupted: its next write is refused.
    run.refuse(Refuse::Everything);
    assert_eq!(run.announced_end().await, ExecutionStatus::Interrupted);
    wait_until_gone(&sleeper).await;
    assert!(processes_of_run(run.execution_id).is_empty());
    let after = run.record();
    assert!(!after.is_finished(), "nothing more was stored: {after:#?}");
    assert_eq!(after.step_status(1), None, "the next step never started");
    assert!(after.output.len() < before.output.len() + 64 * 1024);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_run_is_fenced_through_the_engine() {
    let sleeper = marker(30);
    let run = Harness::start(vec![command(
        "wait",
        &format!("echo started; sleep {sleeper}"),
    )]);
    run.wait_for("the command to start", |r| r.text().contains("started"))
        .await;
    run.refuse(Refuse::Everything);
    run.engine.fence(&[run.execution_id, Uuid::new_v4()]);
    assert_eq!(run.announced_end().await, ExecutionStatus::Interrupted);
    wait_until_gone(&sleeper).await;
    assert!(matches!(
        run.control(ControlAction::Stop),
        Err(ControlError::NotRunning)
    ));
}

/// A run waiting at a confirmation before a command that echoes `acting`.
async fn waiting_to_act() -> Harness {
    let run = Harness::start(vec![
        block(json!({"id": "check", "kind": "instruction", "text": "ok?", "confirm": true})),
        command("act", "echo acting"),
    ]);
    run.wait_for("the confirmation", |r| {
        r.status() == Some(ExecutionStatus::Waiting)
    })
    .await;
    run
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_end_is_refused_announces_the_interrupted_state_storage_has() {
    let run = waiting_to_act().await;
    // Marked interrupted elsewhere just as the run ends: only its end is refused.
    run.refuse(Refuse::TheEnd);
    run.control(ControlAction::Acknowledge).unwrap();
    assert_eq!(run.announced_end().await, ExecutionStatus::Interrupted);
    assert!(
        run.events
            .lock()
            .unwrap()
            .items
            .iter()
            .any(|e| matches!(e, ExecutionEvent::Output { text, .. } if text.contains("acting"))),
        "the last step ran"
    );
    assert!(!run.record().is_finished(), "the refused end is not stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_at_a_confirmation_is_recorded_and_announced_before_the_end() {
    let run = waiting_to_act().await;
    run.control(ControlAction::Stop).unwrap();
    // While the run is live it says who stopped it, before anything is stored; a run at a
    // confirmation may have ended (and left the engine) by the time this asks.
    if let Some(request) = run.engine.stop_request(run.execution_id) {
        assert_eq!(request.by, "tester");
    }
    assert_eq!(run.announced_end().await, ExecutionStatus::Stopped);
    let record = run.finish().await;
    assert_eq!(record.stop_requests.len(), 1, "{:?}", record.stop_requests);
    assert_eq!(record.stop_requests[0].by, "tester");
    assert!(record.problems.is_empty(), "{:?}", record.problems);
    let events = run.events.lock().unwrap().items.clone();
    let told = events
        .iter()
        .position(|e| matches!(e, ExecutionEvent::StopRequested { by, .. } if by == "tester"))
        .expect("the stop request is announced");
    let ended = events
        .iter()
        .position(|e| matches!(e, ExecutionEvent::Status { status, .. } if status.is_finished()))
        .expect("the end is announced");
    assert!(told < ended, "{events:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timer_waits_its_seconds() {
    let run = Harness::start(vec![
        block(json!({"id": "breathe", "kind": "timer", "seconds": 1})),
        command("after", "echo done"),
    ]);
    let record = run.finish().await;
    assert!(
        run.started.elapsed() >= Duration::from_millis(950),
        "finished after {:?}",
        run.started.elapsed()
    );
    assert_eq!(record.status(), Some(ExecutionStatus::Succeeded));
    assert_eq!(record.step(0).status, StepStatus::Succeeded);
    assert!(record.text().contains("waiting 1 s"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pausing_freezes_a_timer() {
    let run = Harness::start(vec![
        block(json!({"id": "soak", "kind": "timer", "seconds": 2})),
        command("after", "echo done"),
    ]);
    run.wait_for("the timer to start", |r| {
        r.step_status(0) == Some(StepStatus::Running)
    })
    .await;
    let timer_started = Instant::now();
    assert_eq!(
        run.control(ControlAction::Pause),
        Ok(ExecutionStatus::Paused)
    );
    run.wait_for("the timer to pause", |r| {
        r.step_status(0) == Some(StepStatus::Paused)
    })
    .await;

    // Longer than the whole timer: a timer that kept counting would have fired.
    let hold = Duration::from_millis(2300);
    tokio::time::sleep(hold).await;
    let held = run.record();
    assert_eq!(held.step_status(0), Some(StepStatus::Paused));
    assert_eq!(held.step_status(1), None, "the next step has not started");

    assert_eq!(
        run.control(ControlAction::Resume),
        Ok(ExecutionStatus::Running)
    );
    let record = run.finish().await;
    assert!(
        timer_started.elapsed() >= Duration::from_secs(2) + hold - Duration::from_millis(100),
        "the paused time does not count towards the timer"
    );
    assert_eq!(record.status(), Some(ExecutionStatus::Succeeded));
    assert_eq!(
        record.step_statuses(0),
        [
            StepStatus::Running,
            StepStatus::Paused,
            StepStatus::Running,
            StepStatus::Succeeded
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_events_are_contiguous_and_match_the_persisted_console() {
    let run = Harness::start(vec![
        command(
            "chatty",
            "for i in 1 2 3 4 5; do echo \"line $i\"; sleep 0.05; done; printf '€uro ✓\\n' >&2",
        ),
        block(json!({"id": "note", "kind": "instruction", "text": "ünïcödé"})),
        command("tail", "printf 'no newline at the end'"),
    ]);
    let record = run.finish().await;
    let mut expected_offset = 0;
    let mut shown = String::new();
    for event in run.events() {
        if let ExecutionEvent::Output { offset, text, .. } = event {
            assert_eq!(offset, expected_offset, "events leave no gaps or overlaps");
            assert!(!text.is_empty());
            expected_offset += text.len() as u64;
            shown.push_str(&text);
        }
    }
    assert_eq!(
        shown,
        record.text(),
        "the live console equals the stored one"
    );
    assert!(shown.contains("line 5") && shown.contains("€uro ✓") && shown.contains("ünïcödé"));
    assert!(shown.contains("no newline at the end"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_instant_steps_is_stored_whole_and_in_order() {
    // Instructions finish at once: far more records than one batch takes arrive together.
    let blocks: Vec<_> = (0..1500)
        .map(|i| block(json!({"id": format!("note-{i}"), "kind": "instruction", "text": format!("line {i}")})))
        .collect();
    let run = Harness::start(blocks);
    let record = run.finish().await;
    assert_eq!(record.status(), Some(ExecutionStatus::Succeeded));
    for index in 0..1500 {
        assert_eq!(
            record.step(index).status,
            StepStatus::Succeeded,
            "step {index}"
        );
        assert_eq!(
            record.step_statuses(index).last(),
            Some(&StepStatus::Succeeded)
        );
    }
    let text = record.text();
    assert!(text.find("line 0\r\n").unwrap() < text.find("line 1499\r\n").unwrap());
    let total: u64 = (0..1500).map(|i| record.step(i).output_bytes).sum();
    assert_eq!(total, record.output.len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_output_is_persisted_completely_in_batches() {
    const BYTES: usize = 20_000_000;
    let run = Harness::start(vec![command("flood", &format!("yes | head -c {BYTES}"))]);
    let record = run.finish().await;
    assert_eq!(record.status(), Some(ExecutionStatus::Succeeded));
    assert_eq!(record.step(0).output_bytes, record.output.len() as u64);

    // Strip the step's header and footer lines; what is left is exactly the command's output.
    let text = record.text();
    let body_start = text.find("(command)\r\n").expect("a header") + "(command)\r\n".len();
    let body_end = text.rfind("\x1b[32m✔ flood").expect("a footer");
    let body = &text[body_start..body_end];
    assert_eq!(body.len(), BYTES);
    assert!(body.as_bytes().chunks(2).all(|pair| pair == b"y\n"));

    let events = run.events.lock().unwrap();
    let reads = events
        .items
        .iter()
        .filter(|e| matches!(e, ExecutionEvent::Output { .. }))
        .count() as u64
        + events.lagged;
    assert!(
        reads >= (BYTES / (64 * 1024)) as u64,
        "{reads} reads of at most 64 KiB"
    );
    assert!(
        (record.output_calls as u64) * 2 < reads,
        "{} sink calls for {reads} reads: output is not batched",
        record.output_calls
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_of_an_unknown_run_is_refused() {
    let engine = Engine::new(
        quick_config(),
        Arc::new(MemorySink {
            execution_id: Uuid::nil(),
            record: Mutex::new(Record::default()),
            refuse: Mutex::new(Refuse::Nothing),
        }),
        Arc::new(runbook_engine::NoCredentials),
    );
    assert_eq!(
        engine.control(Uuid::new_v4(), ControlAction::Pause, "tester"),
        Err(ControlError::NotRunning)
    );
    assert_eq!(engine.live_status(Uuid::new_v4()), None);
}
