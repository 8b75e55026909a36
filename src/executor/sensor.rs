//! Sensors, run inside the supervisor: `BaseSensorOperator.execute` (pokes, timeout,
//! `soft_fail`/`never_fail`/`silent_fail`, poke and reschedule modes, exponential backoff)
//! written once, and each native sensor as a poke function.
//!
//! A poke is a plain function of the try's run context and the sensor's rendered
//! arguments ([`PokeFn`]); [`poke_fn`] picks it by kind. In poke mode the supervisor's
//! thread pokes, waits `poke_interval` (heartbeating) and pokes again. In reschedule mode
//! it pokes once: not done, the try is reported `up_for_reschedule` with the date of the
//! next poke and the thread ends, so a waiting sensor holds no thread, process, executor
//! slot or pool slot; the scheduler queues it again when the date comes. Its timeout
//! counts from the first reschedule of the try (the run context's
//! `first_reschedule_date`), as Airflow 3's `get_first_reschedule_date`.

use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveTime, Utc};
use serde_json::{Map, Value};

use super::client::Client;
use super::supervise::{Supervisors, TaskLog};
use crate::clock::Clock;
use crate::model::{Sensor, SensorKind, Zone};
use crate::template::{self, RenderError};

/// What one poke found.
#[derive(Debug, Clone, PartialEq)]
pub enum Poke {
    /// The criteria are met; the value (if any) is pushed as `return_value`
    /// (Airflow's `PokeReturnValue.xcom_value`).
    Done(Option<Value>),
    NotYet,
}

/// Why a poke did not answer.
#[derive(Debug, Clone, PartialEq)]
pub enum PokeError {
    /// Any other exception: fails the try (retried if it has retries), or with
    /// `silent_fail` counts as not done, or with `never_fail` skips.
    Error(String),
    /// Airflow's `AirflowFailException`/`AirflowSensorTimeout` from a poke: fails without
    /// retry, or skips with `soft_fail` or `never_fail`.
    Fail(String),
    /// Airflow's `AirflowSkipException` from a poke: skips.
    Skip(String),
}

/// What a poke gets: the try's run context as the Execution API returned it, the try's
/// client (for what a poke reads through the API: connections, other DAGs' states), the
/// supervisors' shared settings, the time, and a log line writer.
pub struct PokeCx<'a> {
    pub sv: &'a Supervisors,
    pub client: &'a Client,
    /// The run context (`dag_run`, `task`, `dag_timezone`, ...).
    pub ctx: &'a Value,
    pub clock: &'a Clock,
    pub log: &'a mut TaskLog,
    /// When the sensor started waiting (the first reschedule of the try, or this try's
    /// start): TimeSensor takes its day from it.
    pub started: DateTime<Utc>,
    /// The sensor's `soft_fail`, for pokes that skip on it themselves.
    pub soft_fail: bool,
    /// The task instance, for a poke that takes long to heartbeat it
    /// (`super::supervise::Beat`).
    pub ti_id: &'a str,
}

/// A sensor kind's poke: the rendered arguments in, done / not yet / an error out.
pub type PokeFn = fn(&mut PokeCx, &Map<String, Value>) -> Result<Poke, PokeError>;

/// The poke function of a native sensor kind. (HttpSensor and SqlSensor plug in here.)
pub fn poke_fn(kind: SensorKind) -> PokeFn {
    match kind {
        SensorKind::File => poke_file,
        SensorKind::TimeDelta => poke_time_delta,
        SensorKind::Time => poke_time,
        SensorKind::DateTime => poke_date_time,
        SensorKind::ExternalTask => poke_external_task,
        SensorKind::Bash => poke_bash,
        SensorKind::Http => poke_http,
        SensorKind::Sql => poke_sql,
    }
}

