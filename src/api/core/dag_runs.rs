//! DAG runs: list (`~` for every DAG, and the batch form with a body), trigger, one run,
//! its state and note, delete, clear. Also the pieces the task instance routes share:
//! the run's wire shape, DAG look-ups per request, multi-key ordering, range filters
//! and Airflow's two paging modes (offset, and cursor).
//!
//! Lists are filtered, ordered and paged by the store in SQL; handlers only turn query
//! parameters and bodies into a `ListQuery`, checking them as Airflow's models do.

use serde_json::{Map, Value, json};

use super::kit::{Kind, body, field, orders, query_all};
use super::kit::{
    Paging, apply_order, body_value_error, enum_error, flag, long_note, masked, naive_times,
    number_ranges, paged, paging, patterns, query_ints, state_filter, text, time, time_ranges,
    unprocessable,
};
use super::views::{Dags, dag_not_found, run_json, the_run, ti_json};
use crate::api::http::{ApiError, Method, Reply, Req};
use crate::api::route::{Ctx, Params, Route, guarded};
use crate::auth::Role;
use crate::error::Error;
use crate::model::{RunState, TaskState};
use crate::ops;
use crate::store::q_runs::{Bound, ListQuery, Op};
use crate::store::{RunRow, Store, TiRow};

use Method::{Delete, Get, Patch, Post};

#[rustfmt::skip]
pub static ROUTES: &[Route] = &[
    guarded(Get, "/api/v2/dags/{dag_id}/dagRuns", Role::Viewer, None, "DAG runs of a DAG (`~` for every DAG): filters, order_by, limit/offset or cursor", list),
    guarded(Post, "/api/v2/dags/{dag_id}/dagRuns", Role::User, Some("trigger_dag_run"), "Trigger a DAG run", trigger),
    guarded(Post, "/api/v2/dags/{dag_id}/dagRuns/list", Role::Viewer, None, "DAG runs of many DAGs, filtered by a body (the path's dag_id must be `~`)", list_batch),
    guarded(Get, "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}", Role::Viewer, None, "One DAG run", get),
    guarded(Patch, "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}", Role::User, Some("patch_dag_run"), "Set a DAG run's state (queued, success, failed) or note", patch),
    guarded(Delete, "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}", Role::User, Some("delete_dag_run"), "Delete a DAG run that is not running, with its task instances and XComs", delete),
    guarded(Post, "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/clear", Role::User, Some("clear_dag_run"), "Clear a DAG run's task instances (dry_run, the default, only lists them)", clear),
];

/// DAG run states as Airflow lists them.
const RUN_STATES: &[&str] = &["queued", "running", "success", "failed"];
/// DAG run types as Airflow lists them.
const RUN_TYPES: &[&str] = &[
    "backfill",
    "scheduled",
    "manual",
    "operator_triggered",
    "asset_triggered",
    "asset_materialization",
];
/// Fields a run list sorts by (`dag_run_id` is another name for `run_id`).
const RUN_ORDER: &[&str] = &[
    "id",
    "state",
    "dag_id",
    "run_id",
    "logical_date",
    "partition_date",
    "run_after",
    "start_date",
    "end_date",
    "updated_at",
    "conf",
    "duration",
    "dag_run_id",
];
/// What the batch list sorts by.
const BATCH_ORDER: &[&str] = &[
    "id",
    "state",
    "dag_id",
    "run_after",
    "logical_date",
    "run_id",
    "start_date",
    "end_date",
    "updated_at",
    "conf",
    "dag_run_id",
];
/// Time fields a run list filters by ranges.
const RUN_TIMES: &[&str] = &[
    "logical_date",
    "run_after",
    "start_date",
    "end_date",
    "updated_at",
];

/// Errors for integers that must not be negative (pydantic's `NonNegativeInt`).
fn negative_ints(body: &Map<String, Value>, names: &[&str]) -> Vec<Value> {
    names
        .iter()
        .filter_map(|n| {
            let v = body.get(*n)?;
            (v.as_i64()? < 0).then(|| {
                json!({"type": "greater_than_equal", "loc": ["body", n],
                       "msg": "Input should be greater than or equal to 0", "input": v, "ctx": {"ge": 0}})
            })
        })
        .collect()
}

