//! The task supervisor: runs one try of one task on a thread of the executor and reports
//! it, reaching state only through the Execution API, never the database.
//!
//! Its life: claim the task instance (`run`; 409 means another process owns it), render
//! the command, start it in its own process group (job object on Windows), heartbeat
//! while it renders and runs (a 409 means the task was cleared or changed elsewhere: kill
//! it), stop it at `execution_timeout` (counted from before the render) or when the
//! executor shuts down, push the last line of its output as the `return_value` XCom, and
//! report the final state.
//!
//! A Python task (PythonOperator, TaskFlow, branch, short-circuit, sensor) takes the same
//! path with another program: its templated arguments are rendered, a spec file is
//! written, and the user's interpreter runs the embedded runner (`python.rs`), which leaves
//! its outcome and its return value's XComs in a file for the supervisor to push and report. Task callbacks
//! run with the same runner, just before the final state is reported.
//!
//! Supervisors are threads, not processes: a process per supervisor doubled the process
//! starts per task (see bench/PROFILES.md). What a task sees is unchanged: its own
//! process tree, the Execution API URL and a token of its own.

use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::client::{CallError, Client, TOKEN_VAR, Transport, URL_VAR};
use super::python;
use super::sensor;
use super::threads::Threads;
use crate::clock::Clock;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::process::{self, Program, Shell, Spec};
use crate::task_log::log_path_at;
use crate::template::{self, RenderError};

mod hitl;

/// The variable that names the task instance in its task's environment, so a task tree
/// left behind by a killed executor can be found and stopped (see `kill_orphans`).
pub const TI_VAR: &str = "UPDRAFT_TI_ID";

/// Airflow's BashOperator `skip_on_exit_code` default.
const SKIP_EXIT_CODE: i32 = 99;
/// How often the stop flag and the child are looked at.
pub(super) const TICK: Duration = Duration::from_millis(50);
/// The longest wait between heartbeats (Airflow's `min_heartbeat_interval`).
const MAX_HEARTBEAT: Duration = Duration::from_secs(5);
/// How long a killed task gets to stop before it is killed hard.
const KILL_GRACE: Duration = Duration::from_secs(5);
/// The longest a `map_index_template` may take to render (it names the instance; the
/// task does not wait on it for long).
const MAP_INDEX_RENDER_LIMIT: Duration = Duration::from_secs(30);

/// How a try ended, as far as its supervisor could tell the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The final state was reported.
    Reported,
    /// The task instance belongs to someone else, or was changed while it ran.
    NotOurs,
    /// No final state could be reported: the executor has the last word.
    Unreported,
}

/// What every supervisor of one executor shares: settings read once, one transport to
/// the Execution API (one HTTP agent, so the calls of all tasks reuse kept-alive
/// connections; or the server in this process), the stop flag.
pub struct Supervisors {
    transport: Transport,
    /// The URL tasks are given (commands inside a task always use HTTP).
    api_url: String,
    home: PathBuf,
    base_log_folder: PathBuf,
    heartbeat_timeout: f64,
    pub(super) shell: Shell,
    /// PATH for tasks: this binary's folder first, so `updraft tasks xcom push` and
    /// friends work inside a task.
    pub(super) task_path: Option<OsString>,
    unixname: String,
    hostname: String,
    pid: u32,
    /// Where the time a try reports (its start, its end, its log lines) is read.
    pub(super) clock: Clock,
    /// The interpreter of Python tasks, or the log line that says it is missing.
    python: Result<python::Interpreter, String>,
    /// The folder the runner's files were written to, once a Python task needed them.
    python_runner: std::sync::OnceLock<std::result::Result<PathBuf, String>>,
    dags_folder: PathBuf,
    /// Where Python tries' spec and outcome files go: under the home, not the shared
    /// temporary folder, so no other user can plant a file under a name one will take.
    pub(super) tries_dir: PathBuf,
    /// Set when the executor shuts down: running tasks stop and are reported for retry.
    pub stop: AtomicBool,
    /// The threads supervisors and their output readers run on.
    pub threads: Arc<Threads>,
}

impl Supervisors {
    /// `in_process`: the Execution API served by this process, which supervisors then
    /// call without a connection; `None` for HTTP to `api_url`.
    pub fn new(
        cfg: &Config,
        api_url: &str,
        clock: Clock,
        in_process: Option<Arc<dyn crate::executor::client::InProcessApi>>,
    ) -> Supervisors {
        let path = cfg.host.var("PATH").map(OsStr::to_os_string);
        let exe_dir = std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(PathBuf::from));
        let task_path = exe_dir.map(|dir| {
            let rest = path
                .as_deref()
                .map(std::env::split_paths)
                .into_iter()
                .flatten();
            std::env::join_paths(std::iter::once(dir).chain(rest))
                .ok()
                .or_else(|| path.clone())
                .unwrap_or_default()
        });
        Supervisors {
            transport: match in_process {
                Some(server) => Transport::InProcess(server),
                None => Transport::Http(super::client::agent()),
            },
            api_url: api_url.to_string(),
            home: cfg.home.clone(),
            base_log_folder: cfg.logging.base_log_folder.clone(),
            heartbeat_timeout: cfg.scheduler.task_instance_heartbeat_timeout,
            shell: process::find_shell(&cfg.host),
            task_path,
            unixname: ["USER", "USERNAME"]
                .iter()
                .find_map(|k| cfg.host.var(k)?.to_str())
                .unwrap_or_default()
                .to_string(),
            hostname: crate::hostname(),
            pid: std::process::id(),
            clock,
            python: python::find(&cfg.core.python_interpreter, &cfg.host),
            python_runner: std::sync::OnceLock::new(),
            dags_folder: cfg.core.dags_folder.clone(),
            tries_dir: cfg.home.join("python-runner").join("tries"),
            stop: AtomicBool::new(false),
            threads: Threads::new(),
        }
    }

    /// How often a try heartbeats: a third of `heartbeat_timeout`, within bounds.
    pub(super) fn beat_every(&self) -> Duration {
        Duration::from_secs_f64(self.heartbeat_timeout / 3.0).clamp(TICK, MAX_HEARTBEAT)
    }

    pub(super) fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

/// Runs one try with the task's own token; errors are logged and leave it unreported.
pub fn supervise(sv: &Supervisors, ti_id: &str, token: &str) -> Outcome {
    match try_supervise(sv, ti_id, token) {
        Ok(outcome) => outcome,
        Err(e) => {
            log::error!("task instance {ti_id}: {e}");
            Outcome::Unreported
        }
    }
}

