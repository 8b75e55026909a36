//! The tasks and task groups of one DAG: full ids, settings, dependencies and order.
//!
//! Group ids nest (`outer.inner`) and prefix their tasks' ids, as Airflow's
//! `prefix_group_id` does by default. Dependencies on groups are expanded here into
//! task-level upstream lists, so the rest of updraft never sees a group edge.

use std::collections::{BTreeSet, HashMap, VecDeque};

use super::yaml::{Node, Pos, Value};
use super::{Ctx, ImportError, check_id, mapping, operators, sensors, values};
use crate::model::{
    Callback, GROUP_ID_LEN, ID_LEN, MapSource, Operator, PythonCall, PythonKind, Task, TaskGroup,
    TriggerRule, XcomArg,
};

/// Import paths of the operators updraft runs, by the names Airflow 2 and 3 use.
const BASH_OPERATORS: &[&str] = &[
    "airflow.providers.standard.operators.bash.BashOperator",
    "airflow.operators.bash.BashOperator",
    "airflow.operators.bash_operator.BashOperator",
    "BashOperator",
];
const EMPTY_OPERATORS: &[&str] = &[
    "airflow.providers.standard.operators.empty.EmptyOperator",
    "airflow.operators.empty.EmptyOperator",
    "airflow.operators.dummy.DummyOperator",
    "airflow.operators.dummy_operator.DummyOperator",
    "EmptyOperator",
];
const PYTHON_OPERATORS: &[&str] = &[
    "airflow.providers.standard.operators.python.PythonOperator",
    "airflow.operators.python.PythonOperator",
    "airflow.operators.python_operator.PythonOperator",
];
const BRANCH_OPERATORS: &[&str] = &[
    "airflow.providers.standard.operators.python.BranchPythonOperator",
    "airflow.operators.python.BranchPythonOperator",
    "airflow.operators.python_operator.BranchPythonOperator",
];
const SHORT_CIRCUIT_OPERATORS: &[&str] = &[
    "airflow.providers.standard.operators.python.ShortCircuitOperator",
    "airflow.operators.python.ShortCircuitOperator",
    "airflow.operators.python_operator.ShortCircuitOperator",
];
const SENSOR_OPERATORS: &[&str] = &[
    "airflow.providers.standard.sensors.python.PythonSensor",
    "airflow.sensors.python.PythonSensor",
];
use sensors::SENSOR_ARGS;
/// TaskFlow's `@task` by the paths dag-factory can import it from in Airflow 3.3
/// (`import_string`: `airflow.sdk.task.branch` is an attribute, not a path, so the branch
/// and short-circuit forms are only reachable by their modules' names).
const TASK_DECORATORS: &[&str] = &[
    "airflow.sdk.task",
    "airflow.sdk.definitions.decorators.task",
    "airflow.decorators.task",
    "airflow.providers.standard.decorators.python.python_task",
];
const BRANCH_DECORATORS: &[&str] =
    &["airflow.providers.standard.decorators.branch_python.branch_task"];
const SHORT_CIRCUIT_DECORATORS: &[&str] =
    &["airflow.providers.standard.decorators.short_circuit.short_circuit_task"];
const SENSOR_DECORATORS: &[&str] = &["airflow.providers.standard.decorators.sensor.sensor_task"];

/// The arguments Airflow 3.3's `BaseOperator` takes (`inspect.signature`); with the ones
/// below and dag-factory's own, these are the keys a task may have. Airflow refuses any
/// other ("Invalid arguments were passed to BashOperator"), so updraft does too.
const BASE_OPERATOR_ARGS: &[&str] = &[
    "allow_nested_operators",
    "dag",
    "default_args",
    "depends_on_past",
    "do_xcom_push",
    "doc",
    "doc_json",
    "doc_md",
    "doc_rst",
    "doc_yaml",
    "email",
    "email_on_failure",
    "email_on_retry",
    "end_date",
    "execution_timeout",
    "executor",
    "executor_config",
    "ignore_first_depends_on_past",
    "inlets",
    "logger_name",
    "map_index_template",
    "max_active_tis_per_dag",
    "max_active_tis_per_dagrun",
    "max_retry_delay",
    "multiple_outputs",
    "on_execute_callback",
    "on_failure_callback",
    "on_retry_callback",
    "on_skipped_callback",
    "on_success_callback",
    "outlets",
    "owner",
    "params",
    "pool",
    "pool_slots",
    "post_execute",
    "pre_execute",
    "priority_weight",
    "queue",
    "render_template_as_native_obj",
    "resources",
    "retries",
    "retry_delay",
    "retry_exponential_backoff",
    "retry_policy",
    "run_as_user",
    "sla",
    "start_date",
    "task_display_name",
    "task_group",
    "task_id",
    "trigger_rule",
    "wait_for_downstream",
    "wait_for_past_depends_before_skipping",
    "weight_rule",
];
/// What BashOperator takes besides.
const BASH_OPERATOR_ARGS: &[&str] = &[
    "append_env",
    "bash_command",
    "cwd",
    "env",
    "output_encoding",
    "output_processor",
    "skip_on_exit_code",
];
/// What PythonOperator takes besides, with the keys dag-factory turns into its callable.
const PYTHON_OPERATOR_ARGS: &[&str] = &[
    "python_callable",
    "op_args",
    "op_kwargs",
    "templates_dict",
    "templates_exts",
    "show_return_value_in_logs",
    "python_callable_name",
    "python_callable_file",
];
/// Task keys dag-factory reads and removes before it builds the operator (`expand` and
/// `partial`: dynamic task mapping, read in `mapping.rs`).
const DAG_FACTORY_TASK_KEYS: &[&str] = &[
    "operator",
    "dependencies",
    "task_group_name",
    "parent_group_name",
    "variables_as_arguments",
    "expand",
    "partial",
    "on_execute_callback_name",
    "on_execute_callback_file",
    "on_success_callback_name",
    "on_success_callback_file",
    "on_failure_callback_name",
    "on_failure_callback_file",
    "on_retry_callback_name",
    "on_retry_callback_file",
    "on_skipped_callback_name",
    "on_skipped_callback_file",
];
/// The arguments of Airflow 3.3's `TaskGroup`, and the group keys dag-factory reads.
const TASK_GROUP_KEYS: &[&str] = &[
    "add_suffix_on_collision",
    "dag",
    "default_args",
    "doc_md",
    "group_display_name",
    "group_id",
    "parent_group",
    "prefix_group_id",
    "tooltip",
    "ui_color",
    "ui_fgcolor",
    "group_name",
    "dependencies",
    "parent_group_name",
    "operator",
    "task_group_name",
];

/// Airflow's `BaseOperator` defaults.
const DEFAULT_RETRY_DELAY_SECS: f64 = 300.0;
const DEFAULT_POOL: &str = "default_pool";
const DEFAULT_OWNER: &str = "airflow";

/// One entry of `tasks` or `task_groups`, in either form.
pub(super) struct Item<'a> {
    pub(super) name: String,
    /// Of the `task_id`/`group_name` value in list form, of the key in dict form.
    pub(super) pos: Pos,
    pub(super) cfg: &'a Node,
}

