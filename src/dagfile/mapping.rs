//! Dynamic task mapping in DAG files: a task's `expand` and `partial`, as dag-factory
//! 1.1.0 turns them into `Operator.partial(**task_params).expand(**expand)`, with the
//! checks Airflow 3.3's `partial`/`expand` make, in their order and with their messages.
//!
//! dag-factory merges `partial` into the task's own arguments (so it is read first, as a
//! layer above the task), after refusing a `partial` whose *last* key the task also sets
//! ("Duplicated partial kwarg!"; it looks at the last key only, and so does this).
//! Airflow then refuses an expanded argument that is not the operator's
//! (`unexpected keyword argument`), one whose value is not a list or a mapping
//! (`unexpected type`), and one that `partial` already holds: the task's own arguments,
//! the DAG's and its groups' `default_args` that are `BaseOperator` arguments, and the
//! arguments `partial` always fills in (`task_id`, `retries`, `pool_slots`, ...), which
//! is why those are "unmappable".

use super::yaml::{Node, Value};
use super::{Ctx, ImportError};
use crate::model::{MapSource, Mapped, Operator};

/// Arguments Airflow's `partial` always sets (`task_id`, `dag`, `task_group`, the
/// `OPERATOR_DEFAULTS` of Airflow 3.3's `BaseOperator`, and what it converts): expanding
/// one is "unmappable or already specified".
const ALWAYS_PARTIAL: &[&str] = &[
    "task_id",
    "dag",
    "task_group",
    "allow_nested_operators",
    "depends_on_past",
    "email_on_failure",
    "email_on_retry",
    "execution_timeout",
    "executor_config",
    "ignore_first_depends_on_past",
    "inlets",
    "map_index_template",
    "on_execute_callback",
    "on_failure_callback",
    "on_retry_callback",
    "on_skipped_callback",
    "on_success_callback",
    "outlets",
    "owner",
    "pool_slots",
    "priority_weight",
    "queue",
    "retries",
    "retry_delay",
    "retry_exponential_backoff",
    "retry_policy",
    "trigger_rule",
    "wait_for_past_depends_before_skipping",
    "wait_for_downstream",
    "weight_rule",
    "max_retry_delay",
];

/// BashOperator's own arguments in its signature's order (Airflow checks an operator's
/// own arguments before `BaseOperator`'s).
const BASH_SIGNATURE: &[&str] = &[
    "bash_command",
    "env",
    "append_env",
    "output_encoding",
    "skip_on_exit_code",
    "cwd",
    "output_processor",
];

/// PythonOperator's own arguments in its signature's order.
const PYTHON_SIGNATURE: &[&str] = &[
    "python_callable",
    "op_args",
    "op_kwargs",
    "templates_dict",
    "templates_exts",
    "show_return_value_in_logs",
];

/// The PythonOperator arguments updraft applies per task instance.
const PYTHON_MAPPED: &[&str] = &["op_args", "op_kwargs"];

/// The arguments updraft applies per task instance. Airflow maps any argument `partial`
/// does not hold; updraft refuses the others by name rather than ignore them.
const BASH_MAPPED: &[&str] = &["bash_command", "env", "append_env", "cwd"];

/// What the caller knows of the task.
pub(super) struct Task<'a> {
    pub name: &'a str,
    pub cfg: &'a Node,
    pub operator: Operator,
    /// The task's layers below `partial`: its own settings, then its groups' and the
    /// DAG's `default_args`.
    pub below: &'a [&'a Node],
    /// The task keys dag-factory reads itself (not handed to the operator).
    pub factory_keys: &'a [&'a str],
    /// `BaseOperator`'s arguments.
    pub base_args: &'a [&'a str],
}

/// `partial` of a task, when it is a mapping; anything else is an error (dag-factory
/// calls `.items()` on it).
pub(super) fn partial<'a>(cx: &mut Ctx, cfg: &'a Node) -> Option<&'a Node> {
    let n = cfg.field("partial")?;
    if matches!(n.value, Value::Null) {
        return None;
    }
    if !n.is_map() {
        cx.errors.push(n.pos.error(format!(
            "`partial` must be a mapping of arguments, not {}",
            n.describe()
        )));
        return None;
    }
    Some(n)
}

