//! The Core API's reads of DAG runs, task instances and XComs, filtered, ordered and
//! paged in SQL so that a list costs one page and not the whole history; and the few
//! writes only the API makes: notes, deleting a run, task instances for tasks added to
//! a DAG after its run was created.
//!
//! Callers name fields by their API names and each table maps them to SQL expressions
//! here: no text from a request ever becomes SQL, only bound values do.

use chrono::{DateTime, Utc};
use rusqlite::types::Value as Sql;
use rusqlite::{OptionalExtension, params, params_from_iter};
use serde_json::Value;

use super::Cached;
use super::db;
use super::runs::{RUN_COLS, TI_COLS, run_row, ti_row};
use super::{RunRow, Store, TiRow, Tx, parse_ts, ts};
use crate::error::{Error, Result};
use crate::model::Dag;

/// A comparison of a range filter (`*_gte`, `*_gt`, `*_lte`, `*_lt`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Gte,
    Gt,
    Lte,
    Lt,
}

impl Op {
    /// Every comparison with the suffix Airflow's query parameters give it.
    pub const SUFFIXES: [(&'static str, Op); 4] = [
        ("gte", Op::Gte),
        ("gt", Op::Gt),
        ("lte", Op::Lte),
        ("lt", Op::Lt),
    ];

    fn sql(self) -> &'static str {
        match self {
            Op::Gte => ">=",
            Op::Gt => ">",
            Op::Lte => "<=",
            Op::Lt => "<",
        }
    }
}

/// The value a range filter compares with.
#[derive(Debug, Clone, Copy)]
pub enum Bound {
    Time(DateTime<Utc>),
    Num(f64),
}

