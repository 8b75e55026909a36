//! Wiring: turns a parsed [`Command`] into work, with the config, the store and the
//! DAG processor it needs, and prints the result.
//!
//! Output goes to stdout, logs and errors to stderr, so `--output json` stays parseable.

mod serve;
mod tasks;

use std::io::Write;

use serde_json::{Value, json};

use crate::cli::{Command, Output};
use crate::clock::Clock;
use crate::config::{Config, Override};
use crate::error::{Error, Result};
use crate::process::HostEnv;
use crate::store::{DagRow, Store};
use crate::{dagfile, home, logging, processor};

/// Everything a command reads from the process: the environment, the clock.
///
/// **Invariant:** `from_process` is the only code (tests aside) that reads the process
/// environment; everything else gets it from here, passed down (`Config::host` carries
/// it to the executor). ARCHITECTURE.md says how that is checked.
pub struct Env {
    /// The variables whose names and values are Unicode: what the config, the home and
    /// the task commands (`UPDRAFT_TI_*`) read.
    pub vars: Vec<(String, String)>,
    /// Every variable as the OS gave it, and the temp folder: what finding a shell and
    /// starting tasks read.
    pub host: HostEnv,
    /// Where the wall-clock time is read: handed to the scheduler, the API and the
    /// executor, so what they decide by the date can be checked with a fake clock.
    pub clock: Clock,
}

impl Env {
    pub fn from_process() -> Env {
        let all: Vec<_> = std::env::vars_os().collect();
        Env {
            vars: all
                .iter()
                .filter_map(|(k, v)| Some((k.to_str()?.to_string(), v.to_str()?.to_string())))
                .collect(),
            // Reads TMPDIR, or TMP and TEMP on Windows.
            host: HostEnv::new(all, std::env::temp_dir()),
            clock: Clock::System,
        }
    }
}

/// Runs one command to completion.
pub fn run(cmd: Command, env: &Env) -> Result<()> {
    match cmd {
        Command::Help(text) => emit(text),
        Command::Version => emit(&format!("{}\n", env!("CARGO_PKG_VERSION"))),
        Command::DagsSchema => emit(&pretty(&dagfile::schema())),
        Command::ApiServer(args) => serve::api_server(args, env),
        Command::Standalone => serve::standalone(env),
        Command::Scheduler => serve::scheduler(env),
        Command::DagsTest {
            dag_id,
            logical_date,
        } => serve::dags_test(env, &dag_id, logical_date.as_deref()),
        cmd => run_with_config(cmd, &load_config(env, &[])?, env),
    }
}

/// Finds the home, creates it if needed, loads and validates the config (the command
/// line's `flags` above the environment and the file), starts logging.
pub fn load_config(env: &Env, flags: &[Override]) -> Result<Config> {
    let home = home::locate(&env.vars)?;
    home::ensure(&home)?;
    let mut cfg = Config::load_with_flags(&home, &env.vars, flags)?;
    cfg.host = env.host.clone();
    logging::init(cfg.logging.level);
    crate::plugins::set_folder(&cfg.core.plugins_folder);
    for w in &cfg.warnings {
        log::warn!("{w}");
    }
    Ok(cfg)
}