/// Checks `partial` and `expand` of `t` and reads what it is expanded over; `None` for a
/// task that is not mapped (no `expand`, or an empty one, which dag-factory treats as
/// none) or when an error was recorded.
pub(super) fn expand(cx: &mut Ctx, t: &Task, partial: Option<&Node>) -> Option<Mapped> {
    let class = t.operator.class_name();
    let own: &[&str] = match t.operator {
        Operator::Bash => BASH_SIGNATURE,
        Operator::Empty => &[],
        Operator::Python(_) => PYTHON_SIGNATURE,
        // A TaskFlow task's other keys are its callable's arguments.
        Operator::TaskFlow(_) => &[],
        Operator::Hitl(_) => super::hitl::ALL_ARGS,
        Operator::Sensor(kind) => kind.template_fields(),
        Operator::Builtin(kind) => kind.spec().args,
    };
    let taskflow = matches!(t.operator, Operator::TaskFlow(_));
    let takes = |key: &str| taskflow || own.contains(&key) || t.base_args.contains(&key);
    let task_keys = || {
        t.cfg
            .entries()
            .iter()
            .filter(|e| !t.factory_keys.contains(&e.key.as_str()))
            .filter(|e| !matches!(e.value.value, Value::Null))
    };
    if let Some(p) = partial {
        // dag-factory's `is_partial_duplicated` tests only the last key of `partial`.
        if let Some(last) = p.entries().last()
            && (last.key == "task_id" || task_keys().any(|e| e.key == last.key))
        {
            cx.errors.push(last.key_pos.error(format!(
                "task `{}`: `{}` is both in `partial` and in the task's own arguments \
                 (dag-factory: \"Duplicated partial kwarg! It's already in task_params.\")",
                t.name, last.key
            )));
            return None;
        }
        let unknown: Vec<&str> = p
            .entries()
            .iter()
            .map(|e| e.key.as_str())
            .filter(|k| !takes(k))
            .collect();
        if !unknown.is_empty() {
            let e = p.entries().iter().find(|e| e.key == unknown[0]);
            let pos = e.map_or(p.pos, |e| e.key_pos);
            cx.errors
                .push(pos.error(unexpected(t.name, class, "partial", &unknown)));
            return None;
        }
    }
    let n = t.cfg.field("expand")?;
    if matches!(n.value, Value::Null) {
        return None;
    }
    if !n.is_map() {
        cx.errors.push(n.pos.error(format!(
            "`expand` must be a mapping of argument names to lists, not {}",
            n.describe()
        )));
        return None;
    }
    let entries = n.entries();
    if entries.is_empty() {
        return None;
    }
    let error = |cx: &mut Ctx, e: ImportError| {
        cx.errors.push(e);
        None
    };
    // Airflow's `validate_mapping_kwargs`: the operator's own arguments, then
    // `BaseOperator`'s, each value a list or a mapping; then the unknown ones.
    for name in own.iter().chain(t.base_args.iter()) {
        if let Some(e) = entries.iter().find(|e| e.key == *name)
            && !matches!(e.value.value, Value::List(_) | Value::Map(_))
            && !upstream(&e.value, taskflow)
        {
            let ty = python_type(&e.value);
            return error(
                cx,
                e.value.pos.error(format!(
                    "task `{}`: {class}.expand() got an unexpected type '{ty}' for keyword argument {name}",
                    t.name
                )),
            );
        }
    }
    let unknown: Vec<&str> = entries
        .iter()
        .map(|e| e.key.as_str())
        .filter(|k| !takes(k))
        .collect();
    if let Some(first) = unknown.first() {
        let pos = entries
            .iter()
            .find(|e| e.key == *first)
            .map_or(n.pos, |e| e.key_pos);
        return error(cx, pos.error(unexpected(t.name, class, "expand", &unknown)));
    }
    // `prevent_duplicates`: what `partial` holds cannot be expanded.
    let layers: Vec<&Node> = partial.into_iter().chain(t.below.iter().copied()).collect();
    let mut held: Vec<&str> = entries
        .iter()
        .map(|e| e.key.as_str())
        .filter(|k| {
            ALWAYS_PARTIAL.contains(k)
                || partial.is_some_and(|p| p.field(k).is_some())
                || task_keys().any(|e| e.key == *k)
                || (t.base_args.contains(k) && layers[1..].iter().any(|l| l.field(k).is_some()))
        })
        .collect();
    if let Some(first) = held.first().copied() {
        let pos = entries
            .iter()
            .find(|e| e.key == first)
            .map_or(n.pos, |e| e.key_pos);
        held.sort_unstable();
        held.dedup();
        let what = match held.as_slice() {
            [one] => format!("argument: {one}"),
            many => format!("arguments: {}", many.join(", ")),
        };
        return error(
            cx,
            pos.error(format!(
                "task `{}`: {class}.partial(...).expand() refuses it: unmappable or already specified {what}",
                t.name
            )),
        );
    }
    let mappable: &[&str] = match t.operator {
        Operator::Bash => BASH_MAPPED,
        Operator::Python(_) => PYTHON_MAPPED,
        // Built-in operators are not expanded (yet): every argument is refused.
        Operator::Empty
        | Operator::TaskFlow(_)
        | Operator::Hitl(_)
        | Operator::Sensor(_)
        | Operator::Builtin(_) => &[],
    };
    let mut args = Vec::with_capacity(entries.len());
    for e in entries {
        // An upstream task's result (`+task`, `task.output`, `XcomArg(task)`).
        if let (true, Value::Str(text)) = (upstream(&e.value, taskflow), &e.value.value) {
            let Some(task_id) = upstream_task(text) else {
                // `+task['key']`: Airflow maps only over a task's return value.
                let what = match super::tasks::xcom_ref(text) {
                    Some((task, key)) => {
                        format!("cannot map over XCom with custom key '{key}' from task `{task}`")
                    }
                    _ => format!("cannot map over `{text}`"),
                };
                return error(cx, e.value.pos.error(format!("task `{}`: {what}", t.name)));
            };
            if taskflow || mappable.contains(&e.key.as_str()) {
                args.push((e.key.clone(), MapSource::Upstream { task_id }));
                continue;
            }
        }
        // A TaskFlow callable's argument: a list or a mapping, as Airflow's `expand`.
        if taskflow && !t.base_args.contains(&e.key.as_str()) {
            if !matches!(e.value.value, Value::List(_) | Value::Map(_)) {
                let ty = python_type(&e.value);
                return error(
                    cx,
                    e.value.pos.error(format!(
                        "task `{}`: expand() got an unexpected type '{ty}' for keyword argument '{}'",
                        t.name, e.key
                    )),
                );
            }
        } else if !mappable.contains(&e.key.as_str()) {
            let known = if mappable.is_empty() {
                "nothing".to_string()
            } else {
                mappable.join(", ")
            };
            return error(
                cx,
                e.key_pos.error(format!(
                    "task `{}`: updraft cannot map {class} over `{}` yet (Airflow can); it maps {known}",
                    t.name, e.key
                )),
            );
        }
        let values = match &e.value.value {
            Value::List(items) => items.iter().map(Node::to_json).collect(),
            // Airflow hands each instance a mapping's (key, value) pairs.
            Value::Map(pairs) => pairs
                .iter()
                .map(|p| serde_json::json!([p.key, p.value.to_json()]))
                .collect(),
            _ => Vec::new(),
        };
        args.push((e.key.clone(), MapSource::Literal(values)));
    }
    Some(Mapped { args })
}