fn try_supervise(sv: &Supervisors, ti_id: &str, token: &str) -> Result<Outcome> {
    let client = Client::with_transport(sv.transport.clone(), &sv.api_url, token);
    let ctx = match client.run(ti_id, sv.pid, &sv.hostname, &sv.unixname, sv.clock.now()) {
        Ok(ctx) => ctx,
        Err(CallError::Status(409, body)) => {
            log::warn!("task instance {ti_id} is not ours to run: {body}");
            return Ok(Outcome::NotOurs);
        }
        Err(e) => {
            return Err(Error::Failed(format!(
                "cannot start task instance {ti_id}: {e}"
            )));
        }
    };
    let run = &ctx["dag_run"];
    let task = &ctx["task"];
    let s = |v: &Value| v.as_str().unwrap_or("").to_string();
    let (dag_id, run_id, task_id) = (s(&run["dag_id"]), s(&run["run_id"]), s(&task["task_id"]));
    let try_number = ctx["try_number"].as_u64().unwrap_or(1) as u32;
    let should_retry = ctx["should_retry"].as_bool().unwrap_or(false);
    let map_index = ctx["map_index"].as_i64().unwrap_or(-1);
    let path = log_path_at(
        &sv.base_log_folder,
        &dag_id,
        &run_id,
        &task_id,
        map_index,
        try_number,
    );
    let mut log = TaskLog::open(&path, sv.clock.clone())?;
    log.line(&format!(
        "updraft supervisor: dag_id={dag_id} run_id={run_id} task_id={task_id}{} try {try_number} of {} (pid {} on {})",
        match map_index {
            i if i >= 0 => format!(" map_index={i}"),
            _ => String::new(),
        },
        ctx["max_tries"].as_u64().unwrap_or(0) + 1,
        sv.pid,
        sv.hostname
    ));

    let fail_state = if should_retry {
        "up_for_retry"
    } else {
        "failed"
    };
    // What failed the try, for the failure and retry callbacks' `exception` (as Airflow's
    // task runner puts the error in the context before `finalize`): set where a failure is
    // known, `null` otherwise.
    let exception = std::cell::RefCell::new(Value::Null);
    // What a Python callable set through `outlet_events`, sent with its success.
    let outlet_events: std::cell::RefCell<Vec<Value>> = std::cell::RefCell::new(Vec::new());
    let finish = |log: &mut TaskLog, state: &str, rendered: Option<&str>| -> Outcome {
        // As Airflow 3's task runner: callbacks run before the state is reported, while
        // the try's token still reaches variables, connections and XComs.
        let on = match state {
            "success" => "on_success_callback",
            "skipped" => "on_skipped_callback",
            "up_for_retry" => "on_retry_callback",
            _ => "on_failure_callback",
        };
        if !sv.stopping() {
            let error = match state {
                "success" | "skipped" => Value::Null,
                _ => exception.borrow().clone(),
            };
            run_callbacks(sv, &ctx, ti_id, &client, (on, Some(&error)), log);
        }
        log.line(&format!("final state: {state}"));
        let outlets = outlet_events.borrow();
        match client.finish_with_outlets(ti_id, state, sv.clock.now(), rendered, &outlets) {
            Ok(()) => Outcome::Reported,
            Err(e) => {
                log.line(&format!("could not report the state: {e}"));
                Outcome::Unreported
            }
        }
    };

    if task["hitl"].is_object() {
        return Ok(hitl::run(
            &ctx, ti_id, &client, &sv.clock, &mut log, fail_state, &finish,
        ));
    }
    let is_python = task["python"].is_object();
    if task["sensor"].is_object() {
        // A native sensor pokes here, in this thread: no process (BashSensor's command
        // aside).
        let lookup = ApiLookup {
            client: &client,
            dag_id: &dag_id,
            run_id: &run_id,
        };
        let tctx = template_context(&ctx, try_number, &sv.clock);
        run_callbacks(
            sv,
            &ctx,
            ti_id,
            &client,
            ("on_execute_callback", None),
            &mut log,
        );
        let t = sensor::Try {
            sv,
            client: &client,
            ctx: &ctx,
            ti_id,
            tctx: &tctx,
            lookup: &lookup,
            fail_state,
        };
        let end = sensor::run(&t, &mut log);
        return Ok(match end {
            sensor::End::State("success", Some(v)) => {
                match client.xcom_set(&dag_id, &run_id, &task_id, "return_value", &v, None) {
                    Ok(()) => finish(&mut log, "success", None),
                    Err(e) => {
                        log.line(&format!("could not push the return_value XCom: {e}"));
                        finish(&mut log, fail_state, None)
                    }
                }
            }
            sensor::End::State(state, _) => finish(&mut log, state, None),
            sensor::End::Reschedule(at) => reschedule(&client, ti_id, at, &sv.clock, &mut log),
            sensor::End::NotOurs => Outcome::NotOurs,
            sensor::End::Unreported => Outcome::Unreported,
        });
    }
    if task["operator"] != "BashOperator" && !is_python && task["builtin"].is_null() {
        // An operator with nothing to execute here (EmptyOperator with callbacks):
        // its callbacks still fire around the execute that does nothing, as in Airflow.
        run_callbacks(
            sv,
            &ctx,
            ti_id,
            &client,
            ("on_execute_callback", None),
            &mut log,
        );
        return Ok(finish(&mut log, "success", None));
    }
    // A Python task needs an interpreter and the runner's files before anything runs.
    let python_run = if is_python {
        let interpreter = match &sv.python {
            Ok(i) => i.clone(),
            Err(line) => {
                log.line(line);
                return Ok(finish(&mut log, "failed", None));
            }
        };
        let runner = sv
            .python_runner
            .get_or_init(|| python::install(&sv.home).map_err(|e| e.to_string()));
        match runner {
            Ok(dir) => Some((interpreter, dir.clone())),
            Err(e) => {
                log.line(&format!("cannot write the Python runner's files: {e}"));
                return Ok(finish(&mut log, fail_state, None));
            }
        }
    } else {
        None
    };
    let lookup = ApiLookup {
        client: &client,
        dag_id: &dag_id,
        run_id: &run_id,
    };
    // Built when a template is rendered: a command without one (`true`) needs none.
    let tctx = std::cell::LazyCell::new(|| template_context(&ctx, try_number, &sv.clock));
    // A built-in operator runs here, in this thread (executor::operators).
    if let Ok(kind) = serde_json::from_value::<crate::model::Builtin>(task["builtin"].clone()) {
        run_callbacks(
            sv,
            &ctx,
            ti_id,
            &client,
            ("on_execute_callback", None),
            &mut log,
        );
        let b = BuiltinTry {
            sv,
            ctx: &ctx,
            ti_id,
            client: &client,
            fail_state,
        };
        return Ok(match run_builtin(&b, kind, &tctx, &lookup, &mut log) {
            BuiltinEnd::State(state) => finish(&mut log, state, None),
            BuiltinEnd::Gone(outcome) => outcome,
        });
    }
    // An expanded value of a mapped task may be of any type; Airflow's BashOperator
    // fails on what it cannot run. (A Python task has none of these arguments.)
    let bash_args = if is_python {
        &[][..]
    } else {
        &[
            ("bash_command", task["bash_command"].is_string()),
            ("env", task["env"].is_object() || task["env"].is_null()),
            ("cwd", task["cwd"].is_string() || task["cwd"].is_null()),
            ("append_env", task["append_env"].is_boolean()),
        ][..]
    };
    for &(key, ok) in bash_args {
        if !ok {
            log.line(&format!(
                "cannot run: {key} must be {}, not {}",
                if key == "env" {
                    "a mapping"
                } else if key == "append_env" {
                    "a boolean"
                } else {
                    "a string"
                },
                task[key]
            ));
            return Ok(finish(&mut log, fail_state, None));
        }
    }
    // Rendered again after the task (where an error fails a task that succeeded), so an
    // error here says nothing yet: as Airflow's early render, it is kept quiet.
    let map_index_template = task["map_index_template"].as_str();
    let early_map_index = map_index_template.map(|template| {
        let early = render_map_index(template, &tctx, &lookup);
        if let Ok(text) = &early {
            record_map_index(&client, ti_id, text, None, &mut log);
        }
        early
    });
    // execution_timeout covers the render too: its clock starts here, and the command
    // gets what the render left of it.
    let clock = Instant::now();
    let timeout = task["execution_timeout"]
        .as_f64()
        .map(Duration::from_secs_f64);
    let beat = sv.beat_every();
    let mut render_beat = RenderBeat {
        every: beat,
        last_beat: Instant::now(),
        last_ok: Instant::now(),
        stopped: None,
    };
    let deadline = timeout.and_then(|t| clock.checked_add(t));
    let what = if is_python {
        "op_args, op_kwargs and templates_dict"
    } else {
        "bash_command"
    };
    let rendered = {
        let mut render = |text: &str| {
            template::render_within(text, &tctx, &lookup, deadline, &mut || {
                render_beat.tick(sv, &client, ti_id)
            })
        };
        if is_python {
            python_fields(&task["python"], &mut render).map(|v| v.to_string())
        } else {
            let command = task["bash_command"].as_str().unwrap_or("");
            // A command read from an upstream's XCom is not a template (Airflow's
            // `resolved_oids`).
            let raw = task["from_xcom"]
                .as_array()
                .is_some_and(|a| a.iter().any(|n| n.as_str() == Some("bash_command")));
            if raw {
                Ok(command.to_string())
            } else {
                render(command)
            }
        }
    };
    let rendered = match rendered {
        Ok(r) => r,
        Err(RenderError::Template(e)) => {
            log.line(&format!("cannot render {what}: {e}"));
            return Ok(finish(&mut log, fail_state, None));
        }
        Err(RenderError::Timeout) => {
            log.line(&format!(
                "execution_timeout of {:.3} s reached while rendering {what}: the render was stopped",
                timeout.unwrap_or_default().as_secs_f64()
            ));
            return Ok(finish(&mut log, fail_state, None));
        }
        Err(RenderError::Abandoned) => {
            match render_beat.stopped {
                Some(RenderStop::Shutdown) => {
                    log.line("the executor is shutting down: the render was stopped and the task will be retried");
                    return Ok(finish(&mut log, "up_for_retry", None));
                }
                Some(RenderStop::NotOurs) => {
                    log.line("the task instance was cleared or changed elsewhere: the render was stopped");
                    return Ok(Outcome::NotOurs);
                }
                Some(RenderStop::ApiGone) | None => {
                    log.line("the Execution API has not answered heartbeats for too long: the render was stopped");
                    return Ok(Outcome::Unreported);
                }
            }
        }
    };
    // The task's fields as rendered, for `task.<name>` after the task.
    let rendered_attrs = if is_python {
        let fields: Value = serde_json::from_str(&rendered).unwrap_or_default();
        template::task_attrs(&serde_json::json!({ "python": fields }))
    } else {
        serde_json::Map::from_iter([("bash_command".to_string(), Value::from(rendered.as_str()))])
    };
    // Airflow's render after the task (`_execute_task`'s `else`): again, with the task's
    // fields rendered (what `task.<name>` reads) and what the task added to its context;
    // an error fails a task that succeeded (its result is not pushed), and is swallowed
    // for one that failed.
    let render_after = |extra: Option<&serde_json::Map<String, Value>>,
                        succeeded: bool,
                        log: &mut TaskLog|
     -> bool {
        let (Some(template), Some(early)) = (map_index_template, &early_map_index) else {
            return true;
        };
        let mut after = template::Context::clone(&tctx);
        after.task_attrs.extend(rendered_attrs.clone());
        if let Some(extra) = extra {
            after.extra = extra.clone();
        }
        match render_map_index(template, &after, &lookup) {
            Ok(text) => {
                record_map_index(&client, ti_id, &text, early.as_ref().ok(), log);
                true
            }
            Err(e) if succeeded => {
                log.line(&format!("cannot render map_index_template: {e}"));
                false
            }
            Err(_) => true,
        }
    };
    match &python_run {
        Some((interpreter, _)) => log.line(&format!(
            "running {} with {}",
            task["python"]["callable"].as_str().unwrap_or(""),
            interpreter.describe()
        )),
        None => log.line(&format!(
            "running with {}: {rendered}",
            sv.shell.describe_for(&rendered)
        )),
    }

    let mut env: Vec<(String, String)> = vec![
        ("AIRFLOW_CTX_DAG_ID".into(), dag_id.clone()),
        ("AIRFLOW_CTX_TASK_ID".into(), task_id.clone()),
        ("AIRFLOW_CTX_RUN_ID".into(), run_id.clone()),
        ("AIRFLOW_CTX_TRY_NUMBER".into(), try_number.to_string()),
        ("AIRFLOW_CTX_LOGICAL_DATE".into(), s(&run["logical_date"])),
        ("AIRFLOW_CTX_DAG_OWNER".into(), s(&task["owner"])),
        (
            "UPDRAFT_HOME".into(),
            sv.home.to_string_lossy().into_owned(),
        ),
        (URL_VAR.into(), sv.api_url.clone()),
        (TOKEN_VAR.into(), client.token()),
        (TI_VAR.into(), ti_id.to_string()),
    ];
    if let Some(path) = &sv.task_path {
        env.push(("PATH".into(), path.to_string_lossy().into_owned()));
    }
    if let Some(m) = task["env"].as_object() {
        env.extend(m.iter().map(|(k, v)| {
            (
                k.clone(),
                v.as_str().map_or_else(|| v.to_string(), str::to_string),
            )
        }));
    }
    // Airflow: a task with `env` gets only that environment unless `append_env` is set.
    let inherit_env = !task["env"].is_object() || task["append_env"].as_bool().unwrap_or(false);
    let cwd = task["cwd"].as_str().map(PathBuf::from);
    // stdout comes through a pipe: copied into the log line by line, its last line kept
    // for the return value. stderr goes to the log directly.
    run_callbacks(
        sv,
        &ctx,
        ti_id,
        &client,
        ("on_execute_callback", None),
        &mut log,
    );
    // A Python task writes its own log lines and reports its return value itself; its
    // spec goes in a file (argv and the environment are too small on Windows).
    let mut python_files = None;
    let program = match &python_run {
        Some((interpreter, runner)) => {
            let files = PythonFiles::new(&sv.tries_dir, ti_id, try_number);
            let fields: Value = serde_json::from_str(&rendered).unwrap_or_default();
            let spec = python_spec(&ctx, &fields, sv, runner, &files.outcome);
            if let Err(e) = std::fs::write(&files.spec, spec.to_string()) {
                log.line(&format!("cannot write the Python task's spec: {e}"));
                return Ok(finish(&mut log, fail_state, None));
            }
            env.extend([
                ("PYTHONUTF8".to_string(), "1".to_string()),
                ("PYTHONIOENCODING".to_string(), "utf-8".to_string()),
                ("PYTHONUNBUFFERED".to_string(), "1".to_string()),
            ]);
            let mut args = interpreter.args.clone();
            args.push(runner.join("updraft_runner.py").into_os_string());
            args.push(files.spec.clone().into_os_string());
            python_files = Some(files);
            Some(Program {
                path: interpreter.program.clone(),
                args,
            })
        }
        None => None,
    };
    let (reader, writer) = match program {
        Some(_) => (None, None),
        None => {
            let (r, w) =
                std::io::pipe().map_err(|e| Error::Failed(format!("cannot make a pipe: {e}")))?;
            (Some(r), Some(w))
        }
    };
    let spec = Spec {
        shell: sv.shell.clone(),
        script: rendered.clone(),
        env,
        inherit_env,
        cwd,
        log: log.file()?,
        stdout: writer,
    };
    // The rendered command the API shows: a Bash task's only.
    let shown = program.is_none().then_some(rendered.as_str());
    let started = Instant::now();
    let spawned = match &program {
        Some(p) => process::spawn_program(p, spec),
        None => process::spawn(spec),
    };
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            log.line(&format!("cannot start the command: {e}"));
            return Ok(finish(&mut log, fail_state, shown));
        }
    };
    log.line(&format!("started pid {}", child.pid()));
    let copier = match reader {
        Some(reader) => Some(copy_stdout(&sv.threads, reader, log.file()?)?),
        None => None,
    };

    let mut last_beat = Instant::now();
    let mut last_ok = Instant::now();
    let exit = loop {
        if let Some(exit) = child
            .wait_timeout(TICK)
            .map_err(|e| Error::Failed(format!("waiting for the task: {e}")))?
        {
            break exit;
        }
        if sv.stopping() {
            let _ = child.kill_tree(KILL_GRACE);
            log.line("the executor is shutting down: the task was stopped and will be retried");
            return Ok(finish(&mut log, "up_for_retry", shown));
        }
        if timeout.is_some_and(|t| clock.elapsed() >= t) {
            // Airflow's `timeout` raises this in the task process.
            *exception.borrow_mut() = airflow_error(
                "AirflowTaskTimeout",
                &format!("Timeout, PID: {}", child.pid()),
            );
            let _ = child.kill_tree(KILL_GRACE);
            log.line(&format!(
                "execution_timeout of {:.3} s reached: the task and its children were killed",
                timeout.unwrap_or_default().as_secs_f64()
            ));
            return Ok(finish(&mut log, fail_state, shown));
        }
        if last_beat.elapsed() >= beat {
            last_beat = Instant::now();
            match client.heartbeat(ti_id, sv.pid, &sv.hostname) {
                Ok(true) => last_ok = Instant::now(),
                Ok(false) => {
                    let _ = child.kill_tree(KILL_GRACE);
                    log.line(
                        "the task instance was cleared or changed elsewhere: the task was stopped",
                    );
                    return Ok(Outcome::NotOurs);
                }
                Err(e) => {
                    log::warn!("heartbeat failed: {e}");
                    if last_ok.elapsed().as_secs_f64() > sv.heartbeat_timeout {
                        let _ = child.kill_tree(KILL_GRACE);
                        log.line("the Execution API has not answered heartbeats for too long: the task was stopped");
                        return Ok(Outcome::Unreported);
                    }
                }
            }
        }
    };
    // The tree is gone, so the pipe is closed and the copier ends.
    let last = copier.and_then(|c| c.recv().unwrap_or_default());
    log.line(&format!(
        "command exited with {exit} after {:.3} s",
        started.elapsed().as_secs_f64()
    ));
    if let Some(files) = &python_files {
        let outcome = files.outcome();
        *outlet_events.borrow_mut() = files.outlet_events();
        let rendered = render_after(
            outcome.as_ref().map(|(_, _, _, extra)| extra),
            outcome.as_ref().is_some_and(|(s, ..)| s == "success"),
            &mut log,
        );
        if outcome
            .as_ref()
            .is_some_and(|(state, ..)| state == "up_for_reschedule")
        {
            // A PythonSensor in reschedule mode poked once and was not done: the
            // timeout and the next poke's date are decided here, as for native sensors.
            return Ok(match sensor::python_not_done(&ctx, &sv.clock) {
                sensor::End::Reschedule(at) => reschedule(&client, ti_id, at, &sv.clock, &mut log),
                sensor::End::State(state, message) => {
                    if let Some(Value::String(m)) = message {
                        log.line(&format!("AirflowSensorTimeout: {m}"));
                    }
                    finish(&mut log, state, None)
                }
                sensor::End::NotOurs => Outcome::NotOurs,
                sensor::End::Unreported => Outcome::Unreported,
            });
        }
        *exception.borrow_mut() = files.exception();
        let state = match outcome {
            Some((state, _, _, _)) if state == "success" && !rendered => fail_state,
            Some((state, retry, xcoms, _)) => match state.as_str() {
                // The return value's XComs, pushed here (as Airflow 3's supervisor does
                // the task process's SetXCom) before the success is reported; one that
                // cannot be pushed fails the try, as in Airflow.
                "success" => match xcoms.iter().try_for_each(|x| {
                    client.xcom_set(
                        &dag_id,
                        &run_id,
                        &task_id,
                        &x.key,
                        &x.value,
                        x.mapped_length,
                    )
                }) {
                    Ok(()) => "success",
                    Err(e) => {
                        log.line(&format!("could not push the return value's XComs: {e}"));
                        fail_state
                    }
                },
                "skipped" => "skipped",
                _ if !retry => {
                    log.line("AirflowFailException: the task fails without retrying");
                    "failed"
                }
                _ => fail_state,
            },
            None => {
                log.line("the Python runner ended without reporting how the callable ended");
                fail_state
            }
        };
        return Ok(finish(&mut log, state, None));
    }
    let state = match exit.code() {
        0 if !render_after(None, true, &mut log) => fail_state,
        0 => "success",
        SKIP_EXIT_CODE => "skipped",
        code => {
            // BashOperator's error for a non-zero exit, in Airflow 3.3.2's words.
            *exception.borrow_mut() = airflow_error(
                "AirflowException",
                &format!("Bash command failed. The command returned a non-zero exit code {code}."),
            );
            fail_state
        }
    };
    // A task a mapped task expands over must push a list or a dict; BashOperator's
    // return value is a string (its last line), so Airflow's task runner fails it.
    let state = if state == "success"
        && task["mapped_dependants"].as_bool() == Some(true)
        && ctx["map_index"].as_i64().unwrap_or(-1) < 0
    {
        log.line("UnmappableXComTypePushed: unmappable return type 'str'");
        fail_state
    } else {
        state
    };
    // BashOperator pushes the last line of stdout as its return value.
    if state == "success"
        && let Some(line) = last
        && let Err(e) = client.xcom_set(
            &dag_id,
            &run_id,
            &task_id,
            "return_value",
            &Value::String(line),
            None,
        )
    {
        log.line(&format!("could not push the return_value XCom: {e}"));
    }
    Ok(finish(&mut log, state, shown))
}

