//! Assets (`/assets`, Airflow's Asset tag): assets with their DAGs and last event,
//! aliases, events (listed and created: a manual event triggers consumers as a
//! producer's does), the events queued per asset and per DAG, and materialize.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use super::kit::{
    Kind, Patterns, Range, body, collection, dt, field, order_keys, page, path_int, sorted,
};
use crate::api::http::{ApiError, Method, Reply, Req};
use crate::api::route::{Ctx, Params, Route, guarded};
use crate::auth::Role;
use crate::model::RunType;
use crate::store::{AssetEventRow, AssetRefRow, AssetRow, AssetStateRow, QueuedRow, RunRow, Store};

use Method::{Delete, Get, Post, Put};

/// The Asset tag. The literal paths come before `{asset_id}`.
#[rustfmt::skip]
pub static ROUTES: &[Route] = &[
    guarded(Get, "/api/v2/assets", Role::Viewer, None, "Assets, with the DAGs that schedule on, produce and read them, and their last event", assets),
    guarded(Get, "/api/v2/assets/aliases", Role::Viewer, None, "Asset aliases", aliases),
    guarded(Get, "/api/v2/assets/aliases/{asset_alias_id}", Role::Viewer, None, "One asset alias", alias),
    guarded(Get, "/api/v2/assets/events", Role::Viewer, None, "Asset events", events),
    guarded(Post, "/api/v2/assets/events", Role::Op, Some("create_asset_event"), "Create an asset event; its consumers are triggered as by a producer", create_event),
    guarded(Post, "/api/v2/assets/{asset_id}/materialize", Role::Op, Some("materialize_asset"), "Run the one DAG that produces the asset", materialize),
    guarded(Get, "/api/v2/assets/{asset_id}/queuedEvents", Role::Viewer, None, "Events of an asset queued for its consumers", asset_queued),
    guarded(Delete, "/api/v2/assets/{asset_id}/queuedEvents", Role::Op, Some("delete_asset_queued_events"), "Drop the queued events of an asset", delete_asset_queued),
    guarded(Get, "/api/v2/assets/{asset_id}", Role::Viewer, None, "One asset", asset),
    guarded(Get, "/api/v2/assets/{asset_id}/state-store", Role::Viewer, None, "An asset's state store", state_list),
    guarded(Delete, "/api/v2/assets/{asset_id}/state-store", Role::Op, None, "Clear an asset's state store", state_clear),
    guarded(Get, "/api/v2/assets/{asset_id}/state-store/{key:path}", Role::Viewer, None, "One key of an asset's state store", state_get),
    guarded(Put, "/api/v2/assets/{asset_id}/state-store/{key:path}", Role::Op, None, "Set one key of an asset's state store", state_put),
    guarded(Delete, "/api/v2/assets/{asset_id}/state-store/{key:path}", Role::Op, None, "Delete one key of an asset's state store (no error when absent)", state_delete),
    guarded(Get, "/api/v2/dags/{dag_id}/assets/queuedEvents", Role::Viewer, None, "Events queued for a DAG", dag_queued),
    guarded(Delete, "/api/v2/dags/{dag_id}/assets/queuedEvents", Role::Op, Some("delete_dag_asset_queued_events"), "Drop the events queued for a DAG", delete_dag_queued),
    guarded(Get, "/api/v2/dags/{dag_id}/assets/{asset_id}/queuedEvents", Role::Viewer, None, "The event of one asset queued for a DAG", dag_asset_queued),
    guarded(Delete, "/api/v2/dags/{dag_id}/assets/{asset_id}/queuedEvents", Role::Op, Some("delete_dag_asset_queued_event"), "Drop the event of one asset queued for a DAG", delete_dag_asset_queued),
    guarded(Get, "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/upstreamAssetEvents", Role::Viewer, None, "The asset events a run consumed", upstream_events),
];

