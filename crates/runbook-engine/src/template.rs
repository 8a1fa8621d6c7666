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

/// The values a script's template wrote, in order: each left a mark in the text. A mark
/// carries a number drawn for this rendering, so no value can hold one.
#[derive(Default)]
struct Marks {
    nonce: u64,
    values: Vec<String>,
}

type Values = std::sync::Arc<std::sync::Mutex<Marks>>;

fn environment(quoting: Quoting, values: &Values) -> Environment<'static> {
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
        // A value is not quoted here but marked: how it must be written depends on
        // where it lands (outside quotes, inside "…", in a here-document), which is
        // known once the whole script is written (`quote_values`).
        let values = values.clone();
        env.set_formatter(move |out, _state, value| {
            let text = if value.is_none() {
                String::new()
            } else {
                value.to_string()
            };
            let mut marks = values.lock().expect("template values lock");
            // Text holding marks is what the template wrote itself (a macro's output, a
            // `{% set %}` block): marked safe it is script text whose values are placed
            // later; otherwise it is one value, holding the values as they are.
            let invalid =
                |_| minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, nul_error());
            let tokens = tokens(&text, &marks).map_err(invalid)?;
            if value.is_safe() {
                out.write_str(&text)?;
            } else {
                let text = if tokens.iter().any(|t| matches!(t, Token::Value(_))) {
                    tokens
                        .iter()
                        .fold(String::with_capacity(text.len()), |mut text, token| {
                            match token {
                                Token::Char(c) => text.push(*c),
                                Token::Value(index) => text.push_str(&marks.values[*index]),
                            }
                            text
                        })
                } else {
                    text
                };
                let nonce = marks.nonce;
                write!(out, "{MARK}{nonce}-{}{MARK}", marks.values.len())?;
                marks.values.push(text);
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
    if quoting == Quoting::Shell && source.contains(MARK) {
        return Err(nul_error());
    }
    let values = Values::default();
    values.lock().expect("template values lock").nonce = uuid::Uuid::new_v4().as_u64_pair().0;
    let env = environment(quoting, &values);
    let ctx = minijinja::Value::from(minijinja::value::Serde(context));
    let rendered = env.render_str(source, ctx).map_err(|error| {
        let mut message = error.kind().to_string();
        if let Some(detail) = error.detail() {
            message = format!("{message}: {detail}");
        }
        match error.line() {
            Some(line) => format!("template error on line {line}: {message}"),
            None => format!("template error: {message}"),
        }
    })?;
    match quoting {
        Quoting::Raw => Ok(rendered),
        Quoting::Shell => {
            let marks = std::mem::take(&mut *values.lock().expect("template values lock"));
            quote_values(&rendered, &marks)
        }
    }
}

/// Stack of the thread a condition is evaluated on. CEL evaluates a chain of operators
/// (`1 + 1 + …`) recursively, with over a kilobyte of stack a link: the 2,000 links a
/// 4 KiB expression holds overflow a runtime thread's 2 MiB, which aborts the process.
const CONDITION_STACK: usize = 32 * 1024 * 1024;

/// Evaluates a condition on a thread of its own with a deep enough stack (see
/// [`CONDITION_STACK`]), so the run is not held up while it takes long.
pub async fn evaluate_apart(expr: &str, context: Value) -> Result<bool, String> {
    let (sender, receiver) = tokio::sync::oneshot::channel();
    let expr = expr.to_string();
    std::thread::Builder::new()
        .name("runbook-condition".to_string())
        .stack_size(CONDITION_STACK)
        .spawn(move || {
            let _ = sender.send(evaluate(&expr, &context));
        })
        .map_err(|error| format!("could not start evaluating it: {error}"))?;
    receiver
        .await
        .unwrap_or_else(|_| Err("its evaluation ended without a result".to_string()))
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
        let value = cel_value(context.get(name).unwrap_or(&Value::Null));
        cel_context.add_variable_from_value(name, value);
    }
    match program.execute(&cel_context) {
        Ok(cel::Value::Bool(result)) => Ok(result),
        Ok(other) => Err(format!(
            "the condition must be true or false, but it gave {}",
            describe(&other)
        )),
        // CEL says "no matching overload for '_._' applied to '(null_type, string)'".
        Err(cel::ExecutionError::NoSuchOverload(overload))
            if matches!(overload.function(), "_._" | "_[_]")
                && overload.argument_types().first().map(String::as_str) == Some("null_type") =>
        {
            Err(
                "a field was read from null (a step's `json` is null unless its response \
                 body is JSON, and whole)"
                    .to_string(),
            )
        }
        Err(cel::ExecutionError::NoSuchKey(key)) => Err(format!(
            "there is no `{key}` here (a step that has not run, or an output a step did not publish, has no value)"
        )),
        Err(error) => Err(error.to_string()),
    }
}