/// Ends a sensor's try `up_for_reschedule` until `at` (Airflow's `RescheduleTask`): no
/// callback runs, the try goes on at its next poke.
fn reschedule(
    client: &Client,
    ti_id: &str,
    at: DateTime<Utc>,
    clock: &Clock,
    log: &mut TaskLog,
) -> Outcome {
    log.line("final state: up_for_reschedule");
    match client.reschedule(ti_id, at, clock.now()) {
        Ok(()) => Outcome::Reported,
        Err(e) => {
            log.line(&format!("could not report the reschedule: {e}"));
            Outcome::Unreported
        }
    }
}

/// The longest a task's callbacks may run, all of them together, before they are killed:
/// bounded, so a hung callback cannot keep a try from being reported.
const CALLBACK_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs the task's `on` callbacks with the Python runner, their output into the try's log.
/// A callback that fails or cannot run is logged; it never changes the task's state.
/// `exception` is the context's `exception` (a description the runner makes an exception
/// of, or `null`); `None` leaves the key out, as before the task runs.
fn run_callbacks(
    sv: &Supervisors,
    ctx: &Value,
    ti_id: &str,
    client: &Client,
    (on, exception): (&str, Option<&Value>),
    log: &mut TaskLog,
) {
    let callbacks: Vec<&Value> = ctx["task"]["callbacks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["on"] == on)
        .collect();
    if callbacks.is_empty() {
        return;
    }
    let interpreter = match &sv.python {
        Ok(i) => i.clone(),
        Err(line) => {
            log.line(&format!("cannot run {on}: {line}"));
            return;
        }
    };
    let runner = match sv
        .python_runner
        .get_or_init(|| python::install(&sv.home).map_err(|e| e.to_string()))
    {
        Ok(dir) => dir.clone(),
        Err(e) => {
            log.line(&format!(
                "cannot run {on}: cannot write the Python runner's files: {e}"
            ));
            return;
        }
    };
    let try_number = ctx["try_number"].as_u64().unwrap_or(1) as u32;
    let files = PythonFiles::new(&sv.tries_dir, &format!("{ti_id}-{on}"), try_number);
    let mut spec = python_spec(ctx, &Value::Null, sv, &runner, &files.outcome);
    spec["callbacks"] = Value::Array(callbacks.into_iter().cloned().collect());
    if let Some(e) = exception {
        spec["exception"] = e.clone();
    }
    log.line(&format!("running {on} with {}", interpreter.describe()));
    // Heartbeats go on while callbacks run, so a slow one is not taken for a zombie.
    run_callback_runner(
        sv,
        on,
        (&interpreter, &runner),
        (&spec, &files),
        (client.token(), Some(ti_id)),
        log,
        heartbeats(sv, client, ti_id, on),
    );
}

/// Runs a built-in operator's or sensor's Python callables (`response_check`,
/// `response_filter`, SqlSensor's `selector`/`failure`/`success`) on what the supervisor
/// got natively: `invoke` is the runner's `invoke` spec (`kind` `http` with the
/// `response`, or `sql` with the first `row`). One runner process per call, its output
/// into the try's log, heartbeating meanwhile. What the callables answered (`check`,
/// and `value` for a filter), or why they could not answer.
pub(super) fn invoke_python(
    sv: &Supervisors,
    ctx: &Value,
    ti_id: &str,
    client: &Client,
    invoke: &Value,
    log: &mut TaskLog,
) -> Result<Value, String> {
    let interpreter = sv.python.clone()?;
    let runner = sv
        .python_runner
        .get_or_init(|| python::install(&sv.home).map_err(|e| e.to_string()))
        .clone()
        .map_err(|e| format!("cannot write the Python runner's files: {e}"))?;
    let try_number = ctx["try_number"].as_u64().unwrap_or(1) as u32;
    let files = PythonFiles::new(&sv.tries_dir, &format!("{ti_id}-invoke"), try_number);
    let mut spec = python_spec(ctx, &Value::Null, sv, &runner, &files.outcome);
    spec["invoke"] = invoke.clone();
    let end = run_callback_runner(
        sv,
        "the Python callable",
        (&interpreter, &runner),
        (&spec, &files),
        (client.token(), Some(ti_id)),
        log,
        heartbeats(sv, client, ti_id, "a Python callable"),
    );
    let out = std::fs::read_to_string(&files.outcome)
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok());
    let _ = std::fs::remove_file(&files.spec);
    let _ = std::fs::remove_file(&files.outcome);
    match out {
        Some(out) if out["state"] == "success" => Ok(out),
        Some(out) => Err(out["error"]
            .as_str()
            .unwrap_or("the callable failed")
            .to_string()),
        None if end == CallbacksEnd::NotRun => Err("the Python callable was not run".into()),
        None => Err("the Python runner ended without an outcome".into()),
    }
}

