//! Import errors: the DAG files that failed to parse, as `/importErrors` lists them.

use serde_json::{Value, json};

use super::kit::{Patterns, path_int, sorted};
use super::kit::{collection, dt, order_keys, page};
use crate::api::http::{ApiError, Method, Reply, Req};
use crate::api::route::{Ctx, Params, Route, guarded};
use crate::auth::Role;
use crate::store::{ImportErrorRow, Store};

use Method::Get;

/// Import errors.
#[rustfmt::skip]
pub static ROUTES: &[Route] = &[
    guarded(Get, "/api/v2/importErrors", Role::Viewer, None, "Files that failed to parse", import_errors),
    guarded(Get, "/api/v2/importErrors/{import_error_id}", Role::Viewer, None, "One import error", import_error),
];

fn import_errors(ctx: &Ctx, store: &mut Store, req: &Req, _p: &Params) -> Result<Reply, ApiError> {
    let (limit, offset) = page(ctx, req)?;
    let order: Vec<(&str, bool)> = order_keys(
        req,
        &[
            "id",
            "import_error_id",
            "timestamp",
            "filename",
            "bundle_name",
            "stacktrace",
        ],
        "id",
    )?
    .into_iter()
    .map(|(k, d)| {
        let k = match k {
            "id" => "import_error_id",
            "stacktrace" => "stack_trace",
            other => other,
        };
        (k, d)
    })
    .collect();
    let name_filter = Patterns::new(req, "filename");
    let filename = req.query("filename");
    let bundle = req.query("bundle_name");
    let mut rows = Vec::new();
    let mut keys = Vec::new();
    for e in store.import_errors()? {
        let keep = name_filter.keep(&e.filename)
            && filename.is_none_or(|f| f == e.filename)
            && bundle.is_none_or(|b| b == e.bundle_name);
        if !keep {
            continue;
        }
        let row = import_error_json(&e);
        let mut key = row.clone();
        key["timestamp"] = json!(crate::store::ts(e.timestamp));
        keys.push(key);
        rows.push(row);
    }
    let rows = sorted(rows, keys, &order, "import_error_id");
    Ok(Reply::json(
        200,
        &collection("import_errors", rows, limit, offset),
    ))
}

fn import_error(_ctx: &Ctx, store: &mut Store, _req: &Req, p: &Params) -> Result<Reply, ApiError> {
    let id = path_int(p, "import_error_id")?;
    let e = store
        .import_errors()?
        .into_iter()
        .find(|e| e.id == id)
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "The ImportError with import_error_id: `{id}` was not found"
            ))
        })?;
    Ok(Reply::json(200, &import_error_json(&e)))
}

fn import_error_json(e: &ImportErrorRow) -> Value {
    json!({
        "import_error_id": e.id,
        "timestamp": dt(Some(e.timestamp)),
        "filename": e.filename,
        "bundle_name": e.bundle_name,
        "stack_trace": e.stack_trace,
    })
}
