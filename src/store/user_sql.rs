//! SQL a task runs against a user's SQLite database (a `sqlite` connection): the
//! common-sql operators and SqlSensor. Not updraft's own database: nothing here touches
//! the store's tables, and the store's write discipline (`Store::write`) does not apply.
//! It lives here because this is the one module that names rusqlite.
//!
//! All statements of one call run in one transaction, committed at the end (Airflow's
//! DbApiHook with `autocommit` off); with `autocommit` on each commits by itself.

use std::path::Path;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};
use serde_json::Value;

/// One statement's result: its rows (each a list of column values), or `None` for a
/// statement that returns no columns (DML, DDL), as DbApiHook's `fetch_all_handler`.
pub type Rows = Option<Vec<Vec<Value>>>;

/// Opens `path` read-write (creating it, as Python's sqlite3 does) and runs `statements`
/// with `parameters` (a list binds `?` in order; a mapping binds `:name`).
pub fn run_sqlite(
    path: &Path,
    statements: &[String],
    parameters: &Value,
    autocommit: bool,
) -> Result<Vec<Rows>, String> {
    let mut conn = open(path, false)?;
    if autocommit {
        return statements
            .iter()
            .map(|s| one(&conn, s, parameters))
            .collect();
    }
    let tx = conn.transaction().map_err(|e| e.to_string())?;
    let mut out = Vec::with_capacity(statements.len());
    for s in statements {
        out.push(one(&tx, s, parameters)?);
    }
    tx.commit().map_err(|e| e.to_string())?;
    Ok(out)
}

/// Whether the file at `path` opens as a SQLite database (the connection test).
pub fn check_sqlite(path: &Path) -> Result<(), String> {
    let conn = open(path, true)?;
    conn.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))
        .map_err(|e| e.to_string())
}

fn open(path: &Path, read_only: bool) -> Result<Connection, String> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let conn = Connection::open_with_flags(path, flags)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(|e| e.to_string())?;
    Ok(conn)
}

fn one(conn: &Connection, sql: &str, parameters: &Value) -> Result<Rows, String> {
    let mut stmt = conn.prepare(sql).map_err(|e| e.to_string())?;
    match parameters {
        Value::Null => {}
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                stmt.raw_bind_parameter(i + 1, sql_value(v))
                    .map_err(|e| e.to_string())?;
            }
        }
        Value::Object(m) => {
            for (k, v) in m {
                let index = [":", "@", "$"]
                    .iter()
                    .find_map(|p| stmt.parameter_index(&format!("{p}{k}")).ok().flatten());
                if let Some(i) = index {
                    stmt.raw_bind_parameter(i, sql_value(v))
                        .map_err(|e| e.to_string())?;
                }
            }
        }
        other => {
            return Err(format!(
                "parameters must be a list or a mapping, not {other}"
            ));
        }
    }
    let columns = stmt.column_count();
    let mut rows = stmt.raw_query();
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(|e| e.to_string())? {
        let mut values = Vec::with_capacity(columns);
        for i in 0..columns {
            values.push(match row.get_ref(i).map_err(|e| e.to_string())? {
                ValueRef::Null => Value::Null,
                ValueRef::Integer(n) => Value::from(n),
                ValueRef::Real(f) => {
                    serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)
                }
                ValueRef::Text(t) => Value::String(String::from_utf8_lossy(t).into_owned()),
                ValueRef::Blob(b) => Value::String(String::from_utf8_lossy(b).into_owned()),
            });
        }
        out.push(values);
    }
    Ok((columns > 0).then_some(out))
}

fn sql_value(v: &Value) -> rusqlite::types::Value {
    use rusqlite::types::Value as V;
    match v {
        Value::Null => V::Null,
        Value::Bool(b) => V::Integer(i64::from(*b)),
        Value::Number(n) => match n.as_i64() {
            Some(i) => V::Integer(i),
            None => V::Real(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => V::Text(s.clone()),
        other => V::Text(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn statements_run_in_one_transaction_with_their_parameters() {
        let dir = std::env::temp_dir().join(format!("updraft-user-sql-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let db = dir.join("u.db");
        let _ = std::fs::remove_file(&db);
        let s = |x: &str| x.to_string();
        let out = run_sqlite(
            &db,
            &[
                s("CREATE TABLE t (a INTEGER, b TEXT)"),
                s("INSERT INTO t VALUES (?, ?)"),
                s("SELECT a, b FROM t"),
            ],
            &json!([1, "x"]),
            false,
        );
        // The CREATE takes no parameters: binding two fails, and nothing is committed.
        assert!(out.is_err(), "{out:?}");
        run_sqlite(
            &db,
            &[s("CREATE TABLE t (a INTEGER, b TEXT)")],
            &Value::Null,
            false,
        )
        .unwrap();
        let out = run_sqlite(
            &db,
            &[
                s("INSERT INTO t VALUES (:a, :b)"),
                s("SELECT a, b FROM t WHERE a = :a"),
            ],
            &json!({"a": 2, "b": "y"}),
            false,
        )
        .unwrap();
        assert_eq!(out, vec![None, Some(vec![vec![json!(2), json!("y")]])]);
        assert!(check_sqlite(&db).is_ok());
        assert!(check_sqlite(&dir.join("missing.db")).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
