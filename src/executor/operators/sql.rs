//! SQLExecuteQueryOperator, SQLCheckOperator, SQLValueCheckOperator and SqlSensor's poke
//! on `sqlite` connections (the file is the connection's `host`).

use std::path::PathBuf;

use serde_json::{Map, Value};

use super::Done;
use crate::executor::sensor::{Poke, PokeError};
use crate::model::Builtin;
use crate::store::user_sql::{Rows, run_sqlite};

/// The database file of a `sqlite` connection; other types are refused by name.
pub fn sqlite_path(conn: &Value) -> Result<PathBuf, String> {
    let conn_type = conn["conn_type"].as_str().unwrap_or("");
    if conn_type != "sqlite" {
        return Err(format!(
            "connection {} is of type `{conn_type}`: updraft runs SQL only on `sqlite` connections",
            conn["conn_id"].as_str().unwrap_or("")
        ));
    }
    let host = conn["host"]
        .as_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| {
            format!(
                "connection {} has no host (the SQLite file's path)",
                conn["conn_id"].as_str().unwrap_or("")
            )
        })?;
    // `sqlite:///path` as SQLAlchemy writes it.
    let path = host.strip_prefix("sqlite:///").unwrap_or(host);
    Ok(PathBuf::from(path))
}

/// `sql` as a list of statements: a list as given; a string as one statement, or split
/// on `;` outside quotes and comments with `split_statements` (empty ones dropped, as
/// sqlparse's split does).
pub fn statements(sql: &Value, split: bool) -> Vec<String> {
    match sql {
        Value::Array(items) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        Value::String(s) if split => split_sql(s),
        Value::String(s) => vec![s.clone()],
        _ => Vec::new(),
    }
}

