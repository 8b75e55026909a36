//! The long-running commands: `api-server`, `scheduler`, `standalone`, and `dags test`
//! (a scheduler and a private API server for one run, in the foreground).
//!
//! Shutdown order, whatever starts it (Ctrl-C, SIGTERM, the end of a test run): stop
//! the scheduler, which lets running tasks finish for a grace period and then has
//! them stopped and reported for retry; then stop the HTTP pool, which the tasks needed
//! until the end to report.

use std::collections::HashSet;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, bounded};

use super::{Env, emit, load_config};
use crate::api::Apps;
use crate::cli::ServerArgs;
use crate::config::{Config, Override};
use crate::error::{Error, Result};
use crate::model::TaskState;
use crate::scheduler::{self, Options};
use crate::server::{self, Control, probe};
use crate::store::Store;
use crate::task_log::log_path_at;
use crate::{home, ops, processor, signals};

/// How long in-flight HTTP requests get to finish after Ctrl-C.
const HTTP_GRACE: Duration = Duration::from_secs(10);

/// `updraft api-server`: serves until Ctrl-C (or SIGTERM).
pub fn api_server(args: ServerArgs, env: &Env) -> Result<()> {
    let apps_text = args.apps.clone().unwrap_or_else(|| "all".into());
    let apps = Apps::parse(&apps_text).ok_or_else(|| {
        Error::Usage(format!(
            "--apps takes all, core, execution or core,execution, not {apps_text:?}"
        ))
    })?;
    #[cfg(unix)]
    if let Some(me) = server::arbiter::worker_env(&env.vars) {
        // A worker process of an arbiter (below): the arbiter did the rest.
        let cfg = load_config(env, &args.overrides())?;
        crate::memory::trim_in_background()?;
        let stop = stop_signals(crossbeam_channel::unbounded().0);
        return server::arbiter::serve_as_worker(
            cfg,
            apps,
            me,
            server::dispatch,
            env.clock.clone(),
            stop,
        );
    }
    let cfg = prepare(env, &args.overrides())?;
    if apps.core {
        crate::auth::init_passwords(&cfg)?;
    }
    #[cfg(unix)]
    if cfg.api.server_type == "gunicorn" {
        let arbiter = server::arbiter::start(cfg, apps, env.clock.clone())?;
        let stop = stop_signals(arbiter.control());
        announce_at(
            &format!("updraft api-server ({apps_text}, worker processes)"),
            arbiter.addr,
            &arbiter.prefix,
        );
        let _ = stop.recv();
        arbiter.shutdown(HTTP_GRACE);
        log::info!("api-server stopped");
        return Ok(());
    }
    let running = server::start(cfg, apps, server::dispatch, env.clock.clone())?;
    let stop = stop_signals(running.control());
    announce(&format!("updraft api-server ({apps_text})"), &running);
    let _ = stop.recv();
    running.shutdown(HTTP_GRACE);
    log::info!("api-server stopped");
    Ok(())
}

/// `updraft scheduler`: the scheduler and its executor, reporting to an api-server.
pub fn scheduler(env: &Env) -> Result<()> {
    let cfg = prepare(env, &[])?;
    let url = configured_execution_url(&cfg);
    check_in_background(url.clone());
    // Nothing in this process wakes it: it watches the database instead.
    let (_wake_tx, wake_rx) = bounded(1);
    let grace = grace(&cfg);
    let opts = Options {
        api_url: url,
        in_process: None,
        connection: None,
        grace,
        until_run: None,
        metrics: Default::default(),
        clock: env.clock.clone(),
        api_wakes: false,
    };
    let sched = scheduler::start(cfg, opts, wake_rx)?;
    let (control, _unused) = crossbeam_channel::unbounded();
    let stop = stop_signals(control);
    println!("updraft scheduler running");
    started();
    let asked = wait_for_stop(&stop, &sched);
    stop_scheduler(sched, asked)
}

/// `updraft standalone`: API server, scheduler and executor in one process.
pub fn standalone(env: &Env) -> Result<()> {
    let cfg = prepare(env, &[])?;
    crate::auth::init_passwords(&cfg)?;
    processor::sync(&mut Store::open(&cfg.database.path)?, &cfg, env.clock.now())?;
    #[cfg(unix)]
    if cfg.api.server_type == "gunicorn" {
        return standalone_with_processes(cfg, env);
    }
    let (wake_tx, wake_rx) = bounded(1);
    let running = server::start_with(
        cfg.clone(),
        Apps::ALL,
        server::dispatch,
        Some(wake_tx),
        env.clock.clone(),
    )?;
    let url = running
        .ctx
        .execution_probe
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .url
        .clone();
    let grace = grace(&cfg);
    // The supervisors call the Execution API of this process without a connection;
    // their tasks get the URL.
    let opts = Options {
        api_url: url,
        in_process: Some(running.in_process()),
        connection: Some(running.connection()),
        grace,
        until_run: None,
        metrics: running.ctx.metrics.clone(),
        clock: env.clock.clone(),
        api_wakes: true,
    };
    let sched = scheduler::start(cfg, opts, wake_rx)?;
    let stop = stop_signals(running.control());
    announce("updraft standalone", &running);
    let asked = wait_for_stop(&stop, &sched);
    if asked {
        log::info!("stopping: no new tasks start; running ones get {grace:?} to finish");
    }
    let result = stop_scheduler(sched, asked);
    running.shutdown(HTTP_GRACE);
    log::info!("standalone stopped");
    result
}

