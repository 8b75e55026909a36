//! The built-in operators' arguments (`model::Builtin`): checked against Airflow's
//! signature and kept as JSON for the supervisor, which renders the templated ones.

use serde_json::{Map, Value};

use super::Ctx;
use super::yaml::Node;
use crate::model::Builtin;

/// The arguments of a built-in operator from the task and the layers below it
/// (`default_args`), each as the file wrote it. A missing required one, or a Python
/// callable updraft cannot call in-process, is an import error.
pub(super) fn args(
    cx: &mut Ctx,
    layers: &[&Node],
    task: &Node,
    name: &str,
    kind: Builtin,
) -> Map<String, Value> {
    let spec = kind.spec();
    let mut out = Map::new();
    for &key in spec.args {
        if let Some(node) = layers.iter().find_map(|l| l.field(key)) {
            out.insert(key.to_string(), node.to_json());
        }
    }
    // BaseOperator's `do_xcom_push`: whether the return value becomes an XCom.
    if let Some(node) = layers.iter().find_map(|l| l.field("do_xcom_push")) {
        out.insert("do_xcom_push".to_string(), node.to_json());
    }
    for &key in spec.required {
        if !out.contains_key(key) {
            cx.errors.push(task.pos.error(format!(
                "task `{name}` is a {} but has no `{key}`",
                spec.class
            )));
        }
    }
    // Callables are Python objects; dag-factory's YAML cannot carry them inline.
    for key in [
        "response_check",
        "response_filter",
        "pagination_function",
        "handler",
        "output_processor",
    ] {
        if let Some(node) = task.field(key) {
            cx.errors.push(node.pos.error(format!(
                "task `{name}`: `{key}` (a Python callable) is not supported by updraft's built-in {}",
                spec.class
            )));
        }
    }
    let string_or_list = |v: &Value| match v {
        Value::String(_) => true,
        Value::Array(items) => items.iter().all(Value::is_string),
        _ => false,
    };
    type Check<'a> = (&'a str, &'a dyn Fn(&Value) -> bool, &'a str);
    let checks: &[Check] = &[
        ("sql", &string_or_list, "a string or a list of strings"),
        (
            "follow_task_ids_if_true",
            &string_or_list,
            "a task id or a list of them",
        ),
        (
            "follow_task_ids_if_false",
            &string_or_list,
            "a task id or a list of them",
        ),
        ("week_day", &string_or_list, "a week day or a list of them"),
        ("http_conn_id", &Value::is_string, "a string"),
        ("conn_id", &Value::is_string, "a string"),
        ("trigger_dag_id", &Value::is_string, "a string"),
        ("method", &Value::is_string, "a string"),
        ("headers", &|v| v.is_object() || v.is_string(), "a mapping"),
        ("allowed_states", &|v| v.is_array(), "a list of states"),
        ("failed_states", &|v| v.is_array(), "a list of states"),
        ("poke_interval", &Value::is_number, "a number of seconds"),
    ];
    for (key, ok, what) in checks {
        if let Some(v) = out.get(*key)
            && !ok(v)
        {
            let pos = task.field(key).map_or(task.pos, |n| n.pos);
            cx.errors
                .push(pos.error(format!("task `{name}`: `{key}` must be {what}, not {v}")));
        }
    }
    out
}
