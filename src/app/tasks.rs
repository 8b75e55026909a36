//! The short commands about runs, tasks and their data: trigger, pause, state, clear,
//! states-for-dag-run, xcom, variables, connections, jobs check, tasks test.
//!
//! Inside a running task (its environment carries the Execution API URL and token),
//! the data commands go through the Execution API like the supervisor does; elsewhere
//! they use the database.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde_json::{Value, json};

use super::{Env, emit, live_dag, pretty, print_rows, synced_store};
use crate::cli::{BackfillArgs, Command, ConnectionArgs, Output};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::executor::client::Client;
use crate::model::TaskState;
use crate::store::{Connection, RunRow, Store, ts};
use crate::{ops, process, template};

pub fn run(cmd: Command, cfg: &Config, env: &Env) -> Result<()> {
    let now = env.clock.now();
    let user = env_var(env, "USER").or_else(|| env_var(env, "USERNAME"));
    match cmd {
        Command::DagsTrigger {
            dag_id,
            conf,
            run_id,
            logical_date,
            output,
        } => {
            let mut store = synced_store(cfg, &env.clock)?;
            let conf = conf
                .map(|c| {
                    serde_json::from_str::<Value>(&c)
                        .map_err(|e| Error::Usage(format!("--conf is not JSON: {e}")))
                })
                .transpose()?;
            let t = ops::Trigger {
                run_id,
                logical_date: logical_date.as_deref().map(parse_date).transpose()?,
                conf,
                triggered_by: "cli",
                user,
                ..Default::default()
            };
            let run = ops::trigger(&mut store, &dag_id, t, now)?;
            match output {
                Output::Json => emit(&format!("{}\n", Value::Array(vec![run_json(&run)]))),
                _ => emit(&format!("{}\n", run.run_id)),
            }
        }
        Command::BackfillCreate(a) => backfill_create(cfg, env, a, user, now),
        Command::DagsPause { dag_id, paused } => {
            let mut store = synced_store(cfg, &env.clock)?;
            ops::set_paused(&mut store, &dag_id, paused, user.as_deref(), now)?;
            emit(&format!(
                "Dag: {dag_id}, paused: {}\n",
                if paused { "True" } else { "False" }
            ))
        }
        Command::DagsState { dag_id, run_id } => {
            let store = Store::open(&cfg.database.path)?;
            let run = store.run(&dag_id, &run_id)?.ok_or_else(|| {
                Error::NotFound(format!(
                    "DagRun with dag_id {dag_id:?} and run_id {run_id:?} not found"
                ))
            })?;
            let has_conf = run.conf.as_object().is_some_and(|m| !m.is_empty());
            emit(&if has_conf {
                format!("{}, {}\n", run.state, run.conf)
            } else {
                format!("{}\n", run.state)
            })
        }
        Command::TasksClear {
            dag_id,
            task_regex,
            only_failed,
        } => {
            let mut store = synced_store(cfg, &env.clock)?;
            let n = ops::clear(
                &mut store,
                &dag_id,
                None,
                task_regex.as_deref(),
                only_failed,
                now,
            )?;
            emit(&format!("Cleared {n} task instance(s)\n"))
        }
        Command::TasksStatesForDagRun {
            dag_id,
            run_id,
            output,
        } => {
            let store = Store::open(&cfg.database.path)?;
            let run = store.run(&dag_id, &run_id)?.ok_or_else(|| {
                Error::NotFound(format!("DagRun {run_id:?} of {dag_id:?} not found"))
            })?;
            let tis = store.tis_of_run(&dag_id, &run_id)?;
            // A `map_index` column when the run has mapped instances, as in Airflow.
            let mapped = tis.iter().any(|ti| ti.map_index >= 0);
            let rows: Vec<Value> = tis
                .iter()
                .map(|ti| {
                    let mut row = json!({
                        "dag_id": ti.dag_id,
                        "logical_date": run.logical_date.map(ts).unwrap_or_default(),
                        "task_id": ti.task_id,
                        "state": ti.state.map_or("", TaskState::as_str),
                        "try_number": ti.try_number,
                        "start_date": ti.start_date.map(ts).unwrap_or_default(),
                        "end_date": ti.end_date.map(ts).unwrap_or_default(),
                    });
                    if mapped {
                        row["map_index"] = match ti.map_index {
                            i if i >= 0 => json!(i.to_string()),
                            _ => json!(""),
                        };
                    }
                    row
                })
                .collect();
            print_rows(&rows, output)
        }
        Command::TasksTest {
            dag_id,
            task_id,
            logical_date,
            map_index,
        } => tasks_test(
            cfg,
            env,
            &dag_id,
            &task_id,
            logical_date.as_deref(),
            map_index,
        ),
        Command::TasksXcomPush { key, value } => {
            let (client, dag_id, run_id, task_id) = in_task(env)?;
            // A value that parses as JSON is stored as that JSON, else as a string.
            let v = serde_json::from_str(&value).unwrap_or(Value::String(value));
            client
                .xcom_set(&dag_id, &run_id, &task_id, &key, &v, None)
                .map_err(|e| Error::Failed(e.to_string()))
        }
        Command::TasksXcomPull { task_id, key } => {
            let (client, dag_id, run_id, _) = in_task(env)?;
            match client
                .xcom_get(&dag_id, &run_id, &task_id, &key)
                .map_err(|e| Error::Failed(e.to_string()))?
            {
                Some(Value::String(s)) => emit(&format!("{s}\n")),
                Some(v) => emit(&format!("{v}\n")),
                None => Err(Error::NotFound(format!(
                    "no XCom {key:?} from task {task_id:?} in this run"
                ))),
            }
        }
        Command::VariablesGet { key } => {
            let value = match Client::from_env(&env.vars) {
                Some(client) => client
                    .variable(&key)
                    .map_err(|e| Error::Failed(e.to_string()))?,
                None => Store::open(&cfg.database.path)?
                    .variable(&key)?
                    .map(|v| v.val),
            };
            match value {
                Some(v) => emit(&format!("{v}\n")),
                None => Err(Error::NotFound(format!("Variable {key} does not exist"))),
            }
        }
        Command::VariablesSet { key, value } => {
            Store::open(&cfg.database.path)?.set_variable(&key, &value, None)?;
            emit(&format!("Variable {key} created\n"))
        }
        Command::ConnectionsGet { conn_id } => {
            let conn = match Client::from_env(&env.vars) {
                Some(client) => client
                    .connection(&conn_id)
                    .map_err(|e| Error::Failed(e.to_string()))?,
                None => Store::open(&cfg.database.path)?
                    .connection(&conn_id)?
                    .map(|c| c.to_json()),
            };
            match conn {
                Some(c) => emit(&pretty(&c)),
                None => Err(Error::NotFound(format!(
                    "Connection {conn_id} does not exist"
                ))),
            }
        }
        Command::ConnectionsAdd(a) => add_connection(cfg, a),
        Command::JobsCheck {
            job_type,
            local,
            limit,
            allow_multiple,
        } => {
            let store = Store::open(&cfg.database.path)?;
            let threshold = chrono::Duration::milliseconds(
                (cfg.scheduler.health_check_threshold * 1000.0) as i64,
            );
            let host = local.then(crate::hostname);
            let mut jobs = store.alive_jobs(&job_type, now - threshold, host.as_deref())?;
            if limit > 0 {
                jobs.truncate(limit);
            }
            match jobs.len() {
                0 => Err(Error::Failed("No alive jobs found.".into())),
                1 => emit("Found one alive job.\n"),
                n if allow_multiple => emit(&format!("Found {n} alive jobs.\n")),
                n => Err(Error::Failed(format!(
                    "Found {n} alive jobs. Expected only one."
                ))),
            }
        }
        other => unreachable!("not a task command: {other:?}"),
    }
}

