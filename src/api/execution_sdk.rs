//! The Execution API routes the Task SDK's client calls besides a task's own run (which
//! `execution.rs` serves): rendered fields, lookups of other task instances and runs for
//! a task's context, variable keys and deletes, XCom deletes, a DAG's summary, and the
//! `Airflow-API-Version` header as Airflow's versioned app answers it.
//!
//! Shapes and status codes are those of Airflow 3.3.2's `execution_api/routes`; the
//! task token is checked as for every other Execution API route.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use crate::api::execution::{body, caller, not_found, running_caller, with_token};
use crate::api::http::{ApiError, Reply, Req};
use crate::api::route::{Ctx, Params};
use crate::model::{Dag, RunState, TaskState};
use crate::store::{RunRow, Store, TiRow};

use crate::api::execution_versions::VERSIONS as API_VERSIONS;

/// The version a request asks for, as Airflow's Cadwyn app reads `Airflow-API-Version`:
/// none is the newest; a date on or after the oldest version is served by the newest
/// version not after it (and echoed back as asked); an earlier date matches no route
/// (404); anything but a date is a 422 naming the header.
pub fn api_version(req: &Req) -> Result<String, ApiError> {
    let newest = API_VERSIONS[API_VERSIONS.len() - 1];
    let Some(asked) = req.header("airflow-api-version") else {
        return Ok(newest.to_string());
    };
    let asked = asked.trim();
    if chrono::NaiveDate::parse_from_str(asked, "%Y-%m-%d").is_err() || asked.len() != 10 {
        return Err(ApiError::with_detail(
            422,
            json!([{"type": "date_from_datetime_parsing", "loc": ["header", "Airflow-API-Version"],
                    "msg": "Input should be a valid date or datetime, invalid date separator",
                    "input": asked}]),
        ));
    }
    // Dates in this form sort as text.
    if asked < API_VERSIONS[0] {
        return Err(ApiError::not_found("Not Found"));
    }
    Ok(asked.to_string())
}

fn t(d: Option<DateTime<Utc>>) -> Value {
    d.map_or(Value::Null, |d| Value::String(crate::store::ts(d)))
}

/// A run as the Task SDK's `DagRun` model has it (extra keys are refused there).
pub fn dag_run_json(run: &RunRow) -> Value {
    serde_json::to_value(DagRunRef::new(run, &[])).unwrap_or(Value::Null)
}

/// The Task SDK's `DagRun`, borrowed from a run's row: serialized straight into a reply
/// (the claim's run context) or made a value by [`dag_run_json`].
#[derive(serde::Serialize)]
pub struct DagRunRef<'a> {
    dag_id: &'a str,
    run_id: &'a str,
    logical_date: Option<String>,
    data_interval_start: Option<String>,
    data_interval_end: Option<String>,
    run_after: String,
    start_date: Option<String>,
    end_date: Option<String>,
    run_type: &'static str,
    state: &'static str,
    conf: &'a Value,
    clear_number: i64,
    triggering_user_name: &'a Option<String>,
    // The Execution API's run fills consumed_asset_events; updraft has no partitions or teams.
    consumed_asset_events: &'a [Value],
    partition_key: (),
    partition_date: (),
    note: &'a Option<String>,
    team_name: (),
}

impl<'a> DagRunRef<'a> {
    pub fn new(run: &'a RunRow, consumed_asset_events: &'a [Value]) -> Self {
        let t = |d: Option<DateTime<Utc>>| d.map(crate::store::ts);
        DagRunRef {
            dag_id: &run.dag_id,
            run_id: &run.run_id,
            logical_date: t(run.logical_date),
            data_interval_start: t(run.data_interval_start),
            data_interval_end: t(run.data_interval_end),
            run_after: crate::store::ts(run.run_after),
            start_date: t(run.start_date),
            end_date: t(run.end_date),
            run_type: run.run_type.as_str(),
            state: run.state.as_str(),
            conf: &run.conf,
            clear_number: run.clear_number,
            triggering_user_name: &run.triggering_user_name,
            consumed_asset_events,
            partition_key: (),
            partition_date: (),
            note: &run.note,
            team_name: (),
        }
    }
}

fn ok_json(ctx: &Ctx, c: &super::execution::Caller, status: u16, v: &Value) -> Reply {
    with_token(ctx, Reply::json(status, v), c, c.ti.state)
}

