//! DAG runs and task instances: rows, reads, and the write transaction `Tx` whose
//! methods are compare-and-set transitions.
//!
//! Every state change names the state it expects (`WHERE id = ? AND state IS ?`); a
//! change that finds another state changes nothing and says so (`false`), so two
//! processes racing on one task instance produce one winner and no corruption.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, Row, params};
use serde_json::Value;

use super::Cached;
use super::{Store, db, parse_ts, ts};
use crate::error::{Error, Result};
use crate::model::{Dag, RunState, RunType, TaskState};

/// A DAG run as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRow {
    pub id: i64,
    pub dag_id: String,
    pub run_id: String,
    pub run_type: RunType,
    pub state: RunState,
    pub logical_date: Option<DateTime<Utc>>,
    pub data_interval_start: Option<DateTime<Utc>>,
    pub data_interval_end: Option<DateTime<Utc>>,
    pub run_after: DateTime<Utc>,
    pub queued_at: Option<DateTime<Utc>>,
    pub start_date: Option<DateTime<Utc>>,
    pub end_date: Option<DateTime<Utc>>,
    pub conf: Value,
    pub note: Option<String>,
    pub triggered_by: Option<String>,
    pub triggering_user_name: Option<String>,
    pub clear_number: i64,
    pub last_scheduling_decision: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
    /// The backfill that drives it, if any: its `max_active_runs` and pause apply,
    /// not the DAG's.
    pub backfill_id: Option<i64>,
}

/// A task instance as stored (its current try).
#[derive(Debug, Clone, PartialEq)]
pub struct TiRow {
    pub id: String,
    pub dag_id: String,
    pub run_id: String,
    pub task_id: String,
    pub map_index: i64,
    pub try_number: u32,
    pub max_tries: u32,
    pub state: Option<TaskState>,
    pub operator: Option<String>,
    pub pool: String,
    pub pool_slots: u32,
    pub priority_weight: i64,
    pub queued_dttm: Option<DateTime<Utc>>,
    pub scheduled_dttm: Option<DateTime<Utc>>,
    pub start_date: Option<DateTime<Utc>>,
    pub end_date: Option<DateTime<Utc>>,
    pub duration: Option<f64>,
    pub hostname: Option<String>,
    pub unixname: Option<String>,
    pub pid: Option<i64>,
    pub last_heartbeat_at: Option<DateTime<Utc>>,
    pub next_retry_at: Option<DateTime<Utc>>,
    pub rendered_command: Option<String>,
    pub note: Option<String>,
    pub updated_at: DateTime<Utc>,
    /// The render of the task's `map_index_template`, once a try rendered it.
    pub rendered_map_index: Option<String>,
}

/// What a new run is made of.
pub struct NewRun<'a> {
    pub dag: &'a Dag,
    pub run_id: String,
    pub run_type: RunType,
    pub logical_date: Option<DateTime<Utc>>,
    pub data_interval: Option<(DateTime<Utc>, DateTime<Utc>)>,
    pub run_after: DateTime<Utc>,
    pub conf: Value,
    pub note: Option<String>,
    pub triggered_by: &'a str,
    pub user: Option<&'a str>,
    /// The backfill that makes it (`run_type` backfill), if any.
    pub backfill_id: Option<i64>,
}

pub(super) const RUN_COLS: &str = "id, dag_id, run_id, run_type, state, logical_date, data_interval_start, data_interval_end,
    run_after, queued_at, start_date, end_date, conf, note, triggered_by, triggering_user_name, clear_number,
    last_scheduling_decision, updated_at, backfill_id";

/// The condition of the `ti_active` partial index, word for word: SQLite uses a partial
/// index only for a query whose WHERE contains its condition, and does not see that
/// `state = 'running'` implies it, so without this each such query scanned every task
/// instance ever run. Comparisons, not an IN list: see the migration that made them so.
const ACTIVE_TI: &str = "(state = 'scheduled' OR state = 'queued' OR state = 'running' OR state = 'up_for_retry' OR state = 'up_for_reschedule' OR state = 'restarting')";

/// A task instance as ExternalTaskSensor's routes see it: run id, task id, map index,
/// state.
pub type TiStateRow = (String, String, i64, Option<String>);

pub(super) const TI_COLS: &str = "id, dag_id, run_id, task_id, map_index, try_number, max_tries, state, operator, pool,
    pool_slots, priority_weight, queued_dttm, scheduled_dttm, start_date, end_date, duration, hostname, unixname,
    pid, last_heartbeat_at, next_retry_at, rendered_command, note, updated_at, rendered_map_index";

/// See [`Store::pass_look`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PassLook {
    /// `[dags, runs, task instances]`, as [`Store::change_counts`].
    pub counts: [i64; 3],
    pub hitl_due: bool,
    pub queued_events: bool,
    pub open_backfills: bool,
}

impl Store {
    /// Runs the closure in one `BEGIN IMMEDIATE` transaction; commits only if it succeeds.
    pub fn write<T>(&mut self, f: impl FnOnce(&Tx) -> Result<T>) -> Result<T> {
        let tx = Tx(self.begin()?);
        let out = f(&tx)?;
        tx.0.commit().map_err(db)?;
        Ok(out)
    }

