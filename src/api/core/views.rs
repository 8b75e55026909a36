//! The DAGs, runs and task instances a request shows, read once each, and their JSON
//! shapes (`DAGRunResponse`, `TaskInstanceResponse`) with Airflow's 404 texts: what the
//! run and task-instance resources (and their logs and XComs) share, so neither imports
//! the other.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::kit::{dt, mask};
use crate::api::http::ApiError;
use crate::api::route::Params;
use crate::model::Dag;
use crate::model::TaskState;
use crate::store::{DagRow, RunRow, Store, TiRow};

/// Fields a task instance history leaves out of the task instance shape.
pub const NOT_IN_HISTORY: &[&str] = &[
    "id",
    "logical_date",
    "run_after",
    "note",
    "rendered_map_index",
    "rendered_fields",
    "trigger",
    "triggerer_job",
];

/// The DAGs a request touches, read once each.
pub struct Dags<'a> {
    store: &'a Store,
    seen: HashMap<String, Option<DagRow>>,
}

impl<'a> Dags<'a> {
    pub fn new(store: &'a Store) -> Dags<'a> {
        Dags {
            store,
            seen: HashMap::new(),
        }
    }

    pub fn get(&mut self, dag_id: &str) -> Result<Option<&DagRow>, ApiError> {
        if !self.seen.contains_key(dag_id) {
            let row = self.store.dag(dag_id)?;
            self.seen.insert(dag_id.to_string(), row);
        }
        Ok(self.seen.get(dag_id).and_then(Option::as_ref))
    }

    /// The DAG's display name; its id when it has none or is gone.
    pub fn display(&mut self, dag_id: &str) -> Result<String, ApiError> {
        Ok(self
            .get(dag_id)?
            .and_then(|d| d.dag.dag_display_name.clone())
            .unwrap_or_else(|| dag_id.to_string()))
    }
}

/// A DAG run as Airflow's `DAGRunResponse` shows it. updraft keeps no bundle versions or
/// partitions: those are empty, honestly. `dag_versions` is filled in by the caller
/// (it needs the store; see `versions.rs`).
pub fn run_json(run: &RunRow, dag_display_name: &str) -> Value {
    let duration = match (run.start_date, run.end_date) {
        (Some(s), Some(e)) => (e - s)
            .num_microseconds()
            .map(|us| json!(us as f64 / 1e6))
            .unwrap_or(Value::Null),
        _ => Value::Null,
    };
    json!({
        "dag_run_id": run.run_id,
        "dag_id": run.dag_id,
        "logical_date": dt(run.logical_date),
        "queued_at": dt(run.queued_at),
        "start_date": dt(run.start_date),
        "end_date": dt(run.end_date),
        "duration": duration,
        "data_interval_start": dt(run.data_interval_start),
        "data_interval_end": dt(run.data_interval_end),
        "run_after": dt(Some(run.run_after)),
        "last_scheduling_decision": dt(run.last_scheduling_decision),
        "run_type": run.run_type.as_str(),
        "state": run.state.as_str(),
        "triggered_by": run.triggered_by,
        "triggering_user_name": run.triggering_user_name,
        "conf": run.conf,
        "note": run.note,
        "dag_versions": [],
        "bundle_version": null,
        "dag_display_name": dag_display_name,
        "partition_key": null,
        "partition_date": null,
    })
}

/// Airflow's 404 text for a run.
pub fn run_not_found(dag_id: &str, run_id: &str) -> ApiError {
    ApiError::not_found(format!(
        "The DagRun with dag_id: `{dag_id}` and run_id: `{run_id}` was not found"
    ))
}

/// Airflow's 404 text for a DAG.
pub fn dag_not_found(dag_id: &str) -> ApiError {
    ApiError::not_found(format!("The Dag with ID: `{dag_id}` was not found"))
}

/// The run named by the path, or Airflow's 404.
pub fn the_run(store: &Store, p: &Params) -> Result<RunRow, ApiError> {
    let (dag_id, run_id) = (p.get("dag_id"), p.get("dag_run_id"));
    store
        .run(dag_id, run_id)?
        .ok_or_else(|| run_not_found(dag_id, run_id))
}

/// The DAGs and runs a request touches, read once each.
pub struct Views<'a> {
    store: &'a Store,
    pub dags: Dags<'a>,
    runs: HashMap<(String, String), Option<RunRow>>,
}

