//! Task instance operations of Airflow's Core API beyond reading and patching one:
//! delete, the batch list, bulk update and delete, a task group's instances, extra links
//! and the external log URL.

use serde_json::{Map, Value, json};

use super::kit::{Kind, Paging, body, field, query_map_index, unprocessable};
use super::task_instances::{filters, ordered_page, patch, patch_dry_run};
use crate::api::http::{ApiError, Method, Reply, Req};
use crate::api::route::{Ctx, Params, Route, guarded};
use crate::auth::Role;
use crate::store::Store;
use crate::store::q_runs::ListQuery;

use Method::{Delete, Get, Patch, Post};

/// Task instance operations.
#[rustfmt::skip]
pub static ROUTES: &[Route] = &[
    guarded(Post, "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/list", Role::Viewer, None, "Task instances of many DAGs and runs, filtered by a body (the path's ids must be `~`)", list_batch),
    guarded(Patch, "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances", Role::User, Some("bulk_task_instances"), "Update or delete task instances in bulk", bulk),
    guarded(Delete, "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}", Role::User, Some("delete_task_instance"), "Delete a task instance with its tries and XComs", delete),
    guarded(Patch, "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/taskGroupInstances/{group_id}", Role::User, Some("patch_task_group_instances"), "Set the state or note of every task instance of a task group", group_patch),
    guarded(Patch, "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/taskGroupInstances/{group_id}/dry_run", Role::User, None, "The task instances a task group's state change would change", group_dry_run),
    guarded(Get, "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/links", Role::Viewer, None, "A task instance's extra links (updraft's operators define none)", links),
    guarded(Get, "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/externalLogUrl/{try_number}", Role::Viewer, None, "External log URL: 400, as Airflow with a log handler that has none", external_log_url),
];

fn literal_tilde(place: &str, value: &str) -> Option<Value> {
    (value != "~").then(|| {
        json!({"type": "literal_error", "loc": ["path", place], "msg": "Input should be '~'",
               "input": value, "ctx": {"expected": "'~'"}})
    })
}

fn strings(b: &Map<String, Value>, name: &str) -> Option<Vec<Option<String>>> {
    b.get(name).and_then(Value::as_array).map(|list| {
        list.iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect()
    })
}

/// `POST /dags/~/dagRuns/~/taskInstances/list`: the list's filters from a body
/// (`TaskInstancesBatchBody`), the same as the GET list's query parameters.
fn list_batch(_ctx: &Ctx, store: &mut Store, req: &Req, p: &Params) -> Result<Reply, ApiError> {
    let errors: Vec<Value> = [
        literal_tilde("dag_id", p.get("dag_id")),
        literal_tilde("dag_run_id", p.get("dag_run_id")),
    ]
    .into_iter()
    .flatten()
    .collect();
    if !errors.is_empty() {
        return Err(unprocessable(errors));
    }
    const RANGES: [&str; 20] = [
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
        "duration_gte",
        "duration_gt",
        "duration_lte",
        "duration_lt",
    ];
    let mut fields = vec![
        field("dag_ids", Kind::List, false, true),
        field("dag_run_ids", Kind::List, false, true),
        field("task_ids", Kind::List, false, true),
        field("state", Kind::List, false, true),
        field("pool", Kind::List, false, true),
        field("queue", Kind::List, false, true),
        field("executor", Kind::List, false, true),
        field("page_offset", Kind::Int, false, false),
        field("page_limit", Kind::Int, false, false),
        field("order_by", Kind::Str, false, true),
    ];
    fields.extend(RANGES.iter().map(|n| {
        let kind = if n.starts_with("duration") {
            Kind::Number
        } else {
            Kind::DateTime
        };
        field(n, kind, false, true)
    }));
    let b = body(req, &fields)?;
    // The GET list's query parameters, from the body.
    let mut query = Req::internal(Method::Get, &req.path);
    for name in RANGES {
        match b.get(name) {
            Some(Value::String(s)) => query.query.push((name.to_string(), s.clone())),
            Some(Value::Number(n)) => query.query.push((name.to_string(), n.to_string())),
            _ => {}
        }
    }
    for name in ["state", "pool", "queue", "executor"] {
        for v in strings(&b, name).unwrap_or_default() {
            query
                .query
                .push((name.to_string(), v.unwrap_or_else(|| "none".to_string())));
        }
    }
    if let Some(o) = b.get("order_by").and_then(Value::as_str) {
        query.query.push(("order_by".to_string(), o.to_string()));
    }
    let count = |name: &str, default: u64| -> Result<usize, ApiError> {
        match b.get(name) {
            None | Some(Value::Null) => Ok(default as usize),
            Some(v) => v.as_u64().map(|n| n as usize).ok_or_else(|| {
                unprocessable(vec![json!({"type": "greater_than_equal", "loc": ["body", name],
                    "msg": "Input should be greater than or equal to 0", "input": v, "ctx": {"ge": 0}})])
            }),
        }
    };
    let paging = Paging {
        limit: count("page_limit", 100)?,
        offset: count("page_offset", 0)?,
        cursor: false,
    };
    let mut q = ListQuery::default();
    for (name, col) in [
        ("dag_ids", "dag_id"),
        ("dag_run_ids", "run_id"),
        ("task_ids", "task_id"),
    ] {
        if let Some(values) = strings(&b, name) {
            q.any_of(col, values);
        }
    }
    filters(&query, &mut q, None)?;
    ordered_page(store, &query, q, &paging, "rowid")
}