/// What a `dependencies` entry names.
#[derive(Clone, Copy)]
enum Ref {
    Task(usize),
    Group(usize),
}

/// Builds the tasks (in a topological order) and groups of the DAG `cfg`.
pub(super) fn build(
    cx: &mut Ctx,
    cfg: &Node,
    default_args: Option<&Node>,
) -> (Vec<Task>, Vec<TaskGroup>) {
    let groups = items(cx, cfg.field("task_groups"), "task_groups", "group_name");
    let parents = parents(cx, &groups);
    // Full ids and their lengths in characters. An id over `ID_LEN` is an error, and is
    // kept only as far as it is needed to show it: a file of deeply nested groups must
    // not build ids of square size.
    let mut group_lens = Vec::with_capacity(groups.len());
    let group_ids: Vec<String> = (0..groups.len())
        .map(|g| {
            let mut chain: Vec<&str> = ancestors(&parents, Some(g))
                .iter()
                .map(|&a| groups[a].name.as_str())
                .collect();
            chain.reverse();
            let len = chain.iter().map(|n| n.chars().count() + 1).sum::<usize>() - 1;
            group_lens.push(len);
            let mut id = String::new();
            for name in chain {
                if id.len() > ID_LEN {
                    break;
                }
                if !id.is_empty() {
                    id.push('.');
                }
                id.push_str(name);
            }
            id
        })
        .collect();
    // Only where a chain first passes the limit: the groups inside are too long with it.
    for (g, id) in group_ids.iter().enumerate() {
        if parents[g].is_none_or(|p| group_lens[p] <= ID_LEN) {
            long_id(cx, id, group_lens[g], groups[g].pos, "task group");
        }
    }
    for group in &groups {
        unknown_keys(cx, group, "task group", "TaskGroup", &[TASK_GROUP_KEYS]);
    }
    let items = items(cx, cfg.field("tasks"), "tasks", "task_id");

    let mut tasks = Vec::new();
    // For each task, the groups it is in, innermost first.
    let mut member: Vec<Vec<usize>> = Vec::new();
    // Per task, the tasks its TaskFlow arguments take results from.
    let mut xcom_refs: Vec<Vec<(String, Pos)>> = Vec::new();
    for item in &items {
        let owner = format!("task `{}`", item.name);
        let group = group_named(cx, &groups, item.cfg, "task_group_name", &owner);
        let chain = ancestors(&parents, group);
        // `partial` wins over the task's settings (dag-factory merges it in), which win
        // over group default_args (inner first), which win over the DAG's.
        let partial = mapping::partial(cx, item.cfg);
        let mut layers: Vec<&Node> = partial.into_iter().collect();
        layers.push(item.cfg);
        for &g in &chain {
            layers.extend(cx.mapping(groups[g].cfg.field("default_args"), "default_args"));
        }
        layers.extend(default_args);
        let task_id = match group {
            Some(g) => format!("{}.{}", group_ids[g], item.name),
            None => item.name.clone(),
        };
        if let Some(g) = group.filter(|&g| group_lens[g] <= ID_LEN) {
            let len = group_lens[g] + 1 + item.name.chars().count();
            long_id(cx, &task_id, len, item.pos, "task");
        }
        let mut refs = Vec::new();
        tasks.push(task(
            cx,
            item,
            &layers,
            partial,
            task_id,
            group.map(|g| group_ids[g].clone()),
            &mut refs,
        ));
        xcom_refs.push(refs);
        member.push(chain);
    }

    let task_index: HashMap<&str, usize> = items
        .iter()
        .enumerate()
        .map(|(i, t)| (t.name.as_str(), i))
        .collect();
    let group_index: HashMap<&str, usize> = groups
        .iter()
        .enumerate()
        .map(|(i, g)| (g.name.as_str(), i))
        .collect();
    let deps_of = |cx: &mut Ctx, item: &Item, what: &str| -> Vec<Ref> {
        let names = cx
            .get(&[item.cfg], "dependencies", Node::strings)
            .unwrap_or_default();
        let mut refs = Vec::new();
        for (name, pos) in names {
            match (task_index.get(name.as_str()), group_index.get(name.as_str())) {
                (Some(&t), _) => refs.push(Ref::Task(t)),
                (None, Some(&g)) => refs.push(Ref::Group(g)),
                (None, None) => cx.errors.push(pos.error(format!(
                    "{what} `{}` depends on `{name}`, which is neither a task nor a task group of this DAG",
                    item.name
                ))),
            }
        }
        refs
    };
    let mut task_deps: Vec<Vec<Ref>> = items.iter().map(|i| deps_of(cx, i, "task")).collect();
    // A result passed as an argument (an XComArg) makes its task upstream, as in Airflow.
    let full_ids: Vec<String> = tasks.iter().map(|t| t.task_id.clone()).collect();
    for (t, refs) in xcom_refs.iter().enumerate() {
        for (name, pos) in refs {
            match task_index.get(name.as_str()) {
                Some(&u) => {
                    task_deps[t].push(Ref::Task(u));
                    if let Some(m) = tasks[t].mapped.as_mut() {
                        for (_, src) in &mut m.args {
                            if let MapSource::Upstream { task_id } = src
                                && task_id == name
                            {
                                *task_id = full_ids[u].clone();
                            }
                        }
                    }
                    if let Some(call) = tasks[t].python.as_mut() {
                        for arg in call.xcom_args.iter_mut().filter(|a| &a.task_id == name) {
                            arg.task_id = full_ids[u].clone();
                        }
                    }
                }
                None => cx.errors.push(pos.error(format!(
                    "task `{}` takes the result of `{name}`, which is not a task of this DAG",
                    items[t].name
                ))),
            }
        }
    }
    let group_deps: Vec<Vec<Ref>> = groups
        .iter()
        .map(|g| deps_of(cx, g, "task group"))
        .collect();

    let up = upstreams(&member, &task_deps, &group_deps);
    let order = match order(&up) {
        Ok(order) => order,
        Err(cycle) => {
            let names: Vec<&str> = cycle.iter().map(|&t| tasks[t].task_id.as_str()).collect();
            if let (Some(&first), Some(name)) = (cycle.first(), names.first()) {
                let first = &items[first];
                let pos = first
                    .cfg
                    .entry("dependencies")
                    .map_or(first.pos, |e| e.key_pos);
                cx.errors.push(pos.error(format!(
                    "dependency cycle: {} -> {name}",
                    names.join(" -> ")
                )));
            }
            (0..tasks.len()).collect()
        }
    };
    for (t, ups) in up.iter().enumerate() {
        let mut ids: Vec<String> = ups.iter().map(|&u| tasks[u].task_id.clone()).collect();
        ids.sort();
        tasks[t].upstream = ids;
    }
    let native = cfg
        .field("render_template_as_native_obj")
        .is_some_and(|n| n.value == Value::Bool(true));
    for call in tasks.iter_mut().filter_map(|t| t.python.as_mut()) {
        call.native = native;
    }
    let mut slots: Vec<Option<Task>> = tasks.into_iter().map(Some).collect();
    let tasks = order.into_iter().filter_map(|t| slots[t].take()).collect();

    let groups = groups
        .iter()
        .enumerate()
        .map(|(g, item)| TaskGroup {
            group_id: group_ids[g].clone(),
            parent: parents[g].map(|p| group_ids[p].clone()),
            tooltip: cx.get(&[item.cfg], "tooltip", Node::string),
            line: item.pos.line,
        })
        .collect();
    (tasks, groups)
}

