//! Schedules, dates, time zones and durations, as dag-factory files write them.
//!
//! Each reader takes one `Node` and returns a value or an import error at that node (or at
//! the part of it that is wrong). Cron expressions are checked here, at parse time, so a bad
//! one is an import error with a line rather than a scheduler failure later.

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta, Utc};
use croner::parser::{CronParser, Seconds, Year};

use super::ImportError;
use super::yaml::{Node, Value};
use crate::model::{Delta, RelativeDelta, RunImmediately, Schedule, Timetable, Zone};

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
const RELATIVEDELTA_TYPE: &str = "dateutil.relativedelta.relativedelta";

/// `relativedelta`'s relative arguments (plural names); its absolute ones (`year`,
/// `month`, `weekday`, ...) replace fields rather than add, and are not supported.
const RELATIVEDELTA_UNITS: &[&str] = &[
    "years",
    "months",
    "weeks",
    "days",
    "hours",
    "minutes",
    "seconds",
    "microseconds",
];

/// How a timetable class takes one argument, as Python binds a call.
#[derive(Clone, Copy, PartialEq)]
enum Arg {
    /// Positional or keyword, required.
    Required,
    /// Positional or keyword, with a default.
    Optional,
    /// Keyword only, required.
    KeywordRequired,
    /// Keyword only, with a default.
    Keyword,
    /// `*args`: every remaining positional argument.
    Rest,
}

/// Which timetable a class path builds.
#[derive(Clone, Copy, PartialEq)]
enum Class {
    CronTrigger,
    CronDataInterval,
    DeltaTrigger,
    DeltaDataInterval,
    MultipleCronTrigger,
    Events,
}

/// A constructor's parameters, in order.
type Params = &'static [(&'static str, Arg)];

/// Arguments bound to parameter names, and the `*args` rest.
type Bound<'n> = (Vec<(&'static str, &'n Node)>, Vec<&'n Node>);