#[derive(Debug, Clone)]
enum Cond {
    /// Equal to any of these; `None` matches NULL (Airflow's `none` state).
    AnyOf(&'static str, Vec<Option<String>>),
    AnyInt(&'static str, Vec<i64>),
    Cmp(&'static str, Op, Bound),
    /// Airflow's `*_pattern`: any of these SQL `LIKE` patterns (the API parses them).
    Search(&'static str, Vec<String>),
    /// Airflow's `*_prefix_pattern`: any of these case-sensitive prefixes; an empty one
    /// matches any value that is not NULL.
    Prefix(&'static str, Vec<String>),
    /// Case-sensitive substring of the text (`conf_contains`).
    Contains(&'static str, String),
    /// Matches nothing: a filter on a value updraft never records.
    Nothing,
}

/// What a list asks for: conditions on fields, an order, one page.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    conds: Vec<Cond>,
    order: Vec<(&'static str, bool)>,
    /// `None` for every row.
    pub limit: Option<usize>,
    pub offset: usize,
}

impl ListQuery {
    pub fn any_of(&mut self, field: &'static str, values: Vec<Option<String>>) -> &mut Self {
        self.conds.push(Cond::AnyOf(field, values));
        self
    }

    pub fn any_int(&mut self, field: &'static str, values: Vec<i64>) -> &mut Self {
        self.conds.push(Cond::AnyInt(field, values));
        self
    }

    pub fn cmp(&mut self, field: &'static str, op: Op, bound: Bound) -> &mut Self {
        self.conds.push(Cond::Cmp(field, op, bound));
        self
    }

    pub fn search(&mut self, field: &'static str, likes: Vec<String>) -> &mut Self {
        self.conds.push(Cond::Search(field, likes));
        self
    }

    pub fn prefix(&mut self, field: &'static str, prefixes: Vec<String>) -> &mut Self {
        self.conds.push(Cond::Prefix(field, prefixes));
        self
    }

    pub fn contains(&mut self, field: &'static str, text: &str) -> &mut Self {
        self.conds.push(Cond::Contains(field, text.to_string()));
        self
    }

    pub fn nothing(&mut self) -> &mut Self {
        self.conds.push(Cond::Nothing);
        self
    }

    /// Adds a sort key; keys sort in the order they were added.
    pub fn order_by(&mut self, field: &'static str, desc: bool) -> &mut Self {
        self.order.push((field, desc));
        self
    }

    /// The WHERE clause, its arguments and the ORDER BY list, with fields resolved by
    /// the table's own map.
    fn build(&self, expr: fn(&str) -> Option<&'static str>) -> Result<(String, Vec<Sql>, String)> {
        let col = |f: &str| {
            expr(f).ok_or_else(|| Error::Usage(format!("cannot filter or sort by {f:?}")))
        };
        let mut wheres = vec!["1".to_string()];
        let mut args = Vec::new();
        for c in &self.conds {
            let clause = match c {
                Cond::AnyOf(f, values) => {
                    let e = col(f)?;
                    let texts: Vec<&String> = values.iter().flatten().collect();
                    let mut parts = Vec::new();
                    if !texts.is_empty() {
                        parts.push(format!("{e} IN (SELECT value FROM json_each(?))"));
                        args.push(Sql::Text(json_list(&texts)));
                    }
                    if values.iter().any(Option::is_none) {
                        parts.push(format!("{e} IS NULL"));
                    }
                    any(parts)
                }
                Cond::AnyInt(f, values) => {
                    let e = col(f)?;
                    args.push(Sql::Text(json_list(values)));
                    format!("{e} IN (SELECT value FROM json_each(?))")
                }
                Cond::Cmp(f, op, bound) => {
                    let e = col(f)?;
                    args.push(match bound {
                        Bound::Time(t) => Sql::Text(ts(*t)),
                        Bound::Num(x) => Sql::Real(*x),
                    });
                    format!("{e} {} ?", op.sql())
                }
                Cond::Search(f, likes) => {
                    let e = col(f)?;
                    let mut parts = Vec::new();
                    for t in likes {
                        parts.push(format!("{e} LIKE ?"));
                        args.push(Sql::Text(t.clone()));
                    }
                    any(parts)
                }
                Cond::Prefix(f, prefixes) => {
                    let e = col(f)?;
                    let mut parts = Vec::new();
                    for t in prefixes {
                        if t.is_empty() {
                            parts.push(format!("{e} IS NOT NULL"));
                        } else {
                            parts.push(format!("substr({e}, 1, ?) = ?"));
                            args.push(Sql::Integer(t.chars().count() as i64));
                            args.push(Sql::Text(t.to_string()));
                        }
                    }
                    any(parts)
                }
                Cond::Contains(f, text) => {
                    let e = col(f)?;
                    args.push(Sql::Text(text.clone()));
                    format!("instr({e}, ?) > 0")
                }
                Cond::Nothing => "0".to_string(),
            };
            wheres.push(clause);
        }
        let mut order = Vec::new();
        for (f, desc) in &self.order {
            order.push(format!(
                "{} {}",
                col(f)?,
                if *desc { "DESC" } else { "ASC" }
            ));
        }
        if order.is_empty() {
            order.push("rowid".to_string());
        }
        Ok((wheres.join(" AND "), args, order.join(", ")))
    }
}

fn json_list<T: serde::Serialize>(values: &[T]) -> String {
    serde_json::to_string(values).expect("strings and numbers serialize")
}

fn any(parts: Vec<String>) -> String {
    if parts.is_empty() {
        "0".to_string()
    } else {
        format!("({})", parts.join(" OR "))
    }
}

/// The display name of a row's DAG, from the stored DAG when there is one.
const DAG_DISPLAY: &str = "COALESCE((SELECT json_extract(d.serialized, '$.dag_display_name')
     FROM dag d WHERE d.dag_id = {t}.dag_id), {t}.dag_id)";

fn run_col(t: &str, col: &str) -> String {
    format!("(SELECT r.{col} FROM dag_run r WHERE r.dag_id = {t}.dag_id AND r.run_id = {t}.run_id)")
}

/// Run fields by their API names.
fn run_field(name: &str) -> Option<&'static str> {
    use std::sync::LazyLock;
    static DISPLAY: LazyLock<String> = LazyLock::new(|| DAG_DISPLAY.replace("{t}", "dag_run"));
    Some(match name {
        "id" => "id",
        "dag_id" => "dag_id",
        "run_id" | "dag_run_id" => "run_id",
        "state" => "state",
        "run_type" => "run_type",
        "logical_date" => "logical_date",
        "run_after" => "run_after",
        "start_date" => "start_date",
        "end_date" => "end_date",
        "updated_at" => "updated_at",
        "queued_at" => "queued_at",
        "data_interval_start" => "data_interval_start",
        "data_interval_end" => "data_interval_end",
        "conf" => "conf",
        "triggering_user_name" => "triggering_user_name",
        "duration" => "((julianday(end_date) - julianday(start_date)) * 86400.0)",
        "partition_date" | "partition_key" | "bundle_version" => "NULL",
        "dag_version" => "(SELECT v.version_number FROM dag_version v WHERE v.id = dag_version_id)",
        "dag_display_name" => DISPLAY.as_str(),
        _ => return None,
    })
}

/// Task instance fields by their API names.
fn ti_field(name: &str) -> Option<&'static str> {
    use std::sync::LazyLock;
    static DISPLAY: LazyLock<String> =
        LazyLock::new(|| DAG_DISPLAY.replace("{t}", "task_instance"));
    static RUN: LazyLock<[String; 4]> = LazyLock::new(|| {
        [
            "logical_date",
            "run_after",
            "data_interval_start",
            "data_interval_end",
        ]
        .map(|c| run_col("task_instance", c))
    });
    Some(match name {
        "id" => "id",
        "rowid" => "rowid",
        "dag_id" => "dag_id",
        "run_id" | "dag_run_id" => "run_id",
        "task_id" | "task_display_name" => "task_id",
        "map_index" => "map_index",
        "try_number" => "try_number",
        "state" => "state",
        "operator" | "operator_name" => "operator",
        "pool" => "pool",
        "start_date" => "start_date",
        "end_date" => "end_date",
        "updated_at" => "updated_at",
        "duration" => "duration",
        "queue" => "'default'",
        "rendered_map_index" => "rendered_map_index",
        "executor" | "dag_version" => "NULL",
        "dag_display_name" => DISPLAY.as_str(),
        "logical_date" => RUN[0].as_str(),
        "run_after" => RUN[1].as_str(),
        "data_interval_start" => RUN[2].as_str(),
        "data_interval_end" => RUN[3].as_str(),
        _ => return None,
    })
}

/// XCom fields by their API names.
fn xcom_field(name: &str) -> Option<&'static str> {
    use std::sync::LazyLock;
    static DISPLAY: LazyLock<String> = LazyLock::new(|| DAG_DISPLAY.replace("{t}", "xcom"));
    static RUN: LazyLock<[String; 2]> =
        LazyLock::new(|| ["logical_date", "run_after"].map(|c| run_col("xcom", c)));
    Some(match name {
        "rowid" => "rowid",
        "dag_id" => "dag_id",
        "run_id" => "run_id",
        "task_id" | "task_display_name" => "task_id",
        "map_index" => "map_index",
        "key" => "key",
        "timestamp" => "timestamp",
        "dag_display_name" => DISPLAY.as_str(),
        "logical_date" => RUN[0].as_str(),
        "run_after" => RUN[1].as_str(),
        _ => return None,
    })
}

/// An XCom as the API shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct XcomRow {
    pub dag_id: String,
    pub run_id: String,
    pub task_id: String,
    pub map_index: i64,
    pub key: String,
    pub value: Value,
    pub timestamp: DateTime<Utc>,
}

