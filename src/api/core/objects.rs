//! Variables, connections and pools (each with create, read, update, delete and bulk
//! changes), the configuration, plugins, providers and jobs: the Core API's "Admin" and
//! "Browse" objects, with Airflow 3.3.2's paths, shapes, texts and status codes.
//!
//! Secrets never leave in clear: a variable whose key looks secret answers `***`, a
//! connection's password is always `***` and its `extra` is masked key by key. A `***`
//! sent back in a PATCH keeps the stored secret, as Airflow merges it. No SQL here: reads
//! and writes go through `store` (`q_objects.rs`), each change in one transaction.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use super::{
    Field, Kind, body, collection, dt, field, is_sensitive, like, mask, order_by, page, query_all,
    query_bool, query_time, sort_rows,
};
use crate::api::{ApiError, Ctx, Method, Params, Reply, Req, Route, guarded};
use crate::auth::Role;
use crate::error::{Error, Result};
use crate::store::{Connection, Pool, Store, Tx, Variable};

use Method::{Delete, Get, Patch, Post};

/// Variables, connections, pools, config, plugins, providers, jobs.
#[rustfmt::skip]
pub static ROUTES: &[Route] = &[
    guarded(Get, "/api/v2/variables", Role::Op, None, "List variables (values of secret-looking keys masked)", list_variables),
    guarded(Post, "/api/v2/variables", Role::Op, Some("post_variable"), "Create a variable", post_variable),
    guarded(Patch, "/api/v2/variables", Role::Op, Some("bulk_variables"), "Create, update and delete variables in bulk", bulk_variables),
    guarded(Get, "/api/v2/variables/{variable_key}", Role::Op, None, "Get a variable", get_variable),
    guarded(Patch, "/api/v2/variables/{variable_key}", Role::Op, Some("patch_variable"), "Update a variable (update_mask for some fields)", patch_variable),
    guarded(Delete, "/api/v2/variables/{variable_key}", Role::Op, Some("delete_variable"), "Delete a variable", delete_variable),
    guarded(Get, "/api/v2/connections", Role::Op, None, "List connections (passwords and secret extras masked)", list_connections),
    guarded(Post, "/api/v2/connections", Role::Op, Some("post_connection"), "Create a connection", post_connection),
    guarded(Patch, "/api/v2/connections", Role::Op, Some("bulk_connections"), "Create, update and delete connections in bulk", bulk_connections),
    guarded(Post, "/api/v2/connections/test", Role::Op, None, "Test a connection (only with [core] test_connection = Enabled)", test_connection),
    guarded(Get, "/api/v2/connections/{connection_id}", Role::Op, None, "Get a connection", get_connection),
    guarded(Patch, "/api/v2/connections/{connection_id}", Role::Op, Some("patch_connection"), "Update a connection; `***` keeps a stored secret", patch_connection),
    guarded(Delete, "/api/v2/connections/{connection_id}", Role::Op, Some("delete_connection"), "Delete a connection", delete_connection),
    guarded(Get, "/api/v2/pools", Role::Viewer, None, "List pools with their slot usage", list_pools),
    guarded(Post, "/api/v2/pools", Role::Op, Some("post_pool"), "Create a pool (slots -1: unlimited)", post_pool),
    guarded(Patch, "/api/v2/pools", Role::Op, Some("bulk_pools"), "Create, update and delete pools in bulk", bulk_pools),
    guarded(Get, "/api/v2/pools/{pool_name}", Role::Viewer, None, "Get a pool with its slot usage", get_pool),
    guarded(Patch, "/api/v2/pools/{pool_name}", Role::Op, Some("patch_pool"), "Update a pool", patch_pool),
    guarded(Delete, "/api/v2/pools/{pool_name}", Role::Op, Some("delete_pool"), "Delete a pool (not default_pool)", delete_pool),
    guarded(Get, "/api/v2/config", Role::Viewer, None, "The configuration, if [api] expose_config allows (JSON or text/plain)", get_config),
    guarded(Get, "/api/v2/config/section/{section}/option/{option}", Role::Viewer, None, "One configuration value, if [api] expose_config allows", get_config_value),
    guarded(Get, "/api/v2/plugins", Role::Viewer, None, "Plugins (updraft loads none)", list_plugins),
    guarded(Get, "/api/v2/plugins/importErrors", Role::Viewer, None, "Plugin import errors (updraft loads no plugins)", plugin_import_errors),
    guarded(Get, "/api/v2/providers", Role::Viewer, None, "Provider packages (updraft installs none)", list_providers),
    guarded(Get, "/api/v2/jobs", Role::Viewer, None, "Jobs (schedulers) and their heartbeats", list_jobs),
];

// ---------------------------------------------------------------- variables

/// Airflow's `ID_LEN`: the longest variable key.
const ID_LEN: usize = 250;

const VARIABLE: &[Field] = &[
    field("key", Kind::Str, true, false),
    field("value", Kind::Any, true, true),
    field("description", Kind::Str, false, true),
    field("team_name", Kind::Str, false, true),
];

fn list_variables(ctx: &Ctx, store: &mut Store, req: &Req, _: &Params) -> Result<Reply, ApiError> {
    let (limit, offset) = page(ctx, req)?;
    let allowed = [
        "key",
        "id",
        "_val",
        "description",
        "is_encrypted",
        "team_name",
    ];
    let (by, desc) = order_by(req, &allowed, "id")?;
    let filter = Patterns::new(req, "variable_key");
    let mut rows: Vec<Value> = store
        .variables()?
        .into_iter()
        .filter(|(_, v)| filter.keep(&v.key))
        .map(|(id, v)| {
            let mut row = variable_json(&v);
            row["id"] = json!(id);
            row["_val"] = json!(v.val);
            row
        })
        .collect();
    sort(&mut rows, by, desc, &["id", "_val"]);
    Ok(Reply::json(
        200,
        &collection("variables", rows, limit, offset),
    ))
}

fn get_variable(_: &Ctx, store: &mut Store, _: &Req, p: &Params) -> Result<Reply, ApiError> {
    let key = p.get("variable_key");
    let v = store
        .variable(key)?
        .ok_or_else(|| ApiError::not_found(variable_missing(key)))?;
    Ok(Reply::json(200, &variable_json(&v)))
}

fn post_variable(_: &Ctx, store: &mut Store, req: &Req, _: &Params) -> Result<Reply, ApiError> {
    let m = check_variable(&read_json(req)?, &body_loc()).map_err(unprocessable)?;
    let v = Variable {
        key: text(&m, "key").unwrap_or_default(),
        val: stored_value(get(&m, "value")),
        description: text(&m, "description"),
    };
    store.write(|tx| {
        if tx.variable(&v.key)?.is_some() {
            return Err(Error::Conflict(format!(
                "The Variable with key: `{}` already exists",
                v.key
            )));
        }
        tx.put_variable(&v)
    })?;
    Ok(Reply::json(201, &variable_json(&v)))
}

