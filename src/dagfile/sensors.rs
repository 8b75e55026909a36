//! Sensors in DAG files: `BaseSensorOperator`'s settings (shared with PythonSensor and
//! `@task.sensor`), and the native sensors' import paths and arguments.
//!
//! A native sensor keeps its own arguments as JSON (`NativeSensor::args`); the supervisor
//! renders the kind's `template_fields` per try and hands them to the kind's poke
//! (`executor/sensor.rs`). What can be checked without the run's context is checked here.

use super::Ctx;
use super::tasks::Item;
use super::values;
use super::yaml::{Node, Value};
use crate::model::{NativeSensor, Sensor, SensorKind};

/// Every path Airflow 3's standard provider and Airflow 2 (`airflow.sensors.*`) import
/// each native sensor by. The `*Async` classes are the deferrable forms: run as reschedule.
pub(super) const NATIVE_SENSORS: &[(&str, SensorKind)] = &[
    (
        "airflow.providers.standard.sensors.filesystem.FileSensor",
        SensorKind::File,
    ),
    ("airflow.sensors.filesystem.FileSensor", SensorKind::File),
    (
        "airflow.providers.standard.sensors.time_delta.TimeDeltaSensor",
        SensorKind::TimeDelta,
    ),
    (
        "airflow.providers.standard.sensors.time_delta.TimeDeltaSensorAsync",
        SensorKind::TimeDelta,
    ),
    (
        "airflow.sensors.time_delta.TimeDeltaSensor",
        SensorKind::TimeDelta,
    ),
    (
        "airflow.sensors.time_delta.TimeDeltaSensorAsync",
        SensorKind::TimeDelta,
    ),
    (
        "airflow.sensors.time_delta_sensor.TimeDeltaSensor",
        SensorKind::TimeDelta,
    ),
    (
        "airflow.providers.standard.sensors.time.TimeSensor",
        SensorKind::Time,
    ),
    (
        "airflow.providers.standard.sensors.time.TimeSensorAsync",
        SensorKind::Time,
    ),
    ("airflow.sensors.time_sensor.TimeSensor", SensorKind::Time),
    (
        "airflow.sensors.time_sensor.TimeSensorAsync",
        SensorKind::Time,
    ),
    (
        "airflow.providers.standard.sensors.date_time.DateTimeSensor",
        SensorKind::DateTime,
    ),
    (
        "airflow.providers.standard.sensors.date_time.DateTimeSensorAsync",
        SensorKind::DateTime,
    ),
    (
        "airflow.sensors.date_time.DateTimeSensor",
        SensorKind::DateTime,
    ),
    (
        "airflow.sensors.date_time.DateTimeSensorAsync",
        SensorKind::DateTime,
    ),
    (
        "airflow.sensors.date_time_sensor.DateTimeSensor",
        SensorKind::DateTime,
    ),
    (
        "airflow.providers.standard.sensors.external_task.ExternalTaskSensor",
        SensorKind::ExternalTask,
    ),
    (
        "airflow.sensors.external_task.ExternalTaskSensor",
        SensorKind::ExternalTask,
    ),
    (
        "airflow.sensors.external_task_sensor.ExternalTaskSensor",
        SensorKind::ExternalTask,
    ),
    (
        "airflow.providers.standard.sensors.bash.BashSensor",
        SensorKind::Bash,
    ),
    ("airflow.sensors.bash.BashSensor", SensorKind::Bash),
    ("airflow.sensors.bash_sensor.BashSensor", SensorKind::Bash),
    (
        "airflow.providers.http.sensors.http.HttpSensor",
        SensorKind::Http,
    ),
    ("airflow.sensors.http_sensor.HttpSensor", SensorKind::Http),
    (
        "airflow.providers.common.sql.sensors.sql.SqlSensor",
        SensorKind::Sql,
    ),
    ("airflow.sensors.sql.SqlSensor", SensorKind::Sql),
    ("airflow.sensors.sql_sensor.SqlSensor", SensorKind::Sql),
];

