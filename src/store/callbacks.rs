//! DAG-level callback requests (Airflow's `DagCallbackRequest`): the scheduler records one
//! in the transaction that ends a run whose DAG has a callback for that end; the
//! executor's callback runner claims it (queued -> running) and finishes it (success or
//! failed) through the Execution API. Each move is a compare-and-set, so a request handed
//! over twice (a restarted scheduler hands over the queued ones again) runs once.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, Row, params};

use super::runs::opt_time;
use super::{Cached, Store, Tx, db, ts};
use crate::error::Result;

/// A DAG callback request as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct DagCallbackRow {
    pub id: i64,
    pub dag_id: String,
    pub run_id: String,
    /// `on_failure_callback` when true, else `on_success_callback`.
    pub is_failure: bool,
    /// Airflow's `msg`: `success`, `task_failure`, `all_tasks_deadlocked`, `timed_out`.
    pub reason: String,
    /// The task instance whose context the callback gets, when the scheduler chose one.
    pub ti_id: Option<String>,
    /// `queued`, `running`, `success` or `failed`.
    pub state: String,
    pub end_date: Option<DateTime<Utc>>,
}

const COLS: &str = "id, dag_id, run_id, is_failure, reason, ti_id, state, end_date";

fn row(r: &Row) -> rusqlite::Result<DagCallbackRow> {
    Ok(DagCallbackRow {
        id: r.get(0)?,
        dag_id: r.get(1)?,
        run_id: r.get(2)?,
        is_failure: r.get(3)?,
        reason: r.get(4)?,
        ti_id: r.get(5)?,
        state: r.get(6)?,
        end_date: opt_time(r, 7)?,
    })
}

impl Store {
    /// One DAG callback request by id.
    pub fn dag_callback(&self, id: i64) -> Result<Option<DagCallbackRow>> {
        self.conn
            .row(
                &format!("SELECT {COLS} FROM dag_callback WHERE id = ?1"),
                [id],
                row,
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// The requests not claimed yet, oldest first (from a partial index: usually none).
    pub fn queued_dag_callbacks(&self) -> Result<Vec<DagCallbackRow>> {
        self.query(
            &format!("SELECT {COLS} FROM dag_callback WHERE state = 'queued' ORDER BY id"),
            [],
            row,
        )
    }

    /// Every request of one run, oldest first.
    pub fn dag_callbacks_of_run(&self, dag_id: &str, run_id: &str) -> Result<Vec<DagCallbackRow>> {
        self.query(
            &format!(
                "SELECT {COLS} FROM dag_callback WHERE dag_id = ?1 AND run_id = ?2 ORDER BY id"
            ),
            params![dag_id, run_id],
            row,
        )
    }
}

impl Tx<'_> {
    /// Records a request to run a DAG's callbacks for the end of one run; its id.
    pub fn add_dag_callback(
        &self,
        dag_id: &str,
        run_id: &str,
        is_failure: bool,
        reason: &str,
        ti_id: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<i64> {
        self.0
            .exec(
                "INSERT INTO dag_callback (dag_id, run_id, is_failure, reason, ti_id, state, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'queued', ?6)",
                params![dag_id, run_id, is_failure, reason, ti_id, ts(now)],
            )
            .map_err(db)?;
        Ok(self.0.last_insert_rowid())
    }

    /// Moves a request from `from` to `to` (compare-and-set); true if it moved.
    pub fn set_dag_callback_state(
        &self,
        id: i64,
        from: &str,
        to: &str,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let ended = matches!(to, "success" | "failed").then(|| ts(now));
        let n = self
            .0
            .exec(
                "UPDATE dag_callback SET state = ?3, end_date = COALESCE(?4, end_date)
                 WHERE id = ?1 AND state = ?2",
                params![id, from, to, ended],
            )
            .map_err(db)?;
        Ok(n == 1)
    }
}