fn patch_variable(_: &Ctx, store: &mut Store, req: &Req, p: &Params) -> Result<Reply, ApiError> {
    let key = p.get("variable_key");
    let m = check_variable(&read_json(req)?, &body_loc()).map_err(unprocessable)?;
    if get(&m, "key") != key {
        return Err(ApiError::bad_request(
            "Invalid body, key from request body doesn't match uri parameter",
        ));
    }
    let mask = update_mask(req);
    let v = store.write(|tx| {
        let old = tx
            .variable(key)?
            .ok_or_else(|| Error::NotFound(variable_missing(key)))?;
        let new = apply_variable(&old, &m, mask.as_deref()).map_err(Error::Usage)?;
        tx.put_variable(&new)?;
        Ok(new)
    })?;
    Ok(Reply::json(200, &variable_json(&v)))
}

fn delete_variable(_: &Ctx, store: &mut Store, _: &Req, p: &Params) -> Result<Reply, ApiError> {
    let key = p.get("variable_key");
    if !store.write(|tx| tx.delete_variable(key))? {
        return Err(ApiError::not_found(variable_missing(key)));
    }
    Ok(no_content())
}

fn bulk_variables(_: &Ctx, store: &mut Store, req: &Req, _: &Params) -> Result<Reply, ApiError> {
    let actions = parse_bulk(req, check_variable, "key")?;
    Ok(Reply::json(200, &run_bulk::<Vars>(store, &actions)?))
}

fn variable_missing(key: &str) -> String {
    format!("The Variable with key: `{key}` was not found")
}

fn check_variable(v: &Value, loc: &[Value]) -> Result<Map<String, Value>, Vec<Value>> {
    let m = check(v, VARIABLE, loc)?;
    let mut errors = Vec::new();
    max_len(&m, "key", ID_LEN, loc, &mut errors);
    no_team(&m, loc, &mut errors);
    errors.is_empty().then_some(m).ok_or(errors)
}

/// VariableResponse. `is_encrypted` is false: updraft keeps no Fernet key.
fn variable_json(v: &Variable) -> Value {
    json!({
        "key": v.key,
        "value": shown_value(&v.key, &v.val),
        "description": v.description,
        "is_encrypted": false,
        "team_name": null,
    })
}

/// A variable's value as stored: a string as it is, anything else as Python's
/// `json.dumps(value, indent=2)` writes it (so `Variable.get(deserialize_json=True)`
/// reads it back).
fn stored_value(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => py_json(other, Some(2)),
    }
}

/// A value as the API shows it: `***` under a secret-looking key; JSON re-written the way
/// Python writes it, with secret-looking keys inside masked; other text as it is.
fn shown_value(key: &str, val: &str) -> String {
    if is_sensitive(key) {
        return "***".into();
    }
    match serde_json::from_str::<Value>(val) {
        Ok(v) => py_json(&mask(&v), None),
        Err(_) => val.to_string(),
    }
}

/// The fields a PATCH changes: those in the body, only those in `update_mask` when one
/// is given, never the immutable ones (naming one in the mask is a 400, as in Airflow).
fn fields_to_update(
    m: &Map<String, Value>,
    mask: Option<&[String]>,
    immutable: &[&str],
) -> std::result::Result<Vec<String>, String> {
    let mut fields: Vec<String> = m
        .keys()
        .filter(|k| !immutable.contains(&k.as_str()))
        .cloned()
        .collect();
    if let Some(mask) = mask {
        let bad: BTreeSet<&str> = mask
            .iter()
            .map(String::as_str)
            .filter(|k| immutable.contains(k))
            .collect();
        if !bad.is_empty() {
            return Err(format!(
                "Update not allowed: the following fields are immutable and cannot be modified: {}",
                py_set(bad)
            ));
        }
        fields.retain(|f| mask.contains(f));
    }
    Ok(fields)
}

fn apply_variable(
    old: &Variable,
    m: &Map<String, Value>,
    mask: Option<&[String]>,
) -> std::result::Result<Variable, String> {
    let mut v = old.clone();
    for f in fields_to_update(m, mask, &["key"])? {
        match f.as_str() {
            "value" => v.val = stored_value(get(m, "value")),
            "description" => v.description = text(m, "description"),
            _ => {}
        }
    }
    Ok(v)
}

// ---------------------------------------------------------------- connections

const CONNECTION: &[Field] = &[
    field("connection_id", Kind::Str, true, false),
    field("conn_type", Kind::Str, true, false),
    field("description", Kind::Str, false, true),
    field("host", Kind::Str, false, true),
    field("login", Kind::Str, false, true),
    field("schema", Kind::Str, false, true),
    field("port", Kind::Int, false, true),
    field("password", Kind::Str, false, true),
    field("extra", Kind::Str, false, true),
    field("team_name", Kind::Str, false, true),
];

/// ConnectionBody's `connection_id` pattern.
const CONN_ID_PATTERN: &str = r"^[\w.-]+$";

fn list_connections(
    ctx: &Ctx,
    store: &mut Store,
    req: &Req,
    _: &Params,
) -> Result<Reply, ApiError> {
    let (limit, offset) = page(ctx, req)?;
    let allowed = [
        "conn_id",
        "connection_id",
        "conn_type",
        "description",
        "host",
        "port",
        "id",
        "team_name",
    ];
    let (by, desc) = order_by(req, &allowed, "id")?;
    let by = if by == "conn_id" { "connection_id" } else { by };
    let filter = Patterns::new(req, "connection_id");
    let mut rows: Vec<Value> = store
        .connections()?
        .into_iter()
        .filter(|(_, c)| filter.keep(&c.conn_id))
        .map(|(id, c)| {
            let mut row = connection_json(&c);
            row["id"] = json!(id);
            row
        })
        .collect();
    sort(&mut rows, by, desc, &["id"]);
    Ok(Reply::json(
        200,
        &collection("connections", rows, limit, offset),
    ))
}

fn get_connection(_: &Ctx, store: &mut Store, _: &Req, p: &Params) -> Result<Reply, ApiError> {
    let id = p.get("connection_id");
    let c = store
        .connection(id)?
        .ok_or_else(|| ApiError::not_found(connection_missing(id)))?;
    Ok(Reply::json(200, &connection_json(&c)))
}

fn post_connection(_: &Ctx, store: &mut Store, req: &Req, _: &Params) -> Result<Reply, ApiError> {
    let m = check_connection(&read_json(req)?, &body_loc()).map_err(unprocessable)?;
    let c = new_connection(&m);
    let created = store.write(|tx| {
        if tx.connection(&c.conn_id)?.is_some() {
            return Ok(false);
        }
        tx.put_connection(&c).map(|()| true)
    })?;
    if !created {
        return Err(super::unique_violation(&format!(
            "connection {:?}",
            c.conn_id
        )));
    }
    Ok(Reply::json(201, &connection_json(&c)))
}

