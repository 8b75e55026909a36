//! Variables: create, read, update, delete and bulk changes, with Airflow 3.3.2's paths,
//! shapes, texts and status codes. A variable whose key looks secret answers `***`.

use super::bulk::{Objects, bulk, delete_one, get_one, patch_one, post_one};
use crate::py::py_json;
use crate::store::{Store, Tx, Variable};
use serde_json::{Map, Value, json};

use super::kit::{Field, Kind, collection, field, is_sensitive, mask, order_by, page};
use super::kit::{Patterns, fields_to_update, get, max_len, no_team, sort, string, validate};
use crate::api::http::{ApiError, Method, Reply, Req};
use crate::api::route::{Ctx, Params, Route, guarded};
use crate::auth::Role;
use crate::error::{Error, Result};

use Method::{Delete, Get, Patch, Post};

/// Variables.
#[rustfmt::skip]
pub static ROUTES: &[Route] = &[
    guarded(Get, "/api/v2/variables", Role::Op, None, "List variables (values of secret-looking keys masked)", list_variables),
    guarded(Post, "/api/v2/variables", Role::Op, Some("post_variable"), "Create a variable", post_one::<Vars>),
    guarded(Patch, "/api/v2/variables", Role::Op, Some("bulk_variables"), "Create, update and delete variables in bulk", bulk::<Vars>),
    guarded(Get, "/api/v2/variables/{variable_key:path}", Role::Op, None, "Get a variable", get_one::<Vars>),
    guarded(Patch, "/api/v2/variables/{variable_key:path}", Role::Op, Some("patch_variable"), "Update a variable (update_mask for some fields)", patch_one::<Vars>),
    guarded(Delete, "/api/v2/variables/{variable_key:path}", Role::Op, Some("delete_variable"), "Delete a variable", delete_one::<Vars>),
];

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

fn variable_missing(key: &str) -> String {
    format!("The Variable with key: `{key}` was not found")
}

fn check_variable(v: &Value, loc: &[Value]) -> Result<Map<String, Value>, Vec<Value>> {
    let m = validate(v, VARIABLE, loc)?;
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

fn apply_variable(
    old: &Variable,
    m: &Map<String, Value>,
    mask: Option<&[String]>,
) -> std::result::Result<Variable, String> {
    let mut v = old.clone();
    for f in fields_to_update(m, mask, &["key"])? {
        match f.as_str() {
            "value" => v.val = stored_value(get(m, "value")),
            "description" => v.description = string(m, "description"),
            _ => {}
        }
    }
    Ok(v)
}

struct Vars;

impl Objects for Vars {
    const NOUN: &'static str = "variables";
    const IDS: &'static str = "keys";
    const PARAM: &'static str = "variable_key";
    const ID_FIELD: &'static str = "key";
    fn check(v: &Value, loc: &[Value]) -> std::result::Result<Map<String, Value>, Vec<Value>> {
        check_variable(v, loc)
    }
    fn id_mismatch(body: &Map<String, Value>, id: &str) -> Option<&'static str> {
        (get(body, "key") != id)
            .then_some("Invalid body, key from request body doesn't match uri parameter")
    }
    fn missing(id: &str) -> String {
        variable_missing(id)
    }
    fn already_exists(id: &str) -> ApiError {
        Error::Conflict(format!("The Variable with key: `{id}` already exists")).into()
    }
    fn show(store: &Store, id: &str) -> Result<Option<Value>> {
        Ok(store.variable(id)?.map(|v| variable_json(&v)))
    }
    fn exists(tx: &Tx, id: &str) -> Result<bool> {
        Ok(tx.variable(id)?.is_some())
    }
    fn create(tx: &Tx, m: &Map<String, Value>, _: bool) -> Result<()> {
        // Variable.set replaces the whole variable, description too.
        tx.put_variable(&Variable {
            key: string(m, "key").unwrap_or_default(),
            val: stored_value(get(m, "value")),
            description: string(m, "description"),
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