fn no_content(ctx: &Ctx, c: &super::execution::Caller) -> Reply {
    with_token(
        ctx,
        Reply::bytes(204, "application/json", Vec::new()),
        c,
        c.ti.state,
    )
}

/// A required query parameter, or the 422 FastAPI gives when it is missing.
fn required<'a>(req: &'a Req, name: &str) -> Result<&'a str, ApiError> {
    req.query(name).ok_or_else(|| {
        ApiError::with_detail(
            422,
            json!([{"type": "missing", "loc": ["query", name], "msg": "Field required", "input": null}]),
        )
    })
}

/// Every value of a repeated query parameter.
fn all<'a>(req: &'a Req, name: &str) -> Vec<&'a str> {
    req.query
        .iter()
        .filter(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .collect()
}

fn int_query(req: &Req, name: &str) -> Result<Option<i64>, ApiError> {
    req.query(name)
        .map(|v| {
            v.parse().map_err(|_| {
                ApiError::with_detail(
                    422,
                    json!([{"type": "int_parsing", "loc": ["query", name],
                            "msg": "Input should be a valid integer, unable to parse string as an integer", "input": v}]),
                )
            })
        })
        .transpose()
}

fn date_value(name: &str, v: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(v)
        .map(|d| d.with_timezone(&Utc))
        .map_err(|_| {
            ApiError::with_detail(
                422,
                json!([{"type": "datetime_from_date_parsing", "loc": ["query", name],
                        "msg": "Input should be a valid datetime", "input": v}]),
            )
        })
}

fn dates(req: &Req, name: &str) -> Result<Vec<DateTime<Utc>>, ApiError> {
    all(req, name)
        .into_iter()
        .map(|v| date_value(name, v))
        .collect()
}

/// The task instances `count` and `states` look at: of one DAG, filtered as Airflow's
/// routes filter them (task ids, a task group's tasks, logical dates, run ids, a map
/// index), with their run's logical date.
fn matching_tis(ctx: &Ctx, store: &Store, req: &Req) -> Result<Vec<TiRow>, ApiError> {
    let dag_id = required(req, "dag_id")?;
    let map_index = int_query(req, "map_index")?;
    let task_ids = all(req, "task_ids");
    let run_ids = all(req, "run_ids");
    let logical_dates = dates(req, "logical_dates")?;
    let group_tasks: Option<Vec<String>> = match req.query("task_group_id") {
        None => None,
        Some(g) => {
            let dag = ctx.dags.get(store, dag_id)?;
            let in_group = |tg: &str| tg == g || tg.starts_with(&format!("{g}."));
            let tasks: Vec<String> = dag
                .iter()
                .flat_map(|d: &std::sync::Arc<Dag>| d.tasks.iter())
                .filter(|t| t.task_group.as_deref().is_some_and(in_group))
                .map(|t| t.task_id.clone())
                .collect();
            if tasks.is_empty()
                && dag
                    .as_ref()
                    .is_some_and(|d| d.task_groups.iter().all(|tg| tg.group_id != g))
            {
                return Err(ApiError::with_detail(
                    404,
                    json!({"reason": "not_found", "message": format!("Task group {g} not found in DAG {dag_id}")}),
                ));
            }
            Some(tasks)
        }
    };
    let mut out = Vec::new();
    for run in store.runs_of(Some(dag_id), usize::MAX)? {
        if !run_ids.is_empty() && !run_ids.contains(&run.run_id.as_str()) {
            continue;
        }
        if !logical_dates.is_empty()
            && !run.logical_date.is_some_and(|d| logical_dates.contains(&d))
        {
            continue;
        }
        for ti in store.tis_of_run(dag_id, &run.run_id)? {
            let by_id = task_ids.is_empty() || task_ids.contains(&ti.task_id.as_str());
            let by_group = group_tasks.as_ref().is_none_or(|g| g.contains(&ti.task_id));
            // With both, Airflow adds the group's tasks to the named ones.
            let keep = match (&group_tasks, task_ids.is_empty()) {
                (Some(_), false) => by_id || by_group,
                _ => by_id && by_group,
            };
            if keep && map_index.is_none_or(|m| m == ti.map_index) {
                out.push(ti);
            }
        }
    }
    Ok(out)
}

