//! Storage conformance suite: every test is written once against `Arc<dyn Store>` and run
//! against both backends, SQLite (a temporary file) and PostgreSQL (a fresh database per
//! test on the server named by `RUNBOOK_TEST_POSTGRES_URL`). PostgreSQL being unreachable
//! fails the PostgreSQL tests loudly; they are never skipped. Each test database gets
//! defaults a team's server may well have and the test server may not: a linguistic
//! collation (ICU `en-US`, where the server has ICU) and serializable transactions.

use chrono::{DateTime, Utc};
use runbook_domain::{
    AuditEntry, AuditEvent, AuditOutcome, Branch, ChainVerifier, ControlAction, CredentialInfo,
    CredentialKind, Execution, ExecutionStatus, HttpResponse, Role, Runbook, RunbookDraft,
    StepDetail, StepResult, StepStatus, StopRequest, TimerProgress, User, UserChange,
};
use runbook_store::{
    ApiKeyRecord, AuditFilter, ControlOutcome, ControlRequest, CredentialRecord, ExecutionFilter,
    PostgresStore, RunRecord, RunbookFilter, SqliteStore, Store, StoreError,
};
use serde_json::json;
use sqlx::Connection;
use std::future::Future;
use std::sync::Arc;
use std::task::Poll;
use uuid::Uuid;

const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Instantiates every listed test once per backend, as `sqlite::<name>` and `postgres::<name>`.
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    super::run_on_sqlite(super::$name).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    super::run_on_postgres(super::$name).await;
                }
            )*
        }
    };
}

conformance!(
    runbook_round_trip_preserves_every_block_kind,
    unknown_ids_are_absent,
    search_matches_name_tags_and_description_ignoring_case,
    search_treats_like_wildcards_literally,
    tag_filter_is_exact_and_combines_with_search,
    listing_pages_in_name_order_with_the_total,
    listings_order_names_by_their_bytes_whatever_the_collation,
    saving_versions_keeps_history_newest_first,
    a_stale_save_conflicts_and_changes_nothing,
    concurrent_saves_of_one_version_let_exactly_one_win,
    deleting_hides_the_runbook_everywhere,
    executions_round_trip_and_list_newest_first_with_filters,
    status_updates_keep_the_start_time_when_none_is_given,
    step_updates_record_the_step_and_touch_no_other,
    a_steps_captured_output_may_hold_nul_characters,
    a_retry_keeps_its_link_and_the_results_it_reuses,
    a_run_has_one_live_retry_at_a_time,
    a_retry_chain_has_one_live_retry_at_a_time,
    a_batch_of_run_records_is_applied_in_order,
    the_first_stop_request_of_a_run_is_kept,
    a_runs_audit_records_commit_with_its_start_and_its_end,
    run_audit_records_chain_with_other_writers,
    a_run_write_dropped_midway_leaves_the_store_whole_and_writable,
    output_windows_span_chunks_and_start_inside_them,
    output_of_executions_does_not_mix,
    output_written_again_after_a_lost_answer_is_stored_once,
    interrupting_marks_live_runs_and_leaves_finished_ones,
    runs_with_a_fresh_heartbeat_are_not_interrupted,
    control_requests_are_taken_once_by_the_runs_executor_and_answered,
    a_control_request_can_be_withdrawn_only_until_it_is_taken,
    a_control_request_expires_untaken,
    answering_a_control_request_appends_its_audit_record,
    old_control_requests_are_purged,
    a_sweep_and_a_late_write_of_the_same_run_never_deadlock_and_the_first_wins,
    a_run_stored_as_ended_refuses_further_records,
    api_keys_are_found_by_hash_and_touched,
    credentials_round_trip_with_unique_names,
    resealing_replaces_every_value_or_nothing,
    a_rotation_racing_a_credential_write_lets_one_win_without_a_deadlock,
    users_own_keys_and_deleting_one_revokes_them,
    the_last_admin_cannot_be_taken_away,
    admins_demoting_each_other_at_once_leave_one_admin,
    audit_records_chain_in_order_even_when_written_at_once,
    audit_listing_filters_and_pages_newest_first,
    an_action_prefix_matches_case_like_an_exact_action,
    a_target_filter_takes_a_whole_target_or_a_bare_name,
);

// ---- backends ----

async fn run_on_sqlite<F, Fut>(test: F)
where
    F: FnOnce(Arc<dyn Store>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let dir = tempfile::tempdir().expect("temporary directory");
    let url = format!("sqlite://{}", dir.path().join("conformance.db").display());
    let store = SqliteStore::connect(&url)
        .await
        .expect("open the SQLite store");
    let outcome = tokio::spawn(test(Arc::new(store))).await;
    rethrow(outcome);
}

async fn run_on_postgres<F, Fut>(test: F)
where
    F: FnOnce(Arc<dyn Store>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let admin_url = std::env::var("RUNBOOK_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_string());
    let name = format!("rbs_test_{}", Uuid::new_v4().simple());
    let mut admin = sqlx::PgConnection::connect(&admin_url)
        .await
        .unwrap_or_else(|error| {
            panic!(
                "PostgreSQL is unreachable at {admin_url} ({error}). The storage conformance \
                 suite runs every test against PostgreSQL too: start it, or point \
                 RUNBOOK_TEST_POSTGRES_URL at a server where this user may CREATE DATABASE."
            )
        });
    // A linguistic collation orders names unlike SQLite unless the store says how to.
    let icu =
        format!("CREATE DATABASE {name} TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US'");
    if let Err(error) = sqlx::query(&icu).execute(&mut admin).await {
        eprintln!("no ICU collation ({error}); {name} uses the server's default collation");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .unwrap_or_else(|error| panic!("cannot create test database {name}: {error}"));
    }
    // The store's transactions are written for read committed, whatever the default.
    sqlx::query(&format!(
        "ALTER DATABASE {name} SET default_transaction_isolation TO 'serializable'"
    ))
    .execute(&mut admin)
    .await
    .unwrap_or_else(|error| panic!("cannot set up test database {name}: {error}"));
    let store = PostgresStore::connect(&with_database(&admin_url, &name))
        .await
        .unwrap_or_else(|error| panic!("cannot open the PostgreSQL store on {name}: {error}"));
    let outcome = tokio::spawn(test(Arc::new(store))).await;
    // Best effort: a database left behind is only clutter.
    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut admin)
        .await;
    rethrow(outcome);
}

fn rethrow(outcome: Result<(), tokio::task::JoinError>) {
    if let Err(error) = outcome {
        match error.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(error) => panic!("the test task did not finish: {error}"),
        }
    }
}

/// `url` with its database name replaced by `database` (query string kept).
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url, String::new()),
    };
    let authority = base.find("://").expect("the URL has a scheme") + 3;
    let path = base[authority..]
        .find('/')
        .map_or(base.len(), |i| authority + i);
    format!("{}/{database}{query}", &base[..path])
}

// ---- builders ----

/// A fixed instant plus `seconds`, with microsecond precision (what both backends keep).
fn at(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_714_000_000 + seconds, 123_456_000).expect("a valid instant")
}

fn draft(name: &str, tags: &[&str], description: &str) -> RunbookDraft {
    RunbookDraft {
        name: name.to_string(),
        description: description.to_string(),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        params: Vec::new(),
        blocks: Vec::new(),
    }
}

fn runbook(draft: RunbookDraft) -> Runbook {
    Runbook {
        id: Uuid::new_v4(),
        draft,
        version: 1,
        created_at: at(0),
        updated_at: at(0),
        updated_by: "alice".to_string(),
    }
}

/// A runbook using every block kind with every field set away from its default.
fn rich_draft() -> RunbookDraft {
    serde_json::from_value(json!({
        "name": "Restart payments API",
        "description": "## Steps\nRestart *payments* — carefully. 日本語 ✓",
        "tags": ["payments", "on-call"],
        "params": [
            {"name": "service", "type": "string", "default": "payments", "required": true,
             "description": "unit name"},
            {"name": "replicas", "type": "number", "default": 3, "required": false},
            {"name": "force", "type": "boolean", "default": null, "required": false}
        ],
        "blocks": [
            {"id": "intro", "kind": "instruction", "text": "## Before you start\n- page the team",
             "confirm": true},
            {"id": "check", "kind": "command", "script": "systemctl is-active {{ params.service }}",
             "shell": "bash", "host": "local", "timeout_secs": 30, "workdir": "/srv/payments",
             "env": {"MODE": "strict", "LANG": "C"}, "expect_exit_codes": [0, 3],
             "on_failure": "continue", "secrets": {"TOKEN": "payments-token"}},
            {"id": "health", "kind": "api_call", "method": "POST",
             "url": "https://api.example/health?deep=1",
             "headers": {"Accept": "application/json"}, "body": "{\"probe\": true}",
             "credential": "payments-token", "timeout_secs": 10, "expect_status": [200, 204],
             "on_failure": "stop"},
            {"id": "branch", "kind": "conditional", "expr": "steps.health.status == 200",
             "then": [{"id": "done", "kind": "instruction", "text": "All good"}],
             "else": [{"id": "wait", "kind": "timer", "seconds": 30}]}
        ]
    }))
    .expect("the rich draft is well-formed")
}

fn execution(runbook_id: Uuid, created: i64, status: ExecutionStatus) -> Execution {
    Execution {
        id: Uuid::new_v4(),
        runbook_id,
        runbook_version: 1,
        runbook_name: "Restart payments API".to_string(),
        status,
        params: json!({"service": "payments", "replicas": 3})
            .as_object()
            .cloned()
            .expect("an object"),
        started_by: "bob".to_string(),
        created_at: at(created),
        started_at: None,
        finished_at: None,
        steps: ["intro", "check", "wait"]
            .into_iter()
            .map(StepResult::pending)
            .collect(),
        retry_of: None,
        retry_from: None,
        stop_requested: None,
    }
}

fn filter(q: Option<&str>, tag: Option<&str>) -> RunbookFilter {
    RunbookFilter {
        q: q.map(str::to_string),
        tag: tag.map(str::to_string),
        limit: 100,
        offset: 0,
    }
}

async fn names(store: &dyn Store, filter: RunbookFilter) -> (Vec<String>, i64) {
    let (items, total) = store.list_runbooks(&filter).await.expect("list runbooks");
    (items.into_iter().map(|r| r.name).collect(), total)
}

async fn insert(store: &dyn Store, draft: RunbookDraft) -> Runbook {
    let runbook = runbook(draft);
    store
        .insert_runbook(&runbook, "Created")
        .await
        .expect("insert runbook");
    runbook
}

/// `current` with new content, as the version after `current.version`.
fn next_version(current: &Runbook, draft: RunbookDraft, seconds: i64, by: &str) -> Runbook {
    Runbook {
        draft,
        version: current.version + 1,
        updated_at: at(seconds),
        updated_by: by.to_string(),
        ..current.clone()
    }
}

// ---- runbooks ----

async fn runbook_round_trip_preserves_every_block_kind(store: Arc<dyn Store>) {
    let stored = insert(&*store, rich_draft()).await;
    let kinds: Vec<_> = stored.all_blocks().iter().map(|b| b.kind()).collect();
    for kind in ["instruction", "command", "api_call", "conditional", "timer"] {
        assert!(kinds.contains(&kind), "the fixture lacks a {kind} block");
    }

    let loaded = store.get_runbook(stored.id).await.unwrap().expect("stored");
    assert_eq!(loaded, stored, "every field, nested blocks included");

    let (items, total) = store.list_runbooks(&filter(None, None)).await.unwrap();
    assert_eq!(total, 1);
    let summary = &items[0];
    assert_eq!(summary.id, stored.id);
    assert_eq!(summary.name, stored.draft.name);
    assert_eq!(summary.description, stored.draft.description);
    assert_eq!(summary.tags, stored.draft.tags);
    assert_eq!(summary.version, 1);
    assert_eq!(summary.created_at, stored.created_at);
    assert_eq!(summary.updated_at, stored.updated_at);
    assert_eq!(summary.updated_by, "alice");

    let first = store.get_version(stored.id, 1).await.unwrap().expect("v1");
    assert_eq!(first.draft, stored.draft);
    let history = store.list_versions(stored.id).await.unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(
        (history[0].version, history[0].message.as_str()),
        (1, "Created")
    );
    assert_eq!(history[0].created_by, "alice");
    assert_eq!(history[0].created_at, stored.created_at);
}

