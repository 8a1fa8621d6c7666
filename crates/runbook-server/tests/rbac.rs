//! Role-based access over real HTTP: one table lists every REST endpoint with the
//! lowest role allowed to call it, and the whole matrix (no key, bad, revoked,
//! expired and disabled keys, and each role with a key of its own and with a key
//! owned by a user) is walked on SQLite and on PostgreSQL. The table is checked
//! against the router's source and the OpenAPI document, so it cannot miss a route.

use runbook_core::{Actor, Config, EngineConfig, KeyRequest, LockoutPolicy, Service};
use runbook_domain::{ExecutionStatus, Role};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use uuid::Uuid;

mod common;

/// Who may call an endpoint: anyone (no key), or at least this role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Access {
    Public,
    Viewer,
    Operator,
    Editor,
    Admin,
}

use Access::*;

/// Every endpoint of the REST API: method, path template, lowest role allowed.
const ROUTES: &[(&str, &str, Access)] = &[
    ("GET", "/healthz", Public),
    ("GET", "/openapi.json", Public),
    ("GET", "/me", Viewer),
    ("GET", "/vault", Viewer),
    ("GET", "/runbooks", Viewer),
    ("POST", "/runbooks", Editor),
    ("GET", "/runbooks/{id}", Viewer),
    ("PUT", "/runbooks/{id}", Editor),
    ("DELETE", "/runbooks/{id}", Editor),
    ("GET", "/runbooks/{id}/versions", Viewer),
    ("GET", "/runbooks/{id}/versions/{version}", Viewer),
    ("POST", "/runbooks/{id}/rollback", Editor),
    ("POST", "/runbooks/{id}/execute", Operator),
    ("GET", "/executions", Viewer),
    ("GET", "/executions/{id}", Viewer),
    ("GET", "/executions/{id}/output", Viewer),
    ("GET", "/executions/{id}/export", Viewer),
    ("GET", "/executions/{id}/console", Viewer),
    ("GET", "/executions/{id}/events", Viewer),
    ("POST", "/executions/{id}/control", Operator),
    ("POST", "/executions/{id}/retry", Operator),
    ("GET", "/credentials", Admin),
    ("POST", "/credentials", Admin),
    ("GET", "/credentials/{id}", Admin),
    ("PUT", "/credentials/{id}", Admin),
    ("DELETE", "/credentials/{id}", Admin),
    ("GET", "/users", Admin),
    ("POST", "/users", Admin),
    ("PUT", "/users/{id}", Admin),
    ("DELETE", "/users/{id}", Admin),
    ("GET", "/keys", Admin),
    ("POST", "/keys", Admin),
    ("DELETE", "/keys/{id}", Admin),
    ("GET", "/audit", Admin),
    ("GET", "/audit/verify", Admin),
];

const PATIENCE: Duration = Duration::from_secs(30);

/// A caller of the matrix: its label, its `X-API-KEY` (if any) and its role (None:
/// a key that must not authenticate).
struct Caller {
    label: String,
    key: Option<String>,
    role: Option<Role>,
}

fn access_of(role: Role) -> Access {
    match role {
        Role::Viewer => Viewer,
        Role::Operator => Operator,
        Role::Editor => Editor,
        Role::Admin => Admin,
    }
}

fn system() -> Actor {
    Actor::system()
}

/// The service under test, served over a real socket (the peer address keys the lockout).
struct Served {
    service: Service,
    base: String,
    stop: watch::Sender<bool>,
    counter: AtomicUsize,
    /// A runbook at version 2 and a finished run of it.
    runbook: Uuid,
    finished: Uuid,
}

impl Served {
    async fn start(mut config: Config) -> Served {
        // Hundreds of bad-key requests come from one address: no lockout here.
        config.lockout = LockoutPolicy {
            max_failures: 1_000_000,
            window: Duration::from_secs(60),
            lockout: Duration::from_secs(1),
        };
        config.engine = EngineConfig {
            stop_grace: Duration::from_millis(500),
            ..EngineConfig::default()
        };
        let service = Service::open(config).await.expect("the service opens");
        let (base, stop) = common::serve_in_process(&service).await;
        let mut served = Served {
            service,
            base,
            stop,
            counter: AtomicUsize::new(0),
            runbook: Uuid::nil(),
            finished: Uuid::nil(),
        };
        served.runbook = served.runbook_at_v2("true").await;
        served.finished = served.run(served.runbook, ExecutionStatus::Succeeded).await;
        served
    }

