//! Security over HTTP: the failed-authentication lockout (429 with `Retry-After`,
//! per client address, also for a valid key while it lasts), bad credential input
//! refused with stable codes and without any change, request ids, and the OpenAPI
//! document of the security endpoints.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use runbook_core::{Actor, Config, LockoutPolicy, Service};
use runbook_domain::{ExecutionStatus, Role};
use serde_json::{json, Value};
use std::net::IpAddr;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tower::ServiceExt;

mod common;

const CANARY: &str = "canary-input-5d1e9b7c3a";

struct Served {
    base: String,
    admin: String,
    _stop: watch::Sender<bool>,
    _dir: tempfile::TempDir,
}

async fn serve(lockout: LockoutPolicy) -> Served {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::from_data_dir(dir.path());
    config.lockout = lockout;
    let service = Service::open(config).await.unwrap();
    let admin = service
        .create_api_key(&Actor::system(), "admin", Role::Admin)
        .await
        .unwrap()
        .token;
    let (base, stop) = common::serve_in_process(&service).await;
    Served {
        base,
        admin,
        _stop: stop,
        _dir: dir,
    }
}

/// A client whose connections come from `ip` (any 127.0.0.0/8 address reaches loopback).
fn client_from(ip: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(ip.parse::<IpAddr>().unwrap())
        .build()
        .unwrap()
}

