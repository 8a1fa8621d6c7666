//! The syntax of templates (MiniJinja) and conditions (CEL), checked when a runbook is
//! saved so that a typo is reported with its position instead of failing a run later.
//! The engine evaluates both with the same libraries.

/// True when `text` holds template syntax (and so is rendered before use).
pub fn is_template(text: &str) -> bool {
    text.contains("{{") || text.contains("{%")
}

/// The template syntax runbooks use: Jinja's, without `{# … #}` comments. Shell scripts
/// are full of `{#` (`${#HOSTS[@]}`, `${#}`), which Jinja would read as the start of a
/// comment; a script has comments of its own. (The comment markers are set to text
/// holding a NUL character, which no saved text may hold, so they never match.)
pub fn syntax() -> minijinja::syntax::SyntaxConfig {
    minijinja::syntax::SyntaxConfig::builder()
        .comment_delimiters("{#\0", "\0#}")
        .build()
        .expect("the template syntax is valid")
}

/// A template environment with the runbooks' syntax.
pub fn environment() -> minijinja::Environment<'static> {
    let mut env = minijinja::Environment::new();
    env.set_syntax(syntax());
    env
}

/// What a syntax error message adds: how to keep Jinja's markers as plain text.
const RAW_HINT: &str =
    "to keep `{{` or `{%` as plain text (Go templates, say), wrap it in {% raw %}…{% endraw %}";

/// Checks a template's syntax; the error names the line.
pub fn check_template(source: &str) -> Result<(), String> {
    if !is_template(source) {
        return Ok(());
    }
    let env = environment();
    match env.template_from_str(source) {
        Ok(_) => Ok(()),
        Err(error) => {
            let detail = error
                .detail()
                .map(str::to_string)
                .unwrap_or_else(|| error.kind().to_string());
            Err(match error.line() {
                Some(line) => {
                    format!("template syntax error on line {line}: {detail}; {RAW_HINT}")
                }
                None => format!("template syntax error: {detail}; {RAW_HINT}"),
            })
        }
    }
}

/// Checks a CEL expression's syntax; the error names the line and column.
pub fn check_expression(source: &str) -> Result<(), String> {
    // The parser reports positions of the first problems; one is enough to fix.
    match cel::Program::compile(source) {
        Ok(_) => Ok(()),
        Err(errors) => Err(match errors.errors.first() {
            Some(first) => format!(
                "expression syntax error at line {}, column {}: {}",
                first.pos.0,
                first.pos.1 + 1,
                first.msg
            ),
            None => "expression syntax error".to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_valid_templates_and_plain_text() {
        assert!(check_template("echo hello").is_ok());
        assert!(check_template("echo {{ params.service }} {{ steps.a.outputs.X | safe }}").is_ok());
        assert!(check_template("{% if params.force %}--force{% endif %}").is_ok());
    }

    #[test]
    fn reports_template_errors_with_their_line() {
        let error = check_template("echo ok\necho {{ params.x ").unwrap_err();
        assert!(error.contains("line 2"), "{error}");
        // Go templates collide with Jinja's markers: the message says how to keep them.
        let error = check_template("docker ps --format '{{.Names}}'").unwrap_err();
        assert!(error.contains("{% raw %}"), "{error}");
        assert!(check_template("docker ps --format '{% raw %}{{.Names}}{% endraw %}'").is_ok());
    }

    #[test]
    fn shell_lengths_and_counts_are_not_comments() {
        assert!(!is_template("echo ${#HOSTS[@]} ${#} ${#name}"));
        assert!(check_template("n=${#HOSTS[@]}; echo {{ params.x }} of $n; echo ${#}").is_ok());
        assert!(check_template("echo {# not a comment #} {{ params.x }}").is_ok());
    }

    #[test]
    fn accepts_valid_expressions() {
        for expr in [
            "steps.health.status == 200",
            "params.env == 'prod' && steps.check.exit_code != 0",
            "steps.list.json.items.size() > 3",
            "steps['my-step'].stdout.contains('ok')",
        ] {
            assert!(check_expression(expr).is_ok(), "{expr}");
        }
    }

    #[test]
    fn reports_expression_errors_with_line_and_column() {
        let error = check_expression("steps.a.exit_code == ").unwrap_err();
        assert!(error.contains("line 1, column"), "{error}");
        assert!(check_expression("a &&& b").is_err());
        assert!(check_expression("(a").is_err());
    }
}

#[cfg(test)]
mod deep_tests {
    /// Saving checks a condition on the request's thread: the longest expressions a runbook
    /// may hold (4 KiB), chained or nested, are parsed within a runtime thread's 2 MiB
    /// stack (a stack overflow would abort the test, and the server).
    #[test]
    fn the_longest_conditions_are_checked_on_a_runtime_threads_stack() {
        let mut sources: Vec<String> = ["+", "&&", "||", "*", "=="]
            .iter()
            .map(|op| format!("1{}", format!(" {op} 1").repeat(4090 / (op.len() + 3))))
            .collect();
        sources.push(format!("{}1{}", "(".repeat(2040), ")".repeat(2040)));
        sources.push(format!("{}true", "!".repeat(4090)));
        for source in sources {
            assert!(source.len() <= 4096);
            std::thread::Builder::new()
                .stack_size(2 * 1024 * 1024)
                .spawn(move || super::check_expression(&source).map(|_| ()))
                .unwrap()
                .join()
                .expect("the check returned")
                .ok();
        }
    }
}
