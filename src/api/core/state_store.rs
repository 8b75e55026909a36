//! The task state store of a task instance (`.../taskInstances/{task_id}/state-store`):
//! JSON values a task keeps under keys across its tries, as Airflow's Core API shows and
//! changes them. updraft has no `[state_store]` settings: a value set with the default
//! expiry never expires, and values have no size limit beyond the request's.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use super::kit::{Kind, body, dt, field, no_content, page, query_bool, query_map_index};
use crate::api::http::{ApiError, Method, Reply, Req};
use crate::api::route::{Ctx, Params, Route, guarded};
use crate::auth::Role;
use crate::store::{StateEntry, StateScope, Store};

use Method::{Delete, Get, Patch, Put};

/// Task state store.
#[rustfmt::skip]
pub static ROUTES: &[Route] = &[
    guarded(Get, "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/state-store", Role::Viewer, None, "A task instance's state store entries", list),
    guarded(Delete, "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/state-store", Role::User, None, "Delete every state store key of a task instance (all_map_indices: of every instance)", clear),
    guarded(Get, "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/state-store/{key:path}", Role::Viewer, None, "One state store entry", get),
    guarded(Put, "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/state-store/{key:path}", Role::User, None, "Set a state store value", put),
    guarded(Patch, "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/state-store/{key:path}", Role::User, None, "Change an existing state store value", patch),
    guarded(Delete, "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/state-store/{key:path}", Role::User, None, "Delete a state store key", delete),
];

fn scope(req: &Req, p: &Params) -> Result<StateScope, ApiError> {
    Ok(StateScope {
        dag_id: p.get("dag_id").to_string(),
        run_id: p.get("dag_run_id").to_string(),
        task_id: p.get("task_id").to_string(),
        map_index: query_map_index(req)?.unwrap_or(-1),
    })
}

/// Airflow's 404 unless the task instance (or, with `any_index`, any instance of the
/// task) exists.
fn require_ti(store: &Store, s: &StateScope, any_index: bool) -> Result<(), ApiError> {
    let found = if any_index {
        store
            .tis_of_run(&s.dag_id, &s.run_id)?
            .iter()
            .any(|ti| ti.task_id == s.task_id)
    } else {
        store
            .ti_at(&s.dag_id, &s.run_id, &s.task_id, s.map_index)?
            .is_some()
    };
    if found {
        return Ok(());
    }
    let by = if any_index {
        "all_map_indices=True".to_string()
    } else {
        format!("map_index={}", s.map_index)
    };
    Err(ApiError::not_found(format!(
        "Task instance not found for dag_id='{}', run_id='{}', task_id='{}', {by}",
        s.dag_id, s.run_id, s.task_id
    )))
}

pub fn entry_json(e: &StateEntry) -> Value {
    json!({"key": e.key, "value": e.value, "updated_at": dt(Some(e.updated_at)), "expires_at": dt(e.expires_at)})
}

/// A body's `value`: any JSON but null.
pub fn value_of(b: &Map<String, Value>) -> Result<String, ApiError> {
    match b.get("value") {
        None | Some(Value::Null) => Err(ApiError::with_detail(
            422,
            json!([{"type": "value_error", "loc": ["body", "value"], "msg": "Value error, value cannot be null",
                    "input": null, "ctx": {"error": {}}}]),
        )),
        Some(v) => Ok(v.to_string()),
    }
}

/// A body's `expires_at`: `"default"` (absent) and null never expire; else a time with
/// its offset.
pub fn expiry_of(b: &Map<String, Value>) -> Result<Option<DateTime<Utc>>, ApiError> {
    match b.get("expires_at") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s == "default" => Ok(None),
        Some(Value::String(s)) => DateTime::parse_from_rfc3339(s)
            .map(|d| Some(d.with_timezone(&Utc)))
            .map_err(|_| bad_expiry(&Value::String(s.clone()))),
        Some(other) => Err(bad_expiry(other)),
    }
}

fn bad_expiry(v: &Value) -> ApiError {
    ApiError::with_detail(
        422,
        json!([{"type": "timezone_aware", "loc": ["body", "expires_at"],
                "msg": "Input should be a timezone-aware datetime or 'default'", "input": v}]),
    )
}

fn list(ctx: &Ctx, store: &mut Store, req: &Req, p: &Params) -> Result<Reply, ApiError> {
    let (limit, offset) = page(ctx, req)?;
    let s = scope(req, p)?;
    let all = store.state_entries(&s, ctx.clock.now())?;
    let items: Vec<Value> = all
        .iter()
        .skip(offset)
        .take(limit)
        .map(entry_json)
        .collect();
    Ok(Reply::json(
        200,
        &json!({"task_state_store": items, "total_entries": all.len()}),
    ))
}

fn find(ctx: &Ctx, store: &Store, s: &StateScope, key: &str) -> Result<StateEntry, ApiError> {
    store
        .state_entries(s, ctx.clock.now())?
        .into_iter()
        .find(|e| e.key == key)
        .ok_or_else(|| ApiError::not_found(format!("Task state store key '{key}' not found")))
}

fn get(ctx: &Ctx, store: &mut Store, req: &Req, p: &Params) -> Result<Reply, ApiError> {
    let s = scope(req, p)?;
    let e = find(ctx, store, &s, p.get("key"))?;
    Ok(Reply::json(200, &entry_json(&e)))
}

/// `PUT .../state-store/{key}`: `{value, expires_at}`. 204.
fn put(ctx: &Ctx, store: &mut Store, req: &Req, p: &Params) -> Result<Reply, ApiError> {
    let b = body(
        req,
        &[
            field("value", Kind::Any, true, true),
            field("expires_at", Kind::Any, false, true),
        ],
    )?;
    let (value, expires) = (value_of(&b)?, expiry_of(&b)?);
    let s = scope(req, p)?;
    require_ti(store, &s, false)?;
    let now = ctx.clock.now();
    store.write(|tx| tx.set_state(&s, p.get("key"), &value, expires, now))?;
    Ok(no_content())
}

/// `PATCH .../state-store/{key}`: `{value}` of an existing key, its expiry kept. 200.
fn patch(ctx: &Ctx, store: &mut Store, req: &Req, p: &Params) -> Result<Reply, ApiError> {
    let b = body(req, &[field("value", Kind::Any, true, true)])?;
    let value = value_of(&b)?;
    let s = scope(req, p)?;
    require_ti(store, &s, false)?;
    let key = p.get("key");
    let old = find(ctx, store, &s, key)?;
    let now = ctx.clock.now();
    store.write(|tx| tx.set_state(&s, key, &value, old.expires_at, now))?;
    Ok(Reply::json(200, &Value::Null))
}

/// `DELETE .../state-store/{key}`: 204 whether or not the key was there.
fn delete(_ctx: &Ctx, store: &mut Store, req: &Req, p: &Params) -> Result<Reply, ApiError> {
    let s = scope(req, p)?;
    require_ti(store, &s, false)?;
    store.write(|tx| tx.delete_state(&s, Some(p.get("key")), false))?;
    Ok(no_content())
}

/// `DELETE .../state-store?all_map_indices=`: every key. 204.
fn clear(_ctx: &Ctx, store: &mut Store, req: &Req, p: &Params) -> Result<Reply, ApiError> {
    let s = scope(req, p)?;
    let all = query_bool(req, "all_map_indices")?.unwrap_or(false);
    require_ti(store, &s, all)?;
    store.write(|tx| tx.delete_state(&s, None, all))?;
    Ok(no_content())
}
