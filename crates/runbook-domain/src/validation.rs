//! Parsing and validation of authored runbooks. Every front end goes through
//! [`parse_draft`] / [`parse_update`], so the rules cannot drift between them.

use crate::block::{
    ApiCallBlock, Block, CommandBlock, ConditionalBlock, InstructionBlock, TimerBlock, BLOCK_KINDS,
};
use crate::runbook::{Param, ParamType, RunbookDraft, RunbookUpdate};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// Largest runbook as JSON, in bytes (the REST server also caps request bodies).
pub const MAX_RUNBOOK_BYTES: usize = 2 * 1024 * 1024;
/// Longest runbook name, in characters.
pub const MAX_NAME_CHARS: usize = 200;
/// Largest markdown text (description, instruction), in bytes.
pub const MAX_TEXT_BYTES: usize = 64 * 1024;
/// Largest script, in bytes.
pub const MAX_SCRIPT_BYTES: usize = 64 * 1024;
/// Largest api_call body template, in bytes.
pub const MAX_BODY_BYTES: usize = 256 * 1024;
/// Most blocks in one runbook, nested ones included.
pub const MAX_BLOCKS: usize = 5000;
/// Deepest nesting of conditionals (top-level blocks are depth 1).
pub const MAX_DEPTH: usize = 8;
/// Most tags on one runbook.
pub const MAX_TAGS: usize = 32;
/// Most parameters on one runbook.
pub const MAX_PARAMS: usize = 64;
/// Longest command timeout: one day.
pub const MAX_COMMAND_TIMEOUT_SECS: u64 = 24 * 60 * 60;
/// Longest stop grace period: ten minutes (a quitting desktop app waits for it).
pub const MAX_STOP_GRACE_SECS: u64 = 10 * 60;
/// Longest HTTP timeout: one hour.
pub const MAX_HTTP_TIMEOUT_SECS: u64 = 60 * 60;
/// Longest timer: one week.
pub const MAX_TIMER_SECS: u64 = 7 * 24 * 60 * 60;

/// One problem with one field of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    /// Where the problem is, e.g. `blocks[2].script`.
    pub path: String,
    /// A stable snake_case code, e.g. `empty_script`.
    pub code: String,
    /// A sentence for people.
    pub message: String,
}

/// Every problem found in a request; never empty.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.summary())]
pub struct ValidationErrors {
    pub errors: Vec<FieldError>,
}

impl ValidationErrors {
    fn single(path: impl Into<String>, code: &str, message: impl Into<String>) -> Self {
        ValidationErrors {
            errors: vec![FieldError {
                path: path.into(),
                code: code.to_string(),
                message: message.into(),
            }],
        }
    }

    /// The code of the first problem: the one a client should act on first.
    pub fn code(&self) -> &str {
        self.errors
            .first()
            .map(|e| e.code.as_str())
            .unwrap_or("validation_failed")
    }

    /// A one-line description of the first problem (and how many more there are).
    pub fn summary(&self) -> String {
        match self.errors.as_slice() {
            [] => "invalid runbook".to_string(),
            [only] => format!("{}: {}", only.path, only.message),
            [first, rest @ ..] => format!(
                "{}: {} (and {} more problem{})",
                first.path,
                first.message,
                rest.len(),
                if rest.len() == 1 { "" } else { "s" }
            ),
        }
    }
}

/// Parses and validates the body of a create request.
pub fn parse_draft(value: serde_json::Value) -> Result<RunbookDraft, ValidationErrors> {
    check_size(&value)?;
    check_no_nul(&value)?;
    check_block_kinds(&value)?;
    let draft: RunbookDraft = typed(value)?;
    validate_draft(&draft)?;
    Ok(draft)
}

/// Parses and validates the body of an update request (content plus based-on version).
pub fn parse_update(value: serde_json::Value) -> Result<RunbookUpdate, ValidationErrors> {
    check_size(&value)?;
    check_no_nul(&value)?;
    check_block_kinds(&value)?;
    let UpdateHeader { version, message } = typed(value.clone())?;
    // An update carries the full runbook: a body without blocks would store an empty one.
    if value.get("blocks").is_none() {
        return Err(ValidationErrors::single(
            "blocks",
            "missing_field",
            "missing field `blocks`: an update carries the full runbook",
        ));
    }
    // The draft is parsed on its own rather than flattened into the update, so a
    // bad field is still named by its path (`blocks[0].seconds`).
    let draft: RunbookDraft = typed(value)?;
    validate_draft(&draft)?;
    Ok(RunbookUpdate {
        draft,
        version,
        message,
    })
}