fn ref_json(r: &AssetRefRow) -> Value {
    let mut v = json!({"dag_id": r.dag_id});
    if r.kind != "schedule" {
        v["task_id"] = json!(r.task_id);
    }
    v["created_at"] = dt(Some(r.created_at));
    v["updated_at"] = dt(Some(r.updated_at));
    v
}

/// `AssetResponse`.
fn asset_json(a: &AssetRow, refs: &[&AssetRefRow], last: Option<&AssetEventRow>) -> Value {
    let of = |kind: &str| -> Vec<Value> {
        refs.iter()
            .filter(|r| r.kind == kind)
            .map(|r| ref_json(r))
            .collect()
    };
    json!({
        "id": a.id,
        "name": a.name,
        "uri": a.uri,
        "group": a.group,
        "extra": a.extra,
        "created_at": dt(Some(a.created_at)),
        "updated_at": dt(Some(a.updated_at)),
        "scheduled_dags": of("schedule"),
        "producing_tasks": of("outlet"),
        "consuming_tasks": of("inlet"),
        "aliases": [],
        "watchers": [],
        "last_asset_event": {
            "id": last.map(|e| e.id),
            "timestamp": dt(last.map(|e| e.timestamp)),
        },
    })
}

/// `DagRunAssetReference`: `triggering` when the event is the run's newest consumed
/// one (Airflow's `resolve_triggering_event_refs`). Airflow's model requires a start
/// date, which a queued run does not have yet: it gets the time it was queued.
fn run_ref(store: &Store, r: &RunRow, event_id: i64) -> Result<Value, ApiError> {
    let newest = store.consumed_events(r.id)?.last().map(|e| e.id);
    Ok(json!({
        "run_id": r.run_id,
        "dag_id": r.dag_id,
        "logical_date": dt(r.logical_date),
        "start_date": dt(r.start_date.or(r.queued_at).or(Some(r.run_after))),
        "end_date": dt(r.end_date),
        "state": r.state.as_str(),
        "data_interval_start": dt(r.data_interval_start),
        "data_interval_end": dt(r.data_interval_end),
        "partition_key": null,
        "triggering": newest == Some(event_id),
    }))
}

/// `AssetEventResponse`.
pub fn event_json(store: &Store, e: &AssetEventRow) -> Result<Value, ApiError> {
    let runs = store
        .runs_of_event(e.id)?
        .iter()
        .map(|r| run_ref(store, r, e.id))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(json!({
        "id": e.id,
        "asset_id": e.asset_id,
        "uri": e.uri,
        "name": e.name,
        "group": e.group,
        "extra": e.extra,
        "source_task_id": e.source_task_id,
        "source_dag_id": e.source_dag_id,
        "source_run_id": e.source_run_id,
        "source_map_index": e.source_map_index,
        "created_dagruns": runs,
        "timestamp": dt(Some(e.timestamp)),
        "partition_key": null,
    }))
}

fn not_found(id: i64) -> ApiError {
    ApiError::not_found(format!("The Asset with ID: `{id}` was not found"))
}

fn assets(ctx: &Ctx, store: &mut Store, req: &Req, _: &Params) -> Result<Reply, ApiError> {
    let (limit, offset) = page(ctx, req)?;
    let order = order_keys(
        req,
        &["id", "name", "uri", "created_at", "updated_at"],
        "id",
    )?;
    let names = Patterns::new(req, "name");
    let uris = Patterns::new(req, "uri");
    // Airflow's `dag_ids`: exact DAG ids (repeated, or one comma-separated value) of the
    // DAGs scheduled on the asset or producing it (`_DagIdAssetReferenceFilter`).
    let dag_ids: Vec<&str> = super::kit::query_all(req, "dag_ids")
        .into_iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect();
    let only_active = super::kit::query_bool(req, "only_active")?.unwrap_or(true);
    let refs = store.asset_refs()?;
    let last = last_events(store)?;
    let mut rows = Vec::new();
    let mut keys = Vec::new();
    for a in store.assets()? {
        let mine: Vec<&AssetRefRow> = refs.iter().filter(|r| r.asset_id == a.id).collect();
        let keep = names.keep(&a.name)
            && uris.keep(&a.uri)
            && (dag_ids.is_empty()
                || mine
                    .iter()
                    .any(|r| r.kind != "inlet" && dag_ids.contains(&r.dag_id.as_str())))
            && (!only_active || !mine.is_empty());
        if !keep {
            continue;
        }
        keys.push(json!({"id": a.id, "name": a.name, "uri": a.uri,
            "created_at": crate::store::ts(a.created_at), "updated_at": crate::store::ts(a.updated_at)}));
        rows.push(asset_json(&a, &mine, last.get(&a.id)));
    }
    let rows = sorted(rows, keys, &order, "id");
    Ok(Reply::json(200, &collection("assets", rows, limit, offset)))
}

