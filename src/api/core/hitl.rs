//! Human-in-the-loop details (`hitlDetails`): the requests tasks wait on, listed with
//! Airflow 3.3's filters, shown, and answered (`PATCH`), which resumes the waiting task.

use serde_json::{Value, json};

use super::kit::{Pattern, Patterns, query_bool, query_int, sorted};
use super::kit::{Range, collection, dt, order_keys, path_map_index, path_number, query_all};
use super::views::Views;
use crate::api::http::{ApiError, Method, Reply, Req};
use crate::api::route::{Ctx, Params, Route, guarded};
use crate::auth::Role;
use crate::model::TaskState;
use crate::store::{HitlRow, Store, TiRow};

use Method::{Get, Patch};

/// Human-in-the-loop details.
#[rustfmt::skip]
pub static ROUTES: &[Route] = &[
    guarded(Get, "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/hitlDetails", Role::Viewer, None, "Human-in-the-loop details (`~` for every DAG and run), with filters", list),
    guarded(Get, "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/{map_index}/hitlDetails", Role::Viewer, None, "The human-in-the-loop detail of a task instance", get),
    guarded(Patch, "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/{map_index}/hitlDetails", Role::User, Some("update_hitl_detail"), "Answer a human-in-the-loop request (chosen_options, params_input)", update),
    guarded(Get, "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/{map_index}/hitlDetails/tries/{try_number}", Role::Viewer, None, "The human-in-the-loop detail of one try of a task instance", try_detail),
];

/// Airflow's `BaseHITLDetail` fields; `task_instance` is added by the caller.
fn detail_json(row: &HitlRow) -> Value {
    // A param not in Param form shows as one (Airflow's `get_params` validator).
    let params: serde_json::Map<String, Value> = row
        .params
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    let is_param = v.as_object().is_some_and(|o| {
                        ["description", "schema", "value"]
                            .iter()
                            .all(|f| o.contains_key(*f))
                    });
                    let shown = if is_param {
                        v.clone()
                    } else {
                        json!({"value": v, "description": null, "schema": {}})
                    };
                    (k.clone(), shown)
                })
                .collect()
        })
        .unwrap_or_default();
    json!({
        "options": row.options,
        "subject": row.subject,
        "body": row.body,
        "defaults": row.defaults,
        "multiple": row.multiple,
        "params": params,
        "assigned_users": row.assignees,
        "created_at": dt(Some(row.created_at)),
        "responded_by_user": row.responded_by,
        "responded_at": dt(row.responded_at),
        "chosen_options": row.chosen_options,
        "params_input": row.params_input,
        "response_received": row.response_received(),
    })
}

/// The task instance at the path and its detail, or Airflow's 404s.
fn ti_and_detail(store: &Store, p: &Params) -> Result<(TiRow, HitlRow), ApiError> {
    let (dag_id, run_id, task_id) = (p.get("dag_id"), p.get("dag_run_id"), p.get("task_id"));
    let map_index = path_map_index(p)?;
    let ti = store
        .ti_at(dag_id, run_id, task_id, map_index)?
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "The Task Instance with dag_id: `{dag_id}`, run_id: `{run_id}`, task_id: `{task_id}` and map_index: `{map_index}` was not found"
            ))
        })?;
    let row = store.hitl(&ti.id)?.ok_or_else(|| {
        ApiError::not_found(format!(
            "Human-in-the-loop detail does not exist for Task Instance with id {}",
            ti.id
        ))
    })?;
    Ok((ti, row))
}

/// `GET .../taskInstances/{task_id}/{map_index}/hitlDetails`: Airflow's `HITLDetail`.
pub fn get(_: &Ctx, store: &mut Store, _: &Req, p: &Params) -> Result<Reply, ApiError> {
    let (ti, row) = ti_and_detail(store, p)?;
    let mut out = detail_json(&row);
    out["task_instance"] = Views::new(store).ti(&ti)?;
    Ok(Reply::json(200, &out))
}

