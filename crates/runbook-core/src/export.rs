//! A run written out for its postmortem: what ran and with what, who ran it, each
//! step's outcome, and the console as plain text, in one Markdown file.

use crate::console_log::PlainText;
use crate::{Actor, CoreError, Service};
use chrono::{DateTime, Utc};
use runbook_domain::{Execution, Role, StepResult};
use serde::Serialize;
use std::fmt::Write;
use uuid::Uuid;

/// Most console bytes a report holds; a longer console is cut there, with a note on
/// how to read the rest.
pub const MAX_EXPORTED_CONSOLE: u64 = 16 * 1024 * 1024;

/// A run's report.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// A name to save it under: the runbook's name and the run's id, in ASCII letters,
    /// digits and `-`, safe as a file name and in a header.
    pub file_name: String,
    /// The report, Markdown.
    pub text: String,
    /// True when the console was cut at [`MAX_EXPORTED_CONSOLE`] bytes.
    pub truncated: bool,
}

impl Service {
    /// The run `id` as a Markdown report: its summary, its steps and its console
    /// (colours removed; secrets were masked when it was written).
    pub async fn export_execution(&self, actor: &Actor, id: Uuid) -> Result<RunReport, CoreError> {
        actor.require(Role::Viewer)?;
        let execution = self.get_execution(actor, id).await?;
        let mut console = self
            .store
            .read_output(id, 0, MAX_EXPORTED_CONSOLE + 1)
            .await?;
        let truncated = console.len() as u64 > MAX_EXPORTED_CONSOLE;
        console.truncate(MAX_EXPORTED_CONSOLE as usize);
        let console = PlainText::of(&console);
        Ok(RunReport {
            file_name: file_name(&execution, "md"),
            text: report(&execution, &console, truncated),
            truncated,
        })
    }
}

/// A name for a file of the run `execution` ending in `.{extension}`.
pub(crate) fn file_name(execution: &Execution, extension: &str) -> String {
    let lower = execution.runbook_name.to_ascii_lowercase();
    // ASCII letters and digits, every other run of characters one `-`, at most 60 bytes.
    let mut name = lower
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join("-");
    name.truncate(60);
    name.truncate(name.trim_end_matches('-').len());
    if name.is_empty() {
        name.push_str("run");
    }
    let id = execution.id.simple().to_string();
    format!("{name}-{}.{extension}", &id[..8])
}

fn time(at: Option<DateTime<Utc>>) -> String {
    at.map_or("—".to_string(), |at| {
        at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    })
}

fn duration(from: Option<DateTime<Utc>>, to: Option<DateTime<Utc>>) -> String {
    match (from, to) {
        (Some(from), Some(to)) => {
            let millis = (to - from).num_milliseconds().max(0);
            if millis < 1000 {
                format!("{millis} ms")
            } else {
                format!("{:.1} s", millis as f64 / 1000.0)
            }
        }
        _ => "—".to_string(),
    }
}

/// A table cell: one line, pipes escaped.
fn cell(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('|', "\\|")
}

/// Text that reads as itself in Markdown prose or a table cell, on one line: every
/// character that could open code, emphasis, a link, an image, HTML, an entity,
/// strikethrough or a cell is escaped, so no name or message can change the report's
/// structure or hide part of itself.
fn inline(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for (i, word) in text.split_whitespace().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        for c in word.chars() {
            if "\\`*_[]<>&~|!".contains(c) {
                out.push('\\');
            }
            out.push(c);
        }
    }
    out
}

/// `text` as an inline code span that shows it exactly: delimited by one backtick more
/// than its longest run of them (padded where it starts or ends with one); text with a
/// line break or another control character is shown as its JSON string, on one line.
fn code_span(text: &str) -> String {
    if text.is_empty() {
        return "(empty)".to_string();
    }
    let text = if text.chars().any(char::is_control) {
        serde_json::Value::from(text).to_string()
    } else {
        text.to_string()
    };
    let longest = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest + 1);
    // A span drops one space at each end when it has one at both: pad to keep them.
    let pad = if text.starts_with('`')
        || text.ends_with('`')
        || (text.starts_with(' ') && text.ends_with(' ') && !text.trim().is_empty())
    {
        " "
    } else {
        ""
    };
    format!("{fence}{pad}{text}{pad}{fence}")
}