/// How the Python runner of some callbacks ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CallbacksEnd {
    /// Every callback returned.
    Ran,
    /// One raised (the runner printed its traceback), or the runner failed.
    Failed,
    /// It could not start, or was stopped (too long, or the executor shuts down).
    NotRun,
}

/// Writes `spec` and runs the Python runner on it, its output into `log`, for at most
/// `CALLBACK_TIMEOUT`; `tick` is called about every `TICK` while it runs. `auth` is the
/// token the runner uses and the task instance it runs for, if any.
/// A tick for `run_callback_runner` that heartbeats the try every `beat_every()`, so a
/// slow callable is not taken for a zombie; a failed heartbeat is logged, naming `what`.
fn heartbeats<'a>(
    sv: &'a Supervisors,
    client: &'a Client,
    ti_id: &'a str,
    what: &'a str,
) -> impl FnMut() + 'a {
    let beat = sv.beat_every();
    let mut last_beat = Instant::now();
    move || {
        if last_beat.elapsed() >= beat {
            last_beat = Instant::now();
            if let Err(e) = client.heartbeat(ti_id, sv.pid, &sv.hostname) {
                log::warn!("heartbeat during {what} failed: {e}");
            }
        }
    }
}

fn run_callback_runner(
    sv: &Supervisors,
    on: &str,
    (interpreter, runner): (&python::Interpreter, &Path),
    (spec, files): (&Value, &PythonFiles),
    auth: (String, Option<&str>),
    log: &mut TaskLog,
    mut tick: impl FnMut(),
) -> CallbacksEnd {
    if let Err(e) = std::fs::write(&files.spec, spec.to_string()) {
        log.line(&format!("cannot run {on}: cannot write its spec: {e}"));
        return CallbacksEnd::NotRun;
    }
    let mut args = interpreter.args.clone();
    args.push(runner.join("updraft_runner.py").into_os_string());
    args.push(files.spec.clone().into_os_string());
    let program = Program {
        path: interpreter.program.clone(),
        args,
    };
    let Ok(file) = log.file() else {
        return CallbacksEnd::NotRun;
    };
    let (token, ti_id) = auth;
    let mut env = vec![
        (URL_VAR.to_string(), sv.api_url.clone()),
        (TOKEN_VAR.to_string(), token),
        (
            "UPDRAFT_HOME".to_string(),
            sv.home.to_string_lossy().into_owned(),
        ),
        ("PYTHONUTF8".to_string(), "1".to_string()),
        ("PYTHONIOENCODING".to_string(), "utf-8".to_string()),
        ("PYTHONUNBUFFERED".to_string(), "1".to_string()),
    ];
    if let Some(ti_id) = ti_id {
        env.push((TI_VAR.to_string(), ti_id.to_string()));
    }
    if let Some(path) = &sv.task_path {
        env.push(("PATH".into(), path.to_string_lossy().into_owned()));
    }
    let spec = Spec {
        shell: sv.shell.clone(),
        script: String::new(),
        env,
        inherit_env: true,
        cwd: None,
        log: file,
        stdout: None,
    };
    let mut child = match process::spawn_program(&program, spec) {
        Ok(c) => c,
        Err(e) => {
            log.line(&format!("cannot run {on}: {e}"));
            return CallbacksEnd::NotRun;
        }
    };
    let started = Instant::now();
    loop {
        tick();
        match child.wait_timeout(TICK) {
            Ok(Some(exit)) if exit.code() == 0 => return CallbacksEnd::Ran,
            Ok(Some(_)) => return CallbacksEnd::Failed,
            Ok(None) if started.elapsed() < CALLBACK_TIMEOUT && !sv.stopping() => {}
            Ok(None) | Err(_) => {
                let _ = child.kill_tree(KILL_GRACE);
                log.line(&format!("{on} was stopped: it ran for too long"));
                return CallbacksEnd::NotRun;
            }
        }
    }
}

