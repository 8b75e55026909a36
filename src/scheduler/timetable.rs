//! When a DAG runs by itself: Airflow 3's timetables as pure functions.
//!
//! Given a DAG, its last scheduled run and the time, `next_run` says which run comes next,
//! exactly as Airflow 3's `Timetable.next_dagrun_info` would with its default settings.
//! Nothing here reads the clock or the store: `now` is an argument, and whether a run may
//! be created yet (`run_after <= now`) is the caller's decision. Instants are UTC; cron
//! expressions tick in their zone (the DAG's, or the timetable's own `timezone`), across
//! daylight-saving changes as Airflow's `CronMixin` does: wall-clock times for schedules
//! that skip hours (the autumn's repeated 02:30 runs once, at its second occurrence; the
//! spring's missing 02:30 runs at 03:30), elapsed time for schedules that fire every hour.
//! Delta schedules count in UTC, as Airflow's do.

use chrono::{DateTime, NaiveDateTime, TimeDelta, Timelike, Utc};
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

use crate::model::{Dag, Delta, RelativeDelta, RunImmediately, Schedule, Timetable, Zone};

/// One scheduled run, as Airflow's `DagRunInfo` describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunInfo {
    pub logical_date: DateTime<Utc>,
    pub data_interval_start: DateTime<Utc>,
    pub data_interval_end: DateTime<Utc>,
    /// The run may be created once the clock reaches this.
    pub run_after: DateTime<Utc>,
}

impl RunInfo {
    /// A run at one instant (`DagRunInfo.exact`): the trigger timetables and `@once`.
    fn exact(at: DateTime<Utc>) -> RunInfo {
        RunInfo::interval(at, at)
    }

    /// A run over `[start, end)`, due when the interval ends (`DagRunInfo.interval`); the
    /// logical date is the start, as Airflow's `DagRunInfo.logical_date` property says.
    fn interval(start: DateTime<Utc>, end: DateTime<Utc>) -> RunInfo {
        RunInfo {
            logical_date: start,
            data_interval_start: start,
            data_interval_end: end,
            run_after: end,
        }
    }
}

/// Which timetable a cron string or a timedelta schedule becomes: Airflow's
/// `[scheduler] create_cron_data_intervals`.
///
/// Airflow 3 defaults it to False, so plain schedules get the trigger timetables.
/// Airflow also documents `create_delta_data_intervals` for timedeltas, but its
/// `_create_timetable` (task-sdk `definitions/dag.py`) reads only the cron option for both
/// kinds (Airflow issue #69868), so one switch is what Airflow really has. Timetables
/// named by `__type__` are what they say, whatever this is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Intervals {
    /// `CronTriggerTimetable` / `DeltaTriggerTimetable`: each run is a point in time.
    #[default]
    Trigger,
    /// `CronDataIntervalTimetable` / `DeltaDataIntervalTimetable`: back-to-back intervals,
    /// each run due when its interval ends (Airflow 2's behaviour).
    Data,
}

/// The next scheduled run of `dag` after the last scheduled one (`last`, None if never), as
/// Airflow 3 decides it with its default settings. None if there will be none: no schedule,
/// `@once` already ran, or the next fire time is past `end_date`.
///
/// A DAG without a `start_date` is still scheduled, as in Airflow 3: `@once` runs at `now`
/// (Airflow PR #50760), a cron schedule at its latest or next fire time (see `first_run`),
/// a timedelta schedule at `now`.
pub fn next_run(dag: &Dag, last: Option<&RunInfo>, now: DateTime<Utc>) -> Option<RunInfo> {
    Intervals::default().next_run(dag, last, now)
}

/// Data interval for a manual run given an explicit logical date (Airflow's
/// `infer_manual_data_interval`, which the trigger endpoint calls with the logical date).
pub fn manual_interval(dag: &Dag, logical_date: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    Intervals::default().manual_interval(dag, logical_date)
}

/// Airflow's `timetable_description`, which the API and UI show next to the schedule.
///
/// Cron descriptions follow the `cron_descriptor` package Airflow uses, for the common
/// shapes (times, steps, day and month lists and ranges); anything else is described by
/// its own cron text rather than by a guess. Delta timetables have no description in
/// Airflow (they keep the base class's empty one), so they get "".
pub fn description(schedule: &Schedule) -> String {
    let cron = |expr: &str| describe_cron(expr).unwrap_or_else(|| expr.to_string());
    match schedule {
        Schedule::None => "Never, external triggers only".to_string(),
        Schedule::Once => "Once, as soon as possible".to_string(),
        Schedule::Cron { expr, .. } => cron(expr),
        Schedule::Delta { .. } | Schedule::Relative(_) => String::new(),
        Schedule::Assets(_) => "Triggered by assets".to_string(),
        Schedule::AssetOrTime { timetable, .. } => format!(
            "Triggered by assets or {}",
            description(&Schedule::Timetable(timetable.clone()))
        ),
        Schedule::Timetable(t) => match t {
            Timetable::CronTrigger { crons, .. } => {
                crons.iter().map(|c| cron(c)).collect::<Vec<_>>().join(", ")
            }
            Timetable::CronDataInterval { cron: expr, .. } => cron(expr),
            Timetable::DeltaTrigger { .. } | Timetable::DeltaDataInterval { .. } => String::new(),
            Timetable::Events {
                events,
                description,
                ..
            } => match (description, events.first(), events.last()) {
                (Some(d), _, _) => d.clone(),
                (None, Some(first), Some(last)) => format!(
                    "{} events between {} and {}",
                    events.len(),
                    python_isoformat(first),
                    python_isoformat(last)
                ),
                _ => "No events".to_string(),
            },
        },
    }
}

/// Python's `datetime.isoformat()`: microseconds only when there are some, the offset
/// as `+HH:MM`.
fn python_isoformat(t: &DateTime<chrono::FixedOffset>) -> String {
    let format = if t.nanosecond() / 1000 == 0 {
        "%Y-%m-%dT%H:%M:%S%:z"
    } else {
        "%Y-%m-%dT%H:%M:%S%.6f%:z"
    };
    t.format(format).to_string()
}

/// What a schedule asks of the clock, once the setting and the DAG's zone are applied.
enum Plan {
    Once,
    /// `_TriggerTimetable` (one or several crons, or a delta).
    Trigger {
        steps: Vec<Steps>,
        interval: Delta,
        run_immediately: RunImmediately,
    },
    /// `_DataIntervalTimetable`.
    Data(Steps),
    /// `EventsTimetable`, its instants sorted.
    Events {
        events: Vec<DateTime<Utc>>,
        restrict: bool,
    },
}

impl Plan {
    /// None for `schedule: None`, and for a schedule that cannot fire (an expression the
    /// DAG file parser would have refused, a zero delta).
    fn of(intervals: Intervals, dag: &Dag) -> Option<Plan> {
        let trigger = |steps: Steps| Plan::Trigger {
            steps: vec![steps],
            interval: Delta::ZERO,
            run_immediately: RunImmediately::No,
        };
        let plain = |steps: Steps| match intervals {
            Intervals::Trigger => trigger(steps),
            Intervals::Data => Plan::Data(steps),
        };
        let owned;
        let schedule = match &dag.schedule {
            Schedule::AssetOrTime { timetable, .. } => {
                owned = Schedule::Timetable(timetable.clone());
                &owned
            }
            other => other,
        };
        Some(match schedule {
            Schedule::None | Schedule::Assets(_) => return None,
            Schedule::AssetOrTime { .. } => return None,
            Schedule::Once => Plan::Once,
            Schedule::Cron { expr, .. } => plain(Steps::cron(expr, dag.timezone)?),
            Schedule::Delta { secs } => plain(Steps::delta(&Delta::Fixed { secs: *secs })?),
            Schedule::Relative(r) => plain(Steps::delta(&Delta::Relative(*r))?),
            Schedule::Timetable(t) => match t {
                Timetable::CronTrigger {
                    crons,
                    zone,
                    interval,
                    run_immediately,
                } => Plan::Trigger {
                    steps: crons
                        .iter()
                        .map(|c| Steps::cron(c, *zone))
                        .collect::<Option<Vec<_>>>()?,
                    interval: *interval,
                    run_immediately: *run_immediately,
                },
                Timetable::CronDataInterval { cron, zone } => Plan::Data(Steps::cron(cron, *zone)?),
                Timetable::DeltaTrigger { delta, interval } => Plan::Trigger {
                    steps: vec![Steps::delta(delta)?],
                    interval: *interval,
                    run_immediately: RunImmediately::No,
                },
                Timetable::DeltaDataInterval { delta } => Plan::Data(Steps::delta(delta)?),
                Timetable::Events {
                    events,
                    restrict_to_events,
                    ..
                } => {
                    let mut events: Vec<DateTime<Utc>> =
                        events.iter().map(|e| e.to_utc()).collect();
                    events.sort();
                    Plan::Events {
                        events,
                        restrict: *restrict_to_events,
                    }
                }
            },
        })
    }
}

impl Intervals {
    /// `next_run` under this setting.
    pub fn next_run(
        self,
        dag: &Dag,
        last: Option<&RunInfo>,
        now: DateTime<Utc>,
    ) -> Option<RunInfo> {
        // Airflow's `TimeRestriction`: the DAG's start and end dates and catchup. Airflow
        // also folds in task-level start/end dates, which updraft's tasks do not have.
        let bounds = Bounds {
            earliest: dag.start_date,
            latest: dag.end_date,
            catchup: dag.catchup,
        };
        match Plan::of(self, dag)? {
            Plan::Once => once(last, &bounds, now),
            Plan::Trigger {
                steps,
                interval,
                run_immediately,
            } => {
                let runs = steps
                    .iter()
                    .map(|steps| trigger(steps, &interval, run_immediately, last, &bounds, now));
                // `MultipleCronTriggerTimetable`: with catchup the earliest; without, the
                // latest at or before now, else the earliest after it. One cron is the same.
                let now_ts = now.timestamp_micros();
                runs.flatten().min_by_key(|run| {
                    let ts = run.logical_date.timestamp_micros();
                    if bounds.catchup || ts > now_ts {
                        ts
                    } else {
                        ts.saturating_neg()
                    }
                })
            }
            Plan::Data(steps) => data_interval(&steps, last, &bounds, now),
            Plan::Events { events, .. } => events_next(&events, last, &bounds, now),
        }
    }

