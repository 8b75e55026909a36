//! Backfills (Airflow 3's `backfill` and `backfill_dag_run` tables): rows, reads, and
//! the writes a backfill's life needs: create it with its runs, pause, cancel, complete.
//!
//! A backfill, its runs and its skipped dates are written in one transaction (see
//! `backfill::create`), so a reader never sees a backfill without its runs; `complete`
//! re-checks in SQL that no run is still active, so it cannot race a run's start.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, Row, params};
use serde_json::Value;

use super::dags::time_col;
use super::runs::{RUN_COLS, TI_COLS, opt_time, run_row, ti_row};
use super::{Cached, Store, Tx, db, ts};
use crate::error::Result;
use crate::model::RunState;
use crate::store::{RunRow, TiRow};

/// A backfill as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct BackfillRow {
    pub id: i64,
    pub dag_id: String,
    pub from_date: DateTime<Utc>,
    pub to_date: DateTime<Utc>,
    pub dag_run_conf: Value,
    pub is_paused: bool,
    pub reprocess_behavior: String,
    pub max_active_runs: i64,
    pub created_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
    pub triggering_user_name: Option<String>,
}

/// What a new backfill is made of.
pub struct NewBackfill<'a> {
    pub dag_id: &'a str,
    pub from_date: DateTime<Utc>,
    pub to_date: DateTime<Utc>,
    pub dag_run_conf: &'a Value,
    pub reprocess_behavior: &'a str,
    pub max_active_runs: i64,
    pub user: Option<&'a str>,
}

/// How far a backfill has come: its runs by state, and the dates it skipped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    pub queued: u32,
    pub running: u32,
    pub success: u32,
    pub failed: u32,
    pub skipped: u32,
}

/// One date of a backfill: its logical date, its run's row id (none when skipped) and
/// why it was skipped (Airflow's `exception_reason`).
pub type BackfillDate = (Option<DateTime<Utc>>, Option<i64>, Option<String>);

/// A backfill that is not completed, as the scheduler needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenBackfill {
    pub id: i64,
    pub max_active_runs: i64,
    pub is_paused: bool,
}

const COLS: &str = "id, dag_id, from_date, to_date, dag_run_conf, is_paused, reprocess_behavior,
    max_active_runs, created_at, completed_at, updated_at, triggering_user_name";

fn row(r: &Row) -> rusqlite::Result<BackfillRow> {
    let conf: String = r.get(4)?;
    Ok(BackfillRow {
        id: r.get(0)?,
        dag_id: r.get(1)?,
        from_date: time_col(r, 2)?,
        to_date: time_col(r, 3)?,
        dag_run_conf: serde_json::from_str(&conf).unwrap_or(Value::Object(Default::default())),
        is_paused: r.get(5)?,
        reprocess_behavior: r.get(6)?,
        max_active_runs: r.get(7)?,
        created_at: time_col(r, 8)?,
        completed_at: opt_time(r, 9)?,
        updated_at: time_col(r, 10)?,
        triggering_user_name: r.get(11)?,
    })
}

