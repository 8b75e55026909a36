"""Ask the real Apache Airflow which runs its timetables schedule, for updraft's tests.

The table of cases in `src/scheduler/timetable.rs` (`airflow_table`) is this script's
output: each case is a schedule as a dag-factory file writes it (YAML), the DAG's time
zone, start and end dates, catchup, the current time and how many runs to list. Airflow
builds the timetable as dag-factory 1.1.0 does (its YAML loader, then `cast_with_type` on `__type__`/`__args__`,
or a plain schedule through the SDK's `_create_timetable` with the DAG's zone), round-trips
it through DAG serialization as the scheduler sees it, then asks `next_dagrun_info_v2`
again and again, each answer being the last run of the next question, with `utcnow`
fixed at the case's `now`. The summary and description the Core API shows are printed too.

Usage (from the repository root, with the compatibility venv of `make test-compat`):

    .venv-compat/bin/python tests/compat/timetable_table.py > /tmp/table.rs

and paste the output over the table in `timetable.rs`. Times are UTC, `YYYY-MM-DDTHH:MM`;
a run prints as its logical date alone when its data interval and run_after equal it,
else as `logical [start,end) after run_after`.
"""

import datetime
import os
import sys
from unittest import mock

# Airflow logs to stdout as it imports; the table alone goes there.
TABLE = sys.stdout
sys.stdout = sys.stderr

os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "False")
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")

import pendulum  # noqa: E402
import yaml  # noqa: E402
from dagfactory.utils import cast_with_type  # noqa: E402

from airflow.sdk.definitions.dag import _create_timetable  # noqa: E402
from airflow.serialization.encoders import coerce_to_core_timetable  # noqa: E402
from airflow.timetables.base import DagRunInfo, TimeRestriction  # noqa: E402

