//! The task supervisor (`updraft tasks run --ti-id ID`): runs one try of one task and
//! reports it, reaching state only through the Execution API, never the database.
//!
//! Its life: claim the task instance (`run`; 409 means another process owns it), render
//! the command, start it in its own process group (job object on Windows), heartbeat
//! while it runs (a 409 means the task was cleared or changed elsewhere: kill it), stop
//! it at `execution_timeout`, push the last line of its output as the `return_value`
//! XCom, and report the final state. Its stdin is a lifeline to the executor: end of
//! file means the executor is gone, so it stops the task and reports it for retry.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::TASK_PID_LINE;
use super::client::{CallError, Client, TOKEN_VAR, URL_VAR};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::process::{self, Spec};
use crate::template;

/// Exit codes: the executor treats anything but 0 as "did not report".
pub const EXIT_REPORTED: u8 = 0;
pub const EXIT_NOT_OURS: u8 = 3;
pub const EXIT_UNREPORTED: u8 = 4;

/// Airflow's BashOperator `skip_on_exit_code` default.
const SKIP_EXIT_CODE: i32 = 99;
/// How often the lifeline and the child are looked at.
const TICK: Duration = Duration::from_millis(50);
/// The longest wait between heartbeats (Airflow's `min_heartbeat_interval`).
const MAX_HEARTBEAT: Duration = Duration::from_secs(5);
/// How long a killed task gets to stop before it is killed hard.
const KILL_GRACE: Duration = Duration::from_secs(5);

/// The log file of one try: `{base}/dag_id=D/run_id=R/task_id=T/attempt=N.log`, as
/// Airflow lays it out. On Windows, characters it forbids in file names (`:` in run
/// ids) become `_`.
pub fn log_path(
    base: &Path,
    dag_id: &str,
    run_id: &str,
    task_id: &str,
    try_number: u32,
) -> PathBuf {
    let clean = |s: &str| -> String {
        if cfg!(windows) {
            s.chars()
                .map(|c| if "<>:\"|?*\\/".contains(c) { '_' } else { c })
                .collect()
        } else {
            s.replace('/', "_")
        }
    };
    base.join(format!("dag_id={}", clean(dag_id)))
        .join(format!("run_id={}", clean(run_id)))
        .join(format!("task_id={}", clean(task_id)))
        .join(format!("attempt={try_number}.log"))
}

