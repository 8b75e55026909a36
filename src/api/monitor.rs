//! Health, version and metrics: the routes probes and operators call without logging in.

use serde::Serialize;
use serde_json::{Value, json};

use crate::api::http::{ApiError, Reply, Req};
use crate::api::route::{Ctx, Params, PoolStats};
use crate::store::Store;

/// `GET /api/v2/monitor/health`: Airflow's shape, plus an `api_server` block. Always 200,
/// except with `?strict=true`, which answers 503 when any component is unhealthy.
pub fn health(ctx: &Ctx, store: &mut Store, req: &Req, _: &Params) -> Result<Reply, ApiError> {
    let threshold = ctx.cfg.scheduler.health_check_threshold;
    let (db_ok, heartbeat) = match store.latest_heartbeat("SchedulerJob") {
        Ok(hb) => (true, hb),
        Err(e) => {
            log::warn!("health: the database did not answer: {e}");
            (false, None)
        }
    };
    let scheduler_ok = heartbeat
        .is_some_and(|hb| (ctx.clock.now() - hb).num_milliseconds() as f64 <= threshold * 1000.0);
    let probe = ctx
        .execution_probe
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let status = |ok: bool| if ok { "healthy" } else { "unhealthy" };
    let pool = &ctx.pool;
    // Typed, so the body is written straight into the reply: building it as a JSON
    // value first (a map per object, a string per key) cost more than the rest of the
    // request. The fields are in the order the reply has always had.
    let health = Health {
        metadatabase: Component {
            status: status(db_ok),
        },
        scheduler: SchedulerHealth {
            status: status(scheduler_ok),
            latest_scheduler_heartbeat: heartbeat
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, false)),
        },
        triggerer: Absent {
            status: None,
            latest_triggerer_heartbeat: None,
        },
        dag_processor: AbsentProcessor {
            status: None,
            latest_dag_processor_heartbeat: None,
        },
        api_server: ApiServer {
            status: "healthy",
            apps: apps_list(ctx),
            workers_alive: PoolStats::get(&pool.alive),
            workers_configured: PoolStats::get(&pool.target),
            generation: PoolStats::get(&pool.generation),
            refreshes_completed: PoolStats::get(&pool.refreshes),
            uptime_seconds: ctx.started.elapsed().as_secs_f64(),
            server_type: "uvicorn",
        },
        execution_api: ExecutionApi {
            status: probe.ok.map(status),
            url: &probe.url,
            detail: &probe.detail,
        },
    };
    let strict = req
        .query("strict")
        .is_some_and(|v| crate::config::parse_bool(v) == Some(true));
    let healthy = db_ok && scheduler_ok && probe.ok != Some(false);
    let code = if strict && !healthy { 503 } else { 200 };
    // A process worker adds what its arbiter published to the `api_server` block.
    if let Some(me) = ctx.pool.process.get() {
        let mut body = serde_json::to_value(&health).unwrap_or(Value::Null);
        let now = ctx.clock.now().timestamp_micros() as f64 / 1e6;
        process_pool(&mut body["api_server"], me, now);
        return Ok(Reply::json(code, &body));
    }
    Ok(Reply::json(code, &health))
}

/// The body of `GET /api/v2/monitor/health`.
#[derive(Serialize)]
struct Health<'a> {
    metadatabase: Component,
    scheduler: SchedulerHealth,
    triggerer: Absent,
    dag_processor: AbsentProcessor,
    api_server: ApiServer,
    execution_api: ExecutionApi<'a>,
}

#[derive(Serialize)]
struct Component {
    status: &'static str,
}

#[derive(Serialize)]
struct SchedulerHealth {
    status: &'static str,
    latest_scheduler_heartbeat: Option<String>,
}

/// Airflow's triggerer block: updraft has no triggerer, so both are null.
#[derive(Serialize)]
struct Absent {
    status: Option<&'static str>,
    latest_triggerer_heartbeat: Option<String>,
}

/// Airflow's DAG processor block: parsing runs inside the scheduler, so both are null.
#[derive(Serialize)]
struct AbsentProcessor {
    status: Option<&'static str>,
    latest_dag_processor_heartbeat: Option<String>,
}

#[derive(Serialize)]
struct ApiServer {
    status: &'static str,
    apps: Vec<&'static str>,
    workers_alive: u64,
    workers_configured: u64,
    generation: u64,
    refreshes_completed: u64,
    uptime_seconds: f64,
    server_type: &'static str,
}