async fn unknown_ids_are_absent(store: Arc<dyn Store>) {
    insert(&*store, draft("Something", &[], "")).await;
    let unknown = Uuid::new_v4();
    assert!(store.get_runbook(unknown).await.unwrap().is_none());
    assert!(store.get_version(unknown, 1).await.unwrap().is_none());
    assert!(store.list_versions(unknown).await.unwrap().is_empty());
    assert!(store.get_execution(unknown).await.unwrap().is_none());
    assert!(!store.delete_runbook(unknown, at(1)).await.unwrap());
    let ghost = runbook(draft("Ghost", &[], ""));
    let saved = store
        .save_version(
            &next_version(&ghost, draft("Ghost", &[], ""), 1, "x"),
            1,
            "",
        )
        .await;
    assert!(
        matches!(saved, Err(StoreError::NotFound)),
        "saving a version of an unknown runbook: {saved:?}"
    );
}

/// Runbooks whose texts tell search matches and wildcard handling apart.
async fn insert_search_fixtures(store: &dyn Store) {
    for (name, tags, description) in [
        (
            "Restart Payments API",
            &["payments"][..],
            "Restarts the service",
        ),
        (
            "Rotate certificates",
            &["TLS", "security"][..],
            "Renews the **Nginx** certificate",
        ),
        ("Disk cleanup", &["ops"][..], "Frees 50% of /var"),
        ("Snake_case check", &[][..], "Looks at identifiers"),
        ("Half the fleet", &["ops"][..], "Drains 50 percent of nodes"),
    ] {
        insert(store, draft(name, tags, description)).await;
    }
}

async fn search_matches_name_tags_and_description_ignoring_case(store: Arc<dyn Store>) {
    insert_search_fixtures(&*store).await;
    let cases: [(&str, &[&str]); 6] = [
        ("PAYMENTS", &["Restart Payments API"]),
        ("tls", &["Rotate certificates"]),
        ("nginx", &["Rotate certificates"]),
        ("CeRtIfIcAtE", &["Rotate certificates"]),
        ("FLEET", &["Half the fleet"]),
        ("no such text", &[]),
    ];
    for (q, expected) in cases {
        let (found, total) = names(&*store, filter(Some(q), None)).await;
        assert_eq!(found, expected, "q = {q:?}");
        assert_eq!(total, expected.len() as i64, "total for q = {q:?}");
    }
    let (all, total) = names(&*store, filter(Some(""), None)).await;
    assert_eq!((all.len(), total), (5, 5), "an empty q filters nothing");
}

async fn search_treats_like_wildcards_literally(store: Arc<dyn Store>) {
    insert_search_fixtures(&*store).await;
    let cases: [(&str, &[&str]); 5] = [
        // As wildcards, `50%` would also match "50 percent" and `e_c` "Rotate certificates".
        ("50%", &["Disk cleanup"]),
        ("%", &["Disk cleanup"]),
        ("e_c", &["Snake_case check"]),
        ("_", &["Snake_case check"]),
        ("\\", &[]),
    ];
    for (q, expected) in cases {
        let (found, total) = names(&*store, filter(Some(q), None)).await;
        assert_eq!(found, expected, "q = {q:?}");
        assert_eq!(total, expected.len() as i64, "total for q = {q:?}");
    }
}

async fn tag_filter_is_exact_and_combines_with_search(store: Arc<dyn Store>) {
    insert_search_fixtures(&*store).await;
    let (ops, total) = names(&*store, filter(None, Some("ops"))).await;
    assert_eq!(ops, ["Disk cleanup", "Half the fleet"]);
    assert_eq!(total, 2);
    assert_eq!(
        names(&*store, filter(None, Some("TLS"))).await.0,
        ["Rotate certificates"]
    );
    assert_eq!(
        names(&*store, filter(None, Some("op"))).await,
        (vec![], 0),
        "a tag filter matches whole tags only"
    );
    assert_eq!(
        names(&*store, filter(Some("disk"), Some("ops"))).await,
        (vec!["Disk cleanup".to_string()], 1)
    );
    assert_eq!(
        names(&*store, filter(Some("rotate"), Some("ops"))).await,
        (vec![], 0)
    );
}

async fn listing_pages_in_name_order_with_the_total(store: Arc<dyn Store>) {
    for name in ["charlie", "alpha", "echo", "bravo", "delta"] {
        insert(&*store, draft(name, &[], "")).await;
    }
    let mut seen = Vec::new();
    for offset in [0, 2, 4, 6] {
        let page = RunbookFilter {
            limit: 2,
            offset,
            ..RunbookFilter::default()
        };
        let (found, total) = names(&*store, page).await;
        assert_eq!(total, 5, "the total ignores paging (offset {offset})");
        assert!(found.len() <= 2);
        seen.extend(found);
    }
    assert_eq!(seen, ["alpha", "bravo", "charlie", "delta", "echo"]);
}

/// Names whose order differs between byte order and a linguistic collation (case,
/// punctuation, accents), in byte order.
const NAMES_BY_BYTES: [&str; 6] = ["Bravo", "Delta", "_tmp", "alpha", "charlie", "Écho"];

async fn listings_order_names_by_their_bytes_whatever_the_collation(store: Arc<dyn Store>) {
    // Inserted in another order than either collation's.
    let shuffled = [3, 0, 5, 2, 4, 1].map(|i| NAMES_BY_BYTES[i]);
    for name in shuffled {
        insert(&*store, draft(name, &["shared"], "")).await;
    }
    assert_eq!(names(&*store, filter(None, None)).await.0, NAMES_BY_BYTES);
    assert_eq!(
        names(&*store, filter(None, Some("shared"))).await.0,
        NAMES_BY_BYTES
    );
    // Pages follow the same order, so none repeats or skips a runbook.
    let mut paged = Vec::new();
    for offset in (0..6).step_by(4) {
        let page = RunbookFilter {
            limit: 4,
            offset,
            ..RunbookFilter::default()
        };
        paged.extend(names(&*store, page).await.0);
    }
    assert_eq!(paged, NAMES_BY_BYTES);

    let key = store.init_vault_check(b"key-1").await.unwrap();
    for name in shuffled {
        let user = User {
            id: Uuid::new_v4(),
            name: name.to_string(),
            role: Role::Viewer,
            created_at: at(0),
            updated_at: at(0),
            disabled_at: None,
        };
        store.insert_user(&user).await.unwrap();
        store
            .insert_credential(&credential(name, &[1]), &key)
            .await
            .unwrap();
    }
    let users: Vec<String> = store
        .list_users()
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.name)
        .collect();
    assert_eq!(users, NAMES_BY_BYTES);
    let credentials: Vec<String> = store
        .list_credentials()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(credentials, NAMES_BY_BYTES);
}