fn page_args(q: &ListQuery, mut args: Vec<Sql>) -> Vec<Sql> {
    args.push(Sql::Integer(
        q.limit.map_or(-1, |l| l.min(i64::MAX as usize) as i64),
    ));
    args.push(Sql::Integer(q.offset.min(i64::MAX as usize) as i64));
    args
}

impl Store {
    fn count(&self, table: &str, wheres: &str, args: &[Sql]) -> Result<usize> {
        self.conn
            .row(
                &format!("SELECT COUNT(*) FROM {table} WHERE {wheres}"),
                params_from_iter(args.iter()),
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as usize)
            .map_err(|e| self.err(e))
    }

    /// One page of the DAG runs that match, and how many match in all.
    pub fn list_runs(&self, q: &ListQuery) -> Result<(Vec<RunRow>, usize)> {
        let (wheres, args, order) = q.build(run_field)?;
        let total = self.count("dag_run", &wheres, &args)?;
        let rows = self.query(
            &format!(
                "SELECT {RUN_COLS} FROM dag_run WHERE {wheres} ORDER BY {order} LIMIT ? OFFSET ?"
            ),
            params_from_iter(page_args(q, args).iter()),
            run_row,
        )?;
        Ok((rows, total))
    }

    /// One page of the task instances that match, and how many match in all.
    pub fn list_tis(&self, q: &ListQuery) -> Result<(Vec<TiRow>, usize)> {
        let (wheres, args, order) = q.build(ti_field)?;
        let total = self.count("task_instance", &wheres, &args)?;
        let rows = self.query(
            &format!(
                "SELECT {TI_COLS} FROM task_instance WHERE {wheres} ORDER BY {order} LIMIT ? OFFSET ?"
            ),
            params_from_iter(page_args(q, args).iter()),
            ti_row,
        )?;
        Ok((rows, total))
    }