fn patch_connection(_: &Ctx, store: &mut Store, req: &Req, p: &Params) -> Result<Reply, ApiError> {
    let id = p.get("connection_id");
    let m = check_connection(&read_json(req)?, &body_loc()).map_err(unprocessable)?;
    if get(&m, "connection_id") != id {
        return Err(ApiError::bad_request(
            "The connection_id in the request body does not match the URL parameter",
        ));
    }
    let mask = update_mask(req);
    let c = store.write(|tx| {
        let old = tx
            .connection(id)?
            .ok_or_else(|| Error::NotFound(connection_missing(id)))?;
        let new = apply_connection(&old, &m, mask.as_deref());
        tx.put_connection(&new)?;
        Ok(new)
    })?;
    Ok(Reply::json(200, &connection_json(&c)))
}

fn delete_connection(_: &Ctx, store: &mut Store, _: &Req, p: &Params) -> Result<Reply, ApiError> {
    let id = p.get("connection_id");
    if !store.write(|tx| tx.delete_connection(id))? {
        return Err(ApiError::not_found(connection_missing(id)));
    }
    Ok(no_content())
}

fn bulk_connections(_: &Ctx, store: &mut Store, req: &Req, _: &Params) -> Result<Reply, ApiError> {
    let actions = parse_bulk(req, check_connection, "connection_id")?;
    Ok(Reply::json(200, &run_bulk::<Conns>(store, &actions)?))
}

/// `POST /connections/test`: off unless `[core] test_connection = Enabled`, as in Airflow.
/// When on, the answer is the one Airflow gives for a connection type no installed
/// provider has a hook for, which is every type here: updraft ships no hooks.
fn test_connection(ctx: &Ctx, _: &mut Store, req: &Req, _: &Params) -> Result<Reply, ApiError> {
    let m = check_connection(&read_json(req)?, &body_loc()).map_err(unprocessable)?;
    let mode = ctx
        .cfg
        .get("core", "test_connection")
        .map(|e| e.value.trim().to_ascii_lowercase());
    if mode.as_deref() != Some("enabled") {
        return Err(ApiError::new(
            403,
            "Testing connections is disabled in Airflow configuration. Contact your deployment admin to enable it.",
        ));
    }
    let conn_type = text(&m, "conn_type").unwrap_or_default();
    Ok(Reply::json(
        200,
        &json!({"status": false, "message": format!("Unknown hook type \"{conn_type}\"")}),
    ))
}

fn connection_missing(id: &str) -> String {
    format!("The Connection with connection_id: `{id}` was not found")
}

fn check_connection(v: &Value, loc: &[Value]) -> Result<Map<String, Value>, Vec<Value>> {
    let m = check(v, CONNECTION, loc)?;
    let mut errors = Vec::new();
    if let Some(id) = m.get("connection_id").and_then(Value::as_str) {
        max_len(&m, "connection_id", 200, loc, &mut errors);
        let ok = !id.is_empty()
            && id
                .chars()
                .all(|c| c.is_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if !ok {
            errors.push(error(
                &at(loc, "connection_id"),
                "string_pattern_mismatch",
                &format!("String should match pattern '{CONN_ID_PATTERN}'"),
                &json!(id),
                Some(json!({"pattern": CONN_ID_PATTERN})),
            ));
        }
    }
    if let Some(extra) = m
        .get("extra")
        .and_then(Value::as_str)
        .filter(|e| !e.is_empty())
    {
        let why = match serde_json::from_str::<Value>(extra) {
            Ok(Value::Object(_)) => None,
            Ok(_) => Some(
                "Value error, The `extra` field must be a valid JSON object (e.g., {'key': 'value'})",
            ),
            Err(_) => Some(
                "Value error, The `extra` field must be a valid JSON object (e.g., {'key': 'value'}), but encountered non-JSON in `extra` field",
            ),
        };
        if let Some(msg) = why {
            errors.push(error(
                &at(loc, "extra"),
                "value_error",
                msg,
                &json!(extra),
                Some(json!({"error": {}})),
            ));
        }
    }
    no_team(&m, loc, &mut errors);
    errors.is_empty().then_some(m).ok_or(errors)
}

/// `extra` as stored: `""` is `{}`, as Airflow keeps it.
fn extra_text(m: &Map<String, Value>) -> Option<String> {
    m.get("extra")
        .and_then(Value::as_str)
        .map(|e| if e.is_empty() { "{}".into() } else { e.into() })
}

fn new_connection(m: &Map<String, Value>) -> Connection {
    Connection {
        conn_id: text(m, "connection_id").unwrap_or_default(),
        conn_type: text(m, "conn_type").unwrap_or_default(),
        description: text(m, "description"),
        host: text(m, "host"),
        schema: text(m, "schema"),
        login: text(m, "login"),
        password: text(m, "password"),
        port: m.get("port").and_then(Value::as_i64),
        extra: extra_text(m),
    }
}

/// ConnectionResponse: the password is `***` whenever one is set; `extra` has the values
/// of secret-looking keys masked (and text that is not JSON is hidden whole).
fn connection_json(c: &Connection) -> Value {
    let extra = c.extra.as_deref().map(|e| {
        if e.is_empty() {
            String::new()
        } else {
            serde_json::from_str::<Value>(e)
                .map_or_else(|_| "***".into(), |v| py_json(&mask(&v), None))
        }
    });
    json!({
        "connection_id": c.conn_id,
        "conn_type": c.conn_type,
        "description": c.description,
        "host": c.host,
        "login": c.login,
        "schema": c.schema,
        "port": c.port,
        "password": c.password.as_ref().map(|_| "***"),
        "extra": extra,
        "team_name": null,
    })
}

/// A PATCH of a connection, as Airflow's `update_orm_from_pydantic`: plain fields as
/// given; the password and `extra` merged with the stored ones, so a `***` the client
/// got from a GET keeps the stored secret.
fn apply_connection(
    old: &Connection,
    m: &Map<String, Value>,
    mask: Option<&[String]>,
) -> Connection {
    let in_mask = |f: &str| mask.is_none_or(|mk| mk.iter().any(|x| x == f));
    let set = |f: &str| m.contains_key(f) && in_mask(f);
    let mut c = old.clone();
    if set("conn_type") {
        c.conn_type = text(m, "conn_type").unwrap_or_default();
    }
    for (f, slot) in [
        ("description", &mut c.description),
        ("host", &mut c.host),
        ("login", &mut c.login),
        ("schema", &mut c.schema),
    ] {
        if set(f) {
            *slot = text(m, f);
        }
    }
    if set("port") {
        c.port = m.get("port").and_then(Value::as_i64);
    }
    // Named in the mask, a field missing from the body is cleared, as in Airflow.
    let touched = |f: &str| match mask {
        None => m.contains_key(f),
        Some(mk) => mk.iter().any(|x| x == f),
    };
    if touched("password") {
        c.password = match text(m, "password") {
            Some(p) if p == "***" => old.password.clone(),
            other => other,
        };
    }
    if touched("extra") {
        let new = extra_text(m);
        c.extra = match (&new, &old.extra) {
            (Some(n), Some(o)) => match (
                serde_json::from_str::<Value>(n),
                serde_json::from_str::<Value>(o),
            ) {
                (Ok(n), Ok(o)) => Some(py_json(&merge(&n, &o, false), None)),
                _ => new,
            },
            _ => new,
        };
    }
    c
}

/// Airflow's secrets-masker `merge`: where the new value still holds `***` under a
/// secret-looking key, the old value comes back.
fn merge(new: &Value, old: &Value, sensitive: bool) -> Value {
    match (new, old) {
        (Value::Object(n), Value::Object(o)) => Value::Object(
            n.iter()
                .map(|(k, v)| {
                    let merged = match o.get(k) {
                        Some(ov) => merge(v, ov, sensitive || is_sensitive(k)),
                        None => v.clone(),
                    };
                    (k.clone(), merged)
                })
                .collect(),
        ),
        (Value::Array(n), Value::Array(o)) => Value::Array(
            n.iter()
                .enumerate()
                .map(|(i, v)| match o.get(i) {
                    Some(ov) => merge(v, ov, sensitive),
                    None => v.clone(),
                })
                .collect(),
        ),
        _ if sensitive && new == "***" => old.clone(),
        _ => new.clone(),
    }
}

// ---------------------------------------------------------------- pools

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
    let m = check_pool(&read_json(req)?, &body_loc()).map_err(unprocessable)?;
    let pool = new_pool(&m);
    let created = store.write(|tx| {
        if tx.pool(&pool.name)?.is_some() {
            return Ok(false);
        }
        tx.put_pool(&pool).map(|()| true)
    })?;
    if !created {
        return Err(super::unique_violation(&format!("pool {:?}", pool.name)));
    }
    pool_reply(store, 201, &pool.name)
}

