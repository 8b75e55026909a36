//! The Execution API's human-in-the-loop routes (`/execution/hitlDetails/{ti_id}`), the
//! `awaiting_input` state transition and the resume part of a run context: what a HITL
//! task's supervisor calls, with Airflow 3.3's shapes.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{body, caller, conflict, not_found, with_token};
use crate::api::http::{ApiError, Reply, Req};
use crate::api::route::{Ctx, Params};
use crate::model::TaskState;
use crate::store::{HitlRequest, HitlRow, Store, TiRow};

#[derive(Deserialize)]
struct DetailRequest {
    options: Vec<String>,
    subject: String,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    defaults: Option<Vec<String>>,
    #[serde(default)]
    multiple: bool,
    #[serde(default)]
    params: serde_json::Map<String, Value>,
    #[serde(default)]
    assigned_users: Vec<User>,
}

#[derive(Deserialize, serde::Serialize)]
struct User {
    id: String,
    name: String,
}

/// `HITLDetailRequest` as Airflow answers it.
fn request_json(row: &HitlRow) -> Value {
    json!({
        "ti_id": row.ti_id, "options": row.options, "subject": row.subject, "body": row.body,
        "defaults": row.defaults, "multiple": row.multiple, "params": row.params,
        "assigned_users": row.assignees,
    })
}

/// `HITLDetailResponse` of the Execution API.
fn response_json(row: &HitlRow) -> Value {
    json!({
        "response_received": row.response_received(),
        "responded_by_user": row.responded_by,
        "responded_at": row.responded_at.map(crate::store::ts),
        "chosen_options": row.chosen_options.clone().unwrap_or_default(),
        "params_input": row.params_input,
    })
}

fn missing() -> ApiError {
    not_found(
        "HITLDetail not found. This happens most likely due to clearing task instance before receiving response."
            .to_string(),
    )
}

/// `POST /execution/hitlDetails/{task_instance_id}`: writes the task's request (Airflow's
/// `upsert_hitl_detail`). 201.
pub fn upsert(ctx: &Ctx, store: &mut Store, req: &Req, p: &Params) -> Result<Reply, ApiError> {
    let id = p.get("task_instance_id");
    let c = caller(ctx, store, req, Some(id))?;
    let b: DetailRequest = body(req)?;
    if b.options.is_empty() {
        return Err(ApiError::new(
            422,
            "options: List should have at least 1 item",
        ));
    }
    let params = Value::Object(b.params);
    let users: Vec<Value> = b
        .assigned_users
        .iter()
        .map(|u| json!({"id": u.id, "name": u.name}))
        .collect();
    let request = HitlRequest {
        options: &b.options,
        subject: &b.subject,
        body: b.body.as_deref(),
        defaults: b.defaults.as_deref(),
        multiple: b.multiple,
        params: &params,
        assigned_users: &users,
    };
    let now = ctx.clock.now();
    let row = store.write(|tx| tx.upsert_hitl(id, &request, now))?;
    Ok(with_token(
        ctx,
        Reply::json(201, &request_json(&row)),
        &c,
        c.ti.state,
    ))
}

/// `GET /execution/hitlDetails/{task_instance_id}`: the answer so far.
pub fn get(ctx: &Ctx, store: &mut Store, req: &Req, p: &Params) -> Result<Reply, ApiError> {
    let id = p.get("task_instance_id");
    let c = caller(ctx, store, req, Some(id))?;
    let row = store.hitl(id)?.ok_or_else(missing)?;
    Ok(with_token(
        ctx,
        Reply::json(200, &response_json(&row)),
        &c,
        c.ti.state,
    ))
}

#[derive(Deserialize)]
struct Answer {
    chosen_options: Vec<String>,
    #[serde(default)]
    params_input: serde_json::Map<String, Value>,
}

/// `PATCH /execution/hitlDetails/{task_instance_id}`: the answer written by the task's
/// side (Airflow's trigger writes a timeout's defaults this way), by nobody. 409 when
/// answered already.
pub fn update(ctx: &Ctx, store: &mut Store, req: &Req, p: &Params) -> Result<Reply, ApiError> {
    let id = p.get("task_instance_id");
    let c = caller(ctx, store, req, Some(id))?;
    let b: Answer = body(req)?;
    if b.chosen_options.is_empty() {
        return Err(ApiError::new(
            422,
            "chosen_options: List should have at least 1 item",
        ));
    }
    if store.hitl(id)?.is_none() {
        return Err(missing());
    }
    let now = ctx.clock.now();
    let input = Value::Object(b.params_input);
    let row = store.write(|tx| tx.respond_hitl(id, &b.chosen_options, &input, None, now))?;
    let Some(row) = row else {
        return Err(ApiError::new(
            409,
            format!("Human-in-the-loop detail for Task Instance with id {id} already exists."),
        ));
    };
    ctx.wake_scheduler();
    Ok(with_token(
        ctx,
        Reply::json(200, &response_json(&row)),
        &c,
        c.ti.state,
    ))
}