/// The newest event of each asset.
fn last_events(store: &Store) -> Result<HashMap<i64, AssetEventRow>, ApiError> {
    let mut last: HashMap<i64, AssetEventRow> = HashMap::new();
    for e in store.asset_events()? {
        let newer = last
            .get(&e.asset_id)
            .is_none_or(|l| (e.timestamp, e.id) >= (l.timestamp, l.id));
        if newer {
            last.insert(e.asset_id, e);
        }
    }
    Ok(last)
}

fn asset(_: &Ctx, store: &mut Store, _: &Req, p: &Params) -> Result<Reply, ApiError> {
    let id = path_int(p, "asset_id")?;
    let a = store.asset(id)?.ok_or_else(|| not_found(id))?;
    let refs = store.asset_refs()?;
    let mine: Vec<&AssetRefRow> = refs.iter().filter(|r| r.asset_id == id).collect();
    let last = last_events(store)?;
    Ok(Reply::json(200, &asset_json(&a, &mine, last.get(&id))))
}

fn aliases(ctx: &Ctx, store: &mut Store, req: &Req, _: &Params) -> Result<Reply, ApiError> {
    let (limit, offset) = page(ctx, req)?;
    let order = order_keys(req, &["id", "name"], "id")?;
    let names = Patterns::new(req, "name");
    let mut rows = Vec::new();
    for (id, name, group) in store.asset_aliases()? {
        if names.keep(&name) {
            rows.push(json!({"id": id, "name": name, "group": group}));
        }
    }
    let keys = rows.clone();
    let rows = sorted(rows, keys, &order, "id");
    Ok(Reply::json(
        200,
        &collection("asset_aliases", rows, limit, offset),
    ))
}

fn alias(_: &Ctx, store: &mut Store, _: &Req, p: &Params) -> Result<Reply, ApiError> {
    let id = path_int(p, "asset_alias_id")?;
    let (id, name, group) = store
        .asset_aliases()?
        .into_iter()
        .find(|a| a.0 == id)
        .ok_or_else(|| {
            ApiError::not_found(format!("The Asset Alias with ID: `{id}` was not found"))
        })?;
    Ok(Reply::json(
        200,
        &json!({"id": id, "name": name, "group": group}),
    ))
}

