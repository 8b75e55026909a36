//! The scheduler's decisions, as functions of plain values: which run a schedule asks
//! for at a given time, whether a queued run may start, what a task instance does next
//! (with the trigger rules of `rules.rs`), how a run ends, and which scheduled task
//! instances to queue under the limits. The loop (`mod.rs`) reads the rows and counts,
//! calls these, and does the writes; nothing here reads the clock, the store or the
//! executor, so every case is a row in a table test below.
//!
//! They are the loop's hot path, so they allocate only what the loop did before they
//! were pulled out, and an input that costs a query or a walk over the graph is a
//! closure, called only when the decision needs it (`scheduled_run`'s `active`,
//! `task_step`'s `rule`, `run_end`'s `leaf_failed`); the tests check that it is not
//! called otherwise.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};

use super::rules::Decision;
use super::timetable::RunInfo;
use crate::error::Result;
use crate::model::{Dag, RunState, TaskState};
use crate::store::{OpenBackfill, TiRow};

/// What one DAG's schedule asks for in this pass.
#[derive(Debug, Clone, PartialEq)]
pub enum RunPlan {
    /// No run is coming: `@once` already ran, or the next fire time is past `end_date`.
    Done,
    /// The next run is due at this time; nothing to do before it.
    Later(DateTime<Utc>),
    /// The next run is due, but the DAG already has `max_active_runs` active runs.
    Full,
    /// Create this run now.
    Create { run_id: String, info: RunInfo },
}

/// What to do about a DAG whose next scheduled run is `next` (the timetable's answer,
/// see `timetable::next_run`) at `now`, with at most `limit` active runs.
///
/// `active` counts the DAG's active (queued or running) runs; it is called only when the
/// run is due, since it costs the loop a query.
pub fn scheduled_run(
    next: Option<RunInfo>,
    now: DateTime<Utc>,
    limit: u32,
    active: impl FnOnce() -> Result<u32>,
) -> Result<RunPlan> {
    let Some(info) = next else {
        return Ok(RunPlan::Done);
    };
    if info.run_after > now {
        return Ok(RunPlan::Later(info.run_after));
    }
    if active()? >= limit {
        return Ok(RunPlan::Full);
    }
    Ok(RunPlan::Create {
        run_id: scheduled_run_id(info.logical_date),
        info,
    })
}

/// Airflow's run id for a scheduled run: `scheduled__` and the logical date in RFC 3339
/// to the second.
pub fn scheduled_run_id(logical_date: DateTime<Utc>) -> String {
    format!(
        "scheduled__{}",
        logical_date.to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
    )
}

/// How many runs of `dag` may be active at once: its `max_active_runs`, or the
/// configured `max_active_runs_per_dag`.
pub fn run_limit(dag: &Dag, default: u32) -> u32 {
    dag.max_active_runs.unwrap_or(default)
}

/// Whether a queued run starts, with `running` runs of its DAG already running under
/// `limit`. A `held` run (its DAG is paused, and it is not the run `dags test` drives)
/// waits, manual runs too, as in Airflow.
pub fn may_start_run(running: u32, limit: u32, held: bool) -> bool {
    running < limit && !held
}

/// Which limit a queued run starts under, and whether it is held, as Airflow's
/// `_start_queued_dagruns` decides: a backfill's run counts against its backfill's
/// `max_active_runs` (runs of the same backfill), not the DAG's, and waits while the
/// backfill is paused (a cancelled one is) or is not in `backfills` (the caller lists
/// the backfill of every active run); every run waits while its DAG is paused.
/// Returns `(limit, held)`.
pub fn start_limit(
    backfill_id: Option<i64>,
    backfills: &[OpenBackfill],
    dag_limit: u32,
    dag_paused: bool,
) -> (u32, bool) {
    let Some(id) = backfill_id else {
        return (dag_limit, dag_paused);
    };
    match backfills.iter().find(|b| b.id == id) {
        Some(b) => (
            u32::try_from(b.max_active_runs.max(0)).unwrap_or(u32::MAX),
            dag_paused || b.is_paused,
        ),
        None => (0, true),
    }
}

/// The open backfills none of whose runs is queued or running (`active` lists the
/// backfill of every active run): Airflow's `_mark_backfills_complete`. The caller
/// re-checks each in its write, since a run may have been queued since.
pub fn finished_backfills(
    open: &[OpenBackfill],
    active: impl IntoIterator<Item = Option<i64>>,
) -> Vec<i64> {
    let busy: HashSet<i64> = active.into_iter().flatten().collect();
    open.iter()
        .map(|b| b.id)
        .filter(|id| !busy.contains(id))
        .collect()
}

/// What a pass does with one task instance of a run it advances.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Nothing: it is not waiting to be scheduled, or its trigger rule says wait.
    Stay,
    /// It is up for retry and its delay ends at this time: look again then.
    RetryAt(DateTime<Utc>),
    /// Move it to this state: scheduled, skipped, upstream_failed, or success for an
    /// EmptyOperator (which never runs anything, as in Airflow).
    To(TaskState),
    /// Expand this unexpanded instance of a mapped task into this many (at least one):
    /// it becomes map index 0 and the others are added; the next pass schedules them.
    Expand(usize),
}

