//! The domain: DAGs, tasks, task groups, schedules and Airflow's state names.
//!
//! Nothing here does I/O. The types derive serde only so that the store can keep a
//! parsed DAG as one JSON column (Airflow's `serialized_dag`) and read it back without a
//! second set of look-alike structs; the YAML file format lives in `dagfile.rs` and the
//! API's wire shapes in `api/`, never here.

mod builtin;
pub use builtin::{BUILTINS, Builtin, BuiltinSpec, builtin_paths};
use std::fmt;

use chrono::{DateTime, FixedOffset, NaiveDateTime, Offset, TimeDelta, TimeZone, Utc};
use serde::{Deserialize, Serialize};

/// Airflow's `ID_LEN`, the size of its id columns: the longest dag_id, full task_id (with
/// its groups' prefix) and run_id. Longer ids would not fit Airflow's database, and they
/// make log paths longer than file systems take.
pub const ID_LEN: usize = 250;
/// Airflow's `validate_group_key` limit: the longest id of one task group.
pub const GROUP_ID_LEN: usize = 200;

/// A parsed DAG, as the scheduler and the API see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dag {
    pub dag_id: String,
    /// The file it came from, as given to the parser (relative to its bundle's root).
    pub fileloc: String,
    /// 1-based line of the DAG's key in its file.
    pub line: u32,
    pub dag_display_name: Option<String>,
    pub description: Option<String>,
    /// The DAG's documentation (`doc_md`, or the file `doc_md_file_path` names).
    #[serde(default)]
    pub doc_md: Option<String>,
    pub schedule: Schedule,
    /// The DAG's time zone (Airflow's `dag.timezone`): plain cron schedules tick in it.
    /// DAGs stored before updraft knew zones have none in their JSON: UTC, as they ran.
    #[serde(default)]
    pub timezone: Zone,
    pub start_date: Option<DateTime<Utc>>,
    pub end_date: Option<DateTime<Utc>>,
    pub catchup: bool,
    pub tags: Vec<String>,
    /// `params` as given, a JSON object (name -> default value or Param-like mapping).
    pub params: serde_json::Value,
    pub max_active_runs: Option<u32>,
    pub max_active_tasks: Option<u32>,
    pub dagrun_timeout_secs: Option<f64>,
    /// Owners from `default_args.owner` of the tasks, de-duplicated, in task order.
    pub owners: Vec<String>,
    /// Tasks in a topological order (every task after its upstreams).
    pub tasks: Vec<Task>,
    pub task_groups: Vec<TaskGroup>,
    /// The DAG's own `on_success_callback` / `on_failure_callback`: run once when a run
    /// ends (see `store::DagCallbackRow`). Stored DAGs from before have none.
    #[serde(default)]
    pub callbacks: Vec<Callback>,
}

impl Dag {
    /// A task by its full id.
    pub fn task(&self, task_id: &str) -> Option<&Task> {
        self.tasks.iter().find(|t| t.task_id == task_id)
    }

    /// Airflow's default `weight_rule` ("downstream"): a task's own `priority_weight`
    /// plus that of every task downstream of it, so long chains start first.
    pub fn effective_weights(&self) -> std::collections::HashMap<&str, i64> {
        use std::collections::{HashMap, HashSet};
        let mut downstream: HashMap<&str, Vec<&str>> = HashMap::new();
        for t in &self.tasks {
            for up in &t.upstream {
                downstream.entry(up.as_str()).or_default().push(&t.task_id);
            }
        }
        let weight: HashMap<&str, i64> = self
            .tasks
            .iter()
            .map(|t| (t.task_id.as_str(), t.priority_weight))
            .collect();
        self.tasks
            .iter()
            .map(|t| {
                let mut seen = HashSet::new();
                let mut stack = vec![t.task_id.as_str()];
                while let Some(id) = stack.pop() {
                    if seen.insert(id) {
                        stack.extend(downstream.get(id).into_iter().flatten().copied());
                    }
                }
                (t.task_id.as_str(), seen.iter().map(|id| weight[id]).sum())
            })
            .collect()
    }
}

/// One task of a DAG.
///
/// Stored (as part of [`Dag`]) with every field that holds its usual value left out, and
/// read back with that value: a DAG of 10,000 `bash_command: "true"` tasks was 5.8 MB of
/// JSON, read whole by each process that loads it. The usual values here are only the
/// storage's shorthand (a field with another value is written out), so config-dependent
/// defaults such as `[operators] default_owner` stay whatever the parser made them, and
/// rows written before the shorthand, which have every field, read the same.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    /// The full id: `group.sub_group.task` for tasks in groups, as Airflow prefixes them.
    pub task_id: String,
    pub line: u32,
    pub operator: Operator,
    /// The full id of the innermost group, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_group: Option<String>,
    /// Full ids of the upstream tasks (dependencies on groups already expanded).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub upstream: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bash_command: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<(String, String)>>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub append_env: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    #[serde(
        default = "usual::trigger_rule",
        skip_serializing_if = "usual::is_trigger_rule"
    )]
    pub trigger_rule: TriggerRule,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retries: u32,
    #[serde(
        default = "usual::retry_delay_secs",
        skip_serializing_if = "usual::is_retry_delay_secs"
    )]
    pub retry_delay_secs: f64,
    #[serde(default, skip_serializing_if = "is_false")]
    pub retry_exponential_backoff: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retry_delay_secs: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_timeout_secs: Option<f64>,
    #[serde(default = "usual::pool", skip_serializing_if = "usual::is_pool")]
    pub pool: String,
    #[serde(default = "usual::one", skip_serializing_if = "usual::is_one")]
    pub pool_slots: u32,
    #[serde(default = "usual::weight", skip_serializing_if = "usual::is_weight")]
    pub priority_weight: i64,
    #[serde(default = "usual::owner", skip_serializing_if = "usual::is_owner")]
    pub owner: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub doc_md: Option<String>,
    /// What a Python task calls (PythonOperator, TaskFlow `@task`); `None` for others.
    /// Boxed, like the other operator-specific parts below: most tasks have none, and
    /// inline they made every task of every parsed DAG ~1 kB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub python: Option<Box<PythonCall>>,
    /// The task's callbacks (`on_success_callback`, ...), from it, its groups'
    /// `default_args` and the DAG's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub callbacks: Vec<Callback>,
    /// `map_index_template`: a Jinja template whose render names each task instance
    /// (`rendered_map_index`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub map_index_template: Option<String>,
    /// How many of the task's instances may be queued or running at once, over all runs
    /// (`max_active_tis_per_dag`) and in one run (`max_active_tis_per_dagrun`): mapped
    /// instances count one by one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_active_tis_per_dag: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_active_tis_per_dagrun: Option<u32>,
    /// Dynamic task mapping (`expand`): `None` for a plain task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mapped: Option<Box<Mapped>>,
    /// A human-in-the-loop task's request; `None` for other tasks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hitl: Option<Box<Hitl>>,
    /// A native sensor's settings and arguments (`Operator::Sensor`); `None` for others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sensor: Option<Box<NativeSensor>>,
    /// A built-in operator's own arguments (`Operator::Builtin`), as the file gave them
    /// (templates unrendered); `None` for other operators.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Box<serde_json::Map<String, serde_json::Value>>>,
    /// `outlets`: the assets (or aliases) its success updates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outlets: Vec<AssetCond>,
    /// `inlets`: the assets it reads (shown, and given to the task as `inlet_events`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inlets: Vec<AssetCond>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// The values a stored task leaves out (see [`Task`]): Airflow's defaults, so that most
