//! Airflow 3's backfills (`airflow/models/backfill.py`), shared by the CLI and the Core
//! API: which logical dates a backfill covers, what it does with a date that already has
//! a run (`reprocess_behavior`), its creation with all its runs, the dry run, pause and
//! cancel.
//!
//! As in Airflow, creating a backfill creates its runs at once, queued, in one
//! transaction with the backfill and the dates it skipped; the scheduler then starts them
//! within the backfill's own `max_active_runs` and marks the backfill completed when none
//! is left (`scheduler/mod.rs`). Dates come from the DAG's timetable
//! (`scheduler::timetable::next_run`) with the backfill's range as start and end date and
//! catchup on, as Airflow's `iter_dagrun_infos_between` does.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::model::{Dag, RunState, RunType, Schedule};
use crate::scheduler::timetable::{self, RunInfo};
use crate::store::{BackfillRow, Event, NewBackfill, NewRun, Store};

/// The most runs one backfill may cover. Airflow has no bound; updraft has one so that a
/// request for a minutely DAG over a century cannot make a transaction of millions of rows.
pub const MAX_RUNS: usize = 10_000;

/// What a backfill does with a date that already has a finished run (Airflow's
/// `ReprocessBehavior`). A run still queued or running is never touched ("in flight").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Reprocess {
    /// Leave every date that has a run.
    #[default]
    None,
    /// Run again the dates whose run failed.
    Failed,
    /// Run again every date whose run finished.
    Completed,
}

