//! Task instances: lists (`~` for every DAG and run), one task instance, setting its
//! state and note by hand (with a dry run), its tries, the log of a try, its XComs, and
//! clearing task instances so they run again.
//!
//! Logs are read from the files the task supervisor writes; a continuation token
//! (signed, so only tokens this server made are taken) holds the byte offset read so
//! far, so a client following a running task gets only what was appended since.

use serde_json::{Map, Value, json};

use super::kit::{Kind, body, field, orders, query_all};
use super::kit::{
    Paging, apply_order, body_value_error, flag, long_note, masked, naive_times, number_ranges,
    paged, paging, path_map_index, path_number, patterns, query_ints, state_filter, text, time,
    time_ranges, unprocessable,
};
use super::views::{Views, dag_not_found};
use crate::api::http::{ApiError, Method, Reply, Req};
use crate::api::route::{Ctx, Params, Route, guarded};
use crate::auth::Role;
use crate::model::TaskState;
use crate::ops;
use crate::store::q_runs::{Bound, ListQuery, Op};
use crate::store::{Store, TiRow};

use Method::{Get, Patch, Post};

#[rustfmt::skip]
pub static ROUTES: &[Route] = &[
    guarded(Get, "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances", Role::Viewer, None, "Task instances of a run (`~` for every DAG and run): filters, order_by, limit/offset or cursor", list),
    guarded(Get, "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}", Role::Viewer, None, "One task instance", get),
    guarded(Get, "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/dependencies", Role::Viewer, None, "Why a task instance is not running yet: its unmet dependencies", dependencies),
    guarded(Patch, "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}", Role::User, Some("patch_task_instance"), "Set a task instance's state (success, failed, skipped; with relatives) or note", patch),
    guarded(Patch, "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/dry_run", Role::User, None, "The task instances a state change would change", patch_dry_run),
    guarded(Get, "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/tries", Role::Viewer, None, "Every try of a task instance", tries),
    guarded(Get, "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/tries/{task_try_number}", Role::Viewer, None, "One try of a task instance", one_try),
    guarded(Post, "/api/v2/dags/{dag_id}/clearTaskInstances", Role::User, Some("post_clear_task_instances"), "Clear task instances so they run again (dry_run, the default, only lists them)", clear),
];

/// The routes that name one instance of a mapped task, and its list. They come after every
/// other route (`api::routes`), since `{map_index}` would take `.../{task_id}/tries`,
/// `.../{task_id}/xcomEntries` and the like.
#[rustfmt::skip]
pub static MAPPED_ROUTES: &[Route] = &[
    guarded(Get, "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/listMapped", Role::Viewer, None, "The instances of a mapped task: filters, order_by, limit/offset", list_mapped),
    guarded(Get, "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/{map_index}", Role::Viewer, None, "One instance of a mapped task", get),
    guarded(Get, "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/{map_index}/dependencies", Role::Viewer, None, "Why an instance of a mapped task is not running yet", dependencies),
    guarded(Patch, "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/{map_index}", Role::User, Some("patch_task_instance"), "Set the state (with relatives) or note of an instance of a mapped task", patch),
    guarded(Patch, "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/{map_index}/dry_run", Role::User, None, "The task instances a state change of an instance of a mapped task would change", patch_dry_run),
    guarded(Get, "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/{map_index}/tries", Role::Viewer, None, "Every try of an instance of a mapped task", tries),
    guarded(Get, "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/{map_index}/tries/{task_try_number}", Role::Viewer, None, "One try of an instance of a mapped task", one_try),
];

/// Task instance states as Airflow lists them (some never occur in updraft).
const TI_STATES: &[&str] = crate::model::AIRFLOW_TI_STATES;
/// What a task instance list sorts by.
const TI_ORDER: &[&str] = &[
    "id",
    "state",
    "duration",
    "start_date",
    "end_date",
    "map_index",
    "try_number",
    "logical_date",
    "run_after",
    "data_interval_start",
    "data_interval_end",
    "rendered_map_index",
    "operator",
];
/// What an XCom list sorts by.
/// The states Airflow lets a user set by hand.
const SETTABLE: &[&str] = &["success", "failed", "skipped"];
/// A task instance collection with Airflow's (offset) paging fields.
fn collection(items: Vec<Value>) -> Value {
    let n = items.len();
    let p = Paging {
        limit: n,
        offset: 0,
        cursor: false,
    };
    paged("task_instances", items, n, &p)
}

