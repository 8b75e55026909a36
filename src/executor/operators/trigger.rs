//! TriggerDagRunOperator, as Airflow 3's task runner carries it out: the run is made
//! through the Execution API (`POST dag-runs/{dag_id}/{run_id}`; a run that exists is
//! cleared with `reset_dag_run`), its id pushed as the `trigger_run_id` XCom, and with
//! `wait_for_completion` its state polled every `poke_interval` until it is in
//! `allowed_states` or `failed_states`. `deferrable` waits the same way, in the
//! supervisor (no triggerer).

use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};

use super::{Done, OpEnv};
use crate::executor::client::CallError;

/// The moment a `logical_date` argument names: RFC 3339, or a naive date-time or a
/// date taken as UTC (Airflow's `timezone.parse`).
pub fn parse_date(text: &str) -> Option<DateTime<Utc>> {
    let t = text.trim();
    if let Ok(d) = DateTime::parse_from_rfc3339(t) {
        return Some(d.with_timezone(&Utc));
    }
    for f in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M:%S",
    ] {
        if let Ok(n) = chrono::NaiveDateTime::parse_from_str(t, f) {
            return Some(n.and_utc());
        }
    }
    chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|n| n.and_utc())
}

/// Python's `datetime.isoformat()` of a UTC moment (`+00:00`, microseconds when any).
fn iso(d: DateTime<Utc>) -> String {
    let fmt = if d.timestamp_subsec_micros() == 0 {
        SecondsFormat::Secs
    } else {
        SecondsFormat::Micros
    };
    d.to_rfc3339_opts(fmt, false)
}

fn states(v: Option<&Value>, default: &str) -> Vec<String> {
    match v {
        Some(Value::Array(items)) if !items.is_empty() => items
            .iter()
            .map(|s| s.as_str().map_or_else(|| s.to_string(), str::to_string))
            .collect(),
        _ => vec![default.to_string()],
    }
}