/// Records each key of `item` that none of `known` holds: what `takes` (the operator or
/// `TaskGroup`) would refuse as an argument it does not have.
fn unknown_keys(cx: &mut Ctx, item: &Item, what: &str, takes: &str, known: &[&[&str]]) {
    for e in item.cfg.entries() {
        if !known.iter().any(|keys| keys.contains(&e.key.as_str())) {
            cx.errors.push(e.key_pos.error(format!(
                "{what} `{}`: {takes} takes no argument `{}` (Airflow 3 refuses unknown arguments)",
                item.name, e.key
            )));
        }
    }
}

/// The entries of `tasks` (or `task_groups`), from list form (each names itself with
/// `id_key`) or dict form (keyed by name), as dag-factory's `_normalise_tasks_config`.
fn items<'a>(cx: &mut Ctx, n: Option<&'a Node>, key: &str, id_key: &str) -> Vec<Item<'a>> {
    let Some(n) = n else { return Vec::new() };
    let mut out: Vec<Item> = Vec::new();
    match &n.value {
        Value::List(list) => {
            for entry in list {
                if !entry.is_map() {
                    let found = entry.describe();
                    cx.errors.push(entry.pos.error(format!(
                        "each item of `{key}` must be a mapping with a `{id_key}`, not {found}"
                    )));
                    continue;
                }
                let Some(id) = entry.field(id_key) else {
                    cx.errors.push(
                        entry
                            .pos
                            .error(format!("this item of `{key}` has no `{id_key}`")),
                    );
                    continue;
                };
                let Some(name) = cx.ok(id.string(id_key)) else {
                    continue;
                };
                if let Some(first) = out.iter().find(|i| i.name == name) {
                    cx.errors.push(id.pos.error(format!(
                        "duplicate {id_key} `{name}`: it is already used on line {}",
                        first.pos.line
                    )));
                    continue;
                }
                out.push(Item {
                    name,
                    pos: id.pos,
                    cfg: entry,
                });
            }
        }
        Value::Map(entries) => {
            for e in entries {
                if !e.value.is_map() {
                    let found = e.value.describe();
                    cx.errors.push(e.key_pos.error(format!(
                        "`{}` in `{key}` must be a mapping of its settings, not {found}",
                        e.key
                    )));
                    continue;
                }
                out.push(Item {
                    name: e.key.clone(),
                    pos: e.key_pos,
                    cfg: &e.value,
                });
            }
        }
        _ => {
            let found = n.describe();
            cx.errors.push(
                n.pos
                    .error(format!("`{key}` must be a list or a mapping, not {found}")),
            );
        }
    }
    // Airflow's group ids may not hold dots: the dot separates nested ids.
    let (dots, max) = if key == "tasks" {
        (true, ID_LEN)
    } else {
        (false, GROUP_ID_LEN)
    };
    for item in &out {
        cx.ok(check_id(&item.name, item.pos, id_key, dots, max));
    }
    out
}

/// A full id (a group's or a task's, with the ids of the groups around it) longer than
/// Airflow's `ID_LEN`: an error at the item, naming the length and the limit.
fn long_id(cx: &mut Ctx, full_id: &str, len: usize, pos: Pos, what: &str) {
    if len > ID_LEN {
        let start: String = full_id.chars().take(40).collect();
        cx.errors.push(pos.error(format!(
            "the full id of this {what}, `{start}...` with the ids of the task groups around it, is {len} \
             characters long; Airflow's limit is {ID_LEN}"
        )));
    }
}

/// Each group's parent, from `parent_group_name`. A chain of parents that comes round is an
/// error, reported once, at the group of the chain that comes first in the file.
fn parents(cx: &mut Ctx, groups: &[Item]) -> Vec<Option<usize>> {
    let parents: Vec<Option<usize>> = groups
        .iter()
        .map(|g| {
            let owner = format!("task group `{}`", g.name);
            group_named(cx, groups, g.cfg, "parent_group_name", &owner)
        })
        .collect();
    for (g, group) in groups.iter().enumerate() {
        let chain = ancestors(&parents, Some(g));
        let came_round = chain.last().and_then(|&top| parents[top]) == Some(g);
        if came_round && chain.iter().all(|&c| c >= g) {
            let names: Vec<&str> = chain.iter().map(|&c| groups[c].name.as_str()).collect();
            let pos = group
                .cfg
                .field("parent_group_name")
                .map_or(group.pos, |n| n.pos);
            cx.errors.push(pos.error(format!(
                "task groups are nested in a circle: {} -> {}",
                names.join(" -> "),
                group.name
            )));
        }
    }
    parents
}

/// `group` and the groups around it, innermost first; stops before it would come round.
fn ancestors(parents: &[Option<usize>], group: Option<usize>) -> Vec<usize> {
    let mut chain = Vec::new();
    // A set, not a search of `chain`: deep nesting must cost depth, not depth squared.
    let mut seen = vec![false; parents.len()];
    let mut next = group;
    while let Some(g) = next {
        if seen[g] {
            break;
        }
        seen[g] = true;
        chain.push(g);
        next = parents[g];
    }
    chain
}

/// The group that `key` of `cfg` names, if it names one; a name not in `task_groups` is
/// an error.
fn group_named(cx: &mut Ctx, groups: &[Item], cfg: &Node, key: &str, owner: &str) -> Option<usize> {
    let node = cfg.field(key)?;
    let name = cx.ok(node.string(key))?;
    let found = groups.iter().position(|g| g.name == name);
    if found.is_none() {
        cx.errors.push(node.pos.error(format!(
            "{owner} names the task group `{name}`, which is not defined in `task_groups`"
        )));
    }
    found
}

