//! The HTTP API: one route table, handlers by resource, status codes. No socket, no SQL.
//!
//! [`handle`] runs in a straight line: match the route table, check the app serves it,
//! call the handler, turn its error into `{"detail": ...}`. Anything that is not a route
//! goes to the embedded UI, except paths under the API prefixes, which are JSON 404s and
//! never the UI's HTML.

pub mod assets;
pub mod core;
mod dag_callbacks;
pub mod execution;
pub mod execution_sdk;
pub mod execution_versions;
pub mod http;
mod monitor;
pub mod openapi;
pub mod route;

use serde_json::json;

pub use http::{ApiError, Method, Reply, Req};
pub use route::{
    App, Apps, Ctx, DagCache, DagRows, Handler, Params, PoolStats, Probe, ProcessWorker, Route,
    guarded, public,
};

use crate::store::Store;

use App::{Any, Core, Execution};
use Method::{Delete, Get, Patch, Post, Put};

/// Health, version, the API's own description, metrics and the Execution API.
#[rustfmt::skip]
static BASE: &[Route] = &[
    public(Get, "/api/v2/monitor/health", Core, "Component health, always 200 unless strict=true", monitor::health),
    public(Get, "/api/v2/version", Core, "The server's version", monitor::version),
    public(Get, "/openapi.json", Core, "This document", openapi_json),
    public(Get, "/docs", Core, "A page that lists the API's routes", openapi_docs),
    public(Get, "/dag-schema.json", Core, "The JSON Schema of dag-factory DAG files (as `updraft dags schema` prints it)", monitor::dag_schema),
    public(Get, "/plugin-schema.json", Core, "The JSON Schema of declarative plugin files ([core] plugins_folder)", monitor::plugin_schema),
    public(Get, "/execution/health", Execution, "Execution API health", monitor::execution_health),
    public(Patch, "/execution/task-instances/{task_instance_id}/run", Execution, "Mark a task instance running; returns its run context", execution::run),
    public(Put, "/execution/task-instances/{task_instance_id}/heartbeat", Execution, "Heartbeat of a running task instance", execution::heartbeat),
    public(Patch, "/execution/task-instances/{task_instance_id}/state", Execution, "Finish a try: success, failed, skipped, up_for_retry", execution::state),
    public(Patch, "/execution/task-instances/{task_instance_id}/skip-downstream", Execution, "Skip tasks downstream of a branch or short-circuit", execution::skip_downstream),
    public(Patch, "/execution/task-instances/{task_instance_id}/rendered-map-index", Execution, "Set the render of a task's map_index_template", execution::rendered_map_index),
    public(Get, "/execution/task-instances/count", Execution, "Count another DAG's task instances by state (ExternalTaskSensor)", execution_sdk::ti_count),
    public(Get, "/execution/task-instances/states", Execution, "Another DAG's task instance states by run (ExternalTaskSensor)", execution_sdk::ti_states),
    public(Get, "/execution/dag-runs/count", Execution, "Count another DAG's runs by state (ExternalTaskSensor)", execution_sdk::dag_run_count),
    public(Get, "/execution/task-reschedules/{task_instance_id}/start_date", Execution, "The first reschedule date of a sensor's try", execution::reschedule_start_date),
    public(Patch, "/execution/dag-callbacks/{callback_id}/run", Execution, "Claim a DAG callback request; returns its callbacks and context", dag_callbacks::run),
    public(Patch, "/execution/dag-callbacks/{callback_id}/state", Execution, "Finish a DAG callback request: success or failed", dag_callbacks::state),
    public(Get, "/execution/variables/{variable_key:path}", Execution, "Read a variable", execution::variable),
    public(Put, "/execution/variables/{variable_key:path}", Execution, "Set a variable", execution::put_variable),
    public(Get, "/execution/connections/{connection_id}", Execution, "Read a connection", execution::connection),
    public(Post, "/execution/dag-runs/{dag_id}/{run_id}", Execution, "Trigger a run of a DAG (TriggerDagRunOperator)", execution::trigger_dag_run),
    public(Post, "/execution/dag-runs/{dag_id}/{run_id}/clear", Execution, "Clear a DAG run (TriggerDagRunOperator's reset_dag_run)", execution::clear_dag_run),
    public(Get, "/execution/dag-runs/{dag_id}/{run_id}/state", Execution, "A DAG run's state", execution::dag_run_state),
    // Before the plain XCom routes, whose `{key:path}` would also take `.../item/0`.
    public(Get, "/execution/xcoms/{dag_id}/{run_id}/{task_id}/{key:path}/item/{offset}", Execution, "One XCom of a mapped task by its position (negative from the end)", execution::xcom_item),
    public(Get, "/execution/xcoms/{dag_id}/{run_id}/{task_id}/{key:path}/slice", Execution, "XComs of a mapped task by a Python slice (start, stop, step)", execution::xcom_slice),
    public(Get, "/execution/xcoms/{dag_id}/{run_id}/{task_id}/{key:path}", Execution, "Read an XCom", execution::get_xcom),
    public(Post, "/execution/xcoms/{dag_id}/{run_id}/{task_id}/{key:path}", Execution, "Push an XCom", execution::set_xcom),
    public(Post, "/execution/hitlDetails/{task_instance_id}", Execution, "Write a human-in-the-loop task's request", execution::hitl::upsert),
    public(Patch, "/execution/hitlDetails/{task_instance_id}", Execution, "Answer a human-in-the-loop request from the task's side", execution::hitl::update),
    public(Get, "/execution/hitlDetails/{task_instance_id}", Execution, "The answer to a human-in-the-loop request", execution::hitl::get),
    public(Get, "/execution/assets/by-name", Execution, "An asset by its name", execution::asset_by_name),
    public(Get, "/execution/assets/by-uri", Execution, "An asset by its URI", execution::asset_by_uri),
    public(Get, "/execution/assets/by-alias", Execution, "The assets an alias resolves to", execution::assets_by_alias),
    public(Get, "/execution/asset-events/by-asset", Execution, "Events of an asset, by name and/or URI", execution::asset_events_by_asset),
    public(Get, "/execution/asset-events/by-asset-alias", Execution, "Events attached through an asset alias", execution::asset_events_by_alias),
    public(Get, "/metrics", Any, "Prometheus metrics", monitor::metrics),
];

