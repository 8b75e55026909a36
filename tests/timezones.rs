//! Named time zones and timetables end to end: DAGs whose start dates and cron schedules
//! are in a zone (their own, a timetable's, `[core] default_timezone`), run by a real
//! `standalone`, their runs' logical dates and their schedules' words read back through
//! the Core API.

use std::time::Duration;

use chrono::{DateTime, Days, NaiveTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use serde_json::Value;

use crate::engine::{Engine, task};
use crate::util::{Method, TempHome, USERS, wait_until};

/// Waits for runs; generous, as CI machines are slow and shared.
const LONG: Duration = Duration::from_secs(90);

fn instant(v: &Value) -> DateTime<Utc> {
    v.as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .unwrap_or_else(|| panic!("not a time: {v}"))
        .to_utc()
}

/// 12:30 on `day` in `zone`: noon never falls in a daylight-saving change, so the
/// expectation needs no rule of its own.
fn half_past_noon(zone: Tz, day: chrono::NaiveDate) -> DateTime<Utc> {
    let noon = day.and_time(NaiveTime::from_hms_opt(12, 30, 0).unwrap());
    zone.from_local_datetime(&noon).single().unwrap().to_utc()
}

#[test]
fn a_dag_in_a_named_zone_runs_at_its_local_times() {
    let amsterdam: Tz = "Europe/Amsterdam".parse().unwrap();
    let today = Utc::now().with_timezone(&amsterdam).date_naive();
    let start = today - Days::new(4);
    let zoned = format!(
        "zoned:\n  schedule: \"30 12 * * *\"\n  timezone: Europe/Amsterdam\n  start_date: {start}\n  catchup: true\n  tasks:\n{}",
        task("t", "echo {{ ts }}", "")
    );
    // No start date: `[core] default_timezone` is the DAG's zone.
    let default = format!(
        "by_default:\n  schedule: \"30 12 * * *\"\n  tasks:\n{}",
        task("t", "echo hi", "")
    );
    let timetable = format!(
        "by_timetable:\n  schedule:\n    __type__: airflow.timetables.trigger.CronTriggerTimetable\n    cron: \"30 12 * * *\"\n    timezone: Asia/Tokyo\n  tasks:\n{}",
        task("t", "echo hi", "")
    );
    let e = Engine::start(
        &[
            ("zoned.yml", &zoned),
            ("default.yml", &default),
            ("timetable.yml", &timetable),
        ],
        &[
            USERS,
            ("UPDRAFT__CORE__DEFAULT_TIMEZONE", "America/New_York"),
        ],
    );
    let token = e.srv.login("viewer");
    let get = |path: &str| {
        let (status, body) = e.srv.call(&token, Method::Get, path, None);
        assert_eq!(status, 200, "{path}: {body}\n{}", e.srv.log());
        body
    };

    // Every 12:30 in Amsterdam from the start date on that has passed, one run each.
    let now = Utc::now();
    let want: Vec<DateTime<Utc>> = (0..=4)
        .map(|d| half_past_noon(amsterdam, start + Days::new(d)))
        .filter(|t| *t <= now)
        .collect();
    let mut got = Vec::new();
    let done = wait_until(LONG, || {
        let runs = get("/api/v2/dags/zoned/dagRuns?order_by=logical_date");
        got = runs["dag_runs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| instant(&r["logical_date"]))
            .collect();
        got.len() >= want.len()
    });
    assert!(done, "{got:?}\n{}", e.srv.log());
    assert_eq!(got[..want.len()], want[..]);

    let details = get("/api/v2/dags/zoned/details");
    assert_eq!(details["timezone"], "Europe/Amsterdam");
    assert_eq!(details["timetable_summary"], "30 12 * * *");
    assert_eq!(details["timetable_description"], "At 12:30");
    assert_eq!(
        instant(&details["start_date"]),
        amsterdam
            .from_local_datetime(&start.and_time(NaiveTime::MIN))
            .single()
            .unwrap()
            .to_utc()
    );

    // The next runs of the other two come at 12:30 in their zones.
    for (dag_id, zone, shown) in [
        ("by_default", "America/New_York", "America/New_York"),
        ("by_timetable", "Asia/Tokyo", "America/New_York"),
    ] {
        let zone: Tz = zone.parse().unwrap();
        let dag = get(&format!("/api/v2/dags/{dag_id}/details"));
        assert_eq!(dag["timezone"], shown, "{dag}");
        assert_eq!(dag["timetable_description"], "At 12:30", "{dag}");
        let next = instant(&dag["next_dagrun_run_after"]).with_timezone(&zone);
        assert_eq!((next.hour(), next.minute()), (12, 30), "{dag_id}: {dag}");
    }
}

#[test]
fn a_bad_default_timezone_names_its_key() {
    let home = TempHome::new();
    let run = home.run(
        &["config", "list"],
        &[("UPDRAFT__CORE__DEFAULT_TIMEZONE", "Europe/Amsterdm")],
    );
    assert_ne!(run.code(), 0);
    let err = run.stderr();
    assert!(
        err.contains("default_timezone") && err.contains("Europe/Amsterdm"),
        "{err}"
    );
    home.run(
        &["config", "get-value", "core", "default_timezone"],
        &[("UPDRAFT__CORE__DEFAULT_TIMEZONE", "Europe/Amsterdam")],
    )
    .expect(0);
}