/// A JSON value as a condition sees it. A whole number is an `int` (a `uint` only past
/// `i64::MAX`), as the literals it meets are: converted through serde, every number
/// from 0 up would be a `uint`, so `params.count - 1` would be refused (CEL does not mix
/// the two) and `steps.a.json.low - steps.a.json.high` would overflow.
fn cel_value(value: &Value) -> cel::Value {
    match value {
        Value::Null => cel::Value::Null,
        Value::Bool(value) => cel::Value::Bool(*value),
        Value::Number(number) => match (number.as_i64(), number.as_u64()) {
            (Some(int), _) => cel::Value::Int(int),
            (None, Some(uint)) => cel::Value::UInt(uint),
            (None, None) => cel::Value::Float(number.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(text) => cel::Value::from(text.clone()),
        Value::Array(items) => {
            cel::Value::List(std::sync::Arc::new(items.iter().map(cel_value).collect()))
        }
        Value::Object(map) => cel::Value::from(
            map.iter()
                .map(|(key, value)| (key.clone(), cel_value(value)))
                .collect::<std::collections::HashMap<_, _>>(),
        ),
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
        // A byte order mark is no part of the JSON (some servers start with one).
        .and_then(|r| serde_json::from_str::<Value>(r.body.trim_start_matches('\u{feff}')).ok())
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

/// Delimits the mark a value leaves in a rendered script, `\0<nonce>-<index>\0`
/// ([`Marks`]). A template holding a NUL is refused, and so is a value holding a NUL
/// that is not a mark of this rendering, so a mark is never forged.
const MARK: char = '\0';

/// One piece of a rendered script: a character the template wrote, or a value.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Token {
    Char(char),
    Value(usize),
}

/// Where the shell reads a value: how it has to be written there to stay one piece of
/// text that nothing in it can end.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Context {
    /// Outside quotes: a word of its own, shell-quoted.
    Plain,
    /// `$( … )` or `( … )`.
    Paren,
    /// `$(( … ))` or `(( … ))`.
    Arith,
    /// `${ … }` outside double quotes.
    Brace,
    /// `` ` … ` ``: the shell undoes one level of backslashes before it parses it.
    Backtick,
    /// `' … '`.
    Single,
    /// `" … "`.
    Double,
    /// `$' … '`.
    AnsiC,
    /// `# …` to the end of the line.
    Comment,
    /// The body of a here-document whose end marker is unquoted (expanded like `" … "`).
    HereBody,
    /// The body of a here-document whose end marker is quoted (taken as written).
    HereQuoted,
}

/// A here-document announced on the current line: its body starts on the next one.
struct HereDoc {
    marker: String,
    strip_tabs: bool,
    quoted: bool,
}

/// Writes each value into a rendered script as the shell reads it where it lands: outside
/// quotes shell-quoted, inside `" … "` or an expanded here-document with `$`, `` ` ``,
/// `"` and `\` escaped, inside `' … '` with its quotes closed and reopened, and so on, so
/// that it is one piece of text whatever it holds.
fn quote_values(script: &str, marks: &Marks) -> Result<String, String> {
    let mut writer = ScriptWriter {
        tokens: tokens(script, marks)?,
        values: &marks.values,
        at: 0,
        out: String::with_capacity(script.len()),
        stack: vec![Context::Plain],
        pending: Vec::new(),
    };
    while writer.at < writer.tokens.len() {
        writer.step()?;
    }
    Ok(writer.out)
}

/// The characters and marks of `script`; a NUL that is not a mark of `marks` is refused.
fn tokens(script: &str, marks: &Marks) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::with_capacity(script.len());
    let mut rest = script;
    while let Some(start) = rest.find(MARK) {
        tokens.extend(rest[..start].chars().map(Token::Char));
        let after = &rest[start + 1..];
        let end = after.find(MARK).ok_or_else(nul_error)?;
        let index = after[..end]
            .split_once('-')
            .filter(|(nonce, _)| nonce.parse() == Ok(marks.nonce))
            .and_then(|(_, index)| index.parse::<usize>().ok())
            .filter(|index| *index < marks.values.len())
            .ok_or_else(nul_error)?;
        tokens.push(Token::Value(index));
        rest = &after[end + 1..];
    }
    tokens.extend(rest.chars().map(Token::Char));
    Ok(tokens)
}

struct ScriptWriter<'a> {
    tokens: Vec<Token>,
    values: &'a [String],
    at: usize,
    out: String,
    stack: Vec<Context>,
    pending: Vec<HereDoc>,
}

