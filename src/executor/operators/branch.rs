//! LatestOnlyOperator, BranchDayOfWeekOperator and BranchDateTimeOperator: each picks
//! task ids to follow, and the direct downstream tasks not picked are skipped through
//! the Execution API (`skip-downstream`), as BranchPythonOperator's runner does.

use chrono::{DateTime, Datelike, NaiveTime, Utc};
use serde_json::{Map, Value};

use super::{Done, OpEnv};
use crate::model::Zone;

/// A string or a list of strings as a list.
fn ids(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    }
}

/// ISO week day numbers (Monday 1) of `week_day`: names in any case, as Airflow's
/// `WeekDay.validate_week_day`.
pub fn week_days(v: &Value) -> Result<Vec<u32>, String> {
    const NAMES: [&str; 7] = [
        "MONDAY",
        "TUESDAY",
        "WEDNESDAY",
        "THURSDAY",
        "FRIDAY",
        "SATURDAY",
        "SUNDAY",
    ];
    ids(v)
        .iter()
        .map(|d| {
            NAMES
                .iter()
                .position(|n| n.eq_ignore_ascii_case(d))
                .map(|i| i as u32 + 1)
                .ok_or_else(|| format!("Invalid Week Day passed: \"{d}\""))
        })
        .collect()
}

/// A `target_lower`/`target_upper`: a time of day or a date-time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    Time(NaiveTime),
    At(DateTime<Utc>),
}

/// A target as written: a time of day, or a date-time (one without an offset is a
/// wall-clock time in `zone`, as Airflow coerces it to the DAG's zone).
pub fn target(v: &Value, zone: &Zone) -> Result<Option<Target>, String> {
    let Some(s) = v.as_str() else {
        return match v {
            Value::Null => Ok(None),
            other => Err(format!(
                "a target must be a time or a date-time, not {other}"
            )),
        };
    };
    for f in ["%H:%M:%S%.f", "%H:%M:%S", "%H:%M"] {
        if let Ok(t) = NaiveTime::parse_from_str(s.trim(), f) {
            return Ok(Some(Target::Time(t)));
        }
    }
    if let Ok(d) = DateTime::parse_from_rfc3339(s.trim()) {
        return Ok(Some(Target::At(d.with_timezone(&Utc))));
    }
    for f in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(n) = chrono::NaiveDateTime::parse_from_str(s.trim(), f) {
            return Ok(zone.instant(n).map(Target::At));
        }
    }
    Err(format!("{s:?} is neither a time nor a date-time"))
}

/// BranchDateTimeOperator's choice: whether `now` lies within the targets (a time of
/// day is taken on `now`'s UTC date, as a wall-clock time in the DAG's `zone`, as
/// Airflow's `target_times_as_dates` then `coerce_datetime`; an upper time before the
/// lower one is on the next day).
pub fn in_window(
    now: DateTime<Utc>,
    lower: Option<Target>,
    upper: Option<Target>,
    zone: &Zone,
) -> bool {
    let on = |t: NaiveTime| {
        let naive = now.date_naive().and_time(t);
        zone.instant(naive).unwrap_or_else(|| naive.and_utc())
    };
    let (lower, upper) = match (lower, upper) {
        (Some(Target::At(l)), Some(Target::At(u))) => (Some(l), Some(u)),
        (l, u) => {
            let l = l.map(|t| match t {
                Target::Time(t) => on(t),
                Target::At(d) => d,
            });
            let mut u = u.map(|t| match t {
                Target::Time(t) => on(t),
                Target::At(d) => d,
            });
            if let (Some(lv), Some(uv)) = (l, u)
                && uv < lv
            {
                u = Some(uv + chrono::Duration::days(1));
            }
            (l, u)
        }
    };
    !(upper.is_some_and(|u| u < now) || lower.is_some_and(|l| l > now))
}

fn ts(v: &Value) -> Option<DateTime<Utc>> {
    v.as_str().and_then(super::trigger::parse_date)
}

/// LatestOnlyOperator's test on a run, as Airflow's `_get_compare_dates`: a manual run
/// is the latest; else the run is the latest while now is after its interval's start and
/// not after `next_end`, the end of the next scheduled interval (the server asks the
/// DAG's timetable; none means this is the last scheduled run: latest).
pub fn latest(run: &Value, next_end: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
    if run["run_type"] == "manual" {
        return true;
    }
    let start = ts(&run["data_interval_start"])
        .or_else(|| ts(&run["logical_date"]))
        .or_else(|| ts(&run["run_after"]));
    match (start, next_end) {
        (Some(left), Some(right)) => left < now && now <= right,
        _ => true,
    }
}

