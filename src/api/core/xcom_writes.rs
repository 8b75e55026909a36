//! Creating, changing and deleting XComs through `/xcomEntries`, as Airflow's Core API
//! does (a value is stored as given: the API does not serialise it).

use serde_json::{Map, Value, json};

use super::kit::{Kind, body, field, query_map_index};
use crate::api::http::{ApiError, Method, Reply, Req};
use crate::api::route::{Ctx, Params, Route, guarded};
use crate::auth::Role;
use crate::store::Store;

use Method::{Delete, Patch, Post};

/// XCom writes.
#[rustfmt::skip]
pub static ROUTES: &[Route] = &[
    guarded(Post, "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/xcomEntries", Role::User, Some("create_xcom_entry"), "Create an XCom of a task instance", create),
    guarded(Patch, "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/xcomEntries/{xcom_key:path}", Role::User, Some("update_xcom_entry"), "Change an XCom's value", update),
    guarded(Delete, "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/xcomEntries/{xcom_key:path}", Role::User, Some("delete_xcom_entry"), "Delete an XCom", delete),
];

fn map_index_of(b: &Map<String, Value>) -> Result<i64, ApiError> {
    match b.get("map_index") {
        None | Some(Value::Null) => Ok(-1),
        Some(v) => v.as_i64().ok_or_else(|| {
            ApiError::with_detail(
                422,
                json!([{"type": "int_type", "loc": ["body", "map_index"], "msg": "Input should be a valid integer", "input": v}]),
            )
        }),
    }
}

/// The XCom as `XComResponseNative` shows it: its fields and its value.
fn reply(
    store: &Store,
    status: u16,
    p: &Params,
    key: &str,
    map_index: i64,
) -> Result<Reply, ApiError> {
    let (dag_id, run_id, task_id) = (p.get("dag_id"), p.get("dag_run_id"), p.get("task_id"));
    let run = store.run(dag_id, run_id)?;
    let mut q = crate::store::q_runs::ListQuery::default();
    q.any_of("dag_id", vec![Some(dag_id.to_string())])
        .any_of("run_id", vec![Some(run_id.to_string())])
        .any_of("task_id", vec![Some(task_id.to_string())])
        .any_of("key", vec![Some(key.to_string())])
        .any_int("map_index", vec![map_index]);
    q.limit = Some(1);
    let (rows, _) = store.list_xcoms(&q)?;
    let x = rows
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::not_found(format!("XCom entry with key: `{key}` not found")))?;
    let dag_display_name = store
        .dag(dag_id)?
        .and_then(|d| d.dag.dag_display_name.clone())
        .unwrap_or_else(|| dag_id.to_string());
    Ok(Reply::json(
        status,
        &json!({
            "key": x.key, "timestamp": super::kit::dt(Some(x.timestamp)),
            "logical_date": super::kit::dt(run.as_ref().and_then(|r| r.logical_date)),
            "map_index": x.map_index, "task_id": x.task_id, "dag_id": x.dag_id, "run_id": x.run_id,
            "dag_display_name": dag_display_name, "task_display_name": x.task_id,
            "run_after": super::kit::dt(Some(run.map_or(x.timestamp, |r| r.run_after))),
            "value": x.value,
        }),
    ))
}

/// `POST .../xcomEntries`: `{key, value, map_index}`; 404 for an unknown DAG, task or
/// run, 409 when the XCom exists. 201.
fn create(ctx: &Ctx, store: &mut Store, req: &Req, p: &Params) -> Result<Reply, ApiError> {
    let b = body(
        req,
        &[
            field("key", Kind::Str, true, false),
            field("value", Kind::Any, true, true),
            field("map_index", Kind::Int, false, false),
        ],
    )?;
    let (dag_id, run_id, task_id) = (p.get("dag_id"), p.get("dag_run_id"), p.get("task_id"));
    let key = b
        .get("key")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let map_index = map_index_of(&b)?;
    let dag = ctx
        .dags
        .get(store, dag_id)?
        .ok_or_else(|| ApiError::not_found(format!("The Dag with ID: `{dag_id}` was not found")))?;
    if dag.task(task_id).is_none() {
        return Err(ApiError::not_found(format!(
            "Task with ID: `{task_id}` not found in dag: `{dag_id}`"
        )));
    }
    if store.run(dag_id, run_id)?.is_none() {
        return Err(ApiError::not_found(format!(
            "Dag Run with ID: `{run_id}` not found for dag: `{dag_id}`"
        )));
    }
    if store
        .xcom_at(dag_id, run_id, task_id, map_index, &key)?
        .is_some()
    {
        return Err(ApiError::new(
            409,
            format!("The XCom with key: `{key}` with mentioned task instance already exists."),
        ));
    }
    let value = b.get("value").cloned().unwrap_or(Value::Null);
    let now = ctx.clock.now();
    store.write(|tx| tx.set_xcom(dag_id, run_id, task_id, map_index, &key, &value, now))?;
    reply(store, 201, p, &key, map_index)
}

/// `PATCH .../xcomEntries/{xcom_key}`: `{value, map_index}`; 404 when there is no such
/// XCom. 200.
fn update(ctx: &Ctx, store: &mut Store, req: &Req, p: &Params) -> Result<Reply, ApiError> {
    let b = body(
        req,
        &[
            field("value", Kind::Any, true, true),
            field("map_index", Kind::Int, false, false),
        ],
    )?;
    let (dag_id, run_id, task_id, key) = (
        p.get("dag_id"),
        p.get("dag_run_id"),
        p.get("task_id"),
        p.get("xcom_key"),
    );
    let map_index = map_index_of(&b)?;
    if store
        .xcom_at(dag_id, run_id, task_id, map_index, key)?
        .is_none()
    {
        return Err(ApiError::not_found(format!(
            "The XCom with key: `{key}` with mentioned task instance doesn't exist."
        )));
    }
    let value = b.get("value").cloned().unwrap_or(Value::Null);
    let now = ctx.clock.now();
    store.write(|tx| tx.set_xcom(dag_id, run_id, task_id, map_index, key, &value, now))?;
    reply(store, 200, p, key, map_index)
}

/// `DELETE .../xcomEntries/{xcom_key}?map_index=`: 204; 404 when there is no such XCom.
fn delete(_ctx: &Ctx, store: &mut Store, req: &Req, p: &Params) -> Result<Reply, ApiError> {
    let (dag_id, run_id, task_id, key) = (
        p.get("dag_id"),
        p.get("dag_run_id"),
        p.get("task_id"),
        p.get("xcom_key"),
    );
    let map_index = query_map_index(req)?.unwrap_or(-1);
    if !store.write(|tx| tx.delete_xcom(dag_id, run_id, task_id, map_index, key))? {
        return Err(ApiError::not_found(format!(
            "The XCom with key: `{key}` with mentioned task instance doesn't exist."
        )));
    }
    Ok(Reply::bytes(204, "application/json", Vec::new()))
}
