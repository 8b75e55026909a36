//! The tasks and task groups of one DAG: full ids, settings, dependencies and order.
//!
//! Group ids nest (`outer.inner`) and prefix their tasks' ids, as Airflow's
//! `prefix_group_id` does by default. Dependencies on groups are expanded here into
//! task-level upstream lists, so the rest of updraft never sees a group edge.

use std::collections::{BTreeSet, HashMap, VecDeque};

use super::yaml::{Node, Pos, Value};
use super::{Ctx, ImportError, check_id, mapping, values};
use crate::model::{GROUP_ID_LEN, ID_LEN, Operator, Task, TaskGroup, TriggerRule};

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
struct Item<'a> {
    name: String,
    /// Of the `task_id`/`group_name` value in list form, of the key in dict form.
    pos: Pos,
    cfg: &'a Node,
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
        tasks.push(task(
            cx,
            item,
            &layers,
            partial,
            task_id,
            group.map(|g| group_ids[g].clone()),
        ));
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
    let task_deps: Vec<Vec<Ref>> = items.iter().map(|i| deps_of(cx, i, "task")).collect();
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
) -> Task {
    let operator = match item.cfg.field("operator") {
        Some(n) => cx.ok(n.string("operator")).and_then(|path| {
            if BASH_OPERATORS.contains(&path.as_str()) {
                Some(Operator::Bash)
            } else if EMPTY_OPERATORS.contains(&path.as_str()) {
                Some(Operator::Empty)
            } else {
                let known = [BASH_OPERATORS, EMPTY_OPERATORS].concat().join(", ");
                cx.errors.push(
                    n.pos
                        .error(format!("unknown operator `{path}`: updraft runs {known}")),
                );
                None
            }
        }),
        None => {
            let message = match item.cfg.entry("decorator") {
                Some(_) => {
                    "uses a `decorator`, which updraft does not run; give it an `operator` instead"
                }
                None => {
                    "has no `operator`; give it one such as airflow.providers.standard.operators.bash.BashOperator"
                }
            };
            cx.errors
                .push(item.pos.error(format!("task `{}` {message}", item.name)));
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
        None => {}
    }
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
        execution_timeout_secs: cx.get(layers, "execution_timeout", values::timedelta),
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
        map_index_template: cx.get(layers, "map_index_template", Node::string),
        max_active_tis_per_dag: cx.get(layers, "max_active_tis_per_dag", Node::count),
        max_active_tis_per_dagrun: cx.get(layers, "max_active_tis_per_dagrun", Node::count),
        mapped,
    }
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