impl Store {
    /// One backfill by id.
    pub fn backfill(&self, id: i64) -> Result<Option<BackfillRow>> {
        self.conn
            .row(
                &format!("SELECT {COLS} FROM backfill WHERE id = ?1"),
                [id],
                row,
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// One page of a DAG's backfills by id (`desc` for newest first), and how many it has.
    pub fn backfills_of(
        &self,
        dag_id: &str,
        desc: bool,
        limit: usize,
        offset: usize,
    ) -> Result<(Vec<BackfillRow>, u64)> {
        let order = if desc { "DESC" } else { "ASC" };
        let rows = self.query(
            &format!(
                "SELECT {COLS} FROM backfill WHERE dag_id = ?1 ORDER BY id {order} LIMIT ?2 OFFSET ?3"
            ),
            params![dag_id, limit as i64, offset as i64],
            row,
        )?;
        let total: i64 = self
            .conn
            .row(
                "SELECT COUNT(*) FROM backfill WHERE dag_id = ?1",
                [dag_id],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))?;
        Ok((rows, total.max(0) as u64))
    }

    /// The backfills not completed yet, from a partial index (usually none).
    pub fn open_backfills(&self) -> Result<Vec<OpenBackfill>> {
        self.query(
            "SELECT id, max_active_runs, is_paused FROM backfill WHERE completed_at IS NULL",
            [],
            |r| {
                Ok(OpenBackfill {
                    id: r.get(0)?,
                    max_active_runs: r.get(1)?,
                    is_paused: r.get(2)?,
                })
            },
        )
    }

    /// The run of a DAG at a logical date (there is at most one).
    pub fn run_at(&self, dag_id: &str, logical_date: DateTime<Utc>) -> Result<Option<RunRow>> {
        self.conn
            .row(
                &format!("SELECT {RUN_COLS} FROM dag_run WHERE dag_id = ?1 AND logical_date = ?2"),
                params![dag_id, ts(logical_date)],
                run_row,
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// A backfill's runs by state, and the dates it skipped.
    pub fn backfill_progress(&self, id: i64) -> Result<Progress> {
        let rows: Vec<(Option<String>, u32)> = self.query(
            "SELECT d.state, COUNT(*) FROM backfill_dag_run b LEFT JOIN dag_run d ON d.id = b.dag_run_id
             WHERE b.backfill_id = ?1 GROUP BY d.state",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let mut p = Progress::default();
        for (state, n) in rows {
            match state.as_deref().and_then(RunState::parse) {
                Some(RunState::Queued) => p.queued += n,
                Some(RunState::Running) => p.running += n,
                Some(RunState::Success) => p.success += n,
                Some(RunState::Failed) => p.failed += n,
                None => p.skipped += n,
            }
        }
        Ok(p)
    }

    /// A backfill's dates in its order: each logical date with its run, or the reason it
    /// was skipped.
    pub fn backfill_dates(&self, id: i64) -> Result<Vec<BackfillDate>> {
        self.query(
            "SELECT logical_date, dag_run_id, exception_reason FROM backfill_dag_run
             WHERE backfill_id = ?1 ORDER BY sort_ordinal",
            [id],
            |r| Ok((opt_time(r, 0)?, r.get(1)?, r.get(2)?)),
        )
    }
}

impl Tx<'_> {
    /// How many backfills of a DAG are not completed (Airflow allows one).
    pub fn open_backfill_count(&self, dag_id: &str) -> Result<u32> {
        self.0
            .row(
                "SELECT COUNT(*) FROM backfill WHERE dag_id = ?1 AND completed_at IS NULL",
                [dag_id],
                |r| r.get(0),
            )
            .map_err(db)
    }

    /// Inserts a backfill; returns its id.
    pub fn insert_backfill(&self, b: &NewBackfill, now: DateTime<Utc>) -> Result<i64> {
        self.0
            .exec(
                "INSERT INTO backfill (dag_id, from_date, to_date, dag_run_conf, reprocess_behavior,
                     max_active_runs, created_at, updated_at, triggering_user_name)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8)",
                params![
                    b.dag_id,
                    ts(b.from_date),
                    ts(b.to_date),
                    b.dag_run_conf.to_string(),
                    b.reprocess_behavior,
                    b.max_active_runs,
                    ts(now),
                    b.user,
                ],
            )
            .map_err(db)?;
        Ok(self.0.last_insert_rowid())
    }

    /// Records one date of a backfill: the run it made or reprocessed, or why not.
    pub fn add_backfill_date(
        &self,
        backfill_id: i64,
        logical_date: DateTime<Utc>,
        dag_run_id: Option<i64>,
        exception_reason: Option<&str>,
        sort_ordinal: u32,
    ) -> Result<()> {
        self.0
            .exec(
                "INSERT INTO backfill_dag_run (backfill_id, dag_run_id, exception_reason, logical_date, sort_ordinal)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    backfill_id,
                    dag_run_id,
                    exception_reason,
                    ts(logical_date),
                    sort_ordinal
                ],
            )
            .map_err(db)?;
        Ok(())
    }