/// How a sensor's try ends.
#[derive(Debug, Clone, PartialEq)]
pub enum End {
    /// Report this state; on success push the value as `return_value` first.
    State(&'static str, Option<Value>),
    /// Reschedule mode, not done: report `up_for_reschedule` with this date.
    Reschedule(DateTime<Utc>),
    /// The task instance was cleared or changed elsewhere.
    NotOurs,
    /// The Execution API stopped answering heartbeats.
    Unreported,
}

/// What the sensor does after a poke that was not done, at `duration` seconds since it
/// started waiting: time out (fail, or skip with `soft_fail`, with Airflow's message), or
/// wait this many seconds before the next poke.
pub fn after_not_done(s: &Sensor, duration: f64, next: impl FnOnce() -> f64) -> Result<f64, End> {
    if duration > s.timeout_secs {
        let message = format!(
            "Sensor has timed out; run duration of {duration} seconds exceeds the specified timeout of {}.",
            py_float(s.timeout_secs)
        );
        return Err(End::State(
            if s.soft_fail { "skipped" } else { "failed" },
            Some(Value::String(message)),
        ));
    }
    Ok(next())
}

/// Python's `repr` of a float that holds whole numbers (`600.0`), as Airflow's message
/// shows `self.timeout`.
fn py_float(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e16 {
        format!("{f:.1}")
    } else {
        format!("{f}")
    }
}

/// Airflow's `_get_next_poke_interval`: `poke_interval`, or with `exponential_backoff` a
/// doubling wait per poke (from half the interval, at least 1 s) with a jitter taken from
/// a SHA-1 of `dag_id#task_id#started_at#poke_count`, never past the timeout nor
/// `max_wait`. In reschedule mode the poke count is estimated from the time waited.
pub fn next_poke_interval(
    s: &Sensor,
    key: (&str, &str, &str),
    duration: f64,
    poke_count: u32,
) -> f64 {
    if !s.exponential_backoff {
        return s.poke_interval_secs;
    }
    let (dag_id, task_id, started_at) = key;
    let backoff = |count: u32| -> f64 {
        let exp = i32::try_from(count).unwrap_or(i32::MAX).saturating_sub(2);
        let min = (s.poke_interval_secs * 2f64.powi(exp.min(1000)))
            .trunc()
            .max(1.0);
        let min_int = if min >= 1e18 {
            1e18 as u128
        } else {
            min as u128
        };
        let text = format!("{dag_id}#{task_id}#{started_at}#{count}");
        let jitter = sha1_mod(text.as_bytes(), min_int.max(1));
        // Python's `min(modded_hash, timedelta.max.total_seconds() - 1)`.
        ((min_int + jitter) as f64).min(86_399_999_999_999.0)
    };
    let mut count = poke_count;
    if s.reschedule {
        let (mut cumulative, mut estimated) = (0.0, 0u32);
        while cumulative <= duration {
            estimated += 1;
            cumulative += backoff(estimated);
        }
        if estimated > 0 {
            count = estimated;
        }
    }
    let mut interval = (s.timeout_secs - duration.trunc()).min(backoff(count));
    if let Some(max) = s.max_wait_secs.filter(|m| *m > 0.0) {
        interval = interval.min(max);
    }
    interval
}

/// `int(sha1(data).hexdigest(), 16) % m`.
fn sha1_mod(data: &[u8], m: u128) -> u128 {
    use sha1::Digest;
    let digest = sha1::Sha1::digest(data);
    digest
        .iter()
        .fold(0u128, |acc, &b| ((acc << 8) | u128::from(b)) % m)
}

/// Python's `str()` of an aware UTC datetime: `2026-01-01 12:00:00.123456+00:00`, the
/// microseconds left out when zero.
pub fn py_str(t: DateTime<Utc>) -> String {
    if t.timestamp_subsec_micros() == 0 {
        t.format("%Y-%m-%d %H:%M:%S+00:00").to_string()
    } else {
        t.format("%Y-%m-%d %H:%M:%S%.6f+00:00").to_string()
    }
}

/// The rest of the supervisor's tools a sensor try needs.
pub struct Try<'a> {
    pub sv: &'a Supervisors,
    pub client: &'a Client,
    pub ctx: &'a Value,
    pub ti_id: &'a str,
    pub tctx: &'a template::Context,
    pub lookup: &'a dyn template::Lookup,
    /// `up_for_retry` when the try has retries left, else `failed`.
    pub fail_state: &'static str,
}