fn run_with_config(cmd: Command, cfg: &Config, env: &Env) -> Result<()> {
    match cmd {
        Command::ConfigList => emit(&format!(
            "{}\n# {}\n",
            cfg.list(),
            crate::executor::python::summary(&cfg.core.python_interpreter, &cfg.host)
        )),
        Command::ConfigGetValue { section, key } => {
            let entry = cfg.get(&section, &key).ok_or_else(|| {
                Error::NotFound(format!(
                    "the option [{section}] {key} is not found in config"
                ))
            })?;
            emit(&format!("{}\n", entry.value))
        }
        Command::DbMigrate => {
            let from = match Store::open_existing(&cfg.database.path) {
                Ok(s) => s.status()?.version,
                Err(_) => 0,
            };
            let mut store = Store::open(&cfg.database.path)?;
            let (_, to) = store.migrate()?;
            emit(&format!(
                "database {} at version {to} (was {from})\n",
                cfg.database.path.display()
            ))
        }
        Command::DbCheck => {
            let store = Store::open_existing(&cfg.database.path)?;
            let st = store.status()?;
            if st.version != st.latest {
                return Err(Error::Failed(format!(
                    "database {} is at version {} of {}; run 'updraft db migrate'",
                    st.path.display(),
                    st.version,
                    st.latest
                )));
            }
            let problems = store.problems()?;
            if !problems.is_empty() {
                return Err(Error::Failed(format!(
                    "database {} failed its checks ({} finding(s)); restore a backup, or start afresh with 'updraft db reset --yes':\n  {}",
                    st.path.display(),
                    problems.len(),
                    problems.join("\n  ")
                )));
            }
            emit(&format!(
                "Connection successful: {} (schema version {}, journal {}; integrity_check ok, foreign_key_check ok)\n",
                st.path.display(),
                st.version,
                st.journal_mode
            ))
        }
        Command::DbReset { yes } => {
            if !yes {
                return Err(Error::Usage(
                    "'db reset' deletes every run, variable and connection; add --yes to do it"
                        .into(),
                ));
            }
            Store::open(&cfg.database.path)?.reset()?;
            emit(&format!("database {} reset\n", cfg.database.path.display()))
        }
        Command::DagsList { output } => {
            let store = synced_store(cfg, &env.clock)?;
            let rows: Vec<Value> = live_dags(&store)?
                .iter()
                .map(|d| {
                    json!({
                        "dag_id": d.dag.dag_id,
                        "fileloc": d.fileloc,
                        "owners": d.dag.owners,
                        // Airflow's CLI prints this flag as a string.
                        "is_paused": if d.is_paused { "True" } else { "False" },
                        "bundle_name": d.bundle_name,
                        "bundle_version": null,
                    })
                })
                .collect();
            if !store.import_errors()?.is_empty() {
                eprintln!(
                    "Error: Failed to load all files. For details, run `updraft dags list-import-errors`"
                );
            }
            print_rows(&rows, output)
        }
        Command::DagsListImportErrors { output } => {
            let store = synced_store(cfg, &env.clock)?;
            let rows: Vec<Value> = store
                .import_errors()?
                .iter()
                .map(|e| {
                    json!({
                        "bundle_name": e.bundle_name,
                        "filepath": e.filename,
                        "line": e.line,
                        "column": e.column,
                        "error": e.stack_trace,
                    })
                })
                .collect();
            print_rows(&rows, output)?;
            // As Airflow: listing any import error is a failure, for scripts and CI.
            if rows.is_empty() {
                Ok(())
            } else {
                Err(Error::Failed(format!(
                    "{} file(s) failed to load",
                    rows.len()
                )))
            }
        }
        Command::DagsShow { dag_id, output } => {
            let store = synced_store(cfg, &env.clock)?;
            let row = live_dag(&store, &dag_id)?;
            match output {
                Output::Json => emit(&pretty(&dag_structure(&row))),
                Output::Table | Output::Plain => emit(&show_text(&row)),
            }
        }
        Command::TasksList { dag_id } => {
            let store = synced_store(cfg, &env.clock)?;
            let row = live_dag(&store, &dag_id)?;
            let mut ids: Vec<&str> = row.dag.tasks.iter().map(|t| t.task_id.as_str()).collect();
            ids.sort_unstable();
            emit(&ids.iter().map(|id| format!("{id}\n")).collect::<String>())
        }
        cmd @ (Command::DagsTrigger { .. }
        | Command::DagsPause { .. }
        | Command::DagsState { .. }
        | Command::TasksTest { .. }
        | Command::TasksClear { .. }
        | Command::TasksStatesForDagRun { .. }
        | Command::TasksXcomPush { .. }
        | Command::TasksXcomPull { .. }
        | Command::JobsCheck { .. }
        | Command::VariablesGet { .. }
        | Command::VariablesSet { .. }
        | Command::ConnectionsGet { .. }
        | Command::ConnectionsAdd(_)
        | Command::BackfillCreate(_)) => tasks::run(cmd, cfg, env),
        Command::UsersResetPassword { user } => {
            let password = crate::auth::reset_password(cfg, &user)?;
            emit(&format!("{password}\n"))
        }
        Command::Help(_)
        | Command::Version
        | Command::DagsSchema
        | Command::ApiServer(_)
        | Command::Standalone
        | Command::Scheduler
        | Command::DagsTest { .. } => unreachable!("handled in run"),
    }
}

