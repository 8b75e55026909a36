//! Plugins and providers (updraft has none) and jobs (schedulers and their heartbeats).

use crate::store::Store;
use serde_json::{Value, json};

use super::kit::{Range, sort};
use super::kit::{collection, dt, order_by, page, query_bool};
use crate::api::http::{ApiError, Method, Reply, Req};
use crate::api::route::{Ctx, Params, Route, guarded};
use crate::auth::Role;
use crate::error::Result;

use Method::Get;

/// Plugins, providers and jobs.
#[rustfmt::skip]
pub static ROUTES: &[Route] = &[
    guarded(Get, "/api/v2/plugins", Role::Viewer, None, "Plugins: the declarative plugin files of [core] plugins_folder", list_plugins),
    guarded(Get, "/api/v2/plugins/importErrors", Role::Viewer, None, "Plugin files that failed to load, with file and line", plugin_import_errors),
    guarded(Get, "/api/v2/providers", Role::Viewer, None, "Provider packages (updraft installs none)", list_providers),
    guarded(Get, "/api/v2/jobs", Role::Viewer, None, "Jobs (schedulers) and their heartbeats", list_jobs),
];

fn list_plugins(ctx: &Ctx, _: &mut Store, req: &Req, _: &Params) -> Result<Reply, ApiError> {
    let (limit, offset) = page(ctx, req)?;
    let loaded = ctx.pool.plugins();
    let all: Vec<Value> = loaded
        .plugins
        .iter()
        .map(crate::plugins::to_response)
        .collect();
    let total = all.len();
    let shown: Vec<Value> = all.into_iter().skip(offset).take(limit).collect();
    Ok(Reply::json(
        200,
        &json!({"plugins": shown, "total_entries": total}),
    ))
}

fn plugin_import_errors(ctx: &Ctx, _: &mut Store, _: &Req, _: &Params) -> Result<Reply, ApiError> {
    let loaded = ctx.pool.plugins();
    let errors: Vec<Value> = loaded
        .errors
        .iter()
        .map(|e| json!({"source": e.file.display().to_string(), "error": format!("line {}: {}", e.line, e.message)}))
        .collect();
    Ok(Reply::json(
        200,
        &json!({"total_entries": errors.len(), "import_errors": errors}),
    ))
}

fn list_providers(ctx: &Ctx, _: &mut Store, req: &Req, _: &Params) -> Result<Reply, ApiError> {
    page(ctx, req)?;
    Ok(Reply::json(
        200,
        &json!({"providers": [], "total_entries": 0}),
    ))
}

/// Airflow's heartbeat grace for jobs other than the scheduler: `job_heartbeat_sec` (5)
/// times 2.1.
const OTHER_JOB_GRACE_SECS: f64 = 5.0 * 2.1;

fn list_jobs(ctx: &Ctx, store: &mut Store, req: &Req, _: &Params) -> Result<Reply, ApiError> {
    let (limit, offset) = page(ctx, req)?;
    let allowed = [
        "id",
        "dag_id",
        "state",
        "job_type",
        "start_date",
        "end_date",
        "latest_heartbeat",
        "executor_class",
        "hostname",
        "unixname",
    ];
    let (by, desc) = order_by(req, &allowed, "id")?;
    let start = Range::new(req, "start_date")?;
    let end = Range::new(req, "end_date")?;
    let equals = |name: &str, v: Option<&str>| req.query(name).is_none_or(|q| Some(q) == v);
    let alive = query_bool(req, "is_alive")?;
    let now = ctx.clock.now();
    let mut rows: Vec<Value> = store
        .jobs()?
        .into_iter()
        .filter(|j| {
            let threshold = if j.job_type == "SchedulerJob" {
                ctx.cfg.scheduler.health_check_threshold
            } else {
                OTHER_JOB_GRACE_SECS
            };
            let is_alive = j.state == "running"
                && j.latest_heartbeat
                    .is_some_and(|h| ((now - h).num_milliseconds() as f64) / 1000.0 < threshold);
            start.holds(j.start_date)
                && end.holds(j.end_date)
                && equals("job_state", Some(&j.state))
                && equals("job_type", Some(&j.job_type))
                && equals("hostname", Some(&j.hostname))
                && equals("executor_class", None)
                && alive.is_none_or(|a| a == is_alive)
        })
        .map(|j| {
            json!({
                "id": j.id,
                "dag_id": null,
                "state": j.state,
                "job_type": j.job_type,
                "start_date": dt(j.start_date),
                "end_date": dt(j.end_date),
                "latest_heartbeat": dt(j.latest_heartbeat),
                "executor_class": null,
                "hostname": j.hostname,
                "unixname": j.unixname,
                "dag_display_name": null,
            })
        })
        .collect();
    sort(&mut rows, by, desc, &[]);
    Ok(Reply::json(200, &collection("jobs", rows, limit, offset)))
}