/// Runs a native sensor's try: renders its templated arguments, then pokes as its mode
/// says. The caller reports what it returns.
pub fn run(t: &Try, log: &mut TaskLog) -> End {
    let task = &t.ctx["task"];
    let kind: Option<SensorKind> = serde_json::from_value(task["sensor_kind"].clone()).ok();
    let native: Option<crate::model::NativeSensor> =
        serde_json::from_value(task["sensor"].clone()).ok();
    let (Some(kind), Some(native)) = (kind, native) else {
        log.line("cannot run: the sensor's settings are missing from the run context");
        return End::State(t.fail_state, None);
    };
    let s = &native.settings;
    let execution_timeout = task["execution_timeout"]
        .as_f64()
        .map(Duration::from_secs_f64);
    let began = Instant::now();
    let mut args = native.args.clone();
    for &field in kind.template_fields() {
        let Some(v) = args.get(field).cloned() else {
            continue;
        };
        let deadline = execution_timeout.and_then(|d| began.checked_add(d));
        match render_value(&v, t.tctx, t.lookup, deadline) {
            Ok(r) => {
                args.insert(field.to_string(), r);
            }
            Err(RenderError::Template(e)) => {
                log.line(&format!("cannot render {field}: {e}"));
                return End::State(t.fail_state, None);
            }
            Err(_) => {
                log.line(&format!(
                    "execution_timeout reached while rendering {field}: the render was stopped"
                ));
                return End::State(t.fail_state, None);
            }
        }
    }
    let clock = &t.sv.clock;
    // Reschedule mode counts from the first reschedule of this try (a date in the
    // database); poke mode from now, on the monotonic clock.
    let first = t.ctx["first_reschedule_date"]
        .as_str()
        .and_then(|d| DateTime::parse_from_rfc3339(d).ok())
        .map(|d| d.with_timezone(&Utc));
    let started = first.unwrap_or_else(|| clock.now());
    let started_key = if s.reschedule {
        py_str(started)
    } else {
        format!("{:.6}", started.timestamp_micros() as f64 / 1e6)
    };
    let dag_id = t.ctx["dag_run"]["dag_id"].as_str().unwrap_or("");
    let task_id = task["task_id"].as_str().unwrap_or("");
    let duration = || -> f64 {
        if s.reschedule {
            (clock.now() - started)
                .num_microseconds()
                .unwrap_or(i64::MAX) as f64
                / 1e6
        } else {
            began.elapsed().as_secs_f64()
        }
    };
    let poke = poke_fn(kind);
    let mut poke_count = 1u32;
    let mut beat = super::supervise::Beat::new(t.sv);
    loop {
        let got = {
            let mut cx = PokeCx {
                sv: t.sv,
                client: t.client,
                ctx: t.ctx,
                clock,
                log,
                started,
                soft_fail: s.soft_fail,
                ti_id: t.ti_id,
            };
            poke(&mut cx, &args)
        };
        let done = match got {
            Ok(Poke::Done(v)) => {
                log.line("Success criteria met. Exiting.");
                return End::State("success", v.filter(|v| !v.is_null()));
            }
            Ok(Poke::NotYet) => false,
            Err(PokeError::Skip(m)) => {
                log.line(&format!("AirflowSkipException: {m}"));
                return End::State("skipped", None);
            }
            Err(PokeError::Fail(m)) => {
                log.line(&m);
                if s.soft_fail || s.never_fail {
                    let which = if s.soft_fail {
                        "soft_fail"
                    } else {
                        "never_fail"
                    };
                    log.line(&format!("Skipping due to {which} is set to True."));
                    return End::State("skipped", None);
                }
                return End::State("failed", None);
            }
            Err(PokeError::Error(m)) => {
                if s.silent_fail {
                    log.line(&format!("Sensor poke failed: \n {m}"));
                    false
                } else if s.never_fail {
                    log.line(&m);
                    log.line("Skipping due to never_fail is set to True.");
                    return End::State("skipped", None);
                } else {
                    log.line(&m);
                    return End::State(t.fail_state, None);
                }
            }
        };
        debug_assert!(!done);
        let d = duration();
        let wait = match after_not_done(s, d, || {
            next_poke_interval(s, (dag_id, task_id, &started_key), d, poke_count)
        }) {
            Ok(w) => w.max(0.0),
            Err(End::State(state, Some(Value::String(message)))) => {
                log.line(&format!("AirflowSensorTimeout: {message}"));
                return End::State(state, None);
            }
            Err(end) => return end,
        };
        if s.reschedule {
            let at = clock.now() + chrono::Duration::microseconds((wait * 1e6).min(1e17) as i64);
            log.line(&format!(
                "Rescheduling task, marking task as UP_FOR_RESCHEDULE: next poke at {}",
                crate::store::ts(at)
            ));
            return End::Reschedule(at);
        }
        log.line(&format!("Poke not done; next poke in {wait} s"));
        let until = Instant::now().checked_add(Duration::from_secs_f64(wait.min(1e9)));
        loop {
            if until.is_none_or(|u| Instant::now() >= u) {
                break;
            }
            if let Some(limit) = execution_timeout
                && began.elapsed() >= limit
            {
                log.line(&format!(
                    "execution_timeout of {:.3} s reached: the sensor was stopped",
                    limit.as_secs_f64()
                ));
                return End::State(t.fail_state, None);
            }
            match beat.tick(t.client, t.ti_id) {
                super::supervise::BeatSays::Go => {}
                super::supervise::BeatSays::Shutdown => {
                    log.line(
                        "the executor is shutting down: the sensor was stopped and will be retried",
                    );
                    return End::State("up_for_retry", None);
                }
                super::supervise::BeatSays::NotOurs => {
                    log.line("the task instance was cleared or changed elsewhere: the sensor was stopped");
                    return End::NotOurs;
                }
                super::supervise::BeatSays::ApiGone => {
                    log.line("the Execution API has not answered heartbeats for too long: the sensor was stopped");
                    return End::Unreported;
                }
            }
            std::thread::sleep(super::supervise::TICK);
        }
        poke_count += 1;
    }
}

