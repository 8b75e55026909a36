//! Renders templated task fields (`bash_command`, `env`, ..) with Airflow 3's Jinja context.
//!
//! The names, formats and error messages follow the task SDK (`get_template_context` in
//! `task_runner.py`, the accessors in `execution_time/context.py`, `macros.py`, the
//! environment in `templater.py`). Undefined names are errors, as under Airflow's default
//! `template_undefined = jinja2.StrictUndefined`: a typo must fail the task, not run
//! `rm -rf /{{ dirr }}`. Printed values read as Python's `str()` would print them.
//!
//! Airflow's templates are Jinja over Python objects, so they call Python's methods
//! (`conf.get('x', 'd')`, `.items()`, `.split(',')`, ..) and pendulum's (`logical_date
//! .subtract(days=1)`): minijinja-contrib's `pycompat` and `python_method` provide
//! them, and `macros.datetime`, `macros.timedelta` and `macros.json` mirror Python's.
//! What cannot match (no operator overloading, so no `datetime - timedelta` and no
//! `'%s' % x`) fails with an error that says what to write instead.
//!
//! A render is bounded: [`STEP_BUDGET`] steps, [`MAX_OUTPUT`] bytes, and the caller's
//! deadline ([`render_within`]); a template past any of them fails with a message naming
//! the bound, and the process is never at risk.
//!
//! This module does no I/O of its own. Variables, connections and XComs come from the
//! caller's [`Lookup`], asked only when the template reaches them.
//!
//! Not provided yet: `prev_*`/`next_*`, `macros.dateutil` (in templates; Python tasks have it), `macros.uuid`/`random`/`time`,
//! inlets and outlets, and `conf` (in Airflow that is its configuration, not the run's
//! conf, which is `dag_run.conf`).

use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, Timelike, Utc};
use crossbeam_channel::{Receiver, Sender};
use minijinja::value::{Kwargs, Object, ObjectRepr, Rest, from_args};
use minijinja::{AutoEscape, Environment, Error, ErrorKind, State, UndefinedBehavior, Value};

use crate::clock::Clock;

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
    /// What `macros.datetime.now()` and `utcnow()` read.
    pub clock: Clock,
    /// Names a Python callable added to its context (`context["key"] = value`), for
    /// the `map_index_template` Airflow renders after the call; they never hide a name
    /// the context has.
    pub extra: serde_json::Map<String, serde_json::Value>,
    /// What `task.<name>` reads besides `task_id`, `dag_id` and `owner` (Airflow's
    /// operator object): the task's arguments, a mapped instance's own values of its
    /// expanded ones.
    pub task_attrs: serde_json::Map<String, serde_json::Value>,
}

/// The `task.<name>` attributes of a task as the Execution API's run context gives it
/// (a mapped instance's with its own values): the arguments Airflow's BashOperator or
/// PythonOperator object has under those names. Others are left out, so reading them
/// fails as an attribute Airflow's operator does not have.
pub fn task_attrs(task: &serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    const COMMON: &[&str] = &["retries", "map_index_template"];
    const BASH: &[&str] = &["bash_command", "env", "append_env", "cwd"];
    const PYTHON: &[&str] = &[
        "op_args",
        "op_kwargs",
        "templates_dict",
        "multiple_outputs",
        "do_xcom_push",
        "show_return_value_in_logs",
    ];
    let mut attrs = serde_json::Map::new();
    let mut take = |from: &serde_json::Value, names: &[&str]| {
        for &name in names {
            if let Some(v) = from.get(name) {
                attrs.insert(name.to_string(), v.clone());
            }
        }
    };
    take(task, COMMON);
    if task["python"].is_object() {
        take(&task["python"], PYTHON);
    } else if task["operator"]
        .as_str()
        .is_some_and(|o| o.ends_with(".BashOperator"))
    {
        take(task, BASH);
    }
    attrs
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

/// Renders `source`; an error names the problem (an undefined name, a syntax error, a
/// failed lookup, an exceeded bound) and the template line it is on. Bounded by
/// [`STEP_BUDGET`] and [`MAX_OUTPUT`]; see [`render_within`] for a deadline too.
pub fn render(source: &str, ctx: &Context, lookup: &dyn Lookup) -> Result<String, String> {
    match render_within(source, ctx, lookup, None, &mut || ControlFlow::Continue(())) {
        Ok(text) => Ok(text),
        Err(RenderError::Template(msg)) => Err(msg),
        // Neither can happen without a deadline or a tick that breaks.
        Err(RenderError::Timeout | RenderError::Abandoned) => {
            Err("the render was abandoned".to_string())
        }
    }
}

/// The most steps (minijinja's fuel: about one per expression, loop turn or output
/// piece) one render may take: about half a second of a core in a release build. A real
/// template takes hundreds; a loop over 100,000 items doing a few things each still fits.
pub const STEP_BUDGET: u64 = 10_000_000;
/// The most bytes a rendered template may have: far above what a shell accepts as one
/// command line (bash -c: 128 KiB on Linux; cmd: 8 KiB).
pub const MAX_OUTPUT: usize = 1 << 20;
/// The most bytes of strings and lists one render may build, all its values together
/// (our patch of minijinja, `vendor/minijinja/PATCHES.md`): a value that doubles in a loop
/// fails the render long before memory runs out. Far above what a real template builds.
pub const BUILD_BUDGET: usize = 64 << 20;
/// How often the caller's `tick` runs while a template renders.
const TICK: Duration = Duration::from_millis(100);

/// Why [`render_within`] gave no text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RenderError {
    /// The template is wrong or exceeded a bound: the message says which, and where.
    Template(String),
    /// The deadline passed first.
    Timeout,
    /// `tick` asked to stop.
    Abandoned,
}

/// [`render`] against a deadline, with `tick` called about every 100 ms while it runs
/// (the supervisor heartbeats there) and able to abandon it.
///
/// The template renders on a thread of its own and asks this thread each question over
/// a channel: the `Lookup` is called here, in template order, only for what the template
/// reaches, and at most once per question in one render. minijinja wants every value it
/// holds to be `'static`, and the `Lookup` is borrowed (in production it holds one
/// task's HTTP client and token), hence the channel; the rejected alternatives were an
/// `Arc<dyn Lookup + Send + Sync>` in the signature, and rendering again after each
/// unanswered question.
///
/// On a timeout or an abandon this returns at once and the render thread is left to
/// stop by itself: it is told to (its next output write fails), and the step budget
/// bounds what it can still do. minijinja has no other way to stop a render.
pub fn render_within(
    source: &str,
    ctx: &Context,
    lookup: &dyn Lookup,
    deadline: Option<Instant>,
    tick: &mut dyn FnMut() -> ControlFlow<()>,
) -> Result<String, RenderError> {
    // Every delimiter starts with `{`: without one, the text renders as itself (less the
    // one trailing newline Jinja drops), with no thread to start.
    if !source.contains('{') {
        let text = source.strip_suffix('\n').unwrap_or(source);
        return Ok(text.strip_suffix('\r').unwrap_or(text).to_string());
    }
    let (question_tx, question_rx) = crossbeam_channel::unbounded::<Question>();
    let (answer_tx, answer_rx) = crossbeam_channel::unbounded::<Answer>();
    let (result_tx, result_rx) = crossbeam_channel::bounded::<Result<String, String>>(1);
    let asker = Asker {
        questions: question_tx,
        answers: answer_rx,
    };
    let cancel = Arc::new(AtomicBool::new(false));
    let renderer = {
        let (source, ctx, cancel) = (source.to_string(), ctx.clone(), cancel.clone());
        std::thread::Builder::new()
            .name("template".to_string())
            .spawn(move || {
                let result = render_here(&source, &ctx, asker, cancel);
                let _ = result_tx.send(result);
            })
            .map_err(|err| {
                RenderError::Template(format!(
                    "cannot start a thread to render the template: {err}"
                ))
            })?
    };
    // Tells a render this side no longer waits for to stop, however this function ends
    // (a panicking `Lookup` included).
    let _stop = CancelOnDrop(cancel);
    let mut questions = question_rx;
    let mut answered: HashMap<Question, Answer> = HashMap::new();
    let mut last_tick = Instant::now();
    loop {
        let wait = match deadline {
            Some(deadline) => TICK.min(deadline.saturating_duration_since(Instant::now())),
            None => TICK,
        };
        crossbeam_channel::select! {
            recv(questions) -> question => match question {
                Ok(question) => {
                    let answer = answered
                        .entry(question)
                        .or_insert_with_key(|question| question.put_to(lookup))
                        .clone();
                    let _ = answer_tx.send(answer);
                }
                // The render dropped its environment; its result follows.
                Err(_) => questions = crossbeam_channel::never(),
            },
            recv(result_rx) -> result => match result {
                Ok(result) => return result.map_err(RenderError::Template),
                // The render thread panicked.
                Err(_) => match renderer.join() {
                    Ok(()) => return Err(RenderError::Template("the render thread ended without a result".to_string())),
                    Err(panic) => std::panic::resume_unwind(panic),
                },
            },
            default(wait) => {}
        }
        if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
            return Err(RenderError::Timeout);
        }
        if last_tick.elapsed() >= TICK {
            last_tick = Instant::now();
            if tick().is_break() {
                return Err(RenderError::Abandoned);
            }
        }
    }
}

/// Sets the flag when dropped.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
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