#[derive(Serialize)]
struct ExecutionApi<'a> {
    status: Option<&'static str>,
    url: &'a str,
    detail: &'a str,
}

/// A process worker's health: the pool as its arbiter published it (each worker's pid,
/// age, generation and RSS), and which worker answered.
fn process_pool(block: &mut Value, me: &crate::api::ProcessWorker, now: f64) {
    block["server_type"] = json!("gunicorn");
    block["worker"] = json!({
        "id": me.id,
        "pid": std::process::id(),
        "generation": me.generation,
    });
    if let Some(state) = pool_state(&me.state, now) {
        for key in [
            "workers_alive",
            "workers_configured",
            "generation",
            "refreshes_completed",
            "workers",
            "arbiter_pid",
        ] {
            block[key] = state[key].clone();
        }
    }
}

/// The arbiter's state file (`server::arbiter`), each worker's age computed now.
fn pool_state(path: &std::path::Path, now: f64) -> Option<Value> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut v: Value = serde_json::from_str(&text).ok()?;
    if let Some(ws) = v["workers"].as_array_mut() {
        for w in ws {
            let age = w["started"].as_f64().map(|s| (now - s).max(0.0));
            w["age_seconds"] = json!(age);
        }
    }
    Some(v)
}

fn apps_list(ctx: &Ctx) -> Vec<&'static str> {
    let mut apps = Vec::new();
    if ctx.apps.core {
        apps.push("core");
    }
    if ctx.apps.execution {
        apps.push("execution");
    }
    apps
}

/// The Apache Airflow release whose API updraft implements: what `/api/v2/version`
/// reports as `version`, as Airflow's clients read that field as the server's Airflow version.
pub const AIRFLOW_VERSION: &str = "3.3.2";

/// `GET /api/v2/version`: `version` is the Airflow version updraft implements (Airflow's
/// `VersionInfo`, which airflowctl and the official client validate); updraft's own version is
/// the extra `updraft_version` field (both clients ignore unknown fields) and the
/// `X-Updraft-Version` header.
pub fn version(_: &Ctx, _: &mut Store, _: &Req, _: &Params) -> Result<Reply, ApiError> {
    let updraft = env!("CARGO_PKG_VERSION");
    Ok(Reply::json(
        200,
        &json!({"version": AIRFLOW_VERSION, "git_version": null, "updraft_version": updraft}),
    )
    .with_header("X-Updraft-Version", updraft))
}

/// `GET /dag-schema.json`: the JSON Schema of DAG files, for editors that fetch it by URL.
pub fn dag_schema(_: &Ctx, _: &mut Store, _: &Req, _: &Params) -> Result<Reply, ApiError> {
    Ok(Reply::json(200, &crate::dagfile::schema()))
}

/// `GET /plugin-schema.json`: the JSON Schema of plugin files.
pub fn plugin_schema(_: &Ctx, _: &mut Store, _: &Req, _: &Params) -> Result<Reply, ApiError> {
    Ok(Reply::json(200, &crate::plugins::schema()))
}

/// `GET /execution/health`, as Airflow's Execution API answers it.
pub fn execution_health(_: &Ctx, _: &mut Store, _: &Req, _: &Params) -> Result<Reply, ApiError> {
    Ok(Reply::json(200, &json!({"status": "healthy"})))
}

/// `GET /metrics` in Prometheus' text format.
pub fn metrics(ctx: &Ctx, _: &mut Store, _: &Req, _: &Params) -> Result<Reply, ApiError> {
    let pool = &ctx.pool;
    let text = ctx.metrics.render(&[
        (
            "api_workers_alive",
            "API worker threads taking requests.",
            PoolStats::get(&pool.alive),
        ),
        (
            "api_workers_configured",
            "API worker threads the pool aims for.",
            PoolStats::get(&pool.target),
        ),
        (
            "api_worker_generation",
            "Generation of the newest API workers.",
            PoolStats::get(&pool.generation),
        ),
        (
            "api_worker_refreshes_total",
            "Completed rolling refreshes of the worker pool.",
            PoolStats::get(&pool.refreshes),
        ),
    ]);
    Ok(Reply::bytes(
        200,
        "text/plain; version=0.0.4",
        text.into_bytes(),
    ))
}