/// The timetable classes dag-factory files name, with their constructors' parameters in
/// Airflow 3.3.2: the core classes (`airflow.timetables...`) and the SDK's
/// (`airflow.sdk...`), whose cron classes call the expression `expression`, not `cron`,
/// and take the zone positionally.
const CLASSES: &[(&str, Class, Params)] = {
    use Arg::*;
    const CORE_CRON_TRIGGER: &[(&str, Arg)] = &[
        ("cron", Required),
        ("timezone", KeywordRequired),
        ("interval", Keyword),
        ("run_immediately", Keyword),
    ];
    const SDK_CRON_TRIGGER: &[(&str, Arg)] = &[
        ("expression", Required),
        ("timezone", Required),
        ("interval", Keyword),
        ("run_immediately", Keyword),
    ];
    const CORE_CRON_DATA: &[(&str, Arg)] = &[("cron", Required), ("timezone", Required)];
    const SDK_CRON_DATA: &[(&str, Arg)] = &[("expression", Required), ("timezone", Required)];
    const DELTA_TRIGGER: &[(&str, Arg)] = &[("delta", Required), ("interval", Keyword)];
    const DELTA_DATA: &[(&str, Arg)] = &[("delta", Required)];
    const MULTIPLE: &[(&str, Arg)] = &[
        ("crons", Rest),
        ("timezone", KeywordRequired),
        ("interval", Keyword),
        ("run_immediately", Keyword),
    ];
    const CORE_EVENTS: &[(&str, Arg)] = &[
        ("event_dates", Required),
        ("restrict_to_events", Optional),
        ("presorted", Optional),
        ("description", Optional),
    ];
    const SDK_EVENTS: &[(&str, Arg)] = &[
        ("event_dates", Required),
        ("restrict_to_events", Keyword),
        ("presorted", Keyword),
        ("description", Keyword),
    ];
    &[
        (
            "airflow.timetables.trigger.CronTriggerTimetable",
            Class::CronTrigger,
            CORE_CRON_TRIGGER,
        ),
        (
            "airflow.sdk.CronTriggerTimetable",
            Class::CronTrigger,
            SDK_CRON_TRIGGER,
        ),
        (
            "airflow.sdk.definitions.timetables.trigger.CronTriggerTimetable",
            Class::CronTrigger,
            SDK_CRON_TRIGGER,
        ),
        (
            "airflow.timetables.interval.CronDataIntervalTimetable",
            Class::CronDataInterval,
            CORE_CRON_DATA,
        ),
        (
            "airflow.sdk.CronDataIntervalTimetable",
            Class::CronDataInterval,
            SDK_CRON_DATA,
        ),
        (
            "airflow.sdk.definitions.timetables.interval.CronDataIntervalTimetable",
            Class::CronDataInterval,
            SDK_CRON_DATA,
        ),
        (
            "airflow.timetables.trigger.DeltaTriggerTimetable",
            Class::DeltaTrigger,
            DELTA_TRIGGER,
        ),
        (
            "airflow.sdk.DeltaTriggerTimetable",
            Class::DeltaTrigger,
            DELTA_TRIGGER,
        ),
        (
            "airflow.sdk.definitions.timetables.trigger.DeltaTriggerTimetable",
            Class::DeltaTrigger,
            DELTA_TRIGGER,
        ),
        (
            "airflow.timetables.interval.DeltaDataIntervalTimetable",
            Class::DeltaDataInterval,
            DELTA_DATA,
        ),
        (
            "airflow.sdk.DeltaDataIntervalTimetable",
            Class::DeltaDataInterval,
            DELTA_DATA,
        ),
        (
            "airflow.sdk.definitions.timetables.interval.DeltaDataIntervalTimetable",
            Class::DeltaDataInterval,
            DELTA_DATA,
        ),
        (
            "airflow.timetables.trigger.MultipleCronTriggerTimetable",
            Class::MultipleCronTrigger,
            MULTIPLE,
        ),
        (
            "airflow.sdk.MultipleCronTriggerTimetable",
            Class::MultipleCronTrigger,
            MULTIPLE,
        ),
        (
            "airflow.sdk.definitions.timetables.trigger.MultipleCronTriggerTimetable",
            Class::MultipleCronTrigger,
            MULTIPLE,
        ),
        (
            "airflow.timetables.events.EventsTimetable",
            Class::Events,
            CORE_EVENTS,
        ),
        // Airflow 3.3.2 writes this one but cannot read it back (its encoding lacks the
        // `_summary` the core class reads); updraft runs it as the core class.
        ("airflow.sdk.EventsTimetable", Class::Events, SDK_EVENTS),
        (
            "airflow.sdk.definitions.timetables.events.EventsTimetable",
            Class::Events,
            SDK_EVENTS,
        ),
    ]
};

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
        Value::Map(_) if type_name(n) == Some(RELATIVEDELTA_TYPE) => {
            Ok(Schedule::Relative(positive_relativedelta(n, "schedule")?))
        }
        Value::Map(_) => match type_name(n) {
            Some(path) => match CLASSES.iter().find(|(name, _, _)| *name == path) {
                Some((_, class, params)) => timetable(n, path, *class, params).map(Schedule::Timetable),
                None => Err(n.field("__type__").map_or(n.pos, |t| t.pos).error(format!(
                    "schedules of type `{path}` are not supported; use a cron expression, a preset, {TIMEDELTA_TYPE}, {RELATIVEDELTA_TYPE} or one of the timetables {}",
                    timetable_names()
                ))),
            },
            None => Err(n.pos.error(
                "asset and dataset schedules are not supported; use a cron expression, a preset, a timedelta or a timetable",
            )),
        },
        Value::List(_) => Err(n.pos.error(
            "asset and dataset schedules are not supported; use a cron expression, a preset, a timedelta or a timetable",
        )),
        _ => Err(n.pos.error(format!(
            "`schedule` must be a cron expression, a preset such as `@daily`, null, a timedelta or a timetable, not {}",
            n.describe()
        ))),
    }
}

