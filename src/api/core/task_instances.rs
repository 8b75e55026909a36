//! Task instances: lists (`~` for every DAG and run), one task instance, setting its
//! state and note by hand (with a dry run), its tries, the log of a try, its XComs, and
//! clearing task instances so they run again.
//!
//! Logs are read from the files the task supervisor writes; a continuation token
//! (signed, so only tokens this server made are taken) holds the byte offset read so
//! far, so a client following a running task gets only what was appended since.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use chrono::Utc;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Map, Value, json};
use sha2::Sha512;

use super::kit::{
    Paging, apply_order, body_value_error, flag, long_note, masked, naive_times, number_ranges,
    paged, paging, patterns, query_ints, state_filter, text, time, time_ranges, unprocessable,
};
use super::views::{Dags, Views, dag_not_found};
use super::{Kind, body, dt, field, invalid, orders, parse_datetime, query_all, query_bool};
use crate::api::{ApiError, Ctx, Method, Params, Reply, Req, Route, guarded};
use crate::auth::Role;
use crate::executor::supervise::log_path;
use crate::model::TaskState;
use crate::ops;
use crate::store::q_runs::{Bound, ListQuery, Op, XcomRow};
use crate::store::{RunRow, Store, TiRow};

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
    guarded(Get, "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/logs/{try_number}", Role::Viewer, None, "The log of a try: JSON, NDJSON or text/plain; a continuation token follows a running task", logs),
    guarded(Get, "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/xcomEntries", Role::Viewer, None, "XComs of a task instance (`~` for every DAG, run and task)", xcoms),
    guarded(Get, "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/xcomEntries/{xcom_key}", Role::Viewer, None, "One XCom with its value", xcom),
    guarded(Post, "/api/v2/dags/{dag_id}/clearTaskInstances", Role::User, Some("post_clear_task_instances"), "Clear task instances so they run again (dry_run, the default, only lists them)", clear),
];