# (schedule as YAML, DAG zone, start, end, catchup, now, runs to list)
CASES = [
    # Daily at 02:30 across the spring-forward day: that wall time does not exist.
    ("'30 2 * * *'", "Europe/Amsterdam", "2024-03-29T00:00", None, True, "2024-04-05T00:00", 5),
    ("'30 2 * * *'", "America/New_York", "2024-03-08T00:00", None, True, "2024-04-05T00:00", 5),
    ("'30 2 * * *'", "Australia/Sydney", "2024-10-04T00:00", None, True, "2024-11-05T00:00", 5),
    # ... and across the autumn day, when it happens twice.
    ("'30 2 * * *'", "Europe/Amsterdam", "2024-10-25T00:00", None, True, "2024-11-05T00:00", 5),
    ("'30 1 * * *'", "America/New_York", "2024-11-01T00:00", None, True, "2024-12-05T00:00", 5),
    ("'30 2 * * *'", "Australia/Sydney", "2024-04-05T00:00", None, True, "2024-05-05T00:00", 5),
    # Midnight jobs keep to local midnight.
    ("'@daily'", "Europe/Amsterdam", "2024-03-29T00:00", None, True, "2024-04-05T00:00", 4),
    ("'0 0 * * *'", "Australia/Sydney", "2024-04-05T00:00", None, True, "2024-05-05T00:00", 4),
    # Hourly and half-hourly jobs across both transitions: elapsed time, not wall time.
    ("'0 * * * *'", "Europe/Amsterdam", "2024-03-31T00:00", None, True, "2024-04-05T00:00", 5),
    ("'0 * * * *'", "Europe/Amsterdam", "2024-10-26T23:00", None, True, "2024-11-05T00:00", 5),
    ("'30 * * * *'", "America/New_York", "2024-03-10T05:00", None, True, "2024-04-05T00:00", 4),
    ("'30 * * * *'", "America/New_York", "2024-11-03T04:00", None, True, "2024-12-05T00:00", 5),
    ("'*/30 * * * *'", "Australia/Sydney", "2024-04-06T15:00", None, True, "2024-05-05T00:00", 5),
    ("'0 * * * *'", "Australia/Sydney", "2024-10-05T14:00", None, True, "2024-11-05T00:00", 4),
    # Every two hours does not cover every hour: wall-clock times again.
    ("'0 */2 * * *'", "Europe/Amsterdam", "2024-10-26T20:00", None, True, "2024-11-05T00:00", 5),
    ("'0 */2 * * *'", "Europe/Amsterdam", "2024-03-30T20:00", None, True, "2024-11-05T00:00", 5),
    # Without catchup: the latest fire time before now, in the zone.
    ("'30 2 * * *'", "Europe/Amsterdam", "2024-01-01T00:00", None, False, "2024-03-31T05:00", 2),
    ("'30 2 * * *'", "Europe/Amsterdam", "2024-01-01T00:00", None, False, "2024-10-27T01:45", 2),
    ("'0 * * * *'", "America/New_York", "2024-01-01T00:00", None, False, "2024-11-03T06:10", 3),
    # Data intervals across the transitions.
    ("{__type__: airflow.timetables.interval.CronDataIntervalTimetable, __args__: ['30 2 * * *', Europe/Amsterdam]}",
     "UTC", "2024-03-29T00:00", None, True, "2024-04-05T00:00", 4),
    ("{__type__: airflow.timetables.interval.CronDataIntervalTimetable, cron: '0 * * * *', timezone: America/New_York}",
     "UTC", "2024-11-03T04:00", None, True, "2024-12-05T00:00", 4),
    ("{__type__: airflow.sdk.CronDataIntervalTimetable, expression: '0 0 * * *', timezone: Australia/Sydney}",
     "UTC", "2024-04-04T00:00", None, False, "2024-04-08T03:00", 2),
    # CronTriggerTimetable with its own zone, an interval and positional arguments.
    ("{__type__: airflow.timetables.trigger.CronTriggerTimetable, cron: '0 3 * * *', timezone: Europe/Amsterdam}",
     "UTC", "2024-03-29T00:00", None, True, "2024-04-05T00:00", 3),
    ("{__type__: airflow.timetables.trigger.CronTriggerTimetable, __args__: ['0 3 * * *'], timezone: Asia/Tokyo, interval: {__type__: datetime.timedelta, hours: 4}}",
     "UTC", "2024-03-29T00:00", None, True, "2024-04-05T00:00", 2),
    ("{__type__: airflow.sdk.CronTriggerTimetable, expression: '@hourly', timezone: UTC, interval: {__type__: dateutil.relativedelta.relativedelta, days: 1}}",
     "UTC", "2024-03-29T00:00", None, True, "2024-04-05T00:00", 2),
    # run_immediately decides the first run of a DAG without a start date.
    ("{__type__: airflow.timetables.trigger.CronTriggerTimetable, cron: '0 3 * * *', timezone: UTC, run_immediately: true}",
     "UTC", None, None, False, "2024-08-15T12:05", 1),
    ("{__type__: airflow.timetables.trigger.CronTriggerTimetable, cron: '0 3 * * *', timezone: UTC, run_immediately: false}",
     "UTC", None, None, False, "2024-08-15T12:05", 1),
    ("{__type__: airflow.timetables.trigger.CronTriggerTimetable, cron: '0 3 * * *', timezone: UTC, run_immediately: {__type__: datetime.timedelta, hours: 10}}",
     "UTC", None, None, False, "2024-08-15T12:05", 1),
    ("{__type__: airflow.timetables.trigger.CronTriggerTimetable, cron: '0 3 * * *', timezone: UTC, run_immediately: {__type__: datetime.timedelta, hours: 9}}",
     "UTC", None, None, False, "2024-08-15T12:05", 1),
    ("{__type__: airflow.timetables.trigger.CronTriggerTimetable, cron: '0 3 * * *', timezone: UTC}",
     "UTC", None, None, False, "2024-08-15T03:05", 1),
    # Several crons: one run per instant, in time order.
    ("{__type__: airflow.timetables.trigger.MultipleCronTriggerTimetable, __args__: ['0 3 * * *', '30 12 * * 1-5'], timezone: Europe/Amsterdam}",
     "UTC", "2024-03-29T00:00", None, True, "2024-04-05T00:00", 6),
    ("{__type__: airflow.sdk.MultipleCronTriggerTimetable, __args__: ['0 * * * *', '0 0 * * *'], timezone: UTC}",
     "UTC", "2024-03-29T22:00", None, True, "2024-04-05T00:00", 3),
    ("{__type__: airflow.timetables.trigger.MultipleCronTriggerTimetable, __args__: ['0 3 * * *', '0 6 * * *'], timezone: UTC}",
     "UTC", "2024-01-01T00:00", None, False, "2024-03-30T05:00", 2),
    # Deltas: fixed and calendar ones, as triggers and as data intervals.
    ("{__type__: airflow.timetables.trigger.DeltaTriggerTimetable, __args__: [{__type__: datetime.timedelta, hours: 6}]}",
     "UTC", "2024-03-29T01:00", None, True, "2024-04-05T00:00", 3),
    ("{__type__: airflow.sdk.DeltaTriggerTimetable, delta: {__type__: datetime.timedelta, days: 1}, interval: {__type__: datetime.timedelta, hours: 1}}",
     "UTC", "2024-03-29T01:00", None, True, "2024-04-05T00:00", 2),
    ("{__type__: airflow.timetables.trigger.DeltaTriggerTimetable, delta: {__type__: dateutil.relativedelta.relativedelta, months: 1}}",
     "UTC", "2024-01-31T00:00", None, True, "2024-06-05T00:00", 4),
    ("{__type__: airflow.timetables.interval.DeltaDataIntervalTimetable, __args__: [{__type__: datetime.timedelta, hours: 6}]}",
     "UTC", "2024-03-29T01:00", None, True, "2024-04-05T00:00", 2),
    ("{__type__: airflow.timetables.interval.DeltaDataIntervalTimetable, __args__: [{__type__: datetime.timedelta, hours: 6}]}",
     "UTC", "2024-03-29T01:00", None, False, "2024-04-05T10:00", 2),
    ("{__type__: airflow.sdk.DeltaDataIntervalTimetable, delta: {__type__: dateutil.relativedelta.relativedelta, months: 1, days: 1}}",
     "UTC", "2024-01-31T00:00", None, True, "2024-06-05T00:00", 3),
    ("{__type__: airflow.timetables.interval.DeltaDataIntervalTimetable, delta: {__type__: dateutil.relativedelta.relativedelta, months: 1}}",
     "UTC", "2024-01-31T00:00", None, False, "2024-06-05T00:00", 2),
    # Plain timedelta and relativedelta schedules (DeltaTriggerTimetable).
    ("{__type__: datetime.timedelta, hours: 12}", "Europe/Amsterdam", "2024-03-30T00:00", None, True, "2024-04-05T00:00", 3),
    ("{__type__: dateutil.relativedelta.relativedelta, months: 1}", "UTC", "2024-01-31T10:00", None, True, "2024-06-05T00:00", 4),
    ("{__type__: dateutil.relativedelta.relativedelta, weeks: 1, hours: 2}", "UTC", "2024-01-31T10:00", None, False, "2024-06-05T00:00", 2),
    # Events: listed instants, in order, once each.
    ("{__type__: airflow.timetables.events.EventsTimetable, event_dates: [2024-03-01T10:00:00+00:00, 2024-01-15T08:30:00+01:00, 2024-06-01T00:00:00Z]}",
     "UTC", "2024-01-01T00:00", None, True, "2024-04-05T00:00", 4),
    ("{__type__: airflow.sdk.EventsTimetable, event_dates: [2024-03-01T10:00:00+00:00, 2024-01-15T08:30:00+01:00, 2024-06-01T00:00:00Z], description: Match days}",
     "UTC", "2024-01-01T00:00", None, False, "2024-04-05T00:00", 2),
    ("{__type__: airflow.timetables.events.EventsTimetable, event_dates: [2024-03-01T10:00:00+00:00, 2024-06-01T00:00:00Z], restrict_to_events: true}",
     "UTC", "2024-01-01T00:00", "2024-04-01T00:00", True, "2024-04-05T00:00", 2),
]

