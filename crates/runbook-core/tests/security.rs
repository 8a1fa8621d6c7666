//! Security through the core: credentials sealed at rest and write-only, used by runs
//! and masked there, refused when tampered with or opened under a wrong key, rotated
//! in one transaction; users and keys; the lockout; the audit chain and its tampering.

use runbook_core::{
    Actor, Config, CoreError, EngineConfig, ErrorKind, KeySetting, LockoutPolicy, Service,
};
use runbook_domain::{AuditOutcome, ExecutionStatus, Role};
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};
use uuid::Uuid;

const CANARY: &str = "canary-7f3a9c1e5b";

fn actor(name: &str, role: Role) -> Actor {
    Actor {
        name: name.to_string(),
        role,
        request_id: None,
    }
}

fn admin() -> Actor {
    actor("alice", Role::Admin).with_request_id("req-1")
}

fn config(data_dir: &Path, key: KeySetting) -> Config {
    let mut config = Config::from_data_dir(data_dir);
    config.engine = EngineConfig {
        stop_grace: Duration::from_secs(1),
        ..EngineConfig::default()
    };
    config.master_key = key;
    config
}

fn key_file(dir: &Path) -> KeySetting {
    KeySetting::File(dir.join("master.key"))
}

async fn service() -> (Service, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::open(config(dir.path(), key_file(dir.path())))
        .await
        .unwrap();
    (service, dir)
}

fn code<T: std::fmt::Debug>(result: Result<T, CoreError>) -> (ErrorKind, String) {
    let error = result.expect_err("the call fails");
    (error.kind(), error.code().to_string())
}

async fn add_secret(service: &Service, name: &str, value: &str) -> Uuid {
    service
        .create_credential(
            &admin(),
            json!({"name": name, "kind": "secret", "value": value, "description": "test"}),
        )
        .await
        .unwrap()
        .id
}