/// tasks have them.
mod usual {
    use super::TriggerRule;

    pub fn trigger_rule() -> TriggerRule {
        TriggerRule::AllSuccess
    }
    pub fn is_trigger_rule(r: &TriggerRule) -> bool {
        *r == trigger_rule()
    }
    pub fn retry_delay_secs() -> f64 {
        300.0
    }
    pub fn is_retry_delay_secs(s: &f64) -> bool {
        *s == retry_delay_secs()
    }
    pub fn pool() -> String {
        "default_pool".into()
    }
    pub fn is_pool(p: &str) -> bool {
        p == "default_pool"
    }
    pub fn one() -> u32 {
        1
    }
    pub fn is_one(n: &u32) -> bool {
        *n == 1
    }
    pub fn weight() -> i64 {
        1
    }
    pub fn is_weight(w: &i64) -> bool {
        *w == 1
    }
    pub fn owner() -> String {
        "airflow".into()
    }
    pub fn is_owner(o: &str) -> bool {
        o == "airflow"
    }
}

impl Task {
    /// An EmptyOperator task that needs no worker: the scheduler marks it success
    /// straight away. As Airflow's `schedule_tis`, one with an `on_execute_callback` or
    /// `on_success_callback` is run like any task, so that its callbacks fire.
    pub fn skips_the_worker(&self) -> bool {
        self.operator == Operator::Empty
            && !self
                .callbacks
                .iter()
                .any(|c| c.on == "on_execute_callback" || c.on == "on_success_callback")
    }
}

/// A Python function a task calls with its context when something happens to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Callback {
    /// `on_success_callback` and its kin, by Airflow's name.
    pub on: String,
    /// `module.func`, or with `file` the function's name in that file.
    pub callable: String,
    pub file: Option<String>,
    /// Keyword arguments given with the `callback:` mapping form.
    pub kwargs: serde_json::Map<String, serde_json::Value>,
}

/// The callable of a Python task and the arguments it gets, as dag-factory builds them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PythonCall {
    /// `module.func` (imported with the DAG folder on `sys.path`), or with `file` the
    /// function's name in that file (`python_callable_name`).
    pub callable: String,
    /// `python_callable_file`: an absolute path.
    pub file: Option<String>,
    /// `op_args`, then `op_kwargs` (for TaskFlow: the keyword arguments at task level).
    pub op_args: Vec<serde_json::Value>,
    pub op_kwargs: serde_json::Map<String, serde_json::Value>,
    /// Keyword arguments that are other tasks' results (`+task`, `+task['key']`).
    pub xcom_args: Vec<XcomArg>,
    pub templates_dict: Option<serde_json::Value>,
    /// `None`: TaskFlow infers it from a `dict` return annotation.
    pub multiple_outputs: Option<bool>,
    pub do_xcom_push: bool,
    pub show_return_value_in_logs: bool,
    /// The task's own `params`, over the DAG's.
    pub params: serde_json::Value,
    /// ShortCircuit: skip everything downstream (true), or only the direct downstream
    /// tasks and let trigger rules decide the rest.
    #[serde(default)]
    pub ignore_downstream_trigger_rules: bool,
    /// The DAG's `render_template_as_native_obj`: rendered strings that read as Python
    /// literals become those values.
    #[serde(default)]
    pub native: bool,
    /// A sensor's settings; `None` for other Python tasks.
    #[serde(default)]
    pub sensor: Option<Sensor>,
}

impl PythonCall {
    /// Sets an expanded argument to one instance's value: `op_args` and `op_kwargs`
    /// replace the task's (`partial` cannot hold what is expanded); any other name is a
    /// keyword argument of a TaskFlow callable. A value of the wrong type is an error
    /// (Airflow's callable call fails on `*op_args` / `**op_kwargs` of it).
    pub fn set_mapped(&mut self, name: &str, v: &serde_json::Value) -> Result<(), String> {
        match (name, v) {
            ("op_args", serde_json::Value::Array(items)) => self.op_args = items.clone(),
            ("op_kwargs", serde_json::Value::Object(m)) => self.op_kwargs = m.clone(),
            ("op_args", _) => return Err(format!("op_args must be a list, not {v}")),
            ("op_kwargs", _) => return Err(format!("op_kwargs must be a mapping, not {v}")),
            _ => {
                self.op_kwargs.insert(name.to_string(), v.clone());
            }
        }
        Ok(())
    }
}

/// A keyword argument that takes the XCom `key` of task `task_id` at run time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct XcomArg {
    pub name: String,
    pub task_id: String,
    pub key: String,
}

impl Task {
    /// The task as its instance at `map_index` runs it: the expanded arguments set to
    /// that instance's values. A task that is not mapped is itself at -1; a mapped one
    /// needs a map index in range, and values of the arguments' types.
    pub fn instance(&self, map_index: i64) -> Result<Task, String> {
        let Some(mapped) = &self.mapped else {
            return match map_index {
                -1 => Ok(self.clone()),
                i => Err(format!(
                    "{} is not mapped; it has no map index {i}",
                    self.task_id
                )),
            };
        };
        let values = usize::try_from(map_index)
            .ok()
            .and_then(|i| mapped.values_at(i))
            .ok_or_else(|| match map_index {
                -1 => "No map_index passed to mapped task".to_string(),
                i => format!(
                    "{} has {} mapped instances; there is no map index {i}",
                    self.task_id,
                    mapped.length().unwrap_or(0)
                ),
            })?;
        let mut t = self.clone();
        let wrong = |name: &str, want: &str, v: &serde_json::Value| {
            format!("{name} must be {want}, not {v}")
        };
        for (name, v) in values {
            if let Some(call) = &mut t.python {
                call.set_mapped(name, v)?;
                continue;
            }
            match name {
                "bash_command" => {
                    let s = v.as_str().ok_or_else(|| wrong(name, "a string", v))?;
                    t.bash_command = Some(s.to_string());
                }
                "cwd" => t.cwd = v.as_str().map(str::to_string),
                "append_env" => {
                    t.append_env = v.as_bool().ok_or_else(|| wrong(name, "a boolean", v))?;
                }
                "env" => {
                    let m = v.as_object().ok_or_else(|| wrong(name, "a mapping", v))?;
                    let text = |x: &serde_json::Value| {
                        x.as_str().map_or_else(|| x.to_string(), str::to_string)
                    };
                    t.env = Some(m.iter().map(|(k, x)| (k.clone(), text(x))).collect());
                }
                _ => return Err(format!("updraft cannot map {name}")),
            }
        }
        Ok(t)
    }
}