fn step_row(position: usize, step: &StepResult) -> String {
    let code = step
        .exit_code
        .map_or(String::new(), |code| code.to_string());
    let http = step
        .http_status
        .map_or(String::new(), |status| status.to_string());
    let mut status = step.status.as_str().to_string();
    if step.detail.reused {
        status.push_str(" (reused)");
    }
    format!(
        "| {position} | `{}` | {status} | {code} | {http} | {} | {} |\n",
        cell(&step.block_id),
        duration(step.started_at, step.finished_at),
        inline(step.error.as_deref().unwrap_or("")),
    )
}

fn report(execution: &Execution, console: &str, truncated: bool) -> String {
    let mut text = String::with_capacity(console.len() + 4096);
    let _ = writeln!(
        text,
        "# Run report: {} (version {})\n",
        inline(&execution.runbook_name),
        execution.runbook_version
    );
    let _ = writeln!(text, "- Run: `{}`", execution.id);
    let _ = writeln!(text, "- Status: **{}**", execution.status);
    let _ = writeln!(text, "- Started by: {}", inline(&execution.started_by));
    let _ = writeln!(text, "- Created: {}", time(Some(execution.created_at)));
    let _ = writeln!(text, "- Started: {}", time(execution.started_at));
    let _ = writeln!(text, "- Finished: {}", time(execution.finished_at));
    let _ = writeln!(
        text,
        "- Duration: {}",
        duration(execution.started_at, execution.finished_at)
    );
    if let Some(previous) = execution.retry_of {
        let _ = writeln!(
            text,
            "- Retry of: `{previous}`, from step {}",
            code_span(execution.retry_from.as_deref().unwrap_or("?"))
        );
    }
    if execution.params.is_empty() {
        let _ = writeln!(text, "- Parameters: none");
    } else {
        let _ = writeln!(text, "- Parameters:");
        for (name, value) in &execution.params {
            let value = match value {
                serde_json::Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            let _ = writeln!(text, "  - `{name}` = {}", code_span(&value));
        }
    }
    text.push_str("\n## Steps\n\n");
    text.push_str("| # | block | status | exit code | HTTP | duration | error |\n");
    text.push_str("|---|---|---|---|---|---|---|\n");
    for (position, step) in execution.steps.iter().enumerate() {
        text.push_str(&step_row(position + 1, step));
    }
    text.push_str("\n## Console\n\n");
    if truncated {
        let _ = writeln!(
            text,
            "The console is longer than the {} MiB shown here; the rest is paged by \
             `GET /executions/{}/output`.\n",
            MAX_EXPORTED_CONSOLE / (1024 * 1024),
            execution.id
        );
    }
    // A fence longer than any run of backticks in the console cannot be closed by it.
    let longest = console.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest.max(2) + 1);
    let _ = writeln!(text, "{fence}text");
    text.push_str(console);
    if !console.is_empty() && !console.ends_with('\n') {
        text.push('\n');
    }
    let _ = writeln!(text, "{fence}");
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_safe_whatever_the_runbook_is_called() {
        let mut execution: Execution = serde_json::from_value(serde_json::json!({
            "id": "0b1e7c4a-0000-4000-8000-000000000000",
            "runbook_id": "0b1e7c4a-0000-4000-8000-000000000001",
            "runbook_version": 1,
            "runbook_name": "../../etc/Restart Payments: EU/US!",
            "status": "failed",
            "params": {},
            "started_by": "alice",
            "created_at": "2026-11-28T10:00:00Z",
            "started_at": null,
            "finished_at": null,
            "steps": []
        }))
        .unwrap();
        assert_eq!(
            file_name(&execution, "md"),
            "etc-restart-payments-eu-us-0b1e7c4a.md"
        );
        execution.runbook_name = "///".to_string();
        assert_eq!(file_name(&execution, "md"), "run-0b1e7c4a.md");
        assert_eq!(file_name(&execution, "log"), "run-0b1e7c4a.log");
        // A long name is cut at 60 bytes, never ending in `-`.
        execution.runbook_name = format!("{} tail", "a".repeat(59));
        assert_eq!(
            file_name(&execution, "md"),
            format!("{}-0b1e7c4a.md", "a".repeat(59))
        );
    }

    #[test]
    fn a_console_with_backticks_cannot_close_its_fence() {
        let execution: Execution = serde_json::from_value(serde_json::json!({
            "id": "0b1e7c4a-0000-4000-8000-000000000000",
            "runbook_id": "0b1e7c4a-0000-4000-8000-000000000001",
            "runbook_version": 3,
            "runbook_name": "Docs",
            "status": "succeeded",
            "params": {"env": "prod", "replicas": 3},
            "started_by": "alice",
            "created_at": "2026-11-28T10:00:00Z",
            "started_at": "2026-11-28T10:00:01Z",
            "finished_at": "2026-11-28T10:00:03.500Z",
            "steps": []
        }))
        .unwrap();
        let text = report(&execution, "````\nhi\n", false);
        assert!(text.contains("\n`````text\n````\nhi\n`````\n"), "{text}");
        assert!(text.contains("- Duration: 2.5 s"), "{text}");
        assert!(text.contains("  - `replicas` = `3`"), "{text}");
    }

    #[test]
    fn names_values_and_errors_cannot_change_the_reports_structure() {
        let execution: Execution = serde_json::from_value(serde_json::json!({
            "id": "0b1e7c4a-0000-4000-8000-000000000000",
            "runbook_id": "0b1e7c4a-0000-4000-8000-000000000001",
            "runbook_version": 2,
            "runbook_name": "<img src=x onerror=alert(1)> *Deploy* [eu](http://evil)",
            "status": "failed",
            "params": {
                "pipe": "a|b",
                "ticks": "run `id` now`",
                "lines": "one\n## Steps\n| x |",
                "spaced": " x ",
                "empty": ""
            },
            "started_by": "bob_the_admin",
            "created_at": "2026-11-28T10:00:00Z",
            "started_at": "2026-11-28T10:00:01Z",
            "finished_at": "2026-11-28T10:00:02Z",
            "steps": [{
                "block_id": "check", "status": "failed", "exit_code": 1,
                "http_status": null, "started_at": "2026-11-28T10:00:01Z",
                "finished_at": "2026-11-28T10:00:01.250Z", "output_bytes": 3,
                "error": "bad | <b>value</b>\n# not a heading"
            }]
        }))
        .unwrap();
        let text = report(&execution, "", false);
        let first = text.lines().next().unwrap();
        assert_eq!(
            first,
            "# Run report: \\<img src=x onerror=alert(1)\\> \\*Deploy\\* \\[eu\\](http://evil) (version 2)"
        );
        assert!(text.contains("- Started by: bob\\_the\\_admin\n"), "{text}");
        // Values are shown exactly, whatever they hold: no escape shows up in them.
        assert!(text.contains("  - `pipe` = `a|b`\n"), "{text}");
        assert!(
            text.contains("  - `ticks` = `` run `id` now` ``\n"),
            "{text}"
        );
        assert!(
            text.contains("  - `lines` = `\"one\\n## Steps\\n| x |\"`\n"),
            "{text}"
        );
        assert!(text.contains("  - `spaced` = `  x  `\n"), "{text}");
        assert!(text.contains("  - `empty` = (empty)\n"), "{text}");
        assert!(
            text.contains(
                "| 1 | `check` | failed | 1 |  | 250 ms | bad \\| \\<b\\>value\\</b\\> # not a heading |\n"
            ),
            "{text}"
        );
        // Only the report's own headings start a line with `#`.
        let headings: Vec<&str> = text.lines().filter(|l| l.starts_with('#')).collect();
        assert_eq!(headings, [first, "## Steps", "## Console"], "{text}");
    }
}