/// A PythonSensor in reschedule mode whose one poke of the try was not done: its
/// timeout, or the date of its next poke.
pub fn python_not_done(ctx: &Value, clock: &Clock) -> End {
    let settings: Option<Sensor> =
        serde_json::from_value(ctx["task"]["python"]["sensor"].clone()).ok();
    let Some(s) = settings else {
        return End::State("failed", None);
    };
    let now = clock.now();
    let started = ctx["first_reschedule_date"]
        .as_str()
        .and_then(|d| DateTime::parse_from_rfc3339(d).ok())
        .map_or(now, |d| d.with_timezone(&Utc));
    let d = (now - started).num_microseconds().unwrap_or(i64::MAX) as f64 / 1e6;
    let dag_id = ctx["dag_run"]["dag_id"].as_str().unwrap_or("");
    let task_id = ctx["task"]["task_id"].as_str().unwrap_or("");
    let key = py_str(started);
    match after_not_done(&s, d, || {
        next_poke_interval(&s, (dag_id, task_id, &key), d, 1)
    }) {
        Ok(wait) => End::Reschedule(
            now + chrono::Duration::microseconds((wait.max(0.0) * 1e6).min(1e17) as i64),
        ),
        Err(end) => end,
    }
}

/// Renders every string in a templated argument (lists and mappings walked), as Airflow
/// renders a template field's nested values.
fn render_value(
    v: &Value,
    tctx: &template::Context,
    lookup: &dyn template::Lookup,
    deadline: Option<Instant>,
) -> Result<Value, RenderError> {
    let mut go_on = || std::ops::ControlFlow::Continue(());
    Ok(match v {
        Value::String(s) => Value::String(template::render_within(
            s, tctx, lookup, deadline, &mut go_on,
        )?),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|x| render_value(x, tctx, lookup, deadline))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, x)| Ok((k.clone(), render_value(x, tctx, lookup, deadline)?)))
                .collect::<Result<_, RenderError>>()?,
        ),
        other => other.clone(),
    })
}

fn arg_str<'a>(args: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    args.get(key).and_then(Value::as_str)
}

fn run_time(cx: &PokeCx, key: &str) -> Option<DateTime<Utc>> {
    cx.ctx["dag_run"][key]
        .as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// FileSensor: a file matching `filepath` (a glob, `**` across folders with
/// `recursive`) below the `fs_conn_id` connection's `path`, or a matching folder with a
/// file somewhere in it.
fn poke_file(cx: &mut PokeCx, args: &Map<String, Value>) -> Result<Poke, PokeError> {
    let filepath = arg_str(args, "filepath")
        .ok_or_else(|| PokeError::Error("filepath must be a string".into()))?;
    let conn_id = arg_str(args, "fs_conn_id").unwrap_or("fs_default");
    let recursive = args
        .get("recursive")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    // FSHook: the connection's extra `path` ("" when the default connection is absent).
    let base = match cx.client.connection(conn_id) {
        Ok(Some(c)) => fs_base(&c),
        Ok(None) if conn_id == "fs_default" => String::new(),
        Ok(None) => {
            return Err(PokeError::Error(format!(
                "AirflowNotFoundException: The conn_id `{conn_id}` isn't defined"
            )));
        }
        Err(e) => return Err(PokeError::Error(format!("cannot read {conn_id}: {e}"))),
    };
    let full = join_like_python(&base, filepath);
    cx.log.line(&format!("Poking for file {full}"));
    Ok(if file_found(&full, recursive) {
        Poke::Done(None)
    } else {
        Poke::NotYet
    })
}

/// HttpSensor: the `http_conn_id` connection (`http_default`), then one request.
fn poke_http(cx: &mut PokeCx, args: &Map<String, Value>) -> Result<Poke, PokeError> {
    let conn_id = arg_str(args, "http_conn_id").unwrap_or("http_default");
    let conn = super::operators::connection(cx.client, conn_id).map_err(PokeError::Error)?;
    let log = std::cell::RefCell::new(&mut *cx.log);
    let (sv, ctx, ti_id, client) = (cx.sv, cx.ctx, cx.ti_id, cx.client);
    super::operators::http::poke_http(
        args,
        Some(&conn),
        &mut |l| log.borrow_mut().line(l),
        &mut |invoke| {
            super::supervise::invoke_python(sv, ctx, ti_id, client, invoke, &mut log.borrow_mut())
        },
    )
}

/// SqlSensor: its `conn_id` connection (a SQLite file), then the query.
fn poke_sql(cx: &mut PokeCx, args: &Map<String, Value>) -> Result<Poke, PokeError> {
    let conn_id = arg_str(args, "conn_id").unwrap_or("");
    let conn = super::operators::connection(cx.client, conn_id).map_err(PokeError::Error)?;
    let log = std::cell::RefCell::new(&mut *cx.log);
    let (sv, ctx, ti_id, client) = (cx.sv, cx.ctx, cx.ti_id, cx.client);
    super::operators::sql::poke_sql(
        args,
        &conn,
        &mut |l| log.borrow_mut().line(l),
        &mut |invoke| {
            super::supervise::invoke_python(sv, ctx, ti_id, client, invoke, &mut log.borrow_mut())
        },
    )
}

/// An `fs` connection's base path: its extra's `path`.
fn fs_base(conn: &Value) -> String {
    let extra = &conn["extra"];
    let parsed: Option<Value> = match extra {
        Value::String(s) => serde_json::from_str(s).ok(),
        Value::Object(_) => Some(extra.clone()),
        _ => None,
    };
    parsed
        .and_then(|e| e["path"].as_str().map(str::to_string))
        .unwrap_or_default()
}

/// `os.path.join(base, path)`: an absolute `path` replaces the base.
fn join_like_python(base: &str, path: &str) -> String {
    if base.is_empty() || std::path::Path::new(path).is_absolute() {
        return path.to_string();
    }
    let sep = std::path::MAIN_SEPARATOR;
    if base.ends_with('/') || base.ends_with(sep) {
        format!("{base}{path}")
    } else {
        format!("{base}{sep}{path}")
    }
}

/// Python's `glob(pattern, recursive=...)` then FileSensor's test: a file, or a folder
/// holding a file at any depth. Without `recursive`, `**` is a plain `*`.
pub fn file_found(pattern: &str, recursive: bool) -> bool {
    let pattern = if recursive {
        pattern.to_string()
    } else {
        pattern.replace("**", "*")
    };
    let opts = glob::MatchOptions {
        case_sensitive: !cfg!(windows),
        require_literal_separator: true,
        require_literal_leading_dot: true,
    };
    let Ok(paths) = glob::glob_with(&pattern, opts) else {
        return false;
    };
    paths.flatten().any(|p| {
        if p.is_file() {
            return true;
        }
        p.is_dir() && dir_has_file(&p, 64)
    })
}

fn dir_has_file(dir: &std::path::Path, depth: u32) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    let mut subdirs = Vec::new();
    for e in entries.flatten() {
        match e.file_type() {
            Ok(t) if t.is_dir() => subdirs.push(e.path()),
            Ok(_) => return true,
            Err(_) => {}
        }
    }
    depth > 0 && subdirs.iter().any(|d| dir_has_file(d, depth - 1))
}

