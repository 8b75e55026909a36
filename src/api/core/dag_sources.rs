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

/// The file's text of a DAG version (`version_number`, or the newest): each version
/// keeps the text it was parsed from.
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
    let missing = || {
        ApiError::not_found(format!(
            "The source code of the Dag {dag_id}, version_number {shown} was not found"
        ))
    };
    let row = store.dag(dag_id)?.ok_or_else(missing)?;
    // A version's own text; without one, the newest version's (the file as last parsed).
    let found = match version {
        Some(n) => Some(store.dag_version(dag_id, n)?.ok_or_else(missing)?),
        None => store.dag_versions(dag_id)?.pop(),
    };
    let (content, number) = match found {
        Some(v) => (v.source, Some(v.version_number)),
        None => (
            store
                .file_source(&row.bundle_name, &row.relative_fileloc)?
                .ok_or_else(|| {
                    ApiError::not_found(format!(
                        "Code not found. dag_id='{dag_id}' version_number='{shown}'"
                    ))
                })?,
            None,
        ),
    };
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
            "version_number": number,
            "dag_display_name": display_name(&row.dag),
        }),
    ))
}