/// Task instance states as Airflow lists them (some never occur in updraft).
const TI_STATES: &[&str] = &[
    "removed",
    "scheduled",
    "queued",
    "running",
    "success",
    "restarting",
    "failed",
    "up_for_retry",
    "up_for_reschedule",
    "upstream_failed",
    "skipped",
    "deferred",
    "awaiting_input",
];
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
const XCOM_ORDER: &[&str] = &[
    "key",
    "dag_id",
    "run_id",
    "task_id",
    "map_index",
    "timestamp",
    "run_after",
];
/// The states Airflow lets a user set by hand.
const SETTABLE: &[&str] = &["success", "failed", "skipped"];
/// How long a continuation token's signature is, in bytes.
const TOKEN_MAC_LEN: usize = 16;

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
    time_ranges(
        req,
        &mut q,
        &[
            "run_after",
            "logical_date",
            "start_date",
            "end_date",
            "updated_at",
        ],
    )?;
    number_ranges(req, &mut q, "duration")?;
    patterns(
        req,
        &mut q,
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
    if let (Some(group), Some(dag)) = (req.query("task_group_id"), &dag) {
        let inside = format!("{group}.");
        q.any_of(
            "task_id",
            dag.dag
                .tasks
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
    let keys = orders(
        &query_all(req, "order_by"),
        TI_ORDER,
        &[("map_index", false)],
        &[],
    )?;
    // Ties keep the order the run's task instances were made in: the DAG's task order.
    apply_order(&mut q, &keys, "rowid");
    q.limit = Some(paging.limit);
    q.offset = paging.offset;
    let (rows, total) = store.list_tis(&q)?;
    let items = Views::new(store).all(&rows)?;
    Ok(Reply::json(
        200,
        &paged("task_instances", items, total, &paging),
    ))
}

/// The task instance named by the path, or Airflow's 404.
fn the_ti(store: &Store, p: &Params) -> Result<TiRow, ApiError> {
    let (dag_id, run_id, task_id) = (p.get("dag_id"), p.get("dag_run_id"), p.get("task_id"));
    store.ti_by_key(dag_id, run_id, task_id)?.ok_or_else(|| {
        ApiError::not_found(format!(
            "The Task Instance with dag_id: `{dag_id}`, run_id: `{run_id}` and task_id: `{task_id}` was not found"
        ))
    })
}

fn get(_ctx: &Ctx, store: &mut Store, _req: &Req, p: &Params) -> Result<Reply, ApiError> {
    let ti = the_ti(store, p)?;
    Ok(Reply::json(200, &Views::new(store).ti(&ti)?))
}

/// `GET .../taskInstances/{task_id}/dependencies`: what stops a task instance from
/// running, as Airflow's dependency checks word it: its trigger rule while upstream
/// tasks have not settled it, its retry delay, its run or DAG being paused. Empty once it
/// runs or has run.
fn dependencies(_ctx: &Ctx, store: &mut Store, _req: &Req, p: &Params) -> Result<Reply, ApiError> {
    use crate::scheduler::rules::{self, Decision, Upstream};
    let ti = the_ti(store, p)?;
    let mut deps = Vec::new();
    let waiting = matches!(
        ti.state,
        None | Some(TaskState::Scheduled) | Some(TaskState::UpForRetry)
    );
    if waiting {
        let dag = store.dag(&ti.dag_id)?;
        if let Some(row) = &dag {
            if row.is_paused {
                deps.push(serde_json::json!({"name": "Dag Not Paused", "reason": format!("Task's DAG '{}' is paused.", ti.dag_id)}));
            }
            if let Some(task) = row.dag.task(&ti.task_id) {
                let states: std::collections::HashMap<String, Option<TaskState>> = store
                    .tis_of_run(&ti.dag_id, &ti.run_id)?
                    .into_iter()
                    .map(|t| (t.task_id, t.state))
                    .collect();
                let up = Upstream::tally(
                    task.upstream
                        .iter()
                        .map(|u| states.get(u).copied().flatten()),
                );
                if ti.state.is_none() && rules::evaluate(task.trigger_rule, &up) == Decision::Wait {
                    deps.push(serde_json::json!({
                        "name": "Trigger Rule",
                        "reason": format!(
                            "Task's trigger rule '{}' requires its upstream tasks to settle it; {} of {} are done ({} succeeded, {} failed, {} skipped).",
                            task.trigger_rule, up.done, up.total, up.success, up.failed + up.upstream_failed, up.skipped
                        ),
                    }));
                }
            }
        }
        if let (Some(TaskState::UpForRetry), Some(at)) = (ti.state, ti.next_retry_at)
            && at > chrono::Utc::now()
        {
            deps.push(serde_json::json!({"name": "Not In Retry Period", "reason": format!(
                "Task is not ready for retry yet but will be retried automatically. Current date is {} and task will be retried at {}.",
                crate::store::ts(chrono::Utc::now()), crate::store::ts(at))}));
        }
    }
    Ok(Reply::json(200, &serde_json::json!({"dependencies": deps})))
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

/// The DAG and the task instance a patch names, with Airflow's 404s.
fn patch_target(store: &Store, p: &Params) -> Result<TiRow, ApiError> {
    let (dag_id, run_id, task_id) = (p.get("dag_id"), p.get("dag_run_id"), p.get("task_id"));
    let dag = store.dag(dag_id)?.ok_or_else(|| dag_not_found(dag_id))?;
    if dag.dag.task(task_id).is_none() {
        return Err(ApiError::not_found(format!(
            "Task '{task_id}' not found in Dag '{dag_id}'"
        )));
    }
    store.ti_by_key(dag_id, run_id, task_id)?.ok_or_else(|| {
        ApiError::not_found(format!(
            "The Task Instance with dag_id: `{dag_id}`, run_id: `{run_id}`, task_id: `{task_id}` and map_index: `None` was not found"
        ))
    })
}

fn relatives(b: &Map<String, Value>) -> ops::Relatives {
    ops::Relatives {
        upstream: flag(b, "include_upstream", false),
        downstream: flag(b, "include_downstream", false),
        future: flag(b, "include_future", false),
        past: flag(b, "include_past", false),
    }
}

fn patch(ctx: &Ctx, store: &mut Store, req: &Req, p: &Params) -> Result<Reply, ApiError> {
    let (b, state) = patch_body(req)?;
    let ti = patch_target(store, p)?;
    let fields = masked(req, &b);
    let mask_given = !query_all(req, "update_mask").is_empty();
    if fields.contains(&"note") && (mask_given || b.get("note").is_some_and(|n| !n.is_null())) {
        let note = text(&b, "note").filter(|n| !n.is_empty());
        store.write(|tx| tx.set_ti_note(&ti.id, note))?;
    }
    if fields.contains(&"new_state")
        && let Some(to) = state
    {
        let changed = ops::set_ti_states(
            store,
            &ti.dag_id,
            &ti.run_id,
            &ti.task_id,
            to,
            relatives(&b),
            true,
            Utc::now(),
        )?;
        if changed.is_empty() {
            return Err(ApiError::new(
                409,
                format!("Task id {} is already in {to} state", ti.task_id),
            ));
        }
        ctx.wake_scheduler();
    }
    let ti = the_ti(store, p)?;
    let items = vec![Views::new(store).ti(&ti)?];
    Ok(Reply::json(200, &collection(items)))
}

fn patch_dry_run(_ctx: &Ctx, store: &mut Store, req: &Req, p: &Params) -> Result<Reply, ApiError> {
    let (b, state) = patch_body(req)?;
    let ti = patch_target(store, p)?;
    let would = match state.filter(|_| masked(req, &b).contains(&"new_state")) {
        Some(to) => ops::set_ti_states(
            store,
            &ti.dag_id,
            &ti.run_id,
            &ti.task_id,
            to,
            relatives(&b),
            false,
            Utc::now(),
        )?,
        None => vec![ti],
    };
    let items = Views::new(store).all(&would)?;
    Ok(Reply::json(200, &collection(items)))
}

/// Every try of a task instance, oldest first: the finished ones kept in history, and
/// the current one as it is now (which also reflects a state set by hand since). A
/// task instance cleared and not yet started again shows its tries from history only.
fn tries_of(store: &Store, p: &Params) -> Result<Vec<TiRow>, ApiError> {
    let (dag_id, run_id, task_id) = (p.get("dag_id"), p.get("dag_run_id"), p.get("task_id"));
    let history = store.ti_history(dag_id, run_id, task_id)?;
    let Some(current) = store.ti_by_key(dag_id, run_id, task_id)? else {
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
            "The Task Instance with dag_id: `{}`, run_id: `{}`, task_id: `{}` and map_index: `-1` was not found",
            p.get("dag_id"),
            p.get("dag_run_id"),
            p.get("task_id")
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

/// A path segment as a non-negative integer, or pydantic's 422 naming it.
fn path_number(p: &Params, name: &str) -> Result<u32, ApiError> {
    let v = p.get(name);
    let n: i64 = v.parse().map_err(|_| {
        invalid(
            &["path", name],
            "int_parsing",
            "Input should be a valid integer, unable to parse string as an integer",
            json!(v),
        )
    })?;
    u32::try_from(n).map_err(|_| ApiError {
        status: 422,
        detail: json!([{"type": "greater_than_equal", "loc": ["path", name],
            "msg": "Input should be greater than or equal to 0", "input": v, "ctx": {"ge": 0}}]),
    })
}

fn one_try(_ctx: &Ctx, store: &mut Store, _req: &Req, p: &Params) -> Result<Reply, ApiError> {
    let n = path_number(p, "task_try_number")?;
    let found = tries_of(store, p)?
        .into_iter()
        .rfind(|t| t.try_number == n)
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "The Task Instance with dag_id: `{}`, run_id: `{}`, task_id: `{}`, try_number: `{n}` and map_index: `-1` was not found",
                p.get("dag_id"),
                p.get("dag_run_id"),
                p.get("task_id")
            ))
        })?;
    Ok(Reply::json(200, &Views::new(store).try_json(&found)?))
}

/// `map_index` from the query string (default -1, at least -1), or a 422.
fn query_map_index(req: &Req) -> Result<Option<i64>, ApiError> {
    let Some(v) = req.query("map_index") else {
        return Ok(None);
    };
    let n: i64 = v.trim().parse().map_err(|_| {
        invalid(
            &["query", "map_index"],
            "int_parsing",
            "Input should be a valid integer, unable to parse string as an integer",
            json!(v),
        )
    })?;
    if n < -1 {
        return Err(ApiError {
            status: 422,
            detail: json!([{"type": "greater_than_equal", "loc": ["query", "map_index"],
                "msg": "Input should be greater than or equal to -1", "input": v, "ctx": {"ge": -1}}]),
        });
    }
    Ok(Some(n))
}

/// The log formats a client may ask for.
#[derive(Debug, Clone, Copy, PartialEq)]
enum LogFormat {
    Json,
    Ndjson,
    Text,
}

/// Picks the log format from `Accept`: the first of its types updraft serves, JSON
/// for `*/*` or none. Airflow 3.3.2 serves no `text/plain`; updraft adds it.
fn log_format(req: &Req) -> Result<LogFormat, ApiError> {
    let Some(accept) = req.header("accept").filter(|a| !a.trim().is_empty()) else {
        return Ok(LogFormat::Json);
    };
    for part in accept.split(',') {
        let mime = part.split(';').next().unwrap_or("").trim();
        match mime.to_ascii_lowercase().as_str() {
            "*/*" | "application/json" | "application/*" => return Ok(LogFormat::Json),
            "application/x-ndjson" => return Ok(LogFormat::Ndjson),
            "text/plain" | "text/*" => return Ok(LogFormat::Text),
            _ => {}
        }
    }
    Err(ApiError::new(
        406,
        "Only application/json, application/x-ndjson or text/plain is supported",
    ))
}

/// What a continuation token signs: the log it belongs to and the offset read.
fn token_payload(p: &Params, try_number: u32, offset: u64) -> String {
    format!(
        "updraft-log\0{}\0{}\0{}\0{try_number}\0{offset}",
        p.get("dag_id"),
        p.get("dag_run_id"),
        p.get("task_id")
    )
}

fn token_mac(ctx: &Ctx, payload: &str) -> Vec<u8> {
    let mut m =
        <Hmac<Sha512> as KeyInit>::new_from_slice(&ctx.secret).expect("HMAC takes any key length");
    m.update(payload.as_bytes());
    m.finalize().into_bytes()[..TOKEN_MAC_LEN].to_vec()
}

fn make_token(ctx: &Ctx, p: &Params, try_number: u32, offset: u64) -> String {
    let mac = token_mac(ctx, &token_payload(p, try_number, offset));
    format!("{}.{}", B64.encode(offset.to_string()), B64.encode(mac))
}

/// The offset a token carries, if this server signed it for this log.
fn read_token(ctx: &Ctx, p: &Params, try_number: u32, token: &str) -> Result<u64, ApiError> {
    let bad =
        || ApiError::bad_request("Bad Signature. Please use only the tokens provided by the API.");
    let (offset, mac) = token.split_once('.').ok_or_else(bad)?;
    let offset: u64 = B64
        .decode(offset)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.parse().ok())
        .ok_or_else(bad)?;
    let mac = B64.decode(mac).map_err(|_| bad())?;
    let want = token_mac(ctx, &token_payload(p, try_number, offset));
    let same =
        mac.len() == want.len() && mac.iter().zip(&want).fold(0u8, |a, (x, y)| a | (x ^ y)) == 0;
    if same { Ok(offset) } else { Err(bad()) }
}

