//! Pools: create, read, update, delete and bulk changes, with their slot usage, with
//! Airflow 3.3.2's paths, shapes, texts and status codes. `default_pool` cannot be deleted.

use super::bulk::{Bulk, parse_bulk, run_bulk};
use crate::store::{Pool, Store, Tx};
use serde_json::{Map, Value, json};

use super::kit::{Field, Kind, collection, field, order_by, page};
use super::kit::{
    Patterns, at, body_loc, error, fields_to_update, get, json_body, max_len, no_content, no_team,
    sort, string, unprocessable, update_mask, validate,
};
use crate::api::http::{ApiError, Method, Reply, Req};
use crate::api::route::{Ctx, Params, Route, guarded};
use crate::auth::Role;
use crate::error::{Error, Result};

use Method::{Delete, Get, Patch, Post};

/// Pools.
#[rustfmt::skip]
pub static ROUTES: &[Route] = &[
    guarded(Get, "/api/v2/pools", Role::Viewer, None, "List pools with their slot usage", list_pools),
    guarded(Post, "/api/v2/pools", Role::Op, Some("post_pool"), "Create a pool (slots -1: unlimited)", post_pool),
    guarded(Patch, "/api/v2/pools", Role::Op, Some("bulk_pools"), "Create, update and delete pools in bulk", bulk_pools),
    guarded(Get, "/api/v2/pools/{pool_name}", Role::Viewer, None, "Get a pool with its slot usage", get_pool),
    guarded(Patch, "/api/v2/pools/{pool_name}", Role::Op, Some("patch_pool"), "Update a pool", patch_pool),
    guarded(Delete, "/api/v2/pools/{pool_name}", Role::Op, Some("delete_pool"), "Delete a pool (not default_pool)", delete_pool),
];

const DEFAULT_POOL: &str = "default_pool";

const POOL: &[Field] = &[
    field("name", Kind::Str, true, false),
    field("slots", Kind::Int, true, false),
    field("description", Kind::Str, false, true),
    field("include_deferred", Kind::Bool, false, false),
    field("team_name", Kind::Str, false, true),
];

const POOL_PATCH: &[Field] = &[
    field("name", Kind::Str, false, true),
    field("slots", Kind::Int, false, false),
    field("description", Kind::Str, false, true),
    field("include_deferred", Kind::Bool, false, false),
    field("team_name", Kind::Str, false, true),
];

fn list_pools(ctx: &Ctx, store: &mut Store, req: &Req, _: &Params) -> Result<Reply, ApiError> {
    let (limit, offset) = page(ctx, req)?;
    let (by, desc) = order_by(req, &["id", "pool", "name"], "id")?;
    let by = if by == "pool" { "name" } else { by };
    let filter = Patterns::new(req, "pool_name");
    let mut rows: Vec<Value> = store
        .pools()?
        .into_iter()
        .filter(|p| filter.keep(&p.pool.name))
        .map(|p| {
            let mut row = pool_json(&p);
            row["id"] = json!(p.id);
            row
        })
        .collect();
    sort(&mut rows, by, desc, &["id"]);
    Ok(Reply::json(200, &collection("pools", rows, limit, offset)))
}

fn get_pool(_: &Ctx, store: &mut Store, _: &Req, p: &Params) -> Result<Reply, ApiError> {
    let name = p.get("pool_name");
    let pool = store
        .pool(name)?
        .ok_or_else(|| ApiError::not_found(pool_missing(name)))?;
    Ok(Reply::json(200, &pool_json(&pool)))
}

fn post_pool(_: &Ctx, store: &mut Store, req: &Req, _: &Params) -> Result<Reply, ApiError> {
    let m = check_pool(&json_body(req)?, &body_loc()).map_err(unprocessable)?;
    let pool = new_pool(&m);
    let created = store.write(|tx| {
        if tx.pool(&pool.name)?.is_some() {
            return Ok(false);
        }
        tx.put_pool(&pool).map(|()| true)
    })?;
    if !created {
        return Err(super::kit::unique_violation(&format!(
            "pool {:?}",
            pool.name
        )));
    }
    pool_reply(store, 201, &pool.name)
}