/// One task's settings. Values that are wrong are reported and replaced by defaults, so
/// that every item still yields a task and indices stay aligned.
fn task(
    cx: &mut Ctx,
    item: &Item,
    layers: &[&Node],
    partial: Option<&Node>,
    task_id: String,
    group: Option<String>,
    refs: &mut Vec<(String, Pos)>,
) -> Task {
    let operator = match (item.cfg.field("operator"), item.cfg.field("decorator")) {
        (Some(n), _) => cx.ok(n.string("operator")).and_then(|path| {
            if BASH_OPERATORS.contains(&path.as_str()) {
                Some(Operator::Bash)
            } else if EMPTY_OPERATORS.contains(&path.as_str()) {
                Some(Operator::Empty)
            } else if PYTHON_OPERATORS.contains(&path.as_str()) {
                Some(Operator::Python(PythonKind::Call))
            } else if BRANCH_OPERATORS.contains(&path.as_str()) {
                Some(Operator::Python(PythonKind::Branch))
            } else if SHORT_CIRCUIT_OPERATORS.contains(&path.as_str()) {
                Some(Operator::Python(PythonKind::ShortCircuit))
            } else if SENSOR_OPERATORS.contains(&path.as_str()) {
                Some(Operator::Python(PythonKind::Sensor))
            } else if let Some(kind) = super::hitl::operator(&path) {
                Some(Operator::Hitl(kind))
            } else if let Some(kind) = sensors::kind_of(&path) {
                Some(Operator::Sensor(kind))
            } else if let Some(kind) = crate::model::Builtin::by_path(&path) {
                Some(Operator::Builtin(kind))
            } else {
                let hitl = super::hitl::paths();
                let known = [
                    BASH_OPERATORS,
                    EMPTY_OPERATORS,
                    PYTHON_OPERATORS,
                    BRANCH_OPERATORS,
                    SHORT_CIRCUIT_OPERATORS,
                    SENSOR_OPERATORS,
                    &hitl,
                    &sensors::NATIVE_SENSORS
                        .iter()
                        .map(|(p, _)| *p)
                        .collect::<Vec<_>>(),
                    &crate::model::builtin_paths(),
                ]
                .concat()
                .join(", ");
                cx.errors.push(
                    n.pos
                        .error(format!("unknown operator `{path}`: updraft runs {known}")),
                );
                None
            }
        }),
        (None, Some(n)) => cx.ok(n.string("decorator")).and_then(|path| {
            if TASK_DECORATORS.contains(&path.as_str()) {
                Some(Operator::TaskFlow(PythonKind::Call))
            } else if BRANCH_DECORATORS.contains(&path.as_str()) {
                Some(Operator::TaskFlow(PythonKind::Branch))
            } else if SHORT_CIRCUIT_DECORATORS.contains(&path.as_str()) {
                Some(Operator::TaskFlow(PythonKind::ShortCircuit))
            } else if SENSOR_DECORATORS.contains(&path.as_str()) {
                Some(Operator::TaskFlow(PythonKind::Sensor))
            } else {
                let known = [
                    TASK_DECORATORS,
                    BRANCH_DECORATORS,
                    SHORT_CIRCUIT_DECORATORS,
                    SENSOR_DECORATORS,
                ];
                cx.errors.push(n.pos.error(format!(
                    "unknown decorator `{path}`: updraft runs {}",
                    known.concat().join(", ")
                )));
                None
            }
        }),
        (None, None) => {
            cx.errors.push(item.pos.error(format!(
                "task `{}` has no `operator`; give it one such as airflow.providers.standard.operators.bash.BashOperator",
                item.name
            )));
            None
        }
    };
    let bash = operator == Some(Operator::Bash);
    match operator {
        Some(Operator::Bash) => unknown_keys(
            cx,
            item,
            "task",
            "BashOperator",
            &[
                BASE_OPERATOR_ARGS,
                BASH_OPERATOR_ARGS,
                DAG_FACTORY_TASK_KEYS,
            ],
        ),
        Some(Operator::Empty) => unknown_keys(
            cx,
            item,
            "task",
            "EmptyOperator",
            &[BASE_OPERATOR_ARGS, DAG_FACTORY_TASK_KEYS],
        ),
        Some(op @ Operator::Python(kind)) => {
            let own: &[&str] = match kind {
                PythonKind::ShortCircuit => &["ignore_downstream_trigger_rules"],
                PythonKind::Sensor => SENSOR_ARGS,
                _ => &[],
            };
            unknown_keys(
                cx,
                item,
                "task",
                op.class_name(),
                &[
                    BASE_OPERATOR_ARGS,
                    PYTHON_OPERATOR_ARGS,
                    DAG_FACTORY_TASK_KEYS,
                    own,
                ],
            )
        }
        Some(op @ Operator::Hitl(kind)) => unknown_keys(
            cx,
            item,
            "task",
            op.class_name(),
            &[
                BASE_OPERATOR_ARGS,
                DAG_FACTORY_TASK_KEYS,
                &super::hitl::args(kind),
            ],
        ),
        Some(op @ Operator::Sensor(kind)) => unknown_keys(
            cx,
            item,
            "task",
            op.class_name(),
            &[
                BASE_OPERATOR_ARGS,
                SENSOR_ARGS,
                sensors::own_args(kind),
                DAG_FACTORY_TASK_KEYS,
            ],
        ),
        Some(op @ Operator::Builtin(kind)) => unknown_keys(
            cx,
            item,
            "task",
            op.class_name(),
            &[
                BASE_OPERATOR_ARGS,
                DAG_FACTORY_TASK_KEYS,
                kind.spec().args,
                super::operators::callable_forms(kind),
            ],
        ),
        // Every other key of a TaskFlow task is an argument of its callable.
        Some(Operator::TaskFlow(_)) | None => {}
    }
    let hitl = match operator {
        Some(Operator::Hitl(kind)) => {
            super::hitl::build(cx, item.cfg, layers, kind, item.pos, &item.name)
        }
        _ => None,
    };
    let sensor = match operator {
        Some(Operator::Sensor(kind)) => Some(sensors::native(cx, item, layers, kind)),
        _ => None,
    };
    let args = match operator {
        Some(Operator::Builtin(kind)) => {
            Some(operators::args(cx, layers, item.cfg, &item.name, kind))
        }
        _ => None,
    };
    let python = match operator {
        Some(op @ (Operator::Python(_) | Operator::TaskFlow(_))) => {
            python_call(cx, item, partial, op, refs)
        }
        _ => None,
    };
    let mapped = operator.and_then(|operator| {
        let t = mapping::Task {
            name: &item.name,
            cfg: item.cfg,
            operator,
            below: &layers[usize::from(partial.is_some())..],
            factory_keys: DAG_FACTORY_TASK_KEYS,
            base_args: BASE_OPERATOR_ARGS,
        };
        mapping::expand(cx, &t, partial)
    });
    // A task expanded over another's result has that task upstream, as dag-factory's
    // XComArg makes it.
    for e in item.cfg.field("expand").map_or(&[][..], Node::entries) {
        if let Value::Str(text) = &e.value.value
            && let Some(task) = mapping::upstream_task(text)
        {
            refs.push((task, e.value.pos));
        }
    }
    // Even when `expand` is refused, an argument it names is not also missing.
    let expanded = |key: &str| {
        item.cfg
            .field("expand")
            .is_some_and(|e| e.field(key).is_some())
    };
    let bash_command = cx
        .get(layers, "bash_command", Node::string)
        .filter(|_| bash);
    if bash
        && !expanded("bash_command")
        && !layers.iter().any(|l| l.field("bash_command").is_some())
    {
        cx.errors.push(item.pos.error(format!(
            "task `{}` is a BashOperator but has no `bash_command`",
            item.name
        )));
    }
    let rule = |n: &Node, key: &str| {
        let name = n.string(key)?;
        TriggerRule::parse(&name).ok_or_else(|| {
            let all: Vec<&str> = TriggerRule::ALL.iter().map(|r| r.as_str()).collect();
            n.pos.error(format!(
                "unknown trigger_rule `{name}`; use one of {}",
                all.join(", ")
            ))
        })
    };
    // Airflow casts retries with int(), so "3" is 3.
    let retries = |n: &Node, key: &str| match &n.value {
        Value::Str(s) => s.trim().parse().or_else(|_| n.count(key)),
        _ => n.count(key),
    };
    // Airflow 3.1 made the backoff a multiplier, where 0 turns it off.
    let backoff = |n: &Node, key: &str| match n.value {
        Value::Int(i) => Ok(i != 0),
        Value::Float(f) => Ok(f != 0.0),
        _ => n.boolean(key),
    };
    let slots = |n: &Node, key: &str| match n.count(key)? {
        0 => Err(n.pos.error("`pool_slots` must be at least 1")),
        slots => Ok(slots),
    };
    Task {
        task_id,
        line: item.pos.line,
        operator: operator.unwrap_or(Operator::Empty),
        task_group: group,
        upstream: Vec::new(),
        bash_command,
        env: cx.get(layers, "env", env).filter(|_| bash),
        append_env: cx.get(layers, "append_env", Node::boolean).unwrap_or(false) && bash,
        cwd: cx.get(layers, "cwd", Node::string).filter(|_| bash),
        trigger_rule: cx
            .get(layers, "trigger_rule", rule)
            .unwrap_or(TriggerRule::AllSuccess),
        retries: cx.get(layers, "retries", retries).unwrap_or(0),
        retry_delay_secs: cx
            .get(layers, "retry_delay", values::timedelta)
            .unwrap_or(DEFAULT_RETRY_DELAY_SECS),
        retry_exponential_backoff: cx
            .get(layers, "retry_exponential_backoff", backoff)
            .unwrap_or(false),
        max_retry_delay_secs: cx.get(layers, "max_retry_delay", values::timedelta),
        // A human-in-the-loop task's `execution_timeout` is its `response_timeout`
        // (Airflow moves it there and clears it).
        execution_timeout_secs: cx
            .get(layers, "execution_timeout", values::timedelta)
            .filter(|_| !matches!(operator, Some(Operator::Hitl(_)))),
        pool: cx
            .get(layers, "pool", Node::string)
            .unwrap_or_else(|| DEFAULT_POOL.to_string()),
        pool_slots: cx.get(layers, "pool_slots", slots).unwrap_or(1),
        priority_weight: cx
            .get(layers, "priority_weight", Node::integer)
            .unwrap_or(1),
        owner: cx
            .get(layers, "owner", Node::string)
            .unwrap_or_else(|| DEFAULT_OWNER.to_string()),
        doc_md: cx.get(layers, "doc_md", Node::string),
        python: python.map(Box::new),
        callbacks: callbacks(cx, layers),
        map_index_template: cx.get(layers, "map_index_template", Node::string),
        max_active_tis_per_dag: cx.get(layers, "max_active_tis_per_dag", Node::count),
        max_active_tis_per_dagrun: cx.get(layers, "max_active_tis_per_dagrun", Node::count),
        mapped: mapped.map(Box::new),
        hitl: hitl.map(Box::new),
        sensor: sensor.map(Box::new),
        args: args.map(Box::new),
        outlets: asset_list(cx, layers, "outlets"),
        inlets: asset_list(cx, layers, "inlets"),
    }
}