/// One log line as a structured message: the supervisor's own lines
/// (`[time] {updraft} text`) with their time and a level, the task's output as is.
fn log_message(line: &str) -> Value {
    if let Some((stamp, text)) = line
        .strip_prefix('[')
        .and_then(|rest| rest.split_once("] {updraft} "))
        && let Some(t) = parse_datetime(stamp)
    {
        let failed = ["final state: failed", "final state: up_for_retry"].contains(&text)
            || text.starts_with("cannot ")
            || text.starts_with("could not ")
            || text.starts_with("execution_timeout");
        return json!({"timestamp": dt(Some(t)), "event": text, "level": if failed { "error" } else { "info" }});
    }
    json!({"event": line})
}

/// Reads the log from `start`; while the try may still write, only whole lines, so the
/// next read starts at a line. Returns the bytes and where the next read starts.
fn read_from(
    path: &std::path::Path,
    start: u64,
    whole_lines: bool,
) -> std::io::Result<(Vec<u8>, u64)> {
    let mut f = std::fs::File::open(path)?;
    let len = f.metadata()?.len();
    let start = start.min(len);
    f.seek(SeekFrom::Start(start))?;
    let mut buf = Vec::new();
    f.take(len - start).read_to_end(&mut buf)?;
    if whole_lines {
        let keep = buf.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        buf.truncate(keep);
    }
    let next = start + buf.len() as u64;
    Ok((buf, next))
}

