//! The command layer through Tauri's IPC (mock runtime) against a real core service on a temp
//! SQLite database: argument names, result JSON, error objects and the event bridge.

use super::{config_from, open_service, shut_down_on_exit, with_commands};
use crate::events::EXECUTION_EVENT;
use runbook_core::Config;
use serde_json::{json, Value};
use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;
use tauri::ipc::{CallbackFn, InvokeBody};
use tauri::test::{mock_builder, mock_context, noop_assets, MockRuntime, INVOKE_KEY};
use tauri::webview::InvokeRequest;
use tauri::{App, Listener, Manager, WebviewWindow, WebviewWindowBuilder};
use tempfile::TempDir;

struct Desktop {
    app: App<MockRuntime>,
    webview: WebviewWindow<MockRuntime>,
    _data_dir: TempDir,
    /// Where exported reports go (instead of the user's Downloads directory).
    exports: TempDir,
}

impl Desktop {
    fn open() -> Desktop {
        let data_dir = tempfile::tempdir().unwrap();
        let mut app = with_commands(mock_builder())
            .build(mock_context(noop_assets()))
            .unwrap();
        let exports = tempfile::tempdir().unwrap();
        app.manage(crate::commands::ExportDir(exports.path().join("Downloads")));
        // The real app runs this in `setup`, which only an event loop triggers.
        open_service(&mut app, Config::from_data_dir(data_dir.path())).unwrap();
        let webview = WebviewWindowBuilder::new(&app, "main", Default::default())
            .build()
            .unwrap();
        Desktop {
            app,
            webview,
            _data_dir: data_dir,
            exports,
        }
    }

    /// What the UI's `invoke(cmd, args)` resolves (`Ok`) or rejects (`Err`) with.
    fn invoke(&self, cmd: &str, args: Value) -> Result<Value, Value> {
        let request = InvokeRequest {
            cmd: cmd.into(),
            callback: CallbackFn(0),
            error: CallbackFn(1),
            url: "tauri://localhost".parse().unwrap(),
            body: InvokeBody::Json(args),
            headers: Default::default(),
            invoke_key: INVOKE_KEY.to_string(),
        };
        tauri::test::get_ipc_response(&self.webview, request)
            .map(|body| body.deserialize::<Value>().unwrap())
    }

    fn ok(&self, cmd: &str, args: Value) -> Value {
        self.invoke(cmd, args)
            .unwrap_or_else(|error| panic!("{cmd} failed: {error}"))
    }

    fn err(&self, cmd: &str, args: Value) -> Value {
        match self.invoke(cmd, args) {
            Ok(value) => panic!("{cmd} should fail, returned {value}"),
            Err(error) => error,
        }
    }

    fn create(&self, name: &str, script: &str) -> Value {
        self.ok(
            "create_runbook",
            json!({"body": {
                "name": name,
                "tags": ["e2e"],
                "blocks": [{"id": "say", "kind": "command", "script": script}],
            }}),
        )
    }
}

#[test]
fn runbooks_are_created_listed_versioned_rolled_back_and_deleted() {
    let desktop = Desktop::open();
    let created = desktop.create("Restart payments", "echo one");
    assert_eq!(created["version"], 1);
    assert_eq!(created["blocks"][0]["script"], "echo one");
    let id = created["id"].as_str().unwrap();

    let page = desktop.ok("list_runbooks", json!({"q": "payments", "limit": 10}));
    assert_eq!(page["total"], 1);
    assert_eq!(page["items"][0]["id"], id);
    let page = desktop.ok("list_runbooks", json!({"tag": "other"}));
    assert_eq!(page["total"], 0);

    let mut edit = created.clone();
    edit["blocks"][0]["script"] = json!("echo two");
    let updated = desktop.ok("update_runbook", json!({"id": id, "body": edit}));
    assert_eq!(updated["version"], 2);
    assert_eq!(
        desktop.ok("get_runbook", json!({"id": id}))["blocks"][0]["script"],
        "echo two"
    );

    let versions = desktop.ok("list_versions", json!({"id": id}));
    assert_eq!(versions["items"].as_array().unwrap().len(), 2);
    let first = desktop.ok("get_version", json!({"id": id, "version": 1}));
    assert_eq!(first["blocks"][0]["script"], "echo one");

    let rolled_back = desktop.ok("rollback_runbook", json!({"id": id, "version": 1}));
    assert_eq!(rolled_back["version"], 3);
    assert_eq!(rolled_back["blocks"][0]["script"], "echo one");

    assert_eq!(desktop.ok("delete_runbook", json!({"id": id})), Value::Null);
    assert_eq!(
        desktop.err("get_runbook", json!({"id": id}))["code"],
        "not_found"
    );
}