impl<'a> Views<'a> {
    pub fn new(store: &'a Store) -> Views<'a> {
        Views {
            store,
            dags: Dags::new(store),
            runs: HashMap::new(),
        }
    }

    pub fn run(&mut self, dag_id: &str, run_id: &str) -> Result<Option<&RunRow>, ApiError> {
        let key = (dag_id.to_string(), run_id.to_string());
        if !self.runs.contains_key(&key) {
            let run = self.store.run(dag_id, run_id)?;
            self.runs.insert(key.clone(), run);
        }
        Ok(self.runs.get(&key).and_then(Option::as_ref))
    }

    /// A task instance as Airflow's `TaskInstanceResponse` shows it.
    pub fn ti(&mut self, ti: &TiRow) -> Result<Value, ApiError> {
        let run = self.run(&ti.dag_id, &ti.run_id)?.cloned();
        ti_json(&mut self.dags, ti, run.as_ref())
    }

    /// A try as Airflow's `TaskInstanceHistoryResponse` shows it.
    pub fn try_json(&mut self, ti: &TiRow) -> Result<Value, ApiError> {
        Ok(match self.ti(ti)? {
            Value::Object(m) => Value::Object(
                m.into_iter()
                    .filter(|(k, _)| !NOT_IN_HISTORY.contains(&k.as_str()))
                    .collect(),
            ),
            other => other,
        })
    }

    pub fn all(&mut self, tis: &[TiRow]) -> Result<Vec<Value>, ApiError> {
        tis.iter().map(|t| self.ti(t)).collect()
    }
}

/// A task instance as Airflow's `TaskInstanceResponse` shows it. updraft has no
/// executors by name, triggers, mapped tasks or DAG versions: those are null.
pub fn ti_json(dags: &mut Dags, ti: &TiRow, run: Option<&RunRow>) -> Result<Value, ApiError> {
    let dag_display_name = dags.display(&ti.dag_id)?;
    let mut rendered = rendered_fields(ti, dags.get(&ti.dag_id)?);
    // What a worker sent through the Execution API's `rtif` wins over updraft's own.
    if let (Some(Value::Object(sent)), Some(shown)) =
        (dags.store.rtif(&ti.id)?, rendered.as_object_mut())
    {
        shown.extend(sent);
    }
    Ok(json!({
        "id": ti.id,
        "task_id": ti.task_id,
        "dag_id": ti.dag_id,
        "dag_run_id": ti.run_id,
        "map_index": ti.map_index,
        "logical_date": dt(run.and_then(|r| r.logical_date)),
        "run_after": dt(Some(run.map_or(ti.updated_at, |r| r.run_after))),
        "start_date": dt(ti.start_date),
        "end_date": dt(ti.end_date),
        "duration": ti.duration,
        "state": ti.state.map(TaskState::as_str),
        "try_number": ti.try_number,
        "max_tries": ti.max_tries,
        "task_display_name": ti.task_id,
        "dag_display_name": dag_display_name,
        "hostname": ti.hostname,
        "unixname": ti.unixname,
        "pool": ti.pool,
        "pool_slots": ti.pool_slots,
        "queue": "default",
        "priority_weight": ti.priority_weight,
        "operator": ti.operator,
        "operator_name": ti.operator,
        "queued_when": dt(ti.queued_dttm),
        "scheduled_when": dt(ti.scheduled_dttm),
        "pid": ti.pid,
        "executor": null,
        "executor_config": "{}",
        "note": ti.note,
        "rendered_map_index": ti.rendered_map_index,
        "rendered_fields": rendered,
        "trigger": null,
        "triggerer_job": null,
        "dag_version": null,
    }))
}

/// The rendered template fields of the current try: the command as it ran, and the
/// task's env (secret-looking values masked) and cwd. Empty before the task rendered.
fn rendered_fields(ti: &TiRow, dag: Option<&DagRow>) -> Value {
    let Some(command) = &ti.rendered_command else {
        return json!({});
    };
    let task = dag.and_then(|d| d.dag.task(&ti.task_id));
    let mut env = task
        .and_then(|t| t.env.as_ref())
        .map(|env| Value::Object(env.iter().map(|(k, v)| (k.clone(), json!(v))).collect()));
    let mut cwd = task.and_then(|t| t.cwd.clone()).map(Value::String);
    // An instance of a mapped task shows its own values of the expanded arguments.
    let mapped = task.and_then(|t| t.mapped.as_ref());
    if let (Some(m), Ok(i)) = (mapped, usize::try_from(ti.map_index)) {
        for (name, value) in m.values_at(i).unwrap_or_default() {
            match name {
                "env" => env = Some(value.clone()),
                "cwd" => cwd = Some(value.clone()),
                _ => {}
            }
        }
    }
    json!({
        "bash_command": command,
        "env": env.as_ref().map(mask),
        "cwd": cwd,
    })
}

/// A DAG by id, stale ones included (Airflow still serves their last version).
pub fn find_dag(store: &Store, dag_id: &str) -> Result<DagRow, ApiError> {
    store
        .dag(dag_id)?
        .ok_or_else(|| ApiError::not_found(format!("The Dag with ID: `{dag_id}` was not found")))
}

pub fn display_name(dag: &Dag) -> &str {
    dag.dag_display_name.as_deref().unwrap_or(&dag.dag_id)
}

/// DAG params as Airflow's `Param.dump()` writes each: value, schema, description, source.
/// updraft's params are plain values, so the schema is empty and there is no description.
pub fn params_json(params: &Value) -> Value {
    match params {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        json!({"value": v, "schema": {}, "description": null, "source": "dag"}),
                    )
                })
                .collect(),
        ),
        _ => json!({}),
    }
}