/// What a mapped task is expanded over: Airflow's `DictOfListsExpandInput`. The task
/// instances are the cross product of the arguments' values, the last argument varying
/// fastest (map index `i` takes, from the last argument back, `i % len` and goes on with
/// `i / len`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mapped {
    /// Each expanded argument by name, in the order the file gives them.
    pub args: Vec<(String, MapSource)>,
}

/// Where an expanded argument's values come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum MapSource {
    /// A literal list; a literal mapping is kept as its `[key, value]` pairs, which is
    /// what Airflow hands each instance.
    Literal(Vec<serde_json::Value>),
    /// The `return_value` XCom of an upstream task (`+task_id`, `task.output`), read when
    /// that task is done: the scheduler takes the length from it at expansion, the
    /// Execution API each instance's element (see [`Mapped::resolved`]).
    Upstream { task_id: String },
}

/// The values a task expanded over an upstream's result takes from that upstream's
/// `return_value` XComs (by map index): a list's items, or a mapping's `[key, value]`
/// pairs, pushed by the unmapped upstream; or, from a mapped upstream, each instance's
/// value in map index order. `None` when nothing was pushed or the value cannot be
/// mapped over (Airflow's `is_mappable_value`: a list or a dict).
pub fn mappable_values(xcoms: &[(i64, serde_json::Value)]) -> Option<Vec<serde_json::Value>> {
    match xcoms {
        [] => None,
        [(-1, serde_json::Value::Array(items))] => Some(items.clone()),
        [(-1, serde_json::Value::Object(m))] => {
            Some(m.iter().map(|(k, v)| serde_json::json!([k, v])).collect())
        }
        [(-1, _)] => None,
        many => Some(many.iter().map(|(_, v)| v.clone()).collect()),
    }
}

impl Mapped {
    /// How many task instances the task expands into, when that is known from the DAG
    /// file alone (Airflow's `get_parse_time_mapped_ti_count`).
    pub fn length(&self) -> Option<usize> {
        self.args.iter().try_fold(1usize, |n, (_, src)| match src {
            MapSource::Literal(values) => Some(n.saturating_mul(values.len())),
            MapSource::Upstream { .. } => None,
        })
    }

    /// The tasks whose results the task is expanded over.
    pub fn upstreams(&self) -> impl Iterator<Item = &str> {
        self.args.iter().filter_map(|(_, src)| match src {
            MapSource::Upstream { task_id } => Some(task_id.as_str()),
            MapSource::Literal(_) => None,
        })
    }

    /// The mapping with every upstream source replaced by the values `pushed` gives for
    /// its task (see [`mappable_values`]); `None` when one has none.
    pub fn resolved(
        &self,
        mut pushed: impl FnMut(&str) -> Option<Vec<serde_json::Value>>,
    ) -> Option<Mapped> {
        let mut args = Vec::with_capacity(self.args.len());
        for (name, src) in &self.args {
            let values = match src {
                MapSource::Literal(values) => values.clone(),
                MapSource::Upstream { task_id } => pushed(task_id)?,
            };
            args.push((name.clone(), MapSource::Literal(values)));
        }
        Some(Mapped { args })
    }

    /// The map indexes a run's task instances of a task start with: `0..count`, or the
    /// unexpanded `-1` when the count is zero or not known yet.
    pub fn initial_indexes(count: usize) -> Vec<i64> {
        match count {
            0 => vec![-1],
            n => (0..n as i64).collect(),
        }
    }

    /// The values of instance `map_index`, argument by argument (Airflow's
    /// `_expand_mapped_field`); `None` when the index is out of range.
    pub fn values_at(&self, map_index: usize) -> Option<Vec<(&str, &serde_json::Value)>> {
        let mut rest = map_index;
        let mut out = Vec::with_capacity(self.args.len());
        for (name, src) in self.args.iter().rev() {
            let MapSource::Literal(values) = src else {
                return None;
            };
            if values.is_empty() {
                return None;
            }
            out.push((name.as_str(), &values[rest % values.len()]));
            rest /= values.len();
        }
        if rest != 0 {
            return None;
        }
        out.reverse();
        Some(out)
    }
}

/// A task group: only for display and for dependencies on groups.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskGroup {
    /// The full id, `outer.inner` when nested.
    pub group_id: String,
    pub parent: Option<String>,
    pub tooltip: Option<String>,
    pub line: u32,
}

/// Task instance states as Airflow's `TaskInstanceState` lists them (`State.task_states`
/// less `None`), some of which never occur in updraft.
pub const AIRFLOW_TI_STATES: &[&str] = &[
    "removed",
    "scheduled",
    "queued",
    "running",
    "success",
    "restarting",
    "failed",
    "up_for_retry",
    "up_for_reschedule",
    "upstream_failed",
    "skipped",
    "deferred",
    "awaiting_input",
];

/// What runs for a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Operator {
    Bash,
    Empty,
    /// PythonOperator, BranchPythonOperator, ShortCircuitOperator.
    Python(PythonKind),
    /// A TaskFlow task (`decorator: airflow.sdk.task`, or its branch and short-circuit forms).
    TaskFlow(PythonKind),
    /// A human-in-the-loop task (Airflow 3.1+'s standard provider): its settings are
    /// `Task::hitl`.
    Hitl(HitlKind),
    /// A sensor whose poke runs inside the supervisor, no process spawned (BashSensor's
    /// command aside): its settings and arguments are in `Task::sensor`.
    Sensor(SensorKind),
    /// An operator run in the supervisor itself, without a child process; its
    /// arguments are in `Task::args`.
    Builtin(Builtin),
}

/// Which human-in-the-loop operator a task is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HitlKind {
    /// HITLOperator: the answer is the result, nothing more.
    Plain,
    /// ApprovalOperator: "Approve" or "Reject"; a rejection skips what is downstream (or
    /// fails the task with `fail_on_reject`).
    Approval,
    /// HITLBranchOperator: the chosen options (through `options_mapping`) are the tasks to
    /// follow.
    Branch,
    /// HITLEntryOperator: a form of `params`, with "OK" as its one option by default.
    Entry,
}