    /// The run of a DAG at a logical date, read inside the transaction.
    pub fn run_at(&self, dag_id: &str, logical_date: DateTime<Utc>) -> Result<Option<RunRow>> {
        self.0
            .row(
                &format!("SELECT {RUN_COLS} FROM dag_run WHERE dag_id = ?1 AND logical_date = ?2"),
                params![dag_id, ts(logical_date)],
                run_row,
            )
            .optional()
            .map_err(db)
    }

    /// The task instances of one run, read inside the transaction.
    pub fn tis_of_run(&self, dag_id: &str, run_id: &str) -> Result<Vec<TiRow>> {
        let mut stmt = self
            .0
            .prepare_cached(&format!(
                "SELECT {TI_COLS} FROM task_instance WHERE dag_id = ?1 AND run_id = ?2 ORDER BY rowid"
            ))
            .map_err(db)?;
        let rows = stmt.query_map([dag_id, run_id], ti_row).map_err(db)?;
        rows.collect::<rusqlite::Result<_>>().map_err(db)
    }

    /// Hands a (cleared, queued) run to a backfill, as Airflow's `_handle_clear_run`
    /// does: it becomes a backfill run, with the backfill's conf if it has one.
    pub fn adopt_run(&self, run_id: i64, backfill_id: i64, conf: Option<&Value>) -> Result<()> {
        self.0
            .exec(
                "UPDATE dag_run SET backfill_id = ?2, run_type = 'backfill', triggered_by = 'backfill',
                    conf = COALESCE(?3, conf)
                 WHERE id = ?1",
                params![run_id, backfill_id, conf.map(Value::to_string)],
            )
            .map_err(db)?;
        Ok(())
    }

    /// Pauses or unpauses a backfill that is not completed; false if it is completed.
    pub fn set_backfill_paused(&self, id: i64, paused: bool, now: DateTime<Utc>) -> Result<bool> {
        let n = self
            .0
            .exec(
                "UPDATE backfill SET is_paused = ?2,
                    updated_at = CASE WHEN is_paused = ?2 THEN updated_at ELSE ?3 END
                 WHERE id = ?1 AND completed_at IS NULL",
                params![id, paused, ts(now)],
            )
            .map_err(db)?;
        Ok(n == 1)
    }

    /// Fails a backfill's runs that have not started (Airflow's cancel); returns how many.
    pub fn fail_queued_backfill_runs(&self, id: i64, now: DateTime<Utc>) -> Result<usize> {
        self.0
            .exec(
                "UPDATE dag_run SET state = 'failed', end_date = ?2, updated_at = ?2, last_scheduling_decision = ?2
                 WHERE backfill_id = ?1 AND state = 'queued'",
                params![id, ts(now)],
            )
            .map_err(db)
    }

    /// Marks a backfill completed; with `only_if_done`, only when none of its runs is
    /// queued or running. False if it was already completed (or is not done).
    pub fn complete_backfill(
        &self,
        id: i64,
        only_if_done: bool,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let n = self
            .0
            .exec(
                "UPDATE backfill SET completed_at = ?2, updated_at = ?2
                 WHERE id = ?1 AND completed_at IS NULL AND (?3 = 0 OR NOT EXISTS (
                     SELECT 1 FROM dag_run WHERE backfill_id = ?1 AND state IN ('queued', 'running')))",
                params![id, ts(now), only_if_done],
            )
            .map_err(db)?;
        Ok(n == 1)
    }

    /// One backfill, read inside the transaction.
    pub fn backfill(&self, id: i64) -> Result<Option<BackfillRow>> {
        self.0
            .row(
                &format!("SELECT {COLS} FROM backfill WHERE id = ?1"),
                [id],
                row,
            )
            .optional()
            .map_err(db)
    }
}