/// TimeDeltaSensor: done once `delta` has passed since the run's `data_interval_end`
/// (or its `run_after`). An int `delta` is minutes.
fn poke_time_delta(cx: &mut PokeCx, args: &Map<String, Value>) -> Result<Poke, PokeError> {
    let secs = match args.get("delta_secs").and_then(Value::as_f64) {
        Some(s) => s,
        None => match args.get("delta") {
            Some(Value::String(s)) => {
                s.trim()
                    .parse::<f64>()
                    .map(|m| m.trunc() * 60.0)
                    .map_err(|_| {
                        PokeError::Error(format!(
                            "ValueError: invalid literal for int() with base 10: {s:?}"
                        ))
                    })?
            }
            Some(v) => v.as_f64().map(|m| m.trunc() * 60.0).ok_or_else(|| {
                PokeError::Error(format!("TypeError: delta must be a timedelta, not {v}"))
            })?,
            None => return Err(PokeError::Error("delta is missing".into())),
        },
    };
    let base = run_time(cx, "data_interval_end")
        .or_else(|| run_time(cx, "run_after"))
        .ok_or_else(|| PokeError::Error("`dag_run` not found in task context".into()))?;
    let target = base + chrono::Duration::microseconds((secs * 1e6) as i64);
    cx.log.line(&format!(
        "Checking if the delta has elapsed base_time={}, delta={secs} s",
        crate::store::ts(base)
    ));
    Ok(if cx.clock.now() > target {
        Poke::Done(None)
    } else {
        Poke::NotYet
    })
}

/// TimeSensor: done once `target_time` (a time of day in the DAG's time zone) has passed
/// on the day the sensor started waiting.
fn poke_time(cx: &mut PokeCx, args: &Map<String, Value>) -> Result<Poke, PokeError> {
    let text = arg_str(args, "target_time")
        .ok_or_else(|| PokeError::Error("target_time must be a time such as 10:30:00".into()))?;
    let time = ["%H:%M:%S%.f", "%H:%M:%S", "%H:%M"]
        .iter()
        .find_map(|f| NaiveTime::parse_from_str(text.trim(), f).ok())
        .ok_or_else(|| {
            PokeError::Error(format!(
                "target_time must be a time of day (HH:MM[:SS]), not {text:?}"
            ))
        })?;
    let zone = cx.ctx["dag_timezone"]
        .as_str()
        .and_then(Zone::parse)
        .unwrap_or_default();
    let day = zone.local(cx.started).date();
    let target = zone
        .instant(day.and_time(time))
        .ok_or_else(|| PokeError::Error(format!("{text} does not exist on {day}")))?;
    cx.log.line(&format!(
        "Checking if the time ({}) has come",
        crate::store::ts(target)
    ));
    Ok(if cx.clock.now() > target {
        Poke::Done(None)
    } else {
        Poke::NotYet
    })
}