/// `updraft standalone` with `[api] server_type = gunicorn`: this process is the
/// arbiter of the API's worker processes and runs the scheduler, once, itself; the
/// workers serve HTTP only. Tasks finishing wake nothing across processes: the
/// scheduler sees them in the database on its next loop, as a separate `updraft
/// scheduler` does, and its metrics stay in this process (not in a worker's /metrics).
#[cfg(unix)]
fn standalone_with_processes(cfg: Config, env: &Env) -> Result<()> {
    let arbiter = server::arbiter::start(cfg.clone(), Apps::ALL, env.clock.clone())?;
    let url = probe::execution_url(&cfg, arbiter.addr);
    let grace = grace(&cfg);
    // The API is served by other processes: HTTP it is.
    let opts = Options {
        api_url: url,
        in_process: None,
        connection: None,
        grace,
        until_run: None,
        metrics: Default::default(),
        clock: env.clock.clone(),
        api_wakes: false,
    };
    // Nothing in this process wakes it: it watches the database instead.
    let (_wake_tx, wake_rx) = bounded(1);
    let sched = match scheduler::start(cfg, opts, wake_rx) {
        Ok(s) => s,
        Err(e) => {
            arbiter.shutdown(HTTP_GRACE);
            return Err(e);
        }
    };
    let stop = stop_signals(arbiter.control());
    announce_at(
        "updraft standalone (worker processes)",
        arbiter.addr,
        &arbiter.prefix,
    );
    let asked = wait_for_stop(&stop, &sched);
    if asked {
        log::info!("stopping: no new tasks start; running ones get {grace:?} to finish");
    }
    let result = stop_scheduler(sched, asked);
    arbiter.shutdown(HTTP_GRACE);
    log::info!("standalone stopped");
    result
}

/// Waits for Ctrl-C (or SIGTERM), or for the scheduler thread to end by itself, which
/// only a failure does; true for a stop that was asked for.
///
/// A process whose scheduler died must not go on answering the API as if all were
/// well (health would report a live standby's heartbeat, and nothing would run): it
/// stops, exits 1 and says why, so a service manager restarts it and a user sees it.
/// Restarting the loop in-process was rejected: a failure that repeats would loop
/// silently, and the process's exit is what every supervisor of services watches.
fn wait_for_stop(stop: &Receiver<()>, sched: &scheduler::Handle) -> bool {
    crossbeam_channel::select! {
        recv(stop) -> _ => true,
        recv(sched.ended()) -> _ => {
            log::error!("the scheduler thread ended by itself; stopping the process");
            false
        }
    }
}

/// Stops the scheduler and waits for it. One that ended without being `asked` is a
/// failure even if its loop returned cleanly.
fn stop_scheduler(sched: scheduler::Handle, asked: bool) -> Result<()> {
    let result = sched.stop();
    if asked {
        return result;
    }
    let why = match result {
        Err(e) => e.to_string(),
        Ok(()) => "the scheduler ended without being asked to".into(),
    };
    Err(Error::Failed(format!(
        "{why}; updraft stopped because its scheduler did"
    )))
}

