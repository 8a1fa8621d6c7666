//! REST API tests: every endpoint in-process (tower `oneshot`), bad input of every
//! kind, and a full run over a real socket with Server-Sent Events.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use runbook_core::{Actor, Service};
use runbook_domain::Role;
use serde_json::{json, Value};
use std::time::Duration;
use tower::ServiceExt;

mod common;

struct TestApp {
    router: Router,
    service: Service,
    admin: String,
    _dir: tempfile::TempDir,
}

impl TestApp {
    async fn new() -> TestApp {
        TestApp::serving(None).await
    }

    /// An app that also serves the built UI in `ui_dir`.
    async fn serving(ui_dir: Option<std::path::PathBuf>) -> TestApp {
        let (router, service, admin, dir) = common::in_process_app_serving(ui_dir).await;
        TestApp {
            router,
            service,
            admin,
            _dir: dir,
        }
    }

    async fn key(&self, role: Role) -> String {
        self.service
            .create_api_key(&Actor::system(), role.as_str(), role)
            .await
            .unwrap()
            .token
    }

    async fn send(&self, method: Method, uri: &str, body: Option<&str>) -> (StatusCode, Value) {
        self.send_as(&self.admin, method, uri, body).await
    }

    async fn send_as(
        &self,
        key: &str,
        method: Method,
        uri: &str,
        body: Option<&str>,
    ) -> (StatusCode, Value) {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header("x-api-key", key)
            .header("content-type", "application/json")
            .body(Body::from(body.unwrap_or("").to_string()))
            .unwrap();
        let (status, _, bytes) = self.send_raw(request).await;
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&bytes)))
        };
        (status, value)
    }

    /// Status, content type and body of any response.
    async fn send_raw(&self, request: Request<Body>) -> (StatusCode, String, Vec<u8>) {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, content_type, bytes.to_vec())
    }

    async fn create(&self, body: Value) -> Value {
        let (status, runbook) = self
            .send(Method::POST, "/runbooks", Some(&body.to_string()))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{runbook}");
        runbook
    }

    /// Stores a credential of kind `secret`.
    async fn secret(&self, name: &str, value: &str) {
        let body = json!({"name": name, "kind": "secret", "value": value});
        let (status, credential) = self
            .send(Method::POST, "/credentials", Some(&body.to_string()))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{credential}");
    }
}

fn sample() -> Value {
    json!({
        "name": "Restart payments API",
        "description": "Restart when health checks fail",
        "tags": ["payments"],
        "blocks": [
            {"id": "intro", "kind": "instruction", "text": "## Before you start"},
            {"id": "check", "kind": "command", "script": "echo checking"}
        ]
    })
}

fn error_code(body: &Value) -> &str {
    body["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error code in {body}"))
}

