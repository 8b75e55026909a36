//! Task logs: a try's log as JSON, NDJSON or text, with continuation tokens that follow a
//! running task.

use std::io::{Read, Seek, SeekFrom};

use super::signing::{LogId, make_token, read_token};
use crate::model::TaskState;
use crate::task_log::log_path_at;
use serde_json::{Map, Value, json};

use super::kit::{dt, parse_datetime, query_bool};
use super::kit::{path_number, query_map_index};
use crate::api::http::{ApiError, Method, Reply, Req};
use crate::api::route::{Ctx, Params, Route, guarded};
use crate::auth::Role;
use crate::store::Store;

use Method::Get;

/// A try's log.
#[rustfmt::skip]
pub static ROUTES: &[Route] = &[
    guarded(Get, "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/logs/{try_number}", Role::Viewer, None, "The log of a try: JSON, NDJSON or text/plain; a continuation token follows a running task", logs),
];

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
    let log_id = LogId {
        dag_id: p.get("dag_id"),
        run_id: p.get("dag_run_id"),
        task_id: p.get("task_id"),
        try_number: n,
    };
    let format = log_format(req)?;
    let full = query_bool(req, "full_content")?.unwrap_or(false);
    let map_index = query_map_index(req)?.unwrap_or(-1);
    let token = match req.query("token").filter(|t| !t.is_empty()) {
        Some(t) => Some(read_token(&ctx.secret, &log_id, t)?),
        None => None,
    };
    let not_found = || ApiError::not_found("TaskInstance not found");
    let current = store.ti_at(dag_id, run_id, task_id, map_index)?;
    let (ti, is_current) = match current {
        Some(ti) if ti.try_number == n => (ti, true),
        _ => match store
            .ti_history_at(dag_id, run_id, task_id, map_index)?
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
    let path = log_path_at(
        &ctx.cfg.logging.base_log_folder,
        dag_id,
        run_id,
        task_id,
        map_index,
        n,
    );
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
    let token = (live && n > 0).then(|| make_token(&ctx.secret, &log_id, next));
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