/// `outlets` or `inlets`, read as dag-factory 1.1.0 reads them.
fn asset_list(cx: &mut Ctx, layers: &[&Node], key: &str) -> Vec<crate::model::AssetCond> {
    let read = cx.read;
    cx.get(layers, key, |n, key| {
        super::assets::task_assets(n, key, read)
    })
    .unwrap_or_default()
}

/// Airflow's task callbacks, by the names dag-factory reads.
const CALLBACKS: &[&str] = &[
    "on_execute_callback",
    "on_success_callback",
    "on_failure_callback",
    "on_retry_callback",
    "on_skipped_callback",
];

/// A task's callbacks as dag-factory 1.1.0's `set_callback` reads them, from the first of
/// `layers` (the task, its groups' `default_args`, the DAG's) that sets each: `module.func`;
/// `X_name` + `X_file` (an absolute path; it wins over `X` in the same layer); or a mapping
/// whose `callback` names the function and whose other keys are its keyword arguments. A
/// notifier of a provider (`airflow.providers....`) cannot run here: a warning, and no
/// callback.
fn callbacks(cx: &mut Ctx, layers: &[&Node]) -> Vec<Callback> {
    callbacks_named(cx, layers, CALLBACKS)
}

/// The DAG's own callbacks (Airflow's `DAG(on_success_callback=..., on_failure_callback=...)`),
/// in the same forms, from the DAG's keys only: dag-factory hands `default_args` to tasks.
pub(crate) fn dag_callbacks(cx: &mut Ctx, dag: &Node) -> Vec<Callback> {
    callbacks_named(cx, &[dag], &["on_success_callback", "on_failure_callback"])
}

fn callbacks_named(cx: &mut Ctx, layers: &[&Node], names: &[&str]) -> Vec<Callback> {
    let mut out = Vec::new();
    for &on in names {
        let (name_key, file_key) = (format!("{on}_name"), format!("{on}_file"));
        let Some(layer) = layers.iter().find(|l| {
            l.field(on).is_some_and(|n| n.value != Value::Null)
                || (l.field(&name_key).is_some() && l.field(&file_key).is_some())
        }) else {
            continue;
        };
        if let (Some(name), Some(file)) = (layer.field(&name_key), layer.field(&file_key)) {
            let (Some(name), Some(path)) =
                (cx.ok(name.string(&name_key)), cx.ok(file.string(&file_key)))
            else {
                continue;
            };
            if !is_absolute(&path) {
                cx.errors.push(file.pos.error(format!(
                    "`{file_key}` must be an absolute path, not `{path}` (`$CONFIG_ROOT_DIR/...` is one way)"
                )));
                continue;
            }
            out.push(Callback {
                on: on.to_string(),
                callable: name,
                file: Some(path),
                kwargs: serde_json::Map::new(),
            });
            continue;
        }
        let Some(n) = layer.field(on) else { continue };
        let (callable, kwargs, pos) = match &n.value {
            Value::Str(s) => (s.clone(), serde_json::Map::new(), n.pos),
            Value::Map(entries) => {
                let Some(c) = n.field("callback") else {
                    cx.errors.push(n.pos.error(format!(
                        "`{on}` as a mapping needs a `callback`: the function's `module.name`"
                    )));
                    continue;
                };
                let Some(callable) = cx.ok(c.string("callback")) else {
                    continue;
                };
                let kwargs = entries
                    .iter()
                    .filter(|e| e.key != "callback")
                    .map(|e| (e.key.clone(), e.value.to_json()))
                    .collect();
                (callable, kwargs, c.pos)
            }
            _ => {
                cx.errors.push(n.pos.error(format!(
                    "`{on}` must be `module.function` or a mapping with a `callback`, not {}",
                    n.describe()
                )));
                continue;
            }
        };
        if callable.starts_with("airflow.providers.") {
            let warning = format!(
                "line {}: `{on}` names `{callable}`, a provider's notifier, which updraft cannot run: it is left out",
                pos.line
            );
            // Once, though `default_args` hand it to every task.
            if !cx.warnings.contains(&warning) {
                cx.warnings.push(warning);
            }
            continue;
        }
        if !callable.contains('.') {
            cx.errors.push(pos.error(format!(
                "`{on}` must be a dotted path such as `module.function`, not `{callable}`"
            )));
            continue;
        }
        out.push(Callback {
            on: on.to_string(),
            callable,
            file: None,
            kwargs,
        });
    }
    out
}