#[test]
fn a_stale_update_is_refused_with_the_current_version_in_details() {
    let desktop = Desktop::open();
    let created = desktop.create("Rotate keys", "true");
    let id = created["id"].as_str().unwrap();
    desktop.ok("update_runbook", json!({"id": id, "body": created}));

    let error = desktop.err("update_runbook", json!({"id": id, "body": created}));
    assert_eq!(error["code"], "version_conflict");
    assert_eq!(error["details"]["current_version"], 2);
    assert!(error["message"].as_str().unwrap().contains("version 2"));
}

#[test]
fn malformed_ids_and_actions_are_clean_errors() {
    let desktop = Desktop::open();
    for (cmd, args) in [
        ("get_runbook", json!({"id": "not-a-uuid"})),
        ("delete_runbook", json!({"id": ""})),
        ("read_output", json!({"id": "42", "offset": 0, "limit": 10})),
        ("list_executions", json!({"runbookId": "nope"})),
    ] {
        let error = desktop.err(cmd, args);
        assert_eq!(error["code"], "invalid_id", "{cmd}: {error}");
        assert!(error["message"].is_string(), "{cmd}: {error}");
    }
    let execution = uuid::Uuid::new_v4().to_string();
    let error = desktop.err(
        "control_execution",
        json!({"id": execution, "action": "explode"}),
    );
    assert_eq!(error["code"], "invalid_action");
    let error = desktop.err(
        "control_execution",
        json!({"id": execution, "action": "stop"}),
    );
    assert_eq!(error["code"], "not_found");
}

#[test]
fn invalid_runbooks_are_refused_with_field_details() {
    let desktop = Desktop::open();
    let error = desktop.err(
        "create_runbook",
        json!({"body": {"name": "", "blocks": []}}),
    );
    // The UI reads `details` as `[{path, message, ...}]` to mark the fields.
    let details = error["details"]
        .as_array()
        .expect("field errors in details");
    assert!(
        details.iter().any(|field| field["path"] == "name"),
        "{error}"
    );
    assert!(
        details.iter().all(|field| field["message"].is_string()),
        "{error}"
    );
    assert_eq!(error["code"], details[0]["code"]);
}

#[test]
fn a_run_streams_its_events_to_the_webview_and_keeps_its_output() {
    let desktop = Desktop::open();
    let (events_tx, events) = mpsc::channel::<Value>();
    desktop.app.listen_any(EXECUTION_EVENT, move |event| {
        let _ = events_tx.send(serde_json::from_str(event.payload()).unwrap());
    });
    let runbook = desktop.create("Say hello", "echo hello-from-ipc");
    let id = runbook["id"].as_str().unwrap();

    let execution = desktop.ok(
        "execute_runbook",
        json!({"id": id, "body": {"params": {}, "version": null}}),
    );
    let execution_id = execution["id"].as_str().unwrap().to_string();
    assert_eq!(execution["runbook_id"], id);

    let mut output = String::new();
    let final_status = loop {
        let event = events
            .recv_timeout(Duration::from_secs(20))
            .expect("the run's events reach the webview");
        assert_eq!(event["execution_id"], execution_id.as_str());
        match event["type"].as_str().unwrap() {
            "output" => output.push_str(event["text"].as_str().unwrap()),
            "status" if event["status"] != "running" => break event["status"].clone(),
            _ => {}
        }
    };
    assert_eq!(final_status, "succeeded");
    assert!(
        output.contains("hello-from-ipc"),
        "streamed output: {output:?}"
    );

    let stored = desktop.ok("get_execution", json!({"id": execution_id}));
    assert_eq!(stored["status"], "succeeded");
    assert_eq!(stored["steps"][0]["exit_code"], 0);
    let page = desktop.ok(
        "read_output",
        json!({"id": execution_id, "offset": 0, "limit": 65536}),
    );
    assert!(page["text"].as_str().unwrap().contains("hello-from-ipc"));
    let runs = desktop.ok(
        "list_executions",
        json!({"runbookId": id, "status": "succeeded"}),
    );
    assert_eq!(runs["total"], 1);
    let error = desktop.err(
        "control_execution",
        json!({"id": execution_id, "action": "pause"}),
    );
    assert_eq!(error["code"], "invalid_state");
}

