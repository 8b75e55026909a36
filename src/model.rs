//! The domain: DAGs, tasks, task groups, schedules and Airflow's state names.
//!
//! Nothing here does I/O. The types derive serde only so that the store can keep a
//! parsed DAG as one JSON column (Airflow's `serialized_dag`) and read it back without a
//! second set of look-alike structs; the YAML file format lives in `dagfile.rs` and the
//! API's wire shapes in `api/`, never here.

use std::fmt;

use chrono::{DateTime, Utc};
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    /// The full id: `group.sub_group.task` for tasks in groups, as Airflow prefixes them.
    pub task_id: String,
    pub line: u32,
    pub operator: Operator,
    /// The full id of the innermost group, if any.
    pub task_group: Option<String>,
    /// Full ids of the upstream tasks (dependencies on groups already expanded).
    pub upstream: Vec<String>,
    pub bash_command: Option<String>,
    pub env: Option<Vec<(String, String)>>,
    pub append_env: bool,
    pub cwd: Option<String>,
    pub trigger_rule: TriggerRule,
    pub retries: u32,
    pub retry_delay_secs: f64,
    pub retry_exponential_backoff: bool,
    pub max_retry_delay_secs: Option<f64>,
    pub execution_timeout_secs: Option<f64>,
    pub pool: String,
    pub pool_slots: u32,
    pub priority_weight: i64,
    pub owner: String,
    pub doc_md: Option<String>,
    /// What a Python task calls (PythonOperator, TaskFlow `@task`); `None` for others.
    #[serde(default)]
    pub python: Option<PythonCall>,
    /// The task's callbacks (`on_success_callback`, ...), from it, its groups'
    /// `default_args` and the DAG's.
    #[serde(default)]
    pub callbacks: Vec<Callback>,
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

/// A keyword argument that takes the XCom `key` of task `task_id` at run time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct XcomArg {
    pub name: String,
    pub task_id: String,
    pub key: String,
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

/// What runs for a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Operator {
    Bash,
    Empty,
    /// PythonOperator, BranchPythonOperator, ShortCircuitOperator.
    Python(PythonKind),
    /// A TaskFlow task (`decorator: airflow.sdk.task`, or its branch and short-circuit forms).
    TaskFlow(PythonKind),
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

/// A PythonSensor's settings (Airflow's `BaseSensorOperator` arguments).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sensor {
    pub poke_interval_secs: f64,
    /// Since the first poke; Airflow's `[sensors] default_timeout` (7 days) when unset.
    pub timeout_secs: f64,
    pub soft_fail: bool,
    pub never_fail: bool,
    pub silent_fail: bool,
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
    /// A cron expression, presets already expanded (`@daily` is `0 0 * * *`); `raw` is
    /// what the file said, for display.
    Cron { expr: String, raw: String },
    /// A fixed interval (`__type__: datetime.timedelta`), in seconds.
    Delta { secs: f64 },
}

impl Schedule {
    /// The text Airflow shows as `timetable_summary`.
    pub fn summary(&self) -> Option<String> {
        match self {
            Schedule::None => None,
            Schedule::Once => Some("@once".to_string()),
            Schedule::Cron { raw, .. } => Some(raw.clone()),
            Schedule::Delta { secs } => Some(format_timedelta(*secs)),
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

    #[test]
    fn timedelta_formats_like_python() {
        assert_eq!(format_timedelta(30.0), "0:00:30");
        assert_eq!(format_timedelta(86_400.0 + 3723.0), "1 day, 1:02:03");
        assert_eq!(format_timedelta(3.0 * 86_400.0), "3 days, 0:00:00");
        assert_eq!(format_timedelta(1.5), "0:00:01.500000");
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
}