# Schedules whose summary and description the API shows.
DESCRIBED = [
    "'@daily'",
    "'0 3 * * *'",
    "{__type__: datetime.timedelta, hours: 12}",
    "{__type__: datetime.timedelta, days: 1, seconds: 30}",
    "{__type__: dateutil.relativedelta.relativedelta, months: 1}",
    "{__type__: dateutil.relativedelta.relativedelta, weeks: 1, hours: 2}",
    "{__type__: dateutil.relativedelta.relativedelta, years: 1, months: -2, days: 3, minutes: 4, seconds: 5, microseconds: 6}",
    "{__type__: airflow.timetables.trigger.CronTriggerTimetable, cron: '@daily', timezone: Europe/Amsterdam}",
    "{__type__: airflow.timetables.trigger.CronTriggerTimetable, cron: '0 3 * * 1-5', timezone: UTC, interval: {__type__: datetime.timedelta, hours: 4}}",
    "{__type__: airflow.timetables.interval.CronDataIntervalTimetable, __args__: ['0 0 * * *', Europe/Amsterdam]}",
    "{__type__: airflow.timetables.interval.DeltaDataIntervalTimetable, __args__: [{__type__: datetime.timedelta, hours: 6}]}",
    "{__type__: airflow.timetables.interval.DeltaDataIntervalTimetable, __args__: [{__type__: dateutil.relativedelta.relativedelta, months: 1}]}",
    "{__type__: airflow.timetables.trigger.DeltaTriggerTimetable, __args__: [{__type__: datetime.timedelta, hours: 6}]}",
    "{__type__: airflow.timetables.trigger.MultipleCronTriggerTimetable, __args__: ['0 3 * * *', '30 12 * * 1-5'], timezone: UTC}",
    "{__type__: airflow.timetables.events.EventsTimetable, event_dates: [2024-03-01T10:00:00+00:00, 2024-01-15T08:30:00+01:00]}",
    "{__type__: airflow.timetables.events.EventsTimetable, event_dates: [2024-03-01T10:00:00+00:00], description: Match days}",
    "{__type__: airflow.timetables.events.EventsTimetable, event_dates: []}",
]