/// What `BaseSensorOperator` takes (`deferrable` is the deferrable sensors' own; updraft
/// runs it as reschedule).
pub(super) const SENSOR_ARGS: &[&str] = &[
    "poke_interval",
    "timeout",
    "soft_fail",
    "mode",
    "exponential_backoff",
    "max_wait",
    "silent_fail",
    "never_fail",
];

/// Airflow's `State.task_states` less `None`, and `State.dag_states`: what
/// ExternalTaskSensor's state lists may hold.
const TASK_STATES: &[&str] = crate::model::AIRFLOW_TI_STATES;
const DAG_STATES: &[&str] = &["queued", "success", "running", "failed"];

/// Airflow's `[sensors] default_timeout`: 7 days.
const DEFAULT_SENSOR_TIMEOUT_SECS: f64 = 604_800.0;

/// The native sensor an operator path names, if any.
pub(super) fn kind_of(path: &str) -> Option<SensorKind> {
    NATIVE_SENSORS
        .iter()
        .find(|(p, _)| *p == path)
        .map(|&(_, k)| k)
}

/// A kind's own arguments (its `__init__`'s, less `BaseSensorOperator`'s).
pub(super) fn own_args(kind: SensorKind) -> &'static [&'static str] {
    match kind {
        SensorKind::File => &[
            "filepath",
            "fs_conn_id",
            "recursive",
            "deferrable",
            "start_from_trigger",
            "trigger_kwargs",
        ],
        SensorKind::TimeDelta => &["delta", "deferrable", "end_from_trigger"],
        SensorKind::Time => &[
            "target_time",
            "deferrable",
            "start_from_trigger",
            "end_from_trigger",
            "trigger_kwargs",
        ],
        SensorKind::DateTime => &["target_time", "deferrable", "end_from_trigger"],
        SensorKind::ExternalTask => &[
            "external_dag_id",
            "external_task_id",
            "external_task_ids",
            "external_task_group_id",
            "allowed_states",
            "skipped_states",
            "failed_states",
            "execution_delta",
            "execution_date_fn",
            "check_existence",
            "poll_interval",
            "deferrable",
        ],
        SensorKind::Bash => &["bash_command", "env", "output_encoding", "retry_exit_code"],
        SensorKind::Http => &[
            "endpoint",
            "http_conn_id",
            "method",
            "request_params",
            "headers",
            "extra_options",
            "response_error_codes_allowlist",
            "response_check",
            "response_check_name",
            "response_check_file",
            "response_check_lambda",
            "tcp_keep_alive",
            "tcp_keep_alive_idle",
            "tcp_keep_alive_count",
            "tcp_keep_alive_interval",
            "deferrable",
        ],
        SensorKind::Sql => &[
            "conn_id",
            "sql",
            "parameters",
            "fail_on_empty",
            "hook_params",
            "success",
            "failure",
            "selector",
            // dag-factory's forms of the callables (`operators::callable`).
            "success_name",
            "success_file",
            "success_lambda",
            "failure_name",
            "failure_file",
            "failure_lambda",
            "selector_name",
            "selector_file",
            "selector_lambda",
        ],
    }
}

/// A sensor's settings from the first of `layers` that sets each, with
/// `BaseSensorOperator`'s defaults. `deferrable: true` runs as `mode: reschedule`.
pub(super) fn settings(cx: &mut Ctx, layers: &[&Node], pos_of: &Node) -> Sensor {
    let flag = |cx: &mut Ctx, key: &str| cx.get(layers, key, Node::boolean).unwrap_or(false);
    let mode = |n: &Node, key: &str| {
        let m = n.string(key)?;
        match m.as_str() {
            "poke" | "reschedule" => Ok(m),
            _ => Err(n.pos.error(format!(
                "The mode must be one of ['poke', 'reschedule']; received '{m}'."
            ))),
        }
    };
    let mode = cx.get(layers, "mode", mode);
    let sensor = Sensor {
        poke_interval_secs: cx
            .get(layers, "poke_interval", values::timedelta)
            .unwrap_or(60.0),
        timeout_secs: cx
            .get(layers, "timeout", values::timedelta)
            .unwrap_or(DEFAULT_SENSOR_TIMEOUT_SECS),
        soft_fail: flag(cx, "soft_fail"),
        never_fail: flag(cx, "never_fail"),
        silent_fail: flag(cx, "silent_fail"),
        reschedule: mode.as_deref() == Some("reschedule") || flag(cx, "deferrable"),
        exponential_backoff: flag(cx, "exponential_backoff"),
        max_wait_secs: cx.get(layers, "max_wait", values::timedelta),
    };
    if sensor.soft_fail && sensor.never_fail {
        let pos = pos_of.field("never_fail").map_or(pos_of.pos, |n| n.pos);
        cx.errors.push(
            pos.error("soft_fail and never_fail are mutually exclusive, you can not provide both."),
        );
    }
    sensor
}