/// The Execution API routes the Task SDK's client calls beyond a task's own run (see
/// `execution_sdk.rs`). Literal paths come before the templates they would also match.
#[rustfmt::skip]
static EXECUTION_SDK: &[Route] = &[
    public(Get, "/execution/task-instances/breadcrumbs", Execution, "The finished task instances of a run", execution_sdk::breadcrumbs),
    public(Get, "/execution/task-instances/previous/{dag_id}/{task_id}", Execution, "A task's instance in an earlier run", execution_sdk::previous_ti),
    public(Put, "/execution/task-instances/{task_instance_id}/rtif", Execution, "Store a task's rendered template fields", execution_sdk::put_rtif),
    public(Get, "/execution/task-instances/{task_instance_id}/previous-successful-dagrun", Execution, "The latest successful run before this one", execution_sdk::previous_successful_dagrun),
    public(Get, "/execution/task-instances/{task_instance_id}/validate-inlets-and-outlets", Execution, "Inactive assets among a task's inlets and outlets", execution_sdk::validate_inlets_and_outlets),
    public(Get, "/execution/variables/keys", Execution, "Variable keys, by prefix", execution_sdk::variable_keys),
    public(Delete, "/execution/variables/{variable_key:path}", Execution, "Delete a variable", execution_sdk::delete_variable),
    public(Delete, "/execution/xcoms/{dag_id}/{run_id}/{task_id}/{key:path}", Execution, "Delete one of the task's XComs", execution_sdk::delete_xcom),
    public(Get, "/execution/dag-runs/previous", Execution, "The run before a logical date", execution_sdk::previous_dag_run),
    public(Get, "/execution/dag-runs/{dag_id}/previous", Execution, "The run before a logical date (versions 2025-08-10 to 2026-04-05)", execution_sdk::previous_dag_run_compat),
    public(Get, "/execution/dag-runs/{dag_id}/{run_id}", Execution, "A run", execution_sdk::dag_run),
    public(Get, "/execution/dags/{dag_id}", Execution, "A DAG's summary", execution_sdk::dag),
    public(Get, "/execution/store/ti/{task_instance_id}/{key:path}", Execution, "A value of the task's state store", execution_sdk::get_state),
    public(Put, "/execution/store/ti/{task_instance_id}/{key:path}", Execution, "Set a value of the task's state store", execution_sdk::put_state),
    public(Delete, "/execution/store/ti/{task_instance_id}/{key:path}", Execution, "Delete a key of the task's state store", execution_sdk::delete_state),
    public(Delete, "/execution/store/ti/{task_instance_id}", Execution, "Delete every key of the task's state store", execution_sdk::clear_state),
];