    /// One run by its DAG and run id.
    pub fn run(&self, dag_id: &str, run_id: &str) -> Result<Option<RunRow>> {
        self.conn
            .row(
                &format!("SELECT {RUN_COLS} FROM dag_run WHERE dag_id = ?1 AND run_id = ?2"),
                [dag_id, run_id],
                run_row,
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Every queued or running run: those of no backfill first, oldest first, then
    /// backfill runs in their backfill's order (`sort_ordinal`), as Airflow's
    /// `get_queued_dag_runs_to_set_running` orders them, so a reprocessed (older) run
    /// still starts in its turn. Cheap however long the history is: it reads a partial
    /// index of active runs, and one index entry per backfill run.
    pub fn active_runs(&self) -> Result<Vec<RunRow>> {
        self.query(&active_runs_sql(), [], run_row)
    }

    /// Runs of one DAG (or all with `None`), newest first, at most `limit`.
    pub fn runs_of(&self, dag_id: Option<&str>, limit: usize) -> Result<Vec<RunRow>> {
        self.query(
            &format!(
                "SELECT {RUN_COLS} FROM dag_run WHERE ?1 IS NULL OR dag_id = ?1 ORDER BY id DESC LIMIT ?2"
            ),
            params![dag_id, limit as i64],
            run_row,
        )
    }

    /// How many runs of a DAG are queued or running, not counting those of backfills,
    /// which have their own limit (Airflow's `exclude_backfill`).
    pub fn active_run_count(&self, dag_id: &str) -> Result<u32> {
        self.conn
            .row(
                "SELECT COUNT(*) FROM dag_run WHERE dag_id = ?1 AND state IN ('queued', 'running')
                 AND backfill_id IS NULL",
                [dag_id],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))
    }

    /// The newest scheduled or backfill run of a DAG, from which the next one is computed
    /// (Airflow's `_get_latest_runs_stmt` takes both kinds, so the scheduler does not make
    /// a run a backfill already made, or a reprocessed scheduled run turned into).
    pub fn last_scheduled_run(&self, dag_id: &str) -> Result<Option<RunRow>> {
        self.conn
            .row(
                &format!(
                    "SELECT {RUN_COLS} FROM dag_run WHERE dag_id = ?1 AND run_type IN ('scheduled', 'backfill')
                     ORDER BY logical_date DESC LIMIT 1"
                ),
                [dag_id],
                run_row,
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// The task instances of one run, in task order of insertion.
    pub fn tis_of_run(&self, dag_id: &str, run_id: &str) -> Result<Vec<TiRow>> {
        self.query(
            &format!("SELECT {TI_COLS} FROM task_instance WHERE dag_id = ?1 AND run_id = ?2 ORDER BY rowid"),
            [dag_id, run_id],
            ti_row,
        )
    }

    /// Task instances in any of the active states (scheduled, queued, running,
    /// up_for_retry, restarting), from the partial index.
    pub fn active_tis(&self) -> Result<Vec<TiRow>> {
        self.query(
            &format!(
                "SELECT {TI_COLS} FROM task_instance
                 WHERE {ACTIVE_TI}"
            ),
            [],
            ti_row,
        )
    }

    /// The change counts an open page watches, `[dags, runs, task instances]`: each moves
    /// in the transaction that writes such a row, whichever process commits it (triggers
    /// count them: `dag_changes`, `run_changes`, `ti_change`), so equal counts mean
    /// nothing a page shows from those tables changed.
    pub fn change_counts(&self) -> Result<[i64; 3]> {
        self.conn
            .prepare_cached(
                "SELECT (SELECT n FROM dag_changes WHERE id = 1), (SELECT n FROM run_changes WHERE id = 1),
                        (SELECT seq FROM ti_change)",
            )
            .and_then(|mut stmt| stmt.query_row([], |r| Ok([r.get(0)?, r.get(1)?, r.get(2)?])))
            .map_err(|e| self.err(e))
    }

    /// What a scheduling pass looks at first, in one statement: the change counts (as
    /// [`Store::change_counts`]) and whether the tables most passes find empty hold
    /// anything for it: a human-in-the-loop wait past its timeout at `now`, an asset
    /// event queued for a DAG, an open backfill.
    pub fn pass_look(&self, now: DateTime<Utc>) -> Result<PassLook> {
        self.conn
            .prepare_cached(
                "SELECT (SELECT n FROM dag_changes WHERE id = 1), (SELECT n FROM run_changes WHERE id = 1),
                        (SELECT seq FROM ti_change),
                        EXISTS (SELECT 1 FROM hitl_detail h JOIN task_instance t ON t.id = h.ti_id
                                WHERE h.timeout_at IS NOT NULL AND h.timeout_at < ?1 AND t.state = 'awaiting_input'),
                        EXISTS (SELECT 1 FROM asset_dag_run_queue),
                        EXISTS (SELECT 1 FROM backfill WHERE completed_at IS NULL)",
            )
            .and_then(|mut stmt| {
                stmt.query_row([ts(now)], |r| {
                    Ok(PassLook {
                        counts: [r.get(0)?, r.get(1)?, r.get(2)?],
                        hitl_due: r.get(3)?,
                        queued_events: r.get(4)?,
                        open_backfills: r.get(5)?,
                    })
                })
            })
            .map_err(|e| self.err(e))
    }

    /// How many rows this connection has written since it opened (triggers' included):
    /// a count in memory, no statement.
    pub fn rows_written(&self) -> u64 {
        self.conn.total_changes()
    }

    /// The latest task instance change number (see the `ti_change` migration).
    pub fn ti_change_seq(&self) -> Result<i64> {
        self.conn
            .row("SELECT seq FROM ti_change", [], |r| r.get(0))
            .map_err(|e| self.err(e))
    }

    /// Task instances inserted or updated after change number `seq`, each with its
    /// number, in change order.
    pub fn tis_changed_since(&self, seq: i64) -> Result<Vec<(i64, TiRow)>> {
        self.query(
            &format!(
                "SELECT {TI_COLS}, change_seq FROM task_instance WHERE change_seq > ?1 ORDER BY change_seq"
            ),
            [seq],
            |r| Ok((r.get(TI_COLS.split(',').count())?, ti_row(r)?)),
        )
    }

    /// Task instances handed to an executor that is not `job_id`'s: after a restart or a
    /// takeover, nobody is watching them.
    pub fn orphans(&self, job_id: i64) -> Result<Vec<TiRow>> {
        self.query(
            &format!(
                "SELECT {TI_COLS} FROM task_instance
                 WHERE state IN ('queued', 'running', 'restarting') AND queued_by_job_id IS NOT ?1
                 AND {ACTIVE_TI}"
            ),
            [job_id],
            ti_row,
        )
    }

    /// Running task instances whose last heartbeat is older than `cutoff`.
    pub fn stale_running(&self, cutoff: DateTime<Utc>) -> Result<Vec<TiRow>> {
        self.query(
            &format!(
                "SELECT {TI_COLS} FROM task_instance WHERE state = 'running' AND last_heartbeat_at < ?1 AND {ACTIVE_TI}"
            ),
            [ts(cutoff)],
            ti_row,
        )
    }

    /// One task instance by its id.
    pub fn ti(&self, id: &str) -> Result<Option<TiRow>> {
        self.conn
            .row(
                &format!("SELECT {TI_COLS} FROM task_instance WHERE id = ?1"),
                [id],
                ti_row,
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// The task instance of a task that is not mapped (map index -1).
    pub fn ti_by_key(&self, dag_id: &str, run_id: &str, task_id: &str) -> Result<Option<TiRow>> {
        self.ti_at(dag_id, run_id, task_id, -1)
    }

    /// One task instance by its key.
    pub fn ti_at(
        &self,
        dag_id: &str,
        run_id: &str,
        task_id: &str,
        map_index: i64,
    ) -> Result<Option<TiRow>> {
        self.conn
            .row(
                &format!(
                    "SELECT {TI_COLS} FROM task_instance WHERE dag_id = ?1 AND run_id = ?2 AND task_id = ?3 AND map_index = ?4"
                ),
                params![dag_id, run_id, task_id, map_index],
                ti_row,
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Earlier tries of the task instance of a task that is not mapped, oldest first.
    pub fn ti_history(&self, dag_id: &str, run_id: &str, task_id: &str) -> Result<Vec<TiRow>> {
        self.ti_history_at(dag_id, run_id, task_id, -1)
    }

    /// Earlier tries of a task instance, oldest first.
    pub fn ti_history_at(
        &self,
        dag_id: &str,
        run_id: &str,
        task_id: &str,
        map_index: i64,
    ) -> Result<Vec<TiRow>> {
        self.query(
            "SELECT task_instance_id, dag_id, run_id, task_id, map_index, try_number, max_tries, state, operator,
                    pool, pool_slots, priority_weight, queued_dttm, NULL, start_date, end_date, duration, hostname,
                    unixname, pid, NULL, NULL, rendered_command, NULL, COALESCE(end_date, start_date, queued_dttm),
                    rendered_map_index
             FROM task_instance_history WHERE dag_id = ?1 AND run_id = ?2 AND task_id = ?3 AND map_index = ?4
             ORDER BY try_number",
            params![dag_id, run_id, task_id, map_index],
            ti_row,
        )
    }

    /// An XCom value (JSON) of a task that is not mapped, if pushed.
    pub fn xcom(
        &self,
        dag_id: &str,
        run_id: &str,
        task_id: &str,
        key: &str,
    ) -> Result<Option<Value>> {
        self.xcom_at(dag_id, run_id, task_id, -1, key)
    }

    /// The task instances of `dag_id` (of `task_ids`, or all) in runs whose logical date
    /// is one of `logical_dates`: (run id, task id, map index, state). What the Execution
    /// API's `task-instances/count` and `/states` (ExternalTaskSensor) answer from.
    pub fn ti_states_at(
        &self,
        dag_id: &str,
        task_ids: Option<&[String]>,
        logical_dates: &[DateTime<Utc>],
    ) -> Result<Vec<TiStateRow>> {
        let dates = Value::from(logical_dates.iter().map(|d| ts(*d)).collect::<Vec<_>>());
        let tasks = task_ids.map(|t| Value::from(t.to_vec()).to_string());
        self.query(
            "SELECT t.run_id, t.task_id, t.map_index, t.state FROM task_instance t
             JOIN dag_run r ON r.dag_id = t.dag_id AND r.run_id = t.run_id
             WHERE t.dag_id = ?1 AND r.logical_date IN (SELECT value FROM json_each(?2))
               AND (?3 IS NULL OR t.task_id IN (SELECT value FROM json_each(?3)))
             ORDER BY t.run_id, t.task_id, t.map_index",
            rusqlite::params![dag_id, dates.to_string(), tasks],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
    }

    /// The states of `dag_id`'s runs whose logical date is one of `logical_dates`.
    pub fn run_states_at(
        &self,
        dag_id: &str,
        logical_dates: &[DateTime<Utc>],
    ) -> Result<Vec<String>> {
        let dates = Value::from(logical_dates.iter().map(|d| ts(*d)).collect::<Vec<_>>());
        self.query(
            "SELECT state FROM dag_run
             WHERE dag_id = ?1 AND logical_date IN (SELECT value FROM json_each(?2))",
            rusqlite::params![dag_id, dates.to_string()],
            |r| r.get(0),
        )
    }

    /// How many reschedules the current try of a task instance has had, and the start
    /// of its first (a sensor's timeout counts from there).
    pub fn reschedules(&self, ti_id: &str) -> Result<(i64, Option<DateTime<Utc>>)> {
        let rows = self.query(
            "SELECT r.start_date FROM task_reschedule r JOIN task_instance t ON t.id = r.ti_id
             WHERE r.ti_id = ?1 AND r.try_number = t.try_number ORDER BY r.id",
            [ti_id],
            |r| time(r, 0),
        )?;
        Ok((rows.len() as i64, rows.first().copied()))
    }

    /// The XCom values under `key` of every instance of a task, by map index.
    pub fn xcom_values(
        &self,
        dag_id: &str,
        run_id: &str,
        task_id: &str,
        key: &str,
    ) -> Result<Vec<(i64, Value)>> {
        self.query(
            "SELECT map_index, value FROM xcom WHERE dag_id = ?1 AND run_id = ?2 AND task_id = ?3 AND key = ?4
             ORDER BY map_index",
            [dag_id, run_id, task_id, key],
            |r| {
                let text: String = r.get(1)?;
                let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
                Ok((r.get(0)?, value))
            },
        )
    }

    /// An XCom value (JSON) of the task instance at `map_index`, if pushed.
    pub fn xcom_at(
        &self,
        dag_id: &str,
        run_id: &str,
        task_id: &str,
        map_index: i64,
        key: &str,
    ) -> Result<Option<Value>> {
        let text: Option<String> = self
            .conn
            .row(
                "SELECT value FROM xcom WHERE dag_id = ?1 AND run_id = ?2 AND task_id = ?3 AND map_index = ?5 AND key = ?4",
                params![dag_id, run_id, task_id, key, map_index],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        Ok(text.map(|t| serde_json::from_str(&t).unwrap_or(Value::String(t))))
    }

    /// Counts of task instances by state across all DAGs, for limits: (running+queued
    /// overall, per DAG, per pool slots used).
    pub fn slot_usage(&self) -> Result<Vec<(String, String, u32)>> {
        slot_usage(&self.conn).map_err(|e| self.err(e))
    }

    pub(super) fn query<T, P: rusqlite::Params>(
        &self,
        sql: &str,
        params: P,
        f: impl FnMut(&Row) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>> {
        let mut stmt = self.conn.prepare_cached(sql).map_err(|e| self.err(e))?;
        let rows = stmt.query_map(params, f).map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(|e| self.err(e))
    }
}

/// The query of [`Store::active_runs`].
pub(super) fn active_runs_sql() -> String {
    format!(
        "SELECT {RUN_COLS} FROM dag_run WHERE state IN ('queued', 'running')
         ORDER BY (SELECT b.sort_ordinal FROM backfill_dag_run b
                   WHERE b.dag_run_id = dag_run.id AND b.backfill_id = dag_run.backfill_id) NULLS FIRST, id"
    )
}

/// What the queue decision reads, inside the pass's write transaction (`Tx::slot_usage`
/// and the rest); slot usage also on the bare connection, for the API.
fn task_usage(
    conn: &rusqlite::Connection,
    dag_id: &str,
) -> rusqlite::Result<Vec<(String, String, String)>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT dag_id, run_id, task_id FROM task_instance
         WHERE dag_id = ?1 AND state IN ('queued', 'running') AND {ACTIVE_TI}"
    ))?;
    let rows = stmt.query_map([dag_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    rows.collect()
}

/// What the queued and running task instances take: one seek of `ti_active` per state.
/// As `state IN ('queued', 'running')`, SQLite builds a temporary b-tree of the two
/// values to seek the index with, every time: this runs in every pass that queues.
fn slot_usage_sql() -> String {
    format!(
        "SELECT dag_id, pool, pool_slots FROM task_instance WHERE state = 'queued' AND {ACTIVE_TI}
         UNION ALL
         SELECT dag_id, pool, pool_slots FROM task_instance WHERE state = 'running' AND {ACTIVE_TI}"
    )
}

fn slot_usage(conn: &rusqlite::Connection) -> rusqlite::Result<Vec<(String, String, u32)>> {
    let mut stmt = conn.prepare_cached(&slot_usage_sql())?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    rows.collect()
}

fn pool_slots(conn: &rusqlite::Connection) -> rusqlite::Result<Vec<(String, i64)>> {
    let mut stmt = conn.prepare_cached("SELECT pool, slots FROM slot_pool")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    rows.collect()
}

/// A write transaction. Dropped without [`Store::write`] returning `Ok`, it rolls back.
pub struct Tx<'a>(pub(super) rusqlite::Transaction<'a>);

impl Tx<'_> {
    /// Moves the change counter (`ti_change`) to the number a statement gave the task
    /// instances it wrote, `(SELECT seq FROM ti_change) + 1`, when it wrote any. Such a
    /// statement keeps the `ti_updated` trigger out (it fires only on rows whose number
    /// the statement left alone), which would otherwise write each row a second time
    /// just to number it; the hot ones (a try's states) do so.
    fn numbered(&self, rows: usize) -> Result<()> {
        if rows > 0 {
            self.0
                .exec("UPDATE ti_change SET seq = seq + 1", [])
                .map_err(db)?;
        }
        Ok(())
    }

    /// The queued and running task instances of `dag_id`: (dag_id, run_id, task_id)
    /// each, for the tasks' own limits (`max_active_tis_per_dag`/`_per_dagrun`).
    pub fn task_usage(&self, dag_id: &str) -> Result<Vec<(String, String, String)>> {
        task_usage(&self.0, dag_id).map_err(db)
    }

    /// [`Store::slot_usage`], inside this transaction.
    pub fn slot_usage(&self) -> Result<Vec<(String, String, u32)>> {
        slot_usage(&self.0).map_err(db)
    }

    /// Every pool's size.
    pub fn pool_slots(&self) -> Result<Vec<(String, i64)>> {
        pool_slots(&self.0).map_err(db)
    }

    /// Creates a run and a task instance (no state) per task. A duplicate run id or
    /// logical date is a `Conflict`.
    pub fn create_run(&self, new: &NewRun, now: DateTime<Utc>) -> Result<RunRow> {
        let now_s = ts(now);
        let (dis, die) = new
            .data_interval
            .map_or((None, None), |(s, e)| (Some(ts(s)), Some(ts(e))));
        let res = self.0.exec(
            "INSERT INTO dag_run (dag_id, run_id, run_type, state, logical_date, data_interval_start, data_interval_end,
                 run_after, queued_at, conf, note, triggered_by, triggering_user_name, updated_at, backfill_id)
             VALUES (?1, ?2, ?3, 'queued', ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?8, ?13)",
            params![
                new.dag.dag_id,
                new.run_id,
                new.run_type.as_str(),
                new.logical_date.map(ts),
                dis,
                die,
                ts(new.run_after),
                now_s,
                new.conf.to_string(),
                new.note,
                new.triggered_by,
                new.user,
                new.backfill_id,
            ],
        );
        match res {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                return Err(Error::Conflict(match new.logical_date {
                    Some(d) => format!(
                        "A DAG run with run_id {:?} or logical_date {} already exists for DAG {:?}",
                        new.run_id,
                        ts(d),
                        new.dag.dag_id
                    ),
                    None => format!(
                        "A DAG run with run_id {:?} already exists for DAG {:?}",
                        new.run_id, new.dag.dag_id
                    ),
                }));
            }
            other => other.map_err(db)?,
        };
        // The run records the DAG's newest version (Airflow's `created_dag_version`).
        self.0
            .exec(
                "UPDATE dag_run SET dag_version_id =
                   (SELECT id FROM dag_version WHERE dag_id = ?1 ORDER BY version_number DESC LIMIT 1)
                 WHERE dag_id = ?1 AND run_id = ?2",
                [&new.dag.dag_id, &new.run_id],
            )
            .map_err(db)?;
        let weights = new.dag.effective_weights();
        for task in &new.dag.tasks {
            // A task mapped over literals gets its instances now (Airflow's
            // `_create_tasks`); any other, and one mapped to nothing, gets map index -1,
            // which the scheduler expands, or skips, when its upstreams are done.
            let count = task.mapped.as_ref().and_then(|m| m.length()).unwrap_or(0);
            for map_index in crate::model::Mapped::initial_indexes(count) {
                self.insert_ti(
                    new,
                    task,
                    map_index,
                    weights[task.task_id.as_str()],
                    &now_s,
                    now,
                )?;
            }
        }
        self.0
            .row(
                &format!("SELECT {RUN_COLS} FROM dag_run WHERE dag_id = ?1 AND run_id = ?2"),
                [&new.dag.dag_id, &new.run_id],
                run_row,
            )
            .map_err(db)
    }

    /// A new task instance, with no state, of `task` in run `new`.
    fn insert_ti(
        &self,
        new: &NewRun,
        task: &crate::model::Task,
        map_index: i64,
        weight: i64,
        now_s: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        self.0
            .exec(
                "INSERT INTO task_instance (id, dag_id, run_id, task_id, map_index, max_tries, operator, pool,
                     pool_slots, priority_weight, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                params![
                    crate::ids::uuid7(now),
                    new.dag.dag_id,
                    new.run_id,
                    task.task_id,
                    map_index,
                    task.retries,
                    task.operator.class_name(),
                    task.pool,
                    task.pool_slots,
                    weight,
                    now_s,
                ],
            )
            .map_err(db)?;
        Ok(())
    }

    /// The XCom values under `key` of every instance of a task, by map index (as
    /// [`Store::xcom_values`], inside the transaction).
    pub fn xcom_values(
        &self,
        dag_id: &str,
        run_id: &str,
        task_id: &str,
        key: &str,
    ) -> Result<Vec<(i64, Value)>> {
        let mut stmt = self
            .0
            .prepare_cached(
                "SELECT map_index, value FROM xcom WHERE dag_id = ?1 AND run_id = ?2 AND task_id = ?3 AND key = ?4
                 ORDER BY map_index",
            )
            .map_err(db)?;
        let rows = stmt
            .query_map([dag_id, run_id, task_id, key], |r| {
                let text: String = r.get(1)?;
                let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
                Ok((r.get(0)?, value))
            })
            .map_err(db)?;
        rows.collect::<rusqlite::Result<_>>().map_err(db)
    }

    /// The task instances of one task in a run, by map index (inside the transaction).
    pub fn tis_of_task(&self, dag_id: &str, run_id: &str, task_id: &str) -> Result<Vec<TiRow>> {
        let mut stmt = self
            .0
            .prepare_cached(&format!(
                "SELECT {TI_COLS} FROM task_instance WHERE dag_id = ?1 AND run_id = ?2 AND task_id = ?3
                 ORDER BY map_index"
            ))
            .map_err(db)?;
        let rows = stmt
            .query_map([dag_id, run_id, task_id], ti_row)
            .map_err(db)?;
        rows.collect::<rusqlite::Result<_>>().map_err(db)
    }

    /// Expands the unexpanded (map index -1) task instance `ti` into `count` instances
    /// (`count` > 0): it becomes map index 0, as in Airflow's `expand_mapped_task`, and
    /// 1..count are added with no state, or `scheduled` (each as
    /// [`Tx::schedule_new_tis`] would schedule it, in the same statements: what the
    /// scheduler does next when the task's trigger rule let it expand). False when it
    /// was expanded or changed since read.
    pub fn expand_ti(
        &self,
        ti: &TiRow,
        count: usize,
        scheduled: bool,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let now_s = ts(now);
        let n = self
            .0
            .exec(
                "UPDATE task_instance SET map_index = 0, updated_at = ?2, state = ?3,
                    try_number = try_number + (?3 IS NOT NULL),
                    scheduled_dttm = CASE WHEN ?3 IS NULL THEN scheduled_dttm ELSE ?2 END
                 WHERE id = ?1 AND map_index = -1 AND state IS NULL",
                params![ti.id, now_s, scheduled.then_some("scheduled")],
            )
            .map_err(db)?;
        if n != 1 {
            return Ok(false);
        }
        // The new rows in multi-row INSERTs numbered with one change number (see the
        // `ti_change` migrations): one statement per chunk rather than per instance, and no
        // per-row trigger. Chunks keep the parameters under SQLite's lowest limit (999).
        let seq = self.bump_ti_change()?;
        const CHUNK: usize = 400;
        let mut from = 1;
        while from < count {
            let to = (from + CHUNK).min(count);
            let rows = (from..to)
                .map(|k| format!("(?{}, ?{})", 2 * (k - from) + 5, 2 * (k - from) + 6))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!(
                "INSERT INTO task_instance (id, dag_id, run_id, task_id, map_index, max_tries, operator, pool,
                     pool_slots, priority_weight, updated_at, change_seq, state, try_number, scheduled_dttm)
                 SELECT v.column1, t.dag_id, t.run_id, t.task_id, v.column2, t.max_tries, t.operator, t.pool,
                     t.pool_slots, t.priority_weight, ?2, ?3, CASE WHEN ?4 THEN 'scheduled' END, ?4,
                     CASE WHEN ?4 THEN ?2 END
                 FROM task_instance t, (VALUES {rows}) v WHERE t.id = ?1"
            );
            let mut values: Vec<rusqlite::types::Value> = Vec::with_capacity(4 + 2 * (to - from));
            values.push(ti.id.clone().into());
            values.push(now_s.clone().into());
            values.push(seq.into());
            values.push(scheduled.into());
            for (map_index, id) in (from..to).zip(crate::ids::uuid7s(now, to - from)) {
                values.push(id.into());
                values.push((map_index as i64).into());
            }
            self.0
                .exec(&sql, rusqlite::params_from_iter(values))
                .map_err(db)?;
            from = to;
        }
        Ok(true)
    }

    /// Takes the next task instance change number for rows a statement numbers itself
    /// (`change_seq` set by the statement, so the per-row triggers stay out of it).
    fn bump_ti_change(&self) -> Result<i64> {
        self.0
            .prepare_cached("UPDATE ti_change SET seq = seq + 1 RETURNING seq")
            .and_then(|mut s| s.query_row([], |r| r.get(0)))
            .map_err(db)
    }

    /// Schedules the task instances `ids` that still have no state, as
    /// `set_ti_state(id, None, Some(Scheduled), ..)` does one by one, in one UPDATE
    /// numbered with one change number: the instances of a mapped task are scheduled
    /// together. Returns the ids it moved.
    pub fn schedule_new_tis(&self, ids: &[&str], now: DateTime<Utc>) -> Result<Vec<String>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let seq = self.bump_ti_change()?;
        let ids = serde_json::json!(ids).to_string();
        let mut stmt = self
            .0
            .prepare_cached(
                "UPDATE task_instance SET state = 'scheduled', try_number = try_number + 1,
                    scheduled_dttm = ?2, next_retry_at = NULL, start_date = NULL, end_date = NULL,
                    duration = NULL, pid = NULL, hostname = NULL, last_heartbeat_at = NULL,
                    updated_at = ?2, change_seq = ?3
                 WHERE id IN (SELECT value FROM json_each(?1)) AND state IS NULL
                 RETURNING id",
            )
            .map_err(db)?;
        let rows = stmt
            .query_map(params![ids, ts(now), seq], |r| r.get(0))
            .map_err(db)?;
        rows.collect::<rusqlite::Result<_>>().map_err(db)
    }

    /// Revises the instances of `ti`'s task, mapped over literals, to `count` map indexes
    /// after its list changed in the file (Airflow's `_check_for_removed_or_restored_tasks`
    /// and `_revise_map_indexes_if_mapped`): instances past the new length become
    /// removed whatever their state, removed ones within it come back with no state, and
    /// with `grow` the missing map indexes below `count` are added with no state (copies
    /// of `ti`'s row, as `expand_ti` makes them). True if a row changed.
    pub fn revise_map_indexes(
        &self,
        ti: &TiRow,
        count: usize,
        grow: bool,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let now_s = ts(now);
        let count = count as i64;
        let mut changed = self
            .0
            .exec(
                "UPDATE task_instance SET state = 'removed', updated_at = ?5
                 WHERE dag_id = ?1 AND run_id = ?2 AND task_id = ?3 AND map_index >= ?4
                   AND state IS NOT 'removed'",
                params![ti.dag_id, ti.run_id, ti.task_id, count, now_s],
            )
            .map_err(db)?;
        changed += self
            .0
            .exec(
                "UPDATE task_instance SET state = NULL, updated_at = ?5
                 WHERE dag_id = ?1 AND run_id = ?2 AND task_id = ?3 AND map_index BETWEEN 0 AND ?4 - 1
                   AND state = 'removed'",
                params![ti.dag_id, ti.run_id, ti.task_id, count, now_s],
            )
            .map_err(db)?;
        if grow {
            for map_index in 0..count {
                changed += self
                    .0
                    .exec(
                        "INSERT OR IGNORE INTO task_instance (id, dag_id, run_id, task_id, map_index, max_tries,
                             operator, pool, pool_slots, priority_weight, updated_at)
                         SELECT ?1, dag_id, run_id, task_id, ?3, max_tries, operator, pool, pool_slots,
                             priority_weight, ?4
                         FROM task_instance WHERE id = ?2",
                        params![crate::ids::uuid7(now), ti.id, map_index, now_s],
                    )
                    .map_err(db)?;
            }
        }
        Ok(changed > 0)
    }

    /// Moves a run from `from` to `to`; start and end dates follow the state.
    pub fn set_run_state(
        &self,
        id: i64,
        from: RunState,
        to: RunState,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let now_s = ts(now);
        let n = self
            .0
            .exec(
                "UPDATE dag_run SET state = ?3, updated_at = ?4,
                    start_date = CASE WHEN ?3 = 'running' THEN COALESCE(start_date, ?4) ELSE start_date END,
                    end_date = CASE WHEN ?3 IN ('success', 'failed') THEN ?4 WHEN ?3 = 'queued' THEN NULL ELSE end_date END,
                    queued_at = CASE WHEN ?3 = 'queued' THEN ?4 ELSE queued_at END,
                    last_scheduling_decision = ?4
                 WHERE id = ?1 AND state = ?2",
                params![id, from.as_str(), to.as_str(), now_s],
            )
            .map_err(db)?;
        Ok(n == 1)
    }

    /// A task instance from `from` (None = no state) to `to`, with the bookkeeping the
    /// target state needs: a new try when scheduled, the queue time, end date and
    /// duration when a try ends (and a history row for it), the retry time.
    pub fn set_ti_state(
        &self,
        id: &str,
        from: Option<TaskState>,
        to: Option<TaskState>,
        now: DateTime<Utc>,
        next_retry_at: Option<DateTime<Utc>>,
    ) -> Result<bool> {
        self.set_ti_state_rendered(id, from, to, now, next_retry_at, None)
    }

    /// `set_ti_state`, which also keeps the try's `rendered` command (when given) in the
    /// same statement: written only when the state changes, before the try goes to
    /// history with it.
    pub fn set_ti_state_rendered(
        &self,
        id: &str,
        from: Option<TaskState>,
        to: Option<TaskState>,
        now: DateTime<Utc>,
        next_retry_at: Option<DateTime<Utc>>,
        rendered: Option<&str>,
    ) -> Result<bool> {
        use TaskState::*;
        let now_s = ts(now);
        let sql = match to {
            // A sensor's next poke after a reschedule is the same try (Airflow's
            // `schedule_tis` does not count it).
            Some(Scheduled) => {
                "UPDATE task_instance SET state = ?3,
                    try_number = try_number + CASE WHEN state = 'up_for_reschedule' THEN 0 ELSE 1 END, scheduled_dttm = ?4,
                    next_retry_at = ?5, start_date = NULL, end_date = NULL, duration = NULL, pid = NULL,
                    hostname = NULL, last_heartbeat_at = NULL, updated_at = ?4,
                    change_seq = (SELECT seq FROM ti_change) + 1,
                    rendered_command = COALESCE(?6, rendered_command)
                 WHERE id = ?1 AND state IS ?2"
            }
            Some(Queued) => {
                "UPDATE task_instance SET state = ?3, queued_dttm = ?4, updated_at = ?4,
                    next_retry_at = COALESCE(?5, next_retry_at), change_seq = (SELECT seq FROM ti_change) + 1,
                    rendered_command = COALESCE(?6, rendered_command)
                 WHERE id = ?1 AND state IS ?2"
            }
            Some(Success | Failed | Skipped | UpstreamFailed | UpForRetry | UpForReschedule | Removed) => {
                "UPDATE task_instance SET state = ?3, end_date = ?4, updated_at = ?4, next_retry_at = ?5,
                    start_date = COALESCE(start_date, ?4),
                    duration = round((julianday(?4) - julianday(COALESCE(start_date, ?4))) * 86400.0, 3),
                    change_seq = (SELECT seq FROM ti_change) + 1,
                    rendered_command = COALESCE(?6, rendered_command)
                 WHERE id = ?1 AND state IS ?2"
            }
            _ => {
                "UPDATE task_instance SET state = ?3, updated_at = ?4, next_retry_at = COALESCE(?5, next_retry_at),
                    change_seq = (SELECT seq FROM ti_change) + 1,
                    rendered_command = COALESCE(?6, rendered_command)
                 WHERE id = ?1 AND state IS ?2"
            }
        };
        let n = self
            .0
            .exec(
                sql,
                params![
                    id,
                    from.map(TaskState::as_str),
                    to.map(TaskState::as_str),
                    now_s,
                    next_retry_at.map(ts),
                    rendered
                ],
            )
            .map_err(db)?;
        self.numbered(n)?;
        // A reschedule goes on with the same try: it is kept when the try ends.
        if n == 1 && from == Some(Running) && to != Some(UpForReschedule) {
            self.record_try(id)?;
        }
        Ok(n == 1)
    }

    /// Records a sensor's poke that was not done (Airflow's `TaskReschedule`): the row's
    /// start is when it was reported, as Airflow 3's Execution API dates it.
    pub fn add_reschedule(
        &self,
        ti_id: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        reschedule_date: DateTime<Utc>,
    ) -> Result<()> {
        let duration = (end - start).num_microseconds().unwrap_or(0) as f64 / 1e6;
        self.0
            .exec(
                "INSERT INTO task_reschedule (ti_id, try_number, start_date, end_date, duration, reschedule_date)
                 SELECT id, try_number, ?2, ?3, ?4, ?5 FROM task_instance WHERE id = ?1",
                params![ti_id, ts(start), ts(end), duration, ts(reschedule_date)],
            )
            .map_err(db)?;
        Ok(())
    }

    /// Keeps the current try of a task instance in its history (once per try).
    fn record_try(&self, id: &str) -> Result<()> {
        self.0
            .exec(
                "INSERT OR REPLACE INTO task_instance_history (task_instance_id, dag_id, run_id, task_id, map_index,
                     try_number, max_tries, state, operator, pool, pool_slots, priority_weight, queued_dttm,
                     start_date, end_date, duration, hostname, unixname, pid, rendered_command, rendered_map_index)
                 SELECT id, dag_id, run_id, task_id, map_index, try_number, max_tries, state, operator, pool,
                     pool_slots, priority_weight, queued_dttm, start_date, end_date, duration, hostname, unixname,
                     pid, rendered_command, rendered_map_index
                 FROM task_instance WHERE id = ?1 AND try_number > 0",
                [id],
            )
            .map_err(db)?;
        Ok(())
    }

    /// Scheduled to queued, handed to the executor of `job_id`.
    pub fn queue_ti(&self, id: &str, job_id: i64, now: DateTime<Utc>) -> Result<bool> {
        let n = self
            .0
            .exec(
                "UPDATE task_instance SET state = 'queued', queued_dttm = ?3, queued_by_job_id = ?2, updated_at = ?3,
                    change_seq = (SELECT seq FROM ti_change) + 1
                 WHERE id = ?1 AND state = 'scheduled'",
                params![id, job_id, ts(now)],
            )
            .map_err(db)?;
        self.numbered(n)?;
        Ok(n == 1)
    }

    /// `set_ti_state(id, from, Scheduled)` and then `queue_ti` in one statement: the
    /// row ends as those two leave it (a new try, the scheduled and queued times, the
    /// executor's job), numbered once. The pass uses it for a task instance it found
    /// ready and queues in the same transaction, where the scheduled state was never
    /// seen by anyone else.
    pub fn schedule_and_queue_ti(
        &self,
        id: &str,
        from: Option<TaskState>,
        job_id: i64,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let n = self
            .0
            .exec(
                "UPDATE task_instance SET state = 'queued',
                    try_number = try_number + CASE WHEN state = 'up_for_reschedule' THEN 0 ELSE 1 END,
                    scheduled_dttm = ?4, queued_dttm = ?4, queued_by_job_id = ?3,
                    next_retry_at = NULL, start_date = NULL, end_date = NULL, duration = NULL, pid = NULL,
                    hostname = NULL, last_heartbeat_at = NULL, updated_at = ?4,
                    change_seq = (SELECT seq FROM ti_change) + 1
                 WHERE id = ?1 AND state IS ?2",
                params![id, from.map(TaskState::as_str), job_id, ts(now)],
            )
            .map_err(db)?;
        self.numbered(n)?;
        Ok(n == 1)
    }

    /// A queued (never started) or restarting task instance back to no state, so it is
    /// scheduled again; a queued one gives back the try it never used.
    pub fn unqueue_ti(&self, id: &str, now: DateTime<Utc>) -> Result<bool> {
        let n = self
            .0
            .exec(
                "UPDATE task_instance SET
                    try_number = CASE WHEN state = 'queued' THEN MAX(try_number - 1, 0) ELSE try_number END,
                    state = NULL, queued_by_job_id = NULL, updated_at = ?2
                 WHERE id = ?1 AND state IN ('queued', 'restarting')",
                params![id, ts(now)],
            )
            .map_err(db)?;
        Ok(n == 1)
    }

    /// The Execution API's `run`: queued (or restarting) to running, recording who runs it,
    /// the start it reports (`start`) and the server's time of the claim (`now`) as its
    /// first heartbeat. Returns false when the task instance is in another state.
    pub fn start_ti(
        &self,
        id: &str,
        pid: i64,
        hostname: &str,
        unixname: &str,
        start: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let n = self
            .0
            .exec(
                "UPDATE task_instance SET state = 'running', start_date = ?5, pid = ?2, hostname = ?3, unixname = ?4,
                    last_heartbeat_at = ?6, updated_at = ?6, change_seq = (SELECT seq FROM ti_change) + 1
                 WHERE id = ?1 AND state = 'queued'",
                params![id, pid, hostname, unixname, ts(start), ts(now)],
            )
            .map_err(db)?;
        self.numbered(n)?;
        Ok(n == 1)
    }

    /// A heartbeat from the process that runs the task instance. False when the task
    /// instance is not running, or is running somewhere else.
    pub fn heartbeat_ti(
        &self,
        id: &str,
        pid: i64,
        hostname: &str,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let n = self
            .0
            .exec(
                "UPDATE task_instance SET last_heartbeat_at = ?4
                 WHERE id = ?1 AND state = 'running' AND pid = ?2 AND hostname = ?3",
                params![id, pid, hostname, ts(now)],
            )
            .map_err(db)?;
        Ok(n == 1)
    }

    /// Saves the rendered command of the current try (shown in the UI and API).
    /// Records the render of a task instance's `map_index_template`.
    pub fn set_rendered_map_index(&self, id: &str, text: &str) -> Result<bool> {
        let n = self
            .0
            .exec(
                "UPDATE task_instance SET rendered_map_index = ?2 WHERE id = ?1",
                [id, text],
            )
            .map_err(db)?;
        Ok(n == 1)
    }

    pub fn set_rendered(&self, id: &str, command: &str) -> Result<()> {
        self.0
            .exec(
                "UPDATE task_instance SET rendered_command = ?2 WHERE id = ?1",
                [id, command],
            )
            .map_err(db)?;
        Ok(())
    }

    /// Clears a task instance so it runs again: its finished try goes to history, the
    /// state to none (a running one to `restarting`, so its process is told to stop).
    pub fn clear_ti(&self, id: &str, retries: u32, now: DateTime<Utc>) -> Result<()> {
        self.record_try(id)?;
        // As Airflow's clear: a sensor cleared starts its timeout afresh.
        self.0
            .exec("DELETE FROM task_reschedule WHERE ti_id = ?1", params![id])
            .map_err(db)?;
        self.0
            .exec(
                "UPDATE task_instance SET
                    state = CASE WHEN state = 'running' THEN 'restarting' ELSE NULL END,
                    max_tries = try_number + ?2, next_retry_at = NULL, updated_at = ?3
                 WHERE id = ?1",
                params![id, retries, ts(now)],
            )
            .map_err(db)?;
        Ok(())
    }

    /// Writes an XCom value (JSON) of the task instance at `map_index`, replacing an
    /// earlier one.
    #[allow(clippy::too_many_arguments)]
    pub fn set_xcom(
        &self,
        dag_id: &str,
        run_id: &str,
        task_id: &str,
        map_index: i64,
        key: &str,
        value: &Value,
        now: DateTime<Utc>,
    ) -> Result<()> {
        self.0
            .exec(
                "INSERT OR REPLACE INTO xcom (dag_id, run_id, task_id, map_index, key, value, timestamp)
                 VALUES (?1, ?2, ?3, ?7, ?4, ?5, ?6)",
                params![dag_id, run_id, task_id, key, value.to_string(), ts(now), map_index],
            )
            .map_err(db)?;
        Ok(())
    }

    /// Removes a task instance's XComs (a new try starts clean, as in Airflow).
    pub fn clear_xcoms(
        &self,
        dag_id: &str,
        run_id: &str,
        task_id: &str,
        map_index: i64,
    ) -> Result<()> {
        self.0
            .exec(
                "DELETE FROM xcom WHERE dag_id = ?1 AND run_id = ?2 AND task_id = ?3 AND map_index = ?4",
                params![dag_id, run_id, task_id, map_index],
            )
            .map_err(db)?;
        Ok(())
    }

    /// An audit row (Airflow's `log` table).
    pub fn event(&self, ev: &Event, now: DateTime<Utc>) -> Result<()> {
        self.0
            .exec(
                "INSERT INTO log (dttm, dag_id, task_id, run_id, map_index, try_number, event, owner, extra)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    ts(now),
                    ev.dag_id,
                    ev.task_id,
                    ev.run_id,
                    ev.task_id.as_ref().map(|_| -1),
                    ev.try_number,
                    ev.event,
                    ev.owner,
                    ev.extra
                ],
            )
            .map_err(db)?;
        Ok(())
    }