/// `GET .../taskInstances/{task_id}/listMapped`: the instances of a mapped task (map
/// index 0 and up), with the list's filters, ordered by map index unless asked. None is
/// no error for a mapped task (it may have expanded to nothing), as in Airflow.
fn list_mapped(ctx: &Ctx, store: &mut Store, req: &Req, p: &Params) -> Result<Reply, ApiError> {
    let (dag_id, run_id, task_id) = (p.get("dag_id"), p.get("dag_run_id"), p.get("task_id"));
    let paging = paging(ctx, req)?;
    let mut q = ListQuery::default();
    q.any_of("dag_id", vec![Some(dag_id.to_string())]);
    q.any_of("run_id", vec![Some(run_id.to_string())]);
    q.any_of("task_id", vec![Some(task_id.to_string())]);
    q.cmp("map_index", Op::Gte, Bound::Num(0.0));
    let mut unfiltered = q.clone();
    unfiltered.limit = Some(1);
    if store.list_tis(&unfiltered)?.1 == 0 {
        let dag = store.dag(dag_id)?.ok_or_else(|| dag_not_found(dag_id))?;
        match dag.dag.task(task_id) {
            None => return Err(ApiError::not_found(format!("Task id {task_id} not found"))),
            Some(t) if t.mapped.is_none() => {
                return Err(ApiError::not_found(format!(
                    "Task id {task_id} is not mapped"
                )));
            }
            Some(_) => {}
        }
    }
    filters(req, &mut q, None)?;
    ordered_page(store, req, q, &paging, "map_index")
}

fn list(ctx: &Ctx, store: &mut Store, req: &Req, p: &Params) -> Result<Reply, ApiError> {
    let (dag_id, run_id) = (p.get("dag_id"), p.get("dag_run_id"));
    let paging = paging(ctx, req)?;
    let mut q = ListQuery::default();
    if run_id != "~" {
        if dag_id == "~" {
            return Err(ApiError::bad_request(
                "dag_id is required when dag_run_id is specified",
            ));
        }
        store.run(dag_id, run_id)?.ok_or_else(|| {
            ApiError::not_found(format!(
                "DagRun with dag_id: `{dag_id}` and run_id: `{run_id}` was not found"
            ))
        })?;
        q.any_of("run_id", vec![Some(run_id.to_string())]);
    }
    let mut dag = None;
    if dag_id != "~" {
        dag = Some(store.dag(dag_id)?.ok_or_else(|| dag_not_found(dag_id))?);
        q.any_of("dag_id", vec![Some(dag_id.to_string())]);
    }
    if let Some(t) = req.query("task_id") {
        q.any_of("task_id", vec![Some(t.to_string())]);
    }
    filters(req, &mut q, dag.as_ref().map(|d| d.dag.as_ref()))?;
    // Ties keep the order the run's task instances were made in: the DAG's task order.
    ordered_page(store, req, q, &paging, "rowid")
}

/// One page of the task instances `q` selects, in the request's `order_by` and then
/// `tiebreak`: Airflow's TaskInstanceCollection.
pub(super) fn ordered_page(
    store: &mut Store,
    req: &Req,
    mut q: ListQuery,
    paging: &Paging,
    tiebreak: &'static str,
) -> Result<Reply, ApiError> {
    let keys = orders(
        &query_all(req, "order_by"),
        TI_ORDER,
        &[("map_index", false)],
        &[],
    )?;
    apply_order(&mut q, &keys, tiebreak);
    q.limit = Some(paging.limit);
    q.offset = paging.offset;
    let (rows, total) = store.list_tis(&q)?;
    let items = Views::new(store).all(&rows)?;
    Ok(Reply::json(
        200,
        &paged("task_instances", items, total, paging),
    ))
}

