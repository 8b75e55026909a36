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

use super::client::{CallError, Client, TOKEN_VAR, URL_VAR};
use super::threads::Threads;
use crate::clock::Clock;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::process::{self, Shell, Spec};
use crate::task_log::log_path_at;
use crate::template::{self, RenderError};

/// The variable that names the task instance in its task's environment, so a task tree
/// left behind by a killed executor can be found and stopped (see `kill_orphans`).
pub const TI_VAR: &str = "UPDRAFT_TI_ID";

/// Airflow's BashOperator `skip_on_exit_code` default.
const SKIP_EXIT_CODE: i32 = 99;
/// How often the stop flag and the child are looked at.
const TICK: Duration = Duration::from_millis(50);
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

/// What every supervisor of one executor shares: settings read once, one HTTP agent
/// (so the calls of all tasks reuse kept-alive connections), the stop flag.
pub struct Supervisors {
    agent: ureq::Agent,
    api_url: String,
    home: PathBuf,
    base_log_folder: PathBuf,
    heartbeat_timeout: f64,
    shell: Shell,
    /// PATH for tasks: this binary's folder first, so `updraft tasks xcom push` and
    /// friends work inside a task.
    task_path: Option<OsString>,
    unixname: String,
    hostname: String,
    pid: u32,
    /// Where the time a try reports (its start, its end, its log lines) is read.
    clock: Clock,
    /// Set when the executor shuts down: running tasks stop and are reported for retry.
    pub stop: AtomicBool,
    /// The threads supervisors and their output readers run on.
    pub threads: Arc<Threads>,
}

