//! Core service tests on SQLite: versions and conflicts, rollback, role checks, validation
//! and execution errors with their codes, output paging that never splits a character,
//! control of finished runs, crash recovery when a service opens, and API keys.

use runbook_core::{
    Actor, Config, CoreError, EngineConfig, ErrorKind, Escapes, RunbookQuery, Service,
};
use runbook_domain::{
    AuditOutcome, ControlAction, Execution, ExecutionStatus, Role, StepResult, StepStatus,
};
use runbook_store::{ControlOutcome, ControlRequest, SqliteStore, Store};
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};
use uuid::Uuid;

const PATIENCE: Duration = Duration::from_secs(30);

fn actor(name: &str, role: Role) -> Actor {
    Actor {
        name: name.to_string(),
        role,
        request_id: None,
    }
}

fn admin() -> Actor {
    actor("alice", Role::Admin)
}

fn config(data_dir: &Path) -> Config {
    let mut config = Config::from_data_dir(data_dir);
    config.engine = EngineConfig {
        stop_grace: Duration::from_secs(1),
        ..EngineConfig::default()
    };
    config
}

async fn open(data_dir: &Path) -> Service {
    Service::open(config(data_dir))
        .await
        .expect("the service opens")
}

/// A fresh service on SQLite in its own data directory (kept alive by the returned guard).
async fn service() -> (Service, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    (open(dir.path()).await, dir)
}

fn deploy_body(name: &str, script: &str) -> Value {
    json!({
        "name": name,
        "description": "Deploys *payments*",
        "tags": ["payments"],
        "blocks": [
            {"id": "intro", "kind": "instruction", "text": "Heads up"},
            {"id": "run", "kind": "command", "script": script}
        ]
    })
}

async fn create(service: &Service, body: Value) -> Uuid {
    service
        .create_runbook(&admin(), body)
        .await
        .expect("the runbook is valid")
        .id
}

/// Waits for the run's end, and checks that it is returned exactly as it is stored.
async fn wait_until_finished(service: &Service, id: Uuid) -> Execution {
    let execution = service.wait_for_end(&admin(), id, PATIENCE).await.unwrap();
    assert!(
        execution.status.is_finished(),
        "the run never finished: {execution:#?}"
    );
    let stored = service.get_execution(&admin(), id).await.unwrap();
    assert_eq!(
        serde_json::to_value(&execution).unwrap(),
        serde_json::to_value(&stored).unwrap(),
        "the run awaited differs from the run stored"
    );
    execution
}

async fn wait_until_step_runs(service: &Service, id: Uuid, index: usize) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let execution = service.get_execution(&admin(), id).await.unwrap();
        if execution.steps[index].status == StepStatus::Running {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "step {index} never started: {execution:#?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the run is in `status`.
async fn wait_for_status(service: &Service, id: Uuid, status: ExecutionStatus) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let execution = service.get_execution(&admin(), id).await.unwrap();
        if execution.status == status {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the run never became {status}: {execution:#?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn assert_code(result: Result<impl std::fmt::Debug, CoreError>, kind: ErrorKind, code: &str) {
    match result {
        Ok(value) => panic!("expected a `{code}` error, got {value:?}"),
        Err(error) => {
            assert_eq!(error.code(), code, "{error:?}");
            assert_eq!(error.kind(), kind, "{error:?}");
        }
    }
}

// ---- runbooks and versions ----

#[tokio::test]
async fn creating_a_runbook_stores_version_one() {
    let (service, _dir) = service().await;
    let created = service
        .create_runbook(&admin(), deploy_body("Deploy", "echo hi"))
        .await
        .unwrap();
    assert_eq!(created.version, 1);
    assert_eq!(created.updated_by, "alice");
    assert_eq!(created.draft.blocks.len(), 2);

    let loaded = service.get_runbook(&admin(), created.id).await.unwrap();
    assert_eq!(loaded, created);
    let versions = service.list_versions(&admin(), created.id).await.unwrap();
    assert_eq!(versions.len(), 1);
    assert_eq!(
        (versions[0].version, versions[0].created_by.as_str()),
        (1, "alice")
    );
    let page = service
        .list_runbooks(&admin(), RunbookQuery::default())
        .await
        .unwrap();
    assert_eq!(page.total, 1);
    assert_eq!(page.items[0].id, created.id);
}

#[tokio::test]
async fn a_stale_update_conflicts_and_leaves_the_runbook_unchanged() {
    let (service, _dir) = service().await;
    let id = create(&service, deploy_body("Deploy", "echo v1")).await;
    let editor = actor("bob", Role::Editor);

    let mut body = deploy_body("Deploy", "echo v2");
    body["version"] = json!(1);
    body["message"] = json!("second");
    let second = service.update_runbook(&editor, id, body).await.unwrap();
    assert_eq!((second.version, second.updated_by.as_str()), (2, "bob"));

    let mut stale = deploy_body("Clobbered", "echo stale");
    stale["version"] = json!(1);
    let result = service.update_runbook(&admin(), id, stale).await;
    assert!(
        matches!(
            result,
            Err(CoreError::VersionConflict {
                based_on: 1,
                current: 2
            })
        ),
        "{result:?}"
    );
    assert_eq!(result.unwrap_err().kind(), ErrorKind::Conflict);

    assert_eq!(service.get_runbook(&admin(), id).await.unwrap(), second);
    let versions = service.list_versions(&admin(), id).await.unwrap();
    assert_eq!(
        versions.iter().map(|v| v.version).collect::<Vec<_>>(),
        [2, 1]
    );
    assert_eq!(versions[0].message, "second");
}

#[tokio::test]
async fn rollback_creates_a_new_version_with_the_old_content() {
    let (service, _dir) = service().await;
    let id = create(&service, deploy_body("Deploy", "echo original")).await;
    let mut edit = deploy_body("Deploy (edited)", "echo edited");
    edit["version"] = json!(1);
    service.update_runbook(&admin(), id, edit).await.unwrap();

    let rolled = service.rollback(&admin(), id, 1).await.unwrap();
    assert_eq!(rolled.version, 3);
    let first = service.get_version(&admin(), id, 1).await.unwrap();
    assert_eq!(rolled.draft, first.draft);
    assert_eq!(
        service.get_runbook(&admin(), id).await.unwrap().draft,
        first.draft
    );
    let second = service.get_version(&admin(), id, 2).await.unwrap();
    assert_ne!(second.draft, first.draft, "history is not rewritten");
    let versions = service.list_versions(&admin(), id).await.unwrap();
    assert_eq!(versions.len(), 3);
    assert!(versions[0].message.contains("version 1"), "{versions:?}");

    assert_code(
        service.rollback(&admin(), id, 9).await,
        ErrorKind::NotFound,
        "not_found",
    );
}

#[tokio::test]
async fn deleted_runbooks_are_gone() {
    let (service, _dir) = service().await;
    let id = create(&service, deploy_body("Deploy", "echo hi")).await;
    service.delete_runbook(&admin(), id).await.unwrap();
    assert_code(
        service.get_runbook(&admin(), id).await,
        ErrorKind::NotFound,
        "not_found",
    );
    assert_code(
        service.get_version(&admin(), id, 1).await,
        ErrorKind::NotFound,
        "not_found",
    );
    assert_code(
        service.delete_runbook(&admin(), id).await,
        ErrorKind::NotFound,
        "not_found",
    );
}

// ---- roles ----

#[tokio::test]
async fn roles_limit_what_each_actor_may_do() {
    let (service, _dir) = service().await;
    let viewer = actor("vic", Role::Viewer);
    let operator = actor("olga", Role::Operator);
    let editor = actor("ed", Role::Editor);
    let id = create(&service, deploy_body("Deploy", "true")).await;
    let mut update = deploy_body("Deploy", "false");
    update["version"] = json!(1);

    for who in [&viewer, &operator] {
        assert_code(
            service
                .create_runbook(who, deploy_body("Mine", "true"))
                .await,
            ErrorKind::Forbidden,
            "forbidden",
        );
        assert_code(
            service.update_runbook(who, id, update.clone()).await,
            ErrorKind::Forbidden,
            "forbidden",
        );
        assert_code(
            service.rollback(who, id, 1).await,
            ErrorKind::Forbidden,
            "forbidden",
        );
        assert_code(
            service.delete_runbook(who, id).await,
            ErrorKind::Forbidden,
            "forbidden",
        );
    }
    let refused = service.execute(&viewer, id, Value::Null).await;
    assert!(
        matches!(
            refused,
            Err(CoreError::Forbidden {
                needed: Role::Operator,
                actual: Role::Viewer
            })
        ),
        "{refused:?}"
    );
    for who in [&viewer, &operator, &editor] {
        assert_code(
            service.create_api_key(who, "mine", Role::Admin).await,
            ErrorKind::Forbidden,
            "forbidden",
        );
    }

    // What each role may do, it can.
    service.get_runbook(&viewer, id).await.unwrap();
    service.list_versions(&viewer, id).await.unwrap();
    let run = service.execute(&operator, id, Value::Null).await.unwrap();
    assert_eq!(run.started_by, "olga");
    assert_eq!(run.status, ExecutionStatus::Queued);
    let finished = wait_until_finished(&service, run.id).await;
    assert_eq!(finished.status, ExecutionStatus::Succeeded);
    service.get_execution(&viewer, run.id).await.unwrap();
    service.read_output(&viewer, run.id, 0, 1024).await.unwrap();
    assert_code(
        service.control(&viewer, run.id, ControlAction::Stop).await,
        ErrorKind::Forbidden,
        "forbidden",
    );
    service
        .update_runbook(&editor, id, update)
        .await
        .expect("an editor edits");
    assert_eq!(
        service
            .list_runbooks(&viewer, RunbookQuery::default())
            .await
            .unwrap()
            .total,
        1
    );
}

// ---- validation and execution errors ----

#[tokio::test]
async fn invalid_runbooks_are_rejected_with_their_code() {
    let (service, _dir) = service().await;
    let cases = [
        (
            "unknown_block_kind",
            json!({"name": "x", "blocks": [{"id": "a", "kind": "teleport"}]}),
        ),
        (
            "duplicate_block_id",
            json!({"name": "x", "blocks": [
                {"id": "a", "kind": "timer", "seconds": 1},
                {"id": "a", "kind": "command", "script": "true"}
            ]}),
        ),
        ("empty_name", json!({"name": "   ", "blocks": []})),
    ];
    for (code, body) in cases {
        let result = service.create_runbook(&admin(), body).await;
        assert!(matches!(result, Err(CoreError::Invalid(_))), "{result:?}");
        assert_code(result, ErrorKind::Invalid, code);
    }
    let page = service
        .list_runbooks(&admin(), RunbookQuery::default())
        .await
        .unwrap();
    assert_eq!(page.total, 0, "nothing invalid was stored");

    // Updates go through the same rules, and a rejected update changes nothing.
    let id = create(&service, deploy_body("Deploy", "true")).await;
    let result = service
        .update_runbook(
            &admin(),
            id,
            json!({"name": "", "version": 1, "blocks": []}),
        )
        .await;
    assert!(matches!(result, Err(CoreError::Invalid(_))), "{result:?}");
    assert_code(result, ErrorKind::Invalid, "empty_name");
    assert_eq!(service.get_runbook(&admin(), id).await.unwrap().version, 1);
}

#[tokio::test]
async fn text_with_a_nul_character_is_rejected_as_invalid() {
    // PostgreSQL cannot store U+0000 in TEXT or JSONB: accepting it would make the same
    // request succeed on SQLite and fail with an internal error on PostgreSQL.
    let (service, _dir) = service().await;
    let result = service
        .create_runbook(&admin(), deploy_body("Deploy", "echo a\u{0}b"))
        .await;
    assert!(
        matches!(result, Err(CoreError::Invalid(_))),
        "expected a validation error, got {result:?}"
    );
}

#[tokio::test]
async fn executing_checks_parameters() {
    let (service, _dir) = service().await;
    let id = create(
        &service,
        json!({
            "name": "Restart",
            "params": [
                {"name": "service", "type": "string", "required": true},
                {"name": "replicas", "type": "number", "default": 2}
            ],
            "blocks": [{"id": "run", "kind": "command", "script": "true"}]
        }),
    )
    .await;
    assert_code(
        service.execute(&admin(), id, json!({"params": {}})).await,
        ErrorKind::Invalid,
        "missing_param",
    );
    assert_code(
        service
            .execute(&admin(), id, json!({"params": {"service": null}}))
            .await,
        ErrorKind::Invalid,
        "missing_param",
    );
    assert_code(
        service
            .execute(
                &admin(),
                id,
                json!({"params": {"service": "x", "colour": "red"}}),
            )
            .await,
        ErrorKind::Invalid,
        "unknown_param",
    );
    assert_code(
        service
            .execute(&admin(), id, json!({"params": {"service": 7}}))
            .await,
        ErrorKind::Invalid,
        "invalid_param",
    );
    let stored = service
        .list_executions(&admin(), Default::default())
        .await
        .unwrap();
    assert_eq!(stored.total, 0, "refused runs are not stored");

    let run = service
        .execute(&admin(), id, json!({"params": {"service": "payments"}}))
        .await
        .unwrap();
    assert_eq!(
        Value::Object(run.params.clone()),
        json!({"service": "payments", "replicas": 2}),
        "defaults are filled in"
    );
    wait_until_finished(&service, run.id).await;

    // Each refusal is in the audit trail with its code; the start and the end of the
    // run that happened are there with it.
    let starts = audit_of(&service, "execution.start").await;
    let outcomes: Vec<(AuditOutcome, String)> = starts
        .iter()
        .rev()
        .map(|entry| (entry.outcome, entry.target.clone().unwrap_or_default()))
        .collect();
    let refused = (AuditOutcome::Failure, format!("runbook:{id}"));
    let started = (AuditOutcome::Success, format!("execution:{}", run.id));
    assert_eq!(
        outcomes,
        [
            refused.clone(),
            refused.clone(),
            refused.clone(),
            refused,
            started
        ]
    );
    assert!(starts[4]
        .detail
        .as_deref()
        .unwrap()
        .contains("missing_param"));
    assert!(starts[0]
        .detail
        .as_deref()
        .unwrap()
        .contains(&id.to_string()));
    let finishes = audit_of(&service, "execution.finish").await;
    assert_eq!(finishes.len(), 1);
    assert_eq!(
        finishes[0].target.as_deref(),
        Some(format!("execution:{}", run.id).as_str())
    );
    assert_eq!(finishes[0].outcome, AuditOutcome::Success);
    assert_eq!(finishes[0].actor, "alice");
}

#[tokio::test]
async fn numbers_given_as_floats_or_text_run_as_the_numbers_they_name() {
    let (service, _dir) = service().await;
    let id = create(
        &service,
        json!({
            "name": "Scale",
            "params": [
                {"name": "Replicas", "type": "number", "required": true},
                {"name": "count", "type": "number", "default": 3.0},
                {"name": "note", "type": "string", "default": ""}
            ],
            "blocks": [{"id": "run", "kind": "command",
                        "script": "echo n={{ params.Replicas }} c={{ params.count }}"}]
        }),
    )
    .await;
    for (given, expected) in [
        (json!("1e3"), json!(1000)),
        (json!(" 5 "), json!(5)),
        (json!(5.0), json!(5)),
        (json!(-2e0), json!(-2)),
        (json!(1.5), json!(1.5)),
    ] {
        let run = service
            .execute(&admin(), id, json!({"params": {"Replicas": given}}))
            .await
            .unwrap();
        assert_eq!(run.params["Replicas"], expected, "given {given}");
        assert_eq!(run.params["count"], json!(3), "a default of 3.0 is 3");
        let done = wait_until_finished(&service, run.id).await;
        assert_eq!(
            done.steps[0].detail.stdout,
            format!("n={expected} c=3\n"),
            "given {given}"
        );
    }

    // A refusal names the parameter as it is declared.
    let refused = service
        .execute(&admin(), id, json!({"params": {"Replicas": "five"}}))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), "invalid_param");
    assert_eq!(refused.kind(), ErrorKind::Invalid);
    assert!(
        refused.to_string().contains("`Replicas` must be a number"),
        "{refused}"
    );
    // A value too long for any script is refused before it is stored.
    assert_code(
        service
            .execute(
                &admin(),
                id,
                json!({"params": {"Replicas": 1, "note": "x".repeat(65 * 1024)}}),
            )
            .await,
        ErrorKind::Invalid,
        "param_too_long",
    );
    let stored = service
        .list_executions(&admin(), Default::default())
        .await
        .unwrap();
    assert_eq!(stored.total, 5, "refused runs are not stored");
}