/// Airflow's `validate_mapping_kwargs` message for arguments the operator does not take.
fn unexpected(task: &str, class: &str, func: &str, names: &[&str]) -> String {
    let what = match names {
        [one] => format!("an unexpected keyword argument '{one}'"),
        many => {
            let quoted: Vec<String> = many.iter().map(|n| format!("'{n}'")).collect();
            format!("unexpected keyword arguments {}", quoted.join(", "))
        }
    };
    format!("task `{task}`: {class}.{func}() got {what}")
}

/// Whether an expanded value names another task's result, in dag-factory's forms
/// (`+task` for TaskFlow, `task.output` or `XcomArg(task)` for operators).
fn upstream(n: &Node, taskflow: bool) -> bool {
    matches!(&n.value, Value::Str(text) if if taskflow {
        text.starts_with('+')
    } else {
        text.contains(".output") || text.contains("XcomArg")
    })
}

/// The task an upstream reference names, as dag-factory reads it: `+task`,
/// `task.output` (what comes before `.output`), `XcomArg(task)`.
pub(super) fn upstream_task(text: &str) -> Option<String> {
    let ident = |s: &str| {
        let s = s.trim();
        (!s.is_empty()
            && s.chars()
                .all(|c| c.is_alphanumeric() || c == '_' || c == '-' || c == '.'))
        .then(|| s.to_string())
    };
    if let Some(rest) = text.strip_prefix('+') {
        return ident(rest);
    }
    if let Some((task, tail)) = text.split_once(".output") {
        return tail.trim().is_empty().then(|| ident(task)).flatten();
    }
    let inner = text.split_once('(')?.1.split_once(')')?.0;
    ident(inner.trim_matches(['\'', '"']))
}

/// Python's name for the type a YAML scalar loads as.
fn python_type(n: &Node) -> &'static str {
    match n.value {
        Value::Null => "NoneType",
        Value::Bool(_) => "bool",
        Value::Int(_) => "int",
        Value::Float(_) => "float",
        Value::Str(_) => "str",
        Value::List(_) => "list",
        Value::Map(_) => "dict",
    }
}

