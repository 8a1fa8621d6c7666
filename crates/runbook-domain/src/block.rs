//! The five block kinds a runbook is made of.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Names of the block kinds, as they appear in the `kind` field.
pub const BLOCK_KINDS: [&str; 5] = ["instruction", "command", "api_call", "conditional", "timer"];

/// One step of a runbook. Every block has a stable `id`, unique within its runbook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Block {
    /// Markdown guidance; with `confirm` the run waits for a person to acknowledge it.
    Instruction {
        id: String,
        #[serde(default)]
        text: String,
        #[serde(default)]
        confirm: bool,
    },
    /// A shell script run on a host.
    Command {
        id: String,
        script: String,
        #[serde(default)]
        shell: Shell,
        #[serde(default = "default_host")]
        host: String,
        #[serde(default)]
        timeout_secs: Option<u64>,
        #[serde(default)]
        workdir: Option<String>,
        #[serde(default)]
        env: BTreeMap<String, String>,
        #[serde(default = "default_exit_codes")]
        expect_exit_codes: Vec<i32>,
        #[serde(default)]
        on_failure: FailurePolicy,
        #[serde(default)]
        secrets: BTreeMap<String, String>,
    },
    /// An HTTP request, optionally authenticated with a stored credential.
    ApiCall {
        id: String,
        #[serde(default)]
        method: HttpMethod,
        url: String,
        #[serde(default)]
        headers: BTreeMap<String, String>,
        #[serde(default)]
        body: Option<String>,
        #[serde(default)]
        credential: Option<String>,
        #[serde(default)]
        timeout_secs: Option<u64>,
        #[serde(default = "default_status")]
        expect_status: Vec<u16>,
        #[serde(default)]
        on_failure: FailurePolicy,
    },
    /// Runs `then` or `else` depending on an expression over params and earlier steps.
    Conditional {
        id: String,
        expr: String,
        #[serde(default)]
        then: Vec<Block>,
        #[serde(default, rename = "else")]
        otherwise: Vec<Block>,
    },
    /// Waits a number of seconds.
    Timer { id: String, seconds: u64 },
}

fn default_host() -> String {
    "local".to_string()
}

fn default_exit_codes() -> Vec<i32> {
    vec![0]
}

fn default_status() -> Vec<u16> {
    vec![200]
}

impl Block {
    /// The block's stable id.
    pub fn id(&self) -> &str {
        match self {
            Block::Instruction { id, .. }
            | Block::Command { id, .. }
            | Block::ApiCall { id, .. }
            | Block::Conditional { id, .. }
            | Block::Timer { id, .. } => id,
        }
    }

    /// The block's kind name, as in the `kind` field.
    pub fn kind(&self) -> &'static str {
        match self {
            Block::Instruction { .. } => "instruction",
            Block::Command { .. } => "command",
            Block::ApiCall { .. } => "api_call",
            Block::Conditional { .. } => "conditional",
            Block::Timer { .. } => "timer",
        }
    }

    /// Nested blocks (the branches of a conditional); empty for other kinds.
    pub fn children(&self) -> impl Iterator<Item = &Block> {
        let (then, otherwise): (&[Block], &[Block]) = match self {
            Block::Conditional {
                then, otherwise, ..
            } => (then, otherwise),
            _ => (&[], &[]),
        };
        then.iter().chain(otherwise.iter())
    }
}

/// The shell a command block runs in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Shell {
    #[default]
    Sh,
    Bash,
    Zsh,
}

impl Shell {
    /// The program name of the shell.
    pub fn program(self) -> &'static str {
        match self {
            Shell::Sh => "sh",
            Shell::Bash => "bash",
            Shell::Zsh => "zsh",
        }
    }
}

/// What happens to the run when a step fails.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailurePolicy {
    /// The run fails at this step (the default).
    #[default]
    Stop,
    /// The failure is recorded and the run goes on.
    Continue,
}

/// HTTP methods an api_call block may use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    #[default]
    Get,
    Head,
    Post,
    Put,
    Patch,
    Delete,
    Options,
}

impl HttpMethod {
    /// The method as sent on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            HttpMethod::Get => "GET",
            HttpMethod::Head => "HEAD",
            HttpMethod::Post => "POST",
            HttpMethod::Put => "PUT",
            HttpMethod::Patch => "PATCH",
            HttpMethod::Delete => "DELETE",
            HttpMethod::Options => "OPTIONS",
        }
    }
}