pub fn operator(kind: crate::model::Builtin, args: &Map<String, Value>, env: &mut OpEnv) -> Done {
    use crate::model::Builtin;
    let null = Value::Null;
    let get = |k: &str| args.get(k).unwrap_or(&null);
    let task = &env.ctx["task"];
    let downstream = ids(&task["downstream"]);
    let run = &env.ctx["dag_run"];
    let zone = task["dag_timezone"]
        .as_str()
        .and_then(Zone::parse)
        .unwrap_or_default();
    let by_logical_date = get("use_task_logical_date").as_bool().unwrap_or(false);
    let now = if by_logical_date {
        ts(&run["logical_date"])
            .or_else(|| ts(&run["run_after"]))
            .unwrap_or(env.now)
    } else {
        env.now
    };
    // BranchDayOfWeek reads now's day in the DAG's zone (the logical date's in UTC).
    let weekday = if by_logical_date {
        now.weekday()
    } else {
        zone.local(now).weekday()
    };
    let follow: Vec<String> = match kind {
        Builtin::LatestOnly => {
            if latest(run, ts(&task["latest_only_next_end"]), env.now) {
                (env.log)("Latest, allowing execution to proceed.");
                downstream.clone()
            } else {
                (env.log)("Not latest execution, skipping downstream.");
                Vec::new()
            }
        }
        Builtin::BranchDayOfWeek => match week_days(get("week_day")) {
            Ok(days) if days.contains(&weekday.number_from_monday()) => {
                ids(get("follow_task_ids_if_true"))
            }
            Ok(_) => ids(get("follow_task_ids_if_false")),
            Err(e) => return Done::Failed(e),
        },
        Builtin::BranchDateTime => {
            let (lower, upper) = match (
                target(get("target_lower"), &zone),
                target(get("target_upper"), &zone),
            ) {
                (Ok(l), Ok(u)) => (l, u),
                (Err(e), _) | (_, Err(e)) => return Done::Failed(e),
            };
            if lower.is_none() && upper.is_none() {
                return Done::Failed(
                    "Both target_upper and target_lower are None. At least one must be defined to be compared to the current datetime".into(),
                );
            }
            if in_window(now, lower, upper, &zone) {
                ids(get("follow_task_ids_if_true"))
            } else {
                ids(get("follow_task_ids_if_false"))
            }
        }
        _ => return Done::Failed(format!("{} is not a branch", kind.class_name())),
    };
    // A task group's id stands for its roots.
    let groups = &task["group_roots"];
    let mut followed: Vec<String> = follow.clone();
    for f in &follow {
        followed.extend(ids(&groups[f.as_str()]));
    }
    let all = ids(&task["all_downstream"]);
    if let Some(bad) = follow
        .iter()
        .find(|t| !all.contains(t) && groups.get(t.as_str()).is_none())
    {
        return Done::Failed(format!(
            "'branch_task_ids' must contain only valid task_ids. Invalid tasks found: {{'{bad}'}}"
        ));
    }
    let skip: Vec<String> = downstream
        .into_iter()
        .filter(|t| !followed.contains(t))
        .collect();
    (env.log)(&format!("Following branch {follow:?}; skipping {skip:?}"));
    if !skip.is_empty()
        && let Err(e) = env.client.skip_downstream(env.ti_id, &skip)
    {
        return Done::Failed(format!("could not skip {skip:?}: {e}"));
    }
    let value = match (kind, follow.as_slice()) {
        (Builtin::LatestOnly, _) => Value::from(follow.clone()),
        (_, [one])
            if get("follow_task_ids_if_true").is_string()
                || get("follow_task_ids_if_false").is_string() =>
        {
            Value::String(one.clone())
        }
        _ => Value::from(follow.clone()),
    };
    Done::Success(Some(value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn windows_and_week_days_as_airflow() {
        let utc = Zone::default();
        let t = |s| target(&json!(s), &utc).unwrap();
        let now = at("2024-01-03T12:00:00Z"); // a Wednesday
        assert!(in_window(now, t("11:00"), t("13:00"), &utc));
        assert!(!in_window(now, t("13:00"), t("14:00"), &utc));
        // 22:00 to 02:00 crosses midnight: noon is outside.
        assert!(!in_window(now, t("22:00"), t("02:00"), &utc));
        assert!(in_window(now, None, t("2024-01-04T00:00:00+00:00"), &utc));
        // In Amsterdam (UTC+1 in January) 12:30-13:30 is 11:30-12:30 UTC: noon is in it;
        // 13:30-14:30 there is not.
        let ams = Zone::parse("Europe/Amsterdam").unwrap();
        let a = |s| target(&json!(s), &ams).unwrap();
        assert!(in_window(now, a("12:30"), a("13:30"), &ams));
        assert!(!in_window(now, a("13:30"), a("14:30"), &ams));
        // A date-time without an offset is wall-clock time in the zone too.
        assert_eq!(
            a("2024-01-03 13:00"),
            Some(Target::At(at("2024-01-03T12:00:00Z")))
        );
        assert_eq!(
            week_days(&json!(["monday", "Wednesday"])).unwrap(),
            vec![1, 3]
        );
        assert!(week_days(&json!("Funday")).is_err());
    }

    #[test]
    fn latest_only_windows() {
        let run = |t, s| json!({"run_type": t, "data_interval_start": s, "data_interval_end": s});
        let now = at("2024-01-03T12:00:00Z");
        let next = Some(at("2024-01-04T00:00:00Z"));
        // A cron trigger run at midnight is the latest until the next fire time.
        assert!(latest(
            &run("scheduled", "2024-01-03T00:00:00+00:00"),
            next,
            now
        ));
        assert!(!latest(
            &run("scheduled", "2024-01-02T00:00:00+00:00"),
            Some(at("2024-01-03T00:00:00Z")),
            now
        ));
        assert!(latest(
            &run("manual", "2020-01-01T00:00:00+00:00"),
            next,
            now
        ));
        assert!(latest(
            &run("scheduled", "2020-01-01T00:00:00+00:00"),
            None,
            now
        ));
    }
}
