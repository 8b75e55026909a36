//! Renders templated task fields (`bash_command`, `env`, ..) with Airflow 3's Jinja context.
//!
//! The names, formats and error messages follow the task SDK (`get_template_context` in
//! `task_runner.py`, the accessors in `execution_time/context.py`, `macros.py`, the
//! environment in `templater.py`). Undefined names are errors, as under Airflow's default
//! `template_undefined = jinja2.StrictUndefined`: a typo must fail the task, not run
//! `rm -rf /{{ dirr }}`. Printed values read as Python's `str()` would print them.
//!
//! This module does no I/O of its own. Variables, connections and XComs come from the
//! caller's [`Lookup`], asked only when the template reaches them.
//!
//! Not provided yet: `prev_*`/`next_*`, `macros.datetime` and friends beyond `ds_add` and
//! `ds_format`, inlets and outlets, and `conf` (in Airflow that is its configuration, not
//! the run's conf, which is `dag_run.conf`).

use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::sync::Arc;

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, Timelike, Utc};
use crossbeam_channel::{Receiver, Sender};
use minijinja::value::{Kwargs, Object, ObjectRepr, from_args};
use minijinja::{AutoEscape, Environment, Error, ErrorKind, State, UndefinedBehavior, Value};

/// Everything a template can see that is known before the task runs.
#[derive(Debug, Clone)]
pub struct Context {
    pub dag_id: String,
    pub task_id: String,
    pub run_id: String,
    pub try_number: u32,
    /// -1 for a task that is not mapped.
    pub map_index: i64,
    /// `None` for a manual run triggered without one, as Airflow 3 allows.
    pub logical_date: Option<DateTime<Utc>>,
    pub data_interval_start: Option<DateTime<Utc>>,
    pub data_interval_end: Option<DateTime<Utc>>,
    pub run_after: DateTime<Utc>,
    /// The run's `conf`, a JSON object.
    pub conf: serde_json::Value,
    /// DAG params with their defaults, already overridden by `conf` as Airflow does when
    /// `[core] dag_run_conf_overrides_params` is on.
    pub params: serde_json::Value,
    /// Airflow's token: `manual`, `scheduled`, `backfill`, `asset_triggered`.
    pub run_type: String,
    pub owner: String,
}

/// What templates look up at render time, answered by the caller (over the Execution API
/// in production). `Ok(None)` means "no such thing"; `Err` is a failure to find out.
pub trait Lookup {
    /// The variable's raw value.
    fn variable(&self, key: &str) -> Result<Option<String>, String>;
    /// The connection as a JSON object with Airflow's Connection fields: `conn_id`,
    /// `conn_type`, `description`, `host`, `schema`, `login`, `password`, `port`, and
    /// `extra` as a JSON string. Missing fields read as `None`.
    fn connection(&self, conn_id: &str) -> Result<Option<serde_json::Value>, String>;
    /// The XCom `key` that `task_id` pushed in this run.
    fn xcom_pull(&self, task_id: &str, key: &str) -> Result<Option<serde_json::Value>, String>;
}

