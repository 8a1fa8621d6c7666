//! Helpers shared by the tests that run the `runbook-studio` binary.
#![allow(dead_code)]

use std::process::Command;

pub const BIN: &str = env!("CARGO_BIN_EXE_runbook-studio");

/// The binary on SQLite in `data_dir`, quiet unless something goes wrong.
pub fn cli(data_dir: &std::path::Path) -> Command {
    let mut command = Command::new(BIN);
    command
        .env_remove("DATABASE_URL")
        .env("RUNBOOK_DATA_DIR", data_dir)
        .env("RUNBOOK_LOG", "warn");
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
