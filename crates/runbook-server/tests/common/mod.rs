//! Helpers shared by the tests that run the `runbook-studio` binary.
#![allow(dead_code)]

use std::process::Command;

pub const BIN: &str = env!("CARGO_BIN_EXE_runbook-studio");

/// The binary on SQLite in `data_dir`, quiet unless something goes wrong.
pub fn cli(data_dir: &std::path::Path) -> Command {
    let mut command = Command::new(BIN);
    command
        .env_remove("DATABASE_URL")
        .env_remove("RUNBOOK_MASTER_KEY")
        .env("RUNBOOK_DATA_DIR", data_dir)
        // Tests never touch the keychain of the machine they run on.
        .env("RUNBOOK_NO_KEYCHAIN", "true")
        .env("RUNBOOK_LOG", "warn")
        // Colour follows the terminal alone, whatever the environment running the tests asks.
        .env_remove("CLICOLOR_FORCE")
        .env_remove("CLICOLOR")
        .env_remove("NO_COLOR");
    command
}

/// Creates an API key with `keys create` and returns its token.
pub fn create_key(data_dir: &std::path::Path, name: &str, role: &str) -> String {
    let output = cli(data_dir)
        .args(["keys", "create", "--name", name, "--role", role])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .last()
        .unwrap()
        .to_string()
}

/// A loopback port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

// ---- servers, databases and searching for secrets ----

/// A `runbook-studio serve` child process, stopped with SIGTERM (or killed) when dropped.
pub struct ServerProcess {
    pub child: std::process::Child,
    pub port: u16,
}