/// A native sensor's settings and arguments, with what Airflow's `__init__` checks.
pub(super) fn native(
    cx: &mut Ctx,
    item: &Item,
    layers: &[&Node],
    kind: SensorKind,
) -> NativeSensor {
    let settings = settings(cx, layers, item.cfg);
    let mut args = serde_json::Map::new();
    for &key in own_args(kind) {
        if let Some(n) = layers.iter().find_map(|l| l.field(key))
            && n.value != Value::Null
        {
            args.insert(key.to_string(), n.to_json());
        }
    }
    let required: &[&str] = match kind {
        SensorKind::File => &["filepath"],
        SensorKind::TimeDelta => &["delta"],
        SensorKind::Time | SensorKind::DateTime => &["target_time"],
        SensorKind::ExternalTask => &["external_dag_id"],
        SensorKind::Bash => &["bash_command"],
        SensorKind::Http => &["endpoint"],
        SensorKind::Sql => &["conn_id", "sql"],
    };
    // Callables run with the Python runner on what the native poke got.
    let callables: &[&str] = match kind {
        SensorKind::Http => &["response_check"],
        SensorKind::Sql => &["success", "failure", "selector"],
        _ => &[],
    };
    for &key in callables {
        for form in ["_name", "_file", "_lambda"] {
            args.remove(&format!("{key}{form}"));
        }
        args.remove(key);
        if let Some(r) = super::operators::callable(cx, layers, key, &item.name) {
            args.insert(key.to_string(), r);
        }
    }
    for key in required {
        if !args.contains_key(*key) {
            cx.errors.push(item.pos.error(format!(
                "task `{}`: {}.__init__() missing 1 required keyword-only argument: '{key}'",
                item.name,
                kind.class_name()
            )));
        }
    }
    // Durations given as dag-factory's timedelta mapping (or seconds) are kept in seconds.
    let durations: &[&str] = match kind {
        SensorKind::ExternalTask => &["execution_delta"],
        _ => &[],
    };
    for &key in durations {
        if let Some(n) = item.cfg.field(key).filter(|n| n.value != Value::Null)
            && let Some(secs) = cx.ok(signed_seconds(n, key))
        {
            args.insert(format!("{key}_secs"), serde_json::json!(secs));
        }
    }
    if kind == SensorKind::TimeDelta
        && let Some(n) = layers.iter().find_map(|l| l.field("delta"))
    {
        // An int is minutes (`timedelta(minutes=int(value))`); a timedelta mapping is
        // itself; a string is a template, rendered and read as minutes per try.
        match &n.value {
            Value::Int(m) => {
                args.insert("delta_secs".into(), serde_json::json!(*m as f64 * 60.0));
            }
            Value::Str(_) => {}
            _ => {
                if let Some(secs) = cx.ok(values::timedelta(n, "delta")) {
                    args.insert("delta_secs".into(), serde_json::json!(secs));
                }
            }
        }
    }
    if kind == SensorKind::ExternalTask {
        let has = |k: &str| args.get(k).is_some_and(|v| !v.is_null());
        if has("external_task_id") && has("external_task_ids") {
            cx.errors.push(item.pos.error(
                "Only one of `external_task_id` or `external_task_ids` may be provided to ExternalTaskSensor; use external_task_id or external_task_ids or external_task_group_id.",
            ));
        }
        if has("external_task_group_id") && (has("external_task_id") || has("external_task_ids")) {
            cx.errors.push(item.pos.error(
                "Only one of `external_task_group_id` or `external_task_ids` may be provided to ExternalTaskSensor; use external_task_id or external_task_ids or external_task_group_id.",
            ));
        }
        // Airflow's checks of the state lists: no state twice, and states of the target
        // (task instance states for tasks or a group, run states for a whole DAG).
        let list = |k: &str| -> Vec<String> {
            match args.get(k) {
                Some(serde_json::Value::Array(items)) => items
                    .iter()
                    .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
                    .collect(),
                _ => Vec::new(),
            }
        };
        let mut allowed = list("allowed_states");
        if allowed.is_empty() {
            allowed.push("success".into());
        }
        let all: Vec<String> = [allowed, list("skipped_states"), list("failed_states")].concat();
        let unique: std::collections::BTreeSet<&String> = all.iter().collect();
        if unique.len() != all.len() {
            cx.errors.push(item.pos.error(
                "DuplicateStateError: Duplicate values provided across allowed_states, skipped_states and failed_states.",
            ));
        }
        let on_tasks =
            has("external_task_id") || has("external_task_ids") || has("external_task_group_id");
        let valid: &[&str] = if on_tasks { TASK_STATES } else { DAG_STATES };
        if all.iter().any(|st| !valid.contains(&st.as_str())) {
            cx.errors.push(item.pos.error(if on_tasks {
                format!(
                    "Valid values for `allowed_states`, `skipped_states` and `failed_states` when `external_task_id` or `external_task_ids` or `external_task_group_id` is not `None`: {}",
                    valid.join(", ")
                )
            } else {
                format!(
                    "Valid values for `allowed_states`, `skipped_states` and `failed_states` when `external_task_id` and `external_task_group_id` is `None`: {}",
                    valid.join(", ")
                )
            }));
        }
        if has("execution_delta") && has("execution_date_fn") {
            cx.errors.push(item.pos.error(
                "Only one of `execution_delta` or `execution_date_fn` may be provided to ExternalTaskSensor; not both.",
            ));
        }
        if has("execution_date_fn") {
            cx.errors.push(item.pos.error(format!(
                "task `{}`: updraft's ExternalTaskSensor does not call Python; give `execution_delta` instead of `execution_date_fn`",
                item.name
            )));
        }
    }
    NativeSensor { settings, args }
}