/// Runs one try. Returns the process exit code.
pub fn supervise(cfg: &Config, ti_id: &str, vars: &[(String, String)]) -> Result<u8> {
    let client = Client::from_env(vars).ok_or_else(|| {
        Error::Usage(format!(
            "'tasks run' is started by updraft's executor; it needs {URL_VAR} and {TOKEN_VAR}"
        ))
    })?;
    let hostname = crate::hostname();
    let pid = std::process::id();
    let unixname = ["USER", "USERNAME"]
        .iter()
        .find_map(|k| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()))
        .unwrap_or_default();
    let ctx = match client.run(ti_id, pid, &hostname, &unixname) {
        Ok(ctx) => ctx,
        Err(CallError::Status(409, body)) => {
            log::warn!("task instance {ti_id} is not ours to run: {body}");
            return Ok(EXIT_NOT_OURS);
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
    let path = log_path(
        &cfg.logging.base_log_folder,
        &dag_id,
        &run_id,
        &task_id,
        try_number,
    );
    let mut log = TaskLog::open(&path)?;
    log.line(&format!(
        "updraft supervisor: dag_id={dag_id} run_id={run_id} task_id={task_id} try {try_number} of {} (pid {pid} on {hostname})",
        ctx["max_tries"].as_u64().unwrap_or(0) + 1
    ));

    let fail_state = if should_retry {
        "up_for_retry"
    } else {
        "failed"
    };
    let finish = |log: &mut TaskLog, state: &str, rendered: Option<&str>| -> u8 {
        log.line(&format!("final state: {state}"));
        match client.finish(ti_id, state, Utc::now(), rendered) {
            Ok(()) => EXIT_REPORTED,
            Err(e) => {
                log.line(&format!("could not report the state: {e}"));
                EXIT_UNREPORTED
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
    let tctx = template_context(&ctx, try_number);
    let rendered =
        match template::render(task["bash_command"].as_str().unwrap_or(""), &tctx, &lookup) {
            Ok(r) => r,
            Err(e) => {
                log.line(&format!("cannot render bash_command: {e}"));
                return Ok(finish(&mut log, fail_state, None));
            }
        };
    let shell = process::find_shell(
        vars.iter()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| std::ffi::OsStr::new(v.as_str())),
    );
    log.line(&format!("running with {}: {rendered}", shell.describe()));

    let mut env: Vec<(String, String)> = vec![
        ("AIRFLOW_CTX_DAG_ID".into(), dag_id.clone()),
        ("AIRFLOW_CTX_TASK_ID".into(), task_id.clone()),
        ("AIRFLOW_CTX_RUN_ID".into(), run_id.clone()),
        ("AIRFLOW_CTX_TRY_NUMBER".into(), try_number.to_string()),
        ("AIRFLOW_CTX_LOGICAL_DATE".into(), s(&run["logical_date"])),
        ("AIRFLOW_CTX_DAG_OWNER".into(), s(&task["owner"])),
        (
            URL_VAR.into(),
            vars.iter()
                .find(|(k, _)| k == URL_VAR)
                .map(|(_, v)| v.clone())
                .unwrap_or_default(),
        ),
        (TOKEN_VAR.into(), client.token()),
    ];
    let task_env: Vec<(String, String)> = task["env"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.as_str().map_or_else(|| v.to_string(), str::to_string),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let has_env = task["env"].is_object();
    // `updraft tasks xcom push` and friends work inside a task: this binary's folder
    // goes first on its PATH.
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(PathBuf::from))
    {
        let path = vars
            .iter()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| v.as_str())
            .unwrap_or("");
        let joined = std::env::join_paths(std::iter::once(dir).chain(std::env::split_paths(path)))
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_else(|_| path.to_string());
        env.push(("PATH".into(), joined));
    }
    env.extend(task_env);
    // Airflow: a task with `env` gets only that environment unless `append_env` is set.
    let inherit_env = !has_env || task["append_env"].as_bool().unwrap_or(false);
    let cwd = task["cwd"].as_str().map(PathBuf::from);
    // stdout comes through a pipe: copied into the log line by line, its last line kept
    // for the return value. stderr goes to the log directly.
    let (reader, writer) =
        std::io::pipe().map_err(|e| Error::Failed(format!("cannot make a pipe: {e}")))?;
    let spec = Spec {
        shell,
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
    let copier = copy_stdout(reader, log.file()?);
    // Tell the executor which process group to clean up should this supervisor die.
    println!("{TASK_PID_LINE}{}", child.pid());
    let _ = std::io::stdout().flush();

    let lifeline = watch_lifeline();
    let timeout = task["execution_timeout"]
        .as_f64()
        .map(Duration::from_secs_f64);
    let beat = Duration::from_secs_f64(cfg.scheduler.task_instance_heartbeat_timeout / 3.0)
        .clamp(TICK, MAX_HEARTBEAT);
    let mut last_beat = Instant::now();
    let mut last_ok = Instant::now();
    let exit = loop {
        if let Some(exit) = child
            .wait_timeout(TICK)
            .map_err(|e| Error::Failed(format!("waiting for the task: {e}")))?
        {
            break exit;
        }
        if lifeline.load(Ordering::Relaxed) {
            let _ = child.kill_tree(KILL_GRACE);
            log.line("the executor went away: the task was stopped and will be retried");
            return Ok(finish(&mut log, "up_for_retry", Some(&rendered)));
        }
        if timeout.is_some_and(|t| started.elapsed() >= t) {
            let _ = child.kill_tree(KILL_GRACE);
            log.line(&format!(
                "execution_timeout of {:.3} s reached: the task and its children were killed",
                timeout.unwrap_or_default().as_secs_f64()
            ));
            return Ok(finish(&mut log, fail_state, Some(&rendered)));
        }
        if last_beat.elapsed() >= beat {
            last_beat = Instant::now();
            match client.heartbeat(ti_id, pid, &hostname) {
                Ok(true) => last_ok = Instant::now(),
                Ok(false) => {
                    let _ = child.kill_tree(KILL_GRACE);
                    log.line(
                        "the task instance was cleared or changed elsewhere: the task was stopped",
                    );
                    return Ok(EXIT_NOT_OURS);
                }
                Err(e) => {
                    log::warn!("heartbeat failed: {e}");
                    if last_ok.elapsed().as_secs_f64()
                        > cfg.scheduler.task_instance_heartbeat_timeout
                    {
                        let _ = child.kill_tree(KILL_GRACE);
                        log.line("the Execution API has not answered heartbeats for too long: the task was stopped");
                        return Ok(EXIT_UNREPORTED);
                    }
                }
            }
        }
    };
    // The tree is gone, so the pipe is closed and the copier ends.
    let last = copier.join().unwrap_or_default();
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

/// The template context of this try, from the run context the API returned.
fn template_context(ctx: &Value, try_number: u32) -> template::Context {
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
        map_index: -1,
        logical_date: time(&run["logical_date"]),
        data_interval_start: time(&run["data_interval_start"]),
        data_interval_end: time(&run["data_interval_end"]),
        run_after: time(&run["run_after"]).unwrap_or_else(Utc::now),
        conf: run["conf"].clone(),
        params: template::params_with_conf(&ctx["params"], &run["conf"]),
        run_type: s(&run["run_type"]),
        owner: s(&ctx["task"]["owner"]),
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
    fn xcom_pull(&self, task_id: &str, key: &str) -> std::result::Result<Option<Value>, String> {
        self.client
            .xcom_get(self.dag_id, self.run_id, task_id, key)
            .map_err(|e| e.to_string())
    }
}

/// Sets the flag when stdin reaches end of file (the executor is gone).
fn watch_lifeline() -> Arc<AtomicBool> {
    let gone = Arc::new(AtomicBool::new(false));
    let flag = gone.clone();
    let _ = std::thread::Builder::new()
        .name("lifeline".into())
        .spawn(move || {
            let mut buf = [0u8; 64];
            let mut stdin = std::io::stdin();
            loop {
                match stdin.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
            flag.store(true, Ordering::Relaxed);
        });
    gone
}

/// Copies the task's stdout into its log as it comes; returns the last non-empty line.
fn copy_stdout(
    reader: std::io::PipeReader,
    mut log: std::fs::File,
) -> std::thread::JoinHandle<Option<String>> {
    std::thread::spawn(move || {
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
        last
    })
}

/// The try's log file; supervisor lines carry a UTC time stamp.
struct TaskLog {
    file: std::fs::File,
}

impl TaskLog {
    fn open(path: &Path) -> Result<TaskLog> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        Ok(TaskLog { file })
    }

    fn file(&self) -> Result<std::fs::File> {
        self.file
            .try_clone()
            .map_err(|e| Error::Failed(format!("cannot share the log file: {e}")))
    }

    fn line(&mut self, text: &str) {
        let now = Utc::now().format("%Y-%m-%dT%H:%M:%S%.6fZ");
        let _ = writeln!(self.file, "[{now}] {{updraft}} {text}");
    }
}