impl Supervisors {
    pub fn new(cfg: &Config, api_url: &str, clock: Clock) -> Supervisors {
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
            agent: super::client::agent(),
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
            stop: AtomicBool::new(false),
            threads: Threads::new(),
        }
    }

    fn stopping(&self) -> bool {
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
    let client = Client::with_agent(sv.agent.clone(), &sv.api_url, token);
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
    let finish = |log: &mut TaskLog, state: &str, rendered: Option<&str>| -> Outcome {
        log.line(&format!("final state: {state}"));
        match client.finish(ti_id, state, sv.clock.now(), rendered) {
            Ok(()) => Outcome::Reported,
            Err(e) => {
                log.line(&format!("could not report the state: {e}"));
                Outcome::Unreported
            }
        }
    };

    if task["operator"] != "BashOperator" {
        return Ok(finish(&mut log, "success", None));
    }
    let lookup = ApiLookup {
        client: &client,
        dag_id: &dag_id,
        run_id: &run_id,
    };
    let tctx = template_context(&ctx, try_number, &sv.clock);
    // An expanded value of a mapped task may be of any type; Airflow's BashOperator
    // fails on what it cannot run.
    for (key, ok) in [
        ("bash_command", task["bash_command"].is_string()),
        ("env", task["env"].is_object() || task["env"].is_null()),
        ("cwd", task["cwd"].is_string() || task["cwd"].is_null()),
        ("append_env", task["append_env"].is_boolean()),
    ] {
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
    if let Some(template) = task["map_index_template"].as_str() {
        render_map_index(&client, ti_id, template, &tctx, &lookup, &mut log);
    }
    // execution_timeout covers the render too: its clock starts here, and the command
    // gets what the render left of it.
    let clock = Instant::now();
    let timeout = task["execution_timeout"]
        .as_f64()
        .map(Duration::from_secs_f64);
    let beat = Duration::from_secs_f64(sv.heartbeat_timeout / 3.0).clamp(TICK, MAX_HEARTBEAT);
    let mut render_beat = RenderBeat {
        every: beat,
        last_beat: Instant::now(),
        last_ok: Instant::now(),
        stopped: None,
    };
    let rendered = template::render_within(
        task["bash_command"].as_str().unwrap_or(""),
        &tctx,
        &lookup,
        timeout.and_then(|t| clock.checked_add(t)),
        &mut || render_beat.tick(sv, &client, ti_id),
    );
    let rendered = match rendered {
        Ok(r) => r,
        Err(RenderError::Template(e)) => {
            log.line(&format!("cannot render bash_command: {e}"));
            return Ok(finish(&mut log, fail_state, None));
        }
        Err(RenderError::Timeout) => {
            log.line(&format!(
                "execution_timeout of {:.3} s reached while rendering bash_command: the render was stopped",
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
    log.line(&format!(
        "running with {}: {rendered}",
        sv.shell.describe_for(&rendered)
    ));

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
    let (reader, writer) =
        std::io::pipe().map_err(|e| Error::Failed(format!("cannot make a pipe: {e}")))?;
    let spec = Spec {
        shell: sv.shell.clone(),
        script: rendered.clone(),
        env,
        inherit_env,
        cwd,
        log: log.file()?,
        stdout: Some(writer),
    };
    let started = Instant::now();
    let mut child = match process::spawn(spec) {
        Ok(c) => c,
        Err(e) => {
            log.line(&format!("cannot start the command: {e}"));
            return Ok(finish(&mut log, fail_state, Some(&rendered)));
        }
    };
    log.line(&format!("started pid {}", child.pid()));
    let copier = copy_stdout(&sv.threads, reader, log.file()?)?;

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
            return Ok(finish(&mut log, "up_for_retry", Some(&rendered)));
        }
        if timeout.is_some_and(|t| clock.elapsed() >= t) {
            let _ = child.kill_tree(KILL_GRACE);
            log.line(&format!(
                "execution_timeout of {:.3} s reached: the task and its children were killed",
                timeout.unwrap_or_default().as_secs_f64()
            ));
            return Ok(finish(&mut log, fail_state, Some(&rendered)));
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
    let last = copier.recv().unwrap_or_default();
    log.line(&format!(
        "command exited with {exit} after {:.3} s",
        started.elapsed().as_secs_f64()
    ));
    let state = match exit.code() {
        0 => "success",
        SKIP_EXIT_CODE => "skipped",
        _ => fail_state,
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
        )
    {
        log.line(&format!("could not push the return_value XCom: {e}"));
    }
    Ok(finish(&mut log, state, Some(&rendered)))
}

/// Heartbeats while `bash_command` renders, as the loop does while the command runs, so a
/// long render (slow look-ups, a big template) is never taken for a zombie; and stops the
/// render when the try is no longer this supervisor's to run.
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

/// The template context of this try, from the run context the API returned.
fn template_context(ctx: &Value, try_number: u32, clock: &Clock) -> template::Context {
    let run = &ctx["dag_run"];
    let s = |v: &Value| v.as_str().unwrap_or("").to_string();
    let time = |v: &Value| {
        v.as_str()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc))
    };
    template::Context {
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

/// Renders `map_index_template` and records it as the instance's `rendered_map_index`
/// (Airflow's Task SDK does it before it runs the task; a template that fails is
/// logged, and the task runs on, as there).
fn render_map_index(
    client: &Client,
    ti_id: &str,
    template: &str,
    tctx: &template::Context,
    lookup: &ApiLookup,
    log: &mut TaskLog,
) {
    let deadline = Instant::now().checked_add(MAP_INDEX_RENDER_LIMIT);
    let mut go_on = || std::ops::ControlFlow::Continue(());
    match template::render_within(template, tctx, lookup, deadline, &mut go_on) {
        Ok(text) if text.is_empty() => {}
        Ok(text) => {
            if let Err(e) = client.rendered_map_index(ti_id, &text) {
                log.line(&format!("could not record the rendered map index: {e}"));
            }
        }
        Err(RenderError::Template(e)) => {
            log.line(&format!("cannot render map_index_template: {e}"))
        }
        Err(_) => log.line(&format!(
            "map_index_template took more than {} s to render: it was stopped",
            MAP_INDEX_RENDER_LIMIT.as_secs()
        )),
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
struct TaskLog {
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

    fn file(&self) -> Result<std::fs::File> {
        self.file
            .try_clone()
            .map_err(|e| Error::Failed(format!("cannot share the log file: {e}")))
    }

    fn line(&mut self, text: &str) {
        let now = self.clock.now().format("%Y-%m-%dT%H:%M:%S%.6fZ");
        let _ = writeln!(self.file, "[{now}] {{updraft}} {text}");
    }
}