#[test]
fn a_run_is_exported_as_a_report_saved_in_the_downloads_directory() {
    let desktop = Desktop::open();
    let runbook = desktop.create("Nightly backup", "printf '\\033[32mbackup done\\033[0m\\n'");
    let execution = desktop.ok(
        "execute_runbook",
        json!({"id": runbook["id"], "body": {"params": {}, "version": null}}),
    );
    let id = execution["id"].as_str().unwrap();
    wait_until_finished(&desktop, id);

    let saved = desktop.ok("export_execution", json!({"id": id}));
    let file_name = saved["file_name"].as_str().unwrap();
    assert!(file_name.starts_with("nightly-backup-") && file_name.ends_with(".md"));
    assert_eq!(saved["truncated"], false);
    let path = PathBuf::from(saved["path"].as_str().unwrap());
    assert_eq!(
        path,
        desktop.exports.path().join("Downloads").join(file_name)
    );
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.starts_with("# Run report: Nightly backup (version 1)"),
        "{text}"
    );
    assert!(text.contains("- Status: **succeeded**"), "{text}");
    assert!(text.contains("\nbackup done\n"), "{text}");
    assert!(!text.contains('\u{1b}'), "{text:?}");

    let error = desktop.err("export_execution", json!({"id": "../../etc/passwd"}));
    assert_eq!(error["code"], "invalid_id");
    let error = desktop.err(
        "export_execution",
        json!({"id": "00000000-0000-4000-8000-000000000000"}),
    );
    assert_eq!(error["code"], "not_found");
}

#[test]
fn a_runs_whole_console_is_saved_as_plain_text_in_the_downloads_directory() {
    let desktop = Desktop::open();
    // About 2 MB: the console is read in several pages, and each page boundary falls
    // wherever the numbers put it.
    let runbook = desktop.create(
        "Log rotation",
        "printf '\\033[32mstart\\033[0m\\r\\n'; seq 1 300000; printf 'end\\r\\n'",
    );
    let execution = desktop.ok(
        "execute_runbook",
        json!({"id": runbook["id"], "body": {"params": {}, "version": null}}),
    );
    let id = execution["id"].as_str().unwrap();
    wait_until_finished(&desktop, id);

    let saved = desktop.ok("save_console", json!({"id": id}));
    let file_name = saved["file_name"].as_str().unwrap();
    assert_eq!(
        file_name,
        format!("log-rotation-{}.log", &id.replace('-', "")[..8])
    );
    let path = PathBuf::from(saved["path"].as_str().unwrap());
    assert_eq!(
        path,
        desktop.exports.path().join("Downloads").join(file_name)
    );
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(saved["bytes"], text.len() as u64);
    // Written aside and renamed once whole: nothing else is left.
    let files: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert_eq!(files, [file_name]);
    assert!(
        !text.contains(['\u{1b}', '\r']),
        "escapes or carriage returns left"
    );
    // Every number, once and in order, between the two marks.
    let from = text.find("\nstart\n").expect("the first line") + "\nstart\n".len();
    let to = text.find("\nend\n").expect("the last line");
    let numbers: Vec<u32> = text[from..to]
        .lines()
        .map(|line| line.parse().unwrap())
        .collect();
    assert_eq!(numbers, (1..=300_000).collect::<Vec<_>>());

    let error = desktop.err("save_console", json!({"id": "../../etc/passwd"}));
    assert_eq!(error["code"], "invalid_id");
    let error = desktop.err(
        "save_console",
        json!({"id": "00000000-0000-4000-8000-000000000000"}),
    );
    assert_eq!(error["code"], "not_found");
}

