//! What the Core API's DAG pages read beyond the DAG rows themselves: the latest run of
//! each DAG, run counts by state, tags, the audit log with its filters, and the deletion
//! of a DAG with its history.
//!
//! The audit log grows with every task transition, so its filters, order and paging run
//! in SQL; the other reads are small (one row per DAG or per file) and the API filters
//! them itself.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use rusqlite::types::Value as Sql;
use rusqlite::{OptionalExtension, params, params_from_iter};

use super::Cached;
use super::{Store, db, parse_ts, ts};
use crate::error::{Error, Result};
use crate::model::RunState;

/// The newest run of a DAG (highest id), as Airflow's DAG list joins it.
#[derive(Debug, Clone, PartialEq)]
pub struct LatestRun {
    pub state: RunState,
    pub start_date: Option<DateTime<Utc>>,
}

/// A column of the audit log that filters and orders name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogCol {
    Id,
    When,
    DagId,
    TaskId,
    RunId,
    MapIndex,
    TryNumber,
    Event,
    LogicalDate,
    Owner,
    Extra,
}

impl LogCol {
    fn sql(self) -> &'static str {
        match self {
            LogCol::Id => "l.id",
            LogCol::When => "l.dttm",
            LogCol::DagId => "l.dag_id",
            LogCol::TaskId => "l.task_id",
            LogCol::RunId => "l.run_id",
            LogCol::MapIndex => "l.map_index",
            LogCol::TryNumber => "l.try_number",
            LogCol::Event => "l.event",
            LogCol::LogicalDate => "l.logical_date",
            LogCol::Owner => "l.owner",
            LogCol::Extra => "l.extra",
        }
    }
}

/// One condition on the audit log; all of a query's conditions must hold.
#[derive(Debug, Clone)]
pub enum LogFilter {
    Eq(LogCol, String),
    EqInt(LogCol, i64),
    In(LogCol, Vec<String>),
    NotIn(LogCol, Vec<String>),
    Before(DateTime<Utc>),
    After(DateTime<Utc>),
    /// Any of these SQL LIKE patterns (case-insensitive for ASCII, as SQLite's LIKE is).
    Like(LogCol, Vec<String>),
    /// Any of these case-sensitive prefixes.
    Prefix(LogCol, Vec<String>),
}

/// An audit log row with the display names Airflow joins in.
#[derive(Debug, Clone, PartialEq)]
pub struct LogRow {
    pub id: i64,
    pub when: DateTime<Utc>,
    pub dag_id: Option<String>,
    pub task_id: Option<String>,
    pub run_id: Option<String>,
    pub map_index: Option<i64>,
    pub try_number: Option<i64>,
    pub event: String,
    pub logical_date: Option<DateTime<Utc>>,
    pub owner: Option<String>,
    pub extra: Option<String>,
    /// The DAG's display name, when the DAG still exists.
    pub dag_display_name: Option<String>,
    /// The task's id, when its task instance still exists (updraft's tasks have no
    /// display names of their own).
    pub task_display_name: Option<String>,
}

const LOG_SELECT: &str =
    "SELECT l.id, l.dttm, l.dag_id, l.task_id, l.run_id, l.map_index, l.try_number, l.event,
        l.logical_date, l.owner, l.extra,
        CASE WHEN d.dag_id IS NULL THEN NULL
             ELSE COALESCE(json_extract(d.serialized, '$.dag_display_name'), d.dag_id) END,
        (SELECT ti.task_id FROM task_instance ti
          WHERE ti.dag_id = l.dag_id AND ti.run_id = l.run_id AND ti.task_id = l.task_id
            AND ti.map_index = l.map_index)
     FROM log l LEFT JOIN dag d ON d.dag_id = l.dag_id";