fn patch_pool(_: &Ctx, store: &mut Store, req: &Req, p: &Params) -> Result<Reply, ApiError> {
    let name = p.get("pool_name");
    let m = check_pool_patch(&json_body(req)?, &body_loc()).map_err(unprocessable)?;
    if m.get("name")
        .and_then(Value::as_str)
        .is_some_and(|n| !n.is_empty() && n != name)
    {
        return Err(ApiError::bad_request(
            "Invalid body, pool name from request body doesn't match uri parameter",
        ));
    }
    let mask = update_mask(req);
    store.write(|tx| {
        let old = tx
            .pool(name)?
            .ok_or_else(|| Error::NotFound(pool_missing(name)))?;
        let new = apply_pool(&old, &m, mask.as_deref()).map_err(Error::Usage)?;
        tx.put_pool(&new)
    })?;
    pool_reply(store, 200, name)
}

fn delete_pool(_: &Ctx, store: &mut Store, _: &Req, p: &Params) -> Result<Reply, ApiError> {
    let name = p.get("pool_name");
    if name == DEFAULT_POOL {
        return Err(ApiError::bad_request("Default Pool can't be deleted"));
    }
    if !store.write(|tx| tx.delete_pool(name))? {
        return Err(ApiError::not_found(pool_missing(name)));
    }
    Ok(no_content())
}

fn bulk_pools(_: &Ctx, store: &mut Store, req: &Req, _: &Params) -> Result<Reply, ApiError> {
    let actions = parse_bulk(req, check_pool, "name")?;
    Ok(Reply::json(200, &run_bulk::<Pools>(store, &actions)?))
}

fn pool_missing(name: &str) -> String {
    format!("The Pool with name: `{name}` was not found")
}

fn pool_reply(store: &Store, status: u16, name: &str) -> Result<Reply, ApiError> {
    let pool = store
        .pool(name)?
        .ok_or_else(|| ApiError::not_found(pool_missing(name)))?;
    Ok(Reply::json(status, &pool_json(&pool)))
}

/// PoolBody accepts its field's own name `pool` for `name` (pydantic's populate_by_name).
fn pool_alias(v: &Value) -> Value {
    let mut v = v.clone();
    if let Value::Object(m) = &mut v
        && !m.contains_key("name")
        && let Some(p) = m.shift_remove("pool")
    {
        m.insert("name".into(), p);
    }
    v
}

fn check_pool(v: &Value, loc: &[Value]) -> Result<Map<String, Value>, Vec<Value>> {
    let m = validate(&pool_alias(v), POOL, loc)?;
    let mut errors = Vec::new();
    max_len(&m, "name", 256, loc, &mut errors);
    min_slots(&m, loc, &mut errors);
    no_team(&m, loc, &mut errors);
    errors.is_empty().then_some(m).ok_or(errors)
}

fn check_pool_patch(v: &Value, loc: &[Value]) -> Result<Map<String, Value>, Vec<Value>> {
    let m = validate(&pool_alias(v), POOL_PATCH, loc)?;
    let mut errors = Vec::new();
    min_slots(&m, loc, &mut errors);
    no_team(&m, loc, &mut errors);
    errors.is_empty().then_some(m).ok_or(errors)
}

/// `slots` is at least -1 (unlimited).
fn min_slots(m: &Map<String, Value>, loc: &[Value], errors: &mut Vec<Value>) {
    if let Some(n) = m.get("slots").and_then(Value::as_i64)
        && n < -1
    {
        errors.push(error(
            &at(loc, "slots"),
            "greater_than_equal",
            "Input should be greater than or equal to -1",
            &json!(n),
            Some(json!({"ge": -1})),
        ));
    }
}

fn new_pool(m: &Map<String, Value>) -> Pool {
    Pool {
        name: string(m, "name").unwrap_or_default(),
        slots: m.get("slots").and_then(Value::as_i64).unwrap_or(0),
        description: string(m, "description"),
        include_deferred: m
            .get("include_deferred")
            .and_then(Value::as_bool)
            .unwrap_or(false),
    }
}

