//! Human-in-the-loop tasks (Airflow 3.1+'s `HITLOperator`, `ApprovalOperator`,
//! `HITLBranchOperator`, `HITLEntryOperator`): their import paths, their arguments, and
//! the checks Airflow's constructors make, with Airflow's messages.
//!
//! Pure: a task's YAML in, a `model::Hitl` (or import errors) out. The task runs in
//! `executor/hitl.rs`.

use serde_json::{Map, Value as J, json};

use super::yaml::{Node, Pos};
use super::{Ctx, values};
use crate::model::{Hitl, HitlKind};

/// Each operator by the one path Airflow 3.3 exports it from.
pub(super) const OPERATORS: &[(&str, HitlKind)] = &[
    (
        "airflow.providers.standard.operators.hitl.HITLOperator",
        HitlKind::Plain,
    ),
    (
        "airflow.providers.standard.operators.hitl.ApprovalOperator",
        HitlKind::Approval,
    ),
    (
        "airflow.providers.standard.operators.hitl.HITLBranchOperator",
        HitlKind::Branch,
    ),
    (
        "airflow.providers.standard.operators.hitl.HITLEntryOperator",
        HitlKind::Entry,
    ),
];

/// The paths, for the "unknown operator" message.
pub(super) fn paths() -> Vec<&'static str> {
    OPERATORS.iter().map(|(p, _)| *p).collect()
}

/// The operator an import path names, if it is one of these.
pub(super) fn operator(path: &str) -> Option<HitlKind> {
    OPERATORS.iter().find(|(p, _)| *p == path).map(|(_, k)| *k)
}

/// What `HITLOperator.__init__` takes besides `BaseOperator`'s.
const HITL_ARGS: &[&str] = &[
    "subject",
    "options",
    "body",
    "defaults",
    "multiple",
    "params",
    "notifiers",
    "assigned_users",
    "response_timeout",
];
/// Every argument of the four, for `partial`.
pub(super) const ALL_ARGS: &[&str] = &[
    "subject",
    "options",
    "body",
    "defaults",
    "multiple",
    "params",
    "notifiers",
    "assigned_users",
    "response_timeout",
    "ignore_downstream_trigger_rules",
    "fail_on_reject",
    "options_mapping",
];
const APPROVAL_ARGS: &[&str] = &["ignore_downstream_trigger_rules", "fail_on_reject"];
const BRANCH_ARGS: &[&str] = &["options_mapping"];

/// The keys a task of `kind` may have besides `BaseOperator`'s and dag-factory's.
pub(super) fn args(kind: HitlKind) -> Vec<&'static str> {
    let own: &[&str] = match kind {
        HitlKind::Approval => APPROVAL_ARGS,
        HitlKind::Branch => BRANCH_ARGS,
        HitlKind::Plain | HitlKind::Entry => &[],
    };
    [HITL_ARGS, own].concat()
}