/// Opens the store and reads the DAG folder into it, as the DAG commands need.
pub(crate) fn synced_store(cfg: &Config, clock: &Clock) -> Result<Store> {
    home::ensure_folders(cfg)?;
    let mut store = Store::open(&cfg.database.path)?;
    processor::sync(&mut store, cfg, clock.now())?;
    Ok(store)
}

fn live_dags(store: &Store) -> Result<Vec<DagRow>> {
    Ok(store.dags()?.into_iter().filter(|d| !d.is_stale).collect())
}

pub(crate) fn live_dag(store: &Store, dag_id: &str) -> Result<DagRow> {
    store.dag(dag_id)?.filter(|d| !d.is_stale).ok_or_else(|| {
        Error::NotFound(format!("DAG {dag_id:?} not found; see 'updraft dags list'"))
    })
}

/// A DAG's tasks and edges as JSON, for `dags show --output json`.
fn dag_structure(row: &DagRow) -> Value {
    let dag = &row.dag;
    json!({
        "dag_id": dag.dag_id,
        "fileloc": row.fileloc,
        "schedule": dag.schedule.summary(),
        "tasks": dag.tasks.iter().map(|t| json!({
            "task_id": t.task_id,
            "operator": t.operator.class_name(),
            "task_group": t.task_group,
            "upstream_task_ids": t.upstream,
            "trigger_rule": t.trigger_rule.as_str(),
        })).collect::<Vec<_>>(),
        "task_groups": dag.task_groups.iter().map(|g| json!({
            "group_id": g.group_id,
            "parent": g.parent,
        })).collect::<Vec<_>>(),
    })
}

/// A DAG as text: one line per task with its upstream tasks, indented by group.
fn show_text(row: &DagRow) -> String {
    let dag = &row.dag;
    let mut out = format!(
        "DAG {} ({})\nschedule: {}\n",
        dag.dag_id,
        row.fileloc,
        dag.schedule.summary().unwrap_or_else(|| "None".into())
    );
    for g in &dag.task_groups {
        let depth = g.group_id.matches('.').count();
        out.push_str(&format!("{}group {}\n", "  ".repeat(depth), g.group_id));
    }
    out.push_str("tasks:\n");
    for t in &dag.tasks {
        let upstream = if t.upstream.is_empty() {
            String::new()
        } else {
            format!(" <- {}", t.upstream.join(", "))
        };
        out.push_str(&format!(
            "  {} [{}]{upstream}\n",
            t.task_id,
            t.operator.class_name()
        ));
    }
    out
}