#[tokio::test]
async fn a_refused_create_is_audited_with_a_target() {
    let (service, _dir) = service().await;
    let viewer = actor("victor", Role::Viewer);
    assert_code(
        service
            .create_runbook(&viewer, deploy_body("Deploy", "true"))
            .await,
        ErrorKind::Forbidden,
        "forbidden",
    );
    assert_code(
        service
            .create_runbook(&admin(), deploy_body(" ", "true"))
            .await,
        ErrorKind::Invalid,
        "empty_name",
    );
    let id = create(&service, deploy_body("Deploy", "true")).await;
    let records = audit_of(&service, "runbook.create").await;
    let seen: Vec<(&str, AuditOutcome, Option<&str>)> = records
        .iter()
        .rev()
        .map(|r| (r.actor.as_str(), r.outcome, r.target.as_deref()))
        .collect();
    let created = format!("runbook:{id}");
    assert_eq!(
        seen,
        [
            ("victor", AuditOutcome::Denied, Some("runbook:new")),
            ("alice", AuditOutcome::Failure, Some("runbook:new")),
            ("alice", AuditOutcome::Success, Some(created.as_str())),
        ]
    );
}

#[tokio::test]
async fn refused_user_and_key_creations_are_audited_with_a_target() {
    let (service, _dir) = service().await;
    let viewer = actor("victor", Role::Viewer);
    assert_code(
        service
            .create_user(&viewer, json!({"name": "mallory", "role": "admin"}))
            .await,
        ErrorKind::Forbidden,
        "forbidden",
    );
    assert_code(
        service.create_key(&viewer, json!({"name": "ci"})).await,
        ErrorKind::Forbidden,
        "forbidden",
    );
    assert_code(
        service.create_key(&admin(), json!({"name": 7})).await,
        ErrorKind::Invalid,
        "invalid_type",
    );
    for (action, expected) in [
        ("user.create", vec![Some("user:new")]),
        ("key.create", vec![Some("key:new"), Some("key:new")]),
    ] {
        let targets: Vec<Option<String>> = audit_of(&service, action)
            .await
            .into_iter()
            .map(|record| record.target)
            .collect();
        let expected: Vec<Option<String>> =
            expected.into_iter().map(|t| t.map(String::from)).collect();
        assert_eq!(targets, expected, "{action}");
    }
}

#[tokio::test]
async fn a_runbook_is_found_by_its_exact_name_among_more_than_a_page_of_near_names() {
    let (service, _dir) = service().await;
    // 500 names that contain "deploy" and sort before it: the exact one is on page 2.
    for i in 0..500 {
        create(&service, deploy_body(&format!("a deploy {i:03}"), "true")).await;
    }
    let id = create(&service, deploy_body("deploy", "true")).await;
    let found = service.find_runbook(&admin(), "deploy").await.unwrap();
    assert_eq!(found.id, id);
    assert_code(
        service.find_runbook(&admin(), "deploy 999").await,
        ErrorKind::NotFound,
        "not_found",
    );
}

