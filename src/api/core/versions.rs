//! DAG versions (`/dagVersions`): what the parser recorded each time a DAG's structure
//! or its file's text changed (see `store/q_versions.rs`).

use serde_json::{Value, json};

use super::kit::{dt, orders, page, query_all, query_int};
use super::views::{display_name, find_dag};
use crate::api::http::{ApiError, Method, Reply, Req};
use crate::api::route::{Ctx, Params, Route, guarded};
use crate::auth::Role;
use crate::store::{Store, VersionRow};

use Method::Get;

/// DAG versions.
#[rustfmt::skip]
pub static ROUTES: &[Route] = &[
    guarded(Get, "/api/v2/dags/{dag_id}/dagVersions", Role::Viewer, None, "Versions of a DAG: a new one each time its structure or file changes", list),
    guarded(Get, "/api/v2/dags/{dag_id}/dagVersions/{version_number}", Role::Viewer, None, "One version of a DAG", get),
];

/// A version as Airflow's `DagVersionResponse` shows it. DAG files are not in versioned
/// bundles here, so there is no bundle version or URL.
pub fn version_json(v: &VersionRow, dag_display_name: &str) -> Value {
    json!({
        "id": v.uuid, "version_number": v.version_number, "dag_id": v.dag_id,
        "bundle_name": v.bundle_name, "bundle_version": null, "created_at": dt(Some(v.created_at)),
        "dag_display_name": dag_display_name, "bundle_url": null,
    })
}

/// The `dag_versions` of a run: the version it was created with, or none.
pub fn run_versions(
    store: &Store,
    dag_id: &str,
    run_id: &str,
    display: &str,
) -> Result<Value, ApiError> {
    Ok(Value::Array(
        store
            .run_version(dag_id, run_id)?
            .iter()
            .map(|v| version_json(v, display))
            .collect(),
    ))
}

/// `GET /dags/{dag_id}/dagVersions`: filters `version_number`, `bundle_name`,
/// `bundle_version`; `order_by` id or version_number (also descending); limit/offset.
fn list(ctx: &Ctx, store: &mut Store, req: &Req, p: &Params) -> Result<Reply, ApiError> {
    let (limit, offset) = page(ctx, req)?;
    let row = find_dag(store, p.get("dag_id"))?;
    let number = query_int(req, "version_number")?;
    let bundle = req.query("bundle_name");
    let bundle_version = req.query("bundle_version");
    let keys = orders(
        &query_all(req, "order_by"),
        &["id", "version_number", "bundle_name", "bundle_version"],
        &[("id", false)],
        &[],
    )?;
    let mut versions: Vec<VersionRow> = store
        .dag_versions(&row.dag.dag_id)?
        .into_iter()
        .filter(|v| number.is_none_or(|n| v.version_number == n))
        .filter(|v| bundle.is_none_or(|b| v.bundle_name == b))
        // Bundle versions are always null here.
        .filter(|_| bundle_version.is_none())
        .collect();
    // Versions are numbered in the order they were made, as their ids are.
    if let Some((key, desc)) = keys.first() {
        if *key == "bundle_name" {
            versions.sort_by(|a, b| a.bundle_name.cmp(&b.bundle_name));
        }
        if *desc {
            versions.reverse();
        }
    }
    let total = versions.len();
    let name = display_name(&row.dag);
    let items: Vec<Value> = versions
        .iter()
        .skip(offset)
        .take(limit)
        .map(|v| version_json(v, name))
        .collect();
    Ok(Reply::json(
        200,
        &json!({"dag_versions": items, "total_entries": total}),
    ))
}

/// `GET /dags/{dag_id}/dagVersions/{version_number}`.
fn get(_ctx: &Ctx, store: &mut Store, _req: &Req, p: &Params) -> Result<Reply, ApiError> {
    let (dag_id, n) = (p.get("dag_id"), p.get("version_number"));
    let number: i64 = n.parse().map_err(|_| {
        ApiError::with_detail(
            422,
            json!([{"type": "int_parsing", "loc": ["path", "version_number"],
                    "msg": "Input should be a valid integer, unable to parse string as an integer", "input": n}]),
        )
    })?;
    let missing = || {
        ApiError::not_found(format!(
            "The DagVersion with dag_id: `{dag_id}` and version_number: `{number}` was not found"
        ))
    };
    let row = store.dag(dag_id)?.ok_or_else(missing)?;
    let v = store.dag_version(dag_id, number)?.ok_or_else(missing)?;
    Ok(Reply::json(200, &version_json(&v, display_name(&row.dag))))
}