/// What an update carries besides the runbook's content.
#[derive(serde::Deserialize)]
struct UpdateHeader {
    version: i64,
    #[serde(default)]
    message: Option<String>,
}

fn typed<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> Result<T, ValidationErrors> {
    serde_path_to_error::deserialize(value.clone()).map_err(|err| {
        let path = err.path().to_string();
        let (code, message) = describe_serde_error(err.inner());
        let (path, code, message) = refine_block_error(&value, path.clone(), code, message.clone())
            .unwrap_or((path, code, message));
        ValidationErrors::single(path, code, message)
    })
}

/// A tagged block is parsed as a whole, so serde names only the block (`blocks[2]`):
/// parse it again as its own kind to name the field, going down nested branches.
fn refine_block_error(
    root: &serde_json::Value,
    path: String,
    code: &'static str,
    message: String,
) -> Option<(String, &'static str, String)> {
    fn inner<T: serde::de::DeserializeOwned>(
        block: &serde_json::Value,
    ) -> Option<(String, &'static str, String)> {
        serde_path_to_error::deserialize::<_, T>(block.clone())
            .err()
            .map(|err| {
                let (code, message) = describe_serde_error(err.inner());
                (err.path().to_string(), code, message)
            })
            .filter(|(path, _, _)| path != ".")
    }
    if !path.ends_with(']') {
        return None;
    }
    let pointer = path.replace(['.', '['], "/").replace(']', "");
    let block = root.pointer(&format!("/{pointer}"))?;
    let found = match block.get("kind")?.as_str()? {
        "instruction" => inner::<InstructionBlock>(block),
        "command" => inner::<CommandBlock>(block),
        "api_call" => inner::<ApiCallBlock>(block),
        "conditional" => inner::<ConditionalBlock>(block),
        "timer" => inner::<TimerBlock>(block),
        _ => None,
    };
    match found {
        Some((field, code, message)) => {
            let path = format!("{path}.{field}");
            refine_block_error(root, path.clone(), code, message.clone())
                .or(Some((path, code, message)))
        }
        None => Some((path, code, message)),
    }
}

fn describe_serde_error(err: &serde_json::Error) -> (&'static str, String) {
    let text = err.to_string();
    // serde_json appends " at line X column Y", which means nothing for a Value.
    let text = text.split(" at line ").next().unwrap_or(&text).to_string();
    if text.starts_with("missing field") {
        ("missing_field", text)
    } else {
        ("invalid_type", text)
    }
}

/// Caps the whole runbook, whatever front end it came through.
fn check_size(value: &serde_json::Value) -> Result<(), ValidationErrors> {
    let size = serde_json::to_vec(value).map_or(usize::MAX, |bytes| bytes.len());
    if size > MAX_RUNBOOK_BYTES {
        return Err(ValidationErrors::single(
            "",
            "too_large",
            format!("the runbook is {size} bytes as JSON; the limit is {MAX_RUNBOOK_BYTES}"),
        ));
    }
    Ok(())
}

/// Rejects U+0000 anywhere in a request: no shell, header or database takes it.
fn check_no_nul(value: &serde_json::Value) -> Result<(), ValidationErrors> {
    fn find(value: &serde_json::Value, path: &mut Vec<String>) -> Option<String> {
        match value {
            serde_json::Value::String(text) if text.contains('\0') => Some(path.join(".")),
            serde_json::Value::Array(items) => items.iter().enumerate().find_map(|(i, item)| {
                path.push(format!("[{i}]"));
                let found = find(item, path);
                path.pop();
                found
            }),
            serde_json::Value::Object(map) => map.iter().find_map(|(key, item)| {
                path.push(key.clone());
                let found = if key.contains('\0') {
                    Some(path.join("."))
                } else {
                    find(item, path)
                };
                path.pop();
                found
            }),
            _ => None,
        }
    }
    match find(value, &mut Vec::new()) {
        Some(path) => Err(ValidationErrors::single(
            path.replace(".[", "["),
            "invalid_character",
            "text may not contain the NUL character (U+0000)",
        )),
        None => Ok(()),
    }
}