/// A human-in-the-loop task's request, as Airflow's HITLOperator takes it (`subject` and
/// `body` are templates, rendered when the task runs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hitl {
    pub subject: String,
    pub body: Option<String>,
    pub options: Vec<String>,
    /// What a timeout chooses; `None`: a timeout fails the task.
    pub defaults: Option<Vec<String>>,
    pub multiple: bool,
    /// The form's fields, serialized as Airflow's `Param.serialize()` (name -> `{value,
    /// description, schema, source}`).
    pub params: serde_json::Map<String, serde_json::Value>,
    /// `{id, name}` objects; empty: anyone with access may answer.
    pub assigned_users: Vec<serde_json::Value>,
    /// `response_timeout` (or the deprecated `execution_timeout`), in seconds.
    pub response_timeout_secs: Option<f64>,
    /// ApprovalOperator's.
    pub fail_on_reject: bool,
    pub ignore_downstream_trigger_rules: bool,
    /// HITLBranchOperator's: option -> task id.
    pub options_mapping: serde_json::Map<String, serde_json::Value>,
}

/// The sensors updraft pokes natively (`executor/sensor.rs` has one poke function each).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SensorKind {
    File,
    TimeDelta,
    Time,
    DateTime,
    ExternalTask,
    Bash,
    /// HttpSensor (the http provider's): `executor/operators/http.rs` pokes.
    Http,
    /// SqlSensor (common-sql's) on a SQLite connection: `executor/operators/sql.rs` pokes.
    Sql,
}

impl SensorKind {
    /// Airflow's class name.
    pub fn class_name(self) -> &'static str {
        match self {
            SensorKind::File => "FileSensor",
            SensorKind::TimeDelta => "TimeDeltaSensor",
            SensorKind::Time => "TimeSensor",
            SensorKind::DateTime => "DateTimeSensor",
            SensorKind::ExternalTask => "ExternalTaskSensor",
            SensorKind::Bash => "BashSensor",
            SensorKind::Http => "HttpSensor",
            SensorKind::Sql => "SqlSensor",
        }
    }

    /// The arguments Airflow renders as templates (the class's `template_fields`).
    pub fn template_fields(self) -> &'static [&'static str] {
        match self {
            SensorKind::File => &["filepath", "fs_conn_id"],
            SensorKind::TimeDelta => &["delta"],
            SensorKind::Time => &[],
            SensorKind::DateTime => &["target_time"],
            SensorKind::ExternalTask => &[
                "external_dag_id",
                "external_task_id",
                "external_task_ids",
                "external_task_group_id",
            ],
            SensorKind::Bash => &["bash_command", "env"],
            SensorKind::Http => &["endpoint", "request_params", "headers"],
            SensorKind::Sql => &["sql", "hook_params", "parameters", "conn_id"],
        }
    }
}

/// A native sensor: `BaseSensorOperator`'s settings, and the kind's own arguments as the
/// DAG file gives them (rendered per try on `SensorKind::template_fields`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NativeSensor {
    pub settings: Sensor,
    pub args: serde_json::Map<String, serde_json::Value>,
}

/// What a Python task does with its callable's result besides pushing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PythonKind {
    /// Nothing.
    Call,
    /// The result names the downstream tasks to follow; the others are skipped.
    Branch,
    /// A falsy result skips what is downstream.
    ShortCircuit,
    /// Called every `poke_interval` until its result is truthy (PythonSensor, poke mode).
    Sensor,
}

/// A sensor's settings (Airflow's `BaseSensorOperator` arguments).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sensor {
    pub poke_interval_secs: f64,
    /// Since the first poke; Airflow's `[sensors] default_timeout` (7 days) when unset.
    pub timeout_secs: f64,
    pub soft_fail: bool,
    pub never_fail: bool,
    pub silent_fail: bool,
    /// `mode: reschedule` (and `deferrable: true`, run as reschedule): the try ends
    /// `up_for_reschedule` after a poke that is not done, freeing its slots.
    #[serde(default)]
    pub reschedule: bool,
    #[serde(default)]
    pub exponential_backoff: bool,
    /// The longest wait between pokes with `exponential_backoff`.
    #[serde(default)]
    pub max_wait_secs: Option<f64>,
}

impl Operator {
    /// The class name Airflow reports (`operator` in the API).
    pub fn class_name(self) -> &'static str {
        match self {
            Operator::Bash => "BashOperator",
            Operator::Empty => "EmptyOperator",
            Operator::Python(PythonKind::Call) => "PythonOperator",
            Operator::Python(PythonKind::Branch) => "BranchPythonOperator",
            Operator::Python(PythonKind::ShortCircuit) => "ShortCircuitOperator",
            Operator::Python(PythonKind::Sensor) => "PythonSensor",
            Operator::TaskFlow(PythonKind::Call) => "_PythonDecoratedOperator",
            Operator::TaskFlow(PythonKind::Branch) => "_BranchPythonDecoratedOperator",
            Operator::TaskFlow(PythonKind::ShortCircuit) => "_ShortCircuitDecoratedOperator",
            Operator::TaskFlow(PythonKind::Sensor) => "DecoratedSensorOperator",
            Operator::Hitl(HitlKind::Plain) => "HITLOperator",
            Operator::Hitl(HitlKind::Approval) => "ApprovalOperator",
            Operator::Hitl(HitlKind::Branch) => "HITLBranchOperator",
            Operator::Hitl(HitlKind::Entry) => "HITLEntryOperator",
            Operator::Sensor(kind) => kind.class_name(),
            Operator::Builtin(b) => b.class_name(),
        }
    }

    /// Airflow's `operator_name`: a decorator's `custom_operator_name` (`@task`, ...), else
    /// the class name.
    pub fn operator_name(self) -> &'static str {
        match self {
            Operator::TaskFlow(PythonKind::Call) => "@task",
            Operator::TaskFlow(PythonKind::Branch) => "@task.branch",
            Operator::TaskFlow(PythonKind::ShortCircuit) => "@task.short_circuit",
            Operator::TaskFlow(PythonKind::Sensor) => "@task.sensor",
            other => other.class_name(),
        }
    }
}

