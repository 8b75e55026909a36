//! The text of a DAG's file (`/dagSources`), as JSON or text/plain.

use serde_json::json;

use super::kit::query_int;
use super::views::display_name;
use crate::api::http::{ApiError, Method, Reply, Req};
use crate::api::route::{Ctx, Params, Route, guarded};
use crate::auth::Role;
use crate::store::Store;

use Method::Get;

/// DAG sources.
#[rustfmt::skip]
pub static ROUTES: &[Route] = &[
    guarded(Get, "/api/v2/dagSources/{dag_id}", Role::Viewer, None, "The text of a DAG's file (JSON, or text/plain)", source),
];

/// The file's text as the DAG processor last read it. updraft keeps no older versions,
/// so `version_number` is null and asking for a given version finds nothing.
fn source(_ctx: &Ctx, store: &mut Store, req: &Req, p: &Params) -> Result<Reply, ApiError> {
    let accept = req.header("accept").unwrap_or("*/*");
    let plain = if accept.starts_with("*/*") || accept.starts_with("application/json") {
        false
    } else if accept.starts_with("text/plain") {
        true
    } else {
        return Err(ApiError::new(
            406,
            "Only application/json or text/plain is supported",
        ));
    };
    let version = query_int(req, "version_number")?;
    let shown = version.map_or("None".to_string(), |v| v.to_string());
    let dag_id = p.get("dag_id");
    let row = store
        .dag(dag_id)?
        .filter(|_| version.is_none())
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "The source code of the Dag {dag_id}, version_number {shown} was not found"
            ))
        })?;
    let content = store
        .file_source(&row.bundle_name, &row.relative_fileloc)?
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "Code not found. dag_id='{dag_id}' version_number='{shown}'"
            ))
        })?;
    if plain {
        return Ok(Reply::bytes(
            200,
            "text/plain; charset=utf-8",
            content.into_bytes(),
        ));
    }
    Ok(Reply::json(
        200,
        &json!({
            "content": content,
            "dag_id": dag_id,
            "version_number": null,
            "dag_display_name": display_name(&row.dag),
        }),
    ))
}
