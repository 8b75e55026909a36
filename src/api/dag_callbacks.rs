//! The Execution API's routes for DAG-level callbacks (`/execution/dag-callbacks/{id}`):
//! what the executor's callback runner calls to claim one request (Airflow's
//! `DagCallbackRequest`) and get its context, and to say it ran.
//!
//! Only a callback token for that request (`auth::task::mint_dag_callback`) is accepted;
//! such a token reaches no task instance's routes. The context is what Airflow 3's DAG
//! processor builds (`_execute_dag_callbacks`): the template context of the task instance
//! the scheduler's decision names (the last one to succeed, the last one to fail, the one
//! that blocked the run), with `reason`; without one, only `dag`, `run_id` and `reason`.

use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::http::{ApiError, Reply, Req};
use crate::api::route::{Ctx, Params};
use crate::auth::task as task_token;
use crate::model::TaskState;
use crate::store::{DagCallbackRow, Store, TiRow};

fn claims(ctx: &Ctx, req: &Req) -> Result<task_token::Claims, ApiError> {
    let header = req.header("authorization").unwrap_or("");
    let token = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::new(401, "Missing auth token"))?;
    task_token::verify(&ctx.secret, token, ctx.clock.now().timestamp())
        .map_err(|e| ApiError::new(403, format!("Invalid auth token: {e}")))
}

/// Whether the request carries a DAG callback token whose request is running: true, and
/// the caller may read variables, connections and XComs and set variables, as Airflow's
/// DAG processor lets a callback; false for any other token (the caller checks it as a
/// task's); a 403 for a callback token whose request is not running.
pub fn running_callback(ctx: &Ctx, store: &Store, req: &Req) -> Result<bool, ApiError> {
    let Ok(claims) = claims(ctx, req) else {
        return Ok(false);
    };
    let Some(id) = claims.dag_callback.filter(|_| claims.execution) else {
        return Ok(false);
    };
    match store.dag_callback(id)? {
        Some(cb) if cb.state == "running" => Ok(true),
        other => Err(ApiError::new(
            403,
            format!(
                "Invalid auth token: its DAG callback request is {}, not running",
                other.map_or_else(|| "gone".to_string(), |c| c.state)
            ),
        )),
    }
}

/// The request the caller's token was minted for, when it is the one in the path.
fn callback_caller(
    ctx: &Ctx,
    store: &Store,
    req: &Req,
    p: &Params,
) -> Result<DagCallbackRow, ApiError> {
    let claims = claims(ctx, req)?;
    let id: i64 = p
        .get("callback_id")
        .parse()
        .map_err(|_| ApiError::new(404, "DAG callback request not found"))?;
    if !claims.execution || claims.dag_callback != Some(id) {
        return Err(ApiError::new(
            403,
            "Token subject does not match the DAG callback request",
        ));
    }
    store
        .dag_callback(id)?
        .ok_or_else(|| ApiError::new(404, format!("DAG callback request {id} not found")))
}

fn conflict(message: &str, state: &str) -> ApiError {
    ApiError::with_detail(
        409,
        json!({"reason": "invalid_state", "message": message, "previous_state": state}),
    )
}

/// The task instance whose context the callback gets: the one the scheduler named, else
/// as Airflow's `DagRun.update_state` picks it: of the run's instances in the state that
/// ended it, the one that ended last.
fn relevant_ti(store: &Store, cb: &DagCallbackRow) -> Result<Option<TiRow>, ApiError> {
    if let Some(id) = &cb.ti_id {
        return Ok(store.ti(id)?);
    }
    let want = match cb.reason.as_str() {
        "success" => TaskState::Success,
        "task_failure" => TaskState::Failed,
        _ => return Ok(None),
    };
    Ok(store
        .tis_of_run(&cb.dag_id, &cb.run_id)?
        .into_iter()
        .filter(|t| t.state == Some(want))
        .max_by_key(|t| t.end_date))
}