    /// `manual_interval` under this setting.
    pub fn manual_interval(
        self,
        dag: &Dag,
        logical_date: DateTime<Utc>,
    ) -> (DateTime<Utc>, DateTime<Utc>) {
        let exact = (logical_date, logical_date);
        match Plan::of(self, dag) {
            // `schedule=None` and `@once`: `DataInterval.exact` (`_TrivialTimetable`).
            None | Some(Plan::Once) => exact,
            // `_TriggerTimetable`: `(run_after - interval, run_after)`, and the interval
            // (the timetable's `interval=` argument) is zero for plain schedules.
            Some(Plan::Trigger { interval, .. }) => (
                sub(&interval, logical_date).unwrap_or(logical_date),
                logical_date,
            ),
            // `DeltaDataIntervalTimetable`: the delta that ends at the logical date.
            // `CronDataIntervalTimetable`: the last whole period before the logical date,
            // e.g. 00:00 on the 24th to 00:00 on the 25th for a daily run triggered at
            // 01:00 on the 25th.
            Some(Plan::Data(steps)) => match steps {
                Steps::Cron { .. } => steps
                    .align_prev(logical_date)
                    .and_then(|end| Some((steps.prev(end)?, end)))
                    .unwrap_or(exact),
                _ => steps
                    .prev(logical_date)
                    .map_or(exact, |start| (start, logical_date)),
            },
            // `EventsTimetable`: restricted to events, the latest event at or before the
            // date (the first event if all are later); else the date itself.
            Some(Plan::Events { events, restrict }) => {
                let at = match (restrict, events.first()) {
                    (true, Some(first)) if logical_date < *first => *first,
                    (true, Some(_)) => events
                        .iter()
                        .rev()
                        .find(|e| **e <= logical_date)
                        .copied()
                        .unwrap_or(logical_date),
                    _ => logical_date,
                };
                (at, at)
            }
        }
    }
}

/// Airflow's `TimeRestriction`. Both ends are inclusive.
struct Bounds {
    earliest: Option<DateTime<Utc>>,
    latest: Option<DateTime<Utc>>,
    catchup: bool,
}

impl Bounds {
    fn past_end(&self, t: DateTime<Utc>) -> bool {
        self.latest.is_some_and(|end| t > end)
    }
}

/// `OnceTimetable.next_dagrun_info`: one run at the start date, catchup or not; with no
/// start date, at once.
fn once(last: Option<&RunInfo>, bounds: &Bounds, now: DateTime<Utc>) -> Option<RunInfo> {
    if last.is_some() {
        return None;
    }
    let at = bounds.earliest.unwrap_or(now);
    (!bounds.past_end(at)).then(|| RunInfo::exact(at))
}

/// `_TriggerTimetable.next_dagrun_info` (airflow-core `timetables/trigger.py`), the
/// timetable behind plain cron strings and timedeltas in Airflow 3.
///
/// With catchup, every fire time from the start date on, one after the other. Without it,
/// the latest of: the latest fire time at or before `now`, the fire time after the last
/// run, and the first fire time at or after the start date. So after a gap the scheduler
/// runs the most recent missed fire time once (not the next one in the future), and a
/// start date in the future wins over both. Airflow's own test
/// `test_daily_cron_trigger_no_catchup_first_starts_at_next_schedule` pins this down.
/// A run's data interval is the `interval` before its fire time.
fn trigger(
    steps: &Steps,
    interval: &Delta,
    run_immediately: RunImmediately,
    last: Option<&RunInfo>,
    bounds: &Bounds,
    now: DateTime<Utc>,
) -> Option<RunInfo> {
    let at = if bounds.catchup {
        match (last, bounds.earliest) {
            (Some(last), _) => steps.next(last.data_interval_end)?,
            (None, Some(start)) => steps.align_next(start)?,
            (None, None) => steps.first_run(now, run_immediately)?,
        }
    } else {
        let after_last = match (last, bounds.earliest) {
            (Some(last), _) => steps.next(last.data_interval_end),
            // Without a start date the first run follows `first_run`; with one, the
            // start date's candidate below decides.
            (None, None) => steps.first_run(now, run_immediately),
            (None, Some(_)) => None,
        };
        let from_start = bounds.earliest.and_then(|start| steps.align_next(start));
        [steps.align_prev(now), after_last, from_start]
            .into_iter()
            .flatten()
            .max()?
    };
    // `latest < next_start_time` ends the schedule; a fire time on the end date still runs.
    if bounds.past_end(at) {
        return None;
    }
    Some(RunInfo::interval(sub(interval, at)?, at))
}

/// `_DataIntervalTimetable.next_dagrun_info` (airflow-core `timetables/interval.py`), used
/// when `create_cron_data_intervals` is on.
fn data_interval(
    steps: &Steps,
    last: Option<&RunInfo>,
    bounds: &Bounds,
    now: DateTime<Utc>,
) -> Option<RunInfo> {
    let earliest = if bounds.catchup {
        match bounds.earliest {
            Some(start) => Some(steps.align_next(start)?),
            None => None,
        }
    } else {
        Some(steps.skip_to_latest(bounds.earliest, now)?)
    };
    let start = match last {
        // With catchup and no start date, Airflow never schedules a first run.
        None => earliest?,
        Some(last) => {
            // Aligning matters when the schedule changed since the last run.
            let after_last = steps.align_prev(last.data_interval_end)?;
            let start = earliest.map_or(after_last, |e| e.max(after_last));
            // A coarser schedule can realign onto the last run's start; Airflow steps
            // once past it rather than collide with that run.
            if start <= last.data_interval_start {
                Some(steps.next(start)?).filter(|s| *s > last.data_interval_start)?
            } else {
                start
            }
        }
    };
    // Here the interval's start is compared with the end date, not its end.
    if bounds.past_end(start) {
        return None;
    }
    Some(RunInfo::interval(start, steps.next(start)?))
}

/// `EventsTimetable.next_dagrun_info`: the first listed instant at or after the start
/// date (without catchup, at or after now) and after the last run.
fn events_next(
    events: &[DateTime<Utc>],
    last: Option<&RunInfo>,
    bounds: &Bounds,
    now: DateTime<Utc>,
) -> Option<RunInfo> {
    let mut earliest = bounds.earliest;
    if !bounds.catchup && earliest.is_none_or(|e| now > e) {
        earliest = Some(now);
    }
    let at = *events.iter().find(|e| {
        earliest.is_none_or(|start| **e >= start)
            && last.is_none_or(|last| **e > last.data_interval_end)
    })?;
    (!bounds.past_end(at)).then(|| RunInfo::exact(at))
}

/// `t - delta`, as Python subtracts a timedelta or a relativedelta.
fn sub(delta: &Delta, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
    match delta {
        Delta::Fixed { secs } => t.checked_sub_signed(fixed(*secs)?),
        Delta::Relative(r) => r.negated().add_to(t),
    }
}

fn fixed(secs: f64) -> Option<TimeDelta> {
    let micros = (secs * 1e6).round();
    (micros.abs() < i64::MAX as f64).then(|| TimeDelta::microseconds(micros as i64))
}

/// The fire times of a schedule: Airflow's `CronMixin` and `DeltaMixin`.
enum Steps {
    /// A cron expression in a zone; `every_hour` when its hour field covers all 24 hours,
    /// which is when Airflow steps by elapsed time rather than by wall-clock time.
    Cron {
        cron: Box<Cron>,
        zone: Zone,
        every_hour: bool,
    },
    Fixed(TimeDelta),
    Relative(RelativeDelta),
}

/// Airflow's fallback of `max(gap / 10, 5 minutes)` in `CronTriggerTimetable._calc_first_run`.
const FIRST_RUN_MIN_BUFFER: TimeDelta = TimeDelta::minutes(5);

impl Steps {
    fn cron(expr: &str, zone: Zone) -> Option<Steps> {
        let cron = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .year(Year::Disallowed)
            .build()
            .parse(expr)
            .ok()?;
        let hour = expr.split_whitespace().nth(1)?;
        Some(Steps::Cron {
            cron: Box::new(cron),
            zone,
            every_hour: covers_every_hour(hour),
        })
    }

    /// Zero, negative and absurd deltas would loop or overflow; they never fire.
    fn delta(delta: &Delta) -> Option<Steps> {
        match delta {
            Delta::Fixed { secs } => {
                let d = fixed(*secs)?;
                (d > TimeDelta::zero()).then_some(Steps::Fixed(d))
            }
            Delta::Relative(r) => {
                let probe = DateTime::<Utc>::UNIX_EPOCH;
                (r.add_to(probe)? > probe).then_some(Steps::Relative(*r))
            }
        }
    }