fn ti_params(
    p: &Params,
    dag_id: &str,
    run_id: &str,
    task_id: &str,
    map_index: Option<i64>,
) -> Params {
    let mut values = vec![
        ("dag_id", dag_id.to_string()),
        ("dag_run_id", run_id.to_string()),
        ("task_id", task_id.to_string()),
    ];
    if let Some(m) = map_index.filter(|m| *m >= 0) {
        values.push(("map_index", m.to_string()));
    }
    Params {
        values,
        user: p.user.clone(),
    }
}

/// A request like `req` with another JSON body.
fn with_body(req: &Req, b: &Value) -> Req {
    let mut r = req.clone();
    r.body = b.to_string().into_bytes();
    r.query.retain(|(n, _)| n == "update_mask");
    r
}

/// `DELETE .../taskInstances/{task_id}?map_index=`: 200 with `null`; 404 when missing.
fn delete(_ctx: &Ctx, store: &mut Store, req: &Req, p: &Params) -> Result<Reply, ApiError> {
    let (dag_id, run_id, task_id) = (p.get("dag_id"), p.get("dag_run_id"), p.get("task_id"));
    let map_index = query_map_index(req)?.unwrap_or(-1);
    let ti = store.ti_at(dag_id, run_id, task_id, map_index)?.ok_or_else(|| {
        ApiError::not_found(format!(
            "The Task Instance with dag_id: `{dag_id}`, run_id: `{run_id}`, task_id: `{task_id}` and map_index: `{map_index}` was not found"
        ))
    })?;
    store.write(|tx| tx.delete_ti(&ti))?;
    Ok(Reply::json(200, &Value::Null))
}

