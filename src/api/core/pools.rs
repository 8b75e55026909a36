//! Pools: create, read, update, delete and bulk changes, with their slot usage, with
//! Airflow 3.3.2's paths, shapes, texts and status codes. `default_pool` cannot be deleted.

use super::bulk::{Objects, bulk, delete_one, get_one, patch_one, post_one};
use super::kit::unique_violation;
use crate::store::{Pool, Store, Tx};
use serde_json::{Map, Value, json};

use super::kit::{Field, Kind, collection, field, order_by, page};
use super::kit::{
    Patterns, at, error, fields_to_update, get, max_len, no_team, sort, string, validate,
};
use crate::api::http::{ApiError, Method, Reply, Req};
use crate::api::route::{Ctx, Params, Route, guarded};
use crate::auth::Role;
use crate::error::Result;

use Method::{Delete, Get, Patch, Post};

/// Pools.
#[rustfmt::skip]
pub static ROUTES: &[Route] = &[
    guarded(Get, "/api/v2/pools", Role::Viewer, None, "List pools with their slot usage", list_pools),
    guarded(Post, "/api/v2/pools", Role::Op, Some("post_pool"), "Create a pool (slots -1: unlimited)", post_one::<Pools>),
    guarded(Patch, "/api/v2/pools", Role::Op, Some("bulk_pools"), "Create, update and delete pools in bulk", bulk::<Pools>),
    guarded(Get, "/api/v2/pools/{pool_name:path}", Role::Viewer, None, "Get a pool with its slot usage", get_one::<Pools>),
    guarded(Patch, "/api/v2/pools/{pool_name:path}", Role::Op, Some("patch_pool"), "Update a pool", patch_one::<Pools>),
    guarded(Delete, "/api/v2/pools/{pool_name:path}", Role::Op, Some("delete_pool"), "Delete a pool (not default_pool)", delete_one::<Pools>),
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

fn pool_missing(name: &str) -> String {
    format!("The Pool with name: `{name}` was not found")
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

impl Objects for Pools {
    const NOUN: &'static str = "pools";
    const IDS: &'static str = "pool names";
    const PARAM: &'static str = "pool_name";
    const ID_FIELD: &'static str = "name";
    fn check(v: &Value, loc: &[Value]) -> std::result::Result<Map<String, Value>, Vec<Value>> {
        check_pool(v, loc)
    }
    fn check_patch(
        v: &Value,
        loc: &[Value],
    ) -> std::result::Result<Map<String, Value>, Vec<Value>> {
        check_pool_patch(v, loc)
    }
    fn id_mismatch(body: &Map<String, Value>, id: &str) -> Option<&'static str> {
        body.get("name")
            .and_then(Value::as_str)
            .is_some_and(|n| !n.is_empty() && n != id)
            .then_some("Invalid body, pool name from request body doesn't match uri parameter")
    }
    fn missing(id: &str) -> String {
        pool_missing(id)
    }
    fn already_exists(id: &str) -> ApiError {
        unique_violation(&format!("pool {id:?}"))
    }
    fn show(store: &Store, id: &str) -> Result<Option<Value>> {
        Ok(store.pool(id)?.map(|p| pool_json(&p)))
    }
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