/// Renders on this thread, under the build budget, counted from zero for this render.
fn render_here(
    source: &str,
    ctx: &Context,
    asker: Asker,
    cancel: Arc<AtomicBool>,
) -> Result<String, String> {
    minijinja::set_build_budget(Some(BUILD_BUDGET));
    let rendered = render_budgeted(source, ctx, asker, cancel);
    minijinja::set_build_budget(None);
    rendered
}

fn render_budgeted(
    source: &str,
    ctx: &Context,
    asker: Asker,
    cancel: Arc<AtomicBool>,
) -> Result<String, String> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    // Airflow's environment leaves autoescape off: bash is not HTML.
    env.set_auto_escape_callback(|_| AutoEscape::None);
    // Debug info clones the source into every error; our messages need only the span.
    env.set_debug(false);
    env.set_fuel(Some(STEP_BUDGET));
    env.set_unknown_method_callback(python_method);
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
    env.add_filter("tojson", tojson);
    // Plugins' filters and macros (`plugins.rs`), read now as a task process would.
    let plugins = crate::plugins::current();
    for e in &plugins.errors {
        log::warn!("plugin not loaded: {e}");
    }
    for p in &plugins.plugins {
        for f in &p.filters {
            let snippet = f.clone();
            env.add_filter(f.name.clone(), move |state: &State, args: Rest<Value>| {
                call_snippet(state, &snippet, &args)
            });
        }
    }
    let template = env
        .template_from_str(source)
        .map_err(|err| describe(&err, source))?;
    let mut globals = globals(ctx, Arc::new(asker));
    if !plugins.plugins.is_empty() {
        globals = with_plugin_macros(globals, &plugins);
    }
    let mut out = Capped {
        text: Vec::new(),
        over: false,
        cancel,
    };
    match template.render_captured_to(globals, &mut out) {
        // The last step may have spent the budget with no step after it to fail.
        Ok(_) if minijinja::build_budget_spent() => Err(format!(
            "the template built more than {BUILD_BUDGET} bytes of values (a string or list that grows in a loop?)"
        )),
        Ok(_) => Ok(String::from_utf8_lossy(&out.text).into_owned()),
        Err(_) if out.over => Err(format!(
            "the rendered template is larger than the output cap of {MAX_OUTPUT} bytes"
        )),
        Err(err) => Err(describe(&err, source)),
    }
}

/// The render's output, refused past [`MAX_OUTPUT`] bytes or once the caller has gone:
/// a failed write ends the render.
struct Capped {
    text: Vec<u8>,
    over: bool,
    cancel: Arc<AtomicBool>,
}

impl std::io::Write for Capped {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.cancel.load(Ordering::Relaxed) {
            return Err(std::io::Error::other("the render was abandoned"));
        }
        if self.text.len() + buf.len() > MAX_OUTPUT {
            self.over = true;
            return Err(std::io::Error::other("output cap reached"));
        }
        self.text.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The template context, by Airflow 3's names.
/// Renders a plugin's snippet with its arguments bound to their names.
fn call_snippet(
    state: &State,
    snippet: &crate::plugins::Snippet,
    args: &[Value],
) -> Result<String, Error> {
    if args.len() > snippet.args.len() {
        return Err(Error::new(
            ErrorKind::TooManyArguments,
            format!(
                "{} takes {} argument(s), not {}",
                snippet.name,
                snippet.args.len(),
                args.len()
            ),
        ));
    }
    let mut bound: Vec<(String, Value)> = snippet
        .args
        .iter()
        .cloned()
        .zip(args.iter().cloned())
        .collect();
    for missing in snippet.args.iter().skip(args.len()) {
        bound.push((missing.clone(), Value::from(())));
    }
    state
        .env()
        .render_str(&snippet.template, Value::from_iter(bound))
}

/// `globals` with each plugin's macros under `macros.<plugin>`.
fn with_plugin_macros(globals: Value, plugins: &crate::plugins::Loaded) -> Value {
    let Some(pairs) = globals.try_iter().ok().map(|keys| {
        keys.filter_map(|k| {
            let v = globals.get_item(&k).ok()?;
            Some((k, v))
        })
        .collect::<Vec<_>>()
    }) else {
        return globals;
    };
    let pairs = pairs.into_iter().map(|(k, v)| {
        if k.as_str() != Some("macros") {
            return (k, v);
        }
        let mut entries: Vec<(Value, Value)> = v
            .try_iter()
            .map(|keys| {
                keys.filter_map(|mk| v.get_item(&mk).ok().map(|mv| (mk, mv)))
                    .collect()
            })
            .unwrap_or_default();
        for p in &plugins.plugins {
            let fns: Vec<(String, Value)> = p
                .macros
                .iter()
                .map(|m| {
                    let snippet = m.clone();
                    let f = Value::from_function(move |state: &State, args: Rest<Value>| {
                        call_snippet(state, &snippet, &args)
                    });
                    (m.name.clone(), f)
                })
                .collect();
            entries.push((Value::from(p.name.clone()), Value::from_iter(fns)));
        }
        (k, Value::from_iter(entries))
    });
    Value::from_iter(pairs.collect::<Vec<_>>())
}

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
        (
            "datetime",
            Value::from_object(DateTimeClass {
                clock: ctx.clock.clone(),
            }),
        ),
        ("timedelta", Value::from_function(timedelta)),
        (
            "json",
            Value::from_iter([
                ("dumps", Value::from_function(json_dumps)),
                ("loads", Value::from_function(json_loads)),
            ]),
        ),
    ]);
    let mut names = vec![
        ("dag", Value::from_iter([("dag_id", ctx.dag_id.as_str())])),
        (
            "task",
            Value::from_iter(
                ctx.task_attrs
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::from_serialize(v)))
                    .chain([
                        ("task_id".to_string(), Value::from(ctx.task_id.as_str())),
                        ("dag_id".to_string(), Value::from(ctx.dag_id.as_str())),
                        ("owner".to_string(), Value::from(ctx.owner.as_str())),
                    ]),
            ),
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
    for (name, value) in &ctx.extra {
        if !names.iter().any(|(n, _)| n == name) {
            names.push((name.as_str(), Value::from_serialize(value)));
        }
    }
    Value::from_iter(names)
}

// ---------------------------------------------------------------------------------------
// Datetimes

/// A datetime that prints as Python's `str(datetime)` does: Airflow's dates are aware
/// (UTC, pendulum's `DateTime`); `macros.datetime(...)`, `now()` and `strptime` make naive
/// ones, kept here as UTC wall-clock time that prints without an offset.
#[derive(Debug, Clone, Copy)]
struct PyDateTime {
    at: DateTime<Utc>,
    naive: bool,
    /// A `date` (from `.date()`): prints without a time.
    date_only: bool,
}

fn datetime(value: Option<DateTime<Utc>>) -> Value {
    match value {
        Some(at) => Value::from_object(PyDateTime {
            at,
            naive: false,
            date_only: false,
        }),
        None => Value::from(()),
    }
}