def utc(text):
    return None if text is None else pendulum.parse(text, tz="UTC")


def timetable(schedule_yaml, zone):
    value = cast_with_type(yaml.load(schedule_yaml, Loader=yaml.FullLoader))
    if isinstance(value, (str, datetime.timedelta)) or type(value).__name__ == "relativedelta":
        value = _create_timetable(value, pendulum.timezone(zone))
    try:
        return coerce_to_core_timetable(value)
    except KeyError:
        # Airflow 3.3.2 cannot read back the SDK's EventsTimetable (its encoding lacks
        # `_summary`, which the core class's `deserialize` reads); updraft treats the SDK
        # path as the core class, so ask that.
        core = schedule_yaml.replace("airflow.sdk.EventsTimetable", "airflow.timetables.events.EventsTimetable")
        return coerce_to_core_timetable(cast_with_type(yaml.load(core, Loader=yaml.FullLoader)))


def short(d):
    return pendulum.instance(d).in_timezone("UTC").strftime("%Y-%m-%dT%H:%M")


def show(info):
    di = info.data_interval
    if di.start == di.end == info.run_after:
        return short(info.run_after)
    return f"{short(di.start)} [{short(di.start)},{short(di.end)}) after {short(info.run_after)}"


def runs(schedule_yaml, zone, start, end, catchup, now, count):
    tt = timetable(schedule_yaml, zone)
    now = utc(now)
    restriction = TimeRestriction(earliest=utc(start), latest=utc(end), catchup=catchup)
    out, last = [], None
    with (
        mock.patch("airflow.timetables.trigger.utcnow", return_value=now),
        mock.patch("airflow.timetables.interval.utcnow", return_value=now),
        mock.patch("airflow._shared.timezones.timezone.utcnow", return_value=now),
        mock.patch("airflow.timetables.trigger.time.time", return_value=now.timestamp()),
    ):
        for _ in range(count):
            info = tt.next_dagrun_info_v2(last_dagrun_info=last, restriction=restriction)
            if info is None:
                out.append("none")
                break
            out.append(show(info))
            last = DagRunInfo(run_after=info.run_after, data_interval=info.data_interval)
    return out


def rust_str(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def main():
    def print(*parts):  # noqa: A001
        TABLE.write(" ".join(map(str, parts)) + "\n")

    print("// Produced by tests/compat/timetable_table.py against apache-airflow 3.3.2.")
    print("const AIRFLOW_RUNS: &[Case] = &[")
    for schedule, zone, start, end, catchup, now, count in CASES:
        got = runs(schedule, zone, start, end, catchup, now, count)
        opt = lambda v: "None" if v is None else f"Some({rust_str(v)})"  # noqa: E731
        print(f"    Case {{ schedule: {rust_str(schedule)}, zone: {rust_str(zone)},")
        print(f"        start: {opt(start)}, end: {opt(end)}, catchup: {str(catchup).lower()}, now: {rust_str(now)},")
        print("        runs: &[" + ", ".join(rust_str(r) for r in got) + "] },")
    print("];")
    print()
    print("// (schedule, timetable_summary, timetable_description), from the same Airflow.")
    print("const AIRFLOW_TEXTS: &[(&str, &str, &str)] = &[")
    for schedule in DESCRIBED:
        tt = timetable(schedule, "UTC")
        print(f"    ({rust_str(schedule)}, {rust_str(tt.summary)}, {rust_str(tt.description or '')}),")
    print("];")


if __name__ == "__main__":
    sys.exit(main())