/// The filters the task instance lists share (`task_group_id` needs the DAG).
pub(super) fn filters(
    req: &Req,
    q: &mut ListQuery,
    dag: Option<&crate::model::Dag>,
) -> Result<(), ApiError> {
    time_ranges(
        req,
        q,
        &[
            "run_after",
            "logical_date",
            "start_date",
            "end_date",
            "updated_at",
        ],
    )?;
    number_ranges(req, q, "duration")?;
    patterns(
        req,
        q,
        &[
            ("task_display_name", "task_display_name"),
            ("dag_id", "dag_id"),
            ("run_id", "run_id"),
            ("pool_name", "pool"),
            ("queue_name", "queue"),
            ("operator_name", "operator_name"),
            ("rendered_map_index", "rendered_map_index"),
        ],
    );
    let states = state_filter(req, "state", TI_STATES, &["no_status", "none"], "state")?;
    if !states.is_empty() {
        q.any_of("state", states);
    }
    for (param, field) in [
        ("pool", "pool"),
        ("queue", "queue"),
        ("executor", "executor"),
        ("operator", "operator"),
    ] {
        let values = query_all(req, param);
        if !values.is_empty() {
            q.any_of(
                field,
                values.into_iter().map(|v| Some(v.to_string())).collect(),
            );
        }
    }
    for (param, field) in [("try_number", "try_number"), ("map_index", "map_index")] {
        let values = query_ints(req, param)?;
        if !values.is_empty() {
            q.any_int(field, values);
        }
    }
    // Task instances carry no DAG version in updraft.
    if !query_ints(req, "version_number")?.is_empty() {
        q.nothing();
    }
    if let (Some(group), Some(dag)) = (req.query("task_group_id"), dag) {
        let inside = format!("{group}.");
        q.any_of(
            "task_id",
            dag.tasks
                .iter()
                .filter(|t| {
                    t.task_group
                        .as_deref()
                        .is_some_and(|g| g == group || g.starts_with(&inside))
                })
                .map(|t| Some(t.task_id.clone()))
                .collect(),
        );
    }
    Ok(())
}

/// The task instance named by the path (its `{map_index}`, or -1), or Airflow's 404s:
/// without a map index, a mapped task's instances are not found ("add the map_index").
fn the_ti(store: &Store, p: &Params) -> Result<TiRow, ApiError> {
    let (dag_id, run_id, task_id) = (p.get("dag_id"), p.get("dag_run_id"), p.get("task_id"));
    let map_index = path_map_index(p)?;
    if let Some(ti) = store.ti_at(dag_id, run_id, task_id, map_index)? {
        return Ok(ti);
    }
    if p.try_get("map_index").is_some() {
        return Err(ApiError::not_found(format!(
            "The Mapped Task Instance with dag_id: `{dag_id}`, run_id: `{run_id}`, task_id: `{task_id}`, and map_index: `{map_index}` was not found"
        )));
    }
    if store.ti_at(dag_id, run_id, task_id, 0)?.is_some() {
        return Err(ApiError::not_found(
            "Task instance is mapped, add the map_index value to the URL",
        ));
    }
    Err(ApiError::not_found(format!(
        "The Task Instance with dag_id: `{dag_id}`, run_id: `{run_id}` and task_id: `{task_id}` was not found"
    )))
}

fn get(_ctx: &Ctx, store: &mut Store, _req: &Req, p: &Params) -> Result<Reply, ApiError> {
    let ti = the_ti(store, p)?;
    Ok(Reply::json(200, &Views::new(store).ti(&ti)?))
}

/// `GET .../taskInstances/{task_id}/dependencies`: what stops a task instance from
/// running, as Airflow's dependency checks word it: its trigger rule while upstream
/// tasks have not settled it, its retry delay, its run or DAG being paused. Empty once it
/// runs or has run.
fn dependencies(ctx: &Ctx, store: &mut Store, _req: &Req, p: &Params) -> Result<Reply, ApiError> {
    let ti = the_ti(store, p)?;
    let deps = unmet_dependencies(ctx, store, &ti)?;
    let deps: Vec<Value> = deps
        .into_iter()
        .map(|(name, reason)| json!({"name": name, "reason": reason}))
        .collect();
    Ok(Reply::json(200, &json!({"dependencies": deps})))
}