fn events(ctx: &Ctx, store: &mut Store, req: &Req, _: &Params) -> Result<Reply, ApiError> {
    let (limit, offset) = page(ctx, req)?;
    let order = order_keys(
        req,
        &[
            "source_task_id",
            "source_dag_id",
            "source_run_id",
            "source_map_index",
            "timestamp",
        ],
        "timestamp",
    )?;
    let int = |name: &str| -> Result<Option<i64>, ApiError> {
        req.query(name)
            .map(|v| {
                v.trim()
                    .parse::<i64>()
                    .map_err(|_| super::kit::int_error("query", name, v))
            })
            .transpose()
    };
    let (asset_id, map_index) = (int("asset_id")?, int("source_map_index")?);
    let (dag, task, run) = (
        req.query("source_dag_id"),
        req.query("source_task_id"),
        req.query("source_run_id"),
    );
    let names = Patterns::new(req, "name");
    let range = Range::new(req, "timestamp")?;
    let mut rows = Vec::new();
    let mut keys = Vec::new();
    for e in store.asset_events()? {
        let keep = asset_id.is_none_or(|i| i == e.asset_id)
            && map_index.is_none_or(|i| i == e.source_map_index)
            && dag.is_none_or(|d| e.source_dag_id.as_deref() == Some(d))
            && task.is_none_or(|t| e.source_task_id.as_deref() == Some(t))
            && run.is_none_or(|r| e.source_run_id.as_deref() == Some(r))
            && names.keep(&e.name)
            && range.holds(Some(e.timestamp));
        if !keep {
            continue;
        }
        keys.push(
            json!({"id": e.id, "source_task_id": e.source_task_id, "source_dag_id": e.source_dag_id,
            "source_run_id": e.source_run_id, "source_map_index": e.source_map_index,
            "timestamp": crate::store::ts(e.timestamp)}),
        );
        rows.push(event_json(store, &e)?);
    }
    let rows = sorted(rows, keys, &order, "id");
    Ok(Reply::json(
        200,
        &collection("asset_events", rows, limit, offset),
    ))
}

const EVENT_FIELDS: &[super::kit::Field] = &[
    field("asset_id", Kind::Int, true, false),
    field("partition_key", Kind::Str, false, true),
    field("extra", Kind::Object, false, false),
    field("access_control", Kind::Object, false, true),
];

fn create_event(ctx: &Ctx, store: &mut Store, req: &Req, _: &Params) -> Result<Reply, ApiError> {
    let b = body(req, EVENT_FIELDS)?;
    let id = b
        .get("asset_id")
        .and_then(Value::as_i64)
        .unwrap_or_default();
    if store.asset(id)?.is_none() {
        return Err(ApiError::not_found(format!(
            "Asset with ID: `{id}` was not found"
        )));
    }
    let mut extra = match b.get("extra") {
        Some(Value::Object(m)) => m.clone(),
        _ => Map::new(),
    };
    extra.insert("from_rest_api".to_string(), Value::Bool(true));
    let now = ctx.clock.now();
    let event_id = store.write(|tx| tx.event_of(id, &Value::Object(extra), None, now))?;
    ctx.wake_scheduler();
    let e = store
        .asset_event_by_id(event_id)?
        .ok_or_else(|| not_found(id))?;
    Ok(Reply::json(200, &event_json(store, &e)?))
}

/// Runs the DAG that produces the asset (the only DAG with a task whose outlet it is),
/// as a run of type `asset_materialization`.
fn materialize(ctx: &Ctx, store: &mut Store, _: &Req, p: &Params) -> Result<Reply, ApiError> {
    let id = path_int(p, "asset_id")?;
    store.asset(id)?.ok_or_else(|| not_found(id))?;
    let mut dags: Vec<String> = store
        .asset_refs()?
        .into_iter()
        .filter(|r| r.asset_id == id && r.kind == "outlet")
        .map(|r| r.dag_id)
        .collect();
    dags.dedup();
    let dag_id = match dags.as_slice() {
        [] => {
            return Err(ApiError::not_found(format!(
                "No Dag materializes asset with ID: {id}"
            )));
        }
        [one] => one.clone(),
        _ => {
            return Err(ApiError::new(
                409,
                format!("More than one Dag materializes asset with ID: {id}"),
            ));
        }
    };
    let row = store
        .dag(&dag_id)?
        .ok_or_else(|| ApiError::not_found(format!("Dag with id {dag_id} was not found")))?;
    let now = ctx.clock.now();
    let run_id = format!(
        "asset_materialization__{}_{}",
        now.to_rfc3339_opts(chrono::SecondsFormat::Micros, false),
        crate::ids::random_string(
            b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
            8
        )
    );
    let user = p.user().map(|u| u.name.clone());
    let run = store.write(|tx| {
        tx.create_run(
            &crate::store::NewRun {
                dag: &row.dag,
                run_id: run_id.clone(),
                run_type: RunType::AssetMaterialization,
                logical_date: None,
                data_interval: None,
                run_after: now,
                conf: json!({}),
                note: None,
                triggered_by: "rest_api",
                user: user.as_deref(),
                backfill_id: None,
            },
            now,
        )
    })?;
    ctx.wake_scheduler();
    let display = row.dag.dag_display_name.as_deref().unwrap_or(&dag_id);
    Ok(Reply::json(200, &super::views::run_json(&run, display)))
}