impl Store {
    /// The newest run of every DAG that has one.
    pub fn latest_runs(&self) -> Result<HashMap<String, LatestRun>> {
        let rows: Vec<(String, String, Option<String>)> = self.query(
            "SELECT dag_id, state, start_date FROM dag_run
             WHERE id IN (SELECT MAX(id) FROM dag_run GROUP BY dag_id)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        Ok(rows
            .into_iter()
            .filter_map(|(dag_id, state, start)| {
                let state = RunState::parse(&state)?;
                let start_date = start.as_deref().and_then(parse_ts);
                Some((dag_id, LatestRun { state, start_date }))
            })
            .collect())
    }

    /// How many runs of a DAG are running (not queued): Airflow's `active_runs_count`.
    pub fn running_run_count(&self, dag_id: &str) -> Result<u32> {
        self.conn
            .row(
                "SELECT COUNT(*) FROM dag_run WHERE dag_id = ?1 AND state = 'running'",
                [dag_id],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))
    }

    /// (dag_id, run state, count) for the runs of DAGs that exist, by DAG id; only the
    /// listed DAGs when `dag_ids` is not empty.
    pub fn run_counts(&self, dag_ids: &[String]) -> Result<Vec<(String, String, u64)>> {
        let ids = serde_json::to_string(dag_ids).expect("strings serialize");
        self.query(
            "SELECT r.dag_id, r.state, COUNT(*) FROM dag_run r JOIN dag d ON d.dag_id = r.dag_id
             WHERE json_array_length(?1) = 0 OR r.dag_id IN (SELECT value FROM json_each(?1))
             GROUP BY r.dag_id, r.state ORDER BY r.dag_id",
            [ids],
            |r| Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)?.max(0) as u64)),
        )
    }

    /// The names of the tags of DAGs that are not stale, each once, in name order.
    pub fn tag_names(&self) -> Result<Vec<String>> {
        self.query(
            "SELECT DISTINCT t.name FROM dag_tag t JOIN dag d ON d.dag_id = t.dag_id
             WHERE d.is_stale = 0 ORDER BY t.name",
            [],
            |r| r.get(0),
        )
    }

    /// When a file was last read by the DAG processor, whatever came of it.
    pub fn file_last_parsed(
        &self,
        bundle: &str,
        relative_path: &str,
    ) -> Result<Option<DateTime<Utc>>> {
        let s: Option<String> = self
            .conn
            .row(
                "SELECT last_parsed FROM dag_file WHERE bundle_name = ?1 AND relative_path = ?2",
                [bundle, relative_path],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        Ok(s.as_deref().and_then(parse_ts))
    }

    /// One page of the audit log: the total that matches `filters`, and the rows from
    /// `offset`, at most `limit`, in `order` (column, descending), ties by id.
    pub fn event_logs(
        &self,
        filters: &[LogFilter],
        order: &[(LogCol, bool)],
        limit: usize,
        offset: usize,
    ) -> Result<(u64, Vec<LogRow>)> {
        let mut args: Vec<Sql> = Vec::new();
        let mut conds: Vec<String> = Vec::new();
        for f in filters {
            let mut arg = |v: Sql| {
                args.push(v);
                format!("?{}", args.len())
            };
            let cond = match f {
                LogFilter::Eq(c, v) => format!("{} = {}", c.sql(), arg(Sql::Text(v.clone()))),
                LogFilter::EqInt(c, v) => format!("{} = {}", c.sql(), arg(Sql::Integer(*v))),
                LogFilter::In(c, vs) | LogFilter::NotIn(c, vs) => {
                    let list = serde_json::to_string(vs).expect("strings serialize");
                    let not = if matches!(f, LogFilter::NotIn(..)) {
                        "NOT "
                    } else {
                        ""
                    };
                    // NOT IN leaves rows whose column is NULL out, as SQL does in Airflow.
                    format!(
                        "{} {not}IN (SELECT value FROM json_each({}))",
                        c.sql(),
                        arg(Sql::Text(list))
                    )
                }
                LogFilter::Before(t) => format!("l.dttm < {}", arg(Sql::Text(ts(*t)))),
                LogFilter::After(t) => format!("l.dttm > {}", arg(Sql::Text(ts(*t)))),
                LogFilter::Like(c, pats) => any(pats
                    .iter()
                    .map(|p| format!("{} LIKE {}", c.sql(), arg(Sql::Text(p.clone()))))),
                LogFilter::Prefix(c, pats) => any(pats.iter().map(|p| {
                    let n = arg(Sql::Text(p.clone()));
                    format!("substr({}, 1, length({n})) = {n}", c.sql())
                })),
            };
            conds.push(cond);
        }
        let filter = if conds.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conds.join(" AND "))
        };
        let total: i64 = self
            .conn
            .row(
                &format!("SELECT COUNT(*) FROM log l{filter}"),
                params_from_iter(args.iter()),
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))?;
        let mut keys: Vec<String> = order
            .iter()
            .map(|(c, desc)| format!("{} {}", c.sql(), if *desc { "DESC" } else { "ASC" }))
            .collect();
        if !order.iter().any(|(c, _)| *c == LogCol::Id) {
            let desc = order.first().is_some_and(|(_, d)| *d);
            keys.push(format!("l.id {}", if desc { "DESC" } else { "ASC" }));
        }
        args.push(Sql::Integer(i64::try_from(limit).unwrap_or(i64::MAX)));
        args.push(Sql::Integer(i64::try_from(offset).unwrap_or(i64::MAX)));
        let sql = format!(
            "{LOG_SELECT}{filter} ORDER BY {} LIMIT ?{} OFFSET ?{}",
            keys.join(", "),
            args.len() - 1,
            args.len()
        );
        let rows = self.query(&sql, params_from_iter(args.iter()), log_row)?;
        Ok((total as u64, rows))
    }

    /// One audit log row by id.
    pub fn event_log(&self, id: i64) -> Result<Option<LogRow>> {
        self.conn
            .row(&format!("{LOG_SELECT} WHERE l.id = ?1"), [id], log_row)
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Deletes a DAG and its history (runs, task instances and their tries, XComs, tags)
    /// and its file's import error, as Airflow's `delete_dag` does; the audit log stays.
    /// The file is marked for re-reading, so if it still defines the DAG, the next DAG
    /// processor pass adds it again. A `Conflict` while a task instance of the DAG is
    /// running, `NotFound` if there is no such DAG (either with Airflow's text).
    pub fn delete_dag(&mut self, dag_id: &str) -> Result<()> {
        let tx = self.begin()?;
        let running: bool = tx
            .row(
                "SELECT EXISTS (SELECT 1 FROM task_instance WHERE dag_id = ?1 AND state = 'running')",
                [dag_id],
                |r| r.get(0),
            )
            .map_err(db)?;
        if running {
            return Err(Error::Conflict(format!(
                "Task instances of dag with id: '{dag_id}' are still running"
            )));
        }
        let file: Option<(String, String)> = tx
            .row(
                "SELECT bundle_name, relative_fileloc FROM dag WHERE dag_id = ?1",
                [dag_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(db)?;
        let Some((bundle, file)) = file else {
            return Err(Error::NotFound(format!(
                "Dag with id: {dag_id} was not found"
            )));
        };
        for sql in [
            "DELETE FROM task_instance_history WHERE dag_id = ?1",
            "DELETE FROM task_instance WHERE dag_id = ?1",
            "DELETE FROM xcom WHERE dag_id = ?1",
            "DELETE FROM dag_run WHERE dag_id = ?1",
            "DELETE FROM dag_tag WHERE dag_id = ?1",
            "DELETE FROM dag WHERE dag_id = ?1",
        ] {
            tx.exec(sql, [dag_id]).map_err(db)?;
        }
        tx.exec(
            "DELETE FROM import_error WHERE bundle_name = ?1 AND filename = ?2",
            [&bundle, &file],
        )
        .map_err(db)?;
        // A file with other DAGs keeps its row (their source stays readable) but gets a
        // state no file has, so the processor reads it again; a file whose last DAG this
        // was is forgotten, which also covers the examples, compared by text, not mtime.
        let others: bool = tx
            .row(
                "SELECT EXISTS (SELECT 1 FROM dag WHERE bundle_name = ?1 AND relative_fileloc = ?2)",
                [&bundle, &file],
                |r| r.get(0),
            )
            .map_err(db)?;
        let sql = if others {
            "UPDATE dag_file SET mtime_ns = -1, size = -1 WHERE bundle_name = ?1 AND relative_path = ?2"
        } else {
            "DELETE FROM dag_file WHERE bundle_name = ?1 AND relative_path = ?2"
        };
        tx.exec(sql, params![bundle, file]).map_err(db)?;
        tx.commit().map_err(db)
    }
}

/// `(a OR b ...)`; `1` (true) for no alternatives.
fn any(parts: impl Iterator<Item = String>) -> String {
    let parts: Vec<String> = parts.collect();
    if parts.is_empty() {
        "1".to_string()
    } else {
        format!("({})", parts.join(" OR "))
    }
}

fn log_row(r: &rusqlite::Row) -> rusqlite::Result<LogRow> {
    let opt_time = |i: usize| -> rusqlite::Result<Option<DateTime<Utc>>> {
        Ok(r.get::<_, Option<String>>(i)?.as_deref().and_then(parse_ts))
    };
    Ok(LogRow {
        id: r.get(0)?,
        when: super::dags::time_col(r, 1)?,
        dag_id: r.get(2)?,
        task_id: r.get(3)?,
        run_id: r.get(4)?,
        map_index: r.get(5)?,
        try_number: r.get(6)?,
        event: r.get(7)?,
        logical_date: opt_time(8)?,
        owner: r.get(9)?,
        extra: r.get(10)?,
        dag_display_name: r.get(11)?,
        task_display_name: r.get(12)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Event;

    #[test]
    fn event_logs_filter_order_and_page_in_sql() {
        let (dir, mut store) = crate::store::temp_store("qdags");
        let t0 = parse_ts("2024-01-01T00:00:00+00:00").unwrap();
        for (i, (event, dag, owner)) in [
            ("patch_dag", Some("a"), Some("user")),
            ("trigger_dag_run", Some("a"), Some("admin")),
            ("pause", Some("b"), None),
            ("patch_dag", Some("b"), Some("user")),
        ]
        .into_iter()
        .enumerate()
        {
            let ev = Event {
                event: event.into(),
                dag_id: dag.map(str::to_string),
                owner: owner.map(str::to_string),
                ..Event::default()
            };
            let at = t0 + chrono::TimeDelta::minutes(i as i64);
            store.write(|tx| tx.event(&ev, at)).unwrap();
        }
        let ids = |filters: &[LogFilter], order: &[(LogCol, bool)], limit, offset| {
            let (total, rows) = store.event_logs(filters, order, limit, offset).unwrap();
            (total, rows.iter().map(|r| r.id).collect::<Vec<_>>())
        };
        assert_eq!(ids(&[], &[(LogCol::Id, false)], 2, 1), (4, vec![2, 3]));
        assert_eq!(
            ids(&[], &[(LogCol::Id, true)], 10, 0),
            (4, vec![4, 3, 2, 1])
        );
        let patch = LogFilter::Eq(LogCol::Event, "patch_dag".into());
        assert_eq!(ids(&[patch], &[], 10, 0), (2, vec![1, 4]));
        let not = LogFilter::NotIn(LogCol::Event, vec!["patch_dag".into(), "pause".into()]);
        assert_eq!(ids(&[not], &[], 10, 0), (1, vec![2]));
        let like = LogFilter::Like(LogCol::Event, vec!["%PATCH%".into(), "%paus%".into()]);
        assert_eq!(ids(&[like], &[], 10, 0).1, vec![1, 3, 4]);
        let prefix = LogFilter::Prefix(LogCol::Event, vec!["Patch".into()]);
        assert_eq!(ids(&[prefix], &[], 10, 0).1, Vec::<i64>::new());
        let window = [
            LogFilter::After(t0),
            LogFilter::Before(t0 + chrono::TimeDelta::minutes(3)),
        ];
        assert_eq!(ids(&window, &[], 10, 0).1, vec![2, 3]);
        // Owner descending puts NULL last, as SQLite sorts; ties go by id, descending too.
        assert_eq!(
            ids(&[], &[(LogCol::Owner, true)], 10, 0).1,
            vec![4, 1, 2, 3]
        );
        assert!(store.event_log(9).unwrap().is_none());
        assert_eq!(store.event_log(3).unwrap().unwrap().event, "pause");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