/// A Python task's callable and arguments, as dag-factory 1.1.0 reads them
/// (`DagBuilder.make_task` for PythonOperator, `make_decorator` for TaskFlow). TaskFlow's
/// `+task` and `+task['key']` arguments are pushed to `refs` (a task name and where it
/// was written), as they make dependencies too.
fn python_call(
    cx: &mut Ctx,
    item: &Item,
    partial: Option<&Node>,
    op: Operator,
    refs: &mut Vec<(String, Pos)>,
) -> Option<PythonCall> {
    let own = &[item.cfg];
    let callable = cx.get(own, "python_callable", Node::string);
    let name = cx.get(own, "python_callable_name", Node::string);
    let file_node = item.cfg.field("python_callable_file");
    let file = cx.get(own, "python_callable_file", Node::string);
    // PythonOperator takes `python_callable` first; TaskFlow takes name and file first.
    let (callable, file) = match (callable, name, file) {
        (Some(c), _, _) if matches!(op, Operator::Python(_)) => (c, None),
        (_, Some(name), Some(file)) => {
            if !is_absolute(&file) {
                let pos = file_node.map_or(item.pos, |n| n.pos);
                cx.errors.push(pos.error(format!(
                    "`python_callable_file` must be an absolute path, not `{file}` (`$CONFIG_ROOT_DIR/...` is one way)"
                )));
                return None;
            }
            (name, Some(file))
        }
        (Some(c), _, _) => (c, None),
        (None, Some(_), None) | (None, None, Some(_)) => {
            cx.errors.push(item.pos.error(format!(
                "task `{}` needs both `python_callable_name` and `python_callable_file`",
                item.name
            )));
            return None;
        }
        (None, None, None) => {
            cx.errors.push(item.pos.error(format!(
                "task `{}` needs a `python_callable` (`module.function`), or `python_callable_name` and `python_callable_file`",
                item.name
            )));
            return None;
        }
    };
    if file.is_none() && !callable.contains('.') {
        let pos = item
            .cfg
            .field("python_callable")
            .map_or(item.pos, |n| n.pos);
        cx.errors.push(pos.error(format!(
            "`python_callable` must be a dotted path such as `module.function`, not `{callable}`"
        )));
        return None;
    }
    // `partial` (dynamic task mapping) is merged in over the task's own arguments.
    let with_partial: Vec<&Node> = partial.into_iter().chain([item.cfg]).collect();
    let op_args: Vec<serde_json::Value> = cx
        .get(&with_partial, "op_args", |n, key| match &n.value {
            Value::List(items) => Ok(items.iter().map(Node::to_json).collect()),
            _ => Err(n
                .pos
                .error(format!("`{key}` must be a list, not {}", n.describe()))),
        })
        .unwrap_or_default();
    let op_kwargs_node = partial
        .and_then(|p| p.field("op_kwargs"))
        .or_else(|| item.cfg.field("op_kwargs"));
    let mut op_kwargs = match cx.mapping(op_kwargs_node, "op_kwargs") {
        Some(n) => match n.to_json() {
            serde_json::Value::Object(m) => m,
            _ => serde_json::Map::new(),
        },
        None => serde_json::Map::new(),
    };
    let mut xcom_args = Vec::new();
    if let Operator::TaskFlow(kind) = op {
        let partial_entries = partial.map_or(&[][..], Node::entries);
        for e in partial_entries.iter().chain(item.cfg.entries()) {
            let known = [
                BASE_OPERATOR_ARGS,
                PYTHON_OPERATOR_ARGS,
                DAG_FACTORY_TASK_KEYS,
                &["decorator"],
                match kind {
                    PythonKind::ShortCircuit => &["ignore_downstream_trigger_rules"],
                    PythonKind::Sensor => SENSOR_ARGS,
                    _ => &[],
                },
            ];
            if known.iter().any(|keys| keys.contains(&e.key.as_str())) {
                continue;
            }
            match &e.value.value {
                Value::Str(text) => match xcom_ref(text) {
                    Some((task, key)) => {
                        refs.push((task.clone(), e.value.pos));
                        xcom_args.push(XcomArg {
                            name: e.key.clone(),
                            task_id: task,
                            key,
                        });
                    }
                    None => {
                        op_kwargs.insert(e.key.clone(), e.value.to_json());
                    }
                },
                _ => {
                    op_kwargs.insert(e.key.clone(), e.value.to_json());
                }
            }
        }
    }
    Some(PythonCall {
        callable,
        file,
        op_args,
        op_kwargs,
        xcom_args,
        templates_dict: item.cfg.field("templates_dict").map(Node::to_json),
        multiple_outputs: cx.get(own, "multiple_outputs", Node::boolean),
        do_xcom_push: cx.get(own, "do_xcom_push", Node::boolean).unwrap_or(true),
        show_return_value_in_logs: cx
            .get(own, "show_return_value_in_logs", Node::boolean)
            .unwrap_or(true),
        params: cx
            .mapping(item.cfg.field("params"), "params")
            .map_or_else(|| serde_json::json!({}), Node::to_json),
        ignore_downstream_trigger_rules: cx
            .get(own, "ignore_downstream_trigger_rules", Node::boolean)
            .unwrap_or(true),
        native: false,
        sensor: match op {
            Operator::Python(PythonKind::Sensor) | Operator::TaskFlow(PythonKind::Sensor) => {
                Some(sensors::settings(cx, &[item.cfg], item.cfg))
            }
            _ => None,
        },
    })
}

/// dag-factory's `+task` / `+task['key']` (or `"key"`): the task's name and the XCom key.
pub(super) fn xcom_ref(text: &str) -> Option<(String, String)> {
    let rest = text.strip_prefix('+')?;
    let end = rest
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(rest.len());
    let (task, tail) = rest.split_at(end);
    if tail.is_empty() {
        return Some((task.to_string(), "return_value".to_string()));
    }
    let inner = tail.strip_prefix('[')?.strip_suffix(']')?;
    // dag-factory's pattern takes either quote at either end.
    let key = inner.strip_prefix(['\'', '"'])?.strip_suffix(['\'', '"'])?;
    Some((task.to_string(), key.to_string()))
}

/// Python's `os.path.isabs` for POSIX paths, or a Windows path with a drive or a UNC
/// prefix (dag-factory runs on either).
pub(super) fn is_absolute(path: &str) -> bool {
    let b = path.as_bytes();
    path.starts_with('/')
        || path.starts_with("\\\\")
        || (b.len() >= 3
            && b[0].is_ascii_alphabetic()
            && b[1] == b':'
            && matches!(b[2], b'/' | b'\\'))
}

/// `env`: names to strings. Numbers and booleans are written out as YAML shows them.
fn env(n: &Node, key: &str) -> Result<Vec<(String, String)>, ImportError> {
    if !n.is_map() {
        return Err(n
            .pos
            .error(format!("`{key}` must be a mapping, not {}", n.describe())));
    }
    n.entries()
        .iter()
        .map(|e| {
            let text = match &e.value.value {
                Value::Str(s) => s.clone(),
                Value::Int(i) => i.to_string(),
                Value::Float(f) => f.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => {
                    let found = e.value.describe();
                    return Err(e.value.pos.error(format!(
                        "`{key}` values must be strings, numbers or booleans; `{}` is {found}",
                        e.key
                    )));
                }
            };
            Ok((e.key.clone(), text))
        })
        .collect()
}

