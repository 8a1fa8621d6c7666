//! Canary secrets: two credential values are stored over REST and used by a real run
//! of the `runbook-studio serve` binary (an api_call authenticated with a bearer
//! credential against a local peer, a command with a secret in its environment).
//! Afterwards neither value may appear anywhere it could leak: the database files
//! (or every row of every PostgreSQL table), any REST response, the event stream,
//! the audit trail, or the server's own log output at debug level.

use axum::http::{HeaderMap, StatusCode};
use futures::StreamExt;
use serde_json::{json, Value};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod common;

use common::{find_leaks, PgDatabase, ServerProcess};

/// A local HTTP peer that answers 200 only to `Authorization: Bearer <token>`, and
/// never echoes what it was sent.
struct Peer {
    url: String,
    authorized: Arc<AtomicUsize>,
    refused: Arc<AtomicUsize>,
}

async fn start_peer(token: String) -> Peer {
    let authorized = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicUsize::new(0));
    let (ok, no) = (authorized.clone(), refused.clone());
    let expected = format!("Bearer {token}");
    let router = axum::Router::new().route(
        "/check",
        axum::routing::get(move |headers: HeaderMap| {
            let (ok, no, expected) = (ok.clone(), no.clone(), expected.clone());
            async move {
                let given = headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                if given == expected {
                    ok.fetch_add(1, Ordering::SeqCst);
                    (StatusCode::OK, axum::Json(json!({"healthy": true})))
                } else {
                    no.fetch_add(1, Ordering::SeqCst);
                    (
                        StatusCode::UNAUTHORIZED,
                        axum::Json(json!({"healthy": false})),
                    )
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/check", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    Peer {
        url,
        authorized,
        refused,
    }
}

/// A REST client that keeps every response body it received.
struct Recorder {
    client: reqwest::Client,
    base: String,
    key: String,
    bodies: Mutex<Vec<(String, String)>>,
}

impl Recorder {
    async fn send(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self
            .client
            .request(method.parse().unwrap(), format!("{}{path}", self.base))
            .header("x-api-key", &self.key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the server answers");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        self.bodies
            .lock()
            .unwrap()
            .push((format!("{method} {path} -> {status}"), text.clone()));
        let value = serde_json::from_str(&text).unwrap_or(Value::Null);
        (status, value)
    }

    /// Reads the whole event stream of a run until the server ends it.
    async fn events(&self, execution: &str) -> Vec<u8> {
        let response = self
            .client
            .get(format!("{}/executions/{execution}/events", self.base))
            .header("x-api-key", &self.key)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "the event stream opens");
        let mut stream = response.bytes_stream();
        let mut bytes = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while let Ok(Some(chunk)) = tokio::time::timeout_at(deadline, stream.next()).await {
            bytes.extend_from_slice(&chunk.expect("the stream reads"));
        }
        bytes
    }
}

/// What the scenario leaves behind to search.
struct Traces {
    data_dir: tempfile::TempDir,
    logs: tempfile::TempDir,
    bodies: Vec<(String, String)>,
    sse: Vec<u8>,
    /// Data-dir files read while the server was still running (WAL and all).
    live_files: Vec<(String, Vec<u8>)>,
}

async fn scenario(database_url: Option<&str>, bearer: &str, secret: &str) -> Traces {
    let data_dir = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let with_db = |mut command: std::process::Command| {
        if let Some(url) = database_url {
            command.env("DATABASE_URL", url);
        }
        command
    };
    let output = with_db(common::cli(data_dir.path()))
        .args([
            "keys",
            "create",
            "--name",
            "canary-admin",
            "--role",
            "admin",
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let key = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .last()
        .unwrap()
        .to_string();

    let peer = start_peer(bearer.to_string()).await;
    let mut command = with_db(common::cli(data_dir.path()));
    command
        .env("RUNBOOK_LOG", "debug")
        .stdout(Stdio::from(
            std::fs::File::create(logs.path().join("stdout.log")).unwrap(),
        ))
        .stderr(Stdio::from(
            std::fs::File::create(logs.path().join("stderr.log")).unwrap(),
        ));
    let mut server = ServerProcess::start(command);
    let api = Recorder {
        client: reqwest::Client::new(),
        base: server.base(),
        key,
        bodies: Mutex::new(Vec::new()),
    };

    let (status, created) = api
        .send(
            "POST",
            "/credentials",
            Some(
                json!({"name": "peer-token", "kind": "bearer", "value": bearer,
                        "description": "the peer's token"}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let bearer_id = created["id"].as_str().unwrap().to_string();
    let (status, created) = api
        .send(
            "POST",
            "/credentials",
            Some(json!({"name": "env-secret", "kind": "secret", "value": secret})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let secret_id = created["id"].as_str().unwrap().to_string();

    let (status, runbook) = api
        .send(
            "POST",
            "/runbooks",
            Some(json!({
                "name": "canary",
                "blocks": [
                    // Time to open the event stream before anything secret happens.
                    {"id": "warmup", "kind": "command", "script": "sleep 1; echo warming up"},
                    {"id": "call", "kind": "api_call", "method": "GET", "url": peer.url,
                     "credential": "peer-token", "expect_status": [200]},
                    {"id": "print", "kind": "command",
                     "script": "echo \"token=$TOKEN\"; echo \"again $TOKEN.\"; \
                                echo \"length $(printf %s \"$TOKEN\" | wc -c | tr -d ' ')\"",
                     "secrets": {"TOKEN": "env-secret"}}
                ]
            })),
        )
        .await;
    assert_eq!(status, 201, "{runbook}");
    let runbook_id = runbook["id"].as_str().unwrap().to_string();
    let (status, run) = api
        .send(
            "POST",
            &format!("/runbooks/{runbook_id}/execute"),
            Some(json!({"params": {}})),
        )
        .await;
    assert_eq!(status, 202, "{run}");
    let run_id = run["id"].as_str().unwrap().to_string();
    let sse = api.events(&run_id).await;

    let deadline = Instant::now() + Duration::from_secs(60);
    let execution = loop {
        let (_, execution) = api
            .send("GET", &format!("/executions/{run_id}"), None)
            .await;
        if ["succeeded", "failed", "stopped", "interrupted"]
            .contains(&execution["status"].as_str().unwrap_or(""))
        {
            break execution;
        }
        assert!(
            Instant::now() < deadline,
            "the run never finished: {execution}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let (_, output) = api
        .send(
            "GET",
            &format!("/executions/{run_id}/output?limit=1048576"),
            None,
        )
        .await;
    assert_eq!(
        execution["status"],
        "succeeded",
        "{execution}\n{output}\npeer: {} authorized, {} refused",
        peer.authorized.load(Ordering::SeqCst),
        peer.refused.load(Ordering::SeqCst)
    );
    assert_eq!(
        peer.authorized.load(Ordering::SeqCst),
        1,
        "the api_call sent the bearer credential"
    );
    let text = output["text"].as_str().unwrap_or_default();
    assert!(text.contains("token=***"), "the secret was masked: {text}");
    assert!(
        text.contains(&format!("length {}", secret.len())),
        "the command saw the whole secret: {text}"
    );
    let sse_text = String::from_utf8_lossy(&sse);
    assert!(
        sse_text.contains("event: output") && sse_text.contains("succeeded"),
        "the event stream carried the run: {sse_text}"
    );

    // Everything else a client can read.
    for path in [
        "/credentials".to_string(),
        format!("/credentials/{bearer_id}"),
        format!("/credentials/{secret_id}"),
        format!("/runbooks/{runbook_id}"),
        "/executions".to_string(),
        "/audit?limit=500".to_string(),
        "/audit/verify".to_string(),
        "/keys".to_string(),
        "/vault".to_string(),
    ] {
        let (status, body) = api.send("GET", &path, None).await;
        assert_eq!(status, 200, "{path}: {body}");
    }
    let (_, audit) = api
        .send("GET", "/audit?action=credential.use&limit=100", None)
        .await;
    let uses: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["target"].as_str())
        .collect();
    assert!(
        uses.contains(&"credential:peer-token") && uses.contains(&"credential:env-secret"),
        "both uses were audited: {audit}"
    );

    let live_files = common::files_below(data_dir.path())
        .into_iter()
        .map(|path| {
            (
                path.display().to_string(),
                std::fs::read(&path).unwrap_or_default(),
            )
        })
        .collect();
    let status = server.stop();
    assert!(status.success(), "the server stopped cleanly: {status:?}");
    let bodies = api.bodies.into_inner().unwrap();
    Traces {
        data_dir,
        logs,
        bodies,
        sse,
        live_files,
    }
}

/// Every place a canary was found, for the assertion message.
fn leaks(traces: &Traces, secrets: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for secret in secrets {
        for (what, body) in &traces.bodies {
            found.extend(find_leaks(
                &format!("response {what}"),
                body.as_bytes(),
                secret,
            ));
        }
        found.extend(find_leaks("the event stream", &traces.sse, secret));
        for (name, bytes) in &traces.live_files {
            found.extend(find_leaks(
                &format!("{name} (server running)"),
                bytes,
                secret,
            ));
        }
        for path in common::files_below(traces.data_dir.path()) {
            let bytes = std::fs::read(&path).unwrap_or_default();
            found.extend(find_leaks(&path.display().to_string(), &bytes, secret));
        }
        for path in common::files_below(traces.logs.path()) {
            let bytes = std::fs::read(&path).unwrap_or_default();
            found.extend(find_leaks(
                &format!("server log {}", path.display()),
                &bytes,
                secret,
            ));
        }
    }
    found
}

fn canaries() -> (String, String) {
    (
        format!("canary-bearer-{}", uuid::Uuid::new_v4().simple()),
        format!("canary-secret-{}", uuid::Uuid::new_v4().simple()),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_secrets_leak_nowhere_on_sqlite() {
    let (bearer, secret) = canaries();
    let traces = scenario(None, &bearer, &secret).await;
    let db = traces.data_dir.path().join("runbook-studio.db");
    assert!(db.is_file(), "the SQLite database is in the data dir");
    let logged = std::fs::read_to_string(traces.logs.path().join("stderr.log")).unwrap();
    assert!(
        logged.contains("DEBUG") || logged.contains("debug"),
        "the server logged at debug level (the log is worth searching)"
    );
    let found = leaks(&traces, &[&bearer, &secret]);
    assert!(found.is_empty(), "a canary leaked:\n{}", found.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_secrets_leak_nowhere_on_postgres() {
    let (bearer, secret) = canaries();
    let database = PgDatabase::create();
    let traces = scenario(Some(&database.url), &bearer, &secret).await;
    assert!(
        !traces.data_dir.path().join("runbook-studio.db").exists(),
        "the server used PostgreSQL, not a SQLite file"
    );
    let dump = database.dump_all_rows();
    assert!(
        dump.contains("-- credentials") && dump.contains("peer-token"),
        "the dump holds the credentials table: {}",
        dump.chars().take(2000).collect::<String>()
    );
    assert!(
        dump.contains("credential.use"),
        "the dump holds the audit trail"
    );
    let mut found = leaks(&traces, &[&bearer, &secret]);
    for secret in [&bearer, &secret] {
        found.extend(find_leaks("the PostgreSQL dump", dump.as_bytes(), secret));
    }
    assert!(found.is_empty(), "a canary leaked:\n{}", found.join("\n"));
}