async fn get_me(client: &reqwest::Client, base: &str, key: &str) -> reqwest::Response {
    client
        .get(format!("{base}/me"))
        .header("x-api-key", key)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_bad_keys_lock_the_client_out_with_429_and_retry_after() {
    const MAX: u32 = 3;
    let served = serve(LockoutPolicy {
        max_failures: MAX,
        window: Duration::from_secs(60),
        lockout: Duration::from_secs(3),
    })
    .await;
    let guesser = client_from("127.0.0.1");
    let neighbour = client_from("127.0.0.2");
    let base = &served.base;

    // The allowed failures are plain 401s.
    for i in 0..MAX {
        let response = get_me(&guesser, base, &format!("rbs_{i:064}")).await;
        assert_eq!(response.status(), 401, "failure {} of {MAX}", i + 1);
    }
    // One more failure than allowed locks the client out: from then on 429.
    let mut statuses = Vec::new();
    let locked = loop {
        let response = get_me(&guesser, base, "rbs_still_guessing").await;
        statuses.push(response.status().as_u16());
        if response.status() == 429 {
            break response;
        }
        assert!(
            statuses.len() <= 2,
            "no 429 after {} bad keys (max_failures {MAX}): {statuses:?}",
            MAX as usize + statuses.len()
        );
    };
    assert_eq!(
        statuses.len(),
        2,
        "the lockout starts after max_failures + 1 failures: {statuses:?}"
    );
    let retry_after: u64 = locked
        .headers()
        .get("retry-after")
        .expect("a 429 carries Retry-After")
        .to_str()
        .unwrap()
        .parse()
        .expect("Retry-After is a number of seconds");
    assert!((1..=3).contains(&retry_after), "Retry-After {retry_after}");
    assert!(locked.headers().contains_key("x-request-id"));
    let body: Value = locked.json().await.unwrap();
    assert_eq!(body["error"]["code"], "too_many_attempts", "{body}");

    // A valid key from the locked-out client is refused too, while the lockout lasts.
    let valid = get_me(&guesser, base, &served.admin).await;
    assert_eq!(valid.status(), 429, "a valid key from a locked-out client");
    assert!(valid.headers().contains_key("retry-after"));
    let body: Value = valid.json().await.unwrap();
    assert_eq!(body["error"]["code"], "too_many_attempts");
    // ... and without a key (no authentication attempted) the answer is still no.
    let keyless = guesser.get(format!("{base}/me")).send().await.unwrap();
    assert!(
        [401, 429].contains(&keyless.status().as_u16()),
        "{}",
        keyless.status()
    );

    // Another client is not affected.
    let other = get_me(&neighbour, base, &served.admin).await;
    assert_eq!(other.status(), 200, "another address is not locked out");

    // A client that waits as long as Retry-After says is let in again.
    let mut problems = Vec::new();
    tokio::time::sleep(Duration::from_secs(retry_after) + Duration::from_millis(200)).await;
    let after = get_me(&guesser, base, &served.admin).await;
    if after.status() != 200 {
        problems.push(format!(
            "a client that waited Retry-After ({retry_after} s) after its first 429 is still \
             refused with {}: Retry-After must not be shorter than the lockout that remains",
            after.status()
        ));
    }
    // The lockout ends at the latest after its full duration.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = get_me(&guesser, base, &served.admin).await;
    assert_eq!(after.status(), 200, "the lockout ended");

    // The failures are in the audit trail, the one that locked the client marked so.
    let audit: Value = neighbour
        .get(format!("{base}/audit?action=auth.failure&limit=100"))
        .header("x-api-key", &served.admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let failures = audit["items"].as_array().expect("audit items");
    assert_eq!(failures.len(), MAX as usize + 1, "{audit}");
    assert!(failures
        .iter()
        .all(|f| f["outcome"] == "failure" && f["target"] == "client:127.0.0.1"));
    assert!(
        failures.iter().any(|f| f["detail"]["locked_out"] == true),
        "the failure that locked the client out is marked: {audit}"
    );
    assert!(
        !audit.to_string().contains("rbs_still_guessing"),
        "a guessed key is never written to the audit trail"
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

// ---- bad credential input, in-process ----

struct InProcess {
    router: axum::Router,
    service: Service,
    admin: String,
    _dir: tempfile::TempDir,
}

impl InProcess {
    async fn new() -> InProcess {
        let (router, service, admin, dir) = common::in_process_app().await;
        InProcess {
            router,
            service,
            admin,
            _dir: dir,
        }
    }

    async fn send_raw(
        &self,
        method: Method,
        uri: &str,
        body: Vec<u8>,
        request_id: Option<&str>,
    ) -> (StatusCode, axum::http::HeaderMap, String) {
        let mut request = Request::builder()
            .method(method)
            .uri(uri)
            .header("x-api-key", &self.admin)
            .header("content-type", "application/json");
        if let Some(id) = request_id {
            request = request.header("x-request-id", id);
        }
        let response = self
            .router
            .clone()
            .oneshot(request.body(Body::from(body)).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            headers,
            String::from_utf8_lossy(&bytes).into_owned(),
        )
    }

    async fn send(&self, method: Method, uri: &str, body: &str) -> (StatusCode, Value) {
        let (status, _, text) = self
            .send_raw(method, uri, body.as_bytes().to_vec(), None)
            .await;
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
        };
        (status, value)
    }
}

#[tokio::test]
async fn bad_credential_input_is_refused_with_stable_codes_and_changes_nothing() {
    let app = InProcess::new().await;
    let (status, existing) = app
        .send(
            Method::POST,
            "/credentials",
            &json!({"name": "existing", "kind": "secret", "value": "original-value",
                    "description": "kept"})
            .to_string(),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{existing}");
    let id = existing["id"].as_str().unwrap().to_string();
    let (_, before) = app.send(Method::GET, "/credentials", "").await;
    assert_eq!(before["items"].as_array().unwrap().len(), 1, "{before}");

    let oversized = "x".repeat(runbook_core::MAX_VALUE_BYTES + 1);
    let huge_body =
        json!({"name": "huge", "kind": "secret", "value": "y".repeat(4 * 1024 * 1024 + 10)})
            .to_string();
    let cases: Vec<(&str, Method, String, String, StatusCode, &str)> = vec![
        (
            "unknown kind",
            Method::POST,
            "/credentials".into(),
            json!({"name": "a", "kind": "password", "value": CANARY}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_kind",
        ),
        (
            "oversized value",
            Method::POST,
            "/credentials".into(),
            json!({"name": "big", "kind": "secret", "value": oversized}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "value_too_large",
        ),
        (
            "empty name",
            Method::POST,
            "/credentials".into(),
            json!({"name": "", "kind": "secret", "value": CANARY}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_name",
        ),
        (
            "name with a space",
            Method::POST,
            "/credentials".into(),
            json!({"name": "two words", "kind": "secret", "value": CANARY}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_name",
        ),
        (
            "name too long",
            Method::POST,
            "/credentials".into(),
            json!({"name": "n".repeat(101), "kind": "secret", "value": CANARY}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_name",
        ),
        (
            "duplicate name",
            Method::POST,
            "/credentials".into(),
            json!({"name": "existing", "kind": "secret", "value": CANARY}).to_string(),
            StatusCode::CONFLICT,
            "duplicate_name",
        ),
        (
            "missing value",
            Method::POST,
            "/credentials".into(),
            json!({"name": "novalue", "kind": "secret"}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "missing_value",
        ),
        (
            "empty value",
            Method::POST,
            "/credentials".into(),
            json!({"name": "novalue", "kind": "secret", "value": ""}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "missing_value",
        ),
        (
            "a host with a path",
            Method::POST,
            "/credentials".into(),
            json!({"name": "hosted", "kind": "bearer", "value": CANARY,
                   "hosts": ["api.example.com/v1"]})
            .to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_hosts",
        ),
        (
            "hosts on a secret",
            Method::POST,
            "/credentials".into(),
            json!({"name": "hosted", "kind": "secret", "value": CANARY,
                   "hosts": ["api.example.com"]})
            .to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "hosts_not_applicable",
        ),
        (
            "hosts on a secret, by update",
            Method::PUT,
            format!("/credentials/{id}"),
            json!({"hosts": ["api.example.com"]}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "hosts_not_applicable",
        ),
        (
            "basic without a username",
            Method::POST,
            "/credentials".into(),
            json!({"name": "basic", "kind": "basic", "value": CANARY}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "missing_username",
        ),
        (
            "header without a header name",
            Method::POST,
            "/credentials".into(),
            json!({"name": "hdr", "kind": "header", "value": CANARY}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "missing_header_name",
        ),
        (
            "value of the wrong type",
            Method::POST,
            "/credentials".into(),
            json!({"name": "typed", "kind": "secret", "value": [CANARY]}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_type",
        ),
        (
            "unknown field",
            Method::POST,
            "/credentials".into(),
            json!({"name": "extra", "kind": "secret", "value": CANARY, "extra": CANARY})
                .to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_type",
        ),
        (
            "malformed JSON",
            Method::POST,
            "/credentials".into(),
            format!(r#"{{"name": "broken", "kind": "secret", "value": "{CANARY}""#),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            "not an object",
            Method::POST,
            "/credentials".into(),
            json!([CANARY]).to_string(),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            "body over 4 MiB",
            Method::POST,
            "/credentials".into(),
            huge_body,
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        (
            "invalid id (get)",
            Method::GET,
            "/credentials/not-a-uuid".into(),
            String::new(),
            StatusCode::BAD_REQUEST,
            "invalid_id",
        ),
        (
            "invalid id (put)",
            Method::PUT,
            "/credentials/not-a-uuid".into(),
            json!({"value": CANARY}).to_string(),
            StatusCode::BAD_REQUEST,
            "invalid_id",
        ),
        (
            "invalid id (delete)",
            Method::DELETE,
            "/credentials/12345".into(),
            String::new(),
            StatusCode::BAD_REQUEST,
            "invalid_id",
        ),
        (
            "unknown id",
            Method::DELETE,
            format!("/credentials/{}", uuid::Uuid::new_v4()),
            String::new(),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "oversized value on update",
            Method::PUT,
            format!("/credentials/{id}"),
            json!({"value": "z".repeat(runbook_core::MAX_VALUE_BYTES + 1)}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "value_too_large",
        ),
        (
            "empty value on update",
            Method::PUT,
            format!("/credentials/{id}"),
            json!({"value": "", "description": "changed"}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "missing_value",
        ),
        (
            "renaming on update",
            Method::PUT,
            format!("/credentials/{id}"),
            json!({"name": "renamed", "value": CANARY}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_type",
        ),
        (
            "malformed JSON on update",
            Method::PUT,
            format!("/credentials/{id}"),
            format!(r#"{{"value": "{CANARY}"#),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
    ];
    let mut problems = Vec::new();
    for (what, method, uri, body, expected, code) in cases {
        let (status, _, text) = app
            .send_raw(method.clone(), &uri, body.into_bytes(), None)
            .await;
        let got_code = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["error"]["code"].as_str().map(str::to_string));
        if status != expected || got_code.as_deref() != Some(code) {
            problems.push(format!(
                "{what}: expected {expected} {code}, got {status} {got_code:?}: {}",
                text.chars().take(300).collect::<String>()
            ));
        }
        if text.contains(CANARY) {
            problems.push(format!(
                "{what}: the error echoes the submitted value: {text}"
            ));
        }
    }
    let (_, after) = app.send(Method::GET, "/credentials", "").await;
    if after != before {
        problems.push(format!(
            "the credentials changed:\nbefore {before}\nafter  {after}"
        ));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    // The stored value is still the original one: a run sees it.
    let runbook = app
        .service
        .create_runbook(
            &Actor::system(),
            json!({"name": "uses existing", "blocks": [
                {"id": "check", "kind": "command", "script": "test \"$TOKEN\" = original-value",
                 "secrets": {"TOKEN": "existing"}}
            ]}),
        )
        .await
        .unwrap();
    let run = app
        .service
        .execute(&Actor::system(), runbook.id, Value::Null)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        let now = app
            .service
            .get_execution(&Actor::system(), run.id)
            .await
            .unwrap();
        if now.status.is_finished() {
            break now.status;
        }
        assert!(Instant::now() < deadline, "the run never finished");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        status,
        ExecutionStatus::Succeeded,
        "the refused updates left the original value in place"
    );
}

#[tokio::test]
async fn a_credential_is_bound_to_hosts_over_http() {
    let app = InProcess::new().await;
    let (status, created) = app
        .send(
            Method::POST,
            "/credentials",
            &json!({"name": "grafana", "kind": "bearer", "value": CANARY,
                    "hosts": ["Grafana.Example.com", "*.grafana.example.com:3000"]})
            .to_string(),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(
        created["hosts"],
        json!(["grafana.example.com", "*.grafana.example.com:3000"])
    );
    let id = created["id"].as_str().unwrap();
    let (status, updated) = app
        .send(
            Method::PUT,
            &format!("/credentials/{id}"),
            &json!({"hosts": ["[fd00::1]:8443"]}).to_string(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    let (_, listed) = app.send(Method::GET, "/credentials", "").await;
    assert_eq!(listed["items"][0]["hosts"], json!(["[fd00::1]:8443"]));
    // Without `hosts`, an update leaves them as they are.
    let (status, _) = app
        .send(
            Method::PUT,
            &format!("/credentials/{id}"),
            &json!({"description": "dashboards"}).to_string(),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, read) = app
        .send(Method::GET, &format!("/credentials/{id}"), "")
        .await;
    assert_eq!(read["hosts"], json!(["[fd00::1]:8443"]), "{read}");
    assert!(!listed.to_string().contains(CANARY));
}

#[tokio::test]
async fn every_response_carries_a_request_id_that_reaches_the_audit_trail() {
    let app = InProcess::new().await;
    // A sensible id from the client is echoed...
    let (status, headers, _) = app
        .send_raw(
            Method::POST,
            "/users",
            json!({"name": "bob", "role": "viewer"})
                .to_string()
                .into_bytes(),
            Some("trace-42.a_b:c"),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(headers["x-request-id"], "trace-42.a_b:c");
    // ... and recorded with the action it caused.
    let (_, audit) = app.send(Method::GET, "/audit?action=user.create", "").await;
    assert_eq!(audit["items"][0]["request_id"], "trace-42.a_b:c", "{audit}");
    assert_eq!(audit["items"][0]["actor"], "admin", "{audit}");
    assert_eq!(audit["items"][0]["target"], "user:bob", "{audit}");

    // A missing or unusable one is replaced by a fresh id; errors carry one too.
    for given in [None, Some("has spaces in it"), Some(&*"x".repeat(101))] {
        let (status, headers, _) = app
            .send_raw(Method::GET, "/credentials/nope", Vec::new(), given)
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let id = headers["x-request-id"].to_str().unwrap();
        assert!(uuid::Uuid::parse_str(id).is_ok(), "{given:?} -> {id}");
    }
    let response = app
        .router
        .clone()
        .oneshot(Request::get("/runbooks").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(response.headers().contains_key("x-request-id"));
}

#[tokio::test]
async fn openapi_documents_the_security_endpoints() {
    let app = InProcess::new().await;
    let (status, doc) = app.send(Method::GET, "/openapi.json", "").await;
    assert_eq!(status, StatusCode::OK);
    let paths = &doc["paths"];
    for (path, methods) in [
        ("/credentials", &["get", "post"][..]),
        ("/credentials/{id}", &["get", "put", "delete"][..]),
        ("/users", &["get", "post"][..]),
        ("/users/{id}", &["put", "delete"][..]),
        ("/keys", &["get", "post"][..]),
        ("/keys/{id}", &["delete"][..]),
        ("/audit", &["get"][..]),
        ("/audit/verify", &["get"][..]),
        ("/vault", &["get"][..]),
        ("/me", &["get"][..]),
    ] {
        for method in methods {
            let operation = &paths[path][method];
            assert!(operation.is_object(), "{method} {path} is not documented");
            for status in ["401", "403", "429"] {
                assert!(
                    operation["responses"].get(status).is_some(),
                    "{method} {path} does not document {status}"
                );
            }
        }
    }
    let schemas = &doc["components"]["schemas"];
    for schema in [
        "CredentialInfo",
        "NewCredential",
        "CredentialChange",
        "User",
        "ApiKeyInfo",
        "NewApiKey",
        "AuditEntry",
        "AuditPage",
        "AuditVerifyReport",
        "VaultStatus",
    ] {
        assert!(schemas.get(schema).is_some(), "schema {schema} is missing");
    }
    let credential = schemas["CredentialInfo"]["properties"].as_object().unwrap();
    assert!(
        !credential.contains_key("value"),
        "CredentialInfo never has a value"
    );
    assert!(doc["components"]["headers"]["X-Request-Id"].is_object());
    assert!(doc["components"]["headers"]["Retry-After"].is_object());
    assert!(
        doc["components"]["responses"]["TooManyAttempts"]["headers"]["Retry-After"].is_object()
    );
    // Every documented response of an authenticated operation names the request id.
    for (path, item) in paths.as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            if method == "parameters" {
                continue;
            }
            for (status, response) in operation["responses"].as_object().unwrap() {
                let headers = response
                    .get("headers")
                    .or_else(|| {
                        response["$ref"].as_str().and_then(|r| {
                            let name = r.rsplit('/').next().unwrap();
                            doc["components"]["responses"][name].get("headers")
                        })
                    })
                    .cloned()
                    .unwrap_or(Value::Null);
                assert!(
                    headers.get("X-Request-Id").is_some(),
                    "{method} {path} {status} does not document X-Request-Id"
                );
            }
        }
    }
}
