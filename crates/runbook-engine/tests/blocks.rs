//! Engine tests of the block kinds beyond plain commands, against real peers: api_call
//! blocks against an axum server on a local port, conditionals over params and earlier
//! results, templates reaching the shell, secret masking of injected credentials, timer
//! countdowns, control of a request in flight, reused steps of a retry, and processes
//! that left their command's group.

mod common;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use common::*;
use runbook_domain::execution::MAX_CAPTURED_BODY;
use runbook_domain::{Block, Branch, ControlAction, ExecutionStatus, StepResult, StepStatus};
use runbook_engine::{
    Credential, CredentialResolver, ExecutionEvent, NoCredentials, StaticCredentials,
};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

// ---- a real HTTP peer ----

/// A request as the test server received it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    query: String,
    /// Lower-case names.
    headers: HashMap<String, String>,
    body: String,
}

#[derive(Default)]
struct ServerState {
    seen: Mutex<Vec<Seen>>,
    /// Releases the `/gate` handler.
    gate: Notify,
}

/// An axum server on 127.0.0.1 with one behaviour per path (see [`respond`]).
struct TestServer {
    addr: SocketAddr,
    state: Arc<ServerState>,
}

/// Size of the `/big` body: half a MiB more than the engine keeps.
const BIG_BODY: usize = 1024 * 1024 + 512 * 1024;

impl TestServer {
    async fn start() -> TestServer {
        let state = Arc::new(ServerState::default());
        let app = axum::Router::new()
            .fallback(respond)
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a free local port");
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        TestServer { addr, state }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }

    fn paths(&self) -> Vec<String> {
        self.seen().into_iter().map(|s| s.path).collect()
    }

    async fn wait_for_request(&self, path: &str) {
        let deadline = Instant::now() + PATIENCE;
        while !self.paths().iter().any(|p| p == path) {
            assert!(Instant::now() < deadline, "no request for {path} arrived");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

async fn respond(
    State(state): State<Arc<ServerState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let seen = Seen {
        method: method.to_string(),
        path: uri.path().to_string(),
        query: uri.query().unwrap_or_default().to_string(),
        headers: headers
            .iter()
            .map(|(name, value)| {
                let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                (name.as_str().to_string(), value)
            })
            .collect(),
        body: String::from_utf8_lossy(&body).into_owned(),
    };
    state.seen.lock().unwrap().push(seen.clone());
    match uri.path() {
        "/health" => (
            [("x-served-by", "runbook-test")],
            axum::Json(json!({"healthy": true, "version": "1.2.3", "items": [1, 2, 3]})),
        )
            .into_response(),
        // Everything the request carried, credentials included, comes back in the body.
        "/echo" => axum::Json(json!({
            "method": seen.method,
            "query": seen.query,
            "headers": seen.headers,
            "body": seen.body,
        }))
        .into_response(),
        "/redirect" => (StatusCode::FOUND, [("location", "/health")]).into_response(),
        // A redirect to wherever the query says (`/away?http://…`).
        "/away" => (StatusCode::FOUND, [("location", seen.query.clone())]).into_response(),
        "/fail" => (StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response(),
        "/slow" => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            "late".into_response()
        }
        "/hang" => {
            tokio::time::sleep(Duration::from_secs(120)).await;
            "very late".into_response()
        }
        "/gate" => {
            state.gate.notified().await;
            "released".into_response()
        }
        "/big" => "x".repeat(BIG_BODY).into_response(),
        // Bytes that are not UTF-8, past the bound.
        "/binary" => vec![0xFFu8; MAX_CAPTURED_BODY + 10].into_response(),
        // Three-byte characters past the bound, which is no multiple of three.
        "/euro" => "€".repeat(MAX_CAPTURED_BODY / 3 + 100).into_response(),
        // The byte order mark says UTF-8, whatever the Content-Type says.
        "/bom" => (
            [("content-type", "application/json; charset=iso-8859-1")],
            "\u{feff}{\"version\": \"1.2.3\", \"state\": \"läuft\"}",
        )
            .into_response(),
        // "Datenbank läuft: 5 €" in the charsets the Content-Type names.
        "/latin1" => (
            [("content-type", "text/plain; charset=ISO-8859-1")],
            b"Datenbank l\xe4uft".to_vec(),
        )
            .into_response(),
        "/cp1252" => (
            [("content-type", "text/plain ;  Charset = \"windows-1252\"")],
            b"5 \x80".to_vec(),
        )
            .into_response(),
        "/utf16" => (
            [("content-type", "application/json; charset=utf-16le")],
            "{\"state\": \"läuft\"}"
                .encode_utf16()
                .flat_map(u16::to_le_bytes)
                .collect::<Vec<u8>>(),
        )
            .into_response(),
        // A charset browsers refuse to decode: read as UTF-8 too.
        "/refused-charset" => (
            [(
                "content-type",
                "text/plain; boundary=a=b/c; charset=ISO-2022-KR",
            )],
            "läuft",
        )
            .into_response(),
        // A surrogate pair cut in two by the bound: one `a`, then 4-byte characters.
        "/utf16-big" => (
            [("content-type", "text/plain; charset=utf-16le")],
            std::iter::once('a')
                .chain(std::iter::repeat_n('😀', MAX_CAPTURED_BODY / 4))
                .collect::<String>()
                .encode_utf16()
                .flat_map(u16::to_le_bytes)
                .collect::<Vec<u8>>(),
        )
            .into_response(),
        // A charset no one knows: read as UTF-8.
        "/unknown-charset" => {
            ([("content-type", "text/plain; charset=x-made-up")], "läuft").into_response()
        }
        // Past the bound, in a charset whose every byte becomes two in UTF-8.
        "/latin1-big" => (
            [("content-type", "text/plain; charset=latin1")],
            vec![0xE4u8; MAX_CAPTURED_BODY + 10],
        )
            .into_response(),
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

/// A server on 127.0.0.1 whose every response sends its status and headers, then a
/// body that never ends: a byte every 100 ms.
async fn endless_body_server() -> SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free local port");
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let start = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n";
                if socket.write_all(start).await.is_err() {
                    return;
                }
                while socket.write_all(b"1\r\nx\r\n").await.is_ok() {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            });
        }
    });
    addr
}

// ---- helpers ----

fn params(value: Value) -> Map<String, Value> {
    value.as_object().expect("params are an object").clone()
}

fn credentials(
    entries: impl IntoIterator<Item = (&'static str, Credential)>,
) -> Arc<dyn CredentialResolver> {
    Arc::new(static_credentials(entries))
}

fn static_credentials(
    entries: impl IntoIterator<Item = (&'static str, Credential)>,
) -> StaticCredentials {
    StaticCredentials::new(
        entries
            .into_iter()
            .map(|(name, credential)| (name.to_string(), credential))
            .collect(),
    )
}

fn start(
    blocks: Vec<Block>,
    params: Map<String, Value>,
    credentials: Arc<dyn CredentialResolver>,
) -> Harness {
    Harness::start_full(quick_config(), blocks, params, credentials, |_| {})
}

fn api_call(id: &str, url: &str) -> Block {
    block(json!({"id": id, "kind": "api_call", "url": url}))
}

fn conditional(id: &str, expr: &str, then: Vec<Block>, otherwise: Vec<Block>) -> Block {
    block(json!({"id": id, "kind": "conditional", "expr": expr, "then": then, "else": otherwise}))
}

/// The recorded step of block `id` (steps are looked up by id, not position).
fn step<'a>(record: &'a Record, id: &str) -> &'a StepResult {
    record
        .steps
        .iter()
        .flatten()
        .find(|s| s.block_id == id)
        .unwrap_or_else(|| panic!("step {id} was never recorded; {record:#?}"))
}

fn status_of(record: &Record, id: &str) -> Option<StepStatus> {
    record
        .steps
        .iter()
        .flatten()
        .find(|s| s.block_id == id)
        .map(|s| s.status)
}

fn error_of<'a>(record: &'a Record, id: &str) -> &'a str {
    step(record, id)
        .error
        .as_deref()
        .unwrap_or_else(|| panic!("step {id} has no error"))
}

/// The console as streamed in output events, checked for gaps.
fn streamed(run: &Harness) -> Vec<String> {
    let events = run.events.lock().unwrap();
    assert_eq!(events.lagged, 0, "no event was dropped");
    events
        .items
        .iter()
        .filter_map(|event| match event {
            ExecutionEvent::Output { text, .. } => Some(text.clone()),
            _ => None,
        })
        .collect()
}

/// (remaining_ms, total_ms, paused) of every countdown event so far.
fn countdowns(run: &Harness) -> Vec<(u64, u64, bool)> {
    run.events()
        .into_iter()
        .filter_map(|event| match event {
            ExecutionEvent::Countdown {
                remaining_ms,
                total_ms,
                paused,
                ..
            } => Some((remaining_ms, total_ms, paused)),
            _ => None,
        })
        .collect()
}

/// A file path no other test uses; it does not exist.
fn unique_path(what: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("runbook-{what}-{}", uuid::Uuid::new_v4()))
}

