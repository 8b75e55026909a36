//! DAG run operations of Airflow's Core API beyond one run's: bulk update and delete,
//! clearing many runs, clearing partitions, and waiting for a run to finish.

use serde_json::{Map, Value, json};

use super::dag_runs::{clear, delete, patch};
use super::kit::{Kind, body, field, unprocessable};
use crate::api::http::{ApiError, Method, Reply, Req};
use crate::api::route::{Ctx, Params, Route, guarded};
use crate::auth::Role;
use crate::model::RunState;
use crate::store::Store;

use Method::{Get, Patch, Post};

/// Longest a `wait` holds its worker: a run still going after this is answered with its
/// states so far (the last line not finished), and the client may ask again.
const WAIT_LIMIT_SECS: f64 = 300.0;

/// DAG run operations.
#[rustfmt::skip]
pub static ROUTES: &[Route] = &[
    guarded(Patch, "/api/v2/dags/{dag_id}/dagRuns", Role::User, Some("bulk_dag_runs"), "Update or delete DAG runs in bulk", bulk),
    guarded(Post, "/api/v2/dags/{dag_id}/clearDagRuns", Role::User, Some("clear_dag_runs"), "Clear many DAG runs (dry_run, the default, only lists what would be cleared)", clear_many),
    guarded(Post, "/api/v2/dags/{dag_id}/clearPartitions", Role::User, Some("clear_dag_run_partitions"), "Reset the partition fields of matching runs (updraft has no partitioned DAGs: none match)", clear_partitions),
    guarded(Get, "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/wait", Role::Viewer, None, "Wait for a run to finish: NDJSON lines of its state, the last with its results", wait),
];

fn run_params(p: &Params, dag_id: &str, run_id: &str) -> Params {
    Params {
        values: vec![
            ("dag_id", dag_id.to_string()),
            ("dag_run_id", run_id.to_string()),
        ],
        user: p.user.clone(),
    }
}

fn with_body(req: &Req, b: &Value) -> Req {
    let mut r = req.clone();
    r.body = b.to_string().into_bytes();
    r.query.clear();
    r
}