fn logs(ctx: &Ctx, store: &mut Store, req: &Req, p: &Params) -> Result<Reply, ApiError> {
    let (dag_id, run_id, task_id) = (p.get("dag_id"), p.get("dag_run_id"), p.get("task_id"));
    let n = path_number(p, "try_number")?;
    let format = log_format(req)?;
    let full = query_bool(req, "full_content")?.unwrap_or(false);
    let map_index = query_map_index(req)?.unwrap_or(-1);
    let token = match req.query("token").filter(|t| !t.is_empty()) {
        Some(t) => Some(read_token(ctx, p, n, t)?),
        None => None,
    };
    let not_found = || ApiError::not_found("TaskInstance not found");
    if map_index != -1 {
        return Err(not_found());
    }
    let current = store.ti_by_key(dag_id, run_id, task_id)?;
    let (ti, is_current) = match current {
        Some(ti) if ti.try_number == n => (ti, true),
        _ => match store
            .ti_history(dag_id, run_id, task_id)?
            .into_iter()
            .find(|h| h.try_number == n)
        {
            Some(h) => (h, false),
            None => return Err(not_found()),
        },
    };
    // A try that may still write: the current one, waiting to run or running.
    let live = is_current
        && matches!(
            ti.state,
            Some(
                TaskState::Scheduled
                    | TaskState::Queued
                    | TaskState::Running
                    | TaskState::Restarting
                    | TaskState::Deferred
                    | TaskState::UpForReschedule
            )
        );
    let path = log_path(&ctx.cfg.logging.base_log_folder, dag_id, run_id, task_id, n);
    let start = if full { 0 } else { token.unwrap_or(0) };
    let mut messages = Vec::new();
    let (raw, next) = if n == 0 {
        let skipped = matches!(
            ti.state,
            Some(TaskState::Skipped | TaskState::UpstreamFailed)
        );
        messages.push(if skipped {
            json!({"event": "Task was skipped, no logs available."})
        } else {
            json!({"event": "Error fetching the logs. Try number 0 is invalid.", "level": "error"})
        });
        (Vec::new(), 0)
    } else {
        match read_from(&path, start, live) {
            Ok(read) => read,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && live => (Vec::new(), start),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ApiError::not_found(format!(
                    "The log of try {n} of task instance {task_id} does not exist"
                )));
            }
            Err(e) => return Err(crate::error::Error::io(&path, e).into()),
        }
    };
    let token = (live && n > 0).then(|| make_token(ctx, p, n, next));
    if format == LogFormat::Text {
        let mut reply = Reply::bytes(200, "text/plain; charset=utf-8", raw);
        if let Some(t) = &token {
            reply = reply.with_header("Airflow-Continuation-Token", t);
        }
        return Ok(reply);
    }
    if start == 0 && n > 0 {
        messages.extend([
            json!({"event": "::group::Log message source details"}),
            json!({"event": path.display().to_string()}),
            json!({"event": "::endgroup::"}),
        ]);
    }
    let text = String::from_utf8_lossy(&raw);
    messages.extend(
        text.lines()
            .map(|l| log_message(l.strip_suffix('\r').unwrap_or(l))),
    );
    if format == LogFormat::Ndjson {
        let mut out = Vec::new();
        for m in &messages {
            // As Airflow streams them: `timestamp` first, null when a line has none.
            let mut line = Map::new();
            line.insert("timestamp".into(), m["timestamp"].clone());
            if let Value::Object(fields) = m {
                line.extend(
                    fields
                        .iter()
                        .filter(|(k, _)| *k != "timestamp")
                        .map(|(k, v)| (k.clone(), v.clone())),
                );
            }
            out.extend(serde_json::to_vec(&Value::Object(line)).expect("JSON serializes"));
            out.push(b'\n');
        }
        let mut reply = Reply::bytes(200, "application/x-ndjson", out);
        if let Some(t) = &token {
            reply = reply.with_header("Airflow-Continuation-Token", t);
        }
        return Ok(reply);
    }
    Ok(Reply::json(
        200,
        &json!({"content": messages, "continuation_token": token}),
    ))
}