/// Finds blocks whose `kind` is missing or unknown, before typed parsing hides where they are.
fn check_block_kinds(value: &serde_json::Value) -> Result<(), ValidationErrors> {
    fn walk(blocks: &serde_json::Value, path: &str, errors: &mut Vec<FieldError>) {
        let Some(items) = blocks.as_array() else {
            return;
        };
        for (index, block) in items.iter().enumerate() {
            let here = format!("{path}[{index}]");
            let Some(object) = block.as_object() else {
                continue;
            };
            match object.get("kind") {
                None => errors.push(FieldError {
                    path: format!("{here}.kind"),
                    code: "missing_field".into(),
                    message: "missing field `kind`".into(),
                }),
                Some(serde_json::Value::String(kind)) if BLOCK_KINDS.contains(&kind.as_str()) => {}
                Some(other) => errors.push(FieldError {
                    path: format!("{here}.kind"),
                    code: "unknown_block_kind".into(),
                    message: format!(
                        "unknown block kind {}; expected one of {}",
                        truncate(&other.to_string(), 40),
                        BLOCK_KINDS.join(", ")
                    ),
                }),
            }
            if let Some(then) = object.get("then") {
                walk(then, &format!("{here}.then"), errors);
            }
            if let Some(otherwise) = object.get("else") {
                walk(otherwise, &format!("{here}.else"), errors);
            }
        }
    }
    let mut errors = Vec::new();
    if let Some(blocks) = value.get("blocks") {
        walk(blocks, "blocks", &mut errors);
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ValidationErrors { errors })
    }
}

fn truncate(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        text.to_string()
    } else {
        let cut: String = text.chars().take(max_chars).collect();
        format!("{cut}…")
    }
}

/// Checks every rule of a runbook's content; reports all problems at once.
pub fn validate_draft(draft: &RunbookDraft) -> Result<(), ValidationErrors> {
    let mut v = Validator::default();
    v.name(&draft.name);
    v.max_bytes("description", &draft.description, MAX_TEXT_BYTES);
    v.tags(&draft.tags);
    v.params(&draft.params);
    v.blocks(&draft.blocks, "blocks", 1);
    v.finish()
}

#[derive(Default)]
struct Validator {
    errors: Vec<FieldError>,
    block_ids: HashSet<String>,
    block_count: usize,
}

impl Validator {
    fn push(&mut self, path: impl Into<String>, code: &str, message: impl Into<String>) {
        self.errors.push(FieldError {
            path: path.into(),
            code: code.to_string(),
            message: message.into(),
        });
    }

