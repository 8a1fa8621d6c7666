//! The `runbook-studio` binary as a user runs it: `keys create`, `migrate`, `run`, `console`
//! (exit codes, streamed console), `control` of a run another process executes, `serve` with a graceful stop on SIGTERM (its live
//! runs stopped), and errors that say what is wrong without repeating a password.

use runbook_core::{Actor, Config, Service};
use serde_json::json;
use std::process::Stdio;
use std::time::{Duration, Instant};

mod common;

use common::{cli, create_key, free_port, BIN};

#[test]
fn keys_create_prints_the_token_alone_on_the_last_line() {
    let dir = tempfile::tempdir().unwrap();
    let output = cli(dir.path())
        .args(["keys", "create", "--name", "ci", "--role", "admin"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8(output.stdout).unwrap();
    let last = stdout.lines().last().unwrap();
    assert!(last.starts_with("rbs_") && last.len() == 68, "{stdout}");
    assert!(!last.contains(' '));

    let bad_role = cli(dir.path())
        .args(["keys", "create", "--name", "x", "--role", "root"])
        .output()
        .unwrap();
    assert!(!bad_role.status.success());
    assert!(String::from_utf8_lossy(&bad_role.stderr).contains("unknown role"));
}

#[test]
fn migrate_creates_the_database_in_the_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let output = cli(dir.path()).arg("migrate").output().unwrap();
    assert!(output.status.success(), "{output:?}");
    assert!(dir.path().join("runbook-studio.db").is_file());
    // Its log (the master key kept in a file) is plain text when it is not a terminal.
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(log.contains("no keychain"), "{log}");
    assert!(!log.contains('\x1b'), "{log:?}");
}

#[test]
fn boolean_variables_take_the_usual_spellings() {
    let dir = tempfile::tempdir().unwrap();
    for value in ["1", "yes", "on", "true", "TRUE"] {
        let output = cli(dir.path())
            .env("RUNBOOK_NO_KEYCHAIN", value)
            .arg("migrate")
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "RUNBOOK_NO_KEYCHAIN={value}: {output:?}"
        );
    }
    let output = cli(dir.path())
        .env("RUNBOOK_NO_KEYCHAIN", "maybe")
        .arg("migrate")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stderr).contains("maybe"));
}

/// Stores runbooks in the data directory `dir`, as the app would.
fn create_runbooks(dir: &std::path::Path, runbooks: &[serde_json::Value]) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let service = Service::open(Config::from_data_dir(dir)).await.unwrap();
        for body in runbooks {
            service
                .create_runbook(&Actor::system(), body.clone())
                .await
                .unwrap();
        }
    });
}