/// Every route, the one place to look: the tables of each resource, in order. The UI
/// is the fallback after these.
pub fn routes() -> impl Iterator<Item = &'static Route> {
    [
        EXECUTION_SDK,
        BASE,
        core::auth::ROUTES,
        core::dags::ROUTES,
        core::versions::ROUTES,
        core::tasks::ROUTES,
        core::dag_sources::ROUTES,
        core::dag_stats::ROUTES,
        core::dag_tags::ROUTES,
        core::import_errors::ROUTES,
        core::event_logs::ROUTES,
        core::dag_runs::ROUTES,
        core::assets::ROUTES,
        core::run_more::ROUTES,
        core::backfills::ROUTES,
        core::task_instances::ROUTES,
        core::ti_more::ROUTES,
        core::state_store::ROUTES,
        core::logs::ROUTES,
        core::xcoms::ROUTES,
        core::xcom_writes::ROUTES,
        core::variables::ROUTES,
        core::connections::ROUTES,
        core::misc_more::ROUTES,
        core::pools::ROUTES,
        core::config::ROUTES,
        core::jobs::ROUTES,
        core::ui::ROUTES,
        core::hitl::ROUTES,
        core::task_instances::MAPPED_ROUTES,
    ]
    .into_iter()
    .flatten()
}

/// `GET /openapi.json`: the document of this table (see `openapi.rs`).
fn openapi_json(ctx: &Ctx, _: &mut Store, req: &Req, _: &Params) -> Result<Reply, ApiError> {
    Ok(Reply::json(
        200,
        &openapi::document(ctx, &req.prefix, routes()),
    ))
}

/// `GET /docs`: a page listing this table's routes.
fn openapi_docs(ctx: &Ctx, _: &mut Store, req: &Req, _: &Params) -> Result<Reply, ApiError> {
    openapi::docs(ctx, req, routes())
}

