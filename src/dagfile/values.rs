//! Schedules, dates, time zones and durations, as dag-factory files write them.
//!
//! Each reader takes one `Node` and returns a value or an import error at that node (or at
//! the part of it that is wrong). Cron expressions are checked here, at parse time, so a bad
//! one is an import error with a line rather than a scheduler failure later.

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta, Utc};
use croner::parser::{CronParser, Seconds, Year};

use super::ImportError;
use super::yaml::{Node, Value};
use crate::model::Schedule;

/// Airflow's presets (`airflow.utils.dates.cron_presets`, plus croniter's aliases).
const PRESETS: &[(&str, &str)] = &[
    ("@hourly", "0 * * * *"),
    ("@daily", "0 0 * * *"),
    ("@midnight", "0 0 * * *"),
    ("@weekly", "0 0 * * 0"),
    ("@monthly", "0 0 1 * *"),
    ("@quarterly", "0 0 1 */3 *"),
    ("@yearly", "0 0 1 1 *"),
    ("@annually", "0 0 1 1 *"),
];

/// `datetime.timedelta`'s arguments, in its positional order, with their length in seconds.
const TIMEDELTA_UNITS: &[(&str, f64)] = &[
    ("days", 86_400.0),
    ("seconds", 1.0),
    ("microseconds", 1e-6),
    ("milliseconds", 1e-3),
    ("minutes", 60.0),
    ("hours", 3_600.0),
    ("weeks", 604_800.0),
];

const TIMEDELTA_TYPE: &str = "datetime.timedelta";

/// `schedule` (or the old `schedule_interval`).
pub(crate) fn schedule(n: &Node) -> Result<Schedule, ImportError> {
    match &n.value {
        Value::Null => Ok(Schedule::None),
        Value::Str(raw) => {
            let text = raw.trim();
            if text.eq_ignore_ascii_case("none") {
                return Ok(Schedule::None);
            }
            if text == "@once" {
                return Ok(Schedule::Once);
            }
            if text == "@continuous" {
                return Err(n.pos.error(
                    "`@continuous` schedules are not supported; use a cron expression or a preset",
                ));
            }
            let expr = match PRESETS.iter().find(|(name, _)| *name == text) {
                Some((_, expr)) => expr.to_string(),
                None if text.starts_with('@') => {
                    let names: Vec<_> = PRESETS.iter().map(|(name, _)| *name).collect();
                    return Err(n.pos.error(format!(
                        "unknown schedule preset `{text}`; use @once, {} or a cron expression",
                        names.join(", ")
                    )));
                }
                None => text.split_whitespace().collect::<Vec<_>>().join(" "),
            };
            check_cron(&expr).map_err(|why| {
                n.pos
                    .error(format!("invalid cron expression `{text}`: {why}"))
            })?;
            Ok(Schedule::Cron {
                expr,
                raw: text.to_string(),
            })
        }
        Value::Map(_) if type_name(n) == Some(TIMEDELTA_TYPE) => {
            let secs = timedelta(n, "schedule")?;
            if secs <= 0.0 {
                return Err(n.pos.error("a timedelta schedule must be longer than zero"));
            }
            Ok(Schedule::Delta { secs })
        }
        Value::Map(_) => Err(n.pos.error(match type_name(n) {
            Some(other) => format!(
                "schedules of type `{other}` are not supported; use a cron expression, a preset or `__type__: {TIMEDELTA_TYPE}`"
            ),
            None => "asset and dataset schedules are not supported; use a cron expression, a preset or a timedelta".to_string(),
        })),
        Value::List(_) => Err(n.pos.error(
            "asset and dataset schedules are not supported; use a cron expression, a preset or a timedelta",
        )),
        _ => Err(n.pos.error(format!(
            "`schedule` must be a cron expression, a preset such as `@daily`, null or a timedelta, not {}",
            n.describe()
        ))),
    }
}

/// Five fields, as Airflow's croniter takes them; croner checks the ranges.
fn check_cron(expr: &str) -> Result<(), String> {
    let fields = expr.split_whitespace().count();
    if fields != 5 {
        return Err(format!(
            "it has {fields} fields, and a cron expression has 5 (minute hour day-of-month month day-of-week)"
        ));
    }
    CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .build()
        .parse(expr)
        .map(drop)
        .map_err(|e| e.to_string())
}

