//! The security commands of the `runbook-studio` binary: users and the keys they
//! own (`keys list` never shows a token, a revoked key gets 401 at once), master key
//! rotation (credentials still open in a run afterwards, the old key no longer does),
//! and `audit verify` naming the record an attacker with database access edited,
//! deleted or swapped, on SQLite and on PostgreSQL.

use runbook_core::{Actor, Config, KeySetting, Service};
use serde_json::json;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

mod common;

use common::{PgDatabase, ServerProcess};

fn text(output: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn run_ok(mut command: Command, args: &[&str]) -> String {
    let output = command.args(args).output().unwrap();
    assert!(
        output.status.success(),
        "{args:?} failed: {}",
        text(&output)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn run_fails(mut command: Command, args: &[&str]) -> Output {
    let output = command.args(args).output().unwrap();
    assert!(
        !output.status.success(),
        "{args:?} should fail: {}",
        text(&output)
    );
    output
}

/// The token on the last line of `keys create`.
fn token_of(stdout: &str) -> String {
    let token = stdout.lines().last().unwrap().trim().to_string();
    assert!(
        token.starts_with("rbs_") && token.len() == 68,
        "not a token: {stdout}"
    );
    token
}

/// The id at the start of the `keys list` line naming `name`.
fn key_line<'a>(list: &'a str, name: &str) -> &'a str {
    list.lines()
        .find(|line| line.split_whitespace().nth(2) == Some(name))
        .unwrap_or_else(|| panic!("no key `{name}` in:\n{list}"))
}

async fn me(base: &str, token: &str) -> (u16, serde_json::Value) {
    let response = reqwest::Client::new()
        .get(format!("{base}/me"))
        .header("x-api-key", token)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_keys_are_listed_without_tokens_and_a_revoked_key_gets_401_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let cli = || common::cli(dir.path());
    let created = run_ok(
        cli(),
        &["users", "create", "--name", "alice", "--role", "operator"],
    );
    assert!(
        created.contains("alice") && created.contains("operator"),
        "{created}"
    );
    let alice = token_of(&run_ok(
        cli(),
        &[
            "keys",
            "create",
            "--name",
            "alice-laptop",
            "--user",
            "alice",
        ],
    ));
    let ci = token_of(&run_ok(
        cli(),
        &[
            "keys",
            "create",
            "--name",
            "ci",
            "--role",
            "viewer",
            "--expires-in-days",
            "30",
        ],
    ));
    let nobody = run_fails(
        cli(),
        &["keys", "create", "--name", "ghost", "--user", "nobody"],
    );
    assert!(
        String::from_utf8_lossy(&nobody.stderr).contains("no user is named `nobody`"),
        "{}",
        text(&nobody)
    );
    run_fails(
        cli(),
        &[
            "keys", "create", "--name", "both", "--role", "admin", "--user", "alice",
        ],
    );

    let users = run_ok(cli(), &["users", "list"]);
    assert!(
        users
            .lines()
            .any(|l| l.contains("alice") && l.contains("operator") && l.contains("active")),
        "{users}"
    );
    let list = run_ok(cli(), &["keys", "list"]);
    let alice_line = key_line(&list, "alice-laptop");
    assert!(
        alice_line.contains("operator")
            && alice_line.contains("(user alice)")
            && alice_line.contains("active"),
        "a user's key shows the user and the user's role: {alice_line}"
    );
    let ci_line = key_line(&list, "ci");
    assert!(
        ci_line.contains("viewer") && ci_line.contains("expires"),
        "{ci_line}"
    );
    for token in [&alice, &ci] {
        let secret = &token["rbs_".len()..];
        let shown = (0..=secret.len() - 12).any(|i| list.contains(&secret[i..i + 12]));
        assert!(!shown, "`keys list` shows (part of) a token:\n{list}");
    }
    let alice_id = alice_line.split_whitespace().next().unwrap().to_string();
    assert!(uuid::Uuid::parse_str(&alice_id).is_ok(), "{alice_line}");

    let mut server = ServerProcess::start({
        let mut command = cli();
        command.stdout(Stdio::null());
        command
    });
    let base = server.base();
    let (status, body) = me(&base, &alice).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"name": "alice", "role": "operator"}),
        "a user's key acts as the user"
    );
    assert_eq!(me(&base, &ci).await.0, 200);

    let revoked = run_ok(cli(), &["keys", "revoke", &alice_id]);
    assert!(revoked.contains(&alice_id), "{revoked}");
    let (status, body) = me(&base, &alice).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("unauthenticated")),
        "a revoked key is refused by the running server at once: {body}"
    );
    assert_eq!(me(&base, &ci).await.0, 200, "other keys keep working");
    let list = run_ok(cli(), &["keys", "list"]);
    assert!(
        key_line(&list, "alice-laptop").contains("revoked"),
        "{list}"
    );

    run_fails(cli(), &["keys", "revoke", "not-a-uuid"]);
    run_fails(
        cli(),
        &["keys", "revoke", &uuid::Uuid::new_v4().to_string()],
    );
    assert!(server.stop().success());
}