fn patch_pool(_: &Ctx, store: &mut Store, req: &Req, p: &Params) -> Result<Reply, ApiError> {
    let name = p.get("pool_name");
    let m = check_pool_patch(&read_json(req)?, &body_loc()).map_err(unprocessable)?;
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
    let m = check(&pool_alias(v), POOL, loc)?;
    let mut errors = Vec::new();
    max_len(&m, "name", 256, loc, &mut errors);
    min_slots(&m, loc, &mut errors);
    no_team(&m, loc, &mut errors);
    errors.is_empty().then_some(m).ok_or(errors)
}

fn check_pool_patch(v: &Value, loc: &[Value]) -> Result<Map<String, Value>, Vec<Value>> {
    let m = check(&pool_alias(v), POOL_PATCH, loc)?;
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
        name: text(m, "name").unwrap_or_default(),
        slots: m.get("slots").and_then(Value::as_i64).unwrap_or(0),
        description: text(m, "description"),
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
            "description" => p.description = text(m, "description"),
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

// ---------------------------------------------------------------- bulk

/// One action of a BulkBody.
#[derive(Debug)]
struct Action {
    kind: BulkKind,
    /// Entity ids, with the checked body (none for a delete by id).
    entities: Vec<(String, Option<Map<String, Value>>)>,
    /// `action_on_existence` of a create: fail, skip or overwrite.
    on_existence: &'static str,
    /// `action_on_non_existence` of an update or delete: fail or skip.
    on_missing: &'static str,
    update_mask: Option<Vec<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum BulkKind {
    Create = 0,
    Update = 1,
    Delete = 2,
}

const BULK_CREATE: &[Field] = &[
    field("action", Kind::Str, true, false),
    field("entities", Kind::List, true, false),
    field("action_on_existence", Kind::Str, false, false),
];
const BULK_UPDATE: &[Field] = &[
    field("action", Kind::Str, true, false),
    field("entities", Kind::List, true, false),
    field("update_mask", Kind::List, false, true),
    field("action_on_non_existence", Kind::Str, false, false),
];
const BULK_DELETE: &[Field] = &[
    field("action", Kind::Str, true, false),
    field("entities", Kind::List, true, false),
    field("action_on_non_existence", Kind::Str, false, false),
];

type Check = fn(&Value, &[Value]) -> Result<Map<String, Value>, Vec<Value>>;

/// Reads a BulkBody: every problem in one pydantic-style 422, located as pydantic
/// locates it (`["body", "actions", 0, "create", "entities", 1, "key"]`).
fn parse_bulk(req: &Req, check_entity: Check, id_field: &str) -> Result<Vec<Action>, ApiError> {
    let top = check(
        &read_json(req)?,
        &[field("actions", Kind::List, true, false)],
        &body_loc(),
    )
    .map_err(unprocessable)?;
    let mut errors = Vec::new();
    let mut actions = Vec::new();
    let empty = Vec::new();
    for (i, a) in get(&top, "actions")
        .as_array()
        .unwrap_or(&empty)
        .iter()
        .enumerate()
    {
        let base = [json!("body"), json!("actions"), json!(i)];
        let tags = "'create', 'update', 'delete'";
        let (kind, fields) = match a.get("action").and_then(Value::as_str) {
            Some("create") => (BulkKind::Create, BULK_CREATE),
            Some("update") => (BulkKind::Update, BULK_UPDATE),
            Some("delete") => (BulkKind::Delete, BULK_DELETE),
            Some(tag) => {
                errors.push(error(
                    &base,
                    "union_tag_invalid",
                    &format!("Input tag '{tag}' found using _action_discriminator() does not match any of the expected tags: {tags}"),
                    a,
                    Some(json!({"discriminator": "_action_discriminator()", "tag": tag, "expected_tags": tags})),
                ));
                continue;
            }
            None => {
                errors.push(error(
                    &base,
                    "union_tag_not_found",
                    "Unable to extract tag using discriminator _action_discriminator()",
                    a,
                    Some(json!({"discriminator": "_action_discriminator()"})),
                ));
                continue;
            }
        };
        let tag = ["create", "update", "delete"][kind as usize];
        let loc: Vec<Value> = base.iter().cloned().chain([json!(tag)]).collect();
        let m = match check(a, fields, &loc) {
            Ok(m) => m,
            Err(e) => {
                errors.extend(e);
                continue;
            }
        };
        let mut choice = |name: &str, options: &[&'static str]| -> &'static str {
            match m.get(name).and_then(Value::as_str) {
                None => options[0],
                Some(v) => options
                    .iter()
                    .find(|o| **o == v)
                    .copied()
                    .unwrap_or_else(|| {
                        let expected = match options {
                            [a, b] => format!("'{a}' or '{b}'"),
                            _ => "'fail', 'skip' or 'overwrite'".into(),
                        };
                        errors.push(error(
                            &at(&loc, name),
                            "enum",
                            &format!("Input should be {expected}"),
                            &json!(v),
                            Some(json!({"expected": expected})),
                        ));
                        options[0]
                    }),
            }
        };
        let on_existence = choice("action_on_existence", &["fail", "skip", "overwrite"]);
        let on_missing = choice("action_on_non_existence", &["fail", "skip"]);
        let mut update_mask = None;
        if let Some(Value::Array(fields)) = m.get("update_mask") {
            let mut names = Vec::new();
            for (j, f) in fields.iter().enumerate() {
                match f.as_str() {
                    Some(s) => names.push(s.to_string()),
                    None => errors.push(error(
                        &at(&at(&loc, "update_mask"), j),
                        "string_type",
                        "Input should be a valid string",
                        f,
                        None,
                    )),
                }
            }
            update_mask = (!names.is_empty()).then_some(names);
        }
        let mut entities = Vec::new();
        for (j, e) in get(&m, "entities")
            .as_array()
            .unwrap_or(&empty)
            .iter()
            .enumerate()
        {
            let eloc = at(&at(&loc, "entities"), j);
            if let (BulkKind::Delete, Value::String(id)) = (kind, e) {
                entities.push((id.clone(), None));
                continue;
            }
            match check_entity(e, &eloc) {
                Ok(body) => {
                    let id = text(&body, id_field).unwrap_or_default();
                    entities.push((id, (kind != BulkKind::Delete).then_some(body)));
                }
                Err(e) => errors.extend(e),
            }
        }
        actions.push(Action {
            kind,
            entities,
            on_existence,
            on_missing,
            update_mask,
        });
    }
    if errors.is_empty() {
        Ok(actions)
    } else {
        Err(unprocessable(errors))
    }
}

/// What bulk changes need of one kind of object.
trait Bulk {
    /// `variables`, as the error texts say it.
    const NOUN: &'static str;
    /// `keys`, as the error texts say it.
    const IDS: &'static str;
    fn exists(tx: &Tx, id: &str) -> Result<bool>;
    /// Creates the entity, or overwrites the given fields of an existing one.
    fn create(tx: &Tx, body: &Map<String, Value>, exists: bool) -> Result<()>;
    /// `Err(detail)` for a 400 that stops the action, as Airflow's HTTPException does.
    fn update(
        tx: &Tx,
        id: &str,
        body: &Map<String, Value>,
        mask: Option<&[String]>,
    ) -> Result<std::result::Result<(), String>>;
    fn delete(tx: &Tx, id: &str) -> Result<std::result::Result<(), String>>;
}

struct Vars;
struct Conns;
struct Pools;

impl Bulk for Vars {
    const NOUN: &'static str = "variables";
    const IDS: &'static str = "keys";
    fn exists(tx: &Tx, id: &str) -> Result<bool> {
        Ok(tx.variable(id)?.is_some())
    }
    fn create(tx: &Tx, m: &Map<String, Value>, _: bool) -> Result<()> {
        // Variable.set replaces the whole variable, description too.
        tx.put_variable(&Variable {
            key: text(m, "key").unwrap_or_default(),
            val: stored_value(get(m, "value")),
            description: text(m, "description"),
        })
    }
    fn update(
        tx: &Tx,
        id: &str,
        m: &Map<String, Value>,
        mask: Option<&[String]>,
    ) -> Result<std::result::Result<(), String>> {
        let Some(old) = tx.variable(id)? else {
            return Ok(Err(variable_missing(id)));
        };
        match apply_variable(&old, m, mask) {
            Ok(v) => tx.put_variable(&v).map(Ok),
            Err(e) => Ok(Err(e)),
        }
    }
    fn delete(tx: &Tx, id: &str) -> Result<std::result::Result<(), String>> {
        tx.delete_variable(id).map(|_| Ok(()))
    }
}

impl Bulk for Conns {
    const NOUN: &'static str = "connections";
    const IDS: &'static str = "connection_ids";
    fn exists(tx: &Tx, id: &str) -> Result<bool> {
        Ok(tx.connection(id)?.is_some())
    }
    fn create(tx: &Tx, m: &Map<String, Value>, exists: bool) -> Result<()> {
        let new = new_connection(m);
        let id = new.conn_id.clone();
        match tx.connection(&id)?.filter(|_| exists) {
            // Overwrite only the fields the request gave, as Airflow's exclude_unset.
            Some(mut c) => {
                let given = |f: &str| m.contains_key(f);
                if given("conn_type") {
                    c.conn_type = new.conn_type;
                }
                if given("description") {
                    c.description = new.description;
                }
                if given("host") {
                    c.host = new.host;
                }
                if given("login") {
                    c.login = new.login;
                }
                if given("schema") {
                    c.schema = new.schema;
                }
                if given("port") {
                    c.port = new.port;
                }
                if given("password") {
                    c.password = new.password;
                }
                if given("extra") {
                    c.extra = new.extra;
                }
                tx.put_connection(&c)
            }
            None => tx.put_connection(&new),
        }
    }
    fn update(
        tx: &Tx,
        id: &str,
        m: &Map<String, Value>,
        mask: Option<&[String]>,
    ) -> Result<std::result::Result<(), String>> {
        let Some(old) = tx.connection(id)? else {
            return Ok(Err(connection_missing(id)));
        };
        tx.put_connection(&apply_connection(&old, m, mask)).map(Ok)
    }
    fn delete(tx: &Tx, id: &str) -> Result<std::result::Result<(), String>> {
        tx.delete_connection(id).map(|_| Ok(()))
    }
}

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

/// Runs every action in one transaction and answers a BulkResponse: per action kind, the
/// ids that succeeded and the errors, `null` for a kind the request did not use. As in
/// Airflow, a failed check (`fail` on existence or absence) skips its whole action, and an
/// update or delete that fails stops the rest of its action.
fn run_bulk<B: Bulk>(store: &mut Store, actions: &[Action]) -> Result<Value, ApiError> {
    let out = store.write(|tx| {
        let mut results: [Option<(Vec<String>, Vec<Value>)>; 3] = Default::default();
        for a in actions {
            let (success, errors) = results[a.kind as usize].get_or_insert_with(Default::default);
            let mut ids: Vec<&str> = Vec::new();
            for (id, _) in &a.entities {
                if !(a.kind == BulkKind::Delete && ids.contains(&id.as_str())) {
                    ids.push(id);
                }
            }
            let mut found = BTreeSet::new();
            let mut missing = BTreeSet::new();
            for id in &ids {
                if B::exists(tx, id)? {
                    found.insert(*id);
                } else {
                    missing.insert(*id);
                }
            }
            match a.kind {
                BulkKind::Create => {
                    if a.on_existence == "fail" && !found.is_empty() {
                        errors.push(bulk_error(
                            409,
                            format!(
                                "The {} with these {}: {} already exist.",
                                B::NOUN,
                                B::IDS,
                                py_set(found)
                            ),
                        ));
                        continue;
                    }
                    for (id, body) in &a.entities {
                        let exists = found.contains(id.as_str());
                        if exists && a.on_existence == "skip" {
                            continue;
                        }
                        if let Some(body) = body {
                            B::create(tx, body, exists)?;
                            success.push(id.clone());
                        }
                    }
                }
                BulkKind::Update | BulkKind::Delete => {
                    if a.on_missing == "fail" && !missing.is_empty() {
                        errors.push(bulk_error(
                            404,
                            format!(
                                "The {} with these {}: {} were not found.",
                                B::NOUN,
                                B::IDS,
                                py_set(missing)
                            ),
                        ));
                        continue;
                    }
                    let mask = a.update_mask.as_deref();
                    let run = |id: &str, body: Option<&Map<String, Value>>| match body {
                        Some(b) if a.kind == BulkKind::Update => B::update(tx, id, b, mask),
                        _ => B::delete(tx, id),
                    };
                    let todo: Vec<(&str, Option<&Map<String, Value>>)> = match a.kind {
                        BulkKind::Update => a
                            .entities
                            .iter()
                            .map(|(id, b)| (id.as_str(), b.as_ref()))
                            .collect(),
                        _ => ids.iter().map(|id| (*id, None)).collect(),
                    };
                    for (id, body) in todo {
                        if missing.contains(id) {
                            continue;
                        }
                        match run(id, body)? {
                            Ok(()) => success.push(id.to_string()),
                            Err(detail) => {
                                errors.push(bulk_error(400, detail));
                                if a.kind == BulkKind::Update {
                                    break;
                                }
                            }
                        }
                    }
                }
            }
        }
        let part = |r: &Option<(Vec<String>, Vec<Value>)>| {
            r.as_ref().map(|(s, e)| json!({"success": s, "errors": e}))
        };
        Ok(json!({
            "create": part(&results[0]),
            "update": part(&results[1]),
            "delete": part(&results[2]),
        }))
    })?;
    Ok(out)
}

fn bulk_error(status: u16, detail: String) -> Value {
    json!({"error": detail, "status_code": status})
}

// ---------------------------------------------------------------- config

/// Options Airflow marks `sensitive` (config.yml), besides updraft's own secrets.
const SENSITIVE_OPTIONS: &[(&str, &str)] = &[
    ("core", "fernet_key"),
    ("core", "asset_manager_kwargs"),
    ("database", "sql_alchemy_conn"),
    ("database", "sql_alchemy_conn_async"),
    ("database", "sql_alchemy_engine_args"),
    ("logging", "remote_task_handler_kwargs"),
    ("secrets", "backend_kwargs"),
    ("api", "secret_key"),
    ("workers", "secrets_backend_kwargs"),
    ("api_auth", "jwt_secret"),
    ("sentry", "sentry_dsn"),
];

const HIDDEN: &str = "< hidden >";

fn sensitive_option(e: &crate::config::Entry) -> bool {
    e.kind == crate::config::Kind::Secret || SENSITIVE_OPTIONS.contains(&(e.section, e.key))
}

/// `true` for `Accept: text/plain`; JSON for `application/json`, `*/*` or none; else 406.
fn wants_text(req: &Req) -> Result<bool, ApiError> {
    let accept = req.header("accept").unwrap_or("*/*");
    if accept.starts_with("*/*") || accept.starts_with("application/json") {
        Ok(false)
    } else if accept.starts_with("text/plain") {
        Ok(true)
    } else {
        Err(ApiError::new(
            406,
            "Only application/json or text/plain is supported",
        ))
    }
}

/// `[api] expose_config`: `False` refuses; `True` and `non-sensitive-only` both show the
/// configuration with sensitive values hidden (Airflow 3.3.2 never shows them).
fn check_expose(ctx: &Ctx) -> Result<(), ApiError> {
    let v = ctx.cfg.api.expose_config.as_str();
    if v == "non-sensitive-only" || crate::config::parse_bool(v) == Some(true) {
        Ok(())
    } else {
        Err(ApiError::new(
            403,
            "Your Airflow administrator chose not to expose the configuration, most likely for security reasons.",
        ))
    }
}

fn config_reply(text: bool, sections: Vec<(String, Vec<(String, String)>)>) -> Reply {
    if text {
        let body: Vec<String> = sections
            .iter()
            .map(|(name, options)| {
                let lines: Vec<String> =
                    options.iter().map(|(k, v)| format!("{k} = {v}")).collect();
                format!("[{name}]\n{}\n", lines.join("\n"))
            })
            .collect();
        return Reply::bytes(
            200,
            "text/plain; charset=utf-8",
            body.join("\n").into_bytes(),
        );
    }
    let sections: Vec<Value> = sections
        .into_iter()
        .map(|(name, options)| {
            let options: Vec<Value> = options
                .into_iter()
                .map(|(k, v)| json!({"key": k, "value": v}))
                .collect();
            json!({"name": name, "options": options})
        })
        .collect();
    Reply::json(200, &json!({ "sections": sections }))
}

fn get_config(ctx: &Ctx, _: &mut Store, req: &Req, _: &Params) -> Result<Reply, ApiError> {
    let text = wants_text(req)?;
    check_expose(ctx)?;
    let only = req.query("section").filter(|s| !s.is_empty());
    if let Some(s) = only
        && !ctx.cfg.entries.iter().any(|e| e.section == s)
    {
        return Err(ApiError::not_found(format!("Section {s} not found.")));
    }
    let mut sections: Vec<(String, Vec<(String, String)>)> = Vec::new();
    for e in ctx
        .cfg
        .entries
        .iter()
        .filter(|e| only.is_none_or(|s| s == e.section))
    {
        let value = if sensitive_option(e) && !e.value.is_empty() {
            HIDDEN.to_string()
        } else {
            e.value.clone()
        };
        match sections.iter_mut().find(|(name, _)| name == e.section) {
            Some((_, options)) => options.push((e.key.to_string(), value)),
            None => sections.push((e.section.to_string(), vec![(e.key.to_string(), value)])),
        }
    }
    Ok(config_reply(text, sections))
}

fn get_config_value(ctx: &Ctx, _: &mut Store, req: &Req, p: &Params) -> Result<Reply, ApiError> {
    let text = wants_text(req)?;
    check_expose(ctx)?;
    let (section, option) = (p.get("section"), p.get("option"));
    // Option names are case-insensitive in Airflow's config parser; sections are not.
    let e = ctx
        .cfg
        .get(section, &option.to_ascii_lowercase())
        .ok_or_else(|| ApiError::not_found(format!("Option [{section}/{option}] not found.")))?;
    let value = if sensitive_option(e) {
        HIDDEN.to_string()
    } else {
        e.value.clone()
    };
    Ok(config_reply(
        text,
        vec![(section.to_string(), vec![(option.to_string(), value)])],
    ))
}

// ---------------------------------------------------------------- plugins, providers, jobs

fn list_plugins(ctx: &Ctx, _: &mut Store, req: &Req, _: &Params) -> Result<Reply, ApiError> {
    page(ctx, req)?;
    Ok(Reply::json(
        200,
        &json!({"plugins": [], "total_entries": 0}),
    ))
}

fn plugin_import_errors(_: &Ctx, _: &mut Store, _: &Req, _: &Params) -> Result<Reply, ApiError> {
    Ok(Reply::json(
        200,
        &json!({"import_errors": [], "total_entries": 0}),
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
    let now = Utc::now();
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

/// `NAME_gte`, `NAME_gt`, `NAME_lte`, `NAME_lt` query bounds on a time.
struct Range {
    gte: Option<DateTime<Utc>>,
    gt: Option<DateTime<Utc>>,
    lte: Option<DateTime<Utc>>,
    lt: Option<DateTime<Utc>>,
}

impl Range {
    fn new(req: &Req, name: &str) -> Result<Range, ApiError> {
        Ok(Range {
            gte: query_time(req, &format!("{name}_gte"))?,
            gt: query_time(req, &format!("{name}_gt"))?,
            lte: query_time(req, &format!("{name}_lte"))?,
            lt: query_time(req, &format!("{name}_lt"))?,
        })
    }

    /// As SQL compares: a missing time is outside any bound.
    fn holds(&self, t: Option<DateTime<Utc>>) -> bool {
        let bounded = [self.gte, self.gt, self.lte, self.lt]
            .iter()
            .any(Option::is_some);
        let Some(t) = t else {
            return !bounded;
        };
        self.gte.is_none_or(|b| t >= b)
            && self.gt.is_none_or(|b| t > b)
            && self.lte.is_none_or(|b| t <= b)
            && self.lt.is_none_or(|b| t < b)
    }
}

// ---------------------------------------------------------------- shared pieces

/// `*_pattern` (case-insensitive substring, SQL wildcards) and `*_prefix_pattern`
/// (case-sensitive prefix) filters, `|` between alternatives, `~` for all.
struct Patterns {
    contains: Option<Vec<String>>,
    prefix: Option<Vec<String>>,
}

impl Patterns {
    fn new(req: &Req, base: &str) -> Patterns {
        let terms = |v: &str| -> Vec<String> {
            if v.contains('|') {
                let t: Vec<String> = v
                    .split('|')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(String::from)
                    .collect();
                if !t.is_empty() {
                    return t;
                }
            }
            vec![v.to_string()]
        };
        let contains = req
            .query(&format!("{base}_pattern"))
            .map(|v| terms(if v == "~" { "%" } else { v }));
        let prefix = req
            .query(&format!("{base}_prefix_pattern"))
            .map(|v| terms(if v == "~" { "" } else { v }));
        Patterns { contains, prefix }
    }

    fn keep(&self, s: &str) -> bool {
        let contains = self
            .contains
            .as_ref()
            .is_none_or(|ts| ts.iter().any(|t| like(&format!("%{t}%"), s)));
        // Airflow drops trailing punctuation from a prefix before matching.
        let prefix = self.prefix.as_ref().is_none_or(|ts| {
            ts.iter()
                .any(|t| s.starts_with(t.trim_end_matches(|c: char| !c.is_alphanumeric())))
        });
        contains && prefix
    }
}

/// Sorts list rows by an `order_by` field, ties broken by row id in the same direction
/// (rows arrive in id order), then drops the fields only sorting needed.
fn sort(rows: &mut [Value], by: &str, desc: bool, hidden: &[&str]) {
    if desc {
        rows.reverse();
    }
    sort_rows(rows, by, desc);
    for r in rows.iter_mut() {
        if let Some(o) = r.as_object_mut() {
            for h in hidden {
                o.shift_remove(*h);
            }
        }
    }
}

/// `update_mask=a&update_mask=b`; none (or an empty list) means every field given.
fn update_mask(req: &Req) -> Option<Vec<String>> {
    let fields: Vec<String> = query_all(req, "update_mask")
        .into_iter()
        .map(String::from)
        .collect();
    (!fields.is_empty()).then_some(fields)
}

fn no_content() -> Reply {
    Reply::bytes(204, "application/json", Vec::new())
}

fn unprocessable(errors: Vec<Value>) -> ApiError {
    ApiError::with_detail(422, Value::Array(errors))
}

fn body_loc() -> [Value; 1] {
    [json!("body")]
}

/// A location with one more step.
fn at(loc: &[Value], step: impl Into<Value>) -> Vec<Value> {
    loc.iter().cloned().chain([step.into()]).collect()
}

fn error(loc: &[Value], kind: &str, msg: &str, input: &Value, ctx: Option<Value>) -> Value {
    let mut e = json!({"type": kind, "loc": loc, "msg": msg, "input": input});
    if let Some(c) = ctx {
        e["ctx"] = c;
    }
    e
}

/// The body as JSON, or the 422 `json_invalid` that [`body`] gives for it.
fn read_json(req: &Req) -> Result<Value, ApiError> {
    match serde_json::from_slice(&req.body) {
        Ok(v) => Ok(v),
        Err(_) => body(req, &[]).map(Value::Object),
    }
}

/// Checks one JSON object against `fields` with [`body`]'s rules, its errors located
/// under `loc` (a bulk entity sits deep inside the request body).
fn check(v: &Value, fields: &[Field], loc: &[Value]) -> Result<Map<String, Value>, Vec<Value>> {
    let mut one = Req::internal(Method::Post, "/");
    one.body = serde_json::to_vec(v).expect("JSON values serialize");
    body(&one, fields).map_err(|e| match e.detail {
        Value::Array(errors) => errors
            .into_iter()
            .map(|mut err| {
                let rest: Vec<Value> = err["loc"]
                    .as_array()
                    .map(|l| l.iter().skip(1).cloned().collect())
                    .unwrap_or_default();
                err["loc"] = Value::Array(loc.iter().cloned().chain(rest).collect());
                err
            })
            .collect(),
        other => vec![other],
    })
}

fn max_len(m: &Map<String, Value>, f: &str, max: usize, loc: &[Value], errors: &mut Vec<Value>) {
    if let Some(s) = m.get(f).and_then(Value::as_str)
        && s.chars().count() > max
    {
        errors.push(error(
            &at(loc, f),
            "string_too_long",
            &format!("String should have at most {max} characters"),
            &json!(s),
            Some(json!({"max_length": max})),
        ));
    }
}

/// `team_name` needs `[core] multi_team`, which updraft does not have.
fn no_team(m: &Map<String, Value>, loc: &[Value], errors: &mut Vec<Value>) {
    if m.get("team_name").is_some_and(|t| !t.is_null()) {
        errors.push(error(
            loc,
            "value_error",
            "Value error, team_name cannot be set when multi_team mode is disabled. Please contact your administrator.",
            &Value::Object(m.clone()),
            Some(json!({"error": {}})),
        ));
    }
}

/// A field of a checked body (`null` if absent: indexing a `Map` would panic).
fn get<'a>(m: &'a Map<String, Value>, f: &str) -> &'a Value {
    m.get(f).unwrap_or(&Value::Null)
}

fn text(m: &Map<String, Value>, f: &str) -> Option<String> {
    m.get(f).and_then(Value::as_str).map(String::from)
}

/// A Python set of strings as an f-string shows it: `{'a', 'b'}`, in the order given
/// (callers pass sorted sets; Python's order is arbitrary).
fn py_set<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    let parts: Vec<String> = items
        .into_iter()
        .map(crate::template::python_repr_str)
        .collect();
    format!("{{{}}}", parts.join(", "))
}

/// JSON as Python's `json.dumps` writes it: `", "` and `": "` between items (with
/// `indent`, newlines and that many spaces per level, and `","`), every character outside
/// printable ASCII escaped, floats as Python's `repr`.
fn py_json(v: &Value, indent: Option<usize>) -> String {
    let mut out = String::new();
    write_py(&mut out, v, indent, 0);
    out
}

fn write_py(out: &mut String, v: &Value, indent: Option<usize>, depth: usize) {
    let newline = |out: &mut String, depth: usize| {
        if let Some(n) = indent {
            out.push('\n');
            out.push_str(&" ".repeat(n * depth));
        }
    };
    let sep = if indent.is_some() { "," } else { ", " };
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => out.push_str(&i.to_string()),
            (_, Some(u), _) => out.push_str(&u.to_string()),
            (_, _, Some(f)) => out.push_str(&py_float(f)),
            _ => out.push_str(&n.to_string()),
        },
        Value::String(s) => py_str(out, s),
        Value::Array(a) if a.is_empty() => out.push_str("[]"),
        Value::Object(o) if o.is_empty() => out.push_str("{}"),
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push_str(sep);
                }
                newline(out, depth + 1);
                write_py(out, x, indent, depth + 1);
            }
            newline(out, depth);
            out.push(']');
        }
        Value::Object(o) => {
            out.push('{');
            for (i, (k, x)) in o.iter().enumerate() {
                if i > 0 {
                    out.push_str(sep);
                }
                newline(out, depth + 1);
                py_str(out, k);
                out.push_str(": ");
                write_py(out, x, indent, depth + 1);
            }
            newline(out, depth);
            out.push('}');
        }
    }
}

