//! The command line: argv -> a closed [`Command`]. No I/O beyond reading the arguments.
//!
//! Verbs follow Airflow's CLI (`dags list`, `config get-value`, `db migrate`, ...). Help
//! comes first: `--help` anywhere prints the help of the command it follows. Leftover
//! arguments are an error, never silently ignored.

use std::ffi::OsString;

use pico_args::Arguments;

use crate::config::Override;
use crate::error::{Error, Result};

/// How list commands print.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Table,
    Json,
    Plain,
}

/// Everything updraft can be asked to do.
#[derive(Debug, PartialEq)]
pub enum Command {
    Help(&'static str),
    Version,
    ConfigList,
    ConfigGetValue {
        section: String,
        key: String,
    },
    DbMigrate,
    DbCheck,
    DbReset {
        yes: bool,
    },
    DagsList {
        output: Output,
    },
    DagsListImportErrors {
        output: Output,
    },
    DagsShow {
        dag_id: String,
        output: Output,
    },
    DagsSchema,
    TasksList {
        dag_id: String,
    },
    ApiServer(ServerArgs),
    Standalone,
    Scheduler,
    DagsTrigger {
        dag_id: String,
        conf: Option<String>,
        run_id: Option<String>,
        logical_date: Option<String>,
        output: Output,
    },
    DagsPause {
        dag_id: String,
        paused: bool,
    },
    DagsState {
        dag_id: String,
        run_id: String,
    },
    DagsTest {
        dag_id: String,
        logical_date: Option<String>,
    },
    TasksTest {
        dag_id: String,
        task_id: String,
        logical_date: Option<String>,
        /// `--map-index`: the instance of a mapped task (-1: not mapped).
        map_index: i64,
    },
    TasksClear {
        dag_id: String,
        task_regex: Option<String>,
        only_failed: bool,
    },
    TasksStatesForDagRun {
        dag_id: String,
        run_id: String,
        output: Output,
    },
    TasksXcomPush {
        key: String,
        value: String,
    },
    TasksXcomPull {
        task_id: String,
        key: String,
    },
    JobsCheck {
        job_type: String,
        local: bool,
        limit: usize,
        allow_multiple: bool,
    },
    VariablesGet {
        key: String,
    },
    VariablesSet {
        key: String,
        value: String,
    },
    ConnectionsGet {
        conn_id: String,
    },
    ConnectionsAdd(ConnectionArgs),
    UsersResetPassword {
        user: String,
    },
    BackfillCreate(BackfillArgs),
}

/// `backfill create` flags, Airflow 3's names (`airflow backfill create`).
#[derive(Debug, Default, PartialEq)]
pub struct BackfillArgs {
    pub dag_id: String,
    pub from_date: String,
    pub to_date: String,
    pub dag_run_conf: Option<String>,
    pub run_backwards: bool,
    pub max_active_runs: Option<u32>,
    pub reprocess_behavior: Option<String>,
    pub dry_run: bool,
}

/// `connections add` flags, Airflow's names.
#[derive(Debug, Default, PartialEq)]
pub struct ConnectionArgs {
    pub conn_id: String,
    pub conn_type: String,
    pub host: Option<String>,
    pub login: Option<String>,
    pub password: Option<String>,
    pub port: Option<String>,
    pub schema: Option<String>,
    pub extra: Option<String>,
    pub description: Option<String>,
}

/// `api-server` flags; each overrides its `[api]` key.
#[derive(Debug, Default, PartialEq)]
pub struct ServerArgs {
    pub apps: Option<String>,
    pub host: Option<String>,
    pub port: Option<String>,
    pub workers: Option<String>,
    pub proxy_headers: bool,
}

impl ServerArgs {
    /// The `[api]` values these flags set, above the environment and the file.
    pub fn overrides(&self) -> Vec<Override> {
        let flag = |key, by, value: &Option<String>| {
            value.as_ref().map(|v| Override {
                section: "api",
                key,
                value: v.clone(),
                by,
            })
        };
        let proxy_headers = self.proxy_headers.then(|| "True".to_string());
        [
            flag("host", "--host", &self.host),
            flag("port", "--port", &self.port),
            flag("workers", "--workers", &self.workers),
            flag("proxy_headers", "--proxy-headers", &proxy_headers),
        ]
        .into_iter()
        .flatten()
        .collect()
    }
}

pub const HELP: &str = "\
updraft: an Airflow-compatible workflow orchestrator in one binary

Usage: updraft COMMAND [ARGS]

Commands:
  version                       print the version
  standalone                    run everything in one process: API server, scheduler, executor
  api-server                    serve the Core API, the Execution API and the UI
  scheduler                     run the scheduler and its executor
  config list                   print every setting, its value and where it came from
  config get-value SECTION KEY  print one setting
  db migrate                    create or upgrade the database
  db check                      check that the database answers and is sound
  db reset --yes                delete all data and recreate the database
  dags list                     list DAGs (after reading the DAG folder)
  dags list-import-errors       list DAG files that failed to load
  dags show DAG_ID              print a DAG's tasks, dependencies and groups
  dags schema                   print the JSON Schema of dag-factory DAG files
  dags trigger DAG_ID           start a run (--conf JSON, --run-id, --logical-date)
  dags pause|unpause DAG_ID     stop or resume scheduling a DAG
  dags state DAG_ID RUN_ID      print a run's state
  dags test DAG_ID [DATE]       run a DAG once in the foreground, no server needed
  tasks list DAG_ID             list a DAG's task ids
  tasks test DAG_ID TASK_ID     run one task in the foreground, without recording it
  tasks clear DAG_ID [-t REGEX] clear task instances so they run again
  tasks states-for-dag-run DAG_ID RUN_ID  the state of every task of a run
  tasks xcom push KEY VALUE     (inside a task) push an XCom
  tasks xcom pull --task-id T [--key K]   (inside a task) read an XCom of this run
  variables get KEY | set KEY VALUE       read or write a variable
  connections get ID | add ID --conn-type T [--conn-host ...]  read or add a connection
  jobs check --job-type SchedulerJob [--local]  exit 0 if one scheduler is alive
  users reset-password USER     print a new password for USER
  backfill create --dag-id D --from-date F --to-date T   run a DAG over past dates

Every command takes --help. Settings come from $UPDRAFT_HOME/updraft.cfg and from
UPDRAFT__SECTION__KEY or AIRFLOW__SECTION__KEY environment variables.
UPDRAFT_HOME defaults to ~/updraft (%USERPROFILE%\\updraft on Windows).
";

const HELP_CONFIG: &str = "\
Usage: updraft config list
       updraft config get-value SECTION KEY

list prints every setting with its effective value and its source (default, the
config file, the environment variable, or `cli --flag` for a command's flag). get-value
prints one value.
";

const HELP_DB: &str = "\
Usage: updraft db migrate | db check | db reset --yes

migrate creates the database or applies pending migrations (safe to repeat).
check connects and prints the schema version; exit 1 if it cannot.
reset drops every table and migrates from empty; it needs --yes.
";

const HELP_DAGS: &str = "\
Usage: updraft dags list [--output table|json]
       updraft dags trigger DAG_ID [--conf JSON] [--run-id ID] [--logical-date DATE] [--output json]
       updraft dags pause DAG_ID | dags unpause DAG_ID
       updraft dags state DAG_ID RUN_ID
       updraft dags test DAG_ID [LOGICAL_DATE]
       updraft dags list-import-errors [--output table|json]
       updraft dags show DAG_ID [--output text|json]
       updraft dags schema

list and list-import-errors read the DAG folder first, then print from the database.
show prints the tasks of a DAG, their upstream tasks and their groups.
schema prints a JSON Schema of dag-factory YAML files, for editor autocomplete.
";

const HELP_API_SERVER: &str = "\
Usage: updraft api-server [--apps all|core|execution|core,execution] [--host H] [--port N]
                          [--workers N] [--proxy-headers]

Serves /api/v2, /auth, the UI and /openapi.json (the core app) and /execution (the
execution app) on [api] host:port, under the path of [api] base_url if set. Flags
override [api] host, port, workers (1 to 64) and proxy_headers. The worker pool recycles
itself every [api] worker_refresh_interval seconds. On Unix, SIGTTIN adds a worker (up to
64), SIGTTOU retires the oldest and SIGHUP refreshes the whole pool. Ctrl-C (or SIGTERM) stops it
after in-flight requests finish.
";

const HELP_TASKS: &str = "\
Usage: updraft tasks list DAG_ID
       updraft tasks test DAG_ID TASK_ID [LOGICAL_DATE] [--map-index N]
       updraft tasks clear DAG_ID [-t REGEX] [--only-failed] [-y]
       updraft tasks states-for-dag-run DAG_ID RUN_ID [--output table|json]
       updraft tasks xcom push KEY VALUE
       updraft tasks xcom pull --task-id TASK_ID [--key KEY]

list prints the task ids of a DAG, one per line. test renders and runs one task's
command in the foreground, records nothing, and exits with its exit code; a Python task
runs in a temporary run (deleted afterwards) through a private Execution API, as Airflow's
task_test does, its log on stdout, exit 1 unless it succeeds. clear makes
matching task instances (all runs) run again. The xcom commands work inside a running
task: they reach the Execution API with the task's own token.
";

const HELP_STANDALONE: &str = "\
Usage: updraft standalone

Creates the home and its config on first run, migrates the database, and runs the API
server, the scheduler and the executor in one process on [api] host:port. Ctrl-C stops
scheduling, lets running tasks finish for a grace period, then stops them and marks
them for retry.
";

const HELP_SCHEDULER: &str = "\
Usage: updraft scheduler

Runs the scheduler and its local executor. Tasks report to the Execution API at
[core] execution_api_server_url, which an api-server must serve. A second scheduler on
the same database stands by and takes over when the first stops heartbeating.
";

const HELP_JOBS: &str = "\
Usage: updraft jobs check [--job-type SchedulerJob] [--local] [--limit N] [--allow-multiple]

Exits 0 when a live job of that type heartbeats (one, unless --allow-multiple), 1
otherwise: a liveness probe, as Airflow's.
";

const HELP_VARIABLES: &str = "\
Usage: updraft variables get KEY
       updraft variables set KEY VALUE

Inside a task, get reads through the Execution API; elsewhere both use the database.
";

const HELP_CONNECTIONS: &str = "\
Usage: updraft connections get CONN_ID
       updraft connections add CONN_ID --conn-type TYPE [--conn-host H] [--conn-login L]
            [--conn-password P] [--conn-port N] [--conn-schema S] [--conn-extra JSON]
            [--conn-description D]
";

const HELP_BACKFILL: &str = "\
Usage: updraft backfill create --dag-id DAG_ID --from-date DATE --to-date DATE
            [--dag-run-conf JSON] [--run-backwards] [--max-active-runs N]
            [--reprocess-behavior none|failed|completed] [--dry-run]

Creates a backfill: a queued run of type backfill for every logical date of the DAG's
schedule from --from-date to --to-date (both inclusive) whose interval has ended. The
scheduler of a running server starts them, at most --max-active-runs (default 10) at
once, newest first with --run-backwards. A date that already has a run is skipped,
unless --reprocess-behavior is failed (its failed run runs again) or completed (every
finished run runs again). --dry-run prints the logical dates it would run and creates
nothing. --run-on-latest-version is accepted and has no effect (updraft keeps no
bundle versions).
";

/// Parses the process arguments (without the program name).
pub fn parse(args: Vec<OsString>) -> Result<Command> {
    let mut args = Arguments::from_vec(args);
    let help = args.contains(["-h", "--help"]);
    let cmd = args.subcommand().map_err(usage)?;
    let sub = |args: &mut Arguments| args.subcommand().map_err(usage);
    let command = match cmd.as_deref() {
        None if help => Command::Help(HELP),
        None => return Err(Error::Usage("no command given".into())),
        Some("version") if help => Command::Help("Usage: updraft version\n"),
        Some("version") => Command::Version,
        Some("config") => match (help, sub(&mut args)?.as_deref()) {
            (true, _) => Command::Help(HELP_CONFIG),
            (_, Some("list")) => Command::ConfigList,
            (_, Some("get-value")) => Command::ConfigGetValue {
                section: free(&mut args, "SECTION")?,
                key: free(&mut args, "KEY")?,
            },
            (_, other) => return Err(unknown("config", other)),
        },
        Some("db") => match (help, sub(&mut args)?.as_deref()) {
            (true, _) => Command::Help(HELP_DB),
            (_, Some("migrate")) => Command::DbMigrate,
            (_, Some("check")) => Command::DbCheck,
            (_, Some("reset")) => Command::DbReset {
                yes: args.contains(["-y", "--yes"]),
            },
            (_, other) => return Err(unknown("db", other)),
        },
        Some("dags") => match (help, sub(&mut args)?.as_deref()) {
            (true, _) => Command::Help(HELP_DAGS),
            (_, Some("list")) => Command::DagsList {
                output: output(&mut args, Output::Table)?,
            },
            (_, Some("list-import-errors")) => Command::DagsListImportErrors {
                output: output(&mut args, Output::Table)?,
            },
            (_, Some("show")) => Command::DagsShow {
                output: output(&mut args, Output::Plain)?,
                dag_id: free(&mut args, "DAG_ID")?,
            },
            (_, Some("schema")) => Command::DagsSchema,
            (_, Some("trigger")) => Command::DagsTrigger {
                conf: opt(&mut args, ["-c", "--conf"])?,
                run_id: opt(&mut args, ["-r", "--run-id"])?,
                logical_date: opt(&mut args, ["-l", "--logical-date"])?,
                output: output(&mut args, Output::Plain)?,
                dag_id: free(&mut args, "DAG_ID")?,
            },
            (_, Some(verb @ ("pause" | "unpause"))) => Command::DagsPause {
                paused: verb == "pause",
                dag_id: free(&mut args, "DAG_ID")?,
            },
            (_, Some("state")) => Command::DagsState {
                dag_id: free(&mut args, "DAG_ID")?,
                run_id: free(&mut args, "RUN_ID")?,
            },
            (_, Some("test")) => Command::DagsTest {
                dag_id: free(&mut args, "DAG_ID")?,
                logical_date: args.opt_free_from_str().map_err(usage)?,
            },
            (_, other) => return Err(unknown("dags", other)),
        },
        Some("tasks") => match (help, sub(&mut args)?.as_deref()) {
            (true, _) => Command::Help(HELP_TASKS),
            (_, Some("list")) => Command::TasksList {
                dag_id: free(&mut args, "DAG_ID")?,
            },
            (_, Some("test")) => Command::TasksTest {
                map_index: opt(&mut args, "--map-index")?
                    .map(|v: String| {
                        v.parse().map_err(|_| {
                            Error::Usage(format!("--map-index must be an integer, not {v:?}"))
                        })
                    })
                    .transpose()?
                    .unwrap_or(-1),
                dag_id: free(&mut args, "DAG_ID")?,
                task_id: free(&mut args, "TASK_ID")?,
                logical_date: args.opt_free_from_str().map_err(usage)?,
            },
            (_, Some("clear")) => {
                let _ = args.contains(["-y", "--yes"]);
                Command::TasksClear {
                    task_regex: opt(&mut args, ["-t", "--task-regex"])?,
                    only_failed: args.contains(["-f", "--only-failed"]),
                    dag_id: free(&mut args, "DAG_ID")?,
                }
            }
            (_, Some("states-for-dag-run")) => Command::TasksStatesForDagRun {
                output: output(&mut args, Output::Table)?,
                dag_id: free(&mut args, "DAG_ID")?,
                run_id: free(&mut args, "RUN_ID")?,
            },
            (_, Some("xcom")) => match sub(&mut args)?.as_deref() {
                Some("push") => Command::TasksXcomPush {
                    key: free(&mut args, "KEY")?,
                    value: free(&mut args, "VALUE")?,
                },
                Some("pull") => Command::TasksXcomPull {
                    task_id: args.value_from_str("--task-id").map_err(usage)?,
                    key: opt(&mut args, ["-k", "--key"])?.unwrap_or_else(|| "return_value".into()),
                },
                other => return Err(unknown("tasks xcom", other)),
            },
            (_, other) => return Err(unknown("tasks", other)),
        },
        Some("standalone") if help => Command::Help(HELP_STANDALONE),
        Some("standalone") => Command::Standalone,
        Some("scheduler") if help => Command::Help(HELP_SCHEDULER),
        Some("scheduler") => Command::Scheduler,
        Some("jobs") => match (help, sub(&mut args)?.as_deref()) {
            (true, _) => Command::Help(HELP_JOBS),
            (_, Some("check")) => Command::JobsCheck {
                job_type: opt(&mut args, ["-j", "--job-type"])?
                    .unwrap_or_else(|| "SchedulerJob".into()),
                local: args.contains(["-l", "--local"]),
                allow_multiple: args.contains("--allow-multiple"),
                limit: opt(&mut args, ["-n", "--limit"])?
                    .map(|n| {
                        n.parse()
                            .map_err(|_| Error::Usage(format!("--limit takes a number, not {n:?}")))
                    })
                    .transpose()?
                    .unwrap_or(1),
            },
            (_, other) => return Err(unknown("jobs", other)),
        },
        Some("variables") => match (help, sub(&mut args)?.as_deref()) {
            (true, _) => Command::Help(HELP_VARIABLES),
            (_, Some("get")) => Command::VariablesGet {
                key: free(&mut args, "KEY")?,
            },
            (_, Some("set")) => Command::VariablesSet {
                key: free(&mut args, "KEY")?,
                value: free(&mut args, "VALUE")?,
            },
            (_, other) => return Err(unknown("variables", other)),
        },
        Some("connections") => match (help, sub(&mut args)?.as_deref()) {
            (true, _) => Command::Help(HELP_CONNECTIONS),
            (_, Some("get")) => Command::ConnectionsGet {
                conn_id: free(&mut args, "CONN_ID")?,
            },
            (_, Some("add")) => Command::ConnectionsAdd(ConnectionArgs {
                conn_type: opt(&mut args, "--conn-type")?
                    .ok_or_else(|| Error::Usage("missing --conn-type".into()))?,
                host: opt(&mut args, "--conn-host")?,
                login: opt(&mut args, "--conn-login")?,
                password: opt(&mut args, "--conn-password")?,
                port: opt(&mut args, "--conn-port")?,
                schema: opt(&mut args, "--conn-schema")?,
                extra: opt(&mut args, "--conn-extra")?,
                description: opt(&mut args, "--conn-description")?,
                conn_id: free(&mut args, "CONN_ID")?,
            }),
            (_, other) => return Err(unknown("connections", other)),
        },
        Some("users") => match (help, sub(&mut args)?.as_deref()) {
            (true, _) => Command::Help(
                "Usage: updraft users reset-password USER\n\nPrints a new password for USER and saves it.\n",
            ),
            (_, Some("reset-password")) => Command::UsersResetPassword {
                user: free(&mut args, "USER")?,
            },
            (_, other) => return Err(unknown("users", other)),
        },
        Some("backfill") => match (help, sub(&mut args)?.as_deref()) {
            (true, _) => Command::Help(HELP_BACKFILL),
            (_, Some("create")) => {
                let need = |args: &mut Arguments, flag: &'static str| {
                    opt(args, flag)?.ok_or_else(|| Error::Usage(format!("missing {flag}")))
                };
                let _ = args.contains("--run-on-latest-version")
                    || args.contains("--no-run-on-latest-version");
                Command::BackfillCreate(BackfillArgs {
                    dag_id: need(&mut args, "--dag-id")?,
                    from_date: need(&mut args, "--from-date")?,
                    to_date: need(&mut args, "--to-date")?,
                    dag_run_conf: opt(&mut args, "--dag-run-conf")?,
                    run_backwards: args.contains("--run-backwards"),
                    max_active_runs: opt(&mut args, "--max-active-runs")?
                        .map(|n| match n.parse::<u32>() {
                            Ok(v) if v > 0 => Ok(v),
                            _ => Err(Error::Usage(format!(
                                "--max-active-runs takes a positive whole number, not {n:?}"
                            ))),
                        })
                        .transpose()?,
                    reprocess_behavior: opt(&mut args, "--reprocess-behavior")?
                        .map(|r| {
                            if matches!(r.as_str(), "none" | "completed" | "failed") {
                                Ok(r)
                            } else {
                                Err(Error::Usage(format!(
                                    "--reprocess-behavior takes none, completed or failed, not {r:?}"
                                )))
                            }
                        })
                        .transpose()?,
                    dry_run: args.contains("--dry-run"),
                })
            }
            (_, other) => return Err(unknown("backfill", other)),
        },
        Some("api-server") if help => Command::Help(HELP_API_SERVER),
        Some("api-server") => Command::ApiServer(ServerArgs {
            apps: args.opt_value_from_str("--apps").map_err(usage)?,
            host: args.opt_value_from_str(["-H", "--host"]).map_err(usage)?,
            port: args.opt_value_from_str(["-p", "--port"]).map_err(usage)?,
            workers: args
                .opt_value_from_str(["-w", "--workers"])
                .map_err(usage)?,
            proxy_headers: args.contains("--proxy-headers"),
        }),
        Some(other) => return Err(Error::Usage(format!("unknown command {other:?}"))),
    };
    let rest = args.finish();
    if !rest.is_empty() {
        return Err(Error::Usage(format!(
            "unexpected argument(s): {}",
            rest.iter()
                .map(|a| a.to_string_lossy())
                .collect::<Vec<_>>()
                .join(" ")
        )));
    }
    Ok(command)
}

fn usage(e: pico_args::Error) -> Error {
    Error::Usage(e.to_string())
}

fn unknown(group: &str, sub: Option<&str>) -> Error {
    match sub {
        Some(s) => Error::Usage(format!("unknown command '{group} {s}'")),
        None => Error::Usage(format!(
            "'{group}' needs a command; try 'updraft {group} --help'"
        )),
    }
}

fn free(args: &mut Arguments, name: &str) -> Result<String> {
    args.free_from_str::<String>()
        .map_err(|_| Error::Usage(format!("missing {name}")))
}

fn opt<K: Into<pico_args::Keys>>(args: &mut Arguments, keys: K) -> Result<Option<String>> {
    args.opt_value_from_str(keys).map_err(usage)
}

fn output(args: &mut Arguments, default: Output) -> Result<Output> {
    let value: Option<String> = args.opt_value_from_str(["-o", "--output"]).map_err(usage)?;
    match value.as_deref() {
        None => Ok(default),
        Some("table") => Ok(Output::Table),
        Some("json") => Ok(Output::Json),
        Some("text" | "plain") => Ok(Output::Plain),
        Some(other) => Err(Error::Usage(format!(
            "--output takes table, json or text, not {other:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(line: &str) -> Result<Command> {
        parse(line.split_whitespace().map(OsString::from).collect())
    }

    #[test]
    fn parses_commands() {
        let cases: &[(&str, Command)] = &[
            ("version", Command::Version),
            ("--help", Command::Help(HELP)),
            ("dags --help", Command::Help(HELP_DAGS)),
            ("dags list --help", Command::Help(HELP_DAGS)),
            (
                "dags list -o json",
                Command::DagsList {
                    output: Output::Json,
                },
            ),
            (
                "dags list --output=json",
                Command::DagsList {
                    output: Output::Json,
                },
            ),
            (
                "dags show x --output json",
                Command::DagsShow {
                    dag_id: "x".into(),
                    output: Output::Json,
                },
            ),
            (
                "config get-value api port",
                Command::ConfigGetValue {
                    section: "api".into(),
                    key: "port".into(),
                },
            ),
            ("db reset --yes", Command::DbReset { yes: true }),
            ("tasks list d", Command::TasksList { dag_id: "d".into() }),
            ("api-server", Command::ApiServer(ServerArgs::default())),
            (
                "api-server --apps core --port 0 -w 2 --proxy-headers",
                Command::ApiServer(ServerArgs {
                    apps: Some("core".into()),
                    port: Some("0".into()),
                    workers: Some("2".into()),
                    proxy_headers: true,
                    ..ServerArgs::default()
                }),
            ),
        ];
        for (line, want) in cases {
            assert_eq!(&p(line).unwrap(), want, "{line}");
        }
    }

    #[test]
    fn usage_errors_exit_2() {
        for line in [
            "",
            "nope",
            "dags",
            "dags nope",
            "dags list --output xml",
            "dags show",
            "version extra",
            "config get-value api",
        ] {
            let err = p(line).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{line}: {err}");
        }
    }
}