    fn finish(self) -> Result<(), ValidationErrors> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ValidationErrors {
                errors: self.errors,
            })
        }
    }

    fn name(&mut self, name: &str) {
        if name.trim().is_empty() {
            self.push("name", "empty_name", "the runbook needs a name");
        } else if name.chars().count() > MAX_NAME_CHARS {
            self.push(
                "name",
                "too_long",
                format!("the name is longer than {MAX_NAME_CHARS} characters"),
            );
        } else if name.chars().any(char::is_control) {
            self.push(
                "name",
                "invalid_name",
                "the name contains control characters",
            );
        }
    }

    fn max_bytes(&mut self, path: &str, text: &str, max: usize) {
        if text.len() > max {
            self.push(
                path,
                "too_long",
                format!("{path} is {} bytes; the limit is {max}", text.len()),
            );
        }
    }

    fn tags(&mut self, tags: &[String]) {
        if tags.len() > MAX_TAGS {
            self.push(
                "tags",
                "too_many",
                format!("at most {MAX_TAGS} tags are allowed"),
            );
        }
        for (i, tag) in tags.iter().enumerate() {
            let valid = !tag.trim().is_empty()
                && tag.chars().count() <= 64
                && !tag.chars().any(|c| c.is_control() || c == ',');
            if !valid {
                self.push(
                    format!("tags[{i}]"),
                    "invalid_tag",
                    "a tag is 1 to 64 characters, without commas or control characters",
                );
            }
        }
    }

    fn params(&mut self, params: &[Param]) {
        if params.len() > MAX_PARAMS {
            self.push(
                "params",
                "too_many",
                format!("at most {MAX_PARAMS} parameters are allowed"),
            );
        }
        let mut seen = HashSet::new();
        for (i, param) in params.iter().enumerate() {
            let path = format!("params[{i}]");
            if !is_identifier(&param.name) {
                self.push(
                    format!("{path}.name"),
                    "invalid_param_name",
                    "a parameter name starts with a letter or `_` and holds only letters, digits and `_` (at most 64)",
                );
            } else if !seen.insert(param.name.as_str()) {
                self.push(
                    format!("{path}.name"),
                    "duplicate_param",
                    format!("parameter `{}` is declared twice", param.name),
                );
            }
            if let Some(default) = &param.default {
                let fits = match param.param_type {
                    ParamType::String => default.is_string(),
                    ParamType::Number => default.is_number(),
                    ParamType::Boolean => default.is_boolean(),
                } || default.is_null();
                if !fits {
                    self.push(
                        format!("{path}.default"),
                        "invalid_default",
                        "the default value does not match the parameter's type",
                    );
                }
            }
        }
    }

    fn blocks(&mut self, blocks: &[Block], path: &str, depth: usize) {
        if depth > MAX_DEPTH && !blocks.is_empty() {
            self.push(
                path,
                "too_deep",
                format!("conditionals may nest at most {MAX_DEPTH} levels deep"),
            );
            return;
        }
        for (i, block) in blocks.iter().enumerate() {
            self.block_count += 1;
            if self.block_count == MAX_BLOCKS + 1 {
                self.push(
                    "blocks",
                    "too_many_blocks",
                    format!("a runbook holds at most {MAX_BLOCKS} blocks"),
                );
            }
            self.block(block, &format!("{path}[{i}]"), depth);
        }
    }

    fn block(&mut self, block: &Block, path: &str, depth: usize) {
        let id = block.id();
        if !is_block_id(id) {
            self.push(
                format!("{path}.id"),
                "invalid_block_id",
                "a block id is 1 to 64 letters, digits, `_` or `-`",
            );
        } else if !self.block_ids.insert(id.to_string()) {
            self.push(
                format!("{path}.id"),
                "duplicate_block_id",
                format!("block id `{id}` is used more than once"),
            );
        }
        match block {
            Block::Instruction(InstructionBlock { text, .. }) => {
                self.max_bytes(&format!("{path}.text"), text, MAX_TEXT_BYTES)
            }
            Block::Command(CommandBlock {
                script,
                host,
                timeout_secs,
                stop_grace_secs,
                workdir,
                env,
                expect_exit_codes,
                secrets,
                ..
            }) => {
                if script.trim().is_empty() {
                    self.push(
                        format!("{path}.script"),
                        "empty_script",
                        "the command has no script",
                    );
                }
                self.max_bytes(&format!("{path}.script"), script, MAX_SCRIPT_BYTES);
                self.template(&format!("{path}.script"), script);
                for (name, value) in env {
                    self.template(&format!("{path}.env.{name}"), value);
                }
                if let Some(dir) = workdir {
                    self.template(&format!("{path}.workdir"), dir);
                }
                if host != "local" {
                    self.push(
                        format!("{path}.host"),
                        "unsupported_host",
                        "commands run on host `local`; remote hosts are not supported yet",
                    );
                }
                self.timeout(path, *timeout_secs, MAX_COMMAND_TIMEOUT_SECS);
                if stop_grace_secs.is_some_and(|secs| secs > MAX_STOP_GRACE_SECS) {
                    self.push(
                        format!("{path}.stop_grace_secs"),
                        "invalid_stop_grace",
                        format!("a stop grace period is from 0 to {MAX_STOP_GRACE_SECS} seconds"),
                    );
                }
                if let Some(dir) = workdir {
                    if dir.trim().is_empty() || dir.contains('\0') {
                        self.push(
                            format!("{path}.workdir"),
                            "invalid_workdir",
                            "the working directory must be a non-empty path",
                        );
                    }
                }
                let named = env
                    .keys()
                    .map(|name| (name, "env"))
                    .chain(secrets.keys().map(|name| (name, "secrets")));
                for (name, field) in named {
                    if !is_env_name(name) {
                        self.push(
                            format!("{path}.{field}"),
                            "invalid_env_name",
                            format!(
                                "`{}` is not a valid environment variable name",
                                truncate(name, 40)
                            ),
                        );
                    } else if crate::block::RESERVED_ENV.contains(&name.as_str()) {
                        self.push(
                            format!("{path}.{field}"),
                            "reserved_env_name",
                            format!("`{name}` is set by Runbook Studio for every command and cannot be set by a block"),
                        );
                    }
                }
                for (variable, credential) in secrets {
                    self.credential_reference(
                        &format!("{path}.secrets"),
                        Some(variable),
                        credential,
                    );
                }
                if expect_exit_codes.is_empty()
                    || expect_exit_codes.iter().any(|c| !(0..=255).contains(c))
                {
                    self.push(
                        format!("{path}.expect_exit_codes"),
                        "invalid_exit_codes",
                        "expected exit codes are a non-empty list of numbers from 0 to 255",
                    );
                }
            }
            Block::ApiCall(ApiCallBlock {
                url,
                headers,
                body,
                credential,
                timeout_secs,
                expect_status,
                ..
            }) => {
                if let Some(credential) = credential {
                    self.credential_reference(&format!("{path}.credential"), None, credential);
                }
                if !is_http_url(url) {
                    self.push(
                        format!("{path}.url"),
                        "invalid_url",
                        "the URL must be an absolute http:// or https:// URL",
                    );
                }
                self.template(&format!("{path}.url"), url);
                for (name, value) in headers {
                    self.template(&format!("{path}.headers.{name}"), value);
                }
                if let Some(body) = body {
                    self.template(&format!("{path}.body"), body);
                }
                for name in headers.keys() {
                    if name.is_empty() || !name.bytes().all(is_header_token_byte) {
                        self.push(
                            format!("{path}.headers"),
                            "invalid_header_name",
                            format!("`{}` is not a valid header name", truncate(name, 40)),
                        );
                    }
                }
                if let Some(body) = body {
                    self.max_bytes(&format!("{path}.body"), body, MAX_BODY_BYTES);
                }
                self.timeout(path, *timeout_secs, MAX_HTTP_TIMEOUT_SECS);
                if expect_status.is_empty()
                    || expect_status.iter().any(|s| !(100..=599).contains(s))
                {
                    self.push(
                        format!("{path}.expect_status"),
                        "invalid_status",
                        "expected statuses are a non-empty list of numbers from 100 to 599",
                    );
                }
            }
            Block::Conditional(ConditionalBlock {
                expr,
                then,
                otherwise,
                ..
            }) => {
                if expr.trim().is_empty() {
                    self.push(
                        format!("{path}.expr"),
                        "empty_expression",
                        "the condition has no expression",
                    );
                }
                self.max_bytes(&format!("{path}.expr"), expr, 4096);
                if !expr.trim().is_empty() && expr.len() <= 4096 {
                    if let Err(message) = crate::template::check_expression(expr) {
                        self.push(format!("{path}.expr"), "invalid_expression", message);
                    }
                }
                self.blocks(then, &format!("{path}.then"), depth + 1);
                self.blocks(otherwise, &format!("{path}.else"), depth + 1);
            }
            Block::Timer(TimerBlock { seconds, .. }) => {
                if *seconds == 0 || *seconds > MAX_TIMER_SECS {
                    self.push(
                        format!("{path}.seconds"),
                        "invalid_duration",
                        format!("a timer waits from 1 to {MAX_TIMER_SECS} seconds"),
                    );
                }
            }
        }
    }

    fn template(&mut self, path: &str, text: &str) {
        if let Err(message) = crate::template::check_template(text) {
            self.push(path, "invalid_template", message);
        }
    }

    /// A block's reference to a stored credential, by its name (for a secret, the variable
    /// that gets it): a name no credential can have is refused when saved, not when run.
    fn credential_reference(&mut self, path: &str, variable: Option<&str>, name: &str) {
        if !crate::security::is_credential_name(name) {
            let what = match variable {
                Some(variable) if name.is_empty() => {
                    format!("`{}` names no credential", truncate(variable, 40))
                }
                Some(variable) => format!(
                    "`{}` names `{}`, which no credential can be called",
                    truncate(variable, 40),
                    truncate(name, 40)
                ),
                None if name.is_empty() => "the credential name is empty".to_string(),
                None => format!("`{}` cannot be a credential's name", truncate(name, 40)),
            };
            self.push(
                path.to_string(),
                "invalid_credential_name",
                format!("{what}: {}", crate::security::CREDENTIAL_NAME_RULE),
            );
        }
    }

    fn timeout(&mut self, path: &str, timeout: Option<u64>, max: u64) {
        if let Some(secs) = timeout {
            if secs == 0 || secs > max {
                self.push(
                    format!("{path}.timeout_secs"),
                    "invalid_timeout",
                    format!("a timeout is from 1 to {max} seconds"),
                );
            }
        }
    }
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 64
}