// ---- api_call ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_call_captures_a_json_response_that_later_steps_use() {
    let server = TestServer::start().await;
    let run = start(
        vec![
            api_call("health", &server.url("/health")),
            conditional(
                "healthy",
                "steps.health.status == 200 && steps.health.json.healthy == true \
                 && steps.health.json.version == \"1.2.3\" && size(steps.health.json.items) == 3",
                vec![command(
                    "celebrate",
                    "echo healthy-branch {{ steps.health.json.version }}",
                )],
                vec![command("mourn", "echo unhealthy-branch")],
            ),
        ],
        Map::new(),
        Arc::new(NoCredentials),
    );
    let record = run.finish().await;
    assert_eq!(record.status(), Some(ExecutionStatus::Succeeded));

    let health = step(&record, "health");
    assert_eq!(health.status, StepStatus::Succeeded);
    assert_eq!(health.http_status, Some(200));
    assert_eq!((health.exit_code, health.error.as_deref()), (None, None));
    let response = health.detail.response.as_ref().expect("the response");
    assert_eq!(response.status, 200);
    assert_eq!(response.headers["x-served-by"], "runbook-test");
    assert_eq!(response.headers["content-type"], "application/json");
    let body: Value = serde_json::from_str(&response.body).expect("the body is JSON");
    assert_eq!(
        body,
        json!({"healthy": true, "version": "1.2.3", "items": [1, 2, 3]})
    );
    assert_eq!(response.body_bytes, response.body.len() as u64);
    assert!(!response.truncated);

    let seen = server.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(
        (seen[0].method.as_str(), seen[0].path.as_str()),
        ("GET", "/health")
    );
    assert!(
        seen[0].headers["user-agent"].starts_with("runbook-studio/"),
        "{seen:?}"
    );

    assert_eq!(step(&record, "healthy").detail.branch, Some(Branch::Then));
    assert_eq!(status_of(&record, "celebrate"), Some(StepStatus::Succeeded));
    assert_eq!(status_of(&record, "mourn"), Some(StepStatus::Skipped));
    let text = record.text();
    assert!(text.contains("healthy-branch 1.2.3\n"), "{text:?}");
    assert!(!text.contains("unhealthy-branch"));
    assert!(
        text.contains(&format!("GET {}", server.url("/health"))),
        "{text:?}"
    );
    assert!(text.contains("→ 200 in "), "{text:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_call_posts_a_templated_body_and_headers() {
    let server = TestServer::start().await;
    let run = start(
        vec![block(json!({
            "id": "create", "kind": "api_call", "method": "POST",
            "url": server.url("/echo?target={{ params.env }}&id={{ params.id }}"),
            "headers": {"Content-Type": "application/json", "X-Env": "{{ params.env }}"},
            "body": "{\"env\": \"{{ params.env }}\", \"name\": \"{{ params.name }}\", \"id\": {{ params.id }}}",
        }))],
        params(json!({"env": "prod", "name": "blue green", "id": 42})),
        Arc::new(NoCredentials),
    );
    let record = run.finish().await;
    assert_eq!(record.status(), Some(ExecutionStatus::Succeeded));

    let seen = server.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    let request = &seen[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/echo");
    assert_eq!(request.query, "target=prod&id=42");
    assert_eq!(request.headers["x-env"], "prod");
    assert_eq!(request.headers["content-type"], "application/json");
    assert_eq!(
        request.body,
        r#"{"env": "prod", "name": "blue green", "id": 42}"#
    );

    let create = step(&record, "create");
    assert_eq!(create.http_status, Some(200));
    let echoed: Value =
        serde_json::from_str(&create.detail.response.as_ref().unwrap().body).unwrap();
    assert_eq!(echoed["method"], "POST");
    assert_eq!(echoed["body"], request.body.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_call_follows_a_redirect() {
    let server = TestServer::start().await;
    let run = start(
        vec![api_call("moved", &server.url("/redirect"))],
        Map::new(),
        Arc::new(NoCredentials),
    );
    let record = run.finish().await;
    assert_eq!(record.status(), Some(ExecutionStatus::Succeeded));
    assert_eq!(server.paths(), ["/redirect", "/health"]);
    let moved = step(&record, "moved");
    assert_eq!(
        moved.http_status,
        Some(200),
        "the final status, not the 302"
    );
    let body: Value = serde_json::from_str(&moved.detail.response.as_ref().unwrap().body).unwrap();
    assert_eq!(body["healthy"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unexpected_status_fails_the_step_naming_both_statuses() {
    let server = TestServer::start().await;
    let run = start(
        vec![
            block(
                json!({"id": "call", "kind": "api_call", "url": server.url("/fail"),
                         "expect_status": [200, 204]}),
            ),
            command("after", "echo never-printed"),
        ],
        Map::new(),
        Arc::new(NoCredentials),
    );
    let record = run.finish().await;
    assert_eq!(record.status(), Some(ExecutionStatus::Failed));
    let call = step(&record, "call");
    assert_eq!(call.status, StepStatus::Failed);
    assert_eq!(call.http_status, Some(500));
    let error = error_of(&record, "call");
    assert!(
        error.contains("500") && error.contains("200 or 204"),
        "{error}"
    );
    assert_eq!(
        call.detail.response.as_ref().map(|r| r.body.as_str()),
        Some("boom"),
        "the failing response is kept to look at"
    );
    assert_eq!(status_of(&record, "after"), Some(StepStatus::Skipped));
    let text = record.text();
    assert!(
        text.contains("→ 500 in ") && text.contains("boom"),
        "{text:?}"
    );
    assert!(text.contains(error), "the reason is shown: {text:?}");
    assert!(!text.contains("never-printed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expected_500_is_a_success() {
    let server = TestServer::start().await;
    let run = start(
        vec![
            block(
                json!({"id": "call", "kind": "api_call", "url": server.url("/fail"),
                         "expect_status": [500]}),
            ),
            command("after", "echo after-500"),
        ],
        Map::new(),
        Arc::new(NoCredentials),
    );
    let record = run.finish().await;
    assert_eq!(record.status(), Some(ExecutionStatus::Succeeded));
    let call = step(&record, "call");
    assert_eq!(
        (call.status, call.http_status, call.error.as_deref()),
        (StepStatus::Succeeded, Some(500), None)
    );
    assert!(record.text().contains("after-500"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_failure_continue_goes_on_after_a_failed_call() {
    let server = TestServer::start().await;
    let run = start(
        vec![
            block(
                json!({"id": "call", "kind": "api_call", "url": server.url("/fail"),
                         "on_failure": "continue"}),
            ),
            command("after", "echo carried-on"),
        ],
        Map::new(),
        Arc::new(NoCredentials),
    );
    let record = run.finish().await;
    assert_eq!(status_of(&record, "call"), Some(StepStatus::Failed));
    assert_eq!(status_of(&record, "after"), Some(StepStatus::Succeeded));
    assert!(record.text().contains("carried-on"));
    assert_eq!(record.status(), Some(ExecutionStatus::Succeeded));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_response_times_out() {
    let server = TestServer::start().await;
    let run = start(
        vec![
            block(
                json!({"id": "slow", "kind": "api_call", "url": server.url("/slow"),
                         "timeout_secs": 1}),
            ),
            command("after", "echo never-printed"),
        ],
        Map::new(),
        Arc::new(NoCredentials),
    );
    let record = run.finish().await;
    let elapsed = run.started.elapsed();
    assert_eq!(record.status(), Some(ExecutionStatus::Failed));
    let slow = step(&record, "slow");
    assert_eq!(slow.status, StepStatus::Failed);
    assert_eq!(error_of(&record, "slow"), "no response within 1 s");
    assert_eq!(slow.http_status, None);
    assert!(slow.detail.response.is_none());
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(4),
        "the 1 s timeout, not the 5 s handler, ended it: {elapsed:?}"
    );
    assert_eq!(status_of(&record, "after"), Some(StepStatus::Skipped));
    assert!(record.text().contains("no response within 1 s"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connection_fails_clearly() {
    // A port that was free a moment ago and has no listener now.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let run = start(
        vec![api_call("nobody", &format!("http://{closed}/health"))],
        Map::new(),
        Arc::new(NoCredentials),
    );
    let record = run.finish().await;
    assert_eq!(record.status(), Some(ExecutionStatus::Failed));
    let error = error_of(&record, "nobody");
    assert!(error.starts_with("could not connect"), "{error}");
    assert!(error.to_lowercase().contains("refused"), "{error}");
    assert_eq!(step(&record, "nobody").http_status, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_body_is_kept_truncated_with_its_full_size() {
    let server = TestServer::start().await;
    let run = start(
        vec![api_call("big", &server.url("/big"))],
        Map::new(),
        Arc::new(NoCredentials),
    );
    let record = run.finish().await;
    assert_eq!(record.status(), Some(ExecutionStatus::Succeeded));
    let response = step(&record, "big").detail.response.clone().unwrap();
    assert_eq!(response.body_bytes, BIG_BODY as u64);
    assert!(response.truncated);
    assert_eq!(response.body.len(), 1024 * 1024);
    assert!(response.body.bytes().all(|b| b == b'x'));
    let text = record.text();
    assert!(text.contains(&format!("{BIG_BODY} bytes")), "{text:.300}");
    assert!(
        record.output.len() < 16 * 1024,
        "the console shows only the start of the body ({} bytes)",
        record.output.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_is_not_utf8_stays_within_its_bound() {
    let server = TestServer::start().await;
    let run = start(
        vec![
            api_call("binary", &server.url("/binary")),
            api_call("euro", &server.url("/euro")),
        ],
        Map::new(),
        Arc::new(NoCredentials),
    );
    let record = run.finish().await;
    assert_eq!(record.status(), Some(ExecutionStatus::Succeeded));

    // Each invalid byte shows as U+FFFD, three bytes long: the text is cut to the bound.
    let binary = step(&record, "binary").detail.response.clone().unwrap();
    assert_eq!(binary.body_bytes, MAX_CAPTURED_BODY as u64 + 10);
    assert!(binary.truncated);
    assert!(
        binary.body.len() <= MAX_CAPTURED_BODY && binary.body.len() > MAX_CAPTURED_BODY - 3,
        "{} bytes kept",
        binary.body.len()
    );
    assert!(binary
        .body
        .chars()
        .all(|c| c == char::REPLACEMENT_CHARACTER));

    // The bound falls inside a character: it is left out, not shown as U+FFFD.
    let euro = step(&record, "euro").detail.response.clone().unwrap();
    assert_eq!(euro.body_bytes, 3 * (MAX_CAPTURED_BODY as u64 / 3 + 100));
    assert!(euro.truncated);
    assert_eq!(euro.body.len(), MAX_CAPTURED_BODY / 3 * 3);
    assert!(euro.body.chars().all(|c| c == '€'));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_never_ends_times_out_naming_the_status_that_came() {
    let addr = endless_body_server().await;
    let run = start(
        vec![block(
            json!({"id": "stream", "kind": "api_call", "url": format!("http://{addr}/events"),
                   "timeout_secs": 1}),
        )],
        Map::new(),
        Arc::new(NoCredentials),
    );
    let record = run.finish().await;
    let elapsed = run.started.elapsed();
    assert_eq!(record.status(), Some(ExecutionStatus::Failed));
    let error = error_of(&record, "stream");
    assert!(
        error.starts_with("the response (status 200) did not end within 1 s; "),
        "not `no response`: the status and headers came: {error}"
    );
    assert!(error.ends_with(" bytes of its body came"), "{error}");
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    assert!(record.text().contains(error));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_is_read_in_the_charset_its_content_type_or_byte_order_mark_names() {
    let server = TestServer::start().await;
    let run = start(
        vec![
            api_call("latin1", &server.url("/latin1")),
            api_call("cp1252", &server.url("/cp1252")),
            api_call("utf16", &server.url("/utf16")),
            api_call("unknown", &server.url("/unknown-charset")),
            api_call("big", &server.url("/latin1-big")),
            api_call("bom", &server.url("/bom")),
            api_call("refused", &server.url("/refused-charset")),
            api_call("pairs", &server.url("/utf16-big")),
            conditional(
                "decide",
                r#"steps.utf16.json.state == "läuft" && steps.latin1.body.endsWith("läuft")
                   && steps.bom.json.version == "1.2.3" && steps.bom.json.state == "läuft""#,
                vec![],
                vec![],
            ),
        ],
        Map::new(),
        Arc::new(NoCredentials),
    );
    let record = run.finish().await;
    assert_eq!(
        record.status(),
        Some(ExecutionStatus::Succeeded),
        "{:?}",
        step(&record, "decide").error
    );
    let body = |id: &str| step(&record, id).detail.response.clone().unwrap();
    assert_eq!(body("latin1").body, "Datenbank läuft");
    assert_eq!(body("latin1").body_bytes, 15, "the size is the body's own");
    assert_eq!(body("cp1252").body, "5 €");
    assert_eq!(body("utf16").body, "{\"state\": \"läuft\"}");
    assert_eq!(body("unknown").body, "läuft");
    assert_eq!(body("refused").body, "läuft");
    assert_eq!(
        body("bom").body,
        "{\"version\": \"1.2.3\", \"state\": \"läuft\"}"
    );
    assert_eq!(step(&record, "decide").detail.branch, Some(Branch::Then));
    assert!(
        record.text().contains("Datenbank läuft"),
        "{}",
        record.text()
    );

    // Each byte became a two-byte character: the text is cut to the bound, whole.
    let big = body("big");
    assert_eq!(big.body_bytes, MAX_CAPTURED_BODY as u64 + 10);
    assert!(big.truncated);
    assert_eq!(big.body.len(), MAX_CAPTURED_BODY);
    assert!(big.body.chars().all(|c| c == 'ä'));

    // The bound falls inside a surrogate pair: its half is left out, not shown as U+FFFD.
    let pairs = body("pairs");
    assert_eq!(pairs.body_bytes, 2 + MAX_CAPTURED_BODY as u64);
    assert!(pairs.truncated);
    assert_eq!(pairs.body.len(), 1 + (MAX_CAPTURED_BODY / 4 - 1) * 4);
    assert!(pairs.body.starts_with('a'));
    assert!(pairs.body[1..].chars().all(|c| c == '😀'));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_field_of_a_body_that_is_not_json_fails_the_condition_clearly() {
    let server = TestServer::start().await;
    let run = start(
        vec![
            block(
                json!({"id": "health", "kind": "api_call", "url": server.url("/fail"),
                         "expect_status": [500]}),
            ),
            conditional(
                "decide",
                "steps.health.json.healthy == true",
                vec![],
                vec![],
            ),
        ],
        Map::new(),
        Arc::new(NoCredentials),
    );
    let record = run.finish().await;
    assert_eq!(record.status(), Some(ExecutionStatus::Failed));
    let error = error_of(&record, "decide");
    assert!(
        error.contains("read from null") && error.contains("`json` is null"),
        "{error}"
    );
    assert!(!error.contains("null_type"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_authenticate_requests_and_never_show() {
    use base64::Engine as _;
    const TOKEN: &str = "tok-B3arer-Canary-71";
    const PASSWORD: &str = "pa55-Canary-word";
    const API_KEY: &str = "key-Canary-H3ader";
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("ops:{PASSWORD}"));
    let server = TestServer::start().await;
    let call = |id: &str, credential: &str| {
        block(
            json!({"id": id, "kind": "api_call", "url": server.url("/echo"),
                     "credential": credential}),
        )
    };
    let run = start(
        vec![
            call("bearer", "ci-token"),
            call("basic", "ops-login"),
            call("header", "api-key"),
        ],
        Map::new(),
        credentials([
            (
                "ci-token",
                Credential::Bearer {
                    token: TOKEN.to_string(),
                },
            ),
            (
                "ops-login",
                Credential::Basic {
                    username: "ops".to_string(),
                    password: PASSWORD.to_string(),
                },
            ),
            (
                "api-key",
                Credential::Header {
                    name: "X-Api-Key".to_string(),
                    value: API_KEY.to_string(),
                },
            ),
        ]),
    );
    let record = run.finish().await;
    assert_eq!(record.status(), Some(ExecutionStatus::Succeeded));

    // The server got every credential in its proper form...
    let seen = server.seen();
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert_eq!(seen[0].headers["authorization"], format!("Bearer {TOKEN}"));
    assert_eq!(seen[1].headers["authorization"], format!("Basic {basic}"));
    assert_eq!(seen[2].headers["x-api-key"], API_KEY);
    assert!(!seen[2].headers.contains_key("authorization"));

    // ...and echoed it back, yet nothing the run shows or stores holds it.
    let secrets = [TOKEN, PASSWORD, basic.as_str(), API_KEY];
    let text = record.text();
    let stored = serde_json::to_string(&record.steps).unwrap();
    let events = streamed(&run);
    for secret in secrets {
        assert!(!text.contains(secret), "{secret} in the console: {text}");
        assert!(!stored.contains(secret), "{secret} in a step: {stored}");
        assert!(
            !events.concat().contains(secret),
            "{secret} in the output events"
        );
    }
    let echoed = |id: &str| -> Value {
        serde_json::from_str(&step(&record, id).detail.response.as_ref().unwrap().body).unwrap()
    };
    assert_eq!(echoed("bearer")["headers"]["authorization"], "Bearer ***");
    assert_eq!(echoed("basic")["headers"]["authorization"], "Basic ***");
    assert_eq!(echoed("header")["headers"]["x-api-key"], "***");
    assert!(text.contains("Bearer ***"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_credential_never_follows_a_redirect_to_another_origin() {
    let (home, elsewhere) = (TestServer::start().await, TestServer::start().await);
    let call = |id: &str, url: String, credential: Option<&str>| {
        block(
            json!({"id": id, "kind": "api_call", "url": url, "credential": credential,
                     "on_failure": "continue"}),
        )
    };
    let away = home.url(&format!("/away?{}", elsewhere.url("/echo")));
    let run = start(
        vec![
            call("keyed-away", away.clone(), Some("api-key")),
            call("keyed-home", home.url("/redirect"), Some("api-key")),
            call("open-away", away, None),
        ],
        Map::new(),
        credentials([(
            "api-key",
            Credential::Header {
                name: "X-Api-Key".to_string(),
                value: "key-never-elsewhere".to_string(),
            },
        )]),
    );
    let record = run.finish().await;
    // With a credential, the redirect to another origin is where the call ends.
    let keyed_away = step(&record, "keyed-away");
    assert_eq!(keyed_away.status, StepStatus::Failed);
    assert_eq!(keyed_away.http_status, Some(302));
    let error = keyed_away.error.as_deref().unwrap();
    assert!(
        error.contains("redirects to `http://127.0.0.1:")
            && error.contains("does not follow to another origin"),
        "{error}"
    );
    // Within its origin, a credentialed call follows redirects as before.
    assert_eq!(step(&record, "keyed-home").http_status, Some(200));
    // Without one, redirects anywhere are followed.
    assert_eq!(step(&record, "open-away").http_status, Some(200));
    let seen_elsewhere = elsewhere.seen();
    assert_eq!(
        seen_elsewhere.len(),
        1,
        "only the call without a credential arrived"
    );
    assert!(!seen_elsewhere[0].headers.contains_key("x-api-key"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_credential_goes_only_to_a_host_it_is_bound_to_or_the_runbook_names() {
    let server = TestServer::start().await;
    let port = server.addr.port();
    let call = |id: &str, url: String, credential: &str| {
        block(
            json!({"id": id, "kind": "api_call", "url": url, "credential": credential,
                   "on_failure": "continue"}),
        )
    };
    let key = |value: &str| Credential::Header {
        name: "X-Api-Key".to_string(),
        value: value.to_string(),
    };
    let templated = "http://{{ params.host }}/echo".to_string();
    let run = start(
        vec![
            // Bound to no host: only to the origin the runbook itself names.
            call("unbound-templated", templated.clone(), "unbound"),
            call(
                "unbound-written",
                format!("http://127.0.0.1:{port}/echo?to={{{{ params.host }}}}"),
                "unbound",
            ),
            call(
                "unbound-tail",
                "http://127.0.0.1:{{ params.port }}/echo".to_string(),
                "unbound",
            ),
            // Bound to 127.0.0.1: there, whatever names it, and nowhere else.
            call("bound-templated", templated, "bound"),
            call(
                "bound-elsewhere",
                format!("http://localhost:{port}/echo"),
                "bound",
            ),
            block(
                json!({"id": "bound-env", "kind": "command", "script": "echo \"$K\"",
                         "secrets": {"K": "bound"}, "on_failure": "continue"}),
            ),
            // Over plain http only where the runbook writes `http://` itself.
            call("bound-plain", "{{ params.base }}/echo".to_string(), "bound"),
            // A Host header of its own would pick another server behind the address.
            block(
                json!({"id": "bound-vhost", "kind": "api_call", "url": server.url("/echo"),
                         "headers": {"host": "{{ params.vhost }}"}, "credential": "bound",
                         "on_failure": "continue"}),
            ),
            block(
                json!({"id": "bound-same-host", "kind": "api_call", "url": server.url("/echo"),
                         "headers": {"Host": format!("127.0.0.1:{port}")}, "credential": "bound",
                         "on_failure": "continue"}),
            ),
            // A secret is for commands: refused before it is opened.
            call("secret-call", server.url("/echo"), "plain-secret"),
        ],
        params(json!({"host": format!("127.0.0.1:{port}"), "port": port,
                      "base": format!("http://127.0.0.1:{port}"), "vhost": "internal.example"})),
        Arc::new(
            static_credentials([
                ("unbound", key("key-unbound-1")),
                ("bound", key("key-bound-2")),
                (
                    "plain-secret",
                    Credential::Secret {
                        value: "s3cret-value-9".to_string(),
                    },
                ),
            ])
            .bound("bound", &["127.0.0.1"]),
        ),
    );
    let record = run.finish().await;
    let refused = |id: &str, reason: &str| {
        let error = error_of(&record, id);
        assert!(
            error.contains("was not used") && error.contains(reason),
            "{id}: {error}"
        );
    };
    refused("unbound-templated", "a host that comes from a template");
    refused("unbound-tail", "a host that comes from a template");
    refused(
        "bound-elsewhere",
        &format!("may be sent only to 127.0.0.1, and this request goes to localhost:{port}"),
    );
    refused("bound-env", "only an api_call block may send it");
    refused(
        "bound-plain",
        "over http, a scheme that comes from a template",
    );
    refused(
        "secret-call",
        "a secret credential is for a command's environment",
    );
    let vhost = error_of(&record, "bound-vhost");
    assert!(
        vhost.contains("cannot send a Host header (`internal.example`)"),
        "{vhost}"
    );
    assert_eq!(step(&record, "unbound-written").http_status, Some(200));
    assert_eq!(step(&record, "bound-templated").http_status, Some(200));
    assert_eq!(step(&record, "bound-same-host").http_status, Some(200));
    let keys: Vec<String> = server
        .seen()
        .iter()
        .map(|seen| seen.headers["x-api-key"].clone())
        .collect();
    assert_eq!(
        keys,
        ["key-unbound-1", "key-bound-2", "key-bound-2"],
        "only the allowed calls went out"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_credential_fails_the_call_before_it_is_sent() {
    let server = TestServer::start().await;
    let run = start(
        vec![block(
            json!({"id": "call", "kind": "api_call", "url": server.url("/echo"),
                          "credential": "nope"}),
        )],
        Map::new(),
        Arc::new(NoCredentials),
    );
    let record = run.finish().await;
    assert_eq!(record.status(), Some(ExecutionStatus::Failed));
    assert!(
        error_of(&record, "call").contains("no credential named `nope`"),
        "{record:#?}"
    );
    assert!(server.seen().is_empty(), "no request went out");
}

// ---- conditionals ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditions_pick_branches_by_params_and_earlier_results() {
    // (params, script of the step `check` before the condition, condition, then taken)
    let cases: [(Value, &str, &str, bool); 15] = [
        (
            json!({"env": "prod"}),
            "true",
            r#"params.env == "prod""#,
            true,
        ),
        (
            json!({"env": "staging"}),
            "true",
            r#"params.env == "prod""#,
            false,
        ),
        (
            json!({"env": "staging", "count": 3}),
            "true",
            r#"params.env == "prod" || params.count > 2"#,
            true,
        ),
        (
            json!({"env": "staging", "count": 1}),
            "true",
            r#"params.env == "prod" || params.count > 2"#,
            false,
        ),
        (json!({}), "echo all ok", "steps.check.exit_code == 0", true),
        (
            json!({}),
            "echo bad; exit 3",
            "steps.check.exit_code == 0",
            false,
        ),
        (
            json!({}),
            "echo bad; exit 3",
            r#"steps.check.exit_code == 3 && !steps.check.stdout.contains("ok")"#,
            true,
        ),
        (
            json!({}),
            "echo it is ok",
            r#"steps.check.stdout.contains("ok")"#,
            true,
        ),
        (
            json!({}),
            "echo ok >&2",
            r#"steps.check.stdout.contains("ok")"#,
            false,
        ),
        (
            json!({}),
            "echo ok >&2",
            r#"steps.check.stderr.contains("ok")"#,
            true,
        ),
        (
            json!({}),
            r#"echo KEY=v >> "$RUNBOOK_OUTPUT""#,
            r#"steps.check.outputs.KEY == "v""#,
            true,
        ),
        (
            json!({}),
            r#"echo KEY=v >> "$RUNBOOK_OUTPUT""#,
            r#"steps.check.outputs.KEY == "w""#,
            false,
        ),
        (
            json!({}),
            "true",
            r#"steps.check.succeeded && steps.check.state == "succeeded""#,
            true,
        ),
        (json!({}), "exit 1", "steps.check.succeeded", false),
        (
            json!({"env": "prod"}),
            "true",
            r#"params.env in ["staging", "prod"]"#,
            true,
        ),
    ];
    let runs: Vec<_> = cases
        .iter()
        .map(|(values, script, expr, _)| {
            start(
                vec![
                    block(json!({"id": "check", "kind": "command", "script": script,
                                 "on_failure": "continue"})),
                    conditional(
                        "decide",
                        expr,
                        vec![command("yes", "echo then-ran")],
                        vec![command("no", "echo else-ran")],
                    ),
                ],
                params(values.clone()),
                Arc::new(NoCredentials),
            )
        })
        .collect();
    for ((_, script, expr, then), run) in cases.iter().zip(&runs) {
        let record = run.finish().await;
        let case = format!("`{expr}` after `{script}`");
        assert_eq!(
            record.status(),
            Some(ExecutionStatus::Succeeded),
            "{case}: {record:#?}"
        );
        let decide = step(&record, "decide");
        assert_eq!(decide.status, StepStatus::Succeeded, "{case}");
        let (branch, taken, untaken, shown) = if *then {
            (Branch::Then, "yes", "no", "then-ran")
        } else {
            (Branch::Else, "no", "yes", "else-ran")
        };
        assert_eq!(decide.detail.branch, Some(branch), "{case}");
        assert_eq!(
            status_of(&record, taken),
            Some(StepStatus::Succeeded),
            "{case}"
        );
        assert_eq!(
            status_of(&record, untaken),
            Some(StepStatus::Skipped),
            "{case}"
        );
        assert_eq!(step(&record, untaken).started_at, None, "{case}");
        let text = record.text();
        assert!(text.contains(&format!("{shown}\n")), "{case}: {text:?}");
        let other = if *then { "else-ran" } else { "then-ran" };
        assert!(!text.contains(other), "{case}: {text:?}");
        assert!(
            text.contains(&format!(
                "is {then}: {}",
                if *then { "then" } else { "else" }
            )),
            "{case}: {text:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_conditionals_run_only_the_taken_path() {
    let run = start(
        vec![
            command("check", r#"echo ok; echo KEY=v >> "$RUNBOOK_OUTPUT""#),
            conditional(
                "outer",
                r#"params.env == "prod""#,
                vec![
                    conditional(
                        "inner",
                        r#"steps.check.outputs.KEY == "v""#,
                        vec![command("deep_then", "echo deep-then")],
                        vec![command("deep_else", "echo deep-else")],
                    ),
                    command("after_inner", "echo after-inner"),
                ],
                vec![
                    conditional(
                        "other_inner",
                        "true",
                        vec![command("other_then", "echo other-then")],
                        vec![],
                    ),
                    command("other_cmd", "echo other-cmd"),
                ],
            ),
            command("final", "echo final"),
        ],
        params(json!({"env": "prod"})),
        Arc::new(NoCredentials),
    );
    let record = run.finish().await;
    assert_eq!(record.status(), Some(ExecutionStatus::Succeeded));
    assert_eq!(step(&record, "outer").detail.branch, Some(Branch::Then));
    assert_eq!(step(&record, "inner").detail.branch, Some(Branch::Then));
    for id in [
        "check",
        "outer",
        "inner",
        "deep_then",
        "after_inner",
        "final",
    ] {
        assert_eq!(status_of(&record, id), Some(StepStatus::Succeeded), "{id}");
    }
    for id in ["deep_else", "other_inner", "other_then", "other_cmd"] {
        assert_eq!(status_of(&record, id), Some(StepStatus::Skipped), "{id}");
        assert_eq!(step(&record, id).started_at, None, "{id}");
    }
    assert_eq!(step(&record, "other_inner").detail.branch, None);
    let text = record.text();
    let at = |needle: &str| {
        text.find(needle)
            .unwrap_or_else(|| panic!("`{needle}` is missing from {text:?}"))
    };
    assert!(at("deep-then\n") < at("after-inner\n") && at("after-inner\n") < at("final\n"));
    for never in ["deep-else", "other-then", "other-cmd"] {
        assert!(!text.contains(never), "{never}: {text:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_condition_that_cannot_be_evaluated_fails_the_step() {
    // (condition, a word the message must hold)
    let cases = [
        ("steps.nope.exit_code == 0", "nope"),
        ("params.env", "true or false"),
        ("params.missing == 1", "missing"),
    ];
    let runs: Vec<_> = cases
        .iter()
        .map(|(expr, _)| {
            start(
                vec![
                    conditional(
                        "decide",
                        expr,
                        vec![command("yes", "echo then-ran")],
                        vec![command("no", "echo else-ran")],
                    ),
                    command("after", "echo after-ran"),
                ],
                params(json!({"env": "prod"})),
                Arc::new(NoCredentials),
            )
        })
        .collect();
    for ((expr, word), run) in cases.iter().zip(&runs) {
        let record = run.finish().await;
        assert_eq!(record.status(), Some(ExecutionStatus::Failed), "{expr}");
        let decide = step(&record, "decide");
        assert_eq!(decide.status, StepStatus::Failed, "{expr}");
        assert_eq!(decide.detail.branch, None, "{expr}");
        let error = error_of(&record, "decide");
        assert!(error.starts_with("condition failed: "), "{expr}: {error}");
        assert!(error.contains(word), "{expr}: {error}");
        for id in ["yes", "no", "after"] {
            assert_eq!(
                status_of(&record, id),
                Some(StepStatus::Skipped),
                "{expr}: {id}"
            );
        }
        let text = record.text();
        assert!(text.contains(error), "{expr}: {text:?}");
        assert!(!text.contains("-ran"), "{expr}: {text:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditions_do_arithmetic_on_numbers_from_params_and_steps() {
    let server = TestServer::start().await;
    // Each holds for the run below; numbers from 0 up are as usable as negative ones.
    let exprs = [
        "params.count - 1 == 2",
        "params.count * 2 == 6 && params.count / 2 == 1 && params.count % 2 == 1",
        "params.delta * 2 == -4",
        "params.count + params.delta == 1",
        "steps.check.exit_code - 3 == 0",
        "steps.check.duration_ms / 1000 >= 0",
        "steps.health.status - 200 == 0",
        "steps.health.json.items[0] - steps.health.json.items[2] == -2",
        "steps.health.json.items.map(i, i * 10)[2] == 30",
        "params.ratio * 2.0 == 3.0",
    ];
    let mut blocks = vec![
        block(json!({"id": "check", "kind": "command", "script": "exit 3",
                     "on_failure": "continue"})),
        api_call("health", &server.url("/health")),
    ];
    for (i, expr) in exprs.iter().enumerate() {
        blocks.push(conditional(&format!("c{i}"), expr, vec![], vec![]));
    }
    let run = start(
        blocks,
        params(json!({"count": 3, "delta": -2, "ratio": 1.5})),
        Arc::new(NoCredentials),
    );
    let record = run.finish().await;
    for (i, expr) in exprs.iter().enumerate() {
        let decided = step(&record, &format!("c{i}"));
        assert_eq!(
            (decided.status, decided.detail.branch),
            (StepStatus::Succeeded, Some(Branch::Then)),
            "`{expr}`: {:?}",
            decided.error
        );
    }
    assert_eq!(record.status(), Some(ExecutionStatus::Succeeded));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_chain_of_operators_is_evaluated() {
    // 4 KiB, the longest expression a runbook saves: 2,040 links of `+`, which CEL
    // evaluates recursively.
    let expr = format!("{}1 == 2041", "1+".repeat(2040));
    assert!(expr.len() <= 4096);
    let run = start(
        vec![conditional(
            "decide",
            &expr,
            vec![command("yes", "echo then-ran")],
            vec![],
        )],
        Map::new(),
        Arc::new(NoCredentials),
    );
    let record = run.finish().await;
    assert_eq!(record.status(), Some(ExecutionStatus::Succeeded));
    assert_eq!(step(&record, "decide").detail.branch, Some(Branch::Then));
    assert!(record.text().contains("then-ran\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_abandons_a_condition_that_takes_long() {
    // Nine million comprehension steps: seconds of work.
    let items: Vec<u32> = (0..3000).collect();
    let run = start(
        vec![
            conditional(
                "decide",
                "params.items.all(a, params.items.all(b, b >= 0))",
                vec![command("yes", "echo then-ran")],
                vec![],
            ),
            command("after", "echo after-ran"),
        ],
        params(json!({ "items": items })),
        Arc::new(NoCredentials),
    );
    run.wait_for("the condition to start", |r| {
        r.step_status(0) == Some(StepStatus::Running)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let asked = Instant::now();
    assert!(run.control(ControlAction::Stop).is_ok());
    let record = run.finish().await;
    assert!(
        asked.elapsed() < Duration::from_secs(1),
        "stopped after {:?}",
        asked.elapsed()
    );
    assert_eq!(record.status(), Some(ExecutionStatus::Stopped));
    let decide = step(&record, "decide");
    assert_eq!(
        (decide.status, decide.detail.branch),
        (StepStatus::Stopped, None)
    );
    for id in ["yes", "after"] {
        assert_eq!(status_of(&record, id), Some(StepStatus::Skipped), "{id}");
    }
    assert!(!record.text().contains("-ran"));
}

// ---- templates ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parameter_reaches_a_command_as_one_argument() {
    let canary = unique_path("injected");
    let c = canary.display();
    let value = format!("a b; touch {c}; $(touch {c}) `touch {c}` it's \"quoted\" | cat &");
    let run = start(
        vec![command("show", "printf '%s\\n' {{ params.v }}")],
        params(json!({"v": value})),
        Arc::new(NoCredentials),
    );
    let record = run.finish().await;
    assert_eq!(record.status(), Some(ExecutionStatus::Succeeded));
    assert_eq!(
        step(&record, "show").detail.stdout,
        format!("{value}\n"),
        "one argument, printed as is"
    );
    assert!(!canary.exists(), "the value was run as shell code");
}

// Authors write values inside quotes, here-documents and substitutions too: wherever one
// lands, it stays one piece of text, in sh and in bash.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parameter_stays_text_inside_quotes_here_documents_and_substitutions() {
    let canary = unique_path("injected-in-context");
    let c = canary.display();
    let value = format!(
        "a b; touch {c}; $(touch {c}) `touch {c}` it's \"quoted\" \\ $HOME | cat &\n\
         second ' line \" $(touch {c})"
    );
    let scripts = [
        ("double", "printf '%s\\n' \"{{ params.v }}\""),
        (
            "double-words",
            "printf '%s\\n' \"<{{ params.v }}>\" | tr -d '<>'",
        ),
        ("single", "printf '%s\\n' '{{ params.v }}'"),
        ("heredoc", "cat <<EOF\n{{ params.v }}\nEOF"),
        ("heredoc-tabs", "cat <<-EOF\n\t{{ params.v }}\n\tEOF"),
        ("quoted-heredoc", "cat <<'EOF'\n{{ params.v }}\nEOF"),
        (
            "substitution",
            "printf '%s\\n' \"$(printf '%s' {{ params.v }})\"",
        ),
        (
            "substitution-in-quotes",
            "printf '%s\\n' \"$(printf '%s' \"{{ params.v }}\")\"",
        ),
        (
            "backquotes",
            "x=`printf '%s' {{ params.v }}`; printf '%s\\n' \"$x\"",
        ),
        (
            "backquoted-quotes",
            "x=\"`printf '%s' \"{{ params.v }}\"`\"; printf '%s\\n' \"$x\"",
        ),
        (
            "comment",
            "# about {{ params.v }}\nprintf '%s\\n' \"{{ params.v }}\"",
        ),
    ];
    let mut blocks = Vec::new();
    for shell in ["sh", "bash"] {
        for (name, script) in scripts {
            blocks.push(block(
                json!({"id": format!("{shell}-{name}"), "kind": "command",
                                     "shell": shell, "script": script}),
            ));
        }
    }
    let run = start(blocks, params(json!({"v": value})), Arc::new(NoCredentials));
    let record = run.finish().await;
    for shell in ["sh", "bash"] {
        for (name, _) in scripts {
            let id = format!("{shell}-{name}");
            assert_eq!(
                step(&record, &id).detail.stdout,
                format!("{value}\n"),
                "{id}: {record:#?}"
            );
        }
    }
    assert_eq!(record.status(), Some(ExecutionStatus::Succeeded));
    assert!(!canary.exists(), "the value was run as shell code");
}

// A value holding the end marker of the here-document it goes into would end it early,
// and what follows would run as commands: the step fails before it starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_that_would_end_its_here_document_is_refused() {
    let canary = unique_path("heredoc-ended");
    let value = format!("x\nEOF\ntouch {}", canary.display());
    let run = start(
        vec![command("doc", "cat <<EOF\n{{ params.v }}\nEOF")],
        params(json!({"v": value})),
        Arc::new(NoCredentials),
    );
    let record = run.finish().await;
    assert_eq!(record.status(), Some(ExecutionStatus::Failed));
    assert_eq!(step(&record, "doc").exit_code, None, "nothing was started");
    let error = error_of(&record, "doc");
    assert!(error.contains("here-document"), "{error}");
    assert!(!canary.exists(), "the value was run as shell code");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_safe_value_is_inserted_raw() {
    let run = start(
        vec![
            command("raw", "printf '%s\\n' {{ params.flag | safe }}"),
            command("quoted", "printf '%s\\n' {{ params.flag }}"),
        ],
        params(json!({"flag": "alpha beta"})),
        Arc::new(NoCredentials),
    );
    let record = run.finish().await;
    assert_eq!(record.status(), Some(ExecutionStatus::Succeeded));
    assert_eq!(step(&record, "raw").detail.stdout, "alpha\nbeta\n");
    assert_eq!(step(&record, "quoted").detail.stdout, "alpha beta\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undefined_name_fails_the_step_before_it_runs() {
    let run = start(
        vec![
            command("broken", "echo never-echoed {{ params.missing }}"),
            command("after", "echo after-ran"),
        ],
        params(json!({"present": "x"})),
        Arc::new(NoCredentials),
    );
    let record = run.finish().await;
    assert_eq!(record.status(), Some(ExecutionStatus::Failed));
    let broken = step(&record, "broken");
    assert_eq!(broken.status, StepStatus::Failed);
    assert_eq!(broken.exit_code, None, "nothing was started");
    let error = error_of(&record, "broken");
    assert!(error.contains("undefined"), "{error}");
    assert!(error.contains("line 1"), "{error}");
    assert_eq!(status_of(&record, "after"), Some(StepStatus::Skipped));
    let text = record.text();
    assert!(text.contains(error), "{text:?}");
    assert!(!text.contains("never-echoed") && !text.contains("after-ran"));
}

// ---- masking ----

const CANARY: &str = "s3cr3t-Canary-9f2";

fn canary_credentials() -> Arc<dyn CredentialResolver> {
    credentials([(
        "tok",
        Credential::Secret {
            value: CANARY.to_string(),
        },
    )])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_injected_secret_reaches_the_command_but_never_its_output() {
    let script = r#"
        [ "$TOKEN" = s3cr3t-Canary-9f2 ] && echo match
        echo "plain $TOKEN"
        echo "to-stderr $TOKEN" >&2
        printf 's3cr3t-Can'; sleep 0.2; printf 'ary-9f2\n'
        printf 's3cr3t-' >&2; sleep 0.2; printf 'Canary-9f2\n' >&2
        for i in 1 2 3 4 5; do printf '%s' "$TOKEN"; done; echo
        head -c 60000 /dev/zero | tr '\0' a; printf '%s\n' "$TOKEN"
        echo "OUT=$TOKEN" >> "$RUNBOOK_OUTPUT"
    "#;
    let run = start(
        vec![block(
            json!({"id": "leaky", "kind": "command", "script": script,
                          "secrets": {"TOKEN": "tok"}}),
        )],
        Map::new(),
        canary_credentials(),
    );
    let record = run.finish().await;
    assert_eq!(record.status(), Some(ExecutionStatus::Succeeded));
    let leaky = step(&record, "leaky");
    // Each stream on its own, in order (the console interleaves the two).
    let stdout = &leaky.detail.stdout;
    assert!(
        stdout.starts_with("match\nplain ***\n***\n***************\naaaa"),
        "{stdout:.200}"
    );
    assert!(stdout.ends_with("aaaa***\n"), "after 60 kB of other output");
    assert_eq!(leaky.detail.stderr, "to-stderr ***\n***\n");
    assert_eq!(leaky.detail.outputs["OUT"], "***");

    let text = record.text();
    assert!(text.contains("match\n"), "the variable holds the value");
    assert!(text.contains("plain ***") && text.contains("to-stderr ***"));
    assert_eq!(
        text.matches("***").count(),
        10,
        "every value is masked once"
    );
    // Nothing of it shows, not even the halves written apart.
    for part in [CANARY, "s3cr3t", "Canary-9f2", "ary-9f2"] {
        assert!(!text.contains(part), "`{part}` in the console");
    }
    let events = streamed(&run);
    assert!(events.iter().all(|e| !e.contains(CANARY)));
    assert_eq!(events.concat(), text, "the events carry the stored console");

    let stored = serde_json::to_string(&record.steps).unwrap();
    assert!(!stored.contains("s3cr3t"), "{stored:.2000}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_injected_secret_is_in_the_environment_not_on_the_command_line() {
    let sleeper = marker(3);
    let run = start(
        vec![block(json!({"id": "hold", "kind": "command",
                          "script": format!("sleep {sleeper}"),
                          "secrets": {"TOKEN": "tok"}}))],
        Map::new(),
        canary_credentials(),
    );
    wait_for_processes(&sleeper, "the sleep", |found| !found.is_empty()).await;
    for (pid, _) in processes_with(&sleeper) {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        assert!(
            !String::from_utf8_lossy(&cmdline).contains(CANARY),
            "the secret is in the arguments of {pid}"
        );
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        assert!(
            environ
                .split(|b| *b == 0)
                .any(|var| var == format!("TOKEN={CANARY}").as_bytes()),
            "{pid} has TOKEN in its environment"
        );
    }
    let record = run.finish().await;
    assert_eq!(record.status(), Some(ExecutionStatus::Succeeded));
}

// Masking holds back only a tail that could begin a secret: a short line shows at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_that_cannot_start_a_secret_shows_at_once() {
    // A command that reports and then waits is the common case: its line must reach
    // the console while it waits, secret or not.
    let run = start(
        vec![block(json!({"id": "wait", "kind": "command",
                          "script": "echo ready; sleep 3; echo done",
                          "secrets": {"TOKEN": "tok"}}))],
        Map::new(),
        canary_credentials(),
    );
    let deadline = Instant::now() + Duration::from_millis(2500);
    while !streamed(&run).concat().contains("ready\n") {
        assert!(
            Instant::now() < deadline,
            "`ready` was held back while the command ran: {:?}",
            streamed(&run).concat()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        !run.record().is_finished(),
        "seen while the command still runs"
    );
    let record = run.finish().await;
    assert!(record.text().contains("ready\ndone\n"));
}

// ---- timers ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timer_counts_down_and_holds_while_paused() {
    let run = start(
        vec![
            block(json!({"id": "soak", "kind": "timer", "seconds": 3})),
            command("after", "echo after-timer"),
        ],
        Map::new(),
        Arc::new(NoCredentials),
    );
    // Let it count for about a second.
    let deadline = Instant::now() + PATIENCE;
    while !countdowns(&run).iter().any(|(left, _, _)| *left <= 2000) {
        assert!(Instant::now() < deadline, "no countdown below 2 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        run.control(ControlAction::Pause),
        Ok(ExecutionStatus::Paused)
    );
    run.wait_for("the timer to pause", |r| {
        r.step_status(0) == Some(StepStatus::Paused)
    })
    .await;
    let deadline = Instant::now() + PATIENCE;
    while !countdowns(&run).iter().any(|(_, _, paused)| *paused) {
        assert!(Instant::now() < deadline, "no paused countdown");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let at_pause = countdowns(&run);
    let frozen = at_pause.last().unwrap().0;

    let hold = Duration::from_millis(1500);
    tokio::time::sleep(hold).await;
    // While paused, the frozen time is only said again (for views opened meanwhile).
    let during = countdowns(&run)[at_pause.len()..].to_vec();
    assert!(
        !during.is_empty() && during.iter().all(|seen| *seen == (frozen, 3000, true)),
        "{during:?}"
    );
    let held = run.record();
    assert_eq!(held.step_status(0), Some(StepStatus::Paused));
    assert_eq!(held.step_status(1), None, "the next step has not started");
    // The time left is stored with the pause, for views of the run in other processes.
    let progress = held.step(0).detail.timer.expect("the time left is stored");
    assert_eq!((progress.total_ms, progress.remaining_ms), (3000, frozen));

    assert_eq!(
        run.control(ControlAction::Resume),
        Ok(ExecutionStatus::Running)
    );
    let record = run.finish().await;
    assert_eq!(record.status(), Some(ExecutionStatus::Succeeded));
    assert_eq!(record.step(0).status, StepStatus::Succeeded);
    assert!(record.text().contains("after-timer"));
    assert!(
        run.started.elapsed() >= Duration::from_secs(3) + hold - Duration::from_millis(100),
        "the paused time did not count: {:?}",
        run.started.elapsed()
    );

    let all = countdowns(&run);
    assert!(all.iter().all(|(_, total, _)| *total == 3000), "{all:?}");
    assert!(all[0].0 >= 2900 && !all[0].2, "starts full: {all:?}");
    assert!(
        all.windows(2).all(|pair| pair[1].0 <= pair[0].0),
        "time left never grows: {all:?}"
    );
    assert!(
        all.iter()
            .filter(|(_, _, paused)| *paused)
            .all(|(left, _, _)| *left == frozen),
        "{all:?}"
    );
    assert!(frozen > 0 && frozen <= 2000, "{all:?}");
    let resumed = *all[at_pause.len()..]
        .iter()
        .find(|(_, _, paused)| !paused)
        .expect("a countdown after the resume");
    assert!(!resumed.2, "{all:?}");
    assert!(
        frozen - resumed.0 < 300,
        "the timer goes on from where it was paused ({frozen} ms), not {} ms: {all:?}",
        resumed.0
    );
    assert_eq!(*all.last().unwrap(), (0, 3000, false), "it ends at zero");
    assert!(all.len() >= 5, "a tick at least every second: {all:?}");
}

// ---- control of a request in flight ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_abandons_a_request_in_flight() {
    let server = TestServer::start().await;
    let run = start(
        vec![
            api_call("hang", &server.url("/hang")),
            command("after", "echo never-printed"),
        ],
        Map::new(),
        Arc::new(NoCredentials),
    );
    server.wait_for_request("/hang").await;
    let asked = Instant::now();
    assert!(run.control(ControlAction::Stop).is_ok());
    let record = run.finish().await;
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "stopped after {:?}",
        asked.elapsed()
    );
    assert_eq!(record.status(), Some(ExecutionStatus::Stopped));
    let hang = step(&record, "hang");
    assert_eq!((hang.status, hang.http_status), (StepStatus::Stopped, None));
    assert_eq!(status_of(&record, "after"), Some(StepStatus::Skipped));
    assert!(!record.text().contains("never-printed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_lets_a_request_finish_and_holds_the_next_step() {
    let server = TestServer::start().await;
    let run = start(
        vec![
            api_call("gate", &server.url("/gate")),
            command("next", "echo next-ran"),
        ],
        Map::new(),
        Arc::new(NoCredentials),
    );
    server.wait_for_request("/gate").await;
    assert_eq!(
        run.control(ControlAction::Pause),
        Ok(ExecutionStatus::Paused)
    );
    server.state.gate.notify_one();
    run.wait_for("the call to finish and the run to hold", |r| {
        r.step_status(0) == Some(StepStatus::Succeeded)
            && r.status() == Some(ExecutionStatus::Paused)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let held = run.record();
    assert_eq!(held.step_status(1), None, "the next step waits for resume");
    assert_eq!(held.status(), Some(ExecutionStatus::Paused));
    assert!(!held.text().contains("next-ran"));
    let gate = step(&held, "gate");
    assert_eq!(gate.http_status, Some(200));
    assert_eq!(gate.detail.response.as_ref().unwrap().body, "released");

    assert_eq!(
        run.control(ControlAction::Resume),
        Ok(ExecutionStatus::Running)
    );
    let record = run.finish().await;
    assert_eq!(record.status(), Some(ExecutionStatus::Succeeded));
    assert_eq!(status_of(&record, "next"), Some(StepStatus::Succeeded));
    assert_eq!(
        record.run_statuses(),
        [
            ExecutionStatus::Running,
            ExecutionStatus::Paused,
            ExecutionStatus::Running,
            ExecutionStatus::Succeeded
        ]
    );
}

// ---- retries ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_step_is_not_run_again_and_its_outputs_stay_usable() {
    let touched = unique_path("reused");
    let run = Harness::start_full(
        quick_config(),
        vec![
            command(
                "first",
                &format!(
                    "touch {}; echo KEY=fresh >> \"$RUNBOOK_OUTPUT\"",
                    touched.display()
                ),
            ),
            command("second", "echo got {{ steps.first.outputs.KEY }}"),
            conditional(
                "check",
                r#"steps.first.outputs.KEY == "from before" && steps.first.exit_code == 0"#,
                vec![command("then", "echo reused-seen")],
                vec![],
            ),
        ],
        Map::new(),
        Arc::new(NoCredentials),
        |execution| {
            execution.retry_of = Some(uuid::Uuid::new_v4());
            execution.retry_from = Some("second".to_string());
            let first = &mut execution.steps[0];
            first.status = StepStatus::Succeeded;
            first.exit_code = Some(0);
            first.detail.reused = true;
            first
                .detail
                .outputs
                .insert("KEY".to_string(), "from before".to_string());
        },
    );
    let record = run.finish().await;
    assert_eq!(record.status(), Some(ExecutionStatus::Succeeded));
    assert!(!touched.exists(), "the reused step ran again");
    assert!(
        record.step_history.iter().all(|(index, _)| *index != 0),
        "nothing is recorded for the reused step: {:?}",
        record.step_history
    );
    assert!(!run.events().iter().any(|e| matches!(
        e,
        ExecutionEvent::StepStarted { block_id, .. } if block_id == "first"
    )));
    let text = record.text();
    assert!(text.contains("retrying from step second"), "{text:?}");
    assert!(text.contains("got from before\n"), "{text:?}");
    assert!(text.contains("reused-seen\n"), "{text:?}");
    assert_eq!(step(&record, "check").detail.branch, Some(Branch::Then));
}

// ---- processes that left the group ----

/// Kills the processes carrying these markers when a test ends, passed or not.
struct KillOnDrop(Vec<String>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        for marker in &self.0 {
            for (pid, _) in processes_with(marker) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
}

/// The `sleep <marker>` process itself (not a shell whose script names it).
fn sleep_pid(marker: &str) -> Option<u32> {
    processes_with(marker).into_iter().find_map(|(pid, _)| {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let argv: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        (argv.first() == Some(&&b"sleep"[..]) && argv.get(1) == Some(&marker.as_bytes()))
            .then_some(pid)
    })
}

/// The process group of `pid`.
fn group_of(pid: u32) -> u32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let (_, fields) = stat.rsplit_once(')').unwrap();
    // After the name: state, ppid, pgrp.
    fields.split_whitespace().nth(2).unwrap().parse().unwrap()
}

async fn wait_for_sleep(marker: &str) -> u32 {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(pid) = sleep_pid(marker) {
            return pid;
        }
        assert!(Instant::now() < deadline, "no `sleep {marker}` started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_until_run_has_no_processes(run: &Harness, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(3);
    while !processes_of_run(run.execution_id).is_empty() {
        assert!(
            Instant::now() < deadline,
            "processes of the {what} run live on: {:?}",
            processes_of_run(run.execution_id)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_kills_a_process_that_left_the_group() {
    let escaped = marker(305);
    let held = marker(306);
    let _cleanup = KillOnDrop(vec![escaped.clone(), held.clone()]);
    let run = Harness::start(vec![command(
        "daemon",
        &format!("setsid sleep {escaped} >/dev/null 2>&1 & sleep {held}"),
    )]);
    let escaped_pid = wait_for_sleep(&escaped).await;
    let held_pid = wait_for_sleep(&held).await;
    assert_eq!(
        group_of(escaped_pid),
        escaped_pid,
        "setsid made the sleep lead a group of its own"
    );
    assert_ne!(group_of(held_pid), escaped_pid);
    assert!(
        processes_of_run(run.execution_id).contains(&escaped_pid),
        "the escaped sleep still carries the run's mark"
    );

    assert!(run.control(ControlAction::Stop).is_ok());
    let record = run.finish().await;
    assert_eq!(record.status(), Some(ExecutionStatus::Stopped));
    wait_until_run_has_no_processes(&run, "stopped").await;
    assert!(processes_with(&escaped).is_empty());
    assert!(processes_with(&held).is_empty());
}

// A step may start a daemon on purpose (`setsid`): it outlives the step that ended by
// itself, while everything left in the step's process group does not. A stop ends both
// (see `stop_kills_a_process_that_left_the_group`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_started_on_purpose_outlives_its_finished_step() {
    let escaped = marker(307);
    let in_group = marker(308);
    let _cleanup = KillOnDrop(vec![escaped.clone(), in_group.clone()]);
    let run = Harness::start(vec![command(
        "daemon",
        &format!(
            "setsid sleep {escaped} >/dev/null 2>&1 & sleep {in_group} & sleep 0.5; echo started"
        ),
    )]);
    let record = run.finish().await;
    assert_eq!(record.status(), Some(ExecutionStatus::Succeeded));
    wait_until_gone(&in_group).await;
    assert_eq!(
        processes_with(&escaped).len(),
        1,
        "the daemon that left the group on purpose still runs"
    );
}

// Pause suspends what the paused step started that left its group, found by the step's
// marks, and resume continues it; a daemon an earlier step started on purpose is not the
// paused step's and runs on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_suspends_what_the_step_started_that_left_the_group() {
    let earlier = marker(312);
    let escaped = marker(313);
    let held = marker(314);
    let _cleanup = KillOnDrop(vec![earlier.clone(), escaped.clone(), held.clone()]);
    let run = Harness::start(vec![
        command(
            "daemon",
            // Time for setsid to take the sleep out of the group the step's end kills.
            &format!("setsid sleep {earlier} >/dev/null 2>&1 & sleep 0.5"),
        ),
        command(
            "work",
            &format!("setsid sleep {escaped} >/dev/null 2>&1 & sleep {held}"),
        ),
    ]);
    let earlier_pid = wait_for_sleep(&earlier).await;
    let escaped_pid = wait_for_sleep(&escaped).await;
    let held_pid = wait_for_sleep(&held).await;
    assert_eq!(
        group_of(escaped_pid),
        escaped_pid,
        "the sleep left the group"
    );
    run.wait_for("the second step to be stored as running", |r| {
        r.step_status(1) == Some(StepStatus::Running)
    })
    .await;

    assert_eq!(
        run.control(ControlAction::Pause),
        Ok(ExecutionStatus::Paused)
    );
    let state_of = |marker: &str, pid: u32| {
        processes_with(marker)
            .into_iter()
            .find(|(found, _)| *found == pid)
            .map(|(_, state)| state)
    };
    for (what, marker, pid) in [
        ("escaped", &escaped, escaped_pid),
        ("held", &held, held_pid),
    ] {
        wait_for_processes(
            marker,
            &format!("the {what} sleep to be stopped (T)"),
            |found| {
                found
                    .iter()
                    .any(|(found, state)| *found == pid && *state == 'T')
            },
        )
        .await;
    }
    assert_ne!(
        state_of(&earlier, earlier_pid),
        Some('T'),
        "the earlier step's daemon was suspended with the paused step"
    );

    assert_eq!(
        run.control(ControlAction::Resume),
        Ok(ExecutionStatus::Running)
    );
    wait_for_processes(&escaped, "the escaped sleep to run on", |found| {
        found
            .iter()
            .any(|(found, state)| *found == escaped_pid && *state != 'T')
    })
    .await;
    assert_ne!(state_of(&held, held_pid), Some('T'));

    assert!(run.control(ControlAction::Stop).is_ok());
    let record = run.finish().await;
    assert_eq!(record.status(), Some(ExecutionStatus::Stopped));
    wait_until_run_has_no_processes(&run, "stopped").await;
}

// A step can end while paused: its shell has exited and a process no pause reaches (it
// left the group without the run's marks) closes the pipes. What the step started that
// the pause suspended then runs on, as after a step that ended unpaused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_that_ends_while_paused_leaves_nothing_it_started_suspended() {
    let escaped = marker(315);
    let _cleanup = KillOnDrop(vec![escaped.clone()]);
    let run = Harness::start(vec![
        command(
            "daemon",
            &format!(
                "setsid sleep {escaped} >/dev/null 2>&1 & \
                 env -i /usr/bin/setsid /bin/sleep 1.5 & echo started"
            ),
        ),
        command("after", "echo after-ran"),
    ]);
    let escaped_pid = wait_for_sleep(&escaped).await;
    // The shell has exited by now; the unmarked sleep holds the pipes past the pause.
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(
        run.control(ControlAction::Pause),
        Ok(ExecutionStatus::Paused)
    );
    wait_for_processes(&escaped, "the escaped sleep to be stopped (T)", |found| {
        found
            .iter()
            .any(|(pid, state)| *pid == escaped_pid && *state == 'T')
    })
    .await;
    run.wait_for("the step to end while the run is paused", |r| {
        r.step_status(0) == Some(StepStatus::Succeeded)
    })
    .await;
    wait_for_processes(&escaped, "the escaped sleep to run on", |found| {
        found
            .iter()
            .any(|(pid, state)| *pid == escaped_pid && *state != 'T')
    })
    .await;
    assert_eq!(run.record().status(), Some(ExecutionStatus::Paused));

    assert_eq!(
        run.control(ControlAction::Resume),
        Ok(ExecutionStatus::Running)
    );
    let record = run.finish().await;
    assert_eq!(record.status(), Some(ExecutionStatus::Succeeded));
    assert!(record.text().contains("after-ran"));
}

// A process that left the group but still holds the step's stdout and stderr: once the
// grace period is over it is killed by the run's mark, and the step stops waiting for
// its pipes, rather than hanging on them forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_ends_a_step_whose_output_a_process_that_left_the_group_holds() {
    let escaped = marker(310);
    let held = marker(311);
    let _cleanup = KillOnDrop(vec![escaped.clone(), held.clone()]);
    let run = Harness::start(vec![
        command("daemon", &format!("setsid sleep {escaped} & sleep {held}")),
        command("after", "echo after-ran"),
    ]);
    let escaped_pid = wait_for_sleep(&escaped).await;
    wait_for_sleep(&held).await;
    assert_eq!(
        group_of(escaped_pid),
        escaped_pid,
        "the sleep left the group"
    );

    let asked = Instant::now();
    assert!(run.control(ControlAction::Stop).is_ok());
    let record = tokio::time::timeout(Duration::from_secs(10), run.finish())
        .await
        .expect("the stopped step waited on the escaped process's pipes");
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "took {:?}",
        asked.elapsed()
    );
    assert_eq!(record.status(), Some(ExecutionStatus::Stopped));
    assert_eq!(status_of(&record, "daemon"), Some(StepStatus::Stopped));
    assert_eq!(status_of(&record, "after"), Some(StepStatus::Skipped));
    wait_until_run_has_no_processes(&run, "stopped").await;
}

// A stop's SIGTERM reaches a process that left the group with the group's, so it gets
// the grace period to clean up rather than only the SIGKILL at its end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_that_left_the_group_gets_the_stops_sigterm() {
    let escaped = marker(315);
    let _cleanup = KillOnDrop(vec![escaped.clone()]);
    let cleaned = unique_path("escaped-cleaned-up");
    let daemon = format!(
        "trap 'echo cleaned > {cleaned}; exit 0' TERM; while :; do sleep {escaped}; done",
        cleaned = cleaned.display()
    );
    let mut config = quick_config();
    config.stop_grace = Duration::from_secs(5);
    let run = Harness::start_with(
        config,
        vec![command(
            "daemon",
            &format!("setsid sh -c \"{daemon}\" >/dev/null 2>&1 & sleep 60"),
        )],
    );
    let sleep = wait_for_sleep(&escaped).await;
    let stat = std::fs::read_to_string(format!("/proc/{sleep}/stat")).unwrap();
    let (_, fields) = stat.rsplit_once(')').unwrap();
    let looping: u32 = fields.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert_eq!(
        group_of(sleep),
        looping,
        "the loop leads a group of its own"
    );

    assert!(run.control(ControlAction::Stop).is_ok());
    let record = tokio::time::timeout(Duration::from_secs(10), run.finish())
        .await
        .expect("the stopped run ended");
    assert_eq!(record.status(), Some(ExecutionStatus::Stopped));
    let written = std::fs::read_to_string(&cleaned);
    let _ = std::fs::remove_file(&cleaned);
    assert_eq!(
        written.ok().as_deref(),
        Some("cleaned\n"),
        "the escaped process was killed without a SIGTERM first"
    );
    wait_until_run_has_no_processes(&run, "stopped").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_ends_a_step_whose_output_a_process_that_left_the_group_holds() {
    let escaped = marker(312);
    let held = marker(313);
    let _cleanup = KillOnDrop(vec![escaped.clone(), held.clone()]);
    let run = Harness::start(vec![
        block(json!({"id": "daemon", "kind": "command", "timeout_secs": 1,
                     "script": format!("echo started; setsid sleep {escaped} & sleep {held}")})),
        command("after", "echo after-ran"),
    ]);
    let record = tokio::time::timeout(Duration::from_secs(10), run.finish())
        .await
        .expect("the timed-out step waited on the escaped process's pipes");
    assert_eq!(record.status(), Some(ExecutionStatus::Failed));
    assert_eq!(error_of(&record, "daemon"), "timed out after 1 s");
    assert_eq!(step(&record, "daemon").detail.stdout, "started\n");
    assert_eq!(status_of(&record, "after"), Some(StepStatus::Skipped));
    wait_until_run_has_no_processes(&run, "timed-out").await;
}

// ---- control while a step prepares ----

/// Credentials whose resolution waits until the test lets it go, so that a control
/// request lands while a step prepares.
struct HeldCredentials {
    credentials: StaticCredentials,
    /// Notified when a resolution starts.
    asked: Notify,
    /// Lets one resolution go on.
    release: Notify,
}

impl HeldCredentials {
    fn new() -> Arc<HeldCredentials> {
        let credentials = [
            (
                "tok".to_string(),
                Credential::Secret {
                    value: CANARY.to_string(),
                },
            ),
            (
                "api".to_string(),
                Credential::Bearer {
                    token: CANARY.to_string(),
                },
            ),
        ];
        Arc::new(HeldCredentials {
            credentials: StaticCredentials::new(credentials.into_iter().collect()),
            asked: Notify::new(),
            release: Notify::new(),
        })
    }

    async fn wait_until_asked(&self) {
        tokio::time::timeout(PATIENCE, self.asked.notified())
            .await
            .expect("no credential was resolved");
    }
}

#[async_trait::async_trait]
impl CredentialResolver for HeldCredentials {
    async fn resolve(
        &self,
        name: &str,
        execution_id: uuid::Uuid,
        block_id: &str,
        destination: runbook_engine::Destination<'_>,
    ) -> Result<Credential, runbook_engine::CredentialError> {
        self.asked.notify_one();
        self.release.notified().await;
        self.credentials
            .resolve(name, execution_id, block_id, destination)
            .await
    }

    async fn masking_forms(&self, names: &[String]) -> Vec<String> {
        self.credentials.masking_forms(names).await
    }
}

fn guarded_command(touched: &std::path::Path) -> Block {
    block(json!({"id": "guarded", "kind": "command",
                 "script": format!("touch {}", touched.display()),
                 "secrets": {"TOKEN": "tok"}}))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_while_a_command_resolves_its_secret_starts_nothing() {
    let touched = unique_path("stopped-before-start");
    let credentials = HeldCredentials::new();
    let run = Harness::start_full(
        quick_config(),
        vec![
            guarded_command(&touched),
            command("after", "echo after-ran"),
        ],
        Map::new(),
        credentials.clone(),
        |_| {},
    );
    credentials.wait_until_asked().await;
    assert!(run.control(ControlAction::Stop).is_ok());
    credentials.release.notify_one();
    let record = run.finish().await;
    assert_eq!(record.status(), Some(ExecutionStatus::Stopped));
    let guarded = step(&record, "guarded");
    assert_eq!(guarded.status, StepStatus::Stopped);
    assert_eq!(guarded.exit_code, None, "no process was started");
    assert!(!touched.exists(), "the command ran");
    assert_eq!(status_of(&record, "after"), Some(StepStatus::Skipped));
}

/// Runs `block`, whose credential is held, pauses the run while the credential is
/// resolved, lets the resolution finish, and returns once the step shows as paused
/// (and a while after, for anything it might wrongly start).
async fn paused_while_resolving(block: Block) -> Harness {
    let credentials = HeldCredentials::new();
    let run = Harness::start_full(
        quick_config(),
        vec![block],
        Map::new(),
        credentials.clone(),
        |_| {},
    );
    credentials.wait_until_asked().await;
    assert_eq!(
        run.control(ControlAction::Pause),
        Ok(ExecutionStatus::Paused)
    );
    credentials.release.notify_one();
    run.wait_for("the step to hold", |r| {
        r.step_status(0) == Some(StepStatus::Paused) && r.status() == Some(ExecutionStatus::Paused)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    run
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_while_a_command_resolves_its_secret_holds_it_until_resume() {
    let touched = unique_path("paused-before-start");
    let run = paused_while_resolving(guarded_command(&touched)).await;
    assert_eq!(
        processes_of_run(run.execution_id),
        Vec::<u32>::new(),
        "no process is started while paused"
    );
    assert!(!touched.exists(), "the command ran while paused");

    assert_eq!(
        run.control(ControlAction::Resume),
        Ok(ExecutionStatus::Running)
    );
    let record = run.finish().await;
    assert_eq!(record.status(), Some(ExecutionStatus::Succeeded));
    assert_eq!(step(&record, "guarded").exit_code, Some(0));
    assert!(touched.exists(), "the command ran once resumed");
    let _ = std::fs::remove_file(&touched);
}

fn guarded_call(server: &TestServer) -> Block {
    block(
        json!({"id": "call", "kind": "api_call", "url": server.url("/health"),
                 "credential": "api"}),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_while_a_call_resolves_its_credential_holds_the_request_until_resume() {
    let server = TestServer::start().await;
    let run = paused_while_resolving(guarded_call(&server)).await;
    assert!(server.paths().is_empty(), "a request was sent while paused");

    assert_eq!(
        run.control(ControlAction::Resume),
        Ok(ExecutionStatus::Running)
    );
    let record = run.finish().await;
    assert_eq!(record.status(), Some(ExecutionStatus::Succeeded));
    assert_eq!(step(&record, "call").http_status, Some(200));
    assert_eq!(server.paths(), ["/health"]);
}

// ---- the drain after a shell's exit ----

// A shell that exits while a process it started holds its pipes: what the streams held
// back at the end of the drain (a tail that could begin a secret, half a character)
// still reaches the console and the stored tails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_held_back_when_the_drain_ends_is_kept() {
    let holder = marker(314);
    let _cleanup = KillOnDrop(vec![holder.clone()]);
    // The secret begins with `s`: the last letter of `items` could begin it.
    let run = start(
        vec![block(json!({"id": "left", "kind": "command",
                          "script": format!("sleep {holder} & printf 'done, 3 items'; \
                                             sleep 0.2; printf 'broken \\342\\234' >&2"),
                          "secrets": {"TOKEN": "tok"}}))],
        Map::new(),
        canary_credentials(),
    );
    let record = run.finish().await;
    assert_eq!(record.status(), Some(ExecutionStatus::Succeeded));
    let left = step(&record, "left");
    assert_eq!(left.detail.stdout, "done, 3 items");
    assert_eq!(left.detail.stderr, "broken \u{FFFD}");
    // The console interleaves the streams: stdout's last read, stderr's, then what
    // each held back.
    let text = record.text();
    assert!(
        text.contains("done, 3 itembroken s\u{FFFD}"),
        "every byte reaches the console: {text:?}"
    );
    wait_until_gone(&holder).await;
}

// The drain after a shell's exit is frozen while the run is paused, like a timeout: the
// step holds, and what the shell left is not killed until the drain goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_freezes_the_drain_after_the_shell_exits() {
    let holder = marker(315);
    let _cleanup = KillOnDrop(vec![holder.clone()]);
    let run = Harness::start(vec![command(
        "left",
        &format!("sleep {holder} & echo started"),
    )]);
    let sleep = wait_for_sleep(&holder).await;
    // Only the sleep is left: the shell has exited and the drain runs.
    wait_for_processes(&holder, "the shell to exit", |found| {
        found.iter().all(|(pid, _)| *pid == sleep)
    })
    .await;
    assert_eq!(
        run.control(ControlAction::Pause),
        Ok(ExecutionStatus::Paused)
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let held = run.record();
    assert_eq!(held.step_status(0), Some(StepStatus::Paused), "{held:#?}");
    assert_eq!(held.status(), Some(ExecutionStatus::Paused));
    assert_eq!(
        processes_with(&holder),
        [(sleep, 'T')],
        "what the shell left is suspended, not killed"
    );

    assert_eq!(
        run.control(ControlAction::Resume),
        Ok(ExecutionStatus::Running)
    );
    let record = run.finish().await;
    assert_eq!(record.status(), Some(ExecutionStatus::Succeeded));
    assert_eq!(step(&record, "left").detail.stdout, "started\n");
    wait_until_gone(&holder).await;
}

// ---- what a step stores ----

// An output file longer than what is read of it is cut inside its last line: that line
// is not published, so a secret it held cannot show in part.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_output_line_cut_inside_a_secret_is_not_published() {
    // 7 bytes of `B=kept\n`, 2 of `A=`, the filler, then 9 bytes of the secret reach
    // the 64 KiB read.
    let filler = 64 * 1024 - 7 - 2 - 9;
    let script = format!(
        "printf 'B=kept\\n' >> \"$RUNBOOK_OUTPUT\"\n\
         printf 'A=%s%s\\n' \"$(head -c {filler} /dev/zero | tr '\\0' x)\" \"$TOKEN\" \
           >> \"$RUNBOOK_OUTPUT\""
    );
    let run = start(
        vec![block(
            json!({"id": "publish", "kind": "command", "script": script,
                          "secrets": {"TOKEN": "tok"}}),
        )],
        Map::new(),
        canary_credentials(),
    );
    let record = run.finish().await;
    assert_eq!(record.status(), Some(ExecutionStatus::Succeeded));
    let outputs = &step(&record, "publish").detail.outputs;
    assert_eq!(outputs.get("B").map(String::as_str), Some("kept"));
    let stored = serde_json::to_string(&record.steps).unwrap();
    assert!(!stored.contains("s3cr3t"), "part of the secret is stored");
    assert!(!outputs.contains_key("A"), "the cut line is left out");
}

// A step may leave a FIFO (or a link to a device) where its output file was: opening it
// would wait for a writer for ever, holding the run. Nothing is published from it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_output_file_replaced_by_a_fifo_does_not_hold_the_run() {
    let run = start(
        vec![
            command(
                "fifo",
                r#"rm -f "$RUNBOOK_OUTPUT"; mkfifo "$RUNBOOK_OUTPUT"; echo made"#,
            ),
            command("device", r#"ln -sf /dev/zero "$RUNBOOK_OUTPUT""#),
            command("after", r#"echo KEY=v >> "$RUNBOOK_OUTPUT""#),
        ],
        Map::new(),
        Arc::new(NoCredentials),
    );
    let record = tokio::time::timeout(Duration::from_secs(20), run.finish())
        .await
        .expect("the run ended");
    assert_eq!(record.status(), Some(ExecutionStatus::Succeeded));
    assert!(step(&record, "fifo").detail.outputs.is_empty());
    assert!(step(&record, "device").detail.outputs.is_empty());
    let after = &step(&record, "after").detail.outputs;
    assert_eq!(after.get("KEY").map(String::as_str), Some("v"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_output_tails_stay_within_their_bound() {
    use runbook_domain::execution::MAX_CAPTURED_STREAM;
    // 120000 bytes of two-byte characters and newlines, on both streams.
    let run = Harness::start(vec![command(
        "long",
        "yes é | head -n 40000; yes é | head -n 40000 >&2",
    )]);
    let record = run.finish().await;
    assert_eq!(record.status(), Some(ExecutionStatus::Succeeded));
    let long = step(&record, "long");
    for tail in [&long.detail.stdout, &long.detail.stderr] {
        assert!(
            tail.len() <= MAX_CAPTURED_STREAM && tail.len() + 3 > MAX_CAPTURED_STREAM,
            "a tail of {} bytes",
            tail.len()
        );
        assert!(tail.ends_with("é\né\n"));
    }
    assert_eq!(
        record.text().matches('é').count(),
        80_000,
        "the console keeps all"
    );
}