async fn saving_versions_keeps_history_newest_first(store: Arc<dyn Store>) {
    let first = insert(&*store, draft("Deploy", &["old-tag"], "first")).await;
    let second = next_version(&first, rich_draft(), 10, "bob");
    store
        .save_version(&second, 1, "use the rich one")
        .await
        .unwrap();
    let third = next_version(
        &second,
        draft("Deploy v3", &["new-tag"], "third"),
        20,
        "carol",
    );
    store.save_version(&third, 2, "").await.unwrap();

    let current = store.get_runbook(first.id).await.unwrap().expect("live");
    assert_eq!(current, third);
    assert_eq!(current.created_at, first.created_at, "creation time stays");

    let history = store.list_versions(first.id).await.unwrap();
    let summary: Vec<_> = history
        .iter()
        .map(|v| {
            (
                v.version,
                v.created_by.as_str(),
                v.message.as_str(),
                v.created_at,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (3, "carol", "", at(20)),
            (2, "bob", "use the rich one", at(10)),
            (1, "alice", "Created", at(0)),
        ]
    );

    let v2 = store.get_version(first.id, 2).await.unwrap().expect("v2");
    assert_eq!((v2.id, v2.version), (first.id, 2));
    assert_eq!(v2.draft, rich_draft());
    assert_eq!((v2.updated_by.as_str(), v2.updated_at), ("bob", at(10)));
    let v1 = store.get_version(first.id, 1).await.unwrap().expect("v1");
    assert_eq!(v1.draft, first.draft);
    assert!(store.get_version(first.id, 4).await.unwrap().is_none());

    // Search and tags follow the current version only.
    assert_eq!(names(&*store, filter(None, Some("old-tag"))).await.1, 0);
    assert_eq!(names(&*store, filter(None, Some("new-tag"))).await.1, 1);
    assert_eq!(names(&*store, filter(Some("payments"), None)).await.1, 0);
    assert_eq!(names(&*store, filter(Some("v3"), None)).await.1, 1);
}

async fn a_stale_save_conflicts_and_changes_nothing(store: Arc<dyn Store>) {
    let first = insert(&*store, draft("Deploy", &["alpha"], "first")).await;
    let second = next_version(&first, draft("Deploy", &["beta"], "second"), 10, "bob");
    store.save_version(&second, 1, "").await.unwrap();

    // Someone else, still on version 1, saves their edit.
    let stale = next_version(
        &first,
        draft("Clobbered", &["gamma"], "stale"),
        20,
        "mallory",
    );
    let result = store.save_version(&stale, 1, "stale edit").await;
    assert!(
        matches!(result, Err(StoreError::VersionConflict { current: 2 })),
        "expected a conflict at version 2, got {result:?}"
    );

    assert_eq!(store.get_runbook(first.id).await.unwrap(), Some(second));
    assert_eq!(store.list_versions(first.id).await.unwrap().len(), 2);
    assert_eq!(names(&*store, filter(Some("clobbered"), None)).await.1, 0);
    assert_eq!(names(&*store, filter(None, Some("gamma"))).await.1, 0);
    assert_eq!(names(&*store, filter(None, Some("beta"))).await.1, 1);

    // A based-on version from the future conflicts too.
    let ahead = Runbook {
        version: 6,
        ..stale
    };
    let result = store.save_version(&ahead, 5, "").await;
    assert!(matches!(
        result,
        Err(StoreError::VersionConflict { current: 2 })
    ));
}

async fn concurrent_saves_of_one_version_let_exactly_one_win(store: Arc<dyn Store>) {
    let first = insert(&*store, draft("Deploy", &["v1"], "first")).await;
    let mut savers = Vec::new();
    for i in 0..8 {
        let tag = format!("by-{i}");
        let edit = next_version(
            &first,
            draft(&format!("Deploy by {i}"), &[tag.as_str()], ""),
            10 + i,
            &format!("editor-{i}"),
        );
        let store = store.clone();
        savers.push(tokio::spawn(async move {
            store.save_version(&edit, 1, "").await
        }));
    }
    let mut winners = Vec::new();
    for (i, saver) in savers.into_iter().enumerate() {
        match saver.await.unwrap() {
            Ok(()) => winners.push(i),
            Err(StoreError::VersionConflict { current: 2 }) => {}
            Err(other) => {
                panic!("save {i}: expected a success or a version conflict, got {other:?}")
            }
        }
    }
    assert_eq!(
        winners.len(),
        1,
        "exactly one save of version 1 wins: {winners:?}"
    );
    let winner = winners[0];

    let current = store.get_runbook(first.id).await.unwrap().expect("live");
    assert_eq!(
        (current.version, current.draft.name.as_str()),
        (2, format!("Deploy by {winner}").as_str())
    );
    assert_eq!(store.list_versions(first.id).await.unwrap().len(), 2);
    let (tagged, total) = names(&*store, filter(None, Some(&format!("by-{winner}")))).await;
    assert_eq!((tagged.len(), total), (1, 1));
    for i in (0..8).filter(|i| *i != winner) {
        assert_eq!(
            names(&*store, filter(None, Some(&format!("by-{i}"))))
                .await
                .1,
            0
        );
    }
}

async fn deleting_hides_the_runbook_everywhere(store: Arc<dyn Store>) {
    let doomed = insert(&*store, draft("Doomed", &["shared"], "bye")).await;
    let kept = insert(&*store, draft("Kept", &["shared"], "stays")).await;
    let second = next_version(&doomed, draft("Doomed", &["shared"], "v2"), 5, "bob");
    store.save_version(&second, 1, "").await.unwrap();

    assert!(store.delete_runbook(doomed.id, at(10)).await.unwrap());

    assert!(store.get_runbook(doomed.id).await.unwrap().is_none());
    assert!(store.list_versions(doomed.id).await.unwrap().is_empty());
    assert!(
        store.get_version(doomed.id, 1).await.unwrap().is_none(),
        "the versions of a deleted runbook are not served"
    );
    assert_eq!(
        names(&*store, filter(None, None)).await,
        (vec!["Kept".to_string()], 1)
    );
    assert_eq!(names(&*store, filter(None, Some("shared"))).await.1, 1);
    assert_eq!(names(&*store, filter(Some("doomed"), None)).await.1, 0);
    assert!(
        !store.delete_runbook(doomed.id, at(11)).await.unwrap(),
        "a second delete reports nothing deleted"
    );
    let resurrect = next_version(&second, draft("Doomed", &[], "v3"), 12, "bob");
    assert!(matches!(
        store.save_version(&resurrect, 2, "").await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(store.get_runbook(kept.id).await.unwrap(), Some(kept));
}

// ---- executions ----

async fn executions_round_trip_and_list_newest_first_with_filters(store: Arc<dyn Store>) {
    let (deploy, cleanup) = (Uuid::new_v4(), Uuid::new_v4());
    let oldest = execution(deploy, 0, ExecutionStatus::Succeeded);
    let middle = execution(cleanup, 10, ExecutionStatus::Failed);
    let newest = execution(deploy, 20, ExecutionStatus::Queued);
    for run in [&middle, &newest, &oldest] {
        store.insert_execution(run, None, None).await.unwrap();
    }

    let loaded = store
        .get_execution(newest.id)
        .await
        .unwrap()
        .expect("stored");
    assert_eq!(
        loaded, newest,
        "every field and the pending steps round trip"
    );

    let ids = |items: Vec<Execution>| items.into_iter().map(|e| e.id).collect::<Vec<_>>();
    let query = |runbook_id, status| ExecutionFilter {
        runbook_id,
        status,
        limit: 100,
        offset: 0,
    };

    let (all, total) = store.list_executions(&query(None, None)).await.unwrap();
    assert_eq!(total, 3);
    assert_eq!(all[0], newest);
    assert_eq!(ids(all), [newest.id, middle.id, oldest.id]);

    let (of_deploy, total) = store
        .list_executions(&query(Some(deploy), None))
        .await
        .unwrap();
    assert_eq!((ids(of_deploy), total), (vec![newest.id, oldest.id], 2));

    let (failed, total) = store
        .list_executions(&query(None, Some(ExecutionStatus::Failed)))
        .await
        .unwrap();
    assert_eq!((ids(failed), total), (vec![middle.id], 1));

    let (none, total) = store
        .list_executions(&query(Some(deploy), Some(ExecutionStatus::Failed)))
        .await
        .unwrap();
    assert_eq!((none.len(), total), (0, 0));

    let page = ExecutionFilter {
        limit: 1,
        offset: 1,
        ..ExecutionFilter::default()
    };
    let (second, total) = store.list_executions(&page).await.unwrap();
    assert_eq!((ids(second), total), (vec![middle.id], 3));
}

async fn status_updates_keep_the_start_time_when_none_is_given(store: Arc<dyn Store>) {
    let run = execution(Uuid::new_v4(), 0, ExecutionStatus::Queued);
    store.insert_execution(&run, None, None).await.unwrap();

    store
        .update_execution_status(run.id, ExecutionStatus::Running, Some(at(1)), None)
        .await
        .unwrap();
    let running = store.get_execution(run.id).await.unwrap().unwrap();
    assert_eq!(
        (running.status, running.started_at, running.finished_at),
        (ExecutionStatus::Running, Some(at(1)), None)
    );

    store
        .update_execution_status(run.id, ExecutionStatus::Paused, None, None)
        .await
        .unwrap();
    let paused = store.get_execution(run.id).await.unwrap().unwrap();
    assert_eq!(
        (paused.status, paused.started_at),
        (ExecutionStatus::Paused, Some(at(1)))
    );

    store
        .update_execution_status(run.id, ExecutionStatus::Succeeded, None, Some(at(9)))
        .await
        .unwrap();
    let done = store.get_execution(run.id).await.unwrap().unwrap();
    assert_eq!(
        (done.status, done.started_at, done.finished_at),
        (ExecutionStatus::Succeeded, Some(at(1)), Some(at(9)))
    );
    assert_eq!(done.created_at, run.created_at);
    assert_eq!(done.steps, run.steps, "a status update leaves the steps");
}

async fn step_updates_record_the_step_and_touch_no_other(store: Arc<dyn Store>) {
    let run = execution(Uuid::new_v4(), 0, ExecutionStatus::Running);
    store.insert_execution(&run, None, None).await.unwrap();
    let failed = StepResult {
        block_id: "check".to_string(),
        status: StepStatus::Failed,
        exit_code: Some(3),
        http_status: Some(503),
        started_at: Some(at(1)),
        finished_at: Some(at(2)),
        output_bytes: 120,
        error: Some("exit code 3".to_string()),
        detail: StepDetail {
            outputs: [("VERSION".to_string(), "1.2.3".to_string())].into(),
            stdout: "ok\n".to_string(),
            stderr: "warning: ü\n".to_string(),
            response: Some(HttpResponse {
                status: 503,
                headers: [("content-type".to_string(), "application/json".to_string())].into(),
                body: "{\"healthy\": false}".to_string(),
                body_bytes: 18,
                truncated: false,
            }),
            branch: Some(Branch::Else),
            reused: true,
            timer: Some(TimerProgress {
                total_ms: 30_000,
                remaining_ms: 12_345,
                at: at(2),
            }),
        },
    };
    store.update_step(run.id, 1, &failed).await.unwrap();

    let loaded = store.get_execution(run.id).await.unwrap().unwrap();
    assert_eq!(loaded.steps[1], failed);
    assert_eq!(loaded.steps[0], run.steps[0]);
    assert_eq!(loaded.steps[2], run.steps[2]);

    let running = StepResult {
        block_id: "wait".to_string(),
        status: StepStatus::Running,
        started_at: Some(at(3)),
        ..StepResult::pending("wait")
    };
    store.update_step(run.id, 2, &running).await.unwrap();
    let loaded = store.get_execution(run.id).await.unwrap().unwrap();
    assert_eq!(loaded.steps, [run.steps[0].clone(), failed, running]);
}

async fn a_steps_captured_output_may_hold_nul_characters(store: Arc<dyn Store>) {
    // `find -print0`, a binary HTTP body: what a step captured keeps its NULs, in the
    // run's first write (a retry's reused results) and in later ones.
    let mut run = execution(Uuid::new_v4(), 0, ExecutionStatus::Running);
    run.steps[0] = StepResult {
        status: StepStatus::Succeeded,
        exit_code: Some(0),
        detail: StepDetail {
            stdout: "./a\0./b\0".to_string(),
            reused: true,
            ..StepDetail::default()
        },
        ..StepResult::pending("intro")
    };
    store.insert_execution(&run, None, None).await.unwrap();
    let step = StepResult {
        status: StepStatus::Succeeded,
        http_status: Some(200),
        detail: StepDetail {
            outputs: [("LIST".to_string(), "x\0y".to_string())].into(),
            stderr: "\0".to_string(),
            response: Some(HttpResponse {
                status: 200,
                headers: [(
                    "content-type".to_string(),
                    "application/octet-stream".to_string(),
                )]
                .into(),
                body: "\u{0}\u{1}\u{2}PK".to_string(),
                body_bytes: 5,
                truncated: false,
            }),
            timer: Some(TimerProgress {
                total_ms: 5_000,
                remaining_ms: 0,
                at: at(3),
            }),
            ..StepDetail::default()
        },
        ..StepResult::pending("check")
    };
    store.update_step(run.id, 1, &step).await.unwrap();

    let loaded = store.get_execution(run.id).await.unwrap().unwrap();
    assert_eq!(
        loaded.steps,
        [run.steps[0].clone(), step.clone(), run.steps[2].clone()]
    );

    // A listing leaves the captured streams and the response out, and keeps the rest.
    let (listed, _) = store
        .list_executions(&ExecutionFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    let listed = listed.into_iter().find(|item| item.id == run.id).unwrap();
    let light = |step: &StepResult| StepResult {
        detail: StepDetail {
            stdout: String::new(),
            stderr: String::new(),
            response: None,
            ..step.detail.clone()
        },
        ..step.clone()
    };
    assert_eq!(
        listed.steps,
        [light(&run.steps[0]), light(&step), run.steps[2].clone()]
    );
    assert!(listed.steps[0].detail.reused);
    assert_eq!(listed.steps[1].detail.outputs["LIST"], "x\0y");
    assert_eq!(listed.steps[1].detail.timer, step.detail.timer);
}

async fn a_retry_keeps_its_link_and_the_results_it_reuses(store: Arc<dyn Store>) {
    let mut retry = execution(Uuid::new_v4(), 5, ExecutionStatus::Queued);
    retry.retry_of = Some(Uuid::new_v4());
    retry.retry_from = Some("check".to_string());
    retry.steps[0] = StepResult {
        status: StepStatus::Succeeded,
        exit_code: Some(0),
        started_at: Some(at(1)),
        finished_at: Some(at(2)),
        detail: StepDetail {
            outputs: [("TOKEN_ID".to_string(), "42".to_string())].into(),
            reused: true,
            ..StepDetail::default()
        },
        ..StepResult::pending("intro")
    };
    store.insert_execution(&retry, None, None).await.unwrap();
    let loaded = store.get_execution(retry.id).await.unwrap().unwrap();
    assert_eq!(loaded, retry);
}

async fn a_run_has_one_live_retry_at_a_time(store: Arc<dyn Store>) {
    let runbook_id = Uuid::new_v4();
    let failed = execution(runbook_id, 1, ExecutionStatus::Failed);
    let other = execution(runbook_id, 2, ExecutionStatus::Stopped);
    for run in [&failed, &other] {
        store.insert_execution(run, None, None).await.unwrap();
    }
    let retry_of = |run: &Execution, created: i64| Execution {
        retry_of: Some(run.id),
        retry_from: Some("check".to_string()),
        ..execution(runbook_id, created, ExecutionStatus::Queued)
    };
    let first = retry_of(&failed, 10);
    store
        .insert_execution(
            &first,
            None,
            Some(&audit_event(
                "bob",
                "execution.retry",
                AuditOutcome::Success,
                10,
            )),
        )
        .await
        .unwrap();
    let head = store.audit_head().await.unwrap();

    // A second retry while the first is live is refused, and leaves nothing behind.
    let second = retry_of(&failed, 11);
    let refused = store
        .insert_execution(
            &second,
            None,
            Some(&audit_event(
                "bob",
                "execution.retry",
                AuditOutcome::Success,
                11,
            )),
        )
        .await;
    assert!(matches!(refused, Err(StoreError::Duplicate)), "{refused:?}");
    assert_eq!(store.get_execution(second.id).await.unwrap(), None);
    assert_eq!(
        store.audit_head().await.unwrap(),
        head,
        "no audit record appended"
    );
    // Another run's retry is not held up.
    store
        .insert_execution(&retry_of(&other, 12), None, None)
        .await
        .unwrap();

    // Once the first retry has ended, whatever its outcome, the run can be retried again.
    for status in [ExecutionStatus::Running, ExecutionStatus::Paused] {
        store
            .record_run(
                first.id,
                &[RunRecord::Status {
                    status,
                    started_at: Some(at(10)),
                    finished_at: None,
                }],
            )
            .await
            .unwrap();
        assert!(matches!(
            store
                .insert_execution(&retry_of(&failed, 13), None, None)
                .await,
            Err(StoreError::Duplicate)
        ));
    }
    store
        .record_run(
            first.id,
            &[RunRecord::Status {
                status: ExecutionStatus::Failed,
                started_at: None,
                finished_at: Some(at(14)),
            }],
        )
        .await
        .unwrap();
    store.insert_execution(&second, None, None).await.unwrap();
    assert_eq!(
        store
            .get_execution(second.id)
            .await
            .unwrap()
            .unwrap()
            .retry_of,
        Some(failed.id)
    );
}

async fn a_retry_chain_has_one_live_retry_at_a_time(store: Arc<dyn Store>) {
    let runbook_id = Uuid::new_v4();
    let retry_of = |run: &Execution, created: i64| Execution {
        retry_of: Some(run.id),
        retry_from: Some("check".to_string()),
        ..execution(runbook_id, created, ExecutionStatus::Queued)
    };
    let end = |run: Uuid, at_: i64| {
        let store = store.clone();
        async move {
            store
                .record_run(
                    run,
                    &[RunRecord::Status {
                        status: ExecutionStatus::Failed,
                        started_at: Some(at(at_)),
                        finished_at: Some(at(at_)),
                    }],
                )
                .await
                .unwrap();
        }
    };
    let original = execution(runbook_id, 1, ExecutionStatus::Failed);
    store.insert_execution(&original, None, None).await.unwrap();
    // The original is retried, and that retry fails too.
    let first = retry_of(&original, 2);
    store.insert_execution(&first, None, None).await.unwrap();
    end(first.id, 3).await;
    // The failed retry is retried: that retry of a retry is live.
    let second = retry_of(&first, 4);
    store.insert_execution(&second, None, None).await.unwrap();

    // Retrying the original (or the first retry) again now would run the same
    // remaining steps beside the live one: refused, nothing stored.
    for (previous, created) in [(&original, 5), (&first, 6)] {
        let third = retry_of(previous, created);
        let refused = store.insert_execution(&third, None, None).await;
        assert!(matches!(refused, Err(StoreError::Duplicate)), "{refused:?}");
        assert_eq!(store.get_execution(third.id).await.unwrap(), None);
    }
    // Another chain is not held up.
    let other = execution(runbook_id, 7, ExecutionStatus::Stopped);
    store.insert_execution(&other, None, None).await.unwrap();
    store
        .insert_execution(&retry_of(&other, 8), None, None)
        .await
        .unwrap();

    // Once the live retry has ended, the chain can be retried again, from any run.
    end(second.id, 9).await;
    let third = retry_of(&original, 10);
    store.insert_execution(&third, None, None).await.unwrap();
    let refused = store
        .insert_execution(&retry_of(&second, 11), None, None)
        .await;
    assert!(matches!(refused, Err(StoreError::Duplicate)), "{refused:?}");
}

async fn a_batch_of_run_records_is_applied_in_order(store: Arc<dyn Store>) {
    let run = execution(Uuid::new_v4(), 0, ExecutionStatus::Queued);
    store.insert_execution(&run, None, None).await.unwrap();
    let running = StepResult {
        status: StepStatus::Running,
        started_at: Some(at(1)),
        ..StepResult::pending("intro")
    };
    let done = StepResult {
        status: StepStatus::Succeeded,
        finished_at: Some(at(2)),
        output_bytes: 6,
        ..running.clone()
    };
    // Every column of a step survives the batch, and steps do not mix.
    let failed = StepResult {
        status: StepStatus::Failed,
        exit_code: Some(3),
        http_status: Some(502),
        started_at: Some(at(2)),
        finished_at: Some(at(3)),
        output_bytes: 0,
        error: Some("exit code 3".to_string()),
        detail: StepDetail {
            stdout: "partial".to_string(),
            stderr: "boom".to_string(),
            outputs: [("KEY".to_string(), "value".to_string())].into(),
            ..Default::default()
        },
        ..StepResult::pending("check")
    };
    store
        .record_run(
            run.id,
            &[
                RunRecord::Status {
                    status: ExecutionStatus::Running,
                    started_at: Some(at(1)),
                    finished_at: None,
                },
                RunRecord::Step {
                    index: 0,
                    step: &running,
                },
                RunRecord::Step {
                    index: 1,
                    step: &failed,
                },
                RunRecord::Output {
                    offset: 0,
                    data: b"hel",
                },
                RunRecord::Output {
                    offset: 3,
                    data: b"lo\n",
                },
                RunRecord::Step {
                    index: 0,
                    step: &done,
                },
                RunRecord::Status {
                    status: ExecutionStatus::Succeeded,
                    started_at: None,
                    finished_at: Some(at(3)),
                },
            ],
        )
        .await
        .unwrap();
    let loaded = store.get_execution(run.id).await.unwrap().unwrap();
    assert_eq!(loaded.status, ExecutionStatus::Succeeded);
    assert_eq!(
        (loaded.started_at, loaded.finished_at),
        (Some(at(1)), Some(at(3)))
    );
    assert_eq!(loaded.steps[0], done);
    assert_eq!(loaded.steps[1], failed);
    assert_eq!(
        loaded.steps[2], run.steps[2],
        "an untouched step stays as it was"
    );
    assert_eq!(store.read_output(run.id, 0, 100).await.unwrap(), b"hello\n");

    // A batch that fails part-way changes nothing: the same offset twice is refused.
    let refused = store
        .record_run(
            run.id,
            &[
                RunRecord::Output {
                    offset: 6,
                    data: b"more",
                },
                RunRecord::Output {
                    offset: 6,
                    data: b"again",
                },
            ],
        )
        .await;
    assert!(refused.is_err());
    assert_eq!(store.read_output(run.id, 0, 100).await.unwrap(), b"hello\n");
}

async fn the_first_stop_request_of_a_run_is_kept(store: Arc<dyn Store>) {
    let run = execution(Uuid::new_v4(), 0, ExecutionStatus::Running);
    store.insert_execution(&run, None, None).await.unwrap();
    assert_eq!(
        store
            .get_execution(run.id)
            .await
            .unwrap()
            .unwrap()
            .stop_requested,
        None
    );
    let first = StopRequest {
        by: "alice".to_string(),
        at: at(5),
    };
    let second = StopRequest {
        by: "bob".to_string(),
        at: at(6),
    };
    store
        .record_run(run.id, &[RunRecord::StopRequested(&first)])
        .await
        .unwrap();
    // A kill after the stop (or a batch written again) does not say someone else asked.
    store
        .record_run(
            run.id,
            &[
                RunRecord::StopRequested(&second),
                RunRecord::Status {
                    status: ExecutionStatus::Stopped,
                    started_at: None,
                    finished_at: Some(at(7)),
                },
            ],
        )
        .await
        .unwrap();
    let loaded = store.get_execution(run.id).await.unwrap().unwrap();
    assert_eq!(loaded.status, ExecutionStatus::Stopped);
    assert_eq!(loaded.stop_requested, Some(first.clone()));
    let (listed, _) = store
        .list_executions(&ExecutionFilter {
            runbook_id: Some(run.runbook_id),
            status: None,
            limit: 10,
            offset: 0,
        })
        .await
        .unwrap();
    assert_eq!(listed[0].stop_requested, Some(first));
}

async fn output_windows_span_chunks_and_start_inside_them(store: Arc<dyn Store>) {
    let run = execution(Uuid::new_v4(), 0, ExecutionStatus::Running);
    store.insert_execution(&run, None, None).await.unwrap();
    assert_eq!(store.output_length(run.id).await.unwrap(), 0);
    // Bytes, not text: a NUL, an invalid UTF-8 byte and half of a `€` must survive.
    let console: Vec<u8> = b"step one\r\n\x00\xff\xe2\x82 two\r\nthree\r\nfour and more".to_vec();
    let cuts = [0, 9, 13, 14, 23, console.len()];
    for window in cuts.windows(2) {
        let (start, end) = (window[0], window[1]);
        store
            .append_output(run.id, start as u64, &console[start..end])
            .await
            .unwrap();
        assert_eq!(store.output_length(run.id).await.unwrap(), end as u64);
    }

    let len = console.len() as u64;
    for offset in 0..=len + 3 {
        for limit in [0, 1, 2, 5, 9, 14, 100] {
            let read = store.read_output(run.id, offset, limit).await.unwrap();
            let from = offset.min(len) as usize;
            let to = (offset + limit).min(len) as usize;
            assert_eq!(
                read,
                &console[from..to],
                "offset {offset}, limit {limit} (chunks start at {cuts:?})"
            );
        }
    }
    assert!(store
        .read_output(run.id, len + 1000, 10)
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .read_output(Uuid::new_v4(), 0, 10)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(store.output_length(Uuid::new_v4()).await.unwrap(), 0);
}

async fn output_of_executions_does_not_mix(store: Arc<dyn Store>) {
    let first = execution(Uuid::new_v4(), 0, ExecutionStatus::Running);
    let second = execution(Uuid::new_v4(), 1, ExecutionStatus::Running);
    store.insert_execution(&first, None, None).await.unwrap();
    store.insert_execution(&second, None, None).await.unwrap();
    store.append_output(first.id, 0, b"aaaa").await.unwrap();
    store.append_output(second.id, 0, b"BB").await.unwrap();
    store.append_output(second.id, 2, b"BBBBBB").await.unwrap();
    store.append_output(first.id, 4, b"aa").await.unwrap();

    assert_eq!(
        store.read_output(first.id, 0, 100).await.unwrap(),
        b"aaaaaa"
    );
    assert_eq!(
        store.read_output(second.id, 0, 100).await.unwrap(),
        b"BBBBBBBB"
    );
    assert_eq!(store.read_output(first.id, 3, 2).await.unwrap(), b"aa");
    assert_eq!(store.read_output(second.id, 3, 2).await.unwrap(), b"BB");
}

async fn output_written_again_after_a_lost_answer_is_stored_once(store: Arc<dyn Store>) {
    let run = execution(Uuid::new_v4(), 0, ExecutionStatus::Running);
    store.insert_execution(&run, None, None).await.unwrap();
    let done = StepResult {
        status: StepStatus::Succeeded,
        output_bytes: 11,
        ..StepResult::pending("intro")
    };
    let batch = [
        RunRecord::Output {
            offset: 0,
            data: b"hello ",
        },
        RunRecord::Output {
            offset: 6,
            data: b"world",
        },
        RunRecord::Step {
            index: 0,
            step: &done,
        },
    ];
    store.record_run(run.id, &batch).await.unwrap();
    // The commit went through but its answer was lost (a dropped connection): the
    // runner writes the same batch again, and the output alone too.
    store.record_run(run.id, &batch).await.unwrap();
    store.append_output(run.id, 6, b"world").await.unwrap();
    store.append_output(run.id, 11, b"!").await.unwrap();

    assert_eq!(
        store.read_output(run.id, 0, 100).await.unwrap(),
        b"hello world!"
    );
    let loaded = store.get_execution(run.id).await.unwrap().unwrap();
    assert_eq!(loaded.steps[0], done);
}

async fn interrupting_marks_live_runs_and_leaves_finished_ones(store: Arc<dyn Store>) {
    let runbook_id = Uuid::new_v4();
    // Every run has a finished first step and a second step in the state matching the run
    // (a finished run's stray `running` step belongs to its history and stays). Finished
    // runs are stored so from the start: a run stored as ended takes no more records.
    let step = |block: &str, status| StepResult {
        block_id: block.to_string(),
        status,
        started_at: Some(at(101)),
        ..StepResult::pending(block)
    };
    let mut runs = Vec::new();
    for (seconds, status) in ExecutionStatus::ALL.into_iter().enumerate() {
        let mut run = execution(runbook_id, seconds as i64, status);
        if status != ExecutionStatus::Queued {
            run.started_at = Some(at(100));
        }
        if status.is_finished() {
            run.finished_at = Some(at(200));
        }
        let second = match status {
            ExecutionStatus::Queued => StepStatus::Pending,
            ExecutionStatus::Paused => StepStatus::Paused,
            ExecutionStatus::Waiting => StepStatus::Waiting,
            _ => StepStatus::Running,
        };
        run.steps[0] = step("intro", StepStatus::Succeeded);
        run.steps[1] = step("check", second);
        store.insert_execution(&run, None, None).await.unwrap();
        runs.push(run);
    }
    let before: Vec<Execution> = {
        let mut loaded = Vec::new();
        for run in &runs {
            loaded.push(store.get_execution(run.id).await.unwrap().unwrap());
        }
        loaded
    };

    // Each run's end is recorded with it.
    let end = |id: Uuid| AuditEvent {
        target: Some(format!("execution:{id}")),
        ..audit_event("system", "execution.finish", AuditOutcome::Failure, 500)
    };
    let mut changed = store
        .interrupt_unfinished(at(500), at(500), Some(&end))
        .await
        .unwrap();
    changed.sort();
    let recorded: Vec<Option<String>> = store
        .audit_chain(0, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|entry| entry.target)
        .collect();
    let expected: Vec<Option<String>> = changed
        .iter()
        .map(|id| Some(format!("execution:{id}")))
        .collect();
    assert_eq!(recorded, expected);
    let mut unfinished: Vec<Uuid> = runs
        .iter()
        .filter(|run| !run.status.is_finished())
        .map(|run| run.id)
        .collect();
    unfinished.sort();
    assert_eq!(changed.len(), 4, "queued, running, paused and waiting runs");
    assert_eq!(changed, unfinished, "the interrupted runs are named");

    for old in before {
        let now = store.get_execution(old.id).await.unwrap().unwrap();
        if old.status.is_finished() {
            assert_eq!(now, old, "a {} run is left alone", old.status);
            continue;
        }
        assert_eq!(
            now.status,
            ExecutionStatus::Interrupted,
            "was {}",
            old.status
        );
        assert_eq!(now.finished_at, Some(at(500)));
        assert_eq!(now.started_at, old.started_at);
        assert_eq!(now.steps[0], old.steps[0], "a finished step stays");
        if old.steps[1].status != StepStatus::Pending {
            assert_eq!(
                (now.steps[1].status, now.steps[1].finished_at),
                (StepStatus::Stopped, Some(at(500))),
                "the {} step of a {} run",
                old.steps[1].status.as_str(),
                old.status
            );
        }
    }

    assert_eq!(
        store
            .interrupt_unfinished(at(600), at(600), Some(&end))
            .await
            .unwrap(),
        Vec::<Uuid>::new()
    );
    assert_eq!(
        store.audit_head().await.unwrap().0,
        changed.len() as i64,
        "nothing more recorded"
    );
}

async fn runs_with_a_fresh_heartbeat_are_not_interrupted(store: Arc<dyn Store>) {
    let runbook_id = Uuid::new_v4();
    let (alive, silent) = (Uuid::new_v4(), Uuid::new_v4());
    let live = execution(runbook_id, 1, ExecutionStatus::Running);
    let orphan = execution(runbook_id, 2, ExecutionStatus::Running);
    // Claimed when stored: alive as of its creation.
    let just_started = execution(runbook_id, 190, ExecutionStatus::Running);
    for run in [&live, &orphan] {
        store.insert_execution(run, None, None).await.unwrap();
    }
    store
        .insert_execution(&just_started, Some(alive), None)
        .await
        .unwrap();
    store
        .claim_execution(live.id, alive, at(100))
        .await
        .unwrap();
    store
        .claim_execution(orphan.id, silent, at(100))
        .await
        .unwrap();
    assert_eq!(
        store.heartbeat(&[live.id], at(200)).await.unwrap(),
        vec![live.id]
    );

    // Runs silent since before 150 count as orphans.
    assert_eq!(
        store
            .interrupt_unfinished(at(210), at(150), None)
            .await
            .unwrap(),
        vec![orphan.id]
    );
    let status = |id| {
        let store = store.clone();
        async move { store.get_execution(id).await.unwrap().unwrap().status }
    };
    assert_eq!(status(live.id).await, ExecutionStatus::Running);
    assert_eq!(status(just_started.id).await, ExecutionStatus::Running);
    assert_eq!(status(orphan.id).await, ExecutionStatus::Interrupted);
    // Its claim ages like any other: silent since 190, it is an orphan after 195.
    assert_eq!(
        store
            .interrupt_unfinished(at(300), at(195), None)
            .await
            .unwrap(),
        vec![just_started.id]
    );
    // A finished run is no longer renewed.
    assert!(store
        .heartbeat(&[orphan.id], at(300))
        .await
        .unwrap()
        .is_empty());
    assert!(store.heartbeat(&[], at(300)).await.unwrap().is_empty());
}

// ---- control requests ----

fn control(execution_id: Uuid, action: ControlAction, seconds: i64) -> ControlRequest {
    ControlRequest {
        id: Uuid::new_v4(),
        execution_id,
        action,
        block_id: None,
        requested_by: "bob".to_string(),
        request_id: None,
        requested_at: at(seconds),
    }
}

/// Long enough for any test to take a request: PostgreSQL counts it from the
/// database's clock, now, and SQLite from `requested_at`, in the tests' past.
const FRESH: std::time::Duration = std::time::Duration::from_secs(3600);

async fn control_requests_are_taken_once_by_the_runs_executor_and_answered(store: Arc<dyn Store>) {
    let runbook_id = Uuid::new_v4();
    let (mine, theirs) = (
        execution(runbook_id, 1, ExecutionStatus::Running),
        execution(runbook_id, 2, ExecutionStatus::Waiting),
    );
    for run in [&mine, &theirs] {
        store.insert_execution(run, None, None).await.unwrap();
    }
    // Stored out of order: taken in the order they were made.
    let resume = control(mine.id, ControlAction::Resume, 20);
    let pause = control(mine.id, ControlAction::Pause, 10);
    let acknowledge = ControlRequest {
        block_id: Some("intro".to_string()),
        requested_by: "carol".to_string(),
        request_id: Some("req-7".to_string()),
        ..control(theirs.id, ControlAction::Acknowledge, 15)
    };
    for request in [&resume, &pause, &acknowledge] {
        store.request_control(request, FRESH).await.unwrap();
    }
    assert!(store
        .take_control_requests(&[], at(30))
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .take_control_requests(&[Uuid::new_v4()], at(30))
        .await
        .unwrap()
        .is_empty());

    // Only the requests of the runs named, each once.
    let taken = store
        .take_control_requests(&[mine.id], at(30))
        .await
        .unwrap();
    assert_eq!(taken, vec![pause.clone(), resume.clone()]);
    assert!(store
        .take_control_requests(&[mine.id], at(31))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        store
            .take_control_requests(&[mine.id, theirs.id], at(31))
            .await
            .unwrap(),
        vec![acknowledge.clone()],
        "the step an acknowledgement names, who asked and in which call come with it"
    );

    // Unanswered until answered.
    assert_eq!(store.control_outcome(pause.id).await.unwrap(), None);
    let applied = ControlOutcome::Applied {
        status: ExecutionStatus::Paused,
    };
    let refused = ControlOutcome::Refused {
        message: "the run is not paused".to_string(),
    };
    store
        .answer_control(pause.id, &applied, at(32), None)
        .await
        .unwrap();
    store
        .answer_control(resume.id, &refused, at(32), None)
        .await
        .unwrap();
    assert_eq!(
        store.control_outcome(pause.id).await.unwrap(),
        Some(applied)
    );
    assert_eq!(
        store.control_outcome(resume.id).await.unwrap(),
        Some(refused)
    );
    assert_eq!(store.control_outcome(acknowledge.id).await.unwrap(), None);

    store.forget_control(pause.id).await.unwrap();
    assert_eq!(store.control_outcome(pause.id).await.unwrap(), None);
    assert!(
        !store.withdraw_control(pause.id).await.unwrap(),
        "gone already"
    );
}

async fn a_control_request_can_be_withdrawn_only_until_it_is_taken(store: Arc<dyn Store>) {
    let run = execution(Uuid::new_v4(), 1, ExecutionStatus::Running);
    store.insert_execution(&run, None, None).await.unwrap();
    let first = control(run.id, ControlAction::Stop, 10);
    store.request_control(&first, FRESH).await.unwrap();
    assert!(store.withdraw_control(first.id).await.unwrap());
    assert!(
        store
            .take_control_requests(&[run.id], at(20))
            .await
            .unwrap()
            .is_empty(),
        "a withdrawn request is never taken"
    );

    let second = control(run.id, ControlAction::Stop, 30);
    store.request_control(&second, FRESH).await.unwrap();
    assert_eq!(
        store
            .take_control_requests(&[run.id], at(40))
            .await
            .unwrap(),
        vec![second.clone()]
    );
    assert!(
        !store.withdraw_control(second.id).await.unwrap(),
        "taken: it may be applied already"
    );
    let applied = ControlOutcome::Applied {
        status: ExecutionStatus::Stopped,
    };
    store
        .answer_control(second.id, &applied, at(41), None)
        .await
        .unwrap();
    assert_eq!(
        store.control_outcome(second.id).await.unwrap(),
        Some(applied)
    );
}

/// PostgreSQL announces a request as it commits: a process waiting for requests
/// (`control_requested`) wakes because of it, not at its next look a second later.
#[tokio::test]
async fn postgres_announces_a_control_request_to_a_waiting_taker() {
    use std::time::Duration;
    run_on_postgres(|store| async move {
        let run = execution(Uuid::new_v4(), 1, ExecutionStatus::Running);
        store.insert_execution(&run, None, None).await.unwrap();
        // The first wait starts listening; nothing is announced meanwhile.
        assert!(!store.control_requested(Duration::from_millis(1)).await);
        let waiter = {
            let store = store.clone();
            tokio::spawn(async move { store.control_requested(Duration::from_secs(30)).await })
        };
        store
            .request_control(&control(run.id, ControlAction::Pause, 10), FRESH)
            .await
            .unwrap();
        assert!(
            waiter.await.unwrap(),
            "the waiter woke without hearing of the request"
        );
    })
    .await;
}

async fn a_control_request_expires_untaken(store: Arc<dyn Store>) {
    let run = execution(Uuid::new_v4(), 1, ExecutionStatus::Running);
    store.insert_execution(&run, None, None).await.unwrap();
    // Its requester gave up on it (or went away): a process that comes back later,
    // or looks only now, leaves it.
    let stale = control(run.id, ControlAction::Stop, 10);
    store
        .request_control(&stale, std::time::Duration::ZERO)
        .await
        .unwrap();
    let fresh = control(run.id, ControlAction::Pause, 20);
    store.request_control(&fresh, FRESH).await.unwrap();
    assert_eq!(
        store
            .take_control_requests(&[run.id], at(30))
            .await
            .unwrap(),
        vec![fresh],
        "only the request still within its patience is taken"
    );
    assert!(
        store.withdraw_control(stale.id).await.unwrap(),
        "the expired request was never taken"
    );
}

async fn answering_a_control_request_appends_its_audit_record(store: Arc<dyn Store>) {
    let run = execution(Uuid::new_v4(), 1, ExecutionStatus::Running);
    store.insert_execution(&run, None, None).await.unwrap();
    store
        .append_audit(audit_event(
            "alice",
            "execution.start",
            AuditOutcome::Success,
            1,
        ))
        .await
        .unwrap();
    let stop = control(run.id, ControlAction::Stop, 10);
    store.request_control(&stop, FRESH).await.unwrap();
    store
        .take_control_requests(&[run.id], at(11))
        .await
        .unwrap();
    let audit = AuditEvent {
        target: Some(format!("execution:{}", run.id)),
        detail: None,
        ..audit_event("bob", "execution.stop", AuditOutcome::Success, 12)
    };
    let applied = ControlOutcome::Applied {
        status: ExecutionStatus::Stopped,
    };
    store
        .answer_control(stop.id, &applied, at(12), Some(&audit))
        .await
        .unwrap();

    assert_eq!(store.control_outcome(stop.id).await.unwrap(), Some(applied));
    let chain = store.audit_chain(0, 10).await.unwrap();
    let recorded: Vec<_> = chain
        .iter()
        .map(|entry| {
            (
                entry.seq,
                entry.actor.as_str(),
                entry.action.as_str(),
                entry.target.clone(),
                entry.request_id.clone(),
            )
        })
        .collect();
    assert_eq!(
        recorded,
        [
            (
                1,
                "alice",
                "execution.start",
                Some("runbook:1".to_string()),
                Some("req-1".to_string())
            ),
            (
                2,
                "bob",
                "execution.stop",
                Some(format!("execution:{}", run.id)),
                Some("req-12".to_string())
            ),
        ]
    );
    assert_chain_intact(store.as_ref(), &chain).await;
}

async fn old_control_requests_are_purged(store: Arc<dyn Store>) {
    let run = execution(Uuid::new_v4(), 1, ExecutionStatus::Running);
    store.insert_execution(&run, None, None).await.unwrap();
    let old = control(run.id, ControlAction::Pause, 10);
    let recent = control(run.id, ControlAction::Resume, 100);
    for request in [&old, &recent] {
        store.request_control(request, FRESH).await.unwrap();
    }
    assert_eq!(store.purge_control_requests(at(50)).await.unwrap(), 1);
    assert_eq!(
        store
            .take_control_requests(&[run.id], at(110))
            .await
            .unwrap(),
        vec![recent]
    );
    assert_eq!(store.purge_control_requests(at(50)).await.unwrap(), 0);
}

// ---- API keys ----

// A runner that was silent too long (its heartbeat lapsed) writes again just as a
// sweep takes its run for an orphan: both lock the run's row and its steps, in the
// same order, so neither waits on the other in a cycle. The first decides: a write
// that comes second is refused, since the run may have been retried meanwhile.
async fn a_sweep_and_a_late_write_of_the_same_run_never_deadlock_and_the_first_wins(
    store: Arc<dyn Store>,
) {
    let runbook_id = Uuid::new_v4();
    let running = StepResult {
        status: StepStatus::Running,
        started_at: Some(at(2)),
        ..StepResult::pending("check")
    };
    let done = StepResult {
        status: StepStatus::Succeeded,
        started_at: Some(at(1)),
        finished_at: Some(at(2)),
        ..StepResult::pending("intro")
    };
    for round in 0..12 {
        let mut run = execution(runbook_id, 1, ExecutionStatus::Running);
        run.steps[0].status = StepStatus::Running;
        store.insert_execution(&run, None, None).await.unwrap();
        let writer = {
            let (store, done, running) = (store.clone(), done.clone(), running.clone());
            tokio::spawn(async move {
                store
                    .record_run(
                        run.id,
                        &[
                            RunRecord::Step {
                                index: 0,
                                step: &done,
                            },
                            RunRecord::Step {
                                index: 1,
                                step: &running,
                            },
                            RunRecord::Output {
                                offset: 0,
                                data: b"late\n",
                            },
                            RunRecord::Status {
                                status: ExecutionStatus::Failed,
                                started_at: None,
                                finished_at: Some(at(3)),
                            },
                        ],
                    )
                    .await
            })
        };
        let sweeper = {
            let store = store.clone();
            tokio::spawn(async move { store.interrupt_unfinished(at(500), at(500), None).await })
        };
        let (written, swept) = (writer.await.unwrap(), sweeper.await.unwrap());
        let swept =
            swept.unwrap_or_else(|error| panic!("round {round}: the sweep failed: {error}"));
        let stored = store.get_execution(run.id).await.unwrap().unwrap();
        let output = store.read_output(run.id, 0, 100).await.unwrap();
        if swept.contains(&run.id) {
            assert!(
                matches!(written, Err(StoreError::Ended)),
                "round {round}: a write after the sweep is refused: {written:?}"
            );
            assert_eq!(stored.status, ExecutionStatus::Interrupted, "round {round}");
            assert_eq!(stored.steps[0].status, StepStatus::Stopped, "round {round}");
            assert!(output.is_empty(), "round {round}: {output:?}");
        } else {
            written
                .unwrap_or_else(|error| panic!("round {round}: the run's write failed: {error}"));
            assert_eq!(stored.status, ExecutionStatus::Failed, "round {round}");
            assert_eq!(
                stored.steps[0].status,
                StepStatus::Succeeded,
                "round {round}"
            );
            assert_eq!(output, b"late\n", "round {round}");
        }
    }
}

// Once a run is stored as ended, nothing its runner sends changes it: its steps,
// output, state and audit trail stay as they were.
async fn a_run_stored_as_ended_refuses_further_records(store: Arc<dyn Store>) {
    let runbook_id = Uuid::new_v4();
    let mut run = execution(runbook_id, 1, ExecutionStatus::Running);
    run.steps[0].status = StepStatus::Running;
    store.insert_execution(&run, None, None).await.unwrap();
    store
        .record_run(
            run.id,
            &[RunRecord::Output {
                offset: 0,
                data: b"before\n",
            }],
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .interrupt_unfinished(at(500), at(500), None)
            .await
            .unwrap(),
        vec![run.id]
    );
    let swept = store.get_execution(run.id).await.unwrap().unwrap();
    let (_, audit_before) = store.list_audit(&AuditFilter::default()).await.unwrap();

    let done = StepResult {
        status: StepStatus::Succeeded,
        finished_at: Some(at(600)),
        ..StepResult::pending("intro")
    };
    let finish = audit_event("alice", "execution.finish", AuditOutcome::Success, 600);
    let late: [&[RunRecord<'_>]; 4] = [
        &[RunRecord::Output {
            offset: 7,
            data: b"after\n",
        }],
        &[RunRecord::Step {
            index: 0,
            step: &done,
        }],
        &[RunRecord::Status {
            status: ExecutionStatus::Succeeded,
            started_at: None,
            finished_at: Some(at(600)),
        }],
        &[RunRecord::Audit(&finish)],
    ];
    for records in late {
        let refused = store.record_run(run.id, records).await;
        assert!(matches!(refused, Err(StoreError::Ended)), "{refused:?}");
    }
    let after = store.get_execution(run.id).await.unwrap().unwrap();
    assert_eq!(after.status, ExecutionStatus::Interrupted);
    assert_eq!(after.steps, swept.steps);
    assert_eq!(after.finished_at, swept.finished_at);
    assert_eq!(
        store.read_output(run.id, 0, 100).await.unwrap(),
        b"before\n"
    );
    let (_, audit_after) = store.list_audit(&AuditFilter::default()).await.unwrap();
    assert_eq!(audit_after, audit_before, "no audit record was appended");
    assert!(store
        .heartbeat(&[run.id], at(700))
        .await
        .unwrap()
        .is_empty());
}

async fn api_keys_are_found_by_hash_and_touched(store: Arc<dyn Store>) {
    let key = ApiKeyRecord {
        id: Uuid::new_v4(),
        name: "deploy bot".to_string(),
        role: Role::Operator,
        token_hash: "a".repeat(64),
        created_at: at(0),
        last_used_at: None,
        expires_at: Some(at(86_400)),
        revoked_at: None,
        user_id: None,
    };
    let other = ApiKeyRecord {
        id: Uuid::new_v4(),
        name: "auditor".to_string(),
        role: Role::Viewer,
        token_hash: "b".repeat(64),
        expires_at: None,
        revoked_at: Some(at(5)),
        user_id: None,
        ..key.clone()
    };
    store.insert_api_key(&key).await.unwrap();
    store.insert_api_key(&other).await.unwrap();

    assert_eq!(
        store.find_api_key(&key.token_hash).await.unwrap(),
        Some(key.clone())
    );
    assert_eq!(
        store.find_api_key(&other.token_hash).await.unwrap(),
        Some(other.clone())
    );
    assert!(store.find_api_key(&"c".repeat(64)).await.unwrap().is_none());

    store.touch_api_key(key.id, at(60)).await.unwrap();
    let touched = store.find_api_key(&key.token_hash).await.unwrap().unwrap();
    assert_eq!(touched.last_used_at, Some(at(60)));
    assert_eq!(
        ApiKeyRecord {
            last_used_at: None,
            ..touched
        },
        key
    );
    let untouched = store
        .find_api_key(&other.token_hash)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(untouched.last_used_at, None);

    let clash = ApiKeyRecord {
        id: Uuid::new_v4(),
        ..key
    };
    assert!(
        store.insert_api_key(&clash).await.is_err(),
        "two keys cannot share a token hash"
    );
}

// ---- credentials, users, audit ----

fn credential(name: &str, sealed: &[u8]) -> CredentialRecord {
    CredentialRecord {
        info: CredentialInfo {
            id: Uuid::new_v4(),
            name: name.to_string(),
            kind: CredentialKind::Basic,
            description: "db".to_string(),
            username: Some("app".to_string()),
            header_name: None,
            hosts: vec![
                "db.example.com".to_string(),
                "*.db.example.com:5432".to_string(),
            ],
            created_at: at(0),
            updated_at: at(0),
            last_used_at: None,
            created_by: "alice".to_string(),
            updated_by: "alice".to_string(),
        },
        sealed: sealed.to_vec(),
    }
}

async fn credentials_round_trip_with_unique_names(store: Arc<dyn Store>) {
    let first = credential("b-cred", &[1, 2, 3]);
    let second = credential("a-cred", &[0, 255, 7]);
    let key = store.init_vault_check(b"key-1").await.unwrap();
    store.insert_credential(&first, &key).await.unwrap();
    store.insert_credential(&second, &key).await.unwrap();
    assert!(matches!(
        store
            .insert_credential(&credential("b-cred", &[9]), &key)
            .await,
        Err(StoreError::Duplicate)
    ));
    // Sealed under a key the database no longer has (rotated elsewhere): refused.
    assert!(matches!(
        store
            .insert_credential(&credential("c-cred", &[9]), b"key-0")
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store.get_credential(first.info.id).await.unwrap(),
        Some(first.clone())
    );
    assert_eq!(
        store.find_credential("a-cred").await.unwrap(),
        Some(second.clone())
    );
    let names: Vec<String> = store
        .list_credentials()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, ["a-cred", "b-cred"]);

    let mut changed = first.clone();
    changed.sealed = vec![4, 5, 6];
    changed.info.description = "rotated".into();
    changed.info.hosts = vec!["[fd00::1]:8443".to_string()];
    changed.info.updated_at = at(10);
    // Without a check the metadata changes and the stored value stays as it is.
    assert!(store.update_credential(&changed, None).await.unwrap());
    let stored = store.get_credential(first.info.id).await.unwrap().unwrap();
    assert_eq!(
        (stored.sealed.as_slice(), stored.info.description.as_str()),
        (&[1u8, 2, 3][..], "rotated")
    );
    assert!(matches!(
        store.update_credential(&changed, Some(b"key-0")).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(store.update_credential(&changed, Some(&key)).await.unwrap());
    store.touch_credential(first.info.id, at(20)).await.unwrap();
    let stored = store.get_credential(first.info.id).await.unwrap().unwrap();
    assert_eq!(stored.sealed, [4, 5, 6]);
    assert_eq!(stored.info.last_used_at, Some(at(20)));
    assert_eq!(stored.info.description, "rotated");
    assert_eq!(stored.info.hosts, ["[fd00::1]:8443"]);

    assert!(store.delete_credential(first.info.id).await.unwrap());
    assert!(!store.delete_credential(first.info.id).await.unwrap());
    assert!(store.get_credential(first.info.id).await.unwrap().is_none());
    assert!(!store.update_credential(&changed, None).await.unwrap());
}

async fn resealing_replaces_every_value_or_nothing(store: Arc<dyn Store>) {
    assert!(store.vault_check().await.unwrap().is_none());
    assert_eq!(store.init_vault_check(&[1]).await.unwrap(), [1]);
    assert_eq!(
        store.init_vault_check(&[2]).await.unwrap(),
        [1],
        "the first check value stays"
    );
    let a = credential("a", &[10]);
    let b = credential("b", &[20]);
    store.insert_credential(&a, &[1]).await.unwrap();
    store.insert_credential(&b, &[1]).await.unwrap();

    let refusals = [
        // Not every credential.
        (vec![(a.info.id, vec![10], vec![11])], vec![1u8]),
        // A value that changed since it was read.
        (
            vec![
                (a.info.id, vec![99], vec![11]),
                (b.info.id, vec![20], vec![21]),
            ],
            vec![1],
        ),
        // A key that another rotation replaced meanwhile.
        (
            vec![
                (a.info.id, vec![10], vec![11]),
                (b.info.id, vec![20], vec![21]),
            ],
            vec![7],
        ),
    ];
    for (resealed, old_check) in refusals {
        assert!(matches!(
            store.reseal_credentials(&resealed, &old_check, &[3]).await,
            Err(StoreError::Conflict(_))
        ));
    }
    assert_eq!(
        store
            .get_credential(a.info.id)
            .await
            .unwrap()
            .unwrap()
            .sealed,
        [10]
    );
    assert_eq!(store.vault_check().await.unwrap().unwrap(), [1]);

    assert_eq!(
        store
            .get_credential(b.info.id)
            .await
            .unwrap()
            .unwrap()
            .sealed,
        [20]
    );
    let all = [
        (a.info.id, vec![10], vec![11]),
        (b.info.id, vec![20], vec![21]),
    ];
    store.reseal_credentials(&all, &[1], &[3]).await.unwrap();
    assert_eq!(
        store
            .get_credential(a.info.id)
            .await
            .unwrap()
            .unwrap()
            .sealed,
        [11]
    );
    assert_eq!(
        store
            .get_credential(b.info.id)
            .await
            .unwrap()
            .unwrap()
            .sealed,
        [21]
    );
    assert_eq!(store.vault_check().await.unwrap().unwrap(), [3]);
}

async fn a_rotation_racing_a_credential_write_lets_one_win_without_a_deadlock(
    store: Arc<dyn Store>,
) {
    let mut key = store.init_vault_check(&[0]).await.unwrap();
    store
        .insert_credential(&credential("first", &[0]), &key)
        .await
        .unwrap();
    for round in 1..=12u8 {
        // What a rotation read: every credential's value, sealed again under a new key.
        let mut resealed = Vec::new();
        for info in store.list_credentials().await.unwrap() {
            let sealed = store.get_credential(info.id).await.unwrap().unwrap().sealed;
            let mut again = sealed.clone();
            again.push(round);
            resealed.push((info.id, sealed, again));
        }
        let new_key = vec![round];
        let write = {
            let (store, key) = (store.clone(), key.clone());
            tokio::spawn(async move {
                let record = credential(&format!("cred-{round}"), &[round]);
                store.insert_credential(&record, &key).await
            })
        };
        let rotation = {
            let (store, key, new_key) = (store.clone(), key.clone(), new_key.clone());
            tokio::spawn(async move { store.reseal_credentials(&resealed, &key, &new_key).await })
        };
        let (written, rotated) = (write.await.unwrap(), rotation.await.unwrap());
        // The credential sealed under the old key, or the rotation that missed it, is
        // refused as a conflict: never both stored, never a deadlock.
        for result in [&written, &rotated] {
            assert!(
                matches!(result, Ok(()) | Err(StoreError::Conflict(_))),
                "round {round}: {result:?}"
            );
        }
        assert!(
            written.is_ok() != rotated.is_ok(),
            "round {round}: exactly one wins ({written:?}, {rotated:?})"
        );
        if rotated.is_ok() {
            key = new_key;
        }
        assert_eq!(store.vault_check().await.unwrap().unwrap(), key);
    }
}

async fn users_own_keys_and_deleting_one_revokes_them(store: Arc<dyn Store>) {
    let user = User {
        id: Uuid::new_v4(),
        name: "bob".into(),
        role: Role::Operator,
        created_at: at(0),
        updated_at: at(0),
        disabled_at: None,
    };
    store.insert_user(&user).await.unwrap();
    assert!(matches!(
        store
            .insert_user(&User {
                id: Uuid::new_v4(),
                ..user.clone()
            })
            .await,
        Err(StoreError::Duplicate)
    ));
    let changed = User {
        role: Role::Editor,
        disabled_at: Some(at(5)),
        updated_at: at(5),
        ..user.clone()
    };
    let update = |role, disabled| UserChange { role, disabled };
    assert_eq!(
        store
            .update_user(user.id, update(Some(Role::Editor), Some(true)), at(5))
            .await
            .unwrap(),
        Some(changed.clone())
    );
    // A change leaves what it does not name as stored, and disabling again keeps the
    // time the user was first disabled.
    assert_eq!(
        store
            .update_user(user.id, update(None, Some(true)), at(6))
            .await
            .unwrap()
            .map(|user| (user.role, user.disabled_at)),
        Some((Role::Editor, Some(at(5))))
    );
    let changed = User {
        updated_at: at(7),
        ..changed
    };
    assert_eq!(
        store
            .update_user(user.id, update(None, None), at(7))
            .await
            .unwrap(),
        Some(changed.clone())
    );
    assert_eq!(
        store.get_user(user.id).await.unwrap(),
        Some(changed.clone())
    );
    assert_eq!(store.list_users().await.unwrap(), vec![changed]);

    let key = ApiKeyRecord {
        id: Uuid::new_v4(),
        name: "bob's key".into(),
        role: Role::Operator,
        token_hash: "d".repeat(64),
        created_at: at(1),
        last_used_at: None,
        expires_at: None,
        revoked_at: None,
        user_id: Some(user.id),
    };
    let own = ApiKeyRecord {
        id: Uuid::new_v4(),
        token_hash: "e".repeat(64),
        user_id: None,
        created_at: at(2),
        ..key.clone()
    };
    store.insert_api_key(&key).await.unwrap();
    store.insert_api_key(&own).await.unwrap();
    let listed = store.list_api_keys().await.unwrap();
    assert_eq!(
        listed.iter().map(|k| k.id).collect::<Vec<_>>(),
        [own.id, key.id],
        "newest first"
    );
    assert_eq!(listed[1].user_id, Some(user.id));

    assert!(store.delete_user(user.id, at(9)).await.unwrap());
    assert!(!store.delete_user(user.id, at(9)).await.unwrap());
    assert_eq!(
        store
            .find_api_key(&key.token_hash)
            .await
            .unwrap()
            .unwrap()
            .revoked_at,
        Some(at(9))
    );
    assert_eq!(
        store
            .find_api_key(&own.token_hash)
            .await
            .unwrap()
            .unwrap()
            .revoked_at,
        None
    );
    assert!(store.revoke_api_key(own.id, at(10)).await.unwrap());
    assert!(store.revoke_api_key(own.id, at(11)).await.unwrap());
    assert_eq!(
        store
            .find_api_key(&own.token_hash)
            .await
            .unwrap()
            .unwrap()
            .revoked_at,
        Some(at(10)),
        "the first revocation time stays"
    );
    assert!(!store.revoke_api_key(Uuid::new_v4(), at(10)).await.unwrap());
}

fn admin_user(name: &str) -> User {
    User {
        id: Uuid::new_v4(),
        name: name.into(),
        role: Role::Admin,
        created_at: at(0),
        updated_at: at(0),
        disabled_at: None,
    }
}

fn admin_key(expires_at: Option<DateTime<Utc>>) -> ApiKeyRecord {
    ApiKeyRecord {
        id: Uuid::new_v4(),
        name: "automation".into(),
        role: Role::Admin,
        token_hash: Uuid::new_v4().simple().to_string(),
        created_at: at(0),
        last_used_at: None,
        expires_at,
        revoked_at: None,
        user_id: None,
    }
}

async fn the_last_admin_cannot_be_taken_away(store: Arc<dyn Store>) {
    let ada = admin_user("ada");
    store.insert_user(&ada).await.unwrap();
    // A key of a user and an expired admin key keep no one in charge.
    let own = ApiKeyRecord {
        user_id: Some(ada.id),
        ..admin_key(None)
    };
    let expired = admin_key(Some(at(5)));
    store.insert_api_key(&own).await.unwrap();
    store.insert_api_key(&expired).await.unwrap();

    let demote = UserChange {
        role: Some(Role::Editor),
        disabled: None,
    };
    let disable = UserChange {
        role: None,
        disabled: Some(true),
    };
    for change in [demote, disable] {
        assert!(matches!(
            store.update_user(ada.id, change, at(10)).await,
            Err(StoreError::LastAdmin)
        ));
    }
    assert!(matches!(
        store.delete_user(ada.id, at(10)).await,
        Err(StoreError::LastAdmin)
    ));
    assert_eq!(store.get_user(ada.id).await.unwrap(), Some(ada.clone()));
    assert_eq!(
        store
            .find_api_key(&own.token_hash)
            .await
            .unwrap()
            .unwrap()
            .revoked_at,
        None,
        "the refused delete revoked none of her keys"
    );
    // A change that leaves her an admin is no concern.
    let enable = UserChange {
        role: Some(Role::Admin),
        disabled: Some(false),
    };
    assert!(store
        .update_user(ada.id, enable, at(11))
        .await
        .unwrap()
        .is_some());

    // A standing admin key keeps someone in charge; then it is the last admin.
    let standing = admin_key(Some(at(1_000)));
    store.insert_api_key(&standing).await.unwrap();
    assert!(store
        .update_user(ada.id, demote, at(12))
        .await
        .unwrap()
        .is_some());
    assert!(matches!(
        store.revoke_api_key(standing.id, at(20)).await,
        Err(StoreError::LastAdmin)
    ));
    assert_eq!(
        store
            .find_api_key(&standing.token_hash)
            .await
            .unwrap()
            .unwrap()
            .revoked_at,
        None
    );
    // Keys that are no admin's own can go; once the standing key has expired, so can it.
    assert!(store.revoke_api_key(expired.id, at(20)).await.unwrap());
    assert!(store.revoke_api_key(own.id, at(20)).await.unwrap());
    assert!(store.revoke_api_key(standing.id, at(2_000)).await.unwrap());
    // Unknown ids are still just absent.
    assert_eq!(
        store
            .update_user(Uuid::new_v4(), demote, at(30))
            .await
            .unwrap(),
        None
    );
    assert!(!store.delete_user(Uuid::new_v4(), at(30)).await.unwrap());
    assert!(!store.revoke_api_key(Uuid::new_v4(), at(30)).await.unwrap());
}

async fn admins_demoting_each_other_at_once_leave_one_admin(store: Arc<dyn Store>) {
    let (ada, bob) = (admin_user("ada"), admin_user("bob"));
    store.insert_user(&ada).await.unwrap();
    store.insert_user(&bob).await.unwrap();
    for round in 0..10 {
        let role = |role| UserChange {
            role: Some(role),
            disabled: None,
        };
        let (a, b) = tokio::join!(
            store.update_user(ada.id, role(Role::Viewer), at(100 + round)),
            store.update_user(bob.id, role(Role::Viewer), at(100 + round))
        );
        let refused = [&a, &b]
            .iter()
            .filter(|outcome| matches!(outcome, Err(StoreError::LastAdmin)))
            .count();
        assert_eq!(refused, 1, "round {round}: {a:?} {b:?}");
        assert!(matches!((&a, &b), (Ok(Some(_)), _) | (_, Ok(Some(_)))));
        let admins: Vec<_> = store
            .list_users()
            .await
            .unwrap()
            .into_iter()
            .filter(|user| user.role == Role::Admin)
            .collect();
        assert_eq!(admins.len(), 1, "round {round}");
        // Both admins again for the next round.
        let demoted = if a.is_ok() { ada.id } else { bob.id };
        assert!(store
            .update_user(demoted, role(Role::Admin), at(100 + round))
            .await
            .unwrap()
            .is_some());
    }
}

fn audit_event(actor: &str, action: &str, outcome: AuditOutcome, second: i64) -> AuditEvent {
    AuditEvent {
        at: at(second),
        actor: actor.into(),
        action: action.into(),
        target: Some(format!("runbook:{second}")),
        outcome,
        request_id: Some(format!("req-{second}")),
        detail: Some(json!({"n": second}).to_string()),
    }
}

/// Checks that `chain` (the whole trail) links up and ends at the stored head; returns it.
async fn assert_chain_intact(store: &dyn Store, chain: &[AuditEntry]) -> (i64, String) {
    let mut verifier = ChainVerifier::default();
    assert!(chain.iter().all(|entry| verifier.check(entry)));
    let head = store.audit_head().await.unwrap();
    verifier.finish(Some((head.0, &head.1)));
    assert_eq!(verifier.broken(), None);
    head
}

async fn a_runs_audit_records_commit_with_its_start_and_its_end(store: Arc<dyn Store>) {
    let run = execution(Uuid::new_v4(), 0, ExecutionStatus::Queued);
    let start = audit_event("bob", "execution.start", AuditOutcome::Success, 1);
    store
        .insert_execution(&run, None, Some(&start))
        .await
        .unwrap();
    // A start that is not stored leaves no record of itself.
    let again = audit_event("bob", "execution.start", AuditOutcome::Success, 2);
    assert!(store
        .insert_execution(&run, None, Some(&again))
        .await
        .is_err());
    let end = audit_event("bob", "execution.finish", AuditOutcome::Failure, 3);
    store
        .record_run(
            run.id,
            &[
                RunRecord::Status {
                    status: ExecutionStatus::Failed,
                    started_at: None,
                    finished_at: Some(at(3)),
                },
                RunRecord::Audit(&end),
            ],
        )
        .await
        .unwrap();

    let stored = store.get_execution(run.id).await.unwrap().unwrap();
    assert_eq!(stored.status, ExecutionStatus::Failed);
    let chain = store.audit_chain(0, 10).await.unwrap();
    assert_eq!(
        chain
            .iter()
            .map(|entry| (entry.seq, entry.action.as_str(), entry.at))
            .collect::<Vec<_>>(),
        [
            (1, "execution.start", at(1)),
            (2, "execution.finish", at(3))
        ]
    );
    assert_chain_intact(store.as_ref(), &chain).await;
}

async fn run_audit_records_chain_with_other_writers(store: Arc<dyn Store>) {
    let success = AuditOutcome::Success;
    // One after the other: a run's end is chained after a record written in between.
    let run = execution(Uuid::new_v4(), 0, ExecutionStatus::Queued);
    let start = audit_event("bob", "execution.start", success, 1);
    store
        .insert_execution(&run, None, Some(&start))
        .await
        .unwrap();
    store
        .append_audit(audit_event("alice", "runbook.update", success, 2))
        .await
        .unwrap();
    let end = audit_event("bob", "execution.finish", success, 3);
    store
        .record_run(
            run.id,
            &[
                RunRecord::Status {
                    status: ExecutionStatus::Succeeded,
                    started_at: Some(at(1)),
                    finished_at: Some(at(3)),
                },
                RunRecord::Audit(&end),
            ],
        )
        .await
        .unwrap();
    // All at once: runs starting while other records are written.
    let mut writers = Vec::new();
    for i in 0..10 {
        let runs = store.clone();
        writers.push(tokio::spawn(async move {
            let run = execution(Uuid::new_v4(), 10 + i, ExecutionStatus::Queued);
            let start = audit_event("carol", "execution.start", AuditOutcome::Success, 10 + i);
            runs.insert_execution(&run, None, Some(&start))
                .await
                .unwrap();
        }));
        let others = store.clone();
        writers.push(tokio::spawn(async move {
            let update = audit_event("alice", "runbook.update", AuditOutcome::Success, 30 + i);
            others.append_audit(update).await.unwrap();
        }));
    }
    for writer in writers {
        writer.await.unwrap();
    }

    let chain = store.audit_chain(0, 100).await.unwrap();
    assert_eq!(
        chain.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=23).collect::<Vec<_>>()
    );
    let count = |action: &str| chain.iter().filter(|e| e.action == action).count();
    assert_eq!(
        (
            count("execution.start"),
            count("runbook.update"),
            count("execution.finish")
        ),
        (11, 11, 1)
    );
    let head = assert_chain_intact(store.as_ref(), &chain).await;
    assert_eq!(head.0, 23);
    let stored = store.get_execution(run.id).await.unwrap().unwrap();
    assert_eq!(
        (stored.status, stored.started_at, stored.finished_at),
        (ExecutionStatus::Succeeded, Some(at(1)), Some(at(3)))
    );
    let (_, total) = store
        .list_executions(&ExecutionFilter {
            runbook_id: None,
            status: None,
            limit: 100,
            offset: 0,
        })
        .await
        .unwrap();
    assert_eq!(total, 11);
}

async fn a_run_write_dropped_midway_leaves_the_store_whole_and_writable(store: Arc<dyn Store>) {
    let mut runs = Vec::new();
    for i in 0..8 {
        let run = execution(Uuid::new_v4(), i, ExecutionStatus::Queued);
        let start = audit_event("bob", "execution.start", AuditOutcome::Success, i);
        // Polled a few times, the database working in between, then dropped (a client
        // that went away): the write may be anywhere in its transaction.
        let mut write = Box::pin(store.insert_execution(&run, None, Some(&start)));
        for _ in 0..=i {
            let poll = std::future::poll_fn(|cx| Poll::Ready(write.as_mut().poll(cx).is_ready()));
            if poll.await {
                break;
            }
            std::thread::sleep(std::time::Duration::from_micros(150));
        }
        drop(write);
        // Another writer still gets the database, at once rather than after a lock
        // timeout, and so does the next run.
        let update = audit_event("alice", "runbook.update", AuditOutcome::Success, 10 + i);
        store.append_audit(update).await.unwrap();
        let end = audit_event("bob", "execution.finish", AuditOutcome::Success, 20 + i);
        let ended = store.record_run(run.id, &[RunRecord::Audit(&end)]).await;
        runs.push((run.id, ended.is_ok()));
    }

    let chain = store.audit_chain(0, 100).await.unwrap();
    assert_chain_intact(store.as_ref(), &chain).await;
    let count = |action: &str| chain.iter().filter(|e| e.action == action).count();
    assert_eq!(count("runbook.update"), 8);
    // Each run is there whole, with its start recorded, or not at all.
    let mut stored = 0;
    for (id, _) in &runs {
        if let Some(execution) = store.get_execution(*id).await.unwrap() {
            assert_eq!(execution.steps.len(), 3);
            stored += 1;
        }
    }
    assert_eq!(count("execution.start"), stored);
    let ended = runs.iter().filter(|(_, ended)| *ended).count();
    assert_eq!(count("execution.finish"), ended);
}

async fn audit_records_chain_in_order_even_when_written_at_once(store: Arc<dyn Store>) {
    let mut writers = Vec::new();
    for i in 0..20 {
        let store = store.clone();
        writers.push(tokio::spawn(async move {
            store
                .append_audit(audit_event(
                    "alice",
                    "runbook.update",
                    AuditOutcome::Success,
                    i,
                ))
                .await
                .unwrap()
        }));
    }
    for writer in writers {
        writer.await.unwrap();
    }
    let chain = store.audit_chain(0, 100).await.unwrap();
    assert_eq!(
        chain.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=20).collect::<Vec<_>>()
    );
    let head = assert_chain_intact(store.as_ref(), &chain).await;
    assert_eq!(head.0, 20);
    assert_eq!(
        store
            .audit_chain(15, 3)
            .await
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect::<Vec<_>>(),
        [16, 17, 18]
    );
    // What was stored hashes to what was chained: times and details survive the round trip.
    assert!(chain
        .iter()
        .all(|entry| entry.expected_hash() == entry.hash));
}

async fn audit_listing_filters_and_pages_newest_first(store: Arc<dyn Store>) {
    let events = [
        ("alice", "credential.create", AuditOutcome::Success),
        ("bob", "credential.use", AuditOutcome::Failure),
        ("alice", "runbook.create", AuditOutcome::Success),
        ("bob", "credentialXuse", AuditOutcome::Denied),
        ("carol", "auth.failure", AuditOutcome::Failure),
    ];
    for (i, (actor, action, outcome)) in events.into_iter().enumerate() {
        store
            .append_audit(audit_event(actor, action, outcome, i as i64 * 10))
            .await
            .unwrap();
    }
    let page = |filter: AuditFilter| {
        let store = store.clone();
        async move {
            let (items, total) = store
                .list_audit(&AuditFilter {
                    limit: 50,
                    ..filter
                })
                .await
                .unwrap();
            (items.into_iter().map(|e| e.seq).collect::<Vec<_>>(), total)
        }
    };
    assert_eq!(page(AuditFilter::default()).await, (vec![5, 4, 3, 2, 1], 5));
    assert_eq!(
        page(AuditFilter {
            actor: Some("bob".into()),
            ..Default::default()
        })
        .await,
        (vec![4, 2], 2)
    );
    assert_eq!(
        page(AuditFilter {
            action: Some("credential.".into()),
            ..Default::default()
        })
        .await,
        (vec![2, 1], 2),
        "a prefix ends at the dot; `_` and `%` are literal"
    );
    assert_eq!(
        page(AuditFilter {
            action: Some("credential.use".into()),
            ..Default::default()
        })
        .await,
        (vec![2], 1)
    );
    assert_eq!(
        page(AuditFilter {
            outcome: Some(AuditOutcome::Failure),
            ..Default::default()
        })
        .await,
        (vec![5, 2], 2)
    );
    assert_eq!(
        page(AuditFilter {
            target: Some("runbook:20".into()),
            ..Default::default()
        })
        .await,
        (vec![3], 1)
    );
    assert_eq!(
        page(AuditFilter {
            since: Some(at(20)),
            until: Some(at(40)),
            ..Default::default()
        })
        .await,
        (vec![4, 3], 2)
    );
    let (items, total) = store
        .list_audit(&AuditFilter {
            limit: 2,
            offset: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        (items.iter().map(|e| e.seq).collect::<Vec<_>>(), total),
        (vec![4, 3], 5)
    );
    assert_eq!(items[0].detail.as_deref(), Some(r#"{"n":30}"#));
}

async fn an_action_prefix_matches_case_like_an_exact_action(store: Arc<dyn Store>) {
    for (i, action) in ["credential.use", "Credential.use", "runbook.create"]
        .into_iter()
        .enumerate()
    {
        store
            .append_audit(audit_event(
                "alice",
                action,
                AuditOutcome::Success,
                i as i64,
            ))
            .await
            .unwrap();
    }
    let seqs = |action: &str| {
        audit_seqs(
            store.clone(),
            AuditFilter {
                action: Some(action.to_string()),
                ..AuditFilter::default()
            },
        )
    };
    assert_eq!(seqs("credential.use").await, (vec![1], 1));
    assert_eq!(seqs("credential.").await, (vec![1], 1));
    assert_eq!(seqs("Credential.").await, (vec![2], 1));
    assert_eq!(seqs("CREDENTIAL.").await, (vec![], 0));
    assert_eq!(seqs("runbook.").await, (vec![3], 1));
}

/// The sequence numbers of the audit records `filter` finds (up to 50), in order, and
/// the total it counts.
async fn audit_seqs(store: Arc<dyn Store>, filter: AuditFilter) -> (Vec<i64>, i64) {
    let filter = AuditFilter {
        limit: 50,
        ..filter
    };
    let (items, total) = store.list_audit(&filter).await.unwrap();
    let mut seqs: Vec<_> = items.into_iter().map(|e| e.seq).collect();
    seqs.sort();
    (seqs, total)
}

async fn a_target_filter_takes_a_whole_target_or_a_bare_name(store: Arc<dyn Store>) {
    let targets = [
        "credential:payments-token",
        "credential:old-payments-token",
        "user:payments-token",
        "credential:Payments-token",
        "payments-token",
        "runbook:42",
    ];
    for (i, target) in targets.into_iter().enumerate() {
        let mut event = audit_event("alice", "credential.use", AuditOutcome::Success, i as i64);
        event.target = Some(target.to_string());
        store.append_audit(event).await.unwrap();
    }
    let seqs = |target: &str| {
        audit_seqs(
            store.clone(),
            AuditFilter {
                target: Some(target.to_string()),
                ..AuditFilter::default()
            },
        )
    };
    // A whole target matches itself alone.
    assert_eq!(seqs("credential:payments-token").await, (vec![1], 1));
    // A bare name matches itself and the name under any kind, exactly: not a longer
    // name ending in it, not another case.
    assert_eq!(seqs("payments-token").await, (vec![1, 3, 5], 3));
    assert_eq!(seqs("42").await, (vec![6], 1));
    assert_eq!(seqs("token").await, (vec![], 0));
    assert_eq!(
        seqs("a-very-long-name-longer-than-any-target").await,
        (vec![], 0)
    );
}

/// A team database closed to connections (maintenance, a failover) makes a call fail
/// as unavailable, which front ends answer with "try again", not as a fault of ours.
#[tokio::test]
async fn a_database_closed_to_connections_is_unavailable() {
    let admin_url = std::env::var("RUNBOOK_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_string());
    let name = format!("rbs_test_{}", Uuid::new_v4().simple());
    let mut admin = sqlx::PgConnection::connect(&admin_url).await.unwrap();
    async fn sql(admin: &mut sqlx::PgConnection, statement: String) {
        sqlx::query(&statement).execute(admin).await.unwrap();
    }
    sql(&mut admin, format!("CREATE DATABASE {name}")).await;
    let store = PostgresStore::connect(&with_database(&admin_url, &name))
        .await
        .unwrap();
    let filter = RunbookFilter {
        limit: 10,
        ..Default::default()
    };
    store.list_runbooks(&filter).await.unwrap();
    sql(
        &mut admin,
        format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false"),
    )
    .await;
    sql(
        &mut admin,
        format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"),
    )
    .await;
    let error = store.list_runbooks(&filter).await.unwrap_err();
    assert!(error.is_unavailable(), "{error:?}");
    // A call's own mistakes are not.
    assert!(!StoreError::NotFound.is_unavailable());
    assert!(!StoreError::Database(sqlx::Error::RowNotFound).is_unavailable());
    sql(
        &mut admin,
        format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
    )
    .await;
}

/// What a statement gets for what it asks (a privilege it lacks, bytes its encoding
/// refuses, an object in the wrong state) is no outage: retrying cannot help, so it
/// is not unavailable, even where its code reads like a number SQLite uses for busy.
#[tokio::test]
async fn a_statements_own_error_is_not_unavailable_and_a_busy_sqlite_is() {
    let admin_url = std::env::var("RUNBOOK_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_string());
    let mut admin = sqlx::PgConnection::connect(&admin_url).await.unwrap();
    for (code, retryable) in [
        // Low byte 5 or 6, SQLite's busy and locked.
        ("42501", false),
        ("22021", false),
        ("22022", false),
        // A statement's "object not in prerequisite state", not a closed database.
        ("55000", false),
        ("40001", true),
    ] {
        let error = sqlx::query(&format!(
            "DO $$ BEGIN RAISE EXCEPTION 'raised' USING ERRCODE = '{code}'; END $$"
        ))
        .execute(&mut admin)
        .await
        .unwrap_err();
        let error = StoreError::Database(error);
        assert_eq!(error.is_unavailable(), retryable, "{code}: {error:?}");
    }

    // SQLite reports busy by its extended code; a writer that finds the lock taken is busy.
    let dir = tempfile::tempdir().unwrap();
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(dir.path().join("busy.db"))
        .create_if_missing(true)
        .busy_timeout(std::time::Duration::ZERO);
    let mut holder = sqlx::SqliteConnection::connect_with(&options)
        .await
        .unwrap();
    let mut writer = sqlx::SqliteConnection::connect_with(&options)
        .await
        .unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut holder)
        .await
        .unwrap();
    let error = sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut writer)
        .await
        .unwrap_err();
    let error = StoreError::Database(error);
    assert!(error.is_unavailable(), "{error:?}");
}