fn type_name(n: &Node) -> Option<&str> {
    match &n.field("__type__")?.value {
        Value::Str(s) => Some(s),
        _ => None,
    }
}

/// A duration in seconds: a number, or `__type__: datetime.timedelta` with its keyword
/// arguments (or `__args__`, positional), as dag-factory's `cast_with_type` builds it.
pub(crate) fn timedelta(n: &Node, key: &str) -> Result<f64, ImportError> {
    let expected = || {
        n.pos.error(format!(
            "`{key}` must be a number of seconds or a mapping with `__type__: {TIMEDELTA_TYPE}`, not {}",
            n.describe()
        ))
    };
    let secs = match &n.value {
        Value::Int(i) => *i as f64,
        Value::Float(f) => *f,
        Value::Map(entries) if type_name(n) == Some(TIMEDELTA_TYPE) => {
            let mut secs = 0.0;
            if let Some(args) = n.field("__args__") {
                let Value::List(args) = &args.value else {
                    return Err(args.pos.error("`__args__` must be a list"));
                };
                if args.len() > TIMEDELTA_UNITS.len() {
                    return Err(args[TIMEDELTA_UNITS.len()].pos.error(
                        "timedelta takes at most 7 positional arguments (days, seconds, microseconds, milliseconds, minutes, hours, weeks)",
                    ));
                }
                for (arg, (_, unit)) in args.iter().zip(TIMEDELTA_UNITS) {
                    secs += number(arg)? * unit;
                }
            }
            for e in entries {
                if e.key == "__type__" || e.key == "__args__" {
                    continue;
                }
                let Some((_, unit)) = TIMEDELTA_UNITS.iter().find(|(name, _)| *name == e.key)
                else {
                    return Err(e.key_pos.error(format!(
                        "timedelta has no argument `{}`; use days, seconds, microseconds, milliseconds, minutes, hours or weeks",
                        e.key
                    )));
                };
                secs += number(&e.value)? * unit;
            }
            secs
        }
        _ => return Err(expected()),
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(n.pos.error(format!(
            "`{key}` must be a duration from zero up, not {secs} seconds"
        )));
    }
    Ok(secs)
}

fn number(n: &Node) -> Result<f64, ImportError> {
    match n.value {
        Value::Int(i) => Ok(i as f64),
        Value::Float(f) => Ok(f),
        _ => Err(n.pos.error(format!(
            "a timedelta argument must be a number, not {}",
            n.describe()
        ))),
    }
}

/// `timezone`: only fixed offsets, since a named zone needs the tz database, which
/// updraft does not carry.
pub(crate) fn timezone(n: &Node) -> Result<FixedOffset, ImportError> {
    let text = n.string("timezone")?;
    let t = text.trim();
    let utc = FixedOffset::east_opt(0);
    let offset = match t {
        "UTC" | "utc" | "Etc/UTC" | "GMT" | "Etc/GMT" | "Z" => utc,
        _ => ["UTC", "GMT", ""]
            .iter()
            .find_map(|prefix| t.strip_prefix(prefix).and_then(offset)),
    };
    offset.ok_or_else(|| {
        n.pos.error(format!(
            "unsupported timezone `{t}`: only UTC and fixed offsets such as +02:00 are supported"
        ))
    })
}

/// `+02:00`, `+0200`, `+02`, `-05:30`.
fn offset(s: &str) -> Option<FixedOffset> {
    let sign = match s.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let digits: String = s[1..].chars().filter(|c| *c != ':').collect();
    if !digits.chars().all(|c| c.is_ascii_digit()) || ![2, 4].contains(&digits.len()) {
        return None;
    }
    let hours: i32 = digits[..2].parse().ok()?;
    let minutes: i32 = digits
        .get(2..)
        .filter(|m| !m.is_empty())
        .map_or(Ok(0), str::parse)
        .ok()?;
    if minutes >= 60 {
        return None;
    }
    FixedOffset::east_opt(sign * (hours * 3600 + minutes * 60))
}