/// Runs one DAG callback request: claims it through the Execution API (so it runs once
/// however often it is handed over), runs the DAG's callbacks for it with the Python
/// runner and the request's own token, and says how they ended. Their output goes where
/// Airflow's DAG processor writes a DAG file's log:
/// `{base_log_folder}/dag_processor/<date>/<bundle>/<file>.log`.
pub fn dag_callback(sv: &Supervisors, id: i64, token: &str) {
    let client = Client::with_transport(sv.transport.clone(), &sv.api_url, token);
    let ctx = match client.dag_callback_run(id) {
        Ok(ctx) => ctx,
        Err(CallError::Status(409, body)) => {
            log::info!("DAG callback request {id} was already claimed: {body}");
            return;
        }
        Err(e) => {
            log::error!("cannot claim DAG callback request {id}: {e}");
            return;
        }
    };
    let run = &ctx["dag_run"];
    let on = ctx["on"]
        .as_str()
        .unwrap_or("on_success_callback")
        .to_string();
    let (dag_id, run_id) = (
        run["dag_id"].as_str().unwrap_or_default(),
        run["run_id"].as_str().unwrap_or_default(),
    );
    let path = dag_processor_log(
        &sv.base_log_folder,
        sv.clock.now(),
        ctx["bundle"].as_str().unwrap_or("dags-folder"),
        ctx["fileloc"].as_str().unwrap_or(dag_id),
    );
    let finish = |state: &str| {
        if let Err(e) = client.dag_callback_finish(id, state) {
            log::warn!("cannot finish DAG callback request {id}: {e}");
        }
    };
    let mut log = match TaskLog::open(&path, sv.clock.clone()) {
        Ok(l) => l,
        Err(e) => {
            log::error!("DAG callback request {id}: {e}");
            return finish("failed");
        }
    };
    log.line(&format!(
        "running {on} of DAG {dag_id} for run {run_id} ({})",
        ctx["reason"].as_str().unwrap_or_default()
    ));
    let interpreter = match &sv.python {
        Ok(i) => i.clone(),
        Err(line) => {
            log.line(&format!("cannot run {on}: {line}"));
            return finish("failed");
        }
    };
    let runner = match sv
        .python_runner
        .get_or_init(|| python::install(&sv.home).map_err(|e| e.to_string()))
    {
        Ok(dir) => dir.clone(),
        Err(e) => {
            log.line(&format!(
                "cannot run {on}: cannot write the Python runner's files: {e}"
            ));
            return finish("failed");
        }
    };
    let files = PythonFiles::new(&sv.tries_dir, &format!("dag-callback-{id}"), 1);
    let mut full = ctx.clone();
    full["task"]["python"] = Value::Null;
    let mut spec = python_spec(&full, &Value::Null, sv, &runner, &files.outcome);
    spec["callbacks"] = ctx["callbacks"].clone();
    spec["reason"] = ctx["reason"].clone();
    spec["minimal"] = ctx["minimal"].clone();
    spec["context"]["state"] = ctx["ti_state"].clone();
    spec["context"]["run_state"] = run["state"].clone();
    spec["context"]["end_date"] = run["end_date"].clone();
    let end = run_callback_runner(
        sv,
        &on,
        (&interpreter, &runner),
        (&spec, &files),
        (token.to_string(), None),
        &mut log,
        || {},
    );
    log.line(&format!("{on} of DAG {dag_id} for run {run_id}: {end:?}"));
    finish(if end == CallbacksEnd::Ran {
        "success"
    } else {
        "failed"
    });
}