fn env_var(env: &Env, name: &str) -> Option<String> {
    env.vars
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
}

/// The Execution API client and this task's ids, for commands run inside a task.
fn in_task(env: &Env) -> Result<(Client, String, String, String)> {
    let client = Client::from_env(&env.vars)
        .ok_or_else(|| Error::Usage("this command works inside a running task only".into()))?;
    let get = |k: &str| {
        env_var(env, k)
            .ok_or_else(|| Error::Usage(format!("{k} is not set; run this inside a task")))
    };
    Ok((
        client,
        get("AIRFLOW_CTX_DAG_ID")?,
        get("AIRFLOW_CTX_RUN_ID")?,
        get("AIRFLOW_CTX_TASK_ID")?,
    ))
}

fn add_connection(cfg: &Config, a: ConnectionArgs) -> Result<()> {
    let port = a
        .port
        .map(|p| {
            p.parse::<i64>()
                .map_err(|_| Error::Usage(format!("--conn-port takes a number, not {p:?}")))
        })
        .transpose()?;
    if let Some(extra) = &a.extra {
        serde_json::from_str::<Value>(extra)
            .map_err(|e| Error::Usage(format!("--conn-extra is not JSON: {e}")))?;
    }
    let mut store = Store::open(&cfg.database.path)?;
    let added = store.add_connection(&Connection {
        conn_id: a.conn_id.clone(),
        conn_type: a.conn_type,
        description: a.description,
        host: a.host,
        schema: a.schema,
        login: a.login,
        password: a.password,
        port,
        extra: a.extra,
    })?;
    if !added {
        return Err(Error::Conflict(format!(
            "A connection with `conn_id`={} already exists.",
            a.conn_id
        )));
    }
    emit(&format!("Successfully added `conn_id`={}\n", a.conn_id))
}