/// `PATCH .../taskInstances`: Airflow's `BulkBody` of `update` and `delete` actions on
/// `BulkTaskInstanceBody` entities (a task id and the patch body of one task instance).
/// Each entity succeeds or fails on its own: `{"update": {"success": [...], "errors":
/// [...]}, ...}`, successes named `dag_id.run_id.task_id[map_index]`.
fn bulk(ctx: &Ctx, store: &mut Store, req: &Req, p: &Params) -> Result<Reply, ApiError> {
    let b = body(req, &[field("actions", Kind::List, true, false)])?;
    let mut out = json!({"create": null, "update": null, "delete": null});
    for (i, action) in b["actions"].as_array().into_iter().flatten().enumerate() {
        let Some(kind) = action.get("action").and_then(Value::as_str) else {
            return Err(unprocessable(vec![
                json!({"type": "union_tag_invalid", "loc": ["body", "actions", i],
                "msg": "Input tag not found: expected 'create', 'update' or 'delete'", "input": action}),
            ]));
        };
        if !matches!(kind, "create" | "update" | "delete") {
            return Err(unprocessable(vec![
                json!({"type": "union_tag_invalid", "loc": ["body", "actions", i],
                "msg": format!("Input tag '{kind}' found using 'action' does not match any of the expected tags: 'create', 'update', 'delete'"),
                "input": action}),
            ]));
        }
        let skip_missing = action
            .get("action_on_non_existence")
            .and_then(Value::as_str)
            == Some("skip");
        let mut success = Vec::new();
        let mut errors = Vec::new();
        for entity in action
            .get("entities")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let (task_id, mut fields) = match entity {
                Value::String(t) => (t.clone(), Map::new()),
                Value::Object(m) => match m.get("task_id").and_then(Value::as_str) {
                    Some(t) => (t.to_string(), m.clone()),
                    None => {
                        errors.push(json!({"error": format!("task_id is required: {entity}"), "status_code": 422}));
                        continue;
                    }
                },
                other => {
                    errors.push(json!({"error": format!("not a task instance: {other}"), "status_code": 422}));
                    continue;
                }
            };
            let text = |m: &Map<String, Value>, k: &str, path: &str| {
                m.get(k)
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .unwrap_or_else(|| path.to_string())
            };
            let dag_id = text(&fields, "dag_id", p.get("dag_id"));
            let run_id = text(&fields, "dag_run_id", p.get("dag_run_id"));
            if dag_id == "~" || run_id == "~" {
                errors.push(json!({"error": format!("When using wildcard in path, dag_id and dag_run_id must be specified in request body for task_id: {task_id}"), "status_code": 400}));
                continue;
            }
            let map_index = fields.get("map_index").and_then(Value::as_i64);
            for k in ["task_id", "map_index", "dag_id", "dag_run_id"] {
                fields.remove(k);
            }
            // Without a map index, every instance of the task.
            let indexes: Vec<i64> = match map_index {
                Some(m) => vec![m],
                None => store
                    .tis_of_run(&dag_id, &run_id)?
                    .into_iter()
                    .filter(|ti| ti.task_id == task_id)
                    .map(|ti| ti.map_index)
                    .collect(),
            };
            if indexes.is_empty() {
                if !skip_missing {
                    errors.push(json!({"error": format!("No task instances found for dag_id: {dag_id}, run_id: {run_id}, task_id: {task_id}"), "status_code": 404}));
                }
                continue;
            }
            for m in indexes {
                let params = ti_params(p, &dag_id, &run_id, &task_id, Some(m));
                let result = match kind {
                    "update" => patch(
                        ctx,
                        store,
                        &with_body(req, &Value::Object(fields.clone())),
                        &params,
                    ),
                    "delete" => {
                        let mut r = with_body(req, &Value::Null);
                        r.query = vec![("map_index".to_string(), m.to_string())];
                        delete(ctx, store, &r, &params)
                    }
                    _ => Err(ApiError::bad_request("task instances cannot be created")),
                };
                match result {
                    Ok(_) => success.push(json!(format!("{dag_id}.{run_id}.{task_id}[{m}]"))),
                    Err(e) if e.status == 404 && skip_missing => {}
                    Err(e) => {
                        let msg = match &e.detail {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        };
                        errors.push(json!({"error": msg, "status_code": e.status}))
                    }
                }
            }
        }
        out[kind] = json!({"success": success, "errors": errors});
    }
    Ok(Reply::json(200, &out))
}

/// The task ids of a task group (and the groups inside it), or Airflow's 404.
fn group_tasks(ctx: &Ctx, store: &Store, p: &Params) -> Result<Vec<String>, ApiError> {
    let (dag_id, group) = (p.get("dag_id"), p.get("group_id"));
    let dag = ctx
        .dags
        .get(store, dag_id)?
        .ok_or_else(|| ApiError::not_found(format!("Dag with id {dag_id} was not found")))?;
    let inside = format!("{group}.");
    let tasks: Vec<String> = dag
        .tasks
        .iter()
        .filter(|t| {
            t.task_group
                .as_deref()
                .is_some_and(|g| g == group || g.starts_with(&inside))
        })
        .map(|t| t.task_id.clone())
        .collect();
    if tasks.is_empty() {
        return Err(ApiError::not_found(format!(
            "Task group '{group}' not found in DAG '{dag_id}'"
        )));
    }
    Ok(tasks)
}