/// Stores the secret credential `svc` and a runbook `uses-secret` whose command
/// succeeds only when `$TOKEN` holds its value.
fn seed_credential(config: Config, value: &str) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let service = Service::open(config).await.expect("the service opens");
        service
            .create_credential(
                &Actor::system(),
                json!({"name": "svc", "kind": "secret", "value": value}),
            )
            .await
            .unwrap();
        service
            .create_runbook(
                &Actor::system(),
                json!({"name": "uses-secret", "blocks": [
                    {"id": "check", "kind": "command",
                     "script": format!("test \"$TOKEN\" = '{value}'"),
                     "secrets": {"TOKEN": "svc"}}
                ]}),
            )
            .await
            .unwrap();
    });
}

fn sealed_values(db: &Path) -> String {
    common::sqlite3(
        db,
        "SELECT hex(sealed) FROM credentials UNION ALL SELECT hex(sealed) FROM vault_check",
    )
}

#[test]
fn rotating_the_master_key_on_sqlite_keeps_credentials_usable_and_retires_the_old_key() {
    let dir = tempfile::tempdir().unwrap();
    let cli = || common::cli(dir.path());
    seed_credential(Config::from_data_dir(dir.path()), "rotate-me-value");
    let key_file = dir.path().join("master.key");
    let db = dir.path().join("runbook-studio.db");
    run_ok(cli(), &["run", "uses-secret"]);

    let old_key = std::fs::read_to_string(&key_file).unwrap();
    let old_sealed = sealed_values(&db);
    let rotated = run_ok(cli(), &["keys", "rotate-master"]);
    assert!(
        rotated.contains("Re-encrypted 1 credentials") && rotated.contains("master.key"),
        "{rotated}"
    );
    let new_key = std::fs::read_to_string(&key_file).unwrap();
    assert_ne!(
        old_key.trim(),
        new_key.trim(),
        "the key file holds a new key"
    );
    assert_eq!(
        std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(
        !dir.path().join("master.key.next").exists(),
        "no staged key is left behind"
    );
    assert_ne!(old_sealed, sealed_values(&db), "every sealed value changed");

    let after = cli().args(["run", "uses-secret"]).output().unwrap();
    assert!(
        after.status.success(),
        "the credential opens after the rotation: {}",
        text(&after)
    );

    // The key comes from a file here: a file for a new key makes no sense and changes nothing.
    let refused = run_fails(
        cli(),
        &["keys", "rotate-master", "--new-key-file", "/tmp/unused.key"],
    );
    assert!(
        text(&refused).contains("without --new-key-file"),
        "{}",
        text(&refused)
    );
    assert_eq!(std::fs::read_to_string(&key_file).unwrap(), new_key);

    // The old key no longer opens this database: the binary refuses to start with it.
    std::fs::write(&key_file, &old_key).unwrap();
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let old = run_fails(cli(), &["run", "uses-secret"]);
    assert!(
        text(&old).contains("is not the one this database's credentials were sealed with"),
        "{}",
        text(&old)
    );
    std::fs::write(&key_file, &new_key).unwrap();
    run_ok(cli(), &["run", "uses-secret"]);

    let rotations = common::sqlite3(
        &db,
        "SELECT outcome FROM audit_log WHERE action = 'vault.rotate' ORDER BY seq",
    );
    assert_eq!(
        rotations.split_whitespace().collect::<Vec<_>>(),
        ["success", "failure"]
    );
    let verified = run_ok(cli(), &["audit", "verify"]);
    assert!(verified.contains("intact"), "{verified}");
}

#[test]
fn rotating_a_master_key_from_the_environment_writes_the_new_key_to_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = uuid::Uuid::new_v4().as_bytes().to_vec();
    bytes.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    let old_key = common::base64(&bytes);
    let mut config = Config::from_data_dir(dir.path());
    config.master_key = KeySetting::Environment(old_key.clone().into());
    seed_credential(config, "from-the-environment");
    let with_key = |key: &str| {
        let mut command = common::cli(dir.path());
        command.env("RUNBOOK_MASTER_KEY", key);
        command
    };
    run_ok(with_key(&old_key), &["run", "uses-secret"]);
    assert!(
        !dir.path().join("master.key").exists(),
        "the key came from the environment"
    );

    let refused = run_fails(with_key(&old_key), &["keys", "rotate-master"]);
    assert!(
        text(&refused).contains("--new-key-file"),
        "{}",
        text(&refused)
    );
    run_ok(with_key(&old_key), &["run", "uses-secret"]);

    let new_file = dir.path().join("next-master.key");
    let rotated = run_ok(
        with_key(&old_key),
        &[
            "keys",
            "rotate-master",
            "--new-key-file",
            new_file.to_str().unwrap(),
        ],
    );
    assert!(rotated.contains("RUNBOOK_MASTER_KEY"), "{rotated}");
    assert_eq!(
        std::fs::metadata(&new_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let new_key = std::fs::read_to_string(&new_file)
        .unwrap()
        .trim()
        .to_string();
    assert_ne!(new_key, old_key);

    let stale = run_fails(with_key(&old_key), &["run", "uses-secret"]);
    assert!(
        text(&stale).contains("is not the one this database's credentials were sealed with"),
        "{}",
        text(&stale)
    );
    run_ok(with_key(&new_key), &["run", "uses-secret"]);
}

/// How the tampering tests reach the database behind the binary.
trait Database {
    fn cli(&self) -> Command;
    fn sql(&self, sql: &str) -> String;
    fn try_sql(&self, sql: &str) -> Result<String, String>;
    /// Lifts the append-only protection, as an attacker with database access can.
    fn disable_protection(&self);
}

struct Sqlite(tempfile::TempDir);

impl Database for Sqlite {
    fn cli(&self) -> Command {
        common::cli(self.0.path())
    }
    fn sql(&self, sql: &str) -> String {
        common::sqlite3(&self.0.path().join("runbook-studio.db"), sql)
    }
    fn try_sql(&self, sql: &str) -> Result<String, String> {
        common::try_sqlite3(&self.0.path().join("runbook-studio.db"), sql)
    }
    fn disable_protection(&self) {
        self.sql("DROP TRIGGER audit_log_no_update; DROP TRIGGER audit_log_no_delete;");
    }
}

struct Postgres(PgDatabase, tempfile::TempDir);

impl Database for Postgres {
    fn cli(&self) -> Command {
        let mut command = common::cli(self.1.path());
        command.env("DATABASE_URL", &self.0.url);
        command
    }
    fn sql(&self, sql: &str) -> String {
        common::psql(&self.0.url, sql)
    }
    fn try_sql(&self, sql: &str) -> Result<String, String> {
        common::try_psql(&self.0.url, sql)
    }
    fn disable_protection(&self) {
        self.sql("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only");
    }
}

/// `audit verify`: its exit code and stdout.
fn verify(db: &dyn Database) -> (Option<i32>, String) {
    let output = db.cli().args(["audit", "verify"]).output().unwrap();
    (
        output.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

const COLUMNS: &str = "at, actor, action, target, outcome, request_id, detail, prev_hash, hash";

fn tampering_is_found_where_it_happened(db: &dyn Database) {
    // Six audited actions: four users, two keys.
    for name in ["u1", "u2", "u3", "u4"] {
        run_ok(
            db.cli(),
            &["users", "create", "--name", name, "--role", "viewer"],
        );
    }
    run_ok(
        db.cli(),
        &["keys", "create", "--name", "k1", "--role", "viewer"],
    );
    run_ok(
        db.cli(),
        &["keys", "create", "--name", "k2", "--user", "u1"],
    );
    let count: i64 = db
        .sql("SELECT count(*) FROM audit_log")
        .trim()
        .parse()
        .unwrap();
    assert_eq!(count, 6, "one record per audited command");
    let (code, out) = verify(db);
    assert_eq!(code, Some(0), "an untouched trail verifies: {out}");
    assert!(out.contains("intact") && out.contains("6 records"), "{out}");

    // The application cannot change or remove records...
    let update = db.try_sql("UPDATE audit_log SET actor = 'mallory' WHERE seq = 3");
    let delete = db.try_sql("DELETE FROM audit_log WHERE seq = 3");
    for attempt in [update, delete] {
        let error = attempt.expect_err("the audit trail refuses changes");
        assert!(error.contains("append-only"), "{error}");
    }
    // ... but someone with access to the database can; verify must notice.
    db.disable_protection();
    db.sql("CREATE TABLE audit_backup AS SELECT * FROM audit_log");
    // What was done, and what `audit verify` must say about it.
    let cases: [(&str, String, &str); 6] = [
        (
            "an edited actor",
            "UPDATE audit_log SET actor = 'mallory' WHERE seq = 3".into(),
            "BROKEN at record #3:",
        ),
        (
            "an edited outcome",
            "UPDATE audit_log SET outcome = 'failure' WHERE seq = 5".into(),
            "BROKEN at record #5:",
        ),
        (
            // Reported at the first record whose link fails, naming the missing one.
            "a deleted record",
            "DELETE FROM audit_log WHERE seq = 4".into(),
            "record #4 is missing",
        ),
        (
            "two swapped records",
            format!(
                "UPDATE audit_log SET ({COLUMNS}) = (SELECT {COLUMNS} FROM audit_backup b \
                 WHERE b.seq = CASE audit_log.seq WHEN 2 THEN 5 ELSE 2 END) WHERE seq IN (2, 5)"
            ),
            "BROKEN at record #2:",
        ),
        (
            "two records renumbered into each other's place",
            "UPDATE audit_log SET seq = CASE seq WHEN 1 THEN 102 ELSE 101 END WHERE seq IN (1, 2); \
             UPDATE audit_log SET seq = seq - 100 WHERE seq > 100"
                .into(),
            "BROKEN at record #1:",
        ),
        (
            "the last record deleted",
            "DELETE FROM audit_log WHERE seq = 6".into(),
            "BROKEN at record #6:",
        ),
    ];
    let mut problems = Vec::new();
    for (what, sql, expected) in cases {
        db.sql(&sql);
        let (code, out) = verify(db);
        if code != Some(1) || !out.contains("BROKEN at record #") || !out.contains(expected) {
            problems.push(format!(
                "{what}: expected exit 1 and `{expected}`, got exit {code:?}: {out}"
            ));
        }
        db.sql(&format!(
            "DELETE FROM audit_log; INSERT INTO audit_log (seq, {COLUMNS}) \
             SELECT seq, {COLUMNS} FROM audit_backup"
        ));
        let (code, out) = verify(db);
        assert_eq!(code, Some(0), "after restoring from {what}: {out}");
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn audit_verify_names_the_tampered_record_on_sqlite() {
    let db = Sqlite(tempfile::tempdir().unwrap());
    tampering_is_found_where_it_happened(&db);
}

#[test]
fn audit_verify_names_the_tampered_record_on_postgres() {
    let db = Postgres(PgDatabase::create(), tempfile::tempdir().unwrap());
    tampering_is_found_where_it_happened(&db);
}