#[cfg(test)]
mod tests {
    use crate::dagfile::parse;
    use crate::model::{MapSource, Mapped};
    use serde_json::json;

    const HEAD: &str = "m:\n  schedule: null\n  start_date: 2024-01-01\n  tasks:\n    - task_id: a\n      operator: airflow.providers.standard.operators.bash.BashOperator\n";

    fn parsed(task: &str) -> (Vec<String>, Option<Mapped>, Option<String>) {
        let p = parse(
            "dags/m.yml",
            &format!("{HEAD}{task}"),
            "2025-01-01T00:00:00Z".parse().expect("a time"),
        );
        let errors = p
            .errors
            .iter()
            .map(|e| format!("{}:{} {}", e.line, e.column, e.message))
            .collect();
        let t = p.dags.first().and_then(|d| d.tasks.first());
        (
            errors,
            t.and_then(|t| t.mapped.as_deref().cloned()),
            t.and_then(|t| t.map_index_template.clone()),
        )
    }

    fn error(task: &str) -> String {
        let (errors, mapped, _) = parsed(task);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(mapped, None);
        errors[0].clone()
    }

    #[test]
    fn literal_lists_and_mappings_with_partial() {
        let (errors, mapped, template) = parsed(
            "      partial:\n        env: {X: '1'}\n        map_index_template: '{{ task.bash_command }}'\n      expand:\n        bash_command: ['echo 1', 'echo 2']\n        cwd: {a: 1}\n",
        );
        assert_eq!(errors, Vec::<String>::new());
        let want = Mapped {
            args: vec![
                (
                    "bash_command".into(),
                    MapSource::Literal(vec![json!("echo 1"), json!("echo 2")]),
                ),
                ("cwd".into(), MapSource::Literal(vec![json!(["a", 1])])),
            ],
        };
        assert_eq!(mapped, Some(want));
        assert_eq!(template.as_deref(), Some("{{ task.bash_command }}"));
        // Zero length is a valid DAG (the task is skipped when it runs); an empty
        // `expand` is no mapping at all, as in dag-factory.
        let (errors, mapped, _) =
            parsed("      bash_command: echo\n      expand:\n        env: []\n");
        assert_eq!(errors, Vec::<String>::new());
        assert_eq!(mapped.and_then(|m| m.length()), Some(0));
        let (errors, mapped, _) = parsed("      bash_command: echo\n      expand: {}\n");
        assert_eq!((errors.len(), mapped), (0, None));
    }

    #[test]
    fn python_tasks_map_their_callables_arguments() {
        let head = "m:\n  schedule: null\n  start_date: 2024-01-01\n  tasks:\n";
        let ok = "    - task_id: p\n      operator: airflow.providers.standard.operators.python.PythonOperator\n      python_callable: lib.f\n      partial:\n        op_kwargs: {k: 1}\n      expand:\n        op_args: [[1], [2]]\n    - task_id: t\n      decorator: airflow.sdk.task\n      python_callable: lib.g\n      partial:\n        label: true\n      expand:\n        number: [3, 4]\n";
        let upstream = |v: &str| {
            format!(
                "    - task_id: u\n      decorator: airflow.sdk.task\n      python_callable: lib.g\n      expand:\n        number: {v}\n"
            )
        };
        let at = "2025-01-01T00:00:00Z".parse().expect("a time");
        let errors = |doc: &str| -> Vec<String> {
            parse("dags/m.yml", doc, at)
                .errors
                .iter()
                .map(|e| format!("{}:{} {}", e.line, e.column, e.message))
                .collect()
        };
        assert_eq!(
            errors(&format!("{head}{ok}{}", upstream("\"+p['k']\""))),
            ["23:17 task `u`: cannot map over XCom with custom key 'k' from task `p`"]
        );
        // dag-factory 1.1.0 turns `+task` into a reference only for a TaskFlow task's
        // arguments, and `task.output` / `XcomArg(task)` only for an operator's: the
        // other forms stay strings, which Airflow's `expand` refuses.
        assert_eq!(
            errors(&format!("{head}{ok}{}", upstream("p.output"))),
            ["23:17 task `u`: expand() got an unexpected type 'str' for keyword argument 'number'"]
        );
        let bash = |v: &str| {
            format!(
                "    - task_id: b\n      operator: airflow.providers.standard.operators.bash.BashOperator\n      expand:\n        bash_command: {v}\n"
            )
        };
        assert_eq!(
            errors(&format!("{head}{ok}{}", bash("+p"))),
            [
                "22:23 task `b`: BashOperator.expand() got an unexpected type 'str' for keyword argument bash_command"
            ]
        );
        assert_eq!(
            errors(&format!("{head}{ok}{}", bash("p.output"))),
            Vec::<String>::new()
        );
        let p = parse("dags/m.yml", &format!("{head}{ok}{}", upstream("+p")), at);
        assert_eq!(
            p.dags[0].tasks[2].mapped.as_deref(),
            Some(&Mapped {
                args: vec![(
                    "number".into(),
                    MapSource::Upstream {
                        task_id: "p".into()
                    }
                )]
            })
        );
        let p = parse("dags/m.yml", &format!("{head}{ok}"), at);
        assert_eq!(errors(&format!("{head}{ok}")), Vec::<String>::new());
        let tasks = &p.dags[0].tasks;
        let p0 = tasks[0].instance(1).expect("an instance");
        let call = p0.python.expect("a Python task");
        assert_eq!(
            (call.op_args, call.op_kwargs["k"].clone()),
            (vec![json!(2)], json!(1))
        );
        let t0 = tasks[1].instance(0).expect("an instance");
        let call = t0.python.expect("a Python task");
        assert_eq!(
            serde_json::Value::Object(call.op_kwargs),
            json!({"label": true, "number": 3})
        );
    }

