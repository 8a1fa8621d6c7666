//! The five block kinds a runbook is made of.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Names of the block kinds, as they appear in the `kind` field.
pub const BLOCK_KINDS: [&str; 5] = ["instruction", "command", "api_call", "conditional", "timer"];

/// One step of a runbook. Every block has a stable `id`, unique within its runbook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Block {
    Instruction(InstructionBlock),
    Command(CommandBlock),
    ApiCall(ApiCallBlock),
    Conditional(ConditionalBlock),
    Timer(TimerBlock),
}

/// Markdown guidance; with `confirm` the run waits for a person to acknowledge it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstructionBlock {
    pub id: String,
    #[serde(default)]
    pub text: String,
    #[serde(default)]
    pub confirm: bool,
}

/// The variable naming the run a command's processes belong to (set by the engine).
pub const EXECUTION_ID_VAR: &str = "RUNBOOK_EXECUTION_ID";
/// The variable naming the file a step writes `KEY=VALUE` outputs to (set by the engine).
pub const OUTPUT_VAR: &str = "RUNBOOK_OUTPUT";
/// Variables the engine sets for every command, which a block may not set itself.
pub const RESERVED_ENV: [&str; 2] = [EXECUTION_ID_VAR, OUTPUT_VAR];

/// A shell script run on a host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandBlock {
    pub id: String,
    pub script: String,
    #[serde(default)]
    pub shell: Shell,
    #[serde(default = "default_host")]
    pub host: String,
    #[serde(default)]
    pub timeout_secs: Option<u64>,
    /// Seconds between the SIGTERM a stop (or the timeout) sends the command's processes
    /// and the SIGKILL that follows; unset means the default the engine was configured
    /// with (5 s unless `RUNBOOK_STOP_GRACE` says otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_grace_secs: Option<u64>,
    #[serde(default)]
    pub workdir: Option<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default = "default_exit_codes")]
    pub expect_exit_codes: Vec<i32>,
    #[serde(default)]
    pub on_failure: FailurePolicy,
    /// Environment variable name → credential name, injected at run time.
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
}

/// An HTTP request, optionally authenticated with a stored credential.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiCallBlock {
    pub id: String,
    #[serde(default)]
    pub method: HttpMethod,
    pub url: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub body: Option<String>,
    #[serde(default)]
    pub credential: Option<String>,
    #[serde(default)]
    pub timeout_secs: Option<u64>,
    #[serde(default = "default_status")]
    pub expect_status: Vec<u16>,
    #[serde(default)]
    pub on_failure: FailurePolicy,
}

/// Runs `then` or `else` depending on an expression over params and earlier steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConditionalBlock {
    pub id: String,
    pub expr: String,
    #[serde(default)]
    pub then: Vec<Block>,
    #[serde(default, rename = "else")]
    pub otherwise: Vec<Block>,
}

/// Waits a number of seconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimerBlock {
    pub id: String,
    pub seconds: u64,
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
            Block::Instruction(b) => &b.id,
            Block::Command(b) => &b.id,
            Block::ApiCall(b) => &b.id,
            Block::Conditional(b) => &b.id,
            Block::Timer(b) => &b.id,
        }
    }

    /// The block's kind name, as in the `kind` field.
    pub fn kind(&self) -> &'static str {
        match self {
            Block::Instruction(_) => "instruction",
            Block::Command(_) => "command",
            Block::ApiCall(_) => "api_call",
            Block::Conditional(_) => "conditional",
            Block::Timer(_) => "timer",
        }
    }

    /// Whether a failure of this block lets the run go on.
    pub fn failure_continues(&self) -> bool {
        let policy = match self {
            Block::Command(b) => b.on_failure,
            Block::ApiCall(b) => b.on_failure,
            _ => FailurePolicy::Stop,
        };
        policy == FailurePolicy::Continue
    }
}

/// The shell a command block runs in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