/// Polls `get_execution` until the run has finished.
fn wait_until_finished(desktop: &Desktop, id: &str) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let execution = desktop.ok("get_execution", json!({"id": id}));
        let status = execution["status"].as_str().unwrap().to_string();
        if ["succeeded", "failed", "stopped", "interrupted"].contains(&status.as_str()) {
            return execution;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the run never finished"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_failed_run_is_retried_from_its_failed_step() {
    let desktop = Desktop::open();
    let flag = desktop._data_dir.path().join("fixed");
    let runbook = desktop.ok(
        "create_runbook",
        json!({"body": {
            "name": "Flaky",
            "blocks": [
                {"id": "first", "kind": "command", "script": "echo first"},
                {"id": "flaky", "kind": "command",
                 "script": format!("[ -f '{0}' ] || {{ touch '{0}'; exit 1; }}", flag.display())},
            ],
        }}),
    );
    let execution = desktop.ok(
        "execute_runbook",
        json!({"id": runbook["id"], "body": null}),
    );
    let failed = wait_until_finished(&desktop, execution["id"].as_str().unwrap());
    assert_eq!(failed["status"], "failed");

    let retry = desktop.ok("retry_execution", json!({"id": failed["id"]}));
    assert_eq!(retry["retry_of"], failed["id"]);
    assert_eq!(retry["retry_from"], "flaky");
    let done = wait_until_finished(&desktop, retry["id"].as_str().unwrap());
    assert_eq!(done["status"], "succeeded");
    assert_eq!(done["steps"][0]["reused"], true);
    assert_eq!(done["steps"][1]["reused"], false);

    let error = desktop.err("retry_execution", json!({"id": done["id"]}));
    assert_eq!(error["code"], "invalid_state");
}

#[test]
fn whoami_is_the_local_admin() {
    let desktop = Desktop::open();
    let me = desktop.ok("whoami", json!({}));
    assert_eq!(me["role"], "admin");
    assert!(!me["name"].as_str().unwrap().is_empty());
}

#[test]
fn data_dir_database_and_stop_grace_come_from_the_environment_when_set() {
    let config = config_from(
        Some(OsString::from("/srv/runbooks")),
        Some("postgres://db/runbooks".into()),
        Some(" 30 ".into()),
    );
    assert_eq!(config.engine.stop_grace, Duration::from_secs(30));
    assert_eq!(config.data_dir, PathBuf::from("/srv/runbooks"));
    assert_eq!(
        config.database_url.as_deref(),
        Some("postgres://db/runbooks")
    );

    let config = config_from(Some(OsString::new()), Some(" ".into()), None);
    assert_eq!(config.data_dir, Config::default_data_dir());
    assert_eq!(config.database_url, None);
    assert_eq!(config.engine.stop_grace, Duration::from_secs(5));
    for unusable in ["", "5s", "-1", "601"] {
        let config = config_from(None, None, Some(unusable.into()));
        assert_eq!(
            config.engine.stop_grace,
            Duration::from_secs(5),
            "{unusable:?}"
        );
    }
}

#[test]
fn credentials_are_managed_write_only_and_used_by_runs() {
    let desktop = Desktop::open();
    let created = desktop.ok(
        "create_credential",
        json!({"body": {"name": "ipc-token", "kind": "secret", "value": "ipc-canary-91", "description": "for tests"}}),
    );
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(created["kind"], "secret");
    let listed = desktop.ok("list_credentials", json!({}));
    assert_eq!(listed["items"][0]["name"], "ipc-token");
    for value in [
        &created,
        &listed,
        &desktop.ok("get_credential", json!({"id": id})),
    ] {
        assert!(!value.to_string().contains("ipc-canary-91"), "{value}");
    }
    let error = desktop.err(
        "create_credential",
        json!({"body": {"name": "ipc-token", "kind": "secret", "value": "x"}}),
    );
    assert_eq!(error["code"], "duplicate_name");
    let error = desktop.err(
        "create_credential",
        json!({"body": {"name": "other", "kind": "gpg", "value": "x"}}),
    );
    assert_eq!(error["code"], "invalid_kind");

    desktop.ok(
        "update_credential",
        json!({"id": id, "body": {"value": "ipc-canary-92"}}),
    );
    let runbook = desktop.ok(
        "create_runbook",
        json!({"body": {"name": "Uses a secret", "blocks": [
            {"id": "use", "kind": "command", "secrets": {"TOKEN": "ipc-token"},
             "script": "echo \"got $TOKEN\"; test \"$TOKEN\" = ipc-canary-\"92\""}
        ]}}),
    );
    let execution = desktop.ok(
        "execute_runbook",
        json!({"id": runbook["id"], "body": null}),
    );
    let done = wait_until_finished(&desktop, execution["id"].as_str().unwrap());
    assert_eq!(done["status"], "succeeded");
    let page = desktop.ok(
        "read_output",
        json!({"id": execution["id"], "offset": 0, "limit": 65536}),
    );
    let console = page["text"].as_str().unwrap();
    assert!(
        console.contains("\ngot ***\n") && !console.contains("ipc-canary"),
        "{console}"
    );
    assert!(!desktop.ok("get_credential", json!({"id": id}))["last_used_at"].is_null());

    desktop.ok("delete_credential", json!({"id": id}));
    let error = desktop.err("get_credential", json!({"id": id}));
    assert_eq!(error["code"], "not_found");
}