/// Where Airflow 3's DAG processor logs a DAG file (`dag_processor_child_process_log_directory`,
/// by default `logs/dag_processor`, then the day, the bundle and the file's relative path).
fn dag_processor_log(base: &Path, now: DateTime<Utc>, bundle: &str, fileloc: &str) -> PathBuf {
    let mut path = base
        .join("dag_processor")
        .join(now.format("%Y-%m-%d").to_string())
        .join(bundle);
    // The file's relative path, part by part, never leaving the folder.
    for part in fileloc.split(['/', '\\']) {
        if !part.is_empty() && part != "." && part != ".." {
            path.push(part);
        }
    }
    path.set_file_name(format!(
        "{}.log",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    ));
    path
}

/// An XCom the runner left for the supervisor to push: key and value.
/// What a callable added to its context, by name.
type ContextExtra = serde_json::Map<String, Value>;

/// One XCom of a Python try's return value; `mapped_length` for a value a mapped
/// downstream expands over.
struct Xcom {
    key: String,
    value: Value,
    mapped_length: Option<u64>,
}

/// A Python try's spec file and the file its runner writes the outcome to; both are
/// removed when this drops.
struct PythonFiles {
    spec: PathBuf,
    outcome: PathBuf,
}

impl PythonFiles {
    fn new(dir: &Path, ti_id: &str, try_number: u32) -> PythonFiles {
        let _ = std::fs::create_dir_all(dir);
        let id: String = ti_id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let stem = format!("updraft-py-{id}-{try_number}");
        let files = PythonFiles {
            spec: dir.join(format!("{stem}.json")),
            outcome: dir.join(format!("{stem}-outcome.json")),
        };
        // One a killed process left behind must not pass for this try's outcome.
        let _ = std::fs::remove_file(&files.outcome);
        files
    }

    /// What the runner wrote: the state, whether a failure may be retried, and the
    /// XComs of the return value to push, as (key, value) in order.
    fn outcome(&self) -> Option<(String, bool, Vec<Xcom>, ContextExtra)> {
        let text = std::fs::read_to_string(&self.outcome).ok()?;
        let mut v: Value = serde_json::from_str(&text).ok()?;
        let xcoms = match v["xcoms"].take() {
            Value::Array(items) => items
                .into_iter()
                .map(|mut pair| {
                    Some(Xcom {
                        key: pair[0].as_str()?.to_string(),
                        value: pair[1].take(),
                        mapped_length: pair[2].as_u64(),
                    })
                })
                .collect::<Option<Vec<_>>>()?,
            _ => Vec::new(),
        };
        Some((
            v["state"].as_str()?.to_string(),
            v["retry"].as_bool().unwrap_or(true),
            xcoms,
            match v["context_extra"].take() {
                Value::Object(m) => m,
                _ => serde_json::Map::new(),
            },
        ))
    }
}

impl PythonFiles {
    /// How the runner described the exception that failed the callable, or `null`.
    fn exception(&self) -> Value {
        std::fs::read_to_string(&self.outcome)
            .ok()
            .and_then(|text| serde_json::from_str::<Value>(&text).ok())
            .map_or(Value::Null, |mut v| v["exception"].take())
    }

    /// The `outlet_events` the runner wrote beside the outcome (Airflow's shape:
    /// `dest_asset_key`, `extra`, and `source_alias_name` for an alias's event).
    fn outlet_events(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(&self.outcome).unwrap_or_default();
        match serde_json::from_str::<Value>(&text).map(|mut v| v["outlet_events"].take()) {
            Ok(Value::Array(items)) => items,
            _ => Vec::new(),
        }
    }
}

/// An exception of Airflow's SDK as the runner rebuilds it for a callback's context.
fn airflow_error(class: &str, message: &str) -> Value {
    serde_json::json!({"module": "airflow.sdk.exceptions", "qualname": class, "args": [message]})
}

impl Drop for PythonFiles {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.spec);
        let _ = std::fs::remove_file(&self.outcome);
    }
}

/// The templated fields of a Python task (Airflow's `template_fields`: `op_args`,
/// `op_kwargs`, `templates_dict`), every string in them rendered.
fn python_fields(
    call: &Value,
    render: &mut dyn FnMut(&str) -> std::result::Result<String, RenderError>,
) -> std::result::Result<Value, RenderError> {
    fn walk(
        v: &Value,
        render: &mut dyn FnMut(&str) -> std::result::Result<String, RenderError>,
    ) -> std::result::Result<Value, RenderError> {
        Ok(match v {
            Value::String(s) => Value::String(render(s)?),
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|i| walk(i, render))
                    .collect::<std::result::Result<_, _>>()?,
            ),
            Value::Object(m) => Value::Object(
                m.iter()
                    .map(|(k, i)| Ok((k.clone(), walk(i, render)?)))
                    .collect::<std::result::Result<_, _>>()?,
            ),
            other => other.clone(),
        })
    }
    // Mapped arguments read from an upstream's XCom are not templates (Airflow's
    // `resolved_oids`): `op_args`, `op_kwargs`, or one keyword argument of a TaskFlow call.
    let from_xcom = |name: &str| {
        call["from_xcom"]
            .as_array()
            .is_some_and(|a| a.iter().any(|n| n.as_str() == Some(name)))
    };
    let mut out = serde_json::Map::new();
    for key in ["op_args", "op_kwargs", "templates_dict"] {
        let v = match &call[key] {
            v if from_xcom(key) => v.clone(),
            Value::Object(m) if key == "op_kwargs" => Value::Object(
                m.iter()
                    .map(|(k, i)| {
                        let v = if from_xcom(k) {
                            i.clone()
                        } else {
                            walk(i, render)?
                        };
                        Ok((k.clone(), v))
                    })
                    .collect::<std::result::Result<_, _>>()?,
            ),
            v => walk(v, render)?,
        };
        out.insert(key.to_string(), v);
    }
    Ok(Value::Object(out))
}