#[derive(Deserialize)]
struct ParkBody {
    #[serde(default)]
    timeout: Option<Value>,
    #[serde(default)]
    next_method: Option<String>,
}

/// `PATCH /execution/task-instances/{id}/state` with `awaiting_input`: the running try
/// parks until its answer comes (or `timeout`, seconds or an ISO 8601 duration, passes).
/// 204; 409 when it is not running.
pub fn park(ctx: &Ctx, store: &mut Store, req: &Req, p: &Params) -> Result<Reply, ApiError> {
    let id = p.get("task_instance_id");
    let c = caller(ctx, store, req, Some(id))?;
    let b: ParkBody = body(req)?;
    if b.next_method.as_deref().is_none_or(str::is_empty) {
        return Err(ApiError::new(422, "next_method: Field required"));
    }
    let timeout = match &b.timeout {
        None | Some(Value::Null) => None,
        Some(v) => Some(seconds(v).ok_or_else(|| {
            ApiError::new(
                422,
                format!("timeout must be seconds or an ISO 8601 duration, not {v}"),
            )
        })?),
    };
    let now = ctx.clock.now();
    let until: Option<DateTime<Utc>> = timeout
        .and_then(|s| chrono::Duration::try_milliseconds((s * 1000.0) as i64).map(|d| now + d));
    if store.hitl(id)?.is_none() {
        return Err(missing());
    }
    let parked = store.write(|tx| tx.park_hitl(id, c.ti.try_number, until, now))?;
    let Some(state) = parked else {
        return Err(conflict(
            "invalid_state",
            "TI was not in the running state",
            c.ti.state,
        ));
    };
    ctx.wake_scheduler();
    Ok(with_token(
        ctx,
        Reply::bytes(204, "application/json", Vec::new()),
        &c,
        TaskState::parse(state),
    ))
}

/// Seconds from a number or an ISO 8601 duration (`PT1H2M3.5S`, `P1DT2H`), as pydantic
/// reads a `timedelta`.
fn seconds(v: &Value) -> Option<f64> {
    if let Some(n) = v.as_f64() {
        return (n >= 0.0).then_some(n);
    }
    let text = v.as_str()?.strip_prefix('P')?;
    let (date, time) = text.split_once('T').unwrap_or((text, ""));
    let mut total = 0.0;
    for (part, units) in [
        (date, &[('W', 604_800.0), ('D', 86_400.0)][..]),
        (time, &[('H', 3_600.0), ('M', 60.0), ('S', 1.0)][..]),
    ] {
        let mut num = String::new();
        for ch in part.chars() {
            if ch.is_ascii_digit() || ch == '.' {
                num.push(ch);
                continue;
            }
            let unit = units.iter().find(|(u, _)| *u == ch)?.1;
            total += num.parse::<f64>().ok()? * unit;
            num.clear();
        }
        if !num.is_empty() {
            return None;
        }
    }
    Some(total)
}

/// The resume part of a run context (Airflow's `next_method`, `next_kwargs`): set when
/// this try parked and its answer (or timeout) came.
pub(super) fn resume_context(
    store: &Store,
    ti: &TiRow,
    context: &mut Value,
) -> Result<(), ApiError> {
    let Some(row) = store.hitl(&ti.id)? else {
        return Ok(());
    };
    if let (Some(event), Some(t)) = (&row.resume_event, row.resume_try)
        && t == ti.try_number
    {
        context["next_method"] = json!("execute_complete");
        context["next_kwargs"] = json!({"event": event});
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::seconds;
    use serde_json::json;

    #[test]
    fn timeouts_read_as_pydantic_reads_a_timedelta() {
        assert_eq!(seconds(&json!(5)), Some(5.0));
        assert_eq!(seconds(&json!("PT1H2M3.5S")), Some(3723.5));
        assert_eq!(seconds(&json!("P1DT2H")), Some(93_600.0));
        assert_eq!(seconds(&json!("PT")), Some(0.0));
        assert_eq!(seconds(&json!("1H")), None);
        assert_eq!(seconds(&json!(-1)), None);
        assert_eq!(seconds(&json!("PT5X")), None);
    }
}