/// The rows of one page as JSON, each with its DAG's display name.
fn runs_json(store: &Store, rows: &[RunRow]) -> Result<Vec<Value>, ApiError> {
    let mut dags = Dags::new(store);
    rows.iter()
        .map(|r| {
            let display = dags.display(&r.dag_id)?;
            let mut v = run_json(r, &display);
            v["dag_versions"] =
                super::versions::run_versions(store, &r.dag_id, &r.run_id, &display)?;
            Ok(v)
        })
        .collect()
}

fn list(ctx: &Ctx, store: &mut Store, req: &Req, p: &Params) -> Result<Reply, ApiError> {
    let dag_id = p.get("dag_id");
    let paging = paging(ctx, req)?;
    let mut q = ListQuery::default();
    let partition_dates = ["partition_date_gte", "partition_date_lte"]
        .iter()
        .any(|n| req.query(n).is_some());
    if dag_id == "~" {
        if partition_dates {
            return Err(ApiError::bad_request(
                "partition_date_gte and partition_date_lte require a specific dag_id.",
            ));
        }
    } else {
        store.dag(dag_id)?.ok_or_else(|| dag_not_found(dag_id))?;
        if partition_dates {
            return Err(ApiError::bad_request(format!(
                "Dag with dag_id: '{dag_id}' is not partitioned; partition_date_gte and partition_date_lte are not supported."
            )));
        }
        q.any_of("dag_id", vec![Some(dag_id.to_string())]);
    }
    time_ranges(req, &mut q, RUN_TIMES)?;
    number_ranges(req, &mut q, "duration")?;
    let states = state_filter(req, "state", RUN_STATES, &["none"], "state")?;
    if !states.is_empty() {
        q.any_of("state", states);
    }
    let types = state_filter(req, "run_type", RUN_TYPES, &["none"], "run type")?;
    if !types.is_empty() {
        q.any_of("run_type", types);
    }
    if let Some(c) = req.query("conf_contains") {
        q.contains("conf", c);
    }
    patterns(
        req,
        &mut q,
        &[
            ("run_id", "run_id"),
            ("triggering_user_name", "triggering_user_name"),
            ("dag_id", "dag_id"),
            ("partition_key", "partition_key"),
        ],
    );
    // Runs by the number of the DAG version they were created with.
    let versions = query_ints(req, "dag_version")?;
    if !versions.is_empty() {
        q.any_int("dag_version", versions);
    }
    // updraft keeps no bundle versions or asset events: asking for one matches nothing.
    if req.query("bundle_version").is_some() || req.query("consuming_asset_pattern").is_some() {
        q.nothing();
    }
    let keys = orders(
        &query_all(req, "order_by"),
        RUN_ORDER,
        &[("id", false)],
        &[("dag_run_id", "run_id")],
    )?;
    apply_order(&mut q, &keys, "id");
    q.limit = Some(paging.limit);
    q.offset = paging.offset;
    let (rows, total) = store.list_runs(&q)?;
    Ok(Reply::json(
        200,
        &paged("dag_runs", runs_json(store, &rows)?, total, &paging),
    ))
}

