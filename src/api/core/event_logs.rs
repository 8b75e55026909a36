//! The audit log, as `/eventLogs` lists it, with Airflow's filters.

use serde_json::{Value, json};

use super::kit::{Patterns, path_int, query_int};
use super::kit::{dt, order_keys, page, query_all, query_time};
use crate::api::http::{ApiError, Method, Reply, Req};
use crate::api::route::{Ctx, Params, Route, guarded};
use crate::auth::Role;
use crate::store::{LogCol, LogFilter, LogRow, Store};

use Method::Get;

/// The audit log.
#[rustfmt::skip]
pub static ROUTES: &[Route] = &[
    guarded(Get, "/api/v2/eventLogs", Role::Viewer, None, "The audit log, with filters", event_logs),
    guarded(Get, "/api/v2/eventLogs/{event_log_id}", Role::Viewer, None, "One audit log entry", event_log),
];

fn event_logs(ctx: &Ctx, store: &mut Store, req: &Req, _p: &Params) -> Result<Reply, ApiError> {
    use LogCol::*;
    let (limit, offset) = page(ctx, req)?;
    let names = [
        ("id", Id),
        ("event_log_id", Id),
        ("dttm", When),
        ("when", When),
        ("dag_id", DagId),
        ("task_id", TaskId),
        ("run_id", RunId),
        ("event", Event),
        ("logical_date", LogicalDate),
        ("owner", Owner),
        ("extra", Extra),
    ];
    let allowed: Vec<&str> = names.iter().map(|(n, _)| *n).collect();
    let order: Vec<(LogCol, bool)> = order_keys(req, &allowed, "id")?
        .into_iter()
        .filter_map(|(k, d)| names.iter().find(|(n, _)| *n == k).map(|(_, c)| (*c, d)))
        .collect();
    let mut filters = Vec::new();
    for (name, col) in [
        ("dag_id", DagId),
        ("task_id", TaskId),
        ("run_id", RunId),
        ("owner", Owner),
        ("event", Event),
    ] {
        if let Some(v) = req.query(name) {
            filters.push(LogFilter::Eq(col, v.to_string()));
        }
        // `*_pattern` and `*_prefix_pattern`; an empty prefix (`~`) filters nothing.
        let p = Patterns::new(req, name);
        if let Some(s) = p.search {
            filters.push(LogFilter::Like(col, s.sql_terms()));
        }
        if let Some(s) = p.prefix.filter(|s| !s.any_prefix()) {
            filters.push(LogFilter::Prefix(col, s.sql_terms()));
        }
    }
    for (name, col) in [("map_index", MapIndex), ("try_number", TryNumber)] {
        if let Some(v) = query_int(req, name)? {
            filters.push(LogFilter::EqInt(col, v));
        }
    }
    let list = |name| -> Vec<String> {
        query_all(req, name)
            .into_iter()
            .map(str::to_string)
            .collect()
    };
    let excluded = list("excluded_events");
    if !excluded.is_empty() {
        filters.push(LogFilter::NotIn(Event, excluded));
    }
    let included = list("included_events");
    if !included.is_empty() {
        filters.push(LogFilter::In(Event, included));
    }
    if let Some(t) = query_time(req, "before")? {
        filters.push(LogFilter::Before(t));
    }
    if let Some(t) = query_time(req, "after")? {
        filters.push(LogFilter::After(t));
    }
    let (total, rows) = store.event_logs(&filters, &order, limit, offset)?;
    let rows: Vec<Value> = rows.iter().map(log_json).collect();
    Ok(Reply::json(
        200,
        &json!({"event_logs": rows, "total_entries": total}),
    ))
}

fn event_log(_ctx: &Ctx, store: &mut Store, _req: &Req, p: &Params) -> Result<Reply, ApiError> {
    let id = path_int(p, "event_log_id")?;
    let row = store
        .event_log(id)?
        .ok_or_else(|| ApiError::not_found(format!("The Event Log with id: `{id}` not found")))?;
    Ok(Reply::json(200, &log_json(&row)))
}

fn log_json(r: &LogRow) -> Value {
    json!({
        "event_log_id": r.id,
        "when": dt(Some(r.when)),
        "dag_id": r.dag_id,
        "task_id": r.task_id,
        "run_id": r.run_id,
        "map_index": r.map_index,
        "try_number": r.try_number,
        "event": r.event,
        "logical_date": dt(r.logical_date),
        "owner": r.owner,
        "extra": r.extra,
        "dag_display_name": r.dag_display_name,
        "task_display_name": r.task_display_name,
    })
}