/// `start_date` or `end_date`: a date, a datetime (naive ones are in `tz`), or a time
/// before today's midnight in `tz` such as `3 days`, as dag-factory's `get_datetime`.
pub(crate) fn date(
    n: &Node,
    key: &str,
    tz: FixedOffset,
    now: DateTime<Utc>,
) -> Result<DateTime<Utc>, ImportError> {
    let bad = || {
        n.pos.error(format!(
            "cannot read {} as `{key}`: write 2024-01-01, 2024-01-01T06:00:00 (optionally with Z or +02:00) or a time ago such as `3 days`",
            n.describe()
        ))
    };
    let Value::Str(text) = &n.value else {
        return Err(bad());
    };
    let local = if let Some((naive, explicit)) = datetime(text) {
        naive.and_local_timezone(explicit.unwrap_or(tz)).single()
    } else if let Some(ago) = relative(text) {
        let midnight = now.with_timezone(&tz).date_naive().and_time(NaiveTime::MIN);
        midnight
            .and_local_timezone(tz)
            .single()
            .and_then(|m| m.checked_sub_signed(ago))
    } else {
        None
    };
    local.map(|d| d.with_timezone(&Utc)).ok_or_else(bad)
}

fn datetime(text: &str) -> Option<(NaiveDateTime, Option<FixedOffset>)> {
    let text = text.trim();
    if let Ok(day) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Some((day.and_time(NaiveTime::MIN), None));
    }
    // The offset, if any, follows the time, which starts after the 10-character date.
    let (body, explicit) = if let Some(body) = text.strip_suffix(['Z', 'z']) {
        (body, FixedOffset::east_opt(0))
    } else {
        match text.get(10..).and_then(|t| t.rfind(['+', '-'])) {
            Some(i) => {
                let (body, off) = text.split_at(10 + i);
                (body, Some(offset(off)?))
            }
            None => (text, None),
        }
    };
    [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ]
    .iter()
    .find_map(|f| NaiveDateTime::parse_from_str(body, f).ok())
    .map(|naive| (naive, explicit))
}