fn naive_datetime(at: NaiveDateTime) -> Value {
    Value::from_object(PyDateTime {
        at: at.and_utc(),
        naive: true,
        date_only: false,
    })
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

/// Python's `datetime.isoformat(sep)` of an aware UTC datetime: microseconds only when
/// there are some.
fn isoformat(date: DateTime<Utc>, sep: char) -> String {
    isoformat_of(date, sep, false)
}

fn isoformat_of(date: DateTime<Utc>, sep: char, naive: bool) -> String {
    let micros = date.nanosecond() / 1_000;
    let fraction = if micros == 0 {
        String::new()
    } else {
        format!(".{micros:06}")
    };
    let offset = if naive { "" } else { "+00:00" };
    format!(
        "{}{sep}{}{fraction}{offset}",
        date.format("%Y-%m-%d"),
        date.format("%H:%M:%S")
    )
}

fn date_filter(name: &str, format: DateFormat, value: &Value) -> Result<Value, Error> {
    if value.is_none() {
        return Ok(Value::from(()));
    }
    match value.downcast_object_ref::<PyDateTime>() {
        Some(date) => Ok(Value::from(format.apply(date.at))),
        None => Err(Error::new(
            ErrorKind::InvalidOperation,
            format!("the {name} filter takes a datetime, not {}", value.kind()),
        )),
    }
}

impl PyDateTime {
    fn with(self, at: DateTime<Utc>) -> Value {
        Value::from_object(PyDateTime { at, ..self })
    }

    /// pendulum's `add(years=.., months=.., weeks=.., days=.., hours=.., minutes=..,
    /// seconds=.., microseconds=..)`; `sign` -1 is `subtract`.
    fn shift(self, args: &[Value], sign: i64) -> Result<Value, Error> {
        let (kwargs,): (Kwargs,) = from_args(args)?;
        let amount = |name: &str| -> Result<i64, Error> {
            Ok(kwargs
                .get::<Option<i64>>(name)?
                .unwrap_or(0)
                .saturating_mul(sign))
        };
        let months = amount("years")?
            .saturating_mul(12)
            .saturating_add(amount("months")?);
        let mut micros: i64 = 0;
        for (name, unit) in [
            ("weeks", 604_800_000_000),
            ("days", 86_400_000_000),
            ("hours", 3_600_000_000),
            ("minutes", 60_000_000),
            ("seconds", 1_000_000),
            ("microseconds", 1),
        ] {
            micros = amount(name)?
                .checked_mul(unit)
                .and_then(|m| m.checked_add(micros))
                .ok_or_else(|| invalid("date value out of range"))?;
        }
        kwargs.assert_all_used()?;
        // pendulum moves by calendar months first (keeping the day within the month),
        // then by the rest.
        let by = chrono::Months::new(u32::try_from(months.unsigned_abs()).unwrap_or(u32::MAX));
        let moved = if months >= 0 {
            self.at.checked_add_months(by)
        } else {
            self.at.checked_sub_months(by)
        };
        moved
            .and_then(|at| at.checked_add_signed(chrono::TimeDelta::microseconds(micros)))
            .map(|at| self.with(at))
            .ok_or_else(|| invalid("date value out of range"))
    }

    /// pendulum's `start_of(unit)` and `end_of(unit)`: `second` .. `year`, weeks from
    /// Monday.
    fn span(self, unit: &str, end: bool) -> Result<Value, Error> {
        let at = self.at;
        let day = at.date_naive();
        let start = match unit {
            "second" => at.with_nanosecond(0),
            "minute" => at.with_nanosecond(0).and_then(|t| t.with_second(0)),
            "hour" => at
                .with_nanosecond(0)
                .and_then(|t| t.with_second(0))
                .and_then(|t| t.with_minute(0)),
            "day" => Some(day.and_time(Default::default()).and_utc()),
            "week" => {
                let back = i64::from(day.weekday().num_days_from_monday());
                day.checked_sub_signed(chrono::TimeDelta::days(back))
                    .map(|monday| monday.and_time(Default::default()).and_utc())
            }
            "month" => day
                .with_day(1)
                .map(|first| first.and_time(Default::default()).and_utc()),
            "year" => NaiveDate::from_ymd_opt(day.year(), 1, 1)
                .map(|first| first.and_time(Default::default()).and_utc()),
            _ => {
                return Err(invalid(format!(
                    "{} is not a valid unit for start_of/end_of",
                    crate::py::repr_str(unit)
                )));
            }
        };
        let start = start.ok_or_else(|| invalid("date value out of range"))?;
        if !end {
            return Ok(self.with(start));
        }
        let next = match unit {
            "second" => start.checked_add_signed(chrono::TimeDelta::seconds(1)),
            "minute" => start.checked_add_signed(chrono::TimeDelta::minutes(1)),
            "hour" => start.checked_add_signed(chrono::TimeDelta::hours(1)),
            "day" => start.checked_add_signed(chrono::TimeDelta::days(1)),
            "week" => start.checked_add_signed(chrono::TimeDelta::weeks(1)),
            "month" => start.checked_add_months(chrono::Months::new(1)),
            _ => start.checked_add_months(chrono::Months::new(12)),
        };
        next.and_then(|next| next.checked_sub_signed(chrono::TimeDelta::microseconds(1)))
            .map(|last| self.with(last))
            .ok_or_else(|| invalid("date value out of range"))
    }

    /// Python's `replace(year=.., month=.., day=.., hour=.., minute=.., second=..,
    /// microsecond=..)`.
    fn replace(self, args: &[Value]) -> Result<Value, Error> {
        let (kwargs,): (Kwargs,) = from_args(args)?;
        let at = self.at;
        let get = |name: &str, now: u32| -> Result<u32, Error> {
            Ok(kwargs.get::<Option<u32>>(name)?.unwrap_or(now))
        };
        let date = NaiveDate::from_ymd_opt(
            kwargs.get::<Option<i32>>("year")?.unwrap_or(at.year()),
            get("month", at.month())?,
            get("day", at.day())?,
        );
        let time = chrono::NaiveTime::from_hms_micro_opt(
            get("hour", at.hour())?,
            get("minute", at.minute())?,
            get("second", at.second())?,
            get("microsecond", at.nanosecond() / 1_000)?,
        );
        kwargs.assert_all_used()?;
        let at = date
            .zip(time)
            .map(|(date, time)| date.and_time(time).and_utc())
            .ok_or_else(|| invalid("day is out of range for month"))?;
        Ok(self.with(at))
    }
}

impl Object for PyDateTime {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let date = self.at;
        let field = match key.as_str()? {
            "year" => date.year() as u32,
            "month" => date.month(),
            "day" => date.day(),
            "hour" => date.hour(),
            "minute" => date.minute(),
            "second" => date.second(),
            "microsecond" => date.nanosecond() / 1_000,
            // pendulum's
            "day_of_week" => date.weekday().num_days_from_monday(),
            "day_of_year" => date.ordinal(),
            "int_timestamp" => return Some(Value::from(date.timestamp())),
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
                if self.naive {
                    // A naive datetime has no offset: Python prints %z and %Z as nothing.
                    let format = format.replace("%z", "").replace("%Z", "");
                    Ok(Value::from(strftime(&self.at.naive_utc(), &format)?))
                } else {
                    let mut out = String::new();
                    write!(out, "{}", self.at.format(format))
                        .map_err(|_| invalid(format!("bad date format {format:?}")))?;
                    Ok(Value::from(out))
                }
            }
            "isoformat" => {
                let (sep,): (Option<&str>,) = from_args(args)?;
                let sep = match sep.map(|sep| sep.chars().collect::<Vec<_>>()).as_deref() {
                    None => 'T',
                    Some(&[sep]) => sep,
                    Some(_) => return Err(invalid("isoformat() takes a one-character separator")),
                };
                if self.date_only {
                    return Ok(Value::from(self.at.format("%Y-%m-%d").to_string()));
                }
                Ok(Value::from(isoformat_of(self.at, sep, self.naive)))
            }
            "timestamp" => {
                from_args::<()>(args)?;
                Ok(Value::from(self.at.timestamp_micros() as f64 / 1e6))
            }
            "weekday" => {
                from_args::<()>(args)?;
                Ok(Value::from(self.at.weekday().num_days_from_monday()))
            }
            "isoweekday" => {
                from_args::<()>(args)?;
                Ok(Value::from(self.at.weekday().number_from_monday()))
            }
            "add" => self.shift(args, 1),
            "subtract" => self.shift(args, -1),
            "replace" => self.replace(args),
            "date" => {
                from_args::<()>(args)?;
                let day = self.at.date_naive().and_time(Default::default()).and_utc();
                Ok(Value::from_object(PyDateTime {
                    at: day,
                    naive: true,
                    date_only: true,
                }))
            }
            "start_of" | "end_of" => {
                let (unit,): (&str,) = from_args(args)?;
                self.span(unit, method == "end_of")
            }
            "format" => {
                let (format,): (&str,) = from_args(args)?;
                Ok(Value::from(pendulum_format(self.at, format, self.naive)))
            }
            // Without a time zone database only UTC can be named; Airflow's dates are UTC.
            "in_timezone" | "in_tz" => {
                let (zone,): (&str,) = from_args(args)?;
                if !matches!(zone, "UTC" | "utc" | "Etc/UTC" | "GMT") {
                    return Err(invalid(format!(
                        "{method}({}) is not supported: updraft knows only UTC",
                        crate::py::repr_str(zone)
                    )));
                }
                Ok(Value::from_object(PyDateTime {
                    naive: false,
                    ..**self
                }))
            }
            _ => Err(Error::new(
                ErrorKind::UnknownMethod,
                format!("datetime has no method named {method}"),
            )),
        }
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.date_only {
            return write!(f, "{}", self.at.format("%Y-%m-%d"));
        }
        f.write_str(&isoformat_of(self.at, ' ', self.naive))
    }
}

/// pendulum's `format()` tokens, longest first; text in `[brackets]` is kept as is.
const PENDULUM_TOKENS: &[(&str, &str)] = &[
    ("YYYY", "%Y"),
    ("MMMM", "%B"),
    ("dddd", "%A"),
    ("MMM", "%b"),
    ("ddd", "%a"),
    ("DDDD", "%j"),
    ("YY", "%y"),
    ("MM", "%m"),
    ("DD", "%d"),
    ("HH", "%H"),
    ("hh", "%I"),
    ("mm", "%M"),
    ("ss", "%S"),
    ("ZZ", "%z"),
    ("Z", "%:z"),
    ("A", "%p"),
    ("M", "%-m"),
    ("D", "%-d"),
    ("H", "%-H"),
    ("h", "%-I"),
    ("m", "%-M"),
    ("s", "%-S"),
    ("X", "%s"),
];