/// `GET /execution/task-instances/count`: how many task instances match (`states` may
/// hold `null` for no state). A JSON integer.
pub fn ti_count(ctx: &Ctx, store: &mut Store, req: &Req, _: &Params) -> Result<Reply, ApiError> {
    let c = caller(ctx, store, req, None)?;
    let states = all(req, "states");
    let n = matching_tis(ctx, store, req)?
        .iter()
        .filter(|ti| {
            states.is_empty() || states.contains(&ti.state.map_or("null", TaskState::as_str))
        })
        .count();
    Ok(ok_json(ctx, &c, 200, &json!(n)))
}

/// `GET /execution/task-instances/states`: `{"task_states": {run_id: {task: state}}}`,
/// a mapped instance under `{task_id}_{map_index}`.
pub fn ti_states(ctx: &Ctx, store: &mut Store, req: &Req, _: &Params) -> Result<Reply, ApiError> {
    let c = caller(ctx, store, req, None)?;
    let mut runs: Map<String, Value> = Map::new();
    for ti in matching_tis(ctx, store, req)? {
        let name = if ti.map_index < 0 {
            ti.task_id.clone()
        } else {
            format!("{}_{}", ti.task_id, ti.map_index)
        };
        let entry = runs
            .entry(ti.run_id.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        entry[name] = json!(ti.state.map(TaskState::as_str));
    }
    Ok(ok_json(ctx, &c, 200, &json!({"task_states": runs})))
}

/// `GET /execution/task-instances/breadcrumbs?dag_id=&run_id=`: the finished task
/// instances of a run (success, failed, skipped, removed), by task id and map index.
pub fn breadcrumbs(ctx: &Ctx, store: &mut Store, req: &Req, _: &Params) -> Result<Reply, ApiError> {
    let c = caller(ctx, store, req, None)?;
    let (dag_id, run_id) = (required(req, "dag_id")?, required(req, "run_id")?);
    let mut tis: Vec<TiRow> = store
        .tis_of_run(dag_id, run_id)?
        .into_iter()
        .filter(|ti| {
            matches!(
                ti.state,
                Some(
                    TaskState::Success
                        | TaskState::Failed
                        | TaskState::Skipped
                        | TaskState::Removed
                )
            )
        })
        .collect();
    tis.sort_by(|a, b| (&a.task_id, a.map_index).cmp(&(&b.task_id, b.map_index)));
    let crumbs: Vec<Value> = tis
        .iter()
        .map(|ti| {
            json!({"task_id": ti.task_id, "map_index": ti.map_index, "state": ti.state.map(TaskState::as_str),
                   "operator": ti.operator, "duration": ti.duration})
        })
        .collect();
    Ok(ok_json(ctx, &c, 200, &json!({"breadcrumbs": crumbs})))
}

/// `GET /execution/task-instances/previous/{dag_id}/{task_id}`: the task's instance in
/// the run with the latest logical date before `logical_date` (if given), in `state` (if
/// given); `null` when there is none.
pub fn previous_ti(ctx: &Ctx, store: &mut Store, req: &Req, p: &Params) -> Result<Reply, ApiError> {
    let c = caller(ctx, store, req, None)?;
    let (dag_id, task_id) = (p.get("dag_id"), p.get("task_id"));
    let before = req
        .query("logical_date")
        .map(|v| date_value("logical_date", v))
        .transpose()?;
    let map_index = int_query(req, "map_index")?.unwrap_or(-1);
    let state = req.query("state");
    let mut best: Option<(RunRow, TiRow)> = None;
    for run in store.runs_of(Some(dag_id), usize::MAX)? {
        let Some(ld) = run.logical_date else { continue };
        if before.is_some_and(|b| ld >= b) {
            continue;
        }
        if best
            .as_ref()
            .is_some_and(|(r, _)| r.logical_date >= Some(ld))
        {
            continue;
        }
        if let Some(ti) = store.ti_at(dag_id, &run.run_id, task_id, map_index)?
            && state.is_none_or(|s| ti.state.map(TaskState::as_str) == Some(s))
        {
            best = Some((run, ti));
        }
    }
    let v = best.map_or(Value::Null, |(run, ti)| {
        json!({"task_id": ti.task_id, "dag_id": ti.dag_id, "run_id": ti.run_id,
               "logical_date": t(run.logical_date), "start_date": t(ti.start_date), "end_date": t(ti.end_date),
               "state": ti.state.map(TaskState::as_str), "try_number": ti.try_number,
               "map_index": ti.map_index, "duration": ti.duration})
    });
    Ok(ok_json(ctx, &c, 200, &v))
}

/// `PUT /execution/task-instances/{id}/rtif`: the task's rendered template fields, a
/// JSON object; the Core API's `rendered_fields` shows them. 201.
pub fn put_rtif(ctx: &Ctx, store: &mut Store, req: &Req, p: &Params) -> Result<Reply, ApiError> {
    let id = p.get("task_instance_id");
    let c = caller(ctx, store, req, Some(id))?;
    let fields: Value = body(req)?;
    if !fields.is_object() {
        return Err(ApiError::new(
            422,
            "the rendered fields must be a JSON object of field names to values",
        ));
    }
    if !store.write(|tx| tx.set_rtif(id, &fields))? {
        return Err(not_found("Task Instance not found".to_string()));
    }
    Ok(ok_json(
        ctx,
        &c,
        201,
        &json!({"message": "Rendered task instance fields successfully set"}),
    ))
}

/// `GET /execution/task-instances/{id}/previous-successful-dagrun`: the dates of the
/// latest successful run of the DAG before this one's logical date; all null when none.
pub fn previous_successful_dagrun(
    ctx: &Ctx,
    store: &mut Store,
    req: &Req,
    p: &Params,
) -> Result<Reply, ApiError> {
    let id = p.get("task_instance_id");
    let c = caller(ctx, store, req, Some(id))?;
    let logical = store
        .run(&c.ti.dag_id, &c.ti.run_id)?
        .and_then(|r| r.logical_date);
    let found = match logical {
        Some(ld) => store.run_before(&c.ti.dag_id, ld, Some(RunState::Success.as_str()))?,
        None => None,
    };
    let v = match found {
        Some(r) => {
            json!({"data_interval_start": t(r.data_interval_start), "data_interval_end": t(r.data_interval_end),
                          "start_date": t(r.start_date), "end_date": t(r.end_date)})
        }
        None => {
            json!({"data_interval_start": null, "data_interval_end": null, "start_date": null, "end_date": null})
        }
    };
    Ok(ok_json(ctx, &c, 200, &v))
}

/// `GET /execution/task-instances/{id}/validate-inlets-and-outlets`: the inactive
/// assets among the task's inlets and outlets. An asset updraft knows is declared by a
/// parsed DAG, so it is active: the list is empty.
pub fn validate_inlets_and_outlets(
    ctx: &Ctx,
    store: &mut Store,
    req: &Req,
    p: &Params,
) -> Result<Reply, ApiError> {
    let id = p.get("task_instance_id");
    let c = caller(ctx, store, req, Some(id))?;
    Ok(ok_json(ctx, &c, 200, &json!({"inactive_assets": []})))
}

/// `GET /execution/variables/keys?prefix=&limit=&offset=`: variable keys in key order.
pub fn variable_keys(
    ctx: &Ctx,
    store: &mut Store,
    req: &Req,
    _: &Params,
) -> Result<Reply, ApiError> {
    let c = running_caller(ctx, store, req)?;
    let limit = int_query(req, "limit")?.unwrap_or(1000);
    let offset = int_query(req, "offset")?.unwrap_or(0);
    if !(1..=10_000).contains(&limit) || offset < 0 {
        return Err(ApiError::with_detail(
            422,
            json!([{"type": "value_error", "loc": ["query", if offset < 0 { "offset" } else { "limit" }],
                    "msg": "limit must be 1 to 10000 and offset at least 0", "input": null}]),
        ));
    }
    let (keys, total) =
        store.variable_keys(req.query("prefix"), limit as usize, offset as usize)?;
    Ok(ok_json(
        ctx,
        &c,
        200,
        &json!({"keys": keys, "total_entries": total}),
    ))
}

/// `DELETE /execution/variables/{variable_key}`: 204, whether or not it existed.
pub fn delete_variable(
    ctx: &Ctx,
    store: &mut Store,
    req: &Req,
    p: &Params,
) -> Result<Reply, ApiError> {
    let c = running_caller(ctx, store, req)?;
    let key = p.get("variable_key");
    store.write(|tx| tx.delete_variable(key))?;
    Ok(no_content(ctx, &c))
}

/// `DELETE /execution/xcoms/{dag_id}/{run_id}/{task_id}/{key}?map_index=`: removes one
/// XCom of the caller's own task (as pushes are); 200 whether or not it existed.
pub fn delete_xcom(ctx: &Ctx, store: &mut Store, req: &Req, p: &Params) -> Result<Reply, ApiError> {
    let c = running_caller(ctx, store, req)?;
    let (dag_id, run_id, task_id, key) = (
        p.get("dag_id"),
        p.get("run_id"),
        p.get("task_id"),
        p.get("key"),
    );
    let ti = &c.ti;
    if (ti.dag_id.as_str(), ti.run_id.as_str(), ti.task_id.as_str()) != (dag_id, run_id, task_id) {
        return Err(ApiError::new(403, "a task may only delete its own XComs"));
    }
    let map_index = int_query(req, "map_index")?.unwrap_or(-1);
    store.write(|tx| tx.delete_xcom(dag_id, run_id, task_id, map_index, key))?;
    Ok(ok_json(
        ctx,
        &c,
        200,
        &json!({"message": format!("XCom with key: {key} successfully deleted.")}),
    ))
}

fn the_run(store: &Store, dag_id: &str, run_id: &str) -> Result<RunRow, ApiError> {
    store.run(dag_id, run_id)?.ok_or_else(|| {
        not_found(format!(
            "Dag run with dag_id '{dag_id}' and run_id '{run_id}' was not found"
        ))
    })
}

/// `GET /execution/dag-runs/{dag_id}/{run_id}`: the run as the SDK's `DagRun`.
pub fn dag_run(ctx: &Ctx, store: &mut Store, req: &Req, p: &Params) -> Result<Reply, ApiError> {
    let c = caller(ctx, store, req, None)?;
    let run = the_run(store, p.get("dag_id"), p.get("run_id"))?;
    Ok(ok_json(ctx, &c, 200, &dag_run_json(&run)))
}

/// The runs of `dag_id` that `count` filters (logical dates, run ids, states).
fn matching_runs(store: &Store, req: &Req) -> Result<Vec<RunRow>, ApiError> {
    let dag_id = required(req, "dag_id")?;
    let logical_dates = dates(req, "logical_dates")?;
    let run_ids = all(req, "run_ids");
    let states = all(req, "states");
    Ok(store
        .runs_of(Some(dag_id), usize::MAX)?
        .into_iter()
        .filter(|r| run_ids.is_empty() || run_ids.contains(&r.run_id.as_str()))
        .filter(|r| {
            logical_dates.is_empty() || r.logical_date.is_some_and(|d| logical_dates.contains(&d))
        })
        .filter(|r| states.is_empty() || states.contains(&r.state.as_str()))
        .collect())
}

/// `GET /execution/dag-runs/count`: a JSON integer.
pub fn dag_run_count(
    ctx: &Ctx,
    store: &mut Store,
    req: &Req,
    _: &Params,
) -> Result<Reply, ApiError> {
    let c = caller(ctx, store, req, None)?;
    let n = matching_runs(store, req)?.len();
    Ok(ok_json(ctx, &c, 200, &json!(n)))
}

/// `GET /execution/dag-runs/previous?dag_id=&logical_date=&state=`: the run with the
/// latest logical date before `logical_date` (in `state`, if given), or `null`.
pub fn previous_dag_run(
    ctx: &Ctx,
    store: &mut Store,
    req: &Req,
    _: &Params,
) -> Result<Reply, ApiError> {
    let c = caller(ctx, store, req, None)?;
    let v = previous_run(store, req, required(req, "dag_id")?)?;
    Ok(ok_json(ctx, &c, 200, &v))
}

/// The run of `dag_id` with the latest logical date before the query's `logical_date`
/// (in its `state`, if given), as a `DagRun`, or null: both `previous` routes' answer.
fn previous_run(store: &mut Store, req: &Req, dag_id: &str) -> Result<Value, ApiError> {
    let before = date_value("logical_date", required(req, "logical_date")?)?;
    let state = req.query("state");
    let best = store.run_before(dag_id, before, state)?;
    Ok(best.as_ref().map_or(Value::Null, dag_run_json))
}

/// `GET /execution/dag-runs/{dag_id}/previous`, served to clients of versions
/// 2025-08-10 to 2026-04-05 (Airflow's `get_previous_dagrun_compat`): the previous run
/// with the DAG in the path. Airflow's route declares no reply model, so the run goes out
/// in the newest `DagRun` shape, unconverted.
pub fn previous_dag_run_compat(
    ctx: &Ctx,
    store: &mut Store,
    req: &Req,
    p: &Params,
) -> Result<Reply, ApiError> {
    let c = caller(ctx, store, req, None)?;
    let v = previous_run(store, req, p.get("dag_id"))?;
    Ok(ok_json(ctx, &c, 200, &v))
}

/// `GET /execution/dags/{dag_id}`: the SDK's `DagResponse`.
pub fn dag(ctx: &Ctx, store: &mut Store, req: &Req, p: &Params) -> Result<Reply, ApiError> {
    let c = caller(ctx, store, req, None)?;
    let dag_id = p.get("dag_id");
    let row = store
        .dag(dag_id)?
        .ok_or_else(|| not_found(format!("The Dag with dag_id: `{dag_id}` was not found")))?;
    let mut tags: Vec<&str> = row.dag.tags.iter().map(String::as_str).collect();
    tags.sort_unstable();
    tags.dedup();
    let next = crate::api::core::dags::next_logical_date(ctx, store, &row.dag)?;
    let v = json!({
        "dag_id": row.dag.dag_id, "is_paused": row.is_paused, "bundle_name": row.bundle_name,
        "bundle_version": null, "relative_fileloc": row.relative_fileloc,
        "owners": (!row.dag.owners.is_empty()).then(|| row.dag.owners.join(", ")), "tags": tags, "next_dagrun": t(next),
    });
    Ok(ok_json(ctx, &c, 200, &v))
}

/// The state store scope of the caller's task instance (the path's id is the token's).
fn own_scope(c: &super::execution::Caller) -> crate::store::StateScope {
    crate::store::StateScope {
        dag_id: c.ti.dag_id.clone(),
        run_id: c.ti.run_id.clone(),
        task_id: c.ti.task_id.clone(),
        map_index: c.ti.map_index,
    }
}

/// `GET /execution/store/ti/{id}/{key}`: `{"value": ...}`; 404 when missing or expired.
pub fn get_state(ctx: &Ctx, store: &mut Store, req: &Req, p: &Params) -> Result<Reply, ApiError> {
    let c = caller(ctx, store, req, Some(p.get("task_instance_id")))?;
    let key = p.get("key");
    let e = store
        .state_entries(&own_scope(&c), ctx.clock.now())?
        .into_iter()
        .find(|e| e.key == key)
        .ok_or_else(|| not_found(format!("Task state store key '{key}' not found")))?;
    Ok(ok_json(ctx, &c, 200, &json!({"value": e.value})))
}

/// `PUT /execution/store/ti/{id}/{key}`: `{value, expires_at}`. 204.
pub fn put_state(ctx: &Ctx, store: &mut Store, req: &Req, p: &Params) -> Result<Reply, ApiError> {
    let c = caller(ctx, store, req, Some(p.get("task_instance_id")))?;
    let b: Map<String, Value> = body(req)?;
    let value = crate::api::core::state_store::value_of(&b)?;
    let expires = crate::api::core::state_store::expiry_of(&b)?;
    let now = ctx.clock.now();
    store.write(|tx| tx.set_state(&own_scope(&c), p.get("key"), &value, expires, now))?;
    Ok(no_content(ctx, &c))
}

/// `DELETE /execution/store/ti/{id}/{key}`: 204 whether or not it was there.
pub fn delete_state(
    ctx: &Ctx,
    store: &mut Store,
    req: &Req,
    p: &Params,
) -> Result<Reply, ApiError> {
    let c = caller(ctx, store, req, Some(p.get("task_instance_id")))?;
    store.write(|tx| tx.delete_state(&own_scope(&c), Some(p.get("key")), false))?;
    Ok(no_content(ctx, &c))
}

/// `DELETE /execution/store/ti/{id}`: every key of the task instance. 204.
pub fn clear_state(ctx: &Ctx, store: &mut Store, req: &Req, p: &Params) -> Result<Reply, ApiError> {
    let c = caller(ctx, store, req, Some(p.get("task_instance_id")))?;
    store.write(|tx| tx.delete_state(&own_scope(&c), None, false))?;
    Ok(no_content(ctx, &c))
}