/// Splits SQL text into statements on `;` that are not inside a quoted string, a quoted
/// identifier or a comment.
pub fn split_sql(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' | '`' => {
                cur.push(c);
                for d in chars.by_ref() {
                    cur.push(d);
                    if d == c {
                        break;
                    }
                }
            }
            '-' if chars.peek() == Some(&'-') => {
                cur.push(c);
                for d in chars.by_ref() {
                    cur.push(d);
                    if d == '\n' {
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                cur.push(c);
                let mut prev = ' ';
                for d in chars.by_ref() {
                    cur.push(d);
                    if prev == '*' && d == '/' {
                        break;
                    }
                    prev = d;
                }
            }
            ';' => {
                let s = cur.trim();
                if !s.is_empty() {
                    out.push(s.to_string());
                }
                cur.clear();
            }
            _ => cur.push(c),
        }
    }
    let s = cur.trim();
    if !s.is_empty() {
        out.push(s.to_string());
    }
    out
}

/// Python's `str()` of a row (a tuple), as Airflow's check messages show it.
fn py_row(row: &[Value]) -> String {
    let items: Vec<String> = row.iter().map(crate::py::repr).collect();
    match items.len() {
        1 => format!("({},)", items[0]),
        _ => format!("({})", items.join(", ")),
    }
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(m) => !m.is_empty(),
    }
}

/// The first row of the first statement's result (DbApiHook's `get_first`).
fn first_row(results: &[Rows]) -> Option<Vec<Value>> {
    results.first()?.as_ref()?.first().cloned()
}

pub fn operator(
    kind: Builtin,
    args: &Map<String, Value>,
    conn: &Value,
    log: &mut dyn FnMut(&str),
) -> Done {
    let null = Value::Null;
    let get = |k: &str| args.get(k).unwrap_or(&null);
    let path = match sqlite_path(conn) {
        Ok(p) => p,
        Err(e) => return Done::Failed(e),
    };
    let sql_text = match get("sql") {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    match kind {
        Builtin::SqlExecuteQuery => {
            let split = get("split_statements").as_bool().unwrap_or(false);
            let stmts = statements(get("sql"), split);
            log(&format!("Executing: {sql_text}"));
            let autocommit = get("autocommit").as_bool().unwrap_or(false);
            let results = match run_sqlite(&path, &stmts, get("parameters"), autocommit) {
                Ok(r) => r,
                Err(e) => return Done::Failed(e),
            };
            // One result for one statement given as a string (return_single_query_results),
            // else the list, or only the last with `return_last`.
            let single = get("sql").is_string() && !split;
            let return_last = get("return_last").as_bool().unwrap_or(true);
            let rows = |r: &Rows| {
                r.as_ref()
                    .map_or(Value::Null, |rows| serde_json::json!(rows))
            };
            let value = if single || (return_last && split) {
                results.last().map_or(Value::Null, rows)
            } else {
                Value::Array(results.iter().map(rows).collect())
            };
            Done::Success(Some(value))
        }
        Builtin::SqlCheck | Builtin::SqlValueCheck => {
            log(&format!("Executing SQL check: {sql_text}"));
            let results = match run_sqlite(
                &path,
                std::slice::from_ref(&sql_text),
                get("parameters"),
                false,
            ) {
                Ok(r) => r,
                Err(e) => return Done::Failed(e),
            };
            let Some(record) = first_row(&results) else {
                return Done::Failed(format!(
                    "The following query returned zero rows: {sql_text}"
                ));
            };
            log(&format!("Record: {}", py_row(&record)));
            if kind == Builtin::SqlCheck {
                if record.iter().all(truthy) && !record.is_empty() {
                    log("Success.");
                    return Done::Success(None);
                }
                return Done::Failed(format!(
                    "Test failed.\nQuery:\n{sql_text}\nResults:\n{}",
                    py_row(&record)
                ));
            }
            value_check(&record, get("pass_value"), get("tolerance"), &sql_text)
        }
        _ => Done::Failed(format!("{} is not a SQL operator", kind.class_name())),
    }
}

fn as_float(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        Value::Bool(b) => Some(f64::from(u8::from(*b))),
        _ => None,
    }
}

/// SQLValueCheckOperator's `check_value`: every column equals `pass_value` (within
/// `tolerance`, a fraction, when numeric), or as text when `pass_value` is not a number.
fn value_check(record: &[Value], pass_value: &Value, tolerance: &Value, sql: &str) -> Done {
    let pass_text = match pass_value {
        Value::String(s) => s.clone(),
        other => crate::py::str_of(other),
    };
    let pass_num = pass_text.trim().parse::<f64>().ok();
    let tol = as_float(tolerance);
    let error = format!(
        "Test failed.\nPass value:{}\nTolerance:{}\nQuery:\n{sql}\nResults:\n{}",
        pass_num.map_or(pass_text.clone(), |f| crate::py::repr(&serde_json::json!(
            f
        ))),
        tol.map_or("None".to_string(), |t| format!("{:.1}%", t * 100.0)),
        py_row(record)
    );
    let ok = match pass_num {
        Some(want) => {
            let mut got = Vec::new();
            for v in record {
                match as_float(v) {
                    Some(f) => got.push(f),
                    None => {
                        return Done::Failed(format!(
                            "Converting a result to float failed.\n{error}"
                        ));
                    }
                }
            }
            match tol {
                Some(t) => {
                    let margin = want.abs() * t;
                    got.iter()
                        .all(|g| want - margin <= *g && *g <= want + margin)
                }
                None => got.iter().all(|g| *g == want),
            }
        }
        None => record.iter().all(|v| crate::py::str_of(v) == pass_text),
    };
    if ok {
        Done::Success(None)
    } else {
        Done::Failed(error)
    }
}

/// SqlSensor's poke (without `success`/`failure` callables): runs `sql` with
/// `parameters` against the connection's SQLite file; no rows is "not yet" (an error
/// with `fail_on_empty`); else the first column of the first row decides: truthy is done.
///
/// With a `selector`, `failure` or `success` (Python callables), the first row goes to
/// the runner, which applies them as SqlSensor's poke does.
pub fn poke_sql(
    args: &Map<String, Value>,
    conn: &Value,
    log: &mut dyn FnMut(&str),
    python: &mut dyn FnMut(&Value) -> Result<Value, String>,
) -> Result<Poke, PokeError> {
    let null = Value::Null;
    let get = |k: &str| args.get(k).unwrap_or(&null);
    let path = match sqlite_path(conn) {
        Ok(p) => p,
        Err(e) => return Err(PokeError::Error(e)),
    };
    let sql = get("sql").as_str().unwrap_or("").to_string();
    log(&format!(
        "Poking: {sql} (with parameters {})",
        crate::py::repr(get("parameters"))
    ));
    let results = match run_sqlite(&path, &[sql], get("parameters"), false) {
        Ok(r) => r,
        Err(e) => return Err(PokeError::Error(e)),
    };
    let Some(row) = results
        .first()
        .and_then(|r| r.as_ref())
        .and_then(|rows| rows.first())
    else {
        if get("fail_on_empty").as_bool().unwrap_or(false) {
            return Err(PokeError::Error(
                "No rows returned, raising as per fail_on_empty flag".into(),
            ));
        }
        return Ok(Poke::NotYet);
    };
    let callables = ["selector", "failure", "success"];
    if callables.iter().any(|k| !get(k).is_null()) {
        let mut invoke = serde_json::json!({"kind": "sql", "row": row});
        for k in callables {
            invoke[k] = get(k).clone();
        }
        return match python(&invoke) {
            Ok(out) if out["check"] == Value::Bool(true) => Ok(Poke::Done(None)),
            Ok(_) => Ok(Poke::NotYet),
            Err(e) => Err(PokeError::Error(e)),
        };
    }
    match row.first() {
        Some(v) if truthy(v) => Ok(Poke::Done(None)),
        _ => Ok(Poke::NotYet),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sql_text_splits_outside_quotes_and_comments() {
        assert_eq!(
            split_sql("INSERT INTO t VALUES ('a;b'); -- x;y\nSELECT 1;;"),
            vec!["INSERT INTO t VALUES ('a;b')", "-- x;y\nSELECT 1"]
        );
        assert_eq!(statements(&json!("A; B"), false), vec!["A; B"]);
        assert_eq!(statements(&json!(["A", "B"]), false), vec!["A", "B"]);
    }

    #[test]
    fn value_checks_as_airflow() {
        assert_eq!(
            value_check(&[json!(10)], &json!(10), &Value::Null, "q"),
            Done::Success(None)
        );
        assert_eq!(
            value_check(&[json!(9.5)], &json!("10"), &json!(0.1), "q"),
            Done::Success(None)
        );
        assert!(matches!(
            value_check(&[json!(8)], &json!(10), &json!(0.1), "q"),
            Done::Failed(_)
        ));
        assert_eq!(
            value_check(&[json!("ok")], &json!("ok"), &Value::Null, "q"),
            Done::Success(None)
        );
    }

    #[test]
    fn the_sql_poke_reads_the_first_cell() {
        let dir = std::env::temp_dir().join(format!("updraft-sql-poke-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let db = dir.join("p.db");
        let _ = std::fs::remove_file(&db);
        let conn = json!({"conn_id": "db", "conn_type": "sqlite", "host": db.to_string_lossy()});
        let mut log = |_: &str| {};
        let run = |sql: &str| {
            run_sqlite(&db, &[sql.to_string()], &Value::Null, false).unwrap();
        };
        run("CREATE TABLE flags (done INTEGER, name TEXT)");
        let args = |extra: Value| {
            let mut a =
                json!({"sql": "SELECT done FROM flags WHERE name = :n", "parameters": {"n": "x"}});
            a.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            a.as_object().unwrap().clone()
        };
        assert_eq!(
            poke_sql(&args(json!({})), &conn, &mut log, &mut |_| Err(
                "no Python here".into()
            )),
            Ok(Poke::NotYet)
        );
        assert_eq!(
            poke_sql(
                &args(json!({"fail_on_empty": true})),
                &conn,
                &mut log,
                &mut |_| Err("no Python here".into())
            ),
            Err(PokeError::Error(
                "No rows returned, raising as per fail_on_empty flag".into()
            ))
        );
        run("INSERT INTO flags VALUES (0, 'x')");
        assert_eq!(
            poke_sql(&args(json!({})), &conn, &mut log, &mut |_| Err(
                "no Python here".into()
            )),
            Ok(Poke::NotYet)
        );
        run("UPDATE flags SET done = 1");
        assert_eq!(
            poke_sql(&args(json!({})), &conn, &mut log, &mut |_| Err(
                "no Python here".into()
            )),
            Ok(Poke::Done(None))
        );
        let other = json!({"conn_id": "pg", "conn_type": "postgres", "host": "h"});
        assert!(matches!(
            poke_sql(&args(json!({})), &other, &mut log, &mut |_| Err(
                "no Python here".into()
            )),
            Err(PokeError::Error(_))
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