/// When a DAG runs by itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Schedule {
    /// `schedule: null` (or absent): only manual runs.
    None,
    /// `@once`.
    Once,
    /// A cron expression, presets already expanded (`@daily` is `0 0 * * *`), in the
    /// DAG's zone; `raw` is what the file said.
    Cron { expr: String, raw: String },
    /// A fixed interval (`__type__: datetime.timedelta`), in seconds.
    Delta { secs: f64 },
    /// A calendar interval (`__type__: dateutil.relativedelta.relativedelta`).
    Relative(RelativeDelta),
    /// A timetable named by its class (`__type__: airflow.timetables...`).
    Timetable(Timetable),
    /// On assets (Airflow's `AssetTriggeredTimetable`): a run when the condition is met
    /// by the events queued for the DAG.
    Assets(AssetCond),
    /// `AssetOrTimeSchedule`: runs by the timetable, and also when the condition is met.
    AssetOrTime {
        timetable: Timetable,
        assets: AssetCond,
    },
}

/// An asset (`airflow.sdk.Asset`): Airflow 3 keys it by name and URI together; one
/// given alone stands for both.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssetRef {
    pub name: String,
    pub uri: String,
    pub group: String,
    /// `extra`, a JSON object.
    pub extra: serde_json::Value,
}

/// What a schedule waits for, or one outlet or inlet (then only `Asset` or `Alias`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AssetCond {
    Asset(AssetRef),
    /// `AssetAlias(name)`: events a task attaches to the alias at run time.
    Alias(String),
    /// `&`, `AssetAll`, and a list of assets: every one updated.
    All(Vec<AssetCond>),
    /// `|`, `AssetAny`: any one updated.
    Any(Vec<AssetCond>),
}

impl AssetCond {
    /// Whether the condition holds when the assets `updated` says are updated, as
    /// Airflow's `evaluate`: an alias holds when one of its assets is (none here, as
    /// aliases resolve only to events attached at run time, which `updated` names by
    /// the alias's own name).
    pub fn evaluate(&self, updated: &dyn Fn(&AssetCond) -> bool) -> bool {
        match self {
            AssetCond::Asset(_) | AssetCond::Alias(_) => updated(self),
            AssetCond::All(items) => items.iter().all(|c| c.evaluate(updated)),
            AssetCond::Any(items) => items.iter().any(|c| c.evaluate(updated)),
        }
    }

    /// Every alias the condition names, in order, once each.
    pub fn aliases(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        fn walk<'a>(c: &'a AssetCond, out: &mut Vec<&'a str>) {
            match c {
                AssetCond::Alias(name) => {
                    if !out.contains(&name.as_str()) {
                        out.push(name)
                    }
                }
                AssetCond::Asset(_) => {}
                AssetCond::All(items) | AssetCond::Any(items) => {
                    items.iter().for_each(|i| walk(i, out))
                }
            }
        }
        walk(self, &mut out);
        out
    }

    /// Every asset the condition names, in order, once each.
    pub fn assets(&self) -> Vec<&AssetRef> {
        let mut out: Vec<&AssetRef> = Vec::new();
        fn walk<'a>(c: &'a AssetCond, out: &mut Vec<&'a AssetRef>) {
            match c {
                AssetCond::Asset(a) => {
                    if !out.iter().any(|o| o.name == a.name && o.uri == a.uri) {
                        out.push(a)
                    }
                }
                AssetCond::Alias(_) => {}
                AssetCond::All(items) | AssetCond::Any(items) => {
                    items.iter().for_each(|i| walk(i, out))
                }
            }
        }
        walk(self, &mut out);
        out
    }

    /// Airflow's `asset_expression` (the DAG details' field): `{"all": [...]}`,
    /// `{"any": [...]}`, `{"asset": {name, uri, group, id?}}`, `{"alias": {...}}`.
    pub fn expression(&self) -> serde_json::Value {
        use serde_json::json;
        match self {
            AssetCond::Asset(a) => {
                json!({"asset": {"uri": a.uri, "name": a.name, "group": a.group}})
            }
            AssetCond::Alias(name) => json!({"alias": {"name": name, "group": "asset"}}),
            AssetCond::All(items) => {
                json!({"all": items.iter().map(|i| i.expression()).collect::<Vec<_>>()})
            }
            AssetCond::Any(items) => {
                json!({"any": items.iter().map(|i| i.expression()).collect::<Vec<_>>()})
            }
        }
    }

    /// A readable form for lists: `a`, `(a & b) | c`.
    pub fn describe(&self) -> String {
        let inner = |items: &[AssetCond], op: &str| {
            items
                .iter()
                .map(|i| match i {
                    AssetCond::All(v) | AssetCond::Any(v) if v.len() > 1 => {
                        format!("({})", i.describe())
                    }
                    _ => i.describe(),
                })
                .collect::<Vec<_>>()
                .join(op)
        };
        match self {
            AssetCond::Asset(a) => a.name.clone(),
            AssetCond::Alias(name) => format!("alias {name}"),
            AssetCond::All(items) => inner(items, " & "),
            AssetCond::Any(items) => inner(items, " | "),
        }
    }
}

/// Airflow's timetable classes, with their arguments, as dag-factory builds them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Timetable {
    /// `CronTriggerTimetable`, or `MultipleCronTriggerTimetable` when there are several
    /// expressions (presets expanded): a run at each fire time of any of them.
    CronTrigger {
        crons: Vec<String>,
        zone: Zone,
        /// The data interval before each fire time (`interval=`, zero by default).
        interval: Delta,
        run_immediately: RunImmediately,
    },
    /// `CronDataIntervalTimetable`: the intervals between fire times.
    CronDataInterval { cron: String, zone: Zone },
    /// `DeltaTriggerTimetable`: a run every `delta`.
    DeltaTrigger { delta: Delta, interval: Delta },
    /// `DeltaDataIntervalTimetable`: back-to-back intervals of `delta`.
    DeltaDataInterval { delta: Delta },
    /// `EventsTimetable`: runs at the listed instants, sorted, each with the offset it
    /// was written with (Airflow's description shows them so).
    Events {
        events: Vec<DateTime<FixedOffset>>,
        restrict_to_events: bool,
        description: Option<String>,
    },
}

/// A `datetime.timedelta` or a `relativedelta`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Delta {
    Fixed { secs: f64 },
    Relative(RelativeDelta),
}

impl Delta {
    pub const ZERO: Delta = Delta::Fixed { secs: 0.0 };

    /// Python's `str()` of the value: Airflow's `summary` of the delta timetables.
    pub fn summary(&self) -> String {
        match self {
            Delta::Fixed { secs } => format_timedelta(*secs),
            Delta::Relative(r) => r.to_string(),
        }
    }
}

/// `run_immediately` of the cron trigger timetables: which run a DAG without a start
/// date begins with.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum RunImmediately {
    /// `True`: the latest fire time, however long ago.
    Yes,
    /// `False` (the default): the latest fire time if it was at most a tenth of the gap
    /// between fire times ago (and at least 5 minutes), else the next one.
    No,
    /// A timedelta: the latest fire time if it was at most this long ago.
    Within { secs: f64 },
}