/// `tasks test`: renders and runs one task's command here, output to this terminal,
/// nothing recorded. Template look-ups read the database.
fn tasks_test(
    cfg: &Config,
    env: &Env,
    dag_id: &str,
    task_id: &str,
    date: Option<&str>,
    map_index: i64,
) -> Result<()> {
    let store = synced_store(cfg, &env.clock)?;
    let row = live_dag(&store, dag_id)?;
    let task = row
        .dag
        .task(task_id)
        .ok_or_else(|| Error::NotFound(format!("Task {task_id} not found in DAG {dag_id}")))?;
    // A task expanded over an upstream's result takes its values from the run named by
    // its run id or logical date, as Airflow's `tasks test` runs in the existing run.
    let run = match (&task.mapped, date) {
        (Some(m), Some(d)) if m.length().is_none() => match store.run(dag_id, d)? {
            Some(run) => Some(run),
            None => store.run_at(dag_id, parse_date(d)?)?,
        },
        _ => None,
    };
    let resolved;
    let task = match (&task.mapped, &run) {
        (Some(m), _) if m.length().is_some() || map_index < 0 => task,
        (Some(m), Some(run)) => {
            let m = m
                .resolved(|u| {
                    let pushed = store
                        .xcom_values(dag_id, &run.run_id, u, "return_value")
                        .ok()?;
                    crate::model::mappable_values(&pushed)
                })
                .ok_or_else(|| {
                    Error::Usage(format!(
                        "{task_id} is expanded over an upstream's result, which run {} has not pushed",
                        run.run_id
                    ))
                })?;
            resolved = crate::model::Task {
                mapped: Some(Box::new(m)),
                ..task.clone()
            };
            &resolved
        }
        (Some(_), None) => {
            return Err(Error::Usage(format!(
                "{task_id} is expanded over an upstream's result: name a run that has it (its run id or logical date)"
            )));
        }
        (None, _) => task,
    };
    let task = &task.instance(map_index).map_err(Error::Usage)?;
    let logical_date = match &run {
        Some(r) => r.logical_date.unwrap_or(r.run_after),
        None => date
            .map(parse_date)
            .transpose()?
            .unwrap_or_else(|| env.clock.now()),
    };
    let ctx = template::Context {
        extra: serde_json::Map::new(),
        task_attrs: template::task_attrs(&json!({
            "operator": task.operator.class_name(), "bash_command": task.bash_command,
            "env": task.env.as_ref().map(|e| e.iter().map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect::<serde_json::Map<_, _>>()),
            "append_env": task.append_env, "cwd": task.cwd,
            "retries": task.retries, "map_index_template": task.map_index_template,
        })),
        dag_id: dag_id.into(),
        task_id: task_id.into(),
        run_id: run.as_ref().map_or_else(
            || format!("__airflow_temporary_run_{}__", ts(logical_date)),
            |r| r.run_id.clone(),
        ),
        try_number: 1,
        map_index,
        logical_date: Some(logical_date),
        data_interval_start: Some(logical_date),
        data_interval_end: Some(logical_date),
        run_after: logical_date,
        conf: json!({}),
        params: template::params_with_conf(&row.dag.params, &Value::Null),
        run_type: "manual".into(),
        owner: task.owner.clone(),
        clock: env.clock.clone(),
    };
    // A Python task and a native sensor run as in a real run, through a private
    // Execution API (a sensor pokes; in reschedule mode one poke ends the test).
    if task.python.is_some() || task.sensor.is_some() {
        return super::serve::python_task_test(env, dag_id, task_id, logical_date);
    }
    let Some(command) = &task.bash_command else {
        return emit(&format!(
            "{task_id} is an {} and runs nothing\n",
            task.operator.class_name()
        ));
    };
    let rendered = template::render(command, &ctx, &StoreLookup(&store)).map_err(Error::Failed)?;
    let shell = process::find_shell(&cfg.host);
    eprintln!("running with {}: {rendered}", shell.describe_for(&rendered));
    // Kept until the command ends: it holds cmd's batch file, if there is one.
    let mut shell_cmd = shell
        .command(&rendered)
        .map_err(|e| Error::Failed(format!("cannot run the command: {e}")))?;
    let cmd = &mut shell_cmd.command;
    if let Some(env) = &task.env {
        if !task.append_env {
            cmd.env_clear();
        }
        cmd.envs(env.iter().map(|(k, v)| (k, v)));
    }
    if let Some(cwd) = &task.cwd {
        cmd.current_dir(cwd);
    }
    let status = cmd
        .status()
        .map_err(|e| Error::Failed(format!("cannot run the command: {e}")))?;
    match status.code() {
        Some(0) => Ok(()),
        Some(code) => Err(Error::Failed(format!("the command exited with {code}"))),
        None => Err(Error::Failed("the command was killed".into())),
    }
}

