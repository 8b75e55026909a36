//! Backfills: create (and its dry run), list a DAG's, one, pause, unpause, cancel, as
//! Airflow 3.3.2's `routes/public/backfills.py` answers them. The work is `backfill`'s,
//! shared with the CLI; this file reads bodies and queries and words the replies.

use serde_json::{Map, Value, json};

use super::kit::{Kind, body, dt, field, invalid, orders, page, query_all, unprocessable};
use super::views::display_name;
use crate::api::http::{ApiError, Method, Reply, Req};
use crate::api::route::{Ctx, Params, Route, guarded};
use crate::auth::Role;
use crate::backfill::{self, Refused, Reprocess, Request};
use crate::store::{BackfillRow, Store};

use Method::{Get, Post, Put};

#[rustfmt::skip]
pub static ROUTES: &[Route] = &[
    guarded(Get, "/api/v2/backfills", Role::Viewer, None, "A DAG's backfills (dag_id is required): limit/offset, order_by id", list),
    guarded(Post, "/api/v2/backfills", Role::User, Some("create_backfill"), "Create a backfill: its runs are queued at once and run within its max_active_runs", create),
    guarded(Post, "/api/v2/backfills/dry_run", Role::User, None, "The logical dates a backfill would run, without creating it", dry_run),
    guarded(Get, "/api/v2/backfills/{backfill_id}", Role::Viewer, None, "One backfill", get),
    guarded(Put, "/api/v2/backfills/{backfill_id}/pause", Role::User, Some("pause_backfill"), "Pause a backfill: no new run starts", pause),
    guarded(Put, "/api/v2/backfills/{backfill_id}/unpause", Role::User, Some("unpause_backfill"), "Unpause a backfill", unpause),
    guarded(Put, "/api/v2/backfills/{backfill_id}/cancel", Role::User, Some("cancel_backfill"), "Cancel a backfill: its queued runs fail, it completes", cancel),
];

/// A backfill as Airflow's `BackfillResponse` shows it.
fn backfill_json(store: &Store, b: &BackfillRow) -> Result<Value, ApiError> {
    let display = match store.dag(&b.dag_id)? {
        Some(d) => display_name(&d.dag).to_string(),
        None => b.dag_id.clone(),
    };
    Ok(json!({
        "id": b.id,
        "dag_id": b.dag_id,
        "from_date": dt(Some(b.from_date)),
        "to_date": dt(Some(b.to_date)),
        "dag_run_conf": b.dag_run_conf,
        "is_paused": b.is_paused,
        "reprocess_behavior": b.reprocess_behavior,
        "max_active_runs": b.max_active_runs,
        "created_at": dt(Some(b.created_at)),
        "completed_at": dt(b.completed_at),
        "updated_at": dt(Some(b.updated_at)),
        "dag_display_name": display,
    }))
}

/// How a refusal answers, as Airflow's handlers map its exceptions.
fn refused(r: Refused) -> ApiError {
    match r {
        Refused::DagNotFound(dag_id) => ApiError::not_found(format!("Could not find dag {dag_id}")),
        Refused::AlreadyRunning(dag_id) => ApiError::new(409, backfill::already_running(&dag_id)),
        Refused::Invalid(msg) => ApiError::with_detail(422, Value::String(msg)),
        Refused::NotFound => ApiError::not_found(backfill::NOT_FOUND),
        Refused::Completed => ApiError::new(409, backfill::COMPLETED),
        Refused::Store(e) => e.into(),
    }
}