#[test]
fn run_streams_the_console_and_exits_non_zero_on_failure() {
    let dir = tempfile::tempdir().unwrap();
    let runbooks: Vec<_> = [
        ("Greets", "echo hello-$((40 + 2))"),
        ("Breaks", "echo partial; exit 7"),
        ("Twin", "true"),
        ("Twin", "true"),
    ]
    .into_iter()
    .map(|(name, script)| {
        json!({"name": name, "blocks": [
            {"id": "main", "kind": "command", "script": script},
            {"id": "after", "kind": "command", "script": "echo never-on-failure"}
        ]})
    })
    .collect();
    create_runbooks(dir.path(), &runbooks);

    let ok = cli(dir.path()).args(["run", "Greets"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert!(ok.status.success(), "{ok:?}");
    assert!(stdout.contains("hello-42"), "{stdout}");
    // Into a pipe the console is plain text; colours only where they are asked for.
    assert!(stdout.contains("▶ main (command)\n"), "{stdout:?}");
    assert!(!stdout.contains('\x1b'), "{stdout:?}");
    let forced = cli(dir.path())
        .env("CLICOLOR_FORCE", "1")
        .args(["run", "Greets"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&forced.stdout);
    assert!(stdout.contains("\x1b[1;36m▶ main\x1b[0m"), "{stdout:?}");

    let failed = cli(dir.path()).args(["run", "Breaks"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&failed.stdout);
    assert_eq!(failed.status.code(), Some(1), "{failed:?}");
    assert!(stdout.contains("partial"));
    assert!(!stdout.contains("never-on-failure"));

    let twins = cli(dir.path()).args(["run", "Twin"]).output().unwrap();
    assert!(!twins.status.success());
    assert!(String::from_utf8_lossy(&twins.stderr).contains("several runbooks are named `Twin`"));

    let missing = cli(dir.path()).args(["run", "Nope"]).output().unwrap();
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no runbook is named"));
}

#[test]
fn run_prints_the_whole_console_even_when_the_terminal_falls_behind() {
    const BYTES: usize = 100_000_000;
    let dir = tempfile::tempdir().unwrap();
    let script = format!("head -c {BYTES} /dev/zero | tr '\\0' x; echo; echo end-marker");
    create_runbooks(
        dir.path(),
        &[json!({"name": "Floods", "blocks": [
            {"id": "flood", "kind": "command", "script": script}
        ]})],
    );

    let child = cli(dir.path())
        .args(["run", "Floods"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Nobody reads for a while: the pipe fills, and the run races far ahead of the
    // terminal, beyond the events the CLI can hold.
    std::thread::sleep(Duration::from_secs(2));
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{:?}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = output.stdout;
    assert_eq!(
        stdout.iter().filter(|byte| **byte == b'x').count(),
        BYTES,
        "every byte reaches the terminal once"
    );
    let tail = String::from_utf8_lossy(&stdout[stdout.len() - 200..]);
    assert!(tail.contains("\nend-marker\n"), "{tail:?}");
    let head = String::from_utf8_lossy(&stdout[..64]);
    assert!(head.starts_with("▶ flood (command)\nxxx"), "{head:?}");
}

/// Collects a child's pipe in the background.
fn collect(
    mut pipe: impl std::io::Read + Send + 'static,
) -> std::sync::Arc<std::sync::Mutex<String>> {
    let text = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let sink = text.clone();
    std::thread::spawn(move || {
        let mut buffer = [0u8; 4096];
        while let Ok(n) = pipe.read(&mut buffer) {
            if n == 0 {
                break;
            }
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buffer[..n]));
        }
    });
    text
}

fn wait_for_text(text: &std::sync::Mutex<String>, wanted: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !text.lock().unwrap().contains(wanted) {
        assert!(
            Instant::now() < deadline,
            "never saw {wanted:?} in {:?}",
            text.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `runbook-studio run NAME` with its stdout and stderr collected as they come.
fn run_piped(
    dir: &std::path::Path,
    name: &str,
) -> (
    std::process::Child,
    std::sync::Arc<std::sync::Mutex<String>>,
    std::sync::Arc<std::sync::Mutex<String>>,
) {
    let mut child = cli(dir)
        .args(["run", name])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = collect(child.stdout.take().unwrap());
    let stderr = collect(child.stderr.take().unwrap());
    (child, stdout, stderr)
}

/// Sends a signal to `child`, as a terminal's keys would.
fn signaller(child: &std::process::Child) -> impl Fn(nix::sys::signal::Signal) {
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    move |signal| nix::sys::signal::kill(pid, signal).unwrap()
}

#[test]
fn ctrl_z_pauses_and_resumes_the_run_and_ctrl_c_stops_it() {
    let dir = tempfile::tempdir().unwrap();
    create_runbooks(
        dir.path(),
        &[json!({"name": "Naps", "blocks": [
            {"id": "nap", "kind": "command", "script": "echo started; sleep 30; echo woke"}
        ]})],
    );

    let (mut child, stdout, stderr) = run_piped(dir.path(), "Naps");
    wait_for_text(&stdout, "started\n");
    let send = signaller(&child);

    send(nix::sys::signal::Signal::SIGTSTP);
    wait_for_text(&stderr, "run paused (Ctrl+Z again to resume)");
    send(nix::sys::signal::Signal::SIGTSTP);
    wait_for_text(&stderr, "run running (Ctrl+Z again to pause)");
    send(nix::sys::signal::Signal::SIGINT);
    wait_for_text(&stderr, "stopping the run");

    let code = exit_within(&mut child, Duration::from_secs(20), &stderr);
    assert_eq!(code, 1, "{:?}", stderr.lock().unwrap());
    wait_for_text(&stderr, " stopped\n");
    assert!(!stdout.lock().unwrap().contains("woke"));
}

#[test]
fn a_second_ctrl_c_kills_what_a_long_grace_period_would_wait_for() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("stubborn.pid");
    create_runbooks(
        dir.path(),
        &[json!({"name": "Stubborn", "blocks": [
            {"id": "drain", "kind": "command", "stop_grace_secs": 600, "script": format!(
                "trap '' TERM; echo $$ > '{}'; echo started; while true; do sleep 1; done",
                pid_file.display()
            )}
        ]})],
    );
    let (mut child, stdout, stderr) = run_piped(dir.path(), "Stubborn");
    wait_for_text(&stdout, "started\n");
    let send = signaller(&child);
    send(nix::sys::signal::Signal::SIGINT);
    wait_for_text(&stderr, "Ctrl+C again kills it at once");
    // The shell ignores SIGTERM: without a second Ctrl+C it would get its ten minutes.
    send(nix::sys::signal::Signal::SIGINT);
    wait_for_text(&stderr, "killing its processes now");
    let code = exit_within(&mut child, Duration::from_secs(60), &stderr);
    let ended = process_ends(&pid_file);
    assert_eq!(code, 1, "{:?}", stderr.lock().unwrap());
    assert!(ended, "the shell outlives the run");
    assert_eq!(last_run_status(dir.path()), "stopped");
}

/// Runs `runbook-studio run NAME` on a terminal of its own (util-linux `script` gives
/// it one): what the test writes to the child's stdin is typed on that terminal, and
/// what the terminal shows comes out of its stdout. `script` starts the command through
/// a shell, which `exec` replaces: a shell left waiting in between (dash does not exec
/// a lone command by itself) would be killed by the Ctrl+C typed for the CLI.
fn run_on_a_terminal(dir: &std::path::Path, name: &str) -> std::process::Child {
    let plain = cli(dir);
    let mut command = std::process::Command::new("script");
    for (key, value) in plain.get_envs() {
        match value {
            Some(value) => command.env(key, value),
            None => command.env_remove(key),
        };
    }
    command
        .env("SHELL", "/bin/sh")
        .args(["-qfec", &format!("exec '{BIN}' run '{name}'"), "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn exit_within(
    child: &mut std::process::Child,
    patience: Duration,
    output: &std::sync::Mutex<String>,
) -> i32 {
    let deadline = Instant::now() + patience;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code().unwrap_or(-1);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the CLI did not end: {:?}", output.lock().unwrap());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_confirmation_is_asked_on_the_terminal_and_ctrl_c_at_the_prompt_stops_the_run() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    create_runbooks(
        dir.path(),
        &[json!({"name": "Ask", "blocks": [
            {"id": "ask", "kind": "instruction", "text": "Drain the node?", "confirm": true},
            {"id": "after", "kind": "command", "script": "echo drained-$((6 * 7))"}
        ]})],
    );

    // Answered yes: the run goes on.
    let mut child = run_on_a_terminal(dir.path(), "Ask");
    let shown = collect(child.stdout.take().unwrap());
    wait_for_text(&shown, "Continue? [y/N]");
    child.stdin.as_mut().unwrap().write_all(b"y\n").unwrap();
    assert_eq!(exit_within(&mut child, Duration::from_secs(20), &shown), 0);
    assert!(
        shown.lock().unwrap().contains("drained-42"),
        "{:?}",
        shown.lock().unwrap()
    );

    // Ctrl+C while the question waits: the run stops at once, with no Enter needed.
    let mut child = run_on_a_terminal(dir.path(), "Ask");
    let shown = collect(child.stdout.take().unwrap());
    wait_for_text(&shown, "Continue? [y/N]");
    child.stdin.as_mut().unwrap().write_all(b"\x03").unwrap();
    assert_eq!(exit_within(&mut child, Duration::from_secs(20), &shown), 1);
    let shown = shown.lock().unwrap().clone();
    assert!(shown.contains(" stopped"), "{shown:?}");
    assert!(!shown.contains("drained-42"), "{shown:?}");
    assert!(!shown.contains("error"), "{shown:?}");
}

/// An HTTPS server on loopback whose certificate (for 127.0.0.1) is signed by a
/// certificate authority of its own, made here; returns its port and that authority's
/// certificate in PEM. Every request gets `trusted-answer`.
fn https_server() -> (u16, String) {
    use std::io::{Read, Write};
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Runbook Studio test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![cert.der().clone()],
        rustls::pki_types::PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
    )
    .unwrap();
    let config = std::sync::Arc::new(config);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let config = config.clone();
            std::thread::spawn(move || {
                let connection = rustls::ServerConnection::new(config).unwrap();
                let mut tls = rustls::StreamOwned::new(connection, stream);
                let (mut request, mut buffer) = (Vec::new(), [0u8; 1024]);
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buffer) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buffer[..n]),
                    }
                }
                let body = "trusted-answer";
                let _ = write!(
                    tls,
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                tls.conn.send_close_notify();
                let _ = tls.flush();
            });
        }
    });
    (port, ca.pem())
}