/// Prints rows of flat JSON objects as a table or as a JSON list.
pub(crate) fn print_rows(rows: &[Value], output: Output) -> Result<()> {
    if output == Output::Json {
        return emit(&format!("{}\n", Value::Array(rows.to_vec())));
    }
    if rows.is_empty() {
        return emit("No data found\n");
    }
    let cols: Vec<&String> = rows[0]
        .as_object()
        .map(|o| o.keys().collect())
        .unwrap_or_default();
    let cell = |v: &Value| match v {
        Value::String(s) => s.lines().next().unwrap_or("").to_string(),
        Value::Null => "None".to_string(),
        other => other.to_string(),
    };
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|r| cols.iter().map(|c| cell(&r[c.as_str()])).collect())
        .collect();
    let widths: Vec<usize> = cols
        .iter()
        .enumerate()
        .map(|(i, c)| {
            table
                .iter()
                .map(|r| r[i].len())
                .chain([c.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        format!("{}\n", padded.join(" | ").trim_end())
    };
    let mut out = line(cols.iter().map(|c| c.as_str()).collect());
    out.push_str(&format!(
        "{}\n",
        widths
            .iter()
            .map(|w| "=".repeat(*w))
            .collect::<Vec<_>>()
            .join("=+=")
    ));
    for r in &table {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    emit(&out)
}

pub(crate) fn pretty(v: &Value) -> String {
    format!(
        "{}\n",
        serde_json::to_string_pretty(v).expect("JSON values serialize")
    )
}

/// Writes to stdout; a closed pipe (`| head`) is not an error.
pub(crate) fn emit(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(Error::io("<stdout>", e)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// The lines of `dir`'s Rust files, above each file's tests, that read the process
    /// environment, as `path:line: text`.
    fn environment_reads(dir: &Path, out: &mut Vec<String>) {
        let reads = [
            "env::var(",
            "env::vars(",
            "env::var_os",
            "env::vars_os",
            "env::temp_dir",
            "env::home_dir",
        ];
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                environment_reads(&path, out);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let code = text.split("\n#[cfg(test)]\nmod tests").next().unwrap();
            for (n, line) in code.lines().enumerate() {
                if reads.iter().any(|r| line.contains(r)) {
                    let shown = path.display().to_string().replace('\\', "/");
                    out.push(format!("{shown}:{}: {}", n + 1, line.trim()));
                }
            }
        }
    }

    #[test]
    fn only_env_reads_the_process_environment() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut found = Vec::new();
        environment_reads(&src, &mut found);
        let outside: Vec<&String> = found
            .iter()
            .filter(|l| {
                !(l.contains("app/mod.rs")
                    && (l.contains("std::env::vars_os().collect()")
                        || l.contains("HostEnv::new(all, std::env::temp_dir())")))
            })
            .collect();
        assert!(outside.is_empty(), "read around Env: {outside:#?}");
        assert_eq!(found.len(), 2, "{found:#?}");
    }

    /// The time of a triggered run is the one `Env::clock` reads, whether the CLI or
    /// the API (through its `Ctx`) triggers it: with a fake clock, `run_after` and the
    /// generated run id are the fake time, which the system clock cannot give.
    #[test]
    fn runs_triggered_by_cli_and_api_are_dated_by_the_env_clock() {
        use chrono::{TimeZone, Utc};

        use super::*;
        use crate::clock::Clock;
        use crate::server;

        let home = std::env::temp_dir().join(format!("updraft-env-clock-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&home);
        std::fs::create_dir_all(home.join("dags")).unwrap();
        std::fs::write(
            home.join("dags").join("hand.yml"),
            "hand:\n  schedule: null\n  tasks:\n    - task_id: t\n      operator: EmptyOperator\n",
        )
        .unwrap();
        let at = Utc.with_ymd_and_hms(2021, 6, 1, 12, 0, 0).unwrap();
        let env = Env {
            vars: [
                ("UPDRAFT_HOME", home.to_str().unwrap()),
                ("UPDRAFT__CORE__LOAD_EXAMPLES", "False"),
                ("UPDRAFT__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "True"),
                ("UPDRAFT__API__PORT", "0"),
            ]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
            host: HostEnv::default(),
            clock: Clock::fake(at),
        };

        let trigger = Command::DagsTrigger {
            dag_id: "hand".into(),
            conf: None,
            run_id: None,
            logical_date: None,
            output: Output::Plain,
        };
        run(trigger, &env).unwrap();

        let cfg = load_config(&env, &[]).unwrap();
        let running = server::start(
            cfg.clone(),
            crate::api::Apps::ALL,
            server::dispatch,
            env.clock.clone(),
        )
        .unwrap();
        env.clock.advance(chrono::Duration::hours(1));
        let url = format!("http://{}/api/v2/dags/hand/dagRuns", running.addr);
        let reply = crate::executor::client::agent()
            .post(&url)
            .send_json(json!({"logical_date": null}));
        running.shutdown(std::time::Duration::from_secs(5));
        let mut reply = reply.unwrap();
        let body: Value = reply.body_mut().read_json().unwrap();
        assert_eq!(reply.status(), 200, "{body}");
        assert_eq!(body["run_after"], "2021-06-01T13:00:00Z", "{body}");

        let store = Store::open(&cfg.database.path).unwrap();
        let mut runs: Vec<_> = store
            .runs_of(Some("hand"), 10)
            .unwrap()
            .into_iter()
            .map(|r| (r.run_after, r.run_id))
            .collect();
        runs.sort();
        assert_eq!(
            runs,
            [
                (at, "manual__2021-06-01T12:00:00.000000+00:00".to_string()),
                (
                    at + chrono::Duration::hours(1),
                    "manual__2021-06-01T13:00:00.000000+00:00".to_string()
                ),
            ]
        );
        let _ = std::fs::remove_dir_all(&home);
    }
}