/// Renders `source`; an error names the problem (an undefined name, a syntax error, a
/// failed lookup) and the template line it is on.
///
/// minijinja wants every value it holds to be `'static`, and the `Lookup` is borrowed
/// (in production it holds one task's HTTP client and token). So the template renders on
/// a scoped thread and asks this thread each question over a channel: the `Lookup` is
/// called here, in template order, only for what the template reaches, and at most once
/// per question in one render. The rejected
/// alternatives were an `Arc<dyn Lookup + Send + Sync>` in the signature, and rendering
/// again after each unanswered question.
/// The values of a DAG's `params` (a `{value: ...}` mapping gives its `value`), with a
/// run's `conf` keys over them (Airflow's `dag_run_conf_overrides_params`).
pub fn params_with_conf(params: &serde_json::Value, conf: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    let mut out: serde_json::Map<String, Value> = params
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    let value = match v.get("value") {
                        Some(inner) if v.is_object() => inner.clone(),
                        _ => v.clone(),
                    };
                    (k.clone(), value)
                })
                .collect()
        })
        .unwrap_or_default();
    if let Value::Object(c) = conf {
        out.extend(c.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    Value::Object(out)
}

pub fn render(source: &str, ctx: &Context, lookup: &dyn Lookup) -> Result<String, String> {
    // Every delimiter starts with `{`: without one, the text renders as itself (less the
    // one trailing newline Jinja drops), with no thread to start.
    if !source.contains('{') {
        let text = source.strip_suffix('\n').unwrap_or(source);
        return Ok(text.strip_suffix('\r').unwrap_or(text).to_string());
    }
    let (question_tx, question_rx) = crossbeam_channel::unbounded::<Question>();
    let (answer_tx, answer_rx) = crossbeam_channel::unbounded::<Answer>();
    let asker = Asker {
        questions: question_tx,
        answers: answer_rx,
    };
    // The caller's ends of both channels move into the scope's closure, so a panicking
    // `Lookup` drops them while unwinding: the render thread then sees a closed channel
    // and finishes, and the scope can join it instead of waiting forever.
    std::thread::scope(move |scope| {
        let renderer = std::thread::Builder::new()
            .name("template".to_string())
            .spawn_scoped(scope, move || render_here(source, ctx, asker))
            .map_err(|err| format!("cannot start a thread to render the template: {err}"))?;
        let mut answered: HashMap<Question, Answer> = HashMap::new();
        // Ends when the render thread drops the environment and with it every sender.
        for question in question_rx {
            let answer = answered
                .entry(question)
                .or_insert_with_key(|question| question.put_to(lookup))
                .clone();
            if answer_tx.send(answer).is_err() {
                break;
            }
        }
        match renderer.join() {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

// ---------------------------------------------------------------------------------------
// Questions to the caller's thread

/// One thing a template wants from the [`Lookup`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Question {
    Variable(String),
    Connection(String),
    XCom { task_id: String, key: String },
}

/// A variable's value arrives as a JSON string.
type Answer = Result<Option<serde_json::Value>, String>;

impl Question {
    fn put_to(&self, lookup: &dyn Lookup) -> Answer {
        match self {
            Question::Variable(key) => lookup
                .variable(key)
                .map(|value| value.map(serde_json::Value::String)),
            Question::Connection(conn_id) => lookup.connection(conn_id),
            Question::XCom { task_id, key } => lookup.xcom_pull(task_id, key),
        }
    }
}

/// The render thread's end of the channels, shared by every value that looks things up.
#[derive(Debug)]
struct Asker {
    questions: Sender<Question>,
    answers: Receiver<Answer>,
}

impl Asker {
    fn ask(&self, question: Question) -> Result<Option<serde_json::Value>, Error> {
        let abandoned = || Error::new(ErrorKind::InvalidOperation, "the lookup was abandoned");
        self.questions.send(question).map_err(|_| abandoned())?;
        let answer = self.answers.recv().map_err(|_| abandoned())?;
        answer.map_err(|msg| Error::new(ErrorKind::InvalidOperation, msg))
    }
}

// ---------------------------------------------------------------------------------------
// The environment and the context

fn render_here(source: &str, ctx: &Context, asker: Asker) -> Result<String, String> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    // Airflow's environment leaves autoescape off: bash is not HTML.
    env.set_auto_escape_callback(|_| AutoEscape::None);
    // Debug info clones the source into every error; our messages need only the span.
    env.set_debug(false);
    env.set_formatter(|out, _state, value| {
        out.write_str(&python_str(value))
            .map_err(|_| Error::from(ErrorKind::WriteFailure))
    });
    for (name, format) in [
        ("ds", DateFormat::Ds),
        ("ds_nodash", DateFormat::DsNodash),
        ("ts", DateFormat::Ts),
        ("ts_nodash", DateFormat::TsNodash),
        ("ts_nodash_with_tz", DateFormat::TsNodashWithTz),
    ] {
        env.add_filter(name, move |value: Value| date_filter(name, format, &value));
    }
    let template = env
        .template_from_str(source)
        .map_err(|err| describe(&err, source))?;
    let globals = globals(ctx, Arc::new(asker));
    template
        .render(globals)
        .map_err(|err| describe(&err, source))
}

/// The template context, by Airflow 3's names.
fn globals(ctx: &Context, asker: Arc<Asker>) -> Value {
    let dag_run = Value::from_iter([
        ("dag_id", Value::from(ctx.dag_id.as_str())),
        ("run_id", Value::from(ctx.run_id.as_str())),
        ("logical_date", datetime(ctx.logical_date)),
        ("data_interval_start", datetime(ctx.data_interval_start)),
        ("data_interval_end", datetime(ctx.data_interval_end)),
        ("run_after", datetime(Some(ctx.run_after))),
        ("run_type", Value::from(ctx.run_type.as_str())),
        ("conf", Value::from_serialize(&ctx.conf)),
    ]);
    let ti = Value::from_object(TaskInstance {
        dag_id: ctx.dag_id.clone(),
        task_id: ctx.task_id.clone(),
        run_id: ctx.run_id.clone(),
        try_number: ctx.try_number,
        map_index: ctx.map_index,
        asker: asker.clone(),
    });
    let var = Value::from_iter([
        ("value", Variables::value(false, &asker)),
        ("json", Variables::value(true, &asker)),
    ]);
    let macros = Value::from_iter([
        ("ds_add", Value::from_function(ds_add)),
        ("ds_format", Value::from_function(ds_format)),
    ]);
    let mut names = vec![
        ("dag", Value::from_iter([("dag_id", ctx.dag_id.as_str())])),
        (
            "task",
            Value::from_iter([
                ("task_id", ctx.task_id.as_str()),
                ("dag_id", ctx.dag_id.as_str()),
                ("owner", ctx.owner.as_str()),
            ]),
        ),
        ("run_id", Value::from(ctx.run_id.as_str())),
        ("dag_run", dag_run),
        ("task_instance", ti.clone()),
        ("ti", ti),
        ("params", Value::from_serialize(&ctx.params)),
        ("var", var),
        ("conn", Value::from_object(Connections { asker })),
        ("macros", macros),
    ];
    // Airflow adds these only when the run has a logical date; a manual run without one
    // has no `ds` at all, so `{{ ds }}` fails there rather than printing a made-up date.
    let key_suffix = match ctx.logical_date {
        Some(date) => {
            names.extend([
                ("logical_date", datetime(Some(date))),
                ("ds", Value::from(DateFormat::Ds.apply(date))),
                ("ds_nodash", Value::from(DateFormat::DsNodash.apply(date))),
                ("ts", Value::from(DateFormat::Ts.apply(date))),
                ("ts_nodash", Value::from(DateFormat::TsNodash.apply(date))),
                (
                    "ts_nodash_with_tz",
                    Value::from(DateFormat::TsNodashWithTz.apply(date)),
                ),
                ("data_interval_start", datetime(ctx.data_interval_start)),
                ("data_interval_end", datetime(ctx.data_interval_end)),
            ]);
            DateFormat::DsNodash.apply(date)
        }
        None => ctx.run_id.clone(),
    };
    names.push((
        "task_instance_key_str",
        Value::from(format!("{}__{}__{key_suffix}", ctx.dag_id, ctx.task_id)),
    ));
    Value::from_iter(names)
}

// ---------------------------------------------------------------------------------------
// Datetimes

/// A UTC datetime that prints as Python's `str(datetime)` does.
#[derive(Debug)]
struct PyDateTime(DateTime<Utc>);

fn datetime(value: Option<DateTime<Utc>>) -> Value {
    match value {
        Some(value) => Value::from_object(PyDateTime(value)),
        None => Value::from(()),
    }
}

/// The date strings Airflow derives from a datetime, as context names and as filters.
#[derive(Debug, Clone, Copy)]
enum DateFormat {
    Ds,
    DsNodash,
    Ts,
    TsNodash,
    TsNodashWithTz,
}

impl DateFormat {
    fn apply(self, date: DateTime<Utc>) -> String {
        match self {
            DateFormat::Ds => date.format("%Y-%m-%d").to_string(),
            DateFormat::DsNodash => date.format("%Y%m%d").to_string(),
            DateFormat::Ts => isoformat(date, 'T'),
            DateFormat::TsNodash => date.format("%Y%m%dT%H%M%S").to_string(),
            DateFormat::TsNodashWithTz => isoformat(date, 'T').replace(['-', ':'], ""),
        }
    }
}

/// Python's `datetime.isoformat(sep)`: microseconds only when there are some.
fn isoformat(date: DateTime<Utc>, sep: char) -> String {
    let micros = date.nanosecond() / 1_000;
    let fraction = if micros == 0 {
        String::new()
    } else {
        format!(".{micros:06}")
    };
    format!(
        "{}{sep}{}{fraction}+00:00",
        date.format("%Y-%m-%d"),
        date.format("%H:%M:%S")
    )
}

fn date_filter(name: &str, format: DateFormat, value: &Value) -> Result<Value, Error> {
    if value.is_none() {
        return Ok(Value::from(()));
    }
    match value.downcast_object_ref::<PyDateTime>() {
        Some(date) => Ok(Value::from(format.apply(date.0))),
        None => Err(Error::new(
            ErrorKind::InvalidOperation,
            format!("the {name} filter takes a datetime, not {}", value.kind()),
        )),
    }
}

impl Object for PyDateTime {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let date = self.0;
        let field = match key.as_str()? {
            "year" => date.year() as u32,
            "month" => date.month(),
            "day" => date.day(),
            "hour" => date.hour(),
            "minute" => date.minute(),
            "second" => date.second(),
            "microsecond" => date.nanosecond() / 1_000,
            _ => return None,
        };
        Some(Value::from(field))
    }

    fn call_method(
        self: &Arc<Self>,
        _state: &State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, Error> {
        match method {
            "strftime" => {
                let (format,): (&str,) = from_args(args)?;
                Ok(Value::from(strftime(&self.0.naive_utc(), format)?))
            }
            "isoformat" => {
                let (sep,): (Option<&str>,) = from_args(args)?;
                let sep = match sep.map(|sep| sep.chars().collect::<Vec<_>>()).as_deref() {
                    None => 'T',
                    Some(&[sep]) => sep,
                    Some(_) => return Err(invalid("isoformat() takes a one-character separator")),
                };
                Ok(Value::from(isoformat(self.0, sep)))
            }
            "timestamp" => {
                from_args::<()>(args)?;
                Ok(Value::from(self.0.timestamp_micros() as f64 / 1e6))
            }
            _ => Err(Error::new(
                ErrorKind::UnknownMethod,
                format!("datetime has no method named {method}"),
            )),
        }
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&isoformat(self.0, ' '))
    }
}

/// Python's `strftime`; chrono shares its directives. chrono reports a bad directive as a
/// formatting error (and `to_string` would panic), so this writes into a `String`.
fn strftime(date: &NaiveDateTime, format: &str) -> Result<String, Error> {
    let mut out = String::new();
    write!(out, "{}", date.format(format))
        .map_err(|_| invalid(format!("bad date format {format:?}")))?;
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// macros

/// `macros.ds_add(ds, days)`: a `YYYY-MM-DD` date moved by whole days.
fn ds_add(ds: Value, days: i64) -> Result<Value, Error> {
    let ds = python_str(&ds);
    // Airflow returns the input untouched for zero days, without parsing it.
    if days == 0 {
        return Ok(Value::from(ds));
    }
    let date = NaiveDate::parse_from_str(&ds, "%Y-%m-%d")
        .map_err(|_| no_match(&ds, "%Y-%m-%d"))?
        .checked_add_signed(chrono::TimeDelta::days(days))
        .ok_or_else(|| invalid("date value out of range"))?;
    Ok(Value::from(date.format("%Y-%m-%d").to_string()))
}

/// `macros.ds_format(ds, input_format, output_format)`: a date string re-formatted.
fn ds_format(ds: Value, input_format: &str, output_format: &str) -> Result<Value, Error> {
    let ds = python_str(&ds);
    // Python's strptime fills a missing time with midnight; chrono needs telling.
    let parsed = NaiveDateTime::parse_from_str(&ds, input_format).or_else(|_| {
        NaiveDate::parse_from_str(&ds, input_format).map(|date| date.and_time(Default::default()))
    });
    let parsed = parsed.map_err(|_| no_match(&ds, input_format))?;
    Ok(Value::from(strftime(&parsed, output_format)?))
}

/// Python's `strptime` message.
fn no_match(ds: &str, format: &str) -> Error {
    invalid(format!(
        "time data {} does not match format {}",
        python_repr_str(ds),
        python_repr_str(format)
    ))
}

// ---------------------------------------------------------------------------------------
// ti, var, conn

/// `ti` and `task_instance`.
#[derive(Debug)]
struct TaskInstance {
    dag_id: String,
    task_id: String,
    run_id: String,
    try_number: u32,
    map_index: i64,
    asker: Arc<Asker>,
}

impl TaskInstance {
    /// Airflow's `xcom_pull(task_ids=None, dag_id=None, key='return_value', ...)`: one
    /// value for one task id (its own when none is given), a list for a list.
    fn xcom_pull(&self, args: &[Value]) -> Result<Value, Error> {
        let (task_ids, dag_id, key, kwargs): (Option<Value>, Option<&str>, Option<&str>, Kwargs) =
            from_args(args)?;
        let task_ids = either(task_ids, &kwargs, "task_ids")?;
        let dag_id = either(dag_id, &kwargs, "dag_id")?;
        let key = either(key, &kwargs, "key")?.unwrap_or("return_value");
        let default: Option<Value> = kwargs.get("default")?;
        let run_id: Option<&str> = kwargs.get("run_id")?;
        let include_prior_dates: Option<bool> = kwargs.get("include_prior_dates")?;
        kwargs.assert_all_used()?;
        if dag_id.is_some_and(|dag_id| dag_id != self.dag_id) {
            return Err(invalid("xcom_pull from another DAG is not supported"));
        }
        if run_id.is_some_and(|run_id| run_id != self.run_id) {
            return Err(invalid("xcom_pull from another run is not supported"));
        }
        if include_prior_dates == Some(true) {
            return Err(invalid(
                "xcom_pull with include_prior_dates is not supported",
            ));
        }

        let pull = |task_id: &str| -> Result<Value, Error> {
            let question = Question::XCom {
                task_id: task_id.to_string(),
                key: key.to_string(),
            };
            Ok(match self.asker.ask(question)? {
                Some(value) => Value::from_serialize(&value),
                None => default.clone().unwrap_or(Value::from(())),
            })
        };
        let Some(task_ids) = task_ids else {
            return pull(&self.task_id);
        };
        if let Some(task_id) = task_ids.as_str() {
            return pull(task_id);
        }
        let not_ids = || invalid("task_ids must be a string or a list of strings");
        let mut values = Vec::new();
        for task_id in task_ids.try_iter().map_err(|_| not_ids())? {
            values.push(pull(task_id.as_str().ok_or_else(not_ids)?)?);
        }
        Ok(Value::from(values))
    }
}

impl Object for TaskInstance {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        Some(match key.as_str()? {
            "dag_id" => Value::from(self.dag_id.as_str()),
            "task_id" => Value::from(self.task_id.as_str()),
            "run_id" => Value::from(self.run_id.as_str()),
            "try_number" => Value::from(self.try_number),
            "map_index" => Value::from(self.map_index),
            _ => return None,
        })
    }

    fn call_method(
        self: &Arc<Self>,
        _state: &State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, Error> {
        match method {
            "xcom_pull" => self.xcom_pull(args),
            _ => Err(Error::new(
                ErrorKind::UnknownMethod,
                format!("task instance has no method named {method}"),
            )),
        }
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "<TaskInstance: {}.{} {} [running]>",
            self.dag_id, self.task_id, self.run_id
        )
    }
}

/// `var.value` (raw strings) and `var.json` (parsed): `var.value.NAME` fails when there
/// is no such variable; `var.value.get('NAME', default)` does not.
#[derive(Debug)]
struct Variables {
    json: bool,
    asker: Arc<Asker>,
}

impl Variables {
    fn value(json: bool, asker: &Arc<Asker>) -> Value {
        Value::from_object(Variables {
            json,
            asker: asker.clone(),
        })
    }

    fn get(&self, key: &str) -> Result<Option<Value>, Error> {
        let Some(raw) = self.asker.ask(Question::Variable(key.to_string()))? else {
            return Ok(None);
        };
        let raw = raw.as_str().unwrap_or_default();
        if !self.json {
            return Ok(Some(Value::from(raw)));
        }
        match serde_json::from_str::<serde_json::Value>(raw) {
            Ok(parsed) => Ok(Some(Value::from_serialize(&parsed))),
            Err(err) => Err(invalid(format!("Variable {key} is not valid JSON: {err}"))),
        }
    }
}

impl Object for Variables {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let key = key.as_str()?;
        // An attribute cannot fail, but a value can hold an error that the engine raises
        // where the template uses it, with the template's line.
        Some(match self.get(key) {
            Ok(Some(value)) => value,
            Ok(None) => Value::from(invalid(format!("Variable {key} not found"))),
            Err(err) => Value::from(err),
        })
    }

    fn call_method(
        self: &Arc<Self>,
        _state: &State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, Error> {
        if method != "get" {
            return Err(Error::new(
                ErrorKind::UnknownMethod,
                format!("var has no method named {method}"),
            ));
        }
        let (key, default, kwargs): (&str, Option<Value>, Kwargs) = from_args(args)?;
        // Airflow 2 spelled it `default_var`; Airflow 3 `default`.
        let default = match either(default, &kwargs, "default")? {
            Some(default) => Some(default),
            None => kwargs.get("default_var")?,
        };
        kwargs.assert_all_used()?;
        Ok(self.get(key)?.or(default).unwrap_or(Value::from(())))
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<VariableAccessor (dynamic access)>")
    }
}

/// `conn.ID.host` and friends; `conn.get('ID', default_conn)` does not fail.
#[derive(Debug)]
struct Connections {
    asker: Arc<Asker>,
}

/// Airflow's Connection fields, in its order; `extra_dejson` is derived from `extra`.
const CONNECTION_FIELDS: &[&str] = &[
    "conn_id",
    "conn_type",
    "description",
    "host",
    "schema",
    "login",
    "password",
    "port",
    "extra",
];

impl Connections {
    fn get(&self, conn_id: &str) -> Result<Option<Value>, Error> {
        let found = self.asker.ask(Question::Connection(conn_id.to_string()))?;
        let Some(found) = found else {
            return Ok(None);
        };
        // Airflow keeps `extra` as a JSON string; take an object too, and read text that
        // does not parse as no extras, as Airflow's `extra_dejson` does.
        let (extra, extra_dejson) = match found.get("extra").cloned().unwrap_or_default() {
            serde_json::Value::Null => (serde_json::Value::Null, serde_json::json!({})),
            serde_json::Value::String(text) => {
                let parsed = serde_json::from_str(&text).unwrap_or_else(|_| serde_json::json!({}));
                (serde_json::Value::String(text), parsed)
            }
            object => (serde_json::Value::String(object.to_string()), object),
        };
        let mut fields: Vec<(&str, serde_json::Value)> = CONNECTION_FIELDS
            .iter()
            .map(|&name| match name {
                "conn_id" => (name, serde_json::Value::String(conn_id.to_string())),
                "extra" => (name, extra.clone()),
                _ => (name, found.get(name).cloned().unwrap_or_default()),
            })
            .collect();
        fields.push(("extra_dejson", extra_dejson));
        Ok(Some(Value::from_iter(fields.into_iter().map(
            |(name, value)| (name, Value::from_serialize(&value)),
        ))))
    }
}

impl Object for Connections {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let conn_id = key.as_str()?;
        Some(match self.get(conn_id) {
            Ok(Some(value)) => value,
            Ok(None) => Value::from(invalid(format!("The conn_id `{conn_id}` isn't defined"))),
            Err(err) => Value::from(err),
        })
    }

    fn call_method(
        self: &Arc<Self>,
        _state: &State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, Error> {
        if method != "get" {
            return Err(Error::new(
                ErrorKind::UnknownMethod,
                format!("conn has no method named {method}"),
            ));
        }
        let (conn_id, default, kwargs): (&str, Option<Value>, Kwargs) = from_args(args)?;
        let default = either(default, &kwargs, "default_conn")?;
        kwargs.assert_all_used()?;
        Ok(self.get(conn_id)?.or(default).unwrap_or(Value::from(())))
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<ConnectionAccessor (dynamic access)>")
    }
}

/// An argument given by position or by name, as Python allows, but not both.
fn either<'a, T>(
    positional: Option<T>,
    kwargs: &'a Kwargs,
    name: &'a str,
) -> Result<Option<T>, Error>
where
    T: minijinja::value::ArgType<'a, Output = T>,
{
    let named: Option<T> = kwargs.get(name)?;
    match (positional, named) {
        (Some(_), Some(_)) => Err(Error::new(
            ErrorKind::TooManyArguments,
            format!("got multiple values for argument '{name}'"),
        )),
        (positional, named) => Ok(positional.or(named)),
    }
}

fn invalid(detail: impl Into<std::borrow::Cow<'static, str>>) -> Error {
    Error::new(ErrorKind::InvalidOperation, detail)
}

// ---------------------------------------------------------------------------------------
// Printing and errors

/// What Python's `str()` prints: strings bare, containers with their items' `repr()`.
fn python_str(value: &Value) -> String {
    match value.as_str() {
        Some(text) => text.to_string(),
        None => python_repr(value),
    }
}

/// Python's `repr()` for the values a template holds. minijinja already prints `None`,
/// `True` and floats as Python does; strings inside containers take single quotes.
/// Datetimes inside containers print as `str()`, not as `datetime.datetime(...)`.
fn python_repr(value: &Value) -> String {
    use minijinja::value::ValueKind;
    match value.kind() {
        ValueKind::String => python_repr_str(value.as_str().unwrap_or_default()),
        ValueKind::Seq => {
            let items: Vec<String> = value
                .try_iter()
                .into_iter()
                .flatten()
                .map(|item| python_repr(&item))
                .collect();
            format!("[{}]", items.join(", "))
        }
        ValueKind::Map => {
            let items: Vec<String> = value
                .try_iter()
                .into_iter()
                .flatten()
                .map(|key| {
                    let item = value.get_item(&key).unwrap_or_default();
                    format!("{}: {}", python_repr(&key), python_repr(&item))
                })
                .collect();
            format!("{{{}}}", items.join(", "))
        }
        _ => value.to_string(),
    }
}

/// Python's `repr(str)`: single quotes unless the text has one and no double quote.
pub fn python_repr_str(text: &str) -> String {
    let quote = if text.contains('\'') && !text.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(text.len() + 2);
    out.push(quote);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// One line for an error: what went wrong, then where. An undefined name is named by the
/// template text the engine points at, as Jinja's `'ds' is undefined` does.
fn describe(err: &Error, source: &str) -> String {
    let what = match (err.kind(), err.detail()) {
        (ErrorKind::UndefinedError, _) => {
            match err.range().and_then(|range| undefined_expr(source, range)) {
                Some(name) if name.chars().all(is_name_char) => format!("'{name}' is undefined"),
                // The engine points at the operation that met the undefined value.
                Some(expr) => format!("undefined value in '{expr}'"),
                None => "undefined value".to_string(),
            }
        }
        // Our own errors (a missing variable, a failed lookup) say all there is to say.
        (ErrorKind::InvalidOperation, Some(detail)) => detail.to_string(),
        (kind, Some(detail)) => format!("{kind}: {detail}"),
        (kind, None) => kind.to_string(),
    };
    match err.line() {
        Some(line) => format!("{what} (line {line})"),
        None => what,
    }
}

fn is_name_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '.'
}

/// The dotted name around `range`. The engine points at the failing step, which for
/// `params.a.b` is only `.a.b`, so this reaches back over the rest of the name.
fn undefined_expr(source: &str, range: std::ops::Range<usize>) -> Option<&str> {
    let before = source.get(..range.start)?;
    let start = before.trim_end_matches(is_name_char).len();
    let expr = source.get(start..range.end)?.trim();
    (!expr.is_empty()).then_some(expr)
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use serde_json::json;

    use super::*;

    fn utc(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn text_without_delimiters_renders_as_minijinja_would() {
        let ctx = scheduled();
        for text in [
            "true",
            "echo hi\n",
            "a\r\n",
            "b\r",
            "x\n\n",
            "",
            "\n",
            "100% done }",
        ] {
            let slow = std::thread::scope(|scope| {
                let (_questions, answers) = crossbeam_channel::unbounded();
                let (asks, _) = crossbeam_channel::unbounded();
                let asker = Asker {
                    questions: asks,
                    answers,
                };
                scope
                    .spawn(|| render_here(text, &ctx, asker))
                    .join()
                    .unwrap()
            });
            assert_eq!(render(text, &ctx, &Fake::default()), slow, "{text:?}");
        }
    }

    /// A scheduled run of `etl.load`, second try.
    fn scheduled() -> Context {
        Context {
            dag_id: "etl".to_string(),
            task_id: "load".to_string(),
            run_id: "scheduled__2024-01-02T03:04:05+00:00".to_string(),
            try_number: 2,
            map_index: -1,
            logical_date: Some(utc("2024-01-02T03:04:05Z")),
            data_interval_start: Some(utc("2024-01-01T00:00:00Z")),
            data_interval_end: Some(utc("2024-01-02T00:00:00Z")),
            run_after: utc("2024-01-02T03:04:05Z"),
            conf: json!({}),
            params: json!({"name": "world", "flag": true, "nested": {"n": [1, 2]}}),
            run_type: "scheduled".to_string(),
            owner: "data-team".to_string(),
        }
    }

    /// A manual run triggered without a logical date, as Airflow 3 allows.
    fn manual() -> Context {
        Context {
            run_id: "manual__2024-01-05T10:00:00+00:00".to_string(),
            logical_date: None,
            data_interval_start: None,
            data_interval_end: None,
            run_after: utc("2024-01-05T10:00:00Z"),
            conf: json!({"name": "from conf"}),
            params: json!({"name": "from conf", "flag": true}),
            run_type: "manual".to_string(),
            ..scheduled()
        }
    }

    /// Answers from fixed data and records every question.
    #[derive(Default)]
    struct Fake {
        asked: RefCell<Vec<String>>,
    }

    impl Lookup for Fake {
        fn variable(&self, key: &str) -> Result<Option<String>, String> {
            self.asked.borrow_mut().push(format!("variable {key}"));
            Ok(Some(match key {
                "greeting" => "hello".to_string(),
                "cfg" => r#"{"bucket": "b1", "sizes": [1, 2]}"#.to_string(),
                "not_json" => "{nope".to_string(),
                "down" => return Err("the API server did not answer".to_string()),
                _ => return Ok(None),
            }))
        }

        fn connection(&self, conn_id: &str) -> Result<Option<serde_json::Value>, String> {
            self.asked
                .borrow_mut()
                .push(format!("connection {conn_id}"));
            Ok(match conn_id {
                "pg" => Some(json!({
                    "conn_id": "pg", "conn_type": "postgres", "host": "db.local",
                    "schema": "public", "login": "app", "password": "s3cret", "port": 5432,
                    "extra": r#"{"sslmode": "require"}"#,
                })),
                "bare" => Some(json!({"conn_type": "http", "extra": "not json"})),
                _ => None,
            })
        }

        fn xcom_pull(&self, task_id: &str, key: &str) -> Result<Option<serde_json::Value>, String> {
            self.asked
                .borrow_mut()
                .push(format!("xcom {task_id} {key}"));
            Ok(match (task_id, key) {
                ("push", "return_value") => Some(json!("pushed")),
                ("push", "count") => Some(json!(7)),
                ("other", "return_value") => Some(json!({"a": [1, true, null]})),
                ("load", "return_value") => Some(json!("mine")),
                _ => None,
            })
        }
    }

    /// Panics on any question: for templates that must not look anything up.
    struct Never;

    impl Lookup for Never {
        fn variable(&self, key: &str) -> Result<Option<String>, String> {
            panic!("unexpected lookup of variable {key}")
        }
        fn connection(&self, conn_id: &str) -> Result<Option<serde_json::Value>, String> {
            panic!("unexpected lookup of connection {conn_id}")
        }
        fn xcom_pull(&self, task_id: &str, _: &str) -> Result<Option<serde_json::Value>, String> {
            panic!("unexpected lookup of an XCom from {task_id}")
        }
    }

    fn check(template: &str, expect: &str) {
        check_in(&scheduled(), template, expect);
    }

    fn check_in(ctx: &Context, template: &str, expect: &str) {
        let got = render(template, ctx, &Fake::default());
        assert_eq!(got.as_deref(), Ok(expect), "template: {template}");
    }

    fn check_err(template: &str, expect: &str) {
        check_err_in(&scheduled(), template, expect);
    }

    fn check_err_in(ctx: &Context, template: &str, expect: &str) {
        let got = render(template, ctx, &Fake::default());
        assert_eq!(got, Err(expect.to_string()), "template: {template}");
    }

    /// The questions `template` puts to the Lookup, in order.
    fn questions(template: &str) -> Vec<String> {
        let fake = Fake::default();
        let _ = render(template, &scheduled(), &fake);
        fake.asked.into_inner()
    }

    #[test]
    fn dates_format_like_airflow() {
        check("{{ ds }}", "2024-01-02");
        check("{{ ds_nodash }}", "20240102");
        check("{{ ts }}", "2024-01-02T03:04:05+00:00");
        check("{{ ts_nodash }}", "20240102T030405");
        check("{{ ts_nodash_with_tz }}", "20240102T030405+0000");
        check("{{ logical_date }}", "2024-01-02 03:04:05+00:00");
        check("{{ data_interval_start }}", "2024-01-01 00:00:00+00:00");
        check("{{ data_interval_end }}", "2024-01-02 00:00:00+00:00");
        check(
            "{{ logical_date.strftime('%d/%m/%Y %H') }}",
            "02/01/2024 03",
        );
        check(
            "{{ logical_date.isoformat() }}",
            "2024-01-02T03:04:05+00:00",
        );
        check("{{ logical_date.year }}-{{ logical_date.month }}", "2024-1");
        check("{{ data_interval_end | ds }}", "2024-01-02");
        check(
            "{{ data_interval_end | ts_nodash_with_tz }}",
            "20240102T000000+0000",
        );
        check_err(
            "{{ logical_date.strftime('%Q') }}",
            "bad date format \"%Q\" (line 1)",
        );

        let ctx = Context {
            logical_date: Some(utc("2024-01-02T03:04:05.250Z")),
            ..scheduled()
        };
        check_in(&ctx, "{{ ts }}", "2024-01-02T03:04:05.250000+00:00");
        check_in(&ctx, "{{ ts_nodash }}", "20240102T030405");
        check_in(
            &ctx,
            "{{ logical_date }}",
            "2024-01-02 03:04:05.250000+00:00",
        );
    }

    #[test]
    fn run_dag_task_and_ti() {
        check("{{ run_id }}", "scheduled__2024-01-02T03:04:05+00:00");
        check(
            "{{ dag_run.run_id }}",
            "scheduled__2024-01-02T03:04:05+00:00",
        );
        check("{{ dag_run.dag_id }}", "etl");
        check("{{ dag_run.logical_date }}", "2024-01-02 03:04:05+00:00");
        check("{{ dag_run.run_after }}", "2024-01-02 03:04:05+00:00");
        check("{{ dag_run.run_type }}", "scheduled");
        check("{{ dag_run.conf }}", "{}");
        check("{{ dag.dag_id }}", "etl");
        check("{{ task.task_id }} {{ task.owner }}", "load data-team");
        check(
            "{{ ti.dag_id }} {{ ti.task_id }} {{ ti.run_id }} {{ ti.try_number }} {{ ti.map_index }}",
            "etl load scheduled__2024-01-02T03:04:05+00:00 2 -1",
        );
        check("{{ task_instance.try_number }}", "2");
        check(
            "{{ ti }}",
            "<TaskInstance: etl.load scheduled__2024-01-02T03:04:05+00:00 [running]>",
        );
        check("{{ task_instance_key_str }}", "etl__load__20240102");
    }

    #[test]
    fn params_by_attribute_and_key() {
        check("{{ params.name }} {{ params['name'] }}", "world world");
        check("{{ params.flag }}", "True");
        check("{{ params.nested.n[1] }}", "2");
        check("{{ params.nested }}", "{'n': [1, 2]}");
        check("{{ params.missing | default('fallback') }}", "fallback");
        check(
            "{% if params.missing is defined %}yes{% else %}no{% endif %}",
            "no",
        );
    }

    #[test]
    fn xcom_pull() {
        check("{{ ti.xcom_pull(task_ids='push') }}", "pushed");
        check("{{ ti.xcom_pull('push') }}", "pushed");
        check("{{ task_instance.xcom_pull(task_ids='push') }}", "pushed");
        check("{{ ti.xcom_pull(task_ids='push', key='count') + 1 }}", "8");
        check(
            "{{ ti.xcom_pull(task_ids=['push', 'nothing']) }}",
            "['pushed', None]",
        );
        check("{{ ti.xcom_pull(task_ids=['push']) }}", "['pushed']");
        check(
            "{{ ti.xcom_pull(task_ids='other') }}",
            "{'a': [1, True, None]}",
        );
        check("{{ ti.xcom_pull(task_ids='other').a[0] }}", "1");
        check("{{ ti.xcom_pull() }}", "mine");
        check("{{ ti.xcom_pull(task_ids='nothing') }}", "None");
        check("{{ ti.xcom_pull(task_ids='nothing', default='d') }}", "d");
        check(
            "{{ ti.xcom_pull(task_ids='push', dag_id='etl') }}",
            "pushed",
        );
        check_err(
            "{{ ti.xcom_pull(task_ids='push', dag_id='other') }}",
            "xcom_pull from another DAG is not supported (line 1)",
        );
        check_err(
            "{{ ti.xcom_pull(task_ids=3) }}",
            "task_ids must be a string or a list of strings (line 1)",
        );
        check_err(
            "{{ ti.xcom_pull('push', task_ids='push') }}",
            "too many arguments: got multiple values for argument 'task_ids' (line 1)",
        );
        assert_eq!(
            questions("{{ ti.xcom_pull(task_ids='push') }}"),
            ["xcom push return_value"]
        );
    }

    #[test]
    fn variables() {
        check("{{ var.value.greeting }}", "hello");
        check("{{ var.value.get('greeting', 'd') }}", "hello");
        check("{{ var.value.get('missing', 'd') }}", "d");
        check("{{ var.value.get('missing', default_var='d') }}", "d");
        check("{{ var.value.get('missing') }}", "None");
        check(
            "{{ var.value.cfg }}",
            r#"{"bucket": "b1", "sizes": [1, 2]}"#,
        );
        check(
            "{{ var.json.cfg.bucket }} {{ var.json.cfg.sizes[1] }}",
            "b1 2",
        );
        check("{{ var.json.cfg }}", "{'bucket': 'b1', 'sizes': [1, 2]}");
        check("{{ var.value }}", "<VariableAccessor (dynamic access)>");
        check_err(
            "{{ var.value.missing }}",
            "Variable missing not found (line 1)",
        );
        check_err(
            "ok\n{{ var.json.not_json }}",
            "Variable not_json is not valid JSON: key must be a string at line 1 column 2 (line 2)",
        );
        check_err(
            "{{ var.value.down }}",
            "the API server did not answer (line 1)",
        );
        check_err(
            "{{ var.value.get('down', 'd') }}",
            "the API server did not answer (line 1)",
        );
    }

    #[test]
    fn connections() {
        check(
            "{{ conn.pg.login }}:{{ conn.pg.password }}@{{ conn.pg.host }}:{{ conn.pg.port }}/{{ conn.pg.schema }}",
            "app:s3cret@db.local:5432/public",
        );
        check("{{ conn.pg.extra_dejson.sslmode }}", "require");
        check("{{ conn.pg.conn_type }}", "postgres");
        check("{{ conn.bare.conn_id }} {{ conn.bare.host }}", "bare None");
        check("{{ conn.bare.extra_dejson }}", "{}");
        check(
            "{{ conn.get('missing', 'd') }} {{ conn.get('missing') }}",
            "d None",
        );
        check_err(
            "{{ conn.missing.host }}",
            "The conn_id `missing` isn't defined (line 1)",
        );
    }

    #[test]
    fn macros() {
        check("{{ macros.ds_add(ds, -1) }}", "2024-01-01");
        check("{{ macros.ds_add(ds, 30) }}", "2024-02-01");
        check("{{ macros.ds_add('2024-03-01', -1) }}", "2024-02-29");
        check("{{ macros.ds_add('any text', 0) }}", "any text");
        check(
            "{{ macros.ds_format(ds, '%Y-%m-%d', '%d/%m/%y') }}",
            "02/01/24",
        );
        check(
            "{{ macros.ds_format('1/5/2015', '%m/%d/%Y', '%Y-%m-%d') }}",
            "2015-01-05",
        );
        check_err(
            "{{ macros.ds_add('2024-13-01', 1) }}",
            "time data '2024-13-01' does not match format '%Y-%m-%d' (line 1)",
        );
    }

    #[test]
    fn lookups_are_lazy_and_asked_once() {
        let every_name = "{{ ds }} {{ ds_nodash }} {{ ts }} {{ ts_nodash }} {{ ts_nodash_with_tz }} \
            {{ logical_date }} {{ data_interval_start }} {{ data_interval_end }} {{ run_id }} \
            {{ dag_run.conf }} {{ dag.dag_id }} {{ task.owner }} {{ ti.try_number }} \
            {{ task_instance.map_index }} {{ params.name }} {{ macros.ds_add(ds, 1) }} \
            {{ var.value }} {{ var.json }} {{ conn }} {{ task_instance_key_str }}";
        assert!(render(every_name, &scheduled(), &Never).is_ok());
        assert!(render("{{ ds }}", &manual(), &Never).is_err());

        assert_eq!(
            questions("{% if false %}{{ var.value.greeting }}{{ conn.pg.host }}{% endif %}"),
            Vec::<String>::new()
        );
        assert_eq!(
            questions(
                "{{ var.value.greeting }} {{ var.value.greeting }} {{ var.json.cfg.bucket }}"
            ),
            ["variable greeting", "variable cfg"]
        );
        assert_eq!(
            questions("{{ conn.pg.host }}{{ ti.xcom_pull(task_ids=['push', 'other']) }}"),
            [
                "connection pg",
                "xcom push return_value",
                "xcom other return_value"
            ]
        );
    }

    #[test]
    #[should_panic(expected = "unexpected lookup of variable greeting")]
    fn a_panicking_lookup_panics_render() {
        let _ = render("{{ var.value.greeting }}", &scheduled(), &Never);
    }

    #[test]
    fn manual_run_without_logical_date() {
        let ctx = manual();
        check_err_in(&ctx, "{{ ds }}", "'ds' is undefined (line 1)");
        check_err_in(
            &ctx,
            "{{ logical_date }}",
            "'logical_date' is undefined (line 1)",
        );
        check_err_in(
            &ctx,
            "{{ data_interval_start }}",
            "'data_interval_start' is undefined (line 1)",
        );
        check_in(&ctx, "{{ dag_run.logical_date }}", "None");
        check_in(&ctx, "{{ dag_run.data_interval_end }}", "None");
        check_in(&ctx, "{{ dag_run.run_after }}", "2024-01-05 10:00:00+00:00");
        check_in(&ctx, "{{ dag_run.run_type }}", "manual");
        check_in(
            &ctx,
            "{{ dag_run.conf.name }} {{ params.name }}",
            "from conf from conf",
        );
        check_in(&ctx, "{{ ds | default('no date') }}", "no date");
        check_in(
            &ctx,
            "{{ ds if ds is defined else run_id }}",
            "manual__2024-01-05T10:00:00+00:00",
        );
        check_in(
            &ctx,
            "{{ task_instance_key_str }}",
            "etl__load__manual__2024-01-05T10:00:00+00:00",
        );
        check_in(&ctx, "{{ dag_run.logical_date | ds }}", "None");
    }

    #[test]
    fn errors_name_the_problem_and_line() {
        check_err("{{ dss }}", "'dss' is undefined (line 1)");
        check_err(
            "a\n{{ params.missing }}",
            "'params.missing' is undefined (line 2)",
        );
        check_err("{{ conf }}", "'conf' is undefined (line 1)");
        check_err(
            "{% for x in nothing %}{% endfor %}",
            "'nothing' is undefined (line 1)",
        );
        check_err(
            "{{ 'a' ~ params.nested.missing.x }}",
            "'params.nested.missing.x' is undefined (line 1)",
        );
        check_err("{{ ds ~ dss }}", "undefined value in 'ds ~ dss' (line 1)");
        check_err(
            "{% if dss == 1 %}{% endif %}",
            "undefined value in 'if dss == 1' (line 1)",
        );
        check_err(
            "echo\n{{ ds }\n",
            "syntax error: unexpected `}`, expected end of variable block (line 2)",
        );
        check_err(
            "{% if ds %}\nno end",
            "syntax error: unexpected end of input, expected end of block (line 1)",
        );
        check_err(
            "{{ ti.push() }}",
            "unknown method: task instance has no method named push (line 1)",
        );
    }

    #[test]
    fn prints_like_python() {
        check(
            "{{ [1, 'a', none, true, 1.5] }}",
            "[1, 'a', None, True, 1.5]",
        );
        check("{{ {'k': \"it's\"} }}", "{'k': \"it's\"}");
        check("{{ none }} {{ false }}", "None False");
        check("{{ 'a\\nb' }}", "a\nb");
        check("{{ ['a\\nb', 'x\\\\y'] }}", r"['a\nb', 'x\\y']");
        check("<b>{{ '<i>' }}</b>", "<b><i></b>");
        check("{{ [logical_date] }}", "[2024-01-02 03:04:05+00:00]");
        check("line\n", "line");
    }
}