#[test]
fn api_calls_trust_the_certificate_authorities_of_the_system_store() {
    let (port, ca) = https_server();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("company-ca.pem");
    std::fs::write(&ca_file, ca).unwrap();
    create_runbooks(
        dir.path(),
        &[json!({"name": "Internal", "blocks": [
            {"id": "health", "kind": "api_call", "method": "GET",
             "url": format!("https://127.0.0.1:{port}/health")}
        ]})],
    );

    // An authority no trust store holds: the call is refused.
    let untrusted = cli(dir.path())
        .env_remove("SSL_CERT_FILE")
        .env_remove("SSL_CERT_DIR")
        .args(["run", "Internal"])
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&untrusted.stdout);
    assert_eq!(untrusted.status.code(), Some(1), "{untrusted:?}");
    assert!(shown.contains("certificate"), "{shown}");
    assert!(!shown.contains("trusted-answer"), "{shown}");

    // The same authority in the system's trust store (SSL_CERT_FILE names the bundle
    // there, as on a machine whose company installs its own authority): trusted.
    let trusted = cli(dir.path())
        .env("SSL_CERT_FILE", &ca_file)
        .args(["run", "Internal"])
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&trusted.stdout);
    assert!(trusted.status.success(), "{trusted:?}");
    assert!(shown.contains("trusted-answer"), "{shown}");
}