#[tokio::test]
async fn runbook_lifecycle_create_update_versions_rollback_delete() {
    let app = TestApp::new().await;
    let created = app.create(sample()).await;
    assert_eq!(created["version"], 1);
    let id = created["id"].as_str().unwrap();

    let mut edit = created.clone();
    edit["blocks"][1]["script"] = json!("echo changed");
    edit["blocks"][1]["stop_grace_secs"] = json!(120);
    edit["message"] = json!("change the check");
    let (status, updated) = app
        .send(
            Method::PUT,
            &format!("/runbooks/{id}"),
            Some(&edit.to_string()),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["version"], 2);
    assert_eq!(updated["blocks"][1]["stop_grace_secs"], 120);
    assert!(
        created["blocks"][1].get("stop_grace_secs").is_none(),
        "unset, it is left out: {created}"
    );

    // The same edit again is based on version 1, which is stale now.
    let (status, conflict) = app
        .send(
            Method::PUT,
            &format!("/runbooks/{id}"),
            Some(&edit.to_string()),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(error_code(&conflict), "version_conflict");
    assert_eq!(conflict["error"]["details"]["current_version"], 2);

    let (_, versions) = app
        .send(Method::GET, &format!("/runbooks/{id}/versions"), None)
        .await;
    let numbers: Vec<i64> = versions["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_i64().unwrap())
        .collect();
    assert_eq!(numbers, [2, 1]);
    assert_eq!(versions["items"][0]["message"], "change the check");

    let (status, v1) = app
        .send(Method::GET, &format!("/runbooks/{id}/versions/1"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v1["blocks"][1]["script"], "echo checking");

    let (status, rolled) = app
        .send(
            Method::POST,
            &format!("/runbooks/{id}/rollback"),
            Some(r#"{"version": 1}"#),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{rolled}");
    assert_eq!(rolled["version"], 3);
    assert_eq!(rolled["blocks"], v1["blocks"]);

    let (status, list) = app
        .send(Method::GET, "/runbooks?q=PAYMENTS&limit=10", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["total"], 1);
    let (_, by_tag) = app.send(Method::GET, "/runbooks?tag=nope", None).await;
    assert_eq!(by_tag["total"], 0);

    let (status, _) = app
        .send(Method::DELETE, &format!("/runbooks/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, gone) = app
        .send(Method::GET, &format!("/runbooks/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error_code(&gone), "not_found");
}

#[tokio::test]
async fn bad_input_gets_a_4xx_with_a_stable_code_and_changes_nothing() {
    let app = TestApp::new().await;
    let created = app.create(sample()).await;
    let id = created["id"].as_str().unwrap().to_string();
    let path = format!("/runbooks/{id}");

    let mut duplicate = created.clone();
    duplicate["blocks"][1]["id"] = json!("intro");
    let mut unknown_kind = created.clone();
    unknown_kind["blocks"][0]["kind"] = json!("teleport");
    let mut empty_name = created.clone();
    empty_name["name"] = json!("");
    let mut wrong_type = created.clone();
    wrong_type["blocks"][1]["script"] = json!(42);
    let mut huge = created.clone();
    huge["description"] = json!("x".repeat(5 * 1024 * 1024));
    let mut endless_grace = created.clone();
    endless_grace["blocks"][1]["stop_grace_secs"] = json!(86_400);

    let cases: Vec<(Method, String, String, StatusCode, &str)> = vec![
        (
            Method::PUT,
            path.clone(),
            "{\"name\": ".into(),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            Method::POST,
            "/runbooks".into(),
            "[1, 2".into(),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            Method::PUT,
            path.clone(),
            wrong_type.to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_type",
        ),
        (
            Method::PUT,
            path.clone(),
            unknown_kind.to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_block_kind",
        ),
        (
            Method::PUT,
            path.clone(),
            duplicate.to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "duplicate_block_id",
        ),
        (
            Method::PUT,
            path.clone(),
            endless_grace.to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_stop_grace",
        ),
        (
            Method::PUT,
            path.clone(),
            empty_name.to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "empty_name",
        ),
        (
            Method::POST,
            "/runbooks".into(),
            empty_name.to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "empty_name",
        ),
        (
            Method::PUT,
            path.clone(),
            huge.to_string(),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        (
            Method::POST,
            "/runbooks".into(),
            "\"just a string\"".into(),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            Method::GET,
            "/runbooks/not-a-uuid".into(),
            String::new(),
            StatusCode::BAD_REQUEST,
            "invalid_id",
        ),
        (
            Method::GET,
            "/runbooks/..%2F..%2Fetc%2Fpasswd".into(),
            String::new(),
            StatusCode::BAD_REQUEST,
            "invalid_id",
        ),
        (
            Method::GET,
            format!("{path}/versions/abc"),
            String::new(),
            StatusCode::BAD_REQUEST,
            "invalid_id",
        ),
        (
            Method::GET,
            format!("{path}/versions/99"),
            String::new(),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            Method::GET,
            "/runbooks?limit=lots".into(),
            String::new(),
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
        (
            Method::GET,
            "/runbooks?limit=0".into(),
            String::new(),
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
        (
            Method::GET,
            "/executions?status=done".into(),
            String::new(),
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
        (
            Method::POST,
            format!("{path}/rollback"),
            "{\"version\": \"one\"}".into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_type",
        ),
        (
            Method::POST,
            format!("{path}/execute"),
            "{\"params\": {\"nope\": 1}}".into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_param",
        ),
        (
            Method::POST,
            format!("{path}/execute"),
            "{\"params\": 5}".into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_type",
        ),
        (
            Method::GET,
            format!("/executions/{}", uuid::Uuid::new_v4()),
            String::new(),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            Method::DELETE,
            "/runbooks".into(),
            String::new(),
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (
            Method::GET,
            "/no/such/path".into(),
            String::new(),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
    ];
    for (method, uri, body, expected_status, expected_code) in cases {
        let (status, response) = app.send(method.clone(), &uri, Some(&body)).await;
        assert_eq!(status, expected_status, "{method} {uri}: {response}");
        assert_eq!(error_code(&response), expected_code, "{method} {uri}");
        assert!(response["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }

    let (_, after) = app.send(Method::GET, &path, None).await;
    assert_eq!(after, created, "the stored runbook is unchanged");
    let (_, list) = app.send(Method::GET, "/runbooks", None).await;
    assert_eq!(list["total"], 1, "nothing new was stored");
    let (_, versions) = app
        .send(Method::GET, &format!("{path}/versions"), None)
        .await;
    assert_eq!(versions["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_runbook_within_its_limit_is_taken_however_it_is_written_and_one_past_it_is_named() {
    let app = TestApp::new().await;
    let runbook = |blocks: usize| {
        // 60,000 bytes of text per block, within an instruction's 64 KiB.
        let text = format!("{}{}", "é".repeat(5_000), "a".repeat(50_000));
        let blocks: Vec<Value> = (0..blocks)
            .map(|i| json!({"id": format!("b{i}"), "kind": "instruction", "text": text}))
            .collect();
        json!({"name": "long handbook", "blocks": blocks})
    };
    // About 1.8 MB as compact JSON (the runbook limit is 2 MiB), over 2 MiB once
    // pretty-printed with its non-ASCII characters escaped, as Python's json sends it.
    let within = runbook(30);
    assert!(within.to_string().len() < 2 * 1024 * 1024);
    let escaped = serde_json::to_string_pretty(&within)
        .unwrap()
        .replace('é', "\\u00e9");
    assert!(escaped.len() > 2 * 1024 * 1024, "{}", escaped.len());
    let (status, created) = app.send(Method::POST, "/runbooks", Some(&escaped)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let path = format!("/runbooks/{}", created["id"].as_str().unwrap());
    let (_, read) = app.send(Method::GET, &path, None).await;
    assert_eq!(read["blocks"][29]["text"], within["blocks"][29]["text"]);

    // Past the runbook's own limit but within the body's: the runbook's error, not 413.
    let (status, error) = app
        .send(Method::POST, "/runbooks", Some(&runbook(40).to_string()))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    assert_eq!(error["error"]["code"], "too_large", "{error}");
}

#[tokio::test]
async fn the_ui_is_served_from_its_own_files_and_every_other_path_is_a_json_404() {
    let ui = tempfile::tempdir().unwrap();
    std::fs::write(
        ui.path().join("index.html"),
        "<html>runbook studio ui</html>",
    )
    .unwrap();
    std::fs::create_dir(ui.path().join("assets")).unwrap();
    std::fs::write(ui.path().join("assets/app.js"), "console.log('ui')").unwrap();
    let app = TestApp::serving(Some(ui.path().to_path_buf())).await;
    let get = |uri: &str| Request::builder().uri(uri).body(Body::empty()).unwrap();

    let (status, content_type, page) = app.send_raw(get("/")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(content_type.starts_with("text/html"), "{content_type}");
    assert_eq!(page, b"<html>runbook studio ui</html>");
    let (status, _, script) = app.send_raw(get("/assets/app.js")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(script, b"console.log('ui')");

    // The UI routes by the URL's fragment: no path but its files gets the page.
    for (method, uri) in [
        (Method::GET, "/runbooks/"),
        (Method::GET, "/nope"),
        (Method::GET, "/assets"),
        (Method::GET, "/assets/"),
        (Method::GET, "/assets/missing.js"),
        (Method::POST, "/nope"),
        (Method::DELETE, "/assets/app.js"),
    ] {
        let (status, body) = app.send(method.clone(), uri, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {uri}: {body}");
        assert_eq!(error_code(&body), "not_found", "{method} {uri}");
    }
    let (status, body) = app.send(Method::POST, "/", Some("{}")).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{body}");
    assert_eq!(error_code(&body), "method_not_allowed");
    let (status, body) = app.send(Method::DELETE, "/runbooks", None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{body}");
    assert_eq!(error_code(&body), "method_not_allowed");
    let (status, body) = app.send(Method::GET, "/runbooks", None).await;
    assert_eq!((status, body["total"].as_i64()), (StatusCode::OK, Some(0)));
}

#[tokio::test]
async fn a_path_parameter_that_cannot_be_read_is_a_json_400() {
    let app = TestApp::new().await;
    let runbook = app.create(sample()).await;
    let id = runbook["id"].as_str().unwrap();
    for (method, uri, body) in [
        (Method::GET, "/runbooks/%FF".to_string(), None),
        (Method::PUT, "/runbooks/%FF".to_string(), Some("{}")),
        (Method::GET, format!("/runbooks/{id}/versions/%FF"), None),
        (Method::GET, "/executions/%C3%28".to_string(), None),
        (
            Method::POST,
            "/executions/%FF/control".to_string(),
            Some(r#"{"action": "stop"}"#),
        ),
    ] {
        let (status, response) = app.send(method.clone(), &uri, body).await;
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "{method} {uri}: {response}"
        );
        assert_eq!(error_code(&response), "invalid_id", "{method} {uri}");
    }
}

#[tokio::test]
async fn an_empty_or_non_object_body_is_a_malformed_request_on_every_endpoint() {
    let app = TestApp::new().await;
    let runbook = app.create(sample()).await;
    let id = runbook["id"].as_str().unwrap();
    let run = start(&app, &runbook).await;
    let user = uuid::Uuid::new_v4();
    let endpoints = [
        (Method::POST, "/runbooks".to_string()),
        (Method::PUT, format!("/runbooks/{id}")),
        (Method::POST, format!("/runbooks/{id}/rollback")),
        (Method::POST, format!("/executions/{run}/control")),
        (Method::POST, "/credentials".to_string()),
        (
            Method::PUT,
            format!("/credentials/{}", uuid::Uuid::new_v4()),
        ),
        (Method::POST, "/users".to_string()),
        (Method::PUT, format!("/users/{user}")),
        (Method::POST, "/keys".to_string()),
    ];
    for (method, uri) in endpoints {
        for body in ["", "  \n", "[]", "[1, 2]", "\"text\"", "5", "null"] {
            let (status, response) = app.send(method.clone(), &uri, Some(body)).await;
            assert_eq!(
                (status, error_code(&response)),
                (StatusCode::BAD_REQUEST, "bad_request"),
                "{method} {uri} with {body:?}: {response}"
            );
        }
    }
    // Execute's fields are all optional: no body starts a run, but a non-object does not.
    let execute = format!("/runbooks/{id}/execute");
    let (status, response) = app.send(Method::POST, &execute, Some("[]")).await;
    assert_eq!(
        (status, error_code(&response)),
        (StatusCode::BAD_REQUEST, "bad_request")
    );
    let (status, response) = app.send(Method::POST, &execute, None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{response}");
    // Wrong types inside an object stay 422.
    let (status, response) = app
        .send(
            Method::POST,
            &format!("/runbooks/{id}/rollback"),
            Some(r#"{"version": []}"#),
        )
        .await;
    assert_eq!(
        (status, error_code(&response)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_type")
    );

    let (_, list) = app.send(Method::GET, "/runbooks", None).await;
    assert_eq!(list["total"], 1, "nothing new was stored");
    let (_, after) = app
        .send(Method::GET, &format!("/runbooks/{id}"), None)
        .await;
    assert_eq!(after, runbook, "the runbook is unchanged");
}

#[tokio::test]
async fn an_update_must_carry_its_blocks_and_names_a_bad_block_field_as_a_create_does() {
    let app = TestApp::new().await;
    let created = app.create(sample()).await;
    let path = format!("/runbooks/{}", created["id"].as_str().unwrap());

    let (status, error) = app
        .send(Method::PUT, &path, Some(r#"{"name": "x", "version": 1}"#))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    assert_eq!(error_code(&error), "missing_field");
    assert_eq!(error["error"]["details"][0]["path"], "blocks");
    let (_, after) = app.send(Method::GET, &path, None).await;
    assert_eq!(after, created, "nothing was stored");
    let (_, versions) = app
        .send(Method::GET, &format!("{path}/versions"), None)
        .await;
    assert_eq!(versions["items"].as_array().unwrap().len(), 1);

    let bad_timer = json!([{"id": "t", "kind": "timer", "seconds": "x"}]);
    let (status, on_create) = app
        .send(
            Method::POST,
            "/runbooks",
            Some(&json!({"name": "x", "blocks": bad_timer}).to_string()),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{on_create}");
    let (status, on_update) = app
        .send(
            Method::PUT,
            &path,
            Some(&json!({"name": "x", "version": 1, "blocks": bad_timer}).to_string()),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{on_update}");
    assert_eq!(
        on_update["error"]["details"][0]["path"],
        "blocks[0].seconds"
    );
    assert_eq!(on_update["error"]["details"], on_create["error"]["details"]);
    assert_eq!(error_code(&on_update), error_code(&on_create));

    // A create still defaults what it leaves out.
    let minimal = app.create(json!({"name": "minimal"})).await;
    assert_eq!(minimal["blocks"], json!([]));
}

#[tokio::test]
async fn an_empty_query_value_means_no_filter_on_every_endpoint() {
    let app = TestApp::new().await;
    let runbook = app.create(sample()).await;
    let run = start(&app, &runbook).await;
    finished(&app, &run).await;

    // Literally as API.md writes it.
    let (status, page) = app
        .send(
            Method::GET,
            "/executions?runbook_id=&status=&limit=&offset=",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["total"], 1);
    for uri in [
        "/runbooks?q=&tag=&limit=&offset=".to_string(),
        "/runbooks?limit&offset=".to_string(),
        "/audit?actor=&action=&target=&outcome=&since=&until=&limit=&offset=".to_string(),
        format!("/executions/{run}/output?offset=&limit="),
    ] {
        let (status, body) = app.send(Method::GET, &uri, None).await;
        assert_eq!(status, StatusCode::OK, "{uri}: {body}");
    }
    let (_, output) = app
        .send(
            Method::GET,
            &format!("/executions/{run}/output?offset="),
            None,
        )
        .await;
    assert_eq!(output["offset"], 0);
    // A value that is there but wrong is still refused.
    let (status, body) = app.send(Method::GET, "/runbooks?limit=x", None).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::BAD_REQUEST, "invalid_query")
    );
}

#[tokio::test]
async fn audit_times_outside_the_years_1_to_9999_are_bad_queries() {
    let app = TestApp::new().await;
    for time in [
        "-5000-01-01T00:00:00Z",
        "0000-12-31T00:00:00Z",
        "%2B10000-01-01T00:00:00Z",
    ] {
        for name in ["since", "until"] {
            let uri = format!("/audit?{name}={time}");
            let (status, body) = app.send(Method::GET, &uri, None).await;
            assert_eq!(
                (status, error_code(&body)),
                (StatusCode::BAD_REQUEST, "invalid_query"),
                "{uri}: {body}"
            );
        }
    }
    let (status, body) = app
        .send(
            Method::GET,
            "/audit?since=0001-01-01T00:00:00Z&until=9999-12-31T23:59:59Z",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn the_last_admin_key_cannot_be_revoked() {
    let app = TestApp::new().await;
    let (_, keys) = app.send(Method::GET, "/keys", None).await;
    let only = keys["items"][0]["id"].as_str().unwrap().to_string();
    let (status, response) = app
        .send(Method::DELETE, &format!("/keys/{only}"), None)
        .await;
    assert_eq!(
        (status, error_code(&response)),
        (StatusCode::CONFLICT, "last_admin"),
        "{response}"
    );
    let (status, _) = app.send(Method::GET, "/keys", None).await;
    assert_eq!(status, StatusCode::OK, "the key still works");
    // Another admin key may take over; then the first may go.
    let (status, _) = app
        .send(
            Method::POST,
            "/keys",
            Some(r#"{"name": "successor", "role": "admin"}"#),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, response) = app
        .send(Method::DELETE, &format!("/keys/{only}"), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{response}");
}

#[tokio::test]
async fn the_last_admin_cannot_be_demoted_disabled_or_deleted() {
    let app = TestApp::new().await;
    // Alice, an admin user, is the only admin once the first admin key is revoked.
    let (_, alice) = app
        .send(
            Method::POST,
            "/users",
            Some(r#"{"name": "alice", "role": "admin"}"#),
        )
        .await;
    let alice_id = alice["id"].as_str().unwrap().to_string();
    let (status, key) = app
        .send(
            Method::POST,
            "/keys",
            Some(&json!({"name": "alice's laptop", "user_id": alice_id}).to_string()),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{key}");
    let alice_key = key["token"].as_str().unwrap().to_string();
    let (_, keys) = app.send(Method::GET, "/keys", None).await;
    let first = keys["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "admin")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, _) = app
        .send(Method::DELETE, &format!("/keys/{first}"), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    let user_path = format!("/users/{alice_id}");
    for (method, body) in [
        (Method::PUT, Some(r#"{"role": "editor"}"#)),
        (Method::PUT, Some(r#"{"disabled": true}"#)),
        (Method::PUT, Some(r#"{"role": "viewer", "disabled": true}"#)),
        (Method::DELETE, None),
    ] {
        let (status, response) = app
            .send_as(&alice_key, method.clone(), &user_path, body)
            .await;
        assert_eq!(
            (status, error_code(&response)),
            (StatusCode::CONFLICT, "last_admin"),
            "{method} {body:?}: {response}"
        );
    }
    let (status, users) = app.send_as(&alice_key, Method::GET, "/users", None).await;
    assert_eq!(status, StatusCode::OK, "alice can still manage users");
    assert_eq!(users["items"][0]["role"], "admin");
    assert!(users["items"][0]["disabled_at"].is_null());
    // Changes that keep her an admin go through.
    let (status, _) = app
        .send_as(
            &alice_key,
            Method::PUT,
            &user_path,
            Some(r#"{"role": "admin"}"#),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    // With a second admin, she may step down.
    let (status, _) = app
        .send_as(
            &alice_key,
            Method::POST,
            "/users",
            Some(r#"{"name": "bob", "role": "admin"}"#),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, demoted) = app
        .send_as(
            &alice_key,
            Method::PUT,
            &user_path,
            Some(r#"{"role": "editor"}"#),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{demoted}");
    assert_eq!(demoted["role"], "editor");
}

#[tokio::test]
async fn keys_authenticate_and_roles_are_enforced() {
    let app = TestApp::new().await;
    let (status, body) = app.send_as("", Method::GET, "/runbooks", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(&body), "unauthenticated");
    let (status, _) = app
        .send_as("rbs_wrong", Method::GET, "/runbooks", None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let viewer = app.key(Role::Viewer).await;
    let (status, me) = app.send_as(&viewer, Method::GET, "/me", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["role"], "viewer");
    let (status, _) = app.send_as(&viewer, Method::GET, "/runbooks", None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = app
        .send_as(
            &viewer,
            Method::POST,
            "/runbooks",
            Some(&sample().to_string()),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(error_code(&body), "forbidden");

    let runbook = app.create(sample()).await;
    let execute = format!("/runbooks/{}/execute", runbook["id"].as_str().unwrap());
    let (status, _) = app
        .send_as(&viewer, Method::POST, &execute, Some("{}"))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let operator = app.key(Role::Operator).await;
    let (status, execution) = app
        .send_as(&operator, Method::POST, &execute, Some("{}"))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{execution}");
    assert_eq!(execution["status"], "queued");
}

#[tokio::test]
async fn parameters_given_as_text_take_their_declared_type() {
    let app = TestApp::new().await;
    let runbook = app
        .create(json!({
            "name": "typed",
            "params": [
                {"name": "replicas", "type": "number", "required": true},
                {"name": "dry_run", "type": "boolean", "default": false},
                {"name": "ticket", "type": "string"}
            ],
            "blocks": [{"id": "a", "kind": "command", "script": "true"}]
        }))
        .await;
    let execute = format!("/runbooks/{}/execute", runbook["id"].as_str().unwrap());
    let body = json!({"params": {"replicas": "3", "dry_run": "true", "ticket": "12345"}});
    let (status, execution) = app
        .send(Method::POST, &execute, Some(&body.to_string()))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{execution}");
    assert_eq!(
        execution["params"],
        json!({"replicas": 3, "dry_run": true, "ticket": "12345"})
    );
    let bad = json!({"params": {"replicas": "three"}});
    let (status, error) = app
        .send(Method::POST, &execute, Some(&bad.to_string()))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_code(&error), "invalid_param");
}

/// Polls `GET /executions/{id}` until the run has finished.
async fn finished(app: &TestApp, id: &str) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (status, execution) = app
            .send(Method::GET, &format!("/executions/{id}"), None)
            .await;
        assert_eq!(status, StatusCode::OK);
        if ["succeeded", "failed", "stopped", "interrupted"]
            .contains(&execution["status"].as_str().unwrap())
        {
            return execution;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never finished: {execution}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Starts a run of `runbook`; returns its id.
async fn start(app: &TestApp, runbook: &Value) -> String {
    let uri = format!("/runbooks/{}/execute", runbook["id"].as_str().unwrap());
    let (status, execution) = app.send(Method::POST, &uri, Some("{}")).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{execution}");
    execution["id"].as_str().unwrap().to_string()
}

/// Polls `GET /executions/{id}` until the run waits for an acknowledgement.
async fn waiting(app: &TestApp, id: &str) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (_, execution) = app
            .send(Method::GET, &format!("/executions/{id}"), None)
            .await;
        if execution["status"] == "waiting" {
            return execution;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never waited: {execution}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_control_request_with_an_unknown_field_is_refused_and_confirms_nothing() {
    let app = TestApp::new().await;
    let runbook = app
        .create(json!({"name": "guarded", "blocks": [
            {"id": "drain", "kind": "instruction", "text": "Drain the node?", "confirm": true},
            {"id": "after", "kind": "command", "script": "echo drained"}
        ]}))
        .await;
    let run = start(&app, &runbook).await;
    waiting(&app, &run).await;
    let control = format!("/executions/{run}/control");

    // A script that spells the guard `blockId` (or anything else) must not get an
    // unguarded acknowledgement: the whole request is refused.
    for body in [
        r#"{"action": "acknowledge", "blockId": "other"}"#,
        r#"{"action": "acknowledge", "step": "other"}"#,
        r#"{"action": "stop", "force": true}"#,
    ] {
        let (status, response) = app.send(Method::POST, &control, Some(body)).await;
        assert_eq!(
            (status, error_code(&response)),
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid_type"),
            "{body}: {response}"
        );
        assert!(
            response["error"]["message"]
                .as_str()
                .unwrap()
                .contains("unknown field"),
            "{response}"
        );
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (_, still) = app
        .send(Method::GET, &format!("/executions/{run}"), None)
        .await;
    assert_eq!(still["status"], "waiting", "nothing was confirmed: {still}");
    assert_eq!(still["steps"][1]["status"], "pending", "{still}");

    let (status, response) = app
        .send(
            Method::POST,
            &control,
            Some(r#"{"action": "acknowledge", "block_id": "drain"}"#),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{response}");
    assert_eq!(finished(&app, &run).await["status"], "succeeded");
}

/// `GET /executions/{id}/{what}` of an unknown run, with a malformed id and without a
/// valid key: the usual errors.
async fn refuses_the_usual_mistakes(app: &TestApp, id: &str, what: &str) {
    let missing = uuid::Uuid::new_v4();
    let (status, error) = app
        .send(Method::GET, &format!("/executions/{missing}/{what}"), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error_code(&error), "not_found");
    let (status, error) = app
        .send(Method::GET, &format!("/executions/..%2Fetc/{what}"), None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    let (status, _) = app
        .send_as(
            "not-a-key",
            Method::GET,
            &format!("/executions/{id}/{what}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_run_is_exported_as_a_markdown_report_with_its_steps_and_plain_console() {
    let app = TestApp::new().await;
    app.secret("deploy-token", "s3cr3t-v4lue").await;
    let runbook = app
        .create(json!({
            "name": "Restart payments | EU",
            "params": [{"name": "region", "type": "string", "default": "eu-1"}],
            "blocks": [
                {"id": "say", "kind": "command",
                 "script": "printf '\\033[31mred alert\\033[0m in %s\\n' {{ params.region }}; echo \"token=$TOKEN\"",
                 "secrets": {"TOKEN": "deploy-token"}},
                {"id": "fail", "kind": "command", "script": "echo 'bad | thing' >&2; exit 4"}
            ]
        }))
        .await;
    let id = start(&app, &runbook).await;
    let execution = finished(&app, &id).await;
    assert_eq!(execution["status"], "failed");

    let viewer = app.key(Role::Viewer).await;
    let request = Request::get(format!("/executions/{id}/export"))
        .header("x-api-key", &viewer)
        .body(Body::empty())
        .unwrap();
    let response = app.router.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers().clone();
    assert_eq!(headers["content-type"], "text/markdown; charset=utf-8");
    let short = &id.replace('-', "")[..8];
    assert_eq!(
        headers["content-disposition"],
        format!("attachment; filename=\"restart-payments-eu-{short}.md\"").as_str()
    );
    assert!(headers.get("x-console-truncated").is_none());
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8(body.to_vec()).unwrap();
    assert!(
        // Markdown's own characters in the name are escaped, so it shows as written.
        text.starts_with("# Run report: Restart payments \\| EU (version 1)\n"),
        "{text}"
    );
    assert!(text.contains("- Status: **failed**"), "{text}");
    assert!(text.contains("  - `region` = `eu-1`"), "{text}");
    assert!(text.contains("| 1 | `say` | succeeded | 0 |"), "{text}");
    assert!(text.contains("| 2 | `fail` | failed | 4 |"), "{text}");
    assert!(
        text.contains("\nred alert in eu-1\n"),
        "colours removed: {text}"
    );
    assert!(text.contains("\nbad | thing\n"), "{text}");
    assert!(text.contains("token=***"), "{text}");
    assert!(
        !text.contains("s3cr3t-v4lue"),
        "the secret stays masked: {text}"
    );
    assert!(!text.contains('\u{1b}') && !text.contains('\r'), "{text:?}");

    // Unknown, malformed and unauthenticated requests get their usual errors.
    refuses_the_usual_mistakes(&app, &id, "export").await;
}

#[tokio::test]
async fn a_runs_whole_console_is_saved_as_a_log_file_plain_or_as_the_terminal_got_it() {
    let app = TestApp::new().await;
    app.secret("deploy-token", "s3cr3t-v4lue").await;
    // A progress line redrawn with `\r`, colours, a tab, a masked secret, and 1.5 MB
    // after them so the file takes more than one page.
    let runbook = app
        .create(json!({
            "name": "Rotate logs",
            "blocks": [{"id": "rotate", "kind": "command",
                 "script": "printf '10%%\\r100%%\\n\\033[32mdone\\033[0m\\tok token=%s\\r\\n' \"$TOKEN\"; yes abc | head -c 1500000",
                 "secrets": {"TOKEN": "deploy-token"}}]
        }))
        .await;
    let id = start(&app, &runbook).await;
    assert_eq!(finished(&app, &id).await["status"], "succeeded");

    let viewer = app.key(Role::Viewer).await;
    let fetch = |query: &'static str| {
        let request = Request::get(format!("/executions/{id}/console{query}"))
            .header("x-api-key", &viewer)
            .body(Body::empty())
            .unwrap();
        let router = app.router.clone();
        async move {
            let response = router.oneshot(request).await.unwrap();
            let status = response.status();
            let headers = response.headers().clone();
            let body = response.into_body().collect().await.unwrap().to_bytes();
            (status, headers, body)
        }
    };

    let (status, headers, body) = fetch("").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "text/plain; charset=utf-8");
    let short = &id.replace('-', "")[..8];
    assert_eq!(
        headers["content-disposition"],
        format!("attachment; filename=\"rotate-logs-{short}.log\"").as_str()
    );
    let text = String::from_utf8(body.to_vec()).unwrap();
    assert!(
        text.contains("\n10%\n100%\ndone\tok token=***\n"),
        "{:?}",
        &text[..200]
    );
    assert!(!text.contains("s3cr3t-v4lue"), "the secret stays masked");
    assert!(
        !text.contains(['\u{1b}', '\r']),
        "escapes or carriage returns left"
    );
    assert_eq!(text.matches("abc\n").count(), 1_500_000 / 4);

    // With the escapes kept, the bytes are the console's own: the pages the output
    // endpoint gives, joined.
    let (status, _, raw) = fetch("?escapes=keep").await;
    assert_eq!(status, StatusCode::OK);
    let mut paged = Vec::new();
    let mut offset = 0;
    loop {
        let (_, page) = app
            .send(
                Method::GET,
                &format!("/executions/{id}/output?offset={offset}&limit=1048576"),
                None,
            )
            .await;
        paged.extend_from_slice(page["text"].as_str().unwrap().as_bytes());
        offset = page["next_offset"].as_u64().unwrap();
        if page["complete"] == true {
            break;
        }
    }
    assert_eq!(raw, paged);
    assert!(raw.windows(5).any(|w| w == b"\x1b[32m"), "colours kept");

    // A server shutting down ends a transfer under way unfinished, not as a whole file.
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let router = runbook_server::app(
        runbook_server::AppState::new(app.service.clone(), shutdown),
        None,
    );
    let request = Request::get(format!("/executions/{id}/console"))
        .header("x-api-key", &viewer)
        .body(Body::empty())
        .unwrap();
    let response = router.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    let first = body.frame().await.unwrap().unwrap();
    assert!(first.data_ref().is_some_and(|data| !data.is_empty()));
    stop.send(true).unwrap();
    assert!(
        body.collect().await.is_err(),
        "the transfer ends with an error"
    );

    // Unknown choices, runs and ids, and callers without a key, get their usual errors.
    let (status, _, body) = fetch("?escapes=html").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let error: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(error_code(&error), "invalid_query", "{error}");
    refuses_the_usual_mistakes(&app, &id, "console").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runs_event_stream_carries_it_to_its_end_while_another_run_floods_its_console() {
    let app = TestApp::new().await;
    let base = serve(&app).await;
    let client = reqwest::Client::new();
    let quiet = app
        .create(json!({"name": "quiet", "blocks": [
            {"id": "ask", "kind": "instruction", "text": "go on?", "confirm": true},
            {"id": "say", "kind": "command", "script": "echo quiet done"}
        ]}))
        .await;
    // Far more reads (64 KiB at most each) than an event subscriber may fall behind by.
    let loud = app
        .create(json!({"name": "loud", "blocks": [
            {"id": "flood", "kind": "command", "script": "head -c 80000000 /dev/zero | tr '\\0' x"}
        ]}))
        .await;
    let quiet_id = start(&app, &quiet).await;
    let events = client
        .get(format!("{base}/executions/{quiet_id}/events"))
        .header("x-api-key", &app.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(events.status(), 200);
    let body = tokio::spawn(events.text());

    let loud_id = start(&app, &loud).await;
    assert_eq!(finished(&app, &loud_id).await["status"], "succeeded");
    let (status, _) = app
        .send(
            Method::POST,
            &format!("/executions/{quiet_id}/control"),
            Some(r#"{"action": "acknowledge"}"#),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    let body = tokio::time::timeout(Duration::from_secs(30), body)
        .await
        .expect("the event stream ends when its run finishes")
        .unwrap()
        .unwrap();
    assert!(body.contains("quiet done"), "{body}");
    assert!(
        !body.contains(&loud_id),
        "only the quiet run's events: {body}"
    );
    let last = body
        .lines()
        .rev()
        .find_map(|line| line.strip_prefix("data: "))
        .unwrap_or_default();
    assert!(
        last.contains(r#""status":"succeeded""#),
        "the stream lasts to the run's final status: {body}"
    );
}

#[tokio::test]
async fn a_failed_run_is_retried_over_rest_and_bad_retries_are_refused() {
    let app = TestApp::new().await;
    let flag = app._dir.path().join("fixed");
    let runbook = app
        .create(json!({"name": "flaky", "blocks": [
            {"id": "a", "kind": "command", "script": "echo A=1 >> \"$RUNBOOK_OUTPUT\""},
            {"id": "b", "kind": "command",
             "script": format!("[ -f '{0}' ] || {{ touch '{0}'; exit 4; }}", flag.display())},
            {"id": "c", "kind": "command", "script": "echo a-was-{{ steps.a.outputs.A }}"}
        ]}))
        .await;
    let (status, run) = app
        .send(
            Method::POST,
            &format!("/runbooks/{}/execute", runbook["id"].as_str().unwrap()),
            Some("{}"),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let failed = finished(&app, run["id"].as_str().unwrap()).await;
    assert_eq!(failed["status"], "failed");
    let retry_uri = format!("/executions/{}/retry", failed["id"].as_str().unwrap());

    let viewer = app.key(Role::Viewer).await;
    let (status, error) = app.send_as(&viewer, Method::POST, &retry_uri, None).await;
    assert_eq!(
        (status, error_code(&error)),
        (StatusCode::FORBIDDEN, "forbidden")
    );
    let (status, error) = app
        .send(Method::POST, "/executions/not-an-id/retry", None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    let (status, error) = app
        .send(
            Method::POST,
            &format!("/executions/{}/retry", uuid::Uuid::new_v4()),
            None,
        )
        .await;
    assert_eq!(
        (status, error_code(&error)),
        (StatusCode::NOT_FOUND, "not_found")
    );

    let (status, retry) = app.send(Method::POST, &retry_uri, None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{retry}");
    assert_eq!(retry["retry_of"], failed["id"]);
    assert_eq!(retry["retry_from"], "b");
    let done = finished(&app, retry["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["steps"][0]["reused"], true);
    assert_eq!(done["steps"][0]["outputs"]["A"], "1");
    let (_, page) = app
        .send(
            Method::GET,
            &format!("/executions/{}/output", done["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert!(page["text"].as_str().unwrap().contains("a-was-1"), "{page}");

    let (status, error) = app
        .send(
            Method::POST,
            &format!("/executions/{}/retry", done["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(
        (status, error_code(&error)),
        (StatusCode::CONFLICT, "invalid_state")
    );
}

#[tokio::test]
async fn a_run_has_one_live_retry_at_a_time() {
    let app = TestApp::new().await;
    let flag = app._dir.path().join("failed-once");
    // Fails the first time; retried, it runs until stopped.
    let runbook = app
        .create(json!({"name": "slow fix", "blocks": [
            {"id": "fix", "kind": "command",
             "script": format!("[ -f '{0}' ] || {{ touch '{0}'; exit 4; }}; sleep 300", flag.display())}
        ]}))
        .await;
    let (_, run) = app
        .send(
            Method::POST,
            &format!("/runbooks/{}/execute", runbook["id"].as_str().unwrap()),
            Some("{}"),
        )
        .await;
    let failed = finished(&app, run["id"].as_str().unwrap()).await;
    assert_eq!(failed["status"], "failed");
    let retry_uri = format!("/executions/{}/retry", failed["id"].as_str().unwrap());

    let (status, first) = app.send(Method::POST, &retry_uri, None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{first}");
    let (status, error) = app.send(Method::POST, &retry_uri, None).await;
    assert_eq!(
        (status, error_code(&error)),
        (StatusCode::CONFLICT, "retry_in_progress"),
        "{error}"
    );
    let (_, listed) = app.send(Method::GET, "/executions?limit=100", None).await;
    let retries = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|execution| execution["retry_of"] == failed["id"])
        .count();
    assert_eq!(retries, 1, "the refused retry stored nothing: {listed}");

    // Once that retry has ended, the run can be retried again.
    let stop = json!({"action": "stop"}).to_string();
    let first_id = first["id"].as_str().unwrap();
    let (status, _) = app
        .send(
            Method::POST,
            &format!("/executions/{first_id}/control"),
            Some(&stop),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(finished(&app, first_id).await["status"], "stopped");
    let (status, second) = app.send(Method::POST, &retry_uri, None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{second}");
    let second_id = second["id"].as_str().unwrap();
    app.send(
        Method::POST,
        &format!("/executions/{second_id}/control"),
        Some(&stop),
    )
    .await;
    assert_eq!(finished(&app, second_id).await["status"], "stopped");
}

#[tokio::test]
async fn kill_ends_a_stop_that_waits_out_a_long_grace_period() {
    let app = TestApp::new().await;
    let dir = tempfile::tempdir().unwrap();
    let started = dir.path().join("started");
    let runbook = app
        .create(json!({"name": "Drain", "blocks": [
            {"id": "drain", "kind": "command", "stop_grace_secs": 600, "script": format!(
                "trap '' TERM; touch '{}'; while true; do sleep 1; done",
                started.display()
            )}
        ]}))
        .await;
    let run = start(&app, &runbook).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !started.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the command never started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let control = format!("/executions/{run}/control");
    let send = |action: &'static str| {
        let body = json!({ "action": action }).to_string();
        let (app, control) = (&app, control.clone());
        async move { app.send(Method::POST, &control, Some(&body)).await }
    };
    let (status, body) = send("stop").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The run says who asked for the stop, and when, while it waits out the grace period.
    assert_eq!(body["status"], "running", "{body}");
    assert_eq!(body["stop_requested"]["by"], body["started_by"], "{body}");
    assert!(body["stop_requested"]["at"].is_string(), "{body}");
    let (_, read) = app
        .send(Method::GET, &format!("/executions/{run}"), None)
        .await;
    assert_eq!(read["stop_requested"], body["stop_requested"], "{read}");
    let stop_requested = body["stop_requested"].clone();
    // The shell ignores SIGTERM: the stop waits out its ten minutes, and refuses a pause.
    let (status, body) = send("pause").await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::CONFLICT, "invalid_state")
    );
    let (status, kill) = send("kill").await;
    assert_eq!(status, StatusCode::OK, "{kill}");
    let ended = finished(&app, &run).await;
    assert_eq!(ended["status"], "stopped");
    assert_eq!(
        ended["stop_requested"], stop_requested,
        "the stop, not the kill after it"
    );
    let (_, audit) = app
        .send(Method::GET, "/audit?action=execution.kill", None)
        .await;
    assert_eq!(audit["total"], 1, "{audit}");
    assert_eq!(audit["items"][0]["outcome"], "success", "{audit}");
}

#[tokio::test]
async fn openapi_document_lists_every_route() {
    let app = TestApp::new().await;
    let response = app
        .router
        .clone()
        .oneshot(Request::get("/openapi.json").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let doc: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    for path in [
        "/runbooks",
        "/runbooks/{id}",
        "/runbooks/{id}/versions",
        "/runbooks/{id}/versions/{version}",
        "/runbooks/{id}/rollback",
        "/runbooks/{id}/execute",
        "/executions",
        "/executions/{id}",
        "/executions/{id}/output",
        "/executions/{id}/events",
        "/executions/{id}/control",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} is missing");
    }
}

// ---- the OpenAPI document against what the router does ----

const METHODS: [&str; 5] = ["get", "post", "put", "delete", "patch"];

/// `schema` with its `$ref`s followed.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(reference) => {
            let pointer = reference.strip_prefix('#').expect("a local reference");
            let target = doc
                .pointer(pointer)
                .unwrap_or_else(|| panic!("{reference} does not exist"));
            resolve(doc, target)
        }
        None => schema,
    }
}

/// What in `value` breaks `schema`, each named by its path. The subset of JSON Schema
/// the document uses: type, enum, required, properties, additionalProperties: false,
/// items, allOf and oneOf.
fn schema_problems(doc: &Value, schema: &Value, value: &Value, path: &str) -> Vec<String> {
    let schema = resolve(doc, schema);
    let mut problems = Vec::new();
    for part in schema["allOf"].as_array().into_iter().flatten() {
        problems.extend(schema_problems(doc, part, value, path));
    }
    if let Some(choices) = schema["oneOf"].as_array() {
        if !choices
            .iter()
            .any(|choice| schema_problems(doc, choice, value, path).is_empty())
        {
            problems.push(format!("{path}: {value} matches no choice of oneOf"));
        }
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(one) => vec![one.as_str()],
        Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let fits = |name: &str| match name {
        "null" => value.is_null(),
        "boolean" => value.is_boolean(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "string" => value.is_string(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        other => panic!("{path}: unknown type {other}"),
    };
    if !types.is_empty() && !types.iter().any(|name| fits(name)) {
        problems.push(format!("{path}: {value} is not of type {types:?}"));
        return problems;
    }
    if let Some(allowed) = schema["enum"].as_array() {
        if !allowed.contains(value) {
            problems.push(format!("{path}: {value} is not one of {allowed:?}"));
        }
    }
    if let Some(object) = value.as_object() {
        for name in schema["required"].as_array().into_iter().flatten() {
            if !object.contains_key(name.as_str().unwrap()) {
                problems.push(format!("{path}.{} is missing", name.as_str().unwrap()));
            }
        }
        for (name, field) in object {
            match schema["properties"].get(name) {
                Some(property) => {
                    problems.extend(schema_problems(
                        doc,
                        property,
                        field,
                        &format!("{path}.{name}"),
                    ));
                }
                None if schema["additionalProperties"] == false => {
                    problems.push(format!("{path}.{name} is not documented"));
                }
                None => {}
            }
        }
    }
    if let (Some(items), Some(array)) = (schema.get("items"), value.as_array()) {
        for (i, item) in array.iter().enumerate() {
            problems.extend(schema_problems(doc, items, item, &format!("{path}[{i}]")));
        }
    }
    problems
}

/// The operations of the document: path template, method and the operation.
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut found = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            assert!(METHODS.contains(&method.as_str()), "{method} {path}");
            found.push((path.clone(), method.clone(), operation.clone()));
        }
    }
    found
}

/// Where `status` of an operation is documented to send JSON: its schema.
fn documented_json<'a>(doc: &'a Value, operation: &'a Value, status: u16) -> Option<&'a Value> {
    let response = resolve(doc, operation["responses"].get(status.to_string())?);
    response["content"]["application/json"].get("schema")
}

/// Problems with an answer of `method path`: its status is documented and its body
/// matches the schema documented for that status.
fn answer_problems(
    doc: &Value,
    operation: &Value,
    what: &str,
    status: StatusCode,
    body: &Value,
) -> Vec<String> {
    match documented_json(doc, operation, status.as_u16()) {
        Some(schema) => schema_problems(doc, schema, body, what),
        None if operation["responses"]
            .get(status.as_u16().to_string())
            .is_some() =>
        {
            Vec::new()
        }
        None => vec![format!(
            "{what}: status {status} is not documented ({body})"
        )],
    }
}

/// The documented parameters of `operation` that are `location` ("path" or "query").
fn parameters<'a>(operation: &'a Value, location: &str) -> Vec<&'a Value> {
    operation["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|parameter| parameter["in"] == location)
        .collect()
}

/// An integer bound of a parameter's schema, wide enough for any u64 or i64.
fn bound(schema: &Value, name: &str) -> Option<i128> {
    let value = &schema[name];
    value
        .as_i64()
        .map(i128::from)
        .or(value.as_u64().map(i128::from))
}

/// The error code of an answer, if it is an error.
fn error_code_or_none(body: &Value) -> Option<&str> {
    body["error"]["code"].as_str()
}

#[tokio::test]
async fn the_openapi_document_describes_what_the_router_does() {
    let app = TestApp::new().await;
    let (_, doc) = app.send(Method::GET, "/openapi.json", None).await;
    let mut problems: Vec<String> = Vec::new();

    // Real resources for the path parameters, so that no check is answered by a 404.
    let runbook = app.create(sample()).await;
    let run = start(&app, &runbook).await;
    finished(&app, &run).await;
    let (credential_status, credential) = app
        .send(
            Method::POST,
            "/credentials",
            Some(r#"{"name": "api-token", "kind": "bearer", "value": "s3cret"}"#),
        )
        .await;
    let (user_status, user) = app
        .send(
            Method::POST,
            "/users",
            Some(r#"{"name": "carol", "role": "viewer"}"#),
        )
        .await;
    let (key_status, key) = app
        .send(
            Method::POST,
            "/keys",
            Some(r#"{"name": "ci", "role": "viewer"}"#),
        )
        .await;
    let real = |template: &str, bad: Option<(&str, &str)>| -> String {
        let segments: Vec<&str> = template.split('/').collect();
        let mut concrete = Vec::new();
        for (i, segment) in segments.iter().enumerate() {
            let name = segment.trim_start_matches('{').trim_end_matches('}');
            let value = match (bad, *segment) {
                (Some((bad_name, bad_value)), _) if bad_name == name => bad_value.to_string(),
                (_, "{version}") => "1".to_string(),
                (_, "{id}") => match segments[i - 1] {
                    "runbooks" => runbook["id"].as_str().unwrap().to_string(),
                    "executions" => run.clone(),
                    "credentials" => credential["id"].as_str().unwrap().to_string(),
                    "users" => user["id"].as_str().unwrap().to_string(),
                    "keys" => key["id"].as_str().unwrap().to_string(),
                    other => panic!("no real id for {other}"),
                },
                (_, plain) => plain.to_string(),
            };
            concrete.push(value);
        }
        concrete.join("/")
    };

    for (template, method, operation) in operations(&doc) {
        let what = format!("{} {template}", method.to_uppercase());
        let http_method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let public = operation["security"] == json!([]);
        let path_parameters = parameters(&operation, "path");
        let query_parameters = parameters(&operation, "query");
        let body = operation.get("requestBody").map(|body| resolve(&doc, body));
        let documents = |status: &str| operation["responses"].get(status).is_some();

        // The statuses a client can really get, and no others.
        let successes: Vec<&String> = operation["responses"]
            .as_object()
            .unwrap()
            .keys()
            .filter(|status| status.starts_with('2'))
            .collect();
        if successes.len() != 1 {
            problems.push(format!("{what}: documents {successes:?} as its success"));
        }
        let has_input =
            !path_parameters.is_empty() || !query_parameters.is_empty() || body.is_some();
        for (status, expected) in [
            ("401", !public),
            ("403", !public),
            ("429", !public),
            ("400", !public && has_input),
            ("404", !path_parameters.is_empty()),
            ("413", body.is_some()),
            ("422", body.is_some()),
        ] {
            if documents(status) != expected {
                problems.push(format!(
                    "{what}: {status} is {}documented, but a client can{} get it",
                    if expected { "not " } else { "" },
                    if expected { "" } else { "not" }
                ));
            }
        }
        if method == "get" && documents("409") {
            problems.push(format!("{what}: a read cannot conflict (409)"));
        }
        for (status, response) in operation["responses"].as_object().unwrap() {
            let response = resolve(&doc, response);
            if status.starts_with('4') {
                let schema = &response["content"]["application/json"]["schema"];
                if resolve(&doc, schema)
                    != resolve(&doc, &json!({"$ref": "#/components/schemas/Error"}))
                {
                    problems.push(format!("{what}: {status} is not the Error shape"));
                }
            } else if status != "204" && response.get("content").is_none() {
                problems.push(format!("{what}: {status} does not say what it sends"));
            }
        }

        // The route exists with this method: without a key it asks for one (or answers).
        let uri = real(&template, None);
        let (status, response) = app.send_as("", http_method.clone(), &uri, None).await;
        let expected = if public {
            StatusCode::OK
        } else {
            StatusCode::UNAUTHORIZED
        };
        if status != expected {
            problems.push(format!("{what} without a key: {status} {response}"));
        }
        problems.extend(answer_problems(&doc, &operation, &what, status, &response));
        // Methods the document does not list are not routed.
        for other in METHODS
            .iter()
            .filter(|m| doc["paths"][&template].get(**m).is_none())
        {
            let other = Method::from_bytes(other.to_uppercase().as_bytes()).unwrap();
            let (status, response) = app.send(other.clone(), &uri, Some("{}")).await;
            if status != StatusCode::METHOD_NOT_ALLOWED {
                problems.push(format!(
                    "{other} {template} is not documented, yet answers {status} {response}"
                ));
            }
        }
        if public {
            continue;
        }
        let valid_body = body.map(|_| "{}");

        // A path parameter that is not what the document says: 400 invalid_id.
        for parameter in &path_parameters {
            let name = parameter["name"].as_str().unwrap();
            let bad = match parameter["schema"]["type"].as_str() {
                Some("integer") => "one",
                _ => "not-a-uuid",
            };
            let uri = real(&template, Some((name, bad)));
            let (status, response) = app.send(http_method.clone(), &uri, valid_body).await;
            if (status, error_code_or_none(&response))
                != (StatusCode::BAD_REQUEST, Some("invalid_id"))
            {
                problems.push(format!("{what} with {name} = {bad}: {status} {response}"));
            }
            problems.extend(answer_problems(&doc, &operation, &what, status, &response));
        }

        // Query parameters: each is read, and its documented bounds hold.
        for parameter in &query_parameters {
            let name = parameter["name"].as_str().unwrap();
            let schema = &parameter["schema"];
            let mut refused: Vec<String> = Vec::new();
            let mut accepted: Vec<String> = Vec::new();
            match (schema["type"].as_str(), schema["format"].as_str()) {
                (Some("integer"), _) => {
                    refused.push("many".to_string());
                    if let Some(minimum) = bound(schema, "minimum") {
                        refused.push((minimum - 1).to_string());
                        accepted.push(minimum.to_string());
                    }
                    if let Some(maximum) = bound(schema, "maximum") {
                        refused.push((maximum + 1).to_string());
                        accepted.push(maximum.to_string());
                    }
                }
                (Some("string"), Some("uuid")) => refused.push("not-a-uuid".to_string()),
                (Some("string"), Some("date-time")) => refused.push("yesterday".to_string()),
                _ => {}
            }
            if let Some(values) = schema["enum"].as_array() {
                refused.push("no-such-value".to_string());
                accepted.extend(values.iter().map(|v| v.as_str().unwrap().to_string()));
            }
            for value in refused {
                let uri = format!("{uri}?{name}={value}");
                let (status, response) = app.send(http_method.clone(), &uri, None).await;
                if (status, error_code_or_none(&response))
                    != (StatusCode::BAD_REQUEST, Some("invalid_query"))
                {
                    problems.push(format!("{what} with {name}={value}: {status} {response}"));
                }
                problems.extend(answer_problems(&doc, &operation, &what, status, &response));
            }
            for value in accepted {
                let request = Request::builder()
                    .method(http_method.clone())
                    .uri(format!("{uri}?{name}={value}"))
                    .header("x-api-key", &app.admin)
                    .body(Body::empty())
                    .unwrap();
                let (status, content_type, bytes) = app.send_raw(request).await;
                if !status.is_success() {
                    let response = String::from_utf8_lossy(&bytes);
                    problems.push(format!("{what} with {name}={value}: {status} {response}"));
                }
                // A JSON answer is held to its schema; a file (a console) is not JSON.
                if content_type.starts_with("application/json") {
                    let response: Value = serde_json::from_slice(&bytes).unwrap();
                    problems.extend(answer_problems(&doc, &operation, &what, status, &response));
                }
            }
        }

        // Bodies: whether one is needed, the size limit and closed objects.
        if let Some(body) = body {
            let schema = &body["content"]["application/json"]["schema"];
            if schema.is_null() {
                problems.push(format!("{what}: the body is not documented as JSON"));
            }
            let (status, response) = app.send(http_method.clone(), &uri, None).await;
            let refused = (status, error_code_or_none(&response))
                == (StatusCode::BAD_REQUEST, Some("bad_request"));
            if body["required"] == true && !refused || body["required"] != true && refused {
                problems.push(format!(
                    "{what}: requestBody.required is {}, but without a body it answers {status} {response}",
                    body["required"]
                ));
            }
            problems.extend(answer_problems(&doc, &operation, &what, status, &response));
            let huge = json!({"name": "x".repeat(5 * 1024 * 1024)}).to_string();
            let (status, response) = app.send(http_method.clone(), &uri, Some(&huge)).await;
            if (status, error_code_or_none(&response))
                != (StatusCode::PAYLOAD_TOO_LARGE, Some("payload_too_large"))
            {
                problems.push(format!("{what} with a 5 MiB body: {status} {response}"));
            }
            problems.extend(answer_problems(&doc, &operation, &what, status, &response));
            if resolve(&doc, schema)["additionalProperties"] == false {
                let (status, response) = app
                    .send(http_method.clone(), &uri, Some(r#"{"undocumented": 1}"#))
                    .await;
                if status != StatusCode::UNPROCESSABLE_ENTITY {
                    problems.push(format!(
                        "{what} with an undocumented field: {status} {response}"
                    ));
                }
                problems.extend(answer_problems(&doc, &operation, &what, status, &response));
            }
        }

        // What a read answers matches its documented schema.
        if method == "get" {
            let request = Request::get(&uri)
                .header("x-api-key", &app.admin)
                .body(Body::empty())
                .unwrap();
            let (status, content_type, bytes) = app.send_raw(request).await;
            let success = successes.first().map(|s| s.as_str()).unwrap_or("200");
            if status.as_str() != success {
                problems.push(format!("{what}: {status}, documented {success}"));
            }
            let documented: Vec<&String> = resolve(&doc, &operation["responses"][success])
                ["content"]
                .as_object()
                .map(|content| content.keys().collect())
                .unwrap_or_default();
            let media = content_type
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_string();
            if !documented.contains(&&media) {
                problems.push(format!("{what}: sends {media}, documented {documented:?}"));
            }
            if media == "application/json" {
                let body: Value = serde_json::from_slice(&bytes).unwrap();
                problems.extend(answer_problems(&doc, &operation, &what, status, &body));
            }
        }
    }

    // What the writes above answered matches their schemas too.
    let write = |template: &str, method: &str| doc["paths"][template][method].clone();
    for (template, method, status, body) in [
        ("/runbooks", "post", StatusCode::CREATED, &runbook),
        ("/credentials", "post", credential_status, &credential),
        ("/users", "post", user_status, &user),
        ("/keys", "post", key_status, &key),
    ] {
        let what = format!("{} {template}", method.to_uppercase());
        problems.extend(answer_problems(
            &doc,
            &write(template, method),
            &what,
            status,
            body,
        ));
    }
    let execute = format!("/runbooks/{}/execute", runbook["id"].as_str().unwrap());
    let (status, execution) = app.send(Method::POST, &execute, Some("{}")).await;
    problems.extend(answer_problems(
        &doc,
        &write("/runbooks/{id}/execute", "post"),
        "POST /runbooks/{id}/execute",
        status,
        &execution,
    ));
    let finished_run = finished(&app, execution["id"].as_str().unwrap()).await;
    problems.extend(answer_problems(
        &doc,
        &write("/executions/{id}", "get"),
        "GET /executions/{id} of a finished run",
        StatusCode::OK,
        &finished_run,
    ));

    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// GETs `url` with `key` and parses the JSON answer.
async fn get_json(client: &reqwest::Client, url: String, key: &str) -> Value {
    client
        .get(url)
        .header("x-api-key", key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Starts the real server on a free loopback port.
async fn serve(app: &TestApp) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = app.router.clone();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}")
}

/// With two instances on one database, the event stream of a run the other instance
/// executes tells its steps, console and end as it would for a run executed here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_stream_follows_a_run_another_instance_executes() {
    let app = TestApp::new().await;
    let base = serve(&app).await;
    let other = Service::open(runbook_core::Config::from_data_dir(app._dir.path()))
        .await
        .unwrap();
    let runbook = other
        .create_runbook(
            &Actor::system(),
            json!({"name": "elsewhere", "blocks": [
                {"id": "wait", "kind": "instruction", "text": "go?", "confirm": true},
                {"id": "say", "kind": "command", "script": "for i in 1 2 3; do echo far-$i; sleep 0.2; done"}
            ]}),
        )
        .await
        .unwrap();
    let run = other
        .execute(&Actor::system(), runbook.id, Value::Null)
        .await
        .unwrap();
    let client = reqwest::Client::new();
    let mut waiting = false;
    for _ in 0..250 {
        let current = get_json(&client, format!("{base}/executions/{}", run.id), &app.admin).await;
        if current["status"] == "waiting" {
            waiting = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(waiting, "the run waits for the confirmation");

    let viewer = app.key(Role::Viewer).await;
    let events = client
        .get(format!("{base}/executions/{}/events", run.id))
        .header("x-api-key", &viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(events.status(), 200);
    let body = tokio::spawn(events.text());
    let ack = client
        .post(format!("{base}/executions/{}/control", run.id))
        .header("x-api-key", &app.admin)
        .json(&json!({"action": "acknowledge", "block_id": "wait"}))
        .send()
        .await
        .unwrap();
    assert_eq!(ack.status(), 200, "relayed to the instance executing it");

    let body = tokio::time::timeout(Duration::from_secs(20), body)
        .await
        .expect("the event stream ends when the run finishes")
        .unwrap()
        .unwrap();
    let names: Vec<&str> = body
        .lines()
        .filter_map(|line| line.strip_prefix("event: "))
        .collect();
    assert_eq!(names.first(), Some(&"status"), "{body}");
    for name in ["step_started", "output", "step_finished"] {
        assert!(names.contains(&name), "no {name} in {body}");
    }
    assert_eq!(names.last(), Some(&"status"), "{body}");
    assert!(body.contains("far-3"), "{body}");
    assert!(body.contains(r#""status":"succeeded""#), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_stream_ends_once_the_key_that_opened_it_is_revoked() {
    let app = TestApp::new().await;
    let (_stop, shutdown) = tokio::sync::watch::channel(false);
    let state = runbook_server::AppState {
        key_check: Duration::from_millis(200),
        ..runbook_server::AppState::new(app.service.clone(), shutdown)
    };
    let base = common::serve_state(state).await;
    let runbook = app
        .create(json!({"name": "long", "blocks": [
            {"id": "ask", "kind": "instruction", "text": "go on?", "confirm": true}
        ]}))
        .await;
    let id = start(&app, &runbook).await;
    waiting(&app, &id).await;
    let watcher = app
        .service
        .create_api_key(&Actor::system(), "watcher", Role::Viewer)
        .await
        .unwrap();
    let open = |token: String| {
        let url = format!("{base}/executions/{id}/events");
        async move {
            reqwest::Client::new()
                .get(url)
                .header("x-api-key", token)
                .send()
                .await
                .unwrap()
        }
    };
    let events = open(watcher.token.clone()).await;
    assert_eq!(events.status(), 200);
    let body = tokio::spawn(events.text());
    // Still open after several checks while the key holds.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        !body.is_finished(),
        "the stream stays open while its key is valid"
    );

    app.service
        .revoke_api_key(&Actor::system(), watcher.key.id)
        .await
        .unwrap();
    let body = tokio::time::timeout(Duration::from_secs(10), body)
        .await
        .expect("the stream ends once its key is revoked")
        .unwrap()
        .unwrap();
    assert!(body.contains(r#""status":"waiting""#), "{body}");
    // A stream's key lapsing is not a failed authentication: nothing toward a lockout,
    // no `auth.failure` in the trail.
    let (_, failures) = app
        .send(Method::GET, "/audit?action=auth.failure", None)
        .await;
    assert_eq!(failures["total"], 0, "{failures}");
    // The run itself goes on, and a valid key follows it still.
    let (_, execution) = app
        .send(Method::GET, &format!("/executions/{id}"), None)
        .await;
    assert_eq!(execution["status"], "waiting", "{execution}");
    let again = open(app.admin.clone()).await;
    assert_eq!(again.status(), 200);
    let mut again = again.bytes_stream();
    use futures::StreamExt;
    let first = tokio::time::timeout(Duration::from_secs(10), again.next())
        .await
        .unwrap();
    assert!(first.is_some_and(|chunk| chunk.is_ok()));
}

#[tokio::test]
async fn a_run_over_a_real_socket_streams_events_and_pages_output() {
    let app = TestApp::new().await;
    let base = serve(&app).await;
    let client = reqwest::Client::new();
    let runbook: Value = client
        .post(format!("{base}/runbooks"))
        .header("x-api-key", &app.admin)
        .json(&json!({
            "name": "socket",
            "blocks": [
                {"id": "wait", "kind": "instruction", "text": "go?", "confirm": true},
                {"id": "say", "kind": "command", "script": "for i in 1 2 3; do echo line-$i; done"}
            ]
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = runbook["id"].as_str().unwrap();
    let response = client
        .post(format!("{base}/runbooks/{id}/execute"))
        .header("x-api-key", &app.admin)
        .json(&json!({"params": {}, "version": null}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let execution: Value = response.json().await.unwrap();
    let execution_id = execution["id"].as_str().unwrap().to_string();

    let events = client
        .get(format!("{base}/executions/{execution_id}/events"))
        .header("x-api-key", &app.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(events.status(), 200);
    assert!(events.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));

    // Wait for the confirmation step, then acknowledge it.
    let mut waited = false;
    for _ in 0..100 {
        let current: Value = get_json(
            &client,
            format!("{base}/executions/{execution_id}"),
            &app.admin,
        )
        .await;
        if current["status"] == "waiting" {
            waited = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(waited, "the run waits for the confirmation");
    let waiting_output: Value = get_json(
        &client,
        format!("{base}/executions/{execution_id}/output"),
        &app.admin,
    )
    .await;
    assert!(
        waiting_output["text"].as_str().unwrap().contains("go?"),
        "what is to be confirmed is stored while the run waits: {waiting_output}"
    );
    let resume = client
        .post(format!("{base}/executions/{execution_id}/control"))
        .header("x-api-key", &app.admin)
        .json(&json!({"action": "resume"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resume.status(), 409, "resume does not fit a waiting run");
    // An acknowledgement naming a step the run does not wait at confirms nothing.
    let wrong = client
        .post(format!("{base}/executions/{execution_id}/control"))
        .header("x-api-key", &app.admin)
        .json(&json!({"action": "acknowledge", "block_id": "say"}))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 409);
    let wrong: Value = wrong.json().await.unwrap();
    assert_eq!(wrong["error"]["code"], "invalid_state", "{wrong}");
    assert!(
        wrong["error"]["message"]
            .as_str()
            .unwrap()
            .contains("waits at step `wait`, not at `say`"),
        "{wrong}"
    );
    let ack = client
        .post(format!("{base}/executions/{execution_id}/control"))
        .header("x-api-key", &app.admin)
        .json(&json!({"action": "acknowledge", "block_id": "wait"}))
        .send()
        .await
        .unwrap();
    assert_eq!(ack.status(), 200);

    let body = tokio::time::timeout(Duration::from_secs(20), events.text())
        .await
        .expect("the event stream ends when the run finishes")
        .unwrap();
    let names: Vec<&str> = body
        .lines()
        .filter_map(|line| line.strip_prefix("event: "))
        .collect();
    assert!(names.contains(&"step_started"), "{body}");
    assert!(names.contains(&"step_finished"), "{body}");
    assert_eq!(names.last(), Some(&"status"));
    assert!(body.contains("line-3"));
    assert!(body.contains(r#""status":"succeeded""#));

    // Page through the console three bytes at a time.
    let mut offset = 0;
    let mut text = String::new();
    loop {
        let page: Value = get_json(
            &client,
            format!("{base}/executions/{execution_id}/output?offset={offset}&limit=3"),
            &app.admin,
        )
        .await;
        text.push_str(page["text"].as_str().unwrap());
        let next = page["next_offset"].as_u64().unwrap();
        if page["complete"] == true || next == offset {
            break;
        }
        offset = next;
    }
    assert!(text.contains("line-1\nline-2\nline-3\n"), "{text}");
    assert!(
        text.contains("▶ say"),
        "step headers survive paging: {text}"
    );

    let beyond = client
        .get(format!(
            "{base}/executions/{execution_id}/output?offset=18446744073709551615"
        ))
        .header("x-api-key", &app.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(beyond.status(), 400);

    let list: Value = get_json(
        &client,
        format!("{base}/executions?runbook_id={id}&status=succeeded"),
        &app.admin,
    )
    .await;
    assert_eq!(list["total"], 1);
}