    fn unique(&self, prefix: &str) -> String {
        format!("{prefix}-{}", self.counter.fetch_add(1, Ordering::SeqCst))
    }

    async fn runbook(&self, script: &str) -> Uuid {
        self.service
            .create_runbook(
                &system(),
                json!({"name": self.unique("rbac"), "blocks": [
                    {"id": "main", "kind": "command", "script": script}
                ]}),
            )
            .await
            .expect("a fixture runbook")
            .id
    }

    async fn runbook_at_v2(&self, script: &str) -> Uuid {
        let id = self.runbook(script).await;
        let mut body =
            serde_json::to_value(self.service.get_runbook(&system(), id).await.unwrap()).unwrap();
        body["description"] = json!("second version");
        self.service
            .update_runbook(&system(), id, body)
            .await
            .expect("a second version");
        id
    }

    /// Starts a run of `runbook` and waits until it reaches `status`.
    async fn run(&self, runbook: Uuid, status: ExecutionStatus) -> Uuid {
        let run = self
            .service
            .execute(&system(), runbook, Value::Null)
            .await
            .expect("a fixture run")
            .id;
        let deadline = Instant::now() + PATIENCE;
        loop {
            let now = self.service.get_execution(&system(), run).await.unwrap();
            if now.status == status {
                return run;
            }
            assert!(
                Instant::now() < deadline && !(now.status.is_finished() && now.status != status),
                "the fixture run ended up {:?}, not {status:?}",
                now.status
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn credential(&self) -> Uuid {
        self.service
            .create_credential(
                &system(),
                json!({"name": self.unique("cred"), "kind": "secret", "value": "s3cret"}),
            )
            .await
            .expect("a fixture credential")
            .id
    }

    async fn user(&self, role: Role) -> Uuid {
        self.service
            .create_user(
                &system(),
                json!({"name": self.unique("user"), "role": role}),
            )
            .await
            .expect("a fixture user")
            .id
    }

    async fn key(&self, request: KeyRequest) -> (Uuid, String) {
        let key = self
            .service
            .issue_key(&system(), request)
            .await
            .expect("a fixture key");
        (key.key.id, key.token)
    }

    async fn role_key(&self, role: Role) -> (Uuid, String) {
        self.key(KeyRequest {
            name: self.unique(role.as_str()),
            role: Some(role),
            ..KeyRequest::default()
        })
        .await
    }

    async fn user_key(&self, user: Uuid) -> String {
        self.key(KeyRequest {
            name: self.unique("user-key"),
            user_id: Some(user),
            ..KeyRequest::default()
        })
        .await
        .1
    }

    /// The concrete path and body for calling `route`. `allowed` says whether the
    /// caller may: only then are runs started for it (a refused call needs none).
    async fn request(
        &self,
        method: &str,
        template: &str,
        allowed: bool,
    ) -> (String, Option<Value>) {
        let runbook = self.runbook;
        let finished = self.finished;
        match (method, template) {
            ("GET", "/healthz" | "/openapi.json" | "/me" | "/vault" | "/runbooks")
            | ("GET", "/executions" | "/credentials" | "/users" | "/keys" | "/audit/verify") => {
                (template.to_string(), None)
            }
            ("GET", "/audit") => ("/audit?limit=5".to_string(), None),
            ("POST", "/runbooks") => (
                template.to_string(),
                Some(json!({"name": self.unique("created"), "blocks": [
                    {"id": "main", "kind": "command", "script": "true"}
                ]})),
            ),
            ("GET", "/runbooks/{id}") => (format!("/runbooks/{runbook}"), None),
            ("PUT", "/runbooks/{id}") => {
                let id = self.runbook("true").await;
                let mut body =
                    serde_json::to_value(self.service.get_runbook(&system(), id).await.unwrap())
                        .unwrap();
                body["description"] = json!("edited");
                (format!("/runbooks/{id}"), Some(body))
            }
            ("DELETE", "/runbooks/{id}") => {
                (format!("/runbooks/{}", self.runbook("true").await), None)
            }
            ("GET", "/runbooks/{id}/versions") => (format!("/runbooks/{runbook}/versions"), None),
            ("GET", "/runbooks/{id}/versions/{version}") => {
                (format!("/runbooks/{runbook}/versions/1"), None)
            }
            ("POST", "/runbooks/{id}/rollback") => (
                format!("/runbooks/{}/rollback", self.runbook_at_v2("true").await),
                Some(json!({"version": 1})),
            ),
            ("POST", "/runbooks/{id}/execute") => (
                format!("/runbooks/{runbook}/execute"),
                Some(json!({"params": {}})),
            ),
            ("GET", "/executions/{id}") => (format!("/executions/{finished}"), None),
            ("GET", "/executions/{id}/output") => (
                format!("/executions/{finished}/output?offset=0&limit=100"),
                None,
            ),
            ("GET", "/executions/{id}/export") => (format!("/executions/{finished}/export"), None),
            ("GET", "/executions/{id}/console") => {
                (format!("/executions/{finished}/console"), None)
            }
            ("GET", "/executions/{id}/events") => (format!("/executions/{finished}/events"), None),
            ("POST", "/executions/{id}/control") => {
                let run = if allowed {
                    let slow = self.runbook("sleep 30").await;
                    self.run(slow, ExecutionStatus::Running).await
                } else {
                    finished
                };
                (
                    format!("/executions/{run}/control"),
                    Some(json!({"action": "stop"})),
                )
            }
            ("POST", "/executions/{id}/retry") => {
                let run = if allowed {
                    let failing = self.runbook("exit 3").await;
                    self.run(failing, ExecutionStatus::Failed).await
                } else {
                    finished
                };
                (format!("/executions/{run}/retry"), None)
            }
            ("POST", "/credentials") => (
                template.to_string(),
                Some(json!({"name": self.unique("new-cred"), "kind": "bearer", "value": "tok"})),
            ),
            ("GET", "/credentials/{id}") => {
                (format!("/credentials/{}", self.credential().await), None)
            }
            ("PUT", "/credentials/{id}") => (
                format!("/credentials/{}", self.credential().await),
                Some(json!({"description": "rotated", "value": "new-value"})),
            ),
            ("DELETE", "/credentials/{id}") => {
                (format!("/credentials/{}", self.credential().await), None)
            }
            ("POST", "/users") => (
                template.to_string(),
                Some(json!({"name": self.unique("new-user"), "role": "viewer"})),
            ),
            ("PUT", "/users/{id}") => (
                format!("/users/{}", self.user(Role::Viewer).await),
                Some(json!({"role": "editor"})),
            ),
            ("DELETE", "/users/{id}") => {
                (format!("/users/{}", self.user(Role::Viewer).await), None)
            }
            ("POST", "/keys") => (
                template.to_string(),
                Some(json!({"name": self.unique("new-key"), "role": "viewer"})),
            ),
            ("DELETE", "/keys/{id}") => (
                format!("/keys/{}", self.role_key(Role::Viewer).await.0),
                None,
            ),
            other => panic!("the matrix has no request for {other:?}; add one"),
        }
    }

    /// Every caller of the matrix.
    async fn callers(&self) -> Vec<Caller> {
        let mut callers = vec![
            Caller {
                label: "no key".into(),
                key: None,
                role: None,
            },
            Caller {
                label: "unknown key".into(),
                key: Some(format!("rbs_{}", "0".repeat(64))),
                role: None,
            },
            Caller {
                label: "garbage key".into(),
                key: Some("not a key at all".into()),
                role: None,
            },
        ];
        // An admin stays: the last one can be neither revoked, disabled nor deleted
        // (409 last_admin).
        self.user(Role::Admin).await;
        let (revoked_id, revoked) = self.role_key(Role::Admin).await;
        self.service
            .revoke_api_key(&system(), revoked_id)
            .await
            .unwrap();
        callers.push(Caller {
            label: "revoked admin key".into(),
            key: Some(revoked),
            role: None,
        });
        let disabled_user = self.user(Role::Admin).await;
        let disabled = self.user_key(disabled_user).await;
        self.service
            .update_user(&system(), disabled_user, json!({"disabled": true}))
            .await
            .unwrap();
        callers.push(Caller {
            label: "disabled user's admin key".into(),
            key: Some(disabled),
            role: None,
        });
        let deleted_user = self.user(Role::Admin).await;
        let deleted = self.user_key(deleted_user).await;
        self.service
            .delete_user(&system(), deleted_user)
            .await
            .unwrap();
        callers.push(Caller {
            label: "deleted user's admin key".into(),
            key: Some(deleted),
            role: None,
        });
        let (_, expiring) = self
            .key(KeyRequest {
                name: self.unique("expiring"),
                role: Some(Role::Admin),
                expires_at: Some(chrono::Utc::now() + chrono::Duration::milliseconds(1500)),
                ..KeyRequest::default()
            })
            .await;
        for role in [Role::Viewer, Role::Operator, Role::Editor, Role::Admin] {
            callers.push(Caller {
                label: format!("{role} key"),
                key: Some(self.role_key(role).await.1),
                role: Some(role),
            });
            let user = self.user(role).await;
            callers.push(Caller {
                label: format!("{role} user's key"),
                key: Some(self.user_key(user).await),
                role: Some(role),
            });
        }
        // A user whose role went up acts with the new role at once.
        let promoted = self.user(Role::Viewer).await;
        let promoted_key = self.user_key(promoted).await;
        self.service
            .update_user(&system(), promoted, json!({"role": "editor"}))
            .await
            .unwrap();
        callers.push(Caller {
            label: "viewer user promoted to editor".into(),
            key: Some(promoted_key),
            role: Some(Role::Editor),
        });
        tokio::time::sleep(Duration::from_millis(1600)).await;
        callers.push(Caller {
            label: "expired admin key".into(),
            key: Some(expiring),
            role: None,
        });
        callers
    }

    async fn finish(self) {
        let _ = self.stop.send(true);
        self.service.shutdown().await;
    }
}

/// Status, error code (if any) and whether `x-request-id` was set.
async fn call(
    client: &reqwest::Client,
    base: &str,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<&Value>,
) -> (u16, Option<String>, bool) {
    let mut request = client.request(method.parse().unwrap(), format!("{base}{path}"));
    if let Some(key) = key {
        request = request.header("x-api-key", key);
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().await.expect("the server answers");
    let status = response.status().as_u16();
    let request_id = response.headers().contains_key("x-request-id");
    let streaming = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("text/event-stream"));
    // An event stream is not read: its status says enough.
    let code = if streaming {
        None
    } else {
        let text = response.text().await.unwrap_or_default();
        serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["error"]["code"].as_str().map(str::to_string))
    };
    (status, code, request_id)
}

/// Walks every caller × every route and returns each mismatch, described.
async fn walk_matrix(served: &Served) -> Vec<String> {
    let client = reqwest::Client::new();
    let callers = served.callers().await;
    let mut mismatches = Vec::new();
    for &(method, template, lowest) in ROUTES {
        for caller in &callers {
            let allowed = match (lowest, caller.role) {
                (Public, _) => true,
                (_, None) => false,
                (lowest, Some(role)) => access_of(role) >= lowest,
            };
            let (path, body) = served.request(method, template, allowed).await;
            let (status, code, request_id) = call(
                &client,
                &served.base,
                method,
                &path,
                caller.key.as_deref(),
                body.as_ref(),
            )
            .await;
            let got = format!("{status} {}", code.as_deref().unwrap_or("-"));
            let what = format!("{method} {template} as {}", caller.label);
            if !request_id {
                mismatches.push(format!("{what}: no x-request-id header ({got})"));
            }
            let problem = match (lowest, caller.role) {
                (Public, _) if !(200..300).contains(&status) => Some("2xx (public)".to_string()),
                (Public, _) => None,
                (_, None) if status != 401 || code.as_deref() != Some("unauthenticated") => {
                    Some("401 unauthenticated".to_string())
                }
                (_, None) => None,
                (lowest, Some(role)) if access_of(role) < lowest => (status != 403
                    || code.as_deref() != Some("forbidden"))
                .then(|| format!("403 forbidden ({role} is below {lowest:?})")),
                (_, Some(Role::Admin)) if !(200..300).contains(&status) => {
                    Some("2xx: an admin may do anything and the request is valid".to_string())
                }
                (_, Some(_))
                    if status == 401 || status == 403 || status == 404 || status == 405 =>
                {
                    Some("anything but 401/403 (and the route must exist)".to_string())
                }
                _ => None,
            };
            if let Some(expected) = problem {
                mismatches.push(format!("{what}: expected {expected}, got {got}"));
            }
        }
    }
    mismatches
}

fn report(backend: &str, mismatches: &[String]) {
    assert!(
        mismatches.is_empty(),
        "{} RBAC mismatches on {backend}:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_answers_each_role_as_the_table_says_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let served = Served::start(Config::from_data_dir(dir.path())).await;
    let mismatches = walk_matrix(&served).await;
    served.finish().await;
    report("SQLite", &mismatches);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_answers_each_role_as_the_table_says_on_postgres() {
    let database = common::PgDatabase::create();
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        database_url: Some(database.url.clone()),
        ..Config::from_data_dir(dir.path())
    };
    let served = Served::start(config).await;
    let mismatches = walk_matrix(&served).await;
    served.finish().await;
    drop(database);
    report("PostgreSQL", &mismatches);
}

/// `(METHOD, path)` of every `.route(...)` in the router's source.
fn routes_in_source() -> BTreeSet<(String, String)> {
    let source = include_str!("../src/routes.rs");
    let start = source
        .find("Router::new()")
        .expect("the router is built in routes.rs");
    let end = source[start..]
        .find(".method_not_allowed_fallback")
        .map_or(source.len(), |i| start + i);
    let mut found = BTreeSet::new();
    for part in source[start..end].split(".route(").skip(1) {
        let path = part
            .split('"')
            .nth(1)
            .expect("a route starts with its path literal");
        for method in ["get", "post", "put", "delete", "patch"] {
            let needle = format!("{method}(");
            let mut at = 0;
            while let Some(i) = part[at..].find(&needle) {
                let i = at + i;
                let before = part[..i].chars().last();
                if !before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                    found.insert((method.to_uppercase(), path.to_string()));
                }
                at = i + needle.len();
            }
        }
    }
    found
}

#[test]
fn the_table_lists_every_route_of_the_router_and_nothing_else() {
    let in_source = routes_in_source();
    assert!(
        in_source.len() > 20,
        "the router's routes were not found in routes.rs: {in_source:?}"
    );
    let in_table: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p, _)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(
        in_table.len(),
        ROUTES.len(),
        "the table lists a route twice"
    );
    let missing: Vec<_> = in_source.difference(&in_table).collect();
    let extra: Vec<_> = in_table.difference(&in_source).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "the RBAC table and the router differ; routes missing from the table: {missing:?}; \
         routes in the table the router does not have: {extra:?}"
    );
}

#[test]
fn every_route_in_the_table_is_documented_in_openapi() {
    let doc: Value = serde_json::from_str(include_str!("../src/openapi.json"))
        .expect("openapi.json is valid JSON");
    let mut problems = Vec::new();
    for &(method, path, lowest) in ROUTES {
        let Some(operation) = doc["paths"][path].get(method.to_lowercase()) else {
            problems.push(format!("{method} {path} is not documented"));
            continue;
        };
        if lowest == Public {
            continue;
        }
        for status in ["401", "403", "429"] {
            if operation["responses"].get(status).is_none() {
                problems.push(format!("{method} {path} does not document {status}"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