/// Runs `each` (patch or its dry run) over every instance of the group's tasks in the
/// run, and answers with all the task instances they name.
fn over_group(
    ctx: &Ctx,
    store: &mut Store,
    req: &Req,
    p: &Params,
    each: crate::api::route::Handler,
) -> Result<Reply, ApiError> {
    let (dag_id, run_id) = (p.get("dag_id"), p.get("dag_run_id"));
    let tasks = group_tasks(ctx, store, p)?;
    let tis: Vec<_> = store
        .tis_of_run(dag_id, run_id)?
        .into_iter()
        .filter(|ti| tasks.contains(&ti.task_id))
        .collect();
    if tis.is_empty() {
        return Err(ApiError::not_found(format!(
            "No task instances found for task group '{}' in dag run '{run_id}'",
            p.get("group_id")
        )));
    }
    let mut items: Vec<Value> = Vec::new();
    let mut changed = false;
    let mut last_error = None;
    for ti in &tis {
        let params = ti_params(p, dag_id, run_id, &ti.task_id, Some(ti.map_index));
        match each(ctx, store, req, &params) {
            Ok(reply) => {
                changed = true;
                let v: Value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
                for item in v["task_instances"].as_array().into_iter().flatten() {
                    if !items.iter().any(|i| i["id"] == item["id"]) {
                        items.push(item.clone());
                    }
                }
            }
            // Already in the state: Airflow counts the group as a whole.
            Err(e) if e.status == 409 => last_error = Some(e),
            Err(e) => return Err(e),
        }
    }
    if !changed && let Some(new_state) = body_state(req) {
        return Err(last_error
            .map(|e| e.status)
            .map(|status| {
                ApiError::new(
                    status,
                    format!("All task instances in the group are already in {new_state} state"),
                )
            })
            .unwrap_or_else(|| ApiError::new(409, "No task instance of the group changed")));
    }
    let n = items.len();
    Ok(Reply::json(
        200,
        &json!({"task_instances": items, "total_entries": n}),
    ))
}

fn body_state(req: &Req) -> Option<String> {
    serde_json::from_slice::<Value>(&req.body)
        .ok()?
        .get("new_state")?
        .as_str()
        .map(str::to_ascii_lowercase)
}

fn group_patch(ctx: &Ctx, store: &mut Store, req: &Req, p: &Params) -> Result<Reply, ApiError> {
    over_group(ctx, store, req, p, patch)
}

fn group_dry_run(ctx: &Ctx, store: &mut Store, req: &Req, p: &Params) -> Result<Reply, ApiError> {
    over_group(ctx, store, req, p, patch_dry_run)
}

/// `GET .../links`: updraft's operators have no operator extra links, so a task
/// instance's are none. 404 for a missing task instance or task.
fn links(ctx: &Ctx, store: &mut Store, req: &Req, p: &Params) -> Result<Reply, ApiError> {
    let (dag_id, run_id, task_id) = (p.get("dag_id"), p.get("dag_run_id"), p.get("task_id"));
    let map_index = query_map_index(req)?.unwrap_or(-1);
    let ti = store
        .ti_at(dag_id, run_id, task_id, map_index)?
        .ok_or_else(|| ApiError::not_found("TaskInstance not found"))?;
    let dag = ctx.dags.get(store, dag_id)?;
    if dag.as_ref().and_then(|d| d.task(task_id)).is_none() {
        return Err(ApiError::not_found(format!(
            "Task with ID = {task_id} not found"
        )));
    }
    if let Some(n) = req.query("try_number")
        && n.parse::<u32>().ok() != Some(ti.try_number)
        && !store
            .ti_history_at(dag_id, run_id, task_id, map_index)?
            .iter()
            .any(|h| Some(h.try_number) == n.parse().ok())
    {
        return Err(ApiError::not_found(format!(
            "TaskInstanceHistory not found for try_number={n}"
        )));
    }
    Ok(Reply::json(
        200,
        &json!({"extra_links": {}, "total_entries": 0}),
    ))
}

/// `GET .../externalLogUrl/{try_number}`: updraft keeps task logs in files it serves
/// itself, so there is no external log URL: Airflow's answer for a log handler without
/// one (400).
fn external_log_url(
    _ctx: &Ctx,
    _store: &mut Store,
    _req: &Req,
    p: &Params,
) -> Result<Reply, ApiError> {
    let n = p.get("try_number");
    if !n.parse::<u32>().is_ok_and(|n| n > 0) {
        return Err(unprocessable(vec![
            json!({"type": "greater_than", "loc": ["path", "try_number"],
            "msg": "Input should be greater than 0", "input": n, "ctx": {"gt": 0}}),
        ]));
    }
    Err(ApiError::bad_request(
        "Task log handler does not support external logs.",
    ))
}