#[test]
fn serve_answers_with_a_key_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let token = create_key(dir.path(), "ops", "viewer");
    let port = free_port();
    let mut server = cli(dir.path())
        .args(["serve", "--addr", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let me = runtime.block_on(async {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match client
                .get(format!("http://127.0.0.1:{port}/me"))
                .header("x-api-key", &token)
                .send()
                .await
            {
                Ok(response) => return response.json::<serde_json::Value>().await.unwrap(),
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await
                }
                Err(error) => panic!("the server never answered: {error}"),
            }
        }
    });
    assert_eq!(me["name"], "ops");
    assert_eq!(me["role"], "viewer");

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(server.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = server.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the server ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
}

#[test]
fn console_follow_prints_a_run_another_process_executes_to_its_end_and_exits_by_its_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let go = dir.path().join("go");
    // Two lines, then a wait until the follower has joined, then the rest.
    let script = format!(
        "echo tick-1; echo tick-2; while [ ! -e '{}' ]; do sleep 0.05; done; \
         for i in 3 4 5 6; do echo tick-$i; sleep 0.2; done; exit 3",
        go.display()
    );
    create_runbooks(
        dir.path(),
        &[
            json!({"name": "Slow", "blocks": [{"id": "count", "kind": "command", "script": script}]}),
        ],
    );
    let (mut runner, ran, _) = run_piped(dir.path(), "Slow");
    wait_for_text(&ran, "tick-2\n");

    // Joined halfway: what was printed before comes from the store, the rest as it comes.
    let id = last_run_id(dir.path());
    let mut follower = follow_console(dir.path(), &id);
    let stdout = collect(follower.stdout.take().unwrap());
    let stderr = collect(follower.stderr.take().unwrap());
    wait_for_text(&stdout, "tick-2\n");
    std::fs::write(&go, "").unwrap();
    let code = exit_within(&mut follower, Duration::from_secs(30), &stdout);
    wait_for_text(&stderr, &format!("run {id} failed"));
    assert_eq!(code, 1, "{:?}", stderr.lock().unwrap());
    let stdout = stdout.lock().unwrap().clone();
    let ticks: Vec<&str> = stdout
        .lines()
        .filter(|line| line.starts_with("tick-"))
        .collect();
    assert_eq!(
        ticks,
        ["tick-1", "tick-2", "tick-3", "tick-4", "tick-5", "tick-6"],
        "{stdout}"
    );
    assert!(!stdout.contains('\x1b'), "plain into a pipe: {stdout:?}");
    assert!(!runner.wait().unwrap().success());
    assert_eq!(last_run_status(dir.path()), "failed");

    // A run that has ended: its console, and its outcome.
    let again = cli(dir.path())
        .args(["console", &id, "-f", "--raw"])
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(1), "{again:?}");
    let stdout = String::from_utf8(again.stdout).unwrap();
    assert!(stdout.contains("tick-6"), "{stdout}");
    assert!(stdout.contains('\x1b'), "colours with --raw: {stdout:?}");
}

#[test]
fn console_follow_ends_once_its_reader_has_gone_while_the_run_is_quiet() {
    let dir = tempfile::tempdir().unwrap();
    create_runbooks(
        dir.path(),
        &[
            json!({"name": "Quiet", "blocks": [{"id": "wait", "kind": "command",
            "script": "echo started; sleep 60"}]}),
        ],
    );
    let (mut runner, ran, _) = run_piped(dir.path(), "Quiet");
    wait_for_text(&ran, "started\n");
    let id = last_run_id(dir.path());

    let mut follower = follow_console(dir.path(), &id);
    let mut reader = std::io::BufReader::new(follower.stdout.take().unwrap());
    let mut line = String::new();
    while !line.contains("started") {
        line.clear();
        let read = std::io::BufRead::read_line(&mut reader, &mut line).unwrap();
        assert!(read > 0, "the follower ended before the run's first line");
    }
    // The reader has what it wanted (`| grep -m1 started`) and goes.
    drop(reader);
    let stderr = collect(follower.stderr.take().unwrap());
    assert_eq!(
        exit_within(&mut follower, Duration::from_secs(10), &stderr),
        0
    );

    // The run itself goes on, untouched.
    assert_eq!(last_run_status(dir.path()), "running");
    let stopped = cli(dir.path())
        .args(["control", &id, "stop"])
        .output()
        .unwrap();
    assert!(stopped.status.success(), "{stopped:?}");
    assert!(!runner.wait().unwrap().success());
}