impl ScriptWriter<'_> {
    fn top(&self) -> Context {
        *self.stack.last().unwrap_or(&Context::Plain)
    }

    fn char_at(&self, at: usize) -> Option<char> {
        match self.tokens.get(at) {
            Some(Token::Char(c)) => Some(*c),
            _ => None,
        }
    }

    fn pop(&mut self) {
        if self.stack.len() > 1 {
            self.stack.pop();
        }
    }

    /// True when the character before `at` ends a word (or there is none).
    fn word_starts(&self, at: usize) -> bool {
        at == 0
            || matches!(
                self.tokens[at - 1],
                Token::Char(' ' | '\t' | '\n' | ';' | '&' | '|' | '(' | ')')
            )
    }

    /// Copies `n` characters as they are.
    fn copy(&mut self, n: usize) {
        for _ in 0..n {
            if let Some(c) = self.char_at(self.at) {
                self.out.push(c);
            }
            self.at += 1;
        }
    }

    /// A backslash: it and the character it escapes are copied; it may not escape a value
    /// (it would escape the value's first character, its opening quote say).
    fn escape(&mut self) -> Result<(), String> {
        self.copy(1);
        match self.tokens.get(self.at) {
            Some(Token::Value(_)) => Err(
                "template error: a value cannot follow a backslash in a script (the backslash \
                 would escape the value's first character)"
                    .to_string(),
            ),
            Some(Token::Char(_)) => {
                self.copy(1);
                Ok(())
            }
            None => Ok(()),
        }
    }

    fn step(&mut self) -> Result<(), String> {
        let c = match self.tokens[self.at] {
            Token::Value(index) => {
                self.value(index)?;
                self.at += 1;
                return Ok(());
            }
            Token::Char(c) => c,
        };
        let next = self.char_at(self.at + 1);
        let top = self.top();
        match top {
            Context::Single => {
                if c == '\'' {
                    self.pop();
                }
                self.copy(1);
            }
            Context::AnsiC => match c {
                '\\' => self.escape()?,
                '\'' => {
                    self.pop();
                    self.copy(1);
                }
                _ => self.copy(1),
            },
            Context::Comment => {
                if c == '\n' {
                    // The newline ends the comment and is read as outside it.
                    self.pop();
                } else {
                    self.copy(1);
                }
            }
            Context::HereQuoted => self.copy(1),
            Context::Double | Context::HereBody => match (c, next) {
                ('\\', _) => self.escape()?,
                ('"', _) if top == Context::Double => {
                    self.pop();
                    self.copy(1);
                }
                ('`', _) => {
                    self.stack.push(Context::Backtick);
                    self.copy(1);
                }
                ('$', Some('(')) => self.dollar_paren(),
                _ => self.copy(1),
            },
            _ => self.plain(c, next)?,
        }
        Ok(())
    }

    /// A character outside quotes (also inside `$( … )`, `${ … }` and backquotes).
    fn plain(&mut self, c: char, next: Option<char>) -> Result<(), String> {
        let top = self.top();
        match (c, next) {
            ('\\', _) => self.escape()?,
            ('\'', _) => {
                self.stack.push(Context::Single);
                self.copy(1);
            }
            ('"', _) => {
                self.stack.push(Context::Double);
                self.copy(1);
            }
            ('`', _) => {
                if top == Context::Backtick {
                    self.pop();
                } else {
                    self.stack.push(Context::Backtick);
                }
                self.copy(1);
            }
            ('$', Some('\'')) => {
                self.stack.push(Context::AnsiC);
                self.copy(2);
            }
            ('$', Some('(')) => self.dollar_paren(),
            ('$', Some('{')) => {
                self.stack.push(Context::Brace);
                self.copy(2);
            }
            ('(', Some('(')) if top != Context::Arith && self.word_starts(self.at) => {
                self.stack.push(Context::Arith);
                self.copy(2);
            }
            ('(', _) => {
                self.stack.push(Context::Paren);
                self.copy(1);
            }
            (')', Some(')')) if top == Context::Arith => {
                self.pop();
                self.copy(2);
            }
            (')', _) => {
                if top == Context::Paren {
                    self.pop();
                }
                self.copy(1);
            }
            ('}', _) => {
                if top == Context::Brace {
                    self.pop();
                }
                self.copy(1);
            }
            ('#', _)
                if !matches!(top, Context::Brace | Context::Arith) && self.word_starts(self.at) =>
            {
                self.stack.push(Context::Comment);
                self.copy(1);
            }
            ('<', Some('<')) if !matches!(top, Context::Brace | Context::Arith) => {
                if self.char_at(self.at + 2) == Some('<') {
                    self.copy(3);
                } else {
                    self.here_doc()?;
                }
            }
            ('\n', _) => {
                self.copy(1);
                self.here_doc_bodies()?;
            }
            _ => self.copy(1),
        }
        Ok(())
    }

    /// `$((` (arithmetic) or `$(` (a command substitution) at the current character,
    /// which is the `$` of a `$(`.
    fn dollar_paren(&mut self) {
        if self.char_at(self.at + 2) == Some('(') {
            self.stack.push(Context::Arith);
            self.copy(3);
        } else {
            self.stack.push(Context::Paren);
            self.copy(2);
        }
    }

    /// `<<` or `<<-` and the end marker of a here-document.
    fn here_doc(&mut self) -> Result<(), String> {
        self.copy(2);
        let strip_tabs = self.char_at(self.at) == Some('-');
        if strip_tabs {
            self.copy(1);
        }
        while matches!(self.char_at(self.at), Some(' ' | '\t')) {
            self.copy(1);
        }
        let mut marker = String::new();
        let mut quoted = false;
        let mut quote = None;
        loop {
            let c = match self.tokens.get(self.at) {
                None => break,
                Some(Token::Value(_)) => {
                    return Err(
                        "template error: a value cannot be the end marker of a here-document"
                            .to_string(),
                    )
                }
                Some(Token::Char(c)) => *c,
            };
            match (quote, c) {
                (Some(q), c) if c == q => {
                    quote = None;
                    self.copy(1);
                }
                (Some(_), '\n')
                | (None, ' ' | '\t' | '\n' | ';' | '&' | '|' | '<' | '>' | '(' | ')') => break,
                (Some(_), c) => {
                    marker.push(c);
                    self.copy(1);
                }
                (None, '\'' | '"') => {
                    quoted = true;
                    quote = Some(c);
                    self.copy(1);
                }
                (None, '\\') => {
                    quoted = true;
                    self.copy(1);
                    if let Some(next) = self.char_at(self.at) {
                        marker.push(next);
                        self.copy(1);
                    }
                }
                (None, c) => {
                    marker.push(c);
                    self.copy(1);
                }
            }
        }
        if !marker.is_empty() {
            self.pending.push(HereDoc {
                marker,
                strip_tabs,
                quoted,
            });
        }
        Ok(())
    }

    /// The bodies of the here-documents announced on the line just ended, each up to
    /// the line that holds only its end marker. A value that would put such a line in a
    /// body (and so end it early, running what follows as commands) is refused.
    fn here_doc_bodies(&mut self) -> Result<(), String> {
        for doc in std::mem::take(&mut self.pending) {
            // Backquotes around the document still take a level of backslashes.
            let body = self
                .stack
                .iter()
                .copied()
                .filter(|c| *c == Context::Backtick)
                .chain([if doc.quoted {
                    Context::HereQuoted
                } else {
                    Context::HereBody
                }])
                .collect();
            let outer = std::mem::replace(&mut self.stack, body);
            while self.at < self.tokens.len() {
                let end = self.tokens[self.at..]
                    .iter()
                    .position(|t| *t == Token::Char('\n'))
                    .map_or(self.tokens.len(), |n| self.at + n);
                let line: Option<String> = self.tokens[self.at..end]
                    .iter()
                    .map(|t| match t {
                        Token::Char(c) => Some(*c),
                        Token::Value(_) => None,
                    })
                    .collect();
                let is_marker = |line: &str| {
                    let line = if doc.strip_tabs {
                        line.trim_start_matches('\t')
                    } else {
                        line
                    };
                    line == doc.marker
                };
                if line.as_deref().is_some_and(is_marker) {
                    self.copy(end + 1 - self.at);
                    break;
                }
                let start = self.out.len();
                while self.at < end {
                    self.step()?;
                }
                if self.top() == Context::Comment {
                    self.pop();
                }
                if line.is_none() && self.out[start..].split('\n').any(is_marker) {
                    return Err(format!(
                        "template error: a value holds a line `{}` that would end its \
                         here-document early",
                        doc.marker
                    ));
                }
                self.copy(1);
            }
            self.stack = outer;
        }
        Ok(())
    }

    /// Writes value `index` as the context it lands in needs.
    fn value(&mut self, index: usize) -> Result<(), String> {
        let value = &self.values[index];
        let top = self.top();
        let mut text = match top {
            // Arithmetic is expanded as in "…" and then evaluated, and bash evaluates
            // what a name or subscript holds (`a[$(id)]` runs `id`): only a number goes.
            Context::Arith => {
                let digits = value.strip_prefix(['-', '+']).unwrap_or(value);
                let (whole, fraction) = digits.split_once('.').unwrap_or((digits, "0"));
                let number =
                    |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
                if !(number(whole) && number(fraction)) {
                    return Err(
                        "template error: only a number can go inside $((…)) or ((…)) in a script"
                            .to_string(),
                    );
                }
                value.clone()
            }
            Context::Plain | Context::Paren | Context::Brace | Context::Backtick => {
                shlex::try_quote(value)
                    .map_err(|_| nul_error())?
                    .into_owned()
            }
            Context::Single => value.replace('\'', r"'\''"),
            Context::Double => escape_with_backslash(value, &['\\', '$', '`', '"']),
            Context::HereBody => escape_with_backslash(value, &['\\', '$', '`']),
            Context::HereQuoted => value.clone(),
            Context::Comment => value.replace(['\r', '\n'], " "),
            Context::AnsiC => {
                return Err(
                    "template error: a value cannot go inside $'…' in a script; use \"…\" \
                     or no quotes"
                        .to_string(),
                )
            }
        };
        // Each level of backquotes around it takes away one level of backslashes
        // before the text inside is parsed.
        for _ in self.stack.iter().filter(|c| **c == Context::Backtick) {
            text = escape_with_backslash(&text, &['\\', '$', '`']);
        }
        self.out.push_str(&text);
        Ok(())
    }
}