/// A timedelta argument as signed seconds: a number, or dag-factory's timedelta mapping.
fn signed_seconds(n: &Node, key: &str) -> Result<f64, super::ImportError> {
    match &n.value {
        Value::Int(i) => Ok(*i as f64),
        Value::Float(f) => Ok(*f),
        _ => values::signed_timedelta(n, key),
    }
}

#[cfg(test)]
mod tests {
    use crate::model::{Operator, SensorKind};

    fn parse(tasks: &str) -> crate::dagfile::FileParse {
        let yaml = format!("d:\n  default_args:\n    start_date: 2024-01-01\n  tasks:\n{tasks}");
        crate::dagfile::parse(
            "dags/test.yml",
            &yaml,
            "2025-06-15T13:45:00Z".parse().unwrap(),
        )
    }

    fn errors(tasks: &str) -> Vec<String> {
        parse(tasks).errors.into_iter().map(|e| e.message).collect()
    }

    #[test]
    fn sensors_parse_by_every_path_with_airflows_checks() {
        let ok = parse(
            "    - task_id: f\n      operator: airflow.sensors.filesystem.FileSensor\n      filepath: a/*.csv\n      deferrable: true\n      poke_interval: 5\n      max_wait: {__type__: datetime.timedelta, minutes: 1}\n",
        );
        assert!(ok.errors.is_empty(), "{:?}", ok.errors);
        let t = &ok.dags[0].tasks[0];
        assert_eq!(t.operator, Operator::Sensor(SensorKind::File));
        let s = t.sensor.as_ref().unwrap();
        assert!(s.settings.reschedule, "deferrable runs as reschedule");
        assert_eq!(s.settings.max_wait_secs, Some(60.0));
        assert_eq!(s.args["filepath"], "a/*.csv");
        let ext = "      operator: airflow.providers.standard.sensors.external_task.ExternalTaskSensor\n      external_dag_id: other\n";
        let e = errors(&format!(
            "    - task_id: e\n{ext}      external_task_id: t\n      allowed_states: [success]\n      failed_states: [success]\n"
        ));
        assert!(e[0].starts_with("DuplicateStateError"), "{e:?}");
        let e = errors(&format!(
            "    - task_id: e\n{ext}      allowed_states: [skipped]\n"
        ));
        assert!(
            e[0].contains("when `external_task_id` and `external_task_group_id` is `None`"),
            "{e:?}"
        );
        let e = errors(&format!(
            "    - task_id: e\n{ext}      external_task_id: a\n      external_task_ids: [b]\n"
        ));
        assert!(
            e[0].starts_with("Only one of `external_task_id` or `external_task_ids`"),
            "{e:?}"
        );
        let e = errors(
            "    - task_id: b\n      operator: airflow.sensors.bash.BashSensor\n      mode: sometimes\n",
        );
        assert!(
            e.iter()
                .any(|m| m.contains("missing 1 required keyword-only argument: 'bash_command'")),
            "{e:?}"
        );
        assert!(
            e.iter()
                .any(|m| m.contains("The mode must be one of ['poke', 'reschedule']")),
            "{e:?}"
        );
    }