fn is_env_name(name: &str) -> bool {
    is_identifier(name) && name.len() <= 128
}

/// A well-formed block id: 1 to 64 ASCII letters, digits, `_` or `-`.
pub fn is_block_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn is_header_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// An absolute http(s) URL; a URL whose host part is a template is checked once rendered.
fn is_http_url(url: &str) -> bool {
    if url.contains("{{") {
        let lower = url.trim_start().to_ascii_lowercase();
        return lower.starts_with("http://")
            || lower.starts_with("https://")
            || lower.starts_with("{{");
    }
    match url::Url::parse(url) {
        Ok(parsed) => matches!(parsed.scheme(), "http" | "https") && parsed.host_str().is_some(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn codes(result: Result<RunbookDraft, ValidationErrors>) -> Vec<String> {
        result
            .expect_err("the draft should be rejected")
            .errors
            .into_iter()
            .map(|e| e.code)
            .collect()
    }

    fn with_blocks(blocks: serde_json::Value) -> serde_json::Value {
        json!({"name": "Restart payments", "blocks": blocks})
    }

    #[test]
    fn accepts_all_five_kinds_in_the_documented_shape() {
        let draft = parse_draft(json!({
            "name": "Restart payments API", "description": "markdown", "tags": ["payments"],
            "params": [{"name": "service", "type": "string", "default": "payments", "required": true}],
            "blocks": [
                {"id": "intro", "kind": "instruction", "text": "## Before", "confirm": false},
                {"id": "check", "kind": "command", "script": "systemctl is-active {{ params.service }}",
                 "shell": "sh", "host": "local", "timeout_secs": 30, "workdir": null, "env": {},
                 "expect_exit_codes": [0], "on_failure": "stop", "secrets": {"TOKEN": "payments-token"}},
                {"id": "health", "kind": "api_call", "method": "GET", "url": "https://api.example/health",
                 "headers": {}, "body": null, "credential": "payments-token", "timeout_secs": 10,
                 "expect_status": [200], "on_failure": "stop"},
                {"id": "branch", "kind": "conditional", "expr": "steps.health.status == 200",
                 "then": [], "else": [{"id": "wait", "kind": "timer", "seconds": 30}]}
            ]
        }))
        .expect("the documented example is valid");
        assert_eq!(draft.all_blocks().len(), 5);
        assert_eq!(draft.all_blocks()[4].kind(), "timer");
    }

    #[test]
    fn rejects_an_empty_name() {
        assert_eq!(codes(parse_draft(json!({"name": "  "}))), ["empty_name"]);
    }

    #[test]
    fn rejects_an_empty_script() {
        let value = with_blocks(json!([{"id": "a", "kind": "command", "script": " \n"}]));
        assert_eq!(codes(parse_draft(value)), ["empty_script"]);
    }

    #[test]
    fn rejects_a_bad_url() {
        for url in ["ftp://example.com/x", "not a url", "http://", "/relative"] {
            let value = with_blocks(json!([{"id": "a", "kind": "api_call", "url": url}]));
            assert_eq!(codes(parse_draft(value)), ["invalid_url"], "{url}");
        }
    }

    #[test]
    fn rejects_an_unknown_kind_with_its_path() {
        let value = with_blocks(json!([
            {"id": "a", "kind": "conditional", "expr": "true",
             "then": [{"id": "b", "kind": "teleport"}]}
        ]));
        let err = parse_draft(value).unwrap_err();
        assert_eq!(err.code(), "unknown_block_kind");
        assert_eq!(err.errors[0].path, "blocks[0].then[0].kind");
    }

    #[test]
    fn rejects_duplicate_block_ids_including_nested_ones() {
        let value = with_blocks(json!([
            {"id": "a", "kind": "timer", "seconds": 1},
            {"id": "c", "kind": "conditional", "expr": "true",
             "else": [{"id": "a", "kind": "timer", "seconds": 1}]}
        ]));
        let err = parse_draft(value).unwrap_err();
        assert_eq!(err.code(), "duplicate_block_id");
        assert_eq!(err.errors[0].path, "blocks[1].else[0].id");
    }

    #[test]
    fn rejects_negative_and_absurd_timers() {
        let negative = with_blocks(json!([{"id": "t", "kind": "timer", "seconds": -5}]));
        assert_eq!(codes(parse_draft(negative)), ["invalid_type"]);
        let absurd = with_blocks(json!([{"id": "t", "kind": "timer", "seconds": 99_999_999}]));
        assert_eq!(codes(parse_draft(absurd)), ["invalid_duration"]);
        let zero = with_blocks(json!([{"id": "t", "kind": "timer", "seconds": 0}]));
        assert_eq!(codes(parse_draft(zero)), ["invalid_duration"]);
    }

    #[test]
    fn a_stop_grace_period_is_from_none_to_ten_minutes_and_kept_only_when_set() {
        let grace = |secs: serde_json::Value| {
            with_blocks(
                json!([{"id": "m", "kind": "command", "script": "migrate", "stop_grace_secs": secs}]),
            )
        };
        for secs in [0, 30, MAX_STOP_GRACE_SECS] {
            let draft = parse_draft(grace(json!(secs))).expect("a grace period in range");
            let block = serde_json::to_value(&draft.blocks[0]).unwrap();
            assert_eq!(block["stop_grace_secs"], secs);
        }
        let err = parse_draft(grace(json!(MAX_STOP_GRACE_SECS + 1))).unwrap_err();
        assert_eq!(err.code(), "invalid_stop_grace");
        assert_eq!(err.errors[0].path, "blocks[0].stop_grace_secs");
        assert_eq!(codes(parse_draft(grace(json!(-1)))), ["invalid_type"]);
        assert_eq!(codes(parse_draft(grace(json!("5s")))), ["invalid_type"]);
        // Unset, a block is stored as before the field existed.
        let unset = parse_draft(with_blocks(
            json!([{"id": "m", "kind": "command", "script": "x"}]),
        ));
        let block = serde_json::to_value(&unset.unwrap().blocks[0]).unwrap();
        assert!(block.get("stop_grace_secs").is_none(), "{block}");
    }

    #[test]
    fn rejects_nesting_beyond_the_limit() {
        let mut blocks = json!([{"id": "leaf", "kind": "timer", "seconds": 1}]);
        for depth in 0..MAX_DEPTH {
            blocks = json!([{"id": format!("c{depth}"), "kind": "conditional", "expr": "true", "then": blocks}]);
        }
        assert_eq!(codes(parse_draft(with_blocks(blocks))), ["too_deep"]);
    }

    #[test]
    fn rejects_oversized_scripts_and_too_many_blocks() {
        let big = "x".repeat(MAX_SCRIPT_BYTES + 1);
        let value = with_blocks(json!([{"id": "a", "kind": "command", "script": big}]));
        assert_eq!(codes(parse_draft(value)), ["too_long"]);

        let many: Vec<_> = (0..=MAX_BLOCKS)
            .map(|i| json!({"id": format!("b{i}"), "kind": "timer", "seconds": 1}))
            .collect();
        assert_eq!(
            codes(parse_draft(with_blocks(json!(many)))),
            ["too_many_blocks"]
        );
    }

    #[test]
    fn reports_wrong_types_with_their_path() {
        let value = with_blocks(json!([{"id": "a", "kind": "command", "script": 42}]));
        let err = parse_draft(value).unwrap_err();
        assert_eq!(err.code(), "invalid_type");
        assert_eq!(err.errors[0].path, "blocks[0].script");
        assert!(err.errors[0].message.contains("expected a string"), "{err}");
        let nested = with_blocks(json!([{"id": "c", "kind": "conditional", "expr": "true",
            "else": [{"id": "t", "kind": "timer", "seconds": "ten"}]}]));
        let err = parse_draft(nested).unwrap_err();
        assert_eq!(err.errors[0].path, "blocks[0].else[0].seconds");
        let missing = parse_draft(json!({"blocks": []})).unwrap_err();
        assert_eq!(missing.code(), "missing_field");
    }

    #[test]
    fn rejects_invalid_ids_env_names_and_exit_codes() {
        let value = with_blocks(json!([
            {"id": "../etc", "kind": "command", "script": "true",
             "env": {"1BAD": "x"}, "expect_exit_codes": [300]}
        ]));
        assert_eq!(
            codes(parse_draft(value)),
            ["invalid_block_id", "invalid_env_name", "invalid_exit_codes"]
        );
        // The engine's own variables mark a run's processes and its outputs file.
        let reserved = with_blocks(json!([
            {"id": "a", "kind": "command", "script": "true", "env": {"RUNBOOK_EXECUTION_ID": "x"}},
            {"id": "b", "kind": "command", "script": "true", "secrets": {"RUNBOOK_OUTPUT": "token"}}
        ]));
        let err = parse_draft(reserved).unwrap_err();
        assert_eq!(
            codes(Err(err.clone())),
            ["reserved_env_name", "reserved_env_name"]
        );
        assert_eq!(err.errors[0].path, "blocks[0].env");
        assert_eq!(err.errors[1].path, "blocks[1].secrets");
    }

    #[test]
    fn refuses_a_credential_reference_no_credential_can_have_where_it_is_made() {
        let value = with_blocks(json!([
            {"id": "a", "kind": "command", "script": "true",
             "secrets": {"TOKEN": "", "KEY": "deploy key", "OK": "payments-token.v2"}},
            {"id": "b", "kind": "api_call", "url": "https://example.com", "credential": "a/b"},
            {"id": "c", "kind": "api_call", "url": "https://example.com", "credential": "ok_1"}
        ]));
        let err = parse_draft(value).unwrap_err();
        let found: Vec<_> = err
            .errors
            .iter()
            .map(|e| (e.path.as_str(), e.code.as_str()))
            .collect();
        assert_eq!(
            found,
            [
                ("blocks[0].secrets", "invalid_credential_name"),
                ("blocks[0].secrets", "invalid_credential_name"),
                ("blocks[1].credential", "invalid_credential_name"),
            ]
        );
        assert!(err
            .errors
            .iter()
            .any(|e| e.message.starts_with("`TOKEN` names no credential")));
        assert!(err
            .errors
            .iter()
            .any(|e| e.message.contains("`deploy key`")));
    }

    #[test]
    fn rejects_a_runbook_larger_than_the_limit_as_a_whole() {
        // Every block is within its own limit; together they are too much.
        let blocks: Vec<_> = (0..40)
            .map(
                |i| json!({"id": format!("b{i}"), "kind": "command", "script": "x".repeat(60_000)}),
            )
            .collect();
        assert_eq!(
            codes(parse_draft(with_blocks(json!(blocks)))),
            ["too_large"]
        );
    }

    #[test]
    fn rejects_nul_characters_anywhere_with_their_path() {
        let value = with_blocks(json!([{"id": "a", "kind": "command", "script": "echo a\u{0}b"}]));
        let err = parse_draft(value).unwrap_err();
        assert_eq!(err.code(), "invalid_character");
        assert_eq!(err.errors[0].path, "blocks[0].script");
    }

    #[test]
    fn rejects_syntax_errors_in_expressions_and_templates_with_their_position() {
        let result = parse_draft(with_blocks(json!([
            {"id": "c", "kind": "conditional", "expr": "steps.a.exit_code ==",
             "then": [{"id": "t", "kind": "command", "script": "echo {{ params.x "}]},
        ])));
        let errors = result.unwrap_err().errors;
        let expr = errors.iter().find(|e| e.path == "blocks[0].expr").unwrap();
        assert_eq!(expr.code, "invalid_expression");
        assert!(expr.message.contains("line 1, column"), "{}", expr.message);
        let script = errors
            .iter()
            .find(|e| e.path == "blocks[0].then[0].script")
            .unwrap();
        assert_eq!(script.code, "invalid_template");
        assert!(script.message.contains("line 1"), "{}", script.message);
    }

    #[test]
    fn update_requires_the_based_on_version() {
        let err = parse_update(json!({"name": "x", "blocks": []})).unwrap_err();
        assert_eq!(err.code(), "missing_field");
        let update = parse_update(json!({"name": "x", "version": 3, "blocks": []})).unwrap();
        assert_eq!(update.version, 3);
    }

    #[test]
    fn update_requires_blocks_though_a_create_does_not() {
        let err = parse_update(json!({"name": "x", "version": 3})).unwrap_err();
        assert_eq!(
            (err.errors[0].path.as_str(), err.code()),
            ("blocks", "missing_field")
        );
        assert!(parse_draft(json!({"name": "x"})).unwrap().blocks.is_empty());
    }

    #[test]
    fn update_names_the_field_of_a_bad_block_as_a_create_does() {
        let block = json!([{"id": "t", "kind": "timer", "seconds": "x"}]);
        let created = parse_draft(json!({"name": "x", "blocks": block})).unwrap_err();
        let updated =
            parse_update(json!({"name": "x", "version": 1, "blocks": block})).unwrap_err();
        assert_eq!(created.errors[0].path, "blocks[0].seconds");
        assert_eq!(updated.errors, created.errors);
    }
}