/// The scheduler's dependencies a task instance that has not started yet does not meet,
/// as `(name, reason)` in Airflow's words and name order (`get_failed_dep_statuses` with
/// `SCHEDULER_QUEUED_DEPS` and the task's own deps): the DAG paused, the run not running,
/// the trigger rule over the upstream states, the retry period, the pool's open slots and
/// the DAG's `max_active_tasks`. Empty for a task instance past waiting, as Airflow's.
fn unmet_dependencies(
    ctx: &Ctx,
    store: &Store,
    ti: &TiRow,
) -> Result<Vec<(&'static str, String)>, ApiError> {
    use crate::scheduler::rules::{self, Upstream};
    let now = ctx.clock.now();
    let mut deps = Vec::new();
    let waiting = matches!(
        ti.state,
        None | Some(TaskState::Scheduled) | Some(TaskState::UpForRetry)
    );
    if !waiting {
        return Ok(deps);
    }
    let dag = store.dag(&ti.dag_id)?;
    if let Some(row) = &dag
        && row.is_paused
    {
        deps.push((
            "Dag Not Paused",
            format!("Task's DAG '{}' is paused.", ti.dag_id),
        ));
    }
    if let Some(run) = store.run(&ti.dag_id, &ti.run_id)?
        && run.state != crate::model::RunState::Running
    {
        deps.push((
            "Dagrun Running",
            format!(
                "Task instance's dagrun was not in the 'running' state but in the state '{}'.",
                run.state
            ),
        ));
    }
    let tis = store.tis_of_run(&ti.dag_id, &ti.run_id)?;
    if let Some(task) = dag.as_ref().and_then(|row| row.dag.task(&ti.task_id))
        && ti.state != Some(TaskState::UpForRetry)
    {
        let states: std::collections::HashMap<&str, Option<TaskState>> =
            tis.iter().map(|t| (t.task_id.as_str(), t.state)).collect();
        let ups: Vec<(&str, Option<TaskState>)> = task
            .upstream
            .iter()
            .map(|u| (u.as_str(), states.get(u.as_str()).copied().flatten()))
            .collect();
        let up = Upstream::tally(ups.iter().map(|(_, st)| *st));
        if let Some(reason) = rules::unmet(task.trigger_rule, &up) {
            let shown: Vec<String> = ups
                .iter()
                .map(|(id, st)| format!("{id}: {}", st.map_or("no status", TaskState::as_str)))
                .collect();
            deps.push((
                "Trigger Rule",
                format!("{reason} Upstream states: {}.", shown.join(", ")),
            ));
        }
    }
    if let (Some(TaskState::UpForRetry), Some(at)) = (ti.state, ti.next_retry_at)
        && at > now
    {
        deps.push(("Not In Retry Period", format!(
            "Task is not ready for retry yet but will be retried automatically. Current date is {} and task will be retried at {}.",
            crate::store::ts(now), crate::store::ts(at))));
    }
    // `PoolSlotsAvailableDep`: the instance holds no slot before it is queued.
    match store.pool(&ti.pool)? {
        None => deps.push((
            "Pool Slots Available",
            format!(
                "Tasks using non-existent pool '{}' will not be scheduled",
                ti.pool
            ),
        )),
        Some(pool) => {
            let open = pool.open();
            if open != -1 && open < i64::from(ti.pool_slots) {
                deps.push((
                    "Pool Slots Available",
                    format!(
                        "Not scheduling since there are {open} open slots in pool {} and require {} pool slots",
                        ti.pool, ti.pool_slots
                    ),
                ));
            }
        }
    }
    // `DagTISlotsAvailableDep`: the DAG's running task instances, across its runs.
    if let Some(row) = &dag {
        let limit = row
            .dag
            .max_active_tasks
            .unwrap_or(ctx.cfg.core.max_active_tasks_per_dag);
        let active = store
            .slot_usage()?
            .iter()
            .filter(|(dag_id, _, _)| *dag_id == ti.dag_id)
            .count();
        if active >= usize::try_from(limit).unwrap_or(usize::MAX) {
            deps.push(("Task Instance Slots Available", format!(
                "The maximum number of running tasks ({limit}) for this task's DAG '{}' has been reached.",
                ti.dag_id
            )));
        }
    }
    deps.sort_by(|a, b| a.0.cmp(b.0));
    Ok(deps)
}

