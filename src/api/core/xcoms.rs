//! XComs of task instances, as `/xcomEntries` lists and shows them.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::kit::{apply_order, patterns, query_ints, query_map_index, time_ranges};
use super::kit::{dt, orders, query_all, query_bool};
use super::views::Dags;
use crate::api::http::{ApiError, Method, Reply, Req};
use crate::api::route::{Ctx, Params, Route, guarded};
use crate::auth::Role;
use crate::py;
use crate::store::q_runs::{ListQuery, XcomRow};
use crate::store::{RunRow, Store};

use Method::Get;

/// XComs.
#[rustfmt::skip]
pub static ROUTES: &[Route] = &[
    guarded(Get, "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/xcomEntries", Role::Viewer, None, "XComs of a task instance (`~` for every DAG, run and task)", xcoms),
    guarded(Get, "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/xcomEntries/{xcom_key:path}", Role::Viewer, None, "One XCom with its value", xcom),
];

const XCOM_ORDER: &[&str] = &[
    "key",
    "dag_id",
    "run_id",
    "task_id",
    "map_index",
    "timestamp",
    "run_after",
];
/// An XCom as Airflow's `XComResponse` shows it (the list leaves out the value).
fn xcom_json(
    dags: &mut Dags,
    runs: &mut HashMap<(String, String), Option<RunRow>>,
    store: &Store,
    x: &XcomRow,
) -> Result<Value, ApiError> {
    let key = (x.dag_id.clone(), x.run_id.clone());
    if !runs.contains_key(&key) {
        runs.insert(key.clone(), store.run(&x.dag_id, &x.run_id)?);
    }
    let run = runs.get(&key).and_then(Option::as_ref);
    Ok(json!({
        "key": x.key,
        "timestamp": dt(Some(x.timestamp)),
        "logical_date": dt(run.and_then(|r| r.logical_date)),
        "map_index": x.map_index,
        "task_id": x.task_id,
        "dag_id": x.dag_id,
        "run_id": x.run_id,
        "dag_display_name": dags.display(&x.dag_id)?,
        "task_display_name": x.task_id,
        "run_after": dt(Some(run.map_or(x.timestamp, |r| r.run_after))),
    }))
}

fn xcoms(ctx: &Ctx, store: &mut Store, req: &Req, p: &Params) -> Result<Reply, ApiError> {
    let (limit, offset) = super::kit::page(ctx, req)?;
    let mut q = ListQuery::default();
    for (param, field) in [
        ("dag_id", "dag_id"),
        ("dag_run_id", "run_id"),
        ("task_id", "task_id"),
    ] {
        let v = p.get(param);
        if v != "~" {
            q.any_of(field, vec![Some(v.to_string())]);
        }
    }
    if let Some(k) = req.query("xcom_key") {
        q.any_of("key", vec![Some(k.to_string())]);
    }
    if let Some(m) = query_map_index(req)? {
        q.any_int("map_index", vec![m]);
    }
    let filter = query_ints(req, "map_index_filter")?;
    if let Some(m) = filter.first() {
        q.any_int("map_index", vec![*m]);
    }
    patterns(
        req,
        &mut q,
        &[
            ("xcom_key", "key"),
            ("dag_display_name", "dag_display_name"),
            ("run_id", "run_id"),
            ("task_id", "task_id"),
        ],
    );
    time_ranges(req, &mut q, &["logical_date", "run_after"])?;
    let keys = orders(
        &query_all(req, "order_by"),
        XCOM_ORDER,
        &[
            ("dag_id", false),
            ("task_id", false),
            ("run_id", false),
            ("map_index", false),
            ("key", false),
        ],
        &[],
    )?;
    apply_order(&mut q, &keys, "rowid");
    q.limit = Some(limit);
    q.offset = offset;
    let (rows, total) = store.list_xcoms(&q)?;
    let mut dags = Dags::new(store);
    let mut runs = HashMap::new();
    let items = rows
        .iter()
        .map(|x| xcom_json(&mut dags, &mut runs, store, x))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Reply::json(
        200,
        &json!({"xcom_entries": items, "total_entries": total}),
    ))
}

fn xcom(_ctx: &Ctx, store: &mut Store, req: &Req, p: &Params) -> Result<Reply, ApiError> {
    let key = p.get("xcom_key");
    let map_index = query_map_index(req)?.unwrap_or(-1);
    let deserialize = query_bool(req, "deserialize")?.unwrap_or(false);
    let stringify = query_bool(req, "stringify")?.unwrap_or(false);
    let mut q = ListQuery::default();
    q.any_of("dag_id", vec![Some(p.get("dag_id").to_string())])
        .any_of("run_id", vec![Some(p.get("dag_run_id").to_string())])
        .any_of("task_id", vec![Some(p.get("task_id").to_string())])
        .any_of("key", vec![Some(key.to_string())])
        .any_int("map_index", vec![map_index]);
    q.limit = Some(1);
    let (rows, _) = store.list_xcoms(&q)?;
    let x = rows
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::not_found(format!("XCom entry with key: `{key}` not found")))?;
    let mut value = x.value.clone();
    // A value pushed as a JSON text is shown parsed, as Airflow's `deserialize` does.
    if deserialize
        && let Value::String(s) = &value
        && let Ok(parsed) = serde_json::from_str::<Value>(s)
    {
        value = parsed;
    }
    if stringify && !value.is_null() {
        value = Value::String(py::str_of(&value));
    }
    let mut out = xcom_json(&mut Dags::new(store), &mut HashMap::new(), store, &x)?;
    out["value"] = value;
    Ok(Reply::json(200, &out))
}