/// DateTimeSensor: done once `target_time` (an ISO date-time; UTC when it names no
/// zone) has passed.
fn poke_date_time(cx: &mut PokeCx, args: &Map<String, Value>) -> Result<Poke, PokeError> {
    let text = arg_str(args, "target_time").ok_or_else(|| {
        PokeError::Error(
            "TypeError: Expected str or datetime.datetime type for target_time.".into(),
        )
    })?;
    let target = parse_moment(text)
        .ok_or_else(|| PokeError::Error(format!("ParserError: Unable to parse string [{text}]")))?;
    cx.log
        .line(&format!("Checking if the time ({text}) has come"));
    Ok(if cx.clock.now() > target {
        Poke::Done(None)
    } else {
        Poke::NotYet
    })
}

/// `timezone.parse`: RFC 3339 / ISO 8601 with an offset, or naive (read as UTC), or a
/// date alone (midnight).
pub fn parse_moment(text: &str) -> Option<DateTime<Utc>> {
    let t = text.trim();
    if let Ok(d) = DateTime::parse_from_rfc3339(t) {
        return Some(d.with_timezone(&Utc));
    }
    for f in [
        "%Y-%m-%dT%H:%M:%S%.f%:z",
        "%Y-%m-%d %H:%M:%S%.f%:z",
        "%Y-%m-%dT%H:%M:%S%.f%z",
    ] {
        if let Ok(d) = DateTime::parse_from_str(t, f) {
            return Some(d.with_timezone(&Utc));
        }
    }
    for f in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(d) = chrono::NaiveDateTime::parse_from_str(t, f) {
            return Some(d.and_utc());
        }
    }
    chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|d| d.and_utc())
}

/// ExternalTaskSensor, as Airflow 3's `_poke_af3`: counts through the Execution API the
/// external task instances (or the group's runs, or the DAG's runs) at this run's logical
/// date less `execution_delta`; any in `failed_states` fails (skips with `soft_fail`),
/// any in `skipped_states` skips, and it is done when all are in `allowed_states`.
fn poke_external_task(cx: &mut PokeCx, args: &Map<String, Value>) -> Result<Poke, PokeError> {
    let dag_id = arg_str(args, "external_dag_id")
        .ok_or_else(|| PokeError::Error("external_dag_id must be a string".into()))?
        .to_string();
    let strings = |key: &str| -> Vec<String> {
        match args.get(key) {
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
                .collect(),
            Some(Value::String(s)) => vec![s.clone()],
            _ => Vec::new(),
        }
    };
    let mut task_ids = strings("external_task_ids");
    if let Some(id) = arg_str(args, "external_task_id") {
        task_ids = vec![id.to_string()];
    }
    let unique: std::collections::BTreeSet<&String> = task_ids.iter().collect();
    if unique.len() < task_ids.len() {
        return Err(PokeError::Error(
            "ValueError: Duplicate task_ids passed in external_task_ids parameter".into(),
        ));
    }
    let group = arg_str(args, "external_task_group_id").map(str::to_string);
    let mut allowed = strings("allowed_states");
    if allowed.is_empty() {
        allowed.push("success".into());
    }
    let skipped = strings("skipped_states");
    let failed = strings("failed_states");
    let logical = run_time(cx, "logical_date").ok_or_else(|| {
        PokeError::Error("ExternalTaskSensor needs a run with a logical date".into())
    })?;
    let delta = args
        .get("execution_delta_secs")
        .and_then(Value::as_f64)
        .unwrap_or(0.0);
    let date = logical - chrono::Duration::microseconds((delta * 1e6) as i64);
    let date_text = date.to_rfc3339_opts(chrono::SecondsFormat::Micros, false);
    match (&group, task_ids.is_empty()) {
        (Some(g), _) => cx.log.line(&format!(
            "Poking for task_group '{g}' in dag '{dag_id}' on {date_text} ... "
        )),
        (None, false) => cx.log.line(&format!(
            "Poking for tasks {task_ids:?} in dag {dag_id} on {date_text} ... "
        )),
        (None, true) => cx
            .log
            .line(&format!("Poking for DAG '{dag_id}' on {date_text} ... ")),
    }
    let api = |e| PokeError::Error(format!("cannot ask the Execution API: {e}"));
    let count = |states: &[String]| -> Result<f64, PokeError> {
        let mut q: Vec<(&str, String)> = vec![
            ("dag_id", dag_id.clone()),
            ("logical_dates", crate::store::ts(date)),
        ];
        if let Some(g) = &group {
            q.push(("task_group_id", g.clone()));
            let v = cx
                .client
                .get_with_query("task-instances/states", &q)
                .map_err(api)?;
            // Runs whose every group task is in `states` (Airflow's
            // `_get_count_by_matched_states`).
            let runs = v["task_states"].as_object().cloned().unwrap_or_default();
            return Ok(runs
                .values()
                .filter(|tasks| {
                    tasks.as_object().is_some_and(|m| {
                        !m.is_empty()
                            && m.values()
                                .all(|s| s.as_str().is_some_and(|s| states.iter().any(|x| x == s)))
                    })
                })
                .count() as f64);
        }
        q.extend(states.iter().map(|s| ("states", s.clone())));
        if task_ids.is_empty() {
            let v = cx
                .client
                .get_with_query("dag-runs/count", &q)
                .map_err(api)?;
            return Ok(v.as_f64().unwrap_or(0.0));
        }
        q.extend(task_ids.iter().map(|t| ("task_ids", t.clone())));
        let v = cx
            .client
            .get_with_query("task-instances/count", &q)
            .map_err(api)?;
        Ok(v.as_f64().unwrap_or(0.0) / task_ids.len() as f64)
    };
    let what = || match (&group, task_ids.is_empty()) {
        (Some(g), _) => format!("The external task_group '{g}' in DAG '{dag_id}'"),
        (None, false) => format!("Some of the external tasks {task_ids:?} in DAG {dag_id}"),
        (None, true) => format!("The external DAG {dag_id}"),
    };
    // Airflow's External*FailedError is a plain exception (retried, or swallowed by
    // silent_fail); the sensor skips on it itself with soft_fail.
    if !failed.is_empty() && count(&failed)? > 0.0 {
        return Err(if cx.soft_fail {
            PokeError::Skip(format!("{} failed. Skipping due to soft_fail.", what()))
        } else {
            PokeError::Error(format!("{} failed.", what()))
        });
    }
    if !skipped.is_empty() && count(&skipped)? > 0.0 {
        return Err(PokeError::Skip(format!(
            "{} reached a state in our states-to-skip-on list. Skipping.",
            what()
        )));
    }
    Ok(if count(&allowed)? == 1.0 {
        Poke::Done(None)
    } else {
        Poke::NotYet
    })
}