fn list_batch(_ctx: &Ctx, store: &mut Store, req: &Req, p: &Params) -> Result<Reply, ApiError> {
    let dag_id = p.get("dag_id");
    if dag_id != "~" {
        return Err(unprocessable(vec![json!({
            "type": "literal_error", "loc": ["path", "dag_id"], "msg": "Input should be '~'",
            "input": dag_id, "ctx": {"expected": "'~'"},
        })]));
    }
    let mut fields = vec![
        field("order_by", Kind::Str, false, true),
        field("page_offset", Kind::Int, false, false),
        field("page_limit", Kind::Int, false, false),
        field("dag_ids", Kind::List, false, true),
        field("states", Kind::List, false, true),
        field("duration_gte", Kind::Number, false, true),
        field("duration_gt", Kind::Number, false, true),
        field("duration_lte", Kind::Number, false, true),
        field("duration_lt", Kind::Number, false, true),
        field("conf_contains", Kind::Str, false, true),
    ];
    const TIME_FIELDS: [&str; 16] = [
        "run_after_gte",
        "run_after_gt",
        "run_after_lte",
        "run_after_lt",
        "logical_date_gte",
        "logical_date_gt",
        "logical_date_lte",
        "logical_date_lt",
        "start_date_gte",
        "start_date_gt",
        "start_date_lte",
        "start_date_lt",
        "end_date_gte",
        "end_date_gt",
        "end_date_lte",
        "end_date_lt",
    ];
    fields.extend(
        TIME_FIELDS
            .iter()
            .map(|n| field(n, Kind::DateTime, false, true)),
    );
    let b = body(req, &fields)?;
    let mut errors = naive_times(&b, &TIME_FIELDS);
    errors.extend(negative_ints(&b, &["page_offset", "page_limit"]));
    if let Some(Value::Array(ids)) = b.get("dag_ids") {
        for (i, v) in ids.iter().enumerate().filter(|(_, v)| !v.is_string()) {
            errors.push(json!({"type": "string_type", "loc": ["body", "dag_ids", i],
                               "msg": "Input should be a valid string", "input": v}));
        }
    }
    let mut states = Vec::new();
    if let Some(Value::Array(list)) = b.get("states") {
        for (i, v) in list.iter().enumerate() {
            match v {
                Value::Null => states.push(None),
                Value::String(s) if RUN_STATES.contains(&s.as_str()) => {
                    states.push(Some(s.clone()))
                }
                other => errors.push(enum_error(json!(["body", "states", i]), other, RUN_STATES)),
            }
        }
    }
    if !errors.is_empty() {
        return Err(unprocessable(errors));
    }
    let mut q = ListQuery::default();
    if let Some(Value::Array(ids)) = b.get("dag_ids") {
        q.any_of(
            "dag_id",
            ids.iter()
                .filter_map(|v| v.as_str().map(|s| Some(s.to_string())))
                .collect(),
        );
    }
    if b.get("states").is_some_and(Value::is_array) {
        q.any_of("state", states);
    }
    for name in TIME_FIELDS {
        if let Some(t) = time(&b, name) {
            let (f, suffix) = name.rsplit_once('_').expect("names have a suffix");
            let field = RUN_TIMES
                .iter()
                .find(|x| **x == f)
                .expect("a run time field");
            let op = Op::SUFFIXES
                .iter()
                .find(|(s, _)| *s == suffix)
                .map(|(_, op)| *op)
                .expect("a known suffix");
            q.cmp(field, op, Bound::Time(t));
        }
    }
    for (suffix, op) in Op::SUFFIXES {
        if let Some(x) = b.get(&format!("duration_{suffix}")).and_then(Value::as_f64) {
            q.cmp("duration", op, Bound::Num(x));
        }
    }
    if let Some(c) = text(&b, "conf_contains") {
        q.contains("conf", c);
    }
    let order: Vec<&str> = text(&b, "order_by").into_iter().collect();
    let keys = orders(
        &order,
        BATCH_ORDER,
        &[("id", false)],
        &[("dag_run_id", "run_id")],
    )?;
    apply_order(&mut q, &keys, "id");
    q.offset = b
        .get("page_offset")
        .and_then(Value::as_u64)
        .unwrap_or(0)
        .try_into()
        .unwrap_or(usize::MAX);
    q.limit = Some(
        b.get("page_limit")
            .and_then(Value::as_u64)
            .unwrap_or(100)
            .try_into()
            .unwrap_or(usize::MAX),
    );
    let (rows, total) = store.list_runs(&q)?;
    let offset_paging = Paging {
        limit: q.limit.unwrap_or(0),
        offset: q.offset,
        cursor: false,
    };
    Ok(Reply::json(
        200,
        &paged("dag_runs", runs_json(store, &rows)?, total, &offset_paging),
    ))
}

fn reply_run(store: &Store, run: &RunRow) -> Result<Reply, ApiError> {
    let display = Dags::new(store).display(&run.dag_id)?;
    let mut v = run_json(run, &display);
    v["dag_versions"] = super::versions::run_versions(store, &run.dag_id, &run.run_id, &display)?;
    Ok(Reply::json(200, &v))
}

fn get(_ctx: &Ctx, store: &mut Store, _req: &Req, p: &Params) -> Result<Reply, ApiError> {
    let run = the_run(store, p)?;
    reply_run(store, &run)
}