/// `runbook-studio console ID --follow` with its stdout and stderr piped.
fn follow_console(dir: &std::path::Path, id: &str) -> std::process::Child {
    cli(dir)
        .args(["console", id, "--follow"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The id of the run started last in `dir`'s database.
fn last_run_id(dir: &std::path::Path) -> String {
    common::sqlite3(
        &dir.join("runbook-studio.db"),
        "SELECT id FROM executions ORDER BY created_at DESC LIMIT 1",
    )
    .trim()
    .to_string()
}

#[test]
fn serve_stops_on_sigterm_even_while_a_client_has_stopped_reading_a_console() {
    let dir = tempfile::tempdir().unwrap();
    // Far more than the sockets' buffers hold, so the server is left with a body to send.
    create_runbooks(
        dir.path(),
        &[
            json!({"name": "Big", "blocks": [{"id": "fill", "kind": "command",
            "script": "yes 0123456789abcdef | head -c 60000000"}]}),
        ],
    );
    let ran = cli(dir.path())
        .args(["run", "Big"])
        .stdout(Stdio::null())
        .output()
        .unwrap();
    assert!(ran.status.success(), "{ran:?}");
    let id = last_run_id(dir.path());
    let token = create_key(dir.path(), "ops", "viewer");
    let port = free_port();
    let mut server = cli(dir.path())
        .args(["serve", "--addr", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut reader = loop {
        match std::net::TcpStream::connect(("127.0.0.1", port)) {
            Ok(stream) => break stream,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            Err(error) => panic!("the server never answered: {error}"),
        }
    };
    let request = format!(
        "GET /executions/{}/console HTTP/1.1\r\nhost: localhost\r\nx-api-key: {token}\r\n\r\n",
        id
    );
    std::io::Write::write_all(&mut reader, request.as_bytes()).unwrap();
    let mut start = [0; 4096];
    let read = std::io::Read::read(&mut reader, &mut start).unwrap();
    assert!(
        String::from_utf8_lossy(&start[..read]).starts_with("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&start[..read])
    );
    // The client reads no more, and keeps its connection open.
    std::thread::sleep(Duration::from_millis(500));

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(server.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let asked = Instant::now();
    let status = loop {
        if let Some(status) = server.try_wait().unwrap() {
            break status;
        }
        assert!(
            asked.elapsed() < Duration::from_secs(30),
            "the server waits for the stalled download"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
    drop(reader);
}

/// A runbook `Ticks` whose command prints a line every tenth of a second forever and
/// leaves a process of its own in the background, its pid in `bg.pid` in `dir`.
fn create_ticking_runbook(dir: &std::path::Path) -> std::path::PathBuf {
    let pid_file = dir.join("bg.pid");
    let script = format!(
        "sleep 300 & echo $! > '{}'; i=0; while :; do i=$((i + 1)); echo tick $i; sleep 0.1; done",
        pid_file.display()
    );
    create_runbooks(
        dir,
        &[json!({"name": "Ticks", "blocks": [
            {"id": "tick", "kind": "command", "script": script}
        ]})],
    );
    pid_file
}

type Collected = std::sync::Arc<std::sync::Mutex<String>>;

/// `run Ticks` (see [`create_ticking_runbook`]) logging at `log_level`, its stdout and
/// stderr collected, once it has ticked twice.
fn run_ticks(
    dir: &std::path::Path,
    log_level: &str,
) -> (std::process::Child, Collected, Collected) {
    let mut child = cli(dir)
        .env("RUNBOOK_LOG", log_level)
        .args(["run", "Ticks"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = collect(child.stdout.take().unwrap());
    let stderr = collect(child.stderr.take().unwrap());
    wait_for_text(&stdout, "tick 2\n");
    (child, stdout, stderr)
}

/// Whether the process is gone (or a zombie nobody has reaped yet), waiting a little.
fn process_ends(pid_file: &std::path::Path) -> bool {
    let pid: i32 = std::fs::read_to_string(pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let zombie = state
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z'));
        if state.is_empty() || zombie {
            return true;
        }
        if Instant::now() > deadline {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn console_prints_a_past_runs_whole_console_plain_or_raw() {
    let dir = tempfile::tempdir().unwrap();
    create_runbooks(
        dir.path(),
        &[
            json!({"name": "Colours", "blocks": [{"id": "paint", "kind": "command",
            "script": "printf '\\033[31mred\\033[0m\\r\\n'; seq 1 100000"}]}),
        ],
    );
    assert!(cli(dir.path())
        .args(["run", "Colours"])
        .output()
        .unwrap()
        .status
        .success());
    let id = last_run_id(dir.path());
    let id = id.as_str();

    let plain = cli(dir.path()).args(["console", id]).output().unwrap();
    assert!(plain.status.success(), "{plain:?}");
    let stdout = String::from_utf8(plain.stdout).unwrap();
    assert!(
        stdout.contains("▶ paint (command)\nred\n1\n2\n3\n"),
        "{stdout:?}"
    );
    assert!(!stdout.contains(['\x1b', '\r']), "{stdout:?}");
    assert!(stdout.contains("\n99999\n100000\n"), "the whole console");

    let raw = cli(dir.path())
        .args(["console", id, "--raw"])
        .output()
        .unwrap();
    assert!(raw.status.success(), "{raw:?}");
    let stdout = String::from_utf8(raw.stdout).unwrap();
    assert!(stdout.contains("\x1b[31mred\x1b[0m\r\n"), "{stdout:?}");

    let missing = cli(dir.path())
        .args(["console", "00000000-0000-4000-8000-000000000000"])
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("not found"),
        "{missing:?}"
    );
    // A reader that has read enough (`| head`) ends the command quietly, not as a failure.
    let mut head = cli(dir.path())
        .args(["console", id])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0; 16];
    std::io::Read::read_exact(head.stdout.as_mut().unwrap(), &mut first).unwrap();
    drop(head.stdout.take());
    let output = head.wait_with_output().unwrap();
    assert!(output.status.success(), "{output:?}");
    assert!(output.stderr.is_empty(), "{output:?}");

    let malformed = cli(dir.path())
        .args(["console", "../etc"])
        .output()
        .unwrap();
    assert!(!malformed.status.success());
    assert!(String::from_utf8_lossy(&malformed.stderr).contains("is not an execution id"));
}

fn last_run_status(dir: &std::path::Path) -> String {
    common::sqlite3(
        &dir.join("runbook-studio.db"),
        "SELECT status FROM executions ORDER BY created_at DESC LIMIT 1",
    )
    .trim()
    .to_string()
}

#[test]
fn a_reader_that_goes_away_stops_the_run_without_a_panic() {
    // `| head -n 2`: stdout is closed while the run goes on; `2>&1 | head -n 2`: stderr
    // too, so not even the status lines can be written.
    for redirect in ["", "2>&1"] {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = create_ticking_runbook(dir.path());
        let plain = cli(dir.path());
        let mut command = std::process::Command::new("bash");
        for (key, value) in plain.get_envs() {
            match value {
                Some(value) => command.env(key, value),
                None => command.env_remove(key),
            };
        }
        let output = command
            .args([
                "-c",
                &format!(
                    "'{BIN}' run Ticks {redirect} | head -n 2 >/dev/null; exit ${{PIPESTATUS[0]}}"
                ),
            ])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        // First, so a failure leaves no process behind.
        let ended = process_ends(&pid_file);
        assert_eq!(output.status.code(), Some(1), "{redirect}: {stderr}");
        assert!(!stderr.contains("panicked"), "{redirect}: {stderr}");
        if redirect.is_empty() {
            assert!(stderr.contains("stopping the run"), "{stderr}");
            assert!(stderr.contains(" stopped\n"), "{stderr}");
        }
        assert_eq!(
            last_run_status(dir.path()),
            "stopped",
            "{redirect}: {stderr}"
        );
        assert!(ended, "{redirect}: the run's processes outlive the CLI");
    }
}

#[test]
fn a_hang_up_stops_the_run_instead_of_orphaning_its_processes() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = create_ticking_runbook(dir.path());
    let (mut child, _stdout, stderr) = run_ticks(dir.path(), "warn");
    // The terminal (or the SSH session) it ran on went away.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
    let code = exit_within(&mut child, Duration::from_secs(20), &stderr);
    // First, so a failure leaves no process behind.
    let ended = process_ends(&pid_file);
    assert_eq!(code, 1, "{:?}", stderr.lock().unwrap());
    wait_for_text(&stderr, " stopped\n");
    assert_eq!(last_run_status(dir.path()), "stopped");
    assert!(ended, "the run's processes outlive the CLI");
}

#[test]
fn control_pauses_resumes_and_stops_a_run_another_process_executes() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = create_ticking_runbook(dir.path());
    // Its log says who controls it from elsewhere (at the default level, `info`).
    let (mut child, stdout, stderr) = run_ticks(dir.path(), "info");
    let id = common::sqlite3(
        &dir.path().join("runbook-studio.db"),
        "SELECT id FROM executions ORDER BY created_at DESC LIMIT 1",
    )
    .trim()
    .to_string();
    let control = |args: &[&str]| {
        let output = cli(dir.path())
            .env("USER", "oncall-bob")
            .args(["control", &id])
            .args(args)
            .output()
            .unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };

    let (code, out, err) = control(&["pause"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out, format!("Run {id} is paused.\n"));
    // The terminal the run executes in says who paused it.
    wait_for_text(&stderr, "by=oncall-bob");
    // Suspended where it executes: the ticks stop.
    std::thread::sleep(Duration::from_millis(300));
    let frozen = stdout.lock().unwrap().len();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        stdout.lock().unwrap().len(),
        frozen,
        "ticks went on while paused"
    );
    let (code, _, err) = control(&["pause"]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("cannot pause an execution that is paused"),
        "{err}"
    );

    let (code, out, err) = control(&["resume"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out, format!("Run {id} is running.\n"));
    let seen = stdout.lock().unwrap().len();
    let deadline = Instant::now() + Duration::from_secs(10);
    while stdout.lock().unwrap().len() == seen {
        assert!(Instant::now() < deadline, "the ticks never resumed");
        std::thread::sleep(Duration::from_millis(20));
    }

    let (code, out, err) = control(&["stop"]);
    assert_eq!(code, Some(0), "{err}");
    // Answered as accepted, before or after the run has wound down.
    assert!(
        out == format!(
            "Run {id} is stopping (stop requested by oncall-bob); it ends once its processes are gone.\n"
        ) || out == format!("Run {id} is stopped.\n"),
        "{out}"
    );
    // The run's own console says who stopped it.
    wait_for_text(&stdout, "stop requested by oncall-bob: SIGTERM sent");
    let exit = exit_within(&mut child, Duration::from_secs(20), &stderr);
    // First, so a failure leaves no process behind.
    let ended = process_ends(&pid_file);
    assert_eq!(exit, 1, "{:?}", stderr.lock().unwrap());
    assert_eq!(last_run_status(dir.path()), "stopped");
    assert!(ended, "the run's processes outlive the stop");

    let (code, _, err) = control(&["resume"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("the execution is stopped"), "{err}");
    let (code, _, err) = control(&["restart"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("unknown action `restart`"), "{err}");
}

#[test]
fn run_exit_codes_for_scripts() {
    let dir = tempfile::tempdir().unwrap();
    create_runbooks(
        dir.path(),
        &[
            json!({"name": "Typed", "params": [
                {"name": "service", "type": "string", "required": true},
                {"name": "count", "type": "number", "default": 1}
            ], "blocks": [
                {"id": "show", "kind": "command", "script": "echo {{ params.service }}-{{ params.count }}"}
            ]}),
            json!({"name": "Ask", "blocks": [
                {"id": "ask", "kind": "instruction", "text": "Drain?", "confirm": true},
                {"id": "after", "kind": "command", "script": "echo drained"}
            ]}),
        ],
    );
    let run = |args: &[&str]| {
        let output = cli(dir.path())
            .arg("run")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };

    let (code, stdout, stderr) = run(&["Typed", "--param", "service=api=1", "--param", "count=3"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("api=1-3\n"), "{stdout}");
    // Status lines go to stderr, never into the console on stdout.
    assert!(
        stderr.contains(" succeeded\n") && !stdout.contains(" succeeded"),
        "{stdout}"
    );

    // Mistakes in the command line are errors (2) before anything runs, never panics.
    for (args, message) in [
        (&["Typed"][..], "parameter `service` is required"),
        (&["Typed", "--param", "service"], "--param takes NAME=VALUE"),
        (
            &["Typed", "--param", "service=a", "--param", "count=many"],
            "must be a number",
        ),
        (
            &["Typed", "--param", "service=a", "--param", "other=1"],
            "no parameter `other`",
        ),
    ] {
        let (code, stdout, stderr) = run(args);
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
        assert!(
            stdout.is_empty() && !stderr.contains("panicked"),
            "{args:?}"
        );
    }

    // A confirmation without a terminal: stopped there unless --yes answers it.
    let (code, stdout, stderr) = run(&["Ask"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("pass --yes"), "{stderr}");
    assert!(!stdout.contains("drained"), "{stdout}");
    let (code, stdout, stderr) = run(&["Ask", "--yes"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("drained"), "{stdout}");
}

#[test]
fn a_database_password_is_not_echoed_when_the_database_cannot_be_opened() {
    let dir = tempfile::tempdir().unwrap();
    // Each is refused before any connection: a password in a query parameter (libpq's
    // form), one in a URL whose scheme has a typo, and one in the user info.
    for url in [
        "postgres://ops@127.0.0.1:1/db?password=pw-Zq7%21x&sslmode=bogus",
        "postgres//ops:pw-Zq7%21x@127.0.0.1:1/db",
        "postgres://ops:pw-Zq7!x@127.0.0.1:1/db?sslmode=bogus",
    ] {
        let output = cli(dir.path())
            .env("DATABASE_URL", url)
            .args(["keys", "list"])
            .output()
            .unwrap();
        let shown = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(output.status.code(), Some(2), "{url}: {shown}");
        assert!(shown.contains("cannot open database"), "{url}: {shown}");
        assert!(shown.contains("@127.0.0.1:1/db"), "{url}: {shown}");
        for secret in ["pw-Zq7%21x", "pw-Zq7!x"] {
            assert!(
                !shown.contains(secret),
                "{url}: the password is shown: {shown}"
            );
        }
    }
}

#[test]
fn a_log_filter_with_a_typo_is_refused_instead_of_read_as_info() {
    let dir = tempfile::tempdir().unwrap();
    for (option, variable) in [(Some("bogus["), None), (None, Some("info,["))] {
        let mut command = cli(dir.path());
        if let Some(filter) = option {
            command.args(["--log-level", filter]);
        }
        if let Some(filter) = variable {
            command.env("RUNBOOK_LOG", filter);
        }
        let output = command.arg("migrate").output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{output:?}");
        assert!(
            stderr.contains("--log-level") && stderr.contains("invalid filter"),
            "{stderr}"
        );
        assert!(!dir.path().join("runbook-studio.db").exists());
    }
}

#[test]
fn serve_says_when_it_has_no_web_ui_to_serve() {
    use std::io::Read;
    let dir = tempfile::tempdir().unwrap();
    let ui_dir = dir.path().join("dist");
    let log_of_a_start = || {
        let mut command = cli(dir.path());
        command
            .env("RUNBOOK_UI_DIR", &ui_dir)
            .stderr(Stdio::piped());
        let mut server = common::ServerProcess::start(command);
        let status = server.stop();
        assert!(status.success(), "{status:?}");
        let mut log = String::new();
        server
            .child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut log)
            .unwrap();
        log
    };
    let log = log_of_a_start();
    assert!(
        log.contains("no built web UI") && log.contains(&ui_dir.display().to_string()),
        "{log}"
    );
    std::fs::create_dir(&ui_dir).unwrap();
    std::fs::write(ui_dir.join("index.html"), "<!doctype html>").unwrap();
    let log = log_of_a_start();
    assert!(!log.contains("web UI"), "{log}");
}

#[test]
fn serve_on_a_taken_port_exits_non_zero_and_names_the_address() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let output = cli(dir.path())
        .args(["serve", "--addr", &addr])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on {addr}")) && stderr.contains("in use"),
        "{stderr}"
    );
    assert!(output.stdout.is_empty());
}

#[test]
fn sigterm_stops_the_live_runs_of_serve_and_records_them_stopped() {
    serve_stops_its_live_runs_on(None);
}

#[test]
fn a_hang_up_stops_the_live_runs_of_serve_and_records_them_stopped() {
    // The SSH session that started it went away.
    serve_stops_its_live_runs_on(Some(nix::sys::signal::Signal::SIGHUP));
}

/// Starts a run under `serve`, then sends `signal` (SIGTERM when none) and checks that
/// the server ends well, the run stored `stopped` and its processes gone.
fn serve_stops_its_live_runs_on(signal: Option<nix::sys::signal::Signal>) {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = create_ticking_runbook(dir.path());
    let token = create_key(dir.path(), "ops", "operator");
    let mut server = common::ServerProcess::start(cli(dir.path()));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let client = reqwest::Client::new();
        let runbooks: serde_json::Value = client
            .get(format!("{}/runbooks", server.base()))
            .header("x-api-key", &token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let id = runbooks["items"][0]["id"].as_str().unwrap().to_string();
        let started = client
            .post(format!("{}/runbooks/{id}/execute", server.base()))
            .header("x-api-key", &token)
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert!(started.status().is_success(), "{started:?}");
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::fs::read_to_string(&pid_file).map_or(true, |pid| pid.trim().is_empty()) {
        assert!(Instant::now() < deadline, "the run never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    if let Some(signal) = signal {
        server.signal(signal);
    }
    let status = server.stop();
    // First, so a failure leaves no process behind.
    let ended = process_ends(&pid_file);
    assert!(status.success(), "{status:?}");
    assert_eq!(last_run_status(dir.path()), "stopped");
    assert!(ended, "the run's processes outlive the server");
}

#[test]
fn a_reader_gone_before_the_output_fails_the_command_without_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    create_key(dir.path(), "ops", "viewer");
    // `| true`, `| head -n 0`: the reader is gone before anything is written.
    let closed_stdout = || {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        Stdio::from(writer)
    };
    let list = cli(dir.path())
        .args(["keys", "list"])
        .stdout(closed_stdout())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&list.stderr);
    assert_eq!(list.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("cannot write to stdout") && !stderr.contains("panicked"),
        "{stderr}"
    );
    // The key exists, but nobody got its token: the error says which one to revoke.
    let create = cli(dir.path())
        .args(["keys", "create", "--name", "lost", "--role", "admin"])
        .stdout(closed_stdout())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&create.stderr);
    assert_eq!(create.status.code(), Some(2), "{stderr}");
    assert!(
        !stderr.contains("panicked") && !stderr.contains("rbs_"),
        "{stderr}"
    );
    let listed = cli(dir.path()).args(["keys", "list"]).output().unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout);
    let id = listed
        .lines()
        .find(|line| line.split_whitespace().nth(2) == Some("lost"))
        .and_then(|line| line.split_whitespace().next())
        .unwrap_or_else(|| panic!("no key `lost` in {listed}"));
    assert!(
        stderr.contains(&format!(
            "key {id} was created but its token could not be written"
        )),
        "{stderr}"
    );
}