/// What the runner reads: the callable, its rendered arguments, the context, the folders
/// for `sys.path` and where to write the outcome.
fn python_spec(
    ctx: &Value,
    fields: &Value,
    sv: &Supervisors,
    runner: &Path,
    outcome: &Path,
) -> Value {
    let run = &ctx["dag_run"];
    let task = &ctx["task"];
    let call = &task["python"];
    let dag_file_folder = ctx["fileloc"]
        .as_str()
        .map(|f| sv.dags_folder.join(f))
        .and_then(|f| f.parent().map(Path::to_path_buf));
    // The task's own params over the DAG's, then the run's conf over both.
    let mut params = template::params_with_conf(&ctx["params"], &Value::Null);
    let own = template::params_with_conf(&call["params"], &Value::Null);
    if let (Some(all), Some(own)) = (params.as_object_mut(), own.as_object()) {
        all.extend(own.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    let params = template::params_with_conf(&params, &run["conf"]);
    let mut spec = serde_json::json!({
        "operator": task["operator"],
        "kind": task["python_kind"],
        "downstream": task["downstream"],
        "all_downstream": task["all_downstream"],
        "group_roots": task["group_roots"],
        "ignore_downstream_trigger_rules": call["ignore_downstream_trigger_rules"],
        "callable": call["callable"],
        "file": call["file"],
        "op_args": fields["op_args"],
        "op_kwargs": fields["op_kwargs"],
        "templates_dict": fields["templates_dict"],
        "xcom_args": call["xcom_args"],
        "multiple_outputs": call["multiple_outputs"],
        "native": call["native"],
        "sensor": call["sensor"],
        "do_xcom_push": call["do_xcom_push"],
        "mapped_dependants": task["mapped_dependants"],
        "map_index_template": task["map_index_template"],
        "show_return_value_in_logs": call["show_return_value_in_logs"],
        "dags_folder": sv.dags_folder,
        "dag_file_folder": dag_file_folder,
        "compat_folder": runner.join("compat"),
        "outcome": outcome,
        "context": {
            "dag_id": run["dag_id"], "task_id": task["task_id"], "run_id": run["run_id"],
            "try_number": ctx["try_number"], "max_tries": ctx["max_tries"], "map_index": ctx["map_index"],
            "logical_date": run["logical_date"], "data_interval_start": run["data_interval_start"],
            "data_interval_end": run["data_interval_end"], "run_after": run["run_after"],
            "start_date": run["start_date"], "run_type": run["run_type"], "conf": run["conf"],
            "params": params, "owner": task["owner"],
        },
    });
    // Assets: the events that triggered the run, and the task's outlets and inlets.
    for (key, value) in [
        ("triggering_asset_events", &run["consumed_asset_events"]),
        ("outlets", &task["outlets"]),
        ("inlets", &task["inlets"]),
    ] {
        spec["context"][key] = value.clone();
    }
    spec
}

/// Heartbeats while `bash_command` renders, as the loop does while the command runs, so a
/// long render (slow look-ups, a big template) is never taken for a zombie; and stops the
/// render when the try is no longer this supervisor's to run.
/// What a built-in operator's try runs with.
struct BuiltinTry<'a> {
    sv: &'a Supervisors,
    ctx: &'a Value,
    ti_id: &'a str,
    client: &'a Client,
    fail_state: &'static str,
}

/// How a built-in operator's try ended: a state to report, or an outcome without one.
enum BuiltinEnd {
    State(&'static str),
    Gone(Outcome),
}

/// Renders a built-in operator's template fields, runs it (heartbeating while it
/// waits, within `execution_timeout`) and pushes its return value.
fn run_builtin(
    b: &BuiltinTry,
    kind: crate::model::Builtin,
    tctx: &template::Context,
    lookup: &ApiLookup,
    log: &mut TaskLog,
) -> BuiltinEnd {
    use super::operators::{self, Done, OpEnv};
    let task = &b.ctx["task"];
    let timeout = task["execution_timeout"]
        .as_f64()
        .map(Duration::from_secs_f64);
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    let beat_every = b.sv.beat_every();
    let mut beat = RenderBeat {
        every: beat_every,
        last_beat: Instant::now(),
        last_ok: Instant::now(),
        stopped: None,
    };
    let empty = serde_json::Map::new();
    let args = task["args"].as_object().unwrap_or(&empty);
    let fields = kind.spec().template_fields;
    let rendered = operators::render_fields(args, fields, &mut |text: &str| {
        template::render_within(text, tctx, lookup, deadline, &mut || {
            beat.tick(b.sv, b.client, b.ti_id)
        })
    });
    let gone = |stopped: Option<RenderStop>, log: &mut TaskLog| match stopped {
        Some(RenderStop::Shutdown) => {
            log.line("the executor is shutting down: the task was stopped and will be retried");
            BuiltinEnd::State("up_for_retry")
        }
        Some(RenderStop::NotOurs) => {
            log.line("the task instance was cleared or changed elsewhere: the task was stopped");
            BuiltinEnd::Gone(Outcome::NotOurs)
        }
        Some(RenderStop::ApiGone) | None => {
            log.line(
                "the Execution API has not answered heartbeats for too long: the task was stopped",
            );
            BuiltinEnd::Gone(Outcome::Unreported)
        }
    };
    let rendered = match rendered {
        Ok(r) => r,
        Err(RenderError::Template(e)) => {
            log.line(&format!("cannot render {}: {e}", fields.join(", ")));
            return BuiltinEnd::State(b.fail_state);
        }
        Err(RenderError::Timeout) => {
            log.line("execution_timeout reached while rendering the template fields");
            return BuiltinEnd::State(b.fail_state);
        }
        Err(RenderError::Abandoned) => return gone(beat.stopped, log),
    };
    log.line(&format!("running {} in the supervisor", kind.class_name()));
    let done = {
        let shared = std::cell::RefCell::new(&mut *log);
        let mut write = |line: &str| shared.borrow_mut().line(line);
        let mut python = |invoke: &Value| {
            invoke_python(
                b.sv,
                b.ctx,
                b.ti_id,
                b.client,
                invoke,
                &mut shared.borrow_mut(),
            )
        };
        let mut tick = || beat.tick(b.sv, b.client, b.ti_id);
        let mut env = OpEnv {
            client: b.client,
            ti_id: b.ti_id,
            ctx: b.ctx,
            now: b.sv.clock.now(),
            deadline,
            beat: &mut tick,
            log: &mut write,
            python: &mut python,
        };
        operators::run(kind, &rendered, &mut env)
    };
    match done {
        Done::Success(value) => {
            // `do_xcom_push: false` keeps the return value out of XCom, as in Airflow.
            let push = !matches!(args.get("do_xcom_push"), Some(Value::Bool(false)));
            if let Some(value) = value.filter(|_| push) {
                let s = |v: &Value| v.as_str().unwrap_or("").to_string();
                let run = &b.ctx["dag_run"];
                if let Err(e) = b.client.xcom_set(
                    &s(&run["dag_id"]),
                    &s(&run["run_id"]),
                    &s(&task["task_id"]),
                    "return_value",
                    &value,
                    None,
                ) {
                    log.line(&format!("could not push the return_value XCom: {e}"));
                    return BuiltinEnd::State(b.fail_state);
                }
            }
            BuiltinEnd::State("success")
        }
        Done::Skipped(why) => {
            log.line(&why);
            BuiltinEnd::State("skipped")
        }
        Done::Failed(why) => {
            log.line(&format!("Task failed with exception: {why}"));
            BuiltinEnd::State(b.fail_state)
        }
        Done::Stopped => gone(beat.stopped, log),
    }
}

struct RenderBeat {
    every: Duration,
    last_beat: Instant,
    last_ok: Instant,
    stopped: Option<RenderStop>,
}

/// Why a render was abandoned.
#[derive(Debug, Clone, Copy)]
enum RenderStop {
    Shutdown,
    NotOurs,
    ApiGone,
}

impl RenderBeat {
    fn tick(&mut self, sv: &Supervisors, client: &Client, ti_id: &str) -> ControlFlow<()> {
        if sv.stopping() {
            self.stopped = Some(RenderStop::Shutdown);
            return ControlFlow::Break(());
        }
        if self.last_beat.elapsed() < self.every {
            return ControlFlow::Continue(());
        }
        self.last_beat = Instant::now();
        match client.heartbeat(ti_id, sv.pid, &sv.hostname) {
            Ok(true) => self.last_ok = Instant::now(),
            Ok(false) => {
                self.stopped = Some(RenderStop::NotOurs);
                return ControlFlow::Break(());
            }
            Err(e) => {
                log::warn!("heartbeat failed: {e}");
                if self.last_ok.elapsed().as_secs_f64() > sv.heartbeat_timeout {
                    self.stopped = Some(RenderStop::ApiGone);
                    return ControlFlow::Break(());
                }
            }
        }
        ControlFlow::Continue(())
    }
}

/// What a heartbeat between a sensor's pokes says.
pub(super) enum BeatSays {
    Go,
    Shutdown,
    NotOurs,
    ApiGone,
}

/// Heartbeats for a supervisor that waits without a child (a sensor between pokes).
pub(super) struct Beat<'a> {
    sv: &'a Supervisors,
    every: Duration,
    last_beat: Instant,
    last_ok: Instant,
}

impl<'a> Beat<'a> {
    pub(super) fn new(sv: &'a Supervisors) -> Beat<'a> {
        Beat {
            sv,
            every: sv.beat_every(),
            last_beat: Instant::now(),
            last_ok: Instant::now(),
        }
    }

    /// Looks at the stop flag, and heartbeats when one is due.
    pub(super) fn tick(&mut self, client: &Client, ti_id: &str) -> BeatSays {
        if self.sv.stopping() {
            return BeatSays::Shutdown;
        }
        if self.last_beat.elapsed() < self.every {
            return BeatSays::Go;
        }
        self.last_beat = Instant::now();
        match client.heartbeat(ti_id, self.sv.pid, &self.sv.hostname) {
            Ok(true) => {
                self.last_ok = Instant::now();
                BeatSays::Go
            }
            Ok(false) => BeatSays::NotOurs,
            Err(e) => {
                log::warn!("heartbeat failed: {e}");
                if self.last_ok.elapsed().as_secs_f64() > self.sv.heartbeat_timeout {
                    BeatSays::ApiGone
                } else {
                    BeatSays::Go
                }
            }
        }
    }
}

/// The template context of this try, from the run context the API returned.
fn template_context(ctx: &Value, try_number: u32, clock: &Clock) -> template::Context {
    let run = &ctx["dag_run"];
    let s = |v: &Value| v.as_str().unwrap_or("").to_string();
    let time = |v: &Value| {
        v.as_str()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc))
    };
    // `triggering_asset_events`: the events the run consumed, by their asset's URI
    // (Airflow keys them by the asset; in a template the URI stands for it).
    let mut triggering = serde_json::Map::new();
    for event in run["consumed_asset_events"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let uri = s(&event["asset"]["uri"]);
        if let Value::Array(list) = triggering
            .entry(uri)
            .or_insert_with(|| Value::Array(Vec::new()))
        {
            list.push(event.clone());
        }
    }
    let mut extra = serde_json::Map::new();
    extra.insert(
        "triggering_asset_events".to_string(),
        Value::Object(triggering),
    );
    template::Context {
        extra,
        task_attrs: template::task_attrs(&ctx["task"]),
        dag_id: s(&run["dag_id"]),
        task_id: s(&ctx["task"]["task_id"]),
        run_id: s(&run["run_id"]),
        try_number,
        map_index: ctx["map_index"].as_i64().unwrap_or(-1),
        logical_date: time(&run["logical_date"]),
        data_interval_start: time(&run["data_interval_start"]),
        data_interval_end: time(&run["data_interval_end"]),
        run_after: time(&run["run_after"]).unwrap_or_else(|| clock.now()),
        conf: run["conf"].clone(),
        params: template::params_with_conf(&ctx["params"], &run["conf"]),
        run_type: s(&run["run_type"]),
        owner: s(&ctx["task"]["owner"]),
        clock: clock.clone(),
    }
}