/// Routes one request and runs its handler. Returns the reply and the route template
/// (for metrics; `"static"`, `"not_found"` and so on when no route matched).
pub fn handle(ctx: &Ctx, store: &mut Store, req: &Req) -> (Reply, &'static str) {
    let segments: Vec<&str> = req.raw_path.split('/').skip(1).collect();
    let mut path_matched = false;
    for (r, parts) in route_table() {
        let mut values = Vec::new();
        if !match_parts(parts, &segments, &mut values) {
            continue;
        }
        if !ctx.apps.serves(r.app) {
            return (not_served(r.app), r.path);
        }
        // The Execution API answers in the version the request names (see
        // `execution_versions`): a route that version does not have is not matched.
        let version = match r.app {
            Execution => match execution_sdk::api_version(req) {
                Ok(v) => Some(v),
                Err(e) => return (e.into_reply(), r.path),
            },
            _ => None,
        };
        if let Some(v) = &version
            && !execution_versions::route_exists(r.method, r.path, v)
        {
            continue;
        }
        path_matched = true;
        let method_ok =
            r.method == req.method || (r.method == Method::Get && req.method == Method::Head);
        if !method_ok {
            continue;
        }
        let user = match r
            .role
            .map(|role| core::auth::authorize(ctx, req, role))
            .transpose()
        {
            Ok(user) => user,
            Err(e) => return (e.into_reply(), r.path),
        };
        let params = Params { values, user };
        let reply = match &version {
            Some(v) => execution_versions::serve(r, ctx, store, req, &params, v)
                .with_header("Airflow-API-Version", v),
            None => (r.handler)(ctx, store, req, &params).unwrap_or_else(ApiError::into_reply),
        };
        if let Some(event) = r.event
            && reply.status < 400
        {
            core::auth::audit(store, event, req, &params, ctx.clock.now());
        }
        return (reply, r.path);
    }
    if path_matched {
        return (
            ApiError::new(405, "Method Not Allowed").into_reply(),
            "method_not_allowed",
        );
    }
    let p = req.path.as_str();
    let under = |prefix: &str| p == prefix || p.starts_with(&format!("{prefix}/"));
    if p == "/health" {
        let msg = "Moved in Airflow 3. Please change config to check /api/v2/monitor/health";
        return (
            Reply::json(404, &json!({"detail": msg, "error": msg})),
            "not_found",
        );
    }
    if under("/api/v1") {
        let msg = "/api/v1 has been removed in Airflow 3, please use its upgraded version /api/v2 instead.";
        return (
            Reply::json(404, &json!({"detail": msg, "error": msg})),
            "not_found",
        );
    }
    if under("/execution") && !ctx.apps.execution {
        return (not_served(Execution), "not_found");
    }
    if ["/api", "/execution", "/auth", "/ui"]
        .iter()
        .any(|a| under(a))
    {
        return (
            ApiError::not_found("API route not found").into_reply(),
            "not_found",
        );
    }
    if !ctx.apps.core {
        return (not_served(Core), "not_found");
    }
    if !matches!(req.method, Method::Get | Method::Head) {
        return (
            ApiError::new(405, "Method Not Allowed").into_reply(),
            "method_not_allowed",
        );
    }
    (assets::serve(req), "static")
}

fn not_served(app: App) -> Reply {
    let which = match app {
        App::Core => "the Core API and UI are not served here (this server runs --apps execution)",
        App::Execution | App::Any => {
            "the Execution API is not served here (this server runs --apps core)"
        }
    };
    ApiError::not_found(which).into_reply()
}

/// Every route with its template split into segments, split once: each request tries
/// the routes in order, and splitting every template again per request (a vector each)
/// was a good part of what routing cost.
fn route_table() -> &'static [(&'static Route, Vec<&'static str>)] {
    static TABLE: std::sync::OnceLock<Vec<(&'static Route, Vec<&'static str>)>> =
        std::sync::OnceLock::new();
    TABLE.get_or_init(|| routes().map(|r| (r, template_parts(r.path))).collect())
}