    /// Reads inside the transaction.
    pub fn ti(&self, id: &str) -> Result<Option<TiRow>> {
        self.0
            .row(
                &format!("SELECT {TI_COLS} FROM task_instance WHERE id = ?1"),
                [id],
                ti_row,
            )
            .optional()
            .map_err(db)
    }

    pub fn run(&self, dag_id: &str, run_id: &str) -> Result<Option<RunRow>> {
        self.0
            .row(
                &format!("SELECT {RUN_COLS} FROM dag_run WHERE dag_id = ?1 AND run_id = ?2"),
                [dag_id, run_id],
                run_row,
            )
            .optional()
            .map_err(db)
    }
}

/// An audit event.
#[derive(Debug, Default)]
pub struct Event {
    pub event: String,
    pub dag_id: Option<String>,
    pub task_id: Option<String>,
    pub run_id: Option<String>,
    pub try_number: Option<u32>,
    pub owner: Option<String>,
    pub extra: Option<String>,
}

impl Event {
    /// A task instance's state change, as Airflow logs one per transition.
    pub fn for_ti(ti: &TiRow, event: &str, owner: &str, extra: serde_json::Value) -> Event {
        Event {
            event: event.to_string(),
            dag_id: Some(ti.dag_id.clone()),
            task_id: Some(ti.task_id.clone()),
            run_id: Some(ti.run_id.clone()),
            try_number: Some(ti.try_number),
            owner: Some(owner.to_string()),
            extra: Some(extra.to_string()),
        }
    }
}