/// A checked `PatchTaskInstanceBody`, and the new state if it names one.
fn patch_body(req: &Req) -> Result<(Map<String, Value>, Option<TaskState>), ApiError> {
    let b = body(
        req,
        &[
            field("new_state", Kind::Any, false, true),
            field("note", Kind::Str, false, true),
            field("include_upstream", Kind::Bool, false, false),
            field("include_downstream", Kind::Bool, false, false),
            field("include_future", Kind::Bool, false, false),
            field("include_past", Kind::Bool, false, false),
        ],
    )?;
    let mut errors = long_note(&b);
    let mut state = None;
    if let Some(v) = b.get("new_state") {
        let lower = v.as_str().map(str::to_ascii_lowercase);
        match lower.as_deref() {
            Some(s) if SETTABLE.contains(&s) => state = TaskState::parse(s),
            _ => {
                let msg = match (v, &lower) {
                    (Value::Null, _) => "Value error, 'new_state' should not be empty".to_string(),
                    (_, Some(s)) => {
                        format!("Value error, '{s}' is not one of ['success', 'failed', 'skipped']")
                    }
                    (other, None) => format!(
                        "Value error, '{other}' is not one of ['success', 'failed', 'skipped']"
                    ),
                };
                errors.insert(
                    0,
                    json!({"type": "value_error", "loc": ["body", "new_state"], "msg": msg,
                           "input": v, "ctx": {"error": {}}}),
                );
            }
        }
    }
    if errors.is_empty() {
        Ok((b, state))
    } else {
        Err(unprocessable(errors))
    }
}

/// The task instances a patch names, with Airflow's 404s: the one at the path's map
/// index, or, when the path has none, every instance of the task in the run (all the
/// map indexes of a mapped task), as Airflow's `_patch_ti_validate_request` takes them.
/// The map index, when named, comes back with them.
fn patch_target(store: &Store, p: &Params) -> Result<(Vec<TiRow>, Option<i64>), ApiError> {
    let (dag_id, run_id, task_id) = (p.get("dag_id"), p.get("dag_run_id"), p.get("task_id"));
    let dag = store.dag(dag_id)?.ok_or_else(|| dag_not_found(dag_id))?;
    if dag.dag.task(task_id).is_none() {
        return Err(ApiError::not_found(format!(
            "Task '{task_id}' not found in Dag '{dag_id}'"
        )));
    }
    let named = p
        .try_get("map_index")
        .map(|_| path_map_index(p))
        .transpose()?;
    let tis = match named {
        Some(m) => store
            .ti_at(dag_id, run_id, task_id, m)?
            .into_iter()
            .collect(),
        None => {
            let mut all: Vec<TiRow> = store
                .tis_of_run(dag_id, run_id)?
                .into_iter()
                .filter(|t| t.task_id == task_id)
                .collect();
            all.sort_by_key(|t| t.map_index);
            all
        }
    };
    if tis.is_empty() {
        let shown = named.map_or_else(|| "None".to_string(), |m| m.to_string());
        return Err(ApiError::not_found(format!(
            "The Task Instance with dag_id: `{dag_id}`, run_id: `{run_id}`, task_id: `{task_id}` and map_index: `{shown}` was not found"
        )));
    }
    Ok((tis, named))
}

fn relatives(b: &Map<String, Value>) -> ops::Relatives {
    ops::Relatives {
        upstream: flag(b, "include_upstream", false),
        downstream: flag(b, "include_downstream", false),
        future: flag(b, "include_future", false),
        past: flag(b, "include_past", false),
    }
}