fn template_parts(template: &'static str) -> Vec<&'static str> {
    template.split('/').skip(1).collect()
}

/// Matches a template like `/api/v2/dags/{dag_id}` against path segments. A `{name:path}`
/// placeholder, as in Airflow's `{variable_key:path}` routes, takes one or more segments
/// with their `/` (the longest that lets the rest match, as Starlette's `.*` does); any
/// other placeholder takes exactly one.
#[cfg(test)]
fn match_path(template: &'static str, segments: &[&str]) -> Option<Vec<(&'static str, String)>> {
    let mut params = Vec::new();
    match_parts(&template_parts(template), segments, &mut params).then_some(params)
}

fn match_parts(
    parts: &[&'static str],
    segments: &[&str],
    params: &mut Vec<(&'static str, String)>,
) -> bool {
    let Some((t, rest)) = parts.split_first() else {
        return segments.is_empty();
    };
    let Some(name) = t.strip_prefix('{').and_then(|t| t.strip_suffix('}')) else {
        return segments.first() == Some(t) && match_parts(rest, &segments[1..], params);
    };
    if let Some(name) = name.strip_suffix(":path") {
        // Longest first; each segment is decoded on its own and the `/` kept between them.
        // As Starlette's `path` convertor (`.*`), the value may be empty or hold empty
        // segments: `/variables/` names the variable `""`, which the handler answers.
        for take in (1..=segments.len().saturating_sub(rest.len())).rev() {
            let Some(decoded) = segments[..take]
                .iter()
                .map(|s| crate::percent::decode_segment(s))
                .collect::<Option<Vec<_>>>()
            else {
                return false;
            };
            let mark = params.len();
            params.push((name, decoded.join("/")));
            if match_parts(rest, &segments[take..], params) {
                return true;
            }
            params.truncate(mark);
        }
        return false;
    }
    let Some(s) = segments.first().filter(|s| !s.is_empty()) else {
        return false;
    };
    // Each segment is decoded on its own, so an id may hold an encoded `/`.
    let Some(value) = crate::percent::decode_segment(s) else {
        return false;
    };
    params.push((name, value));
    match_parts(rest, &segments[1..], params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apps_parse_like_airflow() {
        assert_eq!(Apps::parse("all"), Some(Apps::ALL));
        assert_eq!(Apps::parse("core,execution"), Some(Apps::ALL));
        assert_eq!(
            Apps::parse("core"),
            Some(Apps {
                core: true,
                execution: false
            })
        );
        assert_eq!(
            Apps::parse("execution"),
            Some(Apps {
                core: false,
                execution: true
            })
        );
        assert_eq!(Apps::parse("web"), None);
        assert_eq!(Apps::parse(""), None);
    }

    #[test]
    fn templates_match_segments() {
        let segs = |p: &'static str| p.split('/').skip(1).collect::<Vec<_>>();
        let p = match_path("/api/v2/dags/{dag_id}", &segs("/api/v2/dags/x%2Fy")).unwrap();
        assert_eq!(p, vec![("dag_id", "x/y".to_string())]);
        assert!(match_path("/api/v2/dags/{dag_id}", &segs("/api/v2/dags/")).is_none());
        assert!(match_path("/api/v2/dags/{dag_id}", &segs("/api/v2/dags/x/y")).is_none());
        // `{name:path}` takes the raw `/`s, the longest that lets the rest match.
        let t = "/x/{dag_id}/{key:path}/item/{offset}";
        let p = match_path(t, &segs("/x/d/a/item/b%2Fc/item/-1")).unwrap();
        assert_eq!(
            p,
            vec![
                ("dag_id", "d".to_string()),
                ("key", "a/item/b/c".to_string()),
                ("offset", "-1".to_string())
            ]
        );
        assert!(match_path(t, &segs("/x/d/item/0")).is_none());
        let key = |t, p| match_path(t, &segs(p)).map(|v| v.last().map(|(_, k)| k.clone()));
        let p = match_path("/v/{variable_key:path}", &segs("/v/a/b")).unwrap();
        assert_eq!(p, vec![("variable_key", "a/b".to_string())]);
        // Empty values and segments, as Starlette's `.*` matches them.
        assert_eq!(key(t, "/x/d//item/0"), Some(Some("0".to_string())));
        assert_eq!(match_path(t, &segs("/x/d//item/0")).unwrap()[1].1, "");
        assert_eq!(
            key("/v/{variable_key:path}", "/v/"),
            Some(Some(String::new()))
        );
        assert_eq!(
            key("/v/{variable_key:path}", "/v/a/"),
            Some(Some("a/".to_string()))
        );
        assert_eq!(
            key("/v/{variable_key:path}", "/v//a"),
            Some(Some("/a".to_string()))
        );
        assert!(match_path("/v/{variable_key:path}", &segs("/v")).is_none());
    }

    #[test]
    fn every_route_is_unique() {
        let all: Vec<&Route> = routes().collect();
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                assert!(
                    !(a.method == b.method && a.path == b.path),
                    "{} {} twice",
                    a.method,
                    a.path
                );
            }
        }
    }
}