pub(super) fn opt_time(r: &Row, i: usize) -> rusqlite::Result<Option<DateTime<Utc>>> {
    Ok(r.get::<_, Option<String>>(i)?.and_then(|s| parse_ts(&s)))
}

fn time(r: &Row, i: usize) -> rusqlite::Result<DateTime<Utc>> {
    super::dags::time_col(r, i)
}

fn bad_token(i: usize, s: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        i,
        rusqlite::types::Type::Text,
        format!("unknown state {s:?}").into(),
    )
}

pub(super) fn run_row(r: &Row) -> rusqlite::Result<RunRow> {
    let run_type: String = r.get(3)?;
    let state: String = r.get(4)?;
    let conf: String = r.get(12)?;
    Ok(RunRow {
        id: r.get(0)?,
        dag_id: r.get(1)?,
        run_id: r.get(2)?,
        run_type: RunType::parse(&run_type).ok_or_else(|| bad_token(3, &run_type))?,
        state: RunState::parse(&state).ok_or_else(|| bad_token(4, &state))?,
        logical_date: opt_time(r, 5)?,
        data_interval_start: opt_time(r, 6)?,
        data_interval_end: opt_time(r, 7)?,
        run_after: time(r, 8)?,
        queued_at: opt_time(r, 9)?,
        start_date: opt_time(r, 10)?,
        end_date: opt_time(r, 11)?,
        conf: serde_json::from_str(&conf).unwrap_or(Value::Object(Default::default())),
        note: r.get(13)?,
        triggered_by: r.get(14)?,
        triggering_user_name: r.get(15)?,
        clear_number: r.get(16)?,
        last_scheduling_decision: opt_time(r, 17)?,
        updated_at: time(r, 18)?,
        backfill_id: r.get(19)?,
    })
}