/// `N hours|minutes|seconds|days`, with anything after the unit ignored (so `3 days ago`
/// reads), as dag-factory's `get_time_delta` matches it.
fn relative(text: &str) -> Option<TimeDelta> {
    let text = text.trim_start();
    let digits = text.find(|c: char| !c.is_ascii_digit())?;
    let amount: i64 = text[..digits].parse().ok()?;
    let rest = &text[digits..];
    if !rest.starts_with(char::is_whitespace) {
        return None;
    }
    let unit = rest.trim_start().to_ascii_lowercase();
    let secs = [
        ("hour", 3_600),
        ("minute", 60),
        ("second", 1),
        ("day", 86_400),
    ]
    .iter()
    .find(|(name, _)| unit.starts_with(name))?
    .1;
    TimeDelta::try_seconds(amount.checked_mul(secs)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dagfile::yaml;

    fn node(src: &str) -> Node {
        yaml::load(src).unwrap().unwrap()
    }

    fn now() -> DateTime<Utc> {
        "2025-06-15T13:45:00Z".parse().unwrap()
    }

    #[test]
    fn schedules() {
        let check = |src: &str, expect: &str| {
            let got = match schedule(&node(src)) {
                Ok(Schedule::Cron { expr, raw }) => format!("cron {expr} ({raw})"),
                Ok(other) => format!("{other:?}"),
                Err(e) => format!("{}:{} {}", e.line, e.column, e.message),
            };
            assert!(got.starts_with(expect), "{src}: {got}");
        };
        check("'0 3 * * *'", "cron 0 3 * * * (0 3 * * *)");
        check("'@daily'", "cron 0 0 * * * (@daily)");
        check("'@hourly'", "cron 0 * * * * (@hourly)");
        check("'@weekly'", "cron 0 0 * * 0 (@weekly)");
        check("'@monthly'", "cron 0 0 1 * * (@monthly)");
        check("'@yearly'", "cron 0 0 1 1 * (@yearly)");
        check("'@annually'", "cron 0 0 1 1 * (@annually)");
        check("'@once'", "Once");
        check("None", "None");
        check(
            "{__type__: datetime.timedelta, seconds: 30, minutes: 1}",
            "Delta { secs: 90.0 }",
        );
        check("'61 * * * *'", "1:1 invalid cron expression `61 * * * *`");
        check(
            "'* * * *'",
            "1:1 invalid cron expression `* * * *`: it has 4 fields",
        );
        check(
            "'0 0 * * * *'",
            "1:1 invalid cron expression `0 0 * * * *`: it has 6 fields",
        );
        check(
            "'@continuous'",
            "1:1 `@continuous` schedules are not supported",
        );
        check(
            "'@fortnightly'",
            "1:1 unknown schedule preset `@fortnightly`",
        );
        check(
            "{__type__: datetime.timedelta}",
            "1:1 a timedelta schedule must be longer",
        );
        check(
            "{__type__: dateutil.relativedelta.relativedelta}",
            "1:1 schedules of type",
        );
        check("[s3://bucket/a]", "1:1 asset and dataset schedules");
        check("3", "1:1 `schedule` must be a cron expression");
    }

    #[test]
    fn timedeltas() {
        let check = |src: &str, expect: Result<f64, &str>| {
            let got = timedelta(&node(src), "retry_delay").map_err(|e| e.message);
            match (got, expect) {
                (Ok(got), Ok(want)) => assert!((got - want).abs() < 1e-9, "{src}: {got}"),
                (Err(got), Err(want)) => assert!(got.contains(want), "{src}: {got}"),
                (got, _) => panic!("{src}: {got:?}"),
            }
        };
        check("45", Ok(45.0));
        check("1.5", Ok(1.5));
        check(
            "{__type__: datetime.timedelta, hours: 1, milliseconds: 500}",
            Ok(3600.5),
        );
        check(
            "{__type__: datetime.timedelta, __args__: [1, 30]}",
            Ok(86_430.0),
        );
        check(
            "{__type__: datetime.timedelta, weeks: 1, days: -1}",
            Ok(518_400.0),
        );
        check(
            "{__type__: datetime.timedelta, fortnights: 1}",
            Err("no argument `fortnights`"),
        );
        check(
            "{__type__: datetime.timedelta, hours: one}",
            Err("must be a number"),
        );
        check(
            "'5 minutes'",
            Err("`retry_delay` must be a number of seconds"),
        );
        check("-1", Err("from zero up"));
    }

    #[test]
    fn dates() {
        let check = |src: &str, tz: &str, expect: &str| {
            let tz = timezone(&node(tz)).unwrap();
            let got = match date(&node(src), "start_date", tz, now()) {
                Ok(d) => d.to_rfc3339(),
                Err(e) => e.message,
            };
            assert!(got.starts_with(expect), "{src}: {got}");
        };
        check("2024-11-11", "UTC", "2024-11-11T00:00:00+00:00");
        check("'2024-11-11'", "+02:00", "2024-11-10T22:00:00+00:00");
        check("2024-01-01T06:30:00", "utc", "2024-01-01T06:30:00+00:00");
        check("2024-01-01 06:30", "'-0130'", "2024-01-01T08:00:00+00:00");
        check(
            "2024-01-01T06:30:00.250Z",
            "'+05'",
            "2024-01-01T06:30:00.250+00:00",
        );
        check(
            "2024-01-01T06:30:00+02:00",
            "UTC",
            "2024-01-01T04:30:00+00:00",
        );
        check(
            "2024-01-01 06:30:00-05:00",
            "UTC",
            "2024-01-01T11:30:00+00:00",
        );
        check("'2 days'", "UTC", "2025-06-13T00:00:00+00:00");
        check("3 days ago", "+02:00", "2025-06-11T22:00:00+00:00");
        check("'1 hour'", "UTC", "2025-06-14T23:00:00+00:00");
        check(
            "2024-13-01",
            "UTC",
            "cannot read the string `2024-13-01` as `start_date`",
        );
        check("yesterday", "UTC", "cannot read the string `yesterday`");
        check("20240101", "UTC", "cannot read the number 20240101");
        check("2024-01-01T06:30:00+25:00", "UTC", "cannot read");
        check("'2024-01-01Té'", "UTC", "cannot read");
    }

    #[test]
    fn timezones() {
        for (src, secs) in [
            ("UTC", 0),
            ("Etc/UTC", 0),
            ("'+02:00'", 7200),
            ("UTC-0530", -19_800),
        ] {
            assert_eq!(
                timezone(&node(src)).map(|t| t.local_minus_utc()),
                Ok(secs),
                "{src}"
            );
        }
        let e = timezone(&node("Europe/Paris")).unwrap_err();
        assert!(e.message.contains("only UTC and fixed offsets"), "{e:?}");
        assert!(timezone(&node("'+2:00'")).is_err());
    }
}