/// Reads a human-in-the-loop task; `None` (with the errors recorded) when Airflow's
/// constructor would raise.
pub(super) fn build(
    cx: &mut Ctx,
    cfg: &Node,
    layers: &[&Node],
    kind: HitlKind,
    pos: Pos,
    name: &str,
) -> Option<Hitl> {
    let errors_before = cx.errors.len();
    let class = match kind {
        HitlKind::Plain => "HITLOperator",
        HitlKind::Approval => "ApprovalOperator",
        HitlKind::Branch => "HITLBranchOperator",
        HitlKind::Entry => "HITLEntryOperator",
    };
    if kind == HitlKind::Approval {
        for fixed in ["options", "multiple"] {
            if let Some(e) = cfg.entry(fixed) {
                cx.errors.push(e.key_pos.error(format!(
                    "Passing {fixed} to ApprovalOperator is not allowed."
                )));
            }
        }
    }
    let subject = match cx.get(layers, "subject", Node::string) {
        Some(s) => s,
        None => {
            if layers.iter().all(|l| l.field("subject").is_none()) {
                cx.errors
                    .push(pos.error(format!("task `{name}` is a {class} but has no `subject`")));
            }
            String::new()
        }
    };
    let body = cx.get(layers, "body", Node::string);
    let given_options = cx.get(layers, "options", list_of_strings);
    let given_defaults = cx.get(layers, "defaults", string_or_strings);
    let has_defaults_key = layers.iter().any(|l| l.entry("defaults").is_some());
    let (options, defaults) = match kind {
        HitlKind::Approval => (
            vec!["Approve".to_string(), "Reject".to_string()],
            given_defaults,
        ),
        // HITLEntryOperator: "OK" is the one option, and the default too, unless options
        // are given (then defaults are as given).
        HitlKind::Entry if given_options.is_none() => (
            vec!["OK".to_string()],
            if has_defaults_key {
                given_defaults
            } else {
                Some(vec!["OK".to_string()])
            },
        ),
        _ => {
            if given_options.is_none() && layers.iter().all(|l| l.field("options").is_none()) {
                cx.errors
                    .push(pos.error(format!("task `{name}` is a {class} but has no `options`")));
            }
            (given_options.unwrap_or_default(), given_defaults)
        }
    };
    let multiple = match kind {
        HitlKind::Approval => false,
        _ => cx.get(layers, "multiple", Node::boolean).unwrap_or(false),
    };
    let params = cfg
        .field("params")
        .and_then(|n| cx.mapping(Some(n), "params"))
        .map(serialized_params)
        .unwrap_or_default();
    let assigned_users = cx.get(layers, "assigned_users", users).unwrap_or_default();
    let response_timeout_secs = cx
        .get(layers, "response_timeout", values::timedelta)
        // Airflow moves a HITL task's `execution_timeout` here (deprecated), so that it
        // limits the wait for the answer, not the task's run.
        .or_else(|| cx.get(layers, "execution_timeout", values::timedelta));
    let flag = |cx: &mut Ctx, key: &str| {
        (kind == HitlKind::Approval)
            .then(|| cx.get(layers, key, Node::boolean))
            .flatten()
            .unwrap_or(false)
    };
    let fail_on_reject = flag(cx, "fail_on_reject");
    let ignore_downstream_trigger_rules = flag(cx, "ignore_downstream_trigger_rules");
    let options_mapping = match kind {
        HitlKind::Branch => cx
            .mapping(cfg.field("options_mapping"), "options_mapping")
            .map(|n| match n.to_json() {
                J::Object(m) => m,
                _ => Map::new(),
            })
            .unwrap_or_default(),
        _ => Map::new(),
    };

    // Airflow's checks, in its order: options, params, defaults, then the branch mapping.
    if options.is_empty() && cx.errors.len() == errors_before {
        cx.errors.push(pos.error("\"options\" cannot be empty."));
    }
    if params.contains_key("_options") {
        cx.errors
            .push(pos.error("\"_options\" is not allowed in params"));
    }
    if let Some(d) = &defaults {
        if let Some(bad) = d.iter().find(|d| !options.contains(d)).map(|_| d) {
            cx.errors.push(pos.error(format!(
                "defaults \"{}\" should be a subset of options \"{}\"",
                py_list(bad),
                py_list(&options)
            )));
        } else if !multiple && d.len() > 1 {
            cx.errors
                .push(pos.error("More than one defaults given when \"multiple\" is set to False."));
        }
    }
    let mut bad_keys: Vec<&String> = options_mapping
        .keys()
        .filter(|k| !options.contains(k))
        .collect();
    bad_keys.sort();
    if !bad_keys.is_empty() {
        cx.errors.push(pos.error(format!(
            "`options_mapping` contains keys that are not in `options`: [{}]",
            bad_keys
                .iter()
                .map(|k| crate::py::repr_str(k))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    } else if let Some((k, v)) = options_mapping.iter().find(|(_, v)| !v.is_string()) {
        cx.errors.push(pos.error(format!(
            "`options_mapping` values must be strings (task_ids).\nInvalid entries: {{{}: {}}}",
            crate::py::repr_str(k),
            v
        )));
    }
    (cx.errors.len() == errors_before).then_some(Hitl {
        subject,
        body,
        options,
        defaults,
        multiple,
        params,
        assigned_users,
        response_timeout_secs,
        fail_on_reject,
        ignore_downstream_trigger_rules,
        options_mapping,
    })
}

/// A Python list of strings as `str()` shows it: `['a', 'b']`.
fn py_list(items: &[String]) -> String {
    let inner: Vec<String> = items.iter().map(|s| crate::py::repr_str(s)).collect();
    format!("[{}]", inner.join(", "))
}

fn list_of_strings(n: &Node, key: &str) -> Result<Vec<String>, super::ImportError> {
    Ok(n.strings(key)?.into_iter().map(|(s, _)| s).collect())
}

/// `defaults`: one option, or a list of them (Airflow wraps a string in a list).
fn string_or_strings(n: &Node, key: &str) -> Result<Vec<String>, super::ImportError> {
    match n.string(key) {
        Ok(s) => Ok(vec![s]),
        Err(_) => list_of_strings(n, key),
    }
}

/// `assigned_users`: one `{id, name}` mapping or a list of them, as Airflow's `HITLUser`.
fn users(n: &Node, key: &str) -> Result<Vec<J>, super::ImportError> {
    let one = |n: &Node| -> Result<J, super::ImportError> {
        let field = |k: &str| n.field(k).and_then(|v| v.string(k).ok());
        match (n.is_map(), field("id"), field("name")) {
            (true, Some(id), Some(name)) => Ok(json!({"id": id, "name": name})),
            _ => Err(n.pos.error(format!(
                "each of `{key}` must be a mapping with an `id` and a `name` (strings), not {}",
                n.describe()
            ))),
        }
    };
    match &n.value {
        super::yaml::Value::List(items) => items.iter().map(one).collect(),
        _ => Ok(vec![one(n)?]),
    }
}

/// A task's `params` as Airflow's `Param.serialize()` gives them: a mapping with a
/// `value` is a Param (its `description`, its `schema`, and any other key as a schema
/// keyword, as `Param(default, **kwargs)` takes them); anything else is a Param's value.
fn serialized_params(n: &Node) -> Map<String, J> {
    let mut out = Map::new();
    for e in n.entries() {
        let v = e.value.to_json();
        let param = match v {
            J::Object(m) if m.contains_key("value") => {
                let mut schema = match m.get("schema") {
                    Some(J::Object(s)) => s.clone(),
                    _ => Map::new(),
                };
                for (k, x) in &m {
                    if !matches!(k.as_str(), "value" | "description" | "schema" | "source") {
                        schema.insert(k.clone(), x.clone());
                    }
                }
                json!({
                    "value": m.get("value").cloned().unwrap_or(J::Null),
                    "description": m.get("description").cloned().unwrap_or(J::Null),
                    "schema": schema,
                    "source": "task",
                })
            }
            other => json!({"value": other, "description": null, "schema": {}, "source": "task"}),
        };
        out.insert(e.key.clone(), param);
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::dagfile::parse;
    use chrono::Utc;

    fn errors(task: &str) -> Vec<String> {
        let src = format!(
            "d:\n  start_date: 2024-01-01\n  tasks:\n    t:\n      operator: airflow.providers.standard.operators.hitl.{task}\n"
        );
        parse("d.yml", &src, Utc::now())
            .errors
            .into_iter()
            .map(|e| e.message)
            .collect()
    }

    #[test]
    fn airflow_s_checks_are_made_with_its_messages() {
        let cases: &[(&str, &str)] = &[
            (
                "HITLOperator\n      subject: s\n      options: []",
                "\"options\" cannot be empty.",
            ),
            (
                "HITLOperator\n      subject: s\n      options: [a]\n      defaults: b",
                "defaults \"['b']\" should be a subset of options \"['a']\"",
            ),
            (
                "HITLOperator\n      subject: s\n      options: [a, b]\n      defaults: [a, b]",
                "More than one defaults given when \"multiple\" is set to False.",
            ),
            (
                "HITLOperator\n      subject: s\n      options: [a]\n      params: {_options: 1}",
                "\"_options\" is not allowed in params",
            ),
            (
                "ApprovalOperator\n      subject: s\n      options: [a]",
                "Passing options to ApprovalOperator is not allowed.",
            ),
            (
                "HITLBranchOperator\n      subject: s\n      options: [a]\n      options_mapping: {b: x}",
                "`options_mapping` contains keys that are not in `options`: ['b']",
            ),
            (
                "HITLOperator\n      options: [a]",
                "task `t` is a HITLOperator but has no `subject`",
            ),
        ];
        for (task, want) in cases {
            let got = errors(task);
            assert!(got.iter().any(|m| m == want), "{task}: {got:?}");
        }
        assert_eq!(
            errors(
                "HITLOperator\n      subject: s\n      options: [a, b]\n      multiple: true\n      defaults: [a, b]"
            ),
            Vec::<String>::new()
        );
        assert!(
            errors("HITLOperator\n      subject: s\n      options: [a]\n      foo: 1")
                .iter()
                .any(|m| m.contains("foo")),
        );
    }

    #[test]
    fn entry_defaults_to_ok_and_params_are_serialized() {
        let src = "d:\n  start_date: 2024-01-01\n  tasks:\n    t:\n      operator: airflow.providers.standard.operators.hitl.HITLEntryOperator\n      subject: s\n      execution_timeout: 5\n      params:\n        a: 1\n        b: {value: x, type: string, description: d}\n";
        let p = parse("d.yml", src, Utc::now());
        assert!(p.errors.is_empty(), "{:?}", p.errors);
        let h = p.dags[0].tasks[0].hitl.clone().unwrap();
        assert_eq!(h.options, ["OK"]);
        assert_eq!(h.defaults, Some(vec!["OK".to_string()]));
        assert_eq!(h.response_timeout_secs, Some(5.0));
        assert_eq!(p.dags[0].tasks[0].execution_timeout_secs, None);
        assert_eq!(
            serde_json::Value::Object(h.params),
            serde_json::json!({
                "a": {"value": 1, "description": null, "schema": {}, "source": "task"},
                "b": {"value": "x", "description": "d", "schema": {"type": "string"}, "source": "task"},
            })
        );
    }
}