impl Reprocess {
    pub const NAMES: [&'static str; 3] = ["none", "failed", "completed"];

    pub fn parse(s: &str) -> Option<Reprocess> {
        match s {
            "none" => Some(Reprocess::None),
            "failed" => Some(Reprocess::Failed),
            "completed" => Some(Reprocess::Completed),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Reprocess::None => "none",
            Reprocess::Failed => "failed",
            Reprocess::Completed => "completed",
        }
    }
}

/// A backfill as asked for (Airflow's `BackfillPostBody`).
#[derive(Debug, Clone)]
pub struct Request {
    pub dag_id: String,
    pub from_date: DateTime<Utc>,
    pub to_date: DateTime<Utc>,
    pub run_backwards: bool,
    /// The runs' conf; `None` is `{}`.
    pub dag_run_conf: Option<Value>,
    pub reprocess: Reprocess,
    pub max_active_runs: i64,
    pub user: Option<String>,
}

/// Why a backfill is refused, each as Airflow answers it.
#[derive(Debug)]
pub enum Refused {
    /// 404 in the API: "Could not find dag ...".
    DagNotFound(String),
    /// 409: another backfill of the DAG is not completed.
    AlreadyRunning(String),
    /// 422 with the message as `detail` (Airflow raises `RequestValidationError(str(e))`).
    Invalid(String),
    /// 404: "Backfill not found".
    NotFound,
    /// 409: "Backfill is already completed."
    Completed,
    /// The store failed.
    Store(Error),
}

impl From<Error> for Refused {
    fn from(e: Error) -> Refused {
        Refused::Store(e)
    }
}

impl From<Refused> for Error {
    /// For the CLI: the message as Airflow words it, with an exit code by kind.
    fn from(r: Refused) -> Error {
        match r {
            Refused::DagNotFound(dag_id) => Error::NotFound(format!("Could not find dag {dag_id}")),
            Refused::AlreadyRunning(dag_id) => Error::Conflict(already_running(&dag_id)),
            Refused::Invalid(msg) => Error::Usage(msg),
            Refused::NotFound => Error::NotFound(NOT_FOUND.into()),
            Refused::Completed => Error::Conflict(COMPLETED.into()),
            Refused::Store(e) => e,
        }
    }
}

/// Airflow's `BACKFILL_NOT_FOUND`.
pub const NOT_FOUND: &str = "Backfill not found";
/// Airflow's 409 text for pausing, unpausing or cancelling a completed backfill.
pub const COMPLETED: &str = "Backfill is already completed.";

/// Airflow's 409 text when a DAG already has a backfill that is not completed.
pub fn already_running(dag_id: &str) -> String {
    format!("There is already a running backfill for dag {dag_id}")
}

/// What a backfill does with one date (Airflow's `_get_dag_run_no_create_reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// No run yet: make one.
    Create,
    /// Its finished run runs again: cleared, queued and handed to the backfill.
    Reprocess,
    /// Left alone, for this reason (Airflow's `BackfillDagRunExceptionReason`).
    Skip(&'static str),
}

/// The verdict for a date whose run (if any) is in `existing`.
pub fn verdict(existing: Option<RunState>, reprocess: Reprocess) -> Verdict {
    match existing {
        None => Verdict::Create,
        Some(s) if !s.is_finished() => Verdict::Skip("in flight"),
        Some(s) => match reprocess {
            Reprocess::Completed => Verdict::Reprocess,
            Reprocess::Failed if s == RunState::Failed => Verdict::Reprocess,
            Reprocess::Failed | Reprocess::None => Verdict::Skip("already exists"),
        },
    }
}

/// Whether a schedule makes runs at regular times (Airflow's `timetable.periodic`);
/// `None` and `@once` do not, and cannot be backfilled.
pub fn periodic(schedule: &Schedule) -> bool {
    schedule.is_periodic()
}

/// The runs a backfill of `dag` over the request's range covers, in the order they are
/// to run, after Airflow's checks (`_validate_backfill_params`, `_get_info_list`): only
/// runs whose data interval has ended by `now`. Pure: the caller passes `now`.
///
/// Airflow also refuses `run_backwards` and `reprocess_behavior: none` for DAGs with
/// `depends_on_past` tasks; updraft's tasks never depend on the past.
pub fn dates(dag: &Dag, req: &Request, now: DateTime<Utc>) -> Result<Vec<RunInfo>, Refused> {
    if !periodic(&dag.schedule) {
        return Err(Refused::Invalid(format!(
            "{} has a non-periodic schedule that does not support backfills",
            dag.dag_id
        )));
    }
    if req.from_date > req.to_date {
        return Err(Refused::Invalid(format!(
            "from_date ({}) must not be after to_date ({}).",
            isoformat(req.from_date),
            isoformat(req.to_date)
        )));
    }
    if req.from_date >= now && req.to_date >= now {
        return Err(Refused::Invalid(
            "Backfill cannot be executed for future dates.".into(),
        ));
    }
    // The timetable bounded by the range instead of the DAG's own dates, catchup on:
    // Airflow's `TimeRestriction(earliest, latest, catchup=True)`.
    let mut bounded = dag.clone();
    bounded.start_date = Some(req.from_date);
    bounded.end_date = Some(req.to_date);
    bounded.catchup = true;
    let mut out: Vec<RunInfo> = Vec::new();
    let mut last: Option<RunInfo> = None;
    while let Some(info) = timetable::next_run(&bounded, last.as_ref(), now) {
        if last.is_some_and(|l| info.logical_date <= l.logical_date)
            || info.logical_date > req.to_date
        {
            break;
        }
        if info.data_interval_end >= now {
            break;
        }
        out.push(info);
        if out.len() > MAX_RUNS {
            return Err(Refused::Invalid(format!(
                "A backfill of {} from {} to {} would make more than {MAX_RUNS} runs; updraft allows at most {MAX_RUNS} per backfill.",
                dag.dag_id,
                isoformat(req.from_date),
                isoformat(req.to_date)
            )));
        }
        last = Some(info);
    }
    if req.run_backwards {
        out.reverse();
    }
    Ok(out)
}

/// A live DAG, or Airflow's "Could not find dag".
fn live_dag(store: &Store, dag_id: &str) -> Result<std::sync::Arc<Dag>, Refused> {
    store
        .dag(dag_id)?
        .filter(|d| !d.is_stale)
        .map(|d| d.dag)
        .ok_or_else(|| Refused::DagNotFound(dag_id.to_string()))
}

/// Airflow's `_do_dry_run`: the dates a backfill would run (make or reprocess), in order.
pub fn dry_run(store: &Store, req: &Request, now: DateTime<Utc>) -> Result<Vec<RunInfo>, Refused> {
    let dag = live_dag(store, &req.dag_id)?;
    let mut out = Vec::new();
    for info in dates(&dag, req, now)? {
        let existing = store.run_at(&req.dag_id, info.logical_date)?;
        if !matches!(
            verdict(existing.map(|r| r.state), req.reprocess),
            Verdict::Skip(_)
        ) {
            out.push(info);
        }
    }
    Ok(out)
}

/// Airflow's `_create_backfill`: the backfill, a queued run for each date without one,
/// the finished runs `reprocess` asks for cleared and queued again, and a record of each
/// date skipped, all in one transaction. `audited` says the caller writes its own audit
/// row (the API does, from its route table).
pub fn create(
    store: &mut Store,
    req: &Request,
    audited: bool,
    now: DateTime<Utc>,
) -> Result<BackfillRow, Refused> {
    let dag = live_dag(store, &req.dag_id)?;
    if !periodic(&dag.schedule) {
        return Err(dates(&dag, req, now).err().unwrap_or(Refused::NotFound));
    }
    let conf = req.dag_run_conf.clone().unwrap_or_else(|| json!({}));
    let result = store.write(|tx| {
        // In Airflow's order: another open backfill before the request's own checks.
        if tx.open_backfill_count(&req.dag_id)? > 0 {
            return Ok(Err(Refused::AlreadyRunning(req.dag_id.clone())));
        }
        let infos = match dates(&dag, req, now) {
            Ok(infos) if infos.is_empty() => {
                return Ok(Err(Refused::Invalid(format!(
                    "No runs to create for Dag {} in the range [{}, {}]",
                    req.dag_id,
                    py_str(req.from_date),
                    py_str(req.to_date)
                ))));
            }
            Ok(infos) => infos,
            Err(e) => return Ok(Err(e)),
        };
        let id = tx.insert_backfill(
            &NewBackfill {
                dag_id: &req.dag_id,
                from_date: req.from_date,
                to_date: req.to_date,
                dag_run_conf: &conf,
                reprocess_behavior: req.reprocess.as_str(),
                max_active_runs: req.max_active_runs,
                user: req.user.as_deref(),
            },
            now,
        )?;
        for (i, info) in infos.iter().enumerate() {
            let ordinal = i as u32 + 1;
            let existing = tx.run_at(&req.dag_id, info.logical_date)?;
            match verdict(existing.as_ref().map(|r| r.state), req.reprocess) {
                Verdict::Skip(reason) => {
                    tx.add_backfill_date(id, info.logical_date, None, Some(reason), ordinal)?;
                }
                Verdict::Create => {
                    let run = tx.create_run(
                        &NewRun {
                            dag: &dag,
                            run_id: run_id(info.logical_date),
                            run_type: RunType::Backfill,
                            logical_date: Some(info.logical_date),
                            data_interval: Some((info.data_interval_start, info.data_interval_end)),
                            run_after: info.run_after,
                            conf: conf.clone(),
                            note: None,
                            triggered_by: "backfill",
                            user: req.user.as_deref(),
                            backfill_id: Some(id),
                        },
                        now,
                    )?;
                    tx.add_backfill_date(id, info.logical_date, Some(run.id), None, ordinal)?;
                }
                Verdict::Reprocess => {
                    let Some(run) = existing else { continue };
                    // Airflow's `_handle_clear_run`: `dag.clear` of the whole run, the run
                    // back to queued, then it becomes the backfill's.
                    for ti in tx.tis_of_run(&run.dag_id, &run.run_id)? {
                        if ti.state.is_some() {
                            let retries = dag.task(&ti.task_id).map_or(0, |t| t.retries);
                            tx.clear_ti(&ti.id, retries, now)?;
                        }
                    }
                    tx.set_run_state(run.id, run.state, RunState::Queued, now)?;
                    tx.restart_run(run.id)?;
                    tx.adopt_run(run.id, id, req.dag_run_conf.as_ref())?;
                    tx.add_backfill_date(id, info.logical_date, Some(run.id), None, ordinal)?;
                }
            }
        }
        if !audited {
            tx.event(
                &Event {
                    event: "create_backfill".into(),
                    dag_id: Some(req.dag_id.clone()),
                    owner: req.user.clone(),
                    extra: Some(
                        json!({"from_date": isoformat(req.from_date), "to_date": isoformat(req.to_date),
                               "reprocess_behavior": req.reprocess.as_str(),
                               "max_active_runs": req.max_active_runs, "run_backwards": req.run_backwards})
                        .to_string(),
                    ),
                    ..Event::default()
                },
                now,
            )?;
        }
        Ok(Ok(tx.backfill(id)?))
    })?;
    match result? {
        Some(b) => Ok(b),
        None => Err(Refused::NotFound),
    }
}

/// Pauses (no new run starts; running ones go on) or unpauses a backfill.
pub fn set_paused(
    store: &mut Store,
    id: i64,
    paused: bool,
    now: DateTime<Utc>,
) -> Result<BackfillRow, Refused> {
    store
        .write(|tx| {
            let Some(b) = tx.backfill(id)? else {
                return Ok(Err(Refused::NotFound));
            };
            if b.completed_at.is_some() || !tx.set_backfill_paused(id, paused, now)? {
                return Ok(Err(Refused::Completed));
            }
            Ok(tx.backfill(id)?.ok_or(Refused::NotFound))
        })
        .map_err(Refused::Store)?
}

/// Airflow's cancel: the backfill paused, its runs not yet started failed, and the
/// backfill completed at once; runs already running finish as they would.
pub fn cancel(store: &mut Store, id: i64, now: DateTime<Utc>) -> Result<BackfillRow, Refused> {
    store
        .write(|tx| {
            let Some(b) = tx.backfill(id)? else {
                return Ok(Err(Refused::NotFound));
            };
            if b.completed_at.is_some() {
                return Ok(Err(Refused::Completed));
            }
            tx.set_backfill_paused(id, true, now)?;
            let failed = tx.fail_queued_backfill_runs(id, now)?;
            tx.complete_backfill(id, false, now)?;
            log::info!(
                "backfill {id} of {} cancelled; {failed} queued run(s) failed",
                b.dag_id
            );
            Ok(tx.backfill(id)?.ok_or(Refused::NotFound))
        })
        .map_err(Refused::Store)?
}

/// Airflow's run id for a backfill run: `backfill__` and the logical date as Python's
/// `isoformat` writes it.
pub fn run_id(logical_date: DateTime<Utc>) -> String {
    format!("backfill__{}", isoformat(logical_date))
}

/// Python's `datetime.isoformat()` of an aware UTC time: `2024-01-01T00:00:00+00:00`,
/// with microseconds only when there are some.
fn isoformat(t: DateTime<Utc>) -> String {
    let digits = if t.timestamp_subsec_micros() == 0 {
        SecondsFormat::Secs
    } else {
        SecondsFormat::Micros
    };
    t.to_rfc3339_opts(digits, false)
}

/// Python's `str(datetime)`: `isoformat` with a space for the `T`.
pub fn py_str(t: DateTime<Utc>) -> String {
    isoformat(t).replacen('T', " ", 1)
}

/// The dry run's dates as Airflow's CLI prints them: `tabulate`'s "grid" table of
/// logical date, partition key and partition date (updraft has no partitions, so
/// those are empty, as tabulate prints None).
pub fn dry_run_table(dates: &[RunInfo]) -> String {
    let headers = ["logical_date", "partition_key", "partition_date"];
    let rows: Vec<[String; 3]> = dates
        .iter()
        .map(|d| [py_str(d.logical_date), String::new(), String::new()])
        .collect();
    let widths: Vec<usize> = (0..3)
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count())
                // tabulate's MIN_PADDING: a header gets two spaces more than its text.
                .chain([headers[i].len() + 2])
                .max()
                .unwrap_or_default()
        })
        .collect();
    let rule = |c: char| -> String {
        let cells: Vec<String> = widths.iter().map(|w| c.to_string().repeat(w + 2)).collect();
        format!("+{}+\n", cells.join("+"))
    };
    let line = |cells: [&str; 3]| -> String {
        let cells: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!(" {c:<w$} "))
            .collect();
        format!("|{}|\n", cells.join("|"))
    };
    let mut out = rule('-');
    out.push_str(&line(headers));
    out.push_str(&rule('='));
    for r in &rows {
        out.push_str(&line([&r[0], &r[1], &r[2]]));
        out.push_str(&rule('-'));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 1, d, 0, 0, 0).unwrap()
    }

    /// A daily DAG whose own dates and catchup a backfill ignores.
    fn daily() -> Dag {
        let yaml = "d:\n  schedule: '@daily'\n  catchup: false\n  start_date: 2024-01-05\n  end_date: 2024-01-06\n  tasks:\n    t:\n      operator: airflow.operators.bash.BashOperator\n      bash_command: 'true'\n";
        let mut parsed = crate::dagfile::parse("dags/d.yml", yaml, at(31));
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        parsed.dags.remove(0)
    }

    fn req(from: u32, to: u32) -> Request {
        Request {
            dag_id: "d".into(),
            from_date: at(from),
            to_date: at(to),
            run_backwards: false,
            dag_run_conf: None,
            reprocess: Reprocess::None,
            max_active_runs: 10,
            user: None,
        }
    }

    fn logical(infos: &[RunInfo]) -> Vec<u32> {
        use chrono::Datelike;
        infos.iter().map(|i| i.logical_date.day()).collect()
    }

    #[test]
    fn dates_cover_the_range_inclusive_whatever_the_dags_own_dates() {
        let now = at(31);
        assert_eq!(
            logical(&dates(&daily(), &req(1, 10), now).unwrap()),
            (1..=10).collect::<Vec<_>>()
        );
        let mut back = req(1, 3);
        back.run_backwards = true;
        assert_eq!(
            logical(&dates(&daily(), &back, now).unwrap()),
            vec![3, 2, 1]
        );
        // A range that starts between two fire times begins at the next one.
        let mut r = req(1, 3);
        r.from_date = at(1) + chrono::Duration::hours(1);
        assert_eq!(logical(&dates(&daily(), &r, now).unwrap()), vec![2, 3]);
        // Only runs whose interval has ended by now.
        assert_eq!(
            logical(&dates(&daily(), &req(1, 10), at(4)).unwrap()),
            vec![1, 2, 3]
        );
    }

    #[test]
    fn dates_refuse_as_airflow_does() {
        let msg = |r: Result<Vec<RunInfo>, Refused>| match r {
            Err(Refused::Invalid(m)) => m,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            msg(dates(&daily(), &req(5, 2), at(31))),
            "from_date (2024-01-05T00:00:00+00:00) must not be after to_date (2024-01-02T00:00:00+00:00)."
        );
        assert_eq!(
            msg(dates(&daily(), &req(5, 9), at(3))),
            "Backfill cannot be executed for future dates."
        );
        let mut manual = daily();
        manual.schedule = Schedule::None;
        assert_eq!(
            msg(dates(&manual, &req(1, 2), at(31))),
            "d has a non-periodic schedule that does not support backfills"
        );
        let mut minutely = daily();
        minutely.schedule = Schedule::Cron {
            expr: "* * * * *".into(),
            raw: "* * * * *".into(),
        };
        assert!(msg(dates(&minutely, &req(1, 30), at(31))).contains("more than 10000 runs"));
    }

    #[test]
    fn verdicts_follow_reprocess_behavior() {
        use Reprocess as P;
        use RunState::*;
        let table = [
            (None, P::None, Verdict::Create),
            (Some(Queued), P::Completed, Verdict::Skip("in flight")),
            (Some(Running), P::Failed, Verdict::Skip("in flight")),
            (Some(Success), P::None, Verdict::Skip("already exists")),
            (Some(Failed), P::None, Verdict::Skip("already exists")),
            (Some(Success), P::Failed, Verdict::Skip("already exists")),
            (Some(Failed), P::Failed, Verdict::Reprocess),
            (Some(Success), P::Completed, Verdict::Reprocess),
            (Some(Failed), P::Completed, Verdict::Reprocess),
        ];
        for (state, p, want) in table {
            assert_eq!(verdict(state, p), want, "{state:?} {p:?}");
        }
    }

    #[test]
    fn run_ids_and_messages_print_dates_as_python() {
        assert_eq!(run_id(at(2)), "backfill__2024-01-02T00:00:00+00:00");
        assert_eq!(py_str(at(2)), "2024-01-02 00:00:00+00:00");
    }

    #[test]
    fn the_dry_run_table_is_tabulates_grid() {
        // What `tabulate([{"logical_date": dt, "partition_key": None, "partition_date":
        // None}], tablefmt="grid", headers="keys")` prints.
        let infos = dates(&daily(), &req(1, 2), at(31)).unwrap();
        assert_eq!(
            dry_run_table(&infos),
            "\
+---------------------------+-----------------+------------------+
| logical_date              | partition_key   | partition_date   |
+===========================+=================+==================+
| 2024-01-01 00:00:00+00:00 |                 |                  |
+---------------------------+-----------------+------------------+
| 2024-01-02 00:00:00+00:00 |                 |                  |
+---------------------------+-----------------+------------------+
"
        );
    }
}