impl ServerProcess {
    /// Starts `command` (which already names its data directory and database) as
    /// `serve` on a free port and waits until `/healthz` answers.
    pub fn start(mut command: Command) -> ServerProcess {
        let port = free_port();
        let child = command
            .args(["serve", "--addr", &format!("127.0.0.1:{port}")])
            .spawn()
            .expect("the binary starts");
        let mut server = ServerProcess { child, port };
        server.wait_until_ready();
        server
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn wait_until_ready(&mut self) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("the server exited before it answered: {status:?}");
            }
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the server never listened on port {}",
                self.port
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// SIGTERM, then waits for a clean exit.
    /// Sends `signal` to the server, and waits a moment for it to act.
    pub fn signal(&mut self, signal: nix::sys::signal::Signal) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), signal);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while self.child.try_wait().unwrap().is_none() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    pub fn stop(&mut self) -> std::process::ExitStatus {
        if let Some(status) = self.child.try_wait().unwrap() {
            return status;
        }
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("the server ignored SIGTERM for 30 s");
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The PostgreSQL server tests use (trust authentication on the project machine).
pub fn postgres_admin_url() -> String {
    std::env::var("RUNBOOK_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

/// `url` pointing at `database` instead of the database it names.
pub fn with_database(url: &str, database: &str) -> String {
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

/// Runs SQL with `psql` and returns its unaligned, tuples-only output; panics on an error.
pub fn psql(url: &str, sql: &str) -> String {
    let output = Command::new("psql")
        .args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            url,
            "-c",
            sql,
        ])
        .output()
        .unwrap_or_else(|error| {
            panic!("psql cannot be started ({error}); install the Debian package postgresql-client")
        });
    assert!(
        output.status.success(),
        "psql failed on `{sql}`: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Like [`psql`], but returns the error text instead of panicking when the SQL fails.
pub fn try_psql(url: &str, sql: &str) -> Result<String, String> {
    let output = Command::new("psql")
        .args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            url,
            "-c",
            sql,
        ])
        .output()
        .expect("psql starts");
    if output.status.success() {
        Ok(String::from_utf8(output.stdout).unwrap())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

/// A fresh PostgreSQL database of its own, dropped when this is dropped.
pub struct PgDatabase {
    pub name: String,
    pub url: String,
    admin_url: String,
}

impl PgDatabase {
    pub fn create() -> PgDatabase {
        let admin_url = postgres_admin_url();
        let name = format!("rbs_srv_{}", uuid::Uuid::new_v4().simple());
        if let Err(error) = try_psql(&admin_url, &format!("CREATE DATABASE {name}")) {
            panic!(
                "cannot create a PostgreSQL test database at {admin_url}: {error}. Start \
                 PostgreSQL or point RUNBOOK_TEST_POSTGRES_URL at a server where this user may \
                 CREATE DATABASE."
            );
        }
        PgDatabase {
            url: with_database(&admin_url, &name),
            name,
            admin_url,
        }
    }

    /// Every row of every table in the public schema, as text (one line per row).
    pub fn dump_all_rows(&self) -> String {
        let tables = psql(
            &self.url,
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename",
        );
        let mut dump = String::new();
        for table in tables.lines().filter(|t| !t.is_empty()) {
            dump.push_str(&format!("-- {table}\n"));
            dump.push_str(&psql(
                &self.url,
                &format!("SELECT t::text FROM \"{table}\" t"),
            ));
        }
        dump
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let _ = try_psql(
            &self.admin_url,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

/// Runs SQL on a SQLite file with the `sqlite3` shell; panics on an error.
pub fn sqlite3(db: &std::path::Path, sql: &str) -> String {
    let output = Command::new("sqlite3")
        .arg(db)
        .arg(sql)
        .output()
        .unwrap_or_else(|error| {
            panic!("sqlite3 cannot be started ({error}); install the Debian package sqlite3")
        });
    assert!(
        output.status.success(),
        "sqlite3 failed on `{sql}`: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Like [`sqlite3`], but returns the error text instead of panicking when the SQL fails.
pub fn try_sqlite3(db: &std::path::Path, sql: &str) -> Result<String, String> {
    let output = Command::new("sqlite3").arg(db).arg(sql).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    if output.status.success() && stderr.is_empty() {
        Ok(String::from_utf8(output.stdout).unwrap())
    } else {
        Err(stderr)
    }
}

/// Standard base64 (with padding) of `bytes`.
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The forms a secret could take if it were stored or logged without encryption:
/// as is, in hex (how PostgreSQL prints bytea) and in base64.
pub fn leak_forms(secret: &str) -> Vec<(String, Vec<u8>)> {
    vec![
        ("plain".to_string(), secret.as_bytes().to_vec()),
        ("hex".to_string(), hex(secret.as_bytes()).into_bytes()),
        (
            "HEX".to_string(),
            hex(secret.as_bytes()).to_uppercase().into_bytes(),
        ),
        ("base64".to_string(), base64(secret.as_bytes()).into_bytes()),
    ]
}

/// Where in `haystack` any form of `secret` occurs, described for an assertion message.
pub fn find_leaks(what: &str, haystack: &[u8], secret: &str) -> Vec<String> {
    leak_forms(secret)
        .into_iter()
        .filter(|(_, needle)| {
            haystack
                .windows(needle.len())
                .any(|w| w == needle.as_slice())
        })
        .map(|(form, _)| format!("{what} holds the secret ({form})"))
        .collect()
}

/// Every regular file below `dir`.
pub fn files_below(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// Serves `service` over real HTTP on a loopback port (client addresses reach the
/// lockout); returns the base URL and the sender that stops long-lived streams.
pub async fn serve_in_process(
    service: &runbook_core::Service,
) -> (String, tokio::sync::watch::Sender<bool>) {
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let base = serve_state(runbook_server::AppState::new(service.clone(), shutdown)).await;
    (base, stop)
}

/// Serves the app with `state` over real HTTP on a loopback port; returns the base URL.
pub async fn serve_state(state: runbook_server::AppState) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let router = runbook_server::app(state, None);
    tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
        .unwrap()
    });
    base
}

/// A service on SQLite in a fresh data directory, its router (called in-process) and
/// an admin key's token. The directory lives as long as the returned guard.
pub async fn in_process_app() -> (
    axum::Router,
    runbook_core::Service,
    String,
    tempfile::TempDir,
) {
    in_process_app_serving(None).await
}

/// Like [`in_process_app`], the router also serving the built UI in `ui_dir`.
pub async fn in_process_app_serving(
    ui_dir: Option<std::path::PathBuf>,
) -> (
    axum::Router,
    runbook_core::Service,
    String,
    tempfile::TempDir,
) {
    let dir = tempfile::tempdir().unwrap();
    let service = runbook_core::Service::open(runbook_core::Config::from_data_dir(dir.path()))
        .await
        .unwrap();
    let admin = service
        .create_api_key(
            &runbook_core::Actor::system(),
            "admin",
            runbook_domain::Role::Admin,
        )
        .await
        .unwrap()
        .token;
    let (_tx, shutdown) = tokio::sync::watch::channel(false);
    let router = runbook_server::app(
        runbook_server::AppState::new(service.clone(), shutdown),
        ui_dir,
    );
    (router, service, admin, dir)
}