/// An XCom as Airflow's `XComResponse` shows it (the list leaves out the value).
fn xcom_json(
    dags: &mut Dags,
    runs: &mut HashMap<(String, String), Option<RunRow>>,
    store: &Store,
    x: &XcomRow,
) -> Result<Value, ApiError> {
    let key = (x.dag_id.clone(), x.run_id.clone());
    if !runs.contains_key(&key) {
        runs.insert(key.clone(), store.run(&x.dag_id, &x.run_id)?);
    }
    let run = runs.get(&key).and_then(Option::as_ref);
    Ok(json!({
        "key": x.key,
        "timestamp": dt(Some(x.timestamp)),
        "logical_date": dt(run.and_then(|r| r.logical_date)),
        "map_index": x.map_index,
        "task_id": x.task_id,
        "dag_id": x.dag_id,
        "run_id": x.run_id,
        "dag_display_name": dags.display(&x.dag_id)?,
        "task_display_name": x.task_id,
        "run_after": dt(Some(run.map_or(x.timestamp, |r| r.run_after))),
    }))
}

fn xcoms(ctx: &Ctx, store: &mut Store, req: &Req, p: &Params) -> Result<Reply, ApiError> {
    let (limit, offset) = super::page(ctx, req)?;
    let mut q = ListQuery::default();
    for (param, field) in [
        ("dag_id", "dag_id"),
        ("dag_run_id", "run_id"),
        ("task_id", "task_id"),
    ] {
        let v = p.get(param);
        if v != "~" {
            q.any_of(field, vec![Some(v.to_string())]);
        }
    }
    if let Some(k) = req.query("xcom_key") {
        q.any_of("key", vec![Some(k.to_string())]);
    }
    if let Some(m) = query_map_index(req)? {
        q.any_int("map_index", vec![m]);
    }
    let filter = query_ints(req, "map_index_filter")?;
    if let Some(m) = filter.first() {
        q.any_int("map_index", vec![*m]);
    }
    patterns(
        req,
        &mut q,
        &[
            ("xcom_key", "key"),
            ("dag_display_name", "dag_display_name"),
            ("run_id", "run_id"),
            ("task_id", "task_id"),
        ],
    );
    time_ranges(req, &mut q, &["logical_date", "run_after"])?;
    let keys = orders(
        &query_all(req, "order_by"),
        XCOM_ORDER,
        &[
            ("dag_id", false),
            ("task_id", false),
            ("run_id", false),
            ("map_index", false),
            ("key", false),
        ],
        &[],
    )?;
    apply_order(&mut q, &keys, "rowid");
    q.limit = Some(limit);
    q.offset = offset;
    let (rows, total) = store.list_xcoms(&q)?;
    let mut dags = Dags::new(store);
    let mut runs = HashMap::new();
    let items = rows
        .iter()
        .map(|x| xcom_json(&mut dags, &mut runs, store, x))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Reply::json(
        200,
        &json!({"xcom_entries": items, "total_entries": total}),
    ))
}