pub(super) fn patch(
    ctx: &Ctx,
    store: &mut Store,
    req: &Req,
    p: &Params,
) -> Result<Reply, ApiError> {
    let (b, state) = patch_body(req)?;
    let (tis, map_index) = patch_target(store, p)?;
    let fields = masked(req, &b);
    let mask_given = !query_all(req, "update_mask").is_empty();
    if fields.contains(&"note") && (mask_given || b.get("note").is_some_and(|n| !n.is_null())) {
        let note = text(&b, "note").filter(|n| !n.is_empty());
        store.write(|tx| {
            for ti in &tis {
                tx.set_ti_note(&ti.id, note)?;
            }
            Ok(())
        })?;
    }
    let first = &tis[0];
    if fields.contains(&"new_state")
        && let Some(to) = state
    {
        let changed = ops::set_ti_states(
            store,
            &first.dag_id,
            &first.run_id,
            &first.task_id,
            map_index,
            to,
            relatives(&b),
            true,
            ctx.clock.now(),
        )?;
        if changed.is_empty() {
            return Err(ApiError::new(
                409,
                format!("Task id {} is already in {to} state", first.task_id),
            ));
        }
        ctx.wake_scheduler();
    }
    let mut after = Vec::new();
    for ti in &tis {
        if let Some(t) = store.ti(&ti.id)? {
            after.push(t);
        }
    }
    let items = Views::new(store).all(&after)?;
    Ok(Reply::json(200, &collection(items)))
}

pub(super) fn patch_dry_run(
    ctx: &Ctx,
    store: &mut Store,
    req: &Req,
    p: &Params,
) -> Result<Reply, ApiError> {
    let (b, state) = patch_body(req)?;
    let (tis, map_index) = patch_target(store, p)?;
    let would = match state.filter(|_| masked(req, &b).contains(&"new_state")) {
        Some(to) => ops::set_ti_states(
            store,
            &tis[0].dag_id,
            &tis[0].run_id,
            &tis[0].task_id,
            map_index,
            to,
            relatives(&b),
            false,
            ctx.clock.now(),
        )?,
        None => tis,
    };
    let items = Views::new(store).all(&would)?;
    Ok(Reply::json(200, &collection(items)))
}

/// Every try of a task instance, oldest first: the finished ones kept in history, and
/// the current one as it is now (which also reflects a state set by hand since). A
/// task instance cleared and not yet started again shows its tries from history only.
fn tries_of(store: &Store, p: &Params) -> Result<Vec<TiRow>, ApiError> {
    let (dag_id, run_id, task_id) = (p.get("dag_id"), p.get("dag_run_id"), p.get("task_id"));
    let map_index = path_map_index(p)?;
    let history = store.ti_history_at(dag_id, run_id, task_id, map_index)?;
    let Some(current) = store.ti_at(dag_id, run_id, task_id, map_index)? else {
        return Ok(history);
    };
    let cleared = current.state.is_none()
        && current.try_number > 0
        && history.iter().any(|h| h.try_number == current.try_number);
    let mut all: Vec<TiRow> = history
        .into_iter()
        .filter(|h| cleared || h.try_number != current.try_number)
        .collect();
    if !cleared {
        all.push(current);
    }
    all.sort_by_key(|t| t.try_number);
    Ok(all)
}

fn tries(_ctx: &Ctx, store: &mut Store, _req: &Req, p: &Params) -> Result<Reply, ApiError> {
    let all = tries_of(store, p)?;
    if all.is_empty() {
        return Err(ApiError::not_found(format!(
            "The Task Instance with dag_id: `{}`, run_id: `{}`, task_id: `{}` and map_index: `{}` was not found",
            p.get("dag_id"),
            p.get("dag_run_id"),
            p.get("task_id"),
            path_map_index(p)?
        )));
    }
    let mut views = Views::new(store);
    let items = all
        .iter()
        .map(|t| views.try_json(t))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Reply::json(
        200,
        &json!({"task_instances": items, "total_entries": items.len()}),
    ))
}

fn one_try(_ctx: &Ctx, store: &mut Store, _req: &Req, p: &Params) -> Result<Reply, ApiError> {
    let n = path_number(p, "task_try_number")?;
    let found = tries_of(store, p)?
        .into_iter()
        .rfind(|t| t.try_number == n)
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "The Task Instance with dag_id: `{}`, run_id: `{}`, task_id: `{}`, try_number: `{n}` and map_index: `{}` was not found",
                p.get("dag_id"),
                p.get("dag_run_id"),
                p.get("task_id"),
                p.try_get("map_index").unwrap_or("-1")
            ))
        })?;
    Ok(Reply::json(200, &Views::new(store).try_json(&found)?))
}