/// Runs a one-command runbook whose `$TOKEN` comes from the credential `name`.
async fn run_with_secret(
    service: &Service,
    name: &str,
    script: &str,
) -> (ExecutionStatus, String, Option<String>) {
    let runbook = service
        .create_runbook(
            &admin(),
            json!({"name": format!("uses {name} {}", Uuid::new_v4()), "blocks": [
                {"id": "use", "kind": "command", "script": script, "secrets": {"TOKEN": name}}
            ]}),
        )
        .await
        .unwrap();
    let run = service
        .execute(&admin(), runbook.id, Value::Null)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let execution = loop {
        let execution = service.get_execution(&admin(), run.id).await.unwrap();
        if execution.status.is_finished() {
            break execution;
        }
        assert!(Instant::now() < deadline, "the run never finished");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let output = service
        .read_output(&admin(), run.id, 0, 1 << 20)
        .await
        .unwrap()
        .text;
    (execution.status, output, execution.steps[0].error.clone())
}

/// The audit trail's `credential.use` records.
async fn credential_uses(service: &Service) -> runbook_core::Page<runbook_domain::AuditEntry> {
    service
        .list_audit(
            &admin(),
            runbook_core::AuditQuery {
                action: Some("credential.use".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap()
}

fn file_contains(path: &Path, needle: &str) -> bool {
    std::fs::read(path)
        .map(|bytes| bytes.windows(needle.len()).any(|w| w == needle.as_bytes()))
        .unwrap_or(false)
}

async fn sqlite(dir: &Path) -> sqlx::SqlitePool {
    sqlx::SqlitePool::connect(&format!(
        "sqlite://{}",
        dir.join("runbook-studio.db").display()
    ))
    .await
    .unwrap()
}

#[tokio::test]
async fn credentials_are_write_only_sealed_at_rest_used_masked_and_audited() {
    let (service, dir) = service().await;
    let id = add_secret(&service, "payments-token", CANARY).await;

    let listed = serde_json::to_string(&service.list_credentials(&admin()).await.unwrap()).unwrap();
    let one = serde_json::to_string(&service.get_credential(&admin(), id).await.unwrap()).unwrap();
    for text in [&listed, &one] {
        assert!(
            text.contains("payments-token") && !text.contains(CANARY),
            "{text}"
        );
        assert!(!text.contains("value"), "no value field at all: {text}");
    }

    let (status, output, _) = run_with_secret(
        &service,
        "payments-token",
        r#"echo "token=$TOKEN"; test "$TOKEN" = "canary-""7f3a9c1e5b""#,
    )
    .await;
    assert_eq!(status, ExecutionStatus::Succeeded, "{output}");
    assert!(
        output.contains("token=***") && !output.contains(CANARY),
        "{output}"
    );

    let used = service.get_credential(&admin(), id).await.unwrap();
    assert!(used.last_used_at.is_some());
    let uses = credential_uses(&service).await;
    assert_eq!(uses.total, 1);
    assert_eq!(
        uses.items[0].target.as_deref(),
        Some("credential:payments-token")
    );
    assert_eq!(uses.items[0].outcome, AuditOutcome::Success);
    assert_eq!(uses.items[0].actor, "alice");

    let all = service
        .list_audit(
            &admin(),
            runbook_core::AuditQuery {
                limit: Some(500),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let actions: Vec<&str> = all.items.iter().map(|e| e.action.as_str()).collect();
    for expected in [
        "credential.create",
        "runbook.create",
        "execution.start",
        "credential.use",
        "execution.finish",
    ] {
        assert!(
            actions.contains(&expected),
            "{expected} missing from {actions:?}"
        );
    }
    let created = all
        .items
        .iter()
        .find(|e| e.action == "credential.create")
        .unwrap();
    assert_eq!(created.request_id.as_deref(), Some("req-1"));
    assert!(!serde_json::to_string(&all.items).unwrap().contains(CANARY));

    drop(service);
    for file in ["runbook-studio.db", "runbook-studio.db-wal"] {
        assert!(
            !file_contains(&dir.path().join(file), CANARY),
            "{file} holds the canary"
        );
    }
}

#[tokio::test]
async fn a_secret_printed_before_its_credential_is_used_is_masked_too() {
    let (service, dir) = service().await;
    const VALUE: &str = "early-s3cret-7731";
    add_secret(&service, "db-password", VALUE).await;
    // The value also sits in a file on the host, shown before the step that uses it.
    let config = dir.path().join("app.conf");
    std::fs::write(&config, format!("password={VALUE}\n")).unwrap();
    let runbook = service
        .create_runbook(
            &admin(),
            json!({"name": "Shows config first", "blocks": [
                {"id": "show", "kind": "command", "script": format!("cat {}", config.display())},
                {"id": "use", "kind": "command", "script": "test -n \"$PW\"",
                 "secrets": {"PW": "db-password"}},
                {"id": "unused", "kind": "conditional", "expr": "false",
                 "then": [{"id": "never", "kind": "command", "script": "true",
                           "secrets": {"PW": "no-such-credential"}}]}
            ]}),
        )
        .await
        .unwrap();
    let run = service
        .execute(&admin(), runbook.id, Value::Null)
        .await
        .unwrap();
    let execution = service
        .wait_for_end(&admin(), run.id, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(
        execution.status,
        ExecutionStatus::Succeeded,
        "{execution:#?}"
    );
    let output = service
        .read_output(&admin(), run.id, 0, 1 << 20)
        .await
        .unwrap()
        .text;
    assert!(output.contains("password=***"), "{output}");
    assert!(!output.contains(VALUE), "{output}");
    assert_eq!(execution.steps[0].detail.stdout, "password=***\n");
    // Reading values to mask them is not a use: only the step that used it is audited.
    let uses = credential_uses(&service).await;
    assert_eq!(uses.total, 1, "{:#?}", uses.items);
}

#[tokio::test]
async fn bad_credential_input_is_refused_and_changes_nothing() {
    let (service, _dir) = service().await;
    let id = add_secret(&service, "db-password", CANARY).await;
    let before = service.list_credentials(&admin()).await.unwrap();

    let cases = [
        (
            json!({"name": "x", "kind": "pgp", "value": "v"}),
            "invalid_kind",
        ),
        (
            json!({"name": "", "kind": "secret", "value": "v"}),
            "invalid_name",
        ),
        (
            json!({"name": "a b", "kind": "secret", "value": "v"}),
            "invalid_name",
        ),
        (
            json!({"name": "x".repeat(101), "kind": "secret", "value": "v"}),
            "invalid_name",
        ),
        (
            json!({"name": "x", "kind": "secret", "value": ""}),
            "missing_value",
        ),
        (json!({"name": "x", "kind": "secret"}), "missing_value"),
        (
            json!({"name": "x", "kind": "secret", "value": "v".repeat(65 * 1024)}),
            "value_too_large",
        ),
        (
            json!({"name": "x", "kind": "basic", "value": "v"}),
            "missing_username",
        ),
        (
            json!({"name": "x", "kind": "header", "value": "v"}),
            "missing_header_name",
        ),
        (
            json!({"name": "x", "kind": "header", "value": "v", "header_name": "Bad Header"}),
            "invalid_header_name",
        ),
        (
            json!({"name": "x", "kind": "secret", "value": 42}),
            "invalid_type",
        ),
        (
            json!({"name": "x", "kind": "secret", "value": "v", "extra": 1}),
            "invalid_type",
        ),
        (
            json!({"name": "x", "kind": "bearer", "value": "v", "hosts": ["https://a.example.com/"]}),
            "invalid_hosts",
        ),
        (
            json!({"name": "x", "kind": "bearer", "value": "v", "hosts": ["*.com"]}),
            "invalid_hosts",
        ),
        (
            json!({"name": "x", "kind": "bearer", "value": "v", "hosts": "a.example.com"}),
            "invalid_type",
        ),
        (
            json!({"name": "x", "kind": "secret", "value": "v", "hosts": ["a.example.com"]}),
            "hosts_not_applicable",
        ),
    ];
    for (body, expected) in cases {
        let (kind, code) = code(service.create_credential(&admin(), body.clone()).await);
        assert_eq!(
            (kind, code.as_str()),
            (ErrorKind::Invalid, expected),
            "{body}"
        );
    }
    let (kind, code_) = code(
        service
            .create_credential(
                &admin(),
                json!({"name": "db-password", "kind": "secret", "value": "other"}),
            )
            .await,
    );
    assert_eq!(
        (kind, code_.as_str()),
        (ErrorKind::Conflict, "duplicate_name")
    );
    let (kind, _) = code(service.create_credential(&admin(), json!([1])).await);
    assert_eq!(kind, ErrorKind::BadRequest);
    // A wrong type never echoes what was sent (it could be the secret).
    let error = service
        .update_credential(&admin(), id, json!({"value": ["canary-in-a-list"]}))
        .await
        .unwrap_err();
    assert!(!error.to_string().contains("canary-in-a-list"), "{error}");
    let (kind, _) = code(
        service
            .update_credential(&admin(), id, json!({"value": "v".repeat(70_000)}))
            .await,
    );
    assert_eq!(kind, ErrorKind::Invalid);
    let (kind, code_) = code(
        service
            .update_credential(&admin(), id, json!({"hosts": ["db.example.com"]}))
            .await,
    );
    assert_eq!(
        (kind, code_.as_str()),
        (ErrorKind::Invalid, "hosts_not_applicable")
    );

    assert_eq!(service.list_credentials(&admin()).await.unwrap(), before);
    let (status, output, _) = run_with_secret(
        &service,
        "db-password",
        r#"test "$TOKEN" = "canary-""7f3a9c1e5b""#,
    )
    .await;
    assert_eq!(
        status,
        ExecutionStatus::Succeeded,
        "the stored value is intact: {output}"
    );

    // Failed attempts are audited as failures, with the code and never the value.
    let failures = service
        .list_audit(
            &admin(),
            runbook_core::AuditQuery {
                action: Some("credential.".into()),
                outcome: Some("failure".into()),
                limit: Some(100),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(failures.total >= 19, "{}", failures.total);
    assert!(!serde_json::to_string(&failures.items)
        .unwrap()
        .contains(CANARY));
}

/// Runs a one-block runbook with `params` and waits for its end.
async fn run_blocks(service: &Service, blocks: Value, params: Value) -> runbook_domain::Execution {
    let runbook = service
        .create_runbook(
            &admin(),
            json!({"name": format!("hosts {}", Uuid::new_v4()), "blocks": blocks,
                   "params": [{"name": "host", "type": "string", "default": "127.0.0.1:9"}]}),
        )
        .await
        .unwrap();
    let run = service
        .execute(&admin(), runbook.id, json!({ "params": params }))
        .await
        .unwrap();
    service
        .wait_for_end(&admin(), run.id, Duration::from_secs(30))
        .await
        .unwrap()
}

#[tokio::test]
async fn a_credential_goes_only_where_its_hosts_allow_and_refusals_are_audited() {
    let (service, _dir) = service().await;
    let created = service
        .create_credential(
            &admin(),
            json!({"name": "svc-key", "kind": "header", "header_name": "X-Key", "value": CANARY,
                   "hosts": [" API.Example.com ", "*.svc.example:8443", "api.example.com"]}),
        )
        .await
        .unwrap();
    assert_eq!(created.hosts, ["api.example.com", "*.svc.example:8443"]);
    let listed = service.list_credentials(&admin()).await.unwrap();
    assert_eq!(listed[0].hosts, created.hosts, "stored as answered");

    // Bound to hosts, it never goes into a command's environment...
    let run = run_blocks(
        &service,
        json!([{"id": "env", "kind": "command", "script": "echo \"$K\"", "secrets": {"K": "svc-key"}}]),
        json!({}),
    )
    .await;
    assert_eq!(run.status, ExecutionStatus::Failed);
    let error = run.steps[0].error.clone().unwrap();
    assert!(
        error.contains("only an api_call block may send it"),
        "{error}"
    );
    // ...nor with a request to a host it is not bound to (refused before it is sent).
    let call = json!([{"id": "call", "kind": "api_call", "url": "http://{{ params.host }}/x",
                       "credential": "svc-key"}]);
    let run = run_blocks(&service, call.clone(), json!({"host": "127.0.0.1:9"})).await;
    let error = run.steps[0].error.clone().unwrap();
    assert!(
        error.contains("may be sent only to api.example.com, *.svc.example:8443, and this request goes to 127.0.0.1:9"),
        "{error}"
    );

    // Bound to no host, a request may take it only to the host the runbook names.
    let updated = service
        .update_credential(&admin(), created.id, json!({"hosts": []}))
        .await
        .unwrap();
    assert!(updated.hosts.is_empty());
    let run = run_blocks(&service, call, json!({"host": "127.0.0.1:9"})).await;
    let error = run.steps[0].error.clone().unwrap();
    assert!(
        error.contains("a host that comes from a template"),
        "{error}"
    );
    // A host the author wrote passes the check; the request then fails to connect.
    let written = json!([{"id": "call", "kind": "api_call",
                          "url": "http://127.0.0.1:9/x?from={{ params.host }}", "credential": "svc-key"}]);
    let run = run_blocks(&service, written, json!({})).await;
    let error = run.steps[0].error.clone().unwrap();
    assert!(!error.contains("was not used"), "{error}");

    // Every refusal is audited as a failed use, with its reason; a binding's change
    // is audited with the new hosts.
    let uses = credential_uses(&service).await;
    let outcomes: Vec<_> = uses.items.iter().map(|entry| entry.outcome).collect();
    assert_eq!(
        outcomes,
        [
            AuditOutcome::Success,
            AuditOutcome::Failure,
            AuditOutcome::Failure,
            AuditOutcome::Failure
        ],
        "newest first"
    );
    let detail = |entry: &runbook_domain::AuditEntry| -> Value {
        serde_json::from_str(entry.detail.as_deref().unwrap()).unwrap()
    };
    let refusal = detail(&uses.items[1]);
    assert!(
        refusal["refused"]
            .as_str()
            .unwrap()
            .contains("comes from a template"),
        "{refusal}"
    );
    let updates = service
        .list_audit(
            &admin(),
            runbook_core::AuditQuery {
                action: Some("credential.update".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(detail(&updates.items[0])["hosts"], json!([]));
    assert!(!serde_json::to_string(&uses.items).unwrap().contains(CANARY));
}

#[tokio::test]
async fn a_replaced_value_is_used_and_a_deleted_credential_is_gone() {
    let (service, _dir) = service().await;
    let id = add_secret(&service, "api-token", "old-value").await;
    let updated = service
        .update_credential(
            &admin(),
            id,
            json!({"value": "new-value", "description": "rotated"}),
        )
        .await
        .unwrap();
    assert_eq!(updated.description, "rotated");
    let (status, _, _) =
        run_with_secret(&service, "api-token", r#"test "$TOKEN" = new-value"#).await;
    assert_eq!(status, ExecutionStatus::Succeeded);

    service.delete_credential(&admin(), id).await.unwrap();
    assert_eq!(
        code(service.get_credential(&admin(), id).await).0,
        ErrorKind::NotFound
    );
    assert_eq!(
        code(service.delete_credential(&admin(), id).await).0,
        ErrorKind::NotFound
    );
    let (status, _, error) = run_with_secret(&service, "api-token", "true").await;
    assert_eq!(status, ExecutionStatus::Failed);
    assert!(error.unwrap().contains("no credential named `api-token`"));
}

#[tokio::test]
async fn a_tampered_ciphertext_fails_clearly_and_a_wrong_key_opens_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::open(config(dir.path(), key_file(dir.path())))
        .await
        .unwrap();
    add_secret(&service, "swapped", "value-a").await;
    add_secret(&service, "tampered", "value-b").await;
    let pool = sqlite(dir.path()).await;
    sqlx::query("UPDATE credentials SET sealed = CAST(substr(sealed, 1, 20) || X'00' || substr(sealed, 22) AS BLOB) WHERE name = 'tampered'")
        .execute(&pool)
        .await
        .unwrap();
    // A ciphertext moved to another row does not open either (its id is bound to it).
    sqlx::query("UPDATE credentials SET sealed = (SELECT sealed FROM credentials WHERE name = 'tampered') WHERE name = 'swapped'")
        .execute(&pool)
        .await
        .unwrap();
    for name in ["tampered", "swapped"] {
        let (status, _, error) = run_with_secret(&service, name, "true").await;
        assert_eq!(status, ExecutionStatus::Failed);
        assert!(error.unwrap().contains("cannot be decrypted"), "{name}");
    }
    drop(service);

    let sealed_before: Vec<Vec<u8>> =
        sqlx::query_scalar("SELECT sealed FROM credentials ORDER BY name")
            .fetch_all(&pool)
            .await
            .unwrap();
    let check_before: Vec<u8> = sqlx::query_scalar("SELECT sealed FROM vault_check")
        .fetch_one(&pool)
        .await
        .unwrap();
    let wrong = runbook_vault::MasterKey::generate();
    let error = Service::open(config(
        dir.path(),
        KeySetting::Environment(wrong.to_base64()),
    ))
    .await
    .err()
    .expect("a wrong key does not open the vault");
    assert!(
        error
            .to_string()
            .contains("not the one this database's credentials were sealed with"),
        "{error}"
    );
    // A key that this refused start made itself is not left behind to shadow the real one.
    let stray = dir.path().join("stray.key");
    let refused = Service::open(config(dir.path(), KeySetting::File(stray.clone()))).await;
    assert!(matches!(refused, Err(CoreError::Setup(_))));
    assert!(
        !stray.exists(),
        "the key made by a refused start is removed"
    );
    let sealed_after: Vec<Vec<u8>> =
        sqlx::query_scalar("SELECT sealed FROM credentials ORDER BY name")
            .fetch_all(&pool)
            .await
            .unwrap();
    let check_after: Vec<u8> = sqlx::query_scalar("SELECT sealed FROM vault_check")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!((sealed_before, check_before), (sealed_after, check_after));
}

#[tokio::test]
async fn rotating_the_master_key_reseals_everything_and_survives_a_crash_halfway() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("master.key");
    let service = Service::open(config(dir.path(), key_file(dir.path())))
        .await
        .unwrap();
    for (name, value) in [("a", "value-a"), ("b", "value-b"), ("c", "value-c")] {
        add_secret(&service, name, value).await;
    }
    let pool = sqlite(dir.path()).await;
    let sealed = |pool: sqlx::SqlitePool| async move {
        sqlx::query_scalar::<_, Vec<u8>>("SELECT sealed FROM credentials ORDER BY name")
            .fetch_all(&pool)
            .await
            .unwrap()
    };
    let old_key = std::fs::read_to_string(&path).unwrap();
    let old_sealed = sealed(pool.clone()).await;

    let report = service.rotate_master_key(&admin(), None).await.unwrap();
    assert_eq!(report.credentials, 3);
    let new_key = std::fs::read_to_string(&path).unwrap();
    assert_ne!(old_key, new_key);
    let new_sealed = sealed(pool.clone()).await;
    assert!(old_sealed
        .iter()
        .zip(&new_sealed)
        .all(|(old, new)| old != new));
    assert!(!dir.path().join("master.key.next").exists());
    let (status, _, _) = run_with_secret(&service, "b", r#"test "$TOKEN" = value-b"#).await;
    assert_eq!(
        status,
        ExecutionStatus::Succeeded,
        "the running service uses the new key"
    );
    drop(service);

    // The old key no longer opens the vault; the new one does.
    let old = Service::open(config(
        dir.path(),
        KeySetting::Environment(old_key.clone().into()),
    ))
    .await;
    assert!(matches!(old, Err(CoreError::Setup(_))));
    // A crash after the database commit but before the key file was replaced: the
    // staged key is found and completes the rotation.
    std::fs::rename(&path, dir.path().join("master.key.next")).unwrap();
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .unwrap();
        file.write_all(old_key.as_bytes()).unwrap();
    }
    let service = Service::open(config(dir.path(), key_file(dir.path())))
        .await
        .unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), new_key);
    let (status, _, _) = run_with_secret(&service, "c", r#"test "$TOKEN" = value-c"#).await;
    assert_eq!(status, ExecutionStatus::Succeeded);

    // From the environment, the new key needs a file of its own.
    let env = Service::open(config(
        dir.path(),
        KeySetting::Environment(new_key.clone().into()),
    ))
    .await
    .unwrap();
    drop(service);
    let (kind, code_) = code(env.rotate_master_key(&admin(), None).await);
    assert_eq!(
        (kind, code_.as_str()),
        (ErrorKind::Invalid, "new_key_file_required")
    );
    let target = dir.path().join("next.key");
    env.rotate_master_key(&admin(), Some(&target))
        .await
        .unwrap();
    let newest = std::fs::read_to_string(&target).unwrap();
    drop(env);
    Service::open(config(dir.path(), KeySetting::Environment(newest.into())))
        .await
        .unwrap();
}

#[tokio::test]
async fn only_admins_manage_security_and_refusals_are_audited() {
    let (service, _dir) = service().await;
    let id = add_secret(&service, "s", "v").await;
    for role in [Role::Viewer, Role::Operator, Role::Editor] {
        let who = actor("mallory", role);
        assert_eq!(
            code(service.list_credentials(&who).await).0,
            ErrorKind::Forbidden
        );
        assert_eq!(
            code(service.get_credential(&who, id).await).0,
            ErrorKind::Forbidden
        );
        assert_eq!(
            code(
                service
                    .create_credential(&who, json!({"name": "n", "kind": "secret", "value": "v"}))
                    .await
            )
            .0,
            ErrorKind::Forbidden
        );
        assert_eq!(
            code(
                service
                    .update_credential(&who, id, json!({"value": "x"}))
                    .await
            )
            .0,
            ErrorKind::Forbidden
        );
        assert_eq!(
            code(service.delete_credential(&who, id).await).0,
            ErrorKind::Forbidden
        );
        assert_eq!(code(service.list_users(&who).await).0, ErrorKind::Forbidden);
        assert_eq!(
            code(
                service
                    .create_user(&who, json!({"name": "u", "role": "admin"}))
                    .await
            )
            .0,
            ErrorKind::Forbidden
        );
        assert_eq!(
            code(service.list_api_keys(&who).await).0,
            ErrorKind::Forbidden
        );
        assert_eq!(
            code(service.create_api_key(&who, "k", Role::Admin).await).0,
            ErrorKind::Forbidden
        );
        assert_eq!(
            code(service.list_audit(&who, Default::default()).await).0,
            ErrorKind::Forbidden
        );
        assert_eq!(
            code(service.verify_audit(&who).await).0,
            ErrorKind::Forbidden
        );
        assert_eq!(
            code(service.rotate_master_key(&who, None).await).0,
            ErrorKind::Forbidden
        );
        assert!(service.vault_status(&who).is_ok());
    }
    let denied = service
        .list_audit(
            &admin(),
            runbook_core::AuditQuery {
                actor: Some("mallory".into()),
                outcome: Some("denied".into()),
                limit: Some(500),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(denied.total, 36);
    assert_eq!(service.list_credentials(&admin()).await.unwrap().len(), 1);
    assert!(service.list_users(&admin()).await.unwrap().is_empty());
}

#[tokio::test]
async fn keys_act_for_their_user_and_stop_with_it() {
    let (service, _dir) = service().await;
    let user = service
        .create_user(&admin(), json!({"name": "bob", "role": "operator"}))
        .await
        .unwrap();
    assert_eq!(
        code(
            service
                .create_user(&admin(), json!({"name": "bob", "role": "viewer"}))
                .await
        )
        .1,
        "duplicate_name"
    );
    assert_eq!(
        code(
            service
                .create_user(&admin(), json!({"name": "eve", "role": "root"}))
                .await
        )
        .1,
        "invalid_type"
    );
    let key = service
        .create_key(
            &admin(),
            json!({"name": "bob's laptop", "user_id": user.id}),
        )
        .await
        .unwrap();
    assert_eq!(
        (key.key.role, key.key.user_name.as_deref()),
        (Role::Operator, Some("bob"))
    );
    let me = service.authenticate(&key.token, "c").await.unwrap();
    assert_eq!((me.name.as_str(), me.role), ("bob", Role::Operator));

    service
        .update_user(&admin(), user.id, json!({"role": "editor"}))
        .await
        .unwrap();
    assert_eq!(
        service.authenticate(&key.token, "c").await.unwrap().role,
        Role::Editor
    );
    service
        .update_user(&admin(), user.id, json!({"disabled": true}))
        .await
        .unwrap();
    assert!(matches!(
        service.authenticate(&key.token, "c").await,
        Err(CoreError::Unauthenticated)
    ));
    service
        .update_user(&admin(), user.id, json!({"disabled": false}))
        .await
        .unwrap();
    assert!(service.authenticate(&key.token, "c").await.is_ok());
    service.delete_user(&admin(), user.id).await.unwrap();
    assert!(matches!(
        service.authenticate(&key.token, "c").await,
        Err(CoreError::Unauthenticated)
    ));
    let listed = service.list_api_keys(&admin()).await.unwrap();
    assert!(listed
        .iter()
        .any(|k| k.id == key.key.id && k.revoked_at.is_some()));
    assert!(!serde_json::to_string(&listed).unwrap().contains(&key.token));

    // Own-role keys: exactly one of role or user, an expiry in the future, revocation.
    assert_eq!(
        code(service.create_key(&admin(), json!({"name": "k"})).await).1,
        "invalid_owner"
    );
    assert_eq!(
        code(
            service
                .create_key(
                    &admin(),
                    json!({"name": "k", "role": "viewer", "user_id": user.id})
                )
                .await
        )
        .1,
        "invalid_owner"
    );
    assert_eq!(
        code(
            service
                .create_key(
                    &admin(),
                    json!({"name": "k", "role": "viewer", "expires_at": "2000-01-01T00:00:00Z"})
                )
                .await
        )
        .1,
        "invalid_expiry"
    );
    let soon = chrono::Utc::now() + chrono::Duration::milliseconds(300);
    let brief = service
        .create_key(
            &admin(),
            json!({"name": "brief", "role": "viewer", "expires_at": soon}),
        )
        .await
        .unwrap();
    assert!(service.authenticate(&brief.token, "c").await.is_ok());
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(matches!(
        service.authenticate(&brief.token, "c").await,
        Err(CoreError::Unauthenticated)
    ));
    let other = service
        .create_api_key(&admin(), "other", Role::Viewer)
        .await
        .unwrap();
    service
        .revoke_api_key(&admin(), other.key.id)
        .await
        .unwrap();
    assert!(matches!(
        service.authenticate(&other.token, "c").await,
        Err(CoreError::Unauthenticated)
    ));
    assert_eq!(
        code(service.revoke_api_key(&admin(), Uuid::new_v4()).await).0,
        ErrorKind::NotFound
    );
}

#[tokio::test]
async fn a_client_that_keeps_failing_is_locked_out_and_audited() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path(), key_file(dir.path()));
    config.lockout = LockoutPolicy {
        max_failures: 3,
        window: Duration::from_secs(60),
        lockout: Duration::from_secs(60),
    };
    let service = Service::open(config).await.unwrap();
    let key = service
        .create_api_key(&admin(), "good", Role::Viewer)
        .await
        .unwrap();
    for _ in 0..4 {
        assert!(matches!(
            service.authenticate("rbs_wrong", "10.1.1.1").await,
            Err(CoreError::Unauthenticated)
        ));
    }
    let locked = service
        .authenticate(&key.token, "10.1.1.1")
        .await
        .unwrap_err();
    assert_eq!(
        (locked.kind(), locked.code()),
        (ErrorKind::TooManyRequests, "too_many_attempts")
    );
    assert!(
        service.authenticate(&key.token, "10.1.1.2").await.is_ok(),
        "other clients are not locked out"
    );
    let failures = service
        .list_audit(
            &admin(),
            runbook_core::AuditQuery {
                action: Some("auth.failure".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(failures.total, 4);
    assert_eq!(failures.items[0].target.as_deref(), Some("client:10.1.1.1"));
    assert!(!serde_json::to_string(&failures.items)
        .unwrap()
        .contains("rbs_wrong"));
}

/// A service with a few audit records, and its SQLite pool with the append-only
/// triggers dropped, as someone editing the file directly would.
async fn audited_service() -> (Service, sqlx::SqlitePool, tempfile::TempDir) {
    let (service, dir) = service().await;
    for name in ["one", "two", "three", "four"] {
        service
            .create_runbook(&admin(), json!({"name": name, "blocks": []}))
            .await
            .unwrap();
    }
    let pool = sqlite(dir.path()).await;
    let report = service.verify_audit(&admin()).await.unwrap();
    assert!(report.ok && report.checked == 4, "{report:?}");
    let refused = sqlx::query("UPDATE audit_log SET actor = 'mallory' WHERE seq = 2")
        .execute(&pool)
        .await;
    assert!(refused.unwrap_err().to_string().contains("append-only"));
    assert!(sqlx::query("DELETE FROM audit_log WHERE seq = 2")
        .execute(&pool)
        .await
        .is_err());
    for trigger in ["audit_log_no_update", "audit_log_no_delete"] {
        sqlx::query(&format!("DROP TRIGGER {trigger}"))
            .execute(&pool)
            .await
            .unwrap();
    }
    (service, pool, dir)
}

#[tokio::test]
async fn the_audit_chain_catches_an_edited_a_deleted_and_a_swapped_record() {
    let (service, pool, _dir) = audited_service().await;
    sqlx::query("UPDATE audit_log SET actor = 'mallory' WHERE seq = 2")
        .execute(&pool)
        .await
        .unwrap();
    let report = service.verify_audit(&admin()).await.unwrap();
    assert_eq!(report.broken.map(|b| b.seq), Some(2));

    let (service, pool, _dir) = audited_service().await;
    sqlx::query("DELETE FROM audit_log WHERE seq = 3")
        .execute(&pool)
        .await
        .unwrap();
    let report = service.verify_audit(&admin()).await.unwrap();
    assert!(!report.ok);
    assert_eq!(report.broken.map(|b| b.seq), Some(4));

    let (service, pool, _dir) = audited_service().await;
    // Swap the contents of records 2 and 3, keeping their positions.
    sqlx::query("UPDATE audit_log SET seq = -2 WHERE seq = 2")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("UPDATE audit_log SET seq = 2 WHERE seq = 3")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("UPDATE audit_log SET seq = 3 WHERE seq = -2")
        .execute(&pool)
        .await
        .unwrap();
    let report = service.verify_audit(&admin()).await.unwrap();
    assert_eq!(report.broken.map(|b| b.seq), Some(2));

    let (service, pool, _dir) = audited_service().await;
    sqlx::query("DELETE FROM audit_log WHERE seq = (SELECT MAX(seq) FROM audit_log)")
        .execute(&pool)
        .await
        .unwrap();
    let report = service.verify_audit(&admin()).await.unwrap();
    assert!(!report.ok, "a deleted last record is caught by the head");

    // Rolling the head back to hide an edit of a later record is caught too.
    let (service, pool, _dir) = audited_service().await;
    sqlx::query("UPDATE audit_log SET actor = 'mallory' WHERE seq = 4")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("UPDATE audit_head SET seq = 3, hash = (SELECT hash FROM audit_log WHERE seq = 3)")
        .execute(&pool)
        .await
        .unwrap();
    let report = service.verify_audit(&admin()).await.unwrap();
    assert!(
        !report.ok,
        "a record beyond the head breaks the trail: {report:?}"
    );
}