/// `dateutil.relativedelta.relativedelta`'s relative part, normalized as its `_fix` does
/// (weeks are days; seconds, minutes and hours carry up to days, months to years).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelativeDelta {
    pub years: i64,
    pub months: i64,
    pub days: i64,
    pub hours: i64,
    pub minutes: i64,
    pub seconds: i64,
    pub microseconds: i64,
}

impl RelativeDelta {
    /// relativedelta's `_fix`: each field carried into the next larger one, keeping the
    /// sign of the smaller (Python's `divmod` of the absolute value).
    pub fn normalized(mut self) -> RelativeDelta {
        fn carry(small: &mut i64, big: &mut i64, limit: i64) {
            if small.abs() >= limit {
                let sign = small.signum();
                let (div, rem) = ((*small * sign) / limit, (*small * sign) % limit);
                *small = rem * sign;
                *big += div * sign;
            }
        }
        carry(&mut self.microseconds, &mut self.seconds, 1_000_000);
        carry(&mut self.seconds, &mut self.minutes, 60);
        carry(&mut self.minutes, &mut self.hours, 60);
        carry(&mut self.hours, &mut self.days, 24);
        carry(&mut self.months, &mut self.years, 12);
        self
    }

    pub fn negated(self) -> RelativeDelta {
        RelativeDelta {
            years: -self.years,
            months: -self.months,
            days: -self.days,
            hours: -self.hours,
            minutes: -self.minutes,
            seconds: -self.seconds,
            microseconds: -self.microseconds,
        }
    }

    /// `t + relativedelta` as dateutil adds it: years and months first, the day clamped
    /// to the month's length, then the rest as a timedelta. None past chrono's range.
    pub fn add_to(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        use chrono::Datelike;
        let naive = t.naive_utc();
        let months = i64::from(naive.year()) * 12
            + i64::from(naive.month0())
            + self.years * 12
            + self.months;
        let (year, month0) = (
            i32::try_from(months.div_euclid(12)).ok()?,
            months.rem_euclid(12) as u32,
        );
        let first = chrono::NaiveDate::from_ymd_opt(year, month0 + 1, 1)?;
        let next_first = first.checked_add_months(chrono::Months::new(1))?;
        let month_len = (next_first - first).num_days() as u32;
        let date = first.with_day(naive.day().min(month_len))?;
        let moved = date.and_time(naive.time()).and_utc();
        let rest = TimeDelta::try_days(self.days)?
            .checked_add(&TimeDelta::try_hours(self.hours)?)?
            .checked_add(&TimeDelta::try_minutes(self.minutes)?)?
            .checked_add(&TimeDelta::try_seconds(self.seconds)?)?
            .checked_add(&TimeDelta::microseconds(self.microseconds))?;
        moved.checked_add_signed(rest)
    }

    /// Airflow's `_relativedelta_in_seconds` (a month is 30 days, a year 365).
    pub fn approx_secs(&self) -> i64 {
        self.years * 365 * 86_400
            + self.months * 30 * 86_400
            + self.days * 86_400
            + self.hours * 3_600
            + self.minutes * 60
            + self.seconds
    }
}

/// relativedelta's `repr`: `relativedelta(months=+1, days=-2)`.
impl fmt::Display for RelativeDelta {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fields = [
            ("years", self.years),
            ("months", self.months),
            ("days", self.days),
            ("hours", self.hours),
            ("minutes", self.minutes),
            ("seconds", self.seconds),
            ("microseconds", self.microseconds),
        ];
        let shown: Vec<String> = fields
            .iter()
            .filter(|(_, v)| *v != 0)
            .map(|(name, v)| format!("{name}={v:+}"))
            .collect();
        write!(f, "relativedelta({})", shown.join(", "))
    }
}

/// A time zone: a name from the IANA database compiled into the binary, or a fixed
/// offset from UTC. Kept in the stored DAG as its name (`Europe/Amsterdam`, `+02:00`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum Zone {
    Named(chrono_tz::Tz),
    Fixed(FixedOffset),
}

impl Default for Zone {
    fn default() -> Zone {
        Zone::Named(chrono_tz::UTC)
    }
}

impl Zone {
    /// An IANA name as pendulum reads it (exact case; `UTC` in any case), or an offset
    /// such as `+02:00`, `+0200`, `-05`, optionally after `UTC`/`GMT` (updraft's own
    /// addition: Airflow takes only names). None for anything else.
    pub fn parse(text: &str) -> Option<Zone> {
        let t = text.trim();
        if t.eq_ignore_ascii_case("utc") {
            return Some(Zone::default());
        }
        if let Ok(tz) = t.parse::<chrono_tz::Tz>() {
            return Some(Zone::Named(tz));
        }
        ["UTC", "GMT", ""]
            .iter()
            .find_map(|prefix| t.strip_prefix(prefix).and_then(parse_offset))
            .map(Zone::Fixed)
    }

    /// The name Airflow shows (`dag.timezone`): the IANA name, or `+HH:MM`.
    pub fn name(&self) -> String {
        match self {
            Zone::Named(tz) => tz.name().to_string(),
            Zone::Fixed(off) => off.to_string(),
        }
    }

    /// The wall-clock reading of `t` in this zone.
    pub fn local(&self, t: DateTime<Utc>) -> NaiveDateTime {
        match self {
            Zone::Named(tz) => t.with_timezone(tz).naive_local(),
            Zone::Fixed(off) => t.with_timezone(off).naive_local(),
        }
    }

    /// The instant a wall-clock time in this zone stands for, as Airflow's `make_aware`
    /// (pendulum with `fold=1`) reads it: a time that happens twice (the autumn hour) is
    /// its second occurrence; a time that never happens (the spring gap) is read with the
    /// offset from before the gap, which lands as far past the gap as it was into it
    /// (02:30 becomes 03:30).
    pub fn instant(&self, naive: NaiveDateTime) -> Option<DateTime<Utc>> {
        use chrono::LocalResult;
        let tz = match self {
            Zone::Fixed(off) => {
                return off.from_local_datetime(&naive).single().map(|d| d.to_utc());
            }
            Zone::Named(tz) => tz,
        };
        match tz.from_local_datetime(&naive) {
            LocalResult::Single(d) => Some(d.to_utc()),
            LocalResult::Ambiguous(_, later) => Some(later.to_utc()),
            LocalResult::None => {
                // Gaps are an hour or so and never near another change; half a day
                // before, the old offset still holds.
                let before = tz
                    .offset_from_utc_datetime(&naive.checked_sub_signed(TimeDelta::hours(12))?)
                    .fix();
                Some(
                    naive
                        .checked_sub_signed(TimeDelta::seconds(i64::from(
                            before.local_minus_utc(),
                        )))?
                        .and_utc(),
                )
            }
        }
    }
}