/// pendulum's `DateTime.format(fmt)` for its common tokens, by translation to strftime.
fn pendulum_format(at: DateTime<Utc>, format: &str, naive: bool) -> String {
    let mut strftime = String::new();
    let mut rest = format;
    while let Some(c) = rest.chars().next() {
        if c == '['
            && let Some(close) = rest.find(']')
        {
            strftime.push_str(&rest[1..close].replace('%', "%%"));
            rest = &rest[close + 1..];
            continue;
        }
        match PENDULUM_TOKENS
            .iter()
            .find(|(token, _)| rest.starts_with(token))
        {
            Some((token, directive)) => {
                let zone = directive.contains('z');
                if !(zone && naive) {
                    strftime.push_str(directive);
                }
                rest = &rest[token.len()..];
            }
            None => {
                if c == '%' {
                    strftime.push('%');
                }
                strftime.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
    }
    let mut out = String::new();
    // Every directive above is one chrono knows, so this cannot fail; keep the text
    // rather than panic if it ever did.
    if write!(out, "{}", at.format(&strftime)).is_err() {
        return format.to_string();
    }
    out
}

/// `macros.datetime`: Python's `datetime.datetime` class. Calling it and its
/// constructors make naive datetimes, as in Python.
#[derive(Debug)]
struct DateTimeClass {
    clock: Clock,
}

impl Object for DateTimeClass {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }

    fn call(self: &Arc<Self>, _state: &State<'_, '_>, args: &[Value]) -> Result<Value, Error> {
        let (positional, kwargs): (&[Value], Kwargs) = from_args(args)?;
        const NAMES: [&str; 7] = [
            "year",
            "month",
            "day",
            "hour",
            "minute",
            "second",
            "microsecond",
        ];
        if positional.len() > NAMES.len() {
            return Err(Error::from(ErrorKind::TooManyArguments));
        }
        let mut parts = [None; 7];
        for (at, name) in NAMES.iter().enumerate() {
            let given = positional
                .get(at)
                .map(|value| i64::try_from(value.clone()))
                .transpose()?;
            parts[at] = either(given, &kwargs, name)?;
        }
        let [year, month, day, hour, minute, second, micro] = parts;
        // Out-of-range values become ones chrono refuses below.
        let small = |value: Option<i64>| value.map(|v| u32::try_from(v).unwrap_or(u32::MAX));
        let year = year.map(|y| i32::try_from(y).unwrap_or(i32::MAX));
        let (month, day) = (small(month), small(day));
        let time = chrono::NaiveTime::from_hms_micro_opt(
            small(hour).unwrap_or(0),
            small(minute).unwrap_or(0),
            small(second).unwrap_or(0),
            small(micro).unwrap_or(0),
        );
        kwargs.assert_all_used()?;
        let (Some(year), Some(month), Some(day)) = (year, month, day) else {
            return Err(Error::new(
                ErrorKind::MissingArgument,
                "datetime() needs year, month and day",
            ));
        };
        NaiveDate::from_ymd_opt(year, month, day)
            .zip(time)
            .map(|(date, time)| naive_datetime(date.and_time(time)))
            .ok_or_else(|| invalid("date or time value out of range"))
    }

    fn call_method(
        self: &Arc<Self>,
        _state: &State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, Error> {
        match method {
            // Python's naive `now()` is the machine's local time.
            "now" | "today" => {
                from_args::<()>(args)?;
                let now = self.clock.now().with_timezone(&chrono::Local);
                Ok(naive_datetime(now.naive_local()))
            }
            "utcnow" => {
                from_args::<()>(args)?;
                Ok(naive_datetime(self.clock.now().naive_utc()))
            }
            "strptime" => {
                let (text, format): (&str, &str) = from_args(args)?;
                Ok(naive_datetime(strptime(text, format)?))
            }
            "fromisoformat" => {
                let (text,): (&str,) = from_args(args)?;
                fromisoformat(text)
            }
            _ => Err(Error::new(
                ErrorKind::UnknownMethod,
                format!("type object 'datetime.datetime' has no attribute '{method}'"),
            )),
        }
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<class 'datetime.datetime'>")
    }
}

/// Python's `datetime.fromisoformat`: a date, or a date and time with an optional offset
/// (an aware result is kept in UTC).
fn fromisoformat(text: &str) -> Result<Value, Error> {
    if let Ok(aware) = DateTime::parse_from_rfc3339(&text.replacen(' ', "T", 1)) {
        return Ok(datetime(Some(aware.with_timezone(&Utc))));
    }
    for format in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(text, format) {
            return Ok(naive_datetime(naive));
        }
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map(|date| naive_datetime(date.and_time(Default::default())))
        .map_err(|_| {
            invalid(format!(
                "Invalid isoformat string: {}",
                crate::py::repr_str(text)
            ))
        })
}

/// `macros.timedelta`: Python's `timedelta`, kept in microseconds.
#[derive(Debug)]
struct PyTimeDelta(i64);

/// `timedelta(days=0, seconds=0, microseconds=0, milliseconds=0, minutes=0, hours=0,
/// weeks=0)`, by position or name, whole or fractional.
fn timedelta(positional: Rest<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    const UNITS: [(&str, f64); 7] = [
        ("days", 86_400e6),
        ("seconds", 1e6),
        ("microseconds", 1.0),
        ("milliseconds", 1e3),
        ("minutes", 60e6),
        ("hours", 3_600e6),
        ("weeks", 604_800e6),
    ];
    if positional.len() > UNITS.len() {
        return Err(Error::from(ErrorKind::TooManyArguments));
    }
    let mut micros = 0.0;
    for (at, (name, unit)) in UNITS.iter().enumerate() {
        let amount: Option<f64> = either(
            positional
                .get(at)
                .map(|v| f64::try_from(v.clone()))
                .transpose()?,
            &kwargs,
            name,
        )?;
        micros += amount.unwrap_or(0.0) * unit;
    }
    kwargs.assert_all_used()?;
    // About 292,000 years either way, past Python's own limit of 999,999,999 days.
    if !micros.is_finite() || micros.abs() >= i64::MAX as f64 {
        return Err(invalid("timedelta out of range"));
    }
    Ok(Value::from_object(PyTimeDelta(micros.round() as i64)))
}

impl PyTimeDelta {
    /// Python's normalised parts: days (any sign), seconds and microseconds (never
    /// negative).
    fn parts(&self) -> (i64, i64, i64) {
        let days = self.0.div_euclid(86_400_000_000);
        let rest = self.0.rem_euclid(86_400_000_000);
        (days, rest / 1_000_000, rest % 1_000_000)
    }
}

impl Object for PyTimeDelta {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let (days, seconds, micros) = self.parts();
        Some(Value::from(match key.as_str()? {
            "days" => days,
            "seconds" => seconds,
            "microseconds" => micros,
            _ => return None,
        }))
    }

    fn call_method(
        self: &Arc<Self>,
        _state: &State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, Error> {
        match method {
            "total_seconds" => {
                from_args::<()>(args)?;
                Ok(Value::from(self.0 as f64 / 1e6))
            }
            _ => Err(Error::new(
                ErrorKind::UnknownMethod,
                format!("timedelta has no method named {method}"),
            )),
        }
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (days, seconds, micros) = self.parts();
        if days != 0 {
            let plural = if days.abs() == 1 { "" } else { "s" };
            write!(f, "{days} day{plural}, ")?;
        }
        write!(
            f,
            "{}:{:02}:{:02}",
            seconds / 3600,
            seconds / 60 % 60,
            seconds % 60
        )?;
        if micros != 0 {
            write!(f, ".{micros:06}")?;
        }
        Ok(())
    }
}

/// Python's `strptime`: chrono parses the same directives; a missing time is midnight.
fn strptime(text: &str, format: &str) -> Result<NaiveDateTime, Error> {
    NaiveDateTime::parse_from_str(text, format)
        .or_else(|_| {
            NaiveDate::parse_from_str(text, format).map(|date| date.and_time(Default::default()))
        })
        .map_err(|_| no_match(text, format))
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
    let parsed = strptime(&python_str(&ds), input_format)?;
    Ok(Value::from(strftime(&parsed, output_format)?))
}

/// Python's `strptime` message.
fn no_match(ds: &str, format: &str) -> Error {
    invalid(format!(
        "time data {} does not match format {}",
        crate::py::repr_str(ds),
        crate::py::repr_str(format)
    ))
}

// ---------------------------------------------------------------------------------------
// JSON as Python writes it

/// Jinja2's `tojson` filter: `json.dumps(value, sort_keys=True)` with `<`, `>`, `&` and
/// `'` escaped, as Jinja2's `htmlsafe_json_dumps` does (which also keeps it safe inside
/// single quotes in a shell command).
fn tojson(value: Value, indent: Option<usize>) -> Result<Value, Error> {
    let json = to_json(&value)?;
    Ok(Value::from(python_json(&json, true, indent, true)))
}

/// `macros.json.dumps(obj, indent=None, sort_keys=False)`.
fn json_dumps(value: Value, kwargs: Kwargs) -> Result<Value, Error> {
    let indent: Option<usize> = kwargs.get("indent")?;
    let sort: Option<bool> = kwargs.get("sort_keys")?;
    kwargs.assert_all_used()?;
    let json = to_json(&value)?;
    Ok(Value::from(python_json(
        &json,
        sort.unwrap_or(false),
        indent,
        false,
    )))
}

/// `macros.json.loads(text)`.
fn json_loads(text: &str) -> Result<Value, Error> {
    serde_json::from_str::<serde_json::Value>(text)
        .map(|json| Value::from_serialize(&json))
        .map_err(|err| invalid(format!("invalid JSON: {err}")))
}

fn to_json(value: &Value) -> Result<serde_json::Value, Error> {
    serde_json::to_value(value).map_err(|err| invalid(format!("cannot be written as JSON: {err}")))
}

/// Python's `json.dumps` with its default `ensure_ascii=True` and separators.
fn python_json(value: &serde_json::Value, sort: bool, indent: Option<usize>, html: bool) -> String {
    let mut out = String::new();
    write_json(&mut out, value, sort, indent, html, 0);
    out
}

fn write_json(
    out: &mut String,
    value: &serde_json::Value,
    sort: bool,
    indent: Option<usize>,
    html: bool,
    depth: usize,
) {
    use serde_json::Value as J;
    let newline = |out: &mut String, depth: usize| {
        if let Some(width) = indent {
            out.push('\n');
            out.push_str(&" ".repeat(width * depth));
        }
    };
    let separator = if indent.is_some() { "," } else { ", " };
    match value {
        J::String(text) => write_json_str(out, text, html),
        J::Array(items) if !items.is_empty() => {
            out.push('[');
            for (at, item) in items.iter().enumerate() {
                if at > 0 {
                    out.push_str(separator);
                }
                newline(out, depth + 1);
                write_json(out, item, sort, indent, html, depth + 1);
            }
            newline(out, depth);
            out.push(']');
        }
        J::Object(map) if !map.is_empty() => {
            let mut entries: Vec<_> = map.iter().collect();
            if sort {
                entries.sort_by(|a, b| a.0.cmp(b.0));
            }
            out.push('{');
            for (at, (key, item)) in entries.into_iter().enumerate() {
                if at > 0 {
                    out.push_str(separator);
                }
                newline(out, depth + 1);
                write_json_str(out, key, html);
                out.push_str(": ");
                write_json(out, item, sort, indent, html, depth + 1);
            }
            newline(out, depth);
            out.push('}');
        }
        J::Array(_) => out.push_str("[]"),
        J::Object(_) => out.push_str("{}"),
        other => out.push_str(&other.to_string()),
    }
}

fn write_json_str(out: &mut String, text: &str, html: bool) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\'' if html => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 || !c.is_ascii() => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

// ---------------------------------------------------------------------------------------
// Python's methods

/// Python's methods on strings, dicts and lists, which Airflow's templates call because
/// there they are Python objects: minijinja-contrib's `pycompat` first, then the few it
/// lacks. An unknown method names the type as Python would.
fn python_method(
    state: &State<'_, '_>,
    value: &Value,
    method: &str,
    args: &[Value],
) -> Result<Value, Error> {
    if let Some(s) = value.as_str() {
        check_string_growth(s, method, args)?;
    }
    match minijinja_contrib::pycompat::unknown_method_callback(state, value, method, args) {
        Err(err) if err.kind() == ErrorKind::UnknownMethod => {}
        done => return done,
    }
    if let Some(found) = more_python_methods(value, method, args)? {
        return Ok(found);
    }
    Err(Error::new(
        ErrorKind::UnknownMethod,
        format!("{} has no method named {method}", python_type(value)),
    ))
}

/// Refuses, before it is built, a string a method would make past the render's build
/// budget (`BUILD_BUDGET`): the methods whose result can be much longer than the string
/// and their arguments (`'x'.ljust(10**12)`, `s.replace('x', s)`, `s.join(big)`).
fn check_string_growth(s: &str, method: &str, args: &[Value]) -> Result<(), Error> {
    let grows_to = match method {
        "replace" => {
            let (old, new, count): (&str, &str, Option<i64>) = from_args(args)?;
            match count.and_then(|c| usize::try_from(c).ok()) {
                Some(n) => s.len().saturating_add(n.saturating_mul(new.len())),
                None => minijinja::replaced_len(s, old, new),
            }
        }
        "join" => {
            let (values,): (&Value,) = from_args(args)?;
            let mut total = 0usize;
            for (i, v) in values.try_iter()?.enumerate() {
                let len = v.as_str().map_or_else(|| v.to_string().len(), str::len);
                total = total
                    .saturating_add(len)
                    .saturating_add(if i > 0 { s.len() } else { 0 });
                if !minijinja::build_budget_allows(total) {
                    break;
                }
            }
            total
        }
        "ljust" | "rjust" | "center" | "zfill" => {
            let width = args.first().and_then(Value::as_usize).unwrap_or(0);
            // A fill character takes up to 4 bytes.
            width.saturating_mul(4).max(s.len())
        }
        _ => return Ok(()),
    };
    if minijinja::build_budget_allows(grows_to) {
        Ok(())
    } else {
        Err(invalid(format!(
            "str.{method} would build a string of {grows_to} bytes: more than the template's budget of {BUILD_BUDGET} bytes of values"
        )))
    }
}

/// What `pycompat` lacks: `str.rsplit`, `zfill`, `ljust`, `rjust`, `center`,
/// `removeprefix`, `removesuffix`, `swapcase`, `casefold`, `partition`; `dict.copy`;
/// `list.index`, `list.copy`.
fn more_python_methods(
    value: &Value,
    method: &str,
    args: &[Value],
) -> Result<Option<Value>, Error> {
    use minijinja::value::ValueKind;
    if let Some(s) = value.as_str() {
        let pad = |args: &[Value]| -> Result<(usize, char), Error> {
            let (width, fill): (usize, Option<&str>) = from_args(args)?;
            let mut chars = fill.unwrap_or(" ").chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => Ok((width, c)),
                _ => Err(invalid(
                    "the fill character must be exactly one character long",
                )),
            }
        };
        let len = s.chars().count();
        let fill = |n: usize, c: char| c.to_string().repeat(n);
        return Ok(Some(match method {
            "rsplit" => {
                let (sep, maxsplit): (Option<&str>, Option<i64>) = from_args(args)?;
                let max = maxsplit.filter(|&n| n >= 0).map(|n| n as usize);
                let mut parts: Vec<String> = match sep {
                    Some("") => return Err(invalid("empty separator")),
                    Some(sep) => match max {
                        Some(n) => s.rsplitn(n + 1, sep).map(str::to_string).collect(),
                        None => s.rsplit(sep).map(str::to_string).collect(),
                    },
                    None => {
                        // Python keeps the untouched head's leading spaces.
                        let mut tail = Vec::new();
                        let mut rest = s.trim_end();
                        while !rest.trim_start().is_empty() {
                            let cut = match rest.rfind(char::is_whitespace) {
                                Some(cut) if max.is_none_or(|n| tail.len() < n) => cut,
                                _ => {
                                    let head = if max.is_some() {
                                        rest
                                    } else {
                                        rest.trim_start()
                                    };
                                    tail.push(head.to_string());
                                    break;
                                }
                            };
                            tail.push(rest[cut..].trim_start().to_string());
                            rest = rest[..cut].trim_end();
                        }
                        tail
                    }
                };
                parts.reverse();
                Value::from(parts)
            }
            "zfill" => {
                let (width,): (usize,) = from_args(args)?;
                let (sign, digits) = match s.strip_prefix(['+', '-']) {
                    Some(rest) => (&s[..1], rest),
                    None => ("", s),
                };
                Value::from(format!(
                    "{sign}{}{digits}",
                    fill(width.saturating_sub(len), '0')
                ))
            }
            "ljust" => {
                let (width, c) = pad(args)?;
                Value::from(format!("{s}{}", fill(width.saturating_sub(len), c)))
            }
            "rjust" => {
                let (width, c) = pad(args)?;
                Value::from(format!("{}{s}", fill(width.saturating_sub(len), c)))
            }
            "center" => {
                let (width, c) = pad(args)?;
                let total = width.saturating_sub(len);
                // CPython puts the odd pad character on the left when the width is odd.
                let left = total / 2 + (total & width & 1);
                Value::from(format!("{}{s}{}", fill(left, c), fill(total - left, c)))
            }
            "removeprefix" => {
                let (prefix,): (&str,) = from_args(args)?;
                Value::from(s.strip_prefix(prefix).unwrap_or(s))
            }
            "removesuffix" => {
                let (suffix,): (&str,) = from_args(args)?;
                Value::from(s.strip_suffix(suffix).unwrap_or(s))
            }
            "swapcase" => {
                from_args::<()>(args)?;
                Value::from(
                    s.chars()
                        .flat_map(|c| -> Vec<char> {
                            if c.is_uppercase() {
                                c.to_lowercase().collect()
                            } else {
                                c.to_uppercase().collect()
                            }
                        })
                        .collect::<String>(),
                )
            }
            "casefold" => {
                from_args::<()>(args)?;
                Value::from(s.to_lowercase())
            }
            "partition" | "rpartition" => {
                let (sep,): (&str,) = from_args(args)?;
                if sep.is_empty() {
                    return Err(invalid("empty separator"));
                }
                let found = if method == "partition" {
                    s.split_once(sep)
                } else {
                    s.rsplit_once(sep)
                };
                let parts = match found {
                    Some((a, b)) => [a, sep, b],
                    None if method == "partition" => [s, "", ""],
                    None => ["", "", s],
                };
                Value::from(parts.map(str::to_string).to_vec())
            }
            _ => return Ok(None),
        }));
    }
    match (value.kind(), method) {
        (ValueKind::Map, "copy") => {
            from_args::<()>(args)?;
            Ok(Some(value.clone()))
        }
        (ValueKind::Seq, "copy") => {
            from_args::<()>(args)?;
            Ok(Some(value.clone()))
        }
        (ValueKind::Seq, "index") => {
            let (wanted,): (Value,) = from_args(args)?;
            match value.try_iter()?.position(|item| item == wanted) {
                Some(at) => Ok(Some(Value::from(at))),
                None => Err(invalid(format!("{} is not in list", python_repr(&wanted)))),
            }
        }
        _ => Ok(None),
    }
}

/// The Python type name of a value, for "has no method" errors.
fn python_type(value: &Value) -> &'static str {
    use minijinja::value::ValueKind;
    if value.downcast_object_ref::<PyDateTime>().is_some() {
        return "datetime";
    }
    if value.downcast_object_ref::<TaskInstance>().is_some() {
        return "task instance";
    }
    if value.downcast_object_ref::<Variables>().is_some() {
        return "var";
    }
    if value.downcast_object_ref::<Connections>().is_some() {
        return "conn";
    }
    match value.kind() {
        ValueKind::String => "str",
        ValueKind::Map => "dict",
        ValueKind::Seq => "list",
        ValueKind::Number if value.is_integer() => "int",
        ValueKind::Number => "float",
        ValueKind::Bool => "bool",
        ValueKind::None | ValueKind::Undefined => "NoneType",
        _ => "object",
    }
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
        ValueKind::String => crate::py::repr_str(value.as_str().unwrap_or_default()),
        // `dict.items()` and friends come as iterables; Python prints them in a
        // `dict_items(...)` wrapper, which no template wants: a list is closer.
        ValueKind::Seq | ValueKind::Iterable => {
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
        (ErrorKind::OutOfFuel, _) => format!(
            "the template exceeded its step budget of {STEP_BUDGET} steps (a loop that runs too long?)"
        ),
        // Our own errors (a missing variable, a failed lookup) say all there is to say.
        (ErrorKind::InvalidOperation, Some(detail)) => match operator_hint(detail) {
            Some(hint) => format!("{detail}: {hint}"),
            None => detail.to_string(),
        },
        (kind, Some(detail)) => format!("{kind}: {detail}"),
        (kind, None) => kind.to_string(),
    };
    match err.line() {
        Some(line) => format!("{what} (line {line})"),
        None => what,
    }
}