fn trigger(ctx: &Ctx, store: &mut Store, req: &Req, p: &Params) -> Result<Reply, ApiError> {
    let dag_id = p.get("dag_id");
    let b = body(
        req,
        &[
            field("dag_run_id", Kind::Str, false, true),
            field("data_interval_start", Kind::DateTime, false, true),
            field("data_interval_end", Kind::DateTime, false, true),
            field("logical_date", Kind::DateTime, true, true),
            field("run_after", Kind::DateTime, false, true),
            field("conf", Kind::Object, false, true),
            field("note", Kind::Str, false, true),
            field("partition_key", Kind::Str, false, true),
        ],
    )?;
    let errors = naive_times(
        &b,
        &["logical_date", "data_interval_start", "data_interval_end"],
    );
    if !errors.is_empty() {
        return Err(unprocessable(errors));
    }
    let (start, end) = (
        time(&b, "data_interval_start"),
        time(&b, "data_interval_end"),
    );
    if start.is_some() != end.is_some() {
        return Err(body_value_error(
            &b,
            "Either both data_interval_start and data_interval_end must be provided or both must be None",
        ));
    }
    let row = store
        .dag(dag_id)?
        .filter(|d| !d.is_stale)
        .ok_or_else(|| ApiError::not_found(format!("Dag with dag_id: '{dag_id}' not found")))?;
    let has_errors = store
        .import_errors()?
        .iter()
        .any(|e| e.bundle_name == row.bundle_name && e.filename == row.relative_fileloc);
    if has_errors {
        return Err(ApiError::bad_request(format!(
            "Dag with dag_id: '{dag_id}' has import errors and cannot be triggered"
        )));
    }
    if b.get("partition_key").is_some_and(|v| !v.is_null()) {
        return Err(ApiError::bad_request(format!(
            "Dag '{dag_id}' is not a partitioned Dag and does not accept a partition_key."
        )));
    }
    let logical_date = time(&b, "logical_date");
    let t = ops::Trigger {
        // An empty id is no id: one is generated, as Airflow does.
        run_id: text(&b, "dag_run_id")
            .filter(|r| !r.is_empty())
            .map(str::to_string),
        logical_date,
        // Only a run with a logical date has a data interval (Airflow's `validate_context`).
        data_interval: start.zip(end).filter(|_| logical_date.is_some()),
        run_after: time(&b, "run_after"),
        conf: b.get("conf").cloned(),
        note: text(&b, "note")
            .filter(|n| !n.is_empty())
            .map(str::to_string),
        // A request from a page of the UI carries a Referer, as in Airflow.
        triggered_by: if req.header("referer").is_some() {
            "ui"
        } else {
            "rest_api"
        },
        user: p.user().map(|u| u.name.clone()),
        audited_by_caller: true,
    };
    let run = match ops::trigger(store, dag_id, t, ctx.clock.now()) {
        Ok(run) => run,
        Err(Error::Conflict(msg)) => return Err(super::kit::unique_violation(&msg)),
        Err(e) => return Err(e.into()),
    };
    ctx.wake_scheduler();
    reply_run(store, &run)
}

pub(super) fn patch(
    ctx: &Ctx,
    store: &mut Store,
    req: &Req,
    p: &Params,
) -> Result<Reply, ApiError> {
    let b = body(
        req,
        &[
            field("state", Kind::Str, false, true),
            field("note", Kind::Str, false, true),
        ],
    )?;
    const MUTABLE: &[&str] = &["queued", "success", "failed"];
    let mut errors = Vec::new();
    let state = match b.get("state") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_str().and_then(RunState::parse) {
            Some(s) if MUTABLE.contains(&s.as_str()) => Some(s),
            _ => {
                errors.push(enum_error(json!(["body", "state"]), v, MUTABLE));
                None
            }
        },
    };
    errors.extend(long_note(&b));
    if !errors.is_empty() {
        return Err(unprocessable(errors));
    }
    let run = the_run(store, p)?;
    let fields = masked(req, &b);
    let now = ctx.clock.now();
    if fields.contains(&"note") {
        let note = text(&b, "note").filter(|n| !n.is_empty());
        store.write(|tx| tx.set_run_note(run.id, note))?;
    }
    if fields.contains(&"state")
        && let Some(to) = state
    {
        ops::mark_run(store, &run.dag_id, &run.run_id, to, now)?;
        ctx.wake_scheduler();
    }
    let run = the_run(store, p)?;
    reply_run(store, &run)
}

