//! The command line: argv -> a closed [`Command`]. No I/O beyond reading the arguments.
//!
//! Verbs follow Airflow's CLI (`dags list`, `config get-value`, `db migrate`, ...). Help
//! comes first: `--help` anywhere prints the help of the command it follows. Leftover
//! arguments are an error, never silently ignored.

use std::ffi::OsString;

use pico_args::Arguments;

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
    ConfigGetValue { section: String, key: String },
    DbMigrate,
    DbCheck,
    DbReset { yes: bool },
    DagsList { output: Output },
    DagsListImportErrors { output: Output },
    DagsShow { dag_id: String, output: Output },
    DagsSchema,
    TasksList { dag_id: String },
    ApiServer(ServerArgs),
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

pub const HELP: &str = "\
updraft: an Airflow-compatible workflow orchestrator in one binary

Usage: updraft COMMAND [ARGS]

Commands:
  version                       print the version
  api-server                    serve the Core API, the Execution API and the UI
  config list                   print every setting, its value and where it came from
  config get-value SECTION KEY  print one setting
  db migrate                    create or upgrade the database
  db check                      check that the database answers
  db reset --yes                delete all data and recreate the database
  dags list                     list DAGs (after reading the DAG folder)
  dags list-import-errors       list DAG files that failed to load
  dags show DAG_ID              print a DAG's tasks, dependencies and groups
  dags schema                   print the JSON Schema of dag-factory DAG files
  tasks list DAG_ID             list a DAG's task ids

Every command takes --help. Settings come from $UPDRAFT_HOME/updraft.cfg and from
UPDRAFT__SECTION__KEY or AIRFLOW__SECTION__KEY environment variables.
UPDRAFT_HOME defaults to ~/updraft (%USERPROFILE%\\updraft on Windows).
";

const HELP_CONFIG: &str = "\
Usage: updraft config list
       updraft config get-value SECTION KEY

list prints every setting with its effective value and its source (default, the
config file, or the environment variable that set it). get-value prints one value.
";

const HELP_DB: &str = "\
Usage: updraft db migrate | db check | db reset --yes

migrate creates the database or applies pending migrations (safe to repeat).
check connects and prints the schema version; exit 1 if it cannot.
reset drops every table and migrates from empty; it needs --yes.
";

const HELP_DAGS: &str = "\
Usage: updraft dags list [--output table|json]
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
override [api] host, port, workers and proxy_headers. The worker pool recycles itself
every [api] worker_refresh_interval seconds. On Unix, SIGTTIN adds a worker, SIGTTOU
retires the oldest and SIGHUP refreshes the whole pool. Ctrl-C (or SIGTERM) stops it
after in-flight requests finish.
";

const HELP_TASKS: &str = "\
Usage: updraft tasks list DAG_ID

list prints the task ids of a DAG, one per line.
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
            (_, other) => return Err(unknown("dags", other)),
        },
        Some("tasks") => match (help, sub(&mut args)?.as_deref()) {
            (true, _) => Command::Help(HELP_TASKS),
            (_, Some("list")) => Command::TasksList {
                dag_id: free(&mut args, "DAG_ID")?,
            },
            (_, other) => return Err(unknown("tasks", other)),
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