fn escape_with_backslash(value: &str, special: &[char]) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    for c in value.chars() {
        if special.contains(&c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn nul_error() -> String {
    "template error: a value holding a NUL character cannot go into a shell script".to_string()
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
    fn a_value_is_quoted_for_the_place_it_lands_in() {
        let ctx = json!({"params": {"v": "a \"b\" $(id) `id` \\ it's", "n": 3}});
        let shell = |source: &str| render(source, &ctx, Quoting::Shell);
        assert_eq!(
            shell(r#"echo "x {{ params.v }} y""#).unwrap(),
            r#"echo "x a \"b\" \$(id) \`id\` \\ it's y""#
        );
        assert_eq!(
            shell("echo '{{ params.v }}'").unwrap(),
            r#"echo 'a "b" $(id) `id` \ it'\''s'"#
        );
        assert_eq!(
            shell("cat <<EOF\n{{ params.v }}\nEOF\necho {{ params.n }}").unwrap(),
            "cat <<EOF\na \"b\" \\$(id) \\`id\\` \\\\ it's\nEOF\necho 3"
        );
        assert_eq!(
            shell("cat <<'EOF'\n{{ params.v }}\nEOF").unwrap(),
            "cat <<'EOF'\na \"b\" $(id) `id` \\ it's\nEOF"
        );
        // Not here-documents: a here-string, a shift; `$#` and `${#x}` are not comments.
        assert_eq!(
            shell("cat <<< {{ params.n }}; echo $((1<<2)) $# ${#x} {{ params.n }}").unwrap(),
            "cat <<< 3; echo $((1<<2)) $# ${#x} 3"
        );
        // A comment ends at a line break, which a value there loses.
        let lines = json!({"params": {"v": "a\nrm -rf /"}});
        assert_eq!(
            render("# {{ params.v }}\necho", &lines, Quoting::Shell).unwrap(),
            "# a rm -rf /\necho"
        );
    }

    #[test]
    fn what_a_macro_or_block_writes_is_one_value_unless_marked_safe() {
        let ctx = json!({"params": {"v": "a b"}});
        let shell = |source: &str| render(source, &ctx, Quoting::Shell).unwrap();
        let m = "{% macro m(x) %}echo {{ x }}{% endmacro %}";
        assert_eq!(shell(&format!("{m}{{{{ m(params.v) }}}}")), "'echo a b'");
        assert_eq!(
            shell(&format!(
                "{m}{{{{ m(params.v) | safe }}}} \"{{{{ m(params.v) | safe }}}}\""
            )),
            "echo 'a b' \"echo a b\""
        );
        assert_eq!(
            shell("{% set x %}ls {{ params.v }}{% endset %}{{ x | safe }}; {{ x }}"),
            "ls 'a b'; 'ls a b'"
        );
        assert_eq!(
            shell("{% filter upper %}echo {{ params.v }}{% endfilter %}"),
            "'ECHO a b'"
        );
        // A value cannot pass for a mark.
        let forged = json!({"params": {"v": "\u{0}0-0\u{0}; id"}});
        assert!(render("echo {{ params.v }}", &forged, Quoting::Shell).is_err());
    }

    #[test]
    fn a_value_is_refused_where_it_cannot_stay_text() {
        let ctx = json!({"params": {"v": "x\nEOF\nid", "w": "a b"}});
        let shell = |source: &str| render(source, &ctx, Quoting::Shell);
        for source in [
            "cat <<EOF\n{{ params.v }}\nEOF",
            "cat <<'EOF'\n{{ params.v }}\nEOF",
            "echo \\{{ params.w }}",
            "echo \"\\{{ params.w }}\"",
            "echo $'{{ params.w }}'",
            "cat <<{{ params.w }}\nx\n",
            "echo $(( {{ params.w }} + 1 ))",
            "(( x = {{ params.w }} ))",
        ] {
            assert!(shell(source).is_err(), "{source:?}: {:?}", shell(source));
        }
        let tricky = json!({"params": {"v": "a[$(id)]", "n": -2.5}});
        assert!(render("echo $(( {{ params.v }} ))", &tricky, Quoting::Shell).is_err());
        assert_eq!(
            render("echo \"$(( {{ params.n }} ))\"", &tricky, Quoting::Shell).unwrap(),
            "echo \"$(( -2.5 ))\""
        );
        // A value that cannot end the document is fine there.
        assert!(shell("cat <<END\n{{ params.v }}\nEND").is_ok());
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
            ("params.count - 3 == -1", true),
            ("steps.health.status - 500 == 3", true),
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
        let missing = evaluate("steps.nope.exit_code == 0", &ctx).unwrap_err();
        assert!(missing.contains("there is no `nope` here"), "{missing}");
        let ctx = json!({"params": {}, "steps": {"page": {"json": null}}});
        for expr in ["steps.page.json.healthy", "steps.page.json['healthy']"] {
            let error = evaluate(expr, &ctx).unwrap_err();
            assert!(error.contains("`json` is null"), "{expr}: {error}");
        }
    }
}