/// The step for the task instance at `map_index` of a task that `mapped` (`Some(length)`,
/// the length when known: literals, or later an upstream's XCom), given the `step` its
/// trigger rule led to. Airflow's `_get_ready_tis`: an unexpanded instance (map index
/// -1) whose trigger rule lets it run is expanded then; to nothing it is skipped, and
/// with a length that cannot be known (an upstream pushed nothing) it is
/// upstream_failed (`expand_mapped_task`). Other steps, and expanded instances, stay.
pub fn mapped_step(step: Step, map_index: i64, mapped: Option<Option<usize>>) -> Step {
    let Some(length) = mapped else { return step };
    match step {
        Step::To(TaskState::Scheduled | TaskState::Success) if map_index < 0 => match length {
            None => Step::To(TaskState::UpstreamFailed),
            Some(0) => Step::To(TaskState::Skipped),
            Some(n) => Step::Expand(n),
        },
        other => other,
    }
}

/// The step for a task instance in state `current` (up for retry until
/// `next_retry_at`) at `now`. `empty`: its operator is EmptyOperator. `rule` evaluates
/// its trigger rule over its upstreams' states, and is called only for a task instance
/// with no state: a retry waits only for its delay, since its upstreams already let it
/// run once.
pub fn task_step(
    current: Option<TaskState>,
    next_retry_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    empty: bool,
    rule: impl FnOnce() -> Decision,
) -> Step {
    let decision = match current {
        None => rule(),
        // A sensor's next poke waits for its reschedule date as a retry for its delay.
        Some(TaskState::UpForRetry | TaskState::UpForReschedule) => match next_retry_at {
            Some(at) if at > now => return Step::RetryAt(at),
            _ => Decision::Run,
        },
        _ => return Step::Stay,
    };
    match decision {
        Decision::Wait => Step::Stay,
        Decision::Run if empty => Step::To(TaskState::Success),
        Decision::Run => Step::To(TaskState::Scheduled),
        Decision::Skip => Step::To(TaskState::Skipped),
        Decision::UpstreamFailed => Step::To(TaskState::UpstreamFailed),
    }
}