    /// The messages are Airflow 3.3.2's and dag-factory 1.1.0's, read from the real ones.
    #[test]
    fn what_airflow_refuses() {
        let cases = [
            (
                "      bash_command: echo\n      expand:\n        retries: [1, 2]\n",
                "9:9 task `a`: BashOperator.partial(...).expand() refuses it: unmappable or already specified argument: retries",
            ),
            (
                "      bash_command: echo\n      expand:\n        task_id: [x, y]\n",
                "9:9 task `a`: BashOperator.partial(...).expand() refuses it: unmappable or already specified argument: task_id",
            ),
            (
                "      partial:\n        bash_command: echo\n      expand:\n        bash_command: [x, y]\n",
                "10:9 task `a`: BashOperator.partial(...).expand() refuses it: unmappable or already specified argument: bash_command",
            ),
            (
                "      bash_command: echo\n      env: {}\n      expand:\n        bash_command: [x]\n        env: [{}]\n",
                "10:9 task `a`: BashOperator.partial(...).expand() refuses it: unmappable or already specified arguments: bash_command, env",
            ),
            (
                "      bash_command: echo\n      partial:\n        bash_command: echo 2\n      expand:\n        env: [{A: '1'}]\n",
                "9:9 task `a`: `bash_command` is both in `partial` and in the task's own arguments (dag-factory: \"Duplicated partial kwarg! It's already in task_params.\")",
            ),
            (
                "      expand:\n        bash_command: [x]\n        nope: [1]\n",
                "9:9 task `a`: BashOperator.expand() got an unexpected keyword argument 'nope'",
            ),
            (
                "      expand:\n        bash_command: echo 1\n",
                "8:23 task `a`: BashOperator.expand() got an unexpected type 'str' for keyword argument bash_command",
            ),
            (
                "      partial:\n        nope: 1\n      expand:\n        bash_command: [x]\n",
                "8:9 task `a`: BashOperator.partial() got an unexpected keyword argument 'nope'",
            ),
            (
                "      bash_command: echo\n      expand:\n        pool: [a, b]\n",
                "9:9 task `a`: updraft cannot map BashOperator over `pool` yet (Airflow can)",
            ),
        ];
        for (task, want) in cases {
            let got = error(task);
            assert!(got.starts_with(want), "\n{task}\nwant {want}\ngot  {got}");
        }
        // dag-factory 1.1.0 hands `expand_kwargs` to the operator, which refuses it.
        let got =
            error("      bash_command: echo\n      expand_kwargs:\n        - {bash_command: x}\n");
        assert!(got.contains("takes no argument `expand_kwargs`"), "{got}");
        // default_args reach `partial` too.
        let p = parse(
            "dags/m.yml",
            "m:\n  default_args:\n    pool: p\n  schedule: null\n  start_date: 2024-01-01\n  tasks:\n    - task_id: a\n      operator: airflow.providers.standard.operators.empty.EmptyOperator\n      expand:\n        pool: [a]\n",
            "2025-01-01T00:00:00Z".parse().expect("a time"),
        );
        assert_eq!(p.errors.len(), 1);
        assert!(
            p.errors[0]
                .message
                .ends_with("unmappable or already specified argument: pool"),
            "{}",
            p.errors[0].message
        );
    }
}