/// Template look-ups straight from the database (for `tasks test` only).
struct StoreLookup<'a>(&'a Store);

impl template::Lookup for StoreLookup<'_> {
    fn variable(&self, key: &str) -> std::result::Result<Option<String>, String> {
        self.0
            .variable(key)
            .map(|v| v.map(|v| v.val))
            .map_err(|e| e.to_string())
    }
    fn connection(&self, conn_id: &str) -> std::result::Result<Option<Value>, String> {
        self.0
            .connection(conn_id)
            .map(|c| c.map(|c| c.to_json()))
            .map_err(|e| e.to_string())
    }
    fn xcom_pull(&self, _task_id: &str, _key: &str) -> std::result::Result<Option<Value>, String> {
        // A test run has no upstream results to read.
        Ok(None)
    }
}

/// A run as Airflow's CLI prints it.
/// `backfill create`, as Airflow's `backfill_command.create_backfill`: the dry run
/// prints the logical dates it would run; otherwise the backfill is created and said.
fn backfill_create(
    cfg: &Config,
    env: &Env,
    a: BackfillArgs,
    user: Option<String>,
    now: DateTime<Utc>,
) -> Result<()> {
    use crate::backfill::{self, Refused, Reprocess};
    let mut store = synced_store(cfg, &env.clock)?;
    let dag_run_conf = a
        .dag_run_conf
        .map(|c| match serde_json::from_str::<Value>(&c) {
            Ok(v @ Value::Object(_)) => Ok(v),
            Ok(_) => Err(Error::Usage("--dag-run-conf must be a JSON object".into())),
            Err(e) => Err(Error::Usage(format!("Invalid JSON in --dag-run-conf: {e}"))),
        })
        .transpose()?;
    let req = backfill::Request {
        dag_id: a.dag_id,
        from_date: parse_date(&a.from_date)?,
        to_date: parse_date(&a.to_date)?,
        run_backwards: a.run_backwards,
        dag_run_conf,
        reprocess: a
            .reprocess_behavior
            .as_deref()
            .and_then(Reprocess::parse)
            .unwrap_or_default(),
        max_active_runs: a.max_active_runs.map_or(10, i64::from),
        user,
    };
    if a.dry_run {
        let dates = backfill::dry_run(&store, &req, now)?;
        return emit(&format!(
            "Performing dry run of backfill.\nRuns to be attempted:\n{}",
            backfill::dry_run_table(&dates)
        ));
    }
    match backfill::create(&mut store, &req, false, now) {
        Ok(b) => {
            let runs = store.backfill_progress(b.id)?;
            emit(&format!(
                "Created backfill {} of {}: {} run(s) queued, {} date(s) skipped\n",
                b.id,
                b.dag_id,
                runs.queued + runs.running,
                runs.skipped
            ))
        }
        Err(Refused::Invalid(msg)) if msg.starts_with("No runs to create") => {
            Err(Error::Failed(format!("Warning: {msg}")))
        }
        Err(e) => Err(e.into()),
    }
}

fn run_json(r: &RunRow) -> Value {
    let t = |d: Option<DateTime<Utc>>| {
        d.map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Micros, false))
    };
    json!({
        "conf": r.conf, "dag_id": r.dag_id, "dag_run_id": r.run_id,
        "data_interval_start": t(r.data_interval_start), "data_interval_end": t(r.data_interval_end),
        "end_date": t(r.end_date), "last_scheduling_decision": t(r.last_scheduling_decision),
        "logical_date": t(r.logical_date), "run_type": r.run_type.as_str(), "start_date": t(r.start_date),
        "state": r.state.as_str(), "triggering_user_name": r.triggering_user_name,
    })
}

/// A date or date-time from the command line: `2024-01-01`, `2024-01-01T06:00:00`, with
/// or without an offset (none means UTC).
pub fn parse_date(s: &str) -> Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M:%S%.f",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, fmt) {
            return Ok(t.and_utc());
        }
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map(|d| d.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc())
        .map_err(|_| {
            Error::Usage(format!(
                "{s:?} is not a date (2024-01-01 or 2024-01-01T06:00:00+00:00)"
            ))
        })
}