/// `updraft dags test DAG_ID [DATE]`: one run, in the foreground, its task logs on
/// stdout; the exit code is the run's result. A private API server on a free loopback
/// port serves the run's tasks, so nothing else needs to be running.
pub fn dags_test(env: &Env, dag_id: &str, logical_date: Option<&str>) -> Result<()> {
    let cfg = prepare_private(env, "dags test")?;
    let mut store = Store::open(&cfg.database.path)?;
    processor::sync(&mut store, &cfg, env.clock.now())?;
    let logical_date = logical_date.map(super::tasks::parse_date).transpose()?;
    let now = env.clock.now();
    let run = ops::trigger(
        &mut store,
        dag_id,
        ops::Trigger {
            logical_date: logical_date.or(Some(now)),
            triggered_by: "test",
            ..Default::default()
        },
        now,
    )?;
    let (wake_tx, wake_rx) = bounded(1);
    let running = server::start_with(
        cfg.clone(),
        Apps {
            core: false,
            execution: true,
        },
        server::dispatch,
        Some(wake_tx),
        env.clock.clone(),
    )?;
    let url = format!("http://{}/execution/", running.addr);
    let until = Some((dag_id.to_string(), run.run_id.clone()));
    let opts = Options {
        api_url: url,
        in_process: Some(running.in_process()),
        connection: Some(running.connection()),
        grace: grace(&cfg),
        until_run: until,
        metrics: Default::default(),
        clock: env.clock.clone(),
        api_wakes: true,
    };
    let sched = scheduler::start(cfg.clone(), opts, wake_rx)?;
    emit(&format!("dags test: {dag_id} run {}\n", run.run_id))?;

    // Stream each try's log as it ends.
    let mut shown = HashSet::new();
    let state = loop {
        let done = sched.is_finished();
        for ti in store.tis_of_run(dag_id, &run.run_id)? {
            let ended = ti
                .state
                .is_some_and(|s| s.is_finished() || s == TaskState::UpForRetry);
            if ended
                && ti.try_number > 0
                && shown.insert((ti.task_id.clone(), ti.map_index, ti.try_number))
            {
                let path = log_path_at(
                    &cfg.logging.base_log_folder,
                    dag_id,
                    &run.run_id,
                    &ti.task_id,
                    ti.map_index,
                    ti.try_number,
                );
                // Lossy: a task may print in any encoding, and its log must still show.
                let text = std::fs::read(&path)
                    .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
                    .unwrap_or_default();
                emit(&format!(
                    "--- {}{} (try {}): {} ---\n{text}",
                    ti.task_id,
                    match ti.map_index {
                        i if i >= 0 => format!(" map_index={i}"),
                        _ => String::new(),
                    },
                    ti.try_number,
                    ti.state.map_or("none", TaskState::as_str)
                ))?;
            }
        }
        if done {
            break store.run(dag_id, &run.run_id)?.map(|r| r.state);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let result = sched.stop();
    running.shutdown(HTTP_GRACE);
    result?;
    let state = state.map_or("unknown", |s| s.as_str());
    emit(&format!("dags test: run {} ended {state}\n", run.run_id))?;
    if state == "success" {
        Ok(())
    } else {
        Err(Error::Exit(1))
    }
}

/// `tasks test` of a Python task, as Airflow 3's `task_test`: a temporary run
/// (`__airflow_temporary_run_...`) is written, the one task runs in it through a private
/// Execution API (the runner reads variables, connections and XComs through it, as in a
/// real run), its log is printed, and the run is deleted again.
pub fn python_task_test(
    env: &Env,
    dag_id: &str,
    task_id: &str,
    logical_date: chrono::DateTime<chrono::Utc>,
) -> Result<()> {
    let cfg = prepare_private(env, "tasks test")?;
    let mut store = Store::open(&cfg.database.path)?;
    let now = env.clock.now();
    let run = ops::trigger(
        &mut store,
        dag_id,
        ops::Trigger {
            run_id: Some(format!(
                "__airflow_temporary_run_{}__",
                crate::store::ts(now)
            )),
            logical_date: Some(logical_date),
            triggered_by: "test",
            ..Default::default()
        },
        now,
    )?;
    let outcome = run_one_task(env, &cfg, &mut store, &run, task_id);
    let deleted = store.write(|tx| tx.delete_run(run.id));
    let state = outcome?;
    deleted?;
    if state == "success" {
        Ok(())
    } else {
        Err(Error::Failed(format!("the task ended {state}")))
    }
}

/// Runs `task_id` of `run` once under a private Execution API; prints its log and
/// returns its final state.
fn run_one_task(
    env: &Env,
    cfg: &Config,
    store: &mut Store,
    run: &crate::store::RunRow,
    task_id: &str,
) -> Result<String> {
    let ti = store
        .tis_of_run(&run.dag_id, &run.run_id)?
        .into_iter()
        .find(|t| t.task_id == task_id)
        .ok_or_else(|| {
            Error::NotFound(format!("Task {task_id} not found in DAG {}", run.dag_id))
        })?;
    let now = env.clock.now();
    let job_id = store.start_job("TaskTest", &crate::hostname(), std::process::id(), now)?;
    store.write(|tx| {
        tx.set_ti_state(&ti.id, ti.state, Some(TaskState::Scheduled), now, None)?;
        tx.queue_ti(&ti.id, job_id, now)
    })?;
    let ti = store
        .tis_of_run(&run.dag_id, &run.run_id)?
        .into_iter()
        .find(|t| t.id == ti.id)
        .ok_or_else(|| Error::Failed(format!("task instance {} vanished", ti.id)))?;
    let running = server::start_with(
        cfg.clone(),
        Apps {
            core: false,
            execution: true,
        },
        server::dispatch,
        None,
        env.clock.clone(),
    )?;
    let url = format!("http://{}/execution/", running.addr);
    let secret = crate::jwt::secret(&cfg.auth.jwt_secret, &cfg.home)?;
    let token = crate::auth::task::mint(
        &secret,
        &ti.id,
        ti.try_number,
        cfg.auth.execution_jwt_expiration_time,
        now,
    );
    let sv = crate::executor::supervise::Supervisors::new(
        cfg,
        &url,
        env.clock.clone(),
        Some(running.in_process()),
    );
    let outcome = crate::executor::supervise::supervise(&sv, &ti.id, &token);
    running.shutdown(HTTP_GRACE);
    let path = log_path_at(
        &cfg.logging.base_log_folder,
        &run.dag_id,
        &run.run_id,
        task_id,
        ti.map_index,
        ti.try_number,
    );
    let text = std::fs::read(&path)
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_default();
    emit(&text)?;
    let state = store
        .tis_of_run(&run.dag_id, &run.run_id)?
        .into_iter()
        .find(|t| t.id == ti.id)
        .and_then(|t| t.state)
        .map_or("none", TaskState::as_str)
        .to_string();
    log::debug!("tasks test of {task_id}: {outcome:?}, {state}");
    Ok(state)
}

/// Config, home folders, database (and its checkpoint thread), the memory trim thread:
/// what every long-running command needs first.
/// [`prepare`] for a command that serves its own tasks: a private server on a free
/// loopback port, whatever the config says (`by` names the command in `config list`).
fn prepare_private(env: &Env, by: &'static str) -> Result<Config> {
    let fixed = |section, key, value: &str| Override {
        section,
        key,
        value: value.to_string(),
        by,
    };
    prepare(
        env,
        &[
            fixed("api", "host", "127.0.0.1"),
            fixed("api", "port", "0"),
            fixed("api", "base_url", ""),
            fixed("core", "execution_api_server_url", ""),
        ],
    )
}

fn prepare(env: &Env, flags: &[Override]) -> Result<Config> {
    let cfg = load_config(env, flags)?;
    home::ensure_folders(&cfg)?;
    Store::open(&cfg.database.path)?.checkpoint_in_background()?;
    crate::memory::trim_in_background()?;
    Ok(cfg)
}

/// How long running tasks get after a stop before they are stopped for retry.
fn grace(cfg: &Config) -> Duration {
    Duration::from_secs_f64(cfg.core.killed_task_cleanup_time)
}

/// Where tasks reach the Execution API when this process does not serve it.
fn configured_execution_url(cfg: &Config) -> String {
    let addr = format!("{}:{}", cfg.api.host, cfg.api.port)
        .parse()
        .unwrap_or_else(|_| std::net::SocketAddr::from(([127, 0, 0, 1], cfg.api.port)));
    probe::execution_url(cfg, addr)
}

/// Checks the Execution API URL a scheduler hands out, and says plainly if it is wrong.
fn check_in_background(url: String) {
    std::thread::spawn(move || {
        for attempt in 1..=10 {
            match probe::check(&url) {
                Ok(()) => {
                    log::info!("execution API at {url} is reachable");
                    return;
                }
                Err(e) if attempt == 10 => log::error!(
                    "execution API at {url} is NOT reachable: {e}. Tasks will not be able to report their state. \
                     Set [core] execution_api_server_url (AIRFLOW__CORE__EXECUTION_API_SERVER_URL) to the URL of a \
                     server running --apps execution"
                ),
                Err(_) => std::thread::sleep(Duration::from_secs(1)),
            }
        }
    });
}

/// Ctrl-C (everywhere) and SIGTERM (Unix) arrive on the returned channel; the pool's
/// own signals (Unix) go to `control`.
fn stop_signals(control: Sender<Control>) -> Receiver<()> {
    let (tx, rx) = bounded(1);
    let on_ctrl_c = tx.clone();
    if let Err(e) = ctrlc::set_handler(move || {
        let _ = on_ctrl_c.try_send(());
    }) {
        log::warn!("cannot install the Ctrl-C handler: {e}");
    }
    signals::forward(control, tx);
    rx
}

/// Prints the URL. Printed last: whoever waits for this line may signal us at once.
fn announce(what: &str, running: &server::Running) {
    announce_at(what, running.addr, &running.ctx.prefix);
}

fn announce_at(what: &str, addr: std::net::SocketAddr, prefix: &str) {
    let url = format!("http://{addr}{prefix}/");
    log::info!("{what} listening on {url}");
    println!("{what} listening on {url}");
    started();
}

/// Start-up is over: what it freed (a new database's migration, the DAG folder's parse)
/// goes back to the system now, not at the first periodic trim.
fn started() {
    crate::memory::release_free();
}
