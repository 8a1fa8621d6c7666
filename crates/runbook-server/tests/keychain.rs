//! The master key really lives in the system keychain: a private D-Bus session with
//! an unlocked gnome-keyring (Secret Service) is started, and the real binary, with
//! the keychain allowed and no key in its environment, keeps its master key there:
//! no key file appears, `secret-tool` finds the entry, a restarted server opens the
//! credentials again, and a start without the keychain is refused without changing
//! anything.

use serde_json::{json, Value};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::ServerProcess;

const SECRET: &str = "kept-by-the-keychain-42";

/// Where `program` is on PATH, if anywhere.
fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|dir| dir.join(program))
        .find(|path| path.is_file())
}

/// A private D-Bus session bus with an unlocked gnome-keyring; its whole process
/// group is killed when dropped.
struct KeyringSession {
    child: Child,
    address: String,
    _home: tempfile::TempDir,
}

impl KeyringSession {
    fn start() -> KeyringSession {
        let missing: Vec<&str> = [
            ("dbus-run-session", "dbus-daemon"),
            ("gnome-keyring-daemon", "gnome-keyring"),
            ("secret-tool", "libsecret-tools"),
        ]
        .into_iter()
        .filter(|(program, _)| which(program).is_none())
        .map(|(_, package)| package)
        .collect();
        assert!(
            missing.is_empty(),
            "the keychain test needs a Secret Service: install the Debian packages \
             gnome-keyring, dbus-daemon and libsecret-tools (missing: {})",
            missing.join(", ")
        );
        // A home and runtime directory of its own: the keyring files and control
        // socket go there, never into the machine's real keyring.
        let home = tempfile::tempdir().unwrap();
        let runtime = home.path().join("run");
        std::fs::create_dir(&runtime).unwrap();
        std::fs::set_permissions(
            &runtime,
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .unwrap();
        let address_file = home.path().join("bus-address");
        let script = format!(
            "eval \"$(printf pw | gnome-keyring-daemon --unlock --components=secrets)\"; \
             echo \"$DBUS_SESSION_BUS_ADDRESS\" > '{}'; sleep 600",
            address_file.display()
        );
        let child = Command::new("dbus-run-session")
            .args(["--", "sh", "-c", &script])
            .env("HOME", home.path())
            .env("XDG_DATA_HOME", home.path().join("data"))
            .env("XDG_RUNTIME_DIR", &runtime)
            .env_remove("DBUS_SESSION_BUS_ADDRESS")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("dbus-run-session starts");
        let mut session = KeyringSession {
            child,
            address: String::new(),
            _home: home,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let address = std::fs::read_to_string(&address_file).unwrap_or_default();
            if address.trim().starts_with("unix:") {
                session.address = address.trim().to_string();
                break;
            }
            if let Some(status) = session.child.try_wait().unwrap() {
                panic!("the D-Bus session ended before it was ready: {status:?}");
            }
            assert!(
                Instant::now() < deadline,
                "no D-Bus session address after 20 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        session
    }

    /// `secret-tool search --all` output (stdout and stderr) for `attribute value`.
    fn search(&self, attribute: &str, value: &str) -> String {
        let output = Command::new("secret-tool")
            .args(["search", "--all", attribute, value])
            .env("DBUS_SESSION_BUS_ADDRESS", &self.address)
            .output()
            .unwrap();
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    }
}

impl Drop for KeyringSession {
    fn drop(&mut self) {
        // The whole group: dbus-run-session, dbus-daemon, gnome-keyring-daemon, sleep.
        let group = nix::unistd::Pid::from_raw(-(self.child.id() as i32));
        let _ = nix::sys::signal::kill(group, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if nix::sys::signal::kill(group, None).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = nix::sys::signal::kill(group, nix::sys::signal::Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

/// The binary with the keychain allowed and no master key in its environment.
fn keychain_cli(data_dir: &Path, bus: &str) -> Command {
    let mut command = common::cli(data_dir);
    command
        .env_remove("RUNBOOK_NO_KEYCHAIN")
        .env_remove("RUNBOOK_MASTER_KEY_FILE")
        .env("DBUS_SESSION_BUS_ADDRESS", bus);
    command
}

async fn send(
    base: &str,
    key: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .request(method.parse().unwrap(), format!("{base}{path}"))
        .header("x-api-key", key);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Runs the runbook over REST and returns its final status and console.
async fn run(base: &str, key: &str, runbook: &str) -> (String, String) {
    let (status, run) = send(
        base,
        key,
        "POST",
        &format!("/runbooks/{runbook}/execute"),
        Some(json!({})),
    )
    .await;
    assert_eq!(status, 202, "{run}");
    let id = run["id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, now) = send(base, key, "GET", &format!("/executions/{id}"), None).await;
        let status = now["status"].as_str().unwrap_or("").to_string();
        if ["succeeded", "failed", "stopped", "interrupted"].contains(&status.as_str()) {
            let (_, output) =
                send(base, key, "GET", &format!("/executions/{id}/output"), None).await;
            return (status, format!("{now}\n{}", output["text"]));
        }
        assert!(Instant::now() < deadline, "the run never finished: {now}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn quiet(mut command: Command) -> Command {
    command.stdout(Stdio::null());
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_master_key_lives_in_the_secret_service_and_survives_restarts() {
    let session = KeyringSession::start();
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path();
    let bus = session.address.clone();

    let output = keychain_cli(data_dir, &bus)
        .args(["keys", "create", "--name", "admin", "--role", "admin"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let key = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .last()
        .unwrap()
        .to_string();

    let mut server = ServerProcess::start(quiet(keychain_cli(data_dir, &bus)));
    let base = server.base();
    let (status, vault) = send(&base, &key, "GET", "/vault", None).await;
    assert_eq!(status, 200, "{vault}");
    assert_eq!(
        vault["source"], "keychain",
        "the key came from the keychain: {vault}"
    );
    assert_eq!(vault["warning"], Value::Null);
    let (status, created) = send(
        &base,
        &key,
        "POST",
        "/credentials",
        Some(json!({"name": "kc-secret", "kind": "secret", "value": SECRET})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let (status, runbook) = send(
        &base,
        &key,
        "POST",
        "/runbooks",
        Some(json!({"name": "keychain-check", "blocks": [
            {"id": "check", "kind": "command", "script": format!("test \"$TOKEN\" = '{SECRET}'"),
             "secrets": {"TOKEN": "kc-secret"}}
        ]})),
    )
    .await;
    assert_eq!(status, 201, "{runbook}");
    let runbook = runbook["id"].as_str().unwrap().to_string();
    let (status, console) = run(&base, &key, &runbook).await;
    assert_eq!(status, "succeeded", "{console}");
    assert!(server.stop().success());

    let key_files: Vec<_> = common::files_below(data_dir)
        .into_iter()
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().contains("master.key"))
        })
        .collect();
    assert!(
        key_files.is_empty(),
        "no key file with a keychain: {key_files:?}"
    );
    let found = session.search("service", "dev.runbook-studio");
    let account = format!(
        "master-key {}",
        std::fs::canonicalize(data_dir).unwrap().display()
    );
    assert!(
        found.contains("dev.runbook-studio") && found.contains(&account),
        "secret-tool finds the master key entry for this data dir ({account}):\n{}",
        found
            .lines()
            .filter(|l| !l.starts_with("secret = "))
            .collect::<Vec<_>>()
            .join("\n")
    );

    // A new process reads the key back from the Secret Service.
    let mut server = ServerProcess::start(quiet(keychain_cli(data_dir, &bus)));
    let (status, console) = run(&server.base(), &key, &runbook).await;
    assert_eq!(status, "succeeded", "after a restart: {console}");
    assert!(server.stop().success());

    // Without the keychain (and without a bus) the key is not the database's: refused.
    let mut refused = common::cli(data_dir);
    refused
        .env_remove("DBUS_SESSION_BUS_ADDRESS")
        .args(["--no-keychain", "serve", "--addr"])
        .arg(format!("127.0.0.1:{}", common::free_port()))
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = refused.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    let status = status.unwrap_or_else(|| {
        panic!("the server started with the wrong master key (no keychain): {stderr}")
    });
    assert!(
        !status.success(),
        "a start with the wrong key fails: {stderr}"
    );
    assert!(
        stderr.contains("is not the one this database's credentials were sealed with"),
        "the refusal says why: {stderr}"
    );

    // Nothing changed: the keychain still opens the credentials.
    let mut problems = Vec::new();
    let after = keychain_cli(data_dir, &bus)
        .args(["run", "keychain-check"])
        .output()
        .unwrap();
    if !after.status.success() {
        problems.push(format!(
            "after the refused start without the keychain, a run under the keychain fails \
             (exit {:?}): {}",
            after.status.code(),
            String::from_utf8_lossy(&after.stderr)
        ));
    }
    let left = data_dir.join("master.key");
    if left.exists() {
        problems.push(format!(
            "the refused start left a key file behind ({}); with it present the keychain is \
             no longer consulted",
            left.display()
        ));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    drop(session);
}