/// BashSensor: runs `bash_command` (its output into the log) in a fresh folder; exit 0
/// is done; with `retry_exit_code` that code is not yet and any other fails without
/// retry, without it any other code is not yet. `env`, when given, is the whole
/// environment, as Popen's.
fn poke_bash(cx: &mut PokeCx, args: &Map<String, Value>) -> Result<Poke, PokeError> {
    let command = arg_str(args, "bash_command")
        .ok_or_else(|| PokeError::Error("bash_command must be a string".into()))?;
    let env: Option<Vec<(String, String)>> = args.get("env").and_then(Value::as_object).map(|m| {
        m.iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.as_str().map_or_else(|| v.to_string(), str::to_string),
                )
            })
            .collect()
    });
    let retry_code = args.get("retry_exit_code").and_then(Value::as_i64);
    let dir = cx
        .sv
        .tries_dir
        .join(format!("bashsensor-{}", crate::ids::uuid7(cx.clock.now())));
    std::fs::create_dir_all(&dir)
        .map_err(|e| PokeError::Error(format!("cannot make {}: {e}", dir.display())))?;
    struct Gone(std::path::PathBuf);
    impl Drop for Gone {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let _gone = Gone(dir.clone());
    let mut vars = env.clone().unwrap_or_default();
    if env.is_none()
        && let Some(path) = &cx.sv.task_path
    {
        vars.push(("PATH".into(), path.to_string_lossy().into_owned()));
    }
    let log = cx.log.file().map_err(|e| PokeError::Error(e.to_string()))?;
    cx.log.line(&format!("Running command: {command}"));
    let spec = crate::process::Spec {
        shell: cx.sv.shell.clone(),
        script: command.to_string(),
        env: vars,
        inherit_env: env.is_none(),
        cwd: Some(dir.clone()),
        log,
        stdout: None,
    };
    let mut child = crate::process::spawn(spec)
        .map_err(|e| PokeError::Error(format!("cannot start the command: {e}")))?;
    // The command may run long: the try heartbeats meanwhile, and stops it when the
    // executor shuts down or the task instance was changed elsewhere.
    let mut beat = super::supervise::Beat::new(cx.sv);
    let exit = loop {
        match child.wait_timeout(super::supervise::TICK) {
            Ok(Some(exit)) => break exit,
            Ok(None) => match beat.tick(cx.client, cx.ti_id) {
                super::supervise::BeatSays::Go => {}
                _ => {
                    let _ = child.kill_tree(Duration::from_secs(5));
                    return Err(PokeError::Error(
                        "the command was stopped: the executor is shutting down or the task instance changed elsewhere".into(),
                    ));
                }
            },
            Err(e) => return Err(PokeError::Error(format!("waiting for the command: {e}"))),
        }
    };
    let code = exit.code();
    cx.log
        .line(&format!("Command exited with return code {code}"));
    match (code, retry_code) {
        (0, _) => Ok(Poke::Done(None)),
        (c, Some(r)) if i64::from(c) == r => Ok(Poke::NotYet),
        (c, Some(_)) => Err(PokeError::Fail(format!(
            "AirflowFailException: Command exited with return code {c}"
        ))),
        (_, None) => Ok(Poke::NotYet),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sensor(reschedule: bool, max_wait: Option<f64>) -> Sensor {
        Sensor {
            poke_interval_secs: 5.0,
            timeout_secs: 600.0,
            soft_fail: false,
            never_fail: false,
            silent_fail: false,
            reschedule,
            exponential_backoff: true,
            max_wait_secs: max_wait,
        }
    }

    /// The figures Airflow 3.3.2's `_get_next_poke_interval` gives for FileSensors of
    /// DAG `d` (poke_interval 5, timeout 600, exponential_backoff), read from the real
    /// class in `.venv-compat`: task `t` in poke mode started at monotonic 1234.5, task
    /// `r` in reschedule mode with max_wait 100 first rescheduled at 2026-01-01 12:00 UTC.
    #[test]
    fn exponential_backoff_matches_airflow() {
        let poke = sensor(false, None);
        for (count, want) in [
            (1, 2.0),
            (2, 5.0),
            (3, 19.0),
            (4, 29.0),
            (5, 75.0),
            (8, 592.0),
        ] {
            let got = next_poke_interval(&poke, ("d", "t", "1234.5"), 0.0, count);
            assert_eq!(got, want, "poke count {count}");
        }
        let started = chrono::DateTime::parse_from_rfc3339("2026-01-01T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(py_str(started), "2026-01-01 12:00:00+00:00");
        let resched = sensor(true, Some(100.0));
        for (duration, want) in [
            (0.0, 2.0),
            (7.0, 8.0),
            (30.0, 34.0),
            (200.0, 100.0),
            (595.5, 5.0),
        ] {
            let got = next_poke_interval(&resched, ("d", "r", &py_str(started)), duration, 1);
            assert_eq!(got, want, "after {duration} s");
        }
        // Without exponential_backoff: the interval, whatever max_wait says.
        let plain = Sensor {
            exponential_backoff: false,
            ..sensor(true, Some(1.0))
        };
        assert_eq!(next_poke_interval(&plain, ("d", "r", "x"), 50.0, 3), 5.0);
    }

    #[test]
    fn a_timeout_fails_or_skips_with_airflows_message() {
        let s = Sensor {
            timeout_secs: 1.0,
            ..sensor(true, None)
        };
        let End::State(state, Some(Value::String(m))) =
            after_not_done(&s, 1.5, || 0.0).unwrap_err()
        else {
            panic!("no timeout");
        };
        assert_eq!(state, "failed");
        assert_eq!(
            m,
            "Sensor has timed out; run duration of 1.5 seconds exceeds the specified timeout of 1.0."
        );
        let soft = Sensor {
            soft_fail: true,
            ..s.clone()
        };
        assert!(matches!(
            after_not_done(&soft, 1.5, || 0.0),
            Err(End::State("skipped", _))
        ));
        assert_eq!(after_not_done(&s, 0.5, || 7.0), Ok(7.0));
    }

    #[test]
    fn file_patterns_match_as_pythons_glob() {
        let dir = std::env::temp_dir().join(format!("updraft-filesensor-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("a").join("b")).unwrap();
        let p = |rel: &str| dir.join(rel).to_string_lossy().into_owned();
        assert!(!file_found(&p("*.csv"), false));
        std::fs::write(dir.join("a").join("b").join("x.csv"), "1").unwrap();
        assert!(!file_found(&p("*.csv"), false));
        // `**` crosses folders only with recursive.
        assert!(file_found(&p("**/*.csv"), true));
        assert!(!file_found(&p("**/*.csv"), false));
        // A folder matches when it holds a file at any depth.
        assert!(file_found(&p("a"), false));
        // Hidden files are not matched by `*`, as in Python.
        std::fs::write(dir.join(".hidden.txt"), "1").unwrap();
        assert!(!file_found(&p("*.txt"), false));
        assert!(file_found(&p(".hidden.txt"), false));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn moments_parse_as_airflows_timezone_parse() {
        let t = |s: &str| parse_moment(s).map(crate::store::ts);
        assert_eq!(
            t("2026-01-02T03:04:05+02:00").as_deref(),
            Some("2026-01-02T01:04:05.000000+00:00")
        );
        assert_eq!(
            t("2026-01-02 03:04:05").as_deref(),
            Some("2026-01-02T03:04:05.000000+00:00")
        );
        assert_eq!(
            t("2026-01-02").as_deref(),
            Some("2026-01-02T00:00:00.000000+00:00")
        );
        assert_eq!(t("soon"), None);
    }
}