    /// The first fire time strictly after `t` (`_get_next`).
    fn next(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Steps::Cron {
                cron,
                zone,
                every_hour,
            } => {
                let naive = zone.local(t);
                // Fire times fall on whole seconds, so a search from `t`'s second,
                // exclusive, never returns a time at or before `t` even with a fraction.
                let from = whole_second(naive.and_utc());
                let fire = cron.find_next_occurrence(&from, false).ok()?.naive_utc();
                from_wall(*zone, *every_hour, t, naive, fire)
            }
            Steps::Fixed(d) => t.checked_add_signed(*d),
            Steps::Relative(r) => r.add_to(t),
        }
    }

    /// The last fire time strictly before `t` (`_get_prev`).
    fn prev(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Steps::Cron {
                cron,
                zone,
                every_hour,
            } => {
                let naive = zone.local(t);
                let exact = naive.and_utc();
                let second = whole_second(exact);
                let fire = cron
                    .find_previous_occurrence(&second, second != exact)
                    .ok()?
                    .naive_utc();
                from_wall(*zone, *every_hour, t, naive, fire)
            }
            Steps::Fixed(d) => t.checked_sub_signed(*d),
            Steps::Relative(r) => r.negated().add_to(t),
        }
    }

    /// `t` if it is a fire time, else the next one (`_align_to_next`): Airflow asks
    /// whether the fire time before the next one is `t`, which in a zone's gap or
    /// repeated hour is not the same as `t` matching the expression. Every instant is a
    /// fire time of a delta schedule: it counts from wherever it starts.
    fn align_next(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if !matches!(self, Steps::Cron { .. }) {
            return Some(t);
        }
        let next = self.next(t)?;
        Some(if self.prev(next) == Some(t) { t } else { next })
    }

    /// `t` if it is a fire time, else the previous one (`_align_to_prev`).
    fn align_prev(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if !matches!(self, Steps::Cron { .. }) {
            return Some(t);
        }
        let prev = self.prev(t)?;
        Some(if self.next(prev) == Some(t) { t } else { prev })
    }

    /// The first trigger run of a DAG without a start date (`_calc_first_run`).
    ///
    /// A delta schedule starts now. A cron schedule runs its latest fire time if that was
    /// recent enough by `run_immediately`, else waits for the next one. Airflow's default
    /// `run_immediately=False` is not `True` and not a timedelta, so it takes the "a tenth
    /// of the gap between fire times, at least 5 minutes" branch, whatever its docstring
    /// says.
    fn first_run(
        &self,
        now: DateTime<Utc>,
        run_immediately: RunImmediately,
    ) -> Option<DateTime<Utc>> {
        if !matches!(self, Steps::Cron { .. }) {
            return Some(now);
        }
        let next = self.align_next(now)?;
        let Some(past) = self.align_prev(now) else {
            return Some(next);
        };
        let buffer = match run_immediately {
            RunImmediately::Yes => return Some(past),
            RunImmediately::Within { secs } => fixed(secs)?,
            RunImmediately::No => ((next - past) / 10).max(FIRST_RUN_MIN_BUFFER),
        };
        Some(if now - past <= buffer { past } else { next })
    }

    /// Where a data-interval timetable without catchup starts (`_skip_to_latest`): the
    /// latest complete interval before `now`, or the start date if that is later.
    fn skip_to_latest(
        &self,
        earliest: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let new_start = match self {
            Steps::Cron { .. } => {
                // On a boundary, the interval that ends now; between boundaries, the one
                // that ended at the last boundary.
                let last_start = self.prev(now)?;
                if self.next(last_start)? == now {
                    last_start
                } else {
                    self.prev(last_start)?
                }
            }
            // Months and years have no fixed length: Airflow steps from the start date
            // (or now) one period at a time to the last boundary at or before now.
            Steps::Relative(r) if r.months != 0 || r.years != 0 => {
                let mut boundary = earliest.unwrap_or(now);
                // A delta whose days undo its months can step backwards; stop there.
                while let Some(next) = self.next(boundary).filter(|n| *n <= now && *n > boundary) {
                    boundary = next;
                }
                self.prev(boundary)?
            }
            // Airflow rounds `now` down to a multiple of the delta counted from the Unix
            // epoch, not from the start date, then steps back one delta.
            Steps::Fixed(_) | Steps::Relative(_) => {
                let step = match self {
                    Steps::Fixed(d) => d.num_microseconds()?,
                    Steps::Relative(r) => r.approx_secs().checked_mul(1_000_000)?,
                    Steps::Cron { .. } => return None,
                };
                if step <= 0 {
                    return None;
                }
                let since_epoch = now.timestamp_micros();
                let rounded = since_epoch - since_epoch.rem_euclid(step);
                self.prev(DateTime::from_timestamp_micros(rounded)?)?
            }
        };
        Some(match earliest {
            Some(start) => new_start.max(self.align_next(start)?),
            None => new_start,
        })
    }
}

/// A cron fire time found on the wall clock, as an instant (the end of `_get_next` and
/// `_get_prev`): read in the zone, or, for expressions that fire every hour, `t` moved
/// by as much as the wall clock moved, so no hour is skipped or run twice.
fn from_wall(
    zone: Zone,
    every_hour: bool,
    t: DateTime<Utc>,
    naive: NaiveDateTime,
    fire: NaiveDateTime,
) -> Option<DateTime<Utc>> {
    if every_hour {
        t.checked_add_signed(fire - naive)
    } else {
        zone.instant(fire)
    }
}

/// Whether a cron hour field names all 24 hours (croniter then normalizes it to `*`,
/// which Airflow's `_covers_every_hour` checks): `*`, `*/1`, `0-23`, a full list.
fn covers_every_hour(field: &str) -> bool {
    let mut hours = [false; 24];
    for part in field.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((range, step)) => match step.parse::<usize>() {
                Ok(step) if step > 0 => (range, step),
                _ => return false,
            },
            None => (part, 1),
        };
        let (from, to) = match range {
            "*" => (0, 23),
            _ => match range.split_once('-') {
                Some((a, b)) => match (a.parse::<usize>(), b.parse::<usize>()) {
                    (Ok(a), Ok(b)) => (a, b),
                    _ => return false,
                },
                None => match range.parse::<usize>() {
                    // `5/2` runs from 5 to the end.
                    Ok(a) if step > 1 || part.contains('/') => (a, 23),
                    Ok(a) => (a, a),
                    Err(_) => return false,
                },
            },
        };
        for h in (from..=to.min(23)).step_by(step) {
            hours[h] = true;
        }
    }
    hours.iter().all(|h| *h)
}

fn whole_second(t: DateTime<Utc>) -> DateTime<Utc> {
    t.with_nanosecond(0).unwrap_or(t)
}

/// `cron_descriptor`'s sentence for a five-field expression, with Airflow's fix for
/// expressions that restrict both days of the month and days of the week
/// (`CronMixin._describe_with_dom_dow_fix`): cron fires when either matches, so the two
/// halves are joined with "(or)". None for shapes this does not know.
fn describe_cron(expr: &str) -> Option<String> {
    let fields: Vec<&str> = expr.split_whitespace().collect();
    let [minute, hour, dom, month, dow] = fields[..] else {
        return None;
    };
    if dom != "*" && dow != "*" {
        let by_day = describe_fields(minute, hour, dom, month, "*")?;
        let by_weekday = describe_fields(minute, hour, "*", month, dow)?;
        return Some(format!("{by_day} (or) {by_weekday}"));
    }
    describe_fields(minute, hour, dom, month, dow)
}

/// cron_descriptor's order: time, day of month, day of week, month.
fn describe_fields(minute: &str, hour: &str, dom: &str, month: &str, dow: &str) -> Option<String> {
    Some(format!(
        "{}{}{}{}",
        describe_time(minute, hour)?,
        describe_dom(dom)?,
        describe_dow(dow)?,
        describe_month(month)?
    ))
}

fn describe_time(minute: &str, hour: &str) -> Option<String> {
    let every_hour = hour == "*" || hour == "*/1";
    if every_hour && (minute == "*" || minute == "*/1") {
        return Some("Every minute".to_string());
    }
    if every_hour && let Some(n) = step(minute) {
        return Some(format!("Every {n} minutes"));
    }
    let m = number(minute, 59)?;
    if every_hour {
        return Some(if m == 0 {
            "Every hour".to_string()
        } else {
            format!("At {m} minutes past the hour")
        });
    }
    if let Some(n) = step(hour) {
        return Some(if m == 0 {
            format!("Every {n} hours")
        } else {
            format!("At {m} minutes past the hour, every {n} hours")
        });
    }
    let times = hour
        .split(',')
        .map(|h| Some(format!("{:02}:{m:02}", number(h, 23)?)))
        .collect::<Option<Vec<_>>>()?;
    // cron_descriptor lists times without a comma before the last "and".
    Some(format!("At {}", join(&times, false)))
}

fn describe_dom(dom: &str) -> Option<String> {
    match dom {
        "*" => Some(String::new()),
        "L" => Some(", on the last day of the month".to_string()),
        _ => {
            if let Some(n) = step(dom) {
                return Some(format!(", every {n} days"));
            }
            let days = list(dom, |d| number(d, 31).map(|d| d.to_string()))?;
            Some(format!(", on day {} of the month", join(&days, true)))
        }
    }
}

fn describe_dow(dow: &str) -> Option<String> {
    if dow == "*" {
        return Some(String::new());
    }
    if let Some((from, to)) = dow.split_once('-') {
        return Some(format!(", {} through {}", weekday(from)?, weekday(to)?));
    }
    let days = list(dow, |d| weekday(d).map(str::to_string))?;
    Some(format!(", only on {}", join(&days, true)))
}

fn describe_month(month: &str) -> Option<String> {
    if month == "*" {
        return Some(String::new());
    }
    if let Some(n) = step(month) {
        return Some(format!(", every {n} months"));
    }
    if let Some((from, to)) = month.split_once('-') {
        return Some(format!(
            ", {} through {}",
            month_name(from)?,
            month_name(to)?
        ));
    }
    let months = list(month, |m| month_name(m).map(str::to_string))?;
    Some(format!(", only in {}", join(&months, true)))
}

const WEEKDAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// A day of the week by number (0 and 7 are Sunday) or three-letter name.
fn weekday(field: &str) -> Option<&'static str> {
    let i = match number(field, 7) {
        Some(n) => n as usize % 7,
        None => by_abbreviation(&WEEKDAYS, field)?,
    };
    Some(WEEKDAYS[i])
}

/// A month by number (1-12) or three-letter name.
fn month_name(field: &str) -> Option<&'static str> {
    let i = match number(field, 12) {
        Some(0) => return None,
        Some(n) => n as usize - 1,
        None => by_abbreviation(&MONTHS, field)?,
    };
    Some(MONTHS[i])
}

fn by_abbreviation(names: &[&str], field: &str) -> Option<usize> {
    (field.len() == 3)
        .then(|| {
            names
                .iter()
                .position(|n| n[..3].eq_ignore_ascii_case(field))
        })
        .flatten()
}