/// The audit records of `action`, newest first.
async fn audit_of(service: &Service, action: &str) -> Vec<runbook_domain::AuditEntry> {
    service
        .list_audit(
            &admin(),
            runbook_core::AuditQuery {
                action: Some(action.into()),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .items
}

#[tokio::test]
async fn a_run_stopped_between_steps_is_retried_from_the_first_step_it_never_reached() {
    use runbook_domain::Branch;
    let (service, dir) = service().await;
    let id = create(
        &service,
        json!({"name": "Branchy", "blocks": [
            {"id": "one", "kind": "command", "script": "true"},
            {"id": "check", "kind": "conditional", "expr": "true",
             "then": [{"id": "yes", "kind": "command", "script": "true"}],
             "else": [{"id": "no", "kind": "command", "script": "true"}]},
            {"id": "last", "kind": "command", "script": "true"}
        ]}),
    )
    .await;
    let store = SqliteStore::connect(&config(dir.path()).effective_database_url())
        .await
        .unwrap();
    // Runs stopped while paused between steps, as stored: what they never reached is
    // skipped, like the branch a conditional did not take.
    let stopped = |statuses: [StepStatus; 5], branch: Option<Branch>| {
        let now = chrono::Utc::now();
        let ids = ["one", "check", "yes", "no", "last"];
        let steps = ids
            .iter()
            .zip(statuses)
            .map(|(block, status)| {
                let mut step = StepResult {
                    status,
                    ..StepResult::pending(*block)
                };
                if *block == "check" {
                    step.detail.branch = branch;
                }
                step
            })
            .collect();
        Execution {
            id: Uuid::new_v4(),
            runbook_id: id,
            runbook_version: 1,
            runbook_name: "Branchy".to_string(),
            status: ExecutionStatus::Stopped,
            params: Default::default(),
            started_by: "alice".to_string(),
            created_at: now,
            started_at: Some(now),
            finished_at: Some(now),
            steps,
            retry_of: None,
            retry_from: None,
            stop_requested: None,
        }
    };
    use StepStatus::{Skipped, Succeeded};
    let before_the_branch = stopped([Succeeded, Skipped, Skipped, Skipped, Skipped], None);
    let after_the_branch = stopped(
        [Succeeded, Succeeded, Succeeded, Skipped, Skipped],
        Some(Branch::Then),
    );
    for (previous, from, reused) in [
        (&before_the_branch, "check", 1),
        (&after_the_branch, "last", 4),
    ] {
        store.insert_execution(previous, None, None).await.unwrap();
        let retry = service.retry(&admin(), previous.id).await.unwrap();
        assert_eq!(retry.retry_from.as_deref(), Some(from));
        assert_eq!(
            retry.steps.iter().filter(|s| s.detail.reused).count(),
            reused,
            "{:#?}",
            retry.steps
        );
        let retry = wait_until_finished(&service, retry.id).await;
        assert_eq!(retry.status, ExecutionStatus::Succeeded, "{retry:#?}");
        assert_eq!(retry.steps[4].status, StepStatus::Succeeded);
        assert_eq!(
            retry.steps[3].status,
            StepStatus::Skipped,
            "the else branch"
        );
    }
}

#[tokio::test]
async fn a_failed_run_is_retried_from_the_failed_step_reusing_earlier_results() {
    let (service, dir) = service().await;
    let work = dir.path().display().to_string();
    let id = create(
        &service,
        json!({"name": "Flaky", "blocks": [
            {"id": "one", "kind": "command",
             "script": format!("echo ran >> {work}/one.log; echo COUNT=7 >> \"$RUNBOOK_OUTPUT\"")},
            {"id": "two", "kind": "command",
             "script": format!("if [ -f {work}/fixed ]; then echo fixed; else touch {work}/fixed; exit 3; fi")},
            {"id": "three", "kind": "command", "script": "echo count={{ steps.one.outputs.COUNT }}"}
        ]}),
    )
    .await;
    let first = service.execute(&admin(), id, Value::Null).await.unwrap();
    let first = wait_until_finished(&service, first.id).await;
    assert_eq!(first.status, ExecutionStatus::Failed);
    assert_eq!(first.steps[0].detail.outputs["COUNT"], "7");

    let operator = actor("olga", Role::Operator).with_request_id("req-retry");
    assert_code(
        service.retry(&actor("vic", Role::Viewer), first.id).await,
        ErrorKind::Forbidden,
        "forbidden",
    );
    let retry = service.retry(&operator, first.id).await.unwrap();
    assert_eq!(retry.retry_of, Some(first.id));
    assert_eq!(retry.retry_from.as_deref(), Some("two"));
    assert_eq!(retry.started_by, "olga");
    let retry = wait_until_finished(&service, retry.id).await;
    assert_eq!(retry.status, ExecutionStatus::Succeeded, "{retry:#?}");
    assert!(retry.steps[0].detail.reused);
    assert_eq!(retry.steps[0].status, StepStatus::Succeeded);
    assert!(!retry.steps[1].detail.reused && !retry.steps[2].detail.reused);
    let log = std::fs::read_to_string(dir.path().join("one.log")).unwrap();
    assert_eq!(log, "ran\n", "the reused step did not run again");
    let console = service
        .read_output(&admin(), retry.id, 0, 1 << 20)
        .await
        .unwrap()
        .text;
    assert!(console.contains("fixed"), "{console}");
    assert!(
        console.contains("count=7"),
        "later steps see the reused step's outputs: {console}"
    );

    assert_code(
        service.retry(&admin(), retry.id).await,
        ErrorKind::Conflict,
        "invalid_state",
    );
    let retries = audit_of(&service, "execution.retry").await;
    let seen: Vec<(&str, AuditOutcome, Option<String>)> = retries
        .iter()
        .rev()
        .map(|entry| (entry.actor.as_str(), entry.outcome, entry.target.clone()))
        .collect();
    assert_eq!(
        seen,
        [
            (
                "vic",
                AuditOutcome::Denied,
                Some(format!("execution:{}", first.id))
            ),
            (
                "olga",
                AuditOutcome::Success,
                Some(format!("execution:{}", retry.id))
            ),
            (
                "alice",
                AuditOutcome::Failure,
                Some(format!("execution:{}", retry.id))
            ),
        ]
    );
    let detail: Value = serde_json::from_str(retries[1].detail.as_deref().unwrap()).unwrap();
    assert_eq!(detail, json!({"retry_of": first.id, "retry_from": "two"}));
    assert_eq!(retries[1].request_id.as_deref(), Some("req-retry"));
    // The retry's end is recorded for the one who retried it.
    let finish = audit_of(&service, "execution.finish")
        .await
        .into_iter()
        .find(|entry| entry.target == Some(format!("execution:{}", retry.id)))
        .expect("the retry's end is recorded");
    assert_eq!(
        (finish.actor.as_str(), finish.outcome),
        ("olga", AuditOutcome::Success)
    );
}

#[tokio::test]
async fn a_retry_chain_runs_its_remaining_steps_once_at_a_time() {
    let (service, dir) = service().await;
    let count = dir.path().join("attempts");
    // Fails the first two times; the third attempt runs until stopped.
    let id = create(
        &service,
        json!({"name": "Stubborn", "blocks": [
            {"id": "one", "kind": "command", "script": "true"},
            {"id": "fix", "kind": "command", "script": format!(
                "echo x >> '{0}'; [ $(wc -l < '{0}') -ge 3 ] || exit 5; sleep 300",
                count.display())}
        ]}),
    )
    .await;
    let original = service.execute(&admin(), id, Value::Null).await.unwrap();
    let original = wait_until_finished(&service, original.id).await;
    assert_eq!(original.status, ExecutionStatus::Failed);
    let first = service.retry(&admin(), original.id).await.unwrap();
    let first = wait_until_finished(&service, first.id).await;
    assert_eq!(first.status, ExecutionStatus::Failed);
    // The failed retry is retried: that retry of a retry runs.
    let second = service.retry(&admin(), first.id).await.unwrap();
    wait_until_step_runs(&service, second.id, 1).await;

    // Retrying the original again would run `fix` a second time beside it.
    for previous in [original.id, first.id] {
        assert_code(
            service.retry(&admin(), previous).await,
            ErrorKind::Conflict,
            "retry_in_progress",
        );
    }
    let attempts = std::fs::read_to_string(&count).unwrap();
    assert_eq!(attempts.lines().count(), 3, "no other attempt ran");
    service
        .control(&admin(), second.id, ControlAction::Stop)
        .await
        .unwrap();
    let second = wait_until_finished(&service, second.id).await;
    assert_eq!(second.status, ExecutionStatus::Stopped);
}

#[tokio::test]
async fn a_retry_inside_a_branch_of_an_edited_runbook_runs_its_version_with_its_results() {
    let (service, dir) = service().await;
    let work = dir.path().display().to_string();
    let body = |fix: &str| {
        json!({"name": "Branchy fix",
            "params": [{"name": "env", "type": "string", "default": "prod"}],
            "blocks": [
            {"id": "probe", "kind": "command", "script": "echo LEVEL=3 >> \"$RUNBOOK_OUTPUT\""},
            {"id": "gate", "kind": "conditional", "expr": "steps.probe.outputs.LEVEL == '3'",
             "then": [
                {"id": "fix", "kind": "command", "script": fix},
                {"id": "after", "kind": "command",
                 "script": "echo after={{ steps.probe.outputs.LEVEL }}-{{ steps.probe.exit_code }}-{{ params.env }}"}
             ],
             "else": [{"id": "never", "kind": "command", "script": "exit 9"}]}
        ]})
    };
    let fix =
        format!("echo v1 >> {work}/fix.log; [ -f {work}/ok ] || {{ touch {work}/ok; exit 2; }}");
    let id = create(&service, body(&fix)).await;
    let first = service
        .execute(&admin(), id, json!({"params": {"env": "staging"}}))
        .await
        .unwrap();
    let first = wait_until_finished(&service, first.id).await;
    assert_eq!(first.status, ExecutionStatus::Failed);
    // Edited since: the retry still runs version 1's blocks.
    let mut edit = body(&format!("echo v2 >> {work}/fix.log"));
    edit["version"] = json!(1);
    service.update_runbook(&admin(), id, edit).await.unwrap();

    let retry = service.retry(&admin(), first.id).await.unwrap();
    assert_eq!(retry.retry_from.as_deref(), Some("fix"));
    assert_eq!(retry.runbook_version, 1);
    assert_eq!(retry.params, first.params);
    let retry = wait_until_finished(&service, retry.id).await;
    assert_eq!(retry.status, ExecutionStatus::Succeeded, "{retry:#?}");
    let log = std::fs::read_to_string(dir.path().join("fix.log")).unwrap();
    assert_eq!(log, "v1\nv1\n");
    let statuses: Vec<_> = retry
        .steps
        .iter()
        .map(|s| (s.block_id.as_str(), s.status))
        .collect();
    assert_eq!(
        statuses,
        [
            ("probe", StepStatus::Succeeded),
            ("gate", StepStatus::Succeeded),
            ("fix", StepStatus::Succeeded),
            ("after", StepStatus::Succeeded),
            ("never", StepStatus::Skipped),
        ]
    );
    let console = service
        .read_output(&admin(), retry.id, 0, 1 << 20)
        .await
        .unwrap()
        .text;
    assert!(console.contains("after=3-0-staging"), "{console}");
}

#[tokio::test]
async fn a_run_stopped_at_an_acknowledgement_is_retried_from_it_and_waits_again() {
    let (service, _dir) = service().await;
    let id = create(
        &service,
        json!({"name": "Ack", "blocks": [
            {"id": "one", "kind": "command", "script": "echo DONE=1 >> \"$RUNBOOK_OUTPUT\""},
            {"id": "drain", "kind": "instruction", "text": "Drain {{ steps.one.outputs.DONE }}", "confirm": true},
            {"id": "last", "kind": "command", "script": "true"}
        ]}),
    )
    .await;
    let waiting = |run: Uuid| wait_for_status(&service, run, ExecutionStatus::Waiting);
    let first = service.execute(&admin(), id, Value::Null).await.unwrap();
    waiting(first.id).await;
    service
        .control(&admin(), first.id, ControlAction::Stop)
        .await
        .unwrap();
    let first = wait_until_finished(&service, first.id).await;
    assert_eq!(first.status, ExecutionStatus::Stopped);

    let retry = service.retry(&admin(), first.id).await.unwrap();
    assert_eq!(retry.retry_from.as_deref(), Some("drain"));
    waiting(retry.id).await;
    let prompt = service.waiting_step(&admin(), retry.id).await.unwrap();
    assert_eq!(
        (prompt.block_id.as_str(), prompt.text.as_str()),
        ("drain", "Drain 1")
    );
    service
        .control(&admin(), retry.id, ControlAction::Acknowledge)
        .await
        .unwrap();
    let retry = wait_until_finished(&service, retry.id).await;
    assert_eq!(retry.status, ExecutionStatus::Succeeded, "{retry:#?}");
}

// ---- output ----

/// Reads a run's whole console page by page, checking every page on the way.
async fn read_in_pages(service: &Service, id: Uuid, limit: u64) -> String {
    let mut offset = 0;
    let mut text = String::new();
    for _ in 0..100_000 {
        let page = service
            .read_output(&admin(), id, offset, limit)
            .await
            .unwrap();
        assert_eq!(page.offset, offset);
        assert!(
            !page.text.contains('\u{FFFD}'),
            "a page split a character (offset {offset}, limit {limit})"
        );
        assert_eq!(
            page.next_offset - page.offset,
            page.text.len() as u64,
            "next_offset counts exactly the bytes of the text"
        );
        assert!(page.text.len() as u64 <= limit.max(4));
        text.push_str(&page.text);
        if page.complete {
            return text;
        }
        assert!(
            page.next_offset > offset,
            "paging must progress (offset {offset}, limit {limit})"
        );
        offset = page.next_offset;
    }
    panic!("paging never completed with limit {limit}");
}

#[tokio::test]
async fn output_pages_never_split_a_character() {
    let (service, _dir) = service().await;
    let id = create(
        &service,
        deploy_body("Euros", "printf '€%.0s' $(seq 1 3000); echo; echo end"),
    )
    .await;
    let run = service.execute(&admin(), id, Value::Null).await.unwrap();
    let finished = wait_until_finished(&service, run.id).await;
    assert_eq!(finished.status, ExecutionStatus::Succeeded);

    let whole = service
        .read_output(&admin(), run.id, 0, 1 << 20)
        .await
        .unwrap();
    assert!(whole.complete);
    assert_eq!(whole.next_offset, whole.text.len() as u64);
    assert!(whole.text.contains(&format!("{}\nend\n", "€".repeat(3000))));

    for limit in [1001, 7, 64 * 1024 + 1] {
        assert_eq!(read_in_pages(&service, run.id, limit).await, whole.text);
    }

    // An offset inside a character starts the page at the next whole one.
    let euro = whole.text.find('€').unwrap() as u64;
    let inside = service
        .read_output(&admin(), run.id, euro + 1, 10)
        .await
        .unwrap();
    assert!(inside.text.starts_with('€'), "{:?}", inside.text);
    assert!(!inside.text.contains('\u{FFFD}'));
    assert!(!inside.complete);

    let past = service
        .read_output(&admin(), run.id, whole.next_offset + 10, 100)
        .await
        .unwrap();
    assert!(past.text.is_empty() && past.complete);
}

#[tokio::test]
async fn output_paging_progresses_even_with_tiny_limits() {
    let (service, _dir) = service().await;
    let id = create(&service, deploy_body("Euros", "printf '€€€'")).await;
    let run = service.execute(&admin(), id, Value::Null).await.unwrap();
    wait_until_finished(&service, run.id).await;
    let whole = service
        .read_output(&admin(), run.id, 0, 4096)
        .await
        .unwrap();
    for limit in [1, 2, 3] {
        assert_eq!(read_in_pages(&service, run.id, limit).await, whole.text);
    }
}

#[tokio::test]
async fn a_running_execution_reports_incomplete_output() {
    let (service, _dir) = service().await;
    let id = create(&service, deploy_body("Slow", "echo first; exec sleep 20")).await;
    let run = service.execute(&admin(), id, Value::Null).await.unwrap();
    wait_until_step_runs(&service, run.id, 1).await;
    let page = service
        .read_output(&admin(), run.id, 0, 4096)
        .await
        .unwrap();
    assert!(!page.complete, "a live run's console is not complete");

    service
        .control(&admin(), run.id, ControlAction::Stop)
        .await
        .unwrap();
    let finished = wait_until_finished(&service, run.id).await;
    assert_eq!(finished.status, ExecutionStatus::Stopped);
}

/// Answers every HTTP request on loopback with a small JSON body; returns its URL.
fn json_server() -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/status", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let body = r#"{"healthy": true, "zone": "eu-1", "replicas": [3, 4]}"#;
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Served-By: test\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    url
}

#[tokio::test]
async fn a_run_awaited_to_its_end_is_returned_exactly_as_stored_on_sqlite() {
    let (service, _dir) = service().await;
    every_kind_is_returned_as_stored(&service).await;
}

#[tokio::test]
async fn a_run_awaited_to_its_end_is_returned_exactly_as_stored_on_postgres() {
    let database = PostgresDatabase::create().await;
    let dir = tempfile::tempdir().unwrap();
    let service = Service::open(database.config(dir.path())).await.unwrap();
    every_kind_is_returned_as_stored(&service).await;
    drop(service);
    database.drop().await;
}

/// A database of its own on the test PostgreSQL server.
struct PostgresDatabase {
    admin: sqlx::PgConnection,
    name: String,
    url: String,
}

impl PostgresDatabase {
    async fn create() -> PostgresDatabase {
        use sqlx::Connection;
        let admin_url = std::env::var("RUNBOOK_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string());
        let name = format!("rbs_core_{}", Uuid::new_v4().simple());
        let mut admin = sqlx::PgConnection::connect(&admin_url)
            .await
            .unwrap_or_else(|error| {
                panic!(
                    "PostgreSQL is unreachable at {admin_url} ({error}): start it, or point \
                     RUNBOOK_TEST_POSTGRES_URL at a server where this user may CREATE DATABASE"
                )
            });
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .unwrap();
        let (base, query) = match admin_url.split_once('?') {
            Some((base, query)) => (base, format!("?{query}")),
            None => (admin_url.as_str(), String::new()),
        };
        let url = format!("{}/{name}{query}", &base[..base.rfind('/').unwrap()]);
        PostgresDatabase { admin, name, url }
    }

    /// Settings for a service on this database, its master key in `data_dir`.
    fn config(&self, data_dir: &Path) -> Config {
        let mut config = config(data_dir);
        config.database_url = Some(self.url.clone());
        config
    }

    async fn drop(mut self) {
        let _ = sqlx::query(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ))
        .execute(&mut self.admin)
        .await;
    }
}

/// Runs every kind of block (outputs, a failure that continues, an HTTP response with
/// its parsed body, a branch taken and one skipped, a failure that ends the run) and a
/// retry of it: each run awaited is the run stored.
async fn every_kind_is_returned_as_stored(service: &Service) {
    let url = json_server();
    let id = create(
        service,
        json!({
            "name": "Every kind",
            "params": [{"name": "who", "type": "string", "default": "ops"}],
            "blocks": [
                {"id": "read", "kind": "instruction", "text": "Hello {{ params.who }}"},
                {"id": "publish", "kind": "command",
                 "script": "echo out; echo err >&2; echo VERSION=42 >> \"$RUNBOOK_OUTPUT\"",
                 "env": {"GREETING": "hi"}},
                {"id": "flaky", "kind": "command", "script": "exit 3", "on_failure": "continue"},
                {"id": "probe", "kind": "api_call", "method": "GET", "url": url},
                {"id": "check", "kind": "conditional",
                 "expr": "steps.probe.json.healthy && steps.publish.exit_code == 0",
                 "then": [{"id": "wait", "kind": "timer", "seconds": 1}],
                 "else": [{"id": "never", "kind": "command", "script": "echo never"}]},
                {"id": "fail", "kind": "command", "script": "echo bye; exit 2"},
                {"id": "after", "kind": "command", "script": "true"}
            ]
        }),
    )
    .await;
    let run = service.execute(&admin(), id, Value::Null).await.unwrap();
    let ended = wait_until_finished(service, run.id).await;
    assert_eq!(ended.status, ExecutionStatus::Failed);
    let statuses: Vec<_> = ended.steps.iter().map(|step| step.status).collect();
    assert_eq!(
        statuses,
        [
            StepStatus::Succeeded,
            StepStatus::Succeeded,
            StepStatus::Failed,
            StepStatus::Succeeded,
            StepStatus::Succeeded,
            StepStatus::Succeeded,
            StepStatus::Skipped,
            StepStatus::Failed,
            StepStatus::Skipped,
        ]
    );
    assert!(ended.started_at.is_some() && ended.finished_at.is_some());
    assert_eq!(ended.steps[1].detail.outputs["VERSION"], "42");
    assert_eq!(ended.steps[3].http_status, Some(200));

    // A retry reuses what succeeded and is returned as stored too.
    let retry = service.retry(&admin(), run.id).await.unwrap();
    let retried = wait_until_finished(service, retry.id).await;
    assert_eq!(retried.retry_of, Some(run.id));
    assert!(retried.steps[0].detail.reused);
}

#[tokio::test]
async fn waiting_for_a_run_returns_it_once_everything_is_stored() {
    let (service, _dir) = service().await;
    let viewer = actor("vera", Role::Viewer);
    let id = create(
        &service,
        deploy_body("Slow end", "sleep 0.3; echo last line"),
    )
    .await;
    let run = service.execute(&admin(), id, Value::Null).await.unwrap();
    let ended = service
        .wait_for_end(&viewer, run.id, PATIENCE)
        .await
        .unwrap();
    assert_eq!(ended.status, ExecutionStatus::Succeeded);
    assert!(ended.finished_at.is_some());
    assert!(
        ended
            .steps
            .iter()
            .all(|step| step.status == StepStatus::Succeeded),
        "{:#?}",
        ended.steps
    );
    let console = service
        .read_output(&viewer, run.id, 0, 1 << 20)
        .await
        .unwrap();
    assert!(console.complete);
    assert!(console.text.contains("last line\n"), "{:?}", console.text);

    // Patience that runs out returns the run as it is, still going.
    let id = create(&service, deploy_body("Long", "exec sleep 20")).await;
    let run = service.execute(&admin(), id, Value::Null).await.unwrap();
    let asked = Instant::now();
    let live = service
        .wait_for_end(&viewer, run.id, Duration::from_millis(300))
        .await
        .unwrap();
    assert!(asked.elapsed() >= Duration::from_millis(300));
    assert!(!live.status.is_finished(), "{:?}", live.status);

    service
        .control(&admin(), run.id, ControlAction::Stop)
        .await
        .unwrap();
    let stopped = service
        .wait_for_end(&viewer, run.id, PATIENCE)
        .await
        .unwrap();
    assert_eq!(stopped.status, ExecutionStatus::Stopped);
    assert_eq!(stopped.steps[1].status, StepStatus::Stopped);
    // An ended run is returned at once.
    let again = service
        .wait_for_end(&viewer, run.id, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(again.status, ExecutionStatus::Stopped);

    assert_code(
        service
            .wait_for_end(&viewer, Uuid::new_v4(), PATIENCE)
            .await,
        ErrorKind::NotFound,
        "not_found",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn following_a_run_hears_only_it_however_much_another_run_writes() {
    use runbook_core::ExecutionEvent;
    use tokio::sync::broadcast::error::{RecvError, TryRecvError};
    let (service, _dir) = service().await;
    let viewer = actor("vera", Role::Viewer);
    let quiet = create(
        &service,
        json!({"name": "Quiet", "blocks": [
            {"id": "ask", "kind": "instruction", "text": "go on?", "confirm": true},
            {"id": "say", "kind": "command", "script": "echo quiet done"}
        ]}),
    )
    .await;
    // Far more reads (64 KiB at most each) than a subscriber may fall behind by.
    let loud = create(
        &service,
        deploy_body("Loud", "head -c 80000000 /dev/zero | tr '\\0' x"),
    )
    .await;
    let quiet_run = service.execute(&admin(), quiet, Value::Null).await.unwrap();
    let mut following = service
        .follow_execution(&viewer, quiet_run.id)
        .await
        .unwrap();
    assert_eq!(following.execution.id, quiet_run.id);
    let mut quiet_events = following.events.take().expect("the run is live here");
    let mut every_run = service.subscribe();

    let loud_run = service.execute(&admin(), loud, Value::Null).await.unwrap();
    let loud_run = wait_until_finished(&service, loud_run.id).await;
    assert_eq!(loud_run.status, ExecutionStatus::Succeeded);
    // The flood was big enough to overrun a subscriber to every run that did not read.
    assert!(
        matches!(every_run.try_recv(), Err(TryRecvError::Lagged(_))),
        "the loud run sent fewer events than a subscriber may miss"
    );

    service
        .control(&admin(), quiet_run.id, ControlAction::Acknowledge)
        .await
        .unwrap();
    let mut heard = Vec::new();
    loop {
        match tokio::time::timeout(PATIENCE, quiet_events.recv()).await {
            Ok(Ok(event)) => heard.push(event),
            Ok(Err(RecvError::Closed)) => break,
            Ok(Err(RecvError::Lagged(missed))) => {
                panic!("the quiet run's follower missed {missed} events")
            }
            Err(_) => panic!("the quiet run's events never closed; heard {heard:#?}"),
        }
    }
    assert!(
        heard.iter().all(|e| e.execution_id() == quiet_run.id),
        "{heard:#?}"
    );
    let console: String = heard
        .iter()
        .filter_map(|e| match e {
            ExecutionEvent::Output { text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    assert!(console.contains("quiet done"), "{console:?}");
    assert!(
        matches!(
            heard.last(),
            Some(ExecutionEvent::Status {
                status: ExecutionStatus::Succeeded,
                ..
            })
        ),
        "the last event is the final status: {heard:#?}"
    );

    // A finished run has no events to follow; an unknown one is not found.
    let finished = service
        .follow_execution(&viewer, quiet_run.id)
        .await
        .unwrap();
    assert_eq!(finished.execution.status, ExecutionStatus::Succeeded);
    assert!(finished.events.is_none());
    assert_code(
        service
            .follow_execution(&viewer, Uuid::new_v4())
            .await
            .map(|f| f.execution),
        ErrorKind::NotFound,
        "not_found",
    );
}

/// Every event of a followed run until its stream ends.
async fn hear_to_the_end(
    events: &mut (impl futures::Stream<Item = runbook_core::ExecutionEvent> + Unpin),
) -> Vec<runbook_core::ExecutionEvent> {
    use futures::StreamExt;
    let mut heard = Vec::new();
    loop {
        match tokio::time::timeout(PATIENCE, events.next()).await {
            Ok(Some(event)) => heard.push(event),
            Ok(None) => return heard,
            Err(_) => panic!("the stream never ended; heard {heard:#?}"),
        }
    }
}

/// A run another process executes (another server instance, the desktop app, a
/// terminal's `run`) is followed through what it stores: its steps, its console from
/// where the follower came in, its waits and its end, as a run executed here is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_executed_by_another_process_is_followed_through_what_it_stores() {
    use futures::StreamExt;
    use runbook_core::ExecutionEvent;
    let dir = tempfile::tempdir().unwrap();
    let (executor, follower) = (open(dir.path()).await, open(dir.path()).await);
    let id = create(
        &executor,
        json!({"name": "Elsewhere", "blocks": [
            {"id": "before", "kind": "command", "script": "echo told-before"},
            {"id": "go", "kind": "instruction", "text": "Go on?", "confirm": true},
            {"id": "count", "kind": "command", "script": "for i in 1 2 3; do echo line-$i; sleep 0.3; done"},
            {"id": "fail", "kind": "command", "script": "echo €uro; exit 3"}
        ]}),
    )
    .await;
    let run = executor.execute(&admin(), id, Value::Null).await.unwrap();
    wait_for_status(&follower, run.id, ExecutionStatus::Waiting).await;

    let following = follower
        .follow_execution(&actor("vera", Role::Viewer), run.id)
        .await
        .unwrap();
    assert_eq!(following.execution.status, ExecutionStatus::Waiting);
    assert!(following.events.is_none(), "no engine events here");
    let mut events = following.into_events();
    follower
        .control(&admin(), run.id, ControlAction::Acknowledge)
        .await
        .unwrap();
    let heard = hear_to_the_end(&mut events).await;

    assert!(heard.iter().all(|e| e.execution_id() == run.id));
    let statuses: Vec<ExecutionStatus> = heard
        .iter()
        .filter_map(|e| match e {
            ExecutionEvent::Status { status, .. } => Some(*status),
            _ => None,
        })
        .collect();
    assert_eq!(
        statuses,
        [ExecutionStatus::Running, ExecutionStatus::Failed],
        "{heard:#?}"
    );
    assert!(
        matches!(heard.last(), Some(ExecutionEvent::Status { .. })),
        "the final status comes last: {heard:#?}"
    );
    let started: Vec<&str> = heard
        .iter()
        .filter_map(|e| match e {
            ExecutionEvent::StepStarted { block_id, .. } => Some(block_id.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(
        started,
        ["count", "fail"],
        "steps started after the follower came in"
    );
    let finished: Vec<(&str, StepStatus, Option<i32>)> = heard
        .iter()
        .filter_map(|e| match e {
            ExecutionEvent::StepFinished {
                block_id,
                status,
                exit_code,
                ..
            } => Some((block_id.as_str(), *status, *exit_code)),
            _ => None,
        })
        .collect();
    assert_eq!(
        finished,
        [
            ("go", StepStatus::Succeeded, None),
            ("count", StepStatus::Succeeded, Some(0)),
            ("fail", StepStatus::Failed, Some(3)),
        ]
    );
    // A step's end is told after its last output (its footer), as here.
    let mut told = String::new();
    for event in &heard {
        match event {
            ExecutionEvent::Output { text, .. } => told.push_str(text),
            ExecutionEvent::StepFinished { block_id, .. } => assert!(
                told.contains(&format!("✔ {block_id}")) || told.contains(&format!("✘ {block_id}")),
                "{block_id} told finished before its footer: {told:?}"
            ),
            _ => {}
        }
    }
    // The console from where the follower came in, each piece where the last ended.
    let mut next = None;
    let mut console = String::new();
    for event in &heard {
        if let ExecutionEvent::Output { offset, text, .. } = event {
            if let Some(next) = next {
                assert_eq!(*offset, next, "{heard:#?}");
            }
            next = Some(offset + text.len() as u64);
            console.push_str(text);
        }
    }
    assert!(!console.contains("told-before"), "{console:?}");
    for line in ["line-1", "line-2", "line-3", "€uro"] {
        assert!(console.contains(line), "{line} missing from {console:?}");
    }
    let stored = follower
        .read_output(&admin(), run.id, 0, 1024 * 1024)
        .await
        .unwrap();
    assert!(
        stored.text.ends_with(&console),
        "the console told is the stored one's end"
    );
    assert_eq!(next, Some(stored.next_offset));

    // A finished run has nothing to follow.
    let finished = follower
        .follow_execution(&admin(), run.id)
        .await
        .unwrap()
        .into_events()
        .collect::<Vec<_>>()
        .await;
    assert!(finished.is_empty());
}

/// Hears `events` (kept in `heard`) until `wanted` picks one.
async fn hear_until<T>(
    events: &mut (impl futures::Stream<Item = runbook_core::ExecutionEvent> + Unpin),
    heard: &mut Vec<runbook_core::ExecutionEvent>,
    what: &str,
    wanted: impl Fn(&runbook_core::ExecutionEvent) -> Option<T>,
) -> T {
    use futures::StreamExt;
    loop {
        let event = tokio::time::timeout(PATIENCE, events.next())
            .await
            .unwrap_or_else(|_| panic!("no {what}; heard {heard:#?}"))
            .unwrap_or_else(|| panic!("the stream ended before {what}; heard {heard:#?}"));
        let picked = wanted(&event);
        heard.push(event);
        if let Some(picked) = picked {
            return picked;
        }
    }
}

/// A timer in a run another process executes counts down for its followers too, from
/// the time left the run stores as the timer starts, pauses and resumes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timer_run_elsewhere_counts_down_for_its_followers_and_holds_while_paused() {
    use futures::StreamExt;
    use runbook_core::ExecutionEvent;
    let dir = tempfile::tempdir().unwrap();
    let (executor, follower) = (open(dir.path()).await, open(dir.path()).await);
    let id = create(
        &executor,
        json!({"name": "Soak", "blocks": [
            {"id": "soak", "kind": "timer", "seconds": 30},
        ]}),
    )
    .await;
    let run = executor.execute(&admin(), id, Value::Null).await.unwrap();
    let following = follower.follow_execution(&admin(), run.id).await.unwrap();
    assert!(following.is_elsewhere());
    let mut events = following.into_events();
    let countdown = |event: &ExecutionEvent| match event {
        ExecutionEvent::Countdown {
            block_id,
            remaining_ms,
            total_ms,
            paused,
            ..
        } => {
            assert_eq!((block_id.as_str(), *total_ms), ("soak", 30_000));
            Some((*remaining_ms, *paused))
        }
        _ => None,
    };
    let mut heard = Vec::new();
    let first = hear_until(&mut events, &mut heard, "a countdown", countdown).await;
    assert!(
        !first.1 && first.0 > 20_000 && first.0 <= 30_000,
        "{first:?}"
    );
    follower
        .control(&admin(), run.id, ControlAction::Pause)
        .await
        .unwrap();
    let frozen = hear_until(&mut events, &mut heard, "a paused countdown", |event| {
        countdown(event)
            .filter(|(_, paused)| *paused)
            .map(|(left, _)| left)
    })
    .await;
    // Held while paused: the same time left, told again every second.
    let hold = Duration::from_millis(2200);
    let during = tokio::time::timeout(hold, async {
        while let Some(event) = events.next().await {
            heard.push(event);
        }
    })
    .await;
    assert!(
        during.is_err(),
        "the run did not end while paused: {heard:#?}"
    );
    let stored = follower.get_execution(&admin(), run.id).await.unwrap();
    let progress = stored.steps[0]
        .detail
        .timer
        .expect("the time left is stored");
    assert_eq!((progress.total_ms, progress.remaining_ms), (30_000, frozen));
    let retold = heard
        .iter()
        .filter_map(countdown)
        .filter(|told| *told == (frozen, true))
        .count();
    assert!(retold >= 2, "{heard:#?}");
    follower
        .control(&admin(), run.id, ControlAction::Resume)
        .await
        .unwrap();
    // Counting on from where it was paused.
    let resumed = hear_until(
        &mut events,
        &mut heard,
        "a countdown after the resume",
        |event| {
            countdown(event)
                .filter(|(_, paused)| !paused)
                .map(|(left, _)| left)
        },
    )
    .await;
    assert!(
        resumed <= frozen && frozen - resumed < 1500,
        "on from where it was paused ({frozen} ms), not {resumed} ms"
    );
    follower
        .control(&admin(), run.id, ControlAction::Stop)
        .await
        .unwrap();
    heard.extend(hear_to_the_end(&mut events).await);
    let told: Vec<(u64, bool)> = heard.iter().filter_map(countdown).collect();
    assert!(
        told.windows(2).all(|pair| pair[1].0 <= pair[0].0),
        "time left never grows: {told:?}"
    );
    assert!(
        told.iter()
            .filter(|(_, paused)| *paused)
            .all(|(left, _)| *left == frozen),
        "{told:?}"
    );
    assert!(
        matches!(
            heard.last(),
            Some(ExecutionEvent::Status {
                status: ExecutionStatus::Stopped,
                ..
            })
        ),
        "{heard:#?}"
    );
    // The stopped timer keeps the time it had left.
    let stopped = follower.get_execution(&admin(), run.id).await.unwrap();
    let left = stopped.steps[0].detail.timer.unwrap().remaining_ms;
    assert!(
        left > 20_000 && left <= resumed,
        "{left} ms left at the stop"
    );
}

/// A stop asked for from another process is on the run for every view while its
/// command gets its grace period: who asked, when, in the run's data, its events and
/// its console.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_under_way_is_seen_with_who_asked_from_every_process() {
    use runbook_core::ExecutionEvent;
    let dir = tempfile::tempdir().unwrap();
    let (executor, remote) = (open(dir.path()).await, open(dir.path()).await);
    let id = create(
        &executor,
        json!({"name": "Drain slowly", "blocks": [{
            "id": "drain", "kind": "command", "stop_grace_secs": 30,
            "script": "trap 'sleep 1.5; echo drained; exit 0' TERM; echo started; while true; do sleep 0.1; done"
        }]}),
    )
    .await;
    let run = executor.execute(&admin(), id, Value::Null).await.unwrap();
    wait_until_step_runs(&remote, run.id, 0).await;
    let before = remote.get_execution(&admin(), run.id).await.unwrap();
    assert_eq!(before.stop_requested, None);
    let mut events = remote
        .follow_execution(&actor("vera", Role::Viewer), run.id)
        .await
        .unwrap()
        .into_events();

    let bob = actor("bob", Role::Operator);
    let answered = remote
        .control(&bob, run.id, ControlAction::Stop)
        .await
        .unwrap();
    assert_eq!(
        answered.stop_requested.as_ref().map(|r| r.by.as_str()),
        Some("bob")
    );
    // While the command cleans up, every process reads the run as stopping, bob's stop.
    let stopping = executor.get_execution(&admin(), run.id).await.unwrap();
    assert_eq!(stopping.status, ExecutionStatus::Running);
    assert_eq!(
        stopping.stop_requested.as_ref().map(|r| r.by.as_str()),
        Some("bob")
    );
    let heard = hear_to_the_end(&mut events).await;
    let told = heard
        .iter()
        .position(|e| matches!(e, ExecutionEvent::StopRequested { by, .. } if by == "bob"))
        .unwrap_or_else(|| panic!("no stop request told: {heard:#?}"));
    assert!(
        matches!(
            heard.last(),
            Some(ExecutionEvent::Status {
                status: ExecutionStatus::Stopped,
                ..
            })
        ),
        "{heard:#?}"
    );
    assert!(told < heard.len() - 1);

    let stopped = wait_until_finished(&executor, run.id).await;
    assert_eq!(stopped.status, ExecutionStatus::Stopped);
    assert_eq!(
        stopped.stop_requested, stopping.stop_requested,
        "kept as first stored"
    );
    let console = remote
        .read_output(&admin(), run.id, 0, 1024 * 1024)
        .await
        .unwrap()
        .text;
    assert!(
        console.contains("■ stop requested by bob: SIGTERM sent to the step's processes; SIGKILL in 30 s unless they exit"),
        "{console:?}"
    );
    assert!(
        console.contains("drained"),
        "the clean-up had its time: {console:?}"
    );
}

#[tokio::test]
async fn shutting_down_stops_live_runs_and_returns_once_they_are_stored() {
    let (service, _dir) = service().await;
    let id = create(&service, deploy_body("Long", "echo started; exec sleep 20")).await;
    let run = service.execute(&admin(), id, Value::Null).await.unwrap();
    wait_until_step_runs(&service, run.id, 1).await;

    service.shutdown().await;
    assert!(!service.is_live_here(run.id));
    let stopped = service.get_execution(&admin(), run.id).await.unwrap();
    assert_eq!(stopped.status, ExecutionStatus::Stopped);
    assert_eq!(stopped.steps[1].status, StepStatus::Stopped);
    assert!(stopped.finished_at.is_some());
}

// ---- control ----

#[tokio::test]
async fn controlling_a_finished_execution_is_an_invalid_state() {
    let (service, _dir) = service().await;
    let id = create(&service, deploy_body("Quick", "true")).await;
    let run = service.execute(&admin(), id, Value::Null).await.unwrap();
    let finished = wait_until_finished(&service, run.id).await;
    assert_eq!(finished.status, ExecutionStatus::Succeeded);
    for action in ControlAction::ALL {
        let result = service.control(&admin(), run.id, action).await;
        assert!(
            matches!(result, Err(CoreError::InvalidState(_))),
            "{action:?}: {result:?}"
        );
        assert_code(result, ErrorKind::Conflict, "invalid_state");
    }
    assert_code(
        service
            .control(&admin(), Uuid::new_v4(), ControlAction::Stop)
            .await,
        ErrorKind::NotFound,
        "not_found",
    );
}

#[tokio::test]
async fn an_action_that_does_not_fit_a_live_run_is_an_invalid_state() {
    let (service, _dir) = service().await;
    let id = create(
        &service,
        json!({"name": "Confirm", "blocks": [
            {"id": "ok", "kind": "instruction", "text": "Sure?", "confirm": true}
        ]}),
    )
    .await;
    // Repeated: the answer to an acknowledgement races with the run finishing right after it.
    for _ in 0..20 {
        let run = service.execute(&admin(), id, Value::Null).await.unwrap();
        wait_for_status(&service, run.id, ExecutionStatus::Waiting).await;
        assert_code(
            service
                .control(&admin(), run.id, ControlAction::Resume)
                .await,
            ErrorKind::Conflict,
            "invalid_state",
        );
        let acknowledged = service
            .control(&admin(), run.id, ControlAction::Acknowledge)
            .await
            .unwrap();
        assert_ne!(
            acknowledged.status,
            ExecutionStatus::Waiting,
            "the answer to an accepted acknowledgement still says `waiting`"
        );
        assert_eq!(
            wait_until_finished(&service, run.id).await.status,
            ExecutionStatus::Succeeded
        );
    }
}

// ---- crash recovery ----

#[tokio::test]
async fn runs_left_unfinished_are_interrupted_when_a_service_opens() {
    let dir = tempfile::tempdir().unwrap();
    let runbook_id = {
        let service = open(dir.path()).await;
        create(&service, deploy_body("Deploy", "true")).await
    };

    // What a process that died mid-run leaves behind.
    let url = config(dir.path()).effective_database_url();
    let store = SqliteStore::connect(&url).await.unwrap();
    // Created an hour ago and never renewed since.
    let now = chrono::Utc::now() - chrono::Duration::hours(1);
    let orphan = Execution {
        id: Uuid::new_v4(),
        runbook_id,
        runbook_version: 1,
        runbook_name: "Deploy".to_string(),
        status: ExecutionStatus::Running,
        params: Default::default(),
        started_by: "alice".to_string(),
        created_at: now,
        started_at: Some(now),
        finished_at: None,
        steps: vec![StepResult::pending("intro"), StepResult::pending("run")],
        retry_of: None,
        retry_from: None,
        stop_requested: None,
    };
    store.insert_execution(&orphan, None, None).await.unwrap();
    let done = StepResult {
        status: StepStatus::Succeeded,
        started_at: Some(now),
        finished_at: Some(now),
        ..StepResult::pending("intro")
    };
    let running = StepResult {
        status: StepStatus::Running,
        started_at: Some(now),
        ..StepResult::pending("run")
    };
    store.update_step(orphan.id, 0, &done).await.unwrap();
    store.update_step(orphan.id, 1, &running).await.unwrap();
    drop(store);

    let service = open(dir.path()).await;
    let recovered = service.get_execution(&admin(), orphan.id).await.unwrap();
    assert_eq!(recovered.status, ExecutionStatus::Interrupted);
    assert!(recovered.finished_at.is_some());
    assert_eq!(recovered.steps[0].status, StepStatus::Succeeded);
    assert_eq!(recovered.steps[1].status, StepStatus::Stopped);
    // The recovery is in the audit trail as the run's end.
    let finish = service
        .list_audit(
            &admin(),
            runbook_core::AuditQuery {
                action: Some("execution.finish".into()),
                target: Some(format!("execution:{}", orphan.id)),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(finish.total, 1);
    assert_eq!(finish.items[0].actor, "system");
    assert_code(
        service
            .control(&admin(), orphan.id, ControlAction::Stop)
            .await,
        ErrorKind::Conflict,
        "invalid_state",
    );
}

/// Pids of processes carrying the run's mark in their environment.
fn processes_of_run(id: Uuid) -> Vec<String> {
    let mark = format!("{}={id}", runbook_engine::EXECUTION_ID_VAR);
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|entry| entry.file_name().to_string_lossy().parse::<u32>().is_ok())
        .filter(|entry| {
            std::fs::read(entry.path().join("environ"))
                .is_ok_and(|environ| environ.split(|b| *b == 0).any(|var| var == mark.as_bytes()))
        })
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect()
}

/// Runs `body`'s runbook until its console shows `started`, lets another instance mark
/// it interrupted while it is live (as one does when this runner's heartbeat lapsed),
/// and returns the run as stored once it has ended here.
async fn swept_while_live(body: Value, started: &str, heartbeat_timeout: Duration) -> Execution {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    // Heartbeats come every third of it.
    config.heartbeat_timeout = heartbeat_timeout;
    let service = Service::open(config.clone()).await.unwrap();
    let id = create(&service, body).await;
    let run = service.execute(&admin(), id, Value::Null).await.unwrap();
    let deadline = Instant::now() + PATIENCE;
    loop {
        let console = service
            .read_output(&admin(), run.id, 0, 1 << 20)
            .await
            .unwrap();
        if console.text.contains(started) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the run never got going: {:?}",
            console.text
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!processes_of_run(run.id).is_empty());

    let elsewhere = SqliteStore::connect(&config.effective_database_url())
        .await
        .unwrap();
    let future = chrono::Utc::now() + chrono::Duration::hours(1);
    let swept = elsewhere
        .interrupt_unfinished(chrono::Utc::now(), future, None)
        .await
        .unwrap();
    assert_eq!(swept, vec![run.id]);

    let ended = service
        .wait_for_end(&admin(), run.id, PATIENCE)
        .await
        .unwrap();
    assert!(!service.is_live_here(run.id), "the run has stopped here");
    assert!(
        processes_of_run(run.id).is_empty(),
        "no process of the run is left"
    );
    assert!(
        audit_of(&service, "execution.finish").await.is_empty(),
        "the runner appended no end of its own"
    );
    ended
}

#[tokio::test]
async fn a_busy_run_marked_interrupted_elsewhere_stops_at_its_next_write() {
    let body = deploy_body(
        "Ticking",
        "for i in $(seq 1 2000); do echo tick $i; sleep 0.05; done",
    );
    // Its next heartbeat is 100 s away: only its own writes can tell it in time.
    let ended = swept_while_live(body, "tick 3\n", Duration::from_secs(300)).await;
    assert_eq!(ended.status, ExecutionStatus::Interrupted);
    assert_eq!(ended.steps[1].status, StepStatus::Stopped);
}

#[tokio::test]
async fn a_quiet_run_marked_interrupted_elsewhere_stops_at_its_next_heartbeat() {
    let body = json!({
        "name": "Waiting",
        "blocks": [
            {"id": "intro", "kind": "instruction", "text": "Heads up"},
            {"id": "run", "kind": "command", "script": "exec sleep 60"}
        ]
    });
    // Silent, it learns at its next heartbeat, 300 ms away at most.
    let ended = swept_while_live(body, "▶ run", Duration::from_millis(900)).await;
    assert_eq!(ended.status, ExecutionStatus::Interrupted);
    assert_eq!(ended.steps[1].status, StepStatus::Stopped);
}

#[test]
fn a_run_whose_process_died_is_interrupted_on_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_path_buf();
    // A whole "process" in its own runtime: dropping the runtime kills the run mid-step.
    let execution_id = std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let id = runtime.block_on(async {
            let service = open(&data_dir).await;
            let id = create(&service, deploy_body("Long", "exec sleep 20")).await;
            let run = service.execute(&admin(), id, Value::Null).await.unwrap();
            wait_until_step_runs(&service, run.id, 1).await;
            run.id
        });
        drop(runtime);
        id
    })
    .join()
    .unwrap();

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        // The dead process's heartbeat goes stale after the timeout; the next start (or
        // its upkeep task, if the start comes sooner) interrupts the run.
        let service = Service::open(Config {
            heartbeat_timeout: Duration::from_millis(600),
            ..config(dir.path())
        })
        .await
        .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        let recovered = loop {
            let current = service.get_execution(&admin(), execution_id).await.unwrap();
            if current.status != ExecutionStatus::Running || std::time::Instant::now() > deadline {
                break current;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(recovered.status, ExecutionStatus::Interrupted);
        assert_eq!(recovered.steps[1].status, StepStatus::Stopped);
    });
}

#[tokio::test]
async fn opening_a_second_service_leaves_live_runs_of_the_first_alone() {
    // `runbook-studio keys create` or `migrate` next to a running `serve` opens a second
    // service on the same database; the server's live runs must not become `interrupted`.
    let dir = tempfile::tempdir().unwrap();
    let server = open(dir.path()).await;
    let id = create(&server, deploy_body("Long", "exec sleep 20")).await;
    let run = server.execute(&admin(), id, Value::Null).await.unwrap();
    wait_until_step_runs(&server, run.id, 1).await;

    let tool = open(dir.path()).await;
    let seen_by_tool = tool.get_execution(&admin(), run.id).await.unwrap().status;
    let seen_by_server = server.get_execution(&admin(), run.id).await.unwrap().status;

    server
        .control(&admin(), run.id, ControlAction::Stop)
        .await
        .unwrap();
    wait_until_finished(&server, run.id).await;
    assert_eq!(seen_by_server, ExecutionStatus::Running);
    assert_eq!(seen_by_tool, ExecutionStatus::Running);
}

// ---- control of a run another process executes ----

#[tokio::test]
async fn a_run_executed_by_another_process_is_controlled_through_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let (executor, remote) = (open(dir.path()).await, open(dir.path()).await);
    controlled_from_another_process(&executor, &remote).await;
}

#[tokio::test]
async fn a_run_executed_by_another_process_is_controlled_through_postgres() {
    let database = PostgresDatabase::create().await;
    let dir = tempfile::tempdir().unwrap();
    let open = || async { Service::open(database.config(dir.path())).await.unwrap() };
    let (executor, remote) = (open().await, open().await);
    controlled_from_another_process(&executor, &remote).await;
    drop((executor, remote));
    database.drop().await;
}

/// `remote` acknowledges, pauses, resumes and stops a run `executor` executes, as an
/// operator of its own, and hears the outcome of each, refusals included.
async fn controlled_from_another_process(executor: &Service, remote: &Service) {
    let id = create(
        executor,
        json!({"name": "Drain", "blocks": [
            {"id": "go", "kind": "instruction", "text": "Drain the node?", "confirm": true},
            {"id": "drain", "kind": "command", "script": "echo draining; exec sleep 30"}
        ]}),
    )
    .await;
    let run = executor.execute(&admin(), id, Value::Null).await.unwrap();
    assert!(!remote.is_live_here(run.id));
    wait_for_status(remote, run.id, ExecutionStatus::Waiting).await;
    let bob = actor("bob", Role::Operator);

    // What is no block id is refused before it is stored (PostgreSQL holds no NUL).
    let not_an_id = remote
        .control_step(&bob, run.id, ControlAction::Acknowledge, Some("go\0"))
        .await;
    assert!(
        matches!(&not_an_id, Err(CoreError::InvalidState(message)) if message.contains("not a block id")),
        "{not_an_id:?}"
    );
    // The executor's refusal comes back as it would locally.
    let wrong_step = remote
        .control_step(&bob, run.id, ControlAction::Acknowledge, Some("drain"))
        .await;
    assert!(
        matches!(&wrong_step, Err(CoreError::InvalidState(message)) if message.contains("drain")),
        "{wrong_step:?}"
    );
    assert_eq!(
        remote.get_execution(&admin(), run.id).await.unwrap().status,
        ExecutionStatus::Waiting
    );
    let acknowledged = remote
        .control_step(
            &Actor {
                request_id: Some("req-ack".to_string()),
                ..bob.clone()
            },
            run.id,
            ControlAction::Acknowledge,
            Some("go"),
        )
        .await
        .unwrap();
    assert_ne!(acknowledged.status, ExecutionStatus::Waiting);
    wait_until_step_runs(remote, run.id, 1).await;

    let paused = remote
        .control(&bob, run.id, ControlAction::Pause)
        .await
        .unwrap();
    assert_eq!(
        paused.status,
        ExecutionStatus::Paused,
        "the answer shows the pause"
    );
    assert_eq!(
        executor
            .get_execution(&admin(), run.id)
            .await
            .unwrap()
            .status,
        ExecutionStatus::Paused,
        "applied where the run executes"
    );
    assert_code(
        // Only an acknowledgement reads a step, whatever it holds.
        remote
            .control_step(&bob, run.id, ControlAction::Pause, Some("drain\0"))
            .await,
        ErrorKind::Conflict,
        "invalid_state",
    );
    let resumed = remote
        .control(&bob, run.id, ControlAction::Resume)
        .await
        .unwrap();
    assert_eq!(resumed.status, ExecutionStatus::Running);

    // A viewer may not; nothing reaches the executor.
    assert_code(
        remote
            .control(&actor("vera", Role::Viewer), run.id, ControlAction::Stop)
            .await,
        ErrorKind::Forbidden,
        "forbidden",
    );
    assert_eq!(
        executor
            .get_execution(&admin(), run.id)
            .await
            .unwrap()
            .status,
        ExecutionStatus::Running
    );

    remote
        .control(&bob, run.id, ControlAction::Stop)
        .await
        .unwrap();
    let stopped = wait_until_finished(executor, run.id).await;
    assert_eq!(stopped.status, ExecutionStatus::Stopped);
    assert!(
        processes_of_run(run.id).is_empty(),
        "the command was stopped"
    );
    assert_code(
        remote.control(&bob, run.id, ControlAction::Resume).await,
        ErrorKind::Conflict,
        "invalid_state",
    );

    // Audited once each, as the operator who made the request, refusals included: by
    // the executing process for what it answered, by the requester for the rest.
    let acknowledge = audit_of(executor, "execution.acknowledge").await;
    assert!(
        acknowledge
            .iter()
            .any(|entry| entry.request_id.as_deref() == Some("req-ack")),
        "the requester's call is named: {acknowledge:?}"
    );
    for (action, outcome, times) in [
        // Not a block id (refused here), and the wrong step (refused there).
        ("execution.acknowledge", AuditOutcome::Failure, 2),
        ("execution.acknowledge", AuditOutcome::Success, 1),
        ("execution.pause", AuditOutcome::Success, 1),
        ("execution.pause", AuditOutcome::Failure, 1),
        ("execution.resume", AuditOutcome::Success, 1),
        // After the run ended: refused here.
        ("execution.resume", AuditOutcome::Failure, 1),
        ("execution.stop", AuditOutcome::Success, 1),
    ] {
        let recorded = audit_of(executor, action)
            .await
            .iter()
            .filter(|entry| {
                entry.actor == "bob"
                    && entry.outcome == outcome
                    && entry.target.as_deref() == Some(&*format!("execution:{}", run.id))
            })
            .count();
        assert_eq!(
            recorded, times,
            "`{action}` by bob, {outcome:?}, recorded {recorded} times"
        );
    }
}

/// A requester that went away without withdrawing its request (killed outright)
/// leaves it to the executing process, which applies it within its patience and
/// puts it on the trail as the requester's.
#[tokio::test]
async fn a_relayed_request_is_audited_by_the_process_that_applies_it() {
    let dir = tempfile::tempdir().unwrap();
    let executor = open(dir.path()).await;
    let id = create(&executor, deploy_body("Long", "exec sleep 30")).await;
    let run = executor.execute(&admin(), id, Value::Null).await.unwrap();
    wait_until_step_runs(&executor, run.id, 1).await;
    let store = SqliteStore::connect(&config(dir.path()).effective_database_url())
        .await
        .unwrap();
    let request = ControlRequest {
        id: Uuid::new_v4(),
        execution_id: run.id,
        action: ControlAction::Stop,
        block_id: None,
        requested_by: "dave".to_string(),
        request_id: Some("req-dave".to_string()),
        requested_at: chrono::Utc::now(),
    };
    store
        .request_control(&request, Duration::from_secs(5))
        .await
        .unwrap();

    let stopped = wait_until_finished(&executor, run.id).await;
    assert_eq!(stopped.status, ExecutionStatus::Stopped);
    // Answered (and audited) just after it was applied: the run may end first.
    let deadline = Instant::now() + PATIENCE;
    let outcome = loop {
        if let Some(outcome) = store.control_outcome(request.id).await.unwrap() {
            break outcome;
        }
        assert!(Instant::now() < deadline, "the request was never answered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        matches!(outcome, ControlOutcome::Applied { .. }),
        "{outcome:?}"
    );
    let stops: Vec<_> = audit_of(&executor, "execution.stop")
        .await
        .into_iter()
        .map(|entry| (entry.actor, entry.outcome, entry.target, entry.request_id))
        .collect();
    assert_eq!(
        stops,
        [(
            "dave".to_string(),
            AuditOutcome::Success,
            Some(format!("execution:{}", run.id)),
            Some("req-dave".to_string())
        )]
    );
}

#[tokio::test]
async fn a_control_request_whose_requester_goes_away_is_withdrawn() {
    let dir = tempfile::tempdir().unwrap();
    let (service, store, run) = with_a_silent_run(dir.path()).await;

    // The caller gives up (a client that hung up, a server shutting down).
    let requester = {
        let service = service.clone();
        tokio::spawn(async move { service.control(&admin(), run.id, ControlAction::Stop).await })
    };
    requests_become(&store, 1).await;
    requester.abort();
    assert!(requester.await.unwrap_err().is_cancelled());
    // Withdrawn on a task of its own: left, the process would answer it later and stop
    // the run, though no one waits for that.
    requests_become(&store, 0).await;
}

/// Waits until the database holds `count` control requests.
async fn requests_become(store: &SqliteStore, count: i64) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let held: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM control_requests")
            .fetch_one(store.pool())
            .await
            .unwrap();
        if held == count {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{held} control requests stored, never {count}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What a crashed run left gets SIGTERM once a service finds the run interrupted, then
/// the grace period of the command the run was at before SIGKILL, not the default.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_runs_leftovers_get_the_grace_period_of_its_command() {
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    let dir = tempfile::tempdir().unwrap();
    let service = open(dir.path()).await;
    let id = create(
        &service,
        json!({"name": "Drain", "blocks": [
            {"id": "drain", "kind": "command", "script": "drain", "stop_grace_secs": 3},
        ]}),
    )
    .await;
    let runbook = service.get_runbook(&admin(), id).await.unwrap();
    // A run an app was executing when it crashed, at its command.
    let store = SqliteStore::connect(&config(dir.path()).effective_database_url())
        .await
        .unwrap();
    let mut run = running(&runbook);
    run.steps[0].status = StepStatus::Running;
    run.steps[0].started_at = Some(chrono::Utc::now());
    store
        .insert_execution(&run, Some(Uuid::new_v4()), None)
        .await
        .unwrap();
    // What its command left, which ignores SIGTERM.
    let mut leftover = std::process::Command::new("sh")
        .args(["-c", "trap '' TERM; while :; do sleep 0.1; done"])
        .env("RUNBOOK_EXECUTION_ID", run.id.to_string())
        .process_group(0)
        .spawn()
        .unwrap();
    let exited = tokio::task::spawn_blocking(move || leftover.wait());
    // A service opening once the run has been silent too long finds it interrupted.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mut later = config(dir.path());
    later.heartbeat_timeout = Duration::from_secs(1);
    let opened_at = Instant::now();
    let sweeper = Service::open(later).await.unwrap();
    let swept = sweeper.get_execution(&admin(), run.id).await.unwrap();
    assert_eq!(swept.status, ExecutionStatus::Interrupted);
    // Past the default grace (1 s here) it lives on; SIGKILLed once its command's 3 s are over.
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert!(
        !exited.is_finished(),
        "killed before its command's grace period was over"
    );
    let status = tokio::time::timeout(PATIENCE, exited)
        .await
        .expect("killed in the end")
        .unwrap()
        .unwrap();
    assert_eq!(status.signal(), Some(9), "{status:?}");
    assert!(
        opened_at.elapsed() >= Duration::from_millis(2900),
        "{:?}",
        opened_at.elapsed()
    );
}

/// A service, a second handle on its SQLite database, and a run stored there as
/// claimed a moment ago by another process that then fell silent (suspended, cut off
/// from the database): not yet an orphan, and no one to answer for it.
async fn with_a_silent_run(dir: &Path) -> (Service, SqliteStore, Execution) {
    let service = open(dir).await;
    let id = create(&service, deploy_body("Silent", "true")).await;
    let runbook = service.get_runbook(&admin(), id).await.unwrap();
    let store = SqliteStore::connect(&config(dir).effective_database_url())
        .await
        .unwrap();
    let run = running(&runbook);
    store
        .insert_execution(&run, Some(Uuid::new_v4()), None)
        .await
        .unwrap();
    (service, store, run)
}

/// A run of `runbook` as a process executing it stores it: running, started now.
fn running(runbook: &runbook_domain::Runbook) -> Execution {
    Execution {
        status: ExecutionStatus::Running,
        ..Execution::queued(
            Uuid::new_v4(),
            runbook,
            Default::default(),
            "alice",
            chrono::Utc::now(),
        )
    }
}

/// A process that took a request and never answered may have applied it (and
/// recorded it): the requester's record says the outcome is unknown.
#[tokio::test]
async fn a_control_request_taken_but_never_answered_is_audited_as_unknown() {
    let dir = tempfile::tempdir().unwrap();
    let (service, store, run) = with_a_silent_run(dir.path()).await;
    // The run's process takes the request, then falls silent.
    let taker = tokio::spawn(async move {
        loop {
            let taken = store
                .take_control_requests(&[run.id], chrono::Utc::now())
                .await
                .unwrap();
            if !taken.is_empty() {
                return taken;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    let result = service.control(&admin(), run.id, ControlAction::Stop).await;
    assert_eq!(taker.await.unwrap().len(), 1);
    assert_code(result, ErrorKind::Unavailable, "runner_unavailable");
    let stops = audit_of(&service, "execution.stop").await;
    assert_eq!(stops.len(), 1, "{stops:?}");
    assert_eq!(stops[0].outcome, AuditOutcome::Failure);
    let detail: Value = serde_json::from_str(stops[0].detail.as_deref().unwrap()).unwrap();
    assert_eq!(
        detail,
        json!({"applied": "unknown", "error": "runner_unavailable"})
    );
}

#[tokio::test]
async fn a_control_request_no_process_takes_is_withdrawn_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (service, store, run) = with_a_silent_run(dir.path()).await;

    let started = Instant::now();
    let result = service.control(&admin(), run.id, ControlAction::Stop).await;
    assert_code(result, ErrorKind::Unavailable, "runner_unavailable");
    assert!(started.elapsed() >= Duration::from_secs(5));
    assert!(
        store
            .take_control_requests(&[run.id], chrono::Utc::now())
            .await
            .unwrap()
            .is_empty(),
        "withdrawn: a process that comes back later does not stop the run unasked"
    );
    assert_eq!(
        service
            .get_execution(&admin(), run.id)
            .await
            .unwrap()
            .status,
        ExecutionStatus::Running
    );

    // A run that ends while its request waits is no longer live: said so at once.
    let ending = Execution {
        id: Uuid::new_v4(),
        ..run.clone()
    };
    store
        .insert_execution(&ending, Some(Uuid::new_v4()), None)
        .await
        .unwrap();
    let ender = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        store
            .update_execution_status(ending.id, ExecutionStatus::Interrupted, None, None)
            .await
            .unwrap();
    });
    let started = Instant::now();
    let result = service
        .control(&admin(), ending.id, ControlAction::Pause)
        .await;
    assert!(
        matches!(&result, Err(CoreError::InvalidState(message)) if message.contains("interrupted")),
        "{result:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    ender.await.unwrap();
}

// ---- API keys ----

#[tokio::test]
async fn api_keys_authenticate_as_their_role() {
    let (service, _dir) = service().await;
    let key = service
        .create_api_key(&admin(), "  deploy bot ", Role::Operator)
        .await
        .unwrap();
    assert_eq!(key.key.name, "deploy bot");
    assert_eq!(key.key.role, Role::Operator);

    let caller = service.authenticate(&key.token, "test").await.unwrap();
    assert_eq!(caller, actor("deploy bot", Role::Operator));
    // A key keeps working after its first use has been recorded.
    assert_eq!(
        service.authenticate(&key.token, "test").await.unwrap(),
        caller
    );

    // The key's actor may do what an operator may, and no more.
    let id = create(&service, deploy_body("Deploy", "true")).await;
    let run = service.execute(&caller, id, Value::Null).await.unwrap();
    assert_eq!(run.started_by, "deploy bot");
    wait_until_finished(&service, run.id).await;
    assert_code(
        service
            .create_runbook(&caller, deploy_body("Mine", "true"))
            .await,
        ErrorKind::Forbidden,
        "forbidden",
    );

    let mut wrong = key.token.clone();
    wrong.pop();
    wrong.push(if key.token.ends_with('0') { '1' } else { '0' });
    for token in [wrong.as_str(), "", "rbs_not-a-key", &"x".repeat(600)] {
        assert!(
            matches!(
                service.authenticate(token, "test").await,
                Err(CoreError::Unauthenticated)
            ),
            "token {token:?}"
        );
    }
    assert_code(
        service.create_api_key(&admin(), "  ", Role::Viewer).await,
        ErrorKind::Invalid,
        "invalid_name",
    );
}

#[tokio::test]
async fn a_waiting_step_is_described_as_the_run_shows_it() {
    let (service, _dir) = service().await;
    let id = create(
        &service,
        json!({"name": "Drain a node",
               "params": [{"name": "node", "type": "string", "required": true}],
               "blocks": [
            {"id": "check", "kind": "command", "script": "true"},
            {"id": "drain", "kind": "instruction",
             "text": "## Drain {{ params.node }}\nMove its pods first.", "confirm": true}
        ]}),
    )
    .await;
    let run = service
        .execute(&admin(), id, json!({"params": {"node": "node-7"}}))
        .await
        .unwrap();
    let viewer = actor("watcher", Role::Viewer);
    wait_for_status(&service, run.id, ExecutionStatus::Waiting).await;
    // Deleting the runbook meanwhile changes nothing about the run it is executing.
    service.delete_runbook(&admin(), id).await.unwrap();

    // A viewer may read it: the runbook's name and the step's instructions, rendered.
    let step = service.waiting_step(&viewer, run.id).await.unwrap();
    assert_eq!(step.execution_id, run.id);
    assert_eq!(step.runbook_name, "Drain a node");
    assert_eq!(step.block_id, "drain");
    assert_eq!(step.text, "## Drain node-7\nMove its pods first.");

    assert_code(
        service.waiting_step(&viewer, Uuid::new_v4()).await,
        ErrorKind::NotFound,
        "not_found",
    );

    service
        .control(&admin(), run.id, ControlAction::Acknowledge)
        .await
        .unwrap();
    assert_eq!(
        wait_until_finished(&service, run.id).await.status,
        ExecutionStatus::Succeeded
    );
    // A run that no longer waits has nothing to describe.
    assert_code(
        service.waiting_step(&viewer, run.id).await,
        ErrorKind::Conflict,
        "invalid_state",
    );
}

#[tokio::test]
async fn an_acknowledgement_naming_its_step_confirms_that_step_only() {
    let (service, _dir) = service().await;
    let id = create(
        &service,
        json!({"name": "Two confirmations", "blocks": [
            {"id": "cordon", "kind": "instruction", "text": "Cordon the node", "confirm": true},
            {"id": "drain", "kind": "instruction", "text": "Drain the node", "confirm": true}
        ]}),
    )
    .await;
    let run = service.execute(&admin(), id, json!({})).await.unwrap();
    let waits_at = |step: &'static str| {
        let service = &service;
        async move {
            let deadline = Instant::now() + PATIENCE;
            loop {
                if let Ok(waiting) = service.waiting_step(&admin(), run.id).await {
                    if waiting.block_id == step {
                        return;
                    }
                }
                assert!(Instant::now() < deadline, "the run never waited at {step}");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    };
    waits_at("cordon").await;
    // An answer to a step the run has not reached yet is refused.
    assert_code(
        service
            .control_step(&admin(), run.id, ControlAction::Acknowledge, Some("drain"))
            .await,
        ErrorKind::Conflict,
        "invalid_state",
    );
    service
        .control_step(&admin(), run.id, ControlAction::Acknowledge, Some("cordon"))
        .await
        .unwrap();
    waits_at("drain").await;
    // The same acknowledgement again (a double click, a retried request) does not
    // confirm the next step: the run still waits there.
    let again = service
        .control_step(&admin(), run.id, ControlAction::Acknowledge, Some("cordon"))
        .await;
    assert_code(again, ErrorKind::Conflict, "invalid_state");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        service
            .waiting_step(&admin(), run.id)
            .await
            .unwrap()
            .block_id,
        "drain"
    );
    service
        .control_step(&admin(), run.id, ControlAction::Acknowledge, Some("drain"))
        .await
        .unwrap();
    assert_eq!(
        wait_until_finished(&service, run.id).await.status,
        ExecutionStatus::Succeeded
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_runs_console_is_saved_up_to_where_it_had_got_and_a_viewer_may_save_it() {
    let (service, _dir) = service().await;
    let id = create(
        &service,
        deploy_body("Chatty", "while true; do seq 1 2000; done"),
    )
    .await;
    let run = service.execute(&admin(), id, json!({})).await.unwrap();
    // Well into several pages of output, still pouring out.
    let viewer = actor("vic", Role::Viewer);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while service
        .read_output(&viewer, run.id, 3 << 20, 1)
        .await
        .unwrap()
        .text
        .is_empty()
    {
        assert!(tokio::time::Instant::now() < deadline, "no output");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let mut log = service
        .console_log(&viewer, run.id, Escapes::Keep)
        .await
        .unwrap();
    let mut saved = Vec::new();
    while let Some(chunk) = log.next_chunk().await.unwrap() {
        saved.extend(chunk);
        // The run writes on meanwhile; the file still ends.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(saved.len() >= 3 << 20, "{} bytes", saved.len());
    let mut stored = Vec::new();
    while stored.len() < saved.len() {
        let page = service
            .read_output(&viewer, run.id, stored.len() as u64, 1 << 20)
            .await
            .unwrap();
        stored.extend_from_slice(page.text.as_bytes());
    }
    stored.truncate(saved.len());
    assert!(saved == stored, "the console's first bytes, all of them");
    // It goes on beyond what was saved.
    while service
        .read_output(&viewer, run.id, saved.len() as u64, 1)
        .await
        .unwrap()
        .text
        .is_empty()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the console stopped"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    service
        .control(&admin(), run.id, runbook_domain::ControlAction::Stop)
        .await
        .unwrap();
    wait_until_finished(&service, run.id).await;
}