pub fn operator(args: &Map<String, Value>, env: &mut OpEnv) -> Done {
    let null = Value::Null;
    let get = |k: &str| args.get(k).unwrap_or(&null);
    let flag = |k: &str| match get(k) {
        Value::Bool(b) => *b,
        Value::String(s) => s.eq_ignore_ascii_case("true"),
        _ => false,
    };
    let Some(dag_id) = get("trigger_dag_id").as_str().map(str::to_string) else {
        return Done::Failed("trigger_dag_id must be a string".into());
    };
    let logical_date = match args.get("logical_date") {
        None => Some(env.now),
        Some(Value::Null) => None,
        Some(Value::String(s)) => match parse_date(s) {
            Some(d) => Some(d),
            None => {
                return Done::Failed(format!(
                    "logical_date {s:?} is not a date-time Airflow can parse"
                ));
            }
        },
        Some(other) => {
            return Done::Failed(format!("logical_date must be a date-time, not {other}"));
        }
    };
    let conf = match get("conf") {
        Value::Null => json!({}),
        Value::String(s) if s.trim().is_empty() => json!({}),
        Value::String(s) => match serde_json::from_str::<Value>(s) {
            Ok(v @ Value::Object(_)) => v,
            _ => return Done::Failed(format!("conf parameter should be JSON Serializable: {s}")),
        },
        v @ Value::Object(_) => v.clone(),
        other => return Done::Failed(format!("conf must be a mapping, not {other}")),
    };
    let run_after = logical_date.unwrap_or(env.now);
    let run_id = match get("trigger_run_id") {
        Value::String(s) if !s.is_empty() => s.clone(),
        _ => format!("manual__{}", iso(run_after)),
    };
    let reset = flag("reset_dag_run");
    let mut body = json!({"conf": conf, "reset_dag_run": reset});
    if let Some(d) = logical_date {
        body["logical_date"] = json!(iso(d));
    }
    if let Some(note) = get("note").as_str() {
        body["note"] = json!(note);
    }
    (env.log)(&format!(
        "Triggering Dag Run: trigger_dag_id={dag_id} run_id={run_id}"
    ));
    match env.client.trigger_dag_run(&dag_id, &run_id, &body) {
        Ok((200..=299, _)) => {}
        Ok((409, _)) if reset => {
            (env.log)("Dag Run already exists; Resetting Dag Run.");
            if let Err(e) = env.client.clear_dag_run(&dag_id, &run_id) {
                return Done::Failed(format!("could not clear {dag_id} {run_id}: {e}"));
            }
        }
        Ok((409, _)) if flag("skip_when_already_exists") => {
            return Done::Skipped(
                "Dag Run already exists, skipping task as skip_when_already_exists is set to True."
                    .into(),
            );
        }
        Ok((409, _)) => {
            return Done::Failed(format!(
                "Dag Run already exists, marking task as failed. dag_id={dag_id} run_id={run_id}"
            ));
        }
        Ok((status, v)) => {
            let detail = &v["detail"];
            let msg = detail["message"]
                .as_str()
                .map_or_else(|| detail.to_string(), str::to_string);
            return Done::Failed(format!("cannot trigger {dag_id} ({status}): {msg}"));
        }
        Err(e) => return Done::Failed(format!("cannot trigger {dag_id}: {e}")),
    }
    (env.log)(&format!(
        "Dag Run triggered successfully: trigger_dag_id={dag_id}"
    ));
    let s = |v: &Value| v.as_str().unwrap_or("").to_string();
    let run = &env.ctx["dag_run"];
    if let Err(e) = env.client.xcom_set(
        &s(&run["dag_id"]),
        &s(&run["run_id"]),
        &s(&env.ctx["task"]["task_id"]),
        "trigger_run_id",
        &json!(run_id),
        None,
    ) {
        return Done::Failed(format!("could not push the trigger_run_id XCom: {e}"));
    }
    let wait = match get("wait_for_completion") {
        Value::Bool(b) => *b,
        Value::String(s) => s.eq_ignore_ascii_case("true"),
        _ => false,
    };
    if !wait {
        if flag("deferrable") {
            (env.log)("Ignoring deferrable=True because wait_for_completion=False.");
        }
        return Done::Success(None);
    }
    if flag("deferrable") {
        (env.log)("deferrable: updraft waits in the supervisor (no triggerer), polling as below");
    }
    let allowed = states(args.get("allowed_states"), "success");
    let failed = match args.get("failed_states") {
        Some(Value::Array(_)) => states(args.get("failed_states"), "failed"),
        _ => vec!["failed".to_string()],
    };
    let poke = get("poke_interval").as_f64().unwrap_or(60.0).max(0.0);
    loop {
        (env.log)(&format!(
            "Waiting for dag run to complete execution in allowed state. dag_id={dag_id} run_id={run_id} allowed_state={allowed:?}"
        ));
        if let ControlFlow::Break(done) = pause(env, Duration::from_secs_f64(poke)) {
            return done;
        }
        let state = match env.client.dag_run_state(&dag_id, &run_id) {
            Ok(s) => s,
            Err(CallError::Status(status, v)) => {
                return Done::Failed(format!(
                    "cannot read the state of {dag_id} {run_id} ({status}): {v}"
                ));
            }
            Err(e) => {
                return Done::Failed(format!("cannot read the state of {dag_id} {run_id}: {e}"));
            }
        };
        if failed.contains(&state) {
            return Done::Failed(format!("{dag_id} failed with failed state {state}"));
        }
        if allowed.contains(&state) {
            (env.log)(&format!(
                "DagRun finished with allowed state. dag_id={dag_id} state={state}"
            ));
            return Done::Success(None);
        }
    }
}

/// Waits `how_long`, heartbeating; stops early (with the outcome) when the executor
/// stops, the task is no longer ours, or `execution_timeout` runs out.
pub fn pause(env: &mut OpEnv, how_long: Duration) -> ControlFlow<Done> {
    let until = Instant::now() + how_long;
    loop {
        if (env.beat)().is_break() {
            return ControlFlow::Break(Done::Stopped);
        }
        let now = Instant::now();
        if env.deadline.is_some_and(|d| now >= d) {
            return ControlFlow::Break(Done::Failed("execution_timeout reached".into()));
        }
        if now >= until {
            return ControlFlow::Continue(());
        }
        std::thread::sleep((until - now).min(Duration::from_millis(50)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_parse_as_airflow_reads_them() {
        let d = parse_date("2024-01-02").unwrap();
        assert_eq!(iso(d), "2024-01-02T00:00:00+00:00");
        assert_eq!(
            iso(parse_date("2024-01-02T03:04:05+01:00").unwrap()),
            "2024-01-02T02:04:05+00:00"
        );
        assert!(parse_date("soon").is_none());
    }
}