    /// One page of the XComs that match, and how many match in all.
    pub fn list_xcoms(&self, q: &ListQuery) -> Result<(Vec<XcomRow>, usize)> {
        let (wheres, args, order) = q.build(xcom_field)?;
        let total = self.count("xcom", &wheres, &args)?;
        let rows = self.query(
            &format!(
                "SELECT dag_id, run_id, task_id, map_index, key, value, timestamp FROM xcom
                 WHERE {wheres} ORDER BY {order} LIMIT ? OFFSET ?"
            ),
            params_from_iter(page_args(q, args).iter()),
            |r| {
                let text: String = r.get(5)?;
                let stamp: String = r.get(6)?;
                Ok(XcomRow {
                    dag_id: r.get(0)?,
                    run_id: r.get(1)?,
                    task_id: r.get(2)?,
                    map_index: r.get(3)?,
                    key: r.get(4)?,
                    value: serde_json::from_str(&text).unwrap_or(Value::String(text)),
                    timestamp: parse_ts(&stamp).unwrap_or_default(),
                })
            },
        )?;
        Ok((rows, total))
    }

    /// The runs of a DAG whose logical date lies in `[from, to]`, oldest first.
    pub fn runs_between(
        &self,
        dag_id: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<RunRow>> {
        self.query(
            &format!(
                "SELECT {RUN_COLS} FROM dag_run WHERE dag_id = ?1 AND logical_date >= ?2 AND logical_date <= ?3
                 ORDER BY logical_date, id"
            ),
            params![dag_id, ts(from), ts(to)],
            run_row,
        )
    }

    /// The run of a DAG with the latest logical date before `before`, in `state` if given
    /// (the Task SDK's "previous run" questions; one indexed lookup, not a scan).
    pub fn run_before(
        &self,
        dag_id: &str,
        before: DateTime<Utc>,
        state: Option<&str>,
    ) -> Result<Option<RunRow>> {
        self.conn
            .row(
                &format!(
                    "SELECT {RUN_COLS} FROM dag_run WHERE dag_id = ?1 AND logical_date < ?2
                     AND (?3 IS NULL OR state = ?3) ORDER BY logical_date DESC LIMIT 1"
                ),
                params![dag_id, ts(before), state],
                run_row,
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// The earliest and latest logical dates among a DAG's runs.
    pub fn logical_date_span(
        &self,
        dag_id: &str,
    ) -> Result<Option<(DateTime<Utc>, DateTime<Utc>)>> {
        let span: Option<(Option<String>, Option<String>)> = self
            .conn
            .row(
                "SELECT MIN(logical_date), MAX(logical_date) FROM dag_run WHERE dag_id = ?1",
                [dag_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        Ok(match span {
            Some((Some(a), Some(b))) => parse_ts(&a).zip(parse_ts(&b)),
            _ => None,
        })
    }
}

impl Tx<'_> {
    /// Sets or removes (`None`) a run's note.
    pub fn set_run_note(&self, id: i64, note: Option<&str>) -> Result<()> {
        self.0
            .exec(
                "UPDATE dag_run SET note = ?2 WHERE id = ?1",
                params![id, note],
            )
            .map_err(db)?;
        Ok(())
    }

    /// Sets or removes (`None`) a task instance's note.
    pub fn set_ti_note(&self, id: &str, note: Option<&str>) -> Result<()> {
        self.0
            .exec(
                "UPDATE task_instance SET note = ?2 WHERE id = ?1",
                params![id, note],
            )
            .map_err(db)?;
        Ok(())
    }

    /// Starts a run's clock again after its task instances were cleared, as Airflow's
    /// clear does: no start or end yet, one more clear counted.
    pub fn restart_run(&self, id: i64) -> Result<()> {
        self.0
            .exec(
                "UPDATE dag_run SET start_date = NULL, end_date = NULL, clear_number = clear_number + 1
                 WHERE id = ?1",
                [id],
            )
            .map_err(db)?;
        Ok(())
    }

    /// Deletes a run with its task instances, their history and XComs (the foreign keys
    /// cascade). False if it was already gone.
    pub fn delete_run(&self, id: i64) -> Result<bool> {
        let n = self
            .0
            .exec("DELETE FROM dag_run WHERE id = ?1", [id])
            .map_err(db)?;
        Ok(n == 1)
    }

    /// Adds a task instance (no state) for every task of `dag` that the run has none
    /// for: tasks added to the DAG after the run was created. Returns their task ids.
    pub fn add_missing_tis(
        &self,
        dag: &Dag,
        run_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<String>> {
        let weights = dag.effective_weights();
        let mut added = Vec::new();
        for task in &dag.tasks {
            let n = self
                .0
                .exec(
                    "INSERT OR IGNORE INTO task_instance (id, dag_id, run_id, task_id, max_tries, operator, pool,
                         pool_slots, priority_weight, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                    params![
                        crate::ids::uuid7(now),
                        dag.dag_id,
                        run_id,
                        task.task_id,
                        task.retries,
                        task.operator.class_name(),
                        task.pool,
                        task.pool_slots,
                        weights[task.task_id.as_str()],
                        ts(now),
                    ],
                )
                .map_err(db)?;
            if n == 1 {
                added.push(task.task_id.clone());
            }
        }
        Ok(added)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_become_bound_sql() {
        let mut q = ListQuery::default();
        q.any_of("state", vec![Some("failed".into()), None])
            .search("run_id", vec!["%manual%".into(), "%sched%".into()])
            .prefix("dag_id", vec!["exa".into()])
            .cmp("duration", Op::Gte, Bound::Num(1.5))
            .order_by("logical_date", true);
        let (wheres, args, order) = q.build(run_field).unwrap();
        assert_eq!(
            wheres,
            "1 AND (state IN (SELECT value FROM json_each(?)) OR state IS NULL) AND (run_id LIKE ? OR run_id LIKE ?) \
             AND (substr(dag_id, 1, ?) = ?) AND ((julianday(end_date) - julianday(start_date)) * 86400.0) >= ?"
        );
        assert_eq!(args.len(), 6);
        assert_eq!(args[1], Sql::Text("%manual%".into()));
        assert_eq!(args[4], Sql::Text("exa".into()));
        assert_eq!(order, "logical_date DESC");
        let mut bad = ListQuery::default();
        bad.order_by("nope", false);
        assert!(bad.build(run_field).is_err());
    }

    #[test]
    fn run_before_finds_the_latest_earlier_run_in_a_state() {
        use std::hash::{BuildHasher, RandomState};
        let dir = std::env::temp_dir().join(format!(
            "updraft-qruns-{}-{}",
            std::process::id(),
            RandomState::new().hash_one(0u8)
        ));
        let store = Store::open(&dir.join("t.db")).unwrap();
        let day = |d: u32| parse_ts(&format!("2024-01-{d:02}T00:00:00+00:00")).unwrap();
        for (id, dag, d, state) in [
            ("r1", "a", Some(1), "success"),
            ("r2", "a", Some(2), "failed"),
            ("r3", "a", Some(3), "success"),
            ("m", "a", None, "success"),
            ("o4", "b", Some(4), "success"),
        ] {
            store
                .conn
                .execute(
                    "INSERT INTO dag_run (dag_id, run_id, run_type, state, logical_date, run_after, updated_at)
                     VALUES (?1, ?2, 'scheduled', ?3, ?4, ?5, ?5)",
                    params![dag, id, state, d.map(|d| ts(day(d))), ts(day(1))],
                )
                .unwrap();
        }
        let before = |d, state| {
            store
                .run_before("a", day(d), state)
                .unwrap()
                .map(|r| r.run_id)
        };
        assert_eq!(before(5, None).as_deref(), Some("r3"));
        assert_eq!(before(3, None).as_deref(), Some("r2"));
        assert_eq!(before(3, Some("success")).as_deref(), Some("r1"));
        assert_eq!(before(1, None), None);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
