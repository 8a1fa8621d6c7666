//! Templates (MiniJinja) and conditions (CEL) over a run's context: its parameters
//! and the results of the steps before. In scripts every interpolated value is
//! shell-quoted unless marked `| safe`.

use minijinja::{Environment, UndefinedBehavior};
use runbook_domain::{Execution, StepResult, StepStatus};
use serde_json::{json, Map, Value};

/// Work a template may do before it is cut off (loops over huge lists, say).
const TEMPLATE_FUEL: u64 = 1_000_000;

/// How interpolated values are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quoting {
    /// As they are (URLs, headers, bodies, environment values).
    Raw,
    /// Shell-quoted, so a value is one word whatever it holds.
    Shell,
}

fn environment(quoting: Quoting) -> Environment<'static> {
    let mut env = runbook_domain::template::environment();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_fuel(Some(TEMPLATE_FUEL));
    if quoting == Quoting::Shell {
        // Only `| safe` inserts a value raw. MiniJinja's `tojson` and `escape` mark what
        // they return as safe (for HTML), which in a script would let a value holding
        // `$(…)` run: here they return plain text, which is shell-quoted like any value.
        env.add_filter(
            "tojson",
            |value: &minijinja::Value,
             indent: Option<minijinja::Value>,
             args: minijinja::value::Kwargs| {
                minijinja::filters::tojson(value, indent, args)
                    .map(|json| minijinja::Value::from(json.to_string()))
            },
        );
        for name in ["escape", "e"] {
            env.add_filter(name, |value: &minijinja::Value| {
                minijinja::Value::from(value.to_string())
            });
        }
        env.set_formatter(|out, _state, value| {
            let text = if value.is_none() {
                String::new()
            } else {
                value.to_string()
            };
            if value.is_safe() {
                out.write_str(&text)?;
            } else {
                let quoted = shlex::try_quote(&text).map_err(|_| {
                    minijinja::Error::new(
                        minijinja::ErrorKind::InvalidOperation,
                        "a value holding a NUL character cannot go into a shell script",
                    )
                })?;
                out.write_str(&quoted)?;
            }
            Ok(())
        });
    }
    env
}

/// Renders `source` against `context`; text without template syntax is returned as is.
pub fn render(source: &str, context: &Value, quoting: Quoting) -> Result<String, String> {
    if !runbook_domain::template::is_template(source) {
        return Ok(source.to_string());
    }
    let env = environment(quoting);
    let ctx = minijinja::Value::from(minijinja::value::Serde(context));
    env.render_str(source, ctx).map_err(|error| {
        let mut message = error.kind().to_string();
        if let Some(detail) = error.detail() {
            message = format!("{message}: {detail}");
        }
        match error.line() {
            Some(line) => format!("template error on line {line}: {message}"),
            None => format!("template error: {message}"),
        }
    })
}

/// Evaluates a condition to true or false.
pub fn evaluate(expr: &str, context: &Value) -> Result<bool, String> {
    let program = cel::Program::compile(expr).map_err(|errors| {
        errors
            .errors
            .first()
            .map(|e| format!("line {}, column {}: {}", e.pos.0, e.pos.1 + 1, e.msg))
            .unwrap_or_else(|| "syntax error".to_string())
    })?;
    let mut cel_context = cel::Context::default();
    for name in ["params", "steps", "execution"] {
        let value = cel::to_value(context.get(name).cloned().unwrap_or(Value::Null))
            .map_err(|e| format!("cannot use `{name}` in a condition: {e}"))?;
        cel_context.add_variable_from_value(name, value);
    }
    match program.execute(&cel_context) {
        Ok(cel::Value::Bool(result)) => Ok(result),
        Ok(other) => Err(format!(
            "the condition must be true or false, but it gave {}",
            describe(&other)
        )),
        Err(error) => Err(error.to_string()),
    }
}

fn describe(value: &cel::Value) -> String {
    match value {
        cel::Value::Int(n) => format!("the number {n}"),
        cel::Value::UInt(n) => format!("the number {n}"),
        cel::Value::Float(n) => format!("the number {n}"),
        cel::Value::String(s) => format!("the text {:?}", s.chars().take(40).collect::<String>()),
        cel::Value::Null => "null".to_string(),
        cel::Value::List(_) => "a list".to_string(),
        cel::Value::Map(_) => "a map".to_string(),
        _ => "a value of another type".to_string(),
    }
}

/// The context templates and conditions see: `params`, `steps.<id>.*`, `execution`.
pub fn context(execution: &Execution) -> Value {
    let mut steps = Map::new();
    for step in &execution.steps {
        if step.status != StepStatus::Pending {
            steps.insert(step.block_id.clone(), step_value(step));
        }
    }
    json!({
        "params": Value::Object(execution.params.clone()),
        "steps": Value::Object(steps),
        "execution": {
            "id": execution.id.to_string(),
            "runbook": execution.runbook_name,
            "started_by": execution.started_by,
        },
    })
}

