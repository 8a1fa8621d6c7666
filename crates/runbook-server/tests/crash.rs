//! Crash safety: the server is killed with SIGKILL in the middle of a run; once it
//! is started again the run is `interrupted`, the output written before the kill is
//! still there, and no process the run started is left alive.

use serde_json::{json, Value};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{create_key, free_port};

const PATIENCE: Duration = Duration::from_secs(30);

/// The binary, with crashed runs recognised after 2 s of silence.
fn cli(data_dir: &std::path::Path) -> Command {
    let mut command = common::cli(data_dir);
    command.env("RUNBOOK_HEARTBEAT_TIMEOUT", "2");
    command
}

/// A server process, killed when dropped (also when the test fails).
struct Server(Child);

impl Server {
    fn kill(&mut self) {
        self.0.kill().unwrap();
        self.0.wait().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(data_dir: &std::path::Path, port: u16) -> Server {
    Server(
        cli(data_dir)
            .args(["serve", "--addr", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// Pids of processes whose command line holds `marker`.
fn processes_with(marker: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let zombie = stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z'));
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if !zombie && cmdline.contains(marker) {
            found.push(pid);
        }
    }
    found
}

struct Api {
    client: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    async fn wait_until_up(&self) {
        let deadline = Instant::now() + PATIENCE;
        while self
            .client
            .get(format!("{}/healthz", self.base))
            .send()
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "the server never answered");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .header("x-api-key", &self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        response.json().await.unwrap()
    }
}

#[test]
fn a_run_killed_with_its_server_is_interrupted_keeps_its_output_and_leaves_no_process() {
    let dir = tempfile::tempdir().unwrap();
    let token = create_key(dir.path(), "ops", "operator");
    let editor_token = create_key(dir.path(), "author", "editor");
    let port = free_port();
    // A sleep length no other process on the machine uses: the test's marker.
    let marker = format!("{}.{}", 400 + std::process::id() % 500, 17);
    let script = format!(
        "sleep {marker} & nohup sleep {marker} >/dev/null 2>&1 & \
         i=0; while true; do i=$((i+1)); echo line-$i; sleep 0.02; done"
    );

    let mut server = serve(dir.path(), port);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let api = Api {
        client: reqwest::Client::new(),
        base: format!("http://127.0.0.1:{port}"),
        token: editor_token,
    };
    let execution_id = runtime.block_on(async {
        api.wait_until_up().await;
        let runbook = api
            .call(
                reqwest::Method::POST,
                "/runbooks",
                Some(json!({"name": "Endless", "blocks": [
                    {"id": "chatter", "kind": "command", "script": script}
                ]})),
            )
            .await;
        let operator = Api {
            token: token.clone(),
            client: api.client.clone(),
            base: api.base.clone(),
        };
        let run = operator
            .call(
                reqwest::Method::POST,
                &format!("/runbooks/{}/execute", runbook["id"].as_str().unwrap()),
                Some(json!({})),
            )
            .await;
        let id = run["id"].as_str().unwrap().to_string();
        // Output has reached the database when a page of it can be read back.
        let deadline = Instant::now() + PATIENCE;
        loop {
            let page = operator
                .call(
                    reqwest::Method::GET,
                    &format!("/executions/{id}/output?limit=65536"),
                    None,
                )
                .await;
            if page["text"].as_str().unwrap().contains("line-20") {
                break;
            }
            assert!(Instant::now() < deadline, "no output was stored");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        id
    });
    assert_eq!(
        processes_with(&marker).len(),
        3,
        "the run's shell and both background sleeps run"
    );

    server.kill(); // SIGKILL: no chance to clean up
    let before_restart = runtime.block_on(async {
        // What was stored before the kill, read straight from the database file.
        let store = runbook_store::SqliteStore::connect(&format!(
            "sqlite://{}",
            dir.path().join("runbook-studio.db").display()
        ))
        .await
        .unwrap();
        use runbook_store::Store;
        let page = store
            .read_output(execution_id.parse().unwrap(), 0, 1 << 24)
            .await
            .unwrap();
        String::from_utf8_lossy(&page).into_owned()
    });
    assert!(before_restart.contains("line-20"), "{before_restart}");

    let _server = serve(dir.path(), port);
    let operator = Api {
        token,
        client: api.client.clone(),
        base: api.base.clone(),
    };
    let execution = runtime.block_on(async {
        operator.wait_until_up().await;
        let deadline = Instant::now() + PATIENCE;
        loop {
            let execution = operator
                .call(
                    reqwest::Method::GET,
                    &format!("/executions/{execution_id}"),
                    None,
                )
                .await;
            if execution["status"] == "interrupted" {
                break execution;
            }
            assert_eq!(execution["status"], "running");
            assert!(
                Instant::now() < deadline,
                "the run was never interrupted: {execution}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    assert_eq!(execution["steps"][0]["status"], "stopped");
    assert!(execution["finished_at"].is_string());
    let after = runtime.block_on(operator.call(
        reqwest::Method::GET,
        &format!("/executions/{execution_id}/output?limit=1048576"),
        None,
    ));
    let text = after["text"].as_str().unwrap();
    assert!(
        text.starts_with(&before_restart),
        "the output up to the kill is kept as it was"
    );
    assert_eq!(after["complete"], true);

    let deadline = Instant::now() + PATIENCE;
    while !processes_with(&marker).is_empty() {
        assert!(
            Instant::now() < deadline,
            "processes of the interrupted run are still alive: {:?}",
            processes_with(&marker)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