/// Task-level upstream sets. Airflow finds a group's ends when `>>` runs, so the result
/// depends on the order edges are set in; this sets them in dag-factory's order
/// (`set_dependencies`): each task's, in file order, then each group's.
fn upstreams(
    member: &[Vec<usize>],
    task_deps: &[Vec<Ref>],
    group_deps: &[Vec<Ref>],
) -> Vec<BTreeSet<usize>> {
    let n = member.len();
    let in_group = |t: usize, g: usize| member[t].contains(&g);
    // A group's roots have no upstream inside it; its leaves no downstream inside it.
    let roots = |up: &[BTreeSet<usize>], g: usize| -> Vec<usize> {
        (0..n)
            .filter(|&t| in_group(t, g) && !up[t].iter().any(|&u| in_group(u, g)))
            .collect()
    };
    let leaves = |up: &[BTreeSet<usize>], g: usize| -> Vec<usize> {
        let members: Vec<usize> = (0..n).filter(|&t| in_group(t, g)).collect();
        let feeding: BTreeSet<usize> = members
            .iter()
            .flat_map(|&d| up[d].iter().copied())
            .collect();
        members
            .into_iter()
            .filter(|t| !feeding.contains(t))
            .collect()
    };
    let ends = |up: &[BTreeSet<usize>], r: Ref| match r {
        Ref::Task(t) => vec![t],
        Ref::Group(g) => leaves(up, g),
    };
    let mut up = vec![BTreeSet::new(); n];
    for (t, deps) in task_deps.iter().enumerate() {
        for &r in deps {
            let sources = ends(&up, r);
            up[t].extend(sources);
        }
    }
    for (g, deps) in group_deps.iter().enumerate() {
        for &r in deps {
            let sources = ends(&up, r);
            for root in roots(&up, g) {
                up[root].extend(sources.iter().copied());
            }
        }
    }
    up
}