pub(super) fn ti_row(r: &Row) -> rusqlite::Result<TiRow> {
    let state: Option<String> = r.get(7)?;
    let state = match state {
        None => None,
        Some(s) => Some(TaskState::parse(&s).ok_or_else(|| bad_token(7, &s))?),
    };
    Ok(TiRow {
        id: r.get(0)?,
        dag_id: r.get(1)?,
        run_id: r.get(2)?,
        task_id: r.get(3)?,
        map_index: r.get(4)?,
        try_number: r.get(5)?,
        max_tries: r.get(6)?,
        state,
        operator: r.get(8)?,
        pool: r.get(9)?,
        pool_slots: r.get(10)?,
        priority_weight: r.get(11)?,
        queued_dttm: opt_time(r, 12)?,
        scheduled_dttm: opt_time(r, 13)?,
        start_date: opt_time(r, 14)?,
        end_date: opt_time(r, 15)?,
        duration: r.get(16)?,
        hostname: r.get(17)?,
        unixname: r.get(18)?,
        pid: r.get(19)?,
        last_heartbeat_at: opt_time(r, 20)?,
        next_retry_at: opt_time(r, 21)?,
        rendered_command: r.get(22)?,
        note: r.get(23)?,
        updated_at: time(r, 24)?,
        rendered_map_index: r.get(25)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run of a DAG whose task `m` is mapped over `values` (YAML), in a fresh store.
    fn run_of(values: &str) -> (std::path::PathBuf, Store, Vec<TiRow>) {
        use std::hash::{BuildHasher, RandomState};
        let dir = std::env::temp_dir().join(format!(
            "updraft-runs-{}-{}",
            std::process::id(),
            RandomState::new().hash_one(0u8)
        ));
        let mut store = Store::open(&dir.join("t.db")).unwrap();
        let now: DateTime<Utc> = "2025-01-01T00:00:00Z".parse().unwrap();
        let yaml = format!(
            "d:\n  schedule: null\n  start_date: 2024-01-01\n  tasks:\n    - task_id: m\n      \
             operator: airflow.providers.standard.operators.bash.BashOperator\n      \
             bash_command: echo\n      pool_slots: 2\n      expand:\n        env: {values}\n"
        );
        let parsed = crate::dagfile::parse("d.yml", &yaml, now);
        assert_eq!(parsed.errors, []);
        let dag = &parsed.dags[0];
        store
            .write(|tx| {
                tx.create_run(
                    &NewRun {
                        dag,
                        run_id: "r".into(),
                        run_type: RunType::Manual,
                        logical_date: None,
                        data_interval: None,
                        run_after: now,
                        conf: Value::Object(Default::default()),
                        note: None,
                        triggered_by: "test",
                        user: None,
                        backfill_id: None,
                    },
                    now,
                )
            })
            .unwrap();
        let tis = store.tis_of_run("d", "r").unwrap();
        (dir, store, tis)
    }

    #[test]
    fn a_literal_mapped_task_gets_its_instances_with_the_run() {
        let (dir, _, tis) = run_of("[{A: '1'}, {A: '2'}]");
        let indexes: Vec<i64> = tis.iter().map(|t| t.map_index).collect();
        assert_eq!(indexes, [0, 1]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// The expansion the scheduler does when a length is known only at run time (and for
    /// zero-length literals, which are skipped instead): -1 becomes 0, the rest are new,
    /// like it; once only.
    #[test]
    fn an_unexpanded_instance_expands_once() {
        let (dir, mut store, tis) = run_of("[]");
        assert_eq!(tis.len(), 1);
        assert_eq!(tis[0].map_index, -1);
        let now: DateTime<Utc> = "2025-01-01T00:01:00Z".parse().unwrap();
        assert!(
            store
                .write(|tx| tx.expand_ti(&tis[0], 3, false, now))
                .unwrap()
        );
        assert!(
            !store
                .write(|tx| tx.expand_ti(&tis[0], 3, false, now))
                .unwrap()
        );
        let after = store.tis_of_run("d", "r").unwrap();
        let indexes: Vec<i64> = after.iter().map(|t| t.map_index).collect();
        assert_eq!(indexes, [0, 1, 2]);
        assert_eq!(after[0].id, tis[0].id);
        assert!(after.iter().all(|t| t.pool_slots == 2 && t.state.is_none()));
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// A mapped task's instances are made in chunks and scheduled in one statement, each
    /// such write numbered once so the scheduler's cache rereads them (`tis_changed_since`)
    /// without the per-row triggers; an instance that moved meanwhile is left alone.
    #[test]
    fn expanded_instances_are_numbered_and_scheduled_together() {
        let (dir, mut store, tis) = run_of("[]");
        let now: DateTime<Utc> = "2025-01-01T00:01:00Z".parse().unwrap();
        let before = store.ti_change_seq().unwrap();
        // More than one chunk of the multi-row INSERT.
        assert!(
            store
                .write(|tx| tx.expand_ti(&tis[0], 1001, false, now))
                .unwrap()
        );
        let seq = store.ti_change_seq().unwrap();
        let changed = store.tis_changed_since(before).unwrap();
        assert_eq!(changed.len(), 1001);
        let mut indexes: Vec<i64> = changed.iter().map(|(_, t)| t.map_index).collect();
        indexes.sort_unstable();
        assert_eq!(indexes, (0..1001).collect::<Vec<i64>>());
        assert!(changed.iter().all(|(n, _)| *n > before && *n <= seq));
        assert_eq!(
            seq - before,
            2,
            "one number for the update, one for the inserts"
        );
        let rows = store.tis_of_run("d", "r").unwrap();
        // One was moved by someone else meanwhile: not scheduled again.
        store
            .write(|tx| tx.set_ti_state(&rows[5].id, None, Some(TaskState::Skipped), now, None))
            .unwrap();
        let ids: Vec<&str> = rows.iter().map(|t| t.id.as_str()).collect();
        let moved = store.write(|tx| tx.schedule_new_tis(&ids, now)).unwrap();
        assert_eq!(moved.len(), 1000);
        assert!(!moved.contains(&rows[5].id));
        let after_seq = store.ti_change_seq().unwrap();
        let changed = store.tis_changed_since(after_seq - 1).unwrap();
        assert_eq!(changed.len(), 1000);
        let rows = store.tis_of_run("d", "r").unwrap();
        assert_eq!(rows[5].state, Some(TaskState::Skipped));
        assert!(rows.iter().filter(|t| t.map_index != 5).all(|t| {
            t.state == Some(TaskState::Scheduled) && t.try_number == 1 && t.scheduled_dttm.is_some()
        }));
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// An expansion the trigger rule let through is written scheduled, in the same
    /// statements (numbered as without), as `schedule_new_tis` would leave each instance.
    #[test]
    fn an_expansion_can_be_written_scheduled() {
        let (dir, mut store, tis) = run_of("[]");
        let now: DateTime<Utc> = "2025-01-01T00:01:00Z".parse().unwrap();
        let before = store.ti_change_seq().unwrap();
        assert!(
            store
                .write(|tx| tx.expand_ti(&tis[0], 1001, true, now))
                .unwrap()
        );
        assert_eq!(store.ti_change_seq().unwrap() - before, 2);
        let rows = store.tis_of_run("d", "r").unwrap();
        assert_eq!(rows.len(), 1001);
        assert!(rows.iter().all(|t| {
            t.state == Some(TaskState::Scheduled)
                && t.try_number == 1
                && t.scheduled_dttm == Some(now)
        }));
        let ids: Vec<&str> = rows.iter().map(|t| t.id.as_str()).collect();
        assert!(
            store
                .write(|tx| tx.schedule_new_tis(&ids, now))
                .unwrap()
                .is_empty()
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// Issue 22: a try's state writes number their row themselves, one change number
    /// each as the `ti_updated` trigger gives, so the scheduler reads each change once;
    /// a refused compare-and-set takes no number.
    /// A write of a task instance's state keeps `ti_active` without building a temporary
    /// b-tree for its condition (SQLite builds one per run of a statement for an IN list
    /// of more than two constants), and the active-task queries still read the index.
    #[test]
    fn state_writes_and_active_reads_build_no_temporary_btree() {
        let (dir, store, _) = run_of("[{A: '1'}]");
        let ops = |sql: &str| -> Vec<String> {
            let mut st = store.conn.prepare(&format!("EXPLAIN {sql}")).unwrap();
            let nulls = vec![rusqlite::types::Null; st.parameter_count()];
            st.query_map(rusqlite::params_from_iter(nulls), |r| r.get::<_, String>(1))
                .unwrap()
                .map(|op| op.unwrap())
                .collect()
        };
        let plan = |sql: &str| -> String {
            let mut st = store
                .conn
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .unwrap();
            let nulls = vec![rusqlite::types::Null; st.parameter_count()];
            st.query_map(rusqlite::params_from_iter(nulls), |r| r.get::<_, String>(3))
                .unwrap()
                .map(|d| d.unwrap())
                .collect::<Vec<_>>()
                .join("; ")
        };
        let write = "UPDATE task_instance SET state = ?2 WHERE id = ?1";
        assert!(
            !ops(write).iter().any(|op| op == "OpenEphemeral"),
            "{:?}",
            ops(write)
        );
        let read = format!("SELECT id FROM task_instance WHERE state = 'running' AND {ACTIVE_TI}");
        assert!(!ops(&read).iter().any(|op| op == "OpenEphemeral"));
        assert!(plan(&read).contains("ti_active"), "{}", plan(&read));
        let all = format!("SELECT id FROM task_instance WHERE {ACTIVE_TI}");
        assert!(plan(&all).contains("ti_active"), "{}", plan(&all));
        // What every queueing pass reads of the slots in use.
        let slots = slot_usage_sql();
        assert!(
            !ops(&slots).iter().any(|op| op == "OpenEphemeral"),
            "{:?}",
            ops(&slots)
        );
        assert_eq!(
            plan(&slots).matches("ti_active").count(),
            2,
            "{}",
            plan(&slots)
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    /// `schedule_and_queue_ti` leaves a row exactly as `set_ti_state(.., Scheduled)` then
    /// `queue_ti` leave it (from no state, up for retry, up for reschedule), numbered
    /// once; from any other state it changes nothing.
    #[test]
    fn scheduling_and_queueing_in_one_write_is_the_two_writes() {
        let now: DateTime<Utc> = "2025-01-01T00:01:00Z".parse().unwrap();
        let earlier = "2025-01-01T00:00:30.000000+00:00";
        let row = |store: &Store, id: &str| -> Vec<String> {
            let mut st = store
                .conn
                .prepare("SELECT * FROM task_instance WHERE id = ?1")
                .unwrap();
            let names: Vec<String> = st.column_names().map(str::to_string).collect();
            st.query_row([id], |r| {
                Ok(names
                    .iter()
                    .enumerate()
                    .filter(|(_, n)| *n != "id" && *n != "change_seq")
                    .map(|(i, n)| format!("{n}={:?}", r.get_ref(i).unwrap()))
                    .collect())
            })
            .unwrap()
        };
        for from in [
            None,
            Some(TaskState::UpForRetry),
            Some(TaskState::UpForReschedule),
        ] {
            let (dir1, mut two, tis1) = run_of("[{A: '1'}]");
            let (dir2, mut one, tis2) = run_of("[{A: '1'}]");
            for (store, id) in [(&two, &tis1[0].id), (&one, &tis2[0].id)] {
                store
                    .conn
                    .execute(
                        "UPDATE task_instance SET state = ?2, try_number = 1, next_retry_at = ?3,
                            start_date = ?3, end_date = ?3, duration = 1.5, pid = 5, hostname = 'h',
                            last_heartbeat_at = ?3, updated_at = ?3
                         WHERE id = ?1",
                        params![id, from.map(TaskState::as_str), earlier],
                    )
                    .unwrap();
            }
            let (a, b) = (tis1[0].id.as_str(), tis2[0].id.as_str());
            let moved = two
                .write(|tx| {
                    Ok(
                        tx.set_ti_state(a, from, Some(TaskState::Scheduled), now, None)?
                            && tx.queue_ti(a, 7, now)?,
                    )
                })
                .unwrap();
            let seq = one.ti_change_seq().unwrap();
            assert!(moved);
            assert!(
                one.write(|tx| tx.schedule_and_queue_ti(b, from, 7, now))
                    .unwrap()
            );
            assert_eq!(row(&one, b), row(&two, a), "from {from:?}");
            assert_eq!(one.ti_change_seq().unwrap(), seq + 1);
            // A compare-and-set on another state: nothing written, no number taken.
            let before = row(&one, b);
            assert!(
                !one.write(|tx| tx.schedule_and_queue_ti(b, from, 7, now))
                    .unwrap()
            );
            assert_eq!(
                (row(&one, b), one.ti_change_seq().unwrap()),
                (before, seq + 1)
            );
            let _ = std::fs::remove_dir_all(dir1);
            let _ = std::fs::remove_dir_all(dir2);
        }
    }

    #[test]
    fn a_tries_state_writes_are_numbered_once_each() {
        let (dir, mut store, tis) = run_of("[{A: '1'}]");
        let id = tis[0].id.as_str();
        let now: DateTime<Utc> = "2025-01-01T00:01:00Z".parse().unwrap();
        type Step<'a> = &'a dyn Fn(&Tx) -> Result<bool>;
        let steps: [(&str, Step); 5] = [
            ("scheduled", &|tx| {
                tx.set_ti_state(id, None, Some(TaskState::Scheduled), now, None)
            }),
            ("queued", &|tx| tx.queue_ti(id, 1, now)),
            ("queued again", &|tx| tx.queue_ti(id, 1, now)),
            ("running", &|tx| tx.start_ti(id, 7, "h", "u", now, now)),
            ("success", &|tx| {
                tx.set_ti_state(
                    id,
                    Some(TaskState::Running),
                    Some(TaskState::Success),
                    now,
                    None,
                )
            }),
        ];
        for (what, step) in steps {
            let before = store.ti_change_seq().unwrap();
            let wrote = store.write(|tx| step(tx)).unwrap();
            let after = store.ti_change_seq().unwrap();
            let changed = store.tis_changed_since(before).unwrap();
            if wrote {
                assert_eq!(after, before + 1, "{what}");
                assert_eq!(changed.len(), 1, "{what}");
                assert_eq!(
                    (changed[0].0, changed[0].1.id.as_str()),
                    (after, id),
                    "{what}"
                );
            } else {
                assert_eq!((after, changed.len()), (before, 0), "{what}");
            }
        }
        let ti = store.ti(id).unwrap().unwrap();
        assert_eq!(ti.state, Some(TaskState::Success));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