impl From<Zone> for String {
    fn from(z: Zone) -> String {
        z.name()
    }
}

impl TryFrom<String> for Zone {
    type Error = String;
    fn try_from(s: String) -> Result<Zone, String> {
        Zone::parse(&s).ok_or_else(|| format!("unknown time zone `{s}`"))
    }
}

/// `+02:00`, `+0200`, `+02`, `-05:30`.
fn parse_offset(s: &str) -> Option<FixedOffset> {
    let sign = match s.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let digits: String = s[1..].chars().filter(|c| *c != ':').collect();
    if !digits.chars().all(|c| c.is_ascii_digit()) || ![2, 4].contains(&digits.len()) {
        return None;
    }
    let hours: i32 = digits[..2].parse().ok()?;
    let minutes: i32 = digits
        .get(2..)
        .filter(|m| !m.is_empty())
        .map_or(Ok(0), str::parse)
        .ok()?;
    if minutes >= 60 {
        return None;
    }
    FixedOffset::east_opt(sign * (hours * 3600 + minutes * 60))
}

/// `+02:00` and friends, for date strings that carry an offset.
pub fn offset(s: &str) -> Option<FixedOffset> {
    parse_offset(s)
}

impl Schedule {
    /// The text Airflow shows as `timetable_summary` (its timetable's `summary`):
    /// presets come out expanded, as Airflow's `CronMixin` expands them.
    pub fn summary(&self) -> Option<String> {
        Some(match self {
            Schedule::None => return None,
            Schedule::Once => "@once".to_string(),
            Schedule::Cron { expr, .. } => expr.clone(),
            Schedule::Delta { secs } => format_timedelta(*secs),
            Schedule::Relative(r) => r.to_string(),
            Schedule::Timetable(t) => t.summary(),
            Schedule::Assets(_) => "Asset".to_string(),
            Schedule::AssetOrTime { timetable, .. } => format!("Asset or {}", timetable.summary()),
        })
    }

    /// Airflow's `Timetable.periodic`: false for `None`, `@once` and assets alone (its
    /// base class says true, and `EventsTimetable` keeps that).
    pub fn is_periodic(&self) -> bool {
        !matches!(self, Schedule::None | Schedule::Once | Schedule::Assets(_))
    }

    /// The asset condition of an asset schedule.
    pub fn asset_condition(&self) -> Option<&AssetCond> {
        match self {
            Schedule::Assets(c) | Schedule::AssetOrTime { assets: c, .. } => Some(c),
            _ => None,
        }
    }
}

impl Timetable {
    /// Its `summary`.
    pub fn summary(&self) -> String {
        match self {
            Timetable::CronTrigger { crons, .. } => crons.join(", "),
            Timetable::CronDataInterval { cron, .. } => cron.clone(),
            Timetable::DeltaTrigger { delta, .. } | Timetable::DeltaDataInterval { delta } => {
                delta.summary()
            }
            Timetable::Events {
                events,
                description,
                ..
            } => description
                .clone()
                .unwrap_or_else(|| format!("{} events", events.len())),
        }
    }
}

/// Formats seconds as Python's `str(timedelta)` does: `1 day, 2:03:04`.
pub fn format_timedelta(secs: f64) -> String {
    let whole = secs.trunc() as i64;
    let micros = ((secs - secs.trunc()) * 1e6).round() as i64;
    let (days, rest) = (whole.div_euclid(86_400), whole.rem_euclid(86_400));
    let hms = format!("{}:{:02}:{:02}", rest / 3600, rest % 3600 / 60, rest % 60);
    let hms = if micros != 0 {
        format!("{hms}.{micros:06}")
    } else {
        hms
    };
    match days {
        0 => hms,
        1 | -1 => format!("{days} day, {hms}"),
        _ => format!("{days} days, {hms}"),
    }
}

macro_rules! airflow_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident = $text:literal,)* }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant,)* }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];

            /// Airflow's token for this value.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text,)* }
            }

            /// Parses Airflow's token; `None` for anything else.
            pub fn parse(s: &str) -> Option<$name> {
                match s { $($text => Some($name::$variant),)* _ => None }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

airflow_enum! {
    /// A task's trigger rule, by Airflow's names.
    TriggerRule {
        AllSuccess = "all_success",
        AllFailed = "all_failed",
        AllDone = "all_done",
        AllSkipped = "all_skipped",
        OneSuccess = "one_success",
        OneFailed = "one_failed",
        OneDone = "one_done",
        NoneFailed = "none_failed",
        NoneFailedMinOneSuccess = "none_failed_min_one_success",
        NoneSkipped = "none_skipped",
        Always = "always",
    }
}

airflow_enum! {
    /// A task instance's state. `None` is Airflow's "no status" (stored as NULL).
    TaskState {
        Scheduled = "scheduled",
        Queued = "queued",
        Running = "running",
        Success = "success",
        Failed = "failed",
        Skipped = "skipped",
        UpstreamFailed = "upstream_failed",
        UpForRetry = "up_for_retry",
        Restarting = "restarting",
        Removed = "removed",
        Deferred = "deferred",
        UpForReschedule = "up_for_reschedule",
        // A human-in-the-loop task waiting for its answer (Airflow 3.3's
        // `awaiting_input`): it holds no slot, thread or process.
        AwaitingInput = "awaiting_input",
    }
}

airflow_enum! {
    /// A DAG run's state.
    RunState {
        Queued = "queued",
        Running = "running",
        Success = "success",
        Failed = "failed",
    }
}

airflow_enum! {
    /// How a DAG run came to be.
    RunType {
        Manual = "manual",
        Scheduled = "scheduled",
        Backfill = "backfill",
        AssetTriggered = "asset_triggered",
        AssetMaterialization = "asset_materialization",
    }
}

impl TaskState {
    /// Terminal for this try: nothing more will happen unless the task is cleared.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            TaskState::Success
                | TaskState::Failed
                | TaskState::Skipped
                | TaskState::UpstreamFailed
                | TaskState::Removed
        )
    }
}