/// Python's `str()` of a JSON value, as Airflow's `stringify=true` shows values.
fn py_str(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => py_repr(other),
    }
}

fn py_repr(v: &Value) -> String {
    match v {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => {
            if s.contains('\'') && !s.contains('"') {
                format!("\"{}\"", s.replace('\\', "\\\\"))
            } else {
                format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
            }
        }
        Value::Array(a) => format!("[{}]", a.iter().map(py_repr).collect::<Vec<_>>().join(", ")),
        Value::Object(m) => format!(
            "{{{}}}",
            m.iter()
                .map(|(k, v)| format!("{}: {}", py_repr(&json!(k)), py_repr(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn xcom(_ctx: &Ctx, store: &mut Store, req: &Req, p: &Params) -> Result<Reply, ApiError> {
    let key = p.get("xcom_key");
    let map_index = query_map_index(req)?.unwrap_or(-1);
    let deserialize = query_bool(req, "deserialize")?.unwrap_or(false);
    let stringify = query_bool(req, "stringify")?.unwrap_or(false);
    let mut q = ListQuery::default();
    q.any_of("dag_id", vec![Some(p.get("dag_id").to_string())])
        .any_of("run_id", vec![Some(p.get("dag_run_id").to_string())])
        .any_of("task_id", vec![Some(p.get("task_id").to_string())])
        .any_of("key", vec![Some(key.to_string())])
        .any_int("map_index", vec![map_index]);
    q.limit = Some(1);
    let (rows, _) = store.list_xcoms(&q)?;
    let x = rows
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::not_found(format!("XCom entry with key: `{key}` not found")))?;
    let mut value = x.value.clone();
    // A value pushed as a JSON text is shown parsed, as Airflow's `deserialize` does.
    if deserialize
        && let Value::String(s) = &value
        && let Ok(parsed) = serde_json::from_str::<Value>(s)
    {
        value = parsed;
    }
    if stringify && !value.is_null() {
        value = Value::String(py_str(&value));
    }
    let mut out = xcom_json(&mut Dags::new(store), &mut HashMap::new(), store, &x)?;
    out["value"] = value;
    Ok(Reply::json(200, &out))
}

/// Task ids from `ClearTaskInstancesBody.task_ids`: names, or `[name, map_index]` pairs
/// (only map index -1 exists in updraft). Errors are pydantic's.
fn clear_task_ids(list: &[Value]) -> Result<Vec<String>, Vec<Value>> {
    let mut ids = Vec::new();
    let mut errors = Vec::new();
    for (i, v) in list.iter().enumerate() {
        match v {
            Value::String(s) => ids.push(s.clone()),
            Value::Array(pair) if pair.len() == 2 && pair[0].is_string() && pair[1].is_i64() => {
                if pair[1].as_i64() == Some(-1) {
                    ids.push(pair[0].as_str().unwrap_or_default().to_string());
                }
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
    if let Some(ids) = &task_ids {
        let (up, down) = (
            flag(&b, "include_upstream", false),
            flag(&b, "include_downstream", false),
        );
        let mut family: Vec<String> = Vec::new();
        for id in ids {
            for t in ops::task_family(&dag.dag, id, up, down) {
                if !family.contains(&t) {
                    family.push(t);
                }
            }
            if !family.contains(id) {
                family.push(id.clone());
            }
        }
        q.any_of("task_id", family.into_iter().map(Some).collect());
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
    let (tis, _) = store.list_tis(&q)?;
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
        let now = Utc::now();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn supervisor_lines_carry_time_and_level() {
        let m = log_message("[2026-11-21T08:56:40.753991Z] {updraft} final state: failed");
        assert_eq!(
            m,
            json!({"timestamp": "2026-11-21T08:56:40.753991Z", "event": "final state: failed", "level": "error"})
        );
        assert_eq!(log_message("hello"), json!({"event": "hello"}));
        assert_eq!(
            log_message("[x] {updraft} y"),
            json!({"event": "[x] {updraft} y"})
        );
    }

    #[test]
    fn values_stringify_as_python_prints_them() {
        assert_eq!(py_str(&json!("hello")), "hello");
        assert_eq!(
            py_str(&json!({"a": [1, true, null, "it's"]})),
            "{'a': [1, True, None, \"it's\"]}"
        );
    }

    #[test]
    fn accept_picks_a_format() {
        let mut req = Req::internal(Method::Get, "/x");
        assert_eq!(log_format(&req).unwrap(), LogFormat::Json);
        req.headers.push(("accept".into(), "text/plain".into()));
        assert_eq!(log_format(&req).unwrap(), LogFormat::Text);
        req.headers[0].1 = "application/x-ndjson".into();
        assert_eq!(log_format(&req).unwrap(), LogFormat::Ndjson);
        req.headers[0].1 = "image/png".into();
        assert_eq!(log_format(&req).unwrap_err().status, 406);
    }
}
