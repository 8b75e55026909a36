//! The tasks of a DAG (`/dags/{dag_id}/tasks`), as Airflow's TaskResponse shows them.

use serde_json::{Value, json};

use super::kit::{dt, order_by, sorted, timedelta_json};
use super::views::{find_dag, params_json};
use crate::api::http::{ApiError, Method, Reply, Req};
use crate::api::route::{Ctx, Params, Route, guarded};
use crate::auth::Role;
use crate::model::{Dag, Operator, PythonKind, SensorKind, Task};
use crate::store::Store;

use Method::Get;

/// Tasks.
#[rustfmt::skip]
pub static ROUTES: &[Route] = &[
    guarded(Get, "/api/v2/dags/{dag_id}/tasks", Role::Viewer, None, "The tasks of a DAG", tasks),
    guarded(Get, "/api/v2/dags/{dag_id}/tasks/{task_id}", Role::Viewer, None, "One task of a DAG", task),
];

/// Task fields Airflow sorts by (`_SORTABLE_TASK_FIELDS`).
const TASK_ORDER: &[&str] = &[
    "task_id",
    "task_display_name",
    "owner",
    "start_date",
    "end_date",
    "trigger_rule",
    "depends_on_past",
    "wait_for_downstream",
    "retries",
    "queue",
    "pool",
    "pool_slots",
    "execution_timeout",
    "retry_delay",
    "retry_exponential_backoff",
    "priority_weight",
    "weight_rule",
    "ui_color",
    "ui_fgcolor",
    "operator_name",
];

fn tasks(_ctx: &Ctx, store: &mut Store, req: &Req, p: &Params) -> Result<Reply, ApiError> {
    let row = find_dag(store, p.get("dag_id"))?;
    let (key, desc) = order_by(req, TASK_ORDER, "task_id")?;
    let rows: Vec<Value> = row
        .dag
        .tasks
        .iter()
        .map(|t| task_json(&row.dag, t))
        .collect();
    // Airflow sorts by (value is None, value): missing values last, first when reversed.
    let keys: Vec<Value> = rows
        .iter()
        .map(|t| {
            let v = match &t[key] {
                Value::Object(td) => json!(
                    td["days"].as_f64().unwrap_or(0.0) * 86_400.0
                        + td["seconds"].as_f64().unwrap_or(0.0)
                        + td["microseconds"].as_f64().unwrap_or(0.0) / 1e6
                ),
                v => v.clone(),
            };
            json!({"missing": v.is_null(), "value": v})
        })
        .collect();
    let rows = sorted(rows, keys, &[("missing", desc), ("value", desc)], "value");
    let total = rows.len();
    Ok(Reply::json(
        200,
        &json!({"tasks": rows, "total_entries": total}),
    ))
}

fn task(_ctx: &Ctx, store: &mut Store, _req: &Req, p: &Params) -> Result<Reply, ApiError> {
    let row = find_dag(store, p.get("dag_id"))?;
    let task_id = p.get("task_id");
    let task = row
        .dag
        .task(task_id)
        .ok_or_else(|| ApiError::not_found(format!("Task with id {task_id} was not found")))?;
    Ok(Reply::json(200, &task_json(&row.dag, task)))
}

/// One task as Airflow's TaskResponse: counts as floats, durations as TimeDelta objects.
fn task_json(dag: &Dag, task: &Task) -> Value {
    let mut downstream: Vec<&str> = dag
        .tasks
        .iter()
        .filter(|t| t.upstream.contains(&task.task_id))
        .map(|t| t.task_id.as_str())
        .collect();
    downstream.sort_unstable();
    let (module, template_fields, ui_color): (&str, &[&str], &str) = match task.operator {
        Operator::Bash => (
            "airflow.providers.standard.operators.bash",
            &["bash_command", "env", "cwd"],
            "#f0ede4",
        ),
        Operator::Empty => ("airflow.providers.standard.operators.empty", &[], "#e8f7e4"),
        Operator::Python(PythonKind::Sensor) => (
            "airflow.providers.standard.sensors.python",
            &["templates_dict", "op_args", "op_kwargs"],
            "#e6f1f2",
        ),
        Operator::Python(_) => (
            "airflow.providers.standard.operators.python",
            &["templates_dict", "op_args", "op_kwargs"],
            "#ffefeb",
        ),
        Operator::Sensor(kind) => (
            match kind {
                SensorKind::File => "airflow.providers.standard.sensors.filesystem",
                SensorKind::TimeDelta => "airflow.providers.standard.sensors.time_delta",
                SensorKind::Time => "airflow.providers.standard.sensors.time",
                SensorKind::DateTime => "airflow.providers.standard.sensors.date_time",
                SensorKind::ExternalTask => "airflow.providers.standard.sensors.external_task",
                SensorKind::Bash => "airflow.providers.standard.sensors.bash",
            },
            kind.template_fields(),
            match kind {
                SensorKind::File => "#91818a",
                SensorKind::ExternalTask => "#4db7db",
                _ => "#e6f1f2",
            },
        ),
        Operator::TaskFlow(kind) => (
            match kind {
                PythonKind::Call => "airflow.providers.standard.decorators.python",
                PythonKind::Branch => "airflow.providers.standard.decorators.branch_python",
                PythonKind::ShortCircuit => "airflow.providers.standard.decorators.short_circuit",
                PythonKind::Sensor => "airflow.providers.standard.decorators.sensor",
            },
            &["templates_dict", "op_args", "op_kwargs"],
            "#ffefeb",
        ),
        Operator::Hitl(_) => (
            "airflow.providers.standard.operators.hitl",
            &["subject", "body"],
            "#fff",
        ),
        Operator::Builtin(kind) => {
            let spec = kind.spec();
            (spec.module, spec.template_fields, spec.ui_color)
        }
    };
    json!({
        "task_id": task.task_id,
        "task_display_name": task.task_id,
        "owner": task.owner,
        // Tasks take the DAG's dates (updraft has no task-level ones), as Airflow's do
        // when they set none.
        "start_date": dt(dag.start_date),
        "end_date": dt(dag.end_date),
        "trigger_rule": task.trigger_rule.as_str(),
        "depends_on_past": false,
        "wait_for_downstream": false,
        "retries": f64::from(task.retries),
        "queue": "default",
        "pool": task.pool,
        "pool_slots": f64::from(task.pool_slots),
        "execution_timeout": task.execution_timeout_secs.map(timedelta_json),
        "retry_delay": timedelta_json(task.retry_delay_secs),
        // Airflow 3.3 reads `True` as a multiplier of 2.0 and `False` as 0.
        "retry_exponential_backoff": if task.retry_exponential_backoff { 2.0 } else { 0.0 },
        "priority_weight": task.priority_weight as f64,
        "weight_rule": "downstream",
        "ui_color": ui_color,
        "ui_fgcolor": "#000",
        "template_fields": template_fields,
        "downstream_task_ids": downstream,
        "doc_md": task.doc_md,
        "operator_name": task.operator.operator_name(),
        // A task's params are its DAG's, as Airflow merges them into each task.
        "params": params_json(&dag.params),
        "class_ref": {"module_path": module, "class_name": task.operator.class_name()},
        "is_mapped": false,
        "extra_links": [],
    })
}