/// What to write instead, for Python operators the engine cannot apply: it has no
/// operator overloading, so a datetime and a timedelta do not add up, and `%` does not
/// format strings.
fn operator_hint(detail: &str) -> Option<&'static str> {
    let operands = detail.strip_prefix("tried to use ")?;
    if operands.starts_with(['+', '-']) && operands.contains("plain object") {
        return Some(
            "datetime arithmetic is not supported; write logical_date.subtract(days=1) or \
             .add(hours=2) (pendulum's methods, which Airflow's dates have), or macros.ds_add(ds, -1)",
        );
    }
    if operands.starts_with('%') && operands.contains("on unsupported types string") {
        return Some(
            "%-formatting is not supported; write '{}-{}'.format(a, b) or '%s-%s' | format(a, b)",
        );
    }
    None
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
                    .spawn(|| render_here(text, &ctx, asker, Arc::default()))
                    .join()
                    .unwrap()
            });
            assert_eq!(render(text, &ctx, &Fake::default()), slow, "{text:?}");
        }
    }

    /// A scheduled run of `etl.load`, second try.
    fn scheduled() -> Context {
        Context {
            extra: serde_json::Map::new(),
            task_attrs: serde_json::Map::new(),
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
            clock: Clock::System,
        }
    }

    /// A manual run triggered without a logical date, as Airflow 3 allows.
    fn manual() -> Context {
        Context {
            extra: serde_json::Map::new(),
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

    /// `task.<name>` reads the operator's arguments Airflow's task object has (a Bash
    /// task's command, env, retries; a Python task's op_args), not the others.
    #[test]
    fn task_reads_the_operators_arguments() {
        let bash = Context {
            task_attrs: task_attrs(&json!({
                "operator": "airflow.providers.standard.operators.bash.BashOperator",
                "bash_command": "echo 1", "env": null, "append_env": false, "cwd": null,
                "retries": 2, "owner": "x", "callbacks": [],
            })),
            ..scheduled()
        };
        check_in(
            &bash,
            "{{ task.task_id }} {{ task.bash_command }} {{ task.env }} {{ task.append_env }} {{ task.retries }}",
            "load echo 1 None False 2",
        );
        let python = Context {
            task_attrs: task_attrs(&json!({
                "operator": "airflow.providers.standard.operators.python.PythonOperator",
                "bash_command": null, "retries": 0,
                "python": {"op_args": [1, "a"], "op_kwargs": {}, "callable": "lib.f"},
            })),
            ..scheduled()
        };
        check_in(&python, "{{ task.op_args }}", "[1, 'a']");
        assert!(render("{{ task.bash_command.x }}", &python, &Fake::default()).is_err());
        assert!(render("{{ task.callable.x }}", &python, &Fake::default()).is_err());
    }

    /// `macros.datetime.utcnow()` and `now()` read the context's clock, not the system's.
    #[test]
    fn now_reads_the_context_clock() {
        let at = utc("2021-06-01T12:00:00Z");
        let ctx = Context {
            extra: serde_json::Map::new(),
            clock: Clock::fake(at),
            ..scheduled()
        };
        check_in(
            &ctx,
            "{{ macros.datetime.utcnow() }}",
            "2021-06-01 12:00:00",
        );
        let local = at.with_timezone(&chrono::Local).naive_local();
        let expect = local.format("%Y-%m-%d %H:%M:%S").to_string();
        check_in(&ctx, "{{ macros.datetime.now() }}", &expect);
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
            extra: serde_json::Map::new(),
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

    /// Ten billion loop turns, as in issue 12: without a step budget this renders for hours.
    const FOREVER: &str =
        "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}";

    #[test]
    fn renders_are_bounded_in_steps_output_and_time() {
        check_err(
            &format!("echo start\n{FOREVER}"),
            "the template exceeded its step budget of 10000000 steps (a loop that runs too long?) (line 2)",
        );
        check_err(
            "{% for a in range(100000) %}{% for b in range(100000) %}{{ 'xxxxxxxxxx' }}{% endfor %}{% endfor %}",
            "the rendered template is larger than the output cap of 1048576 bytes",
        );
        // Just under the cap, and a long loop within the budget, still render.
        let big = render(
            "{% for a in range(1024) %}{{ 'x' * 1023 }}\n{% endfor %}",
            &scheduled(),
            &Never,
        );
        assert_eq!(big.map(|text| text.len()), Ok(MAX_OUTPUT));
        let long = render(
            "{% for i in range(100000) %}{% if i % 2 %}{{ i }}{% endif %}{% endfor %}",
            &scheduled(),
            &Never,
        );
        assert!(long.is_ok(), "{long:?}");

        let timed_out = render_within(
            FOREVER,
            &scheduled(),
            &Never,
            Some(Instant::now()),
            &mut || ControlFlow::Continue(()),
        );
        assert_eq!(timed_out, Err(RenderError::Timeout));
        let abandoned = render_within(FOREVER, &scheduled(), &Never, None, &mut || {
            ControlFlow::Break(())
        });
        assert_eq!(abandoned, Err(RenderError::Abandoned));
    }

    #[test]
    fn lookups_are_answered_while_a_deadline_runs() {
        let far = Some(Instant::now() + Duration::from_secs(3600));
        let got = render_within(
            "{{ var.value.greeting }} {{ conn.pg.host }}",
            &scheduled(),
            &Fake::default(),
            far,
            &mut || ControlFlow::Continue(()),
        );
        assert_eq!(got.as_deref(), Ok("hello db.local"));
    }

    /// Airflow's template idioms, each with what Airflow renders: every expected string
    /// was produced by Jinja2 3.1.6 over Python objects shaped as Airflow 3's context
    /// (pendulum datetimes, dicts for `conf` and `params`; see the notes of issue 12).
    const AIRFLOW_IDIOMS: &[(&str, &str)] = &[
        (r#"{{ dag_run.conf.get("x", "none") }}"#, r#"from conf"#),
        (r#"{{ dag_run.conf.get("missing", "none") }}"#, r#"none"#),
        (r#"{{ dag_run.conf.get('missing') }}"#, r#"None"#),
        (
            r#"{% for k, v in params.items() %}{{ k }}={{ v }} {% endfor %}"#,
            r#"name=world flag=True nested={'n': [1, 2]} "#,
        ),
        (
            r#"{{ params.keys() | list }}"#,
            r#"['name', 'flag', 'nested']"#,
        ),
        (r#"{{ params.values() | list | length }}"#, r#"3"#),
        (
            r#"{% for key in dag_run.conf.keys() %}{{ key }},{% endfor %}"#,
            r#"x,tables,env,limit,opts,"#,
        ),
        (r#"{{ ds_nodash }}"#, r#"20240102"#),
        (r#"{{ macros.ds_add(ds, 7) }}"#, r#"2024-01-09"#),
        (
            r#"{{ macros.ds_add(ds, -1) | replace('-', '') }}"#,
            r#"20240101"#,
        ),
        (
            r#"{{ macros.ds_format(ds, '%Y-%m-%d', '%Y/%m/%d') }}"#,
            r#"2024/01/02"#,
        ),
        (r#"{{ var.value.get('k', 'd') }}"#, r#"d"#),
        (r#"{{ var.value.get('greeting', 'd') }}"#, r#"hello"#),
        (r#"{{ var.json.cfg.get('bucket') }}"#, r#"b1"#),
        (r#"{{ params.name.upper() }}"#, r#"WORLD"#),
        (
            r#"{{ params.name.title() }} {{ params.name.capitalize() }}"#,
            r#"World World"#,
        ),
        (r#"{{ params.name.endswith('ld') }}"#, r#"True"#),
        (
            r#"{{ dag_run.conf.tables.split(',') }}"#,
            r#"['orders', 'customers', ' items']"#,
        ),
        (
            r#"{% for t in dag_run.conf.tables.split(',') %}{{ t.strip() }};{% endfor %}"#,
            r#"orders;customers;items;"#,
        ),
        (
            r#"{{ dag_run.conf.tables.split(',')[-1].strip() }}"#,
            r#"items"#,
        ),
        (r#"{{ 'a b  c'.split() }}"#, r#"['a', 'b', 'c']"#),
        (r#"{{ 'a,b,c'.split(',') | join(' ') }}"#, r#"a b c"#),
        (
            r#"{{ 'yes' if dag_run.conf.env.startswith('pr') else 'no' }}"#,
            r#"yes"#,
        ),
        (
            r#"{{ dag_run.conf.env.upper() }}_{{ ds_nodash }}"#,
            r#"PROD_20240102"#,
        ),
        (r#"{{ ds.replace('-', '') }}"#, r#"20240102"#),
        (
            r#"{{ run_id.replace(':', '_').replace('+', '_') }}"#,
            r#"scheduled__2024-01-02T03_04_05_00_00"#,
        ),
        (
            r#"{{ '  padded  '.strip() }}|{{ 'xxhixx'.strip('x') }}|{{ '  l'.lstrip() }}"#,
            r#"padded|hi|l"#,
        ),
        (
            r#"{{ 'Hello {}!'.format(params.name) }}"#,
            r#"Hello world!"#,
        ),
        (
            r#"{{ '{}-{}'.format(ds, dag.dag_id) }}"#,
            r#"2024-01-02-etl"#,
        ),
        (r#"{{ '{:03d}'.format(7) }}"#, r#"007"#),
        (r#"{{ '%s' | format(ds) }}"#, r#"2024-01-02"#),
        (
            r#"{{ '5'.zfill(3) }} {{ 'ab'.center(6, '*') }} {{ 'ab'.ljust(4, '.') }}|"#,
            r#"005 **ab** ab..|"#,
        ),
        (r#"{{ 'key=val'.partition('=')[2] }}"#, r#"val"#),
        (r#"{{ 'a/b/c'.rsplit('/', 1)[0] }}"#, r#"a/b"#),
        (
            r#"{{ 's3://bucket/key'.removeprefix('s3://') }}"#,
            r#"bucket/key"#,
        ),
        (
            r#"{{ dag_run.conf | tojson }}"#,
            r#"{"env": "prod", "limit": 10, "opts": {"full": true, "mode": "\u003cfast\u003e"}, "tables": "orders,customers, items", "x": "from conf"}"#,
        ),
        (r#"{{ params.nested | tojson }}"#, r#"{"n": [1, 2]}"#),
        (
            r#"{{ {'b': '<&>', 'a': "it's é"} | tojson }}"#,
            r#"{"a": "it\u0027s \u00e9", "b": "\u003c\u0026\u003e"}"#,
        ),
        (
            r#"{{ macros.json.dumps(dag_run.conf.opts) }}"#,
            r#"{"full": true, "mode": "<fast>"}"#,
        ),
        (
            r#"{{ macros.json.loads('{"a": [1, 2]}')['a'][1] }}"#,
            r#"2"#,
        ),
        (
            r#"{{ logical_date.strftime('%Y%m%d%H') }}"#,
            r#"2024010203"#,
        ),
        (
            r#"{{ logical_date.strftime('%Y-%m-%dT%H:%M:%S%z') }}"#,
            r#"2024-01-02T03:04:05+0000"#,
        ),
        (
            r#"{{ data_interval_start.strftime('%Y-%m-%d') }}"#,
            r#"2024-01-01"#,
        ),
        (
            r#"{{ logical_date.isoformat() }}"#,
            r#"2024-01-02T03:04:05+00:00"#,
        ),
        (
            r#"{{ logical_date.subtract(days=1).strftime('%Y-%m-%d') }}"#,
            r#"2024-01-01"#,
        ),
        (
            r#"{{ logical_date.add(months=1) }}"#,
            r#"2024-02-02 03:04:05+00:00"#,
        ),
        (
            r#"{{ logical_date.add(hours=25) }}"#,
            r#"2024-01-03 04:04:05+00:00"#,
        ),
        (
            r#"{{ logical_date.replace(day=1).strftime('%Y-%m-%d') }}"#,
            r#"2024-01-01"#,
        ),
        (
            r#"{{ logical_date.replace(day=1).subtract(days=1).strftime('%Y-%m') }}"#,
            r#"2023-12"#,
        ),
        (
            r#"{{ data_interval_end.weekday() }} {{ data_interval_end.isoweekday() }}"#,
            r#"1 2"#,
        ),
        (
            r#"{{ macros.datetime(2024, 3, 1) }}"#,
            r#"2024-03-01 00:00:00"#,
        ),
        (
            r#"{{ macros.datetime(2024, 3, 1, 12, 30).isoformat() }}"#,
            r#"2024-03-01T12:30:00"#,
        ),
        (
            r#"{{ macros.datetime.strptime(ds, '%Y-%m-%d').strftime('%d %b %Y') }}"#,
            r#"02 Jan 2024"#,
        ),
        (
            r#"{{ macros.datetime.fromisoformat('2024-05-06T07:08:09').isoformat() }}"#,
            r#"2024-05-06T07:08:09"#,
        ),
        (
            r#"{{ macros.timedelta(days=1, hours=2) }}"#,
            r#"1 day, 2:00:00"#,
        ),
        (
            r#"{{ macros.timedelta(hours=36).total_seconds() }}"#,
            r#"129600.0"#,
        ),
        (r#"{{ macros.timedelta(days=-1) }}"#, r#"-1 day, 0:00:00"#),
        (r#"{{ macros.timedelta(minutes=90).seconds }}"#, r#"5400"#),
        (
            r#"{{ ti.xcom_pull(task_ids='push').upper() }}"#,
            r#"PUSHED"#,
        ),
        (r#"{{ params.get('name') }}"#, r#"world"#),
        (r#"{{ dag_run.conf.get('limit', 100) + 1 }}"#, r#"11"#),
        (
            r#"{% if dag_run.conf.get('full_refresh') %}full{% else %}incremental{% endif %}"#,
            r#"incremental"#,
        ),
        (r#"{{ ds_nodash[:6] }}"#, r#"202401"#),
        (r#"{{ dag_run.conf.opts.items() | list | length }}"#, r#"2"#),
        (
            r#"{{ [3, 1, 3].count(3) }} {{ ['a', 'b'].index('b') }}"#,
            r#"2 1"#,
        ),
        (
            r#"{{ 'abc'.find('c') }} {{ 'a-b-c'.count('-') }}"#,
            r#"2 2"#,
        ),
        (r#"{{ '{:>8}'.format(params.name) }}"#, r#"   world"#),
        (r#"{{ task_instance_key_str }}"#, r#"etl__load__20240102"#),
        (
            r#"{{ '{name}-{ds}'.format(name=params.name, ds=ds) }}"#,
            r#"world-2024-01-02"#,
        ),
        (
            r#"{{ '{0}/{1}'.format(dag.dag_id, ds_nodash) }}"#,
            r#"etl/20240102"#,
        ),
        (r#"{{ dag_run.conf['x'] }}"#, r#"from conf"#),
        (r#"{{ dag_run.conf.missing | default('d') }}"#, r#"d"#),
        (r#"{{ dag_run.conf.get('list', []) | join(',') }}"#, r#""#),
        (
            r#"{{ ti.xcom_pull(task_ids='push') | tojson }}"#,
            r#""pushed""#,
        ),
        (
            r#"{{ params | tojson }}"#,
            r#"{"flag": true, "name": "world", "nested": {"n": [1, 2]}}"#,
        ),
        (
            r#"{{ macros.ds_format(ds, '%Y-%m-%d', '%A') }}"#,
            r#"Tuesday"#,
        ),
        (
            r#"{{ logical_date.strftime('%A %B') }}"#,
            r#"Tuesday January"#,
        ),
        (r#"{{ data_interval_end.int_timestamp }}"#, r#"1704153600"#),
        (r#"{{ logical_date.timestamp() | int }}"#, r#"1704164645"#),
        (r#"{{ logical_date.date() }}"#, r#"2024-01-02"#),
        (
            r#"{{ logical_date.date().strftime('%d.%m.%Y') }}"#,
            r#"02.01.2024"#,
        ),
        (
            r#"{{ logical_date.start_of('month') }}"#,
            r#"2024-01-01 00:00:00+00:00"#,
        ),
        (
            r#"{{ logical_date.end_of('day') }}"#,
            r#"2024-01-02 23:59:59.999999+00:00"#,
        ),
        (r#"{{ logical_date.day_of_week }}"#, r#"1"#),
        (
            r#"{{ logical_date.format('YYYY-MM-DD') }}"#,
            r#"2024-01-02"#,
        ),
        (r#"{{ macros.datetime.now().year > 2000 }}"#, r#"True"#),
        (r#"{{ params.flag | string | lower }}"#, r#"true"#),
        (r#"{{ params.nested.n | sum }}"#, r#"3"#),
        (
            r#"{{ dag_run.conf.get('nothing') or 'fallback' }}"#,
            r#"fallback"#,
        ),
        (r#"{{ 'x' in dag_run.conf }}"#, r#"True"#),
        (
            r#"{{ dag_run.conf.keys() | sort | join(',') }}"#,
            r#"env,limit,opts,tables,x"#,
        ),
        (r#"{{ run_id.split('__')[0] }}"#, r#"scheduled"#),
        (
            r#"{{ dag_run.conf.opts.get('mode', 'slow') }}"#,
            r#"<fast>"#,
        ),
        (r#"{{ macros.timedelta(days=1).days }}"#, r#"1"#),
        (r#"{{ dag_run.logical_date.strftime('%Y') }}"#, r#"2024"#),
        (r#"{{ var.json.get('cfg', {}).get('bucket') }}"#, r#"b1"#),
        (
            r#"{{ var.json.get('nope', {}).get('bucket', 'none') }}"#,
            r#"none"#,
        ),
        (
            r#"{{ dag_run.conf.tables.split(',') | map('trim') | join('|') }}"#,
            r#"orders|customers|items"#,
        ),
        (
            r#"{{ dag_run.conf.tables.upper().split(',')[0].lower() }}"#,
            r#"orders"#,
        ),
        (r#"{{ params.name | replace('o', '0') }}"#, r#"w0rld"#),
        (r#"{{ dag_run.conf.limit * 2 }}"#, r#"20"#),
        (
            r#"{{ dag_run.conf.limit // 3 }} {{ dag_run.conf.limit / 4 }}"#,
            r#"3 2.5"#,
        ),
        (
            r#"{{ (dag_run.conf.limit | string).rjust(4, '0') }}"#,
            r#"0010"#,
        ),
        (r#"{{ dag_run.conf.env | upper }}"#, r#"PROD"#),
        (r#"{{ logical_date.strftime('%s') }}"#, r#"1704164645"#),
        (
            r#"{{ logical_date.in_timezone('UTC') }}"#,
            r#"2024-01-02 03:04:05+00:00"#,
        ),
        (r#"{{ params.nested.n | list | first }}"#, r#"1"#),
        (r#"{{ 'a' if params.flag else 'b' }}"#, r#"a"#),
        (r#"{{ dag_run.conf.get('limit') | int + 5 }}"#, r#"15"#),
        (r#"{{ (ds_nodash | int) + 1 }}"#, r#"20240103"#),
        (r#"{{ dag_run.run_type }}"#, r#"scheduled"#),
        (
            r#"{{ logical_date.format('YYYY-MM-DD HH:mm:ss') }}"#,
            r#"2024-01-02 03:04:05"#,
        ),
        (
            r#"{{ logical_date.format('dddd, MMMM D, YYYY h:mm A') }}"#,
            r#"Tuesday, January 2, 2024 3:04 AM"#,
        ),
        (
            r#"{{ logical_date.format('[at] YYYYMMDD') }}"#,
            r#"at 20240102"#,
        ),
        (
            r#"{{ logical_date.format('YYYY-MM-DDTHH:mm:ssZ') }}"#,
            r#"2024-01-02T03:04:05+00:00"#,
        ),
        (
            r#"{{ logical_date.start_of('week') }}"#,
            r#"2024-01-01 00:00:00+00:00"#,
        ),
        (
            r#"{{ logical_date.end_of('month').strftime('%Y-%m-%d') }}"#,
            r#"2024-01-31"#,
        ),
        (
            r#"{{ logical_date.start_of('year').isoformat() }}"#,
            r#"2024-01-01T00:00:00+00:00"#,
        ),
        (r#"{{ logical_date.day_of_year }}"#, r#"2"#),
        (r#"{{ logical_date.date().isoformat() }}"#, r#"2024-01-02"#),
        (r#"{{ macros.datetime.utcnow().year > 2000 }}"#, r#"True"#),
        (
            r#"{{ '  a b'.rsplit(none, 1) }} {{ 'a b  c  '.rsplit(none, 1) }} {{ ' a  b c '.rsplit() }}"#,
            r#"['  a', 'b'] ['a b', 'c'] ['a', 'b', 'c']"#,
        ),
        (
            r#"{{ 'abc'.center(8, '*') }} {{ '-42'.zfill(5) }} {{ 'a.b.c'.rpartition('.')[0] }}"#,
            r#"**abc*** -0042 a.b"#,
        ),
    ];

    /// A run as the table's Python side has it: `conf` with values to work on.
    fn airflow_run() -> Context {
        Context {
            extra: serde_json::Map::new(),
            conf: json!({"x": "from conf", "tables": "orders,customers, items", "env": "prod",
                "limit": 10, "opts": {"full": true, "mode": "<fast>"}}),
            ..scheduled()
        }
    }

    #[test]
    fn airflow_idioms_render_as_in_airflow() {
        let ctx = airflow_run();
        let mut wrong = Vec::new();
        for (template, expect) in AIRFLOW_IDIOMS {
            let got = render(template, &ctx, &Fake::default());
            if got.as_deref() != Ok(*expect) {
                wrong.push(format!("{template}\n  want {expect:?}\n  got  {got:?}"));
            }
        }
        assert!(
            wrong.is_empty(),
            "{} of {}:\n{}",
            wrong.len(),
            AIRFLOW_IDIOMS.len(),
            wrong.join("\n")
        );
    }

    /// A template that builds an ever larger value fails its render with a message, long
    /// before memory runs out, whichever operator, filter or method builds it; the same
    /// idioms at a sane size still render.
    #[test]
    fn values_that_grow_without_bound_fail_the_render() {
        let doubling = |step: &str| {
            format!(
                "{{% set ns = namespace(s='x') %}}{{% for i in range(100) %}}{{% set ns.s = {step} %}}{{% endfor %}}{{{{ ns.s|length }}}}"
            )
        };
        let cases = [
            doubling("ns.s ~ ns.s"),
            doubling("ns.s + ns.s"),
            doubling("ns.s * 2"),
            doubling("[ns.s, ns.s]|join"),
            doubling("ns.s|replace('x', 'xx')"),
            doubling("ns.s.replace('x', 'xx')"),
            doubling("''.join([ns.s, ns.s])"),
            doubling("ns.s.ljust(ns.s|length * 2, 'y')"),
            doubling("ns.s|indent(ns.s|length, true)"),
            doubling("'%s%s'|format(ns.s, ns.s)"),
            doubling("'{}{}'.format(ns.s, ns.s)"),
            doubling("(ns.s ~ ns.s)|upper"),
            // Lists: lazy concatenations and repeats, and what materializes them.
            "{% set ns = namespace(l=[1]) %}{% for i in range(100) %}{% set ns.l = ns.l + ns.l %}{% endfor %}{{ ns.l|length }}".to_string(),
            "{% set ns = namespace(l=[1]) %}{% for i in range(100) %}{% set ns.l = ns.l * 2 %}{% endfor %}{{ ns.l|list|length }}".to_string(),
            // Many distinct large strings kept alive at once.
            "{% set ns = namespace(l=[], s='x' * 1000000) %}{% for i in range(1000) %}{% set ns.l = ns.l + [ns.s ~ i] %}{% endfor %}{{ ns.l|length }}".to_string(),
            "{{ 'x'.ljust(1000000000000) }}".to_string(),
            "{{ 'x' * 100000000 }}".to_string(),
        ];
        let ctx = scheduled();
        for template in &cases {
            let got = render(template, &ctx, &Fake::default());
            let err = got.expect_err(template);
            assert!(
                err.contains("bytes of values") && err.contains(&BUILD_BUDGET.to_string()),
                "{template}: {err}"
            );
        }
        // The same idioms at a sane size.
        check(
            "{% set ns = namespace(s='ab') %}{% for i in range(10) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s|length }} {{ ['a', 'b']|join('-') }} {{ 'a-b'.replace('-', '+') }} {{ 'x'.ljust(3, '.') }}",
            "2048 a-b a+b x..",
        );
    }

    /// The case the earlier engine let through (it stopped only at the output cap, after
    /// building 128 MiB): small enough to run without the budget.
    #[test]
    fn a_string_doubled_27_times_fails_before_it_is_printed() {
        let got = render(
            "{% set ns = namespace(s='x') %}{% for i in range(27) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s|length }}",
            &scheduled(),
            &Fake::default(),
        );
        assert!(
            got.as_ref().is_err_and(|e| e.contains("bytes of values")),
            "{got:?}"
        );
    }

    /// Where updraft differs from Airflow's Python, the error says what to write instead.
    #[test]
    fn python_operators_without_an_equivalent_say_what_to_write() {
        check_err(
            "{{ (logical_date - macros.timedelta(days=1)).strftime('%Y-%m-%d') }}",
            "tried to use - operator on unsupported types plain object and plain object: \
             datetime arithmetic is not supported; write logical_date.subtract(days=1) or \
             .add(hours=2) (pendulum's methods, which Airflow's dates have), or macros.ds_add(ds, -1) (line 1)",
        );
        check_err(
            "{{ '%s-%s' % (ds, 1) }}",
            "tried to use % operator on unsupported types string and sequence: %-formatting is \
             not supported; write '{}-{}'.format(a, b) or '%s-%s' | format(a, b) (line 1)",
        );
        check_err(
            "{{ params.nested.n.append(3) }}",
            "unknown method: list has no method named append (line 1)",
        );
        check_err(
            "{{ macros.dateutil.relativedelta }}",
            "'macros.dateutil.relativedelta' is undefined (line 1)",
        );
        // Python prints dict_items([('name', 'world'), ...]).
        check(
            "{{ params.items() }}",
            "[['name', 'world'], ['flag', True], ['nested', {'n': [1, 2]}]]",
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