/// `BackfillPostBody`, checked as pydantic checks it.
fn request(req: &Req, p: &Params) -> Result<Request, ApiError> {
    let b: Map<String, Value> = body(
        req,
        &[
            field("dag_id", Kind::Str, true, false),
            field("from_date", Kind::DateTime, true, false),
            field("to_date", Kind::DateTime, true, false),
            field("run_backwards", Kind::Bool, false, false),
            field("dag_run_conf", Kind::Object, false, true),
            field("reprocess_behavior", Kind::Str, false, false),
            field("max_active_runs", Kind::Int, false, false),
            // updraft keeps no bundle versions: every run is on the latest.
            field("run_on_latest_version", Kind::Bool, false, true),
        ],
    )?;
    let reprocess = match b.get("reprocess_behavior") {
        None => Reprocess::None,
        Some(v) => {
            let s = v.as_str().unwrap_or_default();
            Reprocess::parse(s).ok_or_else(|| {
                unprocessable(vec![json!({
                    "type": "enum", "loc": ["body", "reprocess_behavior"],
                    "msg": "Input should be 'failed', 'completed' or 'none'", "input": v,
                    "ctx": {"expected": "'failed', 'completed' or 'none'"},
                })])
            })?
        }
    };
    let time = |name: &str| {
        b.get(name)
            .and_then(Value::as_str)
            .and_then(super::kit::parse_datetime)
            .ok_or_else(|| invalid(&["body", name], "missing", "Field required", Value::Null))
    };
    Ok(Request {
        dag_id: b
            .get("dag_id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        from_date: time("from_date")?,
        to_date: time("to_date")?,
        run_backwards: b
            .get("run_backwards")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        dag_run_conf: b.get("dag_run_conf").filter(|v| !v.is_null()).cloned(),
        reprocess,
        max_active_runs: b
            .get("max_active_runs")
            .and_then(Value::as_i64)
            .unwrap_or(10),
        user: p.user().map(|u| u.name.clone()),
    })
}

/// The path's `backfill_id`, a `NonNegativeInt`.
fn backfill_id(p: &Params) -> Result<i64, ApiError> {
    let raw = p.get("backfill_id");
    let n: i64 = raw.parse().map_err(|_| {
        invalid(
            &["path", "backfill_id"],
            "int_parsing",
            "Input should be a valid integer, unable to parse string as an integer",
            json!(raw),
        )
    })?;
    if n < 0 {
        return Err(ApiError::with_detail(
            422,
            json!([{"type": "greater_than_equal", "loc": ["path", "backfill_id"],
                    "msg": "Input should be greater than or equal to 0", "input": raw, "ctx": {"ge": 0}}]),
        ));
    }
    Ok(n)
}

fn list(ctx: &Ctx, store: &mut Store, req: &Req, _: &Params) -> Result<Reply, ApiError> {
    let Some(dag_id) = req.query("dag_id") else {
        return Err(invalid(
            &["query", "dag_id"],
            "missing",
            "Field required",
            Value::Null,
        ));
    };
    let (limit, offset) = page(ctx, req)?;
    let keys = orders(&query_all(req, "order_by"), &["id"], &[("id", false)], &[])?;
    let desc = keys.first().is_some_and(|(_, d)| *d);
    let (rows, total) = store.backfills_of(dag_id, desc, limit, offset)?;
    let backfills = rows
        .iter()
        .map(|b| backfill_json(store, b))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Reply::json(
        200,
        &json!({"backfills": backfills, "total_entries": total}),
    ))
}

fn create(ctx: &Ctx, store: &mut Store, req: &Req, p: &Params) -> Result<Reply, ApiError> {
    let r = request(req, p)?;
    let b = backfill::create(store, &r, true, ctx.clock.now()).map_err(refused)?;
    ctx.wake_scheduler();
    Ok(Reply::json(200, &backfill_json(store, &b)?))
}

fn dry_run(ctx: &Ctx, store: &mut Store, req: &Req, p: &Params) -> Result<Reply, ApiError> {
    let r = request(req, p)?;
    let infos = backfill::dry_run(store, &r, ctx.clock.now()).map_err(refused)?;
    let rows: Vec<Value> = infos
        .iter()
        .map(|i| json!({"logical_date": dt(Some(i.logical_date)), "partition_key": null, "partition_date": null}))
        .collect();
    Ok(Reply::json(
        200,
        &json!({"total_entries": rows.len(), "backfills": rows}),
    ))
}

fn get(_: &Ctx, store: &mut Store, _: &Req, p: &Params) -> Result<Reply, ApiError> {
    let id = backfill_id(p)?;
    let b = store
        .backfill(id)?
        .ok_or_else(|| ApiError::not_found(backfill::NOT_FOUND))?;
    Ok(Reply::json(200, &backfill_json(store, &b)?))
}

fn set_paused(ctx: &Ctx, store: &mut Store, p: &Params, paused: bool) -> Result<Reply, ApiError> {
    let id = backfill_id(p)?;
    let b = backfill::set_paused(store, id, paused, ctx.clock.now()).map_err(refused)?;
    ctx.wake_scheduler();
    Ok(Reply::json(200, &backfill_json(store, &b)?))
}

fn pause(ctx: &Ctx, store: &mut Store, _: &Req, p: &Params) -> Result<Reply, ApiError> {
    set_paused(ctx, store, p, true)
}

fn unpause(ctx: &Ctx, store: &mut Store, _: &Req, p: &Params) -> Result<Reply, ApiError> {
    set_paused(ctx, store, p, false)
}

fn cancel(ctx: &Ctx, store: &mut Store, _: &Req, p: &Params) -> Result<Reply, ApiError> {
    let id = backfill_id(p)?;
    let b = backfill::cancel(store, id, ctx.clock.now()).map_err(refused)?;
    ctx.wake_scheduler();
    Ok(Reply::json(200, &backfill_json(store, &b)?))
}