/// Whether a run that started at `started` has outlived its DAG's `dagrun_timeout`
/// (seconds) at `now`.
pub fn run_timed_out(
    timeout: Option<f64>,
    started: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> bool {
    match (timeout, started) {
        (Some(secs), Some(start)) => {
            now - start > chrono::Duration::milliseconds((secs * 1000.0) as i64)
        }
        _ => false,
    }
}

/// How a run ends after a pass, if it does: with `unfinished` task instances not in a
/// final state, `moving` of them able to move on their own (scheduled, queued, running,
/// up for retry, restarting). All finished: failed if a leaf task (one with no
/// downstream) failed or is upstream_failed (`leaf_failed`, asked only then), success
/// otherwise. Some unfinished but none moving: deadlocked, failed.
pub fn run_end(
    unfinished: usize,
    moving: usize,
    leaf_failed: impl FnOnce() -> bool,
) -> Option<RunState> {
    if unfinished == 0 {
        Some(if leaf_failed() {
            RunState::Failed
        } else {
            RunState::Success
        })
    } else {
        (moving == 0).then_some(RunState::Failed)
    }
}

/// Tasks with `max_active_tis_per_dag` or `max_active_tis_per_dagrun`, by (dag_id,
/// task_id): (per DAG, per run).
pub type TaskLimits = HashMap<(String, String), (Option<u32>, Option<u32>)>;

/// Slots taken, of `parallelism` (total), per DAG and per pool; and the instances of the
/// tasks with limits of their own, per task and per task in a run.
#[derive(Clone, Default)]
pub struct Slots<'a> {
    total: u32,
    per_dag: HashMap<&'a str, u32>,
    per_pool: HashMap<&'a str, i64>,
    limits: Option<&'a TaskLimits>,
    per_task: HashMap<(&'a str, &'a str), u32>,
    per_run_task: HashMap<(&'a str, &'a str, &'a str), u32>,
}

impl<'a> Slots<'a> {
    /// The slots that task instances already queued or running hold: `(dag_id, pool,
    /// pool_slots)` each.
    pub fn in_use(rows: &'a [(String, String, u32)]) -> Slots<'a> {
        let mut taken = Slots::default();
        for (dag_id, pool, slots) in rows {
            taken.take(dag_id, pool, *slots as i64);
        }
        taken
    }

    /// Counts the queued and running instances of the tasks in `limits`: `(dag_id,
    /// run_id, task_id)` each.
    pub fn with_task_limits(
        mut self,
        limits: &'a TaskLimits,
        rows: &'a [(String, String, String)],
    ) -> Slots<'a> {
        self.limits = Some(limits);
        for (dag_id, run_id, task_id) in rows {
            self.take_task(dag_id, run_id, task_id);
        }
        self
    }

    fn take(&mut self, dag_id: &'a str, pool: &'a str, slots: i64) {
        self.total += 1;
        *self.per_dag.entry(dag_id).or_default() += 1;
        *self.per_pool.entry(pool).or_default() += slots;
    }

    fn task_limit(&self, dag_id: &str, task_id: &str) -> Option<(Option<u32>, Option<u32>)> {
        self.limits?
            .get(&(dag_id.to_string(), task_id.to_string()))
            .copied()
    }

    fn take_task(&mut self, dag_id: &'a str, run_id: &'a str, task_id: &'a str) {
        if self.task_limit(dag_id, task_id).is_some() {
            *self.per_task.entry((dag_id, task_id)).or_default() += 1;
            *self
                .per_run_task
                .entry((dag_id, run_id, task_id))
                .or_default() += 1;
        }
    }

    /// Whether `ti` is within its task's own limits, if it has any.
    fn task_has_room(&self, ti: &TiRow) -> bool {
        let Some((per_dag, per_run)) = self.task_limit(&ti.dag_id, &ti.task_id) else {
            return true;
        };
        let key = (ti.dag_id.as_str(), ti.task_id.as_str());
        let in_dag = self.per_task.get(&key).copied().unwrap_or(0);
        let run_key = (ti.dag_id.as_str(), ti.run_id.as_str(), ti.task_id.as_str());
        let in_run = self.per_run_task.get(&run_key).copied().unwrap_or(0);
        per_dag.is_none_or(|n| in_dag < n) && per_run.is_none_or(|n| in_run < n)
    }

    fn dag(&self, dag_id: &str) -> u32 {
        self.per_dag.get(dag_id).copied().unwrap_or(0)
    }

    /// Takes `ti`'s slots if it fits within its DAG's `dag_limit` and its pool.
    fn admit(
        &mut self,
        ti: &'a TiRow,
        dag_limit: u32,
        pools: &HashMap<String, i64>,
        warned: &mut HashSet<String>,
    ) -> bool {
        let fits = self.dag(&ti.dag_id) < dag_limit
            && self.task_has_room(ti)
            && self.pool_has_room(ti, pools, warned);
        if fits {
            self.take(&ti.dag_id, &ti.pool, ti.pool_slots as i64);
            self.take_task(&ti.dag_id, &ti.run_id, &ti.task_id);
        }
        fits
    }

    /// Whether `ti` fits in its pool; a pool that does not exist is warned about once.
    fn pool_has_room(
        &self,
        ti: &TiRow,
        pools: &HashMap<String, i64>,
        warned: &mut HashSet<String>,
    ) -> bool {
        let Some(&size) = pools.get(&ti.pool) else {
            if warned.insert(ti.pool.clone()) {
                log::warn!(
                    "pool {:?} does not exist; tasks in it wait until it is created",
                    ti.pool
                );
            }
            return false;
        };
        let used = self.per_pool.get(ti.pool.as_str()).copied().unwrap_or(0);
        // -1 is an unlimited pool, as in Airflow.
        size == -1 || used + ti.pool_slots as i64 <= size
    }
}

/// The scheduled task instances to queue, in the order to queue them.
///
/// `waiting` is each run with scheduled task instances: its row id (lower is older),
/// its DAG and those task instances, highest priority first. `taken` is what queued and
/// running ones hold (`Slots::in_use`), `pools` each pool's size (-1: unlimited),
/// `dag_limit` a DAG's `max_active_tasks`. Within `parallelism`, the DAG limits and the
/// pools, the highest `priority_weight` goes first; ties go to the older run, then to
/// the order the run holds them in. A pool that does not exist holds its tasks back and
/// is added to `warned` (and logged) the first time.
pub fn to_queue<'a, I>(
    waiting: impl IntoIterator<Item = (i64, &'a str, I)>,
    mut taken: Slots<'a>,
    pools: &HashMap<String, i64>,
    parallelism: u32,
    dag_limit: impl Fn(&str) -> u32,
    warned: &mut HashSet<String>,
) -> Vec<&'a TiRow>
where
    I: Iterator<Item = &'a TiRow>,
{
    // Each run offers, best first, the scheduled task instances it could start on its
    // own, so a pass looks at no more of a big run than can start.
    let mut candidates = Vec::new();
    for (run, dag_id, scheduled) in waiting {
        let limit = dag_limit(dag_id);
        let mut mine = taken.clone();
        for ti in scheduled {
            if mine.total >= parallelism || mine.dag(dag_id) >= limit {
                break;
            }
            if mine.admit(ti, limit, pools, warned) {
                candidates.push((ti.priority_weight, run, ti));
            }
        }
    }
    candidates.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut chosen = Vec::new();
    for (_, _, ti) in candidates {
        if taken.total >= parallelism {
            break;
        }
        if taken.admit(ti, dag_limit(&ti.dag_id), pools, warned) {
            chosen.push(ti);
        }
    }
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Clock;
    use crate::error::Error;
    use crate::model::Schedule;
    use crate::scheduler::timetable;

    use crate::scheduler::timetable::tests::t;

    fn dag(schedule: Schedule, start: &str, end: Option<&str>, catchup: bool) -> Dag {
        timetable::tests::dag(schedule, Some(start), end, catchup)
    }

    fn daily() -> Schedule {
        Schedule::Cron {
            expr: "0 0 * * *".to_string(),
            raw: "@daily".to_string(),
        }
    }

    /// A run at one instant, as the trigger timetables (Airflow 3's default) make them.
    fn at(when: &str) -> RunInfo {
        RunInfo {
            logical_date: t(when),
            data_interval_start: t(when),
            data_interval_end: t(when),
            run_after: t(when),
        }
    }

    /// A run of the data-interval timetables: due when its interval ends.
    fn interval(start: &str, end: &str) -> RunInfo {
        RunInfo {
            logical_date: t(start),
            data_interval_start: t(start),
            data_interval_end: t(end),
            run_after: t(end),
        }
    }

    fn create(info: RunInfo) -> RunPlan {
        RunPlan::Create {
            run_id: scheduled_run_id(info.logical_date),
            info,
        }
    }

    use timetable::Intervals::{Data, Trigger};

    /// why, timetable, DAG, the last scheduled run, now, the DAG's active runs (`None`:
    /// must not be counted, as the count costs a query), the plan.
    type RunCase<'a> = (
        &'a str,
        timetable::Intervals,
        &'a Dag,
        Option<RunInfo>,
        &'a str,
        Option<u32>,
        RunPlan,
    );

    #[test]
    fn runs_from_schedules() {
        let start = "2026-01-01T00:00:00Z";
        let catchup = dag(daily(), start, None, true);
        let no_catchup = dag(daily(), start, None, false);
        let ended = dag(daily(), start, Some("2026-01-03T00:00:00Z"), true);
        let mut one_at_a_time = dag(daily(), start, None, true);
        one_at_a_time.max_active_runs = Some(1);
        let once = dag(Schedule::Once, start, None, false);
        #[rustfmt::skip]
        let cases: Vec<RunCase> = vec![
            ("before start_date: wait for it, count nothing",
             Trigger, &catchup, None, "2025-12-31T12:00:00Z", None,
             RunPlan::Later(t(start))),
            ("first fire time reached: its run",
             Trigger, &catchup, None, start, Some(0),
             create(at(start))),
            ("between fire times: wait for the next, count nothing",
             Trigger, &catchup, Some(at("2026-01-02T00:00:00Z")), "2026-01-02T12:00:00Z", None,
             RunPlan::Later(t("2026-01-03T00:00:00Z"))),
            ("catchup after a long pause: the oldest missed fire time",
             Trigger, &catchup, Some(at(start)), "2026-03-01T06:00:00Z", Some(0),
             create(at("2026-01-02T00:00:00Z"))),
            ("catchup off after a long pause: only the latest fire time",
             Trigger, &no_catchup, Some(at(start)), "2026-03-01T06:00:00Z", Some(0),
             create(at("2026-03-01T00:00:00Z"))),
            ("catchup off, never ran, started long ago: the latest fire time",
             Trigger, &no_catchup, None, "2026-03-01T06:00:00Z", Some(0),
             create(at("2026-03-01T00:00:00Z"))),
            ("end_date passed: no more runs",
             Trigger, &ended, Some(at("2026-01-03T00:00:00Z")), "2026-03-01T00:00:00Z", None,
             RunPlan::Done),
            ("a fire time at end_date still runs",
             Trigger, &ended, Some(at("2026-01-02T00:00:00Z")), "2026-03-01T00:00:00Z", Some(0),
             create(at("2026-01-03T00:00:00Z"))),
            ("max_active_runs reached: wait for a run to end",
             Trigger, &one_at_a_time, Some(at(start)), "2026-03-01T00:00:00Z", Some(1),
             RunPlan::Full),
            ("below max_active_runs: create",
             Trigger, &one_at_a_time, Some(at(start)), "2026-03-01T00:00:00Z", Some(0),
             create(at("2026-01-02T00:00:00Z"))),
            ("max_active_runs_per_dag (16 here) when the DAG sets none",
             Trigger, &catchup, Some(at(start)), "2026-03-01T00:00:00Z", Some(16),
             RunPlan::Full),
            ("data intervals: the first is due when it ends",
             Data, &catchup, None, "2026-01-01T12:00:00Z", None,
             RunPlan::Later(t("2026-01-02T00:00:00Z"))),
            ("data intervals: the next interval after the last",
             Data, &catchup, Some(interval(start, "2026-01-02T00:00:00Z")), "2026-01-05T00:00:00Z", Some(0),
             create(interval("2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z"))),
            ("data intervals, catchup off after a pause: the latest whole interval",
             Data, &no_catchup, Some(interval(start, "2026-01-02T00:00:00Z")), "2026-01-05T06:00:00Z", Some(0),
             create(interval("2026-01-04T00:00:00Z", "2026-01-05T00:00:00Z"))),
            ("@once before its start: wait",
             Trigger, &once, None, "2025-12-31T00:00:00Z", None,
             RunPlan::Later(t(start))),
            ("@once after it ran: done",
             Trigger, &once, Some(at(start)), "2026-03-01T00:00:00Z", None,
             RunPlan::Done),
        ];
        for (why, intervals, dag, last, now, active, want) in cases {
            let now = t(now);
            let next = intervals.next_run(dag, last.as_ref(), now);
            let got = scheduled_run(next, now, run_limit(dag, 16), || {
                active.ok_or_else(|| Error::Failed("the active runs were counted".into()))
            })
            .unwrap_or_else(|e| panic!("{why}: {e}"));
            assert_eq!(got, want, "{why}");
        }
    }

    #[test]
    fn scheduled_run_ids_are_airflows() {
        assert_eq!(
            scheduled_run_id(t("2026-01-02T03:04:05.678Z")),
            "scheduled__2026-01-02T03:04:05+00:00"
        );
    }

    #[test]
    fn queued_runs_start_below_max_active_runs_unless_held() {
        #[rustfmt::skip]
        let cases: &[(u32, u32, bool, bool)] = &[
            // running, limit, held, starts
            (0, 1, false, true),
            (1, 1, false, false),
            (3, 2, false, false),
            (0, 16, true, false),
            (0, 0, false, false),
        ];
        for &(running, limit, held, want) in cases {
            assert_eq!(
                may_start_run(running, limit, held),
                want,
                "{running} running of {limit}, held {held}"
            );
        }
    }

    /// A time a row may leave out.
    type When = Option<DateTime<Utc>>;

    /// current state, next_retry_at, EmptyOperator, what its trigger rule says (`None`:
    /// the rule must not be evaluated), the step.
    type StepCase = (Option<TaskState>, When, bool, Option<Decision>, Step);

    #[test]
    fn what_a_task_instance_does_next() {
        use Decision::{Run, Skip, UpstreamFailed as UF, Wait};
        use TaskState::{Queued, Running, Scheduled, Skipped, Success, UpForRetry, UpstreamFailed};
        let now = t("2026-01-01T12:00:00Z");
        let earlier = Some(t("2026-01-01T11:59:59Z"));
        let later = Some(t("2026-01-01T12:00:01Z"));
        #[rustfmt::skip]
        let cases: &[StepCase] = &[
            (None, None, false, Some(Run), Step::To(Scheduled)),
            (None, None, false, Some(Wait), Step::Stay),
            (None, None, false, Some(Skip), Step::To(Skipped)),
            (None, None, false, Some(UF), Step::To(UpstreamFailed)),
            (None, None, true, Some(Run), Step::To(Success)),
            (None, None, true, Some(Skip), Step::To(Skipped)),
            (Some(UpForRetry), later, false, None, Step::RetryAt(t("2026-01-01T12:00:01Z"))),
            (Some(UpForRetry), earlier, false, None, Step::To(Scheduled)),
            (Some(UpForRetry), Some(now), false, None, Step::To(Scheduled)),
            (Some(UpForRetry), None, false, None, Step::To(Scheduled)),
            (Some(UpForRetry), earlier, true, None, Step::To(Success)),
            (Some(TaskState::UpForReschedule), later, false, None, Step::RetryAt(t("2026-01-01T12:00:01Z"))),
            (Some(TaskState::UpForReschedule), earlier, false, None, Step::To(Scheduled)),
            (Some(Scheduled), None, false, None, Step::Stay),
            (Some(Queued), None, false, None, Step::Stay),
            (Some(Running), None, false, None, Step::Stay),
            (Some(Success), None, false, None, Step::Stay),
        ];
        for &(current, retry, empty, rule, want) in cases {
            let got = task_step(current, retry, now, empty, || {
                rule.unwrap_or_else(|| panic!("{current:?}: the trigger rule was evaluated"))
            });
            assert_eq!(got, want, "{current:?}, retry at {retry:?}, empty {empty}");
        }
    }

    #[test]
    fn unexpanded_mapped_instances_expand_when_they_may_run() {
        use Step::*;
        let run = To(TaskState::Scheduled);
        let cases = [
            // (step, map index, mapped length, expected)
            (run, -1, None, run),
            (run, -1, Some(Some(3)), Expand(3)),
            (To(TaskState::Success), -1, Some(Some(2)), Expand(2)),
            (run, -1, Some(Some(0)), To(TaskState::Skipped)),
            (run, -1, Some(None), To(TaskState::UpstreamFailed)),
            (run, 0, Some(Some(3)), run),
            (run, 2, Some(Some(0)), run),
            (
                To(TaskState::UpstreamFailed),
                -1,
                Some(Some(3)),
                To(TaskState::UpstreamFailed),
            ),
            (
                To(TaskState::Skipped),
                -1,
                Some(Some(0)),
                To(TaskState::Skipped),
            ),
            (Stay, -1, Some(Some(3)), Stay),
        ];
        for (step, map_index, mapped, want) in cases {
            assert_eq!(
                mapped_step(step, map_index, mapped),
                want,
                "{step:?} {map_index} {mapped:?}"
            );
        }
    }

    /// `max_active_tis_per_dag` and `_per_dagrun` count a task's instances (a mapped
    /// task's one by one) already queued or running, and those queued in the same pass.
    #[test]
    fn a_tasks_own_limits_hold_back_its_instances() {
        // Two runs with 4 scheduled instances of `m` each, and `other` with no limit.
        let mut run1: Vec<TiRow> = (0..4)
            .map(|i| {
                let mut t = ti("d", "r1", "m", "default_pool", 1, 1);
                t.map_index = i;
                t
            })
            .collect();
        run1.push(ti("d", "r1", "other", "default_pool", 1, 1));
        let run2: Vec<TiRow> = (0..4)
            .map(|_| ti("d", "r2", "m", "default_pool", 1, 1))
            .collect();
        let pools: HashMap<String, i64> = HashMap::from([("default_pool".to_string(), 128)]);
        let queue = |per_dag: Option<u32>, per_run: Option<u32>, running: &[(&str, &str, &str)]| {
            let limits: TaskLimits =
                HashMap::from([(("d".to_string(), "m".to_string()), (per_dag, per_run))]);
            let rows: Vec<(String, String, String)> = running
                .iter()
                .map(|(d, r, t)| (d.to_string(), r.to_string(), t.to_string()))
                .collect();
            let mut warned = HashSet::new();
            let chosen = to_queue(
                [(1, "d", run1.iter()), (2, "d", run2.iter())],
                Slots::in_use(&[]).with_task_limits(&limits, &rows),
                &pools,
                32,
                |_| 16,
                &mut warned,
            );
            let mut got: Vec<String> = chosen
                .iter()
                .map(|t| format!("{}/{}", t.run_id, t.task_id))
                .collect();
            got.sort();
            got.join(" ")
        };
        assert_eq!(queue(Some(3), None, &[]), "r1/m r1/m r1/m r1/other");
        assert_eq!(
            queue(Some(3), None, &[("d", "r2", "m")]),
            "r1/m r1/m r1/other"
        );
        assert_eq!(queue(None, Some(1), &[]), "r1/m r1/other r2/m");
        assert_eq!(
            queue(None, Some(2), &[("d", "r1", "m")]),
            "r1/m r1/other r2/m r2/m"
        );
        assert_eq!(
            queue(Some(2), Some(1), &[("d", "r1", "m")]),
            "r1/other r2/m"
        );
        assert_eq!(
            queue(None, None, &[]),
            "r1/m r1/m r1/m r1/m r1/other r2/m r2/m r2/m r2/m"
        );
    }

    #[test]
    fn a_retry_starts_when_the_clock_reaches_its_time() {
        let clock = Clock::fake(t("2026-01-01T12:00:00Z"));
        let at = Some(t("2026-01-01T12:05:00Z"));
        let step = |c: &Clock| {
            task_step(Some(TaskState::UpForRetry), at, c.now(), false, || {
                Decision::Wait
            })
        };
        assert_eq!(step(&clock), Step::RetryAt(t("2026-01-01T12:05:00Z")));
        clock.advance(chrono::Duration::minutes(5));
        assert_eq!(step(&clock), Step::To(TaskState::Scheduled));
    }

    #[test]
    fn runs_time_out_after_dagrun_timeout() {
        let started = Some(t("2026-01-01T00:00:00Z"));
        #[rustfmt::skip]
        let cases: &[(Option<f64>, When, &str, bool)] = &[
            (Some(60.0), started, "2026-01-01T00:01:00Z", false),
            (Some(60.0), started, "2026-01-01T00:01:00.001Z", true),
            (Some(0.5), started, "2026-01-01T00:00:01Z", true),
            (None, started, "2027-01-01T00:00:00Z", false),
            (Some(60.0), None, "2027-01-01T00:00:00Z", false),
        ];
        for &(timeout, started, now, want) in cases {
            assert_eq!(
                run_timed_out(timeout, started, t(now)),
                want,
                "{timeout:?} at {now}"
            );
        }
    }

    #[test]
    fn how_a_run_ends() {
        // unfinished, moving, a leaf failed (`None`: must not be asked), the end.
        #[rustfmt::skip]
        let cases: &[(usize, usize, Option<bool>, Option<RunState>)] = &[
            (0, 0, Some(false), Some(RunState::Success)),
            (0, 0, Some(true), Some(RunState::Failed)),
            (3, 1, None, None),
            (3, 3, None, None),
            // Deadlocked: waiting on rules that can never be met.
            (2, 0, None, Some(RunState::Failed)),
        ];
        for &(unfinished, moving, leaf_failed, want) in cases {
            let got = run_end(unfinished, moving, || {
                leaf_failed
                    .unwrap_or_else(|| panic!("{unfinished}/{moving}: leaves were looked at"))
            });
            assert_eq!(got, want, "{unfinished} unfinished, {moving} moving");
        }
    }

    /// A scheduled task instance of run `run` of DAG `dag`: `task` in `pool`, taking
    /// `slots` of it, with `priority`.
    fn ti(dag: &str, run: &str, task: &str, pool: &str, slots: u32, priority: i64) -> TiRow {
        TiRow {
            id: format!("{dag}/{run}/{task}"),
            dag_id: dag.to_string(),
            run_id: run.to_string(),
            task_id: task.to_string(),
            map_index: -1,
            try_number: 1,
            max_tries: 0,
            state: Some(TaskState::Scheduled),
            operator: None,
            pool: pool.to_string(),
            pool_slots: slots,
            priority_weight: priority,
            queued_dttm: None,
            scheduled_dttm: None,
            start_date: None,
            end_date: None,
            duration: None,
            hostname: None,
            unixname: None,
            pid: None,
            last_heartbeat_at: None,
            next_retry_at: None,
            rendered_command: None,
            note: None,
            updated_at: t("2026-01-01T00:00:00Z"),
            rendered_map_index: None,
        }
    }

    /// One queueing case: the runs waiting (each a row id and its scheduled task
    /// instances, written `dag/run/task/pool/slots/priority`, best first as the run
    /// keeps them), the slots in use (`dag/pool/slots`), the pools, `parallelism`, the
    /// DAG limits (`dag=n`, 16 otherwise), and the task ids expected, in queue order.
    struct Case {
        why: &'static str,
        runs: &'static [(i64, &'static [&'static str])],
        in_use: &'static [&'static str],
        pools: &'static [(&'static str, i64)],
        parallelism: u32,
        dag_limits: &'static [(&'static str, u32)],
        want: &'static [&'static str],
    }

    fn run_case(c: &Case) -> (Vec<String>, HashSet<String>) {
        let runs: Vec<(i64, Vec<TiRow>)> = c
            .runs
            .iter()
            .map(|(id, tis)| {
                let mut tis: Vec<TiRow> = tis
                    .iter()
                    .map(|s| {
                        let f: Vec<&str> = s.split('/').collect();
                        ti(
                            f[0],
                            f[1],
                            f[2],
                            f[3],
                            f[4].parse().unwrap(),
                            f[5].parse().unwrap(),
                        )
                    })
                    .collect();
                // As `RunTis::scheduled` yields them: priority first, then as held.
                tis.sort_by_key(|t| std::cmp::Reverse(t.priority_weight));
                (*id, tis)
            })
            .collect();
        let in_use: Vec<(String, String, u32)> = c
            .in_use
            .iter()
            .map(|s| {
                let f: Vec<&str> = s.split('/').collect();
                (f[0].to_string(), f[1].to_string(), f[2].parse().unwrap())
            })
            .collect();
        let pools: HashMap<String, i64> =
            c.pools.iter().map(|(p, n)| (p.to_string(), *n)).collect();
        let limits: HashMap<&str, u32> = c.dag_limits.iter().copied().collect();
        let mut warned = HashSet::new();
        let chosen = to_queue(
            runs.iter()
                .map(|(id, tis)| (*id, tis[0].dag_id.as_str(), tis.iter())),
            Slots::in_use(&in_use),
            &pools,
            c.parallelism,
            |d| limits.get(d).copied().unwrap_or(16),
            &mut warned,
        );
        let ids = chosen.iter().map(|t| t.task_id.clone()).collect();
        (ids, warned)
    }

    const DEFAULT_POOL: &[(&str, i64)] = &[("default_pool", 128)];

    #[test]
    fn task_instances_to_queue_under_the_limits() {
        #[rustfmt::skip]
        let cases = [
            Case { why: "all fit: highest priority first",
                runs: &[(1, &["a/r1/low/default_pool/1/1", "a/r1/high/default_pool/1/9"])],
                in_use: &[], pools: DEFAULT_POOL, parallelism: 32, dag_limits: &[],
                want: &["high", "low"] },
            Case { why: "parallelism: only as many as free slots, best first",
                runs: &[(1, &["a/r1/x/default_pool/1/1", "a/r1/y/default_pool/1/3", "a/r1/z/default_pool/1/2"])],
                in_use: &["b/default_pool/1"], pools: DEFAULT_POOL, parallelism: 3, dag_limits: &[],
                want: &["y", "z"] },
            Case { why: "parallelism already taken: nothing",
                runs: &[(1, &["a/r1/x/default_pool/1/1"])],
                in_use: &["b/default_pool/1", "b/default_pool/1"], pools: DEFAULT_POOL, parallelism: 2, dag_limits: &[],
                want: &[] },
            Case { why: "max_active_tasks counts the DAG's running ones, across its runs",
                runs: &[(1, &["a/r1/x/default_pool/1/1"]), (2, &["a/r2/y/default_pool/1/5"]), (3, &["b/r3/z/default_pool/1/0"])],
                in_use: &["a/default_pool/1"], pools: DEFAULT_POOL, parallelism: 32, dag_limits: &[("a", 2)],
                want: &["y", "z"] },
            Case { why: "a pool with 0 free slots holds its tasks; others go on",
                runs: &[(1, &["a/r1/x/full/1/9", "a/r1/y/default_pool/1/1"])],
                in_use: &["b/full/2"], pools: &[("full", 2), ("default_pool", 128)], parallelism: 32, dag_limits: &[],
                want: &["y"] },
            Case { why: "a pool of size 0 runs nothing",
                runs: &[(1, &["a/r1/x/closed/1/1"])],
                in_use: &[], pools: &[("closed", 0)], parallelism: 32, dag_limits: &[],
                want: &[] },
            Case { why: "pool_slots count against the pool, not parallelism",
                runs: &[(1, &["a/r1/big/p/3/9", "a/r1/small/p/1/5", "a/r1/small2/p/1/1"])],
                in_use: &[], pools: &[("p", 4)], parallelism: 32, dag_limits: &[],
                want: &["big", "small"] },
            Case { why: "a task wider than its pool's free slots waits; a narrower one goes",
                runs: &[(1, &["a/r1/wide/p/3/9", "a/r1/narrow/p/1/1"])],
                in_use: &["b/p/1"], pools: &[("p", 3)], parallelism: 32, dag_limits: &[],
                want: &["narrow"] },
            Case { why: "an unlimited pool (-1) takes any number",
                runs: &[(1, &["a/r1/x/free/100/1", "a/r1/y/free/100/1"])],
                in_use: &["b/free/1000"], pools: &[("free", -1)], parallelism: 32, dag_limits: &[],
                want: &["x", "y"] },
            Case { why: "a pool that does not exist holds its tasks",
                runs: &[(1, &["a/r1/x/nowhere/1/9", "a/r1/y/default_pool/1/1"])],
                in_use: &[], pools: DEFAULT_POOL, parallelism: 32, dag_limits: &[],
                want: &["y"] },
            Case { why: "across runs: priority_weight first, then the older run",
                runs: &[(7, &["a/r7/newer_hi/default_pool/1/5", "a/r7/newer_lo/default_pool/1/1"]),
                        (3, &["b/r3/older_hi/default_pool/1/5", "b/r3/older_lo/default_pool/1/1"])],
                in_use: &[], pools: DEFAULT_POOL, parallelism: 3, dag_limits: &[],
                want: &["older_hi", "newer_hi", "older_lo"] },
            Case { why: "equal priority in one run: in the order the run holds them",
                runs: &[(1, &["a/r1/first/default_pool/1/1", "a/r1/second/default_pool/1/1", "a/r1/third/default_pool/1/1"])],
                in_use: &[], pools: DEFAULT_POOL, parallelism: 2, dag_limits: &[],
                want: &["first", "second"] },
            Case { why: "runs of one DAG share its limit: the better task wins it",
                runs: &[(1, &["a/r1/lo/default_pool/1/1"]), (2, &["a/r2/hi/default_pool/1/9"])],
                in_use: &[], pools: DEFAULT_POOL, parallelism: 32, dag_limits: &[("a", 1)],
                want: &["hi"] },
            Case { why: "runs share a pool: the better task wins its last slot",
                runs: &[(1, &["a/r1/lo/p/1/1"]), (2, &["b/r2/hi/p/1/9"])],
                in_use: &["c/p/1"], pools: &[("p", 2)], parallelism: 32, dag_limits: &[],
                want: &["hi"] },
            Case { why: "a DAG limit of 0 runs nothing of it",
                runs: &[(1, &["a/r1/x/default_pool/1/1"]), (2, &["b/r2/y/default_pool/1/1"])],
                in_use: &[], pools: DEFAULT_POOL, parallelism: 32, dag_limits: &[("a", 0)],
                want: &["y"] },
        ];
        for c in &cases {
            let (got, _) = run_case(c);
            assert_eq!(got, c.want, "{}", c.why);
        }
    }

    #[test]
    fn a_missing_pool_is_warned_about_once() {
        let c = Case {
            why: "",
            runs: &[(1, &["a/r1/x/nowhere/1/1", "a/r1/y/nowhere/1/1"])],
            in_use: &[],
            pools: DEFAULT_POOL,
            parallelism: 32,
            dag_limits: &[],
            want: &[],
        };
        let (got, warned) = run_case(&c);
        assert!(got.is_empty());
        assert_eq!(warned, HashSet::from(["nowhere".to_string()]));
    }

    /// why, backfill, DAG limit, DAG paused, (limit, held).
    type StartCase = (&'static str, Option<i64>, u32, bool, (u32, bool));
    /// why, open backfills, backfills of the active runs, finished.
    type FinishCase = (&'static str, Vec<OpenBackfill>, Vec<Option<i64>>, Vec<i64>);

    #[test]
    fn backfill_runs_start_under_their_backfills_limit_and_pause() {
        let open = [
            OpenBackfill {
                id: 1,
                max_active_runs: 2,
                is_paused: false,
            },
            OpenBackfill {
                id: 2,
                max_active_runs: 5,
                is_paused: true,
            },
            OpenBackfill {
                id: 3,
                max_active_runs: -1,
                is_paused: false,
            },
        ];
        let table: &[StartCase] = &[
            (
                "not a backfill run: the DAG's limit",
                None,
                16,
                false,
                (16, false),
            ),
            ("not a backfill run, DAG paused", None, 16, true, (16, true)),
            (
                "the backfill's limit, not the DAG's",
                Some(1),
                16,
                false,
                (2, false),
            ),
            (
                "the backfill's limit even above the DAG's",
                Some(2),
                1,
                false,
                (5, true),
            ),
            (
                "a backfill run of a paused DAG waits too",
                Some(1),
                16,
                true,
                (2, true),
            ),
            (
                "a paused backfill starts nothing",
                Some(2),
                16,
                false,
                (5, true),
            ),
            (
                "a nonsense limit starts nothing",
                Some(3),
                16,
                false,
                (0, false),
            ),
            (
                "a completed (cancelled) or unknown backfill starts nothing",
                Some(9),
                16,
                false,
                (0, true),
            ),
        ];
        for (why, backfill, dag_limit, paused, want) in table {
            assert_eq!(
                start_limit(*backfill, &open, *dag_limit, *paused),
                *want,
                "{why}"
            );
        }
        // And then `may_start_run` decides with the count of the backfill's own runs.
        let (limit, held) = start_limit(Some(1), &open, 16, false);
        assert!(may_start_run(1, limit, held));
        assert!(!may_start_run(2, limit, held));
    }

    #[test]
    fn backfills_finish_when_none_of_their_runs_is_active() {
        let open = |id| OpenBackfill {
            id,
            max_active_runs: 2,
            is_paused: false,
        };
        let table: &[FinishCase] = &[
            ("nothing open", vec![], vec![None, Some(1)], vec![]),
            (
                "a run still active",
                vec![open(1)],
                vec![None, Some(1)],
                vec![],
            ),
            (
                "only other runs active",
                vec![open(1), open(2)],
                vec![None, Some(2)],
                vec![1],
            ),
            (
                "no active run at all (every date skipped)",
                vec![open(3)],
                vec![],
                vec![3],
            ),
        ];
        for (why, o, active, want) in table {
            assert_eq!(
                &finished_backfills(o, active.iter().copied()),
                want,
                "{why}"
            );
        }
    }
}