#[test]
fn users_keys_and_the_audit_trail_through_ipc() {
    let desktop = Desktop::open();
    let user = desktop.ok(
        "create_user",
        json!({"body": {"name": "dana", "role": "operator"}}),
    );
    let updated = desktop.ok(
        "update_user",
        json!({"id": user["id"], "body": {"role": "editor"}}),
    );
    assert_eq!(updated["role"], "editor");
    let key = desktop.ok(
        "create_api_key",
        json!({"body": {"name": "dana's laptop", "user_id": user["id"]}}),
    );
    assert!(key["token"].as_str().unwrap().starts_with("rbs_"));
    assert_eq!(key["role"], "editor");
    let keys = desktop.ok("list_api_keys", json!({}));
    assert_eq!(keys["items"][0]["user_name"], "dana");
    assert!(!keys.to_string().contains(key["token"].as_str().unwrap()));
    desktop.ok("revoke_api_key", json!({"id": key["id"]}));
    assert!(!desktop.ok("list_api_keys", json!({}))["items"][0]["revoked_at"].is_null());
    desktop.ok("delete_user", json!({"id": user["id"]}));
    assert_eq!(desktop.ok("list_users", json!({}))["items"], json!([]));

    let trail = desktop.ok("list_audit", json!({"action": "user.", "limit": 10}));
    let actions: Vec<&str> = trail["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["user.delete", "user.update", "user.create"]);
    let by_me = desktop.ok(
        "list_audit",
        json!({"actor": desktop.ok("whoami", json!({}))["name"]}),
    );
    assert_eq!(by_me["total"], 5);
    let error = desktop.err("list_audit", json!({"since": "yesterday"}));
    assert_eq!(error["code"], "invalid_query");
    let report = desktop.ok("verify_audit", json!({}));
    assert_eq!(report["ok"], true);
    assert_eq!(report["checked"], 5);

    // Without a keychain the key lives in a private file, and the UI is told so.
    let vault = desktop.ok("vault_status", json!({}));
    assert_eq!(vault["source"], "key_file");
    assert!(vault["warning"]
        .as_str()
        .unwrap()
        .contains("No system keychain"));
}

#[test]
fn a_waiting_run_is_announced_with_its_runbook_step_and_first_line_of_instructions() {
    use crate::events::waiting_notice;
    use runbook_core::WaitingStep;
    let step = |text: &str| WaitingStep {
        execution_id: uuid::Uuid::new_v4(),
        runbook_name: "Drain a node".to_string(),
        block_id: "drain".to_string(),
        text: text.to_string(),
    };
    let (title, body) = waiting_notice(&step("\n## Drain node-7\nMove its pods first."));
    assert_eq!(title, "“Drain a node” waits for you");
    assert_eq!(
        body,
        "Step “drain” needs your acknowledgement: Drain node-7"
    );
    // Long instructions are cut (on a character, not a byte), and say so.
    let (_, body) = waiting_notice(&step(&"é".repeat(300)));
    assert!(body.ends_with(&format!("{}…", "é".repeat(140))), "{body}");
    // None at all: the step alone.
    let (_, body) = waiting_notice(&step("  \n"));
    assert_eq!(body, "Step “drain” needs your acknowledgement.");
}

#[test]
fn quitting_the_app_stops_its_live_runs_and_their_processes() {
    let desktop = Desktop::open();
    let pid_file = desktop._data_dir.path().join("pid");
    let runbook = desktop.create(
        "Long task",
        &format!("echo $$ > '{}'; exec sleep 60", pid_file.display()),
    );
    let execution = desktop.ok(
        "execute_runbook",
        json!({"id": runbook["id"], "body": null}),
    );
    let id = execution["id"].as_str().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let pid = loop {
        if let Some(pid) = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|text| text.trim().parse::<u32>().ok())
        {
            break pid;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the command never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let started = std::time::Instant::now();
    shut_down_on_exit(desktop.app.handle(), tauri::RunEvent::Exit);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    assert!(!proc_dir.exists(), "the run's command outlived the app");
    let stopped = desktop.ok("get_execution", json!({"id": id}));
    assert_eq!(stopped["status"], "stopped", "{stopped}");
}

#[cfg(target_os = "linux")]
#[test]
fn a_quit_signal_asks_the_app_to_quit_instead_of_killing_it() {
    // SIGUSR2 stands in for SIGTERM/SIGINT/SIGHUP, which the test process must keep as
    // they are.
    let (quit, quitting) = mpsc::channel();
    let again = quit.clone();
    let stand_in = tokio::signal::unix::SignalKind::user_defined2();
    super::quit_on_signals(
        &[stand_in],
        move || quit.send("quit").unwrap(),
        move || again.send("kill now").unwrap(),
    )
    .unwrap();
    let signal = || {
        let sent = std::process::Command::new("kill")
            .args(["-USR2", &std::process::id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
    };
    signal();
    assert_eq!(
        quitting.recv_timeout(Duration::from_secs(10)),
        Ok("quit"),
        "the signal asks the app to quit"
    );
    // Asked again while runs clean up: their processes are killed at once.
    signal();
    assert_eq!(
        quitting.recv_timeout(Duration::from_secs(10)),
        Ok("kill now")
    );
}

#[test]
fn a_step_is_announced_once_while_its_run_lives() {
    use crate::events::Notified;
    let notified = Notified::default();
    let (run, other) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    assert!(notified.first(run, "drain"));
    assert!(
        !notified.first(run, "drain"),
        "the same wait, looked up twice"
    );
    assert!(notified.first(run, "reboot"));
    assert!(notified.first(other, "drain"));
    notified.forget(run);
    assert!(notified.first(run, "drain"), "an ended run is forgotten");
    assert!(!notified.first(other, "drain"));
}

/// Waits for the next event of run `id` on `events`, skipping other runs'.
fn next_event_of(events: &mpsc::Receiver<Value>, id: &str, what: &str) -> Value {
    loop {
        let event = events
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("no event: {what}"));
        if event["execution_id"] == id {
            return event;
        }
    }
}

/// Waits until `path` exists, as a step's sign that it got there.
fn wait_for_file(path: &std::path::Path) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !path.exists() {
        assert!(std::time::Instant::now() < deadline, "{path:?} never came");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_run_another_process_executes_is_followed_while_a_view_shows_it() {
    use runbook_core::{Actor, Service};
    let desktop = Desktop::open();
    let (events_tx, events) = mpsc::channel::<Value>();
    desktop.app.listen_any(EXECUTION_EVENT, move |event| {
        let _ = events_tx.send(serde_json::from_str(event.payload()).unwrap());
    });
    let dir = desktop._data_dir.path();
    // A terminal's `runbook-studio run` on the same data directory.
    let terminal =
        tauri::async_runtime::block_on(Service::open(Config::from_data_dir(dir))).unwrap();
    let script = |name: &str| {
        let at = |file: &str| dir.join(format!("{name}-{file}")).display().to_string();
        format!(
            "echo before-follow; touch '{}'; while [ ! -f '{}' ]; do sleep 0.05; done; \
             echo after-follow; touch '{}'; while [ ! -f '{}' ]; do sleep 0.05; done",
            at("started"),
            at("go"),
            at("told"),
            at("end"),
        )
    };
    let executed_elsewhere = |name: &str| {
        let runbook = desktop.create(name, &script(name));
        let id = runbook["id"].as_str().unwrap().parse().unwrap();
        let execution = tauri::async_runtime::block_on(terminal.execute(
            &Actor::local_admin(),
            id,
            Value::Null,
        ))
        .unwrap();
        wait_for_file(&dir.join(format!("{name}-started")));
        // Stored, so a follower coming in now starts after it.
        let id = execution.id.to_string();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let page = desktop.ok(
                "read_output",
                json!({"id": id, "offset": 0, "limit": 65536}),
            );
            if page["text"].as_str().unwrap().contains("before-follow") {
                break id;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the first line was never stored"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let followers = desktop.app.state::<crate::events::Followers>();

    // Two views of the run share one follower, which tells what the run does from the
    // moment it came in: live, while the run goes on.
    let id = executed_elsewhere("one");
    assert_eq!(desktop.ok("follow_execution", json!({"id": id})), true);
    assert_eq!(desktop.ok("follow_execution", json!({"id": id})), true);
    assert_eq!(followers.followed(), [id.parse::<uuid::Uuid>().unwrap()]);
    std::fs::write(dir.join("one-go"), "").unwrap();
    let mut told = String::new();
    while !told.contains("after-follow") {
        let event = next_event_of(&events, &id, "the followed run's new output");
        assert_ne!(event["type"], "status", "the run ended early: {event}");
        if event["type"] == "output" {
            told.push_str(event["text"].as_str().unwrap());
        }
    }
    assert!(!told.contains("before-follow"), "told again: {told:?}");
    wait_for_file(&dir.join("one-told"));
    assert_eq!(
        desktop.ok("get_execution", json!({"id": id}))["status"],
        "running"
    );
    // One view leaves; the other still follows, to the run's end.
    assert_eq!(
        desktop.ok("unfollow_execution", json!({"id": id})),
        Value::Null
    );
    std::fs::write(dir.join("one-end"), "").unwrap();
    let status = loop {
        let event = next_event_of(&events, &id, "the followed run's end");
        if event["type"] == "status" && event["status"] != "running" {
            break event["status"].clone();
        }
    };
    assert_eq!(status, "succeeded");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !followers.followed().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the follower outlived its run"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The last view's leave after the end is no mistake.
    assert_eq!(
        desktop.ok("unfollow_execution", json!({"id": id})),
        Value::Null
    );

    // When the last view leaves, its follower stops; so do all when the page loads again
    // (its views never leave): the run's end is told to no one.
    let id = executed_elsewhere("two");
    assert_eq!(desktop.ok("follow_execution", json!({"id": id})), true);
    assert_eq!(desktop.ok("follow_execution", json!({"id": id})), true);
    desktop.ok("unfollow_execution", json!({"id": id}));
    assert_eq!(followers.followed().len(), 1, "one view still follows");
    desktop.ok("unfollow_execution", json!({"id": id}));
    assert!(followers.followed().is_empty());
    assert_eq!(desktop.ok("follow_execution", json!({"id": id})), true);
    followers.clear();
    assert!(followers.followed().is_empty());
    std::fs::write(dir.join("two-go"), "").unwrap();
    std::fs::write(dir.join("two-end"), "").unwrap();
    wait_until_finished(&desktop, &id);
    // A follower would have told the end within one look (250 ms) of it being stored.
    std::thread::sleep(Duration::from_millis(1000));
    let late: Vec<Value> = events
        .try_iter()
        .filter(|event| event["execution_id"] == id.as_str())
        .collect();
    assert!(late.is_empty(), "told after the last view left: {late:?}");

    // A run this process executes needs no follower, nor one that has ended; ids are
    // checked.
    let end = dir.join("local-end");
    let local = desktop.create(
        "Local",
        &format!("while [ ! -f '{}' ]; do sleep 0.05; done", end.display()),
    );
    let local = desktop.ok("execute_runbook", json!({"id": local["id"], "body": null}));
    let local = local["id"].as_str().unwrap();
    assert_eq!(desktop.ok("follow_execution", json!({"id": local})), false);
    std::fs::write(&end, "").unwrap();
    wait_until_finished(&desktop, local);
    assert_eq!(desktop.ok("follow_execution", json!({"id": id})), false);
    assert!(followers.followed().is_empty());
    let error = desktop.err("follow_execution", json!({"id": "../etc"}));
    assert_eq!(error["code"], "invalid_id");
    let error = desktop.err(
        "follow_execution",
        json!({"id": "00000000-0000-4000-8000-000000000000"}),
    );
    assert_eq!(error["code"], "not_found");
}