/// A plain number no larger than `max`.
fn number(field: &str, max: u32) -> Option<u32> {
    if field.is_empty() || !field.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    field.parse().ok().filter(|n| *n <= max)
}

/// N in `*/N`, for N above 1.
fn step(field: &str) -> Option<u32> {
    field
        .strip_prefix("*/")?
        .parse()
        .ok()
        .filter(|n: &u32| *n > 1)
}

fn list(field: &str, item: impl Fn(&str) -> Option<String>) -> Option<Vec<String>> {
    field.split(',').map(item).collect()
}

/// "a", "a and b", "a, b and c" (or "a, b, and c" with the serial comma, which
/// cron_descriptor uses for days and months but not for times).
fn join(items: &[String], serial_comma: bool) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [first, second] => format!("{first} and {second}"),
        [init @ .., last] => {
            let comma = if serial_comma { "," } else { "" };
            format!("{}{comma} and {last}", init.join(", "))
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(in crate::scheduler) fn t(s: &str) -> DateTime<Utc> {
        s.parse()
            .unwrap_or_else(|e| panic!("bad time `{s}` in a test: {e}"))
    }

    fn cron(expr: &str) -> Schedule {
        Schedule::Cron {
            expr: expr.to_string(),
            raw: expr.to_string(),
        }
    }

    fn hours(n: f64) -> Schedule {
        Schedule::Delta { secs: n * 3600.0 }
    }

    /// A DAG with no tasks and only these scheduling fields set (decide.rs's tests too).
    pub(in crate::scheduler) fn dag(
        schedule: Schedule,
        start: Option<&str>,
        end: Option<&str>,
        catchup: bool,
    ) -> Dag {
        Dag {
            dag_id: "d".to_string(),
            fileloc: "d.yml".to_string(),
            line: 1,
            dag_display_name: None,
            description: None,
            doc_md: None,
            schedule,
            timezone: Zone::default(),
            start_date: start.map(t),
            end_date: end.map(t),
            catchup,
            tags: vec![],
            params: serde_json::Value::Null,
            max_active_runs: None,
            max_active_tasks: None,
            dagrun_timeout_secs: None,
            owners: vec![],
            tasks: vec![],
            task_groups: vec![],
            callbacks: vec![],
        }
    }

    /// Asks for the next run at `now` after `last`, then again at the same `now` with each
    /// answer as the last run, until `count` runs are listed or there are no more (`none`).
    /// A run prints as `logical_date [start,end) after run_after`, or as its logical date
    /// alone when all four are equal, as they are for trigger timetables.
    fn check(
        intervals: Intervals,
        dag: &Dag,
        last: Option<(&str, &str)>,
        now: &str,
        count: usize,
        expect: &str,
    ) {
        let mut last = last.map(|(start, end)| RunInfo::interval(t(start), t(end)));
        let mut got = Vec::new();
        for _ in 0..count {
            let Some(run) = intervals.next_run(dag, last.as_ref(), t(now)) else {
                got.push("none".to_string());
                break;
            };
            got.push(show(&run));
            last = Some(run);
        }
        let want: Vec<&str> = expect.split_whitespace().collect();
        let got: Vec<String> = got
            .iter()
            .flat_map(|g| g.split_whitespace().map(str::to_string))
            .collect();
        assert_eq!(got, want, "\nschedule {:?}, now {now}", dag.schedule);
    }

    fn show(run: &RunInfo) -> String {
        let short = |d: DateTime<Utc>| d.format("%Y-%m-%dT%H:%M").to_string();
        if run.data_interval_start == run.logical_date
            && run.data_interval_end == run.logical_date
            && run.run_after == run.logical_date
        {
            short(run.logical_date)
        } else {
            format!(
                "{} [{},{}) after {}",
                short(run.logical_date),
                short(run.data_interval_start),
                short(run.data_interval_end),
                short(run.run_after)
            )
        }
    }

    const TRIGGER: Intervals = Intervals::Trigger;
    const DATA: Intervals = Intervals::Data;

    #[test]
    fn cron_with_catchup_runs_every_fire_time_from_the_start_date() {
        let daily = dag(cron("0 0 * * *"), Some("2024-01-01T00:00:00Z"), None, true);
        check(
            TRIGGER,
            &daily,
            None,
            "2024-01-04T10:00:00Z",
            5,
            "
            2024-01-01T00:00 2024-01-02T00:00 2024-01-03T00:00 2024-01-04T00:00
            2024-01-05T00:00
        ",
        );
        // A start date between fire times: the first fire time after it.
        let daily = dag(cron("0 0 * * *"), Some("2024-01-01T06:00:00Z"), None, true);
        check(
            TRIGGER,
            &daily,
            None,
            "2024-01-04T10:00:00Z",
            2,
            "2024-01-02T00:00 2024-01-03T00:00",
        );
        // After a gap the missed runs all come, oldest first.
        let hourly = dag(cron("0 * * * *"), Some("2024-01-01T00:00:00Z"), None, true);
        check(
            TRIGGER,
            &hourly,
            Some(("2024-01-01T05:00:00Z", "2024-01-01T05:00:00Z")),
            "2024-03-01T00:00:00Z",
            3,
            "2024-01-01T06:00 2024-01-01T07:00 2024-01-01T08:00",
        );
    }

    #[test]
    fn cron_without_catchup_runs_the_latest_missed_fire_time_once() {
        let daily = dag(cron("0 0 * * *"), Some("2024-01-01T00:00:00Z"), None, false);
        // First run, long after the start date: today's midnight, then tomorrow's.
        check(
            TRIGGER,
            &daily,
            None,
            "2024-01-10T10:00:00Z",
            2,
            "2024-01-10T00:00 2024-01-11T00:00",
        );
        // A gap after the last run: the same.
        check(
            TRIGGER,
            &daily,
            Some(("2024-01-03T00:00:00Z", "2024-01-03T00:00:00Z")),
            "2024-01-10T10:00:00Z",
            2,
            "2024-01-10T00:00 2024-01-11T00:00",
        );
        // Up to date: the next fire time, even though it is in the future.
        check(
            TRIGGER,
            &daily,
            Some(("2024-01-10T00:00:00Z", "2024-01-10T00:00:00Z")),
            "2024-01-10T10:00:00Z",
            1,
            "2024-01-11T00:00",
        );
        // Exactly on a fire time, that fire time.
        check(
            TRIGGER,
            &daily,
            None,
            "2024-01-10T00:00:00Z",
            1,
            "2024-01-10T00:00",
        );
        // Airflow's own case: daily at 16:30, start a day before now.
        let afternoon = dag(
            cron("30 16 * * *"),
            Some("2021-09-06T00:00:00Z"),
            None,
            false,
        );
        check(
            TRIGGER,
            &afternoon,
            None,
            "2021-09-07T00:00:00Z",
            1,
            "2021-09-06T16:30",
        );
        let hourly = dag(cron("0 * * * *"), Some("2021-09-04T00:00:00Z"), None, false);
        check(
            TRIGGER,
            &hourly,
            Some(("2021-09-05T00:00:00Z", "2021-09-05T00:00:00Z")),
            "2022-07-27T01:30:00Z",
            1,
            "2022-07-27T01:00",
        );
    }

    #[test]
    fn a_start_date_in_the_future_comes_first() {
        for catchup in [true, false] {
            let hourly = dag(
                cron("0 * * * *"),
                Some("2199-12-31T22:30:00Z"),
                None,
                catchup,
            );
            check(
                TRIGGER,
                &hourly,
                None,
                "2022-07-27T00:30:00Z",
                2,
                "2199-12-31T23:00 2200-01-01T00:00",
            );
            let every_6h = dag(hours(6.0), Some("2199-12-31T22:30:00Z"), None, catchup);
            check(
                TRIGGER,
                &every_6h,
                None,
                "2022-07-27T00:30:00Z",
                2,
                "2199-12-31T22:30 2200-01-01T04:30",
            );
            check(
                DATA,
                &every_6h,
                None,
                "2022-07-27T00:30:00Z",
                1,
                "
                2199-12-31T22:30 [2199-12-31T22:30,2200-01-01T04:30) after 2200-01-01T04:30
            ",
            );
        }
        let once = dag(Schedule::Once, Some("2199-12-31T22:30:00Z"), None, false);
        check(
            TRIGGER,
            &once,
            None,
            "2022-07-27T00:30:00Z",
            2,
            "2199-12-31T22:30 none",
        );
    }

    #[test]
    fn the_end_date_stops_the_schedule() {
        // The end date itself is inclusive.
        let daily = dag(
            cron("0 0 * * *"),
            Some("2024-01-01T00:00:00Z"),
            Some("2024-01-03T00:00:00Z"),
            true,
        );
        check(
            TRIGGER,
            &daily,
            None,
            "2024-02-01T00:00:00Z",
            5,
            "
            2024-01-01T00:00 2024-01-02T00:00 2024-01-03T00:00 none
        ",
        );
        // Without catchup, past the end date there is nothing left.
        let daily = dag(
            cron("0 0 * * *"),
            Some("2024-01-01T00:00:00Z"),
            Some("2024-01-03T12:00:00Z"),
            false,
        );
        check(TRIGGER, &daily, None, "2024-02-01T00:00:00Z", 1, "none");
        // Data intervals compare the interval's start with the end date.
        let every_day = dag(
            hours(24.0),
            Some("2024-01-01T00:00:00Z"),
            Some("2024-01-02T00:00:00Z"),
            true,
        );
        check(
            DATA,
            &every_day,
            None,
            "2024-02-01T00:00:00Z",
            3,
            "
            2024-01-01T00:00 [2024-01-01T00:00,2024-01-02T00:00) after 2024-01-02T00:00
            2024-01-02T00:00 [2024-01-02T00:00,2024-01-03T00:00) after 2024-01-03T00:00
            none
        ",
        );
        let once = dag(
            Schedule::Once,
            Some("2024-01-05T00:00:00Z"),
            Some("2024-01-04T00:00:00Z"),
            false,
        );
        check(TRIGGER, &once, None, "2024-02-01T00:00:00Z", 1, "none");
    }

    #[test]
    fn timedelta_schedules_trigger_by_default() {
        // Airflow 3's DeltaTriggerTimetable: points in time, one delta apart.
        let hourly = dag(hours(1.0), Some("2021-09-04T00:00:00Z"), None, true);
        check(
            TRIGGER,
            &hourly,
            None,
            "2022-07-27T00:30:00Z",
            2,
            "2021-09-04T00:00 2021-09-04T01:00",
        );
        // The delta counts from the last run, not from a grid.
        check(
            TRIGGER,
            &hourly,
            Some(("2022-07-27T00:30:00Z", "2022-07-27T00:30:00Z")),
            "2022-07-27T00:40:00Z",
            1,
            "2022-07-27T01:30",
        );
        // Without catchup, a missed run happens now, and the next one a delta later.
        let hourly = dag(hours(1.0), Some("2021-09-04T00:00:00Z"), None, false);
        check(
            TRIGGER,
            &hourly,
            Some(("2021-09-05T00:00:00Z", "2021-09-05T00:00:00Z")),
            "2022-07-27T01:30:00Z",
            2,
            "2022-07-27T01:30 2022-07-27T02:30",
        );
        check(
            TRIGGER,
            &hourly,
            None,
            "2022-07-27T01:30:00Z",
            1,
            "2022-07-27T01:30",
        );
    }

    #[test]
    fn timedelta_data_intervals() {
        // DeltaDataIntervalTimetable: [start, start + delta), due at its end.
        let every_6h = dag(hours(6.0), Some("2024-01-01T00:00:00Z"), None, true);
        check(
            DATA,
            &every_6h,
            None,
            "2024-01-01T03:00:00Z",
            2,
            "
            2024-01-01T00:00 [2024-01-01T00:00,2024-01-01T06:00) after 2024-01-01T06:00
            2024-01-01T06:00 [2024-01-01T06:00,2024-01-01T12:00) after 2024-01-01T12:00
        ",
        );
        // Without catchup, the latest complete interval on the epoch-aligned grid, even
        // though the start date is off it.
        let every_6h = dag(hours(6.0), Some("2024-01-01T01:00:00Z"), None, false);
        check(
            DATA,
            &every_6h,
            None,
            "2024-01-05T10:00:00Z",
            2,
            "
            2024-01-05T00:00 [2024-01-05T00:00,2024-01-05T06:00) after 2024-01-05T06:00
            2024-01-05T06:00 [2024-01-05T06:00,2024-01-05T12:00) after 2024-01-05T12:00
        ",
        );
        // With catchup and no start date, Airflow never starts.
        let no_start = dag(hours(6.0), None, None, true);
        check(DATA, &no_start, None, "2024-01-05T10:00:00Z", 1, "none");
    }

    #[test]
    fn cron_data_intervals() {
        // CronDataIntervalTimetable, the Airflow 2 behaviour.
        let daily = dag(cron("0 0 * * *"), Some("2024-01-01T00:00:00Z"), None, true);
        check(
            DATA,
            &daily,
            None,
            "2024-01-01T03:00:00Z",
            2,
            "
            2024-01-01T00:00 [2024-01-01T00:00,2024-01-02T00:00) after 2024-01-02T00:00
            2024-01-02T00:00 [2024-01-02T00:00,2024-01-03T00:00) after 2024-01-03T00:00
        ",
        );
        // Without catchup, the interval that ended at the last boundary...
        let daily = dag(cron("0 0 * * *"), Some("2024-01-01T00:00:00Z"), None, false);
        check(
            DATA,
            &daily,
            None,
            "2024-01-10T10:00:00Z",
            1,
            "
            2024-01-09T00:00 [2024-01-09T00:00,2024-01-10T00:00) after 2024-01-10T00:00
        ",
        );
        // ...or, on a boundary, the one that ends now.
        check(
            DATA,
            &daily,
            None,
            "2024-01-10T00:00:00Z",
            1,
            "
            2024-01-09T00:00 [2024-01-09T00:00,2024-01-10T00:00) after 2024-01-10T00:00
        ",
        );
    }

    #[test]
    fn cron_without_a_start_date_runs_a_recent_fire_time_or_waits() {
        // Airflow's `test_run_immediately` with `run_immediately=False`, daily at 03:00:
        // five minutes late is within a tenth of a day, nine hours late is not.
        for catchup in [true, false] {
            let daily = dag(cron("0 3 * * *"), None, None, catchup);
            check(
                TRIGGER,
                &daily,
                None,
                "2024-08-15T03:05:00Z",
                1,
                "2024-08-15T03:00",
            );
            check(
                TRIGGER,
                &daily,
                None,
                "2024-08-15T12:05:00Z",
                1,
                "2024-08-16T03:00",
            );
            // Every 10 minutes: the buffer is the 5-minute floor.
            let fast = dag(cron("*/10 3 * * *"), None, None, catchup);
            check(
                TRIGGER,
                &fast,
                None,
                "2024-08-15T03:05:00Z",
                1,
                "2024-08-15T03:00",
            );
            check(
                TRIGGER,
                &fast,
                None,
                "2024-08-15T03:06:00Z",
                1,
                "2024-08-15T03:10",
            );
        }
    }

    #[test]
    fn once_runs_once() {
        let once = dag(Schedule::Once, Some("2024-01-01T00:00:00Z"), None, false);
        check(
            TRIGGER,
            &once,
            None,
            "2024-06-01T00:00:00Z",
            3,
            "2024-01-01T00:00 none",
        );
        check(
            DATA,
            &once,
            None,
            "2024-06-01T00:00:00Z",
            3,
            "2024-01-01T00:00 none",
        );
        // Catchup changes nothing.
        let once = dag(Schedule::Once, Some("2024-01-01T00:00:00Z"), None, true);
        check(
            TRIGGER,
            &once,
            None,
            "2024-06-01T00:00:00Z",
            3,
            "2024-01-01T00:00 none",
        );
        // No start date: as soon as possible.
        let once = dag(Schedule::Once, None, None, false);
        check(
            TRIGGER,
            &once,
            None,
            "2024-06-01T12:34:00Z",
            3,
            "2024-06-01T12:34 none",
        );
        check(
            TRIGGER,
            &once,
            Some(("2024-01-01T00:00:00Z", "2024-01-01T00:00:00Z")),
            "2024-06-01T12:34:00Z",
            1,
            "none",
        );
    }

    #[test]
    fn no_schedule_never_runs() {
        for (start, catchup) in [(None, false), (Some("2024-01-01T00:00:00Z"), true)] {
            let manual = dag(Schedule::None, start, None, catchup);
            check(TRIGGER, &manual, None, "2024-06-01T00:00:00Z", 1, "none");
            check(DATA, &manual, None, "2024-06-01T00:00:00Z", 1, "none");
        }
        // An impossible date never fires either, rather than looping.
        let never = dag(cron("0 0 30 2 *"), Some("2024-01-01T00:00:00Z"), None, true);
        check(TRIGGER, &never, None, "2024-06-01T00:00:00Z", 1, "none");
    }

    #[test]
    fn fire_times_ignore_fractions_of_a_second() {
        let steps = Steps::cron("0 0 * * *", Zone::default()).unwrap();
        let cases = [
            (
                "2024-01-02T00:00:00Z",
                "2024-01-02T00:00",
                "2024-01-02T00:00",
            ),
            (
                "2024-01-02T00:00:00.5Z",
                "2024-01-02T00:00",
                "2024-01-03T00:00",
            ),
            (
                "2024-01-02T00:00:30Z",
                "2024-01-02T00:00",
                "2024-01-03T00:00",
            ),
            (
                "2024-01-01T23:59:59.9Z",
                "2024-01-01T00:00",
                "2024-01-02T00:00",
            ),
        ];
        for (at, prev, next) in cases {
            let short = |d: Option<DateTime<Utc>>| d.unwrap().format("%Y-%m-%dT%H:%M").to_string();
            assert_eq!(short(steps.align_prev(t(at))), prev, "align_prev({at})");
            assert_eq!(short(steps.align_next(t(at))), next, "align_next({at})");
        }
    }

    #[test]
    fn manual_intervals() {
        let cases = [
            (
                TRIGGER,
                Schedule::None,
                "2024-01-25T01:00:00Z",
                "2024-01-25T01:00:00Z",
            ),
            (
                TRIGGER,
                Schedule::Once,
                "2024-01-25T01:00:00Z",
                "2024-01-25T01:00:00Z",
            ),
            (
                TRIGGER,
                cron("0 0 * * *"),
                "2024-01-25T01:00:00Z",
                "2024-01-25T01:00:00Z",
            ),
            (
                TRIGGER,
                hours(6.0),
                "2024-01-25T01:00:00Z",
                "2024-01-25T01:00:00Z",
            ),
            (
                DATA,
                hours(6.0),
                "2024-01-24T19:00:00Z",
                "2024-01-25T01:00:00Z",
            ),
            (
                DATA,
                cron("0 0 * * *"),
                "2024-01-24T00:00:00Z",
                "2024-01-25T00:00:00Z",
            ),
            (
                DATA,
                Schedule::Once,
                "2024-01-25T01:00:00Z",
                "2024-01-25T01:00:00Z",
            ),
        ];
        for (intervals, schedule, start, end) in cases {
            let d = dag(schedule, None, None, false);
            let got = intervals.manual_interval(&d, t("2024-01-25T01:00:00Z"));
            assert_eq!(got, (t(start), t(end)), "{intervals:?} {:?}", d.schedule);
        }
        let daily = dag(cron("0 0 * * *"), None, None, false);
        let at = t("2024-01-25T01:00:00Z");
        assert_eq!(manual_interval(&daily, at), (at, at));
    }

    #[test]
    fn descriptions() {
        // Expected texts are what cron_descriptor 2.x (which Airflow uses) prints.
        let cases = [
            (Schedule::None, "Never, external triggers only"),
            (Schedule::Once, "Once, as soon as possible"),
            (hours(6.0), ""),
            (cron("0 0 * * *"), "At 00:00"),
            (cron("5 4 * * *"), "At 04:05"),
            (cron("0 * * * *"), "Every hour"),
            (cron("* * * * *"), "Every minute"),
            (cron("*/5 * * * *"), "Every 5 minutes"),
            (cron("*/5 */1 * * *"), "Every 5 minutes"),
            (cron("0 */6 * * *"), "Every 6 hours"),
            (cron("15 * * * *"), "At 15 minutes past the hour"),
            (
                cron("45 */3 * * *"),
                "At 45 minutes past the hour, every 3 hours",
            ),
            (cron("0 9,12,17 * * *"), "At 09:00, 12:00 and 17:00"),
            (cron("0 0 * * 0"), "At 00:00, only on Sunday"),
            (cron("0 0 * * 7"), "At 00:00, only on Sunday"),
            (cron("30 21 * * 5"), "At 21:30, only on Friday"),
            (cron("15 3 * * 1-5"), "At 03:15, Monday through Friday"),
            (cron("0 0 * * MON-FRI"), "At 00:00, Monday through Friday"),
            (
                cron("0 0 * * 1,3,5"),
                "At 00:00, only on Monday, Wednesday, and Friday",
            ),
            (
                cron("0 0 * * SAT,SUN"),
                "At 00:00, only on Saturday and Sunday",
            ),
            (cron("0 0 1 * *"), "At 00:00, on day 1 of the month"),
            (
                cron("0 0 1,15,28 * *"),
                "At 00:00, on day 1, 15, and 28 of the month",
            ),
            (cron("0 0 L * *"), "At 00:00, on the last day of the month"),
            (cron("0 0 */2 * *"), "At 00:00, every 2 days"),
            (
                cron("0 0 1 1 *"),
                "At 00:00, on day 1 of the month, only in January",
            ),
            (
                cron("0 0 1 1,7 *"),
                "At 00:00, on day 1 of the month, only in January and July",
            ),
            (
                cron("0 0 1 */3 *"),
                "At 00:00, on day 1 of the month, every 3 months",
            ),
            (cron("0 0 * JAN-MAR *"), "At 00:00, January through March"),
            (
                cron("0 0 * 1,6 1-5"),
                "At 00:00, Monday through Friday, only in January and June",
            ),
            // Airflow's DOM-or-DOW fix.
            (
                cron("0 0 1 * 1"),
                "At 00:00, on day 1 of the month (or) At 00:00, only on Monday",
            ),
            // Shapes this does not describe fall back to the expression.
            (cron("*/10 3 * * *"), "*/10 3 * * *"),
            (cron("0 1-5 * * *"), "0 1-5 * * *"),
            (cron("0 9 * * 1#2"), "0 9 * * 1#2"),
        ];
        for (schedule, want) in cases {
            assert_eq!(description(&schedule), want, "{schedule:?}");
        }
    }

    /// One question to Airflow: a schedule as a DAG file writes it, the zone of the DAG
    /// (for plain cron strings), the DAG's dates in UTC, catchup, the time, and the runs
    /// Airflow listed, each asked for with the one before as the last run.
    struct Case {
        schedule: &'static str,
        zone: &'static str,
        start: Option<&'static str>,
        end: Option<&'static str>,
        catchup: bool,
        now: &'static str,
        runs: &'static [&'static str],
    }

    /// A DAG with `schedule` as the DAG file parser reads it, in `zone`.
    fn parsed(schedule: &str, zone: &str) -> Dag {
        let zone = Zone::parse(zone).unwrap();
        let yaml = format!("d:\n  schedule: {schedule}\n");
        let parsed = crate::dagfile::parse_in("d.yml", &yaml, t("2024-01-01T00:00:00Z"), zone);
        assert_eq!(parsed.errors, [], "{schedule}");
        parsed.dags.into_iter().next().unwrap()
    }

    fn utc(s: &str) -> DateTime<Utc> {
        t(&format!("{s}:00Z"))
    }

    /// Every timetable, across both daylight-saving changes in three zones, against the
    /// runs the real Airflow 3.3.2 schedules (`AIRFLOW_RUNS`).
    #[test]
    fn airflow_table() {
        for case in AIRFLOW_RUNS {
            let mut dag = parsed(case.schedule, case.zone);
            dag.start_date = case.start.map(utc);
            dag.end_date = case.end.map(utc);
            dag.catchup = case.catchup;
            let mut last = None;
            let mut got = Vec::new();
            for _ in 0..case.runs.len() {
                let Some(run) = next_run(&dag, last.as_ref(), utc(case.now)) else {
                    got.push("none".to_string());
                    break;
                };
                got.push(show(&run));
                last = Some(run);
            }
            assert_eq!(
                got, case.runs,
                "\n{} in {}, start {:?}, catchup {}, now {}",
                case.schedule, case.zone, case.start, case.catchup, case.now
            );
        }
    }

    /// `timetable_summary` and `timetable_description` as Airflow gives them.
    #[test]
    fn airflow_texts() {
        for (schedule, summary, text) in AIRFLOW_TEXTS {
            let dag = parsed(schedule, "UTC");
            assert_eq!(
                dag.schedule.summary().as_deref(),
                Some(*summary),
                "{schedule}"
            );
            assert_eq!(description(&dag.schedule), *text, "{schedule}");
        }
    }

    // Produced by tests/compat/timetable_table.py against apache-airflow 3.3.2.
    const AIRFLOW_RUNS: &[Case] = &[
        Case {
            schedule: "'30 2 * * *'",
            zone: "Europe/Amsterdam",
            start: Some("2024-03-29T00:00"),
            end: None,
            catchup: true,
            now: "2024-04-05T00:00",
            runs: &[
                "2024-03-29T01:30",
                "2024-03-30T01:30",
                "2024-03-31T01:30",
                "2024-04-01T00:30",
                "2024-04-02T00:30",
            ],
        },
        Case {
            schedule: "'30 2 * * *'",
            zone: "America/New_York",
            start: Some("2024-03-08T00:00"),
            end: None,
            catchup: true,
            now: "2024-04-05T00:00",
            runs: &[
                "2024-03-08T07:30",
                "2024-03-09T07:30",
                "2024-03-10T07:30",
                "2024-03-11T06:30",
                "2024-03-12T06:30",
            ],
        },
        Case {
            schedule: "'30 2 * * *'",
            zone: "Australia/Sydney",
            start: Some("2024-10-04T00:00"),
            end: None,
            catchup: true,
            now: "2024-11-05T00:00",
            runs: &[
                "2024-10-04T16:30",
                "2024-10-05T16:30",
                "2024-10-06T15:30",
                "2024-10-07T15:30",
                "2024-10-08T15:30",
            ],
        },
        Case {
            schedule: "'30 2 * * *'",
            zone: "Europe/Amsterdam",
            start: Some("2024-10-25T00:00"),
            end: None,
            catchup: true,
            now: "2024-11-05T00:00",
            runs: &[
                "2024-10-25T00:30",
                "2024-10-26T00:30",
                "2024-10-27T01:30",
                "2024-10-28T01:30",
                "2024-10-29T01:30",
            ],
        },
        Case {
            schedule: "'30 1 * * *'",
            zone: "America/New_York",
            start: Some("2024-11-01T00:00"),
            end: None,
            catchup: true,
            now: "2024-12-05T00:00",
            runs: &[
                "2024-11-01T05:30",
                "2024-11-02T05:30",
                "2024-11-03T06:30",
                "2024-11-04T06:30",
                "2024-11-05T06:30",
            ],
        },
        Case {
            schedule: "'30 2 * * *'",
            zone: "Australia/Sydney",
            start: Some("2024-04-05T00:00"),
            end: None,
            catchup: true,
            now: "2024-05-05T00:00",
            runs: &[
                "2024-04-05T15:30",
                "2024-04-06T16:30",
                "2024-04-07T16:30",
                "2024-04-08T16:30",
                "2024-04-09T16:30",
            ],
        },
        Case {
            schedule: "'@daily'",
            zone: "Europe/Amsterdam",
            start: Some("2024-03-29T00:00"),
            end: None,
            catchup: true,
            now: "2024-04-05T00:00",
            runs: &[
                "2024-03-29T23:00",
                "2024-03-30T23:00",
                "2024-03-31T22:00",
                "2024-04-01T22:00",
            ],
        },
        Case {
            schedule: "'0 0 * * *'",
            zone: "Australia/Sydney",
            start: Some("2024-04-05T00:00"),
            end: None,
            catchup: true,
            now: "2024-05-05T00:00",
            runs: &[
                "2024-04-05T13:00",
                "2024-04-06T13:00",
                "2024-04-07T14:00",
                "2024-04-08T14:00",
            ],
        },
        Case {
            schedule: "'0 * * * *'",
            zone: "Europe/Amsterdam",
            start: Some("2024-03-31T00:00"),
            end: None,
            catchup: true,
            now: "2024-04-05T00:00",
            runs: &[
                "2024-03-31T00:00",
                "2024-03-31T01:00",
                "2024-03-31T02:00",
                "2024-03-31T03:00",
                "2024-03-31T04:00",
            ],
        },
        Case {
            schedule: "'0 * * * *'",
            zone: "Europe/Amsterdam",
            start: Some("2024-10-26T23:00"),
            end: None,
            catchup: true,
            now: "2024-11-05T00:00",
            runs: &[
                "2024-10-26T23:00",
                "2024-10-27T00:00",
                "2024-10-27T01:00",
                "2024-10-27T02:00",
                "2024-10-27T03:00",
            ],
        },
        Case {
            schedule: "'30 * * * *'",
            zone: "America/New_York",
            start: Some("2024-03-10T05:00"),
            end: None,
            catchup: true,
            now: "2024-04-05T00:00",
            runs: &[
                "2024-03-10T05:30",
                "2024-03-10T06:30",
                "2024-03-10T07:30",
                "2024-03-10T08:30",
            ],
        },
        Case {
            schedule: "'30 * * * *'",
            zone: "America/New_York",
            start: Some("2024-11-03T04:00"),
            end: None,
            catchup: true,
            now: "2024-12-05T00:00",
            runs: &[
                "2024-11-03T04:30",
                "2024-11-03T05:30",
                "2024-11-03T06:30",
                "2024-11-03T07:30",
                "2024-11-03T08:30",
            ],
        },
        Case {
            schedule: "'*/30 * * * *'",
            zone: "Australia/Sydney",
            start: Some("2024-04-06T15:00"),
            end: None,
            catchup: true,
            now: "2024-05-05T00:00",
            runs: &[
                "2024-04-06T15:00",
                "2024-04-06T15:30",
                "2024-04-06T16:00",
                "2024-04-06T16:30",
                "2024-04-06T17:00",
            ],
        },
        Case {
            schedule: "'0 * * * *'",
            zone: "Australia/Sydney",
            start: Some("2024-10-05T14:00"),
            end: None,
            catchup: true,
            now: "2024-11-05T00:00",
            runs: &[
                "2024-10-05T14:00",
                "2024-10-05T15:00",
                "2024-10-05T16:00",
                "2024-10-05T17:00",
            ],
        },
        Case {
            schedule: "'0 */2 * * *'",
            zone: "Europe/Amsterdam",
            start: Some("2024-10-26T20:00"),
            end: None,
            catchup: true,
            now: "2024-11-05T00:00",
            runs: &[
                "2024-10-26T20:00",
                "2024-10-26T22:00",
                "2024-10-27T01:00",
                "2024-10-27T03:00",
                "2024-10-27T05:00",
            ],
        },
        Case {
            schedule: "'0 */2 * * *'",
            zone: "Europe/Amsterdam",
            start: Some("2024-03-30T20:00"),
            end: None,
            catchup: true,
            now: "2024-11-05T00:00",
            runs: &[
                "2024-03-30T21:00",
                "2024-03-30T23:00",
                "2024-03-31T01:00",
                "2024-03-31T02:00",
                "2024-03-31T04:00",
            ],
        },
        Case {
            schedule: "'30 2 * * *'",
            zone: "Europe/Amsterdam",
            start: Some("2024-01-01T00:00"),
            end: None,
            catchup: false,
            now: "2024-03-31T05:00",
            runs: &["2024-03-31T01:30", "2024-04-01T00:30"],
        },
        Case {
            schedule: "'30 2 * * *'",
            zone: "Europe/Amsterdam",
            start: Some("2024-01-01T00:00"),
            end: None,
            catchup: false,
            now: "2024-10-27T01:45",
            runs: &["2024-10-27T01:30", "2024-10-28T01:30"],
        },
        Case {
            schedule: "'0 * * * *'",
            zone: "America/New_York",
            start: Some("2024-01-01T00:00"),
            end: None,
            catchup: false,
            now: "2024-11-03T06:10",
            runs: &["2024-11-03T06:00", "2024-11-03T07:00", "2024-11-03T08:00"],
        },
        Case {
            schedule: "{__type__: airflow.timetables.interval.CronDataIntervalTimetable, __args__: ['30 2 * * *', Europe/Amsterdam]}",
            zone: "UTC",
            start: Some("2024-03-29T00:00"),
            end: None,
            catchup: true,
            now: "2024-04-05T00:00",
            runs: &[
                "2024-03-29T01:30 [2024-03-29T01:30,2024-03-30T01:30) after 2024-03-30T01:30",
                "2024-03-30T01:30 [2024-03-30T01:30,2024-03-31T01:30) after 2024-03-31T01:30",
                "2024-03-31T01:30 [2024-03-31T01:30,2024-04-01T00:30) after 2024-04-01T00:30",
                "2024-04-01T00:30 [2024-04-01T00:30,2024-04-02T00:30) after 2024-04-02T00:30",
            ],
        },
        Case {
            schedule: "{__type__: airflow.timetables.interval.CronDataIntervalTimetable, cron: '0 * * * *', timezone: America/New_York}",
            zone: "UTC",
            start: Some("2024-11-03T04:00"),
            end: None,
            catchup: true,
            now: "2024-12-05T00:00",
            runs: &[
                "2024-11-03T04:00 [2024-11-03T04:00,2024-11-03T05:00) after 2024-11-03T05:00",
                "2024-11-03T05:00 [2024-11-03T05:00,2024-11-03T06:00) after 2024-11-03T06:00",
                "2024-11-03T06:00 [2024-11-03T06:00,2024-11-03T07:00) after 2024-11-03T07:00",
                "2024-11-03T07:00 [2024-11-03T07:00,2024-11-03T08:00) after 2024-11-03T08:00",
            ],
        },
        Case {
            schedule: "{__type__: airflow.sdk.CronDataIntervalTimetable, expression: '0 0 * * *', timezone: Australia/Sydney}",
            zone: "UTC",
            start: Some("2024-04-04T00:00"),
            end: None,
            catchup: false,
            now: "2024-04-08T03:00",
            runs: &[
                "2024-04-06T13:00 [2024-04-06T13:00,2024-04-07T14:00) after 2024-04-07T14:00",
                "2024-04-07T14:00 [2024-04-07T14:00,2024-04-08T14:00) after 2024-04-08T14:00",
            ],
        },
        Case {
            schedule: "{__type__: airflow.timetables.trigger.CronTriggerTimetable, cron: '0 3 * * *', timezone: Europe/Amsterdam}",
            zone: "UTC",
            start: Some("2024-03-29T00:00"),
            end: None,
            catchup: true,
            now: "2024-04-05T00:00",
            runs: &["2024-03-29T02:00", "2024-03-30T02:00", "2024-03-31T01:00"],
        },
        Case {
            schedule: "{__type__: airflow.timetables.trigger.CronTriggerTimetable, __args__: ['0 3 * * *'], timezone: Asia/Tokyo, interval: {__type__: datetime.timedelta, hours: 4}}",
            zone: "UTC",
            start: Some("2024-03-29T00:00"),
            end: None,
            catchup: true,
            now: "2024-04-05T00:00",
            runs: &[
                "2024-03-29T14:00 [2024-03-29T14:00,2024-03-29T18:00) after 2024-03-29T18:00",
                "2024-03-30T14:00 [2024-03-30T14:00,2024-03-30T18:00) after 2024-03-30T18:00",
            ],
        },
        Case {
            schedule: "{__type__: airflow.sdk.CronTriggerTimetable, expression: '@hourly', timezone: UTC, interval: {__type__: dateutil.relativedelta.relativedelta, days: 1}}",
            zone: "UTC",
            start: Some("2024-03-29T00:00"),
            end: None,
            catchup: true,
            now: "2024-04-05T00:00",
            runs: &[
                "2024-03-28T00:00 [2024-03-28T00:00,2024-03-29T00:00) after 2024-03-29T00:00",
                "2024-03-28T01:00 [2024-03-28T01:00,2024-03-29T01:00) after 2024-03-29T01:00",
            ],
        },
        Case {
            schedule: "{__type__: airflow.timetables.trigger.CronTriggerTimetable, cron: '0 3 * * *', timezone: UTC, run_immediately: true}",
            zone: "UTC",
            start: None,
            end: None,
            catchup: false,
            now: "2024-08-15T12:05",
            runs: &["2024-08-15T03:00"],
        },
        Case {
            schedule: "{__type__: airflow.timetables.trigger.CronTriggerTimetable, cron: '0 3 * * *', timezone: UTC, run_immediately: false}",
            zone: "UTC",
            start: None,
            end: None,
            catchup: false,
            now: "2024-08-15T12:05",
            runs: &["2024-08-16T03:00"],
        },
        Case {
            schedule: "{__type__: airflow.timetables.trigger.CronTriggerTimetable, cron: '0 3 * * *', timezone: UTC, run_immediately: {__type__: datetime.timedelta, hours: 10}}",
            zone: "UTC",
            start: None,
            end: None,
            catchup: false,
            now: "2024-08-15T12:05",
            runs: &["2024-08-15T03:00"],
        },
        Case {
            schedule: "{__type__: airflow.timetables.trigger.CronTriggerTimetable, cron: '0 3 * * *', timezone: UTC, run_immediately: {__type__: datetime.timedelta, hours: 9}}",
            zone: "UTC",
            start: None,
            end: None,
            catchup: false,
            now: "2024-08-15T12:05",
            runs: &["2024-08-16T03:00"],
        },
        Case {
            schedule: "{__type__: airflow.timetables.trigger.CronTriggerTimetable, cron: '0 3 * * *', timezone: UTC}",
            zone: "UTC",
            start: None,
            end: None,
            catchup: false,
            now: "2024-08-15T03:05",
            runs: &["2024-08-15T03:00"],
        },
        Case {
            schedule: "{__type__: airflow.timetables.trigger.MultipleCronTriggerTimetable, __args__: ['0 3 * * *', '30 12 * * 1-5'], timezone: Europe/Amsterdam}",
            zone: "UTC",
            start: Some("2024-03-29T00:00"),
            end: None,
            catchup: true,
            now: "2024-04-05T00:00",
            runs: &[
                "2024-03-29T02:00",
                "2024-03-29T11:30",
                "2024-03-30T02:00",
                "2024-03-31T01:00",
                "2024-04-01T01:00",
                "2024-04-01T10:30",
            ],
        },
        Case {
            schedule: "{__type__: airflow.sdk.MultipleCronTriggerTimetable, __args__: ['0 * * * *', '0 0 * * *'], timezone: UTC}",
            zone: "UTC",
            start: Some("2024-03-29T22:00"),
            end: None,
            catchup: true,
            now: "2024-04-05T00:00",
            runs: &["2024-03-29T22:00", "2024-03-29T23:00", "2024-03-30T00:00"],
        },
        Case {
            schedule: "{__type__: airflow.timetables.trigger.MultipleCronTriggerTimetable, __args__: ['0 3 * * *', '0 6 * * *'], timezone: UTC}",
            zone: "UTC",
            start: Some("2024-01-01T00:00"),
            end: None,
            catchup: false,
            now: "2024-03-30T05:00",
            runs: &["2024-03-30T03:00", "2024-03-30T06:00"],
        },
        Case {
            schedule: "{__type__: airflow.timetables.trigger.DeltaTriggerTimetable, __args__: [{__type__: datetime.timedelta, hours: 6}]}",
            zone: "UTC",
            start: Some("2024-03-29T01:00"),
            end: None,
            catchup: true,
            now: "2024-04-05T00:00",
            runs: &["2024-03-29T01:00", "2024-03-29T07:00", "2024-03-29T13:00"],
        },
        Case {
            schedule: "{__type__: airflow.sdk.DeltaTriggerTimetable, delta: {__type__: datetime.timedelta, days: 1}, interval: {__type__: datetime.timedelta, hours: 1}}",
            zone: "UTC",
            start: Some("2024-03-29T01:00"),
            end: None,
            catchup: true,
            now: "2024-04-05T00:00",
            runs: &[
                "2024-03-29T00:00 [2024-03-29T00:00,2024-03-29T01:00) after 2024-03-29T01:00",
                "2024-03-30T00:00 [2024-03-30T00:00,2024-03-30T01:00) after 2024-03-30T01:00",
            ],
        },
        Case {
            schedule: "{__type__: airflow.timetables.trigger.DeltaTriggerTimetable, delta: {__type__: dateutil.relativedelta.relativedelta, months: 1}}",
            zone: "UTC",
            start: Some("2024-01-31T00:00"),
            end: None,
            catchup: true,
            now: "2024-06-05T00:00",
            runs: &[
                "2024-01-31T00:00",
                "2024-02-29T00:00",
                "2024-03-29T00:00",
                "2024-04-29T00:00",
            ],
        },
        Case {
            schedule: "{__type__: airflow.timetables.interval.DeltaDataIntervalTimetable, __args__: [{__type__: datetime.timedelta, hours: 6}]}",
            zone: "UTC",
            start: Some("2024-03-29T01:00"),
            end: None,
            catchup: true,
            now: "2024-04-05T00:00",
            runs: &[
                "2024-03-29T01:00 [2024-03-29T01:00,2024-03-29T07:00) after 2024-03-29T07:00",
                "2024-03-29T07:00 [2024-03-29T07:00,2024-03-29T13:00) after 2024-03-29T13:00",
            ],
        },
        Case {
            schedule: "{__type__: airflow.timetables.interval.DeltaDataIntervalTimetable, __args__: [{__type__: datetime.timedelta, hours: 6}]}",
            zone: "UTC",
            start: Some("2024-03-29T01:00"),
            end: None,
            catchup: false,
            now: "2024-04-05T10:00",
            runs: &[
                "2024-04-05T00:00 [2024-04-05T00:00,2024-04-05T06:00) after 2024-04-05T06:00",
                "2024-04-05T06:00 [2024-04-05T06:00,2024-04-05T12:00) after 2024-04-05T12:00",
            ],
        },
        Case {
            schedule: "{__type__: airflow.sdk.DeltaDataIntervalTimetable, delta: {__type__: dateutil.relativedelta.relativedelta, months: 1, days: 1}}",
            zone: "UTC",
            start: Some("2024-01-31T00:00"),
            end: None,
            catchup: true,
            now: "2024-06-05T00:00",
            runs: &[
                "2024-01-31T00:00 [2024-01-31T00:00,2024-03-01T00:00) after 2024-03-01T00:00",
                "2024-03-01T00:00 [2024-03-01T00:00,2024-04-02T00:00) after 2024-04-02T00:00",
                "2024-04-02T00:00 [2024-04-02T00:00,2024-05-03T00:00) after 2024-05-03T00:00",
            ],
        },
        Case {
            schedule: "{__type__: airflow.timetables.interval.DeltaDataIntervalTimetable, delta: {__type__: dateutil.relativedelta.relativedelta, months: 1}}",
            zone: "UTC",
            start: Some("2024-01-31T00:00"),
            end: None,
            catchup: false,
            now: "2024-06-05T00:00",
            runs: &[
                "2024-04-29T00:00 [2024-04-29T00:00,2024-05-29T00:00) after 2024-05-29T00:00",
                "2024-05-29T00:00 [2024-05-29T00:00,2024-06-29T00:00) after 2024-06-29T00:00",
            ],
        },
        Case {
            schedule: "{__type__: datetime.timedelta, hours: 12}",
            zone: "Europe/Amsterdam",
            start: Some("2024-03-30T00:00"),
            end: None,
            catchup: true,
            now: "2024-04-05T00:00",
            runs: &["2024-03-30T00:00", "2024-03-30T12:00", "2024-03-31T00:00"],
        },
        Case {
            schedule: "{__type__: dateutil.relativedelta.relativedelta, months: 1}",
            zone: "UTC",
            start: Some("2024-01-31T10:00"),
            end: None,
            catchup: true,
            now: "2024-06-05T00:00",
            runs: &[
                "2024-01-31T10:00",
                "2024-02-29T10:00",
                "2024-03-29T10:00",
                "2024-04-29T10:00",
            ],
        },
        Case {
            schedule: "{__type__: dateutil.relativedelta.relativedelta, weeks: 1, hours: 2}",
            zone: "UTC",
            start: Some("2024-01-31T10:00"),
            end: None,
            catchup: false,
            now: "2024-06-05T00:00",
            runs: &["2024-06-05T00:00", "2024-06-12T02:00"],
        },
        Case {
            schedule: "{__type__: airflow.timetables.events.EventsTimetable, event_dates: [2024-03-01T10:00:00+00:00, 2024-01-15T08:30:00+01:00, 2024-06-01T00:00:00Z]}",
            zone: "UTC",
            start: Some("2024-01-01T00:00"),
            end: None,
            catchup: true,
            now: "2024-04-05T00:00",
            runs: &[
                "2024-01-15T07:30",
                "2024-03-01T10:00",
                "2024-06-01T00:00",
                "none",
            ],
        },
        Case {
            schedule: "{__type__: airflow.sdk.EventsTimetable, event_dates: [2024-03-01T10:00:00+00:00, 2024-01-15T08:30:00+01:00, 2024-06-01T00:00:00Z], description: Match days}",
            zone: "UTC",
            start: Some("2024-01-01T00:00"),
            end: None,
            catchup: false,
            now: "2024-04-05T00:00",
            runs: &["2024-06-01T00:00", "none"],
        },
        Case {
            schedule: "{__type__: airflow.timetables.events.EventsTimetable, event_dates: [2024-03-01T10:00:00+00:00, 2024-06-01T00:00:00Z], restrict_to_events: true}",
            zone: "UTC",
            start: Some("2024-01-01T00:00"),
            end: Some("2024-04-01T00:00"),
            catchup: true,
            now: "2024-04-05T00:00",
            runs: &["2024-03-01T10:00", "none"],
        },
    ];

    // (schedule, timetable_summary, timetable_description), from the same Airflow.
    const AIRFLOW_TEXTS: &[(&str, &str, &str)] = &[
        ("'@daily'", "0 0 * * *", "At 00:00"),
        ("'0 3 * * *'", "0 3 * * *", "At 03:00"),
        ("{__type__: datetime.timedelta, hours: 12}", "12:00:00", ""),
        (
            "{__type__: datetime.timedelta, days: 1, seconds: 30}",
            "1 day, 0:00:30",
            "",
        ),
        (
            "{__type__: dateutil.relativedelta.relativedelta, months: 1}",
            "relativedelta(months=+1)",
            "",
        ),
        (
            "{__type__: dateutil.relativedelta.relativedelta, weeks: 1, hours: 2}",
            "relativedelta(days=+7, hours=+2)",
            "",
        ),
        (
            "{__type__: dateutil.relativedelta.relativedelta, years: 1, months: -2, days: 3, minutes: 4, seconds: 5, microseconds: 6}",
            "relativedelta(years=+1, months=-2, days=+3, minutes=+4, seconds=+5, microseconds=+6)",
            "",
        ),
        (
            "{__type__: airflow.timetables.trigger.CronTriggerTimetable, cron: '@daily', timezone: Europe/Amsterdam}",
            "0 0 * * *",
            "At 00:00",
        ),
        (
            "{__type__: airflow.timetables.trigger.CronTriggerTimetable, cron: '0 3 * * 1-5', timezone: UTC, interval: {__type__: datetime.timedelta, hours: 4}}",
            "0 3 * * 1-5",
            "At 03:00, Monday through Friday",
        ),
        (
            "{__type__: airflow.timetables.interval.CronDataIntervalTimetable, __args__: ['0 0 * * *', Europe/Amsterdam]}",
            "0 0 * * *",
            "At 00:00",
        ),
        (
            "{__type__: airflow.timetables.interval.DeltaDataIntervalTimetable, __args__: [{__type__: datetime.timedelta, hours: 6}]}",
            "6:00:00",
            "",
        ),
        (
            "{__type__: airflow.timetables.interval.DeltaDataIntervalTimetable, __args__: [{__type__: dateutil.relativedelta.relativedelta, months: 1}]}",
            "relativedelta(months=+1)",
            "",
        ),
        (
            "{__type__: airflow.timetables.trigger.DeltaTriggerTimetable, __args__: [{__type__: datetime.timedelta, hours: 6}]}",
            "6:00:00",
            "",
        ),
        (
            "{__type__: airflow.timetables.trigger.MultipleCronTriggerTimetable, __args__: ['0 3 * * *', '30 12 * * 1-5'], timezone: UTC}",
            "0 3 * * *, 30 12 * * 1-5",
            "At 03:00, At 12:30, Monday through Friday",
        ),
        (
            "{__type__: airflow.timetables.events.EventsTimetable, event_dates: [2024-03-01T10:00:00+00:00, 2024-01-15T08:30:00+01:00]}",
            "2 events",
            "2 events between 2024-01-15T08:30:00+01:00 and 2024-03-01T10:00:00+00:00",
        ),
        (
            "{__type__: airflow.timetables.events.EventsTimetable, event_dates: [2024-03-01T10:00:00+00:00], description: Match days}",
            "Match days",
            "Match days",
        ),
        (
            "{__type__: airflow.timetables.events.EventsTimetable, event_dates: []}",
            "0 events",
            "No events",
        ),
    ];
}