fn py_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            c => {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{u:04x}"));
                }
            }
        }
    }
    out.push('"');
}

/// Python's `repr(float)`: the shortest digits that read back, positional from 1e-4 up
/// to 1e16, else `1e+16` style.
fn py_float(f: f64) -> String {
    if !f.is_finite() {
        return if f.is_nan() {
            "NaN".into()
        } else if f > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        };
    }
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if f == 0.0 || (-4..16).contains(&exp) {
        let s = f.to_string();
        if s.contains('.') { s } else { format!("{s}.0") }
    } else {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_as_python_writes_it() {
        let v = json!({"a": [1, 2.5, "é", null], "b": {}, "c": true});
        assert_eq!(
            py_json(&v, None),
            r#"{"a": [1, 2.5, "\u00e9", null], "b": {}, "c": true}"#
        );
        assert_eq!(
            py_json(&json!({"a": [1]}), Some(2)),
            "{\n  \"a\": [\n    1\n  ]\n}"
        );
        assert_eq!(py_json(&json!("😀"), None), r#""\ud83d\ude00""#);
        assert_eq!(py_float(1.0), "1.0");
        assert_eq!(py_float(1e20), "1e+20");
        assert_eq!(py_float(1.5e-7), "1.5e-07");
        assert_eq!(py_float(0.0001), "0.0001");
        assert_eq!(py_float(-0.0), "-0.0");
    }

    #[test]
    fn values_shown_masked_or_as_python_json() {
        assert_eq!(shown_value("db_password", "hunter2"), "***");
        assert_eq!(shown_value("plain", "v1"), "v1");
        assert_eq!(shown_value("plain", "{\"a\":1}"), "{\"a\": 1}");
        assert_eq!(
            shown_value("cfg", "{\"token\": \"t\", \"n\": 1}"),
            "{\"token\": \"***\", \"n\": 1}"
        );
        assert_eq!(stored_value(&json!({"a": 1})), "{\n  \"a\": 1\n}");
        assert_eq!(stored_value(&json!("x")), "x");
    }

    #[test]
    fn masked_secrets_merge_back() {
        let old = json!({"token": "t", "n": 1, "nested": {"password": "p"}});
        let new = json!({"token": "***", "n": 2, "nested": {"password": "***"}});
        assert_eq!(
            merge(&new, &old, false),
            json!({"token": "t", "n": 2, "nested": {"password": "p"}})
        );
        // Not a secret key: `***` is a value like any other.
        assert_eq!(
            merge(&json!({"x": "***"}), &json!({"x": "y"}), false),
            json!({"x": "***"})
        );
    }

    #[test]
    fn connection_patch_keeps_masked_password() {
        let old = Connection {
            conn_id: "c".into(),
            conn_type: "http".into(),
            password: Some("secret".into()),
            extra: Some("{\"api_key\": \"k\", \"t\": 1}".into()),
            host: Some("h".into()),
            ..Connection::default()
        };
        let body = json!({"connection_id": "c", "conn_type": "http", "password": "***",
                          "extra": "{\"api_key\": \"***\", \"t\": 2}"});
        let m = body.as_object().unwrap();
        let c = apply_connection(&old, m, None);
        assert_eq!(c.password.as_deref(), Some("secret"));
        assert_eq!(c.extra.as_deref(), Some("{\"api_key\": \"k\", \"t\": 2}"));
        assert_eq!(c.host.as_deref(), Some("h"));
        let mask = vec!["password".to_string()];
        let c = apply_connection(&old, &Map::new(), Some(&mask));
        assert_eq!(c.password, None);
    }

    #[test]
    fn update_mask_rules() {
        let m = json!({"key": "k", "value": "v", "description": "d"});
        let m = m.as_object().unwrap();
        assert_eq!(
            fields_to_update(m, None, &["key"]).unwrap(),
            ["value", "description"]
        );
        let mask = vec!["description".to_string()];
        assert_eq!(
            fields_to_update(m, Some(&mask), &["key"]).unwrap(),
            ["description"]
        );
        let mask = vec!["key".to_string()];
        assert_eq!(
            fields_to_update(m, Some(&mask), &["key"]).unwrap_err(),
            "Update not allowed: the following fields are immutable and cannot be modified: {'key'}"
        );
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

    #[test]
    fn patterns_like_airflow() {
        let mut req = Req::internal(Method::Get, "/");
        req.query = vec![("variable_key_pattern".into(), "ab|cd".into())];
        let p = Patterns::new(&req, "variable_key");
        assert!(p.keep("xABx") && p.keep("cd") && !p.keep("ac"));
        req.query = vec![("variable_key_pattern".into(), "~".into())];
        assert!(Patterns::new(&req, "variable_key").keep("anything"));
        req.query = vec![("variable_key_prefix_pattern".into(), "test_".into())];
        let p = Patterns::new(&req, "variable_key");
        assert!(p.keep("testing") && !p.keep("Test") && !p.keep("my_test"));
    }

    #[test]
    fn python_reprs() {
        assert_eq!(py_set(["b", "a"]), "{'b', 'a'}");
        assert_eq!(crate::template::python_repr_str("it's"), "\"it's\"");
        assert_eq!(crate::template::python_repr_str("a\nb"), "'a\\nb'");
    }
}