/// `GET .../hitlDetails/tries/{try_number}`: the detail of a try. updraft keeps one
/// detail per task instance (its latest try's), so an earlier try's is not found.
pub fn try_detail(_: &Ctx, store: &mut Store, _: &Req, p: &Params) -> Result<Reply, ApiError> {
    let try_number = path_number(p, "try_number")?;
    let (ti, row) = ti_and_detail(store, p)?;
    if ti.try_number != try_number {
        return Err(ApiError::not_found(format!(
            "Human-in-the-loop detail does not exist for try {try_number} of Task Instance with id {}",
            ti.id
        )));
    }
    let mut out = detail_json(&row);
    out["task_instance"] = Views::new(store).try_json(&ti)?;
    Ok(Reply::json(200, &out))
}

/// `PATCH .../hitlDetails`: the caller's answer (`UpdateHITLDetailPayload`), checked as
/// Airflow 3.3 checks it (assigned users 403, an answer already given 409, options not
/// offered or several for a single choice 400); a task waiting for it resumes.
pub fn update(ctx: &Ctx, store: &mut Store, req: &Req, p: &Params) -> Result<Reply, ApiError> {
    let body: Value = serde_json::from_slice(&req.body).map_err(|e| {
        ApiError::with_detail(
            422,
            json!([{"type": "json_invalid", "loc": ["body"], "msg": format!("JSON decode error: {e}"), "input": {}}]),
        )
    })?;
    let chosen: Vec<String> = match &body["chosen_options"] {
        Value::Array(a) if a.iter().all(Value::is_string) && !a.is_empty() => a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        Value::Array(a) if a.is_empty() => {
            return Err(ApiError::with_detail(
                422,
                json!([{"type": "too_short", "loc": ["body", "chosen_options"],
                    "msg": "List should have at least 1 item after validation, not 0",
                    "input": [], "ctx": {"field_type": "List", "min_length": 1, "actual_length": 0}}]),
            ));
        }
        Value::Null => {
            return Err(ApiError::with_detail(
                422,
                json!([{"type": "missing", "loc": ["body", "chosen_options"], "msg": "Field required", "input": body}]),
            ));
        }
        other => {
            return Err(ApiError::with_detail(
                422,
                json!([{"type": "list_type", "loc": ["body", "chosen_options"], "msg": "Input should be a valid list", "input": other}]),
            ));
        }
    };
    let params_input = match &body["params_input"] {
        Value::Null => json!({}),
        v @ Value::Object(_) => v.clone(),
        other => {
            return Err(ApiError::with_detail(
                422,
                json!([{"type": "dict_type", "loc": ["body", "params_input"], "msg": "Input should be a valid dictionary", "input": other}]),
            ));
        }
    };
    let (ti, row) = ti_and_detail(store, p)?;
    if row.response_received() {
        return Err(ApiError::new(
            409,
            format!(
                "Human-in-the-loop detail has already been updated for Task Instance with id {} and is not allowed to write again.",
                ti.id
            ),
        ));
    }
    let user = p.user().map_or("admin", |u| u.name.as_str()).to_string();
    if !row.assignees.is_empty() && !ctx.cfg.auth.all_admins {
        let assigned = row
            .assignees
            .iter()
            .any(|a| a["id"].as_str() == Some(user.as_str()));
        if !assigned {
            return Err(ApiError::new(
                403,
                format!("User={user} (id={user}) is not a respondent for the task."),
            ));
        }
    }
    let mut invalid: Vec<&String> = chosen.iter().filter(|c| !row.options.contains(c)).collect();
    invalid.sort();
    invalid.dedup();
    if !invalid.is_empty() {
        let mut allowed: Vec<&String> = row.options.iter().collect();
        allowed.sort();
        let list = |v: &[&String]| {
            format!(
                "[{}]",
                v.iter()
                    .map(|s| crate::py::repr_str(s))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        return Err(ApiError::bad_request(format!(
            "Invalid options {}; allowed options are {}.",
            list(&invalid),
            list(&allowed)
        )));
    }
    if !row.multiple && chosen.len() > 1 {
        return Err(ApiError::bad_request(
            "Multiple options chosen but this Human-in-the-loop task accepts only a single option.",
        ));
    }
    let by = json!({"id": user, "name": user});
    let now = ctx.clock.now();
    let answered =
        store.write(|tx| tx.respond_hitl(&ti.id, &chosen, &params_input, Some(&by), now))?;
    let Some(answered) = answered else {
        return Err(ApiError::new(
            409,
            format!(
                "Human-in-the-loop detail has already been updated for Task Instance with id {} and is not allowed to write again.",
                ti.id
            ),
        ));
    };
    ctx.wake_scheduler();
    Ok(Reply::json(
        200,
        &json!({
            "responded_by": answered.responded_by,
            "responded_at": dt(answered.responded_at),
            "chosen_options": answered.chosen_options,
            "params_input": answered.params_input,
        }),
    ))
}

const ORDER: &[&str] = &[
    "ti_id",
    "subject",
    "responded_at",
    "created_at",
    "responded_by_user_id",
    "responded_by_user_name",
    "dag_id",
    "run_id",
    "task_display_name",
    "run_after",
    "rendered_map_index",
    "task_instance_operator",
    "task_instance_state",
];

/// `GET /dags/{dag_id}/dagRuns/{dag_run_id}/hitlDetails`: Airflow's `HITLDetailCollection`,
/// filtered, ordered and paged.
pub fn list(ctx: &Ctx, store: &mut Store, req: &Req, p: &Params) -> Result<Reply, ApiError> {
    let (dag_id, run_id) = (p.get("dag_id"), p.get("dag_run_id"));
    let scope = |v: &str| (v != "~").then(|| v.to_string());
    let (limit, offset) = super::kit::page(ctx, req)?;
    let order = order_keys(req, ORDER, "ti_id")?;
    let dag_pattern = Patterns::new(req, "dag_id");
    let task_pattern = Patterns::new(req, "task_id");
    let task_id = req.query("task_id");
    let map_index = query_int(req, "map_index")?;
    let states: Vec<&str> = query_all(req, "state");
    let received = query_bool(req, "response_received")?;
    let by_ids = query_all(req, "responded_by_user_id");
    let by_names = query_all(req, "responded_by_user_name");
    let subject = req.query("subject_search").map(Pattern::search);
    let body_search = req.query("body_search").map(Pattern::search);
    let created = Range::new(req, "created_at")?;
    let rows = store.hitls(scope(dag_id).as_deref(), scope(run_id).as_deref())?;
    let mut views = Views::new(store);
    let mut items = Vec::new();
    let mut keys = Vec::new();
    for row in rows {
        let Some(ti) = store.ti(&row.ti_id)? else {
            continue;
        };
        let state = ti.state.map_or("none", TaskState::as_str);
        let keep = dag_pattern.keep(&ti.dag_id)
            && task_pattern.keep(&ti.task_id)
            && task_id.is_none_or(|t| t == ti.task_id)
            && map_index.is_none_or(|m| m == ti.map_index)
            && (states.is_empty() || states.contains(&state))
            && received.is_none_or(|r| r == row.response_received())
            && (by_ids.is_empty()
                || by_ids
                    .iter()
                    .any(|u| row.responded_by.as_ref().is_some_and(|b| b["id"] == *u)))
            && (by_names.is_empty()
                || by_names
                    .iter()
                    .any(|u| row.responded_by.as_ref().is_some_and(|b| b["name"] == *u)))
            && subject.as_ref().is_none_or(|s| s.matches(&row.subject))
            && body_search
                .as_ref()
                .is_none_or(|s| row.body.as_deref().is_some_and(|b| s.matches(b)))
            && created.holds(Some(row.created_at));
        if !keep {
            continue;
        }
        let ti_json = views.ti(&ti)?;
        keys.push(json!({
            "ti_id": row.ti_id, "subject": row.subject, "responded_at": dt(row.responded_at),
            "created_at": dt(Some(row.created_at)),
            "responded_by_user_id": row.responded_by.as_ref().map(|b| b["id"].clone()),
            "responded_by_user_name": row.responded_by.as_ref().map(|b| b["name"].clone()),
            "dag_id": ti.dag_id, "run_id": ti.run_id, "task_display_name": ti.task_id,
            "run_after": ti_json["run_after"], "rendered_map_index": ti.rendered_map_index,
            "task_instance_operator": ti.operator, "task_instance_state": state,
        }));
        let mut out = detail_json(&row);
        out["task_instance"] = ti_json;
        items.push(out);
    }
    let items = sorted(items, keys, &order, "ti_id");
    Ok(Reply::json(
        200,
        &collection("hitl_details", items, limit, offset),
    ))
}
