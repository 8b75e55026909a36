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
    /// `map_index_template`: a Jinja template whose render names each task instance
    /// (`rendered_map_index`).
    #[serde(default)]
    pub map_index_template: Option<String>,
    /// How many of the task's instances may be queued or running at once, over all runs
    /// (`max_active_tis_per_dag`) and in one run (`max_active_tis_per_dagrun`): mapped
    /// instances count one by one.
    #[serde(default)]
    pub max_active_tis_per_dag: Option<u32>,
    #[serde(default)]
    pub max_active_tis_per_dagrun: Option<u32>,
    /// Dynamic task mapping (`expand`): `None` for a plain task.
    #[serde(default)]
    pub mapped: Option<Mapped>,
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
///
/// Only literals exist yet. Mapping over an upstream task's result (`+task_id`,
/// `task.output`) is a variant here, `Upstream { task_id }`, whose length the scheduler
/// reads from the upstream's `return_value` XCom at expansion (`Mapped::length`'s
/// `None`), and whose values the Execution API reads per map index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum MapSource {
    /// A literal list; a literal mapping is kept as its `[key, value]` pairs, which is
    /// what Airflow hands each instance.
    Literal(Vec<serde_json::Value>),
}

impl Mapped {
    /// How many task instances the task expands into, when that is known from the DAG
    /// file alone (Airflow's `get_parse_time_mapped_ti_count`).
    pub fn length(&self) -> Option<usize> {
        self.args.iter().try_fold(1usize, |n, (_, src)| match src {
            MapSource::Literal(values) => Some(n.saturating_mul(values.len())),
        })
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
            let MapSource::Literal(values) = src;
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

/// What runs for a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Operator {
    Bash,
    Empty,
}

impl Operator {
    /// The class name Airflow reports (`operator` in the API).
    pub fn class_name(self) -> &'static str {
        match self {
            Operator::Bash => "BashOperator",
            Operator::Empty => "EmptyOperator",
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
}