fn before(req: &Req) -> Result<Option<chrono::DateTime<chrono::Utc>>, ApiError> {
    super::kit::query_time(req, "before")
}

fn queued_json(ctx: &Ctx, store: &Store, q: &QueuedRow) -> Result<Value, ApiError> {
    let display = ctx
        .dags
        .get(store, &q.dag_id)?
        .and_then(|d| d.dag_display_name.clone())
        .unwrap_or_else(|| q.dag_id.clone());
    Ok(json!({
        "dag_id": q.dag_id,
        "asset_id": q.asset_id,
        "created_at": dt(Some(q.created_at)),
        "dag_display_name": display,
    }))
}

fn queued_list(ctx: &Ctx, store: &Store, rows: &[QueuedRow]) -> Result<Reply, ApiError> {
    let items = rows
        .iter()
        .map(|q| queued_json(ctx, store, q))
        .collect::<Result<Vec<_>, _>>()?;
    let n = items.len();
    Ok(Reply::json(
        200,
        &json!({"queued_events": items, "total_entries": n}),
    ))
}

fn asset_queued(ctx: &Ctx, store: &mut Store, req: &Req, p: &Params) -> Result<Reply, ApiError> {
    let id = path_int(p, "asset_id")?;
    let rows = store.queued_events(None, Some(id), before(req)?)?;
    queued_list(ctx, store, &rows)
}

fn dag_queued(ctx: &Ctx, store: &mut Store, req: &Req, p: &Params) -> Result<Reply, ApiError> {
    let rows = store.queued_events(Some(p.get("dag_id")), None, before(req)?)?;
    queued_list(ctx, store, &rows)
}

fn dag_asset_queued(
    ctx: &Ctx,
    store: &mut Store,
    req: &Req,
    p: &Params,
) -> Result<Reply, ApiError> {
    let (dag_id, id) = (p.get("dag_id"), path_int(p, "asset_id")?);
    let rows = store.queued_events(Some(dag_id), Some(id), before(req)?)?;
    match rows.first() {
        Some(q) => Ok(Reply::json(200, &queued_json(ctx, store, q)?)),
        None => Err(ApiError::not_found(format!(
            "Queued event with dag_id: `{dag_id}` and asset_id: `{id}` was not found"
        ))),
    }
}

fn deleted(n: usize, missing: String) -> Result<Reply, ApiError> {
    if n == 0 {
        return Err(ApiError::not_found(missing));
    }
    Ok(super::kit::no_content())
}

fn delete_asset_queued(
    _: &Ctx,
    store: &mut Store,
    req: &Req,
    p: &Params,
) -> Result<Reply, ApiError> {
    let id = path_int(p, "asset_id")?;
    let before = before(req)?;
    let n = store.write(|tx| tx.delete_queued(None, Some(id), before))?;
    deleted(
        n,
        format!("Queue event with asset_id: `{id}` was not found"),
    )
}

fn delete_dag_queued(_: &Ctx, store: &mut Store, req: &Req, p: &Params) -> Result<Reply, ApiError> {
    let dag_id = p.get("dag_id");
    let before = before(req)?;
    let n = store.write(|tx| tx.delete_queued(Some(dag_id), None, before))?;
    deleted(
        n,
        format!("Queue event with dag_id: `{dag_id}` was not found"),
    )
}