/// Task ids from `ClearTaskInstancesBody.task_ids`: names (every map index), or
/// `[name, map_index]` pairs (that instance). Errors are pydantic's.
fn clear_task_ids(list: &[Value]) -> Result<Vec<(String, Option<i64>)>, Vec<Value>> {
    let mut ids = Vec::new();
    let mut errors = Vec::new();
    for (i, v) in list.iter().enumerate() {
        match v {
            Value::String(s) => ids.push((s.clone(), None)),
            Value::Array(pair) if pair.len() == 2 && pair[0].is_string() && pair[1].is_i64() => {
                ids.push((
                    pair[0].as_str().unwrap_or_default().to_string(),
                    pair[1].as_i64(),
                ));
            }
            other => errors.push(
                json!({"type": "string_type", "loc": ["body", "task_ids", i, "str"],
                                        "msg": "Input should be a valid string", "input": other}),
            ),
        }
    }
    if errors.is_empty() {
        Ok(ids)
    } else {
        Err(errors)
    }
}

fn clear(ctx: &Ctx, store: &mut Store, req: &Req, p: &Params) -> Result<Reply, ApiError> {
    let dag_id = p.get("dag_id");
    let b = body(
        req,
        &[
            field("dry_run", Kind::Bool, false, false),
            field("start_date", Kind::DateTime, false, true),
            field("end_date", Kind::DateTime, false, true),
            field("only_failed", Kind::Bool, false, false),
            field("only_running", Kind::Bool, false, false),
            field("reset_dag_runs", Kind::Bool, false, false),
            field("task_ids", Kind::List, false, true),
            field("dag_run_id", Kind::Str, false, true),
            field("include_upstream", Kind::Bool, false, false),
            field("include_downstream", Kind::Bool, false, false),
            field("include_future", Kind::Bool, false, false),
            field("include_past", Kind::Bool, false, false),
            field("run_on_latest_version", Kind::Bool, false, true),
            field("prevent_running_task", Kind::Bool, false, false),
            field("note", Kind::Str, false, true),
        ],
    )?;
    // The model's own checks, on what was sent (Airflow's `validate_model`).
    let sent = |k: &str| b.get(k).is_some_and(|v| !v.is_null() && v != &json!(false));
    let (start, end) = (time(&b, "start_date"), time(&b, "end_date"));
    let complaint = if sent("only_failed") && sent("only_running") {
        Some("only_failed and only_running both are set to True")
    } else if start.zip(end).is_some_and(|(s, e)| s > e) {
        Some("end_date is sooner than start_date")
    } else if sent("start_date") && sent("end_date") && sent("dag_run_id") {
        Some("Exactly one of dag_run_id or (start_date and end_date) must be provided")
    } else if sent("start_date") && sent("dag_run_id") {
        Some("Exactly one of dag_run_id or start_date must be provided")
    } else if sent("end_date") && sent("dag_run_id") {
        Some("Exactly one of dag_run_id or end_date must be provided")
    } else if b
        .get("task_ids")
        .and_then(Value::as_array)
        .is_some_and(Vec::is_empty)
    {
        Some("task_ids list should have at least 1 element.")
    } else {
        None
    };
    if let Some(msg) = complaint {
        return Err(body_value_error(&b, msg));
    }
    let mut errors = naive_times(&b, &["start_date", "end_date"]);
    errors.extend(long_note(&b));
    let task_ids = match b.get("task_ids").and_then(Value::as_array) {
        Some(list) => match clear_task_ids(list) {
            Ok(ids) => Some(ids),
            Err(e) => {
                errors.extend(e);
                None
            }
        },
        None => None,
    };
    if !errors.is_empty() {
        return Err(unprocessable(errors));
    }
    let dag = store.dag(dag_id)?.ok_or_else(|| dag_not_found(dag_id))?;
    let (past, future) = (
        flag(&b, "include_past", false),
        flag(&b, "include_future", false),
    );
    let (mut from, mut to) = (start, end);
    let mut q = ListQuery::default();
    q.any_of("dag_id", vec![Some(dag_id.to_string())]);
    if let Some(run_id) = text(&b, "dag_run_id") {
        let run = store.run(dag_id, run_id)?.ok_or_else(|| {
            ApiError::not_found(format!("Dag Run id {run_id} not found in dag {dag_id}"))
        })?;
        if (past || future) && run.logical_date.is_none() {
            return Err(ApiError::bad_request(
                "Cannot use include_past or include_future with no logical_date(e.g. manually or asset-triggered).",
            ));
        }
        if !(past || future) {
            q.any_of("run_id", vec![Some(run_id.to_string())]);
        }
        (from, to) = (run.logical_date, run.logical_date);
    }
    if past {
        from = None;
    }
    if future {
        to = None;
    }
    if let Some(t) = from {
        q.cmp("logical_date", Op::Gte, Bound::Time(t));
    }
    if let Some(t) = to {
        q.cmp("logical_date", Op::Lte, Bound::Time(t));
    }
    // The tasks cleared at every map index: those named by name, and the relatives the
    // flags add (Airflow's `find_relevant_relatives`: updraft has no mapped task groups,
    // so a relative is always taken whole, even when a `[name, map_index]` pair names it).
    let whole: Option<Vec<String>> = task_ids.as_ref().map(|ids| {
        let (up, down) = (
            flag(&b, "include_upstream", false),
            flag(&b, "include_downstream", false),
        );
        let mut whole: Vec<String> = Vec::new();
        let mut add = |t: &String| {
            if !whole.contains(t) {
                whole.push(t.clone());
            }
        };
        for (id, m) in ids {
            if m.is_none() {
                add(id);
            }
            for t in ops::task_family(&dag.dag, id, up, down) {
                if t != *id {
                    add(&t);
                }
            }
        }
        whole
    });
    if let (Some(ids), Some(whole)) = (&task_ids, &whole) {
        let mut named = whole.clone();
        named.extend(ids.iter().map(|(id, _)| id.clone()));
        q.any_of("task_id", named.into_iter().map(Some).collect());
    }
    // `only_failed` defaults to true and wins over `only_running`, as in Airflow.
    if flag(&b, "only_failed", true) {
        q.any_of(
            "state",
            vec![Some("failed".into()), Some("upstream_failed".into())],
        );
    } else if flag(&b, "only_running", false) {
        q.any_of("state", vec![Some("running".into())]);
    }
    let (mut tis, _) = store.list_tis(&q)?;
    // A task named only in `[name, map_index]` pairs is cleared at those map indexes.
    if let (Some(ids), Some(whole)) = (&task_ids, &whole) {
        tis.retain(|t| {
            whole.contains(&t.task_id)
                || ids
                    .iter()
                    .any(|(id, m)| *id == t.task_id && *m == Some(t.map_index))
        });
    }
    let tis = if flag(&b, "dry_run", true) {
        tis
    } else {
        if flag(&b, "prevent_running_task", false)
            && tis.iter().any(|t| t.state == Some(TaskState::Running))
        {
            return Err(ApiError::new(
                409,
                "AirflowClearRunningTaskException: Disable 'prevent_running_task' to proceed, or wait until the task is not running, queued, or scheduled state.",
            ));
        }
        let now = ctx.clock.now();
        ops::clear_tis(store, &dag.dag, &tis, flag(&b, "reset_dag_runs", true), now)?;
        if let Some(note) = b.get("note").filter(|n| !n.is_null()) {
            let note = note.as_str().filter(|n| !n.is_empty());
            store.write(|tx| {
                for ti in &tis {
                    tx.set_ti_note(&ti.id, note)?;
                }
                Ok(())
            })?;
        }
        ctx.wake_scheduler();
        let mut after = Vec::new();
        for ti in &tis {
            if let Some(t) = store.ti(&ti.id)? {
                after.push(t);
            }
        }
        after
    };
    let items = Views::new(store).all(&tis)?;
    Ok(Reply::json(200, &collection(items)))
}