    #[test]
    fn sensor_callables_are_kept_in_dag_factorys_forms() {
        let http =
            "      operator: airflow.providers.http.sensors.http.HttpSensor\n      endpoint: e\n";
        let sql = "      operator: airflow.providers.common.sql.sensors.sql.SqlSensor\n      conn_id: db\n      sql: SELECT 1\n";
        let p = parse(&format!(
            "    - task_id: a\n{http}      response_check: lib.ok\n    - task_id: b\n{http}      response_check_name: ok\n      response_check_file: /x/lib.py\n    - task_id: c\n{http}      response_check_lambda: 'lambda r: r.ok'\n    - task_id: d\n{sql}      selector: lib.sel\n      failure_name: bad\n      failure_file: /x/lib.py\n      success_lambda: 'lambda v: v'\n"
        ));
        assert!(p.errors.is_empty(), "{:?}", p.errors);
        let args = |i: usize| p.dags[0].tasks[i].sensor.as_ref().unwrap().args.clone();
        assert_eq!(
            args(0)["response_check"],
            serde_json::json!({"callable": "lib.ok", "file": null})
        );
        assert_eq!(
            args(1)["response_check"],
            serde_json::json!({"callable": "ok", "file": "/x/lib.py"})
        );
        assert!(!args(1).contains_key("response_check_name"));
        assert_eq!(
            args(2)["response_check"],
            serde_json::json!({"lambda": "lambda r: r.ok"})
        );
        let d = args(3);
        assert_eq!(
            d["selector"],
            serde_json::json!({"callable": "lib.sel", "file": null})
        );
        assert_eq!(
            d["failure"],
            serde_json::json!({"callable": "bad", "file": "/x/lib.py"})
        );
        assert_eq!(d["success"], serde_json::json!({"lambda": "lambda v: v"}));
        let e = errors(&format!(
            "    - task_id: a\n{http}      response_check: ok\n    - task_id: b\n{sql}      success_name: ok\n    - task_id: c\n{sql}      failure_name: ok\n      failure_file: lib.py\n"
        ));
        assert_eq!(e.len(), 3, "{e:?}");
        assert!(
            e[0].contains(
                "`response_check` must be a dotted path such as `module.function`, not `ok`"
            ),
            "{e:?}"
        );
        assert!(
            e[1].contains("task `b` needs both `success_name` and `success_file`"),
            "{e:?}"
        );
        assert!(
            e[2].contains("`failure_file` must be an absolute path, not `lib.py`"),
            "{e:?}"
        );
    }
}