fn step_value(step: &StepResult) -> Value {
    let duration_ms = match (step.started_at, step.finished_at) {
        (Some(start), Some(end)) => (end - start).num_milliseconds().max(0),
        _ => 0,
    };
    let response = step.detail.response.as_ref();
    let json_body = response
        .filter(|r| !r.truncated)
        .and_then(|r| serde_json::from_str::<Value>(&r.body).ok())
        .unwrap_or(Value::Null);
    // `status` is the HTTP status of an api_call, the step's state otherwise.
    let status = match step.http_status {
        Some(code) => json!(code),
        None => json!(step.status.as_str()),
    };
    json!({
        "state": step.status.as_str(),
        "status": status,
        "succeeded": step.status == StepStatus::Succeeded,
        "exit_code": step.exit_code,
        "stdout": step.detail.stdout,
        "stderr": step.detail.stderr,
        "outputs": step.detail.outputs,
        "json": json_body,
        "body": response.map(|r| r.body.clone()),
        "headers": response.map(|r| r.headers.clone()),
        "duration_ms": duration_ms,
        "error": step.error,
        "branch": step.detail.branch,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_values_in_scripts_unless_marked_safe() {
        let ctx = json!({"params": {"name": "a b; rm -rf /", "n": 3, "flag": "--force"}});
        assert_eq!(
            render(
                "echo {{ params.name }} {{ params.n }}",
                &ctx,
                Quoting::Shell
            )
            .unwrap(),
            "echo 'a b; rm -rf /' 3"
        );
        assert_eq!(
            render("run {{ params.flag | safe }}", &ctx, Quoting::Shell).unwrap(),
            "run --force"
        );
        // `{#` is shell syntax (lengths, counts), not the start of a Jinja comment.
        assert_eq!(
            render(
                "n=${#HOSTS[@]}; echo {# kept #} {{ params.n }} ${#}",
                &ctx,
                Quoting::Shell
            )
            .unwrap(),
            "n=${#HOSTS[@]}; echo {# kept #} 3 ${#}"
        );
        // Filters that mark their result safe for HTML do not make it raw in a script.
        let hostile = json!({"params": {"msg": "a; id", "doc": {"x": "$(id)"}}});
        assert_eq!(
            render(
                "echo {{ params.msg | e }} {{ params.msg | escape }}",
                &hostile,
                Quoting::Shell
            )
            .unwrap(),
            "echo 'a; id' 'a; id'"
        );
        assert_eq!(
            render(
                "curl -d {{ params.doc | tojson }}",
                &hostile,
                Quoting::Shell
            )
            .unwrap(),
            r#"curl -d '{"x": "$(id)"}'"#
        );
        assert_eq!(
            render("{{ params.doc | tojson }}", &hostile, Quoting::Raw).unwrap(),
            r#"{"x": "$(id)"}"#
        );
        assert_eq!(
            render("https://x/{{ params.n }}", &ctx, Quoting::Raw).unwrap(),
            "https://x/3"
        );
    }

    #[test]
    fn an_unknown_name_is_an_error_not_an_empty_string() {
        let error = render(
            "echo {{ params.missing }}",
            &json!({"params": {}}),
            Quoting::Shell,
        )
        .unwrap_err();
        assert!(error.contains("undefined"), "{error}");
    }

    #[test]
    fn conditions_follow_a_truth_table() {
        let ctx = json!({
            "params": {"env": "prod", "count": 2},
            "steps": {
                "check": {"exit_code": 0, "stdout": "ok\n", "status": "succeeded"},
                "health": {"status": 503, "json": {"healthy": false, "items": [1, 2, 3]}},
            },
        });
        let cases = [
            ("steps.check.exit_code == 0", true),
            ("steps.check.exit_code != 0", false),
            ("steps.health.status == 200", false),
            ("steps.health.status >= 500 && params.env == 'prod'", true),
            ("steps.health.json.healthy || params.count > 5", false),
            ("!steps.health.json.healthy", true),
            ("steps.check.stdout.contains('ok')", true),
            ("size(steps.health.json.items) == 3", true),
            ("params.env in ['staging', 'prod']", true),
        ];
        for (expr, expected) in cases {
            assert_eq!(evaluate(expr, &ctx), Ok(expected), "{expr}");
        }
    }

    #[test]
    fn a_condition_that_is_not_boolean_or_fails_is_an_error() {
        let ctx = json!({"params": {}, "steps": {}});
        assert!(evaluate("1 + 2", &ctx)
            .unwrap_err()
            .contains("true or false"));
        assert!(evaluate("steps.nope.exit_code == 0", &ctx).is_err());
    }
}
