//! The tag names of the DAGs (`/dagTags`).

use serde_json::Value;

use super::kit::{Patterns, collection, order_by, page};
use crate::api::http::{ApiError, Method, Reply, Req};
use crate::api::route::{Ctx, Params, Route, guarded};
use crate::auth::Role;
use crate::store::Store;

use Method::Get;

/// DAG tags.
#[rustfmt::skip]
pub static ROUTES: &[Route] = &[
    guarded(Get, "/api/v2/dagTags", Role::Viewer, None, "Tag names of the DAGs", tags),
];

fn tags(ctx: &Ctx, store: &mut Store, req: &Req, _p: &Params) -> Result<Reply, ApiError> {
    let (limit, offset) = page(ctx, req)?;
    let (_, desc) = order_by(req, &["name"], "name")?;
    let filter = Patterns::new(req, "tag_name");
    let mut names: Vec<Value> = store
        .tag_names()?
        .into_iter()
        .filter(|n| filter.keep(n))
        .map(Value::String)
        .collect();
    if desc {
        names.reverse();
    }
    Ok(Reply::json(200, &collection("tags", names, limit, offset)))
}