impl RunState {
    pub fn is_finished(self) -> bool {
        matches!(self, RunState::Success | RunState::Failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 22: a stored task wrote every field, defaulted or not (~590 bytes for a
    /// `bash_command: "true"` task), and held every operator's part inline (~1 kB a task
    /// parsed). Usual values are now left out and read back, and the rare parts boxed.
    #[test]
    fn a_plain_task_is_stored_small_and_reads_back_equal() {
        let mut yaml = String::from("d:\n  default_args:\n    start_date: 2024-01-01\n  tasks:\n");
        for i in 0..100 {
            yaml += &format!(
                "    - task_id: t{i:05}\n      operator: airflow.providers.standard.operators.bash.BashOperator\n      bash_command: \"true\"\n"
            );
        }
        let parsed = crate::dagfile::parse("d.yml", &yaml, chrono::Utc::now());
        assert_eq!(parsed.errors, []);
        let dag = &parsed.dags[0];
        let one = serde_json::to_string(&dag.tasks[0]).unwrap();
        assert!(one.len() <= 80, "{} bytes: {one}", one.len());
        let json = serde_json::to_string(dag).unwrap();
        assert!(json.len() <= 100 * 80 + 600, "{} bytes", json.len());
        assert_eq!(&serde_json::from_str::<Dag>(&json).unwrap(), dag);
        assert!(
            std::mem::size_of::<Task>() <= 512,
            "a task is {} bytes inline",
            std::mem::size_of::<Task>()
        );
    }

    /// A task with every field away from its usual value keeps them all through the
    /// store, and a row written before the shorthand (every field present) reads the same.
    #[test]
    fn unusual_values_are_stored_and_full_rows_still_read() {
        let yaml = "d:\n  default_args:\n    start_date: 2024-01-01\n    owner: ops\n  tasks:\n    - task_id: a\n      operator: airflow.providers.standard.operators.bash.BashOperator\n      bash_command: 'true'\n    - task_id: b\n      operator: airflow.providers.standard.operators.bash.BashOperator\n      bash_command: 'echo hi'\n      dependencies: [a]\n      trigger_rule: all_done\n      retries: 3\n      retry_delay: 0\n      retry_exponential_backoff: true\n      pool: etl\n      pool_slots: 2\n      priority_weight: 0\n      append_env: true\n      env: {X: '1'}\n";
        let parsed = crate::dagfile::parse("d.yml", yaml, chrono::Utc::now());
        assert_eq!(parsed.errors, []);
        let dag = &parsed.dags[0];
        let b = &dag.tasks[1];
        assert_eq!(
            (
                b.trigger_rule,
                b.retries,
                b.retry_delay_secs,
                b.pool.as_str(),
                b.pool_slots,
                b.priority_weight,
                b.owner.as_str()
            ),
            (TriggerRule::AllDone, 3, 0.0, "etl", 2, 0, "ops")
        );
        let json = serde_json::to_string(dag).unwrap();
        assert_eq!(&serde_json::from_str::<Dag>(&json).unwrap(), dag);
        // The full form, as rows before the shorthand hold it.
        let mut full = serde_json::to_value(dag).unwrap();
        for t in full["tasks"].as_array_mut().unwrap() {
            let t = t.as_object_mut().unwrap();
            for (k, v) in [
                ("task_group", serde_json::json!(null)),
                ("upstream", serde_json::json!([])),
                ("env", serde_json::json!(null)),
                ("append_env", serde_json::json!(false)),
                ("cwd", serde_json::json!(null)),
                ("trigger_rule", serde_json::json!("all_success")),
                ("retries", serde_json::json!(0)),
                ("retry_delay_secs", serde_json::json!(300.0)),
                ("retry_exponential_backoff", serde_json::json!(false)),
                ("max_retry_delay_secs", serde_json::json!(null)),
                ("execution_timeout_secs", serde_json::json!(null)),
                ("pool", serde_json::json!("default_pool")),
                ("pool_slots", serde_json::json!(1)),
                ("priority_weight", serde_json::json!(1)),
                ("owner", serde_json::json!("airflow")),
                ("doc_md", serde_json::json!(null)),
                ("python", serde_json::json!(null)),
                ("callbacks", serde_json::json!([])),
                ("mapped", serde_json::json!(null)),
                ("hitl", serde_json::json!(null)),
                ("sensor", serde_json::json!(null)),
                ("args", serde_json::json!(null)),
                ("outlets", serde_json::json!([])),
                ("inlets", serde_json::json!([])),
            ] {
                t.entry(k).or_insert(v);
            }
        }
        assert_eq!(&serde_json::from_value::<Dag>(full).unwrap(), dag);
    }

    #[test]
    fn timedelta_formats_like_python() {
        assert_eq!(format_timedelta(30.0), "0:00:30");
        assert_eq!(format_timedelta(86_400.0 + 3723.0), "1 day, 1:02:03");
        assert_eq!(format_timedelta(3.0 * 86_400.0), "3 days, 0:00:00");
        assert_eq!(format_timedelta(1.5), "0:00:01.500000");
    }

    #[test]
    fn mapped_values_are_the_cross_product_last_argument_fastest() {
        let lit =
            |v: serde_json::Value| MapSource::Literal(v.as_array().cloned().unwrap_or_default());
        let m = Mapped {
            args: vec![
                ("a".into(), lit(serde_json::json!([1, 2]))),
                ("b".into(), lit(serde_json::json!(["x", "y", "z"]))),
            ],
        };
        assert_eq!(m.length(), Some(6));
        let at = |i| {
            m.values_at(i).map(|v| {
                v.iter()
                    .map(|(_, x)| x.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            })
        };
        assert_eq!(at(0).as_deref(), Some(r#"1,"x""#));
        assert_eq!(at(1).as_deref(), Some(r#"1,"y""#));
        assert_eq!(at(3).as_deref(), Some(r#"2,"x""#));
        assert_eq!(at(5).as_deref(), Some(r#"2,"z""#));
        assert_eq!(at(6), None);
        let empty = Mapped {
            args: vec![("a".into(), lit(serde_json::json!([])))],
        };
        assert_eq!(empty.length(), Some(0));
        assert_eq!(empty.values_at(0), None);
    }

    #[test]
    fn state_tokens_round_trip() {
        for s in TaskState::ALL {
            assert_eq!(TaskState::parse(s.as_str()), Some(*s));
        }
        for r in TriggerRule::ALL {
            assert_eq!(TriggerRule::parse(r.as_str()), Some(*r));
        }
        assert_eq!(TaskState::parse("none"), None);
    }

    #[test]
    fn mappable_values_are_a_lists_items_a_dicts_pairs_or_each_instances_value() {
        use super::mappable_values;
        use serde_json::json;
        assert_eq!(
            mappable_values(&[(-1, json!([1, 2]))]),
            Some(vec![json!(1), json!(2)])
        );
        assert_eq!(
            mappable_values(&[(-1, json!({"a": 1}))]),
            Some(vec![json!(["a", 1])])
        );
        assert_eq!(mappable_values(&[(-1, json!(5))]), None);
        assert_eq!(mappable_values(&[(-1, json!("ab"))]), None);
        assert_eq!(mappable_values(&[]), None);
        assert_eq!(
            mappable_values(&[(0, json!("x")), (1, json!([2]))]),
            Some(vec![json!("x"), json!([2])])
        );
    }
}
