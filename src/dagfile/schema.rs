//! A JSON Schema of the accepted format, for editor autocomplete and hover help.
//!
//! It describes what `dagfile` reads; it does not drive the parser, which stays the one
//! authority (a schema cannot say "unknown cron field" with a line number). Objects keep
//! `additionalProperties` open wherever the parser ignores unknown keys.

use serde_json::{Value, json};

/// A JSON Schema (draft 2020-12) of a dag-factory file as updraft reads it.
pub fn schema() -> Value {
    let timedelta = json!({
        "type": "object",
        "description": "A Python datetime.timedelta",
        "required": ["__type__"],
        "properties": {
            "__type__": { "const": "datetime.timedelta" },
            "__args__": { "type": "array", "items": { "type": "number" }, "maxItems": 7 },
            "weeks": { "type": "number" },
            "days": { "type": "number" },
            "hours": { "type": "number" },
            "minutes": { "type": "number" },
            "seconds": { "type": "number" },
            "milliseconds": { "type": "number" },
            "microseconds": { "type": "number" }
        },
        "additionalProperties": false
    });
    let relativedelta = json!({
        "type": "object",
        "description": "A dateutil relativedelta (its relative arguments)",
        "required": ["__type__"],
        "properties": {
            "__type__": { "const": "dateutil.relativedelta.relativedelta" },
            "years": { "type": "integer" },
            "months": { "type": "integer" },
            "weeks": { "type": "integer" },
            "days": { "type": "integer" },
            "hours": { "type": "integer" },
            "minutes": { "type": "integer" },
            "seconds": { "type": "integer" },
            "microseconds": { "type": "integer" }
        },
        "additionalProperties": false
    });
    let timetable_types: Vec<&str> = super::values::TIMETABLE_CLASSES.to_vec();
    let timetable = json!({
        "type": "object",
        "description": "An Airflow timetable, built as dag-factory builds it: positional arguments in __args__, the rest by name (cron or expression, timezone, interval, run_immediately, delta, event_dates, restrict_to_events, description)",
        "required": ["__type__"],
        "properties": {
            "__type__": { "enum": timetable_types },
            "__args__": { "type": "array" },
            "cron": { "type": "string" },
            "expression": { "type": "string" },
            "timezone": { "$ref": "#/$defs/timezone" },
            "interval": { "$ref": "#/$defs/delta" },
            "run_immediately": { "oneOf": [{ "type": "boolean" }, { "$ref": "#/$defs/timedelta" }] },
            "delta": { "$ref": "#/$defs/delta" },
            "event_dates": { "type": "array", "items": { "type": "string", "description": "A date and time with an offset" } },
            "restrict_to_events": { "type": "boolean" },
            "presorted": { "type": "boolean" },
            "description": { "type": "string" }
        },
        "additionalProperties": false
    });
    let duration = json!({
        "oneOf": [
            { "type": "number", "minimum": 0, "description": "Seconds" },
            { "$ref": "#/$defs/timedelta" }
        ]
    });
    let date = json!({
        "type": "string",
        "description": "2024-01-01, 2024-01-01T06:00:00 (optionally with Z or +02:00), or a time before today such as '3 days'"
    });
    let names = json!({ "type": "array", "items": { "type": "string" } });
    let string = json!({ "type": "string" });
    let boolean = json!({ "type": "boolean" });
    let count = json!({ "type": "integer", "minimum": 0 });
    let trigger_rules: Vec<&str> = crate::model::TriggerRule::ALL
        .iter()
        .map(|r| r.as_str())
        .collect();

    // Settings a task reads from itself, its groups' default_args and the DAG's.
    let operator_args = json!({
        "bash_command": { "type": "string", "description": "Required for BashOperator" },
        "env": { "type": "object", "additionalProperties": { "type": ["string", "number", "boolean"] } },
        "append_env": boolean,
        "cwd": string,
        "trigger_rule": { "enum": trigger_rules },
        "retries": count,
        "retry_delay": duration,
        "retry_exponential_backoff": { "type": ["boolean", "number"] },
        "max_retry_delay": duration,
        "execution_timeout": duration,
        "pool": { "type": "string", "default": "default_pool" },
        "pool_slots": { "type": "integer", "minimum": 1, "default": 1 },
        "priority_weight": { "type": "integer", "default": 1 },
        "owner": { "type": "string", "default": "airflow" },
        "doc_md": string
    });
    let with = |extra: Value| {
        let mut props = operator_args.clone();
        if let (Some(props), Value::Object(extra)) = (props.as_object_mut(), extra) {
            props.extend(extra);
        }
        props
    };
    let default_args = json!({
        "type": "object",
        "description": "Defaults for every task's settings; dates here follow default_args.timezone",
        "properties": with(json!({ "start_date": date, "end_date": date, "timezone": { "$ref": "#/$defs/timezone" } })),
        "additionalProperties": true
    });
    let task = json!({
        "type": "object",
        "properties": with(json!({
            "task_id": string,
            "operator": {
                "type": "string",
                "enum": [
                    "airflow.providers.standard.operators.bash.BashOperator",
                    "airflow.operators.bash.BashOperator",
                    "airflow.operators.bash_operator.BashOperator",
                    "BashOperator",
                    "airflow.providers.standard.operators.empty.EmptyOperator",
                    "airflow.operators.empty.EmptyOperator",
                    "airflow.operators.dummy.DummyOperator",
                    "airflow.operators.dummy_operator.DummyOperator",
                    "EmptyOperator",
                    "airflow.providers.standard.operators.python.PythonOperator",
                    "airflow.operators.python.PythonOperator",
                    "airflow.operators.python_operator.PythonOperator",
                    "airflow.providers.standard.operators.python.BranchPythonOperator",
                    "airflow.operators.python.BranchPythonOperator",
                    "airflow.operators.python_operator.BranchPythonOperator",
                    "airflow.providers.standard.operators.python.ShortCircuitOperator",
                    "airflow.operators.python.ShortCircuitOperator",
                    "airflow.operators.python_operator.ShortCircuitOperator",
                    "airflow.providers.standard.sensors.python.PythonSensor",
                    "airflow.sensors.python.PythonSensor",
                    "airflow.providers.standard.sensors.filesystem.FileSensor",
                    "airflow.sensors.filesystem.FileSensor",
                    "airflow.providers.standard.sensors.time_delta.TimeDeltaSensor",
                    "airflow.providers.standard.sensors.time_delta.TimeDeltaSensorAsync",
                    "airflow.sensors.time_delta.TimeDeltaSensor",
                    "airflow.sensors.time_delta.TimeDeltaSensorAsync",
                    "airflow.sensors.time_delta_sensor.TimeDeltaSensor",
                    "airflow.providers.standard.sensors.time.TimeSensor",
                    "airflow.providers.standard.sensors.time.TimeSensorAsync",
                    "airflow.sensors.time_sensor.TimeSensor",
                    "airflow.sensors.time_sensor.TimeSensorAsync",
                    "airflow.providers.standard.sensors.date_time.DateTimeSensor",
                    "airflow.providers.standard.sensors.date_time.DateTimeSensorAsync",
                    "airflow.sensors.date_time.DateTimeSensor",
                    "airflow.sensors.date_time.DateTimeSensorAsync",
                    "airflow.sensors.date_time_sensor.DateTimeSensor",
                    "airflow.providers.standard.sensors.external_task.ExternalTaskSensor",
                    "airflow.sensors.external_task.ExternalTaskSensor",
                    "airflow.sensors.external_task_sensor.ExternalTaskSensor",
                    "airflow.providers.standard.sensors.bash.BashSensor",
                    "airflow.sensors.bash.BashSensor",
                    "airflow.sensors.bash_sensor.BashSensor"
                ]
            },
            "decorator": {
                "type": "string",
                "description": "A TaskFlow task; its other keys are the callable's keyword arguments (`+task` takes another task's result)",
                "enum": [
                    "airflow.sdk.task",
                    "airflow.sdk.definitions.decorators.task",
                    "airflow.decorators.task",
                    "airflow.providers.standard.decorators.python.python_task",
                    "airflow.providers.standard.decorators.branch_python.branch_task",
                    "airflow.providers.standard.decorators.short_circuit.short_circuit_task",
                    "airflow.providers.standard.decorators.sensor.sensor_task"
                ]
            },
            "python_callable": { "type": "string", "description": "module.function, imported with the DAG folder on sys.path" },
            "python_callable_name": string,
            "python_callable_file": { "type": "string", "description": "An absolute path, such as $CONFIG_ROOT_DIR/callables.py" },
            "op_args": { "type": "array" },
            "op_kwargs": { "type": "object" },
            "templates_dict": { "type": "object" },
            "multiple_outputs": boolean,
            "do_xcom_push": boolean,
            "show_return_value_in_logs": boolean,
            "poke_interval": { "description": "Sensors: seconds between pokes (default 60)" },
            "timeout": { "description": "Sensors: seconds from the first poke (the first reschedule in reschedule mode) before it fails (default 7 days)" },
            "exponential_backoff": boolean,
            "max_wait": { "description": "Sensors with exponential_backoff: the longest wait between pokes" },
            "deferrable": { "type": "boolean", "description": "Sensors: run as mode: reschedule in updraft" },
            "soft_fail": boolean,
            "never_fail": boolean,
            "silent_fail": boolean,
            "mode": { "enum": ["poke", "reschedule"], "description": "Sensors: reschedule frees the slot between pokes (up_for_reschedule)" },
            "ignore_downstream_trigger_rules": { "type": "boolean", "default": true, "description": "ShortCircuit: skip everything downstream, or only the direct downstream tasks" },
            "dependencies": { "description": "Task ids or group names", "type": "array", "items": { "type": "string" } },
            "task_group_name": string
        })),
        "additionalProperties": true
    });
    let group = json!({
        "type": "object",
        "properties": {
            "group_name": string,
            "tooltip": string,
            "dependencies": { "description": "Task ids or group names", "type": "array", "items": { "type": "string" } },
            "parent_group_name": string,
            "default_args": { "$ref": "#/$defs/default_args" }
        },
        "additionalProperties": true
    });
    let dag = json!({
        "type": "object",
        "properties": {
            "default_args": { "$ref": "#/$defs/default_args" },
            "description": string,
            "dag_display_name": string,
            "doc_md": string,
            "schedule": { "$ref": "#/$defs/schedule" },
            "schedule_interval": { "type": "null", "description": "Refused by Airflow 3 unless null: use schedule" },
            "doc_md_file_path": { "type": "string", "description": "An absolute path (such as $CONFIG_ROOT_DIR/docs/dag.md) of a file whose text becomes doc_md" },
            "start_date": date,
            "end_date": date,
            "timezone": { "$ref": "#/$defs/timezone" },
            "catchup": { "type": "boolean", "default": false },
            "tags": names,
            "params": { "type": "object" },
            "max_active_runs": count,
            "max_active_tasks": count,
            "concurrency": { "type": "integer", "minimum": 0, "deprecated": true },
            "dagrun_timeout": duration,
            "tasks": {
                "oneOf": [
                    { "type": "array", "items": { "allOf": [{ "$ref": "#/$defs/task" }, { "required": ["task_id"] }] } },
                    { "type": "object", "additionalProperties": { "$ref": "#/$defs/task" } }
                ]
            },
            "task_groups": {
                "oneOf": [
                    { "type": "array", "items": { "allOf": [{ "$ref": "#/$defs/task_group" }, { "required": ["group_name"] }] } },
                    { "type": "object", "additionalProperties": { "$ref": "#/$defs/task_group" } }
                ]
            }
        },
        "additionalProperties": true
    });
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "dag-factory DAG file, as updraft reads it",
        "description": "Every top-level key but `default` and `task_groups` is a dag_id. $NAME and ${NAME} are replaced by environment variables first; defaults.yml files in this folder and those above it supply defaults",
        "type": "object",
        "properties": {
            "default": { "$ref": "#/$defs/dag", "description": "Merged into every DAG of the file; the DAG's values win, lists are replaced" },
            "task_groups": { "description": "Ignored, as dag-factory does" }
        },
        "additionalProperties": { "$ref": "#/$defs/dag" },
        "$defs": {
            "dag": dag,
            "default_args": default_args,
            "task": task,
            "task_group": group,
            "timedelta": timedelta,
            "relativedelta": relativedelta,
            "delta": { "oneOf": [{ "$ref": "#/$defs/timedelta" }, { "$ref": "#/$defs/relativedelta" }] },
            "timezone": {
                "type": "string",
                "description": "An IANA time zone such as Europe/Amsterdam (case-sensitive), UTC, or a fixed offset such as +02:00; the DAG's start_date is read in it, and its cron schedule ticks in it"
            },
            "timetable": timetable,
            "schedule": {
                "oneOf": [
                    { "type": "string", "description": "A cron expression or @once, @hourly, @daily, @weekly, @monthly, @quarterly, @yearly" },
                    { "type": "null" },
                    { "$ref": "#/$defs/timedelta" },
                    { "$ref": "#/$defs/relativedelta" },
                    { "$ref": "#/$defs/timetable" }
                ]
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `$ref` points at a definition, and every task key the parser reads is offered.
    #[test]
    fn refs_resolve_and_keys_are_listed() {
        let schema = schema();
        fn refs(v: &Value, out: &mut Vec<String>) {
            match v {
                Value::Object(map) => {
                    for (k, v) in map {
                        match (k.as_str(), v) {
                            ("$ref", Value::String(r)) => out.push(r.clone()),
                            _ => refs(v, out),
                        }
                    }
                }
                Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
                _ => {}
            }
        }
        let mut found = Vec::new();
        refs(&schema, &mut found);
        assert!(found.len() > 5);
        for r in found {
            let name = r.trim_start_matches("#/$defs/");
            assert!(schema["$defs"].get(name).is_some(), "{r}");
        }
        let task = &schema["$defs"]["task"]["properties"];
        for key in [
            "operator",
            "bash_command",
            "dependencies",
            "task_group_name",
            "retry_delay",
            "pool_slots",
        ] {
            assert!(task.get(key).is_some(), "{key}");
        }
        assert_eq!(schema["additionalProperties"]["$ref"], "#/$defs/dag");
    }
}