pub(super) fn delete(
    _ctx: &Ctx,
    store: &mut Store,
    _req: &Req,
    p: &Params,
) -> Result<Reply, ApiError> {
    let run = the_run(store, p)?;
    if run.state == RunState::Running {
        return Err(ApiError::new(
            409,
            format!(
                "The DagRun with dag_id: `{}` and run_id: `{}` cannot be deleted in {} state",
                run.dag_id, run.run_id, run.state
            ),
        ));
    }
    store.write(|tx| tx.delete_run(run.id))?;
    Ok(Reply {
        status: 204,
        headers: Vec::new(),
        body: Default::default(),
    })
}

pub(super) fn clear(
    ctx: &Ctx,
    store: &mut Store,
    req: &Req,
    p: &Params,
) -> Result<Reply, ApiError> {
    let b = body(
        req,
        &[
            field("dry_run", Kind::Bool, false, false),
            field("only_failed", Kind::Bool, false, false),
            field("only_new", Kind::Bool, false, false),
            field("run_on_latest_version", Kind::Bool, false, true),
            field("note", Kind::Str, false, true),
        ],
    )?;
    let (only_failed, only_new) = (flag(&b, "only_failed", false), flag(&b, "only_new", false));
    if only_failed && only_new {
        return Err(body_value_error(
            &b,
            "only_new and only_failed are mutually exclusive",
        ));
    }
    let errors = long_note(&b);
    if !errors.is_empty() {
        return Err(unprocessable(errors));
    }
    let run = the_run(store, p)?;
    let dag = store
        .dag(&run.dag_id)?
        .ok_or_else(|| ApiError::not_found(format!("Dag with id {} was not found", run.dag_id)))?;
    let tis: Vec<TiRow> = store
        .tis_of_run(&run.dag_id, &run.run_id)?
        .into_iter()
        .filter(|ti| {
            !only_failed
                || matches!(
                    ti.state,
                    Some(TaskState::Failed | TaskState::UpstreamFailed)
                )
        })
        .collect();
    let now = ctx.clock.now();
    if flag(&b, "dry_run", true) {
        let items: Vec<Value> = if only_new {
            dag.dag
                .tasks
                .iter()
                .filter(|t| !tis.iter().any(|ti| ti.task_id == t.task_id))
                .map(|t| json!({"task_id": t.task_id, "task_display_name": t.task_id}))
                .collect()
        } else {
            let mut dags = Dags::new(store);
            tis.iter()
                .map(|ti| ti_json(&mut dags, ti, Some(&run)))
                .collect::<Result<_, _>>()?
        };
        return Ok(Reply::json(
            200,
            &json!({"task_instances": items, "total_entries": items.len()}),
        ));
    }
    if only_new {
        let added = store.write(|tx| tx.add_missing_tis(&dag.dag, &run.run_id, now))?;
        if !added.is_empty() && run.state.is_finished() {
            store.write(|tx| {
                tx.set_run_state(run.id, run.state, RunState::Queued, now)?;
                tx.restart_run(run.id)
            })?;
        }
    } else {
        ops::clear_tis(store, &dag.dag, &tis, true, now)?;
    }
    if let Some(note) = b.get("note").filter(|n| !n.is_null()) {
        let note = note.as_str().filter(|n| !n.is_empty());
        store.write(|tx| tx.set_run_note(run.id, note))?;
    }
    ctx.wake_scheduler();
    let run = the_run(store, p)?;
    reply_run(store, &run)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_by_takes_lists_aliases_and_refuses_unknown_names() {
        let keys = orders(
            &["-logical_date,dag_run_id"],
            RUN_ORDER,
            &[("id", false)],
            &[("dag_run_id", "run_id")],
        )
        .unwrap();
        assert_eq!(keys, vec![("logical_date", true), ("run_id", false)]);
        assert_eq!(
            orders(&[], RUN_ORDER, &[("id", false)], &[]).unwrap(),
            vec![("id", false)]
        );
        let err = orders(&["bogus"], RUN_ORDER, &[("id", false)], &[]).unwrap_err();
        assert_eq!(err.status, 400);
    }
}