/// Every timetable class path a schedule may name, for the schema.
pub(crate) const TIMETABLE_CLASSES: [&str; CLASSES.len()] = {
    let mut names = [""; CLASSES.len()];
    let mut i = 0;
    while i < CLASSES.len() {
        names[i] = CLASSES[i].0;
        i += 1;
    }
    names
};

/// The core timetable classes, for messages.
fn timetable_names() -> String {
    let names: Vec<&str> = CLASSES
        .iter()
        .map(|(name, _, _)| *name)
        .filter(|name| name.starts_with("airflow.timetables."))
        .collect();
    format!("{} (or their airflow.sdk paths)", names.join(", "))
}

/// A cron expression as a timetable argument: a preset or five fields, checked.
fn cron_arg(n: &Node, key: &str) -> Result<String, ImportError> {
    let text = n.string(key)?;
    let text = text.trim();
    let expr = match PRESETS.iter().find(|(name, _)| *name == text) {
        Some((_, expr)) => expr.to_string(),
        None => text.split_whitespace().collect::<Vec<_>>().join(" "),
    };
    check_cron(&expr).map_err(|why| {
        n.pos
            .error(format!("invalid cron expression `{text}`: {why}"))
    })?;
    Ok(expr)
}

/// One timetable from its `__type__` mapping, its arguments bound as Python binds a call
/// to the class (so a wrong argument is the import error Airflow would raise, here with
/// its line), then each read by its kind.
fn timetable(
    n: &Node,
    path: &str,
    class: Class,
    params: &[(&'static str, Arg)],
) -> Result<Timetable, ImportError> {
    let (args, rest) = bind(n, path, params)?;
    let get = |name: &str| args.iter().find(|(k, _)| *k == name).map(|(_, v)| *v);
    let zone = |name: &str| get(name).map(timezone).transpose();
    let delta = |name: &str| get(name).map(|v| delta(v, name)).transpose();
    let flag = |name: &str| get(name).map(|v| v.boolean(name)).transpose();
    let cron_name = if params[0].0 == "expression" {
        "expression"
    } else {
        "cron"
    };
    Ok(match class {
        Class::CronTrigger | Class::MultipleCronTrigger => {
            let crons = if class == Class::CronTrigger {
                vec![cron_arg(get(cron_name).unwrap_or(n), cron_name)?]
            } else {
                if rest.is_empty() {
                    return Err(n.pos.error(format!(
                        "{path} needs at least one cron expression in `__args__`"
                    )));
                }
                rest.iter()
                    .map(|c| cron_arg(c, "crons"))
                    .collect::<Result<_, _>>()?
            };
            let run_immediately = match get("run_immediately") {
                None => RunImmediately::No,
                Some(v) => match &v.value {
                    Value::Map(_) => RunImmediately::Within {
                        secs: timedelta(v, "run_immediately")?,
                    },
                    _ if v.boolean("run_immediately")? => RunImmediately::Yes,
                    _ => RunImmediately::No,
                },
            };
            Timetable::CronTrigger {
                crons,
                zone: zone("timezone")?.unwrap_or_default(),
                interval: delta("interval")?.unwrap_or(Delta::ZERO),
                run_immediately,
            }
        }
        Class::CronDataInterval => Timetable::CronDataInterval {
            cron: cron_arg(get(cron_name).unwrap_or(n), cron_name)?,
            zone: zone("timezone")?.unwrap_or_default(),
        },
        Class::DeltaTrigger => Timetable::DeltaTrigger {
            delta: positive(delta("delta")?, n)?,
            interval: delta("interval")?.unwrap_or(Delta::ZERO),
        },
        Class::DeltaDataInterval => Timetable::DeltaDataInterval {
            delta: positive(delta("delta")?, n)?,
        },
        Class::Events => {
            let dates = get("event_dates").unwrap_or(n);
            let Value::List(items) = &dates.value else {
                return Err(dates.pos.error(format!(
                    "`event_dates` must be a list of datetimes, not {}",
                    dates.describe()
                )));
            };
            let mut events = items
                .iter()
                .map(event_date)
                .collect::<Result<Vec<_>, _>>()?;
            // Python's stable sort by instant; `presorted` only skips it, and a list that
            // claims to be sorted but is not would misbehave there, so sort anyway.
            let _ = flag("presorted")?;
            events.sort_by_key(|e| e.to_utc());
            Timetable::Events {
                events,
                restrict_to_events: flag("restrict_to_events")?.unwrap_or(false),
                description: get("description")
                    .map(|d| d.string("description"))
                    .transpose()?,
            }
        }
    })
}

/// A delta argument of a timetable must move time forward, as Airflow's `validate` says.
fn positive(delta: Option<Delta>, n: &Node) -> Result<Delta, ImportError> {
    let d = delta.ok_or_else(|| n.pos.error("the timetable needs a `delta`"))?;
    let forward = match d {
        Delta::Fixed { secs } => secs > 0.0,
        Delta::Relative(r) => relativedelta_is_positive(&r),
    };
    if forward {
        Ok(d)
    } else {
        Err(n.pos.error(format!(
            "schedule interval must be positive, not {}",
            d.summary()
        )))
    }
}

fn relativedelta_is_positive(r: &RelativeDelta) -> bool {
    let probe = DateTime::<Utc>::UNIX_EPOCH + TimeDelta::days(365 * 30);
    r.add_to(probe).is_some_and(|t| t > probe)
}

/// A `timedelta` or `relativedelta` mapping, as a timetable argument.
fn delta(n: &Node, key: &str) -> Result<Delta, ImportError> {
    match type_name(n) {
        Some(TIMEDELTA_TYPE) => Ok(Delta::Fixed { secs: signed_timedelta(n, key)? }),
        Some(RELATIVEDELTA_TYPE) => Ok(Delta::Relative(relativedelta(n)?)),
        _ => Err(n.pos.error(format!(
            "`{key}` must be a mapping with `__type__: {TIMEDELTA_TYPE}` or `__type__: {RELATIVEDELTA_TYPE}`, not {}",
            n.describe()
        ))),
    }
}

/// One event of an `EventsTimetable`: a datetime with its offset (Airflow compares them
/// with aware times, so a naive one fails there).
fn event_date(n: &Node) -> Result<DateTime<FixedOffset>, ImportError> {
    let bad = || {
        n.pos.error(format!(
            "each of `event_dates` must be a date and time with an offset, such as 2024-03-01T10:00:00+01:00 or 2024-03-01T09:00:00Z, not {}",
            n.describe()
        ))
    };
    let Value::Str(text) = &n.value else {
        return Err(bad());
    };
    match datetime(text) {
        Some((naive, Some(offset))) => naive.and_local_timezone(offset).single().ok_or_else(bad),
        _ => Err(bad()),
    }
}

/// Binds `__args__` and the other keys of `n` to `params` as Python binds a call, with
/// Python's complaints. Returns the bound arguments by name and the `*args` rest.
fn bind<'n>(
    n: &'n Node,
    path: &str,
    params: &[(&'static str, Arg)],
) -> Result<Bound<'n>, ImportError> {
    let class = path.rsplit('.').next().unwrap_or(path);
    let mut bound: Vec<(&'static str, &'n Node)> = Vec::new();
    let mut rest = Vec::new();
    let positional: Vec<&'n Node> = match n.field("__args__") {
        None => Vec::new(),
        Some(args) => match &args.value {
            Value::List(items) => items.iter().collect(),
            _ => return Err(args.pos.error("`__args__` must be a list")),
        },
    };
    let takes_positional = |a: Arg| matches!(a, Arg::Required | Arg::Optional);
    let mut slots = params
        .iter()
        .filter(|(_, a)| takes_positional(*a) || *a == Arg::Rest);
    for arg in &positional {
        match slots.next() {
            Some((_, Arg::Rest)) => {
                rest.push(*arg);
                rest.extend(positional.iter().skip(bound.len() + rest.len()).copied());
                break;
            }
            Some((name, _)) => bound.push((name, *arg)),
            None => {
                let most = params.iter().filter(|(_, a)| takes_positional(*a)).count();
                return Err(arg.pos.error(format!(
                    "{class} takes {most} positional argument{} but {} were given",
                    if most == 1 { "" } else { "s" },
                    positional.len()
                )));
            }
        }
    }
    for e in n.entries() {
        if e.key == "__type__" || e.key == "__args__" {
            continue;
        }
        let Some((name, arg)) = params.iter().find(|(name, _)| *name == e.key) else {
            let known: Vec<&str> = params
                .iter()
                .filter(|(_, a)| *a != Arg::Rest)
                .map(|(n, _)| *n)
                .collect();
            return Err(e.key_pos.error(format!(
                "{class} got an unexpected keyword argument `{}`; it takes {}",
                e.key,
                known.join(", ")
            )));
        };
        if *arg == Arg::Rest {
            return Err(e
                .key_pos
                .error(format!("{class} takes `{name}` only in `__args__`")));
        }
        if bound.iter().any(|(b, _)| b == name) {
            return Err(e
                .key_pos
                .error(format!("{class} got multiple values for argument `{name}`")));
        }
        if e.value.value != Value::Null {
            bound.push((name, &e.value));
        }
    }
    let missing: Vec<&str> = params
        .iter()
        .filter(|(name, a)| {
            matches!(a, Arg::Required | Arg::KeywordRequired)
                && !bound.iter().any(|(b, _)| b == name)
        })
        .map(|(name, _)| *name)
        .collect();
    if !missing.is_empty() {
        return Err(n.pos.error(format!(
            "{class} is missing the required argument{} `{}`",
            if missing.len() == 1 { "" } else { "s" },
            missing.join("`, `")
        )));
    }
    Ok((bound, rest))
}

/// `__type__: dateutil.relativedelta.relativedelta` with its relative keyword arguments,
/// whole numbers, normalized as relativedelta does.
fn relativedelta(n: &Node) -> Result<RelativeDelta, ImportError> {
    let mut r = RelativeDelta::default();
    if let Some(args) = n.field("__args__") {
        return Err(args.pos.error(
            "relativedelta's positional arguments are two datetimes; give its keyword arguments (years, months, weeks, days, hours, minutes, seconds, microseconds)",
        ));
    }
    for e in n.entries() {
        if e.key == "__type__" {
            continue;
        }
        if !RELATIVEDELTA_UNITS.contains(&e.key.as_str()) {
            return Err(e.key_pos.error(format!(
                "relativedelta argument `{}` is not supported; use {}",
                e.key,
                RELATIVEDELTA_UNITS.join(", ")
            )));
        }
        let v = e.value.integer(&e.key)?;
        let field = match e.key.as_str() {
            "years" => &mut r.years,
            "months" => &mut r.months,
            "weeks" | "days" => &mut r.days,
            "hours" => &mut r.hours,
            "minutes" => &mut r.minutes,
            "seconds" => &mut r.seconds,
            _ => &mut r.microseconds,
        };
        let v = if e.key == "weeks" {
            v.checked_mul(7)
        } else {
            Some(v)
        };
        *field = v
            .and_then(|v| field.checked_add(v))
            .filter(|v| v.abs() < 1_000_000_000_000)
            .ok_or_else(|| e.value.pos.error("this relativedelta is too large"))?;
    }
    Ok(r.normalized())
}

/// A relativedelta schedule must move time forward (Airflow's `validate`).
fn positive_relativedelta(n: &Node, key: &str) -> Result<RelativeDelta, ImportError> {
    let r = relativedelta(n)?;
    if !relativedelta_is_positive(&r) {
        return Err(n.pos.error(format!("`{key}` must be positive, not {r}")));
    }
    Ok(r)
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
    let secs = signed_timedelta(n, key)?;
    if secs < 0.0 {
        return Err(n.pos.error(format!(
            "`{key}` must be a duration from zero up, not {secs} seconds"
        )));
    }
    Ok(secs)
}

/// `timedelta`, negative ones included.
pub(crate) fn signed_timedelta(n: &Node, key: &str) -> Result<f64, ImportError> {
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
    if !secs.is_finite() || secs.abs() > 1e15 {
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

/// `timezone`: an IANA name such as `Europe/Amsterdam` (the tz database is compiled in),
/// `UTC`, or a fixed offset such as `+02:00` (updraft's addition).
pub(crate) fn timezone(n: &Node) -> Result<Zone, ImportError> {
    let text = n.string("timezone")?;
    Zone::parse(&text).ok_or_else(|| {
        n.pos.error(format!(
            "unknown time zone `{}`: use an IANA name such as Europe/Amsterdam or America/New_York (names are case-sensitive), UTC, or a fixed offset such as +02:00",
            text.trim()
        ))
    })
}

/// `start_date` or `end_date`: a date, a datetime, or a time before today's midnight in
/// `tz` such as `3 days`, as dag-factory's `get_datetime` reads them: the wall-clock
/// time is taken in `tz`, and an offset written in the text is replaced by `tz`, not
/// honoured (dag-factory calls `.replace(tzinfo=...)`). A time in the spring gap or the
/// autumn's repeated hour is read as Airflow reads cron times there (see `Zone::instant`).
pub(crate) fn date(
    n: &Node,
    key: &str,
    tz: Zone,
    now: DateTime<Utc>,
) -> Result<DateTime<Utc>, ImportError> {
    let bad = || {
        n.pos.error(format!(
            "cannot read {} as `{key}`: write 2024-01-01, 2024-01-01T06:00:00 or a time ago such as `3 days`",
            n.describe()
        ))
    };
    let Value::Str(text) = &n.value else {
        return Err(bad());
    };
    let instant = if let Some((naive, _)) = datetime(text) {
        tz.instant(naive)
    } else if let Some(ago) = relative(text) {
        let midnight = tz.local(now).date().and_time(NaiveTime::MIN);
        tz.instant(midnight).and_then(|m| m.checked_sub_signed(ago))
    } else {
        None
    };
    instant.ok_or_else(bad)
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
                (body, Some(crate::model::offset(off)?))
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
            "1:1 `schedule` must be positive",
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
            "2024-01-01T01:30:00.250+00:00",
        );
        // dag-factory replaces a written offset with the zone (`.replace(tzinfo=...)`).
        check(
            "2024-01-01T06:30:00+02:00",
            "UTC",
            "2024-01-01T06:30:00+00:00",
        );
        check(
            "2024-01-01 06:30:00-05:00",
            "Europe/Amsterdam",
            "2024-01-01T05:30:00+00:00",
        );
        // In a named zone: the gap moves on, the repeated hour is its second time.
        check(
            "2024-03-31T02:30:00",
            "Europe/Amsterdam",
            "2024-03-31T01:30:00+00:00",
        );
        check(
            "2024-10-27T02:30:00",
            "Europe/Amsterdam",
            "2024-10-27T01:30:00+00:00",
        );
        check(
            "2024-07-01",
            "America/New_York",
            "2024-07-01T04:00:00+00:00",
        );
        check("'2 days'", "Australia/Sydney", "2025-06-12T14:00:00+00:00");
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
        // The instant of 2024-07-01 12:00 on the zone's wall clock.
        let noon = NaiveDate::from_ymd_opt(2024, 7, 1)
            .unwrap()
            .and_hms_opt(12, 0, 0)
            .unwrap();
        for (src, name, utc) in [
            ("UTC", "UTC", "2024-07-01T12:00:00Z"),
            ("utc", "UTC", "2024-07-01T12:00:00Z"),
            ("Etc/UTC", "Etc/UTC", "2024-07-01T12:00:00Z"),
            (
                "Europe/Amsterdam",
                "Europe/Amsterdam",
                "2024-07-01T10:00:00Z",
            ),
            (
                "America/New_York",
                "America/New_York",
                "2024-07-01T16:00:00Z",
            ),
            (
                "Australia/Sydney",
                "Australia/Sydney",
                "2024-07-01T02:00:00Z",
            ),
            ("'+02:00'", "+02:00", "2024-07-01T10:00:00Z"),
            ("UTC-0530", "-05:30", "2024-07-01T17:30:00Z"),
        ] {
            let zone = timezone(&node(src)).unwrap();
            assert_eq!(zone.name(), name, "{src}");
            assert_eq!(zone.instant(noon), Some(utc.parse().unwrap()), "{src}");
        }
        for bad in ["Europe/Nowhere", "europe/amsterdam", "'+2:00'", "CEST"] {
            let e = timezone(&node(bad)).unwrap_err();
            assert!(e.message.starts_with("unknown time zone"), "{bad}: {e:?}");
            assert_eq!((e.line, e.column), (1, 1));
        }
    }

    /// The `__type__` forms dag-factory builds: each class, positional and keyword
    /// arguments, and Python's complaints about wrong ones, at their line and column.
    #[test]
    fn timetables() {
        let check = |src: &str, expect: &str| {
            let got = match schedule(&node(src)) {
                Ok(s) => format!("{s:?}"),
                Err(e) => format!("{}:{} {}", e.line, e.column, e.message),
            };
            assert!(
                got.starts_with(expect),
                "{src}\n got: {got}\nwant: {expect}"
            );
        };
        check(
            "{__type__: airflow.timetables.trigger.CronTriggerTimetable, cron: '@daily', timezone: Europe/Amsterdam}",
            r#"Timetable(CronTrigger { crons: ["0 0 * * *"], zone: Named(Europe/Amsterdam), interval: Fixed { secs: 0.0 }, run_immediately: No })"#,
        );
        check(
            "{__type__: airflow.sdk.CronTriggerTimetable, __args__: ['0 3 * * *', Asia/Tokyo], interval: {__type__: datetime.timedelta, hours: 4}, run_immediately: true}",
            r#"Timetable(CronTrigger { crons: ["0 3 * * *"], zone: Named(Asia/Tokyo), interval: Fixed { secs: 14400.0 }, run_immediately: Yes })"#,
        );
        check(
            "{__type__: airflow.timetables.trigger.CronTriggerTimetable, cron: '0 3 * * *', timezone: UTC, run_immediately: {__type__: datetime.timedelta, minutes: 30}}",
            "Timetable(CronTrigger { crons: [\"0 3 * * *\"], zone: Named(UTC), interval: Fixed { secs: 0.0 }, run_immediately: Within { secs: 1800.0 } })",
        );
        check(
            "{__type__: airflow.timetables.interval.CronDataIntervalTimetable, __args__: ['0 0 * * *', America/New_York]}",
            r#"Timetable(CronDataInterval { cron: "0 0 * * *", zone: Named(America/New_York) })"#,
        );
        check(
            "{__type__: airflow.timetables.trigger.MultipleCronTriggerTimetable, __args__: ['0 3 * * *', '@hourly'], timezone: UTC}",
            r#"Timetable(CronTrigger { crons: ["0 3 * * *", "0 * * * *"]"#,
        );
        check(
            "{__type__: airflow.timetables.trigger.DeltaTriggerTimetable, __args__: [{__type__: dateutil.relativedelta.relativedelta, months: 1}], interval: {__type__: datetime.timedelta, days: 1}}",
            "Timetable(DeltaTrigger { delta: Relative(RelativeDelta { years: 0, months: 1,",
        );
        check(
            "{__type__: airflow.sdk.DeltaDataIntervalTimetable, delta: {__type__: datetime.timedelta, hours: 6}}",
            "Timetable(DeltaDataInterval { delta: Fixed { secs: 21600.0 } })",
        );
        check(
            "{__type__: airflow.timetables.events.EventsTimetable, event_dates: [2024-03-01T10:00:00+01:00, 2024-01-01T00:00:00Z], description: Match days}",
            r#"Timetable(Events { events: [2024-01-01T00:00:00+00:00, 2024-03-01T10:00:00+01:00], restrict_to_events: false, description: Some("Match days") })"#,
        );
        check(
            "{__type__: dateutil.relativedelta.relativedelta, weeks: 1, hours: 25}",
            "Relative(RelativeDelta { years: 0, months: 0, days: 8, hours: 1,",
        );
        // Wrong input: the error is Airflow's, at the part that is wrong.
        check(
            "{__type__: airflow.timetables.trigger.CronTriggerTimeTable, cron: '0 3 * * *'}",
            "1:12 schedules of type `airflow.timetables.trigger.CronTriggerTimeTable` are not supported",
        );
        check(
            "{__type__: airflow.timetables.trigger.CronTriggerTimetable, cron: '0 3 * * *'}",
            "1:1 CronTriggerTimetable is missing the required argument `timezone`",
        );
        check(
            "{__type__: airflow.sdk.CronTriggerTimetable, cron: '0 3 * * *', timezone: UTC}",
            "1:46 CronTriggerTimetable got an unexpected keyword argument `cron`; it takes expression, timezone",
        );
        check(
            "{__type__: airflow.timetables.trigger.CronTriggerTimetable, __args__: ['0 3 * * *', UTC]}",
            "1:85 CronTriggerTimetable takes 1 positional argument but 2 were given",
        );
        check(
            "{__type__: airflow.timetables.interval.CronDataIntervalTimetable, __args__: ['0 0 * * *'], cron: '0 1 * * *', timezone: UTC}",
            "1:92 CronDataIntervalTimetable got multiple values for argument `cron`",
        );
        check(
            "{__type__: airflow.timetables.trigger.CronTriggerTimetable, cron: '0 3 * * *', timezone: Mars/Olympus}",
            "1:90 unknown time zone `Mars/Olympus`",
        );
        check(
            "{__type__: airflow.timetables.trigger.CronTriggerTimetable, cron: '0 25 * * *', timezone: UTC}",
            "1:67 invalid cron expression `0 25 * * *`",
        );
        check(
            "{__type__: airflow.timetables.trigger.MultipleCronTriggerTimetable, timezone: UTC}",
            "1:1 airflow.timetables.trigger.MultipleCronTriggerTimetable needs at least one cron expression",
        );
        check(
            "{__type__: airflow.timetables.trigger.DeltaTriggerTimetable, delta: {__type__: datetime.timedelta, hours: -1}}",
            "1:1 schedule interval must be positive, not -1 day, 23:00:00",
        );
        check(
            "{__type__: airflow.timetables.trigger.DeltaTriggerTimetable, delta: 3600}",
            "1:69 `delta` must be a mapping with `__type__: datetime.timedelta`",
        );
        check(
            "{__type__: airflow.timetables.events.EventsTimetable, event_dates: [2024-03-01T10:00:00]}",
            "1:69 each of `event_dates` must be a date and time with an offset",
        );
        check(
            "{__type__: dateutil.relativedelta.relativedelta, month: 1}",
            "1:50 relativedelta argument `month` is not supported",
        );
        check(
            "{__type__: dateutil.relativedelta.relativedelta, months: -1}",
            "1:1 `schedule` must be positive, not relativedelta(months=-1)",
        );
    }
}