/// `PATCH /execution/dag-callbacks/{id}/run`: queued -> running; returns what the runner
/// needs: the callbacks, the reason, and the context of the relevant task instance.
pub fn run(ctx: &Ctx, store: &mut Store, req: &Req, p: &Params) -> Result<Reply, ApiError> {
    let cb = callback_caller(ctx, store, req, p)?;
    let now = ctx.clock.now();
    if !store.write(|tx| tx.set_dag_callback_state(cb.id, "queued", "running", now))? {
        return Err(conflict(
            "the DAG callback request was already claimed",
            &cb.state,
        ));
    }
    let run = store
        .run(&cb.dag_id, &cb.run_id)?
        .ok_or_else(|| ApiError::new(404, format!("DAG run {} not found", cb.run_id)))?;
    let row = store
        .dag(&cb.dag_id)?
        .ok_or_else(|| ApiError::new(404, format!("DAG {} not found", cb.dag_id)))?;
    let dag = &row.dag;
    let on = if cb.is_failure {
        "on_failure_callback"
    } else {
        "on_success_callback"
    };
    let callbacks: Vec<&crate::model::Callback> =
        dag.callbacks.iter().filter(|c| c.on == on).collect();
    let ti = relevant_ti(store, &cb)?;
    let task = ti.as_ref().and_then(|t| dag.task(&t.task_id));
    let t = |d: Option<chrono::DateTime<chrono::Utc>>| d.map(crate::store::ts);
    let context = json!({
        "reason": cb.reason,
        "on": on,
        "callbacks": callbacks,
        // No task instance (or its task is gone from the DAG): Airflow's minimal context.
        "minimal": task.is_none(),
        "dag_run": {
            "dag_id": run.dag_id, "run_id": run.run_id, "logical_date": t(run.logical_date),
            "data_interval_start": t(run.data_interval_start), "data_interval_end": t(run.data_interval_end),
            "run_after": crate::store::ts(run.run_after), "start_date": t(run.start_date), "end_date": t(run.end_date),
            "run_type": run.run_type.as_str(), "conf": run.conf, "state": run.state.as_str(),
        },
        "try_number": ti.as_ref().map(|t| t.try_number),
        "max_tries": ti.as_ref().map(|t| t.max_tries),
        "map_index": ti.as_ref().map_or(-1, |t| t.map_index),
        "ti_state": ti.as_ref().and_then(|t| t.state).map(TaskState::as_str),
        "params": dag.params,
        "task": task.map_or(Value::Null, |t| json!({"task_id": t.task_id, "owner": t.owner, "operator": t.operator.class_name()})),
        "fileloc": row.relative_fileloc,
        "bundle": row.bundle_name,
    });
    Ok(Reply::json(200, &context))
}

#[derive(Deserialize)]
struct StateBody {
    state: String,
}

/// `PATCH /execution/dag-callbacks/{id}/state`: running -> success or failed. 204; 200
/// when it is already in that state; 409 when it is not running.
pub fn state(ctx: &Ctx, store: &mut Store, req: &Req, p: &Params) -> Result<Reply, ApiError> {
    let cb = callback_caller(ctx, store, req, p)?;
    let b: StateBody = serde_json::from_slice(&req.body)
        .map_err(|e| ApiError::new(422, format!("invalid request body: {e}")))?;
    if !matches!(b.state.as_str(), "success" | "failed") {
        return Err(ApiError::new(
            422,
            format!(
                "a DAG callback ends in success or failed, not {:?}",
                b.state
            ),
        ));
    }
    if cb.state == b.state {
        return Ok(Reply::bytes(200, "application/json", Vec::new()));
    }
    let now = ctx.clock.now();
    if !store.write(|tx| tx.set_dag_callback_state(cb.id, "running", &b.state, now))? {
        return Err(conflict(
            "the DAG callback request is not running",
            &cb.state,
        ));
    }
    Ok(Reply::bytes(204, "application/json", Vec::new()))
}