/// Kahn's algorithm, first in first out from file order, as dag-factory's
/// `topological_sort_tasks`. On a cycle, returns one, each task upstream of the next.
fn order(up: &[BTreeSet<usize>]) -> Result<Vec<usize>, Vec<usize>> {
    let n = up.len();
    let mut waiting: Vec<usize> = up.iter().map(BTreeSet::len).collect();
    let mut down = vec![Vec::new(); n];
    for (t, ups) in up.iter().enumerate() {
        for &u in ups {
            down[u].push(t);
        }
    }
    let mut ready: VecDeque<usize> = (0..n).filter(|&t| waiting[t] == 0).collect();
    let mut order = Vec::with_capacity(n);
    while let Some(t) = ready.pop_front() {
        order.push(t);
        for &d in &down[t] {
            waiting[d] -= 1;
            if waiting[d] == 0 {
                ready.push_back(d);
            }
        }
    }
    if order.len() == n {
        return Ok(order);
    }
    // Every task left waits on another task left, so walking upstream must come round.
    let mut path: Vec<usize> = (0..n).filter(|&t| waiting[t] > 0).take(1).collect();
    while let Some(next) = path
        .last()
        .and_then(|&t| up[t].iter().copied().find(|&u| waiting[u] > 0))
    {
        if let Some(i) = path.iter().position(|&p| p == next) {
            let mut cycle: Vec<usize> = path[i..].iter().rev().copied().collect();
            let first = cycle
                .iter()
                .enumerate()
                .min_by_key(|(_, t)| **t)
                .map_or(0, |(i, _)| i);
            cycle.rotate_left(first);
            return Err(cycle);
        }
        path.push(next);
    }
    Err(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(yaml: &str) -> crate::dagfile::FileParse {
        let now = chrono::DateTime::parse_from_rfc3339("2025-01-01T00:00:00Z")
            .unwrap()
            .to_utc();
        crate::dagfile::parse("dags/t.yml", yaml, now)
    }

    fn errors(yaml: &str) -> Vec<String> {
        parse(yaml)
            .errors
            .iter()
            .map(|e| format!("{}:{} {}", e.line, e.column, e.message))
            .collect()
    }

    #[test]
    fn python_operator_takes_its_callable_and_arguments() {
        let p = parse(
            "d:\n  tasks:\n    a:\n      operator: airflow.operators.python.PythonOperator\n      python_callable: lib.f\n      op_args: [1, x]\n      op_kwargs: {k: '{{ ds }}'}\n      params: {p: 2}\n      do_xcom_push: false\n",
        );
        assert!(p.errors.is_empty(), "{:?}", p.errors);
        let t = &p.dags[0].tasks[0];
        assert_eq!(t.operator, Operator::Python(PythonKind::Call));
        let call = t.python.as_ref().unwrap();
        assert_eq!(
            (call.callable.as_str(), call.file.as_deref()),
            ("lib.f", None)
        );
        assert_eq!(call.op_args, vec![json!(1), json!("x")]);
        assert_eq!(json!(call.op_kwargs), json!({"k": "{{ ds }}"}));
        assert_eq!(call.params, json!({"p": 2}));
        assert_eq!((call.do_xcom_push, call.multiple_outputs), (false, None));
    }

    #[test]
    fn callable_files_must_be_absolute_and_complete() {
        let p = parse(
            "d:\n  tasks:\n    a:\n      operator: airflow.providers.standard.operators.python.PythonOperator\n      python_callable_name: f\n      python_callable_file: /x/lib.py\n",
        );
        let call = p.dags[0].tasks[0].python.clone().unwrap();
        assert_eq!(
            (call.callable.as_str(), call.file.as_deref()),
            ("f", Some("/x/lib.py"))
        );
        assert!(is_absolute("C:\\dags\\lib.py") && is_absolute("/x") && !is_absolute("lib.py"));
        let e = errors(
            "d:\n  tasks:\n    a:\n      operator: airflow.operators.python.PythonOperator\n      python_callable_name: f\n      python_callable_file: lib.py\n",
        );
        assert_eq!(
            e,
            [
                "6:29 `python_callable_file` must be an absolute path, not `lib.py` (`$CONFIG_ROOT_DIR/...` is one way)"
            ]
        );
        let e = errors(
            "d:\n  tasks:\n    a:\n      operator: airflow.operators.python.PythonOperator\n      python_callable_name: f\n",
        );
        assert_eq!(
            e,
            ["3:5 task `a` needs both `python_callable_name` and `python_callable_file`"]
        );
        // PythonOperator refuses arguments it does not have; TaskFlow hands them on.
        let e = errors(
            "d:\n  tasks:\n    a:\n      operator: airflow.operators.python.PythonOperator\n      python_callable: m.f\n      number: 2\n",
        );
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].contains("PythonOperator takes no argument `number`"),
            "{e:?}"
        );
    }

    #[test]
    fn taskflow_arguments_and_results_of_other_tasks() {
        let p = parse(concat!(
            "d:\n  tasks:\n",
            "    - {task_id: collect, decorator: airflow.sdk.task, python_callable: m.collect, multiple_outputs: true}\n",
            "    - {task_id: one, decorator: airflow.decorators.task, python_callable: m.echo, value: \"+collect['key1']\", n: 2, retries: 1}\n",
            "    - {task_id: two, decorator: airflow.sdk.definitions.decorators.task, python_callable: m.echo, value: +one, text: '+ not a ref'}\n",
        ));
        assert!(p.errors.is_empty(), "{:?}", p.errors);
        let d = &p.dags[0];
        let one = d.task("one").unwrap();
        assert_eq!(one.operator, Operator::TaskFlow(PythonKind::Call));
        assert_eq!(one.upstream, ["collect"]);
        assert_eq!(one.retries, 1);
        let call = one.python.as_ref().unwrap();
        assert_eq!(json!(call.op_kwargs), json!({"n": 2}));
        let arg = XcomArg {
            name: "value".into(),
            task_id: "collect".into(),
            key: "key1".into(),
        };
        assert_eq!(call.xcom_args, [arg]);
        let two = d.task("two").unwrap();
        assert_eq!(two.upstream, ["one"]);
        let call = two.python.as_ref().unwrap();
        assert_eq!(call.xcom_args[0].key, "return_value");
        assert_eq!(json!(call.op_kwargs), json!({"text": "+ not a ref"}));
        assert_eq!(
            d.task("collect")
                .unwrap()
                .python
                .as_ref()
                .unwrap()
                .multiple_outputs,
            Some(true)
        );
        let e = errors(
            "d:\n  tasks:\n    - {task_id: a, decorator: airflow.sdk.task, python_callable: m.f, v: +nope}\n",
        );
        assert_eq!(
            e,
            ["3:74 task `a` takes the result of `nope`, which is not a task of this DAG"]
        );
    }

    #[test]
    fn branch_and_short_circuit_forms() {
        let p = parse(concat!(
            "d:\n  tasks:\n",
            "    - {task_id: a, operator: airflow.operators.python.BranchPythonOperator, python_callable: m.f}\n",
            "    - {task_id: b, operator: airflow.providers.standard.operators.python.ShortCircuitOperator, python_callable: m.f, ignore_downstream_trigger_rules: false}\n",
            "    - {task_id: c, decorator: airflow.providers.standard.decorators.branch_python.branch_task, python_callable: m.f}\n",
            "    - {task_id: d, decorator: airflow.providers.standard.decorators.short_circuit.short_circuit_task, python_callable: m.f}\n",
        ));
        assert!(p.errors.is_empty(), "{:?}", p.errors);
        let ops: Vec<&str> = p.dags[0]
            .tasks
            .iter()
            .map(|t| t.operator.class_name())
            .collect();
        assert_eq!(
            ops,
            [
                "BranchPythonOperator",
                "ShortCircuitOperator",
                "_BranchPythonDecoratedOperator",
                "_ShortCircuitDecoratedOperator"
            ]
        );
        let ignore: Vec<bool> = p.dags[0]
            .tasks
            .iter()
            .map(|t| t.python.as_ref().unwrap().ignore_downstream_trigger_rules)
            .collect();
        assert_eq!(ignore, [true, false, true, true]);
        // `airflow.sdk.task.branch` is not an import path (Airflow 3.3 refuses it too).
        let e = errors(
            "d: {tasks: [{task_id: a, decorator: airflow.sdk.task.branch, python_callable: m.f}]}",
        );
        assert!(
            e[0].contains("unknown decorator `airflow.sdk.task.branch`"),
            "{e:?}"
        );
        // Only ShortCircuit takes ignore_downstream_trigger_rules.
        let e = errors(
            "d: {tasks: [{task_id: a, operator: airflow.operators.python.PythonOperator, python_callable: m.f, ignore_downstream_trigger_rules: true}]}",
        );
        assert!(
            e[0].contains("PythonOperator takes no argument `ignore_downstream_trigger_rules`"),
            "{e:?}"
        );
    }

    #[test]
    fn callbacks_in_dag_factorys_forms() {
        let p = parse(concat!(
            "d:\n  default_args:\n    on_retry_callback: m.retry\n    on_success_callback: m.dag_level\n",
            "    on_failure_callback: {callback: airflow.providers.slack.notifications.slack.send_slack_notification, text: x}\n",
            "  tasks:\n",
            "    - task_id: a\n      operator: airflow.operators.empty.EmptyOperator\n",
            "      on_success_callback: {callback: m.ok, p: 1}\n",
            "      on_execute_callback: m.wrong\n      on_execute_callback_name: f\n      on_execute_callback_file: /x/cb.py\n",
        ));
        assert!(p.errors.is_empty(), "{:?}", p.errors);
        assert!(
            p.warnings
                .iter()
                .any(|w| w.contains("send_slack_notification")),
            "{:?}",
            p.warnings
        );
        let got: Vec<String> = p.dags[0].tasks[0]
            .callbacks
            .iter()
            .map(|c| format!("{} {} {:?} {}", c.on, c.callable, c.file, json!(c.kwargs)))
            .collect();
        assert_eq!(
            got,
            [
                "on_execute_callback f Some(\"/x/cb.py\") {}",
                "on_success_callback m.ok None {\"p\":1}",
                "on_retry_callback m.retry None {}",
            ]
        );
        let e = errors(
            "d: {tasks: [{task_id: a, operator: EmptyOperator, on_success_callback: [m.f]}]}",
        );
        assert!(
            e[0].contains("`on_success_callback` must be `module.function` or a mapping"),
            "{e:?}"
        );
    }

    #[test]
    fn dag_level_callbacks_come_from_the_dags_own_keys() {
        let p = parse(concat!(
            "d:\n  default_args:\n    on_success_callback: m.for_tasks\n",
            "  on_success_callback: {callback: m.done, channel: ops}\n",
            "  on_failure_callback_name: failed\n  on_failure_callback_file: /x/cb.py\n",
            "  on_retry_callback: m.not_a_dag_callback\n",
            "  tasks:\n    - task_id: a\n      operator: airflow.operators.empty.EmptyOperator\n",
        ));
        assert!(p.errors.is_empty(), "{:?}", p.errors);
        let got: Vec<String> = p.dags[0]
            .callbacks
            .iter()
            .map(|c| format!("{} {} {:?} {}", c.on, c.callable, c.file, json!(c.kwargs)))
            .collect();
        assert_eq!(
            got,
            [
                "on_success_callback m.done None {\"channel\":\"ops\"}",
                "on_failure_callback failed Some(\"/x/cb.py\") {}",
            ]
        );
        // default_args reach the tasks only.
        assert_eq!(p.dags[0].tasks[0].callbacks[0].callable, "m.for_tasks");
    }

    #[test]
    fn xcom_references_read_as_dag_factory_reads_them() {
        let r = |s: &str| xcom_ref(s).map(|(t, k)| format!("{t}/{k}"));
        assert_eq!(r("+t").as_deref(), Some("t/return_value"));
        assert_eq!(r("+t['a b']").as_deref(), Some("t/a b"));
        assert_eq!(r("+t[\"k\"]").as_deref(), Some("t/k"));
        assert_eq!(r("+t.x"), None);
        assert_eq!(r("t"), None);
        assert_eq!(r("+t[k]"), None);
    }
}