fn message(e: &ApiError) -> String {
    match &e.detail {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `PATCH /dags/{dag_id}/dagRuns`: `update` and `delete` actions on `BulkDAGRunBody`
/// entities (a run id, and the state and note of a run's patch), each on its own.
fn bulk(ctx: &Ctx, store: &mut Store, req: &Req, p: &Params) -> Result<Reply, ApiError> {
    let b = body(req, &[field("actions", Kind::List, true, false)])?;
    let mut out = json!({"create": null, "update": null, "delete": null});
    for (i, action) in b["actions"].as_array().into_iter().flatten().enumerate() {
        let kind = action
            .get("action")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !matches!(kind, "create" | "update" | "delete") {
            return Err(unprocessable(vec![
                json!({"type": "union_tag_invalid", "loc": ["body", "actions", i],
                "msg": "Input tag not found: expected 'create', 'update' or 'delete'", "input": action}),
            ]));
        }
        let skip_missing = action
            .get("action_on_non_existence")
            .and_then(Value::as_str)
            == Some("skip");
        let mask: Option<Vec<String>> =
            action
                .get("update_mask")
                .and_then(Value::as_array)
                .map(|m| {
                    m.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                });
        let (mut success, mut errors) = (Vec::new(), Vec::new());
        for entity in action
            .get("entities")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let (run_id, fields) = match entity {
                Value::String(r) => (r.clone(), Map::new()),
                Value::Object(m) => match m.get("dag_run_id").and_then(Value::as_str) {
                    Some(r) => (r.to_string(), m.clone()),
                    None => {
                        errors.push(json!({"error": format!("dag_run_id is required: {entity}"), "status_code": 422}));
                        continue;
                    }
                },
                other => {
                    errors.push(
                        json!({"error": format!("not a DAG run: {other}"), "status_code": 422}),
                    );
                    continue;
                }
            };
            let dag_id = fields
                .get("dag_id")
                .and_then(Value::as_str)
                .unwrap_or(p.get("dag_id"))
                .to_string();
            if dag_id == "~" {
                errors.push(json!({"error": format!("When the URL dag_id is '~', every entry must provide a concrete dag_id (missing on dag_run_id: '{run_id}')."), "status_code": 400}));
                continue;
            }
            let params = run_params(p, &dag_id, &run_id);
            let result = match kind {
                "update" => {
                    let mut patch_body = Map::new();
                    for k in ["state", "note"] {
                        let wanted = mask.as_ref().is_none_or(|m| m.iter().any(|f| f == k));
                        if let Some(v) = fields.get(k).filter(|_| wanted) {
                            patch_body.insert(k.to_string(), v.clone());
                        }
                    }
                    patch(
                        ctx,
                        store,
                        &with_body(req, &Value::Object(patch_body)),
                        &params,
                    )
                }
                "delete" => delete(ctx, store, &with_body(req, &Value::Null), &params),
                _ => Err(ApiError::bad_request(
                    "DAG runs are created by triggering them",
                )),
            };
            match result {
                Ok(_) => success.push(json!(run_id)),
                Err(e) if e.status == 404 && skip_missing => {}
                Err(e) => errors.push(json!({"error": message(&e), "status_code": e.status})),
            }
        }
        out[kind] = json!({"success": success, "errors": errors});
    }
    Ok(Reply::json(200, &out))
}

const PARTITION_SELECTORS: [&str; 3] = [
    "partition_key",
    "partition_date_start",
    "partition_date_end",
];

/// `POST /dags/{dag_id}/clearDagRuns`: clears each run of `dag_runs` as the one-run
/// clear does (same options); with partition selectors instead, the runs of those
/// partitions, which in updraft are none. Dry run: the task instances that would be
/// cleared; otherwise the runs cleared.
fn clear_many(ctx: &Ctx, store: &mut Store, req: &Req, p: &Params) -> Result<Reply, ApiError> {
    let b = body(
        req,
        &[
            field("dry_run", Kind::Bool, false, false),
            field("only_failed", Kind::Bool, false, false),
            field("only_new", Kind::Bool, false, false),
            field("run_on_latest_version", Kind::Bool, false, true),
            field("note", Kind::Str, false, true),
            field("dag_runs", Kind::List, false, false),
            field("partition_key", Kind::Str, false, true),
            field("partition_date_start", Kind::DateTime, false, true),
            field("partition_date_end", Kind::DateTime, false, true),
        ],
    )?;
    let dag_id = p.get("dag_id");
    let runs = b
        .get("dag_runs")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let selectors = PARTITION_SELECTORS
        .iter()
        .any(|k| b.get(*k).is_some_and(|v| !v.is_null()));
    if runs.is_empty() != selectors {
        return Err(unprocessable(vec![
            json!({"type": "value_error", "loc": ["body"],
            "msg": "Value error, Provide exactly one of: dag_runs (non-empty), partition_key, or partition_date_start/partition_date_end",
            "input": Value::Object(b.clone()), "ctx": {"error": {}}}),
        ]));
    }
    if selectors && dag_id == "~" {
        return Err(ApiError::bad_request(
            "Partition selectors require a concrete dag_id; '~' is not supported.",
        ));
    }
    let mut targets: Vec<(String, String)> = Vec::new();
    for run in &runs {
        let run_id = run
            .get("dag_run_id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let entity_dag = run.get("dag_id").and_then(Value::as_str);
        let target_dag = if dag_id == "~" {
            match entity_dag.filter(|d| *d != "~") {
                Some(d) => d.to_string(),
                None => {
                    return Err(ApiError::bad_request(format!(
                        "When the URL dag_id is '~', every entry must provide a concrete dag_id (missing on dag_run_id: '{run_id}')."
                    )));
                }
            }
        } else {
            let d = entity_dag.unwrap_or(dag_id);
            if d != dag_id {
                return Err(ApiError::bad_request(format!(
                    "Entry dag_id '{d}' does not match the URL dag_id '{dag_id}'."
                )));
            }
            d.to_string()
        };
        if !targets.contains(&(target_dag.clone(), run_id.clone())) {
            targets.push((target_dag, run_id));
        }
    }
    let dry_run = b.get("dry_run").and_then(Value::as_bool).unwrap_or(true);
    let mut one = Map::new();
    for k in [
        "dry_run",
        "only_failed",
        "only_new",
        "run_on_latest_version",
        "note",
    ] {
        if let Some(v) = b.get(k) {
            one.insert(k.to_string(), v.clone());
        }
    }
    one.insert("dry_run".to_string(), json!(dry_run));
    let one_req = with_body(req, &Value::Object(one));
    let mut items = Vec::new();
    for (d, r) in &targets {
        let reply = clear(ctx, store, &one_req, &run_params(p, d, r))?;
        let v: Value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
        if dry_run {
            items.extend(v["task_instances"].as_array().cloned().unwrap_or_default());
        } else {
            items.push(v);
        }
    }
    let key = if dry_run {
        "task_instances"
    } else {
        "dag_runs"
    };
    let n = items.len();
    Ok(Reply::json(200, &json!({key: items, "total_entries": n})))
}

/// `POST /dags/{dag_id}/clearPartitions`: updraft's DAGs are not partitioned, so no run
/// has partition fields to reset: 0 and 0. 404 for an unknown DAG.
fn clear_partitions(
    ctx: &Ctx,
    store: &mut Store,
    req: &Req,
    p: &Params,
) -> Result<Reply, ApiError> {
    let b = body(
        req,
        &[
            field("partition_key", Kind::Str, false, true),
            field("partition_date_start", Kind::DateTime, false, true),
            field("partition_date_end", Kind::DateTime, false, true),
            field("run_id", Kind::Str, false, true),
            field("dry_run", Kind::Bool, false, false),
        ],
    )?;
    let dag_id = p.get("dag_id");
    if ctx.dags.get(store, dag_id)?.is_none() {
        return Err(ApiError::not_found(format!(
            "The Dag with ID: `{dag_id}` was not found"
        )));
    }
    let dry_run = b.get("dry_run").and_then(Value::as_bool).unwrap_or(true);
    Ok(Reply::json(
        200,
        &json!({"dag_runs_cleared": 0, "task_instances_cleared": 0, "dry_run": dry_run}),
    ))
}

/// The `return_value` XComs of `tasks` in the run, by task id: a task's value, or the
/// list of a mapped task's values.
fn results(
    store: &Store,
    dag_id: &str,
    run_id: &str,
    tasks: &[&str],
) -> Result<Map<String, Value>, ApiError> {
    let mut out = Map::new();
    for t in tasks {
        let values = store.xcom_values(dag_id, run_id, t, "return_value")?;
        match values.as_slice() {
            [] => {}
            [(m, v)] if *m < 0 => {
                out.insert((*t).to_string(), v.clone());
            }
            many => {
                out.insert(
                    (*t).to_string(),
                    Value::Array(many.iter().map(|(_, v)| v.clone()).collect()),
                );
            }
        }
    }
    Ok(out)
}

/// `GET .../dagRuns/{dag_run_id}/wait?interval=&result=`: the run's state now, then
/// again every `interval` seconds until it finishes, one JSON object a line; the last,
/// of a finished run, has the `return_value` XComs of the `result` tasks. updraft sends
/// the lines together once the run has finished (or after five minutes), not one by one,
/// and a line only when the state changed.
fn wait(_ctx: &Ctx, store: &mut Store, req: &Req, p: &Params) -> Result<Reply, ApiError> {
    let (dag_id, run_id) = (p.get("dag_id"), p.get("dag_run_id"));
    let interval = match req.query("interval") {
        None => {
            return Err(unprocessable(vec![
                json!({"type": "missing", "loc": ["query", "interval"],
                "msg": "Field required", "input": null}),
            ]));
        }
        Some(v) => match v.parse::<f64>() {
            Ok(x) if x > 0.0 && x.is_finite() => x,
            Ok(_) => {
                return Err(unprocessable(vec![
                    json!({"type": "greater_than", "loc": ["query", "interval"],
                    "msg": "Input should be greater than 0", "input": v, "ctx": {"gt": 0.0}}),
                ]));
            }
            Err(_) => {
                return Err(unprocessable(vec![
                    json!({"type": "float_parsing", "loc": ["query", "interval"],
                    "msg": "Input should be a valid number, unable to parse string as a number", "input": v}),
                ]));
            }
        },
    };
    let tasks: Vec<&str> = req
        .query
        .iter()
        .filter(|(n, _)| n == "result")
        .map(|(_, v)| v.as_str())
        .collect();
    let not_found = || {
        ApiError::not_found(format!(
            "The DagRun with dag_id: `{dag_id}` and run_id: `{run_id}` was not found"
        ))
    };
    let mut run = store.run(dag_id, run_id)?.ok_or_else(not_found)?;
    let line = |state: RunState| json!({"state": state.as_str()}).to_string();
    let mut lines = vec![line(run.state)];
    let step = interval.clamp(0.05, 60.0);
    let mut waited = 0.0;
    while !run.state.is_finished() && waited < WAIT_LIMIT_SECS {
        std::thread::sleep(std::time::Duration::from_secs_f64(step));
        waited += step;
        let now = store.run(dag_id, run_id)?.ok_or_else(not_found)?;
        if now.state != run.state {
            lines.push(line(now.state));
        }
        run = now;
    }
    if run.state.is_finished() {
        let found = results(store, dag_id, run_id, &tasks)?;
        let mut last = json!({"state": run.state.as_str()});
        if !found.is_empty() {
            last["results"] = Value::Object(found);
        }
        // The finished state's line carries the results.
        if lines.last() == Some(&line(run.state)) {
            lines.pop();
        }
        lines.push(last.to_string());
    }
    let mut text = lines.join("\n");
    text.push('\n');
    Ok(Reply::bytes(200, "application/x-ndjson", text.into_bytes()))
}
