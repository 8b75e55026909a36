//! The built-in operators' arguments (`model::Builtin`): checked against Airflow's
//! signature and kept as JSON for the supervisor, which renders the templated ones.

use serde_json::{Map, Value};

use super::Ctx;
use super::yaml::Node;
use crate::model::Builtin;

/// The arguments of a built-in operator from the task and the layers below it
/// (`default_args`), each as the file wrote it. A missing required one, or a Python
/// callable updraft does not call, is an import error.
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
    // HttpOperator's response callables run with the Python runner.
    if matches!(kind, Builtin::Http | Builtin::SimpleHttp) {
        for key in ["response_check", "response_filter"] {
            out.remove(key);
            if let Some(r) = callable(cx, layers, key, name) {
                out.insert(key.to_string(), r);
            }
        }
    }
    // Other callables are Python objects updraft does not call for these operators.
    for key in ["pagination_function", "handler", "output_processor"] {
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

/// dag-factory's other forms of a built-in operator's callables (`callable`).
pub(super) fn callable_forms(kind: Builtin) -> &'static [&'static str] {
    match kind {
        Builtin::Http | Builtin::SimpleHttp => &[
            "response_check_name",
            "response_check_file",
            "response_check_lambda",
            "response_filter_name",
            "response_filter_file",
            "response_filter_lambda",
        ],
        _ => &[],
    }
}

/// A Python callable argument of a built-in operator or sensor (`key`), from the first of
/// `layers` that gives it, in dag-factory's forms: `module.func` (imported with the DAG
/// folder on `sys.path`); `{key}_name` + `{key}_file` (an absolute path); or
/// `{key}_lambda`, Python source such as `lambda response: ...`. As the runner's
/// reference: `{"callable", "file"}` or `{"lambda"}`.
pub(super) fn callable(cx: &mut Ctx, layers: &[&Node], key: &str, task: &str) -> Option<Value> {
    let (name_key, file_key, lambda_key) = (
        format!("{key}_name"),
        format!("{key}_file"),
        format!("{key}_lambda"),
    );
    let layer = layers.iter().find(|l| {
        [key, &name_key, &file_key, &lambda_key].iter().any(|k| {
            l.field(k)
                .is_some_and(|n| n.value != super::yaml::Value::Null)
        })
    })?;
    if let Some(n) = layer.field(&lambda_key) {
        let src = cx.ok(n.string(&lambda_key))?;
        return Some(serde_json::json!({ "lambda": src }));
    }
    match (layer.field(&name_key), layer.field(&file_key)) {
        (Some(n), Some(f)) => {
            let (name, path) = (cx.ok(n.string(&name_key))?, cx.ok(f.string(&file_key))?);
            if !super::tasks::is_absolute(&path) {
                cx.errors.push(f.pos.error(format!(
                    "`{file_key}` must be an absolute path, not `{path}` (`$CONFIG_ROOT_DIR/...` is one way)"
                )));
                return None;
            }
            return Some(serde_json::json!({ "callable": name, "file": path }));
        }
        (Some(n), None) | (None, Some(n)) => {
            cx.errors.push(n.pos.error(format!(
                "task `{task}` needs both `{name_key}` and `{file_key}`"
            )));
            return None;
        }
        (None, None) => {}
    }
    let n = layer.field(key)?;
    let dotted = cx.ok(n.string(key))?;
    if !dotted.contains('.') || dotted.starts_with('.') || dotted.ends_with('.') {
        cx.errors.push(n.pos.error(format!(
            "task `{task}`: `{key}` must be a dotted path such as `module.function`, not `{dotted}`"
        )));
        return None;
    }
    Some(serde_json::json!({ "callable": dotted, "file": null }))
}