fn delete_dag_asset_queued(
    _: &Ctx,
    store: &mut Store,
    req: &Req,
    p: &Params,
) -> Result<Reply, ApiError> {
    let (dag_id, id) = (p.get("dag_id"), path_int(p, "asset_id")?);
    let before = before(req)?;
    let n = store.write(|tx| tx.delete_queued(Some(dag_id), Some(id), before))?;
    deleted(
        n,
        format!("Queued event with dag_id: `{dag_id}` and asset_id: `{id}` was not found"),
    )
}

/// `upstreamAssetEvents`: the events an asset-triggered run consumed.
fn upstream_events(_: &Ctx, store: &mut Store, _: &Req, p: &Params) -> Result<Reply, ApiError> {
    let (dag_id, run_id) = (p.get("dag_id"), p.get("dag_run_id"));
    let run = store.run(dag_id, run_id)?.ok_or_else(|| {
        ApiError::not_found(format!(
            "The DagRun with dag_id: `{dag_id}` and run_id: `{run_id}` was not found"
        ))
    })?;
    let events = store
        .consumed_events(run.id)?
        .iter()
        .map(|e| event_json(store, e))
        .collect::<Result<Vec<_>, _>>()?;
    let n = events.len();
    Ok(Reply::json(
        200,
        &json!({"asset_events": events, "total_entries": n}),
    ))
}

/// The asset of a state-store route, or Airflow's 404.
fn state_asset(store: &Store, p: &Params) -> Result<i64, ApiError> {
    let id = path_int(p, "asset_id")?;
    match store.asset(id)? {
        Some(_) => Ok(id),
        None => Err(ApiError::not_found(format!("Asset with id {id} not found"))),
    }
}

/// `AssetStateStoreResponse`.
fn state_json(s: &AssetStateRow) -> Value {
    json!({
        "key": s.key,
        "value": s.value,
        "updated_at": dt(Some(s.updated_at)),
        "last_updated_by": s.kind.as_ref().map(|kind| json!({
            "kind": kind,
            "dag_id": s.dag_id,
            "run_id": s.run_id,
            "task_id": s.task_id,
            "map_index": s.map_index,
        })),
    })
}

fn state_list(ctx: &Ctx, store: &mut Store, req: &Req, p: &Params) -> Result<Reply, ApiError> {
    let id = state_asset(store, p)?;
    let (limit, offset) = page(ctx, req)?;
    let rows: Vec<Value> = store.asset_state(id)?.iter().map(state_json).collect();
    Ok(Reply::json(
        200,
        &collection("asset_state_store", rows, limit, offset),
    ))
}

fn state_get(_: &Ctx, store: &mut Store, _: &Req, p: &Params) -> Result<Reply, ApiError> {
    let id = state_asset(store, p)?;
    let key = p.get("key");
    match store.asset_state(id)?.iter().find(|s| s.key == key) {
        Some(s) => Ok(Reply::json(200, &state_json(s))),
        None => Err(ApiError::not_found(format!(
            "Asset state store key {} not found",
            crate::py::repr_str(key)
        ))),
    }
}

const STATE_FIELDS: &[super::kit::Field] = &[field("value", Kind::Any, true, true)];

fn state_put(ctx: &Ctx, store: &mut Store, req: &Req, p: &Params) -> Result<Reply, ApiError> {
    let id = state_asset(store, p)?;
    let b = body(req, STATE_FIELDS)?;
    let value = b.get("value").cloned().unwrap_or(Value::Null);
    let now = ctx.clock.now();
    store.write(|tx| tx.set_asset_state(id, p.get("key"), &value, now))?;
    Ok(super::kit::no_content())
}

fn state_delete(_: &Ctx, store: &mut Store, _: &Req, p: &Params) -> Result<Reply, ApiError> {
    let id = state_asset(store, p)?;
    store.write(|tx| tx.delete_asset_state(id, Some(p.get("key"))))?;
    Ok(super::kit::no_content())
}

fn state_clear(_: &Ctx, store: &mut Store, _: &Req, p: &Params) -> Result<Reply, ApiError> {
    let id = state_asset(store, p)?;
    store.write(|tx| tx.delete_asset_state(id, None))?;
    Ok(super::kit::no_content())
}