/// A pool PATCH. `default_pool` changes only through an `update_mask` of `slots` and
/// `include_deferred`, as in Airflow. Other pools take any fields given (Airflow asks for
/// name, slots and include_deferred together; a partial body is friendlier and means the
/// same). The name cannot change: it is the pool's id.
fn apply_pool(
    old: &Pool,
    m: &Map<String, Value>,
    mask: Option<&[String]>,
) -> std::result::Result<Pool, String> {
    if old.name == DEFAULT_POOL
        && !mask.is_some_and(|mk| {
            mk.iter()
                .all(|f| matches!(f.trim(), "slots" | "include_deferred"))
        })
    {
        return Err("Only slots and included_deferred can be modified on Default Pool".into());
    }
    let mut p = old.clone();
    for f in fields_to_update(m, mask, &[])? {
        match f.as_str() {
            "slots" => p.slots = get(m, "slots").as_i64().unwrap_or(p.slots),
            "description" => p.description = string(m, "description"),
            "include_deferred" => {
                p.include_deferred = get(m, "include_deferred")
                    .as_bool()
                    .unwrap_or(p.include_deferred)
            }
            _ => {}
        }
    }
    Ok(p)
}

/// PoolResponse: slot counts from task instances, each weighted by its `pool_slots`.
fn pool_json(p: &crate::store::PoolRow) -> Value {
    json!({
        "name": p.pool.name,
        "slots": p.pool.slots,
        "description": p.pool.description,
        "include_deferred": p.pool.include_deferred,
        "occupied_slots": p.occupied(),
        "running_slots": p.running,
        "queued_slots": p.queued,
        "scheduled_slots": p.scheduled,
        "open_slots": p.open(),
        "deferred_slots": p.deferred,
        "team_name": null,
    })
}

struct Pools;

impl Bulk for Pools {
    const NOUN: &'static str = "pools";
    const IDS: &'static str = "pool names";
    fn exists(tx: &Tx, id: &str) -> Result<bool> {
        Ok(tx.pool(id)?.is_some())
    }
    fn create(tx: &Tx, m: &Map<String, Value>, exists: bool) -> Result<()> {
        let new = new_pool(m);
        match tx.pool(&new.name)?.filter(|_| exists) {
            Some(mut p) => {
                p.slots = new.slots;
                if m.contains_key("description") {
                    p.description = new.description;
                }
                if m.contains_key("include_deferred") {
                    p.include_deferred = new.include_deferred;
                }
                tx.put_pool(&p)
            }
            None => tx.put_pool(&new),
        }
    }
    fn update(
        tx: &Tx,
        id: &str,
        m: &Map<String, Value>,
        mask: Option<&[String]>,
    ) -> Result<std::result::Result<(), String>> {
        let Some(old) = tx.pool(id)? else {
            return Ok(Err(pool_missing(id)));
        };
        match apply_pool(&old, m, mask) {
            Ok(p) => tx.put_pool(&p).map(Ok),
            Err(e) => Ok(Err(e)),
        }
    }
    /// Unlike Airflow's bulk delete, which would remove it, `default_pool` stays: every
    /// task without a pool needs it (the single DELETE refuses it too).
    fn delete(tx: &Tx, id: &str) -> Result<std::result::Result<(), String>> {
        if id == DEFAULT_POOL {
            return Ok(Err("Default Pool can't be deleted".into()));
        }
        tx.delete_pool(id).map(|_| Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn update_mask_rules_for_the_default_pool() {
        let default = Pool {
            name: DEFAULT_POOL.into(),
            slots: 128,
            description: None,
            include_deferred: false,
        };
        let body = json!({"slots": 5, "description": "x"});
        let body = body.as_object().unwrap();
        assert!(apply_pool(&default, body, None).is_err());
        let mask = vec!["slots".to_string()];
        let p = apply_pool(&default, body, Some(&mask)).unwrap();
        assert_eq!((p.slots, p.description), (5, None));
    }
}
