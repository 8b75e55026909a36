//! The built-in operators (`model::Builtin`), run inside the supervisor's thread: no
//! child process, no Python, except a runner for a Python callable the task names
//! (`response_check`, `response_filter`). Each family has its file; the supervisor renders the
//! task's template fields (`render_fields`) and calls `run`, which reaches state only
//! through the Execution API client, as every supervisor does.
//!
//! The sensors' pokes (`http::poke_http`, `sql::poke_sql`) are plain functions of the
//! rendered arguments: one look, no waiting; the sensor loop is the caller's.

pub mod branch;
pub mod http;
pub mod sql;
pub mod trigger;

use std::ops::ControlFlow;
use std::time::Instant;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::client::Client;
use crate::model::Builtin;
use crate::template::RenderError;

/// How a built-in operator's execute ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Done {
    /// Success; the value, if any, is pushed as the `return_value` XCom.
    Success(Option<Value>),
    /// AirflowSkipException.
    Skipped(String),
    /// An error: the try fails (and may be retried).
    Failed(String),
    /// The executor is stopping, or the task instance is no longer ours.
    Stopped,
}

/// What an operator may use besides its arguments.
pub struct OpEnv<'a> {
    pub client: &'a Client,
    pub ti_id: &'a str,
    /// The run context the Execution API's `run` gave.
    pub ctx: &'a Value,
    pub now: DateTime<Utc>,
    /// When `execution_timeout` runs out.
    pub deadline: Option<Instant>,
    /// Heartbeats while the operator waits; `Break` when it must stop.
    pub beat: &'a mut dyn FnMut() -> ControlFlow<()>,
    pub log: &'a mut dyn FnMut(&str),
    /// Runs the task's Python callables on what the operator got (the runner's `invoke`
    /// spec): what they answered, or why they failed.
    pub python: &'a mut dyn FnMut(&Value) -> Result<Value, String>,
}

/// Renders the strings under `fields` of `args` (nested in lists and mappings too, as
/// Airflow's `render_template` walks them); other arguments stay as written.
pub fn render_fields(
    args: &Map<String, Value>,
    fields: &[&str],
    render: &mut dyn FnMut(&str) -> Result<String, RenderError>,
) -> Result<Map<String, Value>, RenderError> {
    fn walk(
        v: &Value,
        render: &mut dyn FnMut(&str) -> Result<String, RenderError>,
    ) -> Result<Value, RenderError> {
        Ok(match v {
            Value::String(s) => Value::String(render(s)?),
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|i| walk(i, render))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Object(m) => Value::Object(
                m.iter()
                    .map(|(k, i)| Ok((k.clone(), walk(i, render)?)))
                    .collect::<Result<_, _>>()?,
            ),
            other => other.clone(),
        })
    }
    let mut out = Map::new();
    for (k, v) in args {
        let v = if fields.contains(&k.as_str()) {
            walk(v, render)?
        } else {
            v.clone()
        };
        out.insert(k.clone(), v);
    }
    Ok(out)
}

/// Runs one built-in operator with its rendered arguments.
pub fn run(kind: Builtin, args: &Map<String, Value>, env: &mut OpEnv) -> Done {
    match kind {
        Builtin::Http | Builtin::SimpleHttp => {
            let conn_id = args
                .get("http_conn_id")
                .and_then(Value::as_str)
                .unwrap_or("http_default");
            match connection(env.client, conn_id) {
                Ok(conn) => http::operator(args, Some(&conn), env.log, env.python),
                Err(e) => Done::Failed(e),
            }
        }
        Builtin::SqlExecuteQuery | Builtin::SqlCheck | Builtin::SqlValueCheck => {
            let conn_id = args.get("conn_id").and_then(Value::as_str).unwrap_or("");
            match connection(env.client, conn_id) {
                Ok(conn) => sql::operator(kind, args, &conn, env.log),
                Err(e) => Done::Failed(e),
            }
        }
        Builtin::TriggerDagRun => trigger::operator(args, env),
        Builtin::LatestOnly | Builtin::BranchDayOfWeek | Builtin::BranchDateTime => {
            branch::operator(kind, args, env)
        }
    }
}

/// A connection through the Execution API; a missing one is Airflow's error.
pub fn connection(client: &Client, conn_id: &str) -> Result<Value, String> {
    match client.connection(conn_id) {
        Ok(Some(c)) => Ok(c),
        Ok(None) => Err(format!("The conn_id `{conn_id}` isn't defined")),
        Err(e) => Err(format!("cannot read connection {conn_id}: {e}")),
    }
}

/// A connection's `extra` as a mapping (it is stored as JSON text); empty when unset or
/// not a JSON object.
pub fn connection_extra(conn: &Value) -> Map<String, Value> {
    match &conn["extra"] {
        Value::Object(m) => m.clone(),
        Value::String(s) => match serde_json::from_str(s) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        },
        _ => Map::new(),
    }
}

/// `POST /api/v2/connections/test` for the types updraft can reach, as their Airflow
/// hooks test them: `http` sends HttpHook's default request (a POST to the base URL) and
/// wants a status below 400; `sqlite` opens the file (read-only: a test creates nothing)
/// and runs `select 1`; `fs` looks for the `path` of its extra. Other types have no hook
/// here, and say so as Airflow does for a type without a provider.
pub fn test_connection(conn: &Value) -> (bool, String) {
    match conn["conn_type"].as_str().unwrap_or("") {
        "http" => {
            let call = http::build(
                Some(conn),
                "POST",
                "",
                &Value::Null,
                &Value::Null,
                &Value::Null,
            );
            match call.and_then(|mut c| {
                c.timeout = c.timeout.or(Some(std::time::Duration::from_secs(10)));
                http::send(&c).map(|r| (c, r))
            }) {
                Ok((c, r)) if c.check_response && r.status >= 400 => {
                    (false, format!("{}:{}", r.status, r.reason))
                }
                Ok(_) => (true, "Connection successfully tested".into()),
                Err(e) => (false, e),
            }
        }
        "sqlite" => match sql::sqlite_path(conn) {
            Ok(path) => match crate::store::user_sql::check_sqlite(&path) {
                Ok(()) => (true, "Connection successfully tested".into()),
                Err(e) => (false, e),
            },
            Err(e) => (false, e),
        },
        "fs" => {
            let path = connection_extra(conn)
                .get("path")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            if path.is_empty() {
                (false, "File Path is undefined.".into())
            } else if std::path::Path::new(&path).exists() {
                (true, format!("Path {path} is existing."))
            } else {
                (false, format!("Path {path} does not exist."))
            }
        }
        other => (false, format!("Unknown hook type \"{other}\"")),
    }
}