/// Renders `map_index_template` (Airflow's `_render_map_index`): the text, or why not.
fn render_map_index(
    template: &str,
    tctx: &template::Context,
    lookup: &ApiLookup,
) -> Result<String, String> {
    let deadline = Instant::now().checked_add(MAP_INDEX_RENDER_LIMIT);
    let mut go_on = || std::ops::ControlFlow::Continue(());
    match template::render_within(template, tctx, lookup, deadline, &mut go_on) {
        Ok(text) => Ok(text),
        Err(RenderError::Template(e)) => Err(e.to_string()),
        Err(_) => Err(format!(
            "it took more than {} s to render and was stopped",
            MAP_INDEX_RENDER_LIMIT.as_secs()
        )),
    }
}

/// Records a rendered map index as the instance's `rendered_map_index`, unless it is
/// empty or the same as `previous` (what was recorded already), as Airflow's Task SDK.
fn record_map_index(
    client: &Client,
    ti_id: &str,
    text: &str,
    previous: Option<&String>,
    log: &mut TaskLog,
) {
    if text.is_empty() || previous.is_some_and(|p| p == text) {
        return;
    }
    if let Err(e) = client.rendered_map_index(ti_id, text) {
        log.line(&format!("could not record the rendered map index: {e}"));
    }
}

/// Template look-ups answered by the Execution API.
struct ApiLookup<'a> {
    client: &'a Client,
    dag_id: &'a str,
    run_id: &'a str,
}

impl template::Lookup for ApiLookup<'_> {
    fn variable(&self, key: &str) -> std::result::Result<Option<String>, String> {
        self.client.variable(key).map_err(|e| e.to_string())
    }
    fn connection(&self, conn_id: &str) -> std::result::Result<Option<Value>, String> {
        self.client.connection(conn_id).map_err(|e| e.to_string())
    }
    /// As Airflow 3's `xcom_pull` without `map_indexes`: every map index's value; one
    /// value (a task that is not mapped, or mapped once) as itself, several (a mapped
    /// task's results) as a list in map index order, none as None.
    fn xcom_pull(&self, task_id: &str, key: &str) -> std::result::Result<Option<Value>, String> {
        let mut all = self
            .client
            .xcom_all(self.dag_id, self.run_id, task_id, key)
            .map_err(|e| e.to_string())?;
        Ok(match all.len() {
            0 => None,
            1 => all.pop(),
            _ => Some(Value::Array(all)),
        })
    }
}

/// Copies the task's stdout into its log as it comes; the receiver gets the last
/// non-empty line once the output ends.
fn copy_stdout(
    threads: &Arc<Threads>,
    reader: std::io::PipeReader,
    mut log: std::fs::File,
) -> Result<crossbeam_channel::Receiver<Option<String>>> {
    let (tx, rx) = crossbeam_channel::bounded(1);
    threads
        .run("task output", move || {
            let mut last = None;
            let mut reader = std::io::BufReader::new(reader);
            let mut line = Vec::new();
            loop {
                line.clear();
                match std::io::BufRead::read_until(&mut reader, b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let _ = log.write_all(&line);
                        let text = String::from_utf8_lossy(&line);
                        let text = text.trim_end();
                        if !text.trim().is_empty() {
                            last = Some(text.to_string());
                        }
                    }
                }
            }
            let _ = tx.send(last);
        })
        .map_err(|e| {
            Error::Failed(format!(
                "cannot start a thread to read the task's output: {e}"
            ))
        })?;
    Ok(rx)
}

/// The try's log file; supervisor lines carry a UTC time stamp.
pub(super) struct TaskLog {
    file: std::fs::File,
    clock: Clock,
}

impl TaskLog {
    fn open(path: &Path, clock: Clock) -> Result<TaskLog> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        Ok(TaskLog { file, clock })
    }

    pub(super) fn file(&self) -> Result<std::fs::File> {
        self.file
            .try_clone()
            .map_err(|e| Error::Failed(format!("cannot share the log file: {e}")))
    }

    pub(super) fn line(&mut self, text: &str) {
        let now = self.clock.now().format("%Y-%m-%dT%H:%M:%S%.6fZ");
        let _ = writeln!(self.file, "[{now}] {{updraft}} {text}");
    }
}
